/*
 * hash.c - SHA-256 through OpenSSL's one-shot EVP interface (see hash.h).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "failback/hash.h"

void
fb_hash_block(const void *data, size_t len, size_t block_size, fb_hash *out)
{
	static const uint8_t zeros[4096];
	EVP_MD_CTX          *ctx = EVP_MD_CTX_new();
	unsigned int         n;

	EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	EVP_DigestUpdate(ctx, data, len);
	for (size_t pad = block_size - len; pad > 0;) {
		size_t k = pad < sizeof(zeros) ? pad : sizeof(zeros);
		EVP_DigestUpdate(ctx, zeros, k);
		pad -= k;
	}
	EVP_DigestFinal_ex(ctx, out->b, &n);
	EVP_MD_CTX_free(ctx);
}

void
fb_hash_node(const fb_hash *children, size_t n, fb_hash *out)
{
	uint8_t      buf[1 + 64 * sizeof(fb_hash)];
	unsigned int len;

	if (n > 64) /* interior nodes have at most FB_MERKLE_FANOUT children */
		n = 64;
	buf[0] = 0x01;
	memcpy(buf + 1, children, n * sizeof(fb_hash));
	EVP_Digest(buf, 1 + n * sizeof(fb_hash), out->b, &len, EVP_sha256(), NULL);
}

static pthread_once_t zero_once = PTHREAD_ONCE_INIT;
static fb_hash        zero_hash;

static void
zero_init(void)
{
	fb_hash_block(NULL, 0, FB_BLOCK_SIZE, &zero_hash);
}

const fb_hash *
fb_hash_zero(void)
{
	pthread_once(&zero_once, zero_init);
	return &zero_hash;
}

int
fb_is_zero(const void *p, size_t len)
{
	const uint8_t *b = p;

	/* Check the first 16 bytes, then compare the buffer with itself shifted. */
	for (size_t i = 0; i < len && i < 16; i++)
		if (b[i] != 0)
			return 0;
	return len <= 16 || memcmp(b, b + 16, len - 16) == 0;
}

void
fb_hash_hex(const fb_hash *h, char *out)
{
	static const char hex[] = "0123456789abcdef";

	for (int i = 0; i < FB_HASH_LEN; i++) {
		out[2 * i]     = hex[h->b[i] >> 4];
		out[2 * i + 1] = hex[h->b[i] & 15];
	}
	out[2 * FB_HASH_LEN] = '\0';
}
