/*
 * main.c - failback-replica: the agent on the replica (recovery) host.
 *
 * It holds the replicated copy and the recovery VM, accepts
 * InitiateFailback and the other replication methods (ReplicationService,
 * control listener; read-only methods also on the monitor listener), runs
 * them as jobs and publishes their progress on the events listener. Every
 * method has its role set decided here, including the ones not built yet,
 * which answer Not Supported.
 */
#include "failback/agent.h"
#include "replica.pb-c.h"

static const fb_rpc_method replica_methods[] = {
    {"InitiateFailback", NULL, FB_ROLE_OPERATOR},
    {"InitiateFailover", NULL, FB_ROLE_OPERATOR},
    {"RevertFailover", NULL, FB_ROLE_OPERATOR},
    {"CommitFailover", NULL, FB_ROLE_OPERATOR},
    {"Replicate", NULL, FB_ROLE_OPERATOR},
    {"GetVirtualSystem", NULL, FB_ROLES_READ},
    {"ListVirtualSystems", NULL, FB_ROLES_READ},
    {"ListRecoveryPoints", NULL, FB_ROLES_READ},
    {"GetJob", NULL, FB_ROLES_READ},
    {"ListJobs", NULL, FB_ROLES_READ},
    {"RequestJobStateChange", NULL, FB_ROLE_OPERATOR},
    {"GetJobError", NULL, FB_ROLES_READ},
};

static uint32_t
replica_setup(fb_agent *agent, fb_rpc_registry *reg, fb_err *err)
{
	return fb_rpc_registry_add(reg, &failback__replication_service__descriptor,
	                           replica_methods,
	                           sizeof(replica_methods) / sizeof(replica_methods[0]), agent,
	                           err);
}

int
main(int argc, char **argv)
{
	fb_agent_main(argc, argv, FB_AGENT_REPLICA, replica_setup);
}
