/*
 * id.h - identifiers that may reach file names: GUIDs (VMs, recovery
 * points, jobs) and names (VMs, disks). Anything from the wire is checked
 * here before it names a file or a row.
 */
#ifndef FAILBACK_ID_H
#define FAILBACK_ID_H

#include <stddef.h>

#include "failback/err.h"

#define FB_ID_LEN   36 /* 8-4-4-4-12 lower-case hex */
#define FB_NAME_MAX 64

/* fb_id_new writes a random (version 4) GUID and a NUL into out[37]. */
uint32_t fb_id_new(char *out, fb_err *err);

/* fb_random_bytes fills out with n bytes from getrandom(2). */
uint32_t fb_random_bytes(void *out, size_t n, fb_err *err);

/* fb_id_valid is 1 for exactly 36 characters of lower- or upper-case hex
 * in the 8-4-4-4-12 layout. */
int fb_id_valid(const char *s);

/* fb_name_valid is 1 for 1 to 64 characters of [A-Za-z0-9._-] not
 * starting with '.' or '-' (so never "..", never an option). */
int fb_name_valid(const char *s);

#endif
