/*
 * drivers.c - the job driver rows (driver.h): one per job type.
 */
#include <stddef.h>

#include "driver.h"
#include "replica.h"
#include "worker.h"

/* The runner thread may read a run's fields without its lock: it is
 * their only writer (replica.h). */

static uint32_t
failover_local(replica *r, run *j, fb_err *err)
{
	return local_failover(r, j->vm_id, j->params->recovery_point_identifier, err);
}

static uint32_t
revert_local(replica *r, run *j, fb_err *err)
{
	return local_revert(r, j->vm_id, err);
}

static uint32_t
commit_local(replica *r, run *j, fb_err *err)
{
	return local_commit(r, j->vm_id, err);
}

static uint32_t
failback_commit(replica *r, run *j, fb_err *err)
{
	uint32_t rv = local_forget_undo(r, j->vm_id, err);

	/* the disk is the target now: tracking starts again from it */
	local_track_commit(r, j->vm_id, err);
	return rv;
}

/* The forgotten undo log is deleted once the job is Completed: freeing
 * its space is not the caller's wait. */
static void
failback_done(replica *r, run *j)
{
	local_discard_undo(r, j->vm_id);
}

static uint32_t
failback_rollback(replica *r, run *j, uint64_t *blocks, fb_err *err)
{
	return local_rollback(r, j->vm_id, blocks, err);
}

#define RS(x) FAILBACK__REPLICATION_STATE__RS_##x

/* WaitingToStartResynchronization (9): the receiving side of a reversed
 * relationship, its disks taken in place (DESIGN §2a). */
static const int failback_from[]  = {RS(RECOVERED), RS(COMMITTED), RS(CRITICAL),
                                     RS(FAILBACK_COMPLETE),
                                     RS(WAITING_TO_START_RESYNCHRONIZATION)};
static const int replicate_from[] = {RS(WAITING_TO_COMPLETE_INITIAL_REPLICATION),
                                     RS(REPLICATING), RS(WAITING_TO_START_RESYNCHRONIZATION)};
/* Ready (1): a reverse whose other site is still to do its side. */
static const int reverse_from[]   = {RS(RECOVERED), RS(COMMITTED), RS(FAILBACK_COMPLETE),
                                     RS(READY)};
static const int failover_from[]  = {RS(REPLICATING)};
static const int recovered_only[] = {RS(RECOVERED)};

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const job_driver drivers[] = {
    {JT_FAILBACK, "InitiateFailback", "WaitingForFailback", 1, failback_from, N(failback_from),
     RS(FAILBACK_IN_PROGRESS), RS(FAILBACK_COMPLETE), RS(CRITICAL),
     FAILBACK__REPLICATION_HEALTH__RH_CRITICAL, failback_flow, NULL, failback_commit,
     failback_rollback, 0, failback_done},
    /* Reads and compares only: no lock, no state, nothing to undo. */
    {JT_ESTIMATE, "EstimateFailback", "Negotiating", 1, failback_from, N(failback_from),
     VMSTATE_KEEP, VMSTATE_KEEP, VMSTATE_KEEP, FAILBACK__REPLICATION_HEALTH__RH_OK,
     estimate_flow, NULL, NULL, NULL, 0, NULL},
    {JT_REPLICATE, "Replicate", "Negotiating", 1, replicate_from, N(replicate_from),
     VMSTATE_KEEP, RS(REPLICATING), VMSTATE_PREV, FAILBACK__REPLICATION_HEALTH__RH_WARNING,
     replicate_flow, NULL, NULL, NULL, 0, NULL},
    /* Its steps record the VM's state and mode themselves (reverse.c). */
    {JT_REVERSE, "ReverseReplicationRelationship", "Reversing", 0, reverse_from,
     N(reverse_from), VMSTATE_KEEP, RS(READY), VMSTATE_KEEP,
     FAILBACK__REPLICATION_HEALTH__RH_WARNING, reverse_flow, NULL, NULL, NULL, 1, NULL},
    {JT_FAILOVER, "InitiateFailover", "Materializing", 0, failover_from, N(failover_from),
     RS(FAILOVER_IN_PROGRESS), RS(RECOVERED), VMSTATE_PREV,
     FAILBACK__REPLICATION_HEALTH__RH_WARNING, NULL, failover_local, NULL, NULL, 0, NULL},
    {JT_REVERT, "RevertFailover", "Starting", 0, recovered_only, N(recovered_only),
     VMSTATE_KEEP, RS(REPLICATING), VMSTATE_PREV, FAILBACK__REPLICATION_HEALTH__RH_WARNING,
     NULL, revert_local, NULL, NULL, 0, NULL},
    {JT_COMMIT, "CommitFailover", "Starting", 0, recovered_only, N(recovered_only),
     VMSTATE_KEEP, RS(COMMITTED), VMSTATE_PREV, FAILBACK__REPLICATION_HEALTH__RH_WARNING, NULL,
     commit_local, NULL, NULL, 0, NULL},
};

const job_driver *
driver_of(int type)
{
	for (size_t i = 0; i < N(drivers); i++)
		if (drivers[i].type == type)
			return &drivers[i];
	return NULL;
}
