/*
 * job_store.h - the replica's jobs table and its checkpoints: the one home
 * of their SQL, used by the agent (rows) and by the transfer worker
 * (checkpoints). Every function takes the database and nothing else of the
 * agent; each takes the database lock for its statement only (db.h) and
 * blocks on it, and those that write block on an fsync.
 *
 * A finished job is kept TimeBeforeRemoval (5 minutes): reads skip older
 * ones, and inserting a job deletes them.
 */
#ifndef FAILBACK_JOB_STORE_H
#define FAILBACK_JOB_STORE_H

#include <stdint.h>

#include "failback/db.h"
#include "failback/id.h"
#include "job.pb-c.h"

/* The replica's schema, appended to the common one (db.h). */
extern const fb_db_schema job_store_schema;

typedef struct job_row {
	char     id[FB_ID_LEN + 1];
	char     vm_id[FB_VM_NAME_MAX + 1]; /* the GUID, or the name a first replication was given */
	int      type;
	int      state;
	char     phase[32];
	unsigned percent;
	uint32_t error_code;
	char     error[512];
	int64_t  submitted_ms, started_ms, ended_ms;
	uint64_t bytes_done, bytes_total, blocks_done, blocks_total, rate;
	uint64_t wire, bytes_read; /* bytes on the wire, bytes read from the VM's disks */
	char     compare_mode[16]; /* "bitmap", "full scan", or "" */
	uint32_t cancel; /* a cancel acknowledged to a caller: 4 Terminate, 5 Kill */
} job_row;

/* job_percent: the PercentComplete of a run's phase, counters and state.
 * The phases of the jobs that hash and pull share the range, so it moves
 * from the start of Comparing: InitiateFailback Comparing 0-30 (bytes
 * hashed), Transferring 30-70 (blocks), Verifying 70-100 (bytes read);
 * Replicate Comparing 0-30, Transferring 30-100; EstimateFailback
 * Comparing 0-90, Sampling 90-100. Other jobs follow their blocks. 100
 * only once Completed. */
struct run_view;
unsigned job_percent(const struct run_view *v);

/* job_store_insert persists a New job (id, VM key, type, first phase,
 * params) in one transaction that also deletes expired jobs. */
uint32_t job_store_insert(fb_db *db, const char *id, const char *vm_key, int type,
                          const char *phase, const Failback__JobParams *params, fb_err *err);

/* job_store_update writes a row's state, phase, percent, error, VM id (if
 * not empty), counters, and the start and end times the state implies. */
uint32_t job_store_update(fb_db *db, const job_row *row, fb_err *err);

/* job_store_cancel records an acknowledged cancel of a job not ended yet
 * (Invalid state if it has ended). */
uint32_t job_store_cancel(fb_db *db, const char *id, uint32_t requested, fb_err *err);

/* job_store_get loads one live (not expired) job; *params (params may be
 * NULL) receives its parameters (free with failback__job_params__free_unpacked).
 * File not found when there is none. */
uint32_t job_store_get(fb_db *db, const char *id, job_row *row, Failback__JobParams **params,
                       fb_err *err);

/* job_store_list gives the ids of the live jobs of vm_id ("" = all), oldest
 * first (free *ids with free()). */
uint32_t job_store_list(fb_db *db, const char *vm_id, char (**ids)[FB_ID_LEN + 1], size_t *n,
                        fb_err *err);

/* job_store_unfinished gives the ids of the jobs a stop interrupted (New
 * or Running), oldest first (free *ids with free()). */
uint32_t job_store_unfinished(fb_db *db, char (**ids)[FB_ID_LEN + 1], size_t *n, fb_err *err);

/* Checkpoints: how far a worker got (NULL when it has none). */
uint32_t job_store_checkpoint_save(fb_db *db, const char *id, const Failback__JobCheckpoint *cp,
                                   fb_err *err);
uint32_t job_store_checkpoint_load(fb_db *db, const char *id, Failback__JobCheckpoint **cp,
                                   fb_err *err);

#endif
