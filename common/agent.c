/*
 * agent.c - the daemon skeleton of agent.h.
 *
 * Signals: SIGTERM, SIGINT and SIGHUP are blocked before any thread starts
 * (NNG's threads inherit the mask) and the main thread takes them with
 * sigtimedwait, so there are no signal handlers at all and no async-signal
 * safety to get wrong.
 *
 * Stop: quiesce every RPC server (bounded, so the agent is gone within a
 * second), then _exit. NNG 1.5.2's nng_close can hang when a message is in
 * flight, and everything that matters is durable before it is
 * acknowledged, so exiting is both the safe and the cheap way out.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/supplemental/http/http.h>

#include "agent.pb-c.h"
#include "failback/agent.h"
#include "failback/clock.h"
#include "failback/config.h"
#include "failback/conns.h"
#include "failback/lease.h"
#include "failback/log.h"
#include "failback/metrics.h"
#include "failback/tls.h"

#define STOP_BUDGET_MS 600
/* seconds a new connection may stay silent before the kernel drops it */
/* A connection has this long to finish its TLS handshake; at most
 * FB_MAX_HANDSHAKES of them (and a quarter of --max-connections, so most
 * of a listener's room is for connections past it) are in one on a
 * listener, the quietest beyond are dropped. A real handshake takes ~15 ms. */
#define FB_HANDSHAKE_S        10
#define FB_MAX_HANDSHAKES     64
#define FB_HANDSHAKE_QUIET_MS 2000 /* one dropped as crowded was quiet this long */

struct fb_agent {
	const fb_agent_spec *spec;
	fb_agent_settings    set;
	fb_rpc_registry   *reg;
	/* One server (its own contexts and handler threads) per role, so a
	 * flood of monitor calls cannot hold what operators' calls need. */
	fb_rpc_server     *control; /* operator listener */
	fb_rpc_server     *monitor; /* monitor listener */
	fb_rpc_server     *resync;  /* agents' listener */
	fb_events_pub     *events;
	int                ports[8]; /* the bound ports of the listeners */
	size_t             nports;
	uint64_t           started_ms, started_unix_ms;
	int                check_only; /* --check-config */
	nng_http_server   *http;       /* /metrics and /healthz, or NULL */
	/* What the last sweep saw, for scrapes (snap_mtx). */
	pthread_mutex_t    snap_mtx;
	fb_conns_listener  snap[8];
	char               snap_name[8][16]; /* each port's listener: control, ... */
	unsigned long      dropped_slow, dropped_crowded;
	int                healthy;
	int                argc;
	char             **argv;
	fb_lease          *lease; /* the data directory's, across hosts (lease.h) */
};

/* Builds the settings table: the common keys, then the program's. */
static size_t
agent_keys(fb_agent *a, fb_config_key *k, size_t cap)
{
	static char help[5][160];
	size_t      n = 0;

	snprintf(help[0], sizeof(help[0]), "operators' control listener URL (default %s)",
	         a->spec->listen_control);
	snprintf(help[1], sizeof(help[1]), "monitors' read-only listener URL (default %s)",
	         a->spec->listen_monitor);
	snprintf(help[2], sizeof(help[2]), "job events (pub/sub) listener URL (default %s)",
	         a->spec->listen_events);
	snprintf(help[3], sizeof(help[3]), "agents' listener URL (default %s)",
	         a->spec->listen_resync ? a->spec->listen_resync : "");
	snprintf(help[4], sizeof(help[4]),
	         "http:// or https:// URL of /metrics and /healthz (default %s; \"\": none)",
	         a->spec->listen_metrics ? a->spec->listen_metrics : "\"\"");
#define KEY(field, text) k[n++] = (fb_config_key){#field, &a->set.field, text}
	KEY(config, "settings file (key = value lines); flags override it");
	KEY(data_dir, "directory for the agent's state (required)");
	KEY(listen_control, help[0]);
	KEY(listen_monitor, help[1]);
	KEY(listen_events, help[2]);
	if (a->spec->listen_resync != NULL)
		KEY(listen_resync, help[3]);
	KEY(cert, "this agent's certificate (PEM; required)");
	KEY(key, "this agent's private key (PEM, mode 0600; required)");
	KEY(ca_operators, "CA that issues operator certificates (required)");
	KEY(ca_monitors, "CA that issues monitor certificates (required)");
	KEY(ca_agents, "CA that issues agent certificates (required)");
	KEY(crl, "certificate revocation lists (PEM), checked on every connection");
	KEY(log_level, "error, warn, info (default) or debug");
	KEY(workers, "handler threads (default 4)");
	KEY(max_connections, "connections each listener holds at once (default 512)");
	KEY(listen_metrics, help[4]);
	KEY(node_name, "this host's name in the data directory's lease (default: the host name; "
	               "under Pacemaker, the cluster node's name)");
	KEY(lease_timeout, "seconds without a renewal after which another node may take the data "
	                   "directory over (2-300, default 10; docs/CLUSTER.md)");
	for (size_t i = 0; i < a->spec->nkeys && n + 1 < cap; i++)
		k[n++] = a->spec->keys[i];
	if (a->spec->worker != NULL)
		KEY(worker_job, "internal: run one job's transfer (the agent starts these)");
#undef KEY
	return n;
}

static void
agent_usage(fb_agent *a, const fb_config_key *keys, size_t n, FILE *f)
{
	fprintf(f,
	        "usage: %s --data-dir DIR [--config FILE] [options]\n\n"
	        "The %s agent of failback. Every listener speaks TLS 1.2 with mutual\n"
	        "authentication; each trusts only the CA of the role it serves.\n"
	        "Bound URLs are written to DIR/agent.addr. SIGTERM or SIGINT stops it.\n\n"
	        "Options (each is also a key in the settings file, with '_' for '-'):\n",
	        a->spec->prog, a->spec->role);
	fb_config_help(keys, n, f);
	fprintf(f, "  --%-22s %s\n", "check-config",
	        "check the settings, certificates, keys and CAs, then exit (0: usable)");
	fprintf(f, "  --%-22s %s\n", "help", "show this text");
	fprintf(f, "  --%-22s %s\n", "version", "print the version");
	fprintf(f, "\nSIGHUP reloads the listeners' certificates, keys, CA files and CRL; other\n"
	           "settings need a restart. An https:// metrics URL requires a monitor's or an\n"
	           "operator's certificate of every scraper.\n"
	           "\nExit status: 0 after a clean stop (and for --check-config when usable), 1 on\n"
	           "a runtime failure (data directory held by another agent, address in use), 2 on\n"
	           "bad usage or settings (unknown key, missing file, unsafe key mode, expired\n"
	           "certificate).\n");
}

static void
agent_default(char **slot, const char *value)
{
	if (*slot == NULL)
		*slot = strdup(value);
}

static uint32_t
agent_require(const char *value, const char *flag, fb_err *err)
{
	if (value == NULL || *value == '\0')
		return fb_err_set(err, FB_RV_INVALID_PARAMETER, "missing setting --%s", flag);
	return FB_RV_OK;
}

static uint32_t
agent_settings(fb_agent *a, int argc, char **argv, fb_err *err)
{
	fb_config_key keys[40];
	size_t        n = agent_keys(a, keys, sizeof(keys) / sizeof(keys[0]));
	uint32_t      rv;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			agent_usage(a, keys, n, stdout);
			fb_rpc_exit(0);
		}
		if (strcmp(argv[i], "--version") == 0) {
			printf("%s %s\n", a->spec->prog, FB_VERSION);
			fb_rpc_exit(0);
		}
	}
	/* The file first, then every flag over it. */
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
			if ((rv = fb_config_load(argv[i + 1], keys, n, err)) != FB_RV_OK)
				return rv;
		} else if (strncmp(argv[i], "--config=", 9) == 0) {
			if ((rv = fb_config_load(argv[i] + 9, keys, n, err)) != FB_RV_OK)
				return rv;
		}
	}
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--check-config") == 0) {
			a->check_only = 1;
			continue;
		}
		if ((rv = fb_config_flag(keys, n, argc, argv, &i, err)) != FB_RV_OK)
			return rv;
	}

	agent_default(&a->set.listen_control, a->spec->listen_control);
	agent_default(&a->set.listen_monitor, a->spec->listen_monitor);
	agent_default(&a->set.listen_events, a->spec->listen_events);
	if (a->spec->listen_resync != NULL)
		agent_default(&a->set.listen_resync, a->spec->listen_resync);
	agent_default(&a->set.log_level, "info");
	if (a->spec->check != NULL && (rv = a->spec->check(err)) != FB_RV_OK)
		return rv;
	agent_default(&a->set.workers, "4");
	agent_default(&a->set.lease_timeout, "10");
	if (a->set.node_name == NULL) {
		char host[256] = "";

		if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0')
			snprintf(host, sizeof(host), "localhost");
		host[strcspn(host, ".")] = '\0'; /* the short name, as Pacemaker's nodes */
		if (strlen(host) > FB_LEASE_NODE_MAX)
			host[FB_LEASE_NODE_MAX] = '\0';
		a->set.node_name = strdup(host);
	}
	if (!fb_lease_node_ok(a->set.node_name))
		return fb_err_set(err, FB_RV_INVALID_PARAMETER,
		                  "--node-name: '%.80s' is not 1-%d of A-Z a-z 0-9 . _ -",
		                  a->set.node_name, FB_LEASE_NODE_MAX);
	{
		char *end;
		long  t = strtol(a->set.lease_timeout, &end, 10);

		if (*end != '\0' || end == a->set.lease_timeout || t < FB_LEASE_TIMEOUT_MIN ||
		    t > FB_LEASE_TIMEOUT_MAX)
			return fb_err_set(err, FB_RV_INVALID_PARAMETER,
			                  "--lease-timeout: '%s' is not a number of seconds from %d to %d",
			                  a->set.lease_timeout, FB_LEASE_TIMEOUT_MIN,
			                  FB_LEASE_TIMEOUT_MAX);
	}
	agent_default(&a->set.max_connections, "512");
	if (a->spec->listen_metrics != NULL)
		agent_default(&a->set.listen_metrics, a->spec->listen_metrics);
	if (a->set.listen_metrics != NULL && a->set.listen_metrics[0] != '\0' &&
	    strncmp(a->set.listen_metrics, "http://", 7) != 0 &&
	    strncmp(a->set.listen_metrics, "https://", 8) != 0)
		return fb_err_set(err, FB_RV_INVALID_PARAMETER,
		                  "--listen-metrics: '%s' is not an http:// or https:// URL (or \"\" "
		                  "for none)",
		                  a->set.listen_metrics);
	{
		const char *const urls[]  = {a->set.listen_control, a->set.listen_monitor,
		                             a->set.listen_events, a->set.listen_resync};
		const char *const flags[] = {"listen-control", "listen-monitor", "listen-events",
		                             "listen-resync"};

		for (size_t i = 0; i < 4; i++)
			if (urls[i] != NULL && !fb_tls_url_ok(urls[i]))
				return fb_err_set(err, FB_RV_INVALID_PARAMETER,
				                  "--%s: '%s' is not a tls+tcp://HOST:PORT URL (every "
				                  "listener speaks TLS)",
				                  flags[i], urls[i]);
	}
	if ((rv = agent_require(a->set.data_dir, "data-dir", err)) != FB_RV_OK ||
	    (rv = agent_require(a->set.cert, "cert", err)) != FB_RV_OK ||
	    (rv = agent_require(a->set.key, "key", err)) != FB_RV_OK ||
	    (rv = agent_require(a->set.ca_operators, "ca-operators", err)) != FB_RV_OK ||
	    (rv = agent_require(a->set.ca_monitors, "ca-monitors", err)) != FB_RV_OK ||
	    (rv = agent_require(a->set.ca_agents, "ca-agents", err)) != FB_RV_OK)
		return rv;
	if (a->set.crl != NULL) {
		fb_err e = {0};

		if ((rv = fb_tls_set_crl(a->set.crl, &e)) != FB_RV_OK)
			return fb_err_set(err, rv, "--crl: %s", e.msg);
	}
	{
		enum fb_log_level lvl;
		char             *end;
		long              w = strtol(a->set.workers, &end, 10);

		if (fb_log_level_parse(a->set.log_level, &lvl) != 0)
			return fb_err_set(err, FB_RV_INVALID_PARAMETER,
			                  "--log-level: '%s' is not error, warn, info or debug",
			                  a->set.log_level);
		fb_log_init(a->spec->prog, lvl);
		if (*end != '\0' || w < 1 || w > 64)
			return fb_err_set(err, FB_RV_INVALID_PARAMETER,
			                  "--workers: '%s' is not a number from 1 to 64",
			                  a->set.workers);
		w = strtol(a->set.max_connections, &end, 10);
		if (*end != '\0' || end == a->set.max_connections || w < 8 || w > 65536)
			return fb_err_set(err, FB_RV_INVALID_PARAMETER,
			                  "--max-connections: '%s' is not a number from 8 to 65536",
			                  a->set.max_connections);
	}
	return FB_RV_OK;
}

/* Paths under the data directory are recorded and given to other agents
 * (a disk used in place): they must not depend on where it was started. */
static uint32_t
agent_abs_data_dir(fb_agent *a, fb_err *err)
{
	char *abs = realpath(a->set.data_dir, NULL);

	if (abs == NULL)
		return fb_err_errno(err, errno, a->set.data_dir);
	free(a->set.data_dir);
	a->set.data_dir = abs;
	return FB_RV_OK;
}

/* What an agent keeps directly in its data directory; none may be a link. */
static const char *const agent_entries[] = {
    "state.db", "state.db-wal", "state.db-shm", "agent.lock", "agent.addr",
    "agent.addr.tmp", "blocks", "vms", "undo",
};

static uint32_t
agent_data_dir(fb_agent *a, fb_err *err)
{
	char        path[4096];
	struct stat st;
	uint32_t    rv;
	int         fd;

	if (mkdir(a->set.data_dir, 0700) != 0 && errno != EEXIST)
		return fb_err_errno(err, errno, a->set.data_dir);
	if (lstat(a->set.data_dir, &st) != 0)
		return fb_err_errno(err, errno, a->set.data_dir);
	if (S_ISLNK(st.st_mode))
		return fb_err_set(err, FB_RV_INVALID_PARAMETER,
		                  "%s is a symbolic link: give the data directory itself",
		                  a->set.data_dir);
	if (!S_ISDIR(st.st_mode))
		return fb_err_set(err, FB_RV_INVALID_PARAMETER, "%s: not a directory",
		                  a->set.data_dir);
	/* Private: the agent's state, keys' neighbours and disks live here. */
	if (st.st_uid != geteuid())
		return fb_err_set(err, FB_RV_INVALID_PARAMETER,
		                  "%s is owned by uid %u, not by this agent's uid %u",
		                  a->set.data_dir, (unsigned)st.st_uid, (unsigned)geteuid());
	if (st.st_mode & 022)
		return fb_err_set(err, FB_RV_INVALID_PARAMETER,
		                  "%s is writable by group or others (mode %04o): chmod 0700 it",
		                  a->set.data_dir, (unsigned)(st.st_mode & 07777));
	for (size_t i = 0; i < sizeof(agent_entries) / sizeof(agent_entries[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", a->set.data_dir, agent_entries[i]);
		if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode))
			return fb_err_set(err, FB_RV_INVALID_PARAMETER,
			                  "%s is a symbolic link: the agent follows none in its data "
			                  "directory",
			                  path);
	}
	if ((rv = agent_abs_data_dir(a, err)) != FB_RV_OK)
		return rv;
	/* One agent per data directory: the lock lives as long as the process. */
	snprintf(path, sizeof(path), "%s/agent.lock", a->set.data_dir);
	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600)) < 0)
		return fb_err_errno(err, errno, path);
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		close(fd);
		return fb_err_set(err, FB_RV_SYSTEM_IN_USE,
		                  "%s: another agent is running on this data directory",
		                  a->set.data_dir);
	}
	/* ...and one across hosts that see the same directory. */
	if ((rv = fb_lease_acquire(a->set.data_dir, a->set.node_name,
	                           (unsigned)atoi(a->set.lease_timeout), &a->lease, err)) !=
	        FB_RV_OK ||
	    (rv = fb_lease_start(a->lease, err)) != FB_RV_OK)
		return rv;
	/* Addresses of a previous run are not ours until we have bound them. */
	snprintf(path, sizeof(path), "%s/agent.addr", a->set.data_dir);
	if (unlink(path) != 0 && errno != ENOENT)
		return fb_err_errno(err, errno, path);
	return FB_RV_OK;
}

static uint32_t
agent_write_addr(fb_agent *a, const char *text, fb_err *err)
{
	char tmp[4096], path[4096];
	int  fd;

	snprintf(path, sizeof(path), "%s/agent.addr", a->set.data_dir);
	snprintf(tmp, sizeof(tmp), "%s/agent.addr.tmp", a->set.data_dir);
	/* a fresh file, never one planted under the name (nor a link's target) */
	if ((unlink(tmp) != 0 && errno != ENOENT) ||
	    (fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600)) < 0)
		return fb_err_errno(err, errno, tmp);
	if (write(fd, text, strlen(text)) != (ssize_t)strlen(text) || fsync(fd) != 0) {
		int e = errno;
		close(fd);
		return fb_err_errno(err, e, tmp);
	}
	close(fd);
	if (rename(tmp, path) != 0)
		return fb_err_errno(err, errno, path);
	return FB_RV_OK;
}

static unsigned
agent_count_fds(void)
{
	DIR           *d = opendir("/proc/self/fd");
	struct dirent *e;
	unsigned       n = 0;

	if (d == NULL)
		return 0;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n > 0 ? n - 1 : 0; /* not the one opendir holds */
}

/* Whether the agent is healthy (agent_sweep decides), and why not. */
static atomic_int      agent_healthy = 1;
static pthread_mutex_t unhealthy_mtx = PTHREAD_MUTEX_INITIALIZER;
static char            unhealthy_why[FB_ERR_MSG_MAX] = ""; /* why not, for /healthz */

static uint32_t
agent_get_status(void *arg, fb_rpc_call *call, const ProtobufCMessage *in, ProtobufCMessage *out)
{
	fb_agent                         *a = arg;
	Failback__GetAgentStatusResponse *r = (Failback__GetAgentStatusResponse *)out;
	fb_rpc_server_stats               st;

	(void)in;
	r->agent       = (char *)a->spec->role;
	r->version     = FB_VERSION;
	r->caller_role = (char *)fb_role_name(fb_rpc_call_role(call));
	r->uptime_ms   = fb_clock_mono_ms() - a->started_ms;
	r->open_fds    = agent_count_fds();
	r->healthy     = atomic_load(&agent_healthy) != 0;
	if (!r->healthy) {
		char why[FB_ERR_MSG_MAX];

		pthread_mutex_lock(&unhealthy_mtx);
		snprintf(why, sizeof(why), "%s", unhealthy_why);
		pthread_mutex_unlock(&unhealthy_mtx);
		r->unhealthy_reason = fb_rpc_strdup(call, why);
	}
	{
		fb_rpc_server *all[] = {a->control, a->monitor, a->resync};

		for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
			if (all[i] == NULL)
				continue;
			fb_rpc_server_stats_get(all[i], &st);
			r->open_pipes += st.open_pipes;
			r->calls_served += st.calls_served;
			r->calls_rejected += st.calls_rejected;
		}
	}
	return FB_RV_OK;
}

static const fb_rpc_method agent_methods[] = {
    {"GetAgentStatus", agent_get_status, FB_ROLES_ALL},
};

/*
 * A peer that connects and sends nothing would hold a file descriptor
 * forever: NNG 1.5.2 sets no handshake timeout and gives no listener's
 * socket. The agent finds its own listening socket on the bound port
 * (/proc/self/fd) and sets TCP_DEFER_ACCEPT, so the kernel hands over a
 * connection only once its first bytes (the ClientHello) arrived, and drops
 * one that stays silent. Without /proc this is skipped, and said (FB1007).
 */
static void
agent_defer_accept(const char *bound)
{
	const char    *colon = strrchr(bound, ':');
	int            port  = colon != NULL ? atoi(colon + 1) : 0, set = 0;
	DIR           *d     = opendir("/proc/self/fd");
	struct dirent *e;

	if (d == NULL || port <= 0) {
		if (d != NULL)
			closedir(d);
		fb_log_warn("FB1007", "%s: cannot find the listening socket (no /proc?): silent "
		                      "connections are not dropped", bound);
		return;
	}
	while ((e = readdir(d)) != NULL) {
		struct sockaddr_storage ss;
		socklen_t               len = sizeof(ss);
		int                     fd = atoi(e->d_name), listening = 0, secs = FB_HANDSHAKE_S;
		socklen_t               ol = sizeof(listening);

		if (e->d_name[0] == '.' || fd == dirfd(d) ||
		    getsockname(fd, (struct sockaddr *)&ss, &len) != 0 ||
		    getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &ol) != 0 || !listening)
			continue;
		if ((ss.ss_family == AF_INET &&
		     ntohs(((struct sockaddr_in *)&ss)->sin_port) == (unsigned)port) ||
		    (ss.ss_family == AF_INET6 &&
		     ntohs(((struct sockaddr_in6 *)&ss)->sin6_port) == (unsigned)port))
			set |= setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &secs, sizeof(secs)) == 0;
	}
	closedir(d);
	if (!set)
		fb_log_warn("FB1007", "%s: cannot set TCP_DEFER_ACCEPT: silent connections are not "
		                      "dropped", bound);
}

static void
agent_note_port(fb_agent *a, const char *bound, const char *name)
{
	const char *colon = strrchr(bound, ':');

	if (colon != NULL && a->nports < sizeof(a->ports) / sizeof(a->ports[0])) {
		snprintf(a->snap_name[a->nports], sizeof(a->snap_name[0]), "%s", name);
		a->ports[a->nports++] = atoi(colon + 1);
	}
}

static uint32_t
agent_listen(fb_agent *a, fb_rpc_server *srv, const char *url, const char *ca, unsigned role,
             char *addr, size_t addrlen, fb_err *err)
{
	const char     *cas[2] = {ca, NULL};
	nng_tls_config *tls;
	char            bound[512];
	uint32_t        rv;

	if ((rv = fb_tls_config_server(&tls, cas, a->set.cert, a->set.key, FB_TLS_REFUSE_EXPIRED,
	                               err)) != FB_RV_OK)
		return rv;
	rv = fb_rpc_server_listen(srv, url, tls, role, bound, sizeof(bound), err);
	nng_tls_config_free(tls);
	if (rv != FB_RV_OK)
		return rv;
	agent_defer_accept(bound);
	agent_note_port(a, bound, role == FB_ROLE_OPERATOR ? "control"
	                          : role == FB_ROLE_MONITOR ? "monitor"
	                                                    : "agents");
	fb_log_info("FB1002", "listening for %s calls on %s", fb_role_name(role), bound);
	snprintf(addr + strlen(addr), addrlen - strlen(addr), "%s %s\n", fb_role_name(role),
	         bound);
	return FB_RV_OK;
}

/* Peers that hold connections open use file descriptors: take the hard
 * limit the system allows, so they run out later, and say whether the
 * listeners' own limits keep within it. */
static void
agent_raise_fd_limit(const fb_agent *a)
{
	struct rlimit      rl;
	unsigned long long held = 4ull * (unsigned long long)atoi(a->set.max_connections);

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
		(void)getrlimit(RLIMIT_NOFILE, &rl);
	}
	fb_log_info("FB1006", "open file limit %llu; the listeners hold at most %llu connections",
	            (unsigned long long)rl.rlim_cur, held);
	if (rl.rlim_cur != RLIM_INFINITY && held + 256 > rl.rlim_cur)
		fb_log_warn("FB1006",
		            "open file limit %llu is below what the listeners may hold "
		            "(%llu) plus 256 for the agent: lower --max-connections or "
		            "raise LimitNOFILE",
		            (unsigned long long)rl.rlim_cur, held);
}

static unsigned
agent_max_handshakes(const fb_agent *a)
{
	unsigned q = (unsigned)atoi(a->set.max_connections) / 4;

	return q < FB_MAX_HANDSHAKES ? q : FB_MAX_HANDSHAKES;
}

/* Called by the TLS engine (an NNG thread) when a listener has more
 * connections in their handshake than FB_MAX_HANDSHAKES: wake the main
 * loop to sweep now, once until it has. */
static atomic_int sweep_asked;

static void
agent_crowded(void)
{
	if (atomic_exchange(&sweep_asked, 1) == 0)
		kill(getpid(), SIGUSR1);
}

/*
 * systemd's notification protocol (sd_notify(3), without libsystemd): one
 * datagram to $NOTIFY_SOCKET ("@" for the abstract namespace). READY=1
 * once the listeners are bound, STOPPING=1 at SIGTERM, and WATCHDOG=1
 * every second while the agent is healthy (see agent_sweep), when the unit
 * sets WatchdogSec. Nothing happens without $NOTIFY_SOCKET.
 */
static void
agent_notify(const char *msg)
{
	const char        *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa   = {.sun_family = AF_UNIX};
	size_t             len;
	int                fd;

	if (path == NULL || (path[0] != '/' && path[0] != '@') ||
	    (len = strlen(path)) >= sizeof(sa.sun_path))
		return;
	memcpy(sa.sun_path, path, len);
	if (path[0] == '@')
		sa.sun_path[0] = '\0';
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
		return;
	(void)sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa,
	             (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len));
	close(fd);
}

/* Sweeps a listener's accept queue may stay non-empty before the agent
 * counts it as no longer accepting (NNG takes connections at once). */
#define FB_STUCK_SWEEPS 10

static void
agent_unhealthy_why(const char *why)
{
	pthread_mutex_lock(&unhealthy_mtx);
	snprintf(unhealthy_why, sizeof(unhealthy_why), "%s", why);
	pthread_mutex_unlock(&unhealthy_mtx);
}

/* SIGHUP: the listeners' certificates, keys, CA files and CRL are read
 * again; the other settings need a restart. */
static void
agent_reload(fb_agent *a)
{
	fb_err   err = {0};
	unsigned n;
	char     subject[256] = "?", until[32] = "?";

	agent_notify("RELOADING=1");
	if (fb_tls_reload(&n, &err) != FB_RV_OK) {
		fb_log_error("FB1013", "SIGHUP: certificates not reloaded, the listeners keep the ones "
		             "they have: %s",
		             err.msg);
	} else {
		fb_err e = {0};

		fb_tls_cert_subject(a->set.cert, subject, sizeof(subject), until, sizeof(until), &e);
		fb_log_info("FB1005", "SIGHUP: %u listener(s) reloaded their certificate, key, CA files "
		            "and CRL; new connections get %s (valid until %s); other settings need a "
		            "restart",
		            n, subject, until);
	}
	agent_notify("READY=1");
}

/* Drops connections that did not get past their handshake (conns.h), and
 * says so, and what the listeners refused since the last sweep. Returns
 * whether the agent is healthy: every listener's socket is still there and
 * none has kept connections waiting in its accept queue for
 * FB_STUCK_SWEEPS sweeps in a row (FB1011). */
static int
agent_sweep(fb_agent *a, unsigned long *refused_seen)
{
	static unsigned   waiting[8];
	fb_conns_dropped  d;
	fb_conns_listener ls[8];
	unsigned long     refused = fb_tls_server_refused();
	int               healthy = 1;

	atomic_store(&sweep_asked, 0);
	if (fb_conns_sweep(a->ports, a->nports, FB_HANDSHAKE_S * 1000u, agent_max_handshakes(a),
	                   FB_HANDSHAKE_QUIET_MS, &d, ls) != 0)
		return 1; /* no /proc: nothing to judge by (FB1007 said so) */
	if (d.slow > 0)
		fb_log_warn("FB1008",
		            "dropped %u connection(s) that did not finish a TLS handshake "
		            "in %u s",
		            d.slow, FB_HANDSHAKE_S);
	if (d.crowded > 0)
		fb_log_warn("FB1009",
		            "dropped the %u quietest connection(s) in a handshake: more than "
		            "%u at once on a listener",
		            d.crowded, agent_max_handshakes(a));
	if (refused != *refused_seen)
		fb_log_warn("FB1010",
		            "refused %lu connection(s): a listener held its limit of %s "
		            "(--max-connections)",
		            refused - *refused_seen, a->set.max_connections);
	*refused_seen = refused;
	pthread_mutex_lock(&a->snap_mtx);
	memcpy(a->snap, ls, sizeof(ls));
	a->dropped_slow += d.slow;
	a->dropped_crowded += d.crowded;
	pthread_mutex_unlock(&a->snap_mtx);
	for (size_t i = 0; i < a->nports; i++) {
		waiting[i] = ls[i].queued > 0 ? waiting[i] + 1 : 0;
		if (!ls[i].listening || waiting[i] >= FB_STUCK_SWEEPS) {
			char why[128];

			snprintf(why, sizeof(why), "the listener on port %d %s (FB1011)", a->ports[i],
			         !ls[i].listening ? "is gone" : "has left connections waiting for 10 s");
			if (healthy)
				fb_log_error("FB1011", "%s: the agent is not healthy (the systemd watchdog "
				             "is no longer fed)",
				             why);
			agent_unhealthy_why(why);
			healthy = 0;
		}
	}
	return healthy;
}

/* --- /metrics and /healthz (NNG's HTTP server) --- */



static unsigned
agent_open_fds(void)
{
	DIR           *d = opendir("/proc/self/fd");
	struct dirent *e;
	unsigned       n = 0;

	if (d == NULL)
		return 0;
	while ((e = readdir(d)) != NULL)
		n += e->d_name[0] != '.';
	closedir(d);
	return n > 0 ? n - 1 : 0; /* the directory's own descriptor */
}

static void
agent_rpc_metrics(fb_metrics *m, const char *family, fb_rpc_server *srv, const char *listener,
                  int calls)
{
	fb_rpc_server_stats st;

	if (srv == NULL)
		return;
	fb_rpc_server_stats_get(srv, &st);
	if (calls) {
		fb_metrics_sample(m, family, (const char *[]){"listener", listener, "result", "ok", NULL},
		                  (double)st.calls_served);
		fb_metrics_sample(m, family,
		                  (const char *[]){"listener", listener, "result", "error", NULL},
		                  (double)st.calls_rejected);
	} else {
		fb_metrics_sample(m, family, (const char *[]){"listener", listener, NULL},
		                  (double)st.open_pipes);
	}
}

static void
agent_metrics(fb_agent *a, fb_metrics *m)
{
	const char *prog = a->spec->prog;
	size_t      np;

	fb_metrics_family(m, "failback_build_info", "gauge", "The program and its version.");
	fb_metrics_sample(m, "failback_build_info",
	                  (const char *[]){"program", prog, "version", FB_VERSION, NULL}, 1);
	fb_metrics_family(m, "failback_start_time_seconds", "gauge",
	                  "When the agent started, in seconds since the epoch.");
	fb_metrics_sample(m, "failback_start_time_seconds", NULL, (double)a->started_unix_ms / 1000);
	fb_metrics_family(m, "failback_healthy", "gauge",
	                  "1 while every listener accepts (what feeds the systemd watchdog).");
	fb_metrics_sample(m, "failback_healthy", NULL, atomic_load(&agent_healthy));
	fb_metrics_family(m, "failback_open_fds", "gauge", "Open file descriptors.");
	fb_metrics_sample(m, "failback_open_fds", NULL, agent_open_fds());

	pthread_mutex_lock(&a->snap_mtx);
	np = a->nports;
	fb_metrics_family(m, "failback_listener_connections", "gauge",
	                  "Connections a listener holds, past their TLS handshake or in it.");
	for (size_t i = 0; i < np; i++) {
		fb_metrics_sample(m, "failback_listener_connections",
		                  (const char *[]){"listener", a->snap_name[i], "state", "admitted", NULL},
		                  a->snap[i].admitted);
		fb_metrics_sample(m, "failback_listener_connections",
		                  (const char *[]){"listener", a->snap_name[i], "state", "handshake", NULL},
		                  a->snap[i].pending);
	}
	fb_metrics_family(m, "failback_listener_listening", "gauge",
	                  "1 while the listener's socket is listening.");
	for (size_t i = 0; i < np; i++)
		fb_metrics_sample(m, "failback_listener_listening",
		                  (const char *[]){"listener", a->snap_name[i], NULL},
		                  a->snap[i].listening);
	fb_metrics_family(m, "failback_listener_accept_queue", "gauge",
	                  "Connections waiting to be accepted (NNG takes them at once).");
	for (size_t i = 0; i < np; i++)
		fb_metrics_sample(m, "failback_listener_accept_queue",
		                  (const char *[]){"listener", a->snap_name[i], NULL}, a->snap[i].queued);
	fb_metrics_family(m, "failback_connections_dropped_total", "counter",
	                  "Connections dropped before their TLS handshake was done.");
	fb_metrics_sample(m, "failback_connections_dropped_total",
	                  (const char *[]){"reason", "handshake_timeout", NULL},
	                  (double)a->dropped_slow);
	fb_metrics_sample(m, "failback_connections_dropped_total",
	                  (const char *[]){"reason", "crowded", NULL}, (double)a->dropped_crowded);
	pthread_mutex_unlock(&a->snap_mtx);
	fb_metrics_family(m, "failback_connections_refused_total", "counter",
	                  "Connections refused as accepted: a listener held --max-connections.");
	fb_metrics_sample(m, "failback_connections_refused_total", NULL,
	                  (double)fb_tls_server_refused());
	fb_metrics_family(m, "failback_rpc_calls_total", "counter",
	                  "Calls answered, by listener and outcome (ok: 0 or 4096).");
	agent_rpc_metrics(m, "failback_rpc_calls_total", a->control, "control", 1);
	agent_rpc_metrics(m, "failback_rpc_calls_total", a->monitor, "monitor", 1);
	agent_rpc_metrics(m, "failback_rpc_calls_total", a->resync, "agents", 1);
	fb_metrics_family(m, "failback_rpc_pipes", "gauge", "Open connections of each RPC listener.");
	agent_rpc_metrics(m, "failback_rpc_pipes", a->control, "control", 0);
	agent_rpc_metrics(m, "failback_rpc_pipes", a->monitor, "monitor", 0);
	agent_rpc_metrics(m, "failback_rpc_pipes", a->resync, "agents", 0);
	if (a->spec->metrics != NULL)
		a->spec->metrics(a, m);
}

static void
agent_http_reply(nng_aio *aio, uint16_t status, const char *type, const char *body, size_t len)
{
	nng_http_res *res;

	if (nng_http_res_alloc(&res) != 0) {
		nng_aio_finish(aio, NNG_ENOMEM);
		return;
	}
	if (nng_http_res_set_status(res, status) != 0 ||
	    nng_http_res_set_header(res, "Content-Type", type) != 0 ||
	    nng_http_res_copy_data(res, body, len) != 0) {
		nng_http_res_free(res);
		nng_aio_finish(aio, NNG_ENOMEM);
		return;
	}
	nng_aio_set_output(aio, 0, res);
	nng_aio_finish(aio, 0);
}

static void
agent_http_metrics(nng_aio *aio)
{
	nng_http_handler *h = nng_aio_get_input(aio, 1);
	fb_agent         *a = nng_http_handler_get_data(h);
	fb_metrics        m = {0};

	agent_metrics(a, &m);
	if (m.oom)
		agent_http_reply(aio, 500, "text/plain", "out of memory\n", 14);
	else
		agent_http_reply(aio, 200, "text/plain; version=0.0.4; charset=utf-8", m.p, m.len);
	fb_metrics_free(&m);
}

static void
agent_http_healthz(nng_aio *aio)
{
	char why[FB_ERR_MSG_MAX + 16];
	int  n;

	if (atomic_load(&agent_healthy)) {
		agent_http_reply(aio, 200, "text/plain", "ok\n", 3);
		return;
	}
	pthread_mutex_lock(&unhealthy_mtx);
	n = snprintf(why, sizeof(why), "%s\n", unhealthy_why);
	pthread_mutex_unlock(&unhealthy_mtx);
	agent_http_reply(aio, 503, "text/plain", why, (size_t)n < sizeof(why) ? (size_t)n : sizeof(why) - 1);
}

static uint32_t
agent_http_start(fb_agent *a, char *addr, size_t addrlen, fb_err *err)
{
	const char *url = a->set.listen_metrics;
	struct {
		const char *path;
		void (*fn)(nng_aio *);
	} routes[] = {{"/metrics", agent_http_metrics}, {"/healthz", agent_http_healthz}};
	nng_sockaddr sa;
	char         bound[256];
	nng_url     *u;
	int          rv;

	if (url == NULL || url[0] == '\0')
		return FB_RV_OK;
	if ((rv = nng_url_parse(&u, url)) != 0)
		return fb_err_nng(err, rv, url);
	if ((rv = nng_http_server_hold(&a->http, u)) != 0) {
		nng_url_free(u);
		return fb_err_nng(err, rv, url);
	}
	/* https://: the agent's certificate, and a monitor's or an operator's
	 * required of every scraper (reloaded by SIGHUP like the others). */
	if (strcmp(u->u_scheme, "https") == 0) {
		const char     *cas[3] = {a->set.ca_monitors, a->set.ca_operators, NULL};
		nng_tls_config *tls;
		uint32_t        frv;

		if ((frv = fb_tls_config_server(&tls, cas, a->set.cert, a->set.key,
		                                FB_TLS_REFUSE_EXPIRED, err)) != FB_RV_OK) {
			nng_url_free(u);
			return frv;
		}
		rv = nng_http_server_set_tls(a->http, tls);
		nng_tls_config_free(tls);
		if (rv != 0) {
			nng_url_free(u);
			return fb_err_nng(err, rv, url);
		}
	}
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		nng_http_handler *h;

		if ((rv = nng_http_handler_alloc(&h, routes[i].path, routes[i].fn)) != 0 ||
		    (rv = nng_http_handler_set_method(h, "GET")) != 0 ||
		    (rv = nng_http_handler_set_data(h, a, NULL)) != 0 ||
		    (rv = nng_http_server_add_handler(a->http, h)) != 0) {
			nng_url_free(u);
			return fb_err_nng(err, rv, url);
		}
	}
	if ((rv = nng_http_server_start(a->http)) != 0) {
		nng_url_free(u);
		return fb_err_nng(err, rv, url);
	}
	if (nng_http_server_get_addr(a->http, &sa) == 0 && sa.s_family == NNG_AF_INET) {
		char ip[INET_ADDRSTRLEN];

		inet_ntop(AF_INET, &sa.s_in.sa_addr, ip, sizeof(ip));
		snprintf(bound, sizeof(bound), "%s://%s:%u", u->u_scheme, ip,
		         (unsigned)ntohs(sa.s_in.sa_port));
	} else {
		snprintf(bound, sizeof(bound), "%s", url);
	}
	nng_url_free(u);
	fb_log_info("FB1002", "serving metrics on %s/metrics and %s/healthz", bound, bound);
	snprintf(addr + strlen(addr), addrlen - strlen(addr), "metrics %s\n", bound);
	return FB_RV_OK;
}

static uint32_t
agent_start(fb_agent *a, fb_err *err)
{
	const char     *event_cas[3] = {a->set.ca_operators, a->set.ca_monitors, NULL};
	nng_tls_config *tls;
	char            addr[2048] = "", bound[512], subject[256], until[16];
	int             workers    = atoi(a->set.workers);
	uint32_t        rv;

	if ((rv = fb_tls_cert_subject(a->set.cert, subject, sizeof(subject), until,
	                              sizeof(until), err)) != FB_RV_OK)
		return rv;
	fb_log_info("FB1001", "%s %s starting as %s (certificate valid until %s)",
	            a->spec->prog, FB_VERSION, subject, until);
	agent_raise_fd_limit(a);
	fb_tls_server_limits((unsigned)atoi(a->set.max_connections), agent_max_handshakes(a),
	                     agent_crowded);
	if ((rv = agent_data_dir(a, err)) != FB_RV_OK)
		return rv;
	if ((rv = fb_rpc_registry_create(&a->reg, err)) != FB_RV_OK ||
	    (rv = fb_rpc_registry_add(a->reg, &failback__agent_service__descriptor, agent_methods,
	                              1, a, err)) != FB_RV_OK)
		return rv;
	if ((rv = fb_events_pub_create(&a->events, err)) != FB_RV_OK)
		return rv;
	if ((rv = a->spec->setup(a, a->reg, err)) != FB_RV_OK)
		return rv;
	if ((rv = fb_rpc_server_create(&a->control, a->reg, 32, workers, err)) != FB_RV_OK ||
	    (rv = fb_rpc_server_create(&a->monitor, a->reg, 16, workers > 1 ? workers / 2 : 1,
	                               err)) != FB_RV_OK)
		return rv;
	if ((rv = agent_listen(a, a->control, a->set.listen_control, a->set.ca_operators,
	                       FB_ROLE_OPERATOR, addr, sizeof(addr), err)) != FB_RV_OK ||
	    (rv = agent_listen(a, a->monitor, a->set.listen_monitor, a->set.ca_monitors,
	                       FB_ROLE_MONITOR, addr, sizeof(addr), err)) != FB_RV_OK)
		return rv;
	if (a->spec->listen_resync != NULL) {
		if ((rv = fb_rpc_server_create(&a->resync, a->reg, 32, workers, err)) != FB_RV_OK ||
		    (rv = agent_listen(a, a->resync, a->set.listen_resync, a->set.ca_agents,
		                       FB_ROLE_AGENT, addr, sizeof(addr), err)) != FB_RV_OK)
			return rv;
	}
	if ((rv = fb_tls_config_server(&tls, event_cas, a->set.cert, a->set.key,
	                               FB_TLS_REFUSE_EXPIRED, err)) != FB_RV_OK)
		return rv;
	rv = fb_events_pub_listen(a->events, a->set.listen_events, tls, bound, sizeof(bound), err);
	nng_tls_config_free(tls);
	if (rv != FB_RV_OK)
		return rv;
	agent_defer_accept(bound);
	agent_note_port(a, bound, "events");
	fb_log_info("FB1002", "publishing events on %s", bound);
	snprintf(addr + strlen(addr), sizeof(addr) - strlen(addr), "events %s\n", bound);

	a->started_ms      = fb_clock_mono_ms();
	a->started_unix_ms = (uint64_t)fb_clock_unix_ms();
	if ((rv = agent_http_start(a, addr, sizeof(addr), err)) != FB_RV_OK)
		return rv;
	snprintf(addr + strlen(addr), sizeof(addr) - strlen(addr), "pid %d\n", (int)getpid());
	if ((rv = fb_rpc_server_start(a->control, err)) != FB_RV_OK ||
	    (rv = fb_rpc_server_start(a->monitor, err)) != FB_RV_OK ||
	    (a->resync != NULL && (rv = fb_rpc_server_start(a->resync, err)) != FB_RV_OK))
		return rv;
	return agent_write_addr(a, addr, err);
}

/* What is left of the stop budget that began at stop_at. */
static uint32_t
agent_budget_left(uint64_t stop_at)
{
	uint64_t spent = fb_clock_mono_ms() - stop_at;

	return spent < STOP_BUDGET_MS ? (uint32_t)(STOP_BUDGET_MS - spent) : 0;
}

/* --check-config: what agent_start would load, loaded and dropped; the
 * data directory, when it exists, checked as at start. Exits. */
static void
agent_check_config(fb_agent *a)
{
	const char     *cas[] = {a->set.ca_operators, a->set.ca_monitors, a->set.ca_agents};
	nng_tls_config *tls;
	char            subject[256], until[16];
	struct stat     st;
	fb_err          err = {0};

	for (size_t i = 0; i < sizeof(cas) / sizeof(cas[0]); i++) {
		const char *one[2] = {cas[i], NULL};

		if (fb_tls_config_server(&tls, one, a->set.cert, a->set.key, FB_TLS_REFUSE_EXPIRED,
		                         &err) != FB_RV_OK) {
			fprintf(stderr, "%s: configuration not usable: %s\n", a->spec->prog, err.msg);
			fb_rpc_exit(2);
		}
		nng_tls_config_free(tls);
	}
	if (fb_tls_cert_subject(a->set.cert, subject, sizeof(subject), until, sizeof(until),
	                        &err) != FB_RV_OK) {
		fprintf(stderr, "%s: configuration not usable: %s\n", a->spec->prog, err.msg);
		fb_rpc_exit(2);
	}
	if (lstat(a->set.data_dir, &st) == 0 &&
	    (!S_ISDIR(st.st_mode) || (st.st_mode & 022) != 0 || st.st_uid != geteuid())) {
		fprintf(stderr,
		        "%s: configuration not usable: data directory %s must be a directory "
		        "owned by this user and not writable by group or others\n",
		        a->spec->prog, a->set.data_dir);
		fb_rpc_exit(2);
	}
	printf("%s: configuration OK: %s (certificate valid until %s), data directory %s%s\n",
	       a->spec->prog, subject, until, a->set.data_dir,
	       lstat(a->set.data_dir, &st) == 0 ? "" : " (made at start)");
	fb_rpc_exit(0);
}

void
fb_agent_main(int argc, char **argv, const fb_agent_spec *spec)
{
	static fb_agent a;
	fb_err          err = {0};
	sigset_t        set;
	siginfo_t       si;
	uint64_t        stop_at;
	uint32_t        rv;

	a.spec = spec;
	pthread_mutex_init(&a.snap_mtx, NULL);
	a.argc = argc;
	a.argv = argv;
	umask(077); /* every file and directory the agent makes is its own */
	fb_log_init(spec->prog, FB_LOG_INFO);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	if ((rv = agent_settings(&a, argc, argv, &err)) != FB_RV_OK) {
		fprintf(stderr, "%s: %s\n(see %s --help)\n", spec->prog, err.msg, spec->prog);
		fb_rpc_exit(2);
	}
	if (a.check_only)
		agent_check_config(&a);
	if (a.set.worker_job != NULL && spec->worker != NULL) {
		fb_log_init("failback-worker", fb_log_enabled(FB_LOG_DEBUG) ? FB_LOG_DEBUG : FB_LOG_INFO);
		if ((rv = agent_abs_data_dir(&a, &err)) != FB_RV_OK) {
			fb_log_error("FB1004", "worker: %s", err.msg);
			fb_rpc_exit(1);
		}
		spec->worker(&a, a.set.worker_job);
		fb_rpc_exit(1);
	}
	if ((rv = agent_start(&a, &err)) != FB_RV_OK) {
		fb_log_error("FB1003", "cannot start: %s", err.msg);
		fb_rpc_exit(rv == FB_RV_INVALID_PARAMETER || rv == FB_RV_ACCESS_DENIED ||
		                    rv == FB_RV_FILE_NOT_FOUND
		                ? 2
		                : 1);
	}
	fb_log_info("FB1004", "ready");
	agent_notify("READY=1");
	for (unsigned long refused = 0;;) {
		int             healthy;
		struct timespec ts  = {1, 0};
		int             sig = sigtimedwait(&set, &si, &ts);

		if (sig == SIGTERM || sig == SIGINT)
			break;
		/* every second, and when a listener is crowded */
		healthy = agent_sweep(&a, &refused);
		if (healthy && spec->healthy != NULL) {
			char why[FB_ERR_MSG_MAX] = "";

			if (!spec->healthy(&a, why, sizeof(why))) {
				if (atomic_load(&agent_healthy))
					fb_log_error("FB1012", "%s: the agent is not healthy (the systemd "
					             "watchdog is no longer fed)",
					             why);
				agent_unhealthy_why(why);
				healthy = 0;
			}
		}
		if (healthy && !atomic_load(&agent_healthy))
			fb_log_info("FB1012", "healthy again");
		atomic_store(&agent_healthy, healthy);
		if (healthy && getenv("WATCHDOG_USEC") != NULL)
			agent_notify("WATCHDOG=1");
		if (sig == SIGHUP)
			agent_reload(&a);
	}
	stop_at = fb_clock_mono_ms();
	agent_notify("STOPPING=1");
	fb_log_info("FB1090", "stopping: no new calls, waiting for calls in progress");
	rv = fb_rpc_server_quiesce(a.control, STOP_BUDGET_MS);
	if (rv == FB_RV_OK)
		rv = fb_rpc_server_quiesce(a.monitor, agent_budget_left(stop_at));
	if (a.resync != NULL && rv == FB_RV_OK)
		rv = fb_rpc_server_quiesce(a.resync, agent_budget_left(stop_at));
	if (rv != FB_RV_OK)
		fb_log_warn("FB1091", "calls still in progress after %u ms; exiting anyway",
		            STOP_BUDGET_MS);
	/* Released only when nothing of ours can still write: a replica's
	 * transfer workers end with the agent (PR_SET_PDEATHSIG), so with jobs
	 * running the lease is left to expire instead. */
	if (spec->busy != NULL && spec->busy(&a)) {
		fb_log_info("FB1023", "jobs are running: the data directory's lease is left to expire "
		            "(another node may take it over after %s s; this node at once)",
		            a.set.lease_timeout);
	} else {
		fb_lease_release(a.lease);
	}
	fb_log_info("FB1092", "stopped after %llu ms",
	            (unsigned long long)(fb_clock_mono_ms() - stop_at));
	fb_rpc_exit_checked(0);
}

const fb_agent_settings *
fb_agent_settings_get(const fb_agent *agent)
{
	return &agent->set;
}

fb_events_pub *
fb_agent_events(fb_agent *agent)
{
	return agent->events;
}

char **
fb_agent_argv(const fb_agent *agent, int *argc)
{
	*argc = agent->argc;
	return agent->argv;
}
