/*
 * undo.h - the undo log of a failback: before a block of the recovery-VM
 * disk is overwritten, its old content is appended here and made durable
 * (fb_undo_sync) before the new content is written.
 *
 * Replaying applies the records newest first, so when a block was recorded
 * more than once (a batch redone after a crash records the half-new
 * content again) the oldest record, the true pre-failback content, lands
 * last. A torn record at the end (crash while appending) fails its
 * checksum and is ignored: its block had not been overwritten yet.
 *
 * One log per VM (undo/<vm-guid>), kept across failed jobs until a failback
 * completes or is cancelled, so a cancel always returns the disk to what it
 * was before the first InitiateFailback.
 */
#ifndef FAILBACK_UNDO_H
#define FAILBACK_UNDO_H

#include <stdint.h>

#include "failback/err.h"

typedef struct fb_undo fb_undo;

uint32_t fb_undo_open(fb_undo **out, const char *path, fb_err *err);
/* data == NULL records an all-zero block (restored by zeroing). */
uint32_t fb_undo_append(fb_undo *u, uint32_t disk, uint64_t block, const void *data, uint32_t len,
                        fb_err *err);
uint32_t fb_undo_sync(fb_undo *u, fb_err *err);
void     fb_undo_close(fb_undo *u);

/* data == NULL: restore zeros of len bytes. */
typedef uint32_t (*fb_undo_apply_fn)(void *arg, uint32_t disk, uint64_t block, const void *data,
                                     uint32_t len, fb_err *err);

/* fb_undo_replay applies every intact record of path, newest first. A
 * missing log replays nothing. */
uint32_t fb_undo_replay(const char *path, fb_undo_apply_fn fn, void *arg, uint64_t *records,
                        fb_err *err);

/* fb_undo_remove deletes the log durably (a missing log is fine). */
uint32_t fb_undo_remove(const char *path, fb_err *err);

#endif
