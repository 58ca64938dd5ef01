/*
 * test_recover.c - the recovery scan (format.md §8): a clean log is kept
 * whole; claims of dead producers become aborts; the tail is cut at the
 * first frame that fails its checks, offsets never go back and readers
 * go on past the cut; a claim word or index full of random bytes is
 * rebuilt from the data; writer and consumer slots of processes that are
 * gone are freed; and no damage at all makes recovery crash or leave a
 * log that readers cannot read to its end.
 *
 * Records use power-of-two frame sizes with values whose bytes at every
 * 64-byte boundary are 0xff, so wrapped logs stay clear of the append
 * bug where older bytes under a claim look like an abort (see
 * test_append.c); the scan itself sees the same frames either way.
 */
#include "lib/testutil.h"
#include "lib/partfixture.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "../shm/append.h"
#include "../util/crc32c.h"
#include "../util/error.h"
#include "../shm/partition.h"
#include "../shm/read.h"
#include "../shm/recover.h"
#include "../shm/unblock.h"

static void make_part(struct env *e, uint64_t cap, uint64_t icap, struct part *p)
{
	struct part_params prm = { .topic = "t", .topic_id = 1, .capacity = cap,
				   .index_capacity = icap, .numa_node = -1, .mode = 0600 };

	unlinkat(e->dirfd, "0", 0);
	env_part_create(e, "0", &prm, p);
}

static uint64_t rng_state = 0x13198a2e03707344ULL;

static uint64_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dULL;
}

/* Append one record of a `size`-byte frame (a power of two >= 64); its
 * value starts with its offset and its complement, then 0xff bytes. */
static int append_sized(struct part_writer *w, uint32_t size, uint64_t *ret_off)
{
	uint8_t val[4096];
	uint64_t o = w->p->hdr->claim.hi, n = ~o;
	struct part_rec r = { .value = val, .value_len = size - 48, .timestamp_ns = (int64_t)o };

	memset(val, 0xff, sizeof val);
	memcpy(val, &o, 8);
	memcpy(val + 8, &n, 8);
	return part_append(w, &r, 1, 0, 0, ret_off);
}

static void append_n(struct part_writer *w, int n, uint32_t size)
{
	for (int i = 0; i < n; i++) {
		uint64_t off;
		int rc = append_sized(w, size, &off);

		if (rc != 1)
			fail_msg("append = %d (%s)", rc, strerror(-rc));
	}
}

static void check_value(const struct frame_view *v)
{
	uint64_t o, n;

	memcpy(&o, v->value, 8);
	memcpy(&n, v->value + 8, 8);
	if (o != v->offset || n != ~v->offset)
		fail_msg("record at offset %llu holds the value of offset %llu",
			 (unsigned long long)v->offset, (unsigned long long)o);
	for (uint32_t i = 16; i < v->value_len; i++)
		assert_int_equal(v->value[i], 0xff);
}

/* Read from `c` to the end: the offsets delivered, in order. */
static size_t read_all(struct part *p, struct part_cursor *c, uint64_t *offs, size_t max)
{
	struct frame_view v;
	size_t n = 0;
	int rc;

	while ((rc = part_read(p, c, &v)) == 1) {
		check_value(&v);
		assert_true(n < max);
		offs[n++] = v.offset;
	}
	if (rc != 0)
		fail_msg("read stopped at offset %llu with %d: %s", (unsigned long long)c->off, rc,
			 shm_errmsg());
	assert_int_equal(c->off, p->hdr->claim.hi);
	return n;
}

static void recover(struct part *p, struct part_recovery *r)
{
	int rc = part_recover(p, r);

	if (rc)
		fail_msg("part_recover = %d: %s", rc, shm_errmsg());
}

/* ------------------------------------------------------------------ */

static void clean_log_is_kept_whole_and_counted(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct part_recovery r;
	struct part_cursor c;
	uint64_t offs[64];
	pair128 before;

	make_part(e, 8192, 0, &p);
	part_writer_init(&w, &p);
	for (int i = 0; i < 40; i++)
		append_n(&w, 1, 64u << (i % 3));
	before = p.hdr->claim;
	recover(&p, &r);
	assert_int_equal(r.old_tail, before.lo);
	assert_int_equal(r.old_next, 40);
	assert_int_equal(r.new_tail, before.lo);
	assert_int_equal(r.new_next, 40);
	assert_int_equal(r.first_off, 0);
	assert_int_equal(r.frames, 40);
	assert_int_equal(r.aborted, 0);
	assert_int_equal(r.cut, 0);
	assert_int_equal(r.cut_bytes, 0);
	assert_false(r.rebuilt);
	assert_string_equal(r.reason, "");
	assert_int_equal(p.hdr->claim.lo, before.lo);
	assert_int_equal(p.hdr->claim.hi, 40);
	assert_int_equal(p.hdr->recoveries, 1);
	assert_int_equal(p.hdr->recovered_cut, 0);
	assert_int_equal(part_seek_begin(&p, &c), 0);
	assert_int_equal(read_all(&p, &c, offs, 64), 40);
	/* and again: recovery is idempotent */
	recover(&p, &r);
	assert_int_equal(r.frames, 40);
	assert_int_equal(p.hdr->recoveries, 2);
	part_unmap(&p);
}

/* A wrapped log: every frame still intact is checked, from the oldest
 * the index knows, and the log is left as it was. */
static void clean_wrapped_log_is_kept(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct part_recovery r;
	struct part_cursor c;
	uint64_t offs[256], low, end;
	size_t n;

	make_part(e, 8192, 256, &p);
	part_writer_init(&w, &p);
	for (int i = 0; i < 700; i++)
		append_n(&w, 1, 64u << (rnd() % 4));
	part_bounds(&p, &low, &end);
	recover(&p, &r);
	assert_int_equal(r.cut, 0);
	assert_int_equal(r.aborted, 0);
	assert_false(r.rebuilt);
	assert_int_equal(r.first_off, low);
	assert_int_equal(r.frames, end - low);
	assert_int_equal(r.new_next, 700);
	assert_int_equal(part_seek_begin(&p, &c), 0);
	assert_int_equal(c.off, low);
	n = read_all(&p, &c, offs, 256);
	assert_int_equal(n, end - low);
	part_unmap(&p);
}

/* A producer died between claim and commit at the tail: its frame is
 * aborted (not cut), and the next record takes the next offset. */
static void claimed_frame_at_the_tail_becomes_an_abort(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct part_recovery r;
	struct part_rec meta = { 0 };
	struct part_claim cl;
	struct part_cursor c = { 0 };
	uint64_t offs[32], off;

	make_part(e, 8192, 0, &p);
	part_writer_init(&w, &p);
	append_n(&w, 10, 64);
	assert_int_equal(part_claim(&w, &meta, 80, 0, 0, &cl), 0);
	recover(&p, &r);
	assert_int_equal(r.frames, 10);
	assert_int_equal(r.aborted, 1);
	assert_int_equal(r.cut, 0);
	assert_int_equal(r.new_next, 11);
	assert_int_equal(*part_commit_word(&p, cl.pos), cw_make(FRAME_ABORTED, cl.len, 10));
	assert_int_equal(end_at(&p, cl.pos), 11);
	assert_int_equal(part_commit(&w, &cl, 80), -ECANCELED);
	part_writer_fini(&w);
	part_writer_init(&w, &p);
	assert_int_equal(append_sized(&w, 64, &off), 1);
	assert_int_equal(off, 11);
	assert_int_equal(read_all(&p, &c, offs, 32), 11);
	assert_int_equal(offs[9], 9);
	assert_int_equal(offs[10], 11);
	part_unmap(&p);
}

static void claimed_frame_in_the_middle_is_aborted_and_later_records_kept(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w, zc;
	struct part_recovery r;
	struct part_rec meta = { 0 };
	struct part_claim cl;
	struct part_cursor c = { 0 };
	uint64_t offs[32];

	make_part(e, 8192, 0, &p);
	part_writer_init(&w, &p);
	part_writer_init(&zc, &p);
	append_n(&w, 5, 128);
	assert_int_equal(part_claim(&zc, &meta, 80, 0, 0, &cl), 0); /* offset 5 */
	append_n(&w, 5, 64);                                       /* 6..10 */
	recover(&p, &r);
	assert_int_equal(r.frames, 10);
	assert_int_equal(r.aborted, 1);
	assert_int_equal(r.cut, 0);
	assert_int_equal(r.new_next, 11);
	assert_int_equal(read_all(&p, &c, offs, 32), 10);
	for (int i = 0; i < 10; i++)
		assert_int_equal(offs[i], i < 5 ? (uint64_t)i : (uint64_t)i + 1);
	part_unmap(&p);
}

/* A producer died after its claim CAS, before writing anything: an
 * empty word in the log becomes an abort up to the next frame. */
static void unmarked_claim_in_the_middle_is_aborted_to_the_next_frame(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct part_recovery r;
	struct part_cursor c = { 0 };
	uint64_t offs[32];
	pair128 cur;

	make_part(e, 8192, 0, &p);
	part_writer_init(&w, &p);
	append_n(&w, 4, 64);
	cur = p.hdr->claim;
	assert_true(cas128(&p.hdr->claim, &cur, (pair128){ .lo = cur.lo + 192, .hi = cur.hi + 3 }));
	append_n(&w, 4, 64); /* 7..10 */
	recover(&p, &r);
	assert_int_equal(r.frames, 8);
	assert_int_equal(r.aborted, 3);
	assert_int_equal(r.cut, 0);
	assert_int_equal(*part_commit_word(&p, cur.lo), cw_make(FRAME_ABORTED, 192, 4));
	assert_int_equal(end_at(&p, cur.lo), 7);
	for (uint64_t o = 4; o < 7; o++)
		assert_int_equal(p.index[o], cur.lo);
	assert_int_equal(read_all(&p, &c, offs, 32), 8);
	assert_int_equal(offs[3], 3);
	assert_int_equal(offs[4], 7);
	assert_int_equal(c.skipped, 3);
	part_unmap(&p);
}

/* Garbage payload (a torn write, a stray store) fails the CRC: the log
 * is cut there, the reason says so, and offsets do not go back. */
static void bad_crc_cuts_the_tail_and_offsets_continue_after_it(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct part_recovery r;
	struct part_cursor c = { 0 }, before_cut;
	uint64_t offs[32], pos7 = 0, off;
	pair128 old;

	make_part(e, 8192, 0, &p);
	part_writer_init(&w, &p);
	for (int i = 0; i < 10; i++) {
		if (i == 7)
			pos7 = p.hdr->claim.lo;
		append_n(&w, 1, 64u << (i % 2));
	}
	old = p.hdr->claim;
	part_at(&p, pos7 + 60)[0] ^= 0x01; /* a value byte of offset 7 */
	assert_int_equal(part_seek(&p, &before_cut, 7), 0);
	recover(&p, &r);
	assert_int_equal(r.frames, 7);
	assert_int_equal(r.cut, 3);
	assert_int_equal(r.cut_bytes, old.lo - pos7);
	assert_non_null(strstr(r.reason, "CRC"));
	assert_non_null(strstr(r.reason, "offset 7"));
	assert_int_equal(r.new_next, 10);
	/* the cut keeps {tail, next}: one aborted range covers the cut bytes
	 * and offsets (format.md §8), the index of each leads to it */
	assert_int_equal(r.new_tail, old.lo);
	assert_int_equal(p.hdr->claim.lo, old.lo);
	assert_int_equal(p.hdr->claim.hi, 10);
	assert_int_equal(*part_commit_word(&p, pos7), cw_make(FRAME_ABORTED, old.lo - pos7, 7));
	assert_int_equal(end_at(&p, pos7), 10);
	for (uint64_t o = 7; o < 10; o++)
		assert_int_equal(p.index[o], pos7);
	assert_int_equal(p.hdr->recovered_cut, 3);
	/* new records continue the offsets */
	part_writer_fini(&w);
	part_writer_init(&w, &p);
	assert_int_equal(append_sized(&w, 64, &off), 1);
	assert_int_equal(off, 10);
	/* a reader from the start skips the cut offsets */
	assert_int_equal(read_all(&p, &c, offs, 32), 8);
	assert_int_equal(offs[6], 6);
	assert_int_equal(offs[7], 10);
	/* a reader that stood at the first cut record goes straight to it */
	assert_int_equal(read_all(&p, &before_cut, offs, 32), 1);
	assert_int_equal(offs[0], 10);
	part_unmap(&p);
}

/* format.md §8: "consumers positioned past the cut resume at the next
 * new record".  A consumer that had read everything stands at the old
 * end (offset, position) when recovery cuts the tail under it. */
static void reader_at_the_old_end_resumes_at_the_next_record_after_a_cut(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct part_recovery r;
	struct part_cursor c = { 0 };
	struct frame_view v;
	uint64_t offs[32], pos7 = 0, off;
	pair128 old;
	int rc;

	make_part(e, 8192, 0, &p);
	part_writer_init(&w, &p);
	for (int i = 0; i < 10; i++) {
		if (i == 7)
			pos7 = p.hdr->claim.lo;
		append_n(&w, 1, 128);
	}
	assert_int_equal(read_all(&p, &c, offs, 32), 10);
	assert_int_equal(part_read(&p, &c, &v), 0); /* waiting at the end */
	old = p.hdr->claim;
	assert_int_equal(c.pos, old.lo);
	part_at(&p, pos7 + 100)[0] ^= 0x40;
	recover(&p, &r);
	assert_int_equal(r.cut, 3);
	assert_int_equal(r.cut_bytes, 3 * 128);
	assert_int_equal(p.hdr->claim.lo, old.lo);
	assert_int_equal(p.hdr->claim.hi, old.hi);
	/* the reader still waits where it was: nothing is there yet */
	assert_int_equal(part_read(&p, &c, &v), 0);
	assert_int_equal(c.off, 10);
	assert_int_equal(c.pos, old.lo);
	part_writer_fini(&w);
	part_writer_init(&w, &p);
	assert_int_equal(append_sized(&w, 64, &off), 1);
	assert_int_equal(off, 10);
	rc = part_read(&p, &c, &v);
	if (rc != 1)
		fail_msg("a reader at the old end (offset 10, position %llu) got %d instead of offset 10; "
			 "the new record lies at position %llu", (unsigned long long)c.pos, rc,
			 (unsigned long long)p.index[10]);
	assert_int_equal(v.offset, 10);
	assert_int_equal(v.pos, old.lo);
	/* a reader from the oldest record skips the cut ones to it */
	assert_int_equal(part_seek_begin(&p, &c), 0);
	assert_int_equal(read_all(&p, &c, offs, 32), 8);
	assert_int_equal(offs[6], 6);
	assert_int_equal(offs[7], 10);
	part_unmap(&p);
}

static void damaged_lengths_in_the_middle_cut_there(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct part_recovery r;
	struct part_cursor c = { 0 };
	uint64_t offs[32], off;

	make_part(e, 8192, 0, &p);
	part_writer_init(&w, &p);
	append_n(&w, 10, 64);
	((struct frame_hdr *)(void *)part_at(&p, 3 * 64))->value_len = 1000;
	recover(&p, &r);
	assert_int_equal(r.frames, 3);
	assert_int_equal(r.cut, 7);
	assert_non_null(strstr(r.reason, "offset 3"));
	part_writer_fini(&w);
	part_writer_init(&w, &p);
	assert_int_equal(append_sized(&w, 64, &off), 1);
	assert_int_equal(off, 10);
	assert_int_equal(read_all(&p, &c, offs, 32), 4);
	assert_int_equal(offs[3], 10);
	part_unmap(&p);
}

/* Header damage that does not pass the CRC: the record headers of a
 * frame whose declared count is wrong. */
static void damaged_record_headers_cut_there(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct part_recovery r;
	struct frame_kv kv = { .name = "h", .name_len = 1, .value = "v", .value_len = 1 };
	uint8_t enc[16];
	struct part_rec rec = { .value = "x", .value_len = 1, .headers = enc, .headers_len = 8,
				.header_count = 2 /* but only one is encoded */ };
	uint64_t off;

	make_part(e, 8192, 0, &p);
	part_writer_init(&w, &p);
	append_n(&w, 2, 64);
	frame_headers_encode(enc, &kv, 1);
	assert_int_equal(part_append(&w, &rec, 1, 0, 0, &off), 1);
	append_n(&w, 2, 64);
	recover(&p, &r);
	assert_int_equal(r.frames, 2);
	assert_int_equal(r.cut, 3);
	assert_non_null(strstr(r.reason, "headers"));
	part_unmap(&p);
}

/* ------------------------------------------------------------------ */
/* Rebuilding from the data                                            */

static void random_claim_word_and_index_are_rebuilt_from_the_data(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct part_recovery r;
	struct part_cursor c;
	uint64_t offs[64], off;

	make_part(e, 8192, 0, &p);
	part_writer_init(&w, &p);
	for (int i = 0; i < 30; i++)
		append_n(&w, 1, 64u << (i % 3));
	p.hdr->claim = (pair128){ .lo = 0x123456789abcdef1ULL, .hi = 0x0fedcba987654321ULL };
	for (uint64_t i = 0; i < p.icap; i++)
		p.index[i] = rnd();
	recover(&p, &r);
	assert_true(r.rebuilt);
	assert_int_equal(r.first_off, 0);
	assert_int_equal(r.new_next, 30);
	assert_int_equal(r.frames, 30);
	assert_int_equal(p.hdr->claim.hi, 30);
	assert_int_equal(part_seek_begin(&p, &c), 0);
	assert_int_equal(read_all(&p, &c, offs, 64), 30);
	for (int i = 0; i < 30; i++)
		assert_int_equal(offs[i], i);
	part_writer_fini(&w);
	part_writer_init(&w, &p);
	assert_int_equal(append_sized(&w, 128, &off), 1);
	assert_int_equal(off, 30);
	assert_int_equal(read_all(&p, &c, offs, 64), 1);
	part_unmap(&p);
}

static void wrapped_log_is_rebuilt_back_to_its_oldest_intact_record(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct part_recovery r;
	struct part_cursor c;
	uint64_t offs[256], low, end;
	size_t n;

	make_part(e, 8192, 1024, &p);
	part_writer_init(&w, &p);
	for (int i = 0; i < 500; i++)
		append_n(&w, 1, 64u << (rnd() % 4));
	part_bounds(&p, &low, &end);
	p.hdr->claim = (pair128){ .lo = rnd() | 1, .hi = rnd() };
	memset(p.index, 0xee, p.icap * 8);
	recover(&p, &r);
	assert_true(r.rebuilt);
	assert_int_equal(r.new_next, 500);
	assert_int_equal(r.first_off, low);
	assert_int_equal(part_seek_begin(&p, &c), 0);
	assert_int_equal(c.off, low);
	n = read_all(&p, &c, offs, 256);
	assert_int_equal(n, end - low);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(offs[i], low + i);
	part_unmap(&p);
}

static void ring_without_a_valid_frame_keeps_its_offsets(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct part_recovery r;
	uint64_t off;

	make_part(e, 4096, 0, &p);
	part_writer_init(&w, &p);
	append_n(&w, 20, 64);
	memset(p.data, 0, p.cap);
	p.hdr->claim.lo |= 4; /* misaligned: unusable */
	recover(&p, &r);
	assert_true(r.rebuilt);
	assert_int_equal(r.new_next, 20);
	assert_true(r.reason[0] != '\0');
	part_writer_fini(&w);
	part_writer_init(&w, &p);
	assert_int_equal(append_sized(&w, 64, &off), 1);
	assert_int_equal(off, 20);
	part_unmap(&p);
}

static int take_slots_and_exit(void *arg)
{
	struct part *p = arg;
	struct part_writer w;

	part_writer_init(&w, p);
	return w.slot && part_bp_register(p, 0, 0, "dies") >= 0 ? 0 : 1;
}

/* Nobody appends during recovery (format.md §8): it frees the writer and
 * consumer slots of processes that are gone and keeps those of live ones. */
static void recovery_frees_dead_slots(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct part_recovery r;
	pid_t pid;
	int slot;

	make_part(e, 4096, 0, &p);
	pid = tu_fork(take_slots_and_exit, &p);
	assert_int_equal(tu_wait(pid, 10000), 0);
	assert_int_equal(p.hdr->writers[0].pid, pid);
	assert_int_equal(p.hdr->consumers[0].pid, pid);
	part_writer_init(&w, &p);
	assert_ptr_equal(w.slot, &p.hdr->writers[1]);
	slot = part_bp_register(&p, 0, 0, "lives");
	assert_int_equal(slot, 1);
	append_n(&w, 3, 64);
	recover(&p, &r);
	assert_int_equal(r.frames, 3);
	assert_int_equal(p.hdr->writers[0].pid, 0);
	assert_int_equal(p.hdr->consumers[0].pid, 0);
	assert_int_equal(p.hdr->writers[1].pid, getpid());
	assert_int_equal(p.hdr->consumers[1].pid, getpid());
	/* the freed slot is taken again */
	{
		struct part_writer w2;

		part_writer_init(&w2, &p);
		assert_ptr_equal(w2.slot, &p.hdr->writers[0]);
		part_writer_fini(&w2);
	}
	part_bp_unregister(&p, slot);
	part_writer_fini(&w);
	part_unmap(&p);
}

static void recovery_through_a_readonly_mapping_is_erofs(void **state)
{
	struct env *e = *state;
	struct part p, ro;
	struct part_recovery r;

	make_part(e, 4096, 0, &p);
	assert_ok(part_open(e->dirfd, "0", true, "0", &ro));
	assert_int_equal(part_recover(&ro, &r), -EROFS);
	part_unmap(&ro);
	part_unmap(&p);
}

/* ------------------------------------------------------------------ */
/* Guarded mappings: a page after the data ring that faults            */

static int recover_in_child(void *arg)
{
	struct part *p = arg;
	struct part_recovery r;

	signal(SIGSEGV, SIG_DFL);
	signal(SIGBUS, SIG_DFL);
	return part_recover(p, &r) == 0 ? 0 : 1;
}

/* The rebuild's scan of the oldest bytes walks every 8-byte position of
 * the ring; at the last one it must not read the frame header that
 * would lie past the ring's end. */
static void rebuild_never_reads_past_the_ring(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct guarded g;
	int st;

	make_part(e, 4096, 0, &p);
	part_writer_init(&w, &p);
	append_n(&w, 10, 64);
	part_unmap(&p);
	map_guarded(e, &g);
	g.p.hdr->claim.lo |= 4; /* unusable: rebuild from the data */
	st = tu_wait(tu_fork(recover_in_child, &g.p), 30000);
	if (st != 0)
		fail_msg("part_recover (rebuild) read past the data ring: the child died with status %d",
			 st);
	unmap_guarded(&g);
}

/*
 * 500 rounds of random damage over a log: bytes over the claim word,
 * `start`, the index and the ring.  Recovery must neither crash nor read
 * outside the file (guarded mapping, in a child), and afterwards:
 *  - a read from part_seek_begin reaches the end without an error,
 *  - every record it delivers has a good CRC and well-formed headers,
 *    at increasing offsets,
 *  - the partition takes a new record and a reader at the end reads it.
 */
struct fuzz {
	struct part *p;
	uint64_t seed;
	int rounds;
	char why[256];
};

static int fuzz_round(struct part *p, char *why, size_t whylen)
{
	struct part_recovery r;
	struct part_cursor c;
	struct frame_view v;
	struct part_writer w;
	uint64_t last = 0, off;
	bool first = true;
	int rc, steps = 0;
	uint8_t val[40] = { 1, 2, 3 };
	struct part_rec rec = { .value = val, .value_len = sizeof val };

	if (part_recover(p, &r) != 0)
		return snprintf(why, whylen, "part_recover failed"), 1;
	if (part_seek_begin(p, &c) != 0)
		return snprintf(why, whylen, "part_seek_begin failed"), 1;
	while ((rc = part_read(p, &c, &v)) == 1) {
		if (++steps > 100000)
			return snprintf(why, whylen, "the read does not end"), 1;
		if (!first && v.offset <= last)
			return snprintf(why, whylen, "offset %llu after %llu", (unsigned long long)v.offset,
					(unsigned long long)last), 1;
		if (frame_crc((const struct frame_hdr *)(const void *)part_at(p, v.pos),
			      frame_payload_len(&v)) != v.crc)
			return snprintf(why, whylen, "offset %llu delivered with a bad CRC after recovery",
					(unsigned long long)v.offset), 1;
		if (frame_headers_check(v.headers, v.headers_len, v.header_count))
			return snprintf(why, whylen, "offset %llu has bad headers after recovery",
					(unsigned long long)v.offset), 1;
		first = false;
		last = v.offset;
	}
	if (rc != 0)
		return snprintf(why, whylen, "after recovery (%s), the read from %llu stopped at "
				"offset %llu with %d: %s", r.rebuilt ? "rebuilt" : "walked",
				(unsigned long long)r.first_off, (unsigned long long)c.off, rc,
				shm_errmsg()), 1;
	part_writer_init(&w, p);
	rc = part_append(&w, &rec, 1, 0, 0, &off);
	if (rc != 1)
		return snprintf(why, whylen, "append after recovery = %d", rc), 1;
	part_writer_fini(&w);
	rc = part_read(p, &c, &v);
	if (rc != 1 || v.offset != off)
		return snprintf(why, whylen, "the record appended after recovery (offset %llu) is "
				"not read: %d", (unsigned long long)off, rc), 1;
	return 0;
}

static void damage(struct part *p)
{
	int what = (int)(rnd() % 6), n = 1 + (int)(rnd() % 4);

	for (int k = 0; k < n; k++) {
		uint8_t *at;
		size_t len = 1 + rnd() % 16;

		switch (what) {
		case 0: /* the claim word */
			at = (uint8_t *)&p->hdr->claim + rnd() % 16;
			len = len > 16 ? 16 : len;
			if (at + len > (uint8_t *)&p->hdr->claim + 16)
				len = (size_t)((uint8_t *)&p->hdr->claim + 16 - at);
			break;
		case 1: /* start, a little ahead or anywhere */
			p->hdr->start = rnd() % 2 ? p->hdr->claim.hi + rnd() % 8 - 4 : rnd();
			continue;
		case 2: /* the index */
			at = (uint8_t *)p->index + rnd() % (p->icap * 8 - 16);
			break;
		default: /* the ring: words, lengths, payload */
			at = p->data + rnd() % (p->cap - 16);
			break;
		}
		for (size_t i = 0; i < len; i++)
			at[i] = (uint8_t)(rnd() % 3 ? rnd() : rnd() % 2 ? 0 : 0xff);
	}
}

static int fuzz_child(void *arg)
{
	struct fuzz *f = arg;
	struct part *p = f->p;
	struct part_writer w;

	signal(SIGSEGV, SIG_DFL);
	signal(SIGBUS, SIG_DFL);
	rng_state = f->seed;
	for (f->rounds = 0; f->rounds < 500; f->rounds++) {
		/* a fresh log each round: records of power-of-two frames,
		 * sometimes a dead claim or an abort among them */
		memset(p->data, 0, p->cap);
		memset(p->index, 0, p->icap * 8);
		p->hdr->claim = (pair128){ .lo = (rnd() % 4) * p->cap, .hi = rnd() % 1000 };
		p->hdr->start = 0;
		part_writer_init(&w, p);
		for (int i = 0, n = (int)(rnd() % 200); i < n; i++) {
			uint64_t off;
			struct part_rec meta = { 0 };
			struct part_claim cl;
			struct part_writer zc;

			/* a claim by a writer that then aborts it, or leaves it
			 * (as a producer that dies) */
			if (rnd() % 16 == 0) {
				part_writer_init(&zc, p);
				if (part_claim(&zc, &meta, 16, 0, 0, &cl) == 0 && rnd() % 2)
					part_abort(&zc, &cl);
				part_writer_fini(&zc);
				continue;
			}
			(void)append_sized(&w, 64u << (rnd() % 4), &off);
		}
		part_writer_fini(&w);
		damage(p);
		if (fuzz_round(p, f->why, sizeof f->why)) {
			fprintf(stderr, "round %d (seed %#llx): %s\n", f->rounds,
				(unsigned long long)f->seed, f->why);
			return 2;
		}
	}
	return 0;
}

static void random_damage_never_crashes_and_leaves_a_readable_log(void **state)
{
	struct env *e = *state;
	struct part p;
	struct guarded g;
	struct fuzz f;
	int st;

	make_part(e, 8192, 128, &p);
	part_unmap(&p);
	map_guarded(e, &g);
	f = (struct fuzz){ .p = &g.p, .seed = 0x5eed0001 };
	st = tu_wait(tu_fork(fuzz_child, &f), 120000);
	if (st > 128)
		fail_msg("recovery or the read after it crashed (signal %d): see the child's output", st - 128);
	if (st != 0)
		fail_msg("a recovered log broke an invariant (status %d): see the child's output above", st);
	unmap_guarded(&g);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, env_setup, env_teardown)
	const struct CMUnitTest tests[] = {
		T(clean_log_is_kept_whole_and_counted),
		T(clean_wrapped_log_is_kept),
		T(claimed_frame_at_the_tail_becomes_an_abort),
		T(claimed_frame_in_the_middle_is_aborted_and_later_records_kept),
		T(unmarked_claim_in_the_middle_is_aborted_to_the_next_frame),
		T(bad_crc_cuts_the_tail_and_offsets_continue_after_it),
		T(reader_at_the_old_end_resumes_at_the_next_record_after_a_cut),
		T(damaged_lengths_in_the_middle_cut_there),
		T(damaged_record_headers_cut_there),
		T(random_claim_word_and_index_are_rebuilt_from_the_data),
		T(wrapped_log_is_rebuilt_back_to_its_oldest_intact_record),
		T(ring_without_a_valid_frame_keeps_its_offsets),
		T(recovery_frees_dead_slots),
		T(recovery_through_a_readonly_mapping_is_erofs),
		T(rebuild_never_reads_past_the_ring),
		T(random_damage_never_crashes_and_leaves_a_readable_log),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
