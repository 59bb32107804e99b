/*
 * tls_engine.c - the TLS engine every NNG connection of the product uses:
 * mbedTLS 2.28 behind NNG 1.5.2's engine interface, with the checks NNG's
 * own engine cannot make, decided during each handshake:
 *
 *   - a client that expects a server name accepts only a certificate with a
 *     DNS subjectAltName equal to it (no CN fallback, no wildcards);
 *   - a client configuration may carry a certificate pin (SHA-1 or SHA-256
 *     of the DER, as CertificateThumbPrint gives it): every connection made
 *     with it presents exactly that certificate, or fails its handshake;
 *   - CRLs given with the CA chain are checked on both sides;
 *   - a server configuration (one per listener) holds at most a set number
 *     of connections: one over it is closed as it is accepted, before any
 *     handshake (fb_tls_server_limits). Handshakes in progress past their
 *     own limit call the agent's hook, which drops the oldest (conns.c).
 *
 * A server configuration's certificate, key, CA chain and CRL can be
 * replaced while it serves (fb_tls_engine_reload, for SIGHUP): they live
 * in a reference-counted "material" that each connection takes at its
 * start, so connections already up keep theirs and new ones get the new.
 *
 * The pin travels in the server name NNG hands the engine, after a '#'
 * (a character no DNS name holds): nng_tls_config_server_name is the only
 * per-configuration text NNG passes through. Were this engine not
 * registered, NNG's would take "name#pin" as the host name and match no
 * certificate: the pin fails closed.
 *
 * Errors map to NNG codes so that a refused certificate (either side) is
 * NNG_EPEERAUTH and a cut connection stays a transport error.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/oid.h>
#include <mbedtls/sha1.h>
#include <mbedtls/sha256.h>
#include <mbedtls/ssl.h>
#include <mbedtls/version.h>
#include <mbedtls/x509_crl.h>
#include <mbedtls/x509_crt.h>
#include <nng/nng.h>
#include <nng/supplemental/tls/engine.h>

#include "failback/tls.h"
#include "tls_engine.h"

#define NAME_MAX_LEN 253
#define PIN_MAX_LEN  64

/* What a configuration's connections are made from. */
typedef struct material {
	mbedtls_ssl_config cfg;
	mbedtls_x509_crt   ca;
	mbedtls_x509_crl   crl;
	mbedtls_x509_crt   own;
	mbedtls_pk_context key;
	atomic_uint        refs; /* the configuration's, and one per connection */
} material;

struct nng_tls_engine_config {
	pthread_mutex_t mu; /* guards m once the configuration serves */
	material       *m;
	int             client;
	int             authmode;               /* MBEDTLS_SSL_VERIFY_* */
	char            name[NAME_MAX_LEN + 1]; /* "" when none is expected */
	char            pin[PIN_MAX_LEN + 1];   /* lower-case hex, or "" */
	atomic_uint     conns;                  /* server: connections held */
	atomic_uint     handshaking;            /* server: of which in handshake */
};

struct nng_tls_engine_conn {
	mbedtls_ssl_context    ssl;
	void                  *tls;
	nng_tls_engine_config *cfg;
	material              *m;           /* taken at init, released at fini */
	bool                   counted;     /* in cfg->conns */
	bool                   handshaking; /* in cfg->handshaking */
};

static void material_put(material *m);

/* The configuration config_init made last on this thread (tls.c asks,
 * right after nng_tls_config_alloc, to know it for reloads). */
static _Thread_local nng_tls_engine_config *made_last;

/* Server limits, the same for every listener of the process. */
static atomic_uint  limit_conns      = 0; /* 0: none */
static atomic_uint  limit_handshakes = 0;
static atomic_ulong refused_total;
static void (*_Atomic crowded_hook)(void);

void
fb_tls_server_limits(unsigned max_conns, unsigned max_handshakes, void (*crowded)(void))
{
	atomic_store(&limit_conns, max_conns);
	atomic_store(&limit_handshakes, max_handshakes);
	atomic_store(&crowded_hook, crowded);
}

unsigned long
fb_tls_server_refused(void)
{
	return atomic_load(&refused_total);
}

static void
conn_handshake_over(nng_tls_engine_conn *ec)
{
	if (ec->handshaking) {
		ec->handshaking = false;
		atomic_fetch_sub(&ec->cfg->handshaking, 1);
	}
}

static pthread_mutex_t          rng_mtx = PTHREAD_MUTEX_INITIALIZER;
static mbedtls_entropy_context  rng_entropy;
static mbedtls_ctr_drbg_context rng;

static int
engine_random(void *arg, unsigned char *buf, size_t len)
{
	int rv;

	(void)arg;
	pthread_mutex_lock(&rng_mtx);
	rv = mbedtls_ctr_drbg_random(&rng, buf, len);
	pthread_mutex_unlock(&rng_mtx);
	return rv;
}

static int
map_err(int mrv)
{
	switch (mrv) {
	case MBEDTLS_ERR_SSL_WANT_READ:
	case MBEDTLS_ERR_SSL_WANT_WRITE:
		return NNG_EAGAIN;
	case MBEDTLS_ERR_X509_CERT_VERIFY_FAILED:
	case MBEDTLS_ERR_SSL_NO_CLIENT_CERTIFICATE:
	case MBEDTLS_ERR_SSL_CA_CHAIN_REQUIRED:
	case MBEDTLS_ERR_SSL_PEER_VERIFY_FAILED:
	case MBEDTLS_ERR_SSL_NO_USABLE_CIPHERSUITE:
	case MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE: /* the peer refused us */
		return NNG_EPEERAUTH;
	case MBEDTLS_ERR_SSL_ALLOC_FAILED:
		return NNG_ENOMEM;
	/* Never NNG_ECLOSED for what the peer did: NNG 1.5.2 takes it as its own
	 * close, and a listener that sees it stops accepting for good. */
	case MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY:
	case MBEDTLS_ERR_SSL_CONN_EOF:
	case MBEDTLS_ERR_NET_SEND_FAILED:
	case MBEDTLS_ERR_NET_RECV_FAILED:
	case MBEDTLS_ERR_NET_CONN_RESET:
		return NNG_ECONNSHUT;
	default:
		return NNG_ECRYPTO;
	}
}

static int
bio_send(void *tls, const unsigned char *buf, size_t len)
{
	size_t n = len;

	switch (nng_tls_engine_send(tls, buf, &n)) {
	case 0:
		return (int)n;
	case NNG_EAGAIN:
		return MBEDTLS_ERR_SSL_WANT_WRITE;
	default:
		return MBEDTLS_ERR_NET_SEND_FAILED;
	}
}

static int
bio_recv(void *tls, unsigned char *buf, size_t len)
{
	size_t n = len;

	switch (nng_tls_engine_recv(tls, buf, &n)) {
	case 0:
		return (int)n;
	case NNG_EAGAIN:
		return MBEDTLS_ERR_SSL_WANT_READ;
	default:
		return MBEDTLS_ERR_NET_RECV_FAILED;
	}
}

static void
hex(const unsigned char *b, size_t n, char *out)
{
	static const char d[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i]     = d[b[i] >> 4];
		out[2 * i + 1] = d[b[i] & 15];
	}
	out[2 * n] = '\0';
}

int
fb_tls_crt_names(const mbedtls_x509_crt *crt, const char *name)
{
	size_t len = strlen(name);

	if (!(crt->ext_types & MBEDTLS_X509_EXT_SUBJECT_ALT_NAME))
		return 0;
	for (const mbedtls_x509_sequence *s = &crt->subject_alt_names; s != NULL; s = s->next) {
		if (s->buf.tag != (MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_X509_SAN_DNS_NAME))
			continue;
		if (s->buf.len == len && strncasecmp((const char *)s->buf.p, name, len) == 0)
			return 1;
	}
	return 0;
}

/* Why the last client handshake of this process failed, in words
 * (fb_tls_last_refusal): the checks are ours, so the reason is known. The
 * peer's DNS names are noted by verify (the certificate is gone once the
 * handshake failed). Best effort when handshakes run at once. */
static pthread_mutex_t refusal_mtx = PTHREAD_MUTEX_INITIALIZER;
static char            refusal[600], peer_names[200];

static void
note_peer_names(const mbedtls_x509_crt *crt)
{
	char names[200] = "";

	if (crt->ext_types & MBEDTLS_X509_EXT_SUBJECT_ALT_NAME)
		for (const mbedtls_x509_sequence *q = &crt->subject_alt_names; q != NULL; q = q->next)
			if (q->buf.tag == (MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_X509_SAN_DNS_NAME) &&
			    strlen(names) + q->buf.len + 3 < sizeof(names))
				snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%.*s",
				         names[0] ? ", " : "", (int)q->buf.len, (const char *)q->buf.p);
	pthread_mutex_lock(&refusal_mtx);
	snprintf(peer_names, sizeof(peer_names), "%s", names[0] ? names : "none");
	pthread_mutex_unlock(&refusal_mtx);
}

/* mbedTLS calls this for every certificate of the peer's chain; depth 0 is
 * the peer's own. Setting a flag fails the handshake. */
static int
verify(void *arg, mbedtls_x509_crt *crt, int depth, uint32_t *flags)
{
	const struct nng_tls_engine_config *c = arg;

	if (depth != 0)
		return 0;
	if (c->client)
		note_peer_names(crt);
	if (c->client && c->name[0] != '\0' && !fb_tls_crt_names(crt, c->name))
		*flags |= MBEDTLS_X509_BADCERT_CN_MISMATCH;
	if (c->pin[0] != '\0') {
		unsigned char md[32];
		char          got[65];

		if (strlen(c->pin) == 40) {
			mbedtls_sha1_ret(crt->raw.p, crt->raw.len, md);
			hex(md, 20, got);
		} else {
			mbedtls_sha256_ret(crt->raw.p, crt->raw.len, md, 0);
			hex(md, 32, got);
		}
		if (strcmp(got, c->pin) != 0)
			*flags |= MBEDTLS_X509_BADCERT_NOT_TRUSTED;
	}
	return 0;
}

static int
conn_init(nng_tls_engine_conn *ec, void *tls, nng_tls_engine_config *c)
{
	int mrv;

	ec->tls = tls;
	ec->cfg = c;
	mbedtls_ssl_init(&ec->ssl);
	if (!c->client) {
		unsigned max = atomic_load(&limit_conns), hs = atomic_load(&limit_handshakes);
		void (*hook)(void) = atomic_load(&crowded_hook);

		if (max != 0 && atomic_fetch_add(&c->conns, 1) >= max) {
			atomic_fetch_sub(&c->conns, 1);
			atomic_fetch_add(&refused_total, 1);
			/* Not NNG_ECLOSED (that would stop the listener): a remote
			 * condition, after which NNG accepts the next at once. */
			return NNG_ECONNABORTED;
		}
		ec->counted     = max != 0;
		ec->handshaking = true;
		if (atomic_fetch_add(&c->handshaking, 1) >= hs && hs != 0 && hook != NULL)
			hook();
	}
	pthread_mutex_lock(&c->mu);
	ec->m = c->m;
	atomic_fetch_add(&ec->m->refs, 1);
	pthread_mutex_unlock(&c->mu);
	mbedtls_ssl_set_bio(&ec->ssl, tls, bio_send, bio_recv, NULL);
	if ((mrv = mbedtls_ssl_setup(&ec->ssl, &ec->m->cfg)) != 0)
		return map_err(mrv);
	if (c->name[0] != '\0' && (mrv = mbedtls_ssl_set_hostname(&ec->ssl, c->name)) != 0)
		return map_err(mrv);
	return 0;
}

static void
conn_fini(nng_tls_engine_conn *ec)
{
	/* Also called for a connection whose init never ran (zeroed). */
	if (ec->cfg != NULL) {
		conn_handshake_over(ec);
		if (ec->counted)
			atomic_fetch_sub(&ec->cfg->conns, 1);
		ec->counted = false;
	}
	mbedtls_ssl_free(&ec->ssl);
	if (ec->m != NULL)
		material_put(ec->m);
	ec->m = NULL;
}

static void
conn_close(nng_tls_engine_conn *ec)
{
	(void)mbedtls_ssl_close_notify(&ec->ssl); /* best effort; the TCP close follows */
}


static void
refusal_note(nng_tls_engine_conn *ec, int mrv)
{
	const nng_tls_engine_config *c  = ec->cfg;
	uint32_t                     fl = mbedtls_ssl_get_verify_result(&ec->ssl);
	char                         why[600], names[200];

	pthread_mutex_lock(&refusal_mtx);
	snprintf(names, sizeof(names), "%s", peer_names[0] ? peer_names : "none");
	pthread_mutex_unlock(&refusal_mtx);
	if (mrv == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED && (fl & MBEDTLS_X509_BADCERT_CN_MISMATCH))
		snprintf(why, sizeof(why),
		         "the agent's certificate is not issued to %s (its DNS names: %s); check "
		         "--server-name",
		         c->name, names);
	else if (mrv == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED && (fl & MBEDTLS_X509_BADCERT_REVOKED))
		snprintf(why, sizeof(why), "the agent's certificate is revoked (--crl)");
	else if (mrv == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED && (fl & MBEDTLS_X509_BADCERT_EXPIRED))
		snprintf(why, sizeof(why), "the agent's certificate has expired");
	else if (mrv == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED && (fl & MBEDTLS_X509_BADCERT_FUTURE))
		snprintf(why, sizeof(why), "the agent's certificate is not valid yet (check the clock)");
	else if (mrv == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED && c->pin[0] != '\0')
		snprintf(why, sizeof(why),
		         "the agent's certificate is not the pinned one (CertificateThumbPrint), "
		         "or not from the CA in --ca");
	else if (mrv == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED)
		snprintf(why, sizeof(why),
		         "the agent's certificate (%s) is not from the CA in --ca, or not usable for "
		         "a server",
		         names);
	else if (mrv == MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE)
		snprintf(why, sizeof(why),
		         "the agent refused this certificate: its listener trusts another CA for "
		         "this role (check --cert and the URL), or the certificate is expired or "
		         "revoked");
	else if (mrv == MBEDTLS_ERR_SSL_INVALID_RECORD || mrv == MBEDTLS_ERR_SSL_BAD_HS_SERVER_HELLO ||
	         mrv == MBEDTLS_ERR_SSL_UNEXPECTED_MESSAGE || mrv == MBEDTLS_ERR_SSL_INVALID_MAC)
		snprintf(why, sizeof(why),
		         "the other end does not speak TLS as a failback agent does (is the URL a "
		         "failback listener?)");
	else
		return;
	pthread_mutex_lock(&refusal_mtx);
	snprintf(refusal, sizeof(refusal), "%s", why);
	pthread_mutex_unlock(&refusal_mtx);
}

int
fb_tls_last_refusal(char *buf, size_t len)
{
	int set;

	pthread_mutex_lock(&refusal_mtx);
	set = refusal[0] != '\0';
	if (set)
		snprintf(buf, len, "%s", refusal);
	refusal[0] = '\0';
	pthread_mutex_unlock(&refusal_mtx);
	return set;
}

static int
conn_handshake(nng_tls_engine_conn *ec)
{
	int mrv = mbedtls_ssl_handshake(&ec->ssl);

	if (mrv == 0)
		conn_handshake_over(ec);
	else if (ec->cfg->client && mrv != MBEDTLS_ERR_SSL_WANT_READ &&
	         mrv != MBEDTLS_ERR_SSL_WANT_WRITE)
		refusal_note(ec, mrv);
	return mrv == 0 ? 0 : map_err(mrv);
}

static int
conn_recv(nng_tls_engine_conn *ec, uint8_t *buf, size_t *n)
{
	int mrv = mbedtls_ssl_read(&ec->ssl, buf, *n);

	if (mrv < 0)
		return map_err(mrv);
	if (mrv == 0)
		return NNG_ECONNSHUT; /* the peer's end of the stream */
	*n = (size_t)mrv;
	return 0;
}

static int
conn_send(nng_tls_engine_conn *ec, const uint8_t *buf, size_t *n)
{
	int mrv = mbedtls_ssl_write(&ec->ssl, buf, *n);

	if (mrv < 0)
		return map_err(mrv);
	*n = (size_t)mrv;
	return 0;
}

static bool
conn_verified(nng_tls_engine_conn *ec)
{
	return mbedtls_ssl_get_verify_result(&ec->ssl) == 0;
}

static void
material_put(material *m)
{
	if (atomic_fetch_sub(&m->refs, 1) != 1)
		return;
	mbedtls_ssl_config_free(&m->cfg);
	mbedtls_x509_crt_free(&m->ca);
	mbedtls_x509_crl_free(&m->crl);
	mbedtls_x509_crt_free(&m->own);
	mbedtls_pk_free(&m->key);
	free(m);
}

/* The key exchange's groups, fastest first: mbedTLS 2.28 otherwise offers
 * and picks secp521r1 first, and a handshake (new socket, dial, both
 * sides on one machine) took 29.7 ms at p50 against 15.8 ms with X25519
 * (`rpc_bench 100 500`). The larger curves stay, last, for a peer that
 * offers nothing else. */
static const mbedtls_ecp_group_id ecdhe_groups[] = {
    MBEDTLS_ECP_DP_CURVE25519, MBEDTLS_ECP_DP_SECP256R1, MBEDTLS_ECP_DP_SECP384R1,
    MBEDTLS_ECP_DP_SECP521R1, MBEDTLS_ECP_DP_NONE};

/* A fresh material for c, with c's mode and settings; NULL when out of memory. */
static material *
material_new(nng_tls_engine_config *c)
{
	material *m = calloc(1, sizeof(*m));

	if (m == NULL)
		return NULL;
	mbedtls_ssl_config_init(&m->cfg);
	mbedtls_x509_crt_init(&m->ca);
	mbedtls_x509_crl_init(&m->crl);
	mbedtls_x509_crt_init(&m->own);
	mbedtls_pk_init(&m->key);
	atomic_init(&m->refs, 1);
	if (mbedtls_ssl_config_defaults(&m->cfg, c->client ? MBEDTLS_SSL_IS_CLIENT
	                                                   : MBEDTLS_SSL_IS_SERVER,
	                                MBEDTLS_SSL_TRANSPORT_STREAM,
	                                MBEDTLS_SSL_PRESET_DEFAULT) != 0) {
		material_put(m);
		return NULL;
	}
	mbedtls_ssl_conf_authmode(&m->cfg, c->authmode);
	mbedtls_ssl_conf_min_version(&m->cfg, MBEDTLS_SSL_MAJOR_VERSION_3,
	                             MBEDTLS_SSL_MINOR_VERSION_3);
	mbedtls_ssl_conf_max_version(&m->cfg, MBEDTLS_SSL_MAJOR_VERSION_3,
	                             MBEDTLS_SSL_MINOR_VERSION_3);
	mbedtls_ssl_conf_rng(&m->cfg, engine_random, NULL);
	mbedtls_ssl_conf_verify(&m->cfg, verify, c);
	mbedtls_ssl_conf_curves(&m->cfg, ecdhe_groups);
	return m;
}

/* Loads the CA chain (and CRL) into m. */
static int
material_ca(material *m, const char *certs, const char *crl)
{
	if (mbedtls_x509_crt_parse(&m->ca, (const unsigned char *)certs, strlen(certs) + 1) != 0)
		return NNG_EINVAL;
	if (crl != NULL &&
	    mbedtls_x509_crl_parse(&m->crl, (const unsigned char *)crl, strlen(crl) + 1) != 0)
		return NNG_EINVAL;
	mbedtls_ssl_conf_ca_chain(&m->cfg, &m->ca, crl != NULL ? &m->crl : NULL);
	return 0;
}

/* Loads the own certificate and key into m. */
static int
material_own(material *m, const char *cert, const char *key)
{
	mbedtls_x509_crt_free(&m->own);
	mbedtls_pk_free(&m->key);
	mbedtls_x509_crt_init(&m->own);
	mbedtls_pk_init(&m->key);
	if (mbedtls_x509_crt_parse(&m->own, (const unsigned char *)cert, strlen(cert) + 1) != 0 ||
	    mbedtls_pk_parse_key(&m->key, (const unsigned char *)key, strlen(key) + 1, NULL, 0) !=
	        0 ||
	    mbedtls_ssl_conf_own_cert(&m->cfg, &m->own, &m->key) != 0)
		return NNG_EINVAL;
	return 0;
}

static void
config_fini(nng_tls_engine_config *c)
{
	if (!c->client)
		fb_tls_engine_forget(c);
	if (c->m != NULL)
		material_put(c->m);
	c->m = NULL;
	pthread_mutex_destroy(&c->mu);
}

static int
config_init(nng_tls_engine_config *c, nng_tls_mode mode)
{
	c->client   = mode == NNG_TLS_MODE_CLIENT;
	c->authmode = c->client ? MBEDTLS_SSL_VERIFY_REQUIRED : MBEDTLS_SSL_VERIFY_NONE;
	atomic_init(&c->conns, 0);
	atomic_init(&c->handshaking, 0);
	pthread_mutex_init(&c->mu, NULL);
	if ((c->m = material_new(c)) == NULL) {
		pthread_mutex_destroy(&c->mu);
		return NNG_ENOMEM;
	}
	made_last = c;
	return 0;
}

nng_tls_engine_config *
fb_tls_engine_made_last(void)
{
	return made_last;
}

int
fb_tls_engine_reload(nng_tls_engine_config *c, const char *ca, const char *crl,
                     const char *cert, const char *key)
{
	material *m = material_new(c), *old;
	int       rv;

	if (m == NULL)
		return NNG_ENOMEM;
	if ((rv = material_ca(m, ca, crl)) != 0 || (rv = material_own(m, cert, key)) != 0) {
		material_put(m);
		return rv;
	}
	pthread_mutex_lock(&c->mu);
	old  = c->m;
	c->m = m;
	pthread_mutex_unlock(&c->mu);
	material_put(old); /* freed once its last connection goes */
	return 0;
}

/* "name" or "name#pin". */
static int
config_server(nng_tls_engine_config *c, const char *spec)
{
	const char *hash = strchr(spec, '#');
	size_t      nlen = hash != NULL ? (size_t)(hash - spec) : strlen(spec);

	if (nlen == 0 || nlen > NAME_MAX_LEN)
		return NNG_EINVAL;
	memcpy(c->name, spec, nlen);
	c->name[nlen] = '\0';
	c->pin[0]     = '\0';
	if (hash != NULL) {
		size_t plen = strlen(hash + 1);

		if (plen != 40 && plen != 64)
			return NNG_EINVAL;
		for (size_t i = 0; i < plen; i++) {
			char ch = hash[1 + i];

			if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')))
				return NNG_EINVAL;
			c->pin[i] = ch;
		}
		c->pin[plen] = '\0';
	}
	return 0;
}

static int
config_auth(nng_tls_engine_config *c, nng_tls_auth_mode mode)
{
	switch (mode) {
	case NNG_TLS_AUTH_MODE_NONE:
		c->authmode = MBEDTLS_SSL_VERIFY_NONE;
		break;
	case NNG_TLS_AUTH_MODE_OPTIONAL:
		c->authmode = MBEDTLS_SSL_VERIFY_OPTIONAL;
		break;
	case NNG_TLS_AUTH_MODE_REQUIRED:
		c->authmode = MBEDTLS_SSL_VERIFY_REQUIRED;
		break;
	default:
		return NNG_EINVAL;
	}
	mbedtls_ssl_conf_authmode(&c->m->cfg, c->authmode);
	return 0;
}

static int
config_ca_chain(nng_tls_engine_config *c, const char *certs, const char *crl)
{
	return material_ca(c->m, certs, crl);
}

static int
config_own_cert(nng_tls_engine_config *c, const char *cert, const char *key, const char *pass)
{
	if (pass != NULL)
		return NNG_ENOTSUP; /* encrypted keys are refused before this (tls.c) */
	return material_own(c->m, cert, key);
}

static int
config_version(nng_tls_engine_config *c, nng_tls_version lo, nng_tls_version hi)
{
	(void)c;
	/* TLS 1.2 is what mbedTLS 2.28 and the product speak. */
	return lo <= NNG_TLS_1_2 && hi >= NNG_TLS_1_2 ? 0 : NNG_ENOTSUP;
}

static nng_tls_engine_config_ops config_ops = {
    .size     = sizeof(nng_tls_engine_config),
    .init     = config_init,
    .fini     = config_fini,
    .server   = config_server,
    .auth     = config_auth,
    .ca_chain = config_ca_chain,
    .own_cert = config_own_cert,
    .version  = config_version,
};

static nng_tls_engine_conn_ops conn_ops = {
    .size      = sizeof(nng_tls_engine_conn),
    .init      = conn_init,
    .fini      = conn_fini,
    .close     = conn_close,
    .handshake = conn_handshake,
    .recv      = conn_recv,
    .send      = conn_send,
    .verified  = conn_verified,
};

static const nng_tls_engine engine = {
    .version     = NNG_TLS_ENGINE_VERSION,
    .config_ops  = &config_ops,
    .conn_ops    = &conn_ops,
    .name        = FB_TLS_ENGINE_NAME,
    .description = "failback checks over " MBEDTLS_VERSION_STRING_FULL,
    .fips_mode   = false,
};

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int            registered_rv;

static void
engine_register(void)
{
	nng_tls_config *probe;

	mbedtls_entropy_init(&rng_entropy);
	mbedtls_ctr_drbg_init(&rng);
	if (mbedtls_ctr_drbg_seed(&rng, mbedtls_entropy_func, &rng_entropy, NULL, 0) != 0) {
		registered_rv = NNG_ECRYPTO;
		return;
	}
	/* NNG initialises its own engine lazily, over any registered before:
	 * make it do so first. */
	if ((registered_rv = nng_tls_config_alloc(&probe, NNG_TLS_MODE_CLIENT)) != 0)
		return;
	nng_tls_config_free(probe);
	registered_rv = nng_tls_engine_register(&engine);
}

int
fb_tls_engine_use(void)
{
	pthread_once(&once, engine_register);
	if (registered_rv == 0 && strcmp(nng_tls_engine_name(), FB_TLS_ENGINE_NAME) != 0)
		return NNG_ENOTSUP;
	return registered_rv;
}
