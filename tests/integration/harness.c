/*
 * harness.c - see harness.h. Paths to the programs under test come from
 * the build (FBT_* definitions), so the tests always run what was built.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

extern char **environ;

static int wait_exit(pid_t pid, int timeout_ms);

static char root[256];
static char pki[300];

/* Agents this program started, so teardown can kill the ones a failed
 * assertion left running. */
static pid_t started[64];
static int   nstarted;

const char *
fbt_root(void)
{
	return root;
}

const char *
fbt_pki(void)
{
	return pki;
}

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
nap_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

int
fbt_setup(void)
{
	char        out[4096];
	const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	char *const argv[] = {(char *)"/bin/sh", (char *)FBT_PKI_SCRIPT, pki, NULL};

	signal(SIGPIPE, SIG_IGN);
	snprintf(root, sizeof(root), "%s/fbtest.XXXXXX", tmp);
	if (mkdtemp(root) == NULL)
		return -1;
	snprintf(pki, sizeof(pki), "%s/pki", root);
	if (fbt_run(argv, out, sizeof(out)) != 0) {
		fprintf(stderr, "make-dev-pki failed: %s\n", out);
		return -1;
	}
	return 0;
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

void
fbt_teardown(void)
{
	int reports;

	for (int i = 0; i < nstarted; i++) {
		if (started[i] > 0 && waitpid(started[i], NULL, WNOHANG) == 0) {
			kill(started[i], SIGTERM);
			if (wait_exit(started[i], 5000) == -2) {
				kill(started[i], SIGKILL);
				waitpid(started[i], NULL, 0);
			}
		}
	}
	nstarted = 0;
	reports = fbt_sanitizer_reports();
	if (root[0] != '\0' && getenv("FBT_KEEP") == NULL && reports == 0)
		nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	if (reports > 0) {
		fprintf(stderr, "fbt: %d agent log(s) under %s hold a sanitizer report; failing\n",
		        reports, root);
		fflush(NULL);
		_exit(1);
	}
}

/* Sanitizer builds: a report in an agent's or worker's log fails the test,
 * even when the job it hit was retried and completed. */
static const char *const sanitizer_marks[] = {
    "ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
    "WARNING: ThreadSanitizer", NULL};

/* Calls each(path, f, arg) for every agent log of this program, open for
 * reading; returns the sum of what the calls returned. */
static int
each_log(int (*each)(const char *path, FILE *f, void *arg), void *arg)
{
	DIR           *d;
	struct dirent *e;
	int            sum = 0;

	if (root[0] == '\0' || (d = opendir(root)) == NULL)
		return 0;
	while ((e = readdir(d)) != NULL) {
		size_t len = strlen(e->d_name);
		char   path[600];
		FILE  *f;

		if (len < 5 || strcmp(e->d_name + len - 4, ".log") != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", root, e->d_name);
		if ((f = fopen(path, "r")) == NULL)
			continue;
		sum += each(path, f, arg);
		fclose(f);
	}
	closedir(d);
	return sum;
}

static int
sanitizer_report(const char *path, FILE *f, void *arg)
{
	char line[1024];
	int  shown = 0, hit = 0;

	(void)arg;
	while (fgets(line, sizeof(line), f) != NULL) {
		for (int i = 0; !hit && sanitizer_marks[i] != NULL; i++)
			if (strstr(line, sanitizer_marks[i]) != NULL) {
				hit = 1;
				fprintf(stderr, "fbt: sanitizer report in %s:\n", path);
			}
		if (hit && shown++ < 40)
			fputs(line, stderr);
	}
	return hit;
}

int
fbt_sanitizer_reports(void)
{
	return each_log(sanitizer_report, NULL);
}

const char *
fbt_pki_file(const char *name)
{
	static char bufs[8][600];
	static int  next;
	char       *b = bufs[next++ % 8];

	snprintf(b, sizeof(bufs[0]), "%s/%s", pki, name);
	return b;
}

static int
wait_exit(pid_t pid, int timeout_ms)
{
	long long deadline = now_ms() + timeout_ms;
	int       st;

	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);

		if (r == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		if (r < 0)
			return -1;
		if (now_ms() >= deadline)
			return -2;
		nap_ms(10);
	}
}

/* Prints the last 25 lines of an agent log to stderr. */
static int
print_tail(const char *path, FILE *f, void *arg)
{
	char line[1024], *tail[25] = {0};
	int  n = 0;

	(void)arg;
	while (fgets(line, sizeof(line), f) != NULL) {
		free(tail[n % 25]);
		tail[n++ % 25] = strdup(line);
	}
	fprintf(stderr, "fbt: last lines of %s:\n", path);
	for (int i = n > 25 ? n - 25 : 0; i < n; i++)
		if (tail[i % 25] != NULL)
			fputs(tail[i % 25], stderr);
	for (int i = 0; i < 25; i++)
		free(tail[i]);
	return 0;
}

/* A /proc file of a process (or "pid/task/tid") into buf, NULs as spaces. */
static void
proc_read(const char *who, const char *file, char *buf, size_t cap)
{
	char    path[400];
	int     fd;
	ssize_t n = 0;

	snprintf(path, sizeof(path), "/proc/%s/%s", who, file);
	if ((fd = open(path, O_RDONLY)) >= 0) {
		n = read(fd, buf, cap - 1);
		close(fd);
	}
	buf[n > 0 ? n : 0] = '\0';
	for (ssize_t i = 0; i < n; i++)
		if (buf[i] == '\0' || buf[i] == '\n')
			buf[i] = ' ';
}

/* The parent of a process, from /proc (0 when gone). */
static int
proc_parent(int pid)
{
	char who[16], st[512], *p;
	int  ppid = 0;

	snprintf(who, sizeof(who), "%d", pid);
	proc_read(who, "stat", st, sizeof(st));
	if ((p = strrchr(st, ')')) != NULL)
		sscanf(p + 2, "%*c %d", &ppid);
	return ppid;
}

/* Prints, for every live agent this program started, each thread's state
 * and where it sleeps, then every process below the agents (workers,
 * qemu-nbd, qemu-img) with its state and command line. */
static void
dump_processes(void)
{
	DIR           *d;
	struct dirent *e;

	for (int i = 0; i < nstarted; i++) {
		char task[64], who[300], comm[64], wchan[128], st[512];
		DIR *t;

		if (started[i] <= 0 || kill(started[i], 0) != 0)
			continue;
		snprintf(task, sizeof(task), "/proc/%d/task", (int)started[i]);
		if ((t = opendir(task)) == NULL)
			continue;
		fprintf(stderr, "fbt: agent %d, its threads:\n", (int)started[i]);
		while ((e = readdir(t)) != NULL) {
			const char *p;

			if (atoi(e->d_name) <= 0)
				continue;
			snprintf(who, sizeof(who), "%d/task/%s", (int)started[i], e->d_name);
			proc_read(who, "comm", comm, sizeof(comm));
			proc_read(who, "wchan", wchan, sizeof(wchan));
			proc_read(who, "stat", st, sizeof(st));
			p = strrchr(st, ')');
			fprintf(stderr, "fbt:   %s %s state %c wchan %s\n", e->d_name, comm,
			        p != NULL ? p[2] : '?', wchan);
		}
		closedir(t);
	}
	/* where each thread of each agent and worker is: gdb when installed */
	for (int i = 0; i < nstarted && access("/usr/bin/gdb", X_OK) == 0; i++) {
		char        pid[16];
		const char *argv[] = {"/usr/bin/gdb", "-p", pid, "-batch", "-nx", "-q",
		                      "-ex", "thread apply all bt", NULL};
		pid_t       g;

		if (started[i] <= 0 || kill(started[i], 0) != 0)
			continue;
		snprintf(pid, sizeof(pid), "%d", (int)started[i]);
		if (posix_spawn(&g, argv[0], NULL, NULL, (char *const *)argv, environ) == 0 &&
		    wait_exit(g, 30000) == -2) {
			kill(g, SIGKILL);
			waitpid(g, NULL, 0);
		}
	}
	if ((d = opendir("/proc")) == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		int  pid = atoi(e->d_name), below = 0;
		char cmd[512], st[512], wchan[128];

		for (int up = pid, k = 0; up > 1 && k < 6 && !below; k++) {
			up = proc_parent(up);
			for (int i = 0; i < nstarted && !below; i++)
				below = started[i] > 0 && up == (int)started[i];
		}
		if (pid <= 0 || !below)
			continue;
		proc_read(e->d_name, "cmdline", cmd, sizeof(cmd));
		proc_read(e->d_name, "stat", st, sizeof(st));
		proc_read(e->d_name, "wchan", wchan, sizeof(wchan));
		fprintf(stderr, "fbt: below an agent: %d (parent %d) state %c wchan %s: %s\n", pid,
		        proc_parent(pid), strrchr(st, ')') ? strrchr(st, ')')[2] : '?', wchan, cmd);
	}
	closedir(d);
}

int
fbt_run(char *const argv[], char *out, size_t cap)
{
	char                       path[600];
	posix_spawn_file_actions_t fa;
	pid_t                      pid;
	int                        fd, st;
	ssize_t                    n;
	static int                 seq;

	snprintf(path, sizeof(path), "%s/run.%d.%d.out", root[0] ? root : "/tmp", (int)getpid(),
	         seq++);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	if (posix_spawn(&pid, argv[0], &fa, NULL, argv, environ) != 0) {
		posix_spawn_file_actions_destroy(&fa);
		snprintf(out, cap, "cannot run %s", argv[0]);
		return -1;
	}
	posix_spawn_file_actions_destroy(&fa);
	st = wait_exit(pid, 60000);
	if (st < 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	out[0] = '\0';
	if ((fd = open(path, O_RDONLY)) >= 0) {
		n = read(fd, out, cap - 1);
		out[n > 0 ? n : 0] = '\0';
		close(fd);
	}
	unlink(path);
	if (st == -2) {
		fprintf(stderr, "fbt: killed after 60 s:");
		for (int i = 0; argv[i] != NULL; i++)
			fprintf(stderr, " %s", argv[i]);
		fprintf(stderr, "\nfbt: it had printed: %s\n", out);
		/* what it waited for */
		(void)each_log(print_tail, NULL);
		dump_processes();
	}
	return st < 0 ? -1 : st;
}

int
fbt_ctl(char *out, size_t cap, const char *url, const char *id, const char *sname, ...)
{
	const char *args[56];
	int         n = 0;
	va_list     ap;

	va_start(ap, sname);
	for (const char *a; n < 55 && (a = va_arg(ap, const char *)) != NULL;)
		args[n++] = a;
	va_end(ap);
	args[n] = NULL;
	return fbt_ctlv(out, cap, url, id, sname, args);
}

int
fbt_ctlv(char *out, size_t cap, const char *url, const char *id, const char *sname,
         const char *const *args)
{
	char *argv[64];
	char  ca[600], cert[600], key[600];
	int   n = 0;

	snprintf(ca, sizeof(ca), "--ca=%s/agents-ca.pem", pki);
	snprintf(cert, sizeof(cert), "--cert=%s/%s.pem", pki, id);
	snprintf(key, sizeof(key), "--key=%s/%s.key", pki, id);
	argv[n++] = (char *)FBT_CTL;
	argv[n++] = (char *)"--url";
	argv[n++] = (char *)url;
	argv[n++] = (char *)"--server-name";
	argv[n++] = (char *)sname;
	argv[n++] = ca;
	argv[n++] = cert;
	argv[n++] = key;
	argv[n++] = (char *)"--timeout=20000";
	for (int i = 0; args[i] != NULL && n < 62; i++)
		argv[n++] = (char *)args[i];
	argv[n] = NULL;
	return fbt_run(argv, out, cap);
}

int
fbt_file_contains(const char *path, const char *text)
{
	char  buf[1 << 16];
	FILE *f = fopen(path, "r");
	size_t n;

	if (f == NULL)
		return 0;
	n      = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return strstr(buf, text) != NULL;
}

/* Reads "<role> <url>" lines from <dir>/agent.addr. */
static int
read_addr(fbt_agent *a)
{
	char  path[600], role[32], url[128];
	FILE *f;
	int   got = 0, mine = 0;

	snprintf(path, sizeof(path), "%s/agent.addr", a->dir);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fscanf(f, "%31s %127s", role, url) == 2) {
		if (strcmp(role, "operator") == 0)
			snprintf(a->control, sizeof(a->control), "%s", url);
		else if (strcmp(role, "monitor") == 0)
			snprintf(a->monitor, sizeof(a->monitor), "%s", url);
		else if (strcmp(role, "events") == 0)
			snprintf(a->events, sizeof(a->events), "%s", url);
		else if (strcmp(role, "metrics") == 0)
			snprintf(a->metrics, sizeof(a->metrics), "%s", url);
		else if (strcmp(role, "agent") == 0)
			snprintf(a->resync, sizeof(a->resync), "%s", url);
		else if (strcmp(role, "pid") == 0)
			mine = atoi(url) == (int)a->pid;
		got++;
	}
	fclose(f);
	return got > 0 && mine ? 0 : -1;
}

/* The last cap-1 bytes of an agent's log after offset from, as a string. */
static void
log_tail(const fbt_agent *a, long from, char *buf, size_t cap)
{
	FILE  *f = fopen(a->log, "r");
	long   len;
	size_t got;

	buf[0] = '\0';
	if (f == NULL)
		return;
	if (fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) - from > (long)cap - 1)
		from = len - (long)cap + 1;
	fseek(f, from, SEEK_SET);
	got      = fread(buf, 1, cap - 1, f);
	buf[got] = '\0';
	fclose(f);
}

/*
 * An agent that did not start says why on the test's stderr (its exit status
 * and the end of its log), so a failure in CI can be read from its output.
 */
static void
say_why_not_started(const fbt_agent *a, const char *kind, const char *what)
{
	char buf[4096];

	log_tail(a, 0, buf, sizeof(buf));
	fprintf(stderr, "harness: the %s agent %s (exit status %d); the end of %s:\n%s\n", kind,
	        what, a->exit_status, a->log, buf);
}

int
fbt_agent_start(fbt_agent *a, const char *kind, const char *cert, const char *const *extra)
{
	static int                 seq;
	char                      *argv[64];
	char                       s[16][700];
	int                        n = 0, k = 0;
	long long                  deadline;
	int                        primary = strcmp(kind, "primary") == 0, retries = 0;
	long                       log_from;

	memset(a, 0, sizeof(*a));
	snprintf(a->dir, sizeof(a->dir), "%s/%s-%d", root, kind, seq++);
	snprintf(a->log, sizeof(a->log), "%s.log", a->dir);
#define ARG(...) (snprintf(s[k], sizeof(s[0]), __VA_ARGS__), argv[n++] = s[k++])
	argv[n++] = (char *)(primary ? FBT_PRIMARY : FBT_REPLICA);
	ARG("--data-dir=%s", a->dir);
	ARG("--cert=%s/%s.pem", pki, cert);
	ARG("--key=%s/%s.key", pki, cert);
	ARG("--ca-operators=%s/operators-ca.pem", pki);
	ARG("--ca-monitors=%s/monitors-ca.pem", pki);
	ARG("--ca-agents=%s/agents-ca.pem", pki);
	argv[n++] = (char *)"--listen-control=tls+tcp://127.0.0.1:0";
	argv[n++] = (char *)"--listen-monitor=tls+tcp://127.0.0.1:0";
	argv[n++] = (char *)"--listen-events=tls+tcp://127.0.0.1:0";
	argv[n++] = (char *)"--listen-resync=tls+tcp://127.0.0.1:0";
	argv[n++] = (char *)"--listen-metrics=http://127.0.0.1:0";
#undef ARG
	for (int i = 0; extra != NULL && extra[i] != NULL && n < 62; i++) {
		argv[n++] = (char *)extra[i];
		if (strncmp(extra[i], "--data-dir=", 11) == 0)
			snprintf(a->dir, sizeof(a->dir), "%s", extra[i] + 11);
	}
	argv[n] = NULL;

again:
	{
		struct stat sb;

		log_from = stat(a->log, &sb) == 0 ? (long)sb.st_size : 0;
	}
	if ((a->pid = fork()) < 0) {
		a->pid = 0;
		return -1;
	}
	if (a->pid == 0) {
		/* The agent dies with this test program, however it ends. */
		int fd = open(a->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
		int nul = open("/dev/null", O_RDWR);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(nul, 0);
		dup2(nul, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
		if (nul > 2)
			close(nul);
		execv(argv[0], argv);
		_exit(127);
	}
	if (nstarted < (int)(sizeof(started) / sizeof(started[0])))
		started[nstarted++] = a->pid;
	deadline = now_ms() + 20000;
	while (now_ms() < deadline) {
		int st;

		if (read_addr(a) == 0)
			return 0;
		if (waitpid(a->pid, &st, WNOHANG) == a->pid) {
			char tail[4096];

			a->exit_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
			a->pid         = 0;
			log_tail(a, log_from, tail, sizeof(tail));
			/*
			 * A restart on the ports of the agent it replaces can find
			 * one taken meanwhile: every test binds and connects from
			 * the same ephemeral range, and a port is free between the
			 * kill and the restart. Not what these tests are about;
			 * try again, a few times, rather than fail for it.
			 */
			if (a->exit_status == 1 && strstr(tail, "Address in use") != NULL &&
			    ++retries <= 20) {
				fprintf(stderr, "harness: a port of the %s agent is in use (%s); "
				        "starting it again\n", kind, a->log);
				nap_ms(250);
				goto again;
			}
			say_why_not_started(a, kind, "exited before it was ready");
			return -1;
		}
		nap_ms(10);
	}
	kill(a->pid, SIGKILL);
	waitpid(a->pid, NULL, 0);
	a->pid = 0;
	say_why_not_started(a, kind, "was not ready after 20 s");
	return -1;
}

int
fbt_replica_start(fbt_agent *a, const fbt_agent *primary, const char *const *extra)
{
	char        peer[200];
	const char *args[32] = {peer, "--peer-name=primary.failback.test"};
	int         n        = 2;

	snprintf(peer, sizeof(peer), "--peer-url=%s", primary->resync);
	for (int i = 0; extra != NULL && extra[i] != NULL && n < 31; i++)
		args[n++] = extra[i];
	args[n] = NULL;
	return fbt_agent_start(a, "replica", "replica", args);
}

int
fbt_agent_stop(fbt_agent *a, int sig, int timeout_ms)
{
	int st;

	if (a->pid <= 0)
		return -1;
	kill(a->pid, sig);
	st = wait_exit(a->pid, timeout_ms);
	if (st == -2) {
		kill(a->pid, SIGKILL);
		waitpid(a->pid, NULL, 0);
		st = -1;
	}
	a->pid = 0;
	return st;
}

int
fbt_http_get(const char *url, const char *path, char *out, size_t cap)
{
	struct sockaddr_in a = {0};
	char               req[512], *buf, *body;
	size_t             len = 0, bcap = 1 << 20;
	int                fd, port, status = -1;
	struct timeval     tv = {10, 0};

	if (strncmp(url, "http://127.0.0.1:", 17) != 0 || (port = atoi(url + 17)) <= 0)
		return -1;
	a.sin_family      = AF_INET;
	a.sin_port        = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
	         path);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    write(fd, req, strlen(req)) != (ssize_t)strlen(req) || (buf = malloc(bcap)) == NULL) {
		close(fd);
		return -1;
	}
	for (;;) {
		ssize_t n = read(fd, buf + len, bcap - 1 - len);

		if (n <= 0)
			break;
		len += (size_t)n;
		if (len == bcap - 1)
			break;
	}
	close(fd);
	buf[len] = '\0';
	if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
		status = -1;
	body = strstr(buf, "\r\n\r\n");
	snprintf(out, cap, "%s", body != NULL ? body + 4 : "");
	free(buf);
	return status;
}
