/*
 * control.c - the replica's ReplicationService. Methods that start work
 * check their parameters synchronously, in this order, so the first problem
 * is the one reported and nothing changes: the VM reference (32773 / 32779),
 * the settings string (32773 / 32776 / 32770), the recovery point
 * identifier (32773), a running job (32774; checked before the state, which
 * a running job has changed), the VM's state (32775). Then
 * the job is persisted and the method returns 4096 with its reference.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "failback/clock.h"
#include "failback/fsops.h"
#include "failback/id.h"
#include "failback/log.h"
#include "failback/pb.h"
#include "failback/rsd.h"
#include "driver.h"
#include "replica.h"
#include "replica.pb-c.h"
#include "wire_limits.h"

#define JOB_REF_FMT "Msvm_ConcreteJob.InstanceID=\"%s\""

static uint32_t
oom(fb_rpc_call *call)
{
	return fb_rpc_fail(call, FB_RV_OUT_OF_MEMORY, "out of memory building the reply");
}

/* Accepts a GUID or Msvm_ConcreteJob.InstanceID="<GUID>". */
static const char *
job_guid(const char *ref, char *buf, size_t len)
{
	const char *q = strchr(ref, '"');

	if (q == NULL)
		return ref;
	snprintf(buf, len, "%.36s", q + 1);
	return buf;
}

static uint32_t
started(fb_rpc_call *call, ProtobufCMessage *out, const char *job_id)
{
	Failback__JobStartedResponse *rsp = (void *)out;
	char                          ref[128];

	snprintf(ref, sizeof(ref), JOB_REF_FMT, job_id);
	if ((rsp->job = fb_rpc_strdup(call, ref)) == NULL ||
	    (rsp->job_id = fb_rpc_strdup(call, job_id)) == NULL)
		return oom(call);
	return FB_RV_JOB_STARTED;
}

/* Persists a job for vm with params p (vm, rp and settings are filled
 * here) and answers 4096 with its reference (frees vm). */
static uint32_t
submit_params(replica *r, fb_rpc_call *call, ProtobufCMessage *out, fb_vm *vm, int type,
              const char *rp, const char *settings, Failback__JobParams *p)
{
	fb_err   err = {0};
	char     id[FB_ID_LEN + 1];
	uint32_t rv;

	p->vm                        = vm->id;
	p->recovery_point_identifier = (char *)rp;
	p->replication_setting_data  = (char *)settings;
	p->prev_state                = (uint32_t)vm->state;
	rv                           = jobs_submit(r, type, vm->id, p, id, &err);
	free(vm);
	return rv == FB_RV_OK ? started(call, out, id) : fb_pb_fail(call, &err);
}

static uint32_t
submit(replica *r, fb_rpc_call *call, ProtobufCMessage *out, fb_vm *vm, int type,
       const char *rp, const char *settings)
{
	Failback__JobParams p = FAILBACK__JOB_PARAMS__INIT;

	return submit_params(r, call, out, vm, type, rp, settings, &p);
}

/* InitiateFailback, and EstimateFailback with the same checks. */
static uint32_t
failback_call(void *arg, fb_rpc_call *call, const ProtobufCMessage *in, ProtobufCMessage *out,
              int type)
{
	replica                                 *r    = arg;
	const Failback__InitiateFailbackRequest *req  = (const void *)in;
	fb_rsd                                   rsd;
	fb_vm                                   *vm;
	fb_err                                   err = {0};

	if (fb_vm_get(r->db, req->vm, &vm, &err) != FB_RV_OK)
		return fb_pb_fail(call, &err);
	if (fb_rsd_parse(req->replication_setting_data, strlen(req->replication_setting_data), &rsd,
	                 &err) != FB_RV_OK)
		goto fail;
	for (size_t i = 0; i < rsd.nincluded; i++) {
		int found = 0;
		for (size_t d = 0; d < vm->ndisks; d++) {
			fb_rsd one = rsd;
			one.nincluded = 1;
			memcpy(one.included[0], rsd.included[i], sizeof(one.included[0]));
			found |= fb_rsd_includes(&one, vm->disks[d].name);
		}
		if (!found) {
			fb_err_set(&err, FB_RV_INVALID_PARAMETER,
			           "IncludedDisks names '%.100s', which VM %s does not have",
			           rsd.included[i], vm->name);
			goto fail;
		}
	}
	if (req->recovery_point_identifier[0] != '\0' &&
	    !fb_id_valid(req->recovery_point_identifier)) {
		fb_err_set(&err, FB_RV_INVALID_PARAMETER,
		           "RecoveryPointIdentifier '%.80s' is not a recovery point GUID",
		           req->recovery_point_identifier);
		goto fail;
	}
	if (vmstate_check(driver_of(type), vm, &err) != FB_RV_OK)
		goto fail;
	{
		Failback__JobParams p = FAILBACK__JOB_PARAMS__INIT;

		p.force = type == JT_FAILBACK && req->force;
		if (req->verify[0] != '\0' && strcmp(req->verify, "fast") != 0 &&
		    strcmp(req->verify, "full") != 0) {
			fb_err_set(&err, FB_RV_INVALID_PARAMETER, "verify: '%.40s' is not fast or full",
			           req->verify);
			goto fail;
		}
		p.verify = (char *)req->verify;
		if (p.force)
			fb_log_warn("FB5042", "InitiateFailback of VM %s asked to force past the "
			            "generation guard", vm->name);
		return submit_params(r, call, out, vm, type, req->recovery_point_identifier,
		                     req->replication_setting_data, &p);
	}
fail:
	free(vm);
	return fb_pb_fail(call, &err);
}

static uint32_t
initiate_failback(void *arg, fb_rpc_call *call, const ProtobufCMessage *in, ProtobufCMessage *out)
{
	return failback_call(arg, call, in, out, JT_FAILBACK);
}

static uint32_t
estimate_failback(void *arg, fb_rpc_call *call, const ProtobufCMessage *in, ProtobufCMessage *out)
{
	return failback_call(arg, call, in, out, JT_ESTIMATE);
}

/* The shared shape of the local jobs: VM, state check, submit. */
static uint32_t
local_job(replica *r, fb_rpc_call *call, ProtobufCMessage *out, const char *vm_ref, int type,
          const char *rp)
{
	fb_vm              *vm;
	fb_rp              *point;
	fb_err              err = {0};

	if (fb_vm_get(r->db, vm_ref, &vm, &err) != FB_RV_OK)
		return fb_pb_fail(call, &err);
	if (rp != NULL && rp[0] != '\0' && !fb_id_valid(rp)) {
		fb_err_set(&err, FB_RV_INVALID_PARAMETER, "'%.80s' is not a recovery point GUID", rp);
		goto fail;
	}
	if (vmstate_check(driver_of(type), vm, &err) != FB_RV_OK)
		goto fail;
	if (rp != NULL) {
		if (fb_rp_get(r->db, vm->id, rp, &point, &err) != FB_RV_OK)
			goto fail;
		if (!point->held) {
			fb_err_set(&err, FB_RV_FILE_NOT_FOUND,
			           "recovery point %s of VM %s is history here: its blocks are at the "
			           "other site",
			           point->id, vm->name);
			free(point);
			goto fail;
		}
		free(point);
	}
	return submit(r, call, out, vm, type, rp != NULL ? rp : "", "");
fail:
	free(vm);
	return fb_pb_fail(call, &err);
}

static uint32_t
initiate_failover(void *arg, fb_rpc_call *call, const ProtobufCMessage *in, ProtobufCMessage *out)
{
	const Failback__InitiateFailoverRequest *req = (const void *)in;

	return local_job(arg, call, out, req->vm, JT_FAILOVER, req->recovery_point_identifier);
}

static uint32_t
revert_failover(void *arg, fb_rpc_call *call, const ProtobufCMessage *in, ProtobufCMessage *out)
{
	return local_job(arg, call, out, ((const Failback__VmRef *)in)->vm, JT_REVERT, NULL);
}

static uint32_t
commit_failover(void *arg, fb_rpc_call *call, const ProtobufCMessage *in, ProtobufCMessage *out)
{
	return local_job(arg, call, out, ((const Failback__VmRef *)in)->vm, JT_COMMIT, NULL);
}

static int
is_ip_literal(const char *host)
{
	struct in6_addr a;

	return inet_pton(AF_INET, host, &a) == 1 || inet_pton(AF_INET6, host, &a) == 1;
}

/* The primary a Replicate names (replicate --from): a tls+tcp://HOST:PORT
 * URL, the name in its certificate (given, else HOST unless it is an
 * address, else the agent's --peer-name) and an optional pin, a SHA-1 or
 * SHA-256 thumbprint in hex (kept in lower case). */
static uint32_t
replicate_primary(const replica *r, const Failback__ReplicateRequest *req, char *name,
                  size_t name_len, char *pin, size_t pin_len, fb_err *err)
{
	const char *url = req->primary_url, *colon = strrchr(url, ':');
	size_t      n   = strlen(req->thumbprint);
	char        host[FB_WIRE_MAX_NAME + 1];

	if ((req->primary_name[0] != '\0' || n > 0) && url[0] == '\0')
		return fb_err_set(err, FB_RV_INVALID_PARAMETER,
		                  "a server name or thumbprint needs the primary's URL (--from)");
	if (url[0] == '\0')
		return FB_RV_OK;
	if (strncmp(url, "tls+tcp://", 10) != 0 || strlen(url) > FB_WIRE_MAX_URL ||
	    colon == NULL || colon < url + 11 || colon[1] == '\0' ||
	    strspn(colon + 1, "0123456789") != strlen(colon + 1) ||
	    (size_t)(colon - (url + 10)) > FB_WIRE_MAX_NAME)
		return fb_err_set(err, FB_RV_INVALID_PARAMETER,
		                  "the primary must be a tls+tcp://HOST:PORT URL (got '%.100s')", url);
	snprintf(host, sizeof(host), "%.*s", (int)(colon - (url + 10)), url + 10);
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = '\0';
	}
	snprintf(name, name_len, "%s",
	         req->primary_name[0] != '\0' ? req->primary_name
	         : !is_ip_literal(host)        ? host
	                                       : r->rset->peer_name);
	if (strlen(name) > FB_WIRE_MAX_NAME)
		return fb_err_set(err, FB_RV_INVALID_PARAMETER, "the primary's name is too long");
	if (n != 0 && ((n != 40 && n != 64) || strspn(req->thumbprint, "0123456789abcdefABCDEF") != n))
		return fb_err_set(err, FB_RV_INVALID_PARAMETER,
		                  "thumbprint '%.80s' is not a SHA-1 (40) or SHA-256 (64) hex digest",
		                  req->thumbprint);
	for (size_t i = 0; i <= n && i < pin_len; i++)
		pin[i] = (char)tolower((unsigned char)req->thumbprint[i]);
	return FB_RV_OK;
}

static uint32_t
replicate(void *arg, fb_rpc_call *call, const ProtobufCMessage *in, ProtobufCMessage *out)
{
	replica                          *r    = arg;
	const Failback__ReplicateRequest *req  = (const void *)in;
	Failback__JobParams               p    = FAILBACK__JOB_PARAMS__INIT;
	fb_vm                            *vm   = NULL;
	fb_err                            err  = {0};
	char                              id[FB_ID_LEN + 1];
	const char                       *key  = req->vm;
	char                              path_id[FB_ID_LEN + 1];
	char                              name[FB_WIRE_MAX_NAME + 1] = "", pin[129] = "";
	int                               is_path = fb_vm_ref_parse(req->vm, path_id, sizeof(path_id));
	fb_rsd                            rsd;

	if (is_path == 1)
		key = path_id;
	if (is_path < 0 || (!fb_id_valid(key) && !fb_vm_name_valid(key)))
		return fb_rpc_fail(call, FB_RV_INVALID_PARAMETER,
		                   "'%.80s' is neither a VM GUID, a VM name nor a VM's CIM object path",
		                   req->vm);
	if (replicate_primary(r, req, name, sizeof(name), pin, sizeof(pin), &err) != FB_RV_OK ||
	    fb_rsd_parse(req->replication_setting_data, strlen(req->replication_setting_data), &rsd,
	                 &err) != FB_RV_OK)
		return fb_pb_fail(call, &err);
	if (req->primary_url[0] != '\0' && rsd.primary_connection_point[0] != '\0')
		return fb_rpc_fail(call, FB_RV_INVALID_PARAMETER,
		                   "name the primary once: a URL or the settings' "
		                   "PrimaryConnectionPoint, not both");
	/* A VM the replica does not hold yet is learnt from the primary. */
	if (fb_vm_get(r->db, key, &vm, &err) == FB_RV_OK) {
		if (vmstate_check(driver_of(JT_REPLICATE), vm, &err) != FB_RV_OK) {
			free(vm);
			return fb_pb_fail(call, &err);
		}
		key = vm->id;
	}
	p.vm                        = (char *)key;
	p.recovery_point_identifier = "";
	p.replication_setting_data  = req->replication_setting_data;
	p.peer_url                  = req->primary_url;
	p.peer_name                 = name;
	p.peer_pin                  = pin;
	p.prev_state                = vm != NULL ? (uint32_t)vm->state : 0;
	p.force                     = req->force;
	if (req->force)
		fb_log_warn("FB5042", "Replicate of VM %s asked to force past the generation guard",
		            req->vm);
	if (jobs_submit(r, JT_REPLICATE, key, &p, id, &err) != FB_RV_OK) {
		free(vm);
		return fb_pb_fail(call, &err);
	}
	free(vm);
	return started(call, out, id);
}

static uint32_t
get_vm(void *arg, fb_rpc_call *call, const ProtobufCMessage *in, ProtobufCMessage *out)
{
	replica                          *r   = arg;
	Failback__GetVirtualSystemResponse *rsp = (void *)out;
	fb_vm                            *vm;
	fb_err                            err = {0};
	char                              jobs_of[FB_ID_LEN + 1];

	if (fb_vm_get(r->db, ((const Failback__VmRef *)in)->vm, &vm, &err) != FB_RV_OK)
		return fb_pb_fail(call, &err);
	jobs_vm_state(vm->id, &vm->state);
	rsp->vm = fb_pb_vm(call, vm);
	snprintf(jobs_of, sizeof(jobs_of), "%s", vm->id);
	free(vm);
	if (rsp->vm == NULL || fb_pb_tracked_paths(call, rsp->vm) != FB_RV_OK)
		return oom(call);
	if (jobs_vm_busy(jobs_of)) {
		char (*ids)[FB_ID_LEN + 1];
		size_t n;
		if (jobs_list(r, jobs_of, &ids, &n, &err) == FB_RV_OK && n > 0)
			rsp->vm->current_job = fb_rpc_strdup(call, ids[n - 1]);
		free(ids);
	}
	return FB_RV_OK;
}

static uint32_t
list_vms(void *arg, fb_rpc_call *call, const ProtobufCMessage *in, ProtobufCMessage *out)
{
	replica                              *r   = arg;
	Failback__ListVirtualSystemsResponse *rsp = (void *)out;
	fb_vm                                *vms;
	size_t                                n;
	fb_err                                err = {0};

	(void)in;
	if (fb_vm_list(r->db, &vms, &n, &err) != FB_RV_OK)
		return fb_pb_fail(call, &err);
	for (size_t i = 0; i < n; i++)
		jobs_vm_state(vms[i].id, &vms[i].state);
	rsp->vms   = fb_pb_vms(call, vms, n);
	rsp->n_vms = n;
	fb_vm_list_free(vms);
	if (rsp->vms == NULL)
		return FB_RV_OUT_OF_MEMORY;
	for (size_t i = 0; i < n; i++)
		if (fb_pb_tracked_paths(call, rsp->vms[i]) != FB_RV_OK)
			return FB_RV_OUT_OF_MEMORY;
	return FB_RV_OK;
}

static uint32_t
list_rps(void *arg, fb_rpc_call *call, const ProtobufCMessage *in, ProtobufCMessage *out)
{
	replica                              *r   = arg;
	Failback__ListRecoveryPointsResponse *rsp = (void *)out;
	fb_rp                                *rps;
	size_t                                n;
	fb_err                                err = {0};

	if (fb_rp_list(r->db, ((const Failback__ListRecoveryPointsRequest *)in)->vm, &rps, &n,
	               &err) != FB_RV_OK)
		return fb_pb_fail(call, &err);
	rsp->points   = fb_pb_rps(call, rps, n);
	rsp->n_points = n;
	free(rps);
	return rsp->points != NULL ? FB_RV_OK : FB_RV_OUT_OF_MEMORY;
}

/* What an EstimateFailback job found, from its checkpoint (an empty
 * estimate when it has none). */
static Failback__FailbackEstimate *
job_estimate(replica *r, fb_rpc_call *call, const char *id)
{
	Failback__FailbackEstimate *e  = fb_rpc_alloc(call, sizeof(*e));
	Failback__JobCheckpoint    *cp = NULL;
	fb_err                      err = {0};

	if (e == NULL)
		return NULL;
	failback__failback_estimate__init(e);
	e->recovery_point = "";
	if (job_store_checkpoint_load(r->db, id, &cp, &err) == FB_RV_OK && cp != NULL &&
	    cp->estimate != NULL) {
		const Failback__FailbackEstimate *s = cp->estimate;

		e->blocks_differing = s->blocks_differing;
		e->bytes_differing  = s->bytes_differing;
		e->disk_bytes       = s->disk_bytes;
		e->compare_ms       = s->compare_ms;
		e->sample_bytes     = s->sample_bytes;
		e->sample_ms        = s->sample_ms;
		e->rate_bytes_per_s = s->rate_bytes_per_s;
		e->estimated_ms     = s->estimated_ms;
		e->recovery_point   = fb_rpc_strdup(call, s->recovery_point);
	}
	if (cp != NULL)
		failback__job_checkpoint__free_unpacked(cp, NULL);
	return e->recovery_point != NULL ? e : NULL;
}

/* Loads a job into an arena-owned message. */
static Failback__Job *
job_message(replica *r, fb_rpc_call *call, const char *ref, fb_err *err)
{
	Failback__Job    *job = fb_rpc_alloc(call, sizeof(*job));
	const job_driver *drv;
	job_row           row;
	char              guid[FB_ID_LEN + 1];
	int64_t           now = fb_clock_unix_ms();

	if (job == NULL) {
		fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
		return NULL;
	}
	failback__job__init(job);
	if (jobs_view(r, job_guid(ref, guid, sizeof(guid)), &row, err) != FB_RV_OK)
		return NULL;
	drv                         = driver_of(row.type);
	job->job_type               = (uint32_t)row.type;
	job->job_state              = (Failback__JobState)row.state;
	job->percent_complete       = row.percent;
	job->error_code             = row.error_code;
	job->time_submitted_unix_ms = row.submitted_ms;
	job->start_time_unix_ms     = row.started_ms;
	job->elapsed_ms             = row.started_ms == 0
	                                  ? 0
	                                  : (uint64_t)((row.ended_ms ? row.ended_ms : now) -
	                                               row.started_ms);
	job->time_before_removal_ms = JOB_REMOVAL_MS;
	job->cancellable = drv != NULL && drv->cancellable &&
	                   row.state < FAILBACK__JOB_STATE__JS_COMPLETED;
	job->bytes_done        = row.bytes_done;
	job->bytes_total       = row.bytes_total;
	job->blocks_done       = row.blocks_done;
	job->blocks_total      = row.blocks_total;
	job->rate_bytes_per_s  = row.rate;
	job->bytes_on_wire     = row.wire;
	job->bytes_read        = row.bytes_read;
	job->compare_mode      = fb_rpc_strdup(call, row.compare_mode);
	job->job_id            = fb_rpc_strdup(call, row.id);
	job->vm_id             = fb_rpc_strdup(call, row.vm_id);
	job->phase             = fb_rpc_strdup(call, row.phase);
	job->error_description = fb_rpc_strdup(call, row.error);
	if (job->job_id == NULL || job->vm_id == NULL || job->phase == NULL ||
	    job->error_description == NULL || job->compare_mode == NULL) {
		fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
		return NULL;
	}
	if (row.type == JT_ESTIMATE && row.state == FAILBACK__JOB_STATE__JS_COMPLETED &&
	    (job->estimate = job_estimate(r, call, row.id)) == NULL) {
		fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
		return NULL;
	}
	return job;
}

static uint32_t
get_job(void *arg, fb_rpc_call *call, const ProtobufCMessage *in, ProtobufCMessage *out)
{
	Failback__GetJobResponse *rsp = (void *)out;
	fb_err                    err = {0};

	if ((rsp->job = job_message(arg, call, ((const Failback__JobRef *)in)->job, &err)) == NULL)
		return fb_pb_fail(call, &err);
	return FB_RV_OK;
}

static uint32_t
list_jobs(void *arg, fb_rpc_call *call, const ProtobufCMessage *in, ProtobufCMessage *out)
{
	replica                        *r   = arg;
	const Failback__ListJobsRequest *req = (const void *)in;
	Failback__ListJobsResponse     *rsp = (void *)out;
	char (*ids)[FB_ID_LEN + 1]          = NULL;
	char                            vm_id[FB_ID_LEN + 1] = "";
	size_t                          n;
	fb_err                          err = {0};

	if (req->vm[0] != '\0') {
		fb_vm *vm;
		if (fb_vm_get(r->db, req->vm, &vm, &err) != FB_RV_OK)
			return fb_pb_fail(call, &err);
		snprintf(vm_id, sizeof(vm_id), "%s", vm->id);
		free(vm);
	}
	if (jobs_list(r, vm_id, &ids, &n, &err) != FB_RV_OK)
		return fb_pb_fail(call, &err);
	rsp->jobs = fb_rpc_alloc(call, n * sizeof(*rsp->jobs) + 1);
	for (size_t i = 0; rsp->jobs != NULL && i < n; i++)
		if ((rsp->jobs[rsp->n_jobs] = job_message(r, call, ids[i], &err)) != NULL)
			rsp->n_jobs++;
	free(ids);
	return rsp->jobs != NULL ? FB_RV_OK : oom(call);
}

static uint32_t
request_job_state_change(void *arg, fb_rpc_call *call, const ProtobufCMessage *in,
                         ProtobufCMessage *out)
{
	const Failback__RequestJobStateChangeRequest *req = (const void *)in;
	fb_err                                       err = {0};
	char                                         guid[FB_ID_LEN + 1];

	(void)out;
	if (jobs_cancel(arg, job_guid(req->job, guid, sizeof(guid)), req->requested_state, &err) !=
	    FB_RV_OK)
		return fb_pb_fail(call, &err);
	return FB_RV_OK;
}

/* GetError: the job's error as an embedded Msvm_Error instance. */
static uint32_t
get_job_error(void *arg, fb_rpc_call *call, const ProtobufCMessage *in, ProtobufCMessage *out)
{
	Failback__GetJobErrorResponse *rsp = (void *)out;
	Failback__Job                 *job;
	fb_err                         err = {0};
	char                           xml[2048], msg[1200];
	size_t                         k = 0;

	if ((job = job_message(arg, call, ((const Failback__JobRef *)in)->job, &err)) == NULL)
		return fb_pb_fail(call, &err);
	rsp->error_code        = job->error_code;
	rsp->error_description = job->error_description;
	for (const char *c = job->error_description; *c && k < sizeof(msg) - 8; c++) {
		const char *rep = *c == '<' ? "&lt;" : *c == '>' ? "&gt;" : *c == '&' ? "&amp;"
		                : *c == '"' ? "&quot;" : NULL;
		if (rep != NULL)
			k += (size_t)snprintf(msg + k, sizeof(msg) - k, "%s", rep);
		else
			msg[k++] = *c;
	}
	msg[k] = '\0';
	if (job->error_code == 0) {
		rsp->error = "";
		return FB_RV_OK;
	}
	snprintf(xml, sizeof(xml),
	         "<INSTANCE CLASSNAME=\"Msvm_Error\">"
	         "<PROPERTY NAME=\"Message\" TYPE=\"string\"><VALUE>%s</VALUE></PROPERTY>"
	         "<PROPERTY NAME=\"CIMStatusCode\" TYPE=\"uint32\"><VALUE>%u</VALUE></PROPERTY>"
	         "<PROPERTY NAME=\"ErrorSource\" TYPE=\"string\"><VALUE>%s</VALUE></PROPERTY>"
	         "</INSTANCE>",
	         msg, job->error_code, job->job_id);
	rsp->error = fb_rpc_strdup(call, xml);
	return rsp->error != NULL ? FB_RV_OK : oom(call);
}

/* The other site's replica agent: recovery_url, else the settings'
 * RecoveryConnectionPoint and RecoveryServerPortNumber (default 7403). */
static uint32_t
reverse_target(const replica *r, const Failback__ReverseReplicationRelationshipRequest *req,
               const fb_rsd *rsd, char *url, size_t url_len, char *name, size_t name_len,
               fb_err *err)
{
	const char *host = rsd->recovery_connection_point;
	int         n;

	if (req->recovery_url[0] != '\0')
		n = snprintf(url, url_len, "%s", req->recovery_url);
	else if (host[0] != '\0')
		n = snprintf(url, url_len, "tls+tcp://%s:%u", host, rsd->port ? rsd->port : 7403u);
	else
		return fb_err_set(err, FB_RV_INVALID_PARAMETER,
		                  "name the other site's replica agent: a recovery URL or the "
		                  "settings' RecoveryConnectionPoint");
	if (n < 0 || (size_t)n >= url_len || strlen(url) > FB_WIRE_MAX_URL ||
	    strncmp(url, "tls+tcp://", 10) != 0 || strchr(url + 10, ':') == NULL)
		return fb_err_set(err, FB_RV_INVALID_PARAMETER,
		                  "the other site's replica agent must be a tls+tcp://HOST:PORT URL "
		                  "(got '%.100s')",
		                  url);
	if (req->recovery_name[0] != '\0')
		n = snprintf(name, name_len, "%s", req->recovery_name);
	else if (req->recovery_url[0] == '\0' && !is_ip_literal(host))
		n = snprintf(name, name_len, "%s", host);
	else
		n = snprintf(name, name_len, "%s", r->rset->recovery_name);
	if (n <= 0 || (size_t)n >= name_len || strlen(name) > FB_WIRE_MAX_NAME)
		return fb_err_set(err, FB_RV_INVALID_PARAMETER,
		                  "the other site's certificate name is empty or too long");
	return FB_RV_OK;
}

static uint32_t
reverse_relationship(void *arg, fb_rpc_call *call, const ProtobufCMessage *in,
                     ProtobufCMessage *out)
{
	replica                                               *r   = arg;
	const Failback__ReverseReplicationRelationshipRequest *req = (const void *)in;
	Failback__JobParams p = FAILBACK__JOB_PARAMS__INIT;
	fb_rsd              rsd;
	fb_vm              *vm;
	fb_err              err = {0};
	char                url[FB_URL_MAX], name[FB_WIRE_MAX_NAME + 1];

	if (fb_vm_get(r->db, req->vm, &vm, &err) != FB_RV_OK)
		return fb_pb_fail(call, &err);
	if (fb_rsd_parse(req->replication_setting_data, strlen(req->replication_setting_data), &rsd,
	                 &err) != FB_RV_OK ||
	    reverse_target(r, req, &rsd, url, sizeof(url), name, sizeof(name), &err) != FB_RV_OK ||
	    vmstate_check(driver_of(JT_REVERSE), vm, &err) != FB_RV_OK)
		goto fail;
	if (vm->state == FAILBACK__REPLICATION_STATE__RS_READY && vm->pending_peer[0] == '\0') {
		fb_err_set(&err, FB_RV_INVALID_STATE,
		           "VM %s is served by this host's primary agent and no reverse is pending: "
		           "reverse it from the site that receives it",
		           vm->name);
		goto fail;
	}
	p.peer_url  = url;
	p.peer_name = name;
	p.force     = req->force;
	if (req->force)
		fb_log_warn("FB5042", "ReverseReplicationRelationship of VM %s asked to force past "
		            "the generation guard", vm->name);
	return submit_params(r, call, out, vm, JT_REVERSE, "", req->replication_setting_data, &p);
fail:
	free(vm);
	return fb_pb_fail(call, &err);
}

/* Deletes the regular files in dir (the VM's recovery disks under the
 * data directory) and dir itself; returns how many files went. */
static uint64_t
delete_vm_dir(const char *dir, fb_err *err)
{
	DIR           *d = opendir(dir);
	struct dirent *e;
	uint64_t       n = 0;

	if (d == NULL) {
		if (errno != ENOENT)
			fb_err_errno(err, errno, dir);
		return 0;
	}
	while ((e = readdir(d)) != NULL) {
		char path[PATH_MAX + 256];

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (unlink(path) == 0)
			n++;
		else
			fb_err_errno(err, errno, path);
	}
	closedir(d);
	if (rmdir(dir) != 0 && err->rv == FB_RV_OK)
		fb_err_errno(err, errno, dir);
	fb_fs_fsync_dir(dir);
	return n;
}

static uint32_t
remove_vm(void *arg, fb_rpc_call *call, const ProtobufCMessage *in, ProtobufCMessage *out)
{
	replica                                  *r   = arg;
	const Failback__RemoveVirtualSystemRequest *req = (const void *)in;
	Failback__RemoveVirtualSystemResponse      *rsp = (void *)out;
	fb_rp_stats                               st  = {0};
	fb_err                                    err = {0}, derr = {0};
	fb_vm                                    *vm;
	char                                      dir[PATH_MAX];
	uint32_t                                  rv;

	if (fb_vm_get(r->db, req->vm, &vm, &err) != FB_RV_OK)
		return fb_pb_fail(call, &err);
	if (jobs_vm_busy(vm->id)) {
		rv = fb_rpc_fail(call, FB_RV_SYSTEM_IN_USE,
		                 "VM %s has a job running: cancel it or wait for it (failbackctl job "
		                 "list %s)",
		                 vm->name, vm->id);
		goto out;
	}
	if (req->delete_disks && (vm->state == FAILBACK__REPLICATION_STATE__RS_RECOVERED ||
	                          vm->state == FAILBACK__REPLICATION_STATE__RS_COMMITTED)) {
		rv = fb_rpc_fail(call, FB_RV_INVALID_STATE,
		                 "VM %s is failed over: the recovery VM runs on its disks; remove it "
		                 "without --delete-disks, or fail back first",
		                 vm->name);
		goto out;
	}
	if ((rv = replica_path_vm(r, vm->id, dir, sizeof(dir), &err)) != FB_RV_OK ||
	    (rv = fb_rp_remove_vm(r->db, r->store, vm->id, 0, &st, &err)) != FB_RV_OK) {
		rv = fb_pb_fail(call, &err);
		goto out;
	}
	/* The registry no longer names the disks: deleting them now cannot
	 * leave a VM whose disks are gone. */
	if (req->delete_disks)
		rsp->disks_deleted = delete_vm_dir(dir, &derr);
	fb_log_info("FB5043", "VM %s (%s) unregistered: %llu recovery points removed, %llu blocks "
	            "freed, %llu disk files deleted%s%s",
	            vm->name, vm->id, (unsigned long long)st.points_pruned,
	            (unsigned long long)st.blocks_freed, (unsigned long long)rsp->disks_deleted,
	            derr.rv != FB_RV_OK ? "; " : "", derr.rv != FB_RV_OK ? derr.msg : "");
	rsp->points_removed = st.points_pruned;
	rsp->blocks_freed   = st.blocks_freed;
	rv                  = FB_RV_OK;
out:
	free(vm);
	return rv;
}

const fb_rpc_method replica_control_methods[] = {
    {"InitiateFailback", initiate_failback, FB_ROLE_OPERATOR},
    {"EstimateFailback", estimate_failback, FB_ROLE_OPERATOR},
    {"InitiateFailover", initiate_failover, FB_ROLE_OPERATOR},
    {"RevertFailover", revert_failover, FB_ROLE_OPERATOR},
    {"CommitFailover", commit_failover, FB_ROLE_OPERATOR},
    {"Replicate", replicate, FB_ROLE_OPERATOR},
    {"ReverseReplicationRelationship", reverse_relationship, FB_ROLE_OPERATOR},
    {"GetVirtualSystem", get_vm, FB_ROLES_READ},
    {"ListVirtualSystems", list_vms, FB_ROLES_READ},
    {"ListRecoveryPoints", list_rps, FB_ROLES_READ},
    {"GetJob", get_job, FB_ROLES_READ},
    {"ListJobs", list_jobs, FB_ROLES_READ},
    {"RequestJobStateChange", request_job_state_change, FB_ROLE_OPERATOR},
    {"GetJobError", get_job_error, FB_ROLES_READ},
    {"RemoveVirtualSystem", remove_vm, FB_ROLE_OPERATOR},
};
const size_t replica_control_nmethods =
    sizeof(replica_control_methods) / sizeof(replica_control_methods[0]);
