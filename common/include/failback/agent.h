/*
 * agent.h - what failback-primary and failback-replica share: settings,
 * listeners, the AgentService, and a stop that loses nothing.
 *
 * fb_agent_main parses the config file and flags, refuses to start on bad
 * settings or an unsafe key, binds the listeners (one per role, each
 * trusting only that role's CA; docs/SECURITY.md), asks the daemon to
 * register its services, serves until SIGTERM/SIGINT, then stops taking
 * calls, lets calls in progress answer, and exits without nng_close.
 *
 * The bound URLs are written to <data_dir>/agent.addr ("<role> <url>" per
 * line, then "pid <pid>"; replaced atomically, removed at start), so tools
 * and tests can use port 0.
 */
#ifndef FAILBACK_AGENT_H
#define FAILBACK_AGENT_H

#include "failback/events.h"
#include "failback/rpc.h"

enum fb_agent_kind { FB_AGENT_PRIMARY, FB_AGENT_REPLICA };

typedef struct fb_agent fb_agent;

typedef struct fb_agent_settings {
	char *config;
	char *data_dir;
	char *listen_control;
	char *listen_monitor;
	char *listen_events;
	char *listen_resync; /* primary only */
	char *cert;
	char *key;
	char *ca_operators;
	char *ca_monitors;
	char *ca_agents;
	char *peer_url;  /* replica only: the primary's resync listener */
	char *peer_name; /* replica only: DNS name in the primary's certificate */
	char *log_level;
	char *workers;
	char *max_transfer_rate; /* replica only: MiB/s per job, 0 = unlimited */
	char *worker_job; /* replica only, internal: run one job's pull as a worker */
} fb_agent_settings;

/* The daemon's hook: register its services on reg. Runs after the settings
 * are validated and before any listener accepts. */
typedef uint32_t (*fb_agent_setup_fn)(fb_agent *agent, fb_rpc_registry *reg, fb_err *err);

/* A worker process's body (see worker_job): no listeners, no lock. */
typedef void (*fb_agent_worker_fn)(fb_agent *agent, const char *job);

/* fb_agent_main never returns: it exits 0 after a clean stop, 1 on a
 * runtime failure and 2 on bad usage or settings. With --worker-job it runs
 * worker instead of serving (worker may be NULL for agents without). */
void fb_agent_main(int argc, char **argv, enum fb_agent_kind kind, fb_agent_setup_fn setup,
                   fb_agent_worker_fn worker) __attribute__((noreturn));

/* fb_agent_argv gives the agent's own command line (to start workers). */
char **fb_agent_argv(const fb_agent *agent, int *argc);

const fb_agent_settings *fb_agent_settings_get(const fb_agent *agent);
fb_events_pub           *fb_agent_events(fb_agent *agent);

#endif
