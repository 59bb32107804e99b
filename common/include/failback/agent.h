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

#include "failback/config.h"
#include "failback/events.h"
#include "failback/metrics.h"
#include "failback/rpc.h"

typedef struct fb_agent fb_agent;

typedef struct fb_agent_settings {
	char *config;
	char *data_dir;
	char *listen_control;
	char *listen_monitor;
	char *listen_events;
	char *listen_resync; /* only when the spec has an agents' listener */
	char *cert;
	char *key;
	char *ca_operators;
	char *ca_monitors;
	char *ca_agents;
	char *crl; /* certificate revocation lists, or NULL */
	char *log_level;
	char *workers;
	char *max_connections; /* per listener */
	char *listen_metrics;  /* http://HOST:PORT for /metrics and /healthz; "": none */
	char *worker_job;      /* only when the spec has a worker: run one job as a worker */
	char *node_name;       /* this host in the data directory's lease */
	char *lease_timeout;   /* seconds */
} fb_agent_settings;

/* The daemon's hook: register its services on reg. Runs after the settings
 * are validated and before any listener accepts. */
typedef uint32_t (*fb_agent_setup_fn)(fb_agent *agent, fb_rpc_registry *reg, fb_err *err);

/* A worker process's body (see worker_job): no listeners, no lock. */
typedef void (*fb_agent_worker_fn)(fb_agent *agent, const char *job);

/* What a program tells the skeleton about itself; the skeleton knows no
 * program. Every string is the program's and outlives the agent. */
typedef struct fb_agent_spec {
	const char          *prog;           /* "failback-replica": logs, --help, --version */
	const char          *role;           /* "replica": GetAgentStatus, --help */
	const char          *listen_control; /* default URLs of the listeners */
	const char          *listen_monitor;
	const char          *listen_events;
	const char          *listen_resync;  /* the agents' listener; NULL: none */
	const char          *listen_metrics; /* default metrics URL (http://...) */
	const fb_config_key *keys;           /* the program's own settings (slots it owns) */
	size_t               nkeys;
	/* Validates the program's settings once parsed (may be NULL). */
	uint32_t (*check)(fb_err *err);
	fb_agent_setup_fn  setup;
	fb_agent_worker_fn worker; /* NULL: no --worker-job */
	/* Appends the program's metrics to a scrape (NNG's HTTP thread: it
	 * may read the database, must not block long). NULL: none. */
	void (*metrics)(fb_agent *agent, fb_metrics *m);
	/* The program's part of the health check, every second: 1 healthy, or
	 * 0 with why (NULL: only the listeners are judged). */
	int (*healthy)(fb_agent *agent, char *why, size_t cap);
	/* At a clean stop: 1 when work is running whose processes may outlive
	 * the stop for a moment (the lease is then left to expire, not
	 * released). NULL: never. */
	int (*busy)(fb_agent *agent);
} fb_agent_spec;

/* fb_agent_main never returns: it exits 0 after a clean stop, 1 on a
 * runtime failure and 2 on bad usage or settings. With --worker-job it runs
 * spec->worker instead of serving. */
void fb_agent_main(int argc, char **argv, const fb_agent_spec *spec) __attribute__((noreturn));

/* fb_agent_argv gives the agent's own command line (to start workers). */
char **fb_agent_argv(const fb_agent *agent, int *argc);

const fb_agent_settings *fb_agent_settings_get(const fb_agent *agent);
fb_events_pub           *fb_agent_events(fb_agent *agent);

#endif
