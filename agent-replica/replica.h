/*
 * replica.h - the replica agent: its state and the interfaces between the
 * files of its agent process. (The transfer worker, a separate process of
 * the same program, has worker.h; what both processes share is the job
 * table in job_store.h and the driver rows in driver.h.)
 *
 * Agent process, top down:
 *   control.c   ReplicationService handlers: decode, check, jobs_submit, 4096
 *   vmstate.c   the ReplicationState rules the handlers and the runner apply
 *   jobs.c      the registry of live runs: submit, cancel, views, resume
 *   runner.c    one thread per job: drives its driver, ends it durably
 *   supervise.c spawns, watches and restarts a job's transfer worker
 *   run.c       one live job's fields, its lock, its events and its row
 *   local.c     failover, revert, commit, rollback: disk work on this host
 *   relationship.c AdoptRecovery: the receiving side of a reversed
 *               relationship, asked by the other site's replica agent
 *   paths.c     where things live under the data directory
 *
 * Lock order (a thread holding one may take only those after it):
 *   jobs registry lock → a run's lock
 * The database lock (db.h) is never taken while holding either, and
 * neither is held across a disk write, an fsync or a network call.
 */
#ifndef FAILBACK_REPLICA_H
#define FAILBACK_REPLICA_H

#include <pthread.h>
#include <stdatomic.h>

#include "failback/agent.h"
#include "failback/db.h"
#include "failback/rp.h"
#include "failback/store.h"
#include "job.pb-c.h"
#include "job_store.h"
#include "types.pb-c.h"

#define JOB_REMOVAL_MS 300000 /* TimeBeforeRemoval: 5 minutes after the end */

/* The replica's own settings (its keys in --help and the settings file). */
typedef struct replica_settings {
	char *peer_url;          /* the primary agent's resync listener */
	char *peer_name;         /* DNS name in the primary agent's certificate */
	char *max_transfer_rate; /* MiB/s per job, 0 = unlimited */
	/* This host's primary agent (agents' listener): it takes a VM on when
	 * its relationship is reversed here, and the other site pulls from it,
	 * so the URL must be one the other site reaches. */
	char *local_primary_url;
	char *local_primary_name;
	char *recovery_name; /* default DNS name of the other site's replica agent */
	char *change_tracking; /* qcow2 or off (tracker.c) */
	char *verify_mode;     /* after a bitmap compare: fast or full */
	char *recovery_format; /* raw or qcow2: what a failover writes recovery disks as */
} replica_settings;

typedef struct replica {
	fb_agent                *agent;
	const fb_agent_settings *set;
	const replica_settings  *rset;
	fb_db                   *db;
	fb_store                *store;
	int                      tracking; /* recovery disks get a qcow2 wrapper and bitmap */
	char                     dir[4096];
} replica;

/* --- paths.c: all fail (Invalid parameter) rather than truncate --- */
uint32_t replica_path(const replica *r, char *out, size_t len, fb_err *err, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
uint32_t replica_path_vm(const replica *r, const char *vm_id, char *out, size_t len, fb_err *err);
uint32_t replica_path_undo(const replica *r, const char *vm_id, char *out, size_t len,
                           fb_err *err);

/* --- run.c: one live job. Every field is read and written under mtx. --- */
struct job_driver;

typedef struct run {
	pthread_mutex_t          mtx;
	pthread_cond_t           cv; /* signalled when cancel_pending clears */
	replica                 *r;
	const struct job_driver *drv;
	Failback__JobParams     *params; /* immutable while the run lives */
	char                     id[FB_ID_LEN + 1];
	char                     vm_key[FB_VM_NAME_MAX + 1];
	char                     vm_id[FB_ID_LEN + 1];
	int                      state;
	char                     phase[32];
	uint64_t                 bytes_done, bytes_total, blocks_done, blocks_total, rate;
	uint64_t                 wire, bytes_read;
	char                     compare_mode[16];
	uint64_t                 rate_t0, rate_b0;
	int                      rate_started; /* rate_t0/rate_b0 set by a report */
	uint32_t                 error_code;
	char                     error[FB_ERR_MSG_MAX];
	uint32_t                 cancel;    /* 0, or the RequestedState (4 Terminate, 5 Kill) */
	int                      cancel_pending; /* a cancel is being recorded */
	int                      finishing; /* past the point where a cancel can be honoured */
	int                      vm_state_want, vm_health_want; /* -1: nothing to record */
	int                      vm_state_pending;              /* recording it failed so far */
	int                      end_state;    /* 0, or the end (Completed...) to make durable */
	char                     end_phase[32];
	int                      ended; /* the end is durable and visible: the VM is free */
	uint64_t                 last_publish; /* runner thread only */
	uint64_t                 started_ms;   /* monotonic, when accepted */
	_Atomic uint64_t         beat_ms; /* monotonic: the supervisor's last turn; 0 unwatched */
} run;

/* A copy of a run's visible fields, taken under its lock. */
typedef struct run_view {
	char     id[FB_ID_LEN + 1], vm_id[FB_ID_LEN + 1], phase[32];
	int      state, type;
	uint64_t bytes_done, bytes_total, blocks_done, blocks_total, rate, wire, bytes_read;
	char     compare_mode[16];
	uint32_t error_code;
	char     error[FB_ERR_MSG_MAX];
} run_view;

/* run_new makes a run in state New (takes params); run_free frees it. */
run     *run_new(replica *r, const struct job_driver *drv, const char *id, const char *vm_key,
                 const char *vm_id, Failback__JobParams *params);
void     run_free(run *j);
void     run_view_get(run *j, run_view *v);                 /* takes j->mtx */
void     run_view_locked(const run *j, run_view *v);        /* j->mtx held by the caller */
void     run_view_to_row(const run_view *v, job_row *row);  /* the view's fields over a row */
uint32_t run_cancel_requested(run *j);                      /* takes j->mtx */
/* run_finish_or_cancel: the point of no return. Waits out a cancel being
 * recorded; returns its RequestedState (the job must be cancelled), or 0
 * and marks the run finishing (later cancels are refused). */
uint32_t run_finish_or_cancel(run *j);
/* run_set_state persists and publishes a state; an end (Completed,
 * Terminated, Killed, Exception) is only noted: run_make_end_durable makes
 * it visible once it and the VM's state are durable. */
void     run_set_state(run *j, int state, const char *phase);
void     run_set_error(run *j, uint32_t code, const char *desc); /* takes j->mtx */
void     run_set_vm_id(run *j, const char *vm_id);           /* takes j->mtx */
/* run_progress takes a worker's counters; persists only a phase change. */
void     run_progress(run *j, const Failback__JobReport *rep);
void     run_publish(run *j);          /* an event with the run's fields; takes j->mtx */
uint32_t run_persist(run *j, fb_err *err); /* writes the row; blocks on the database */
/* run_record_vm records the VM's ReplicationState and health (or keeps
 * them pending for run_make_end_durable); blocks on the database. */
void     run_record_vm(run *j, int state, int health);
/* run_make_end_durable retries persisting the end (row and VM state) every
 * second until it sticks; then shows the end and frees the VM for its next
 * job (ended), in one step. An end that cannot be recorded at once (a full
 * disk) is shown meanwhile, with the VM still in use. */
void     run_make_end_durable(run *j);

/* --- jobs.c: the registry. Every function takes the registry lock
 * briefly; none holds it across I/O. --- */
int      jobs_vm_busy(const char *vm_key);
/* jobs_healthy is 1 while the job registry answers within 2 s and every
 * supervised transfer's runner turned within the last minute; otherwise
 * it says why (the agent's health check: watchdog, /healthz). */
int      jobs_healthy(char *why, size_t cap);
int      jobs_vm_state(const char *vm_id, int *state); /* 1: a pending state to report */
uint32_t jobs_submit(replica *r, int type, const char *vm_key, const Failback__JobParams *params,
                     char *job_id, fb_err *err); /* blocks on the database (fsync) */
uint32_t jobs_cancel(replica *r, const char *job_id, uint32_t requested, fb_err *err);
/* jobs_each_running calls fn with a view of every run not ended yet and
 * its JobType (registry lock held: fn must not block). */
void jobs_each_running(void (*fn)(const run_view *v, int type, void *arg), void *arg);

/* metrics.c: the replica's part of /metrics. */
void replica_metrics_job_end(int type, const char *vm_id, int state, uint64_t started_ms,
                             uint64_t bytes, uint64_t blocks, uint64_t wire);
void replica_metrics_worker_restart(void);
void replica_metrics(fb_agent *agent, fb_metrics *m);

/* jobs_view: the job's row with a live run's fields over it. */
uint32_t jobs_view(replica *r, const char *job_id, job_row *out, fb_err *err);
uint32_t jobs_list(replica *r, const char *vm_id, char (**ids)[FB_ID_LEN + 1], size_t *n,
                   fb_err *err);
uint32_t jobs_start(replica *r, fb_err *err); /* resume jobs a restart interrupted */

/* --- runner.c --- */
/* runner_start starts j's thread; on_end is called from it, last, before j is freed. */
uint32_t runner_start(run *j, void (*on_end)(run *j), fb_err *err);

/* --- supervise.c --- */
enum supervise_outcome { SUPERVISE_DONE, SUPERVISE_FAILED, SUPERVISE_CANCELLED };
/* supervise runs j's transfer in worker processes until one finishes, the
 * job fails (error recorded in j) or is cancelled. Blocks for the job. */
enum supervise_outcome supervise(run *j);

/* --- local.c: in the runner thread; block on disk I/O --- */
uint32_t local_failover(replica *r, const char *vm_id, const char *rp_id, fb_err *err);
uint32_t local_revert(replica *r, const char *vm_id, fb_err *err);
uint32_t local_commit(replica *r, const char *vm_id, fb_err *err);
uint32_t local_rollback(replica *r, const char *vm_id, uint64_t *blocks, fb_err *err);
uint32_t local_forget_undo(replica *r, const char *vm_id, fb_err *err);
/* local_discard_undo deletes a VM's forgotten undo log (apply.h);
 * local_discard_forgotten, at the agent's start, every one a crash left. */
void     local_discard_undo(replica *r, const char *vm_id);
void     local_discard_forgotten(replica *r);
/* local_track_commit makes the bases a completed failback left the bases of
 * fresh bitmaps (tracker_commit), once its worker and its locks are gone. */
uint32_t local_track_commit(replica *r, const char *vm_id, fb_err *err);

/* --- vmstate.c --- */
/* vmstate_check: Invalid state unless the driver's method may start in
 * the VM's state (System is in use first, when the VM has a running job). */
uint32_t    vmstate_check(const struct job_driver *drv, const fb_vm *vm, fb_err *err);
const char *vmstate_name(int state);

/* --- relationship.c: the steps another site's agent asks of this one --- */
extern const fb_rpc_method replica_relationship_methods[];
extern const size_t        replica_relationship_nmethods;

/* --- control.c --- */
extern const fb_rpc_method replica_control_methods[];
extern const size_t        replica_control_nmethods;

#endif
