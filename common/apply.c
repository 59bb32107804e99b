/*
 * apply.c - undo-protected writes into disk images and their rollback
 * (apply.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "failback/apply.h"
#include "failback/dev.h"
#include "failback/fsops.h"
#include "failback/undo.h"

struct fb_apply {
	fb_undo      *undo;
	struct disks *dk;
	uint8_t      *old;
};

/* The images written, each opened on first use. */
struct disks {
	size_t    n;
	char    **paths, **formats;
	uint64_t *sizes;
	int      *locks;
	fb_dev  **devs;
};

static void
disks_free(struct disks *dk)
{
	if (dk == NULL)
		return;
	for (size_t i = 0; i < dk->n; i++) {
		if (dk->devs != NULL)
			fb_dev_close(dk->devs[i]);
		if (dk->paths != NULL)
			free(dk->paths[i]);
		if (dk->formats != NULL)
			free(dk->formats[i]);
	}
	free(dk->paths);
	free(dk->formats);
	free(dk->sizes);
	free(dk->locks);
	free(dk->devs);
	free(dk);
}

/* Copies the disks' paths, sizes and formats; none opened. */
static uint32_t
disks_copy(const fb_apply_disk *disks, size_t n, struct disks **out, fb_err *err)
{
	struct disks *dk = calloc(1, sizeof(*dk));

	if (dk == NULL)
		return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
	dk->n       = n;
	dk->paths   = calloc(n + 1, sizeof(char *));
	dk->formats = calloc(n + 1, sizeof(char *));
	dk->sizes   = calloc(n + 1, sizeof(uint64_t));
	dk->locks   = calloc(n + 1, sizeof(int));
	dk->devs    = calloc(n + 1, sizeof(fb_dev *));
	if (dk->paths == NULL || dk->formats == NULL || dk->sizes == NULL || dk->locks == NULL ||
	    dk->devs == NULL)
		goto oom;
	for (size_t i = 0; i < n; i++) {
		if (disks[i].path != NULL && (dk->paths[i] = strdup(disks[i].path)) == NULL)
			goto oom;
		if ((dk->formats[i] = strdup(disks[i].format != NULL ? disks[i].format : "")) == NULL)
			goto oom;
		dk->sizes[i] = disks[i].size;
		dk->locks[i] = disks[i].lock_fd;
	}
	*out = dk;
	return FB_RV_OK;
oom:
	disks_free(dk);
	return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
}

static fb_dev *
disks_dev(struct disks *dk, uint32_t d, fb_err *err)
{
	if (d >= dk->n || dk->paths[d] == NULL) {
		fb_err_set(err, FB_RV_FAILED, "no disk %u to write", d);
		return NULL;
	}
	if (dk->devs[d] == NULL &&
	    fb_dev_open(dk->paths[d], dk->formats[d], dk->locks[d], &dk->devs[d], err) != FB_RV_OK)
		dk->devs[d] = NULL;
	return dk->devs[d];
}

uint32_t
fb_apply_open(fb_apply **out, const char *undo_path, const fb_apply_disk *disks, size_t ndisks,
              fb_err *err)
{
	fb_apply *a;
	char      dir[4096];
	int       n;
	uint32_t  rv;

	*out = NULL;
	n    = snprintf(dir, sizeof(dir), "%s", undo_path);
	if (n < 0 || (size_t)n >= sizeof(dir))
		return fb_err_set(err, FB_RV_INVALID_PARAMETER, "undo log path too long");
	if (strrchr(dir, '/') != NULL) {
		*strrchr(dir, '/') = '\0';
		if (dir[0] != '\0' && mkdir(dir, 0700) != 0 && errno != EEXIST)
			return fb_err_errno(err, errno, dir);
	}
	if ((a = calloc(1, sizeof(*a))) == NULL || (a->old = malloc(FB_BLOCK_SIZE)) == NULL) {
		free(a);
		return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
	}
	if ((rv = disks_copy(disks, ndisks, &a->dk, err)) != FB_RV_OK ||
	    (rv = fb_undo_open(&a->undo, undo_path, err)) != FB_RV_OK) {
		fb_apply_close(a);
		return rv;
	}
	*out = a;
	return FB_RV_OK;
}

void
fb_apply_close(fb_apply *a)
{
	if (a == NULL)
		return;
	fb_undo_close(a->undo);
	disks_free(a->dk);
	free(a->old);
	free(a);
}

uint32_t
fb_apply_blocks(fb_apply *a, uint32_t d, const uint64_t *blocks, const uint8_t *zero,
                const uint8_t *data, size_t n, fb_err *err)
{
	fb_dev  *dev = disks_dev(a->dk, d, err);
	uint32_t rv;

	if (dev == NULL)
		return err->rv;
	/* 1. the old content, durable before anything is overwritten; asked
	 * for all at once (after a scan that read around the page cache, or
	 * none, the blocks are on the disk only) */
	for (size_t i = 0; i < n; i++)
		if (fb_block_len(a->dk->sizes[d], blocks[i]) > 0)
			fb_dev_prefetch(dev, blocks[i] * FB_BLOCK_SIZE,
			                fb_block_len(a->dk->sizes[d], blocks[i]));
	for (size_t i = 0; i < n; i++) {
		uint32_t len = fb_block_len(a->dk->sizes[d], blocks[i]);

		if (len == 0)
			return fb_err_set(err, FB_RV_FAILED, "%s has no block %llu", a->dk->paths[d],
			                  (unsigned long long)blocks[i]);
		if ((rv = fb_dev_read(dev, a->old, len, blocks[i] * FB_BLOCK_SIZE, err)) != FB_RV_OK ||
		    (rv = fb_undo_append(a->undo, d, blocks[i], a->old, len, err)) != FB_RV_OK)
			return rv;
	}
	if ((rv = fb_undo_sync(a->undo, err)) != FB_RV_OK)
		return rv;
	/* 2. the new content */
	for (size_t i = 0; i < n; i++) {
		uint32_t len = fb_block_len(a->dk->sizes[d], blocks[i]);
		uint64_t off = blocks[i] * FB_BLOCK_SIZE;

		if ((rv = zero[i] ? fb_dev_zero(dev, off, len, err)
		                  : fb_dev_write(dev, data + i * FB_BLOCK_SIZE, len, off, err)) !=
		    FB_RV_OK)
			return rv;
	}
	fb_dev_start_flush(dev);
	return FB_RV_OK;
}

uint32_t
fb_apply_sync(fb_apply *a, uint32_t d, fb_err *err)
{
	fb_dev *dev = disks_dev(a->dk, d, err);

	return dev == NULL ? err->rv : fb_dev_flush(dev, err);
}

static uint32_t
rollback_block(void *arg, uint32_t disk, uint64_t block, const void *data, uint32_t len,
               fb_err *err)
{
	struct disks *dk = arg;
	fb_dev       *dev;

	if (disk >= dk->n || dk->paths[disk] == NULL)
		return fb_err_set(err, FB_RV_FAILED, "undo record for unknown disk %u", disk);
	if (len != fb_block_len(dk->sizes[disk], block))
		return fb_err_set(err, FB_RV_FAILED, "undo record for block %llu of %s does not fit it",
		                  (unsigned long long)block, dk->paths[disk]);
	if ((dev = disks_dev(dk, disk, err)) == NULL)
		return err->rv;
	return data == NULL ? fb_dev_zero(dev, block * FB_BLOCK_SIZE, len, err)
	                    : fb_dev_write(dev, data, len, block * FB_BLOCK_SIZE, err);
}

uint32_t
fb_apply_rollback(const char *undo_path, const fb_apply_disk *disks, size_t ndisks,
                  uint64_t *records, fb_err *err)
{
	struct disks *dk;
	uint32_t      rv;

	if ((rv = disks_copy(disks, ndisks, &dk, err)) != FB_RV_OK)
		return rv;
	rv = fb_undo_replay(undo_path, rollback_block, dk, records, err);
	for (size_t i = 0; i < ndisks && rv == FB_RV_OK; i++)
		if (dk->devs[i] != NULL)
			rv = fb_dev_flush(dk->devs[i], err);
	disks_free(dk);
	/* Only a complete, durable rollback may forget the old content. */
	if (rv == FB_RV_OK)
		rv = fb_undo_remove(undo_path, err);
	return rv;
}

/* "<undo_path>.done": a forgotten log, until fb_apply_discard. */
static int
done_path(const char *undo_path, char *out, size_t cap)
{
	int n = snprintf(out, cap, "%s.done", undo_path);

	return n < 0 || (size_t)n >= cap ? -1 : 0;
}

uint32_t
fb_apply_forget(const char *undo_path, fb_err *err)
{
	char done[4200];

	if (done_path(undo_path, done, sizeof(done)) != 0)
		return fb_err_set(err, FB_RV_INVALID_PARAMETER, "undo log path too long");
	if (fb_fs_rename(undo_path, done) != 0) {
		if (errno != ENOENT)
			return fb_err_errno(err, errno, undo_path);
		return FB_RV_OK; /* nothing written, or forgotten already */
	}
	if (fb_fs_fsync_dir(undo_path) != 0)
		return fb_err_errno(err, errno, "fsync undo directory");
	return FB_RV_OK;
}

void
fb_apply_discard(const char *undo_path)
{
	char done[4200];

	if (done_path(undo_path, done, sizeof(done)) == 0)
		(void)unlink(done);
}
