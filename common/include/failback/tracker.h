/*
 * tracker.h - change tracking of disks: a qcow2 wrapper with a persistent
 * dirty bitmap over each raw disk, or the bitmap inside a disk that is a
 * qcow2 image itself (tracker.c). The replica tracks its recovery disks, a
 * primary (with change_tracking = qcow2) the raw and qcow2 disks it serves
 * in place.
 * format is the disk's (NULL, "" or raw: a wrapper; qcow2: in the image).
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

/* tracker_image: the file the hypervisor opens so that writes are
 * tracked: the wrapper of a raw disk, or a qcow2 disk itself. */
void tracker_image(const char *disk, const char *format, char *out, size_t cap);

/* tracker_available is 1 when qemu-img and qemu-nbd can be run. */
int tracker_available(void);

/* tracker_create makes (or remakes) the wrapper of the raw disk (size
 * bytes) with an empty bitmap fb-<rp>; the raw data is not touched. For a
 * qcow2 disk, its fb- bitmaps give way to an empty fb-<rp>. */
uint32_t tracker_create(const char *raw, const char *format, uint64_t size, const char *rp,
                        fb_err *err);

/* tracker_dirty reads the bitmap fb-<rp> of a tracked disk: 1 with *bits
 * (one byte per 64 KiB block, 1 = written since rp; free()) when it can be
 * believed, else 0 with why. */
int tracker_dirty(const char *raw, const char *format, uint64_t size, const char *rp,
                  uint8_t **bits, char *why, size_t cap);

/* The base: the disk's leaves when its bitmap started (see tracker.c). */
uint32_t tracker_base_write(const char *raw, const char *rp, const fb_hash *leaves, uint64_t n,
                            int pending, fb_err *err);

/* tracker_changed gives, for a tracked disk whose bitmap and base can be
 * believed, the base leaves and the dirty bits (both free()) and the point
 * they count from: 1; else 0 and why. */
int tracker_changed(const char *raw, const char *format, uint64_t size, fb_hash **leaves,
                    uint8_t **bits, char *rp, char *why, size_t cap);

/* tracker_suspend drops the base before a job writes the disk around the
 * wrapper; tracker_commit, in the agent once the job is done and its locks
 * are gone, makes a pending base (written by the job) the base and starts
 * a fresh bitmap from its point. */
void     tracker_suspend(const char *raw);
uint32_t tracker_commit(const char *raw, const char *format, uint64_t size, fb_err *err);

/* tracker_trusted says, from the base and the tracked image's metadata
 * alone, whether the disk's bitmap can be believed: 1 with the point it
 * counts from (FB_ID_LEN + 1 bytes), else 0 with why. */
int tracker_trusted(const char *raw, const char *format, uint64_t size, char *rp, char *why,
                    size_t cap);

/* tracker_roll, on a primary before it scans a disk for point rp, makes
 * the tracked image's bitmaps the base's and a new one fb-<rp> (a raw
 * disk's wrapper is made when there is none), so that writes from now on
 * are tracked for the next point; the caller writes the base once rp is
 * committed. An image a writer holds open is left as it is (System is in
 * use): its base and bitmap go on counting from their older point. */
uint32_t tracker_roll(const char *raw, const char *format, uint64_t size, const char *rp,
                      fb_err *err);

#endif
