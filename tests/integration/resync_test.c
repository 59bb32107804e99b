/*
 * resync_test.c - InitiateFailback as the resync of the receiving side,
 * end to end with real agents on loopback: a VM is replicated, changed,
 * replicated again, failed over and committed; the recovery disk is
 * written to; then InitiateFailback to an older point of the primary
 * (without reversing the relationship) must make the recovery disk
 * byte-identical to that point. (Failing a VM back home with what it wrote
 * at the recovery site is roundtrip_test.c.) Around that: every
 * synchronous return value, and the faults an operator must be able to
 * trust it with (cancel, the replica agent killed, the primary killed
 * mid-transfer, the primary unreachable, a wrong certificate pin).
 *
 * The replica runs with --max-transfer-rate so a transfer lasts long enough
 * to be interrupted on purpose; no test waits a fixed time.
 */
#define _GNU_SOURCE /* F_OFD_SETLK */
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include <cmocka.h>

#include "failback/clock.h"
#include "failback/events.h"
#include "failback/proof.h"
#include "failback/tls.h"
#include "clients.h"
#include "harness.h"
#include "image.h"
#include "replica.pb-c.h"
#include "resync.pb-c.h"

#define PNAME "primary.failback.test"
#define RNAME "replica.failback.test"
#define RATE  "16"

static fbt_agent primary, replica;
static char      out[1 << 16], img[600], p1img[600], disk[700], p1[40], pin[80];

#define P(...) pctl((const char *[]){__VA_ARGS__, NULL})
#define R(...) rctl((const char *[]){__VA_ARGS__, NULL})

static int
pctl(const char *const *args)
{
	return fbt_ctlv(out, sizeof(out), primary.control, "operator", PNAME, args);
}

static int
rctl(const char *const *args)
{
	const char *full[32];
	int         n = 0;

	full[n++] = "--events-url";
	full[n++] = replica.events;
	for (int i = 0; args[i] != NULL && n < 30; i++)
		full[n++] = args[i];
	full[n] = NULL;
	return fbt_ctlv(out, sizeof(out), replica.control, "operator", RNAME, full);
}

/* Copies the value after key in out ("key": value or key=\"value\"). */
static void
grab(const char *key, char *dst, size_t len)
{
	const char *p = strstr(out, key);

	assert_non_null(p);
	snprintf(dst, len, "%.36s", p + strlen(key));
}

static void
sha(const char *path, char *hex)
{
	assert_int_equal(fbt_file_sha256(path, hex), 0);
}

static int
start_primary(const char *const *extra)
{
	return fbt_agent_start(&primary, "primary", "primary", extra);
}

static int
start_replica(const char *const *more)
{
	char        dd[700];
	const char *extra[12] = {"--max-transfer-rate=" RATE};
	int         n         = 1;

	if (more != NULL) {
		snprintf(dd, sizeof(dd), "--data-dir=%s", replica.dir);
		extra[n++] = dd;
		for (int i = 0; more[i] != NULL && n < 11; i++)
			extra[n++] = more[i];
	}
	extra[n] = NULL;
	return fbt_replica_start(&replica, &primary, extra);
}

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

static int
group_setup(void **state)
{
	(void)state;
	if (fbt_setup() != 0 || start_primary(NULL) != 0 || start_replica(NULL) != 0)
		return -1;
	snprintf(img, sizeof(img), "%s/web.img", fbt_root());
	snprintf(p1img, sizeof(p1img), "%s/web.p1", fbt_root());
	if (fbt_image_make(img, 64u << 20, 21) != 0)
		return -1;
	thumbprint_of(fbt_pki_file("primary.pem"), pin);
	/* served only to this replica agent: every flow below proves who asks */
	if (P("primary-vm", "add", "web", img, "--history", "2", "--replica-name", RNAME) != 0)
		return -1;
	if (P("--json", "primary-rp", "create", "web") != 0)
		return -1;
	grab("\"point\":{\"id\":\"", p1, sizeof(p1));
	{
		char *const cp[] = {(char *)"/bin/cp", (char *)"--sparse=always", img, p1img, NULL};
		if (fbt_run(cp, out, sizeof(out)) != 0)
			return -1;
	}
	if (R("replicate", "web", "--wait") != 0)
		return -1;
	if (fbt_image_mutate(img, 52, 5) != 52) /* 5% of 1024 blocks */
		return -1;
	if (P("primary-rp", "create", "web") != 0 || R("replicate", "web", "--wait") != 0 ||
	    R("failover", "web", "--wait") != 0 || R("failover-commit", "web", "--wait") != 0)
		return -1;
	if (R("vm", "show", "web") != 0)
		return -1;
	{
		const char *p = strstr(out, "path: ");
		if (p == NULL)
			return -1;
		sscanf(p + 6, "%699s", disk);
	}
	return 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	fbt_teardown();
	return 0;
}

static void
replica_holds_the_committed_point_and_its_disk(void **state)
{
	(void)state;
	assert_int_equal(R("--json", "rp", "list", "web"), 0);
	/* Commit flattened the points: P1's blocks are gone, its id and roots stay as
	 * history shared with the primary. */
	{
		const char *h = strstr(out, p1);

		assert_non_null(h);
		assert_non_null(strstr(h, "\"history\":true"));
	}
	assert_non_null(strstr(out, "\"hash_algorithm\":\"sha256\""));
	assert_int_equal(R("vm", "show", "web"), 0);
	assert_non_null(strstr(out, "replication_state: Committed (6)"));
	assert_non_null(strstr(out, "replication_mode: Recovery (2)"));
	assert_int_equal(access(disk, R_OK | W_OK), 0);
}

/* --- events --- */

struct watch {
	fb_events_sub *sub;
	char           job[40];
	int            stop; /* atomic */
	int            saw_compare, saw_transfer, saw_verify, saw_complete;
	unsigned       max_pct;
	uint64_t       events;
};

static void *
watch_thread(void *arg)
{
	struct watch *w = arg;

	while (!__atomic_load_n(&w->stop, __ATOMIC_SEQ_CST)) {
		Failback__JobEvent *ev;
		fb_err              err;

		if (fb_events_sub_next(w->sub, 200, &ev, &err) != FB_RV_OK)
			continue;
		if (w->job[0] == '\0' || strcmp(ev->job_id, w->job) == 0) {
			w->events++;
			w->saw_compare |= strcmp(ev->phase, "Comparing") == 0;
			w->saw_transfer |= strcmp(ev->phase, "Transferring") == 0;
			w->saw_verify |= strcmp(ev->phase, "Verifying") == 0;
			if (ev->job_state == 7)
				__atomic_store_n(&w->saw_complete, 1, __ATOMIC_SEQ_CST);
			if (ev->percent_complete > w->max_pct)
				w->max_pct = ev->percent_complete;
		}
		failback__job_event__free_unpacked(ev, NULL);
	}
	return NULL;
}

static void
failback_to_p1_makes_the_disk_identical_to_p1(void **state)
{
	struct watch    w;
	pthread_t       t;
	nng_tls_config *tls;
	fb_err          err;
	char            settings[2048], path[700], want[65], got[65], job[40];
	FILE           *f;

	(void)state;
	memset(&w, 0, sizeof(w));
	assert_int_equal(fb_tls_config_client(&tls, fbt_pki_file("agents-ca.pem"),
	                                      fbt_pki_file("monitor.pem"), fbt_pki_file("monitor.key"),
	                                      RNAME, 0, &err),
	                 0);
	assert_int_equal(fb_events_sub_open(&w.sub, replica.events, tls, "job/", &err), 0);
	assert_int_equal(pthread_create(&t, NULL, watch_thread, &w), 0);
	/* The recovery VM ran and wrote to its disk. */
	assert_int_equal(fbt_image_mutate(disk, 40, 77), 40);
	snprintf(settings, sizeof(settings),
	         "<INSTANCE CLASSNAME=\"Msvm_ReplicationSettingData\">"
	         "<PROPERTY NAME=\"PrimaryConnectionPoint\" TYPE=\"string\"><VALUE>127.0.0.1</VALUE>"
	         "</PROPERTY><PROPERTY NAME=\"RecoveryServerPortNumber\" TYPE=\"uint16\"><VALUE>%s"
	         "</VALUE></PROPERTY><PROPERTY NAME=\"AuthenticationType\" TYPE=\"uint16\"><VALUE>2"
	         "</VALUE></PROPERTY><PROPERTY NAME=\"CertificateThumbPrint\" TYPE=\"string\">"
	         "<VALUE>%s</VALUE></PROPERTY><PROPERTY NAME=\"CompressionEnabled\" "
	         "TYPE=\"boolean\"><VALUE>TRUE</VALUE></PROPERTY></INSTANCE>",
	         strrchr(primary.resync, ':') + 1, pin);
	snprintf(path, sizeof(path), "%s/settings.xml", fbt_root());
	f = fopen(path, "w");
	fputs(settings, f);
	fclose(f);
	assert_int_equal(R("failback", "web", "--rp", p1, "--settings", path, "--wait"), 0);
	assert_non_null(strstr(out, "Method Parameters Checked - Job Started (4096)"));
	assert_non_null(strstr(out, "Completed (7)"));
	grab("InstanceID=\"", job, sizeof(job));
	sha(p1img, want);
	sha(disk, got);
	assert_string_equal(got, want);
	assert_int_equal(R("vm", "show", "web"), 0);
	assert_non_null(strstr(out, "FailbackComplete (14)"));
	/* CIM_ConcreteJob fields. */
	assert_int_equal(R("job", "show", job), 0);
	assert_non_null(strstr(out, "job_type: 124"));
	assert_non_null(strstr(out, "percent_complete: 100"));
	assert_non_null(strstr(out, "time_before_removal_ms: 300000"));
	assert_non_null(strstr(out, "error_code: 0"));
	/* a finished job keeps its counters (they once read 0 after the end) */
	{
		const char *b = strstr(out, "blocks_done: ");

		assert_non_null(b);
		assert_true(strtoull(b + 13, NULL, 10) >= 40);
		assert_null(strstr(out, "bytes_total: 0\n"));
	}
	/* The differing blocks came over the wire, and little else (DESIGN §8:
	 * changed bytes x 1.02 + 0.1% of the disk, Merkle negotiation included). */
	{
		unsigned long long applied = 0, wire = 0;
		char               line[1024];
		FILE              *lf = fopen(replica.log, "r");

		while (lf != NULL && fgets(line, sizeof(line), lf) != NULL)
			if (strstr(line, job) != NULL && strstr(line, "FB6013") != NULL)
				sscanf(strstr(line, ": ") + 2, "%llu block(s) applied, %llu", &applied,
				       &wire);
		if (lf != NULL)
			fclose(lf);
		assert_true(applied >= 40);
		assert_true(wire > 0);
		assert_true((double)wire <= (double)applied * 65536 * 1.02 + (64u << 20) * 0.001);
	}
	/* A subscriber saw the phases and 100%. */
	for (int i = 0; i < 100 && !__atomic_load_n(&w.saw_complete, __ATOMIC_SEQ_CST); i++)
		usleep(20000);
	__atomic_store_n(&w.stop, 1, __ATOMIC_SEQ_CST);
	pthread_join(t, NULL);
	/* left to the exit (clients.h) */
	fb_events_sub_abandon(w.sub);
	assert_true(w.saw_compare && w.saw_transfer && w.saw_verify && w.saw_complete);
	assert_int_equal(w.max_pct, 100);
	nng_tls_config_free(tls);
}

static void
synchronous_checks_return_hyperv_codes_and_change_nothing(void **state)
{
	char path[700];
	FILE *f;

	(void)state;
	assert_int_equal(R("failback", "nosuch"), 1);
	assert_non_null(strstr(out, "File not found (32779)"));
	assert_int_equal(R("failback", "../etc"), 1);
	assert_non_null(strstr(out, "Invalid parameter (32773)"));
	assert_int_equal(R("failback", "web", "--rp", "not-a-guid"), 1);
	assert_non_null(strstr(out, "Invalid parameter (32773)"));
	snprintf(path, sizeof(path), "%s/bad.xml", fbt_root());
	f = fopen(path, "w");
	fputs("<INSTANCE CLASSNAME=\"Msvm_ReplicationSettingData\"><PROPERTY", f);
	fclose(f);
	assert_int_equal(R("failback", "web", "--settings", path), 1);
	assert_non_null(strstr(out, "Invalid parameter (32773)"));
	f = fopen(path, "w");
	fputs("<INSTANCE CLASSNAME=\"Msvm_ReplicationSettingData\"><PROPERTY "
	      "NAME=\"CompressionEnabled\" TYPE=\"boolean\"><VALUE>maybe</VALUE></PROPERTY>"
	      "</INSTANCE>", f);
	fclose(f);
	assert_int_equal(R("failback", "web", "--settings", path), 1);
	assert_non_null(strstr(out, "Incorrect data type (32776)"));
	f = fopen(path, "w");
	fputs("<INSTANCE CLASSNAME=\"Msvm_ReplicationSettingData\"><PROPERTY "
	      "NAME=\"AuthenticationType\" TYPE=\"uint16\"><VALUE>1</VALUE></PROPERTY></INSTANCE>",
	      f);
	fclose(f);
	assert_int_equal(R("failback", "web", "--settings", path), 1);
	assert_non_null(strstr(out, "Not Supported (32770)"));
	/* Nothing changed: the VM is still where the last test left it. */
	assert_int_equal(R("vm", "show", "web"), 0);
	assert_non_null(strstr(out, "FailbackComplete (14)"));
}

static void
failback_of_a_vm_that_is_not_a_recovery_vm_is_invalid_state(void **state)
{
	char idle[600];

	(void)state;
	snprintf(idle, sizeof(idle), "%s/idle.img", fbt_root());
	assert_int_equal(fbt_image_make(idle, 4u << 20, 3), 0);
	assert_int_equal(P("primary-vm", "add", "idle", idle), 0);
	assert_int_equal(P("primary-rp", "create", "idle"), 0);
	assert_int_equal(R("replicate", "idle", "--wait"), 0);
	assert_int_equal(R("failback", "idle"), 1);
	assert_non_null(strstr(out, "Invalid state for this operation (32775)"));
	/* Fail over, then revert: the disks go away and replication resumes (3). */
	assert_int_equal(R("failover", "idle", "--wait"), 0);
	assert_int_equal(R("vm", "show", "idle"), 0);
	assert_non_null(strstr(out, "Recovered (5)"));
	{
		char idle_disk[700];
		sscanf(strstr(out, "path: ") + 6, "%699s", idle_disk);
		assert_int_equal(access(idle_disk, F_OK), 0);
		assert_int_equal(R("failover-revert", "idle", "--wait"), 0);
		assert_int_not_equal(access(idle_disk, F_OK), 0);
	}
	assert_int_equal(R("vm", "show", "idle"), 0);
	assert_non_null(strstr(out, "Replicating (3)"));
	assert_int_equal(R("failover-revert", "idle"), 1);
	assert_non_null(strstr(out, "Invalid state for this operation (32775)"));
}

static void
wait_job(const char *job, int want_exit)
{
	assert_int_equal(R("job", "wait", job), want_exit);
}

/* The replication_state line of a "vm show" in out. */
static void
vm_state(char *dst, size_t len)
{
	const char *p = strstr(out, "replication_state: ");

	assert_non_null(p);
	snprintf(dst, len, "%.*s", (int)strcspn(p, "\n"), p);
}

static void
unknown_point_fails_the_job_with_file_not_found(void **state)
{
	char job[40], before[80], after[80];

	(void)state;
	assert_int_equal(R("vm", "show", "web"), 0);
	vm_state(before, sizeof(before));
	assert_int_equal(R("failback", "web", "--rp", "00000000-0000-4000-8000-000000000001"), 0);
	grab("InstanceID=\"", job, sizeof(job));
	wait_job(job, 1);
	assert_non_null(strstr(out, "Exception (10)"));
	assert_non_null(strstr(out, "File not found (32779)"));
	assert_int_equal(R("job", "error", job), 0);
	assert_non_null(strstr(out, "error_code: 32779"));
	assert_non_null(strstr(out, "Msvm_Error"));
	/* Nothing was written: the VM keeps the state it had, not Critical. */
	assert_int_equal(R("vm", "show", "web"), 0);
	vm_state(after, sizeof(after));
	assert_string_equal(after, before);
	assert_null(strstr(out, "Critical (8)"));
}

static void
unreachable_primary_fails_with_32777_and_a_second_call_is_in_use(void **state)
{
	char path[700], job[40], want[65], got[65], before[80], after[80];
	FILE *f;

	(void)state;
	assert_int_equal(R("vm", "show", "web"), 0);
	vm_state(before, sizeof(before));
	snprintf(path, sizeof(path), "%s/dead.xml", fbt_root());
	f = fopen(path, "w");
	fputs("<INSTANCE CLASSNAME=\"Msvm_ReplicationSettingData\"><PROPERTY "
	      "NAME=\"PrimaryConnectionPoint\" TYPE=\"string\"><VALUE>127.0.0.1</VALUE></PROPERTY>"
	      "<PROPERTY NAME=\"RecoveryServerPortNumber\" TYPE=\"uint16\"><VALUE>1</VALUE>"
	      "</PROPERTY></INSTANCE>", f);
	fclose(f);
	assert_int_equal(R("failback", "web", "--settings", path), 0);
	grab("InstanceID=\"", job, sizeof(job));
	/* The job retries for seconds: a second call meanwhile is refused. */
	assert_int_equal(R("failback", "web"), 1);
	if (strstr(out, "System is in use (32774)") == NULL)
		fail_msg("second call: %s", out);
	wait_job(job, 1);
	assert_non_null(strstr(out, "System is not available (32777)"));
	assert_int_equal(R("vm", "show", "web"), 0);
	vm_state(after, sizeof(after));
	assert_string_equal(after, before);
	/* A later call, with the relationship's settings, completes. */
	assert_int_equal(R("failback", "web", "--rp", p1, "--wait"), 0);
	sha(p1img, want);
	sha(disk, got);
	assert_string_equal(got, want);
}

static void
wrong_certificate_pin_fails_the_job(void **state)
{
	char path[700], job[40];
	FILE *f;

	(void)state;
	snprintf(path, sizeof(path), "%s/pin.xml", fbt_root());
	f = fopen(path, "w");
	fprintf(f, "<INSTANCE CLASSNAME=\"Msvm_ReplicationSettingData\"><PROPERTY "
	           "NAME=\"CertificateThumbPrint\" TYPE=\"string\"><VALUE>%064d</VALUE></PROPERTY>"
	           "</INSTANCE>", 0);
	fclose(f);
	assert_int_equal(R("failback", "web", "--settings", path), 0);
	grab("InstanceID=\"", job, sizeof(job));
	wait_job(job, 1);
	assert_non_null(strstr(out, "Access Denied (32769)"));
	assert_non_null(strstr(out, "CertificateThumbPrint"));
}

/* Waits (bounded) until the job is transferring and has applied blocks:
 * 0, or 1 when the job ended first (a fast run, or a slow poller under a
 * sanitizer, can pass the transfer between two polls; polling on would
 * outlive the job's TimeBeforeRemoval). */
static int
wait_transferring_or_end(const char *job)
{
	for (int i = 0; i < 600; i++) {
		if (R("--json", "job", "show", job) != 0)
			fail_msg("job show %s failed: %s", job, out);
		if (strstr(out, "\"phase\":\"Transferring\"") != NULL &&
		    strstr(out, "\"blocks_done\":0,") == NULL)
			return 0;
		if (strstr(out, "\"job_state\":7") != NULL || strstr(out, "\"job_state\":8") != NULL ||
		    strstr(out, "\"job_state\":9") != NULL || strstr(out, "\"job_state\":10") != NULL)
			return 1;
		usleep(50000);
	}
	fail_msg("job %s never started transferring: %s", job, out);
	return 1;
}

/* The same for a test that needs the job caught in the middle. */
static void
wait_transferring(const char *job)
{
	if (wait_transferring_or_end(job) != 0)
		fail_msg("job %s ended before it was seen transferring: %s", job, out);
}

static void
settings_naming_a_disk_the_vm_lacks_are_invalid(void **state)
{
	char path[700];
	FILE *f;

	(void)state;
	snprintf(path, sizeof(path), "%s/disks.xml", fbt_root());
	f = fopen(path, "w");
	fputs("<INSTANCE CLASSNAME=\"Msvm_ReplicationSettingData\"><PROPERTY.ARRAY "
	      "NAME=\"IncludedDisks\" TYPE=\"string\"><VALUE.ARRAY><VALUE>other.vhdx</VALUE>"
	      "</VALUE.ARRAY></PROPERTY.ARRAY></INSTANCE>", f);
	fclose(f);
	assert_int_equal(R("failback", "web", "--settings", path), 1);
	assert_non_null(strstr(out, "Invalid parameter (32773)"));
	assert_non_null(strstr(out, "other.vhdx"));
}

static void
cancel_mid_transfer_restores_the_disk_byte_for_byte(void **state)
{
	char before[65], after[65], job[40];

	(void)state;
	assert_int_equal(fbt_image_mutate(disk, 800, 91), 800); /* ~50 MiB to undo */
	sha(disk, before);
	assert_int_equal(R("vm", "show", "web"), 0);
	assert_non_null(strstr(out, "FailbackComplete (14)"));
	assert_int_equal(R("failback", "web", "--rp", p1), 0);
	grab("InstanceID=\"", job, sizeof(job));
	wait_transferring(job);
	assert_int_equal(R("job", "cancel", job), 0);
	wait_job(job, 1);
	assert_non_null(strstr(out, "Terminated (8)"));
	sha(disk, after);
	assert_string_equal(after, before);
	assert_int_equal(R("vm", "show", "web"), 0);
	assert_non_null(strstr(out, "FailbackComplete (14)")); /* the state before the call */
}

/* The value of the first sample whose line starts with series in text,
 * or -1. */
static double
metric(const char *text, const char *series)
{
	const char *p = text;

	while ((p = strstr(p, series)) != NULL) {
		if ((p == text || p[-1] == '\n') && p[strlen(series)] == ' ')
			return strtod(p + strlen(series) + 1, NULL);
		p++;
	}
	return -1;
}

/* A scrape parses with Prometheus's own checker (promtool). */
static void
assert_promtool_accepts(const char *text)
{
	char  path[700], cmd[800];
	FILE *f;

	snprintf(path, sizeof(path), "%s/scrape.txt", fbt_root());
	assert_non_null(f = fopen(path, "w"));
	fputs(text, f);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "promtool check metrics < '%s'", path);
	{
		char *argv[] = {"/bin/sh", "-c", cmd, NULL};

		if (fbt_run(argv, out, sizeof(out)) != 0)
			fail_msg("promtool check metrics refused the scrape: %s", out);
	}
}

/* Monitoring scrapes /metrics during a failback and after it: the job is
 * counted running, then ended Completed with its duration and bytes, the
 * VM's last failback succeeded; the primary reports the VM's RPO; both
 * answer /healthz; every scrape parses with promtool. */
static void
metrics_follow_a_failback_and_parse(void **state)
{
	static char text[1 << 20];
	char        job[40], series[200];

	(void)state;
	assert_int_equal(fbt_image_mutate(disk, 400, 95), 400);
	assert_int_equal(R("failback", "web", "--rp", p1), 0);
	grab("InstanceID=\"", job, sizeof(job));
	wait_transferring(job);
	assert_int_equal(fbt_http_get(replica.metrics, "/metrics", text, sizeof(text)), 200);
	assert_promtool_accepts(text);
	assert_true(metric(text, "failback_jobs_running{type=\"124\"}") == 1);
	assert_true(metric(text, "failback_jobs_in_progress_bytes") > 0);
	assert_true(metric(text, "failback_listener_connections{listener=\"control\",state=\"admitted\"}") >= 0);
	assert_true(metric(text, "failback_healthy") == 1);
	wait_job(job, 0);
	assert_int_equal(fbt_http_get(replica.metrics, "/metrics", text, sizeof(text)), 200);
	assert_promtool_accepts(text);
	assert_true(metric(text, "failback_jobs_running{type=\"124\"}") == -1);
	assert_true(metric(text, "failback_jobs_ended_total{type=\"124\",state=\"Completed\"}") >= 1);
	assert_true(metric(text, "failback_job_duration_seconds_count{type=\"124\"}") >= 1);
	assert_true(metric(text, "failback_job_blocks_total") >= 400);
	assert_int_equal(R("vm", "show", "web"), 0);
	{
		char id[40];

		grab("id: ", id, sizeof(id));
		snprintf(series, sizeof(series), "failback_vm_last_failback_success{vm=\"%s\"}", id);
	}
	assert_true(metric(text, series) == 1);
	assert_int_equal(fbt_http_get(replica.metrics, "/healthz", text, sizeof(text)), 200);
	assert_string_equal(text, "ok\n");
	assert_int_equal(fbt_http_get(primary.metrics, "/metrics", text, sizeof(text)), 200);
	assert_promtool_accepts(text);
	assert_true(metric(text, "failback_vm_recovery_point_age_seconds{vm=\"web\"}") >= 0);
	assert_true(metric(text, "failback_build_info{program=\"failback-primary\",version=\"" FB_VERSION "\"}") == 1);
}

/* `job wait` on a 60-column terminal (a pty, through script(1)): every
 * redraw of the progress line fits in 59 columns, and the wait ends with
 * the state and a one-line summary of what the job did. */
static void
progress_fits_the_terminal_and_ends_with_a_summary(void **state)
{
	char        job[40], cmd[4096];
	const char *pki = fbt_pki();
	int         widest = 0, redraws = 0;
	char        last[128] = "", summary[256] = "";

	(void)state;
	{
		char *probe[] = {"/usr/bin/script", "-qec", "true", "/dev/null", NULL};

		if (fbt_run(probe, out, sizeof(out)) != 0) {
			print_message("skipped: script(1) cannot open a pseudo-terminal here (%s)\n", out);
			skip();
		}
	}
	assert_int_equal(fbt_image_mutate(disk, 400, 97), 400);
	assert_int_equal(R("failback", "web", "--rp", p1), 0);
	grab("InstanceID=\"", job, sizeof(job));
	snprintf(cmd, sizeof(cmd),
	         "stty cols 60 rows 20; %s --url %s --events-url %s --server-name "
	         "replica.failback.test --ca %s/agents-ca.pem --cert %s/operator.pem --key "
	         "%s/operator.key job wait %s",
	         FBT_CTL, replica.control, replica.events, pki, pki, pki, job);
	{
		char *argv[] = {"/usr/bin/script", "-qec", cmd, "/dev/null", NULL};

		assert_int_equal(fbt_run(argv, out, sizeof(out)), 0);
	}
	/* each segment between \r and \n is one drawing of the line */
	for (char *p = out; *p != '\0';) {
		size_t seg = strcspn(p, "\r\n"), vis = seg;
		char  *k   = p;

		while ((k = strstr(k, "\033[K")) != NULL && k < p + seg) {
			vis -= 3;
			k += 3;
		}
		if (seg > 0 && p[0] == '[') {
			redraws++;
			snprintf(last, sizeof(last), "%.*s", (int)(vis < seg ? vis : seg), p);
		}
		if ((int)vis > widest && strncmp(p, "job", 3) != 0 && strncmp(p, "Completed", 9) != 0)
			widest = (int)vis;
		if (strncmp(p, "Completed (7) ", 14) == 0) {
			snprintf(summary, sizeof(summary), "%.*s", (int)seg, p);
			assert_true(seg <= 79); /* the summary fits 80 columns */
		}
		p += seg;
		p += *p != '\0';
	}
	print_message("%d redraws, widest %d columns; the last: %s\n", redraws, widest, last);
	assert_true(redraws > 0);
	assert_true(widest <= 59);
	print_message("summary: %s\n", summary);
	assert_non_null(strstr(summary, " s: "));
	assert_non_null(strstr(summary, " blocks "));
	assert_non_null(strstr(summary, " wire, "));
	assert_non_null(strstr(summary, " MiB read")); /* compare and verify (holes are not read) */
	assert_non_null(strstr(out, "ETA "));
}

static void
replica_agent_killed_mid_transfer_resumes_and_completes(void **state)
{
	char        job[40], want[65], got[65];
	char        lc[200], lm[200], le[200];
	const char *keep[] = {lc, lm, le, NULL};

	(void)state;
	assert_int_equal(fbt_image_mutate(disk, 800, 93), 800);
	assert_int_equal(R("failback", "web", "--rp", p1), 0);
	grab("InstanceID=\"", job, sizeof(job));
	wait_transferring(job);
	snprintf(lc, sizeof(lc), "--listen-control=%s", replica.control);
	snprintf(lm, sizeof(lm), "--listen-monitor=%s", replica.monitor);
	snprintf(le, sizeof(le), "--listen-events=%s", replica.events);
	assert_int_equal(fbt_agent_stop(&replica, SIGKILL, 5000), 128 + SIGKILL);
	assert_int_equal(start_replica(keep), 0);
	wait_job(job, 0);
	sha(p1img, want);
	sha(disk, got);
	assert_string_equal(got, want);
	assert_true(fbt_file_contains(replica.log, "resuming job"));
}

/* Entries of directory dir, but . and .. */
static int
entries(const char *dir)
{
	DIR           *d = opendir(dir);
	struct dirent *de;
	int            n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
	closedir(d);
	return n;
}

/* A completed failback leaves no undo log: it is put out of a rollback's
 * reach before Completed and deleted right after. One a crash left in
 * between is deleted when the agent starts; other files are left alone. */
static void
a_completed_failback_leaves_no_undo_log(void **state)
{
	char        dir[800], done[900], other[900], lc[200], lm[200], le[200];
	const char *keep[] = {lc, lm, le, NULL};
	FILE       *f;
	int         i;

	(void)state;
	snprintf(dir, sizeof(dir), "%s/undo", replica.dir);
	assert_int_equal(fbt_image_mutate(disk, 40, 97), 40);
	assert_int_equal(R("failback", "web", "--rp", p1, "--wait"), 0);
	assert_non_null(strstr(out, "Completed (7)"));
	for (i = 0; i < 500 && entries(dir) > 0; i++)
		usleep(20000);
	assert_int_equal(entries(dir), 0);

	snprintf(done, sizeof(done), "%s/01234567-89ab-cdef-0123-456789abcdef.done", dir);
	snprintf(other, sizeof(other), "%s/notes.done", dir);
	for (i = 0; i < 2; i++) {
		assert_non_null(f = fopen(i ? other : done, "w"));
		fputs("old", f);
		fclose(f);
	}
	snprintf(lc, sizeof(lc), "--listen-control=%s", replica.control);
	snprintf(lm, sizeof(lm), "--listen-monitor=%s", replica.monitor);
	snprintf(le, sizeof(le), "--listen-events=%s", replica.events);
	assert_int_equal(fbt_agent_stop(&replica, SIGTERM, 10000), 0);
	assert_int_equal(start_replica(keep), 0);
	assert_int_equal(access(done, F_OK), -1);
	assert_int_equal(access(other, F_OK), 0);
	unlink(other);
}

static void
primary_killed_mid_transfer_three_times_job_completes(void **state)
{
	char        job[40], want[65], got[65], dd[700], lr[200], lc[200];
	const char *extra[] = {dd, lr, lc, NULL};

	(void)state;
	assert_int_equal(fbt_image_mutate(disk, 800, 92), 800);
	assert_int_equal(R("failback", "web", "--rp", p1), 0);
	grab("InstanceID=\"", job, sizeof(job));
	wait_transferring(job);
	snprintf(dd, sizeof(dd), "--data-dir=%s", primary.dir);
	snprintf(lr, sizeof(lr), "--listen-resync=%s", primary.resync);
	snprintf(lc, sizeof(lc), "--listen-control=%s", primary.control);
	for (int k = 0; k < 3; k++) {
		assert_int_equal(fbt_agent_stop(&primary, SIGKILL, 5000), 128 + SIGKILL);
		assert_int_equal(start_primary(extra), 0);
		usleep(300000 * (useconds_t)(k + 1));
	}
	wait_job(job, 0);
	sha(p1img, want);
	sha(disk, got);
	assert_string_equal(got, want);
}

/* XORs byte 100 of every pack of the primary: inside the first record's
 * data (headers are 48 bytes). Doing it twice restores the packs. */
static void
flip_primary_packs(void)
{
	char path[800];

	for (int p = 1; p < 64; p++) {
		uint8_t b;
		int     fd;

		snprintf(path, sizeof(path), "%s/blocks/pack-%06d", primary.dir, p);
		if ((fd = open(path, O_RDWR)) < 0)
			continue;
		if (pread(fd, &b, 1, 100) == 1) {
			b ^= 0x5a;
			assert_int_equal(pwrite(fd, &b, 1, 100), 1);
		}
		close(fd);
	}
}

static void
corrupt_block_on_the_primary_fails_the_job_naming_it_and_stays_resumable(void **state)
{
	/* the job names the block, never the primary's pack files */
	char job[40], want[65], got[65];

	(void)state;
	/* A new point the replica never had: its blocks must come from the primary,
	 * and the first of them sits first in the primary's newest pack. */
	assert_int_equal(fbt_image_mutate(img, 30, 44), 30);
	assert_int_equal(P("primary-rp", "create", "web"), 0);
	flip_primary_packs();
	assert_int_equal(R("failback", "web"), 0);
	grab("InstanceID=\"", job, sizeof(job));
	wait_job(job, 1);
	assert_non_null(strstr(out, "Exception (10)"));
	assert_non_null(strstr(out, "cannot be read on the primary"));
	assert_non_null(strstr(out, "disk web.img blocks"));
	/* the primary's own paths stay in the primary's log */
	assert_null(strstr(out, primary.dir));
	assert_null(strstr(out, "pack-"));
	assert_true(fbt_file_contains(primary.log, "fails verification"));
	assert_int_equal(R("vm", "show", "web"), 0);
	assert_non_null(strstr(out, "Critical (8)"));
	/* Repaired, the next call completes and the disk is exactly the point. */
	flip_primary_packs();
	assert_int_equal(R("failback", "web", "--wait"), 0);
	sha(img, want);
	sha(disk, got);
	assert_string_equal(got, want);
}

/* RecoveryHistory 2 would drop a point at the second point after it; a
 * replica pulling it keeps it (a lease renewed by every call), so the job
 * completes. The point is taken here, not P1, whose lease from earlier
 * pulls a slow (sanitizer) run may have outlived. */
static void
a_point_being_pulled_is_kept_past_recovery_history(void **state)
{
	char job[40], want[65], got[65], pa[40];

	(void)state;
	assert_int_equal(fbt_image_mutate(img, 300, 99), 300);
	assert_int_equal(P("--json", "primary-rp", "create", "web"), 0);
	grab("\"point\":{\"id\":\"", pa, sizeof(pa));
	sha(img, want);
	if (R("failback", "web", "--rp", pa) != 0)
		fail_msg("failback to %s: %s", pa, out);
	grab("InstanceID=\"", job, sizeof(job));
	/* the pull holds the point from its Negotiate on (and a lease its calls
	 * renewed holds it for minutes after, should the job be done already) */
	(void)wait_transferring_or_end(job);
	for (int i = 0; i < 3; i++)
		assert_int_equal(P("primary-rp", "create", "web"), 0);
	wait_job(job, 0);
	assert_non_null(strstr(out, "Completed (7)"));
	sha(disk, got);
	assert_string_equal(got, want);
	assert_true(fbt_file_contains(primary.log, "FB4025"));
	assert_int_equal(P("primary-rp", "list", "web"), 0);
	assert_non_null(strstr(out, pa));
	/* The tests after this one fail back to "P1": make it the newest point
	 * (RecoveryHistory keeps it), of the image as it is now. */
	assert_int_equal(P("--json", "primary-rp", "create", "web"), 0);
	grab("\"point\":{\"id\":\"", p1, sizeof(p1));
	{
		char *const cp[] = {(char *)"/bin/cp", (char *)"--sparse=always", img, p1img, NULL};

		assert_int_equal(fbt_run(cp, out, sizeof(out)), 0);
	}
}

/*
 * A TCP proxy in front of the primary's resync listener that resets the
 * first connection in the middle of its TLS handshake (after the
 * ClientHello, with SO_LINGER 0) and forwards every later one.
 */
/* A TCP proxy in front of the primary's agents' listener: resets the first
 * connection during its handshake (reset_first), or sends the first to
 * target_port and every later one to other_port (other_port != 0). */
struct proxy {
	int lfd, target_port, other_port, reset_first;
	int accepted; /* atomic: read by the test */
};

static void *
pump_thread(void *arg)
{
	int *fds = arg;
	char buf[65536];

	for (;;) {
		struct pollfd p[2] = {{fds[0], POLLIN, 0}, {fds[1], POLLIN, 0}};
		ssize_t       n;

		if (poll(p, 2, 30000) <= 0)
			break;
		for (int i = 0; i < 2; i++)
			if (p[i].revents & (POLLIN | POLLHUP | POLLERR)) {
				if ((n = read(fds[i], buf, sizeof(buf))) <= 0 ||
				    write(fds[1 - i], buf, (size_t)n) != n)
					goto out;
			}
	}
out:
	close(fds[0]);
	close(fds[1]);
	free(fds);
	return NULL;
}

static void *
proxy_thread(void *arg)
{
	struct proxy *px = arg;

	for (;;) {
		struct sockaddr_in to = {0};
		int                c  = accept(px->lfd, NULL, NULL), *fds;
		pthread_t          t;

		int                nth;

		if (c < 0)
			return NULL;
		nth = __atomic_fetch_add(&px->accepted, 1, __ATOMIC_SEQ_CST);
		if (nth == 0 && px->reset_first) {
			struct linger l = {1, 0};
			char          hello[512];

			(void)!read(c, hello, sizeof(hello)); /* the ClientHello */
			setsockopt(c, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
			close(c); /* RST */
			continue;
		}
		fds    = malloc(2 * sizeof(int));
		fds[0] = c;
		fds[1] = socket(AF_INET, SOCK_STREAM, 0);
		to.sin_family      = AF_INET;
		to.sin_port = htons((uint16_t)(nth > 0 && px->other_port ? px->other_port
		                                                         : px->target_port));
		to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (connect(fds[1], (struct sockaddr *)&to, sizeof(to)) != 0) {
			close(fds[0]);
			close(fds[1]);
			free(fds);
			continue;
		}
		pthread_create(&t, NULL, pump_thread, fds);
		pthread_detach(t);
	}
}

/* Starts px in front of the primary and writes settings (name under the
 * scratch directory, into path) that send the failback through it, with
 * pin as CertificateThumbPrint when given. */
static void
proxy_start(struct proxy *px, const char *name, const char *pinned, char *path, size_t len)
{
	struct sockaddr_in a    = {0};
	socklen_t          alen = sizeof(a);
	pthread_t          t;
	FILE              *f;

	px->target_port   = atoi(strrchr(primary.resync, ':') + 1);
	px->lfd           = socket(AF_INET, SOCK_STREAM, 0);
	a.sin_family      = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(px->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(px->lfd, 16), 0);
	assert_int_equal(getsockname(px->lfd, (struct sockaddr *)&a, &alen), 0);
	assert_int_equal(pthread_create(&t, NULL, proxy_thread, px), 0);
	pthread_detach(t);
	snprintf(path, len, "%s/%s", fbt_root(), name);
	f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "<INSTANCE CLASSNAME=\"Msvm_ReplicationSettingData\"><PROPERTY "
	           "NAME=\"PrimaryConnectionPoint\" TYPE=\"string\"><VALUE>127.0.0.1</VALUE>"
	           "</PROPERTY><PROPERTY NAME=\"RecoveryServerPortNumber\" TYPE=\"uint16\"><VALUE>%d"
	           "</VALUE></PROPERTY>",
	        ntohs(a.sin_port));
	if (pinned != NULL)
		fprintf(f, "<PROPERTY NAME=\"CertificateThumbPrint\" TYPE=\"string\"><VALUE>%s"
		           "</VALUE></PROPERTY>",
		        pinned);
	fputs("</INSTANCE>", f);
	fclose(f);
}

/* The pin binds every connection of the job: a proxy that sends the first
 * connection (the pin's check) to the real primary and the rest to an
 * impostor (the primary's name, from the same CA, another key) gets the
 * job refused, with the disk untouched. */
static void
a_pin_binds_every_connection_not_just_the_first(void **state)
{
	static struct proxy px;
	static fbt_agent    impostor;
	char                path[700], job[40], before[65], after[65];

	(void)state;
	assert_int_equal(fbt_agent_start(&impostor, "primary", "impostor-primary", NULL), 0);
	px.other_port = atoi(strrchr(impostor.resync, ':') + 1);
	proxy_start(&px, "split.xml", pin, path, sizeof(path));
	sha(disk, before);
	assert_int_equal(R("failback", "web", "--rp", p1, "--settings", path), 0);
	grab("InstanceID=\"", job, sizeof(job));
	wait_job(job, 1);
	assert_non_null(strstr(out, "Access Denied (32769)"));
	assert_non_null(strstr(out, "pinned CertificateThumbPrint"));
	assert_true(__atomic_load_n(&px.accepted, __ATOMIC_SEQ_CST) >= 2);
	sha(disk, after);
	assert_string_equal(after, before);
	assert_int_equal(fbt_agent_stop(&impostor, SIGTERM, 10000), 0);
}

/* DESIGN §9: a connection cut during the TLS handshake is transient. */
static void
a_reset_during_the_tls_handshake_is_retried_not_access_denied(void **state)
{
	static struct proxy px;
	char                path[700], job[40], want[65], got[65];

	(void)state;
	px.reset_first = 1;
	proxy_start(&px, "proxy.xml", NULL, path, sizeof(path));
	assert_int_equal(fbt_image_mutate(img, 20, 45), 20);
	assert_int_equal(P("primary-rp", "create", "web"), 0);
	assert_int_equal(R("failback", "web", "--settings", path), 0);
	grab("InstanceID=\"", job, sizeof(job));
	wait_job(job, 0);
	assert_non_null(strstr(out, "Completed (7)"));
	assert_true(__atomic_load_n(&px.accepted, __ATOMIC_SEQ_CST) >= 2);
	/* retried (NNG reports the reset as a shut or a reset connection) */
	assert_true(fbt_file_contains(replica.log, "(attempt 1)"));
	assert_false(fbt_file_contains(replica.log, "Access Denied"));
	sha(img, want);
	sha(disk, got);
	assert_string_equal(got, want);
}

/* Text from an agent never drives the operator's terminal. */
static void
agent_text_is_printed_with_control_characters_escaped(void **state)
{
	(void)state;
	assert_int_equal(R("vm", "show", "\x1b[2Jweb"), 1);
	assert_non_null(strstr(out, "Invalid parameter (32773)"));
	assert_non_null(strstr(out, "\\x1b[2Jweb"));
	assert_null(strchr(out, '\x1b'));
}

/* The job holds the disk: a process holding a lock on it (a hypervisor
 * still running the VM) makes the failback fail before it writes. */
static void
a_disk_locked_by_another_process_is_refused(void **state)
{
	struct flock l = {.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 100, .l_len = 1};
	char         job[40], before[80], after[80];
	int          fd;

	(void)state;
	assert_int_equal(R("vm", "show", "web"), 0);
	vm_state(before, sizeof(before));
	assert_true((fd = open(disk, O_RDONLY)) >= 0);
	assert_int_equal(fcntl(fd, F_OFD_SETLK, &l), 0); /* as QEMU locks its images */
	assert_int_equal(R("failback", "web", "--rp", p1), 0);
	grab("InstanceID=\"", job, sizeof(job));
	wait_job(job, 1);
	assert_non_null(strstr(out, "System is in use (32774)"));
	assert_non_null(strstr(out, "is the VM still running?"));
	close(fd);
	assert_int_equal(R("vm", "show", "web"), 0);
	vm_state(after, sizeof(after));
	assert_string_equal(after, before);
}

/* Whether a process holds a lock on the disk (the job, while it runs). */
static int
disk_locked(void)
{
	struct flock l = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
	int          fd = open(disk, O_RDWR);

	assert_true(fd >= 0);
	assert_int_equal(fcntl(fd, F_OFD_GETLK, &l), 0);
	close(fd);
	return l.l_type != F_UNLCK;
}

/* The number after "field": in out (a `--json` answer), or ~0. */
static unsigned long long
json_number(const char *field)
{
	char        key[64];
	const char *p;

	snprintf(key, sizeof(key), "\"%s\":", field);
	return (p = strstr(out, key)) == NULL ? ~0ull : strtoull(p + strlen(key), NULL, 10);
}

/* A writer that ignores the lock changes blocks mid-job: the job never ends
 * Completed with a disk that is not the point (verify reads it all). The
 * write counts as before the verification when, after it, the job still
 * holds the lock and reports at most half its transfer done (its reports
 * trail it by a moment, not by half of 800 blocks). A write after the
 * verification read its block cannot be seen by that job; the next call
 * repairs it. */
static void
a_write_to_the_disk_during_the_job_never_completes_wrong(void **state)
{
	char job[40], want[65], got[65];
	int  before = 0, early;

	(void)state;
	assert_int_equal(fbt_image_mutate(disk, 800, 98), 800); /* ~50 MiB to pull */
	assert_int_equal(R("failback", "web", "--rp", p1), 0);
	grab("InstanceID=\"", job, sizeof(job));
	for (int i = 0; i < 2000 && !before; i++)
		if (!(before = disk_locked()))
			usleep(5000);
	assert_int_equal(fbt_image_mutate(disk, 6, 99), 6);
	early = before && disk_locked();
	assert_int_equal(R("--json", "job", "show", job), 0);
	early = early && json_number("job_state") == 4 && strstr(out, "\"phase\":\"Verifying\"") == NULL &&
	        json_number("blocks_done") * 2 <= json_number("blocks_total");
	(void)R("job", "wait", job); /* Completed, or failed at verify */
	assert_int_equal(R("job", "show", job), 0);
	sha(p1img, want);
	sha(disk, got);
	if (early && strstr(out, "Completed (7)") != NULL)
		assert_string_equal(got, want);
	else if (early)
		assert_true(fbt_file_contains(replica.log, "does not match recovery point"));
	/* and a new call repairs it */
	assert_int_equal(R("failback", "web", "--rp", p1, "--wait"), 0);
	sha(disk, got);
	assert_string_equal(got, want);
}

/* A job seen ended has let go of its VM: a client that reacts to the end
 * event by calling again at once, on a connection it already has, is
 * accepted every time (an end is announced only once it is durable). */
static void
a_job_seen_ended_has_freed_its_vm_for_the_next_call(void **state)
{
	Failback__InitiateFailbackRequest in = FAILBACK__INITIATE_FAILBACK_REQUEST__INIT;
	fb_events_sub                    *sub;
	fb_rpc_client                    *cli;
	fb_err                            err = {0};
	char                              want[65], got[65];

	(void)state;
	assert_int_equal(fbt_subscribe(&sub, replica.events, "monitor", RNAME, &err), 0);
	assert_int_equal(fbt_client(&cli, replica.control, "operator", RNAME, &err), 0);
	in.vm                        = (char *)"web";
	in.recovery_point_identifier = p1;
	for (int round = 0; round < 12; round++) {
		Failback__JobStartedResponse *o = NULL;
		char                          job[40];
		int                           end;

		if (fb_rpc_client_call(cli, &failback__replication_service__descriptor,
		                       "InitiateFailback", &in.base, (ProtobufCMessage **)&o, 10000,
		                       &err) != FB_RV_JOB_STARTED)
			fail_msg("round %d: refused right after the last job's end: %s (%u)", round,
			         err.msg, err.rv);
		snprintf(job, sizeof(job), "%.36s", strchr(o->job, '"') + 1);
		protobuf_c_message_free_unpacked(&o->base, NULL);
		if ((end = fbt_job_end(sub, job, 600)) != 7)
			fail_msg("round %d: job %s ended in state %d", round, job, end);
	}
	fb_rpc_client_abandon(cli);
	fb_events_sub_abandon(sub);
	sha(p1img, want);
	sha(disk, got);
	assert_string_equal(got, want);
}

/* Negotiate for web with a proof as `as` (its certificate and key), made
 * for primary_name; fills ng. */
static void
signed_negotiate(Failback__NegotiateRequest *ng, fb_proof *pf, const char *vm, const char *as,
                 const char *primary_name)
{
	char   cert[64], key[64];
	fb_err err = {0};

	snprintf(cert, sizeof(cert), "%s.pem", as);
	snprintf(key, sizeof(key), "%s.key", as);
	assert_int_equal(fb_proof_sign(fbt_pki_file(cert), fbt_pki_file(key), vm, primary_name,
	                               (uint64_t)fb_clock_unix_ms(), pf, &err),
	                 FB_RV_OK);
	ng->vm                 = (char *)vm;
	ng->proof_certificate  = (ProtobufCBinaryData){pf->cert_len, pf->cert};
	ng->proof_primary_name = (char *)primary_name;
	ng->proof_time_unix_ms = pf->time_ms;
	ng->proof_nonce        = (ProtobufCBinaryData){sizeof(pf->nonce), pf->nonce};
	ng->proof_signature    = (ProtobufCBinaryData){pf->sig_len, pf->sig};
}

static uint32_t
resync_call(fb_rpc_client *cli, const char *method, const ProtobufCMessage *in,
            ProtobufCMessage **o, fb_err *err)
{
	*o = NULL;
	return fb_rpc_client_call(cli, &failback__resync_source__descriptor, method, in, o, 20000,
	                          err);
}

/* A VM whose relationship names its receiving side is served to that
 * replica agent only: another agents-CA certificate (its own proof, or
 * none), a proof made for another primary or used twice, and tree or block
 * reads without the session are all refused. */
static void
a_vm_is_served_only_to_the_replica_agent_it_names(void **state)
{
	static fb_proof             pf;
	Failback__NegotiateRequest  ng = FAILBACK__NEGOTIATE_REQUEST__INIT;
	Failback__ReadBlocksRequest rb = FAILBACK__READ_BLOCKS_REQUEST__INIT;
	Failback__NegotiateResponse *nr;
	ProtobufCMessage            *o;
	fb_rpc_client               *cli;
	fb_err                       err = {0};
	uint64_t                     block0 = 0;

	(void)state;
	/* the connection is as another agent; only the proof decides */
	assert_int_equal(fbt_client(&cli, primary.resync, "wrongname-replica", PNAME, &err), 0);
	ng.vm = (char *)"web";
	assert_int_equal(resync_call(cli, "Negotiate", &ng.base, &o, &err), FB_RV_ACCESS_DENIED);
	assert_non_null(strstr(err.msg, "served only to replica agent " RNAME));
	signed_negotiate(&ng, &pf, "web", "wrongname-replica", PNAME);
	assert_int_equal(resync_call(cli, "Negotiate", &ng.base, &o, &err), FB_RV_ACCESS_DENIED);
	assert_non_null(strstr(err.msg, "not issued to " RNAME));
	signed_negotiate(&ng, &pf, "web", "replica", "other.failback.test");
	assert_int_equal(resync_call(cli, "Negotiate", &ng.base, &o, &err), FB_RV_ACCESS_DENIED);
	assert_non_null(strstr(err.msg, "another primary"));
	signed_negotiate(&ng, &pf, "web", "replica", PNAME);
	assert_int_equal(resync_call(cli, "Negotiate", &ng.base, &o, &err), FB_RV_OK);
	nr = (Failback__NegotiateResponse *)o;
	assert_int_equal(nr->session_token.len, FB_PROOF_TOKEN_LEN);
	rb.recovery_point_identifier = nr->target->id;
	rb.disk                      = nr->target->disks[0]->name;
	rb.blocks                    = &block0;
	rb.n_blocks                  = 1;
	assert_int_equal(resync_call(cli, "ReadBlocks", &rb.base, &o, &err), FB_RV_ACCESS_DENIED);
	assert_non_null(strstr(err.msg, "Negotiate first"));
	rb.session_token = nr->session_token;
	assert_int_equal(resync_call(cli, "ReadBlocks", &rb.base, &o, &err), FB_RV_OK);
	protobuf_c_message_free_unpacked(o, NULL);
	rb.session_token.data[9] ^= 1; /* forged */
	assert_int_equal(resync_call(cli, "ReadBlocks", &rb.base, &o, &err), FB_RV_ACCESS_DENIED);
	/* the same proof again: a replay */
	assert_int_equal(resync_call(cli, "Negotiate", &ng.base, &o, &err), FB_RV_ACCESS_DENIED);
	assert_non_null(strstr(err.msg, "replay"));
	protobuf_c_message_free_unpacked(&nr->base, NULL);
	fb_rpc_client_abandon(cli);
	/* a name that is no DNS name is refused and adds nothing */
	assert_int_equal(P("primary-vm", "add", "web2", img, "--replica-name", "bad name"), 1);
	assert_non_null(strstr(out, "Invalid parameter (32773)"));
	assert_int_equal(P("primary-vm", "list"), 0);
	assert_null(strstr(out, "web2"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(replica_holds_the_committed_point_and_its_disk),
	    cmocka_unit_test(failback_to_p1_makes_the_disk_identical_to_p1),
	    cmocka_unit_test(a_completed_failback_leaves_no_undo_log),
	    cmocka_unit_test(synchronous_checks_return_hyperv_codes_and_change_nothing),
	    cmocka_unit_test(failback_of_a_vm_that_is_not_a_recovery_vm_is_invalid_state),
	    cmocka_unit_test(cancel_mid_transfer_restores_the_disk_byte_for_byte),
	    cmocka_unit_test(metrics_follow_a_failback_and_parse),
	    cmocka_unit_test(progress_fits_the_terminal_and_ends_with_a_summary),
	    cmocka_unit_test(unknown_point_fails_the_job_with_file_not_found),
	    cmocka_unit_test(unreachable_primary_fails_with_32777_and_a_second_call_is_in_use),
	    cmocka_unit_test(wrong_certificate_pin_fails_the_job),
	    cmocka_unit_test(replica_agent_killed_mid_transfer_resumes_and_completes),
	    cmocka_unit_test(primary_killed_mid_transfer_three_times_job_completes),
	    cmocka_unit_test(settings_naming_a_disk_the_vm_lacks_are_invalid),
	    cmocka_unit_test(corrupt_block_on_the_primary_fails_the_job_naming_it_and_stays_resumable),
	    cmocka_unit_test(a_point_being_pulled_is_kept_past_recovery_history),
	    cmocka_unit_test(a_reset_during_the_tls_handshake_is_retried_not_access_denied),
	    cmocka_unit_test(a_pin_binds_every_connection_not_just_the_first),
	    cmocka_unit_test(agent_text_is_printed_with_control_characters_escaped),
	    cmocka_unit_test(a_disk_locked_by_another_process_is_refused),
	    cmocka_unit_test(a_write_to_the_disk_during_the_job_never_completes_wrong),
	    cmocka_unit_test(a_job_seen_ended_has_freed_its_vm_for_the_next_call),
	    cmocka_unit_test(a_vm_is_served_only_to_the_replica_agent_it_names),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
