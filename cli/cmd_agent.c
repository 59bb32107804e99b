/*
 * cmd_agent.c - commands every agent answers: status.
 */
#include "agent.pb-c.h"
#include "ctl.h"

static int
cmd_status(ctl *c, int argc, char **argv)
{
	Failback__GetAgentStatusRequest in = FAILBACK__GET_AGENT_STATUS_REQUEST__INIT;

	(void)argv;
	if (argc != 0)
		return ctl_usage(&ctl_agent_cmds[0], "status takes no arguments");
	return ctl_call(c, &failback__agent_service__descriptor, "GetAgentStatus", &in.base, NULL);
}

const ctl_cmd ctl_agent_cmds[] = {
    {"status", NULL, "", "the agent's identity, your role, pipes, descriptors", cmd_status},
    {NULL, NULL, NULL, NULL, NULL},
};
