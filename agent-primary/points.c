/*
 * points.c - taking a recovery point as a job (JobType 70, Create
 * Snapshot): CreateRecoveryPoint and the reverse's AdoptPrimary start one
 * and answer at once; the point is taken on the job's own thread, with
 * progress (bytes scanned) in GetPointJob and in events on the primary's
 * events listener, and CancelPointJob stops it. A point is atomic (rp.h),
 * so a cancel, a failure or a crash keeps nothing of it.
 *
 * Jobs live in the `point_jobs` table of the primary's database: a row is
 * committed before the job is announced, and its end before the job
 * leaves the registry. A job that was running when the agent stopped took
 * no point; the agent marks it failed when it starts again.
 *
 * Locks: jobs_mtx guards the registry and the live jobs' fields; it is
 * never held across the database, a disk scan or a publish.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "failback/clock.h"
#include "failback/events.h"
#include "failback/log.h"
#include "failback/pb.h"
#include "failback/rp.h"
#include "failback/throttle.h"
#include "primary.h"
#include "primary.pb-c.h"

#define JT_CREATE_SNAPSHOT 70
#define MAX_LIVE           64
#define EMIT_MS            100
#define REMOVAL_MS         300000

static const char *const point_job_migrations[] = {
    "CREATE TABLE IF NOT EXISTS point_jobs ("
    "  id TEXT PRIMARY KEY,"
    "  vm_id TEXT NOT NULL,"
    "  state INTEGER NOT NULL,"
    "  phase TEXT NOT NULL,"
    "  bytes_done INTEGER NOT NULL DEFAULT 0,"
    "  bytes_total INTEGER NOT NULL DEFAULT 0,"
    "  error_code INTEGER NOT NULL DEFAULT 0,"
    "  error TEXT NOT NULL DEFAULT '',"
    "  rp_id TEXT NOT NULL DEFAULT '',"
    "  submitted_ms INTEGER NOT NULL,"
    "  start_ms INTEGER NOT NULL DEFAULT 0,"
    "  end_ms INTEGER NOT NULL DEFAULT 0);",
};

const fb_db_schema primary_schema = {"primary", point_job_migrations,
                                     sizeof(point_job_migrations) /
                                         sizeof(point_job_migrations[0])};

typedef struct pjob {
	primary *p;
	char     id[FB_ID_LEN + 1], vm_id[FB_ID_LEN + 1], vm_name[FB_VM_NAME_MAX + 1];
	char     rp_id[FB_ID_LEN + 1];
	int      type, state, cancel, ending; /* ending: the scan is over */
	int      full;                        /* scan whole even with a bitmap */
	char     phase[32];
	uint64_t bytes_done, bytes_total, last_emit;
	fb_throttle thr; /* --max-scan-rate */
	int64_t  submitted_ms, start_ms, end_ms;
	uint32_t error_code;
	char     error[FB_ERR_MSG_MAX];
} pjob;

static pthread_mutex_t jobs_mtx = PTHREAD_MUTEX_INITIALIZER;
static pjob           *live[MAX_LIVE];

#define JS(x) FAILBACK__JOB_STATE__JS_##x

/* Writes the job's row (insert or update). Takes the database lock. */
static uint32_t
pj_persist(const pjob *j, fb_err *err)
{
	sqlite3_stmt *st;
	uint32_t      rv;
	int           rc;

	fb_db_lock(j->p->db);
	if ((rv = fb_db_prepare(
	         j->p->db,
	         "INSERT INTO point_jobs (id, vm_id, state, phase, bytes_done, bytes_total, "
	         "error_code, error, rp_id, submitted_ms, start_ms, end_ms) VALUES "
	         "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) ON CONFLICT(id) DO UPDATE SET "
	         "state = ?3, phase = ?4, bytes_done = ?5, bytes_total = ?6, error_code = ?7, "
	         "error = ?8, rp_id = ?9, start_ms = ?11, end_ms = ?12",
	         &st, err)) != FB_RV_OK) {
		fb_db_unlock(j->p->db);
		return rv;
	}
	sqlite3_bind_text(st, 1, j->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, j->vm_id, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, j->state);
	sqlite3_bind_text(st, 4, j->phase, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, (sqlite3_int64)j->bytes_done);
	sqlite3_bind_int64(st, 6, (sqlite3_int64)j->bytes_total);
	sqlite3_bind_int64(st, 7, j->error_code);
	sqlite3_bind_text(st, 8, j->error, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 9, j->rp_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 10, j->submitted_ms);
	sqlite3_bind_int64(st, 11, j->start_ms);
	sqlite3_bind_int64(st, 12, j->end_ms);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	fb_db_unlock(j->p->db);
	return rc == SQLITE_DONE ? FB_RV_OK : fb_db_err(j->p->db, rc, "record point job", err);
}

/* An event with a copy of the job's fields (taken under jobs_mtx). */
static void
pj_publish(pjob *j)
{
	Failback__JobEvent ev = FAILBACK__JOB_EVENT__INIT;
	pjob               v;
	fb_err             err;

	pthread_mutex_lock(&jobs_mtx);
	v = *j;
	pthread_mutex_unlock(&jobs_mtx);
	ev.job_id            = v.id;
	ev.vm_id             = v.vm_id;
	ev.job_state         = (Failback__JobState)v.state;
	ev.phase             = v.phase;
	ev.bytes_done        = v.bytes_done;
	ev.bytes_total       = v.bytes_total;
	ev.error_code        = v.error_code;
	ev.error_description = v.error;
	ev.time_unix_ms      = fb_clock_unix_ms();
	ev.percent_complete  = v.state == JS(COMPLETED) ? 100
	                       : v.bytes_total ? (uint32_t)(v.bytes_done * 99 / v.bytes_total)
	                                       : 0;
	fb_events_publish(fb_agent_events(v.p->agent), &ev, &err);
}

static int
pj_progress(void *arg, uint64_t done, uint64_t total, uint64_t read)
{
	pjob    *j   = arg;
	uint64_t now = fb_clock_mono_ms();
	int      cancel, emit;

	pthread_mutex_lock(&jobs_mtx);
	j->bytes_done  = done;
	j->bytes_total = total;
	cancel         = j->cancel;
	emit           = now - j->last_emit >= EMIT_MS;
	if (emit)
		j->last_emit = now;
	pthread_mutex_unlock(&jobs_mtx);
	if (emit)
		pj_publish(j);
	/* Held at --max-scan-rate, in naps short enough that a cancel is seen
	 * at once. The throttle is part of the job, which GetPointJob copies
	 * under the same lock. */
	for (;;) {
		uint64_t wait;

		pthread_mutex_lock(&jobs_mtx);
		cancel = j->cancel;
		wait   = cancel ? 0 : fb_throttle_wait_ms(&j->thr, fb_clock_mono_ms(), read);
		pthread_mutex_unlock(&jobs_mtx);
		if (wait == 0)
			break;
		usleep((useconds_t)(wait > 100 ? 100000 : wait * 1000));
	}
	return cancel;
}

/* The scan is over and the point is about to be committed: from here on a
 * cancel is refused (the job is completing), and one that came before wins. */
static int
pj_committing(void *arg)
{
	pjob *j = arg;
	int   cancel;

	pthread_mutex_lock(&jobs_mtx);
	cancel = j->cancel;
	if (!cancel)
		j->ending = 1;
	pthread_mutex_unlock(&jobs_mtx);
	return cancel;
}

static void
pj_set(pjob *j, int state, const char *phase)
{
	fb_err err = {0};

	pthread_mutex_lock(&jobs_mtx);
	j->state = state;
	snprintf(j->phase, sizeof(j->phase), "%s", phase);
	pthread_mutex_unlock(&jobs_mtx);
	/* durable first, then announced */
	if (pj_persist(j, &err) != FB_RV_OK)
		fb_log_warn("FB4031", "point job %s: cannot record its state: %s", j->id, err.msg);
	pj_publish(j);
}

/*
 * The end is recorded (retried until it sticks) before anyone sees it; the
 * job then leaves the registry in the same step it shows its end, so a
 * client that sees the end may start the VM's next point job at once.
 */
static void
pj_end(pjob *j, int state, const char *phase)
{
	fb_err err = {0};
	pjob   v;

	pthread_mutex_lock(&jobs_mtx);
	v       = *j;
	v.state = state;
	snprintf(v.phase, sizeof(v.phase), "%s", phase);
	v.end_ms = fb_clock_unix_ms();
	pthread_mutex_unlock(&jobs_mtx);
	for (int tries = 0; pj_persist(&v, &err) != FB_RV_OK && tries < 60; tries++) {
		fb_log_warn("FB4031", "point job %s: cannot record its end: %s", j->id, err.msg);
		usleep(1000000);
	}
	pthread_mutex_lock(&jobs_mtx);
	j->state  = v.state;
	j->end_ms = v.end_ms;
	snprintf(j->phase, sizeof(j->phase), "%s", v.phase);
	for (int i = 0; i < MAX_LIVE; i++)
		if (live[i] == j)
			live[i] = NULL;
	pthread_mutex_unlock(&jobs_mtx);
	pj_publish(j);
}

static void *
pj_thread(void *arg)
{
	pjob       *j     = arg;
	fb_rp_watch watch = {pj_progress, j, pj_committing, j->p->tracking, j->full};
	fb_rp_stats st    = {0};
	fb_rp      *rp    = NULL;
	fb_err      err   = {0};
	uint32_t    rv;
	int         cancelled = 0;

	pthread_mutex_lock(&jobs_mtx);
	j->start_ms = fb_clock_unix_ms();
	pthread_mutex_unlock(&jobs_mtx);
	pj_set(j, JS(RUNNING), "Scanning");
	rv = fb_rp_create_watched(j->p->db, j->p->store, j->vm_id, j->type, &watch, &rp, &st, &err);
	pthread_mutex_lock(&jobs_mtx);
	j->ending = 1;
	if (rv == FB_RV_OK) {
		snprintf(j->rp_id, sizeof(j->rp_id), "%s", rp->id);
		j->bytes_done = j->bytes_total;
	} else if (!(cancelled = j->cancel)) {
		j->error_code = rv;
		snprintf(j->error, sizeof(j->error), "%s", err.msg);
	} else {
		snprintf(j->error, sizeof(j->error), "cancelled by request");
	}
	pthread_mutex_unlock(&jobs_mtx);
	if (rv == FB_RV_OK) {
		fb_log_info("FB4002",
		            "recovery point %s of %s: read %llu bytes, stored %llu new blocks (%llu "
		            "bytes), pruned %llu point(s), freed %llu blocks",
		            rp->id, j->vm_name, (unsigned long long)st.bytes_read,
		            (unsigned long long)st.blocks_new, (unsigned long long)st.bytes_stored,
		            (unsigned long long)st.points_pruned, (unsigned long long)st.blocks_freed);
		pj_end(j, JS(COMPLETED), "Completed");
	} else if (cancelled) {
		fb_log_info("FB4032", "point job %s of %s cancelled; no point kept", j->id, j->vm_name);
		pj_end(j, JS(TERMINATED), "Cancelled");
	} else {
		fb_log_warn("FB4003", "recovery point of %s failed: %s", j->vm_name, err.msg);
		pj_end(j, JS(EXCEPTION), "Failed");
	}
	free(rp);
	free(j);
	return NULL;
}

uint32_t
points_start(primary *p, const fb_vm *vm, int type, int full, char *job_id, fb_err *err)
{
	pjob          *j;
	pthread_attr_t attr;
	pthread_t      t;
	int            slot = -1;
	uint32_t       rv;

	if (type < 0 || type > 2)
		return fb_err_set(err, FB_RV_INVALID_PARAMETER, "recovery point type %d", type);
	if ((j = calloc(1, sizeof(*j))) == NULL)
		return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
	j->p        = p;
	j->thr.rate = p->scan_rate;
	snprintf(j->vm_id, sizeof(j->vm_id), "%s", vm->id);
	snprintf(j->vm_name, sizeof(j->vm_name), "%s", vm->name);
	j->type         = type;
	j->full         = full;
	j->state        = JS(NEW);
	j->submitted_ms = fb_clock_unix_ms();
	snprintf(j->phase, sizeof(j->phase), "Starting");
	for (size_t i = 0; i < vm->ndisks; i++)
		j->bytes_total += vm->disks[i].size;
	if ((rv = fb_id_new(j->id, err)) != FB_RV_OK) {
		free(j);
		return rv;
	}
	pthread_mutex_lock(&jobs_mtx);
	for (int i = 0; i < MAX_LIVE; i++) {
		if (live[i] != NULL && strcmp(live[i]->vm_id, vm->id) == 0) {
			pthread_mutex_unlock(&jobs_mtx);
			free(j);
			return fb_err_set(err, FB_RV_SYSTEM_IN_USE,
			                  "VM '%s' has a recovery point job running", vm->name);
		}
		if (live[i] == NULL && slot < 0)
			slot = i;
	}
	if (slot < 0) {
		pthread_mutex_unlock(&jobs_mtx);
		free(j);
		return fb_err_set(err, FB_RV_SYSTEM_IN_USE, "%d recovery point jobs are running",
		                  MAX_LIVE);
	}
	live[slot] = j;
	pthread_mutex_unlock(&jobs_mtx);
	if ((rv = pj_persist(j, err)) != FB_RV_OK)
		goto unlist;
	snprintf(job_id, FB_ID_LEN + 1, "%s", j->id);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &attr, pj_thread, j) != 0) {
		pthread_attr_destroy(&attr);
		rv = fb_err_set(err, FB_RV_FAILED, "cannot start the recovery point job");
		pthread_mutex_lock(&jobs_mtx);
		j->state      = JS(EXCEPTION);
		j->error_code = rv;
		snprintf(j->error, sizeof(j->error), "%s", err->msg);
		pthread_mutex_unlock(&jobs_mtx);
		(void)pj_persist(j, err);
		goto unlist;
	}
	pthread_attr_destroy(&attr);
	fb_log_info("FB4030", "point job %s for VM %s accepted", j->id, vm->name);
	return FB_RV_OK;
unlist:
	pthread_mutex_lock(&jobs_mtx);
	live[slot] = NULL;
	pthread_mutex_unlock(&jobs_mtx);
	free(j);
	return rv;
}

/* Accepts a GUID or Msvm_ConcreteJob.InstanceID="<GUID>". */
static const char *
job_guid(const char *ref, char *buf, size_t len)
{
	const char *q = strchr(ref, '"');

	if (q == NULL)
		return ref;
	snprintf(buf, len, "%.36s", q + 1);
	return buf;
}

/* The job's fields: a live job's, else its row. File not found if neither. */
static uint32_t
pj_view(primary *p, const char *id, pjob *v, fb_err *err)
{
	sqlite3_stmt *st;
	uint32_t      rv;
	int           rc;

	if (!fb_id_valid(id))
		return fb_err_set(err, FB_RV_INVALID_PARAMETER, "'%.80s' is not a job reference", id);
	pthread_mutex_lock(&jobs_mtx);
	for (int i = 0; i < MAX_LIVE; i++)
		if (live[i] != NULL && strcasecmp(live[i]->id, id) == 0) {
			*v = *live[i];
			pthread_mutex_unlock(&jobs_mtx);
			return FB_RV_OK;
		}
	pthread_mutex_unlock(&jobs_mtx);
	memset(v, 0, sizeof(*v));
	fb_db_lock(p->db);
	if ((rv = fb_db_prepare(p->db,
	                        "SELECT id, vm_id, state, phase, bytes_done, bytes_total, "
	                        "error_code, error, rp_id, submitted_ms, start_ms, end_ms FROM "
	                        "point_jobs WHERE id = lower(?)",
	                        &st, err)) != FB_RV_OK) {
		fb_db_unlock(p->db);
		return rv;
	}
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		snprintf(v->id, sizeof(v->id), "%s", (const char *)sqlite3_column_text(st, 0));
		snprintf(v->vm_id, sizeof(v->vm_id), "%s", (const char *)sqlite3_column_text(st, 1));
		v->state = sqlite3_column_int(st, 2);
		snprintf(v->phase, sizeof(v->phase), "%s", (const char *)sqlite3_column_text(st, 3));
		v->bytes_done  = (uint64_t)sqlite3_column_int64(st, 4);
		v->bytes_total = (uint64_t)sqlite3_column_int64(st, 5);
		v->error_code  = (uint32_t)sqlite3_column_int64(st, 6);
		snprintf(v->error, sizeof(v->error), "%s", (const char *)sqlite3_column_text(st, 7));
		snprintf(v->rp_id, sizeof(v->rp_id), "%s", (const char *)sqlite3_column_text(st, 8));
		v->submitted_ms = sqlite3_column_int64(st, 9);
		v->start_ms     = sqlite3_column_int64(st, 10);
		v->end_ms       = sqlite3_column_int64(st, 11);
	}
	sqlite3_finalize(st);
	fb_db_unlock(p->db);
	if (rc != SQLITE_ROW)
		return fb_err_set(err, FB_RV_FILE_NOT_FOUND, "no recovery point job %s", id);
	return FB_RV_OK;
}

uint32_t
points_get_job(void *arg, fb_rpc_call *call, const ProtobufCMessage *in, ProtobufCMessage *out)
{
	primary                          *p   = arg;
	const Failback__PointJobRef      *req = (const void *)in;
	Failback__GetPointJobResponse    *rsp = (void *)out;
	Failback__Job                    *job;
	pjob                              v;
	char                              buf[FB_ID_LEN + 1];
	fb_err                            err = {0};
	int64_t                           now = fb_clock_unix_ms();

	if (pj_view(p, job_guid(req->job, buf, sizeof(buf)), &v, &err) != FB_RV_OK)
		return fb_pb_fail(call, &err);
	if ((job = fb_rpc_alloc(call, sizeof(*job))) == NULL)
		return fb_rpc_fail(call, FB_RV_OUT_OF_MEMORY, "out of memory");
	failback__job__init(job);
	job->job_id            = fb_rpc_strdup(call, v.id);
	job->job_type               = JT_CREATE_SNAPSHOT;
	job->job_state              = (Failback__JobState)v.state;
	job->percent_complete       = v.state == JS(COMPLETED) ? 100
	                              : v.bytes_total ? (uint32_t)(v.bytes_done * 99 / v.bytes_total)
	                                              : 0;
	job->error_code             = v.error_code;
	job->error_description      = fb_rpc_strdup(call, v.error);
	job->time_submitted_unix_ms = v.submitted_ms;
	job->start_time_unix_ms     = v.start_ms;
	job->elapsed_ms = v.start_ms == 0 ? 0 : (uint64_t)((v.end_ms ? v.end_ms : now) - v.start_ms);
	job->time_before_removal_ms = REMOVAL_MS;
	job->cancellable            = v.state < JS(COMPLETED);
	job->vm_id                  = fb_rpc_strdup(call, v.vm_id);
	job->phase                  = fb_rpc_strdup(call, v.phase);
	job->bytes_done             = v.bytes_done;
	job->bytes_total            = v.bytes_total;
	rsp->job                    = job;
	if (job->job_id == NULL || job->error_description == NULL || job->vm_id == NULL ||
	    job->phase == NULL)
		return fb_rpc_fail(call, FB_RV_OUT_OF_MEMORY, "out of memory");
	if (v.state == JS(COMPLETED)) {
		fb_rp *rp;

		if (fb_rp_get(p->db, v.vm_id, v.rp_id, &rp, &err) == FB_RV_OK) { /* not pruned */
			rsp->point = fb_pb_rp(call, rp);
			free(rp);
			if (rsp->point == NULL)
				return fb_rpc_fail(call, FB_RV_OUT_OF_MEMORY, "out of memory");
		}
	}
	return FB_RV_OK;
}

uint32_t
points_cancel_job(void *arg, fb_rpc_call *call, const ProtobufCMessage *in, ProtobufCMessage *out)
{
	const Failback__PointJobRef *req = (const void *)in;
	char                         buf[FB_ID_LEN + 1];
	const char                  *id = job_guid(req->job, buf, sizeof(buf));

	(void)arg;
	(void)out;
	pthread_mutex_lock(&jobs_mtx);
	for (int i = 0; i < MAX_LIVE; i++)
		if (live[i] != NULL && strcasecmp(live[i]->id, id) == 0) {
			if (live[i]->ending) {
				pthread_mutex_unlock(&jobs_mtx);
				return fb_rpc_fail(call, FB_RV_INVALID_STATE,
				                   "recovery point job %.40s is completing", id);
			}
			live[i]->cancel = 1; /* the scan stops at its next block */
			pthread_mutex_unlock(&jobs_mtx);
			return FB_RV_OK;
		}
	pthread_mutex_unlock(&jobs_mtx);
	return fb_rpc_fail(call, FB_RV_INVALID_STATE, "recovery point job %.40s is not running",
	                   id);
}

uint32_t
points_recover(primary *p, fb_err *err)
{
	sqlite3_stmt *st;
	uint32_t      rv;
	int           rc, n;

	fb_db_lock(p->db);
	if ((rv = fb_db_prepare(p->db,
	                        "UPDATE point_jobs SET state = 10, phase = 'Failed', error_code = "
	                        "32768, error = 'interrupted by a restart of the primary agent; no "
	                        "point was kept', end_ms = ? WHERE state < 7",
	                        &st, err)) != FB_RV_OK) {
		fb_db_unlock(p->db);
		return rv;
	}
	sqlite3_bind_int64(st, 1, fb_clock_unix_ms());
	rc = sqlite3_step(st);
	n  = sqlite3_changes(fb_db_handle(p->db));
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE &&
	    fb_db_prepare(p->db, "DELETE FROM point_jobs WHERE end_ms > 0 AND end_ms < ?", &st,
	                  err) == FB_RV_OK) {
		sqlite3_bind_int64(st, 1, fb_clock_unix_ms() - REMOVAL_MS);
		(void)sqlite3_step(st);
		sqlite3_finalize(st);
	}
	fb_db_unlock(p->db);
	if (rc != SQLITE_DONE)
		return fb_db_err(p->db, rc, "point jobs", err);
	if (n > 0)
		fb_log_warn("FB4033", "%d recovery point job(s) interrupted by a restart: failed, no "
		            "point kept", n);
	return FB_RV_OK;
}

