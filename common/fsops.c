/*
 * fsops.c - the real disk operations and the switchable table (fsops.h).
 */
#include <errno.h>
#include <fcntl.h>
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

static const fb_fsops real_ops = {real_pwrite, fsync, rename, ftruncate, real_commit};
static const fb_fsops *ops     = &real_ops;

void
fb_fsops_set(const fb_fsops *o)
{
	ops = o != NULL ? o : &real_ops;
}

ssize_t
fb_fs_pwrite(int fd, const void *buf, size_t n, off_t off)
{
	return ops->pwrite(fd, buf, n, off);
}

int
fb_fs_fsync(int fd)
{
	return ops->fsync(fd);
}

int
fb_fs_rename(const char *from, const char *to)
{
	return ops->rename(from, to);
}

int
fb_fs_ftruncate(int fd, off_t len)
{
	return ops->ftruncate(fd, len);
}

int
fb_fs_commit(void)
{
	return ops->commit();
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
	rv = ops->fsync(fd);
	close(fd);
	return rv;
}
