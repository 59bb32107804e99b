/*
 * hash.h - the block hash: SHA-256 from OpenSSL's libcrypto, chosen by
 * measurement (docs/STORAGE.md: 1532 MiB/s per core here with the CPU's SHA
 * extensions, against 1044 for BLAKE2b-512 and 361 for mbedTLS SHA-256).
 * Collision resistant, so a guest cannot forge a block that compares equal.
 *
 * A leaf hash covers a whole block: the last, short block of a disk is
 * hashed as if padded with zeros to the block size, so every leaf preimage
 * is exactly block-size bytes and can never be mistaken for an interior
 * Merkle node (which is 1 + k*32 bytes). Its id "sha256" is recorded in
 * every manifest.
 */
#ifndef FAILBACK_HASH_H
#define FAILBACK_HASH_H

#include <stddef.h>
#include <stdint.h>

#define FB_HASH_LEN       32
#define FB_HASH_ALGORITHM "sha256"
#define FB_BLOCK_SIZE     (64u * 1024u)

typedef struct fb_hash {
	uint8_t b[FB_HASH_LEN];
} fb_hash;

/* fb_hash_block hashes len (<= block_size) bytes padded with zeros to
 * block_size. Thread-safe. */
void fb_hash_block(const void *data, size_t len, size_t block_size, fb_hash *out);

/* fb_hash_node hashes 0x01 || children (n hashes): a Merkle interior node. */
void fb_hash_node(const fb_hash *children, size_t n, fb_hash *out);

/* fb_hash_zero is the leaf hash of an all-zero FB_BLOCK_SIZE block. */
const fb_hash *fb_hash_zero(void);

/* fb_is_zero is true when len bytes at p are all zero. */
int fb_is_zero(const void *p, size_t len);

/* fb_hash_hex writes 64 hex digits and a NUL into out (65 bytes). */
void fb_hash_hex(const fb_hash *h, char *out);

#endif
