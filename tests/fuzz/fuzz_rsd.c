/*
 * fuzz_rsd.c - the CIM-XML ReplicationSettingData parser (seeds in
 * corpus/rsd) and the settings-file parser.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "failback/config.h"
#include "failback/rsd.h"

int    LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
size_t fuzz_builtin_seeds(uint8_t ***seeds, size_t **lens);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char *a, *b;
	static const fb_config_key keys[] = {{"data_dir", &a, ""}, {"log_level", &b, ""}};
	fb_rsd       r;
	fb_err       err;
	uint32_t     rv = fb_rsd_parse((const char *)data, size, &r, &err);

	if (rv != FB_RV_OK && rv != FB_RV_INVALID_PARAMETER && rv != FB_RV_INCORRECT_TYPE &&
	    rv != FB_RV_NOT_SUPPORTED)
		abort();
	if (rv == FB_RV_OK && r.nincluded > FB_RSD_MAX_DISKS)
		abort();
	fb_config_parse((const char *)data, size, keys, 2, "fuzz", &err);
	fb_config_free(keys, 2);
	return 0;
}

size_t
fuzz_builtin_seeds(uint8_t ***seeds, size_t **lens)
{
	*seeds = NULL;
	*lens  = NULL;
	return 0;
}
