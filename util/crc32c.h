/*
 * crc32c.h - CRC-32C (Castagnoli), the checksum of every frame.
 *
 * crc32c(0, buf, len) checksums a buffer; crc32c(prev, more, n) continues
 * it (zlib's convention).  The SSE4.2 path runs three interleaved lanes so
 * that large values checksum near memory speed; other CPUs use tables.
 */
#ifndef SHMBUS_SHM_CRC32C_H
#define SHMBUS_SHM_CRC32C_H

#include <stddef.h>
#include <stdint.h>

uint32_t crc32c(uint32_t crc, const void *buf, size_t len);

/* crc32c(0, a || b) for two buffers, in one call (a frame's header and
 * payload). */
uint32_t crc32c2(const void *a, size_t alen, const void *b, size_t blen);

/* The portable table path, exposed so tests can check one against the other. */
uint32_t crc32c_sw(uint32_t crc, const void *buf, size_t len);

#endif
