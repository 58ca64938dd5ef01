/*
 * test_frame.c - the frame codec: record headers encode/decode, the
 * checks a reader applies to untrusted bytes (frame_parse,
 * frame_headers_next/check), and the coverage of the frame CRC.
 *
 * Every decode of truncated or random bytes runs on a buffer that ends
 * exactly at a PROT_NONE page, so a read one byte past it faults and the
 * test binary dies instead of passing.
 */
#include "lib/testutil.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "../util/crc32c.h"
#include "../shm/frame.h"

#define PAGE 4096

static uint64_t rng_state = 0x243f6a8885a308d3ULL;

static uint64_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dULL;
}

/* Two pages, the second inaccessible: bytes placed at the end of the
 * first have nothing readable after them. */
struct guarded {
	uint8_t *base;
};

static void guarded_init(struct guarded *g)
{
	g->base = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(g->base != MAP_FAILED);
	assert_int_equal(mprotect(g->base + PAGE, PAGE, PROT_NONE), 0);
}

static uint8_t *guarded_place(struct guarded *g, const void *src, size_t len)
{
	uint8_t *at = g->base + PAGE - len;

	assert_true(len <= PAGE);
	memcpy(at, src, len);
	return at;
}

static void guarded_free(struct guarded *g)
{
	munmap(g->base, 2 * PAGE);
}

#define KV(n, v) { .name = (n), .name_len = sizeof(n) - 1, .value = (v), .value_len = (v) ? strlen(v) : 0 }

/* ------------------------------------------------------------------ */
/* Record headers                                                      */

static void headers_round_trip_with_null_and_empty_values_and_names(void **state)
{
	static const uint8_t bin[] = { 0, 1, 2, 0xff, 0x80, 0 };
	const struct frame_kv in[] = {
		KV("content-type", "text/plain"),
		{ .name = "null-value", .name_len = 10, .value = NULL, .value_len = 0 },
		{ .name = "empty-value", .name_len = 11, .value = "", .value_len = 0 },
		{ .name = "", .name_len = 0, .value = "nameless", .value_len = 8 },
		{ .name = "", .name_len = 0, .value = NULL, .value_len = 0 },
		{ .name = "bin", .name_len = 3, .value = bin, .value_len = sizeof bin },
		KV("content-type", "again"),
	};
	size_t n = sizeof in / sizeof in[0];
	int64_t size = frame_headers_size(in, n);
	uint8_t buf[256];
	size_t cursor = 0;
	struct frame_kv out;

	(void)state;
	/* 6 fixed bytes per entry, names and non-null values */
	assert_int_equal(size, 6 * 7 + (12 + 10) + 10 + 11 + 8 + (3 + 6) + (12 + 5));
	frame_headers_encode(buf, in, n);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(frame_headers_next(buf, (size_t)size, &cursor, &out), 1);
		assert_int_equal(out.name_len, in[i].name_len);
		assert_memory_equal(out.name, in[i].name, in[i].name_len);
		if (in[i].value == NULL) {
			assert_null(out.value);
			assert_int_equal(out.value_len, 0);
		} else {
			/* an empty value is not a null one */
			assert_non_null(out.value);
			assert_int_equal(out.value_len, in[i].value_len);
			assert_memory_equal(out.value, in[i].value, in[i].value_len);
		}
	}
	assert_int_equal(cursor, (size_t)size);
	assert_int_equal(frame_headers_next(buf, (size_t)size, &cursor, &out), 0);
	assert_int_equal(frame_headers_check(buf, (size_t)size, n), 0);
}

static void headers_encoding_is_little_endian_name_len_then_value_len(void **state)
{
	const struct frame_kv in[] = {
		KV("ab", "xyz"),
		{ .name = "n", .name_len = 1, .value = NULL },
	};
	static const uint8_t want[] = {
		2, 0, 3, 0, 0, 0, 'a', 'b', 'x', 'y', 'z',
		1, 0, 0xff, 0xff, 0xff, 0xff, 'n',
	};
	uint8_t buf[sizeof want];

	(void)state;
	assert_int_equal(frame_headers_size(in, 2), sizeof want);
	frame_headers_encode(buf, in, 2);
	assert_memory_equal(buf, want, sizeof want);
}

static void headers_size_refuses_what_cannot_be_encoded(void **state)
{
	struct frame_kv kv = KV("a", "b");
	static struct frame_kv many[UINT16_MAX + 1];

	(void)state;
	assert_int_equal(frame_headers_size(NULL, 0), 0);
	kv.name = NULL;
	assert_int_equal(frame_headers_size(&kv, 1), -EINVAL);
	kv.name = "a";
	kv.name_len = UINT16_MAX + 1;
	assert_int_equal(frame_headers_size(&kv, 1), -EINVAL);
	kv.name_len = 1;
	kv.value_len = FRAME_KV_NULL; /* would read as a null value */
	assert_int_equal(frame_headers_size(&kv, 1), -EMSGSIZE);
	for (size_t i = 0; i < UINT16_MAX + 1; i++)
		many[i] = (struct frame_kv){ .name = "x", .name_len = 1 };
	assert_int_equal(frame_headers_size(many, UINT16_MAX + 1), -EMSGSIZE);
	assert_int_equal(frame_headers_size(many, UINT16_MAX), (int64_t)UINT16_MAX * 7);
}

static void headers_with_maximal_name_round_trip(void **state)
{
	static char name[UINT16_MAX];
	struct frame_kv kv = { .name = name, .name_len = sizeof name, .value = "v", .value_len = 1 }, out;
	int64_t size = frame_headers_size(&kv, 1);
	uint8_t *buf = malloc((size_t)size);
	size_t cursor = 0;

	(void)state;
	memset(name, 'n', sizeof name);
	assert_int_equal(size, 6 + UINT16_MAX + 1);
	frame_headers_encode(buf, &kv, 1);
	assert_int_equal(frame_headers_next(buf, (size_t)size, &cursor, &out), 1);
	assert_int_equal(out.name_len, UINT16_MAX);
	assert_int_equal(out.value_len, 1);
	assert_int_equal(frame_headers_check(buf, (size_t)size, 1), 0);
	free(buf);
}

/* Every prefix of a valid section: the decoder stays inside it and the
 * check refuses it (a prefix ending on an entry boundary holds fewer
 * entries than declared). */
static void every_truncation_is_refused_without_reading_past_the_end(void **state)
{
	const struct frame_kv in[] = {
		KV("a", "1"),
		{ .name = "nul", .name_len = 3, .value = NULL },
		KV("", ""),
		KV("longer-name", "a longer value of some bytes"),
		{ .name = "", .name_len = 0, .value = NULL },
	};
	size_t n = sizeof in / sizeof in[0];
	int64_t size = frame_headers_size(in, n);
	uint8_t full[128];
	struct guarded g;

	(void)state;
	guarded_init(&g);
	frame_headers_encode(full, in, n);
	for (size_t len = 0; len < (size_t)size; len++) {
		uint8_t *buf = guarded_place(&g, full, len);
		size_t cursor = 0, seen = 0;
		struct frame_kv kv;
		int rc;

		while ((rc = frame_headers_next(buf, len, &cursor, &kv)) == 1) {
			assert_true(cursor <= len);
			assert_true((const uint8_t *)kv.name >= buf &&
				    (const uint8_t *)kv.name + kv.name_len <= buf + len);
			if (kv.value)
				assert_true((const uint8_t *)kv.value >= buf &&
					    (const uint8_t *)kv.value + kv.value_len <= buf + len);
			seen++;
		}
		assert_true(rc == 0 || rc == -EBADMSG);
		assert_true(seen < n);
		if (frame_headers_check(buf, len, n) != -EBADMSG)
			fail_msg("a section cut to %zu of %lld bytes passed the check", len, (long long)size);
	}
	guarded_free(&g);
}

static void random_bytes_never_decode_outside_the_section(void **state)
{
	struct guarded g;
	uint8_t junk[512];

	(void)state;
	guarded_init(&g);
	for (int iter = 0; iter < 20000; iter++) {
		size_t len = (size_t)(rnd() % sizeof junk), cursor = 0;
		struct frame_kv kv;
		uint8_t *buf;
		int rc, steps = 0;

		for (size_t i = 0; i < len; i++) {
			/* mostly small lengths, so entries often parse */
			uint64_t r = rnd();

			junk[i] = (uint8_t)(r % 4 == 0 ? r >> 56 : (r >> 40) % 8);
		}
		buf = guarded_place(&g, junk, len);
		while ((rc = frame_headers_next(buf, len, &cursor, &kv)) == 1) {
			assert_true(cursor <= len);
			assert_true((const uint8_t *)kv.name + kv.name_len <= buf + len);
			if (kv.value)
				assert_true((const uint8_t *)kv.value + kv.value_len <= buf + len);
			assert_true(++steps <= (int)len);
		}
		assert_true(rc == 0 || rc == -EBADMSG);
		(void)frame_headers_check(buf, len, (size_t)(rnd() % 8));
	}
	guarded_free(&g);
}

static void headers_check_counts_entries_exactly(void **state)
{
	const struct frame_kv in[] = { KV("a", "1"), KV("b", "2"),
				      { .name = "c", .name_len = 1, .value = NULL } };
	uint8_t buf[64];
	int64_t size = frame_headers_size(in, 3);

	(void)state;
	frame_headers_encode(buf, in, 3);
	assert_int_equal(frame_headers_check(buf, (size_t)size, 3), 0);
	assert_int_equal(frame_headers_check(buf, (size_t)size, 2), -EBADMSG);
	assert_int_equal(frame_headers_check(buf, (size_t)size, 4), -EBADMSG);
	assert_int_equal(frame_headers_check(buf, 0, 0), 0);
	assert_int_equal(frame_headers_check(buf, 0, 1), -EBADMSG);
	/* trailing bytes that do not make a whole entry */
	assert_int_equal(frame_headers_check(buf, (size_t)size + 3, 3), -EBADMSG);
}

static void value_length_past_the_section_is_refused(void **state)
{
	/* name "a", value declared 0xfffffffe bytes long */
	static const uint8_t bad[] = { 1, 0, 0xfe, 0xff, 0xff, 0xff, 'a', 'v' };
	static const uint8_t long_name[] = { 0xff, 0xff, 0, 0, 0, 0, 'a' };
	struct guarded g;
	struct frame_kv kv;
	size_t cursor = 0;
	uint8_t *buf;

	(void)state;
	guarded_init(&g);
	buf = guarded_place(&g, bad, sizeof bad);
	assert_int_equal(frame_headers_next(buf, sizeof bad, &cursor, &kv), -EBADMSG);
	assert_int_equal(cursor, 0);
	buf = guarded_place(&g, long_name, sizeof long_name);
	assert_int_equal(frame_headers_next(buf, sizeof long_name, &cursor, &kv), -EBADMSG);
	guarded_free(&g);
}

/* ------------------------------------------------------------------ */
/* frame_parse and frame_crc                                           */

/* A frame of `len` bytes in buf (8-aligned) for offset `off`. */
static struct frame_hdr *make_frame(uint8_t *buf, uint64_t off, uint32_t klen, uint32_t hlen,
				    uint32_t vlen)
{
	struct frame_hdr *h = (struct frame_hdr *)(void *)buf;
	uint64_t len = frame_size(klen, hlen, vlen);

	memset(buf, 0, len);
	h->commit = cw_make(FRAME_COMMITTED, len, off);
	h->offset = off;
	h->timestamp_ns = 1234567890123LL;
	h->key_len = klen;
	h->headers_len = hlen;
	h->value_len = vlen;
	h->header_count = 0;
	h->flags = 0;
	h->pid = 42;
	for (uint32_t i = 0; i < klen + hlen + vlen; i++)
		buf[FRAME_HDR_SIZE + i] = (uint8_t)(i * 13 + 7);
	h->crc = frame_crc(h, (size_t)klen + hlen + vlen);
	return h;
}

static void frame_parse_returns_the_fields_and_payload_pointers(void **state)
{
	uint64_t buf[32];
	struct frame_hdr *h = make_frame((uint8_t *)buf, 77, 5, 10, 20);
	struct frame_view v;

	(void)state;
	assert_int_equal(frame_size(5, 10, 20), 88);
	assert_int_equal(frame_parse(h, 88, 77, &v), 0);
	assert_int_equal(v.offset, 77);
	assert_int_equal(v.len, 88);
	assert_int_equal(v.timestamp_ns, 1234567890123LL);
	assert_ptr_equal(v.key, (uint8_t *)h + 48);
	assert_int_equal(v.key_len, 5);
	assert_ptr_equal(v.headers, (uint8_t *)h + 53);
	assert_int_equal(v.headers_len, 10);
	assert_ptr_equal(v.value, (uint8_t *)h + 63);
	assert_int_equal(v.value_len, 20);
	assert_int_equal(v.crc, h->crc);
	assert_int_equal(frame_payload_len(&v), 35);
}

static void frame_parse_refuses_lengths_that_do_not_fit(void **state)
{
	uint64_t buf[32];
	struct frame_hdr *h = make_frame((uint8_t *)buf, 5, 8, 0, 8);
	struct frame_view v;

	(void)state;
	assert_int_equal(frame_parse(h, 64, 5, &v), 0);
	/* the offset field must be the expected offset */
	assert_int_equal(frame_parse(h, 64, 6, &v), -EBADMSG);
	assert_int_equal(frame_parse(h, 64, 5 + (1ULL << 32), &v), -EBADMSG);
	/* the frame must hold key + headers + value */
	assert_int_equal(frame_parse(h, 56, 5, &v), -EBADMSG);
	/* too short for a header */
	assert_int_equal(frame_parse(h, 40, 5, &v), -EBADMSG);
	assert_int_equal(frame_parse(h, 0, 5, &v), -EBADMSG);
	h->value_len = 9;
	assert_int_equal(frame_parse(h, 64, 5, &v), -EBADMSG);
	h->value_len = 8;
	/* lengths that overflow 32 bits when added must not wrap */
	h->key_len = UINT32_MAX;
	h->value_len = UINT32_MAX;
	h->headers_len = UINT32_MAX;
	assert_int_equal(frame_parse(h, 64, 5, &v), -EBADMSG);
	h->key_len = 0x80000000u;
	h->value_len = 0x80000000u;
	h->headers_len = 0;
	assert_int_equal(frame_parse(h, 64, 5, &v), -EBADMSG);
	h->key_len = 0;
	h->value_len = 0;
	h->headers_len = 16;
	assert_int_equal(frame_parse(h, 64, 5, &v), 0);
	h->headers_len = 17;
	assert_int_equal(frame_parse(h, 64, 5, &v), -EBADMSG);
}

/* The CRC covers bytes 8..43 and the payload, not the commit word (it
 * changes state) nor the CRC field: every bit of the covered bytes
 * changes it, no bit of the others does. */
static void frame_crc_covers_exactly_the_fields_after_the_commit_word(void **state)
{
	uint64_t buf[32];
	uint8_t *b = (uint8_t *)buf;
	struct frame_hdr *h = make_frame(b, 3, 7, 9, 33);
	size_t payload = 7 + 9 + 33;
	uint32_t good = frame_crc(h, payload);

	(void)state;
	assert_int_equal(good, h->crc);
	assert_int_equal(good, crc32c(crc32c(0, b + 8, 36), b + 48, payload));
	for (size_t bit = 0; bit < (48 + payload) * 8; bit++) {
		bool covered = (bit / 8 >= 8 && bit / 8 < 44) || bit / 8 >= 48;
		uint32_t c;

		b[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		c = frame_crc(h, payload);
		b[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		if (covered && c == good)
			fail_msg("flipping bit %zu (byte %zu) did not change the frame CRC", bit, bit / 8);
		if (!covered && c != good)
			fail_msg("bit %zu (byte %zu) is outside the CRC but changed it", bit, bit / 8);
	}
	/* bytes after the payload (padding) are not covered */
	b[48 + payload] ^= 0xff;
	assert_int_equal(frame_crc(h, payload), good);
}

static void frame_size_rounds_up_to_eight(void **state)
{
	(void)state;
	assert_int_equal(frame_size(0, 0, 0), 48);
	assert_int_equal(frame_size(0, 0, 1), 56);
	assert_int_equal(frame_size(1, 1, 6), 56);
	assert_int_equal(frame_size(1, 1, 7), 64);
	assert_int_equal(frame_size(UINT32_MAX, UINT32_MAX, UINT32_MAX),
			 (48 + 3 * (uint64_t)UINT32_MAX + 7) & ~7ULL);
}

static void commit_word_packs_state_length_and_offset_bits(void **state)
{
	uint64_t w = cw_make(FRAME_COMMITTED, 4096, 0x1234567890ULL);

	(void)state;
	assert_int_equal(cw_state(w), FRAME_COMMITTED);
	assert_int_equal(cw_len(w), 4096);
	assert_int_equal(cw_off(w), 0x34567890u);
	w = cw_make(FRAME_PADDING, FRAME_LEN_UNITS_MAX * 8, UINT64_MAX);
	assert_int_equal(cw_state(w), FRAME_PADDING);
	assert_int_equal(cw_len(w), FRAME_LEN_UNITS_MAX * 8);
	assert_int_equal(cw_off(w), UINT32_MAX);
	w = cw_make(FRAME_ABORTED, 8, 1);
	assert_int_equal(cw_state(w), FRAME_ABORTED);
	assert_int_equal(cw_len(w), 8);
	assert_int_equal(cw_off(w), 1);
	assert_true(w != 0);
	assert_int_equal(cw_state(cw_make(FRAME_CLAIMED, 48, 0)), FRAME_CLAIMED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(headers_round_trip_with_null_and_empty_values_and_names),
		cmocka_unit_test(headers_encoding_is_little_endian_name_len_then_value_len),
		cmocka_unit_test(headers_size_refuses_what_cannot_be_encoded),
		cmocka_unit_test(headers_with_maximal_name_round_trip),
		cmocka_unit_test(every_truncation_is_refused_without_reading_past_the_end),
		cmocka_unit_test(random_bytes_never_decode_outside_the_section),
		cmocka_unit_test(headers_check_counts_entries_exactly),
		cmocka_unit_test(value_length_past_the_section_is_refused),
		cmocka_unit_test(frame_parse_returns_the_fields_and_payload_pointers),
		cmocka_unit_test(frame_parse_refuses_lengths_that_do_not_fit),
		cmocka_unit_test(frame_crc_covers_exactly_the_fields_after_the_commit_word),
		cmocka_unit_test(frame_size_rounds_up_to_eight),
		cmocka_unit_test(commit_word_packs_state_length_and_offset_bits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
