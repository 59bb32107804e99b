/*
 * rp_bench.c - prints what recovery points cost on this machine: creation
 * throughput on a mixed-content image (random, text-like, zero regions),
 * the cost of a point of an unchanged disk, and bytes stored per
 * additional point with 1% of the blocks changed.
 *
 * usage: rp_bench [MiB] [dir]    (defaults 4096 and $TMPDIR or /tmp)
 * Not a test: it asserts nothing and only prints numbers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "failback/rp.h"
#include "image.h"

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
take(fb_db *db, fb_store *st, const char *what, uint64_t size)
{
	fb_rp_stats s = {0};
	fb_err      err;
	double      t0 = now_s(), dt;

	if (fb_rp_create(db, st, "bench", 0, NULL, &s, &err) != FB_RV_OK) {
		fprintf(stderr, "rp_bench: %s\n", err.msg);
		exit(1);
	}
	dt = now_s() - t0;
	printf("%-28s %7.2f s  %7.0f MiB/s of disk  read %6.0f MiB  new blocks %7llu  "
	       "stored %9.2f MiB\n",
	       what, dt, (double)size / dt / (1 << 20), (double)s.bytes_read / (1 << 20),
	       (unsigned long long)s.blocks_new, (double)s.bytes_stored / (1 << 20));
}

int
main(int argc, char **argv)
{
	uint64_t    mib = argc > 1 ? strtoull(argv[1], NULL, 10) : 4096;
	const char *tmp = argc > 2 ? argv[2] : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	uint64_t    size = mib << 20, nblocks = size / FB_BLOCK_SIZE;
	char        dir[512], path[600], img[600], cmd[700];
	const char *paths[1] = {img};
	fb_db      *db;
	fb_store   *st;
	fb_err      err;
	double      t0;

	snprintf(dir, sizeof(dir), "%s/rpbench.XXXXXX", tmp);
	if (mkdtemp(dir) == NULL)
		return 1;
	snprintf(img, sizeof(img), "%s/disk0.img", dir);
	t0 = now_s();
	if (fbt_image_make(img, size, 42) != 0)
		return 1;
	printf("rp_bench: %llu MiB image (40%% random, 35%% text-like, 25%% holes) made in "
	       "%.1f s; %ld cores\n",
	       (unsigned long long)mib, now_s() - t0, sysconf(_SC_NPROCESSORS_ONLN));
	snprintf(path, sizeof(path), "%s/state.db", dir);
	if (fb_db_open(&db, path, &err) != 0)
		return 1;
	snprintf(path, sizeof(path), "%s/blocks", dir);
	if (fb_store_open(&st, db, path, 0, &err) != 0 ||
	    fb_vm_add(db, "bench", paths, 1, 24, 1, 1, NULL, &err) != 0) {
		fprintf(stderr, "rp_bench: %s\n", err.msg);
		return 1;
	}
	take(db, st, "first point (all new)", size);
	take(db, st, "unchanged disk", size);
	fbt_image_mutate(img, nblocks / 100, 7);
	take(db, st, "1% of blocks changed", size);
	fbt_image_mutate(img, nblocks / 100, 8);
	take(db, st, "another 1% changed", size);
	fb_store_close(st);
	fb_db_close(db);
	snprintf(cmd, sizeof(cmd), "du -sm '%s/blocks' | sed 's/\\t.*/ MiB in the block store/'",
	         dir);
	if (system(cmd) != 0)
		return 1;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : 1;
}
