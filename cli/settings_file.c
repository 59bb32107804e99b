/*
 * settings_file.c - reads a ReplicationSettingData file for --settings:
 * UTF-8 (a byte-order mark is dropped) or UTF-16 with its byte-order mark,
 * as Windows PowerShell 5.1's Out-File and Export-Clixml write it, which is
 * turned into UTF-8. The agent gets UTF-8 only.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

#define SETTINGS_MAX (64u << 10)

/* Appends code point cp to out as UTF-8 (out has room for 4 more bytes). */
static size_t
put_utf8(unsigned char *out, uint32_t cp)
{
	if (cp < 0x80) {
		out[0] = (unsigned char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (unsigned char)(0xc0 | (cp >> 6));
		out[1] = (unsigned char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (unsigned char)(0xe0 | (cp >> 12));
		out[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		out[2] = (unsigned char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (unsigned char)(0xf0 | (cp >> 18));
	out[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
	out[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
	out[3] = (unsigned char)(0x80 | (cp & 0x3f));
	return 4;
}

/* UTF-16 (big_endian or not) in in[0..n) to UTF-8; NULL and *why when it
 * is not well formed. */
static char *
from_utf16(const unsigned char *in, size_t n, int big_endian, const char **why)
{
	unsigned char *out;
	size_t         o = 0;

	if (n % 2 != 0) {
		*why = "UTF-16 text with an odd number of bytes";
		return NULL;
	}
	if ((out = malloc(n / 2 * 3 + 1)) == NULL) {
		*why = "out of memory";
		return NULL;
	}
	for (size_t i = 0; i < n; i += 2) {
		uint32_t u = big_endian ? (uint32_t)(in[i] << 8 | in[i + 1])
		                        : (uint32_t)(in[i + 1] << 8 | in[i]);

		if (u >= 0xd800 && u <= 0xdbff && i + 3 < n) {
			uint32_t lo = big_endian ? (uint32_t)(in[i + 2] << 8 | in[i + 3])
			                         : (uint32_t)(in[i + 3] << 8 | in[i + 2]);

			if (lo < 0xdc00 || lo > 0xdfff)
				goto bad;
			u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
			i += 2;
		} else if ((u >= 0xd800 && u <= 0xdfff) || u == 0) {
			goto bad;
		}
		o += put_utf8(out + o, u);
	}
	out[o] = '\0';
	return (char *)out;
bad:
	free(out);
	*why = "UTF-16 text with a broken surrogate pair or a NUL";
	return NULL;
}

char *
ctl_read_settings(const char *path)
{
	FILE          *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	unsigned char *buf;
	const char    *why = NULL;
	char          *text;
	size_t         n;

	if (f == NULL) {
		fprintf(stderr, "failbackctl: --settings %s: %s\n", path, strerror(errno));
		return NULL;
	}
	if ((buf = malloc(SETTINGS_MAX + 1)) == NULL) {
		if (f != stdin)
			fclose(f);
		return NULL;
	}
	n = fread(buf, 1, SETTINGS_MAX + 1, f);
	if (f != stdin)
		fclose(f);
	if (n > SETTINGS_MAX) {
		fprintf(stderr, "failbackctl: --settings %s: larger than %u bytes\n", path,
		        SETTINGS_MAX);
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	if (n >= 2 && buf[0] == 0xff && buf[1] == 0xfe) {
		text = from_utf16(buf + 2, n - 2, 0, &why);
	} else if (n >= 2 && buf[0] == 0xfe && buf[1] == 0xff) {
		text = from_utf16(buf + 2, n - 2, 1, &why);
	} else {
		size_t skip = n >= 3 && buf[0] == 0xef && buf[1] == 0xbb && buf[2] == 0xbf ? 3 : 0;

		if (memchr(buf, '\0', n) != NULL)
			why = "a NUL byte in UTF-8 text (UTF-16 needs its byte-order mark)";
		text = why == NULL ? strdup((char *)buf + skip) : NULL;
	}
	free(buf);
	if (text == NULL)
		fprintf(stderr, "failbackctl: --settings %s: %s\n", path, why ? why : "out of memory");
	return text;
}
