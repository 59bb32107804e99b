/*
 * rpc.h - protobuf-c services over NNG req/rep, for both agents and the
 * client (DESIGN §5).
 *
 * A request is a failback.Request envelope naming "<Service>.<Method>"; the
 * reply is a failback.Reply carrying the method's return value, a
 * description on failure, and the output message. Methods are found through
 * the service descriptors protoc-c generates, so adding a method is a proto
 * change plus one row in a handler table.
 *
 * Roles. Every listener of a server is bound to one role (the CA it trusts
 * decides who can connect at all, see docs/SECURITY.md); every method row
 * lists the roles that may call it. A call from another role is answered
 * with Access Denied (32769) and the handler does not run.
 *
 * Limits. Every RPC socket refuses messages over FB_RPC_MAX_MSG: NNG drops
 * an oversize message silently and a REQ peer would then resend forever, so
 * the client also refuses to send one, and servers never build one.
 */
#ifndef FAILBACK_RPC_H
#define FAILBACK_RPC_H

#include <stddef.h>
#include <stdint.h>

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>
#include <protobuf-c/protobuf-c.h>

#include "failback/err.h"

#define FB_ROLE_OPERATOR 1u
#define FB_ROLE_MONITOR  2u
#define FB_ROLE_AGENT    4u
#define FB_ROLES_READ    (FB_ROLE_OPERATOR | FB_ROLE_MONITOR)
#define FB_ROLES_ALL     (FB_ROLE_OPERATOR | FB_ROLE_MONITOR | FB_ROLE_AGENT)

/* Receive limit on every RPC socket, both sides. */
#define FB_RPC_MAX_MSG (8u << 20)
/* What a server accepts per request, by the role of the listener: every
 * method's input fits (a ReplicationSettingData is at most 64 KiB, a
 * relationship 64 points), and decoding an oversized one (unknown fields
 * cost ~45 times their size) stays bounded. Larger requests are dropped by
 * NNG before anything is decoded. */
#define FB_RPC_MAX_REQUEST_OPERATOR (1u << 20)
#define FB_RPC_MAX_REQUEST_AGENT    (1u << 20)
#define FB_RPC_MAX_REQUEST_MONITOR  (64u << 10)
/* A request's method name ("<Service>.<Method>", printable ASCII), and
 * what decoding one request may allocate: its fields, nested ones
 * included, and of those the ones this version does not know (protobuf-c
 * keeps each). Over either, the request is refused undecoded. */
#define FB_RPC_METHOD_MAX  128u
#define FB_RPC_MAX_FIELDS  65536u
#define FB_RPC_MAX_UNKNOWN 64u
/* Room left for the envelope when sizing a reply payload. */
#define FB_RPC_ENVELOPE_SLACK 4096u
#define FB_RPC_DEFAULT_TIMEOUT_MS 30000u

/* fb_role_name returns "operator", "monitor", "agent" or "none". */
const char *fb_role_name(unsigned role);

/* --- server side: registry, handlers, dispatch --- */

typedef struct fb_rpc_call     fb_rpc_call;
typedef struct fb_rpc_registry fb_rpc_registry;

/* A handler fills out (already initialised by the output descriptor) using
 * memory from fb_rpc_alloc / fb_rpc_strdup, which lives until the reply has
 * been packed. It returns 0 (or 4096), or fails through fb_rpc_fail. It runs
 * on a worker thread, never in an NNG callback, so it may block on disk. */
typedef uint32_t (*fb_rpc_handler)(void *arg, fb_rpc_call *call, const ProtobufCMessage *in,
                                   ProtobufCMessage *out);

typedef struct fb_rpc_method {
	const char    *name;  /* as declared in the .proto */
	fb_rpc_handler fn;    /* NULL: declared but not built yet → Not Supported */
	unsigned       roles; /* FB_ROLE_* allowed to call it */
} fb_rpc_method;

uint32_t fb_rpc_registry_create(fb_rpc_registry **out, fb_err *err);
void     fb_rpc_registry_destroy(fb_rpc_registry *reg);

/* fb_rpc_registry_add registers a service. The table must name every method
 * of the service exactly once (so no method is ever reachable without a
 * decided role set) and nothing else; otherwise Invalid parameter. The
 * table is referenced, not copied. */
uint32_t fb_rpc_registry_add(fb_rpc_registry *reg, const ProtobufCServiceDescriptor *svc,
                             const fb_rpc_method *methods, size_t n, void *arg, fb_err *err);

/* fb_rpc_dispatch runs one request: decode the envelope, find the method,
 * check the role and the deadline (recv_ms + timeout; checked against
 * now_ms), decode the input, run the handler and build the reply message.
 * It does no I/O. Every outcome, including a malformed envelope, yields a
 * reply in *reply (NULL only when memory ran out). Returns the return value
 * that the reply carries. */
uint32_t fb_rpc_dispatch(const fb_rpc_registry *reg, unsigned role, const void *req, size_t len,
                         uint64_t recv_ms, uint64_t now_ms, nng_msg **reply);

/* fb_rpc_reply_new builds a reply carrying only rv and desc, for a server
 * that answers without dispatching (e.g. while shutting down). NULL on OOM. */
nng_msg *fb_rpc_reply_new(uint32_t rv, const char *desc);

unsigned    fb_rpc_call_role(const fb_rpc_call *call);
uint64_t    fb_rpc_call_deadline_ms(const fb_rpc_call *call); /* monotonic */
const char *fb_rpc_call_method(const fb_rpc_call *call);      /* "Service.Method" */
void       *fb_rpc_alloc(fb_rpc_call *call, size_t size);      /* zeroed; NULL on OOM */
char       *fb_rpc_strdup(fb_rpc_call *call, const char *s);
uint32_t    fb_rpc_fail(fb_rpc_call *call, uint32_t rv, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* --- server side: sockets --- */

typedef struct fb_rpc_server fb_rpc_server;

typedef struct fb_rpc_server_stats {
	uint32_t open_pipes;
	uint64_t calls_served;   /* replies with 0 or 4096 */
	uint64_t calls_rejected; /* every other reply */
} fb_rpc_server_stats;

/* fb_rpc_server_create opens a rep0 socket served by nctx contexts and
 * nworkers handler threads. The registry must outlive the server. */
uint32_t fb_rpc_server_create(fb_rpc_server **out, const fb_rpc_registry *reg, int nctx,
                              int nworkers, fb_err *err);

/* fb_rpc_server_listen adds a listener for one role. url may use port 0;
 * the URL actually bound is written to bound (bound_len bytes). The TLS
 * configuration is held by the listener. Call before fb_rpc_server_start. */
uint32_t fb_rpc_server_listen(fb_rpc_server *srv, const char *url, nng_tls_config *tls,
                              unsigned role, char *bound, size_t bound_len, fb_err *err);

/* fb_rpc_bound_url writes the URL listener l actually bound (url with its
 * port replaced by the one the kernel chose for port 0). */
void fb_rpc_bound_url(nng_listener l, const char *url, char *bound, size_t bound_len);

/* fb_rpc_server_start starts the workers and the contexts. */
uint32_t fb_rpc_server_start(fb_rpc_server *srv, fb_err *err);

/* fb_rpc_server_quiesce stops taking new calls and waits up to timeout_ms
 * for calls being handled to be answered and their replies handed to NNG.
 * Returns 0 when quiet, Timeout otherwise. It never closes the socket:
 * NNG 1.5.2 can hang in nng_close while a message is in flight, so a
 * process that stops calls this and then exits (fb_rpc_exit). */
uint32_t fb_rpc_server_quiesce(fb_rpc_server *srv, uint32_t timeout_ms);

void fb_rpc_server_stats_get(fb_rpc_server *srv, fb_rpc_server_stats *st);

/* --- client side --- */

typedef struct fb_rpc_client fb_rpc_client;

/* fb_rpc_client_open dials url (blocking for the first connection, so an
 * unreachable agent or a refused TLS handshake is reported now: System is
 * not available, or Access Denied). Later disconnects are redialled in the
 * background. tls is held by the dialer. */
uint32_t fb_rpc_client_open(fb_rpc_client **out, const char *url, nng_tls_config *tls,
                            fb_err *err);

/* fb_rpc_client_dial is fb_rpc_client_open with flags:
 * FB_RPC_DIAL_SHUT_TRANSIENT reports a connection shut during the TLS
 * handshake as System is not available (a cut connection is transient, to
 * be retried) rather than Access Denied. NNG 1.5.2 with mbedTLS gives the
 * same error for a server that refused the client's certificate and for a
 * TCP reset mid-handshake; a caller that retries uses this flag. */
#define FB_RPC_DIAL_SHUT_TRANSIENT 1
uint32_t fb_rpc_client_dial(fb_rpc_client **out, const char *url, nng_tls_config *tls, int flags,
                            fb_err *err);

/* fb_rpc_client_call sends in to svc.method and waits up to timeout_ms for
 * the reply. On 0 or 4096 *out holds the decoded output message (free it
 * with protobuf_c_message_free_unpacked(*out, NULL)); otherwise err holds
 * the return value and description. Thread-safe: each call uses its own
 * NNG context, so several calls may be in flight at once. */
uint32_t fb_rpc_client_call(fb_rpc_client *cli, const ProtobufCServiceDescriptor *svc,
                            const char *method, const ProtobufCMessage *in,
                            ProtobufCMessage **out, uint32_t timeout_ms, fb_err *err);

/* fb_rpc_client_close frees the client. If a call timed out (so a late
 * reply may still be arriving) the socket is left open rather than risk
 * NNG 1.5.2's close hang; the process reclaims it at exit. close(NULL) is a
 * no-op. */
void fb_rpc_client_close(fb_rpc_client *cli);

/* fb_rpc_client_abandon frees the client but leaves its socket to the
 * process's exit: for a client whose connection broke mid-call, which NNG
 * 1.5.2 may neither close safely nor serve again. */
void fb_rpc_client_abandon(fb_rpc_client *cli);

/* fb_rpc_exit ends the process with code without calling nng_close or
 * nng_fini (see above). Flushes stdio first. */
void fb_rpc_exit(int code) __attribute__((noreturn));

/* fb_rpc_exit_checked is fb_rpc_exit after a clean stop: in an
 * AddressSanitizer build it first runs the leak check, which reports and
 * fails the exit if memory was lost. */
void fb_rpc_exit_checked(int code) __attribute__((noreturn));

#endif
