/*
 * merkle.h - the Merkle tree over a disk's leaf hashes.
 *
 * Fan-out FB_MERKLE_FANOUT (8). Level 0 holds the leaves; node i of level
 * k+1 is fb_hash_node over children [8i, 8i+8) of level k (fewer at the
 * right edge). Levels are built until one node remains, and there is
 * always at least one interior level, so the root of a one-block disk is
 * H(0x01 || leaf). Fan-out 8 balances the two costs of the top-down
 * comparison: hashes sent per isolated changed block (8 per level, ~37 for
 * a 1 GiB disk) and round trips (one per level, 5 for 1 GiB).
 *
 * The tree is derived data: only leaves are stored; interior levels are
 * rebuilt in memory (about N/7 node hashes over 257-byte inputs).
 */
#ifndef FAILBACK_MERKLE_H
#define FAILBACK_MERKLE_H

#include <stddef.h>
#include <stdint.h>

#include "failback/err.h"
#include "failback/hash.h"

#define FB_MERKLE_FANOUT 8u

typedef struct fb_merkle fb_merkle;

/* fb_merkle_build builds the tree over n >= 1 leaves (copied). */
uint32_t fb_merkle_build(fb_merkle **out, const fb_hash *leaves, uint64_t n, fb_err *err);
void     fb_merkle_free(fb_merkle *t);

/* Levels: 0 = leaves ... fb_merkle_levels(t) - 1 = the root level (1 node). */
unsigned       fb_merkle_levels(const fb_merkle *t);
uint64_t       fb_merkle_width(const fb_merkle *t, unsigned level);
const fb_hash *fb_merkle_node(const fb_merkle *t, unsigned level, uint64_t index);
const fb_hash *fb_merkle_root(const fb_merkle *t);

/* fb_merkle_children gives the first child index and count of a node. */
void fb_merkle_children(const fb_merkle *t, unsigned level, uint64_t index, uint64_t *first,
                        unsigned *count);

/* fb_merkle_root_of computes only the root of n leaves. */
uint32_t fb_merkle_root_of(const fb_hash *leaves, uint64_t n, fb_hash *root, fb_err *err);

#endif
