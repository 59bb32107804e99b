/*
 * cli_test.c - failbackctl as operators and scripts use it, against real
 * agents on loopback: VM names as Hyper-V allows them (spaces, any
 * script, a leading '-'), named by name, GUID or CIM object path; lists as
 * tables with --json carrying the same data; one JSON envelope for every
 * outcome, checked by a real JSON parser (jq); GNU option parsing;
 * ReplicationSettingData files in UTF-16 with a BOM; unregistering a VM on
 * both agents; and events that fail instead of hanging.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "image.h"

static fbt_agent primary, replica;
static char      out[1 << 17], img[700], img2[700];

/* A name Hyper-V takes: spaces, an en dash, an umlaut. */
#define VM    "SQL 2019 \xe2\x80\x93 K\xc3\xb6ln"
#define DASH  "-dash vm"
#define PNAME "primary.failback.test"
#define RNAME "replica.failback.test"

#define P(...) FBT_P(out, primary, __VA_ARGS__)
#define R(...) FBT_R(out, replica, __VA_ARGS__)

/* Runs failbackctl --json with args against url (stdout only) and has jq
 * check that every line is a JSON envelope: returns failbackctl's exit
 * status, or 99 when jq refused the output; out holds the output. */
static int
ctl_json(const char *url, const char *sname, const char *const *args)
{
	char        file[700], script[3000], ca[700], cert[700], key[700];
	const char *argv[48];
	int         n = 0;

	snprintf(file, sizeof(file), "%s/json.out", fbt_root());
	snprintf(script, sizeof(script),
	         "\"$@\" 2>/dev/null >'%s'; s=$?; "
	         "jq -e -s 'length > 0 and all(.[]; has(\"command\") and has(\"ok\") and "
	         "has(\"return_value\") and has(\"return_name\") and has(\"result\"))' '%s' "
	         ">/dev/null || exit 99; cat '%s'; exit $s",
	         file, file, file);
	snprintf(ca, sizeof(ca), "--ca=%s/agents-ca.pem", fbt_pki());
	snprintf(cert, sizeof(cert), "--cert=%s/operator.pem", fbt_pki());
	snprintf(key, sizeof(key), "--key=%s/operator.key", fbt_pki());
	argv[n++] = "/bin/sh";
	argv[n++] = "-c";
	argv[n++] = script;
	argv[n++] = "sh";
	argv[n++] = FBT_CTL;
	argv[n++] = "--json";
	argv[n++] = "--url";
	argv[n++] = url;
	argv[n++] = "--server-name";
	argv[n++] = sname;
	argv[n++] = "--events-url";
	argv[n++] = replica.events;
	argv[n++] = ca;
	argv[n++] = cert;
	argv[n++] = key;
	argv[n++] = "--timeout=20000";
	for (int i = 0; args[i] != NULL && n < 46; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	return fbt_run((char *const *)argv, out, sizeof(out));
}

#define RJ(...) ctl_json(replica.control, RNAME, (const char *[]){__VA_ARGS__, NULL})
#define PJ(...) ctl_json(primary.control, PNAME, (const char *[]){__VA_ARGS__, NULL})

/* jq's answer to filter over out (one line, no newline), or "" */
static const char *
jq(const char *filter)
{
	static char answer[4096];
	char        file[700], script[1800];
	FILE       *f;

	snprintf(file, sizeof(file), "%s/jq.in", fbt_root());
	if ((f = fopen(file, "w")) == NULL)
		return "";
	fputs(out, f);
	fclose(f);
	snprintf(script, sizeof(script), "jq -r -s '%s' '%s'", filter, file);
	if (fbt_run((char *const[]){"/bin/sh", "-c", script, NULL}, answer, sizeof(answer)) != 0)
		return "";
	answer[strcspn(answer, "\n")] = '\0';
	return answer;
}

static int
group_setup(void **state)
{
	(void)state;
	if (fbt_setup() != 0)
		return -1;
	snprintf(img, sizeof(img), "%s/sql.img", fbt_root());
	snprintf(img2, sizeof(img2), "%s/dash.img", fbt_root());
	if (fbt_image_make(img, 16u << 20, 5) != 0 || fbt_image_make(img2, 4u << 20, 6) != 0)
		return -1;
	if (fbt_agent_start(&primary, "primary", "primary", NULL) != 0 ||
	    fbt_replica_start(&replica, &primary, NULL) != 0)
		return -1;
	if (P("primary-vm", "add", VM, img) != 0 || P("primary-rp", "create", VM) != 0 ||
	    R("replicate", VM, "--wait") != 0)
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

static void
a_vm_is_named_by_name_guid_or_cim_path(void **state)
{
	char id[40], path[200], host_path[260];

	(void)state;
	assert_int_equal(RJ("vm", "show", VM), 0);
	assert_string_equal(jq(".[0].result.vm.name"), VM);
	snprintf(id, sizeof(id), "%s", jq(".[0].result.vm.id"));
	snprintf(path, sizeof(path), "%s", jq(".[0].result.vm.cim_path"));
	assert_int_equal(strlen(id), 36);
	assert_non_null(strstr(path, "Msvm_ComputerSystem.CreationClassName=\"Msvm_ComputerSystem\""));
	assert_non_null(strstr(path, id));
	/* The path the output carries, and Hyper-V's with host and namespace. */
	assert_int_equal(R("vm", "show", path), 0);
	assert_non_null(strstr(out, "name: " VM));
	snprintf(host_path, sizeof(host_path), "\\\\HV01\\root\\virtualization\\v2:%s", path);
	assert_int_equal(R("vm", "show", host_path), 0);
	assert_non_null(strstr(out, "name: " VM));
	assert_int_equal(R("vm", "show", id), 0);
	assert_non_null(strstr(out, "name: " VM));
	/* A path of another class is refused with what was expected. */
	assert_int_equal(R("vm", "show", "Msvm_ComputerSystem.CreationClassName=\"Msvm_Other\","
	                                 "Name=\"00000000-0000-4000-8000-000000000000\""),
	                 1);
	assert_non_null(strstr(out, "Invalid parameter (32773)"));
	assert_non_null(strstr(out, "not a CIM object path of a VM"));
	/* "--" ends the options, so a name may start with '-'. */
	assert_int_equal(P("primary-vm", "add", "--", DASH, img2), 0);
	assert_int_equal(P("primary-vm", "list"), 0);
	assert_non_null(strstr(out, DASH));
	assert_int_equal(P("primary-vm", "add", "bad/name", img2), 1);
	assert_non_null(strstr(out, "a VM name is 1 to 100 characters"));
}

static void
lists_are_tables_and_json_carries_the_same(void **state)
{
	char first[512];

	(void)state;
	assert_int_equal(R("vm", "list"), 0);
	snprintf(first, sizeof(first), "%.*s", (int)strcspn(out, "\n"), out);
	assert_non_null(strstr(first, "NAME"));
	assert_non_null(strstr(first, "STATE"));
	assert_non_null(strstr(first, "HEALTH"));
	assert_non_null(strstr(out, VM));
	assert_non_null(strstr(out, "Replicating (3)"));
	assert_null(strstr(out, "RS_")); /* Hyper-V's names, not the wire's */
	assert_int_equal(RJ("vm", "list"), 0);
	assert_string_equal(jq(".[0].result.vms[0].name"), VM);
	assert_string_equal(jq(".[0].result.vms[0].replication_state"), "3");
	assert_string_equal(jq(".[0].result.vms[0].replication_state_name"), "Replicating");

	assert_int_equal(R("rp", "list", VM), 0);
	assert_true(strncmp(out, "ID", 2) == 0);
	assert_non_null(strstr(out, "TIME"));
	assert_non_null(strstr(out, "Z  Standard")); /* ISO-8601 UTC, then the type */
	assert_int_equal(RJ("rp", "list", VM), 0);
	assert_string_equal(jq(".[0].result.points[0].time | test(\"^[0-9]{4}-[0-9]{2}-[0-9]{2}T"
	                       "[0-9:.]+Z$\")"),
	                    "true");

	assert_int_equal(R("job", "list"), 0);
	assert_true(strncmp(out, "JOB ID", 6) == 0);
	assert_non_null(strstr(out, "Replicate"));
	assert_non_null(strstr(out, "Completed (7)"));
	assert_non_null(strstr(out, VM)); /* the VM column names it */
	assert_int_equal(RJ("job", "list"), 0);
	assert_string_equal(jq("[.[0].result.jobs[] | select(.job_type == 106)][0].job_state_name"),
	                    "Completed");
}

static void
every_outcome_prints_one_envelope(void **state)
{
	(void)state;
	/* --wait: one envelope, the start and the end in it. */
	assert_int_equal(PJ("primary-rp", "create", VM), 0);
	assert_string_equal(jq(".[0].result.point.vm_id | length"), "36");
	assert_int_equal(RJ("replicate", VM, "--wait"), 0);
	assert_string_equal(jq("length"), "1");
	assert_string_equal(jq(".[0].ok"), "true");
	assert_string_equal(jq(".[0].result.job.job_state_name"), "Completed");
	assert_string_equal(jq(".[0].result.started.job_id == .[0].result.job.job_id"), "true");
	/* A failed job, an unknown job, a usage error, an agent that is down. */
	assert_int_equal(RJ("failback", VM, "--rp", "00000000-0000-4000-8000-000000000000"), 1);
	assert_string_equal(jq(".[0].ok"), "false");
	assert_int_equal(RJ("job", "show", "00000000-0000-4000-8000-000000000000"), 1);
	assert_string_equal(jq(".[0].return_name"), "File not found");
	assert_int_equal(RJ("vm", "show"), 2);
	assert_string_equal(jq(".[0].return_value"), "32773");
	assert_string_equal(jq(".[0].command"), "vm show");
	assert_int_equal(ctl_json("tls+tcp://127.0.0.1:1", RNAME, (const char *[]){"status", NULL}),
	                 1);
	assert_string_equal(jq(".[0].return_value"), "32777");
}

static void
text_that_is_not_utf8_still_gives_valid_json(void **state)
{
	char dir[800], disk[900];

	(void)state;
	snprintf(dir, sizeof(dir), "%s/odd-\xff-dir", fbt_root());
	assert_int_equal(mkdir(dir, 0700), 0);
	snprintf(disk, sizeof(disk), "%s/odd.img", dir);
	assert_int_equal(fbt_image_make(disk, 1u << 20, 8), 0);
	assert_int_equal(P("primary-vm", "add", "odd", disk), 0);
	assert_non_null(strstr(out, "odd-\\xff-dir")); /* escaped for the terminal */
	assert_int_equal(PJ("primary-vm", "list"), 0); /* jq took it */
	assert_non_null(strstr(jq("[.[0].result.vms[] | select(.name == \"odd\")][0].disks[0].path"),
	                       "odd-\xef\xbf\xbd-dir"));
	assert_int_equal(P("primary-vm", "remove", "odd"), 0);
}

static void
options_are_parsed_the_gnu_way(void **state)
{
	(void)state;
	assert_int_equal(R("failback", "--help"), 0);
	assert_non_null(strstr(out, "usage: failbackctl [OPTIONS] failback VM [--rp ID]"));
	assert_int_equal(R("help", "vm", "show"), 0);
	assert_non_null(strstr(out, "usage: failbackctl [OPTIONS] vm show VM"));
	assert_int_equal(R("failback", VM, "--rp"), 2);
	assert_non_null(strstr(out, "option '--rp' needs a value"));
	assert_int_equal(R("vm", "show", VM, "--bogus"), 2);
	assert_non_null(strstr(out, "unknown or ambiguous option '--bogus'"));
	/* --t could be --to, --to-name or --timeout. */
	assert_int_equal(R("reverse", VM, "--t", "x"), 2);
	assert_non_null(strstr(out, "ambiguous"));
	assert_int_equal(R("vm"), 2);
	assert_non_null(strstr(out, "vm list"));
	assert_non_null(strstr(out, "vm show VM"));
	assert_int_equal(R("vm", "show", VM, "extra"), 2);
	assert_non_null(strstr(out, "unexpected argument 'extra'"));
	/* An unambiguous abbreviation, options after operands. */
	assert_int_equal(R("vm", "show", VM, "--serv", RNAME), 0);
	assert_non_null(strstr(out, "name: " VM));
	assert_int_equal(R("status", "--url", "tcp://127.0.0.1:1"), 2);
	assert_non_null(strstr(out, "is not a tls+tcp://HOST:PORT URL"));
	assert_int_equal(R("-V"), 0);
	assert_non_null(strstr(out, "failbackctl "));
}

/* Writes text as UTF-16LE with a byte-order mark, as Windows PowerShell
 * 5.1 writes files. */
static void
write_utf16(const char *path, const char *text)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	fputc(0xff, f);
	fputc(0xfe, f);
	for (const char *p = text; *p; p++) {
		fputc(*p, f);
		fputc(0, f);
	}
	fclose(f);
}

static void
settings_in_utf16_with_a_bom_are_read(void **state)
{
	char path[800], want[65], got[65], disk[900];

	(void)state;
	snprintf(path, sizeof(path), "%s/rsd16.xml", fbt_root());
	/* Not valid: the agent names the property, so the text reached it. */
	write_utf16(path, "<INSTANCE CLASSNAME=\"Msvm_ReplicationSettingData\"><PROPERTY "
	                  "NAME=\"CompressionEnabled\" TYPE=\"boolean\"><VALUE>maybe</VALUE>"
	                  "</PROPERTY></INSTANCE>");
	assert_int_equal(R("failover", VM, "--wait"), 0);
	assert_int_equal(R("failover-commit", VM, "--wait"), 0);
	assert_int_equal(R("failback", VM, "--settings", path), 1);
	assert_non_null(strstr(out, "Incorrect data type (32776)"));
	assert_non_null(strstr(out, "CompressionEnabled"));
	/* Valid: the failback runs with it and the disk is the point's. */
	write_utf16(path, "<INSTANCE CLASSNAME=\"Msvm_ReplicationSettingData\"><PROPERTY "
	                  "NAME=\"CompressionEnabled\" TYPE=\"boolean\"><VALUE>TRUE</VALUE>"
	                  "</PROPERTY></INSTANCE>");
	assert_int_equal(R("vm", "show", VM), 0);
	{
		const char *p = strstr(out, "path: ");

		assert_non_null(p);
		snprintf(disk, sizeof(disk), "%.*s", (int)strcspn(p + 6, "\n"), p + 6);
	}
	assert_int_equal(fbt_image_mutate(disk, 10, 21), 10);
	assert_int_equal(R("failback", VM, "--settings", path, "--wait"), 0);
	/* --wait showed the job from its first event: the subscriber was up
	 * before the call (it is dialled alongside the control connection) */
	assert_non_null(strstr(out, "% WaitingForFailback ("));
	assert_non_null(strstr(out, "% Completed ("));
	assert_null(strstr(out, "no live progress"));
	assert_int_equal(fbt_file_sha256(img, want), 0);
	assert_int_equal(fbt_file_sha256(disk, got), 0);
	assert_string_equal(got, want);
	/* Half a UTF-16 character is refused before anything is sent. */
	{
		FILE *f = fopen(path, "ab");

		fputc('x', f);
		fclose(f);
	}
	assert_int_equal(R("failback", VM, "--settings", path), 2);
	assert_non_null(strstr(out, "odd number of bytes"));
}

/* estimate: the blocks a failback would move and its time, and nothing
 * changes; the failback that follows moves exactly those blocks. */
static void
estimate_says_what_a_failback_would_move_and_changes_nothing(void **state)
{
	char disk[900], before[65], after[65], line[200];
	int  changed;

	(void)state;
	assert_int_equal(R("vm", "show", VM), 0);
	assert_non_null(strstr(out, "FailbackComplete (14)"));
	{
		const char *p = strstr(out, "path: ");

		assert_non_null(p);
		snprintf(disk, sizeof(disk), "%.*s", (int)strcspn(p + 6, "\n"), p + 6);
	}
	changed = fbt_image_mutate(disk, 24, 99);
	assert_true(changed > 0);
	assert_int_equal(fbt_file_sha256(disk, before), 0);
	assert_int_equal(R("estimate", VM), 0);
	snprintf(line, sizeof(line), "would move %d of 256 blocks", changed);
	assert_non_null(strstr(out, line));
	assert_non_null(strstr(out, "estimated failback time: "));
	assert_non_null(strstr(out, "transfer at "));
	assert_int_equal(RJ("estimate", VM), 0);
	snprintf(line, sizeof(line), "%d", changed);
	assert_string_equal(jq(".[0].result.job.estimate.blocks_differing"), line);
	assert_string_equal(jq(".[0].result.job.estimate.bytes_differing"),
	                    (snprintf(line, sizeof(line), "%d", changed * 65536), line));
	assert_string_equal(jq(".[0].result.job.estimate.rate_bytes_per_s > 0"), "true");
	assert_string_equal(jq(".[0].result.job.estimate.disk_bytes"), "16777216");
	/* Nothing changed: the disk, the VM's state. */
	assert_int_equal(fbt_file_sha256(disk, after), 0);
	assert_string_equal(after, before);
	assert_int_equal(R("vm", "show", VM), 0);
	assert_non_null(strstr(out, "FailbackComplete (14)"));
	/* The failback moves what the estimate said. */
	assert_int_equal(RJ("failback", VM, "--wait"), 0);
	snprintf(line, sizeof(line), "%d", changed);
	assert_string_equal(jq(".[0].result.job.blocks_total"), line);
	assert_int_equal(fbt_file_sha256(disk, after), 0);
	assert_int_equal(fbt_file_sha256(img, before), 0);
	assert_string_equal(after, before);
	/* A VM that is not a recovery VM cannot be estimated. */
	assert_int_equal(R("estimate", "nosuch"), 1);
	assert_non_null(strstr(out, "File not found (32779)"));
}

static void
events_at_a_wrong_listener_fail_instead_of_hanging(void **state)
{
	(void)state;
	/* The control listener speaks REQ/REP, not PUB/SUB. */
	assert_int_equal(fbt_ctl(out, sizeof(out), replica.control, "operator", RNAME,
	                         "--events-url", replica.control, "--timeout", "2000", "events",
	                         NULL),
	                 1);
	assert_non_null(strstr(out, "no events connection to"));
}

static void
a_vm_is_unregistered_on_both_agents(void **state)
{
	char before[65], after[65], id[40], vmdir[900];

	(void)state;
	assert_int_equal(fbt_file_sha256(img, before), 0);
	fbt_assert_exit(RJ("vm", "show", VM), 0, out);
	snprintf(id, sizeof(id), "%s", jq(".[0].result.vm.id"));
	snprintf(vmdir, sizeof(vmdir), "%s/vms/%s", replica.dir, id);
	assert_int_equal(access(vmdir, F_OK), 0);
	fbt_assert_exit(R("vm", "remove", VM, "--delete-disks"), 0, out);
	assert_non_null(strstr(out, "points_removed: "));
	assert_null(strstr(out, "points_removed: 0\n"));
	assert_int_equal(access(vmdir, F_OK), -1); /* its recovery disks went with it */
	fbt_assert_exit(R("vm", "list"), 0, out);
	assert_null(strstr(out, VM));
	fbt_assert_exit(R("rp", "list", id), 1, out);
	assert_non_null(strstr(out, "File not found (32779)"));
	fbt_assert_exit(R("vm", "remove", VM), 1, out);
	assert_non_null(strstr(out, "File not found (32779)"));

	/* The failback pulled its point minutes ago: a replica may still need it. */
	fbt_assert_exit(P("primary-vm", "remove", VM), 1, out);
	assert_non_null(strstr(out, "System is in use (32774)"));
	assert_non_null(strstr(out, "remove with force"));
	fbt_assert_exit(P("primary-rp", "list", VM), 0, out); /* nothing went */
	fbt_assert_exit(P("primary-vm", "remove", VM, "--force"), 0, out);
	fbt_assert_exit(P("primary-vm", "list"), 0, out);
	assert_null(strstr(out, VM));
	fbt_assert_exit(P("primary-rp", "list", VM), 1, out);
	assert_non_null(strstr(out, "File not found (32779)"));
	assert_int_equal(fbt_file_sha256(img, after), 0);
	assert_string_equal(after, before); /* the primary's disk is untouched */
	/* It can be registered and replicated again from scratch. */
	fbt_assert_exit(P("primary-vm", "add", VM, img), 0, out);
	fbt_assert_exit(P("primary-rp", "create", VM), 0, out);
	fbt_assert_exit(R("replicate", VM, "--wait"), 0, out);
	fbt_assert_exit(R("vm", "list"), 0, out);
	assert_non_null(strstr(out, VM));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(a_vm_is_named_by_name_guid_or_cim_path),
	    cmocka_unit_test(lists_are_tables_and_json_carries_the_same),
	    cmocka_unit_test(every_outcome_prints_one_envelope),
	    cmocka_unit_test(text_that_is_not_utf8_still_gives_valid_json),
	    cmocka_unit_test(options_are_parsed_the_gnu_way),
	    cmocka_unit_test(settings_in_utf16_with_a_bom_are_read),
	    cmocka_unit_test(estimate_says_what_a_failback_would_move_and_changes_nothing),
	    cmocka_unit_test(events_at_a_wrong_listener_fail_instead_of_hanging),
	    cmocka_unit_test(a_vm_is_unregistered_on_both_agents),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
