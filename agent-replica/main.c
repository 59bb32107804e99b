/*
 * main.c - failback-replica: the agent on the replica (recovery) host.
 *
 * It holds the replicated copy and the recovery VM, accepts
 * InitiateFailback and the other replication methods (ReplicationService,
 * control listener; read-only methods also on the monitor listener), runs
 * them as jobs and publishes their progress on the events listener. With
 * --worker-job it is instead one job's supervised transfer worker.
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "failback/log.h"
#include "replica.h"
#include "replica.pb-c.h"

static replica the_replica;

static uint32_t
replica_open(fb_agent *agent, fb_err *err)
{
	char     path[4200];
	uint32_t rv;

	the_replica.agent = agent;
	the_replica.set   = fb_agent_settings_get(agent);
	snprintf(the_replica.dir, sizeof(the_replica.dir), "%s", the_replica.set->data_dir);
	snprintf(path, sizeof(path), "%s/state.db", the_replica.dir);
	if ((rv = fb_db_open(&the_replica.db, path, err)) != FB_RV_OK)
		return rv;
	snprintf(path, sizeof(path), "%s/blocks", the_replica.dir);
	return fb_store_open(&the_replica.store, the_replica.db, path, 0, err);
}

static uint32_t
replica_setup(fb_agent *agent, fb_rpc_registry *reg, fb_err *err)
{
	char     path[4200];
	uint32_t rv;

	if ((rv = replica_open(agent, err)) != FB_RV_OK)
		return rv;
	snprintf(path, sizeof(path), "%s/vms", the_replica.dir);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/undo", the_replica.dir);
	mkdir(path, 0700);
	if ((rv = fb_rpc_registry_add(reg, &failback__replication_service__descriptor,
	                              replica_control_methods, replica_control_nmethods,
	                              &the_replica, err)) != FB_RV_OK)
		return rv;
	return jobs_start(&the_replica, err);
}

static void
replica_worker(fb_agent *agent, const char *job)
{
	the_replica.agent = agent;
	the_replica.set   = fb_agent_settings_get(agent);
	snprintf(the_replica.dir, sizeof(the_replica.dir), "%s", the_replica.set->data_dir);
	worker_main(&the_replica, job);
}

int
main(int argc, char **argv)
{
	fb_agent_main(argc, argv, FB_AGENT_REPLICA, replica_setup, replica_worker);
}
