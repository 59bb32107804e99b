/*
 * tls.h - mutual-TLS configurations for NNG listeners and dialers.
 *
 * Every configuration made here requires the peer to present a certificate
 * that chains to ca_file (auth mode REQUIRED), speaks TLS 1.2 (the only
 * version NNG 1.5.2 + mbedTLS 2.28 offer), and presents our own certificate.
 * Client configurations also check the server's DNS name, against the
 * certificate's DNS subjectAltNames only, exactly (no CN, no wildcard;
 * mbedTLS 2.28 cannot match IP-address SANs). The checks run in the
 * product's own TLS engine for NNG (tls_engine.c), in every handshake.
 *
 * Files are validated with mbedTLS before NNG sees them, so a bad path, a
 * non-PEM file, a key that does not match its certificate or a key that group
 * or others can read is reported by name, not as NNG's "Invalid argument".
 * Key material read into memory is zeroed before it is freed.
 */
#ifndef FAILBACK_TLS_H
#define FAILBACK_TLS_H

#include <stdint.h>

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>

#include "failback/err.h"

/* Flags for fb_tls_config_* */
#define FB_TLS_REFUSE_EXPIRED 1 /* our own certificate must be valid now */

/* fb_tls_check_key_mode fails (Access Denied) when path is not a regular
 * file or has any group/other permission bit, with a message that says how
 * to fix it. */
uint32_t fb_tls_check_key_mode(const char *path, fb_err *err);

/* fb_tls_config_server makes a server configuration that accepts clients
 * whose certificate chains to any of ca_files (a NULL-terminated list). On
 * success *out holds one reference, which the caller releases with
 * nng_tls_config_free after setting it on its listeners (they hold their
 * own). */
uint32_t fb_tls_config_server(nng_tls_config **out, const char *const *ca_files,
                              const char *cert_file, const char *key_file, int flags,
                              fb_err *err);

/* fb_tls_config_client makes a client configuration that verifies the
 * server's certificate against ca_file and its DNS name against
 * server_name (required, non-empty). */
uint32_t fb_tls_config_client(nng_tls_config **out, const char *ca_file, const char *cert_file,
                              const char *key_file, const char *server_name, int flags,
                              fb_err *err);

/* fb_tls_config_client_pinned is fb_tls_config_client that also requires
 * the server's certificate to be exactly the one pin names (lower-case hex
 * SHA-1 or SHA-256 of its DER; NULL or "" for none), checked in the
 * handshake of every connection made with the configuration. */
uint32_t fb_tls_config_client_pinned(nng_tls_config **out, const char *ca_file,
                                     const char *cert_file, const char *key_file,
                                     const char *server_name, const char *pin, int flags,
                                     fb_err *err);

/* fb_tls_server_limits bounds what each server configuration made by
 * fb_tls_config_server (one per listener) holds, for the whole process:
 * at most max_conns connections at once (0: no limit), a connection over
 * it closed as it is accepted, before its handshake; when more than
 * max_handshakes of them are in their handshake, crowded is called (from
 * an NNG thread; it must not block) so the caller can drop the oldest.
 * fb_tls_server_refused counts the connections refused so far. */
void fb_tls_server_limits(unsigned max_conns, unsigned max_handshakes, void (*crowded)(void));
unsigned long fb_tls_server_refused(void);

/* fb_tls_last_refusal puts why this process's last client handshake
 * failed into buf (the certificate's names, expiry, revocation, CA, pin;
 * the agent refusing ours; a peer that does not speak TLS) and clears it;
 * 0 when no reason is known. */
int fb_tls_last_refusal(char *buf, size_t len);

/* fb_tls_set_crl makes every configuration made after it check peers
 * against the certificate revocation lists in path (PEM, one or more; NULL
 * or "" for none). A CRL past its next update refuses every certificate of
 * its CA (warned about here, FB0102). */
uint32_t fb_tls_set_crl(const char *path, fb_err *err);

/* fb_tls_cert_subject writes the subject DN of the first certificate in
 * cert_file and its notAfter as "YYYY-MM-DD" into the given buffers. */
uint32_t fb_tls_cert_subject(const char *cert_file, char *subject, size_t subject_len,
                             char *not_after, size_t not_after_len, fb_err *err);

/* fb_tls_peer_thumbprint completes one mutual-TLS handshake with the
 * server at url (tls+tcp://host:port), verifying it as the client configs
 * do, and writes the SHA-1 and SHA-256 thumbprints (lower-case hex, as
 * `openssl x509 -fingerprint` shows them without colons) of the
 * certificate it presented. NNG 1.5.2 does not expose a peer certificate,
 * so a CertificateThumbPrint pin is checked with this probe right before
 * the real connection. */
uint32_t fb_tls_peer_thumbprint(const char *url, const char *ca_file, const char *cert_file,
                                const char *key_file, const char *server_name, char *sha1hex,
                                char *sha256hex, fb_err *err);

/* fb_tls_url_ok is 1 for a tls+tcp:// (tls+tcp4://, tls+tcp6://) URL:
 * the only kind the product listens on or dials. */
int fb_tls_url_ok(const char *url);

/* fb_tls_reload reads again the files every server configuration of the
 * process was made from (CA files, certificate, key, and the CRL file of
 * fb_tls_set_crl), checks them as at the start (key mode, expiry, the
 * key matching the certificate), and only when all of them are good gives
 * each listener its new material for the connections it accepts from now
 * on; connections already up keep theirs. *reloaded counts the listeners.
 * On an error nothing changed (unless the message says otherwise). */
uint32_t fb_tls_reload(unsigned *reloaded, fb_err *err);

#endif
