/*
 * config.c - the parser and flag mapper of config.h. Lines are handled one
 * at a time in a fixed buffer so no input, however long, allocates more
 * than the values it stores.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "failback/config.h"

#define LINE_MAX_LEN 4096
#define FILE_MAX_LEN (1u << 20)

static const fb_config_key *
config_find(const fb_config_key *keys, size_t nkeys, const char *name, size_t len)
{
	for (size_t i = 0; i < nkeys; i++)
		if (strlen(keys[i].name) == len && memcmp(keys[i].name, name, len) == 0)
			return &keys[i];
	return NULL;
}

uint32_t
fb_config_set(const fb_config_key *keys, size_t nkeys, const char *key, const char *value,
              fb_err *err)
{
	const fb_config_key *k = config_find(keys, nkeys, key, strlen(key));
	char                *copy;

	if (k == NULL)
		return fb_err_set(err, FB_RV_INVALID_PARAMETER, "unknown setting '%s'", key);
	if ((copy = strdup(value)) == NULL)
		return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
	free(*k->slot);
	*k->slot = copy;
	return FB_RV_OK;
}

static int
is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

static uint32_t
config_line(const char *line, size_t len, const fb_config_key *keys, size_t nkeys,
            const char *origin, unsigned lineno, fb_err *err)
{
	size_t               b = 0, e = len, eq, ke, vb;
	const fb_config_key *k;
	char                 value[LINE_MAX_LEN + 1];

	while (b < e && is_blank(line[b]))
		b++;
	while (e > b && is_blank(line[e - 1]))
		e--;
	if (b == e || line[b] == '#')
		return FB_RV_OK;
	for (eq = b; eq < e && line[eq] != '='; eq++)
		;
	if (eq == e)
		return fb_err_set(err, FB_RV_INVALID_PARAMETER,
		                  "%s:%u: expected 'key = value'", origin, lineno);
	for (ke = eq; ke > b && is_blank(line[ke - 1]); ke--)
		;
	if (ke == b)
		return fb_err_set(err, FB_RV_INVALID_PARAMETER, "%s:%u: missing key before '='",
		                  origin, lineno);
	for (size_t i = b; i < ke; i++)
		if (!(islower((unsigned char)line[i]) || isdigit((unsigned char)line[i]) ||
		      line[i] == '_'))
			return fb_err_set(err, FB_RV_INVALID_PARAMETER,
			                  "%s:%u: a key has only a-z, 0-9 and '_'", origin, lineno);
	if ((k = config_find(keys, nkeys, line + b, ke - b)) == NULL)
		return fb_err_set(err, FB_RV_INVALID_PARAMETER, "%s:%u: unknown key '%.*s'",
		                  origin, lineno, (int)(ke - b), line + b);
	for (vb = eq + 1; vb < e && is_blank(line[vb]); vb++)
		;
	if (vb < e && line[vb] == '"') {
		/* "quoted": the text between the quotes, then only a comment */
		const char *close = memchr(line + vb + 1, '"', e - vb - 1);
		size_t      after;

		if (close == NULL)
			return fb_err_set(err, FB_RV_INVALID_PARAMETER, "%s:%u: unterminated quote",
			                  origin, lineno);
		for (after = (size_t)(close - line) + 1; after < e && is_blank(line[after]); after++)
			;
		if (after < e && line[after] != '#')
			return fb_err_set(err, FB_RV_INVALID_PARAMETER,
			                  "%s:%u: text after the closing quote", origin, lineno);
		memcpy(value, line + vb + 1, (size_t)(close - line) - vb - 1);
		value[(size_t)(close - line) - vb - 1] = '\0';
		return fb_config_set(keys, nkeys, k->name, value, err);
	}
	/* an unquoted value ends at a '#' that follows a blank (a comment) */
	for (size_t i = vb + 1; i < e; i++)
		if (line[i] == '#' && is_blank(line[i - 1])) {
			e = i;
			while (e > vb && is_blank(line[e - 1]))
				e--;
			break;
		}
	memcpy(value, line + vb, e - vb);
	value[e - vb] = '\0';
	return fb_config_set(keys, nkeys, k->name, value, err);
}

uint32_t
fb_config_parse(const char *text, size_t len, const fb_config_key *keys, size_t nkeys,
                const char *origin, fb_err *err)
{
	size_t   start = 0;
	unsigned lineno = 0;
	uint32_t rv;

	while (start < len) {
		size_t end = start;

		lineno++;
		while (end < len && text[end] != '\n') {
			if (text[end] == '\0')
				return fb_err_set(err, FB_RV_INVALID_PARAMETER,
				                  "%s:%u: NUL byte in configuration", origin, lineno);
			end++;
		}
		if (end - start > LINE_MAX_LEN)
			return fb_err_set(err, FB_RV_INVALID_PARAMETER,
			                  "%s:%u: line longer than %u bytes", origin, lineno,
			                  LINE_MAX_LEN);
		if ((rv = config_line(text + start, end - start, keys, nkeys, origin, lineno,
		                      err)) != FB_RV_OK)
			return rv;
		start = end + 1;
	}
	return FB_RV_OK;
}

uint32_t
fb_config_load(const char *path, const fb_config_key *keys, size_t nkeys, fb_err *err)
{
	FILE       *f;
	char       *buf;
	size_t      n;
	struct stat st;
	uint32_t    rv;

	if ((f = fopen(path, "r")) == NULL)
		return fb_err_errno(err, errno, path);
	if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
		fclose(f);
		return fb_err_set(err, FB_RV_INVALID_PARAMETER, "%s: not a regular file", path);
	}
	if (st.st_size > (off_t)FILE_MAX_LEN) {
		fclose(f);
		return fb_err_set(err, FB_RV_INVALID_PARAMETER, "%s: larger than %u bytes", path,
		                  FILE_MAX_LEN);
	}
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
		fclose(f);
		return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
	}
	n = fread(buf, 1, (size_t)st.st_size, f);
	fclose(f);
	rv = fb_config_parse(buf, n, keys, nkeys, path, err);
	free(buf);
	return rv;
}

uint32_t
fb_config_flag(const fb_config_key *keys, size_t nkeys, int argc, char **argv, int *i,
               fb_err *err)
{
	const char *arg = argv[*i];
	const char *eq;
	char        name[128];
	size_t      len;

	if (strncmp(arg, "--", 2) != 0)
		return fb_err_set(err, FB_RV_INVALID_PARAMETER, "unexpected argument '%s'", arg);
	arg += 2;
	eq  = strchr(arg, '=');
	len = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
	if (len == 0 || len >= sizeof(name))
		return fb_err_set(err, FB_RV_INVALID_PARAMETER, "unknown option '%s'", argv[*i]);
	for (size_t j = 0; j < len; j++)
		name[j] = arg[j] == '-' ? '_' : arg[j];
	name[len] = '\0';
	if (config_find(keys, nkeys, name, len) == NULL)
		return fb_err_set(err, FB_RV_INVALID_PARAMETER, "unknown option '--%.*s'",
		                  (int)len, arg);
	if (eq != NULL)
		return fb_config_set(keys, nkeys, name, eq + 1, err);
	if (*i + 1 >= argc)
		return fb_err_set(err, FB_RV_INVALID_PARAMETER, "option '--%s' needs a value",
		                  arg);
	(*i)++;
	return fb_config_set(keys, nkeys, name, argv[*i], err);
}

void
fb_config_help(const fb_config_key *keys, size_t nkeys, void *file)
{
	for (size_t i = 0; i < nkeys; i++) {
		char flag[128];
		size_t j;

		for (j = 0; keys[i].name[j] != '\0' && j < sizeof(flag) - 1; j++)
			flag[j] = keys[i].name[j] == '_' ? '-' : keys[i].name[j];
		flag[j] = '\0';
		fprintf((FILE *)file, "  --%-22s %s\n", flag, keys[i].help);
	}
}

void
fb_config_free(const fb_config_key *keys, size_t nkeys)
{
	for (size_t i = 0; i < nkeys; i++) {
		free(*keys[i].slot);
		*keys[i].slot = NULL;
	}
}
