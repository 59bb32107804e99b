/*
 * ctl.h - what failbackctl's command files share: the connection settings,
 * the command table, one way to call a method and print its outcome, and
 * the printers.
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
	char    *json_setting;
	int      json;
	uint32_t timeout_ms;
	char     command[64]; /* "vm list": the words, for the JSON envelope */
	fb_rpc_client *cli;   /* opened on first use */
} ctl;

/* A command's own option: --name, with a value when meta is not NULL. */
typedef struct ctl_opt_def {
	const char *name;
	const char *meta;
	const char *help;
} ctl_opt_def;

#define CTL_OPTS_MAX 8

struct ctl_cmd;

/* What the command line gave a command: its operands, and each of its
 * options' value ("" for a flag that was given; NULL when absent). */
typedef struct ctl_args {
	const struct ctl_cmd *cmd;
	int                   argc;
	char                **argv;
	const char           *opt[CTL_OPTS_MAX];
} ctl_args;

typedef int (*ctl_cmd_fn)(ctl *c, const ctl_args *a);

typedef struct ctl_cmd {
	const char       *group;
	const char       *sub;      /* NULL for a one-word command */
	const char       *operands; /* "VM", "[VM]", "NAME DISK..." */
	int               min_operands, max_operands; /* max -1: any number */
	ctl_opt_def       opts[CTL_OPTS_MAX];
	const char       *help;
	ctl_cmd_fn        fn;
} ctl_cmd;

/* Command tables, one per file, each ending with a zeroed entry. */
extern const ctl_cmd ctl_agent_cmds[];
extern const ctl_cmd ctl_replica_cmds[];
extern const ctl_cmd ctl_primary_cmds[];
extern const ctl_cmd ctl_events_cmds[];

/* job wait (cmd_wait.c), in the replica's table. */
int ctl_cmd_job_wait(ctl *c, const ctl_args *a);

/* ctl_arg is the value of the command's option name (see ctl_args). */
const char *ctl_arg(const ctl_args *a, const char *name);

/* ctl_connect opens c->cli if it is not open yet. */
uint32_t ctl_connect(ctl *c, fb_err *err);
/* ctl_crl hands --crl to the TLS layer, once (the process keeps one;
 * any thread may call it): before any TLS configuration is made. */
uint32_t ctl_crl(ctl *c, fb_err *err);
/* ctl_tls makes the client TLS configuration of every connection the
 * command opens (control or events): the CA, certificate, key and server
 * name of the command line, with its --crl. */
uint32_t ctl_tls(ctl *c, nng_tls_config **tls, fb_err *err);

/* ctl_call_and_wait calls a ReplicationService method that starts a job
 * and, with wait, follows the job to its end (cmd_wait.c). */
int ctl_call_and_wait(ctl *c, const char *method, const ProtobufCMessage *in, int wait);

/* ctl_call calls svc.method and prints the outcome (text or JSON). On
 * success, if keep is not NULL the decoded output is handed over through it
 * instead of being freed. Returns an exit status. */
int ctl_call(ctl *c, const ProtobufCServiceDescriptor *svc, const char *method,
             const ProtobufCMessage *in, ProtobufCMessage **keep);

/* ctl_call_quiet is ctl_call without printing a successful reply: the
 * caller prints it (a table, or ctl_print_result). */
int ctl_call_quiet(ctl *c, const ProtobufCServiceDescriptor *svc, const char *method,
                   const ProtobufCMessage *in, ProtobufCMessage **keep, uint32_t *rv);

/* ctl_print_result prints a successful reply (rv 0 or 4096) as ctl_call does. */
void ctl_print_result(ctl *c, uint32_t rv, const ProtobufCMessage *out);

/*
 * The JSON envelope, one object per line, that every command prints with
 * --json: {"command":"vm show","ok":true,"return_value":0,
 * "return_name":"Completed","result":{...}} on success, and
 * {"command":...,"ok":false,"return_value":N,"return_name":...,
 * "description":"..."} otherwise. ctl_envelope_open prints up to the
 * result's value (which the caller prints); ctl_envelope_close ends it.
 */
void ctl_envelope_open(ctl *c, int ok, uint32_t rv);
void ctl_envelope_close(ctl *c, const char *description);

/* ctl_fail prints err (text to stderr, or the envelope to stdout) and
 * returns CTL_EXIT_FAILED. */
int ctl_fail(ctl *c, const fb_err *err);

/* ctl_usage prints why and the command's synopsis (and, with --json, an
 * envelope) and returns CTL_EXIT_USAGE. */
int ctl_usage(const ctl_cmd *cmd, const char *why, ...) __attribute__((format(printf, 2, 3)));

/* ctl_read_settings reads a --settings file ("-" for stdin) as UTF-8:
 * UTF-16 with a byte-order mark is converted, a UTF-8 one dropped. NULL
 * (and a message on stderr) when it cannot. Free the text with free(). */
char *ctl_read_settings(const char *path);

/* Printers (output.c). */
void ctl_print_json(FILE *f, const ProtobufCMessage *m);
void ctl_print_json_string(FILE *f, const char *s);
/* ctl_print_text_string prints s with control characters, bytes that are
 * not UTF-8, and \ escaped as \xNN (\\): text from an agent never drives
 * the terminal. */
void ctl_print_text_string(FILE *f, const char *s);
void ctl_print_text(FILE *f, const ProtobufCMessage *m, int indent);
/* ctl_enum_name spells an enum value as Hyper-V does: FailbackComplete. */
void ctl_enum_name(const ProtobufCEnumValue *ev, char *out, size_t cap);
/* ctl_iso_time: 2026-12-02T05:10:11.123Z ("-" for 0). */
void ctl_iso_time(int64_t ms, char *out, size_t cap);
/* ctl_human_bytes: "12.3 MiB". */
void ctl_human_bytes(char *out, size_t cap, double bytes);

/* Tables: a heading, then cells row by row; printed with columns aligned
 * to the widest cell (display width, escapes included), then freed. */
typedef struct ctl_table ctl_table;
ctl_table *ctl_table_new(const char *const *heads, int ncols);
void       ctl_table_cell(ctl_table *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void       ctl_table_print(ctl_table *t, FILE *f);

/* The tables of the list commands (cmd_replica.c); names (may be NULL)
 * maps VM GUIDs to names for the job table. */
struct Failback__VirtualSystem;
struct Failback__RecoveryPoint;
struct Failback__Job;
void ctl_vm_table(struct Failback__VirtualSystem *const *vms, size_t n);
void ctl_rp_table(struct Failback__RecoveryPoint *const *rps, size_t n);
void ctl_job_table(struct Failback__Job *const *jobs, size_t n,
                   struct Failback__VirtualSystem *const *names, size_t nnames);

/* ctl_state_text: "FailbackComplete (14)" for a value of an enum. */
void ctl_state_text(const ProtobufCEnumDescriptor *d, int v, char *out, size_t cap);

/* ctl_job_type_name: "InitiateFailback" for 124 (Msvm_ConcreteJob.JobType). */
const char *ctl_job_type_name(uint32_t type);

#endif
