/*
 * rsd_test.c - ReplicationSettingData parsing: what WMI emits is accepted,
 * each kind of bad input gets the return value DESIGN §6 names, and no
 * entity is ever expanded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "failback/rsd.h"

#define HEAD "<INSTANCE CLASSNAME=\"Msvm_ReplicationSettingData\">"
#define TAIL "</INSTANCE>"
#define PROP(n, t, v) "<PROPERTY NAME=\"" n "\" TYPE=\"" t "\"><VALUE>" v "</VALUE></PROPERTY>"

static uint32_t
parse(const char *xml, fb_rsd *r, fb_err *err)
{
	return fb_rsd_parse(xml, strlen(xml), r, err);
}

static void
wmi_instance_with_system_properties_and_arrays_parses(void **state)
{
	const char *xml =
	    "<?xml version=\"1.0\"?>\n" HEAD
	    "<PROPERTY NAME=\"__PATH\" CLASSORIGIN=\"___SYSTEM\" TYPE=\"string\">"
	    "<VALUE>\\\\HOST\\root\\virtualization\\v2:Msvm_ReplicationSettingData</VALUE></PROPERTY>"
	    "<QUALIFIER NAME=\"dynamic\" TYPE=\"boolean\"><VALUE>TRUE</VALUE></QUALIFIER>"
	    PROP("PrimaryConnectionPoint", "string", "127.0.0.1")
	    PROP("RecoveryServerPortNumber", "uint16", "7413")
	    PROP("AuthenticationType", "uint16", "2")
	    PROP("CertificateThumbPrint", "string", "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01")
	    PROP("CompressionEnabled", "boolean", "TRUE")
	    PROP("ApplicationConsistentSnapshotInterval", "uint16", "1")
	    "<PROPERTY NAME=\"Notes\" TYPE=\"string\"></PROPERTY>"
	    "<PROPERTY.ARRAY NAME=\"IncludedDisks\" TYPE=\"string\"><VALUE.ARRAY>"
	    "<VALUE>Microsoft:ABC\\disk0.img</VALUE><VALUE>data &amp; logs.img</VALUE>"
	    "</VALUE.ARRAY></PROPERTY.ARRAY>" TAIL;
	fb_rsd r;
	fb_err err;

	(void)state;
	assert_int_equal(parse(xml, &r, &err), FB_RV_OK);
	assert_string_equal(r.primary_connection_point, "127.0.0.1");
	assert_int_equal(r.port, 7413);
	assert_int_equal(r.authentication_type, 2);
	assert_string_equal(r.thumbprint, "abcdef0123456789abcdef0123456789abcdef01");
	assert_int_equal(r.compression, 1);
	assert_int_equal(r.nincluded, 2);
	assert_string_equal(r.included[1], "data & logs.img");
	assert_true(fb_rsd_includes(&r, "disk0.img"));
	assert_false(fb_rsd_includes(&r, "disk1.img"));
}

static void
empty_string_means_relationship_settings(void **state)
{
	fb_rsd r;
	fb_err err;

	(void)state;
	assert_int_equal(parse("  \n", &r, &err), FB_RV_OK);
	assert_int_equal(r.compression, -1);
	assert_int_equal(r.nincluded, 0);
	assert_true(fb_rsd_includes(&r, "anything.img"));
}

static void
value_not_parsing_as_its_type_is_incorrect_data_type(void **state)
{
	const char *bad[] = {
	    HEAD PROP("RecoveryServerPortNumber", "uint16", "70000") TAIL,
	    HEAD PROP("CompressionEnabled", "boolean", "yes") TAIL,
	    HEAD PROP("RecoveryServerPortNumber", "string", "7413") TAIL, /* wrong TYPE */
	    HEAD PROP("SomethingElse", "uint32", "-1") TAIL,
	    HEAD PROP("LastReplicationTime", "datetime", "yesterday") TAIL,
	};
	fb_rsd r;
	fb_err err;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(parse(bad[i], &r, &err), FB_RV_INCORRECT_TYPE);
}

static void
malformed_or_foreign_xml_is_invalid_parameter(void **state)
{
	const char *bad[] = {
	    HEAD PROP("PrimaryConnectionPoint", "string", "x"),               /* unclosed */
	    "<INSTANCE CLASSNAME=\"Msvm_VirtualSystemSettingData\"></INSTANCE>", /* wrong class */
	    "<CLASS NAME=\"Msvm_ReplicationSettingData\"></CLASS>",             /* not an instance */
	    "not xml at all",
	    HEAD PROP("CertificateThumbPrint", "string", "nothex!") TAIL,
	    HEAD PROP("AuthenticationType", "uint16", "7") TAIL,
	};
	fb_rsd r;
	fb_err err;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(parse(bad[i], &r, &err), FB_RV_INVALID_PARAMETER);
}

static void
kerberos_is_not_supported(void **state)
{
	fb_rsd r;
	fb_err err;

	(void)state;
	assert_int_equal(parse(HEAD PROP("AuthenticationType", "uint16", "1") TAIL, &r, &err),
	                 FB_RV_NOT_SUPPORTED);
	assert_non_null(strstr(err.msg, "Kerberos"));
}

static void
entities_and_dtds_are_refused_never_expanded(void **state)
{
	const char *laughs =
	    "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">"
	    "<!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">]>" HEAD
	    PROP("PrimaryConnectionPoint", "string", "&lol2;") TAIL;
	const char *external = "<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]>" HEAD
	    PROP("PrimaryConnectionPoint", "string", "&e;") TAIL;
	fb_rsd r;
	fb_err err;

	(void)state;
	assert_int_equal(parse(laughs, &r, &err), FB_RV_INVALID_PARAMETER);
	assert_int_equal(parse(external, &r, &err), FB_RV_INVALID_PARAMETER);
	assert_string_equal(r.primary_connection_point, "");
}

static void
oversize_settings_are_refused(void **state)
{
	static char big[FB_RSD_MAX + 2];
	fb_rsd      r;
	fb_err      err;

	(void)state;
	memset(big, ' ', sizeof(big) - 1);
	assert_int_equal(fb_rsd_parse(big, sizeof(big) - 1, &r, &err), FB_RV_INVALID_PARAMETER);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(wmi_instance_with_system_properties_and_arrays_parses),
	    cmocka_unit_test(empty_string_means_relationship_settings),
	    cmocka_unit_test(value_not_parsing_as_its_type_is_incorrect_data_type),
	    cmocka_unit_test(malformed_or_foreign_xml_is_invalid_parameter),
	    cmocka_unit_test(kerberos_is_not_supported),
	    cmocka_unit_test(entities_and_dtds_are_refused_never_expanded),
	    cmocka_unit_test(oversize_settings_are_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
