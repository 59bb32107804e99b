/*
 * rp.h - recovery points: immutable manifests of a VM's disks.
 *
 * A point has a GUID, its VM, a time, a type (standard,
 * application-consistent, planned) and per disk: size, block size, block
 * count, leaf hashes (stored) and Merkle root (DESIGN §4). The algorithm id
 * (FB_HASH_ALGORITHM) is recorded with it.
 *
 * Taking a point reads each disk once (disk.h), stores the blocks the store
 * lacks, makes them durable, then commits the manifest, the new index rows,
 * the reference counts and the pruning that RecoveryHistory asks for in ONE
 * transaction: after a crash at any step the point is wholly there or
 * absent, and no block it needs is missing. RecoveryHistory N keeps the
 * newest point plus N older ones; blocks no point references any more are
 * freed.
 *
 * Operations on the points of one VM are serialised; a second one while
 * the first runs gets System is in use.
 *
 * Locks and blocking: every function here blocks on the database lock
 * (db.h) and so must not be called inside an fb_db_begin bracket.
 * fb_rp_create blocks for a whole disk scan, with no lock held meanwhile
 * (other VMs' points are taken in parallel); commits take a process-wide
 * commit lock for their transaction only. While any scan is in flight,
 * commits leave unreferenced blocks for a later commit to sweep.
 */
#ifndef FAILBACK_RP_H
#define FAILBACK_RP_H

#include "failback/db.h"
#include "failback/hash.h"
#include "failback/store.h"
#include "failback/vm.h"

typedef struct fb_rp_disk {
	char     name[FB_NAME_MAX + 1];
	uint64_t size;
	uint32_t block_size;
	uint64_t nblocks;
	fb_hash  root;
} fb_rp_disk;

typedef struct fb_rp {
	char       id[FB_ID_LEN + 1];
	char       vm_id[FB_ID_LEN + 1];
	int64_t    time_ms;
	int        type;
	char       algorithm[16];
	int        held; /* 1: leaves and blocks here; 0: history (ids and roots only) */
	size_t     ndisks;
	fb_rp_disk disks[FB_MAX_DISKS];
} fb_rp;

typedef struct fb_rp_stats {
	uint64_t bytes_read;    /* from the disks (holes not read) */
	uint64_t blocks_new;    /* stored by this point */
	uint64_t bytes_stored;  /* pack bytes written by this point */
	uint64_t points_pruned;
	uint64_t blocks_freed;
} fb_rp_stats;

/* fb_rp_create takes a point of VM vm_ref (blocks: reads every disk). *out (may be NULL) receives it
 * (free with free()); stats (may be NULL) what it cost. */
uint32_t fb_rp_create(fb_db *db, fb_store *store, const char *vm_ref, int type, fb_rp **out,
                      fb_rp_stats *stats, fb_err *err);

/* fb_rp_create_watched is fb_rp_create reporting to watch (may be NULL):
 * progress(arg, bytes scanned, bytes of all disks, bytes read so far: what
 * a rate cap counts) is called from the scan for each block it visits; a nonzero return stops the point (Failed, "the
 * recovery point was cancelled", nothing kept). committing(arg) (may be
 * NULL) is called once the scan is over, just before the point is
 * committed: the last moment a cancel can stop it, the same way. track:
 * the raw disks are change-tracked (tracker.h): each point rolls a disk's
 * tracking forward to itself, and reads only the blocks the bitmap since
 * the previous point names when it can be believed. */
typedef struct fb_rp_watch {
	int (*progress)(void *arg, uint64_t done, uint64_t total, uint64_t read);
	void *arg;
	int (*committing)(void *arg);
	int track;
	int full; /* with track: scan every disk whole (the bitmaps still roll) */
} fb_rp_watch;
uint32_t fb_rp_create_watched(fb_db *db, fb_store *store, const char *vm_ref, int type,
                              const fb_rp_watch *watch, fb_rp **out, fb_rp_stats *stats,
                              fb_err *err);

/* fb_rp_list returns the VM's points, held and history, oldest first
 * (free with free()). */
uint32_t fb_rp_list(fb_db *db, const char *vm_ref, fb_rp **out, size_t *n, fb_err *err);

/* fb_rp_remove removes one point and frees the blocks only it used. */
uint32_t fb_rp_remove(fb_db *db, fb_store *store, const char *vm_ref, const char *rp_id,
                      fb_rp_stats *stats, fb_err *err);

/* fb_rp_remove_vm unregisters a VM: its points (freeing the blocks only
 * they used), its disks' records and the VM, in one transaction. Its disk
 * images are not touched. System in use while a point operation runs or
 * a replica agent is pulling one of its points (fb_rp_set_keep) unless
 * force. */
uint32_t fb_rp_remove_vm(fb_db *db, fb_store *store, const char *vm_ref, int force,
                         fb_rp_stats *stats, fb_err *err);

/* A block a caller appended to the store for a point it is about to adopt. */
typedef struct fb_rp_block {
	fb_hash      h;
	fb_store_loc loc;
} fb_rp_block;

/* fb_rp_adopt commits a point built elsewhere (a replica pulling the
 * primary's point keeps its id): the blocks the caller appended (already
 * synced), the manifest with leaves[i] for disk i, references, pruning by
 * the VM's RecoveryHistory and the sweep, in one transaction. The point's
 * roots must match its leaves. */
uint32_t fb_rp_adopt(fb_db *db, fb_store *store, const fb_rp *rp, fb_hash *const *leaves,
                     const fb_rp_block *added, size_t nadded, fb_rp_stats *stats, fb_err *err);

/* fb_rp_import records points of another site as history of VM vm_id:
 * ids, times, types and per-disk roots and sizes, no leaves and no blocks
 * (DESIGN §2a: the points both sites share). Points the VM already has
 * are left alone; the history kept is bounded (the oldest beyond
 * FB_MAX_HISTORY + 1 history points go). One transaction. */
uint32_t fb_rp_import(fb_db *db, const char *vm_id, const fb_rp *rps, size_t n, fb_err *err);

/* fb_rp_set_keep installs the process's test of points pruning must keep
 * although RecoveryHistory would drop them (the primary: points a replica
 * is pulling). Called inside a commit's transaction: fn must not take the
 * database lock. NULL: keep none. */
typedef int (*fb_rp_keep_fn)(const char *rp_id);
void fb_rp_set_keep(fb_rp_keep_fn fn);

/* fb_rp_get finds one point of a VM by id, or the newest held one for "". */
uint32_t fb_rp_get(fb_db *db, const char *vm_ref, const char *rp_id, fb_rp **out, fb_err *err);

/* fb_rp_leaves loads one disk's leaf hashes (free with free()). File not
 * found for a history point (its leaves are at another site). */
/* fb_rp_owner writes the GUID of the VM that point rp_id belongs to. */
uint32_t fb_rp_owner(fb_db *db, const char *rp_id, char *vm_id, fb_err *err);

uint32_t fb_rp_leaves(fb_db *db, const char *rp_id, const char *disk, fb_hash **leaves,
                      uint64_t *n, fb_err *err);

#endif
