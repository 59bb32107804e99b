/*
 * vmstate.c - the ReplicationState rules (Hyper-V's numbers, from
 * types.proto). Which method may start in which state is the driver row's
 * `allowed` list (drivers.c); what a job does to the state while it runs,
 * after it and on failure is the same row's during/after/failed. This file
 * applies them and names the states.
 */
#include "driver.h"
#include "replica.h"

static const char *const state_names[] = {
    [FAILBACK__REPLICATION_STATE__RS_DISABLED]  = "Disabled",
    [FAILBACK__REPLICATION_STATE__RS_READY]     = "Ready for replication",
    [FAILBACK__REPLICATION_STATE__RS_WAITING_TO_COMPLETE_INITIAL_REPLICATION] =
        "Waiting to complete initial replication",
    [FAILBACK__REPLICATION_STATE__RS_REPLICATING] = "Replicating",
    [FAILBACK__REPLICATION_STATE__RS_SYNCED_REPLICATION_COMPLETE] =
        "Synced replication complete",
    [FAILBACK__REPLICATION_STATE__RS_RECOVERED]  = "Recovered",
    [FAILBACK__REPLICATION_STATE__RS_COMMITTED]  = "Committed",
    [FAILBACK__REPLICATION_STATE__RS_SUSPENDED]  = "Suspended",
    [FAILBACK__REPLICATION_STATE__RS_CRITICAL]   = "Critical",
    [FAILBACK__REPLICATION_STATE__RS_WAITING_TO_START_RESYNCHRONIZATION] =
        "Waiting to start resynchronization",
    [FAILBACK__REPLICATION_STATE__RS_RESYNCHRONIZING] = "Resynchronizing",
    [FAILBACK__REPLICATION_STATE__RS_RESYNCHRONIZATION_SUSPENDED] =
        "Resynchronization suspended",
    [FAILBACK__REPLICATION_STATE__RS_FAILOVER_IN_PROGRESS] = "Failover in progress",
    [FAILBACK__REPLICATION_STATE__RS_FAILBACK_IN_PROGRESS] = "Failback in progress",
    [FAILBACK__REPLICATION_STATE__RS_FAILBACK_COMPLETE]    = "Failback complete",
};

const char *
vmstate_name(int state)
{
	if (state < 0 || (size_t)state >= sizeof(state_names) / sizeof(state_names[0]) ||
	    state_names[state] == NULL)
		return "Unknown";
	return state_names[state];
}

uint32_t
vmstate_check(const job_driver *drv, const fb_vm *vm, fb_err *err)
{
	/* A running job first: it has already moved the VM's state. */
	if (jobs_vm_busy(vm->id))
		return fb_err_set(err, FB_RV_SYSTEM_IN_USE, "VM %s already has a running job",
		                  vm->name);
	for (size_t i = 0; i < drv->nallowed; i++)
		if (vm->state == drv->allowed[i])
			return FB_RV_OK;
	return fb_err_set(err, FB_RV_INVALID_STATE,
	                  "VM %s is in ReplicationState %d, which does not allow %s", vm->name,
	                  vm->state, drv->method);
}
