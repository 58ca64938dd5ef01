/*
 * workloads.c - the shmbus workloads of `shmbus bench` and `make bench`
 * (see workloads.h for what each measures).
 *
 * Owns the bus root of a bench (given, or a temporary one it removes),
 * the mapping the workers share with the parent, the topics of a
 * workload, and the worker functions: the round trip (bus and bare,
 * alternating in blocks), the throughput producer and consumer.  The
 * workers open their own handle on the root after fork, as separate
 * applications would.
 */
#include "workloads.h"
#include "bare.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define TRIP_RING (16ULL << 20)

/* ------------------------------------------------------------------ */
/* Root, mapping, topics                                               */

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	if (remove(path))
		fprintf(stderr, "bench: cannot remove %s of the temporary root: %s\n", path,
			strerror(errno));
	return 0;
}

static int map_shared(struct wl *w, uint64_t max_trips)
{
	w->max_trips = max_trips;
	w->sh_len = sizeof *w->sh + 2 * max_trips * sizeof(uint64_t);
	w->sh = mmap(NULL, w->sh_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (w->sh == MAP_FAILED) {
		w->sh = NULL;
		return workers_fail("mmap of %zu shared bytes: %s", w->sh_len, strerror(errno));
	}
	memset(w->sh, 0, w->sh_len); /* fault it in before anything is timed */
	return 0;
}

int wl_open(struct wl *w, const char *root, const char *tmpdir, uint64_t max_trips)
{
	SHMBUS_OPTS(shmbus_open_opts, oo, .root = w->root);

	if (map_shared(w, max_trips))
		return -1;
	if (root) {
		snprintf(w->root, sizeof w->root, "%s", root);
	} else {
		snprintf(w->root, sizeof w->root, "%s/shmbus-bench-XXXXXX", tmpdir);
		if (!mkdtemp(w->root))
			return workers_fail("cannot make a temporary root in %s: %s", tmpdir,
					    strerror(errno));
		w->tmp_root = true;
	}
	if (shmbus_open(&oo, &w->bus))
		return workers_fail("cannot open root %s: %s", w->root, shmbus_errmsg());
	return 0;
}

void wl_close(struct wl *w)
{
	shmbus_close(w->bus); /* NULL is a no-op */
	w->bus = NULL;
	if (w->tmp_root)
		nftw(w->root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	w->tmp_root = false;
	if (w->sh)
		munmap(w->sh, w->sh_len);
	w->sh = NULL;
}

void wl_reset(struct wl *w)
{
	memset(w->sh, 0, offsetof(struct wl_shared, samples));
}

int wl_topic(const struct wl *w, char *name, const char *suffix, uint32_t partitions,
	     uint64_t capacity, enum shmbus_policy policy)
{
	SHMBUS_OPTS(shmbus_topic_opts, to, .partitions = partitions, .capacity = capacity,
		    .policy = policy);
	int rc;

	snprintf(name, WL_TOPIC_LEN, "bench-%d-%s", (int)getpid(), suffix);
	rc = shmbus_topic_create(w->bus, name, &to);
	if (rc == -EEXIST) { /* left by a killed bench of the same pid, in a given root */
		shmbus_topic_delete(w->bus, name);
		rc = shmbus_topic_create(w->bus, name, &to);
	}
	if (rc) {
		workers_fail("cannot create topic %s in %s: %s", name, w->root, shmbus_errmsg());
		name[0] = 0;
		return -1;
	}
	return 0;
}

void wl_drop(const struct wl *w, char *name)
{
	if (name[0])
		shmbus_topic_delete(w->bus, name);
	name[0] = 0;
}

int wl_worker_bus(const struct wl *w, shmbus **ret)
{
	SHMBUS_OPTS(shmbus_open_opts, oo, .root = w->root, .no_create = true);

	if (shmbus_open(&oo, ret))
		return workers_fail("cannot open root %s: %s", w->root, shmbus_errmsg());
	return 0;
}

void wl_put_seq(void *value, uint64_t seq)
{
	memcpy(value, &seq, sizeof seq);
}

int wl_check_seq(const struct shmbus_message *m, size_t len, uint64_t want)
{
	uint64_t seq;

	if (m->value_len != len)
		return workers_fail("record %llu has %zu value bytes, not %zu",
				    (unsigned long long)m->offset, m->value_len, len);
	memcpy(&seq, m->value, sizeof seq);
	if (seq != want)
		return workers_fail("expected record %llu, got %llu: lost or reordered",
				    (unsigned long long)want, (unsigned long long)seq);
	return 0;
}

/* A blocking producer on topic; and a consumer of its partition 0 from
 * the end, a lap being an error (reset "error"), so nothing lost counts. */
static int new_producer(shmbus *bus, const char *topic, int linger_us, shmbus_producer **ret)
{
	/* No block timeout: the library would read the clock on every send
	 * to compute a deadline; a stuck worker is killed by the parent. */
	SHMBUS_OPTS(shmbus_producer_opts, po, .block = true, .linger_us = linger_us);

	if (shmbus_producer_new(bus, topic, &po, ret))
		return workers_fail("producer of %s: %s", topic, shmbus_errmsg());
	return 0;
}

static int new_consumer(shmbus *bus, const char *topic, bool blocking, bool copy,
			shmbus_consumer **ret)
{
	/* spin_us 0 is the library's default spin before sleeping */
	SHMBUS_OPTS(shmbus_consumer_opts, co, .name = "bench", .reset = SHMBUS_RESET_ERROR,
		    .spin_us = blocking ? -1 : 0, .copy = copy);

	if (shmbus_consumer_new(bus, &co, ret))
		return workers_fail("consumer: %s", shmbus_errmsg());
	if (shmbus_consumer_assign(*ret, topic, 0, SHMBUS_OFFSET_END))
		return workers_fail("assign %s: %s", topic, shmbus_errmsg());
	return 0;
}

/* What a worker holds: its own handle on the root, and a consumer
 * and/or a producer. */
struct handles {
	shmbus *bus;
	shmbus_consumer *c;
	shmbus_producer *p;
};

/* Open the root, a consumer of ctopic and a producer of ptopic (each if
 * not NULL), then wait for the other worker: a consumer is assigned
 * before anything it should read is sent.  0 or -1. */
static int handles_open(const struct wl *w, struct handles *h, const char *ctopic,
			const char *ptopic, bool blocking, bool copy, int linger_us)
{
	int rc = wl_worker_bus(w, &h->bus);

	if (!rc && ctopic)
		rc = new_consumer(h->bus, ctopic, blocking, copy, &h->c);
	if (!rc && ptopic)
		rc = new_producer(h->bus, ptopic, linger_us, &h->p);
	return rc ? rc : workers_rendezvous(&w->sh->ready, 2);
}

static void handles_close(struct handles *h)
{
	shmbus_producer_free(h->p);
	shmbus_consumer_free(h->c);
	shmbus_close(h->bus);
}

/* ------------------------------------------------------------------ */
/* Round trips through the bus                                         */

static int receive_one(const struct wl_trip *t, int role, shmbus_consumer *c,
		       struct shmbus_message *m)
{
	unsigned spins = 0;
	int n;

	while ((n = shmbus_consumer_poll(c, m, 1, t->blocking ? 100 : 0)) != 1) {
		if (n < 0)
			return workers_fail("poll %s: %s", t->topic[!role], shmbus_errmsg());
		if (t->blocking ? workers_late() : !workers_spin(&spins))
			return workers_fail("no record on %s in time", t->topic[!role]);
	}
	return 0;
}

/* Bus round trips [from, from + n): worker 0 sends on topic 0 and
 * reads topic 1, worker 1 echoes; worker 0 times each into out[]. */
static int bus_trips(const struct wl_trip *t, int role, shmbus_producer *p, shmbus_consumer *c,
		     uint64_t from, uint64_t n, uint64_t *out)
{
	uint8_t value[WL_TRIP_VALUE] = { 0 };
	struct shmbus_record rec = { .value = value, .value_len = sizeof value };
	struct shmbus_message m;

	for (uint64_t seq = from; seq < from + n; seq++) {
		uint64_t t0 = measure_ticks(), t1;
		int rc = 0;

		if (role == 0) {
			wl_put_seq(value, seq);
			if (shmbus_producer_send(p, 0, &rec, NULL) < 0)
				return workers_fail("send to %s: %s", t->topic[0], shmbus_errmsg());
		}
		rc = receive_one(t, role, c, &m);
		t1 = measure_ticks();
		if (rc || wl_check_seq(&m, WL_TRIP_VALUE, seq))
			return -1;
		if (role == 1) {
			rec = (struct shmbus_record){ .value = m.value, .value_len = m.value_len };
			if (shmbus_producer_send(p, 0, &rec, NULL) < 0)
				return workers_fail("send to %s: %s", t->topic[1], shmbus_errmsg());
		}
		if (out)
			out[seq - from] = t1 - t0;
	}
	return 0;
}

/* Warm both up, then alternate blocks: bus samples go to samples[0,
 * count), bare ones to samples[count, 2 count). */
static int trips(const struct wl_trip *t, int role, shmbus_producer *p, shmbus_consumer *c)
{
	struct wl_shared *sh = t->w->sh;
	uint64_t *s = role ? NULL : sh->samples, warm = t->warm, count = t->count;
	int rc = bus_trips(t, role, p, c, 0, warm, NULL);

	if (!rc)
		rc = bare_trips(&sh->ping, &sh->pong, t->blocking, role, 0, warm, NULL);
	for (uint64_t done = 0; !rc && done < count; done += WL_TRIP_BLOCK) {
		uint64_t n = count - done < WL_TRIP_BLOCK ? count - done : WL_TRIP_BLOCK;

		rc = bus_trips(t, role, p, c, warm + done, n, s ? s + done : NULL);
		if (!rc)
			rc = bare_trips(&sh->ping, &sh->pong, t->blocking, role, warm + done, n,
					   s ? s + count + done : NULL);
	}
	return rc;
}

static int trip_worker(int role, void *arg)
{
	const struct wl_trip *t = arg;
	struct handles h = { 0 };
	int rc = handles_open(t->w, &h, t->topic[!role], t->topic[role], t->blocking, false,
			      t->linger_us);

	if (!rc)
		rc = trips(t, role, h.p, h.c);
	handles_close(&h);
	return rc;
}

int wl_trip_setup(struct wl_trip *t)
{
	if (t->count > t->w->max_trips)
		return workers_fail("%llu round trips a run: the samples hold %llu",
				    (unsigned long long)t->count,
				    (unsigned long long)t->w->max_trips);
	if (wl_topic(t->w, t->topic[0], "ping", 1, TRIP_RING, SHMBUS_POLICY_OVERWRITE) ||
	    wl_topic(t->w, t->topic[1], "pong", 1, TRIP_RING, SHMBUS_POLICY_OVERWRITE)) {
		wl_trip_drop(t);
		return -1;
	}
	return 0;
}

int wl_trip_run(struct wl_trip *t)
{
	static const double q[WL_NQ] = { 0.5, 0.9, 0.99, 0.999, 1.0 };
	uint64_t *s = t->w->sh->samples;
	int rc;

	wl_reset(t->w);
	rc = workers_run(2, t->w->cpu, trip_worker, t, t->w->timeout_s);
	if (rc)
		return rc;
	measure_quantiles_ns(s, t->count, q, WL_NQ, t->bus);
	measure_quantiles_ns(s + t->count, t->count, q, WL_NQ, t->bare);
	return 0;
}

void wl_trip_drop(struct wl_trip *t)
{
	wl_drop(t->w, t->topic[0]);
	wl_drop(t->w, t->topic[1]);
}

/* ------------------------------------------------------------------ */
/* Throughput                                                          */

/* Send records [0, warm + count), each carrying its sequence number. */
static int produce(const struct wl_tput *t, shmbus_producer *p)
{
	struct shmbus_record *recs = calloc(t->batch, sizeof *recs);
	uint8_t *vals = malloc(t->batch * t->size);
	uint64_t n = t->warm + t->count;
	int rc = recs && vals ? 0 : workers_fail("out of memory");

	if (vals)
		memset(vals, 0xa5, t->batch * t->size); /* fault the pages in now */
	for (size_t i = 0; !rc && i < t->batch; i++)
		recs[i] = (struct shmbus_record){ .value = vals + i * t->size,
						  .value_len = t->size };
	for (uint64_t seq = 0; !rc && seq < n;) {
		size_t k = n - seq < t->batch ? (size_t)(n - seq) : t->batch;
		int sent;

		for (size_t i = 0; i < k; i++)
			wl_put_seq(vals + i * t->size, seq + i);
		sent = t->batch == 1 ? shmbus_producer_send(p, 0, recs, NULL) :
				       shmbus_producer_send_batch(p, 0, recs, k);
		if (sent < 0 || (t->batch > 1 && sent == 0))
			rc = workers_fail("send to %s: %s", t->topic, shmbus_errmsg());
		seq += t->batch == 1 ? 1 : (uint64_t)sent;
	}
	if (!rc && shmbus_producer_flush(p)) /* linger: the last run */
		rc = workers_fail("flush %s: %s", t->topic, shmbus_errmsg());
	free(recs);
	free(vals);
	return rc;
}

/* Read and check records [0, warm + count); time from the last warm-up
 * record to the last record. */
static int consume(const struct wl_tput *t, shmbus_consumer *c)
{
	struct shmbus_message *msgs = calloc(t->poll_max, sizeof *msgs);
	struct wl_shared *sh = t->w->sh;
	uint64_t want = 0, n = t->warm + t->count;
	unsigned spins = 0;
	int rc = msgs ? 0 : workers_fail("out of memory");

	if (t->warm == 0)
		sh->t_start[0] = mono_ns();
	while (!rc && want < n) {
		size_t max = n - want < t->poll_max ? (size_t)(n - want) : t->poll_max;
		int got = shmbus_consumer_poll(c, msgs, max, t->tight ? 0 : 100);

		if (got < 0)
			rc = workers_fail("poll %s: %s", t->topic, shmbus_errmsg());
		else if (got == 0 && (t->tight ? !workers_spin(&spins) : workers_late()))
			rc = workers_fail("records stopped coming at %llu of %llu",
					  (unsigned long long)want, (unsigned long long)n);
		for (int i = 0; !rc && i < got; i++, want++) {
			rc = wl_check_seq(&msgs[i], t->size, want);
			if (want + 1 == t->warm)
				sh->t_start[0] = mono_ns();
		}
	}
	sh->t_end[0] = mono_ns();
	sh->got[1] = want;
	free(msgs);
	return rc;
}

static int tput_worker(int role, void *arg)
{
	const struct wl_tput *t = arg;
	struct handles h = { 0 };
	int rc = handles_open(t->w, &h, role ? t->topic : NULL, role ? NULL : t->topic, false,
			      t->copy, t->linger_us);

	if (!rc)
		rc = role ? consume(t, h.c) : produce(t, h.p);
	handles_close(&h);
	return rc;
}

int wl_tput_setup(struct wl_tput *t)
{
	if (t->size < sizeof(uint64_t) || t->batch < 1 || t->poll_max < 1)
		return workers_fail("values of %zu bytes, batches of %zu, polls of %zu: values "
				    "carry an 8-byte sequence number", t->size, t->batch,
				    t->poll_max);
	return wl_topic(t->w, t->topic, "tput", 1, t->ring, SHMBUS_POLICY_BACKPRESSURE);
}

int wl_tput_run(struct wl_tput *t)
{
	struct wl_shared *sh = t->w->sh;
	double secs;
	int rc;

	wl_reset(t->w);
	rc = workers_run(2, t->w->cpu, tput_worker, t, t->w->timeout_s);
	if (rc)
		return rc;
	t->received = sh->got[1];
	secs = (double)(sh->t_end[0] - sh->t_start[0]) / 1e9;
	t->rate = (double)t->count / secs / 1e6;
	t->bw = (double)t->count * (double)t->size / secs / 1e9;
	return 0;
}

void wl_tput_drop(struct wl_tput *t)
{
	wl_drop(t->w, t->topic);
}
