/*
 * local.c - replica jobs that touch only this host's disks: materialising
 * a recovery VM's disks from a recovery point (failover), discarding them
 * (revert), flattening the points (commit), and rolling a failback back
 * from its undo log (cancel). These run in the agent's runner threads.
 *
 * A materialised disk is written to "<disk>.tmp", fsynced and renamed over
 * the disk, so a crash leaves either the old disk or the complete new one;
 * zero blocks stay holes. Its format is the recovery_format setting: a raw
 * file, or a standalone qcow2 image written through qemu-nbd (dev.h), which
 * the hypervisor opens as it is.
 */
#define _GNU_SOURCE
#include <dirent.h>
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
#include "failback/apply.h"
#include "failback/dev.h"
#include "failback/image.h"
#include "replica.h"
#include "failback/tracker.h"

#define RUN_BLOCKS 64 /* consecutive blocks written at once: 4 MiB */

static uint32_t
local_write_disk(replica *r, const fb_rp *rp, const fb_rp_disk *d, const char *path,
                 const char *format, fb_err *err)
{
	char     tmp[4200];
	fb_hash *leaves;
	fb_dev  *dev = NULL;
	uint64_t n, from = 0;
	uint8_t *buf;
	uint32_t rv, len = 0;

	if ((rv = fb_rp_leaves(r->db, rp->id, d->name, &leaves, &n, err)) != FB_RV_OK)
		return rv;
	fb_store_expect(r->store, n); /* a lookup per block */
	if ((buf = malloc((size_t)RUN_BLOCKS * FB_BLOCK_SIZE)) == NULL) {
		free(leaves);
		return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
	}
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp)) {
		rv = fb_err_set(err, FB_RV_INVALID_PARAMETER, "%s: path too long", path);
		goto out;
	}
	if ((rv = fb_dev_create(tmp, format, d->size, &dev, err)) != FB_RV_OK)
		goto out;
	/* runs of consecutive non-zero blocks, one write each (one NBD
	 * request for a qcow2 image); a new image reads zeros elsewhere */
	for (uint64_t i = 0; i <= n && rv == FB_RV_OK; i++) {
		int zero = i == n || memcmp(&leaves[i], fb_hash_zero(), sizeof(fb_hash)) == 0;

		if (len > 0 && (zero || i - from == RUN_BLOCKS)) {
			rv = fb_dev_write(dev, buf, len, from * FB_BLOCK_SIZE, err);
			len = 0;
		}
		if (zero || rv != FB_RV_OK)
			continue;
		if (len == 0)
			from = i;
		if ((rv = fb_store_get(r->store, &leaves[i], buf + len, err)) == FB_RV_OK)
			len += fb_block_len(d->size, i);
	}
	if (rv == FB_RV_OK)
		rv = fb_dev_flush(dev, err);
	fb_dev_close(dev);
	if (rv == FB_RV_OK && (fb_fs_rename(tmp, path) != 0 || fb_fs_fsync_dir(path) != 0))
		rv = fb_err_errno(err, errno, path);
	if (rv != FB_RV_OK)
		unlink(tmp);
out:
	free(buf);
	free(leaves);
	return rv;
}

/* The recovery disk gets its bitmap, counting from rp: in a qcow2 wrapper
 * over a raw disk, or in a qcow2 disk itself. A disk that cannot be
 * tracked is still a good disk (its failback compares it whole). */
static void
local_track(replica *r, const fb_rp *rp, const fb_rp_disk *d, const char *path,
            const char *format)
{
	fb_hash *leaves = NULL;
	uint64_t n      = 0;
	fb_err   err    = {0};
	char     image[4400];

	tracker_image(path, format, image, sizeof(image));
	if (fb_rp_leaves(r->db, rp->id, d->name, &leaves, &n, &err) != FB_RV_OK ||
	    tracker_base_write(path, rp->id, leaves, n, 0, &err) != FB_RV_OK ||
	    tracker_create(path, format, d->size, rp->id, &err) != FB_RV_OK) {
		tracker_suspend(path);
		fb_log_warn("FB5045", "disk %s is not tracked (its failback compares it whole): %s",
		            d->name, err.msg);
	} else {
		fb_log_info("FB5046", "disk %s: the VM must open %s (%s) so that its writes are "
		            "tracked from recovery point %s",
		            d->name, image,
		            fb_dev_raw(format) ? "qcow2 over the raw disk" : "a qcow2 image holding "
		                                                             "its bitmap",
		            rp->id);
	}
	free(leaves);
}

uint32_t
local_failover(replica *r, const char *vm_id, const char *rp_id, fb_err *err)
{
	const char *format = r->rset->recovery_format;
	fb_vm      *vm;
	fb_rp      *rp;
	char        dir[4200];
	uint32_t    rv;

	if ((rv = fb_vm_get(r->db, vm_id, &vm, err)) != FB_RV_OK)
		return rv;
	if ((rv = fb_rp_get(r->db, vm_id, rp_id, &rp, err)) != FB_RV_OK) {
		free(vm);
		return rv;
	}
	if ((rv = replica_path(r, dir, sizeof(dir), err, "vms")) != FB_RV_OK)
		goto out;
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		rv = fb_err_errno(err, errno, dir);
		goto out;
	}
	if ((rv = replica_path_vm(r, vm->id, dir, sizeof(dir), err)) != FB_RV_OK)
		goto out;
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		rv = fb_err_errno(err, errno, dir);
		goto out;
	}
	for (size_t i = 0; i < rp->ndisks && rv == FB_RV_OK; i++) {
		char path[4300];

		if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, rp->disks[i].name) >=
		    sizeof(path)) {
			rv = fb_err_set(err, FB_RV_INVALID_PARAMETER, "%s: path too long", dir);
			break;
		}
		if ((rv = local_write_disk(r, rp, &rp->disks[i], path, format, err)) != FB_RV_OK)
			break;
		/* the disk's format, for everything that opens it from now on,
		 * recorded as soon as the file in its place has it */
		for (size_t k = 0; k < vm->ndisks; k++)
			if (strcmp(vm->disks[k].name, rp->disks[i].name) == 0)
				snprintf(vm->disks[k].format, sizeof(vm->disks[k].format), "%s", format);
		if ((rv = fb_vm_put(r->db, vm, err)) != FB_RV_OK)
			break;
		if (r->tracking)
			local_track(r, rp, &rp->disks[i], path, format);
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
	for (size_t i = 0; i < vm->ndisks; i++) {
		char side[4400];

		if (unlink(vm->disks[i].path) != 0 && errno != ENOENT)
			rv = fb_err_errno(err, errno, vm->disks[i].path);
		/* the wrapper and the base go with the disk */
		tracker_wrapper(vm->disks[i].path, side, sizeof(side));
		unlink(side);
		snprintf(side, sizeof(side), "%s.leaves", vm->disks[i].path);
		unlink(side);
		snprintf(side, sizeof(side), "%s.leaves.new", vm->disks[i].path);
		unlink(side);
	}
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
	/* Committing flattens the points: only the one failed over to remains
	 * (with the history shared with the other site). */
	if ((rv = fb_rp_list(r->db, vm_id, &rps, &n, err)) == FB_RV_OK) {
		for (size_t i = 0; i < n && rv == FB_RV_OK; i++)
			if (rps[i].held && strcasecmp(rps[i].id, vm->failover_rp) != 0 &&
			    (rv = fb_rp_remove(r->db, r->store, vm_id, rps[i].id, NULL, err)) ==
			        FB_RV_OK) {
				rps[i].held = 0; /* its blocks go; its id and roots stay as history */
				rv          = fb_rp_import(r->db, vm->id, &rps[i], 1, err);
			}
		free(rps);
	}

	free(vm);
	return rv;
}

/* The VM's disks as the undo log knows them: by index, in VM order. */
static uint32_t
local_disks(replica *r, const char *vm_id, fb_vm **vm, fb_apply_disk *disks, char *undo,
            size_t undo_len, fb_err *err)
{
	uint32_t rv;

	if ((rv = fb_vm_get(r->db, vm_id, vm, err)) != FB_RV_OK)
		return rv;
	if ((rv = replica_path_undo(r, (*vm)->id, undo, undo_len, err)) != FB_RV_OK) {
		free(*vm);
		return rv;
	}
	for (size_t i = 0; i < (*vm)->ndisks; i++)
		disks[i] = (fb_apply_disk){(*vm)->disks[i].path, (*vm)->disks[i].size,
		                           (*vm)->disks[i].format, -1};
	return FB_RV_OK;
}

/* A disk written through qemu-nbd is locked before its rollback writes: the
 * cancelled worker's server holds the lock until it is gone, so the
 * rollback's server never meets it (a raw disk's writer dies with its
 * worker). The locks go with the rollback's servers, then with locks[]. */
static uint32_t
local_lock_served(const fb_vm *vm, fb_apply_disk *disks, int *locks, fb_err *err)
{
	for (size_t i = 0; i < vm->ndisks; i++)
		locks[i] = -1;
	for (size_t i = 0; i < vm->ndisks; i++) {
		uint32_t rv;

		if (fb_dev_raw(vm->disks[i].format) || access(vm->disks[i].path, F_OK) != 0)
			continue;
		if ((rv = fb_image_lock(vm->disks[i].path, 10000, &locks[i], err)) != FB_RV_OK)
			return rv;
		disks[i].lock_fd = locks[i];
	}
	return FB_RV_OK;
}

uint32_t
local_rollback(replica *r, const char *vm_id, uint64_t *blocks, fb_err *err)
{
	fb_apply_disk disks[FB_MAX_DISKS];
	fb_vm        *vm;
	char          undo[4200];
	uint32_t      rv;

	int           locks[FB_MAX_DISKS];

	if ((rv = local_disks(r, vm_id, &vm, disks, undo, sizeof(undo), err)) != FB_RV_OK)
		return rv;
	if ((rv = local_lock_served(vm, disks, locks, err)) == FB_RV_OK)
		rv = fb_apply_rollback(undo, disks, vm->ndisks, blocks, err);
	for (size_t i = 0; i < vm->ndisks; i++)
		if (locks[i] >= 0)
			close(locks[i]);
	free(vm);
	return rv;
}

uint32_t
local_forget_undo(replica *r, const char *vm_id, fb_err *err)
{
	char     undo[4200];
	uint32_t rv;

	if ((rv = replica_path_undo(r, vm_id, undo, sizeof(undo), err)) != FB_RV_OK)
		return rv;
	return fb_apply_forget(undo, err);
}

void
local_discard_undo(replica *r, const char *vm_id)
{
	char   undo[4200];
	fb_err e = {0};

	if (replica_path_undo(r, vm_id, undo, sizeof(undo), &e) == FB_RV_OK)
		fb_apply_discard(undo);
}

void
local_discard_forgotten(replica *r)
{
	char           dir[4200];
	fb_err         e = {0};
	DIR           *d;
	struct dirent *de;

	if (replica_path(r, dir, sizeof(dir), &e, "undo") != FB_RV_OK || (d = opendir(dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		size_t n = strlen(de->d_name);

		/* "<vm-guid>.done", as fb_apply_forget names it */
		if (n == FB_ID_LEN + 5 && strcmp(de->d_name + FB_ID_LEN, ".done") == 0)
			(void)unlinkat(dirfd(d), de->d_name, 0);
	}
	closedir(d);
}

uint32_t
local_track_commit(replica *r, const char *vm_id, fb_err *err)
{
	fb_vm   *vm;
	uint32_t rv;

	if ((rv = fb_vm_get(r->db, vm_id, &vm, err)) != FB_RV_OK)
		return rv;
	for (size_t i = 0; i < vm->ndisks; i++) {
		fb_err e = {0};

		if (tracker_commit(vm->disks[i].path, vm->disks[i].format, vm->disks[i].size, &e) !=
		    FB_RV_OK)
			fb_log_warn("FB5045", "disk %s is not tracked (its next failback compares it "
			            "whole): %s",
			            vm->disks[i].name, e.msg);
	}
	free(vm);
	return FB_RV_OK;
}
