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

extern const fb_rpc_method primary_control_methods[];
extern const size_t        primary_control_nmethods;
extern const fb_rpc_method primary_resync_methods[];
extern const size_t        primary_resync_nmethods;

#endif
