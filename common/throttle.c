/* throttle.c - see throttle.h. */
#include "failback/throttle.h"

uint64_t
fb_throttle_wait_ms(fb_throttle *t, uint64_t now_ms, uint64_t bytes_done)
{
	uint64_t due;

	if (t->rate == 0)
		return 0;
	if (!t->started || bytes_done < t->b0) {
		t->started = 1;
		t->t0_ms   = now_ms;
		t->b0      = bytes_done;
		return 0;
	}
	due = t->t0_ms + (bytes_done - t->b0) * 1000 / t->rate;
	if (now_ms > due + FB_THROTTLE_CREDIT_MS) {
		/* behind by more than the credit: keep only the credit */
		t->t0_ms = now_ms - FB_THROTTLE_CREDIT_MS;
		t->b0    = bytes_done;
		return 0;
	}
	return due > now_ms ? due - now_ms : 0;
}
