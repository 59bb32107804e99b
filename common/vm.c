/*
 * vm.c - the VM registry of vm.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "failback/clock.h"
#include "failback/image.h"
#include "failback/vm.h"

uint32_t
fb_vm_check_disk(const char *given, fb_vm_disk *d, fb_err *err)
{
	const char *base;
	struct stat st;
	char        path[PATH_MAX];
	int         fd;

	if (given == NULL || given[0] != '/' || strlen(given) >= sizeof(d->path))
		return fb_err_set(err, FB_RV_INVALID_PARAMETER,
		                  "disk image path must be absolute (got '%.200s')",
		                  given ? given : "");
	/* Record the canonical path: no "..", no symlink that can be re-pointed. */
	if (realpath(given, path) == NULL)
		return fb_err_errno(err, errno, given);
	base = strrchr(path, '/') + 1;
	if (!fb_name_valid(base))
		return fb_err_set(err, FB_RV_INVALID_PARAMETER,
		                  "disk image file name '%.80s' must be 1-64 characters of "
		                  "A-Z a-z 0-9 . _ -",
		                  base);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return fb_err_errno(err, errno, path);
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return fb_err_set(err, FB_RV_INVALID_PARAMETER, "%s: not a regular file", path);
	}
	close(fd);
	if (st.st_size == 0)
		return fb_err_set(err, FB_RV_INVALID_PARAMETER, "%s: empty disk image", path);
	snprintf(d->name, sizeof(d->name), "%s", base);
	snprintf(d->path, sizeof(d->path), "%s", path);
	d->size = (uint64_t)st.st_size;
	return FB_RV_OK;
}

uint32_t
fb_vm_check_disk_as(const char *given, const char *format, fb_vm_disk *d, fb_err *err)
{
	uint32_t rv;

	if (format == NULL || format[0] == '\0')
		format = "raw";
	if (!fb_image_format_ok(format))
		return fb_err_set(err, FB_RV_INVALID_PARAMETER,
		                  "disk format '%.20s' is not raw, qcow2, vhdx, vmdk or vpc", format);
	if ((rv = fb_vm_check_disk(given, d, err)) != FB_RV_OK)
		return rv;
	snprintf(d->format, sizeof(d->format), "%s", format);
	return strcmp(format, "raw") == 0 ? FB_RV_OK : fb_image_probe(d->path, format, &d->size, err);
}

uint32_t
fb_vm_add(fb_db *db, const char *name, const char *const *paths, size_t npaths, uint32_t history,
          int mode, int state, fb_vm **out, fb_err *err)
{
	return fb_vm_add_served(db, name, paths, npaths, history, mode, state, "", NULL, out, err);
}

/* Replaces vm's disk rows (name, path, size, format) with vm->disks. */
static uint32_t
vm_put_disks(fb_db *db, const fb_vm *vm, fb_err *err)
{
	sqlite3_stmt *st;
	uint32_t      rv;
	int           rc;

	if ((rv = fb_db_prepare(db, "DELETE FROM disks WHERE vm_id = ?", &st, err)) != FB_RV_OK)
		return rv;
	sqlite3_bind_text(st, 1, vm->id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return fb_db_err(db, rc, "replace disks", err);
	for (size_t i = 0; i < vm->ndisks; i++) {
		if ((rv = fb_db_prepare(db,
		                        "INSERT INTO disks (vm_id, name, path, size, format) "
		                        "VALUES (?,?,?,?,?)",
		                        &st, err)) != FB_RV_OK)
			return rv;
		sqlite3_bind_text(st, 1, vm->id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, vm->disks[i].name, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, vm->disks[i].path, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, (sqlite3_int64)vm->disks[i].size);
		sqlite3_bind_text(st, 5, vm->disks[i].format[0] ? vm->disks[i].format : "raw", -1,
		                  SQLITE_STATIC);
		rc = sqlite3_step(st);
		sqlite3_finalize(st);
		if (rc != SQLITE_DONE)
			return fb_db_err(db, rc, "add disk", err);
	}
	return FB_RV_OK;
}

uint32_t
fb_vm_add_served(fb_db *db, const char *name, const char *const *paths, size_t npaths,
                 uint32_t history, int mode, int state, const char *peer_name,
                 const char *format, fb_vm **out, fb_err *err)
{
	fb_vm        *vm;
	sqlite3_stmt *st = NULL;
	uint32_t      rv;
	int           rc;

	if (!fb_vm_name_valid(name))
		return fb_err_set(err, FB_RV_INVALID_PARAMETER, FB_VM_NAME_RULE " (got '%.80s')",
		                  name ? name : "");
	if (npaths == 0 || npaths > FB_MAX_DISKS)
		return fb_err_set(err, FB_RV_INVALID_PARAMETER, "a VM has 1 to %d disks",
		                  FB_MAX_DISKS);
	if (history > FB_MAX_HISTORY)
		return fb_err_set(err, FB_RV_INVALID_PARAMETER, "RecoveryHistory is 0 to %d",
		                  FB_MAX_HISTORY);
	if ((vm = calloc(1, sizeof(*vm))) == NULL)
		return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
	for (size_t i = 0; i < npaths; i++) {
		if ((rv = fb_vm_check_disk_as(paths[i], format, &vm->disks[i], err)) != FB_RV_OK)
			goto fail;
		for (size_t j = 0; j < i; j++)
			if (strcmp(vm->disks[i].name, vm->disks[j].name) == 0) {
				rv = fb_err_set(err, FB_RV_INVALID_PARAMETER,
				                "two disks are named '%s'", vm->disks[i].name);
				goto fail;
			}
	}
	vm->ndisks           = npaths;
	vm->recovery_history = history;
	vm->mode             = mode;
	vm->state            = state;
	vm->health           = 1;
	snprintf(vm->name, sizeof(vm->name), "%s", name);
	snprintf(vm->peer_name, sizeof(vm->peer_name), "%s", peer_name);
	if ((rv = fb_id_new(vm->id, err)) != FB_RV_OK)
		goto fail;

	if ((rv = fb_db_begin(db, err)) != FB_RV_OK)
		goto fail;
	if ((rv = fb_db_prepare(db, "SELECT 1 FROM vms WHERE name = ?", &st, err)) != FB_RV_OK)
		goto rollback;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW) {
		rv = fb_err_set(err, FB_RV_INVALID_PARAMETER, "a VM named '%s' already exists", name);
		goto rollback;
	}
	if ((rv = fb_db_prepare(db,
	                        "INSERT INTO vms (id, name, state, mode, health, recovery_history, "
	                        "created_ms, peer_name) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
	                        &st, err)) != FB_RV_OK)
		goto rollback;
	sqlite3_bind_text(st, 1, vm->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, vm->name, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, vm->state);
	sqlite3_bind_int(st, 4, vm->mode);
	sqlite3_bind_int(st, 5, vm->health);
	sqlite3_bind_int(st, 6, (int)history);
	sqlite3_bind_int64(st, 7, fb_clock_unix_ms());
	sqlite3_bind_text(st, 8, vm->peer_name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		rv = fb_db_err(db, rc, "add VM", err);
		goto rollback;
	}
	if ((rv = vm_put_disks(db, vm, err)) != FB_RV_OK)
		goto rollback;
	if ((rv = fb_db_commit(db, err)) != FB_RV_OK)
		goto fail;
	if (out != NULL)
		*out = vm;
	else
		free(vm);
	return FB_RV_OK;
rollback:
	fb_db_rollback(db);
fail:
	free(vm);
	return rv;
}

/* Fills vm from the current row of a VM_COLUMNS statement, then loads its
 * disks. */
static uint32_t
vm_load(fb_db *db, sqlite3_stmt *row, fb_vm *vm, fb_err *err)
{
	sqlite3_stmt *st;
	uint32_t      rv;

	memset(vm, 0, sizeof(*vm));
	snprintf(vm->id, sizeof(vm->id), "%s", (const char *)sqlite3_column_text(row, 0));
	snprintf(vm->name, sizeof(vm->name), "%s", (const char *)sqlite3_column_text(row, 1));
	vm->state            = sqlite3_column_int(row, 2);
	vm->mode             = sqlite3_column_int(row, 3);
	vm->health           = sqlite3_column_int(row, 4);
	vm->recovery_history = (uint32_t)sqlite3_column_int(row, 5);
	snprintf(vm->failover_rp, sizeof(vm->failover_rp), "%s",
	         (const char *)sqlite3_column_text(row, 6));
	vm->generation = (uint64_t)sqlite3_column_int64(row, 7);
	snprintf(vm->peer_url, sizeof(vm->peer_url), "%s", (const char *)sqlite3_column_text(row, 8));
	snprintf(vm->peer_name, sizeof(vm->peer_name), "%s",
	         (const char *)sqlite3_column_text(row, 9));
	snprintf(vm->pending_peer, sizeof(vm->pending_peer), "%s",
	         (const char *)sqlite3_column_text(row, 10));
	snprintf(vm->peer_pin, sizeof(vm->peer_pin), "%s", (const char *)sqlite3_column_text(row, 11));
	if ((rv = fb_db_prepare(db,
	                        "SELECT name, path, size, format FROM disks WHERE vm_id = ? "
	                        "ORDER BY rowid",
	                        &st, err)) != FB_RV_OK)
		return rv;
	sqlite3_bind_text(st, 1, vm->id, -1, SQLITE_TRANSIENT);
	while (sqlite3_step(st) == SQLITE_ROW && vm->ndisks < FB_MAX_DISKS) {
		fb_vm_disk *d = &vm->disks[vm->ndisks++];

		snprintf(d->name, sizeof(d->name), "%s", (const char *)sqlite3_column_text(st, 0));
		snprintf(d->path, sizeof(d->path), "%s", (const char *)sqlite3_column_text(st, 1));
		d->size = (uint64_t)sqlite3_column_int64(st, 2);
		snprintf(d->format, sizeof(d->format), "%s", (const char *)sqlite3_column_text(st, 3));
	}
	sqlite3_finalize(st);
	return FB_RV_OK;
}

#define VM_COLUMNS                                                                             \
	"SELECT id, name, state, mode, health, recovery_history, failover_rp, generation, "       \
	"peer_url, peer_name, pending_peer, peer_pin FROM vms "

uint32_t
fb_vm_get(fb_db *db, const char *ref, fb_vm **out, fb_err *err)
{
	sqlite3_stmt *st;
	fb_vm        *vm;
	uint32_t      rv;
	int           rc;
	char          path_id[FB_ID_LEN + 1];

	switch (fb_vm_ref_parse(ref, path_id, sizeof(path_id))) {
	case 1:
		ref = path_id;
		break;
	case -1:
		return fb_err_set(err, FB_RV_INVALID_PARAMETER,
		                  "'%.200s' is not a CIM object path of a VM: expected "
		                  "Msvm_ComputerSystem.CreationClassName=\"Msvm_ComputerSystem\","
		                  "Name=\"<GUID>\"",
		                  ref);
	}
	if (!fb_id_valid(ref) && !fb_vm_name_valid(ref))
		return fb_err_set(err, FB_RV_INVALID_PARAMETER,
		                  "'%.80s' is neither a VM GUID, a VM name nor a VM's CIM object path",
		                  ref ? ref : "");
	if ((vm = malloc(sizeof(*vm))) == NULL)
		return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
	fb_db_lock(db);
	if ((rv = fb_db_prepare(db, VM_COLUMNS "WHERE id = lower(?1) OR name = ?1", &st, err)) !=
	    FB_RV_OK)
		goto out;
	sqlite3_bind_text(st, 1, ref, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		rv = vm_load(db, st, vm, err);
	else if (rc == SQLITE_DONE)
		rv = fb_err_set(err, FB_RV_FILE_NOT_FOUND, "no VM '%s'", ref);
	else
		rv = fb_db_err(db, rc, "VM lookup", err);
	sqlite3_finalize(st);
out:
	fb_db_unlock(db);
	if (rv != FB_RV_OK) {
		free(vm);
		return rv;
	}
	*out = vm;
	return FB_RV_OK;
}

uint32_t
fb_vm_list(fb_db *db, fb_vm **out, size_t *n, fb_err *err)
{
	sqlite3_stmt *st;
	fb_vm        *vms = NULL;
	size_t        cnt = 0, cap = 0;
	uint32_t      rv;

	fb_db_lock(db);
	if ((rv = fb_db_prepare(db, VM_COLUMNS "ORDER BY name", &st, err)) != FB_RV_OK) {
		fb_db_unlock(db);
		return rv;
	}
	while (sqlite3_step(st) == SQLITE_ROW) {
		if (cnt == cap) {
			fb_vm *g;
			cap = cap ? cap * 2 : 8;
			if ((g = realloc(vms, cap * sizeof(*vms))) == NULL) {
				rv = fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
				break;
			}
			vms = g;
		}
		if ((rv = vm_load(db, st, &vms[cnt], err)) != FB_RV_OK)
			break;
		cnt++;
	}
	sqlite3_finalize(st);
	fb_db_unlock(db);
	if (rv != FB_RV_OK) {
		free(vms);
		return rv;
	}
	*out = vms;
	*n   = cnt;
	return FB_RV_OK;
}

void
fb_vm_list_free(fb_vm *vms)
{
	free(vms);
}

uint32_t
fb_vm_add_replica(fb_db *db, const char *id, const char *name, const fb_vm_disk *disks,
                  size_t ndisks, const char *vm_dir, uint32_t history, fb_err *err)
{
	sqlite3_stmt *st;
	uint32_t      rv;
	int           rc;

	if (!fb_id_valid(id) || !fb_vm_name_valid(name) || ndisks == 0 || ndisks > FB_MAX_DISKS)
		return fb_err_set(err, FB_RV_INVALID_PARAMETER, "bad VM identity from the primary");
	for (size_t i = 0; i < ndisks; i++)
		if (!fb_name_valid(disks[i].name))
			return fb_err_set(err, FB_RV_INVALID_PARAMETER,
			                  "bad disk name from the primary");
	if ((rv = fb_db_begin(db, err)) != FB_RV_OK)
		return rv;
	if ((rv = fb_db_prepare(db,
	                        "INSERT INTO vms (id, name, state, mode, health, recovery_history, "
	                        "created_ms) VALUES (lower(?), ?, 2, 2, 1, ?, ?)",
	                        &st, err)) != FB_RV_OK)
		goto rollback;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, (int)history);
	sqlite3_bind_int64(st, 4, fb_clock_unix_ms());
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		rv = fb_db_err(db, rc, "add VM", err);
		goto rollback;
	}
	for (size_t i = 0; i < ndisks; i++) {
		char path[4096];

		snprintf(path, sizeof(path), "%s/%s", vm_dir, disks[i].name);
		if ((rv = fb_db_prepare(db,
		                        "INSERT INTO disks (vm_id, name, path, size) VALUES "
		                        "(lower(?), ?, ?, ?)",
		                        &st, err)) != FB_RV_OK)
			goto rollback;
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, disks[i].name, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, path, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(st, 4, (sqlite3_int64)disks[i].size);
		rc = sqlite3_step(st);
		sqlite3_finalize(st);
		if (rc != SQLITE_DONE) {
			rv = fb_db_err(db, rc, "add disk", err);
			goto rollback;
		}
	}
	return fb_db_commit(db, err);
rollback:
	fb_db_rollback(db);
	return rv;
}

static uint32_t
vm_update(fb_db *db, const char *sql, const char *id, int a, int b, const char *text,
          fb_err *err)
{
	sqlite3_stmt *st;
	uint32_t      rv;
	int           rc;

	fb_db_lock(db);
	if ((rv = fb_db_prepare(db, sql, &st, err)) != FB_RV_OK) {
		fb_db_unlock(db);
		return rv;
	}
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	if (text != NULL) {
		sqlite3_bind_text(st, 2, text, -1, SQLITE_STATIC);
	} else {
		sqlite3_bind_int(st, 2, a);
		sqlite3_bind_int(st, 3, b);
	}
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	fb_db_unlock(db);
	return rc == SQLITE_DONE ? FB_RV_OK : fb_db_err(db, rc, "update VM", err);
}

uint32_t
fb_vm_set_state(fb_db *db, const char *id, int state, int health, fb_err *err)
{
	return vm_update(db, "UPDATE vms SET state = ?2, health = ?3 WHERE id = ?1", id, state,
	                 health, NULL, err);
}

uint32_t
fb_vm_set_failover_rp(fb_db *db, const char *id, const char *rp, fb_err *err)
{
	return vm_update(db, "UPDATE vms SET failover_rp = ?2 WHERE id = ?1", id, 0, 0, rp, err);
}

/* Inserts the disks of vm (inside a transaction). */
uint32_t
fb_vm_put(fb_db *db, const fb_vm *vm, fb_err *err)
{
	sqlite3_stmt *st;
	uint32_t      rv;
	int           rc;

	if (!fb_id_valid(vm->id) || !fb_vm_name_valid(vm->name) || vm->ndisks == 0 ||
	    vm->ndisks > FB_MAX_DISKS || vm->recovery_history > FB_MAX_HISTORY)
		return fb_err_set(err, FB_RV_INVALID_PARAMETER, "not a usable VM record");
	for (size_t i = 0; i < vm->ndisks; i++)
		if (!fb_name_valid(vm->disks[i].name) || vm->disks[i].path[0] != '/')
			return fb_err_set(err, FB_RV_INVALID_PARAMETER, "not a usable disk record");
	if ((rv = fb_db_begin(db, err)) != FB_RV_OK)
		return rv;
	if ((rv = fb_db_prepare(db, "SELECT 1 FROM vms WHERE name = ? AND id <> lower(?)", &st,
	                        err)) != FB_RV_OK)
		goto rollback;
	sqlite3_bind_text(st, 1, vm->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, vm->id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW) {
		rv = fb_err_set(err, FB_RV_INVALID_PARAMETER,
		                "another VM here is named '%s' (VM %s cannot take the name)", vm->name,
		                vm->id);
		goto rollback;
	}
	if ((rv = fb_db_prepare(
	         db,
	         "INSERT INTO vms (id, name, state, mode, health, recovery_history, created_ms, "
	         "failover_rp, generation, peer_url, peer_name, pending_peer, peer_pin) "
	         "VALUES (lower(?1), ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) "
	         "ON CONFLICT(id) DO UPDATE SET name = ?2, state = ?3, mode = ?4, health = ?5, "
	         "recovery_history = ?6, failover_rp = ?8, generation = ?9, peer_url = ?10, "
	         "peer_name = ?11, pending_peer = ?12, peer_pin = ?13",
	         &st, err)) != FB_RV_OK)
		goto rollback;
	sqlite3_bind_text(st, 1, vm->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, vm->name, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, vm->state);
	sqlite3_bind_int(st, 4, vm->mode);
	sqlite3_bind_int(st, 5, vm->health);
	sqlite3_bind_int(st, 6, (int)vm->recovery_history);
	sqlite3_bind_int64(st, 7, fb_clock_unix_ms());
	sqlite3_bind_text(st, 8, vm->failover_rp, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 9, (sqlite3_int64)vm->generation);
	sqlite3_bind_text(st, 10, vm->peer_url, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 11, vm->peer_name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 12, vm->pending_peer, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 13, vm->peer_pin, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		rv = fb_db_err(db, rc, "record VM", err);
		goto rollback;
	}
	if ((rv = vm_put_disks(db, vm, err)) != FB_RV_OK)
		goto rollback;
	return fb_db_commit(db, err);
rollback:
	fb_db_rollback(db);
	return rv;
}

uint32_t
fb_vm_set_relationship(fb_db *db, const char *id, uint64_t generation, const char *peer_url,
                       const char *peer_name, const char *peer_pin, const char *pending_peer,
                       fb_err *err)
{
	sqlite3_stmt *st;
	uint32_t      rv;
	int           rc;

	fb_db_lock(db);
	if ((rv = fb_db_prepare(db,
	                        "UPDATE vms SET generation = ?2, peer_url = ?3, peer_name = ?4, "
	                        "pending_peer = ?5, peer_pin = ?6 WHERE id = lower(?1)",
	                        &st, err)) != FB_RV_OK) {
		fb_db_unlock(db);
		return rv;
	}
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)generation);
	sqlite3_bind_text(st, 3, peer_url, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, peer_name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, pending_peer, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, peer_pin, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	fb_db_unlock(db);
	return rc == SQLITE_DONE ? FB_RV_OK : fb_db_err(db, rc, "update VM", err);
}
