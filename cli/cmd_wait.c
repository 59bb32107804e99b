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
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
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
	int            quiet;      /* --json and no terminal: stderr stays quiet */
	const ProtobufCMessage *started; /* the reply that started the job, if any */
	uint64_t       started_ms; /* when the wait began */
};

/* The terminal's width (80 when it cannot say). */
static int
term_width(void)
{
	struct winsize ws;

	if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20)
		return ws.ws_col;
	return 80;
}

/* "0:42", "12:03", "3:25:10"; "-:--" when unknown. */
static void
eta(char *out, size_t cap, uint64_t done, uint64_t total, uint64_t rate)
{
	uint64_t s;

	if (rate == 0 || done >= total) {
		snprintf(out, cap, "-:--");
		return;
	}
	s = (total - done) / rate;
	if (s >= 3600)
		snprintf(out, cap, "%llu:%02llu:%02llu", (unsigned long long)(s / 3600),
		         (unsigned long long)(s / 60 % 60), (unsigned long long)(s % 60));
	else
		snprintf(out, cap, "%llu:%02llu", (unsigned long long)(s / 60),
		         (unsigned long long)(s % 60));
}

/*
 * One progress line that fits the terminal: "[####....]  42% Transferring
 * 12.3 MiB/29.1 MiB 5.2 MiB/s ETA 0:03". The bar takes what the text
 * leaves, and goes first when the terminal is narrow; the line is
 * redrawn in place (\r, then cleared to its end).
 */
static void
draw(struct waiter *w, const char *phase, unsigned pct, uint64_t done, uint64_t total,
     uint64_t rate)
{
	if (w->tty) {
		char text[200], d[16], t[16], r[16], e[32], line[400];
		int  width = term_width() - 1, barw, n;

		ctl_human_bytes(d, sizeof(d), (double)done);
		ctl_human_bytes(t, sizeof(t), (double)total);
		ctl_human_bytes(r, sizeof(r), (double)rate);
		eta(e, sizeof(e), done, total, rate);
		n = snprintf(text, sizeof(text), "%3u%% %.20s %s/%s %s/s ETA %s", pct, phase, d, t, r,
		             e);
		if (n > width)
			n = snprintf(text, sizeof(text), "%3u%% %.14s ETA %s", pct, phase, e);
		if (n > width)
			text[width > 0 ? width : 0] = '\0', n = width;
		barw = width - n - 3;
		if (barw > 40)
			barw = 40;
		if (barw >= 8) {
			int fill = (int)(pct * (unsigned)barw / 100);

			line[0] = '[';
			for (int i = 0; i < barw; i++)
				line[1 + i] = i < fill ? '#' : '.';
			snprintf(line + 1 + barw, sizeof(line) - 1 - (size_t)barw, "] %s", text);
		} else {
			snprintf(line, sizeof(line), "%s", text);
		}
		fprintf(stderr, "\r%s\033[K", line);
		w->drew = 1;
	} else if (!w->quiet &&
	           (strcmp(phase, w->last_phase) != 0 || (int)pct / 10 != w->last_decile)) {
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
	w->quiet       = c->json;
	w->started_ms  = fb_clock_mono_ms();
	if (ctl_tls(c, &tls, &err) == FB_RV_OK) {
		if (fb_events_sub_open(&w->sub, c->events_url, tls, "job/", &err) != FB_RV_OK) {
			fprintf(stderr, "failbackctl: no live progress (%s); polling the job\n",
			            err.msg);
			w->sub = NULL;
		}
		nng_tls_config_free(tls);
	}
}

static void *
waiter_open_thread(void *arg)
{
	void **a = arg;

	waiter_open(a[0], a[1]);
	return NULL;
}

/* The subscriber and the control connection, dialled at once: two TLS
 * handshakes in the time of one. Both are up before anything is called,
 * so no event of the job is missed. */
static uint32_t
waiter_connect(ctl *c, struct waiter *w, fb_err *err)
{
	void     *arg[2] = {c, w};
	pthread_t t;
	int       apart;
	uint32_t  rv;

	if ((rv = ctl_crl(c, err)) != FB_RV_OK)
		return rv;
	apart = pthread_create(&t, NULL, waiter_open_thread, arg) == 0;
	if (!apart)
		waiter_open(c, w);
	rv = ctl_connect(c, err);
	if (apart)
		pthread_join(t, NULL);
	return rv;
}

/* After the state (of len columns), one line that fits 80 columns: how
 * long the wait took and what the job did: " 5.9 s (bitmap): 3200 blocks
 * 200.0 MiB, 13.5 MiB wire, 1.0 GiB read" (blocks applied and their size,
 * bytes on the network, bytes read from the disks; the compare's mode
 * when it used the bitmap and there is room). */
static void
summary(const struct waiter *w, const Failback__Job *j, size_t len)
{
	double s = (double)(fb_clock_mono_ms() - w->started_ms) / 1000.0;
	char   d[16], x[16], rd[16], tail[160] = "", mode[16] = "";
	size_t n = 0;

	ctl_human_bytes(d, sizeof(d), (double)j->blocks_done * (64u << 10));
	ctl_human_bytes(x, sizeof(x), (double)j->bytes_on_wire);
	ctl_human_bytes(rd, sizeof(rd), (double)j->bytes_read);
	if (j->estimate == NULL && (j->blocks_total > 0 || j->bytes_total > 0 || j->bytes_read > 0)) {
		n = (size_t)snprintf(tail, sizeof(tail), ": %llu blocks %s",
		                     (unsigned long long)j->blocks_done, d);
		if (j->bytes_on_wire > 0 && n < sizeof(tail))
			n += (size_t)snprintf(tail + n, sizeof(tail) - n, ", %s wire", x);
		if (j->bytes_read > 0 && n < sizeof(tail))
			n += (size_t)snprintf(tail + n, sizeof(tail) - n, ", %s read", rd);
	}
	if (strcmp(j->compare_mode, "bitmap") == 0)
		snprintf(mode, sizeof(mode), " (bitmap)");
	n = len + (size_t)snprintf(NULL, 0, " %.1f s", s) + strlen(tail);
	printf(" %.1f s%s%s", s, n + strlen(mode) <= 79 ? mode : "", tail);
}

/* What an EstimateFailback found, for people. */
static void
print_estimate(const Failback__FailbackEstimate *e)
{
	char d[16], t[16], s[16], r[16];
	double transfer = e->rate_bytes_per_s > 0
	                      ? (double)e->bytes_differing / (double)e->rate_bytes_per_s
	                      : 0;

	ctl_human_bytes(d, sizeof(d), (double)e->bytes_differing);
	ctl_human_bytes(t, sizeof(t), (double)e->disk_bytes);
	ctl_human_bytes(s, sizeof(s), (double)e->sample_bytes);
	ctl_human_bytes(r, sizeof(r), (double)e->rate_bytes_per_s);
	printf("a failback to recovery point %s would move %llu of %llu blocks (%s of %s)\n",
	       e->recovery_point, (unsigned long long)e->blocks_differing,
	       (unsigned long long)(e->disk_bytes / (64u << 10)), d, t);
	printf("  compare (read and hash %s, walk the trees):  %.1f s\n", t,
	       (double)e->compare_ms / 1000.0);
	if (e->blocks_differing > 0)
		printf("  transfer at %s/s (measured on %s of them%s):  %.1f s\n", r, s,
		       e->sample_ms > 0 && e->sample_bytes * 1000 / e->sample_ms > e->rate_bytes_per_s
		           ? ", held to --max-transfer-rate"
		           : "",
		       transfer);
	printf("  verify (read and hash %s again):            %.1f s\n", t,
	       (double)e->compare_ms / 1000.0);
	printf("  estimated failback time: %.1f s (writes and fsyncs come on top)\n",
	       (double)e->estimated_ms / 1000.0);
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
					uint32_t end = ok ? FB_RV_OK
					                  : rsp->job->error_code ? rsp->job->error_code
					                                         : FB_RV_FAILED;

					ctl_envelope_open(c, ok, end);
					printf("{\"started\":");
					if (w->started != NULL)
						ctl_print_json(stdout, w->started);
					else
						printf("null");
					printf(",\"job\":");
					ctl_print_json(stdout, &rsp->job->base);
					printf("}");
					ctl_envelope_close(c, ok ? NULL : rsp->job->error_description);
				} else {
					char state[48];

					ctl_state_text(&failback__job_state__descriptor, rsp->job->job_state,
					               state, sizeof(state));
					printf("%s", state);
					summary(w, rsp->job, strlen(state));
					if (rsp->job->error_code != 0) {
						printf(": %s (%u): ", fb_rv_name(rsp->job->error_code),
						       rsp->job->error_code);
						ctl_print_text_string(stdout,
						                      rsp->job->error_description);
					}
					printf("\n");
					if (ok && rsp->job->estimate != NULL)
						print_estimate(rsp->job->estimate);
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
	fb_err                        err = {0};
	Failback__JobStartedResponse *out = NULL;
	uint32_t                      rv;
	int                           code;

	if (!wait)
		return ctl_call(c, &failback__replication_service__descriptor, method, in, NULL);
	if (waiter_connect(c, &w, &err) != FB_RV_OK)
		return ctl_fail(c, &err);
	code = ctl_call_quiet(c, &failback__replication_service__descriptor, method, in,
	                      (ProtobufCMessage **)&out, &rv);
	if (code != CTL_EXIT_OK)
		return code;
	if (!c->json) {
		ctl_print_result(c, rv, &out->base);
		fflush(stdout);
	}
	w.started = &out->base;
	code      = waiter_run(c, &w, out->job_id);
	protobuf_c_message_free_unpacked(&out->base, NULL);
	/* The subscriber is left to the process exit: events may be in flight. */
	return code;
}

int
ctl_cmd_job_wait(ctl *c, const ctl_args *a)
{
	struct waiter w;
	fb_err        err = {0};

	if (waiter_connect(c, &w, &err) != FB_RV_OK)
		return ctl_fail(c, &err);
	return waiter_run(c, &w, a->argv[0]);
}

