/*
 * relationship.c - the replica's side of ReverseReplicationRelationship
 * (RelationshipService, agents' listener only; DESIGN §2a): asked by the
 * other site's replica agent once this host's primary agent has handed
 * the VM over.
 *
 *   AdoptRecovery  this agent becomes the receiving side of the reversed
 *                  relationship: the VM's disks here (the ones this
 *                  host's primary agent served; nothing is copied) are its
 *                  recovery disks, its points are the shared history, and
 *                  it pulls from the primary the request names. The VM
 *                  waits to start resynchronization (9), from which
 *                  InitiateFailback or Replicate is accepted.
 *
 * Only with the receipt this host's primary agent signed when it handed
 * the VM over (its certificate must name --local-primary-name), for this
 * VM, generation, disks and new primary: so no agent can make this one
 * take a file of its host as a VM's disk, or pull from elsewhere.
 *
 * Durable before the reply and idempotent; a request of an older
 * generation than the one recorded here is refused (Invalid state) unless
 * forced, which is logged.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "failback/log.h"
#include "failback/pb.h"
#include "relationship.pb-c.h"
#include "replica.h"
#include "wire_limits.h"

static uint32_t
adopt_check(const Failback__Relationship *req, fb_vm *vm, fb_err *err)
{
	if (!fb_id_valid(req->vm_id) || !fb_vm_name_valid(req->vm_name) ||
	    req->recovery_history > FB_MAX_HISTORY)
		return fb_err_set(err, FB_RV_INVALID_PARAMETER, "not a usable VM identity");
	if (strncmp(req->primary_url, "tls+tcp://", 10) != 0 ||
	    strlen(req->primary_url) > FB_WIRE_MAX_URL || req->primary_name[0] == '\0' ||
	    strlen(req->primary_name) > FB_WIRE_MAX_NAME)
		return fb_err_set(err, FB_RV_INVALID_PARAMETER,
		                  "the relationship names no usable primary (a tls+tcp:// URL and a "
		                  "certificate name)");
	return fb_pb_adopt_disks(req->disks, req->n_disks, vm->disks, &vm->ndisks, err);
}

static uint32_t
receipt_check(const replica *r, const Failback__Relationship *req, fb_err *err)
{
	char        gen[24], digest[65], st[FB_PROOF_STATEMENT_MAX];
	const char *parts[] = {"handed-over",    req->vm_id,        gen,
	                       req->primary_url, req->primary_name, digest};
	uint32_t    rv;

	snprintf(gen, sizeof(gen), "%llu", (unsigned long long)req->generation);
	fb_pb_disks_digest(req->disks, req->n_disks, digest);
	if ((rv = fb_proof_statement(st, sizeof(st), parts, 6, err)) != FB_RV_OK)
		return rv;
	if ((rv = fb_pb_proof_check(req->receipt, r->set->ca_agents, NULL, st,
	                            r->rset->local_primary_name, 0, err)) != FB_RV_OK) {
		char why[FB_ERR_MSG_MAX];

		snprintf(why, sizeof(why), "%s", err->msg);
		fb_log_warn("FB4012",
		            "refused AdoptRecovery of VM %.64s: no receipt of this host's "
		            "primary agent (%s) for it: %s",
		            req->vm_id, r->rset->local_primary_name, why);
		return fb_err_set(
		    err, FB_RV_ACCESS_DENIED,
		    "AdoptRecovery of VM %.64s needs the receipt of this host's primary "
		    "agent (%s) for the HandOver: %s",
		    req->vm_id, r->rset->local_primary_name, why);
	}
	return FB_RV_OK;
}

static uint32_t
adopt_recovery(void *arg, fb_rpc_call *call, const ProtobufCMessage *in, ProtobufCMessage *out)
{
	replica                         *r    = arg;
	const Failback__Relationship    *req  = (const void *)in;
	Failback__AdoptRecoveryResponse *rsp  = (void *)out;
	fb_vm                           *old  = NULL, *vm;
	fb_rp                           *hist = NULL;
	fb_err                           err  = {0};
	uint32_t                         rv   = FB_RV_OK;

	if ((vm = calloc(1, sizeof(*vm))) == NULL)
		return fb_rpc_fail(call, FB_RV_OUT_OF_MEMORY, "out of memory");
	if (receipt_check(r, req, &err) != FB_RV_OK || adopt_check(req, vm, &err) != FB_RV_OK ||
	    fb_pb_to_rps(req->history, req->n_history, "the relationship", &hist, &err) !=
	        FB_RV_OK) {
		rv = fb_pb_fail(call, &err);
		goto out;
	}
	for (size_t i = 0; i < req->n_history; i++)
		if (strcasecmp(hist[i].vm_id, req->vm_id) != 0) {
			rv = fb_rpc_fail(call, FB_RV_INVALID_PARAMETER,
			                 "history point %s belongs to another VM", hist[i].id);
			goto out;
		}
	if (jobs_vm_busy(req->vm_id)) {
		rv = fb_rpc_fail(call, FB_RV_SYSTEM_IN_USE, "VM %s has a running job here",
		                 req->vm_name);
		goto out;
	}
	vm->recovery_history = FB_MAX_HISTORY;
	if (fb_vm_get(r->db, req->vm_id, &old, &err) == FB_RV_OK) {
		int retry = old->mode == FAILBACK__REPLICATION_MODE__RM_RECOVERY &&
		            old->generation == req->generation &&
		            strcmp(old->peer_url, req->primary_url) == 0;

		if (!retry && req->generation <= old->generation) {
			if (!req->force) {
				rv = fb_rpc_fail(call, FB_RV_INVALID_STATE,
				                 "taking VM %s as the receiving side at generation %llu "
				                 "refused: this replica holds it at generation %llu",
				                 old->name, (unsigned long long)req->generation,
				                 (unsigned long long)old->generation);
				goto out;
			}
			fb_log_warn("FB5041",
			            "VM %s taken as the receiving side at generation %llu, forced past "
			            "generation %llu recorded here",
			            old->name, (unsigned long long)req->generation,
			            (unsigned long long)old->generation);
		}
		if (retry && old->state != FAILBACK__REPLICATION_STATE__RS_WAITING_TO_START_RESYNCHRONIZATION) {
			/* already moved on (a failback started from it): nothing to redo */
			if ((rsp->vm = fb_pb_vm(call, old)) == NULL)
				rv = fb_rpc_fail(call, FB_RV_OUT_OF_MEMORY, "out of memory");
			goto out;
		}
		vm->recovery_history = old->recovery_history;
		memcpy(vm->failover_rp, old->failover_rp, sizeof(vm->failover_rp));
	}
	snprintf(vm->id, sizeof(vm->id), "%s", req->vm_id);
	snprintf(vm->name, sizeof(vm->name), "%s", req->vm_name);
	vm->state      = FAILBACK__REPLICATION_STATE__RS_WAITING_TO_START_RESYNCHRONIZATION;
	vm->mode       = FAILBACK__REPLICATION_MODE__RM_RECOVERY;
	vm->health     = FAILBACK__REPLICATION_HEALTH__RH_OK;
	vm->generation = req->generation;
	snprintf(vm->peer_url, sizeof(vm->peer_url), "%s", req->primary_url);
	snprintf(vm->peer_name, sizeof(vm->peer_name), "%s", req->primary_name);
	vm->pending_peer[0] = '\0';
	if (fb_vm_put(r->db, vm, &err) != FB_RV_OK ||
	    fb_rp_import(r->db, vm->id, hist, req->n_history, &err) != FB_RV_OK) {
		rv = fb_pb_fail(call, &err);
		goto out;
	}
	fb_log_info("FB5040",
	            "VM %s (%s) is held here as the receiving side at generation %llu: %zu disk(s) "
	            "in place, %zu point(s) of shared history, pulling from %s",
	            vm->name, vm->id, (unsigned long long)vm->generation, vm->ndisks,
	            req->n_history, vm->peer_url);
	if ((rsp->vm = fb_pb_vm(call, vm)) == NULL)
		rv = fb_rpc_fail(call, FB_RV_OUT_OF_MEMORY, "out of memory");
out:
	free(hist);
	free(old);
	free(vm);
	return rv;
}

const fb_rpc_method replica_relationship_methods[] = {
    {"AdoptPrimary", NULL, FB_ROLE_AGENT}, /* a primary agent's step */
    {"AdoptRecovery", adopt_recovery, FB_ROLE_AGENT},
    {"HandOver", NULL, FB_ROLE_AGENT},
};
const size_t replica_relationship_nmethods =
    sizeof(replica_relationship_methods) / sizeof(replica_relationship_methods[0]);
