/*
 * cost_bench.c - what a failback costs as disks grow and as more of them
 * fail back at once (issue: throughput to the ceiling). Real agents on
 * loopback with mutual TLS, tracked recovery disks (qcow2 wrappers), and
 * mixed-content images as failback_bench makes them.
 *
 * Curves (default): for each size (MiB) a VM is replicated, failed over
 * and committed; then, for each share of blocks changed, the primary's
 * image is changed by that share, a new point is taken there, and the
 * replica fails back to it with the fast verification, from a cold page
 * cache. Printed per row: the failback's time (call to Completed), bytes
 * read from the recovery disk and on the wire (the job's counters), the
 * replica agent's peak RSS (its whole life so far, /proc VmHWM) and the
 * transfer worker's (it logs it, FB6013), and the primary agent's CPU
 * time for the failback per GiB of disk compared and per GiB of changed
 * blocks served. Each size also prints one cold read + hash of its disk,
 * which is what a failback with full verification adds.
 *
 * --concurrent N: N VMs of --vm-mib MiB (default 256), each changed by
 * --pct (default 10) at the primary and a new point taken; one failback
 * alone, then all N started at once (one CLI process each). Printed: the
 * lone job's throughput (changed bytes / its elapsed time), the aggregate
 * (all changed bytes / first start to last end), each job's, the slowest /
 * fastest ratio and how far apart the jobs started.
 *
 * Every failback is checked byte for byte against the primary's image
 * (exit 2 on a mismatch). Not a test: it asserts nothing about time.
 *
 * usage: cost_bench [--sizes MiB,...] [--pcts P,...] [--json]
 *        cost_bench --concurrent N [--vm-mib MiB] [--pct P] [--json]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "failback/disk.h"
#include "bench.h"
#include "harness.h"
#include "image.h"

#define MAXV 64

static fbt_agent primary, replica;
static char      out[1 << 16];
static int       cold = 1;

#define P(...) fbt_ctlv(out, sizeof(out), primary.control, "operator", "primary.failback.test", \
                        (const char *[]){__VA_ARGS__, NULL})
#define R(...) fbt_ctlv(out, sizeof(out), replica.control, "operator", "replica.failback.test", \
                        (const char *[]){__VA_ARGS__, NULL})

static void
must(int rc, const char *what)
{
	if (rc != 0) {
		fprintf(stderr, "cost_bench: %s failed:\n%s\n", what, out);
		exit(1);
	}
}

static void
drop(void)
{
	cold &= bench_drop_caches();
}

/* The unsigned number after "key": in out (0 when absent). */
static unsigned long long
field(const char *key)
{
	char        pat[64];
	const char *p;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = strstr(out, pat);
	return p != NULL ? strtoull(p + strlen(pat) + (p[strlen(pat)] == '"'), NULL, 10) : 0;
}

/* The job id a start command printed. */
static void
job_of(char *job)
{
	const char *q = strstr(out, "InstanceID=\"");

	if (q == NULL)
		must(1, "reading the job id");
	snprintf(job, 40, "%.36s", q + 12);
}

/* Polls job to its end; out then holds its last GetJob (JSON). */
/* Takes a point of VM name on the primary and polls its job to its end:
 * the harness gives one command 60 s, and a 16 GiB scan takes longer. */
static void
take_point(const char *name, const char *what)
{
	char job[40];

	must(P("primary-rp", "create", name, "--no-wait"), what);
	job_of(job);
	for (;;) {
		must(P("--json", "primary-rp", "job", job), "primary-rp job");
		if (strstr(out, "\"job_state\":7") != NULL)
			return;
		if (strstr(out, "\"job_state\":8") != NULL || strstr(out, "\"job_state\":10") != NULL)
			must(1, what);
		usleep(100000);
	}
}

static void
wait_job(const char *job, const char *what)
{
	for (;;) {
		must(R("--json", "job", "show", job), "job show");
		if (strstr(out, "\"job_state\":7") != NULL)
			return;
		if (strstr(out, "\"job_state\":8") != NULL || strstr(out, "\"job_state\":10") != NULL)
			must(1, what);
		usleep(100000);
	}
}

static void
exact(const char *disk, const char *img, const char *what)
{
	char a[65], b[65];

	if (fbt_file_sha256(disk, a) != 0 || fbt_file_sha256(img, b) != 0 || strcmp(a, b) != 0) {
		fprintf(stderr, "cost_bench: after %s the recovery disk %s is not the primary's image\n",
		        what, disk);
		exit(2);
	}
}

/* utime + stime of pid, in seconds. */
static double
cpu_s(pid_t pid)
{
	char               path[64], buf[2048], *p;
	unsigned long long ut = 0, st = 0;
	FILE              *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return 0;
	if (fgets(buf, sizeof(buf), f) != NULL && (p = strrchr(buf, ')')) != NULL)
		(void)sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st);
	fclose(f);
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* VmHWM of pid in KiB. */
static long
hwm_kib(pid_t pid)
{
	char  path[64], line[256];
	long  v = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, "VmHWM:", 6) == 0)
			v = atol(line + 6);
	fclose(f);
	return v;
}

/* The peak RSS (KiB) of job's transfer worker, from the line it logs at
 * the end of a failback (FB6013). */
static long
worker_kib(const char *job)
{
	char  line[2048];
	long  v = 0;
	FILE *f = fopen(replica.log, "r");

	while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
		const char *p = strstr(line, "peak RSS ");
		if (strstr(line, "FB6013") != NULL && strstr(line, job) != NULL && p != NULL)
			v = atol(p + 9);
	}
	if (f != NULL)
		fclose(f);
	return v;
}

/* Starts the two agents afresh (their data directories under the root). */
static void
agents_start(void)
{
	static char  peer[200];
	const char  *rextra[] = {peer, "--peer-name=primary.failback.test", "--change-tracking=qcow2",
	                         NULL};

	must(fbt_agent_start(&primary, "primary", "primary", NULL), "starting the primary agent");
	snprintf(peer, sizeof(peer), "--peer-url=%s", primary.resync);
	must(fbt_agent_start(&replica, "replica", "replica", rextra), "starting the replica agent");
}

static void
agents_stop(void)
{
	char cmd[1400];

	fbt_agent_stop(&replica, 15, 10000);
	fbt_agent_stop(&primary, 15, 10000);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s' '%s'/*.img", replica.dir, primary.dir,
	         fbt_root());
	if (system(cmd) != 0)
		fprintf(stderr, "cost_bench: could not clean up: %s\n", cmd);
}

/* Makes VM name on the primary from img (size MiB), replicates it, fails
 * it over and commits; its recovery disk's path into disk. */
static void
vm_make(const char *name, const char *img, uint64_t mib, uint32_t seed, char *disk, size_t cap)
{
	char job[40];

	if (fbt_image_make(img, mib << 20, seed) != 0)
		must(1, "making the image");
	must(P("primary-vm", "add", name, img), "primary-vm add");
	take_point(name, "recovery point");
	must(R("replicate", name), "replicate");
	job_of(job);
	wait_job(job, "replicate");
	must(R("failover", name), "failover");
	job_of(job);
	wait_job(job, "failover");
	must(R("failover-commit", name, "--wait"), "failover-commit");
	must(R("vm", "show", name), "vm show");
	snprintf(disk, cap, "%.*s", (int)strcspn(strstr(out, " path: /") + 7, " \n"),
	         strstr(out, " path: /") + 7);
}

/* Changes share pct of img's blocks and takes a new point of name;
 * returns the bytes of the blocks changed. */
static unsigned long long
primary_change(const char *name, const char *img, uint64_t mib, double pct, uint32_t seed)
{
	uint64_t n = (uint64_t)((double)(mib << 4) * pct / 100.0);

	n = n > 0 ? n : 1;
	if (fbt_image_mutate(img, n, seed) < 0)
		must(1, "changing the image");
	take_point(name, "another recovery point");
	return (unsigned long long)n << 16;
}

static int
curves(const char *sizes, const char *pcts, int json)
{
	char        sz[256], pc[256], *sv, *pv, *ss, *ps;
	const char *sep = "";

	snprintf(sz, sizeof(sz), "%s", sizes);
	if (json)
		printf("{\"bench\":\"cost\",\"rows\":[");
	else
		printf("cost_bench: failback to a new point of the primary, tracked recovery disk, fast "
		       "verification, mTLS on loopback, %ld cores, page cache %s before each failback\n"
		       "%8s %7s %9s %12s %12s %12s %9s %9s %11s %13s\n",
		       sysconf(_SC_NPROCESSORS_ONLN), "dropped", "disk", "changed", "failback",
		       "changed MB", "read MB", "wire MB", "agent MiB", "worker MiB", "primary CPU",
		       "CPU s/GiB chg");
	for (sv = strtok_r(sz, ",", &ss); sv != NULL; sv = strtok_r(NULL, ",", &ss)) {
		uint64_t     mib = strtoull(sv, NULL, 10);
		char         img[600], disk[700];
		fb_disk_scan scan;
		fb_err       err;
		double       t0, hash_s;
		uint32_t     seed = 5;

		if (mib < 16) {
			fprintf(stderr, "cost_bench: sizes are at least 16 MiB\n");
			return 2;
		}
		agents_start();
		snprintf(img, sizeof(img), "%s/curve.img", fbt_root());
		vm_make("curve", img, mib, 1, disk, sizeof(disk));
		drop();
		t0 = bench_now_s();
		if (fb_disk_hash(disk, NULL, NULL, &scan, &err) != 0)
			must(1, "hashing the recovery disk");
		hash_s = bench_now_s() - t0;
		free(scan.leaves);
		if (!json)
			printf("%8s read + hash of the %llu MiB disk once: %.2f s\n", "",
			       (unsigned long long)mib, hash_s);
		snprintf(pc, sizeof(pc), "%s", pcts);
		for (pv = strtok_r(pc, ",", &ps); pv != NULL; pv = strtok_r(NULL, ",", &ps)) {
			double             pct = atof(pv), c0, cpu, t;
			uint64_t           nchg = (uint64_t)((double)(mib << 4) * pct / 100.0);
			unsigned long long rd, wire;
			char               job[40];
			long               akib, wkib;

			nchg = nchg > 0 ? nchg : 1;
			primary_change("curve", img, mib, pct, seed++);
			drop();
			c0 = cpu_s(primary.pid);
			t0 = bench_now_s();
			must(R("failback", "curve", "--verify=fast"), "failback");
			job_of(job);
			wait_job(job, "failback");
			t    = bench_now_s() - t0;
			cpu  = cpu_s(primary.pid) - c0;
			rd   = field("bytes_read");
			wire = field("bytes_on_wire");
			exact(disk, img, "the failback");
			akib = hwm_kib(replica.pid);
			wkib = worker_kib(job);
			if (json)
				printf("%s{\"mib\":%llu,\"percent_changed\":%g,\"changed_bytes\":%llu,"
				       "\"failback_s\":%.3f,\"read_hash_once_s\":%.3f,\"bytes_read\":%llu,"
				       "\"bytes_on_wire\":%llu,\"replica_agent_peak_rss_kib\":%ld,"
				       "\"worker_peak_rss_kib\":%ld,\"primary_cpu_s\":%.3f}",
				       sep, (unsigned long long)mib, pct,
				       (unsigned long long)(nchg << 16), t, hash_s, rd, wire, akib, wkib,
				       cpu);
			else
				printf("%6llu M %6g%% %8.2f s %12.1f %12.1f %12.1f %9.1f %9.1f %9.2f s "
				       "%13.2f\n",
				       (unsigned long long)mib, pct, t, (double)(nchg << 16) / 1e6,
				       (double)rd / 1e6, (double)wire / 1e6, (double)akib / 1024,
				       (double)wkib / 1024, cpu,
				       cpu / ((double)(nchg << 16) / (double)(1 << 30)));
			fflush(stdout);
			sep = ",";
		}
		agents_stop();
	}
	if (json)
		printf("],\"cold\":%s}\n", cold ? "true" : "false");
	return 0;
}

/* Starts the n failbacks at once: one CLI process each, all spawned before
 * any is waited for, so no job waits for the handshakes of those before
 * it (one call after another spread 16 starts over ~5 s, longer than a
 * job). Each child hands what its call printed back through a pipe. */
static void
start_all(int n, char name[][32], char job[][40])
{
	pid_t pid[MAXV];
	int   fd[MAXV];

	for (int i = 0; i < n; i++) {
		int p[2];

		if (pipe(p) != 0 || (pid[i] = fork()) < 0)
			must(1, "starting the failbacks");
		if (pid[i] == 0) {
			int    rc = R("failback", name[i], "--verify=fast");
			size_t len = strlen(out);

			close(p[0]);
			_exit(write(p[1], out, len) == (ssize_t)len && rc == 0 ? 0 : 1);
		}
		close(p[1]);
		fd[i] = p[0];
	}
	for (int i = 0; i < n; i++) {
		size_t  got = 0;
		ssize_t r;
		int     st;

		while (got < sizeof(out) - 1 && (r = read(fd[i], out + got, sizeof(out) - 1 - got)) > 0)
			got += (size_t)r;
		out[got] = '\0';
		close(fd[i]);
		if (waitpid(pid[i], &st, 0) != pid[i] || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			must(1, "failback");
		job_of(job[i]);
	}
}

static int
concurrent(int n, uint64_t mib, double pct, int json)
{
	char               img[MAXV][2200], disk[MAXV][700], name[MAXV][32], job[MAXV][40];
	double             dur[MAXV], lone_s, lone_mib_s, agg_mib_s, lo = 1e30, hi = 0;
	long long          start_min = INT64_MAX, start_max = 0, end_max = 0;
	unsigned long long chg = 0, lone_chg;
	uint32_t           seed = 100;

	agents_start();
	for (int i = 0; i < n; i++) {
		snprintf(name[i], sizeof(name[i]), "vm%02d", i);
		snprintf(img[i], sizeof(img[i]), "%s/%s.img", fbt_root(), name[i]);
		vm_make(name[i], img[i], mib, (uint32_t)i + 1, disk[i], sizeof(disk[i]));
	}

	/* One alone. */
	lone_chg = primary_change(name[0], img[0], mib, pct, seed++);
	drop();
	must(R("failback", name[0], "--verify=fast"), "failback");
	job_of(job[0]);
	wait_job(job[0], "the lone failback");
	lone_s     = (double)field("elapsed_ms") / 1000.0;
	lone_mib_s = (double)lone_chg / (1 << 20) / lone_s;
	exact(disk[0], img[0], "the lone failback");

	/* All at once. */
	for (int i = 0; i < n; i++)
		chg += primary_change(name[i], img[i], mib, pct, seed++);
	drop();
	start_all(n, name, job);
	for (int i = 0; i < n; i++) {
		long long st;

		wait_job(job[i], "a concurrent failback");
		st     = (long long)field("start_time_unix_ms");
		dur[i] = (double)field("elapsed_ms") / 1000.0;
		start_min = st < start_min ? st : start_min;
		start_max = st > start_max ? st : start_max;
		end_max   = st + (long long)(dur[i] * 1000) > end_max ? st + (long long)(dur[i] * 1000)
		                                                      : end_max;
		lo = dur[i] < lo ? dur[i] : lo;
		hi = dur[i] > hi ? dur[i] : hi;
		exact(disk[i], img[i], "a concurrent failback");
	}
	agg_mib_s = (double)chg / (1 << 20) / ((double)(end_max - start_min) / 1000.0);
	if (json) {
		printf("{\"bench\":\"concurrent\",\"jobs\":%d,\"vm_mib\":%llu,\"percent_changed\":%g,"
		       "\"lone_s\":%.3f,\"lone_mib_s\":%.1f,\"aggregate_mib_s\":%.1f,\"job_s\":[",
		       n, (unsigned long long)mib, pct, lone_s, lone_mib_s, agg_mib_s);
		for (int i = 0; i < n; i++)
			printf("%s%.3f", i ? "," : "", dur[i]);
		printf("],\"start_spread_s\":%.3f,\"slowest_over_fastest\":%.2f,\"cold\":%s}\n",
		       (double)(start_max - start_min) / 1000.0, hi / lo,
		       cold ? "true" : "false");
	} else {
		printf("cost_bench: %d failbacks of %llu MiB VMs, %g%% of blocks changed at the primary, "
		       "fast verification, page cache %s\n",
		       n, (unsigned long long)mib, pct, cold ? "dropped" : "WARM (not root)");
		printf("one alone: %.2f s for %.1f MiB of blocks, %.1f MiB/s\n", lone_s,
		       (double)lone_chg / (1 << 20), lone_mib_s);
		printf("%d at once: %.2f s from the first start to the last end, %.1f MiB of blocks, "
		       "%.1f MiB/s aggregate (%.2f x the lone job)\n",
		       n, (double)(end_max - start_min) / 1000.0, (double)chg / (1 << 20), agg_mib_s,
		       agg_mib_s / lone_mib_s);
		printf("each job:");
		for (int i = 0; i < n; i++)
			printf(" %.2f", dur[i]);
		printf(" s; slowest / fastest %.2f; started within %.2f s of each other\n", hi / lo,
		       (double)(start_max - start_min) / 1000.0);
	}
	agents_stop();
	return 0;
}

int
main(int argc, char **argv)
{
	const char *sizes = "1024,4096,16384", *pcts = "0.1,1,10";
	int         json = 0, n = 0, rv;
	uint64_t    vm_mib = 256;
	double      pct    = 10;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else if (strcmp(argv[i], "--sizes") == 0 && i + 1 < argc)
			sizes = argv[++i];
		else if (strcmp(argv[i], "--pcts") == 0 && i + 1 < argc)
			pcts = argv[++i];
		else if (strcmp(argv[i], "--concurrent") == 0 && i + 1 < argc)
			n = atoi(argv[++i]);
		else if (strcmp(argv[i], "--vm-mib") == 0 && i + 1 < argc)
			vm_mib = strtoull(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--pct") == 0 && i + 1 < argc)
			pct = atof(argv[++i]);
		else {
			fprintf(stderr, "usage: cost_bench [--sizes MiB,...] [--pcts P,...] [--json]\n"
			                "       cost_bench --concurrent N [--vm-mib MiB] [--pct P] "
			                "[--json]\n");
			return 2;
		}
	}
	if (n < 0 || n > MAXV || vm_mib < 16) {
		fprintf(stderr, "cost_bench: --concurrent is 1 to %d, --vm-mib at least 16\n", MAXV);
		return 2;
	}
	if (fbt_setup() != 0)
		return 1;
	rv = n > 0 ? concurrent(n, vm_mib, pct, json) : curves(sizes, pcts, json);
	fbt_teardown();
	return rv;
}
