/*
 * killsoak_test.c - DESIGN §9: kill either agent (SIGKILL) at random points
 * of a failback, 20 times. Every failback must complete after the restart,
 * with the recovery disk byte-identical to the target point. Each kill lands
 * at a random moment of the transfer (about 50 s in all).
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "image.h"

#define ROUNDS 20

static fbt_agent primary, replica;
static char      out[1 << 16];

#define P(...) FBT_P(out, primary, __VA_ARGS__)
#define R(...) FBT_R(out, replica, __VA_ARGS__)

static int
start_primary(int again)
{
	char        dd[700], lr[200], lc[200];
	const char *extra[] = {dd, lr, lc, NULL};

	snprintf(dd, sizeof(dd), "--data-dir=%s", primary.dir);
	snprintf(lr, sizeof(lr), "--listen-resync=%s", primary.resync);
	snprintf(lc, sizeof(lc), "--listen-control=%s", primary.control);
	return fbt_agent_start(&primary, "primary", "primary", again ? extra : NULL);
}

static int
start_replica(int again)
{
	char        dd[700], lc[200], le[200];
	const char *first[] = {"--max-transfer-rate=16", NULL};
	const char *extra[] = {"--max-transfer-rate=16", dd, lc, le, NULL};

	snprintf(dd, sizeof(dd), "--data-dir=%s", replica.dir);
	snprintf(lc, sizeof(lc), "--listen-control=%s", replica.control);
	snprintf(le, sizeof(le), "--listen-events=%s", replica.events);
	return fbt_replica_start(&replica, &primary, again ? extra : first);
}

static int
group_setup(void **state)
{
	(void)state;
	if (fbt_setup() != 0 || start_primary(0) != 0 || start_replica(0) != 0)
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
killing_either_agent_at_random_points_never_stops_a_failback(void **state)
{
	char     img[700], disk[800], p1[40], job[40], want[65], got[65];
	unsigned seed = 12345;

	(void)state;
	snprintf(img, sizeof(img), "%s/soak.img", fbt_root());
	assert_int_equal(fbt_image_make(img, 64u << 20, 8), 0);
	assert_int_equal(P("primary-vm", "add", "soak", img), 0);
	assert_int_equal(P("--json", "primary-rp", "create", "soak"), 0);
	snprintf(p1, sizeof(p1), "%.36s", strstr(out, "\"point\":{\"id\":\"") + 15);
	assert_int_equal(fbt_file_sha256(img, want), 0);
	assert_int_equal(R("replicate", "soak", "--wait"), 0);
	assert_int_equal(R("failover", "soak", "--wait"), 0);
	assert_int_equal(R("failover-commit", "soak", "--wait"), 0);
	assert_int_equal(R("vm", "show", "soak"), 0);
	sscanf(strstr(out, "path: ") + 6, "%799s", disk);

	for (int round = 0; round < ROUNDS; round++) {
		int kill_replica = rand_r(&seed) % 2;

		assert_int_equal(fbt_image_mutate(disk, 600, (uint32_t)round), 600);
		assert_int_equal(R("failback", "soak", "--rp", p1), 0);
		snprintf(job, sizeof(job), "%.36s", strstr(out, "InstanceID=\"") + 12);
		/* Into the transfer, then a random moment of it. */
		for (int i = 0; i < 400; i++) {
			assert_int_equal(R("--json", "job", "show", job), 0);
			if (strstr(out, "\"phase\":\"Transferring\"") != NULL ||
			    strstr(out, "\"job_state\":7") != NULL)
				break;
			usleep(20000);
		}
		usleep((useconds_t)(rand_r(&seed) % 400000));
		if (kill_replica) {
			assert_int_equal(fbt_agent_stop(&replica, SIGKILL, 5000), 128 + SIGKILL);
			assert_int_equal(start_replica(1), 0);
		} else {
			assert_int_equal(fbt_agent_stop(&primary, SIGKILL, 5000), 128 + SIGKILL);
			assert_int_equal(start_primary(1), 0);
		}
		if (R("job", "wait", job) != 0)
			fail_msg("round %d (killed the %s): %s", round,
			         kill_replica ? "replica" : "primary", out);
		assert_int_equal(fbt_file_sha256(disk, got), 0);
		assert_string_equal(got, want);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(killing_either_agent_at_random_points_never_stops_a_failback),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
