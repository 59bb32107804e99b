/*
 * output.c - prints any protobuf-c message, driven by its descriptor, as
 * indented "field: value" text or as one JSON object. Enums print as
 * Hyper-V's numbers in JSON (the automation contract) and as
 * "NAME (number)" in text; bytes print as hex. Strings come from an agent:
 * control characters are escaped in text, so none reaches the terminal.
 */
#include <inttypes.h>
#include <string.h>

#include "ctl.h"

void
ctl_print_json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; s != NULL && *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch == '\n')
			fputs("\\n", f);
		else if (ch < 0x20)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

void
ctl_print_text_string(FILE *f, const char *s)
{
	for (; s != NULL && *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '\\')
			fputs("\\\\", f);
		else if (ch < 0x20 || ch == 0x7f)
			fprintf(f, "\\x%02x", ch);
		else
			fputc(ch, f);
	}
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
		fprintf(f, "%" PRId64, *(const int64_t *)p);
		break;
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		fprintf(f, "%" PRIu64, *(const uint64_t *)p);
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
		int                        v  = *(const int *)p;
		const ProtobufCEnumValue *ev =
		    protobuf_c_enum_descriptor_get_value(fd->descriptor, v);
		if (json || ev == NULL)
			fprintf(f, "%d", v);
		else
			fprintf(f, "%s (%d)", ev->name, v);
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
		fprintf(f, "%*s%s: ", indent, "", fd->name);
		print_value(f, fd, base, 0, indent);
		if (fd->type != PROTOBUF_C_TYPE_MESSAGE ||
		    *(ProtobufCMessage *const *)base == NULL)
			fputc('\n', f);
	}
}
