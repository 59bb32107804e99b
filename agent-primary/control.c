/*
 * control.c - the primary's PrimaryService: register VMs (their raw images
 * are adopted in place, never copied), take, list and remove recovery
 * points. Taking a point is a job (points.c): the call answers 4096 at once
 * and GetPointJob follows it.
 */
#include <stdio.h>
#include <string.h>
#include <stdlib.h>

#include "failback/clock.h"
#include "failback/log.h"
#include "failback/metrics.h"
#include "failback/pb.h"
#include "failback/rp.h"
#include "primary.h"
#include "primary.pb-c.h"

static uint32_t
oom(fb_rpc_call *call)
{
	return fb_rpc_fail(call, FB_RV_OUT_OF_MEMORY, "out of memory building the reply");
}

/* "" (any agent) or a DNS name: labels of letters, digits and '-'. */
static int
dns_name_ok(const char *n)
{
	size_t len = strlen(n), label = 0;

	if (len > 253)
		return 0;
	for (size_t i = 0; i < len; i++) {
		char c = n[i];

		if (c == '.') {
			if (label == 0)
				return 0;
			label = 0;
		} else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		           c == '-') {
			if (++label > 63)
				return 0;
		} else {
			return 0;
		}
	}
	return len == 0 || label > 0;
}

static uint32_t
add_vm(void *arg, fb_rpc_call *call, const ProtobufCMessage *in, ProtobufCMessage *out)
{
	primary                                 *p   = arg;
	const Failback__AddVirtualSystemRequest *req = (const void *)in;
	Failback__AddVirtualSystemResponse      *rsp = (void *)out;
	fb_vm                                   *vm;
	fb_err                                   err = {0};

	if (!dns_name_ok(req->replica_name))
		return fb_rpc_fail(call, FB_RV_INVALID_PARAMETER,
		                   "replica name '%.80s' is not a DNS name (letters, digits, '-' "
		                   "and '.', at most 253)",
		                   req->replica_name);
	if (fb_vm_add_served(p->db, req->name, (const char *const *)req->disk_paths,
	                     req->n_disk_paths, req->recovery_history,
	                     FAILBACK__REPLICATION_MODE__RM_PRIMARY,
	                     FAILBACK__REPLICATION_STATE__RS_READY, req->replica_name,
	                     req->disk_format, &vm, &err) != FB_RV_OK)
		return fb_pb_fail(call, &err);
	fb_log_info("FB4001", "VM %s (%s) added with %zu %s disk(s), RecoveryHistory %u%s%s",
	            vm->name, vm->id, vm->ndisks, vm->disks[0].format, vm->recovery_history,
	            vm->peer_name[0] ? ", served only to replica agent " : "", vm->peer_name);
	rsp->vm = fb_pb_vm(call, vm);
	free(vm);
	return rsp->vm != NULL ? FB_RV_OK : oom(call);
}

static uint32_t
create_rp(void *arg, fb_rpc_call *call, const ProtobufCMessage *in, ProtobufCMessage *out)
{
	primary                                    *p   = arg;
	const Failback__CreateRecoveryPointRequest *req = (const void *)in;
	Failback__CreateRecoveryPointResponse      *rsp = (void *)out;
	fb_vm                                      *vm;
	fb_err                                      err = {0};
	char                                        id[FB_ID_LEN + 1], ref[128];
	uint32_t                                    rv;

	if (fb_vm_get(p->db, req->vm, &vm, &err) != FB_RV_OK)
		return fb_pb_fail(call, &err);
	if (!primary_vm_active(vm)) {
		rv = fb_rpc_fail(call, FB_RV_INVALID_STATE,
		                 "VM %s was handed over at generation %llu: the other site is its "
		                 "primary and takes its recovery points",
		                 vm->name, (unsigned long long)vm->generation);
		free(vm);
		return rv;
	}
	rv = points_start(p, vm, (int)req->type, req->full_scan, id, &err);
	free(vm);
	if (rv != FB_RV_OK)
		return fb_pb_fail(call, &err);
	snprintf(ref, sizeof(ref), "Msvm_ConcreteJob.InstanceID=\"%s\"", id);
	if ((rsp->job = fb_rpc_strdup(call, ref)) == NULL ||
	    (rsp->job_id = fb_rpc_strdup(call, id)) == NULL)
		return oom(call);
	return FB_RV_JOB_STARTED;
}

static uint32_t
list_rps(void *arg, fb_rpc_call *call, const ProtobufCMessage *in, ProtobufCMessage *out)
{
	primary                                          *p   = arg;
	const Failback__PrimaryListRecoveryPointsRequest *req = (const void *)in;
	Failback__PrimaryListRecoveryPointsResponse      *rsp = (void *)out;
	fb_rp                                            *rps;
	size_t                                            n;
	fb_err                                            err = {0};

	if (fb_rp_list(p->db, req->vm, &rps, &n, &err) != FB_RV_OK)
		return fb_pb_fail(call, &err);
	rsp->points   = fb_pb_rps(call, rps, n);
	rsp->n_points = n;
	free(rps);
	return rsp->points != NULL ? FB_RV_OK : FB_RV_OUT_OF_MEMORY;
}

static uint32_t
remove_rp(void *arg, fb_rpc_call *call, const ProtobufCMessage *in, ProtobufCMessage *out)
{
	primary                                    *p   = arg;
	const Failback__RemoveRecoveryPointRequest *req = (const void *)in;
	fb_rp_stats                                 st  = {0};
	fb_err                                      err = {0};

	(void)out;
	if (fb_rp_remove(p->db, p->store, req->vm, req->recovery_point_identifier, &st, &err) !=
	    FB_RV_OK)
		return fb_pb_fail(call, &err);
	fb_log_info("FB4004", "recovery point %s of %s removed, %llu blocks freed",
	            req->recovery_point_identifier, req->vm, (unsigned long long)st.blocks_freed);
	return FB_RV_OK;
}

static uint32_t
remove_vm(void *arg, fb_rpc_call *call, const ProtobufCMessage *in, ProtobufCMessage *out)
{
	primary                                         *p   = arg;
	const Failback__PrimaryRemoveVirtualSystemRequest *req = (const void *)in;
	Failback__PrimaryRemoveVirtualSystemResponse      *rsp = (void *)out;
	fb_rp_stats                                      st  = {0};
	fb_err                                           err = {0};
	fb_vm                                           *vm;

	if (fb_vm_get(p->db, req->vm, &vm, &err) != FB_RV_OK)
		return fb_pb_fail(call, &err);
	if (fb_rp_remove_vm(p->db, p->store, vm->id, req->force, &st, &err) != FB_RV_OK) {
		free(vm);
		return fb_pb_fail(call, &err);
	}
	fb_log_info("FB4006", "VM %s (%s) unregistered%s: %llu recovery points removed, %llu "
	            "blocks freed; its disks are untouched",
	            vm->name, vm->id, req->force ? " (forced)" : "",
	            (unsigned long long)st.points_pruned, (unsigned long long)st.blocks_freed);
	free(vm);
	rsp->points_removed = st.points_pruned;
	rsp->blocks_freed   = st.blocks_freed;
	return FB_RV_OK;
}

static uint32_t
list_vms(void *arg, fb_rpc_call *call, const ProtobufCMessage *in, ProtobufCMessage *out)
{
	primary                                     *p   = arg;
	Failback__PrimaryListVirtualSystemsResponse *rsp = (void *)out;
	fb_vm                                       *vms;
	size_t                                       n;
	fb_err                                       err = {0};

	(void)in;
	if (fb_vm_list(p->db, &vms, &n, &err) != FB_RV_OK)
		return fb_pb_fail(call, &err);
	rsp->vms   = fb_pb_vms(call, vms, n);
	rsp->n_vms = n;
	fb_vm_list_free(vms);
	for (size_t i = 0; rsp->vms != NULL && i < n; i++)
		if (fb_pb_tracked_paths(call, rsp->vms[i]) != FB_RV_OK)
			return fb_rpc_fail(call, FB_RV_OUT_OF_MEMORY, "out of memory building the reply");
	return rsp->vms != NULL ? FB_RV_OK : FB_RV_OUT_OF_MEMORY;
}

const fb_rpc_method primary_control_methods[] = {
    {"AddVirtualSystem", add_vm, FB_ROLE_OPERATOR},
    {"CreateRecoveryPoint", create_rp, FB_ROLE_OPERATOR},
    {"ListRecoveryPoints", list_rps, FB_ROLES_READ},
    {"RemoveRecoveryPoint", remove_rp, FB_ROLE_OPERATOR},
    {"ListVirtualSystems", list_vms, FB_ROLES_READ},
    {"GetPointJob", points_get_job, FB_ROLES_ALL}, /* the reverse's worker follows its point */
    {"CancelPointJob", points_cancel_job, FB_ROLE_OPERATOR},
    {"RemoveVirtualSystem", remove_vm, FB_ROLE_OPERATOR},
};
const size_t primary_control_nmethods =
    sizeof(primary_control_methods) / sizeof(primary_control_methods[0]);

/* /metrics, the primary's part: per VM it serves, its recovery points and
 * the age of the newest one (the RPO an operator alerts on). Reads the
 * database on NNG's HTTP thread: a short read per VM. */
void
primary_metrics(primary *p, fb_metrics *m)
{
	fb_vm   *vms = NULL;
	size_t   n   = 0;
	fb_err   err = {0};
	uint64_t now = (uint64_t)fb_clock_unix_ms();

	if (p->db == NULL || fb_vm_list(p->db, &vms, &n, &err) != FB_RV_OK)
		return;
	fb_metrics_family(m, "failback_vm_recovery_points", "gauge",
	                  "Recovery points a VM this primary serves holds here (history included).");
	fb_metrics_family(m, "failback_vm_recovery_point_age_seconds", "gauge",
	                  "Age of the VM's newest recovery point with its blocks here (RPO).");
	for (size_t i = 0; i < n; i++) {
		fb_rp   *rps = NULL;
		size_t   k   = 0;
		uint64_t newest = 0;

		if (!primary_vm_active(&vms[i]) || fb_rp_list(p->db, vms[i].id, &rps, &k, &err) != FB_RV_OK)
			continue;
		for (size_t j = 0; j < k; j++)
			if (rps[j].held && (uint64_t)rps[j].time_ms > newest)
				newest = (uint64_t)rps[j].time_ms;
		fb_metrics_sample(m, "failback_vm_recovery_points",
		                  (const char *[]){"vm", vms[i].name, NULL}, (double)k);
		if (newest != 0)
			fb_metrics_sample(m, "failback_vm_recovery_point_age_seconds",
			                  (const char *[]){"vm", vms[i].name, NULL},
			                  now > newest ? (double)(now - newest) / 1000.0 : 0);
		free(rps);
	}
	fb_vm_list_free(vms);
}
