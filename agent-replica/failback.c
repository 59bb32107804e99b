/*
 * failback.c - the transfer of an InitiateFailback job, per included disk:
 *
 *   Comparing    hash the recovery-VM disk (all cores, sequential reads) and
 *                walk the target's Merkle tree top-down (session_walk),
 *                descending only into subtrees whose hashes differ: the
 *                hashes exchanged are O(changed blocks x depth).
 *   Transferring the differing blocks, in batches: zero blocks zeroed,
 *                blocks the local store holds copied locally, the rest
 *                pulled (fetch.c), each checked against its leaf hash, and
 *                written undo-protected (apply.h). Every CKPT_BLOCKS blocks
 *                or CKPT_MS the disk is fsynced and the checkpoint
 *                committed, so a new worker resumes there.
 *   Verifying    the whole disk is read back and hashed: it must give the
 *                target's root.
 * The job holds an exclusive lock on the VM's disks throughout.
 */
#define _GNU_SOURCE /* F_OFD_SETLK */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "failback/apply.h"
#include "failback/clock.h"
#include "failback/dev.h"
#include "failback/disk.h"
#include "failback/image.h"
#include "failback/log.h"
#include "failback/pb.h"
#include "failback/tracker.h"
#include "worker.h"

/*
 * Only the undo log must be durable before each write; the data and the
 * checkpoint can lag, because applying a block again after a resume writes
 * the same content and the undo replay keeps the oldest record. Fewer
 * fsyncs per block is most of a failback's cost after hashing.
 */
#define CKPT_BLOCKS 256 /* 16 MiB */
#define CKPT_MS     500
/* Blocks gathered from the fetch's batches before they are applied: one
 * undo fsync per PEND_BLOCKS (4 MiB) instead of one per batch of
 * FB_WIRE_BATCH (alternating 4 and 8 MiB run by run at 8 GiB, 1%: 0.89-1.03
 * s against 0.86-0.99 s). 8 MiB took the worker's peak to 65.8 MiB in a
 * failback of a 16 GiB disk at 10% (the transfer's: the leaves, the ring,
 * the fetchers' replies and this), past the 64 MiB it must stay under. */
#define PEND_BLOCKS (2 * FB_WIRE_BATCH)

struct flow {
	worker                        *w;
	fb_vm                         *vm;
	const Failback__RecoveryPoint *target;
	Failback__JobCheckpoint       *cp;
	fb_hash                       *local[FB_WIRE_MAX_DISKS]; /* compare-phase leaves, or NULL */
	int                            vmdisk[FB_WIRE_MAX_DISKS]; /* checkpoint disk → VM disk */
	fb_apply                      *ap;
	int                            lockfd[FB_MAX_DISKS]; /* held for the job (0: none) */
	uint64_t                       unsaved; /* blocks written since the last checkpoint */
	uint64_t                       saved_ms;
	/* Change tracking (tracker.c): per checkpoint disk, the dirty bits the
	 * compare used (NULL: that disk was scanned whole). */
	uint8_t                       *dirty[FB_WIRE_MAX_DISKS];
	int                            full_only; /* compare whole disks, whatever the bitmaps say */
	int                            mismatch;  /* the verification found another root */
	/* Blocks received, not applied yet (all of checkpoint disk pend_k). */
	uint8_t                       *pend;      /* PEND_BLOCKS x FB_BLOCK_SIZE */
	uint64_t                       pend_block[PEND_BLOCKS];
	uint8_t                        pend_zero[PEND_BLOCKS];
	size_t                         npend, pend_k;
};

static int
vm_disk(const fb_vm *vm, const char *name)
{
	for (size_t i = 0; i < vm->ndisks; i++)
		if (strcmp(vm->disks[i].name, name) == 0)
			return (int)i;
	return -1;
}

struct hash_progress {
	progress *pg;
	uint64_t  base;
};

static uint32_t
hash_visit(void *arg, uint64_t index, const uint8_t *data, uint32_t len, const fb_hash *h,
           int zero, fb_err *err)
{
	struct hash_progress *hp = arg;

	(void)data;
	(void)h;
	(void)zero;
	(void)err;
	hp->pg->bytes_done = hp->base + index * FB_BLOCK_SIZE + len;
	progress_emit(hp->pg, 0);
	return FB_RV_OK;
}

static Failback__DiskCheckpoint *
disk_checkpoint_new(const char *name)
{
	Failback__DiskCheckpoint *dc = calloc(1, sizeof(*dc));

	if (dc == NULL)
		return NULL;
	failback__disk_checkpoint__init(dc);
	if ((dc->name = strdup(name)) == NULL) {
		free(dc);
		return NULL;
	}
	return dc;
}

/* Whether disk d is tracked: a raw disk with its wrapper (or, to_be, any
 * raw disk of an agent that tracks), a qcow2 disk (which holds its bitmap
 * itself) when the agent tracks. */
static int
tracked(const struct flow *fl, const fb_vm_disk *d, int to_be)
{
	char wrapper[4400];

	if (!fb_dev_raw(d->format))
		return fl->w->r->tracking;
	tracker_wrapper(d->path, wrapper, sizeof(wrapper));
	return access(wrapper, F_OK) == 0 || (to_be && fl->w->r->tracking);
}

/*
 * The change-tracking path of the compare: when the disk's bitmap and base
 * can be believed (tracker.c), its leaves are the base's with the dirty
 * blocks read and hashed again, and nothing else is read. scan->leaves is
 * NULL (and FB_RV_OK) when the disk must be scanned whole; the reason is
 * logged.
 */
static uint32_t
changed_blocks(struct flow *fl, size_t k, int vd, fb_disk_scan *scan, fb_err *err)
{
	worker           *w = fl->w;
	const fb_vm_disk *d = &fl->vm->disks[vd];
	char              rp[FB_ID_LEN + 1], why[512];
	fb_hash          *leaves;
	uint8_t          *bits;
	uint64_t          n = 0, nblocks = (d->size + FB_BLOCK_SIZE - 1) / FB_BLOCK_SIZE;
	struct stat       st;
	uint32_t          rv;

	memset(scan, 0, sizeof(*scan));
	if (fl->full_only || !tracked(fl, d, 0))
		return FB_RV_OK;
	/* (a qcow2 disk's size is checked against its bitmap's image) */
	if (fb_dev_raw(d->format) && (stat(d->path, &st) != 0 || (uint64_t)st.st_size != d->size)) {
		fb_log_info("FB6018", "job %s: disk %s: full scan: its size is not the one recorded",
		            w->job, d->name);
		return FB_RV_OK;
	}
	if (!tracker_changed(d->path, d->format, d->size, &leaves, &bits, rp, why, sizeof(why))) {
		fb_log_info("FB6018", "job %s: disk %s: full scan: %s", w->job, d->name, why);
		return FB_RV_OK;
	}
	rv = fb_disk_rehash_marked(d->path, d->format, d->size, bits, nblocks, leaves, NULL, NULL,
	                           &n, err);
	if (rv != FB_RV_OK) {
		free(leaves);
		free(bits);
		return rv;
	}
	w->pg.read += n * FB_BLOCK_SIZE;
	fl->dirty[k]  = bits;
	scan->leaves  = leaves;
	scan->nblocks = nblocks;
	scan->size    = d->size;
	fb_log_info("FB6017", "job %s: disk %s: bitmap since recovery point %s: %llu of %llu blocks "
	            "written, read only those",
	            w->job, d->name, rp, (unsigned long long)n, (unsigned long long)nblocks);
	return FB_RV_OK;
}

/*
 * A failback makes each disk its recovery point's content and never
 * changes a disk's size: a disk resized since (grown through its wrapper
 * by the recovery VM's operator, say) is refused before anything is read
 * or written, naming both sizes and the way back.
 */
static uint32_t
sizes_match(struct flow *fl, fb_err *err)
{
	for (size_t k = 0; k < fl->target->n_disks; k++) {
		const Failback__DiskManifest *dm = fl->target->disks[k];
		int                           vd = vm_disk(fl->vm, dm->name);
		const fb_vm_disk             *d  = vd < 0 ? NULL : &fl->vm->disks[vd];
		struct stat                   st;
		uint64_t                      size;
		fb_err                        e = {0};
		char                          wrapper[4200];
		int                           wrapped;

		if (d == NULL || !fb_rsd_includes(&fl->w->rsd, dm->name) || stat(d->path, &st) != 0)
			continue; /* a missing disk is reported by its compare */
		if (fb_dev_raw(d->format))
			size = (uint64_t)st.st_size;
		else if (fb_image_probe(d->path, d->format, &size, &e) != FB_RV_OK)
			return fb_err_set(err, FB_RV_FAILED, "recovery-VM disk %s: %s", dm->name, e.msg);
		if (size == dm->size_bytes)
			continue;
		tracker_wrapper(d->path, wrapper, sizeof(wrapper));
		wrapped = fb_dev_raw(d->format) && access(wrapper, F_OK) == 0;
		return fb_err_set(err, FB_RV_INVALID_STATE,
		                  "disk %s is %llu bytes on the replica but %llu in recovery point %s, "
		                  "and a failback does not resize a disk: shrink it back first "
		                  "(qemu-img resize --shrink -f %s '%s' %llu), or fail back to a point "
		                  "of its new size",
		                  dm->name, (unsigned long long)size, (unsigned long long)dm->size_bytes,
		                  fl->target->id, wrapped ? "qcow2" : fb_dev_raw(d->format) ? "raw"
		                                                                            : d->format,
		                  wrapped ? wrapper : d->path, (unsigned long long)dm->size_bytes);
	}
	return FB_RV_OK;
}

/* Compares one disk: its differing blocks go into dc. */
static uint32_t
compare_disk(struct flow *fl, size_t k, Failback__DiskCheckpoint *dc, uint64_t *base, fb_err *err)
{
	worker                       *w  = fl->w;
	const Failback__DiskManifest *dm = fl->target->disks[k];
	struct hash_progress          hp = {&w->pg, *base};
	fb_disk_scan                  scan;
	fb_merkle                    *tree = NULL;
	fb_walk_diff                 *diffs = NULL;
	size_t                        nd = 0;
	fb_hash                       root;
	int                           vd = vm_disk(fl->vm, dm->name);
	uint32_t                      rv;

	if (vd < 0)
		return fb_err_set(err, FB_RV_FILE_NOT_FOUND,
		                  "recovery point %s has disk %s, which VM %s lacks", fl->target->id,
		                  dm->name, fl->vm->name);
	if ((rv = changed_blocks(fl, k, vd, &scan, err)) == FB_RV_OK && scan.leaves != NULL) {
		/* the bitmap said which blocks to read: scan holds the disk's leaves */
	} else if (rv != FB_RV_OK) {
		return rv;
	} else if ((rv = fb_disk_hash_format(fl->vm->disks[vd].path, fl->vm->disks[vd].format,
	                                     hash_visit, &hp, &scan, err)) != FB_RV_OK) {
		char why[FB_ERR_MSG_MAX];

		snprintf(why, sizeof(why), "%s", err->msg);
		return fb_err_set(err, rv == FB_RV_INVALID_PARAMETER ? FB_RV_FILE_NOT_FOUND : rv,
		                  "recovery-VM disk %s: %s", dm->name, why);
	} else {
		w->pg.read += scan.bytes_read;
	}
	*base += fl->vm->disks[vd].size;
	w->pg.bytes_done = *base;
	fl->local[k] = scan.leaves;
	if (scan.size != dm->size_bytes)
		return fb_err_set(err, FB_RV_FAILED,
		                  "disk %s is %llu bytes on the replica but %llu in recovery point %s",
		                  dm->name, (unsigned long long)scan.size,
		                  (unsigned long long)dm->size_bytes, fl->target->id);
	if ((rv = fb_merkle_build(&tree, scan.leaves, scan.nblocks, err)) != FB_RV_OK)
		return rv;
	memcpy(&root, dm->root.data, sizeof(root));
	rv = session_walk(&w->s, fl->target->id, dm->name, dm->block_count, &root, tree, 0, &diffs,
	                  &nd, NULL, err);
	fb_merkle_free(tree);
	if (rv != FB_RV_OK)
		return rv;
	dc->blocks      = malloc((nd + 1) * sizeof(uint64_t));
	dc->hashes.data = malloc(nd * sizeof(fb_hash) + 1);
	if (dc->blocks == NULL || dc->hashes.data == NULL) {
		free(diffs);
		return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory for %zu blocks", nd);
	}
	dc->hashes.len = nd * sizeof(fb_hash);
	dc->n_blocks   = nd;
	for (size_t i = 0; i < nd; i++) {
		dc->blocks[i] = diffs[i].block;
		memcpy(dc->hashes.data + i * sizeof(fb_hash), &diffs[i].h, sizeof(fb_hash));
	}
	free(diffs);
	fb_log_info("FB6010", "job %s: disk %s differs in %zu of %llu blocks", w->job, dm->name,
	            nd, (unsigned long long)dm->block_count);
	return FB_RV_OK;
}

static uint32_t
compare(struct flow *fl, fb_err *err)
{
	worker                  *w = fl->w;
	Failback__JobCheckpoint *cp;
	uint64_t                 base = 0;
	uint32_t                 rv;

	if ((cp = calloc(1, sizeof(*cp))) == NULL)
		return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
	failback__job_checkpoint__init(cp);
	fl->cp    = cp;
	cp->target = strdup(fl->target->id);
	cp->disks  = calloc(fl->target->n_disks + 1, sizeof(*cp->disks));
	if (cp->target == NULL || cp->disks == NULL)
		return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
	w->pg.bytes_total = 0;
	for (size_t i = 0; i < fl->vm->ndisks; i++)
		w->pg.bytes_total += fl->vm->disks[i].size;
	w->pg.bytes_done = 0;
	if ((rv = sizes_match(fl, err)) != FB_RV_OK)
		return rv;
	progress_phase(&w->pg, "Comparing");
	for (size_t k = 0; k < fl->target->n_disks; k++) {
		Failback__DiskCheckpoint *dc = disk_checkpoint_new(fl->target->disks[k]->name);

		if (dc == NULL)
			return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
		cp->disks[cp->n_disks++] = dc;
		if (!fb_rsd_includes(&w->rsd, dc->name))
			continue;
		if ((rv = compare_disk(fl, k, dc, &base, err)) != FB_RV_OK)
			return rv;
	}
	{
		int all = 1, any = 0;

		for (size_t k = 0; k < fl->target->n_disks; k++)
			if (fb_rsd_includes(&w->rsd, fl->target->disks[k]->name)) {
				any = 1;
				all &= fl->dirty[k] != NULL;
			}
		snprintf(w->pg.mode, sizeof(w->pg.mode), "%s", any && all ? "bitmap" : "full scan");
		progress_emit(&w->pg, 1);
	}
	cp->bytes_on_wire = progress_wire(&w->pg);
	if ((rv = job_store_checkpoint_save(w->db, w->job, cp, err)) != FB_RV_OK) {
		char why[FB_ERR_MSG_MAX];

		snprintf(why, sizeof(why), "%s", err->msg);
		return fb_err_set(err, rv, "checkpoint: %s", why);
	}
	return FB_RV_OK;
}

/* A checkpoint from the database is used only if it fits the target. */
static int
checkpoint_fits(const Failback__JobCheckpoint *cp, const Failback__RecoveryPoint *t)
{
	if (cp->target == NULL || strcasecmp(cp->target, t->id) != 0 || cp->n_disks != t->n_disks)
		return 0;
	for (size_t k = 0; k < cp->n_disks; k++) {
		const Failback__DiskCheckpoint *dc = cp->disks[k];

		if (strcmp(dc->name, t->disks[k]->name) != 0 || dc->applied > dc->n_blocks ||
		    dc->hashes.len != dc->n_blocks * sizeof(fb_hash))
			return 0;
		for (size_t i = 0; i < dc->n_blocks; i++)
			if (dc->blocks[i] >= t->disks[k]->block_count)
				return 0;
	}
	return 1;
}

static uint32_t
checkpoint(struct flow *fl, size_t k, fb_err *err)
{
	uint32_t rv;

	if (fl->unsaved == 0)
		return FB_RV_OK;
	if ((rv = fb_apply_sync(fl->ap, (uint32_t)fl->vmdisk[k], err)) != FB_RV_OK)
		return rv;
	fl->cp->disks[k]->applied += fl->unsaved;
	fl->cp->bytes_on_wire = progress_wire(&fl->w->pg);
	if ((rv = job_store_checkpoint_save(fl->w->db, fl->w->job, fl->cp, err)) != FB_RV_OK) {
		char why[FB_ERR_MSG_MAX];

		snprintf(why, sizeof(why), "%s", err->msg);
		return fb_err_set(err, rv, "checkpoint: %s", why);
	}
	fl->unsaved  = 0;
	fl->saved_ms = fb_clock_mono_ms();
	return FB_RV_OK;
}

/* Applies the pending blocks (undo-protected), then checkpoints when it
 * is due. */
static uint32_t
apply_pending(struct flow *fl, fb_err *err)
{
	worker  *w = fl->w;
	size_t   n = fl->npend;
	uint32_t rv;

	if (n == 0)
		return FB_RV_OK;
	worker_lease_check(w);
	if ((rv = fb_apply_blocks(fl->ap, (uint32_t)fl->vmdisk[fl->pend_k], fl->pend_block,
	                          fl->pend_zero, fl->pend, n, err)) != FB_RV_OK)
		return rv;
	fl->npend = 0;
	fl->unsaved += n;
	if (fl->unsaved >= CKPT_BLOCKS || fb_clock_mono_ms() - fl->saved_ms >= CKPT_MS)
		if ((rv = checkpoint(fl, fl->pend_k, err)) != FB_RV_OK)
			return rv;
	w->pg.blocks_done += n;
	w->pg.bytes_done += n * FB_BLOCK_SIZE;
	progress_emit(&w->pg, 0);
	return FB_RV_OK;
}

static uint32_t
apply_batch(void *arg, const fetch_batch *b, fb_err *err)
{
	struct flow      *fl = arg;
	worker           *w  = fl->w;
	const fetch_item *it = b->items;
	uint32_t          rv;

	if ((rv = fetch_fill_local(w->store, b, err)) != FB_RV_OK)
		return rv;
	if (b->n == 0)
		return FB_RV_OK;
	if (fl->npend > 0 && (fl->pend_k != it[0].disk || fl->npend + b->n > PEND_BLOCKS) &&
	    (rv = apply_pending(fl, err)) != FB_RV_OK)
		return rv;
	fl->pend_k = it[0].disk;
	for (size_t i = 0; i < b->n; i++, fl->npend++) {
		fl->pend_block[fl->npend] = it[i].block;
		fl->pend_zero[fl->npend]  = memcmp(&it[i].h, fb_hash_zero(), sizeof(fb_hash)) == 0;
		if (!fl->pend_zero[fl->npend])
			memcpy(fl->pend + fl->npend * FB_BLOCK_SIZE, b->data + i * FB_BLOCK_SIZE,
			       FB_BLOCK_SIZE);
	}
	if (fl->npend + FB_WIRE_BATCH > PEND_BLOCKS && (rv = apply_pending(fl, err)) != FB_RV_OK)
		return rv;
	session_throttle(&w->s);
	return FB_RV_OK;
}

static uint32_t
transfer(struct flow *fl, fb_err *err)
{
	worker                  *w  = fl->w;
	Failback__JobCheckpoint *cp = fl->cp;
	const char              *names[FB_WIRE_MAX_DISKS + 1];
	fb_apply_disk            disks[FB_MAX_DISKS];
	fetch_item              *items = NULL;
	size_t                   nitems = 0, most = 0;
	char                     undo[4200];
	uint32_t                 rv;

	for (size_t k = 0; k < cp->n_disks; k++) {
		names[k]      = cp->disks[k]->name;
		fl->vmdisk[k] = vm_disk(fl->vm, names[k]);
		if (cp->disks[k]->n_blocks > cp->disks[k]->applied && fl->vmdisk[k] < 0)
			return fb_err_set(err, FB_RV_FILE_NOT_FOUND, "recovery-VM disk %s: no such disk",
			                  names[k]);
		nitems += cp->disks[k]->n_blocks;
		if (cp->disks[k]->n_blocks > most)
			most = cp->disks[k]->n_blocks;
	}
	names[cp->n_disks]  = NULL;
	w->pg.blocks_total = nitems;
	w->pg.blocks_done  = 0;
	w->pg.bytes_done   = 0;
	w->pg.bytes_total  = nitems * FB_BLOCK_SIZE;
	w->pg.wire         = cp->bytes_on_wire;
	for (size_t i = 0; i < fl->vm->ndisks; i++)
		disks[i] = (fb_apply_disk){fl->vm->disks[i].path, fl->vm->disks[i].size,
		                           fl->vm->disks[i].format, fl->lockfd[i] - 1};
	if ((rv = replica_path_undo(w->r, fl->vm->id, undo, sizeof(undo), err)) != FB_RV_OK ||
	    (rv = fb_apply_open(&fl->ap, undo, disks, fl->vm->ndisks, err)) != FB_RV_OK)
		return rv;
	if ((items = calloc(most + 1, sizeof(*items))) == NULL ||
	    (fl->pend == NULL && (fl->pend = malloc((size_t)PEND_BLOCKS * FB_BLOCK_SIZE)) == NULL)) {
		free(items);
		return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory for %zu blocks", most);
	}
	fl->npend = 0;
	/* Its writes bypass the wrapper: no base may outlive them unseen. */
	if (nitems > 0)
		for (size_t i = 0; i < fl->vm->ndisks; i++)
			tracker_suspend(fl->vm->disks[i].path);
	progress_phase(&w->pg, "Transferring");
	for (size_t k = 0; k < cp->n_disks && rv == FB_RV_OK; k++) {
		Failback__DiskCheckpoint *dc = cp->disks[k];
		fetch_spec f = {&w->s, w->store, w->params->vm, fl->target->id, names,
		                w->rsd.compression != 0, 1, 0};
		size_t     n = 0;

		w->pg.blocks_done += dc->applied;
		w->pg.bytes_done += dc->applied * FB_BLOCK_SIZE;
		for (size_t i = dc->applied; i < dc->n_blocks; i++) {
			items[n].disk  = (uint32_t)k;
			items[n].block = dc->blocks[i];
			memcpy(&items[n].h, dc->hashes.data + i * sizeof(fb_hash), sizeof(fb_hash));
			n++;
		}
		if (n == 0)
			continue;
		fl->saved_ms = fb_clock_mono_ms();
		if ((rv = fetch_run(&f, items, n, apply_batch, fl, err)) == FB_RV_OK &&
		    (rv = apply_pending(fl, err)) == FB_RV_OK)
			rv = checkpoint(fl, k, err);
	}
	free(items);
	free(fl->pend); /* 4 MiB the verification's scan can use */
	fl->pend = NULL;
	progress_emit(&w->pg, 1);
	return rv;
}

/*
 * The disk is read back and hashed: its root must be the target's
 * (verify_mode full, the default). Re-hashing only the written blocks
 * would trust the compare phase for the rest, and a process that wrote to
 * the disk meanwhile (one that ignores the job's lock) would then end in
 * FailbackComplete with a disk that is not the point.
 * The fast verification (verify_mode fast, or --verify fast) trusts the
 * compare and the lock: the blocks it wrote have their target leaves, the
 * rest the compare's leaves (a full scan's, read in this job; after a
 * bitmap compare, the base's with the dirty blocks re-read). After a
 * bitmap compare it trusts the bitmap too, so a write that bypassed the
 * wrapper is not seen; verify full re-reads everything and catches it
 * (then the job compares whole disks and goes on, see failback_steps).
 *
 * A tracked disk gets its next base from the leaves verified here, made
 * current by the agent once the job is done (tracker_commit).
 */
static int
verify_fast(const struct flow *fl)
{
	const char *want = fl->w->params->verify;

	for (size_t k = 0; k < fl->target->n_disks; k++)
		if (fb_rsd_includes(&fl->w->rsd, fl->target->disks[k]->name) && fl->local[k] == NULL)
			return 0;
	if (want != NULL && want[0] != '\0')
		return strcmp(want, "fast") == 0;
	return strcmp(fl->w->r->rset->verify_mode, "fast") == 0;
}

/* Fast: disk k's leaves from the compare; each written block's is the
 * target leaf its data was verified against on arrival (fsync'd since; a
 * read-back now would come from the page cache, proving nothing more);
 * after a bitmap compare, the dirty blocks not written are read again
 * (a full scan's leaves were all read in this job). */
static uint32_t
verify_leaves_fast(struct flow *fl, size_t k, int vd, fb_hash **out, fb_err *err)
{
	const fb_vm_disk               *d  = &fl->vm->disks[vd];
	const Failback__DiskCheckpoint *dc = fl->cp->disks[k];
	uint64_t nblocks = (d->size + FB_BLOCK_SIZE - 1) / FB_BLOCK_SIZE, n = 0;
	uint8_t *reread = malloc(nblocks + 1);
	fb_hash *leaves = malloc(nblocks * sizeof(fb_hash) + 1);
	uint32_t rv;

	if (reread == NULL || leaves == NULL) {
		free(reread);
		free(leaves);
		return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
	}
	if (dc->hashes.len != dc->n_blocks * sizeof(fb_hash) || dc->applied != dc->n_blocks) {
		free(reread);
		free(leaves);
		return fb_err_set(err, FB_RV_FAILED, "disk %s: the checkpoint's hashes do not match "
		                  "its blocks", d->name);
	}
	memcpy(leaves, fl->local[k], nblocks * sizeof(fb_hash));
	if (fl->dirty[k] != NULL)
		memcpy(reread, fl->dirty[k], nblocks);
	else
		memset(reread, 0, nblocks);
	for (size_t i = 0; i < dc->n_blocks; i++)
		if (dc->blocks[i] < nblocks) {
			reread[dc->blocks[i]] = 0;
			memcpy(&leaves[dc->blocks[i]], dc->hashes.data + i * sizeof(fb_hash),
			       sizeof(fb_hash));
		}
	rv = fb_disk_rehash_marked(d->path, d->format, d->size, reread, nblocks, leaves, NULL, NULL,
	                           &n, err);
	fl->w->pg.read += n * FB_BLOCK_SIZE;
	fl->w->pg.bytes_done += d->size;
	progress_emit(&fl->w->pg, 0);
	free(reread);
	if (rv != FB_RV_OK) {
		free(leaves);
		return rv;
	}
	*out = leaves;
	return FB_RV_OK;
}

static uint32_t
verify(struct flow *fl, fb_err *err)
{
	const Failback__RecoveryPoint *t    = fl->target;
	progress                      *pg   = &fl->w->pg;
	uint64_t                       base = 0;
	int                            fast = verify_fast(fl);
	uint32_t                       rv;

	pg->bytes_done  = 0;
	pg->bytes_total = 0;
	for (size_t k = 0; k < t->n_disks; k++)
		if (fb_rsd_includes(&fl->w->rsd, t->disks[k]->name))
			pg->bytes_total += t->disks[k]->size_bytes;
	progress_phase(pg, "Verifying");
	for (size_t k = 0; k < t->n_disks; k++) {
		const Failback__DiskManifest *dm = t->disks[k];
		fb_hash                       root, *leaves = NULL;
		uint64_t                      nblocks;
		int                           vd;

		if (!fb_rsd_includes(&fl->w->rsd, dm->name))
			continue;
		if ((vd = vm_disk(fl->vm, dm->name)) < 0)
			return fb_err_set(err, FB_RV_FILE_NOT_FOUND, "VM %s has no disk %s",
			                  fl->vm->name, dm->name);
		if (fast) {
			if ((rv = verify_leaves_fast(fl, k, vd, &leaves, err)) != FB_RV_OK)
				return rv;
			nblocks = (fl->vm->disks[vd].size + FB_BLOCK_SIZE - 1) / FB_BLOCK_SIZE;
		} else {
			fb_disk_scan         scan;
			struct hash_progress hp = {pg, base};

			if ((rv = fb_disk_hash_format(fl->vm->disks[vd].path, fl->vm->disks[vd].format,
			                              hash_visit, &hp, &scan, err)) != FB_RV_OK) {
				char why[FB_ERR_MSG_MAX];

				snprintf(why, sizeof(why), "%s", err->msg);
				return fb_err_set(err, rv, "verifying %s: %s", dm->name, why);
			}
			leaves  = scan.leaves;
			nblocks = scan.nblocks;
			base += scan.size;
			pg->read += scan.bytes_read;
		}
		rv = nblocks == dm->block_count ? fb_merkle_root_of(leaves, nblocks, &root, err)
		                                : fb_err_set(err, FB_RV_FAILED, "disk %s changed size",
		                                             dm->name);
		if (rv == FB_RV_OK && memcmp(&root, dm->root.data, sizeof(root)) != 0) {
			fl->mismatch = 1;
			rv = fb_err_set(err, FB_RV_FAILED,
			                "disk %s does not match recovery point %s after failback (%s "
			                "verification)",
			                dm->name, t->id, fast ? "fast" : "full");
		}
		/* The disk equals the target now: its next bitmap counts from it. A
		 * disk not tracked yet (one taken in place by a reverse) starts here,
		 * so the next failback of it (the downtime one) reads only what the
		 * two points' manifests and its bitmap name. */
		if (rv == FB_RV_OK && tracked(fl, &fl->vm->disks[vd], 1)) {
			fb_err e = {0};

			if (tracker_base_write(fl->vm->disks[vd].path, t->id, leaves, nblocks, 1, &e) !=
			    FB_RV_OK)
				fb_log_warn("FB6024", "job %s: disk %s: no base for its next bitmap: %s",
				            fl->w->job, dm->name, e.msg);
		}
		free(leaves);
		if (rv != FB_RV_OK)
			return rv;
	}
	fb_log_info("FB6019", "job %s: %s verification: every disk has the target's root", fl->w->job,
	            fast ? "fast" : "full");
	return FB_RV_OK;
}

/*
 * The disk now equals the target: the point is history this site shares
 * with the primary (ids and roots), so a later reverse can tell the
 * primary role here which points both sites hold.
 */
static uint32_t
remember_target(struct flow *fl, fb_err *err)
{
	fb_rp    rp;
	fb_err   e = {0};
	uint32_t rv;

	if ((rv = fb_pb_to_rp(fl->target, "the primary", &rp, err)) != FB_RV_OK)
		return rv;
	rp.held = 0;
	if (fb_rp_import(fl->w->db, fl->vm->id, &rp, 1, &e) != FB_RV_OK)
		fb_log_warn("FB6015", "job %s: recording recovery point %s as shared history: %s",
		            fl->w->job, rp.id, e.msg);
	return FB_RV_OK;
}

/*
 * The job holds an exclusive lock on each disk of the VM (an open file
 * description write lock over the whole file, the kind QEMU takes on its
 * images): a hypervisor that still runs the VM, or starts it meanwhile,
 * makes the job (or itself) fail instead of both writing. The locks go
 * with the worker, and with the qemu-nbd that writes a qcow2 disk for it
 * (which inherits the lock): a worker killed a moment ago may hold one for
 * as long as its server takes to die, so a lock is waited for a little.
 */
#define LOCK_WAIT_MS 5000

static uint32_t
lock_disks(struct flow *fl, fb_err *err)
{
	for (size_t i = 0; i < fl->vm->ndisks; i++) {
		uint32_t rv;
		int      fd;

		if (access(fl->vm->disks[i].path, F_OK) != 0 && errno == ENOENT)
			continue; /* a disk the failback will report missing */
		if ((rv = fb_image_lock(fl->vm->disks[i].path, LOCK_WAIT_MS, &fd, err)) != FB_RV_OK)
			return rv;
		fl->lockfd[i] = fd + 1;
	}
	return FB_RV_OK;
}

static int
used_bitmap(const struct flow *fl)
{
	for (size_t k = 0; k < FB_WIRE_MAX_DISKS; k++)
		if (fl->dirty[k] != NULL)
			return 1;
	return 0;
}

/* Drops what a compare and a transfer left, for another round. */
static void
flow_restart(struct flow *fl)
{
	fb_apply_close(fl->ap);
	fl->ap = NULL;
	for (size_t k = 0; k < FB_WIRE_MAX_DISKS; k++) {
		free(fl->local[k]);
		free(fl->dirty[k]);
		fl->local[k] = NULL;
		fl->dirty[k] = NULL;
	}
	if (fl->cp != NULL)
		failback__job_checkpoint__free_unpacked(fl->cp, NULL);
	fl->cp      = NULL;
	fl->unsaved = 0;
}

static uint32_t
failback_steps(struct flow *fl, Failback__NegotiateResponse **nr, fb_err *err)
{
	worker  *w = fl->w;
	fb_err   e = {0};
	uint32_t rv;

	if ((rv = fb_vm_get(w->db, w->params->vm, &fl->vm, err)) != FB_RV_OK)
		return rv;
	snprintf(w->pg.vm_id, sizeof(w->pg.vm_id), "%s", fl->vm->id);
	if ((rv = lock_disks(fl, err)) != FB_RV_OK)
		return rv;
	progress_phase(&w->pg, "WaitingForFailback");
	if ((rv = session_negotiate(&w->s, w->db, fl->vm->id, w->params->recovery_point_identifier,
	                            w->params->force, nr, err)) != FB_RV_OK)
		return rv;
	fl->target = (*nr)->target;
	fb_log_info("FB6011", "job %s: failing VM %s back to recovery point %s", w->job,
	            fl->vm->name, fl->target->id);
	if (job_store_checkpoint_load(w->db, w->job, &fl->cp, &e) != FB_RV_OK)
		fb_log_warn("FB6014", "job %s: %s; comparing again", w->job, e.msg);
	if (fl->cp != NULL && !checkpoint_fits(fl->cp, fl->target)) {
		failback__job_checkpoint__free_unpacked(fl->cp, NULL);
		fl->cp = NULL;
	}
	if (fl->cp == NULL) {
		if ((rv = compare(fl, err)) != FB_RV_OK)
			return rv;
	} else {
		fb_log_info("FB6012", "job %s: resuming from its checkpoint", w->job);
	}
	if ((rv = transfer(fl, err)) == FB_RV_OK)
		rv = verify(fl, err);
	if (rv != FB_RV_OK && fl->mismatch && used_bitmap(fl)) {
		/* The bitmap missed writes (one that bypassed the wrapper): what the
		 * job wrote is in the undo log; compare whole disks and go on. */
		fb_log_warn("FB6025", "job %s: %s; the bitmap missed writes: comparing whole disks",
		            w->job, err->msg);
		fl->full_only = 1;
		fl->mismatch  = 0;
		flow_restart(fl);
		if ((rv = compare(fl, err)) == FB_RV_OK && (rv = transfer(fl, err)) == FB_RV_OK)
			rv = verify(fl, err);
	}
	if (rv != FB_RV_OK)
		return rv;
	return remember_target(fl, err);
}

/* Frees what a flow holds (its locks go with it). */
static void
flow_free(struct flow *fl, Failback__NegotiateResponse *nr)
{
	fb_apply_close(fl->ap);
	free(fl->pend);
	for (size_t i = 0; i < FB_MAX_DISKS; i++)
		if (fl->lockfd[i] > 0)
			close(fl->lockfd[i] - 1);
	for (size_t k = 0; k < FB_WIRE_MAX_DISKS; k++) {
		free(fl->local[k]);
		free(fl->dirty[k]);
	}
	if (fl->cp != NULL)
		failback__job_checkpoint__free_unpacked(fl->cp, NULL);
	if (nr != NULL)
		failback__negotiate_response__free_unpacked(nr, NULL);
	free(fl->vm);
}

uint32_t
failback_flow(worker *w, fb_err *err)
{
	struct flow                  fl;
	Failback__NegotiateResponse *nr = NULL;
	uint32_t                     rv;

	memset(&fl, 0, sizeof(fl));
	fl.w = w;
	rv   = failback_steps(&fl, &nr, err);
	if (rv == FB_RV_OK) {
		struct rusage ru;

		getrusage(RUSAGE_SELF, &ru);
		fb_log_info("FB6013",
		            "job %s: %llu block(s) applied, %llu bytes on the wire, peak RSS %ld KiB",
		            w->job, (unsigned long long)w->pg.blocks_total,
		            (unsigned long long)progress_wire(&w->pg), ru.ru_maxrss);
	}
	flow_free(&fl, nr);
	return rv;
}

/*
 * EstimateFailback: what InitiateFailback with the same arguments would
 * move, without the disk lock and without writing anything. It negotiates
 * the point and compares exactly as a failback does, then pulls a sample
 * of the differing blocks (spread over them, checked, dropped) to measure
 * the transfer rate to this primary now. The estimate is the compare's
 * time, the differing bytes at that rate, and the verify's full re-read
 * (as long again as the hashing).
 */
#define SAMPLE_BLOCKS 256 /* 16 MiB */

struct sample {
	uint64_t bytes;
};

static uint32_t
sample_batch(void *arg, const fetch_batch *b, fb_err *err)
{
	(void)err;
	((struct sample *)arg)->bytes += b->n * FB_BLOCK_SIZE;
	return FB_RV_OK;
}

static uint32_t
estimate_sample(struct flow *fl, uint64_t differing, Failback__FailbackEstimate *e, fb_err *err)
{
	worker                  *w = fl->w;
	Failback__JobCheckpoint *cp = fl->cp;
	const char              *names[FB_WIRE_MAX_DISKS + 1];
	fetch_item              *items;
	struct sample            got  = {0};
	uint64_t                 step = differing / SAMPLE_BLOCKS + 1, t0;
	uint32_t                 rv   = FB_RV_OK;

	if (differing == 0)
		return FB_RV_OK;
	if ((items = calloc(SAMPLE_BLOCKS + 1, sizeof(*items))) == NULL)
		return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
	for (size_t k = 0; k < cp->n_disks; k++)
		names[k] = cp->disks[k]->name;
	names[cp->n_disks] = NULL;
	progress_phase(&w->pg, "Sampling");
	t0 = fb_clock_mono_ms();
	for (size_t k = 0; k < cp->n_disks && rv == FB_RV_OK; k++) {
		Failback__DiskCheckpoint *dc = cp->disks[k];
		fetch_spec f = {&w->s, w->store, w->params->vm, fl->target->id, names,
		                w->rsd.compression != 0, 1, 0};
		size_t     n = 0;

		for (size_t i = 0; i < dc->n_blocks && n < SAMPLE_BLOCKS; i += step) {
			items[n].disk  = (uint32_t)k;
			items[n].block = dc->blocks[i];
			memcpy(&items[n].h, dc->hashes.data + i * sizeof(fb_hash), sizeof(fb_hash));
			n++;
		}
		if (n > 0)
			rv = fetch_run(&f, items, n, sample_batch, &got, err);
	}
	free(items);
	if (rv != FB_RV_OK)
		return rv;
	e->sample_bytes     = got.bytes;
	e->sample_ms        = fb_clock_mono_ms() - t0;
	e->rate_bytes_per_s = e->sample_ms > 0 ? got.bytes * 1000 / e->sample_ms : got.bytes * 1000;
	/* The sample is not throttled; a failback is held to --max-transfer-rate. */
	if (w->s.throttle.rate > 0 && e->rate_bytes_per_s > w->s.throttle.rate)
		e->rate_bytes_per_s = w->s.throttle.rate;
	return FB_RV_OK;
}

static uint32_t
estimate_steps(struct flow *fl, Failback__NegotiateResponse **nr,
               Failback__FailbackEstimate *e, fb_err *err)
{
	worker  *w = fl->w;
	uint64_t t0 = fb_clock_mono_ms(), differing = 0;
	uint32_t rv;

	if ((rv = fb_vm_get(w->db, w->params->vm, &fl->vm, err)) != FB_RV_OK)
		return rv;
	snprintf(w->pg.vm_id, sizeof(w->pg.vm_id), "%s", fl->vm->id);
	if ((rv = session_negotiate(&w->s, w->db, fl->vm->id, w->params->recovery_point_identifier,
	                            0, nr, err)) != FB_RV_OK)
		return rv;
	fl->target = (*nr)->target;
	if ((rv = compare(fl, err)) != FB_RV_OK)
		return rv;
	e->compare_ms = fb_clock_mono_ms() - t0;
	e->disk_bytes = w->pg.bytes_total;
	for (size_t k = 0; k < fl->cp->n_disks; k++)
		differing += fl->cp->disks[k]->n_blocks;
	e->blocks_differing = differing;
	e->bytes_differing  = differing * FB_BLOCK_SIZE;
	if ((rv = estimate_sample(fl, differing, e, err)) != FB_RV_OK)
		return rv;
	e->estimated_ms = 2 * e->compare_ms +
	                  (e->rate_bytes_per_s > 0 ? e->bytes_differing * 1000 / e->rate_bytes_per_s
	                                           : 0);
	e->recovery_point = fl->target->id;
	fl->cp->estimate  = e;
	rv                = job_store_checkpoint_save(w->db, w->job, fl->cp, err);
	fl->cp->estimate = NULL; /* e is the caller's */
	if (rv != FB_RV_OK)
		return rv;
	w->pg.blocks_done  = 0;
	w->pg.blocks_total = differing;
	w->pg.bytes_done   = 0;
	w->pg.bytes_total  = e->bytes_differing;
	progress_emit(&w->pg, 1);
	fb_log_info("FB6016",
	            "job %s: a failback of VM %s to recovery point %s would move %llu of %llu "
	            "blocks; sample %llu bytes in %llu ms; estimated %llu ms",
	            w->job, fl->vm->name, fl->target->id, (unsigned long long)differing,
	            (unsigned long long)(e->disk_bytes / FB_BLOCK_SIZE),
	            (unsigned long long)e->sample_bytes, (unsigned long long)e->sample_ms,
	            (unsigned long long)e->estimated_ms);
	return FB_RV_OK;
}

uint32_t
estimate_flow(worker *w, fb_err *err)
{
	struct flow                  fl;
	Failback__NegotiateResponse *nr = NULL;
	Failback__FailbackEstimate   e  = FAILBACK__FAILBACK_ESTIMATE__INIT;
	uint32_t                     rv;

	memset(&fl, 0, sizeof(fl));
	fl.w = w;
	rv   = estimate_steps(&fl, &nr, &e, err);
	flow_free(&fl, nr);
	return rv;
}
