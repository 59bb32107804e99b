/*
 * err.c - return-value names and the translation tables for foreign error
 * numbers (NNG, errno). Keeping the tables here means a given NNG error
 * always surfaces to operators as the same Hyper-V return value.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <nng/nng.h>

#include "failback/err.h"

static const struct {
	uint32_t    rv;
	const char *name;
} rv_names[] = {
    {FB_RV_OK, "Completed with No Error"},
    {FB_RV_JOB_STARTED, "Method Parameters Checked - Job Started"},
    {FB_RV_FAILED, "Failed"},
    {FB_RV_ACCESS_DENIED, "Access Denied"},
    {FB_RV_NOT_SUPPORTED, "Not Supported"},
    {FB_RV_STATUS_UNKNOWN, "Status is unknown"},
    {FB_RV_TIMEOUT, "Timeout"},
    {FB_RV_INVALID_PARAMETER, "Invalid parameter"},
    {FB_RV_SYSTEM_IN_USE, "System is in use"},
    {FB_RV_INVALID_STATE, "Invalid state for this operation"},
    {FB_RV_INCORRECT_TYPE, "Incorrect data type"},
    {FB_RV_NOT_AVAILABLE, "System is not available"},
    {FB_RV_OUT_OF_MEMORY, "Out of memory"},
    {FB_RV_FILE_NOT_FOUND, "File not found"},
};

const char *
fb_rv_name(uint32_t rv)
{
	for (size_t i = 0; i < sizeof(rv_names) / sizeof(rv_names[0]); i++)
		if (rv_names[i].rv == rv)
			return rv_names[i].name;
	return "Unknown";
}

int
fb_rv_ok(uint32_t rv)
{
	return rv == FB_RV_OK || rv == FB_RV_JOB_STARTED;
}

uint32_t
fb_err_set(fb_err *err, uint32_t rv, const char *fmt, ...)
{
	if (err != NULL) {
		va_list ap;
		err->rv = rv;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
	}
	return rv;
}

static const struct {
	int      nng;
	uint32_t rv;
} nng_table[] = {
    {NNG_ETIMEDOUT, FB_RV_TIMEOUT},
    {NNG_ECONNREFUSED, FB_RV_NOT_AVAILABLE},
    {NNG_EUNREACHABLE, FB_RV_NOT_AVAILABLE},
    {NNG_ECONNRESET, FB_RV_NOT_AVAILABLE},
    {NNG_ECONNABORTED, FB_RV_NOT_AVAILABLE},
    {NNG_ECONNSHUT, FB_RV_NOT_AVAILABLE},
    {NNG_ECLOSED, FB_RV_NOT_AVAILABLE},
    {NNG_EADDRINVAL, FB_RV_INVALID_PARAMETER},
    {NNG_EINVAL, FB_RV_INVALID_PARAMETER},
    {NNG_EMSGSIZE, FB_RV_INVALID_PARAMETER},
    {NNG_ENOTSUP, FB_RV_NOT_SUPPORTED},
    {NNG_ENOMEM, FB_RV_OUT_OF_MEMORY},
    {NNG_ENOENT, FB_RV_FILE_NOT_FOUND},
    {NNG_EPERM, FB_RV_ACCESS_DENIED},
    {NNG_EPEERAUTH, FB_RV_ACCESS_DENIED},
    {NNG_ECRYPTO, FB_RV_ACCESS_DENIED},
    {NNG_EADDRINUSE, FB_RV_SYSTEM_IN_USE},
    {NNG_EBUSY, FB_RV_SYSTEM_IN_USE},
};

uint32_t
fb_rv_from_nng(int nng_rv)
{
	for (size_t i = 0; i < sizeof(nng_table) / sizeof(nng_table[0]); i++)
		if (nng_table[i].nng == nng_rv)
			return nng_table[i].rv;
	return FB_RV_FAILED;
}

uint32_t
fb_err_nng(fb_err *err, int nng_rv, const char *what)
{
	return fb_err_set(err, fb_rv_from_nng(nng_rv), "%s: %s", what, nng_strerror(nng_rv));
}

uint32_t
fb_err_errno(fb_err *err, int errnum, const char *what)
{
	uint32_t rv;

	switch (errnum) {
	case ENOENT:
	case ENOTDIR:
		rv = FB_RV_FILE_NOT_FOUND;
		break;
	case EACCES:
	case EPERM:
		rv = FB_RV_ACCESS_DENIED;
		break;
	case ENOMEM:
		rv = FB_RV_OUT_OF_MEMORY;
		break;
	case EINVAL:
		rv = FB_RV_INVALID_PARAMETER;
		break;
	default:
		rv = FB_RV_FAILED;
		break;
	}
	return fb_err_set(err, rv, "%s: %s", what, strerror(errnum));
}
