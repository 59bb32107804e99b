/*
 * bench.h - what the benches share: a monotonic clock in seconds and
 * dropping the page cache before a timed phase (root only; a bench says
 * "warm" when it could not).
 */
#ifndef FB_BENCH_H
#define FB_BENCH_H

#include <stdio.h>
#include <time.h>
#include <unistd.h>

static inline double
bench_now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Returns 1 when the page cache was dropped, 0 when it stays warm. */
static inline int
bench_drop_caches(void)
{
	FILE *f;

	sync();
	if ((f = fopen("/proc/sys/vm/drop_caches", "w")) == NULL)
		return 0;
	fputs("3\n", f);
	return fclose(f) == 0;
}

#endif
