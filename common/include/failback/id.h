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
/* A VM's name, as Hyper-V allows it: 1 to 100 characters, any script. */
#define FB_VM_NAME_CHARS 100
#define FB_VM_NAME_MAX   (FB_VM_NAME_CHARS * 4) /* bytes of UTF-8 */

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

/* fb_utf8_valid is 1 when s holds well-formed UTF-8 (no overlong forms,
 * no surrogates, nothing past U+10FFFF); *chars (may be NULL) receives the
 * number of characters. */
int fb_utf8_valid(const char *s, size_t *chars);

/* fb_vm_name_valid is 1 for a VM name as Hyper-V takes it: well-formed
 * UTF-8 of 1 to 100 characters, spaces and any script included, but no
 * control character, none of \ / : * ? " < > |, no space at either end,
 * and not shaped like a GUID (a GUID always names a VM by its id). A VM
 * name never reaches a file name: VMs live under their GUID. */
int fb_vm_name_valid(const char *s);
#define FB_VM_NAME_RULE                                                                       \
	"a VM name is 1 to 100 characters without control characters, \\ / : * ? \" < > | or a " \
	"space at either end, and is not a GUID"

/* fb_vm_ref_parse takes a VM reference as Hyper-V automation passes it: a
 * name, a GUID, or a CIM object path of Msvm_ComputerSystem
 * ([\\HOST\root\virtualization\v2:]Msvm_ComputerSystem.CreationClassName=
 * "Msvm_ComputerSystem",Name="<GUID>", keys in either order). A path gives
 * its Name into out (cap bytes) and 1; anything else gives 0 and leaves
 * out alone. A malformed path gives -1. */
int fb_vm_ref_parse(const char *ref, char *out, size_t cap);

/* fb_vm_cim_path writes the CIM object path (relative, without a host) of
 * the VM with GUID id into out. */
void fb_vm_cim_path(const char *id, char *out, size_t cap);
#define FB_VM_CIM_PATH_MAX 128

#endif
