/*
 * rpc_bench.c - prints the cost of talking to an agent: mutual-TLS
 * connection set-up (new socket + dial + handshake) and the round-trip time
 * of a small RPC (AgentService.GetAgentStatus), p50/p99/max, against a real
 * failback-replica on loopback with a fresh development PKI.
 *
 * usage: rpc_bench [connections] [calls]     (defaults 100, 5000)
 * Not a test: it asserts nothing and only prints numbers.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.pb-c.h"
#include "failback/clock.h"
#include "failback/rpc.h"
#include "failback/tls.h"
#include "harness.h"

static double
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void
report(const char *what, double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	printf("%-34s n=%-6d p50=%8.3f ms  p99=%8.3f ms  max=%8.3f ms\n", what, n,
	       v[n / 2] / 1000, v[(n * 99) / 100] / 1000, v[n - 1] / 1000);
}

int
main(int argc, char **argv)
{
	int                             nconn  = argc > 1 ? atoi(argv[1]) : 100;
	int                             ncalls = argc > 2 ? atoi(argv[2]) : 5000;
	Failback__GetAgentStatusRequest in     = FAILBACK__GET_AGENT_STATUS_REQUEST__INIT;
	fbt_agent                       a;
	nng_tls_config                 *tls;
	fb_rpc_client                  *cli;
	fb_err                          err = {0};
	double                         *t;
	double                          t0;

	if (nconn < 1 || ncalls < 1 || fbt_setup() != 0 ||
	    fbt_agent_start(&a, "replica", "replica", NULL) != 0) {
		fprintf(stderr, "rpc_bench: cannot start a replica agent\n");
		return 1;
	}
	if (fb_tls_config_client(&tls, fbt_pki_file("agents-ca.pem"), fbt_pki_file("operator.pem"),
	                         fbt_pki_file("operator.key"), "replica.failback.test", 0,
	                         &err) != 0) {
		fprintf(stderr, "rpc_bench: %s\n", err.msg);
		return 1;
	}
	t = calloc((size_t)(nconn > ncalls ? nconn : ncalls), sizeof(*t));
	printf("failback rpc_bench: replica agent on %s, EC P-256 certificates, TLS 1.2\n",
	       a.control);
	for (int i = 0; i < nconn; i++) {
		t0 = now_us();
		if (fb_rpc_client_open(&cli, a.control, tls, &err) != 0) {
			fprintf(stderr, "rpc_bench: %s\n", err.msg);
			return 1;
		}
		t[i] = now_us() - t0;
		fb_rpc_client_close(cli); /* no call made: nothing in flight */
	}
	report("connect + mutual TLS handshake", t, nconn);

	if (fb_rpc_client_open(&cli, a.control, tls, &err) != 0)
		return 1;
	for (int i = 0; i < ncalls; i++) {
		ProtobufCMessage *o = NULL;

		t0 = now_us();
		if (fb_rpc_client_call(cli, &failback__agent_service__descriptor, "GetAgentStatus",
		                       &in.base, &o, 10000, &err) != 0) {
			fprintf(stderr, "rpc_bench: %s\n", err.msg);
			return 1;
		}
		t[i] = now_us() - t0;
		protobuf_c_message_free_unpacked(o, NULL);
	}
	report("GetAgentStatus round trip", t, ncalls);
	fb_rpc_client_close(cli);
	fbt_agent_stop(&a, SIGTERM, 5000);
	fbt_teardown();
	free(t);
	return 0;
}
