/*
 * disk.h - hashing a raw disk image into its leaf list.
 *
 * The image is read in 2 MiB batches by a small pool made for the scan
 * (eight threads), each thread reading and hashing its own batch, so reads
 * overlap each other and the hashing; a raw image is read around the page
 * cache (O_DIRECT) where its file system allows. Holes of a sparse file
 * are found with SEEK_DATA/SEEK_HOLE and become zero blocks without being
 * read. Memory is the leaf list plus nine batches (18 MiB), whatever the
 * disk size.
 *
 * visit, if given, sees every block in order on the calling thread (with
 * its data, valid only during the call) so a caller can store new blocks
 * as the scan goes. A disk whose size changes during the scan is an error.
 */
#ifndef FAILBACK_DISK_H
#define FAILBACK_DISK_H

#include <stddef.h>
#include <stdint.h>

#include "failback/err.h"
#include "failback/hash.h"

typedef uint32_t (*fb_disk_visit)(void *arg, uint64_t index, const uint8_t *data, uint32_t len,
                                  const fb_hash *h, int zero, fb_err *err);

typedef struct fb_disk_scan {
	fb_hash *leaves;  /* malloc'd, nblocks entries; caller frees */
	uint64_t nblocks;
	uint64_t size;
	uint64_t bytes_read; /* bytes actually read (holes skipped) */
} fb_disk_scan;

/* fb_disk_hash scans path. Errors: not a regular file or unreadable
 * (Invalid parameter / File not found / Access Denied), empty disk,
 * size changed while hashing, read errors. */
uint32_t fb_disk_hash(const char *path, fb_disk_visit visit, void *arg, fb_disk_scan *out,
                      fb_err *err);
/* fb_disk_hash_format is fb_disk_hash of an image in format (image.h):
 * raw is read directly, any other through qemu-nbd (size: the virtual
 * size; bytes_read: what NBD read, holes and zero extents skipped). */
uint32_t fb_disk_hash_format(const char *path, const char *format, fb_disk_visit visit,
                             void *arg, fb_disk_scan *out, fb_err *err);

/* fb_disk_rehash reads blocks[0..n) of the image at path (size bytes) and
 * writes each block's hash into leaves[block]. The same pool reads them,
 * 32 blocks a batch, through the page cache (a failback's undo log reads
 * the same blocks next); visits come in the order given; errors name the
 * block. */
uint32_t fb_disk_rehash(const char *path, uint64_t size, const uint64_t *blocks, size_t n,
                        fb_hash *leaves, fb_err *err);
/* fb_disk_rehash_visit is fb_disk_rehash that also shows each block it
 * reads to visit (as fb_disk_hash does; zero: the block is all zeros). */
uint32_t fb_disk_rehash_visit(const char *path, uint64_t size, const uint64_t *blocks, size_t n,
                              fb_hash *leaves, fb_disk_visit visit, void *arg, fb_err *err);
/* fb_disk_rehash_marked is fb_disk_rehash_visit of the blocks b < nblocks
 * whose marks[b] is set, in order, of an image in format (NULL or raw:
 * read directly; any other through qemu-nbd, image.h); *n says how many
 * there were. */
uint32_t fb_disk_rehash_marked(const char *path, const char *format, uint64_t size,
                               const uint8_t *marks, uint64_t nblocks, fb_hash *leaves,
                               fb_disk_visit visit, void *arg, uint64_t *n, fb_err *err);

#endif
