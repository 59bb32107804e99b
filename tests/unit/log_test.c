/*
 * log_test.c - log lines: one event per line, and the syslog priority
 * prefix journald reads when (and only when) stderr is the journal.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "failback/log.h"

/* Runs fn with stderr sent to a fresh file; returns what was written. */
static char *
capture(int as_journal, int other_stream, void (*fn)(void))
{
	static char buf[4096];
	char        path[] = "/tmp/fblogXXXXXX", js[64];
	int         fd = mkstemp(path), saved = dup(2);
	struct stat st;
	FILE       *f;
	size_t      n;

	assert_true(fd >= 0 && saved >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	snprintf(js, sizeof(js), "%lu:%lu", (unsigned long)st.st_dev,
	         (unsigned long)st.st_ino + (other_stream ? 1 : 0));
	if (as_journal)
		setenv("JOURNAL_STREAM", js, 1);
	else
		unsetenv("JOURNAL_STREAM");
	dup2(fd, 2);
	fb_log_init("failback-test", FB_LOG_DEBUG);
	fn();
	dup2(saved, 2);
	close(saved);
	unsetenv("JOURNAL_STREAM");
	fb_log_init("failback-test", FB_LOG_INFO);
	assert_non_null(f = fopen(path, "r"));
	n      = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	close(fd);
	unlink(path);
	return buf;
}

static void
four_levels(void)
{
	fb_log_error("FB9001", "an error");
	fb_log_warn("FB9002", "a warning with a\nnewline");
	fb_log_info("FB9003", "news");
	fb_log_debug("FB9004", "detail");
}

static void
lines_to_the_journal_carry_their_priority(void **state)
{
	char *out = capture(1, 0, four_levels);

	(void)state;
	assert_true(strncmp(out, "<3>", 3) == 0);
	assert_non_null(strstr(out, "\n<4>"));
	assert_non_null(strstr(out, "\n<6>"));
	assert_non_null(strstr(out, "\n<7>"));
	assert_non_null(strstr(out, "a warning with a?newline")); /* still one line */
}

static void
lines_elsewhere_carry_none(void **state)
{
	char *plain = capture(0, 0, four_levels), *other;

	(void)state;
	assert_null(strchr(plain, '<'));
	assert_non_null(strstr(plain, " ERROR FB9001 an error\n"));
	/* JOURNAL_STREAM naming another stream (stderr redirected under systemd) */
	other = capture(1, 1, four_levels);
	assert_null(strchr(other, '<'));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(lines_to_the_journal_carry_their_priority),
	    cmocka_unit_test(lines_elsewhere_carry_none),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
