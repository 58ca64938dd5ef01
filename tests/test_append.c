/*
 * test_append.c - the append protocol (format.md §4) seen from one
 * process: records round-trip byte for byte, offsets are dense, batches
 * and frames of every size wrap the ring's end through PADDING, the word
 * past each claim is zeroed (I3), zero-copy claims commit and abort,
 * writers interleave out of order, and backpressure (§5) holds producers
 * behind registered consumers.
 *
 * Every test reads back what it wrote through part_read and compares each
 * byte with what was sent: a record's content is a function of its
 * offset, so a frame found at the wrong place cannot pass.
 */
#include "lib/testutil.h"
#include "lib/partfixture.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "../shm/append.h"
#include "../util/clock.h"
#include "../util/error.h"
#include "../shm/partition.h"
#include "../shm/read.h"
#include "../shm/unblock.h"

static void make_part(struct env *e, const char *name, uint64_t cap, uint32_t policy,
		      struct part *p)
{
	struct part_params prm = { .topic = "t", .topic_id = 1, .capacity = cap, .policy = policy,
				   .numa_node = -1, .mode = 0600 };

	env_part_create(e, name, &prm, p);
}

static uint64_t rng_state = 0xb5ad4eceda1ce2a9ULL;

static uint64_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dULL;
}

/* Record content is a function of the offset it is meant for. */
static uint8_t key_byte(uint64_t off, uint32_t i)
{
	return (uint8_t)(off * 17 + i * 3 + 1);
}

static uint8_t val_byte(uint64_t off, uint32_t i)
{
	return (uint8_t)(off * 131 + i * 7 + 5);
}

#define MAXV 65536

struct recbuf {
	uint8_t key[256];
	uint8_t val[MAXV];
};

/* Fill r (and its buffers) with the record meant for offset `off`. */
static void make_rec(struct part_rec *r, struct recbuf *b, uint64_t off, uint32_t klen,
		     uint32_t vlen)
{
	assert_true(klen <= sizeof b->key && vlen <= sizeof b->val);
	for (uint32_t i = 0; i < klen; i++)
		b->key[i] = key_byte(off, i);
	for (uint32_t i = 0; i < vlen; i++)
		b->val[i] = val_byte(off, i);
	*r = (struct part_rec){ .key = b->key, .key_len = klen, .value = b->val, .value_len = vlen,
				.timestamp_ns = (int64_t)(off * 1000 + 7) };
}

/* The view holds the record make_rec made for its offset. */
static void expect_rec(const struct part *p, const struct frame_view *v, uint64_t off,
		       uint32_t klen, uint32_t vlen)
{
	if (v->offset != off)
		fail_msg("read offset %llu, expected %llu", (unsigned long long)v->offset,
			 (unsigned long long)off);
	if (v->key_len != klen || v->value_len != vlen)
		fail_msg("offset %llu: key %u value %u bytes, expected %u and %u",
			 (unsigned long long)off, v->key_len, v->value_len, klen, vlen);
	for (uint32_t i = 0; i < klen; i++)
		if (v->key[i] != key_byte(off, i))
			fail_msg("offset %llu: key byte %u differs", (unsigned long long)off, i);
	for (uint32_t i = 0; i < vlen; i++)
		if (v->value[i] != val_byte(off, i))
			fail_msg("offset %llu: value byte %u differs", (unsigned long long)off, i);
	assert_int_equal(v->timestamp_ns, (int64_t)(off * 1000 + 7));
	/* a claim never ends 8 bytes before the ring's end: its last frame
	 * then grows by 8 bytes, to end at the ring's end (format.md §4) */
	if (v->len != frame_size(klen, v->headers_len, vlen))
		assert_true(v->len == frame_size(klen, v->headers_len, vlen) + FRAME_ALIGN &&
			    ((v->pos + v->len) & p->mask) == 0);
	assert_int_equal(v->crc, frame_crc((const struct frame_hdr *)(const void *)part_at(p, v->pos),
					   frame_payload_len(v)));
	assert_true(part_intact(p, v->pos));
}

/* part_append (or append1) returned `want`; else say what it returned. */
#define assert_appended(call, want)                                                   \
	do {                                                                          \
		int rc_ = (call);                                                     \
		if (rc_ != (int)(want))                                               \
			fail_msg("%s = %d (%s), expected %d", #call, rc_,             \
				 rc_ < 0 ? strerror(-rc_) : "fewer records", (int)(want)); \
	} while (0)

/* I3: the word at the tail is zero or belongs to the next offset. */
static void expect_zero_past_tail(const struct part *p)
{
	pair128 c = p->hdr->claim;
	uint64_t w = *part_commit_word(p, c.lo);

	if (w != 0 && !part_cw_for(w, c.hi))
		fail_msg("the word past the claim (position %llu) holds %#llx, not zero",
			 (unsigned long long)c.lo, (unsigned long long)w);
}

static int append1(struct part_writer *w, struct recbuf *b, uint32_t klen, uint32_t vlen,
		   uint64_t *ret_off)
{
	struct part_rec r;

	make_rec(&r, b, w->p->hdr->claim.hi, klen, vlen);
	return part_append(w, &r, 1, 0, 0, ret_off);
}

/* ------------------------------------------------------------------ */
/* Single records                                                      */

static void record_with_key_value_and_headers_round_trips(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct frame_kv kv[2] = {
		{ .name = "trace", .name_len = 5, .value = "abc", .value_len = 3 },
		{ .name = "n", .name_len = 1, .value = NULL },
	};
	uint8_t hdrs[64];
	int64_t hlen = frame_headers_size(kv, 2);
	struct part_rec r = { .key = "user-42", .key_len = 7, .value = "hello, world", .value_len = 12,
			      .headers = hdrs, .headers_len = (uint32_t)hlen, .header_count = 2,
			      .timestamp_ns = 1700000000123456789LL };
	struct part_cursor c = { 0 };
	struct frame_view v;
	uint64_t off = 99;

	make_part(e, "0", 4096, PART_POLICY_OVERWRITE, &p);
	part_writer_init(&w, &p);
	frame_headers_encode(hdrs, kv, 2);
	assert_appended(part_append(&w, &r, 1, 0, 0, &off), 1);
	assert_int_equal(off, 0);
	assert_int_equal(p.hdr->claim.hi, 1);
	assert_int_equal(p.hdr->claim.lo, frame_size(7, (uint64_t)hlen, 12));
	assert_int_equal(p.index[0], 0);
	assert_int_equal(part_read(&p, &c, &v), 1);
	assert_int_equal(v.offset, 0);
	assert_int_equal(v.pos, 0);
	assert_int_equal(v.len, frame_size(7, (uint64_t)hlen, 12));
	assert_int_equal(v.timestamp_ns, 1700000000123456789LL);
	assert_int_equal(v.key_len, 7);
	assert_memory_equal(v.key, "user-42", 7);
	assert_int_equal(v.value_len, 12);
	assert_memory_equal(v.value, "hello, world", 12);
	assert_int_equal(v.headers_len, hlen);
	assert_int_equal(v.header_count, 2);
	assert_memory_equal(v.headers, hdrs, (size_t)hlen);
	assert_int_equal(frame_headers_check(v.headers, v.headers_len, v.header_count), 0);
	assert_int_equal(v.flags, 0);
	assert_int_equal(v.crc, frame_crc((const struct frame_hdr *)(const void *)p.data,
					  frame_payload_len(&v)));
	/* the header records who wrote it, for the unblocker */
	assert_int_equal(((struct frame_hdr *)(void *)p.data)->pid, getpid());
	assert_int_equal(cw_state(*part_commit_word(&p, 0)), FRAME_COMMITTED);
	assert_int_equal(c.off, 1);
	assert_int_equal(c.pos, p.hdr->claim.lo);
	assert_int_equal(part_read(&p, &c, &v), 0);
	expect_zero_past_tail(&p);
	part_unmap(&p);
}

static void null_key_empty_key_and_tombstone_round_trip(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct part_rec r[3] = {
		{ .flags = FRAME_F_KEY_NULL, .value = "v", .value_len = 1 },
		{ .key = "", .key_len = 0, .value = "w", .value_len = 1 },
		{ .key = "gone", .key_len = 4, .flags = FRAME_F_VALUE_NULL },
	};
	struct part_cursor c = { 0 };
	struct frame_view v;
	uint64_t off;

	make_part(e, "0", 4096, PART_POLICY_OVERWRITE, &p);
	part_writer_init(&w, &p);
	assert_appended(part_append(&w, r, 3, 0, 0, &off), 3);
	assert_int_equal(off, 0);
	assert_int_equal(part_read(&p, &c, &v), 1);
	assert_int_equal(v.flags, FRAME_F_KEY_NULL);
	assert_int_equal(v.key_len, 0);
	assert_int_equal(v.value_len, 1);
	assert_int_equal(part_read(&p, &c, &v), 1);
	assert_int_equal(v.flags, 0);
	assert_int_equal(v.key_len, 0);
	assert_int_equal(part_read(&p, &c, &v), 1);
	assert_int_equal(v.flags, FRAME_F_VALUE_NULL);
	assert_int_equal(v.value_len, 0);
	assert_memory_equal(v.key, "gone", 4);
	assert_int_equal(v.len, 48 + 8);
	assert_int_equal(part_read(&p, &c, &v), 0);
	part_unmap(&p);
}

static void empty_batch_appends_nothing(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	uint64_t off = 12345;

	make_part(e, "0", 4096, PART_POLICY_OVERWRITE, &p);
	part_writer_init(&w, &p);
	assert_appended(part_append(&w, NULL, 0, 0, 0, &off), 0);
	assert_int_equal(off, 12345);
	assert_int_equal(p.hdr->claim.lo, 0);
	assert_int_equal(p.hdr->claim.hi, 0);
	part_unmap(&p);
}

/* A claim word no writer can have made (a tail off the frame alignment,
 * or past the position limit) is refused with the fix, and nothing is
 * written at the place it points to. */
static void damaged_claim_word_is_ebadmsg_and_writes_nothing(void **state)
{
	struct env *e = *state;
	static const pair128 bad[] = { { .lo = 4, .hi = 0 }, { .lo = 8 + 3, .hi = 2 },
				       { .lo = PART_POS_MAX, .hi = 0 },
				       { .lo = 0, .hi = PART_POS_MAX } };
	static struct recbuf b;
	struct part_rec r;
	struct part p;
	uint64_t off;

	make_part(e, "0", 4096, PART_POLICY_OVERWRITE, &p);
	make_rec(&r, &b, 0, 3, 40);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct part_writer w;

		part_writer_init(&w, &p);
		p.hdr->claim = bad[i];
		assert_appended(part_append(&w, &r, 1, 0, 0, &off), -EBADMSG);
		assert_non_null(strstr(shm_errmsg(), "run recovery"));
		for (uint64_t j = 0; j < p.cap; j++)
			assert_int_equal(p.data[j], 0);
		part_writer_fini(&w);
	}
	part_unmap(&p);
}

static void offsets_are_dense_from_zero_across_singles_and_batches(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	static struct recbuf b[8];
	struct part_rec r[8];
	struct part_cursor c = { 0 };
	struct frame_view v;
	uint64_t off, next = 0, want = 0;

	make_part(e, "0", 1 << 16, PART_POLICY_OVERWRITE, &p);
	part_writer_init(&w, &p);
	for (int round = 0; round < 200; round++) {
		size_t n = (size_t)(rnd() % 8) + 1;

		for (size_t i = 0; i < n; i++)
			make_rec(&r[i], &b[i], next + i, (uint32_t)(rnd() % 16), (uint32_t)(rnd() % 200));
		assert_appended(part_append(&w, r, n, 0, 0, &off), (int)n);
		assert_int_equal(off, next);
		next += n;
		assert_int_equal(p.hdr->claim.hi, next);
		while (part_read(&p, &c, &v) == 1) {
			assert_int_equal(v.offset, want);
			/* content was made for this offset */
			for (uint32_t i = 0; i < v.value_len; i++)
				assert_int_equal(v.value[i], val_byte(want, i));
			want++;
		}
	}
	assert_int_equal(want, next);
	part_unmap(&p);
}

/* ------------------------------------------------------------------ */
/* Batches and the ring's end                                          */

/* Batches of 1..200 records of mixed sizes on an 8 KiB ring: runs of 64
 * per claim, batches that meet the ring's end and continue after a
 * PADDING frame; a reader following behind sees every record whole. */
static void batches_of_1_to_200_wrap_through_padding(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	static struct recbuf b[200];
	static struct part_rec r[200];
	static uint32_t klen[1 << 16], vlen[1 << 16];
	struct part_cursor c = { 0 };
	struct frame_view v;
	uint64_t off, next = 0;

	make_part(e, "0", 8192, PART_POLICY_OVERWRITE, &p);
	part_writer_init(&w, &p);
	for (size_t n = 1; n <= 200; n++) {
		size_t done = 0;

		for (size_t i = 0; i < n; i++) {
			klen[next + i] = (uint32_t)(rnd() % 9);
			vlen[next + i] = (uint32_t)(rnd() % 40);
			make_rec(&r[i], &b[i], next + i, klen[next + i], vlen[next + i]);
		}
		/* a batch larger than a ring goes in several calls */
		while (done < n) {
			size_t m = n - done > 64 ? 64 : n - done;
			assert_appended(part_append(&w, r + done, m, 0, 0, &off), m);
			assert_int_equal(off, next + done);
			done += m;
			expect_zero_past_tail(&p);
			while (part_read(&p, &c, &v) == 1)
				expect_rec(&p, &v, v.offset, klen[v.offset], vlen[v.offset]);
		}
		next += n;
		assert_int_equal(c.off, next);
		assert_int_equal(c.pos, p.hdr->claim.lo);
	}
	assert_int_equal(next, 200 * 201 / 2);
	/* many laps went by */
	assert_true(p.hdr->claim.lo / p.cap > 20);
	part_unmap(&p);
}

/* One part_append of many records: it claims runs of at most 64 and
 * goes on until all are appended, at consecutive offsets. */
static void one_call_appends_a_batch_larger_than_a_run(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	static struct recbuf b[300];
	static struct part_rec r[300];
	struct part_cursor c = { 0 };
	struct frame_view v;
	uint64_t off;

	make_part(e, "0", 1 << 16, PART_POLICY_OVERWRITE, &p);
	part_writer_init(&w, &p);
	for (int i = 0; i < 300; i++)
		make_rec(&r[i], &b[i], (uint64_t)i, 3, (uint32_t)(i % 50));
	assert_appended(part_append(&w, r, 300, 0, 0, &off), 300);
	assert_int_equal(off, 0);
	for (int i = 0; i < 300; i++) {
		assert_int_equal(part_read(&p, &c, &v), 1);
		expect_rec(&p, &v, (uint64_t)i, 3, (uint32_t)(i % 50));
		/* the index knows every record */
		assert_int_equal(p.index[i & p.imask], v.pos);
	}
	assert_int_equal(part_read(&p, &c, &v), 0);
	part_unmap(&p);
}

/* A batch that meets the ring's end: the frames that fit go first, then
 * PADDING to the end, and the rest start the next lap. */
static void batch_meeting_the_ring_end_pads_exactly_to_it(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	static struct recbuf b[4];
	struct part_rec r[4];
	struct part_cursor c = { 0 };
	struct frame_view v;
	uint64_t off, w0;

	make_part(e, "0", 4096, PART_POLICY_OVERWRITE, &p);
	part_writer_init(&w, &p);
	/* 2992 bytes: 2 frames of 1496, read before the next lap reaches them */
	for (int i = 0; i < 2; i++)
		make_rec(&r[i], &b[i], (uint64_t)i, 0, 1496 - 48);
	assert_appended(part_append(&w, r, 2, 0, 0, &off), 2);
	assert_int_equal(p.hdr->claim.lo, 2992);
	for (uint64_t o = 0; o < 2; o++) {
		assert_int_equal(part_read(&p, &c, &v), 1);
		expect_rec(&p, &v, o, 0, 1496 - 48);
	}
	/* 4 frames of 400: two fit (3792), then 304 bytes of padding */
	for (int i = 0; i < 4; i++)
		make_rec(&r[i], &b[i], 2 + (uint64_t)i, 0, 400 - 48);
	assert_appended(part_append(&w, r, 4, 0, 0, &off), 4);
	assert_int_equal(off, 2);
	assert_int_equal(p.hdr->claim.hi, 6);
	assert_int_equal(p.hdr->claim.lo, 4096 + 800);
	w0 = *part_commit_word(&p, 3792);
	assert_int_equal(cw_state(w0), FRAME_PADDING);
	assert_int_equal(cw_len(w0), 304);
	assert_int_equal(cw_off(w0), 4); /* the offset of the frame after it */
	assert_int_equal(p.index[4], 4096);
	assert_int_equal(p.index[5], 4096 + 400);
	for (uint64_t o = 2; o < 6; o++) {
		assert_int_equal(part_read(&p, &c, &v), 1);
		expect_rec(&p, &v, o, 0, 400 - 48);
	}
	assert_int_equal(c.pos, 4096 + 800);
	expect_zero_past_tail(&p);
	part_unmap(&p);
}

/*
 * Frames of one lap do not start where frames of the last lap started,
 * so the word a new claim lands on is whatever bytes the older lap had
 * there: a value, a timestamp, a CRC.  Here a value holds the ordinary
 * u64 0x8000003e8, which as a commit word reads ABORTED (state bits 00),
 * 64 bytes, first offset 1000.  The claim that lands on it in the next
 * lap must still succeed.
 */
static void claim_landing_on_old_bytes_that_look_aborted_succeeds(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	static uint8_t val[2000];
	uint64_t x = cw_make(FRAME_ABORTED, 64, 1000), off;
	struct part_rec big = { .value = val, .value_len = 2000 };
	struct part_rec small = { .value = "eight b.", .value_len = 8 };
	struct part_claim cl;

	make_part(e, "0", 4096, PART_POLICY_OVERWRITE, &p);
	part_writer_init(&w, &p);
	assert_int_equal(x, 0x8000003e8ULL);
	memcpy(val + 8, &x, 8); /* lands at ring position 56 */
	assert_appended(part_append(&w, &big, 1, 0, 0, &off), 1);
	memset(val, 0, sizeof val);
	assert_appended(part_append(&w, &big, 1, 0, 0, &off), 1);
	/* lap 2: a 56-byte frame at 4096, so the next claim starts at 4152 */
	assert_appended(part_append(&w, &small, 1, 0, 0, &off), 1);
	assert_int_equal(p.hdr->claim.lo, 4152);
	assert_int_equal(p.hdr->claim.hi, 3);
	/* I3: the word past the last claim is zero, not the old value */
	expect_zero_past_tail(&p);
	assert_appended(part_append(&w, &small, 1, 0, 0, &off), 1);
	assert_int_equal(off, 3);
	/* the same through a zero-copy claim: the second of these frames
	 * starts lap 3 (after padding), the third ends it, a small frame
	 * begins lap 4 and the claim lands on the old value at position 56 */
	assert_int_equal(p.hdr->claim.lo, 4208);
	memcpy(val + 8, &x, 8);
	assert_appended(part_append(&w, &big, 1, 0, 0, &off), 1);
	assert_appended(part_append(&w, &big, 1, 0, 0, &off), 1);
	assert_int_equal(p.hdr->claim.lo, 2 * 4096 + 2048);
	memset(val, 0, sizeof val);
	assert_appended(part_append(&w, &big, 1, 0, 0, &off), 1);
	assert_appended(part_append(&w, &small, 1, 0, 0, &off), 1);
	assert_int_equal(p.hdr->claim.lo, 3 * 4096 + 56);
	assert_int_equal(part_claim(&w, &small, 8, 0, 0, &cl), 0);
	assert_int_equal(part_commit(&w, &cl, 8), 0);
	part_unmap(&p);
}

/* Every record size from 1 byte to the largest frame, on a 4 KiB ring,
 * each read back at once: hundreds of laps, frames ending at every
 * distance from the ring's end. */
static void every_record_size_up_to_the_largest_frame_round_trips(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	static struct recbuf b;
	struct part_cursor c = { 0 };
	struct frame_view v;
	uint64_t off, next = 0;

	make_part(e, "0", 4096, PART_POLICY_OVERWRITE, &p);
	part_writer_init(&w, &p);
	assert_int_equal(p.max_frame, 2048);
	for (int pass = 0; pass < 3; pass++) {
		for (uint32_t size = 1; size <= 2048 - 48; size++) {
			uint32_t klen = pass == 1 ? size % 17 : 0;
			uint32_t vlen = size - klen;

			assert_appended(append1(&w, &b, klen, vlen, &off), 1);
			assert_int_equal(off, next);
			expect_zero_past_tail(&p);
			assert_int_equal(part_read(&p, &c, &v), 1);
			expect_rec(&p, &v, next, klen, vlen);
			assert_int_equal(part_read(&p, &c, &v), 0);
			next++;
		}
	}
	assert_true(p.hdr->claim.lo / 4096 > 500);
	part_unmap(&p);
}

static void record_larger_than_the_largest_frame_is_emsgsize(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	static struct recbuf b[3];
	struct part_rec r[3];
	struct part_claim cl;
	struct part_cursor c = { 0 };
	struct frame_view v;
	uint64_t off = 777;
	pair128 before;

	make_part(e, "0", 4096, PART_POLICY_OVERWRITE, &p);
	part_writer_init(&w, &p);
	assert_appended(append1(&w, &b[0], 0, 10, &off), 1);
	before = p.hdr->claim;
	off = 777;
	make_rec(&r[0], &b[0], 1, 0, 2048 - 48 + 1);
	assert_appended(part_append(&w, r, 1, 0, 0, &off), -EMSGSIZE);
	make_rec(&r[0], &b[0], 1, 1, 2048 - 48);
	assert_appended(part_append(&w, r, 1, 0, 0, &off), -EMSGSIZE);
	r[0].key_len = 0;
	r[0].headers_len = 1;
	assert_appended(part_append(&w, r, 1, 0, 0, &off), -EMSGSIZE);
	r[0].key_len = UINT32_MAX;
	r[0].headers_len = 0;
	assert_appended(part_append(&w, r, 1, 0, 0, &off), -EMSGSIZE);
	assert_int_equal(part_claim(&w, &r[0], 0, 0, 0, &cl), -EMSGSIZE);
	r[0].key_len = 0;
	assert_int_equal(part_claim(&w, &r[0], 2048 - 48 + 1, 0, 0, &cl), -EMSGSIZE);
	assert_int_equal(off, 777);
	assert_int_equal(p.hdr->claim.lo, before.lo);
	assert_int_equal(p.hdr->claim.hi, before.hi);
	/* exactly the largest frame fits */
	make_rec(&r[0], &b[0], 1, 0, 2048 - 48);
	assert_appended(part_append(&w, r, 1, 0, 0, &off), 1);
	assert_int_equal(off, 1);
	/* a batch stops before its first oversized record */
	make_rec(&r[0], &b[0], 2, 0, 5);
	make_rec(&r[1], &b[1], 3, 0, 3000);
	make_rec(&r[2], &b[2], 3, 0, 5);
	assert_appended(part_append(&w, r, 3, 0, 0, &off), 1);
	assert_int_equal(off, 2);
	assert_int_equal(p.hdr->claim.hi, 3);
	for (uint64_t o = 0; o < 3; o++) {
		assert_int_equal(part_read(&p, &c, &v), 1);
		expect_rec(&p, &v, o, 0, o == 0 ? 10 : o == 1 ? 2048 - 48 : 5);
	}
	part_unmap(&p);
}

/* ------------------------------------------------------------------ */
/* Zero-copy claims                                                    */

static void claim_writes_in_place_and_commits_a_shorter_value(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	static struct recbuf b;
	struct part_rec meta = { .key = "kk", .key_len = 2, .timestamp_ns = 5 };
	struct part_claim cl;
	struct part_cursor c = { 0 };
	struct frame_view v;
	uint64_t off;

	make_part(e, "0", 4096, PART_POLICY_OVERWRITE, &p);
	part_writer_init(&w, &p);
	assert_int_equal(part_claim(&w, &meta, 100, 0, 0, &cl), 0);
	assert_int_equal(cl.off, 0);
	assert_int_equal(cl.pos, 0);
	assert_int_equal(cl.len, frame_size(2, 0, 100));
	assert_int_equal(cl.value_cap, 100);
	assert_ptr_equal(cl.value, p.data + 48 + 2);
	assert_int_equal(cw_state(*part_commit_word(&p, 0)), FRAME_CLAIMED);
	expect_zero_past_tail(&p);
	/* readers wait at a claim */
	assert_int_equal(part_read(&p, &c, &v), 0);
	for (int i = 0; i < 40; i++)
		cl.value[i] = (uint8_t)(i + 100);
	assert_int_equal(part_commit(&w, &cl, 40), 0);
	assert_int_equal(part_read(&p, &c, &v), 1);
	assert_int_equal(v.offset, 0);
	assert_int_equal(v.len, frame_size(2, 0, 100)); /* the claimed length */
	assert_int_equal(v.value_len, 40);
	assert_memory_equal(v.key, "kk", 2);
	assert_int_equal(v.timestamp_ns, 5);
	for (int i = 0; i < 40; i++)
		assert_int_equal(v.value[i], i + 100);
	assert_int_equal(v.crc, frame_crc((const struct frame_hdr *)(const void *)p.data, 42));
	/* the next record follows the whole claimed frame */
	assert_appended(append1(&w, &b, 1, 9, &off), 1);
	assert_int_equal(off, 1);
	assert_int_equal(part_read(&p, &c, &v), 1);
	expect_rec(&p, &v, 1, 1, 9);
	assert_int_equal(v.pos, frame_size(2, 0, 100));
	part_unmap(&p);
}

static void committing_more_than_the_claim_is_einval_and_aborts(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	static struct recbuf b;
	struct part_rec meta = { 0 };
	struct part_claim cl;
	struct part_cursor c = { 0 };
	struct frame_view v;
	uint64_t off;

	make_part(e, "0", 4096, PART_POLICY_OVERWRITE, &p);
	part_writer_init(&w, &p);
	assert_int_equal(part_claim(&w, &meta, 16, 0, 0, &cl), 0);
	assert_int_equal(part_commit(&w, &cl, 17), -EINVAL);
	assert_int_equal(*part_commit_word(&p, 0), cw_make(FRAME_ABORTED, cl.len, 0));
	assert_int_equal(end_at(&p, 0), 1);
	assert_appended(append1(&w, &b, 0, 3, &off), 1);
	assert_int_equal(part_read(&p, &c, &v), 1);
	expect_rec(&p, &v, 1, 0, 3);
	assert_int_equal(c.skipped, 1);
	part_unmap(&p);
}

static void aborted_claim_is_skipped_and_positions_stay_consistent(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w, zc;
	static struct recbuf b;
	struct part_rec meta = { .key = "abc", .key_len = 3 };
	struct part_claim cl;
	struct part_cursor c = { 0 };
	struct frame_view v;
	uint64_t off, w1;

	make_part(e, "0", 4096, PART_POLICY_OVERWRITE, &p);
	part_writer_init(&w, &p);
	part_writer_init(&zc, &p);
	assert_appended(append1(&w, &b, 0, 10, &off), 1);
	assert_int_equal(part_claim(&zc, &meta, 64, 0, 0, &cl), 0);
	assert_int_equal(cl.off, 1);
	assert_appended(append1(&w, &b, 2, 20, &off), 1);
	assert_int_equal(off, 2);
	assert_int_equal(part_read(&p, &c, &v), 1);
	expect_rec(&p, &v, 0, 0, 10);
	assert_int_equal(part_read(&p, &c, &v), 0); /* waits at the claim */
	assert_int_equal(c.off, 1);
	assert_int_equal(part_abort(&zc, &cl), 0);
	w1 = *part_commit_word(&p, cl.pos);
	assert_int_equal(cw_state(w1), FRAME_ABORTED);
	assert_int_equal(cw_len(w1), cl.len);
	/* its own offset in the word, the one after it at frame + 8 */
	assert_int_equal(cw_off(w1), 1);
	assert_int_equal(end_at(&p, cl.pos), 2);
	assert_int_equal(p.index[1], cl.pos);
	assert_int_equal(part_read(&p, &c, &v), 1);
	expect_rec(&p, &v, 2, 2, 20);
	assert_int_equal(c.skipped, 1);
	assert_int_equal(c.off, 3);
	assert_int_equal(c.pos, p.hdr->claim.lo);
	/* a late commit of the aborted claim changes nothing */
	assert_int_equal(part_commit(&zc, &cl, 4), -ECANCELED);
	assert_int_equal(*part_commit_word(&p, cl.pos), w1);
	assert_int_equal(end_at(&p, cl.pos), 2);
	part_unmap(&p);
}

/* A zero-copy claim that does not fit before the ring's end starts with
 * PADDING; committing or aborting it leaves a log readers can cross. */
static void claims_at_the_ring_end_pad_and_resolve(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	static struct recbuf b;
	struct part_rec meta = { 0 };
	struct part_claim cl;
	struct part_cursor c = { 0 };
	struct frame_view v;
	uint64_t off, next = 0;

	make_part(e, "0", 4096, PART_POLICY_OVERWRITE, &p);
	part_writer_init(&w, &p);
	for (int i = 0; i < 400; i++) {
		uint32_t cap = (uint32_t)(rnd() % 1000) + 1;

		if (i % 3 == 0) {
			assert_appended(append1(&w, &b, 0, (uint32_t)(rnd() % 900), &off), 1);
		} else {
			uint64_t before = p.hdr->claim.lo;

			assert_appended(part_claim(&w, &meta, cap, 0, 0, &cl), 0);
			assert_int_equal(cl.off, next);
			if ((before & p.mask) + cl.len > p.cap) {
				assert_int_equal(cl.pad_pos, before);
				assert_int_equal(cl.pos & p.mask, 0);
				assert_int_equal(cw_state(*part_commit_word(&p, before)), FRAME_PADDING);
			} else {
				assert_int_equal(cl.pad_pos, UINT64_MAX);
				assert_int_equal(cl.pos, before);
			}
			expect_zero_past_tail(&p);
			if (i % 3 == 1) {
				for (uint32_t k = 0; k < cap / 2; k++)
					cl.value[k] = val_byte(next, k);
				assert_int_equal(part_commit(&w, &cl, cap / 2), 0);
			} else {
				assert_int_equal(part_abort(&w, &cl), 0);
			}
		}
		while (part_read(&p, &c, &v) == 1) {
			assert_true(v.offset % 3 != 2); /* aborted claims are never delivered */
			for (uint32_t k = 0; k < v.value_len; k++)
				assert_int_equal(v.value[k], val_byte(v.offset, k));
		}
		next++;
		assert_int_equal(c.off, next);
		assert_int_equal(c.pos, p.hdr->claim.lo);
	}
	part_unmap(&p);
}

/* I3 (format.md §4 step 4): whatever an older lap (here: garbage) left
 * in the ring, the word just past every claim is zeroed, so a reader at
 * the frontier never sees bytes that do not belong to its offset. */
static void word_past_every_claim_is_zeroed_over_garbage(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	static struct recbuf b[64];
	struct part_rec r[64];
	struct part_rec meta = { 0 };
	struct part_claim cl;
	struct part_cursor c = { 0 };
	struct frame_view v;
	uint64_t off, next = 0;

	make_part(e, "0", 8192, PART_POLICY_OVERWRITE, &p);
	memset(p.data, 0xa5, p.cap); /* COMMITTED words of no offset we reach */
	part_writer_init(&w, &p);
	for (int i = 0; i < 3000; i++) {
		switch (i % 4) {
		case 0:
		case 1: {
			size_t n = (size_t)(rnd() % 64) + 1;

			for (size_t k = 0; k < n; k++)
				make_rec(&r[k], &b[k], next + k, 0, (uint32_t)(rnd() % 120));
			assert_appended(part_append(&w, r, n, 0, 0, &off), (int)n);
			next += n;
			break;
		}
		case 2:
			assert_appended(part_claim(&w, &meta, (uint32_t)(rnd() % 300), 0, 0, &cl), 0);
			expect_zero_past_tail(&p);
			assert_int_equal(part_commit(&w, &cl, 0), 0);
			next++;
			break;
		default:
			assert_appended(append1(&w, &b[0], 0, (uint32_t)(rnd() % 3000), &off), 1);
			next++;
			break;
		}
		expect_zero_past_tail(&p);
		while (part_read(&p, &c, &v) == 1)
			assert_true(part_intact(&p, v.pos));
		assert_int_equal(c.off, next);
		assert_int_equal(c.pos, p.hdr->claim.lo);
	}
	part_unmap(&p);
}

/* ------------------------------------------------------------------ */
/* Several writers                                                     */

/* Writers in one thread, claims committed out of order: readers stop at
 * the first uncommitted offset and then see everything in order. */
static void interleaved_writers_are_read_in_offset_order(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w1, w2, w3, w4;
	static struct recbuf b;
	struct part_rec meta = { 0 };
	struct part_claim a, bb, d;
	struct part_cursor c = { 0 };
	struct frame_view v;
	uint64_t off;

	make_part(e, "0", 4096, PART_POLICY_OVERWRITE, &p);
	part_writer_init(&w1, &p);
	part_writer_init(&w2, &p);
	part_writer_init(&w3, &p);
	part_writer_init(&w4, &p);
	assert_int_equal(part_claim(&w1, &meta, 8, 0, 0, &a), 0);
	assert_int_equal(part_claim(&w2, &meta, 8, 0, 0, &bb), 0); /* w2's view was stale */
	assert_appended(append1(&w3, &b, 0, 5, &off), 1);
	assert_int_equal(part_claim(&w4, &meta, 8, 0, 0, &d), 0);
	assert_int_equal(a.off, 0);
	assert_int_equal(bb.off, 1);
	assert_int_equal(off, 2);
	assert_int_equal(d.off, 3);
	assert_int_equal(bb.pos, a.pos + a.len);
	memcpy(bb.value, "bbbbbbbb", 8);
	memcpy(d.value, "dddddddd", 8);
	memcpy(a.value, "aaaaaaaa", 8);
	assert_int_equal(part_commit(&w2, &bb, 8), 0);
	assert_int_equal(part_commit(&w4, &d, 8), 0);
	assert_int_equal(part_read(&p, &c, &v), 0);
	assert_int_equal(c.off, 0);
	assert_int_equal(part_commit(&w1, &a, 8), 0);
	assert_int_equal(part_read(&p, &c, &v), 1);
	assert_memory_equal(v.value, "aaaaaaaa", 8);
	assert_int_equal(part_read(&p, &c, &v), 1);
	assert_memory_equal(v.value, "bbbbbbbb", 8);
	assert_int_equal(part_read(&p, &c, &v), 1);
	expect_rec(&p, &v, 2, 0, 5);
	assert_int_equal(part_read(&p, &c, &v), 1);
	assert_int_equal(v.offset, 3);
	assert_memory_equal(v.value, "dddddddd", 8);
	assert_int_equal(part_read(&p, &c, &v), 0);
	part_unmap(&p);
}

static void writers_with_stale_views_keep_offsets_dense(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer ws[4];
	static struct recbuf b[16];
	struct part_rec r[16];
	struct part_cursor c = { 0 };
	struct frame_view v;
	uint64_t off, next = 0, want = 0;
	static uint32_t vl[100000];

	make_part(e, "0", 4096, PART_POLICY_OVERWRITE, &p);
	for (int i = 0; i < 4; i++)
		part_writer_init(&ws[i], &p);
	for (int i = 0; i < 4000; i++) {
		struct part_writer *w = &ws[rnd() % 4];
		size_t n = (size_t)(rnd() % 16) + 1;

		for (size_t k = 0; k < n; k++) {
			vl[next + k] = (uint32_t)(rnd() % 100);
			make_rec(&r[k], &b[k], next + k, 0, vl[next + k]);
		}
		assert_appended(part_append(w, r, n, 0, 0, &off), (int)n);
		assert_int_equal(off, next);
		next += n;
		while (part_read(&p, &c, &v) == 1) {
			expect_rec(&p, &v, want, 0, vl[want]);
			want++;
		}
		assert_int_equal(want, next);
	}
	part_unmap(&p);
}

/*
 * A claim's first word is taken by a CAS that refuses exactly one value,
 * ABORTED(claim length, first offset): what an unblocker writes when it
 * aborts this very claim while its producer is stopped (format.md §4 step
 * 4).  Any other word there, even an abort word for the same offset with
 * another length or for another offset with the same length (older bytes
 * of the ring), is taken.  Here the word is put at the tail by hand before
 * each append, as if the previous claim's producer had not zeroed it yet.
 */
static void claim_refuses_only_the_abort_of_exactly_this_claim(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	static struct recbuf b[2];
	struct part_rec r[2];
	struct part_cursor c = { 0 };
	struct frame_view v;
	uint64_t off = 0, tail, next;

	make_part(e, "0", 4096, PART_POLICY_OVERWRITE, &p);
	part_writer_init(&w, &p);
	assert_appended(append1(&w, &b[0], 0, 16, &off), 1);
	assert_int_equal(part_read(&p, &c, &v), 1);
	expect_rec(&p, &v, 0, 0, 16);
	/* batches of two 64-byte frames: a claim of 128 bytes */
	for (int k = 0; k < 3; k++) {
		uint64_t older[] = {
			cw_make(FRAME_ABORTED, 128 + 8, p.hdr->claim.hi),   /* other length */
			cw_make(FRAME_ABORTED, 64, p.hdr->claim.hi),        /* a frame's length */
			cw_make(FRAME_ABORTED, 128, p.hdr->claim.hi + 1),   /* other offset */
		};

		tail = p.hdr->claim.lo;
		next = p.hdr->claim.hi;
		*part_commit_word(&p, tail) = older[k];
		*(uint64_t *)(void *)part_at(&p, tail + 8) = next + 2;
		for (int i = 0; i < 2; i++)
			make_rec(&r[i], &b[i], next + (uint64_t)i, 0, 16);
		assert_appended(part_append(&w, r, 2, 0, 0, &off), 2);
		assert_int_equal(off, next);
		for (uint64_t o = next; o < next + 2; o++) {
			assert_int_equal(part_read(&p, &c, &v), 1);
			expect_rec(&p, &v, o, 0, 16);
		}
	}
	/* exactly this claim's abort: -ECANCELED, and nothing of the claim
	 * is written over what the unblocker left, not even its offset */
	tail = p.hdr->claim.lo;
	next = p.hdr->claim.hi;
	*(uint64_t *)(void *)part_at(&p, tail + 8) = next + 2;
	*part_commit_word(&p, tail) = cw_make(FRAME_ABORTED, 128, next);
	for (int i = 0; i < 2; i++)
		make_rec(&r[i], &b[i], next + (uint64_t)i, 0, 16);
	off = 999;
	assert_appended(part_append(&w, r, 2, 0, 0, &off), -ECANCELED);
	assert_int_equal(off, 999);
	assert_int_equal(p.hdr->claim.lo, tail + 128);
	assert_int_equal(p.hdr->claim.hi, next + 2);
	assert_int_equal(*part_commit_word(&p, tail), cw_make(FRAME_ABORTED, 128, next));
	assert_int_equal(end_at(&p, tail), next + 2);
	assert_int_equal(*part_commit_word(&p, tail + 64), 0);
	/* readers pass the range; the writer goes on */
	c = (struct part_cursor){ .off = next, .pos = tail };
	assert_int_equal(part_read(&p, &c, &v), 0);
	assert_int_equal(c.off, next + 2);
	assert_int_equal(c.skipped, 2);
	assert_appended(append1(&w, &b[0], 0, 16, &off), 1);
	assert_int_equal(off, next + 2);
	assert_int_equal(part_read(&p, &c, &v), 1);
	expect_rec(&p, &v, next + 2, 0, 16);
	part_writer_fini(&w);
	part_unmap(&p);
}

/* ------------------------------------------------------------------ */
/* Writer slots (format.md §2, §4 step 3)                              */

/* A writer takes a slot at init, announces in it the claim word of each
 * claim before its CAS, and frees it at fini; the next writer reuses it. */
static void writer_announces_in_its_slot_and_fini_frees_it(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w1, w2, w3;
	static struct recbuf b;
	struct part_writer_slot *s;
	uint64_t off, seq;
	pair128 before;

	make_part(e, "0", 4096, PART_POLICY_OVERWRITE, &p);
	part_writer_init(&w1, &p);
	s = w1.slot;
	assert_ptr_equal(s, &p.hdr->writers[0]);
	assert_int_equal(s->pid, getpid());
	assert_int_not_equal(s->start_time, 0);
	assert_int_equal(s->seq % 2, 0);
	for (int i = 0; i < 5; i++) {
		before = p.hdr->claim;
		seq = s->seq;
		assert_appended(append1(&w1, &b, 0, (uint32_t)i * 8, &off), 1);
		/* the word its CAS replaced: a claim boundary and its offset */
		assert_int_equal(s->pos, before.lo);
		assert_int_equal(s->off, before.hi);
		assert_int_equal(s->seq, seq + 2);
	}
	part_writer_init(&w2, &p);
	assert_ptr_equal(w2.slot, &p.hdr->writers[1]);
	part_writer_fini(&w1);
	assert_int_equal(s->pid, 0);
	assert_null(w1.slot);
	assert_null(w1.p);
	part_writer_fini(&w1); /* twice: nothing more */
	assert_int_equal(p.hdr->writers[1].pid, getpid());
	part_writer_init(&w3, &p);
	assert_ptr_equal(w3.slot, s);
	assert_int_equal(s->pid, getpid());
	assert_appended(append1(&w3, &b, 0, 1, &off), 1);
	assert_int_equal(off, 5);
	part_writer_fini(&w3);
	part_writer_fini(&w2);
	for (int i = 0; i < PART_MAX_WRITERS; i++)
		assert_int_equal(p.hdr->writers[i].pid, 0);
	part_unmap(&p);
}

static int take_a_writer_slot_and_exit(void *arg)
{
	struct part_writer w;

	part_writer_init(&w, arg);
	return w.slot ? 0 : 1; /* exits holding it */
}

/* When all 64 slots are taken, a new writer frees those of processes that
 * are gone and takes one; if every holder lives it is refused (-EUSERS,
 * naming the partition): no producer ever appends unannounced. */
static void writer_slots_of_dead_processes_are_reaped_when_all_are_taken(void **state)
{
	struct env *e = *state;
	struct part p;
	static struct part_writer ws[PART_MAX_WRITERS];
	struct part_writer late, extra;
	static struct recbuf b;
	struct part_cursor c = { 0 };
	struct frame_view v;
	uint64_t off;
	pid_t pid;

	make_part(e, "0", 4096, PART_POLICY_OVERWRITE, &p);
	pid = tu_fork(take_a_writer_slot_and_exit, &p);
	assert_int_equal(tu_wait(pid, 10000), 0);
	assert_int_equal(p.hdr->writers[0].pid, pid);
	for (int i = 1; i < PART_MAX_WRITERS; i++) {
		part_writer_init(&ws[i], &p);
		assert_ptr_equal(ws[i].slot, &p.hdr->writers[i]);
	}
	/* slots are only reaped when none is free */
	assert_int_equal(p.hdr->writers[0].pid, pid);
	part_writer_init(&late, &p);
	assert_ptr_equal(late.slot, &p.hdr->writers[0]);
	assert_int_equal(p.hdr->writers[0].pid, getpid());
	/* all 64 holders live: the next is refused */
	assert_int_equal(part_writer_init(&extra, &p), -EUSERS);
	assert_null(extra.slot);
	assert_non_null(strstr(shm_errmsg(), "/0"));
	assert_non_null(strstr(shm_errmsg(), "64 producers"));
	/* one leaves: the next gets its slot */
	part_writer_fini(&ws[5]);
	assert_int_equal(part_writer_init(&extra, &p), 0);
	assert_ptr_equal(extra.slot, &p.hdr->writers[5]);
	for (int i = 0; i < 3; i++) {
		assert_appended(append1(&extra, &b, 0, 16, &off), 1);
		assert_int_equal(off, (uint64_t)i);
		assert_int_equal(part_read(&p, &c, &v), 1);
		expect_rec(&p, &v, (uint64_t)i, 0, 16);
	}
	part_writer_fini(&extra);
	part_writer_fini(&late);
	for (int i = 1; i < PART_MAX_WRITERS; i++)
		if (i != 5)
			part_writer_fini(&ws[i]);
	for (int i = 0; i < PART_MAX_WRITERS; i++)
		assert_int_equal(p.hdr->writers[i].pid, 0);
	part_unmap(&p);
}

/* A read-only mapping takes no slot. */
static void readonly_mapping_takes_no_writer_slot(void **state)
{
	struct env *e = *state;
	struct part p, ro;
	struct part_writer w;

	make_part(e, "0", 4096, PART_POLICY_OVERWRITE, &p);
	assert_int_equal(part_open(e->dirfd, "0", true, "0", &ro), 0);
	assert_int_equal(part_writer_init(&w, &ro), 0);
	assert_null(w.slot);
	part_writer_fini(&w);
	for (int i = 0; i < PART_MAX_WRITERS; i++)
		assert_int_equal(p.hdr->writers[i].pid, 0);
	part_unmap(&ro);
	part_unmap(&p);
}

/* ------------------------------------------------------------------ */
/* Backpressure (format.md §5)                                         */

static void backpressure_stops_a_lap_behind_a_registered_consumer(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	static struct recbuf b;
	struct part_cursor c = { 0 };
	struct frame_view v;
	uint64_t off;
	int slot, n = 0;

	make_part(e, "0", 4096, PART_POLICY_BACKPRESSURE, &p);
	part_writer_init(&w, &p);
	slot = part_bp_register(&p, 0, 0, "reader");
	assert_true(slot >= 0);
	assert_int_equal(p.hdr->consumers[slot].pid, getpid());
	assert_string_equal(p.hdr->consumers[slot].name, "reader");
	while (append1(&w, &b, 0, 52, &off) == 1)
		n++;
	assert_appended(append1(&w, &b, 0, 52, &off), -EAGAIN);
	/* 100-byte frames... 104 bytes each: as many as fit in a lap less 8 */
	assert_int_equal(n, (4096 - 8) / 104);
	assert_true(p.hdr->claim.lo <= 0 + 4096 - 8);
	assert_true(p.hdr->bp_blocked >= 1);
	/* the consumer reads half and publishes its position */
	for (int i = 0; i < n / 2; i++)
		assert_int_equal(part_read(&p, &c, &v), 1);
	part_bp_update(&p, slot, c.pos, c.off);
	assert_int_equal(p.hdr->consumers[slot].offset, (uint64_t)n / 2);
	while (append1(&w, &b, 0, 52, &off) == 1)
		n++;
	assert_true(p.hdr->claim.lo <= c.pos + 4096 - 8);
	/* everything the consumer has not read is intact */
	while (part_read(&p, &c, &v) == 1)
		expect_rec(&p, &v, v.offset, 0, 52);
	assert_int_equal(c.off, (uint64_t)n);
	/* once it leaves, producers overwrite freely */
	part_bp_unregister(&p, slot);
	for (int i = 0; i < 200; i++)
		assert_appended(append1(&w, &b, 0, 52, &off), 1);
	part_unmap(&p);
}

static void blocking_append_gives_up_at_its_deadline(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	static struct recbuf b;
	struct part_rec r;
	uint64_t off;
	int64_t t0, deadline;
	int slot;

	make_part(e, "0", 4096, PART_POLICY_BACKPRESSURE, &p);
	part_writer_init(&w, &p);
	slot = part_bp_register(&p, 0, 0, NULL);
	assert_true(slot >= 0);
	while (append1(&w, &b, 0, 200, &off) == 1)
		;
	make_rec(&r, &b, p.hdr->claim.hi, 0, 200);
	t0 = mono_ns();
	deadline = t0 + 50 * 1000000LL;
	assert_appended(part_append(&w, &r, 1, PART_APPEND_BLOCK, deadline, &off), -EAGAIN);
	assert_true(mono_ns() >= deadline);
	part_bp_unregister(&p, slot);
	assert_appended(part_append(&w, &r, 1, PART_APPEND_BLOCK, mono_ns() + 1000000000LL, &off), 1);
	part_unmap(&p);
}

static int register_and_exit(void *arg)
{
	struct part *p = arg;

	return part_bp_register(p, 0, 0, "dies") >= 0 ? 0 : 1;
}

static void consumer_slots_of_dead_processes_are_reaped(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	static struct recbuf b;
	uint64_t off;
	pid_t pid;

	make_part(e, "0", 4096, PART_POLICY_BACKPRESSURE, &p);
	part_writer_init(&w, &p);
	pid = tu_fork(register_and_exit, &p);
	assert_int_equal(tu_wait(pid, 10000), 0);
	assert_int_equal(p.hdr->consumers[0].pid, pid);
	assert_int_equal(p.hdr->consumers[0].flags & 1u, 1);
	/* a blocked producer frees the slot of the dead consumer and goes on */
	for (int i = 0; i < 100; i++)
		assert_appended(append1(&w, &b, 0, 100, &off), 1);
	assert_int_equal(p.hdr->consumers[0].pid, 0);
	assert_int_equal(part_bp_reap(&p), 0);
	part_unmap(&p);
}

static void registry_refuses_a_lapped_position_and_a_65th_consumer(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	static struct recbuf b;
	uint64_t off;
	int slots[PART_MAX_CONSUMERS];

	make_part(e, "0", 4096, PART_POLICY_BACKPRESSURE, &p);
	part_writer_init(&w, &p);
	for (int i = 0; i < 100; i++)
		assert_appended(append1(&w, &b, 0, 100, &off), 1);
	assert_int_equal(part_bp_register(&p, 0, 0, NULL), -ERANGE);
	assert_int_equal(p.hdr->consumers[0].pid, 0); /* and the slot is free again */
	for (int i = 0; i < PART_MAX_CONSUMERS; i++) {
		slots[i] = part_bp_register(&p, p.hdr->claim.lo, p.hdr->claim.hi, NULL);
		assert_int_equal(slots[i], i);
	}
	assert_int_equal(part_bp_register(&p, p.hdr->claim.lo, p.hdr->claim.hi, NULL), -ENOSPC);
	part_bp_unregister(&p, slots[10]);
	assert_int_equal(part_bp_register(&p, p.hdr->claim.lo, p.hdr->claim.hi, NULL), 10);
	part_bp_unregister(&p, -1); /* out of range: ignored */
	part_bp_unregister(&p, PART_MAX_CONSUMERS);
	part_unmap(&p);
}

/* ------------------------------------------------------------------ */
/* Notification                                                        */

static void producers_wake_only_announced_waiters(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	static struct recbuf b;
	uint64_t off;
	uint32_t n;

	make_part(e, "0", 4096, PART_POLICY_OVERWRITE, &p);
	part_writer_init(&w, &p);
	assert_appended(append1(&w, &b, 0, 1, &off), 1);
	assert_int_equal(p.hdr->notify, 0); /* nobody waits: nothing written */
	n = part_wait_prepare(&p);
	assert_int_equal(n, NOTIFY_WAITERS);
	assert_int_equal(p.hdr->notify, NOTIFY_WAITERS);
	assert_int_equal(part_wait_prepare(&p), NOTIFY_WAITERS); /* idempotent */
	assert_appended(append1(&w, &b, 0, 1, &off), 1);
	assert_int_equal(p.hdr->notify, 1); /* bumped, waiter bit cleared */
	assert_appended(append1(&w, &b, 0, 1, &off), 1);
	assert_int_equal(p.hdr->notify, 1);
	part_unmap(&p);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, env_setup, env_teardown)
	const struct CMUnitTest tests[] = {
		T(record_with_key_value_and_headers_round_trips),
		T(null_key_empty_key_and_tombstone_round_trip),
		T(empty_batch_appends_nothing),
		T(damaged_claim_word_is_ebadmsg_and_writes_nothing),
		T(offsets_are_dense_from_zero_across_singles_and_batches),
		T(batches_of_1_to_200_wrap_through_padding),
		T(one_call_appends_a_batch_larger_than_a_run),
		T(batch_meeting_the_ring_end_pads_exactly_to_it),
		T(claim_landing_on_old_bytes_that_look_aborted_succeeds),
		T(every_record_size_up_to_the_largest_frame_round_trips),
		T(record_larger_than_the_largest_frame_is_emsgsize),
		T(claim_writes_in_place_and_commits_a_shorter_value),
		T(committing_more_than_the_claim_is_einval_and_aborts),
		T(aborted_claim_is_skipped_and_positions_stay_consistent),
		T(claim_refuses_only_the_abort_of_exactly_this_claim),
		T(claims_at_the_ring_end_pad_and_resolve),
		T(word_past_every_claim_is_zeroed_over_garbage),
		T(interleaved_writers_are_read_in_offset_order),
		T(writers_with_stale_views_keep_offsets_dense),
		T(writer_announces_in_its_slot_and_fini_frees_it),
		T(writer_slots_of_dead_processes_are_reaped_when_all_are_taken),
		T(readonly_mapping_takes_no_writer_slot),
		T(backpressure_stops_a_lap_behind_a_registered_consumer),
		T(blocking_append_gives_up_at_its_deadline),
		T(consumer_slots_of_dead_processes_are_reaped),
		T(registry_refuses_a_lapped_position_and_a_65th_consumer),
		T(producers_wake_only_announced_waiters),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
