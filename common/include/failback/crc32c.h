/*
 * crc32c.h - CRC-32C (Castagnoli), the checksum of records that guard
 * against torn and damaged writes, not against a forger: the undo log's
 * records (undo.c). On x86-64 with SSE4.2 the CPU's crc32 instruction does
 * it (measured here: see crc32c.c); elsewhere a table does.
 */
#ifndef FAILBACK_CRC32C_H
#define FAILBACK_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* fb_crc32c continues crc (0 to start) over len bytes: the standard
 * CRC-32C, so fb_crc32c(0, "123456789", 9) == 0xe3069283. Thread-safe. */
uint32_t fb_crc32c(uint32_t crc, const void *data, size_t len);

/* The same by table alone, whatever the CPU: for tests. */
uint32_t fb_crc32c_table(uint32_t crc, const void *data, size_t len);

#endif
