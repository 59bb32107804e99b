/*
 * format_bench.c - prints what a qcow2 recovery disk costs next to a raw
 * one (docs/STORAGE.md, "Recovery disks as qcow2 images"): a primary agent
 * and two replica agents on loopback with mutual TLS, both tracking
 * (change_tracking = qcow2), one writing recovery disks raw (with their
 * qcow2 wrapper), the other as qcow2 images (written and read through
 * qemu-nbd, the bitmap in the image). Both replicate the same mixed image;
 * each fails over, commits, its VM writes the same blocks through the file
 * it opens (qemu-io), and each fails back with the fast verification. The
 * failover and the failback are timed from a dropped page cache, and each
 * recovery disk is compared with the primary's image afterwards.
 *
 * usage: format_bench [MiB] [percent changed]   (defaults 4096 and 1)
 * As root the page cache is dropped before every timed phase; the output
 * says "warm" otherwise. Not a test: it asserts nothing. Needs qemu-utils.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "harness.h"
#include "image.h"

static fbt_agent primary, replica[2];
static char      out[1 << 16];
static int       cold = 1;

static const char *const format[2] = {"raw", "qcow2"};

static void
must(int rc, const char *what)
{
	if (rc != 0) {
		fprintf(stderr, "format_bench: %s failed:\n%s\n", what, out);
		exit(1);
	}
}

static int
R(int i, const char *const *args)
{
	const char *a[16] = {"--events-url", replica[i].events};
	size_t      n     = 2;

	for (; *args != NULL && n + 1 < 16; args++)
		a[n++] = *args;
	a[n] = NULL;
	return fbt_ctlv(out, sizeof(out), replica[i].control, "operator", "replica.failback.test", a);
}

/* Runs a --wait call from a dropped page cache: its seconds. */
static double
timed(int i, const char *const *args, const char *what)
{
	double t;

	cold &= bench_drop_caches();
	t = bench_now_s();
	must(R(i, args), what);
	return bench_now_s() - t;
}

/* The value after "key: " in out, into v. */
static void
field(const char *key, char *v, size_t cap)
{
	const char *p = strstr(out, key);

	snprintf(v, cap, "%s", p != NULL ? p + strlen(key) : "");
	v[strcspn(v, "\n")] = '\0';
}

int
main(int argc, char **argv)
{
	uint64_t mib = argc > 1 ? strtoull(argv[1], NULL, 10) : 4096;
	double   pct = argc > 2 ? strtod(argv[2], NULL) : 1.0;
	uint64_t nblocks = mib * 16, n = (uint64_t)((double)nblocks * pct / 100.0);
	char     img[600], disk[2][800], opened[2][1700];
	double   fo[2], fb[2];
	int      same[2];

	if (mib == 0 || pct <= 0 || pct > 100) {
		fprintf(stderr, "usage: format_bench [MiB] [percent changed]\n");
		return 2;
	}
	if (fbt_setup() != 0)
		return 1;
	must(fbt_agent_start(&primary, "primary", "primary", NULL), "starting the primary agent");
	must(fbt_replica_start(&replica[0], &primary,
	                       (const char *[]){"--change-tracking=qcow2", NULL}),
	     "starting the raw replica agent");
	must(fbt_replica_start(&replica[1], &primary,
	                       (const char *[]){"--change-tracking=qcow2", "--recovery-format=qcow2",
	                                        NULL}),
	     "starting the qcow2 replica agent");
	snprintf(img, sizeof(img), "%s/vm.img", fbt_root());
	must(fbt_image_make(img, mib << 20, 1), "making the image");
	must(fbt_ctlv(out, sizeof(out), primary.control, "operator", "primary.failback.test",
	              (const char *[]){"primary-vm", "add", "vm", img, NULL}),
	     "primary-vm add");
	must(fbt_ctlv(out, sizeof(out), primary.control, "operator", "primary.failback.test",
	              (const char *[]){"primary-rp", "create", "vm", NULL}),
	     "primary-rp create");
	for (int i = 0; i < 2; i++) {
		char cmd[3000];

		must(R(i, (const char *[]){"replicate", "vm", "--wait", NULL}), "replicate");
		fo[i] = timed(i, (const char *[]){"failover", "vm", "--wait", NULL}, "failover");
		must(R(i, (const char *[]){"vm", "show", "vm", NULL}), "vm show");
		field("path: ", disk[i], sizeof(disk[i]));
		if (i == 0)
			snprintf(opened[i], sizeof(opened[i]), "%s.qcow2", disk[i]);
		else
			snprintf(opened[i], sizeof(opened[i]), "%s", disk[i]);
		must(R(i, (const char *[]){"failover-commit", "vm", "--wait", NULL}), "failover-commit");
		must(bench_vm_writes_to(opened[i], n, nblocks, 7), "qemu-io");
		fb[i] = timed(i, (const char *[]){"failback", "vm", "--verify", "fast", "--wait", NULL},
		              "failback");
		snprintf(cmd, sizeof(cmd), "qemu-img compare -q -f raw -F %s '%s' '%s'", format[i], img,
		         disk[i]);
		same[i] = system(cmd) == 0;
	}
	printf("format_bench: %llu MiB mixed image, %llu blocks (%.1f%%) written by the recovery VM, "
	       "mTLS on loopback, both replicas tracking, fast verification, %s page cache\n",
	       (unsigned long long)mib, (unsigned long long)n, pct, cold ? "cold" : "warm");
	printf("%-28s %12s %12s %s\n", "recovery disk", "failover s", "failback s", "identical");
	for (int i = 0; i < 2; i++)
		printf("%-28s %12.2f %12.2f %s\n",
		       i == 0 ? "raw (+ qcow2 wrapper)" : "qcow2 (bitmap in the image)", fo[i], fb[i],
		       same[i] ? "yes" : "NO");
	fbt_teardown();
	return same[0] && same[1] ? 0 : 1;
}
