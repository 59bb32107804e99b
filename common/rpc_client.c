/*
 * rpc_client.c - typed calls over an NNG req0 socket (see rpc.h).
 *
 * Timeouts are decided here, explicitly:
 * - NNG_OPT_REQ_RESENDTIME is infinite: NNG would otherwise resend a request
 *   after 60 s, running a non-idempotent method (InitiateFailback) twice,
 *   and after an oversize drop it would resend forever. A request is sent
 *   once; if its connection drops NNG resends it on the next one.
 * - each call is bounded by its own aio timeout; the send phase timing out
 *   means no connection (System is not available), the receive phase timing
 *   out means no answer (Timeout).
 * - reconnects back off from 100 ms to 2 s.
 *
 * A reply is decoded in two steps (envelope, then payload) with protobuf-c.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "failback/log.h"
#include "failback/rpc.h"
#include "failback/tls.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif
#include "rpc.pb-c.h"

struct fb_rpc_client {
	nng_socket  sock;
	atomic_int  tainted; /* a reply may still be in flight */
	char        url[256];
};

static uint32_t
client_dial_error(fb_err *err, int rv, const char *url, int flags)
{
	if (rv == NNG_ECONNSHUT && (flags & FB_RPC_DIAL_SHUT_TRANSIENT))
		return fb_err_set(err, FB_RV_NOT_AVAILABLE,
		                  "the connection to %s was shut during the TLS handshake (the "
		                  "network cut it, or the agent refused this certificate)",
		                  url);
	switch (rv) {
	case NNG_ECRYPTO:
	case NNG_EPEERAUTH:
	case NNG_ECONNSHUT: {
		char why[400];

		if (fb_tls_last_refusal(why, sizeof(why)))
			return fb_err_set(err, FB_RV_ACCESS_DENIED, "TLS handshake with %s refused: %s",
			                  url, why);
	}
		return fb_err_set(err, FB_RV_ACCESS_DENIED,
		                  "TLS handshake with %s refused (%s): the agent does not accept "
		                  "this certificate on this listener, the URL is not a failback "
		                  "listener, or the agent's certificate is not from the trusted CA "
		                  "or not issued to the expected name",
		                  url, nng_strerror(rv));
	case NNG_ECONNREFUSED:
		return fb_err_set(err, FB_RV_NOT_AVAILABLE, "nothing is listening at %s", url);
	default:
		return fb_err_set(err, fb_rv_from_nng(rv) == FB_RV_FAILED ? FB_RV_NOT_AVAILABLE
		                                                          : fb_rv_from_nng(rv),
		                  "cannot connect to %s: %s", url, nng_strerror(rv));
	}
}

uint32_t
fb_rpc_client_open(fb_rpc_client **out, const char *url, nng_tls_config *tls, fb_err *err)
{
	return fb_rpc_client_dial(out, url, tls, 0, err);
}

uint32_t
fb_rpc_client_dial(fb_rpc_client **out, const char *url, nng_tls_config *tls, int flags,
                   fb_err *err)
{
	fb_rpc_client *cli;
	nng_dialer     d;
	int            rv;

	if ((cli = calloc(1, sizeof(*cli))) == NULL)
		return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
	snprintf(cli->url, sizeof(cli->url), "%s", url);
	if ((rv = nng_req0_open(&cli->sock)) != 0) {
		free(cli);
		return fb_err_nng(err, rv, "req socket");
	}
	nng_socket_set_size(cli->sock, NNG_OPT_RECVMAXSZ, FB_RPC_MAX_MSG);
	nng_socket_set_ms(cli->sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	nng_socket_set_ms(cli->sock, NNG_OPT_RECONNMINT, 100);
	nng_socket_set_ms(cli->sock, NNG_OPT_RECONNMAXT, 2000);
	if ((rv = nng_dialer_create(&d, cli->sock, url)) != 0) {
		rv = (int)fb_err_nng(err, rv, url);
		goto fail;
	}
	nng_dialer_set_size(d, NNG_OPT_RECVMAXSZ, FB_RPC_MAX_MSG);
	if (tls != NULL && (rv = nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, tls)) != 0) {
		rv = (int)fb_err_nng(err, rv, url);
		goto fail;
	}
	if ((rv = nng_dialer_start(d, 0)) != 0) {
		rv = (int)client_dial_error(err, rv, url, flags);
		goto fail;
	}
	*out = cli;
	return FB_RV_OK;
fail:
	/* No pipe ever existed, so closing cannot meet the in-flight hang. */
	nng_close(cli->sock);
	free(cli);
	return (uint32_t)rv;
}

static uint32_t
client_aio_wait(nng_aio *aio)
{
	nng_aio_wait(aio);
	return (uint32_t)nng_aio_result(aio);
}

uint32_t
fb_rpc_client_call(fb_rpc_client *cli, const ProtobufCServiceDescriptor *svc, const char *method,
                   const ProtobufCMessage *in, ProtobufCMessage **out, uint32_t timeout_ms,
                   fb_err *err)
{
	const ProtobufCMethodDescriptor *md;
	Failback__Request                env = FAILBACK__REQUEST__INIT;
	Failback__Reply                 *rep = NULL;
	char                             name[160];
	nng_ctx                          ctx;
	nng_aio                         *aio = NULL;
	nng_msg                         *msg = NULL;
	size_t                           plen, elen;
	uint8_t                         *payload = NULL;
	uint32_t                         rv;
	int                              nrv;

	if ((md = protobuf_c_service_descriptor_get_method_by_name(svc, method)) == NULL)
		return fb_err_set(err, FB_RV_NOT_SUPPORTED, "%s has no method %s",
		                  svc->short_name, method);
	if (in->descriptor != md->input)
		return fb_err_set(err, FB_RV_INCORRECT_TYPE, "%s.%s takes %s, not %s",
		                  svc->short_name, method, md->input->name, in->descriptor->name);
	snprintf(name, sizeof(name), "%s.%s", svc->short_name, method);
	plen = protobuf_c_message_get_packed_size(in);
	if ((payload = malloc(plen ? plen : 1)) == NULL)
		return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
	protobuf_c_message_pack(in, payload);
	env.method       = name;
	env.payload.data = payload;
	env.payload.len  = plen;
	env.timeout_ms   = timeout_ms;
	elen             = failback__request__get_packed_size(&env);
	if (elen > FB_RPC_MAX_MSG) {
		free(payload);
		return fb_err_set(err, FB_RV_INVALID_PARAMETER,
		                  "%s request is %zu bytes, over the %u byte message limit", name,
		                  elen, FB_RPC_MAX_MSG);
	}
	if ((nrv = nng_msg_alloc(&msg, elen)) != 0) {
		free(payload);
		return fb_err_nng(err, nrv, "request");
	}
	failback__request__pack(&env, nng_msg_body(msg));
	free(payload);

	if ((nrv = nng_ctx_open(&ctx, cli->sock)) != 0) {
		nng_msg_free(msg);
		return fb_err_nng(err, nrv, "req context");
	}
	if ((nrv = nng_aio_alloc(&aio, NULL, NULL)) != 0) {
		nng_msg_free(msg);
		nng_ctx_close(ctx);
		return fb_err_nng(err, nrv, "aio");
	}
	nng_aio_set_timeout(aio, (nng_duration)timeout_ms);
	nng_aio_set_msg(aio, msg);
	nng_ctx_send(ctx, aio);
	if ((nrv = (int)client_aio_wait(aio)) != 0) {
		nng_msg_free(nng_aio_get_msg(aio));
		if (nrv == NNG_ETIMEDOUT)
			rv = fb_err_set(err, FB_RV_NOT_AVAILABLE,
			                "%s: not connected to %s within %u ms", name, cli->url,
			                timeout_ms);
		else
			rv = fb_err_nng(err, nrv, name);
		goto out;
	}
	nng_ctx_recv(ctx, aio);
	if ((nrv = (int)client_aio_wait(aio)) != 0) {
		/* Whatever ended the wait, part of a reply may still be arriving. */
		atomic_store(&cli->tainted, 1);
		if (nrv == NNG_ETIMEDOUT) {
			rv = fb_err_set(err, FB_RV_TIMEOUT, "%s: no reply from %s within %u ms", name,
			                cli->url, timeout_ms);
		} else {
			rv = fb_err_nng(err, nrv, name);
		}
		goto out;
	}
	msg = nng_aio_get_msg(aio);
	rep = failback__reply__unpack(NULL, nng_msg_len(msg), nng_msg_body(msg));
	nng_msg_free(msg);
	if (rep == NULL) {
		rv = fb_err_set(err, FB_RV_FAILED, "%s: malformed reply from %s", name, cli->url);
		goto out;
	}
	rv = rep->return_value;
	if (!fb_rv_ok(rv)) {
		fb_err_set(err, rv, "%s", rep->description[0] ? rep->description : fb_rv_name(rv));
		goto out;
	}
	*out = protobuf_c_message_unpack(md->output, NULL, rep->payload.len, rep->payload.data);
	if (*out == NULL)
		rv = fb_err_set(err, FB_RV_FAILED, "%s: undecodable %s in reply", name,
		                md->output->name);
out:
	if (rep != NULL)
		failback__reply__free_unpacked(rep, NULL);
	nng_aio_free(aio);
	nng_ctx_close(ctx);
	return rv;
}

void
fb_rpc_client_close(fb_rpc_client *cli)
{
	if (cli == NULL)
		return;
	/* Every call waits for its reply before returning, so unless one timed
	 * out nothing is in flight and closing is safe. */
	if (!atomic_load(&cli->tainted))
		nng_close(cli->sock);
	free(cli);
}

void
fb_rpc_client_abandon(fb_rpc_client *cli)
{
	if (cli == NULL)
		return;
	atomic_store(&cli->tainted, 1);
	fb_rpc_client_close(cli);
}

void
fb_rpc_exit_checked(int code)
{
#if defined(__SANITIZE_ADDRESS__)
	fflush(stderr);
	__lsan_do_leak_check();
#endif
	fb_rpc_exit(code);
}

void
fb_rpc_exit(int code)
{
	fflush(stdout);
	fflush(stderr);
	_exit(code);
}
