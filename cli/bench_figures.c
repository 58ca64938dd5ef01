/*
 * bench_figures.c - what each figure of `shmbus bench` measures.
 *
 * Owns the figure table (names, metrics and targets) and, for each
 * figure, its set-up (the topics and the run's parameters, and the line
 * describing them) and one run: the worker function both forked
 * processes execute and what the parent makes of their samples.
 *   pingpong, blocking  round trips through two topics, alternating in
 *                       blocks with the bare floor (two shared words, or
 *                       a bare futex)
 *   send, batch, large  one producer -> one consumer, records/s or GB/s
 * Every record carries its sequence number in its first 8 bytes and
 * consumers check it, so no figure counts records that were lost.
 */
#include "bench.h"

#include <errno.h>
#include <linux/futex.h>
#include <math.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define VALUE_SMALL    64
#define VALUE_LARGE    (1u << 20)
#define BATCH          64
#define POLL_MAX       256
#define RING_SMALL     SHMBUS_DEFAULT_CAPACITY
#define RING_LARGE     (64ULL << 20)

/* ------------------------------------------------------------------ */
/* Records                                                             */

/* The record carries sequence number `want` in its first 8 bytes. */
static int check_seq(struct bench *b, int role, const struct shmbus_message *m,
		     const void *value, uint64_t want)
{
	uint64_t seq;

	if (m->value_len != b->cur.value_len)
		return report(b, role, -EBADMSG, "record %llu has %zu value bytes, not %zu",
			      (unsigned long long)m->offset, m->value_len, b->cur.value_len);
	memcpy(&seq, value, sizeof seq);
	if (seq != want)
		return report(b, role, -EBADMSG, "expected record %llu, got %llu: lost or reordered",
			      (unsigned long long)want, (unsigned long long)seq);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Round trips.  Worker 0 sends on topic[0] and reads topic[1]; worker  */
/* 1 echoes.  Blocks of bus round trips alternate with blocks of bare   */
/* ones between the same two processes, so both meet the same machine   */
/* state (the idle and wake-up paths of a VM adapt as they are used).   */

#define TRIP_BLOCK 1000

static int receive_one(struct bench *b, int role, shmbus_consumer *c, struct shmbus_message *m)
{
	unsigned spins = 0;
	int n;

	while ((n = shmbus_consumer_poll(c, m, 1, b->cur.blocking ? 100 : 0)) != 1) {
		if (n < 0)
			return report(b, role, n, "poll %s: %s", b->topic[!role], shmbus_errmsg());
		if (b->cur.blocking ? mono_ns() > b->deadline_ns : !idle(b, &spins))
			return report(b, role, -ETIMEDOUT, "no record on %s in time", b->topic[!role]);
	}
	return 0;
}

/* Bus round trips [from, from + n); worker 0 times each into out[]. */
static int bus_trips(struct bench *b, int role, shmbus_producer *p, shmbus_consumer *c,
		     uint64_t from, uint64_t n, uint64_t *out)
{
	uint8_t value[VALUE_SMALL] = { 0 };
	struct shmbus_record rec = { .value = value, .value_len = sizeof value };
	struct shmbus_message m;

	for (uint64_t seq = from; seq < from + n; seq++) {
		uint64_t t0 = ticks(b), t1;
		int rc = 0;

		if (role == 0) {
			memcpy(value, &seq, sizeof seq);
			rc = shmbus_producer_send(p, 0, &rec, NULL);
		}
		if (rc >= 0)
			rc = receive_one(b, role, c, &m);
		t1 = ticks(b);
		if (rc == 0 && !(rc = check_seq(b, role, &m, m.value, seq)) && role == 1) {
			rec = (struct shmbus_record){ .value = m.value, .value_len = m.value_len };
			rc = shmbus_producer_send(p, 0, &rec, NULL);
		}
		if (rc < 0)
			return b->sh->rep[role].msg[0] ? rc :
			       report(b, role, rc, "send to %s: %s", b->topic[role], shmbus_errmsg());
		if (out)
			out[seq - from] = t1 - t0;
	}
	return 0;
}

/* The bare round trip: a counter bounced through two words on separate
 * cache lines, spinning, or (blocking) sleeping in FUTEX_WAIT and woken
 * by FUTEX_WAKE on a shared (not private) futex, as the bus does. */
static long futex(uint32_t *word, int op, uint32_t val, const struct timespec *timeout)
{
	return syscall(SYS_futex, word, op, val, timeout, NULL, 0);
}

static int bare_await(struct bench *b, int role, uint32_t *word, uint32_t want)
{
	struct timespec ts = { .tv_sec = 1 };
	unsigned spins = 0;
	uint32_t v;

	while ((v = __atomic_load_n(word, __ATOMIC_ACQUIRE)) != want) {
		if (b->cur.blocking)
			futex(word, FUTEX_WAIT, v, &ts);
		if (b->cur.blocking ? mono_ns() > b->deadline_ns : !idle(b, &spins))
			return report(b, role, -ETIMEDOUT, "bare ping-pong stalled at %u", v);
	}
	return 0;
}

static void bare_post(const struct bench *b, uint32_t *word, uint32_t v)
{
	__atomic_store_n(word, v, __ATOMIC_RELEASE);
	if (b->cur.blocking)
		futex(word, FUTEX_WAKE, 1, NULL);
}

/* Bare round trips [from, from + n); worker 0 times each into out[]. */
static int bare_trips(struct bench *b, int role, uint64_t from, uint64_t n, uint64_t *out)
{
	uint32_t *ping = &b->sh->fping, *pong = &b->sh->fpong;
	int rc = 0;

	for (uint64_t i = from + 1; !rc && i <= from + n; i++) {
		uint64_t t0 = ticks(b), t1;

		if (role == 0) {
			bare_post(b, ping, (uint32_t)i);
			rc = bare_await(b, 0, pong, (uint32_t)i);
		} else {
			rc = bare_await(b, 1, ping, (uint32_t)i);
			bare_post(b, pong, (uint32_t)i);
		}
		t1 = ticks(b);
		if (out)
			out[i - 1 - from] = t1 - t0;
	}
	return rc;
}

/* Warm both up, then alternate blocks: bus samples go to samples[0,
 * count), bare ones to samples[count, 2 count). */
static int trips(struct bench *b, int role, shmbus_producer *p, shmbus_consumer *c)
{
	uint64_t warm = b->cur.warm, count = b->cur.count, *s = b->sh->samples;
	int rc = bus_trips(b, role, p, c, 0, warm, NULL);

	if (!rc)
		rc = bare_trips(b, role, 0, warm, NULL);
	for (uint64_t done = 0; !rc && done < count; done += TRIP_BLOCK) {
		uint64_t n = count - done < TRIP_BLOCK ? count - done : TRIP_BLOCK;

		rc = bus_trips(b, role, p, c, warm + done, n, role ? NULL : s + done);
		if (!rc)
			rc = bare_trips(b, role, warm + done, n, role ? NULL : s + count + done);
	}
	return rc;
}

static int trip_worker(struct bench *b, shmbus *bus, int role)
{
	shmbus_producer *p = NULL;
	shmbus_consumer *c = NULL;
	int rc = new_consumer(b, bus, role, b->topic[!role], &c);

	if (!rc)
		rc = new_producer(b, bus, role, b->topic[role], &p);
	if (!rc)
		rc = rendezvous(b, role);
	if (!rc)
		rc = trips(b, role, p, c);
	shmbus_producer_free(p);
	shmbus_consumer_free(c);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Throughput: worker 0 produces to topic[0], worker 1 consumes it      */

/* Send records [from, from + n): their sequence numbers go in each
 * value's first 8 bytes. */
static int produce(struct bench *b, shmbus_producer *p, struct shmbus_record *recs,
		   uint8_t *vals, uint64_t from, uint64_t n)
{
	size_t batch = b->cur.batch, vlen = b->cur.value_len;
	uint64_t seq = from, end = from + n;

	while (seq < end) {
		size_t k = end - seq < batch ? (size_t)(end - seq) : batch;
		int rc;

		for (size_t i = 0; i < k; i++) {
			uint64_t s = seq + i;

			memcpy(vals + i * vlen, &s, sizeof s);
		}
		if (batch == 1) {
			rc = shmbus_producer_send(p, 0, recs, NULL);
			rc = rc < 0 ? rc : 1;
		} else {
			rc = shmbus_producer_send_batch(p, 0, recs, k);
		}
		if (rc <= 0)
			return report(b, 0, rc ? rc : -EIO, "send to %s: %s", b->topic[0],
				      shmbus_errmsg());
		seq += (uint64_t)rc;
	}
	return 0;
}

static int producer_side(struct bench *b, shmbus *bus)
{
	size_t vlen = b->cur.value_len, batch = b->cur.batch;
	struct shmbus_record *recs = calloc(batch, sizeof *recs);
	uint8_t *vals = malloc(batch * vlen);
	shmbus_producer *p = NULL;
	int rc = recs && vals ? 0 : report(b, 0, -ENOMEM, "out of memory");

	if (!rc) {
		memset(vals, 0xa5, batch * vlen); /* fault the pages in now */
		for (size_t i = 0; i < batch; i++)
			recs[i] = (struct shmbus_record){ .value = vals + i * vlen, .value_len = vlen };
		rc = new_producer(b, bus, 0, b->topic[0], &p);
	}
	if (!rc)
		rc = rendezvous(b, 0);
	if (!rc)
		rc = produce(b, p, recs, vals, 0, b->cur.warm);
	if (!rc)
		rc = wait_flag(b, 0, &b->sh->warm_done, 1);
	if (!rc) {
		__atomic_store_n(&b->sh->t_start, mono_ns(), __ATOMIC_RELEASE);
		rc = produce(b, p, recs, vals, b->cur.warm, b->cur.count);
	}
	shmbus_producer_free(p);
	free(recs);
	free(vals);
	return rc;
}

/* Read records [from, from + n), checking each; with `copy`, copy each
 * value out first and check the copy. */
static int consume(struct bench *b, shmbus_consumer *c, struct shmbus_message *msgs,
		   uint8_t *copy, uint64_t from, uint64_t n)
{
	uint64_t want = from, end = from + n;
	unsigned spins = 0;

	while (want < end) {
		size_t max = end - want < b->cur.poll_max ? (size_t)(end - want) : b->cur.poll_max;
		int got = shmbus_consumer_poll(c, msgs, max, b->cur.tight ? 0 : 100);

		if (got < 0)
			return report(b, 1, got, "poll %s: %s", b->topic[0], shmbus_errmsg());
		if (got == 0 && (b->cur.tight ? !idle(b, &spins) : mono_ns() > b->deadline_ns))
			return report(b, 1, -ETIMEDOUT, "records stopped coming at %llu of %llu",
				      (unsigned long long)(want - from), (unsigned long long)n);
		for (int i = 0; i < got; i++, want++) {
			const void *v = msgs[i].value;

			if (copy) {
				memcpy(copy, v, msgs[i].value_len);
				v = copy;
			}
			if (check_seq(b, 1, &msgs[i], v, want))
				return -EBADMSG;
		}
	}
	return 0;
}

static int consumer_side(struct bench *b, shmbus *bus)
{
	struct shmbus_message *msgs = calloc(b->cur.poll_max, sizeof *msgs);
	uint8_t *copy = b->cur.value_len > VALUE_SMALL ? malloc(b->cur.value_len) : NULL;
	shmbus_consumer *c = NULL;
	int rc = msgs && (copy || b->cur.value_len <= VALUE_SMALL) ? 0 :
		 report(b, 1, -ENOMEM, "out of memory");

	if (copy)
		memset(copy, 0, b->cur.value_len);
	if (!rc)
		rc = new_consumer(b, bus, 1, b->topic[0], &c);
	if (!rc)
		rc = rendezvous(b, 1);
	if (!rc)
		rc = consume(b, c, msgs, copy, 0, b->cur.warm);
	if (!rc) {
		__atomic_store_n(&b->sh->warm_done, 1, __ATOMIC_RELEASE);
		rc = consume(b, c, msgs, copy, b->cur.warm, b->cur.count);
		__atomic_store_n(&b->sh->t_end, mono_ns(), __ATOMIC_RELEASE);
	}
	shmbus_consumer_free(c);
	free(msgs);
	free(copy);
	return rc;
}

static int tput_worker(struct bench *b, shmbus *bus, int role)
{
	return role ? consumer_side(b, bus) : producer_side(b, bus);
}

/* ------------------------------------------------------------------ */
/* Figures                                                             */

static int make_topic(struct bench *b, int i, const char *name, uint64_t cap,
		      enum shmbus_policy policy)
{
	SHMBUS_OPTS(shmbus_topic_opts, to, .capacity = cap, .policy = policy);
	int rc;

	snprintf(b->topic[i], sizeof b->topic[i], "bench-%d-%s", (int)getpid(), name);
	shmbus_topic_delete(b->bus, b->topic[i]); /* left by a killed bench */
	rc = shmbus_topic_create(b->bus, b->topic[i], &to);
	if (rc) {
		fprintf(stderr, "shmbus bench: cannot create topic %s in %s: %s\n", b->topic[i],
			b->root, shmbus_errmsg());
		b->topic[i][0] = 0;
	}
	return rc;
}

void drop_topics(struct bench *b)
{
	for (int i = 0; i < 2; i++) {
		if (b->topic[i][0])
			shmbus_topic_delete(b->bus, b->topic[i]);
		b->topic[i][0] = 0;
	}
}

static int pp_setup(struct bench *b, char *desc, size_t len)
{
	int rc = make_topic(b, 0, "ping", RING_SMALL, SHMBUS_POLICY_OVERWRITE);

	b->cur = (struct params){ .warm = b->sz->pp_warm, .count = b->sz->pp_count,
				  .value_len = VALUE_SMALL };
	snprintf(desc, len, "64 B values, two 16 MiB rings (overwrite), poll timeout 0; %llu "
		 "warm-up + %llu timed round trips a run, in blocks of %d alternating with the "
		 "bare round trip (two processes spinning on two shared words)",
		 (unsigned long long)b->cur.warm, (unsigned long long)b->cur.count, TRIP_BLOCK);
	return rc ? rc : make_topic(b, 1, "pong", RING_SMALL, SHMBUS_POLICY_OVERWRITE);
}

/* The bus's round trip percentiles, and the bare p50. */
static int pp_once(struct bench *b, double *out)
{
	double bare[5];
	int rc = run_pair(b, trip_worker);

	if (rc)
		return rc;
	latencies(b, 0, out);
	latencies(b, b->cur.count, bare);
	out[5] = bare[0];
	return 0;
}

static int tput_setup(struct bench *b, char *desc, size_t len, size_t batch)
{
	bool bat = batch > 1;

	b->cur = (struct params){ .warm = bat ? b->sz->batch_warm : b->sz->send_warm,
				  .count = bat ? b->sz->batch_count : b->sz->send_count,
				  .value_len = VALUE_SMALL, .batch = batch, .poll_max = POLL_MAX,
				  .tight = b->tight };
	snprintf(desc, len, "64 B values, 16 MiB ring (backpressure), %s, zero-copy polls of "
		 "up to %d%s; %llu warm-up + %llu timed records a run",
		 bat ? "send_batch of 64" : "one send a record", POLL_MAX,
		 b->tight ? " in a tight loop (timeout 0)" : "", (unsigned long long)b->cur.warm,
		 (unsigned long long)b->cur.count);
	return make_topic(b, 0, "data", RING_SMALL, SHMBUS_POLICY_BACKPRESSURE);
}

static int send_setup(struct bench *b, char *desc, size_t len)
{
	return tput_setup(b, desc, len, 1);
}

static int batch_setup(struct bench *b, char *desc, size_t len)
{
	return tput_setup(b, desc, len, BATCH);
}

static int large_setup(struct bench *b, char *desc, size_t len)
{
	b->cur = (struct params){ .warm = b->sz->large_warm, .count = b->sz->large_count,
				  .value_len = VALUE_LARGE, .batch = 1, .poll_max = 4,
				  .tight = b->tight };
	snprintf(desc, len, "1 MiB values, 64 MiB ring (backpressure), consumer copies each "
		 "value out%s; %llu warm-up + %llu timed records a run; GB = 1e9 bytes of values",
		 b->tight ? ", polls in a tight loop" : "", (unsigned long long)b->cur.warm,
		 (unsigned long long)b->cur.count);
	return make_topic(b, 0, "large", RING_LARGE, SHMBUS_POLICY_BACKPRESSURE);
}

/* Records/s (in millions) or value bytes/s (in GB) of one run. */
static int tput_once(struct bench *b, double *out)
{
	int rc = run_pair(b, tput_worker);
	double secs;

	if (rc)
		return rc;
	secs = (double)(b->sh->t_end - b->sh->t_start) / 1e9;
	if (b->cur.value_len > VALUE_SMALL)
		out[0] = (double)b->cur.count * (double)b->cur.value_len / secs / 1e9;
	else
		out[0] = (double)b->cur.count / secs / 1e6;
	return 0;
}

static int blk_setup(struct bench *b, char *desc, size_t len)
{
	int rc = make_topic(b, 0, "ping", RING_SMALL, SHMBUS_POLICY_OVERWRITE);

	b->cur = (struct params){ .warm = b->sz->blk_warm, .count = b->sz->blk_count,
				  .value_len = VALUE_SMALL, .blocking = true };
	snprintf(desc, len, "64 B values, two 16 MiB rings, consumers with spin_us < 0 "
		 "(futex sleep); %llu warm-up + %llu timed round trips a run, in blocks of %d "
		 "alternating with a bare FUTEX_WAIT/FUTEX_WAKE ping-pong",
		 (unsigned long long)b->cur.warm,
		 (unsigned long long)b->cur.count, TRIP_BLOCK);
	return rc ? rc : make_topic(b, 1, "pong", RING_SMALL, SHMBUS_POLICY_OVERWRITE);
}

/* Sleeping round trips: the bus's and the bare futex's p50 and p99. */
static int blk_once(struct bench *b, double *out)
{
	double bus[5], bare[5];
	int rc = run_pair(b, trip_worker);

	if (rc)
		return rc;
	latencies(b, 0, bus);
	latencies(b, b->cur.count, bare);
	out[0] = bus[0];
	out[1] = bus[2];
	out[2] = bare[0];
	out[3] = bare[2];
	out[4] = bus[0] / bare[0];
	return 0;
}

const struct figure_def figure_defs[NFIGS] = {
	{ "pingpong", "round trip, spinning consumers", pp_setup, pp_once,
	  { { "p50", "ns", 0, 650, AT_MOST }, { "p90", "ns", 0, NAN, NONE },
	    { "p99", "ns", 0, 1000, AT_MOST }, { "p99.9", "ns", 0, NAN, NONE },
	    { "max", "ns", 0, NAN, NONE }, { "bare p50", "ns", 0, NAN, NONE } } },
	{ "send", "1 producer -> 1 consumer, shmbus_producer_send", send_setup, tput_once,
	  { { "rate", "M records/s", 2, 14, AT_LEAST } } },
	{ "batch", "1 producer -> 1 consumer, shmbus_producer_send_batch", batch_setup, tput_once,
	  { { "rate", "M records/s", 2, 40, AT_LEAST } } },
	{ "large", "1 MiB values end to end", large_setup, tput_once,
	  { { "rate", "GB/s", 2, 10, AT_LEAST } } },
	{ "blocking", "round trip, sleeping consumers vs bare futex", blk_setup, blk_once,
	  { { "bus p50", "ns", 0, NAN, NONE }, { "bus p99", "ns", 0, NAN, NONE },
	    { "bare p50", "ns", 0, NAN, NONE }, { "bare p99", "ns", 0, NAN, NONE },
	    { "ratio p50", "x", 3, 1.1, AT_MOST } } },
};
