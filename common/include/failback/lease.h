/*
 * lease.h - who may act on a data directory, across hosts.
 *
 * The flock on DATA_DIR/agent.lock keeps two agents of one host apart; it
 * says nothing to another host that sees the same directory (a cluster or
 * network file system, or a block device a fenced node still has mounted).
 * The lease does: DATA_DIR/agent.lease holds the node name and pid of the
 * agent that acts on the directory and a counter it advances every
 * timeout/4 (a delta lease: no clock is compared across hosts).
 *
 *   acquire  released, or held by this node (whose agent the flock shows
 *            gone): taken at once. Held by another node: watched for one
 *            timeout; if its counter moved, refused (a live agent renews
 *            it); if not, taken over, then watched for one renewal period
 *            more so that an agent which was only frozen reads the new
 *            holder and stops before this one acts.
 *   renew    reads before it writes: another holder, and the lease is lost
 *            (an agent frozen for longer than the timeout that finds it
 *            still its own goes on). The renewal thread then ends the
 *            process at once (exit FB_LEASE_LOST_EXIT) without writing
 *            anything more; so it does when renewals failed for a whole
 *            timeout (the storage is gone).
 *   release  at a clean stop: the next agent, on any node, takes it at once.
 *   check    read-only, for the agent's transfer workers before each write
 *            to a disk: the holder is still their agent.
 *
 * Not a substitute for fencing: a node frozen in the middle of a write
 * finishes that write when it thaws. The lease bounds what the agent
 * itself decides after another node took over to the one renewal period.
 */
#ifndef FAILBACK_LEASE_H
#define FAILBACK_LEASE_H

#include <sys/types.h>

#include "failback/err.h"

#define FB_LEASE_LOST_EXIT       75 /* EX_TEMPFAIL: the lease went to another agent */
#define FB_LEASE_TIMEOUT_DEFAULT 10 /* seconds */
#define FB_LEASE_TIMEOUT_MIN     2
#define FB_LEASE_TIMEOUT_MAX     300
#define FB_LEASE_NODE_MAX        64

typedef struct fb_lease fb_lease;

/* fb_lease_acquire takes dir's lease for node, as above; may block for
 * up to about 1.5 timeouts when another node held it. System in use
 * (naming the holder) when a live agent holds it. */
uint32_t fb_lease_acquire(const char *dir, const char *node, unsigned timeout_s,
                          fb_lease **out, fb_err *err);

/* fb_lease_renew advances the counter once; System in use when the lease
 * is lost (err says to whom). */
uint32_t fb_lease_renew(fb_lease *l, fb_err *err);

/* fb_lease_start renews every timeout/4 on a thread of its own and ends
 * the process (FB1021, exit FB_LEASE_LOST_EXIT) when the lease is lost. */
uint32_t fb_lease_start(fb_lease *l, fb_err *err);

/* fb_lease_release stops the renewal, marks the lease released (durably)
 * and frees l. */
void fb_lease_release(fb_lease *l);

/* fb_lease_check is FB_RV_OK when dir's lease is held by node's agent
 * with process id pid; System in use otherwise. Reads only. */
uint32_t fb_lease_check(const char *dir, const char *node, pid_t pid, fb_err *err);

/* fb_lease_node_ok: 1..FB_LEASE_NODE_MAX of [A-Za-z0-9._-]. */
int fb_lease_node_ok(const char *node);

#endif
