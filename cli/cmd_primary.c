/*
 * cmd_primary.c - commands for the primary agent's PrimaryService (point
 * --url at the primary's control listener and --server-name at its name).
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "primary.pb-c.h"

#define SVC (&failback__primary_service__descriptor)

static int
cmd_vm_add(ctl *c, const ctl_args *a)
{
	Failback__AddVirtualSystemRequest in      = FAILBACK__ADD_VIRTUAL_SYSTEM_REQUEST__INIT;
	const char                       *history = ctl_arg(a, "history");
	const char                       *rname   = ctl_arg(a, "replica-name");
	const char                       *format  = ctl_arg(a, "format");

	if (history != NULL) {
		char         *end;
		unsigned long h = strtoul(history, &end, 10);

		if (*end != '\0' || history[0] == '\0' || history[0] == '-' || h > 24)
			return ctl_usage(a->cmd, "--history is 0 to 24 (got '%s')", history);
		in.recovery_history = (uint32_t)h;
	}
	in.replica_name = rname != NULL ? (char *)rname : "";
	in.disk_format  = format != NULL ? (char *)format : "";
	in.name         = a->argv[0];
	in.disk_paths   = a->argv + 1;
	in.n_disk_paths = (size_t)a->argc - 1;
	return ctl_call(c, SVC, "AddVirtualSystem", &in.base, NULL);
}

static int
cmd_vm_list(ctl *c, const ctl_args *a)
{
	Failback__PrimaryListVirtualSystemsRequest in =
	    FAILBACK__PRIMARY_LIST_VIRTUAL_SYSTEMS_REQUEST__INIT;
	Failback__PrimaryListVirtualSystemsResponse *r = NULL;
	uint32_t                                     rv;
	int code = ctl_call_quiet(c, SVC, "ListVirtualSystems", &in.base, (ProtobufCMessage **)&r,
	                          &rv);

	(void)a;
	if (code != CTL_EXIT_OK)
		return code;
	if (c->json)
		ctl_print_result(c, rv, &r->base);
	else
		ctl_vm_table(r->vms, r->n_vms);
	protobuf_c_message_free_unpacked(&r->base, NULL);
	return code;
}

static int
cmd_vm_remove(ctl *c, const ctl_args *a)
{
	Failback__PrimaryRemoveVirtualSystemRequest in =
	    FAILBACK__PRIMARY_REMOVE_VIRTUAL_SYSTEM_REQUEST__INIT;

	in.vm    = a->argv[0];
	in.force = ctl_arg(a, "force") != NULL;
	return ctl_call(c, SVC, "RemoveVirtualSystem", &in.base, NULL);
}

/*
 * Taking a point is a job on the primary: CreateRecoveryPoint answers 4096
 * with its reference; unless --no-wait, the job is followed with short
 * GetPointJob calls (progress on a terminal) and its end is printed, the
 * point with it. Exit 0 only when the job completed.
 */
static int
rp_job_follow(ctl *c, const char *job)
{
	Failback__PointJobRef          ref = FAILBACK__POINT_JOB_REF__INIT;
	Failback__GetPointJobResponse *r   = NULL;
	int                            tty = isatty(STDERR_FILENO) && !c->json, ok;

	ref.job = (char *)job;
	for (;;) {
		fb_err   err = {0};
		uint32_t rv;

		rv = fb_rpc_client_call(c->cli, SVC, "GetPointJob", &ref.base, (ProtobufCMessage **)&r,
		                        c->timeout_ms, &err);
		if (!fb_rv_ok(rv))
			return ctl_fail(c, &err);
		if (r->job == NULL || r->job->job_state >= FAILBACK__JOB_STATE__JS_COMPLETED)
			break;
		if (tty)
			fprintf(stderr, "\r%3u%% %-10s %8.1f/%.1f MiB ", r->job->percent_complete,
			        r->job->phase, (double)r->job->bytes_done / (1 << 20),
			        (double)r->job->bytes_total / (1 << 20));
		protobuf_c_message_free_unpacked(&r->base, NULL);
		usleep(200000);
	}
	if (tty) { /* the line as the job ended, not its last redraw */
		if (r->job != NULL)
			fprintf(stderr, "\r%3u%% %-10s %8.1f/%.1f MiB ", r->job->percent_complete,
			        r->job->phase, (double)r->job->bytes_done / (1 << 20),
			        (double)r->job->bytes_total / (1 << 20));
		fputc('\n', stderr);
	}
	ok = r->job != NULL && r->job->job_state == FAILBACK__JOB_STATE__JS_COMPLETED;
	if (c->json) {
		ctl_envelope_open(c, ok, ok ? FB_RV_OK : r->job != NULL && r->job->error_code ? r->job->error_code : FB_RV_FAILED);
		ctl_print_json(stdout, &r->base);
		ctl_envelope_close(c, ok || r->job == NULL ? NULL : r->job->error_description);
	} else {
		ctl_print_text(stdout, &r->base, 0);
		if (!ok && r->job != NULL) {
			fprintf(stderr, "failbackctl: recovery point job %s: %s (%u): ", job,
			        fb_rv_name(r->job->error_code), r->job->error_code);
			ctl_print_text_string(stderr, r->job->error_description);
			fputc('\n', stderr);
		}
	}
	protobuf_c_message_free_unpacked(&r->base, NULL);
	return ok ? CTL_EXIT_OK : CTL_EXIT_FAILED;
}

static int
cmd_rp_create(ctl *c, const ctl_args *a)
{
	Failback__CreateRecoveryPointRequest   in   = FAILBACK__CREATE_RECOVERY_POINT_REQUEST__INIT;
	Failback__CreateRecoveryPointResponse *rsp  = NULL;
	const char                            *type = ctl_arg(a, "type");
	uint32_t                               rv;
	int                                    code;

	if (type == NULL || strcmp(type, "standard") == 0)
		in.type = FAILBACK__RECOVERY_POINT_TYPE__RPT_STANDARD;
	else if (strcmp(type, "application-consistent") == 0)
		in.type = FAILBACK__RECOVERY_POINT_TYPE__RPT_APPLICATION_CONSISTENT;
	else if (strcmp(type, "planned") == 0)
		in.type = FAILBACK__RECOVERY_POINT_TYPE__RPT_PLANNED;
	else
		return ctl_usage(a->cmd, "--type is standard, application-consistent or planned "
		                         "(got '%s')",
		                 type);
	in.vm        = a->argv[0];
	in.full_scan = ctl_arg(a, "full-scan") != NULL;
	if ((code = ctl_call_quiet(c, SVC, "CreateRecoveryPoint", &in.base,
	                           (ProtobufCMessage **)&rsp, &rv)) != CTL_EXIT_OK)
		return code;
	if (ctl_arg(a, "no-wait") != NULL)
		ctl_print_result(c, rv, &rsp->base);
	else
		code = rp_job_follow(c, rsp->job_id);
	protobuf_c_message_free_unpacked(&rsp->base, NULL);
	return code;
}

static int
cmd_rp_job(ctl *c, const ctl_args *a)
{
	Failback__PointJobRef in = FAILBACK__POINT_JOB_REF__INIT;

	in.job = a->argv[0];
	return ctl_call(c, SVC, "GetPointJob", &in.base, NULL);
}

static int
cmd_rp_cancel(ctl *c, const ctl_args *a)
{
	Failback__PointJobRef in = FAILBACK__POINT_JOB_REF__INIT;

	in.job = a->argv[0];
	return ctl_call(c, SVC, "CancelPointJob", &in.base, NULL);
}

static int
cmd_rp_list(ctl *c, const ctl_args *a)
{
	Failback__PrimaryListRecoveryPointsRequest in =
	    FAILBACK__PRIMARY_LIST_RECOVERY_POINTS_REQUEST__INIT;
	Failback__PrimaryListRecoveryPointsResponse *r = NULL;
	uint32_t                                     rv;
	int                                          code;

	in.vm = a->argv[0];
	code  = ctl_call_quiet(c, SVC, "ListRecoveryPoints", &in.base, (ProtobufCMessage **)&r, &rv);
	if (code != CTL_EXIT_OK)
		return code;
	if (c->json)
		ctl_print_result(c, rv, &r->base);
	else
		ctl_rp_table(r->points, r->n_points);
	protobuf_c_message_free_unpacked(&r->base, NULL);
	return code;
}

static int
cmd_rp_remove(ctl *c, const ctl_args *a)
{
	Failback__RemoveRecoveryPointRequest in = FAILBACK__REMOVE_RECOVERY_POINT_REQUEST__INIT;

	in.vm                        = a->argv[0];
	in.recovery_point_identifier = a->argv[1];
	return ctl_call(c, SVC, "RemoveRecoveryPoint", &in.base, NULL);
}

const ctl_cmd ctl_primary_cmds[] = {
    {"primary-vm", "add", "NAME DISK...", 2, -1,
     {{"history", "N", "RecoveryHistory: 0 to 24 extra points kept"},
      {"replica-name", "DNS",
       "serve it only to the replica agent whose certificate carries that name"},
      {"format", "FMT",
       "the disks' image format: raw (default), or qcow2, vhdx, vmdk, vpc (read through "
       "qemu-nbd; never guessed from the file)"}},
     "register a VM and its disk images (absolute paths)", cmd_vm_add},
    {"primary-vm", "list", "", 0, 0, {{0}}, "VMs the primary protects (a table)", cmd_vm_list},
    {"primary-vm", "remove", "VM", 1, 1,
     {{"force", NULL, "even if a replica agent pulled one of its points in the last 10 minutes"}},
     "unregister a VM and drop its recovery points (its disks stay as they are)",
     cmd_vm_remove},
    {"primary-rp", "create", "VM", 1, 1,
     {{"type", "T", "standard, application-consistent or planned"},
      {"full-scan", NULL,
       "read every disk whole even where its dirty bitmap could be believed "
       "(change_tracking = qcow2)"},
      {"no-wait", NULL, "answer with the job at once"}},
     "take a recovery point (a job; waits for it unless --no-wait)", cmd_rp_create},
    {"primary-rp", "list", "VM", 1, 1, {{0}}, "the primary's recovery points of VM (a table)",
     cmd_rp_list},
    {"primary-rp", "remove", "VM RP", 2, 2, {{0}}, "remove a recovery point", cmd_rp_remove},
    {"primary-rp", "job", "JOB", 1, 1, {{0}},
     "a recovery point job (progress; the point once completed)", cmd_rp_job},
    {"primary-rp", "cancel", "JOB", 1, 1, {{0}}, "stop a recovery point job (nothing is kept)",
     cmd_rp_cancel},
    {0},
};
