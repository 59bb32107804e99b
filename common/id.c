/*
 * id.c - GUIDs from getrandom(2), and the validators of id.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "failback/id.h"

uint32_t
fb_id_new(char *out, fb_err *err)
{
	unsigned char b[16];

	if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
		return fb_err_errno(err, errno, "getrandom");
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	snprintf(out, FB_ID_LEN + 1,
	         "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
	         b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
	         b[15]);
	return FB_RV_OK;
}

uint32_t
fb_random_bytes(void *out, size_t n, fb_err *err)
{
	for (size_t got = 0; got < n;) {
		ssize_t k = getrandom((unsigned char *)out + got, n - got, 0);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return fb_err_errno(err, errno, "getrandom");
		got += (size_t)k;
	}
	return FB_RV_OK;
}

int
fb_id_valid(const char *s)
{
	if (s == NULL || strlen(s) != FB_ID_LEN)
		return 0;
	for (int i = 0; i < FB_ID_LEN; i++) {
		int dash = i == 8 || i == 13 || i == 18 || i == 23;
		char c   = s[i];

		if (dash ? c != '-'
		         : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
			return 0;
	}
	return 1;
}

int
fb_name_valid(const char *s)
{
	size_t n = s != NULL ? strlen(s) : 0;

	if (n == 0 || n > FB_NAME_MAX || s[0] == '.' || s[0] == '-')
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

int
fb_utf8_valid(const char *s, size_t *chars)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t               n = 0;

	while (p != NULL && *p) {
		uint32_t cp;
		int      len;

		if (p[0] < 0x80)
			cp = p[0], len = 1;
		else if ((p[0] & 0xe0) == 0xc0)
			cp = p[0] & 0x1fu, len = 2;
		else if ((p[0] & 0xf0) == 0xe0)
			cp = p[0] & 0x0fu, len = 3;
		else if ((p[0] & 0xf8) == 0xf0)
			cp = p[0] & 0x07u, len = 4;
		else
			return 0;
		for (int i = 1; i < len; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (p[i] & 0x3fu);
		}
		if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
		    (len == 4 && cp < 0x10000) || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		p += len;
		n++;
	}
	if (chars != NULL)
		*chars = n;
	return 1;
}

int
fb_vm_name_valid(const char *s)
{
	size_t chars, n = s != NULL ? strlen(s) : 0;

	if (n == 0 || n > FB_VM_NAME_MAX || !fb_utf8_valid(s, &chars) || chars > FB_VM_NAME_CHARS)
		return 0;
	if (s[0] == ' ' || s[n - 1] == ' ' || fb_id_valid(s))
		return 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p < 0x20 || *p == 0x7f || strchr("\\/:*?\"<>|", *p) != NULL)
			return 0;
		/* C1 controls, U+0080..U+009F, are C2 80..C2 9F in UTF-8. */
		if (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f)
			return 0;
	}
	return 1;
}

/* Takes KEY="VALUE" at *p (no escapes: neither value may hold a quote),
 * advancing *p past it; returns 0 or -1. */
static int
cim_key(const char **p, char *key, size_t kcap, char *val, size_t vcap)
{
	const char *s = *p, *eq = strchr(s, '='), *end;

	if (eq == NULL || (size_t)(eq - s) >= kcap || eq[1] != '"' ||
	    (end = strchr(eq + 2, '"')) == NULL || (size_t)(end - eq - 2) >= vcap)
		return -1;
	memcpy(key, s, (size_t)(eq - s));
	key[eq - s] = '\0';
	memcpy(val, eq + 2, (size_t)(end - eq - 2));
	val[end - eq - 2] = '\0';
	*p                = end + 1;
	return 0;
}

static int
cim_path_parse(const char *ref, char *out, size_t cap)
{
	static const char cls[] = "Msvm_ComputerSystem.";
	const char       *p, *colon;
	char              name[64] = "", klass[64] = "";

	if (ref == NULL)
		return 0;
	p = ref;
	/* \\HOST\root\virtualization\v2: (any host, the namespace as Hyper-V's) */
	if (ref[0] == '\\' && ref[1] == '\\' && (colon = strchr(ref, ':')) != NULL) {
		const char *ns = strchr(ref + 2, '\\');

		if (ns == NULL || ns > colon || (size_t)(colon - ns) != strlen("\\root\\virtualization\\v2") ||
		    strncasecmp(ns, "\\root\\virtualization\\v2", (size_t)(colon - ns)) != 0)
			return -1;
		p = colon + 1;
	} else if (strncasecmp(ref, "root\\virtualization\\v2:", 23) == 0) {
		p = ref + 23;
	}
	if (strncasecmp(p, cls, sizeof(cls) - 1) != 0)
		return p == ref ? 0 : -1;
	p += sizeof(cls) - 1;
	for (int k = 0; k < 2; k++) {
		char key[32], val[sizeof(name)];

		if (cim_key(&p, key, sizeof(key), val, sizeof(val)) != 0)
			return -1;
		if (strcasecmp(key, "Name") == 0 && name[0] == '\0')
			snprintf(name, sizeof(name), "%s", val);
		else if (strcasecmp(key, "CreationClassName") == 0 && klass[0] == '\0')
			snprintf(klass, sizeof(klass), "%s", val);
		else
			return -1;
		if (k == 0 && *p++ != ',')
			return -1;
	}
	if (*p != '\0' || strcmp(klass, "Msvm_ComputerSystem") != 0 || !fb_id_valid(name) ||
	    cap <= FB_ID_LEN)
		return -1;
	snprintf(out, cap, "%s", name);
	return 1;
}

int
fb_vm_ref_parse(const char *ref, char *out, size_t cap)
{
	int r = cim_path_parse(ref, out, cap);

	/* A path holds quotes, which no name does: a name that merely starts
	 * like one is a name. */
	return r < 0 && fb_vm_name_valid(ref) ? 0 : r;
}

void
fb_vm_cim_path(const char *id, char *out, size_t cap)
{
	snprintf(out, cap, "Msvm_ComputerSystem.CreationClassName=\"Msvm_ComputerSystem\",Name=\"%s\"",
	         id);
}
