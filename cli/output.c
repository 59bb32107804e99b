/*
 * output.c - prints any protobuf-c message, driven by its descriptor, as
 * indented "field: value" text or as one JSON object, and lists as tables.
 *
 * Enums print as Hyper-V's names and numbers: "FailbackComplete (14)" in
 * text; in JSON the number (the automation contract) with a "<field>_name"
 * beside it. Times (fields named *_unix_ms) print as ISO-8601 UTC; JSON
 * keeps the number and adds the time under the name without _unix_ms.
 * Bytes print as hex. Strings come from an agent: in text, control
 * characters and bytes that are not UTF-8 are escaped (\xNN), so none
 * drives the terminal; in JSON they become \u escapes and U+FFFD, so the
 * output is always valid UTF-8 and valid JSON.
 */
#define _XOPEN_SOURCE 700 /* wcwidth */
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <wchar.h>

#include "ctl.h"

/* The length of the UTF-8 sequence at s (1-4), or 0 when it is not one. */
static int
utf8_seq(const unsigned char *s, uint32_t *cp_out)
{
	uint32_t cp;
	int      len;

	if (s[0] < 0x80)
		cp = s[0], len = 1;
	else if ((s[0] & 0xe0) == 0xc0)
		cp = s[0] & 0x1fu, len = 2;
	else if ((s[0] & 0xf0) == 0xe0)
		cp = s[0] & 0x0fu, len = 3;
	else if ((s[0] & 0xf8) == 0xf0)
		cp = s[0] & 0x07u, len = 4;
	else
		return 0;
	for (int i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3fu);
	}
	if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	*cp_out = cp;
	return len;
}

void
ctl_print_json_string(FILE *f, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	fputc('"', f);
	while (p != NULL && *p) {
		uint32_t cp;
		int      len = utf8_seq(p, &cp);

		if (len == 0) {
			fputs("\\ufffd", f); /* not UTF-8: the replacement character */
			p++;
			continue;
		}
		if (cp == '"' || cp == '\\')
			fprintf(f, "\\%c", (int)cp);
		else if (cp == '\n')
			fputs("\\n", f);
		else if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f))
			fprintf(f, "\\u%04x", (unsigned)cp);
		else
			fwrite(p, 1, (size_t)len, f);
		p += len;
	}
	fputc('"', f);
}

/* Writes s for a terminal into f (nowhere when f is NULL): printable
 * UTF-8 as is, the rest as \xNN (and \ as \\). Returns the columns it
 * takes. */
static int
text_string(FILE *f, const char *s)
{
	const unsigned char *p    = (const unsigned char *)s;
	int                  cols = 0;

	while (p != NULL && *p) {
		uint32_t cp;
		int      len = utf8_seq(p, &cp);

		if (len == 0 || cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f)) {
			int n = len == 0 ? 1 : len;

			for (int i = 0; f != NULL && i < n; i++)
				fprintf(f, "\\x%02x", p[i]);
			cols += 4 * n;
			p += n;
			continue;
		}
		if (cp == '\\') {
			if (f != NULL)
				fputs("\\\\", f);
			cols += 2;
		} else {
			int w = wcwidth((wchar_t)cp);

			if (f != NULL)
				fwrite(p, 1, (size_t)len, f);
			cols += w < 0 ? 1 : w;
		}
		p += len;
	}
	return cols;
}

void
ctl_print_text_string(FILE *f, const char *s)
{
	text_string(f, s);
}

void
ctl_enum_name(const ProtobufCEnumValue *ev, char *out, size_t cap)
{
	const char *s = strchr(ev->name, '_');
	size_t      n = 0;
	int         up = 1;

	/* RS_FAILBACK_COMPLETE -> FailbackComplete: the prefix goes, each word
	 * is capitalised, as Hyper-V spells the values. */
	s = s != NULL ? s + 1 : ev->name;
	for (; *s && n + 1 < cap; s++) {
		if (*s == '_') {
			up = 1;
			continue;
		}
		out[n++] = up ? *s : (char)(*s >= 'A' && *s <= 'Z' ? *s - 'A' + 'a' : *s);
		up       = 0;
	}
	out[n] = '\0';
}

void
ctl_iso_time(int64_t ms, char *out, size_t cap)
{
	time_t    t = (time_t)(ms / 1000);
	struct tm tm;

	if (ms <= 0 || gmtime_r(&t, &tm) == NULL) {
		snprintf(out, cap, "-");
		return;
	}
	snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
	         tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

/* 1 when the field holds a time in ms since the epoch. */
static int
is_time(const ProtobufCFieldDescriptor *fd)
{
	size_t n = strlen(fd->name);

	return n > 8 && strcmp(fd->name + n - 8, "_unix_ms") == 0 &&
	       (fd->type == PROTOBUF_C_TYPE_INT64 || fd->type == PROTOBUF_C_TYPE_UINT64);
}

static void
print_hex(FILE *f, const ProtobufCBinaryData *b)
{
	for (size_t i = 0; i < b->len; i++)
		fprintf(f, "%02x", b->data[i]);
}

/* Prints one scalar value at p. */
static void
print_value(FILE *f, const ProtobufCFieldDescriptor *fd, const void *p, int json, int indent)
{
	switch (fd->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		fprintf(f, "%" PRId32, *(const int32_t *)p);
		break;
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		fprintf(f, "%" PRIu32, *(const uint32_t *)p);
		break;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		if (!json && is_time(fd)) {
			char t[40];

			ctl_iso_time(*(const int64_t *)p, t, sizeof(t));
			fputs(t, f);
		} else {
			fprintf(f, "%" PRId64, *(const int64_t *)p);
		}
		break;
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		if (!json && is_time(fd)) {
			char t[40];

			ctl_iso_time((int64_t)*(const uint64_t *)p, t, sizeof(t));
			fputs(t, f);
		} else {
			fprintf(f, "%" PRIu64, *(const uint64_t *)p);
		}
		break;
	case PROTOBUF_C_TYPE_FLOAT:
		fprintf(f, "%g", (double)*(const float *)p);
		break;
	case PROTOBUF_C_TYPE_DOUBLE:
		fprintf(f, "%g", *(const double *)p);
		break;
	case PROTOBUF_C_TYPE_BOOL:
		fputs(*(const protobuf_c_boolean *)p ? "true" : "false", f);
		break;
	case PROTOBUF_C_TYPE_ENUM: {
		int                       v  = *(const int *)p;
		const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(fd->descriptor, v);
		char                      name[64];

		if (json || ev == NULL) {
			fprintf(f, "%d", v);
		} else {
			ctl_enum_name(ev, name, sizeof(name));
			fprintf(f, "%s (%d)", name, v);
		}
		break;
	}
	case PROTOBUF_C_TYPE_STRING:
		if (json)
			ctl_print_json_string(f, *(char *const *)p);
		else
			ctl_print_text_string(f, *(char *const *)p);
		break;
	case PROTOBUF_C_TYPE_BYTES:
		if (json)
			fputc('"', f);
		print_hex(f, (const ProtobufCBinaryData *)p);
		if (json)
			fputc('"', f);
		break;
	case PROTOBUF_C_TYPE_MESSAGE: {
		const ProtobufCMessage *m = *(ProtobufCMessage *const *)p;
		if (json) {
			if (m == NULL)
				fputs("null", f);
			else
				ctl_print_json(f, m);
		} else if (m != NULL) {
			fputc('\n', f);
			ctl_print_text(f, m, indent + 2);
		}
		break;
	}
	}
}

static size_t
value_size(const ProtobufCFieldDescriptor *fd)
{
	switch (fd->type) {
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		return 8;
	case PROTOBUF_C_TYPE_DOUBLE:
		return sizeof(double);
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_ENUM:
		return sizeof(int);
	case PROTOBUF_C_TYPE_STRING:
		return sizeof(char *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(ProtobufCMessage *);
	default:
		return 4;
	}
}

/* JSON: what goes beside a single enum or time field. */
static void
json_beside(FILE *f, const ProtobufCFieldDescriptor *fd, const char *base)
{
	if (fd->type == PROTOBUF_C_TYPE_ENUM) {
		const ProtobufCEnumValue *ev =
		    protobuf_c_enum_descriptor_get_value(fd->descriptor, *(const int *)base);
		char name[64];

		fprintf(f, ",\"%s_name\":", fd->name);
		if (ev == NULL) {
			fputs("null", f);
		} else {
			ctl_enum_name(ev, name, sizeof(name));
			ctl_print_json_string(f, name);
		}
	} else if (is_time(fd)) {
		int64_t ms = *(const int64_t *)base;
		char    t[40];

		fprintf(f, ",\"%.*s\":", (int)(strlen(fd->name) - 8), fd->name);
		ctl_iso_time(ms, t, sizeof(t));
		if (ms > 0)
			fprintf(f, "\"%s\"", t);
		else
			fputs("null", f);
	}
}

void
ctl_print_json(FILE *f, const ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;

	fputc('{', f);
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *fd   = &d->fields[i];
		const char                     *base = (const char *)m + fd->offset;

		if (i > 0)
			fputc(',', f);
		ctl_print_json_string(f, fd->name);
		fputc(':', f);
		if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t      n   = *(const size_t *)((const char *)m + fd->quantifier_offset);
			const char *arr = *(char *const *)base;

			fputc('[', f);
			for (size_t k = 0; k < n; k++) {
				if (k > 0)
					fputc(',', f);
				print_value(f, fd, arr + k * value_size(fd), 1, 0);
			}
			fputc(']', f);
		} else {
			print_value(f, fd, base, 1, 0);
			json_beside(f, fd, base);
		}
	}
	fputc('}', f);
}

void
ctl_print_text(FILE *f, const ProtobufCMessage *m, int indent)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;

	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *fd   = &d->fields[i];
		const char                     *base = (const char *)m + fd->offset;

		if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t      n   = *(const size_t *)((const char *)m + fd->quantifier_offset);
			const char *arr = *(char *const *)base;

			fprintf(f, "%*s%s: (%zu)\n", indent, "", fd->name, n);
			for (size_t k = 0; k < n; k++) {
				fprintf(f, "%*s- ", indent + 2, "");
				print_value(f, fd, arr + k * value_size(fd), 0, indent + 2);
				if (fd->type != PROTOBUF_C_TYPE_MESSAGE)
					fputc('\n', f);
			}
			continue;
		}
		if (is_time(fd))
			fprintf(f, "%*s%.*s: ", indent, "", (int)(strlen(fd->name) - 8), fd->name);
		else
			fprintf(f, "%*s%s: ", indent, "", fd->name);
		print_value(f, fd, base, 0, indent);
		if (fd->type != PROTOBUF_C_TYPE_MESSAGE ||
		    *(ProtobufCMessage *const *)base == NULL)
			fputc('\n', f);
	}
}

/* ---- tables ---------------------------------------------------------- */

struct ctl_table {
	int     ncols;
	char  **cells; /* row-major, the heading first */
	size_t  n, cap;
};

ctl_table *
ctl_table_new(const char *const *heads, int ncols)
{
	ctl_table *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return NULL;
	t->ncols = ncols;
	for (int i = 0; i < ncols; i++)
		ctl_table_cell(t, "%s", heads[i]);
	return t;
}

void
ctl_table_cell(ctl_table *t, const char *fmt, ...)
{
	va_list ap;
	char   *s;
	int     n;

	if (t == NULL)
		return;
	if (t->n == t->cap) {
		size_t cap   = t->cap ? t->cap * 2 : 64;
		char **cells = realloc(t->cells, cap * sizeof(*cells));

		if (cells == NULL)
			return;
		t->cells = cells;
		t->cap   = cap;
	}
	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || (s = malloc((size_t)n + 1)) == NULL) {
		s = NULL;
	} else {
		va_start(ap, fmt);
		vsnprintf(s, (size_t)n + 1, fmt, ap);
		va_end(ap);
	}
	t->cells[t->n++] = s;
}

void
ctl_table_print(ctl_table *t, FILE *f)
{
	int *width;

	if (t == NULL)
		return;
	if ((width = calloc((size_t)t->ncols, sizeof(*width))) != NULL) {
		for (size_t i = 0; i < t->n; i++) {
			int w = t->cells[i] ? text_string(NULL, t->cells[i]) : 0;

			if (w > width[i % (size_t)t->ncols])
				width[i % (size_t)t->ncols] = w;
		}
		for (size_t i = 0; i < t->n; i++) {
			int col = (int)(i % (size_t)t->ncols);
			int w   = text_string(f, t->cells[i] ? t->cells[i] : "");

			if (col == t->ncols - 1)
				fputc('\n', f);
			else
				fprintf(f, "%*s", width[col] - w + 2, "");
		}
		free(width);
	}
	for (size_t i = 0; i < t->n; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t);
}

void
ctl_human_bytes(char *out, size_t cap, double b)
{
	static const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
	int                u      = 0;

	while (b >= 1024 && u < 5) {
		b /= 1024;
		u++;
	}
	snprintf(out, cap, u == 0 ? "%.0f %s" : "%.1f %s", b, unit[u]);
}

void
ctl_state_text(const ProtobufCEnumDescriptor *d, int v, char *out, size_t cap)
{
	const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(d, v);
	char                      name[64];

	if (ev == NULL) {
		snprintf(out, cap, "%d", v);
		return;
	}
	ctl_enum_name(ev, name, sizeof(name));
	snprintf(out, cap, "%s (%d)", name, v);
}

const char *
ctl_job_type_name(uint32_t type)
{
	switch (type) {
	case 70:
		return "CreateRecoveryPoint";
	case 97:
		return "InitiateFailover";
	case 98:
		return "RevertFailover";
	case 99:
		return "CommitFailover";
	case 104:
		return "ReverseReplication";
	case 106:
		return "Replicate";
	case 124:
		return "InitiateFailback";
	default:
		return "?";
	}
}
