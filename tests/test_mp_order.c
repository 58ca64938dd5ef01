/*
 * test_mp_order.c - ordering across processes and threads: N producers
 * and M consumers on one partition and across the partitions of a keyed
 * topic.  Every record carries its producer and sequence number and a
 * CRC32 the test computes itself; each consumer must read every record,
 * once, in each producer's order (and each key's), at dense offsets.
 * The rings are large enough that nothing laps.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "shmbus.h"
#include "lib/testutil.h"
#include "test_mp.h"

#define NPROD     3
#define NCONS     2
#define PER_PROD  100000
#define NTHREADS  4
#define PER_THR   60000
#define MAXP      (NPROD > NTHREADS ? NPROD : NTHREADS)
#define NKEYS     32
#define NPARTS    4
#define VMAX      256

/* ------------------------------------------------------------------ */
/* Self-checking values                                                */

/* value: stamp, filler derived from the stamp, CRC32 of both */
struct stamp {
	uint32_t producer;
	uint32_t key;
	uint64_t seq;   /* the producer's sequence */
	uint64_t kseq;  /* the producer's sequence for this key */
};

static size_t make_value(uint8_t *buf, const struct stamp *s)
{
	size_t flen = (size_t)((s->seq * 31 + s->producer * 7) % 97);
	uint32_t crc;

	memcpy(buf, s, sizeof *s);
	for (size_t i = 0; i < flen; i++)
		buf[sizeof *s + i] = (uint8_t)(s->seq * 131 + i * 7 + s->producer);
	crc = mp_crc32(buf, sizeof *s + flen);
	memcpy(buf + sizeof *s + flen, &crc, sizeof crc);
	return sizeof *s + flen + sizeof crc;
}

static bool check_value(const void *v, size_t len, struct stamp *out)
{
	const uint8_t *b = v;
	uint32_t crc;

	if (!v || len < sizeof *out + sizeof crc)
		return false;
	memcpy(&crc, b + len - sizeof crc, sizeof crc);
	if (mp_crc32(b, len - sizeof crc) != crc)
		return false;
	memcpy(out, b, sizeof *out);
	return len == sizeof *out + (out->seq * 31 + out->producer * 7) % 97 + sizeof crc;
}

/* ------------------------------------------------------------------ */
/* Plumbing                                                            */

static void make_topic(shmbus *bus, const char *name, uint32_t parts, uint64_t cap)
{
	SHMBUS_OPTS(shmbus_topic_opts, o, .partitions = parts, .capacity = cap);

	assert_ok(shmbus_topic_create(bus, name, &o));
}

/* ------------------------------------------------------------------ */
/* Producers                                                           */

enum pmode { P_SEND, P_BATCH, P_CLAIM };

struct prod_arg {
	const char *root;
	const char *topic;
	uint32_t id;
	uint32_t count;
	enum pmode mode;
	bool keyed;   /* records keyed "key-N", sent to SHMBUS_PARTITION_ANY */
	bool block;   /* backpressure topic: wait for room */
	int cpu;
};

static const char *key_of(uint32_t k, char *buf, size_t len)
{
	snprintf(buf, len, "key-%u", k);
	return buf;
}

/* The record `seq` of producer `id`: its stamp and key. */
static void plan_record(uint32_t id, uint64_t seq, bool keyed, uint64_t (*kseq)[NKEYS],
			struct stamp *s)
{
	uint32_t k = keyed ? (uint32_t)((seq * 7 + id * 3 + seq / 5) % NKEYS) : 0;

	*s = (struct stamp){ .producer = id, .key = k, .seq = seq, .kseq = kseq[id][k]++ };
}

static int producer_main(void *argp)
{
	const struct prod_arg *a = argp;
	static uint64_t kseq[NPROD][NKEYS];
	static uint8_t vals[128][VMAX];
	static char keys[128][16];
	struct shmbus_record recs[128];
	char pname[16];
	SHMBUS_OPTS(shmbus_producer_opts, po, .block = a->block);
	shmbus_producer *p = NULL;
	shmbus *bus;
	uint64_t seq = 0;
	int rc;

	tu_pin(a->cpu);
	bus = mp_open(a->root);
	rc = shmbus_producer_new(bus, a->topic, &po, &p);
	CHILD_CHECK(rc == 0, "producer_new = %d", rc);
	snprintf(pname, sizeof pname, "%u", a->id);
	while (seq < a->count) {
		size_t n = a->mode == P_BATCH ? 1 + (seq * 13) % 100 : 1;
		struct shmbus_header hdr = { .name = "producer", .name_len = 8,
					     .value = pname, .value_len = strlen(pname) };

		if (n > a->count - seq)
			n = a->count - seq;
		for (size_t i = 0; i < n; i++) {
			struct stamp s;

			plan_record(a->id, seq + i, a->keyed, kseq, &s);
			recs[i] = (struct shmbus_record){ .headers = &hdr, .header_count = 1 };
			recs[i].value = vals[i];
			recs[i].value_len = make_value(vals[i], &s);
			if (a->keyed) {
				recs[i].key = key_of(s.key, keys[i], sizeof keys[i]);
				recs[i].key_len = strlen(keys[i]);
			} else if (a->id % 3 == 1) {
				recs[i].key = "p1";
				recs[i].key_len = 2;
			} else if (a->id % 3 == 2) {
				recs[i].key = "";   /* empty, not null */
			}
		}
		switch (a->mode) {
		case P_SEND:
			rc = shmbus_producer_send(p, a->keyed ? SHMBUS_PARTITION_ANY : 0, &recs[0],
						  NULL);
			CHILD_CHECK(rc >= 0, "send seq %llu = %d", (unsigned long long)seq, rc);
			if (a->keyed)
				CHILD_CHECK(rc == shmbus_producer_partition_for(p, recs[0].key,
										 recs[0].key_len),
					    "send went to partition %d, not the key's", rc);
			break;
		case P_BATCH:
			rc = shmbus_producer_send_batch(p, a->keyed ? SHMBUS_PARTITION_ANY : 0, recs,
							n);
			CHILD_CHECK(rc == (int)n, "send_batch of %zu at seq %llu = %d", n,
				    (unsigned long long)seq, rc);
			break;
		case P_CLAIM: {
			struct shmbus_claim c;
			struct shmbus_record meta = recs[0];

			meta.value = NULL;
			rc = shmbus_producer_claim(p, a->keyed ? SHMBUS_PARTITION_ANY : 0, &meta,
						   VMAX, &c);
			CHILD_CHECK(rc == 0, "claim at seq %llu = %d", (unsigned long long)seq, rc);
			CHILD_CHECK(c.value_cap >= recs[0].value_len, "claim too small");
			memcpy(c.value, recs[0].value, recs[0].value_len);
			rc = shmbus_producer_commit(p, &c, recs[0].value_len);
			CHILD_CHECK(rc == 0, "commit at seq %llu = %d", (unsigned long long)seq, rc);
			break;
		}
		}
		seq += n;
	}
	shmbus_producer_free(p);
	shmbus_close(bus);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Consumers                                                           */

struct cons_arg {
	const char *root;
	const char *topic;
	uint32_t nprod;        /* producer ids 0..nprod-1 */
	uint64_t per_prod;
	bool keyed;
	bool copy;
	int cpu;
	int deadline_ms;
	int ready_fd;          /* written once assigned (registered), or -1 */
};

/* What a consumer has seen so far. */
struct seen {
	uint64_t next_seq[MAXP];
	uint64_t next_kseq[MAXP][NKEYS];
	int64_t last_off[NPARTS];
	int64_t last_seq[MAXP][NPARTS];
};

/* The key each producer gives its unkeyed records (producer_main). */
static void check_unkeyed(const struct shmbus_message *m, uint32_t producer)
{
	if (producer % 3 == 0)
		CHILD_CHECK(!m->key && (m->flags & SHMBUS_MSG_KEY_NULL), "null key");
	else if (producer % 3 == 1)
		CHILD_CHECK(m->key_len == 2 && !memcmp(m->key, "p1", 2), "key p1");
	else
		CHILD_CHECK(m->key && m->key_len == 0 && !(m->flags & SHMBUS_MSG_KEY_NULL),
			    "empty key");
}

static void check_message(const struct cons_arg *a, struct seen *sn, shmbus_producer *keys,
			  const struct shmbus_message *m)
{
	struct shmbus_header h;
	struct stamp s;
	char want[16];

	CHILD_CHECK(m->partition >= 0 && m->partition < NPARTS, "partition %d", m->partition);
	CHILD_CHECK((int64_t)m->offset == sn->last_off[m->partition] + 1,
		    "partition %d: offset %llu after %lld (not dense)", m->partition,
		    (unsigned long long)m->offset, (long long)sn->last_off[m->partition]);
	sn->last_off[m->partition] = (int64_t)m->offset;
	CHILD_CHECK(check_value(m->value, m->value_len, &s), "record %d@%llu is damaged (%zu bytes)",
		    m->partition, (unsigned long long)m->offset, m->value_len);
	CHILD_CHECK(s.producer < a->nprod, "producer %u", s.producer);
	if (a->keyed) {
		/* a producer's records keep their order within each partition,
		 * and each key's records are all there, in one partition */
		CHILD_CHECK(sn->last_seq[s.producer][m->partition] < (int64_t)s.seq,
			    "producer %u: seq %llu after %lld in partition %d", s.producer,
			    (unsigned long long)s.seq,
			    (long long)sn->last_seq[s.producer][m->partition], m->partition);
		sn->last_seq[s.producer][m->partition] = (int64_t)s.seq;
		CHILD_CHECK(s.key < NKEYS && s.kseq == sn->next_kseq[s.producer][s.key],
			    "producer %u key %u: kseq %llu, expected %llu", s.producer, s.key,
			    (unsigned long long)s.kseq,
			    (unsigned long long)sn->next_kseq[s.producer][s.key]);
		sn->next_kseq[s.producer][s.key]++;
		key_of(s.key, want, sizeof want);
		CHILD_CHECK(m->key && m->key_len == strlen(want) && !memcmp(m->key, want, m->key_len),
			    "key mismatch");
		CHILD_CHECK(m->partition == shmbus_producer_partition_for(keys, want, strlen(want)),
			    "key %s in partition %d", want, m->partition);
	} else {
		CHILD_CHECK(s.seq == sn->next_seq[s.producer],
			    "producer %u: seq %llu arrived, expected %llu (@%llu)", s.producer,
			    (unsigned long long)s.seq, (unsigned long long)sn->next_seq[s.producer],
			    (unsigned long long)m->offset);
		check_unkeyed(m, s.producer);
	}
	sn->next_seq[s.producer]++;
	CHILD_CHECK(m->header_count == 1, "header count %zu", m->header_count);
	snprintf(want, sizeof want, "%u", s.producer);
	CHILD_CHECK(shmbus_message_header_last(m, "producer", &h) == 0 &&
		    h.value_len == strlen(want) && !memcmp(h.value, want, h.value_len),
		    "header \"producer\" of @%llu", (unsigned long long)m->offset);
	CHILD_CHECK(shmbus_message_valid(m) == 0, "message not valid after use");
}

static int consumer_main(void *argp)
{
	const struct cons_arg *a = argp;
	static struct seen sn;
	static struct shmbus_message msgs[64];
	SHMBUS_OPTS(shmbus_consumer_opts, co, .copy = a->copy, .reset = SHMBUS_RESET_ERROR);
	SHMBUS_OPTS(shmbus_consumer_stats, st);
	shmbus_producer *keys = NULL;
	shmbus_consumer *c = NULL;
	uint64_t total = (uint64_t)a->nprod * a->per_prod, got = 0;
	int64_t end = tu_ms() + a->deadline_ms;
	shmbus *bus;
	int n;

	tu_pin(a->cpu);
	for (int i = 0; i < NPARTS; i++) {
		sn.last_off[i] = -1;
		for (int j = 0; j < MAXP; j++)
			sn.last_seq[j][i] = -1;
	}
	bus = mp_open(a->root);
	CHILD_CHECK(shmbus_consumer_new(bus, &co, &c) == 0, "consumer_new");
	CHILD_CHECK(shmbus_consumer_assign(c, a->topic, SHMBUS_PARTITION_ANY, 0) == 0, "assign");
	if (a->ready_fd >= 0)
		CHILD_CHECK(write(a->ready_fd, "r", 1) == 1, "ready pipe");
	/* a producer handle only to ask which partition a key belongs to */
	if (a->keyed)
		CHILD_CHECK(shmbus_producer_new(bus, a->topic, NULL, &keys) == 0, "producer_new");
	while (got < total) {
		CHILD_CHECK(tu_ms() < end, "only %llu of %llu records after %d ms",
			    (unsigned long long)got, (unsigned long long)total, a->deadline_ms);
		n = shmbus_consumer_poll(c, msgs, 64, 100);
		CHILD_CHECK(n >= 0, "poll = %d", n);
		for (int i = 0; i < n; i++)
			check_message(a, &sn, keys, &msgs[i]);
		got += (uint64_t)n;
	}
	/* nothing more: no duplicates, nothing extra */
	n = shmbus_consumer_poll(c, msgs, 64, 50);
	CHILD_CHECK(n == 0, "poll after the end returned %d", n);
	for (uint32_t p = 0; p < a->nprod; p++)
		CHILD_CHECK(sn.next_seq[p] == a->per_prod, "producer %u: %llu records", p,
			    (unsigned long long)sn.next_seq[p]);
	shmbus_consumer_stats(c, &st);
	CHILD_CHECK(st.delivered == total && st.laps == 0 && st.lost == 0 &&
		    st.aborted_skipped == 0 && st.crc_errors == 0,
		    "stats: delivered %llu laps %llu lost %llu aborted %llu",
		    (unsigned long long)st.delivered, (unsigned long long)st.laps,
		    (unsigned long long)st.lost, (unsigned long long)st.aborted_skipped);
	shmbus_producer_free(keys);
	shmbus_consumer_free(c);
	shmbus_close(bus);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Tests                                                               */

static void run_prod_cons(struct mp_env *s, const char *topic, bool keyed, bool bp)
{
	struct prod_arg pa[NPROD];
	struct cons_arg ca[NCONS];
	pid_t pids[NCONS + NPROD];
	int64_t t0 = tu_ms();
	int ready[2];
	char ch;

	assert_int_equal(pipe(ready), 0);
	for (int j = 0; j < NCONS; j++) {
		ca[j] = (struct cons_arg){ .root = s->root, .topic = topic, .nprod = NPROD,
					   .per_prod = PER_PROD, .keyed = keyed, .copy = j & 1,
					   .cpu = j + 1, .deadline_ms = 20000, .ready_fd = ready[1] };
		pids[j] = mp_spawn(consumer_main, &ca[j]);
	}
	/* on a backpressure ring, producers start once every consumer holds them back */
	for (int j = 0; bp && j < NCONS; j++)
		assert_int_equal(read(ready[0], &ch, 1), 1);
	for (int i = 0; i < NPROD; i++) {
		pa[i] = (struct prod_arg){ .root = s->root, .topic = topic, .id = (uint32_t)i,
					   .count = PER_PROD, .mode = (enum pmode)(i % 3),
					   .keyed = keyed, .block = bp, .cpu = i };
		pids[NCONS + i] = mp_spawn(producer_main, &pa[i]);
	}
	close(ready[0]);
	close(ready[1]);
	mp_wait_ok(pids, NCONS + NPROD, 25000, "consumers (0, 1) and producers");
	print_message("# %s: %d producers x %d consumers, %d records each: %lld ms\n", topic, NPROD,
		      NCONS, PER_PROD, (long long)(tu_ms() - t0));
}

/* 3 producers (send, send_batch, claim+commit) x 2 consumers (views,
 * copies) on one partition. */
static void test_one_partition_3x2(void **state)
{
	struct mp_env *s = *state;
	SHMBUS_OPTS(shmbus_partition_info, info);

	make_topic(s->bus, "one", 1, 64 << 20);
	run_prod_cons(s, "one", false, false);
	assert_ok(shmbus_partition_info(s->bus, "one", 0, &info));
	assert_int_equal(info.high, (uint64_t)NPROD * PER_PROD);
	assert_int_equal(info.low, 0);
	assert_int_equal(info.aborted_claims, 0);
}

/* The same over a 4-partition topic with keyed records: each key's
 * records stay in one partition, in order. */
static void test_keyed_4_partitions(void **state)
{
	struct mp_env *s = *state;
	uint64_t sum = 0;

	make_topic(s->bus, "keyed", NPARTS, 32 << 20);
	run_prod_cons(s, "keyed", true, false);
	for (uint32_t p = 0; p < NPARTS; p++) {
		SHMBUS_OPTS(shmbus_partition_info, info);

		assert_ok(shmbus_partition_info(s->bus, "keyed", p, &info));
		assert_true(info.high > 0); /* 32 keys spread over all partitions */
		assert_true(info.tail < info.capacity); /* nothing lapped */
		sum += info.high;
	}
	assert_int_equal(sum, (uint64_t)NPROD * PER_PROD);
}

/* The same 3 x 2 on a 64 KiB backpressure ring: thousands of wraps, and
 * still nothing lost, since both consumers hold the producers back. */
static void test_one_partition_backpressure(void **state)
{
	struct mp_env *s = *state;
	SHMBUS_OPTS(shmbus_topic_opts, o, .capacity = 64 << 10,
		    .policy = SHMBUS_POLICY_BACKPRESSURE);
	SHMBUS_OPTS(shmbus_partition_info, info);

	assert_ok(shmbus_topic_create(s->bus, "bp", &o));
	run_prod_cons(s, "bp", false, true);
	assert_ok(shmbus_partition_info(s->bus, "bp", 0, &info));
	assert_int_equal(info.high, (uint64_t)NPROD * PER_PROD);
	assert_true(info.tail > 100 * info.capacity);
	assert_int_equal(info.registered_consumers, 0);
}

/* Producer threads in one process, one shmbus_producer each. */
struct thr_arg {
	shmbus *bus;
	uint32_t id;
	int rc;
};

static void *thread_main(void *argp)
{
	struct thr_arg *t = argp;
	SHMBUS_OPTS(shmbus_producer_opts, po, .block = false);
	shmbus_producer *p = NULL;
	uint8_t vals[16][VMAX];
	struct shmbus_record recs[16];
	char pname[16];
	struct shmbus_header hdr = { .name = "producer", .name_len = 8, .value = pname };

	snprintf(pname, sizeof pname, "%u", t->id);
	hdr.value_len = strlen(pname);
	t->rc = shmbus_producer_new(t->bus, "threads", &po, &p);
	if (t->rc)
		return NULL;
	for (uint64_t seq = 0; seq < PER_THR;) {
		size_t n = t->id & 1 ? 1 + seq % 16 : 1;
		int rc;

		if (n > PER_THR - seq)
			n = PER_THR - seq;
		for (size_t i = 0; i < n; i++) {
			struct stamp s = { .producer = t->id, .seq = seq + i };

			recs[i] = (struct shmbus_record){ .value = vals[i], .headers = &hdr,
							  .header_count = 1 };
			recs[i].value_len = make_value(vals[i], &s);
			if (t->id % 3 == 1) {
				recs[i].key = "p1";
				recs[i].key_len = 2;
			} else if (t->id % 3 == 2) {
				recs[i].key = "";
			}
		}
		rc = n == 1 ? shmbus_producer_send(p, 0, recs, NULL)
			    : shmbus_producer_send_batch(p, 0, recs, n);
		if (rc < 0 || (n > 1 && rc != (int)n)) {
			t->rc = rc < 0 ? rc : -EIO;
			break;
		}
		seq += n;
	}
	shmbus_producer_free(p);
	return NULL;
}

struct thr_proc_arg {
	const char *root;
};

static int threads_main(void *argp)
{
	const struct thr_proc_arg *a = argp;
	struct thr_arg t[NTHREADS];
	pthread_t th[NTHREADS];
	shmbus *bus = mp_open(a->root);

	for (uint32_t i = 0; i < NTHREADS; i++) {
		t[i] = (struct thr_arg){ .bus = bus, .id = i };
		CHILD_CHECK(pthread_create(&th[i], NULL, thread_main, &t[i]) == 0, "pthread_create");
	}
	for (uint32_t i = 0; i < NTHREADS; i++) {
		pthread_join(th[i], NULL);
		CHILD_CHECK(t[i].rc == 0, "thread %u: %d", i, t[i].rc);
	}
	shmbus_close(bus);
	return 0;
}

/* 4 producer threads in one process (send, send_batch), 2 consumers. */
static void test_producer_threads(void **state)
{
	struct mp_env *s = *state;
	struct thr_proc_arg ta = { .root = s->root };
	struct cons_arg ca[NCONS];
	pid_t pids[NCONS + 1];

	make_topic(s->bus, "threads", 1, 64 << 20);
	for (int j = 0; j < NCONS; j++) {
		ca[j] = (struct cons_arg){ .root = s->root, .topic = "threads", .nprod = NTHREADS,
					   .per_prod = PER_THR, .copy = j & 1, .cpu = j,
					   .deadline_ms = 20000, .ready_fd = -1 };
		pids[j] = mp_spawn(consumer_main, &ca[j]);
	}
	pids[NCONS] = mp_spawn(threads_main, &ta);
	mp_wait_ok(pids, NCONS + 1, 25000, "consumers (0, 1) and the producer process");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_one_partition_3x2, mp_setup, mp_teardown),
		cmocka_unit_test_setup_teardown(test_keyed_4_partitions, mp_setup, mp_teardown),
		cmocka_unit_test_setup_teardown(test_one_partition_backpressure, mp_setup, mp_teardown),
		cmocka_unit_test_setup_teardown(test_producer_threads, mp_setup, mp_teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
