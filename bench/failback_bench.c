/*
 * failback_bench.c - prints what a failback costs against what it must
 * beat (DESIGN §8): real agents on loopback with mutual TLS, a mixed-content
 * image, 1% of its 64 KiB blocks changed on the replica, then
 * InitiateFailback to the point they came from. Printed: the time to read
 * and hash the replica disk once, the failback's time and its ratio to
 * that, bytes read from the disk and on the wire against the changed
 * bytes, and the initial replication's throughput (a full resync). The
 * changes are made twice: through the recovery disk's qcow2 wrapper, as
 * the VM's QEMU would (the failback reads only the dirty blocks), and
 * around it (the failback scans the disk whole). The page cache is
 * dropped before every timed phase when run as root ("warm" otherwise).
 *
 * usage: failback_bench [MiB] [percent changed]   (defaults 1024 and 1)
 * Not a test: it asserts nothing and only prints numbers.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <pthread.h>

#include "failback/clock.h"
#include "failback/disk.h"
#include "failback/events.h"
#include "failback/tls.h"
#include "bench.h"
#include "harness.h"
#include "image.h"

static fbt_agent primary, replica;
static char      out[1 << 16];

/* Event latency: publisher's stamp to receipt, same clock (loopback). */
static struct {
	fb_events_sub *sub;
	volatile int   stop;
	double         lat[100000];
	size_t         n, transferring;
	int64_t        t_first, t_last;
} ev;

static void *
ev_thread(void *arg)
{
	(void)arg;
	while (!ev.stop) {
		Failback__JobEvent *e;
		fb_err              err;

		if (fb_events_sub_next(ev.sub, 100, &e, &err) != 0)
			continue;
		if (ev.n < sizeof(ev.lat) / sizeof(ev.lat[0]))
			ev.lat[ev.n++] = (double)(fb_clock_unix_ms() - e->time_unix_ms);
		if (strcmp(e->phase, "Transferring") == 0) {
			if (ev.transferring++ == 0)
				ev.t_first = e->time_unix_ms;
			ev.t_last = e->time_unix_ms;
		}
		failback__job_event__free_unpacked(e, NULL);
	}
	return NULL;
}

static int
cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

#define now_s bench_now_s

#define P(...) fbt_ctlv(out, sizeof(out), primary.control, "operator", "primary.failback.test", \
                        (const char *[]){__VA_ARGS__, NULL})
#define R(...) fbt_ctlv(out, sizeof(out), replica.control, "operator", "replica.failback.test", \
                        (const char *[]){"--events-url", replica.events, __VA_ARGS__, NULL})

static void
must(int rc, const char *what)
{
	if (rc != 0) {
		fprintf(stderr, "failback_bench: %s failed:\n%s\n", what, out);
		exit(1);
	}
}

/* The failback's job id (from --wait's output) into job. */
static void
job_of(char *job)
{
	const char *q = strstr(out, "job_id: ");

	snprintf(job, 40, "%.36s", q != NULL ? q + 8 : "");
}

/* GetJob's bytes_read and compare_mode of job. */
static unsigned long long
job_read(const char *job, char *mode, size_t cap)
{
	const char *p;

	must(R("--json", "job", "show", job), "job show");
	p = strstr(out, "\"compare_mode\":\"");
	snprintf(mode, cap, "%.*s", p ? (int)strcspn(p + 16, "\"") : 1, p ? p + 16 : "?");
	p = strstr(out, "\"bytes_read\":");
	return p != NULL ? strtoull(p + 13, NULL, 10) : 0;
}

/* The recovery VM writes n random blocks through its wrapper (qemu-io). */
static void
vm_writes(const char *disk, uint64_t n, uint64_t nblocks, unsigned seed)
{
	char  cmd[1600];
	FILE *q;

	snprintf(cmd, sizeof(cmd), "qemu-io -f qcow2 '%s.qcow2' >/dev/null", disk);
	if ((q = popen(cmd, "w")) == NULL)
		exit(1);
	srand(seed);
	for (uint64_t i = 0; i < n; i++)
		fprintf(q, "write -P %d %llu 64k\n", rand() % 255 + 1,
		        (unsigned long long)((uint64_t)rand() % nblocks) * 65536);
	if (pclose(q) != 0) {
		fprintf(stderr, "failback_bench: qemu-io failed\n");
		exit(1);
	}
}

/* The last "N bytes on the wire" the replica logged. */
static unsigned long long
wire_bytes(void)
{
	char               line[2048];
	unsigned long long last = 0;
	FILE              *f    = fopen(replica.log, "r");

	while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
		char *p = strstr(line, " bytes on the wire");
		if (p != NULL) {
			while (p > line && p[-1] >= '0' && p[-1] <= '9')
				p--;
			last = strtoull(p, NULL, 10);
		}
	}
	if (f != NULL)
		fclose(f);
	return last;
}

int
main(int argc, char **argv)
{
	uint64_t     mib = argc > 1 ? strtoull(argv[1], NULL, 10) : 1024;
	double       pct = argc > 2 ? atof(argv[2]) : 1.0;
	uint64_t     size = mib << 20, nblocks = size / (64 << 10);
	uint64_t     changed = (uint64_t)((double)nblocks * pct / 100.0);
	char         img[600], peer[200], disk[700], p1[40];
	const char  *rextra[] = {peer, "--peer-name=primary.failback.test", "--change-tracking=qcow2",
	                         NULL};
	fb_disk_scan scan;
	fb_err       err;
	double       t0, t_repl, t_hash, t_fb, t_fb2, t_bm, t_bmf;
	unsigned long long wire, wire2, wire_bm, read_fb, read_bm, read_bmf;
	char         job[40], mode_fb[16], mode_bm[16];
	int          cold = 1;

	if (fbt_setup() != 0 || fbt_agent_start(&primary, "primary", "primary", NULL) != 0)
		return 1;
	snprintf(peer, sizeof(peer), "--peer-url=%s", primary.resync);
	if (fbt_agent_start(&replica, "replica", "replica", rextra) != 0)
		return 1;
	snprintf(img, sizeof(img), "%s/bench.img", fbt_root());
	if (fbt_image_make(img, size, 1) != 0)
		return 1;
	must(P("primary-vm", "add", "bench", img), "add");
	must(P("--json", "primary-rp", "create", "bench"), "recovery point");
	snprintf(p1, sizeof(p1), "%.36s", strstr(out, "\"point\":{\"id\":\"") + 15);

	t0 = now_s();
	must(R("replicate", "bench", "--wait"), "replicate");
	t_repl = now_s() - t0;
	must(R("failover", "bench", "--wait"), "failover");
	must(R("failover-commit", "bench", "--wait"), "commit");
	must(R("vm", "show", "bench"), "vm show");
	sscanf(strstr(out, " path: /") + 7, "%699s", disk);

	/* What a failback must compete with: one read and hash of the disk. */
	cold &= bench_drop_caches();
	t0 = now_s();
	if (fb_disk_hash(disk, NULL, NULL, &scan, &err) != 0)
		return 1;
	t_hash = now_s() - t0;
	free(scan.leaves);

	/* The recovery VM writes through its wrapper: the bitmap knows. Once
	 * with the default full verification, once with the fast one. */
	vm_writes(disk, changed, nblocks, 2);
	cold &= bench_drop_caches();
	t0 = now_s();
	must(R("failback", "bench", "--rp", p1, "--wait"), "failback with the bitmap");
	t_bmf = now_s() - t0;
	job_of(job);
	read_bmf = job_read(job, mode_bm, sizeof(mode_bm));
	vm_writes(disk, changed, nblocks, 4);
	cold &= bench_drop_caches();
	t0 = now_s();
	must(R("failback", "bench", "--rp", p1, "--verify=fast", "--wait"),
	     "failback with the bitmap, fast verification");
	t_bm = now_s() - t0;
	job_of(job);
	wire_bm = wire_bytes();
	read_bm = job_read(job, mode_bm, sizeof(mode_bm));

	/* The same amount written around the wrapper: a full scan. */
	fbt_image_mutate(disk, changed, 2);
	cold &= bench_drop_caches();
	t0 = now_s();
	must(R("failback", "bench", "--rp", p1, "--wait"), "failback");
	t_fb = now_s() - t0;
	job_of(job);
	wire    = wire_bytes();
	read_fb = job_read(job, mode_fb, sizeof(mode_fb));

	/* The primary's data changed instead: the blocks must cross the wire. */
	fbt_image_mutate(img, changed, 3);
	must(P("primary-rp", "create", "bench"), "second recovery point");
	{
		nng_tls_config *tls;
		pthread_t       t;

		if (fb_tls_config_client(&tls, fbt_pki_file("agents-ca.pem"),
		                         fbt_pki_file("monitor.pem"), fbt_pki_file("monitor.key"),
		                         "replica.failback.test", 0, &err) != 0 ||
		    fb_events_sub_open(&ev.sub, replica.events, tls, "job/", &err) != 0)
			return 1;
		pthread_create(&t, NULL, ev_thread, NULL);
		cold &= bench_drop_caches();
		t0 = now_s();
		must(R("failback", "bench", "--wait"), "failback to the new point");
		t_fb2 = now_s() - t0;
		ev.stop = 1;
		pthread_join(t, NULL);
	}
	wire2 = wire_bytes();

	printf("failback_bench: %llu MiB mixed image (%llu blocks), %llu blocks (%.1f%%) changed "
	       "on the replica, mTLS on loopback, %ld cores, page cache %s before each timed "
	       "phase\n",
	       (unsigned long long)mib, (unsigned long long)nblocks, (unsigned long long)changed,
	       pct, sysconf(_SC_NPROCESSORS_ONLN), cold ? "dropped" : "WARM (not root)");
	printf("initial replication (full resync)  %7.2f s  %7.1f MiB/s of disk\n", t_repl,
	       (double)mib / t_repl);
	printf("read + hash the replica disk once  %7.2f s  %7.1f MiB/s\n", t_hash,
	       (double)mib / t_hash);
	printf("A. the recovery VM wrote through its qcow2 wrapper; failback to the point it came "
	       "from (compare: %s):\n", mode_bm);
	printf("   failback, full verification     %7.2f s  = %.3f x read+hash, %llu bytes read\n",
	       t_bmf, t_bmf / t_hash, read_bmf);
	printf("   failback, fast verification     %7.2f s  = %.3f x read+hash\n", t_bm,
	       t_bm / t_hash);
	printf("   bytes read from the disk        %llu  = %.2f x the changed bytes %llu\n", read_bm,
	       (double)read_bm / (double)(changed * 65536), (unsigned long long)(changed * 65536));
	printf("   bytes on the wire               %llu\n", wire_bm);
	printf("A'. the same written around the wrapper (compare: %s):\n", mode_fb);
	printf("   failback (call to Completed)    %7.2f s  = %.2f x read+hash\n", t_fb,
	       t_fb / t_hash);
	printf("   bytes read from the disk        %llu  = %.2f x the disk\n", read_fb,
	       (double)read_fb / (double)size);
	printf("   bytes on the wire               %llu\n", wire);
	printf("B. the primary's disk changed too; failback to a point the replica never had:\n");
	printf("   failback (call to Completed)    %7.2f s  = %.2f x read+hash\n", t_fb2,
	       t_fb2 / t_hash);
	printf("   bytes on the wire               %llu  (changed bytes %llu; budget changed x 1.02 "
	       "+ 0.1%% of disk = %.0f)\n",
	       wire2, (unsigned long long)(changed * 65536),
	       (double)changed * 65536 * 1.02 + (double)size * 0.001);
	if (ev.n > 0) {
		qsort(ev.lat, ev.n, sizeof(ev.lat[0]), cmp_d);
		printf("events during B: %zu received; latency p50 %.0f ms, p99 %.0f ms, max %.0f ms "
		       "(ms clock)\n",
		       ev.n, ev.lat[ev.n / 2], ev.lat[(ev.n * 99) / 100], ev.lat[ev.n - 1]);
		if (ev.t_last > ev.t_first)
			printf("while transferring: %zu events in %.2f s = %.1f events/s\n",
			       ev.transferring, (double)(ev.t_last - ev.t_first) / 1000,
			       (double)ev.transferring * 1000 / (double)(ev.t_last - ev.t_first));
	}
	fbt_agent_stop(&replica, SIGTERM, 5000);
	fbt_agent_stop(&primary, SIGTERM, 5000);
	fbt_teardown();
	return 0;
}
