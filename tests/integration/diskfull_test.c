/*
 * diskfull_test.c - the replica's disk fills up during a failback (DESIGN
 * §9): the job fails with a description that says so, and once space is
 * freed the next call completes with the disk exactly at its point.
 *
 * The replica's data directory lives on a small tmpfs. To mount one without
 * privileges the test re-runs itself under `unshare -rm` (its own user and
 * mount namespaces); the agents it starts share that namespace.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "image.h"

static fbt_agent primary, replica;
static char      out[1 << 16], small[700];

#define P(...) FBT_P(out, primary, __VA_ARGS__)
#define R(...) FBT_R(out, replica, __VA_ARGS__)

static int
group_setup(void **state)
{
	char        dd[800];
	const char *extra[] = {dd, NULL};

	(void)state;
	if (fbt_setup() != 0)
		return -1;
	snprintf(small, sizeof(small), "%s/small", fbt_root());
	mkdir(small, 0700);
	if (mount("tmpfs", small, "tmpfs", 0, "size=40m") != 0) {
		fprintf(stderr, "cannot mount a tmpfs at %s: %s\n", small, strerror(errno));
		return -1;
	}
	if (fbt_agent_start(&primary, "primary", "primary", NULL) != 0)
		return -1;
	snprintf(dd, sizeof(dd), "--data-dir=%s/replica", small);
	return fbt_replica_start(&replica, &primary, extra);
}

static int
group_teardown(void **state)
{
	(void)state;
	if (getenv("FBT_KEEP") == NULL)
		umount(small);
	fbt_teardown();
	return 0;
}

/* Fills the filesystem holding path until a write fails. */
static void
fill(const char *path)
{
	static char buf[1 << 16];
	FILE       *f = fopen(path, "w");

	assert_non_null(f);
	memset(buf, 0x5a, sizeof(buf));
	while (fwrite(buf, 1, sizeof(buf), f) == sizeof(buf) && fflush(f) == 0)
		;
	fclose(f);
}

static void
full_disk_fails_the_job_clearly_and_freed_space_lets_it_finish(void **state)
{
	char img[700], disk[800], job[40], p1[40], filler[800], want[65], got[65];

	(void)state;
	snprintf(img, sizeof(img), "%s/web.img", fbt_root());
	assert_int_equal(fbt_image_make(img, 8u << 20, 5), 0);
	assert_int_equal(P("primary-vm", "add", "web", img), 0);
	assert_int_equal(P("--json", "primary-rp", "create", "web"), 0);
	snprintf(p1, sizeof(p1), "%.36s", strstr(out, "\"point\":{\"id\":\"") + 15);
	assert_int_equal(R("replicate", "web", "--wait"), 0);
	assert_int_equal(R("failover", "web", "--wait"), 0);
	assert_int_equal(R("failover-commit", "web", "--wait"), 0);
	assert_int_equal(R("vm", "show", "web"), 0);
	sscanf(strstr(out, "path: ") + 6, "%799s", disk);
	assert_int_equal(fbt_image_mutate(disk, 60, 9), 60); /* ~4 MiB of undo needed */

	/* Full but for ~1 MiB: room for the job's rows, not for its undo log. */
	{
		char  reserve[800];
		FILE *f;

		snprintf(reserve, sizeof(reserve), "%s/reserve", small);
		f = fopen(reserve, "w");
		assert_non_null(f);
		for (int i = 0; i < 16; i++)
			assert_int_equal(fwrite(out, 1, 65536, f), 65536);
		fclose(f);
		snprintf(filler, sizeof(filler), "%s/filler", small);
		fill(filler);
		assert_int_equal(unlink(reserve), 0);
	}
	assert_int_equal(R("failback", "web", "--rp", p1), 0);
	snprintf(job, sizeof(job), "%.36s", strstr(out, "InstanceID=\"") + 12);
	assert_int_equal(R("job", "wait", job), 1);
	assert_non_null(strstr(out, "Exception (10)"));
	assert_non_null(strstr(out, "No space left on device"));
	assert_int_equal(R("vm", "show", "web"), 0);
	assert_non_null(strstr(out, "Critical (8)"));

	/* Freed space: the failed job records its end within a second (until then
	 * the VM is still "in use"), and the next call completes. */
	assert_int_equal(unlink(filler), 0);
	for (int i = 0; i < 100; i++) {
		int rc = R("failback", "web", "--rp", p1, "--wait");

		if (rc == 0)
			break;
		if (strstr(out, "System is in use (32774)") == NULL || i == 99)
			fail_msg("failback after freeing space: %s", out);
		usleep(100000);
	}
	assert_int_equal(fbt_file_sha256(img, want), 0);
	assert_int_equal(fbt_file_sha256(disk, got), 0);
	assert_string_equal(got, want);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(full_disk_fails_the_job_clearly_and_freed_space_lets_it_finish),
	};

	(void)argc;
	if (getenv("FBT_IN_NAMESPACE") == NULL) {
		char *const args[] = {(char *)"unshare", (char *)"-rm", argv[0], NULL};
		char        probe[512];

		/* A chroot or container may refuse namespaces: say so and skip. */
		if (fbt_run((char *[]){"/usr/bin/unshare", "-rm", "/bin/true", NULL}, probe,
		            sizeof(probe)) != 0) {
			fprintf(stderr, "%s: SKIPPED: it needs user and mount namespaces to mount a small "
			        "tmpfs, and `unshare -rm true` was refused here: %s\n",
			        argv[0], probe);
			return 77;
		}
		setenv("FBT_IN_NAMESPACE", "1", 1);
		execvp("unshare", args);
		fprintf(stderr, "%s: needs `unshare -rm` (user and mount namespaces): %s\n", argv[0],
		        strerror(errno));
		return 1;
	}
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
