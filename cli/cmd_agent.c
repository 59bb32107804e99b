/*
 * cmd_agent.c - commands every agent answers: status.
 */
#include "agent.pb-c.h"
#include "ctl.h"

static int
cmd_status(ctl *c, const ctl_args *a)
{
	Failback__GetAgentStatusRequest in = FAILBACK__GET_AGENT_STATUS_REQUEST__INIT;

	(void)a;
	return ctl_call(c, &failback__agent_service__descriptor, "GetAgentStatus", &in.base, NULL);
}

const ctl_cmd ctl_agent_cmds[] = {
    {"status", NULL, "", 0, 0, {{0}}, "the agent's identity, your role, pipes, descriptors",
     cmd_status},
    {0},
};
