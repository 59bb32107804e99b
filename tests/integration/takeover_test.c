/*
 * takeover_test.c - a replica agent's data directory taken over by an agent
 * of another node mid-failback (docs/CLUSTER.md), as Pacemaker does when a
 * node dies: the first agent (node-a) is killed in the middle of the
 * transfer; a second agent process (node-b, its own listeners) is started
 * on the same data directory. It waits out node-a's lease (the lease
 * cannot tell a dead node from a slow one), takes it over, resumes the job
 * from its checkpoint, and the recovery disk ends byte-exact. node-a
 * coming back is refused while node-b holds the directory; once node-b
 * stops cleanly, the lease is released and node-a takes it at once.
 *
 * (A frozen node that thaws after the takeover, and stops without writing,
 * is in tests/unit/lease_test.c: on one host the flock of the first agent
 * would keep the second from starting at all.)
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "image.h"

static fbt_agent primary, node_a, node_b;
static char      out[1 << 16], dd[700];

#define P(...)     FBT_P(out, primary, __VA_ARGS__)
#define R(a, ...)  FBT_R(out, a, __VA_ARGS__)

static int
start_node(fbt_agent *a, const char *node)
{
	char name[64];

	snprintf(name, sizeof(name), "--node-name=%s", node);
	return fbt_replica_start(a, &primary,
	                         dd[0] ? (const char *[]){name, "--lease-timeout=3",
	                                                  "--max-transfer-rate=4", dd, NULL}
	                               : (const char *[]){name, "--lease-timeout=3",
	                                                  "--max-transfer-rate=4", NULL});
}

static int
group_setup(void **state)
{
	(void)state;
	if (fbt_setup() != 0 || fbt_agent_start(&primary, "primary", "primary", NULL) != 0)
		return -1;
	return 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	fbt_teardown();
	return 0;
}

static void
another_node_takes_the_data_directory_over_and_finishes_the_job(void **state)
{
	char img[700], disk[800], job[40], want[65], got[65], lease[1024];
	int  moving = 0;

	(void)state;
	assert_int_equal(start_node(&node_a, "node-a"), 0);
	snprintf(dd, sizeof(dd), "--data-dir=%s", node_a.dir);
	snprintf(img, sizeof(img), "%s/web.img", fbt_root());
	assert_int_equal(fbt_image_make(img, 64u << 20, 17), 0);
	assert_int_equal(P("primary-vm", "add", "web", img), 0);
	assert_int_equal(P("primary-rp", "create", "web"), 0);
	assert_int_equal(fbt_file_sha256(img, want), 0);
	assert_int_equal(R(node_a, "replicate", "web", "--wait"), 0);
	assert_int_equal(R(node_a, "failover", "web", "--wait"), 0);
	assert_int_equal(R(node_a, "failover-commit", "web", "--wait"), 0);
	assert_int_equal(R(node_a, "vm", "show", "web"), 0);
	sscanf(strstr(out, "path: ") + 6, "%799s", disk);
	/* the recovery VM wrote a quarter of its disk: 16 MiB to pull at 4 MiB/s */
	assert_int_equal(fbt_image_mutate(disk, 256, 5), 256);

	assert_int_equal(R(node_a, "failback", "web"), 0);
	snprintf(job, sizeof(job), "%.36s", strstr(out, "InstanceID=\"") + 12);
	for (int i = 0; i < 300 && !moving; i++) {
		assert_int_equal(R(node_a, "--json", "job", "show", job), 0);
		moving = strstr(out, "\"phase\":\"Transferring\"") != NULL &&
		         strstr(out, "\"blocks_done\":0,") == NULL;
		if (!moving)
			usleep(50000);
	}
	assert_true(moving);
	/* node-a dies mid-transfer (its worker with it) */
	assert_int_equal(fbt_agent_stop(&node_a, SIGKILL, 10000), 128 + SIGKILL);

	/* node-b: its own listeners, the same data directory */
	assert_int_equal(start_node(&node_b, "node-b"), 0);
	assert_true(fbt_file_contains(node_b.log, "FB1020"));
	assert_true(fbt_file_contains(node_b.log, "the lease of node node-a"));
	assert_int_equal(R(node_b, "job", "wait", job), 0);
	assert_true(fbt_file_contains(node_b.log, "FB5005")); /* resumed, not started over */
	assert_true(fbt_file_contains(node_b.log, "resuming from its checkpoint"));
	assert_int_equal(fbt_file_sha256(disk, got), 0);
	assert_string_equal(got, want);

	/* node-a comes back: refused while node-b holds the directory */
	assert_int_equal(start_node(&node_a, "node-a"), -1);
	assert_true(fbt_file_contains(node_a.log, "another agent is running on this data directory"));
	assert_int_equal(R(node_b, "vm", "show", "web"), 0);
	assert_non_null(strstr(out, "replication_state: FailbackComplete (14)"));

	/* a clean stop releases the lease: node-a takes it at once */
	assert_int_equal(fbt_agent_stop(&node_b, SIGTERM, 10000), 0);
	{
		char  path[800];
		FILE *f;
		size_t n;

		snprintf(path, sizeof(path), "%s/agent.lease", node_b.dir);
		assert_non_null(f = fopen(path, "r"));
		n        = fread(lease, 1, sizeof(lease) - 1, f);
		lease[n] = '\0';
		fclose(f);
		assert_non_null(strstr(lease, "node node-b\n"));
		assert_non_null(strstr(lease, "state released\n"));
	}
	assert_int_equal(start_node(&node_a, "node-a"), 0);
	assert_false(fbt_file_contains(node_a.log, "FB1020"));
	assert_int_equal(R(node_a, "vm", "show", "web"), 0);
	assert_non_null(strstr(out, "replication_state: FailbackComplete (14)"));
}

static void
bad_lease_settings_are_refused_at_start(void **state)
{
	fbt_agent bad;

	(void)state;
	assert_int_equal(fbt_replica_start(&bad, &primary, (const char *[]){"--node-name=a/b", NULL}),
	                 -1);
	assert_true(fbt_file_contains(bad.log, "--node-name"));
	assert_int_equal(
	    fbt_replica_start(&bad, &primary, (const char *[]){"--lease-timeout=1", NULL}), -1);
	assert_true(fbt_file_contains(bad.log, "--lease-timeout"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(another_node_takes_the_data_directory_over_and_finishes_the_job),
	    cmocka_unit_test(bad_lease_settings_are_refused_at_start),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
