/*
 * err.h - failback's error model.
 *
 * Every function in common/ that can fail returns a Hyper-V return value
 * (DESIGN §6): 0 on success, otherwise one of the FB_RV_* codes below, and
 * writes a human-readable description into the caller's fb_err. The same
 * number and text travel in an RPC reply, land in a job's ErrorCode and
 * ErrorDescription, and are printed by failbackctl, so an error is
 * translated once, where it enters (fb_err_nng, fb_err_errno), and never again.
 */
#ifndef FAILBACK_ERR_H
#define FAILBACK_ERR_H

#include <stdint.h>

enum {
	FB_RV_OK                = 0,
	FB_RV_JOB_STARTED       = 4096,
	FB_RV_FAILED            = 32768,
	FB_RV_ACCESS_DENIED     = 32769,
	FB_RV_NOT_SUPPORTED     = 32770,
	FB_RV_STATUS_UNKNOWN    = 32771,
	FB_RV_TIMEOUT           = 32772,
	FB_RV_INVALID_PARAMETER = 32773,
	FB_RV_SYSTEM_IN_USE     = 32774,
	FB_RV_INVALID_STATE     = 32775,
	FB_RV_INCORRECT_TYPE    = 32776,
	FB_RV_NOT_AVAILABLE     = 32777,
	FB_RV_OUT_OF_MEMORY     = 32778,
	FB_RV_FILE_NOT_FOUND    = 32779,
};

#define FB_ERR_MSG_MAX 512

typedef struct fb_err {
	uint32_t rv;
	char     msg[FB_ERR_MSG_MAX];
} fb_err;

/* fb_rv_name returns Hyper-V's name for a return value ("Access Denied"),
 * or "Unknown" for a number outside the table. Never NULL. */
const char *fb_rv_name(uint32_t rv);

/* fb_rv_ok is true for the two success values, 0 and 4096. */
int fb_rv_ok(uint32_t rv);

/* fb_err_set records rv and a printf-style description in err (which may be
 * NULL) and returns rv, so a failure path reads
 * `return fb_err_set(err, FB_RV_INVALID_PARAMETER, "...")`. */
uint32_t fb_err_set(fb_err *err, uint32_t rv, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* fb_err_nng translates an NNG error number by table and describes it as
 * "<what>: <nng text>". */
uint32_t fb_err_nng(fb_err *err, int nng_rv, const char *what);

/* fb_err_errno translates an errno value by table (ENOENT → File not found,
 * EACCES → Access Denied, ENOMEM → Out of memory, else Failed). */
uint32_t fb_err_errno(fb_err *err, int errnum, const char *what);

/* fb_rv_from_nng is the table behind fb_err_nng. */
uint32_t fb_rv_from_nng(int nng_rv);

#endif
