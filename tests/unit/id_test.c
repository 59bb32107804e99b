/*
 * id_test.c - what a VM may be called and how it may be named in a call:
 * names as Hyper-V allows them (spaces, any script), GUIDs, and CIM object
 * paths of Msvm_ComputerSystem, with and without the host and namespace.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "failback/id.h"

#define GUID "0b7c9f4e-6a5d-4c1b-9e8f-2d3a4b5c6d7e"

static void
names_with_spaces_and_any_script_are_vm_names(void **state)
{
	(void)state;
	assert_true(fb_vm_name_valid("web01"));
	assert_true(fb_vm_name_valid("SQL Server 2019 (prod)"));
	assert_true(fb_vm_name_valid("Köln-Fileserver"));
	assert_true(fb_vm_name_valid("数据库服务器"));
	assert_true(fb_vm_name_valid("-starts-with-a-dash"));
	assert_true(fb_vm_name_valid("é"));
	/* 100 characters of two bytes each: the limit is in characters. */
	{
		char s[210] = "";

		for (int i = 0; i < 100; i++)
			strcat(s, "\xc3\xa9");
		assert_true(fb_vm_name_valid(s));
		strcat(s, "e");
		assert_false(fb_vm_name_valid(s));
	}
}

static void
names_that_would_mislead_are_refused(void **state)
{
	(void)state;
	assert_false(fb_vm_name_valid(""));
	assert_false(fb_vm_name_valid(NULL));
	assert_false(fb_vm_name_valid(" web"));
	assert_false(fb_vm_name_valid("web "));
	assert_false(fb_vm_name_valid("a/b"));
	assert_false(fb_vm_name_valid("a\\b"));
	assert_false(fb_vm_name_valid("a\"b"));
	assert_false(fb_vm_name_valid("a:b"));
	assert_false(fb_vm_name_valid("line\nbreak"));
	assert_false(fb_vm_name_valid("esc\x1b[31m"));
	assert_false(fb_vm_name_valid("c1\xc2\x9b"));
	assert_false(fb_vm_name_valid("\xff\xfe"));         /* not UTF-8 */
	assert_false(fb_vm_name_valid("\xc0\xaf"));         /* an overlong '/' */
	assert_false(fb_vm_name_valid("\xed\xa0\x80"));     /* a surrogate */
	assert_false(fb_vm_name_valid(GUID));               /* a GUID names a VM by id */
}

static void
cim_object_paths_give_the_guid(void **state)
{
	char id[FB_ID_LEN + 1];

	(void)state;
	assert_int_equal(
	    fb_vm_ref_parse("Msvm_ComputerSystem.CreationClassName=\"Msvm_ComputerSystem\","
	                    "Name=\"" GUID "\"",
	                    id, sizeof(id)),
	    1);
	assert_string_equal(id, GUID);
	memset(id, 0, sizeof(id));
	assert_int_equal(fb_vm_ref_parse("\\\\HV01\\root\\virtualization\\v2:Msvm_ComputerSystem."
	                                 "Name=\"" GUID "\",CreationClassName=\"Msvm_ComputerSystem\"",
	                                 id, sizeof(id)),
	                 1);
	assert_string_equal(id, GUID);
	assert_int_equal(fb_vm_ref_parse("root\\virtualization\\v2:Msvm_ComputerSystem."
	                                 "CreationClassName=\"Msvm_ComputerSystem\",Name=\"" GUID
	                                 "\"",
	                                 id, sizeof(id)),
	                 1);
	/* What the product prints round-trips. */
	{
		char path[FB_VM_CIM_PATH_MAX];

		fb_vm_cim_path(GUID, path, sizeof(path));
		assert_int_equal(fb_vm_ref_parse(path, id, sizeof(id)), 1);
		assert_string_equal(id, GUID);
	}
}

static void
names_and_guids_are_not_paths_and_bad_paths_are_named(void **state)
{
	char id[FB_ID_LEN + 1] = "untouched";

	(void)state;
	assert_int_equal(fb_vm_ref_parse("web01", id, sizeof(id)), 0);
	assert_int_equal(fb_vm_ref_parse(GUID, id, sizeof(id)), 0);
	assert_int_equal(fb_vm_ref_parse("Msvm_ComputerSystem.web", id, sizeof(id)), 0); /* a name */
	assert_string_equal(id, "untouched");
	/* Another class, a missing key, a name that is not a GUID, junk after it. */
	assert_int_equal(fb_vm_ref_parse("Msvm_ComputerSystem.CreationClassName=\"Msvm_Other\","
	                                 "Name=\"" GUID "\"",
	                                 id, sizeof(id)),
	                 -1);
	assert_int_equal(fb_vm_ref_parse("Msvm_ComputerSystem.Name=\"" GUID "\"", id, sizeof(id)),
	                 -1);
	assert_int_equal(fb_vm_ref_parse("Msvm_ComputerSystem.CreationClassName=\"Msvm_"
	                                 "ComputerSystem\",Name=\"web01\"",
	                                 id, sizeof(id)),
	                 -1);
	assert_int_equal(fb_vm_ref_parse("Msvm_ComputerSystem.CreationClassName=\"Msvm_"
	                                 "ComputerSystem\",Name=\"" GUID "\"x",
	                                 id, sizeof(id)),
	                 -1);
	assert_int_equal(fb_vm_ref_parse("\\\\HV01\\root\\cimv2:Msvm_ComputerSystem.Creation"
	                                 "ClassName=\"Msvm_ComputerSystem\",Name=\"" GUID "\"",
	                                 id, sizeof(id)),
	                 -1);
	assert_string_equal(id, "untouched");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(names_with_spaces_and_any_script_are_vm_names),
	    cmocka_unit_test(names_that_would_mislead_are_refused),
	    cmocka_unit_test(cim_object_paths_give_the_guid),
	    cmocka_unit_test(names_and_guids_are_not_paths_and_bad_paths_are_named),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
