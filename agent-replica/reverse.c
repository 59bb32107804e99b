/*
 * reverse.c - ReverseReplicationRelationship (JobType 104) in the transfer
 * worker: the receiving side of a VM's relationship becomes its primary,
 * and the other site becomes the receiving side (DESIGN §2a). No disk is
 * copied and no block crosses the wire; three agent-to-agent steps, each
 * durable on the agent that takes it before it answers, and idempotent:
 *
 *   1 AdoptPrimary   this host's primary agent serves the VM's disks here
 *                    in place, with this site's points as shared history,
 *                    and starts a job taking a point of the disks as they
 *                    are now, which this one follows (GetPointJob). This
 *                    agent then records the VM as served by its primary
 *                    (Ready, mode primary) at the new generation, with the
 *                    other site pending. Durable before step 2.
 *   2 HandOver       the other site's primary agent stops being the VM's
 *                    primary and answers with its disks and points.
 *   3 AdoptRecovery  the other site's replica agent takes those disks in
 *                    place as the receiving side (Waiting to start
 *                    resynchronization), with the shared history, pulling
 *                    from this host's primary agent.
 *
 * When the other site cannot be reached, this site's side stays done and
 * the job completes with phase PeerPending; the VM records the other
 * site's replica agent, and the same call again (accepted in Ready while
 * that is recorded) completes steps 2 and 3. The generation the job
 * advances the VM to is kept in its checkpoint, so a restarted worker
 * repeats its steps with the same one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "failback/log.h"
#include "failback/pb.h"
#include "primary.pb-c.h"
#include "relationship.pb-c.h"
#include "worker.h"

/* The worker exits without closing its connections (worker.c): they stay
 * reachable here until then. */
static session sessions[3];

struct reverse {
	worker                  *w;
	fb_vm                   *vm;
	Failback__JobCheckpoint *cp;
	const char              *primary_url, *primary_name; /* the other site's primary */
	char                     here_url[FB_URL_MAX];       /* this host's primary agent */
};

static uint32_t
rel_fail(uint32_t rv, fb_err *err, const char *step, const char *url)
{
	char why[FB_ERR_MSG_MAX];

	snprintf(why, sizeof(why), "%s", err->msg);
	return fb_err_set(err, rv, "%s at %s: %s", step, url, why);
}

/* The VM's points, as protobuf messages in rel->history (all points: the
 * receiver records them as shared history). Freed by rel_points_free. */
struct points {
	fb_rp                    *rps;
	size_t                    n;
	Failback__RecoveryPoint **pb;
	Failback__RecoveryPoint  *msgs;
	Failback__DiskManifest   *disks;
	Failback__DiskManifest  **pdisks;
};

static void
points_free(struct points *p)
{
	free(p->rps);
	free(p->pb);
	free(p->msgs);
	free(p->disks);
	free(p->pdisks);
}

static uint32_t
points_load(fb_db *db, const char *vm_id, struct points *p, fb_err *err)
{
	size_t   nd = 0, k = 0;
	uint32_t rv;

	memset(p, 0, sizeof(*p));
	if ((rv = fb_rp_list(db, vm_id, &p->rps, &p->n, err)) != FB_RV_OK)
		return rv;
	if (p->n > FB_WIRE_MAX_POINTS) { /* the newest: the history that matters */
		memmove(p->rps, p->rps + (p->n - FB_WIRE_MAX_POINTS),
		        FB_WIRE_MAX_POINTS * sizeof(*p->rps));
		p->n = FB_WIRE_MAX_POINTS;
	}
	for (size_t i = 0; i < p->n; i++)
		nd += p->rps[i].ndisks;
	p->pb     = calloc(p->n + 1, sizeof(*p->pb));
	p->msgs   = calloc(p->n + 1, sizeof(*p->msgs));
	p->disks  = calloc(nd + 1, sizeof(*p->disks));
	p->pdisks = calloc(nd + 1, sizeof(*p->pdisks));
	if (p->pb == NULL || p->msgs == NULL || p->disks == NULL || p->pdisks == NULL)
		return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
	for (size_t i = 0; i < p->n; i++) {
		fb_rp                   *rp = &p->rps[i];
		Failback__RecoveryPoint *m  = &p->msgs[i];

		failback__recovery_point__init(m);
		m->id             = rp->id;
		m->vm_id          = rp->vm_id;
		m->time_unix_ms   = rp->time_ms;
		m->type           = (Failback__RecoveryPointType)rp->type;
		m->hash_algorithm = rp->algorithm;
		m->history        = !rp->held;
		m->disks          = &p->pdisks[k];
		m->n_disks        = rp->ndisks;
		for (size_t d = 0; d < rp->ndisks; d++, k++) {
			Failback__DiskManifest *dm = &p->disks[k];

			failback__disk_manifest__init(dm);
			dm->name        = rp->disks[d].name;
			dm->size_bytes  = rp->disks[d].size;
			dm->block_size  = rp->disks[d].block_size;
			dm->block_count = rp->disks[d].nblocks;
			dm->root.data   = rp->disks[d].root.b;
			dm->root.len    = FB_HASH_LEN;
			p->pdisks[k]    = dm;
		}
		p->pb[i] = m;
	}
	return FB_RV_OK;
}

/* A Relationship message over vm's identity and the given disks. */
static void
rel_init(Failback__Relationship *m, const fb_vm *vm, uint64_t gen, Failback__Disk **pdisks,
         Failback__Disk *disks, const fb_vm_disk *src, size_t nsrc, int force)
{
	failback__relationship__init(m);
	m->vm_id            = (char *)vm->id;
	m->vm_name          = (char *)vm->name;
	m->generation       = gen;
	m->force            = force != 0;
	m->recovery_history = vm->recovery_history;
	m->disks            = pdisks;
	m->n_disks          = nsrc;
	for (size_t i = 0; i < nsrc; i++) {
		failback__disk__init(&disks[i]);
		disks[i].name       = (char *)src[i].name;
		disks[i].path       = (char *)src[i].path;
		disks[i].size_bytes = src[i].size;
		disks[i].format     = (char *)(src[i].format[0] != '\0' ? src[i].format : "raw");
		pdisks[i]           = &disks[i];
	}
}

/* Signs a step's statement (parts joined, proof.h) towards the agent named
 * receiver, into p and m (static storage: one step at a time). */
static uint32_t
step_sign(const worker *w, const char *const *parts, size_t n, const char *receiver, fb_proof *p,
          Failback__AgentProof *m, fb_err *err)
{
	char     st[FB_PROOF_STATEMENT_MAX];
	uint32_t rv;

	if ((rv = fb_proof_statement(st, sizeof(st), parts, n, err)) != FB_RV_OK)
		return rv;
	return fb_pb_proof_sign(w->r->set->cert, w->r->set->key, st, receiver, p, m, err);
}

static fb_proof             step_proof_store;
static Failback__AgentProof step_proof_msg;

static uint32_t
save_step(struct reverse *rv_, uint32_t step, fb_err *err)
{
	rv_->cp->step = step;
	return job_store_checkpoint_save(rv_->w->db, rv_->w->job, rv_->cp, err);
}

/* Follows the point job the primary agent started (GetPointJob), its
 * progress in this job's bytes, to its point. */
static uint32_t
follow_point_job(worker *w, session *s, const char *job, fb_rp *rp, fb_err *err)
{
	Failback__PointJobRef ref = FAILBACK__POINT_JOB_REF__INIT;

	ref.job = (char *)job;
	progress_phase(&w->pg, "TakingPoint");
	for (;;) {
		Failback__GetPointJobResponse *r = NULL;
		uint32_t                       rv;
		int                            state;

		if ((rv = session_call_svc(s, 0, &failback__primary_service__descriptor, "GetPointJob",
		                           &ref.base, (ProtobufCMessage **)&r, FB_CALL_TIMEOUT_MS,
		                           err)) != FB_RV_OK)
			return rv;
		if (r->job == NULL) {
			failback__get_point_job_response__free_unpacked(r, NULL);
			return fb_err_set(err, FB_RV_FAILED, "point job %s: no job in the answer", job);
		}
		state             = (int)r->job->job_state;
		w->pg.bytes_done  = r->job->bytes_done;
		w->pg.bytes_total = r->job->bytes_total;
		if (state == FAILBACK__JOB_STATE__JS_COMPLETED) {
			rv = r->point != NULL ? fb_pb_to_rp(r->point, "this host's primary agent", rp, err)
			                      : fb_err_set(err, FB_RV_FAILED,
			                                   "point job %s completed without a point", job);
			failback__get_point_job_response__free_unpacked(r, NULL);
			return rv;
		}
		if (state >= FAILBACK__JOB_STATE__JS_COMPLETED) {
			rv = fb_err_set(err, r->job->error_code ? r->job->error_code : FB_RV_FAILED,
			                "the point of the disks as they are now: %s",
			                r->job->error_description);
			failback__get_point_job_response__free_unpacked(r, NULL);
			return rv;
		}
		failback__get_point_job_response__free_unpacked(r, NULL);
		progress_sleep_ms(&w->pg, 250);
	}
}

/* Step 1: this host's primary agent takes the VM on; then this agent
 * records the VM as served by it. */
static uint32_t
step_adopt_primary(struct reverse *x, fb_err *err)
{
	worker                         *w = x->w;
	const replica_settings         *rs = w->r->rset;
	Failback__Relationship          req;
	Failback__Disk                  disks[FB_MAX_DISKS], *pdisks[FB_MAX_DISKS];
	Failback__AdoptPrimaryResponse *rsp = NULL;
	struct points                   pts;
	fb_rp                           rp;
	char                            job[FB_ID_LEN + 1];
	session                        *s = &sessions[0];
	fb_vm                           vm;
	uint32_t                        rv;

	progress_phase(&w->pg, "AdoptingPrimary");
	if ((rv = points_load(w->db, x->vm->id, &pts, err)) != FB_RV_OK) {
		points_free(&pts);
		return rv;
	}
	rel_init(&req, x->vm, x->cp->generation, pdisks, disks, x->vm->disks, x->vm->ndisks,
	         w->params->force);
	req.history       = pts.pb;
	req.n_history     = pts.n;
	req.recovery_url  = w->params->peer_url;
	req.recovery_name = w->params->peer_name;
	{
		char        gen[24], digest[65];
		const char *parts[] = {
		    "adopt-primary",  req.vm_id,         gen,   req.force ? "force" : "",
		    req.recovery_url, req.recovery_name, digest};

		snprintf(gen, sizeof(gen), "%llu", (unsigned long long)req.generation);
		fb_pb_disks_digest(req.disks, req.n_disks, digest);
		if ((rv = step_sign(w, parts, 7, rs->local_primary_name, &step_proof_store,
		                    &step_proof_msg, err)) != FB_RV_OK) {
			points_free(&pts);
			return rv;
		}
		req.proof = &step_proof_msg;
	}
	rv = session_open_to(s, w->r, rs->local_primary_url, rs->local_primary_name, 1, &w->pg,
	                     w->job, err);
	/* In use: the point job an AdoptPrimary of a worker before a restart
	 * started is still running; this one waits for it, then asks again. */
	for (int waited = 0; rv == FB_RV_OK || rv == FB_RV_SYSTEM_IN_USE; waited++) {
		rv = session_call_svc(s, 0, &failback__relationship_service__descriptor,
		                      "AdoptPrimary", &req.base, (ProtobufCMessage **)&rsp,
		                      FB_CALL_TIMEOUT_MS, err);
		if (rv != FB_RV_SYSTEM_IN_USE || waited * 1000 >= FB_ADOPT_WAIT_MS)
			break;
		if (waited == 0)
			fb_log_info("FB6034", "job %s: %s; waiting for it", w->job, err->msg);
		progress_sleep_ms(&w->pg, 1000);
	}
	if (rv != FB_RV_OK) {
		points_free(&pts);
		return rel_fail(rv, err, "this host's primary agent", rs->local_primary_url);
	}
	points_free(&pts);
	snprintf(job, sizeof(job), "%s", rsp->job);
	failback__adopt_primary_response__free_unpacked(rsp, NULL);
	if ((rv = follow_point_job(w, s, job, &rp, err)) != FB_RV_OK)
		return rel_fail(rv, err, "this host's primary agent", rs->local_primary_url);
	rp.held = 0;
	vm      = *x->vm;
	vm.mode = FAILBACK__REPLICATION_MODE__RM_PRIMARY;
	vm.state      = FAILBACK__REPLICATION_STATE__RS_READY;
	vm.generation = x->cp->generation;
	snprintf(vm.pending_peer, sizeof(vm.pending_peer), "%s", w->params->peer_url);
	if ((rv = fb_vm_put(w->db, &vm, err)) != FB_RV_OK ||
	    (rv = fb_rp_import(w->db, vm.id, &rp, 1, err)) != FB_RV_OK)
		return rv;
	*x->vm = vm;
	fb_log_info("FB6030",
	            "job %s: VM %s is served by this host's primary agent at generation %llu "
	            "(point %s of its disks as they are now)",
	            w->job, vm.name, (unsigned long long)vm.generation, rp.id);
	return save_step(x, 1, err);
}

/* Steps 2 and 3: the other site. NOT_AVAILABLE / TIMEOUT: it is not there. */
static uint32_t
step_other_site(struct reverse *x, fb_err *err)
{
	worker                      *w = x->w;
	const replica_settings      *rs = w->r->rset;
	Failback__HandOverRequest    ho = FAILBACK__HAND_OVER_REQUEST__INIT;
	Failback__HandOverResponse  *hr = NULL;
	Failback__AdoptRecoveryResponse *ar = NULL;
	Failback__Relationship       req;
	Failback__Disk               disks[FB_MAX_DISKS], *pdisks[FB_MAX_DISKS];
	fb_vm_disk                   theirs[FB_MAX_DISKS];
	session                     *s = &sessions[1], *t = &sessions[2];
	uint32_t                     rv;

	progress_phase(&w->pg, "HandingOver");
	ho.vm           = x->vm->id;
	ho.generation   = x->cp->generation;
	ho.force        = w->params->force != 0;
	ho.primary_url  = x->here_url;
	ho.primary_name = (char *)rs->local_primary_name;
	{
		char        gen[24];
		const char *parts[] = {"handover",     ho.vm,          gen, ho.force ? "force" : "",
		                       ho.primary_url, ho.primary_name};

		snprintf(gen, sizeof(gen), "%llu", (unsigned long long)ho.generation);
		if ((rv = step_sign(w, parts, 6, x->primary_name, &step_proof_store,
		                    &step_proof_msg, err)) != FB_RV_OK)
			return rv;
		ho.proof = &step_proof_msg;
	}
	if ((rv = session_open_to(s, w->r, x->primary_url, x->primary_name, 1, &w->pg, w->job,
	                          err)) != FB_RV_OK ||
	    (rv = session_call_svc(s, 0, &failback__relationship_service__descriptor, "HandOver",
	                           &ho.base, (ProtobufCMessage **)&hr, FB_CALL_TIMEOUT_MS, err)) !=
	        FB_RV_OK)
		return rel_fail(rv, err, "the other site's primary agent", x->primary_url);
	if (hr->vm == NULL || hr->receipt == NULL ||
	    (rv = fb_pb_to_disks(hr->vm->disks, hr->vm->n_disks, "the other site's primary agent",
	                         theirs, err)) != FB_RV_OK ||
	    hr->n_points > FB_WIRE_MAX_POINTS) {
		failback__hand_over_response__free_unpacked(hr, NULL);
		return fb_err_set(err, FB_RV_FAILED,
		                  "the other site's primary agent at %s answered HandOver with a VM "
		                  "that is not usable, or without its receipt",
		                  x->primary_url);
	}
	for (size_t i = 0; i < hr->n_points; i++)
		if ((rv = fb_pb_check_rp(hr->points[i], "the other site's primary agent", err)) !=
		    FB_RV_OK) {
			failback__hand_over_response__free_unpacked(hr, NULL);
			return rv;
		}
	fb_log_info("FB6031", "job %s: the primary agent at %s handed VM %s over at generation %llu",
	            w->job, x->primary_url, x->vm->name, (unsigned long long)x->cp->generation);

	progress_phase(&w->pg, "AdoptingRecovery");
	rel_init(&req, x->vm, x->cp->generation, pdisks, disks, theirs, hr->vm->n_disks,
	         w->params->force);
	req.history      = hr->points;
	req.n_history    = hr->n_points;
	req.primary_url  = x->here_url;
	req.primary_name = (char *)rs->local_primary_name;
	req.receipt      = hr->receipt; /* the other site's replica agent checks it */
	rv = session_open_to(t, w->r, w->params->peer_url, w->params->peer_name, 1, &w->pg, w->job,
	                     err);
	if (rv == FB_RV_OK)
		rv = session_call_svc(t, 0, &failback__relationship_service__descriptor,
		                      "AdoptRecovery", &req.base, (ProtobufCMessage **)&ar,
		                      FB_CALL_TIMEOUT_MS, err);
	failback__hand_over_response__free_unpacked(hr, NULL);
	if (rv != FB_RV_OK)
		return rel_fail(rv, err, "the other site's replica agent", w->params->peer_url);
	failback__adopt_recovery_response__free_unpacked(ar, NULL);
	fb_log_info("FB6032",
	            "job %s: the replica agent at %s holds VM %s as the receiving side, pulling "
	            "from %s",
	            w->job, w->params->peer_url, x->vm->name, x->here_url);
	if ((rv = fb_vm_set_relationship(w->db, x->vm->id, x->vm->generation, x->vm->peer_url,
	                                 x->vm->peer_name, x->vm->peer_pin, "", err)) != FB_RV_OK)
		return rv;
	return save_step(x, 3, err);
}

uint32_t
reverse_flow(worker *w, fb_err *err)
{
	struct reverse x;
	fb_err         e = {0};
	uint32_t       rv;

	memset(&x, 0, sizeof(x));
	x.w = w;
	if ((rv = fb_vm_get(w->db, w->params->vm, &x.vm, err)) != FB_RV_OK)
		return rv;
	snprintf(w->pg.vm_id, sizeof(w->pg.vm_id), "%s", x.vm->id);
	snprintf(x.here_url, sizeof(x.here_url), "%s", w->r->rset->local_primary_url);
	x.primary_url  = x.vm->peer_url[0] != '\0' ? x.vm->peer_url : w->r->rset->peer_url;
	x.primary_name = x.vm->peer_url[0] != '\0' ? x.vm->peer_name : w->r->rset->peer_name;
	if (job_store_checkpoint_load(w->db, w->job, &x.cp, &e) != FB_RV_OK || x.cp == NULL) {
		if ((x.cp = calloc(1, sizeof(*x.cp))) == NULL) {
			rv = fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
			goto out;
		}
		failback__job_checkpoint__init(x.cp);
		/* a reverse whose own side is done already keeps its generation */
		if (x.vm->mode == FAILBACK__REPLICATION_MODE__RM_PRIMARY &&
		    x.vm->pending_peer[0] != '\0') {
			x.cp->generation = x.vm->generation;
			x.cp->step       = 1;
		} else {
			x.cp->generation = x.vm->generation + 1;
		}
		if ((rv = job_store_checkpoint_save(w->db, w->job, x.cp, err)) != FB_RV_OK)
			goto out;
	}
	if (x.cp->step < 1 && (rv = step_adopt_primary(&x, err)) != FB_RV_OK)
		goto out;
	if (x.cp->step < 3 && (rv = step_other_site(&x, err)) != FB_RV_OK) {
		if (rv != FB_RV_NOT_AVAILABLE && rv != FB_RV_TIMEOUT)
			goto out;
		fb_log_warn("FB6033",
		            "job %s: %s; this site's side is done, the other site's is pending: "
		            "reverse VM %s again when it is back",
		            w->job, err->msg, x.vm->name);
		progress_phase(&w->pg, "PeerPending");
		rv = FB_RV_OK;
	}
out:
	if (x.cp != NULL)
		failback__job_checkpoint__free_unpacked(x.cp, NULL);
	free(x.vm);
	return rv;
}
