/*
 * rpc_server.c - an NNG rep0 socket served by a fixed pool of contexts.
 *
 * Each context is a small state machine driven by its aio callback:
 *
 *   RECV --message--> QUEUED --worker picks it--> SEND --sent--> RECV
 *
 * Callbacks never block: on receipt they only look up the caller's role
 * (from the listener the pipe came in on) and queue the context for a
 * worker thread, which runs fb_rpc_dispatch (the handler may touch disk)
 * and starts the send. So nctx bounds the calls in progress and nworkers
 * the handlers running at once; no thread is made per call.
 *
 * Shutdown never calls nng_close (NNG 1.5.2 can hang there while a message
 * is in flight): fb_rpc_server_quiesce stops new work, waits for the calls
 * being handled to be answered, and the process then exits.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>

#include "failback/clock.h"
#include "failback/conns.h"
#include "failback/log.h"
#include "failback/rpc.h"

#define MAX_LISTENERS 8

enum ctx_state { CTX_IDLE, CTX_RECV, CTX_QUEUED, CTX_SEND };

struct srv_ctx {
	fb_rpc_server  *srv;
	nng_ctx         ctx;
	nng_aio        *aio;
	enum ctx_state  state;
	nng_msg        *msg;
	unsigned        role;
	uint64_t        recv_ms;
	struct srv_ctx *next; /* work queue link */
};

struct fb_rpc_server {
	nng_socket             sock;
	const fb_rpc_registry *reg;
	struct srv_ctx        *ctxs;
	int                    nctx;
	pthread_t             *workers;
	int                    nworkers;

	pthread_mutex_t mtx; /* guards everything below */
	pthread_cond_t  cv;
	struct srv_ctx *qhead, *qtail;
	int             stopping;
	int             busy; /* contexts in QUEUED or SEND */

	struct {
		uint32_t id;
		unsigned role;
	} listeners[MAX_LISTENERS];
	int nlisteners;

	atomic_uint  pipes;
	atomic_ulong served, rejected;
};

static unsigned
srv_role_of(fb_rpc_server *srv, nng_msg *msg)
{
	nng_pipe     p = nng_msg_get_pipe(msg);
	nng_listener l = nng_pipe_listener(p);
	int          id = nng_listener_id(l);

	for (int i = 0; i < srv->nlisteners; i++)
		if (id >= 0 && srv->listeners[i].id == (uint32_t)id)
			return srv->listeners[i].role;
	return 0;
}

static void
srv_ctx_cb(void *arg)
{
	struct srv_ctx *c   = arg;
	fb_rpc_server  *srv = c->srv;
	int             rv  = nng_aio_result(c->aio);

	switch (c->state) {
	case CTX_RECV:
		if (rv != 0) {
			if (rv == NNG_ECLOSED)
				return;
			/* A transient receive error: keep serving. */
			nng_ctx_recv(c->ctx, c->aio);
			return;
		}
		c->msg     = nng_aio_get_msg(c->aio);
		c->recv_ms = fb_clock_mono_ms();
		c->role    = srv_role_of(srv, c->msg);
		c->next    = NULL;
		pthread_mutex_lock(&srv->mtx);
		c->state = CTX_QUEUED;
		srv->busy++;
		if (srv->qtail != NULL)
			srv->qtail->next = c;
		else
			srv->qhead = c;
		srv->qtail = c;
		pthread_cond_broadcast(&srv->cv);
		pthread_mutex_unlock(&srv->mtx);
		return;
	case CTX_SEND:
		if (rv != 0) {
			/* The caller went away; NNG did not take the message. */
			nng_msg_free(nng_aio_get_msg(c->aio));
			nng_aio_set_msg(c->aio, NULL);
		}
		pthread_mutex_lock(&srv->mtx);
		srv->busy--;
		if (srv->stopping) {
			c->state = CTX_IDLE;
			pthread_cond_broadcast(&srv->cv);
			pthread_mutex_unlock(&srv->mtx);
			return;
		}
		c->state = CTX_RECV;
		pthread_mutex_unlock(&srv->mtx);
		nng_ctx_recv(c->ctx, c->aio);
		return;
	default:
		return;
	}
}

static void *
srv_worker(void *arg)
{
	fb_rpc_server *srv = arg;

	for (;;) {
		struct srv_ctx *c;
		nng_msg        *reply = NULL;
		uint32_t        rv;
		int             stopping;

		pthread_mutex_lock(&srv->mtx);
		while (srv->qhead == NULL)
			pthread_cond_wait(&srv->cv, &srv->mtx);
		c          = srv->qhead;
		srv->qhead = c->next;
		if (srv->qhead == NULL)
			srv->qtail = NULL;
		c->state = CTX_SEND;
		stopping = srv->stopping;
		pthread_mutex_unlock(&srv->mtx);

		if (stopping) {
			rv    = FB_RV_NOT_AVAILABLE;
			reply = fb_rpc_reply_new(rv, "the agent is shutting down");
		} else {
			rv = fb_rpc_dispatch(srv->reg, c->role, nng_msg_body(c->msg),
			                     nng_msg_len(c->msg), c->recv_ms, fb_clock_mono_ms(),
			                     &reply);
		}
		nng_msg_free(c->msg);
		c->msg = NULL;
		if (fb_rv_ok(rv))
			atomic_fetch_add(&srv->served, 1);
		else
			atomic_fetch_add(&srv->rejected, 1);
		if (reply == NULL) {
			/* Out of memory even for an error reply: the caller times out. */
			pthread_mutex_lock(&srv->mtx);
			srv->busy--;
			c->state = srv->stopping ? CTX_IDLE : CTX_RECV;
			pthread_cond_broadcast(&srv->cv);
			pthread_mutex_unlock(&srv->mtx);
			if (c->state == CTX_RECV)
				nng_ctx_recv(c->ctx, c->aio);
			continue;
		}
		nng_aio_set_msg(c->aio, reply);
		nng_ctx_send(c->ctx, c->aio);
	}
	return NULL;
}

static void
srv_pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	fb_rpc_server *srv = arg;

	fb_conns_pipe_event(p, ev);
	if (ev == NNG_PIPE_EV_ADD_POST)
		atomic_fetch_add(&srv->pipes, 1);
	else if (ev == NNG_PIPE_EV_REM_POST)
		atomic_fetch_sub(&srv->pipes, 1);
}

uint32_t
fb_rpc_server_create(fb_rpc_server **out, const fb_rpc_registry *reg, int nctx, int nworkers,
                     fb_err *err)
{
	fb_rpc_server *srv;
	int            rv;

	if (nctx < 1 || nworkers < 1)
		return fb_err_set(err, FB_RV_INVALID_PARAMETER, "need at least one context/worker");
	if ((srv = calloc(1, sizeof(*srv))) == NULL)
		return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
	srv->reg      = reg;
	srv->nctx     = nctx;
	srv->nworkers = nworkers;
	pthread_mutex_init(&srv->mtx, NULL);
	fb_clock_cond_init(&srv->cv);
	if ((rv = nng_rep0_open(&srv->sock)) != 0) {
		free(srv);
		return fb_err_nng(err, rv, "rep socket");
	}
	nng_socket_set_size(srv->sock, NNG_OPT_RECVMAXSZ, FB_RPC_MAX_MSG);
	nng_pipe_notify(srv->sock, NNG_PIPE_EV_ADD_POST, srv_pipe_cb, srv);
	nng_pipe_notify(srv->sock, NNG_PIPE_EV_REM_POST, srv_pipe_cb, srv);
	if ((srv->ctxs = calloc((size_t)nctx, sizeof(*srv->ctxs))) == NULL ||
	    (srv->workers = calloc((size_t)nworkers, sizeof(*srv->workers))) == NULL)
		return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
	for (int i = 0; i < nctx; i++) {
		struct srv_ctx *c = &srv->ctxs[i];

		c->srv = srv;
		if ((rv = nng_aio_alloc(&c->aio, srv_ctx_cb, c)) != 0 ||
		    (rv = nng_ctx_open(&c->ctx, srv->sock)) != 0)
			return fb_err_nng(err, rv, "rep context");
	}
	*out = srv;
	return FB_RV_OK;
}

uint32_t
fb_rpc_server_listen(fb_rpc_server *srv, const char *url, nng_tls_config *tls, unsigned role,
                     char *bound, size_t bound_len, fb_err *err)
{
	nng_listener l;
	int          rv;

	if (srv->nlisteners == MAX_LISTENERS)
		return fb_err_set(err, FB_RV_INVALID_PARAMETER, "too many listeners");
	if ((rv = nng_listener_create(&l, srv->sock, url)) != 0)
		return fb_err_nng(err, rv, url);
	if ((rv = nng_listener_set_size(l, NNG_OPT_RECVMAXSZ,
	                                role == FB_ROLE_MONITOR  ? FB_RPC_MAX_REQUEST_MONITOR
	                                : role == FB_ROLE_AGENT ? FB_RPC_MAX_REQUEST_AGENT
	                                                        : FB_RPC_MAX_REQUEST_OPERATOR)) !=
	        0 ||
	    (tls != NULL && (rv = nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, tls)) != 0)) {
		nng_listener_close(l);
		return fb_err_nng(err, rv, url);
	}
	if ((rv = nng_listener_start(l, 0)) != 0) {
		nng_listener_close(l);
		return fb_err_nng(err, rv, url);
	}
	srv->listeners[srv->nlisteners].id   = (uint32_t)nng_listener_id(l);
	srv->listeners[srv->nlisteners].role = role;
	srv->nlisteners++;
	fb_rpc_bound_url(l, url, bound, bound_len);
	return FB_RV_OK;
}

void
fb_rpc_bound_url(nng_listener l, const char *url, char *bound, size_t bound_len)
{
	const char *colon = strrchr(url, ':');
	int         port  = 0;

	if (nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port) == 0 && colon != NULL)
		snprintf(bound, bound_len, "%.*s:%d", (int)(colon - url), url, port);
	else
		snprintf(bound, bound_len, "%s", url);
}

uint32_t
fb_rpc_server_start(fb_rpc_server *srv, fb_err *err)
{
	for (int i = 0; i < srv->nworkers; i++) {
		if (pthread_create(&srv->workers[i], NULL, srv_worker, srv) != 0)
			return fb_err_set(err, FB_RV_FAILED, "cannot start worker thread");
		pthread_detach(srv->workers[i]);
	}
	for (int i = 0; i < srv->nctx; i++) {
		srv->ctxs[i].state = CTX_RECV;
		nng_ctx_recv(srv->ctxs[i].ctx, srv->ctxs[i].aio);
	}
	return FB_RV_OK;
}

uint32_t
fb_rpc_server_quiesce(fb_rpc_server *srv, uint32_t timeout_ms)
{
	uint64_t deadline = fb_clock_mono_ms() + timeout_ms;
	uint32_t rv       = FB_RV_OK;

	pthread_mutex_lock(&srv->mtx);
	srv->stopping = 1;
	while (srv->busy > 0) {
		struct timespec ts;
		uint64_t        now = fb_clock_mono_ms();

		if (now >= deadline) {
			rv = FB_RV_TIMEOUT;
			break;
		}
		fb_clock_deadline(&ts, 20);
		pthread_cond_timedwait(&srv->cv, &srv->mtx, &ts);
	}
	pthread_mutex_unlock(&srv->mtx);
	return rv;
}

void
fb_rpc_server_stats_get(fb_rpc_server *srv, fb_rpc_server_stats *st)
{
	st->open_pipes     = atomic_load(&srv->pipes);
	st->calls_served   = atomic_load(&srv->served);
	st->calls_rejected = atomic_load(&srv->rejected);
}
