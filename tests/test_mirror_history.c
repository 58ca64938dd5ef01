/*
 * test_mirror_history.c - a history check in the style of Jepsen for
 * acks = mirrors (issue #9, Tests; docs/protocol.md §M9-§M11): what a
 * producer was told is safe must survive the loss of its host.
 *
 * Two hosts in network namespaces (tests/lib/netlab.c): A serves
 * [mirror-listen] with min_mirrors = 1, B mirrors topic "orders" from A.
 * Producer threads on A send records whose every byte follows from
 * (thread, sequence): key, value (tens of bytes to several KiB), headers
 * (one with a null value) and timestamp.  The history keeps each send:
 * acknowledged (send returned its partition: the offset is kept) or
 * indeterminate (it failed, mostly -ETIMEDOUT: the record may or may not
 * be anywhere).  Right after a burst of acknowledgements, A is cut off
 * (nftables drops all its traffic inside its namespace; its link goes
 * down where nft is missing) while the producers go on, then its shmbusd
 * is killed (-9), and `shmbus mirror promote orders` runs on B.
 *
 * The checks on B: every acknowledged record is there, at its partition
 * and offset, byte for byte; every record B holds is one that was sent
 * (acknowledged ones where they were acknowledged, indeterminate ones
 * anywhere), intact, once, at dense offsets from 0; producers on B go on
 * from B's end.  Then A comes back as a mirror of B: it cuts what it
 * held past B's end, reporting as many offsets as it had past it, and
 * ends byte-identical to B.  Three rounds, each on a fresh lab, cut at a
 * different point (after 150, 1200, 3000 acknowledgements; 0, 2 or 20
 * ms later; A killed 30, 200 or 600 ms after the cut).  The counts of
 * each history are printed.
 *
 * Needs root and `ip netns`; skips with the reason otherwise.
 */
#include "lib/cliutil.h"
#include "lib/daemonutil.h"
#include "lib/netlab.h"
#include "lib/testutil.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PARTS      2
#define THREADS    4
#define MAX_SENDS  20000          /* per thread: far more than a round sends */
#define ACK_MS     1000           /* a producer's ack timeout */
#define WAIT_MS    20000
#define MAX_VALUE  9300
#define TS_BASE    1700000000000000000LL

static const char listen_a[] = "[mirror-listen]\naddress = 10.201.0.1:9093\ntls = off\n"
			       "timeout_ms = 1000\nmin_mirrors = 1\n";
static const char listen_b[] = "[mirror-listen]\naddress = 10.201.0.2:9093\ntls = off\n"
			       "timeout_ms = 1000\n";
static const char from_a[] = "[mirror \"from-a\"]\nsource = 10.201.0.1:9093\ntopics = orders\n"
			     "tls = off\ntimeout_ms = 1000\n";
static const char from_b[] = "[mirror \"from-b\"]\nsource = 10.201.0.2:9093\ntopics = orders\n"
			     "tls = off\ntimeout_ms = 1000\n";

/* ------------------------------------------------------------------ */
/* The records: every byte follows from (round, thread, sequence)      */

struct rec {
	char key[32];
	size_t key_len;
	char t[12], s[12];
	struct shmbus_header h[3];
	size_t header_count;
	uint8_t value[MAX_VALUE];
	size_t value_len;
	int64_t ts;
};

static size_t value_len_of(unsigned t, unsigned seq)
{
	if (seq % 16 == 5) /* one in 16 is several KiB */
		return 2048 + (seq * 131 + t * 977) % 7000;
	return 16 + (seq * 37 + t * 11) % 300;
}

static void rec_make(struct rec *r, int round, unsigned t, unsigned seq)
{
	r->key_len = (size_t)snprintf(r->key, sizeof r->key, "t%u-s%u", t, seq);
	snprintf(r->t, sizeof r->t, "%u", t);
	snprintf(r->s, sizeof r->s, "%u", seq);
	r->h[0] = (struct shmbus_header){ "thread", 6, r->t, strlen(r->t) };
	r->h[1] = (struct shmbus_header){ "seq", 3, r->s, strlen(r->s) };
	r->h[2] = (struct shmbus_header){ "none", 4, NULL, 0 };
	r->header_count = seq % 3 == 0 ? 3 : 2;
	r->value_len = value_len_of(t, seq);
	for (size_t i = 0; i < r->value_len; i++)
		r->value[i] = (uint8_t)(round * 101 + t * 31 + seq * 7 + i * 13);
	r->ts = TS_BASE + round * 1000000000000000LL + (int64_t)t * 1000000000000LL +
		(int64_t)seq * 1000;
}

static struct shmbus_record rec_record(const struct rec *r)
{
	return (struct shmbus_record){ .key = r->key, .key_len = r->key_len, .value = r->value,
				       .value_len = r->value_len, .headers = r->h,
				       .header_count = r->header_count, .timestamp_ns = r->ts };
}

/* The message is exactly the record it names by its key: 0, or -1 with
 * why in `why`.  *t and *seq are the names. */
static int rec_check(const struct shmbus_message *m, int round, unsigned *t, unsigned *seq,
		     char *why, size_t len)
{
	static struct rec want; /* the main thread's only */
	char key[32];
	int n = 0;

	if (m->key_len == 0 || m->key_len >= sizeof key)
		return snprintf(why, len, "a key of %zu bytes", m->key_len), -1;
	memcpy(key, m->key, m->key_len);
	key[m->key_len] = '\0';
	if (sscanf(key, "t%u-s%u%n", t, seq, &n) != 2 || (size_t)n != m->key_len ||
	    *t >= THREADS || *seq >= MAX_SENDS)
		return snprintf(why, len, "key \"%s\" names no send", key), -1;
	rec_make(&want, round, *t, *seq);
	if (m->key_len != want.key_len || memcmp(m->key, want.key, want.key_len))
		return snprintf(why, len, "key \"%s\" is not its own", key), -1;
	if (m->value_len != want.value_len || memcmp(m->value, want.value, want.value_len))
		return snprintf(why, len, "%s: value of %zu bytes differs (want %zu)", key,
				m->value_len, want.value_len), -1;
	if (m->timestamp_ns != want.ts)
		return snprintf(why, len, "%s: timestamp %lld, want %lld", key,
				(long long)m->timestamp_ns, (long long)want.ts), -1;
	if (m->header_count != want.header_count)
		return snprintf(why, len, "%s: %zu headers, want %zu", key, m->header_count,
				want.header_count), -1;
	for (size_t i = 0; i < want.header_count; i++) {
		struct shmbus_header h;
		const struct shmbus_header *w = &want.h[i];

		if (shmbus_message_header(m, i, &h) < 0 || h.name_len != w->name_len ||
		    memcmp(h.name, w->name, w->name_len) || h.value_len != w->value_len ||
		    (!h.value) != (!w->value) || (w->value && memcmp(h.value, w->value, w->value_len)))
			return snprintf(why, len, "%s: header %zu differs", key, i), -1;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* The history                                                         */

enum outcome { ACKED = 1, INDETERMINATE = 2 };

struct op {
	uint8_t outcome;
	int32_t part;
	uint64_t off;                 /* ACKED only */
};

struct worker {
	shmbus *bus;
	int round;
	unsigned t;
	pthread_t th;
	struct op *ops;               /* indexed by sequence */
	size_t n;
	char why[300];                /* a send that broke the rules */
};

static atomic_uint acked_total;
static atomic_int stop_sending;

static void *worker_main(void *arg)
{
	SHMBUS_OPTS(shmbus_producer_opts, o, .acks = SHMBUS_ACKS_MIRRORS, .ack_timeout_ms = ACK_MS);
	struct worker *w = arg;
	struct rec *r = malloc(sizeof *r);
	shmbus_producer *p = NULL;

	if (!r || shmbus_producer_new(w->bus, "orders", &o, &p) < 0) {
		snprintf(w->why, sizeof w->why, "producer %u: %s", w->t, shmbus_errmsg());
		free(r);
		return NULL;
	}
	while (!atomic_load(&stop_sending) && w->n < MAX_SENDS) {
		unsigned seq = (unsigned)w->n;
		int32_t part = (int32_t)((w->t + seq) % PARTS);
		struct shmbus_record rec;
		uint64_t off = 0;
		int rc;

		rec_make(r, w->round, w->t, seq);
		rec = rec_record(r);
		rc = shmbus_producer_send(p, part, &rec, &off);
		if (rc >= 0 && rc != part && !w->why[0])
			snprintf(w->why, sizeof w->why, "send to partition %d went to %d", part, rc);
		w->ops[seq] = (struct op){ .outcome = rc >= 0 ? ACKED : INDETERMINATE, .part = part,
					   .off = rc >= 0 ? off : 0 };
		w->n++;
		if (rc >= 0)
			atomic_fetch_add(&acked_total, 1);
		else if (rc != -ETIMEDOUT)
			usleep(1000); /* the daemon is gone: no spinning */
	}
	shmbus_producer_free(p);
	free(r);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* The lab                                                             */

static int setup(void **state)
{
	struct tu_lab *l = calloc(1, sizeof *l);

	*state = l;
	tu_lab_init(l, 2);
	return 0;
}

static int teardown(void **state)
{
	tu_lab_fini(*state);
	free(*state);
	return 0;
}

static void config(struct tu_lab *l, int i, const char *a, const char *b)
{
	char text[1024];

	snprintf(text, sizeof text, "%s\n%s", a, b ? b : "");
	tu_lab_config(l, i, text);
}

static void dump_all(struct tu_lab *l)
{
	for (int i = 0; i < l->hosts; i++)
		if (l->d[i].pid > 0)
			tu_daemon_dump(&l->d[i]);
}

static void expect_log(struct tu_lab *l, int i, const char *needle, int ms)
{
	if (tu_daemon_log_has(&l->d[i], needle, ms))
		return;
	dump_all(l);
	fail_msg("host %c's log never said \"%s\"", 'a' + i, needle);
}

/* B follows every partition of orders, as A sees it. */
static void wait_following(struct tu_lab *l, shmbus *a)
{
	int64_t until = tu_ms() + WAIT_MS;

	for (;;) {
		struct shmbus_mirror_follower f[8] = { { .sz = sizeof f[0] } };
		int n = shmbus_mirror_followers(a, "orders", f, 8), on = 0;

		for (int i = 0; i < n && i < 8; i++)
			on += !strcmp(f[i].state, "following");
		if (on >= PARTS)
			return;
		if (tu_ms() > until) {
			dump_all(l);
			fail_msg("B did not follow orders within %d ms", WAIT_MS);
		}
		usleep(20000);
	}
}

/* Host i's mirror gave up its silent connection (timeout_ms). */
static void wait_disconnected(struct tu_lab *l, int i)
{
	if (!tu_daemon_log_has(&l->d[i], "reconnecting", 15000)) {
		tu_daemon_dump(&l->d[i]);
		fail_msg("host %c's mirror did not give up its silent connection", 'a' + i);
	}
}

/* All of A's traffic dropped inside its namespace, by an nft already
 * started there and waiting for a line on its stdin (so the cut follows
 * the acknowledgements by the time nft takes, not a fork and exec), or
 * its link down where nft cannot be used.  True if nft did it. */
static bool cut_off(struct tu_lab *l, FILE *armed)
{
	if (armed) {
		fputs("go\n", armed);
		if (pclose(armed) == 0)
			return true;
	}
	tu_lab_link(l, 0, false);
	return false;
}

static void reconnect(struct tu_lab *l, bool by_nft)
{
	if (by_nft)
		assert_int_equal(tu_lab_sh(l, 0, "nft delete table inet jepsen"), 0);
	else
		tu_lab_link(l, 0, true);
}

/* The nft that will cut A off, started in A's namespace and waiting;
 * NULL if nft is missing there.  Without its line (the test failed
 * first) it reads end of file and does nothing. */
static FILE *nft_armed(struct tu_lab *l)
{
	char path[400], cmd[600];
	FILE *f;

	if (tu_lab_sh(l, 0, "nft list tables") < 0)
		return NULL;
	snprintf(path, sizeof path, "%s/cut.nft", l->dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("table inet jepsen {\n"
	      " chain in { type filter hook input priority -300; policy drop; }\n"
	      " chain out { type filter hook output priority -300; policy drop; }\n}\n", f);
	assert_int_equal(fclose(f), 0);
	snprintf(cmd, sizeof cmd, "ip netns exec %s sh -c 'read go && exec nft -f %s'", l->ns[0],
		 path);
	f = popen(cmd, "w");
	assert_non_null(f);
	return f;
}

/* ------------------------------------------------------------------ */
/* The check                                                           */

struct seen {
	bool on_b;
	int32_t part;
	uint64_t off;
};

struct tally {
	size_t acked, indeterminate, on_b, indeterminate_on_b;
	unsigned at_cut;              /* acknowledgements once the cut was in place */
};

/* Read B's partition to its end: every record intact, named by a send,
 * once, at dense offsets from 0. */
static void read_b(shmbus *b, int round, uint32_t part, uint64_t end, struct worker *w,
		   struct seen *seen[THREADS], struct tally *k)
{
	SHMBUS_OPTS(shmbus_consumer_opts, o, .spin_us = -1);
	struct shmbus_message m[64];
	shmbus_consumer *c;
	uint64_t next = 0;
	int64_t until = tu_ms() + WAIT_MS;
	char why[300];

	assert_ok(shmbus_consumer_new(b, &o, &c));
	assert_ok(shmbus_consumer_assign(c, "orders", (int32_t)part, SHMBUS_OFFSET_BEGINNING));
	while (next < end && tu_ms() < until) {
		int n = shmbus_consumer_poll(c, m, 64, 200);

		assert_true(n >= 0);
		for (int i = 0; i < n; i++) {
			unsigned t, seq;
			struct op *op;

			if (m[i].offset != next)
				fail_msg("orders/%u on B: offset %llu where %llu was due (not dense)",
					 part, (unsigned long long)m[i].offset,
					 (unsigned long long)next);
			if (rec_check(&m[i], round, &t, &seq, why, sizeof why) < 0)
				fail_msg("orders/%u@%llu on B is not intact: %s", part,
					 (unsigned long long)next, why);
			if (seq >= w[t].n)
				fail_msg("orders/%u@%llu on B is t%u-s%u, never sent", part,
					 (unsigned long long)next, t, seq);
			if (seen[t][seq].on_b)
				fail_msg("t%u-s%u is on B twice: orders/%d@%llu and orders/%u@%llu", t,
					 seq, seen[t][seq].part, (unsigned long long)seen[t][seq].off,
					 part, (unsigned long long)next);
			op = &w[t].ops[seq];
			if (op->part != (int32_t)part ||
			    (op->outcome == ACKED && op->off != next))
				fail_msg("t%u-s%u is on B at orders/%u@%llu; it was sent to "
					 "partition %d%s (offset %llu)", t, seq, part,
					 (unsigned long long)next, op->part,
					 op->outcome == ACKED ? ", acknowledged" : "",
					 (unsigned long long)op->off);
			seen[t][seq] = (struct seen){ true, (int32_t)part, next };
			k->on_b++;
			k->indeterminate_on_b += op->outcome == INDETERMINATE;
			next++;
		}
	}
	assert_int_equal(next, end);
	shmbus_consumer_free(c);
}

/* Every acknowledged send is on B where it was acknowledged. */
static void none_acked_lost(struct worker *w, struct seen *seen[THREADS])
{
	size_t lost = 0;

	for (unsigned t = 0; t < THREADS; t++)
		for (size_t s = 0; s < w[t].n; s++) {
			const struct op *op = &w[t].ops[s];

			if (op->outcome != ACKED || seen[t][s].on_b)
				continue;
			if (lost++ < 10)
				printf("# LOST: t%u-s%zu acknowledged at orders/%d@%llu, not on B\n", t,
				       s, op->part, (unsigned long long)op->off);
		}
	if (lost)
		fail_msg("%zu acknowledged records are not on the promoted host", lost);
}

/* ------------------------------------------------------------------ */
/* A round                                                             */

struct timing {
	unsigned cut_after;           /* acknowledgements before the cut */
	int delay_us;                 /* from there to the cut */
	int kill_ms;                  /* from the cut to kill -9 */
};

/* Producers on A until the cut, then A killed: the history. */
static void run_until_the_cut(struct tu_lab *l, shmbus *a, int round, const struct timing *tm,
			      FILE *armed, struct worker *w, bool *by_nft, unsigned *at_cut)
{
	int64_t until = tu_ms() + WAIT_MS;

	atomic_store(&acked_total, 0);
	atomic_store(&stop_sending, 0);
	for (unsigned t = 0; t < THREADS; t++) {
		w[t] = (struct worker){ .bus = a, .round = round, .t = t };
		w[t].ops = calloc(MAX_SENDS, sizeof *w[t].ops);
		assert_non_null(w[t].ops);
		assert_int_equal(pthread_create(&w[t].th, NULL, worker_main, &w[t]), 0);
	}
	while (atomic_load(&acked_total) < tm->cut_after && tu_ms() < until)
		usleep(200);
	if (tm->delay_us)
		usleep((useconds_t)tm->delay_us);
	*by_nft = cut_off(l, armed);
	*at_cut = atomic_load(&acked_total);
	usleep((useconds_t)tm->kill_ms * 1000);
	tu_lab_kill(l, 0);
	usleep(200000); /* sends after the death: indeterminate too */
	atomic_store(&stop_sending, 1);
	for (unsigned t = 0; t < THREADS; t++) {
		pthread_join(w[t].th, NULL);
		if (w[t].why[0])
			fail_msg("%s", w[t].why);
	}
	if (atomic_load(&acked_total) < tm->cut_after)
		fail_msg("only %u sends were acknowledged in %d ms (the cut was due after %u)",
			 atomic_load(&acked_total), WAIT_MS, tm->cut_after);
}

static void promote_b(struct tu_lab *l)
{
	const char *const promote[] = { "mirror", "promote", "orders", NULL };
	char out[4096];

	if (tu_cli_run(l->root[1], promote, out, sizeof out, 60000) != 0) {
		dump_all(l);
		fail_msg("shmbus mirror promote failed: %s", out);
	}
	assert_non_null(strstr(out, "promoted topic \"orders\""));
}

/* Producers on B go on from B's end. */
static void b_takes_producers(shmbus *b, const uint64_t *end)
{
	shmbus_producer *p;

	assert_ok(shmbus_producer_new(b, "orders", NULL, &p));
	for (int32_t part = 0; part < PARTS; part++)
		for (uint64_t i = 0; i < 50; i++) {
			struct shmbus_record r = { .key = "after", .key_len = 5, .value = "promoted",
						   .value_len = 8 };
			uint64_t off = 0;

			assert_int_equal(shmbus_producer_send(p, part, &r, &off), part);
			assert_int_equal(off, end[part] + i);
		}
	shmbus_producer_free(p);
}

/* A, restarted as a mirror of B: it cuts what it held past B's end at the
 * promotion and is then byte-identical to B. */
static void a_follows_b(struct tu_lab *l, bool by_nft, const uint64_t *a_end,
			const uint64_t *b_end)
{
	struct shmbus_mirror_status all[8] = { { .sz = sizeof all[0] } };
	uint64_t want_cut = 0, cut = 0;
	shmbus *a;
	int n;

	wait_disconnected(l, 1); /* A's orphaned socket never meets B's old connection */
	reconnect(l, by_nft);
	config(l, 0, from_b, NULL);
	tu_lab_start(l, 0);
	expect_log(l, 0, "is now a replica of the source", WAIT_MS);
	for (int i = 0; i < PARTS; i++)
		want_cut += a_end[i] - b_end[i];
	if (want_cut)
		expect_log(l, 0, "cut offsets", WAIT_MS);
	tu_lab_caught_up(l, l->root[1], l->root[0], "orders", PARTS, WAIT_MS);
	tu_replica_identical(l->root[1], l->root[0], "orders", PARTS, false);
	a = tu_open(l->root[0]);
	n = shmbus_mirror_status(a, all, 8);
	assert_true(n >= PARTS);
	for (int i = 0; i < n && i < 8; i++)
		if (!strcmp(all[i].topic, "orders"))
			cut += all[i].cut;
	assert_int_equal(cut, want_cut);
	printf("# A back as B's mirror: cut %llu offsets B never had, then byte-identical\n",
	       (unsigned long long)cut);
	shmbus_close(a);
}

static void a_round(void **state, int round, const struct timing *tm)
{
	struct tu_lab *l = *state;
	SHMBUS_OPTS(shmbus_topic_opts, to, .partitions = PARTS, .capacity = 8u << 20);
	struct worker w[THREADS];
	struct seen *seen[THREADS];
	struct tally k = { 0 };
	uint64_t a_end[PARTS], b_end[PARTS];
	bool by_nft;
	shmbus *a, *b;

	tu_lab_need(l);
	config(l, 0, listen_a, NULL);
	config(l, 1, from_a, listen_b);
	tu_lab_start(l, 0);
	a = tu_open(l->root[0]);
	assert_ok(shmbus_topic_create(a, "orders", &to));
	tu_lab_start(l, 1);
	wait_following(l, a);

	run_until_the_cut(l, a, round, tm, nft_armed(l), w, &by_nft, &k.at_cut);
	for (int i = 0; i < PARTS; i++)
		a_end[i] = tu_part_high(l->root[0], "orders", (uint32_t)i);
	promote_b(l);
	b = tu_open(l->root[1]);
	for (unsigned t = 0; t < THREADS; t++) {
		seen[t] = calloc(MAX_SENDS, sizeof *seen[t]);
		assert_non_null(seen[t]);
		for (size_t s = 0; s < w[t].n; s++) {
			k.acked += w[t].ops[s].outcome == ACKED;
			k.indeterminate += w[t].ops[s].outcome == INDETERMINATE;
		}
	}
	for (uint32_t i = 0; i < PARTS; i++) {
		b_end[i] = tu_part_high(l->root[1], "orders", i);
		read_b(b, round, i, b_end[i], w, seen, &k);
	}
	printf("# round %d (%s after %u acks +%d us, in place at %u; A killed %d ms later): %zu sends "
	       "acknowledged, %zu indeterminate; on B %zu records: every acknowledged one, and "
	       "%zu of the indeterminate; A held %llu+%llu, B %llu+%llu\n",
	       round, by_nft ? "nft drop" : "link down", tm->cut_after, tm->delay_us, k.at_cut,
	       tm->kill_ms,
	       k.acked, k.indeterminate, k.on_b, k.indeterminate_on_b,
	       (unsigned long long)a_end[0], (unsigned long long)a_end[1],
	       (unsigned long long)b_end[0], (unsigned long long)b_end[1]);
	none_acked_lost(w, seen);
	assert_true(k.indeterminate >= 1); /* the cut came while sends were waiting */
	assert_int_equal(k.on_b, k.acked + k.indeterminate_on_b);
	for (int i = 0; i < PARTS; i++)
		assert_true(a_end[i] >= b_end[i]);
	b_takes_producers(b, b_end);
	a_follows_b(l, by_nft, a_end, b_end);
	for (unsigned t = 0; t < THREADS; t++) {
		free(w[t].ops);
		free(seen[t]);
	}
	shmbus_close(a);
	shmbus_close(b);
}

static void early_cut_quick_kill(void **state)
{
	a_round(state, 0, &(struct timing){ .cut_after = 150, .delay_us = 0, .kill_ms = 30 });
}

static void middle_cut(void **state)
{
	a_round(state, 1, &(struct timing){ .cut_after = 1200, .delay_us = 2000, .kill_ms = 200 });
}

static void late_cut_slow_kill(void **state)
{
	a_round(state, 2, &(struct timing){ .cut_after = 3000, .delay_us = 20000, .kill_ms = 600 });
}

static void first_acks_instant_kill(void **state)
{
	a_round(state, 3, &(struct timing){ .cut_after = 20, .delay_us = 0, .kill_ms = 0 });
}

/* A lives past the producers' ack timeout: each goes on appending, one
 * indeterminate send after another, until the kill */
static void kill_after_the_timeouts(void **state)
{
	a_round(state, 4, &(struct timing){ .cut_after = 600, .delay_us = 500, .kill_ms = 2500 });
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(early_cut_quick_kill, setup, teardown),
		cmocka_unit_test_setup_teardown(middle_cut, setup, teardown),
		cmocka_unit_test_setup_teardown(late_cut_slow_kill, setup, teardown),
		cmocka_unit_test_setup_teardown(first_acks_instant_kill, setup, teardown),
		cmocka_unit_test_setup_teardown(kill_after_the_timeouts, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
