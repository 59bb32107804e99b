/*
 * proof.h - a replica agent proves which agent it is to a primary, per VM.
 *
 * NNG 1.5.2 tells a server nothing about the certificate behind a
 * connection, so a primary cannot tell one agents-CA certificate from
 * another by the connection. Negotiate therefore carries a proof: the
 * replica agent's certificate (DER) and a signature, with that
 * certificate's private key, over
 *
 *   "failback proof v1" NUL vm NUL primary-name NUL time-ms (8, big-endian) nonce (16)
 *
 * where primary-name is the name the replica expects of the primary (so a
 * proof made for one primary is worthless to another). The primary checks
 * the certificate against its agents CA (and CRLs), that it names the
 * VM's receiving side exactly among its DNS subjectAltNames, the
 * signature, that the time is within FB_PROOF_WINDOW_MS of its clock, and
 * that the nonce is new (resync.c); then it answers with a session token
 * the tree and block calls of that VM must carry.
 */
#ifndef FAILBACK_PROOF_H
#define FAILBACK_PROOF_H

#include <stddef.h>
#include <stdint.h>

#include "failback/err.h"

#define FB_PROOF_NONCE_LEN 16
#define FB_PROOF_SIG_MAX   512
#define FB_PROOF_CERT_MAX  16384
#define FB_PROOF_WINDOW_MS 300000u
#define FB_PROOF_TOKEN_LEN 32

typedef struct fb_proof {
	uint8_t  cert[FB_PROOF_CERT_MAX]; /* DER */
	size_t   cert_len;
	uint8_t  sig[FB_PROOF_SIG_MAX];
	size_t   sig_len;
	uint8_t  nonce[FB_PROOF_NONCE_LEN];
	uint64_t time_ms;
} fb_proof;

/* fb_proof_sign makes a proof for vm towards the primary named
 * primary_name, with the certificate and key in the given PEM files. */
uint32_t fb_proof_sign(const char *cert_file, const char *key_file, const char *vm,
                       const char *primary_name, uint64_t time_ms, fb_proof *out, fb_err *err);

/* fb_proof_verify checks a proof for vm and primary_name: the certificate
 * chains to ca_file (and passes the process's CRLs, fb_tls_set_crl), is
 * valid now, names want_name exactly among its DNS subjectAltNames, and
 * signed the message. Returns 0, or Access Denied with the reason. Time
 * and nonce freshness are the caller's. */
uint32_t fb_proof_verify(const char *ca_file, const uint8_t *cert, size_t cert_len,
                         const char *vm, const char *primary_name, uint64_t time_ms,
                         const uint8_t *nonce, size_t nonce_len, const uint8_t *sig,
                         size_t sig_len, const char *want_name, fb_err *err);

/* fb_proof_cert_names is 1 when the certificate in cert_file names name
 * exactly among its DNS subjectAltNames. */
int fb_proof_cert_names(const char *cert_file, const char *name);

/* Relationship steps are proved the same way over a statement instead of
 * a VM name: its parts (a step word first, then the values the step
 * binds) joined by newlines, so it can never read as a VM name. Invalid
 * parameter when a part holds a control character or the whole does not
 * fit in cap. */
#define FB_PROOF_STATEMENT_MAX 1536
uint32_t fb_proof_statement(char *buf, size_t cap, const char *const *parts, size_t n, fb_err *err);

/* fb_proof_nonce_fresh records a proof's nonce; 0 when it was seen within
 * the window (a replay). Kept in memory, for the whole process. */
int fb_proof_nonce_fresh(const uint8_t *nonce, uint64_t now_wall_ms);

#endif
