/*
 * jobs.c - the registry of the replica's live jobs (CIM_ConcreteJob):
 * persisted before the call that made them returns 4096, then run by a
 * runner thread each (runner.c), and resumed at start when a stop
 * interrupted them.
 *
 * States: a job is New (2) when persisted, Running (4) while it runs, and
 * ends Completed (7), Terminated (8, cancel), Killed (9) or Exception (10).
 *
 * Locking: the registry lock guards the slot table only; it is taken
 * briefly and never held across database work. A submit reserves its VM's
 * slot first (so a second submit for the VM is refused), persists the job
 * without the lock, then starts its runner; a failed persist frees the
 * slot. Lock order: registry lock → a run's lock.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "driver.h"
#include "failback/clock.h"
#include "failback/id.h"
#include "failback/log.h"
#include "replica.h"

#define MAX_RUNNING 64

static pthread_mutex_t reg_mtx = PTHREAD_MUTEX_INITIALIZER;
static run            *runs[MAX_RUNNING];

/* A run holds its VM until its end is durable and visible (ended). */
static int
run_matches_vm_locked(run *j, const char *vm_key)
{
	int m;

	pthread_mutex_lock(&j->mtx);
	m = !j->ended && (strcasecmp(j->vm_key, vm_key) == 0 ||
	                  (j->vm_id[0] != '\0' && strcasecmp(j->vm_id, vm_key) == 0));
	pthread_mutex_unlock(&j->mtx);
	return m;
}

int
jobs_vm_busy(const char *vm_key)
{
	int busy = 0;

	pthread_mutex_lock(&reg_mtx);
	for (int i = 0; i < MAX_RUNNING && !busy; i++)
		busy = runs[i] != NULL && run_matches_vm_locked(runs[i], vm_key);
	pthread_mutex_unlock(&reg_mtx);
	return busy;
}

#define RUNNER_STALL_MS 60000

int
jobs_healthy(char *why, size_t cap)
{
	struct timespec until;
	uint64_t        now = fb_clock_mono_ms();
	int             ok  = 1;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 2;
	if (pthread_mutex_timedlock(&reg_mtx, &until) != 0) {
		snprintf(why, cap, "the job registry has not answered for 2 s");
		return 0;
	}
	for (int i = 0; i < MAX_RUNNING && ok; i++) {
		uint64_t beat = runs[i] != NULL ? atomic_load(&runs[i]->beat_ms) : 0;

		if (beat != 0 && now > beat && now - beat > RUNNER_STALL_MS) {
			snprintf(why, cap, "the runner of job %s has not turned for %llu s", runs[i]->id,
			         (unsigned long long)((now - beat) / 1000));
			ok = 0;
		}
	}
	pthread_mutex_unlock(&reg_mtx);
	return ok;
}

void
jobs_each_running(void (*fn)(const run_view *v, int type, void *arg), void *arg)
{
	pthread_mutex_lock(&reg_mtx);
	for (int i = 0; i < MAX_RUNNING; i++) {
		run_view v;
		int      ended;

		if (runs[i] == NULL)
			continue;
		pthread_mutex_lock(&runs[i]->mtx);
		ended = runs[i]->ended;
		run_view_locked(runs[i], &v);
		pthread_mutex_unlock(&runs[i]->mtx);
		if (!ended)
			fn(&v, runs[i]->drv->type, arg);
	}
	pthread_mutex_unlock(&reg_mtx);
}

int
jobs_vm_state(const char *vm_id, int *state)
{
	int found = 0;

	pthread_mutex_lock(&reg_mtx);
	for (int i = 0; i < MAX_RUNNING; i++) {
		run *j = runs[i];

		if (j == NULL)
			continue;
		pthread_mutex_lock(&j->mtx);
		if (j->vm_state_pending && strcasecmp(j->vm_id, vm_id) == 0) {
			*state = j->vm_state_want;
			found  = 1;
		}
		pthread_mutex_unlock(&j->mtx);
	}
	pthread_mutex_unlock(&reg_mtx);
	return found;
}

/* Takes a slot for j unless its VM has a run. */
static uint32_t
jobs_register(run *j, fb_err *err)
{
	int slot = -1;

	pthread_mutex_lock(&reg_mtx);
	for (int i = 0; i < MAX_RUNNING; i++) {
		if (runs[i] == NULL) {
			if (slot < 0)
				slot = i;
			continue;
		}
		if (run_matches_vm_locked(runs[i], j->vm_key) ||
		    (j->vm_id[0] != '\0' && run_matches_vm_locked(runs[i], j->vm_id))) {
			char other[FB_ID_LEN + 1];

			snprintf(other, sizeof(other), "%s", runs[i]->id);
			pthread_mutex_unlock(&reg_mtx);
			return fb_err_set(err, FB_RV_SYSTEM_IN_USE,
			                  "VM '%s' already has a running job (%s)", j->vm_key, other);
		}
	}
	if (slot >= 0)
		runs[slot] = j;
	pthread_mutex_unlock(&reg_mtx);
	return slot >= 0 ? FB_RV_OK : fb_err_set(err, FB_RV_SYSTEM_IN_USE, "too many jobs running");
}

static void
jobs_unregister(run *j)
{
	pthread_mutex_lock(&reg_mtx);
	for (int i = 0; i < MAX_RUNNING; i++)
		if (runs[i] == j)
			runs[i] = NULL;
	pthread_mutex_unlock(&reg_mtx);
}

static Failback__JobParams *
params_copy(const Failback__JobParams *p)
{
	size_t               len  = failback__job_params__get_packed_size(p);
	uint8_t             *blob = malloc(len + 1);
	Failback__JobParams *copy = NULL;

	if (blob != NULL) {
		failback__job_params__pack(p, blob);
		copy = failback__job_params__unpack(NULL, len, blob);
		free(blob);
	}
	return copy;
}

uint32_t
jobs_submit(replica *r, int type, const char *vm_key, const Failback__JobParams *params,
            char *job_id, fb_err *err)
{
	const job_driver    *drv = driver_of(type);
	Failback__JobParams *copy;
	char                 id[FB_ID_LEN + 1];
	const char          *vm_id = fb_id_valid(vm_key) ? vm_key : "";
	run                 *j;
	uint32_t             rv;

	if (drv == NULL)
		return fb_err_set(err, FB_RV_NOT_SUPPORTED, "job type %d", type);
	if ((rv = fb_id_new(id, err)) != FB_RV_OK)
		return rv;
	if ((copy = params_copy(params)) == NULL)
		return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
	if ((j = run_new(r, drv, id, vm_key, vm_id, copy)) == NULL) {
		failback__job_params__free_unpacked(copy, NULL);
		return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
	}
	if ((rv = jobs_register(j, err)) != FB_RV_OK) {
		run_free(j);
		return rv;
	}
	if ((rv = job_store_insert(r->db, id, vm_id[0] ? vm_id : vm_key, type, drv->first_phase,
	                           params, err)) != FB_RV_OK ||
	    (rv = runner_start(j, jobs_unregister, err)) != FB_RV_OK) {
		jobs_unregister(j);
		run_free(j);
		return rv;
	}
	snprintf(job_id, FB_ID_LEN + 1, "%s", id);
	fb_log_info("FB5001", "job %s (type %d) for VM %s accepted", id, type, vm_key);
	return FB_RV_OK;
}

/* Finds a live run by id and locks it (registry lock released). */
static run *
jobs_find_locked(const char *job_id)
{
	run *found = NULL;

	pthread_mutex_lock(&reg_mtx);
	for (int i = 0; i < MAX_RUNNING && found == NULL; i++)
		if (runs[i] != NULL && strcasecmp(runs[i]->id, job_id) == 0)
			found = runs[i];
	if (found != NULL)
		pthread_mutex_lock(&found->mtx);
	pthread_mutex_unlock(&reg_mtx);
	return found;
}

/*
 * A cancel is durable before it is acknowledged: the row records it, so a
 * replica that dies right after the reply still cancels the job (and rolls
 * the disk back) when it resumes it. A run past its point of no return
 * (finishing) is not cancellable any more.
 */
uint32_t
jobs_cancel(replica *r, const char *job_id, uint32_t requested, fb_err *err)
{
	job_row           row;
	const job_driver *drv;
	run              *j;
	uint32_t          rv;

	if (requested != 4 && requested != 5)
		return fb_err_set(err, FB_RV_INVALID_PARAMETER,
		                  "RequestedState %u: only 4 (Terminate) and 5 (Kill) are supported",
		                  requested);
	if (!fb_id_valid(job_id))
		return fb_err_set(err, FB_RV_INVALID_PARAMETER, "'%.80s' is not a job identifier",
		                  job_id);
	if ((rv = job_store_get(r->db, job_id, &row, NULL, err)) != FB_RV_OK)
		return rv;
	drv = driver_of(row.type);
	if (drv == NULL || !drv->cancellable)
		return fb_err_set(err, FB_RV_INVALID_STATE, "job %s is not cancellable", job_id);
	if ((j = jobs_find_locked(row.id)) == NULL)
		return fb_err_set(err, FB_RV_INVALID_STATE, "job %s is not running", job_id);
	if (j->ended) {
		pthread_mutex_unlock(&j->mtx);
		return fb_err_set(err, FB_RV_INVALID_STATE, "job %s is not running", job_id);
	}
	if (j->finishing) {
		pthread_mutex_unlock(&j->mtx);
		return fb_err_set(err, FB_RV_INVALID_STATE, "job %s is completing", job_id);
	}
	if (j->cancel != 0 || j->cancel_pending) {
		pthread_mutex_unlock(&j->mtx);
		return FB_RV_OK; /* already being cancelled */
	}
	/* The record is written without the run's lock; meanwhile the runner
	 * waits at its point of no return (cancel_pending) for the outcome. */
	j->cancel_pending = 1;
	pthread_mutex_unlock(&j->mtx);
	rv = job_store_cancel(r->db, row.id, requested, err);
	pthread_mutex_lock(&j->mtx);
	if (rv == FB_RV_OK)
		j->cancel = requested;
	j->cancel_pending = 0;
	pthread_cond_broadcast(&j->cv);
	pthread_mutex_unlock(&j->mtx);
	return rv;
}

uint32_t
jobs_view(replica *r, const char *job_id, job_row *row, fb_err *err)
{
	uint32_t rv;
	run     *j;

	if (!fb_id_valid(job_id))
		return fb_err_set(err, FB_RV_INVALID_PARAMETER, "'%.80s' is not a job identifier",
		                  job_id);
	if ((rv = job_store_get(r->db, job_id, row, NULL, err)) != FB_RV_OK)
		return rv;
	/* The runner is the truth while it exists (its row lags between
	 * phase changes). */
	if ((j = jobs_find_locked(row->id)) != NULL) {
		run_view v;

		run_view_locked(j, &v);
		pthread_mutex_unlock(&j->mtx);
		run_view_to_row(&v, row);
	}
	return FB_RV_OK;
}

uint32_t
jobs_list(replica *r, const char *vm_id, char (**ids)[FB_ID_LEN + 1], size_t *n, fb_err *err)
{
	return job_store_list(r->db, vm_id, ids, n, err);
}

uint32_t
jobs_start(replica *r, fb_err *err)
{
	char(*ids)[FB_ID_LEN + 1];
	size_t   n;
	uint32_t rv;

	if ((rv = job_store_unfinished(r->db, &ids, &n, err)) != FB_RV_OK)
		return rv;
	for (size_t i = 0; i < n; i++) {
		Failback__JobParams *p;
		job_row              row;
		const job_driver    *drv;
		run                 *j;
		fb_err               e = {0};

		if (job_store_get(r->db, ids[i], &row, &p, &e) != FB_RV_OK ||
		    (drv = driver_of(row.type)) == NULL) {
			fb_log_error("FB5007", "job %s cannot be resumed: %s", ids[i],
			             e.msg[0] ? e.msg : "unknown job type");
			if (p != NULL)
				failback__job_params__free_unpacked(p, NULL);
			continue;
		}
		if ((j = run_new(r, drv, row.id, row.vm_id, fb_id_valid(row.vm_id) ? row.vm_id : "",
		                 p)) == NULL) {
			failback__job_params__free_unpacked(p, NULL);
			continue;
		}
		j->cancel = row.cancel;
		fb_log_info("FB5005", "resuming job %s after a restart%s", row.id,
		            row.cancel ? " (cancelled before the stop)" : "");
		if (jobs_register(j, &e) != FB_RV_OK || runner_start(j, jobs_unregister, &e) != FB_RV_OK) {
			fb_log_error("FB5007", "job %s cannot be resumed: %s", row.id, e.msg);
			jobs_unregister(j);
			run_free(j);
		}
	}
	free(ids);
	return FB_RV_OK;
}
