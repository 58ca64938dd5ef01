/*
 * test_crc32c.c - CRC-32C (Castagnoli), the checksum of every frame.
 *
 * Three oracles agree or the test fails: the published vectors (the
 * "123456789" check value and RFC 3720 appendix B.4), a bit-at-a-time
 * reference written here from the polynomial, and the library's two
 * implementations against each other (the SSE4.2 three-lane path and the
 * slicing-by-8 tables) over every length and alignment that reaches
 * their different code paths.
 */
#include "lib/testutil.h"

#include <string.h>

#include "../util/crc32c.h"

/* The definition: reflected polynomial 0x82F63B78, one bit at a time,
 * initial value and final xor all ones (chained as zlib does). */
static uint32_t crc32c_bitwise(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	crc = ~crc;
	while (len--) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0x82f63b78u & (0u - (crc & 1)));
	}
	return ~crc;
}

/* xorshift64*: deterministic test data */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dULL;
}

static void fill_random(uint8_t *buf, size_t len)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(rnd() >> 56);
}

struct vector {
	const char *what;
	uint8_t data[48];
	size_t len;
	uint32_t crc;
};

static void check_vector(const struct vector *v)
{
	uint32_t hw = crc32c(0, v->data, v->len), sw = crc32c_sw(0, v->data, v->len);
	uint32_t ref = crc32c_bitwise(0, v->data, v->len);

	if (ref != v->crc)
		fail_msg("the reference disagrees with the published vector for %s: %#x != %#x",
			 v->what, ref, v->crc);
	if (hw != v->crc)
		fail_msg("crc32c(%s) = %#x, expected %#x", v->what, hw, v->crc);
	if (sw != v->crc)
		fail_msg("crc32c_sw(%s) = %#x, expected %#x", v->what, sw, v->crc);
}

static void check_value_123456789_is_e3069283(void **state)
{
	struct vector v = { .what = "\"123456789\"", .len = 9, .crc = 0xe3069283u };

	(void)state;
	memcpy(v.data, "123456789", 9);
	check_vector(&v);
}

static void rfc3720_appendix_b4_vectors(void **state)
{
	static const uint8_t read_pdu[48] = {
		0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00,
		0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18, 0x28, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	};
	struct vector v[5] = {
		{ .what = "32 zero bytes", .len = 32, .crc = 0x8a9136aau },
		{ .what = "32 0xff bytes", .len = 32, .crc = 0x62a8ab43u },
		{ .what = "32 ascending bytes", .len = 32, .crc = 0x46dd794eu },
		{ .what = "32 descending bytes", .len = 32, .crc = 0x113fdb5cu },
		{ .what = "an iSCSI read PDU", .len = 48, .crc = 0xd9963a56u },
	};

	(void)state;
	memset(v[1].data, 0xff, 32);
	for (int i = 0; i < 32; i++) {
		v[2].data[i] = (uint8_t)i;
		v[3].data[i] = (uint8_t)(31 - i);
	}
	memcpy(v[4].data, read_pdu, sizeof read_pdu);
	for (int i = 0; i < 5; i++)
		check_vector(&v[i]);
}

static void empty_buffer_leaves_the_crc_unchanged(void **state)
{
	(void)state;
	assert_int_equal(crc32c(0, "", 0), 0);
	assert_int_equal(crc32c_sw(0, "", 0), 0);
	assert_int_equal(crc32c(0xdeadbeefu, "x", 0), 0xdeadbeefu);
	assert_int_equal(crc32c_sw(0xdeadbeefu, "x", 0), 0xdeadbeefu);
}

/* The lanes of the hardware path start at 3 x 256 and 3 x 2048 bytes;
 * the unaligned head is up to 7 bytes: every length around those edges,
 * at every alignment, must give the reference value. */
static void every_length_near_lane_edges_matches_the_reference(void **state)
{
	static const size_t edges[] = { 0, 8, 16, 64, 768, 1536, 6144, 12288 };
	size_t max = 12288 + 64 + 8;
	uint8_t *buf = malloc(max + 8);

	(void)state;
	assert_non_null(buf);
	fill_random(buf, max + 8);
	for (size_t e = 0; e < sizeof edges / sizeof edges[0]; e++) {
		for (size_t len = edges[e] > 24 ? edges[e] - 24 : 0; len <= edges[e] + 24; len++) {
			for (size_t align = 0; align < 8; align++) {
				uint32_t ref = crc32c_bitwise(0, buf + align, len);
				uint32_t hw = crc32c(0, buf + align, len), sw = crc32c_sw(0, buf + align, len);

				if (hw != ref || sw != ref)
					fail_msg("len %zu align %zu: hw %#x sw %#x reference %#x", len, align,
						 hw, sw, ref);
			}
		}
	}
	free(buf);
}

static void hw_and_sw_agree_on_random_lengths_and_alignments(void **state)
{
	size_t max = 100000;
	uint8_t *buf = malloc(max + 64);

	(void)state;
	assert_non_null(buf);
	fill_random(buf, max + 64);
	for (int i = 0; i < 2000; i++) {
		size_t len = (size_t)(rnd() % (max + 1)), align = (size_t)(rnd() % 64);
		uint32_t seed = i % 3 ? (uint32_t)rnd() : 0;
		uint32_t hw = crc32c(seed, buf + align, len), sw = crc32c_sw(seed, buf + align, len);

		if (hw != sw)
			fail_msg("len %zu align %zu seed %#x: hw %#x != sw %#x", len, align, seed, hw, sw);
		if (i % 100 == 0 && hw != crc32c_bitwise(seed, buf + align, len))
			fail_msg("len %zu align %zu: %#x differs from the bitwise reference", len, align, hw);
	}
	free(buf);
}

static void chaining_equals_one_pass_over_the_concatenation(void **state)
{
	size_t max = 40000;
	uint8_t *buf = malloc(max);

	(void)state;
	assert_non_null(buf);
	fill_random(buf, max);
	for (int i = 0; i < 500; i++) {
		size_t len = (size_t)(rnd() % max), cut = len ? (size_t)(rnd() % (len + 1)) : 0;
		uint32_t whole = crc32c(0, buf, len);
		uint32_t hw = crc32c(crc32c(0, buf, cut), buf + cut, len - cut);
		uint32_t sw = crc32c_sw(crc32c_sw(0, buf, cut), buf + cut, len - cut);

		if (hw != whole || sw != whole)
			fail_msg("len %zu cut at %zu: chained hw %#x sw %#x, one pass %#x", len, cut, hw, sw,
				 whole);
	}
	/* a chain of many small pieces, each at an odd alignment */
	for (size_t len = 1; len < 300; len += 7) {
		uint32_t c = 0;

		for (size_t at = 0; at < 5000; at += len)
			c = crc32c(c, buf + at, at + len <= 5000 ? len : 5000 - at);
		assert_int_equal(c, crc32c(0, buf, 5000));
	}
	free(buf);
}

/* crc32c2(a, b) checksums a frame's header and payload in one call: it
 * must equal one pass over a || b, for short and long parts alike. */
static void crc32c2_equals_crc_of_the_concatenation(void **state)
{
	size_t max = 20000;
	uint8_t *buf = malloc(max + 16);

	(void)state;
	assert_non_null(buf);
	fill_random(buf, max + 16);
	for (int i = 0; i < 3000; i++) {
		size_t len = (size_t)(rnd() % (i < 2000 ? 900 : max)), align = (size_t)(rnd() % 16);
		size_t cut = i % 4 == 0 ? (len < 36 ? len : 36) : (len ? (size_t)(rnd() % (len + 1)) : 0);
		uint32_t whole = crc32c_bitwise(0, buf + align, len);
		uint32_t two = crc32c2(buf + align, cut, buf + align + cut, len - cut);

		if (two != whole)
			fail_msg("crc32c2 of %zu + %zu bytes (align %zu) = %#x, one pass %#x", cut,
				 len - cut, align, two, whole);
	}
	assert_int_equal(crc32c2("1234", 4, "56789", 5), 0xe3069283u);
	assert_int_equal(crc32c2("", 0, "123456789", 9), 0xe3069283u);
	assert_int_equal(crc32c2("123456789", 9, "", 0), 0xe3069283u);
	free(buf);
}

static void single_bit_flips_change_the_crc(void **state)
{
	uint8_t buf[512];

	(void)state;
	fill_random(buf, sizeof buf);
	for (size_t len = 1; len <= sizeof buf; len *= 2) {
		uint32_t good = crc32c(0, buf, len);

		for (size_t bit = 0; bit < len * 8; bit++) {
			buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
			if (crc32c(0, buf, len) == good)
				fail_msg("flipping bit %zu of %zu bytes left the CRC unchanged", bit, len);
			buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(check_value_123456789_is_e3069283),
		cmocka_unit_test(rfc3720_appendix_b4_vectors),
		cmocka_unit_test(empty_buffer_leaves_the_crc_unchanged),
		cmocka_unit_test(every_length_near_lane_edges_matches_the_reference),
		cmocka_unit_test(hw_and_sw_agree_on_random_lengths_and_alignments),
		cmocka_unit_test(chaining_equals_one_pass_over_the_concatenation),
		cmocka_unit_test(crc32c2_equals_crc_of_the_concatenation),
		cmocka_unit_test(single_bit_flips_change_the_crc),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
