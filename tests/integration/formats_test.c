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
 *   a raw file named as qcow2, and an unknown format, are refused;
 *   a replica agent with recovery_format = qcow2 fails over to a standalone
 *   qcow2 image, the recovery VM writes through it with qemu-io, a cancel
 *   mid-transfer leaves it equal to a copy taken before the call, the
 *   read-write qemu-nbd killed mid-transfer costs a worker and the job
 *   still completes exactly;
 *   the round trip on qcow2 disks at both sites, both primaries tracking
 *   in the image: site A's VM on a qcow2 image replicates to site B (its
 *   second point by the bitmap) and writes a tail that never replicates;
 *   B fails over to a qcow2 recovery disk and writes; a reverse on B serves
 *   that image in place and makes A's image the receiving side's disk; the
 *   failback home compares by A's bitmap and B's points (no scan) and makes
 *   A's image equal B's; after a re-protect, A's next point replicates to
 *   B and a failover there brings up exactly A's image.
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
#include <sys/wait.h>
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

/* A mixed raw image name.raw of mib MiB (seed) under the scratch directory,
 * and name.<format> made from it by qemu-img convert; their paths (600
 * bytes each) into raw and img. */
static void
image_pair(const char *name, const char *format, unsigned mib, uint32_t seed, char *raw,
           char *img)
{
	snprintf(raw, 600, "%s/%s.raw", fbt_root(), name);
	snprintf(img, 600, "%s/%s.%s", fbt_root(), name, format);
	assert_int_equal(fbt_image_make(raw, (uint64_t)mib << 20, seed), 0);
	assert_int_equal(run((const char *[]){"/usr/bin/qemu-img", "convert", "-f", "raw", "-O",
	                                      format, raw, img, NULL}),
	                 0);
}

static void
one_format(const char *format)
{
	char raw[600], img[600], vm[32], disk[800], from[64];

	snprintf(vm, sizeof(vm), "vm-%s", format);
	image_pair(vm, format, 32, 41, raw, img);
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

/* A qemu-nbd whose parent is parent (0: any) and whose command line holds
 * arg (NULL: any), or 0. */
static int
qemu_nbd_find(int parent, const char *arg)
{
	DIR           *d = opendir("/proc");
	struct dirent *e;
	int            found = 0;

	assert_non_null(d);
	while (found == 0 && (e = readdir(d)) != NULL) {
		char   path[300], comm[64] = "", line[4096];
		int    ppid = 0, ok;
		size_t n;
		FILE  *f;

		if (atoi(e->d_name) <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		if ((f = fopen(path, "r")) == NULL)
			continue;
		ok = fgets(line, sizeof(line), f) != NULL &&
		     sscanf(line, "%*d (%63[^)]) %*c %d", comm, &ppid) == 2;
		fclose(f);
		if (!ok || strcmp(comm, "qemu-nbd") != 0 || (parent != 0 && ppid != parent))
			continue;
		snprintf(path, sizeof(path), "/proc/%s/cmdline", e->d_name);
		if ((f = fopen(path, "r")) == NULL)
			continue;
		n = fread(line, 1, sizeof(line) - 1, f);
		fclose(f);
		for (size_t i = 0; i < n; i++)
			line[i] = line[i] == '\0' ? ' ' : line[i];
		line[n] = '\0';
		if (arg == NULL || strstr(line, arg) != NULL)
			found = atoi(e->d_name);
	}
	closedir(d);
	return found;
}

/* How many sockets qemu-nbd pid holds: its listening socket, and one
 * more once its client is connected. */
static int
qemu_nbd_sockets(int pid)
{
	char           path[64], link[64];
	DIR           *d;
	struct dirent *e;
	int            n = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", pid);
	if ((d = opendir(path)) == NULL)
		return 0;
	while ((e = readdir(d)) != NULL) {
		char    fd[400];
		ssize_t k;

		snprintf(fd, sizeof(fd), "%s/%s", path, e->d_name);
		if ((k = readlink(fd, link, sizeof(link) - 1)) > 0) {
			link[k] = '\0';
			n += strncmp(link, "socket:", 7) == 0;
		}
	}
	closedir(d);
	return n;
}

static void
a_killed_qemu_nbd_is_restarted_and_the_point_is_exact(void **state)
{
	char raw[600], img[600], disk[800], job[40];
	int  nbd = 0, done = 0;

	(void)state;
	image_pair("k", "qcow2", 128, 43, raw, img);
	assert_int_equal(P("primary-vm", "add", "k", img, "--format", "qcow2"), 0);
	/* 128 MiB at 16 MiB/s: the scan runs for 8 s, time to find and kill
	 * qemu-nbd even on a loaded machine */
	assert_int_equal(P("primary-rp", "create", "k", "--no-wait"), 0);
	snprintf(job, sizeof(job), "%.36s", strstr(out, "InstanceID=\"") + 12);
	for (int i = 0; i < 400 && nbd == 0; i++) {
		assert_int_equal(P("--json", "primary-rp", "job", job), 0);
		if (strstr(out, "\"phase\":\"Scanning\"") != NULL &&
		    strstr(out, "\"bytes_done\":0,") == NULL)
			nbd = qemu_nbd_find(primary.pid, NULL);
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

/* Waits until job (on agent q) moves blocks, or fails the test. */
static void
wait_moving(const fbt_agent *q, const char *job)
{
	for (int i = 0; i < 1200; i++) {
		fbt_assert_exit(FBT_R(out, *q, "--json", "job", "show", job), 0, out);
		if (strstr(out, "\"phase\":\"Transferring\"") != NULL &&
		    strstr(out, "\"blocks_done\":0,") == NULL)
			return;
		if (strstr(out, "\"job_state\":4") == NULL && strstr(out, "\"job_state\":3") == NULL)
			fail_msg("job %s ended before it moved blocks: %s", job, out);
		usleep(50000);
	}
	fail_msg("job %s never moved blocks: %s", job, out);
}

/* The recovery VM writes mib MiB at 16 MiB through its qcow2 disk. */
static void
vm_writes(const char *disk, int pattern, int mib)
{
	char cmd[64];

	snprintf(cmd, sizeof(cmd), "write -P %d 16M %dM", pattern, mib);
	assert_int_equal(run((const char *[]){"/usr/bin/qemu-io", "-f", "qcow2", "-c", cmd, disk,
	                                      NULL}),
	                 0);
}

/* A writer (qemu-io, as the VM's QEMU) writes 64 KiB through the qcow2
 * disk and is SIGKILLed while it holds the image open. */
static void
vm_killed_while_writing(const char *disk)
{
	pid_t pid = fork();
	int   open_seen = 0;

	assert_true(pid >= 0);
	if (pid == 0) {
		execl("/usr/bin/qemu-io", "qemu-io", "-f", "qcow2", "-c", "write -P 0x71 3M 64k", "-c",
		      "sleep 600000", disk, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 200 && !open_seen; i++) {
		assert_int_equal(run((const char *[]){"/usr/bin/qemu-img", "info", "-U", disk, NULL}),
		                 0);
		if (!(open_seen = strstr(out, "in-use") != NULL))
			usleep(50000);
	}
	assert_true(open_seen);
	assert_int_equal(kill(pid, SIGKILL), 0);
	waitpid(pid, NULL, 0);
}

/* Fails back VM vm at agent a (verification verify) to its end, which
 * must be Completed; its `job show --json` stays in out. */
static void
failback_completes(const fbt_agent *a, const char *vm, const char *verify)
{
	char job[40];

	fbt_assert_exit(FBT_R(out, *a, "failback", vm, "--verify", verify), 0, out);
	snprintf(job, sizeof(job), "%.36s", strstr(out, "InstanceID=\"") + 12);
	(void)FBT_R(out, *a, "job", "wait", job);
	fbt_assert_exit(FBT_R(out, *a, "--json", "job", "show", job), 0, out);
	if (strstr(out, "\"job_state\":7") == NULL)
		fail_msg("failback %s did not complete: %s", job, out);
}

/* The number after "field": in out (a `--json` answer). */
static unsigned long long
json_number(const char *field)
{
	char        key[64];
	const char *p;

	snprintf(key, sizeof(key), "\"%s\":", field);
	assert_non_null(p = strstr(out, key));
	return strtoull(p + strlen(key), NULL, 10);
}

static void
a_qcow2_recovery_disk_is_tracked_fails_back_cancels_and_survives_its_server(void **state)
{
	fbt_agent   q;
	char        raw[600], disk[800], before[820], job[40];
	const char *extra[] = {"--recovery-format=qcow2", "--change-tracking=qcow2",
	                       "--max-transfer-rate=2", NULL};
	int         nbd = 0, rc;

	(void)state;
	assert_int_equal(fbt_replica_start(&q, &primary, extra), 0);
	snprintf(raw, sizeof(raw), "%s/q.raw", fbt_root());
	assert_int_equal(fbt_image_make(raw, 64u << 20, 45), 0);
	assert_int_equal(P("primary-vm", "add", "q", raw), 0);
	assert_int_equal(P("primary-rp", "create", "q"), 0);
	fbt_assert_exit(FBT_R(out, q, "replicate", "q", "--wait"), 0, out);
	fbt_assert_exit(FBT_R(out, q, "failover", "q", "--wait"), 0, out);
	fbt_assert_exit(FBT_R(out, q, "vm", "show", "q"), 0, out);
	assert_non_null(strstr(out, "format: qcow2"));
	sscanf(strstr(out, "path: ") + 6, "%799s", disk);
	/* a standalone qcow2 image (no data file) holding the point, and its
	 * bitmap counting from the point */
	assert_int_equal(run((const char *[]){"/usr/bin/qemu-img", "info", "--output=json", disk,
	                                      NULL}),
	                 0);
	assert_non_null(strstr(out, "\"format\": \"qcow2\""));
	assert_null(strstr(out, "data-file"));
	assert_non_null(strstr(out, "\"name\": \"fb-"));
	assert_true(fbt_file_contains(q.log, "a qcow2 image holding its bitmap"));
	assert_same(raw, disk, "qcow2");
	fbt_assert_exit(FBT_R(out, q, "failover-commit", "q", "--wait"), 0, out);

	/* cancel mid-transfer: the disk is what it was before the call */
	vm_writes(disk, 0xcd, 8);
	snprintf(before, sizeof(before), "%s.before", disk);
	assert_int_equal(run((const char *[]){"/bin/cp", "--sparse=always", disk, before, NULL}), 0);
	fbt_assert_exit(FBT_R(out, q, "failback", "q"), 0, out);
	snprintf(job, sizeof(job), "%.36s", strstr(out, "InstanceID=\"") + 12);
	wait_moving(&q, job);
	assert_non_null(strstr(out, "\"compare_mode\":\"bitmap\""));
	fbt_assert_exit(FBT_R(out, q, "job", "cancel", job), 0, out);
	(void)FBT_R(out, q, "job", "wait", job);
	fbt_assert_exit(FBT_R(out, q, "job", "show", job), 0, out);
	assert_non_null(strstr(out, "Terminated (8)"));
	rc = run((const char *[]){"/usr/bin/qemu-img", "compare", "-f", "qcow2", "-F", "qcow2",
	                          before, disk, NULL});
	if (rc != 0)
		fail_msg("the cancelled failback left the disk changed: %s", out);

	/* the read-write qemu-nbd killed mid-transfer: a new worker resumes
	 * (the cancelled job's writes voided the bitmap's base: a full scan).
	 * The blocks come from the local store, not at the transfer rate: the
	 * VM writes 32 MiB first, so the kill lands well inside the transfer
	 * even when a sanitizer slows the test's side. */
	vm_writes(disk, 0xcf, 32);
	fbt_assert_exit(FBT_R(out, q, "failback", "q"), 0, out);
	snprintf(job, sizeof(job), "%.36s", strstr(out, "InstanceID=\"") + 12);
	wait_moving(&q, job);
	/* killed once the worker writes through it (a server killed while it
	 * starts has taken nothing and is simply started again: FB1030) */
	for (int i = 0; i < 400 && (nbd == 0 || qemu_nbd_sockets(nbd) < 2); i++)
		if ((nbd = qemu_nbd_find(0, "--discard=unmap")) == 0 ||
		    qemu_nbd_sockets(nbd) < 2) /* read-write, connected */
			usleep(20000);
	assert_int_not_equal(nbd, 0);
	assert_int_equal(kill(nbd, SIGKILL), 0);
	(void)FBT_R(out, q, "job", "wait", job);
	fbt_assert_exit(FBT_R(out, q, "job", "show", job), 0, out);
	if (strstr(out, "Completed (7)") == NULL)
		fail_msg("the failback did not complete after qemu-nbd died: %s", out);
	assert_true(fbt_file_contains(q.log, "FB6027"));
	assert_true(fbt_file_contains(q.log, "restarting from the checkpoint"));
	assert_true(fbt_file_contains(q.log, "full scan: no base leaves"));
	assert_same(raw, disk, "qcow2");
	/* the image is sound: at most clusters leaked by the killed server */
	rc = run((const char *[]){"/usr/bin/qemu-img", "check", "-f", "qcow2", disk, NULL});
	if (rc != 0 && rc != 3)
		fail_msg("qemu-img check %s: %d: %s", disk, rc, out);

	/* tracked again from the failback's target: the next one reads only
	 * the 2 MiB the VM wrote (fast verification: nothing else) */
	vm_writes(disk, 0xce, 2);
	failback_completes(&q, "q", "fast");
	assert_non_null(strstr(out, "\"compare_mode\":\"bitmap\""));
	assert_int_equal(json_number("bytes_read"), 2u << 20);
	assert_int_equal(json_number("blocks_total"), 32);
	assert_same(raw, disk, "qcow2");

	/* a VM killed with the image open leaves its bitmap in use: the next
	 * failback does not believe it, scans whole and is still exact */
	vm_killed_while_writing(disk);
	failback_completes(&q, "q", "full");
	assert_non_null(strstr(out, "\"compare_mode\":\"full scan\""));
	assert_true(fbt_file_contains(q.log, "is in use: its writer did not close the image"));
	assert_same(raw, disk, "qcow2");
	assert_int_equal(fbt_agent_stop(&q, SIGTERM, 10000), 0);
}

/* "Images are identical." from qemu-img compare of two qcow2 images. */
static void
assert_same_qcow2(const char *a, const char *b)
{
	int rc = run((const char *[]){"/usr/bin/qemu-img", "compare", "-f", "qcow2", "-F", "qcow2",
	                              a, b, NULL});

	if (rc != 0)
		fail_msg("qemu-img compare %s %s: %d: %s", a, b, rc, out);
}

static void
a_vm_on_qcow2_disks_at_both_sites_goes_home_and_is_protected_again(void **state)
{
	fbt_agent   ap, bp, br, ar; /* site A's and B's primary and replica agents */
	char        raw[600], imgA[600], dB[800], lpA[200], lpB[200];
	const char *track[] = {"--change-tracking=qcow2", NULL};

	(void)state;
	/* both primaries track the disks they serve: in a qcow2 image itself */
	assert_int_equal(fbt_agent_start(&ap, "primary", "primary", track), 0);
	assert_int_equal(fbt_agent_start(&bp, "primary", "primary", track), 0);
	snprintf(lpA, sizeof(lpA), "--local-primary-url=%s", ap.resync);
	snprintf(lpB, sizeof(lpB), "--local-primary-url=%s", bp.resync);
	assert_int_equal(fbt_replica_start(&br, &ap,
	                                   (const char *[]){lpB, "--recovery-format=qcow2", track[0],
	                                                    NULL}),
	                 0);
	assert_int_equal(fbt_replica_start(&ar, &ap, (const char *[]){lpA, track[0], NULL}), 0);
	/* site A's VM runs on a qcow2 image */
	image_pair("home", "qcow2", 32, 47, raw, imgA);
	fbt_assert_exit(FBT_P(out, ap, "primary-vm", "add", "home", imgA, "--format", "qcow2"), 0, out);
	fbt_assert_exit(FBT_P(out, ap, "primary-rp", "create", "home"), 0, out);
	fbt_assert_exit(FBT_R(out, br, "replicate", "home", "--wait"), 0, out);
	/* A's VM writes 1 MiB that never replicates (the lost tail), then
	 * the next point counts only what its bitmap says was written */
	vm_writes(imgA, 0xd0, 1);
	fbt_assert_exit(FBT_P(out, ap, "primary-rp", "create", "home"), 0, out);
	assert_true(fbt_file_contains(ap.log, "16 of 512 blocks written, read only those"));
	fbt_assert_exit(FBT_R(out, br, "replicate", "home", "--wait"), 0, out);
	assert_int_equal(run((const char *[]){"/usr/bin/qemu-io", "-f", "qcow2", "-c",
	                                      "write -P 0xd3 0 1M", imgA, NULL}),
	                 0);
	/* B fails over to a qcow2 recovery disk; its VM writes 4 MiB */
	fbt_assert_exit(FBT_R(out, br, "failover", "home", "--wait"), 0, out);
	fbt_assert_exit(FBT_R(out, br, "failover-commit", "home", "--wait"), 0, out);
	fbt_assert_exit(FBT_R(out, br, "vm", "show", "home"), 0, out);
	assert_non_null(strstr(out, "format: qcow2"));
	sscanf(strstr(out, "path: ") + 6, "%799s", dB);
	vm_writes(dB, 0xd1, 4);

	/* reverse on B: B's primary serves the qcow2 image in place, A's
	 * replica takes A's qcow2 image as the receiving side's disk */
	if (FBT_R(out, br, "reverse", "home", "--to", ar.resync, "--to-name",
	          "replica.failback.test", "--wait") != 0 ||
	    strstr(out, "Completed (7)") == NULL)
		fail_msg("reverse of a VM on qcow2 disks: %s", out);
	fbt_assert_exit(FBT_P(out, bp, "--json", "primary-vm", "list"), 0, out);
	assert_non_null(strstr(out, dB));
	assert_non_null(strstr(out, "\"format\":\"qcow2\""));
	fbt_assert_exit(FBT_R(out, ar, "vm", "show", "home"), 0, out);
	assert_non_null(strstr(out, imgA));
	assert_non_null(strstr(out, "format: qcow2"));

	/* home: A's image becomes B's, through qemu-nbd on both sides; A's
	 * bitmap (its tail) and B's points say what differs: no scan */
	failback_completes(&ar, "home", "fast");
	assert_non_null(strstr(out, "\"compare_mode\":\"bitmap\""));
	if (json_number("bytes_read") > (6u << 20))
		fail_msg("the failback home read more than A's tail and B's writes: %s", out);
	assert_same_qcow2(imgA, dB);
	assert_int_equal(run((const char *[]){"/usr/bin/qemu-img", "check", "-f", "qcow2", imgA,
	                                      NULL}),
	                 0);

	/* re-protect: A serves its image again, B's image receives */
	if (FBT_R(out, ar, "reverse", "home", "--to", br.resync, "--to-name",
	          "replica.failback.test", "--wait") != 0 ||
	    strstr(out, "Completed (7)") == NULL)
		fail_msg("re-protect of a VM on qcow2 disks: %s", out);
	vm_writes(imgA, 0xd2, 1);
	fbt_assert_exit(FBT_P(out, ap, "primary-rp", "create", "home"), 0, out);
	fbt_assert_exit(FBT_R(out, br, "replicate", "home", "--wait"), 0, out);
	/* what B's image already held was read from it, not pulled */
	assert_true(fbt_file_contains(br.log, "were on this host's disk, not pulled"));
	/* and a failover at B now brings up exactly A's image */
	fbt_assert_exit(FBT_R(out, br, "failover", "home", "--wait"), 0, out);
	fbt_assert_exit(FBT_R(out, br, "vm", "show", "home"), 0, out);
	sscanf(strstr(out, "path: ") + 6, "%799s", dB);
	assert_same_qcow2(imgA, dB);
	assert_int_equal(fbt_agent_stop(&ar, SIGTERM, 10000), 0);
	assert_int_equal(fbt_agent_stop(&br, SIGTERM, 10000), 0);
	assert_int_equal(fbt_agent_stop(&bp, SIGTERM, 10000), 0);
	assert_int_equal(fbt_agent_stop(&ap, SIGTERM, 10000), 0);
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
	    cmocka_unit_test(a_qcow2_recovery_disk_is_tracked_fails_back_cancels_and_survives_its_server),
	    cmocka_unit_test(a_vm_on_qcow2_disks_at_both_sites_goes_home_and_is_protected_again),
	};
	if (access("/usr/bin/qemu-img", X_OK) != 0 || access("/usr/bin/qemu-nbd", X_OK) != 0 ||
	    access("/usr/bin/qemu-io", X_OK) != 0) {
		printf("formats: SKIP: qemu-img, qemu-nbd and qemu-io are needed (apt-get install "
		       "qemu-utils)\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
