/*
 * failbackctl.c - the operator and automation client: option handling, the
 * command table and the call-and-print path every command uses.
 *
 * Connection settings come, lowest to highest priority, from built-in
 * defaults, a settings file (--config, else $FAILBACKCTL_CONFIG, else
 * FB_CTL_SYSTEM_CONFIG when it exists, as a package installs it), the
 * environment (FAILBACKCTL_URL, FAILBACKCTL_CA, ...) and flags. Exit status
 * is 0 only when the method returned 0 or 4096.
 */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"

#ifndef FB_CTL_SYSTEM_CONFIG
#define FB_CTL_SYSTEM_CONFIG "/etc/failback/failbackctl.conf"
#endif
#include "failback/config.h"
#include "failback/log.h"
#include "failback/tls.h"

static const ctl_cmd *const ctl_tables[] = {ctl_agent_cmds, ctl_replica_cmds, ctl_wait_cmds,
                                            ctl_primary_cmds, ctl_events_cmds};

static size_t
ctl_keys(ctl *c, fb_config_key *k)
{
	size_t n = 0;

#define KEY(field, text) k[n++] = (fb_config_key){#field, &c->field, text}
	KEY(config, "settings file (key = value lines)");
	KEY(url, "agent control URL (default tls+tcp://127.0.0.1:7400)");
	KEY(events_url, "agent events URL (default tls+tcp://127.0.0.1:7402)");
	KEY(ca, "CA that issued the agents' certificates");
	KEY(cert, "your certificate (operator or monitor)");
	KEY(key, "your private key (mode 0600)");
	KEY(server_name, "DNS name in the agent's certificate (default replica.failback.test)");
	KEY(timeout, "milliseconds to wait for the connection and for each reply (default 30000)");
	KEY(crl, "certificate revocation lists (PEM) to check the agent's certificate against");
#undef KEY
	return n;
}

static void
ctl_help(ctl *c, FILE *f)
{
	fb_config_key keys[16];
	size_t        n = ctl_keys(c, keys);

	fprintf(f, "usage: failbackctl [options] COMMAND [ARGS]\n\n"
	           "Calls a failback agent over mutually authenticated TLS.\n\nCommands:\n");
	for (size_t t = 0; t < sizeof(ctl_tables) / sizeof(ctl_tables[0]); t++)
		for (const ctl_cmd *cmd = ctl_tables[t]; cmd->group != NULL; cmd++) {
			char words[96];

			snprintf(words, sizeof(words), "%s%s%s %s", cmd->group,
			         cmd->sub ? " " : "", cmd->sub ? cmd->sub : "", cmd->args);
			if (strlen(words) > 44) /* a long synopsis gets a line of its own */
				fprintf(f, "  %s\n  %-44s %s\n", words, "", cmd->help);
			else
				fprintf(f, "  %-44s %s\n", words, cmd->help);
		}
	fprintf(f, "\nprimary-* commands go to the primary agent: give its control URL and name\n"
	           "(--url tls+tcp://HOST:7410 --server-name NAME). The others go to the replica.\n");
	fprintf(f, "\nOptions (also keys in the settings file, and FAILBACKCTL_<KEY> in the "
	           "environment):\n");
	fb_config_help(keys, n, f);
	fprintf(f, "  --%-22s %s\n", "json", "print results as JSON (one object per line)");
	fprintf(f, "  --%-22s %s\n", "help", "show this text");
	fprintf(f, "  --%-22s %s\n", "version", "print the version");
	fprintf(f, "\nExit status: 0 on success (return value 0 or 4096), 1 when the agent or "
	           "the\nconnection reports a failure, 2 on a usage error.\n");
}

int
ctl_usage(const ctl_cmd *cmd, const char *why)
{
	fprintf(stderr, "failbackctl: %s\nusage: failbackctl %s%s%s %s\n", why, cmd->group,
	        cmd->sub ? " " : "", cmd->sub ? cmd->sub : "", cmd->args);
	return CTL_EXIT_USAGE;
}

const char *
ctl_opt(int argc, char **argv, int *i, const char *name)
{
	size_t len = strlen(name);

	if (strncmp(argv[*i], name, len) != 0)
		return NULL;
	if (argv[*i][len] == '=')
		return argv[*i] + len + 1;
	if (argv[*i][len] != '\0' || *i + 1 >= argc)
		return NULL;
	(*i)++;
	return argv[*i];
}

int
ctl_fail(ctl *c, const fb_err *err)
{
	if (c->json) {
		printf("{\"return_value\":%u,\"return_name\":", err->rv);
		printf("\"%s\",\"description\":", fb_rv_name(err->rv));
		ctl_print_json_string(stdout, err->msg);
		printf("}\n");
	} else {
		fprintf(stderr, "failbackctl: %s (%u): ", fb_rv_name(err->rv), err->rv);
		ctl_print_text_string(stderr, err->msg);
		fputc('\n', stderr);
	}
	return CTL_EXIT_FAILED;
}

/* The first connection (TCP and the TLS handshake) is bounded by --timeout
 * too: NNG's dial would wait on a peer that accepts and never answers. */
static struct {
	pthread_mutex_t m;
	pthread_cond_t  cv;
	int             done;
	ctl            *c;
} dial_watch = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, NULL};

static void *
dial_watchdog(void *arg)
{
	struct timespec until;
	int             late = 0;

	(void)arg;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += dial_watch.c->timeout_ms / 1000;
	until.tv_nsec += (long)(dial_watch.c->timeout_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&dial_watch.m);
	while (!dial_watch.done && !late)
		late = pthread_cond_timedwait(&dial_watch.cv, &dial_watch.m, &until) == ETIMEDOUT;
	if (!dial_watch.done) {
		fb_err e = {0};

		fb_err_set(&e, FB_RV_NOT_AVAILABLE,
		           "no connection to %s within %u ms (--timeout): the agent accepted but "
		           "never completed the TLS handshake",
		           dial_watch.c->url, dial_watch.c->timeout_ms);
		fb_rpc_exit(ctl_fail(dial_watch.c, &e)); /* the dial cannot be abandoned */
	}
	pthread_mutex_unlock(&dial_watch.m);
	return NULL;
}

uint32_t
ctl_connect(ctl *c, fb_err *err)
{
	nng_tls_config *tls;
	pthread_t       t;
	uint32_t        rv;
	int             watching;

	if (c->cli != NULL)
		return FB_RV_OK;
	if (c->crl != NULL && (rv = fb_tls_set_crl(c->crl, err)) != FB_RV_OK)
		return rv;
	if ((rv = fb_tls_config_client(&tls, c->ca, c->cert, c->key, c->server_name, 0, err)) !=
	    FB_RV_OK)
		return rv;
	dial_watch.c    = c;
	dial_watch.done = 0;
	watching        = pthread_create(&t, NULL, dial_watchdog, NULL) == 0;
	rv              = fb_rpc_client_open(&c->cli, c->url, tls, err);
	if (watching) {
		pthread_mutex_lock(&dial_watch.m);
		dial_watch.done = 1;
		pthread_cond_signal(&dial_watch.cv);
		pthread_mutex_unlock(&dial_watch.m);
		pthread_join(t, NULL);
	}
	nng_tls_config_free(tls);
	return rv;
}

void
ctl_print_result(ctl *c, uint32_t rv, const ProtobufCMessage *out)
{
	if (c->json) {
		printf("{\"return_value\":%u,\"return_name\":\"%s\",\"result\":", rv,
		       fb_rv_name(rv));
		ctl_print_json(stdout, out);
		printf("}\n");
	} else {
		if (rv != FB_RV_OK)
			printf("%s (%u)\n", fb_rv_name(rv), rv);
		ctl_print_text(stdout, out, 0);
	}
}

int
ctl_call(ctl *c, const ProtobufCServiceDescriptor *svc, const char *method,
         const ProtobufCMessage *in, ProtobufCMessage **keep)
{
	ProtobufCMessage *out = NULL;
	fb_err            err = {0};
	uint32_t          rv;

	if ((rv = ctl_connect(c, &err)) != FB_RV_OK)
		return ctl_fail(c, &err);
	rv = fb_rpc_client_call(c->cli, svc, method, in, &out, c->timeout_ms, &err);
	if (!fb_rv_ok(rv))
		return ctl_fail(c, &err);
	ctl_print_result(c, rv, out);
	if (keep != NULL)
		*keep = out;
	else
		protobuf_c_message_free_unpacked(out, NULL);
	return CTL_EXIT_OK;
}

static void
ctl_env(const fb_config_key *keys, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char        name[64] = "FAILBACKCTL_";
		size_t      j        = strlen(name);
		const char *v;

		for (const char *s = keys[i].name; *s && j < sizeof(name) - 1; s++)
			name[j++] = (char)toupper((unsigned char)*s);
		name[j] = '\0';
		if ((v = getenv(name)) != NULL)
			fb_config_set(keys, n, keys[i].name, v, NULL);
	}
}

static void
ctl_default(char **slot, const char *v)
{
	if (*slot == NULL)
		*slot = strdup(v);
}

int
main(int argc, char **argv)
{
	static ctl    c;
	fb_config_key keys[16];
	size_t        n    = ctl_keys(&c, keys);
	char        **rest = calloc((size_t)argc + 1, sizeof(char *));
	int           nrest = 0;
	fb_err        err   = {0};
	const char   *cfg   = getenv("FAILBACKCTL_CONFIG");
	char         *end;

	fb_log_init("failbackctl", FB_LOG_WARN);
	/* The settings file is read before anything overrides it. */
	for (int i = 1; i < argc; i++) {
		const char *v = ctl_opt(argc, argv, &i, "--config");
		if (v != NULL)
			cfg = v;
	}
	if (cfg == NULL && access(FB_CTL_SYSTEM_CONFIG, R_OK) == 0)
		cfg = FB_CTL_SYSTEM_CONFIG;
	if (cfg != NULL && fb_config_load(cfg, keys, n, &err) != FB_RV_OK) {
		fprintf(stderr, "failbackctl: %s\n", err.msg);
		fb_rpc_exit(CTL_EXIT_USAGE);
	}
	ctl_env(keys, n);
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			c.json = 1;
		} else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			ctl_help(&c, stdout);
			fb_rpc_exit(CTL_EXIT_OK);
		} else if (strcmp(argv[i], "--version") == 0 && nrest == 0) {
			printf("failbackctl %s\n", FB_VERSION);
			fb_rpc_exit(CTL_EXIT_OK);
		} else if (strncmp(argv[i], "--", 2) == 0 && nrest > 0) {
			/* After the command word: a global option, or the command's own. */
			int j = i;
			if (fb_config_flag(keys, n, argc, argv, &j, NULL) == FB_RV_OK)
				i = j;
			else
				rest[nrest++] = argv[i];
		} else if (strncmp(argv[i], "--", 2) == 0) {
			if (fb_config_flag(keys, n, argc, argv, &i, &err) != FB_RV_OK) {
				fprintf(stderr, "failbackctl: %s (see failbackctl --help)\n",
				        err.msg);
				fb_rpc_exit(CTL_EXIT_USAGE);
			}
		} else {
			rest[nrest++] = argv[i];
		}
	}
	ctl_default(&c.url, "tls+tcp://127.0.0.1:7400");
	ctl_default(&c.events_url, "tls+tcp://127.0.0.1:7402");
	ctl_default(&c.server_name, "replica.failback.test");
	ctl_default(&c.timeout, "30000");
	c.timeout_ms = (uint32_t)strtoul(c.timeout, &end, 10);
	if (*end != '\0' || c.timeout_ms == 0) {
		fprintf(stderr, "failbackctl: --timeout: '%s' is not a positive number\n",
		        c.timeout);
		fb_rpc_exit(CTL_EXIT_USAGE);
	}
	if (nrest == 0) {
		ctl_help(&c, stderr);
		fb_rpc_exit(CTL_EXIT_USAGE);
	}
	for (size_t t = 0; t < sizeof(ctl_tables) / sizeof(ctl_tables[0]); t++) {
		for (const ctl_cmd *cmd = ctl_tables[t]; cmd->group != NULL; cmd++) {
			int code, skip = 1;

			if (strcmp(cmd->group, rest[0]) != 0)
				continue;
			if (cmd->sub != NULL) {
				if (nrest < 2 || strcmp(cmd->sub, rest[1]) != 0)
					continue;
				skip = 2;
			}
			if (c.ca == NULL || c.cert == NULL || c.key == NULL) {
				fprintf(stderr, "failbackctl: set --ca, --cert and --key (or "
				                "FAILBACKCTL_CA/CERT/KEY, or a --config file)\n");
				fb_rpc_exit(CTL_EXIT_USAGE);
			}
			code = cmd->fn(&c, nrest - skip, rest + skip);
			fb_rpc_client_close(c.cli);
			fb_rpc_exit(code);
		}
	}
	fprintf(stderr, "failbackctl: unknown command '%s%s%s' (see failbackctl --help)\n",
	        rest[0], nrest > 1 ? " " : "", nrest > 1 ? rest[1] : "");
	fb_rpc_exit(CTL_EXIT_USAGE);
}
