/*
 * conns.h - the connections to this process's listeners, and dropping the
 * ones that never got past their handshake.
 *
 * NNG 1.5.2 sets no handshake timeout and gives no access to its sockets,
 * so a peer that connects and stalls (silent, or a part of a ClientHello)
 * would hold a file descriptor for ever. A connection is *admitted* once
 * its TLS handshake and the SP header exchange are done and NNG made it a
 * pipe: every server socket reports its pipes through fb_conns_pipe_event
 * (rpc_server.c, events.c). fb_conns_sweep looks at the process's sockets
 * (/proc/self/fd) whose local port is one of ports: one not admitted
 * handshake_ms after the sweep first saw it, and beyond max_handshakes
 * not admitted on one port the ones whose peer has been quiet longest (and
 * at least quiet_ms), are shut down (NNG then closes
 * them as it would a peer's hang-up). Admitted connections are never
 * touched, however idle. Returns -1 without /proc.
 *
 * fb_conns_pipe_event may be called from any thread; fb_conns_sweep from
 * one thread only (it keeps what it saw between calls).
 */
#ifndef FAILBACK_CONNS_H
#define FAILBACK_CONNS_H

#include <stddef.h>

#include <nng/nng.h>

void fb_conns_pipe_event(nng_pipe p, nng_pipe_ev ev);

typedef struct fb_conns_dropped {
	unsigned slow;    /* not admitted within handshake_ms */
	unsigned crowded; /* quietest beyond max_handshakes on a port */
	unsigned pending; /* not admitted yet, left alone */
	unsigned admitted;
} fb_conns_dropped;

/* Each listening socket on ports, as the sweep found it: whether it is
 * there, and how many connections wait in its accept queue (NNG takes
 * them at once; a queue that stays non-empty means it stopped accepting). */
typedef struct fb_conns_listener {
	int      listening;
	unsigned queued;
	unsigned admitted, pending; /* its connections past / in their handshake */
} fb_conns_listener;

int fb_conns_sweep(const int *ports, size_t nports, unsigned handshake_ms, unsigned max_handshakes,
                   unsigned quiet_ms, fb_conns_dropped *d, fb_conns_listener *ls);

#endif
