/*
 * fsops.c - the real disk operations and the switchable table (fsops.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "failback/fsops.h"

static ssize_t
real_pwrite(int fd, const void *buf, size_t n, off_t off)
{
	size_t done = 0;

	while (done < n) {
		ssize_t r = pwrite(fd, (const char *)buf + done, n - done, off + (off_t)done);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		done += (size_t)r;
	}
	return (ssize_t)n;
}

static int
real_commit(void)
{
	return 0;
}

static ssize_t
real_pread(int fd, void *buf, size_t n, off_t off)
{
	size_t done = 0;

	while (done < n) {
		ssize_t r = pread(fd, (char *)buf + done, n - done, off + (off_t)done);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0) {
			errno = EIO; /* the file is shorter than it should be */
			return -1;
		}
		done += (size_t)r;
	}
	return (ssize_t)n;
}

static int
real_punch(int fd, off_t off, off_t len)
{
	return fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len);
}

/* Zeroes without writing zeros where the filesystem can: the range
 * becomes unwritten extents (ext4, XFS; the space stays allocated), else
 * a hole, else zeros are written. */
static int
real_zero(int fd, off_t off, off_t len)
{
	static const uint8_t z[64 * 1024];

	if (fallocate(fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, off, len) == 0)
		return 0;
	if (errno != EOPNOTSUPP && errno != ENOSYS)
		return -1;
	if (real_punch(fd, off, len) == 0)
		return 0;
	if (errno != EOPNOTSUPP && errno != ENOSYS)
		return -1;
	for (off_t done = 0; done < len;) {
		size_t n = (size_t)(len - done < (off_t)sizeof(z) ? len - done : (off_t)sizeof(z));

		if (real_pwrite(fd, z, n, off + done) < 0)
			return -1;
		done += (off_t)n;
	}
	return 0;
}

static int
real_open(const char *path, int flags, mode_t mode)
{
	return open(path, flags | O_CLOEXEC, mode);
}

static const fb_fsops real_ops = {real_pwrite, fsync,      rename,     ftruncate, real_commit,
                                  real_pread,  real_punch, real_open, real_zero};
static const fb_fsops *ops     = &real_ops;

void
fb_fsops_set(const fb_fsops *o)
{
	ops = o != NULL ? o : &real_ops;
}

ssize_t
fb_fs_pwrite(int fd, const void *buf, size_t n, off_t off)
{
	return (ops->pwrite != NULL ? ops->pwrite : real_ops.pwrite)(fd, buf, n, off);
}

int
fb_fs_fsync(int fd)
{
	return (ops->fsync != NULL ? ops->fsync : real_ops.fsync)(fd);
}

int
fb_fs_rename(const char *from, const char *to)
{
	return (ops->rename != NULL ? ops->rename : real_ops.rename)(from, to);
}

int
fb_fs_ftruncate(int fd, off_t len)
{
	return (ops->ftruncate != NULL ? ops->ftruncate : real_ops.ftruncate)(fd, len);
}

int
fb_fs_commit(void)
{
	return (ops->commit != NULL ? ops->commit : real_commit)();
}

ssize_t
fb_fs_pread(int fd, void *buf, size_t n, off_t off)
{
	return (ops->pread != NULL ? ops->pread : real_pread)(fd, buf, n, off);
}

int
fb_fs_punch(int fd, off_t off, off_t len)
{
	return (ops->punch != NULL ? ops->punch : real_punch)(fd, off, len);
}

int
fb_fs_zero(int fd, off_t off, off_t len)
{
	return (ops->zero != NULL ? ops->zero : real_zero)(fd, off, len);
}

int
fb_fs_open(const char *path, int flags, mode_t mode)
{
	return (ops->open != NULL ? ops->open : real_open)(path, flags, mode);
}

int
fb_fs_fsync_dir(const char *path)
{
	char        dir[4096];
	const char *slash = strrchr(path, '/');
	int         fd, rv;

	if (slash == NULL)
		snprintf(dir, sizeof(dir), ".");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path > 0 ? slash - path : 1), path);
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -1;
	rv = fb_fs_fsync(fd);
	close(fd);
	return rv;
}

void
fb_fs_start_writeback(int fd, off_t off, off_t len)
{
	(void)sync_file_range(fd, off, len, SYNC_FILE_RANGE_WRITE);
}
