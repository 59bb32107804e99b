/*
 * control.c - the primary's PrimaryService: register VMs (their raw images
 * are adopted in place, never copied), take, list and remove recovery
 * points. Taking a point is a job (points.c): the call answers 4096 at once
 * and GetPointJob follows it.
 */
#include <stdio.h>
#include <stdlib.h>

#include "failback/log.h"
#include "failback/pb.h"
#include "failback/rp.h"
#include "primary.h"
#include "primary.pb-c.h"

static uint32_t
oom(fb_rpc_call *call)
{
	return fb_rpc_fail(call, FB_RV_OUT_OF_MEMORY, "out of memory building the reply");
}

static uint32_t
add_vm(void *arg, fb_rpc_call *call, const ProtobufCMessage *in, ProtobufCMessage *out)
{
	primary                                 *p   = arg;
	const Failback__AddVirtualSystemRequest *req = (const void *)in;
	Failback__AddVirtualSystemResponse      *rsp = (void *)out;
	fb_vm                                   *vm;
	fb_err                                   err = {0};

	if (fb_vm_add(p->db, req->name, (const char *const *)req->disk_paths, req->n_disk_paths,
	              req->recovery_history, FAILBACK__REPLICATION_MODE__RM_PRIMARY,
	              FAILBACK__REPLICATION_STATE__RS_READY, &vm, &err) != FB_RV_OK)
		return fb_pb_fail(call, &err);
	fb_log_info("FB4001", "VM %s (%s) added with %zu disk(s), RecoveryHistory %u", vm->name,
	            vm->id, vm->ndisks, vm->recovery_history);
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
	rv = points_start(p, vm, (int)req->type, id, &err);
	free(vm);
	if (rv != FB_RV_OK)
		return fb_pb_fail(call, &err);
	snprintf(ref, sizeof(ref), "Msvm_ConcreteJob.InstanceID=\"%s\"", id);
	if ((rsp->job = fb_rpc_strdup(call, ref)) == NULL)
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
};
const size_t primary_control_nmethods =
    sizeof(primary_control_methods) / sizeof(primary_control_methods[0]);
