/*
 * primary.h - the primary agent's state, shared by its service files.
 */
#ifndef FAILBACK_PRIMARY_H
#define FAILBACK_PRIMARY_H

#include "failback/agent.h"
#include "failback/db.h"
#include "failback/store.h"

typedef struct primary {
	fb_agent *agent;
	fb_db    *db;    /* DATA_DIR/state.db */
	fb_store *store; /* DATA_DIR/blocks */
} primary;

/* primary_vm_active: this agent is the VM's primary (not handed over). */
struct fb_vm;
int primary_vm_active(const struct fb_vm *vm);

/* primary_resync_init: points being served are kept by pruning (resync.c). */
void primary_resync_init(void);

extern const fb_rpc_method primary_relationship_methods[];
extern const size_t        primary_relationship_nmethods;
extern const fb_rpc_method primary_control_methods[];
extern const size_t        primary_control_nmethods;
extern const fb_rpc_method primary_resync_methods[];
extern const size_t        primary_resync_nmethods;

#endif
