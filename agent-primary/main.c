/*
 * main.c - failback-primary: the agent on the original primary host.
 *
 * It keeps each VM's disks and recovery points, lets operators register
 * VMs and take points (PrimaryService, control listener), and serves
 * recovery points to authorised replica agents (ResyncSource, resync
 * listener). Every method has its role set decided here, including the
 * ones not built yet, which answer Not Supported.
 */
#include "failback/agent.h"
#include "primary.pb-c.h"
#include "resync.pb-c.h"

static const fb_rpc_method primary_methods[] = {
    {"AddVirtualSystem", NULL, FB_ROLE_OPERATOR},
    {"CreateRecoveryPoint", NULL, FB_ROLE_OPERATOR},
    {"ListRecoveryPoints", NULL, FB_ROLES_READ},
    {"RemoveRecoveryPoint", NULL, FB_ROLE_OPERATOR},
    {"ListVirtualSystems", NULL, FB_ROLES_READ},
};

static const fb_rpc_method resync_methods[] = {
    {"Negotiate", NULL, FB_ROLE_AGENT},
    {"GetTreeNodes", NULL, FB_ROLE_AGENT},
    {"ReadBlocks", NULL, FB_ROLE_AGENT},
};

static uint32_t
primary_setup(fb_agent *agent, fb_rpc_registry *reg, fb_err *err)
{
	uint32_t rv;

	if ((rv = fb_rpc_registry_add(reg, &failback__primary_service__descriptor, primary_methods,
	                              sizeof(primary_methods) / sizeof(primary_methods[0]), agent,
	                              err)) != FB_RV_OK)
		return rv;
	return fb_rpc_registry_add(reg, &failback__resync_source__descriptor, resync_methods,
	                           sizeof(resync_methods) / sizeof(resync_methods[0]), agent, err);
}

int
main(int argc, char **argv)
{
	fb_agent_main(argc, argv, FB_AGENT_PRIMARY, primary_setup);
}
