/*
 * test_replica.c - a mirror's replica partition (shm/replica.c): frames
 * read from a real source partition, carried as a DATA batch
 * (shm/mirrorproto.h), appended to a replica at their own offsets byte
 * for byte; a bad CRC or a discontinuity appends nothing; a gap is
 * recorded; producers are refused; readers read the replica as any
 * partition.
 */
#include "lib/testutil.h"
#include "lib/partfixture.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../shm/append.h"
#include "../shm/append_int.h"
#include "../util/error.h"
#include "../shm/frame.h"
#include "../shm/mirrorproto.h"
#include "../shm/partition.h"
#include "../shm/read.h"
#include "../shm/replica.h"

static struct part_params params(const char *topic, uint64_t status, uint64_t cap)
{
	return (struct part_params){ .topic = topic, .topic_id = 7, .partition = 0,
				     .capacity = cap, .policy = PART_POLICY_OVERWRITE,
				     .numa_node = -1, .mode = 0600, .status = status };
}

/* n records with keys, headers and values of varied sizes */
static void produce(struct part *p, uint64_t n)
{
	struct part_writer w;
	uint8_t hdrs[64];
	struct frame_kv kv = { .name = "h", .name_len = 1, .value = "v1", .value_len = 2 };
	int64_t hl = frame_headers_size(&kv, 1);

	frame_headers_encode(hdrs, &kv, 1);
	assert_ok(part_writer_init(&w, p));
	for (uint64_t i = 0; i < n; i++) {
		char key[32], val[300];
		struct part_rec r = { .key = key, .value = val, .headers = hdrs,
				      .headers_len = (uint32_t)hl, .header_count = 1,
				      .timestamp_ns = 1000 + (int64_t)i };
		uint64_t off;

		r.key_len = (uint32_t)snprintf(key, sizeof key, "k%llu", (unsigned long long)i);
		r.value_len = (uint32_t)(i * 7 % sizeof val);
		memset(val, 'a' + (int)(i % 26), sizeof val);
		assert_int_equal(part_append(&w, &r, 1, 0, 0, &off), 1);
		assert_int_equal(off, i);
	}
	part_writer_fini(&w);
}

/* A batch of the source's frames at offsets [from, to), as a source
 * sends them: each frame as it lies in the ring. */
struct batch {
	uint8_t *buf;
	size_t len;
	uint32_t count;
	uint64_t first, next;
};

static void batch_of(struct part *src, uint64_t from, uint64_t to, struct batch *b)
{
	struct part_cursor c = { 0 };
	struct frame_view v;

	b->buf = aligned_alloc(8, 1 << 20);
	b->len = 0;
	b->count = 0;
	b->first = from;
	assert_ok(part_seek(src, &c, from));
	while (c.off < to && part_read(src, &c, &v) == 1) {
		memcpy(b->buf + b->len, part_at(src, v.pos), v.len);
		b->len += v.len;
		b->count++;
	}
	b->next = c.off;
}

static void open_pair_cap(struct env *e, uint64_t cap, struct part *src, struct part *rep,
			  struct replica *r)
{
	struct part_params ps = params("src", 0, cap), pr = params("rep", PART_STATUS_REPLICA, cap);

	env_part_create(e, "src", &ps, src);
	env_part_create(e, "rep", &pr, rep);
	assert_ok(replica_open(r, rep));
}

static void open_pair(struct env *e, struct part *src, struct part *rep, struct replica *r)
{
	open_pair_cap(e, 1 << 20, src, rep, r);
}

static void close_pair(struct part *src, struct part *rep, struct replica *r)
{
	replica_close(r);
	part_unmap(src);
	part_unmap(rep);
}

/* Every record of [from, to) on both: same offset, same bytes after the
 * commit word (header with timestamp, lengths, pid, CRC; payload). */
static void same_bytes(struct part *src, struct part *rep, uint64_t from, uint64_t to)
{
	struct part_cursor a = { 0 }, b = { 0 };
	struct frame_view va, vb;

	assert_ok(part_seek(src, &a, from));
	assert_ok(part_seek(rep, &b, from));
	for (uint64_t o = from; o < to; o++) {
		assert_int_equal(part_read(src, &a, &va), 1);
		assert_int_equal(part_read(rep, &b, &vb), 1);
		assert_int_equal(va.offset, vb.offset);
		assert_memory_equal(part_at(src, va.pos) + 8, part_at(rep, vb.pos) + 8,
				    FRAME_HDR_SIZE - 8 + frame_payload_len(&va));
	}
}

static void frames_are_appended_at_their_offsets_byte_for_byte(void **state)
{
	struct part src, rep;
	struct replica r;
	struct batch b;

	open_pair(*state, &src, &rep, &r);
	produce(&src, 500);
	for (uint64_t o = 0; o < 500; o = b.next) {
		batch_of(&src, o, o + 37, &b);
		assert_ok(replica_append(&r, b.buf, b.len, b.count, b.first, b.next));
		free(b.buf);
	}
	assert_int_equal(replica_end(&r), 500);
	same_bytes(&src, &rep, 100, 500);
	close_pair(&src, &rep, &r);
}

static void a_bad_crc_appends_nothing_of_the_batch(void **state)
{
	struct part src, rep;
	struct replica r;
	struct batch b;

	open_pair(*state, &src, &rep, &r);
	produce(&src, 10);
	batch_of(&src, 0, 10, &b);
	b.buf[FRAME_HDR_SIZE + 2] ^= 0x40;
	assert_int_equal(replica_append(&r, b.buf, b.len, b.count, b.first, b.next), -EBADMSG);
	assert_non_null(strstr(shm_errmsg(), "CRC32C"));
	assert_non_null(strstr(shm_errmsg(), "rep/0"));
	assert_int_equal(replica_end(&r), 0);
	b.buf[FRAME_HDR_SIZE + 2] ^= 0x40;
	assert_ok(replica_append(&r, b.buf, b.len, b.count, b.first, b.next));
	same_bytes(&src, &rep, 0, 10);
	free(b.buf);
	close_pair(&src, &rep, &r);
}

static void offsets_must_continue_from_the_replica_end(void **state)
{
	struct part src, rep;
	struct replica r;
	struct batch b, later;

	open_pair(*state, &src, &rep, &r);
	produce(&src, 20);
	batch_of(&src, 5, 20, &later);
	assert_int_equal(replica_append(&r, later.buf, later.len, later.count, later.first,
					later.next), -EBADMSG);
	assert_non_null(strstr(shm_errmsg(), "must continue"));
	/* a batch that declares 0.. but whose frames skip offsets */
	batch_of(&src, 0, 5, &b);
	memcpy(b.buf + b.len, later.buf, later.len);
	assert_int_equal(replica_append(&r, b.buf, b.len + later.len, b.count + later.count, 0,
					20), 0);
	free(b.buf);
	batch_of(&src, 0, 3, &b);
	/* drop the middle frame: 0 then 2 */
	{
		uint64_t l0 = cw_len(*(uint64_t *)(void *)b.buf);
		uint64_t l1 = cw_len(*(uint64_t *)(void *)(b.buf + l0));

		memmove(b.buf + l0, b.buf + l0 + l1, b.len - l0 - l1);
		b.len -= l1;
	}
	replica_close(&r);
	part_unmap(&rep);
	{
		struct part_params pr = params("rep2", PART_STATUS_REPLICA, 1 << 20);

		env_part_create(*state, "rep2", &pr, &rep);
		assert_ok(replica_open(&r, &rep));
	}
	assert_int_equal(replica_append(&r, b.buf, b.len, 2, 0, 3), -EBADMSG);
	assert_non_null(strstr(shm_errmsg(), "next offset"));
	assert_int_equal(replica_end(&r), 0);
	free(b.buf);
	free(later.buf);
	close_pair(&src, &rep, &r);
}

static void aborted_ranges_and_gaps_keep_offsets_and_are_counted(void **state)
{
	struct part src, rep;
	struct replica r;
	struct batch b;
	struct part_cursor c = { 0 };
	struct frame_view v;

	open_pair(*state, &src, &rep, &r);
	produce(&src, 2000);
	/* the source no longer holds 0..1000: a gap, then its frames */
	assert_ok(replica_gap(&r, 1000));
	assert_int_equal(replica_end(&r), 1000);
	assert_int_equal(rep.hdr->mirror_gaps, 1);
	assert_int_equal(rep.hdr->mirror_gap_offsets, 1000);
	batch_of(&src, 1000, 1010, &b);
	assert_ok(replica_append(&r, b.buf, b.len, b.count, b.first, b.next));
	free(b.buf);
	/* readers skip the gap: the first record read is 1000 */
	assert_int_equal(part_read(&rep, &c, &v), 1);
	assert_int_equal(v.offset, 1000);
	same_bytes(&src, &rep, 1000, 1010);
	close_pair(&src, &rep, &r);
}

/* an aborted range inside a batch: offsets 3..6 have no record */
static void an_aborted_range_in_a_batch_takes_its_offsets(void **state)
{
	struct part src, rep;
	struct replica r;
	struct part_cursor c = { 0 };
	struct frame_view v;
	uint8_t hole[16];
	uint64_t cw = cw_make(FRAME_ABORTED, 16, 3), end = 7;

	open_pair(*state, &src, &rep, &r);
	memcpy(hole, &cw, 8);
	memcpy(hole + 8, &end, 8);
	assert_ok(replica_gap(&r, 3));
	assert_ok(replica_append(&r, hole, sizeof hole, 1, 3, 7));
	assert_int_equal(replica_end(&r), 7);
	assert_int_equal(rep.hdr->mirror_gaps, 1);
	produce(&src, 8);
	{
		struct batch b;

		batch_of(&src, 7, 8, &b);
		assert_ok(replica_append(&r, b.buf, b.len, b.count, b.first, b.next));
		free(b.buf);
	}
	assert_int_equal(part_read(&rep, &c, &v), 1);
	assert_int_equal(v.offset, 7);
	close_pair(&src, &rep, &r);
}

static void producers_are_refused_and_consumers_read(void **state)
{
	struct part src, rep;
	struct replica r;
	struct part_writer w;
	struct part_rec rec = { .value = "x", .value_len = 1 };
	struct part_cursor c = { 0 };
	struct frame_view v;
	struct batch b;
	uint64_t off;

	open_pair(*state, &src, &rep, &r);
	produce(&src, 3);
	batch_of(&src, 0, 3, &b);
	assert_ok(replica_append(&r, b.buf, b.len, b.count, b.first, b.next));
	free(b.buf);
	assert_ok(part_writer_init(&w, &rep));
	assert_int_equal(part_append(&w, &rec, 1, 0, 0, &off), -EROFS);
	part_writer_fini(&w);
	for (uint64_t o = 0; o < 3; o++) {
		assert_int_equal(part_read(&rep, &c, &v), 1);
		assert_int_equal(v.offset, o);
		assert_int_equal(v.timestamp_ns, 1000 + (int64_t)o);
	}
	assert_int_equal(part_read(&rep, &c, &v), 0);
	/* and a mirror writes only replicas */
	replica_close(&r);
	assert_int_equal(replica_open(&r, &src), -EROFS);
	assert_non_null(strstr(shm_errmsg(), "not a writable replica"));
	part_unmap(&src);
	part_unmap(&rep);
}

static void the_replica_laps_its_ring_like_any_partition(void **state)
{
	struct part src, rep;
	struct replica r;
	struct batch b;
	uint64_t lo, end;

	open_pair_cap(*state, 65536, &src, &rep, &r);
	for (int round = 0; round < 6; round++) {
		uint64_t from = replica_end(&r);

		{
			struct part_writer w;
			struct part_rec rec = { .value = "0123456789abcdef0123456789", .value_len = 26 };
			uint64_t off;

			assert_ok(part_writer_init(&w, &src));
			for (int i = 0; i < 300; i++)
				assert_int_equal(part_append(&w, &rec, 1, 0, 0, &off), 1);
			part_writer_fini(&w);
		}
		batch_of(&src, from, from + 300, &b);
		assert_ok(replica_append(&r, b.buf, b.len, b.count, b.first, b.next));
		free(b.buf);
	}
	part_bounds(&rep, &lo, &end);
	assert_int_equal(end, 1800);
	assert_true(lo > 0);
	same_bytes(&src, &rep, lo > 1000 ? lo : 1000, 1800);
	close_pair(&src, &rep, &r);
}

/* A mirror killed between its claim and its commits: the claim is taken
 * back on resume, and the offsets are appended again, byte for byte. */
static void a_claim_left_by_a_dead_mirror_is_taken_back(void **state)
{
	struct part src, rep;
	struct replica r;
	struct batch b;
	struct plan pl;
	struct part_cursor c = { 0 };
	struct frame_view v;
	uint64_t lens[3], cut;

	open_pair(*state, &src, &rep, &r);
	produce(&src, 10);
	batch_of(&src, 0, 5, &b);
	assert_ok(replica_append(&r, b.buf, b.len, b.count, b.first, b.next));
	free(b.buf);
	/* claimed and marked, never published: as a kill -9 leaves it */
	batch_of(&src, 5, 8, &b);
	for (int i = 0, at = 0; i < 3; i++) {
		lens[i] = cw_len(*(uint64_t *)(void *)(b.buf + at));
		at += (int)lens[i];
	}
	assert_ok(append_claim(&r.w, lens, 3, 0, 0, 0, &pl));
	assert_true(append_mark(&rep, &pl, lens));
	append_idle(&r.w);
	assert_int_equal(replica_end(&r), 8);
	replica_close(&r);
	assert_ok(replica_resume(&rep, &cut));
	assert_int_equal(cut, 3);
	assert_ok(replica_open(&r, &rep));
	assert_int_equal(replica_end(&r), 5);
	assert_ok(replica_append(&r, b.buf, b.len, b.count, b.first, b.next));
	free(b.buf);
	same_bytes(&src, &rep, 0, 8);
	for (uint64_t o = 0; o < 8; o++) {
		assert_int_equal(part_read(&rep, &c, &v), 1);
		assert_int_equal(v.offset, o);
	}
	assert_ok(replica_resume(&rep, &cut)); /* nothing left to take back */
	assert_int_equal(cut, 0);
	/* one an unblocker aborted (readers may have passed it) stays */
	batch_of(&src, 8, 9, &b);
	lens[0] = b.len;
	assert_ok(append_claim(&r.w, lens, 1, 0, 0, 0, &pl));
	assert_true(append_mark(&rep, &pl, lens));
	append_abort_range(&rep, pl.start, 8, lens[0], 9);
	append_idle(&r.w);
	assert_int_equal(replica_resume(&rep, &cut), -ESTALE);
	assert_non_null(strstr(shm_errmsg(), "rep/0"));
	free(b.buf);
	close_pair(&src, &rep, &r);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, env_setup, env_teardown)
	const struct CMUnitTest tests[] = {
		T(frames_are_appended_at_their_offsets_byte_for_byte),
		T(a_bad_crc_appends_nothing_of_the_batch),
		T(offsets_must_continue_from_the_replica_end),
		T(aborted_ranges_and_gaps_keep_offsets_and_are_counted),
		T(an_aborted_range_in_a_batch_takes_its_offsets),
		T(producers_are_refused_and_consumers_read),
		T(the_replica_laps_its_ring_like_any_partition),
		T(a_claim_left_by_a_dead_mirror_is_taken_back),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
