/*
 * worker.h - what worker.c (the job flows) and pull.c (the tree walk and
 * the fetch pipeline) share inside a transfer worker process.
 */
#ifndef FAILBACK_WORKER_H
#define FAILBACK_WORKER_H

#include "failback/rpc.h"
#include "failback/rsd.h"
#include "failback/merkle.h"
#include "replica.h"

#define FB_WORKER_FETCHERS 3 /* connections pulling at once */
#define FB_WORKER_RETRIES  6 /* attempts at a connection or a call */

typedef struct worker {
	replica             *r;
	fb_db               *db;
	fb_store            *store;
	const char          *job;
	int                  type;
	Failback__JobParams *params;
	fb_rsd               rsd;
	char                 url[600];
	char                 sname[300];
	nng_tls_config      *tls;
	fb_rpc_client       *cli[FB_WORKER_FETCHERS];
	char                 phase[32];
	uint64_t             bytes_done, bytes_total, blocks_done, blocks_total;
	uint64_t             last_emit;
	uint64_t             wire;
	uint64_t             rate_cap;   /* bytes/s, 0 = none */
	uint64_t             xfer_t0, xfer_b0;
	fb_hash             *local[FB_MAX_DISKS]; /* compare-phase leaves, NULL after a resume */
} worker;


/* A differing leaf: block index and its hash in the target. */
struct diff {
	uint64_t block;
	fb_hash  h;
};

/* A block to bring: disk (index into the caller's disk names), block, leaf hash. */
struct item {
	uint32_t disk;
	uint64_t block;
	fb_hash  h;
};

/* Sees each batch in order: data holds n blocks; got[i] is 1 when block i's
 * data is there: it came over the wire or, with fill_local, was copied from
 * the local store (the others are zero blocks, or still to be filled). */
typedef void (*consume_fn)(worker *w, void *arg, const struct item *items, size_t n,
                           uint8_t *data, const uint8_t *got);

/* worker.c */
void worker_emit(worker *w, int force);
void worker_die(worker *w, uint32_t rv, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));
void worker_sleep_ms(worker *w, unsigned ms);

/* pull.c */
uint32_t pull_call(worker *w, int i, const char *method, const ProtobufCMessage *in,
                   ProtobufCMessage **out, fb_err *err);
void     pull_walk(worker *w, const char *rp, const char *disk, uint64_t n,
                   const fb_hash *target_root, const fb_merkle *local, fb_hash *target_leaves,
                   struct diff **diffs, size_t *ndiffs);
void     pull_pipeline(worker *w, const char *rp, const char *const *disks,
                       const struct item *items, size_t n, int compress, int fill_local,
                       consume_fn consume, void *arg);
void     pull_fill_local(worker *w, const struct item *it, size_t n, uint8_t *data,
                         const uint8_t *got);

#endif
