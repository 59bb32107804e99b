/*
 * lease.c - the data directory's lease across hosts (lease.h).
 *
 * One record of FB_LEASE_REC bytes at offset 0 of DATA_DIR/agent.lease,
 * text an operator can read with cat:
 *
 *   failback-lease 1
 *   node NODE
 *   pid PID
 *   counter N
 *   state held|released
 *   check HEX
 *
 * written whole with one pwrite and made durable with fdatasync (a record
 * smaller than a sector is not torn on disk). A read that overlaps a write
 * can still see half of each in the page cache: check (FNV-1a of the lines
 * above it) tells, and such a read is simply made again. Time is measured only by the reader
 * that watches (CLOCK_BOOTTIME, which runs on while a host sleeps), never
 * compared across hosts.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "failback/lease.h"
#include "failback/log.h"

#define FB_LEASE_REC  256
#define WATCH_POLL_MS 200

typedef struct lease_rec {
	char     node[FB_LEASE_NODE_MAX + 1];
	long     pid;
	uint64_t counter;
	int      held;
} lease_rec;

struct fb_lease {
	int             fd;
	char            dir[4096];
	char            node[FB_LEASE_NODE_MAX + 1];
	long            pid;
	uint64_t        counter;
	unsigned        timeout_ms;
	uint64_t        renewed_ms; /* boot clock of the last renewal that was written */
	pthread_t       thread;
	int             running, stop;
	pthread_mutex_t mu;
	pthread_cond_t  cv;
};

static uint64_t
boot_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_BOOTTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void
sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000u, (long)(ms % 1000u) * 1000000L};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

int
fb_lease_node_ok(const char *node)
{
	size_t n = strlen(node);

	return n >= 1 && n <= FB_LEASE_NODE_MAX &&
	       strspn(node, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

/* The raw record (NUL-terminated); its length, 0 for an empty file, -1 on
 * a read error. */
static ssize_t
lease_raw(int fd, char *buf)
{
	ssize_t n = pread(fd, buf, FB_LEASE_REC, 0);

	buf[n > 0 ? n : 0] = '\0';
	return n;
}

static uint64_t
lease_fnv(const char *p, size_t n)
{
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < n; i++)
		h = (h ^ (uint8_t)p[i]) * 1099511628211ull;
	return h;
}

/* 0 parsed, -1 not a (whole) lease record. */
static int
lease_parse(const char *buf, lease_rec *r)
{
	char               state[16];
	unsigned long long c, check = 0;
	int                used = 0;

	memset(r, 0, sizeof(*r));
	if (sscanf(buf, "failback-lease 1\nnode %64s\npid %ld\ncounter %llu\nstate %15s\n%n", r->node,
	           &r->pid, &c, state, &used) != 4 ||
	    used == 0 || !fb_lease_node_ok(r->node) ||
	    sscanf(buf + used, "check %16llx\n", &check) != 1 ||
	    check != lease_fnv(buf, (size_t)used))
		return -1;
	r->counter = c;
	r->held    = strcmp(state, "held") == 0;
	return r->held || strcmp(state, "released") == 0 ? 0 : -1;
}

static uint32_t
lease_write(int fd, const char *dir, const char *node, long pid, uint64_t counter, int held,
            fb_err *err)
{
	char buf[FB_LEASE_REC];
	int  n;

	memset(buf, 0, sizeof(buf));
	n = snprintf(buf, sizeof(buf), "failback-lease 1\nnode %s\npid %ld\ncounter %llu\nstate %s\n",
	             node, pid, (unsigned long long)counter, held ? "held" : "released");
	if (n > 0 && (size_t)n < sizeof(buf))
		n += snprintf(buf + n, sizeof(buf) - (size_t)n, "check %016llx\n",
		              (unsigned long long)lease_fnv(buf, (size_t)n));
	if (n < 0 || (size_t)n >= sizeof(buf))
		return fb_err_set(err, FB_RV_INVALID_PARAMETER, "lease record too long");
	if (pwrite(fd, buf, sizeof(buf), 0) != (ssize_t)sizeof(buf) || fdatasync(fd) != 0)
		return fb_err_errno(err, errno, dir);
	return FB_RV_OK;
}

static int
lease_open(const char *dir, int flags, char *path, size_t len)
{
	snprintf(path, len, "%s/agent.lease", dir);
	return open(path, flags | O_CLOEXEC | O_NOFOLLOW, 0600);
}

/* Reads and parses the record, again when a read saw half of a write:
 * 0 parsed, 1 empty file, -1 no whole record after a few reads, -2 read
 * error. */
static int
lease_get(int fd, char *raw, lease_rec *r)
{
	int rc = -1;

	for (int i = 0; i < 20; i++) {
		ssize_t n = lease_raw(fd, raw);

		if (n < 0)
			return -2;
		if (n == 0)
			return 1;
		if ((rc = lease_parse(raw, r)) == 0)
			return 0;
		sleep_ms(5);
	}
	memset(r, 0, sizeof(*r));
	return rc;
}

/* Watches a record held by another node for timeout_ms: 1 when it did not
 * move (the holder is gone), 0 when it moved (*now holds the new record),
 * -1 on a read error. */
static int
lease_watch(int fd, const char *first, unsigned timeout_ms, char *now)
{
	uint64_t until = boot_ms() + timeout_ms;

	while (boot_ms() < until) {
		sleep_ms(WATCH_POLL_MS);
		if (lease_raw(fd, now) < 0)
			return -1;
		if (strcmp(now, first) != 0)
			return 0;
	}
	return 1;
}

uint32_t
fb_lease_acquire(const char *dir, const char *node, unsigned timeout_s, fb_lease **out,
                 fb_err *err)
{
	char      path[4200], raw[FB_LEASE_REC + 1], now[FB_LEASE_REC + 1];
	lease_rec rec;
	fb_lease *l;
	int       parsed, settle = 0;
	uint32_t  rv;

	*out = NULL;
	if (!fb_lease_node_ok(node))
		return fb_err_set(err, FB_RV_INVALID_PARAMETER,
		                  "node name '%.80s' is not 1-%d of A-Z a-z 0-9 . _ -", node,
		                  FB_LEASE_NODE_MAX);
	if (timeout_s < FB_LEASE_TIMEOUT_MIN || timeout_s > FB_LEASE_TIMEOUT_MAX)
		return fb_err_set(err, FB_RV_INVALID_PARAMETER,
		                  "lease timeout %u s is not from %d to %d", timeout_s,
		                  FB_LEASE_TIMEOUT_MIN, FB_LEASE_TIMEOUT_MAX);
	if ((l = calloc(1, sizeof(*l))) == NULL)
		return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
	snprintf(l->dir, sizeof(l->dir), "%s", dir);
	snprintf(l->node, sizeof(l->node), "%s", node);
	l->pid        = (long)getpid();
	l->timeout_ms = timeout_s * 1000u;
	pthread_mutex_init(&l->mu, NULL);
	pthread_cond_init(&l->cv, NULL);
	if ((l->fd = lease_open(dir, O_RDWR | O_CREAT, path, sizeof(path))) < 0) {
		rv = fb_err_errno(err, errno, path);
		goto fail;
	}
	if ((parsed = lease_get(l->fd, raw, &rec)) == -2) {
		rv = fb_err_errno(err, errno, path);
		goto fail;
	}
	/* Another node's agent held it, or something unreadable is there:
	 * whoever it is must show it is alive within one timeout. */
	while (parsed < 0 || (parsed == 0 && rec.held && strcmp(rec.node, node) != 0)) {
		int moved = lease_watch(l->fd, raw, l->timeout_ms, now);

		if (moved < 0) {
			rv = fb_err_errno(err, errno, path);
			goto fail;
		}
		if (moved == 0 && lease_get(l->fd, now, &rec) == 0 && !rec.held) {
			snprintf(raw, sizeof(raw), "%s", now);
			parsed = 0; /* released meanwhile: take it as below */
			break;
		}
		if (moved == 0) {
			rv = fb_err_set(err, FB_RV_SYSTEM_IN_USE,
			                "%s: the agent on node %s (pid %ld) holds the lease and renewed "
			                "it within the last %u s",
			                dir, parsed == 0 ? rec.node : "?", parsed == 0 ? rec.pid : 0,
			                timeout_s);
			goto fail;
		}
		if (parsed == 0)
			fb_log_warn("FB1020",
			            "%s: the lease of node %s (pid %ld) was not renewed for %u s: taking "
			            "it over",
			            dir, rec.node, rec.pid, timeout_s);
		else
			fb_log_warn("FB1020",
			            "%s: agent.lease holds no lease record and did not change for %u s: "
			            "taking it over",
			            dir, timeout_s);
		settle = 1;
		break;
	}
	if (parsed == 0 && !rec.held && strcmp(rec.node, node) != 0)
		settle = 1; /* another node may be starting on it too */
	l->counter = (parsed == 0 ? rec.counter : 0) + 1;
	if ((rv = lease_write(l->fd, path, node, l->pid, l->counter, 1, err)) != FB_RV_OK)
		goto fail;
	l->renewed_ms = boot_ms();
	if (settle) {
		/* An agent that was frozen reads this record at its next renewal and
		 * stops; one that started at the same time wrote after us or before. */
		sleep_ms(l->timeout_ms / 4 + 500);
		if (lease_get(l->fd, now, &rec) != 0 || strcmp(rec.node, node) != 0 ||
		    rec.pid != l->pid || rec.counter != l->counter) {
			rv = fb_err_set(err, FB_RV_SYSTEM_IN_USE,
			                "%s: the agent on node %s (pid %ld) took the lease at the same "
			                "time",
			                dir, rec.node[0] ? rec.node : "?", rec.pid);
			goto fail;
		}
	}
	*out = l;
	return FB_RV_OK;
fail:
	if (l->fd >= 0)
		close(l->fd);
	pthread_mutex_destroy(&l->mu);
	pthread_cond_destroy(&l->cv);
	free(l);
	return rv;
}

uint32_t
fb_lease_renew(fb_lease *l, fb_err *err)
{
	char      raw[FB_LEASE_REC + 1];
	lease_rec rec;
	uint64_t  since = boot_ms() - l->renewed_ms;
	uint32_t  rv;

	int       got = lease_get(l->fd, raw, &rec);

	if (got == -2)
		return fb_err_errno(err, errno, l->dir);
	if (got != 0 || !rec.held || strcmp(rec.node, l->node) != 0 || rec.pid != l->pid ||
	    rec.counter != l->counter)
		return fb_err_set(err, FB_RV_SYSTEM_IN_USE,
		                  "%s: the lease is now held by the agent on node %s (pid %ld)", l->dir,
		                  rec.node[0] ? rec.node : "?", rec.pid);
	/* Frozen past the timeout and nobody took it: still ours. (One that
	 * takes it over writes, then waits a renewal period, so an agent that
	 * renews in between is caught at its next read.) */
	if (since > l->timeout_ms)
		fb_log_warn("FB1022",
		            "%s: the lease was not renewed for %llu ms (more than its %u s; was this "
		            "process frozen?): no other agent took it",
		            l->dir, (unsigned long long)since, l->timeout_ms / 1000u);
	if ((rv = lease_write(l->fd, l->dir, l->node, l->pid, l->counter + 1, 1, err)) != FB_RV_OK)
		return rv;
	l->counter++;
	l->renewed_ms = boot_ms();
	return FB_RV_OK;
}

static void *
lease_thread(void *arg)
{
	fb_lease *l = arg;

	pthread_mutex_lock(&l->mu);
	while (!l->stop) {
		struct timespec ts;
		fb_err          err = {0};
		uint32_t        rv;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += (time_t)(l->timeout_ms / 4000u);
		ts.tv_nsec += (long)((l->timeout_ms / 4u) % 1000u) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&l->cv, &l->mu, &ts);
		if (l->stop)
			break;
		rv = fb_lease_renew(l, &err);
		if (rv == FB_RV_SYSTEM_IN_USE) {
			fb_log_error("FB1021", "%s; stopping at once (exit %d)", err.msg,
			             FB_LEASE_LOST_EXIT);
			_exit(FB_LEASE_LOST_EXIT);
		}
		if (rv != FB_RV_OK && boot_ms() - l->renewed_ms > l->timeout_ms) {
			fb_log_error("FB1021",
			             "%s: the lease could not be renewed for more than %u s (%s): another "
			             "node may take the directory over; stopping at once (exit %d)",
			             l->dir, l->timeout_ms / 1000u, err.msg, FB_LEASE_LOST_EXIT);
			_exit(FB_LEASE_LOST_EXIT);
		}
		if (rv != FB_RV_OK)
			fb_log_warn("FB1022", "renewing the lease: %s", err.msg);
	}
	pthread_mutex_unlock(&l->mu);
	return NULL;
}

uint32_t
fb_lease_start(fb_lease *l, fb_err *err)
{
	int rc = pthread_create(&l->thread, NULL, lease_thread, l);

	if (rc != 0)
		return fb_err_errno(err, rc, "lease renewal thread");
	l->running = 1;
	return FB_RV_OK;
}

void
fb_lease_release(fb_lease *l)
{
	fb_err err = {0};

	if (l == NULL)
		return;
	if (l->running) {
		pthread_mutex_lock(&l->mu);
		l->stop = 1;
		pthread_cond_signal(&l->cv);
		pthread_mutex_unlock(&l->mu);
		pthread_join(l->thread, NULL);
	}
	/* only a lease that is still ours is released */
	if (fb_lease_check(l->dir, l->node, (pid_t)l->pid, &err) == FB_RV_OK &&
	    lease_write(l->fd, l->dir, l->node, l->pid, l->counter + 1, 0, &err) != FB_RV_OK)
		fb_log_warn("FB1022", "releasing the lease: %s", err.msg);
	close(l->fd);
	pthread_mutex_destroy(&l->mu);
	pthread_cond_destroy(&l->cv);
	free(l);
}

uint32_t
fb_lease_check(const char *dir, const char *node, pid_t pid, fb_err *err)
{
	char      path[4200], raw[FB_LEASE_REC + 1];
	lease_rec rec;
	int       fd = lease_open(dir, O_RDONLY, path, sizeof(path));
	ssize_t   n;

	if (fd < 0)
		return fb_err_errno(err, errno, path);
	n = lease_get(fd, raw, &rec);
	close(fd);
	if (n == -2)
		return fb_err_errno(err, errno, path);
	if (n != 0 || !rec.held || strcmp(rec.node, node) != 0 || rec.pid != (long)pid)
		return fb_err_set(err, FB_RV_SYSTEM_IN_USE,
		                  "%s: the lease is held by the agent on node %s (pid %ld), not by "
		                  "this one",
		                  dir, rec.node[0] ? rec.node : "?", rec.pid);
	return FB_RV_OK;
}
