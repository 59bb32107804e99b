/*
 * run.c - one live job (replica.h): its fields under its own lock, its row
 * and its events.
 *
 * Writers: only the job's runner thread writes a run (the supervisor runs
 * in that thread too), always under the run's lock; handler threads read
 * under it. Publishing and persisting copy the fields under the lock and do
 * their I/O after releasing it. The row is written on state and phase
 * changes; counters travel in events, and a finished job's counters are
 * in its last row.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "driver.h"
#include "failback/clock.h"
#include "failback/events.h"
#include "failback/log.h"
#include "replica.h"

run *
run_new(replica *r, const job_driver *drv, const char *id, const char *vm_key, const char *vm_id,
        Failback__JobParams *params)
{
	run *j = calloc(1, sizeof(*j));

	if (j == NULL)
		return NULL;
	pthread_mutex_init(&j->mtx, NULL);
	pthread_cond_init(&j->cv, NULL);
	j->r              = r;
	j->drv            = drv;
	j->params         = params;
	j->state          = FAILBACK__JOB_STATE__JS_NEW;
	j->vm_state_want  = -1;
	j->vm_health_want = -1;
	j->started_ms     = fb_clock_mono_ms();
	snprintf(j->id, sizeof(j->id), "%s", id);
	snprintf(j->vm_key, sizeof(j->vm_key), "%s", vm_key);
	snprintf(j->vm_id, sizeof(j->vm_id), "%s", vm_id);
	snprintf(j->phase, sizeof(j->phase), "%s", drv->first_phase);
	return j;
}

void
run_free(run *j)
{
	if (j == NULL)
		return;
	if (j->params != NULL)
		failback__job_params__free_unpacked(j->params, NULL);
	pthread_cond_destroy(&j->cv);
	pthread_mutex_destroy(&j->mtx);
	free(j);
}

void
run_view_locked(const run *j, run_view *v)
{
	snprintf(v->id, sizeof(v->id), "%s", j->id);
	snprintf(v->vm_id, sizeof(v->vm_id), "%s", j->vm_id);
	snprintf(v->phase, sizeof(v->phase), "%s", j->phase);
	snprintf(v->error, sizeof(v->error), "%s", j->error);
	v->state        = j->state;
	v->type         = j->drv->type;
	v->bytes_done   = j->bytes_done;
	v->bytes_total  = j->bytes_total;
	v->blocks_done  = j->blocks_done;
	v->blocks_total = j->blocks_total;
	v->rate         = j->rate;
	v->wire         = j->wire;
	v->bytes_read   = j->bytes_read;
	snprintf(v->compare_mode, sizeof(v->compare_mode), "%s", j->compare_mode);
	v->error_code   = j->error_code;
}

void
run_view_get(run *j, run_view *v)
{
	pthread_mutex_lock(&j->mtx);
	run_view_locked(j, v);
	pthread_mutex_unlock(&j->mtx);
}

uint32_t
run_cancel_requested(run *j)
{
	uint32_t c;

	pthread_mutex_lock(&j->mtx);
	c = j->cancel;
	pthread_mutex_unlock(&j->mtx);
	return c;
}

uint32_t
run_finish_or_cancel(run *j)
{
	uint32_t c;

	pthread_mutex_lock(&j->mtx);
	while (j->cancel_pending)
		pthread_cond_wait(&j->cv, &j->mtx);
	if ((c = j->cancel) == 0)
		j->finishing = 1;
	pthread_mutex_unlock(&j->mtx);
	return c;
}

void
run_set_error(run *j, uint32_t code, const char *desc)
{
	pthread_mutex_lock(&j->mtx);
	j->error_code = code;
	snprintf(j->error, sizeof(j->error), "%s", desc);
	pthread_mutex_unlock(&j->mtx);
}

void
run_set_vm_id(run *j, const char *vm_id)
{
	pthread_mutex_lock(&j->mtx);
	if (j->vm_id[0] == '\0')
		snprintf(j->vm_id, sizeof(j->vm_id), "%s", vm_id);
	pthread_mutex_unlock(&j->mtx);
}

void
run_view_to_row(const run_view *v, job_row *row)
{
	snprintf(row->id, sizeof(row->id), "%s", v->id);
	if (v->vm_id[0] != '\0')
		snprintf(row->vm_id, sizeof(row->vm_id), "%s", v->vm_id);
	snprintf(row->phase, sizeof(row->phase), "%s", v->phase);
	snprintf(row->error, sizeof(row->error), "%s", v->error);
	row->state        = v->state;
	row->percent      = job_percent(v);
	row->error_code   = v->error_code;
	row->bytes_done   = v->bytes_done;
	row->bytes_total  = v->bytes_total;
	row->blocks_done  = v->blocks_done;
	row->blocks_total = v->blocks_total;
	row->wire         = v->wire;
	row->bytes_read   = v->bytes_read;
	snprintf(row->compare_mode, sizeof(row->compare_mode), "%s", v->compare_mode);
	row->rate         = v->rate;
}

uint32_t
run_persist(run *j, fb_err *err)
{
	job_row  row;
	run_view v;

	run_view_get(j, &v);
	memset(&row, 0, sizeof(row));
	run_view_to_row(&v, &row);
	return job_store_update(j->r->db, &row, err);
}

void
run_publish(run *j)
{
	Failback__JobEvent ev = FAILBACK__JOB_EVENT__INIT;
	run_view           v;
	fb_err             err;

	run_view_get(j, &v);
	ev.job_id            = v.id;
	ev.vm_id             = v.vm_id;
	ev.job_state         = (Failback__JobState)v.state;
	ev.phase             = v.phase;
	ev.bytes_done        = v.bytes_done;
	ev.bytes_total       = v.bytes_total;
	ev.blocks_done       = v.blocks_done;
	ev.blocks_total      = v.blocks_total;
	ev.rate_bytes_per_s  = v.rate;
	ev.error_code        = v.error_code;
	ev.error_description = v.error;
	ev.time_unix_ms      = fb_clock_unix_ms();
	ev.percent_complete  = job_percent(&v);
	ev.compare_mode      = v.compare_mode;
	ev.bytes_read        = v.bytes_read;
	fb_events_publish(fb_agent_events(j->r->agent), &ev, &err);
	j->last_publish = fb_clock_mono_ms();
}

static void
run_persist_logged(run *j)
{
	fb_err err = {0};

	if (run_persist(j, &err) != FB_RV_OK)
		fb_log_warn("FB5002", "job %s: cannot record progress: %s", j->id, err.msg);
}

void
run_set_state(run *j, int state, const char *phase)
{
	pthread_mutex_lock(&j->mtx);
	if (state >= FAILBACK__JOB_STATE__JS_COMPLETED) {
		/* An end is seen only when it is durable (run_make_end_durable):
		 * whoever sees it may start the VM's next job at once. */
		j->end_state = state;
		snprintf(j->end_phase, sizeof(j->end_phase), "%s", phase != NULL ? phase : j->phase);
		pthread_mutex_unlock(&j->mtx);
		return;
	}
	j->state = state;
	if (phase != NULL)
		snprintf(j->phase, sizeof(j->phase), "%s", phase);
	pthread_mutex_unlock(&j->mtx);
	/* durable first, then announced */
	run_persist_logged(j);
	run_publish(j);
}

void
run_progress(run *j, const Failback__JobReport *rep)
{
	uint64_t now = fb_clock_mono_ms(), dt;
	int      phase_changed;

	pthread_mutex_lock(&j->mtx);
	phase_changed = strcmp(rep->phase, j->phase) != 0;
	/* The rate is over this phase as this run saw it: a job resumed after
	 * a restart starts its baseline at its first report, not at 0 bytes. */
	if (phase_changed || !j->rate_started) {
		j->rate_t0      = now;
		j->rate_b0      = rep->bytes_done;
		j->rate_started = 1;
		snprintf(j->phase, sizeof(j->phase), "%s", rep->phase);
	}
	if (rep->vm_id[0] != '\0' && j->vm_id[0] == '\0')
		snprintf(j->vm_id, sizeof(j->vm_id), "%s", rep->vm_id);
	j->bytes_done   = rep->bytes_done;
	j->bytes_total  = rep->bytes_total;
	j->blocks_done  = rep->blocks_done;
	j->blocks_total = rep->blocks_total;
	j->wire         = rep->bytes_on_wire;
	j->bytes_read   = rep->bytes_read;
	if (strcmp(rep->compare_mode, "bitmap") == 0 || strcmp(rep->compare_mode, "full scan") == 0)
		snprintf(j->compare_mode, sizeof(j->compare_mode), "%s", rep->compare_mode);
	dt              = now - j->rate_t0;
	j->rate = dt > 0 && rep->bytes_done >= j->rate_b0 ? (rep->bytes_done - j->rate_b0) * 1000 / dt
	                                                  : 0;
	pthread_mutex_unlock(&j->mtx);
	if (phase_changed)
		run_persist_logged(j);
	run_publish(j);
}

void
run_record_vm(run *j, int state, int health)
{
	fb_err err = {0};
	int    pending;

	if (state == VMSTATE_KEEP)
		return; /* the job's own steps recorded the state */
	pthread_mutex_lock(&j->mtx);
	j->vm_state_want    = state;
	j->vm_health_want   = health;
	j->vm_state_pending = 0;
	pthread_mutex_unlock(&j->mtx);
	if (j->vm_id[0] == '\0')
		return;
	pending = fb_vm_set_state(j->r->db, j->vm_id, state, health, &err) != FB_RV_OK;
	if (pending)
		fb_log_error("FB5003", "job %s: cannot record VM state %d: %s", j->id, state,
		             err.msg);
	pthread_mutex_lock(&j->mtx);
	j->vm_state_pending = pending;
	pthread_mutex_unlock(&j->mtx);
}

/* The row as it is once the end is recorded. */
static uint32_t
run_persist_end(run *j, fb_err *err)
{
	job_row  row;
	run_view v;

	pthread_mutex_lock(&j->mtx);
	run_view_locked(j, &v);
	v.state = j->end_state;
	snprintf(v.phase, sizeof(v.phase), "%s", j->end_phase);
	pthread_mutex_unlock(&j->mtx);
	memset(&row, 0, sizeof(row));
	run_view_to_row(&v, &row);
	return job_store_update(j->r->db, &row, err);
}

void
run_make_end_durable(run *j)
{
	for (int tries = 0;; tries++) {
		fb_err err = {0};
		int    pending;
		int    ok;

		/* the VM's state first: a row that says the job ended frees the VM */
		pthread_mutex_lock(&j->mtx);
		pending = j->vm_state_pending;
		pthread_mutex_unlock(&j->mtx);
		if (pending && j->vm_id[0] != '\0') {
			pending = fb_vm_set_state(j->r->db, j->vm_id, j->vm_state_want,
			                          j->vm_health_want, &err) != FB_RV_OK;
			pthread_mutex_lock(&j->mtx);
			j->vm_state_pending = pending;
			pthread_mutex_unlock(&j->mtx);
		}
		ok = !pending && run_persist_end(j, &err) == FB_RV_OK;
		if (ok) {
			uint64_t bytes, blocks, wire;

			pthread_mutex_lock(&j->mtx);
			j->state = j->end_state;
			snprintf(j->phase, sizeof(j->phase), "%s", j->end_phase);
			j->ended = 1;
			bytes    = j->bytes_done;
			blocks   = j->blocks_done;
			wire     = j->wire;
			pthread_mutex_unlock(&j->mtx);
			replica_metrics_job_end(j->drv->type, j->vm_id, j->end_state, j->started_ms, bytes,
			                        blocks, wire);
			run_publish(j);
			return;
		}
		if (tries == 0) {
			fb_log_warn("FB5006", "job %s: its end is not recorded yet (no room?); "
			                      "retrying every second", j->id);
			/* Shown meanwhile, so the operator learns why; the VM stays
			 * in use until the end is recorded. */
			pthread_mutex_lock(&j->mtx);
			j->state = j->end_state;
			snprintf(j->phase, sizeof(j->phase), "%s", j->end_phase);
			pthread_mutex_unlock(&j->mtx);
		}
		run_publish(j);
		sleep(1);
	}
}
