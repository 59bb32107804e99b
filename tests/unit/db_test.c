/*
 * db_test.c - the agent database: WAL mode, the schema version, and a
 * database from a newer agent is refused rather than misread.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "failback/db.h"
#include "failback/fsops.h"

static char dir[256], path[300];

static int
setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "%s/fbdb.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/state.db", dir);
	return 0;
}

static int
teardown(void **state)
{
	char cmd[400];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void
new_database_is_wal_at_current_schema(void **state)
{
	fb_db        *db;
	fb_err        err;
	sqlite3_stmt *st;

	(void)state;
	assert_int_equal(fb_db_open(&db, path, &err), FB_RV_OK);
	assert_int_equal(fb_db_schema_version(db), FB_DB_SCHEMA_VERSION);
	assert_int_equal(fb_db_prepare(db, "PRAGMA journal_mode", &st, &err), FB_RV_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
	sqlite3_finalize(st);
	fb_db_close(db);
	/* Reopening migrates nothing and keeps the version. */
	assert_int_equal(fb_db_open(&db, path, &err), FB_RV_OK);
	assert_int_equal(fb_db_schema_version(db), FB_DB_SCHEMA_VERSION);
	fb_db_close(db);
}

static void
database_from_a_newer_agent_is_refused(void **state)
{
	fb_db *db;
	fb_err err;

	(void)state;
	assert_int_equal(fb_db_open(&db, path, &err), FB_RV_OK);
	assert_int_equal(fb_db_exec(db, "PRAGMA user_version = 99", &err), FB_RV_OK);
	fb_db_close(db);
	assert_int_equal(fb_db_open(&db, path, &err), FB_RV_NOT_SUPPORTED);
	assert_non_null(strstr(err.msg, "newer than this agent"));
}

static int
fail_commit(void)
{
	return 5; /* EIO */
}

static void
failed_commit_rolls_back(void **state)
{
	fb_fsops      ops;
	fb_db        *db;
	fb_err        err;
	sqlite3_stmt *st;

	(void)state;
	remove(path);
	assert_int_equal(fb_db_open(&db, path, &err), FB_RV_OK);
	assert_int_equal(fb_db_begin(db, &err), FB_RV_OK);
	assert_int_equal(fb_db_exec(db,
	                            "INSERT INTO vms (id, name, state, mode, health, recovery_history, "
	                            "created_ms) VALUES ('a', 'vm', 0, 0, 0, 0, 0)", &err),
	                 FB_RV_OK);
	memset(&ops, 0, sizeof(ops));
	ops.commit = fail_commit;
	fb_fsops_set(&ops);
	assert_int_not_equal(fb_db_commit(db, &err), FB_RV_OK);
	fb_fsops_set(NULL);
	assert_int_equal(fb_db_prepare(db, "SELECT count(*) FROM vms", &st, &err), FB_RV_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 0);
	sqlite3_finalize(st);
	fb_db_close(db);
}

static void
unopenable_path_is_an_error(void **state)
{
	fb_db *db = NULL;
	fb_err err;

	(void)state;
	assert_int_not_equal(fb_db_open(&db, "/nonexistent/dir/state.db", &err), FB_RV_OK);
	assert_null(db);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(new_database_is_wal_at_current_schema),
	    cmocka_unit_test(database_from_a_newer_agent_is_refused),
	    cmocka_unit_test(failed_commit_rolls_back),
	    cmocka_unit_test(unopenable_path_is_an_error),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
