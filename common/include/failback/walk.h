/*
 * walk.h - the top-down comparison of a target Merkle tree against a local
 * one, as an iterator with no I/O (DESIGN §3).
 *
 * The caller asks fb_walk_next which nodes of the target tree it needs
 * (the caller fetches their children's hashes, e.g. with GetTreeNodes),
 * feeds the hashes back with fb_walk_feed, and repeats until next yields
 * none. The walk descends only into children whose hash differs from the
 * local tree's node at the same place, so the hashes exchanged stay within
 * FB_MERKLE_FANOUT x interior levels x differing leaves. fb_walk_finish then
 * gives the differing leaves (in block order) and, when asked for at open,
 * the target's whole leaf list, checked against the target root.
 *
 * Nothing from the feeder is trusted: a feed must carry exactly the number
 * of hashes fb_walk_expected names, and the leaves must give the root.
 * Not thread-safe: one walk, one thread. Never blocks.
 */
#ifndef FAILBACK_WALK_H
#define FAILBACK_WALK_H

#include <stddef.h>
#include <stdint.h>

#include "failback/err.h"
#include "failback/hash.h"
#include "failback/merkle.h"

typedef struct fb_walk fb_walk;

typedef struct fb_walk_ref {
	unsigned level; /* >= 1: interior nodes only */
	uint64_t index;
} fb_walk_ref;

typedef struct fb_walk_diff {
	uint64_t block;
	fb_hash  h; /* the target's leaf */
} fb_walk_diff;

/* fb_walk_open starts a walk of a target tree over n >= 1 leaves with root
 * target_root. local (may be NULL: every leaf differs) must have n leaves;
 * it must outlive the walk. want_leaves: also assemble the target's leaves. */
uint32_t fb_walk_open(fb_walk **out, uint64_t n, const fb_hash *target_root,
                      const fb_merkle *local, int want_leaves, fb_err *err);
void     fb_walk_close(fb_walk *w); /* close(NULL) is a no-op */

/* fb_walk_next writes up to cap node references whose children the walk
 * needs next; *k = 0 means the walk is done. Between two calls of next,
 * feed must be called once for the refs returned. */
uint32_t fb_walk_next(fb_walk *w, fb_walk_ref *refs, size_t cap, size_t *k, fb_err *err);

/* fb_walk_expected is the number of hashes the last next's refs have as
 * children (the exact count a feed must carry). */
size_t fb_walk_expected(const fb_walk *w);

/* fb_walk_feed takes the children's hashes of the last next's refs, in
 * order, node after node. Invalid parameter if nh is not fb_walk_expected. */
uint32_t fb_walk_feed(fb_walk *w, const fb_hash *hashes, size_t nh, fb_err *err);

/* fb_walk_hashes counts the hashes fed so far. */
uint64_t fb_walk_hashes(const fb_walk *w);

/* fb_walk_finish, once next yielded none: the differing leaves (malloc'd,
 * *nd entries, block order; free with free()) and, if asked for at open,
 * the target's leaves (malloc'd, n entries; else *leaves = NULL). Failed if
 * the assembled leaves do not give the target root. leaves may be NULL. */
uint32_t fb_walk_finish(fb_walk *w, fb_walk_diff **diffs, size_t *nd, fb_hash **leaves,
                        fb_err *err);

/* fb_walk_levels is the number of levels of a tree over n leaves (leaves
 * included; at least 2) and fills width[0..levels) when width is given
 * (room for 32). */
unsigned fb_walk_levels(uint64_t n, uint64_t *width);

#endif
