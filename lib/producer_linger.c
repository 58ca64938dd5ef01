/*
 * producer_linger.c - a producer's linger (Kafka's linger.ms and
 * batch.size; docs/design-notes.md, "Linger"): sends are copied into a
 * staging buffer per partition, and a partition's staged records are
 * published as one batch (producer.c's producer_publish, the send_batch
 * path: one claim CAS for up to 64 records) when the next one would not
 * fit in batch_bytes, when linger_us have passed since the first of
 * them, or when the application flushes or frees the producer.
 *
 * Who enforces linger_us: a thread per lingering producer.  It sleeps on
 * a condition variable until the earliest deadline of the staged
 * partitions (or until woken for a first staged record) and publishes
 * what is due, so a producer that goes quiet never keeps records back
 * longer than linger_us plus the thread's wake-up.  The application's
 * thread and the linger thread share the staging buffers and the
 * partition writers under one mutex: every public call on a lingering
 * producer takes it.  The send path reads no clock for linger (the
 * thread does), and signals the thread only when it sleeps with nothing
 * to wait for.
 *
 * Invariants: a partition's staged records are published in the order
 * they were staged, and before anything the same producer appends to
 * that partition afterwards (send_batch and claim publish the staged
 * runs first); the staging buffer of a partition never holds more than
 * batch_bytes of frames, so it is allocated once, at the first record,
 * and its records' pointers stay valid until published.
 */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../shm/append.h"
#include "../util/clock.h"

#define LINGER_US_MAX   60000000      /* a minute: longer is a mistake */
#define BATCH_DEFAULT   16384         /* Kafka's batch.size */
#define BATCH_MAX       (16u << 20)   /* per partition, allocated once staged */
#define RETRY_MIN_NS    1000000       /* a kept run is retried after linger_us, or this */

/* One partition's staged records. */
struct stage {
	uint8_t *buf;             /* keys, headers and values, batch_bytes */
	size_t used;              /* of buf */
	struct part_rec *recs;    /* pointing into buf */
	size_t n, cap;
	uint64_t bytes;           /* frame bytes of recs[0..n) */
	int64_t due;              /* CLOCK_MONOTONIC: when recs must be published */
};

struct linger {
	shmbus_producer *p;
	uint32_t nparts;
	int64_t linger_ns;
	uint64_t batch_bytes;
	void (*on_delivery)(void *arg, const struct shmbus_delivery *d);
	void *arg;
	struct stage *st;
	uint32_t staged;          /* partitions with records staged */
	pthread_mutex_t lock;     /* everything here, and the producer's writers */
	pthread_cond_t wake;      /* the thread: something was staged, or stop */
	bool idle;                /* the thread sleeps without a deadline */
	bool stop;
	bool thread;              /* started (to join) */
	pthread_t tid;
	int64_t wait_until;       /* the thread's next wake-up (INT64_MAX: none) */
	const char *topic;        /* the producer's, for messages */
	int err;                  /* the first loss since the last flush */
	char errmsg[512];         /* its message */
};

int linger_check(const struct shmbus_producer_opts *o)
{
	if (o->linger_us < 0 || o->linger_us > LINGER_US_MAX)
		return lib_err(-EINVAL, "linger_us %d is out of range: 0 (no linger) to %d",
			       o->linger_us, LINGER_US_MAX);
	if (o->batch_bytes < 0 || (uint64_t)o->batch_bytes > BATCH_MAX)
		return lib_err(-EINVAL, "batch_bytes %d is out of range: 0 (%d) to %u",
			       o->batch_bytes, BATCH_DEFAULT, BATCH_MAX);
	if (!o->linger_us && (o->batch_bytes || o->on_delivery))
		return lib_err(-EINVAL, "batch_bytes and on_delivery go with linger_us, which is "
			       "0: set linger_us (microseconds a record may wait to be batched)");
	return 0;
}

static void deliver(struct linger *l, uint32_t part, uint64_t first, size_t n, int err)
{
	struct shmbus_delivery d = { .partition = (int32_t)part, .first_offset = first,
				     .count = n, .err = err };

	if (l->on_delivery && n)
		l->on_delivery(l->arg, &d);
}

static void stage_clear(struct linger *l, struct stage *s)
{
	if (s->n)
		l->staged--;
	s->n = 0;
	s->used = 0;
	s->bytes = 0;
}

/* A run that could not be published for a while (backpressure, a claim
 * in the way) keeps recs[done..n), due again after a pause. */
static void keep(struct linger *l, struct stage *s, size_t done)
{
	int64_t pause = l->linger_ns > RETRY_MIN_NS ? l->linger_ns : RETRY_MIN_NS;

	memmove(s->recs, s->recs + done, (s->n - done) * sizeof *s->recs);
	s->n -= done;
	s->bytes = 0;
	for (size_t i = 0; i < s->n; i++)
		s->bytes += frame_size(s->recs[i].key_len, s->recs[i].headers_len,
				       s->recs[i].value_len);
	s->due = mono_ns() + pause; /* buf's room is reclaimed once the stage empties */
}

/* Publish part's staged run.  0; or -errno: the run is lost (reported to
 * on_delivery, and to the next flush), or, for -EAGAIN and -EBUSY, kept
 * staged and due again after a pause.  The message is in shmbus_errmsg(). */
static int publish_part(struct linger *l, uint32_t part)
{
	struct stage *s = &l->st[part];
	uint64_t first = 0;
	size_t n = s->n, done;
	int rc;

	if (!n)
		return 0;
	rc = producer_publish(l->p, part, s->recs, n, &first);
	done = rc > 0 ? (size_t)rc : 0;
	deliver(l, part, first, done, 0);
	if (done == n) {
		stage_clear(l, s);
		return 0;
	}
	if (rc >= 0)
		rc = producer_stopped(l->p, part);
	if (rc == -EAGAIN || rc == -EBUSY) {
		keep(l, s, done);
		return rc;
	}
	if (!l->err) {
		l->err = rc;
		snprintf(l->errmsg, sizeof l->errmsg, "%zu records staged for %s/%u are lost: %s",
			 n - done, l->topic, part, shmbus_errmsg());
	}
	deliver(l, part, 0, n - done, rc);
	stage_clear(l, s);
	return rc;
}

/* Publish every partition's staged run; the first error, or 0. */
static int publish_all(struct linger *l)
{
	int rc = 0;

	for (uint32_t i = 0; i < l->nparts && l->staged; i++) {
		int r = publish_part(l, i);

		if (r && !rc)
			rc = r;
	}
	return rc;
}

/* ------------------------------------------------------------------ */
/* The linger thread                                                   */

/* Publish the runs that are due; the earliest deadline of the rest
 * (INT64_MAX: nothing staged). */
static int64_t publish_due(struct linger *l)
{
	int64_t now = mono_ns(), next = INT64_MAX;
	uint32_t seen = 0;

	for (uint32_t i = 0; i < l->nparts && seen < l->staged; i++) {
		struct stage *s = &l->st[i];

		if (!s->n)
			continue;
		if (s->due <= now)
			publish_part(l, i); /* a failure is kept for flush, or staged again */
		if (s->n) {
			seen++;
			next = s->due < next ? s->due : next;
		}
	}
	return next;
}

static void *linger_main(void *arg)
{
	struct linger *l = arg;

	pthread_mutex_lock(&l->lock);
	while (!l->stop) {
		int64_t next = publish_due(l);
		struct timespec ts = { .tv_sec = next / 1000000000, .tv_nsec = next % 1000000000 };

		l->wait_until = next;
		if (next == INT64_MAX)
			pthread_cond_wait(&l->wake, &l->lock);
		else
			pthread_cond_timedwait(&l->wake, &l->lock, &ts);
	}
	l->wait_until = INT64_MIN; /* nobody to signal any more */
	pthread_mutex_unlock(&l->lock);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Staging                                                             */

static int stage_alloc(struct linger *l, struct stage *s)
{
	s->cap = l->batch_bytes / frame_size(0, 0, 0) + 1;
	s->buf = malloc(l->batch_bytes);
	s->recs = calloc(s->cap, sizeof *s->recs);
	if (s->buf && s->recs)
		return 0;
	free(s->buf);
	free(s->recs);
	s->buf = NULL;
	s->recs = NULL;
	return lib_err(-ENOMEM, "out of memory for the staging buffer of %s (batch_bytes %llu)",
		       l->topic, (unsigned long long)l->batch_bytes);
}

static const void *copy_in(struct stage *s, const void *src, size_t len)
{
	uint8_t *at = s->buf + s->used;

	if (len)
		memcpy(at, src, len);
	s->used += len;
	return at;
}

/* Copy r into part's stage (it fits); start its linger if it is the first. */
static int stage(struct linger *l, uint32_t part, const struct part_rec *r, uint64_t fsize)
{
	struct stage *s = &l->st[part];
	struct part_rec *to;
	int rc;

	if (!s->buf && (rc = stage_alloc(l, s)))
		return rc;
	to = &s->recs[s->n];
	*to = *r;
	to->key = copy_in(s, r->key, r->key_len);
	to->headers = copy_in(s, r->headers, r->headers_len);
	to->value = copy_in(s, r->value, r->value_len);
	s->bytes += fsize;
	if (s->n++ == 0) {
		l->staged++;
		s->due = mono_ns() + l->linger_ns;
		/* the thread sleeps past this deadline, or without one */
		if (s->due < l->wait_until)
			pthread_cond_signal(&l->wake);
	}
	return 0;
}

int linger_send(struct linger *l, uint32_t part, const struct part_rec *r, uint64_t *ret_off)
{
	struct stage *s = &l->st[part];
	uint64_t fsize = frame_size(r->key_len, r->headers_len, r->value_len);
	size_t payload = (size_t)r->key_len + r->headers_len + r->value_len;
	uint64_t first = 0;
	int rc = 0;

	*ret_off = SHMBUS_OFFSET_PENDING;
	pthread_mutex_lock(&l->lock);
	/* what is staged goes first if r does not fit beside it */
	if (s->n && (s->bytes + fsize > l->batch_bytes || s->used + payload > l->batch_bytes ||
		     s->n == s->cap))
		rc = publish_part(l, part);
	if (rc == 0 && fsize > l->batch_bytes) {
		/* larger than a batch: alone, from the caller's memory */
		rc = producer_publish(l->p, part, r, 1, &first);
		if (rc == 1) {
			deliver(l, part, first, 1, 0);
			*ret_off = first;
			rc = 0;
		}
	} else if (rc == 0) {
		rc = stage(l, part, r, fsize);
		if (rc == 0 && s->bytes == l->batch_bytes)
			publish_part(l, part); /* full; a failure is flush's to report */
	}
	pthread_mutex_unlock(&l->lock);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Flush, the lock, set-up and tear-down                               */

int linger_flush(struct linger *l)
{
	int rc, acked;

	pthread_mutex_lock(&l->lock);
	rc = publish_all(l);
	acked = producer_await(l->p);
	if (l->err) {
		rc = lib_err(l->err, "%s", l->errmsg);
		l->err = 0;
	} else if (!rc) {
		rc = acked;
	}
	pthread_mutex_unlock(&l->lock);
	return rc;
}

void linger_lock(struct linger *l)
{
	if (l)
		pthread_mutex_lock(&l->lock);
}

void linger_unlock(struct linger *l)
{
	if (l)
		pthread_mutex_unlock(&l->lock);
}

int linger_publish_locked(struct linger *l, int32_t part)
{
	if (!l)
		return 0;
	return part < 0 ? publish_all(l) : publish_part(l, (uint32_t)part);
}

int linger_grow(struct linger *l, uint32_t nparts)
{
	struct stage *st;

	if (!l || nparts <= l->nparts)
		return 0;
	st = realloc(l->st, nparts * sizeof *st);
	if (!st)
		return lib_err(-ENOMEM, "out of memory");
	/* stages hold no pointer to themselves: records point into buf */
	memset(st + l->nparts, 0, (nparts - l->nparts) * sizeof *st);
	l->st = st;
	l->nparts = nparts;
	return 0;
}

int linger_new(shmbus_producer *p, const char *topic, uint32_t nparts,
	       const struct shmbus_producer_opts *o, struct linger **ret)
{
	struct linger *l = calloc(1, sizeof *l);
	pthread_condattr_t ca;
	int rc;

	if (!l)
		return lib_err(-ENOMEM, "out of memory");
	*l = (struct linger){ .p = p, .topic = topic, .nparts = nparts,
			      .linger_ns = (int64_t)o->linger_us * 1000,
			      .batch_bytes = o->batch_bytes ? (uint64_t)o->batch_bytes : BATCH_DEFAULT,
			      .on_delivery = o->on_delivery, .arg = o->delivery_arg,
			      .wait_until = INT64_MAX };
	l->st = calloc(nparts, sizeof *l->st);
	pthread_mutex_init(&l->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* deadlines are mono_ns() */
	pthread_cond_init(&l->wake, &ca);
	pthread_condattr_destroy(&ca);
	rc = l->st ? pthread_create(&l->tid, NULL, linger_main, l) : ENOMEM;
	if (rc) {
		linger_free(l);
		return lib_err(-rc, "cannot start the linger thread of a producer of %s: %s", topic,
			       strerror(rc));
	}
	l->thread = true;
	*ret = l;
	return 0;
}

void linger_free(struct linger *l)
{
	if (!l)
		return;
	if (l->thread) {
		pthread_mutex_lock(&l->lock);
		l->stop = true;
		pthread_cond_signal(&l->wake);
		pthread_mutex_unlock(&l->lock);
		pthread_join(l->tid, NULL);
	}
	if (l->st) {
		publish_all(l); /* losses go to on_delivery: nobody is left to ask */
		for (uint32_t i = 0; i < l->nparts; i++) {
			free(l->st[i].buf);
			free(l->st[i].recs);
		}
	}
	free(l->st);
	pthread_cond_destroy(&l->wake);
	pthread_mutex_destroy(&l->lock);
	free(l);
}
