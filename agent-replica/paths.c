/*
 * paths.c - where the replica keeps things under its data directory:
 * vms/<vm-guid>/<disk> (recovery-VM disks) and undo/<vm-guid> (a
 * failback's undo log). A path that does not fit is an error, never a
 * truncated name (which would name another file).
 */
#include <stdarg.h>
#include <stdio.h>

#include "replica.h"

uint32_t
replica_path(const replica *r, char *out, size_t len, fb_err *err, const char *fmt, ...)
{
	va_list ap;
	int     n = snprintf(out, len, "%s/", r->dir), m;

	if (n < 0 || (size_t)n >= len)
		return fb_err_set(err, FB_RV_INVALID_PARAMETER, "data directory path too long");
	va_start(ap, fmt);
	m = vsnprintf(out + n, len - (size_t)n, fmt, ap);
	va_end(ap);
	if (m < 0 || (size_t)m >= len - (size_t)n)
		return fb_err_set(err, FB_RV_INVALID_PARAMETER, "path under %s too long", r->dir);
	return FB_RV_OK;
}

uint32_t
replica_path_vm(const replica *r, const char *vm_id, char *out, size_t len, fb_err *err)
{
	return replica_path(r, out, len, err, "vms/%s", vm_id);
}

uint32_t
replica_path_undo(const replica *r, const char *vm_id, char *out, size_t len, fb_err *err)
{
	return replica_path(r, out, len, err, "undo/%s", vm_id);
}
