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
cmd_vm_add(ctl *c, int argc, char **argv)
{
	Failback__AddVirtualSystemRequest in    = FAILBACK__ADD_VIRTUAL_SYSTEM_REQUEST__INIT;
	char                            **disks = calloc((size_t)argc + 1, sizeof(char *));
	const char                       *name  = NULL;
	int                               code;

	for (int i = 0; i < argc; i++) {
		const char *v;

		if ((v = ctl_opt(argc, argv, &i, "--history")) != NULL) {
			char *end;
			unsigned long h = strtoul(v, &end, 10);
			if (*end != '\0' || h > 24) {
				free(disks);
				return ctl_usage(&ctl_primary_cmds[0], "--history is 0 to 24");
			}
			in.recovery_history = (uint32_t)h;
		} else if ((v = ctl_opt(argc, argv, &i, "--replica-name")) != NULL) {
			in.replica_name = (char *)v;
		} else if (name == NULL && argv[i][0] != '-') {
			name = argv[i];
		} else if (argv[i][0] != '-') {
			disks[in.n_disk_paths++] = argv[i];
		} else {
			free(disks);
			return ctl_usage(&ctl_primary_cmds[0], "unexpected argument");
		}
	}
	in.name = (char *)name;
	if (name == NULL || in.n_disk_paths == 0) {
		free(disks);
		return ctl_usage(&ctl_primary_cmds[0], "name the VM and at least one disk image");
	}
	in.disk_paths = disks;
	code          = ctl_call(c, SVC, "AddVirtualSystem", &in.base, NULL);
	free(disks);
	return code;
}

static int
cmd_vm_list(ctl *c, int argc, char **argv)
{
	Failback__PrimaryListVirtualSystemsRequest in =
	    FAILBACK__PRIMARY_LIST_VIRTUAL_SYSTEMS_REQUEST__INIT;

	(void)argv;
	if (argc != 0)
		return ctl_usage(&ctl_primary_cmds[1], "takes no arguments");
	return ctl_call(c, SVC, "ListVirtualSystems", &in.base, NULL);
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
	Failback__PointJobRef ref = FAILBACK__POINT_JOB_REF__INIT;
	ProtobufCMessage     *keep = NULL;
	int                   tty  = isatty(STDERR_FILENO), code;

	ref.job = (char *)job;
	for (;;) {
		Failback__GetPointJobResponse *r   = NULL;
		fb_err                         err = {0};
		uint32_t                       rv;

		rv = fb_rpc_client_call(c->cli, SVC, "GetPointJob", &ref.base, (ProtobufCMessage **)&r,
		                        c->timeout_ms, &err);
		if (!fb_rv_ok(rv))
			return ctl_fail(c, &err);
		if (r->job == NULL || r->job->job_state >= FAILBACK__JOB_STATE__JS_COMPLETED) {
			protobuf_c_message_free_unpacked(&r->base, NULL);
			break;
		}
		if (tty)
			fprintf(stderr, "\r%3u%% %-10s %8.1f/%.1f MiB ", r->job->percent_complete,
			        r->job->phase, (double)r->job->bytes_done / (1 << 20),
			        (double)r->job->bytes_total / (1 << 20));
		protobuf_c_message_free_unpacked(&r->base, NULL);
		usleep(200000);
	}
	if (tty)
		fputc('\n', stderr);
	if ((code = ctl_call(c, SVC, "GetPointJob", &ref.base, &keep)) != CTL_EXIT_OK)
		return code;
	{
		const Failback__GetPointJobResponse *r = (const void *)keep;

		if (r->job != NULL && r->job->job_state != FAILBACK__JOB_STATE__JS_COMPLETED) {
			fprintf(stderr, "failbackctl: recovery point job %s: %s (%u): ", job,
			        fb_rv_name(r->job->error_code), r->job->error_code);
			ctl_print_text_string(stderr, r->job->error_description);
			fputc('\n', stderr);
			code = CTL_EXIT_FAILED;
		}
	}
	protobuf_c_message_free_unpacked(keep, NULL);
	return code;
}

static int
rp_job_start(ctl *c, const ProtobufCMessage *in, int wait)
{
	Failback__CreateRecoveryPointResponse *rsp = NULL;
	fb_err                                 err = {0};
	uint32_t                               rv;
	int                                    code;

	if ((rv = ctl_connect(c, &err)) != FB_RV_OK)
		return ctl_fail(c, &err);
	rv = fb_rpc_client_call(c->cli, SVC, "CreateRecoveryPoint", in, (ProtobufCMessage **)&rsp,
	                        c->timeout_ms, &err);
	if (!fb_rv_ok(rv))
		return ctl_fail(c, &err);
	if (!wait) {
		ctl_print_result(c, rv, &rsp->base);
		code = CTL_EXIT_OK;
	} else {
		code = rp_job_follow(c, rsp->job);
	}
	protobuf_c_message_free_unpacked(&rsp->base, NULL);
	return code;
}

static int
cmd_rp_job(ctl *c, int argc, char **argv)
{
	Failback__PointJobRef in = FAILBACK__POINT_JOB_REF__INIT;

	if (argc != 1)
		return ctl_usage(&ctl_primary_cmds[5], "name one job");
	in.job = argv[0];
	return ctl_call(c, SVC, "GetPointJob", &in.base, NULL);
}

static int
cmd_rp_cancel(ctl *c, int argc, char **argv)
{
	Failback__PointJobRef in = FAILBACK__POINT_JOB_REF__INIT;

	if (argc != 1)
		return ctl_usage(&ctl_primary_cmds[6], "name one job");
	in.job = argv[0];
	return ctl_call(c, SVC, "CancelPointJob", &in.base, NULL);
}

static int
cmd_rp_create(ctl *c, int argc, char **argv)
{
	Failback__CreateRecoveryPointRequest in = FAILBACK__CREATE_RECOVERY_POINT_REQUEST__INIT;
	const char                          *vm = NULL;
	int                                  wait = 1;

	for (int i = 0; i < argc; i++) {
		const char *v;

		if ((v = ctl_opt(argc, argv, &i, "--type")) != NULL) {
			if (strcmp(v, "standard") == 0)
				in.type = FAILBACK__RECOVERY_POINT_TYPE__RPT_STANDARD;
			else if (strcmp(v, "application-consistent") == 0)
				in.type = FAILBACK__RECOVERY_POINT_TYPE__RPT_APPLICATION_CONSISTENT;
			else if (strcmp(v, "planned") == 0)
				in.type = FAILBACK__RECOVERY_POINT_TYPE__RPT_PLANNED;
			else
				return ctl_usage(&ctl_primary_cmds[2],
				                 "--type is standard, application-consistent or "
				                 "planned");
		} else if (strcmp(argv[i], "--no-wait") == 0) {
			wait = 0;
		} else if (vm == NULL && argv[i][0] != '-') {
			vm = argv[i];
		} else {
			return ctl_usage(&ctl_primary_cmds[2], "unexpected argument");
		}
	}
	if (vm == NULL)
		return ctl_usage(&ctl_primary_cmds[2], "name the VM");
	in.vm = (char *)vm;
	return rp_job_start(c, &in.base, wait);
}

static int
cmd_rp_list(ctl *c, int argc, char **argv)
{
	Failback__PrimaryListRecoveryPointsRequest in =
	    FAILBACK__PRIMARY_LIST_RECOVERY_POINTS_REQUEST__INIT;

	if (argc != 1)
		return ctl_usage(&ctl_primary_cmds[3], "name one VM");
	in.vm = argv[0];
	return ctl_call(c, SVC, "ListRecoveryPoints", &in.base, NULL);
}

static int
cmd_rp_remove(ctl *c, int argc, char **argv)
{
	Failback__RemoveRecoveryPointRequest in = FAILBACK__REMOVE_RECOVERY_POINT_REQUEST__INIT;

	if (argc != 2)
		return ctl_usage(&ctl_primary_cmds[4], "name the VM and the recovery point");
	in.vm                        = argv[0];
	in.recovery_point_identifier = argv[1];
	return ctl_call(c, SVC, "RemoveRecoveryPoint", &in.base, NULL);
}

const ctl_cmd ctl_primary_cmds[] = {
    {"primary-vm", "add", "NAME DISK... [--history N] [--replica-name DNS]",
     "register a VM and its raw disk images; with --replica-name, serve it only to the "
     "replica agent whose certificate carries that name",
     cmd_vm_add},
    {"primary-vm", "list", "", "VMs the primary protects", cmd_vm_list},
    {"primary-rp", "create", "VM [--type T] [--no-wait]",
     "take a recovery point (a job; waits for it unless --no-wait)", cmd_rp_create},
    {"primary-rp", "list", "VM", "the primary's recovery points of VM", cmd_rp_list},
    {"primary-rp", "remove", "VM RP", "remove a recovery point", cmd_rp_remove},
    {"primary-rp", "job", "JOB", "a recovery point job (progress; the point once completed)",
     cmd_rp_job},
    {"primary-rp", "cancel", "JOB", "stop a recovery point job (nothing is kept)", cmd_rp_cancel},
    {NULL, NULL, NULL, NULL, NULL},
};
