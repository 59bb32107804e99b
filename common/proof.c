/* proof.c - see proof.h. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/md.h>
#include <mbedtls/pk.h>
#include <mbedtls/sha256.h>
#include <mbedtls/x509_crl.h>
#include <mbedtls/x509_crt.h>

#include "failback/proof.h"
#include "tls_engine.h"

#define PROOF_TAG "failback proof v1"

/* SHA-256 of the signed message. */
static int
proof_digest(const char *vm, const char *primary_name, uint64_t time_ms, const uint8_t *nonce,
             unsigned char md[32])
{
	mbedtls_sha256_context c;
	unsigned char          t[8];
	int                    rv;

	for (int i = 0; i < 8; i++)
		t[i] = (unsigned char)(time_ms >> (56 - 8 * i));
	mbedtls_sha256_init(&c);
	rv = mbedtls_sha256_starts_ret(&c, 0) != 0 ||
	     mbedtls_sha256_update_ret(&c, (const unsigned char *)PROOF_TAG, sizeof(PROOF_TAG)) != 0 ||
	     mbedtls_sha256_update_ret(&c, (const unsigned char *)vm, strlen(vm) + 1) != 0 ||
	     mbedtls_sha256_update_ret(&c, (const unsigned char *)primary_name,
	                               strlen(primary_name) + 1) != 0 ||
	     mbedtls_sha256_update_ret(&c, t, sizeof(t)) != 0 ||
	     mbedtls_sha256_update_ret(&c, nonce, FB_PROOF_NONCE_LEN) != 0 ||
	     mbedtls_sha256_finish_ret(&c, md) != 0;
	mbedtls_sha256_free(&c);
	return rv;
}

uint32_t
fb_proof_sign(const char *cert_file, const char *key_file, const char *vm,
              const char *primary_name, uint64_t time_ms, fb_proof *out, fb_err *err)
{
	mbedtls_x509_crt         crt;
	mbedtls_pk_context       pk;
	mbedtls_entropy_context  ent;
	mbedtls_ctr_drbg_context drbg;
	unsigned char            md[32];
	uint32_t                 rv = FB_RV_OK;

	memset(out, 0, sizeof(*out));
	mbedtls_x509_crt_init(&crt);
	mbedtls_pk_init(&pk);
	mbedtls_entropy_init(&ent);
	mbedtls_ctr_drbg_init(&drbg);
	if (mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &ent, NULL, 0) != 0 ||
	    mbedtls_ctr_drbg_random(&drbg, out->nonce, sizeof(out->nonce)) != 0) {
		rv = fb_err_set(err, FB_RV_FAILED, "no randomness for the proof of identity");
		goto done;
	}
	if (mbedtls_x509_crt_parse_file(&crt, cert_file) != 0 ||
	    crt.raw.len > sizeof(out->cert) || mbedtls_pk_parse_keyfile(&pk, key_file, NULL) != 0) {
		rv = fb_err_set(err, FB_RV_INVALID_PARAMETER,
		                "cannot load %s and %s for the proof of identity", cert_file, key_file);
		goto done;
	}
	memcpy(out->cert, crt.raw.p, crt.raw.len);
	out->cert_len = crt.raw.len;
	out->time_ms  = time_ms;
	if (proof_digest(vm, primary_name, time_ms, out->nonce, md) != 0 ||
	    mbedtls_pk_sign(&pk, MBEDTLS_MD_SHA256, md, sizeof(md), out->sig, &out->sig_len,
	                    mbedtls_ctr_drbg_random, &drbg) != 0 ||
	    out->sig_len > sizeof(out->sig))
		rv = fb_err_set(err, FB_RV_FAILED, "cannot sign the proof of identity");
done:
	mbedtls_x509_crt_free(&crt);
	mbedtls_pk_free(&pk);
	mbedtls_ctr_drbg_free(&drbg);
	mbedtls_entropy_free(&ent);
	return rv;
}

uint32_t
fb_proof_verify(const char *ca_file, const uint8_t *cert, size_t cert_len, const char *vm,
                const char *primary_name, uint64_t time_ms, const uint8_t *nonce,
                size_t nonce_len, const uint8_t *sig, size_t sig_len, const char *want_name,
                fb_err *err)
{
	mbedtls_x509_crt ca, crt;
	mbedtls_x509_crl crl;
	const char      *crl_file = fb_tls_crl_file();
	unsigned char    md[32];
	uint32_t         flags = 0;
	uint32_t         rv    = FB_RV_OK;

	if (cert_len == 0 || cert_len > FB_PROOF_CERT_MAX || sig_len == 0 ||
	    sig_len > FB_PROOF_SIG_MAX || nonce_len != FB_PROOF_NONCE_LEN)
		return fb_err_set(err, FB_RV_ACCESS_DENIED, "the request carries no proof of identity");
	mbedtls_x509_crt_init(&ca);
	mbedtls_x509_crt_init(&crt);
	mbedtls_x509_crl_init(&crl);
	if (mbedtls_x509_crt_parse_file(&ca, ca_file) != 0 ||
	    (crl_file != NULL && mbedtls_x509_crl_parse_file(&crl, crl_file) != 0)) {
		rv = fb_err_set(err, FB_RV_FAILED, "cannot load the agents CA to check a proof");
		goto done;
	}
	if (mbedtls_x509_crt_parse_der(&crt, cert, cert_len) != 0) {
		rv = fb_err_set(err, FB_RV_ACCESS_DENIED, "the proof's certificate does not parse");
		goto done;
	}
	if (mbedtls_x509_crt_verify(&crt, &ca, crl_file != NULL ? &crl : NULL, NULL, &flags, NULL,
	                            NULL) != 0) {
		rv = fb_err_set(err, FB_RV_ACCESS_DENIED,
		                "the proof's certificate is not a valid agents-CA certificate "
		                "(flags 0x%x)",
		                (unsigned)flags);
		goto done;
	}
	if (!fb_tls_crt_names(&crt, want_name)) {
		rv = fb_err_set(err, FB_RV_ACCESS_DENIED,
		                "the proof's certificate is not issued to %s", want_name);
		goto done;
	}
	if (proof_digest(vm, primary_name, time_ms, nonce, md) != 0 ||
	    mbedtls_pk_verify(&crt.pk, MBEDTLS_MD_SHA256, md, sizeof(md), sig, sig_len) != 0)
		rv = fb_err_set(err, FB_RV_ACCESS_DENIED, "the proof's signature does not verify");
done:
	mbedtls_x509_crt_free(&ca);
	mbedtls_x509_crt_free(&crt);
	mbedtls_x509_crl_free(&crl);
	return rv;
}

int
fb_proof_cert_names(const char *cert_file, const char *name)
{
	mbedtls_x509_crt crt;
	int              yes;

	mbedtls_x509_crt_init(&crt);
	yes = mbedtls_x509_crt_parse_file(&crt, cert_file) == 0 && fb_tls_crt_names(&crt, name);
	mbedtls_x509_crt_free(&crt);
	return yes;
}

uint32_t
fb_proof_statement(char *buf, size_t cap, const char *const *parts, size_t n, fb_err *err)
{
	size_t len = 0;

	for (size_t i = 0; i < n; i++) {
		size_t pl = strlen(parts[i]);

		for (size_t j = 0; j < pl; j++)
			if ((unsigned char)parts[i][j] < 0x20 || parts[i][j] == 0x7f)
				return fb_err_set(
				    err, FB_RV_INVALID_PARAMETER,
				    "a signed statement may not hold control characters");
		if (len + pl + 2 > cap)
			return fb_err_set(err, FB_RV_INVALID_PARAMETER,
			                  "signed statement too long");
		if (i > 0)
			buf[len++] = '\n';
		memcpy(buf + len, parts[i], pl);
		len += pl;
	}
	buf[len] = '\0';
	return FB_RV_OK;
}

#define MAX_NONCES 1024

static pthread_mutex_t nonce_mtx = PTHREAD_MUTEX_INITIALIZER;
static struct {
	uint8_t  nonce[FB_PROOF_NONCE_LEN];
	uint64_t until; /* wall ms after which the proof is too old anyway */
} nonces[MAX_NONCES];

int
fb_proof_nonce_fresh(const uint8_t *nonce, uint64_t now_wall)
{
	int slot = -1, fresh = 1;

	pthread_mutex_lock(&nonce_mtx);
	for (int i = 0; i < MAX_NONCES; i++) {
		if (nonces[i].until > now_wall &&
		    memcmp(nonces[i].nonce, nonce, FB_PROOF_NONCE_LEN) == 0)
			fresh = 0;
		if (slot < 0 || nonces[i].until < nonces[slot].until)
			slot = i;
	}
	if (fresh) {
		memcpy(nonces[slot].nonce, nonce, FB_PROOF_NONCE_LEN);
		nonces[slot].until = now_wall + 2 * FB_PROOF_WINDOW_MS;
	}
	pthread_mutex_unlock(&nonce_mtx);
	return fresh;
}
