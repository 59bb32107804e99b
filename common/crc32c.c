/*
 * crc32c.c - CRC-32C (crc32c.h): the reflected Castagnoli polynomial
 * 0x82f63b78, by the crc32 instruction where SSE4.2 has it, else by
 * slicing-by-8 tables.
 *
 * `hash_bench 1024` on this machine (SHA extensions, SSE4.2), one core,
 * 64 KiB blocks: SHA-256 (libcrypto) 1271 MiB/s, CRC-32C by the instruction
 * 7349 MiB/s, by the table 1412 MiB/s.
 */
#include <pthread.h>
#include <string.h>

#include "failback/crc32c.h"

#define POLY 0x82f63b78u

static uint32_t       table[8][256];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void
table_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (POLY & (0u - (c & 1u)));
		table[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			table[t][i] = (table[t - 1][i] >> 8) ^ table[0][table[t - 1][i] & 0xffu];
}

uint32_t
fb_crc32c_table(uint32_t crc, const void *data, size_t len)
{
	const uint8_t *p = data;

	pthread_once(&table_once, table_init);
	crc = ~crc;
	for (; len > 0 && ((uintptr_t)p & 7u) != 0; len--)
		crc = (crc >> 8) ^ table[0][(crc ^ *p++) & 0xffu];
	for (; len >= 8; len -= 8, p += 8) {
		uint64_t w;

		memcpy(&w, p, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
		w = __builtin_bswap64(w);
#endif
		w ^= crc;
		crc = table[7][w & 0xffu] ^ table[6][(w >> 8) & 0xffu] ^
		      table[5][(w >> 16) & 0xffu] ^ table[4][(w >> 24) & 0xffu] ^
		      table[3][(w >> 32) & 0xffu] ^ table[2][(w >> 40) & 0xffu] ^
		      table[1][(w >> 48) & 0xffu] ^ table[0][w >> 56];
	}
	for (; len > 0; len--)
		crc = (crc >> 8) ^ table[0][(crc ^ *p++) & 0xffu];
	return ~crc;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <nmmintrin.h>

__attribute__((target("sse4.2"))) static uint32_t
crc32c_sse42(uint32_t crc, const void *data, size_t len)
{
	const uint8_t *p = data;
	uint64_t       c = ~crc;

	for (; len > 0 && ((uintptr_t)p & 7u) != 0; len--)
		c = _mm_crc32_u8((uint32_t)c, *p++);
	for (; len >= 8; len -= 8, p += 8) {
		uint64_t w;

		memcpy(&w, p, 8);
		c = _mm_crc32_u64(c, w);
	}
	for (; len > 0; len--)
		c = _mm_crc32_u8((uint32_t)c, *p++);
	return ~(uint32_t)c;
}

static int            have_sse42;
static pthread_once_t cpu_once = PTHREAD_ONCE_INIT;

static void
cpu_init(void)
{
	__builtin_cpu_init();
	have_sse42 = __builtin_cpu_supports("sse4.2");
}

uint32_t
fb_crc32c(uint32_t crc, const void *data, size_t len)
{
	pthread_once(&cpu_once, cpu_init);
	return have_sse42 ? crc32c_sse42(crc, data, len) : fb_crc32c_table(crc, data, len);
}
#else
uint32_t
fb_crc32c(uint32_t crc, const void *data, size_t len)
{
	return fb_crc32c_table(crc, data, len);
}
#endif
