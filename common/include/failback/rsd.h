/*
 * rsd.h - Msvm_ReplicationSettingData as a CIM-XML embedded instance
 * (DESIGN §6, reference §2/§5), parsed with Expat. Pure: no I/O, so the
 * fuzz target drives it directly.
 *
 *   <INSTANCE CLASSNAME="Msvm_ReplicationSettingData">
 *     <PROPERTY NAME="PrimaryConnectionPoint" TYPE="string"><VALUE>...</VALUE></PROPERTY>
 *     <PROPERTY.ARRAY NAME="IncludedDisks" TYPE="string">
 *       <VALUE.ARRAY><VALUE>...</VALUE></VALUE.ARRAY></PROPERTY.ARRAY>
 *   </INSTANCE>
 *
 * Outcomes: malformed XML, a DTD or entity declaration, another root or
 * CLASSNAME, more than FB_RSD_MAX bytes → Invalid parameter (32773); a value
 * that does not parse as its TYPE, or a known property declared with the
 * wrong TYPE → Incorrect data type (32776); AuthenticationType 1 (Kerberos)
 * → Not Supported (32770). WMI's system properties (__PATH, ...) and
 * properties the product does not use are accepted and ignored; a PROPERTY
 * without VALUE is NULL (unset). An empty string means "no settings".
 */
#ifndef FAILBACK_RSD_H
#define FAILBACK_RSD_H

#include <stddef.h>
#include <stdint.h>

#include "failback/err.h"

#define FB_RSD_MAX       (64u << 10)
#define FB_RSD_MAX_DISKS 16

typedef struct fb_rsd {
	char     primary_connection_point[257];
	char     recovery_connection_point[257];
	uint32_t port;                /* RecoveryServerPortNumber, 0 = unset */
	uint32_t authentication_type; /* 0 = unset, 2 = certificate */
	char     thumbprint[129];     /* CertificateThumbPrint, lower-case hex, "" = unset */
	int      compression;         /* CompressionEnabled: -1 unset, 0, 1 */
	size_t   nincluded;           /* IncludedDisks; 0 = all */
	char     included[FB_RSD_MAX_DISKS][512];
} fb_rsd;

/* fb_rsd_parse parses len bytes of xml into *out (fully reset first). */
uint32_t fb_rsd_parse(const char *xml, size_t len, fb_rsd *out, fb_err *err);

/* fb_rsd_includes is 1 when the settings include the disk named name:
 * IncludedDisks is empty, or an entry equals name or ends with "/name" or
 * "\name" (WMI puts object paths there). */
int fb_rsd_includes(const fb_rsd *rsd, const char *name);

#endif
