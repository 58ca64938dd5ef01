/*
 * test_epochs.c - a partition's epoch history (shm/epochs.c) and the cut
 * of its end back to an offset (shm/truncate.c), format.md §14, with
 * real partition files and readers: histories start, grow, drop their
 * oldest entry when full, survive a remap and compare as KIP-101 says;
 * a cut takes the end back, readers behind it pass into the new records,
 * readers at or past it are told (-ESTALE) and put at the cut, never
 * handed a new record at an offset where they read an old one; recovery
 * walks through a cut's jump; a cut its writer left half-done is settled.
 */
#include "lib/testutil.h"
#include "lib/partfixture.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "../shm/epochs.h"
#include "../shm/frame.h"
#include "../shm/recover.h"
#include "../shm/replica.h"
#include "../shm/truncate.h"
#include "../util/error.h"

static struct part_params params(const char *topic, uint64_t status, uint64_t cap)
{
	return (struct part_params){ .topic = topic, .topic_id = 9, .partition = 0,
				     .capacity = cap, .policy = PART_POLICY_OVERWRITE,
				     .numa_node = -1, .mode = 0600, .status = status };
}

/* n records whose value is "TAG:OFFSET" (padded to a length that varies) */
static void produce(struct part *p, uint64_t n, char tag)
{
	struct part_writer w;
	uint64_t end, tail;

	part_ends(p, &tail, &end);
	assert_ok(part_writer_init(&w, p));
	for (uint64_t i = end; i < end + n; i++) {
		char val[200];
		struct part_rec r = { .value = val, .timestamp_ns = 1000 + (int64_t)i };
		uint64_t off;
		int k = snprintf(val, sizeof val, "%c:%llu:", tag, (unsigned long long)i);

		memset(val + k, tag, sizeof val - (size_t)k);
		r.value_len = (uint32_t)k + (uint32_t)(i * 13 % 120);
		assert_int_equal(part_append(&w, &r, 1, 0, 0, &off), 1);
		assert_int_equal(off, i);
	}
	part_writer_fini(&w);
}

/* The record v is `tag`'s record of offset `off`. */
static void expect_rec(const struct frame_view *v, uint64_t off, char tag)
{
	char want[40];
	int k = snprintf(want, sizeof want, "%c:%llu:", tag, (unsigned long long)off);

	assert_int_equal(v->offset, off);
	assert_true(v->value_len >= (uint32_t)k);
	assert_memory_equal(v->value, want, (size_t)k);
}

/* Copy src's frames [from, to) into replica r, as a mirror does. */
static void mirror(struct part *src, struct replica *r, uint64_t from, uint64_t to)
{
	uint8_t *buf = aligned_alloc(8, 1 << 20);
	struct part_cursor c = { 0 };
	struct frame_view v;
	size_t len = 0;
	uint32_t count = 0;

	assert_ok(part_seek(src, &c, from));
	while (c.off < to && part_read(src, &c, &v) == 1) {
		memcpy(buf + len, part_at(src, v.pos), v.len);
		len += v.len;
		count++;
	}
	assert_ok(replica_append(r, buf, len, count, from, c.off));
	free(buf);
}

static void hist_of(const struct part *p, struct epoch_hist *h)
{
	assert_ok(part_epochs_read(p, h));
}

/* ------------------------------------------------------------------ */
/* The history                                                         */

static void a_partition_starts_with_its_creation_epoch_a_replica_with_none(void **state)
{
	struct part_params pp = params("plain", 0, 65536), pr = params("rep", PART_STATUS_REPLICA, 65536);
	struct part p, r;
	struct epoch_hist h;

	env_part_create(*state, "plain", &pp, &p);
	env_part_create(*state, "rep", &pr, &r);
	hist_of(&p, &h);
	assert_int_equal(h.n, 1);
	assert_int_equal(h.e[0].epoch, p.epoch);
	assert_int_equal(h.e[0].start, 0);
	assert_int_equal(part_epoch_last(&p), p.epoch);
	hist_of(&r, &h);
	assert_int_equal(h.n, 0);
	assert_int_equal(part_epoch_last(&r), 0);
	/* a header written before histories existed: the same, implied */
	p.hdr->epochs_word = 0;
	r.hdr->epochs_word = 0;
	hist_of(&p, &h);
	assert_int_equal(h.n, 1);
	assert_int_equal(h.e[0].epoch, p.epoch);
	hist_of(&r, &h);
	assert_int_equal(h.n, 0);
	/* and writing it makes it real */
	assert_ok(part_epochs_append(&p, 77, 5));
	hist_of(&p, &h);
	assert_int_equal(h.n, 2);
	assert_int_equal(h.e[0].epoch, p.epoch);
	assert_int_equal(h.e[1].epoch, 77);
	assert_int_equal(h.e[1].start, 5);
	part_unmap(&p);
	part_unmap(&r);
}

static void appends_survive_a_remap_and_a_full_history_drops_its_oldest(void **state)
{
	struct env *e = *state;
	struct part_params pp = params("t", 0, 65536);
	struct part p;
	struct epoch_hist h;
	uint64_t first;

	env_part_create(e, "t", &pp, &p);
	first = p.epoch;
	for (uint64_t i = 1; i <= 40; i++)
		assert_ok(part_epochs_append(&p, 1000 + i, i * 10));
	/* refused: an offset going back, an epoch held, epoch 0 */
	assert_int_equal(part_epochs_append(&p, 5, 399), -EINVAL);
	assert_non_null(strstr(shm_errmsg(), "t/0"));
	assert_int_equal(part_epochs_append(&p, 1040, 500), -EINVAL);
	assert_int_equal(part_epochs_append(&p, 0, 500), -EINVAL);
	part_unmap(&p);
	assert_ok(part_open(e->dirfd, "t", false, "t", &p));
	hist_of(&p, &h);
	assert_int_equal(h.n, PART_EPOCHS_MAX);
	assert_true(epochs_find(&h, first) < 0); /* the oldest went first */
	assert_int_equal(h.e[0].epoch, 1000 + 40 - PART_EPOCHS_MAX + 1);
	assert_int_equal(h.e[PART_EPOCHS_MAX - 1].epoch, 1040);
	assert_int_equal(h.e[PART_EPOCHS_MAX - 1].start, 400);
	assert_true(epochs_valid(&h));
	/* trim: what starts at or after 300 goes */
	assert_int_equal(part_epochs_trim(&p, 300), 11);
	hist_of(&p, &h);
	assert_int_equal(epochs_last(&h), 1029);
	assert_int_equal(part_epochs_trim(&p, 300), 0);
	part_unmap(&p);
}

static void a_damaged_history_word_is_refused(void **state)
{
	struct part_params pp = params("t", 0, 65536);
	struct part p;
	struct epoch_hist h;

	env_part_create(*state, "t", &pp, &p);
	p.hdr->epochs_word = (1ULL << 16) | 200; /* 200 entries */
	assert_int_equal(part_epochs_read(&p, &h), -EBADMSG);
	assert_int_equal(part_epochs_append(&p, 3, 3), -EBADMSG);
	assert_int_equal(part_epoch_last(&p), 0);
	p.hdr->epochs_word = (1ULL << 16) | 2; /* two entries: epoch 0 is no epoch */
	p.hdr->epochs[1] = (struct part_epoch){ 0, 0 };
	assert_int_equal(part_epochs_read(&p, &h), -EBADMSG);
	part_unmap(&p);
}

static struct epoch_hist H(uint32_t n, const uint64_t (*e)[2])
{
	struct epoch_hist h = { .n = n };

	for (uint32_t i = 0; i < n; i++)
		h.e[i] = (struct part_epoch){ .epoch = e[i][0], .start = e[i][1] };
	return h;
}

/* KIP-101's cases with epochs as names: A made 0.., B promoted at 100. */
static void histories_compare_as_kip_101_says(void **state)
{
	struct epoch_hist a = H(1, (const uint64_t[][2]){ { 0xa, 0 } });
	struct epoch_hist ab = H(2, (const uint64_t[][2]){ { 0xa, 0 }, { 0xb, 100 } });
	struct epoch_hist ac = H(2, (const uint64_t[][2]){ { 0xa, 0 }, { 0xc, 90 } });
	struct epoch_hist x = H(1, (const uint64_t[][2]){ { 0xf, 0 } });
	struct epoch_hist none = { 0 };
	uint64_t off, e;

	(void)state;
	/* the old source A (end 120) and the promoted B (end 150): A keeps
	 * 0..99 */
	assert_int_equal(epochs_diverge(&a, 120, &ab, 150, &off, &e), 1);
	assert_int_equal(off, 100);
	assert_int_equal(e, 0xa);
	/* A behind the promotion point: nothing of A to cut */
	assert_int_equal(epochs_diverge(&a, 80, &ab, 150, &off, &e), 1);
	assert_true(off >= 80);
	/* a mirror that followed B already: in step */
	assert_int_equal(epochs_diverge(&ab, 130, &ab, 150, &off, &e), 1);
	assert_int_equal(e, 0xb);
	assert_true(off >= 130);
	/* two promotions of A at different points: they part at the lower */
	assert_int_equal(epochs_diverge(&ac, 95, &ab, 150, &off, &e), 1);
	assert_int_equal(off, 90);
	assert_int_equal(e, 0xa);
	/* no epoch in common: a recreated source, or another log */
	assert_int_equal(epochs_diverge(&x, 10, &ab, 150, &off, &e), 0);
	assert_int_equal(epochs_diverge(&none, 0, &ab, 150, &off, &e), 0);
	/* one epoch with two starts: trusted below the lower only */
	{
		struct epoch_hist bad = H(2, (const uint64_t[][2]){ { 0xa, 0 }, { 0xb, 110 } });

		assert_int_equal(epochs_diverge(&bad, 130, &ab, 150, &off, &e), 1);
		assert_int_equal(off, 100);
	}
	/* the source's check of a FETCH */
	assert_true(epochs_fetch_ok(&ab, 150, 0, 150));
	assert_false(epochs_fetch_ok(&ab, 150, 0, 151));
	assert_true(epochs_fetch_ok(&ab, 150, 0xa, 100));
	assert_false(epochs_fetch_ok(&ab, 150, 0xa, 101));
	assert_true(epochs_fetch_ok(&ab, 150, 0xb, 140));
	assert_false(epochs_fetch_ok(&ab, 150, 0xf, 10));
	/* what a mirror adds before it appends below `upto` */
	{
		struct part_epoch add[PART_EPOCHS_MAX];

		assert_int_equal(epochs_to_adopt(&a, &ab, 100, add), 0);
		assert_int_equal(epochs_to_adopt(&a, &ab, 101, add), 1);
		assert_int_equal(add[0].epoch, 0xb);
		assert_int_equal(epochs_to_adopt(&none, &ab, 50, add), 1);
		assert_int_equal(epochs_to_adopt(&none, &ab, 200, add), 2);
		assert_int_equal(epochs_to_adopt(&x, &ab, 200, add), 0);
		assert_int_equal(epochs_to_adopt(&ab, &ab, 200, add), 0);
	}
	/* validity */
	assert_true(epochs_valid(&ab));
	{
		struct epoch_hist back = H(2, (const uint64_t[][2]){ { 0xa, 10 }, { 0xb, 5 } });
		struct epoch_hist twice = H(2, (const uint64_t[][2]){ { 0xa, 0 }, { 0xa, 5 } });

		assert_false(epochs_valid(&back));
		assert_false(epochs_valid(&twice));
	}
	assert_true(epoch_new() != 0);
	assert_true(epoch_new() != epoch_new());
}


/* On a disk root (here /var/tmp, when it is not tmpfs) each change of the
 * history is written through with msync before the call returns; the
 * file read back with pread holds it.  (Whether the disk keeps it across
 * a power cut is the kernel's; this checks the path runs and is right.) */
static void a_disk_root_writes_the_history_through(void **state)
{
	struct part_params pp = params("disk", 0, 65536);
	char dir[] = "/var/tmp/shmbus-epochs-XXXXXX";
	struct part_header h;
	struct part p;
	int dfd, fd;

	(void)state;
	if (!mkdtemp(dir))
		tu_skip("cannot make a directory under /var/tmp\n");
	dfd = open(dir, O_RDONLY | O_DIRECTORY);
	assert_true(dfd >= 0);
	assert_int_equal(part_create(dfd, "0", &pp, &p), 0);
	if (p.on_tmpfs) {
		part_unmap(&p);
		unlinkat(dfd, "0", 0);
		close(dfd);
		rmdir(dir);
		tu_skip("/var/tmp is tmpfs here: no disk root to write through\n");
	}
	assert_ok(part_epochs_append(&p, 0xb0b, 10));
	fd = openat(dfd, "0", O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &h, sizeof h, 0), (ssize_t)sizeof h);
	close(fd);
	assert_int_equal(h.epochs_word & 0xff, 2);
	assert_int_equal(h.epochs[1].epoch, 0xb0b);
	assert_int_equal(h.epochs[1].start, 10);
	part_unmap(&p);
	unlinkat(dfd, "0", 0);
	close(dfd);
	rmdir(dir);
}

/* ------------------------------------------------------------------ */
/* Cutting the end back                                                */

struct cutlab {
	struct part a, b, rep;
	struct replica r;
};

/* A replica of A's 0..n, and B, which holds other records from 0 on. */
static void cutlab_open(struct env *e, struct cutlab *l, uint64_t cap, uint64_t n)
{
	struct part_params pa = params("a", 0, cap), pb = params("b", 0, cap),
			   pr = params("rep", PART_STATUS_REPLICA, cap);

	env_part_create(e, "a", &pa, &l->a);
	env_part_create(e, "b", &pb, &l->b);
	env_part_create(e, "rep", &pr, &l->rep);
	assert_ok(replica_open(&l->r, &l->rep));
	produce(&l->a, n, 'A');
	produce(&l->b, n + 200, 'B');
	mirror(&l->a, &l->r, 0, n);
}

static void cutlab_close(struct cutlab *l)
{
	replica_close(&l->r);
	part_unmap(&l->a);
	part_unmap(&l->b);
	part_unmap(&l->rep);
}

static void read_tag(struct part *p, struct part_cursor *c, uint64_t off, char tag)
{
	struct frame_view v;

	assert_int_equal(part_read(p, c, &v), 1);
	expect_rec(&v, off, tag);
}

static void readers_past_a_cut_are_told_and_readers_behind_go_on(void **state)
{
	struct cutlab l;
	struct part_cursor behind, past, end, read_cut, fresh;
	struct frame_view v;
	struct part_cut cut;
	uint64_t lo, hi;

	cutlab_open(*state, &l, 1 << 20, 100);
	assert_ok(part_epochs_append(&l.rep, 0xa, 0));
	assert_ok(part_epochs_append(&l.rep, 0xc, 70));
	assert_ok(part_seek(&l.rep, &behind, 30));
	assert_ok(part_seek(&l.rep, &past, 80));
	assert_ok(part_seek_end(&l.rep, &end));
	assert_ok(part_seek(&l.rep, &read_cut, 60));
	read_tag(&l.rep, &read_cut, 60, 'A'); /* it read offset 60 of the old log */

	assert_int_equal(part_truncate(&l.rep, 60, &cut), 1);
	assert_int_equal(cut.from, 60);
	assert_int_equal(cut.to, 100);
	assert_int_equal(cut.records, 40);
	assert_true(cut.bytes > 0);
	assert_int_equal(replica_end(&l.r), 60);
	assert_int_equal(l.rep.hdr->cut_total, 40);
	assert_int_equal(l.rep.hdr->cuts, 2);
	/* the history lost what began after the cut */
	assert_int_equal(part_epoch_last(&l.rep), 0xa);
	/* nothing past the end to seek to, nothing to read yet */
	assert_ok(part_seek(&l.rep, &fresh, 60));
	assert_int_equal(part_seek(&l.rep, &fresh, 70), -ERANGE);
	part_bounds(&l.rep, &lo, &hi);
	assert_int_equal(hi, 60);

	/* the new source's records from 60 on */
	mirror(&l.b, &l.r, 60, 130);
	/* behind: A's 30..59, then B's from 60, through the jump */
	for (uint64_t o = 30; o < 60; o++)
		read_tag(&l.rep, &behind, o, 'A');
	for (uint64_t o = 60; o < 130; o++)
		read_tag(&l.rep, &behind, o, 'B');
	assert_int_equal(part_read(&l.rep, &behind, &v), 0);
	/* past the cut, at the old end, and after reading old 60: told once,
	 * put at the cut, then B's records */
	assert_int_equal(part_read(&l.rep, &past, &v), -ESTALE);
	assert_int_equal(past.cut_from, 80);
	assert_int_equal(past.off, 60);
	read_tag(&l.rep, &past, 60, 'B');
	assert_int_equal(part_read(&l.rep, &end, &v), -ESTALE);
	assert_int_equal(end.cut_from, 100);
	read_tag(&l.rep, &end, 60, 'B');
	assert_int_equal(part_read(&l.rep, &read_cut, &v), -ESTALE);
	assert_int_equal(read_cut.cut_from, 61);
	read_tag(&l.rep, &read_cut, 60, 'B');
	/* the cursor placed at the end before new records came: in step */
	read_tag(&l.rep, &fresh, 60, 'B');
	/* seeks and bounds see the new log */
	assert_ok(part_seek(&l.rep, &fresh, 100));
	read_tag(&l.rep, &fresh, 100, 'B');
	assert_ok(part_seek(&l.rep, &fresh, 59));
	read_tag(&l.rep, &fresh, 59, 'A');
	read_tag(&l.rep, &fresh, 60, 'B');
	part_bounds(&l.rep, &lo, &hi);
	assert_int_equal(lo, 0);
	assert_int_equal(hi, 130);
	/* a cut at or past the end cuts nothing */
	assert_int_equal(part_truncate(&l.rep, 130, &cut), 0);
	assert_int_equal(part_truncate(&l.rep, 500, &cut), 0);
	cutlab_close(&l);
}

/* Recovery walks through the jump and keeps everything; the ring laps
 * over the cut records like any others. */
static void recovery_and_laps_go_through_a_cut(void **state)
{
	struct cutlab l;
	struct part_recovery rec;
	struct part_cut cut;
	struct part_cursor c;
	uint64_t lo, hi;

	cutlab_open(*state, &l, 65536, 200);
	assert_int_equal(part_truncate(&l.rep, 150, &cut), 1);
	mirror(&l.b, &l.r, 150, 220);
	replica_close(&l.r);
	assert_ok(part_recover(&l.rep, &rec));
	assert_int_equal(rec.cut, 0);
	assert_int_equal(rec.new_next, 220);
	assert_string_equal(rec.reason, "");
	assert_ok(part_seek(&l.rep, &c, 140));
	for (uint64_t o = 140; o < 150; o++)
		read_tag(&l.rep, &c, o, 'A');
	for (uint64_t o = 150; o < 220; o++)
		read_tag(&l.rep, &c, o, 'B');
	/* a rebuild from the data alone finds the same log */
	l.rep.hdr->claim = (pair128){ .lo = 12345, .hi = 3 }; /* not a frame boundary */
	memset(l.rep.index, 0xee, l.rep.icap * 8);
	assert_ok(part_recover(&l.rep, &rec));
	assert_true(rec.rebuilt);
	assert_int_equal(rec.new_next, 220);
	assert_ok(replica_open(&l.r, &l.rep));
	/* lap the ring: the jump and the cut records go as any */
	mirror(&l.b, &l.r, 220, 400);
	for (uint64_t end = 400; end < 1200; end += 100) {
		produce(&l.b, 100, 'B');
		mirror(&l.b, &l.r, end, end + 100);
	}
	part_bounds(&l.rep, &lo, &hi);
	assert_int_equal(hi, 1200);
	assert_true(lo > 220);
	assert_ok(part_seek(&l.rep, &c, lo));
	for (uint64_t o = lo; o < 1200; o++)
		read_tag(&l.rep, &c, o, 'B');
	cutlab_close(&l);
}

/* A cut inside an aborted range (a gap) starts at the range's first
 * offset; one below everything held cuts it all and lowers `start`. */
static void a_cut_starts_at_its_range_or_takes_everything(void **state)
{
	struct cutlab l;
	struct part_cut cut;
	struct part_cursor c;
	struct frame_view v;

	cutlab_open(*state, &l, 1 << 20, 10);
	assert_ok(replica_gap(&l.r, 50)); /* 10..49: a gap */
	produce(&l.a, 60, 'A');           /* A: 10..69 */
	mirror(&l.a, &l.r, 50, 70);
	assert_int_equal(part_truncate(&l.rep, 30, &cut), 1);
	assert_int_equal(cut.from, 10);
	assert_int_equal(cut.to, 70);
	assert_int_equal(cut.records, 20);
	assert_int_equal(replica_end(&l.r), 10);
	mirror(&l.b, &l.r, 10, 20);
	assert_ok(part_seek_begin(&l.rep, &c));
	for (uint64_t o = 0; o < 10; o++)
		read_tag(&l.rep, &c, o, 'A');
	for (uint64_t o = 10; o < 20; o++)
		read_tag(&l.rep, &c, o, 'B');
	/* retention moved start to 15: a cut to 3 takes all that is held */
	assert_int_equal(part_retire(&l.rep, 15, &(uint64_t){ 0 }), 15);
	assert_int_equal(part_truncate(&l.rep, 3, &cut), 1);
	assert_int_equal(cut.from, 3);
	assert_int_equal(cut.to, 20);
	assert_int_equal(l.rep.hdr->start, 3);
	assert_int_equal(part_read(&l.rep, &c, &v), -ESTALE);
	assert_int_equal(c.off, 3);
	mirror(&l.b, &l.r, 3, 40);
	for (uint64_t o = 3; o < 40; o++)
		read_tag(&l.rep, &c, o, 'B');
	assert_ok(part_seek_begin(&l.rep, &c));
	read_tag(&l.rep, &c, 3, 'B');
	cutlab_close(&l);
}

/* A writer killed inside a cut: readers wait while `cuts` is odd; at
 * start-up the cut is finished (its end was set back) or undone. */
static void a_cut_left_half_done_is_settled(void **state)
{
	struct cutlab l;
	struct part_cursor behind, past;
	struct frame_view v;
	uint64_t pos, g;
	pair128 snap;

	cutlab_open(*state, &l, 1 << 20, 100);
	assert_ok(part_seek(&l.rep, &behind, 40));
	assert_ok(part_seek(&l.rep, &past, 90));
	/* killed after setting the end back, before the jump */
	pos = l.rep.index[50];
	snap = l.rep.hdr->claim;
	g = l.rep.hdr->cuts;
	l.rep.hdr->cuts = g + 1;
	l.rep.hdr->cut_off = 50;
	l.rep.hdr->cut_pos = pos;
	l.rep.hdr->claim.hi = 50;
	assert_int_equal(part_read(&l.rep, &past, &v), 0); /* waits */
	assert_int_equal(part_truncate_settle(&l.rep), 1);
	assert_int_equal(l.rep.hdr->cuts, g + 2);
	assert_int_equal(cw_state(*part_commit_word(&l.rep, pos)), FRAME_PADDING);
	assert_int_equal(cw_len(*part_commit_word(&l.rep, pos)), snap.lo - pos);
	assert_int_equal(part_truncate_settle(&l.rep), 0);
	/* replica_done was set to the new end: the mirror resumes there */
	assert_int_equal(l.rep.hdr->replica_done.hi, 50);
	mirror(&l.b, &l.r, 50, 60);
	for (uint64_t o = 40; o < 50; o++)
		read_tag(&l.rep, &behind, o, 'A');
	read_tag(&l.rep, &behind, 50, 'B');
	assert_int_equal(part_read(&l.rep, &past, &v), -ESTALE);
	read_tag(&l.rep, &past, 50, 'B');
	/* killed before the end went back: nothing was cut */
	g = l.rep.hdr->cuts;
	l.rep.hdr->cuts = g + 1;
	l.rep.hdr->cut_off = 55;
	assert_int_equal(part_truncate_settle(&l.rep), 1);
	assert_int_equal(replica_end(&l.r), 60);
	for (uint64_t o = 51; o < 60; o++)
		read_tag(&l.rep, &behind, o, 'B');
	cutlab_close(&l);
}

/* The mirrored offset follows the end back; a second writer's append
 * racing a cut makes it cut nothing. */
static void a_cut_moves_the_mirrored_offset_back(void **state)
{
	struct cutlab l;
	struct part_cut cut;

	cutlab_open(*state, &l, 1 << 20, 100);
	l.rep.hdr->mirrored = 90;
	assert_int_equal(part_truncate(&l.rep, 70, &cut), 1);
	assert_int_equal(l.rep.hdr->mirrored, 70);
	l.rep.hdr->cuts |= 1; /* a cut under way */
	assert_int_equal(part_truncate(&l.rep, 60, &cut), -EBUSY);
	l.rep.hdr->cuts++;
	cutlab_close(&l);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, env_setup, env_teardown)
	const struct CMUnitTest tests[] = {
		T(a_partition_starts_with_its_creation_epoch_a_replica_with_none),
		T(appends_survive_a_remap_and_a_full_history_drops_its_oldest),
		T(a_damaged_history_word_is_refused),
		T(histories_compare_as_kip_101_says),
		T(a_disk_root_writes_the_history_through),
		T(readers_past_a_cut_are_told_and_readers_behind_go_on),
		T(recovery_and_laps_go_through_a_cut),
		T(a_cut_starts_at_its_range_or_takes_everything),
		T(a_cut_left_half_done_is_settled),
		T(a_cut_moves_the_mirrored_offset_back),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
