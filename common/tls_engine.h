/*
 * tls_engine.h - the product's TLS engine for NNG (tls_engine.c), private to
 * common/: tls.c registers it before making any configuration.
 */
#ifndef FB_TLS_ENGINE_H
#define FB_TLS_ENGINE_H

#include <mbedtls/x509_crt.h>

#define FB_TLS_ENGINE_NAME "failback-mbedtls"

/* fb_tls_crt_names is 1 when crt names name exactly (case aside) among
 * its DNS subjectAltNames: no CN, no wildcard. */
int fb_tls_crt_names(const mbedtls_x509_crt *crt, const char *name);

/* fb_tls_crl_file is the process's CRL file (fb_tls_set_crl), or NULL. */
const char *fb_tls_crl_file(void);

/* fb_tls_engine_use registers the engine once per process; 0 when every
 * NNG TLS configuration from now on uses it, else an NNG error. */
int fb_tls_engine_use(void);

/* Reloads (SIGHUP): fb_tls_engine_made_last is the engine configuration
 * the last nng_tls_config_alloc on this thread made; fb_tls_engine_reload
 * replaces a server configuration's CA chain, CRL (may be NULL),
 * certificate and key (PEM text) for the connections it accepts from now
 * on (0, or an NNG error and nothing changed); fb_tls_engine_forget (in
 * tls.c) is told when a server configuration goes. */
struct nng_tls_engine_config;
struct nng_tls_engine_config *fb_tls_engine_made_last(void);
int  fb_tls_engine_reload(struct nng_tls_engine_config *c, const char *ca, const char *crl,
                          const char *cert, const char *key);
void fb_tls_engine_forget(struct nng_tls_engine_config *c);

#endif
