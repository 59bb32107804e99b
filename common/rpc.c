/*
 * rpc.c - the method registry and the dispatcher (see rpc.h).
 *
 * fb_rpc_dispatch is the only place a request envelope is read on the
 * server side: scanned in place (method, payload, timeout), the role checked,
 * and only then the payload decoded, once its fields are counted. It is pure (bytes in, NNG message
 * out), so the fuzz target drives it directly, and the socket code in rpc_server.c stays a thin aio
 * state machine.
 *
 * The reply is written in one pass into the NNG message: the packed
 * {return_value, description} part of failback.Reply followed by field 3
 * (payload) whose bytes are packed straight from the handler's output, so a
 * multi-MiB ReadBlocks reply is not copied through an intermediate buffer.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "failback/log.h"
#include "failback/rpc.h"
#include "rpc.pb-c.h"

#define MAX_SERVICES 8

struct fb_rpc_registry {
	struct {
		const ProtobufCServiceDescriptor *svc;
		const fb_rpc_method              *methods; /* indexed like svc->methods */
		void                             *arg;
	} services[MAX_SERVICES];
	size_t nservices;
};

struct arena_block {
	struct arena_block *next;
	max_align_t         data[];
};

struct fb_rpc_call {
	unsigned            role;
	uint64_t            deadline_ms;
	const char         *method;
	struct arena_block *arena;
	uint32_t            rv;
	char                desc[FB_ERR_MSG_MAX];
};

const char *
fb_role_name(unsigned role)
{
	switch (role) {
	case FB_ROLE_OPERATOR:
		return "operator";
	case FB_ROLE_MONITOR:
		return "monitor";
	case FB_ROLE_AGENT:
		return "agent";
	default:
		return "none";
	}
}

uint32_t
fb_rpc_registry_create(fb_rpc_registry **out, fb_err *err)
{
	fb_rpc_registry *reg = calloc(1, sizeof(*reg));

	if (reg == NULL)
		return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
	*out = reg;
	return FB_RV_OK;
}

void
fb_rpc_registry_destroy(fb_rpc_registry *reg)
{
	if (reg == NULL)
		return;
	for (size_t i = 0; i < reg->nservices; i++)
		free((void *)reg->services[i].methods);
	free(reg);
}

uint32_t
fb_rpc_registry_add(fb_rpc_registry *reg, const ProtobufCServiceDescriptor *svc,
                    const fb_rpc_method *methods, size_t n, void *arg, fb_err *err)
{
	fb_rpc_method *byindex;

	if (reg->nservices == MAX_SERVICES)
		return fb_err_set(err, FB_RV_INVALID_PARAMETER, "too many services");
	if (n != svc->n_methods)
		return fb_err_set(err, FB_RV_INVALID_PARAMETER,
		                  "%s: handler table has %zu rows, service declares %u methods",
		                  svc->short_name, n, svc->n_methods);
	if ((byindex = calloc(svc->n_methods, sizeof(*byindex))) == NULL)
		return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
	for (size_t i = 0; i < n; i++) {
		const ProtobufCMethodDescriptor *m =
		    protobuf_c_service_descriptor_get_method_by_name(svc, methods[i].name);
		size_t idx;

		if (m == NULL) {
			free(byindex);
			return fb_err_set(err, FB_RV_INVALID_PARAMETER, "%s has no method %s",
			                  svc->short_name, methods[i].name);
		}
		idx = (size_t)(m - svc->methods);
		if (byindex[idx].name != NULL) {
			free(byindex);
			return fb_err_set(err, FB_RV_INVALID_PARAMETER, "%s.%s listed twice",
			                  svc->short_name, methods[i].name);
		}
		byindex[idx] = methods[i];
	}
	reg->services[reg->nservices].svc     = svc;
	reg->services[reg->nservices].methods = byindex;
	reg->services[reg->nservices].arg     = arg;
	reg->nservices++;
	return FB_RV_OK;
}

unsigned
fb_rpc_call_role(const fb_rpc_call *call)
{
	return call->role;
}

uint64_t
fb_rpc_call_deadline_ms(const fb_rpc_call *call)
{
	return call->deadline_ms;
}

const char *
fb_rpc_call_method(const fb_rpc_call *call)
{
	return call->method;
}

void *
fb_rpc_alloc(fb_rpc_call *call, size_t size)
{
	struct arena_block *b = calloc(1, sizeof(*b) + size);

	if (b == NULL)
		return NULL;
	b->next     = call->arena;
	call->arena = b;
	return b->data;
}

char *
fb_rpc_strdup(fb_rpc_call *call, const char *s)
{
	size_t len = strlen(s) + 1;
	char  *d   = fb_rpc_alloc(call, len);

	if (d != NULL)
		memcpy(d, s, len);
	return d;
}

uint32_t
fb_rpc_fail(fb_rpc_call *call, uint32_t rv, const char *fmt, ...)
{
	va_list ap;

	call->rv = rv;
	va_start(ap, fmt);
	vsnprintf(call->desc, sizeof(call->desc), fmt, ap);
	va_end(ap);
	return rv;
}

static void
call_arena_free(fb_rpc_call *call)
{
	while (call->arena != NULL) {
		struct arena_block *next = call->arena->next;
		free(call->arena);
		call->arena = next;
	}
}

static size_t
varint_len(uint64_t v)
{
	size_t n = 1;

	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

static size_t
varint_put(uint8_t *p, uint64_t v)
{
	size_t n = 0;

	while (v >= 0x80) {
		p[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (uint8_t)v;
	return n;
}

/* Builds the reply message; out may be NULL (no payload). */
static nng_msg *
reply_build(uint32_t rv, const char *desc, const ProtobufCMessage *out);

nng_msg *
fb_rpc_reply_new(uint32_t rv, const char *desc)
{
	return reply_build(rv, desc, NULL);
}

static nng_msg *
reply_build(uint32_t rv, const char *desc, const ProtobufCMessage *out)
{
	Failback__Reply hdr = FAILBACK__REPLY__INIT;
	size_t          hlen, plen = 0, total;
	nng_msg        *msg;
	uint8_t        *p;

	hdr.return_value = rv;
	hdr.description  = (char *)(desc != NULL ? desc : "");
	hlen             = failback__reply__get_packed_size(&hdr);
	total            = hlen;
	if (out != NULL) {
		plen = protobuf_c_message_get_packed_size(out);
		total += 1 + varint_len(plen) + plen;
	}
	if (nng_msg_alloc(&msg, total) != 0)
		return NULL;
	p = nng_msg_body(msg);
	failback__reply__pack(&hdr, p);
	if (out != NULL) {
		p += hlen;
		*p++ = (3 << 3) | 2; /* field 3, length-delimited */
		p += varint_put(p, plen);
		protobuf_c_message_pack(out, p);
	}
	return msg;
}

static uint32_t
dispatch_fail(nng_msg **reply, uint32_t rv, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static uint32_t
dispatch_fail(nng_msg **reply, uint32_t rv, const char *fmt, ...)
{
	char    desc[FB_ERR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(desc, sizeof(desc), fmt, ap);
	va_end(ap);
	*reply = reply_build(rv, desc, NULL);
	return *reply != NULL ? rv : FB_RV_OUT_OF_MEMORY;
}

/* Finds "<Service>.<Method>"; returns the method index or -1. */
static int
registry_find(const fb_rpc_registry *reg, const char *name, size_t *svc_out)
{
	const char *dot = strchr(name, '.');

	if (dot == NULL)
		return -1;
	for (size_t i = 0; i < reg->nservices; i++) {
		const ProtobufCServiceDescriptor *svc = reg->services[i].svc;
		const ProtobufCMethodDescriptor  *m;

		if (strlen(svc->short_name) != (size_t)(dot - name) ||
		    memcmp(svc->short_name, name, (size_t)(dot - name)) != 0)
			continue;
		if ((m = protobuf_c_service_descriptor_get_method_by_name(svc, dot + 1)) == NULL)
			return -1;
		*svc_out = i;
		return (int)(m - svc->methods);
	}
	return -1;
}

/* --- reading the wire format without decoding it --- */

static int
wire_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	*v = 0;
	for (unsigned shift = 0; shift < 64; shift += 7) {
		if (*p == end)
			return -1;
		*v |= (uint64_t)(**p & 0x7f) << shift;
		if ((*(*p)++ & 0x80) == 0)
			return 0;
	}
	return -1;
}

/* One field: its number, wire type, and for length-delimited fields the
 * bytes; *p moves past it. -1 on anything protobuf-c would refuse too
 * (groups, truncation, field 0). */
static int
wire_field(const uint8_t **p, const uint8_t *end, uint32_t *num, unsigned *type, uint64_t *value,
           const uint8_t **data, size_t *dlen)
{
	uint64_t tag, n;

	if (wire_varint(p, end, &tag) != 0 || (tag >> 3) == 0 || (tag >> 3) > 0x1fffffff)
		return -1;
	*num  = (uint32_t)(tag >> 3);
	*type = (unsigned)(tag & 7);
	switch (*type) {
	case 0:
		return wire_varint(p, end, value);
	case 1:
	case 5:
		n = *type == 1 ? 8 : 4;
		if ((uint64_t)(end - *p) < n)
			return -1;
		*p += n;
		return 0;
	case 2:
		if (wire_varint(p, end, &n) != 0 || n > (uint64_t)(end - *p))
			return -1;
		*data = *p;
		*dlen = (size_t)n;
		*p += n;
		return 0;
	default:
		return -1;
	}
}

/* The envelope, as pointers into the request (nothing allocated, unknown
 * fields skipped): the role is checked before anything is decoded. */
typedef struct wire_env {
	char           method[FB_RPC_METHOD_MAX + 1];
	const uint8_t *payload;
	size_t         payload_len;
	uint32_t       timeout_ms;
} wire_env;

static int
wire_envelope(const uint8_t *buf, size_t len, wire_env *env)
{
	const uint8_t *p = buf, *end = buf + len;

	memset(env, 0, sizeof(*env));
	env->payload = buf; /* empty */
	while (p < end) {
		uint32_t       num;
		unsigned       type;
		uint64_t       v  = 0;
		const uint8_t *d  = NULL;
		size_t         dl = 0;

		if (wire_field(&p, end, &num, &type, &v, &d, &dl) != 0)
			return -1;
		if (num == 1 && type == 2) {
			if (dl > FB_RPC_METHOD_MAX)
				return -1;
			for (size_t i = 0; i < dl; i++)
				if (d[i] <= 0x20 || d[i] >= 0x7f) /* names are printable ASCII */
					return -1;
			memcpy(env->method, d, dl);
			env->method[dl] = '\0';
		} else if (num == 2 && type == 2) {
			env->payload     = d;
			env->payload_len = dl;
		} else if (num == 3 && type == 0) {
			env->timeout_ms = (uint32_t)v;
		} else if (num <= 3) {
			return -1; /* a known field with the wrong wire type */
		}
	}
	return 0;
}

/* Counts the fields of a message of type desc in buf, nested messages
 * included: what decoding it would allocate. protobuf-c keeps every
 * unknown field (~45 times its size in memory), so their number is
 * bounded; -1 when malformed or deeper than 32. */
static int
wire_count(const ProtobufCMessageDescriptor *desc, const uint8_t *buf, size_t len, unsigned depth,
           size_t *fields, size_t *unknown)
{
	const uint8_t *p = buf, *end = buf + len;

	if (depth > 32)
		return -1;
	while (p < end) {
		const ProtobufCFieldDescriptor *f;
		uint32_t                        num;
		unsigned                        type;
		uint64_t                        v  = 0;
		const uint8_t                  *d  = NULL;
		size_t                          dl = 0;

		if (wire_field(&p, end, &num, &type, &v, &d, &dl) != 0)
			return -1;
		(*fields)++;
		if ((f = protobuf_c_message_descriptor_get_field(desc, (unsigned)num)) == NULL)
			(*unknown)++;
		else if (type == 2 && f->type == PROTOBUF_C_TYPE_MESSAGE &&
		         wire_count(f->descriptor, d, dl, depth + 1, fields, unknown) != 0)
			return -1;
		if (*fields > FB_RPC_MAX_FIELDS || *unknown > FB_RPC_MAX_UNKNOWN)
			return 0; /* enough to refuse it */
	}
	return 0;
}

uint32_t
fb_rpc_dispatch(const fb_rpc_registry *reg, unsigned role, const void *req, size_t len,
                uint64_t recv_ms, uint64_t now_ms, nng_msg **reply)
{
	wire_env                         env;
	const ProtobufCMethodDescriptor *md;
	const fb_rpc_method             *row;
	ProtobufCMessage                *in = NULL, *out = NULL;
	fb_rpc_call                      call;
	size_t                           si = 0, fields = 0, unknown = 0;
	int                              mi;
	uint32_t                         rv;

	*reply = NULL;
	if (wire_envelope(req, len, &env) != 0) {
		fb_log_warn("FB2001", "malformed request envelope (%zu bytes) from %s", len,
		            fb_role_name(role));
		return dispatch_fail(reply, FB_RV_INVALID_PARAMETER,
		                     "malformed request envelope (%zu bytes)", len);
	}
	if ((mi = registry_find(reg, env.method, &si)) < 0) {
		fb_log_warn("FB2002", "unknown method '%.100s' from %s", env.method,
		            fb_role_name(role));
		return dispatch_fail(reply, FB_RV_NOT_SUPPORTED, "unknown method '%.100s'",
		                     env.method);
	}
	md  = &reg->services[si].svc->methods[mi];
	row = &reg->services[si].methods[mi];
	if ((row->roles & role) == 0) {
		fb_log_warn("FB2003", "access denied: %s may not call %s", fb_role_name(role),
		            env.method);
		return dispatch_fail(reply, FB_RV_ACCESS_DENIED, "the %s role may not call %s",
		                     fb_role_name(role), env.method);
	}
	if (row->fn == NULL)
		return dispatch_fail(reply, FB_RV_NOT_SUPPORTED,
		                     "%s is declared but not implemented in this version",
		                     env.method);
	memset(&call, 0, sizeof(call));
	call.role        = role;
	call.method      = env.method;
	call.deadline_ms = recv_ms + (env.timeout_ms ? env.timeout_ms : FB_RPC_DEFAULT_TIMEOUT_MS);
	if (now_ms >= call.deadline_ms)
		return dispatch_fail(reply, FB_RV_TIMEOUT,
		                     "%s waited %llu ms for a worker, past its deadline",
		                     env.method, (unsigned long long)(now_ms - recv_ms));
	if (wire_count(md->input, env.payload, env.payload_len, 0, &fields, &unknown) == 0 &&
	    (fields > FB_RPC_MAX_FIELDS || unknown > FB_RPC_MAX_UNKNOWN)) {
		fb_log_warn("FB2004",
		            "%s request from %s refused undecoded: over %u fields or %u "
		            "unknown ones",
		            env.method, fb_role_name(role), FB_RPC_MAX_FIELDS, FB_RPC_MAX_UNKNOWN);
		return dispatch_fail(reply, FB_RV_INVALID_PARAMETER,
		                     "malformed %s request: more than %u fields or %u unknown ones",
		                     env.method, FB_RPC_MAX_FIELDS, FB_RPC_MAX_UNKNOWN);
	}
	in = protobuf_c_message_unpack(md->input, NULL, env.payload_len, env.payload);
	if (in == NULL) {
		fb_log_warn("FB2004", "undecodable %s payload (%zu bytes) from %s", env.method,
		            env.payload_len, fb_role_name(role));
		return dispatch_fail(reply, FB_RV_INVALID_PARAMETER,
		                     "malformed %s request (%zu bytes)", env.method,
		                     env.payload_len);
	}
	if ((out = fb_rpc_alloc(&call, md->output->sizeof_message)) == NULL) {
		rv = dispatch_fail(reply, FB_RV_OUT_OF_MEMORY, "out of memory");
		goto out_in;
	}
	md->output->message_init(out);
	rv = row->fn(reg->services[si].arg, &call, in, out);
	if (!fb_rv_ok(rv)) {
		if (call.rv != rv || call.desc[0] == '\0')
			snprintf(call.desc, sizeof(call.desc), "%s failed", env.method);
		rv = dispatch_fail(reply, rv, "%s", call.desc);
	} else if (protobuf_c_message_get_packed_size(out) + FB_RPC_ENVELOPE_SLACK >
	           FB_RPC_MAX_MSG) {
		fb_log_error("FB2005", "%s built a reply over the %u byte limit", env.method,
		             FB_RPC_MAX_MSG);
		rv = dispatch_fail(reply, FB_RV_FAILED, "%s reply exceeds the message limit",
		                   env.method);
	} else if ((*reply = reply_build(rv, NULL, out)) == NULL) {
		rv = FB_RV_OUT_OF_MEMORY;
	}
out_in:
	protobuf_c_message_free_unpacked(in, NULL);
	call_arena_free(&call);
	return rv;
}
