/*
 * gohome_bench.c - prints what going home costs (DESIGN §2a): four real
 * agents on loopback with mutual TLS (site A and site B, each a primary and
 * a replica agent). A replicates a mixed-content image to B and is lost; B
 * fails over, commits, and its VM changes a share of the blocks; then
 * reverse on B, the home failback on A while the VM still runs at B
 * (phase 1), a last 0.1% written at B, a final point at B and the second
 * failback (phase 2: the downtime is that point plus that failback), and
 * re-protection (reverse on A, replicate A → B).
 *
 * With --tracked, all four agents track the raw disks (change_tracking =
 * qcow2; the replicas verify fast) and the VMs write through the qcow2
 * wrappers: A's primary tracks A's disk from its point, so phase 1 reads at
 * A only A's tail; B's primary tracks the disk from the reverse's point, so
 * the final point reads only the last writes. Each phase's bytes read from
 * disk are printed.
 *
 * With --qcow2 (tracked as above), A's VM runs on a qcow2 image (converted
 * from the mixed image) and B's replica holds its recovery disk as qcow2
 * (recovery_format = qcow2): every disk is read and written through
 * qemu-nbd, the bitmaps live in the images, and the VMs write into them.
 *
 * usage: gohome_bench [--tracked | --qcow2] [MiB] [percent changed at B]
 *                     [percent of A's tail]
 *        (defaults 1024, 1 and 0)
 * The page cache is dropped before every timed phase when run as root; the
 * output says "warm" otherwise. Not a test: it asserts nothing.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "harness.h"
#include "image.h"

static fbt_agent ap, ar, bp, br;
static char      out[1 << 16];
static int       cold = 1, tracked, qcow2;

static void
must(int rc, const char *what)
{
	if (rc != 0) {
		fprintf(stderr, "gohome_bench: %s failed:\n%s\n", what, out);
		exit(1);
	}
}

static void
drop(void)
{
	cold &= bench_drop_caches();
}

static void
job_of(char *job, size_t len)
{
	const char *p = strstr(out, "InstanceID=\"");

	snprintf(job, len, "%.36s", p != NULL ? p + 12 : "");
}

/* "N block(s) applied, W bytes on the wire" (FB6013) of a job in a log. */
static void
cost(const fbt_agent *a, const char *job, unsigned long long *blocks, unsigned long long *wire)
{
	char  line[2048];
	FILE *f = fopen(a->log, "r");

	*blocks = *wire = 0;
	while (f != NULL && fgets(line, sizeof(line), f) != NULL)
		if (strstr(line, job) != NULL && strstr(line, "FB6013") != NULL)
			sscanf(strstr(line, ": ") + 2, "%llu block(s) applied, %llu", blocks, wire);
	if (f != NULL)
		fclose(f);
}

/* "P pulled, W bytes on the wire" (FB6021) of a replication in a log. */
static void
repl_cost(const fbt_agent *a, const char *job, unsigned long long *pulled,
          unsigned long long *wire)
{
	char  line[2048];
	FILE *f = fopen(a->log, "r");

	*pulled = *wire = 0;
	while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
		const char *p;

		if (strstr(line, job) == NULL || (p = strstr(line, "new blocks, ")) == NULL)
			continue;
		sscanf(p + 12, "%llu pulled, %llu", pulled, wire);
	}
	if (f != NULL)
		fclose(f);
}

/* A job's bytes read from disk (job show --json on agent a). */
static unsigned long long
job_read(const fbt_agent *a, const char *job)
{
	const char *p;

	if (fbt_ctl(out, sizeof(out), a->control, "operator", "replica.failback.test", "--json",
	            "job", "show", job, NULL) != 0 ||
	    (p = strstr(out, "\"bytes_read\":")) == NULL)
		return 0;
	p += 13;
	return strtoull(p + (*p == '"'), NULL, 10);
}

/* The bytes the newest point of a primary read ("read N bytes", FB4002). */
static unsigned long long
point_read(const fbt_agent *a)
{
	char               line[2048];
	unsigned long long v = 0;
	FILE              *f = fopen(a->log, "r");
	const char        *p;

	while (f != NULL && fgets(line, sizeof(line), f) != NULL)
		if (strstr(line, "FB4002") != NULL && (p = strstr(line, ": read ")) != NULL)
			v = strtoull(p + 7, NULL, 10);
	if (f != NULL)
		fclose(f);
	return v;
}

/* The VM changes n blocks of disk: through its wrapper when tracked, into
 * the image when it is a qcow2 one. */
static void
vm_changes(const char *disk, uint64_t n, uint64_t nblocks, unsigned seed)
{
	if (!tracked)
		fbt_image_mutate(disk, n, seed);
	else if ((qcow2 ? bench_vm_writes_to(disk, n, nblocks, seed)
	                : bench_vm_writes(disk, n, nblocks, seed)) != 0) {
		fprintf(stderr, "gohome_bench: qemu-io into %s failed\n", disk);
		exit(1);
	}
}

/* Polls the job a command just started (on agent a: a replica agent's job,
 * or with point set a primary's point job) to its end: the harness gives
 * one command 60 s, and an 8 GiB first copy or scan takes longer. */
static void
finish(const fbt_agent *a, int point, int rc, const char *what)
{
	char        job[40], sname[64];
	const char *q;

	must(rc, what);
	if ((q = strstr(out, "InstanceID=\"")) == NULL)
		must(1, what);
	snprintf(job, sizeof(job), "%.36s", q + 12);
	snprintf(sname, sizeof(sname), "%s.failback.test", point ? "primary" : "replica");
	for (;;) {
		must(fbt_ctl(out, sizeof(out), a->control, "operator", sname, "--json",
		             point ? "primary-rp" : "job", point ? "job" : "show", job, NULL),
		     what);
		if (strstr(out, "\"job_state\":7") != NULL)
			break;
		if (strstr(out, "\"job_state\":8") != NULL || strstr(out, "\"job_state\":10") != NULL)
			must(1, what);
		usleep(100000);
	}
	/* the job's reference, as the --wait output would give it */
	snprintf(out, sizeof(out), "InstanceID=\"%s\"", job);
}

#define PA(...) FBT_P(out, ap, __VA_ARGS__)
#define PB(...) FBT_P(out, bp, __VA_ARGS__)
#define RA(...) FBT_R(out, ar, __VA_ARGS__)
#define RB(...) FBT_R(out, br, __VA_ARGS__)

int
main(int argc, char **argv)
{
	int                sh      = (qcow2 = argc > 1 && strcmp(argv[1], "--qcow2") == 0) ||
	            (argc > 1 && strcmp(argv[1], "--tracked") == 0);
	uint64_t           mib     = argc > 1 + sh ? strtoull(argv[1 + sh], NULL, 10) : 1024;
	double             pct     = argc > 2 + sh ? atof(argv[2 + sh]) : 1.0;
	double             tailpct = argc > 3 + sh ? atof(argv[3 + sh]) : 0.0;
	uint64_t           size = mib << 20, nblocks = size / (64 << 10);
	uint64_t           changed = (uint64_t)((double)nblocks * pct / 100.0);
	uint64_t           tail = (uint64_t)((double)nblocks * tailpct / 100.0);
	uint64_t           last = nblocks / 1000 ? nblocks / 1000 : 1;
	char               img[600], disk[700], lpa[200], lpb[200], j1[40], j2[40], j3[40];
	double             t0, t_rev, t_p1, t_pt, t_p2, t_rp, t_repl;
	unsigned long long b1, w1, b2, w2, pulled, w3, r_rev, r1, r_pt, r2;
	const char        *pt, *vf, *rf = qcow2 ? "--recovery-format=qcow2" : "--recovery-format=raw";

	tracked = sh;
	pt      = tracked ? "--change-tracking=qcow2" : "--change-tracking=off";
	vf      = tracked ? "--verify-mode=fast" : "--verify-mode=full";

	if (fbt_setup() != 0 ||
	    fbt_agent_start(&ap, "primary", "primary", (const char *[]){pt, NULL}) != 0 ||
	    fbt_agent_start(&bp, "primary", "primary", (const char *[]){pt, NULL}) != 0)
		return 1;
	snprintf(lpa, sizeof(lpa), "--local-primary-url=%s", ap.resync);
	snprintf(lpb, sizeof(lpb), "--local-primary-url=%s", bp.resync);
	if (fbt_replica_start(&ar, &bp, (const char *[]){lpa, pt, vf, NULL}) != 0 ||
	    fbt_replica_start(&br, &ap, (const char *[]){lpb, pt, vf, rf, NULL}) != 0)
		return 1;
	snprintf(img, sizeof(img), "%s/web.img", fbt_root());
	if (fbt_image_make(img, size, 1) != 0)
		return 1;
	if (qcow2) {
		char cmd[2600];

		snprintf(cmd, sizeof(cmd), "qemu-img convert -f raw -O qcow2 '%s' '%s.qcow2' && "
		         "mv '%s.qcow2' '%s'", img, img, img, img);
		if (system(cmd) != 0)
			return 1;
	}
	must(PA("primary-vm", "add", "web", img, "--format", qcow2 ? "qcow2" : "raw"), "add");
	finish(&ap, 1, PA("primary-rp", "create", "web", "--no-wait"), "recovery point");
	finish(&br, 0, RB("replicate", "web"), "replicate");
	if (tail > 0)
		vm_changes(img, tail, nblocks, 4);
	finish(&br, 0, RB("failover", "web"), "failover");
	must(RB("failover-commit", "web", "--wait"), "commit");
	must(RB("vm", "show", "web"), "vm show");
	sscanf(strstr(out, "path: ") + 6, "%699s", disk);
	vm_changes(disk, changed, nblocks, 5); /* the VM runs at B */

	drop();
	t0 = bench_now_s();
	finish(&br, 0, RB("reverse", "web", "--to", ar.resync), "reverse on B");
	t_rev = bench_now_s() - t0;
	r_rev = point_read(&bp);

	drop();
	t0 = bench_now_s();
	finish(&ar, 0, RA("failback", "web"), "phase 1");
	t_p1 = bench_now_s() - t0;
	job_of(j1, sizeof(j1));
	cost(&ar, j1, &b1, &w1);
	r1 = job_read(&ar, j1);

	vm_changes(disk, last, nblocks, 6); /* the VM's last writes, then it stops */
	drop();
	t0 = bench_now_s();
	finish(&bp, 1, PB("primary-rp", "create", "web", "--type", "planned", "--no-wait"),
	       "final point at B");
	t_pt = bench_now_s() - t0;
	r_pt = point_read(&bp);
	drop();
	t0 = bench_now_s();
	finish(&ar, 0, RA("failback", "web"), "phase 2");
	t_p2 = bench_now_s() - t0;
	job_of(j2, sizeof(j2));
	cost(&ar, j2, &b2, &w2);
	r2 = job_read(&ar, j2);

	drop();
	t0 = bench_now_s();
	finish(&ar, 0, RA("reverse", "web", "--to", br.resync), "re-protect");
	t_rp = bench_now_s() - t0;
	drop();
	t0 = bench_now_s();
	finish(&br, 0, RB("replicate", "web"), "replicate A -> B");
	t_repl = bench_now_s() - t0;
	job_of(j3, sizeof(j3));
	repl_cost(&br, j3, &pulled, &w3);

	printf("gohome_bench: %llu MiB mixed image (%llu blocks); at B the VM changed %llu blocks "
	       "(%.1f%%), A's lost tail %llu blocks; four agents, mTLS on loopback, 2 cores, %s "
	       "page cache per phase; %s\n",
	       (unsigned long long)mib, (unsigned long long)nblocks, (unsigned long long)changed,
	       pct, (unsigned long long)tail, cold ? "cold" : "warm",
	       qcow2     ? "qcow2 disks at both sites, tracked in the images, fast verification"
	       : tracked ? "disks tracked at both sites, writes through the wrappers, fast verification"
	                 : "no change tracking");
	printf("reverse on B (B's primary takes a point of the disk in place)  %7.2f s  read %llu "
	       "bytes\n",
	       t_rev, r_rev);
	printf("phase 1: home failback on A, VM running at B                  %7.2f s  %llu blocks, "
	       "%llu bytes on the wire (changed bytes %llu; budget x 1.02 + 0.1%% = %.0f), read %llu "
	       "bytes at A\n",
	       t_p1, b1, w1, (unsigned long long)((changed + tail) * 65536),
	       (double)(changed + tail) * 65536 * 1.02 + (double)size * 0.001, r1);
	printf("phase 2: final point at B                                     %7.2f s  read %llu "
	       "bytes\n",
	       t_pt, r_pt);
	printf("phase 2: second failback on A (%llu blocks written last)       %7.2f s  %llu blocks, "
	       "%llu bytes on the wire, read %llu bytes at A\n",
	       (unsigned long long)last, t_p2, b2, w2, r2);
	printf("downtime (final point + second failback)                      %7.2f s\n",
	       t_pt + t_p2);
	printf("re-protect: reverse on A                                      %7.2f s\n", t_rp);
	printf("re-protect: replicate A -> B                                  %7.2f s  %llu blocks "
	       "pulled, %llu bytes on the wire\n",
	       t_repl, pulled, w3);
	fbt_agent_stop(&ar, SIGTERM, 5000);
	fbt_agent_stop(&br, SIGTERM, 5000);
	fbt_agent_stop(&ap, SIGTERM, 5000);
	fbt_agent_stop(&bp, SIGTERM, 5000);
	fbt_teardown();
	return 0;
}
