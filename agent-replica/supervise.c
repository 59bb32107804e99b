/*
 * supervise.c - a job's transfer runs in a worker process (this program
 * with --worker-job ID), because NNG 1.5.2 can wedge a client socket whose
 * peer dies mid-message and then nothing in the process can close it.
 * Here a wedge costs one worker.
 *
 * The worker reports on a pipe with length-prefixed JobReport messages
 * (job.proto); every report is checked for its length and fields before
 * use, and a worker that sends a bad one is killed and replaced. A worker
 * silent for WATCHDOG_MS is killed and a new one resumes from the
 * checkpoint the last one made durable; a worker that dies is restarted
 * the same way, at most MAX_RESTARTS times, with a growing pause. Events
 * are published on every report and at least every HEARTBEAT_MS.
 *
 * How the timeouts relate: a worker's calls time out after 20 s and its
 * fetch pipeline goes quiet after 25 s without headway (worker.h), both
 * under WATCHDOG_MS (30 s), so a wedged connection ends in a restart, not
 * in a worker that hangs.
 */
#define _GNU_SOURCE /* pipe2 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "driver.h"
#include "failback/clock.h"
#include "failback/id.h"
#include "failback/lease.h"
#include "failback/log.h"
#include "replica.h"
#include "worker.h"

extern char **environ;

#define WATCHDOG_MS  30000
#define HEARTBEAT_MS 200
#define MAX_RESTARTS 8

enum attempt { A_DONE, A_FAILED, A_CANCELLED, A_LOST };

/* Checks a report's fields; 0 when it may be used. */
static int
report_valid(const Failback__JobReport *rep, const char **why)
{
	size_t plen = strlen(rep->phase);

	*why = NULL;
	if (rep->kind != FAILBACK__JOB_REPORT__KIND__PROGRESS &&
	    rep->kind != FAILBACK__JOB_REPORT__KIND__DONE &&
	    rep->kind != FAILBACK__JOB_REPORT__KIND__FAILED)
		*why = "unknown kind";
	else if (plen == 0 || plen >= 32)
		*why = "bad phase";
	else if (rep->bytes_done > rep->bytes_total || rep->blocks_done > rep->blocks_total)
		*why = "counters past their totals";
	else if (rep->vm_id[0] != '\0' && !fb_id_valid(rep->vm_id))
		*why = "bad VM id";
	else if (rep->compare_mode[0] != '\0' && strcmp(rep->compare_mode, "bitmap") != 0 &&
	         strcmp(rep->compare_mode, "full scan") != 0)
		*why = "bad compare mode";
	else if (rep->kind == FAILBACK__JOB_REPORT__KIND__FAILED &&
	         (fb_rv_ok(rep->error_code) || strlen(rep->error_description) >= FB_ERR_MSG_MAX))
		*why = "bad error";
	for (const char *c = rep->phase; *why == NULL && *c; c++)
		if (*c < 0x21 || *c > 0x7e)
			*why = "bad phase";
	return *why == NULL ? 0 : -1;
}

static pid_t
spawn_worker(run *j, int *out_fd)
{
	posix_spawn_file_actions_t fa;
	char                       arg[64];
	char                     **argv;
	int                        p[2], nargc, argc;
	char                     **own = fb_agent_argv(j->r->agent, &nargc);
	pid_t                      pid = 0;

	/* Close-on-exec: another job's worker must not hold this job's pipe
	 * (its end of file is how the agent learns the worker is gone). */
	if (pipe2(p, O_CLOEXEC) != 0)
		return 0;
	if ((argv = calloc((size_t)nargc + 2, sizeof(char *))) == NULL) {
		close(p[0]);
		close(p[1]);
		return 0;
	}
	for (argc = 0; argc < nargc; argc++)
		argv[argc] = own[argc];
	snprintf(arg, sizeof(arg), "--worker-job=%s", j->id);
	argv[argc++] = arg;
	argv[argc]   = NULL;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, p[1], STDOUT_FILENO);
	posix_spawn_file_actions_addclose(&fa, p[0]);
	{
		int e = posix_spawn(&pid, "/proc/self/exe", &fa, NULL, argv, environ);

		if (e != 0) {
			fb_log_error("FB5014", "job %s: cannot start a transfer worker from "
			             "/proc/self/exe: %s (the replica needs /proc mounted)",
			             j->id, strerror(e));
			pid = 0;
		}
	}
	posix_spawn_file_actions_destroy(&fa);
	free(argv);
	close(p[1]);
	if (pid == 0)
		close(p[0]);
	else
		*out_fd = p[0];
	return pid;
}

/* Decodes every complete report in buf; returns the attempt's outcome so
 * far (A_LOST while it runs on), or -1 on a bad report. */
static int
take_reports(run *j, uint8_t *buf, size_t *have)
{
	size_t off = 0;
	int    outcome = A_LOST;

	while (*have - off >= 4) {
		uint32_t             len = (uint32_t)buf[off] << 24 | (uint32_t)buf[off + 1] << 16 |
		               (uint32_t)buf[off + 2] << 8 | buf[off + 3];
		Failback__JobReport *rep;
		const char          *why;

		if (len > FB_REPORT_MAX) {
			fb_log_error("FB5013", "job %s: worker sent a %u-byte report", j->id, len);
			return -1;
		}
		if (*have - off - 4 < len)
			break;
		if ((rep = failback__job_report__unpack(NULL, len, buf + off + 4)) == NULL) {
			fb_log_error("FB5013", "job %s: worker sent an undecodable report", j->id);
			return -1;
		}
		if (report_valid(rep, &why) != 0) {
			fb_log_error("FB5013", "job %s: worker sent a bad report (%s)", j->id, why);
			failback__job_report__free_unpacked(rep, NULL);
			return -1;
		}
		run_progress(j, rep);
		if (rep->kind == FAILBACK__JOB_REPORT__KIND__DONE)
			outcome = A_DONE;
		else if (rep->kind == FAILBACK__JOB_REPORT__KIND__FAILED) {
			run_set_error(j, rep->error_code, rep->error_description);
			outcome = A_FAILED;
		}
		failback__job_report__free_unpacked(rep, NULL);
		off += 4 + len;
	}
	memmove(buf, buf + off, *have - off);
	*have -= off;
	return outcome;
}

/* Runs one worker process to its end. */
static enum attempt
run_worker(run *j)
{
	uint8_t  buf[2 * (FB_REPORT_MAX + 4)];
	size_t   have = 0;
	uint64_t last = fb_clock_mono_ms();
	int      fd = -1, st = 0, outcome = A_LOST;
	pid_t    pid;

	if ((pid = spawn_worker(j, &fd)) == 0)
		return A_LOST;
	fb_log_info("FB5010", "job %s: worker %d started", j->id, (int)pid);
	for (;;) {
		struct pollfd pfd = {fd, POLLIN, 0};
		int           n   = poll(&pfd, 1, HEARTBEAT_MS);
		uint64_t      now = fb_clock_mono_ms();

		atomic_store(&j->beat_ms, now);
		if (run_cancel_requested(j)) {
			kill(pid, SIGKILL);
			outcome = A_CANCELLED;
			break;
		}
		if (n > 0) {
			ssize_t k = read(fd, buf + have, sizeof(buf) - have);
			int     o;

			if (k <= 0)
				break; /* the worker is gone */
			have += (size_t)k;
			last = now;
			if ((o = take_reports(j, buf, &have)) < 0) {
				kill(pid, SIGKILL);
				outcome = A_LOST;
				break;
			}
			if (o != A_LOST)
				outcome = o;
		}
		if (now - last > WATCHDOG_MS) {
			fb_log_warn("FB5011", "job %s: worker %d silent for %d ms; killing it", j->id,
			            (int)pid, WATCHDOG_MS);
			kill(pid, SIGKILL);
			outcome = A_LOST;
			break;
		}
		if (now - j->last_publish >= HEARTBEAT_MS)
			run_publish(j);
	}
	close(fd);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	/* The worker found the lease another agent's: so is this agent's, and
	 * it must not record anything more (not even this job's end). */
	if (WIFEXITED(st) && WEXITSTATUS(st) == FB_LEASE_LOST_EXIT) {
		fb_err e = {0};

		if (fb_lease_check(j->r->set->data_dir, j->r->set->node_name, getpid(), &e) !=
		    FB_RV_OK) {
			fb_log_error("FB1021", "%s; stopping at once (exit %d)", e.msg,
			             FB_LEASE_LOST_EXIT);
			_exit(FB_LEASE_LOST_EXIT);
		}
	}
	if (outcome == A_DONE && !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
		outcome = A_LOST;
	return (enum attempt)outcome;
}

static enum supervise_outcome
supervise_attempts(run *j)
{
	for (int attempt = 0;; attempt++) {
		enum attempt a = run_worker(j);

		if (a == A_DONE)
			return SUPERVISE_DONE;
		if (a == A_FAILED)
			return SUPERVISE_FAILED;
		if (a == A_CANCELLED)
			return SUPERVISE_CANCELLED;
		if (attempt >= MAX_RESTARTS) {
			run_set_error(j, FB_RV_FAILED,
			              "the transfer worker kept failing; see the agent log");
			return SUPERVISE_FAILED;
		}
		replica_metrics_worker_restart();
		fb_log_warn("FB5012", "job %s: worker lost; restarting from the checkpoint (%d)",
		            j->id, attempt + 1);
		for (int w = 0; w < (1 << (attempt < 4 ? attempt : 4)) * 5; w++) {
			if (run_cancel_requested(j))
				return SUPERVISE_CANCELLED;
			atomic_store(&j->beat_ms, fb_clock_mono_ms());
			usleep(100000);
		}
		if (run_cancel_requested(j))
			return SUPERVISE_CANCELLED;
	}
}

/* The agent's health check watches the supervisor while it runs (beat_ms). */
enum supervise_outcome
supervise(run *j)
{
	enum supervise_outcome o;

	atomic_store(&j->beat_ms, fb_clock_mono_ms());
	o = supervise_attempts(j);
	atomic_store(&j->beat_ms, 0);
	return o;
}
