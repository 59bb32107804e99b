/*
 * dev.c - disk images opened to be written (dev.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "failback/dev.h"
#include "failback/fsops.h"
#include "failback/image.h"

struct fb_dev {
	char      path[4096];
	int       fd; /* raw */
	fb_image *im; /* any other format */
};

int
fb_dev_raw(const char *format)
{
	return format == NULL || format[0] == '\0' || strcmp(format, "raw") == 0;
}

static uint32_t
dev_new(const char *path, fb_dev **out, fb_err *err)
{
	if ((*out = calloc(1, sizeof(**out))) == NULL)
		return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
	(*out)->fd = -1;
	snprintf((*out)->path, sizeof((*out)->path), "%s", path);
	return FB_RV_OK;
}

uint32_t
fb_dev_open(const char *path, const char *format, int lock_fd, fb_dev **out, fb_err *err)
{
	fb_dev  *d;
	uint32_t rv;

	*out = NULL;
	if ((rv = dev_new(path, &d, err)) != FB_RV_OK)
		return rv;
	if (fb_dev_raw(format)) {
		if ((d->fd = fb_fs_open(path, O_RDWR, 0)) < 0)
			rv = fb_err_errno(err, errno, path);
	} else {
		rv = fb_image_open_rw(path, format, lock_fd, &d->im, err);
	}
	if (rv != FB_RV_OK) {
		free(d);
		return rv;
	}
	*out = d;
	return FB_RV_OK;
}

uint32_t
fb_dev_create(const char *path, const char *format, uint64_t size, fb_dev **out, fb_err *err)
{
	fb_dev  *d;
	uint32_t rv;

	*out = NULL;
	if (!fb_dev_raw(format)) {
		if ((rv = fb_image_create(path, format, size, err)) != FB_RV_OK)
			return rv;
		return fb_dev_open(path, format, -1, out, err);
	}
	if ((rv = dev_new(path, &d, err)) != FB_RV_OK)
		return rv;
	if ((d->fd = fb_fs_open(path, O_RDWR | O_CREAT | O_TRUNC, 0600)) < 0 ||
	    fb_fs_ftruncate(d->fd, (off_t)size) != 0) {
		rv = fb_err_errno(err, errno, path);
		fb_dev_close(d);
		return rv;
	}
	*out = d;
	return FB_RV_OK;
}

void
fb_dev_prefetch(fb_dev *d, uint64_t off, uint32_t len)
{
	if (d->im == NULL && len > 0) /* 0 would be "to the end" */
		(void)posix_fadvise(d->fd, (off_t)off, (off_t)len, POSIX_FADV_WILLNEED);
}

uint32_t
fb_dev_read(fb_dev *d, void *buf, uint32_t len, uint64_t off, fb_err *err)
{
	uint64_t n = 0;

	if (d->im != NULL)
		return fb_image_read(d->im, buf, off, len, &n, err);
	if (fb_fs_pread(d->fd, buf, len, (off_t)off) != (ssize_t)len)
		return fb_err_set(err, FB_RV_FAILED, "%s: cannot read at byte %llu: %s", d->path,
		                  (unsigned long long)off, strerror(errno));
	return FB_RV_OK;
}

uint32_t
fb_dev_write(fb_dev *d, const void *buf, uint32_t len, uint64_t off, fb_err *err)
{
	if (d->im != NULL)
		return fb_image_write(d->im, buf, off, len, err);
	return fb_fs_pwrite(d->fd, buf, len, (off_t)off) < 0 ? fb_err_errno(err, errno, d->path)
	                                                     : FB_RV_OK;
}

uint32_t
fb_dev_zero(fb_dev *d, uint64_t off, uint32_t len, fb_err *err)
{
	if (d->im != NULL)
		return fb_image_zero(d->im, off, len, err);
	return fb_fs_zero(d->fd, (off_t)off, (off_t)len) != 0 ? fb_err_errno(err, errno, d->path)
	                                                     : FB_RV_OK;
}

void
fb_dev_start_flush(fb_dev *d)
{
	if (d->im == NULL)
		fb_fs_start_writeback(d->fd, 0, 0);
}

uint32_t
fb_dev_flush(fb_dev *d, fb_err *err)
{
	if (d->im != NULL)
		return fb_image_flush(d->im, err);
	return fb_fs_fsync(d->fd) != 0 ? fb_err_errno(err, errno, d->path) : FB_RV_OK;
}

int
fb_dev_server_pid(const fb_dev *d)
{
	return d->im != NULL ? fb_image_server_pid(d->im) : 0;
}

void
fb_dev_close(fb_dev *d)
{
	if (d == NULL)
		return;
	if (d->fd >= 0)
		close(d->fd);
	fb_image_close(d->im);
	free(d);
}
