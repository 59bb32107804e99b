/*
 * cmd_replica.c - commands for the replica agent's ReplicationService:
 * VMs, recovery points, jobs, failback, failover and replication. Lists
 * print as tables; --json prints the same data in the envelope.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ctl.h"
#include "replica.pb-c.h"

#define SVC (&failback__replication_service__descriptor)

static const char *const opt_wait_help = "follow the job to its end, with progress; exit 0 only "
                                         "if it completed";

void
ctl_vm_table(Failback__VirtualSystem *const *vms, size_t n)
{
	static const char *const heads[] = {"NAME", "STATE", "HEALTH", "DISKS", "SIZE", "GEN", "ID"};
	ctl_table               *t       = ctl_table_new(heads, 7);

	for (size_t i = 0; i < n; i++) {
		const Failback__VirtualSystem *v = vms[i];
		char                           state[64], health[32], size[16];
		uint64_t                       bytes = 0;
		const ProtobufCEnumValue      *hv    = protobuf_c_enum_descriptor_get_value(
                    &failback__replication_health__descriptor, v->replication_health);

		for (size_t d = 0; d < v->n_disks; d++)
			bytes += v->disks[d]->size_bytes;
		ctl_state_text(&failback__replication_state__descriptor, v->replication_state, state,
		               sizeof(state));
		if (hv != NULL)
			ctl_enum_name(hv, health, sizeof(health));
		else
			snprintf(health, sizeof(health), "%d", v->replication_health);
		ctl_human_bytes(size, sizeof(size), (double)bytes);
		ctl_table_cell(t, "%s", v->name);
		ctl_table_cell(t, "%s", state);
		ctl_table_cell(t, "%s", health);
		ctl_table_cell(t, "%zu", v->n_disks);
		ctl_table_cell(t, "%s", size);
		ctl_table_cell(t, "%llu", (unsigned long long)v->generation);
		ctl_table_cell(t, "%s", v->id);
	}
	ctl_table_print(t, stdout);
}

void
ctl_rp_table(Failback__RecoveryPoint *const *rps, size_t n)
{
	static const char *const heads[] = {"ID", "TIME", "TYPE", "DISKS", "SIZE", "BLOCKS HELD"};
	ctl_table               *t       = ctl_table_new(heads, 6);

	for (size_t i = 0; i < n; i++) {
		const Failback__RecoveryPoint *p = rps[i];
		const ProtobufCEnumValue      *tv =
		    protobuf_c_enum_descriptor_get_value(&failback__recovery_point_type__descriptor,
		                                         p->type);
		char     when[40], type[40], size[16];
		uint64_t bytes = 0;

		for (size_t d = 0; d < p->n_disks; d++)
			bytes += p->disks[d]->size_bytes;
		ctl_iso_time(p->time_unix_ms, when, sizeof(when));
		if (tv != NULL)
			ctl_enum_name(tv, type, sizeof(type));
		else
			snprintf(type, sizeof(type), "%d", p->type);
		ctl_human_bytes(size, sizeof(size), (double)bytes);
		ctl_table_cell(t, "%s", p->id);
		ctl_table_cell(t, "%s", when);
		ctl_table_cell(t, "%s", type);
		ctl_table_cell(t, "%zu", p->n_disks);
		ctl_table_cell(t, "%s", size);
		/* A history point is held as ids and roots: its blocks are elsewhere. */
		ctl_table_cell(t, "%s", p->history ? "elsewhere (history)" : "here");
	}
	ctl_table_print(t, stdout);
}

void
ctl_job_table(Failback__Job *const *jobs, size_t n, Failback__VirtualSystem *const *names,
              size_t nnames)
{
	static const char *const heads[] = {"JOB ID", "TYPE",  "STATE",    "PHASE",
	                                    "%",      "VM",    "SUBMITTED", "ERROR"};
	ctl_table               *t       = ctl_table_new(heads, 8);

	for (size_t i = 0; i < n; i++) {
		const Failback__Job *j  = jobs[i];
		const char          *vm = j->vm_id;
		char                 state[48], when[40];

		for (size_t k = 0; k < nnames; k++)
			if (strcasecmp(names[k]->id, j->vm_id) == 0)
				vm = names[k]->name;
		ctl_state_text(&failback__job_state__descriptor, j->job_state, state, sizeof(state));
		ctl_iso_time(j->time_submitted_unix_ms, when, sizeof(when));
		ctl_table_cell(t, "%s", j->job_id);
		ctl_table_cell(t, "%s", ctl_job_type_name(j->job_type));
		ctl_table_cell(t, "%s", state);
		ctl_table_cell(t, "%s", j->phase);
		ctl_table_cell(t, "%u", j->percent_complete);
		ctl_table_cell(t, "%s", vm);
		ctl_table_cell(t, "%s", when);
		if (j->error_code != 0)
			ctl_table_cell(t, "%s (%u)", fb_rv_name(j->error_code), j->error_code);
		else
			ctl_table_cell(t, "-");
	}
	ctl_table_print(t, stdout);
}

/* Calls a list method and prints its reply: a table, or the envelope. */
static int
list_call(ctl *c, const ProtobufCServiceDescriptor *svc, const char *method,
          const ProtobufCMessage *in, ProtobufCMessage **out)
{
	uint32_t rv;
	int      code = ctl_call_quiet(c, svc, method, in, out, &rv);

	if (code == CTL_EXIT_OK && c->json) {
		ctl_print_result(c, rv, *out);
		protobuf_c_message_free_unpacked(*out, NULL);
		*out = NULL;
	}
	return code;
}

static int
cmd_vm_list(ctl *c, const ctl_args *a)
{
	Failback__ListVirtualSystemsRequest in  = FAILBACK__LIST_VIRTUAL_SYSTEMS_REQUEST__INIT;
	Failback__ListVirtualSystemsResponse *r = NULL;
	int code = list_call(c, SVC, "ListVirtualSystems", &in.base, (ProtobufCMessage **)&r);

	(void)a;
	if (code == CTL_EXIT_OK && r != NULL) {
		ctl_vm_table(r->vms, r->n_vms);
		protobuf_c_message_free_unpacked(&r->base, NULL);
	}
	return code;
}

static int
cmd_vm_show(ctl *c, const ctl_args *a)
{
	Failback__VmRef in = FAILBACK__VM_REF__INIT;

	in.vm = a->argv[0];
	return ctl_call(c, SVC, "GetVirtualSystem", &in.base, NULL);
}

static int
cmd_vm_remove(ctl *c, const ctl_args *a)
{
	Failback__RemoveVirtualSystemRequest in = FAILBACK__REMOVE_VIRTUAL_SYSTEM_REQUEST__INIT;

	in.vm           = a->argv[0];
	in.delete_disks = ctl_arg(a, "delete-disks") != NULL;
	return ctl_call(c, SVC, "RemoveVirtualSystem", &in.base, NULL);
}

static int
cmd_rp_list(ctl *c, const ctl_args *a)
{
	Failback__ListRecoveryPointsRequest in  = FAILBACK__LIST_RECOVERY_POINTS_REQUEST__INIT;
	Failback__ListRecoveryPointsResponse *r = NULL;
	int                                   code;

	in.vm = a->argv[0];
	code  = list_call(c, SVC, "ListRecoveryPoints", &in.base, (ProtobufCMessage **)&r);
	if (code == CTL_EXIT_OK && r != NULL) {
		ctl_rp_table(r->points, r->n_points);
		protobuf_c_message_free_unpacked(&r->base, NULL);
	}
	return code;
}

static int
cmd_job_list(ctl *c, const ctl_args *a)
{
	Failback__ListJobsRequest             in  = FAILBACK__LIST_JOBS_REQUEST__INIT;
	Failback__ListVirtualSystemsRequest   vin = FAILBACK__LIST_VIRTUAL_SYSTEMS_REQUEST__INIT;
	Failback__ListJobsResponse           *r   = NULL;
	Failback__ListVirtualSystemsResponse *v   = NULL;
	int                                   code;

	in.vm = a->argc == 1 ? a->argv[0] : "";
	code  = list_call(c, SVC, "ListJobs", &in.base, (ProtobufCMessage **)&r);
	if (code != CTL_EXIT_OK || r == NULL)
		return code;
	/* The VM column shows names; a VM the agent no longer lists shows its GUID. */
	{
		fb_err            err = {0};
		ProtobufCMessage *m   = NULL;

		if (fb_rpc_client_call(c->cli, SVC, "ListVirtualSystems", &vin.base, &m, c->timeout_ms,
		                       &err) == FB_RV_OK)
			v = (Failback__ListVirtualSystemsResponse *)m;
	}
	ctl_job_table(r->jobs, r->n_jobs, v ? v->vms : NULL, v ? v->n_vms : 0);
	if (v != NULL)
		protobuf_c_message_free_unpacked(&v->base, NULL);
	protobuf_c_message_free_unpacked(&r->base, NULL);
	return code;
}

static int
cmd_job_show(ctl *c, const ctl_args *a)
{
	Failback__JobRef in = FAILBACK__JOB_REF__INIT;

	in.job = a->argv[0];
	return ctl_call(c, SVC, "GetJob", &in.base, NULL);
}

static int
cmd_job_error(ctl *c, const ctl_args *a)
{
	Failback__JobRef in = FAILBACK__JOB_REF__INIT;

	in.job = a->argv[0];
	return ctl_call(c, SVC, "GetJobError", &in.base, NULL);
}

static int
cmd_job_cancel(ctl *c, const ctl_args *a)
{
	Failback__RequestJobStateChangeRequest in =
	    FAILBACK__REQUEST_JOB_STATE_CHANGE_REQUEST__INIT;

	in.requested_state = ctl_arg(a, "kill") != NULL ? 5 : 4; /* Kill : Terminate */
	in.job             = a->argv[0];
	return ctl_call(c, SVC, "RequestJobStateChange", &in.base, NULL);
}

/* The --settings option's text, or "" (*owned is what to free). */
static int
settings_of(const ctl_args *a, char **owned)
{
	const char *path = ctl_arg(a, "settings");

	*owned = NULL;
	if (path == NULL)
		return 0;
	if ((*owned = ctl_read_settings(path)) == NULL)
		return -1;
	return 0;
}

static int
cmd_failback(ctl *c, const ctl_args *a)
{
	Failback__InitiateFailbackRequest in = FAILBACK__INITIATE_FAILBACK_REQUEST__INIT;
	const char                       *rp = ctl_arg(a, "rp");
	char                             *settings;
	int                               code;

	if (settings_of(a, &settings) != 0)
		return CTL_EXIT_USAGE;
	in.vm                        = a->argv[0];
	in.recovery_point_identifier = rp != NULL ? (char *)rp : "";
	in.replication_setting_data  = settings != NULL ? settings : "";
	in.force                     = ctl_arg(a, "force") != NULL;
	in.verify = ctl_arg(a, "verify") != NULL ? (char *)ctl_arg(a, "verify") : "";
	if (strcmp(in.verify, "") != 0 && strcmp(in.verify, "fast") != 0 &&
	    strcmp(in.verify, "full") != 0) {
		free(settings);
		return ctl_usage(a->cmd, "--verify is fast or full (got '%s')", in.verify);
	}
	code = ctl_call_and_wait(c, "InitiateFailback", &in.base, ctl_arg(a, "wait") != NULL);
	free(settings);
	return code;
}

static int
cmd_estimate(ctl *c, const ctl_args *a)
{
	Failback__InitiateFailbackRequest in = FAILBACK__INITIATE_FAILBACK_REQUEST__INIT;
	const char                       *rp = ctl_arg(a, "rp");
	char                             *settings;
	int                               code;

	if (settings_of(a, &settings) != 0)
		return CTL_EXIT_USAGE;
	in.vm                        = a->argv[0];
	in.recovery_point_identifier = rp != NULL ? (char *)rp : "";
	in.replication_setting_data  = settings != NULL ? settings : "";
	code = ctl_call_and_wait(c, "EstimateFailback", &in.base, ctl_arg(a, "no-wait") == NULL);
	free(settings);
	return code;
}

static int
cmd_failover(ctl *c, const ctl_args *a)
{
	Failback__InitiateFailoverRequest in = FAILBACK__INITIATE_FAILOVER_REQUEST__INIT;
	const char                       *rp = ctl_arg(a, "rp");

	in.vm                        = a->argv[0];
	in.recovery_point_identifier = rp != NULL ? (char *)rp : "";
	return ctl_call_and_wait(c, "InitiateFailover", &in.base, ctl_arg(a, "wait") != NULL);
}

static int
cmd_revert(ctl *c, const ctl_args *a)
{
	Failback__VmRef in = FAILBACK__VM_REF__INIT;

	in.vm = a->argv[0];
	return ctl_call_and_wait(c, "RevertFailover", &in.base, ctl_arg(a, "wait") != NULL);
}

static int
cmd_commit(ctl *c, const ctl_args *a)
{
	Failback__VmRef in = FAILBACK__VM_REF__INIT;

	in.vm = a->argv[0];
	return ctl_call_and_wait(c, "CommitFailover", &in.base, ctl_arg(a, "wait") != NULL);
}

static int
cmd_replicate(ctl *c, const ctl_args *a)
{
	Failback__ReplicateRequest in = FAILBACK__REPLICATE_REQUEST__INIT;
	const char *from = ctl_arg(a, "from"), *name = ctl_arg(a, "from-name"),
	           *pin = ctl_arg(a, "thumbprint");
	char       *settings;
	int         code;

	if ((name != NULL || pin != NULL) && from == NULL)
		return ctl_usage(a->cmd, "--from-name and --thumbprint go with --from");
	if (settings_of(a, &settings) != 0)
		return CTL_EXIT_USAGE;
	in.vm                       = a->argv[0];
	in.force                    = ctl_arg(a, "force") != NULL;
	in.primary_url              = from != NULL ? (char *)from : "";
	in.primary_name             = name != NULL ? (char *)name : "";
	in.thumbprint               = pin != NULL ? (char *)pin : "";
	in.replication_setting_data = settings != NULL ? settings : "";
	code = ctl_call_and_wait(c, "Replicate", &in.base, ctl_arg(a, "wait") != NULL);
	free(settings);
	return code;
}

static int
cmd_reverse(ctl *c, const ctl_args *a)
{
	Failback__ReverseReplicationRelationshipRequest in =
	    FAILBACK__REVERSE_REPLICATION_RELATIONSHIP_REQUEST__INIT;
	const char *to = ctl_arg(a, "to"), *to_name = ctl_arg(a, "to-name");
	char       *settings;
	int         code;

	if (settings_of(a, &settings) != 0)
		return CTL_EXIT_USAGE;
	if (to == NULL && settings == NULL)
		return ctl_usage(a->cmd, "name the other site's replica agent (--to URL, or "
		                         "--settings with a RecoveryConnectionPoint)");
	in.vm                       = a->argv[0];
	in.recovery_url             = to != NULL ? (char *)to : "";
	in.recovery_name            = to_name != NULL ? (char *)to_name : "";
	in.replication_setting_data = settings != NULL ? settings : "";
	in.force                    = ctl_arg(a, "force") != NULL;
	code = ctl_call_and_wait(c, "ReverseReplicationRelationship", &in.base,
	                         ctl_arg(a, "wait") != NULL);
	free(settings);
	return code;
}

#define OPT_WAIT  {"wait", NULL, opt_wait_help}
#define OPT_FORCE {"force", NULL, "go past the generation guard (logged on both agents)"}
#define OPT_SETTINGS                                                                          \
	{"settings", "FILE|-",                                                                 \
	 "a Msvm_ReplicationSettingData instance (CIM-XML; UTF-8, or UTF-16 with its BOM)"}

const ctl_cmd ctl_replica_cmds[] = {
    {"vm", "list", "", 0, 0, {{0}}, "VMs the replica holds (a table)", cmd_vm_list},
    {"vm", "show", "VM", 1, 1, {{0}}, "one VM, with the paths of its disks", cmd_vm_show},
    {"vm", "remove", "VM", 1, 1,
     {{"delete-disks", NULL, "also delete the recovery disks under the data directory"}},
     "unregister a VM from the replica: its points, jobs and relationship (Remove-VMReplication)",
     cmd_vm_remove},
    {"rp", "list", "VM", 1, 1, {{0}}, "recovery points the replica holds for VM (a table)",
     cmd_rp_list},
    {"job", "list", "[VM]", 0, 1, {{0}}, "jobs (of one VM; a table)", cmd_job_list},
    {"job", "show", "JOB", 1, 1, {{0}}, "one job (CIM_ConcreteJob fields and progress)",
     cmd_job_show},
    {"job", "error", "JOB", 1, 1, {{0}}, "why a job failed (GetError)", cmd_job_error},
    {"job", "cancel", "JOB", 1, 1, {{"kill", NULL, "kill instead of terminate (no rollback wait)"}},
     "terminate (or kill) a job", cmd_job_cancel},
    {"job", "wait", "JOB", 1, 1, {{0}},
     "wait for a job, with progress; exit 0 only if it completed", ctl_cmd_job_wait},
    {"failback", NULL, "VM", 1, 1,
     {{"rp", "ID", "the primary's recovery point (default: its newest)"},
      OPT_SETTINGS,
      OPT_FORCE,
      {"verify", "MODE",
       "fast (trust the compare: re-read only dirty blocks it did not write) or full "
       "(re-read the whole disk); default: the agent's verify_mode"},
      OPT_WAIT},
     "InitiateFailback: resync VM's disks here to a point of its primary", cmd_failback},
    {"estimate", NULL, "VM", 1, 1,
     {{"rp", "ID", "the primary's recovery point (default: its newest)"},
      OPT_SETTINGS,
      {"no-wait", NULL, "answer with the job at once"}},
     "EstimateFailback: how many blocks a failback would move and how long it would take; "
     "reads the disks and walks the trees, changes nothing",
     cmd_estimate},
    {"reverse", NULL, "VM", 1, 1,
     {{"to", "URL", "the other site's replica agent (its agents' listener)"},
      {"to-name", "NAME", "the DNS name in that agent's certificate"},
      OPT_SETTINGS,
      OPT_FORCE,
      OPT_WAIT},
     "ReverseReplicationRelationship: this host's primary serves VM, the replica agent at "
     "URL receives it",
     cmd_reverse},
    {"failover", NULL, "VM", 1, 1,
     {{"rp", "ID", "the recovery point (default: the newest)"}, OPT_WAIT},
     "InitiateFailover to a recovery point", cmd_failover},
    {"failover-revert", NULL, "VM", 1, 1, {OPT_WAIT}, "RevertFailover: discard the failover",
     cmd_revert},
    {"failover-commit", NULL, "VM", 1, 1, {OPT_WAIT},
     "CommitFailover: keep only the failed-over point", cmd_commit},
    {"replicate", NULL, "VM", 1, 1,
     {{"from", "URL",
       "the VM's primary agent (its resync listener, tls+tcp://HOST:PORT); recorded as the "
       "VM's primary once this replication pulls. Default: the VM's recorded primary, else "
       "the agent's peer_url"},
      {"from-name", "NAME", "the DNS name in that primary's certificate (default: HOST)"},
      {"thumbprint", "HEX",
       "pin that primary's certificate (SHA-1 or SHA-256): every later job refuses another"},
      OPT_SETTINGS,
      OPT_FORCE,
      OPT_WAIT},
     "pull VM's newest recovery point from its primary (enables replication of a VM new here)",
     cmd_replicate},
    {0},
};
