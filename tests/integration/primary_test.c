/*
 * primary_test.c - the primary agent's recovery points through failbackctl,
 * as an operator would use them: register a VM with a real image, take
 * points as it changes, list, prune by RecoveryHistory, remove, and find
 * everything still there after a restart.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"
#include "image.h"

static fbt_agent primary;
static char      out[1 << 16], img[600];

#define PNAME "primary.failback.test"

static int
group_setup(void **state)
{
	(void)state;
	if (fbt_setup() != 0)
		return -1;
	snprintf(img, sizeof(img), "%s/web01.img", fbt_root());
	if (fbt_image_make(img, 32u << 20, 11) != 0)
		return -1;
	return fbt_agent_start(&primary, "primary", "primary", NULL);
}

static int
group_teardown(void **state)
{
	(void)state;
	fbt_teardown(); /* stops the agent too */
	return 0;
}

static int
count(const char *hay, const char *needle)
{
	int n = 0;

	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

static void
operator_registers_vm_with_a_real_image(void **state)
{
	(void)state;
	assert_int_equal(fbt_ctl(out, sizeof(out), primary.control, "operator", PNAME,
	                         "primary-vm", "add", "web01", img, "--history", "1", NULL),
	                 0);
	assert_non_null(strstr(out, "name: web01"));
	assert_non_null(strstr(out, "size_bytes: 33554432"));
	assert_non_null(strstr(out, "recovery_history: 1"));
	/* The same name twice is refused and changes nothing. */
	assert_int_equal(fbt_ctl(out, sizeof(out), primary.control, "operator", PNAME,
	                         "primary-vm", "add", "web01", img, NULL),
	                 1);
	assert_non_null(strstr(out, "Invalid parameter (32773)"));
	assert_int_equal(fbt_ctl(out, sizeof(out), primary.monitor, "monitor", PNAME, "--json",
	                         "primary-vm", "list", NULL),
	                 0);
	assert_int_equal(count(out, "\"name\":\"web01\""), 1);
}

static void
bad_disk_paths_are_invalid_or_not_found(void **state)
{
	(void)state;
	assert_int_equal(fbt_ctl(out, sizeof(out), primary.control, "operator", PNAME,
	                         "primary-vm", "add", "x", "relative.img", NULL),
	                 1);
	assert_non_null(strstr(out, "Invalid parameter (32773)"));
	assert_int_equal(fbt_ctl(out, sizeof(out), primary.control, "operator", PNAME,
	                         "primary-vm", "add", "x", "/nonexistent/x.img", NULL),
	                 1);
	assert_non_null(strstr(out, "File not found (32779)"));
}

static void
points_are_taken_pruned_by_history_and_removed(void **state)
{
	char id[40] = "";

	(void)state;
	for (int i = 0; i < 3; i++) {
		assert_int_equal(fbt_image_mutate(img, 8, 200 + (uint32_t)i), 8);
		assert_int_equal(fbt_ctl(out, sizeof(out), primary.control, "operator", PNAME,
		                         "primary-rp", "create", "web01", NULL),
		                 0);
		assert_non_null(strstr(out, "hash_algorithm: sha256"));
		assert_non_null(strstr(out, "block_count: 512"));
	}
	/* RecoveryHistory 1: the newest point plus one older. */
	assert_int_equal(fbt_ctl(out, sizeof(out), primary.monitor, "monitor", PNAME, "--json",
	                         "primary-rp", "list", "web01", NULL),
	                 0);
	assert_int_equal(count(out, "\"hash_algorithm\""), 2);
	sscanf(strstr(out, "\"id\":\"") + 6, "%36s", id);
	assert_int_equal(strlen(id), 36);
	assert_int_equal(fbt_ctl(out, sizeof(out), primary.control, "operator", PNAME,
	                         "primary-rp", "remove", "web01", id, NULL),
	                 0);
	assert_int_equal(fbt_ctl(out, sizeof(out), primary.control, "operator", PNAME,
	                         "primary-rp", "remove", "web01", id, NULL),
	                 1);
	assert_non_null(strstr(out, "File not found (32779)"));
	assert_int_equal(fbt_ctl(out, sizeof(out), primary.monitor, "monitor", PNAME, "--json",
	                         "primary-rp", "list", "web01", NULL),
	                 0);
	assert_int_equal(count(out, "\"hash_algorithm\""), 1);
	assert_null(strstr(out, id));
}

static void
monitor_may_list_but_not_take_points(void **state)
{
	(void)state;
	assert_int_equal(fbt_ctl(out, sizeof(out), primary.monitor, "monitor", PNAME,
	                         "primary-rp", "create", "web01", NULL),
	                 1);
	assert_non_null(strstr(out, "Access Denied (32769)"));
}

static void
unknown_vm_is_file_not_found(void **state)
{
	(void)state;
	assert_int_equal(fbt_ctl(out, sizeof(out), primary.control, "operator", PNAME,
	                         "primary-rp", "create", "nosuch", NULL),
	                 1);
	assert_non_null(strstr(out, "File not found (32779)"));
	assert_int_equal(fbt_ctl(out, sizeof(out), primary.control, "operator", PNAME,
	                         "primary-rp", "list", "nosuch", NULL),
	                 1);
	assert_non_null(strstr(out, "File not found (32779)"));
}

static void
points_survive_an_agent_restart(void **state)
{
	char        dd[700];
	const char *extra[] = {dd, NULL};
	char        before[1 << 12];

	(void)state;
	assert_int_equal(fbt_ctl(before, sizeof(before), primary.monitor, "monitor", PNAME,
	                         "--json", "primary-rp", "list", "web01", NULL),
	                 0);
	assert_int_equal(fbt_agent_stop(&primary, SIGTERM, 5000), 0);
	snprintf(dd, sizeof(dd), "--data-dir=%s", primary.dir);
	assert_int_equal(fbt_agent_start(&primary, "primary", "primary", extra), 0);
	assert_int_equal(fbt_ctl(out, sizeof(out), primary.monitor, "monitor", PNAME, "--json",
	                         "primary-rp", "list", "web01", NULL),
	                 0);
	assert_string_equal(out, before);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(operator_registers_vm_with_a_real_image),
	    cmocka_unit_test(bad_disk_paths_are_invalid_or_not_found),
	    cmocka_unit_test(points_are_taken_pruned_by_history_and_removed),
	    cmocka_unit_test(monitor_may_list_but_not_take_points),
	    cmocka_unit_test(unknown_vm_is_file_not_found),
	    cmocka_unit_test(points_survive_an_agent_restart),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
