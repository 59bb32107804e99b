/*
 * primary.h - the primary agent's state, shared by its service files.
 */
#ifndef FAILBACK_PRIMARY_H
#define FAILBACK_PRIMARY_H

#include "failback/agent.h"
#include "failback/db.h"
#include "failback/store.h"

typedef struct primary {
	fb_agent   *agent;
	const char *local_replica_name; /* the replica agent of this host (AdoptPrimary) */
	uint64_t    scan_rate;          /* bytes/s a point's scan may read; 0: no cap */
	int         tracking;           /* change_tracking = qcow2 (tracker.h) */
	fb_db      *db;                 /* DATA_DIR/state.db */
	fb_store   *store;              /* DATA_DIR/blocks */
} primary;

/* primary_metrics: the primary's part of /metrics (control.c). */
void primary_metrics(primary *p, fb_metrics *m);

/* primary_vm_active: this agent is the VM's primary (not handed over). */
struct fb_vm;
int primary_vm_active(const struct fb_vm *vm);

/* primary_resync_init: points being served are kept by pruning (resync.c). */
void primary_resync_init(void);
/* primary_sessions_open loads (or makes, 0600) DATA_DIR/session.key, the
 * key of the session tokens Negotiate gives (resync.c). */
uint32_t primary_sessions_open(const char *data_dir, fb_err *err);

/* --- points.c: taking a recovery point as a job --- */
extern const fb_db_schema primary_schema; /* the point_jobs table */
/* points_start starts a job taking a point of vm (type 0-2; full: read
 * every disk whole even where a bitmap could be believed); its GUID goes
 * to job_id (FB_ID_LEN + 1). System is in use while one runs for the VM. */
uint32_t points_start(primary *p, const struct fb_vm *vm, int type, int full, char *job_id,
                      fb_err *err);
/* points_recover marks the jobs a stop interrupted as failed (at start). */
uint32_t points_recover(primary *p, fb_err *err);
/* PrimaryService.GetPointJob and CancelPointJob. */
uint32_t points_get_job(void *arg, fb_rpc_call *call, const ProtobufCMessage *in,
                        ProtobufCMessage *out);
uint32_t points_cancel_job(void *arg, fb_rpc_call *call, const ProtobufCMessage *in,
                           ProtobufCMessage *out);

extern const fb_rpc_method primary_relationship_methods[];
extern const size_t        primary_relationship_nmethods;
extern const fb_rpc_method primary_control_methods[];
extern const size_t        primary_control_nmethods;
extern const fb_rpc_method primary_resync_methods[];
extern const size_t        primary_resync_nmethods;

#endif
