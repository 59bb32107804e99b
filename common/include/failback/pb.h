/*
 * pb.h - turning registry records into the protobuf messages of the
 * control services. Everything is allocated from the call's arena, so a
 * handler never frees what it returns.
 */
#ifndef FAILBACK_PB_H
#define FAILBACK_PB_H

#include "failback/proof.h"
#include "failback/rp.h"
#include "failback/rpc.h"
#include "failback/vm.h"
#include "resync.pb-c.h"
#include "types.pb-c.h"

Failback__VirtualSystem *fb_pb_vm(fb_rpc_call *call, const fb_vm *vm);
Failback__RecoveryPoint *fb_pb_rp(fb_rpc_call *call, const fb_rp *rp);

/* fb_pb_vms / fb_pb_rps convert arrays for the List* replies; NULL (with
 * the call failed as Out of memory) when the arena runs out. An empty list
 * gives a valid, empty array. */
Failback__VirtualSystem **fb_pb_vms(fb_rpc_call *call, const fb_vm *vms, size_t n);
Failback__RecoveryPoint **fb_pb_rps(fb_rpc_call *call, const fb_rp *rps, size_t n);

/* fb_pb_tracked_paths names, for each disk of vm that has a qcow2 wrapper
 * (tracker.h), the wrapper the hypervisor must open (tracked_path). */
uint32_t fb_pb_tracked_paths(fb_rpc_call *call, Failback__VirtualSystem *vm);

/* From the wire (who names the sender in messages). Every count, size,
 * name and hash length is checked before use:
 * fb_pb_check_rp: a manifest (disks within limits, valid names, 64 KiB
 * blocks, block_count = ceil(size / block), no disk twice), Failed if not;
 * fb_pb_to_rp: the same, converted; fb_pb_to_rps: a list of at most
 * FB_WIRE_MAX_POINTS (free *out with free()); fb_pb_to_disks: 1 to
 * FB_MAX_DISKS disks with valid names, absolute paths, sizes and formats
 * ("" is raw). */
uint32_t fb_pb_check_rp(const Failback__RecoveryPoint *m, const char *who, fb_err *err);
uint32_t fb_pb_to_rp(const Failback__RecoveryPoint *m, const char *who, fb_rp *rp, fb_err *err);
uint32_t fb_pb_to_rps(Failback__RecoveryPoint *const *m, size_t n, const char *who, fb_rp **out,
                      fb_err *err);
uint32_t fb_pb_to_disks(Failback__Disk *const *m, size_t n, const char *who, fb_vm_disk *disks,
                        fb_err *err);
/* fb_pb_adopt_disks: the disks a relationship step names, checked for use
 * in place on this host (fb_vm_check_disk_as: each exists in its format,
 * with the name and size the step gives) into disks and *ndisks. */
uint32_t fb_pb_adopt_disks(Failback__Disk *const *m, size_t n, fb_vm_disk *disks, size_t *ndisks,
                           fb_err *err);

/* fb_pb_block_accept takes one block of a ReadBlocks reply into dst
 * (FB_BLOCK_SIZE bytes): it must answer for index, be a zero flag, at most
 * one block of data or zstd that decompresses within one block, and hash to
 * want. Failed otherwise, with a description that follows "block N" (the
 * caller names the VM, disk and block). */
typedef struct ZSTD_DCtx_s ZSTD_DCtx;
uint32_t fb_pb_block_accept(const Failback__BlockData *bd, uint64_t index, const fb_hash *want,
                            uint8_t *dst, ZSTD_DCtx *dctx, fb_err *err);

/* fb_pb_fail relays err as the call's failure and returns its code. */
uint32_t fb_pb_fail(fb_rpc_call *call, const fb_err *err);

/* Relationship steps (docs/PROTOCOL.md). fb_pb_proof_sign signs
 * statement towards receiver_name with the certificate and key files, into
 * p, and points m at it (m lives as long as p). fb_pb_proof_check: m is
 * present, made for an agent own_cert names (unless NULL), dated within the window,
 * signed by an agents-CA (ca_file, and the CRLs) certificate naming
 * want_name; with fresh, its nonce is new. Access Denied with the reason.
 * fb_pb_disks_digest is the hex SHA-256 of the disks' names, paths and
 * sizes, in order, and the format of each disk that is not raw. */
uint32_t fb_pb_proof_sign(const char *cert_file, const char *key_file, const char *statement,
                          const char *receiver_name, fb_proof *p, Failback__AgentProof *m,
                          fb_err *err);
uint32_t fb_pb_proof_check(const Failback__AgentProof *m, const char *ca_file, const char *own_cert,
                           const char *statement, const char *want_name, int fresh, fb_err *err);
void     fb_pb_disks_digest(Failback__Disk *const *d, size_t n, char hex[65]);

#endif
