/*
 * formats_test.c - primaries whose VM disks are qcow2 and VHDX images,
 * read through qemu-nbd (image.h), with the real QEMU tools.
 *
 *   each image, made by qemu-img convert from a mixed raw image, is
 *   registered with --format, replicated, failed over, committed and
 *   written to at the replica; the VM writes through qemu-io at the
 *   primary and a new point is taken; the failback ends with the replica's
 *   disk equal to the image (qemu-img compare);
 *   qemu-nbd killed in the middle of a point's scan is restarted and the
 *   point is exact;
 *   a raw file named as qcow2, and an unknown format, are refused.
 */
#include <dirent.h>
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

static fbt_agent primary, replica;
static char      out[1 << 16];

#define P(...) FBT_P(out, primary, __VA_ARGS__)
#define R(...) FBT_R(out, replica, __VA_ARGS__)

static int
run(const char *const *argv)
{
	return fbt_run((char *const *)argv, out, sizeof(out));
}

static int
group_setup(void **state)
{
	(void)state;
	if (fbt_setup() != 0 ||
	    fbt_agent_start(&primary, "primary", "primary",
	                    (const char *[]){"--max-scan-rate=16", NULL}) != 0)
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

/* "Images are identical." from qemu-img compare of the raw disk here and
 * the image there. */
static void
assert_same(const char *raw, const char *image, const char *format)
{
	int rc = run((const char *[]){"/usr/bin/qemu-img", "compare", "-f", "raw", "-F", format,
	                              raw, image, NULL});

	if (rc != 0)
		fail_msg("qemu-img compare %s %s (%s): %d: %s", raw, image, format, rc, out);
	assert_non_null(strstr(out, "Images are identical"));
}

static void
one_format(const char *format)
{
	char raw[600], img[600], vm[32], disk[800], from[64];

	snprintf(vm, sizeof(vm), "vm-%s", format);
	snprintf(raw, sizeof(raw), "%s/%s.raw", fbt_root(), vm);
	snprintf(img, sizeof(img), "%s/%s.%s", fbt_root(), vm, format);
	assert_int_equal(fbt_image_make(raw, 32u << 20, 41), 0);
	assert_int_equal(run((const char *[]){"/usr/bin/qemu-img", "convert", "-f", "raw", "-O",
	                                      format, raw, img, NULL}),
	                 0);
	assert_int_equal(P("primary-vm", "add", vm, img, "--format", format), 0);
	assert_true(fbt_file_contains(primary.log, format));
	assert_int_equal(P("primary-rp", "create", vm), 0);
	assert_int_equal(R("replicate", vm, "--wait"), 0);
	assert_int_equal(R("failover", vm, "--wait"), 0);
	assert_int_equal(R("vm", "show", vm), 0);
	sscanf(strstr(out, "path: ") + 6, "%799s", disk);
	/* the recovery disk is a raw image of the point, whatever the primary's format */
	assert_same(disk, img, format);
	assert_int_equal(R("failover-commit", vm, "--wait"), 0);
	assert_int_equal(fbt_image_mutate(disk, 40, 3), 40);
	/* the VM at the primary writes through its image */
	snprintf(from, sizeof(from), "write -P 0xab 5M 3M");
	assert_int_equal(run((const char *[]){"/usr/bin/qemu-io", "-f", format, "-c", from, img,
	                                      NULL}),
	                 0);
	assert_int_equal(P("primary-rp", "create", vm), 0);
	assert_int_equal(R("failback", vm, "--wait"), 0);
	assert_same(disk, img, format);
}

static void
qcow2_and_vhdx_primaries_replicate_and_fail_back_exactly(void **state)
{
	(void)state;
	one_format("qcow2");
	one_format("vhdx");
}

/* The qemu-nbd the primary agent started, or 0. */
static int
qemu_nbd_of(int parent)
{
	DIR           *d = opendir("/proc");
	struct dirent *e;
	int            found = 0;

	assert_non_null(d);
	while (found == 0 && (e = readdir(d)) != NULL) {
		char  path[300], comm[64] = "", line[512];
		int   ppid = 0;
		FILE *f;

		if (atoi(e->d_name) <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		if ((f = fopen(path, "r")) == NULL)
			continue;
		if (fgets(line, sizeof(line), f) != NULL &&
		    sscanf(line, "%*d (%63[^)]) %*c %d", comm, &ppid) == 2 && ppid == parent &&
		    strcmp(comm, "qemu-nbd") == 0)
			found = atoi(e->d_name);
		fclose(f);
	}
	closedir(d);
	return found;
}

static void
a_killed_qemu_nbd_is_restarted_and_the_point_is_exact(void **state)
{
	char raw[600], img[600], disk[800], job[40];
	int  nbd = 0, done = 0;

	(void)state;
	snprintf(raw, sizeof(raw), "%s/k.raw", fbt_root());
	snprintf(img, sizeof(img), "%s/k.qcow2", fbt_root());
	assert_int_equal(fbt_image_make(raw, 128u << 20, 43), 0);
	assert_int_equal(run((const char *[]){"/usr/bin/qemu-img", "convert", "-f", "raw", "-O",
	                                      "qcow2", raw, img, NULL}),
	                 0);
	assert_int_equal(P("primary-vm", "add", "k", img, "--format", "qcow2"), 0);
	/* 128 MiB at 16 MiB/s: the scan runs for 8 s, time to find and kill
	 * qemu-nbd even on a loaded machine */
	assert_int_equal(P("primary-rp", "create", "k", "--no-wait"), 0);
	snprintf(job, sizeof(job), "%.36s", strstr(out, "InstanceID=\"") + 12);
	for (int i = 0; i < 400 && nbd == 0; i++) {
		assert_int_equal(P("--json", "primary-rp", "job", job), 0);
		if (strstr(out, "\"phase\":\"Scanning\"") != NULL &&
		    strstr(out, "\"bytes_done\":0,") == NULL)
			nbd = qemu_nbd_of(primary.pid);
		if (nbd == 0)
			usleep(20000);
	}
	assert_int_not_equal(nbd, 0);
	assert_int_equal(kill(nbd, SIGKILL), 0);
	for (int i = 0; i < 1000 && !done; i++) {
		assert_int_equal(P("--json", "primary-rp", "job", job), 0);
		done = strstr(out, "\"job_state\":7") != NULL || strstr(out, "\"job_state\":10") != NULL;
		if (!done)
			usleep(50000);
	}
	if (strstr(out, "\"job_state\":7") == NULL)
		fail_msg("the point job did not complete: %s", out);
	assert_true(fbt_file_contains(primary.log, "FB1030"));
	assert_true(fbt_file_contains(primary.log, "restarting qemu-nbd"));
	assert_int_equal(R("replicate", "k", "--wait"), 0);
	assert_int_equal(R("failover", "k", "--wait"), 0);
	assert_int_equal(R("vm", "show", "k"), 0);
	sscanf(strstr(out, "path: ") + 6, "%799s", disk);
	assert_same(disk, img, "qcow2");
}

static void
a_wrong_or_unknown_format_is_refused(void **state)
{
	char raw[600];

	(void)state;
	snprintf(raw, sizeof(raw), "%s/plain.raw", fbt_root());
	assert_int_equal(fbt_image_make(raw, 4u << 20, 44), 0);
	assert_int_not_equal(P("primary-vm", "add", "plain", raw, "--format", "qcow2"), 0);
	assert_non_null(strstr(out, "is not a usable qcow2 image"));
	assert_int_not_equal(P("primary-vm", "add", "plain", raw, "--format", "iso"), 0);
	assert_non_null(strstr(out, "is not raw, qcow2, vhdx, vmdk or vpc"));
	assert_int_equal(P("primary-vm", "list"), 0);
	assert_null(strstr(out, "plain"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(qcow2_and_vhdx_primaries_replicate_and_fail_back_exactly),
	    cmocka_unit_test(a_killed_qemu_nbd_is_restarted_and_the_point_is_exact),
	    cmocka_unit_test(a_wrong_or_unknown_format_is_refused),
	};
	if (access("/usr/bin/qemu-img", X_OK) != 0 || access("/usr/bin/qemu-nbd", X_OK) != 0 ||
	    access("/usr/bin/qemu-io", X_OK) != 0) {
		printf("formats: SKIP: qemu-img, qemu-nbd and qemu-io are needed (apt-get install "
		       "qemu-utils)\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
