/*
 * tls_test.c - building TLS configurations: every way the files can be
 * wrong gets a message naming the file and what to do, before NNG sees it.
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

#include "failback/tls.h"

static char dir[256];

static const char *
f(const char *name)
{
	static char b[4][512];
	static int  i;
	char       *p = b[i++ % 4];

	snprintf(p, sizeof(b[0]), "%s/%s", dir, name);
	return p;
}

static int
setup(void **state)
{
	char cmd[600];

	(void)state;
	snprintf(dir, sizeof(dir), "%s/fbtls.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(cmd, sizeof(cmd), "/bin/sh %s %s/pki >/dev/null", FBT_PKI_SCRIPT, dir);
	if (system(cmd) != 0)
		return -1;
	strcat(dir, "/pki");
	return 0;
}

static int
teardown(void **state)
{
	char cmd[600];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%.*s'", (int)(strlen(dir) - 4), dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void
valid_files_make_server_and_client_configs(void **state)
{
	const char     *cas[] = {f("operators-ca.pem"), f("monitors-ca.pem"), NULL};
	nng_tls_config *cfg   = NULL;
	fb_err          err   = {0};

	(void)state;
	assert_int_equal(fb_tls_config_server(&cfg, cas, f("replica.pem"), f("replica.key"),
	                                      FB_TLS_REFUSE_EXPIRED, &err),
	                 FB_RV_OK);
	nng_tls_config_free(cfg);
	assert_int_equal(fb_tls_config_client(&cfg, f("agents-ca.pem"), f("operator.pem"),
	                                      f("operator.key"), "replica.failback.test", 0, &err),
	                 FB_RV_OK);
	nng_tls_config_free(cfg);
}

static void
key_readable_by_group_is_refused_with_the_fix(void **state)
{
	nng_tls_config *cfg = NULL;
	const char     *cas[] = {f("agents-ca.pem"), NULL};
	fb_err          err = {0};

	(void)state;
	assert_int_equal(chmod(f("monitor.key"), 0640), 0);
	assert_int_equal(fb_tls_config_server(&cfg, cas, f("monitor.pem"), f("monitor.key"), 0,
	                                      &err),
	                 FB_RV_ACCESS_DENIED);
	assert_non_null(strstr(err.msg, "mode 0640"));
	assert_non_null(strstr(err.msg, "chmod 600"));
	assert_null(cfg);
	assert_int_equal(chmod(f("monitor.key"), 0600), 0);
}

static void
missing_file_is_file_not_found(void **state)
{
	nng_tls_config *cfg = NULL;
	fb_err          err = {0};

	(void)state;
	assert_int_equal(fb_tls_config_client(&cfg, f("nope-ca.pem"), f("operator.pem"),
	                                      f("operator.key"), "x", 0, &err),
	                 FB_RV_INVALID_PARAMETER);
	assert_non_null(strstr(err.msg, "nope-ca.pem"));
	assert_int_equal(fb_tls_config_client(&cfg, f("agents-ca.pem"), f("operator.pem"),
	                                      f("nope.key"), "x", 0, &err),
	                 FB_RV_FILE_NOT_FOUND);
}

static void
key_of_another_certificate_is_refused(void **state)
{
	nng_tls_config *cfg = NULL;
	fb_err          err = {0};

	(void)state;
	assert_int_equal(fb_tls_config_client(&cfg, f("agents-ca.pem"), f("operator.pem"),
	                                      f("monitor.key"), "x", 0, &err),
	                 FB_RV_INVALID_PARAMETER);
	assert_non_null(strstr(err.msg, "does not belong to certificate"));
}

static void
non_pem_certificate_is_refused(void **state)
{
	nng_tls_config *cfg = NULL;
	fb_err          err = {0};
	FILE           *fp  = fopen(f("junk.pem"), "w");

	(void)state;
	fputs("this is not a certificate\n", fp);
	fclose(fp);
	assert_int_equal(fb_tls_config_client(&cfg, f("agents-ca.pem"), f("junk.pem"),
	                                      f("operator.key"), "x", 0, &err),
	                 FB_RV_INVALID_PARAMETER);
	assert_non_null(strstr(err.msg, "cannot load certificate"));
}

static void
expired_own_certificate_refused_only_when_asked(void **state)
{
	const char     *cas[] = {f("operators-ca.pem"), NULL};
	nng_tls_config *cfg   = NULL;
	fb_err          err   = {0};

	(void)state;
	assert_int_equal(fb_tls_config_server(&cfg, cas, f("expired-operator.pem"),
	                                      f("expired-operator.key"), FB_TLS_REFUSE_EXPIRED,
	                                      &err),
	                 FB_RV_INVALID_PARAMETER);
	assert_non_null(strstr(err.msg, "certificate expired on"));
	assert_int_equal(fb_tls_config_client(&cfg, f("agents-ca.pem"), f("expired-operator.pem"),
	                                      f("expired-operator.key"), "x", 0, &err),
	                 FB_RV_OK);
	nng_tls_config_free(cfg);
}

static void
client_without_server_name_is_refused(void **state)
{
	nng_tls_config *cfg = NULL;
	fb_err          err = {0};

	(void)state;
	assert_int_equal(fb_tls_config_client(&cfg, f("agents-ca.pem"), f("operator.pem"),
	                                      f("operator.key"), "", 0, &err),
	                 FB_RV_INVALID_PARAMETER);
	assert_non_null(strstr(err.msg, "expected DNS name"));
}

static void
subject_and_expiry_are_read(void **state)
{
	char   subj[256], until[16];
	fb_err err = {0};

	(void)state;
	assert_int_equal(fb_tls_cert_subject(f("primary.pem"), subj, sizeof(subj), until,
	                                     sizeof(until), &err),
	                 FB_RV_OK);
	assert_non_null(strstr(subj, "CN=primary.failback.test"));
	assert_int_equal(strlen(until), 10);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(valid_files_make_server_and_client_configs),
	    cmocka_unit_test(key_readable_by_group_is_refused_with_the_fix),
	    cmocka_unit_test(missing_file_is_file_not_found),
	    cmocka_unit_test(key_of_another_certificate_is_refused),
	    cmocka_unit_test(non_pem_certificate_is_refused),
	    cmocka_unit_test(expired_own_certificate_refused_only_when_asked),
	    cmocka_unit_test(client_without_server_name_is_refused),
	    cmocka_unit_test(subject_and_expiry_are_read),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
