/*
 * roundtrip_test.c - Go home (DESIGN §2a) with four real agents on
 * loopback: site A's primary and replica agents, site B's primary and
 * replica agents, one PKI.
 *
 *   A runs web (128 MiB of mixed content), points P1 and P2 replicate to B;
 *   A writes 1% more that never replicates (the lost tail) and goes down;
 *   B fails over to P2, commits, and its recovery VM writes 5% of the disk;
 *   A is back; reverse on B: B's primary serves B's disk in place, A's
 *   primary hands web over, A's replica takes A's disk in place;
 *   InitiateFailback on A (phase 1) makes A's disk equal B's, moving about
 *   (B's writes + A's tail) and no more; B writes a little more, takes a
 *   final point, and a second InitiateFailback (phase 2) moves only that;
 *   re-protect (reverse on A) and a replication A → B that pulls nothing.
 *
 * Around it: a cancel of the home failback restores A's disk with its
 * tail, the generation guard refuses stale sources (32775, both
 * generations named) unless forced, and a reverse while the other site is
 * away does this site's side and completes the other's when called again.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "failback/clock.h"
#include "failback/pb.h"
#include "failback/proof.h"
#include "failback/rpc.h"
#include "failback/tls.h"
#include "harness.h"
#include "image.h"
#include "relationship.pb-c.h"
#include "resync.pb-c.h"

#define PNAME "primary.failback.test"
#define RNAME "replica.failback.test"
#define DISK  (128ull << 20)
#define BLOCK 65536ull

static fbt_agent ap, ar, bp, br; /* site A / B, primary / replica */
static char      out[1 << 16], dA[600], dB[700], vm_id[40];

#define PA(...) FBT_P(out, ap, __VA_ARGS__)
#define PB(...) FBT_P(out, bp, __VA_ARGS__)
#define RA(...) FBT_R(out, ar, __VA_ARGS__)
#define RB(...) FBT_R(out, br, __VA_ARGS__)

static void
sha(const char *path, char *hex)
{
	assert_int_equal(fbt_file_sha256(path, hex), 0);
}

/* The value after key in out (up to 36 characters). */
static void
grab(const char *key, char *dst, size_t len)
{
	const char *p = strstr(out, key);

	assert_non_null(p);
	snprintf(dst, len, "%.36s", p + strlen(key));
}

/* Reads "N block(s) applied, W bytes on the wire" of a failback job from
 * a replica's log (FB6013). */
static void
failback_cost(const fbt_agent *a, const char *job, unsigned long long *applied,
              unsigned long long *wire)
{
	char  line[2048];
	FILE *f = fopen(a->log, "r");

	*applied = *wire = 0;
	assert_non_null(f);
	while (fgets(line, sizeof(line), f) != NULL)
		if (strstr(line, job) != NULL && strstr(line, "FB6013") != NULL)
			assert_int_equal(sscanf(strstr(line, ": ") + 2,
			                        "%llu block(s) applied, %llu", applied, wire),
			                 2);
	fclose(f);
}

/* A's replica agent; again: on its data directory and agents' listener. It
 * tracks changes (when qemu-utils is there): the disk it takes in place has
 * no bitmap, and its first failback starts one. */
#define TRACK (tracking ? "--change-tracking=qcow2" : "--change-tracking=off"), "--verify-mode=fast"
/* Both primary agents track the raw disks they serve (each point starts a
 * bitmap), so a site's own writes since its last point are known. */
#define PTRACK (tracking ? "--change-tracking=qcow2" : "--change-tracking=off")
static int tracking;
static int
start_replica_a(int again)
{
	char lp[200], dd[600], rs[200];

	snprintf(lp, sizeof(lp), "--local-primary-url=%s", ap.resync);
	snprintf(dd, sizeof(dd), "--data-dir=%s", ar.dir);
	snprintf(rs, sizeof(rs), "--listen-resync=%s", ar.resync);
	return fbt_replica_start(&ar, &ap,
	                         again ? (const char *[]){lp, "--max-transfer-rate=4", TRACK, dd, rs,
	                                                  NULL}
	                               : (const char *[]){lp, "--max-transfer-rate=4", TRACK, NULL});
}

static int
group_setup(void **state)
{
	char lp[200];

	(void)state;
	tracking = access("/usr/bin/qemu-img", X_OK) == 0 && access("/usr/bin/qemu-nbd", X_OK) == 0;
	if (fbt_setup() != 0 ||
	    fbt_agent_start(&ap, "primary", "primary", (const char *[]){PTRACK, NULL}) != 0 ||
	    fbt_agent_start(&bp, "primary", "primary", (const char *[]){PTRACK, NULL}) != 0)
		return -1;
	snprintf(lp, sizeof(lp), "--local-primary-url=%s", bp.resync);
	if (fbt_replica_start(&br, &ap, (const char *[]){lp, NULL}) != 0 || start_replica_a(0) != 0)
		return -1;
	snprintf(dA, sizeof(dA), "%s/web.img", fbt_root());
	if (fbt_image_make(dA, DISK, 8) != 0)
		return -1;
	return 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	fbt_teardown();
	return 0;
}

/* A → B replication, A's unreplicated tail, A lost, B fails over and runs. */
static void
site_a_replicates_to_b_then_b_fails_over_and_writes(void **state)
{
	(void)state;
	assert_int_equal(PA("--json", "primary-vm", "add", "web", dA, "--history", "4"), 0);
	grab("\"id\":\"", vm_id, sizeof(vm_id));
	assert_int_equal(PA("primary-rp", "create", "web"), 0);
	assert_int_equal(RB("replicate", "web", "--wait"), 0);
	assert_int_equal(fbt_image_mutate(dA, 40, 11), 40);
	assert_int_equal(PA("primary-rp", "create", "web"), 0);
	assert_int_equal(RB("replicate", "web", "--wait"), 0);
	/* The lost tail: 1% written at A after its last replicated point. */
	assert_int_equal(fbt_image_mutate(dA, 20, 12), 20);
	/* A burns. */
	assert_int_equal(fbt_agent_stop(&ap, SIGKILL, 5000), 128 + SIGKILL);
	assert_int_equal(RB("failover", "web", "--wait"), 0);
	assert_int_equal(RB("failover-commit", "web", "--wait"), 0);
	assert_int_equal(RB("vm", "show", "web"), 0);
	assert_non_null(strstr(out, vm_id)); /* one GUID on both sites */
	{
		const char *p = strstr(out, "path: ");

		assert_non_null(p);
		sscanf(p + 6, "%699s", dB);
	}
	/* The recovery VM runs at B for a while: 5% of the disk. */
	assert_int_equal(fbt_image_mutate(dB, 102, 13), 102);
}

/* A is back; reverse on B. */
static void
reverse_on_b_makes_b_primary_and_a_the_receiving_side(void **state)
{
	char dd[600], rs[200];

	(void)state;
	/* A's primary agent comes back where B knows it. */
	snprintf(dd, sizeof(dd), "--data-dir=%s", ap.dir);
	snprintf(rs, sizeof(rs), "--listen-resync=%s", ap.resync);
	assert_int_equal(
	    fbt_agent_start(&ap, "primary", "primary", (const char *[]){dd, rs, PTRACK, NULL}), 0);
	/* Reverse needs the other site's replica agent. */
	assert_int_equal(RB("reverse", "web"), 2);
	assert_int_equal(RB("reverse", "web", "--to", ar.resync, "--to-name", RNAME, "--wait"), 0);
	assert_non_null(strstr(out, "Completed (7)"));
	/* B: the replica agent records the VM as served by its primary agent... */
	assert_int_equal(RB("vm", "show", "web"), 0);
	assert_non_null(strstr(out, "replication_state: Ready (1)"));
	assert_non_null(strstr(out, "generation: 1"));
	assert_null(strstr(out, "pending_peer: tls"));
	/* ...which serves the recovery disk in place, with the shared history. */
	assert_int_equal(PB("--json", "primary-vm", "list"), 0);
	assert_non_null(strstr(out, dB));
	assert_non_null(strstr(out, "\"generation\":1"));
	assert_non_null(strstr(out, ar.resync)); /* the relationship records A as receiving */
	assert_int_equal(PB("--json", "primary-rp", "list", "web"), 0);
	assert_non_null(strstr(out, "\"history\":true"));
	/* A's primary agent handed it over: no more points of A's stale disk. */
	assert_int_equal(PA("primary-rp", "create", "web"), 1);
	assert_non_null(strstr(out, "Invalid state for this operation (32775)"));
	assert_non_null(strstr(out, "handed over at generation 1"));
	/* A's replica agent holds A's own disk, in place, as the receiving side. */
	assert_int_equal(RA("vm", "show", "web"), 0);
	assert_non_null(strstr(out, "WaitingToStartResynchronization (9)"));
	assert_non_null(strstr(out, dA));
	assert_non_null(strstr(out, bp.resync));
	/* The same call again changes nothing: the reverse is done. */
	assert_int_equal(RB("reverse", "web", "--to", ar.resync, "--wait"), 1);
	assert_non_null(strstr(out, "Invalid state for this operation (32775)"));
}

static void
cancel_of_the_home_failback_restores_a_with_its_tail(void **state)
{
	char before[65], after[65], job[40];

	(void)state;
	sha(dA, before);
	assert_int_equal(RA("failback", "web"), 0);
	grab("InstanceID=\"", job, sizeof(job));
	for (int i = 0; i < 600; i++) {
		assert_int_equal(RA("--json", "job", "show", job), 0);
		if (strstr(out, "\"phase\":\"Transferring\"") != NULL &&
		    strstr(out, "\"blocks_done\":0,") == NULL)
			break;
		usleep(50000);
	}
	assert_non_null(strstr(out, "\"phase\":\"Transferring\""));
	assert_int_equal(RA("job", "cancel", job), 0);
	assert_int_equal(RA("job", "wait", job), 1);
	assert_non_null(strstr(out, "Terminated (8)"));
	sha(dA, after);
	assert_string_equal(after, before);
	assert_int_equal(RA("vm", "show", "web"), 0);
	assert_non_null(strstr(out, "WaitingToStartResynchronization (9)"));
}

static void
home_failback_brings_b_data_to_a_moving_only_what_differs(void **state)
{
	unsigned long long applied, wire;
	char               job[40], a[65], b[65];

	(void)state;
	assert_int_equal(RA("failback", "web", "--wait"), 0);
	assert_non_null(strstr(out, "Completed (7)"));
	grab("InstanceID=\"", job, sizeof(job));
	sha(dA, a);
	sha(dB, b);
	assert_string_equal(a, b); /* A has what B wrote, and lost its tail */
	assert_int_equal(RA("vm", "show", "web"), 0);
	assert_non_null(strstr(out, "FailbackComplete (14)"));
	failback_cost(&ar, job, &applied, &wire);
	/* B's 102 blocks and A's 20, less any overlap */
	assert_true(applied >= 102 && applied <= 122);
	assert_true((double)wire <= (102.0 + 20.0) * BLOCK * 1.02 + DISK * 0.001);
	print_message("phase 1: %llu blocks applied, %llu bytes on the wire (disk %llu)\n", applied,
	              wire, DISK);
}

static void
second_phase_moves_only_the_last_writes(void **state)
{
	unsigned long long applied, wire;
	char               job[40], a[65], b[65];

	(void)state;
	/* B's VM writes a little more, then stops; a final point. */
	assert_int_equal(fbt_image_mutate(dB, 8, 14), 8);
	assert_int_equal(PB("primary-rp", "create", "web", "--type", "planned"), 0);
	assert_int_equal(RA("failback", "web", "--wait"), 0);
	grab("InstanceID=\"", job, sizeof(job));
	sha(dA, a);
	sha(dB, b);
	assert_string_equal(a, b);
	failback_cost(&ar, job, &applied, &wire);
	assert_true(applied >= 1 && applied <= 8);
	assert_true((double)wire <= 8.0 * BLOCK * 1.02 + DISK * 0.001);
	print_message("phase 2: %llu blocks applied, %llu bytes on the wire\n", applied, wire);
	/* Phase 1 left A's disk tracked from its target: phase 2 (the downtime)
	 * reads nothing of A's disk. The two points' manifests name the blocks
	 * to move, A's bitmap is clean, and the fast verification takes the
	 * written blocks' hashes from the data it verified. */
	if (tracking) {
		const char *r;

		assert_int_equal(RA("--json", "job", "show", job), 0);
		assert_non_null(strstr(out, "\"compare_mode\":\"bitmap\""));
		assert_non_null(r = strstr(out, "\"bytes_read\":"));
		r += strlen("\"bytes_read\":");
		if (*r == '"')
			r++;
		if (strtoull(r, NULL, 10) != 0)
			fail_msg("phase 2 read %llu bytes of A's disk: %s", strtoull(r, NULL, 10), out);
	}
}

static void
failback_from_the_site_reversed_away_is_refused(void **state)
{
	char path[700], job[40];
	FILE *f;

	(void)state;
	snprintf(path, sizeof(path), "%s/stale.xml", fbt_root());
	f = fopen(path, "w");
	fprintf(f, "<INSTANCE CLASSNAME=\"Msvm_ReplicationSettingData\"><PROPERTY "
	           "NAME=\"PrimaryConnectionPoint\" TYPE=\"string\"><VALUE>127.0.0.1</VALUE>"
	           "</PROPERTY><PROPERTY NAME=\"RecoveryServerPortNumber\" TYPE=\"uint16\"><VALUE>%s"
	           "</VALUE></PROPERTY></INSTANCE>",
	        strrchr(ap.resync, ':') + 1);
	fclose(f);
	assert_int_equal(RA("failback", "web", "--settings", path), 0);
	grab("InstanceID=\"", job, sizeof(job));
	assert_int_equal(RA("job", "wait", job), 1);
	assert_non_null(strstr(out, "Invalid state for this operation (32775)"));
	assert_non_null(strstr(out, "handed over"));
	assert_non_null(strstr(out, "generation 1 here, 1 on the replica"));
	/* refused before anything was written: the VM is as it was */
	assert_int_equal(RA("vm", "show", "web"), 0);
	assert_non_null(strstr(out, "FailbackComplete (14)"));
}

static void
reprotect_makes_a_primary_again_and_replication_moves_nothing(void **state)
{
	char  line[2048], job[40], path[700];
	FILE *f;
	int   found = 0;

	(void)state;
	/* The settings' RecoveryConnectionPoint names the receiving side. */
	snprintf(path, sizeof(path), "%s/reprotect.xml", fbt_root());
	f = fopen(path, "w");
	fprintf(f, "<INSTANCE CLASSNAME=\"Msvm_ReplicationSettingData\"><PROPERTY "
	           "NAME=\"RecoveryConnectionPoint\" TYPE=\"string\"><VALUE>127.0.0.1</VALUE>"
	           "</PROPERTY><PROPERTY NAME=\"RecoveryServerPortNumber\" TYPE=\"uint16\"><VALUE>%s"
	           "</VALUE></PROPERTY></INSTANCE>",
	        strrchr(br.resync, ':') + 1);
	fclose(f);
	assert_int_equal(RA("reverse", "web", "--settings", path, "--wait"), 0);
	assert_int_equal(PA("--json", "primary-vm", "list"), 0);
	assert_non_null(strstr(out, br.resync)); /* A's primary records B as the receiving side */
	assert_non_null(strstr(out, "\"generation\":2"));
	assert_int_equal(PB("primary-rp", "create", "web"), 1); /* B handed it back */
	assert_int_equal(RB("vm", "show", "web"), 0);
	assert_non_null(strstr(out, "WaitingToStartResynchronization (9)"));
	assert_int_equal(RB("replicate", "web", "--wait"), 0);
	grab("InstanceID=\"", job, sizeof(job));
	assert_int_equal(RB("vm", "show", "web"), 0);
	assert_non_null(strstr(out, "Replicating (3)"));
	/* Every block the new point needs was on B's disk already: none pulled. */
	f = fopen(br.log, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f) != NULL) {
		unsigned long long pulled, wire;

		if (strstr(line, job) == NULL || strstr(line, "FB6021") == NULL)
			continue;
		assert_non_null(strstr(line, "0 pulled"));
		assert_int_equal(sscanf(strstr(line, "pulled, ") + 8, "%llu", &wire), 1);
		(void)pulled;
		assert_true((double)wire <= DISK * 0.002); /* the tree walk */
		print_message("re-protect replication: %llu bytes on the wire\n", wire);
		found = 1;
	}
	fclose(f);
	assert_true(found);
}

/* A call of one agent-to-agent method with agent certificate id, to an
 * agent named sname. */
static uint32_t
agent_call_as(const char *id, const char *sname, const fbt_agent *a,
              const ProtobufCServiceDescriptor *svc, const char *method, const ProtobufCMessage *in,
              fb_err *err)
{
	nng_tls_config   *tls;
	fb_rpc_client    *cli;
	ProtobufCMessage *rsp = NULL;
	uint32_t          rv;
	char              cert[64], key[64];

	snprintf(cert, sizeof(cert), "%s.pem", id);
	snprintf(key, sizeof(key), "%s.key", id);
	assert_int_equal(fb_tls_config_client(&tls, fbt_pki_file("agents-ca.pem"),
	                                      fbt_pki_file(cert), fbt_pki_file(key), sname, 0, err),
	                 0);
	assert_int_equal(fb_rpc_client_open(&cli, a->resync, tls, err), 0);
	rv = fb_rpc_client_call(cli, svc, method, in, &rsp, 20000, err);
	if (rsp != NULL)
		protobuf_c_message_free_unpacked(rsp, NULL);
	fb_rpc_client_abandon(cli);
	nng_tls_config_free(tls);
	return rv;
}

/* As the replica agent (replica.pem), to a primary agent. */
static uint32_t
agent_call(const fbt_agent *a, const ProtobufCServiceDescriptor *svc, const char *method,
           const ProtobufCMessage *in, fb_err *err)
{
	return agent_call_as("replica", PNAME, a, svc, method, in, err);
}

/* A relationship step's proof (or receipt) by agent certificate id over
 * the statement of parts, towards receiver (proof.h). */
static Failback__AgentProof *
sign_step(const char *id, const char *const *parts, size_t n, const char *receiver, fb_proof *p,
          Failback__AgentProof *m)
{
	char   st[FB_PROOF_STATEMENT_MAX], cert[64], key[64];
	fb_err err = {0};

	snprintf(cert, sizeof(cert), "%s.pem", id);
	snprintf(key, sizeof(key), "%s.key", id);
	assert_int_equal(fb_proof_statement(st, sizeof(st), parts, n, &err), FB_RV_OK);
	assert_int_equal(
	    fb_pb_proof_sign(fbt_pki_file(cert), fbt_pki_file(key), st, receiver, p, m, &err),
	    FB_RV_OK);
	return m;
}

/* A proof of identity as the replica agent (replica.pem), for this
 * primary's name, now (proof.h). */
static void
prove(Failback__NegotiateRequest *ng, const char *vm)
{
	static fb_proof p;
	fb_err          err = {0};

	assert_int_equal(fb_proof_sign(fbt_pki_file("replica.pem"), fbt_pki_file("replica.key"), vm,
	                               PNAME, (uint64_t)fb_clock_unix_ms(), &p, &err),
	                 FB_RV_OK);
	ng->proof_certificate  = (ProtobufCBinaryData){p.cert_len, p.cert};
	ng->proof_primary_name = (char *)PNAME;
	ng->proof_time_unix_ms = p.time_ms;
	ng->proof_nonce        = (ProtobufCBinaryData){sizeof(p.nonce), p.nonce};
	ng->proof_signature    = (ProtobufCBinaryData){p.sig_len, p.sig};
}

static void
generation_guard_refuses_older_steps_unless_forced(void **state)
{
	Failback__HandOverRequest  ho = FAILBACK__HAND_OVER_REQUEST__INIT;
	Failback__NegotiateRequest ng = FAILBACK__NEGOTIATE_REQUEST__INIT;
	fb_err                     err;

	(void)state;
	/* A late hand-over from the first reverse (generation 1) after the
	 * second (generation 2): refused, both generations named. */
	ho.vm           = vm_id;
	ho.generation   = 1;
	ho.primary_url  = bp.resync;
	ho.primary_name = PNAME;
	assert_int_equal(agent_call(&ap, &failback__relationship_service__descriptor, "HandOver",
	                            &ho.base, &err),
	                 FB_RV_ACCESS_DENIED); /* the VM names its receiving side: a proof first */
	{
		static fb_proof             p;
		static Failback__AgentProof m;
		const char *parts[] = {"handover", vm_id, "1", "", bp.resync, PNAME};

		ho.proof = sign_step("replica", parts, 6, PNAME, &p, &m);
	}
	assert_int_equal(agent_call(&ap, &failback__relationship_service__descriptor, "HandOver",
	                            &ho.base, &err),
	                 FB_RV_INVALID_STATE);
	assert_non_null(strstr(err.msg, "generation 1 refused"));
	assert_non_null(strstr(err.msg, "generation 2"));
	/* A replica whose copy is of a newer generation is not overwritten. The
	 * relationship names the receiving side, so Negotiate needs its proof. */
	ng.vm                        = vm_id;
	ng.recovery_point_identifier = "";
	ng.generation                = 5;
	assert_int_equal(agent_call(&ap, &failback__resync_source__descriptor, "Negotiate",
	                            &ng.base, &err),
	                 FB_RV_ACCESS_DENIED);
	assert_non_null(strstr(err.msg, "no proof of identity"));
	prove(&ng, vm_id);
	assert_int_equal(agent_call(&ap, &failback__resync_source__descriptor, "Negotiate",
	                            &ng.base, &err),
	                 FB_RV_INVALID_STATE);
	assert_non_null(strstr(err.msg, "generation 2 here, 5 on the replica"));
	ng.force = 1;
	prove(&ng, vm_id);
	assert_int_equal(agent_call(&ap, &failback__resync_source__descriptor, "Negotiate",
	                            &ng.base, &err),
	                 FB_RV_OK);
	assert_true(fbt_file_contains(ap.log, "FB4024"));
	/* Still the primary: nothing changed. */
	assert_int_equal(PA("primary-rp", "create", "web"), 0);
}

/* The relationship steps act only for the agents they concern: another
 * agents-CA certificate cannot make a primary serve a file of its host
 * (AdoptPrimary), take a VM away from its primary (HandOver), or make a
 * replica agent take a file as a VM's disk (AdoptRecovery). Nothing changes. */
static void
relationship_steps_are_refused_to_other_agents(void **state)
{
	static fb_proof             p;
	static Failback__AgentProof m;
	Failback__Relationship      rel = FAILBACK__RELATIONSHIP__INIT;
	Failback__HandOverRequest   ho  = FAILBACK__HAND_OVER_REQUEST__INIT;
	Failback__Disk              d = FAILBACK__DISK__INIT, *pd = &d;
	const char                 *gid = "6f1c2a9e-0d4b-4c1e-9a7e-3b5d2c1f0e9a";
	char                        victim[600], digest[65];
	fb_err                      err;

	(void)state;
	snprintf(victim, sizeof(victim), "%s/victim.img", fbt_root());
	assert_int_equal(fbt_image_make(victim, 1u << 20, 3), 0);
	d.name            = "disk0";
	d.path            = victim;
	d.size_bytes      = 1u << 20;
	rel.vm_id         = (char *)gid;
	rel.vm_name       = "stolen";
	rel.generation    = 1;
	rel.disks         = &pd;
	rel.n_disks       = 1;
	rel.recovery_url  = "tls+tcp://127.0.0.1:9";
	rel.recovery_name = "wrong.failback.test";
	fb_pb_disks_digest(rel.disks, 1, digest);
	{
		const char *parts[] = {"adopt-primary",   gid,   "1", "", rel.recovery_url,
		                       rel.recovery_name, digest};

		/* no proof, then a proof by another agent: refused */
		assert_int_equal(agent_call_as("wrongname-replica", PNAME, &bp,
		                               &failback__relationship_service__descriptor,
		                               "AdoptPrimary", &rel.base, &err),
		                 FB_RV_ACCESS_DENIED);
		rel.proof = sign_step("wrongname-replica", parts, 7, PNAME, &p, &m);
		assert_int_equal(agent_call_as("wrongname-replica", PNAME, &bp,
		                               &failback__relationship_service__descriptor,
		                               "AdoptPrimary", &rel.base, &err),
		                 FB_RV_ACCESS_DENIED);
		assert_non_null(strstr(err.msg, "not issued to replica.failback.test"));
		/* this host's replica agent's proof, but for another receiving side */
		rel.proof         = sign_step("replica", parts, 7, PNAME, &p, &m);
		rel.recovery_name = "replica.failback.test";
		assert_int_equal(agent_call(&bp, &failback__relationship_service__descriptor,
		                            "AdoptPrimary", &rel.base, &err),
		                 FB_RV_ACCESS_DENIED);
		assert_non_null(strstr(err.msg, "signature does not verify"));
	}
	assert_int_equal(PB("primary-vm", "list"), 0);
	assert_null(strstr(out, "stolen"));

	/* HandOver of web (its receiving side is B's replica agent) by another */
	ho.vm           = vm_id;
	ho.generation   = 9;
	ho.primary_url  = "tls+tcp://127.0.0.1:9";
	ho.primary_name = "wrong.failback.test";
	{
		const char *parts[] = {"handover", vm_id, "9", "", ho.primary_url, ho.primary_name};

		ho.proof = sign_step("wrongname-replica", parts, 6, PNAME, &p, &m);
	}
	assert_int_equal(agent_call_as("wrongname-replica", PNAME, &ap,
	                               &failback__relationship_service__descriptor, "HandOver",
	                               &ho.base, &err),
	                 FB_RV_ACCESS_DENIED);
	assert_true(fbt_file_contains(ap.log, "FB4012"));
	assert_int_equal(PA("primary-rp", "create", "web"), 0); /* still A's */

	/* AdoptRecovery without the receipt of A's primary agent, then with one
	 * another agent signed: the file is not taken */
	rel.proof         = NULL;
	rel.primary_url   = "tls+tcp://127.0.0.1:9";
	rel.primary_name  = "wrong.failback.test";
	rel.recovery_name = "";
	rel.recovery_url  = "";
	assert_int_equal(agent_call_as("wrongname-replica", RNAME, &ar,
	                               &failback__relationship_service__descriptor, "AdoptRecovery",
	                               &rel.base, &err),
	                 FB_RV_ACCESS_DENIED);
	{
		const char *parts[] = {"handed-over",    gid,   "1", rel.primary_url,
		                       rel.primary_name, digest};

		rel.receipt = sign_step("wrongname-replica", parts, 6, "", &p, &m);
	}
	assert_int_equal(agent_call_as("wrongname-replica", RNAME, &ar,
	                               &failback__relationship_service__descriptor, "AdoptRecovery",
	                               &rel.base, &err),
	                 FB_RV_ACCESS_DENIED);
	assert_non_null(strstr(err.msg, "receipt"));
	assert_int_equal(RA("vm", "show", gid), 1);
}

static void
reverse_with_the_other_site_away_completes_when_it_is_back(void **state)
{
	char img[600];

	(void)state;
	snprintf(img, sizeof(img), "%s/app.img", fbt_root());
	assert_int_equal(fbt_image_make(img, 8u << 20, 9), 0);
	assert_int_equal(PA("primary-vm", "add", "app", img), 0);
	assert_int_equal(PA("primary-rp", "create", "app"), 0);
	assert_int_equal(RB("replicate", "app", "--wait"), 0);
	assert_int_equal(RB("failover", "app", "--wait"), 0);
	assert_int_equal(RB("failover-commit", "app", "--wait"), 0);
	/* A's replica agent is away: B does its side, A's is pending. */
	assert_int_equal(fbt_agent_stop(&ar, SIGTERM, 5000), 0);
	assert_int_equal(RB("reverse", "app", "--to", ar.resync, "--wait"), 0);
	assert_int_equal(RB("vm", "show", "app"), 0);
	assert_non_null(strstr(out, "Ready (1)"));
	assert_non_null(strstr(out, "pending_peer: tls+tcp://"));
	assert_true(fbt_file_contains(br.log, "FB6033"));
	assert_int_equal(PB("primary-rp", "list", "app"), 0); /* B serves it */
	assert_int_equal(PA("primary-rp", "create", "app"), 1); /* A handed it over */
	/* A is back: the same call completes A's side, at the same generation. */
	assert_int_equal(start_replica_a(1), 0);
	assert_int_equal(RB("reverse", "app", "--to", ar.resync, "--wait"), 0);
	assert_int_equal(RB("vm", "show", "app"), 0);
	assert_null(strstr(out, "pending_peer: tls+tcp://"));
	assert_non_null(strstr(out, "generation: 1"));
	assert_int_equal(RA("vm", "show", "app"), 0);
	assert_non_null(strstr(out, "WaitingToStartResynchronization (9)"));
	assert_non_null(strstr(out, "generation: 1"));
	assert_int_equal(RA("failback", "app", "--wait"), 0);
}

/* The replica agent that runs a reverse is killed while this host's primary
 * agent takes its point; restarted, it resumes the job at the same
 * generation and completes it. Then the primary agent a home failback pulls
 * from is killed mid-transfer; restarted, the failback completes. */
static void
agents_killed_on_the_reversed_path_resume(void **state)
{
	char img[600], job[40], dd[700], lp[200], rs[200];
	int  seen = 0;

	(void)state;
	snprintf(img, sizeof(img), "%s/big.img", fbt_root());
	assert_int_equal(fbt_image_make(img, 512u << 20, 10), 0);
	assert_int_equal(PA("primary-vm", "add", "big", img), 0);
	assert_int_equal(PA("primary-rp", "create", "big"), 0);
	assert_int_equal(RB("replicate", "big", "--wait"), 0);
	assert_int_equal(RB("failover", "big", "--wait"), 0);
	assert_int_equal(RB("failover-commit", "big", "--wait"), 0);
	assert_int_equal(RB("reverse", "big", "--to", ar.resync), 0);
	grab("InstanceID=\"", job, sizeof(job));
	for (int i = 0; i < 400 && !seen; i++) {
		assert_int_equal(RB("--json", "job", "show", job), 0);
		seen = strstr(out, "\"phase\":\"TakingPoint\"") != NULL;
		if (!seen)
			usleep(10000);
	}
	assert_true(seen);
	assert_int_equal(fbt_agent_stop(&br, SIGKILL, 5000), 128 + SIGKILL);
	snprintf(dd, sizeof(dd), "--data-dir=%s", br.dir);
	snprintf(lp, sizeof(lp), "--local-primary-url=%s", bp.resync);
	snprintf(rs, sizeof(rs), "--listen-resync=%s", br.resync);
	assert_int_equal(fbt_replica_start(&br, &ap, (const char *[]){lp, dd, rs, NULL}), 0);
	if (RB("job", "wait", job) != 0)
		fail_msg("%s", out);
	assert_non_null(strstr(out, "Completed (7)"));
	assert_true(fbt_file_contains(br.log, "FB5005")); /* resumed */
	assert_int_equal(RB("vm", "show", "big"), 0);
	assert_non_null(strstr(out, "generation: 1"));
	assert_int_equal(RA("vm", "show", "big"), 0);
	assert_non_null(strstr(out, "WaitingToStartResynchronization (9)"));
	assert_non_null(strstr(out, "generation: 1"));

	/* B's primary agent killed mid-way through the home failback, and back. */
	{
		char bdisk[700], pd[700], pr[200], a[65], b[65];
		int  moving = 0;

		assert_int_equal(RB("vm", "show", "big"), 0);
		sscanf(strstr(out, "path: ") + 6, "%699s", bdisk);
		assert_int_equal(fbt_image_mutate(bdisk, 400, 15), 400);
		assert_int_equal(PB("primary-rp", "create", "big"), 0);
		assert_int_equal(RA("failback", "big"), 0);
		grab("InstanceID=\"", job, sizeof(job));
		for (int i = 0; i < 600 && !moving; i++) {
			assert_int_equal(RA("--json", "job", "show", job), 0);
			moving = strstr(out, "\"phase\":\"Transferring\"") != NULL &&
			         strstr(out, "\"blocks_done\":0,") == NULL;
			if (!moving)
				usleep(50000);
		}
		assert_true(moving);
		assert_int_equal(fbt_agent_stop(&bp, SIGKILL, 5000), 128 + SIGKILL);
		snprintf(pd, sizeof(pd), "--data-dir=%s", bp.dir);
		snprintf(pr, sizeof(pr), "--listen-resync=%s", bp.resync);
		assert_int_equal(fbt_agent_start(&bp, "primary", "primary",
		                                 (const char *[]){pd, pr, PTRACK, NULL}),
		                 0);
		if (RA("job", "wait", job) != 0)
			fail_msg("%s", out);
		sha(img, a);
		sha(bdisk, b);
		assert_string_equal(a, b);
	}
}

/* Writes through a disk's qcow2 wrapper with qemu-io, as the VM's QEMU would. */
static void
vm_writes(const char *disk, const char *cmds)
{
	char script[2400];

	snprintf(script, sizeof(script), "qemu-io -f qcow2 %s '%s.qcow2'", cmds, disk);
	assert_int_equal(fbt_run((char *[]){"/bin/sh", "-c", script, NULL}, out, sizeof(out)), 0);
}

/* A job's number field from job show --json on A's replica agent. */
static unsigned long long
job_field(const char *job, const char *field)
{
	char        key[64];
	const char *r;

	assert_int_equal(RA("--json", "job", "show", job), 0);
	snprintf(key, sizeof(key), "\"%s\":", field);
	assert_non_null(r = strstr(out, key));
	r += strlen(key);
	if (*r == '"')
		r++;
	return strtoull(r, NULL, 10);
}

/* A file of the wrapper's name that is not the disk's wrapper (the
 * operator's own) is never replaced: the point reads the disk whole and
 * says why, and the file is as it was. */
static void
a_file_in_the_wrappers_place_is_left_alone(void **state)
{
	char img[600], other[700], before[65], after[65];

	(void)state;
	if (!tracking)
		skip();
	snprintf(img, sizeof(img), "%s/own.img", fbt_root());
	snprintf(other, sizeof(other), "%s.qcow2", img);
	assert_int_equal(fbt_image_make(img, 1u << 20, 24), 0);
	assert_int_equal(fbt_image_make(other, 1u << 20, 25), 0);
	sha(other, before);
	assert_int_equal(PA("primary-vm", "add", "own", img), 0);
	assert_int_equal(PA("primary-rp", "create", "own"), 0);
	assert_int_equal(PA("primary-rp", "create", "own"), 0);
	assert_true(fbt_file_contains(ap.log, "is not a qcow2 wrapper of"));
	sha(other, after);
	assert_string_equal(after, before);
	assert_int_not_equal(access(strcat(strcpy(out, img), ".leaves"), F_OK), 0);
}

/*
 * Both sites' writes, by their bitmaps (DESIGN §2a, change tracking): A's
 * primary agent tracks home's disk from each point it takes, so what A
 * wrote after its last replicated point is known without a scan; B's
 * primary agent tracks the recovery disk it serves from its first point.
 * The home failback (phase 1) then reads at A only A's own dirty blocks,
 * B's final point reads only what B wrote since, and phase 2 reads at A
 * only what the two points' manifests name. Every disk ends exact.
 */
static void
both_sites_writes_are_known_by_their_bitmaps(void **state)
{
	char               hA[600], hB[700], job[40], a[65], b[65], p2[40];
	unsigned long long nblocks = (32ull << 20) / BLOCK, read;

	(void)state;
	if (!tracking)
		skip();
	snprintf(hA, sizeof(hA), "%s/home.img", fbt_root());
	assert_int_equal(fbt_image_make(hA, 32u << 20, 21), 0);
	assert_int_equal(PA("primary-vm", "add", "home", hA, "--history", "4"), 0);
	/* The first point reads the disk and starts its bitmap. */
	assert_int_equal(PA("primary-rp", "create", "home"), 0);
	assert_int_equal(access(strcat(strcpy(out, hA), ".qcow2"), F_OK), 0);
	assert_int_equal(access(strcat(strcpy(out, hA), ".leaves"), F_OK), 0);
	/* the primary names the wrapper the hypervisor must open */
	assert_int_equal(PA("--json", "primary-vm", "list"), 0);
	assert_non_null(strstr(out, "\"tracked_path\":\""));
	assert_non_null(strstr(out, "home.img.qcow2\""));
	assert_int_equal(RB("replicate", "home", "--wait"), 0);
	/* The VM runs on the wrapper (qemu-io holds it open, having written a
	 * block): a point now cannot start a new bitmap (FB4034), so it reads
	 * the disk whole and the bitmap since P1 goes on counting. */
	{
		char  cmd[800];
		FILE *vm;
		int   open = 0;

		snprintf(cmd, sizeof(cmd), "qemu-io -f qcow2 '%s.qcow2' >/dev/null", hA);
		assert_non_null(vm = popen(cmd, "w"));
		fprintf(vm, "write -P 0x30 12M 64k\n");
		fflush(vm);
		snprintf(cmd, sizeof(cmd), "qemu-img info -U '%s.qcow2' | grep -q in-use", hA);
		for (int i = 0; i < 200 && !open; i++) {
			open = fbt_run((char *[]){"/bin/sh", "-c", cmd, NULL}, out, sizeof(out)) == 0;
			if (!open)
				usleep(50000);
		}
		assert_true(open);
		assert_int_equal(PA("primary-rp", "create", "home"), 0);
		assert_true(fbt_file_contains(ap.log, "its tracking stays where it was"));
		assert_true(fbt_file_contains(ap.log, "is in use: its writer did not close"));
		assert_int_equal(pclose(vm), 0); /* the VM stops cleanly */
	}
	/* The VM writes 3 blocks more: the next point reads those and the one
	 * written while it ran, by the bitmap since P1. */
	vm_writes(hA, "-c 'write -P 0x31 1M 128k' -c 'write -P 0x32 9M 64k'");
	assert_int_equal(PA("--json", "primary-rp", "create", "home"), 0);
	grab("\"id\":\"", p2, sizeof(p2));
	{
		char want[160];

		snprintf(want, sizeof(want), "point %s by the bitmap since point ", p2);
		if (!fbt_file_contains(ap.log, want) ||
		    !fbt_file_contains(ap.log, ": 4 of 512 blocks written, read only those"))
			fail_msg("A's third point did not read only the 4 blocks written (%s)", ap.log);
	}
	assert_int_equal(RB("replicate", "home", "--wait"), 0);
	/* A's tail: 2 blocks B never receives. Then a planned failover to B. */
	vm_writes(hA, "-c 'write -P 0x33 20M 64k' -c 'write -P 0x34 30M 64k'");
	assert_int_equal(RB("failover", "home", "--wait"), 0);
	assert_int_equal(RB("failover-commit", "home", "--wait"), 0);
	assert_int_equal(RB("vm", "show", "home"), 0);
	sscanf(strstr(out, "path: ") + 6, "%699s", hB);
	assert_int_equal(fbt_image_mutate(hB, 5, 22), 5); /* B's VM runs for a while */
	/* Reverse: B's primary takes its first point of the disk (whole: its
	 * store has none of the blocks) and starts tracking it. */
	assert_int_equal(RB("reverse", "home", "--to", ar.resync, "--to-name", RNAME, "--wait"), 0);
	assert_int_equal(access(strcat(strcpy(out, hB), ".qcow2"), F_OK), 0);
	/* Phase 1 at A: A's bitmap since P2 names A's tail, and only those 2
	 * blocks are read; the walk against B's tree finds B's writes. */
	assert_int_equal(RA("failback", "home", "--wait"), 0);
	grab("InstanceID=\"", job, sizeof(job));
	sha(hA, a);
	sha(hB, b);
	assert_string_equal(a, b); /* B's writes, and A's tail undone */
	assert_int_equal(RA("--json", "job", "show", job), 0);
	assert_non_null(strstr(out, "\"compare_mode\":\"bitmap\""));
	{
		char want[128];

		snprintf(want, sizeof(want), "bitmap since recovery point %s: 2 of %llu blocks", p2,
		         nblocks);
		if (!fbt_file_contains(ar.log, want))
			fail_msg("A's failback did not read only A's 2 dirty blocks: no \"%s\" in %s",
			         want, ar.log);
	}
	read = job_field(job, "bytes_read");
	print_message("phase 1 at A: read %llu bytes of a %llu-byte disk\n", read, 32ull << 20);
	assert_int_equal(read, 2 * BLOCK);
	/* B's VM writes 2 blocks through the wrapper B's primary made; the
	 * final point reads only those. */
	vm_writes(hB, "-c 'write -P 0x35 5M 64k' -c 'write -P 0x36 25M 64k'");
	assert_int_equal(PB("primary-rp", "create", "home", "--type", "planned"), 0);
	if (!fbt_file_contains(bp.log, ": 2 of 512 blocks written, read only those"))
		fail_msg("B's final point did not read only B's 2 dirty blocks (%s)", bp.log);
	/* Phase 2 at A: the manifests name the 2 blocks; A's own bitmap is clean. */
	assert_int_equal(RA("failback", "home", "--wait"), 0);
	grab("InstanceID=\"", job, sizeof(job));
	sha(hA, a);
	sha(hB, b);
	assert_string_equal(a, b);
	assert_int_equal(RA("--json", "job", "show", job), 0);
	assert_non_null(strstr(out, "\"compare_mode\":\"bitmap\""));
	read = job_field(job, "bytes_read");
	print_message("phase 2 at A: read %llu bytes\n", read);
	assert_int_equal(read, 0); /* A's bitmap is clean; the 2 blocks were written */

	/* What a bitmap cannot see, and what does: a write around B's wrapper,
	 * hidden by another open and close of the wrapper. A point by the
	 * bitmap misses it (the failback home is exact to that point, not to
	 * the disk); a point with --full-scan reads it. */
	assert_int_equal(fbt_image_mutate(hB, 1, 23), 1);
	vm_writes(hB, "-c 'read 0 64k'");
	assert_int_equal(PB("primary-rp", "create", "home"), 0);
	assert_true(fbt_file_contains(bp.log, ": 0 of 512 blocks written, read only those"));
	assert_int_equal(RA("failback", "home", "--wait"), 0);
	sha(hA, a);
	sha(hB, b);
	assert_string_not_equal(a, b);
	assert_int_equal(PB("primary-rp", "create", "home", "--full-scan"), 0);
	assert_true(fbt_file_contains(bp.log, "scans the disk whole: a full scan was asked for"));
	assert_int_equal(RA("failback", "home", "--wait"), 0);
	sha(hA, a);
	sha(hB, b);
	assert_string_equal(a, b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(site_a_replicates_to_b_then_b_fails_over_and_writes),
	    cmocka_unit_test(reverse_on_b_makes_b_primary_and_a_the_receiving_side),
	    cmocka_unit_test(cancel_of_the_home_failback_restores_a_with_its_tail),
	    cmocka_unit_test(home_failback_brings_b_data_to_a_moving_only_what_differs),
	    cmocka_unit_test(second_phase_moves_only_the_last_writes),
	    cmocka_unit_test(failback_from_the_site_reversed_away_is_refused),
	    cmocka_unit_test(reprotect_makes_a_primary_again_and_replication_moves_nothing),
	    cmocka_unit_test(generation_guard_refuses_older_steps_unless_forced),
	    cmocka_unit_test(relationship_steps_are_refused_to_other_agents),
	    cmocka_unit_test(reverse_with_the_other_site_away_completes_when_it_is_back),
	    cmocka_unit_test(agents_killed_on_the_reversed_path_resume),
	    cmocka_unit_test(a_file_in_the_wrappers_place_is_left_alone),
	    cmocka_unit_test(both_sites_writes_are_known_by_their_bitmaps),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
