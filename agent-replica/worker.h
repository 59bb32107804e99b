/*
 * worker.h - the transfer worker process (`failback-replica --worker-job
 * ID`, started and watched by supervise.c). Its files, top down:
 *
 *   worker.c    the process: opens its state, picks the job's flow from its
 *               driver row, turns the flow's error into the final report
 *   failback.c  InitiateFailback: negotiate → compare → transfer → verify
 *   replicate.c Replicate: negotiate → compare → transfer → adopt
 *   reverse.c   ReverseReplicationRelationship: the relationship steps
 *   session.c   the primary: where, the pinned certificate, connections,
 *               calls with retries, the throttle, the networked tree walk
 *   fetch.c     the fetch pipeline: fetchers and the in-order ring
 *   progress.c  counters and phase; the reports to the agent
 *
 * Every stage returns a Hyper-V value with an fb_err; only worker_main
 * exits. The worker never calls into the agent's job registry: it reads
 * its job and writes its checkpoints through job_store.h only.
 *
 * Threads: the main thread runs the flow; fetch_run adds
 * FB_WORKER_FETCHERS fetcher threads for its duration. The progress
 * counters are written by the main thread only, except `wire` (atomic).
 */
#ifndef FAILBACK_WORKER_H
#define FAILBACK_WORKER_H

#include "failback/proof.h"
#include "failback/throttle.h"
#include "failback/rpc.h"
#include "failback/rsd.h"
#include "failback/merkle.h"
#include "failback/walk.h"
#include "job.pb-c.h"
#include "wire_limits.h"
#include "replica.h"
#include "resync.pb-c.h"

#define FB_WORKER_FETCHERS 4     /* connections pulling at once */
#define FB_WORKER_RETRIES  6     /* attempts at a connection or a call */
#define FB_CALL_TIMEOUT_MS 20000 /* one call to the primary */
#define FB_ADOPT_WAIT_MS   600000 /* AdoptPrimary: waiting out an earlier point job */
#define FB_STALL_MS        25000 /* fetchers without headway: stop reporting */
#define FB_REPORT_MAX      4096  /* bytes of one JobReport */

/* --- progress.c --- */
typedef struct progress {
	int      fd; /* the report pipe (stdout) */
	char     phase[32];
	char     vm_id[FB_ID_LEN + 1];
	uint64_t bytes_done, bytes_total, blocks_done, blocks_total;
	uint64_t wire; /* atomic: added to by the fetchers */
	uint64_t read; /* bytes read from the VM's disks (compare, verify) */
	char     mode[16]; /* how the compare decided what to read */
	uint64_t last_emit;
} progress;

void progress_phase(progress *p, const char *phase);  /* and report it */
void progress_emit(progress *p, int force);           /* at most every 100 ms unless forced */
void progress_sleep_ms(progress *p, unsigned ms);     /* sleeps, reporting */
void progress_add_wire(progress *p, uint64_t bytes);  /* any thread */
uint64_t progress_wire(progress *p);                  /* any thread */
/* progress_end sends the final report: DONE for rv 0, else FAILED. */
void progress_end(progress *p, uint32_t rv, const char *desc);

/* --- session.c --- */
typedef struct session {
	const char     *job;
	progress       *pg;
	char            url[600];
	char            sname[300];
	char            pin[129]; /* the primary's certificate thumbprint, "" = none */
	nng_tls_config *tls;
	int             pinned; /* every connection must present the pinned certificate */
	const replica  *r;      /* whose certificate proves who asks (proof.h) */
	uint8_t         token[FB_PROOF_TOKEN_LEN]; /* the primary's session, if it gave one */
	size_t          token_len;
	fb_rpc_client  *cli[FB_WORKER_FETCHERS];
	fb_throttle     throttle; /* --max-transfer-rate */
} session;

/* session_open finds the primary (the settings' PrimaryConnectionPoint and
 * port, else the job's primary (p->peer_url), else the VM's relationship
 * (vm may be NULL), else the agent's peer), checks the certificate pinned
 * for it, and opens connection 0, with retries (the others, up to
 * FB_WORKER_FETCHERS, on their first call). Blocks. */
uint32_t session_open(session *s, const replica *r, const fb_vm *vm,
                      const Failback__JobParams *p, const fb_rsd *rsd, progress *pg,
                      const char *job, fb_err *err);
/* session_open_to opens nconn (1..FB_WORKER_FETCHERS) connections to the
 * agent at url whose certificate names sname, with retries. */
uint32_t session_open_to(session *s, const replica *r, const char *url, const char *sname,
                         int nconn, progress *pg, const char *job, fb_err *err);
/* session_call: one ResyncSource call on connection i, retried on a lost
 * or silent primary. Thread-safe for distinct i. */
uint32_t session_call(session *s, int i, const char *method, const ProtobufCMessage *in,
                      ProtobufCMessage **out, fb_err *err);
/* session_call_svc: the same for any service, with its own timeout. */
uint32_t session_call_svc(session *s, int i, const ProtobufCServiceDescriptor *svc,
                          const char *method, const ProtobufCMessage *in, ProtobufCMessage **out,
                          uint32_t timeout_ms, fb_err *err);
/* session_throttle holds the pull to --max-transfer-rate (main thread). */
void session_throttle(session *s);
/* session_walk compares the target tree of rp/disk (n leaves, root) with
 * local (may be NULL) over GetTreeNodes; see walk.h for the results. */
uint32_t session_walk(session *s, const char *rp, const char *disk, uint64_t n,
                      const fb_hash *root, const fb_merkle *local, int want_leaves,
                      fb_walk_diff **diffs, size_t *nd, fb_hash **leaves, fb_err *err);
/* session_negotiate asks for the target point (rp "" = newest), naming the
 * points this replica holds and its generation of the VM, and validates
 * the manifest (fb_pb_check_rp). A primary of an older generation than
 * this replica's is refused (Invalid state) unless force. */
uint32_t session_negotiate(session *s, fb_db *db, const char *vm_ref, const char *rp, int force,
                           Failback__NegotiateResponse **rsp, fb_err *err);

/* --- fetch.c --- */
/* A block to bring: disk (index into the names), block, leaf hash. */
typedef struct fetch_item {
	uint32_t disk;
	uint64_t block;
	fb_hash  h;
} fetch_item;

/* One batch, as consume sees it: data holds n blocks; got[i] is 1 when
 * block i's data is there (from the wire or, with fill_local, the local
 * store); the others are zero blocks, or still to be filled. When the
 * fetch asked for compression, packed is not NULL and block i's zstd
 * frame, as the primary sent it (decoded and verified into data), is the
 * packed_len[i] bytes at packed + packed_off[i]; packed_len[i] 0 means the
 * block came raw: it did not compress. */
typedef struct fetch_batch {
	const fetch_item *items;
	size_t            n;
	uint8_t          *data;
	const uint8_t    *got;
	const uint8_t    *packed;
	const uint32_t   *packed_off, *packed_len;
} fetch_batch;

typedef uint32_t (*fetch_consume_fn)(void *arg, const fetch_batch *b, fb_err *err);

typedef struct fetch_spec {
	session           *s;
	fb_store          *store;
	const char        *vm;    /* for messages */
	const char        *rp;
	const char *const *disks; /* names by fetch_item.disk */
	int                compress;
	int                fill_local;  /* copy blocks the store holds instead of pulling them */
	int                keep_frames; /* hand compressed frames to consume as they came (a
	                                 * store takes them without compressing again) */
} fetch_spec;

/* fetch_run brings items (batches never cross disks: the caller orders
 * items by disk and a batch ends at a disk's end) through
 * FB_WORKER_FETCHERS connections; consume sees each batch in order on the
 * calling thread. Each block from the wire is checked against its hash. */
uint32_t fetch_run(const fetch_spec *f, const fetch_item *items, size_t n,
                   fetch_consume_fn consume, void *arg, fb_err *err);
/* fetch_fill_local reads the blocks of a batch that did not come over the
 * wire from the store. */
uint32_t fetch_fill_local(fb_store *store, const fetch_batch *b, fb_err *err);

/* --- worker.c --- */
typedef struct worker {
	replica             *r;
	fb_db               *db;
	fb_store            *store;
	const char          *job;
	int                  type;
	Failback__JobParams *params;
	fb_rsd               rsd;
	session              s;
	progress             pg;
} worker;

/* worker_lease_check, before each write to a disk: the data directory's
 * lease is still this worker's agent's. If not (another node took the
 * directory over while this host was frozen), the worker ends at once,
 * reporting and writing nothing (FB6005, exit FB_LEASE_LOST_EXIT). */
void worker_lease_check(const worker *w);

/* worker_main is the body of `failback-replica --worker-job ID`. */
void worker_main(replica *r, const char *job_id) __attribute__((noreturn));

/* --- the flows (driver.h): each returns with the job's transfer done and
 * durable, or an error --- */
uint32_t failback_flow(worker *w, fb_err *err);
uint32_t replicate_flow(worker *w, fb_err *err);
uint32_t estimate_flow(worker *w, fb_err *err);
uint32_t reverse_flow(worker *w, fb_err *err);

#endif
