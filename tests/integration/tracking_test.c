/*
 * tracking_test.c - change tracking on the recovery side, with the real
 * QEMU tools: a failover gives each recovery disk a qcow2 wrapper with a
 * dirty bitmap; the recovery VM's writes go through the wrapper (qemu-io,
 * as QEMU would); the failback then reads only the dirty blocks and is
 * byte-exact (qemu-img compare). A bitmap that cannot be believed (a
 * writer killed with the image open, writes around the wrapper) makes the
 * job compare whole disks, and say why; the full verification catches
 * what the fast one cannot. A cancelled failback puts back exactly what the
 * VM had written through the wrapper.
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
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "image.h"

static fbt_agent primary, replica;
static char      out[1 << 17], img[700], disk[900], wrapper[950], p1[40];

#define R(...) FBT_R(out, replica, __VA_ARGS__)
#define P(...) FBT_P(out, primary, __VA_ARGS__)

#define MIB (1024 * 1024)

static int
sh(const char *script)
{
	return fbt_run((char *[]){"/bin/sh", "-c", (char *)script, NULL}, out, sizeof(out));
}

/* Writes through the wrapper with qemu-io, as the recovery VM's QEMU would. */
static void
vm_writes(const char *cmds)
{
	char script[2400];

	snprintf(script, sizeof(script), "qemu-io -f qcow2 %s '%s'", cmds, wrapper);
	assert_int_equal(sh(script), 0);
}

/* The last job's JSON field, from `job show --json` of the newest failback. */
static unsigned long long
job_number(const char *job, const char *field)
{
	char        key[64];
	const char *p;

	assert_int_equal(fbt_ctl(out, sizeof(out), replica.control, "operator",
	                         "replica.failback.test", "--json", "job", "show", job, NULL),
	                 0);
	snprintf(key, sizeof(key), "\"%s\":", field);
	assert_non_null(p = strstr(out, key));
	return strtoull(p + strlen(key), NULL, 10);
}

static int
job_mode_is(const char *job, const char *mode)
{
	char want[64];

	assert_int_equal(fbt_ctl(out, sizeof(out), replica.control, "operator",
	                         "replica.failback.test", "--json", "job", "show", job, NULL),
	                 0);
	snprintf(want, sizeof(want), "\"compare_mode\":\"%s\"", mode);
	return strstr(out, want) != NULL;
}

/* Fails back to P1 and waits; the job's id into job. */
static int
failback(char *job, const char *extra)
{
	int rc = extra ? R("failback", "vm1", "--rp", p1, extra, "--wait")
	               : R("failback", "vm1", "--rp", p1, "--wait");
	const char *q = strstr(out, "job_id: ");

	assert_non_null(q);
	snprintf(job, 40, "%.36s", q + 8);
	return rc;
}

static void
same_as_p1(void)
{
	char script[2400];

	snprintf(script, sizeof(script), "qemu-img compare -q -f raw -F raw '%s' '%s'", img, disk);
	assert_int_equal(sh(script), 0);
}

static int
group_setup(void **state)
{
	const char *p;

	(void)state;
	if (fbt_setup() != 0)
		return -1;
	snprintf(img, sizeof(img), "%s/vm1.img", fbt_root());
	if (fbt_image_make(img, 32u * MIB, 31) != 0 ||
	    fbt_agent_start(&primary, "primary", "primary", NULL) != 0 ||
	    fbt_replica_start(&replica, &primary, (const char *[]){"--change-tracking=qcow2", NULL}) !=
	        0)
		return -1;
	if (P("primary-vm", "add", "vm1", img) != 0 || P("--json", "primary-rp", "create", "vm1") != 0) {
		fprintf(stderr, "setup: %s\n", out);
		return -1;
	}
	if ((p = strstr(out, "\"point\":{\"id\":\"")) == NULL) {
		fprintf(stderr, "setup: no point in: %s\n", out);
		return -1;
	}
	snprintf(p1, sizeof(p1), "%.36s", p + 15);
	if (R("replicate", "vm1", "--wait") != 0 || R("failover", "vm1", "--wait") != 0 ||
	    R("failover-commit", "vm1", "--wait") != 0 || R("vm", "show", "vm1") != 0) {
		fprintf(stderr, "setup: %s\n", out);
		return -1;
	}
	if ((p = strstr(out, " path: /")) == NULL) {
		fprintf(stderr, "setup: no disk path in: %s\n", out);
		return -1;
	}
	snprintf(disk, sizeof(disk), "%.*s", (int)strcspn(p + 7, "\n"), p + 7);
	snprintf(wrapper, sizeof(wrapper), "%s.qcow2", disk);
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
a_failover_gives_the_disk_a_wrapper_with_a_bitmap(void **state)
{
	char script[2400];

	(void)state;
	assert_int_equal(R("vm", "show", "vm1"), 0);
	assert_non_null(strstr(out, "tracked_path: "));
	assert_non_null(strstr(out, wrapper));
	snprintf(script, sizeof(script), "qemu-img info -U '%s'", wrapper);
	assert_int_equal(sh(script), 0);
	assert_non_null(strstr(out, "data file: "));
	assert_non_null(strstr(out, disk));
	assert_non_null(strstr(out, "fb-"));
	assert_non_null(strstr(out, p1)); /* the bitmap counts from the failover point */
	assert_non_null(strstr(out, "granularity: 65536"));
	/* the raw disk is still the point, untouched by the wrapper */
	same_as_p1();
	assert_true(fbt_file_contains(replica.log, "FB5046"));
}

static void
a_failback_reads_only_what_the_vm_wrote(void **state)
{
	char job[40];

	(void)state;
	/* 5 blocks, one write spanning two of them: 6 dirty 64 KiB blocks */
	vm_writes("-c 'write -P 0x5a 1M 64k' -c 'write -P 0x5b 5M 4k' -c 'write -P 0x5c 9M 128k' "
	          "-c 'write -P 0x5d 20M 64k' -c 'write -P 0x5e 31M 64k'");
	assert_int_equal(failback(job, "--verify=fast"), 0);
	assert_non_null(strstr(out, "(bitmap)"));
	assert_true(job_mode_is(job, "bitmap"));
	/* the compare read the 6 dirty blocks, and nothing else was read: the
	 * fast verification takes the 6 written ones' hashes from their data */
	assert_int_equal(job_number(job, "blocks_total"), 6);
	assert_int_equal(job_number(job, "bytes_read"), 6 * 65536);
	assert_true(fbt_file_contains(replica.log, "6 of 512 blocks written, read only those"));
	same_as_p1();
	/* tracking starts again from P1: a second round is a bitmap one too */
	vm_writes("-c 'write -P 0x61 2M 64k' -c 'write -P 0x62 30M 64k'");
	assert_int_equal(failback(job, NULL), 0); /* the default: a full verification */
	assert_true(job_mode_is(job, "bitmap"));
	assert_int_equal(job_number(job, "blocks_total"), 2);
	assert_true(job_number(job, "bytes_read") < 34u * MIB); /* 2 blocks + the disk once */
	assert_true(job_number(job, "bytes_read") >= 8u * MIB); /* the full re-read (holes are not read) */
	same_as_p1();
}

static void
a_writer_killed_with_the_image_open_means_a_full_scan(void **state)
{
	char  job[40], script[2400];
	pid_t pid;

	(void)state;
	/* qemu-io writes, then holds the image open until it is killed */
	snprintf(script, sizeof(script),
	         "exec qemu-io -f qcow2 -c 'write -P 0x71 3M 64k' -c 'sleep 600000' '%s'", wrapper);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		execl("/bin/sh", "sh", "-c", script, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 200; i++) {
		snprintf(script, sizeof(script), "qemu-img info -U '%s' | grep -q in-use", wrapper);
		if (sh(script) == 0)
			break;
		usleep(50000);
	}
	assert_int_equal(kill(pid, SIGKILL), 0);
	waitpid(pid, NULL, 0);
	assert_int_equal(failback(job, NULL), 0);
	assert_true(job_mode_is(job, "full scan"));
	assert_true(fbt_file_contains(replica.log, "is in use: its writer did not close the image"));
	assert_true(job_number(job, "bytes_read") >= 32u * MIB); /* the whole disk, twice */
	same_as_p1();
	/* the failback made a fresh wrapper: the next round trusts it again */
	vm_writes("-c 'write -P 0x72 4M 64k'");
	assert_int_equal(failback(job, NULL), 0);
	assert_true(job_mode_is(job, "bitmap"));
	same_as_p1();
}

/* A full scan reads the whole disk to compare; with the fast
 * verification it is not read a second time: the blocks not written keep
 * the leaves that read gave, and the disk still ends exact. */
static void
a_full_scan_with_fast_verification_reads_the_disk_once(void **state)
{
	char               job[40], script[2400];
	unsigned long long full, fast;

	(void)state;
	snprintf(script, sizeof(script),
	         "printf 'around again' | dd of='%s' bs=1 seek=%d conv=notrunc 2>/dev/null", disk,
	         11 * MIB);
	assert_int_equal(sh(script), 0);
	assert_int_equal(failback(job, NULL), 0);
	assert_true(job_mode_is(job, "full scan"));
	full = job_number(job, "bytes_read");
	same_as_p1();
	assert_int_equal(sh(script), 0);
	assert_int_equal(failback(job, "--verify=fast"), 0);
	assert_true(job_mode_is(job, "full scan"));
	fast = job_number(job, "bytes_read");
	same_as_p1();
	assert_true(fast >= 8u * MIB);               /* the compare read the disk... */
	assert_true(fast <= full / 2 + 65536);       /* ...once, where full read it twice */
	{
		char  line[1024];
		int   said = 0;
		FILE *f    = fopen(replica.log, "r");

		assert_non_null(f);
		while (fgets(line, sizeof(line), f) != NULL)
			said |= strstr(line, job) != NULL && strstr(line, "FB6019") != NULL &&
			        strstr(line, "fast verification") != NULL;
		fclose(f);
		assert_true(said);
	}
}

static void
writes_around_the_wrapper_are_caught(void **state)
{
	char job[40], script[2400];

	(void)state;
	/* Written to the raw file directly, after the wrapper's last close:
	 * the bitmap is not believed. */
	snprintf(script, sizeof(script),
	         "printf 'around the wrapper' | dd of='%s' bs=1 seek=%d conv=notrunc 2>/dev/null",
	         disk, 7 * MIB);
	assert_int_equal(sh(script), 0);
	assert_int_equal(failback(job, NULL), 0);
	assert_true(job_mode_is(job, "full scan"));
	assert_true(fbt_file_contains(replica.log, "written after its wrapper was last closed"));
	same_as_p1();

	/* Written around it and then the wrapper opened and closed again: the
	 * bitmap looks good and misses the write. The full verification
	 * catches it, and the job compares whole disks and ends exact. */
	vm_writes("-c 'write -P 0x81 6M 64k'");
	assert_int_equal(sh(script), 0);
	vm_writes("-c 'read 0 64k'");
	assert_int_equal(failback(job, NULL), 0); /* the default verification is full */
	assert_true(fbt_file_contains(replica.log, "the bitmap missed writes: comparing whole disks"));
	same_as_p1();

	/* The same with the fast verification (verify_mode fast): it trusts the
	 * bitmap, so the write around the wrapper stays (docs/STORAGE.md). */
	vm_writes("-c 'write -P 0x82 6M 64k'");
	assert_int_equal(sh(script), 0);
	vm_writes("-c 'read 0 64k'");
	assert_int_equal(failback(job, "--verify=fast"), 0);
	assert_true(job_mode_is(job, "bitmap"));
	snprintf(script, sizeof(script), "qemu-img compare -q -f raw -F raw '%s' '%s'", img, disk);
	assert_int_not_equal(sh(script), 0);
	/* a full verification of the same disk puts it right */
	assert_int_equal(failback(job, "--verify=full"), 0);
	same_as_p1();
}

/* The recovery VM's disk grown through its wrapper (qemu-img resize, as
 * an operator would): a failback does not resize a disk, so the job is
 * refused before it reads or writes anything, naming both sizes and the
 * command that shrinks it back. Shrunk back, the disk fails back exactly,
 * and its bitmap (resized with it by QEMU) still says what was written. */
static void
a_resized_disk_is_refused_until_shrunk_back(void **state)
{
	char job[40], script[2400], want[65], before[65], got[65];

	(void)state;
	vm_writes("-c 'write -P 0x91 8M 64k'");
	snprintf(script, sizeof(script), "qemu-img resize -f qcow2 '%s' 40M", wrapper);
	assert_int_equal(sh(script), 0);
	vm_writes("-c 'write -P 0x92 36M 64k'");
	assert_int_equal(fbt_file_sha256(disk, before), 0);
	assert_int_not_equal(failback(job, NULL), 0);
	assert_non_null(strstr(out, "is 41943040 bytes on the replica but 33554432 in recovery point"));
	assert_non_null(strstr(out, "qemu-img resize --shrink -f qcow2"));
	assert_int_equal(job_number(job, "bytes_read"), 0);
	assert_int_equal(fbt_file_sha256(disk, got), 0);
	assert_string_equal(got, before);

	snprintf(script, sizeof(script), "qemu-img resize --shrink -f qcow2 '%s' 32M", wrapper);
	assert_int_equal(sh(script), 0);
	assert_int_equal(failback(job, NULL), 0);
	assert_int_equal(fbt_file_sha256(img, want), 0);
	assert_int_equal(fbt_file_sha256(disk, got), 0);
	assert_string_equal(got, want);
	vm_writes("-c 'write -P 0x93 10M 64k'");
	assert_int_equal(failback(job, "--verify=fast"), 0);
	assert_true(job_mode_is(job, "bitmap"));
	assert_int_equal(fbt_file_sha256(disk, got), 0);
	assert_string_equal(got, want);
}

/* The replica again on its data directory, with extra settings (or none). */
static void
restart_replica(const char *extra)
{
	char dd[800];

	snprintf(dd, sizeof(dd), "--data-dir=%s", replica.dir);
	assert_int_equal(fbt_agent_stop(&replica, SIGTERM, 10000), 0);
	assert_int_equal(fbt_replica_start(&replica, &primary,
	                                   extra ? (const char *[]){"--change-tracking=qcow2", dd,
	                                                            extra, NULL}
	                                         : (const char *[]){"--change-tracking=qcow2", dd,
	                                                            NULL}),
	                 0);
}

static void
a_cancelled_failback_restores_the_tracked_disk_exactly(void **state)
{
	char               job[40], before[65], after[65], script[2600];
	int                moving = 0, ended = 0;
	unsigned long long done;

	(void)state;
	restart_replica("--max-transfer-rate=2"); /* 8 MiB to move: 4 s */
	snprintf(script, sizeof(script),
	         "head -c 8M /dev/urandom > '%s/w.bin' && qemu-io -f qcow2 -c 'write -s %s/w.bin 12M "
	         "8M' '%s'",
	         fbt_root(), fbt_root(), wrapper);
	assert_int_equal(sh(script), 0);
	assert_int_equal(fbt_file_sha256(disk, before), 0);
	assert_int_equal(R("failback", "vm1", "--rp", p1), 0);
	snprintf(job, sizeof(job), "%.36s", strstr(out, "InstanceID=\"") + 12);
	for (int i = 0; i < 400 && !moving; i++) {
		assert_int_equal(R("--json", "job", "show", job), 0);
		moving = strstr(out, "\"phase\":\"Transferring\"") != NULL &&
		         strstr(out, "\"blocks_done\":0,") == NULL;
		if (!moving)
			usleep(25000);
	}
	assert_true(moving);
	done = job_number(job, "blocks_done");
	assert_int_equal(R("job", "cancel", job), 0);
	for (int i = 0; i < 400 && !ended; i++) {
		assert_int_equal(R("job", "show", job), 0);
		ended = strstr(out, "job_state: Terminated (8)") != NULL;
		if (!ended)
			usleep(25000);
	}
	assert_true(ended);
	print_message("cancelled after %llu of 128 blocks\n", done);
	/* every block the failback wrote is back as the VM left it */
	assert_int_equal(fbt_file_sha256(disk, after), 0);
	assert_string_equal(after, before);
	/* the cancelled job wrote around the wrapper: the next one compares whole, exactly */
	restart_replica(NULL);
	assert_int_equal(failback(job, NULL), 0);
	assert_true(job_mode_is(job, "full scan"));
	same_as_p1();
}

/* Without change_tracking = qcow2 (the default is off) no wrapper is made. */
static void
tracking_off_leaves_no_wrapper(void **state)
{
	fbt_agent   r2;
	char        dd[700], script[2400];
	const char *extra[] = {dd, NULL};

	(void)state;
	snprintf(dd, sizeof(dd), "--data-dir=%s/r2", fbt_root());
	assert_int_equal(fbt_replica_start(&r2, &primary, extra), 0);
	assert_int_equal(fbt_ctlv(out, sizeof(out), r2.control, "operator", "replica.failback.test",
	                          (const char *[]){"--events-url", r2.events, "replicate", "vm1",
	                                           "--wait", NULL}),
	                 0);
	assert_int_equal(fbt_ctlv(out, sizeof(out), r2.control, "operator", "replica.failback.test",
	                          (const char *[]){"--events-url", r2.events, "failover", "vm1",
	                                           "--wait", NULL}),
	                 0);
	assert_int_equal(fbt_ctl(out, sizeof(out), r2.control, "operator", "replica.failback.test",
	                         "vm", "show", "vm1", NULL),
	                 0);
	assert_null(strstr(out, "tracked_path: /"));
	snprintf(script, sizeof(script), "ls %s/r2/vms/*/ | grep -c qcow2", fbt_root());
	sh(script);
	assert_int_equal(atoi(out), 0);
	assert_int_equal(fbt_agent_stop(&r2, SIGTERM, 5000), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(a_failover_gives_the_disk_a_wrapper_with_a_bitmap),
	    cmocka_unit_test(a_failback_reads_only_what_the_vm_wrote),
	    cmocka_unit_test(a_writer_killed_with_the_image_open_means_a_full_scan),
	    cmocka_unit_test(writes_around_the_wrapper_are_caught),
	    cmocka_unit_test(a_full_scan_with_fast_verification_reads_the_disk_once),
	    cmocka_unit_test(a_resized_disk_is_refused_until_shrunk_back),
	    cmocka_unit_test(a_cancelled_failback_restores_the_tracked_disk_exactly),
	    cmocka_unit_test(tracking_off_leaves_no_wrapper),
	};

	if (system("qemu-img --version >/dev/null 2>&1 && qemu-nbd --version >/dev/null 2>&1") != 0) {
		fprintf(stderr, "tracking_itest: SKIPPED: qemu-img and qemu-nbd (qemu-utils) are "
		                "needed\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
