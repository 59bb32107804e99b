/*
 * rsd.c - the CIM-XML parser of rsd.h. Expat is fed the whole string with
 * DTDs refused outright, so neither internal nor external entities can
 * ever be declared, let alone expanded.
 */
#include <ctype.h>
#include <errno.h>
#include <expat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "failback/rsd.h"

#define VALUE_MAX 1024

enum ptype { T_OTHER, T_STRING, T_BOOL, T_UINT16, T_UINT32, T_UINT64, T_SINT, T_REAL,
             T_DATETIME, T_CHAR16 };

struct parse {
	XML_Parser p;
	fb_rsd    *out;
	fb_err    *err;
	uint32_t   rv;
	int        depth;
	int        in_instance;
	int        in_prop, in_array, in_value;
	char       name[128];
	enum ptype type;
	char       value[VALUE_MAX + 1];
	size_t     vlen;
	int        has_value;
};

static const struct {
	const char *name;
	enum ptype  t;
} type_names[] = {
    {"string", T_STRING},   {"boolean", T_BOOL},  {"uint8", T_UINT16},   {"uint16", T_UINT16},
    {"uint32", T_UINT32},   {"uint64", T_UINT64}, {"sint8", T_SINT},     {"sint16", T_SINT},
    {"sint32", T_SINT},     {"sint64", T_SINT},   {"real32", T_REAL},    {"real64", T_REAL},
    {"datetime", T_DATETIME}, {"char16", T_CHAR16},
};

static void
stop(struct parse *ps, uint32_t rv, const char *fmt, const char *arg)
{
	if (ps->rv != FB_RV_OK)
		return;
	ps->rv = rv;
	fb_err_set(ps->err, rv, fmt, arg);
	XML_StopParser(ps->p, XML_FALSE);
}

static const char *
attr(const XML_Char **atts, const char *name)
{
	for (int i = 0; atts[i] != NULL; i += 2)
		if (strcmp(atts[i], name) == 0)
			return atts[i + 1];
	return NULL;
}

static int
parse_uint(const char *s, uint64_t max, uint64_t *v)
{
	char *end;

	while (isspace((unsigned char)*s))
		s++;
	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	*v    = strtoull(s, &end, 10);
	while (isspace((unsigned char)*end))
		end++;
	return errno == 0 && *end == '\0' && *v <= max ? 0 : -1;
}

/* Does the text parse as the declared CIM type? */
static int
value_ok(enum ptype t, const char *s)
{
	uint64_t v;
	char    *end;

	switch (t) {
	case T_BOOL:
		return strcasecmp(s, "true") == 0 || strcasecmp(s, "false") == 0;
	case T_UINT16:
		return parse_uint(s, 65535, &v) == 0;
	case T_UINT32:
		return parse_uint(s, 0xffffffffu, &v) == 0;
	case T_UINT64:
		return parse_uint(s, UINT64_MAX, &v) == 0;
	case T_SINT:
		errno = 0;
		(void)strtoll(s, &end, 10);
		return errno == 0 && end != s && *end == '\0';
	case T_REAL:
		errno = 0;
		(void)strtod(s, &end);
		return errno == 0 && end != s && *end == '\0';
	case T_DATETIME: /* yyyymmddhhmmss.mmmmmmsutc or an interval ddddddddhhmmss.mmmmmm:000 */
		if (strlen(s) != 25)
			return 0;
		for (int i = 0; i < 25; i++)
			if (i != 14 && i != 21 && !isdigit((unsigned char)s[i]) && s[i] != '*')
				return 0;
		return s[14] == '.' && (s[21] == '+' || s[21] == '-' || s[21] == ':');
	default:
		return 1;
	}
}

/* Copies a string property, refusing one longer than its CIM MaxLen. */
static void
set_str(struct parse *ps, char *dst, size_t size, const char *v)
{
	size_t n = strlen(v);

	if (n >= size) {
		stop(ps, FB_RV_INVALID_PARAMETER, "property %s is longer than allowed", ps->name);
		return;
	}
	memcpy(dst, v, n + 1);
}

static void
apply(struct parse *ps)
{
	fb_rsd     *r = ps->out;
	const char *v = ps->value;
	uint64_t    n;

	if (!ps->has_value) /* NULL: leave the default */
		return;
	if (!value_ok(ps->type, v)) {
		char what[200];
		snprintf(what, sizeof(what), "%.100s", ps->name);
		stop(ps, FB_RV_INCORRECT_TYPE, "property %s: value does not parse as its TYPE", what);
		return;
	}
#define EXPECT(t)                                                                              \
	if (ps->type != (t)) {                                                                 \
		stop(ps, FB_RV_INCORRECT_TYPE, "property %s has the wrong TYPE", ps->name);    \
		return;                                                                        \
	}
	if (strcmp(ps->name, "PrimaryConnectionPoint") == 0) {
		EXPECT(T_STRING);
		set_str(ps, r->primary_connection_point, sizeof(r->primary_connection_point), v);
	} else if (strcmp(ps->name, "RecoveryConnectionPoint") == 0) {
		EXPECT(T_STRING);
		set_str(ps, r->recovery_connection_point, sizeof(r->recovery_connection_point), v);
	} else if (strcmp(ps->name, "RecoveryServerPortNumber") == 0) {
		EXPECT(T_UINT16);
		parse_uint(v, 65535, &n);
		r->port = (uint32_t)n;
	} else if (strcmp(ps->name, "AuthenticationType") == 0) {
		EXPECT(T_UINT16);
		parse_uint(v, 65535, &n);
		r->authentication_type = (uint32_t)n;
	} else if (strcmp(ps->name, "CertificateThumbPrint") == 0) {
		size_t k = 0;
		EXPECT(T_STRING);
		for (const char *c = v; *c; c++) {
			if (*c == ' ' || *c == ':')
				continue;
			if (!isxdigit((unsigned char)*c) || k >= sizeof(r->thumbprint) - 1) {
				stop(ps, FB_RV_INVALID_PARAMETER, "%s is not a hex thumbprint",
				     "CertificateThumbPrint");
				return;
			}
			r->thumbprint[k++] = (char)tolower((unsigned char)*c);
		}
		r->thumbprint[k] = '\0';
		if (k != 0 && k != 40 && k != 64)
			stop(ps, FB_RV_INVALID_PARAMETER, "%s must be a SHA-1 or SHA-256 thumbprint",
			     "CertificateThumbPrint");
	} else if (strcmp(ps->name, "CompressionEnabled") == 0) {
		EXPECT(T_BOOL);
		r->compression = strcasecmp(v, "true") == 0;
	} else if (strcmp(ps->name, "IncludedDisks") == 0) {
		EXPECT(T_STRING);
		if (r->nincluded == FB_RSD_MAX_DISKS) {
			stop(ps, FB_RV_INVALID_PARAMETER, "%s has too many entries", "IncludedDisks");
			return;
		}
		set_str(ps, r->included[r->nincluded++], sizeof(r->included[0]), v);
	}
#undef EXPECT
}

static void XMLCALL
on_start(void *data, const XML_Char *el, const XML_Char **atts)
{
	struct parse *ps = data;
	const char   *s;

	ps->depth++;
	if (ps->depth == 1) {
		if (strcmp(el, "INSTANCE") != 0) {
			stop(ps, FB_RV_INVALID_PARAMETER, "expected an INSTANCE element, not %s", el);
			return;
		}
		s = attr(atts, "CLASSNAME");
		if (s == NULL || strcmp(s, "Msvm_ReplicationSettingData") != 0)
			stop(ps, FB_RV_INVALID_PARAMETER,
			     "the instance is of class %s, not Msvm_ReplicationSettingData",
			     s ? s : "(none)");
		ps->in_instance = 1;
		return;
	}
	if (ps->depth == 2 && (strcmp(el, "PROPERTY") == 0 || strcmp(el, "PROPERTY.ARRAY") == 0)) {
		const char *type = attr(atts, "TYPE");

		s = attr(atts, "NAME");
		if (s == NULL || type == NULL) {
			stop(ps, FB_RV_INVALID_PARAMETER, "%s without NAME or TYPE", el);
			return;
		}
		snprintf(ps->name, sizeof(ps->name), "%s", s);
		ps->type = T_OTHER;
		for (size_t i = 0; i < sizeof(type_names) / sizeof(type_names[0]); i++)
			if (strcmp(type, type_names[i].name) == 0)
				ps->type = type_names[i].t;
		ps->in_prop  = 1;
		ps->in_array = el[8] == '.';
		return;
	}
	if (ps->in_prop && strcmp(el, "VALUE") == 0) {
		ps->in_value = 1;
		ps->vlen     = 0;
		ps->value[0] = '\0';
	}
}

static void XMLCALL
on_end(void *data, const XML_Char *el)
{
	struct parse *ps = data;

	if (ps->in_value && strcmp(el, "VALUE") == 0) {
		ps->in_value  = 0;
		ps->has_value = 1;
		if (ps->in_array) { /* each element on its own */
			apply(ps);
			ps->has_value = 0;
		}
	} else if (ps->depth == 2 && ps->in_prop) {
		if (!ps->in_array)
			apply(ps);
		ps->in_prop   = 0;
		ps->has_value = 0;
	}
	ps->depth--;
}

static void XMLCALL
on_text(void *data, const XML_Char *s, int len)
{
	struct parse *ps = data;

	if (!ps->in_value)
		return;
	if (ps->vlen + (size_t)len > VALUE_MAX) {
		stop(ps, FB_RV_INVALID_PARAMETER, "property %s: value too long", ps->name);
		return;
	}
	memcpy(ps->value + ps->vlen, s, (size_t)len);
	ps->vlen += (size_t)len;
	ps->value[ps->vlen] = '\0';
}

static void XMLCALL
on_doctype(void *data, const XML_Char *name, const XML_Char *sysid, const XML_Char *pubid,
           int has_internal)
{
	(void)name;
	(void)sysid;
	(void)pubid;
	(void)has_internal;
	stop(data, FB_RV_INVALID_PARAMETER, "%s", "a DTD is not accepted in the settings");
}

static void XMLCALL
on_entity(void *data, const XML_Char *name, int is_param, const XML_Char *value, int len,
          const XML_Char *base, const XML_Char *sysid, const XML_Char *pubid,
          const XML_Char *notation)
{
	(void)is_param;
	(void)value;
	(void)len;
	(void)base;
	(void)sysid;
	(void)pubid;
	(void)notation;
	stop(data, FB_RV_INVALID_PARAMETER, "entity %s: entities are not accepted", name);
}

uint32_t
fb_rsd_parse(const char *xml, size_t len, fb_rsd *out, fb_err *err)
{
	struct parse ps;
	fb_rsd       r;

	memset(&r, 0, sizeof(r));
	r.compression = -1;
	*out          = r;
	if (len > FB_RSD_MAX)
		return fb_err_set(err, FB_RV_INVALID_PARAMETER,
		                  "ReplicationSettingData is %zu bytes; the limit is %u", len,
		                  FB_RSD_MAX);
	{
		size_t i = 0;
		while (i < len && isspace((unsigned char)xml[i]))
			i++;
		if (i == len) /* "" means the relationship's own settings */
			return FB_RV_OK;
	}
	memset(&ps, 0, sizeof(ps));
	ps.out = &r;
	ps.err = err;
	if ((ps.p = XML_ParserCreate("UTF-8")) == NULL)
		return fb_err_set(err, FB_RV_OUT_OF_MEMORY, "out of memory");
	XML_SetUserData(ps.p, &ps);
	XML_SetElementHandler(ps.p, on_start, on_end);
	XML_SetCharacterDataHandler(ps.p, on_text);
	XML_SetStartDoctypeDeclHandler(ps.p, on_doctype);
	XML_SetEntityDeclHandler(ps.p, on_entity);
	XML_SetParamEntityParsing(ps.p, XML_PARAM_ENTITY_PARSING_NEVER);
	if (XML_Parse(ps.p, xml, (int)len, XML_TRUE) == XML_STATUS_ERROR && ps.rv == FB_RV_OK) {
		ps.rv = fb_err_set(err, FB_RV_INVALID_PARAMETER,
		                   "ReplicationSettingData is not well-formed XML: %s at line %lu",
		                   XML_ErrorString(XML_GetErrorCode(ps.p)),
		                   (unsigned long)XML_GetCurrentLineNumber(ps.p));
	}
	XML_ParserFree(ps.p);
	if (ps.rv == FB_RV_OK && !ps.in_instance)
		ps.rv = fb_err_set(err, FB_RV_INVALID_PARAMETER, "no INSTANCE element");
	if (ps.rv == FB_RV_OK && r.authentication_type == 1)
		ps.rv = fb_err_set(err, FB_RV_NOT_SUPPORTED,
		                   "AuthenticationType 1 (Kerberos) is not supported; use 2 "
		                   "(certificate)");
	if (ps.rv == FB_RV_OK && r.authentication_type > 2)
		ps.rv = fb_err_set(err, FB_RV_INVALID_PARAMETER, "AuthenticationType %u is unknown",
		                   r.authentication_type);
	if (ps.rv == FB_RV_OK)
		*out = r;
	return ps.rv;
}

int
fb_rsd_includes(const fb_rsd *rsd, const char *name)
{
	size_t n = strlen(name);

	if (rsd->nincluded == 0)
		return 1;
	for (size_t i = 0; i < rsd->nincluded; i++) {
		const char *e = rsd->included[i];
		size_t      k = strlen(e);

		if (strcmp(e, name) == 0)
			return 1;
		if (k > n && strcmp(e + k - n, name) == 0 && (e[k - n - 1] == '/' || e[k - n - 1] == '\\'))
			return 1;
	}
	return 0;
}
