/*
 * config_test.c - the settings parser and flag mapper shared by the agents
 * and failbackctl: good files apply, bad lines are named by file and line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "failback/config.h"

static char *url, *dir, *level;
static const fb_config_key keys[] = {
    {"listen_url", &url, "url"},
    {"data_dir", &dir, "dir"},
    {"log_level", &level, "level"},
};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static int
reset(void **state)
{
	(void)state;
	fb_config_free(keys, NKEYS);
	return 0;
}

static void
file_with_comments_blanks_and_spaces_applies(void **state)
{
	const char *t = "# comment\n\n  listen_url =  tls+tcp://127.0.0.1:7400  \r\n"
	                "data_dir=/var/lib/x\nlog_level = debug";
	fb_err      err;

	(void)state;
	assert_int_equal(fb_config_parse(t, strlen(t), keys, NKEYS, "t", &err), FB_RV_OK);
	assert_string_equal(url, "tls+tcp://127.0.0.1:7400");
	assert_string_equal(dir, "/var/lib/x");
	assert_string_equal(level, "debug");
}

static void
quotes_and_trailing_comments_are_not_part_of_the_value(void **state)
{
	const char *t = "listen_url = \"tls+tcp://127.0.0.1:7400\"  # the control listener\n"
	                "data_dir = /var/lib/x # where state lives\n"
	                "log_level = \"a # kept\"\n";
	fb_err      err;

	(void)state;
	assert_int_equal(fb_config_parse(t, strlen(t), keys, NKEYS, "t", &err), FB_RV_OK);
	assert_string_equal(url, "tls+tcp://127.0.0.1:7400");
	assert_string_equal(dir, "/var/lib/x");
	assert_string_equal(level, "a # kept");
	t = "data_dir = /a#b\nlog_level = \"\"\n";
	assert_int_equal(fb_config_parse(t, strlen(t), keys, NKEYS, "t", &err), FB_RV_OK);
	assert_string_equal(dir, "/a#b"); /* '#' inside a word is text */
	assert_string_equal(level, "");
	t = "data_dir = \"/a\n";
	assert_int_equal(fb_config_parse(t, strlen(t), keys, NKEYS, "t", &err),
	                 FB_RV_INVALID_PARAMETER);
	assert_non_null(strstr(err.msg, "t:1: unterminated quote"));
	t = "data_dir = \"/a\" /b\n";
	assert_int_equal(fb_config_parse(t, strlen(t), keys, NKEYS, "t", &err),
	                 FB_RV_INVALID_PARAMETER);
	assert_non_null(strstr(err.msg, "after the closing quote"));
}

static void
later_line_replaces_earlier_value(void **state)
{
	const char *t = "data_dir = /a\ndata_dir = /b\n";
	fb_err      err;

	(void)state;
	assert_int_equal(fb_config_parse(t, strlen(t), keys, NKEYS, "t", &err), FB_RV_OK);
	assert_string_equal(dir, "/b");
}

static void
unknown_key_is_named_with_its_line(void **state)
{
	const char *t = "data_dir = /a\n\nlisten_ur = x\n";
	fb_err      err;

	(void)state;
	assert_int_equal(fb_config_parse(t, strlen(t), keys, NKEYS, "agent.conf", &err),
	                 FB_RV_INVALID_PARAMETER);
	assert_string_equal(err.msg, "agent.conf:3: unknown key 'listen_ur'");
}

static void
line_without_equals_is_an_error(void **state)
{
	const char *t = "data_dir /a\n";
	fb_err      err;

	(void)state;
	assert_int_equal(fb_config_parse(t, strlen(t), keys, NKEYS, "c", &err),
	                 FB_RV_INVALID_PARAMETER);
	assert_string_equal(err.msg, "c:1: expected 'key = value'");
}

static void
nul_byte_and_overlong_line_are_errors(void **state)
{
	char   t[6000];
	fb_err err;

	(void)state;
	assert_int_equal(fb_config_parse("data_dir = a\0b", 14, keys, NKEYS, "c", &err),
	                 FB_RV_INVALID_PARAMETER);
	assert_non_null(strstr(err.msg, "NUL"));
	memset(t, 'a', sizeof(t));
	memcpy(t, "data_dir = ", 11);
	assert_int_equal(fb_config_parse(t, sizeof(t), keys, NKEYS, "c", &err),
	                 FB_RV_INVALID_PARAMETER);
	assert_non_null(strstr(err.msg, "longer than"));
	assert_null(dir);
}

static void
key_with_uppercase_or_dash_is_refused(void **state)
{
	const char *t = "Data-Dir = /a\n";
	fb_err      err;

	(void)state;
	assert_int_equal(fb_config_parse(t, strlen(t), keys, NKEYS, "c", &err),
	                 FB_RV_INVALID_PARAMETER);
	assert_null(dir);
}

static void
flags_take_inline_or_next_argument(void **state)
{
	char  *argv[] = {"prog", "--data-dir=/x", "--listen-url", "u", "--log-level"};
	fb_err err;
	int    i = 1;

	(void)state;
	assert_int_equal(fb_config_flag(keys, NKEYS, 5, argv, &i, &err), FB_RV_OK);
	assert_string_equal(dir, "/x");
	i = 2;
	assert_int_equal(fb_config_flag(keys, NKEYS, 5, argv, &i, &err), FB_RV_OK);
	assert_int_equal(i, 3);
	assert_string_equal(url, "u");
	i = 4;
	assert_int_equal(fb_config_flag(keys, NKEYS, 5, argv, &i, &err), FB_RV_INVALID_PARAMETER);
	assert_string_equal(err.msg, "option '--log-level' needs a value");
}

static void
unknown_flag_is_refused(void **state)
{
	char  *argv[] = {"prog", "--data-dri=/x"};
	fb_err err;
	int    i = 1;

	(void)state;
	assert_int_equal(fb_config_flag(keys, NKEYS, 2, argv, &i, &err), FB_RV_INVALID_PARAMETER);
	assert_string_equal(err.msg, "unknown option '--data-dri'");
}

static void
missing_file_is_file_not_found(void **state)
{
	fb_err err;

	(void)state;
	assert_int_equal(fb_config_load("/nonexistent/failback.conf", keys, NKEYS, &err),
	                 FB_RV_FILE_NOT_FOUND);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(file_with_comments_blanks_and_spaces_applies, reset),
	    cmocka_unit_test_teardown(quotes_and_trailing_comments_are_not_part_of_the_value, reset),
	    cmocka_unit_test_teardown(later_line_replaces_earlier_value, reset),
	    cmocka_unit_test_teardown(unknown_key_is_named_with_its_line, reset),
	    cmocka_unit_test_teardown(line_without_equals_is_an_error, reset),
	    cmocka_unit_test_teardown(nul_byte_and_overlong_line_are_errors, reset),
	    cmocka_unit_test_teardown(key_with_uppercase_or_dash_is_refused, reset),
	    cmocka_unit_test_teardown(flags_take_inline_or_next_argument, reset),
	    cmocka_unit_test_teardown(unknown_flag_is_refused, reset),
	    cmocka_unit_test_teardown(missing_file_is_file_not_found, reset),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
