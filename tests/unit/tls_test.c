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
#include <arpa/inet.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/tls/engine.h>

#include "failback/rpc.h"
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

/* A file that cannot be read says why (errno), not mbedTLS's "Read/write
 * of file failed". */
static void
unreadable_files_are_named_with_the_reason(void **state)
{
	nng_tls_config *cfg = NULL;
	fb_err          err = {0};

	(void)state;
	assert_int_equal(fb_tls_config_client(&cfg, f("agents-ca.pem"), f("missing.pem"),
	                                      f("operator.key"), "x", 0, &err),
	                 FB_RV_INVALID_PARAMETER);
	assert_non_null(strstr(err.msg, "missing.pem: cannot load certificate: No such file"));
	assert_int_equal(fb_tls_config_client(&cfg, f("no-ca.pem"), f("operator.pem"),
	                                      f("operator.key"), "x", 0, &err),
	                 FB_RV_INVALID_PARAMETER);
	assert_non_null(strstr(err.msg, "no-ca.pem: cannot load CA certificate(s): No such file"));
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

/* --- handshakes through the product's engine, on loopback --- */

/* A server as the agent `as` ("primary", "impostor-primary", ...) that
 * trusts cas; *url gets its bound address. */
static nng_socket
serve(const char *as, const char *ca, char *url, size_t len)
{
	char            cafile[512], cert[64], key[64];
	const char     *cas[] = {cafile, NULL};
	nng_tls_config *cfg;
	nng_socket      s;
	nng_listener    l;
	nng_sockaddr    sa;
	fb_err          err = {0};

	snprintf(cafile, sizeof(cafile), "%s", ca);
	snprintf(cert, sizeof(cert), "%s.pem", as);
	snprintf(key, sizeof(key), "%s.key", as);
	if (fb_tls_config_server(&cfg, cas, f(cert), f(key), 0, &err) != FB_RV_OK)
		fail_msg("%s", err.msg);
	assert_int_equal(nng_rep0_open(&s), 0);
	assert_int_equal(nng_listener_create(&l, s, "tls+tcp://127.0.0.1:0"), 0);
	assert_int_equal(nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, cfg), 0);
	nng_tls_config_free(cfg);
	assert_int_equal(nng_listener_start(l, 0), 0);
	assert_int_equal(nng_listener_get_addr(l, NNG_OPT_LOCADDR, &sa), 0);
	snprintf(url, len, "tls+tcp://127.0.0.1:%u", (unsigned)ntohs(sa.s_in.sa_port));
	return s;
}

/* Dials url as `as` expecting server name sname (and pin); returns NNG's
 * result of the first connection. */
static int
dial(const char *url, const char *as, const char *sname, const char *pin)
{
	char            cert[64], key[64];
	nng_tls_config *cfg;
	nng_socket      s;
	nng_dialer      d;
	fb_err          err = {0};
	int             rv;

	snprintf(cert, sizeof(cert), "%s.pem", as);
	snprintf(key, sizeof(key), "%s.key", as);
	assert_int_equal(fb_tls_config_client_pinned(&cfg, f("agents-ca.pem"), f(cert), f(key),
	                                             sname, pin, 0, &err),
	                 FB_RV_OK);
	assert_int_equal(nng_req0_open(&s), 0);
	assert_int_equal(nng_dialer_create(&d, s, url), 0);
	assert_int_equal(nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, cfg), 0);
	nng_tls_config_free(cfg);
	rv = nng_dialer_start(d, 0);
	nng_close(s);
	return rv;
}

/* SHA-256 of a certificate's DER, as `openssl x509 -fingerprint` prints it. */
static void
thumbprint(const char *pem, char *hex)
{
	char  cmd[700], line[256];
	FILE *p;
	size_t k = 0;

	snprintf(cmd, sizeof(cmd), "openssl x509 -in '%s' -noout -fingerprint -sha256", pem);
	assert_non_null(p = popen(cmd, "r"));
	assert_non_null(fgets(line, sizeof(line), p));
	pclose(p);
	for (char *c = strchr(line, '=') + 1; *c && *c != '\n'; c++)
		if (*c != ':')
			hex[k++] = (char)(*c >= 'A' && *c <= 'F' ? *c - 'A' + 'a' : *c);
	hex[k] = '\0';
}

static void
every_configuration_uses_the_products_engine(void **state)
{
	nng_tls_config *cfg;
	fb_err          err = {0};

	(void)state;
	assert_int_equal(fb_tls_config_client(&cfg, f("agents-ca.pem"), f("replica.pem"),
	                                      f("replica.key"), "primary.failback.test", 0, &err),
	                 FB_RV_OK);
	nng_tls_config_free(cfg);
	assert_string_equal(nng_tls_engine_name(), "failback-mbedtls");
}

/* The server name must be a DNS subjectAltName of the certificate, exactly:
 * a name only in the CN, or a wildcard, is refused. */
static void
server_names_need_an_exact_subject_alt_name(void **state)
{
	const char *as[]   = {"primary", "nosan-primary", "wildcard-primary"};
	int         want[] = {0, NNG_EPEERAUTH, NNG_EPEERAUTH};

	(void)state;
	for (int i = 0; i < 3; i++) {
		char       url[64];
		nng_socket s = serve(as[i], f("agents-ca.pem"), url, sizeof(url));

		assert_int_equal(dial(url, "replica", "primary.failback.test", NULL), want[i]);
		nng_close(s);
	}
}

/* A pinned configuration connects only to the pinned certificate: the
 * impostor has the same name from the same CA, and is refused on every
 * connection, SHA-256 or SHA-1 pin alike. */
static void
a_pin_binds_every_connection_made_with_it(void **state)
{
	char       real[80], url[64], iurl[64];
	nng_socket s = serve("primary", f("agents-ca.pem"), url, sizeof(url));
	nng_socket i = serve("impostor-primary", f("agents-ca.pem"), iurl, sizeof(iurl));

	(void)state;
	thumbprint(f("primary.pem"), real);
	for (int k = 0; k < 3; k++) {
		assert_int_equal(dial(url, "replica", "primary.failback.test", real), 0);
		assert_int_equal(dial(iurl, "replica", "primary.failback.test", real), NNG_EPEERAUTH);
	}
	assert_int_equal(dial(iurl, "replica", "primary.failback.test", NULL), 0); /* unpinned */
	nng_close(s);
	nng_close(i);
}

static void
bad_pins_are_invalid_parameters(void **state)
{
	nng_tls_config *cfg;
	fb_err          err = {0};

	(void)state;
	assert_int_equal(fb_tls_config_client_pinned(&cfg, f("agents-ca.pem"), f("replica.pem"),
	                                             f("replica.key"), "primary.failback.test",
	                                             "abc", 0, &err),
	                 FB_RV_INVALID_PARAMETER);
	assert_int_equal(fb_tls_config_client_pinned(&cfg, f("agents-ca.pem"), f("replica.pem"),
	                                             f("replica.key"), "primary.failback.test#00",
	                                             NULL, 0, &err),
	                 FB_RV_INVALID_PARAMETER);
}

/* With the operators CA's CRL loaded, the revoked operator certificate is
 * refused in the handshake and the others still connect. */
static void
a_revoked_certificate_is_refused_once_the_crl_is_loaded(void **state)
{
	char        ca[512], url[64];
	nng_socket  s;
	fb_err      err = {0};
	int         rv;

	(void)state;
	snprintf(ca, sizeof(ca), "%s", f("operators-ca.pem"));
	assert_int_equal(fb_tls_set_crl(f("no-such-crl.pem"), &err), FB_RV_FILE_NOT_FOUND);
	assert_int_equal(fb_tls_set_crl(f("operator.pem"), &err), FB_RV_INVALID_PARAMETER);
	assert_int_equal(fb_tls_set_crl(f("operators-crl.pem"), &err), FB_RV_OK);
	s = serve("replica", ca, url, sizeof(url));
	{
		nng_tls_config *cfg;
		nng_socket      c;
		nng_dialer      d;
		const char     *who[] = {"operator", "revoked-operator"};

		for (int k = 0; k < 2; k++) {
			char cert[64], key[64];

			snprintf(cert, sizeof(cert), "%s.pem", who[k]);
			snprintf(key, sizeof(key), "%s.key", who[k]);
			assert_int_equal(fb_tls_config_client(&cfg, f("agents-ca.pem"), f(cert), f(key),
			                                      "replica.failback.test", 0, &err),
			                 FB_RV_OK);
			assert_int_equal(nng_req0_open(&c), 0);
			assert_int_equal(nng_dialer_create(&d, c, url), 0);
			assert_int_equal(nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, cfg), 0);
			nng_tls_config_free(cfg);
			rv = nng_dialer_start(d, 0);
			nng_close(c);
			if (k == 0)
				assert_int_equal(rv, 0);
			else
				assert_int_not_equal(rv, 0); /* refused by the server */
		}
	}
	nng_close(s);
	assert_int_equal(fb_tls_set_crl(NULL, &err), FB_RV_OK);
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
	    cmocka_unit_test(unreadable_files_are_named_with_the_reason),
	    cmocka_unit_test(expired_own_certificate_refused_only_when_asked),
	    cmocka_unit_test(client_without_server_name_is_refused),
	    cmocka_unit_test(subject_and_expiry_are_read),
	    cmocka_unit_test(every_configuration_uses_the_products_engine),
	    cmocka_unit_test(server_names_need_an_exact_subject_alt_name),
	    cmocka_unit_test(a_pin_binds_every_connection_made_with_it),
	    cmocka_unit_test(bad_pins_are_invalid_parameters),
	    cmocka_unit_test(a_revoked_certificate_is_refused_once_the_crl_is_loaded),
	};
	/* NNG 1.5.2 frees a closed socket's connections in the background: leave
	 * as the agents do, without waiting for it (LeakSanitizer would report
	 * NNG's unfinished teardown as leaks). */
	fb_rpc_exit(cmocka_run_group_tests(tests, setup, teardown));
}
