/*
 * worker.c - the transfer worker process: `failback-replica --worker-job
 * ID`, started and watched by the agent (supervise.c). It opens its own
 * database connection and block store, loads its job, opens a session
 * with the primary and runs the flow its driver row names. The flow's
 * result becomes the final report; this is the only place that exits.
 *
 * The worker never calls nng_close: it exits (NNG 1.5.2 can hang in
 * close with a message in flight; everything the agent needs is durable
 * before it is reported).
 */
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "driver.h"
#include "failback/image.h"
#include "failback/lease.h"
#include "failback/log.h"
#include "worker.h"

static uint32_t
worker_open(worker *w, fb_err *err)
{
	job_row  row;
	char     path[4200];
	uint32_t rv;

	if ((rv = replica_path(w->r, path, sizeof(path), err, "state.db")) != FB_RV_OK ||
	    (rv = fb_db_open_schema(&w->db, path, &job_store_schema, err)) != FB_RV_OK ||
	    (rv = replica_path(w->r, path, sizeof(path), err, "blocks")) != FB_RV_OK ||
	    (rv = fb_store_open(&w->store, w->db, path, FB_STORE_NO_RECLAIM, err)) != FB_RV_OK)
		return rv;
	if ((rv = job_store_get(w->db, w->job, &row, &w->params, err)) != FB_RV_OK) {
		char why[FB_ERR_MSG_MAX];

		snprintf(why, sizeof(why), "%s", err->msg);
		return fb_err_set(err, rv, "cannot load job: %s", why);
	}
	w->type = row.type;
	return fb_rsd_parse(w->params->replication_setting_data,
	                    strlen(w->params->replication_setting_data), &w->rsd, err);
}

void
worker_lease_check(const worker *w)
{
	fb_err e = {0};

	if (fb_lease_check(w->r->set->data_dir, w->r->set->node_name, getppid(), &e) != FB_RV_OK) {
		fb_log_error("FB6005", "job %s: %s; this worker stops without writing", w->job, e.msg);
		_exit(FB_LEASE_LOST_EXIT);
	}
}

static uint32_t
worker_run(worker *w, fb_err *err)
{
	const job_driver *drv;
	uint32_t          rv;

	if (getppid() == 1)
		return fb_err_set(err, FB_RV_FAILED, "the agent is gone");
	worker_lease_check(w);
	if ((rv = worker_open(w, err)) != FB_RV_OK)
		return rv;
	if ((drv = driver_of(w->type)) == NULL || drv->flow == NULL)
		return fb_err_set(err, FB_RV_NOT_SUPPORTED, "job type %d has no worker", w->type);
	if (!drv->own_sessions) {
		fb_vm *vm = NULL;
		fb_err e  = {0};

		if (fb_vm_get(w->db, w->params->vm, &vm, &e) != FB_RV_OK)
			vm = NULL; /* a first replication learns the VM */
		rv = session_open(&w->s, w->r, vm, w->params, &w->rsd, &w->pg, w->job, err);
		free(vm);
		if (rv != FB_RV_OK)
			return rv;
	}
	return drv->flow(w, err);
}

void
worker_main(replica *r, const char *job_id)
{
	static worker w; /* fb_rsd is large */
	fb_err        err = {0};
	uint32_t      rv;

	memset(&w, 0, sizeof(w));
	w.r     = r;
	w.job   = job_id;
	w.pg.fd = STDOUT_FILENO;
	signal(SIGPIPE, SIG_IGN);
	/* The transfer buffers (a batch, a reply: up to a few MiB each) are
	 * mapped and unmapped as they come and go. With glibc's default the
	 * threshold rises after the first free, and each fetcher thread's
	 * arena then keeps such buffers: the worker's RSS grew with the amount
	 * moved rather than staying flat. */
	(void)mallopt(M_MMAP_THRESHOLD, 256 << 10);
	/* A worker never outlives its agent: a restarted agent starts its own.
	 * An agent killed before the line below leaves no reader on the
	 * report pipe, which poll() shows as an error: end here. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	{
		struct pollfd pf = {.fd = STDOUT_FILENO, .events = POLLOUT};

		if (poll(&pf, 1, 0) == 1 && (pf.revents & (POLLERR | POLLHUP | POLLNVAL)) != 0) {
			fb_log_warn("FB6001", "job %s: the agent that started this worker is gone", job_id);
			_exit(1);
		}
	}
	rv = worker_run(&w, &err);
	if (rv != FB_RV_OK && fb_image_writes_lost()) {
		/* A qemu-nbd under this worker's writes died: what it took since
		 * the last flush is unknown, so the job goes back to its last
		 * durable checkpoint in a new worker, as after a crash. */
		fb_log_warn("FB6027", "job %s: %s; this worker stops so that a new one resumes from "
		            "the last checkpoint",
		            job_id, err.msg);
		_exit(3);
	}
	if (rv != FB_RV_OK)
		fb_log_warn("FB6001", "job %s: %s", job_id, err.msg);
	progress_end(&w.pg, rv, err.msg);
	if (w.params != NULL)
		failback__job_params__free_unpacked(w.params, NULL);
	fb_rpc_exit_checked(rv == FB_RV_OK ? 0 : 1);
}
