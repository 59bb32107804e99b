/*
 * throttle.h - a transfer rate cap (--max-transfer-rate): how long to wait
 * before moving more bytes. Pure arithmetic on a clock the caller reads,
 * so it is tested with a fake one.
 *
 * The average since an anchor is held at the cap. A stream that fell
 * behind (a stall, a slow primary) by more than FB_THROTTLE_CREDIT_MS is
 * re-anchored, so it never catches up in a burst above the cap: at most
 * FB_THROTTLE_CREDIT_MS worth of bytes go faster than the cap after a stall.
 */
#ifndef FAILBACK_THROTTLE_H
#define FAILBACK_THROTTLE_H

#include <stdint.h>

#define FB_THROTTLE_CREDIT_MS 1000u

typedef struct fb_throttle {
	uint64_t rate;   /* bytes per second; 0 = no cap */
	uint64_t t0_ms;  /* the anchor */
	uint64_t b0;     /* bytes done at the anchor */
	int      started;
} fb_throttle;

/* fb_throttle_wait_ms returns how many milliseconds to wait, at now_ms with
 * bytes_done moved so far, before moving more (0: go on). */
uint64_t fb_throttle_wait_ms(fb_throttle *t, uint64_t now_ms, uint64_t bytes_done);

#endif
