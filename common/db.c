/*
 * db.c - opening, migrating and transacting on the agent database.
 *
 * Migrations are an append-only list: migration i takes the schema from
 * version i to i+1 and runs in its own transaction together with the
 * version bump, so a crash mid-upgrade leaves the previous version intact.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "failback/db.h"
#include "failback/fsops.h"

struct fb_db {
	sqlite3        *h;
	pthread_mutex_t mtx;
};

static const char *const migrations[] = {
    /* 0 → 1: the first schema. */
    "CREATE TABLE vms ("
    "  id TEXT PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE,"
    "  state INTEGER NOT NULL,"
    "  mode INTEGER NOT NULL,"
    "  health INTEGER NOT NULL,"
    "  recovery_history INTEGER NOT NULL,"
    "  created_ms INTEGER NOT NULL);"
    "CREATE TABLE disks ("
    "  vm_id TEXT NOT NULL REFERENCES vms(id) ON DELETE CASCADE,"
    "  name TEXT NOT NULL,"
    "  path TEXT NOT NULL,"
    "  size INTEGER NOT NULL,"
    "  PRIMARY KEY (vm_id, name));"
    "CREATE TABLE rps ("
    "  id TEXT PRIMARY KEY,"
    "  vm_id TEXT NOT NULL REFERENCES vms(id) ON DELETE CASCADE,"
    "  time_ms INTEGER NOT NULL,"
    "  type INTEGER NOT NULL,"
    "  algorithm TEXT NOT NULL,"
    "  seq INTEGER NOT NULL);"
    "CREATE INDEX rps_vm ON rps(vm_id, seq);"
    "CREATE TABLE rp_disks ("
    "  rp_id TEXT NOT NULL REFERENCES rps(id) ON DELETE CASCADE,"
    "  disk TEXT NOT NULL,"
    "  size INTEGER NOT NULL,"
    "  block_size INTEGER NOT NULL,"
    "  block_count INTEGER NOT NULL,"
    "  root BLOB NOT NULL,"
    "  leaves BLOB NOT NULL,"
    "  PRIMARY KEY (rp_id, disk));"
    "CREATE TABLE packs ("
    "  id INTEGER PRIMARY KEY,"
    "  size INTEGER NOT NULL);"
    "CREATE TABLE blocks ("
    "  hash BLOB PRIMARY KEY,"
    "  pack INTEGER NOT NULL,"
    "  offset INTEGER NOT NULL,"
    "  stored_len INTEGER NOT NULL,"
    "  raw_len INTEGER NOT NULL,"
    "  flags INTEGER NOT NULL,"
    "  refs INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE INDEX blocks_pack ON blocks(pack, offset);",
    /* (Agents before 0.2 also created the replica's jobs table here; the
     * replica's own schema now makes it when it is missing.) */
    /* 1 → 2: which point a failed-over VM runs from. */
    "ALTER TABLE vms ADD COLUMN failover_rp TEXT NOT NULL DEFAULT '';",
    /* 2 → 3: the relationship of a VM (DESIGN §2a): its generation, the
     * other side, a reverse whose other side is still to be done, and
     * points held as history only (ids and roots, no leaves or blocks). */
    "ALTER TABLE vms ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE vms ADD COLUMN peer_url TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE vms ADD COLUMN peer_name TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE vms ADD COLUMN pending_peer TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE rps ADD COLUMN held INTEGER NOT NULL DEFAULT 1;",
    /* 3 → 4: the primary's certificate a VM's relationship pins. */
    "ALTER TABLE vms ADD COLUMN peer_pin TEXT NOT NULL DEFAULT '';",
    /* 4 → 5: a disk's image format (raw, or one read through qemu-nbd). */
    "ALTER TABLE disks ADD COLUMN format TEXT NOT NULL DEFAULT 'raw';",
    /* 5 → 6: a block record's CRC-32C (store.h); NULL for records written
     * before, which a read checks by their hash. */
    "ALTER TABLE blocks ADD COLUMN crc INTEGER;",
};

#define NMIGRATIONS (int)(sizeof(migrations) / sizeof(migrations[0]))

static const struct {
	int      rc;
	uint32_t rv;
	const char *hint;
} sqlite_table[] = {
    {SQLITE_FULL, FB_RV_FAILED, "disk full"},
    {SQLITE_IOERR, FB_RV_FAILED, "I/O error"},
    {SQLITE_CORRUPT, FB_RV_FAILED, "database corrupt"},
    {SQLITE_NOTADB, FB_RV_FAILED, "not a database"},
    {SQLITE_CANTOPEN, FB_RV_FILE_NOT_FOUND, "cannot open"},
    {SQLITE_PERM, FB_RV_ACCESS_DENIED, "permission denied"},
    {SQLITE_READONLY, FB_RV_ACCESS_DENIED, "read-only"},
    {SQLITE_BUSY, FB_RV_SYSTEM_IN_USE, "busy"},
    {SQLITE_LOCKED, FB_RV_SYSTEM_IN_USE, "locked"},
    {SQLITE_NOMEM, FB_RV_OUT_OF_MEMORY, "out of memory"},
    {SQLITE_CONSTRAINT, FB_RV_INVALID_PARAMETER, "constraint"},
};

uint32_t
fb_db_err(fb_db *db, int rc, const char *what, fb_err *err)
{
	uint32_t    rv   = FB_RV_FAILED;
	const char *hint = "error";

	for (size_t i = 0; i < sizeof(sqlite_table) / sizeof(sqlite_table[0]); i++) {
		if ((rc & 0xff) == sqlite_table[i].rc) {
			rv   = sqlite_table[i].rv;
			hint = sqlite_table[i].hint;
			break;
		}
	}
	return fb_err_set(err, rv, "%s: database %s (%s)", what, hint,
	                  db != NULL && db->h != NULL ? sqlite3_errmsg(db->h) : sqlite3_errstr(rc));
}

uint32_t
fb_db_exec(fb_db *db, const char *sql, fb_err *err)
{
	int rc = sqlite3_exec(db->h, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? FB_RV_OK : fb_db_err(db, rc, "SQL", err);
}

uint32_t
fb_db_prepare(fb_db *db, const char *sql, sqlite3_stmt **st, fb_err *err)
{
	int rc = sqlite3_prepare_v2(db->h, sql, -1, st, NULL);

	return rc == SQLITE_OK ? FB_RV_OK : fb_db_err(db, rc, "prepare", err);
}

int
fb_db_schema_version(fb_db *db)
{
	sqlite3_stmt *st;
	int           v = -1;

	if (sqlite3_prepare_v2(db->h, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return v;
}

static uint32_t
db_migrate(fb_db *db, const char *path, fb_err *err)
{
	int      v = fb_db_schema_version(db);
	uint32_t rv;

	if (v < 0)
		return fb_db_err(db, sqlite3_errcode(db->h), path, err);
	if (v > NMIGRATIONS)
		return fb_err_set(err, FB_RV_NOT_SUPPORTED,
		                  "%s: schema version %d is newer than this agent's %d", path, v,
		                  NMIGRATIONS);
	for (; v < NMIGRATIONS; v++) {
		char bump[64];

		snprintf(bump, sizeof(bump), "PRAGMA user_version = %d", v + 1);
		if ((rv = fb_db_begin(db, err)) != FB_RV_OK)
			return rv;
		if ((rv = fb_db_exec(db, migrations[v], err)) != FB_RV_OK ||
		    (rv = fb_db_exec(db, bump, err)) != FB_RV_OK) {
			fb_db_rollback(db);
			return rv;
		}
		if ((rv = fb_db_commit(db, err)) != FB_RV_OK)
			return rv;
	}
	return FB_RV_OK;
}

/* The program's own list, versioned in program_schema under its name. */
static uint32_t
db_migrate_program(fb_db *db, const char *path, const fb_db_schema *prog, fb_err *err)
{
	sqlite3_stmt *st;
	int           v = 0, rc;
	uint32_t      rv;

	if ((rv = fb_db_exec(db,
	                     "CREATE TABLE IF NOT EXISTS program_schema ("
	                     "  name TEXT PRIMARY KEY, version INTEGER NOT NULL)",
	                     err)) != FB_RV_OK)
		return rv;
	if ((rv = fb_db_prepare(db, "SELECT version FROM program_schema WHERE name = ?", &st,
	                        err)) != FB_RV_OK)
		return rv;
	sqlite3_bind_text(st, 1, prog->name, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return fb_db_err(db, rc, path, err);
	if (v > (int)prog->n)
		return fb_err_set(err, FB_RV_NOT_SUPPORTED,
		                  "%s: %s schema version %d is newer than this agent's %zu", path,
		                  prog->name, v, prog->n);
	for (; v < (int)prog->n; v++) {
		if ((rv = fb_db_begin(db, err)) != FB_RV_OK)
			return rv;
		if ((rv = fb_db_exec(db, prog->migrations[v], err)) != FB_RV_OK ||
		    (rv = fb_db_prepare(db,
		                        "INSERT INTO program_schema (name, version) VALUES (?1, ?2) "
		                        "ON CONFLICT(name) DO UPDATE SET version = ?2",
		                        &st, err)) != FB_RV_OK) {
			fb_db_rollback(db);
			return rv;
		}
		sqlite3_bind_text(st, 1, prog->name, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 2, v + 1);
		rc = sqlite3_step(st);
		sqlite3_finalize(st);
		if (rc != SQLITE_DONE) {
			rv = fb_db_err(db, rc, path, err);
			fb_db_rollback(db);
			return rv;
		}
		if ((rv = fb_db_commit(db, err)) != FB_RV_OK)
			return rv;
	}
	return FB_RV_OK;
}

uint32_t
fb_db_open(fb_db **out, const char *path, fb_err *err)
{
	return fb_db_open_schema(out, path, NULL, err);
}

uint32_t
fb_db_open_schema(fb_db **out, const char *path, const fb_db_schema *prog, fb_err *err)
{
	fb_db   *db = calloc(1, sizeof(*db));
	int      rc;
	uint32_t rv;

	if (db == NULL)
		return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
	pthread_mutex_init(&db->mtx, NULL);
	rc = sqlite3_open_v2(path, &db->h,
	                     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL);
	if (rc != SQLITE_OK) {
		rv = fb_db_err(db, rc, path, err);
		fb_db_close(db);
		return rv;
	}
	sqlite3_busy_timeout(db->h, 5000);
	if ((rv = fb_db_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
	                         "PRAGMA foreign_keys=ON;",
	                     err)) != FB_RV_OK ||
	    (rv = db_migrate(db, path, err)) != FB_RV_OK ||
	    (prog != NULL && (rv = db_migrate_program(db, path, prog, err)) != FB_RV_OK)) {
		fb_db_close(db);
		return rv;
	}
	*out = db;
	return FB_RV_OK;
}

void
fb_db_close(fb_db *db)
{
	if (db == NULL)
		return;
	if (db->h != NULL)
		sqlite3_close_v2(db->h);
	pthread_mutex_destroy(&db->mtx);
	free(db);
}

sqlite3 *
fb_db_handle(fb_db *db)
{
	return db->h;
}

void
fb_db_lock(fb_db *db)
{
	pthread_mutex_lock(&db->mtx);
}

void
fb_db_unlock(fb_db *db)
{
	pthread_mutex_unlock(&db->mtx);
}

uint32_t
fb_db_begin(fb_db *db, fb_err *err)
{
	uint32_t rv;

	pthread_mutex_lock(&db->mtx);
	if ((rv = fb_db_exec(db, "BEGIN IMMEDIATE", err)) != FB_RV_OK)
		pthread_mutex_unlock(&db->mtx);
	return rv;
}

uint32_t
fb_db_commit(fb_db *db, fb_err *err)
{
	uint32_t rv;
	int      e;

	if ((e = fb_fs_commit()) != 0) {
		sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
		pthread_mutex_unlock(&db->mtx);
		return fb_err_errno(err, e, "commit");
	}
	if ((rv = fb_db_exec(db, "COMMIT", err)) != FB_RV_OK)
		sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
	pthread_mutex_unlock(&db->mtx);
	return rv;
}

void
fb_db_rollback(fb_db *db)
{
	sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
	pthread_mutex_unlock(&db->mtx);
}
