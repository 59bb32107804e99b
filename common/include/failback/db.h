/*
 * db.h - the agent database: SQLite in WAL mode with synchronous=FULL, a
 * schema version and forward migrations, one connection per agent.
 *
 * Locking: the connection is shared by handler threads, so every use is
 * bracketed. fb_db_begin takes the database lock and opens a write
 * transaction (BEGIN IMMEDIATE); fb_db_commit or fb_db_rollback ends it and
 * releases the lock. Reads outside a transaction bracket with
 * fb_db_lock / fb_db_unlock. Keep brackets short: never hash or copy a disk
 * inside one.
 *
 * SQLite result codes are translated once, by table, in fb_db_err.
 */
#ifndef FAILBACK_DB_H
#define FAILBACK_DB_H

#include <sqlite3.h>

#include "failback/err.h"

#define FB_DB_SCHEMA_VERSION 6

typedef struct fb_db fb_db;

/* fb_db_open opens (creating) path and migrates it to the current schema.
 * A database from a newer version is refused. */
uint32_t fb_db_open(fb_db **out, const char *path, fb_err *err);

/* A program's own tables: an append-only list of migrations, versioned
 * under name in the program_schema table, run after the common ones. */
typedef struct fb_db_schema {
	const char        *name;
	const char *const *migrations;
	size_t             n;
} fb_db_schema;

/* fb_db_open_schema is fb_db_open plus the program's schema (may be NULL). */
uint32_t fb_db_open_schema(fb_db **out, const char *path, const fb_db_schema *prog, fb_err *err);
void     fb_db_close(fb_db *db); /* close(NULL) is a no-op */

sqlite3 *fb_db_handle(fb_db *db);
void     fb_db_lock(fb_db *db);
void     fb_db_unlock(fb_db *db);

uint32_t fb_db_begin(fb_db *db, fb_err *err);  /* lock + BEGIN IMMEDIATE */
uint32_t fb_db_commit(fb_db *db, fb_err *err); /* COMMIT (or ROLLBACK on failure) + unlock */
void     fb_db_rollback(fb_db *db);            /* ROLLBACK + unlock */

/* fb_db_exec runs SQL without results. */
uint32_t fb_db_exec(fb_db *db, const char *sql, fb_err *err);

/* fb_db_prepare prepares sql; on failure fills err. */
uint32_t fb_db_prepare(fb_db *db, const char *sql, sqlite3_stmt **st, fb_err *err);

/* fb_db_err translates a SQLite result code (SQLITE_FULL → "disk full",
 * SQLITE_BUSY/LOCKED → System is in use, SQLITE_NOMEM → Out of memory, ...)
 * with the database's own message. */
uint32_t fb_db_err(fb_db *db, int rc, const char *what, fb_err *err);

/* fb_db_schema_version reads the version recorded in the database. */
int fb_db_schema_version(fb_db *db);

#endif
