/*
 * driver.h - one row per job type: everything the replica knows about a
 * kind of job, in one place (QEMU's JobDriver). The control handlers check
 * a call against its row, the runner drives a job by its row, and the
 * transfer worker picks its flow from it. Adding a job type is one row in
 * drivers.c plus the file with its work.
 */
#ifndef FAILBACK_DRIVER_H
#define FAILBACK_DRIVER_H

#include <stddef.h>
#include <stdint.h>

#include "failback/err.h"

struct replica;
struct run;
struct worker;

/* CIM_ConcreteJob.JobType values (reference §4). */
enum {
	JT_FAILOVER  = 97,
	JT_REVERT    = 98,
	JT_COMMIT    = 99,
	JT_REVERSE   = 104,
	JT_REPLICATE = 106,
	JT_FAILBACK  = 124,
	JT_ESTIMATE  = 32770, /* vendor range: EstimateFailback */
};

#define VMSTATE_KEEP (-1) /* a state field that leaves the VM's state alone */
#define VMSTATE_PREV (-2) /* the state the VM had when the job was accepted */

typedef struct job_driver {
	int         type;        /* JobType */
	const char *method;      /* the ReplicationService method that starts it */
	const char *first_phase; /* phase while New and at the start */
	int         cancellable;
	const int  *allowed;     /* ReplicationStates the method may start in */
	size_t      nallowed;
	int         during;      /* ReplicationState while it runs (health 1), or KEEP */
	int         after;       /* on success (health 1) */
	int         failed;      /* on failure, or PREV */
	int         failed_health;
	/* Where the work runs: flow in a supervised worker process (worker.h),
	 * or local in the runner thread. Exactly one is set. */
	uint32_t (*flow)(struct worker *w, fb_err *err);
	uint32_t (*local)(struct replica *r, struct run *j, fb_err *err);
	/* After a successful flow, before the job is Completed (may be NULL). */
	uint32_t (*commit)(struct replica *r, struct run *j, fb_err *err);
	/* On cancel: undo what the job did (may be NULL: nothing to undo). */
	uint32_t (*rollback)(struct replica *r, struct run *j, uint64_t *blocks, fb_err *err);
	/* The flow opens its own sessions (else the worker opens one with the
	 * VM's primary before the flow). */
	int own_sessions;
	/* Once the job's Completed end is durable and announced (may be NULL):
	 * work nobody waits for. */
	void (*done)(struct replica *r, struct run *j);
} job_driver;

/* driver_of returns the row of a JobType, or NULL. */
const job_driver *driver_of(int type);

#endif
