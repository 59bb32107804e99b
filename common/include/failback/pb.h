/*
 * pb.h - turning registry records into the protobuf messages of the
 * control services. Everything is allocated from the call's arena, so a
 * handler never frees what it returns.
 */
#ifndef FAILBACK_PB_H
#define FAILBACK_PB_H

#include "failback/rp.h"
#include "failback/rpc.h"
#include "failback/vm.h"
#include "types.pb-c.h"

Failback__VirtualSystem *fb_pb_vm(fb_rpc_call *call, const fb_vm *vm);
Failback__RecoveryPoint *fb_pb_rp(fb_rpc_call *call, const fb_rp *rp);

/* fb_pb_vms / fb_pb_rps convert arrays for the List* replies; NULL (with
 * the call failed as Out of memory) when the arena runs out. An empty list
 * gives a valid, empty array. */
Failback__VirtualSystem **fb_pb_vms(fb_rpc_call *call, const fb_vm *vms, size_t n);
Failback__RecoveryPoint **fb_pb_rps(fb_rpc_call *call, const fb_rp *rps, size_t n);

/* fb_pb_fail relays err as the call's failure and returns its code. */
uint32_t fb_pb_fail(fb_rpc_call *call, const fb_err *err);

#endif
