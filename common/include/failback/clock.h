/*
 * clock.h - the two clocks failback uses: monotonic milliseconds for
 * deadlines and rates, Unix milliseconds for what operators read.
 */
#ifndef FAILBACK_CLOCK_H
#define FAILBACK_CLOCK_H

#include <pthread.h>
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

/* fb_clock_cond_init makes cv wait on the monotonic clock, so a step of
 * the wall clock never lengthens or shortens a wait. */
static inline int
fb_clock_cond_init(pthread_cond_t *cv)
{
	pthread_condattr_t a;
	int                rc;

	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	rc = pthread_cond_init(cv, &a);
	pthread_condattr_destroy(&a);
	return rc;
}

/* fb_clock_deadline gives the monotonic time ms from now, for
 * pthread_cond_timedwait on a cv made by fb_clock_cond_init. */
static inline void
fb_clock_deadline(struct timespec *ts, long ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_nsec += (ms % 1000) * 1000000L;
	ts->tv_sec += ms / 1000 + ts->tv_nsec / 1000000000L;
	ts->tv_nsec %= 1000000000L;
}

#endif
