/*
 * main.c - failback-replica: the agent on the replica (recovery) host.
 *
 * It holds the replicated copy and the recovery VM, accepts
 * InitiateFailback and the other replication methods (ReplicationService,
 * control listener; read-only methods also on the monitor listener), runs
 * them as jobs and publishes their progress on the events listener. The
 * other site's replica agent asks it, on the agents' listener, to take a
 * VM's disks in place when their relationship is reversed. With
 * --worker-job it is instead one job's supervised transfer worker
 * (worker.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "failback/log.h"
#include "replica.h"
#include "failback/tracker.h"
#include "relationship.pb-c.h"
#include "replica.pb-c.h"
#include "wire_limits.h"
#include "worker.h"

static replica          the_replica;
static replica_settings the_settings;

static const fb_config_key replica_keys[] = {
    {"peer_url", &the_settings.peer_url, "the default primary's resync URL (default tls+tcp://127.0.0.1:7413)"},
    {"peer_name", &the_settings.peer_name, "DNS name in its certificate (default primary.failback.test)"},
    {"max_transfer_rate", &the_settings.max_transfer_rate,
     "MiB/s a job may pull from the primary (default 0: no cap)"},
    {"local_primary_url", &the_settings.local_primary_url,
     "this host's primary agent's resync URL, as the other site reaches it (reverse)"},
    {"local_primary_name", &the_settings.local_primary_name,
     "DNS name in this host's primary agent's certificate"},
    {"recovery_name", &the_settings.recovery_name,
     "DNS name in the other site's replica agent's certificate (reverse, default)"},
    {"change_tracking", &the_settings.change_tracking,
     "off (default) or qcow2: a dirty bitmap for each recovery disk (in a qcow2 wrapper over a "
     "raw disk, in a qcow2 disk itself), so a failback reads only what the VM wrote"},
    {"verify_mode", &the_settings.verify_mode,
     "after a failback that used the bitmap: full (default: re-read the whole disk) or fast "
     "(re-read only what it wrote and the dirty blocks; trusts that nothing writes the disk "
     "around the wrapper or the job's lock)"},
    {"recovery_format", &the_settings.recovery_format,
     "raw (default) or qcow2: the format a failover writes each recovery disk in (qcow2: a "
     "standalone image the hypervisor opens as it is, written and read through qemu-nbd)"},
};

/* Fills a setting left unset with its default (NULL when memory ran out). */
static void
replica_default(char **v, const char *def)
{
	if (*v == NULL)
		*v = strdup(def);
}

static uint32_t
replica_check(fb_err *err)
{
	char *end;

	replica_default(&the_settings.peer_url, "tls+tcp://127.0.0.1:7413");
	replica_default(&the_settings.peer_name, "primary.failback.test");
	replica_default(&the_settings.max_transfer_rate, "0");
	replica_default(&the_settings.local_primary_url, "tls+tcp://127.0.0.1:7413");
	replica_default(&the_settings.local_primary_name, "primary.failback.test");
	replica_default(&the_settings.recovery_name, "replica.failback.test");
	replica_default(&the_settings.change_tracking, "off");
	replica_default(&the_settings.verify_mode, "full");
	replica_default(&the_settings.recovery_format, "raw");
	if (the_settings.change_tracking == NULL || the_settings.verify_mode == NULL ||
	    the_settings.recovery_format == NULL)
		return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
	if (strcmp(the_settings.recovery_format, "raw") != 0 &&
	    strcmp(the_settings.recovery_format, "qcow2") != 0)
		return fb_err_set(err, FB_RV_INVALID_PARAMETER,
		                  "--recovery-format: '%s' is not raw or qcow2",
		                  the_settings.recovery_format);
	if (strcmp(the_settings.change_tracking, "qcow2") != 0 &&
	    strcmp(the_settings.change_tracking, "off") != 0)
		return fb_err_set(err, FB_RV_INVALID_PARAMETER,
		                  "--change-tracking: '%s' is not qcow2 or off",
		                  the_settings.change_tracking);
	if (strcmp(the_settings.verify_mode, "fast") != 0 &&
	    strcmp(the_settings.verify_mode, "full") != 0)
		return fb_err_set(err, FB_RV_INVALID_PARAMETER, "--verify-mode: '%s' is not fast or full",
		                  the_settings.verify_mode);
	if (the_settings.peer_url == NULL || the_settings.peer_name == NULL ||
	    the_settings.max_transfer_rate == NULL || the_settings.local_primary_url == NULL ||
	    the_settings.local_primary_name == NULL || the_settings.recovery_name == NULL)
		return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
	if (strlen(the_settings.local_primary_url) > FB_WIRE_MAX_URL ||
	    strlen(the_settings.local_primary_name) > FB_WIRE_MAX_NAME ||
	    strncmp(the_settings.local_primary_url, "tls+tcp://", 10) != 0)
		return fb_err_set(err, FB_RV_INVALID_PARAMETER,
		                  "--local-primary-url must be a tls+tcp:// URL of at most %d "
		                  "characters",
		                  FB_WIRE_MAX_URL);
	(void)strtoul(the_settings.max_transfer_rate, &end, 10);
	if (*end != '\0' || the_settings.max_transfer_rate[0] == '\0' ||
	    the_settings.max_transfer_rate[0] == '-')
		return fb_err_set(err, FB_RV_INVALID_PARAMETER,
		                  "--max-transfer-rate: '%s' is not a whole number of MiB/s",
		                  the_settings.max_transfer_rate);
	return FB_RV_OK;
}

static void
replica_init(fb_agent *agent)
{
	the_replica.agent = agent;
	the_replica.set   = fb_agent_settings_get(agent);
	the_replica.rset  = &the_settings;
	snprintf(the_replica.dir, sizeof(the_replica.dir), "%s", the_replica.set->data_dir);
	the_replica.tracking = strcmp(the_settings.change_tracking, "qcow2") == 0;
}

static uint32_t
replica_setup(fb_agent *agent, fb_rpc_registry *reg, fb_err *err)
{
	char     path[4200];
	uint32_t rv;

	replica_init(agent);
	if ((rv = replica_path(&the_replica, path, sizeof(path), err, "state.db")) != FB_RV_OK ||
	    (rv = fb_db_open_schema(&the_replica.db, path, &job_store_schema, err)) != FB_RV_OK ||
	    (rv = replica_path(&the_replica, path, sizeof(path), err, "blocks")) != FB_RV_OK ||
	    (rv = fb_store_open(&the_replica.store, the_replica.db, path, 0, err)) != FB_RV_OK)
		return rv;
	for (int i = 0; i < 2; i++) {
		if ((rv = replica_path(&the_replica, path, sizeof(path), err, i ? "undo" : "vms")) !=
		    FB_RV_OK)
			return rv;
		if (mkdir(path, 0700) != 0 && errno != EEXIST)
			return fb_err_errno(err, errno, path);
	}
	local_discard_forgotten(&the_replica);
	if ((rv = fb_rpc_registry_add(reg, &failback__replication_service__descriptor,
	                              replica_control_methods, replica_control_nmethods,
	                              &the_replica, err)) != FB_RV_OK ||
	    (rv = fb_rpc_registry_add(reg, &failback__relationship_service__descriptor,
	                              replica_relationship_methods, replica_relationship_nmethods,
	                              &the_replica, err)) != FB_RV_OK)
		return rv;
	if (the_replica.tracking && !tracker_available()) {
		fb_log_warn("FB5044", "change tracking is qcow2 but qemu-img or qemu-nbd cannot be run "
		            "(install qemu-utils): recovery disks are not tracked and failbacks "
		            "compare whole disks");
		the_replica.tracking = 0;
	}
	return jobs_start(&the_replica, err);
}

static void
replica_worker(fb_agent *agent, const char *job)
{
	replica_init(agent);
	worker_main(&the_replica, job);
}

/* The job runner is part of the agent's health (watchdog, /healthz). */
static int
replica_healthy(fb_agent *agent, char *why, size_t cap)
{
	(void)agent;
	return jobs_healthy(why, cap);
}

static void
count_one(const run_view *v, int type, void *arg)
{
	(void)v;
	(void)type;
	(*(int *)arg)++;
}

/* Jobs running at a stop: their workers may outlive the agent briefly. */
static int
replica_busy(fb_agent *agent)
{
	int n = 0;

	(void)agent;
	jobs_each_running(count_one, &n);
	return n > 0;
}

static const fb_agent_spec replica_spec = {
    .prog           = "failback-replica",
    .role           = "replica",
    .listen_control = "tls+tcp://127.0.0.1:7400",
    .listen_monitor = "tls+tcp://127.0.0.1:7401",
    .listen_events  = "tls+tcp://127.0.0.1:7402",
    .listen_resync  = "tls+tcp://127.0.0.1:7403", /* agents: relationship steps */
    .listen_metrics = "http://127.0.0.1:7404",
    .keys           = replica_keys,
    .nkeys          = sizeof(replica_keys) / sizeof(replica_keys[0]),
    .check          = replica_check,
    .setup          = replica_setup,
    .worker         = replica_worker,
    .metrics        = replica_metrics,
    .healthy        = replica_healthy,
    .busy           = replica_busy,
};

int
main(int argc, char **argv)
{
	fb_agent_main(argc, argv, &replica_spec);
}
