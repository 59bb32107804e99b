/*
 * harness.h - real agents on loopback for integration tests.
 *
 * fbt_setup makes a scratch directory and a fresh development PKI in it
 * (certs/make-dev-pki.sh). fbt_agent_start spawns the real
 * failback-primary or failback-replica with every listener on
 * 127.0.0.1:0 and waits (with a deadline, polling) for the URLs it bound;
 * fbt_ctl runs the real failbackctl and captures what it printed. Nothing
 * here sleeps for a fixed time.
 */
#ifndef FBT_HARNESS_H
#define FBT_HARNESS_H

#include <stddef.h>
#include <sys/types.h>

typedef struct fbt_agent {
	pid_t pid;
	char  dir[512];     /* data directory */
	char  log[600];     /* stderr of the agent */
	char  control[128]; /* operator listener URL */
	char  monitor[128];
	char  events[128];
	char  resync[128]; /* the agents' listener */
	char  metrics[128]; /* http://127.0.0.1:PORT (/metrics, /healthz) */
	int   exit_status; /* set when it exited during fbt_agent_start */
} fbt_agent;

/* fbt_assert_exit: a command's exit status (call) must be want; when it
 * is not, its output (out) is printed before the failure, so a failure
 * in CI says what the command said. */
#define fbt_assert_exit(call, want, out)                                                       \
	do {                                                                                   \
		int fbt_rc_ = (call);                                                          \
		if (fbt_rc_ != (want))                                                         \
			fprintf(stderr, "exit status %d, not %d; the command said:\n%s\n", fbt_rc_, \
			        (want), (out));                                                \
		assert_int_equal(fbt_rc_, (want));                                             \
	} while (0)

/* The scratch directory and PKI directory of this test program. */
const char *fbt_root(void);
const char *fbt_pki(void);

/* fbt_setup creates the scratch directory and PKI once; fbt_teardown stops
 * every agent this program started that still runs (SIGTERM, SIGKILL after
 * 5 s) and removes the scratch directory; it exits 1 (keeping the directory)
 * when an agent log holds a sanitizer report. Return 0 on success. */
int  fbt_setup(void);
void fbt_teardown(void);

/* fbt_sanitizer_reports counts the agent logs of this program that hold
 * an AddressSanitizer, LeakSanitizer, UBSan or ThreadSanitizer report
 * (printing them). fbt_teardown fails the program when there is one. */
int fbt_sanitizer_reports(void);

/* fbt_pki_file writes "<pki>/<name>" into a static rotating buffer of 8:
 * not for use from several threads. */
const char *fbt_pki_file(const char *name);

/* fbt_agent_start starts "primary" or "replica" with the named identity
 * (certificate and key "<cert>.pem/.key" from the PKI) and any extra
 * arguments (NULL-terminated). Returns 0 when its listeners are up, -1 when
 * it exited or did not come up within 20 s (a->pid is then 0 or reaped). */
int fbt_agent_start(fbt_agent *a, const char *kind, const char *cert, const char *const *extra);

/* fbt_replica_start starts a replica agent peered with primary's resync
 * listener (name primary.failback.test), then the extra arguments. */
int fbt_replica_start(fbt_agent *a, const fbt_agent *primary, const char *const *extra);

/* fbt_agent_stop sends sig and waits up to timeout_ms for the exit.
 * Returns the exit status (0-255), 128+signal if killed by a signal, or -1
 * if it was still running at the deadline (it is then SIGKILLed). */
int fbt_agent_stop(fbt_agent *a, int sig, int timeout_ms);

/* fbt_run runs argv (NULL-terminated), waits up to 60 s, and captures
 * stdout+stderr into out (cap bytes, NUL-terminated). Returns the exit
 * status, or -1. A command killed at 60 s is reported on stderr with the
 * last lines of every agent log, which say what it waited for. */
int fbt_run(char *const argv[], char *out, size_t cap);

/* fbt_ctl runs failbackctl as identity id ("operator", "monitor", ...)
 * against url, with server name sname, then the given arguments. */
int fbt_ctl(char *out, size_t cap, const char *url, const char *id, const char *sname, ...);

/* fbt_ctlv is fbt_ctl with a NULL-terminated argument array. */
int fbt_ctlv(char *out, size_t cap, const char *url, const char *id, const char *sname,
             const char *const *args);

/* FBT_P / FBT_R run failbackctl as the operator against a primary or a
 * replica agent (the replica's with its events URL for --wait), capturing
 * into the char array out. */
#define FBT_P(out, primary, ...)                                                               \
	fbt_ctlv(out, sizeof(out), (primary).control, "operator", "primary.failback.test",       \
	         (const char *[]){__VA_ARGS__, NULL})
#define FBT_R(out, replica, ...)                                                               \
	fbt_ctlv(out, sizeof(out), (replica).control, "operator", "replica.failback.test",       \
	         (const char *[]){"--events-url", (replica).events, __VA_ARGS__, NULL})

/* fbt_http_get sends GET path to url ("http://127.0.0.1:PORT") and puts
 * the body into out (NUL-terminated). Returns the HTTP status, -1 when
 * nothing answered within 10 s. */
int fbt_http_get(const char *url, const char *path, char *out, size_t cap);

/* fbt_file_contains is 1 if file contains text. */
int fbt_file_contains(const char *path, const char *text);

#endif
