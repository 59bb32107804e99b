/*
 * rp.c - taking, listing and removing recovery points (see rp.h).
 *
 * New blocks found during the scan are appended to the store at once and
 * remembered in a small open-addressing set (so a block repeated within
 * the point is stored once); nothing touches the index until the single
 * commit at the end. A failure before that commit punches the appended
 * records back out; a crash leaves them unindexed, and the store drops them
 * when it next opens.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "failback/clock.h"
#include "failback/disk.h"
#include "failback/image.h"
#include "failback/log.h"
#include "failback/merkle.h"
#include "failback/rp.h"
#include "failback/tracker.h"

/*
 * --- per-VM busy set, scans in flight, and the commit lock ---
 *
 * busy[] serialises the operations on one VM's points. A disk scan runs
 * with no lock held: its new blocks are private until its commit, and the
 * blocks it found indexed stay indexed because no commit sweeps
 * unreferenced blocks while another scan is in flight (scans counts them;
 * a later commit sweeps what was left). write_mtx is held only around a
 * commit and the release of the bytes it swept. Lock order: busy_mtx is
 * never held with write_mtx; write_mtx → the database lock.
 */
static pthread_mutex_t busy_mtx  = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t write_mtx = PTHREAD_MUTEX_INITIALIZER;
static char            busy[64][FB_ID_LEN + 1];
static int             scans; /* disk scans in flight (busy_mtx) */

static void
rp_scans_add(int delta)
{
	pthread_mutex_lock(&busy_mtx);
	scans += delta;
	pthread_mutex_unlock(&busy_mtx);
}

/* May a commit sweep? Not while a scan other than the caller's (mine) runs. */
static int
rp_may_sweep(int mine)
{
	int n;

	pthread_mutex_lock(&busy_mtx);
	n = scans - mine;
	pthread_mutex_unlock(&busy_mtx);
	return n == 0;
}

static int
rp_busy_take(const char *vm_id)
{
	int slot = -1;

	pthread_mutex_lock(&busy_mtx);
	for (int i = 0; i < 64; i++) {
		if (strcmp(busy[i], vm_id) == 0) {
			pthread_mutex_unlock(&busy_mtx);
			return 0;
		}
		if (slot < 0 && busy[i][0] == '\0')
			slot = i;
	}
	if (slot >= 0)
		snprintf(busy[slot], sizeof(busy[slot]), "%s", vm_id);
	pthread_mutex_unlock(&busy_mtx);
	return slot >= 0;
}

static void
rp_busy_give(const char *vm_id)
{
	pthread_mutex_lock(&busy_mtx);
	for (int i = 0; i < 64; i++)
		if (strcmp(busy[i], vm_id) == 0)
			busy[i][0] = '\0';
	pthread_mutex_unlock(&busy_mtx);
}

/* --- the set of blocks this point stored --- */

struct pending {
	fb_hash      h;
	fb_store_loc loc;
	int          used;
};

struct newset {
	struct pending *slots;
	size_t          cap, n;
};

static uint64_t
set_key(const fb_hash *h)
{
	uint64_t k;

	memcpy(&k, h->b, sizeof(k));
	return k;
}

static struct pending *
set_find(struct newset *s, const fb_hash *h)
{
	size_t i;

	if (s->cap == 0)
		return NULL;
	for (i = set_key(h) & (s->cap - 1); s->slots[i].used; i = (i + 1) & (s->cap - 1))
		if (memcmp(&s->slots[i].h, h, sizeof(*h)) == 0)
			return &s->slots[i];
	return NULL;
}

static int
set_add(struct newset *s, const fb_hash *h, const fb_store_loc *loc)
{
	size_t i;

	if ((s->n + 1) * 2 > s->cap) {
		struct newset g = {calloc(s->cap ? s->cap * 2 : 1024, sizeof(struct pending)),
		                   s->cap ? s->cap * 2 : 1024, 0};
		if (g.slots == NULL)
			return -1;
		for (size_t j = 0; j < s->cap; j++)
			if (s->slots[j].used)
				set_add(&g, &s->slots[j].h, &s->slots[j].loc);
		free(s->slots);
		*s = g;
	}
	for (i = set_key(h) & (s->cap - 1); s->slots[i].used; i = (i + 1) & (s->cap - 1))
		;
	s->slots[i] = (struct pending){*h, *loc, 1};
	s->n++;
	return 0;
}

struct scan_ctx {
	fb_store          *store;
	struct newset     *set;
	fb_rp_stats       *stats;
	const fb_rp_watch *watch; /* may be NULL */
	uint64_t           base, total; /* bytes of the disks before this one, of all */
	int                bitmap;      /* this disk: only its dirty blocks are visited */
	uint64_t           nread, read_base; /* bytes read so far; before this disk */
};

static uint32_t
rp_visit(void *arg, uint64_t index, const uint8_t *data, uint32_t len, const fb_hash *h, int zero,
         fb_err *err)
{
	struct scan_ctx *c = arg;
	fb_store_loc     loc;
	int              present;
	uint32_t         rv;

	c->nread = c->bitmap ? c->nread + len : c->read_base + index * FB_BLOCK_SIZE + len;
	if (c->watch != NULL &&
	    c->watch->progress(c->watch->arg, c->base + index * FB_BLOCK_SIZE + len, c->total,
	                       c->nread) != 0)
		return fb_err_set(err, FB_RV_FAILED, "the recovery point was cancelled");
	if (zero || set_find(c->set, h) != NULL)
		return FB_RV_OK;
	if ((rv = fb_store_contains(c->store, h, &present, err)) != FB_RV_OK || present)
		return rv;
	if ((rv = fb_store_append(c->store, h, data, len, &loc, err)) != FB_RV_OK)
		return rv;
	if (set_add(c->set, h, &loc) != 0)
		return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
	c->stats->blocks_new++;
	c->stats->bytes_stored += FB_STORE_HEADER + loc.stored_len;
	return FB_RV_OK;
}

/* Discards the records of a point that will never commit. */
static void
rp_unappend(fb_store *store, struct newset *set)
{
	for (size_t i = 0; i < set->cap; i++)
		if (set->slots[i].used)
			fb_store_discard(store, &set->slots[i].loc);
}

/* Adds delta to the reference count of every non-zero leaf. */
static uint32_t
rp_ref_leaves(fb_store *store, const fb_hash *leaves, uint64_t n, int64_t delta, fb_err *err)
{
	return fb_store_ref_leaves(store, leaves, n, delta, err);
}

/*
 * A commit's reference changes, gathered and netted before they reach the
 * index: a new point adds one per leaf and the point it prunes takes one
 * per leaf, so for a disk that changed little almost every change cancels
 * out and the commit costs what changed, not the disk's size.
 */
struct refbatch {
	struct refdelta {
		fb_hash h;
		int64_t d;
	} *e;
	size_t n, cap;
};

static uint32_t
refs_add(struct refbatch *b, const fb_hash *leaves, uint64_t n, int64_t d, fb_err *err)
{
	const fb_hash *zero = fb_hash_zero();

	if (b->n + n > b->cap) {
		size_t           cap = b->cap ? b->cap : 1024;
		struct refdelta *g;

		while (cap < b->n + n)
			cap *= 2;
		if ((g = realloc(b->e, cap * sizeof(*g))) == NULL)
			return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
		b->e   = g;
		b->cap = cap;
	}
	for (uint64_t i = 0; i < n; i++)
		if (memcmp(&leaves[i], zero, sizeof(*zero)) != 0)
			b->e[b->n++] = (struct refdelta){leaves[i], d};
	return FB_RV_OK;
}

static int
refs_cmp(const void *x, const void *y)
{
	return memcmp(&((const struct refdelta *)x)->h, &((const struct refdelta *)y)->h,
	              sizeof(fb_hash));
}

/* Nets the gathered changes per block and applies those that remain. */
static uint32_t
refs_flush(struct refbatch *b, fb_store *store, fb_err *err)
{
	fb_hash *h = NULL;
	int64_t *d = NULL;
	size_t   k = 0;
	uint32_t rv;

	if (b->n == 0)
		return FB_RV_OK;
	if ((h = malloc(b->n * sizeof(*h))) == NULL || (d = malloc(b->n * sizeof(*d))) == NULL) {
		free(h);
		return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
	}
	qsort(b->e, b->n, sizeof(*b->e), refs_cmp);
	for (size_t i = 0; i < b->n; i++) {
		if (k > 0 && memcmp(&h[k - 1], &b->e[i].h, sizeof(fb_hash)) == 0) {
			d[k - 1] += b->e[i].d;
			continue;
		}
		h[k]   = b->e[i].h;
		d[k++] = b->e[i].d;
	}
	rv   = fb_store_ref_deltas(store, h, d, 0, k, err);
	b->n = 0;
	free(h);
	free(d);
	return rv;
}

/* Inside a transaction: drop one point, releasing its references (into b
 * when given, else at once). */
static uint32_t
rp_drop(fb_db *db, fb_store *store, struct refbatch *b, const char *rp_id, fb_err *err)
{
	sqlite3_stmt *st;
	uint32_t      rv = FB_RV_OK;
	int           rc;

	if ((rv = fb_db_prepare(db, "SELECT leaves FROM rp_disks WHERE rp_id = ?", &st, err)) !=
	    FB_RV_OK)
		return rv;
	sqlite3_bind_text(st, 1, rp_id, -1, SQLITE_TRANSIENT);
	while (rv == FB_RV_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const fb_hash *l = sqlite3_column_blob(st, 0);
		uint64_t       n = (uint64_t)sqlite3_column_bytes(st, 0) / sizeof(fb_hash);

		rv = b != NULL ? refs_add(b, l, n, -1, err) : rp_ref_leaves(store, l, n, -1, err);
	}
	sqlite3_finalize(st);
	if (rv != FB_RV_OK)
		return rv;
	if ((rv = fb_db_prepare(db, "DELETE FROM rps WHERE id = ?", &st, err)) != FB_RV_OK)
		return rv;
	sqlite3_bind_text(st, 1, rp_id, -1, SQLITE_TRANSIENT);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? FB_RV_OK : fb_db_err(db, rc, "remove point", err);
}

static fb_rp_keep_fn keep_fn; /* set once at start (fb_rp_set_keep) */

void
fb_rp_set_keep(fb_rp_keep_fn fn)
{
	keep_fn = fn;
}

/* Inside a transaction: drop the oldest held points beyond history + 1
 * (not without a store), and the oldest history points beyond
 * FB_MAX_HISTORY + 1; a point keep_fn keeps is skipped, so the VM then
 * has more than history + 1 (the newest are never dropped in its place). */
static uint32_t
rp_prune(fb_db *db, fb_store *store, struct refbatch *b, const fb_vm *vm, fb_rp_stats *stats,
         fb_err *err)
{
	for (int held = store != NULL; held >= 0; held--) {
		int64_t       keep = held ? (int64_t)vm->recovery_history + 1 : FB_MAX_HISTORY + 1;
		char        (*ids)[FB_ID_LEN + 1] = NULL;
		size_t        n = 0, cap = 0, dropped = 0;
		sqlite3_stmt *st;
		uint32_t      rv;

		if ((rv = fb_db_prepare(db,
		                        "SELECT id FROM rps WHERE vm_id = ?1 AND held = ?2 "
		                        "ORDER BY seq",
		                        &st, err)) != FB_RV_OK)
			return rv;
		sqlite3_bind_text(st, 1, vm->id, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 2, held);
		while (sqlite3_step(st) == SQLITE_ROW) {
			if (n == cap) {
				char(*g)[FB_ID_LEN + 1];

				cap = cap ? cap * 2 : 32;
				if ((g = realloc(ids, cap * sizeof(*ids))) == NULL) {
					sqlite3_finalize(st);
					free(ids);
					return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
				}
				ids = g;
			}
			snprintf(ids[n++], sizeof(ids[0]), "%s", (const char *)sqlite3_column_text(st, 0));
		}
		sqlite3_finalize(st);
		/* only the oldest n - keep are candidates: a kept one among them
		 * stays (the VM keeps one point more), never a newer one instead */
		for (size_t i = 0; (int64_t)i < (int64_t)n - keep; i++) {
			if (keep_fn != NULL && keep_fn(ids[i]))
				continue;
			if ((rv = rp_drop(db, store, b, ids[i], err)) != FB_RV_OK) {
				free(ids);
				return rv;
			}
			dropped++;
		}
		stats->points_pruned += dropped;
		free(ids);
	}
	return FB_RV_OK;
}

/* Inserts a point: held with leaves[i] for disk i, or history (leaves NULL:
 * an empty leaf list). */
static uint32_t
rp_insert(fb_db *db, const fb_rp *rp, fb_hash *const *leaves, fb_err *err)
{
	sqlite3_stmt *st;
	uint32_t      rv;
	int           rc;

	if ((rv = fb_db_prepare(db,
	                        "INSERT INTO rps (id, vm_id, time_ms, type, algorithm, seq, held) "
	                        "VALUES (?, ?, ?, ?, ?, (SELECT coalesce(max(seq), 0) + 1 FROM rps), "
	                        "?)",
	                        &st, err)) != FB_RV_OK)
		return rv;
	sqlite3_bind_int(st, 6, leaves != NULL);
	sqlite3_bind_text(st, 1, rp->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, rp->vm_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, rp->time_ms);
	sqlite3_bind_int(st, 4, rp->type);
	sqlite3_bind_text(st, 5, rp->algorithm, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return fb_db_err(db, rc, "insert point", err);
	for (size_t i = 0; i < rp->ndisks; i++) {
		const fb_rp_disk *d = &rp->disks[i];

		if ((rv = fb_db_prepare(db,
		                        "INSERT INTO rp_disks (rp_id, disk, size, block_size, "
		                        "block_count, root, leaves) VALUES (?, ?, ?, ?, ?, ?, ?)",
		                        &st, err)) != FB_RV_OK)
			return rv;
		sqlite3_bind_text(st, 1, rp->id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, d->name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, (sqlite3_int64)d->size);
		sqlite3_bind_int64(st, 4, d->block_size);
		sqlite3_bind_int64(st, 5, (sqlite3_int64)d->nblocks);
		sqlite3_bind_blob(st, 6, d->root.b, FB_HASH_LEN, SQLITE_STATIC);
		if (leaves != NULL)
			sqlite3_bind_blob64(st, 7, leaves[i], d->nblocks * sizeof(fb_hash),
			                    SQLITE_STATIC);
		else
			sqlite3_bind_zeroblob(st, 7, 0);
		rc = sqlite3_step(st);
		sqlite3_finalize(st);
		if (rc != SQLITE_DONE)
			return fb_db_err(db, rc, "insert manifest", err);
	}
	return FB_RV_OK;
}

/* Inside a transaction: drop the history record of a point (no references). */
static uint32_t
rp_forget_history(fb_db *db, const char *rp_id, fb_err *err)
{
	static const char *const sql[] = {
	    "DELETE FROM rp_disks WHERE rp_id = (SELECT id FROM rps WHERE id = lower(?1) AND "
	    "held = 0)",
	    "DELETE FROM rps WHERE id = lower(?1) AND held = 0",
	};

	for (size_t i = 0; i < 2; i++) {
		sqlite3_stmt *st;
		uint32_t      rv;
		int           rc;

		if ((rv = fb_db_prepare(db, sql[i], &st, err)) != FB_RV_OK)
			return rv;
		sqlite3_bind_text(st, 1, rp_id, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
		sqlite3_finalize(st);
		if (rc != SQLITE_DONE)
			return fb_db_err(db, rc, "replace history", err);
	}
	return FB_RV_OK;
}

/* The one transaction that makes a point exist (see rp.h). */
static uint32_t
rp_commit(fb_db *db, fb_store *store, const fb_vm *vm, const fb_rp *rp, fb_hash *const *leaves,
          const fb_rp_block *added, size_t nadded, int scanning, fb_rp_stats *stats, fb_err *err)
{
	uint8_t        *dup  = calloc(nadded + 1, 1); /* another writer indexed the same block first */
	struct refbatch refs = {0};
	uint32_t        rv;

	if (dup == NULL)
		return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
	if ((rv = fb_db_begin(db, err)) != FB_RV_OK) {
		free(dup);
		return rv;
	}
	for (size_t i = 0; i < nadded && rv == FB_RV_OK; i++) {
		int was_added = 1;

		rv     = fb_store_index_add(store, &added[i].h, &added[i].loc, 0, &was_added, err);
		dup[i] = rv == FB_RV_OK && !was_added;
	}
	for (size_t i = 0; i < rp->ndisks && rv == FB_RV_OK; i++)
		rv = refs_add(&refs, leaves[i], rp->disks[i].nblocks, +1, err);
	if (rv == FB_RV_OK)
		rv = rp_forget_history(db, rp->id, err); /* a point held from now on */
	if (rv == FB_RV_OK)
		rv = rp_insert(db, rp, leaves, err);
	if (rv == FB_RV_OK)
		rv = rp_prune(db, store, &refs, vm, stats, err);
	if (rv == FB_RV_OK)
		rv = refs_flush(&refs, store, err);
	free(refs.e);
	if (rv == FB_RV_OK && rp_may_sweep(scanning))
		rv = fb_store_sweep(store, &stats->blocks_freed, err);
	if (rv != FB_RV_OK) {
		fb_db_rollback(db);
		fb_store_forget(store);
		free(dup);
		return rv;
	}
	if ((rv = fb_db_commit(db, err)) != FB_RV_OK) {
		fb_store_forget(store);
		free(dup);
		return rv;
	}
	fb_store_release(store);
	for (size_t i = 0; i < nadded; i++)
		if (dup[i])
			fb_store_discard(store, &added[i].loc);
	free(dup);
	return FB_RV_OK;
}

uint32_t
fb_rp_adopt(fb_db *db, fb_store *store, const fb_rp *rp, fb_hash *const *leaves,
            const fb_rp_block *added, size_t nadded, fb_rp_stats *stats, fb_err *err)
{
	fb_rp_stats local = {0};
	fb_vm      *vm;
	uint32_t    rv;

	for (size_t i = 0; i < rp->ndisks; i++) {
		fb_hash root;

		if ((rv = fb_merkle_root_of(leaves[i], rp->disks[i].nblocks, &root, err)) != FB_RV_OK)
			return rv;
		if (memcmp(&root, &rp->disks[i].root, sizeof(root)) != 0)
			return fb_err_set(err, FB_RV_FAILED,
			                  "recovery point %s disk %s: leaves do not give its root",
			                  rp->id, rp->disks[i].name);
	}
	if ((rv = fb_vm_get(db, rp->vm_id, &vm, err)) != FB_RV_OK)
		return rv;
	pthread_mutex_lock(&write_mtx);
	rv = rp_commit(db, store, vm, rp, leaves, added, nadded, 0, stats ? stats : &local, err);
	pthread_mutex_unlock(&write_mtx);
	free(vm);
	return rv;
}

uint32_t
fb_rp_get(fb_db *db, const char *vm_ref, const char *rp_id, fb_rp **out, fb_err *err)
{
	fb_rp   *rps, *rp;
	size_t   n, i;
	uint32_t rv;

	if ((rv = fb_rp_list(db, vm_ref, &rps, &n, err)) != FB_RV_OK)
		return rv;
	if (rp_id == NULL || rp_id[0] == '\0') {
		for (i = n; i > 0 && !rps[i - 1].held; i--)
			;
		if (i == 0) {
			free(rps);
			return fb_err_set(err, FB_RV_FILE_NOT_FOUND, "VM '%s' has no recovery point",
			                  vm_ref);
		}
		i--;
	} else {
		for (i = 0; i < n && strcasecmp(rps[i].id, rp_id) != 0; i++)
			;
		if (i == n) {
			free(rps);
			return fb_err_set(err, FB_RV_FILE_NOT_FOUND,
			                  "VM '%s' has no recovery point %.40s", vm_ref, rp_id);
		}
	}
	if ((rp = malloc(sizeof(*rp))) == NULL) {
		free(rps);
		return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
	}
	*rp = rps[i];
	free(rps);
	*out = rp;
	return FB_RV_OK;
}

/*
 * Whether the base of a tracked disk (leaves, n, counting from point brp)
 * is that point as this store holds it: a held point of the VM whose disk
 * has these leaves. Only then are the blocks a bitmap scan does not read
 * in the store already.
 */
static int
rp_base_held(fb_db *db, const fb_vm *vm, const char *brp, const char *disk, const fb_hash *leaves,
             uint64_t n, char *why, size_t cap)
{
	fb_rp   *rp;
	fb_hash  root;
	fb_err   e = {0};
	int      ok = 0;

	if (fb_rp_get(db, vm->id, brp, &rp, &e) != FB_RV_OK) {
		snprintf(why, cap, "its base, point %s, is not a point of %s here", brp, vm->name);
		return 0;
	}
	for (size_t i = 0; i < rp->ndisks; i++)
		if (strcmp(rp->disks[i].name, disk) == 0)
			ok = rp->held && rp->disks[i].nblocks == n &&
			     fb_merkle_root_of(leaves, n, &root, &e) == FB_RV_OK &&
			     memcmp(&root, &rp->disks[i].root, sizeof(root)) == 0;
	free(rp);
	if (!ok)
		snprintf(why, cap, "its base is not point %s as this agent holds it", brp);
	return ok;
}

/*
 * One disk of a point being taken. A raw or qcow2 disk whose tracking the
 * caller asked for (watch->track) first has its tracking rolled forward to the
 * new point (tracker_roll: from now on writes count towards the next
 * point); *rolled says it was. When its bitmap since the previous point
 * can be believed (checked before the roll: the roll touches the wrapper)
 * and that point is held here, the disk's leaves are the base's with the
 * dirty blocks read and hashed again: nothing else is read. Otherwise the
 * disk is scanned whole, and the log says why.
 */
static uint32_t
rp_scan_disk(fb_db *db, const fb_vm *vm, size_t i, const char *rp_id, struct scan_ctx *ctx,
             fb_disk_scan *scan, int *rolled, fb_err *err)
{
	const fb_vm_disk *d   = &vm->disks[i];
	const char       *fmt = d->format[0] ? d->format : "raw";
	int               raw = strcmp(fmt, "raw") == 0;
	char              brp[FB_ID_LEN + 1], why[512] = "";
	fb_hash          *leaves = NULL;
	uint8_t          *bits   = NULL;
	uint64_t          n = 0, nblocks, size;
	struct stat       st;
	int               trusted;
	fb_err            e = {0};
	uint32_t          rv;

	*rolled = 0;
	/* raw disks are tracked by their wrapper, qcow2 ones in the image */
	if (ctx->watch == NULL || !ctx->watch->track || (!raw && strcmp(fmt, "qcow2") != 0) ||
	    stat(d->path, &st) != 0 || st.st_size <= 0 ||
	    (!raw && fb_image_probe(d->path, fmt, &size, &e) != FB_RV_OK))
		return fb_disk_hash_format(d->path, fmt, rp_visit, ctx, scan, err);
	/* the size the disk presents now (a qcow2 image's virtual size); a
	 * bitmap of another size is not believed (tracker.h) */
	if (raw)
		size = (uint64_t)st.st_size;
	nblocks = (size + FB_BLOCK_SIZE - 1) / FB_BLOCK_SIZE;
	trusted = !ctx->watch->full && tracker_trusted(d->path, fmt, size, brp, why, sizeof(why));
	if (ctx->watch->full)
		snprintf(why, sizeof(why), "a full scan was asked for");
	if (tracker_roll(d->path, fmt, size, rp_id, &e) == FB_RV_OK)
		*rolled = 1;
	else
		fb_log_warn("FB4034", "VM %s disk %s: its tracking stays where it was: %s", vm->name,
		            d->name, e.msg);
	/* read after the roll: a write meanwhile is in the old bitmap too */
	if (trusted && (trusted = tracker_changed(d->path, fmt, size, &leaves, &bits, brp, why,
	                                          sizeof(why))) != 0)
		trusted = rp_base_held(db, vm, brp, d->name, leaves, nblocks, why, sizeof(why));
	if (!trusted) {
		free(leaves);
		free(bits);
		fb_log_info("FB4035", "VM %s disk %s: point %s scans the disk whole: %s", vm->name,
		            d->name, rp_id, why);
		return fb_disk_hash_format(d->path, fmt, rp_visit, ctx, scan, err);
	}
	ctx->bitmap = 1;
	rv = fb_disk_rehash_marked(d->path, fmt, size, bits, nblocks, leaves, rp_visit, ctx, &n,
	                           err);
	ctx->bitmap = 0;
	free(bits);
	if (rv != FB_RV_OK) {
		free(leaves);
		return rv;
	}
	memset(scan, 0, sizeof(*scan));
	scan->leaves     = leaves;
	scan->nblocks    = nblocks;
	scan->size       = size;
	scan->bytes_read = n * FB_BLOCK_SIZE;
	fb_log_info("FB4036", "VM %s disk %s: point %s by the bitmap since point %s: %llu of %llu "
	            "blocks written, read only those",
	            vm->name, d->name, rp_id, brp, (unsigned long long)n, (unsigned long long)nblocks);
	return FB_RV_OK;
}

uint32_t
fb_rp_create(fb_db *db, fb_store *store, const char *vm_ref, int type, fb_rp **out,
             fb_rp_stats *stats, fb_err *err)
{
	return fb_rp_create_watched(db, store, vm_ref, type, NULL, out, stats, err);
}

uint32_t
fb_rp_create_watched(fb_db *db, fb_store *store, const char *vm_ref, int type,
                     const fb_rp_watch *watch, fb_rp **out, fb_rp_stats *stats, fb_err *err)
{
	fb_vm          *vm = NULL;
	fb_rp          *rp;
	fb_hash        *leaves[FB_MAX_DISKS] = {0};
	int             rolled[FB_MAX_DISKS] = {0};
	struct newset   set                  = {0};
	fb_rp_stats     local                = {0};
	struct scan_ctx ctx = {store, &set, stats ? stats : &local, watch, 0, 0, 0, 0, 0};
	uint32_t        rv;

	if (type < 0 || type > 2)
		return fb_err_set(err, FB_RV_INVALID_PARAMETER, "recovery point type %d", type);
	if ((rv = fb_vm_get(db, vm_ref, &vm, err)) != FB_RV_OK)
		return rv;
	if ((rp = calloc(1, sizeof(*rp))) == NULL) {
		free(vm);
		return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
	}
	if (!rp_busy_take(vm->id)) {
		free(rp);
		rv = fb_err_set(err, FB_RV_SYSTEM_IN_USE,
		                "VM '%s' has a recovery point operation in progress", vm->name);
		free(vm);
		return rv;
	}
	rp_scans_add(+1);
	if ((rv = fb_id_new(rp->id, err)) != FB_RV_OK)
		goto out;
	snprintf(rp->vm_id, sizeof(rp->vm_id), "%s", vm->id);
	snprintf(rp->algorithm, sizeof(rp->algorithm), "%s", FB_HASH_ALGORITHM);
	rp->time_ms = fb_clock_unix_ms();
	rp->type    = type;
	rp->ndisks  = vm->ndisks;
	for (size_t i = 0; i < vm->ndisks; i++)
		ctx.total += vm->disks[i].size;
	for (size_t i = 0; i < vm->ndisks; i++) {
		fb_disk_scan scan;

		if ((rv = rp_scan_disk(db, vm, i, rp->id, &ctx, &scan, &rolled[i], err)) != FB_RV_OK)
			goto out;
		ctx.base += scan.size;
		ctx.read_base = ctx.nread;
		leaves[i] = scan.leaves;
		ctx.stats->bytes_read += scan.bytes_read;
		snprintf(rp->disks[i].name, sizeof(rp->disks[i].name), "%s", vm->disks[i].name);
		rp->disks[i].size       = scan.size;
		rp->disks[i].block_size = FB_BLOCK_SIZE;
		rp->disks[i].nblocks    = scan.nblocks;
		if ((rv = fb_merkle_root_of(scan.leaves, scan.nblocks, &rp->disks[i].root, err)) !=
		    FB_RV_OK)
			goto out;
	}
	if ((rv = fb_store_sync(store, err)) != FB_RV_OK)
		goto out;
	if (watch != NULL && watch->committing != NULL && watch->committing(watch->arg) != 0) {
		rv = fb_err_set(err, FB_RV_FAILED, "the recovery point was cancelled");
		goto out;
	}

	{
		fb_rp_block *added = calloc(set.n + 1, sizeof(*added));
		size_t       k     = 0;

		if (added == NULL) {
			rv = fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
			goto out;
		}
		for (size_t i = 0; i < set.cap; i++)
			if (set.slots[i].used)
				added[k++] = (fb_rp_block){set.slots[i].h, set.slots[i].loc};
		pthread_mutex_lock(&write_mtx);
		rv = rp_commit(db, store, vm, rp, leaves, added, k, 1, ctx.stats, err);
		pthread_mutex_unlock(&write_mtx);
		free(added);
	}
	/* The point is there: a tracked disk's next bitmap counts from it. */
	for (size_t i = 0; rv == FB_RV_OK && i < vm->ndisks; i++) {
		fb_err e = {0};

		if (rolled[i] && tracker_base_write(vm->disks[i].path, rp->id, leaves[i],
		                                    rp->disks[i].nblocks, 0, &e) != FB_RV_OK)
			fb_log_warn("FB4037", "VM %s disk %s: no base for its next bitmap: %s", vm->name,
			            vm->disks[i].name, e.msg);
	}
out:
	if (rv != FB_RV_OK)
		rp_unappend(store, &set);
	rp_scans_add(-1);
	rp_busy_give(vm->id);
	for (size_t i = 0; i < FB_MAX_DISKS; i++)
		free(leaves[i]);
	free(set.slots);
	free(vm);
	if (rv != FB_RV_OK || out == NULL)
		free(rp);
	else
		*out = rp;
	return rv;
}

/* Loads the disks of each point in rps[0..n). */
static uint32_t
rp_load_disks(fb_db *db, fb_rp *rp, fb_err *err)
{
	sqlite3_stmt *st;
	uint32_t      rv;

	if ((rv = fb_db_prepare(db,
	                        "SELECT disk, size, block_size, block_count, root FROM rp_disks "
	                        "WHERE rp_id = ? ORDER BY rowid",
	                        &st, err)) != FB_RV_OK)
		return rv;
	sqlite3_bind_text(st, 1, rp->id, -1, SQLITE_STATIC);
	while (sqlite3_step(st) == SQLITE_ROW && rp->ndisks < FB_MAX_DISKS) {
		fb_rp_disk *d = &rp->disks[rp->ndisks++];

		snprintf(d->name, sizeof(d->name), "%s", (const char *)sqlite3_column_text(st, 0));
		d->size       = (uint64_t)sqlite3_column_int64(st, 1);
		d->block_size = (uint32_t)sqlite3_column_int64(st, 2);
		d->nblocks    = (uint64_t)sqlite3_column_int64(st, 3);
		if (sqlite3_column_bytes(st, 4) == FB_HASH_LEN)
			memcpy(d->root.b, sqlite3_column_blob(st, 4), FB_HASH_LEN);
	}
	sqlite3_finalize(st);
	return FB_RV_OK;
}

uint32_t
fb_rp_list(fb_db *db, const char *vm_ref, fb_rp **out, size_t *n, fb_err *err)
{
	fb_vm        *vm;
	sqlite3_stmt *st;
	fb_rp        *rps = NULL;
	size_t        cnt = 0, cap = 0;
	uint32_t      rv;

	if ((rv = fb_vm_get(db, vm_ref, &vm, err)) != FB_RV_OK)
		return rv;
	fb_db_lock(db);
	if ((rv = fb_db_prepare(db,
	                        "SELECT id, vm_id, time_ms, type, algorithm, held FROM rps "
	                        "WHERE vm_id = ? ORDER BY seq",
	                        &st, err)) != FB_RV_OK)
		goto out;
	sqlite3_bind_text(st, 1, vm->id, -1, SQLITE_STATIC);
	while (rv == FB_RV_OK && sqlite3_step(st) == SQLITE_ROW) {
		fb_rp *rp;

		if (cnt == cap) {
			fb_rp *g;
			cap = cap ? cap * 2 : 8;
			if ((g = realloc(rps, cap * sizeof(*rps))) == NULL) {
				rv = fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
				break;
			}
			rps = g;
		}
		rp = &rps[cnt++];
		memset(rp, 0, sizeof(*rp));
		snprintf(rp->id, sizeof(rp->id), "%s", (const char *)sqlite3_column_text(st, 0));
		snprintf(rp->vm_id, sizeof(rp->vm_id), "%s", (const char *)sqlite3_column_text(st, 1));
		rp->time_ms = sqlite3_column_int64(st, 2);
		rp->type    = sqlite3_column_int(st, 3);
		snprintf(rp->algorithm, sizeof(rp->algorithm), "%s",
		         (const char *)sqlite3_column_text(st, 4));
		rp->held = sqlite3_column_int(st, 5);
		rv       = rp_load_disks(db, rp, err);
	}
	sqlite3_finalize(st);
out:
	fb_db_unlock(db);
	free(vm);
	if (rv != FB_RV_OK) {
		free(rps);
		return rv;
	}
	*out = rps;
	*n   = cnt;
	return FB_RV_OK;
}

uint32_t
fb_rp_remove(fb_db *db, fb_store *store, const char *vm_ref, const char *rp_id,
             fb_rp_stats *stats, fb_err *err)
{
	fb_vm        *vm;
	sqlite3_stmt *st;
	fb_rp_stats   local = {0};
	uint32_t      rv;
	int           rc;

	if (stats == NULL)
		stats = &local;
	if (!fb_id_valid(rp_id))
		return fb_err_set(err, FB_RV_INVALID_PARAMETER,
		                  "'%.80s' is not a recovery point identifier", rp_id ? rp_id : "");
	if ((rv = fb_vm_get(db, vm_ref, &vm, err)) != FB_RV_OK)
		return rv;
	if (!rp_busy_take(vm->id)) {
		rv = fb_err_set(err, FB_RV_SYSTEM_IN_USE,
		                "VM '%s' has a recovery point operation in progress", vm->name);
		free(vm);
		return rv;
	}
	pthread_mutex_lock(&write_mtx);
	if ((rv = fb_db_begin(db, err)) != FB_RV_OK)
		goto out;
	if ((rv = fb_db_prepare(db, "SELECT 1 FROM rps WHERE id = lower(?) AND vm_id = ?", &st,
	                        err)) != FB_RV_OK) {
		fb_db_rollback(db);
		goto out;
	}
	sqlite3_bind_text(st, 1, rp_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, vm->id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW) {
		fb_db_rollback(db);
		rv = fb_err_set(err, FB_RV_FILE_NOT_FOUND, "VM '%s' has no recovery point %s",
		                vm->name, rp_id);
		goto out;
	}
	{
		char lower[FB_ID_LEN + 1];
		for (int i = 0; i <= FB_ID_LEN; i++)
			lower[i] = (char)(rp_id[i] >= 'A' && rp_id[i] <= 'F' ? rp_id[i] + 32 : rp_id[i]);
		rv = rp_drop(db, store, NULL, lower, err);
	}
	if (rv == FB_RV_OK && rp_may_sweep(0))
		rv = fb_store_sweep(store, &stats->blocks_freed, err);
	if (rv != FB_RV_OK) {
		fb_db_rollback(db);
		fb_store_forget(store);
		goto out;
	}
	if ((rv = fb_db_commit(db, err)) != FB_RV_OK) {
		fb_store_forget(store);
		goto out;
	}
	fb_store_release(store);
	stats->points_pruned = 1;
out:
	pthread_mutex_unlock(&write_mtx);
	rp_busy_give(vm->id);
	free(vm);
	return rv;
}

uint32_t
fb_rp_remove_vm(fb_db *db, fb_store *store, const char *vm_ref, int force, fb_rp_stats *stats,
                fb_err *err)
{
	fb_vm        *vm;
	sqlite3_stmt *st;
	char        (*ids)[FB_ID_LEN + 1] = NULL;
	size_t        n = 0, cap = 0;
	fb_rp_stats   local = {0};
	uint32_t      rv;
	int           rc;

	if (stats == NULL)
		stats = &local;
	if ((rv = fb_vm_get(db, vm_ref, &vm, err)) != FB_RV_OK)
		return rv;
	if (!rp_busy_take(vm->id)) {
		rv = fb_err_set(err, FB_RV_SYSTEM_IN_USE,
		                "VM '%s' has a recovery point operation in progress", vm->name);
		free(vm);
		return rv;
	}
	pthread_mutex_lock(&write_mtx);
	if ((rv = fb_db_begin(db, err)) != FB_RV_OK)
		goto out;
	if ((rv = fb_db_prepare(db, "SELECT id FROM rps WHERE vm_id = ?", &st, err)) != FB_RV_OK)
		goto fail;
	sqlite3_bind_text(st, 1, vm->id, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			size_t cap2 = cap ? cap * 2 : 8;
			void  *more = realloc(ids, cap2 * sizeof(*ids));

			if (more == NULL) {
				rc = SQLITE_NOMEM;
				break;
			}
			ids = more;
			cap = cap2;
		}
		snprintf(ids[n++], FB_ID_LEN + 1, "%s", (const char *)sqlite3_column_text(st, 0));
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		rv = fb_db_err(db, rc, "list the VM's points", err);
		goto fail;
	}
	for (size_t i = 0; i < n; i++)
		if (!force && keep_fn != NULL && keep_fn(ids[i])) {
			rv = fb_err_set(err, FB_RV_SYSTEM_IN_USE,
			                "recovery point %s of VM '%s' was pulled by a replica agent in the "
			                "last minutes, and a failback or replication may still need it: "
			                "wait, or remove with force",
			                ids[i], vm->name);
			goto fail;
		}
	for (size_t i = 0; i < n && rv == FB_RV_OK; i++)
		rv = rp_drop(db, store, NULL, ids[i], err);
	if (rv != FB_RV_OK)
		goto fail;
	if ((rv = fb_db_prepare(db, "DELETE FROM vms WHERE id = ?", &st, err)) != FB_RV_OK)
		goto fail;
	sqlite3_bind_text(st, 1, vm->id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		rv = fb_db_err(db, rc, "remove the VM", err);
		goto fail;
	}
	if (rp_may_sweep(0) && (rv = fb_store_sweep(store, &stats->blocks_freed, err)) != FB_RV_OK)
		goto fail;
	if ((rv = fb_db_commit(db, err)) != FB_RV_OK) {
		fb_store_forget(store);
		goto out;
	}
	fb_store_release(store);
	stats->points_pruned = n;
	goto out;
fail:
	fb_db_rollback(db);
	fb_store_forget(store);
out:
	pthread_mutex_unlock(&write_mtx);
	rp_busy_give(vm->id);
	free(vm);
	free(ids);
	return rv;
}

uint32_t
fb_rp_leaves(fb_db *db, const char *rp_id, const char *disk, fb_hash **leaves, uint64_t *n,
             fb_err *err)
{
	sqlite3_stmt *st;
	uint32_t      rv;
	int           rc;

	if (!fb_id_valid(rp_id) || !fb_name_valid(disk))
		return fb_err_set(err, FB_RV_INVALID_PARAMETER, "bad recovery point or disk name");
	fb_db_lock(db);
	if ((rv = fb_db_prepare(db,
	                        "SELECT d.leaves, d.block_count, r.held FROM rp_disks d "
	                        "JOIN rps r ON r.id = d.rp_id WHERE d.rp_id = lower(?) "
	                        "AND d.disk = ?",
	                        &st, err)) != FB_RV_OK) {
		fb_db_unlock(db);
		return rv;
	}
	sqlite3_bind_text(st, 1, rp_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, disk, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		size_t bytes = (size_t)sqlite3_column_bytes(st, 0);

		*n = (uint64_t)sqlite3_column_int64(st, 1);
		if (sqlite3_column_int(st, 2) == 0) {
			rv = fb_err_set(err, FB_RV_FILE_NOT_FOUND,
			                "recovery point %s is history here: its blocks are held by the "
			                "site it came from",
			                rp_id);
		} else if (bytes != *n * sizeof(fb_hash)) {
			rv = fb_err_set(err, FB_RV_FAILED, "manifest of %s/%s is corrupt", rp_id, disk);
		} else if ((*leaves = malloc(bytes ? bytes : 1)) == NULL) {
			rv = fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
		} else {
			memcpy(*leaves, sqlite3_column_blob(st, 0), bytes);
		}
	} else {
		rv = fb_err_set(err, FB_RV_FILE_NOT_FOUND, "no disk '%s' in recovery point %s", disk,
		                rp_id);
	}
	sqlite3_finalize(st);
	fb_db_unlock(db);
	return rv;
}

uint32_t
fb_rp_import(fb_db *db, const char *vm_id, const fb_rp *rps, size_t n, fb_err *err)
{
	fb_rp_stats st0 = {0};
	fb_vm      *vm;
	uint32_t    rv = FB_RV_OK;

	if ((rv = fb_vm_get(db, vm_id, &vm, err)) != FB_RV_OK)
		return rv;
	pthread_mutex_lock(&write_mtx);
	if ((rv = fb_db_begin(db, err)) != FB_RV_OK)
		goto out;
	for (size_t i = 0; i < n && rv == FB_RV_OK; i++) {
		sqlite3_stmt *st;
		fb_rp         rp = rps[i];
		int           rc;

		if (!fb_id_valid(rp.id) || rp.ndisks == 0 || rp.ndisks > FB_MAX_DISKS) {
			rv = fb_err_set(err, FB_RV_INVALID_PARAMETER, "not a usable recovery point");
			break;
		}
		if ((rv = fb_db_prepare(db, "SELECT 1 FROM rps WHERE id = lower(?)", &st, err)) !=
		    FB_RV_OK)
			break;
		sqlite3_bind_text(st, 1, rp.id, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
		sqlite3_finalize(st);
		if (rc == SQLITE_ROW)
			continue;
		for (char *c = rp.id; *c != '\0'; c++)
			if (*c >= 'A' && *c <= 'F')
				*c = (char)(*c + 32);
		snprintf(rp.vm_id, sizeof(rp.vm_id), "%s", vm->id);
		rv = rp_insert(db, &rp, NULL, err);
	}
	if (rv == FB_RV_OK)
		rv = rp_prune(db, NULL, NULL, vm, &st0, err);
	if (rv != FB_RV_OK) {
		fb_db_rollback(db);
		goto out;
	}
	rv = fb_db_commit(db, err);
out:
	pthread_mutex_unlock(&write_mtx);
	free(vm);
	return rv;
}

uint32_t
fb_rp_owner(fb_db *db, const char *rp_id, char *vm_id, fb_err *err)
{
	sqlite3_stmt *st;
	uint32_t      rv;
	int           rc;

	if (!fb_id_valid(rp_id))
		return fb_err_set(err, FB_RV_INVALID_PARAMETER, "'%.80s' is not a recovery point "
		                  "identifier", rp_id);
	fb_db_lock(db);
	if ((rv = fb_db_prepare(db, "SELECT vm_id FROM rps WHERE id = lower(?)", &st, err)) !=
	    FB_RV_OK) {
		fb_db_unlock(db);
		return rv;
	}
	sqlite3_bind_text(st, 1, rp_id, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW)
		snprintf(vm_id, FB_ID_LEN + 1, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	fb_db_unlock(db);
	if (rc == SQLITE_ROW)
		return FB_RV_OK;
	return rc == SQLITE_DONE
	           ? fb_err_set(err, FB_RV_FILE_NOT_FOUND, "no recovery point %s", rp_id)
	           : fb_db_err(db, rc, "find a recovery point", err);
}
