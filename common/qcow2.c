/*
 * qcow2.c - a persistent dirty bitmap read straight from a qcow2 file
 * (qcow2.h). Everything the file says is checked before it is used: the
 * file is trusted no more than any other input.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "failback/qcow2.h"

#define MAGIC          0x514649fbu /* "QFI\xfb" */
#define EXT_END        0x00000000u
#define EXT_BITMAPS    0x23852875u
#define EXT_DATA_FILE  0x44415441u
#define INCOMPAT_KNOWN 0x1full /* dirty, corrupt, data file, compression, extended L2 */
#define INCOMPAT_CORRUPT 2ull
#define AUTOCLEAR_BITMAPS 1ull
#define DIR_MAX        (64u << 20) /* QEMU's own limit on the directory */
#define TABLE_MAX      0x8000000u  /* entries: QEMU's limit */
#define ENTRY_RESERVED 0xff000000000001feull
#define ENTRY_OFFSET   0x00fffffffffffe00ull
#define FLAGS_KNOWN    7u

struct file {
	int      fd;
	uint64_t len;
};

static uint32_t
be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t
be64(const uint8_t *p)
{
	return (uint64_t)be32(p) << 32 | be32(p + 4);
}

/* Reads [off, off+len) of the file, all of it inside the file: 0 or -1. */
static int
get(const struct file *f, void *buf, uint64_t off, size_t len)
{
	size_t got = 0;

	if (off > f->len || len > f->len - off)
		return -1;
	while (got < len) {
		ssize_t n = pread(f->fd, (uint8_t *)buf + got, len - got, (off_t)(off + got));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	return 0;
}

static int say(char *why, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Describes what is wrong into why: -1. */
static int
say(char *why, size_t cap, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, cap, fmt, ap);
	va_end(ap);
	return -1;
}

#define WHY(...) say(why, cap, __VA_ARGS__)

struct image {
	struct file f;
	uint64_t    cluster;
	uint64_t    dir_off, dir_size;
	uint32_t    nb_bitmaps;
	int         has_bitmaps;
};

/* The header and its extensions. */
static int
head(struct image *im, fb_qcow2_bitmap *b, const char *path, char *why, size_t cap)
{
	uint8_t  h[112], ext[8];
	uint32_t version, hlen, cbits;
	uint64_t incompat, autoclear, off;

	if (get(&im->f, h, 0, 72) != 0 || be32(h) != MAGIC)
		return WHY("%s is not a qcow2 image", path);
	version = be32(h + 4);
	cbits   = be32(h + 20);
	if (version != 2 && version != 3)
		return WHY("%s: qcow2 version %u", path, version);
	if (cbits < 9 || cbits > 21)
		return WHY("%s: cluster_bits %u is out of range", path, cbits);
	im->cluster = 1ull << cbits;
	b->size     = be64(h + 24);
	if (version == 2) {
		hlen = 72;
		incompat = autoclear = 0;
	} else {
		if (get(&im->f, h, 0, 104) != 0)
			return WHY("%s: short qcow2 header", path);
		incompat  = be64(h + 72);
		autoclear = be64(h + 88);
		hlen      = be32(h + 100);
		if (hlen < 104 || hlen % 8 != 0 || hlen > im->cluster)
			return WHY("%s: header_length %u is invalid", path, hlen);
	}
	if (incompat & ~INCOMPAT_KNOWN)
		return WHY("%s: unknown incompatible qcow2 features %#llx", path,
		           (unsigned long long)incompat);
	if (incompat & INCOMPAT_CORRUPT)
		return WHY("%s is marked corrupt", path);
	/* the extensions, up to the end of the first cluster */
	for (off = hlen;;) {
		uint32_t type, len;

		if (off + 8 > im->cluster || get(&im->f, ext, off, 8) != 0)
			return WHY("%s: header extensions run past the first cluster", path);
		type = be32(ext);
		len  = be32(ext + 4);
		off += 8;
		if (type == EXT_END)
			break;
		if (len > im->cluster - off)
			return WHY("%s: header extension %#x runs past the first cluster", path, type);
		if (type == EXT_DATA_FILE) {
			if (len >= sizeof(b->data_file) || get(&im->f, b->data_file, off, len) != 0)
				return WHY("%s: unreadable data file name", path);
			b->data_file[len] = '\0';
			if (strlen(b->data_file) != len)
				return WHY("%s: data file name holds a NUL byte", path);
		} else if (type == EXT_BITMAPS) {
			uint8_t e[24];

			if (len < 24 || get(&im->f, e, off, 24) != 0)
				return WHY("%s: short bitmaps extension", path);
			im->nb_bitmaps  = be32(e);
			im->dir_size    = be64(e + 8);
			im->dir_off     = be64(e + 16);
			im->has_bitmaps = 1;
			b->nbitmaps     = im->nb_bitmaps;
		}
		off += (len + 7u) & ~7u;
	}
	if (im->has_bitmaps && !(autoclear & AUTOCLEAR_BITMAPS))
		return WHY("%s: its bitmaps were left inconsistent (opened by software that does "
		           "not know them)", path);
	return 0;
}

/* Finds bitmap name in the directory: its table's offset and size. */
static int
entry(struct image *im, fb_qcow2_bitmap *b, const char *path, const char *name,
      uint64_t *table_off, uint32_t *table_size, char *why, size_t cap)
{
	size_t   nlen = strlen(name);
	uint8_t *dir;
	uint64_t p = 0;
	int      rv = -1;

	if (!im->has_bitmaps)
		return WHY("%s has no bitmap %s (no bitmaps at all)", path, name);
	if (im->nb_bitmaps == 0 || im->nb_bitmaps > 65535 || im->dir_size < 24 ||
	    im->dir_size > DIR_MAX || im->dir_off % im->cluster != 0)
		return WHY("%s: invalid bitmap directory", path);
	if ((dir = malloc(im->dir_size)) == NULL)
		return WHY("out of memory for the bitmap directory of %s", path);
	if (get(&im->f, dir, im->dir_off, im->dir_size) != 0) {
		free(dir);
		return WHY("%s: the bitmap directory lies outside the file", path);
	}
	for (uint32_t i = 0; i < im->nb_bitmaps; i++) {
		uint32_t flags, xlen;
		uint16_t nsz;
		uint64_t elen;

		if (im->dir_size - p < 24) {
			WHY("%s: bitmap directory entry %u is cut short", path, i);
			goto out;
		}
		flags = be32(dir + p + 12);
		nsz   = (uint16_t)(dir[p + 18] << 8 | dir[p + 19]);
		xlen  = be32(dir + p + 20);
		elen  = 24ull + xlen + nsz;
		if (nsz == 0 || elen > im->dir_size - p) {
			WHY("%s: bitmap directory entry %u is malformed", path, i);
			goto out;
		}
		if (nsz == nlen && memcmp(dir + p + 24 + xlen, name, nlen) == 0) {
			if (flags & ~FLAGS_KNOWN) {
				WHY("bitmap %s of %s has unknown flags %#x", name, path, flags);
				goto out;
			}
			if (dir[p + 16] != 1) {
				WHY("bitmap %s of %s is not a dirty tracking bitmap", name, path);
				goto out;
			}
			if (xlen != 0 && !(flags & 4u)) {
				WHY("bitmap %s of %s carries extra data this reader does not know", name,
				    path);
				goto out;
			}
			if (dir[p + 17] < 9 || dir[p + 17] > 31) {
				WHY("bitmap %s of %s: granularity_bits %u", name, path, dir[p + 17]);
				goto out;
			}
			b->flags       = flags & (FB_QCOW2_IN_USE | FB_QCOW2_AUTO);
			b->granularity = 1ull << dir[p + 17];
			*table_off     = be64(dir + p);
			*table_size    = be32(dir + p + 8);
			rv             = 0;
			goto out;
		}
		p += (elen + 7u) & ~7ull;
		if (p > im->dir_size) {
			WHY("%s: bitmap directory entry %u runs past the directory", path, i);
			goto out;
		}
	}
	WHY("%s has no bitmap %s", path, name);
out:
	free(dir);
	return rv;
}

/* Reads the bitmap's clusters into b->bits, one byte per granule. */
static int
bits(struct image *im, fb_qcow2_bitmap *b, const char *path, const char *name,
     uint64_t table_off, uint32_t table_size, char *why, size_t cap)
{
	uint64_t nbits = b->size / b->granularity + (b->size % b->granularity != 0);
	uint64_t per   = im->cluster * 8; /* bits per cluster */
	uint64_t want  = (nbits + per - 1) / per;
	uint8_t *table = NULL, *cl = NULL;
	int      rv    = -1;

	if (nbits > (1ull << 32)) /* 256 TiB at 64 KiB a bit */
		return WHY("bitmap %s of %s: %llu bits is more than this reader takes", name, path,
		           (unsigned long long)nbits);
	if (table_size != want || table_size > TABLE_MAX || table_off % im->cluster != 0)
		return WHY("bitmap %s of %s: its table has %u entries, %llu expected", name, path,
		           table_size, (unsigned long long)want);
	if ((b->bits = calloc(nbits + 1, 1)) == NULL ||
	    (table = malloc((size_t)table_size * 8 + 1)) == NULL ||
	    (cl = malloc(im->cluster)) == NULL) {
		WHY("out of memory for bitmap %s of %s", name, path);
		goto out;
	}
	b->nbits = nbits;
	if (get(&im->f, table, table_off, (size_t)table_size * 8) != 0) {
		WHY("bitmap %s of %s: its table lies outside the file", name, path);
		goto out;
	}
	for (uint32_t t = 0; t < table_size; t++) {
		uint64_t e     = be64(table + (size_t)t * 8);
		uint64_t first = t * per, n = nbits - first < per ? nbits - first : per;

		if ((e & ENTRY_RESERVED) != 0 || ((e & ENTRY_OFFSET) != 0 && (e & 1)) ||
		    (e & ENTRY_OFFSET) % im->cluster != 0) {
			WHY("bitmap %s of %s: table entry %u is invalid", name, path, t);
			goto out;
		}
		if ((e & ENTRY_OFFSET) == 0) {
			memset(b->bits + first, e & 1, n);
			continue;
		}
		if (get(&im->f, cl, e & ENTRY_OFFSET, (size_t)((n + 7) / 8)) != 0) {
			WHY("bitmap %s of %s: cluster %u lies outside the file", name, path, t);
			goto out;
		}
		for (uint64_t i = 0; i < n; i++)
			b->bits[first + i] = (uint8_t)(cl[i / 8] >> (i % 8) & 1);
	}
	rv = 0;
out:
	free(table);
	free(cl);
	if (rv != 0) {
		free(b->bits);
		b->bits  = NULL;
		b->nbits = 0;
	}
	return rv;
}

/* read_bits: 0, or read the bits when the virtual size is size */
static int
qcow2_bitmap(int fd, const char *path, const char *name, int read_bits, uint64_t size,
             fb_qcow2_bitmap *b, char *why, size_t cap)
{
	struct image im;
	struct stat  st;
	uint64_t     toff = 0;
	uint32_t     tsize = 0;
	int          rv;

	memset(b, 0, sizeof(*b));
	memset(&im, 0, sizeof(im));
	im.f.fd = fd;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
		return WHY("%s is not a regular file", path);
	im.f.len = (uint64_t)st.st_size;
	rv       = head(&im, b, path, why, cap);
	if (rv == 0)
		rv = entry(&im, b, path, name, &toff, &tsize, why, cap);
	if (rv == 0 && read_bits && b->size != size)
		rv = WHY("%s is %llu bytes, not %llu", path, (unsigned long long)b->size,
		         (unsigned long long)size);
	if (rv == 0 && read_bits)
		rv = bits(&im, b, path, name, toff, tsize, why, cap);
	return rv;
}

static int
qcow2_open(const char *path, const char *name, int read_bits, uint64_t size, fb_qcow2_bitmap *b,
           char *why, size_t cap)
{
	int fd, rv;

	memset(b, 0, sizeof(*b));
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return WHY("%s: %s", path, strerror(errno));
	rv = qcow2_bitmap(fd, path, name, read_bits, size, b, why, cap);
	close(fd);
	return rv;
}

int
fb_qcow2_find(const char *path, const char *name, fb_qcow2_bitmap *b, char *why, size_t cap)
{
	return qcow2_open(path, name, 0, 0, b, why, cap);
}

int
fb_qcow2_read(const char *path, const char *name, uint64_t size, fb_qcow2_bitmap *b, char *why,
              size_t cap)
{
	return qcow2_open(path, name, 1, size, b, why, cap);
}

int
fb_qcow2_read_fd(int fd, const char *label, const char *name, uint64_t size, fb_qcow2_bitmap *b,
                 char *why, size_t cap)
{
	return qcow2_bitmap(fd, label, name, 1, size, b, why, cap);
}
