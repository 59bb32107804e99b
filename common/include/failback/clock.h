/*
 * clock.h - the two clocks failback uses: monotonic milliseconds for
 * deadlines and rates, Unix milliseconds for what operators read.
 */
#ifndef FAILBACK_CLOCK_H
#define FAILBACK_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t
fb_clock_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static inline int64_t
fb_clock_unix_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + (int64_t)ts.tv_nsec / 1000000;
}

#endif
