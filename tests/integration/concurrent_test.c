/*
 * concurrent_test.c - 16 failbacks of 16 VMs at once (DESIGN §8): every
 * job completes and every recovery disk ends byte-identical to its point.
 * Each VM is replicated, failed over and committed, its recovery disk is
 * written to, then all 16 InitiateFailback calls are made before any is
 * waited for.
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

#define NVM 16

static fbt_agent primary, replica;
static char      out[1 << 16];

#define P(...) FBT_P(out, primary, __VA_ARGS__)
#define R(...) FBT_R(out, replica, __VA_ARGS__)

static int
group_setup(void **state)
{
	(void)state;
	if (fbt_setup() != 0 || fbt_agent_start(&primary, "primary", "primary", NULL) != 0)
		return -1;
	return fbt_replica_start(&replica, &primary, NULL);
}

static int
group_teardown(void **state)
{
	(void)state;
	fbt_teardown();
	return 0;
}

static void
sixteen_failbacks_at_once_all_complete_exactly(void **state)
{
	char name[NVM][16], img[NVM][600], disk[NVM][700], job[NVM][40], rp[NVM][40];

	(void)state;
	for (int i = 0; i < NVM; i++) {
		snprintf(name[i], sizeof(name[i]), "vm%02d", i);
		snprintf(img[i], sizeof(img[i]), "%s/%s.img", fbt_root(), name[i]);
		assert_int_equal(fbt_image_make(img[i], 8u << 20, (uint32_t)i + 100), 0);
		assert_int_equal(P("primary-vm", "add", name[i], img[i]), 0);
		assert_int_equal(P("--json", "primary-rp", "create", name[i]), 0);
		snprintf(rp[i], sizeof(rp[i]), "%.36s", strstr(out, "\"point\":{\"id\":\"") + 15);
		assert_int_equal(R("replicate", name[i], "--wait"), 0);
		assert_int_equal(R("failover", name[i], "--wait"), 0);
		assert_int_equal(R("failover-commit", name[i], "--wait"), 0);
		assert_int_equal(R("vm", "show", name[i]), 0);
		sscanf(strstr(out, "path: ") + 6, "%699s", disk[i]);
		/* the recovery VM wrote to its disk */
		assert_int_equal(fbt_image_mutate(disk[i], 20, (uint32_t)i), 20);
	}
	for (int i = 0; i < NVM; i++) {
		assert_int_equal(R("failback", name[i], "--rp", rp[i]), 0);
		snprintf(job[i], sizeof(job[i]), "%.36s", strstr(out, "InstanceID=\"") + 12);
	}
	for (int i = 0; i < NVM; i++) {
		char want[65], got[65];

		assert_int_equal(R("job", "wait", job[i]), 0);
		assert_int_equal(fbt_file_sha256(img[i], want), 0);
		assert_int_equal(fbt_file_sha256(disk[i], got), 0);
		assert_string_equal(got, want);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(sixteen_failbacks_at_once_all_complete_exactly),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
