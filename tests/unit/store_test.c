/*
 * store_test.c - the block store: what goes in comes out verified, a
 * corrupted byte is reported with its pack and offset, a crash's unindexed
 * tail is dropped at open, and freed blocks give their space back. A
 * block's stored frame is handed out as it is, and a frame handed in is
 * kept as it came (what a ReadBlocks reply carries without compressing
 * again), unless it is not one frame of a known size. Many lookups to
 * come read the index ahead; a few do not.
 */
#define _GNU_SOURCE /* mincore */
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
#include <zstd.h>

#include "failback/store.h"

static char     dir[256], dbpath[300], blocks[300];
static fb_db   *db;
static fb_store *st;

static int
setup(void **state)
{
	fb_err err;

	(void)state;
	snprintf(dir, sizeof(dir), "%s/fbstore.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(dbpath, sizeof(dbpath), "%s/state.db", dir);
	snprintf(blocks, sizeof(blocks), "%s/blocks", dir);
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

/* Appends, syncs and indexes one block with one reference. */
static void
put(const void *data, uint32_t len, fb_hash *h, fb_store_loc *loc)
{
	fb_err err;
	int    added;

	fb_hash_block(data, len, FB_BLOCK_SIZE, h);
	assert_int_equal(fb_store_append(st, h, data, len, loc, &err), FB_RV_OK);
	assert_int_equal(fb_store_sync(st, &err), FB_RV_OK);
	assert_int_equal(fb_db_begin(db, &err), FB_RV_OK);
	assert_int_equal(fb_store_index_add(st, h, loc, 1, &added, &err), FB_RV_OK);
	assert_int_equal(fb_db_commit(db, &err), FB_RV_OK);
	assert_true(added);
}

static void
random_and_text_blocks_round_trip_verified(void **state)
{
	static uint8_t rnd[FB_BLOCK_SIZE], txt[FB_BLOCK_SIZE], got[FB_BLOCK_SIZE];
	fb_hash        h1, h2;
	fb_store_loc   l1, l2;
	fb_err         err;

	(void)state;
	for (size_t i = 0; i < sizeof(rnd); i++)
		rnd[i] = (uint8_t)(rand() >> 5);
	for (size_t i = 0; i < sizeof(txt); i++)
		txt[i] = "failback replica "[i % 17];
	put(rnd, sizeof(rnd), &h1, &l1);
	put(txt, sizeof(txt), &h2, &l2);
	assert_int_equal(l1.flags, 0);             /* random data is stored raw */
	assert_int_equal(l2.flags, FB_STORE_ZSTD); /* text compresses */
	assert_true(l2.stored_len < FB_BLOCK_SIZE / 8);
	assert_int_equal(fb_store_get(st, &h1, got, &err), FB_RV_OK);
	assert_memory_equal(got, rnd, sizeof(rnd));
	assert_int_equal(fb_store_get(st, &h2, got, &err), FB_RV_OK);
	assert_memory_equal(got, txt, sizeof(txt));
}

/* Indexes a record appended by fb_store_append_as and reads it back. */
static void
index_and_check(const fb_hash *h, const fb_store_loc *loc, const uint8_t *want)
{
	static uint8_t got[FB_BLOCK_SIZE];
	fb_err         err;
	int            added;

	assert_int_equal(fb_store_sync(st, &err), FB_RV_OK);
	assert_int_equal(fb_db_begin(db, &err), FB_RV_OK);
	assert_int_equal(fb_store_index_add(st, h, loc, 1, &added, &err), FB_RV_OK);
	assert_int_equal(fb_db_commit(db, &err), FB_RV_OK);
	assert_int_equal(fb_store_get(st, h, got, &err), FB_RV_OK);
	assert_memory_equal(got, want, FB_BLOCK_SIZE);
}

static void
frames_are_passed_on_as_they_are_stored(void **state)
{
	static uint8_t rnd[FB_BLOCK_SIZE], txt[FB_BLOCK_SIZE], got[FB_BLOCK_SIZE];
	static uint8_t z[ZSTD_COMPRESSBOUND(FB_BLOCK_SIZE)], two[2 * ZSTD_COMPRESSBOUND(FB_BLOCK_SIZE)];
	fb_hash        h;
	fb_store_loc   l;
	fb_err         err;
	uint32_t       zlen = 7;
	size_t         c, c2;

	(void)state;
	/* Out: a compressed record's frame decodes to the block; a raw one has none. */
	for (size_t i = 0; i < sizeof(txt); i++)
		txt[i] = "the frame goes out as it is "[i % 28];
	put(txt, sizeof(txt), &h, &l);
	assert_true(l.has_crc);
	assert_int_equal(fb_store_get_packed(st, &h, got, z, &zlen, &err), FB_RV_OK);
	assert_int_equal(zlen, l.stored_len);
	assert_int_equal(ZSTD_decompress(got, sizeof(got), z, zlen), FB_BLOCK_SIZE);
	assert_memory_equal(got, txt, sizeof(txt));
	for (size_t i = 0; i < sizeof(rnd); i++)
		rnd[i] = (uint8_t)(rand() >> 7);
	put(rnd, sizeof(rnd), &h, &l);
	assert_int_equal(fb_store_get_packed(st, &h, got, z, &zlen, &err), FB_RV_OK);
	assert_int_equal(zlen, 0);

	/* In: a frame is kept byte for byte, raw data stays raw. */
	txt[0] = 'T';
	c = ZSTD_compress(z, sizeof(z), txt, sizeof(txt), 1);
	assert_false(ZSTD_isError(c));
	fb_hash_block(txt, sizeof(txt), FB_BLOCK_SIZE, &h);
	assert_int_equal(fb_store_append_as(st, &h, txt, z, (uint32_t)c, &l, &err), FB_RV_OK);
	assert_int_equal(l.flags, FB_STORE_ZSTD);
	assert_int_equal(l.stored_len, c);
	index_and_check(&h, &l, txt);
	rnd[0] ^= 1;
	fb_hash_block(rnd, sizeof(rnd), FB_BLOCK_SIZE, &h);
	assert_int_equal(fb_store_append_as(st, &h, rnd, NULL, 0, &l, &err), FB_RV_OK);
	assert_int_equal(l.flags, 0);
	assert_int_equal(l.stored_len, FB_BLOCK_SIZE);
	index_and_check(&h, &l, rnd);

	/* Two frames that decode to the block together: the first one's size
	 * would say less than what a read decodes, so the block is compressed
	 * anew rather than kept. */
	txt[0] = 'U';
	c  = ZSTD_compress(two, sizeof(two), txt, FB_BLOCK_SIZE / 2, 1);
	c2 = ZSTD_compress(two + c, sizeof(two) - c, txt + FB_BLOCK_SIZE / 2, FB_BLOCK_SIZE / 2, 1);
	assert_false(ZSTD_isError(c) || ZSTD_isError(c2));
	fb_hash_block(txt, sizeof(txt), FB_BLOCK_SIZE, &h);
	assert_int_equal(fb_store_append_as(st, &h, txt, two, (uint32_t)(c + c2), &l, &err), FB_RV_OK);
	assert_int_equal(l.flags, FB_STORE_ZSTD);
	assert_int_equal(l.raw_len, FB_BLOCK_SIZE);
	assert_true(l.stored_len != c + c2);
	index_and_check(&h, &l, txt);
}

static void
short_block_reads_back_zero_padded(void **state)
{
	static uint8_t got[FB_BLOCK_SIZE];
	fb_hash        h;
	fb_store_loc   l;
	fb_err         err;

	(void)state;
	put("last bytes of a disk", 20, &h, &l);
	memset(got, 0xaa, sizeof(got));
	assert_int_equal(fb_store_get(st, &h, got, &err), FB_RV_OK);
	assert_memory_equal(got, "last bytes of a disk", 20);
	assert_true(got[20] == 0 && got[FB_BLOCK_SIZE - 1] == 0);
}

static void
zero_hash_reads_zeros_without_a_lookup(void **state)
{
	static uint8_t got[FB_BLOCK_SIZE];
	fb_err         err;

	(void)state;
	memset(got, 1, sizeof(got));
	assert_int_equal(fb_store_get(st, fb_hash_zero(), got, &err), FB_RV_OK);
	assert_true(got[0] == 0 && got[FB_BLOCK_SIZE - 1] == 0);
}

static void
flipped_byte_in_pack_is_reported_with_pack_and_offset(void **state)
{
	static uint8_t data[FB_BLOCK_SIZE], got[FB_BLOCK_SIZE];
	fb_hash        h;
	fb_store_loc   l;
	fb_err         err;
	char           path[400], want[64];
	uint8_t        b;
	int            fd;

	(void)state;
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(rand() >> 3);
	put(data, sizeof(data), &h, &l);
	fb_store_pack_path(st, l.pack, path, sizeof(path));
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &b, 1, (off_t)(l.offset + 48 + 1000)), 1);
	b ^= 0x40;
	assert_int_equal(pwrite(fd, &b, 1, (off_t)(l.offset + 48 + 1000)), 1);
	close(fd);
	assert_int_equal(fb_store_get(st, &h, got, &err), FB_RV_FAILED);
	assert_non_null(strstr(err.msg, "fails verification"));
	assert_non_null(strstr(err.msg, path));
	snprintf(want, sizeof(want), "offset %llu", (unsigned long long)l.offset);
	assert_non_null(strstr(err.msg, want));
}

/* Flips one byte of a record's data in its pack. */
static void
flip(const fb_store_loc *l, uint64_t at, char *path, size_t cap)
{
	uint8_t b;
	int     fd;

	fb_store_pack_path(st, l->pack, path, cap);
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &b, 1, (off_t)(l->offset + 48 + at)), 1);
	b ^= 0x40;
	assert_int_equal(pwrite(fd, &b, 1, (off_t)(l->offset + 48 + at)), 1);
	close(fd);
}

/* A compressed record handed out as its frame, undecoded, is checked by
 * its CRC first: a damaged one is named, never sent. */
static uint8_t frame[ZSTD_COMPRESSBOUND(FB_BLOCK_SIZE)], back[FB_BLOCK_SIZE];

/* Puts a block of text repeating pattern (it compresses); returns it. */
static const uint8_t *
put_text(const char *pattern, fb_hash *h, fb_store_loc *l)
{
	static uint8_t txt[FB_BLOCK_SIZE];
	size_t         n = strlen(pattern);

	for (size_t i = 0; i < sizeof(txt); i++)
		txt[i] = (uint8_t)pattern[i % n];
	put(txt, sizeof(txt), h, l);
	assert_int_equal(l->flags, FB_STORE_ZSTD);
	return txt;
}

static void
a_damaged_frame_is_not_handed_out(void **state)
{
	fb_hash      h;
	fb_store_loc l;
	fb_err       err;
	uint32_t     zlen = 0;
	char         path[400], want[64];

	(void)state;
	put_text("a frame with a damaged byte ", &h, &l);
	flip(&l, l.stored_len / 2, path, sizeof(path));
	assert_int_equal(fb_store_get_packed(st, &h, back, frame, &zlen, &err), FB_RV_FAILED);
	assert_int_equal(zlen, 0);
	assert_non_null(strstr(err.msg, "fails verification"));
	assert_non_null(strstr(err.msg, path));
	snprintf(want, sizeof(want), "offset %llu", (unsigned long long)l.offset);
	assert_non_null(strstr(err.msg, want));
}

/* An index entry made before records had a CRC (schema 5) is read as it
 * was: decoded and checked by its hash, damaged or not. */
static void
a_block_indexed_without_a_crc_is_checked_by_its_hash(void **state)
{
	const uint8_t *txt;
	fb_hash        h;
	fb_store_loc   l;
	fb_err         err;
	uint32_t       zlen = 0;
	char           path[400];

	(void)state;
	txt = put_text("indexed by an older agent ", &h, &l);
	assert_int_equal(fb_db_exec(db, "UPDATE blocks SET crc = NULL", &err), FB_RV_OK);
	memset(back, 0xaa, sizeof(back));
	assert_int_equal(fb_store_get_packed(st, &h, back, frame, &zlen, &err), FB_RV_OK);
	assert_memory_equal(back, txt, FB_BLOCK_SIZE); /* decoded, as before */
	assert_int_equal(zlen, l.stored_len);
	assert_int_equal(fb_store_locate(st, &h, &l, &err), FB_RV_OK);
	assert_false(l.has_crc);
	/* a damaged byte that still decodes: only the hash can tell */
	flip(&l, l.stored_len - 3, path, sizeof(path));
	if (fb_store_get(st, &h, back, &err) != FB_RV_FAILED)
		fail_msg("a damaged block without a CRC was read as good");
	assert_true(strstr(err.msg, "fails verification") != NULL ||
	            strstr(err.msg, "undecodable") != NULL);
	assert_non_null(strstr(err.msg, path));
}

static void
unindexed_tail_from_a_crash_is_dropped_at_open(void **state)
{
	static uint8_t data[FB_BLOCK_SIZE];
	fb_hash        h;
	fb_store_loc   l;
	fb_err         err;
	struct stat    sb;
	char           path[400];
	off_t          before;
	int            present;

	(void)state;
	memset(data, 7, sizeof(data));
	data[0] = 1;
	fb_hash_block(data, sizeof(data), FB_BLOCK_SIZE, &h);
	/* Appended and even synced, but the crash came before the commit. */
	assert_int_equal(fb_store_append(st, &h, data, sizeof(data), &l, &err), FB_RV_OK);
	assert_int_equal(fb_store_sync(st, &err), FB_RV_OK);
	fb_store_pack_path(st, l.pack, path, sizeof(path));
	assert_int_equal(stat(path, &sb), 0);
	before = sb.st_size - (off_t)(48 + l.stored_len);
	fb_store_close(st);
	assert_int_equal(fb_store_open(&st, db, blocks, 0, &err), FB_RV_OK);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_size, before);
	assert_int_equal(fb_store_contains(st, &h, &present, &err), FB_RV_OK);
	assert_false(present);
}

static void
swept_blocks_give_their_space_back(void **state)
{
	static uint8_t data[FB_BLOCK_SIZE];
	fb_hash        h[8];
	fb_store_loc   l;
	fb_err         err;
	struct stat    a, b;
	char           path[400];
	uint64_t       freed = 0;

	(void)state;
	for (int i = 0; i < 8; i++) {
		for (size_t k = 0; k < sizeof(data); k++)
			data[k] = (uint8_t)(rand() >> 4);
		put(data, sizeof(data), &h[i], &l);
	}
	fb_store_pack_path(st, l.pack, path, sizeof(path));
	assert_int_equal(stat(path, &a), 0);
	assert_int_equal(fb_db_begin(db, &err), FB_RV_OK);
	for (int i = 0; i < 8; i++)
		assert_int_equal(fb_store_ref(st, &h[i], -1, &err), FB_RV_OK);
	assert_int_equal(fb_store_sweep(st, &freed, &err), FB_RV_OK);
	assert_int_equal(fb_db_commit(db, &err), FB_RV_OK);
	fb_store_release(st);
	assert_true(freed >= 8);
	assert_int_equal(stat(path, &b), 0);
	/* Records are not aligned to filesystem blocks, so a punch frees a little
	 * less than each record: at least seven blocks' worth for eight. */
	assert_true(b.st_blocks * 512 <= a.st_blocks * 512 - 7 * FB_BLOCK_SIZE);
	assert_int_equal(fb_store_get(st, &h[3], data, &err), FB_RV_FILE_NOT_FOUND);
}

static void
referencing_a_missing_block_names_it(void **state)
{
	fb_hash h;
	fb_err  err;
	char    hex[65];

	(void)state;
	memset(&h, 0x5a, sizeof(h));
	fb_hash_hex(&h, hex);
	assert_int_equal(fb_db_begin(db, &err), FB_RV_OK);
	assert_int_equal(fb_store_ref(st, &h, 1, &err), FB_RV_FAILED);
	fb_db_rollback(db);
	assert_non_null(strstr(err.msg, hex));
}

/* How many of path's pages the page cache holds (and of how many), or -1
 * when its clean pages cannot be dropped (tmpfs keeps them). */
static long
resident(const char *path, long *pages, int drop)
{
	struct stat    sb;
	int            fd = open(path, O_RDWR);
	long           n  = 0;
	void          *map;
	unsigned char *vec;

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &sb), 0);
	*pages = (long)((sb.st_size + 4095) / 4096);
	if (drop) {
		assert_int_equal(fsync(fd), 0);
		assert_int_equal(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
	}
	assert_true((map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_SHARED, fd, 0)) != MAP_FAILED);
	assert_non_null(vec = malloc((size_t)*pages));
	assert_int_equal(mincore(map, (size_t)sb.st_size, vec), 0);
	for (long i = 0; i < *pages; i++)
		n += vec[i] & 1;
	free(vec);
	munmap(map, (size_t)sb.st_size);
	close(fd);
	return drop && n > 0 ? -1 : n;
}

static void
many_lookups_to_come_read_the_index_ahead_a_few_do_not(void **state)
{
	char  wal[320];
	long  pages, wpages, got = 0;
	fb_err err;

	(void)state;
	/* an index of 20000 blocks (locations made up: nothing is read) */
	assert_int_equal(fb_db_begin(db, &err), FB_RV_OK);
	for (uint32_t i = 0; i < 20000; i++) {
		fb_hash      h;
		fb_store_loc loc = {1, (uint64_t)i * FB_BLOCK_SIZE, 100, 100, 0, 0, 0};
		int          added;

		memset(&h, 0, sizeof(h));
		memcpy(h.b, &i, sizeof(i));
		h.b[31] = 0x77;
		assert_int_equal(fb_store_index_add(st, &h, &loc, 1, &added, &err), FB_RV_OK);
	}
	assert_int_equal(fb_db_commit(db, &err), FB_RV_OK);
	snprintf(wal, sizeof(wal), "%s-wal", dbpath);
	if (resident(dbpath, &pages, 1) < 0 || resident(wal, &wpages, 1) < 0) {
		fprintf(stderr, "%s keeps clean pages cached (tmpfs?): read-ahead not observable\n",
		        dir);
		return;
	}
	assert_true(pages + wpages >= 64);
	/* a few lookups: nothing is read ahead */
	fb_store_expect(st, (uint64_t)(pages + wpages) / 64);
	usleep(200000);
	assert_int_equal(resident(dbpath, &pages, 0) + resident(wal, &wpages, 0), 0);
	/* a lookup for every 32 pages: the files come into the cache whole
	 * (asynchronously: waited for, up to 20 s) */
	fb_store_expect(st, (uint64_t)(pages + wpages) / 32);
	for (int i = 0; i < 200 && got < pages + wpages; i++) {
		usleep(100000);
		got = resident(dbpath, &pages, 0) + resident(wal, &wpages, 0);
	}
	assert_int_equal(got, pages + wpages);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(random_and_text_blocks_round_trip_verified),
	    cmocka_unit_test(frames_are_passed_on_as_they_are_stored),
	    cmocka_unit_test(short_block_reads_back_zero_padded),
	    cmocka_unit_test(zero_hash_reads_zeros_without_a_lookup),
	    cmocka_unit_test(flipped_byte_in_pack_is_reported_with_pack_and_offset),
	    cmocka_unit_test(a_damaged_frame_is_not_handed_out),
	    cmocka_unit_test(a_block_indexed_without_a_crc_is_checked_by_its_hash),
	    cmocka_unit_test(unindexed_tail_from_a_crash_is_dropped_at_open),
	    cmocka_unit_test(swept_blocks_give_their_space_back),
	    cmocka_unit_test(referencing_a_missing_block_names_it),
	    cmocka_unit_test(many_lookups_to_come_read_the_index_ahead_a_few_do_not),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
