/*
 * jobs.c - the replica's jobs (CIM_ConcreteJob): persisted before the call
 * that made them returns 4096, run by one thread each, published as events.
 *
 * Replicate and InitiateFailback pull from the primary, where NNG 1.5.2 can
 * wedge a socket whose peer dies mid-message. Their transfer therefore runs
 * in a worker process (this program with --worker-job ID) that reports
 * progress on a pipe, one line per update:
 *
 *   P <phase> <bytes done> <bytes total> <blocks done> <blocks total>
 *   E <return value> <description>      (the job failed)
 *   D                                   (the job's transfer is done)
 *
 * The runner is its supervisor: a worker silent for WATCHDOG_MS is killed
 * and a new one resumes from the checkpoint the last one made durable; a
 * worker that dies is restarted the same way, a bounded number of times.
 * Events are published on every phase or state change, on every progress
 * line, and at least every 200 ms while the job runs, always with absolute
 * values.
 *
 * States: a job is New (2) when persisted, Running (4) while it runs, and
 * ends Completed (7), Terminated (8, cancel), Killed (9) or Exception (10).
 * Jobs still New or Running when the agent stops are resumed at start.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

#include "failback/clock.h"
#include "failback/events.h"
#include "failback/id.h"
#include "failback/log.h"
#include "failback/undo.h"
#include "replica.h"

extern char **environ;

#define WATCHDOG_MS    30000

/* Finished jobs are kept TimeBeforeRemoval (5 minutes): reads skip older
 * ones, and submitting a job deletes them. */
#define JOB_LIVE                                                                               \
	"NOT (state >= 7 AND ended_ms > 0 AND "                                                \
	"ended_ms < strftime('%s','now') * 1000 - 300000)"
#define MAX_RESTARTS   8
#define HEARTBEAT_MS   200
#define MAX_RUNNING    64

struct run {
	replica  *r;
	char      id[FB_ID_LEN + 1];
	char      vm_key[FB_ID_LEN + 1 > FB_NAME_MAX + 1 ? FB_ID_LEN + 1 : FB_NAME_MAX + 1];
	char      vm_id[FB_ID_LEN + 1];
	int       type;
	int       state;
	char      phase[32];
	uint64_t  bytes_done, bytes_total, blocks_done, blocks_total, rate;
	uint64_t  rate_t0, rate_b0;
	uint32_t  error_code;
	char      error[FB_ERR_MSG_MAX];
	uint32_t  cancel; /* 0, or the RequestedState (4 Terminate, 5 Kill) */
	pid_t     worker;
	int       vm_state_want, vm_health_want; /* -1: nothing to record */
	int       vm_state_pending;              /* the last attempt to record it failed */
	uint64_t  last_publish;
	Failback__JobParams *params;
};

static pthread_mutex_t runs_mtx = PTHREAD_MUTEX_INITIALIZER;
static struct run     *runs[MAX_RUNNING];

int
jobs_vm_state(const char *vm_id, int *state)
{
	int found = 0;

	pthread_mutex_lock(&runs_mtx);
	for (int i = 0; i < MAX_RUNNING; i++)
		if (runs[i] != NULL && runs[i]->vm_state_pending &&
		    strcasecmp(runs[i]->vm_id, vm_id) == 0) {
			*state = runs[i]->vm_state_want;
			found  = 1;
		}
	pthread_mutex_unlock(&runs_mtx);
	return found;
}

int
jobs_vm_busy(const char *vm_key)
{
	int busy = 0;

	pthread_mutex_lock(&runs_mtx);
	for (int i = 0; i < MAX_RUNNING; i++)
		if (runs[i] != NULL && (strcasecmp(runs[i]->vm_key, vm_key) == 0 ||
		                        strcasecmp(runs[i]->vm_id, vm_key) == 0))
			busy = 1;
	pthread_mutex_unlock(&runs_mtx);
	return busy;
}

static const char *
job_type_phase(int type)
{
	switch (type) {
	case JT_FAILBACK:
		return "WaitingForFailback";
	case JT_REPLICATE:
		return "Negotiating";
	case JT_FAILOVER:
		return "Materializing";
	default:
		return "Starting";
	}
}

/* Writes the run's visible fields to its row; 0 when they are durable. */
static int
job_persist(struct run *j)
{
	sqlite3_stmt *st;
	fb_err        err;
	int64_t       now = fb_clock_unix_ms();
	unsigned      pct = 0;
	int           ok  = 0;

	if (j->state == FAILBACK__JOB_STATE__JS_COMPLETED)
		pct = 100;
	else if (j->blocks_total > 0)
		pct = (unsigned)(j->blocks_done * 100 / j->blocks_total);
	if (pct > 99 && j->state != FAILBACK__JOB_STATE__JS_COMPLETED)
		pct = 99;
	fb_db_lock(j->r->db);
	if (fb_db_prepare(j->r->db,
	                  "UPDATE jobs SET state = ?2, phase = ?3, percent = ?4, error_code = ?5, "
	                  "error_description = ?6, vm_id = CASE WHEN ?7 = '' THEN vm_id ELSE ?7 END, "
	                  "started_ms = CASE WHEN started_ms = 0 AND ?2 >= 4 THEN ?8 ELSE "
	                  "started_ms END, ended_ms = CASE WHEN ?2 >= 7 THEN ?8 ELSE 0 END "
	                  "WHERE id = ?1",
	                  &st, &err) == FB_RV_OK) {
		sqlite3_bind_text(st, 1, j->id, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 2, j->state);
		sqlite3_bind_text(st, 3, j->phase, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 4, (int)pct);
		sqlite3_bind_int64(st, 5, j->error_code);
		sqlite3_bind_text(st, 6, j->error, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 7, j->vm_id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 8, now);
		ok = sqlite3_step(st) == SQLITE_DONE;
		if (!ok)
			fb_log_warn("FB5002", "job %s: cannot record progress: %s", j->id,
			            sqlite3_errmsg(fb_db_handle(j->r->db)));
		sqlite3_finalize(st);
	}
	fb_db_unlock(j->r->db);
	return ok ? 0 : -1;
}

static void
job_publish(struct run *j)
{
	Failback__JobEvent ev = FAILBACK__JOB_EVENT__INIT;
	fb_err             err;

	ev.job_id            = j->id;
	ev.vm_id             = j->vm_id;
	ev.job_state         = (Failback__JobState)j->state;
	ev.phase             = j->phase;
	ev.bytes_done        = j->bytes_done;
	ev.bytes_total       = j->bytes_total;
	ev.blocks_done       = j->blocks_done;
	ev.blocks_total      = j->blocks_total;
	ev.rate_bytes_per_s  = j->rate;
	ev.error_code        = j->error_code;
	ev.error_description = j->error;
	ev.time_unix_ms      = fb_clock_unix_ms();
	if (j->state == FAILBACK__JOB_STATE__JS_COMPLETED)
		ev.percent_complete = 100;
	else if (j->blocks_total > 0)
		ev.percent_complete = (uint32_t)(j->blocks_done * 100 / j->blocks_total);
	if (ev.percent_complete > 99 && j->state != FAILBACK__JOB_STATE__JS_COMPLETED)
		ev.percent_complete = 99;
	fb_events_publish(fb_agent_events(j->r->agent), &ev, &err);
	j->last_publish = fb_clock_mono_ms();
}

/* A state or phase change: durable first, then announced. */
static void
job_change(struct run *j, int state, const char *phase)
{
	pthread_mutex_lock(&runs_mtx);
	j->state = state;
	if (phase != NULL)
		snprintf(j->phase, sizeof(j->phase), "%s", phase);
	pthread_mutex_unlock(&runs_mtx);
	job_persist(j);
	job_publish(j);
}

static void
job_refresh_vm_id(struct run *j)
{
	fb_vm *vm;
	fb_err err;

	if (j->vm_id[0] == '\0' && fb_vm_get(j->r->db, j->vm_key, &vm, &err) == FB_RV_OK) {
		snprintf(j->vm_id, sizeof(j->vm_id), "%s", vm->id);
		free(vm);
	}
}

static void
job_progress_line(struct run *j, const char *line)
{
	char               phase[32];
	unsigned long long bd, bt, kd, kt;

	if (sscanf(line, "P %31s %llu %llu %llu %llu", phase, &bd, &bt, &kd, &kt) != 5)
		return;
	/* A first replication learns the VM's GUID from the primary. */
	job_refresh_vm_id(j);
	pthread_mutex_lock(&runs_mtx);
	if (strcmp(phase, j->phase) != 0) {
		j->rate_t0 = fb_clock_mono_ms();
		j->rate_b0 = bd;
	}
	snprintf(j->phase, sizeof(j->phase), "%s", phase);
	j->bytes_done   = bd;
	j->bytes_total  = bt;
	j->blocks_done  = kd;
	j->blocks_total = kt;
	{
		uint64_t dt = fb_clock_mono_ms() - j->rate_t0;
		j->rate     = dt > 0 && bd >= j->rate_b0 ? (bd - j->rate_b0) * 1000 / dt : 0;
	}
	pthread_mutex_unlock(&runs_mtx);
	job_persist(j);
	job_publish(j);
}

/* Runs one worker process to its end. Returns 0 done, 1 failed (j->error
 * set), 2 cancelled, 3 worker lost (restart it). */
static int
job_run_worker(struct run *j)
{
	replica                   *r = j->r;
	posix_spawn_file_actions_t fa;
	char                       arg[64], line[1200];
	char                     **argv;
	int                        p[2], argc, st, outcome = 3;
	size_t                     have = 0;
	uint64_t                   last = fb_clock_mono_ms();
	int                        nargc;
	char                     **own = fb_agent_argv(r->agent, &nargc);

	if (pipe(p) != 0)
		return 3;
	argv = calloc((size_t)nargc + 2, sizeof(char *));
	for (argc = 0; argc < nargc; argc++)
		argv[argc] = own[argc];
	snprintf(arg, sizeof(arg), "--worker-job=%s", j->id);
	argv[argc++] = arg;
	argv[argc]   = NULL;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	posix_spawn_file_actions_addclose(&fa, p[0]);
	if (posix_spawn(&j->worker, "/proc/self/exe", &fa, NULL, argv, environ) != 0) {
		posix_spawn_file_actions_destroy(&fa);
		free(argv);
		close(p[0]);
		close(p[1]);
		return 3;
	}
	posix_spawn_file_actions_destroy(&fa);
	free(argv);
	close(p[1]);
	fb_log_info("FB5010", "job %s: worker %d started", j->id, (int)j->worker);
	for (;;) {
		struct pollfd pfd = {p[0], POLLIN, 0};
		int           n   = poll(&pfd, 1, HEARTBEAT_MS);
		uint64_t      now = fb_clock_mono_ms();

		if (j->cancel) {
			kill(j->worker, SIGKILL);
			outcome = 2;
			break;
		}
		if (n > 0) {
			ssize_t k = read(p[0], line + have, sizeof(line) - 1 - have);

			if (k <= 0)
				break; /* the worker is gone */
			have += (size_t)k;
			line[have] = '\0';
			for (char *nl; (nl = strchr(line, '\n')) != NULL;) {
				*nl = '\0';
				last = now;
				if (line[0] == 'P') {
					job_progress_line(j, line);
				} else if (line[0] == 'D') {
					outcome = 0;
				} else if (line[0] == 'E') {
					unsigned code = FB_RV_FAILED;
					int      off  = 0;
					sscanf(line, "E %u %n", &code, &off);
					j->error_code = code;
					snprintf(j->error, sizeof(j->error), "%s", off > 0 ? line + off : "");
					outcome = 1;
				}
				memmove(line, nl + 1, have - (size_t)(nl + 1 - line) + 1);
				have -= (size_t)(nl + 1 - line);
			}
			if (have == sizeof(line) - 1)
				have = 0; /* an overlong line: drop it */
		}
		if (now - last > WATCHDOG_MS) {
			fb_log_warn("FB5011", "job %s: worker %d silent for %d ms; killing it", j->id,
			            (int)j->worker, WATCHDOG_MS);
			kill(j->worker, SIGKILL);
			outcome = 3;
			break;
		}
		if (now - j->last_publish >= HEARTBEAT_MS)
			job_publish(j);
	}
	close(p[0]);
	while (waitpid(j->worker, &st, 0) < 0 && errno == EINTR)
		;
	j->worker = 0;
	if (outcome == 0 && !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
		outcome = 3;
	return outcome;
}

static void
job_finish_vm(struct run *j, int state, int health)
{
	fb_err err;

	j->vm_state_want    = state;
	j->vm_health_want   = health;
	j->vm_state_pending = 0;
	if (j->vm_id[0] != '\0' && fb_vm_set_state(j->r->db, j->vm_id, state, health, &err) != 0) {
		fb_log_error("FB5003", "job %s: cannot record VM state %d: %s", j->id, state,
		             err.msg);
		j->vm_state_pending = 1;
	}
}

/* The end of a job must become durable: with a full disk, keep trying (and
 * keep announcing the job) until there is room. Until then GetJob reports
 * the job from memory. */
static void
job_make_end_durable(struct run *j)
{
	for (int tries = 0;; tries++) {
		fb_err err;
		int    ok = job_persist(j) == 0;

		if (j->vm_state_pending && j->vm_id[0] != '\0')
			j->vm_state_pending = fb_vm_set_state(j->r->db, j->vm_id, j->vm_state_want,
			                                      j->vm_health_want, &err) != 0;
		if (ok && !j->vm_state_pending)
			return;
		if (tries == 0)
			fb_log_warn("FB5006", "job %s: its end is not recorded yet (no room?); "
			                      "retrying every second", j->id);
		job_publish(j);
		sleep(1);
	}
}

static void
job_fail(struct run *j, uint32_t code, const char *desc)
{
	j->error_code = code;
	snprintf(j->error, sizeof(j->error), "%s", desc);
}

/* Supervises workers until one finishes, fails, or the job is cancelled. */
static int
job_supervise(struct run *j)
{
	for (int attempt = 0;; attempt++) {
		int outcome = job_run_worker(j);

		if (outcome != 3)
			return outcome;
		if (attempt >= MAX_RESTARTS) {
			job_fail(j, FB_RV_FAILED, "the transfer worker kept failing; see the agent log");
			return 1;
		}
		fb_log_warn("FB5012", "job %s: worker lost; restarting from the checkpoint (%d)",
		            j->id, attempt + 1);
		for (int w = 0; w < (1 << (attempt < 4 ? attempt : 4)) * 5 && !j->cancel; w++)
			usleep(100000);
		if (j->cancel)
			return 2;
	}
}

static void *
job_thread(void *arg)
{
	struct run *j      = arg;
	replica    *r      = j->r;
	int         prev   = (int)j->params->prev_state;
	int         result = 1;
	fb_err      err    = {0};
	char        undo[4096];

	job_change(j, FAILBACK__JOB_STATE__JS_RUNNING, job_type_phase(j->type));
	switch (j->type) {
	case JT_FAILBACK:
		job_finish_vm(j, FAILBACK__REPLICATION_STATE__RS_FAILBACK_IN_PROGRESS, 1);
		result = job_supervise(j);
		break;
	case JT_REPLICATE:
		result = job_supervise(j);
		job_refresh_vm_id(j);
		break;
	case JT_FAILOVER:
		job_finish_vm(j, FAILBACK__REPLICATION_STATE__RS_FAILOVER_IN_PROGRESS, 1);
		result = local_failover(r, j->vm_id, j->params->recovery_point_identifier, &err) ==
		                 FB_RV_OK
		             ? 0
		             : 1;
		break;
	case JT_REVERT:
		result = local_revert(r, j->vm_id, &err) == FB_RV_OK ? 0 : 1;
		break;
	case JT_COMMIT:
		result = local_commit(r, j->vm_id, &err) == FB_RV_OK ? 0 : 1;
		break;
	}
	if (result == 1 && j->error_code == 0)
		job_fail(j, err.rv ? err.rv : FB_RV_FAILED, err.msg[0] ? err.msg : "failed");

	if (result == 0) {
		static const int after[] = {[JT_FAILOVER - 90] = FAILBACK__REPLICATION_STATE__RS_RECOVERED,
		                            [JT_REVERT - 90]   = FAILBACK__REPLICATION_STATE__RS_REPLICATING,
		                            [JT_COMMIT - 90]   = FAILBACK__REPLICATION_STATE__RS_COMMITTED,
		                            [JT_REPLICATE - 90] = FAILBACK__REPLICATION_STATE__RS_REPLICATING,
		                            [JT_FAILBACK - 90] = FAILBACK__REPLICATION_STATE__RS_FAILBACK_COMPLETE};
		if (j->type == JT_FAILBACK) {
			replica_undo_path(r, j->vm_id, undo, sizeof(undo));
			if (fb_undo_remove(undo, &err) != FB_RV_OK)
				fb_log_warn("FB5004", "job %s: %s", j->id, err.msg);
		}
		job_finish_vm(j, after[j->type - 90], 1);
		j->blocks_done = j->blocks_total;
		j->bytes_done  = j->bytes_total;
		job_change(j, FAILBACK__JOB_STATE__JS_COMPLETED, "Completed");
		fb_log_info("FB5020", "job %s completed", j->id);
	} else if (result == 2) {
		uint64_t blocks = 0;
		uint32_t requested = j->cancel;

		job_change(j, FAILBACK__JOB_STATE__JS_SHUTTING_DOWN, "RollingBack");
		if (j->type == JT_FAILBACK &&
		    local_rollback(r, j->vm_id, &blocks, &err) != FB_RV_OK) {
			job_fail(j, err.rv, err.msg);
			job_finish_vm(j, FAILBACK__REPLICATION_STATE__RS_CRITICAL, 3);
			job_change(j, FAILBACK__JOB_STATE__JS_EXCEPTION, "RollbackFailed");
			fb_log_error("FB5022", "job %s: rollback failed: %s", j->id, err.msg);
		} else {
			job_finish_vm(j, prev, 1);
			job_fail(j, 0, "cancelled by request");
			job_change(j, requested == 5 ? FAILBACK__JOB_STATE__JS_KILLED
			                             : FAILBACK__JOB_STATE__JS_TERMINATED,
			           "Cancelled");
			fb_log_info("FB5021", "job %s cancelled; %llu block(s) restored", j->id,
			            (unsigned long long)blocks);
		}
	} else {
		if (j->type == JT_FAILBACK)
			job_finish_vm(j, FAILBACK__REPLICATION_STATE__RS_CRITICAL, 3);
		else if (j->type != JT_REPLICATE || j->vm_id[0] != '\0')
			job_finish_vm(j, j->type == JT_REPLICATE ? prev ? prev : 2 : prev, 2);
		job_change(j, FAILBACK__JOB_STATE__JS_EXCEPTION, "Failed");
		fb_log_warn("FB5023", "job %s failed: %s (%u)", j->id, j->error, j->error_code);
	}

	job_make_end_durable(j);
	pthread_mutex_lock(&runs_mtx);
	for (int i = 0; i < MAX_RUNNING; i++)
		if (runs[i] == j)
			runs[i] = NULL;
	pthread_mutex_unlock(&runs_mtx);
	failback__job_params__free_unpacked(j->params, NULL);
	free(j);
	return NULL;
}

/* Registers a run and starts its thread; runs_mtx is held by the caller. */
static uint32_t
job_launch(replica *r, const char *id, int type, const char *vm_key, const char *vm_id,
           Failback__JobParams *params, fb_err *err)
{
	struct run    *j;
	pthread_t      t;
	pthread_attr_t attr;
	int            slot = -1;

	for (int i = 0; i < MAX_RUNNING && slot < 0; i++)
		if (runs[i] == NULL)
			slot = i;
	if (slot < 0 || (j = calloc(1, sizeof(*j))) == NULL)
		return fb_err_set(err, FB_RV_SYSTEM_IN_USE, "too many jobs running");
	j->r             = r;
	j->type          = type;
	j->params        = params;
	j->state         = FAILBACK__JOB_STATE__JS_NEW;
	j->vm_state_want = -1;
	snprintf(j->id, sizeof(j->id), "%s", id);
	snprintf(j->vm_key, sizeof(j->vm_key), "%s", vm_key);
	snprintf(j->vm_id, sizeof(j->vm_id), "%s", vm_id);
	snprintf(j->phase, sizeof(j->phase), "%s", job_type_phase(type));
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &attr, job_thread, j) != 0) {
		pthread_attr_destroy(&attr);
		free(j);
		return fb_err_set(err, FB_RV_FAILED, "cannot start the job thread");
	}
	pthread_attr_destroy(&attr);
	runs[slot] = j;
	return FB_RV_OK;
}

uint32_t
jobs_submit(replica *r, int type, const char *vm_key, const Failback__JobParams *params,
            char *job_id, fb_err *err)
{
	Failback__JobParams *copy;
	sqlite3_stmt        *st;
	uint8_t             *blob;
	size_t               len = failback__job_params__get_packed_size(params);
	char                 id[FB_ID_LEN + 1];
	const char          *vm_id = fb_id_valid(vm_key) ? vm_key : "";
	uint32_t             rv;
	int                  rc;

	if ((rv = fb_id_new(id, err)) != FB_RV_OK)
		return rv;
	if ((blob = malloc(len + 1)) == NULL)
		return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
	failback__job_params__pack(params, blob);
	if ((copy = failback__job_params__unpack(NULL, len, blob)) == NULL) {
		free(blob);
		return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
	}
	pthread_mutex_lock(&runs_mtx);
	for (int i = 0; i < MAX_RUNNING; i++) {
		if (runs[i] != NULL && (strcasecmp(runs[i]->vm_key, vm_key) == 0 ||
		                        (runs[i]->vm_id[0] && strcasecmp(runs[i]->vm_id, vm_key) == 0))) {
			pthread_mutex_unlock(&runs_mtx);
			free(blob);
			failback__job_params__free_unpacked(copy, NULL);
			return fb_err_set(err, FB_RV_SYSTEM_IN_USE,
			                  "VM '%s' already has a running job (%s)", vm_key, runs[i]->id);
		}
	}
	if ((rv = fb_db_begin(r->db, err)) == FB_RV_OK) {
		(void)fb_db_exec(r->db, "DELETE FROM jobs WHERE NOT " JOB_LIVE, NULL);
		if ((rv = fb_db_prepare(r->db,
		                        "INSERT INTO jobs (id, vm_id, type, state, phase, percent, "
		                        "error_code, error_description, submitted_ms, started_ms, "
		                        "ended_ms, params, checkpoint) VALUES (?, ?, ?, 2, ?, 0, 0, '', "
		                        "?, 0, 0, ?, NULL)",
		                        &st, err)) == FB_RV_OK) {
			sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 2, vm_id[0] ? vm_id : vm_key, -1, SQLITE_STATIC);
			sqlite3_bind_int(st, 3, type);
			sqlite3_bind_text(st, 4, job_type_phase(type), -1, SQLITE_STATIC);
			sqlite3_bind_int64(st, 5, fb_clock_unix_ms());
			sqlite3_bind_blob(st, 6, blob, (int)len, SQLITE_STATIC);
			rc = sqlite3_step(st);
			sqlite3_finalize(st);
			if (rc != SQLITE_DONE)
				rv = fb_db_err(r->db, rc, "persist job", err);
		}
		if (rv == FB_RV_OK)
			rv = fb_db_commit(r->db, err);
		else
			fb_db_rollback(r->db);
	}
	free(blob);
	if (rv == FB_RV_OK)
		rv = job_launch(r, id, type, vm_key, vm_id, copy, err);
	else
		failback__job_params__free_unpacked(copy, NULL);
	pthread_mutex_unlock(&runs_mtx);
	if (rv == FB_RV_OK) {
		snprintf(job_id, FB_ID_LEN + 1, "%s", id);
		fb_log_info("FB5001", "job %s (type %d) for VM %s accepted", id, type, vm_key);
	}
	return rv;
}

uint32_t
jobs_cancel(replica *r, const char *job_id, uint32_t requested, fb_err *err)
{
	Failback__Job        job = FAILBACK__JOB__INIT;
	Failback__JobParams *p   = NULL;
	char                 vm[64];
	uint32_t             rv;
	int                  found = 0;

	if (requested != 4 && requested != 5)
		return fb_err_set(err, FB_RV_INVALID_PARAMETER,
		                  "RequestedState %u: only 4 (Terminate) and 5 (Kill) are supported",
		                  requested);
	if ((rv = jobs_load(r, job_id, &job, &p, vm, sizeof(vm), err)) != FB_RV_OK)
		return rv;
	failback__job_params__free_unpacked(p, NULL);
	pthread_mutex_lock(&runs_mtx);
	for (int i = 0; i < MAX_RUNNING; i++) {
		if (runs[i] != NULL && strcasecmp(runs[i]->id, job.instance_id) == 0) {
			if (runs[i]->type != JT_FAILBACK && runs[i]->type != JT_REPLICATE) {
				pthread_mutex_unlock(&runs_mtx);
				free(job.instance_id);
				return fb_err_set(err, FB_RV_INVALID_STATE, "job %s is not cancellable",
				                  job_id);
			}
			runs[i]->cancel = requested;
			found           = 1;
		}
	}
	pthread_mutex_unlock(&runs_mtx);
	free(job.instance_id);
	if (!found)
		return fb_err_set(err, FB_RV_INVALID_STATE, "job %s is not running", job_id);
	return FB_RV_OK;
}

uint32_t
jobs_load(replica *r, const char *job_id, Failback__Job *job, Failback__JobParams **params,
          char *vm_id, size_t vm_id_len, fb_err *err)
{
	sqlite3_stmt *st;
	uint32_t      rv;
	int           rc;
	int64_t       now = fb_clock_unix_ms();

	if (!fb_id_valid(job_id))
		return fb_err_set(err, FB_RV_INVALID_PARAMETER, "'%.80s' is not a job identifier",
		                  job_id);
	fb_db_lock(r->db);
	if ((rv = fb_db_prepare(r->db,
	                        "SELECT id, vm_id, type, state, phase, percent, error_code, "
	                        "error_description, submitted_ms, started_ms, ended_ms, params "
	                        "FROM jobs WHERE id = lower(?) AND " JOB_LIVE,
	                        &st, err)) != FB_RV_OK) {
		fb_db_unlock(r->db);
		return rv;
	}
	sqlite3_bind_text(st, 1, job_id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		int64_t started = sqlite3_column_int64(st, 9), ended = sqlite3_column_int64(st, 10);

		job->instance_id            = strdup((const char *)sqlite3_column_text(st, 0));
		snprintf(vm_id, vm_id_len, "%s", (const char *)sqlite3_column_text(st, 1));
		job->job_type               = (uint32_t)sqlite3_column_int(st, 2);
		job->job_state              = (Failback__JobState)sqlite3_column_int(st, 3);
		job->percent_complete       = (uint32_t)sqlite3_column_int(st, 5);
		job->error_code             = (uint32_t)sqlite3_column_int64(st, 6);
		job->time_submitted_unix_ms = sqlite3_column_int64(st, 8);
		job->start_time_unix_ms     = started;
		job->elapsed_ms = started == 0 ? 0 : (uint64_t)((ended ? ended : now) - started);
		job->time_before_removal_ms = JOB_REMOVAL_MS;
		job->cancellable            = (job->job_type == JT_FAILBACK ||
		                               job->job_type == JT_REPLICATE) &&
		                              job->job_state < FAILBACK__JOB_STATE__JS_COMPLETED;
		/* Text columns are copied by the caller before the next statement. */
		job->phase             = strdup((const char *)sqlite3_column_text(st, 4));
		job->error_description = strdup((const char *)sqlite3_column_text(st, 7));
		if (params != NULL)
			*params = failback__job_params__unpack(NULL,
			                                       (size_t)sqlite3_column_bytes(st, 11),
			                                       sqlite3_column_blob(st, 11));
	} else {
		rv = fb_err_set(err, FB_RV_FILE_NOT_FOUND, "no job %s", job_id);
	}
	sqlite3_finalize(st);
	fb_db_unlock(r->db);
	if (rv == FB_RV_OK) {
		/* Live progress of a running job comes from its runner. */
		pthread_mutex_lock(&runs_mtx);
		for (int i = 0; i < MAX_RUNNING; i++) {
			if (runs[i] != NULL && strcasecmp(runs[i]->id, job->instance_id) == 0) {
				/* The runner is the truth while it exists (its row may lag). */
				job->job_state  = (Failback__JobState)runs[i]->state;
				job->error_code = runs[i]->error_code;
				free(job->phase);
				free(job->error_description);
				job->phase             = strdup(runs[i]->phase);
				job->error_description = strdup(runs[i]->error);
				if (runs[i]->state >= FAILBACK__JOB_STATE__JS_COMPLETED)
					job->percent_complete =
					    runs[i]->state == FAILBACK__JOB_STATE__JS_COMPLETED ? 100
					                                                       : job->percent_complete;
				job->bytes_done       = runs[i]->bytes_done;
				job->bytes_total      = runs[i]->bytes_total;
				job->blocks_done      = runs[i]->blocks_done;
				job->blocks_total     = runs[i]->blocks_total;
				job->rate_bytes_per_s = runs[i]->rate;
			}
		}
		pthread_mutex_unlock(&runs_mtx);
	}
	return rv;
}

uint32_t
jobs_list(replica *r, const char *vm_id, char (**ids)[FB_ID_LEN + 1], size_t *n, fb_err *err)
{
	sqlite3_stmt *st;
	char(*out)[FB_ID_LEN + 1] = NULL;
	size_t   cnt = 0, cap = 0;
	uint32_t rv;

	fb_db_lock(r->db);
	if ((rv = fb_db_prepare(r->db,
	                        "SELECT id FROM jobs WHERE (?1 = '' OR vm_id = lower(?1)) AND "
	                        JOB_LIVE " "
	                        "ORDER BY submitted_ms",
	                        &st, err)) != FB_RV_OK) {
		fb_db_unlock(r->db);
		return rv;
	}
	sqlite3_bind_text(st, 1, vm_id, -1, SQLITE_STATIC);
	while (sqlite3_step(st) == SQLITE_ROW) {
		if (cnt == cap) {
			void *g = realloc(out, (cap = cap ? cap * 2 : 16) * sizeof(*out));
			if (g == NULL)
				break;
			out = g;
		}
		snprintf(out[cnt++], FB_ID_LEN + 1, "%s", (const char *)sqlite3_column_text(st, 0));
	}
	sqlite3_finalize(st);
	fb_db_unlock(r->db);
	*ids = out;
	*n   = cnt;
	return FB_RV_OK;
}

uint32_t
jobs_save_checkpoint(fb_db *db, const char *job_id, const Failback__JobCheckpoint *cp,
                     fb_err *err)
{
	size_t        len  = failback__job_checkpoint__get_packed_size(cp);
	uint8_t      *blob = malloc(len + 1);
	sqlite3_stmt *st;
	uint32_t      rv;
	int           rc;

	if (blob == NULL)
		return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
	failback__job_checkpoint__pack(cp, blob);
	if ((rv = fb_db_begin(db, err)) != FB_RV_OK) {
		free(blob);
		return rv;
	}
	if ((rv = fb_db_prepare(db, "UPDATE jobs SET checkpoint = ? WHERE id = ?", &st, err)) !=
	    FB_RV_OK) {
		fb_db_rollback(db);
		free(blob);
		return rv;
	}
	sqlite3_bind_blob(st, 1, blob, (int)len, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, job_id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	free(blob);
	if (rc != SQLITE_DONE) {
		fb_db_rollback(db);
		return fb_db_err(db, rc, "checkpoint", err);
	}
	return fb_db_commit(db, err);
}

uint32_t
jobs_load_checkpoint(fb_db *db, const char *job_id, Failback__JobCheckpoint **cp, fb_err *err)
{
	sqlite3_stmt *st;
	uint32_t      rv;

	*cp = NULL;
	fb_db_lock(db);
	if ((rv = fb_db_prepare(db, "SELECT checkpoint FROM jobs WHERE id = ?", &st, err)) !=
	    FB_RV_OK) {
		fb_db_unlock(db);
		return rv;
	}
	sqlite3_bind_text(st, 1, job_id, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_bytes(st, 0) > 0)
		*cp = failback__job_checkpoint__unpack(NULL, (size_t)sqlite3_column_bytes(st, 0),
		                                        sqlite3_column_blob(st, 0));
	sqlite3_finalize(st);
	fb_db_unlock(db);
	return FB_RV_OK;
}

uint32_t
jobs_start(replica *r, fb_err *err)
{
	sqlite3_stmt *st;
	uint32_t      rv;

	fb_db_lock(r->db);
	if ((rv = fb_db_prepare(r->db,
	                        "SELECT id, vm_id, type, params FROM jobs WHERE state < 7 "
	                        "ORDER BY submitted_ms",
	                        &st, err)) != FB_RV_OK) {
		fb_db_unlock(r->db);
		return rv;
	}
	pthread_mutex_lock(&runs_mtx);
	while (sqlite3_step(st) == SQLITE_ROW) {
		Failback__JobParams *p = failback__job_params__unpack(
		    NULL, (size_t)sqlite3_column_bytes(st, 3), sqlite3_column_blob(st, 3));
		const char *vm = (const char *)sqlite3_column_text(st, 1);

		if (p == NULL)
			continue;
		fb_log_info("FB5005", "resuming job %s after a restart",
		            (const char *)sqlite3_column_text(st, 0));
		if (job_launch(r, (const char *)sqlite3_column_text(st, 0), sqlite3_column_int(st, 2),
		               vm, fb_id_valid(vm) ? vm : "", p, err) != FB_RV_OK)
			failback__job_params__free_unpacked(p, NULL);
	}
	pthread_mutex_unlock(&runs_mtx);
	sqlite3_finalize(st);
	fb_db_unlock(r->db);
	return FB_RV_OK;
}
