/*
 * failback_bench.c - prints what a failback costs against what it must
 * beat (DESIGN §8): real agents on loopback with mutual TLS, a mixed-content
 * image, 1% of its 64 KiB blocks changed on the replica, then
 * InitiateFailback to the point they came from. Printed: the time to read
 * and hash the replica disk once, the failback's time and its ratio to
 * that, bytes read from the disk and on the wire against the changed
 * bytes, and the initial replication's throughput (a full resync, timed by
 * its job: acceptance to Completed) against the transport's ceiling, the
 * best of one measure just before it and one just after. The changes are
 * made twice: through the recovery disk's qcow2 wrapper, as the VM's QEMU
 * would (the failback reads only the dirty blocks), and around it (the
 * failback scans the disk whole, then once more with the fast
 * verification, which does not read the disk again). The page cache is
 * dropped before every timed phase when run as root ("warm" otherwise).
 *
 * Each timed phase runs --runs times (default 3; the disk is changed again
 * before each run) and is printed as its median with the min and max.
 * After every failback the recovery disk is checked byte for byte against
 * its target; a mismatch ends the bench with exit 2. With rsync and sshd
 * installed, rsync --inplace --no-whole-file over ssh to 127.0.0.1 (its
 * own sshd on a loopback port, a throwaway key) syncs the same image pair
 * as the full-scan failback, cold too, and our time / rsync's is printed.
 *
 * usage: failback_bench [--runs N] [--json] [--smoke] [--ceiling] [MiB] [percent changed]
 *        (defaults 3 runs, 1024 MiB, 1%; --smoke: 1 run, correctness only,
 *        for ctest's bench-smoke; --ceiling: only the transport's ceiling)
 * Not a test of speed: it asserts nothing about time.
 */
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <pthread.h>
#include <stdint.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/transport/tls/tls.h>

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

/* Starts a job (the command's output names it) and polls it to its end:
 * the harness gives one command 60 s, and a large first copy takes longer.
 * Once a second: each poll is a process and a TLS handshake on the cores
 * the job runs on (at 5 a second they took ~4% of both cores during a
 * replication). Returns the job's own time, acceptance to end, in s. */
static double
run_job(int rc, const char *what)
{
	char        job[40];
	const char *q;

	must(rc, what);
	if ((q = strstr(out, "InstanceID=\"")) == NULL)
		must(1, what);
	snprintf(job, sizeof(job), "%.36s", q + 12);
	for (;;) {
		must(R("--json", "job", "show", job), "job show");
		if (strstr(out, "\"job_state\":7") != NULL) {
			const char *e = strstr(out, "\"elapsed_ms\":");

			return e != NULL ? strtod(e + 13 + (e[13] == '"'), NULL) / 1000.0 : 0;
		}
		if (strstr(out, "\"job_state\":8") != NULL || strstr(out, "\"job_state\":10") != NULL)
			must(1, what);
		usleep(1000000);
	}
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

/* bytes_done of the job run_job last polled: the data it moved, zero
 * blocks (sent as a flag) left out, counted before compression. */
static unsigned long long
job_done_bytes(void)
{
	const char *p = strstr(out, "\"bytes_done\":");

	return p != NULL ? strtoull(p + 13, NULL, 10) : 0;
}

/* The recovery VM writes n random blocks through its wrapper (qemu-io). */
static void
vm_writes(const char *disk, uint64_t n, uint64_t nblocks, unsigned seed)
{
	if (bench_vm_writes(disk, n, nblocks, seed) != 0) {
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

#define MAXRUNS 15

/* One timed phase's runs. */
typedef struct phase {
	const char *key;
	double      t[MAXRUNS];
	int         n;
} phase;

static double
ph_med(const phase *p)
{
	double s[MAXRUNS];

	if (p->n == 0)
		return 0;
	memcpy(s, p->t, sizeof(double) * (size_t)p->n);
	qsort(s, (size_t)p->n, sizeof(double), cmp_d);
	return p->n % 2 ? s[p->n / 2] : (s[p->n / 2 - 1] + s[p->n / 2]) / 2;
}

static double
ph_min(const phase *p)
{
	double m = p->n ? p->t[0] : 0;

	for (int i = 1; i < p->n; i++)
		m = p->t[i] < m ? p->t[i] : m;
	return m;
}

static double
ph_max(const phase *p)
{
	double m = p->n ? p->t[0] : 0;

	for (int i = 1; i < p->n; i++)
		m = p->t[i] > m ? p->t[i] : m;
	return m;
}

/* "median s [min-max]" */
static const char *
ph_str(const phase *p)
{
	static char buf[4][64];
	static int  k;
	char       *b = buf[k++ % 4];

	snprintf(b, 64, "%6.2f s [%.2f-%.2f]", ph_med(p), ph_min(p), ph_max(p));
	return b;
}

static int cold = 1;

static void
drop(void)
{
	cold &= bench_drop_caches();
}

/* The disk must be the target, byte for byte. */
static void
exact(const char *disk, const char *want, const char *what)
{
	char got[65];

	if (fbt_file_sha256(disk, got) != 0 || strcmp(got, want) != 0) {
		fprintf(stderr, "failback_bench: after %s the recovery disk is %s, not %s\n", what,
		        got, want);
		exit(2);
	}
}

/* One failback to point rp from a cold page cache (with verify, e.g.
 * "--verify=fast", when not NULL): its time into ph, the disk checked byte
 * for byte against want; returns the bytes it read from the disk, and its
 * compare's mode into mode. */
static unsigned long long
timed_failback(phase *ph, const char *rp, const char *verify, const char *disk, const char *want,
               const char *what, char *mode, size_t cap)
{
	char   job[40];
	double t0;

	drop();
	t0 = now_s();
	must(verify != NULL ? R("failback", "bench", "--rp", rp, verify, "--wait")
	                    : R("failback", "bench", "--rp", rp, "--wait"),
	     what);
	ph->t[ph->n++] = now_s() - t0;
	exact(disk, want, what);
	job_of(job);
	return job_read(job, mode, cap);
}

/* rsync over ssh to this host: a private sshd on a loopback port. */
static struct {
	int   on;
	pid_t sshd;
	char  key[700], ssh[1400];
} rs;

static int
sh(const char *cmd)
{
	return system(cmd) == 0 ? 0 : -1;
}

static void
rsync_start(void)
{
	char                cmd[4000], dir[640];
	struct sockaddr_in  a = {0};
	socklen_t           al = sizeof(a);
	int                 fd, port;

	if (access("/usr/sbin/sshd", X_OK) != 0 || sh("command -v rsync >/dev/null 2>&1") != 0 ||
	    geteuid() != 0)
		return;
	snprintf(dir, sizeof(dir), "%s/ssh", fbt_root());
	snprintf(rs.key, sizeof(rs.key), "%s/id", dir);
	/* a free loopback port, from the kernel */
	fd                = socket(AF_INET, SOCK_STREAM, 0);
	a.sin_family      = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &al) != 0)
		return;
	port = ntohs(a.sin_port);
	close(fd);
	snprintf(cmd, sizeof(cmd),
	         "mkdir -p -m 700 %s /run/sshd && ssh-keygen -q -t ed25519 -N '' -f %s/host && "
	         "ssh-keygen -q -t ed25519 -N '' -f %s && cp %s.pub %s/authorized_keys",
	         dir, dir, rs.key, rs.key, dir);
	if (sh(cmd) != 0)
		return;
	if ((rs.sshd = fork()) == 0) {
		char hk[700], ak[700], pt[16], log[700];
		int  lfd;

		snprintf(log, sizeof(log), "%s/sshd.log", dir);
		if ((lfd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600)) >= 0)
			dup2(lfd, STDERR_FILENO);
		snprintf(hk, sizeof(hk), "HostKey=%s/host", dir);
		snprintf(ak, sizeof(ak), "AuthorizedKeysFile=%s/authorized_keys", dir);
		snprintf(pt, sizeof(pt), "%d", port);
		execl("/usr/sbin/sshd", "/usr/sbin/sshd", "-D", "-e", "-f", "/dev/null", "-p", pt, "-o",
		      "ListenAddress=127.0.0.1", "-o", hk, "-o", ak, "-o", "PermitRootLogin=yes", "-o",
		      "StrictModes=no", "-o", "PidFile=none", (char *)NULL);
		_exit(127);
	}
	snprintf(rs.ssh, sizeof(rs.ssh),
	         "ssh -p %d -i %s -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
	         "-o LogLevel=ERROR",
	         port, rs.key);
	for (int i = 0; i < 100 && !rs.on; i++) {
		snprintf(cmd, sizeof(cmd), "%s root@127.0.0.1 true 2>/dev/null", rs.ssh);
		rs.on = sh(cmd) == 0;
		if (!rs.on)
			usleep(100000);
	}
}

/* Syncs src onto dst (a copy of the changed disk) with rsync over ssh. */
static double
rsync_run(const char *src, const char *dst)
{
	char   cmd[4000];
	double t0;

	snprintf(cmd, sizeof(cmd), "rsync --inplace --no-whole-file -e '%s' '%s' root@127.0.0.1:'%s'",
	         rs.ssh, src, dst);
	drop();
	t0 = now_s();
	if (sh(cmd) != 0) {
		fprintf(stderr, "failback_bench: rsync failed\n");
		exit(1);
	}
	return now_s() - t0;
}

/* The ceiling: n mutual-TLS NNG connections (tls+tcp, the agents' own
 * engine and certificates) each asking for 64 KiB replies as fast as they
 * come back, for secs seconds; MiB/s of replies, all connections together. */
#define CEIL_MSG (64u << 10)

static struct {
	nng_socket    srv;
	volatile int  stop;
	uint8_t       payload[CEIL_MSG];
	char          url[128];
	uint64_t      bytes[8];
} ceil_;

static void *
ceil_server(void *arg)
{
	nng_ctx  c;
	nng_aio *aio;

	(void)arg;
	if (nng_ctx_open(&c, ceil_.srv) != 0 || nng_aio_alloc(&aio, NULL, NULL) != 0)
		return NULL;
	for (;;) {
		nng_msg *r;

		nng_ctx_recv(c, aio);
		nng_aio_wait(aio);
		if (nng_aio_result(aio) != 0)
			break;
		nng_msg_free(nng_aio_get_msg(aio));
		if (nng_msg_alloc(&r, 0) != 0 || nng_msg_append(r, ceil_.payload, CEIL_MSG) != 0)
			break;
		nng_aio_set_msg(aio, r);
		nng_ctx_send(c, aio);
		nng_aio_wait(aio);
		if (nng_aio_result(aio) != 0) {
			nng_msg_free(r);
			break;
		}
	}
	nng_aio_free(aio);
	nng_ctx_close(c);
	return NULL;
}

static void *
ceil_client(void *arg)
{
	size_t          k = (size_t)(uintptr_t)arg;
	nng_socket      s;
	nng_dialer      d;
	nng_tls_config *tls;
	fb_err          err;

	if (fb_tls_config_client(&tls, fbt_pki_file("agents-ca.pem"), fbt_pki_file("primary.pem"),
	                         fbt_pki_file("primary.key"), "replica.failback.test", 0,
	                         &err) != 0 ||
	    nng_req0_open(&s) != 0 || nng_dialer_create(&d, s, ceil_.url) != 0 ||
	    nng_dialer_set_size(d, NNG_OPT_RECVMAXSZ, 1u << 20) != 0 ||
	    nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, tls) != 0 || nng_dialer_start(d, 0) != 0)
		return NULL;
	nng_tls_config_free(tls);
	while (!ceil_.stop) {
		nng_msg *m;
		uint64_t ask = 1;

		if (nng_send(s, &ask, sizeof(ask), 0) != 0 || nng_recvmsg(s, &m, 0) != 0)
			break;
		ceil_.bytes[k] += nng_msg_len(m);
		nng_msg_free(m);
	}
	nng_close(s);
	return NULL;
}

static double
ceiling(int n, double secs)
{
	pthread_t       srv[8], cli[8];
	nng_listener    l;
	nng_tls_config *tls;
	const char     *cas[] = {fbt_pki_file("agents-ca.pem"), NULL};
	fb_err          err;
	int             port = 0;
	double          t0, t;
	uint64_t        total = 0;

	for (size_t i = 0; i < sizeof(ceil_.payload); i++)
		ceil_.payload[i] = (uint8_t)rand();
	memset(ceil_.bytes, 0, sizeof(ceil_.bytes));
	ceil_.stop = 0;
	if (fb_tls_config_server(&tls, cas, fbt_pki_file("replica.pem"), fbt_pki_file("replica.key"),
	                         0, &err) != 0 ||
	    nng_rep0_open(&ceil_.srv) != 0 ||
	    nng_listener_create(&l, ceil_.srv, "tls+tcp://127.0.0.1:0") != 0 ||
	    nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, tls) != 0 || nng_listener_start(l, 0) != 0 ||
	    nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port) != 0)
		return 0;
	nng_tls_config_free(tls);
	snprintf(ceil_.url, sizeof(ceil_.url), "tls+tcp://127.0.0.1:%d", port);
	for (int i = 0; i < n; i++)
		pthread_create(&srv[i], NULL, ceil_server, NULL);
	t0 = now_s();
	for (int i = 0; i < n; i++)
		pthread_create(&cli[i], NULL, ceil_client, (void *)(uintptr_t)i);
	while (now_s() - t0 < secs)
		usleep(10000);
	ceil_.stop = 1;
	for (int i = 0; i < n; i++)
		pthread_join(cli[i], NULL);
	t = now_s() - t0;
	nng_close(ceil_.srv); /* ends the server threads' receives */
	for (int i = 0; i < n; i++)
		pthread_join(srv[i], NULL);
	for (int i = 0; i < n; i++)
		total += ceil_.bytes[i];
	return (double)total / t / (1 << 20);
}

int
main(int argc, char **argv)
{
	uint64_t     mib = 1024;
	double       pct = 1.0;
	int          runs = 3, json = 0, smoke = 0, npos = 0, ceiling_only = 0;
	uint64_t     size, nblocks, changed;
	char         img[600], peer[200], disk[700], p1[40], want_p1[65], want[65], copy[700];
	const char  *rextra[] = {peer, "--peer-name=primary.failback.test", "--change-tracking=qcow2",
	                         NULL};
	fb_disk_scan scan;
	fb_err       err;
	double       t0, t_repl;
	phase        hash = {"read_hash_once", {0}, 0}, bmf = {"bitmap_full_verify", {0}, 0},
	      bm = {"bitmap_fast_verify", {0}, 0}, fs = {"full_scan", {0}, 0},
	      fb2 = {"primary_changed", {0}, 0}, rsy = {"rsync", {0}, 0},
	      fsf = {"full_scan_fast_verify", {0}, 0};
	unsigned long long wire = 0, wire2 = 0, wire_bm = 0, read_fb = 0, read_bm = 0, read_bmf = 0,
	                   read_fsf = 0;
	char         mode_fb[16] = "?", mode_bm[16] = "?";
	unsigned long long repl_wire = 0, repl_data = 0;
	double       ceil_mib[3] = {0, 0, 0}, ceil_pass[2][3] = {{0}}, ceil_best;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else if (strcmp(argv[i], "--smoke") == 0)
			smoke = 1;
		else if (strcmp(argv[i], "--ceiling") == 0)
			ceiling_only = 1;
		else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
			runs = atoi(argv[++i]);
		else if (argv[i][0] == '-' || npos >= 2) {
			fprintf(stderr, "usage: failback_bench [--runs N] [--json] [--smoke] [--ceiling] "
			                "[MiB] [percent changed]\n");
			return 2;
		} else if (npos++ == 0)
			mib = strtoull(argv[i], NULL, 10);
		else
			pct = atof(argv[i]);
	}
	if (smoke) {
		runs = 1;
		if (npos == 0)
			mib = 64;
	}
	if (runs < 1 || runs > MAXRUNS || mib < 1) {
		fprintf(stderr, "failback_bench: --runs is 1 to %d, MiB at least 1\n", MAXRUNS);
		return 2;
	}
	size    = mib << 20;
	nblocks = size / (64 << 10);
	changed = (uint64_t)((double)nblocks * pct / 100.0);
	if (changed == 0)
		changed = 1;

	if (fbt_setup() != 0)
		return 1;
	if (ceiling_only) {
		for (int r = 0; r < runs; r++)
			printf("ceiling: 64 KiB replies over 1 / 2 / 4 mTLS NNG connections  %.1f / %.1f / "
			       "%.1f MiB/s\n",
			       ceiling(1, 3.0), ceiling(2, 3.0), ceiling(4, 3.0));
		fbt_teardown();
		return 0;
	}
	if (fbt_agent_start(&primary, "primary", "primary", NULL) != 0)
		return 1;
	snprintf(peer, sizeof(peer), "--peer-url=%s", primary.resync);
	if (fbt_agent_start(&replica, "replica", "replica", rextra) != 0)
		return 1;
	snprintf(img, sizeof(img), "%s/bench.img", fbt_root());
	snprintf(copy, sizeof(copy), "%s/rsync-dst.img", fbt_root());
	if (fbt_image_make(img, size, 1) != 0 || fbt_file_sha256(img, want_p1) != 0)
		return 1;
	must(P("primary-vm", "add", "bench", img), "add");
	must(P("--json", "primary-rp", "create", "bench"), "recovery point");
	snprintf(p1, sizeof(p1), "%.36s", strstr(out, "\"point\":{\"id\":\"") + 15);

	/* The ceiling is measured just before the replication and just after
	 * it, and each N's best counts: this machine's rate moves from minute
	 * to minute, and the larger of two is the stricter mark. */
	for (int i = 0; i < 3 && !smoke; i++)
		ceil_pass[0][i] = ceiling(1 << i, 3.0);
	drop();
	t_repl    = run_job(R("replicate", "bench"), "replicate");
	repl_data = job_done_bytes();
	repl_wire = wire_bytes();
	for (int i = 0; i < 3 && !smoke; i++) {
		ceil_pass[1][i] = ceiling(1 << i, 3.0);
		ceil_mib[i] = ceil_pass[0][i] > ceil_pass[1][i] ? ceil_pass[0][i] : ceil_pass[1][i];
	}
	must(R("failover", "bench", "--wait"), "failover");
	must(R("failover-commit", "bench", "--wait"), "commit");
	must(R("vm", "show", "bench"), "vm show");
	sscanf(strstr(out, " path: /") + 7, "%699s", disk);
	exact(disk, want_p1, "the failover");
	if (!smoke)
		rsync_start();

	for (int r = 0; r < runs; r++) {
		/* What a failback must compete with: one read and hash of the disk. */
		drop();
		t0 = now_s();
		if (fb_disk_hash(disk, NULL, NULL, &scan, &err) != 0)
			return 1;
		hash.t[hash.n++] = now_s() - t0;
		free(scan.leaves);

		/* The recovery VM writes through its wrapper: the bitmap knows. Once
		 * with the default full verification, once with the fast one. */
		vm_writes(disk, changed, nblocks, 2 + 10 * (unsigned)r);
		read_bmf = timed_failback(&bmf, p1, NULL, disk, want_p1, "the bitmap failback", mode_bm,
		                          sizeof(mode_bm));
		vm_writes(disk, changed, nblocks, 4 + 10 * (unsigned)r);
		read_bm = timed_failback(&bm, p1, "--verify=fast", disk, want_p1,
		                         "the bitmap failback with fast verification", mode_bm,
		                         sizeof(mode_bm));
		wire_bm = wire_bytes();

		/* The same amount written around the wrapper: a full scan. rsync
		 * gets the same pair: the changed disk, and the image it came from. */
		fbt_image_mutate(disk, changed, 2 + 10 * (uint32_t)r);
		if (rs.on) {
			char cmd[1600];

			snprintf(cmd, sizeof(cmd), "cp --sparse=always '%s' '%s'", disk, copy);
			if (sh(cmd) != 0)
				return 1;
		}
		read_fb = timed_failback(&fs, p1, NULL, disk, want_p1, "the full-scan failback", mode_fb,
		                         sizeof(mode_fb));
		wire    = wire_bytes();
		if (rs.on) {
			rsy.t[rsy.n++] = rsync_run(img, copy);
			exact(copy, want_p1, "rsync");
		}
		/* The same, verified fast: the scan's leaves stand for the rest. */
		fbt_image_mutate(disk, changed, 5 + 10 * (uint32_t)r);
		read_fsf = timed_failback(&fsf, p1, "--verify=fast", disk, want_p1,
		                          "the full-scan failback with fast verification", mode_fb,
		                          sizeof(mode_fb));
	}

	/* The primary's data changed instead: the blocks must cross the wire. */
	{
		nng_tls_config *tls;
		pthread_t       t;

		if (fb_tls_config_client(&tls, fbt_pki_file("agents-ca.pem"),
		                         fbt_pki_file("monitor.pem"), fbt_pki_file("monitor.key"),
		                         "replica.failback.test", 0, &err) != 0 ||
		    fb_events_sub_open(&ev.sub, replica.events, tls, "job/", &err) != 0)
			return 1;
		pthread_create(&t, NULL, ev_thread, NULL);
		for (int r = 0; r < runs; r++) {
			fbt_image_mutate(img, changed, 3 + 10 * (uint32_t)r);
			if (fbt_file_sha256(img, want) != 0)
				return 1;
			must(P("primary-rp", "create", "bench"), "another recovery point");
			drop();
			t0 = now_s();
			must(R("failback", "bench", "--wait"), "failback to the new point");
			fb2.t[fb2.n++] = now_s() - t0;
			exact(disk, want, "the failback to the new point");
			wire2 = wire_bytes();
		}
		ev.stop = 1;
		pthread_join(t, NULL);
	}

	ceil_best = ceil_mib[0] > ceil_mib[1] ? ceil_mib[0] : ceil_mib[1];
	ceil_best = ceil_best > ceil_mib[2] ? ceil_best : ceil_mib[2];
	if (json) {
		const phase *all[] = {&hash, &bmf, &bm, &fs, &fsf, &fb2, &rsy};

		printf("{\"bench\":\"failback\",\"mib\":%llu,\"percent_changed\":%g,\"blocks_changed\":"
		       "%llu,\"runs\":%d,\"cold\":%s,\"exact\":true,\"initial_replication_s\":%.3f,"
		       "\"initial_replication_data_mib_s\":%.1f,"
		       "\"initial_replication_wire_mib_s\":%.1f,\"ceiling_mib_s\":[%.1f,%.1f,%.1f],"
		       "\"ceiling_before_mib_s\":[%.1f,%.1f,%.1f],"
		       "\"ceiling_after_mib_s\":[%.1f,%.1f,%.1f],",
		       (unsigned long long)mib, pct, (unsigned long long)changed, runs,
		       cold ? "true" : "false", t_repl, (double)repl_data / t_repl / (1 << 20),
		       (double)repl_wire / t_repl / (1 << 20), ceil_mib[0], ceil_mib[1], ceil_mib[2],
		       ceil_pass[0][0], ceil_pass[0][1], ceil_pass[0][2], ceil_pass[1][0],
		       ceil_pass[1][1], ceil_pass[1][2]);
		for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
			if (all[i]->n > 0)
				printf("\"%s_s\":{\"median\":%.3f,\"min\":%.3f,\"max\":%.3f},", all[i]->key,
				       ph_med(all[i]), ph_min(all[i]), ph_max(all[i]));
		printf("\"bitmap_bytes_read\":%llu,\"bitmap_full_verify_bytes_read\":%llu,"
		       "\"bitmap_bytes_on_wire\":%llu,\"full_scan_bytes_read\":%llu,"
		       "\"full_scan_bytes_on_wire\":%llu,\"full_scan_fast_verify_bytes_read\":%llu,"
		       "\"primary_changed_bytes_on_wire\":%llu}\n",
		       read_bm, read_bmf, wire_bm, read_fb, wire, read_fsf, wire2);
	} else {
		printf("failback_bench: %llu MiB mixed image (%llu blocks), %llu blocks (%.1f%%) "
		       "changed, mTLS on loopback, %ld cores, page cache %s before each timed phase; "
		       "median [min-max] of %d run(s); every failback checked byte for byte\n",
		       (unsigned long long)mib, (unsigned long long)nblocks,
		       (unsigned long long)changed, pct, sysconf(_SC_NPROCESSORS_ONLN),
		       cold ? "dropped" : "WARM (not root)", runs);
		printf("initial replication (full resync)  %7.2f s  %7.1f MiB/s of disk, %.1f MiB/s of "
		       "data moved (%.0f MiB of non-zero blocks, before compression), %.1f MiB/s on "
		       "the wire\n",
		       t_repl, (double)mib / t_repl, (double)repl_data / t_repl / (1 << 20),
		       (double)repl_data / (1 << 20), (double)repl_wire / t_repl / (1 << 20));
		if (ceil_best > 0)
			printf("ceiling: 64 KiB replies over 1 / 2 / 4 mTLS NNG connections  %.1f / %.1f "
			       "/ %.1f MiB/s (best of before the replication %.1f / %.1f / %.1f and "
			       "after it %.1f / %.1f / %.1f); the resync moved data at %.0f%% of the "
			       "best, its wire rate is %.0f%%\n",
			       ceil_mib[0], ceil_mib[1], ceil_mib[2], ceil_pass[0][0], ceil_pass[0][1],
			       ceil_pass[0][2], ceil_pass[1][0], ceil_pass[1][1], ceil_pass[1][2],
			       100.0 * (double)repl_data / t_repl / (1 << 20) / ceil_best,
			       100.0 * (double)repl_wire / t_repl / (1 << 20) / ceil_best);
		printf("read + hash the replica disk once  %s  %7.1f MiB/s\n", ph_str(&hash),
		       (double)mib / ph_med(&hash));
		printf("A. the recovery VM wrote through its qcow2 wrapper; failback to the point it "
		       "came from (compare: %s):\n", mode_bm);
		printf("   failback, full verification     %s  = %.3f x read+hash, %llu bytes read\n",
		       ph_str(&bmf), ph_med(&bmf) / ph_med(&hash), read_bmf);
		printf("   failback, fast verification     %s  = %.3f x read+hash\n", ph_str(&bm),
		       ph_med(&bm) / ph_med(&hash));
		printf("   bytes read from the disk        %llu  = %.2f x the changed bytes %llu\n",
		       read_bm, (double)read_bm / (double)(changed * 65536),
		       (unsigned long long)(changed * 65536));
		printf("   bytes on the wire               %llu\n", wire_bm);
		printf("A'. the same written around the wrapper (compare: %s):\n", mode_fb);
		printf("   failback (call to Completed)    %s  = %.2f x read+hash\n", ph_str(&fs),
		       ph_med(&fs) / ph_med(&hash));
		printf("   bytes read from the disk        %llu  = %.2f x the disk\n", read_fb,
		       (double)read_fb / (double)size);
		printf("   bytes on the wire               %llu\n", wire);
		printf("   failback, fast verification     %s  = %.2f x read+hash, read %.2f x the "
		       "disk\n",
		       ph_str(&fsf), ph_med(&fsf) / ph_med(&hash), (double)read_fsf / (double)size);
		if (rsy.n > 0) {
			printf("   rsync --inplace --no-whole-file over ssh, same pair  %s\n", ph_str(&rsy));
			printf("   ours / rsync: full scan %.3f (fast verification %.3f), bitmap (fast "
			       "verification) %.3f\n",
			       ph_med(&fs) / ph_med(&rsy), ph_med(&fsf) / ph_med(&rsy),
			       ph_med(&bm) / ph_med(&rsy));
		} else if (!smoke) {
			printf("   (no rsync comparison: needs root, rsync and /usr/sbin/sshd)\n");
		}
		printf("B. the primary's disk changed too; failback to a point the replica never "
		       "had:\n");
		printf("   failback (call to Completed)    %s  = %.2f x read+hash\n", ph_str(&fb2),
		       ph_med(&fb2) / ph_med(&hash));
		printf("   bytes on the wire               %llu  (changed bytes %llu; budget changed x "
		       "1.02 + 0.1%% of disk = %.0f)\n",
		       wire2, (unsigned long long)(changed * 65536),
		       (double)changed * 65536 * 1.02 + (double)size * 0.001);
		if (ev.n > 0) {
			qsort(ev.lat, ev.n, sizeof(ev.lat[0]), cmp_d);
			printf("events during B: %zu received; latency p50 %.0f ms, p99 %.0f ms, max %.0f "
			       "ms (ms clock)\n",
			       ev.n, ev.lat[ev.n / 2], ev.lat[(ev.n * 99) / 100], ev.lat[ev.n - 1]);
		}
	}
	if (rs.sshd > 0) {
		kill(rs.sshd, SIGTERM);
		waitpid(rs.sshd, NULL, 0);
	}
	fbt_agent_stop(&replica, SIGTERM, 5000);
	fbt_agent_stop(&primary, SIGTERM, 5000);
	fbt_teardown();
	return 0;
}
