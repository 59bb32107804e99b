/*
 * relationship.c - the primary's side of ReverseReplicationRelationship
 * (RelationshipService, agents' listener only; DESIGN §2a).
 *
 *   AdoptPrimary  this agent becomes the VM's primary: its disks are used
 *                 in place (on this host they are the replica agent's
 *                 recovery disks; nothing is copied), the other site's
 *                 points are recorded as history (same ids and roots, no
 *                 re-hash), and a job takes a point of the disks as they
 *                 are now (points.c); the answer names the job.
 *   HandOver      this agent stops being the VM's primary: it takes no
 *                 more points and Negotiate refuses the VM, so nothing
 *                 replicates its stale disk over the other site's.
 *
 * Who may ask (SECURITY.md, "Reversing a relationship"): AdoptPrimary only
 * the replica agent of this host (--local-replica-name), with its proof
 * over the step; HandOver of a VM that names its receiving side only that
 * replica agent, with its proof. HandOver answers with a receipt this
 * primary signs, without which the replica agent of this host takes
 * nothing (AdoptRecovery).
 *
 * A VM's generation is advanced by every reverse; a step carrying an older
 * generation than the one recorded here is refused (Invalid state) unless
 * forced, which is logged. Both steps are durable before their reply and
 * idempotent.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "failback/log.h"
#include "failback/pb.h"
#include "failback/rp.h"
#include "primary.h"
#include "relationship.pb-c.h"
#include "wire_limits.h"

int
primary_vm_active(const fb_vm *vm)
{
	return vm->mode == FAILBACK__REPLICATION_MODE__RM_PRIMARY;
}

/* The generation guard of a relationship step (see above). */
static uint32_t
guard(fb_rpc_call *call, const fb_vm *vm, uint64_t gen, int newer_only, int force,
      const char *what)
{
	int older = newer_only ? gen <= vm->generation : gen < vm->generation;

	if (!older)
		return FB_RV_OK;
	if (force) {
		fb_log_warn("FB4021",
		            "%s of VM %s at generation %llu forced past generation %llu recorded here",
		            what, vm->name, (unsigned long long)gen,
		            (unsigned long long)vm->generation);
		return FB_RV_OK;
	}
	return fb_rpc_fail(call, FB_RV_INVALID_STATE,
	                   "%s of VM %s at generation %llu refused: this primary holds it at "
	                   "generation %llu",
	                   what, vm->name, (unsigned long long)gen,
	                   (unsigned long long)vm->generation);
}

/* A step's proof, checked; Access Denied is logged (FB4012) and answered. */
static uint32_t
step_proof(primary *p, fb_rpc_call *call, const Failback__AgentProof *proof,
           const char *const *parts, size_t nparts, const char *want, const char *step,
           const char *vm)
{
	const fb_agent_settings *set = fb_agent_settings_get(p->agent);
	char                     st[FB_PROOF_STATEMENT_MAX];
	fb_err                   err = {0};
	uint32_t                 rv;

	if ((rv = fb_proof_statement(st, sizeof(st), parts, nparts, &err)) != FB_RV_OK)
		return fb_pb_fail(call, &err);
	/* No nonce check: the statement binds everything the step acts on, so
	 * a proof used again (a retry whose reply was lost) only repeats the
	 * same idempotent step. */
	if (fb_pb_proof_check(proof, set->ca_agents, set->cert, st, want, 0, &err) != FB_RV_OK) {
		fb_log_warn("FB4012", "refused %s of VM %.64s: %s", step, vm, err.msg);
		return fb_rpc_fail(call, FB_RV_ACCESS_DENIED, "%s of VM %.64s is only for %s: %s",
		                   step, vm, want, err.msg);
	}
	return FB_RV_OK;
}

static uint32_t
adopt_primary(void *arg, fb_rpc_call *call, const ProtobufCMessage *in, ProtobufCMessage *out)
{
	primary                       *p   = arg;
	const Failback__Relationship  *req = (const void *)in;
	Failback__AdoptPrimaryResponse *rsp = (void *)out;
	fb_vm                         *old = NULL, *vm;
	fb_rp                         *hist = NULL;
	fb_err                         err  = {0};
	char                           job[FB_ID_LEN + 1];
	uint32_t                       rv;

	if (!fb_id_valid(req->vm_id) || !fb_vm_name_valid(req->vm_name) ||
	    req->recovery_history > FB_MAX_HISTORY)
		return fb_rpc_fail(call, FB_RV_INVALID_PARAMETER, "not a usable VM identity");
	if (strlen(req->recovery_url) > FB_WIRE_MAX_URL ||
	    strlen(req->recovery_name) > FB_WIRE_MAX_NAME)
		return fb_rpc_fail(call, FB_RV_INVALID_PARAMETER, "the receiving side's URL or name "
		                   "is too long");
	{
		char        gen[24], digest[65];
		const char *parts[] = {
		    "adopt-primary",   req->vm_id,         gen,   req->force ? "force" : "",
		    req->recovery_url, req->recovery_name, digest};

		snprintf(gen, sizeof(gen), "%llu", (unsigned long long)req->generation);
		fb_pb_disks_digest(req->disks, req->n_disks, digest);
		if ((rv = step_proof(p, call, req->proof, parts, 7, p->local_replica_name,
		                     "AdoptPrimary", req->vm_id)) != FB_RV_OK)
			return rv;
	}
	if ((rv = fb_pb_to_rps(req->history, req->n_history, "the relationship", &hist, &err)) !=
	    FB_RV_OK)
		return fb_pb_fail(call, &err);
	for (size_t i = 0; i < req->n_history; i++)
		if (strcasecmp(hist[i].vm_id, req->vm_id) != 0) {
			free(hist);
			return fb_rpc_fail(call, FB_RV_INVALID_PARAMETER,
			                   "history point %s belongs to another VM", hist[i].id);
		}
	if ((vm = calloc(1, sizeof(*vm))) == NULL) {
		free(hist);
		return fb_rpc_fail(call, FB_RV_OUT_OF_MEMORY, "out of memory");
	}
	if (fb_vm_get(p->db, req->vm_id, &old, &err) == FB_RV_OK) {
		/* Adopting again at the generation it already serves is a retry. */
		int retry = primary_vm_active(old) && old->generation == req->generation;

		if (!retry && (rv = guard(call, old, req->generation, 1, req->force,
		                          "taking the primary role")) != FB_RV_OK)
			goto out;
		*vm = *old;
	} else {
		vm->recovery_history = req->recovery_history;
	}
	snprintf(vm->id, sizeof(vm->id), "%s", req->vm_id);
	snprintf(vm->name, sizeof(vm->name), "%s", req->vm_name);
	vm->state        = FAILBACK__REPLICATION_STATE__RS_READY;
	vm->mode         = FAILBACK__REPLICATION_MODE__RM_PRIMARY;
	vm->health       = FAILBACK__REPLICATION_HEALTH__RH_OK;
	vm->generation   = req->generation;
	/* the other side of the relationship: the site that receives it */
	snprintf(vm->peer_url, sizeof(vm->peer_url), "%s", req->recovery_url);
	snprintf(vm->peer_name, sizeof(vm->peer_name), "%s", req->recovery_name);
	vm->pending_peer[0] = '\0';
	if ((rv = fb_pb_adopt_disks(req->disks, req->n_disks, vm->disks, &vm->ndisks, &err)) != FB_RV_OK ||
	    (rv = fb_vm_put(p->db, vm, &err)) != FB_RV_OK ||
	    (rv = fb_rp_import(p->db, vm->id, hist, req->n_history, &err)) != FB_RV_OK) {
		rv = fb_pb_fail(call, &err);
		goto out;
	}
	fb_log_info("FB4022", "VM %s (%s) is served by this primary at generation %llu, %zu disk(s) "
	            "in place, %zu point(s) of shared history",
	            vm->name, vm->id, (unsigned long long)vm->generation, vm->ndisks,
	            req->n_history);
	if ((rv = points_start(p, vm, FAILBACK__RECOVERY_POINT_TYPE__RPT_PLANNED, 0, job, &err)) !=
	    FB_RV_OK) {
		rv = fb_pb_fail(call, &err);
		goto out;
	}
	rsp->generation = vm->generation;
	if ((rsp->job = fb_rpc_strdup(call, job)) == NULL)
		rv = fb_rpc_fail(call, FB_RV_OUT_OF_MEMORY, "out of memory");
out:
	free(old);
	free(vm);
	free(hist);
	return rv;
}

/* The receipt of a HandOver: what this primary handed over, to be served
 * from where; this host's replica agent takes the VM's disks with it only
 * (replica relationship.c). */
static uint32_t
hand_over_receipt(primary *p, fb_rpc_call *call, Failback__HandOverResponse *rsp, const char *gen,
                  const Failback__HandOverRequest *req)
{
	const fb_agent_settings *set = fb_agent_settings_get(p->agent);
	char                     digest[65], st[FB_PROOF_STATEMENT_MAX];
	const char              *parts[] = {"handed-over",    rsp->vm->id,       gen,
	                                    req->primary_url, req->primary_name, digest};
	fb_proof                *pr      = fb_rpc_alloc(call, sizeof(*pr));
	Failback__AgentProof    *m       = fb_rpc_alloc(call, sizeof(*m));
	fb_err                   err     = {0};
	uint32_t                 rv;

	if (pr == NULL || m == NULL)
		return fb_rpc_fail(call, FB_RV_OUT_OF_MEMORY, "out of memory");
	fb_pb_disks_digest(rsp->vm->disks, rsp->vm->n_disks, digest);
	if ((rv = fb_proof_statement(st, sizeof(st), parts, 6, &err)) != FB_RV_OK ||
	    (rv = fb_pb_proof_sign(set->cert, set->key, st, "", pr, m, &err)) != FB_RV_OK) {
		fb_log_error("FB4011", "signing the receipt of a HandOver: %s", err.msg);
		return fb_rpc_fail(call, FB_RV_FAILED,
		                   "HandOver failed on the primary (its log has "
		                   "the detail, FB4011)");
	}
	rsp->receipt = m;
	return FB_RV_OK;
}

static uint32_t
hand_over(void *arg, fb_rpc_call *call, const ProtobufCMessage *in, ProtobufCMessage *out)
{
	primary                        *p   = arg;
	const Failback__HandOverRequest *req = (const void *)in;
	Failback__HandOverResponse     *rsp = (void *)out;
	fb_vm                          *vm;
	fb_rp                          *rps = NULL;
	size_t                          n   = 0;
	fb_err                          err = {0};
	uint32_t                        rv  = FB_RV_OK;
	char                             gen[24];

	if (fb_vm_get(p->db, req->vm, &vm, &err) != FB_RV_OK)
		return fb_pb_fail(call, &err);
	if (strncmp(req->primary_url, "tls+tcp://", 10) != 0 ||
	    strlen(req->primary_url) > FB_WIRE_MAX_URL || req->primary_name[0] == '\0' ||
	    strlen(req->primary_name) > FB_WIRE_MAX_NAME) {
		rv = fb_rpc_fail(call, FB_RV_INVALID_PARAMETER,
		                 "HandOver names no usable new primary (a tls+tcp:// URL and a "
		                 "certificate name)");
		goto out;
	}
	snprintf(gen, sizeof(gen), "%llu", (unsigned long long)req->generation);
	if (vm->peer_name[0] != '\0') {
		const char *parts[] = {
		    "handover",       vm->id,           gen, req->force ? "force" : "",
		    req->primary_url, req->primary_name};

		if ((rv = step_proof(p, call, req->proof, parts, 6, vm->peer_name, "HandOver",
		                     vm->name)) != FB_RV_OK)
			goto out;
	}
	if (!primary_vm_active(vm) && vm->generation == req->generation) {
		/* already handed over at this generation: a retry */
	} else if ((rv = guard(call, vm, req->generation, primary_vm_active(vm), req->force,
	                       "handing over")) != FB_RV_OK) {
		goto out;
	} else {
		int was_active = primary_vm_active(vm);

		vm->mode       = FAILBACK__REPLICATION_MODE__RM_RECOVERY;
		vm->generation = req->generation;
		if ((rv = fb_vm_put(p->db, vm, &err)) != FB_RV_OK) {
			rv = fb_pb_fail(call, &err);
			goto out;
		}
		if (was_active)
			fb_log_info("FB4023",
			            "VM %s (%s) handed over at generation %llu: this primary takes no "
			            "more points of it and serves it to no replica",
			            vm->name, vm->id, (unsigned long long)vm->generation);
	}
	if ((rv = fb_rp_list(p->db, vm->id, &rps, &n, &err)) != FB_RV_OK) {
		rv = fb_pb_fail(call, &err);
		goto out;
	}
	if (n > FB_WIRE_MAX_POINTS) { /* the newest ones: the shared history that matters */
		memmove(rps, rps + (n - FB_WIRE_MAX_POINTS), FB_WIRE_MAX_POINTS * sizeof(*rps));
		n = FB_WIRE_MAX_POINTS;
	}
	rsp->vm       = fb_pb_vm(call, vm);
	rsp->points   = fb_pb_rps(call, rps, n);
	rsp->n_points = n;
	if (rsp->vm == NULL || rsp->points == NULL) {
		rv = fb_rpc_fail(call, FB_RV_OUT_OF_MEMORY, "out of memory");
		goto out;
	}
	rv = hand_over_receipt(p, call, rsp, gen, req);
out:
	free(rps);
	free(vm);
	return rv;
}

const fb_rpc_method primary_relationship_methods[] = {
    {"AdoptPrimary", adopt_primary, FB_ROLE_AGENT},
    {"AdoptRecovery", NULL, FB_ROLE_AGENT}, /* a replica agent's step */
    {"HandOver", hand_over, FB_ROLE_AGENT},
};
const size_t primary_relationship_nmethods =
    sizeof(primary_relationship_methods) / sizeof(primary_relationship_methods[0]);
