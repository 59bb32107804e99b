/*
 * replica.h - the replica agent's state and the interfaces between its
 * files: control.c (ReplicationService handlers, synchronous checks),
 * jobs.c (persisted jobs, their runner threads, worker supervision,
 * events), local.c (failover, revert, commit, rollback: disk work on this
 * host) and worker.c (the pull from the primary, run in a separate,
 * supervised process).
 */
#ifndef FAILBACK_REPLICA_H
#define FAILBACK_REPLICA_H

#include "failback/agent.h"
#include "failback/db.h"
#include "failback/rp.h"
#include "failback/store.h"
#include "job.pb-c.h"
#include "types.pb-c.h"

/* CIM_ConcreteJob.JobType values (reference §4). */
#define JT_FAILOVER  97
#define JT_REVERT    98
#define JT_COMMIT    99
#define JT_REPLICATE 106
#define JT_FAILBACK  124

#define JOB_REMOVAL_MS 300000 /* TimeBeforeRemoval: 5 minutes after the end */

typedef struct replica {
	fb_agent                *agent;
	const fb_agent_settings *set;
	fb_db                   *db;
	fb_store                *store;
	char                     dir[4096];
	int                      argc;
	char                   **argv;
} replica;

/* Paths under the data directory. */
void replica_vm_dir(const replica *r, const char *vm_id, char *out, size_t len);
void replica_undo_path(const replica *r, const char *vm_id, char *out, size_t len);

/* jobs.c */
uint32_t jobs_start(replica *r, fb_err *err); /* resume jobs a restart interrupted */
int      jobs_vm_busy(const char *vm_key);
/* jobs_vm_state: 1 and the state a finished job set but could not record yet. */
int      jobs_vm_state(const char *vm_id, int *state);
uint32_t jobs_submit(replica *r, int type, const char *vm_key, const Failback__JobParams *params,
                     char *job_id, fb_err *err);
uint32_t jobs_cancel(replica *r, const char *job_id, uint32_t requested, fb_err *err);
uint32_t jobs_load(replica *r, const char *job_id, Failback__Job *job, Failback__JobParams **params,
                   char *vm_id, size_t vm_id_len, fb_err *err);
uint32_t jobs_list(replica *r, const char *vm_id, char (**ids)[FB_ID_LEN + 1], size_t *n,
                   fb_err *err);
uint32_t jobs_save_checkpoint(fb_db *db, const char *job_id, const Failback__JobCheckpoint *cp,
                              fb_err *err);
uint32_t jobs_load_checkpoint(fb_db *db, const char *job_id, Failback__JobCheckpoint **cp,
                              fb_err *err);

/* local.c */
uint32_t local_failover(replica *r, const char *vm_id, const char *rp_id, fb_err *err);
uint32_t local_revert(replica *r, const char *vm_id, fb_err *err);
uint32_t local_commit(replica *r, const char *vm_id, fb_err *err);
uint32_t local_rollback(replica *r, const char *vm_id, uint64_t *blocks, fb_err *err);

/* worker.c: the body of `failback-replica --worker-job ID`. Never returns. */
void worker_main(replica *r, const char *job_id) __attribute__((noreturn));

extern const fb_rpc_method replica_control_methods[];
extern const size_t        replica_control_nmethods;

#endif
