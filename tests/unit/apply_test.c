/*
 * apply_test.c - undo-protected writes (apply.h): whatever file operation
 * fails, and wherever a crash cuts the log, rolling back returns every
 * disk to its content before the first write, byte for byte.
 *
 * Each operation of the fsops table (open, pread, pwrite, zero, fsync)
 * is failed in turn, once as a crash (it and every later one fail, as if
 * the process died there) while applying, then while rolling back; the
 * rollback that follows with working disks must restore the originals.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "failback/apply.h"
#include "failback/crc32c.h"
#include "failback/fsops.h"

#define D0_SIZE (16u * FB_BLOCK_SIZE)
#define D1_SIZE (3u * FB_BLOCK_SIZE + 1000u) /* a short last block */

static char     dir[256], undo[300], d0[300], d1[300];
static uint8_t *orig0, *orig1;

/* --- fault injection --- */

static long fi_count, fi_fail_at = -1;

static int
fi_hit(void)
{
	long n = fi_count++;

	return fi_fail_at >= 0 && n >= fi_fail_at;
}

static ssize_t
fi_pwrite(int fd, const void *buf, size_t n, off_t off)
{
	if (fi_hit()) {
		errno = EIO;
		return -1;
	}
	return pwrite(fd, buf, n, off) == (ssize_t)n ? (ssize_t)n : -1;
}

static ssize_t
fi_pread(int fd, void *buf, size_t n, off_t off)
{
	if (fi_hit()) {
		errno = EIO;
		return -1;
	}
	return pread(fd, buf, n, off) == (ssize_t)n ? (ssize_t)n : -1;
}

static int
fi_fsync(int fd)
{
	if (fi_hit()) {
		errno = EIO;
		return -1;
	}
	return fsync(fd);
}

static int
fi_punch(int fd, off_t off, off_t len)
{
	uint8_t z[FB_BLOCK_SIZE];

	if (fi_hit()) {
		errno = ENOSPC;
		return -1;
	}
	memset(z, 0, sizeof(z));
	return pwrite(fd, z, (size_t)len, off) == len ? 0 : -1;
}

static int
fi_open(const char *path, int flags, mode_t mode)
{
	if (fi_hit()) {
		errno = EMFILE;
		return -1;
	}
	return open(path, flags | O_CLOEXEC, mode);
}

static const fb_fsops fi_ops = {.pwrite = fi_pwrite,
                                .fsync  = fi_fsync,
                                .pread  = fi_pread,
                                .punch  = fi_punch,
                                .open   = fi_open,
                                .zero   = fi_punch};

static void
arm(long fail_at)
{
	fi_count   = 0;
	fi_fail_at = fail_at;
	fb_fsops_set(&fi_ops);
}

static void
disarm(void)
{
	fb_fsops_set(NULL);
	fi_fail_at = -1;
}

/* --- the disks --- */

static uint8_t *
random_bytes(size_t n, unsigned seed)
{
	uint8_t *b = malloc(n);

	srand(seed);
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)rand();
	return b;
}

static void
write_file(const char *path, const uint8_t *data, size_t n)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, n, f), n);
	fclose(f);
}

static void
assert_file_is(const char *path, const uint8_t *data, size_t n)
{
	uint8_t *got = malloc(n + 1);
	FILE    *f   = fopen(path, "rb");

	assert_non_null(f);
	assert_int_equal(fread(got, 1, n + 1, f), n);
	fclose(f);
	assert_memory_equal(got, data, n);
	free(got);
}

static void
fresh_disks(void)
{
	write_file(d0, orig0, D0_SIZE);
	write_file(d1, orig1, D1_SIZE);
	unlink(undo);
}

static const fb_apply_disk disks[2] = {{d0, D0_SIZE, NULL, -1}, {d1, D1_SIZE, NULL, -1}};

/* A failback's writes: two batches on disk 0 (one with a hole), one on the
 * short disk 1, each made durable. Returns the first error. */
static uint32_t
scenario(fb_err *err)
{
	uint8_t *data = random_bytes(4 * FB_BLOCK_SIZE, 99);
	uint64_t b0[] = {1, 3, 5, 15}, b1[] = {7, 3}, b2[] = {0, 3};
	uint8_t  z0[] = {0, 0, 0, 0}, z1[] = {1, 0}, z2[] = {0, 0};
	fb_apply *a = NULL;
	uint32_t  rv;

	if ((rv = fb_apply_open(&a, undo, disks, 2, err)) == FB_RV_OK &&
	    (rv = fb_apply_blocks(a, 0, b0, z0, data, 4, err)) == FB_RV_OK &&
	    (rv = fb_apply_sync(a, 0, err)) == FB_RV_OK &&
	    /* block 3 again: its second record holds the half-new content */
	    (rv = fb_apply_blocks(a, 0, b1, z1, data, 2, err)) == FB_RV_OK &&
	    (rv = fb_apply_sync(a, 0, err)) == FB_RV_OK &&
	    (rv = fb_apply_blocks(a, 1, b2, z2, data, 2, err)) == FB_RV_OK)
		rv = fb_apply_sync(a, 1, err);
	fb_apply_close(a);
	free(data);
	return rv;
}

static int
setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/fb-apply-test-%d", (int)getpid());
	mkdir(dir, 0700);
	snprintf(undo, sizeof(undo), "%s/undo/vm", dir);
	snprintf(d0, sizeof(d0), "%s/disk0", dir);
	snprintf(d1, sizeof(d1), "%s/disk1", dir);
	orig0 = random_bytes(D0_SIZE, 1);
	orig1 = random_bytes(D1_SIZE, 2);
	return 0;
}

static int
teardown(void **state)
{
	char cmd[300];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	free(orig0);
	free(orig1);
	return system(cmd) == 0 ? 0 : -1;
}

static void
writes_land_and_rollback_restores_the_disks(void **state)
{
	fb_err   err;
	uint64_t records;
	uint8_t  zero[FB_BLOCK_SIZE], b[FB_BLOCK_SIZE];
	int      fd;

	(void)state;
	fresh_disks();
	assert_int_equal(scenario(&err), FB_RV_OK);
	/* the writes landed: block 7 reads as zeros now, block 1 changed */
	memset(zero, 0, sizeof(zero));
	fd = open(d0, O_RDONLY);
	assert_int_equal(pread(fd, b, FB_BLOCK_SIZE, 7 * (off_t)FB_BLOCK_SIZE), FB_BLOCK_SIZE);
	assert_memory_equal(b, zero, FB_BLOCK_SIZE);
	assert_int_equal(pread(fd, b, FB_BLOCK_SIZE, 1 * (off_t)FB_BLOCK_SIZE), FB_BLOCK_SIZE);
	assert_memory_not_equal(b, orig0 + FB_BLOCK_SIZE, FB_BLOCK_SIZE);
	close(fd);
	assert_int_equal(fb_apply_rollback(undo, disks, 2, &records, &err), FB_RV_OK);
	assert_int_equal(records, 8);
	assert_file_is(d0, orig0, D0_SIZE);
	assert_file_is(d1, orig1, D1_SIZE);
	assert_int_equal(access(undo, F_OK), -1); /* a complete rollback forgets the log */
	/* and a second rollback has nothing to do */
	assert_int_equal(fb_apply_rollback(undo, disks, 2, &records, &err), FB_RV_OK);
	assert_int_equal(records, 0);
}

static void
a_crash_at_any_operation_while_applying_rolls_back_exactly(void **state)
{
	fb_err err;
	long   total;

	(void)state;
	fresh_disks();
	arm(-1);
	assert_int_equal(scenario(&err), FB_RV_OK);
	total = fi_count;
	disarm();
	assert_true(total > 20);
	for (long k = 0; k < total; k++) {
		fresh_disks();
		arm(k);
		assert_int_not_equal(scenario(&err), FB_RV_OK);
		disarm();
		assert_int_equal(fb_apply_rollback(undo, disks, 2, NULL, &err), FB_RV_OK);
		assert_file_is(d0, orig0, D0_SIZE);
		assert_file_is(d1, orig1, D1_SIZE);
	}
}

static void
a_failed_rollback_keeps_the_log_and_can_be_run_again(void **state)
{
	fb_err err;
	long   total;

	(void)state;
	fresh_disks();
	assert_int_equal(scenario(&err), FB_RV_OK);
	arm(-1); /* count the rollback's operations */
	assert_int_equal(fb_apply_rollback(undo, disks, 2, NULL, &err), FB_RV_OK);
	total = fi_count;
	disarm();
	assert_true(total > 8);
	for (long k = 0; k < total; k++) {
		fresh_disks();
		assert_int_equal(scenario(&err), FB_RV_OK);
		arm(k);
		if (fb_apply_rollback(undo, disks, 2, NULL, &err) != FB_RV_OK) {
			disarm();
			/* The log is kept for another try, unless the failure was the
			 * directory fsync after removing it, when the disks are
			 * already restored and durable. */
			if (access(undo, F_OK) == 0)
				assert_int_equal(fb_apply_rollback(undo, disks, 2, NULL, &err), FB_RV_OK);
		}
		disarm();
		assert_file_is(d0, orig0, D0_SIZE);
		assert_file_is(d1, orig1, D1_SIZE);
	}
}

static void
undo_log_survives_torn_write(void **state)
{
	fb_err      err;
	struct stat st;
	fb_apply   *a;
	uint8_t    *data = random_bytes(FB_BLOCK_SIZE, 7);
	uint64_t    blk = 9, records;
	uint8_t     z = 0;

	(void)state;
	fresh_disks();
	assert_int_equal(scenario(&err), FB_RV_OK);
	assert_int_equal(stat(undo, &st), 0);
	/* A crash while appending the record of block 9: the log ends in half
	 * a record and block 9 was never written. */
	assert_int_equal(fb_apply_open(&a, undo, disks, 2, &err), FB_RV_OK);
	assert_int_equal(fb_apply_blocks(a, 0, &blk, &z, data, 1, &err), FB_RV_OK);
	fb_apply_close(a);
	assert_int_equal(truncate(undo, st.st_size + 56 + 1000), 0);
	{
		int fd = open(d0, O_WRONLY);
		assert_int_equal(pwrite(fd, orig0 + 9 * FB_BLOCK_SIZE, FB_BLOCK_SIZE,
		                        9 * (off_t)FB_BLOCK_SIZE),
		                 FB_BLOCK_SIZE);
		close(fd);
	}
	assert_int_equal(fb_apply_rollback(undo, disks, 2, &records, &err), FB_RV_OK);
	assert_int_equal(records, 8); /* the torn one is ignored */
	assert_file_is(d0, orig0, D0_SIZE);
	assert_file_is(d1, orig1, D1_SIZE);
	/* a record whose checksum fails ends the log the same way */
	fresh_disks();
	assert_int_equal(scenario(&err), FB_RV_OK);
	{
		int     fd = open(undo, O_RDWR);
		uint8_t x;
		assert_int_equal(pread(fd, &x, 1, 100), 1);
		x ^= 0xff;
		assert_int_equal(pwrite(fd, &x, 1, 100), 1); /* inside the first record's data */
		close(fd);
	}
	assert_int_equal(fb_apply_rollback(undo, disks, 2, &records, &err), FB_RV_OK);
	assert_int_equal(records, 0);
	free(data);
}

/* The undo records' checksum is the standard CRC-32C (RFC 3720's vectors),
 * the same by the CPU's instruction and by table, in one piece or several. */
static void
the_undo_checksum_is_the_standard_crc32c(void **state)
{
	uint8_t  zeros[32], ones[32];
	uint8_t *buf = random_bytes(FB_BLOCK_SIZE + 64, 11);

	(void)state;
	memset(zeros, 0, sizeof(zeros));
	memset(ones, 0xff, sizeof(ones));
	assert_int_equal(fb_crc32c(0, "123456789", 9), 0xe3069283u);
	assert_int_equal(fb_crc32c(0, zeros, 32), 0x8a9136aau);
	assert_int_equal(fb_crc32c(0, ones, 32), 0x62a8ab43u);
	assert_int_equal(fb_crc32c_table(0, "123456789", 9), 0xe3069283u);
	for (size_t off = 0; off < 9; off++)
		for (size_t len = 0; len < 40; len++)
			assert_int_equal(fb_crc32c(0, buf + off, len), fb_crc32c_table(0, buf + off, len));
	assert_int_equal(fb_crc32c(0, buf + 3, FB_BLOCK_SIZE),
	                 fb_crc32c_table(0, buf + 3, FB_BLOCK_SIZE));
	assert_int_equal(fb_crc32c(fb_crc32c(0, buf, 1001), buf + 1001, FB_BLOCK_SIZE - 1001),
	                 fb_crc32c(0, buf, FB_BLOCK_SIZE));
	free(buf);
}

/* A log whose first records were written with SHA-256 checksums (FBU1,
 * before the CRC) and whose later ones carry CRC-32C (a failback resumed
 * after an upgrade) rolls back whole. */
static void
a_log_begun_with_sha256_records_still_rolls_back(void **state)
{
	struct {
		uint32_t magic, disk, flags, len;
		uint64_t block;
		uint8_t  sum[32];
	} h;
	fb_err       err;
	fb_apply    *a;
	uint8_t     *junk = random_bytes(FB_BLOCK_SIZE, 12);
	uint64_t     blk  = 5, records;
	uint8_t      z    = 0;
	EVP_MD_CTX  *c    = EVP_MD_CTX_new();
	unsigned int n;
	int          fd;

	(void)state;
	assert_int_equal(sizeof(h), 56);
	fresh_disks();
	unlink(undo);
	/* block 2 of disk 0: its old content in an FBU1 record, then overwritten */
	memset(&h, 0, sizeof(h));
	h.magic = 0x31554246u;
	h.len   = FB_BLOCK_SIZE;
	h.block = 2;
	EVP_DigestInit_ex(c, EVP_sha256(), NULL);
	EVP_DigestUpdate(c, &h, offsetof(__typeof__(h), sum));
	EVP_DigestUpdate(c, orig0 + 2 * FB_BLOCK_SIZE, FB_BLOCK_SIZE);
	EVP_DigestFinal_ex(c, h.sum, &n);
	EVP_MD_CTX_free(c);
	assert_true((fd = open(undo, O_WRONLY | O_CREAT | O_TRUNC, 0600)) >= 0);
	assert_int_equal(write(fd, &h, sizeof(h)), sizeof(h));
	assert_int_equal(write(fd, orig0 + 2 * FB_BLOCK_SIZE, FB_BLOCK_SIZE), FB_BLOCK_SIZE);
	close(fd);
	assert_true((fd = open(d0, O_WRONLY)) >= 0);
	assert_int_equal(pwrite(fd, junk, FB_BLOCK_SIZE, 2 * (off_t)FB_BLOCK_SIZE), FB_BLOCK_SIZE);
	close(fd);
	/* block 5 by this version: an FBU2 record appended to the same log */
	assert_int_equal(fb_apply_open(&a, undo, disks, 2, &err), FB_RV_OK);
	assert_int_equal(fb_apply_blocks(a, 0, &blk, &z, junk, 1, &err), FB_RV_OK);
	assert_int_equal(fb_apply_sync(a, 0, &err), FB_RV_OK);
	fb_apply_close(a);
	assert_int_equal(fb_apply_rollback(undo, disks, 2, &records, &err), FB_RV_OK);
	assert_int_equal(records, 2);
	assert_file_is(d0, orig0, D0_SIZE);
	assert_file_is(d1, orig1, D1_SIZE);
	free(junk);
}

static void
a_record_for_a_disk_that_does_not_fit_is_refused(void **state)
{
	fb_err              err;
	const fb_apply_disk one[1] = {{d0, D0_SIZE, NULL, -1}};

	(void)state;
	fresh_disks();
	assert_int_equal(scenario(&err), FB_RV_OK);
	/* the log names disk 1, which this list lacks: nothing is forgotten */
	assert_int_equal(fb_apply_rollback(undo, one, 1, NULL, &err), FB_RV_FAILED);
	assert_int_equal(access(undo, F_OK), 0);
	assert_int_equal(fb_apply_rollback(undo, disks, 2, NULL, &err), FB_RV_OK);
	assert_file_is(d1, orig1, D1_SIZE);
}

/* A zero block reads as zeros after fb_fs_zero on the filesystems a disk
 * lives on: ext4 or XFS (unwritten extents: the space stays allocated),
 * tmpfs (no zero range: a hole), with its neighbours and the file's size
 * (a short last block) untouched. */
static void
a_zeroed_block_reads_as_zeros_on_any_filesystem(void **state)
{
	const char *where[] = {dir, "/dev/shm"};
	uint8_t     zero[FB_BLOCK_SIZE], *back = malloc(D1_SIZE);

	(void)state;
	memset(zero, 0, sizeof(zero));
	for (size_t i = 0; i < 2; i++) {
		char        path[300];
		struct stat st;
		int         fd;

		if (i == 1 && access(where[i], W_OK) != 0) {
			fprintf(stderr, "no writable /dev/shm here: the tmpfs case is not run\n");
			continue;
		}
		snprintf(path, sizeof(path), "%s/zero-%d", where[i], (int)getpid());
		write_file(path, orig1, D1_SIZE);
		assert_true((fd = open(path, O_RDWR)) >= 0);
		assert_int_equal(fb_fs_zero(fd, (off_t)FB_BLOCK_SIZE, FB_BLOCK_SIZE), 0);
		assert_int_equal(fb_fs_zero(fd, 3 * (off_t)FB_BLOCK_SIZE, 1000), 0); /* the short end */
		assert_int_equal(fstat(fd, &st), 0);
		assert_int_equal(st.st_size, D1_SIZE);
		assert_int_equal(pread(fd, back, D1_SIZE, 0), D1_SIZE);
		close(fd);
		unlink(path);
		assert_memory_equal(back, orig1, FB_BLOCK_SIZE);
		assert_memory_equal(back + FB_BLOCK_SIZE, zero, FB_BLOCK_SIZE);
		assert_memory_equal(back + 2 * FB_BLOCK_SIZE, orig1 + 2 * FB_BLOCK_SIZE, FB_BLOCK_SIZE);
		assert_memory_equal(back + 3 * FB_BLOCK_SIZE, zero, 1000);
	}
	free(back);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(writes_land_and_rollback_restores_the_disks),
	    cmocka_unit_test(a_crash_at_any_operation_while_applying_rolls_back_exactly),
	    cmocka_unit_test(a_failed_rollback_keeps_the_log_and_can_be_run_again),
	    cmocka_unit_test(undo_log_survives_torn_write),
	    cmocka_unit_test(the_undo_checksum_is_the_standard_crc32c),
	    cmocka_unit_test(a_log_begun_with_sha256_records_still_rolls_back),
	    cmocka_unit_test(a_record_for_a_disk_that_does_not_fit_is_refused),
	    cmocka_unit_test(a_zeroed_block_reads_as_zeros_on_any_filesystem),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
