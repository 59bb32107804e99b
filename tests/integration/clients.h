/*
 * clients.h - in-process clients of the agents for integration tests that
 * must act faster than a failbackctl process can: a TLS RPC client and an
 * events subscriber as a PKI identity, and the wait for a job's end event.
 *
 * Tests end their clients with fb_rpc_client_abandon and
 * fb_events_sub_abandon, never a close: NNG 1.5.2's close can hang for
 * good once its reaper wedged (docs/OPERATIONS.md), and the process exit
 * reclaims the sockets, as the agents and failbackctl do.
 */
#ifndef FBT_CLIENTS_H
#define FBT_CLIENTS_H

#include <stdint.h>

#include "failback/err.h"
#include "failback/events.h"
#include "failback/rpc.h"

/* fbt_client dials url as identity id ("<id>.pem/.key" from the PKI),
 * expecting the server name sname. Returns the RPC return value. */
uint32_t fbt_client(fb_rpc_client **out, const char *url, const char *id, const char *sname,
                    fb_err *err);

/* fbt_subscribe subscribes to url's job events (prefix "job/") as id. */
uint32_t fbt_subscribe(fb_events_sub **out, const char *url, const char *id, const char *sname,
                       fb_err *err);

/* fbt_job_end reads events until job ends (state 7 or more) and returns
 * that state; 0 when none came within about seconds s. */
int fbt_job_end(fb_events_sub *sub, const char *job, unsigned s);

#endif
