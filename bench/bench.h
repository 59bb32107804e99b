/*
 * bench.h - what the benches share: a monotonic clock in seconds and
 * dropping the page cache before a timed phase (root only; a bench says
 * "warm" when it could not).
 */
#ifndef FB_BENCH_H
#define FB_BENCH_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
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

/* A VM writes n blocks at random (seeded) through the qcow2 image at
 * image (qemu-io), as its QEMU would: a bitmap in it sees them. Returns 0,
 * or -1 when qemu-io failed. */
static inline int
bench_vm_writes_to(const char *image, uint64_t n, uint64_t nblocks, unsigned seed)
{
	char  cmd[1600];
	FILE *q;

	snprintf(cmd, sizeof(cmd), "qemu-io -f qcow2 '%s' >/dev/null", image);
	if ((q = popen(cmd, "w")) == NULL)
		return -1;
	srand(seed);
	for (uint64_t i = 0; i < n; i++)
		fprintf(q, "write -P %d %llu 64k\n", rand() % 255 + 1,
		        (unsigned long long)((uint64_t)rand() % nblocks) * 65536);
	return pclose(q) == 0 ? 0 : -1;
}

/* bench_vm_writes_to through the qcow2 wrapper of a tracked raw disk. */
static inline int
bench_vm_writes(const char *disk, uint64_t n, uint64_t nblocks, unsigned seed)
{
	char wrapper[1200];

	snprintf(wrapper, sizeof(wrapper), "%s.qcow2", disk);
	return bench_vm_writes_to(wrapper, n, nblocks, seed);
}

#endif
