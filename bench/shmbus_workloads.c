/*
 * shmbus_workloads.c - shmbus itself, measured the way its peers and the
 * limits are: forked processes pinned to the two CPUs, each opening the
 * bus on a temporary root in /dev/shm or --tmpdir (removed at the end;
 * bench/run also removes its --tmpdir, should this program be killed).
 *
 *   pingpong.spin    round trip of a 64-byte record through two topics,
 *                    both consumers polling with timeout 0
 *   pingpong.block   the same with consumers that sleep in the futex
 *                    (spin_us < 0)
 *   tput.<size>.<send|batch>.<copy|zc>
 *                    one producer -> one consumer at 64 B, 1 KiB, 64 KiB
 *                    and 1 MiB values; shmbus_producer_send of one record
 *                    or send_batch; the consumer copying records out
 *                    (opts.copy) or reading them in place (zero-copy: it
 *                    reads the sequence number in the value's first 8
 *                    bytes, the bytes a consumer that needs no copy
 *                    touches)
 * and, in shmbus_scale.c, producers sharing a partition, readers of one
 * writer, seeks, and the cost of partitions.
 *
 * Round trips of the bus alternate in blocks of 1000 with bare ones (a
 * cache line, or a futex) between the same two processes, so the
 * bus-to-floor ratio of each run meets one machine state: in this VM the
 * distance between the two vCPUs changes over minutes.  Throughput
 * topics use the backpressure policy with blocking producers, so a
 * slower consumer slows the producer instead of losing records; every
 * record's sequence number is checked.  The consumer times the transfer:
 * from the last warm-up record to the last record.
 */
#include "shmbus_workloads.h"

#include <errno.h>
#include <ftw.h>
#include <linux/futex.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define TRIP_BLOCK 1000
#define RTT_VALUE  64

struct wshared *W;
char root[PATH_MAX];
shmbus *bus;

static char topic[2][96];
static const char *tmpdir = "/dev/shm";

static int own_opt(int argc, char **argv, int *i)
{
	if (strcmp(argv[*i], "--tmpdir") || *i + 1 >= argc)
		return 0;
	tmpdir = argv[++*i];
	return 1;
}

/* ------------------------------------------------------------------ */
/* Root, topics, workers                                               */

int make_topic(char *name_out, size_t len, const char *name, uint32_t partitions,
	       uint64_t capacity, enum shmbus_policy policy)
{
	SHMBUS_OPTS(shmbus_topic_opts, to, .partitions = partitions, .capacity = capacity,
		    .policy = policy);
	int rc;

	snprintf(name_out, len, "bench-%d-%s", (int)getpid(), name);
	rc = shmbus_topic_create(bus, name_out, &to);
	if (rc) {
		name_out[0] = 0;
		return b_fail("create topic %s: %s", name, shmbus_errmsg());
	}
	return 0;
}

void drop_topic(char *name)
{
	if (name[0])
		shmbus_topic_delete(bus, name);
	name[0] = 0;
}

int worker_bus(shmbus **ret)
{
	SHMBUS_OPTS(shmbus_open_opts, oo, .root = root, .no_create = true);

	return shmbus_open(&oo, ret) ? b_fail("open %s: %s", root, shmbus_errmsg()) : 0;
}

int rendezvous(uint32_t n)
{
	unsigned spins = 0;

	__atomic_add_fetch(&W->ready, 1, __ATOMIC_SEQ_CST);
	while (__atomic_load_n(&W->ready, __ATOMIC_ACQUIRE) < n)
		if (!b_spin(&spins))
			return b_fail("the other workers never got ready");
	return 0;
}

void put_seq(void *value, uint64_t seq)
{
	memcpy(value, &seq, sizeof seq);
}

int check_seq(const struct shmbus_message *m, size_t len, uint64_t want)
{
	uint64_t seq;

	if (m->value_len != len)
		return b_fail("record %llu has %zu value bytes, not %zu",
			      (unsigned long long)m->offset, m->value_len, len);
	memcpy(&seq, m->value, sizeof seq);
	if (seq != want)
		return b_fail("expected record %llu, got %llu: lost or reordered",
			      (unsigned long long)want, (unsigned long long)seq);
	return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	if (remove(path))
		fprintf(stderr, "shmbus_workloads: cannot remove %s: %s\n", path, strerror(errno));
	return 0;
}

/* ------------------------------------------------------------------ */
/* Round trips                                                         */

struct trip {
	bool blocking;
	uint64_t warm, count;
};

static long futex(uint32_t *word, int op, uint32_t val, const struct timespec *timeout)
{
	return syscall(SYS_futex, word, op, val, timeout, NULL, 0);
}

static int bare_await(const struct trip *t, uint32_t *word, uint32_t want)
{
	struct timespec ts = { .tv_sec = 1 };
	unsigned spins = 0;
	uint32_t v;

	while ((v = __atomic_load_n(word, __ATOMIC_ACQUIRE)) != want) {
		if (t->blocking)
			futex(word, FUTEX_WAIT, v, &ts);
		if (t->blocking ? mono_ns() > B.deadline_ns : !b_spin(&spins))
			return b_fail("bare round trip stalled at %u", v);
	}
	return 0;
}

static void bare_post(const struct trip *t, uint32_t *word, uint32_t v)
{
	__atomic_store_n(word, v, __ATOMIC_RELEASE);
	if (t->blocking)
		futex(word, FUTEX_WAKE, 1, NULL);
}

/* Bare round trips [from, from + n); worker 0 times them into out. */
static int bare_trips(const struct trip *t, int role, uint64_t from, uint64_t n, uint64_t *out)
{
	for (uint64_t i = from + 1; i <= from + n; i++) {
		uint64_t t0 = b_ticks();

		if (role == 0) {
			bare_post(t, &W->ping, (uint32_t)i);
			if (bare_await(t, &W->pong, (uint32_t)i))
				return -1;
		} else {
			if (bare_await(t, &W->ping, (uint32_t)i))
				return -1;
			bare_post(t, &W->pong, (uint32_t)i);
		}
		if (out)
			out[i - 1 - from] = b_ticks() - t0;
	}
	return 0;
}

static int receive_one(const struct trip *t, shmbus_consumer *c, struct shmbus_message *m)
{
	unsigned spins = 0;
	int n;

	while ((n = shmbus_consumer_poll(c, m, 1, t->blocking ? 100 : 0)) != 1) {
		if (n < 0)
			return b_fail("poll: %s", shmbus_errmsg());
		if (t->blocking ? mono_ns() > B.deadline_ns : !b_spin(&spins))
			return b_fail("no record came back in time");
	}
	return 0;
}

/* Bus round trips [from, from + n): worker 0 sends on topic 0 and
 * reads topic 1, worker 1 echoes; worker 0 times them into out. */
static int bus_trips(const struct trip *t, int role, shmbus_producer *p, shmbus_consumer *c,
		     uint64_t from, uint64_t n, uint64_t *out)
{
	uint8_t value[RTT_VALUE] = { 0 };
	struct shmbus_record rec = { .value = value, .value_len = sizeof value };
	struct shmbus_message m;

	for (uint64_t seq = from; seq < from + n; seq++) {
		uint64_t t0 = b_ticks(), t1;
		int rc = 0;

		if (role == 0) {
			put_seq(value, seq);
			rc = shmbus_producer_send(p, 0, &rec, NULL);
		}
		if (rc >= 0 && (rc = receive_one(t, c, &m)) == 0)
			rc = check_seq(&m, RTT_VALUE, seq);
		t1 = b_ticks();
		if (rc == 0 && role == 1) {
			rec = (struct shmbus_record){ .value = m.value, .value_len = m.value_len };
			rc = shmbus_producer_send(p, 0, &rec, NULL);
		}
		if (rc < 0)
			return B.why[0] ? -1 : b_fail("send: %s", shmbus_errmsg());
		if (out)
			out[seq - from] = t1 - t0;
	}
	return 0;
}

static int trips(const struct trip *t, int role, shmbus_producer *p, shmbus_consumer *c)
{
	uint64_t *s = W->samples;
	int rc = bus_trips(t, role, p, c, 0, t->warm, NULL);

	if (!rc)
		rc = bare_trips(t, role, 0, t->warm, NULL);
	for (uint64_t done = 0; !rc && done < t->count; done += TRIP_BLOCK) {
		uint64_t n = t->count - done < TRIP_BLOCK ? t->count - done : TRIP_BLOCK;

		rc = bus_trips(t, role, p, c, t->warm + done, n, role ? NULL : s + done);
		if (!rc)
			rc = bare_trips(t, role, t->warm + done, n, role ? NULL : s + t->count + done);
	}
	return rc;
}

static int trip_worker(int role, void *arg)
{
	const struct trip *t = arg;
	SHMBUS_OPTS(shmbus_producer_opts, po, .block = true);
	SHMBUS_OPTS(shmbus_consumer_opts, co, .name = "bench", .reset = SHMBUS_RESET_ERROR,
		    .spin_us = t->blocking ? -1 : 0);
	shmbus_producer *p = NULL;
	shmbus_consumer *c = NULL;
	shmbus *wb = NULL;
	int rc = worker_bus(&wb);

	if (!rc && (shmbus_consumer_new(wb, &co, &c) ||
		    shmbus_consumer_assign(c, topic[!role], 0, SHMBUS_OFFSET_END) ||
		    shmbus_producer_new(wb, topic[role], &po, &p)))
		rc = b_fail("producer or consumer: %s", shmbus_errmsg());
	if (!rc)
		rc = rendezvous(2);
	if (!rc)
		rc = trips(t, role, p, c);
	shmbus_producer_free(p);
	shmbus_consumer_free(c);
	shmbus_close(wb);
	return rc;
}

static int run_trips(void *arg, double *out)
{
	static const double q[] = { 0.5, 0.9, 0.99, 0.999 };
	const struct trip *t = arg;
	double bare[4];

	W->ready = W->ping = W->pong = 0;
	if (b_workers(2, B.cpu, trip_worker, arg, 120, W->why))
		return -1;
	b_quantiles(W->samples, t->count, q, 4, out);
	b_quantiles(W->samples + t->count, t->count, q, 4, bare);
	out[4] = bare[0];
	out[5] = bare[2];
	out[6] = out[0] / bare[0];
	return 0;
}

static const struct bmetric m_trip[] = {
	{ "p50", "ns", LOWER }, { "p90", "ns", LOWER }, { "p99", "ns", LOWER },
	{ "p99.9", "ns", LOWER }, { "bare p50", "ns", LOWER }, { "bare p99", "ns", LOWER },
	{ "p50 / bare p50", "x", LOWER },
};

static void trip_case(bool blocking)
{
	struct trip t = { .blocking = blocking, .count = blocking ? (B.quick ? 5000 : 20000) :
							       (B.quick ? 50000 : 200000) };
	char note[500];

	t.warm = t.count / 10;
	if (make_topic(topic[0], sizeof topic[0], "ping", 1, SHMBUS_DEFAULT_CAPACITY,
		       SHMBUS_POLICY_OVERWRITE) ||
	    make_topic(topic[1], sizeof topic[1], "pong", 1, SHMBUS_DEFAULT_CAPACITY,
		       SHMBUS_POLICY_OVERWRITE)) {
		b_skip(blocking ? "pingpong.block" : "pingpong.spin", "round trip", B.why);
		drop_topic(topic[0]);
		return;
	}
	snprintf(note, sizeof note, "64-byte record to a process on CPU %d and back through two "
		 "16 MiB topics; consumers %s; %llu warm-up + %llu timed round trips a run, in "
		 "blocks of %d alternating with the bare %s between the same processes",
		 B.cpu[1], blocking ? "sleep in the futex (spin_us < 0), poll timeout 100 ms" :
		 "poll with timeout 0 in a loop", (unsigned long long)t.warm,
		 (unsigned long long)t.count, TRIP_BLOCK,
		 blocking ? "FUTEX_WAIT/FUTEX_WAKE round trip" : "cache-line round trip");
	if (blocking)
		b_case("pingpong.block", "round trip, blocking consumers", note, m_trip, 7,
		       run_trips, &t);
	else
		b_case("pingpong.spin", "round trip, spinning consumers", note, m_trip, 7,
		       run_trips, &t);
	drop_topic(topic[0]);
	drop_topic(topic[1]);
}

/* ------------------------------------------------------------------ */
/* One-way throughput                                                  */

struct tput {
	size_t size, batch, poll_max;
	bool copy;
	uint64_t warm, count;
};

static int produce(const struct tput *t, shmbus_producer *p)
{
	struct shmbus_record *recs = calloc(t->batch, sizeof *recs);
	uint8_t *vals = malloc(t->batch * t->size);
	uint64_t n = t->warm + t->count;
	int rc = recs && vals ? 0 : b_fail("out of memory");

	if (vals)
		memset(vals, 0xa5, t->batch * t->size); /* fault them in now */
	for (size_t i = 0; !rc && i < t->batch; i++)
		recs[i] = (struct shmbus_record){ .value = vals + i * t->size, .value_len = t->size };
	for (uint64_t seq = 0; !rc && seq < n;) {
		size_t k = n - seq < t->batch ? (size_t)(n - seq) : t->batch;
		int sent;

		for (size_t i = 0; i < k; i++)
			put_seq(vals + i * t->size, seq + i);
		sent = t->batch == 1 ? shmbus_producer_send(p, 0, recs, NULL) :
				       shmbus_producer_send_batch(p, 0, recs, k);
		if (sent < 0 || (t->batch > 1 && sent == 0))
			rc = b_fail("send: %s", shmbus_errmsg());
		seq += t->batch == 1 ? 1 : (uint64_t)sent;
	}
	free(recs);
	free(vals);
	return rc;
}

static int consume(const struct tput *t, shmbus_consumer *c)
{
	struct shmbus_message *msgs = calloc(t->poll_max, sizeof *msgs);
	uint64_t want = 0, n = t->warm + t->count;
	int rc = msgs ? 0 : b_fail("out of memory");

	while (!rc && want < n) {
		size_t max = n - want < t->poll_max ? (size_t)(n - want) : t->poll_max;
		int got = shmbus_consumer_poll(c, msgs, max, 100);

		if (got < 0)
			rc = b_fail("poll: %s", shmbus_errmsg());
		else if (got == 0 && mono_ns() > B.deadline_ns)
			rc = b_fail("records stopped at %llu of %llu", (unsigned long long)want,
				    (unsigned long long)n);
		for (int i = 0; !rc && i < got; i++, want++) {
			rc = check_seq(&msgs[i], t->size, want);
			if (want + 1 == t->warm)
				W->t_start[0] = mono_ns();
		}
	}
	W->t_end[0] = mono_ns();
	free(msgs);
	return rc;
}

static int tput_worker(int role, void *arg)
{
	const struct tput *t = arg;
	SHMBUS_OPTS(shmbus_producer_opts, po, .block = true);
	SHMBUS_OPTS(shmbus_consumer_opts, co, .name = "bench", .reset = SHMBUS_RESET_ERROR,
		    .copy = t->copy);
	shmbus_producer *p = NULL;
	shmbus_consumer *c = NULL;
	shmbus *wb = NULL;
	int rc = worker_bus(&wb);

	if (!rc && role == 0 && shmbus_producer_new(wb, topic[0], &po, &p))
		rc = b_fail("producer: %s", shmbus_errmsg());
	if (!rc && role == 1 && (shmbus_consumer_new(wb, &co, &c) ||
				 shmbus_consumer_assign(c, topic[0], 0, SHMBUS_OFFSET_END)))
		rc = b_fail("consumer: %s", shmbus_errmsg());
	if (!rc)
		rc = rendezvous(2);
	if (!rc)
		rc = role ? consume(t, c) : produce(t, p);
	shmbus_producer_free(p);
	shmbus_consumer_free(c);
	shmbus_close(wb);
	return rc;
}

static int run_tput(void *arg, double *out)
{
	const struct tput *t = arg;
	double secs;

	W->ready = 0;
	if (b_workers(2, B.cpu, tput_worker, arg, 120, W->why))
		return -1;
	secs = (double)(W->t_end[0] - W->t_start[0]) / 1e9;
	out[0] = (double)t->count / secs / 1e6;
	out[1] = (double)t->count * (double)t->size / secs / 1e9;
	return 0;
}

static const struct bmetric m_tput[] = { { "rate", "M msg/s", HIGHER },
					 { "bw", "GB/s", HIGHER } };

struct size_def {
	size_t size;
	const char *name;
	uint64_t ring;
	size_t batch, poll_max;
	uint64_t send_count, batch_count; /* full run; --quick takes a quarter */
};

static const struct size_def sizes[] = {
	{ 64, "64B", 16ULL << 20, 64, 256, 3000000, 10000000 },
	{ 1024, "1KiB", 16ULL << 20, 64, 256, 2000000, 3000000 },
	{ 65536, "64KiB", 64ULL << 20, 16, 16, 60000, 60000 },
	{ 1 << 20, "1MiB", 64ULL << 20, 4, 4, 4000, 4000 },
};

static void tput_case(const struct size_def *s, bool batch, bool copy)
{
	struct tput t = { .size = s->size, .batch = batch ? s->batch : 1,
			  .poll_max = s->poll_max, .copy = copy,
			  .count = (batch ? s->batch_count : s->send_count) / (B.quick ? 4 : 1) };
	char id[64], title[128], note[500];

	t.warm = t.count / 10;
	snprintf(id, sizeof id, "tput.%s.%s.%s", s->name, batch ? "batch" : "send",
		 copy ? "copy" : "zc");
	snprintf(title, sizeof title, "%s records, %s, %s", s->name, batch ? "send_batch" : "send",
		 copy ? "copy-out" : "zero-copy");
	if (!b_selected(id))
		return;
	if (make_topic(topic[0], sizeof topic[0], "tput", 1, s->ring,
		       SHMBUS_POLICY_BACKPRESSURE)) {
		b_skip(id, title, B.why);
		return;
	}
	snprintf(note, sizeof note, "%zu-byte values, %llu MiB ring (backpressure, blocking "
		 "producer) CPU %d -> CPU %d; %s; consumer polls up to %zu, %s; %llu warm-up + "
		 "%llu timed records a run; GB = 1e9 value bytes", s->size,
		 (unsigned long long)(s->ring >> 20), B.cpu[0], B.cpu[1],
		 batch ? "send_batch" : "one send per record", s->poll_max,
		 copy ? "copying records out (opts.copy)" : "zero-copy views (reads the first 8 "
		 "bytes of each value)", (unsigned long long)t.warm, (unsigned long long)t.count);
	if (batch)
		snprintf(note + strlen(note), sizeof note - strlen(note), "; batches of %zu",
			 t.batch);
	b_case(id, title, note, m_tput, 2, run_tput, &t);
	drop_topic(topic[0]);
}

/* ------------------------------------------------------------------ */

static int open_root(void)
{
	SHMBUS_OPTS(shmbus_open_opts, oo, .root = root);

	snprintf(root, PATH_MAX, "%s/shmbus-bench-XXXXXX", tmpdir);
	if (!mkdtemp(root)) {
		fprintf(stderr, "shmbus_workloads: cannot make a root in %s: %s\n", tmpdir,
			strerror(errno));
		return -1;
	}
	if (shmbus_open(&oo, &bus)) {
		fprintf(stderr, "shmbus_workloads: cannot open %s: %s\n", root, shmbus_errmsg());
		nftw(root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	size_t samples;

	b_init("shmbus_workloads", argc, argv, own_opt,
	       " [--tmpdir DIR (where the temporary root goes; default /dev/shm)]");
	samples = 2 * (B.quick ? 50000 : 200000);
	W = b_shared(sizeof *W + samples * sizeof(uint64_t));
	if (!W || open_root())
		return 1;
	trip_case(false);
	trip_case(true);
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
		for (int k = 0; k < 4; k++)
			tput_case(&sizes[i], k & 1, k & 2);
	scale_cases();
	shmbus_close(bus);
	nftw(root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	return b_exit();
}
