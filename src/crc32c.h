/* SPDX-License-Identifier: MIT */
/*
 * crc32c.h - CRC32C (Castagnoli), as used by iSCSI, ext4 and RocksDB.
 *
 * Debian ships no C library for CRC32C (zlib has only the IEEE polynomial), so this small
 * implementation is the product's own: the SSE4.2 crc32 instruction where the CPU has it, a
 * byte-wise table otherwise. Both give identical results (tests/test_walrec.c checks the
 * standard check value "123456789" -> 0xE3069283).
 */
#ifndef PKV_CRC32C_H
#define PKV_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Continue a CRC32C over @len bytes at @buf; pass 0 as @crc to start. */
uint32_t pkv__crc32c(uint32_t crc, const void *buf, size_t len);

#endif /* PKV_CRC32C_H */
