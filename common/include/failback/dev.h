/*
 * dev.h - a disk image opened to be written, whatever its format: a raw
 * image through its file descriptor (fsops.h, so tests can fail any call),
 * any other format through a read-write qemu-nbd and libnbd (image.h).
 * Writers (an apply, its rollback, a failover's materialisation) see one
 * interface; what is durable is what came before a successful flush.
 */
#ifndef FAILBACK_DEV_H
#define FAILBACK_DEV_H

#include <stdint.h>

#include "failback/err.h"

typedef struct fb_dev fb_dev;

/* fb_dev_open opens the existing image at path in format (NULL or "" =
 * raw). lock_fd (-1: none) holds the image's lock (image.h), which a
 * qemu-nbd behind the device inherits. Errors name the file and format. */
uint32_t fb_dev_open(const char *path, const char *format, int lock_fd, fb_dev **out,
                     fb_err *err);
/* fb_dev_create makes a new, empty image of size bytes at path (a raw file
 * stays sparse; other formats are made by qemu-img) and opens it. */
uint32_t fb_dev_create(const char *path, const char *format, uint64_t size, fb_dev **out,
                       fb_err *err);
/* fb_dev_prefetch asks for len bytes at off to be read in the background
 * (a raw file: POSIX_FADV_WILLNEED; a no-op through NBD): reads of
 * scattered blocks asked for together are served together. */
void     fb_dev_prefetch(fb_dev *d, uint64_t off, uint32_t len);
/* Exactly len bytes at off, or an error naming the image and the offset. */
uint32_t fb_dev_read(fb_dev *d, void *buf, uint32_t len, uint64_t off, fb_err *err);
uint32_t fb_dev_write(fb_dev *d, const void *buf, uint32_t len, uint64_t off, fb_err *err);
/* The range reads as zeros afterwards (a raw file's unwritten extents,
 * fb_fs_zero; unallocated clusters through NBD). */
uint32_t fb_dev_zero(fb_dev *d, uint64_t off, uint32_t len, fb_err *err);
uint32_t fb_dev_flush(fb_dev *d, fb_err *err);
/* fb_dev_start_flush starts writing what was written to the disk and
 * returns without waiting (a raw file; a no-op through NBD): the
 * fb_dev_flush that follows has less to do. */
void fb_dev_start_flush(fb_dev *d);
/* fb_dev_server_pid: the qemu-nbd behind d, 0 for a raw image. */
int  fb_dev_server_pid(const fb_dev *d);
void fb_dev_close(fb_dev *d);

/* fb_dev_raw: format names a raw image (NULL, "" or "raw"). */
int fb_dev_raw(const char *format);

#endif
