/*
 * metrics.c - the replica agent's part of /metrics (agent.c serves it):
 * jobs running and ended by type and state, their durations, what they
 * moved, worker restarts, and each VM's last failback. Counters count since
 * the agent started, as Prometheus counters do; the agent process only.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "driver.h"
#include "failback/clock.h"
#include "replica.h"

#define MAX_TYPES 8
#define MAX_VMS   1024

static pthread_mutex_t mtx = PTHREAD_MUTEX_INITIALIZER;
static struct {
	int          type;
	uint64_t     ended[4]; /* Completed, Terminated, Killed, Exception */
	fb_histogram duration;
} types[MAX_TYPES];
static size_t   ntypes;
static uint64_t bytes_total, blocks_total, wire_total, restarts;
static struct {
	char     vm[FB_ID_LEN + 1];
	int      state;
	uint64_t at_unix_ms;
} last[MAX_VMS];
static size_t nlast;

static const char *const end_names[4] = {"Completed", "Terminated", "Killed", "Exception"};

void
replica_metrics_job_end(int type, const char *vm_id, int state, uint64_t started_ms,
                        uint64_t bytes, uint64_t blocks, uint64_t wire)
{
	size_t t;
	int    e = state - FAILBACK__JOB_STATE__JS_COMPLETED;

	if (e < 0 || e > 3)
		return;
	pthread_mutex_lock(&mtx);
	for (t = 0; t < ntypes && types[t].type != type; t++)
		;
	if (t == ntypes && ntypes < MAX_TYPES)
		types[ntypes++].type = type;
	if (t < ntypes) {
		types[t].ended[e]++;
		fb_histogram_observe(&types[t].duration,
		                     (double)(fb_clock_mono_ms() - started_ms) / 1000.0);
	}
	bytes_total += bytes;
	blocks_total += blocks;
	wire_total += wire;
	if (type == JT_FAILBACK && vm_id[0] != '\0') {
		size_t v;

		for (v = 0; v < nlast && strcmp(last[v].vm, vm_id) != 0; v++)
			;
		if (v == nlast && nlast < MAX_VMS)
			nlast++;
		if (v < nlast) {
			snprintf(last[v].vm, sizeof(last[v].vm), "%s", vm_id);
			last[v].state      = state;
			last[v].at_unix_ms = (uint64_t)fb_clock_unix_ms();
		}
	}
	pthread_mutex_unlock(&mtx);
}

void
replica_metrics_worker_restart(void)
{
	pthread_mutex_lock(&mtx);
	restarts++;
	pthread_mutex_unlock(&mtx);
}

struct running {
	fb_metrics *m;
	uint64_t    count[MAX_TYPES + 1];
	int         type[MAX_TYPES + 1];
	size_t      n;
	uint64_t    rate, bytes;
};

static void
count_running(const run_view *v, int type, void *arg)
{
	struct running *r = arg;
	size_t          i;

	for (i = 0; i < r->n && r->type[i] != type; i++)
		;
	if (i == r->n && r->n < MAX_TYPES)
		r->type[r->n++] = type;
	if (i < r->n)
		r->count[i]++;
	r->rate += v->rate;
	r->bytes += v->bytes_done;
}

void
replica_metrics(fb_agent *agent, fb_metrics *m)
{
	struct running now = {.m = m};
	char           type[16];

	(void)agent;
	jobs_each_running(count_running, &now);
	fb_metrics_family(m, "failback_jobs_running", "gauge",
	                  "Jobs in progress, by JobType (124 InitiateFailback, 104 Reverse...).");
	for (size_t i = 0; i < now.n; i++) {
		snprintf(type, sizeof(type), "%d", now.type[i]);
		fb_metrics_sample(m, "failback_jobs_running", (const char *[]){"type", type, NULL},
		                  (double)now.count[i]);
	}
	fb_metrics_family(m, "failback_transfer_rate_bytes_per_second", "gauge",
	                  "What the jobs in progress move now, together.");
	fb_metrics_sample(m, "failback_transfer_rate_bytes_per_second", NULL, (double)now.rate);
	fb_metrics_family(m, "failback_jobs_in_progress_bytes", "gauge",
	                  "Bytes the jobs in progress have done so far.");
	fb_metrics_sample(m, "failback_jobs_in_progress_bytes", NULL, (double)now.bytes);

	pthread_mutex_lock(&mtx);
	fb_metrics_family(m, "failback_jobs_ended_total", "counter",
	                  "Jobs that ended, by JobType and JobState.");
	for (size_t t = 0; t < ntypes; t++) {
		snprintf(type, sizeof(type), "%d", types[t].type);
		for (int e = 0; e < 4; e++)
			fb_metrics_sample(m, "failback_jobs_ended_total",
			                  (const char *[]){"type", type, "state", end_names[e], NULL},
			                  (double)types[t].ended[e]);
	}
	fb_metrics_family(m, "failback_job_duration_seconds", "histogram",
	                  "How long jobs took, from accepted to ended, by JobType.");
	for (size_t t = 0; t < ntypes; t++) {
		snprintf(type, sizeof(type), "%d", types[t].type);
		fb_metrics_histogram(m, "failback_job_duration_seconds",
		                     (const char *[]){"type", type, NULL}, &types[t].duration);
	}
	fb_metrics_family(m, "failback_job_bytes_total", "counter",
	                  "Bytes of disk ended jobs compared or moved (their bytes_done).");
	fb_metrics_sample(m, "failback_job_bytes_total", NULL, (double)bytes_total);
	fb_metrics_family(m, "failback_job_blocks_total", "counter",
	                  "Blocks ended jobs applied or compared (their blocks_done).");
	fb_metrics_sample(m, "failback_job_blocks_total", NULL, (double)blocks_total);
	fb_metrics_family(m, "failback_job_wire_bytes_total", "counter",
	                  "Bytes ended jobs received from primaries.");
	fb_metrics_sample(m, "failback_job_wire_bytes_total", NULL, (double)wire_total);
	fb_metrics_family(m, "failback_worker_restarts_total", "counter",
	                  "Transfer workers restarted from their checkpoint (FB5012).");
	fb_metrics_sample(m, "failback_worker_restarts_total", NULL, (double)restarts);
	fb_metrics_family(m, "failback_vm_last_failback_success", "gauge",
	                  "1 when the VM's last InitiateFailback here completed, 0 when not.");
	for (size_t v = 0; v < nlast; v++)
		fb_metrics_sample(m, "failback_vm_last_failback_success",
		                  (const char *[]){"vm", last[v].vm, NULL},
		                  last[v].state == FAILBACK__JOB_STATE__JS_COMPLETED);
	fb_metrics_family(m, "failback_vm_last_failback_time_seconds", "gauge",
	                  "When the VM's last InitiateFailback here ended (seconds since the epoch).");
	for (size_t v = 0; v < nlast; v++)
		fb_metrics_sample(m, "failback_vm_last_failback_time_seconds",
		                  (const char *[]){"vm", last[v].vm, NULL},
		                  (double)last[v].at_unix_ms / 1000.0);
	pthread_mutex_unlock(&mtx);
}
