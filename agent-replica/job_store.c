/*
 * job_store.c - the jobs table (job_store.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "failback/clock.h"
#include "driver.h"
#include "job_store.h"
#include "replica.h"
#include "types.pb-c.h"

static const char *const job_migrations[] = {
    /* 1: the jobs table (agents before 0.2 made it in the common schema). */
    "CREATE TABLE IF NOT EXISTS jobs ("
    "  id TEXT PRIMARY KEY,"
    "  vm_id TEXT NOT NULL,"
    "  type INTEGER NOT NULL,"
    "  state INTEGER NOT NULL,"
    "  phase TEXT NOT NULL,"
    "  percent INTEGER NOT NULL,"
    "  error_code INTEGER NOT NULL,"
    "  error_description TEXT NOT NULL,"
    "  submitted_ms INTEGER NOT NULL,"
    "  started_ms INTEGER NOT NULL,"
    "  ended_ms INTEGER NOT NULL,"
    "  params BLOB,"
    "  checkpoint BLOB);",
    /* 2: the counters of a finished job, and an acknowledged cancel. */
    "ALTER TABLE jobs ADD COLUMN bytes_done INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE jobs ADD COLUMN bytes_total INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE jobs ADD COLUMN blocks_done INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE jobs ADD COLUMN blocks_total INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE jobs ADD COLUMN rate INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE jobs ADD COLUMN cancel INTEGER NOT NULL DEFAULT 0;",
    /* 3: what a job moved on the wire and read from disk, for its summary. */
    "ALTER TABLE jobs ADD COLUMN wire INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE jobs ADD COLUMN bytes_read INTEGER NOT NULL DEFAULT 0;",
    /* 4: how a failback's compare decided what to read. */
    "ALTER TABLE jobs ADD COLUMN compare_mode TEXT NOT NULL DEFAULT '';",
};

const fb_db_schema job_store_schema = {"replica", job_migrations,
                                       sizeof(job_migrations) / sizeof(job_migrations[0])};

#define JOB_LIVE                                                                               \
	"NOT (state >= 7 AND ended_ms > 0 AND "                                                \
	"ended_ms < strftime('%s','now') * 1000 - 300000)"

/* lo + (hi - lo) x done / total */
static unsigned
span(unsigned lo, unsigned hi, uint64_t done, uint64_t total)
{
	if (total == 0)
		return lo;
	if (done > total)
		done = total;
	return lo + (unsigned)((double)(hi - lo) * (double)done / (double)total);
}

unsigned
job_percent(const run_view *v)
{
	const char *p = v->phase;
	unsigned    pct;

	if (v->state == FAILBACK__JOB_STATE__JS_COMPLETED)
		return 100;
	if (v->type == JT_FAILBACK && strcmp(p, "Comparing") == 0)
		pct = span(0, 30, v->bytes_done, v->bytes_total);
	else if (v->type == JT_FAILBACK && strcmp(p, "Transferring") == 0)
		pct = span(30, 70, v->blocks_done, v->blocks_total);
	else if (v->type == JT_FAILBACK && strcmp(p, "Verifying") == 0)
		pct = span(70, 100, v->bytes_done, v->bytes_total);
	else if (v->type == JT_REPLICATE && strcmp(p, "Comparing") == 0)
		pct = span(0, 30, v->bytes_done, v->bytes_total);
	else if (v->type == JT_REPLICATE && strcmp(p, "Transferring") == 0)
		pct = span(30, 100, v->blocks_done, v->blocks_total);
	else if (v->type == JT_ESTIMATE && strcmp(p, "Comparing") == 0)
		pct = span(0, 90, v->bytes_done, v->bytes_total);
	else if (v->type == JT_ESTIMATE && strcmp(p, "Sampling") == 0)
		pct = 90;
	else
		pct = span(0, 100, v->blocks_done, v->blocks_total);
	return pct > 99 ? 99 : pct;
}

static void
copy_text(char *dst, size_t len, const unsigned char *src)
{
	snprintf(dst, len, "%s", src != NULL ? (const char *)src : "");
}

/* A message packed into a malloc'd buffer (NULL when out of memory). */
static uint8_t *
pack_message(const ProtobufCMessage *m, size_t *len)
{
	uint8_t *blob;

	*len = protobuf_c_message_get_packed_size(m);
	if ((blob = malloc(*len + 1)) != NULL)
		protobuf_c_message_pack(m, blob);
	return blob;
}

uint32_t
job_store_insert(fb_db *db, const char *id, const char *vm_key, int type, const char *phase,
                 const Failback__JobParams *params, fb_err *err)
{
	size_t        len;
	uint8_t      *blob = pack_message(&params->base, &len);
	sqlite3_stmt *st;
	uint32_t      rv;
	int           rc;

	if (blob == NULL)
		return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
	if ((rv = fb_db_begin(db, err)) != FB_RV_OK) {
		free(blob);
		return rv;
	}
	(void)fb_db_exec(db, "DELETE FROM jobs WHERE NOT " JOB_LIVE, NULL);
	if ((rv = fb_db_prepare(db,
	                        "INSERT INTO jobs (id, vm_id, type, state, phase, percent, "
	                        "error_code, error_description, submitted_ms, started_ms, "
	                        "ended_ms, params, checkpoint) VALUES (?, ?, ?, 2, ?, 0, 0, '', "
	                        "?, 0, 0, ?, NULL)",
	                        &st, err)) == FB_RV_OK) {
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, vm_key, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 3, type);
		sqlite3_bind_text(st, 4, phase, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 5, fb_clock_unix_ms());
		sqlite3_bind_blob(st, 6, blob, (int)len, SQLITE_STATIC);
		rc = sqlite3_step(st);
		sqlite3_finalize(st);
		if (rc != SQLITE_DONE)
			rv = fb_db_err(db, rc, "persist job", err);
	}
	free(blob);
	if (rv != FB_RV_OK) {
		fb_db_rollback(db);
		return rv;
	}
	return fb_db_commit(db, err);
}

uint32_t
job_store_update(fb_db *db, const job_row *j, fb_err *err)
{
	sqlite3_stmt *st;
	uint32_t      rv;
	int           rc;

	fb_db_lock(db);
	if ((rv = fb_db_prepare(
	         db,
	         "UPDATE jobs SET state = ?2, phase = ?3, percent = ?4, error_code = ?5, "
	         "error_description = ?6, vm_id = CASE WHEN ?7 = '' THEN vm_id ELSE ?7 END, "
	         "started_ms = CASE WHEN started_ms = 0 AND ?2 >= 4 THEN ?8 ELSE started_ms END, "
	         "ended_ms = CASE WHEN ?2 >= 7 THEN ?8 ELSE 0 END, bytes_done = ?9, "
	         "bytes_total = ?10, blocks_done = ?11, blocks_total = ?12, rate = ?13, "
	         "wire = ?14, bytes_read = ?15, compare_mode = ?16 WHERE id = ?1",
	         &st, err)) == FB_RV_OK) {
		sqlite3_bind_text(st, 1, j->id, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 2, j->state);
		sqlite3_bind_text(st, 3, j->phase, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 4, (int)j->percent);
		sqlite3_bind_int64(st, 5, j->error_code);
		sqlite3_bind_text(st, 6, j->error, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 7, j->vm_id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 8, fb_clock_unix_ms());
		sqlite3_bind_int64(st, 9, (int64_t)j->bytes_done);
		sqlite3_bind_int64(st, 10, (int64_t)j->bytes_total);
		sqlite3_bind_int64(st, 11, (int64_t)j->blocks_done);
		sqlite3_bind_int64(st, 12, (int64_t)j->blocks_total);
		sqlite3_bind_int64(st, 13, (int64_t)j->rate);
		sqlite3_bind_int64(st, 14, (int64_t)j->wire);
		sqlite3_bind_int64(st, 15, (int64_t)j->bytes_read);
		sqlite3_bind_text(st, 16, j->compare_mode, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
		sqlite3_finalize(st);
		if (rc != SQLITE_DONE)
			rv = fb_db_err(db, rc, "record job progress", err);
	}
	fb_db_unlock(db);
	return rv;
}

uint32_t
job_store_cancel(fb_db *db, const char *id, uint32_t requested, fb_err *err)
{
	sqlite3_stmt *st;
	uint32_t      rv;
	int           rc;

	if ((rv = fb_db_begin(db, err)) != FB_RV_OK)
		return rv;
	if ((rv = fb_db_prepare(db, "UPDATE jobs SET cancel = ?2 WHERE id = ?1 AND state < 7", &st,
	                        err)) != FB_RV_OK) {
		fb_db_rollback(db);
		return rv;
	}
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, (int)requested);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		rv = fb_db_err(db, rc, "record the cancel", err);
		fb_db_rollback(db);
		return rv;
	}
	if (sqlite3_changes(fb_db_handle(db)) != 1) {
		fb_db_rollback(db);
		return fb_err_set(err, FB_RV_INVALID_STATE, "job %s is not running", id);
	}
	return fb_db_commit(db, err);
}

uint32_t
job_store_get(fb_db *db, const char *id, job_row *row, Failback__JobParams **params, fb_err *err)
{
	sqlite3_stmt *st;
	uint32_t      rv;
	int           rc;

	if (params != NULL)
		*params = NULL;
	memset(row, 0, sizeof(*row));
	fb_db_lock(db);
	if ((rv = fb_db_prepare(db,
	                        "SELECT id, vm_id, type, state, phase, percent, error_code, "
	                        "error_description, submitted_ms, started_ms, ended_ms, params, "
	                        "bytes_done, bytes_total, blocks_done, blocks_total, rate, cancel, "
	                        "wire, bytes_read, compare_mode FROM jobs WHERE id = lower(?) AND "
	                        JOB_LIVE,
	                        &st, err)) != FB_RV_OK) {
		fb_db_unlock(db);
		return rv;
	}
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		copy_text(row->id, sizeof(row->id), sqlite3_column_text(st, 0));
		copy_text(row->vm_id, sizeof(row->vm_id), sqlite3_column_text(st, 1));
		row->type       = sqlite3_column_int(st, 2);
		row->state      = sqlite3_column_int(st, 3);
		copy_text(row->phase, sizeof(row->phase), sqlite3_column_text(st, 4));
		row->percent    = (unsigned)sqlite3_column_int(st, 5);
		row->error_code = (uint32_t)sqlite3_column_int64(st, 6);
		copy_text(row->error, sizeof(row->error), sqlite3_column_text(st, 7));
		row->submitted_ms = sqlite3_column_int64(st, 8);
		row->started_ms   = sqlite3_column_int64(st, 9);
		row->ended_ms     = sqlite3_column_int64(st, 10);
		row->bytes_done   = (uint64_t)sqlite3_column_int64(st, 12);
		row->bytes_total  = (uint64_t)sqlite3_column_int64(st, 13);
		row->blocks_done  = (uint64_t)sqlite3_column_int64(st, 14);
		row->blocks_total = (uint64_t)sqlite3_column_int64(st, 15);
		row->rate         = (uint64_t)sqlite3_column_int64(st, 16);
		row->cancel       = (uint32_t)sqlite3_column_int(st, 17);
		row->wire         = (uint64_t)sqlite3_column_int64(st, 18);
		row->bytes_read   = (uint64_t)sqlite3_column_int64(st, 19);
		copy_text(row->compare_mode, sizeof(row->compare_mode), sqlite3_column_text(st, 20));
		if (params != NULL &&
		    (*params = failback__job_params__unpack(NULL, (size_t)sqlite3_column_bytes(st, 11),
		                                            sqlite3_column_blob(st, 11))) == NULL)
			rv = fb_err_set(err, FB_RV_FAILED, "job %s: its parameters are unreadable", id);
	} else if (rc == SQLITE_DONE) {
		rv = fb_err_set(err, FB_RV_FILE_NOT_FOUND, "no job %s", id);
	} else {
		rv = fb_db_err(db, rc, "read job", err);
	}
	sqlite3_finalize(st);
	fb_db_unlock(db);
	return rv;
}

static uint32_t
job_store_ids(fb_db *db, const char *sql, const char *arg, char (**ids)[FB_ID_LEN + 1],
              size_t *n, fb_err *err)
{
	sqlite3_stmt *st;
	char(*out)[FB_ID_LEN + 1] = NULL;
	size_t   cnt = 0, cap = 0;
	uint32_t rv;
	int      rc;

	*ids = NULL;
	*n   = 0;
	fb_db_lock(db);
	if ((rv = fb_db_prepare(db, sql, &st, err)) != FB_RV_OK) {
		fb_db_unlock(db);
		return rv;
	}
	if (arg != NULL)
		sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (cnt == cap) {
			void *g = realloc(out, (cap = cap ? cap * 2 : 16) * sizeof(*out));
			if (g == NULL) {
				rv = fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
				break;
			}
			out = g;
		}
		copy_text(out[cnt++], FB_ID_LEN + 1, sqlite3_column_text(st, 0));
	}
	if (rv == FB_RV_OK && rc != SQLITE_DONE)
		rv = fb_db_err(db, rc, "list jobs", err);
	sqlite3_finalize(st);
	fb_db_unlock(db);
	if (rv != FB_RV_OK) {
		free(out);
		return rv;
	}
	*ids = out;
	*n   = cnt;
	return FB_RV_OK;
}

uint32_t
job_store_list(fb_db *db, const char *vm_id, char (**ids)[FB_ID_LEN + 1], size_t *n, fb_err *err)
{
	return job_store_ids(db,
	                     "SELECT id FROM jobs WHERE (?1 = '' OR vm_id = lower(?1)) AND " JOB_LIVE
	                     " ORDER BY submitted_ms",
	                     vm_id, ids, n, err);
}

uint32_t
job_store_unfinished(fb_db *db, char (**ids)[FB_ID_LEN + 1], size_t *n, fb_err *err)
{
	return job_store_ids(db, "SELECT id FROM jobs WHERE state < 7 ORDER BY submitted_ms", NULL,
	                     ids, n, err);
}

uint32_t
job_store_checkpoint_save(fb_db *db, const char *id, const Failback__JobCheckpoint *cp,
                          fb_err *err)
{
	size_t        len;
	uint8_t      *blob = pack_message(&cp->base, &len);
	sqlite3_stmt *st;
	uint32_t      rv;
	int           rc;

	if (blob == NULL)
		return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
	if ((rv = fb_db_begin(db, err)) == FB_RV_OK &&
	    (rv = fb_db_prepare(db, "UPDATE jobs SET checkpoint = ? WHERE id = ?", &st, err)) !=
	        FB_RV_OK)
		fb_db_rollback(db);
	if (rv != FB_RV_OK) {
		free(blob);
		return rv;
	}
	sqlite3_bind_blob(st, 1, blob, (int)len, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	free(blob);
	if (rc != SQLITE_DONE) {
		rv = fb_db_err(db, rc, "checkpoint", err);
		fb_db_rollback(db);
		return rv;
	}
	return fb_db_commit(db, err);
}

uint32_t
job_store_checkpoint_load(fb_db *db, const char *id, Failback__JobCheckpoint **cp, fb_err *err)
{
	sqlite3_stmt *st;
	uint32_t      rv;
	int           rc;

	*cp = NULL;
	fb_db_lock(db);
	if ((rv = fb_db_prepare(db, "SELECT checkpoint FROM jobs WHERE id = ?", &st, err)) !=
	    FB_RV_OK) {
		fb_db_unlock(db);
		return rv;
	}
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_bytes(st, 0) > 0 &&
	    (*cp = failback__job_checkpoint__unpack(NULL, (size_t)sqlite3_column_bytes(st, 0),
	                                            sqlite3_column_blob(st, 0))) == NULL)
		rv = fb_err_set(err, FB_RV_FAILED, "job %s: its checkpoint is unreadable", id);
	else if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		rv = fb_db_err(db, rc, "read checkpoint", err);
	sqlite3_finalize(st);
	fb_db_unlock(db);
	return rv;
}
