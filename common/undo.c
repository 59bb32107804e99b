/*
 * undo.c - the undo log of undo.h. Record: 56-byte header (magic, disk,
 * flags, block, length, checksum of the header's fields and the data) +
 * data. The checksum finds a torn or damaged record, nothing more (the log
 * is this host's own file): "FBU2" records carry a CRC-32C in the first
 * four bytes of the 32-byte field, the rest zero. "FBU1" records (SHA-256,
 * written before) still replay, so a log a crash left across an upgrade
 * is rolled back whole. The CRC made a failback's apply faster: per 64 KiB
 * block its checksum costs a fifth of what SHA-256 did (crc32c.c).
 */
#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "failback/crc32c.h"
#include "failback/fsops.h"
#include "failback/hash.h"
#include "failback/undo.h"

#define U_MAGIC1 0x31554246u /* "FBU1": SHA-256 */
#define U_MAGIC  0x32554246u /* "FBU2": CRC-32C */
#define U_HDR    56u
#define U_ZERO   1u

#define KICK_BYTES (1 << 20)

struct fb_undo {
	int   fd;
	off_t end;
	off_t kicked; /* written back up to here (started) */
	char  path[4096];
};

struct hdr {
	uint32_t magic, disk, flags, len;
	uint64_t block;
	uint8_t  sum[32];
};

/* The record's checksum, by its magic's kind (out: 32 bytes). */
static void
u_sum(const struct hdr *h, const void *data, uint8_t *out)
{
	if (h->magic == U_MAGIC1) {
		EVP_MD_CTX  *c = EVP_MD_CTX_new();
		unsigned int n;

		EVP_DigestInit_ex(c, EVP_sha256(), NULL);
		EVP_DigestUpdate(c, h, offsetof(struct hdr, sum));
		if (data != NULL)
			EVP_DigestUpdate(c, data, h->len);
		EVP_DigestFinal_ex(c, out, &n);
		EVP_MD_CTX_free(c);
	} else {
		uint32_t crc = fb_crc32c(0, h, offsetof(struct hdr, sum));

		if (data != NULL)
			crc = fb_crc32c(crc, data, h->len);
		memset(out, 0, 32);
		memcpy(out, &crc, sizeof(crc));
	}
}

uint32_t
fb_undo_open(fb_undo **out, const char *path, fb_err *err)
{
	fb_undo    *u = calloc(1, sizeof(*u));
	struct stat st;

	if (u == NULL)
		return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
	snprintf(u->path, sizeof(u->path), "%s", path);
	if ((u->fd = fb_fs_open(path, O_RDWR | O_CREAT | O_NOFOLLOW, 0600)) < 0 ||
	    fstat(u->fd, &st) != 0) {
		uint32_t rv = fb_err_errno(err, errno, path);
		if (u->fd >= 0)
			close(u->fd);
		free(u);
		return rv;
	}
	u->end    = st.st_size;
	u->kicked = st.st_size & ~(off_t)4095;
	if (fb_fs_fsync_dir(path) != 0) {
		close(u->fd);
		free(u);
		return fb_err_errno(err, errno, "fsync undo directory");
	}
	*out = u;
	return FB_RV_OK;
}

uint32_t
fb_undo_append(fb_undo *u, uint32_t disk, uint64_t block, const void *data, uint32_t len,
               fb_err *err)
{
	struct hdr h;

	memset(&h, 0, sizeof(h));
	h.magic = U_MAGIC;
	h.disk  = disk;
	h.block = block;
	h.len   = len;
	if (data == NULL || fb_is_zero(data, len)) {
		h.flags = U_ZERO;
		data    = NULL;
	}
	u_sum(&h, data, h.sum);
	if (fb_fs_pwrite(u->fd, &h, U_HDR, u->end) < 0 ||
	    (data != NULL && fb_fs_pwrite(u->fd, data, len, u->end + U_HDR) < 0))
		return fb_err_errno(err, errno, u->path);
	u->end += U_HDR + (data != NULL ? len : 0);
	/* the disk starts on the log while more is read and appended: less
	 * left for fb_undo_sync (whole pages, a MiB at a time) */
	if ((u->end & ~(off_t)4095) - u->kicked >= KICK_BYTES) {
		fb_fs_start_writeback(u->fd, u->kicked, (u->end & ~(off_t)4095) - u->kicked);
		u->kicked = u->end & ~(off_t)4095;
	}
	return FB_RV_OK;
}

uint32_t
fb_undo_sync(fb_undo *u, fb_err *err)
{
	return fb_fs_fsync(u->fd) == 0 ? FB_RV_OK : fb_err_errno(err, errno, u->path);
}

void
fb_undo_close(fb_undo *u)
{
	if (u == NULL)
		return;
	close(u->fd);
	free(u);
}

uint32_t
fb_undo_replay(const char *path, fb_undo_apply_fn fn, void *arg, uint64_t *records, fb_err *err)
{
	int         fd = fb_fs_open(path, O_RDONLY | O_NOFOLLOW, 0);
	off_t      *offs = NULL;
	size_t      n = 0, cap = 0;
	off_t       pos = 0;
	uint8_t    *data = malloc(FB_BLOCK_SIZE);
	uint32_t    rv   = FB_RV_OK;
	struct stat st;

	if (records != NULL)
		*records = 0;
	if (fd < 0) {
		free(data);
		return errno == ENOENT ? FB_RV_OK : fb_err_errno(err, errno, path);
	}
	if (data == NULL || fstat(fd, &st) != 0) {
		rv = data == NULL ? fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory")
		                  : fb_err_errno(err, errno, path);
		goto out;
	}
	/* Index the intact records. A record that does not fit in the file or
	 * fails its checksum is the torn end; a read that fails is an error,
	 * never taken for the end (that would restore too little). */
	while (pos + (off_t)U_HDR <= st.st_size) {
		struct hdr h;
		uint8_t    sum[32];

		if (fb_fs_pread(fd, &h, U_HDR, pos) != U_HDR) {
			rv = fb_err_errno(err, errno, path);
			goto out;
		}
		if ((h.magic != U_MAGIC && h.magic != U_MAGIC1) || h.len > FB_BLOCK_SIZE)
			break;
		if (!(h.flags & U_ZERO)) {
			if (pos + (off_t)U_HDR + (off_t)h.len > st.st_size)
				break;
			if (fb_fs_pread(fd, data, h.len, pos + U_HDR) != (ssize_t)h.len) {
				rv = fb_err_errno(err, errno, path);
				goto out;
			}
		}
		u_sum(&h, (h.flags & U_ZERO) ? NULL : data, sum);
		if (memcmp(sum, h.sum, sizeof(sum)) != 0)
			break;
		if (n == cap) {
			off_t *g = realloc(offs, (cap = cap ? cap * 2 : 1024) * sizeof(*offs));
			if (g == NULL) {
				rv = fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
				goto out;
			}
			offs = g;
		}
		offs[n++] = pos;
		pos += U_HDR + ((h.flags & U_ZERO) ? 0 : h.len);
	}
	while (n > 0 && rv == FB_RV_OK) { /* newest first */
		struct hdr h;

		pos = offs[--n];
		if (fb_fs_pread(fd, &h, U_HDR, pos) != U_HDR ||
		    (!(h.flags & U_ZERO) && fb_fs_pread(fd, data, h.len, pos + U_HDR) != (ssize_t)h.len)) {
			rv = fb_err_errno(err, errno, path);
			break;
		}
		rv = fn(arg, h.disk, h.block, (h.flags & U_ZERO) ? NULL : data, h.len, err);
		if (rv == FB_RV_OK && records != NULL)
			(*records)++;
	}
out:
	free(offs);
	free(data);
	close(fd);
	return rv;
}

uint32_t
fb_undo_remove(const char *path, fb_err *err)
{
	if (unlink(path) != 0 && errno != ENOENT)
		return fb_err_errno(err, errno, path);
	if (fb_fs_fsync_dir(path) != 0 && errno != ENOENT)
		return fb_err_errno(err, errno, "fsync undo directory");
	return FB_RV_OK;
}
