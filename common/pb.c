/*
 * pb.c - registry records to protobuf messages (see pb.h). A NULL return
 * means the arena ran out of memory; callers answer Out of memory.
 */
#include <string.h>

#include "failback/pb.h"

Failback__VirtualSystem *
fb_pb_vm(fb_rpc_call *call, const fb_vm *vm)
{
	Failback__VirtualSystem *m = fb_rpc_alloc(call, sizeof(*m));

	if (m == NULL)
		return NULL;
	failback__virtual_system__init(m);
	m->id                 = fb_rpc_strdup(call, vm->id);
	m->name               = fb_rpc_strdup(call, vm->name);
	m->replication_state  = (Failback__ReplicationState)vm->state;
	m->replication_mode   = (Failback__ReplicationMode)vm->mode;
	m->replication_health = (Failback__ReplicationHealth)vm->health;
	m->recovery_history   = vm->recovery_history;
	m->n_disks            = vm->ndisks;
	m->disks              = fb_rpc_alloc(call, vm->ndisks * sizeof(*m->disks));
	if (m->id == NULL || m->name == NULL || m->disks == NULL)
		return NULL;
	for (size_t i = 0; i < vm->ndisks; i++) {
		Failback__Disk *d = fb_rpc_alloc(call, sizeof(*d));

		if (d == NULL)
			return NULL;
		failback__disk__init(d);
		d->name       = fb_rpc_strdup(call, vm->disks[i].name);
		d->path       = fb_rpc_strdup(call, vm->disks[i].path);
		d->size_bytes = vm->disks[i].size;
		if (d->name == NULL || d->path == NULL)
			return NULL;
		m->disks[i] = d;
	}
	return m;
}

Failback__RecoveryPoint *
fb_pb_rp(fb_rpc_call *call, const fb_rp *rp)
{
	Failback__RecoveryPoint *m = fb_rpc_alloc(call, sizeof(*m));

	if (m == NULL)
		return NULL;
	failback__recovery_point__init(m);
	m->id             = fb_rpc_strdup(call, rp->id);
	m->vm_id          = fb_rpc_strdup(call, rp->vm_id);
	m->time_unix_ms   = rp->time_ms;
	m->type           = (Failback__RecoveryPointType)rp->type;
	m->hash_algorithm = fb_rpc_strdup(call, rp->algorithm);
	m->n_disks        = rp->ndisks;
	m->disks          = fb_rpc_alloc(call, rp->ndisks * sizeof(*m->disks));
	if (m->id == NULL || m->vm_id == NULL || m->hash_algorithm == NULL || m->disks == NULL)
		return NULL;
	for (size_t i = 0; i < rp->ndisks; i++) {
		Failback__DiskManifest *d = fb_rpc_alloc(call, sizeof(*d));
		uint8_t                *root = fb_rpc_alloc(call, FB_HASH_LEN);

		if (d == NULL || root == NULL)
			return NULL;
		failback__disk_manifest__init(d);
		memcpy(root, rp->disks[i].root.b, FB_HASH_LEN);
		d->name        = fb_rpc_strdup(call, rp->disks[i].name);
		d->size_bytes  = rp->disks[i].size;
		d->block_size  = rp->disks[i].block_size;
		d->block_count = rp->disks[i].nblocks;
		d->root.data   = root;
		d->root.len    = FB_HASH_LEN;
		if (d->name == NULL)
			return NULL;
		m->disks[i] = d;
	}
	return m;
}

uint32_t
fb_pb_fail(fb_rpc_call *call, const fb_err *err)
{
	return fb_rpc_fail(call, err->rv, "%s", err->msg);
}

Failback__VirtualSystem **
fb_pb_vms(fb_rpc_call *call, const fb_vm *vms, size_t n)
{
	Failback__VirtualSystem **out = fb_rpc_alloc(call, n * sizeof(*out) + 1);

	for (size_t i = 0; out != NULL && i < n; i++)
		if ((out[i] = fb_pb_vm(call, &vms[i])) == NULL)
			out = NULL;
	if (out == NULL)
		fb_rpc_fail(call, FB_RV_OUT_OF_MEMORY, "out of memory building the reply");
	return out;
}

Failback__RecoveryPoint **
fb_pb_rps(fb_rpc_call *call, const fb_rp *rps, size_t n)
{
	Failback__RecoveryPoint **out = fb_rpc_alloc(call, n * sizeof(*out) + 1);

	for (size_t i = 0; out != NULL && i < n; i++)
		if ((out[i] = fb_pb_rp(call, &rps[i])) == NULL)
			out = NULL;
	if (out == NULL)
		fb_rpc_fail(call, FB_RV_OUT_OF_MEMORY, "out of memory building the reply");
	return out;
}
