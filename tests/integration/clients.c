/* clients.c - see clients.h. */
#include <stdio.h>
#include <string.h>

#include "clients.h"
#include "failback/tls.h"
#include "harness.h"

static uint32_t
tls_as(nng_tls_config **tls, const char *id, const char *sname, fb_err *err)
{
	char cert[64], key[64];

	snprintf(cert, sizeof(cert), "%s.pem", id);
	snprintf(key, sizeof(key), "%s.key", id);
	return fb_tls_config_client(tls, fbt_pki_file("agents-ca.pem"), fbt_pki_file(cert),
	                            fbt_pki_file(key), sname, 0, err);
}

uint32_t
fbt_client(fb_rpc_client **out, const char *url, const char *id, const char *sname, fb_err *err)
{
	nng_tls_config *tls;
	uint32_t        rv;

	*out = NULL;
	if ((rv = tls_as(&tls, id, sname, err)) != FB_RV_OK)
		return rv;
	rv = fb_rpc_client_open(out, url, tls, err);
	nng_tls_config_free(tls);
	return rv;
}

uint32_t
fbt_subscribe(fb_events_sub **out, const char *url, const char *id, const char *sname,
              fb_err *err)
{
	nng_tls_config *tls;
	uint32_t        rv;

	*out = NULL;
	if ((rv = tls_as(&tls, id, sname, err)) != FB_RV_OK)
		return rv;
	rv = fb_events_sub_open(out, url, tls, "job/", err);
	nng_tls_config_free(tls);
	return rv;
}

int
fbt_job_end(fb_events_sub *sub, const char *job, unsigned s)
{
	int state = 0;

	for (unsigned i = 0; i < s * 5 && state < 7; i++) {
		Failback__JobEvent *ev;
		fb_err              err;

		if (fb_events_sub_next(sub, 200, &ev, &err) != FB_RV_OK)
			continue;
		if (strcmp(ev->job_id, job) == 0)
			state = (int)ev->job_state;
		failback__job_event__free_unpacked(ev, NULL);
	}
	return state >= 7 ? state : 0;
}
