/*
 * throttle_test.c - --max-transfer-rate on a fake clock: the average is
 * held at the cap, and a stream that stalled does not burst above it to
 * catch up (at most FB_THROTTLE_CREDIT_MS worth of bytes go early).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "failback/throttle.h"

#define MIB (1024u * 1024u)

/* Moves `total` bytes in `chunk`s from now_ms, waiting as told; returns the
 * clock at the end. */
static uint64_t
move(fb_throttle *t, uint64_t now_ms, uint64_t *done, uint64_t total, uint64_t chunk)
{
	for (uint64_t end = *done + total; *done < end;) {
		uint64_t w = fb_throttle_wait_ms(t, now_ms, *done);

		if (w > 0) {
			now_ms += w;
			continue;
		}
		*done += chunk;
	}
	return now_ms;
}

static void
the_average_is_held_at_the_cap(void **state)
{
	fb_throttle t    = {.rate = 16 * MIB};
	uint64_t    done = 0;
	uint64_t    end;

	(void)state;
	end = move(&t, 1000, &done, 64 * MIB, 256 * 1024);
	/* 64 MiB at 16 MiB/s: 4 s, less the last chunk that needs no wait */
	assert_in_range(end - 1000, 3980, 4000);
}

static void
a_stall_is_not_made_up_by_a_burst(void **state)
{
	fb_throttle t    = {.rate = 1 * MIB};
	uint64_t    done = 0, now = 0, start;

	(void)state;
	now = move(&t, now, &done, 4 * MIB, 64 * 1024);
	now += 30000; /* a 30 s stall: nothing moved */
	start = now;
	now   = move(&t, now, &done, 10 * MIB, 64 * 1024);
	/* 10 MiB at 1 MiB/s after the stall: 10 s less the 1 s credit, not at once */
	assert_in_range(now - start, 8900, 9000);
}

static void
no_cap_never_waits(void **state)
{
	fb_throttle t = {.rate = 0};

	(void)state;
	assert_int_equal(fb_throttle_wait_ms(&t, 5, 1ull << 40), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(the_average_is_held_at_the_cap),
	    cmocka_unit_test(a_stall_is_not_made_up_by_a_burst),
	    cmocka_unit_test(no_cap_never_waits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
