/*
 * events.c - the publisher and subscriber of events.h. The publisher's
 * socket is shared by every job thread; NNG serialises sends on a pub0
 * socket, and the sequence number is an atomic so subscribers can see gaps.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/pubsub0/pub.h>
#include <nng/protocol/pubsub0/sub.h>

#include "failback/conns.h"
#include "failback/events.h"
#include "failback/rpc.h"

struct fb_events_pub {
	nng_socket    sock;
	atomic_ullong seq;
};

struct fb_events_sub {
	nng_socket            sock;
	atomic_int            pipes; /* connections now attached (pipe callbacks) */
	struct fb_events_sub *next;  /* on the abandoned list */
};

/* Subscribers whose socket is left open: the pipe callbacks may still
 * touch them, so they are kept (and stay reachable) until the exit. */
static pthread_mutex_t abandoned_mu = PTHREAD_MUTEX_INITIALIZER;
static fb_events_sub  *abandoned;

static void
keep_abandoned(fb_events_sub *sub)
{
	pthread_mutex_lock(&abandoned_mu);
	sub->next = abandoned;
	abandoned = sub;
	pthread_mutex_unlock(&abandoned_mu);
}

static void
sub_pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	fb_events_sub *sub = arg;

	(void)p;
	if (ev == NNG_PIPE_EV_ADD_POST)
		atomic_fetch_add(&sub->pipes, 1);
	else if (ev == NNG_PIPE_EV_REM_POST)
		atomic_fetch_sub(&sub->pipes, 1);
}

int
fb_events_sub_connected(fb_events_sub *sub)
{
	return atomic_load(&sub->pipes) > 0;
}

/* Subscribers that got past their handshake (conns.h). */
static void
pub_pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	(void)arg;
	fb_conns_pipe_event(p, ev);
}

uint32_t
fb_events_pub_create(fb_events_pub **out, fb_err *err)
{
	fb_events_pub *pub = calloc(1, sizeof(*pub));
	int            rv;

	if (pub == NULL)
		return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
	if ((rv = nng_pub0_open(&pub->sock)) != 0) {
		free(pub);
		return fb_err_nng(err, rv, "pub socket");
	}
	nng_socket_set_size(pub->sock, NNG_OPT_RECVMAXSZ, 1024);
	nng_socket_set_int(pub->sock, NNG_OPT_SENDBUF, 1024);
	nng_pipe_notify(pub->sock, NNG_PIPE_EV_ADD_POST, pub_pipe_cb, NULL);
	nng_pipe_notify(pub->sock, NNG_PIPE_EV_REM_POST, pub_pipe_cb, NULL);
	*out = pub;
	return FB_RV_OK;
}

uint32_t
fb_events_pub_listen(fb_events_pub *pub, const char *url, nng_tls_config *tls, char *bound,
                     size_t bound_len, fb_err *err)
{
	nng_listener l;
	int          rv;

	if ((rv = nng_listener_create(&l, pub->sock, url)) != 0)
		return fb_err_nng(err, rv, url);
	nng_listener_set_size(l, NNG_OPT_RECVMAXSZ, 1024);
	if ((tls != NULL && (rv = nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, tls)) != 0) ||
	    (rv = nng_listener_start(l, 0)) != 0) {
		nng_listener_close(l);
		return fb_err_nng(err, rv, url);
	}
	fb_rpc_bound_url(l, url, bound, bound_len);
	return FB_RV_OK;
}

uint32_t
fb_events_publish(fb_events_pub *pub, Failback__JobEvent *ev, fb_err *err)
{
	char     topic[128];
	size_t   tlen, plen;
	nng_msg *msg;
	int      rv;

	ev->seq = atomic_fetch_add(&pub->seq, 1) + 1;
	tlen    = (size_t)snprintf(topic, sizeof(topic), "job/%s", ev->job_id) + 1;
	if (tlen > sizeof(topic))
		return fb_err_set(err, FB_RV_INVALID_PARAMETER, "job id too long for a topic");
	plen = failback__job_event__get_packed_size(ev);
	if (tlen + plen > FB_EVENTS_MAX_MSG)
		return fb_err_set(err, FB_RV_INVALID_PARAMETER, "event over %u bytes",
		                  FB_EVENTS_MAX_MSG);
	if ((rv = nng_msg_alloc(&msg, tlen + plen)) != 0)
		return fb_err_nng(err, rv, "event");
	memcpy(nng_msg_body(msg), topic, tlen);
	failback__job_event__pack(ev, (uint8_t *)nng_msg_body(msg) + tlen);
	if ((rv = nng_sendmsg(pub->sock, msg, NNG_FLAG_NONBLOCK)) != 0) {
		nng_msg_free(msg);
		return fb_err_nng(err, rv, "publish event");
	}
	return FB_RV_OK;
}

uint32_t
fb_events_sub_open(fb_events_sub **out, const char *url, nng_tls_config *tls, const char *prefix,
                   fb_err *err)
{
	fb_events_sub *sub = calloc(1, sizeof(*sub));
	nng_dialer     d;
	int            rv;

	if (sub == NULL)
		return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
	if ((rv = nng_sub0_open(&sub->sock)) != 0) {
		free(sub);
		return fb_err_nng(err, rv, "sub socket");
	}
	nng_socket_set_size(sub->sock, NNG_OPT_RECVMAXSZ, FB_EVENTS_MAX_MSG);
	nng_socket_set_int(sub->sock, NNG_OPT_RECVBUF, 1024);
	nng_socket_set_ms(sub->sock, NNG_OPT_RECONNMINT, 100);
	nng_socket_set_ms(sub->sock, NNG_OPT_RECONNMAXT, 2000);
	nng_pipe_notify(sub->sock, NNG_PIPE_EV_ADD_POST, sub_pipe_cb, sub);
	nng_pipe_notify(sub->sock, NNG_PIPE_EV_REM_POST, sub_pipe_cb, sub);
	if ((rv = nng_socket_set(sub->sock, NNG_OPT_SUB_SUBSCRIBE, prefix, strlen(prefix))) != 0 ||
	    (rv = nng_dialer_create(&d, sub->sock, url)) != 0 ||
	    (tls != NULL && (rv = nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, tls)) != 0))
		goto fail;
	nng_dialer_set_size(d, NNG_OPT_RECVMAXSZ, FB_EVENTS_MAX_MSG);
	if ((rv = nng_dialer_start(d, 0)) != 0)
		goto fail;
	*out = sub;
	return FB_RV_OK;
fail:
	/* Left to the process exit, not closed: NNG 1.5.2's close can block for
	 * good once an earlier close in the process wedged its reaper
	 * (docs/OPERATIONS.md), and a refused subscriber is a caller's last act. */
	keep_abandoned(sub);
	if (rv == NNG_ECRYPTO || rv == NNG_EPEERAUTH || rv == NNG_ECONNSHUT)
		return fb_err_set(err, FB_RV_ACCESS_DENIED, "TLS handshake with %s refused (%s)",
		                  url, nng_strerror(rv));
	if (rv == NNG_ECONNREFUSED)
		return fb_err_set(err, FB_RV_NOT_AVAILABLE, "nothing is listening at %s", url);
	return fb_err_nng(err, rv, url);
}

uint32_t
fb_events_decode(const void *body, size_t len, char *topic, size_t topic_len,
                 Failback__JobEvent **ev, fb_err *err)
{
	const char *nul = memchr(body, '\0', len);
	size_t      tlen;

	if (nul == NULL)
		return fb_err_set(err, FB_RV_INVALID_PARAMETER, "event without a topic");
	tlen = (size_t)(nul - (const char *)body);
	if (tlen + 1 > topic_len)
		return fb_err_set(err, FB_RV_INVALID_PARAMETER, "event topic too long");
	memcpy(topic, body, tlen + 1);
	*ev = failback__job_event__unpack(NULL, len - tlen - 1, (const uint8_t *)nul + 1);
	if (*ev == NULL)
		return fb_err_set(err, FB_RV_INVALID_PARAMETER, "undecodable event on %s", topic);
	return FB_RV_OK;
}

uint32_t
fb_events_sub_next(fb_events_sub *sub, uint32_t timeout_ms, Failback__JobEvent **ev, fb_err *err)
{
	char topic[128];

	nng_socket_set_ms(sub->sock, NNG_OPT_RECVTIMEO, (nng_duration)timeout_ms);
	for (;;) {
		nng_msg *msg;
		uint32_t rv;
		int      nrv;

		if ((nrv = nng_recvmsg(sub->sock, &msg, 0)) != 0)
			return fb_err_nng(err, nrv, "events");
		rv = fb_events_decode(nng_msg_body(msg), nng_msg_len(msg), topic, sizeof(topic), ev,
		                      err);
		nng_msg_free(msg);
		if (rv == FB_RV_OK)
			return FB_RV_OK;
	}
}

void
fb_events_sub_close(fb_events_sub *sub)
{
	if (sub == NULL)
		return;
	nng_close(sub->sock);
	free(sub);
}

void
fb_events_sub_abandon(fb_events_sub *sub)
{
	if (sub != NULL)
		keep_abandoned(sub); /* the socket is left to the process's exit */
}
