/*
 * image.c - QEMU's tools, and images read through qemu-nbd (image.h).
 */
#define _GNU_SOURCE /* pipe2 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libnbd.h>

#include "failback/clock.h"
#include "failback/image.h"
#include "failback/log.h"

extern char **environ;

int
fb_tool_run(const char *const *argv, char *out, size_t cap, unsigned timeout_ms, fb_err *err)
{
	posix_spawn_file_actions_t fa;
	int                        p[2], st = 0;
	size_t                     have  = 0;
	pid_t                      pid;
	uint64_t                   until = fb_clock_mono_ms() + timeout_ms;

	if (pipe2(p, O_CLOEXEC) != 0) {
		fb_err_errno(err, errno, "pipe");
		return -1;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, p[1], STDOUT_FILENO);
	posix_spawn_file_actions_adddup2(&fa, p[1], STDERR_FILENO);
	if ((errno = posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)argv, environ)) != 0) {
		fb_err_errno(err, errno, argv[0]);
		posix_spawn_file_actions_destroy(&fa);
		close(p[0]);
		close(p[1]);
		return -1;
	}
	posix_spawn_file_actions_destroy(&fa);
	close(p[1]);
	for (;;) {
		struct pollfd pfd = {p[0], POLLIN, 0};
		uint64_t      now = fb_clock_mono_ms();
		ssize_t       k;
		char          sink[4096];

		if (now >= until) {
			kill(pid, SIGKILL);
			break;
		}
		if (poll(&pfd, 1, (int)(until - now)) <= 0)
			continue;
		if (have + 1 < cap)
			k = read(p[0], out + have, cap - 1 - have);
		else
			k = read(p[0], sink, sizeof(sink));
		if (k <= 0)
			break;
		if (have + 1 < cap)
			have += (size_t)k;
	}
	if (cap > 0)
		out[have] = '\0';
	close(p[0]);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(st)) {
		fb_err_set(err, FB_RV_FAILED, "%s did not finish within %u s", argv[0],
		           timeout_ms / 1000u);
		return -1;
	}
	return WEXITSTATUS(st);
}

int
fb_qemu_opt(char *out, size_t cap, size_t *len, const char *value)
{
	size_t k = *len;

	for (const char *c = value; *c; c++) {
		if (k + (*c == ',' ? 2 : 1) >= cap)
			return -1;
		out[k++] = *c;
		if (*c == ',')
			out[k++] = ',';
	}
	out[k] = '\0';
	*len   = k;
	return 0;
}

const char *
fb_json_key(const char *p, const char *key)
{
	char pat[80];

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = strstr(p, pat);
	if (p == NULL)
		return NULL;
	p += strlen(pat);
	while (*p == ' ')
		p++;
	return p;
}

static const char *const formats[] = {"raw", "qcow2", "vhdx", "vmdk", "vpc"};

int
fb_image_format_ok(const char *format)
{
	for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++)
		if (strcmp(format, formats[i]) == 0)
			return 1;
	return 0;
}

/* Runs qemu-img (argv) about path in format for at most a minute: its exit
 * status (out holds its first line when it is not 0), or -1 with err set
 * (Not supported: qemu-img cannot be run). */
static int
qemu_img(const char *const *argv, const char *path, const char *format, char *out, size_t cap,
         fb_err *err)
{
	int rc = fb_tool_run(argv, out, cap, 60000, err);

	if (rc < 0) {
		char why[FB_ERR_MSG_MAX];

		snprintf(why, sizeof(why), "%s", err->msg);
		fb_err_set(err, FB_RV_NOT_SUPPORTED, "%s (%s): cannot run qemu-img (install "
		           "qemu-utils): %s", path, format, why);
		return -1;
	}
	if (rc != 0)
		out[strcspn(out, "\n")] = '\0';
	return rc;
}

uint32_t
fb_image_probe(const char *path, const char *format, uint64_t *size, fb_err *err)
{
	char        out[16384];
	const char *v;
	int         rc;

	if (!fb_image_format_ok(format))
		return fb_err_set(err, FB_RV_INVALID_PARAMETER,
		                  "disk format '%.20s' is not raw, qcow2, vhdx, vmdk or vpc", format);
	if ((rc = qemu_img((const char *[]){"qemu-img", "info", "-U", "--output=json", "-f", format,
	                                   path, NULL},
	                   path, format, out, sizeof(out), err)) < 0)
		return err->rv;
	if (rc != 0)
		return fb_err_set(err, FB_RV_INVALID_PARAMETER, "%s is not a usable %s image: %s", path,
		                  format, out);
	if ((v = fb_json_key(out, "virtual-size")) == NULL || (*size = strtoull(v, NULL, 10)) == 0)
		return fb_err_set(err, FB_RV_INVALID_PARAMETER, "%s (%s): no virtual size", path,
		                  format);
	return FB_RV_OK;
}

struct fb_image {
	char                path[4096];
	char                format[FB_IMAGE_FORMAT_MAX];
	char                dir[64], sock[80];
	pid_t               pid;
	struct nbd_handle  *h;
	uint64_t            size;
	int                 can_status;
	int                 writable; /* served read-write: a dead server loses writes */
	int                 keep_fd;  /* the server inherits it (the image's lock), or -1 */
	int                 start_killed; /* the last start ended in a signal (server_killed) */
};

/* Set once a read-write server died in this process (image.h). */
static int writes_lost;

/* The qemu-nbd error file's first line, for a message. */
static void
server_said(const fb_image *im, char *buf, size_t cap)
{
	char  path[96];
	FILE *f;

	buf[0] = '\0';
	snprintf(path, sizeof(path), "%s/err", im->dir);
	if ((f = fopen(path, "r")) != NULL) {
		if (fgets(buf, (int)cap, f) == NULL)
			buf[0] = '\0';
		fclose(f);
	}
	buf[strcspn(buf, "\n")] = '\0';
}

/* Stops the server: a read-write one that still answers is told to end
 * and given a moment to close its image cleanly (it exits when its only
 * client leaves); anything else is killed. */
static void
server_stop(fb_image *im)
{
	int st;

	if (im->h != NULL) {
		int graceful = im->writable && im->pid > 0 && nbd_aio_disconnect(im->h, 0) == 0;

		/* the disconnect goes out (a hung server is not waited for) */
		for (uint64_t until = fb_clock_mono_ms() + 1000;
		     graceful && nbd_aio_is_closed(im->h) != 1 && nbd_aio_is_dead(im->h) != 1 &&
		     fb_clock_mono_ms() < until;)
			if (nbd_poll(im->h, 100) < 0)
				break;
		nbd_close(im->h);
		im->h = NULL;
		for (int i = 0; graceful && i < 250; i++) {
			if (waitpid(im->pid, &st, WNOHANG) == im->pid) {
				im->pid = 0;
				break;
			}
			usleep(20000);
		}
	}
	if (im->pid > 0) {
		kill(im->pid, SIGKILL);
		while (waitpid(im->pid, &st, 0) < 0 && errno == EINTR)
			;
		im->pid = 0;
	}
	unlink(im->sock);
}

/* qemu-nbd was killed by a signal before it served: nothing was written
 * through it, so starting it again is safe (image_open). */
static uint32_t
server_killed(fb_image *im, int sig, fb_err *err)
{
	im->start_killed = 1;
	return fb_err_set(err, FB_RV_FAILED, "%s (%s): qemu-nbd was killed by signal %d while it "
	                  "started", im->path, im->format, sig);
}

/* Starts qemu-nbd on im->sock and connects: FB_RV_OK, or an error naming
 * the image and its format. */
static uint32_t
server_start(fb_image *im, fb_err *err)
{
	char  opts[9000], errpath[96], said[300];
	pid_t parent = getpid(), pid;
	int   st, conn = 0;
	size_t k = 0;

	im->start_killed = 0;
	k = (size_t)snprintf(opts, sizeof(opts), "driver=%s,file.driver=file,file.filename=",
	                     im->format);
	if (fb_qemu_opt(opts, sizeof(opts), &k, im->path) != 0)
		return fb_err_set(err, FB_RV_INVALID_PARAMETER, "%s: path too long for qemu-nbd",
		                  im->path);
	snprintf(opts + k, sizeof(opts) - k, ",file.locking=off");
	snprintf(errpath, sizeof(errpath), "%s/err", im->dir);
	unlink(im->sock);
	if ((pid = fork()) < 0)
		return fb_err_errno(err, errno, "fork for qemu-nbd");
	if (pid == 0) {
		/* the server never outlives the thread that serves the image */
		const char *ro[] = {"qemu-nbd", "--read-only", "--image-opts", "-k", im->sock, opts,
		                    NULL};
		const char *rw[] = {"qemu-nbd", "--discard=unmap", "--image-opts", "-k", im->sock, opts,
		                    NULL};
		const char *const *argv = im->writable ? rw : ro;
		int         fd;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		/* the lock goes with the server: held until it is gone */
		if (im->keep_fd >= 0)
			(void)fcntl(im->keep_fd, F_SETFD, 0);
		if ((fd = open("/dev/null", O_RDWR)) >= 0) {
			dup2(fd, STDIN_FILENO);
			dup2(fd, STDOUT_FILENO);
		}
		if ((fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0600)) >= 0)
			dup2(fd, STDERR_FILENO);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	im->pid = pid;
	/* ready when its socket is there */
	for (int i = 0; access(im->sock, F_OK) != 0; i++) {
		if (waitpid(pid, &st, WNOHANG) == pid) {
			im->pid = 0;
			server_said(im, said, sizeof(said));
			if (WIFSIGNALED(st))
				return server_killed(im, WTERMSIG(st), err);
			return fb_err_set(err, FB_RV_FAILED, "%s (%s): qemu-nbd exited (%s): %s", im->path,
			                  im->format,
			                  WIFEXITED(st) && WEXITSTATUS(st) == 127 ? "cannot run qemu-nbd: "
			                                                          "install qemu-utils"
			                                                        : "exit status",
			                  said[0] ? said : "no message");
		}
		if (i >= FB_IMAGE_IO_MS / 20) {
			server_stop(im);
			return fb_err_set(err, FB_RV_TIMEOUT, "%s (%s): qemu-nbd did not start within %d s",
			                  im->path, im->format, FB_IMAGE_IO_MS / 1000);
		}
		usleep(20000);
	}
	if ((im->h = nbd_create()) == NULL ||
	    nbd_add_meta_context(im->h, LIBNBD_CONTEXT_BASE_ALLOCATION) != 0 ||
	    (conn = fb_nbd_connect_unix(im->h, im->sock, FB_IMAGE_IO_MS)) != 0) {
		char     why[300];
		uint32_t rv;

		snprintf(why, sizeof(why), "%s", nbd_get_error() ? nbd_get_error() : "no handle");
		/* refused: the server may be dying (its socket closes before it
		 * can be reaped) */
		for (int i = 0; conn == -1 && i < 50; i++) {
			if (waitpid(pid, &st, WNOHANG) == pid) {
				im->pid = 0;
				server_stop(im);
				if (WIFSIGNALED(st))
					return server_killed(im, WTERMSIG(st), err);
				break;
			}
			usleep(20000);
		}
		rv = conn == -2 ? fb_err_set(err, FB_RV_TIMEOUT,
		                             "%s (%s): qemu-nbd did not answer within %d s", im->path,
		                             im->format, FB_IMAGE_IO_MS / 1000)
		                : fb_err_set(err, FB_RV_FAILED, "%s (%s): NBD connection: %s", im->path,
		                             im->format, why);
		server_stop(im);
		return rv;
	}
	im->can_status = nbd_can_meta_context(im->h, LIBNBD_CONTEXT_BASE_ALLOCATION) == 1;
	return FB_RV_OK;
}

static uint32_t
image_open(const char *path, const char *format, int writable, int keep_fd, fb_image **out,
           fb_err *err)
{
	fb_image *im;
	int64_t   size;
	uint32_t  rv;

	*out = NULL;
	if (!fb_image_format_ok(format) || strcmp(format, "raw") == 0)
		return fb_err_set(err, FB_RV_INVALID_PARAMETER, "%s: format '%.20s' is not read over NBD",
		                  path, format);
	if ((im = calloc(1, sizeof(*im))) == NULL)
		return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
	snprintf(im->path, sizeof(im->path), "%s", path);
	snprintf(im->format, sizeof(im->format), "%s", format);
	im->writable = writable;
	im->keep_fd  = keep_fd;
	snprintf(im->dir, sizeof(im->dir), "/tmp/failback-image.XXXXXX");
	if (mkdtemp(im->dir) == NULL) {
		rv = fb_err_errno(err, errno, "a private directory for the NBD socket");
		free(im);
		return rv;
	}
	snprintf(im->sock, sizeof(im->sock), "%s/s", im->dir);
	/* A server killed while it starts has served nothing: it is started
	 * again, like one that dies under reads (fb_image_read). */
	for (int attempt = 0; (rv = server_start(im, err)) != FB_RV_OK; attempt++) {
		if (!im->start_killed || attempt >= FB_IMAGE_RESTARTS) {
			fb_image_close(im);
			return rv;
		}
		fb_log_warn("FB1030", "%s; starting it again (%d of %d)", err ? err->msg : "", attempt + 1,
		            FB_IMAGE_RESTARTS);
	}
	if ((size = nbd_get_size(im->h)) <= 0) {
		rv = fb_err_set(err, FB_RV_FAILED, "%s (%s): no size over NBD: %s", path, format,
		                nbd_get_error());
		fb_image_close(im);
		return rv;
	}
	im->size = (uint64_t)size;
	*out     = im;
	return FB_RV_OK;
}

uint32_t
fb_image_open(const char *path, const char *format, fb_image **out, fb_err *err)
{
	return image_open(path, format, 0, -1, out, err);
}

uint32_t
fb_image_open_rw(const char *path, const char *format, int lock_fd, fb_image **out, fb_err *err)
{
	return image_open(path, format, 1, lock_fd, out, err);
}

uint32_t
fb_image_lock(const char *path, unsigned wait_ms, int *fd_out, fb_err *err)
{
	uint64_t until = fb_clock_mono_ms() + wait_ms;
	int      fd;

	*fd_out = -1;
	if ((fd = open(path, O_RDWR | O_CLOEXEC)) < 0)
		return fb_err_errno(err, errno, path);
	for (;;) {
		struct flock l = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
		int          e;

		if (fcntl(fd, F_OFD_SETLK, &l) == 0) {
			*fd_out = fd;
			return FB_RV_OK;
		}
		if ((e = errno) != EAGAIN && e != EACCES) {
			close(fd);
			return fb_err_errno(err, e, path);
		}
		if (fb_clock_mono_ms() >= until) {
			close(fd);
			return fb_err_set(err, FB_RV_SYSTEM_IN_USE,
			                  "disk %s is in use (another process holds a lock on it; is the "
			                  "VM still running?)",
			                  path);
		}
		usleep(50000);
	}
}

uint32_t
fb_image_create(const char *path, const char *format, uint64_t size, fb_err *err)
{
	char out[2048], sz[32];
	int  rc;

	if (!fb_image_format_ok(format) || strcmp(format, "raw") == 0)
		return fb_err_set(err, FB_RV_INVALID_PARAMETER, "%s: format '%.20s' is not made by "
		                  "qemu-img", path, format);
	snprintf(sz, sizeof(sz), "%llu", (unsigned long long)size);
	if ((rc = qemu_img((const char *[]){"qemu-img", "create", "-q", "-f", format, path, sz, NULL},
	                   path, format, out, sizeof(out), err)) < 0)
		return err->rv;
	if (rc != 0)
		return fb_err_set(err, FB_RV_FAILED, "%s (%s): qemu-img create: %s", path, format, out);
	return FB_RV_OK;
}

int
fb_image_writes_lost(void)
{
	return __atomic_load_n(&writes_lost, __ATOMIC_RELAXED);
}

uint64_t
fb_image_size(const fb_image *im)
{
	return im->size;
}

int
fb_image_server_pid(const fb_image *im)
{
	return (int)im->pid;
}

void
fb_image_close(fb_image *im)
{
	if (im == NULL)
		return;
	server_stop(im);
	snprintf(im->sock, sizeof(im->sock), "%s/err", im->dir);
	unlink(im->sock);
	rmdir(im->dir);
	free(im);
}

int
fb_nbd_connect_unix(struct nbd_handle *h, const char *sock, unsigned ms)
{
	uint64_t until = fb_clock_mono_ms() + ms;

	if (nbd_aio_connect_unix(h, sock) != 0)
		return -1;
	for (;;) {
		uint64_t now;

		if (nbd_aio_is_ready(h) == 1)
			return 0;
		if (nbd_aio_is_dead(h) == 1 || nbd_aio_is_closed(h) == 1)
			return -1;
		if ((now = fb_clock_mono_ms()) >= until)
			return -2;
		if (nbd_poll(h, (int)(until - now)) < 0)
			return -1;
	}
}

/* Waits for an asynchronous command of an image's server (FB_IMAGE_IO_MS). */
static int
nbd_wait(struct nbd_handle *h, int64_t cookie)
{
	return fb_nbd_wait(h, cookie, FB_IMAGE_IO_MS);
}

int
fb_nbd_wait(struct nbd_handle *h, int64_t cookie, unsigned ms)
{
	uint64_t until = fb_clock_mono_ms() + ms;

	if (cookie < 0)
		return -1;
	for (;;) {
		int      r = nbd_aio_command_completed(h, (uint64_t)cookie);
		uint64_t now;

		if (r == 1)
			return 0;
		if (r < 0)
			return -1;
		if ((now = fb_clock_mono_ms()) >= until)
			return -2;
		if (nbd_poll(h, (int)(until - now)) < 0)
			return -1;
	}
}

struct extents {
	uint64_t start, end; /* the range asked */
	uint64_t next;       /* where the extents reported so far end */
	uint64_t (*seg)[2];  /* data segments [from, to) */
	size_t   n, cap;
};

static int
extent_cb(void *arg, const char *ctx, uint64_t off, uint32_t *e, size_t n, int *error)
{
	struct extents *x = arg;

	(void)ctx;
	(void)error;
	for (size_t i = 0; i + 1 < n && off < x->end; i += 2) {
		uint64_t len = e[i], to = off + len > x->end ? x->end : off + len;

		if ((e[i + 1] & (LIBNBD_STATE_HOLE | LIBNBD_STATE_ZERO)) == 0) {
			if (x->n > 0 && x->seg[x->n - 1][1] == off) {
				x->seg[x->n - 1][1] = to;
			} else {
				if (x->n == x->cap) {
					size_t nc = x->cap ? 2 * x->cap : 16;
					void  *p  = realloc(x->seg, nc * sizeof(*x->seg));

					if (p == NULL)
						return -1;
					x->seg = p;
					x->cap = nc;
				}
				x->seg[x->n][0] = off;
				x->seg[x->n][1] = to;
				x->n++;
			}
		}
		off = to;
	}
	if (off > x->next)
		x->next = off;
	return 0;
}

/* One attempt at the range: 0, -1 failed, -2 hung. */
static int
read_once(fb_image *im, uint8_t *buf, uint64_t off, uint64_t len, uint64_t *bytes_read)
{
	struct extents x  = {off, off + len, off, NULL, 0, 0};
	uint64_t       rd = 0;
	int            r  = 0;

	if (!im->can_status) {
		x.seg = malloc(sizeof(*x.seg));
		if (x.seg == NULL)
			return -1;
		x.seg[0][0] = off;
		x.seg[0][1] = off + len;
		x.n         = 1;
		x.next      = off + len;
	}
	while (x.next < x.end && r == 0) {
		uint64_t was = x.next;

		r = nbd_wait(im->h, nbd_aio_block_status(
		                        im->h, x.end - x.next, x.next,
		                        (nbd_extent_callback){.callback = extent_cb, .user_data = &x},
		                        NBD_NULL_COMPLETION, 0));
		if (r == 0 && x.next <= was)
			r = -1; /* no progress: a server that reports nothing */
	}
	memset(buf, 0, len);
	for (size_t i = 0; i < x.n && r == 0; i++)
		for (uint64_t p = x.seg[i][0]; p < x.seg[i][1] && r == 0;) {
			uint64_t n = x.seg[i][1] - p > (8u << 20) ? (8u << 20) : x.seg[i][1] - p;

			r = nbd_wait(im->h, nbd_aio_pread(im->h, buf + (p - off), n, p,
			                                  NBD_NULL_COMPLETION, 0));
			p += n;
			rd += n;
		}
	free(x.seg);
	if (r == 0)
		*bytes_read += rd;
	return r;
}

/* Why the server failed a command: its error, or that it is hung or gone,
 * with the first line it wrote. */
static void
server_why(fb_image *im, int r, char *why, size_t cap)
{
	char said[300];

	server_said(im, said, sizeof(said));
	snprintf(why, cap, "%s%s%s",
	         r == -2 ? "qemu-nbd answered nothing for 30 s"
	         : im->h != NULL ? nbd_get_error()
	                         : "qemu-nbd is not running",
	         said[0] ? ": " : "", said);
}

/* A read-write server failed: what it acknowledged since the last flush
 * may not be on the disk, so it is not restarted under its writer (who
 * must go back to its last durable state). */
static uint32_t
image_lost(fb_image *im, const char *doing, uint64_t off, const char *why, fb_err *err)
{
	__atomic_store_n(&writes_lost, 1, __ATOMIC_RELAXED);
	server_stop(im);
	return fb_err_set(err, FB_RV_FAILED, "%s (%s): %s at byte %llu: %s; writes since the last "
	                  "flush may be lost",
	                  im->path, im->format, doing, (unsigned long long)off, why);
}

/* One write-side command: FB_RV_OK, or the server is lost. */
static uint32_t
image_command(fb_image *im, int64_t cookie, const char *doing, uint64_t off, fb_err *err)
{
	char why[400];
	int  r;

	if (im->h == NULL)
		return image_lost(im, doing, off, "qemu-nbd is not running", err);
	if ((r = nbd_wait(im->h, cookie)) == 0)
		return FB_RV_OK;
	server_why(im, r, why, sizeof(why));
	return image_lost(im, doing, off, why, err);
}

static uint32_t
image_range_ok(const fb_image *im, uint64_t off, uint64_t len, fb_err *err)
{
	if (!im->writable)
		return fb_err_set(err, FB_RV_FAILED, "%s (%s) is open read-only", im->path,
		                  im->format);
	if (off > im->size || len > im->size - off)
		return fb_err_set(err, FB_RV_INVALID_PARAMETER, "%s (%s): write past its %llu bytes",
		                  im->path, im->format, (unsigned long long)im->size);
	return FB_RV_OK;
}

uint32_t
fb_image_write(fb_image *im, const void *buf, uint64_t off, uint64_t len, fb_err *err)
{
	uint32_t rv;

	if ((rv = image_range_ok(im, off, len, err)) != FB_RV_OK)
		return rv;
	return image_command(im, im->h == NULL ? -1 : nbd_aio_pwrite(im->h, buf, len, off,
	                                                              NBD_NULL_COMPLETION, 0),
	                     "writing", off, err);
}

uint32_t
fb_image_zero(fb_image *im, uint64_t off, uint64_t len, fb_err *err)
{
	uint32_t rv;

	if ((rv = image_range_ok(im, off, len, err)) != FB_RV_OK)
		return rv;
	return image_command(im, im->h == NULL ? -1 : nbd_aio_zero(im->h, len, off,
	                                                            NBD_NULL_COMPLETION, 0),
	                     "zeroing", off, err);
}

uint32_t
fb_image_flush(fb_image *im, fb_err *err)
{
	return image_command(im, im->h == NULL ? -1 : nbd_aio_flush(im->h, NBD_NULL_COMPLETION, 0),
	                     "flushing", 0, err);
}

uint32_t
fb_image_read(fb_image *im, uint8_t *buf, uint64_t off, uint64_t len, uint64_t *bytes_read,
              fb_err *err)
{
	if (off > im->size || len > im->size - off)
		return fb_err_set(err, FB_RV_INVALID_PARAMETER, "%s (%s): read past its %llu bytes",
		                  im->path, im->format, (unsigned long long)im->size);
	for (int attempt = 0;; attempt++) {
		int      r = im->h != NULL ? read_once(im, buf, off, len, bytes_read) : -1;
		char     why[400];
		uint32_t rv;

		if (r == 0)
			return FB_RV_OK;
		server_why(im, r, why, sizeof(why));
		if (im->writable)
			return image_lost(im, "reading", off, why, err);
		if (attempt >= FB_IMAGE_RESTARTS)
			return fb_err_set(err, FB_RV_FAILED, "%s (%s): reading at byte %llu: %s", im->path,
			                  im->format, (unsigned long long)off, why);
		fb_log_warn("FB1030", "%s (%s): reading at byte %llu: %s; restarting qemu-nbd (%d of %d)",
		            im->path, im->format, (unsigned long long)off, why, attempt + 1,
		            FB_IMAGE_RESTARTS);
		server_stop(im);
		if ((rv = server_start(im, err)) != FB_RV_OK && attempt + 1 >= FB_IMAGE_RESTARTS)
			return rv;
	}
}
