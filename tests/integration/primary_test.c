/*
 * primary_test.c - the primary agent's recovery points through failbackctl,
 * as an operator would use them: register a VM with a real image, take
 * points as it changes, list, prune by RecoveryHistory, remove, and find
 * everything still there after a restart.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "clients.h"
#include "harness.h"
#include "primary.pb-c.h"
#include "image.h"

static fbt_agent primary;
static char      out[1 << 16], img[600];
/* Points are read at 128 MiB/s at most, so a cancel or a kill lands while
 * the 768 MiB disk below is being scanned, however fast the build. */
static const char *scan_rate[] = {"--max-scan-rate=128", NULL};

#define PNAME "primary.failback.test"

static int
group_setup(void **state)
{
	(void)state;
	if (fbt_setup() != 0)
		return -1;
	snprintf(img, sizeof(img), "%s/web01.img", fbt_root());
	if (fbt_image_make(img, 32u << 20, 11) != 0)
		return -1;
	return fbt_agent_start(&primary, "primary", "primary", scan_rate);
}

static int
group_teardown(void **state)
{
	(void)state;
	fbt_teardown(); /* stops the agent too */
	return 0;
}

static int
count(const char *hay, const char *needle)
{
	int n = 0;

	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

static void
operator_registers_vm_with_a_real_image(void **state)
{
	(void)state;
	assert_int_equal(fbt_ctl(out, sizeof(out), primary.control, "operator", PNAME,
	                         "primary-vm", "add", "web01", img, "--history", "1", NULL),
	                 0);
	assert_non_null(strstr(out, "name: web01"));
	assert_non_null(strstr(out, "size_bytes: 33554432"));
	assert_non_null(strstr(out, "recovery_history: 1"));
	/* The same name twice is refused and changes nothing. */
	assert_int_equal(fbt_ctl(out, sizeof(out), primary.control, "operator", PNAME,
	                         "primary-vm", "add", "web01", img, NULL),
	                 1);
	assert_non_null(strstr(out, "Invalid parameter (32773)"));
	assert_int_equal(fbt_ctl(out, sizeof(out), primary.monitor, "monitor", PNAME, "--json",
	                         "primary-vm", "list", NULL),
	                 0);
	assert_int_equal(count(out, "\"name\":\"web01\""), 1);
}

static void
bad_disk_paths_are_invalid_or_not_found(void **state)
{
	(void)state;
	assert_int_equal(fbt_ctl(out, sizeof(out), primary.control, "operator", PNAME,
	                         "primary-vm", "add", "x", "relative.img", NULL),
	                 1);
	assert_non_null(strstr(out, "Invalid parameter (32773)"));
	assert_int_equal(fbt_ctl(out, sizeof(out), primary.control, "operator", PNAME,
	                         "primary-vm", "add", "x", "/nonexistent/x.img", NULL),
	                 1);
	assert_non_null(strstr(out, "File not found (32779)"));
}

static void
points_are_taken_pruned_by_history_and_removed(void **state)
{
	char id[40] = "";

	(void)state;
	for (int i = 0; i < 3; i++) {
		assert_int_equal(fbt_image_mutate(img, 8, 200 + (uint32_t)i), 8);
		assert_int_equal(fbt_ctl(out, sizeof(out), primary.control, "operator", PNAME,
		                         "primary-rp", "create", "web01", NULL),
		                 0);
		assert_non_null(strstr(out, "hash_algorithm: sha256"));
		assert_non_null(strstr(out, "block_count: 512"));
	}
	/* RecoveryHistory 1: the newest point plus one older. */
	assert_int_equal(fbt_ctl(out, sizeof(out), primary.monitor, "monitor", PNAME, "--json",
	                         "primary-rp", "list", "web01", NULL),
	                 0);
	assert_int_equal(count(out, "\"hash_algorithm\""), 2);
	sscanf(strstr(out, "\"id\":\"") + 6, "%36s", id);
	assert_int_equal(strlen(id), 36);
	assert_int_equal(fbt_ctl(out, sizeof(out), primary.control, "operator", PNAME,
	                         "primary-rp", "remove", "web01", id, NULL),
	                 0);
	assert_int_equal(fbt_ctl(out, sizeof(out), primary.control, "operator", PNAME,
	                         "primary-rp", "remove", "web01", id, NULL),
	                 1);
	assert_non_null(strstr(out, "File not found (32779)"));
	assert_int_equal(fbt_ctl(out, sizeof(out), primary.monitor, "monitor", PNAME, "--json",
	                         "primary-rp", "list", "web01", NULL),
	                 0);
	assert_int_equal(count(out, "\"hash_algorithm\""), 1);
	assert_null(strstr(out, id));
}

static void
monitor_may_list_but_not_take_points(void **state)
{
	(void)state;
	assert_int_equal(fbt_ctl(out, sizeof(out), primary.monitor, "monitor", PNAME,
	                         "primary-rp", "create", "web01", NULL),
	                 1);
	assert_non_null(strstr(out, "Access Denied (32769)"));
}

static void
unknown_vm_is_file_not_found(void **state)
{
	(void)state;
	assert_int_equal(fbt_ctl(out, sizeof(out), primary.control, "operator", PNAME,
	                         "primary-rp", "create", "nosuch", NULL),
	                 1);
	assert_non_null(strstr(out, "File not found (32779)"));
	assert_int_equal(fbt_ctl(out, sizeof(out), primary.control, "operator", PNAME,
	                         "primary-rp", "list", "nosuch", NULL),
	                 1);
	assert_non_null(strstr(out, "File not found (32779)"));
}

static void
points_survive_an_agent_restart(void **state)
{
	char        dd[700];
	const char *extra[] = {dd, scan_rate[0], NULL};
	char        before[1 << 12];

	(void)state;
	assert_int_equal(fbt_ctl(before, sizeof(before), primary.monitor, "monitor", PNAME,
	                         "--json", "primary-rp", "list", "web01", NULL),
	                 0);
	assert_int_equal(fbt_agent_stop(&primary, SIGTERM, 5000), 0);
	snprintf(dd, sizeof(dd), "--data-dir=%s", primary.dir);
	assert_int_equal(fbt_agent_start(&primary, "primary", "primary", extra), 0);
	assert_int_equal(fbt_ctl(out, sizeof(out), primary.monitor, "monitor", PNAME, "--json",
	                         "primary-rp", "list", "web01", NULL),
	                 0);
	assert_string_equal(out, before);
}

#define OP(...) FBT_P(out, primary, __VA_ARGS__)

/* The job reference in out (InstanceID="<GUID>"). */
static void
job_ref(char *job)
{
	const char *p = strstr(out, "InstanceID=\"");

	assert_non_null(p);
	snprintf(job, 37, "%.36s", p + 12);
}

/* Polls a point job until it is scanning with bytes done, or has ended. */
static void
wait_scanning(const char *job)
{
	for (int i = 0; i < 400; i++) {
		assert_int_equal(OP("--json", "primary-rp", "job", job), 0);
		if ((strstr(out, "\"phase\":\"Scanning\"") != NULL &&
		     strstr(out, "\"bytes_done\":0,") == NULL) ||
		    strstr(out, "\"job_state\":7") != NULL)
			return;
		usleep(20000);
	}
	fail_msg("point job %s never scanned: %s", job, out);
}

/* Taking a point is a job: started at once (4096), followed with GetPointJob
 * (JobType 70, progress in bytes, the point once completed), cancellable
 * with nothing kept, and a job a crash interrupted is failed at restart. */
static void
taking_a_point_is_a_job_with_progress_and_cancel(void **state)
{
	char big[600], job[40], dd[700];
	int  points;

	(void)state;
	snprintf(big, sizeof(big), "%s/big.img", fbt_root());
	assert_int_equal(fbt_image_make(big, 768u << 20, 12), 0);
	assert_int_equal(OP("primary-vm", "add", "big", big), 0);
	assert_int_equal(OP("primary-rp", "create", "big", "--no-wait"), 0);
	assert_non_null(strstr(out, "Method Parameters Checked - Job Started (4096)"));
	job_ref(job);
	assert_int_equal(OP("primary-rp", "create", "big", "--no-wait"), 1); /* one at a time */
	assert_non_null(strstr(out, "System is in use (32774)"));
	wait_scanning(job);
	assert_int_equal(OP("primary-rp", "cancel", job), 0);
	for (int i = 0; i < 400; i++) {
		assert_int_equal(OP("primary-rp", "job", job), 0);
		if (strstr(out, "job_state: Terminated (8)") != NULL)
			break;
		usleep(20000);
	}
	assert_non_null(strstr(out, "job_state: Terminated (8)"));
	assert_non_null(strstr(out, "job_type: 70"));
	assert_int_equal(OP("--json", "primary-rp", "list", "big"), 0);
	assert_int_equal(count(out, "\"hash_algorithm\""), 0); /* nothing kept */
	assert_int_equal(OP("primary-rp", "cancel", job), 1);    /* not running any more */
	assert_non_null(strstr(out, "Invalid state for this operation (32775)"));

	/* Waiting (the default) ends with the point. */
	assert_int_equal(OP("--json", "primary-rp", "create", "big"), 0);
	assert_non_null(strstr(out, "\"job_state\":7"));
	assert_non_null(strstr(out, "\"point\":{\"id\":\""));
	assert_non_null(strstr(out, "\"percent_complete\":100"));

	/* The agent dies while a point is being taken. */
	assert_int_equal(fbt_image_mutate(big, 2000, 13), 2000);
	assert_int_equal(OP("primary-rp", "create", "big", "--no-wait"), 0);
	job_ref(job);
	wait_scanning(job);
	assert_int_equal(fbt_agent_stop(&primary, SIGKILL, 5000), 128 + SIGKILL);
	snprintf(dd, sizeof(dd), "--data-dir=%s", primary.dir);
	assert_int_equal(fbt_agent_start(&primary, "primary", "primary",
	                                 (const char *[]){dd, scan_rate[0], NULL}),
	                 0);
	assert_int_equal(OP("primary-rp", "job", job), 0);
	if (strstr(out, "job_state: Completed (7)") == NULL) {
		assert_non_null(strstr(out, "job_state: Exception (10)"));
		assert_non_null(strstr(out, "interrupted by a restart"));
		assert_true(fbt_file_contains(primary.log, "FB4033"));
	}
	assert_int_equal(OP("--json", "primary-rp", "list", "big"), 0);
	points = count(out, "\"hash_algorithm\"");
	assert_true(points == 1 || points == 2);
}

/* A point job seen ended has left its VM free: the next point, asked for
 * the moment GetPointJob shows the end, is taken, every time. */
static void
a_point_job_seen_ended_lets_the_next_one_start_at_once(void **state)
{
	Failback__CreateRecoveryPointRequest in = FAILBACK__CREATE_RECOVERY_POINT_REQUEST__INIT;
	fb_rpc_client                       *cli;
	fb_err                               err = {0};

	(void)state;
	assert_int_equal(fbt_client(&cli, primary.control, "operator", PNAME, &err), 0);
	in.vm = (char *)"web01";
	for (int round = 0; round < 12; round++) {
		Failback__CreateRecoveryPointResponse *o = NULL;
		char                                   job[40];
		int                                    end = 0;

		if (fb_rpc_client_call(cli, &failback__primary_service__descriptor,
		                       "CreateRecoveryPoint", &in.base, (ProtobufCMessage **)&o, 10000,
		                       &err) != FB_RV_JOB_STARTED)
			fail_msg("round %d: refused right after the last job's end: %s (%u)", round,
			         err.msg, err.rv);
		snprintf(job, sizeof(job), "%.36s", strchr(o->job, '"') + 1);
		protobuf_c_message_free_unpacked(&o->base, NULL);
		/* followed as `primary-rp create` does, as closely as a client can */
		for (int i = 0; i < 200000 && end < 7; i++) {
			Failback__PointJobRef        ref = FAILBACK__POINT_JOB_REF__INIT;
			Failback__GetPointJobResponse *g = NULL;

			ref.job = job;
			if (fb_rpc_client_call(cli, &failback__primary_service__descriptor, "GetPointJob",
			                       &ref.base, (ProtobufCMessage **)&g, 10000, &err) != 0)
				fail_msg("round %d: GetPointJob: %s", round, err.msg);
			end = (int)g->job->job_state;
			protobuf_c_message_free_unpacked(&g->base, NULL);
		}
		if (end != 7)
			fail_msg("round %d: point job %s ended in state %d", round, job, end);
	}
	fb_rpc_client_abandon(cli);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(operator_registers_vm_with_a_real_image),
	    cmocka_unit_test(bad_disk_paths_are_invalid_or_not_found),
	    cmocka_unit_test(points_are_taken_pruned_by_history_and_removed),
	    cmocka_unit_test(monitor_may_list_but_not_take_points),
	    cmocka_unit_test(unknown_vm_is_file_not_found),
	    cmocka_unit_test(points_survive_an_agent_restart),
	    cmocka_unit_test(taking_a_point_is_a_job_with_progress_and_cancel),
	    cmocka_unit_test(a_point_job_seen_ended_lets_the_next_one_start_at_once),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
