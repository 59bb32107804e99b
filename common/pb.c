/*
 * pb.c - registry records to protobuf messages (see pb.h). A NULL return
 * means the arena ran out of memory; callers answer Out of memory.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mbedtls/sha256.h>
#include <zstd.h>

#include "failback/clock.h"
#include "failback/image.h"
#include "failback/pb.h"
#include "failback/proof.h"
#include "failback/tracker.h"
#include "wire_limits.h"

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
	m->generation         = vm->generation;
	m->peer_url           = fb_rpc_strdup(call, vm->peer_url);
	m->peer_name          = fb_rpc_strdup(call, vm->peer_name);
	m->pending_peer       = fb_rpc_strdup(call, vm->pending_peer);
	m->peer_pin           = fb_rpc_strdup(call, vm->peer_pin);
	m->cim_path           = fb_rpc_alloc(call, FB_VM_CIM_PATH_MAX);
	if (m->peer_url == NULL || m->peer_name == NULL || m->pending_peer == NULL ||
	    m->peer_pin == NULL || m->cim_path == NULL)
		return NULL;
	fb_vm_cim_path(vm->id, m->cim_path, FB_VM_CIM_PATH_MAX);
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
		d->format     = fb_rpc_strdup(call, vm->disks[i].format[0] ? vm->disks[i].format : "raw");
		if (d->name == NULL || d->path == NULL || d->format == NULL)
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
	m->history        = !rp->held;
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
fb_pb_tracked_paths(fb_rpc_call *call, Failback__VirtualSystem *vm)
{
	for (size_t i = 0; vm != NULL && i < vm->n_disks; i++) {
		char wrapper[4400];

		tracker_wrapper(vm->disks[i]->path, wrapper, sizeof(wrapper));
		if (access(wrapper, F_OK) == 0 &&
		    (vm->disks[i]->tracked_path = fb_rpc_strdup(call, wrapper)) == NULL)
			return FB_RV_OUT_OF_MEMORY;
	}
	return FB_RV_OK;
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

uint32_t
fb_pb_check_rp(const Failback__RecoveryPoint *m, const char *who, fb_err *err)
{
	if (m == NULL || m->n_disks == 0)
		return fb_err_set(err, FB_RV_FAILED, "%s named no recovery point", who);
	if (m->n_disks > FB_WIRE_MAX_DISKS)
		return fb_err_set(err, FB_RV_FAILED, "%s's manifest lists %zu disks; at most %d are allowed",
		                  who, m->n_disks, FB_WIRE_MAX_DISKS);
	if (!fb_id_valid(m->id) || !fb_id_valid(m->vm_id) || strlen(m->hash_algorithm) >= 16)
		return fb_err_set(err, FB_RV_FAILED, "%s's manifest is not usable", who);
	for (size_t i = 0; i < m->n_disks; i++) {
		const Failback__DiskManifest *d = m->disks[i];

		if (!fb_name_valid(d->name) || d->root.len != FB_HASH_LEN ||
		    d->block_size != FB_BLOCK_SIZE)
			return fb_err_set(err, FB_RV_FAILED, "%s's manifest is not usable", who);
		if (d->size_bytes == 0 || d->size_bytes > FB_WIRE_MAX_DISK_BYTES)
			return fb_err_set(err, FB_RV_FAILED, "%s's manifest gives disk %s a size of %llu bytes",
			                  who, d->name, (unsigned long long)d->size_bytes);
		if (d->block_count != (d->size_bytes + FB_BLOCK_SIZE - 1) / FB_BLOCK_SIZE)
			return fb_err_set(err, FB_RV_FAILED,
			                  "%s's manifest gives disk %s %llu blocks for %llu bytes", who,
			                  d->name, (unsigned long long)d->block_count,
			                  (unsigned long long)d->size_bytes);
		for (size_t k = 0; k < i; k++)
			if (strcmp(m->disks[k]->name, d->name) == 0)
				return fb_err_set(err, FB_RV_FAILED, "%s's manifest lists disk %s twice", who,
				                  d->name);
	}
	return FB_RV_OK;
}

uint32_t
fb_pb_to_rp(const Failback__RecoveryPoint *m, const char *who, fb_rp *rp, fb_err *err)
{
	uint32_t rv;

	if ((rv = fb_pb_check_rp(m, who, err)) != FB_RV_OK)
		return rv;
	memset(rp, 0, sizeof(*rp));
	snprintf(rp->id, sizeof(rp->id), "%s", m->id);
	snprintf(rp->vm_id, sizeof(rp->vm_id), "%s", m->vm_id);
	snprintf(rp->algorithm, sizeof(rp->algorithm), "%s", m->hash_algorithm);
	rp->time_ms = m->time_unix_ms;
	rp->type    = (int)m->type;
	rp->held    = !m->history;
	rp->ndisks  = m->n_disks;
	for (size_t i = 0; i < m->n_disks; i++) {
		const Failback__DiskManifest *d = m->disks[i];

		snprintf(rp->disks[i].name, sizeof(rp->disks[i].name), "%s", d->name);
		rp->disks[i].size       = d->size_bytes;
		rp->disks[i].block_size = d->block_size;
		rp->disks[i].nblocks    = d->block_count;
		memcpy(rp->disks[i].root.b, d->root.data, FB_HASH_LEN);
	}
	return FB_RV_OK;
}

uint32_t
fb_pb_to_rps(Failback__RecoveryPoint *const *m, size_t n, const char *who, fb_rp **out,
             fb_err *err)
{
	uint32_t rv;

	*out = NULL;
	if (n > FB_WIRE_MAX_POINTS)
		return fb_err_set(err, FB_RV_INVALID_PARAMETER,
		                  "%s lists %zu recovery points; at most %d are allowed", who, n,
		                  FB_WIRE_MAX_POINTS);
	if ((*out = calloc(n + 1, sizeof(**out))) == NULL)
		return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
	for (size_t i = 0; i < n; i++)
		if ((rv = fb_pb_to_rp(m[i], who, &(*out)[i], err)) != FB_RV_OK) {
			free(*out);
			*out = NULL;
			return rv;
		}
	return FB_RV_OK;
}

uint32_t
fb_pb_to_disks(Failback__Disk *const *m, size_t n, const char *who, fb_vm_disk *disks,
               fb_err *err)
{
	if (n == 0 || n > FB_MAX_DISKS)
		return fb_err_set(err, FB_RV_INVALID_PARAMETER, "%s lists %zu disks; a VM has 1 to %d",
		                  who, n, FB_MAX_DISKS);
	for (size_t i = 0; i < n; i++) {
		if (!fb_name_valid(m[i]->name) || m[i]->path[0] != '/' ||
		    strlen(m[i]->path) >= sizeof(disks[i].path) || m[i]->size_bytes == 0 ||
		    m[i]->size_bytes > FB_WIRE_MAX_DISK_BYTES)
			return fb_err_set(err, FB_RV_INVALID_PARAMETER, "%s lists a disk that is not usable",
			                  who);
		for (size_t k = 0; k < i; k++)
			if (strcmp(m[k]->name, m[i]->name) == 0)
				return fb_err_set(err, FB_RV_INVALID_PARAMETER, "%s lists disk %s twice", who,
				                  m[i]->name);
		if (m[i]->format[0] != '\0' && !fb_image_format_ok(m[i]->format))
			return fb_err_set(err, FB_RV_INVALID_PARAMETER,
			                  "%s lists disk %s in a format that is not raw, qcow2, vhdx, "
			                  "vmdk or vpc",
			                  who, m[i]->name);
		snprintf(disks[i].name, sizeof(disks[i].name), "%s", m[i]->name);
		snprintf(disks[i].path, sizeof(disks[i].path), "%s", m[i]->path);
		snprintf(disks[i].format, sizeof(disks[i].format), "%s",
		         m[i]->format[0] != '\0' ? m[i]->format : "raw");
		disks[i].size = m[i]->size_bytes;
	}
	return FB_RV_OK;
}

uint32_t
fb_pb_adopt_disks(Failback__Disk *const *m, size_t n, fb_vm_disk *disks, size_t *ndisks,
                  fb_err *err)
{
	fb_vm_disk want[FB_MAX_DISKS];
	uint32_t   rv;

	if ((rv = fb_pb_to_disks(m, n, "the relationship", want, err)) != FB_RV_OK)
		return rv;
	for (size_t i = 0; i < n; i++) {
		if ((rv = fb_vm_check_disk_as(want[i].path, want[i].format, &disks[i], err)) !=
		    FB_RV_OK)
			return rv;
		if (disks[i].size != want[i].size || strcmp(disks[i].name, want[i].name) != 0)
			return fb_err_set(err, FB_RV_INVALID_PARAMETER,
			                  "disk %s is %llu bytes at %s (%s), not the %llu of the "
			                  "relationship",
			                  want[i].name, (unsigned long long)disks[i].size, disks[i].path,
			                  disks[i].format, (unsigned long long)want[i].size);
	}
	*ndisks = n;
	return FB_RV_OK;
}

uint32_t
fb_pb_block_accept(const Failback__BlockData *bd, uint64_t index, const fb_hash *want,
                   uint8_t *dst, ZSTD_DCtx *dctx, fb_err *err)
{
	fb_hash h;

	memset(dst, 0, FB_BLOCK_SIZE);
	if (bd->index != index)
		return fb_err_set(err, FB_RV_FAILED, "was answered with block %llu",
		                  (unsigned long long)bd->index);
	if (bd->compressed) {
		size_t d = ZSTD_decompressDCtx(dctx, dst, FB_BLOCK_SIZE, bd->data.data, bd->data.len);

		if (ZSTD_isError(d))
			return fb_err_set(err, FB_RV_FAILED,
			                  "failed verification: the primary sent data that does not "
			                  "decompress");
	} else if (!bd->zero) {
		if (bd->data.len > FB_BLOCK_SIZE)
			return fb_err_set(err, FB_RV_FAILED, "came as %zu bytes", bd->data.len);
		if (bd->data.len > 0) /* empty data may come as NULL */
			memcpy(dst, bd->data.data, bd->data.len);
	}
	fb_hash_block(dst, FB_BLOCK_SIZE, FB_BLOCK_SIZE, &h);
	if (memcmp(&h, want, sizeof(h)) != 0)
		return fb_err_set(err, FB_RV_FAILED,
		                  "failed verification: the primary sent data that does not match "
		                  "its leaf hash");
	return FB_RV_OK;
}

/* --- relationship steps: signed statements (proof.h) --- */

uint32_t
fb_pb_proof_sign(const char *cert_file, const char *key_file, const char *statement,
                 const char *receiver_name, fb_proof *p, Failback__AgentProof *m, fb_err *err)
{
	uint32_t rv;

	failback__agent_proof__init(m);
	if ((rv = fb_proof_sign(cert_file, key_file, statement, receiver_name,
	                        (uint64_t)fb_clock_unix_ms(), p, err)) != FB_RV_OK)
		return rv;
	m->certificate   = (ProtobufCBinaryData){p->cert_len, p->cert};
	m->receiver_name = (char *)receiver_name;
	m->time_unix_ms  = p->time_ms;
	m->nonce         = (ProtobufCBinaryData){sizeof(p->nonce), p->nonce};
	m->signature     = (ProtobufCBinaryData){p->sig_len, p->sig};
	return FB_RV_OK;
}

uint32_t
fb_pb_proof_check(const Failback__AgentProof *m, const char *ca_file, const char *own_cert,
                  const char *statement, const char *want_name, int fresh, fb_err *err)
{
	uint64_t now = (uint64_t)fb_clock_unix_ms();

	if (m == NULL || m->certificate.len == 0)
		return fb_err_set(err, FB_RV_ACCESS_DENIED,
		                  "the request carries no proof of identity");
	if (own_cert != NULL && !fb_proof_cert_names(own_cert, m->receiver_name))
		return fb_err_set(err, FB_RV_ACCESS_DENIED,
		                  "the proof was made for another agent (%.80s)", m->receiver_name);
	if (m->time_unix_ms + FB_PROOF_WINDOW_MS < now ||
	    m->time_unix_ms > now + FB_PROOF_WINDOW_MS)
		return fb_err_set(
		    err, FB_RV_ACCESS_DENIED,
		    "the proof is dated %lld s from this agent's clock (more than %u s "
		    "apart: are both clocks synchronised?)",
		    (long long)((int64_t)(m->time_unix_ms - now) / 1000),
		    FB_PROOF_WINDOW_MS / 1000);
	if (fb_proof_verify(ca_file, m->certificate.data, m->certificate.len, statement,
	                    m->receiver_name, m->time_unix_ms, m->nonce.data, m->nonce.len,
	                    m->signature.data, m->signature.len, want_name, err) != FB_RV_OK)
		return FB_RV_ACCESS_DENIED;
	if (fresh && !fb_proof_nonce_fresh(m->nonce.data, now))
		return fb_err_set(err, FB_RV_ACCESS_DENIED, "the proof was used before (a replay)");
	return FB_RV_OK;
}

void
fb_pb_disks_digest(Failback__Disk *const *d, size_t n, char hex[65])
{
	static const char      x[] = "0123456789abcdef";
	mbedtls_sha256_context c;
	unsigned char          md[32];

	mbedtls_sha256_init(&c);
	(void)mbedtls_sha256_starts_ret(&c, 0);
	for (size_t i = 0; i < n; i++) {
		char size[24];

		snprintf(size, sizeof(size), "%llu", (unsigned long long)d[i]->size_bytes);
		(void)mbedtls_sha256_update_ret(&c, (const unsigned char *)d[i]->name,
		                                strlen(d[i]->name) + 1);
		(void)mbedtls_sha256_update_ret(&c, (const unsigned char *)d[i]->path,
		                                strlen(d[i]->path) + 1);
		(void)mbedtls_sha256_update_ret(&c, (const unsigned char *)size, strlen(size) + 1);
		/* a raw disk's digest is the one agents before formats made */
		if (d[i]->format[0] != '\0' && strcmp(d[i]->format, "raw") != 0)
			(void)mbedtls_sha256_update_ret(&c, (const unsigned char *)d[i]->format,
			                                strlen(d[i]->format) + 1);
	}
	(void)mbedtls_sha256_finish_ret(&c, md);
	mbedtls_sha256_free(&c);
	for (int i = 0; i < 32; i++) {
		hex[2 * i]     = x[md[i] >> 4];
		hex[2 * i + 1] = x[md[i] & 15];
	}
	hex[64] = '\0';
}
