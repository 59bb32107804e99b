/*
 * wire_limits.h - the wire's numbers, defined once for the proto side and both
 * agents. A request or reply that exceeds one of them is refused by the
 * receiver before anything is allocated for it.
 */
#ifndef FAILBACK_WIRE_LIMITS_H
#define FAILBACK_WIRE_LIMITS_H

/* Disks a VM (and so a recovery point's manifest) may have. */
#define FB_WIRE_MAX_DISKS 16

/* Tree nodes one GetTreeNodes may ask for; the reply carries each node's
 * children, FB_MERKLE_FANOUT (8) hashes at most per node. */
#define FB_WIRE_MAX_TREE_NODES 4096

/* Blocks one ReadBlocks may ask for. */
#define FB_WIRE_MAX_READ_BLOCKS 64

/* Blocks the replica asks for per ReadBlocks and applies per durable step. */
#define FB_WIRE_BATCH 32

/* The largest disk a manifest may describe: 64 TiB (2^30 blocks of 64 KiB,
 * so a leaf list fits in 32 GiB of hashes at most and a block index in
 * 32 bits of a 64-bit field with room to spare). */
#define FB_WIRE_MAX_DISK_BYTES (1ull << 46)

/* Recovery points one relationship message may list (a VM keeps at most
 * 25 of its own plus the history it shares with the other site). */
#define FB_WIRE_MAX_POINTS 64

/* Characters of an agent URL or a certificate name in a relationship. */
#define FB_WIRE_MAX_URL  511
#define FB_WIRE_MAX_NAME 255

#if FB_WIRE_BATCH > FB_WIRE_MAX_READ_BLOCKS
#error "a batch must fit in one ReadBlocks"
#endif

#endif
