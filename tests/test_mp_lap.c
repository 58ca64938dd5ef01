/*
 * test_mp_lap.c - a writer laps a slow reader many times on a 64 KiB
 * overwrite ring.  Every value is self-checksummed by the test (u64
 * sequence, random bytes, CRC32), and with one writer the sequence is the
 * offset, so a record from an older lap cannot pass for a newer one.
 *
 * The reader must deliver no corrupt record (a zero-copy view may only
 * turn bad after poll if shmbus_message_valid() then says so), report
 * every lap through on_lapped, and account for every offset: each offset
 * is either delivered, in increasing order, or inside a reported loss;
 * the stats agree with what the callback and poll showed.
 *
 * The reader is made slow deterministically: every few polls it waits
 * until the writer's tail has moved two rings past it, so it is lapped
 * at least once per wait, whatever the speed of the machine.  With
 * check_crc on, the same holds: a record overwritten while read is a lap,
 * not damage.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "shmbus.h"
#include "lib/testutil.h"
#include "test_mp.h"

#define CAP         (64u << 10)
#define FIXED_VALUE 208u   /* 48-byte header + 208 = 256: frames tile the ring */
#define MAX_EVENTS  4096
#define FORCED_LAPS 1000
#define READ_MS     3000

struct shared {
	volatile int stop;       /* reader -> writer */
	volatile int done;       /* writer -> reader: `written` is final */
	uint64_t written;
};

struct lap_arg {
	const char *root;
	struct shared *sh;
	bool var_sizes;
	bool copy;
	bool check_crc;
	enum shmbus_reset reset;
};

/* ------------------------------------------------------------------ */
/* Writer                                                              */

static int writer_main(void *argp)
{
	const struct lap_arg *a = argp;
	static uint8_t val[4096];
	shmbus_producer *p = NULL;
	uint64_t seq = 0, rng = 42;
	shmbus *bus;
	int rc;

	tu_pin(0);
	bus = mp_open(a->root);
	CHILD_CHECK(shmbus_producer_new(bus, "lap", NULL, &p) == 0, "producer_new");
	while (!__atomic_load_n(&a->sh->stop, __ATOMIC_ACQUIRE)) {
		size_t len = a->var_sizes ? MP_SEAL_MIN + mp_rand(&rng) % 2000 : FIXED_VALUE;
		struct shmbus_record r = { .value = val, .value_len = len };
		uint64_t off;

		mp_seal(val, len, seq, 0, &rng);
		rc = shmbus_producer_send(p, 0, &r, &off);
		CHILD_CHECK(rc == 0 && off == seq, "send %llu = %d (offset %llu)",
			    (unsigned long long)seq, rc, (unsigned long long)off);
		seq++;
	}
	a->sh->written = seq;
	mp_set(&a->sh->done, 1);
	shmbus_producer_free(p);
	shmbus_close(bus);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Reader                                                              */

struct lap_event {
	uint64_t lost_from, resumed_at;
};

struct reader {
	struct lap_event ev[MAX_EVENTS];
	size_t nev, applied;
	uint64_t next;            /* the next offset to account for */
	uint64_t delivered, lost, corrupt, torn_after, events;
	bool overflow;
};

static void on_lapped(void *ctx, const char *topic, int32_t partition, uint64_t lost_from,
		      uint64_t resumed_at)
{
	struct reader *r = ctx;

	(void)topic;
	(void)partition;
	r->events++;
	if (r->nev == MAX_EVENTS) {
		r->overflow = true;
		return;
	}
	r->ev[r->nev++] = (struct lap_event){ lost_from, resumed_at };
}

/* Account for the loss reported next; it must start where we are. */
static void apply_event(struct reader *r)
{
	const struct lap_event *e = &r->ev[r->applied++];

	CHILD_CHECK(e->lost_from == r->next, "a lap reported lost from %llu, but the reader was "
		    "at %llu", (unsigned long long)e->lost_from, (unsigned long long)r->next);
	CHILD_CHECK(e->resumed_at > e->lost_from, "a lap resumed at %llu, not past %llu",
		    (unsigned long long)e->resumed_at, (unsigned long long)e->lost_from);
	r->lost += e->resumed_at - e->lost_from;
	r->next = e->resumed_at;
}

/* Merge one poll's messages with the laps reported during it.  A poll's
 * laps come before its messages, except one after them (a record found
 * overwritten once read is dropped with those after it); so apply laps
 * while they start where we stand and the next message does not. */
static void account(struct reader *r, const struct shmbus_message *msgs, int n, bool copy)
{
	for (int i = 0; i < n; i++) {
		const struct shmbus_message *m = &msgs[i];
		uint64_t seq;
		uint32_t prod;
		bool ok;

		while (m->offset != r->next && r->applied < r->nev)
			apply_event(r);
		CHILD_CHECK(m->offset == r->next, "offset %llu delivered where %llu was due (no lap "
			    "reported in between)", (unsigned long long)m->offset,
			    (unsigned long long)r->next);
		ok = mp_unseal(m->value, m->value_len, &seq, &prod) && seq == m->offset && prod == 0;
		if (!ok) {
			/* a view overwritten after poll returned it is allowed, if
			 * shmbus_message_valid() tells; anything else is corrupt */
			if (copy || shmbus_message_valid(m) == 0)
				r->corrupt++;
			else
				r->torn_after++;
			CHILD_CHECK(r->corrupt == 0, "record %llu (%zu bytes) delivered corrupt (%s)",
				    (unsigned long long)m->offset, m->value_len,
				    copy ? "a copy" : "its view still valid");
		}
		r->next++;
		r->delivered++;
	}
	while (r->applied < r->nev)
		apply_event(r);
	r->nev = r->applied = 0;
}

static uint64_t tail_of(shmbus *bus)
{
	SHMBUS_OPTS(shmbus_partition_info, info);

	CHILD_CHECK(shmbus_partition_info(bus, "lap", 0, &info) == 0, "partition_info");
	return info.tail;
}

static int reader_main(void *argp)
{
	const struct lap_arg *a = argp;
	static struct reader r;
	SHMBUS_OPTS(shmbus_consumer_opts, co, .copy = a->copy, .reset = a->reset,
		    .check_crc = a->check_crc, .on_lapped = on_lapped, .ctx = &r);
	static struct shmbus_message msgs[8];
	SHMBUS_OPTS(shmbus_consumer_stats, st);
	shmbus_consumer *c = NULL;
	int64_t t0 = tu_ms(), end = t0 + READ_MS;
	uint64_t polls = 0, forced = 0, pos, first;
	shmbus *bus;
	int n;

	tu_pin(1);
	bus = mp_open(a->root);
	CHILD_CHECK(shmbus_consumer_new(bus, &co, &c) == 0, "consumer_new");
	CHILD_CHECK(shmbus_consumer_assign(c, "lap", 0, SHMBUS_OFFSET_BEGINNING) == 0, "assign");
	CHILD_CHECK(shmbus_consumer_position(c, "lap", 0, &r.next) == 0, "position");
	first = r.next;
	while (forced < FORCED_LAPS && tu_ms() < end) {
		n = shmbus_consumer_poll(c, msgs, 8, 100);
		CHILD_CHECK(n >= 0, "poll = %d", n);
		account(&r, msgs, n, a->copy);
		if (++polls % 4 == 0) {
			/* be lapped: wait for the writer to go two rings further */
			uint64_t from = tail_of(bus);

			while (tail_of(bus) < from + 2 * CAP)
				CHILD_CHECK(tu_ms() < t0 + 20000, "the writer stopped writing");
			forced++;
		} else {
			mp_sleep_us(50);
		}
	}
	/* stop the writer, then read to its end */
	mp_set(&a->sh->stop, 1);
	CHILD_CHECK(mp_await(&a->sh->done, 10000), "the writer did not stop");
	for (;;) {
		CHILD_CHECK(shmbus_consumer_position(c, "lap", 0, &pos) == 0, "position");
		if (pos >= a->sh->written)
			break;
		CHILD_CHECK(tu_ms() < t0 + 20000, "stuck at %llu of %llu", (unsigned long long)pos,
			    (unsigned long long)a->sh->written);
		n = shmbus_consumer_poll(c, msgs, 8, 100);
		CHILD_CHECK(n >= 0, "poll = %d", n);
		account(&r, msgs, n, a->copy);
	}
	CHILD_CHECK(shmbus_consumer_poll(c, msgs, 8, 20) == 0, "records past the end");
	shmbus_consumer_stats(c, &st);
	printf("# %s %s: %llu written, %llu delivered, %llu lost in %llu laps (%llu forced), "
	       "%llu views overwritten after use\n", a->var_sizes ? "var" : "fixed",
	       a->copy ? "copies" : "views", (unsigned long long)a->sh->written,
	       (unsigned long long)r.delivered, (unsigned long long)r.lost,
	       (unsigned long long)r.events, (unsigned long long)forced,
	       (unsigned long long)r.torn_after);
	fflush(stdout);
	CHILD_CHECK(!r.overflow, "more than %d laps in one poll", MAX_EVENTS);
	CHILD_CHECK(r.corrupt == 0, "%llu corrupt records", (unsigned long long)r.corrupt);
	CHILD_CHECK(r.next == a->sh->written && first + r.delivered + r.lost == a->sh->written,
		    "accounted %llu (from %llu: delivered %llu + lost %llu) of %llu offsets",
		    (unsigned long long)r.next, (unsigned long long)first,
		    (unsigned long long)r.delivered, (unsigned long long)r.lost,
		    (unsigned long long)a->sh->written);
	CHILD_CHECK(st.delivered == r.delivered && st.laps == r.events && st.lost == r.lost,
		    "stats (delivered %llu, laps %llu, lost %llu) disagree with poll and "
		    "on_lapped (%llu, %llu, %llu)", (unsigned long long)st.delivered,
		    (unsigned long long)st.laps, (unsigned long long)st.lost,
		    (unsigned long long)r.delivered, (unsigned long long)r.events,
		    (unsigned long long)r.lost);
	CHILD_CHECK(st.aborted_skipped == 0 && st.crc_errors == 0, "aborted %llu crc %llu",
		    (unsigned long long)st.aborted_skipped, (unsigned long long)st.crc_errors);
	CHILD_CHECK(r.events >= forced, "lapped %llu times but only %llu laps reported",
		    (unsigned long long)forced, (unsigned long long)r.events);
	CHILD_CHECK(r.delivered > 0, "nothing delivered");
	shmbus_consumer_free(c);
	shmbus_close(bus);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Tests                                                               */

static void run_crc(struct mp_env *env, bool var_sizes, bool copy, bool check_crc,
		    enum shmbus_reset reset)
{
	SHMBUS_OPTS(shmbus_topic_opts, o, .capacity = CAP);
	struct lap_arg a = { .root = env->root, .sh = mp_shared(sizeof(struct shared)),
			     .var_sizes = var_sizes, .copy = copy, .check_crc = check_crc,
			     .reset = reset };
	pid_t pids[2];

	assert_ok(shmbus_topic_create(env->bus, "lap", &o));
	pids[0] = mp_spawn(reader_main, &a);
	pids[1] = mp_spawn(writer_main, &a);
	mp_wait_ok(pids, 2, 25000, "reader and writer");
	munmap(a.sh, sizeof(struct shared));
}

static void run(struct mp_env *env, bool var_sizes, bool copy, enum shmbus_reset reset)
{
	run_crc(env, var_sizes, copy, false, reset);
}

/* Frames of one size that tiles the ring: no padding. */
static void test_lap_fixed_frames_views(void **state)
{
	run(*state, false, false, SHMBUS_RESET_EARLIEST);
}

static void test_lap_fixed_frames_copies(void **state)
{
	run(*state, false, true, SHMBUS_RESET_LATEST);
}

/* Sizes from 16 to 2015 bytes: padding at the ring's end, and frames
 * that start in the middle of older frames' bytes. */
static void test_lap_var_sizes_views(void **state)
{
	run(*state, true, false, SHMBUS_RESET_EARLIEST);
}

static void test_lap_var_sizes_copies(void **state)
{
	run(*state, true, true, SHMBUS_RESET_LATEST);
}

/* With check_crc, a record overwritten while it was read fails its CRC
 * too: it must be reported as lapped (the lap is checked first), never
 * as damaged, and no offset may be skipped without a lap report.  Before
 * the fix such a poll returned -EBADMSG ("fails its CRC32C check") and
 * the consumer went on past the record. */
static void test_lap_var_sizes_views_crc(void **state)
{
	run_crc(*state, true, false, true, SHMBUS_RESET_EARLIEST);
}

static void test_lap_var_sizes_copies_crc(void **state)
{
	run_crc(*state, true, true, true, SHMBUS_RESET_EARLIEST);
}

/* ------------------------------------------------------------------ */
/* A claim held while other producers lap it                           */

struct held {
	volatile int claimed, blocked, committed, lapped;
	int commit_rc, busy_rc;
	uint64_t claim_off, blocked_at, end;
	char busy_msg[256];
};

struct held_arg {
	const char *root;
	struct held *h;
};

/* Claims a frame and writes its value only once another producer is
 * about to lap it (a producer descheduled, or stopped in a debugger,
 * between its claim and its commit). */
static int holder_main(void *argp)
{
	const struct held_arg *a = argp;
	struct shmbus_record meta = { 0 };
	shmbus_producer *p = NULL;
	struct shmbus_claim c;
	shmbus *bus = mp_open(a->root);

	CHILD_CHECK(shmbus_producer_new(bus, "held", NULL, &p) == 0, "producer_new");
	CHILD_CHECK(shmbus_producer_claim(p, 0, &meta, FIXED_VALUE, &c) == 0, "claim");
	a->h->claim_off = c.offset;
	mp_set(&a->h->claimed, 1);
	CHILD_CHECK(mp_await(&a->h->blocked, 10000), "the other producer was never held back");
	memset(c.value, 0xee, c.value_cap);   /* the record, written late */
	a->h->commit_rc = shmbus_producer_commit(p, &c, c.value_cap);
	mp_set(&a->h->committed, 1);
	shmbus_producer_free(p);
	shmbus_close(bus);
	return 0;
}

/* Appends sealed records (value seq = offset) for three laps; when the
 * held claim is a lap behind, the ring refuses to overwrite it (-EBUSY)
 * until it is committed. */
static int lapper_main(void *argp)
{
	const struct held_arg *a = argp;
	static uint8_t val[FIXED_VALUE];
	shmbus_producer *p = NULL;
	uint64_t rng = 7, off = 0;
	shmbus *bus = mp_open(a->root);

	CHILD_CHECK(shmbus_producer_new(bus, "held", NULL, &p) == 0, "producer_new");
	CHILD_CHECK(mp_await(&a->h->claimed, 10000), "no claim");
	for (uint64_t i = 0; i < 3 * CAP / 256; i++) {
		struct shmbus_record r = { .value = val, .value_len = FIXED_VALUE };
		int rc;

		mp_seal(val, FIXED_VALUE, a->h->claim_off + 1 + i, 1, &rng);
		while ((rc = shmbus_producer_send(p, 0, &r, &off)) == -EBUSY && !a->h->blocked) {
			a->h->busy_rc = rc;
			a->h->blocked_at = a->h->claim_off + 1 + i;
			snprintf(a->h->busy_msg, sizeof a->h->busy_msg, "%s", shmbus_errmsg());
			mp_set(&a->h->blocked, 1);
			CHILD_CHECK(mp_await(&a->h->committed, 10000), "the claim was not committed");
		}
		CHILD_CHECK(rc == 0, "send = %d", rc);
		CHILD_CHECK(off == a->h->claim_off + 1 + i, "offset %llu", (unsigned long long)off);
	}
	a->h->end = off + 1;
	mp_set(&a->h->lapped, 1);
	shmbus_producer_free(p);
	shmbus_close(bus);
	return 0;
}

/* Reads what the ring holds once both producers are done. */
static int late_reader_main(void *argp)
{
	const struct held_arg *a = argp;
	SHMBUS_OPTS(shmbus_consumer_opts, co, .copy = true, .reset = SHMBUS_RESET_EARLIEST);
	static struct shmbus_message msgs[64];
	shmbus_consumer *c = NULL;
	uint64_t pos = 0, delivered = 0, bad = 0;
	int64_t end = tu_ms() + 10000;
	shmbus *bus = mp_open(a->root);

	CHILD_CHECK(mp_await(&a->h->lapped, 15000), "the lapper did not finish");
	CHILD_CHECK(shmbus_consumer_new(bus, &co, &c) == 0, "consumer_new");
	CHILD_CHECK(shmbus_consumer_assign(c, "held", 0, SHMBUS_OFFSET_BEGINNING) == 0, "assign");
	while (pos < a->h->end) {
		int n = shmbus_consumer_poll(c, msgs, 64, 50);

		CHILD_CHECK(n >= 0 && tu_ms() < end, "poll = %d at %llu", n, (unsigned long long)pos);
		for (int i = 0; i < n; i++) {
			uint64_t seq;
			uint32_t prod;

			if (!mp_unseal(msgs[i].value, msgs[i].value_len, &seq, &prod) ||
			    seq != msgs[i].offset) {
				if (bad++ == 0)
					fprintf(stderr, "record %llu was delivered with other bytes "
						"(%02x %02x %02x ...)\n",
						(unsigned long long)msgs[i].offset,
						((const uint8_t *)msgs[i].value)[0],
						((const uint8_t *)msgs[i].value)[1],
						((const uint8_t *)msgs[i].value)[2]);
			}
			delivered++;
		}
		CHILD_CHECK(shmbus_consumer_position(c, "held", 0, &pos) == 0, "position");
	}
	CHILD_CHECK(delivered > 0, "nothing delivered");
	CHILD_CHECK(bad == 0, "%llu of %llu records corrupt", (unsigned long long)bad,
		    (unsigned long long)delivered);
	shmbus_consumer_free(c);
	shmbus_close(bus);
	return 0;
}

/*
 * A producer holding a claim while another laps the ring (overwrite
 * policy): the ring is never overwritten over the unwritten claim, so the
 * late write destroys nothing.  The lapping producer is refused with
 * -EBUSY, naming the holder, until the claim is committed; then the claim
 * commits and every record of the last lap reads back intact.
 */
static void test_lap_over_held_claim(void **state)
{
	struct mp_env *env = *state;
	SHMBUS_OPTS(shmbus_topic_opts, o, .capacity = CAP);
	struct held_arg a = { .root = env->root, .h = mp_shared(sizeof(struct held)) };
	pid_t pids[3];
	char holder[32];

	assert_ok(shmbus_topic_create(env->bus, "held", &o));
	pids[0] = mp_spawn(holder_main, &a);
	pids[1] = mp_spawn(lapper_main, &a);
	pids[2] = mp_spawn(late_reader_main, &a);
	mp_wait_ok(pids, 3, 20000, "holder, lapper and reader");
	assert_int_equal(a.h->busy_rc, -EBUSY);
	snprintf(holder, sizeof holder, "pid %d", (int)pids[0]);
	if (!strstr(a.h->busy_msg, holder) || !strstr(a.h->busy_msg, "held/0"))
		fail_msg("the refusal does not name the partition and the holder: %s", a.h->busy_msg);
	/* held back a lap after the claim, not before */
	assert_true(a.h->blocked_at * 256 >= a.h->claim_off * 256 + CAP - 2 * 256);
	assert_int_equal(a.h->commit_rc, 0);
	munmap(a.h, sizeof(struct held));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_lap_fixed_frames_views, mp_setup, mp_teardown),
		cmocka_unit_test_setup_teardown(test_lap_fixed_frames_copies, mp_setup, mp_teardown),
		cmocka_unit_test_setup_teardown(test_lap_var_sizes_views, mp_setup, mp_teardown),
		cmocka_unit_test_setup_teardown(test_lap_var_sizes_copies, mp_setup, mp_teardown),
		cmocka_unit_test_setup_teardown(test_lap_var_sizes_views_crc, mp_setup, mp_teardown),
		cmocka_unit_test_setup_teardown(test_lap_var_sizes_copies_crc, mp_setup, mp_teardown),
		cmocka_unit_test_setup_teardown(test_lap_over_held_claim, mp_setup, mp_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
