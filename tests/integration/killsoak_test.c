/*
 * killsoak_test.c - DESIGN §9: kill either agent (SIGKILL) at random points
 * of a failback, 20 times. Every failback must complete after the restart,
 * with the recovery disk byte-identical to the target point. Each kill lands
 * at a random moment of the transfer (about 50 s in all). Then the replica is
 * killed right after an acknowledged cancel, 20 times: the cancel survives.
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

/* The kill points are random from a fixed seed; FBT_SEED=N tries others. */
static unsigned
soak_seed(unsigned fixed)
{
	const char *s = getenv("FBT_SEED");

	if (s != NULL && *s != '\0')
		fixed = (unsigned)strtoul(s, NULL, 10) ^ fixed;
	return fixed;
}

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
	unsigned seed = soak_seed(12345);

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
		if (R("failback", "soak", "--rp", p1) != 0)
			fail_msg("round %d: failback refused: %s", round, out);
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

/*
 * DESIGN §9: every decision a reply confirms is durable before the reply.
 * Kill the replica right after an acknowledged cancel, 20 times at random
 * delays: every job ends cancelled and the disk is back byte for byte.
 */
static void
killing_the_replica_after_an_acknowledged_cancel_still_cancels(void **state)
{
	char     disk[800], p1[40], job[40], before[65], after[65];
	unsigned seed = soak_seed(777);

	(void)state;
	assert_int_equal(P("--json", "primary-rp", "list", "soak"), 0);
	snprintf(p1, sizeof(p1), "%.36s", strstr(out, "\"id\":\"") + 6);
	assert_int_equal(R("vm", "show", "soak"), 0);
	sscanf(strstr(out, "path: ") + 6, "%799s", disk);
	for (int round = 0; round < ROUNDS; round++) {
		int moving = 0;

		assert_int_equal(fbt_image_mutate(disk, 600, 1000 + (uint32_t)round), 600);
		assert_int_equal(fbt_file_sha256(disk, before), 0);
		assert_int_equal(R("failback", "soak", "--rp", p1), 0);
		snprintf(job, sizeof(job), "%.36s", strstr(out, "InstanceID=\"") + 12);
		for (int i = 0; i < 400 && !moving; i++) {
			assert_int_equal(R("--json", "job", "show", job), 0);
			moving = strstr(out, "\"phase\":\"Transferring\"") != NULL &&
			         strstr(out, "\"blocks_done\":0,") == NULL;
			if (!moving)
				usleep(20000);
		}
		assert_true(moving);
		usleep((useconds_t)(rand_r(&seed) % 300000));
		if (R("job", "cancel", job) != 0)
			fail_msg("round %d: cancel not acknowledged: %s", round, out);
		usleep((useconds_t)(rand_r(&seed) % 100000)); /* 0-100 ms after the answer */
		assert_int_equal(fbt_agent_stop(&replica, SIGKILL, 5000), 128 + SIGKILL);
		assert_int_equal(start_replica(1), 0);
		assert_int_equal(R("job", "wait", job), 1);
		if (strstr(out, "Terminated (8)") == NULL)
			fail_msg("round %d: the acknowledged cancel was lost: %s", round, out);
		assert_int_equal(fbt_file_sha256(disk, after), 0);
		assert_string_equal(after, before);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(killing_either_agent_at_random_points_never_stops_a_failback),
	    cmocka_unit_test(killing_the_replica_after_an_acknowledged_cancel_still_cancels),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
