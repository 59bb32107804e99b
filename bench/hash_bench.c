/*
 * hash_bench.c - single-core throughput of the block-hash candidates over
 * 64 KiB blocks (DESIGN §4): mbedTLS 2.28 SHA-256, OpenSSL 3 SHA-256 (uses
 * the CPU's SHA extensions when present) and OpenSSL BLAKE2b-512; and the
 * undo log's record checksum, CRC-32C, by the CPU's instruction and by
 * table (crc32c.h).
 *
 * usage: hash_bench [MiB per candidate]   (default 2048)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mbedtls/sha256.h>
#include <openssl/evp.h>

#include "failback/crc32c.h"

#define BLOCK (64 * 1024)

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
run_evp(const char *name, const EVP_MD *md, const unsigned char *buf, long blocks)
{
	EVP_MD_CTX   *ctx = EVP_MD_CTX_new();
	unsigned char out[64];
	unsigned int  len;
	double        t0 = now_s(), dt;

	for (long i = 0; i < blocks; i++) {
		EVP_DigestInit_ex(ctx, md, NULL);
		EVP_DigestUpdate(ctx, buf + (i % 16) * BLOCK, BLOCK);
		EVP_DigestFinal_ex(ctx, out, &len);
	}
	dt = now_s() - t0;
	EVP_MD_CTX_free(ctx);
	printf("%-28s %8.0f MiB/s\n", name, (double)blocks * BLOCK / dt / (1 << 20));
}

static void
run_crc(const char *name, uint32_t (*fn)(uint32_t, const void *, size_t), const unsigned char *buf,
        long blocks)
{
	volatile uint32_t sink = 0;
	double            t0   = now_s(), dt;

	for (long i = 0; i < blocks; i++)
		sink ^= fn(0, buf + (i % 16) * BLOCK, BLOCK);
	dt = now_s() - t0;
	(void)sink;
	printf("%-28s %8.0f MiB/s\n", name, (double)blocks * BLOCK / dt / (1 << 20));
}

int
main(int argc, char **argv)
{
	long           mib    = argc > 1 ? atol(argv[1]) : 2048;
	long           blocks = mib * 16;
	unsigned char *buf    = malloc(16 * BLOCK);
	unsigned char  out[32];
	double         t0, dt;

	for (size_t i = 0; i < 16 * BLOCK; i++)
		buf[i] = (unsigned char)(rand() >> 7);
	printf("block hash candidates, one core, %ld MiB each, 64 KiB blocks\n", mib);

	t0 = now_s();
	for (long i = 0; i < blocks; i++)
		mbedtls_sha256_ret(buf + (i % 16) * BLOCK, BLOCK, out, 0);
	dt = now_s() - t0;
	printf("%-28s %8.0f MiB/s\n", "mbedTLS 2.28 SHA-256", (double)blocks * BLOCK / dt / (1 << 20));
	run_evp("OpenSSL 3 SHA-256", EVP_sha256(), buf, blocks);
	run_evp("OpenSSL 3 BLAKE2b-512", EVP_blake2b512(), buf, blocks);
	run_crc("CRC-32C (fb_crc32c)", fb_crc32c, buf, blocks);
	run_crc("CRC-32C by table", fb_crc32c_table, buf, blocks);
	free(buf);
	return 0;
}
