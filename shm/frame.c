/*
 * frame.c - record headers codec and frame checks.
 *
 * Everything here reads bytes that another process wrote: no length is
 * used before it is checked against the space that holds it, and the
 * decoder never reads outside [buf, buf + len).
 */
#include "frame.h"

#include <errno.h>
#include <string.h>

#include "../util/crc32c.h"

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

int64_t frame_headers_size(const struct frame_kv *kv, size_t n)
{
	uint64_t total = 0;

	if (n > UINT16_MAX)
		return -EMSGSIZE;
	for (size_t i = 0; i < n; i++) {
		if (!kv[i].name || kv[i].name_len > UINT16_MAX)
			return -EINVAL;
		if (kv[i].value && kv[i].value_len >= FRAME_KV_NULL)
			return -EMSGSIZE;
		total += FRAME_KV_FIXED + kv[i].name_len + (kv[i].value ? kv[i].value_len : 0);
		if (total > UINT32_MAX)
			return -EMSGSIZE;
	}
	return (int64_t)total;
}

void frame_headers_encode(uint8_t *dst, const struct frame_kv *kv, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint32_t vlen = kv[i].value ? (uint32_t)kv[i].value_len : FRAME_KV_NULL;

		put16(dst, (uint16_t)kv[i].name_len);
		put32(dst + 2, vlen);
		dst += FRAME_KV_FIXED;
		memcpy(dst, kv[i].name, kv[i].name_len);
		dst += kv[i].name_len;
		if (kv[i].value) {
			memcpy(dst, kv[i].value, kv[i].value_len);
			dst += kv[i].value_len;
		}
	}
}

int frame_headers_next(const uint8_t *buf, size_t len, size_t *cursor, struct frame_kv *out)
{
	size_t at = *cursor, nlen;
	uint32_t vlen;

	if (at >= len)
		return 0;
	if (len - at < FRAME_KV_FIXED)
		return -EBADMSG;
	nlen = get16(buf + at);
	vlen = get32(buf + at + 2);
	at += FRAME_KV_FIXED;
	if (len - at < nlen)
		return -EBADMSG;
	out->name = (const char *)buf + at;
	out->name_len = nlen;
	at += nlen;
	if (vlen == FRAME_KV_NULL) {
		out->value = NULL;
		out->value_len = 0;
	} else {
		if (len - at < vlen)
			return -EBADMSG;
		out->value = buf + at;
		out->value_len = vlen;
		at += vlen;
	}
	*cursor = at;
	return 1;
}

int frame_headers_check(const uint8_t *buf, size_t len, size_t count)
{
	struct frame_kv kv;
	size_t cursor = 0, seen = 0;
	int rc;

	while ((rc = frame_headers_next(buf, len, &cursor, &kv)) == 1)
		seen++;
	if (rc < 0 || seen != count)
		return -EBADMSG;
	return 0;
}

uint32_t frame_crc(const struct frame_hdr *h, size_t payload_len)
{
	return crc32c2((const uint8_t *)h + FRAME_CRC_START, FRAME_CRC_END - FRAME_CRC_START,
		       (const uint8_t *)h + FRAME_HDR_SIZE, payload_len);
}

int frame_parse(const struct frame_hdr *h, uint64_t len, uint64_t off, struct frame_view *v)
{
	const uint8_t *base = (const uint8_t *)h;
	uint64_t klen, hlen, vlen;

	/* One snapshot of each field: the bytes may change under us. */
	uint64_t hoff = load_relaxed(&h->offset);

	klen = load_relaxed(&h->key_len);
	hlen = load_relaxed(&h->headers_len);
	vlen = load_relaxed(&h->value_len);
	if (len < FRAME_HDR_SIZE || hoff != off || frame_size(klen, hlen, vlen) > len)
		return -EBADMSG;
	v->offset = off;
	v->len = len;
	v->timestamp_ns = load_relaxed(&h->timestamp_ns);
	v->key = base + FRAME_HDR_SIZE;
	v->key_len = (uint32_t)klen;
	v->headers = v->key + klen;
	v->headers_len = (uint32_t)hlen;
	v->header_count = load_relaxed(&h->header_count);
	v->flags = load_relaxed(&h->flags);
	v->value = v->headers + hlen;
	v->value_len = (uint32_t)vlen;
	v->crc = load_relaxed(&h->crc);
	return 0;
}
