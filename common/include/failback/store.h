/*
 * store.h - the content-addressed block store (DESIGN §4).
 *
 * Blocks live in append-only pack files <dir>/pack-NNNNNN (rotated at
 * 1 GiB); each record is a 48-byte header (magic, stored length, raw
 * length, flags, block hash) and the data, zstd-compressed when that saves
 * at least an eighth. The index (hash → pack, offset, lengths, flags,
 * reference count) is the `blocks` table of the agent database. All-zero
 * blocks are never stored: their leaf hash alone says what they hold.
 *
 * Durability protocol, used by every writer:
 *   1. fb_store_append each new block (no database lock held);
 *   2. fb_store_sync (fsync the packs written);
 *   3. in one transaction: fb_store_index_add / fb_store_ref, plus the
 *      rows that reference the blocks, then commit.
 * A crash before 3 commits leaves only unindexed bytes at a pack's tail,
 * which fb_store_open truncates. Freeing is the mirror image: fb_store_sweep
 * deletes unreferenced rows inside the transaction, and fb_store_release
 * punches their bytes out of the packs after the commit (fb_store_open
 * punches any gap a crash left behind).
 *
 * Every read verifies the block's hash and names the pack and offset of a
 * mismatch.
 */
#ifndef FAILBACK_STORE_H
#define FAILBACK_STORE_H

#include <stdint.h>

#include "failback/db.h"
#include "failback/err.h"
#include "failback/hash.h"

typedef struct fb_store fb_store;

typedef struct fb_store_loc {
	uint32_t pack;
	uint64_t offset;
	uint32_t stored_len;
	uint32_t raw_len;
	uint32_t flags;
	uint32_t crc;     /* CRC-32C of the record as written (header and data) */
	int      has_crc; /* 0: indexed before records had one (the hash checks it) */
} fb_store_loc;

#define FB_STORE_ZSTD   1u
#define FB_STORE_HEADER 48u /* bytes before each record's data */

#define FB_STORE_NO_RECLAIM 1 /* another process may be writing: leave packs alone */

/* fb_store_open opens dir (creating it) over db and, unless flags has
 * FB_STORE_NO_RECLAIM, reclaims what a crash left unindexed (only the
 * process that owns the data directory, at start, may do that). Each
 * opener appends to a new pack of its own, so several processes can add
 * blocks at once. The db must outlive the store. */
uint32_t fb_store_open(fb_store **out, fb_db *db, const char *dir, int flags, fb_err *err);
void     fb_store_close(fb_store *s);

/* fb_store_append writes one block (len <= FB_BLOCK_SIZE bytes, hash h)
 * at the end of the current pack. Thread-safe. Not durable, not indexed. */
uint32_t fb_store_append(fb_store *s, const fb_hash *h, const void *data, uint32_t len,
                         fb_store_loc *loc, fb_err *err);

/* fb_store_append_as writes block h (FB_BLOCK_SIZE bytes at data) as it is
 * given, never compressing: the zstd frame z of zlen bytes when z is not
 * NULL (a frame the caller decoded and verified against h, as a
 * ReadBlocks reply carries it), the raw data otherwise (the sender found
 * it did not compress). A frame that does not state a content size of 1
 * to FB_BLOCK_SIZE bytes is ignored and data compressed as by
 * fb_store_append. Thread-safe. Not durable, not indexed. */
uint32_t fb_store_append_as(fb_store *s, const fb_hash *h, const void *data, const void *z,
                            uint32_t zlen, fb_store_loc *loc, fb_err *err);

/* fb_store_sync makes every append so far durable. */
uint32_t fb_store_sync(fb_store *s, fb_err *err);

/* fb_store_contains looks h up in the index (takes the database lock). */
uint32_t fb_store_contains(fb_store *s, const fb_hash *h, int *present, fb_err *err);

/* Inside a transaction (fb_db_begin held by the caller): */
/* add an index row with refs references; *added is 0 if h was already indexed. */
uint32_t fb_store_index_add(fb_store *s, const fb_hash *h, const fb_store_loc *loc, int64_t refs,
                            int *added, fb_err *err);
/* change h's reference count; a missing block is an error naming it. */
uint32_t fb_store_ref(fb_store *s, const fb_hash *h, int64_t delta, fb_err *err);
/* fb_store_ref of each of hashes[0..n) that is not the zero block's (one
 * prepared statement for them all: a point's leaves are many). */
uint32_t fb_store_ref_leaves(fb_store *s, const fb_hash *hashes, uint64_t n, int64_t delta,
                             fb_err *err);
/* the same with deltas[i] for hashes[i] (a zero delta is skipped), or
 * delta for all when deltas is NULL */
uint32_t fb_store_ref_deltas(fb_store *s, const fb_hash *hashes, const int64_t *deltas,
                             int64_t delta, uint64_t n, fb_err *err);
/* delete rows with no references, remembering their bytes for release. */
uint32_t fb_store_sweep(fb_store *s, uint64_t *freed_blocks, fb_err *err);

/* fb_store_discard punches one appended record that will never be indexed
 * (a point that failed before its commit). Best effort: open() reclaims
 * anything left. */
void fb_store_discard(fb_store *s, const fb_store_loc *loc);

/* After the transaction: punch the swept bytes out (after a commit), or
 * forget them (after a rollback). */
void fb_store_release(fb_store *s);
void fb_store_forget(fb_store *s);

/* fb_store_get reads block h into buf (FB_BLOCK_SIZE bytes; the part
 * beyond the block's raw length is zero-filled), verified: by the CRC-32C
 * its index entry keeps of the record (header, with h in it, and data), or
 * for an entry made before records had one, by hashing the data. The zero
 * hash yields zeros without a lookup. */
uint32_t fb_store_get(fb_store *s, const fb_hash *h, void *buf, fb_err *err);
/* fb_store_get_packed is fb_store_get that also copies the record's zstd
 * frame into z (room for ZSTD_COMPRESSBOUND(FB_BLOCK_SIZE) bytes) and sets
 * *zlen to its length when the block is stored compressed, 0 when it is
 * stored raw (it did not compress): what a sender can pass on without
 * compressing it again. When it sets *zlen > 0 for a record whose index
 * entry has a CRC, buf is not filled: the CRC over the record as written
 * and the hash in its header prove it is block h, with no decoding (the
 * receiver decodes and checks the hash anyway). */
uint32_t fb_store_get_packed(fb_store *s, const fb_hash *h, void *buf, void *z, uint32_t *zlen,
                             fb_err *err);

/* fb_store_expect says that about n lookups of scattered hashes follow.
 * Each reads a page of the index, at random when the host's page cache
 * does not hold it: when n reaches 1/32 of the database's pages, the
 * database and its write-ahead log are read ahead in sequence instead
 * (asynchronously, POSIX_FADV_WILLNEED), which costs about as much as
 * that 1/32 read at random. */
void fb_store_expect(fb_store *s, uint64_t n);

/* fb_store_locate says where block h lives (File not found if nowhere). */
uint32_t fb_store_locate(fb_store *s, const fb_hash *h, fb_store_loc *loc, fb_err *err);

/* fb_store_pack_path writes the path of pack id into out. */
void fb_store_pack_path(const fb_store *s, uint32_t pack, char *out, size_t len);

#endif
