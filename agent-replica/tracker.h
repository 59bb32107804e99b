/*
 * tracker.h - change tracking on the recovery side: a qcow2 wrapper with a
 * persistent dirty bitmap over each raw recovery disk (tracker.c).
 */
#ifndef FAILBACK_TRACKER_H
#define FAILBACK_TRACKER_H

#include <stddef.h>
#include <stdint.h>

#include "failback/err.h"
#include "failback/hash.h"
#include "failback/id.h"

/* tracker_wrapper: the wrapper's path for a raw disk ("<raw>.qcow2"). */
void tracker_wrapper(const char *raw, char *out, size_t cap);

/* tracker_available is 1 when qemu-img and qemu-nbd can be run. */
int tracker_available(void);

/* tracker_create makes (or remakes) the wrapper of the raw disk (size
 * bytes) with an empty bitmap fb-<rp>; the raw data is not touched. */
uint32_t tracker_create(const char *raw, uint64_t size, const char *rp, fb_err *err);

/* tracker_restart starts the tracking of a tracked disk over, from the
 * point rp (after a failback made the disk equal rp). Nothing when the
 * disk is not tracked. */
uint32_t tracker_restart(const char *raw, const char *rp, fb_err *err);

/* tracker_dirty reads the bitmap of a tracked disk: 1 with *bits (one
 * byte per 64 KiB block, 1 = written since rp; free()) and rp (the point
 * the bitmap counts from, FB_ID_LEN + 1 bytes) when it can be believed,
 * else 0 with why. */
int tracker_dirty(const char *raw, uint64_t size, uint8_t **bits, char *rp, char *why,
                  size_t cap);

/* The base: the disk's leaves when its bitmap started (see tracker.c). */
uint32_t tracker_base_write(const char *raw, const char *rp, const fb_hash *leaves, uint64_t n,
                            int pending, fb_err *err);

/* tracker_changed gives, for a tracked disk whose bitmap and base can be
 * believed, the base leaves and the dirty bits (both free()) and the point
 * they count from: 1; else 0 and why. */
int tracker_changed(const char *raw, uint64_t size, fb_hash **leaves, uint8_t **bits, char *rp,
                    char *why, size_t cap);

/* tracker_suspend drops the base before a job writes the disk around the
 * wrapper; tracker_commit, in the agent once the job is done and its locks
 * are gone, makes a pending base (written by the job) the base and starts
 * a fresh bitmap from its point. */
void     tracker_suspend(const char *raw);
uint32_t tracker_commit(const char *raw, uint64_t size, fb_err *err);

#endif
