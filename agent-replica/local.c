/*
 * local.c - replica jobs that touch only this host's disks: materialising
 * a recovery VM's disks from a recovery point (failover), discarding them
 * (revert), flattening the points (commit), and rolling a failback back
 * from its undo log (cancel).
 *
 * A materialised disk is written to "<disk>.tmp", fsynced and renamed over
 * the disk, so a crash leaves either the old disk or the complete new one;
 * zero blocks stay holes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "failback/fsops.h"
#include "failback/log.h"
#include "failback/undo.h"
#include "replica.h"

void
replica_vm_dir(const replica *r, const char *vm_id, char *out, size_t len)
{
	snprintf(out, len, "%s/vms/%s", r->dir, vm_id);
}

void
replica_undo_path(const replica *r, const char *vm_id, char *out, size_t len)
{
	snprintf(out, len, "%s/undo/%s", r->dir, vm_id);
}

static uint32_t
local_write_disk(replica *r, const fb_rp *rp, const fb_rp_disk *d, const char *path, fb_err *err)
{
	char     tmp[4400];
	fb_hash *leaves;
	uint64_t n;
	uint8_t *blk;
	uint32_t rv;
	int      fd;

	if ((rv = fb_rp_leaves(r->db, rp->id, d->name, &leaves, &n, err)) != FB_RV_OK)
		return rv;
	if ((blk = malloc(FB_BLOCK_SIZE)) == NULL) {
		free(leaves);
		return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if ((fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0) {
		rv = fb_err_errno(err, errno, tmp);
		goto out;
	}
	if (fb_fs_ftruncate(fd, (off_t)d->size) != 0) {
		rv = fb_err_errno(err, errno, tmp);
		goto out_fd;
	}
	for (uint64_t i = 0; i < n; i++) {
		uint64_t off = i * FB_BLOCK_SIZE;
		size_t   len = d->size - off < FB_BLOCK_SIZE ? (size_t)(d->size - off) : FB_BLOCK_SIZE;

		if (memcmp(&leaves[i], fb_hash_zero(), sizeof(fb_hash)) == 0)
			continue;
		if ((rv = fb_store_get(r->store, &leaves[i], blk, err)) != FB_RV_OK)
			goto out_fd;
		if (fb_fs_pwrite(fd, blk, len, (off_t)off) < 0) {
			rv = fb_err_errno(err, errno, tmp);
			goto out_fd;
		}
	}
	if (fb_fs_fsync(fd) != 0 || fb_fs_rename(tmp, path) != 0 || fb_fs_fsync_dir(path) != 0)
		rv = fb_err_errno(err, errno, path);
out_fd:
	close(fd);
	if (rv != FB_RV_OK)
		unlink(tmp);
out:
	free(blk);
	free(leaves);
	return rv;
}

uint32_t
local_failover(replica *r, const char *vm_id, const char *rp_id, fb_err *err)
{
	fb_vm   *vm;
	fb_rp   *rp;
	char     dir[4200];
	uint32_t rv;

	if ((rv = fb_vm_get(r->db, vm_id, &vm, err)) != FB_RV_OK)
		return rv;
	if ((rv = fb_rp_get(r->db, vm_id, rp_id, &rp, err)) != FB_RV_OK) {
		free(vm);
		return rv;
	}
	snprintf(dir, sizeof(dir), "%s/vms", r->dir);
	mkdir(dir, 0700);
	replica_vm_dir(r, vm->id, dir, sizeof(dir));
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		rv = fb_err_errno(err, errno, dir);
		goto out;
	}
	for (size_t i = 0; i < rp->ndisks && rv == FB_RV_OK; i++) {
		char path[4300];

		snprintf(path, sizeof(path), "%s/%s", dir, rp->disks[i].name);
		rv = local_write_disk(r, rp, &rp->disks[i], path, err);
	}
	if (rv == FB_RV_OK)
		rv = fb_vm_set_failover_rp(r->db, vm->id, rp->id, err);
	if (rv == FB_RV_OK)
		fb_log_info("FB5030", "VM %s failed over to recovery point %s", vm->name, rp->id);
out:
	free(rp);
	free(vm);
	return rv;
}

uint32_t
local_revert(replica *r, const char *vm_id, fb_err *err)
{
	fb_vm   *vm;
	uint32_t rv;

	if ((rv = fb_vm_get(r->db, vm_id, &vm, err)) != FB_RV_OK)
		return rv;
	for (size_t i = 0; i < vm->ndisks; i++)
		if (unlink(vm->disks[i].path) != 0 && errno != ENOENT)
			rv = fb_err_errno(err, errno, vm->disks[i].path);
	if (rv == FB_RV_OK)
		rv = fb_vm_set_failover_rp(r->db, vm->id, "", err);
	free(vm);
	return rv;
}

uint32_t
local_commit(replica *r, const char *vm_id, fb_err *err)
{
	fb_vm   *vm;
	fb_rp   *rps;
	size_t   n;
	uint32_t rv;

	if ((rv = fb_vm_get(r->db, vm_id, &vm, err)) != FB_RV_OK)
		return rv;
	/* Committing flattens the points: only the one failed over to remains. */
	if ((rv = fb_rp_list(r->db, vm_id, &rps, &n, err)) == FB_RV_OK) {
		for (size_t i = 0; i < n && rv == FB_RV_OK; i++)
			if (strcasecmp(rps[i].id, vm->failover_rp) != 0)
				rv = fb_rp_remove(r->db, r->store, vm_id, rps[i].id, NULL, err);
		free(rps);
	}
	free(vm);
	return rv;
}

struct rollback {
	fb_vm *vm;
	int    fds[FB_MAX_DISKS];
};

static uint32_t
rollback_block(void *arg, uint32_t disk, uint64_t block, const void *data, uint32_t len,
               fb_err *err)
{
	struct rollback *rb  = arg;
	off_t            off = (off_t)(block * FB_BLOCK_SIZE);

	if (disk >= rb->vm->ndisks || rb->fds[disk] < 0)
		return fb_err_set(err, FB_RV_FAILED, "undo record for unknown disk %u", disk);
	if (data == NULL) {
		if (fallocate(rb->fds[disk], FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len) !=
		    0)
			return fb_err_errno(err, errno, rb->vm->disks[disk].path);
		return FB_RV_OK;
	}
	if (fb_fs_pwrite(rb->fds[disk], data, len, off) < 0)
		return fb_err_errno(err, errno, rb->vm->disks[disk].path);
	return FB_RV_OK;
}

uint32_t
local_rollback(replica *r, const char *vm_id, uint64_t *blocks, fb_err *err)
{
	struct rollback rb;
	char            undo[4200];
	uint32_t        rv;

	if ((rv = fb_vm_get(r->db, vm_id, &rb.vm, err)) != FB_RV_OK)
		return rv;
	for (size_t i = 0; i < FB_MAX_DISKS; i++)
		rb.fds[i] = i < rb.vm->ndisks ? open(rb.vm->disks[i].path, O_RDWR | O_CLOEXEC) : -1;
	replica_undo_path(r, vm_id, undo, sizeof(undo));
	rv = fb_undo_replay(undo, rollback_block, &rb, blocks, err);
	for (size_t i = 0; i < rb.vm->ndisks; i++) {
		if (rb.fds[i] < 0)
			continue;
		if (rv == FB_RV_OK && fb_fs_fsync(rb.fds[i]) != 0)
			rv = fb_err_errno(err, errno, rb.vm->disks[i].path);
		close(rb.fds[i]);
	}
	/* Only a complete, durable rollback may forget the old content. */
	if (rv == FB_RV_OK)
		rv = fb_undo_remove(undo, err);
	free(rb.vm);
	return rv;
}
