/*
 * cmd_replica.c - commands for the replica agent's ReplicationService:
 * VMs, recovery points, jobs, failback, failover and replication.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "replica.pb-c.h"

#define SETTINGS_MAX (64u << 10)

#define SVC (&failback__replication_service__descriptor)

static const ctl_cmd *
self(const char *group, const char *sub)
{
	for (const ctl_cmd *c = ctl_replica_cmds; c->group != NULL; c++)
		if (strcmp(c->group, group) == 0 &&
		    ((c->sub == NULL && sub == NULL) ||
		     (c->sub != NULL && sub != NULL && strcmp(c->sub, sub) == 0)))
			return c;
	return NULL;
}

static int
cmd_vm_list(ctl *c, int argc, char **argv)
{
	Failback__ListVirtualSystemsRequest in = FAILBACK__LIST_VIRTUAL_SYSTEMS_REQUEST__INIT;

	(void)argv;
	if (argc != 0)
		return ctl_usage(self("vm", "list"), "vm list takes no arguments");
	return ctl_call(c, SVC, "ListVirtualSystems", &in.base, NULL);
}

static int
cmd_vm_show(ctl *c, int argc, char **argv)
{
	Failback__VmRef in = FAILBACK__VM_REF__INIT;

	if (argc != 1)
		return ctl_usage(self("vm", "show"), "name one VM");
	in.vm = argv[0];
	return ctl_call(c, SVC, "GetVirtualSystem", &in.base, NULL);
}

static int
cmd_rp_list(ctl *c, int argc, char **argv)
{
	Failback__ListRecoveryPointsRequest in = FAILBACK__LIST_RECOVERY_POINTS_REQUEST__INIT;

	if (argc != 1)
		return ctl_usage(self("rp", "list"), "name one VM");
	in.vm = argv[0];
	return ctl_call(c, SVC, "ListRecoveryPoints", &in.base, NULL);
}

static int
cmd_job_list(ctl *c, int argc, char **argv)
{
	Failback__ListJobsRequest in = FAILBACK__LIST_JOBS_REQUEST__INIT;

	if (argc > 1)
		return ctl_usage(self("job", "list"), "name at most one VM");
	in.vm = argc == 1 ? argv[0] : "";
	return ctl_call(c, SVC, "ListJobs", &in.base, NULL);
}

static int
cmd_job_show(ctl *c, int argc, char **argv)
{
	Failback__JobRef in = FAILBACK__JOB_REF__INIT;

	if (argc != 1)
		return ctl_usage(self("job", "show"), "name one job");
	in.job = argv[0];
	return ctl_call(c, SVC, "GetJob", &in.base, NULL);
}

static int
cmd_job_error(ctl *c, int argc, char **argv)
{
	Failback__JobRef in = FAILBACK__JOB_REF__INIT;

	if (argc != 1)
		return ctl_usage(self("job", "error"), "name one job");
	in.job = argv[0];
	return ctl_call(c, SVC, "GetJobError", &in.base, NULL);
}

static int
cmd_job_cancel(ctl *c, int argc, char **argv)
{
	Failback__RequestJobStateChangeRequest in =
	    FAILBACK__REQUEST_JOB_STATE_CHANGE_REQUEST__INIT;
	const char *job = NULL;

	in.requested_state = 4; /* Terminate */
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--kill") == 0)
			in.requested_state = 5;
		else if (job == NULL && argv[i][0] != '-')
			job = argv[i];
		else
			return ctl_usage(self("job", "cancel"), "unexpected argument");
	}
	if (job == NULL)
		return ctl_usage(self("job", "cancel"), "name one job");
	in.job = (char *)job;
	return ctl_call(c, SVC, "RequestJobStateChange", &in.base, NULL);
}

/* Reads the settings string from a file or "-" (stdin), bounded. */
static char *
read_settings(const char *path)
{
	FILE  *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
	char  *buf;
	size_t n;

	if (f == NULL) {
		perror(path);
		return NULL;
	}
	if ((buf = malloc(SETTINGS_MAX + 1)) == NULL)
		return NULL;
	n = fread(buf, 1, SETTINGS_MAX + 1, f);
	if (f != stdin)
		fclose(f);
	if (n > SETTINGS_MAX) {
		fprintf(stderr, "failbackctl: %s: settings larger than %u bytes\n", path,
		        SETTINGS_MAX);
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	return buf;
}

static int
cmd_failback(ctl *c, int argc, char **argv)
{
	Failback__InitiateFailbackRequest in = FAILBACK__INITIATE_FAILBACK_REQUEST__INIT;
	const ctl_cmd *me       = self("failback", NULL);
	char          *settings = NULL;
	const char    *vm       = NULL;
	int            code, wait = 0;

	in.replication_setting_data  = "";
	in.recovery_point_identifier = "";
	for (int i = 0; i < argc; i++) {
		const char *v;

		if ((v = ctl_opt(argc, argv, &i, "--rp")) != NULL) {
			in.recovery_point_identifier = (char *)v;
		} else if ((v = ctl_opt(argc, argv, &i, "--settings")) != NULL) {
			free(settings);
			if ((settings = read_settings(v)) == NULL)
				return CTL_EXIT_USAGE;
			in.replication_setting_data = settings;
		} else if (strcmp(argv[i], "--wait") == 0) {
			wait = 1;
		} else if (strcmp(argv[i], "--force") == 0) {
			in.force = 1;
		} else if (vm == NULL && argv[i][0] != '-') {
			vm = argv[i];
		} else {
			free(settings);
			return ctl_usage(me, "unexpected argument");
		}
	}
	if (vm == NULL) {
		free(settings);
		return ctl_usage(me, "name the recovery VM");
	}
	in.vm = (char *)vm;
	code = ctl_call_and_wait(c, "InitiateFailback", &in.base, wait);
	free(settings);
	return code;
}

static int
cmd_failover(ctl *c, int argc, char **argv)
{
	Failback__InitiateFailoverRequest in = FAILBACK__INITIATE_FAILOVER_REQUEST__INIT;
	const char                       *vm = NULL;
	int                               wait = 0;

	in.recovery_point_identifier = "";
	for (int i = 0; i < argc; i++) {
		const char *v;

		if ((v = ctl_opt(argc, argv, &i, "--rp")) != NULL)
			in.recovery_point_identifier = (char *)v;
		else if (strcmp(argv[i], "--wait") == 0)
			wait = 1;
		else if (vm == NULL && argv[i][0] != '-')
			vm = argv[i];
		else
			return ctl_usage(self("failover", NULL), "unexpected argument");
	}
	if (vm == NULL)
		return ctl_usage(self("failover", NULL), "name the VM");
	in.vm = (char *)vm;
	return ctl_call_and_wait(c, "InitiateFailover", &in.base, wait);
}

/* Takes "VM [--wait]" into *vm and *wait; returns 0 or -1. */
static int
vm_and_wait(int argc, char **argv, const char **vm, int *wait)
{
	*vm   = NULL;
	*wait = 0;
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--wait") == 0)
			*wait = 1;
		else if (*vm == NULL && argv[i][0] != '-')
			*vm = argv[i];
		else
			return -1;
	}
	return *vm != NULL ? 0 : -1;
}

static int
cmd_vm_method(ctl *c, int argc, char **argv, const char *group, const char *sub,
              const char *method)
{
	Failback__VmRef in = FAILBACK__VM_REF__INIT;
	const char     *vm;
	int             wait;

	if (vm_and_wait(argc, argv, &vm, &wait) != 0)
		return ctl_usage(self(group, sub), "name one VM");
	in.vm = (char *)vm;
	return ctl_call_and_wait(c, method, &in.base, wait);
}

static int
cmd_revert(ctl *c, int argc, char **argv)
{
	return cmd_vm_method(c, argc, argv, "failover-revert", NULL, "RevertFailover");
}

static int
cmd_commit(ctl *c, int argc, char **argv)
{
	return cmd_vm_method(c, argc, argv, "failover-commit", NULL, "CommitFailover");
}

static int
cmd_replicate(ctl *c, int argc, char **argv)
{
	Failback__ReplicateRequest in = FAILBACK__REPLICATE_REQUEST__INIT;
	const char                *vm = NULL;
	int                        wait = 0;

	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--wait") == 0)
			wait = 1;
		else if (strcmp(argv[i], "--force") == 0)
			in.force = 1;
		else if (vm == NULL && argv[i][0] != '-')
			vm = argv[i];
		else
			return ctl_usage(self("replicate", NULL), "unexpected argument");
	}
	if (vm == NULL)
		return ctl_usage(self("replicate", NULL), "name one VM");
	in.vm = (char *)vm;
	return ctl_call_and_wait(c, "Replicate", &in.base, wait);
}

static int
cmd_reverse(ctl *c, int argc, char **argv)
{
	Failback__ReverseReplicationRelationshipRequest in =
	    FAILBACK__REVERSE_REPLICATION_RELATIONSHIP_REQUEST__INIT;
	const ctl_cmd *me       = self("reverse", NULL);
	char          *settings = NULL;
	const char    *vm       = NULL;
	int            code, wait = 0;

	in.replication_setting_data = "";
	in.recovery_url             = "";
	in.recovery_name            = "";
	for (int i = 0; i < argc; i++) {
		const char *v;

		if ((v = ctl_opt(argc, argv, &i, "--to")) != NULL) {
			in.recovery_url = (char *)v;
		} else if ((v = ctl_opt(argc, argv, &i, "--to-name")) != NULL) {
			in.recovery_name = (char *)v;
		} else if ((v = ctl_opt(argc, argv, &i, "--settings")) != NULL) {
			free(settings);
			if ((settings = read_settings(v)) == NULL)
				return CTL_EXIT_USAGE;
			in.replication_setting_data = settings;
		} else if (strcmp(argv[i], "--wait") == 0) {
			wait = 1;
		} else if (strcmp(argv[i], "--force") == 0) {
			in.force = 1;
		} else if (vm == NULL && argv[i][0] != '-') {
			vm = argv[i];
		} else {
			free(settings);
			return ctl_usage(me, "unexpected argument");
		}
	}
	if (vm == NULL || (in.recovery_url[0] == '\0' && settings == NULL)) {
		free(settings);
		return ctl_usage(me, vm == NULL ? "name the VM"
		                                : "name the other site's replica agent (--to URL, or "
		                                  "--settings with a RecoveryConnectionPoint)");
	}
	in.vm = (char *)vm;
	code  = ctl_call_and_wait(c, "ReverseReplicationRelationship", &in.base, wait);
	free(settings);
	return code;
}

const ctl_cmd ctl_replica_cmds[] = {
    {"vm", "list", "", "VMs the replica holds", cmd_vm_list},
    {"vm", "show", "VM", "one VM, with the paths of its disks", cmd_vm_show},
    {"rp", "list", "VM", "recovery points the replica holds for VM", cmd_rp_list},
    {"job", "list", "[VM]", "jobs (of one VM)", cmd_job_list},
    {"job", "show", "JOB", "one job (CIM_ConcreteJob fields and progress)", cmd_job_show},
    {"job", "error", "JOB", "why a job failed (GetError)", cmd_job_error},
    {"job", "cancel", "JOB [--kill]", "terminate (or kill) a job", cmd_job_cancel},
    {"failback", NULL, "VM [--rp ID] [--settings F|-] [--force] [--wait]",
     "InitiateFailback: resync VM's disks here to a point of its primary", cmd_failback},
    {"reverse", NULL, "VM --to URL [--to-name N] [--settings F|-] [--force] [--wait]",
     "ReverseReplicationRelationship: this host's primary serves VM, the replica agent at "
     "URL (agents' listener) receives it",
     cmd_reverse},
    {"failover", NULL, "VM [--rp ID] [--wait]", "InitiateFailover to a recovery point",
     cmd_failover},
    {"failover-revert", NULL, "VM [--wait]", "RevertFailover: discard the failover",
     cmd_revert},
    {"failover-commit", NULL, "VM [--wait]", "CommitFailover: keep only the failed-over point",
     cmd_commit},
    {"replicate", NULL, "VM [--force] [--wait]",
     "pull VM's newest recovery point from the primary", cmd_replicate},
    {NULL, NULL, NULL, NULL, NULL},
};
