/*
 * producer.c - appending records to a topic's partitions.
 *
 * A producer maps every partition of its topic once (through the
 * process's cache) and keeps one writer per partition; the data path is
 * shm/append.c with no lock, no system call and no allocation (header
 * encoding reuses a scratch buffer).  With acks=mirrors each call then
 * waits for its records to be mirrored (producer_acks.c).  With linger,
 * sends are staged and published in batches (producer_linger.c), and
 * every call that touches the writers holds the linger lock, which the
 * linger thread takes to publish.
 *
 * A topic may gain partitions (shmbus_topic_add_partitions, format.md
 * §9).  Each send, batch and claim first compares the bus file's
 * publication generation with the one the producer last saw: one load of
 * a word that changes only when topics are created, deleted or grown.
 * When it moved, the producer looks its topic up and maps the new
 * partitions (grow()), under the linger lock, so that keyed and
 * round-robin records spread over them from then on.
 */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../shm/append.h"
#include "../util/clock.h"

struct pwriter {
	struct pmap *m;
	struct part_writer w;
};

struct shmbus_producer {
	shmbus *bus;
	struct bus_topic topic;
	uint32_t nparts;
	struct pwriter *parts;
	uint32_t rr;              /* round-robin for records without a key */
	unsigned flags;           /* PART_APPEND_BLOCK */
	int block_timeout_ms;
	uint8_t *scratch;         /* encoded record headers */
	size_t scratch_cap;
	struct part_rec recs[64]; /* a batch run, converted */
	bool acks;                /* acks=mirrors */
	struct producer_acks ack;
	uint64_t *unacked;        /* acks=mirrors: per partition, the offset after the last
				   * record this call appended (0: none) */
	uint32_t *touched;        /* the partitions with unacked set */
	uint32_t ntouched;
	struct linger *linger;    /* opts.linger_us > 0 */
	uint64_t dir_gen;         /* the bus directory's generation nparts reflects */
};

#define ACK_TIMEOUT_MS 30000      /* acks=mirrors, by default (Kafka's request.timeout.ms) */

/* acks=mirrors: check that something can acknowledge, and prepare. */
static int acks_init(shmbus_producer *p, const struct shmbus_producer_opts *o)
{
	int rc;

	if (o->acks != SHMBUS_ACKS_LOCAL && o->acks != SHMBUS_ACKS_MIRRORS)
		return lib_err(-EINVAL, "acks %d is not SHMBUS_ACKS_LOCAL (0) or "
			       "SHMBUS_ACKS_MIRRORS (1)", (int)o->acks);
	if (o->ack_timeout_ms < 0)
		return lib_err(-EINVAL, "ack_timeout_ms %d is negative; 0 means %d ms",
			       o->ack_timeout_ms, ACK_TIMEOUT_MS);
	if (o->acks == SHMBUS_ACKS_LOCAL)
		return 0;
	rc = producer_acks_check(p->bus, p->topic.name, &p->ack);
	if (rc)
		return rc;
	p->ack.timeout_ms = o->ack_timeout_ms ? o->ack_timeout_ms : ACK_TIMEOUT_MS;
	p->unacked = calloc(p->topic.partitions, sizeof *p->unacked);
	p->touched = calloc(p->topic.partitions, sizeof *p->touched);
	if (!p->unacked || !p->touched)
		return lib_err(-ENOMEM, "out of memory");
	p->acks = true;
	return 0;
}

SHMBUS_API int shmbus_producer_new(shmbus *bus, const char *topic,
				   const struct shmbus_producer_opts *opts, shmbus_producer **ret)
{
	struct shmbus_producer_opts o;
	shmbus_producer *p;
	int rc;

	rc = OPTS_LOAD(shmbus_producer_opts, o, opts);
	if (rc < 0)
		return rc;
	rc = linger_check(&o);
	if (rc < 0)
		return rc;
	p = calloc(1, sizeof *p);
	if (!p)
		return lib_err(-ENOMEM, "out of memory");
	p->bus = bus;
	p->dir_gen = dir_generation(&bus->dir); /* before the lookup: a grow after it is seen */
	rc = topic_lookup(bus, topic, &p->topic);
	if (rc)
		goto fail;
	rc = acks_init(p, &o);
	if (rc)
		goto fail;
	p->parts = calloc(p->topic.partitions, sizeof *p->parts);
	if (!p->parts) {
		rc = -ENOMEM;
		goto fail;
	}
	for (uint32_t i = 0; i < p->topic.partitions; i++, p->nparts++) {
		rc = cache_get(bus, &p->topic, i, &p->parts[i].m);
		if (rc)
			goto fail;
		rc = part_writer_init(&p->parts[i].w, &p->parts[i].m->part);
		if (rc) {
			cache_put(p->parts[i].m);
			goto fail;
		}
	}
	p->flags = o.block ? PART_APPEND_BLOCK : 0;
	p->block_timeout_ms = o.block_timeout_ms;
	if (o.linger_us) {
		rc = linger_new(p, p->topic.name, p->nparts, &o, &p->linger);
		if (rc)
			goto fail;
	}
	*ret = p;
	return 0;
fail:
	shmbus_producer_free(p);
	return rc;
}

SHMBUS_API void shmbus_producer_free(shmbus_producer *p)
{
	if (!p)
		return;
	linger_free(p->linger); /* publishes what is staged */
	for (uint32_t i = 0; i < p->nparts; i++) {
		part_writer_fini(&p->parts[i].w);
		cache_put(p->parts[i].m);
	}
	free(p->parts);
	free(p->scratch);
	free(p->unacked);
	free(p->touched);
	free(p);
}

SHMBUS_API int shmbus_producer_partitions(const shmbus_producer *p)
{
	return (int)p->nparts;
}

SHMBUS_API int shmbus_producer_partition_for(const shmbus_producer *p, const void *key,
					     size_t key_len)
{
	if (!key)
		return lib_err(-EINVAL, "a null key has no partition: keyless records are spread "
			       "round-robin");
	return (int)murmur2_partition(key, key_len, p->nparts);
}

/* Make room for, map and open writers on partitions [nparts, n); then
 * they are used.  Under the linger lock (or without linger). */
static int grow_to(shmbus_producer *p, const struct bus_topic *t, uint32_t n)
{
	struct pwriter *parts = realloc(p->parts, n * sizeof *parts);
	uint32_t have = p->nparts;
	int rc = 0;

	if (!parts)
		return lib_err(-ENOMEM, "out of memory");
	p->parts = parts; /* writers hold no pointer to themselves */
	if (p->acks) {
		uint64_t *u = realloc(p->unacked, n * sizeof *u);
		uint32_t *tch = u ? realloc(p->touched, n * sizeof *tch) : NULL;

		if (u)
			p->unacked = u;
		if (!tch)
			return lib_err(-ENOMEM, "out of memory");
		p->touched = tch;
		memset(p->unacked + p->nparts, 0, (n - p->nparts) * sizeof *u);
	}
	rc = linger_grow(p->linger, n);
	for (uint32_t i = have; i < n && rc == 0; i++) {
		rc = cache_get(p->bus, t, i, &parts[i].m);
		if (rc == 0 && (rc = part_writer_init(&parts[i].w, &parts[i].m->part)) < 0)
			cache_put(parts[i].m);
		if (rc == 0)
			have = i + 1;
	}
	/* the partitions mapped are used even if a later one failed: each
	 * holds its writer until shmbus_producer_free */
	p->nparts = have;
	p->topic.partitions = have;
	return rc;
}

/* The topic gained partitions since we looked (format.md §9)? */
static void grow(shmbus_producer *p)
{
	uint64_t gen = dir_generation(&p->bus->dir);
	struct bus_topic t;

	if (gen == p->dir_gen)
		return;
	/* Seen once per generation, success or not: a failed grow (no
	 * memory, no writer slot) keeps the partitions the producer has, and
	 * the next change of the directory tries again. */
	p->dir_gen = gen;
	if (dir_lookup(&p->bus->dir, p->topic.name, &t) < 0 || t.id != p->topic.id ||
	    t.partitions <= p->nparts || t.partitions > BUS_MAX_PARTITIONS)
		return; /* deleted or recreated: the partitions say -EIDRM */
	(void)grow_to(p, &t, t.partitions);
}

/* grow(), cheaply: one load when nothing changed.  Under the linger lock. */
static inline void refresh_locked(shmbus_producer *p)
{
	if (__builtin_expect(dir_generation(&p->bus->dir) != p->dir_gen, 0))
		grow(p);
}

/* For send, which takes the linger lock only to stage. */
static inline void refresh(shmbus_producer *p)
{
	if (__builtin_expect(dir_generation(&p->bus->dir) != p->dir_gen, 0)) {
		linger_lock(p->linger);
		grow(p);
		linger_unlock(p->linger);
	}
}

static int pick(shmbus_producer *p, int32_t partition, const struct shmbus_record *r)
{
	if (partition >= 0) {
		if ((uint32_t)partition >= p->nparts)
			return check_partition(p->topic.name, p->nparts, partition);
		return partition;
	}
	if (partition != SHMBUS_PARTITION_ANY)
		return check_partition(p->topic.name, p->nparts, partition);
	if (r->key)
		return (int)murmur2_partition(r->key, r->key_len, p->nparts);
	return (int)(p->rr++ % p->nparts);
}

static int grow_scratch(shmbus_producer *p, size_t need)
{
	uint8_t *n;

	if (need <= p->scratch_cap)
		return 0;
	n = realloc(p->scratch, need);
	if (!n)
		return lib_err(-ENOMEM, "out of memory");
	p->scratch = n;
	p->scratch_cap = need;
	return 0;
}

static int64_t headers_size(const struct shmbus_record *r)
{
	/* struct shmbus_header and struct frame_kv have the same layout */
	_Static_assert(sizeof(struct shmbus_header) == sizeof(struct frame_kv), "header layouts");
	return r->header_count ? frame_headers_size((const struct frame_kv *)r->headers,
						     r->header_count)
			       : 0;
}

/* Fill a part_rec from a record; its encoded headers go to `hdr_at`. */
static int convert(shmbus_producer *p, const struct shmbus_record *r, uint8_t *hdr_at,
		   int64_t hsize, int64_t now, struct part_rec *out)
{
	if (r->key_len > UINT32_MAX / 2 || r->value_len > UINT32_MAX / 2)
		return lib_err(-EMSGSIZE, "record for topic \"%s\" is too large (key %zu, value %zu "
			       "bytes)", p->topic.name, r->key_len, r->value_len);
	*out = (struct part_rec){
		.key = r->key, .key_len = r->key ? (uint32_t)r->key_len : 0,
		.value = r->value, .value_len = r->value ? (uint32_t)r->value_len : 0,
		.headers = hdr_at, .headers_len = (uint32_t)hsize,
		.header_count = (uint16_t)r->header_count,
		.flags = (uint16_t)((r->key ? 0 : FRAME_F_KEY_NULL) | (r->value ? 0 : FRAME_F_VALUE_NULL)),
		.timestamp_ns = r->timestamp_ns ? r->timestamp_ns : now,
	};
	if (hsize)
		frame_headers_encode(hdr_at, (const struct frame_kv *)r->headers, r->header_count);
	return 0;
}

/* Backpressure: name the consumer that holds the partition back. */
static int full_error(shmbus_producer *p, uint32_t part)
{
	const char *fix = p->flags & PART_APPEND_BLOCK ? "is it stopped, or too slow?"
						       : "retry later, or set opts.block to wait";
	struct part_bp_holder h;

	if (part_bp_holder(&p->parts[part].m->part, &h) < 0)
		return lib_err(-EAGAIN, "partition %s/%u is full: a registered consumer has not "
			       "read the oldest records (backpressure); %s", p->topic.name, part,
			       fix);
	return lib_err(-EAGAIN, "partition %s/%u is full: consumer \"%s\" (pid %u) has not read "
		       "offset %llu yet, and producers may not overwrite it (backpressure); %s",
		       p->topic.name, part, h.name, h.pid, (unsigned long long)h.offset, fix);
}

static int append_error(shmbus_producer *p, uint32_t part, int rc)
{
	const struct part *pt = &p->parts[part].m->part;

	switch (rc) {
	case -EIDRM:
		return lib_err(rc, "topic \"%s\" was deleted; make a new producer once it is "
			       "recreated", p->topic.name);
	case -EAGAIN:
		return full_error(p, part);
	case -EMSGSIZE:
		return lib_err(rc, "record is larger than half the ring of %s/%u (%llu bytes); "
			       "recreate the topic with a larger --capacity", p->topic.name, part,
			       (unsigned long long)pt->max_frame);
	case -ECANCELED:
		return lib_err(rc, "a claim on %s/%u was aborted by an unblocker: this producer "
			       "stalled longer than the unblock timeout", p->topic.name, part);
	case -EROFS:
		if (p->topic.flags & BUS_TOPIC_REPLICA)
			return lib_err(rc, "topic \"%s\" is a replica mirrored from %.64s: local "
				       "producers cannot append to it; produce to its source",
				       p->topic.name, p->topic.mirror_source);
		return lib_err(rc, "partition %s/%u is read-only here (no write permission, or a "
			       "mirror replica)", p->topic.name, part);
	case -EBUSY:
		return rc; /* shm/append.c said which claim is in the way */
	default:
		return lib_err(rc, "append to %s/%u failed: %s", p->topic.name, part,
			       shmbus_strerror(rc));
	}
}

/* acks=mirrors: wait until offset `off` of `part` is mirrored. */
static int acked(shmbus_producer *p, uint32_t part, uint64_t off, int64_t deadline_ns)
{
	return producer_acks_wait(p->bus, &p->ack, &p->parts[part].m->part, p->topic.name, part,
				  off, deadline_ns);
}

static int64_t ack_deadline(const shmbus_producer *p)
{
	return mono_ns() + (int64_t)p->ack.timeout_ms * 1000000;
}

/* acks=mirrors: a batch appended offsets below `end` to `part`. */
static void unacked(shmbus_producer *p, uint32_t part, uint64_t end)
{
	if (!p->acks)
		return;
	if (!p->unacked[part])
		p->touched[p->ntouched++] = part;
	p->unacked[part] = end;
}

/* acks=mirrors: wait for every partition the batch appended to, within
 * one timeout. */
static int await_batch(shmbus_producer *p)
{
	int64_t until = ack_deadline(p);
	int rc = 0;

	for (uint32_t i = 0; i < p->ntouched; i++) {
		uint32_t part = p->touched[i];

		if (rc == 0)
			rc = acked(p, part, p->unacked[part] - 1, until);
		p->unacked[part] = 0;
	}
	p->ntouched = 0;
	return rc;
}

static int64_t deadline(const shmbus_producer *p)
{
	if (!(p->flags & PART_APPEND_BLOCK) || p->block_timeout_ms <= 0)
		return 0;
	return mono_ns() + (int64_t)p->block_timeout_ms * 1000000;
}

SHMBUS_API int shmbus_producer_send(shmbus_producer *p, int32_t partition,
				    const struct shmbus_record *rec, uint64_t *ret_offset)
{
	int64_t hsize = headers_size(rec);
	struct part_rec r;
	uint64_t off;
	int part, rc;

	refresh(p);
	part = pick(p, partition, rec);
	if (part < 0)
		return part;
	if (hsize < 0)
		return lib_err((int)hsize, "record headers are invalid or too large");
	if (hsize && grow_scratch(p, (size_t)hsize))
		return lib_err(-ENOMEM, "out of memory");
	rc = convert(p, rec, p->scratch, hsize, rec->timestamp_ns ? 0 : fast_real_ns(), &r);
	if (rc)
		return rc;
	if (p->linger) {
		rc = linger_send(p->linger, (uint32_t)part, &r, &off);
		if (rc < 0)
			return rc;
		if (ret_offset)
			*ret_offset = off;
		return part;
	}
	rc = part_append(&p->parts[part].w, &r, 1, p->flags, deadline(p), &off);
	if (rc < 0)
		return append_error(p, (uint32_t)part, rc);
	if (p->acks) {
		rc = acked(p, (uint32_t)part, off, ack_deadline(p));
		if (rc < 0)
			return rc;
	}
	if (ret_offset)
		*ret_offset = off;
	return part;
}

/* Append recs[0..n), all for partition `part`, in runs of 64. */
static int send_run(shmbus_producer *p, uint32_t part, const struct shmbus_record *recs,
		    size_t n, int64_t now)
{
	size_t done = 0;

	while (done < n) {
		size_t m = n - done < 64 ? n - done : 64, hbytes = 0;
		int64_t sizes[64];
		uint64_t first;
		int rc;

		for (size_t i = 0; i < m; i++) {
			sizes[i] = headers_size(&recs[done + i]);
			if (sizes[i] < 0)
				return done ? (int)done : lib_err((int)sizes[i], "record headers are "
								  "invalid or too large");
			hbytes += (size_t)sizes[i];
		}
		if (hbytes && grow_scratch(p, hbytes))
			return done ? (int)done : -ENOMEM;
		hbytes = 0;
		for (size_t i = 0; i < m; i++) {
			rc = convert(p, &recs[done + i], p->scratch + hbytes, sizes[i], now, &p->recs[i]);
			if (rc)
				return done ? (int)done : rc;
			hbytes += (size_t)sizes[i];
		}
		rc = part_append(&p->parts[part].w, p->recs, m, p->flags, deadline(p), &first);
		if (rc < 0)
			return done ? (int)done : append_error(p, part, rc);
		if (rc > 0)
			unacked(p, part, first + (uint64_t)rc);
		done += (size_t)rc;
		if ((size_t)rc < m) {
			/* a short count: say why, for shmbus_errmsg() */
			append_error(p, part, p->parts[part].w.stopped_by);
			return (int)done;
		}
	}
	return (int)done;
}

static int send_batch(shmbus_producer *p, int32_t partition, const struct shmbus_record *recs,
		      size_t n)
{
	int64_t now = fast_real_ns();
	size_t done = 0;

	while (done < n) {
		int part = pick(p, partition, &recs[done]), rc;
		size_t run = 1;

		if (part < 0)
			return done ? (int)done : part;
		/* consecutive records bound for the same partition go together */
		while (done + run < n && partition == SHMBUS_PARTITION_ANY && recs[done + run].key &&
		       recs[done].key &&
		       murmur2_partition(recs[done + run].key, recs[done + run].key_len, p->nparts) ==
			       (uint32_t)part)
			run++;
		if (partition >= 0)
			run = n - done;
		rc = send_run(p, (uint32_t)part, recs + done, run, now);
		if (rc < 0)
			return done ? (int)done : rc;
		done += (size_t)rc;
		if ((size_t)rc < run)
			break;
	}
	return (int)done;
}

static int send_batch_acked(shmbus_producer *p, int32_t partition,
			    const struct shmbus_record *recs, size_t n)
{
	int done = send_batch(p, partition, recs, n), rc;

	if (!p->acks)
		return done;
	rc = await_batch(p); /* what was appended, even before an error */
	return rc < 0 && done >= 0 ? rc : done;
}

SHMBUS_API int shmbus_producer_send_batch(shmbus_producer *p, int32_t partition,
					  const struct shmbus_record *recs, size_t n)
{
	int rc;

	linger_lock(p->linger);
	refresh_locked(p);
	/* records sent before go first: every staged run, as recs may go
	 * to any partition */
	rc = linger_publish_locked(p->linger, -1);
	if (rc == 0)
		rc = send_batch_acked(p, partition, recs, n);
	linger_unlock(p->linger);
	return rc;
}

SHMBUS_API int shmbus_producer_flush(shmbus_producer *p)
{
	return p->linger ? linger_flush(p->linger) : 0;
}

/* ------------------------------------------------------------------ */
/* For linger (producer_linger.c), under its lock                      */

int producer_publish(shmbus_producer *p, uint32_t part, const struct part_rec *recs, size_t n,
		     uint64_t *ret_first)
{
	int rc = part_append(&p->parts[part].w, recs, n, p->flags, deadline(p), ret_first);

	if (rc < 0)
		return append_error(p, part, rc);
	if (rc > 0)
		unacked(p, part, *ret_first + (uint64_t)rc);
	if ((size_t)rc < n)
		append_error(p, part, p->parts[part].w.stopped_by); /* the message */
	return rc;
}

int producer_stopped(const shmbus_producer *p, uint32_t part)
{
	return p->parts[part].w.stopped_by;
}

int producer_await(shmbus_producer *p)
{
	return p->acks ? await_batch(p) : 0;
}

/* ------------------------------------------------------------------ */
/* Zero-copy claims                                                    */

enum { C_POS, C_OFF, C_LEN, C_FRAME, C_PAD };

static int claim(shmbus_producer *p, int32_t partition, const struct shmbus_record *meta,
		 size_t value_cap, struct shmbus_claim *ret)
{
	int64_t hsize = headers_size(meta);
	struct part_claim c;
	struct part_rec r;
	int part, rc;

	part = pick(p, partition, meta);
	if (part < 0)
		return part;
	if (hsize < 0)
		return lib_err((int)hsize, "record headers are invalid or too large");
	if (value_cap > UINT32_MAX / 2)
		return lib_err(-EMSGSIZE, "claim of %zu bytes is too large", value_cap);
	if (hsize && grow_scratch(p, (size_t)hsize))
		return lib_err(-ENOMEM, "out of memory");
	rc = convert(p, meta, p->scratch, hsize, meta->timestamp_ns ? 0 : fast_real_ns(), &r);
	if (rc)
		return rc;
	r.flags &= (uint16_t)~FRAME_F_VALUE_NULL;
	rc = linger_publish_locked(p->linger, part); /* records sent before go first */
	if (rc)
		return rc;
	rc = part_claim(&p->parts[part].w, &r, (uint32_t)value_cap, p->flags, deadline(p), &c);
	if (rc)
		return append_error(p, (uint32_t)part, rc);
	memset(ret, 0, sizeof *ret);
	ret->value = c.value;
	ret->value_cap = value_cap;
	ret->offset = c.off;
	ret->partition = part;
	ret->priv[C_POS] = c.pos;
	ret->priv[C_OFF] = c.off;
	ret->priv[C_LEN] = c.len;
	ret->priv[C_FRAME] = (uintptr_t)c.frame;
	ret->priv[C_PAD] = c.pad_pos;
	return 0;
}

static int claim_back(shmbus_producer *p, const struct shmbus_claim *in, struct part_claim *c)
{
	if (in->partition < 0 || (uint32_t)in->partition >= p->nparts || !in->priv[C_FRAME])
		return lib_err(-EINVAL, "not a live claim of this producer");
	*c = (struct part_claim){ .pos = in->priv[C_POS], .off = in->priv[C_OFF],
				  .len = in->priv[C_LEN],
				  .frame = (struct frame_hdr *)(uintptr_t)in->priv[C_FRAME],
				  .pad_pos = in->priv[C_PAD], .value = in->value,
				  .value_cap = (uint32_t)in->value_cap };
	return 0;
}

static int commit(shmbus_producer *p, struct shmbus_claim *claim, size_t value_len)
{
	struct part_claim c;
	int rc = claim_back(p, claim, &c);

	if (rc)
		return rc;
	if (value_len > claim->value_cap) {
		part_abort(&p->parts[claim->partition].w, &c);
		claim->priv[C_FRAME] = 0;
		return lib_err(-EINVAL, "commit of %zu bytes exceeds the claim's %zu; the claim was "
			       "aborted", value_len, claim->value_cap);
	}
	rc = part_commit(&p->parts[claim->partition].w, &c, (uint32_t)value_len);
	claim->priv[C_FRAME] = 0;
	if (rc)
		return append_error(p, (uint32_t)claim->partition, rc);
	return p->acks ? acked(p, (uint32_t)claim->partition, c.off, ack_deadline(p)) : 0;
}

static int abort_claim(shmbus_producer *p, struct shmbus_claim *claim)
{
	struct part_claim c;
	int rc = claim_back(p, claim, &c);

	if (rc)
		return rc;
	rc = part_abort(&p->parts[claim->partition].w, &c);
	claim->priv[C_FRAME] = 0;
	return rc;
}

/* With linger, the linger thread publishes through the same writers. */
SHMBUS_API int shmbus_producer_claim(shmbus_producer *p, int32_t partition,
				     const struct shmbus_record *meta, size_t value_cap,
				     struct shmbus_claim *ret)
{
	int rc;

	linger_lock(p->linger);
	refresh_locked(p);
	rc = claim(p, partition, meta, value_cap, ret);
	linger_unlock(p->linger);
	return rc;
}

SHMBUS_API int shmbus_producer_commit(shmbus_producer *p, struct shmbus_claim *claim,
				      size_t value_len)
{
	int rc;

	linger_lock(p->linger);
	rc = commit(p, claim, value_len);
	linger_unlock(p->linger);
	return rc;
}

SHMBUS_API int shmbus_producer_abort(shmbus_producer *p, struct shmbus_claim *claim)
{
	int rc;

	linger_lock(p->linger);
	rc = abort_claim(p, claim);
	linger_unlock(p->linger);
	return rc;
}
