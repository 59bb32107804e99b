/*
 * failbackctl.c - the operator and automation client: option handling, the
 * command table and the call-and-print path every command uses.
 *
 * The command line is parsed the GNU way (getopt_long): options before the
 * command are failbackctl's own; after the command words, the command's
 * options and failbackctl's may be mixed with the operands, "--" ends the
 * options (so a VM name may start with '-'), long options may be
 * abbreviated while unambiguous, and every command takes -h/--help.
 *
 * Connection settings come, lowest to highest priority, from built-in
 * defaults, a settings file (--config, else $FAILBACKCTL_CONFIG, else
 * FB_CTL_SYSTEM_CONFIG when it exists, as a package installs it), the
 * environment (FAILBACKCTL_URL, FAILBACKCTL_CA, ...) and flags. Exit status
 * is 0 only when the method returned 0 or 4096.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <locale.h>
#include <pthread.h>
#include <stdarg.h>
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

#define KEYS_MAX 16

static const ctl_cmd *const ctl_tables[] = {ctl_agent_cmds, ctl_replica_cmds, ctl_primary_cmds,
                                            ctl_events_cmds};
#define NTABLES (sizeof(ctl_tables) / sizeof(ctl_tables[0]))

static ctl the_ctl;

static size_t
ctl_keys(ctl *c, fb_config_key *k)
{
	size_t n = 0;

#define KEY(field, text) k[n++] = (fb_config_key){#field, &c->field, text}
	KEY(config, "settings file (key = value lines; \"\": none)");
	KEY(url, "agent control URL (default tls+tcp://127.0.0.1:7400)");
	KEY(events_url, "agent events URL (default tls+tcp://127.0.0.1:7402)");
	KEY(ca, "CA that issued the agents' certificates");
	KEY(cert, "your certificate (operator or monitor)");
	KEY(key, "your private key (mode 0600)");
	KEY(server_name, "agent certificate's DNS name (replica.failback.test)");
	KEY(timeout, "ms to wait to connect and for each reply (30000)");
	KEY(crl, "revocation lists (PEM) for the agent's certificate");
#undef KEY
	k[n++] = (fb_config_key){"json", &c->json_setting,
	                         "print one JSON object per line (json = 1 in a file)"};
	return n;
}

/* "failback VM [--rp ID] [--wait]" */
static void
synopsis(const ctl_cmd *cmd, char *out, size_t cap)
{
	size_t n = (size_t)snprintf(out, cap, "%s%s%s%s%s", cmd->group, cmd->sub ? " " : "",
	                            cmd->sub ? cmd->sub : "", cmd->operands[0] ? " " : "",
	                            cmd->operands);

	for (int i = 0; i < CTL_OPTS_MAX && cmd->opts[i].name != NULL && n < cap; i++)
		n += (size_t)snprintf(out + n, cap - n, " [--%s%s%s]", cmd->opts[i].name,
		                      cmd->opts[i].meta ? " " : "",
		                      cmd->opts[i].meta ? cmd->opts[i].meta : "");
}

/* Prints text from column col on, wrapped at 79 columns, continuation
 * lines starting at column col. */
static void
wrapped(FILE *f, const char *text, int col)
{
	int at = col;

	while (*text) {
		const char *sp  = strchr(text, ' ');
		int         len = sp != NULL ? (int)(sp - text) : (int)strlen(text);

		if (at > col && at + 1 + len > 79) {
			fprintf(f, "\n%*s", col, "");
			at = col;
		} else if (at > col) {
			fputc(' ', f);
			at++;
		}
		fprintf(f, "%.*s", len, text);
		at += len;
		text += len;
		while (*text == ' ')
			text++;
	}
	fputc('\n', f);
}

static void
command_line(FILE *f, const ctl_cmd *cmd)
{
	char words[256];

	synopsis(cmd, words, sizeof(words));
	if (strlen(words) > 36) /* a long synopsis gets a line of its own */
		fprintf(f, "  %s\n  %-36s ", words, "");
	else
		fprintf(f, "  %-36s ", words);
	wrapped(f, cmd->help, 39);
}

static void
ctl_help(ctl *c, FILE *f)
{
	fb_config_key keys[KEYS_MAX];
	size_t        n = ctl_keys(c, keys);

	fprintf(f, "usage: failbackctl [OPTIONS] COMMAND [ARGS]\n"
	           "       failbackctl COMMAND --help\n\n"
	           "Calls a failback agent over mutually authenticated TLS.\n\nCommands:\n");
	for (size_t t = 0; t < NTABLES; t++)
		for (const ctl_cmd *cmd = ctl_tables[t]; cmd->group != NULL; cmd++)
			command_line(f, cmd);
	fprintf(f, "\nprimary-* commands go to the primary agent: give its control URL and name\n"
	           "(--url tls+tcp://HOST:7410 --server-name NAME). The others go to the replica.\n"
	           "A VM is named by its name, its GUID, or its CIM object path\n"
	           "(Msvm_ComputerSystem.CreationClassName=\"Msvm_ComputerSystem\",Name=\"GUID\").\n");
	fprintf(f, "\nOptions (also settings file keys, and FAILBACKCTL_<KEY> variables):\n");
	fb_config_help(keys, n, f);
	fprintf(f, "  --%-22s %s\n", "help", "show this text (-h; after a command, its own help)");
	fprintf(f, "  --%-22s %s\n", "version", "print the version (-V)");
	fprintf(f, "\nExit status: 0 on success (return value 0 or 4096), 1 when the agent or "
	           "the\nconnection reports a failure, 2 on a usage error.\n");
}

static void
command_help(const ctl_cmd *cmd, FILE *f)
{
	char words[256];

	synopsis(cmd, words, sizeof(words));
	fprintf(f, "usage: failbackctl [OPTIONS] %s\n\n", words);
	wrapped(f, cmd->help, 0);
	if (cmd->opts[0].name != NULL) {
		fprintf(f, "\nOptions:\n");
		for (int i = 0; i < CTL_OPTS_MAX && cmd->opts[i].name != NULL; i++) {
			char flag[64];

			snprintf(flag, sizeof(flag), "%s%s%s", cmd->opts[i].name,
			         cmd->opts[i].meta ? " " : "", cmd->opts[i].meta ? cmd->opts[i].meta : "");
			fprintf(f, "  --%-22s %s\n", flag, cmd->opts[i].help);
		}
	}
	fprintf(f, "\n\"--\" ends the options. failbackctl's own options (failbackctl --help) may "
	           "come\nbefore or after the command.\n");
}

/* Prints the commands of group; returns how many there are. */
static int
group_help(const char *group, FILE *f)
{
	int n = 0;

	for (size_t t = 0; t < NTABLES; t++)
		for (const ctl_cmd *cmd = ctl_tables[t]; cmd->group != NULL; cmd++)
			if (strcmp(cmd->group, group) == 0) {
				command_line(f, cmd);
				n++;
			}
	return n;
}

void
ctl_envelope_open(ctl *c, int ok, uint32_t rv)
{
	printf("{\"command\":");
	ctl_print_json_string(stdout, c->command);
	printf(",\"ok\":%s,\"return_value\":%u,\"return_name\":\"%s\",\"result\":",
	       ok ? "true" : "false", rv, fb_rv_name(rv));
}

void
ctl_envelope_close(ctl *c, const char *description)
{
	(void)c;
	if (description != NULL) {
		printf(",\"description\":");
		ctl_print_json_string(stdout, description);
	}
	printf("}\n");
	fflush(stdout);
}

int
ctl_usage(const ctl_cmd *cmd, const char *why, ...)
{
	char    msg[512], words[256] = "";
	va_list ap;

	va_start(ap, why);
	vsnprintf(msg, sizeof(msg), why, ap);
	va_end(ap);
	if (cmd != NULL) {
		synopsis(cmd, words, sizeof(words));
		fprintf(stderr, "failbackctl: %s\nusage: failbackctl %s\n(see failbackctl %s%s%s --help)\n",
		        msg, words, cmd->group, cmd->sub ? " " : "", cmd->sub ? cmd->sub : "");
	} else {
		fprintf(stderr, "failbackctl: %s (see failbackctl --help)\n", msg);
	}
	if (the_ctl.json) {
		ctl_envelope_open(&the_ctl, 0, FB_RV_INVALID_PARAMETER);
		printf("null");
		ctl_envelope_close(&the_ctl, msg);
	}
	return CTL_EXIT_USAGE;
}

const char *
ctl_arg(const ctl_args *a, const char *name)
{
	for (int i = 0; i < CTL_OPTS_MAX && a->cmd->opts[i].name != NULL; i++)
		if (strcmp(a->cmd->opts[i].name, name) == 0)
			return a->opt[i];
	return NULL;
}

int
ctl_fail(ctl *c, const fb_err *err)
{
	if (c->json) {
		ctl_envelope_open(c, 0, err->rv);
		printf("null");
		ctl_envelope_close(c, err->msg);
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
ctl_crl(ctl *c, fb_err *err)
{
	static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
	static int             given;
	static uint32_t        rv;

	pthread_mutex_lock(&m);
	if (!given && c->crl != NULL) {
		given = 1;
		rv    = fb_tls_set_crl(c->crl, err);
	} else if (rv != FB_RV_OK) {
		fb_err_set(err, rv, "--crl %s cannot be used", c->crl);
	}
	pthread_mutex_unlock(&m);
	return rv;
}

uint32_t
ctl_tls(ctl *c, nng_tls_config **tls, fb_err *err)
{
	uint32_t rv;

	if ((rv = ctl_crl(c, err)) != FB_RV_OK)
		return rv;
	return fb_tls_config_client(tls, c->ca, c->cert, c->key, c->server_name, 0, err);
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
	if ((rv = ctl_tls(c, &tls, err)) != FB_RV_OK)
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
		ctl_envelope_open(c, 1, rv);
		ctl_print_json(stdout, out);
		ctl_envelope_close(c, NULL);
	} else {
		if (rv != FB_RV_OK)
			printf("%s (%u)\n", fb_rv_name(rv), rv);
		ctl_print_text(stdout, out, 0);
	}
}

int
ctl_call_quiet(ctl *c, const ProtobufCServiceDescriptor *svc, const char *method,
               const ProtobufCMessage *in, ProtobufCMessage **keep, uint32_t *rv_out)
{
	ProtobufCMessage *out = NULL;
	fb_err            err = {0};
	uint32_t          rv;

	if ((rv = ctl_connect(c, &err)) != FB_RV_OK)
		return ctl_fail(c, &err);
	rv = fb_rpc_client_call(c->cli, svc, method, in, &out, c->timeout_ms, &err);
	if (!fb_rv_ok(rv))
		return ctl_fail(c, &err);
	*keep = out;
	if (rv_out != NULL)
		*rv_out = rv;
	return CTL_EXIT_OK;
}

int
ctl_call(ctl *c, const ProtobufCServiceDescriptor *svc, const char *method,
         const ProtobufCMessage *in, ProtobufCMessage **keep)
{
	ProtobufCMessage *out = NULL;
	uint32_t          rv;
	int               code;

	if ((code = ctl_call_quiet(c, svc, method, in, &out, &rv)) != CTL_EXIT_OK)
		return code;
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

/* Global options as getopt_long takes them: each settings key (json is a
 * flag), --help and --version. Values: 1000 + key index. */
enum { OPT_KEY = 1000, OPT_CMD = 2000 };

static struct {
	char          names[KEYS_MAX][32];
	fb_config_key keys[KEYS_MAX];
	size_t        nkeys;
	/* Flags are applied after the settings file and the environment. */
	struct {
		size_t      key;
		const char *value;
	} given[256];
	size_t ngiven;
} g;

static size_t
global_options(struct option *o)
{
	size_t n = 0;

	for (size_t i = 0; i < g.nkeys; i++) {
		size_t j;

		for (j = 0; g.keys[i].name[j] && j < sizeof(g.names[i]) - 1; j++)
			g.names[i][j] = g.keys[i].name[j] == '_' ? '-' : g.keys[i].name[j];
		g.names[i][j] = '\0';
		o[n++]        = (struct option){g.names[i],
		                                strcmp(g.keys[i].name, "json") == 0 ? no_argument
		                                                                   : required_argument,
		                                NULL, OPT_KEY + (int)i};
	}
	o[n++] = (struct option){"help", no_argument, NULL, 'h'};
	o[n++] = (struct option){"version", no_argument, NULL, 'V'};
	return n;
}

/* Records a global option getopt returned; returns 0, or -1 when too many. */
static int
take_global(int code, const char *value)
{
	size_t k = (size_t)(code - OPT_KEY);

	if (g.ngiven == sizeof(g.given) / sizeof(g.given[0]))
		return -1;
	g.given[g.ngiven].key   = k;
	g.given[g.ngiven].value = strcmp(g.keys[k].name, "json") == 0 ? "1" : value;
	g.ngiven++;
	if (strcmp(g.keys[k].name, "json") == 0)
		the_ctl.json = 1; /* early, so that usage errors are JSON too */
	return 0;
}

/* The option getopt just refused, for the message. */
static void
refused(char **argv, int code, const struct option *o, const ctl_cmd *cmd)
{
	const char *arg = argv[optind - 1];

	if (code == ':') {
		for (const struct option *p = o; p->name != NULL; p++)
			if (p->val == optopt) {
				ctl_usage(cmd, "option '--%s' needs a value", p->name);
				return;
			}
		ctl_usage(cmd, "option '%s' needs a value", arg);
	} else if (optopt != 0 && optopt != '?') {
		ctl_usage(cmd, "unknown option '-%c'", optopt);
	} else {
		ctl_usage(cmd, "unknown or ambiguous option '%s'", arg);
	}
}

static const ctl_cmd *
find_command(const char *group, const char *sub, int *words)
{
	for (size_t t = 0; t < NTABLES; t++)
		for (const ctl_cmd *cmd = ctl_tables[t]; cmd->group != NULL; cmd++) {
			if (strcmp(cmd->group, group) != 0)
				continue;
			if (cmd->sub == NULL) {
				*words = 1;
				return cmd;
			}
			if (sub != NULL && strcmp(cmd->sub, sub) == 0) {
				*words = 2;
				return cmd;
			}
		}
	return NULL;
}

/* failbackctl help [GROUP [SUB]] */
static int
help_command(int argc, char **argv)
{
	const ctl_cmd *cmd;
	int            words;

	if (argc == 0) {
		ctl_help(&the_ctl, stdout);
		return CTL_EXIT_OK;
	}
	if ((cmd = find_command(argv[0], argc > 1 ? argv[1] : NULL, &words)) != NULL) {
		command_help(cmd, stdout);
		return CTL_EXIT_OK;
	}
	if (group_help(argv[0], stdout) > 0)
		return CTL_EXIT_OK;
	return ctl_usage(NULL, "unknown command '%s'", argv[0]);
}

static uint32_t
settle(ctl *c, fb_err *err)
{
	const char *cfg = getenv("FAILBACKCTL_CONFIG");
	char       *end;

	for (size_t i = 0; i < g.ngiven; i++)
		if (strcmp(g.keys[g.given[i].key].name, "config") == 0)
			cfg = g.given[i].value;
	if (cfg == NULL && access(FB_CTL_SYSTEM_CONFIG, R_OK) == 0)
		cfg = FB_CTL_SYSTEM_CONFIG;
	if (cfg != NULL && *cfg == '\0') /* --config "": no settings file */
		cfg = NULL;
	if (cfg != NULL && fb_config_load(cfg, g.keys, g.nkeys, err) != FB_RV_OK)
		return err->rv;
	ctl_env(g.keys, g.nkeys);
	for (size_t i = 0; i < g.ngiven; i++)
		if (fb_config_set(g.keys, g.nkeys, g.keys[g.given[i].key].name, g.given[i].value,
		                  err) != FB_RV_OK)
			return err->rv;
	if (c->json_setting != NULL) {
		const char *j = c->json_setting;

		if (!strcmp(j, "1") || !strcmp(j, "true") || !strcmp(j, "yes") || !strcmp(j, "on"))
			c->json = 1;
		else if (!strcmp(j, "0") || !strcmp(j, "false") || !strcmp(j, "no") ||
		         !strcmp(j, "off") || !strcmp(j, ""))
			c->json = 0;
		else
			return fb_err_set(err, FB_RV_INVALID_PARAMETER,
			                  "json: '%s' is not 1/0, true/false, yes/no or on/off", j);
	}
	ctl_default(&c->url, "tls+tcp://127.0.0.1:7400");
	ctl_default(&c->events_url, "tls+tcp://127.0.0.1:7402");
	ctl_default(&c->server_name, "replica.failback.test");
	ctl_default(&c->timeout, "30000");
	if (!fb_tls_url_ok(c->url) || !fb_tls_url_ok(c->events_url))
		return fb_err_set(err, FB_RV_INVALID_PARAMETER,
		                  "--%s: '%s' is not a tls+tcp://HOST:PORT URL (the agents speak only "
		                  "TLS)",
		                  fb_tls_url_ok(c->url) ? "events-url" : "url",
		                  fb_tls_url_ok(c->url) ? c->events_url : c->url);
	errno         = 0;
	c->timeout_ms = (uint32_t)strtoul(c->timeout, &end, 10);
	if (*end != '\0' || c->timeout_ms == 0 || errno != 0 || c->timeout[0] == '-')
		return fb_err_set(err, FB_RV_INVALID_PARAMETER,
		                  "--timeout: '%s' is not a positive number of milliseconds",
		                  c->timeout);
	return FB_RV_OK;
}

int
main(int argc, char **argv)
{
	ctl           *c = &the_ctl;
	struct option  opts[KEYS_MAX + CTL_OPTS_MAX + 4];
	size_t         nglobal;
	const ctl_cmd *cmd;
	ctl_args       a;
	char         **rest;
	int            code, nrest, words = 0;
	fb_err         err = {0};

	/* Names and text from agents are UTF-8; measure them so. */
	setlocale(LC_CTYPE, "C.UTF-8");
	fb_log_init("failbackctl", FB_LOG_WARN);
	g.nkeys = ctl_keys(c, g.keys);
	nglobal = global_options(opts);
	opts[nglobal] = (struct option){NULL, 0, NULL, 0};
	opterr        = 0;
	/* Before the command: failbackctl's own options only. */
	while ((code = getopt_long(argc, argv, "+:hV", opts, NULL)) != -1) {
		if (code == 'h') {
			ctl_help(c, stdout);
			fb_rpc_exit(CTL_EXIT_OK);
		} else if (code == 'V') {
			printf("failbackctl %s\n", FB_VERSION);
			fb_rpc_exit(CTL_EXIT_OK);
		} else if (code >= OPT_KEY && code < OPT_KEY + (int)g.nkeys) {
			if (take_global(code, optarg) != 0)
				fb_rpc_exit(ctl_usage(NULL, "too many options"));
		} else {
			refused(argv, code, opts, NULL);
			fb_rpc_exit(CTL_EXIT_USAGE);
		}
	}
	if (optind >= argc) {
		ctl_help(c, stderr);
		fb_rpc_exit(CTL_EXIT_USAGE);
	}
	strcpy(c->command, "help");
	if (strcmp(argv[optind], "help") == 0)
		fb_rpc_exit(help_command(argc - optind - 1, argv + optind + 1));
	if ((cmd = find_command(argv[optind], optind + 1 < argc ? argv[optind + 1] : NULL,
	                        &words)) == NULL) {
		snprintf(c->command, sizeof(c->command), "%.63s", argv[optind]);
		if (group_help(argv[optind], stderr) > 0)
			fb_rpc_exit(ctl_usage(NULL, "'%s' needs one of the subcommands above",
			                      argv[optind]));
		fb_rpc_exit(ctl_usage(NULL, "unknown command '%s'", argv[optind]));
	}
	snprintf(c->command, sizeof(c->command), "%s%s%s", cmd->group, cmd->sub ? " " : "",
	         cmd->sub ? cmd->sub : "");
	/* After the command words: its options and failbackctl's, mixed with
	 * the operands, until "--". */
	memset(&a, 0, sizeof(a));
	a.cmd = cmd;
	{
		size_t n = nglobal;

		for (int i = 0; i < CTL_OPTS_MAX && cmd->opts[i].name != NULL; i++)
			opts[n++] = (struct option){cmd->opts[i].name,
			                            cmd->opts[i].meta ? required_argument : no_argument,
			                            NULL, OPT_CMD + i};
		opts[n] = (struct option){NULL, 0, NULL, 0};
	}
	nrest = argc - optind - words + 1;
	rest  = calloc((size_t)nrest + 1, sizeof(char *));
	if (rest == NULL)
		fb_rpc_exit(CTL_EXIT_FAILED);
	rest[0] = argv[0];
	memcpy(rest + 1, argv + optind + words, (size_t)(nrest - 1) * sizeof(char *));
	optind = 0; /* getopt starts afresh on rest */
	while ((code = getopt_long(nrest, rest, ":h", opts, NULL)) != -1) {
		if (code == 'h') {
			command_help(cmd, stdout);
			fb_rpc_exit(CTL_EXIT_OK);
		} else if (code >= OPT_CMD && code < OPT_CMD + CTL_OPTS_MAX) {
			a.opt[code - OPT_CMD] = optarg != NULL ? optarg : "";
		} else if (code >= OPT_KEY && code < OPT_KEY + (int)g.nkeys) {
			if (take_global(code, optarg) != 0)
				fb_rpc_exit(ctl_usage(cmd, "too many options"));
		} else if (code == 'V') {
			fb_rpc_exit(ctl_usage(cmd, "--version goes before the command"));
		} else {
			refused(rest, code, opts, cmd);
			fb_rpc_exit(CTL_EXIT_USAGE);
		}
	}
	a.argc = nrest - optind;
	a.argv = rest + optind;
	if (settle(c, &err) != FB_RV_OK) {
		fb_rpc_exit(ctl_usage(NULL, "%s", err.msg));
	}
	if (a.argc < cmd->min_operands)
		fb_rpc_exit(ctl_usage(cmd, "missing %s", cmd->operands));
	if (cmd->max_operands >= 0 && a.argc > cmd->max_operands)
		fb_rpc_exit(ctl_usage(cmd, "unexpected argument '%s'", a.argv[cmd->max_operands]));
	for (int i = 0; i < a.argc; i++)
		if (a.argv[i][0] == '\0')
			fb_rpc_exit(ctl_usage(cmd, "an empty argument names nothing"));
	if (c->ca == NULL || c->cert == NULL || c->key == NULL)
		fb_rpc_exit(ctl_usage(NULL, "set --ca, --cert and --key (or FAILBACKCTL_CA/CERT/KEY, "
		                            "or a --config file)"));
	code = cmd->fn(c, &a);
	fb_rpc_client_close(c->cli);
	fb_rpc_exit(code);
}
