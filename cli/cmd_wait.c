/*
 * cmd_wait.c - waiting for a job: `job wait JOB` and the --wait of the
 * commands that start jobs.
 *
 * The subscriber is opened before the job is started, so no event is
 * missed. Events drive the display (a progress bar on a terminal, a line
 * per phase and per 10% otherwise, on stderr); GetJob, polled every second
 * and on every terminal event, is the authority on how the job ended,
 * since a subscriber may drop events. Exit status 0 only for Completed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "ctl.h"
#include "failback/clock.h"
#include "failback/events.h"
#include "failback/tls.h"
#include "replica.pb-c.h"

struct waiter {
	fb_events_sub *sub;
	char           last_phase[32];
	int            last_decile;
	int            tty;
	int            drew;
};

static const char *
state_name(int s)
{
	static const char *names[] = {"Unknown",  "?",          "New",       "Starting",
	                              "Running",  "Suspended",  "Shutting Down", "Completed",
	                              "Terminated", "Killed",   "Exception"};
	return s >= 0 && s <= 10 ? names[s] : "?";
}

static void
draw(struct waiter *w, const char *phase, unsigned pct, uint64_t done, uint64_t total,
     uint64_t rate)
{
	if (w->tty) {
		char bar[31];
		int  fill = (int)(pct * 30 / 100);

		for (int i = 0; i < 30; i++)
			bar[i] = i < fill ? '#' : '.';
		bar[30] = '\0';
		fprintf(stderr, "\r[%s] %3u%% %-18s %8.1f/%.1f MiB %7.1f MiB/s ", bar, pct, phase,
		        (double)done / (1 << 20), (double)total / (1 << 20),
		        (double)rate / (1 << 20));
		w->drew = 1;
	} else if (strcmp(phase, w->last_phase) != 0 || (int)pct / 10 != w->last_decile) {
		fprintf(stderr, "%3u%% %s (%.1f/%.1f MiB)\n", pct, phase, (double)done / (1 << 20),
		        (double)total / (1 << 20));
	}
	snprintf(w->last_phase, sizeof(w->last_phase), "%s", phase);
	w->last_decile = (int)pct / 10;
	fflush(stderr);
}

static void
waiter_open(ctl *c, struct waiter *w)
{
	nng_tls_config *tls;
	fb_err          err = {0};

	memset(w, 0, sizeof(*w));
	w->last_decile = -1;
	w->tty         = isatty(STDERR_FILENO);
	if (fb_tls_config_client(&tls, c->ca, c->cert, c->key, c->server_name, 0, &err) ==
	    FB_RV_OK) {
		if (fb_events_sub_open(&w->sub, c->events_url, tls, "job/", &err) != FB_RV_OK) {
			fprintf(stderr, "failbackctl: no live progress (%s); polling the job\n",
			            err.msg);
			w->sub = NULL;
		}
		nng_tls_config_free(tls);
	}
}

/* Waits for job (a GUID or reference); returns the exit status. */
static int
waiter_run(ctl *c, struct waiter *w, const char *job)
{
	Failback__JobRef in  = FAILBACK__JOB_REF__INIT;
	const char      *q   = strchr(job, '"');
	char             guid[40];
	uint64_t         next_poll = 0;

	snprintf(guid, sizeof(guid), "%.36s", q != NULL ? q + 1 : job);
	in.job = guid;
	for (;;) {
		Failback__JobEvent *ev  = NULL;
		fb_err              err = {0};
		int                 terminal = 0;

		if (w->sub != NULL &&
		    fb_events_sub_next(w->sub, 250, &ev, &err) == FB_RV_OK) {
			if (strcasecmp(ev->job_id, guid) == 0) {
				draw(w, ev->phase, ev->percent_complete, ev->bytes_done, ev->bytes_total,
				     ev->rate_bytes_per_s);
				terminal = ev->job_state >= FAILBACK__JOB_STATE__JS_COMPLETED;
			}
			failback__job_event__free_unpacked(ev, NULL);
		} else if (w->sub == NULL) {
			usleep(250000);
		}
		if (terminal || fb_clock_mono_ms() >= next_poll) {
			Failback__GetJobResponse *rsp = NULL;
			uint32_t                  rv;

			next_poll = fb_clock_mono_ms() + 1000;
			rv = fb_rpc_client_call(c->cli, &failback__replication_service__descriptor,
			                        "GetJob", &in.base, (ProtobufCMessage **)&rsp,
			                        c->timeout_ms, &err);
			if (!fb_rv_ok(rv))
				return ctl_fail(c, &err);
			if (w->sub == NULL)
				draw(w, rsp->job->phase, rsp->job->percent_complete, rsp->job->bytes_done,
				     rsp->job->bytes_total, rsp->job->rate_bytes_per_s);
			if (rsp->job->job_state >= FAILBACK__JOB_STATE__JS_COMPLETED) {
				int ok = rsp->job->job_state == FAILBACK__JOB_STATE__JS_COMPLETED;

				if (w->drew)
					fputc('\n', stderr);
				if (c->json) {
					ctl_print_json(stdout, &rsp->job->base);
					fputc('\n', stdout);
				} else {
					printf("job %s: %s (%d)", guid, state_name(rsp->job->job_state),
					       rsp->job->job_state);
					if (rsp->job->error_code != 0) {
						printf(": %s (%u): ", fb_rv_name(rsp->job->error_code),
						       rsp->job->error_code);
						ctl_print_text_string(stdout,
						                      rsp->job->error_description);
					}
					printf("\n");
				}
				protobuf_c_message_free_unpacked(&rsp->base, NULL);
				return ok ? CTL_EXIT_OK : CTL_EXIT_FAILED;
			}
			protobuf_c_message_free_unpacked(&rsp->base, NULL);
		}
	}
}

int
ctl_call_and_wait(ctl *c, const char *method, const ProtobufCMessage *in, int wait)
{
	struct waiter                 w;
	Failback__JobStartedResponse *out = NULL;
	int                           code;
	int                           json = c->json;

	if (!wait)
		return ctl_call(c, &failback__replication_service__descriptor, method, in, NULL);
	waiter_open(c, &w);
	c->json = 0; /* the start is reported as text on stderr-free stdout below */
	if (json) {
		fb_err   err = {0};
		uint32_t rv;

		if (ctl_connect(c, &err) != FB_RV_OK)
			return ctl_fail(c, &err);
		rv = fb_rpc_client_call(c->cli, &failback__replication_service__descriptor, method, in,
		                        (ProtobufCMessage **)&out, c->timeout_ms, &err);
		c->json = json;
		if (!fb_rv_ok(rv))
			return ctl_fail(c, &err);
	} else {
		code = ctl_call(c, &failback__replication_service__descriptor, method, in,
		                (ProtobufCMessage **)&out);
		if (code != CTL_EXIT_OK)
			return code;
		fflush(stdout);
	}
	code = waiter_run(c, &w, out->job);
	protobuf_c_message_free_unpacked(&out->base, NULL);
	/* The subscriber is left to the process exit: events may be in flight. */
	return code;
}

static int
cmd_job_wait(ctl *c, int argc, char **argv)
{
	struct waiter w;
	fb_err        err = {0};

	if (argc != 1)
		return ctl_usage(&ctl_wait_cmds[0], "name one job");
	if (ctl_connect(c, &err) != FB_RV_OK)
		return ctl_fail(c, &err);
	waiter_open(c, &w);
	return waiter_run(c, &w, argv[0]);
}

const ctl_cmd ctl_wait_cmds[] = {
    {"job", "wait", "JOB", "wait for a job, with progress; exit 0 only if it completed",
     cmd_job_wait},
    {NULL, NULL, NULL, NULL, NULL},
};
