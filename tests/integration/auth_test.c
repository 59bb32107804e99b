/*
 * auth_test.c - the RPC layer and the role model with real agents on
 * loopback: who may connect to which listener, who may call which method,
 * and that bad input is answered without hurting the next caller.
 */
#define _GNU_SOURCE /* prlimit */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "agent.pb-c.h"
#include "clients.h"
#include "failback/events.h"
#include "failback/rpc.h"
#include "failback/tls.h"
#include "harness.h"
#include "replica.pb-c.h"
#include "resync.pb-c.h"
#include "rpc.pb-c.h"

static fbt_agent replica, primary, wrongname;
static char      out[1 << 16];

static int
group_setup(void **state)
{
	(void)state;
	if (fbt_setup() != 0)
		return -1;
	if (fbt_agent_start(&replica, "replica", "replica", NULL) != 0)
		return -1;
	if (fbt_agent_start(&primary, "primary", "primary", NULL) != 0)
		return -1;
	if (fbt_agent_start(&wrongname, "replica", "wrongname-replica", NULL) != 0)
		return -1;
	return 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	fbt_teardown(); /* stops the agents too */
	return 0;
}

static fb_rpc_client *
client_as(const char *url, const char *id, const char *sname, fb_err *err, uint32_t *rv)
{
	fb_rpc_client *cli;

	*rv = fbt_client(&cli, url, id, sname, err);
	return cli;
}

/* failbackctl as id against url is refused during the TLS handshake. */
static void
assert_refused(const char *url, const char *id, const char *sname)
{
	assert_int_equal(fbt_ctl(out, sizeof(out), url, id, sname, "status", NULL), 1);
	assert_non_null(strstr(out, "Access Denied (32769)"));
	assert_non_null(strstr(out, "handshake"));
}

static void
operator_status_round_trip_through_failbackctl(void **state)
{
	(void)state;
	assert_int_equal(fbt_ctl(out, sizeof(out), replica.control, "operator",
	                         "replica.failback.test", "status", NULL),
	                 0);
	assert_non_null(strstr(out, "agent: replica"));
	assert_non_null(strstr(out, "caller_role: operator"));
}

static void
json_output_carries_return_value_and_result(void **state)
{
	(void)state;
	assert_int_equal(fbt_ctl(out, sizeof(out), replica.monitor, "monitor",
	                         "replica.failback.test", "--json", "status", NULL),
	                 0);
	assert_non_null(strstr(out, "\"return_value\":0"));
	assert_non_null(strstr(out, "\"caller_role\":\"monitor\""));
}

static void
monitor_calling_control_method_gets_access_denied_reply(void **state)
{
	(void)state;
	assert_int_equal(fbt_ctl(out, sizeof(out), replica.monitor, "monitor",
	                         "replica.failback.test", "failback", "vm1", NULL),
	                 1);
	assert_non_null(strstr(out, "Access Denied (32769)"));
	assert_non_null(strstr(out, "monitor role may not call ReplicationService.InitiateFailback"));
}

static void
monitor_on_operator_listener_is_refused_at_handshake(void **state)
{
	(void)state;
	assert_refused(replica.control, "monitor", "replica.failback.test");
	/* The agent's alert names the cause; when the agent's close overtakes
	 * it (a reset: the rest of this client's handshake was still unread
	 * there), the client can only say which causes are possible. */
	if (strstr(out, "the agent refused this certificate") == NULL &&
	    strstr(out, "the agent does not accept this certificate on this listener") == NULL)
		fail_msg("no reason for the refusal: %s", out);
}

static void
rogue_ca_certificate_is_refused(void **state)
{
	(void)state;
	assert_refused(replica.control, "rogue-operator", "replica.failback.test");
}

static void
expired_certificate_is_refused(void **state)
{
	(void)state;
	assert_refused(replica.control, "expired-operator", "replica.failback.test");
}

static void
client_without_certificate_is_refused(void **state)
{
	nng_tls_config *tls;
	nng_socket      s;
	nng_dialer      d;

	(void)state;
	assert_int_equal(nng_tls_config_alloc(&tls, NNG_TLS_MODE_CLIENT), 0);
	assert_int_equal(nng_tls_config_ca_file(tls, fbt_pki_file("agents-ca.pem")), 0);
	assert_int_equal(nng_tls_config_server_name(tls, "replica.failback.test"), 0);
	assert_int_equal(nng_tls_config_auth_mode(tls, NNG_TLS_AUTH_MODE_REQUIRED), 0);
	assert_int_equal(nng_req0_open(&s), 0);
	assert_int_equal(nng_dialer_create(&d, s, replica.control), 0);
	assert_int_equal(nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, tls), 0);
	assert_int_not_equal(nng_dialer_start(d, 0), 0);
	nng_close(s); /* never connected: nothing in flight */
	nng_tls_config_free(tls);
}

static void
wrong_server_name_is_refused_by_the_client(void **state)
{
	(void)state;
	/* The agent's certificate is from the right CA but names another host:
	 * the refusal says which name it carries and what to check. */
	assert_refused(wrongname.control, "operator", "replica.failback.test");
	assert_non_null(strstr(out, "not issued to replica.failback.test (its DNS names: "
	                            "wrong.failback.test); check --server-name"));
	/* The same agent is accepted under the name it does carry. */
	assert_int_equal(fbt_ctl(out, sizeof(out), wrongname.control, "operator",
	                         "wrong.failback.test", "status", NULL),
	                 0);
}

static void
agent_certificate_cannot_reach_control_listener(void **state)
{
	(void)state;
	assert_refused(replica.control, "primary", "replica.failback.test");
}

static void
operator_cannot_reach_resync_listener(void **state)
{
	(void)state;
	assert_refused(primary.resync, "operator", "primary.failback.test");
}

static void
operator_calling_resync_source_gets_access_denied_reply(void **state)
{
	Failback__NegotiateRequest in = FAILBACK__NEGOTIATE_REQUEST__INIT;
	ProtobufCMessage          *o  = NULL;
	fb_rpc_client             *cli;
	fb_err                     err = {0};
	uint32_t                   rv;

	(void)state;
	cli = client_as(primary.control, "operator", "primary.failback.test", &err, &rv);
	assert_int_equal(rv, FB_RV_OK);
	rv = fb_rpc_client_call(cli, &failback__resync_source__descriptor, "Negotiate", &in.base,
	                        &o, 10000, &err);
	assert_int_equal(rv, FB_RV_ACCESS_DENIED);
	assert_non_null(strstr(err.msg, "operator role may not call ResyncSource.Negotiate"));
	fb_rpc_client_abandon(cli);
}

static void
replica_agent_reaches_resync_source(void **state)
{
	Failback__NegotiateRequest in = FAILBACK__NEGOTIATE_REQUEST__INIT;
	ProtobufCMessage          *o  = NULL;
	fb_rpc_client             *cli;
	fb_err                     err = {0};
	uint32_t                   rv;

	(void)state;
	cli = client_as(primary.resync, "replica", "primary.failback.test", &err, &rv);
	assert_int_equal(rv, FB_RV_OK);
	/* The agent role passes the role check and the method answers: no such VM. */
	in.vm = "nosuch";
	rv    = fb_rpc_client_call(cli, &failback__resync_source__descriptor, "Negotiate", &in.base,
	                           &o, 10000, &err);
	assert_int_equal(rv, FB_RV_FILE_NOT_FOUND);
	fb_rpc_client_abandon(cli);
}

/* Sends raw bytes to url as identity id and decodes the reply. */
static uint32_t
raw_call_as(const char *url, const char *id, const void *bytes, size_t len, char *desc,
            size_t desclen)
{
	char             certf[64], keyf[64];
	nng_tls_config  *tls;
	nng_socket       s;
	nng_msg         *m;
	Failback__Reply *rep;
	fb_err           err = {0};
	uint32_t         rv;

	snprintf(certf, sizeof(certf), "%s.pem", id);
	snprintf(keyf, sizeof(keyf), "%s.key", id);
	assert_int_equal(fb_tls_config_client(&tls, fbt_pki_file("agents-ca.pem"),
	                                      fbt_pki_file(certf), fbt_pki_file(keyf),
	                                      "replica.failback.test", 0, &err),
	                 0);
	assert_int_equal(nng_req0_open(&s), 0);
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 10000);
	nng_socket_set_ms(s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	{
		nng_dialer d;
		assert_int_equal(nng_dialer_create(&d, s, url), 0);
		assert_int_equal(nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, tls), 0);
		/* in the background: a listener at its limit refuses a connection,
		 * the dialer tries again */
		assert_int_equal(nng_dialer_start(d, NNG_FLAG_NONBLOCK), 0);
	}
	assert_int_equal(nng_send(s, (void *)bytes, len, 0), 0);
	assert_int_equal(nng_recvmsg(s, &m, 0), 0);
	rep = failback__reply__unpack(NULL, nng_msg_len(m), nng_msg_body(m));
	assert_non_null(rep);
	rv = rep->return_value;
	snprintf(desc, desclen, "%s", rep->description);
	failback__reply__free_unpacked(rep, NULL);
	nng_msg_free(m);
	/* the socket is left to the exit, like every client here (clients.h) */
	nng_tls_config_free(tls);
	return rv;
}

/* Sends raw bytes on an operator connection and decodes the reply. */
static uint32_t
raw_call(const void *bytes, size_t len, char *desc, size_t desclen)
{
	return raw_call_as(replica.control, "operator", bytes, len, desc, desclen);
}

static void
malformed_requests_get_error_replies_and_agent_keeps_serving(void **state)
{
	static const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 0x0f};
	Failback__Request    env       = FAILBACK__REQUEST__INIT;
	uint8_t              buf[256];
	char                 desc[512];

	(void)state;
	assert_int_equal(raw_call(garbage, sizeof(garbage), desc, sizeof(desc)),
	                 FB_RV_INVALID_PARAMETER);
	assert_non_null(strstr(desc, "malformed request envelope"));

	env.method = "NoSuchService.Method";
	assert_int_equal(raw_call(buf, failback__request__pack(&env, buf), desc, sizeof(desc)),
	                 FB_RV_NOT_SUPPORTED);
	assert_non_null(strstr(desc, "unknown method"));

	env.method       = "AgentService.GetAgentStatus";
	env.payload.data = (uint8_t *)garbage;
	env.payload.len  = sizeof(garbage);
	assert_int_equal(raw_call(buf, failback__request__pack(&env, buf), desc, sizeof(desc)),
	                 FB_RV_INVALID_PARAMETER);
	assert_non_null(strstr(desc, "malformed AgentService.GetAgentStatus request"));

	/* The next well-formed call succeeds and the agent counted the rejects. */
	assert_int_equal(fbt_ctl(out, sizeof(out), replica.control, "operator",
	                         "replica.failback.test", "status", NULL),
	                 0);
	assert_null(strstr(out, "calls_rejected: 0\n"));
	assert_true(fbt_file_contains(replica.log, "FB2001"));
}

/* Each listener accepts requests sized for its role: 128 KiB is a normal
 * operator request but no monitor method takes one, so the monitor
 * listener drops it undecoded and keeps serving. */
static void
requests_over_a_listener_limit_are_dropped_undecoded(void **state)
{
	Failback__VmRef   in  = FAILBACK__VM_REF__INIT;
	ProtobufCMessage *o   = NULL;
	fb_rpc_client    *cli;
	fb_err            err = {0};
	uint32_t          rv;
	char             *big = malloc(128 << 10);

	(void)state;
	assert_non_null(big);
	memset(big, 'x', (128 << 10) - 1);
	big[(128 << 10) - 1] = '\0';
	in.vm = big;
	cli   = client_as(replica.control, "operator", "replica.failback.test", &err, &rv);
	assert_int_equal(rv, FB_RV_OK);
	assert_int_equal(fb_rpc_client_call(cli, &failback__replication_service__descriptor,
	                                    "GetVirtualSystem", &in.base, &o, 10000, &err),
	                 FB_RV_INVALID_PARAMETER); /* decoded, answered */
	fb_rpc_client_abandon(cli);
	cli = client_as(replica.monitor, "monitor", "replica.failback.test", &err, &rv);
	assert_int_equal(rv, FB_RV_OK);
	rv = fb_rpc_client_call(cli, &failback__replication_service__descriptor, "GetVirtualSystem",
	                        &in.base, &o, 2000, &err);
	assert_true(rv == FB_RV_TIMEOUT || rv == FB_RV_NOT_AVAILABLE); /* dropped, no reply */
	fb_rpc_client_abandon(cli); /* a timed-out client's socket is left to the exit */
	free(big);
	assert_int_equal(fbt_ctl(out, sizeof(out), replica.monitor, "monitor",
	                         "replica.failback.test", "status", NULL),
	                 0);
}

static void
unreachable_agent_is_system_not_available(void **state)
{
	(void)state;
	/* Port 1 on loopback has no listener. */
	assert_int_equal(fbt_ctl(out, sizeof(out), "tls+tcp://127.0.0.1:1", "operator",
	                         "replica.failback.test", "status", NULL),
	                 1);
	assert_non_null(strstr(out, "System is not available (32777)"));
}

/* An agent that accepts TCP but never finishes the handshake: failbackctl
 * gives up after --timeout, with System is not available. */
static void
timeout_bounds_the_first_connection(void **state)
{
	struct sockaddr_in a    = {0};
	socklen_t          alen = sizeof(a);
	char               url[64];
	int                fd = socket(AF_INET, SOCK_STREAM, 0);

	(void)state;
	a.sin_family      = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, 4), 0); /* the kernel completes TCP; nobody speaks TLS */
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
	snprintf(url, sizeof(url), "tls+tcp://127.0.0.1:%u", (unsigned)ntohs(a.sin_port));
	assert_int_equal(fbt_ctl(out, sizeof(out), url, "operator", "replica.failback.test",
	                         "--timeout=500", "status", NULL),
	                 1);
	assert_non_null(strstr(out, "System is not available (32777)"));
	assert_non_null(strstr(out, "within 500 ms"));
	close(fd);
}

/* --crl on an agent: a certificate its CA revoked is refused in the
 * handshake on every listener, the others are served; the same
 * certificate reaches an agent without the CRL. A CRL that cannot be read
 * stops the agent at start, saying why. */
static void
a_revoked_certificate_is_refused_by_an_agent_with_the_crl(void **state)
{
	static fbt_agent crlrep, badcrl;
	char             crl[700];

	(void)state;
	snprintf(crl, sizeof(crl), "--crl=%s", fbt_pki_file("operators-crl.pem"));
	assert_int_equal(fbt_agent_start(&crlrep, "replica", "replica", (const char *[]){crl, NULL}),
	                 0);
	assert_refused(crlrep.control, "revoked-operator", "replica.failback.test");
	assert_int_equal(fbt_ctl(out, sizeof(out), crlrep.control, "operator",
	                         "replica.failback.test", "status", NULL),
	                 0);
	assert_int_equal(fbt_ctl(out, sizeof(out), replica.control, "revoked-operator",
	                         "replica.failback.test", "status", NULL),
	                 0);
	assert_int_equal(fbt_agent_stop(&crlrep, SIGTERM, 10000), 0);

	snprintf(crl, sizeof(crl), "--crl=%s", fbt_pki_file("operator.pem")); /* not a CRL */
	assert_int_equal(fbt_agent_start(&badcrl, "replica", "replica", (const char *[]){crl, NULL}),
	                 -1);
	assert_true(fbt_file_contains(badcrl.log, "--crl"));
}

/* --crl on failbackctl: an agent whose certificate its CA revoked is
 * refused on the control listener and on the events listener (events,
 * and --wait's progress), while the same agent is served without the CRL
 * and the genuine replica with it. */
static void
failbackctl_with_the_crl_refuses_a_revoked_agent_on_every_connection(void **state)
{
	static fbt_agent revoked;
	char             crl[700], ev[700];

	(void)state;
	snprintf(crl, sizeof(crl), "--crl=%s", fbt_pki_file("agents-crl.pem"));
	assert_int_equal(fbt_agent_start(&revoked, "replica", "revoked-replica", NULL), 0);
	snprintf(ev, sizeof(ev), "--events-url=%s", revoked.events);
	assert_int_equal(fbt_ctl(out, sizeof(out), revoked.control, "operator",
	                         "replica.failback.test", "status", NULL),
	                 0);
	assert_int_equal(fbt_ctl(out, sizeof(out), revoked.control, "operator",
	                         "replica.failback.test", crl, "status", NULL),
	                 1);
	assert_non_null(strstr(out, "handshake"));
	assert_int_equal(fbt_ctl(out, sizeof(out), replica.control, "operator",
	                         "replica.failback.test", crl, "status", NULL),
	                 0);
	assert_non_null(strstr(out, "agent: replica"));
	/* the events listener: the subscription is refused, and says where */
	assert_int_equal(fbt_ctl(out, sizeof(out), revoked.control, "operator",
	                         "replica.failback.test", crl, ev, "--timeout=1500", "events",
	                         "--count", "1", NULL),
	                 1);
	assert_non_null(strstr(out, "handshake"));
	assert_non_null(strstr(out, revoked.events));
	/* --wait: the job's call is refused before any progress is followed */
	assert_int_equal(fbt_ctl(out, sizeof(out), revoked.control, "operator",
	                         "replica.failback.test", crl, ev, "replicate", "nosuchvm", "--wait",
	                         NULL),
	                 1);
	assert_non_null(strstr(out, "handshake"));
	assert_int_equal(fbt_agent_stop(&revoked, SIGTERM, 10000), 0);
}

/* Connections that stop after the first byte of a ClientHello are dropped
 * by the agent (FB1008), while an authenticated client that is merely idle
 * keeps its connection and is served. (One byte each, so the kernel's
 * deferred accept hands them to the agent: a connection that sends nothing
 * at all may instead be dropped by the kernel, and the agent never sees
 * it.) */
static void
silent_connections_are_dropped_idle_clients_are_kept(void **state)
{
	enum { N = 40 };
	Failback__GetAgentStatusRequest in = FAILBACK__GET_AGENT_STATUS_REQUEST__INIT;
	struct sockaddr_in              a  = {0};
	ProtobufCMessage               *o  = NULL;
	fb_rpc_client                  *cli;
	fb_err                          err = {0};
	int                             fds[N], open_n = N;
	const char                     *port = strrchr(replica.monitor, ':') + 1;

	(void)state;
	assert_int_equal(fbt_client(&cli, replica.monitor, "monitor", "replica.failback.test", &err),
	                 0);
	a.sin_family      = AF_INET;
	a.sin_port        = htons((uint16_t)atoi(port));
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (int i = 0; i < N; i++) {
		assert_true((fds[i] = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
		assert_int_equal(connect(fds[i], (struct sockaddr *)&a, sizeof(a)), 0);
		assert_int_equal(send(fds[i], "\x16", 1, 0), 1); /* a TLS handshake record... */
	}
	/* the agent still answers meanwhile */
	assert_int_equal(fbt_ctl(out, sizeof(out), replica.control, "operator",
	                         "replica.failback.test", "status", NULL),
	                 0);
	/* bounded: the agent drops them 10 s after they came */
	for (int waited = 0; open_n > 0 && waited < 120; waited++) {
		struct pollfd p[N];

		for (int i = 0; i < N; i++)
			p[i] = (struct pollfd){fds[i], POLLIN, 0};
		(void)poll(p, N, 1000);
		for (int i = 0; i < N; i++)
			if (fds[i] >= 0 && (p[i].revents & (POLLIN | POLLHUP | POLLERR))) {
				close(fds[i]);
				fds[i] = -1;
				open_n--;
			}
	}
	assert_int_equal(open_n, 0);
	/* the sweep drops them, then says so: the line may trail the close */
	for (int i = 0; i < 100 && !fbt_file_contains(replica.log, "FB1008"); i++)
		usleep(100000);
	assert_true(fbt_file_contains(replica.log, "FB1008"));
	/* the idle, authenticated client was not among them */
	assert_int_equal(fb_rpc_client_call(cli, &failback__agent_service__descriptor,
	                                    "GetAgentStatus", &in.base, &o, 10000, &err),
	                 FB_RV_OK);
	protobuf_c_message_free_unpacked(o, NULL);
	fb_rpc_client_abandon(cli);
}

/* The agent's resident memory (kB) and open descriptors, from /proc. */
static void
agent_usage(pid_t pid, long *rss_kb, int *fds)
{
	char  path[64], line[256];
	FILE *f;
	DIR  *d;

	*rss_kb = -1;
	*fds    = 0;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	assert_non_null(f = fopen(path, "r"));
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, "VmRSS:", 6) == 0)
			*rss_kb = atol(line + 6);
	fclose(f);
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	assert_non_null(d = opendir(path));
	while (readdir(d) != NULL)
		(*fds)++;
	closedir(d);
}

/* What the flood may add to the agent's RSS: ASan keeps up to 256 MiB of
 * freed memory in quarantine, on top of its shadow. */
#if defined(__SANITIZE_ADDRESS__)
#define RSS_GROWTH_KB (400 * 1024)
#else
#define RSS_GROWTH_KB (100 * 1024)
#endif

/* A TCP connection to port that sends the first bytes of a ClientHello
 * (a record announcing 200 bytes, 6 of them sent) and then nothing: a
 * handshake the server waits on for ever. -1 if the connect failed. */
static int
stalled_hello(uint16_t port, int send_bytes)
{
	static const uint8_t part[] = {0x16, 0x03, 0x01, 0x00, 0xc8, 0x01,
	                               0x00, 0x00, 0xc4, 0x03, 0x03};
	struct sockaddr_in   a      = {0};
	int                  fd     = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	struct pollfd        p;

	a.sin_family      = AF_INET;
	a.sin_port        = htons(port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		p = (struct pollfd){fd, POLLOUT, 0};
		if (poll(&p, 1, 2000) != 1 || (p.revents & (POLLERR | POLLHUP))) {
			close(fd);
			return -1;
		}
	}
	if (send_bytes && send(fd, part, sizeof(part), MSG_NOSIGNAL) != (ssize_t)sizeof(part)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Flooding the monitor listener (stalled handshakes, silent connections,
 * and authenticated requests of unknown fields) leaves the operator's
 * control listener answering, within an agent allowed 400 descriptors:
 * each listener holds at most --max-connections, stalled handshakes are
 * dropped, and a request's unknown fields are refused before decoding. */
static void
a_flood_on_the_monitor_listener_leaves_operators_served(void **state)
{
	enum { STALLED = 450, SILENT = 50, ROUNDS = 4 };
	struct rlimit rl = {400, 400};
	fbt_agent     fl;
	static int    fds[STALLED + SILENT];
	uint16_t      port;
	uint8_t      *env;
	size_t        elen = 0;
	char          desc[512];
	long          rss_kb, rss_start;
	int           nfd, closed_by_agent = 0;

	(void)state;
	assert_int_equal(fbt_agent_start(&fl, "replica", "replica",
	                                 (const char *[]){"--max-connections=48", NULL}),
	                 0);
	assert_int_equal(prlimit(fl.pid, RLIMIT_NOFILE, &rl, NULL), 0);
	agent_usage(fl.pid, &rss_start, &nfd);
	port = (uint16_t)atoi(strrchr(fl.monitor, ':') + 1);

	/* An envelope naming a monitor method whose payload is 60 KiB of
	 * unknown varint fields (field 15, two bytes each). */
	assert_non_null(env = malloc(64 << 10));
	{
		const char *m    = "AgentService.GetAgentStatus";
		size_t      plen = 60u << 10;

		env[elen++] = 0x0a;
		env[elen++] = (uint8_t)strlen(m);
		memcpy(env + elen, m, strlen(m));
		elen += strlen(m);
		env[elen++] = 0x12;
		env[elen++] = (uint8_t)(0x80 | (plen & 0x7f));
		env[elen++] = (uint8_t)(0x80 | ((plen >> 7) & 0x7f));
		env[elen++] = (uint8_t)(plen >> 14);
		for (size_t i = 0; i < plen; i += 2) {
			env[elen++] = 0x78;
			env[elen++] = 0x01;
		}
	}
	for (int round = 0; round < ROUNDS; round++) {
		/* (re)open every flood connection the agent closed */
		for (int i = 0; i < STALLED + SILENT; i++) {
			if (round > 0 && fds[i] >= 0) {
				char c;
				if (recv(fds[i], &c, 1, MSG_DONTWAIT) == 0 ||
				    (errno != EAGAIN && errno != EWOULDBLOCK)) {
					close(fds[i]);
					fds[i] = -1;
					closed_by_agent++;
				}
			}
			if (round == 0 || fds[i] < 0)
				fds[i] = stalled_hello(port, i < STALLED);
		}
		assert_int_equal(raw_call_as(fl.monitor, "monitor", env, elen, desc, sizeof(desc)),
		                 FB_RV_INVALID_PARAMETER);
		assert_non_null(strstr(desc, "unknown ones"));
		/* the operator is served meanwhile, within failbackctl's timeout */
		if (fbt_ctl(out, sizeof(out), fl.control, "operator", "replica.failback.test",
		            "--timeout", "10000", "status", NULL) != 0)
			fail_msg("operator call in round %d: %s", round, out);
		agent_usage(fl.pid, &rss_kb, &nfd);
		print_message("round %d: agent RSS %ld kB (%ld at start), %d descriptors\n", round,
		              rss_kb, rss_start, nfd);
		assert_true(nfd < 400);
		assert_true(rss_kb < rss_start + RSS_GROWTH_KB);
		sleep(4); /* let the agent's handshake timeout pass over the flood */
	}
	/* the limits acted, and said so */
	assert_true(closed_by_agent > 0);
	assert_true(fbt_file_contains(fl.log, "FB1010"));
	assert_true(fbt_file_contains(fl.log, "FB1008") || fbt_file_contains(fl.log, "FB1009"));
	for (int i = 0; i < STALLED + SILENT; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	free(env);
	assert_int_equal(fbt_agent_stop(&fl, SIGTERM, 10000), 0);
}

static void
events_listener_admits_operators_and_monitors_only(void **state)
{
	const char *ids[]  = {"operator", "monitor", "primary", "rogue-operator"};
	uint32_t    want[] = {FB_RV_OK, FB_RV_OK, FB_RV_ACCESS_DENIED, FB_RV_ACCESS_DENIED};

	(void)state;
	for (int i = 0; i < 4; i++) {
		fb_events_sub *sub = NULL;
		fb_err         err = {0};

		assert_int_equal(fbt_subscribe(&sub, replica.events, ids[i], "replica.failback.test",
		                               &err),
		                 want[i]);
		/* left to the exit (clients.h) */
		fb_events_sub_abandon(sub);
	}
}

/* GET path over TLS with openssl s_client, as cert (NULL: none); out gets
 * what came back. Returns s_client's exit status. */
static int
https_get(const char *url, const char *cert, const char *path, char *got, size_t cap)
{
	char        script[3000], ids[1400] = "";
	const char *hostport = strstr(url, "://") + 3;

	if (cert != NULL)
		snprintf(ids, sizeof(ids), "-cert '%s/%s.pem' -key '%s/%s.key'", fbt_pki(), cert,
		         fbt_pki(), cert);
	snprintf(script, sizeof(script),
	         "printf 'GET %s HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n' | "
	         "timeout 20 openssl s_client -quiet -connect '%s' -servername replica.failback.test "
	         "-verify_hostname replica.failback.test -verify_return_error -CAfile '%s' %s "
	         "2>/dev/null",
	         path, hostport, fbt_pki_file("agents-ca.pem"), ids);
	return fbt_run((char *[]){"/bin/sh", "-c", script, NULL}, got, cap);
}

/* --listen-metrics https://: the agent's certificate, and a monitor's or an
 * operator's required of the scraper. */
static void
metrics_over_https_need_a_monitor_or_operator_certificate(void **state)
{
	static char got[1 << 18];
	fbt_agent   m;

	(void)state;
	assert_int_equal(fbt_agent_start(&m, "replica", "replica",
	                                 (const char *[]){"--listen-metrics=https://127.0.0.1:0",
	                                                  NULL}),
	                 0);
	assert_true(strncmp(m.metrics, "https://127.0.0.1:", 18) == 0);
	https_get(m.metrics, "monitor", "/metrics", got, sizeof(got));
	assert_non_null(strstr(got, "HTTP/1.1 200"));
	assert_non_null(strstr(got, "failback_healthy 1"));
	https_get(m.metrics, "operator", "/healthz", got, sizeof(got));
	assert_non_null(strstr(got, "HTTP/1.1 200"));
	/* No certificate, or one of the agents' CA: no answer. */
	https_get(m.metrics, NULL, "/metrics", got, sizeof(got));
	assert_null(strstr(got, "HTTP/1.1"));
	https_get(m.metrics, "rogue-operator", "/metrics", got, sizeof(got));
	assert_null(strstr(got, "HTTP/1.1"));
	/* Plain HTTP gets nothing either. */
	{
		char plain[160];

		snprintf(plain, sizeof(plain), "http://%s", strstr(m.metrics, "://") + 3);
		assert_int_equal(fbt_http_get(plain, "/metrics", got, sizeof(got)), -1);
	}
	assert_int_equal(fbt_agent_stop(&m, SIGTERM, 5000), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(operator_status_round_trip_through_failbackctl),
	    cmocka_unit_test(json_output_carries_return_value_and_result),
	    cmocka_unit_test(monitor_calling_control_method_gets_access_denied_reply),
	    cmocka_unit_test(monitor_on_operator_listener_is_refused_at_handshake),
	    cmocka_unit_test(rogue_ca_certificate_is_refused),
	    cmocka_unit_test(expired_certificate_is_refused),
	    cmocka_unit_test(client_without_certificate_is_refused),
	    cmocka_unit_test(wrong_server_name_is_refused_by_the_client),
	    cmocka_unit_test(agent_certificate_cannot_reach_control_listener),
	    cmocka_unit_test(operator_cannot_reach_resync_listener),
	    cmocka_unit_test(operator_calling_resync_source_gets_access_denied_reply),
	    cmocka_unit_test(replica_agent_reaches_resync_source),
	    cmocka_unit_test(malformed_requests_get_error_replies_and_agent_keeps_serving),
	    cmocka_unit_test(requests_over_a_listener_limit_are_dropped_undecoded),
	    cmocka_unit_test(unreachable_agent_is_system_not_available),
	    cmocka_unit_test(timeout_bounds_the_first_connection),
	    cmocka_unit_test(a_revoked_certificate_is_refused_by_an_agent_with_the_crl),
	    cmocka_unit_test(failbackctl_with_the_crl_refuses_a_revoked_agent_on_every_connection),
	    cmocka_unit_test(silent_connections_are_dropped_idle_clients_are_kept),
	    cmocka_unit_test(events_listener_admits_operators_and_monitors_only),
	    cmocka_unit_test(a_flood_on_the_monitor_listener_leaves_operators_served),
	    cmocka_unit_test(metrics_over_https_need_a_monitor_or_operator_certificate),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
