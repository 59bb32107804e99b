/*
 * tls_engine.h - the product's TLS engine for NNG (tls_engine.c), private to
 * common/: tls.c registers it before making any configuration.
 */
#ifndef FB_TLS_ENGINE_H
#define FB_TLS_ENGINE_H

#define FB_TLS_ENGINE_NAME "failback-mbedtls"

/* fb_tls_engine_use registers the engine once per process; 0 when every
 * NNG TLS configuration from now on uses it, else an NNG error. */
int fb_tls_engine_use(void);

#endif
