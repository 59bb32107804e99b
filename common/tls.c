/*
 * tls.c - building NNG TLS configurations from PEM files (see tls.h).
 *
 * Order of checks: key permissions first (a world-readable key is a
 * security incident whatever else is wrong), then parse with mbedTLS (clear
 * messages), then hand the PEM text to NNG.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/sha1.h>
#include <mbedtls/sha256.h>
#include <mbedtls/ssl.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/x509_crt.h>

#include "failback/log.h"
#include "failback/tls.h"
#include "tls_engine.h"

#define PEM_MAX (1u << 20)

uint32_t
fb_tls_check_key_mode(const char *path, fb_err *err)
{
	struct stat st;

	if (stat(path, &st) != 0)
		return fb_err_errno(err, errno, path);
	if (!S_ISREG(st.st_mode))
		return fb_err_set(err, FB_RV_INVALID_PARAMETER, "%s: key is not a regular file",
		                  path);
	if ((st.st_mode & 077) != 0)
		return fb_err_set(err, FB_RV_ACCESS_DENIED,
		                  "%s: private key is accessible by group or others (mode %04o); "
		                  "fix with: chmod 600 %s",
		                  path, (unsigned)(st.st_mode & 07777), path);
	return FB_RV_OK;
}

/* Reads a whole PEM file into a NUL-terminated heap buffer. */
static uint32_t
tls_read_pem(const char *path, char **out, size_t *outlen, fb_err *err)
{
	FILE       *f;
	struct stat st;
	char       *buf;
	size_t      n;

	if ((f = fopen(path, "rb")) == NULL)
		return fb_err_errno(err, errno, path);
	if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > (off_t)PEM_MAX) {
		fclose(f);
		return fb_err_set(err, FB_RV_INVALID_PARAMETER,
		                  "%s: not a regular file of at most 1 MiB", path);
	}
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
		fclose(f);
		return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
	}
	n      = fread(buf, 1, (size_t)st.st_size, f);
	buf[n] = '\0';
	fclose(f);
	*out    = buf;
	*outlen = n;
	return FB_RV_OK;
}

static void
tls_free_secret(char *buf, size_t len)
{
	if (buf != NULL) {
		mbedtls_platform_zeroize(buf, len);
		free(buf);
	}
}

/* A file mbedTLS could not load: when the file itself cannot be read, say
 * why (errno), which mbedTLS only calls "Read/write of file failed". */
static uint32_t
tls_mbed_err(fb_err *err, int mrv, const char *path, const char *what)
{
	char text[160];
	FILE *f = fopen(path, "r");

	if (f == NULL)
		return fb_err_set(err, FB_RV_INVALID_PARAMETER, "%s: %s: %s", path, what,
		                  strerror(errno));
	fclose(f);
	mbedtls_strerror(mrv, text, sizeof(text));
	return fb_err_set(err, FB_RV_INVALID_PARAMETER, "%s: %s (%s)", path, what, text);
}

/* Validates the CA files, our certificate and its key with mbedTLS. */
static uint32_t
tls_validate(const char *const *ca_files, const char *cert_file, const char *key_file,
             int flags, fb_err *err)
{
	mbedtls_x509_crt ca, crt;
	mbedtls_pk_context pk;
	uint32_t           rv = FB_RV_OK;
	int                mrv;

	mbedtls_x509_crt_init(&ca);
	mbedtls_x509_crt_init(&crt);
	mbedtls_pk_init(&pk);
	for (size_t i = 0; ca_files[i] != NULL; i++) {
		if ((mrv = mbedtls_x509_crt_parse_file(&ca, ca_files[i])) != 0) {
			rv = tls_mbed_err(err, mrv, ca_files[i], "cannot load CA certificate(s)");
			goto out;
		}
	}
	if ((mrv = mbedtls_x509_crt_parse_file(&crt, cert_file)) != 0) {
		rv = tls_mbed_err(err, mrv, cert_file, "cannot load certificate");
		goto out;
	}
	if ((mrv = mbedtls_pk_parse_keyfile(&pk, key_file, NULL)) != 0) {
		rv = tls_mbed_err(err, mrv, key_file, "cannot load private key (encrypted keys "
		                                      "are not supported)");
		goto out;
	}
	if ((mrv = mbedtls_pk_check_pair(&crt.pk, &pk)) != 0) {
		rv = fb_err_set(err, FB_RV_INVALID_PARAMETER,
		                "%s: private key does not belong to certificate %s", key_file,
		                cert_file);
		goto out;
	}
	if (mbedtls_x509_time_is_past(&crt.valid_to)) {
		if (flags & FB_TLS_REFUSE_EXPIRED) {
			rv = fb_err_set(err, FB_RV_INVALID_PARAMETER,
			                "%s: certificate expired on %04d-%02d-%02d", cert_file,
			                crt.valid_to.year, crt.valid_to.mon, crt.valid_to.day);
			goto out;
		}
		fb_log_warn("FB0101", "%s: certificate expired on %04d-%02d-%02d; peers will "
		                      "refuse it", cert_file, crt.valid_to.year, crt.valid_to.mon,
		            crt.valid_to.day);
	}
out:
	mbedtls_pk_free(&pk);
	mbedtls_x509_crt_free(&crt);
	mbedtls_x509_crt_free(&ca);
	return rv;
}

/* Concatenates the PEM text of every CA file. */
static uint32_t
tls_read_cas(const char *const *ca_files, char **out, fb_err *err)
{
	char    *all = NULL;
	size_t   alllen = 0;
	uint32_t rv;

	for (size_t i = 0; ca_files[i] != NULL; i++) {
		char  *one, *grown;
		size_t len;

		if ((rv = tls_read_pem(ca_files[i], &one, &len, err)) != FB_RV_OK) {
			free(all);
			return rv;
		}
		if ((grown = realloc(all, alllen + len + 2)) == NULL) {
			free(one);
			free(all);
			return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
		}
		all = grown;
		memcpy(all + alllen, one, len);
		alllen += len;
		all[alllen++] = '\n';
		all[alllen]   = '\0';
		free(one);
	}
	*out = all;
	return FB_RV_OK;
}

/* The process's certificate revocation lists (--crl), or NULL. */
static char crl_path[4096];

const char *
fb_tls_crl_file(void)
{
	return crl_path[0] != '\0' ? crl_path : NULL;
}

uint32_t
fb_tls_set_crl(const char *path, fb_err *err)
{
	mbedtls_x509_crl crl;
	int              mrv;

	if (path == NULL || *path == '\0') {
		crl_path[0] = '\0';
		return FB_RV_OK;
	}
	if (strlen(path) >= sizeof(crl_path))
		return fb_err_set(err, FB_RV_INVALID_PARAMETER, "CRL path too long");
	mbedtls_x509_crl_init(&crl);
	mrv = mbedtls_x509_crl_parse_file(&crl, path);
	if (mrv == 0 && mbedtls_x509_time_is_past(&crl.next_update)) {
		fb_log_warn("FB0102", "%s: the CRL's next update was due %04d-%02d-%02d; peers "
		                      "whose CA issued it are refused until it is renewed",
		            path, crl.next_update.year, crl.next_update.mon, crl.next_update.day);
	}
	mbedtls_x509_crl_free(&crl);
	if (mrv == MBEDTLS_ERR_PK_FILE_IO_ERROR)
		return fb_err_set(err, FB_RV_FILE_NOT_FOUND, "%s: cannot read the CRL file", path);
	if (mrv != 0)
		return tls_mbed_err(err, mrv, path, "cannot load certificate revocation list(s)");
	snprintf(crl_path, sizeof(crl_path), "%s", path);
	return FB_RV_OK;
}

/*
 * Server configurations and the files they were made from, so that a
 * reload (SIGHUP) can read the files again and give each listener its new
 * certificate, key, CA chain and CRL (tls_engine.c swaps them for the
 * connections accepted from then on).
 */
typedef struct served {
	struct nng_tls_engine_config *eng;
	char                         *cas[8];
	char                         *cert, *key;
	int                           flags;
	struct served                *next;
} served;

static pthread_mutex_t served_mu = PTHREAD_MUTEX_INITIALIZER;
static served         *served_list;

static void
served_free(served *s)
{
	for (size_t i = 0; i < 8; i++)
		free(s->cas[i]);
	free(s->cert);
	free(s->key);
	free(s);
}

static uint32_t
served_add(struct nng_tls_engine_config *eng, const char *const *ca_files, const char *cert,
           const char *key, int flags, fb_err *err)
{
	served *s = calloc(1, sizeof(*s));
	size_t  n = 0;

	if (s == NULL || eng == NULL)
		goto oom;
	for (; ca_files[n] != NULL; n++)
		if (n == 7 || (s->cas[n] = strdup(ca_files[n])) == NULL)
			goto oom;
	if ((s->cert = strdup(cert)) == NULL || (s->key = strdup(key)) == NULL)
		goto oom;
	s->eng   = eng;
	s->flags = flags;
	pthread_mutex_lock(&served_mu);
	s->next     = served_list;
	served_list = s;
	pthread_mutex_unlock(&served_mu);
	return FB_RV_OK;
oom:
	if (s != NULL)
		served_free(s);
	return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
}

void
fb_tls_engine_forget(struct nng_tls_engine_config *eng)
{
	pthread_mutex_lock(&served_mu);
	for (served **p = &served_list; *p != NULL;) {
		served *s = *p;

		if (s->eng == eng) {
			*p = s->next;
			served_free(s);
		} else {
			p = &s->next;
		}
	}
	pthread_mutex_unlock(&served_mu);
}

int
fb_tls_url_ok(const char *url)
{
	return url != NULL && (strncmp(url, "tls+tcp://", 10) == 0 ||
	                       strncmp(url, "tls+tcp4://", 11) == 0 ||
	                       strncmp(url, "tls+tcp6://", 11) == 0);
}

uint32_t
fb_tls_reload(unsigned *reloaded, fb_err *err)
{
	struct pem {
		char  *ca, *cert, *key;
		size_t keylen;
	} *pems = NULL;
	char    *crl    = NULL;
	size_t   n      = 0, crllen = 0, certlen;
	uint32_t rv     = FB_RV_OK;
	served  *s;

	*reloaded = 0;
	pthread_mutex_lock(&served_mu);
	for (s = served_list; s != NULL; s = s->next)
		n++;
	if (n == 0)
		goto out;
	if ((pems = calloc(n, sizeof(*pems))) == NULL) {
		rv = fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
		goto out;
	}
	/* Everything is read and checked before anything changes. */
	if (crl_path[0] != '\0') {
		char path[sizeof(crl_path)];

		snprintf(path, sizeof(path), "%s", crl_path);
		if ((rv = fb_tls_set_crl(path, err)) != FB_RV_OK ||
		    (rv = tls_read_pem(path, &crl, &crllen, err)) != FB_RV_OK)
			goto out;
	}
	n = 0;
	for (s = served_list; s != NULL; s = s->next, n++)
		if ((rv = fb_tls_check_key_mode(s->key, err)) != FB_RV_OK ||
		    (rv = tls_validate((const char *const *)s->cas, s->cert, s->key, s->flags, err)) !=
		        FB_RV_OK ||
		    (rv = tls_read_cas((const char *const *)s->cas, &pems[n].ca, err)) != FB_RV_OK ||
		    (rv = tls_read_pem(s->cert, &pems[n].cert, &certlen, err)) != FB_RV_OK ||
		    (rv = tls_read_pem(s->key, &pems[n].key, &pems[n].keylen, err)) != FB_RV_OK)
			goto out;
	n = 0;
	for (s = served_list; s != NULL; s = s->next, n++) {
		int nrv = fb_tls_engine_reload(s->eng, pems[n].ca, crl, pems[n].cert, pems[n].key);

		if (nrv != 0) {
			rv = fb_err_set(err, FB_RV_INVALID_PARAMETER,
			                "%s: the certificate or key does not load (%s); %u listener(s) "
			                "were reloaded before it",
			                s->cert, nng_strerror(nrv), *reloaded);
			goto out;
		}
		(*reloaded)++;
	}
out:
	for (size_t i = 0; pems != NULL && i < n; i++) {
		free(pems[i].ca);
		free(pems[i].cert);
		if (pems[i].key != NULL)
			tls_free_secret(pems[i].key, pems[i].keylen);
	}
	free(pems);
	free(crl);
	pthread_mutex_unlock(&served_mu);
	return rv;
}

static uint32_t
tls_config(nng_tls_config **out, nng_tls_mode mode, const char *const *ca_files,
           const char *cert_file, const char *key_file, const char *server_name, int flags,
           fb_err *err)
{
	nng_tls_config               *cfg = NULL;
	struct nng_tls_engine_config *eng = NULL;
	char                         *ca = NULL, *cert = NULL, *key = NULL, *crl = NULL;
	size_t                        certlen = 0, keylen = 0, crllen = 0;
	uint32_t        rv;
	int             nrv;

	if (ca_files == NULL || ca_files[0] == NULL || !*ca_files[0] || cert_file == NULL ||
	    key_file == NULL || !*cert_file || !*key_file)
		return fb_err_set(err, FB_RV_INVALID_PARAMETER,
		                  "TLS needs a CA file, a certificate and a key");
	if (mode == NNG_TLS_MODE_CLIENT && (server_name == NULL || *server_name == '\0'))
		return fb_err_set(err, FB_RV_INVALID_PARAMETER,
		                  "TLS client needs the server's expected DNS name");
	if ((rv = fb_tls_check_key_mode(key_file, err)) != FB_RV_OK)
		return rv;
	if ((rv = tls_validate(ca_files, cert_file, key_file, flags, err)) != FB_RV_OK)
		return rv;
	if ((rv = tls_read_cas(ca_files, &ca, err)) != FB_RV_OK)
		goto fail;
	if ((rv = tls_read_pem(cert_file, &cert, &certlen, err)) != FB_RV_OK)
		goto fail;
	if ((rv = tls_read_pem(key_file, &key, &keylen, err)) != FB_RV_OK)
		goto fail;
	if (crl_path[0] != '\0' && (rv = tls_read_pem(crl_path, &crl, &crllen, err)) != FB_RV_OK)
		goto fail;
	if ((nrv = fb_tls_engine_use()) != 0) {
		rv = fb_err_set(err, FB_RV_FAILED, "cannot install the TLS engine: %s",
		                nng_strerror(nrv));
		goto fail;
	}
	if ((nrv = nng_tls_config_alloc(&cfg, mode)) != 0) {
		rv = fb_err_nng(err, nrv, "TLS configuration");
		goto fail;
	}
	eng = fb_tls_engine_made_last();
	if ((nrv = nng_tls_config_version(cfg, NNG_TLS_1_2, NNG_TLS_1_2)) != 0 ||
	    (nrv = nng_tls_config_auth_mode(cfg, NNG_TLS_AUTH_MODE_REQUIRED)) != 0 ||
	    (nrv = nng_tls_config_ca_chain(cfg, ca, crl)) != 0 ||
	    (nrv = nng_tls_config_own_cert(cfg, cert, key, NULL)) != 0 ||
	    (server_name != NULL && (nrv = nng_tls_config_server_name(cfg, server_name)) != 0)) {
		rv = fb_err_nng(err, nrv, "TLS configuration");
		goto fail;
	}
	if (mode == NNG_TLS_MODE_SERVER && (rv = served_add(eng, ca_files, cert_file, key_file,
	                                                   flags, err)) != FB_RV_OK)
		goto fail;
	tls_free_secret(key, keylen);
	free(cert);
	free(ca);
	free(crl);
	*out = cfg;
	return FB_RV_OK;
fail:
	if (cfg != NULL)
		nng_tls_config_free(cfg);
	tls_free_secret(key, keylen);
	free(cert);
	free(ca);
	free(crl);
	return rv;
}

uint32_t
fb_tls_config_server(nng_tls_config **out, const char *const *ca_files, const char *cert_file,
                     const char *key_file, int flags, fb_err *err)
{
	return tls_config(out, NNG_TLS_MODE_SERVER, ca_files, cert_file, key_file, NULL, flags,
	                  err);
}

uint32_t
fb_tls_config_client(nng_tls_config **out, const char *ca_file, const char *cert_file,
                     const char *key_file, const char *server_name, int flags, fb_err *err)
{
	return fb_tls_config_client_pinned(out, ca_file, cert_file, key_file, server_name, NULL,
	                                   flags, err);
}

uint32_t
fb_tls_config_client_pinned(nng_tls_config **out, const char *ca_file, const char *cert_file,
                            const char *key_file, const char *server_name, const char *pin,
                            int flags, fb_err *err)
{
	const char *cas[2] = {ca_file, NULL};
	char        spec[512];
	size_t      plen = pin != NULL ? strlen(pin) : 0;

	if (server_name == NULL || strchr(server_name, '#') != NULL)
		return fb_err_set(err, FB_RV_INVALID_PARAMETER, "'%.80s' is not a DNS name",
		                  server_name != NULL ? server_name : "");
	if (plen != 0 && plen != 40 && plen != 64)
		return fb_err_set(err, FB_RV_INVALID_PARAMETER,
		                  "a certificate pin is 40 (SHA-1) or 64 (SHA-256) hex digits");
	for (size_t i = 0; i < plen; i++)
		if (!((pin[i] >= '0' && pin[i] <= '9') || (pin[i] >= 'a' && pin[i] <= 'f')))
			return fb_err_set(err, FB_RV_INVALID_PARAMETER,
			                  "a certificate pin is lower-case hex digits");
	/* the engine takes the pin after the name (tls_engine.c) */
	if ((size_t)snprintf(spec, sizeof(spec), "%s%s%s", server_name, plen ? "#" : "",
	                     plen ? pin : "") >= sizeof(spec))
		return fb_err_set(err, FB_RV_INVALID_PARAMETER, "server name too long");
	return tls_config(out, NNG_TLS_MODE_CLIENT, cas, cert_file, key_file,
	                  *server_name != '\0' ? spec : server_name, flags, err);
}

uint32_t
fb_tls_cert_subject(const char *cert_file, char *subject, size_t subject_len, char *not_after,
                    size_t not_after_len, fb_err *err)
{
	mbedtls_x509_crt crt;
	int              mrv;

	mbedtls_x509_crt_init(&crt);
	if ((mrv = mbedtls_x509_crt_parse_file(&crt, cert_file)) != 0) {
		mbedtls_x509_crt_free(&crt);
		return tls_mbed_err(err, mrv, cert_file, "cannot load certificate");
	}
	if (mbedtls_x509_dn_gets(subject, subject_len, &crt.subject) < 0)
		snprintf(subject, subject_len, "?");
	snprintf(not_after, not_after_len, "%04d-%02d-%02d", crt.valid_to.year, crt.valid_to.mon,
	         crt.valid_to.day);
	mbedtls_x509_crt_free(&crt);
	return FB_RV_OK;
}

static void
tls_hex(const unsigned char *b, size_t n, char *out)
{
	static const char d[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i]     = d[b[i] >> 4];
		out[2 * i + 1] = d[b[i] & 15];
	}
	out[2 * n] = '\0';
}

uint32_t
fb_tls_peer_thumbprint(const char *url, const char *ca_file, const char *cert_file,
                       const char *key_file, const char *server_name, char *sha1hex,
                       char *sha256hex, fb_err *err)
{
	mbedtls_net_context      net;
	mbedtls_ssl_context      ssl;
	mbedtls_ssl_config       conf;
	mbedtls_x509_crt         ca, own;
	mbedtls_pk_context       pk;
	mbedtls_entropy_context  ent;
	mbedtls_ctr_drbg_context drbg;
	const mbedtls_x509_crt  *peer;
	char                     host[256], port[16];
	const char              *hp = strstr(url, "://"), *colon;
	unsigned char            md[32];
	uint32_t                 rv = FB_RV_OK;
	int                      mrv;

	if (hp == NULL || (colon = strrchr(hp + 3, ':')) == NULL ||
	    (size_t)(colon - hp - 3) >= sizeof(host))
		return fb_err_set(err, FB_RV_INVALID_PARAMETER, "cannot probe %s", url);
	snprintf(host, sizeof(host), "%.*s", (int)(colon - hp - 3), hp + 3);
	snprintf(port, sizeof(port), "%s", colon + 1);
	mbedtls_net_init(&net);
	mbedtls_ssl_init(&ssl);
	mbedtls_ssl_config_init(&conf);
	mbedtls_x509_crt_init(&ca);
	mbedtls_x509_crt_init(&own);
	mbedtls_pk_init(&pk);
	mbedtls_entropy_init(&ent);
	mbedtls_ctr_drbg_init(&drbg);
	if ((mrv = mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &ent, NULL, 0)) != 0 ||
	    (mrv = mbedtls_x509_crt_parse_file(&ca, ca_file)) != 0 ||
	    (mrv = mbedtls_x509_crt_parse_file(&own, cert_file)) != 0 ||
	    (mrv = mbedtls_pk_parse_keyfile(&pk, key_file, NULL)) != 0 ||
	    (mrv = mbedtls_ssl_config_defaults(&conf, MBEDTLS_SSL_IS_CLIENT,
	                                       MBEDTLS_SSL_TRANSPORT_STREAM,
	                                       MBEDTLS_SSL_PRESET_DEFAULT)) != 0) {
		rv = tls_mbed_err(err, mrv, url, "cannot set up the certificate probe");
		goto out;
	}
	mbedtls_ssl_conf_authmode(&conf, MBEDTLS_SSL_VERIFY_REQUIRED);
	mbedtls_ssl_conf_ca_chain(&conf, &ca, NULL);
	mbedtls_ssl_conf_rng(&conf, mbedtls_ctr_drbg_random, &drbg);
	mbedtls_ssl_conf_read_timeout(&conf, 10000);
	if ((mrv = mbedtls_ssl_conf_own_cert(&conf, &own, &pk)) != 0 ||
	    (mrv = mbedtls_ssl_setup(&ssl, &conf)) != 0 ||
	    (mrv = mbedtls_ssl_set_hostname(&ssl, server_name)) != 0) {
		rv = tls_mbed_err(err, mrv, url, "cannot set up the certificate probe");
		goto out;
	}
	if ((mrv = mbedtls_net_connect(&net, host, port, MBEDTLS_NET_PROTO_TCP)) != 0) {
		rv = fb_err_set(err, FB_RV_NOT_AVAILABLE, "cannot reach %s to check its certificate",
		                url);
		goto out;
	}
	mbedtls_ssl_set_bio(&ssl, &net, mbedtls_net_send, NULL, mbedtls_net_recv_timeout);
	while ((mrv = mbedtls_ssl_handshake(&ssl)) != 0) {
		if (mrv != MBEDTLS_ERR_SSL_WANT_READ && mrv != MBEDTLS_ERR_SSL_WANT_WRITE) {
			char text[160];
			mbedtls_strerror(mrv, text, sizeof(text));
			rv = fb_err_set(err, FB_RV_ACCESS_DENIED, "TLS handshake with %s failed: %s",
			                url, text);
			goto out;
		}
	}
	if ((peer = mbedtls_ssl_get_peer_cert(&ssl)) == NULL) {
		rv = fb_err_set(err, FB_RV_ACCESS_DENIED, "%s presented no certificate", url);
		goto out;
	}
	mbedtls_sha1_ret(peer->raw.p, peer->raw.len, md);
	tls_hex(md, 20, sha1hex);
	mbedtls_sha256_ret(peer->raw.p, peer->raw.len, md, 0);
	tls_hex(md, 32, sha256hex);
	mbedtls_ssl_close_notify(&ssl);
out:
	mbedtls_net_free(&net);
	mbedtls_ssl_free(&ssl);
	mbedtls_ssl_config_free(&conf);
	mbedtls_x509_crt_free(&ca);
	mbedtls_x509_crt_free(&own);
	mbedtls_pk_free(&pk);
	mbedtls_ctr_drbg_free(&drbg);
	mbedtls_entropy_free(&ent);
	return rv;
}
