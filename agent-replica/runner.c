/*
 * runner.c - one thread per job: drives the job by its driver row
 * (driver.h), records what it did to the VM's ReplicationState, and makes
 * its end durable before it lets the job go.
 *
 *   Running   the work: the flow in supervised worker processes
 *             (supervise.c) or the local body in this thread;
 *   then one of
 *   Completed the driver's commit, the VM to its `after` state;
 *   Cancelled the driver's rollback (a failed rollback ends in
 *             Exception with the VM Critical), the VM back to its state
 *             before the call;
 *   Exception the VM to the row's `failed` state.
 * An acknowledged cancel always wins over a transfer that finished at the
 * same moment: the point of no return is run_finish_or_cancel.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "driver.h"
#include "failback/log.h"
#include "replica.h"

struct runner_arg {
	run *j;
	void (*on_end)(run *j);
};

enum result { R_DONE, R_FAILED, R_CANCELLED };

/* A PREV state field resolves to the state before the call; a VM the job
 * learnt (none before it) waits to complete its initial replication. */
static int
runner_state(const run *j, int field)
{
	if (field != VMSTATE_PREV)
		return field;
	return j->params->prev_state != 0
	           ? (int)j->params->prev_state
	           : FAILBACK__REPLICATION_STATE__RS_WAITING_TO_COMPLETE_INITIAL_REPLICATION;
}

static enum result
runner_work(run *j, fb_err *err)
{
	const job_driver *d = j->drv;

	if (run_cancel_requested(j))
		return R_CANCELLED; /* acknowledged before a restart */
	if (d->during != VMSTATE_KEEP)
		run_record_vm(j, d->during, FAILBACK__REPLICATION_HEALTH__RH_OK);
	if (d->flow != NULL) {
		switch (supervise(j)) {
		case SUPERVISE_DONE:
			return R_DONE;
		case SUPERVISE_CANCELLED:
			return R_CANCELLED;
		default:
			return R_FAILED;
		}
	}
	return d->local(j->r, j, err) == FB_RV_OK ? R_DONE : R_FAILED;
}

static void
runner_completed(run *j)
{
	const job_driver *d   = j->drv;
	fb_err            err = {0};

	if (d->commit != NULL && d->commit(j->r, j, &err) != FB_RV_OK)
		fb_log_warn("FB5004", "job %s: %s", j->id, err.msg);
	run_record_vm(j, d->after, FAILBACK__REPLICATION_HEALTH__RH_OK);
	pthread_mutex_lock(&j->mtx);
	j->blocks_done = j->blocks_total;
	j->bytes_done  = j->bytes_total;
	pthread_mutex_unlock(&j->mtx);
	run_set_state(j, FAILBACK__JOB_STATE__JS_COMPLETED, "Completed");
	fb_log_info("FB5020", "job %s completed", j->id);
}

static void
runner_cancelled(run *j, uint32_t requested)
{
	const job_driver *d      = j->drv;
	fb_err            err    = {0};
	uint64_t          blocks = 0;

	run_set_state(j, FAILBACK__JOB_STATE__JS_SHUTTING_DOWN, "RollingBack");
	if (d->rollback != NULL && d->rollback(j->r, j, &blocks, &err) != FB_RV_OK) {
		run_set_error(j, err.rv, err.msg);
		run_record_vm(j, FAILBACK__REPLICATION_STATE__RS_CRITICAL,
		              FAILBACK__REPLICATION_HEALTH__RH_CRITICAL);
		run_set_state(j, FAILBACK__JOB_STATE__JS_EXCEPTION, "RollbackFailed");
		fb_log_error("FB5022", "job %s: rollback failed: %s", j->id, err.msg);
		return;
	}
	run_record_vm(j, runner_state(j, VMSTATE_PREV), FAILBACK__REPLICATION_HEALTH__RH_OK);
	run_set_error(j, 0, "cancelled by request");
	run_set_state(j, requested == 5 ? FAILBACK__JOB_STATE__JS_KILLED
	                                : FAILBACK__JOB_STATE__JS_TERMINATED,
	              "Cancelled");
	fb_log_info("FB5021", "job %s cancelled; %llu block(s) restored", j->id,
	            (unsigned long long)blocks);
}

static int
runner_has_checkpoint(run *j)
{
	Failback__JobCheckpoint *cp = NULL;
	fb_err                   e  = {0};

	if (job_store_checkpoint_load(j->r->db, j->id, &cp, &e) != FB_RV_OK)
		return 1; /* cannot tell: assume something was written */
	if (cp == NULL)
		return 0;
	failback__job_checkpoint__free_unpacked(cp, NULL);
	return 1;
}

static void
runner_failed(run *j, const fb_err *err)
{
	run_view v;

	run_view_get(j, &v);
	if (v.error_code == 0)
		run_set_error(j, err->rv ? err->rv : FB_RV_FAILED, err->msg[0] ? err->msg : "failed");
	/* A job writes the VM's disks only after its checkpoint is durable: one
	 * that failed before (the primary unreachable or refusing, an unknown
	 * point, the generation guard) left the VM as it was, so it keeps its
	 * state; the row's failure state (Critical) is for a disk that may be
	 * half done. */
	if (j->drv->failed != VMSTATE_KEEP && !runner_has_checkpoint(j))
		run_record_vm(j, runner_state(j, VMSTATE_PREV), FAILBACK__REPLICATION_HEALTH__RH_OK);
	else
		run_record_vm(j, runner_state(j, j->drv->failed), j->drv->failed_health);
	run_set_state(j, FAILBACK__JOB_STATE__JS_EXCEPTION, "Failed");
	run_view_get(j, &v);
	fb_log_warn("FB5023", "job %s failed: %s (%u)", j->id, v.error, v.error_code);
}

static void *
runner_thread(void *arg)
{
	struct runner_arg a   = *(struct runner_arg *)arg;
	run              *j   = a.j;
	fb_err            err = {0};
	enum result       res;
	uint32_t          cancel = 0;

	free(arg);
	run_set_state(j, FAILBACK__JOB_STATE__JS_RUNNING, j->drv->first_phase);
	res = runner_work(j, &err);
	if (res == R_DONE && (cancel = run_finish_or_cancel(j)) != 0)
		res = R_CANCELLED;
	if (res == R_CANCELLED && cancel == 0)
		cancel = run_cancel_requested(j);
	if (res == R_DONE)
		runner_completed(j);
	else if (res == R_CANCELLED)
		runner_cancelled(j, cancel);
	else
		runner_failed(j, &err);
	run_make_end_durable(j);
	/* seen ended by now: what follows is nobody's wait */
	if (res == R_DONE && j->drv->done != NULL)
		j->drv->done(j->r, j);
	(void)run_finish_or_cancel(j); /* no cancel is being recorded any more */
	a.on_end(j);
	/* A handler that found the run before it left the registry may still
	 * hold its lock: wait for it before freeing. */
	pthread_mutex_lock(&j->mtx);
	pthread_mutex_unlock(&j->mtx);
	run_free(j);
	return NULL;
}

uint32_t
runner_start(run *j, void (*on_end)(run *j), fb_err *err)
{
	struct runner_arg *a = malloc(sizeof(*a));
	pthread_attr_t     attr;
	pthread_t          t;
	int                rc;

	if (a == NULL)
		return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
	a->j      = j;
	a->on_end = on_end;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&t, &attr, runner_thread, a);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		free(a);
		return fb_err_set(err, FB_RV_FAILED, "cannot start the job thread");
	}
	return FB_RV_OK;
}
