/*
 * idle.h - connections to this process's listeners that never sent a byte.
 *
 * NNG 1.5.2 sets no handshake timeout and gives no access to its sockets,
 * so a peer that connects and stays silent would hold a file descriptor
 * forever. Every TLS client speaks first (its ClientHello), so a connection
 * that has received nothing for silent_ms is not a client: fb_idle_sweep
 * shuts such connections down (NNG then closes them as it would a peer's
 * hang-up). Only sockets whose local port is one of ports and that are not
 * themselves listening are looked at. Returns -1 without /proc.
 */
#ifndef FAILBACK_IDLE_H
#define FAILBACK_IDLE_H

#include <stddef.h>

int fb_idle_sweep(const int *ports, size_t nports, unsigned silent_ms, unsigned *dropped);

#endif
