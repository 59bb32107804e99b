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
#include "failback/fsops.h"
#include "failback/undo.h"

struct fb_apply {
	fb_undo  *undo;
	size_t    ndisks;
	char    **paths;
	uint64_t *sizes;
	int      *fds;
	uint8_t  *old;
};

static void
apply_free_disks(char **paths, int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (fds != NULL && fds[i] >= 0)
			close(fds[i]);
		if (paths != NULL)
			free(paths[i]);
	}
	free(paths);
	free(fds);
}

/* Copies the disks' paths and sizes; fds all -1. */
static uint32_t
apply_copy_disks(const fb_apply_disk *disks, size_t n, char ***paths, uint64_t **sizes, int **fds,
                 fb_err *err)
{
	*paths = calloc(n + 1, sizeof(char *));
	*sizes = calloc(n + 1, sizeof(uint64_t));
	*fds   = calloc(n + 1, sizeof(int));
	if (*paths == NULL || *sizes == NULL || *fds == NULL)
		goto oom;
	for (size_t i = 0; i < n; i++)
		(*fds)[i] = -1;
	for (size_t i = 0; i < n; i++) {
		if (disks[i].path != NULL && ((*paths)[i] = strdup(disks[i].path)) == NULL)
			goto oom;
		(*sizes)[i] = disks[i].size;
	}
	return FB_RV_OK;
oom:
	apply_free_disks(*paths, *fds, n);
	free(*sizes);
	*paths = NULL;
	*sizes = NULL;
	*fds   = NULL;
	return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
}

static int
apply_fd(char **paths, int *fds, size_t n, uint32_t d, fb_err *err)
{
	if (d >= n || paths[d] == NULL) {
		fb_err_set(err, FB_RV_FAILED, "no disk %u to write", d);
		return -1;
	}
	if (fds[d] < 0 && (fds[d] = fb_fs_open(paths[d], O_RDWR, 0)) < 0)
		fb_err_errno(err, errno, paths[d]);
	return fds[d];
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
	a->ndisks = ndisks;
	if ((rv = apply_copy_disks(disks, ndisks, &a->paths, &a->sizes, &a->fds, err)) != FB_RV_OK ||
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
	apply_free_disks(a->paths, a->fds, a->ndisks);
	free(a->sizes);
	free(a->old);
	free(a);
}

uint32_t
fb_apply_blocks(fb_apply *a, uint32_t d, const uint64_t *blocks, const uint8_t *zero,
                const uint8_t *data, size_t n, fb_err *err)
{
	int      fd = apply_fd(a->paths, a->fds, a->ndisks, d, err);
	uint32_t rv;

	if (fd < 0)
		return err->rv;
	/* 1. the old content, durable before anything is overwritten */
	for (size_t i = 0; i < n; i++) {
		uint32_t len = fb_block_len(a->sizes[d], blocks[i]);

		if (len == 0)
			return fb_err_set(err, FB_RV_FAILED, "%s has no block %llu", a->paths[d],
			                  (unsigned long long)blocks[i]);
		if (fb_fs_pread(fd, a->old, len, (off_t)(blocks[i] * FB_BLOCK_SIZE)) != (ssize_t)len)
			return fb_err_set(err, FB_RV_FAILED, "%s: cannot read block %llu: %s",
			                  a->paths[d], (unsigned long long)blocks[i], strerror(errno));
		if ((rv = fb_undo_append(a->undo, d, blocks[i], a->old, len, err)) != FB_RV_OK)
			return rv;
	}
	if ((rv = fb_undo_sync(a->undo, err)) != FB_RV_OK)
		return rv;
	/* 2. the new content */
	for (size_t i = 0; i < n; i++) {
		uint32_t len = fb_block_len(a->sizes[d], blocks[i]);
		off_t    off = (off_t)(blocks[i] * FB_BLOCK_SIZE);

		if (zero[i] ? fb_fs_punch(fd, off, len) != 0
		            : fb_fs_pwrite(fd, data + i * FB_BLOCK_SIZE, len, off) < 0)
			return fb_err_errno(err, errno, a->paths[d]);
	}
	return FB_RV_OK;
}

uint32_t
fb_apply_sync(fb_apply *a, uint32_t d, fb_err *err)
{
	int fd = apply_fd(a->paths, a->fds, a->ndisks, d, err);

	if (fd < 0)
		return err->rv;
	return fb_fs_fsync(fd) == 0 ? FB_RV_OK : fb_err_errno(err, errno, a->paths[d]);
}

struct rollback {
	char    **paths;
	uint64_t *sizes;
	int      *fds;
	size_t    n;
};

static uint32_t
rollback_block(void *arg, uint32_t disk, uint64_t block, const void *data, uint32_t len,
               fb_err *err)
{
	struct rollback *rb = arg;
	off_t            off;
	int              fd;

	if (disk >= rb->n || rb->paths[disk] == NULL)
		return fb_err_set(err, FB_RV_FAILED, "undo record for unknown disk %u", disk);
	if (len != fb_block_len(rb->sizes[disk], block))
		return fb_err_set(err, FB_RV_FAILED, "undo record for block %llu of %s does not fit it",
		                  (unsigned long long)block, rb->paths[disk]);
	if ((fd = apply_fd(rb->paths, rb->fds, rb->n, disk, err)) < 0)
		return err->rv;
	off = (off_t)(block * FB_BLOCK_SIZE);
	if (data == NULL ? fb_fs_punch(fd, off, len) != 0 : fb_fs_pwrite(fd, data, len, off) < 0)
		return fb_err_errno(err, errno, rb->paths[disk]);
	return FB_RV_OK;
}

uint32_t
fb_apply_rollback(const char *undo_path, const fb_apply_disk *disks, size_t ndisks,
                  uint64_t *records, fb_err *err)
{
	struct rollback rb = {0};
	uint32_t        rv;

	rb.n = ndisks;
	if ((rv = apply_copy_disks(disks, ndisks, &rb.paths, &rb.sizes, &rb.fds, err)) != FB_RV_OK)
		return rv;
	rv = fb_undo_replay(undo_path, rollback_block, &rb, records, err);
	for (size_t i = 0; i < ndisks && rv == FB_RV_OK; i++)
		if (rb.fds[i] >= 0 && fb_fs_fsync(rb.fds[i]) != 0)
			rv = fb_err_errno(err, errno, rb.paths[i]);
	apply_free_disks(rb.paths, rb.fds, ndisks);
	free(rb.sizes);
	/* Only a complete, durable rollback may forget the old content. */
	if (rv == FB_RV_OK)
		rv = fb_undo_remove(undo_path, err);
	return rv;
}

uint32_t
fb_apply_forget(const char *undo_path, fb_err *err)
{
	return fb_undo_remove(undo_path, err);
}
