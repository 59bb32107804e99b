/*
 * image.h - disk images in the formats QEMU reads, and QEMU's tools.
 *
 * A raw image is read directly (disk.c). Any other format (qcow2, vhdx,
 * vmdk, vpc) is read through qemu-nbd, read-only, on a Unix socket in a
 * private directory, with libnbd: base:allocation says which extents are
 * holes or zeros, and those are zero-filled without being read. The format
 * is always given, never guessed from the file's contents (a raw guest can
 * write any header). qemu-nbd is this process's child (it dies with the
 * thread that started it); one that exits or answers nothing for
 * FB_IMAGE_IO_MS is killed and started again, up to FB_IMAGE_RESTARTS
 * times per read (FB1030); one killed by a signal while it starts (it has
 * served nothing, read-only or not) is started again up to as many times.
 * Errors name the file and the format.
 *
 * Tools: qemu-img and qemu-nbd (qemu-utils), found on PATH.
 */
#ifndef FAILBACK_IMAGE_H
#define FAILBACK_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "failback/err.h"

#define FB_IMAGE_FORMAT_MAX 8
#define FB_IMAGE_IO_MS      30000
#define FB_IMAGE_RESTARTS   3

/* fb_tool_run runs argv (argv[0] found on PATH) for at most timeout_ms,
 * its stdout and stderr into out (NUL-terminated). Its exit status, or -1
 * with err set (not run, or killed at the deadline). */
int fb_tool_run(const char *const *argv, char *out, size_t cap, unsigned timeout_ms,
                fb_err *err);

struct nbd_handle;

/* An NBD server can hang (a qemu-nbd stuck on its image): nothing waits on
 * one without a deadline. fb_nbd_connect_unix connects h to the server at
 * sock; fb_nbd_wait waits for the asynchronous command cookie (< 0: its
 * submission failed). Both: 0 done, -1 failed, -2 no answer within ms. */
int fb_nbd_connect_unix(struct nbd_handle *h, const char *sock, unsigned ms);
int fb_nbd_wait(struct nbd_handle *h, int64_t cookie, unsigned ms);

/* fb_qemu_opt appends value to out (of cap bytes, NUL-terminated, holding
 * *len) as a QEMU option value: a comma is doubled, so a path with commas
 * stays one value. 0, or -1 when it does not fit. */
int fb_qemu_opt(char *out, size_t cap, size_t *len, const char *value);

/* fb_json_key finds "key": in JSON text from p on; the value's start. */
const char *fb_json_key(const char *p, const char *key);

/* fb_image_format_ok: raw, qcow2, vhdx, vmdk or vpc. */
int fb_image_format_ok(const char *format);

/* fb_image_probe checks that path is an image of format (qemu-img info,
 * which also reads a running VM's image) and gives its virtual size.
 * Invalid parameter naming the file and format when it is not one. */
uint32_t fb_image_probe(const char *path, const char *format, uint64_t *size, fb_err *err);

typedef struct fb_image fb_image;

/* fb_image_open serves path (format, not raw) with qemu-nbd and connects. */
uint32_t fb_image_open(const char *path, const char *format, fb_image **out, fb_err *err);
uint64_t fb_image_size(const fb_image *im);
/* fb_image_read reads [off, off+len) into buf; holes and zero extents are
 * zero-filled without being read; what was read is added to *bytes_read. */
uint32_t fb_image_read(fb_image *im, uint8_t *buf, uint64_t off, uint64_t len,
                       uint64_t *bytes_read, fb_err *err);
/* fb_image_open_rw serves path read-write (format, not raw): for a writer
 * that flushes what must be durable. lock_fd (-1: none) is an open file
 * holding the image's lock (fb_image_lock): the server inherits it, so the
 * lock lasts until the server is gone too, and no writer that comes after
 * can meet a dying one. A server that dies or hangs under a writer is not
 * restarted (what it acknowledged since the last flush may be lost):
 * every later call fails, and fb_image_writes_lost says so. */
uint32_t fb_image_open_rw(const char *path, const char *format, int lock_fd, fb_image **out,
                          fb_err *err);
/* fb_image_lock takes the lock a hypervisor honours on an image (an open
 * file description write lock over the whole file, the kind QEMU takes),
 * waiting up to wait_ms for a holder to let go (a writer killed a moment
 * ago). *fd_out holds it until closed. System in use when it stays held. */
uint32_t fb_image_lock(const char *path, unsigned wait_ms, int *fd_out, fb_err *err);
/* fb_image_write writes [off, off+len); fb_image_zero makes the range read
 * as zeros (unallocated where the format can); fb_image_flush makes what
 * was written durable. Errors name the file, the format and the offset. */
uint32_t fb_image_write(fb_image *im, const void *buf, uint64_t off, uint64_t len, fb_err *err);
uint32_t fb_image_zero(fb_image *im, uint64_t off, uint64_t len, fb_err *err);
uint32_t fb_image_flush(fb_image *im, fb_err *err);
/* fb_image_writes_lost: a read-write server died in this process. */
int      fb_image_writes_lost(void);
/* fb_image_create makes an empty image of format (not raw) and size at
 * path with qemu-img, replacing nothing the caller did not mean to. */
uint32_t fb_image_create(const char *path, const char *format, uint64_t size, fb_err *err);

/* fb_image_server_pid: the qemu-nbd serving im now (for tests and logs). */
int fb_image_server_pid(const fb_image *im);
void fb_image_close(fb_image *im);

#endif
