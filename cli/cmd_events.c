/*
 * cmd_events.c - `failbackctl events`: print job events as they arrive
 * (a line of text, or the JSON envelope per event with --json) until
 * --count events were printed or it is interrupted. A connection that is
 * not up for --timeout ms (nothing listening, another protocol's
 * listener, a refused handshake) ends it with an error instead of a hang.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "failback/clock.h"
#include "failback/events.h"
#include "failback/tls.h"

static int
cmd_events(ctl *c, const ctl_args *a)
{
	char            prefix[160] = "job/";
	nng_tls_config *tls;
	fb_events_sub  *sub;
	fb_err          err     = {0};
	const char     *count_s = ctl_arg(a, "count"), *job = ctl_arg(a, "job");
	long            limit   = -1, seen = 0;
	uint64_t        up_ms;

	if (job != NULL) {
		const char *q = strchr(job, '"'); /* a reference: its GUID */

		snprintf(prefix, sizeof(prefix), "job/%.36s", q != NULL ? q + 1 : job);
	}
	if (count_s != NULL) {
		char *end;

		limit = strtol(count_s, &end, 10);
		if (*end != '\0' || count_s[0] == '\0' || limit <= 0)
			return ctl_usage(a->cmd, "--count needs a positive number (got '%s')", count_s);
	}
	if (ctl_tls(c, &tls, &err) != FB_RV_OK)
		return ctl_fail(c, &err);
	if (fb_events_sub_open(&sub, c->events_url, tls, prefix, &err) != FB_RV_OK) {
		nng_tls_config_free(tls);
		return ctl_fail(c, &err);
	}
	nng_tls_config_free(tls);
	up_ms = fb_clock_mono_ms();
	while (limit < 0 || seen < limit) {
		Failback__JobEvent *ev;

		if (fb_events_sub_connected(sub))
			up_ms = fb_clock_mono_ms();
		if (fb_events_sub_next(sub, 500, &ev, &err) != FB_RV_OK) {
			if (err.rv != FB_RV_TIMEOUT)
				return ctl_fail(c, &err);
			if (!fb_events_sub_connected(sub) &&
			    fb_clock_mono_ms() - up_ms >= c->timeout_ms) {
				fb_err_set(&err, FB_RV_NOT_AVAILABLE,
				           "no events connection to %s for %u ms (--timeout): is it the "
				           "agent's events listener (--events-url), and does it accept "
				           "this certificate?",
				           c->events_url, c->timeout_ms);
				return ctl_fail(c, &err);
			}
			continue;
		}
		if (c->json) {
			ctl_envelope_open(c, 1, FB_RV_OK);
			ctl_print_json(stdout, &ev->base);
			ctl_envelope_close(c, NULL);
		} else {
			char when[40], state[48], d[16], t[16], r[16];

			ctl_iso_time(ev->time_unix_ms, when, sizeof(when));
			ctl_state_text(&failback__job_state__descriptor, ev->job_state, state,
			               sizeof(state));
			ctl_human_bytes(d, sizeof(d), (double)ev->bytes_done);
			ctl_human_bytes(t, sizeof(t), (double)ev->bytes_total);
			ctl_human_bytes(r, sizeof(r), (double)ev->rate_bytes_per_s);
			printf("%s %s seq=%llu %s ", when, ev->job_id, (unsigned long long)ev->seq, state);
			ctl_print_text_string(stdout, ev->phase);
			printf(" %u%% %s/%s %s/s blocks %llu/%llu", ev->percent_complete, d, t, r,
			       (unsigned long long)ev->blocks_done, (unsigned long long)ev->blocks_total);
			if (ev->error_code != 0) {
				printf(" %s (%u): ", fb_rv_name(ev->error_code), ev->error_code);
				ctl_print_text_string(stdout, ev->error_description);
			}
			putchar('\n');
			fflush(stdout);
		}
		failback__job_event__free_unpacked(ev, NULL);
		seen++;
	}
	return CTL_EXIT_OK;
}

const ctl_cmd ctl_events_cmds[] = {
    {"events", NULL, "", 0, 0,
     {{"job", "JOB", "only this job's events (its GUID or reference)"},
      {"count", "N", "stop after N events"}},
     "print job events as they are published (the events listener, --events-url)",
     cmd_events},
    {0},
};
