/*
 * id.c - GUIDs from getrandom(2), and the validators of id.h.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
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
