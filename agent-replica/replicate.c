/*
 * replicate.c - the transfer of a Replicate job: negotiate the primary's
 * newest point, walk its tree against the newest point both sides hold,
 * pull the blocks the local store lacks (each unique block once), make
 * them durable, and adopt the point under the primary's id (rp.h). A VM
 * the replica does not hold yet is registered from the manifest first.
 *
 * Blocks whose content is already on this host are not pulled: a block of
 * the VM's disk here (the former recovery disk, after a relationship was
 * reversed back) that hashes to the wanted leaf is stored from the disk.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "failback/dev.h"
#include "failback/fsops.h"
#include "failback/image.h"
#include "failback/log.h"
#include "worker.h"

struct adopt {
	worker      *w;
	fb_rp_block *added;
	size_t       nadded, cap;
};

static uint32_t
remember_block(struct adopt *ad, const fb_hash *h, const fb_store_loc *loc, fb_err *err)
{
	if (ad->nadded == ad->cap) {
		size_t       cap = ad->cap ? ad->cap * 2 : 256;
		fb_rp_block *g   = realloc(ad->added, cap * sizeof(*g));

		if (g == NULL)
			return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
		ad->added = g;
		ad->cap   = cap;
	}
	ad->added[ad->nadded++] = (fb_rp_block){*h, *loc};
	return FB_RV_OK;
}

static uint32_t
store_batch(void *arg, const fetch_batch *b, fb_err *err)
{
	struct adopt     *ad = arg;
	worker           *w  = ad->w;
	const fetch_item *it = b->items;
	size_t            n  = b->n;
	uint32_t          rv;

	for (size_t i = 0; i < n; i++) {
		const uint8_t *data = b->data + i * FB_BLOCK_SIZE;
		fb_store_loc   loc;

		if (!b->got[i])
			continue;
		/* A compressed fetch brings each block in the form the primary's
		 * store found for it: kept as it came, not compressed again. */
		if (b->packed != NULL)
			rv = fb_store_append_as(w->store, &it[i].h, data,
			                        b->packed_len[i] > 0 ? b->packed + b->packed_off[i] : NULL,
			                        b->packed_len[i], &loc, err);
		else
			rv = fb_store_append(w->store, &it[i].h, data, FB_BLOCK_SIZE, &loc, err);
		if (rv != FB_RV_OK) {
			char why[FB_ERR_MSG_MAX];

			snprintf(why, sizeof(why), "%s", err->msg);
			return fb_err_set(err, rv, "storing block: %s", why);
		}
		if ((rv = remember_block(ad, &it[i].h, &loc, err)) != FB_RV_OK)
			return rv;
	}
	w->pg.blocks_done += n;
	w->pg.bytes_done += n * FB_BLOCK_SIZE;
	progress_emit(&w->pg, 0);
	session_throttle(&w->s);
	return FB_RV_OK;
}

/*
 * Stores from the local disk d every item whose block there hashes to its
 * leaf, and compacts items to the rest. A disk that is not there, or not
 * of the manifest's size, gives nothing. A disk of another format than raw
 * (a qcow2 recovery disk) is read through qemu-nbd.
 */
static uint32_t
from_local_disk(worker *w, const fb_vm_disk *d, uint64_t size, fetch_item *items, size_t *n,
                struct adopt *ad, fb_err *err)
{
	uint8_t    *blk;
	fb_image   *im = NULL;
	fb_err      e  = {0};
	struct stat st;
	size_t      keep = 0, found = 0;
	uint32_t    rv   = FB_RV_OK;
	int         fd   = -1;

	if (*n == 0)
		return FB_RV_OK;
	if (!fb_dev_raw(d->format)) {
		if (fb_image_open(d->path, d->format, &im, &e) != FB_RV_OK)
			return FB_RV_OK;
		if (fb_image_size(im) != size) {
			fb_image_close(im);
			return FB_RV_OK;
		}
	} else {
		if ((fd = fb_fs_open(d->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW, 0)) < 0)
			return FB_RV_OK;
		if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != size) {
			close(fd);
			return FB_RV_OK;
		}
	}
	if ((blk = malloc(FB_BLOCK_SIZE)) == NULL) {
		if (fd >= 0)
			close(fd);
		fb_image_close(im);
		return FB_RV_OK;
	}
	for (size_t i = 0; i < *n && rv == FB_RV_OK; i++) {
		uint64_t     off = items[i].block * FB_BLOCK_SIZE, rd = 0;
		size_t       len = size - off < FB_BLOCK_SIZE ? (size_t)(size - off) : FB_BLOCK_SIZE;
		fb_store_loc loc;
		fb_hash      h;

		if (im != NULL ? fb_image_read(im, blk, off, len, &rd, &e) != FB_RV_OK
		               : fb_fs_pread(fd, blk, len, (off_t)off) < 0) {
			items[keep++] = items[i];
			continue;
		}
		memset(blk + len, 0, FB_BLOCK_SIZE - len);
		fb_hash_block(blk, FB_BLOCK_SIZE, FB_BLOCK_SIZE, &h);
		if (memcmp(&h, &items[i].h, sizeof(h)) != 0) {
			items[keep++] = items[i];
			continue;
		}
		if ((rv = fb_store_append(w->store, &h, blk, FB_BLOCK_SIZE, &loc, err)) == FB_RV_OK)
			rv = remember_block(ad, &h, &loc, err);
		found++;
	}
	free(blk);
	if (fd >= 0)
		close(fd);
	fb_image_close(im);
	if (found > 0)
		fb_log_info("FB6022", "job %s: %zu block(s) of %s were on this host's disk, not pulled",
		            w->job, found, d->path);
	*n = keep;
	return rv;
}

static int
cmp_hash(const void *a, const void *b)
{
	return memcmp(&((const fetch_item *)a)->h, &((const fetch_item *)b)->h, sizeof(fb_hash));
}

/* The VM of the target, registered from the manifest when new. */
static uint32_t
replicate_vm(worker *w, const Failback__NegotiateResponse *nr, fb_vm **vm, fb_err *err)
{
	const Failback__RecoveryPoint *t = nr->target;
	fb_vm_disk                    *disks;
	char                           vmdir[4200];
	uint32_t                       rv;

	if (nr->recovery_history > FB_MAX_HISTORY)
		return fb_err_set(err, FB_RV_FAILED, "the primary gives RecoveryHistory %u",
		                  nr->recovery_history);
	if (fb_vm_get(w->db, t->vm_id, vm, err) == FB_RV_OK) {
		/* the replica keeps as many points as the primary (Hyper-V's
		 * RecoveryHistory is the recovery side's) */
		if ((*vm)->recovery_history != nr->recovery_history) {
			(*vm)->recovery_history = nr->recovery_history;
			if (fb_vm_put(w->db, *vm, err) != FB_RV_OK)
				return err->rv;
		}
		return FB_RV_OK;
	}
	if (!fb_vm_name_valid(nr->vm_name))
		return fb_err_set(err, FB_RV_FAILED, "the primary names the VM '%.80s'", nr->vm_name);
	if ((disks = calloc(t->n_disks, sizeof(*disks))) == NULL)
		return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
	for (size_t i = 0; i < t->n_disks; i++) {
		snprintf(disks[i].name, sizeof(disks[i].name), "%s", t->disks[i]->name);
		disks[i].size = t->disks[i]->size_bytes;
	}
	if ((rv = replica_path_vm(w->r, t->vm_id, vmdir, sizeof(vmdir), err)) == FB_RV_OK &&
	    ((rv = fb_vm_add_replica(w->db, t->vm_id, nr->vm_name, disks, t->n_disks, vmdir,
	                             nr->recovery_history, err)) != FB_RV_OK ||
	     (rv = fb_vm_get(w->db, t->vm_id, vm, err)) != FB_RV_OK)) {
		char why[FB_ERR_MSG_MAX];

		snprintf(why, sizeof(why), "%s", err->msg);
		rv = fb_err_set(err, rv, "registering VM %s: %s", nr->vm_name, why);
	}
	free(disks);
	return rv;
}

/* Walks disk k against base (may be NULL) and pulls what the store lacks. */
static uint32_t
replicate_disk(worker *w, const fb_vm *vm, const Failback__RecoveryPoint *t, size_t k,
               const fb_rp *base, const char *const *names, fb_hash **leaves, struct adopt *ad,
               fb_err *err)
{
	const Failback__DiskManifest *dm   = t->disks[k];
	fb_merkle                    *tree = NULL;
	fb_walk_diff                 *diffs = NULL;
	fetch_item                   *items;
	size_t                        nd = 0, u = 0;
	fb_hash                       root;
	uint32_t                      rv;

	if (base != NULL) {
		fb_hash *bl;
		uint64_t bn;
		fb_err   e = {0};

		if (fb_rp_leaves(w->db, base->id, dm->name, &bl, &bn, &e) == FB_RV_OK) {
			if (bn == dm->block_count && fb_merkle_build(&tree, bl, bn, &e) != FB_RV_OK)
				tree = NULL;
			free(bl);
		}
	}
	memcpy(&root, dm->root.data, sizeof(root));
	rv = session_walk(&w->s, t->id, dm->name, dm->block_count, &root, tree, 1, &diffs, &nd,
	                  leaves, err);
	fb_merkle_free(tree);
	if (rv != FB_RV_OK)
		return rv;
	/* blocks to pull: differing, unique, not already stored (fetch skips zeros) */
	if ((items = calloc(nd + 1, sizeof(*items))) == NULL) {
		free(diffs);
		return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
	}
	for (size_t i = 0; i < nd; i++)
		items[i] = (fetch_item){(uint32_t)k, diffs[i].block, diffs[i].h};
	free(diffs);
	qsort(items, nd, sizeof(*items), cmp_hash);
	for (size_t i = 0; i < nd; i++)
		if (u == 0 || memcmp(&items[u - 1].h, &items[i].h, sizeof(fb_hash)) != 0)
			items[u++] = items[i];
	for (size_t d = 0; d < vm->ndisks; d++)
		if (strcmp(vm->disks[d].name, dm->name) == 0 &&
		    (rv = from_local_disk(w, &vm->disks[d], dm->size_bytes, items, &u, ad, err)) !=
		        FB_RV_OK) {
			free(items);
			return rv;
		}
	w->pg.blocks_total += u;
	w->pg.bytes_total += u * FB_BLOCK_SIZE;
	progress_phase(&w->pg, "Transferring");
	if (u > 0) {
		fetch_spec f = {&w->s, w->store, w->params->vm, t->id, names, 1, 0, 1};

		rv = fetch_run(&f, items, u, store_batch, ad, err);
	}
	free(items);
	return rv;
}

/* The primary this replication named (or the first one) becomes the VM's
 * relationship once it has served a point: every later job pulls from it,
 * pinned as it was named. */
static uint32_t
record_primary(worker *w, const fb_vm *vm, fb_err *err)
{
	if (vm->peer_url[0] != '\0' && w->params->peer_url[0] == '\0' &&
	    w->rsd.primary_connection_point[0] == '\0')
		return FB_RV_OK;
	if (vm->peer_url[0] != '\0' && strcmp(vm->peer_url, w->s.url) != 0)
		fb_log_info("FB6026", "job %s: VM %s is now replicated from %s (was %s)", w->job,
		            vm->name, w->s.url, vm->peer_url);
	return fb_vm_set_relationship(w->db, vm->id, vm->generation, w->s.url, w->s.sname, w->s.pin,
	                              vm->pending_peer, err);
}

uint32_t
replicate_flow(worker *w, fb_err *err)
{
	Failback__NegotiateResponse   *nr = NULL;
	const Failback__RecoveryPoint *t;
	fb_vm                         *vm    = NULL;
	fb_rp                         *base  = NULL, rp;
	fb_hash                       *leaves[FB_WIRE_MAX_DISKS] = {0};
	const char                    *names[FB_WIRE_MAX_DISKS + 1];
	struct adopt                   ad = {w, NULL, 0, 0};
	fb_err                         e  = {0};
	uint32_t                       rv;

	progress_phase(&w->pg, "Negotiating");
	if ((rv = session_negotiate(&w->s, w->db, w->params->vm, "", w->params->force, &nr, err)) !=
	    FB_RV_OK)
		return rv;
	t = nr->target;
	if ((rv = replicate_vm(w, nr, &vm, err)) != FB_RV_OK)
		goto out;
	snprintf(w->pg.vm_id, sizeof(w->pg.vm_id), "%s", vm->id);
	if (fb_rp_get(w->db, vm->id, t->id, &base, &e) == FB_RV_OK && base->held) {
		fb_log_info("FB6020", "job %s: recovery point %s is already here", w->job, t->id);
		rv = record_primary(w, vm, err);
		goto out;
	}
	free(base);
	base = NULL;
	/* The walk compares the target's tree with a tree held here: the newest
	 * point both sides hold, else the newest point held here at all (after
	 * a reverse back, the primary may have pruned the points it shared;
	 * the walk needs only a close tree, not a shared one). History has no
	 * leaves to walk with. */
	for (size_t i = nr->n_shared_points; i > 0 && base == NULL; i--)
		if (fb_rp_get(w->db, vm->id, nr->shared_points[i - 1], &base, &e) != FB_RV_OK ||
		    !base->held) {
			free(base);
			base = NULL;
		}
	if (base == NULL && fb_rp_get(w->db, vm->id, "", &base, &e) != FB_RV_OK)
		base = NULL;
	memset(&rp, 0, sizeof(rp));
	snprintf(rp.id, sizeof(rp.id), "%s", t->id);
	snprintf(rp.vm_id, sizeof(rp.vm_id), "%s", vm->id);
	snprintf(rp.algorithm, sizeof(rp.algorithm), "%s", t->hash_algorithm);
	rp.time_ms = t->time_unix_ms;
	rp.type    = (int)t->type;
	rp.ndisks  = t->n_disks;
	for (size_t k = 0; k < t->n_disks; k++)
		names[k] = t->disks[k]->name;
	names[t->n_disks] = NULL;
	progress_phase(&w->pg, "Comparing");
	for (size_t k = 0; k < t->n_disks; k++) {
		const Failback__DiskManifest *dm = t->disks[k];

		snprintf(rp.disks[k].name, sizeof(rp.disks[k].name), "%s", dm->name);
		rp.disks[k].size       = dm->size_bytes;
		rp.disks[k].block_size = dm->block_size;
		rp.disks[k].nblocks    = dm->block_count;
		memcpy(&rp.disks[k].root, dm->root.data, sizeof(fb_hash));
		if ((rv = replicate_disk(w, vm, t, k, base, names, &leaves[k], &ad, err)) != FB_RV_OK)
			goto out;
	}
	if ((rv = fb_store_sync(w->store, err)) != FB_RV_OK ||
	    (rv = fb_rp_adopt(w->db, w->store, &rp, leaves, ad.added, ad.nadded, NULL, err)) !=
	        FB_RV_OK) {
		char why[FB_ERR_MSG_MAX];

		snprintf(why, sizeof(why), "%s", err->msg);
		rv = fb_err_set(err, rv, "recording recovery point %s: %s", t->id, why);
		goto out;
	}
	if ((rv = record_primary(w, vm, err)) != FB_RV_OK)
		goto out;
	fb_log_info("FB6021", "job %s: recovery point %s of %s replicated (%zu new blocks, %llu "
	            "pulled, %llu bytes on the wire)",
	            w->job, t->id, vm->name, ad.nadded, (unsigned long long)w->pg.blocks_total,
	            (unsigned long long)progress_wire(&w->pg));
out:
	for (size_t k = 0; k < FB_WIRE_MAX_DISKS; k++)
		free(leaves[k]);
	free(ad.added);
	free(base);
	free(vm);
	failback__negotiate_response__free_unpacked(nr, NULL);
	return rv;
}
