/*
 * session.c - a worker's session with the primary: where it is, the pinned
 * certificate, FB_WORKER_FETCHERS connections, calls with retries, the
 * throttle, Negotiate with a validated manifest, and the networked drive
 * of the tree walk (walk.h is the pure engine).
 *
 * Connection 0 is made when the session opens (Negotiate, the walk and
 * every call of the main thread use it); each other one on its fetcher's
 * first call, in that thread, so their handshakes run in parallel and a
 * failback whose blocks all come from this host's store makes none.
 */
#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "failback/clock.h"
#include "failback/log.h"
#include "failback/pb.h"
#include "failback/throttle.h"
#include "failback/tls.h"
#include "worker.h"

static pthread_t session_main_thread;

static int
is_ip_literal(const char *host)
{
	struct in6_addr a;

	return inet_pton(AF_INET, host, &a) == 1 || inet_pton(AF_INET6, host, &a) == 1;
}

/* Where and how to reach the primary, the most specific first: the
 * settings' PrimaryConnectionPoint, the job's primary (replicate --from),
 * the VM's relationship, the agent's peer. The pin goes with the primary
 * it was set for; the settings' CertificateThumbPrint overrides it. */
static uint32_t
session_target(session *s, const replica *r, const fb_vm *vm, const Failback__JobParams *p,
               const fb_rsd *rsd, fb_err *err)
{
	const char *peer = r->rset->peer_url, *name = r->rset->peer_name, *pin = "";
	int         n;

	if (vm != NULL && vm->peer_url[0] != '\0') {
		peer = vm->peer_url;
		name = vm->peer_name;
		pin  = vm->peer_pin;
	}
	if (p != NULL && p->peer_url[0] != '\0') {
		peer = p->peer_url;
		name = p->peer_name;
		pin  = p->peer_pin;
	}
	snprintf(s->url, sizeof(s->url), "%s", peer);
	snprintf(s->sname, sizeof(s->sname), "%s", name);
	if (rsd->primary_connection_point[0] != '\0') {
		pin = "";
		const char *colon = strrchr(peer, ':');
		char        port[16];

		snprintf(port, sizeof(port), "%s", colon != NULL ? colon + 1 : "7413");
		if (rsd->port != 0)
			snprintf(port, sizeof(port), "%u", rsd->port);
		n = snprintf(s->url, sizeof(s->url), "tls+tcp://%s:%s", rsd->primary_connection_point,
		             port);
		if (n < 0 || (size_t)n >= sizeof(s->url))
			return fb_err_set(err, FB_RV_INVALID_PARAMETER,
			                  "PrimaryConnectionPoint is too long");
		if (!is_ip_literal(rsd->primary_connection_point))
			snprintf(s->sname, sizeof(s->sname), "%s", rsd->primary_connection_point);
	}
	snprintf(s->pin, sizeof(s->pin), "%s", rsd->thumbprint[0] != '\0' ? rsd->thumbprint : pin);
	return FB_RV_OK;
}

/* The pin checked once up front, for an error that names both
 * certificates; session_dial then binds every connection to it. */
static uint32_t
session_pin(session *s, const replica *r, fb_err *err)
{
	char     sha1[41], sha256[65];
	uint32_t rv;

	if (s->pin[0] == '\0')
		return FB_RV_OK;
	if ((rv = fb_tls_peer_thumbprint(s->url, r->set->ca_agents, r->set->cert, r->set->key,
	                                 s->sname, sha1, sha256, err)) != FB_RV_OK)
		return rv;
	if (strcmp(s->pin, strlen(s->pin) == 40 ? sha1 : sha256) != 0)
		return fb_err_set(err, FB_RV_ACCESS_DENIED,
		                  "the primary at %s presented certificate %s, not the pinned "
		                  "CertificateThumbPrint %s",
		                  s->url, strlen(s->pin) == 40 ? sha1 : sha256, s->pin);
	return FB_RV_OK;
}

static void
session_backoff(session *s, int attempt)
{
	unsigned ms = attempt < 3 ? 250u << attempt : 2000u;

	/* Only the main thread reports; fetchers just wait. */
	if (pthread_equal(pthread_self(), session_main_thread))
		progress_sleep_ms(s->pg, ms);
	else
		usleep(ms * 1000u);
}

static uint32_t
session_connect(session *s, int i, fb_err *err)
{
	uint32_t rv = FB_RV_NOT_AVAILABLE;
	fb_err   e  = {0};

	for (int attempt = 0; attempt < FB_WORKER_RETRIES; attempt++) {
		if ((rv = fb_rpc_client_dial(&s->cli[i], s->url, s->tls, FB_RPC_DIAL_SHUT_TRANSIENT,
		                             &e)) == FB_RV_OK)
			return FB_RV_OK;
		if (rv == FB_RV_ACCESS_DENIED) {
			if (s->pinned)
				return fb_err_set(err, rv,
				                  "the primary at %s refused, or presented a certificate "
				                  "other than the pinned CertificateThumbPrint: %s",
				                  s->url, e.msg);
			break;
		}
		fb_log_info("FB6002", "job %s: primary %s: %s (attempt %d)", s->job, s->url, e.msg,
		            attempt + 1);
		session_backoff(s, attempt);
	}
	return fb_err_set(err, rv, "cannot reach the primary at %s: %s", s->url, e.msg);
}

static void
session_init(session *s, const replica *r, progress *pg, const char *job)
{
	memset(s, 0, sizeof(*s));
	session_main_thread = pthread_self();
	s->r                = r;
	s->job              = job;
	s->pg               = pg;
	s->throttle.rate    = strtoull(r->rset->max_transfer_rate, NULL, 10) << 20;
}

/* Every connection (and NNG's reconnects) goes through one configuration;
 * a pin in it is checked in each handshake (tls_engine.c), so a connection
 * that reaches another certificate fails instead of serving the job. */
static uint32_t
session_dial(session *s, const replica *r, int nconn, const char *pin, fb_err *err)
{
	uint32_t rv;

	if ((rv = fb_tls_config_client_pinned(&s->tls, r->set->ca_agents, r->set->cert,
	                                      r->set->key, s->sname, pin, 0, err)) != FB_RV_OK)
		return rv;
	(void)nconn; /* connections 1.. are made when first used */
	s->pinned = pin != NULL && *pin != '\0';
	return session_connect(s, 0, err);
}

uint32_t
session_open(session *s, const replica *r, const fb_vm *vm, const Failback__JobParams *p,
             const fb_rsd *rsd, progress *pg, const char *job, fb_err *err)
{
	uint32_t rv;

	session_init(s, r, pg, job);
	if ((rv = session_target(s, r, vm, p, rsd, err)) != FB_RV_OK ||
	    (rv = session_pin(s, r, err)) != FB_RV_OK)
		return rv;
	return session_dial(s, r, FB_WORKER_FETCHERS, s->pin, err);
}

uint32_t
session_open_to(session *s, const replica *r, const char *url, const char *sname, int nconn,
                progress *pg, const char *job, fb_err *err)
{
	session_init(s, r, pg, job);
	if (nconn < 1 || nconn > FB_WORKER_FETCHERS ||
	    (size_t)snprintf(s->url, sizeof(s->url), "%s", url) >= sizeof(s->url) ||
	    (size_t)snprintf(s->sname, sizeof(s->sname), "%s", sname) >= sizeof(s->sname))
		return fb_err_set(err, FB_RV_INVALID_PARAMETER, "agent URL or name too long");
	return session_dial(s, r, nconn, NULL, err);
}

uint32_t
session_call(session *s, int i, const char *method, const ProtobufCMessage *in,
             ProtobufCMessage **out, fb_err *err)
{
	return session_call_svc(s, i, &failback__resync_source__descriptor, method, in, out,
	                        FB_CALL_TIMEOUT_MS, err);
}

/* One call on connection i, at most `attempts` times; a lost or silent
 * connection is replaced before the next attempt (and after the last, so
 * a later call starts on a fresh one). */
static uint32_t
session_call_n(session *s, int i, const ProtobufCServiceDescriptor *svc, const char *method,
               const ProtobufCMessage *in, ProtobufCMessage **out, uint32_t timeout_ms,
               int attempts, fb_err *err)
{
	uint32_t rv = FB_RV_NOT_AVAILABLE;

	for (int attempt = 0; attempt < attempts; attempt++) {
		if (s->cli[i] == NULL && (rv = session_connect(s, i, err)) != FB_RV_OK)
			return rv;
		rv = fb_rpc_client_call(s->cli[i], svc, method, in, out, timeout_ms, err);
		if (rv != FB_RV_NOT_AVAILABLE && rv != FB_RV_TIMEOUT)
			return rv;
		fb_log_info("FB6003", "job %s: %s: %s; retrying on a new connection", s->job, method,
		            err->msg);
		/* NNG 1.5.2 may never answer on a socket whose peer vanished
		 * mid-call (it resends into a wedged pipe): start afresh. */
		fb_rpc_client_abandon(s->cli[i]);
		s->cli[i] = NULL;
		session_backoff(s, attempt);
	}
	return rv;
}

uint32_t
session_call_svc(session *s, int i, const ProtobufCServiceDescriptor *svc, const char *method,
                 const ProtobufCMessage *in, ProtobufCMessage **out, uint32_t timeout_ms,
                 fb_err *err)
{
	return session_call_n(s, i, svc, method, in, out, timeout_ms, FB_WORKER_RETRIES, err);
}

void
session_throttle(session *s)
{
	uint64_t wait;

	while ((wait = fb_throttle_wait_ms(&s->throttle, fb_clock_mono_ms(), s->pg->bytes_done)) >
	       0) {
		usleep((useconds_t)((wait < 50 ? wait : 50) * 1000));
		progress_emit(s->pg, 0);
	}
}

uint32_t
session_walk(session *s, const char *rp, const char *disk, uint64_t n, const fb_hash *root,
             const fb_merkle *local, int want_leaves, fb_walk_diff **diffs, size_t *nd,
             fb_hash **leaves, fb_err *err)
{
	fb_walk_ref                 *refs  = malloc(FB_WIRE_MAX_TREE_NODES * sizeof(*refs));
	Failback__TreeNodeRef       *nodes = calloc(FB_WIRE_MAX_TREE_NODES, sizeof(*nodes));
	Failback__TreeNodeRef      **pnodes = calloc(FB_WIRE_MAX_TREE_NODES, sizeof(*pnodes));
	fb_walk                     *w      = NULL;
	uint32_t                     rv;

	*diffs = NULL;
	*nd    = 0;
	if (leaves != NULL)
		*leaves = NULL;
	if (refs == NULL || nodes == NULL || pnodes == NULL) {
		rv = fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
		goto out;
	}
	if ((rv = fb_walk_open(&w, n, root, local, want_leaves, err)) != FB_RV_OK)
		goto out;
	for (;;) {
		Failback__GetTreeNodesRequest   req = FAILBACK__GET_TREE_NODES_REQUEST__INIT;
		Failback__GetTreeNodesResponse *rsp = NULL;
		size_t                          k, want;

		if ((rv = fb_walk_next(w, refs, FB_WIRE_MAX_TREE_NODES, &k, err)) != FB_RV_OK)
			goto out;
		if (k == 0)
			break;
		for (size_t i = 0; i < k; i++) {
			failback__tree_node_ref__init(&nodes[i]);
			nodes[i].level = refs[i].level;
			nodes[i].index = refs[i].index;
			pnodes[i]      = &nodes[i];
		}
		req.recovery_point_identifier = (char *)rp;
		req.disk                      = (char *)disk;
		req.session_token             = (ProtobufCBinaryData){s->token_len, s->token};
		req.nodes                     = pnodes;
		req.n_nodes                   = k;
		if ((rv = session_call(s, 0, "GetTreeNodes", &req.base, (ProtobufCMessage **)&rsp,
		                       err)) != FB_RV_OK) {
			char why[FB_ERR_MSG_MAX];

			snprintf(why, sizeof(why), "%s", err->msg);
			rv = fb_err_set(err, rv, "comparing %s: %s", disk, why);
			goto out;
		}
		progress_add_wire(s->pg, failback__get_tree_nodes_request__get_packed_size(&req) +
		                             rsp->hashes.len);
		want = fb_walk_expected(w);
		if (rsp->hashes.len != want * sizeof(fb_hash)) {
			rv = fb_err_set(err, FB_RV_FAILED,
			                "short tree reply for %s: %zu bytes where %zu were expected",
			                disk, rsp->hashes.len, want * sizeof(fb_hash));
			failback__get_tree_nodes_response__free_unpacked(rsp, NULL);
			goto out;
		}
		rv = fb_walk_feed(w, (const fb_hash *)(const void *)rsp->hashes.data, want, err);
		failback__get_tree_nodes_response__free_unpacked(rsp, NULL);
		if (rv != FB_RV_OK)
			goto out;
		progress_emit(s->pg, 0);
	}
	if ((rv = fb_walk_finish(w, diffs, nd, leaves, err)) != FB_RV_OK && rv == FB_RV_FAILED)
		rv = fb_err_set(err, FB_RV_FAILED, "the primary's tree for %s does not give its root",
		                disk);
out:
	fb_walk_close(w);
	free(refs);
	free(nodes);
	free(pnodes);
	return rv;
}

uint32_t
session_negotiate(session *s, fb_db *db, const char *vm_ref, const char *rp, int force,
                  Failback__NegotiateResponse **rsp, fb_err *err)
{
	Failback__NegotiateRequest req = FAILBACK__NEGOTIATE_REQUEST__INIT;
	fb_rp                     *rps = NULL;
	fb_vm                     *vm  = NULL;
	fb_proof                  *proof = NULL;
	size_t                     n   = 0;
	char                     **known;
	fb_err                     e = {0};
	uint32_t                   rv;

	*rsp = NULL;
	if (fb_vm_get(db, vm_ref, &vm, &e) == FB_RV_OK) {
		req.generation = vm->generation;
		free(vm);
	}
	req.force = force != 0;
	if (fb_rp_list(db, vm_ref, &rps, &n, &e) != FB_RV_OK)
		n = 0; /* a VM this replica does not hold yet */
	if ((known = calloc(n + 1, sizeof(char *))) == NULL) {
		free(rps);
		return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
	}
	for (size_t i = 0; i < n; i++)
		known[i] = rps[i].id;
	req.vm                        = (char *)vm_ref;
	req.recovery_point_identifier = (char *)rp;
	req.known_points              = known;
	req.n_known_points            = n;
	/* Who asks: the primary serves a VM that names its receiving side only
	 * to that replica agent. A proof is good once, so every attempt signs
	 * a new one (a lost reply must not turn the retry into a replay). */
	if ((proof = malloc(sizeof(*proof))) == NULL)
		rv = fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
	for (int attempt = 0; proof != NULL && attempt < FB_WORKER_RETRIES; attempt++) {
		if ((rv = fb_proof_sign(s->r->set->cert, s->r->set->key, vm_ref, s->sname,
		                        (uint64_t)fb_clock_unix_ms(), proof, err)) != FB_RV_OK)
			break;
		req.proof_certificate  = (ProtobufCBinaryData){proof->cert_len, proof->cert};
		req.proof_primary_name = s->sname;
		req.proof_time_unix_ms = proof->time_ms;
		req.proof_nonce        = (ProtobufCBinaryData){sizeof(proof->nonce), proof->nonce};
		req.proof_signature    = (ProtobufCBinaryData){proof->sig_len, proof->sig};
		rv = session_call_n(s, 0, &failback__resync_source__descriptor, "Negotiate", &req.base,
		                    (ProtobufCMessage **)rsp, FB_CALL_TIMEOUT_MS, 1, err);
		if (rv != FB_RV_NOT_AVAILABLE && rv != FB_RV_TIMEOUT)
			break;
	}
	free(proof);
	free(known);
	free(rps);
	s->token_len = 0;
	if (rv == FB_RV_OK && (*rsp)->session_token.len == FB_PROOF_TOKEN_LEN) {
		memcpy(s->token, (*rsp)->session_token.data, FB_PROOF_TOKEN_LEN);
		s->token_len = FB_PROOF_TOKEN_LEN;
	}
	if (rv != FB_RV_OK) {
		char why[FB_ERR_MSG_MAX];

		snprintf(why, sizeof(why), "%s", err->msg);
		return fb_err_set(err, rv, "negotiating with the primary: %s", why);
	}
	if ((rv = fb_pb_check_rp((*rsp)->target, "the primary", err)) == FB_RV_OK &&
	    (*rsp)->generation < req.generation) {
		if (force)
			fb_log_warn("FB6004",
			            "job %s: the primary holds VM %s at generation %llu, older than "
			            "this replica's %llu; forced",
			            s->job, vm_ref, (unsigned long long)(*rsp)->generation,
			            (unsigned long long)req.generation);
		else
			rv = fb_err_set(err, FB_RV_INVALID_STATE,
			                "the primary at %s holds VM %s at generation %llu, older than "
			                "this replica's %llu: refusing to overwrite a newer copy",
			                s->url, vm_ref, (unsigned long long)(*rsp)->generation,
			                (unsigned long long)req.generation);
	}
	if (rv != FB_RV_OK) {
		failback__negotiate_response__free_unpacked(*rsp, NULL);
		*rsp = NULL;
	}
	return rv;
}
