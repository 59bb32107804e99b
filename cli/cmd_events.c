/*
 * cmd_events.c - `failbackctl events`: print job events as they arrive
 * (text, or one JSON object per line with --json) until interrupted.
 */
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "failback/events.h"
#include "failback/tls.h"

static int
cmd_events(ctl *c, int argc, char **argv)
{
	char            prefix[160] = "job/";
	nng_tls_config *tls;
	fb_events_sub  *sub;
	fb_err          err = {0};
	const char     *count_s = NULL;
	long            limit   = -1, seen = 0;

	for (int i = 0; i < argc; i++) {
		const char *v;

		if ((v = ctl_opt(argc, argv, &i, "--job")) != NULL)
			snprintf(prefix, sizeof(prefix), "job/%s", v);
		else if ((v = ctl_opt(argc, argv, &i, "--count")) != NULL)
			count_s = v;
		else
			return ctl_usage(&ctl_events_cmds[0], "unexpected argument");
	}
	if (count_s != NULL && sscanf(count_s, "%ld", &limit) != 1)
		return ctl_usage(&ctl_events_cmds[0], "--count needs a number");
	if (fb_tls_config_client(&tls, c->ca, c->cert, c->key, c->server_name, 0, &err) !=
	    FB_RV_OK)
		return ctl_fail(c, &err);
	if (fb_events_sub_open(&sub, c->events_url, tls, prefix, &err) != FB_RV_OK) {
		nng_tls_config_free(tls);
		return ctl_fail(c, &err);
	}
	nng_tls_config_free(tls);
	while (limit < 0 || seen < limit) {
		Failback__JobEvent *ev;

		if (fb_events_sub_next(sub, 1000, &ev, &err) != FB_RV_OK) {
			if (err.rv == FB_RV_TIMEOUT)
				continue;
			return ctl_fail(c, &err);
		}
		if (c->json) {
			ctl_print_json(stdout, &ev->base);
			fputc('\n', stdout);
		} else {
			printf("%s seq=%llu state=%d phase=%s %u%% blocks %llu/%llu\n", ev->job_id,
			       (unsigned long long)ev->seq, ev->job_state, ev->phase,
			       ev->percent_complete, (unsigned long long)ev->blocks_done,
			       (unsigned long long)ev->blocks_total);
		}
		fflush(stdout);
		failback__job_event__free_unpacked(ev, NULL);
		seen++;
	}
	return CTL_EXIT_OK;
}

const ctl_cmd ctl_events_cmds[] = {
    {"events", NULL, "[--job JOB] [--count N]", "print job events as they are published",
     cmd_events},
    {NULL, NULL, NULL, NULL, NULL},
};
