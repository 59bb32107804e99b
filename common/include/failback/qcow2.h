/*
 * qcow2.h - a persistent dirty bitmap read straight from a qcow2 file
 * (QEMU's docs/interop/qcow2.txt, "Bitmaps extension"), without starting
 * a QEMU tool: the header, the external data file's name, the bitmap
 * directory, the bitmap table and its clusters, each checked against the
 * file's size and the format's limits before it is used.
 *
 * Only what a tracked disk needs is read; nothing is written. The file
 * may be open in a running QEMU: then the bitmap is flagged in use and
 * its stored content is not the truth, which the caller must check.
 */
#ifndef FAILBACK_QCOW2_H
#define FAILBACK_QCOW2_H

#include <stddef.h>
#include <stdint.h>

#define FB_QCOW2_IN_USE 1u /* the bitmap's writer has the image open, or died */
#define FB_QCOW2_AUTO   2u /* the bitmap records writes */

typedef struct fb_qcow2_bitmap {
	uint64_t size;           /* the image's virtual size */
	uint32_t nbitmaps;       /* how many bitmaps the image holds */
	char     data_file[4096]; /* its external data file, "" when none */
	uint32_t flags;          /* FB_QCOW2_IN_USE | FB_QCOW2_AUTO of the bitmap */
	uint64_t granularity;    /* bytes per bit */
	uint8_t *bits;           /* one byte per granule, 1 when dirty (fb_qcow2_read) */
	uint64_t nbits;
} fb_qcow2_bitmap;

/*
 * fb_qcow2_find reads the header and the directory entry of bitmap name:
 * 0 with *b filled (bits NULL), or -1 with why (not qcow2, corrupt, no
 * such bitmap, ...). fb_qcow2_read does the same and, when the image's
 * virtual size is size (nothing is allocated for any other), also reads
 * the bitmap's bits (b->bits, to be freed by the caller).
 */
int fb_qcow2_find(const char *path, const char *name, fb_qcow2_bitmap *b, char *why, size_t cap);
int fb_qcow2_read(const char *path, const char *name, uint64_t size, fb_qcow2_bitmap *b,
                  char *why, size_t cap);
/* fb_qcow2_read_fd: fb_qcow2_read of the open file fd, named label in why
 * (the fuzz target's entry). */
int fb_qcow2_read_fd(int fd, const char *label, const char *name, uint64_t size,
                     fb_qcow2_bitmap *b, char *why, size_t cap);

#endif
