/*
 * test_mp_wrap.c - wrap-around: a producer and a consumer in different
 * processes go round a 64 KiB ring hundreds of times with records of
 * every size from 0 bytes to the largest a frame holds (half the ring),
 * so padding appears at the ring's end at every possible length.  Each
 * record's key, headers, value and timestamp are derived from its offset,
 * and the consumer checks every byte.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "shmbus.h"
#include "lib/testutil.h"
#include "test_mp.h"

#define CAP        (64u << 10)
#define FRAME_HDR  48u                 /* docs/format.md §3 */
#define MAX_FRAME  (CAP / 2)           /* docs/format.md §1 */
#define NRECS      20000u
#define BATCH      8u

/* ------------------------------------------------------------------ */
/* Records derived from their offset                                  */

struct wrec {
	uint8_t key[32];
	size_t key_len;
	bool key_null;
	struct shmbus_header hdrs[2];
	char hnames[2][4];
	uint8_t hvals[2][8];
	size_t nhdrs;
	size_t hdr_bytes;     /* encoded: 6 + name + value each */
	size_t value_len;
	bool value_null;
	int64_t ts;
};

/* Value sizes to cycle through: the small ones, every size around the
 * 8-byte alignment, a spread of larger ones, and the largest. */
static size_t sizes[512];
static size_t nsizes;

static void make_sizes(void)
{
	nsizes = 0;
	for (size_t s = 0; s <= 72; s++)
		sizes[nsizes++] = s;
	for (size_t s = 100; s < MAX_FRAME; s = s * 5 / 4 + 7)
		sizes[nsizes++] = s;
	for (size_t s = 1; s < MAX_FRAME; s <<= 1) {
		sizes[nsizes++] = s - 1;
		sizes[nsizes++] = s + 1;
	}
	for (int i = 0; i < 8; i++)
		sizes[nsizes++] = SIZE_MAX; /* the largest value that fits */
}

static uint8_t value_byte(uint64_t off, size_t i)
{
	return (uint8_t)(off * 131 + i * 7 + (i >> 8) * 13);
}

static void plan(uint64_t off, struct wrec *r)
{
	size_t want = sizes[off % nsizes], room;

	memset(r, 0, sizeof *r);
	r->key_null = off % 11 == 0;
	r->key_len = r->key_null ? 0 : (size_t)((off * 7) % 24);
	for (size_t i = 0; i < r->key_len; i++)
		r->key[i] = (uint8_t)(off + i);
	r->nhdrs = off % 3;
	for (size_t i = 0; i < r->nhdrs; i++) {
		size_t vl = (off + i) % 6;

		r->hnames[i][0] = 'h';
		r->hnames[i][1] = (char)('0' + i);
		for (size_t k = 0; k < vl; k++)
			r->hvals[i][k] = (uint8_t)(off ^ k);
		r->hdrs[i] = (struct shmbus_header){ .name = r->hnames[i], .name_len = 2,
						     .value = (off + i) % 7 == 3 ? NULL : r->hvals[i],
						     .value_len = (off + i) % 7 == 3 ? 0 : vl };
		r->hdr_bytes += 6 + 2 + r->hdrs[i].value_len;
	}
	/* the largest value: a frame holds the 48-byte header, key, headers
	 * and value, padded to 8, up to half the ring */
	room = MAX_FRAME - FRAME_HDR - r->key_len - r->hdr_bytes;
	r->value_len = want > room ? room : want;
	r->value_null = off % 97 == 5;
	if (r->value_null)
		r->value_len = 0;
	r->ts = 1000000000LL + (int64_t)off * 1000;
}

static void fill_record(uint64_t off, struct wrec *r, uint8_t *vbuf, struct shmbus_record *rec)
{
	plan(off, r);
	for (size_t i = 0; i < r->value_len; i++)
		vbuf[i] = value_byte(off, i);
	*rec = (struct shmbus_record){
		.key = r->key_null ? NULL : r->key, .key_len = r->key_len,
		.value = r->value_null ? NULL : vbuf, .value_len = r->value_len,
		.headers = r->hdrs, .header_count = r->nhdrs, .timestamp_ns = r->ts,
	};
}

/* Check a delivered message against its offset; NULL or what differs. */
static const char *verify(const struct shmbus_message *m)
{
	struct wrec r;
	const uint8_t *v = m->value;

	plan(m->offset, &r);
	if (m->timestamp_ns != r.ts)
		return "timestamp";
	if (r.key_null != !m->key || r.key_null != !!(m->flags & SHMBUS_MSG_KEY_NULL))
		return "key nullness";
	if (m->key_len != r.key_len || (r.key_len && memcmp(m->key, r.key, r.key_len)))
		return "key bytes";
	if (r.value_null != !m->value || r.value_null != !!(m->flags & SHMBUS_MSG_VALUE_NULL))
		return "value nullness";
	if (m->value_len != r.value_len)
		return "value length";
	for (size_t i = 0; i < r.value_len; i++)
		if (v[i] != value_byte(m->offset, i))
			return "value bytes";
	if (m->header_count != r.nhdrs || m->headers_raw_len != r.hdr_bytes)
		return "header count or size";
	for (size_t i = 0; i < r.nhdrs; i++) {
		struct shmbus_header h;

		if (shmbus_message_header(m, i, &h) < 0 || h.name_len != 2 ||
		    memcmp(h.name, r.hnames[i], 2))
			return "header name";
		if (!h.value != !r.hdrs[i].value || h.value_len != r.hdrs[i].value_len ||
		    (h.value_len && memcmp(h.value, r.hdrs[i].value, h.value_len)))
			return "header value";
	}
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Producer                                                            */

struct wrap_arg {
	const char *root;
	const char *topic;
	bool block;
	bool copy;
	bool check_crc;
	bool lossless;   /* every offset must arrive (backpressure) */
	int ready_fd;
};

static int producer_main(void *argp)
{
	const struct wrap_arg *a = argp;
	SHMBUS_OPTS(shmbus_producer_opts, po, .block = a->block);
	static uint8_t vbufs[BATCH][MAX_FRAME];
	static struct wrec rs[BATCH];
	struct shmbus_record recs[BATCH];
	shmbus_producer *p = NULL;
	shmbus *bus;
	uint64_t off = 0;
	int rc;

	tu_pin(0);
	bus = mp_open(a->root);
	rc = shmbus_producer_new(bus, a->topic, &po, &p);
	CHILD_CHECK(rc == 0, "producer_new = %d", rc);
	/* the boundary: half the ring is the largest frame */
	{
		struct shmbus_record big = { .value = vbufs[0], .value_len = MAX_FRAME - FRAME_HDR + 1 };
		struct shmbus_claim c;

		rc = shmbus_producer_send(p, 0, &big, NULL);
		CHILD_CHECK(rc == -EMSGSIZE, "a value of %zu bytes: %d, not -EMSGSIZE", big.value_len,
			    rc);
		rc = shmbus_producer_claim(p, 0, &big, big.value_len, &c);
		CHILD_CHECK(rc == -EMSGSIZE, "a claim of %zu bytes: %d, not -EMSGSIZE", big.value_len,
			    rc);
	}
	while (off < NRECS) {
		uint64_t got;

		if (off % 5 == 4 && off + BATCH <= NRECS) {
			/* a batch: consecutive frames claimed together, padding inside */
			for (size_t i = 0; i < BATCH; i++)
				fill_record(off + i, &rs[i], vbufs[i], &recs[i]);
			rc = shmbus_producer_send_batch(p, 0, recs, BATCH);
			CHILD_CHECK(rc == (int)BATCH, "batch at %llu = %d", (unsigned long long)off, rc);
			off += BATCH;
			continue;
		}
		fill_record(off, &rs[0], vbufs[0], &recs[0]);
		if (off % 4 == 1 && !rs[0].value_null) {
			/* zero-copy: claim more than needed, commit the exact size */
			struct shmbus_record meta = recs[0];
			size_t room = MAX_FRAME - FRAME_HDR - rs[0].key_len - rs[0].hdr_bytes;
			size_t cap = rs[0].value_len + (off % 3) * 5;
			struct shmbus_claim c;

			if (cap > room)
				cap = room;
			rc = shmbus_producer_claim(p, 0, &meta, cap, &c);
			CHILD_CHECK(rc == 0 && c.offset == off, "claim at %llu = %d (offset %llu)",
				    (unsigned long long)off, rc, (unsigned long long)c.offset);
			memcpy(c.value, vbufs[0], rs[0].value_len);
			rc = shmbus_producer_commit(p, &c, rs[0].value_len);
			CHILD_CHECK(rc == 0, "commit at %llu = %d", (unsigned long long)off, rc);
		} else {
			rc = shmbus_producer_send(p, 0, &recs[0], &got);
			CHILD_CHECK(rc == 0 && got == off, "send at %llu = %d (offset %llu)",
				    (unsigned long long)off, rc, (unsigned long long)got);
		}
		off++;
	}
	shmbus_producer_free(p);
	shmbus_close(bus);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Consumer                                                            */

static int consumer_main(void *argp)
{
	const struct wrap_arg *a = argp;
	SHMBUS_OPTS(shmbus_consumer_opts, co, .copy = a->copy, .check_crc = a->check_crc,
		    .reset = SHMBUS_RESET_LATEST);
	static struct shmbus_message msgs[16];
	SHMBUS_OPTS(shmbus_consumer_stats, st);
	shmbus_consumer *c = NULL;
	int64_t end = tu_ms() + 20000;
	uint64_t pos = 0, delivered = 0;
	shmbus *bus;
	int rc;

	tu_pin(1);
	bus = mp_open(a->root);
	CHILD_CHECK(shmbus_consumer_new(bus, &co, &c) == 0, "consumer_new");
	CHILD_CHECK(shmbus_consumer_assign(c, a->topic, 0, 0) == 0, "assign");
	CHILD_CHECK(write(a->ready_fd, "r", 1) == 1, "ready pipe");
	while (pos < NRECS) {
		CHILD_CHECK(tu_ms() < end, "stuck at offset %llu", (unsigned long long)pos);
		rc = shmbus_consumer_poll(c, msgs, 16, 100);
		CHILD_CHECK(rc >= 0, "poll at %llu = %d", (unsigned long long)pos, rc);
		for (int i = 0; i < rc; i++) {
			const struct shmbus_message *m = &msgs[i];
			const char *bad;

			if (a->lossless)
				CHILD_CHECK(m->offset == pos, "offset %llu delivered, expected %llu",
					    (unsigned long long)m->offset, (unsigned long long)pos);
			else
				CHILD_CHECK(m->offset >= pos, "offset %llu after %llu",
					    (unsigned long long)m->offset, (unsigned long long)pos);
			bad = verify(m);
			/* a zero-copy view may be overwritten after poll returned it
			 * (overwrite policy): only a record still intact counts */
			CHILD_CHECK(!bad || shmbus_message_valid(m) < 0,
				    "record %llu (value %zu bytes): wrong %s",
				    (unsigned long long)m->offset, m->value_len, bad);
			pos = m->offset + 1;
			delivered++;
		}
		if (!a->lossless)
			CHILD_CHECK(shmbus_consumer_position(c, a->topic, 0, &pos) == 0, "position");
	}
	shmbus_consumer_stats(c, &st);
	printf("# %s: consumer got %llu records, lost %llu in %llu laps\n", a->topic,
	       (unsigned long long)delivered, (unsigned long long)st.lost,
	       (unsigned long long)st.laps);
	fflush(stdout);
	CHILD_CHECK(st.delivered == delivered && st.crc_errors == 0 && st.aborted_skipped == 0,
		    "stats: delivered %llu crc errors %llu aborted %llu",
		    (unsigned long long)st.delivered, (unsigned long long)st.crc_errors,
		    (unsigned long long)st.aborted_skipped);
	if (a->lossless)
		CHILD_CHECK(st.laps == 0 && st.lost == 0 && delivered == NRECS,
			    "lossless: laps %llu lost %llu delivered %llu",
			    (unsigned long long)st.laps, (unsigned long long)st.lost,
			    (unsigned long long)delivered);
	else
		CHILD_CHECK(delivered + st.lost == NRECS, "delivered %llu + lost %llu != %u",
			    (unsigned long long)delivered, (unsigned long long)st.lost, NRECS);
	shmbus_consumer_free(c);
	shmbus_close(bus);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Tests                                                               */

static void run(struct mp_env *env, struct wrap_arg *a, enum shmbus_policy policy)
{
	SHMBUS_OPTS(shmbus_topic_opts, o, .capacity = CAP, .policy = policy);
	SHMBUS_OPTS(shmbus_partition_info, info);
	pid_t pids[2];
	int ready[2];
	char ch;

	make_sizes();
	assert_ok(shmbus_topic_create(env->bus, a->topic, &o));
	assert_int_equal(pipe(ready), 0);
	a->root = env->root;
	a->ready_fd = ready[1];
	pids[1] = mp_spawn(consumer_main, a);
	/* the consumer is assigned (and registered) before anything is sent */
	assert_int_equal(read(ready[0], &ch, 1), 1);
	pids[0] = mp_spawn(producer_main, a);
	close(ready[0]);
	close(ready[1]);
	mp_wait_ok(pids, 2, 25000, "producer and consumer");
	assert_ok(shmbus_partition_info(env->bus, a->topic, 0, &info));
	assert_int_equal(info.high, NRECS);
	print_message("# %s: %u records, %.0f laps of the ring\n", a->topic, NRECS,
		      (double)info.tail / CAP);
	assert_true(info.tail > 50ull * CAP);
}

/* Backpressure: every offset arrives, once, byte-exact; zero-copy views
 * with the library's CRC check on. */
static void test_wrap_every_size_lossless_views(void **state)
{
	struct wrap_arg a = { .topic = "wrap-bp", .block = true, .check_crc = true,
			      .lossless = true };

	run(*state, &a, SHMBUS_POLICY_BACKPRESSURE);
}

/* Overwrite: the consumer (copy mode) may be lapped, but whatever it gets
 * is byte-exact, and what it lost is reported. */
static void test_wrap_every_size_overwrite_copies(void **state)
{
	struct wrap_arg a = { .topic = "wrap-ow", .copy = true };

	run(*state, &a, SHMBUS_POLICY_OVERWRITE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_wrap_every_size_lossless_views, mp_setup,
						mp_teardown),
		cmocka_unit_test_setup_teardown(test_wrap_every_size_overwrite_copies, mp_setup,
						mp_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
