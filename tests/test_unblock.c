/*
 * test_unblock.c - stalled claims (format.md §7): a claim whose producer
 * lives is left alone (-EBUSY) unless forced; one whose producer died is
 * aborted, frame by frame, and readers go on; an empty word at the
 * frontier (a producer that died between its claim CAS and its first
 * write) is aborted up to the first claim boundary after it: one a writer
 * announced, a frame the index leads to, or the tail; an abort whose end
 * offset never landed is repaired; damage is refused or bounded.  Every
 * abort is checked to the word: ABORTED(length, first offset), the end
 * offset at frame + 8, the index of each aborted offset.
 *
 * Dead producers are the real part_append in a child process killed at a
 * test point of append.c, each a window of format.md §4 (util/testpoint.h
 * lists them).  Only damage, which no producer writes, is written by
 * hand.  Producers stopped, alive, while the unblocker runs are in
 * test_unblock_race.c.
 */
#include "lib/testutil.h"
#include "lib/partfixture.h"

#include <errno.h>
#include <signal.h>
#include <string.h>

#include "../shm/append.h"
#include "../shm/partition.h"
#include "../shm/read.h"
#include "../shm/unblock.h"

static void claim_of_a_living_producer_is_ebusy(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w, zc;
	struct part_rec meta = { 0 };
	struct part_claim cl;
	struct part_cursor c = { 0 };
	pid_t pid = 0;
	uint64_t before;

	env_part_default(e, 4096, &p);
	part_writer_init(&w, &p);
	part_writer_init(&zc, &p);
	append64(&w, 1);
	assert_int_equal(part_claim(&zc, &meta, 16, 0, 0, &cl), 0);
	append64(&w, 1);
	read_expect(&p, &c, 0);
	read_nothing(&p, &c);
	before = *part_commit_word(&p, cl.pos);
	assert_int_equal(part_unblock(&p, c.off, c.stall_pos, 0, c.stall_tail, &pid), -EBUSY);
	assert_int_equal(pid, getpid());
	assert_int_equal(*part_commit_word(&p, cl.pos), before);
	assert_int_equal(p.hdr->aborted_claims, 0);
	/* it commits later and is read */
	memset(cl.value, 0, 16);
	assert_int_equal(part_commit(&zc, &cl, 16), 0);
	assert_int_equal(part_read(&p, &c, &(struct frame_view){ 0 }), 1);
	read_expect(&p, &c, 2);
	part_unmap(&p);
}

struct child_claim {
	struct part *p;
	int records;
};

/* In a child: append, claim one more, and die without committing. */
static int claim_and_die(void *arg)
{
	struct child_claim *cc = arg;
	struct part_writer w;
	struct part_rec meta = { 0 };
	struct part_claim cl;

	part_writer_init(&w, cc->p);
	append64(&w, (uint64_t)cc->records);
	return part_claim(&w, &meta, 16, 0, 0, &cl) == 0 ? 0 : 1;
}

static void claim_of_a_dead_producer_is_aborted_and_readers_go_on(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct part_cursor c = { 0 };
	struct child_claim cc;
	pid_t pid, who = 0;
	uint64_t cw;

	env_part_default(e, 4096, &p);
	cc = (struct child_claim){ .p = &p, .records = 2 };
	pid = tu_fork(claim_and_die, &cc);
	assert_int_equal(tu_wait(pid, 10000), 0);
	assert_int_equal(p.hdr->claim.hi, 3);
	part_writer_init(&w, &p);
	append64(&w, 2); /* offsets 3, 4 after the dead claim */
	read_expect(&p, &c, 0);
	read_expect(&p, &c, 1);
	read_nothing(&p, &c);
	assert_int_equal(c.off, 2);
	assert_true(c.stalled);
	assert_int_equal(c.stall_pos, 128);
	assert_int_equal(c.stall_tail, p.hdr->claim.lo);
	cw = *part_commit_word(&p, c.stall_pos);
	assert_int_equal(cw_state(cw), FRAME_CLAIMED);
	assert_int_equal(((struct frame_hdr *)(void *)part_at(&p, c.stall_pos))->pid, pid);
	assert_int_equal(part_claimant(&p, 2, 128), pid);
	assert_int_equal(part_claimant(&p, 3, 128), 0); /* not the claim of offset 3 */
	assert_int_equal(part_claimant(&p, 0, 0), 0);   /* committed: nobody's claim */
	assert_int_equal(part_unblock(&p, c.off, c.stall_pos, 0, c.stall_tail, &who), 1);
	/* the aborted frame's own offset in the word, the next at frame + 8 */
	expect_abort(&p, 128, 64, 2, 3);
	/* who died, so the caller can abort its later claims at once */
	assert_int_equal(who, pid);
	assert_int_equal(part_claimant(&p, 2, 128), 0);
	assert_int_equal(p.hdr->aborted_claims, 1);
	read_expect(&p, &c, 3);
	read_expect(&p, &c, 4);
	assert_int_equal(c.skipped, 1);
	read_nothing(&p, &c);
	/* a second unblock finds nothing to do */
	assert_int_equal(part_unblock(&p, 2, 128, 0, tail_now(&p), NULL), 0);
	assert_int_equal(p.hdr->aborted_claims, 1);
	part_unmap(&p);
}

/*
 * A producer killed after marking its claim (format.md §4: its first
 * word CLAIMED, step 4; every frame marked and the word past the claim
 * zeroed, step 4 done; its record and CRC written, step 5 before the
 * commit) leaves a CLAIMED frame with its pid: the frame alone is
 * aborted, and nobody ever reads its record, whole as it may be.
 */
static void claim_of_a_producer_killed_after_marking_is_aborted(void **state)
{
	static const char *const windows[] = { "mark_first_word", "mark_done", "fill_done" };
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct part_cursor c = { 0 };

	env_part_default(e, 4096, &p);
	part_writer_init(&w, &p);
	append64(&w, 1);
	read_expect(&p, &c, 0);
	for (size_t i = 0; i < sizeof windows / sizeof windows[0]; i++) {
		uint64_t o = p.hdr->claim.hi, pos;
		pid_t pid, who = 0;

		pos = killed_at(&p, windows[i], 1, NULL, &pid);
		assert_int_equal(p.hdr->claim.hi, o + 1);
		append64(&w, 1); /* o + 1 */
		read_nothing(&p, &c);
		assert_int_equal(c.off, o);
		assert_int_equal(c.stall_pos, pos);
		assert_int_equal(*part_commit_word(&p, pos), cw_make(FRAME_CLAIMED, 64, o));
		assert_int_equal(part_claimant(&p, o, pos), pid);
		assert_int_equal(part_unblock(&p, o, pos, 0, c.stall_tail, &who), 1);
		expect_abort(&p, pos, 64, o, o + 1);
		assert_int_equal(who, pid);
		assert_int_equal(part_claimant(&p, o, pos), 0);
		read_expect(&p, &c, o + 1);
		assert_int_equal(c.skipped, i + 1);
		never_read(&p, o);
	}
	assert_int_equal(p.hdr->aborted_claims, 3);
	read_nothing(&p, &c);
	part_writer_fini(&w);
	part_unmap(&p);
}

/* Killed between the commits of a batch (format.md §4 step 5): the
 * frames committed are read, each frame left CLAIMED is aborted alone. */
static void batch_of_a_producer_killed_between_its_commits_is_aborted_frame_by_frame(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct part_cursor c = { 0 };
	uint64_t pos;
	pid_t pid, who = 0;

	env_part_default(e, 4096, &p);
	part_writer_init(&w, &p);
	append64(&w, 1);
	pos = killed_at(&p, "publish_after_frame", 3, NULL, &pid); /* 1 committed; 2, 3 not */
	append64(&w, 1);                                            /* 4 */
	read_expect(&p, &c, 0);
	read_expect(&p, &c, 1);
	read_nothing(&p, &c);
	assert_int_equal(c.stall_pos, pos + 64);
	assert_int_equal(part_unblock(&p, 2, pos + 64, 0, c.stall_tail, &who), 1);
	expect_abort(&p, pos + 64, 64, 2, 3);
	assert_int_equal(who, pid);
	read_nothing(&p, &c);
	assert_int_equal(c.stall_pos, pos + 128);
	assert_int_equal(part_unblock(&p, 3, pos + 128, 0, c.stall_tail, &who), 1);
	expect_abort(&p, pos + 128, 64, 3, 4);
	read_expect(&p, &c, 4);
	assert_int_equal(c.skipped, 2);
	assert_int_equal(p.hdr->aborted_claims, 2);
	part_writer_fini(&w);
	part_unmap(&p);
}

/* Claimed but never marked (killed right after its claim CAS, format.md
 * §4 step 3): the abort reaches the next frame the index knows, and
 * skips exactly the offsets in between. */
static void unmarked_claim_is_aborted_up_to_the_next_indexed_frame(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct part_cursor c = { 0 };
	uint64_t pos;

	env_part_default(e, 4096, &p);
	part_writer_init(&w, &p);
	append64(&w, 2);
	pos = killed_at(&p, "claim_after_cas", 3, NULL, NULL); /* 2, 3, 4 */
	append64(&w, 2);                                        /* 5, 6 */
	/* the writer leaves: its announcements are gone with its slot, so
	 * only the index knows where offset 5 begins (the dead producer's
	 * announcement is its own claim's start, which bounds nothing) */
	part_writer_fini(&w);
	read_expect(&p, &c, 0);
	read_expect(&p, &c, 1);
	read_nothing(&p, &c);
	assert_int_equal(c.stall_pos, pos);
	assert_int_equal(*part_commit_word(&p, pos), 0);
	assert_int_equal(part_unblock(&p, 2, pos, 0, c.stall_tail, NULL), 1);
	expect_abort(&p, pos, 3 * 64, 2, 5);
	assert_int_equal(p.hdr->aborted_claims, 3);
	read_expect(&p, &c, 5);
	read_expect(&p, &c, 6);
	assert_int_equal(c.skipped, 3);
	part_unmap(&p);
}

static void unmarked_claim_at_the_tail_is_aborted_to_the_tail(void **state)
{
	static const uint32_t vlen[4] = { 80, 80, 80, 64 }; /* frames of 128, 128, 128, 112 */
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct part_cursor c = { 0 };
	uint64_t pos;

	env_part_default(e, 4096, &p);
	part_writer_init(&w, &p);
	append64(&w, 1);
	pos = killed_at(&p, "claim_after_cas", 4, vlen, NULL);
	assert_int_equal(tail_now(&p), pos + 496);
	read_expect(&p, &c, 0);
	read_nothing(&p, &c);
	assert_int_equal(part_unblock(&p, 1, pos, 0, c.stall_tail, NULL), 1);
	expect_abort(&p, pos, 496, 1, 5);
	assert_int_equal(p.hdr->aborted_claims, 4);
	read_nothing(&p, &c);
	assert_int_equal(c.off, 5);
	assert_int_equal(c.pos, p.hdr->claim.lo);
	append64(&w, 1);
	read_expect(&p, &c, 5);
	part_unmap(&p);
}

/*
 * A claim that starts with PADDING near the ring's end (128 bytes, then
 * a 256-byte frame at the next lap), its producer killed in each window
 * of its marking (format.md §4 steps 3, 4): before anything, or with the
 * frame marked but not the padding, the range from the padding's word
 * crosses the ring's end; with the padding marked too, readers pass it
 * and the frame alone is aborted.
 */
static void unmarked_claim_across_the_ring_end_is_aborted(void **state)
{
	static const char *const windows[] = { "claim_after_cas", "mark_first_frame",
						"mark_first_word" };
	static const uint32_t v208 = 208; /* a 256-byte frame */
	struct env *e = *state;

	for (size_t i = 0; i < sizeof windows / sizeof windows[0]; i++) {
		struct part p;
		struct part_writer w;
		struct part_cursor c = { 0 };
		uint64_t pos;
		pid_t pid, who = 0;

		env_part_default(e, 4096, &p);
		part_writer_init(&w, &p);
		append64(&w, 62); /* up to 3968 */
		for (uint64_t o = 0; o < 62; o++)
			read_expect(&p, &c, o);
		pos = killed_at(&p, windows[i], 1, &v208, &pid);
		assert_int_equal(pos, 3968);
		assert_int_equal(tail_now(&p), 4096 + 256);
		append64(&w, 2);
		read_nothing(&p, &c);
		if (i < 2) {
			assert_int_equal(part_unblock(&p, 62, pos, 0, c.stall_tail, NULL), 1);
			expect_abort(&p, pos, 128 + 256, 62, 63);
		} else {
			assert_int_equal(*part_commit_word(&p, pos), cw_make(FRAME_PADDING, 128, 62));
			assert_int_equal(c.stall_pos, 4096);
			assert_int_equal(part_unblock(&p, 62, 4096, 0, c.stall_tail, &who), 1);
			assert_int_equal(who, pid);
			expect_abort(&p, 4096, 256, 62, 63);
		}
		read_expect(&p, &c, 63);
		read_expect(&p, &c, 64);
		assert_int_equal(c.pos, p.hdr->claim.lo);
		part_writer_fini(&w);
		part_unmap(&p);
	}
}

/* A CLAIMED word whose length cannot be right (damage on a claim whose
 * producer died after marking its first frame) is no guide: the abort
 * falls back to the next claim boundary. */
static void claimed_word_with_a_bad_length_is_aborted_to_the_next_frame(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct part_cursor c = { 0 };
	uint64_t pos;

	env_part_default(e, 4096, &p);
	part_writer_init(&w, &p);
	append64(&w, 1);
	pos = killed_at(&p, "mark_first_word", 2, NULL, NULL); /* 1 marked, 2 not */
	assert_int_equal(*part_commit_word(&p, pos), cw_make(FRAME_CLAIMED, 64, 1));
	*part_commit_word(&p, pos) = cw_make(FRAME_CLAIMED, 8, 1); /* shorter than a header */
	append64(&w, 1);
	read_expect(&p, &c, 0);
	read_nothing(&p, &c);
	assert_int_equal(part_unblock(&p, 1, pos, 0, c.stall_tail, NULL), 1);
	expect_abort(&p, pos, 128, 1, 3);
	read_expect(&p, &c, 3);
	assert_int_equal(c.skipped, 2);
	part_unmap(&p);
}

/* The word past an aborted range is cleared of older bytes (I3), so the
 * next claim there never shows them to readers. */
static void word_past_an_aborted_range_is_zeroed(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	uint64_t pos;

	env_part_default(e, 4096, &p);
	part_writer_init(&w, &p);
	append64(&w, 1);
	pos = killed_at(&p, "claim_after_cas", 2, NULL, NULL);
	/* an older lap's commit word, for an older offset, past the claim */
	*part_commit_word(&p, pos + 128) = cw_make(FRAME_COMMITTED, 64, 0);
	assert_int_equal(part_unblock(&p, 1, pos, 0, tail_now(&p), NULL), 1);
	assert_int_equal(*part_commit_word(&p, pos + 128), 0);
	part_unmap(&p);
}

static void nothing_to_abort_when_the_claim_moved_on(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;

	env_part_default(e, 4096, &p);
	part_writer_init(&w, &p);
	append64(&w, 3);
	/* committed; the end; past it */
	assert_int_equal(part_unblock(&p, 1, 64, PART_UNBLOCK_FORCE, tail_now(&p), NULL), 0);
	assert_int_equal(part_unblock(&p, 3, 192, PART_UNBLOCK_FORCE, tail_now(&p), NULL), 0);
	assert_int_equal(part_unblock(&p, 9, 192, PART_UNBLOCK_FORCE, tail_now(&p), NULL), 0);
	assert_int_equal(cw_state(*part_commit_word(&p, 64)), FRAME_COMMITTED);
	assert_int_equal(p.hdr->aborted_claims, 0);
	part_unmap(&p);
}

static void unblock_of_an_overwritten_position_is_erange(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;

	env_part_default(e, 4096, &p);
	part_writer_init(&w, &p);
	append64(&w, 200);
	assert_int_equal(part_unblock(&p, 5, 5 * 64, PART_UNBLOCK_FORCE, tail_now(&p), NULL),
			 -ERANGE);
	part_unmap(&p);
}

static void unblock_through_a_readonly_mapping_is_erofs(void **state)
{
	struct env *e = *state;
	struct part p, ro;
	uint64_t pos;

	env_part_default(e, 4096, &p);
	pos = killed_at(&p, "claim_after_cas", 1, NULL, NULL);
	assert_ok(part_open(e->dirfd, "0", true, "0", &ro));
	assert_int_equal(part_unblock(&ro, 0, pos, PART_UNBLOCK_FORCE, tail_now(&ro), NULL),
			 -EROFS);
	assert_int_equal(*part_commit_word(&p, pos), 0);
	part_unmap(&ro);
	part_unmap(&p);
}

/*
 * An aborter that dies between its CAS and the store of the end offset
 * (format.md §3) leaves an ABORTED word whose frame + 8 holds whatever was
 * there.  Readers wait at it; the next part_unblock finds the end again
 * and stores it, and readers pass.
 */
static void abort_without_its_end_offset_is_repaired(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct part_cursor c = { 0 };
	uint64_t stale[] = { 0, 1, 1000, UINT64_MAX };

	env_part_default(e, 4096, &p);
	part_writer_init(&w, &p);
	for (size_t k = 0; k < sizeof stale / sizeof stale[0]; k++) {
		uint64_t o = p.hdr->claim.hi, pos = killed_at(&p, "claim_after_cas", 2, NULL, NULL);

		append64(&w, 1); /* o + 2 */
		*part_commit_word(&p, pos) = cw_make(FRAME_ABORTED, 2 * 64, o);
		*(uint64_t *)(void *)part_at(&p, pos + 8) = stale[k] ? o + stale[k] - 1 : 0;
		read_nothing(&p, &c);
		assert_int_equal(c.off, o);
		assert_int_equal(c.pos, pos);
		assert_true(c.stalled);
		assert_int_equal(part_unblock(&p, o, pos, 0, c.stall_tail, NULL), 1);
		expect_abort(&p, pos, 2 * 64, o, o + 2);
		/* once is enough */
		assert_int_equal(part_unblock(&p, o, pos, 0, c.stall_tail, NULL), 0);
		read_expect(&p, &c, o + 2);
		read_nothing(&p, &c);
	}
	part_unmap(&p);
}

/* A range whose length is not a claim boundary cannot be given an end
 * safely: part_unblock stores none, and readers keep waiting rather than
 * skip offsets the range does not cover.  Unless its claim never marked
 * its frame: then no abort wrote the word (an unblocker stores the index
 * before it releases the guard), it is older bytes (format.md §7), and
 * the claim is aborted as a hole, the word replaced with the whole range. */
static void abort_that_ends_at_no_boundary_is_not_given_an_end(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct part_cursor c = { 0 };
	uint64_t pos;

	env_part_default(e, 4096, &p);
	part_writer_init(&w, &p);
	append64(&w, 1);
	pos = killed_at(&p, "claim_after_cas", 2, NULL, NULL);
	append64(&w, 1);
	*part_commit_word(&p, pos) = cw_make(FRAME_ABORTED, 64, 1); /* half the claim */
	p.index[1 & p.imask] = pos; /* marked by its abort */
	read_expect(&p, &c, 0);
	read_nothing(&p, &c);
	assert_int_equal(part_unblock(&p, 1, pos, 0, c.stall_tail, NULL), -EBUSY);
	assert_int_equal(end_at(&p, pos), 0);
	read_nothing(&p, &c);
	assert_int_equal(c.off, 1);
	/* not marked: older bytes, and the dead claim a hole */
	p.index[1 & p.imask] = 0;
	assert_int_equal(part_unblock(&p, 1, pos, 0, c.stall_tail, NULL), 1);
	expect_abort(&p, pos, 2 * 64, 1, 3);
	read_expect(&p, &c, 3);
	part_unmap(&p);
}

/*
 * No claim ever starts 8 bytes before the ring's end (format.md §4 step
 * 1): an abort of a dead claim there would have no room for its end
 * offset.  A record that would leave the tail there ends at the ring's
 * end instead, its frame 8 bytes longer than its content, and reads back
 * whole; a dead claim after it starts at the next lap and is passed.
 */
static void no_claim_starts_8_bytes_before_the_ring_end(void **state)
{
	struct env *e = *state;
	struct part p;
	struct part_writer w;
	struct part_cursor c = { 0 };
	struct frame_view v;
	uint64_t val = 0x1122334455667788ULL, off, pos;
	struct part_rec r56 = { .value = &val, .value_len = 8 }; /* a 56-byte frame */

	env_part_default(e, 4096, &p);
	part_writer_init(&w, &p);
	append64(&w, 63);
	assert_int_equal(part_append(&w, &r56, 1, 0, 0, &off), 1);
	assert_int_equal(p.hdr->claim.lo, 4096); /* not 4088 */
	/* a whole lap is written: offset 0's word was zeroed for the next */
	assert_int_equal(part_read(&p, &c, &v), -ERANGE);
	assert_int_equal(part_seek(&p, &c, 1), 0);
	for (uint64_t o = 1; o < 63; o++)
		assert_int_equal(part_read(&p, &c, &v), 1);
	assert_int_equal(part_read(&p, &c, &v), 1);
	assert_int_equal(v.offset, 63);
	assert_int_equal(v.len, 64);
	assert_int_equal(v.value_len, 8);
	assert_memory_equal(v.value, &val, 8);
	pos = killed_at(&p, "claim_after_cas", 1, NULL, NULL); /* 64 dies unmarked, next lap */
	assert_int_equal(pos, 4096);
	append64(&w, 1);             /* offset 65 */
	read_nothing(&p, &c);
	assert_int_equal(part_unblock(&p, 64, pos, 0, c.stall_tail, NULL), 1);
	expect_abort(&p, pos, 64, 64, 65);
	read_expect(&p, &c, 65);
	part_writer_fini(&w);
	part_unmap(&p);
}

/* ------------------------------------------------------------------ */
/* Hostile bytes                                                       */

static int unblock_last_word(void *arg)
{
	struct part *p = arg;

	signal(SIGSEGV, SIG_DFL);
	signal(SIGBUS, SIG_DFL);
	(void)part_unblock(p, 0, p->cap - 8, 0, tail_now(p), NULL);
	return 0;
}

/* A CLAIMED word in the ring's last 8 bytes (only damage puts one there:
 * a frame is at least 48 bytes) must be bounds-checked before the pid
 * field 40 bytes further is read. */
static void claimed_word_at_the_ring_end_is_checked_before_its_pid_is_read(void **state)
{
	struct env *e = *state;
	struct part p;
	struct guarded g;
	int st;

	env_part_default(e, 4096, &p);
	part_unmap(&p);
	map_guarded(e, &g);
	g.p.hdr->claim = (pair128){ .lo = 4096, .hi = 1 };
	*part_commit_word(&g.p, 4088) = cw_make(FRAME_CLAIMED, 48, 0);
	st = tu_wait(tu_fork(unblock_last_word, &g.p), 30000);
	if (st != 0)
		fail_msg("part_unblock read past the data ring: the child died with status %d (signal %d)",
			 st, st > 128 ? st - 128 : 0);
	unmap_guarded(&g);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, env_setup, env_teardown)
	const struct CMUnitTest tests[] = {
		T(claim_of_a_living_producer_is_ebusy),
		T(claim_of_a_dead_producer_is_aborted_and_readers_go_on),
		T(claim_of_a_producer_killed_after_marking_is_aborted),
		T(batch_of_a_producer_killed_between_its_commits_is_aborted_frame_by_frame),
		T(unmarked_claim_is_aborted_up_to_the_next_indexed_frame),
		T(unmarked_claim_at_the_tail_is_aborted_to_the_tail),
		T(unmarked_claim_across_the_ring_end_is_aborted),
		T(claimed_word_with_a_bad_length_is_aborted_to_the_next_frame),
		T(word_past_an_aborted_range_is_zeroed),
		T(nothing_to_abort_when_the_claim_moved_on),
		T(abort_without_its_end_offset_is_repaired),
		T(abort_that_ends_at_no_boundary_is_not_given_an_end),
		T(no_claim_starts_8_bytes_before_the_ring_end),
		T(unblock_of_an_overwritten_position_is_erange),
		T(unblock_through_a_readonly_mapping_is_erofs),
		T(claimed_word_at_the_ring_end_is_checked_before_its_pid_is_read),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
