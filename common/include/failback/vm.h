/*
 * vm.h - the registry of virtual systems in the agent database: identity,
 * replication state and mode (Hyper-V's numbers), RecoveryHistory and the
 * disks. Disk images are adopted in place: the registry records the path
 * of each raw image and never copies or moves it.
 */
#ifndef FAILBACK_VM_H
#define FAILBACK_VM_H

#include <stddef.h>
#include <stdint.h>

#include "failback/db.h"
#include "failback/id.h"

#define FB_MAX_DISKS   16
#define FB_MAX_HISTORY 24
#define FB_URL_MAX     512

typedef struct fb_vm_disk {
	char     name[FB_NAME_MAX + 1]; /* the image's file name */
	char     path[4096];
	uint64_t size;      /* the virtual size */
	char     format[8]; /* raw (or "" : raw), qcow2, vhdx, vmdk, vpc (image.h) */
} fb_vm_disk;

typedef struct fb_vm {
	char       id[FB_ID_LEN + 1];
	char       name[FB_VM_NAME_MAX + 1];
	int        state;  /* ReplicationState */
	int        mode;   /* ReplicationMode */
	int        health; /* ReplicationHealth */
	uint32_t   recovery_history;
	char       failover_rp[FB_ID_LEN + 1]; /* replica: the point failed over to */
	/* The relationship (DESIGN §2a). generation is advanced by every
	 * reverse; peer is the other side's agent (replica: the primary it
	 * pulls from, "" = the agent's default; primary: the replica agent that
	 * receives the VM, once a reverse named it);
	 * pending_peer is the other site's replica agent while a reverse still
	 * has that site's side to do. */
	uint64_t   generation;
	char       peer_url[FB_URL_MAX];
	char       peer_name[256];
	char       pending_peer[FB_URL_MAX];
	char       peer_pin[129]; /* replica: the primary's certificate thumbprint, "" = none */
	size_t     ndisks;
	fb_vm_disk disks[FB_MAX_DISKS];
} fb_vm;

/* fb_vm_add registers a VM named name with the raw images at paths
 * (absolute, regular, readable, non-empty, distinct file names). Invalid
 * parameter for a bad name or path, File not found for a missing image.
 * On success *out (may be NULL) receives a copy; free with free(). */
uint32_t fb_vm_add(fb_db *db, const char *name, const char *const *paths, size_t npaths,
                   uint32_t history, int mode, int state, fb_vm **out, fb_err *err);
/* fb_vm_add_served is fb_vm_add for a primary VM whose tree and blocks are
 * served only to the replica agent whose certificate names peer_name
 * ("" = any agent), with images in format (NULL or "" = raw; otherwise
 * every disk must be an image of that format, read through qemu-nbd). */
uint32_t fb_vm_add_served(fb_db *db, const char *name, const char *const *paths, size_t npaths,
                          uint32_t history, int mode, int state, const char *peer_name,
                          const char *format, fb_vm **out, fb_err *err);

/* fb_vm_add_replica registers, on a replica, the VM id/name of the primary
 * with its disks (names and sizes) at <vm_dir>/<disk name>. No file is
 * touched: the disks are made by a failover. */
uint32_t fb_vm_add_replica(fb_db *db, const char *id, const char *name, const fb_vm_disk *disks,
                           size_t ndisks, const char *vm_dir, uint32_t history, fb_err *err);

/* fb_vm_check_disk checks an image for use in place (absolute, canonical
 * path without symlinks, regular, non-empty, a valid file name) and fills
 * d with its name, canonical path and size. */
uint32_t fb_vm_check_disk(const char *path, fb_vm_disk *d, fb_err *err);
/* fb_vm_check_disk_as is fb_vm_check_disk for an image in format (NULL or
 * "" = raw): the size is the disk's as the image presents it. */
uint32_t fb_vm_check_disk_as(const char *path, const char *format, fb_vm_disk *d, fb_err *err);

/* fb_vm_put records vm under its id exactly as given (identity, state,
 * mode, health, history, relationship and disks), inserting it or
 * replacing the row and its disks, in one transaction. Invalid parameter
 * when another VM has its name. Callers validate the disks first. */
uint32_t fb_vm_put(fb_db *db, const fb_vm *vm, fb_err *err);

/* fb_vm_set_relationship records a VM's generation, peer (its URL, the
 * name in its certificate and the thumbprint pinned, "" = none) and
 * pending reverse in one statement. */
uint32_t fb_vm_set_relationship(fb_db *db, const char *id, uint64_t generation,
                                const char *peer_url, const char *peer_name,
                                const char *peer_pin, const char *pending_peer, fb_err *err);

/* fb_vm_set_state records a VM's ReplicationState (and health). */
uint32_t fb_vm_set_state(fb_db *db, const char *id, int state, int health, fb_err *err);

/* fb_vm_set_failover_rp records the point a failover materialised ("" none). */
uint32_t fb_vm_set_failover_rp(fb_db *db, const char *id, const char *rp, fb_err *err);

/* fb_vm_get finds a VM by GUID or name. File not found if there is none. */
uint32_t fb_vm_get(fb_db *db, const char *ref, fb_vm **out, fb_err *err);

/* fb_vm_list returns every VM, by name (free the array with fb_vm_list_free). */
uint32_t fb_vm_list(fb_db *db, fb_vm **out, size_t *n, fb_err *err);
void     fb_vm_list_free(fb_vm *vms);

#endif
