/*
 * rp_test.c - VMs and recovery points: registration checks, points that
 * read back byte-for-byte, deduplication, RecoveryHistory pruning, sparse
 * disks, the scan around and through the page cache, a disk that changes
 * size, and crash safety proved by failing every
 * write, fsync and commit of taking and of removing a point in turn.
 */
#define _GNU_SOURCE /* O_DIRECT, mincore */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "failback/disk.h"
#include "failback/fsops.h"
#include "failback/pb.h"
#include "failback/rp.h"
#include "image.h"

static char      dir[256], dbpath[300], blocks[300], img[300], v1[300];
static fb_db    *db;
static fb_store *st;

static void
reopen(void)
{
	fb_err err;

	fb_store_close(st);
	fb_db_close(db);
	assert_int_equal(fb_db_open(&db, dbpath, &err), FB_RV_OK);
	assert_int_equal(fb_store_open(&st, db, blocks, 0, &err), FB_RV_OK);
}

static int
setup(void **state)
{
	fb_err err;

	(void)state;
	snprintf(dir, sizeof(dir), "%s/fbrp.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(dbpath, sizeof(dbpath), "%s/state.db", dir);
	snprintf(blocks, sizeof(blocks), "%s/blocks", dir);
	snprintf(img, sizeof(img), "%s/disk0.img", dir);
	snprintf(v1, sizeof(v1), "%s/disk0.v1", dir);
	if (fb_db_open(&db, dbpath, &err) != 0 || fb_store_open(&st, db, blocks, 0, &err) != 0)
		return -1;
	return 0;
}

static int
teardown(void **state)
{
	char cmd[400];

	(void)state;
	fb_store_close(st);
	fb_db_close(db);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void
copy(const char *from, const char *to)
{
	char cmd[700];

	snprintf(cmd, sizeof(cmd), "cp --sparse=always '%s' '%s'", from, to);
	assert_int_equal(system(cmd), 0);
}

/* Rebuilds disk d of point rp from the store and compares it with file. */
static void
assert_point_matches(const fb_rp *rp, size_t d, const char *file)
{
	static uint8_t blk[FB_BLOCK_SIZE], want[FB_BLOCK_SIZE];
	fb_hash       *leaves;
	uint64_t       n;
	fb_err         err;
	int            fd = open(file, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(fb_rp_leaves(db, rp->id, rp->disks[d].name, &leaves, &n, &err), FB_RV_OK);
	assert_int_equal(n, rp->disks[d].nblocks);
	for (uint64_t i = 0; i < n; i++) {
		ssize_t r;

		memset(want, 0, sizeof(want));
		r = pread(fd, want, sizeof(want), (off_t)(i * FB_BLOCK_SIZE));
		assert_true(r > 0);
		if (fb_store_get(st, &leaves[i], blk, &err) != FB_RV_OK)
			fail_msg("block %llu: %s", (unsigned long long)i, err.msg);
		assert_memory_equal(blk, want, sizeof(blk));
	}
	free(leaves);
	close(fd);
}

static const char *
add_vm(const char *name, uint32_t history)
{
	const char *paths[] = {img};
	fb_err      err;

	assert_int_equal(fb_vm_add(db, name, paths, 1, history, 1, 1, NULL, &err), FB_RV_OK);
	return name;
}

static void
registration_refuses_bad_names_paths_and_history(void **state)
{
	const char *rel[] = {"disk0.img"}, *missing[] = {"/nonexistent/d.img"};
	const char *ok[] = {img}, *dir_as_disk[] = {dir};
	fb_err      err;

	(void)state;
	assert_int_equal(fbt_image_make(img, 1 << 20, 1), 0);
	assert_int_equal(fb_vm_add(db, "../etc", ok, 1, 0, 1, 1, NULL, &err),
	                 FB_RV_INVALID_PARAMETER);
	assert_int_equal(fb_vm_add(db, "vm", rel, 1, 0, 1, 1, NULL, &err),
	                 FB_RV_INVALID_PARAMETER);
	assert_int_equal(fb_vm_add(db, "vm", missing, 1, 0, 1, 1, NULL, &err),
	                 FB_RV_FILE_NOT_FOUND);
	assert_int_equal(fb_vm_add(db, "vm", dir_as_disk, 1, 0, 1, 1, NULL, &err),
	                 FB_RV_INVALID_PARAMETER);
	assert_int_equal(fb_vm_add(db, "vm", ok, 1, 25, 1, 1, NULL, &err),
	                 FB_RV_INVALID_PARAMETER);
	assert_int_equal(fb_vm_add(db, "vm", ok, 1, 0, 1, 1, NULL, &err), FB_RV_OK);
	assert_int_equal(fb_vm_add(db, "vm", ok, 1, 0, 1, 1, NULL, &err),
	                 FB_RV_INVALID_PARAMETER);
	assert_non_null(strstr(err.msg, "already exists"));
}

/* A VM recorded again (a failover that wrote its disks as qcow2, a
 * relationship step) keeps each disk's format: the format decides how the
 * disk is opened, and a qcow2 image read as raw is a different disk. */
static void
a_disk_format_survives_recording_the_vm_again(void **state)
{
	const char *ok[] = {img};
	fb_vm      *vm, *again;
	fb_err      err;

	(void)state;
	assert_int_equal(fbt_image_make(img, 1 << 20, 1), 0);
	assert_int_equal(fb_vm_add(db, "vm", ok, 1, 0, 1, 1, &vm, &err), FB_RV_OK);
	assert_string_equal(vm->disks[0].format, "raw");
	snprintf(vm->disks[0].format, sizeof(vm->disks[0].format), "qcow2");
	assert_int_equal(fb_vm_put(db, vm, &err), FB_RV_OK);
	assert_int_equal(fb_vm_get(db, "vm", &again, &err), FB_RV_OK);
	assert_string_equal(again->disks[0].format, "qcow2");
	free(again);
	snprintf(vm->disks[0].format, sizeof(vm->disks[0].format), "raw");
	assert_int_equal(fb_vm_put(db, vm, &err), FB_RV_OK);
	assert_int_equal(fb_vm_get(db, "vm", &again, &err), FB_RV_OK);
	assert_string_equal(again->disks[0].format, "raw");
	free(again);
	free(vm);
}

/* A relationship step's disks: a format must be one QEMU reads, and the
 * disks digest both agents sign names a format that is not raw (a raw
 * disk's digest is what agents made before formats travelled). */
static void
a_relationship_disk_carries_its_format_into_the_digest(void **state)
{
	Failback__Disk d = FAILBACK__DISK__INIT, *pd = &d;
	fb_vm_disk     disks[1];
	size_t         n = 0;
	char           bare[65], raw[65], qcow2[65];
	fb_err         err;

	(void)state;
	assert_int_equal(fbt_image_make(img, 1 << 20, 1), 0);
	d.name       = strrchr(img, '/') + 1; /* a disk is named after its file */
	d.path       = img;
	d.size_bytes = 1 << 20;
	fb_pb_disks_digest(&pd, 1, bare);
	d.format = "raw";
	fb_pb_disks_digest(&pd, 1, raw);
	assert_string_equal(bare, raw);
	assert_int_equal(fb_pb_adopt_disks(&pd, 1, disks, &n, &err), FB_RV_OK);
	assert_int_equal(n, 1);
	assert_string_equal(disks[0].format, "raw");
	d.format = "qcow2";
	fb_pb_disks_digest(&pd, 1, qcow2);
	assert_string_not_equal(raw, qcow2);
	d.format = "iso";
	assert_int_equal(fb_pb_to_disks(&pd, 1, "the peer", disks, &err), FB_RV_INVALID_PARAMETER);
	assert_non_null(strstr(err.msg, "not raw, qcow2, vhdx, vmdk or vpc"));
	/* the size of the relationship must be the file's */
	d.format     = "raw";
	d.size_bytes = 2 << 20;
	assert_int_equal(fb_pb_adopt_disks(&pd, 1, disks, &n, &err), FB_RV_INVALID_PARAMETER);
	assert_non_null(strstr(err.msg, "not the 2097152 of the relationship"));
}

static void
point_reads_back_the_disk_and_unknowns_are_file_not_found(void **state)
{
	fb_rp      *rp;
	fb_rp_stats s = {0};
	fb_err      err;

	(void)state;
	assert_int_equal(fbt_image_make(img, 8 << 20, 2), 0);
	add_vm("web", 0);
	assert_int_equal(fb_rp_create(db, st, "web", 0, &rp, &s, &err), FB_RV_OK);
	assert_string_equal(rp->algorithm, "sha256");
	assert_int_equal(rp->disks[0].nblocks, 128);
	assert_true(s.bytes_read < (8u << 20)); /* holes were not read */
	assert_point_matches(rp, 0, img);
	free(rp);
	assert_int_equal(fb_rp_create(db, st, "nosuch", 0, NULL, NULL, &err),
	                 FB_RV_FILE_NOT_FOUND);
	assert_int_equal(fb_rp_remove(db, st, "web", "00000000-0000-4000-8000-000000000000", NULL,
	                              &err),
	                 FB_RV_FILE_NOT_FOUND);
	assert_int_equal(fb_rp_remove(db, st, "web", "../../x", NULL, &err),
	                 FB_RV_INVALID_PARAMETER);
}

static void
unchanged_disk_stores_nothing_new_and_changes_cost_only_themselves(void **state)
{
	fb_rp_stats s = {0};
	fb_rp      *rp;
	fb_err      err;

	(void)state;
	assert_int_equal(fbt_image_make(img, 16 << 20, 3), 0);
	add_vm("db", 24);
	assert_int_equal(fb_rp_create(db, st, "db", 0, NULL, &s, &err), FB_RV_OK);
	memset(&s, 0, sizeof(s));
	assert_int_equal(fb_rp_create(db, st, "db", 0, NULL, &s, &err), FB_RV_OK);
	assert_int_equal(s.blocks_new, 0);
	assert_int_equal(s.bytes_stored, 0);
	assert_int_equal(fbt_image_mutate(img, 3, 9), 3);
	memset(&s, 0, sizeof(s));
	assert_int_equal(fb_rp_create(db, st, "db", 0, &rp, &s, &err), FB_RV_OK);
	assert_true(s.blocks_new >= 1 && s.blocks_new <= 3);
	assert_true(s.bytes_stored <= 3 * (FB_BLOCK_SIZE + 48));
	assert_point_matches(rp, 0, img);
	free(rp);
}

static void
history_keeps_newest_plus_n_and_frees_unreferenced_blocks(void **state)
{
	fb_rp_stats s = {0};
	fb_rp      *rps;
	size_t      n;
	fb_err      err;

	(void)state;
	assert_int_equal(fbt_image_make(img, 4 << 20, 4), 0);
	add_vm("app", 1);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(fbt_image_mutate(img, 2, 100 + (uint32_t)i), 2);
		memset(&s, 0, sizeof(s));
		assert_int_equal(fb_rp_create(db, st, "app", 0, NULL, &s, &err), FB_RV_OK);
		if (i >= 2) {
			assert_int_equal(s.points_pruned, 1);
			assert_true(s.blocks_freed >= 1);
		}
	}
	assert_int_equal(fb_rp_list(db, "app", &rps, &n, &err), FB_RV_OK);
	assert_int_equal(n, 2);
	assert_true(rps[0].time_ms <= rps[1].time_ms);
	assert_point_matches(&rps[1], 0, img);
	assert_int_equal(fb_rp_remove(db, st, "app", rps[0].id, &s, &err), FB_RV_OK);
	free(rps);
	assert_int_equal(fb_rp_list(db, "app", &rps, &n, &err), FB_RV_OK);
	assert_int_equal(n, 1);
	assert_point_matches(&rps[0], 0, img);
	free(rps);
}

static char kept[FB_ID_LEN + 1];

static int
keep_one(const char *rp_id)
{
	return strcmp(rp_id, kept) == 0;
}

/* History points (the other site's, ids and roots only) are listed, never
 * the newest point or a source of leaves, are bounded apart from the held
 * ones, and turn held when a point under their id is adopted; a point the
 * keep test names survives RecoveryHistory. */
static void
history_points_and_kept_points(void **state)
{
	fb_rp   *p1, *p2, *rps, hist[2];
	fb_hash *leaves;
	uint64_t nl;
	size_t   n;
	fb_err   err;

	(void)state;
	assert_int_equal(fbt_image_make(img, 2 << 20, 6), 0);
	add_vm("app", 0);
	assert_int_equal(fb_rp_create(db, st, "app", 0, &p1, NULL, &err), FB_RV_OK);
	for (int i = 0; i < 2; i++) {
		hist[i] = *p1;
		snprintf(hist[i].id, sizeof(hist[i].id), "00000000-0000-4000-8000-00000000000%d", i);
		hist[i].time_ms = p1->time_ms + 1000 + i; /* newer than P1 */
		hist[i].held    = 0;
	}
	assert_int_equal(fb_rp_import(db, p1->vm_id, hist, 2, &err), FB_RV_OK);
	assert_int_equal(fb_rp_import(db, p1->vm_id, hist, 2, &err), FB_RV_OK); /* again: no-op */
	assert_int_equal(fb_rp_list(db, "app", &rps, &n, &err), FB_RV_OK);
	assert_int_equal(n, 3);
	assert_true(rps[0].held && !rps[1].held && !rps[2].held);
	free(rps);
	assert_int_equal(fb_rp_get(db, "app", "", &rps, &err), FB_RV_OK);
	assert_string_equal(rps->id, p1->id); /* the newest held, not the newer history */
	free(rps);
	assert_int_equal(fb_rp_leaves(db, hist[0].id, "disk0.img", &leaves, &nl, &err),
	                 FB_RV_FILE_NOT_FOUND);
	assert_non_null(strstr(err.msg, "history"));
	/* Adopting a point under a history id makes it held. */
	assert_int_equal(fb_rp_leaves(db, p1->id, "disk0.img", &leaves, &nl, &err), FB_RV_OK);
	hist[1].held = 1;
	assert_int_equal(fb_rp_adopt(db, st, &hist[1], &leaves, NULL, 0, NULL, &err), FB_RV_OK);
	free(leaves);
	/* RecoveryHistory 0 keeps only the newest held point... unless kept. */
	assert_int_equal(fb_rp_list(db, "app", &rps, &n, &err), FB_RV_OK);
	assert_int_equal(n, 2); /* P1 pruned by the adopt; history 0 left; hist 1 held */
	free(rps);
	snprintf(kept, sizeof(kept), "%s", hist[1].id);
	fb_rp_set_keep(keep_one);
	assert_int_equal(fbt_image_mutate(img, 1, 7), 1);
	assert_int_equal(fb_rp_create(db, st, "app", 0, &p2, NULL, &err), FB_RV_OK);
	fb_rp_set_keep(NULL);
	assert_int_equal(fb_rp_get(db, "app", hist[1].id, &rps, &err), FB_RV_OK);
	assert_true(rps->held);
	free(rps);
	/* the new point stays too: a kept point never costs a newer one */
	assert_int_equal(fb_rp_get(db, "app", p2->id, &rps, &err), FB_RV_OK);
	free(rps);
	free(p2);
	free(p1);
}

static uint32_t
grow_file(void *arg, uint64_t index, const uint8_t *data, uint32_t len, const fb_hash *h,
          int zero, fb_err *err)
{
	(void)data;
	(void)len;
	(void)h;
	(void)zero;
	(void)err;
	if (index == 5)
		assert_int_equal(truncate((const char *)arg, 16 << 20), 0);
	return FB_RV_OK;
}

static void
disk_that_changes_size_while_hashing_makes_no_point(void **state)
{
	fb_disk_scan scan;
	fb_err       err;

	(void)state;
	assert_int_equal(fbt_image_make(img, 8 << 20, 5), 0);
	assert_int_equal(fb_disk_hash(img, grow_file, img, &scan, &err), FB_RV_FAILED);
	assert_non_null(strstr(err.msg, "changed size while hashing"));
}

/* The leaves of the file at path, read and hashed one block at a time. */
static fb_hash *
leaves_by_hand(const char *path, uint64_t size)
{
	uint64_t n      = (size + FB_BLOCK_SIZE - 1) / FB_BLOCK_SIZE;
	fb_hash *leaves = malloc(n * sizeof(fb_hash));
	uint8_t *blk    = malloc(FB_BLOCK_SIZE);
	int      fd     = open(path, O_RDONLY);

	assert_true(fd >= 0 && leaves != NULL && blk != NULL);
	for (uint64_t b = 0; b < n; b++) {
		ssize_t r = pread(fd, blk, FB_BLOCK_SIZE, (off_t)(b * FB_BLOCK_SIZE));

		assert_true(r > 0);
		fb_hash_block(blk, (size_t)r, FB_BLOCK_SIZE, &leaves[b]);
	}
	close(fd);
	free(blk);
	return leaves;
}

/* The scan reads a raw disk around the page cache where the file system
 * allows it (ext4 here) and through it where not (tmpfs), several batches
 * at once: either way every leaf is the block's, the holes count as zero
 * blocks without being read, and a last block shorter than 4 KiB (which a
 * direct read rounds up) is read exactly. */
static void
the_scan_reads_every_block_exactly_around_the_page_cache_or_through_it(void **state)
{
	const char    *where[] = {dir, "/dev/shm"};
	const uint64_t size    = 37 * (uint64_t)FB_BLOCK_SIZE * 16 + 1000; /* 37 MiB and 1000 */
	uint8_t       *data    = malloc(3 * FB_BLOCK_SIZE);

	(void)state;
	for (size_t i = 0; i < 3 * FB_BLOCK_SIZE; i++)
		data[i] = (uint8_t)(i * 7 + i / 4096);
	for (size_t w = 0; w < 2; w++) {
		char         path[300];
		fb_disk_scan scan;
		fb_hash     *want;
		fb_err       err;
		uint64_t     written = 0;
		int          fd;

		if (w == 1 && access(where[w], W_OK) != 0) {
			fprintf(stderr, "no writable /dev/shm here: the tmpfs case is not run\n");
			continue;
		}
		snprintf(path, sizeof(path), "%s/scan-%d", where[w], (int)getpid());
		assert_true((fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600)) >= 0);
		assert_int_equal(ftruncate(fd, (off_t)size), 0);
		/* data every 3 MiB (crossing batches), a hole between, and the end */
		for (uint64_t off = 0; off + 3 * FB_BLOCK_SIZE < size; off += 48 * FB_BLOCK_SIZE) {
			assert_int_equal(pwrite(fd, data, 3 * FB_BLOCK_SIZE, (off_t)off),
			                 3 * FB_BLOCK_SIZE);
			written += 3 * FB_BLOCK_SIZE;
		}
		assert_int_equal(pwrite(fd, data + 5, 1000 + FB_BLOCK_SIZE,
		                        (off_t)(size - 1000 - FB_BLOCK_SIZE)),
		                 1000 + FB_BLOCK_SIZE);
		written += 1000 + FB_BLOCK_SIZE;
		assert_int_equal(fsync(fd), 0);
		close(fd);
		want = leaves_by_hand(path, size);
		assert_true((fd = open(path, O_RDONLY)) >= 0);
		assert_int_equal(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
		assert_int_equal(fb_disk_hash(path, NULL, NULL, &scan, &err), FB_RV_OK);
		if (w == 0) { /* read around the cache: the scan left it empty */
			int   direct = open(path, O_RDONLY | O_DIRECT);
			void *map    = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
			unsigned char vec[(37 * 16 + 1) * 16 + 1];

			assert_true(map != MAP_FAILED);
			assert_int_equal(mincore(map, size, vec), 0);
			for (size_t p = 0; direct >= 0 && p < (size + 4095) / 4096; p++)
				assert_int_equal(vec[p] & 1, 0);
			if (direct < 0)
				fprintf(stderr, "%s allows no O_DIRECT: the scan went through the cache\n", dir);
			else
				close(direct);
			munmap(map, size);
		}
		close(fd);
		assert_int_equal(scan.size, size);
		assert_int_equal(scan.nblocks, (size + FB_BLOCK_SIZE - 1) / FB_BLOCK_SIZE);
		assert_memory_equal(scan.leaves, want, scan.nblocks * sizeof(fb_hash));
		/* the holes were not read (a file system may allocate a little
		 * around the data, never the 37 MiB) */
		assert_true(scan.bytes_read >= written && scan.bytes_read < written * 2);
		free(scan.leaves);
		free(want);
		unlink(path);
	}
	free(data);
}

static uint64_t seen_order[600];
static size_t   nseen;

static uint32_t
note_order(void *arg, uint64_t index, const uint8_t *data, uint32_t len, const fb_hash *h,
           int zero, fb_err *err)
{
	fb_hash again;

	(void)arg;
	(void)err;
	fb_hash_block(data, len, FB_BLOCK_SIZE, &again);
	assert_memory_equal(&again, h, sizeof(again));
	assert_int_equal(zero, fb_is_zero(data, len));
	assert_true(nseen < 600);
	seen_order[nseen++] = index;
	return FB_RV_OK;
}

/* A bitmap's dirty blocks, scattered and more than a few batches' worth,
 * are read by the pool and visited in the order given, each with its own
 * data and leaf (the short last block too); a block past the end is an
 * error that names it. */
static void
a_list_of_blocks_is_read_and_visited_in_its_order(void **state)
{
	const uint64_t size  = 40 * (uint64_t)FB_BLOCK_SIZE * 16 + 1000; /* 640 blocks and 1000 */
	uint64_t       n     = (size + FB_BLOCK_SIZE - 1) / FB_BLOCK_SIZE, list[300];
	uint8_t       *marks = calloc(n, 1);
	fb_hash       *want, *got = calloc(n, sizeof(fb_hash));
	fb_err         err;
	uint64_t       k = 0, count;

	(void)state;
	assert_int_equal(fbt_image_make(img, size, 9), 0);
	want = leaves_by_hand(img, size);
	for (uint64_t b = 3; b < n; b += 3)
		marks[b] = 1, list[k++] = b;
	marks[n - 1] = 1;
	if (list[k - 1] != n - 1)
		list[k++] = n - 1;
	nseen = 0;
	assert_int_equal(fb_disk_rehash_marked(img, NULL, size, marks, n, got, note_order, NULL,
	                                       &count, &err),
	                 FB_RV_OK);
	assert_int_equal(count, k);
	assert_int_equal(nseen, k);
	assert_memory_equal(seen_order, list, k * sizeof(uint64_t));
	for (uint64_t i = 0; i < k; i++)
		assert_memory_equal(&got[list[i]], &want[list[i]], sizeof(fb_hash));
	/* past the end: named, whichever thread met it */
	list[200] = n + 5;
	assert_int_equal(fb_disk_rehash(img, size, list, k, got, &err), FB_RV_FAILED);
	assert_non_null(strstr(err.msg, "past the end"));
	{
		char blk[40];

		snprintf(blk, sizeof(blk), "block %llu", (unsigned long long)(n + 5));
		assert_non_null(strstr(err.msg, blk));
	}
	free(marks);
	free(want);
	free(got);
}

/* --- fault injection --- */

static int fi_count, fi_fail_at, fi_crashed, fi_crash_mode, fi_errno;

static int
fi_hit(void)
{
	fi_count++;
	if (fi_crashed || fi_count == fi_fail_at) {
		fi_crashed = fi_crash_mode;
		errno      = fi_errno;
		return 1;
	}
	return 0;
}

static ssize_t
fi_pwrite(int fd, const void *b, size_t n, off_t off)
{
	return fi_hit() ? -1 : pwrite(fd, b, n, off);
}
static int
fi_fsync(int fd)
{
	return fi_hit() ? -1 : fsync(fd);
}
static int
fi_rename(const char *a, const char *b)
{
	return fi_hit() ? -1 : rename(a, b);
}
static int
fi_ftruncate(int fd, off_t len)
{
	return fi_hit() ? -1 : ftruncate(fd, len);
}
static int
fi_commit(void)
{
	return fi_hit() ? fi_errno : 0;
}

static const fb_fsops fi_ops = {.pwrite    = fi_pwrite,
                                .fsync     = fi_fsync,
                                .rename    = fi_rename,
                                .ftruncate = fi_ftruncate,
                                .commit    = fi_commit};

static void
arm(int k, int crash, int e)
{
	fi_count = 0;
	fi_fail_at = k;
	fi_crashed = 0;
	fi_crash_mode = crash;
	fi_errno = e;
	fb_fsops_set(&fi_ops);
}

/* After each injected failure: reopen as after a crash, then every point of
 * the VM must read back exactly as the disk it was taken from. */
static void
take_point_fails_at_every_step_without_losing_anything(int crash)
{
	fb_rp      *base, *rps;
	size_t      n;
	fb_err      err;
	int         k, ops_seen;
	char        name[16];

	snprintf(name, sizeof(name), "fi%d", crash);
	assert_int_equal(fbt_image_make(img, 2 << 20, 6), 0);
	add_vm(name, 0);
	assert_int_equal(fb_rp_create(db, st, name, 0, &base, NULL, &err), FB_RV_OK);
	copy(img, v1);
	assert_int_equal(fbt_image_mutate(img, 4, 77), 4);
	for (k = 1;; k++) {
		uint32_t rv;

		arm(k, crash, crash ? EIO : ENOSPC);
		rv       = fb_rp_create(db, st, name, 0, NULL, NULL, &err);
		ops_seen = fi_count;
		fb_fsops_set(NULL);
		if (!crash && rv != FB_RV_OK && fi_errno == ENOSPC)
			assert_non_null(strstr(err.msg, "No space left"));
		reopen();
		assert_int_equal(fb_rp_list(db, name, &rps, &n, &err), FB_RV_OK);
		assert_int_equal(n, 1); /* history 0: the old point or the new one, never both */
		if (rv != FB_RV_OK) {
			assert_string_equal(rps[0].id, base->id);
			assert_point_matches(&rps[0], 0, v1);
		} else {
			assert_string_not_equal(rps[0].id, base->id);
			assert_point_matches(&rps[0], 0, img);
		}
		free(rps);
		if (ops_seen < k) /* the operation finished before step k: all steps done */
			break;
	}
	assert_true(k > 3); /* appends, fsync and commit were all failed once */
	free(base);
}

static void
take_point_survives_a_crash_at_every_step(void **state)
{
	(void)state;
	take_point_fails_at_every_step_without_losing_anything(1);
}

static void
take_point_survives_each_single_failure_like_disk_full(void **state)
{
	(void)state;
	take_point_fails_at_every_step_without_losing_anything(0);
}

static void
removing_a_point_survives_a_crash_at_every_step(void **state)
{
	fb_rp  *a, *b, *rps;
	size_t  n;
	fb_err  err;
	int     k;

	(void)state;
	assert_int_equal(fbt_image_make(img, 2 << 20, 8), 0);
	add_vm("rm", 1);
	assert_int_equal(fb_rp_create(db, st, "rm", 0, &a, NULL, &err), FB_RV_OK);
	copy(img, v1);
	assert_int_equal(fbt_image_mutate(img, 4, 55), 4);
	assert_int_equal(fb_rp_create(db, st, "rm", 0, &b, NULL, &err), FB_RV_OK);
	for (k = 1;; k++) {
		uint32_t rv;
		int      seen;

		arm(k, 1, EIO);
		rv   = fb_rp_remove(db, st, "rm", a->id, NULL, &err);
		seen = fi_count;
		fb_fsops_set(NULL);
		reopen();
		assert_int_equal(fb_rp_list(db, "rm", &rps, &n, &err), FB_RV_OK);
		assert_int_equal(n, rv == FB_RV_OK ? 1 : 2);
		assert_string_equal(rps[n - 1].id, b->id);
		assert_point_matches(&rps[n - 1], 0, img);
		if (n == 2)
			assert_point_matches(&rps[0], 0, v1);
		free(rps);
		if (seen < k)
			break;
	}
	free(a);
	free(b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(a_disk_format_survives_recording_the_vm_again, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(a_relationship_disk_carries_its_format_into_the_digest,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(registration_refuses_bad_names_paths_and_history,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        point_reads_back_the_disk_and_unknowns_are_file_not_found, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        unchanged_disk_stores_nothing_new_and_changes_cost_only_themselves, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        history_keeps_newest_plus_n_and_frees_unreferenced_blocks, setup, teardown),
	    cmocka_unit_test_setup_teardown(history_points_and_kept_points, setup, teardown),
	    cmocka_unit_test_setup_teardown(disk_that_changes_size_while_hashing_makes_no_point,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        the_scan_reads_every_block_exactly_around_the_page_cache_or_through_it, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(a_list_of_blocks_is_read_and_visited_in_its_order,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(take_point_survives_a_crash_at_every_step, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(take_point_survives_each_single_failure_like_disk_full,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(removing_a_point_survives_a_crash_at_every_step, setup,
	                                    teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
