/*
 * events.h - job progress events over NNG pub/sub (DESIGN §2 step 7).
 *
 * Each message is the text topic "job/<InstanceID>" followed by one NUL
 * byte and a packed failback.JobEvent. A subscriber filters by topic prefix
 * ("job/" for all jobs). Events carry absolute values: NNG drops messages
 * for a slow subscriber, and a later event still tells the whole truth.
 * Publishing never blocks.
 */
#ifndef FAILBACK_EVENTS_H
#define FAILBACK_EVENTS_H

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>

#include "failback/err.h"
#include "types.pb-c.h"

#define FB_EVENTS_MAX_MSG (64u << 10)

typedef struct fb_events_pub fb_events_pub;
typedef struct fb_events_sub fb_events_sub;

uint32_t fb_events_pub_create(fb_events_pub **out, fb_err *err);

/* fb_events_pub_listen adds a listener (port 0 allowed; the bound URL is
 * written to bound). */
uint32_t fb_events_pub_listen(fb_events_pub *pub, const char *url, nng_tls_config *tls,
                              char *bound, size_t bound_len, fb_err *err);

/* fb_events_publish sends ev under "job/<ev->job_id>", stamping seq.
 * Never blocks; an event no subscriber can take is dropped by NNG. */
uint32_t fb_events_publish(fb_events_pub *pub, Failback__JobEvent *ev, fb_err *err);

/* fb_events_sub_open dials url and subscribes to topics starting with prefix. */
uint32_t fb_events_sub_open(fb_events_sub **out, const char *url, nng_tls_config *tls,
                            const char *prefix, fb_err *err);

/* fb_events_sub_next waits up to timeout_ms for the next event. On success
 * *ev must be freed with failback__job_event__free_unpacked. Timeout when
 * none arrived; malformed messages are skipped. */
uint32_t fb_events_sub_next(fb_events_sub *sub, uint32_t timeout_ms, Failback__JobEvent **ev,
                            fb_err *err);

/* fb_events_sub_connected is 1 while a connection to the publisher is
 * attached: one that was refused (or reached a listener of another
 * protocol) never is, so a caller can give up instead of waiting. */
int fb_events_sub_connected(fb_events_sub *sub);

/* fb_events_sub_close closes the subscriber. NNG 1.5.2 can hang closing a
 * socket while a message is arriving, so call it only when the publisher
 * cannot be sending (tests); a program that stops while events flow exits
 * instead. close(NULL) is a no-op. */
void fb_events_sub_close(fb_events_sub *sub);

/* fb_events_sub_abandon frees the subscriber but leaves its socket to the
 * process's exit, for when a close might meet NNG 1.5.2's hang. */
void fb_events_sub_abandon(fb_events_sub *sub);

/* fb_events_decode splits one message body into topic and event (pure; the
 * fuzz target drives it). */
uint32_t fb_events_decode(const void *body, size_t len, char *topic, size_t topic_len,
                          Failback__JobEvent **ev, fb_err *err);

#endif
