/*
 * ctl.h - what failbackctl's command files share: the connection settings,
 * one way to call a method and print its outcome, and the printers.
 */
#ifndef FAILBACKCTL_CTL_H
#define FAILBACKCTL_CTL_H

#include <stdio.h>

#include <protobuf-c/protobuf-c.h>

#include "failback/err.h"
#include "failback/rpc.h"

/* Exit statuses: 0 only on success. */
#define CTL_EXIT_OK      0
#define CTL_EXIT_FAILED  1 /* the agent (or the connection) reported a failure */
#define CTL_EXIT_USAGE   2

typedef struct ctl {
	char    *config;
	char    *url;
	char    *events_url;
	char    *ca;
	char    *cert;
	char    *key;
	char    *server_name;
	char    *timeout;
	char    *crl;
	int      json;
	uint32_t timeout_ms;
	fb_rpc_client *cli; /* opened on first use */
} ctl;

typedef int (*ctl_cmd_fn)(ctl *c, int argc, char **argv);

typedef struct ctl_cmd {
	const char *group;
	const char *sub; /* NULL for a one-word command */
	const char *args;
	const char *help;
	ctl_cmd_fn  fn;
} ctl_cmd;

/* Command tables, one per file. */
extern const ctl_cmd ctl_agent_cmds[];
extern const ctl_cmd ctl_replica_cmds[];
extern const ctl_cmd ctl_primary_cmds[];
extern const ctl_cmd ctl_events_cmds[];
extern const ctl_cmd ctl_wait_cmds[];

/* ctl_connect opens c->cli if it is not open yet. */
uint32_t ctl_connect(ctl *c, fb_err *err);

/* ctl_call_and_wait calls a ReplicationService method that starts a job
 * and, with wait, follows the job to its end (cmd_wait.c). */
int ctl_call_and_wait(ctl *c, const char *method, const ProtobufCMessage *in, int wait);

/* ctl_call calls svc.method and prints the outcome (text or JSON). On
 * success, if keep is not NULL the decoded output is handed over through it
 * instead of being freed. Returns an exit status. */
int ctl_call(ctl *c, const ProtobufCServiceDescriptor *svc, const char *method,
             const ProtobufCMessage *in, ProtobufCMessage **keep);

/* ctl_print_result prints a successful reply (rv 0 or 4096) as ctl_call does. */
void ctl_print_result(ctl *c, uint32_t rv, const ProtobufCMessage *out);

/* ctl_fail prints err (text to stderr, or a JSON object to stdout) and
 * returns CTL_EXIT_FAILED. */
int ctl_fail(ctl *c, const fb_err *err);

/* ctl_usage prints "usage: failbackctl ..." for a command and returns
 * CTL_EXIT_USAGE. */
int ctl_usage(const ctl_cmd *cmd, const char *why);

/* Printers (output.c). */
void ctl_print_json(FILE *f, const ProtobufCMessage *m);
void ctl_print_json_string(FILE *f, const char *s);
/* ctl_print_text_string prints s with control characters (and \) escaped
 * as \xNN (\\): text from an agent never drives the terminal. */
void ctl_print_text_string(FILE *f, const char *s);
void ctl_print_text(FILE *f, const ProtobufCMessage *m, int indent);

/* ctl_opt takes "--name VALUE" or "--name=VALUE" at argv[*i]; returns the
 * value or NULL if argv[*i] is not that option. */
const char *ctl_opt(int argc, char **argv, int *i, const char *name);

#endif
