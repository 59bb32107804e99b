/*
 * lease_test.c - the data directory's lease (lease.h) between real
 * processes on real files, each process standing in for a node: a live
 * holder keeps it, a frozen one loses it and stops when it thaws (or, when
 * nobody took it meanwhile, goes on), a clean
 * stop hands it over, garbage is not trusted, bad settings are refused.
 * No flock here: that is what another host would not see.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "failback/lease.h"

static char dir[256];

static int
setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/fblease.XXXXXX");
	return mkdtemp(dir) != NULL ? 0 : -1;
}

static int
teardown(void **state)
{
	char path[300];

	(void)state;
	snprintf(path, sizeof(path), "%s/agent.lease", dir);
	unlink(path);
	return rmdir(dir);
}

static void
slurp(char *buf, size_t cap)
{
	char  path[300];
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "%s/agent.lease", dir);
	assert_non_null(f = fopen(path, "r"));
	n       = fread(buf, 1, cap - 1, f);
	buf[n]  = '\0';
	fclose(f);
}

/* A child that takes the lease as node and renews it until killed; it
 * writes one byte to the pipe once it holds it. */
static pid_t
holder(const char *node)
{
	int   p[2];
	pid_t pid;
	char  c;

	assert_int_equal(pipe(p), 0);
	assert_true((pid = fork()) >= 0);
	if (pid == 0) {
		fb_lease *l;
		fb_err    err = {0};

		close(p[0]);
		if (fb_lease_acquire(dir, node, 2, &l, &err) != FB_RV_OK ||
		    fb_lease_start(l, &err) != FB_RV_OK)
			_exit(3);
		(void)!write(p[1], "x", 1);
		for (;;)
			pause();
	}
	close(p[1]);
	assert_int_equal(read(p[0], &c, 1), 1);
	close(p[0]);
	return pid;
}

static int
reap(pid_t pid)
{
	int st;

	assert_int_equal(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void
a_lease_is_taken_renewed_and_released(void **state)
{
	fb_lease *l;
	fb_err    err = {0};
	char      buf[512];

	(void)state;
	assert_int_equal(fb_lease_acquire(dir, "node-a", 2, &l, &err), FB_RV_OK);
	slurp(buf, sizeof(buf));
	assert_non_null(strstr(buf, "node node-a\n"));
	assert_non_null(strstr(buf, "counter 1\n"));
	assert_non_null(strstr(buf, "state held\n"));
	assert_int_equal(fb_lease_check(dir, "node-a", getpid(), &err), FB_RV_OK);
	assert_int_equal(fb_lease_check(dir, "node-b", getpid(), &err), FB_RV_SYSTEM_IN_USE);
	assert_int_equal(fb_lease_renew(l, &err), FB_RV_OK);
	assert_int_equal(fb_lease_renew(l, &err), FB_RV_OK);
	slurp(buf, sizeof(buf));
	assert_non_null(strstr(buf, "counter 3\n"));
	fb_lease_release(l);
	slurp(buf, sizeof(buf));
	assert_non_null(strstr(buf, "state released\n"));
	assert_int_equal(fb_lease_check(dir, "node-a", getpid(), &err), FB_RV_SYSTEM_IN_USE);
	/* another node takes a released lease without waiting for it to expire */
	assert_int_equal(fb_lease_acquire(dir, "node-b", 2, &l, &err), FB_RV_OK);
	assert_int_equal(fb_lease_check(dir, "node-b", getpid(), &err), FB_RV_OK);
	fb_lease_release(l);
}

static void
a_live_holder_on_another_node_keeps_it(void **state)
{
	fb_lease *l   = NULL;
	fb_err    err = {0};
	pid_t     a   = holder("node-a");

	(void)state;
	assert_int_equal(fb_lease_acquire(dir, "node-b", 2, &l, &err), FB_RV_SYSTEM_IN_USE);
	assert_null(l);
	assert_non_null(strstr(err.msg, "node node-a"));
	assert_non_null(strstr(err.msg, "renewed it within the last 2 s"));
	assert_int_equal(fb_lease_check(dir, "node-a", a, &err), FB_RV_OK);
	kill(a, SIGKILL);
	assert_int_equal(reap(a), 128 + SIGKILL);
}

static void
a_frozen_holder_loses_it_and_stops_when_it_thaws(void **state)
{
	fb_lease *l;
	fb_err    err = {0};
	pid_t     a   = holder("node-a");
	char      buf[512];

	(void)state;
	kill(a, SIGSTOP);
	assert_int_equal(fb_lease_acquire(dir, "node-b", 2, &l, &err), FB_RV_OK);
	assert_int_equal(fb_lease_check(dir, "node-b", getpid(), &err), FB_RV_OK);
	/* A thaws, reads the new holder at its next renewal and stops at once,
	 * leaving the record as B wrote it */
	slurp(buf, sizeof(buf));
	kill(a, SIGCONT);
	assert_int_equal(reap(a), FB_LEASE_LOST_EXIT);
	{
		char after[512];

		slurp(after, sizeof(after));
		assert_string_equal(after, buf);
	}
	assert_int_equal(fb_lease_renew(l, &err), FB_RV_OK);
	fb_lease_release(l);
}

static void
a_frozen_holder_nobody_replaced_goes_on(void **state)
{
	fb_err err = {0};
	pid_t  a   = holder("node-a");
	char   before[512], now[512];
	int    moved = 0;

	(void)state;
	kill(a, SIGSTOP);
	slurp(before, sizeof(before));
	sleep(3); /* longer than its 2 s timeout */
	kill(a, SIGCONT);
	for (int i = 0; i < 100 && !moved; i++) {
		usleep(50000);
		slurp(now, sizeof(now));
		moved = strcmp(now, before) != 0;
	}
	assert_true(moved); /* it renewed */
	assert_int_equal(fb_lease_check(dir, "node-a", a, &err), FB_RV_OK);
	assert_int_equal(kill(a, 0), 0);
	kill(a, SIGKILL);
	assert_int_equal(reap(a), 128 + SIGKILL);
}

static void
a_dead_holder_on_another_node_is_taken_over(void **state)
{
	fb_lease *l;
	fb_err    err = {0};
	pid_t     a   = holder("node-a");
	char      buf[512];

	(void)state;
	kill(a, SIGKILL);
	assert_int_equal(reap(a), 128 + SIGKILL);
	assert_int_equal(fb_lease_acquire(dir, "node-b", 2, &l, &err), FB_RV_OK);
	slurp(buf, sizeof(buf));
	assert_non_null(strstr(buf, "node node-b\n"));
	fb_lease_release(l);
}

/* A read that overlaps a renewal may see half of each record in the page
 * cache: the record's check tells, and the reader reads again. A holder
 * renewing as fast as it can, checked as fast as it can, is never "lost". */
static void
reads_during_renewals_never_see_a_torn_record(void **state)
{
	int      p[2];
	pid_t    a;
	char     c;
	fb_err   err = {0};
	long     checks = 0, refused = 0;
	uint64_t until;

	(void)state;
	assert_int_equal(pipe(p), 0);
	assert_true((a = fork()) >= 0);
	if (a == 0) {
		fb_lease *l;

		close(p[0]);
		if (fb_lease_acquire(dir, "node-a", 2, &l, &err) != FB_RV_OK)
			_exit(3);
		(void)!write(p[1], "x", 1);
		for (;;)
			if (fb_lease_renew(l, &err) != FB_RV_OK)
				_exit(4);
	}
	close(p[1]);
	assert_int_equal(read(p[0], &c, 1), 1);
	close(p[0]);
	until = (uint64_t)time(NULL) + 2;
	while ((uint64_t)time(NULL) < until) {
		checks++;
		if (fb_lease_check(dir, "node-a", a, &err) != FB_RV_OK)
			refused++;
	}
	assert_int_equal(kill(a, 0), 0); /* the holder never saw its own record torn either */
	kill(a, SIGKILL);
	assert_int_equal(reap(a), 128 + SIGKILL);
	print_message("%ld checks during renewals, %ld refused\n", checks, refused);
	assert_int_equal(refused, 0);
}

static void
garbage_is_not_trusted_but_does_not_block_forever(void **state)
{
	char  path[300];
	FILE *f;
	fb_lease *l;
	fb_err    err = {0};

	(void)state;
	snprintf(path, sizeof(path), "%s/agent.lease", dir);
	assert_non_null(f = fopen(path, "w"));
	fputs("failback-lease 1\nnode ../../etc\npid 1\ncounter x\n", f);
	fclose(f);
	assert_int_equal(fb_lease_check(dir, "node-a", getpid(), &err), FB_RV_SYSTEM_IN_USE);
	assert_int_equal(fb_lease_acquire(dir, "node-a", 2, &l, &err), FB_RV_OK);
	assert_int_equal(fb_lease_check(dir, "node-a", getpid(), &err), FB_RV_OK);
	fb_lease_release(l);
}

static void
bad_settings_are_refused(void **state)
{
	fb_lease *l = NULL;
	fb_err    err = {0};

	(void)state;
	assert_int_equal(fb_lease_acquire(dir, "", 10, &l, &err), FB_RV_INVALID_PARAMETER);
	assert_int_equal(fb_lease_acquire(dir, "a/b", 10, &l, &err), FB_RV_INVALID_PARAMETER);
	assert_int_equal(fb_lease_acquire(dir, "node-a", 1, &l, &err), FB_RV_INVALID_PARAMETER);
	assert_int_equal(fb_lease_acquire(dir, "node-a", 301, &l, &err), FB_RV_INVALID_PARAMETER);
	assert_null(l);
	assert_int_equal(fb_lease_acquire("/nonexistent/dir", "node-a", 10, &l, &err),
	                 FB_RV_FILE_NOT_FOUND);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(a_lease_is_taken_renewed_and_released, setup, teardown),
	    cmocka_unit_test_setup_teardown(a_live_holder_on_another_node_keeps_it, setup, teardown),
	    cmocka_unit_test_setup_teardown(a_frozen_holder_loses_it_and_stops_when_it_thaws, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(a_frozen_holder_nobody_replaced_goes_on, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(a_dead_holder_on_another_node_is_taken_over, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(reads_during_renewals_never_see_a_torn_record, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(garbage_is_not_trusted_but_does_not_block_forever, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(bad_settings_are_refused, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
