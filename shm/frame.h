/*
 * frame.h - encoding and checking one frame: the record headers section,
 * the CRC, and the bounds checks a reader applies to bytes it found in
 * shared memory before it believes any length in them.
 */
#ifndef SHMBUS_SHM_FRAME_H
#define SHMBUS_SHM_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "format.h"

/*
 * A record header (Kafka's: a string name, a nullable byte value).
 * Encoded, each is: u16 name length, u32 value length (UINT32_MAX for a
 * null value), name bytes, value bytes; little-endian, unaligned.
 */
struct frame_kv {
	const char *name;
	size_t name_len;
	const void *value;   /* NULL: a null value */
	size_t value_len;
};

#define FRAME_KV_FIXED 6u
#define FRAME_KV_NULL UINT32_MAX

/* Bytes the encoded section takes, or -EMSGSIZE/-EINVAL. */
int64_t frame_headers_size(const struct frame_kv *kv, size_t n);

/* Encode into dst (frame_headers_size bytes). */
void frame_headers_encode(uint8_t *dst, const struct frame_kv *kv, size_t n);

/*
 * Decode the header at *cursor in an encoded section of `len` bytes,
 * advancing *cursor.  Returns 1 with *out filled, 0 at the end, -EBADMSG
 * if an entry runs past the section.  Pointers in *out point into buf.
 */
int frame_headers_next(const uint8_t *buf, size_t len, size_t *cursor, struct frame_kv *out);

/* Check that a section holds exactly `count` well-formed entries. */
int frame_headers_check(const uint8_t *buf, size_t len, size_t count);

/* The CRC32C of a frame of which `payload_len` bytes follow the header. */
uint32_t frame_crc(const struct frame_hdr *h, size_t payload_len);

/* A committed frame as a reader sees it, every field bounds-checked. */
struct frame_view {
	uint64_t offset;
	uint64_t pos;            /* absolute position of the frame */
	uint64_t len;            /* frame length, a multiple of 8 */
	int64_t timestamp_ns;
	const uint8_t *key;
	uint32_t key_len;
	const uint8_t *headers;
	uint32_t headers_len;
	uint16_t header_count;
	uint16_t flags;
	const uint8_t *value;
	uint32_t value_len;
	uint32_t crc;
};

/*
 * Check the fixed fields of the frame `h` of length `len` (taken from its
 * commit word) that should hold offset `off`: 0 and *v filled, or
 * -EBADMSG.  The caller has already checked that `len` fits in the ring
 * without crossing its end.
 */
int frame_parse(const struct frame_hdr *h, uint64_t len, uint64_t off, struct frame_view *v);

/* Payload bytes after the 48-byte header, as the header declares them. */
static inline uint64_t frame_payload_len(const struct frame_view *v)
{
	return (uint64_t)v->key_len + v->headers_len + v->value_len;
}

#endif
