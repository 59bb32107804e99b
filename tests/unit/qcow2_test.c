/*
 * qcow2_test.c - dirty bitmaps read straight from qcow2 files (qcow2.h),
 * against images made and written by the real QEMU tools: the bits are
 * exactly the blocks qemu-io wrote, across several bitmap clusters; the
 * flags say in use after a writer is killed and not auto once disabled;
 * the tracker's wrapper names its raw file as its data file exactly, even
 * under a path with commas; and a damaged file (cut short, any metadata
 * byte changed) gives an error or a bitmap, never a crash or a read
 * outside the file (fuzz.qcow2 goes further).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "failback/qcow2.h"
#include "failback/tracker.h"
#include "image.h"

#define MIB (1024ull * 1024)
#define BLK (64ull * 1024)

static char dir[256], raw[300], img[300];

static int
sh(const char *fmt, ...)
{
	char    cmd[2048];
	va_list ap;
	int     st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int
setup(void **state)
{
	(void)state;
	if (fbt_qemu_dir("qcow2_test", dir, sizeof(dir)) != 0)
		return -1;
	snprintf(raw, sizeof(raw), "%s/disk.raw", dir);
	snprintf(img, sizeof(img), "%s/disk.qcow2", dir);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	return sh("rm -rf '%s'", dir) == 0 ? 0 : -1;
}

/* A standalone qcow2 image of mib MiB with 512-byte clusters, so that its
 * bitmap spans several clusters (4096 bits, 256 MiB of disk, each), and
 * the bitmap fb-x. (A wrapper over a raw file, as the tracker makes it, is
 * a_wrapper_over_a_path_with_commas_names_it_exactly's.) */
static void
make_image(unsigned mib)
{
	assert_int_equal(sh("rm -f '%s' && qemu-img create -q -f qcow2 -o cluster_size=512 '%s' %uM && "
	                    "qemu-img bitmap -f qcow2 --add --granularity 65536 '%s' fb-x",
	                    img, img, mib, img),
	                 0);
}

static void
write_at(const char *path, uint64_t off, uint64_t len)
{
	assert_int_equal(sh("qemu-io -f qcow2 -c 'write -P 7 %llu %llu' '%s' >/dev/null",
	                    (unsigned long long)off, (unsigned long long)len, path),
	                 0);
}

static void
the_bits_are_the_blocks_qemu_io_wrote(void **state)
{
	/* in the first, second and last bitmap clusters, one write over two
	 * blocks, one unaligned write inside a block */
	const uint64_t  w[][2] = {{0, 4096},
	                          {5 * BLK + 100, 10},
	                          {300 * MIB - BLK / 2, BLK},
	                          {700 * MIB + 3 * BLK, 2 * BLK},
	                          {1024 * MIB - BLK, BLK}};
	uint8_t         want[16384] = {0};
	fb_qcow2_bitmap b;
	char            why[400];

	(void)state;
	make_image(1024);
	for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++) {
		write_at(img, w[i][0], w[i][1]);
		for (uint64_t k = w[i][0] / BLK; k * BLK < w[i][0] + w[i][1]; k++)
			want[k] = 1;
	}
	if (fb_qcow2_read(img, "fb-x", 1024 * MIB, &b, why, sizeof(why)) != 0)
		fail_msg("%s", why);
	assert_int_equal(b.size, 1024 * MIB);
	assert_string_equal(b.data_file, "");
	assert_int_equal(b.granularity, BLK);
	assert_int_equal(b.flags, FB_QCOW2_AUTO);
	assert_int_equal(b.nbits, 16384);
	for (uint64_t k = 0; k < 16384; k++)
		if (b.bits[k] != want[k])
			fail_msg("block %llu: bit %u, qemu-io wrote it: %u", (unsigned long long)k,
			         b.bits[k], want[k]);
	free(b.bits);

	/* a name that is not there; find reads no bits */
	assert_int_equal(fb_qcow2_read(img, "fb-y", 1024 * MIB, &b, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "has no bitmap fb-y"));
	/* another size: nothing is read (or allocated) */
	assert_int_equal(fb_qcow2_read(img, "fb-x", 512 * MIB, &b, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "not 536870912"));
	assert_null(b.bits);
	assert_int_equal(fb_qcow2_find(img, "fb-x", &b, why, sizeof(why)), 0);
	assert_null(b.bits);
}

static void
a_killed_writer_leaves_it_in_use_and_a_disabled_one_is_not_auto(void **state)
{
	fb_qcow2_bitmap b;
	char            why[400];

	(void)state;
	assert_int_equal(sh("rm -f '%s' && qemu-img create -q -f qcow2 '%s' 64M && "
	                    "qemu-img bitmap -f qcow2 --add --granularity 65536 '%s' fb-x",
	                    img, img, img),
	                 0);
	/* a standalone image: no data file */
	assert_int_equal(fb_qcow2_find(img, "fb-x", &b, why, sizeof(why)), 0);
	assert_string_equal(b.data_file, "");
	assert_int_equal(b.flags, FB_QCOW2_AUTO);
	/* qemu-io killed while it has the image open */
	(void)sh("qemu-io -f qcow2 -c 'write 0 64k' -c 'sigraise 9' '%s' >/dev/null 2>&1", img);
	assert_int_equal(fb_qcow2_find(img, "fb-x", &b, why, sizeof(why)), 0);
	assert_true(b.flags & FB_QCOW2_IN_USE);

	assert_int_equal(sh("qemu-img create -q -f qcow2 '%s' 64M && "
	                    "qemu-img bitmap -f qcow2 --add --granularity 65536 --disable '%s' fb-x",
	                    img, img),
	                 0);
	assert_int_equal(fb_qcow2_find(img, "fb-x", &b, why, sizeof(why)), 0);
	assert_int_equal(b.flags, 0);
}

/* Writes the first len bytes of img_bytes to path. */
static void
put(const char *path, const uint8_t *img_bytes, size_t len)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(img_bytes, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static void
a_damaged_file_gives_an_error_never_a_crash(void **state)
{
	fb_qcow2_bitmap b;
	char            why[400], cut[400];
	struct stat     st;
	uint8_t        *whole;
	FILE           *f;
	int             errors = 0;
	size_t          n;

	(void)state;
	/* a small file whose bitmap table spans several clusters */
	make_image(600);
	write_at(img, 0, BLK);
	write_at(img, 500 * MIB, BLK);
	assert_int_equal(stat(img, &st), 0);
	n = (size_t)st.st_size;
	assert_true(n >= 8192 && n < (4u << 20));
	whole = malloc(n);
	assert_non_null(whole);
	f = fopen(img, "rb");
	assert_non_null(f);
	assert_int_equal(fread(whole, 1, n, f), n);
	fclose(f);

	/* cut short anywhere: an error naming the file */
	snprintf(cut, sizeof(cut), "%s/cut.qcow2", dir);
	for (size_t len = 0; len < n; len += n / 256 + 1) {
		put(cut, whole, len);
		if (fb_qcow2_read(cut, "fb-x", 600 * MIB, &b, why, sizeof(why)) == 0)
			free(b.bits); /* only if what is left still holds it all */
		else
			assert_non_null(strstr(why, cut));
	}
	if (fb_qcow2_read(img, "fb-x", 600 * MIB, &b, why, sizeof(why)) != 0)
		fail_msg("%s", why);
	assert_int_equal(b.bits[0] + b.bits[8000] + b.bits[9599], 2);
	free(b.bits);
	/* every byte of the first and the last 4 KiB (the header and its
	 * extensions; the bitmap directory, table and data QEMU wrote last)
	 * inverted in turn */
	put(cut, whole, n);
	f = fopen(cut, "r+b");
	assert_non_null(f);
	for (size_t i = 0; i < n; i = i + 1 == 4096 && n > 8192 ? n - 4096 : i + 1) {
		uint8_t inv = (uint8_t)~whole[i];

		assert_int_equal(pwrite(fileno(f), &inv, 1, (off_t)i), 1);
		if (fb_qcow2_read(cut, "fb-x", 600 * MIB, &b, why, sizeof(why)) == 0)
			free(b.bits);
		else
			errors++;
		assert_int_equal(pwrite(fileno(f), whole + i, 1, (off_t)i), 1);
	}
	fclose(f);
	assert_true(errors > 0);
	free(whole);
	/* not a qcow2 file at all */
	assert_int_equal(sh("head -c 1048576 /dev/urandom > '%s'", raw), 0);
	assert_int_equal(fb_qcow2_read(raw, "fb-x", 600 * MIB, &b, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "is not a qcow2 image"));
}

/* The tracker's wrapper over a raw disk whose path holds commas (QEMU's
 * option separator): it names exactly that file as its data file. */
static void
a_wrapper_over_a_path_with_commas_names_it_exactly(void **state)
{
	char            d[400], path[500], w[600], why[400];
	fb_qcow2_bitmap b;
	fb_err          err = {0};

	(void)state;
	snprintf(d, sizeof(d), "%s/a,data_file_raw=off,b", dir);
	assert_int_equal(sh("mkdir -p '%s' && truncate -s 8M '%s/disk.raw'", d, d), 0);
	snprintf(path, sizeof(path), "%s/disk.raw", d);
	if (tracker_create(path, "raw", 8 * MIB, "11111111-2222-3333-4444-555555555555", &err) !=
	    FB_RV_OK)
		fail_msg("%s", err.msg);
	snprintf(w, sizeof(w), "%s.qcow2", path);
	if (fb_qcow2_find(w, "fb-11111111-2222-3333-4444-555555555555", &b, why, sizeof(why)) != 0)
		fail_msg("%s", why);
	assert_string_equal(b.data_file, path);
	assert_int_equal(b.size, 8 * MIB);
	assert_int_equal(b.flags, FB_QCOW2_AUTO);
	/* and the raw image was left as it was: still 8 MiB of zeros */
	assert_int_equal(sh("cmp -s -n 8388608 '%s' /dev/zero", path), 0);
}

/* After a failback (its writes around the wrapper, its base pending), the
 * commit starts the bitmap over from the base's point, whether the old
 * bitmap is that point's (cleared in place), in use after a killed writer
 * or another point's (the wrapper made anew); the raw data stays as the
 * failback left it, and a write through the wrapper after the commit is
 * tracked again. */
static void
a_commit_starts_the_bitmap_over_from_the_new_base(void **state)
{
	static const char *const rp[] = {"11111111-2222-3333-4444-555555555555",
	                                 "11111111-2222-3333-4444-555555555555",
	                                 "66666666-7777-8888-9999-000000000000"};
	static fb_hash           leaves[128];
	char                     w[400], why[400], at[FB_ID_LEN + 1];
	fb_hash                 *base;
	uint8_t                 *bits;
	fb_err                   err = {0};

	(void)state;
	assert_int_equal(sh("truncate -s 8M '%s'", raw), 0);
	if (tracker_create(raw, "raw", 8 * MIB, rp[0], &err) != FB_RV_OK)
		fail_msg("%s", err.msg);
	tracker_wrapper(raw, w, sizeof(w));
	for (size_t i = 0; i < 3; i++) {
		/* the VM writes block 0 through the wrapper; for the second
		 * round it is killed with the image open (the bitmap in use) */
		if (i == 1)
			(void)sh("qemu-io -f qcow2 -c 'write -P 7 0 64k' -c 'sigraise 9' '%s' "
			         ">/dev/null 2>&1", w);
		else
			write_at(w, 0, BLK);
		/* the failback: base dropped, block 3 written around the wrapper,
		 * its leaves left pending for the commit */
		tracker_suspend(raw);
		assert_int_equal(sh("printf 'failback' | dd of='%s' bs=65536 seek=3 conv=notrunc "
		                    "status=none", raw),
		                 0);
		assert_int_equal(tracker_changed(raw, "raw", 8 * MIB, &base, &bits, at, why,
		                                 sizeof(why)),
		                 0);
		leaves[5].b[0] = (uint8_t)(i + 1);
		if (tracker_base_write(raw, rp[i], leaves, 128, 1, &err) != FB_RV_OK ||
		    tracker_commit(raw, "raw", 8 * MIB, &err) != FB_RV_OK)
			fail_msg("round %zu: %s", i, err.msg);
		if (tracker_changed(raw, "raw", 8 * MIB, &base, &bits, at, why, sizeof(why)) != 1)
			fail_msg("round %zu: %s", i, why);
		assert_string_equal(at, rp[i]);
		assert_int_equal(base[5].b[0], i + 1);
		for (size_t k = 0; k < 128; k++)
			if (bits[k] != 0)
				fail_msg("round %zu: block %zu is dirty right after the commit", i, k);
		free(base);
		free(bits);
		/* the data is what the VM and the failback wrote */
		assert_int_equal(sh("test $(head -c 65536 '%s' | tr -d '\\007' | wc -c) -eq 0", raw),
		                 0);
	}
	assert_int_equal(sh("dd if='%s' bs=65536 skip=3 count=1 status=none | head -c 8 | "
	                    "grep -qx failback",
	                    raw),
	                 0);
	/* and writes are tracked again from the last point */
	write_at(w, 9 * BLK, 10);
	if (tracker_changed(raw, "raw", 8 * MIB, &base, &bits, at, why, sizeof(why)) != 1)
		fail_msg("%s", why);
	for (size_t k = 0; k < 128; k++)
		assert_int_equal(bits[k], k == 9);
	free(base);
	free(bits);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(the_bits_are_the_blocks_qemu_io_wrote),
	    cmocka_unit_test(a_killed_writer_leaves_it_in_use_and_a_disabled_one_is_not_auto),
	    cmocka_unit_test(a_damaged_file_gives_an_error_never_a_crash),
	    cmocka_unit_test(a_wrapper_over_a_path_with_commas_names_it_exactly),
	    cmocka_unit_test(a_commit_starts_the_bitmap_over_from_the_new_base),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
