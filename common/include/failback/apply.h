/*
 * apply.h - writing blocks into disk images so that every write can be
 * undone: the one home of a failback's undo log (undo.h holds its record
 * format).
 *
 * The rule, per batch of blocks of one disk:
 *   1. the old content of each block is appended to the undo log, and the
 *      log is fsynced;
 *   2. only then the new content is written (a zero block is zeroed, fb_fs_zero);
 *   3. fb_apply_sync fsyncs the disk; the caller then records its progress.
 * The data may lag the log: writing a block again after a crash writes the
 * same content, and replaying keeps the oldest record of a block.
 *
 * fb_apply_rollback replays the log onto the disks (newest record first, so
 * the pre-failback content lands last), fsyncs them and only then removes
 * the log; any failure keeps the log, so the rollback can be run again.
 * fb_apply_forget puts the log out of reach once the new content is final.
 *
 * Disks are given by index (the VM's disk order), which is what the log
 * records. Every file operation goes through fsops.h, so a test can fail
 * each one. An fb_apply belongs to one thread; nothing here takes a lock
 * or touches the network; every call blocks on disk I/O.
 */
#ifndef FAILBACK_APPLY_H
#define FAILBACK_APPLY_H

#include <stddef.h>
#include <stdint.h>

#include "failback/err.h"
#include "failback/hash.h"

typedef struct fb_apply fb_apply;

/* One image: where it is, how large (its last block may be short), its
 * format (NULL or "" = raw; others are written through qemu-nbd, dev.h)
 * and the open file that holds its lock (-1: none; dev.h). */
typedef struct fb_apply_disk {
	const char *path;
	uint64_t    size;
	const char *format;
	int         lock_fd;
} fb_apply_disk;

/* fb_apply_open opens (creating) the undo log at undo_path, and its
 * directory, over ndisks images (copied; opened read-write on first use). */
uint32_t fb_apply_open(fb_apply **out, const char *undo_path, const fb_apply_disk *disks,
                       size_t ndisks, fb_err *err);
void     fb_apply_close(fb_apply *a); /* close(NULL) is a no-op; does not sync */

/* fb_apply_blocks writes n blocks of disk d: blocks[i] gets FB_BLOCK_SIZE
 * bytes at data + i * FB_BLOCK_SIZE (cut at the disk's end), or zeros when
 * zero[i]. Steps 1 and 2 above. */
uint32_t fb_apply_blocks(fb_apply *a, uint32_t d, const uint64_t *blocks, const uint8_t *zero,
                         const uint8_t *data, size_t n, fb_err *err);

/* fb_apply_sync makes the writes to disk d durable (step 3). */
uint32_t fb_apply_sync(fb_apply *a, uint32_t d, fb_err *err);

/* fb_apply_rollback restores the disks from the log at undo_path (a missing
 * log restores nothing) and removes it; *records (may be NULL) counts the
 * records applied. */
uint32_t fb_apply_rollback(const char *undo_path, const fb_apply_disk *disks, size_t ndisks,
                           uint64_t *records, fb_err *err);

/* fb_apply_forget makes the writes final: the log is renamed out of a
 * rollback's reach, durably, to "<undo_path>.done" (one rename and a
 * directory fsync, where deleting a log of 85 MB took 50-65 ms, freeing
 * its blocks). fb_apply_discard deletes that file, later, when nothing
 * waits for it; a crash in between leaves it for the next discard or the
 * agent's start. */
uint32_t fb_apply_forget(const char *undo_path, fb_err *err);
void     fb_apply_discard(const char *undo_path);

/* fb_block_len is the length of block index of a disk of size bytes. */
static inline uint32_t
fb_block_len(uint64_t size, uint64_t index)
{
	uint64_t off = index * FB_BLOCK_SIZE;

	return off >= size ? 0 : size - off < FB_BLOCK_SIZE ? (uint32_t)(size - off) : FB_BLOCK_SIZE;
}

#endif
