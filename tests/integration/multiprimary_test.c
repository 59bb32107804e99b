/*
 * multiprimary_test.c - one replica agent, three primary agents (issue:
 * a relationship per VM). Each VM records the primary it was replicated
 * from (replicate --from URL [--from-name] [--thumbprint]), and every
 * later job of that VM pulls from that primary, pinned as it was named,
 * whatever the agent's own --peer-url says.
 *
 *   primary A (the replica's --peer-url), B and C (C's certificate has the
 *   same name as the others and another key) each run one VM with its own
 *   content; the three are replicated at once, failed over, committed and
 *   written to; the primaries write and take new points; three
 *   failbacks run at once and each recovery disk ends equal to its own
 *   primary's disk.
 *   C comes back with another certificate on the same address: the pin
 *   recorded for its VM refuses it, and the VM's disk here is untouched.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"
#include "image.h"

#define NP 3

static fbt_agent   prim[NP], replica;
static const char *vmname[NP] = {"alpha", "bravo", "charlie"};
static char        out[1 << 16], img[NP][600], disk[NP][700], pin_c[80];

#define R(...) FBT_R(out, replica, __VA_ARGS__)
#define P(i, ...) FBT_P(out, prim[i], __VA_ARGS__)

static void
thumbprint_of(const char *pem, char *dst)
{
	char *const argv[] = {(char *)"/usr/bin/openssl", (char *)"x509", (char *)"-in", (char *)pem,
	                      (char *)"-noout", (char *)"-fingerprint", (char *)"-sha256", NULL};
	char        buf[512], *eq;
	size_t      k = 0;

	assert_int_equal(fbt_run(argv, buf, sizeof(buf)), 0);
	eq = strchr(buf, '=');
	assert_non_null(eq);
	for (char *c = eq + 1; *c && *c != '\n'; c++)
		if (*c != ':')
			dst[k++] = *c;
	dst[k] = '\0';
}

static void
job_of(char *dst, size_t len)
{
	const char *p = strstr(out, "InstanceID=\"");

	assert_non_null(p);
	snprintf(dst, len, "%.36s", p + 12);
}

static int
group_setup(void **state)
{
	(void)state;
	if (fbt_setup() != 0 || fbt_agent_start(&prim[0], "primary", "primary", NULL) != 0 ||
	    fbt_agent_start(&prim[1], "primary", "primary", NULL) != 0 ||
	    fbt_agent_start(&prim[2], "primary", "impostor-primary", NULL) != 0)
		return -1;
	return fbt_replica_start(&replica, &prim[0], NULL);
}

static int
group_teardown(void **state)
{
	(void)state;
	fbt_teardown();
	return 0;
}

static void
one_replica_serves_the_vms_of_three_primaries_at_once(void **state)
{
	char job[NP][40], from[NP][200], want[65], got[65];

	(void)state;
	thumbprint_of(fbt_pki_file("impostor-primary.pem"), pin_c);
	for (int i = 0; i < NP; i++) {
		snprintf(img[i], sizeof(img[i]), "%s/%s.img", fbt_root(), vmname[i]);
		assert_int_equal(fbt_image_make(img[i], 16u << 20, (uint32_t)i + 300), 0);
		assert_int_equal(P(i, "primary-vm", "add", vmname[i], img[i]), 0);
		assert_int_equal(P(i, "primary-rp", "create", vmname[i]), 0);
		snprintf(from[i], sizeof(from[i]), "--from=%s", prim[i].resync);
	}
	/* A VM new here and no --from: the agent's --peer-url (primary A). */
	assert_int_equal(R("replicate", vmname[0]), 0);
	job_of(job[0], sizeof(job[0]));
	/* B by URL alone: an address, so the name is the agent's --peer-name. */
	assert_int_equal(R("replicate", vmname[1], from[1]), 0);
	job_of(job[1], sizeof(job[1]));
	assert_int_equal(R("replicate", vmname[2], from[2], "--from-name", "primary.failback.test",
	                   "--thumbprint", pin_c),
	                 0);
	job_of(job[2], sizeof(job[2]));
	for (int i = 0; i < NP; i++)
		if (R("job", "wait", job[i]) != 0)
			fail_msg("%s: %s", vmname[i], out);

	/* Each VM names its own primary; only C's is pinned. */
	for (int i = 0; i < NP; i++) {
		char line[300];

		assert_int_equal(R("vm", "show", vmname[i]), 0);
		snprintf(line, sizeof(line), "peer_url: %s\n", prim[i].resync);
		assert_non_null(strstr(out, line));
		assert_non_null(strstr(out, "peer_name: primary.failback.test"));
		if (i == 2) {
			snprintf(line, sizeof(line), "peer_pin: %s", pin_c);
			for (char *c = line; *c; c++)
				*c = (char)(*c >= 'A' && *c <= 'F' ? *c + 32 : *c);
			assert_non_null(strstr(out, line));
		} else {
			assert_non_null(strstr(out, "peer_pin: \n"));
		}
	}

	for (int i = 0; i < NP; i++) {
		assert_int_equal(R("failover", vmname[i], "--wait"), 0);
		assert_int_equal(R("failover-commit", vmname[i], "--wait"), 0);
		assert_int_equal(R("vm", "show", vmname[i]), 0);
		sscanf(strstr(out, "path: ") + 6, "%699s", disk[i]);
		assert_int_equal(fbt_image_mutate(disk[i], 12, (uint32_t)i + 7), 12);
		/* the primaries' VMs go on too: a point only each primary has */
		assert_int_equal(fbt_image_mutate(img[i], 9, (uint32_t)i + 70), 9);
		assert_int_equal(P(i, "primary-rp", "create", vmname[i]), 0);
	}
	/* Three failbacks at once, each from its own primary. No --settings,
	 * and the agent's --peer-url is A: the relationship decides. */
	for (int i = 0; i < NP; i++) {
		assert_int_equal(R("failback", vmname[i]), 0);
		job_of(job[i], sizeof(job[i]));
	}
	for (int i = 0; i < NP; i++) {
		assert_int_equal(R("job", "wait", job[i]), 0);
		assert_int_equal(fbt_file_sha256(img[i], want), 0);
		assert_int_equal(fbt_file_sha256(disk[i], got), 0);
		assert_string_equal(got, want);
	}
}

static void
a_pinned_primary_with_another_certificate_is_refused(void **state)
{
	char        dd[600], rs[200], before[65], after[65];
	const char *was = prim[2].dir;

	(void)state;
	assert_int_equal(fbt_file_sha256(disk[2], before), 0);
	/* C comes back at the same address with the other certificate of the name. */
	snprintf(dd, sizeof(dd), "--data-dir=%s", was);
	snprintf(rs, sizeof(rs), "--listen-resync=%s", prim[2].resync);
	assert_int_equal(fbt_agent_stop(&prim[2], SIGTERM, 10000), 0);
	assert_int_equal(fbt_agent_start(&prim[2], "primary", "primary", (const char *[]){dd, rs, NULL}),
	                 0);
	assert_int_not_equal(R("failback", vmname[2], "--wait"), 0);
	if (strstr(out, "not the pinned CertificateThumbPrint") == NULL)
		fail_msg("%s", out);
	assert_int_not_equal(R("estimate", vmname[2]), 0);
	if (strstr(out, "not the pinned CertificateThumbPrint") == NULL)
		fail_msg("%s", out);
	assert_int_equal(fbt_file_sha256(disk[2], after), 0);
	assert_string_equal(after, before);
}

static void
bad_relationships_are_refused_before_any_job(void **state)
{
	(void)state;
	assert_int_not_equal(R("replicate", "delta", "--from", "tcp://127.0.0.1:1"), 0);
	assert_non_null(strstr(out, "tls+tcp://HOST:PORT"));
	assert_int_not_equal(R("replicate", "delta", "--from", "tls+tcp://127.0.0.1"), 0);
	assert_non_null(strstr(out, "tls+tcp://HOST:PORT"));
	assert_int_not_equal(
	    R("replicate", "delta", "--from", prim[1].resync, "--thumbprint", "abc"), 0);
	assert_non_null(strstr(out, "not a SHA-1 (40) or SHA-256 (64) hex digest"));
	assert_int_not_equal(R("replicate", "delta", "--from-name", "x.failback.test"), 0);
	if (strstr(out, "--from") == NULL)
		fail_msg("%s", out);
	/* nothing was started for it */
	assert_int_equal(R("job", "list"), 0);
	assert_null(strstr(out, "delta"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(one_replica_serves_the_vms_of_three_primaries_at_once),
	    cmocka_unit_test(a_pinned_primary_with_another_certificate_is_refused),
	    cmocka_unit_test(bad_relationships_are_refused_before_any_job),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
