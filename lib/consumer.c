/*
 * consumer.c - reading records from assigned partitions.
 *
 * poll() gathers ready records from each assigned partition in turn
 * (shm/read.c), checks once per partition that none of them was
 * overwritten while it was read, and hands them out as views or copies.
 * With nothing ready it spins briefly, then sleeps on the partitions'
 * notify words (futex_waitv), waking early to unblock a claim whose
 * producer died.  With isolation=mirrored it delivers only records below
 * each partition's mirrored offset (format.md §15), and sleeps on the
 * offsets' own futex words instead.
 */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "../shm/append.h"
#include "../shm/mirrored.h"
#include "../util/clock.h"
#include "../util/crc32c.h"
#include "../util/futex.h"
#include "probes.h"
#include "../shm/read.h"
#include "../shm/unblock.h"

struct assignment {
	char topic[PART_NAME_MAX + 1];
	uint64_t topic_id;
	int32_t partition;
	struct pmap *m;
	struct part *p;
	struct part_cursor cur;
	int bp_slot;               /* backpressure registration, or -1 */
	uint64_t bp_pos;           /* the position it last published */
	unsigned stall_polls;      /* polls that found the frontier stalled */
};

struct shmbus_consumer {
	shmbus *bus;
	struct shmbus_consumer_opts o;
	char group[PART_NAME_MAX + 1];
	char name[24];
	struct group_file g;
	bool has_group;
	struct assignment **as;
	size_t nas, cap;
	size_t rr;
	int64_t spin_ns, unblock_ns;
	uint8_t *copybuf;
	size_t copycap;
	int pending_err;           /* an error to return at the next poll */
	pid_t dead_pid;            /* a producer found dead: abort its claims at once */
	bool woke;                 /* gathering after a sleep: check stalls' clocks */
	struct shmbus_consumer_stats st;
	/* a group member's wake word (member.c): poll returns 0 when check says */
	uint32_t *wake_word;
	bool (*wake_check)(void *arg);
	void *wake_arg;
};

void consumer_wake_on(shmbus_consumer *c, uint32_t *word, bool (*check)(void *arg), void *arg)
{
	c->wake_word = word;
	c->wake_check = check;
	c->wake_arg = arg;
}

SHMBUS_API int shmbus_consumer_new(shmbus *bus, const struct shmbus_consumer_opts *opts,
				   shmbus_consumer **ret)
{
	struct shmbus_consumer_opts o;
	shmbus_consumer *c;
	int rc;

	rc = OPTS_LOAD(shmbus_consumer_opts, o, opts);
	if (rc < 0)
		return rc;
	if (o.reset > SHMBUS_RESET_ERROR)
		return lib_err(-EINVAL, "unknown reset policy %d", (int)o.reset);
	if (o.isolation != SHMBUS_ISOLATION_ALL && o.isolation != SHMBUS_ISOLATION_MIRRORED)
		return lib_err(-EINVAL, "isolation %d is not SHMBUS_ISOLATION_ALL (0) or "
			       "SHMBUS_ISOLATION_MIRRORED (1)", (int)o.isolation);
	if (o.group && !dir_name_valid(o.group))
		return lib_err(-EINVAL, "\"%s\" is not a valid group name: use 1 to 249 of "
			       "[A-Za-z0-9._-]", o.group);
	c = calloc(1, sizeof *c);
	if (!c)
		return lib_err(-ENOMEM, "out of memory");
	c->o = o;
	c->bus = bus;
	c->spin_ns = o.spin_us < 0 ? 0 : (int64_t)(o.spin_us ? o.spin_us : 20) * 1000;
	c->unblock_ns = (int64_t)(o.unblock_timeout_ms > 0 ? o.unblock_timeout_ms : 1000) * 1000000;
	snprintf(c->name, sizeof c->name, "%s", o.name ? o.name : o.group ? o.group : "");
	if (o.group) {
		snprintf(c->group, sizeof c->group, "%s", o.group);
		rc = group_open(bus->groupsfd, c->group, true, &c->g);
		if (rc) {
			free(c);
			return rc;
		}
		c->has_group = true;
	}
	/* the caller's strings need not outlive this call */
	c->o.group = c->has_group ? c->group : NULL;
	c->o.name = c->name;
	*ret = c;
	return 0;
}

static void drop(struct assignment *a)
{
	part_bp_unregister(a->p, a->bp_slot);
	cache_put(a->m);
	free(a);
}

SHMBUS_API void shmbus_consumer_free(shmbus_consumer *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->nas; i++)
		drop(c->as[i]);
	free(c->as);
	free(c->copybuf);
	if (c->has_group)
		group_close(&c->g);
	free(c);
}

static struct assignment *find(shmbus_consumer *c, const char *topic, int32_t partition)
{
	for (size_t i = 0; i < c->nas; i++)
		if (c->as[i]->partition == partition && !strcmp(c->as[i]->topic, topic))
			return c->as[i];
	return NULL;
}

static int not_assigned(const char *topic, int32_t partition)
{
	return lib_err(-ENOENT, "partition %s/%d is not assigned to this consumer; assign it first",
		       topic, partition);
}

/* Keep a backpressure registration in step with the cursor (only when it
 * moved: an update is a full barrier, and polls while idle are many). */
static void bp_follow(struct assignment *a)
{
	if (a->bp_slot >= 0 && a->cur.pos != a->bp_pos) {
		part_bp_update(a->p, a->bp_slot, a->cur.pos, a->cur.off);
		a->bp_pos = a->cur.pos;
	}
}

/* Apply the reset policy after the cursor lost its offset. */
static int reset(shmbus_consumer *c, struct assignment *a, uint64_t lost_from)
{
	uint64_t low, high;

	/* The cursor may have stood on bytes overwritten before its record
	 * was: the padding at the ring's end, which the next lap writes over
	 * first.  A record still held was not lost: go on from it. */
	if (part_seek(a->p, &a->cur, lost_from) == 0) {
		bp_follow(a);
		return 0;
	}
	part_count_lapped(a->p);
	c->st.laps++;
	SHMBUS_PROBE(lap, a->topic, a->partition, lost_from, c->o.reset);
	if (c->o.reset == SHMBUS_RESET_ERROR) {
		part_bounds(a->p, &low, &high);
		return lib_err(-ERANGE, "partition %s/%d: offset %llu is no longer held (the oldest "
			       "is %llu): the consumer fell a whole ring behind; seek, or use "
			       "reset=earliest or latest", a->topic, a->partition,
			       (unsigned long long)lost_from, (unsigned long long)low);
	}
	if (c->o.reset == SHMBUS_RESET_EARLIEST)
		part_seek_begin(a->p, &a->cur);
	else
		part_seek_end(a->p, &a->cur);
	if (a->cur.off > lost_from)
		c->st.lost += a->cur.off - lost_from;
	bp_follow(a);
	SHMBUS_PROBE(reset, a->topic, a->partition, lost_from, a->cur.off);
	if (c->o.on_lapped)
		c->o.on_lapped(c->o.ctx, a->topic, a->partition, lost_from, a->cur.off);
	return 0;
}

static int place(shmbus_consumer *c, struct assignment *a, int64_t offset)
{
	uint64_t committed, low, high;
	int rc;

	switch (offset) {
	case SHMBUS_OFFSET_BEGINNING:
		return part_seek_begin(a->p, &a->cur);
	case SHMBUS_OFFSET_END:
		return part_seek_end(a->p, &a->cur);
	case SHMBUS_OFFSET_COMMITTED:
		if (c->has_group &&
		    group_fetch(&c->g, a->topic_id, (uint32_t)a->partition, &committed, NULL) == 0) {
			if (part_seek(a->p, &a->cur, committed) == 0)
				return 0;
			return reset(c, a, committed);
		}
		if (c->o.reset == SHMBUS_RESET_ERROR)
			return lib_err(-ERANGE, "group \"%s\" has no committed offset for %s/%d, and "
				       "the reset policy is error", c->group, a->topic, a->partition);
		return c->o.reset == SHMBUS_RESET_EARLIEST ? part_seek_begin(a->p, &a->cur)
							   : part_seek_end(a->p, &a->cur);
	default:
		if (offset < 0)
			return lib_err(-EINVAL, "bad offset %lld", (long long)offset);
		rc = part_seek(a->p, &a->cur, (uint64_t)offset);
		if (rc) {
			part_bounds(a->p, &low, &high); /* high: the next offset, not held yet */
			if (low >= high)
				return lib_err(rc, "offset %lld of %s/%d is not held: the partition "
					       "holds no records (the next appended gets offset %llu)",
					       (long long)offset, a->topic, a->partition,
					       (unsigned long long)high);
			return lib_err(rc, "offset %lld of %s/%d is not held: the partition holds "
				       "offsets %llu..%llu (the next appended gets %llu)",
				       (long long)offset, a->topic, a->partition,
				       (unsigned long long)low, (unsigned long long)high - 1,
				       (unsigned long long)high);
		}
		return 0;
	}
}

static int bp_register(shmbus_consumer *c, struct assignment *a)
{
	for (int tries = 0; tries < 8; tries++) {
		int slot = part_bp_register(a->p, a->cur.pos, a->cur.off, c->name);

		if (slot >= 0) {
			a->bp_slot = slot;
			a->bp_pos = a->cur.pos;
			return 0;
		}
		if (slot == -ENOSPC)
			return lib_err(-ENOSPC, "partition %s/%d already holds back producers for %d "
				       "consumers, its maximum; use no_register for this one",
				       a->topic, a->partition, PART_MAX_CONSUMERS);
		/* our position was overwritten before we registered it */
		if (reset(c, a, a->cur.off) < 0)
			return -ERANGE; /* reset() said why */
	}
	return lib_err(-EAGAIN, "cannot register on %s/%d: producers keep overwriting the start "
		       "position", a->topic, a->partition);
}

static int assign_one(shmbus_consumer *c, const struct bus_topic *t, int32_t partition,
		      int64_t offset)
{
	struct assignment *a = find(c, t->name, partition), **grown;
	int rc;

	if (a) /* assigning again moves the position */
		return shmbus_consumer_seek(c, t->name, partition, offset);
	if (c->nas == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 8;

		grown = realloc(c->as, cap * sizeof *grown);
		if (!grown)
			return lib_err(-ENOMEM, "out of memory");
		c->as = grown;
		c->cap = cap;
	}
	a = calloc(1, sizeof *a);
	if (!a)
		return lib_err(-ENOMEM, "out of memory");
	snprintf(a->topic, sizeof a->topic, "%s", t->name);
	a->topic_id = t->id;
	a->partition = partition;
	a->bp_slot = -1;
	rc = cache_get(c->bus, t, (uint32_t)partition, &a->m);
	if (rc) {
		free(a);
		return rc;
	}
	a->p = &a->m->part;
	rc = place(c, a, offset);
	if (rc == 0 && a->p->policy == PART_POLICY_BACKPRESSURE && !c->o.no_register &&
	    !a->p->readonly)
		rc = bp_register(c, a);
	if (rc) {
		drop(a);
		return rc;
	}
	c->as[c->nas++] = a;
	return 0;
}

SHMBUS_API int shmbus_consumer_assign(shmbus_consumer *c, const char *topic, int32_t partition,
				      int64_t offset)
{
	struct bus_topic t;
	int rc = topic_lookup(c->bus, topic, &t);

	if (rc)
		return rc;
	if (partition != SHMBUS_PARTITION_ANY) {
		rc = check_partition(topic, t.partitions, partition);
		return rc ? rc : assign_one(c, &t, partition, offset);
	}
	for (uint32_t i = 0; i < t.partitions; i++) {
		rc = assign_one(c, &t, (int32_t)i, offset);
		if (rc)
			return rc;
	}
	return 0;
}

SHMBUS_API int shmbus_consumer_unassign(shmbus_consumer *c, const char *topic, int32_t partition)
{
	size_t kept = 0, before = c->nas;

	for (size_t i = 0; i < c->nas; i++) {
		struct assignment *a = c->as[i];

		if (!strcmp(a->topic, topic) && (partition == SHMBUS_PARTITION_ANY || a->partition == partition))
			drop(a);
		else
			c->as[kept++] = a;
	}
	c->nas = kept;
	c->rr = 0;
	return kept < before ? 0 : not_assigned(topic, partition);
}

SHMBUS_API int shmbus_consumer_seek(shmbus_consumer *c, const char *topic, int32_t partition,
				    int64_t offset)
{
	struct assignment *a = find(c, topic, partition);
	int rc;

	if (!a)
		return not_assigned(topic, partition);
	rc = place(c, a, offset);
	if (rc == 0)
		bp_follow(a);
	return rc;
}

SHMBUS_API int shmbus_consumer_seek_timestamp(shmbus_consumer *c, const char *topic,
					      int32_t partition, int64_t ts_ns)
{
	struct assignment *a = find(c, topic, partition);
	int rc;

	if (!a)
		return not_assigned(topic, partition);
	rc = part_seek_time(a->p, &a->cur, ts_ns);
	if (rc == 0)
		bp_follow(a);
	return rc;
}

SHMBUS_API int shmbus_consumer_position(shmbus_consumer *c, const char *topic, int32_t partition,
					uint64_t *ret)
{
	struct assignment *a = find(c, topic, partition);

	if (!a)
		return not_assigned(topic, partition);
	*ret = a->cur.off < a->cur.skip_until ? a->cur.skip_until : a->cur.off;
	return 0;
}

SHMBUS_API int shmbus_consumer_lag(shmbus_consumer *c, const char *topic, int32_t partition,
				   uint64_t *ret)
{
	uint64_t lag = 0;
	bool any = false;

	for (size_t i = 0; i < c->nas; i++) {
		struct assignment *a = c->as[i];
		uint64_t tail, end, pos;

		if (strcmp(a->topic, topic) ||
		    (partition != SHMBUS_PARTITION_ANY && a->partition != partition))
			continue;
		part_ends(a->p, &tail, &end);
		if (c->o.isolation == SHMBUS_ISOLATION_MIRRORED)
			end = part_mirrored(a->p); /* what it may read */
		pos = a->cur.off < a->cur.skip_until ? a->cur.skip_until : a->cur.off;
		lag += end > pos ? end - pos : 0;
		any = true;
	}
	if (!any)
		return not_assigned(topic, partition);
	*ret = lag;
	return 0;
}

/* ------------------------------------------------------------------ */
/* poll                                                                */

static void to_message(const struct assignment *a, const struct frame_view *v,
		       struct shmbus_message *m)
{
	*m = (struct shmbus_message){
		.topic = a->topic, .partition = a->partition,
		.flags = (uint16_t)(((v->flags & FRAME_F_KEY_NULL) ? SHMBUS_MSG_KEY_NULL : 0) |
				    ((v->flags & FRAME_F_VALUE_NULL) ? SHMBUS_MSG_VALUE_NULL : 0)),
		.offset = v->offset, .timestamp_ns = v->timestamp_ns,
		.key = (v->flags & FRAME_F_KEY_NULL) ? NULL : v->key, .key_len = v->key_len,
		.value = (v->flags & FRAME_F_VALUE_NULL) ? NULL : v->value, .value_len = v->value_len,
		.header_count = v->header_count, .headers_raw = v->headers,
		.headers_raw_len = v->headers_len,
		.priv = { (uintptr_t)a->p, v->pos },
	};
}

/* A record's CRC, computed over the shared bytes (checked for intactness
 * by the caller afterwards). */
static bool crc_ok(const struct shmbus_message *m)
{
	return part_frame_crc_ok((const struct part *)m->priv[0], m->priv[1],
				 (size_t)m->key_len + m->headers_raw_len + m->value_len);
}

/* Copy messages [from, to) into the consumer's buffer. */
static int copy_out(shmbus_consumer *c, struct shmbus_message *msgs, size_t from, size_t to,
		    size_t *used)
{
	size_t need = *used;
	uint8_t *buf;

	for (size_t i = from; i < to; i++)
		need += msgs[i].key_len + msgs[i].headers_raw_len + msgs[i].value_len;
	/* an empty key or value is not a null one: it needs a pointer too */
	if (need > c->copycap || !c->copybuf) {
		size_t cap = need < 65536 ? 65536 : need * 2;

		/* earlier messages point into the old buffer: rebase them */
		buf = realloc(c->copybuf, cap);
		if (!buf)
			return lib_err(-ENOMEM, "out of memory");
		for (size_t i = 0; i < from; i++) {
#define REBASE(f) if (msgs[i].f) msgs[i].f = buf + ((const uint8_t *)msgs[i].f - c->copybuf)
			REBASE(key);
			REBASE(value);
			REBASE(headers_raw);
#undef REBASE
		}
		c->copybuf = buf;
		c->copycap = cap;
	}
	for (size_t i = from; i < to; i++) {
		struct shmbus_message *m = &msgs[i];
		uint8_t *at = c->copybuf + *used;

#define COPY(f, len)                                   \
		if (m->f) {                            \
			memcpy(at, m->f, m->len);      \
			m->f = at;                     \
			at += m->len;                  \
		}
		COPY(key, key_len);
		COPY(headers_raw, headers_raw_len);
		COPY(value, value_len);
#undef COPY
		*used = (size_t)(at - c->copybuf);
	}
	return 0;
}

/* Is the claim holding this frontier one of a producer found dead? */
static bool claimed_by_dead(const shmbus_consumer *c, const struct assignment *a)
{
	return c->dead_pid && part_claimant(a->p, a->cur.off, a->cur.stall_pos) == c->dead_pid;
}

/* Abort the claim holding this partition's frontier once it has stalled
 * for the unblock timeout, or at once if its producer is one we already
 * found dead (the rest of a dead producer's batch).  1 if the frontier
 * moved, 0 if not, -EBADMSG if the partition is damaged there. */
static int unblock(shmbus_consumer *c, struct assignment *a)
{
	pid_t pid = 0;
	int rc;

	if (!a->cur.stalled || a->p->readonly)
		return 0;
	/* A frontier is usually "stalled" only for the nanoseconds between a
	 * claim and its commit: look at the clock once it has lasted a while
	 * (then every 256 polls, and after each sleep). */
	if (!c->woke && ++a->stall_polls % 256 != 64 && !claimed_by_dead(c, a))
		return 0;
	if (mono_ns() - part_stall_clock(&a->cur) < c->unblock_ns && !claimed_by_dead(c, a))
		return 0;
	rc = part_unblock(a->p, a->cur.off, a->cur.stall_pos, 0, a->cur.stall_tail, &pid);
	if (rc == 1) {
		c->st.unblocked++;
		if (pid > 0)
			c->dead_pid = pid;
		return 1;
	}
	if (rc == 0)
		return 1;
	if (rc == -EBADMSG)
		return rc; /* part_unblock() said what and where */
	/* the claimant lives, or another unblocker holds the partition's
	 * unblock guard (-EBUSY); or the ring lapped the frontier meanwhile
	 * (-ERANGE: the next read reports it): check again after another
	 * timeout */
	SHMBUS_PROBE(stall, a->topic, a->partition, a->cur.off, pid);
	a->cur.stall_ns = mono_ns();
	return 0;
}

/* Read ready records of one partition into msgs[*n..max): 0 or what
 * stopped the run (-ERANGE with records read: the cursor is at the loss). */
static int read_run(shmbus_consumer *c, struct assignment *a, struct shmbus_message *msgs,
		    size_t max, size_t *n)
{
	/* isolation=mirrored: nothing at or past the mirrored offset */
	uint64_t limit = c->o.isolation == SHMBUS_ISOLATION_MIRRORED ? part_mirrored(a->p)
								     : UINT64_MAX;
	size_t first = *n;
	struct part_cursor before = { 0 };
	struct frame_view v;
	int rc = 0, resets = 0;

	while (*n < max) {
		if (limit != UINT64_MAX) {
			if (a->cur.off >= limit)
				return 0;
			before = a->cur;
		}
		rc = part_read(a->p, &a->cur, &v);
		if (rc == 1 && v.offset >= limit) {
			a->cur = before; /* past aborted offsets to one not mirrored yet */
			return 0;
		}
		if (rc == 1) {
			to_message(a, &v, &msgs[(*n)++]);
			continue;
		}
		if (rc == 0 && (rc = unblock(c, a)) > 0)
			continue;
		/* a reset lands on a held offset; twice in one call means the
		 * partition moves faster than we follow: try at the next poll */
		if (rc == -ERANGE && *n == first) {
			if (resets++ == 2) {
				rc = 0; /* nothing this time, not an error */
				break;
			}
			rc = reset(c, a, a->cur.off);
			if (rc == 0)
				continue;
		}
		break;
	}
	return rc;
}

/* The first of msgs[first..n) that fails its CRC, else n.  Over the
 * shared bytes, before the check that tells whether they were intact. */
static size_t first_bad_crc(const struct shmbus_message *msgs, size_t first, size_t n)
{
	for (size_t i = first; i < n; i++)
		if (!crc_ok(&msgs[i]))
			return i;
	return n;
}

/* The first of msgs[first..n) that may have been overwritten while we
 * read or copied it, or was retired meanwhile (format.md §6, step 3),
 * else n. */
_Static_assert(sizeof(((struct shmbus_message *)0)->priv[1]) == sizeof(uint64_t),
	       "a message's position is a u64 for part_first_lost()");

static size_t first_lost(const struct assignment *a, const struct shmbus_message *msgs,
			 size_t first, size_t n)
{
	if (first >= n)
		return n;
	return first + part_first_lost(a->p, &msgs[first].priv[1], &msgs[first].offset, n - first,
				       sizeof msgs[0]);
}

/*
 * Keep of msgs[first..*n) what may be handed out.  The lap is checked
 * first: a record overwritten while read fails its CRC too, and is a lap
 * (reported exactly, by the reset policy), not damage.  Only a record
 * intact by position whose CRC fails is damaged.  A record retired while
 * we read it is lost like a lapped one: none below start is handed out.
 */
static int check_run(shmbus_consumer *c, struct assignment *a, struct shmbus_message *msgs,
		     size_t first, size_t *n, size_t *copied, int rc)
{
	size_t bad = c->o.check_crc ? first_bad_crc(msgs, first, *n) : *n, lost;

	if (c->o.copy && *n > first && copy_out(c, msgs, first, *n, copied) < 0)
		return lib_err(-ENOMEM, "out of memory");
	lost = first_lost(a, msgs, first, *n);
	if (bad < lost) {
		c->st.crc_errors++;
		*n = bad;
		part_seek(a->p, &a->cur, msgs[bad].offset + 1);
		return lib_err(-EBADMSG, "partition %s/%d: record at offset %llu fails its CRC32C "
			       "check; it was damaged in shared memory", a->topic, a->partition,
			       (unsigned long long)msgs[bad].offset);
	}
	if (lost < *n) {
		uint64_t off = msgs[lost].offset;

		/* back to the lost record, so ERROR policy reports it again
		 * until the application seeks */
		a->cur = (struct part_cursor){ .off = off, .pos = msgs[lost].priv[1],
					       .skip_until = off, .cuts = a->cur.cuts };
		*n = lost;
		rc = reset(c, a, off);
	}
	return rc;
}

static int gather_one(shmbus_consumer *c, struct assignment *a, struct shmbus_message *msgs,
		      size_t max, size_t *n, size_t *copied)
{
	size_t first = *n;
	uint64_t skipped = a->cur.skipped;
	int rc;

	bp_follow(a); /* views of the previous poll are released */
	rc = read_run(c, a, msgs, max, n);
	c->st.aborted_skipped += a->cur.skipped - skipped;
	if (*n > first)
		rc = check_run(c, a, msgs, first, n, copied, rc);
	if (c->o.copy)
		for (size_t i = first; i < *n; i++)
			msgs[i].priv[0] = 0;
	if (rc == -EIDRM)
		return lib_err(rc, "topic \"%s\" was deleted; unassign it", a->topic);
	if (rc == -ESTALE) {
		c->st.cuts++;
		return lib_err(rc, "partition %s/%d: its end was cut back to offset %llu while this "
			       "consumer stood at %llu (a mirror of a promoted source dropped "
			       "records its old source had, format.md §14): records read from "
			       "offset %llu on are not in the log any more; reading goes on from "
			       "%llu", a->topic, a->partition, (unsigned long long)a->cur.off,
			       (unsigned long long)a->cur.cut_from, (unsigned long long)a->cur.off,
			       (unsigned long long)a->cur.off);
	}
	if (rc == -ERANGE && *n > first)
		return 0; /* deliver these; the cursor still points at the loss */
	return rc < 0 ? rc : 0;
}

static int gather(shmbus_consumer *c, struct shmbus_message *msgs, size_t max)
{
	size_t n = 0, copied = 0;

	/* round robin from c->rr (< nas): a wrap, not a division, per poll */
	for (size_t k = 0, i = c->rr; k < c->nas && n < max; k++, i = i + 1 < c->nas ? i + 1 : 0) {
		struct assignment *a = c->as[i];
		int rc = gather_one(c, a, msgs, max, &n, &copied);

		if (rc < 0) {
			if (n)  /* hand out what we have; report the error next time */
				c->pending_err = rc;
			else
				return rc;
			break;
		}
	}
	c->rr = c->rr + 1 < c->nas ? c->rr + 1 : 0;
	c->st.delivered += n;
	if (SHMBUS_PROBE_ENABLED(deliver))
		lib_probe_deliver(msgs, n);
	return (int)n;
}

SHMBUS_API int shmbus_consumer_poll(shmbus_consumer *c, struct shmbus_message *msgs, size_t max,
				    int timeout_ms)
{
	int64_t deadline = 0, spin_end;
	int n;

	if (c->pending_err) {
		n = c->pending_err;
		c->pending_err = 0;
		return n;
	}
	if (c->nas == 0)
		return lib_err(-EINVAL, "the consumer has no partitions; assign some first");
	if (max == 0)
		return 0;
	n = gather(c, msgs, max);
	if (n != 0 || timeout_ms == 0)
		return n;
	if (timeout_ms > 0)
		deadline = mono_ns() + (int64_t)timeout_ms * 1000000;
	spin_end = mono_ns() + c->spin_ns;
	if (deadline && spin_end > deadline)
		spin_end = deadline;
	/* busy-poll: one pause between polls, the clock every 16 */
	for (unsigned i = 1; c->spin_ns; i++) {
		n = gather(c, msgs, max);
		if (n != 0)
			return n;
		cpu_relax();
		if (!(i & 15) && mono_ns() >= spin_end)
			break;
	}
	for (;;) {
		uint32_t *words[SHM_FUTEX_MAX_WAITV], expected[SHM_FUTEX_MAX_WAITV];
		size_t room = SHM_FUTEX_MAX_WAITV - (c->wake_word != NULL);
		size_t k = c->nas < room ? c->nas : room;
		int64_t until = deadline;
		bool poll_soon = c->nas > k;

		for (size_t i = 0; i < k; i++) {
			struct assignment *a = c->as[i];

			if (c->o.isolation == SHMBUS_ISOLATION_MIRRORED) {
				words[i] = part_mirrored_word(a->p);
				expected[i] = part_mirrored_prepare(a->p);
			} else {
				words[i] = part_wait_word(a->p);
				expected[i] = part_wait_prepare(a->p);
			}
			part_cursor_recheck(&a->cur); /* a stalled claim times the sleep */
			poll_soon |= a->p->readonly;
		}
		if (c->wake_word) {
			/* pairs with the coordinator's group_publish(): prepared
			 * before the check, so a wake after it is not missed */
			words[k] = c->wake_word;
			expected[k] = futex_word_prepare(c->wake_word);
		}
		/* re-check after announcing the wait, or a wake may be missed */
		n = gather(c, msgs, max);
		if (n != 0)
			return n;
		if (c->wake_check && c->wake_check(c->wake_arg))
			return 0;
		for (size_t i = 0; i < c->nas; i++) {
			int64_t since = part_stall_clock(&c->as[i]->cur);

			if (since && (!until || since + c->unblock_ns < until))
				until = since + c->unblock_ns;
		}
		/* read-only mappings cannot announce a waiter, and a wait holds
		 * 128 words at most: poll those every millisecond */
		if (poll_soon && (!until || mono_ns() + 1000000 < until))
			until = mono_ns() + 1000000;
		c->st.waits++;
		SHMBUS_PROBE(wait, c->as[0]->topic, c->as[0]->partition, k);
		futex_wait_many(words, expected, k + (c->wake_word != NULL), until);
		/* a member that slept through a rebalance (or was stopped) must
		 * not read partitions it may have lost: back to member.c first */
		if (c->wake_check && c->wake_check(c->wake_arg))
			return 0;
		c->woke = true;
		n = gather(c, msgs, max);
		c->woke = false;
		if (n != 0)
			return n;
		if (deadline && mono_ns() >= deadline)
			return 0;
	}
}

SHMBUS_API int shmbus_message_valid(const struct shmbus_message *m)
{
	const struct part *p = (const struct part *)m->priv[0];

	if (!p)
		return 0; /* a copy */
	return part_intact(p, m->priv[1]) ? 0 : -ERANGE;
}

SHMBUS_API int shmbus_message_header(const struct shmbus_message *m, size_t i,
				     struct shmbus_header *ret)
{
	struct frame_kv kv;
	size_t cursor = 0;
	int rc;

	for (size_t k = 0;; k++) {
		rc = frame_headers_next(m->headers_raw, m->headers_raw_len, &cursor, &kv);
		if (rc <= 0)
			return rc < 0 ? lib_err(-EBADMSG, "record %s/%d@%llu has damaged headers",
						m->topic, m->partition,
						(unsigned long long)m->offset)
				      : -ENOENT;
		if (k == i)
			break;
	}
	*ret = (struct shmbus_header){ .name = kv.name, .name_len = kv.name_len,
				       .value = kv.value, .value_len = kv.value_len };
	return 0;
}

SHMBUS_API int shmbus_message_header_last(const struct shmbus_message *m, const char *name,
					  struct shmbus_header *ret)
{
	size_t nlen = strlen(name), cursor = 0;
	struct frame_kv kv;
	bool found = false;
	int rc;

	while ((rc = frame_headers_next(m->headers_raw, m->headers_raw_len, &cursor, &kv)) == 1) {
		if (kv.name_len == nlen && !memcmp(kv.name, name, nlen)) {
			*ret = (struct shmbus_header){ .name = kv.name, .name_len = kv.name_len,
						       .value = kv.value, .value_len = kv.value_len };
			found = true;
		}
	}
	if (rc < 0)
		return lib_err(-EBADMSG, "record %s/%d@%llu has damaged headers", m->topic,
			       m->partition, (unsigned long long)m->offset);
	return found ? 0 : -ENOENT;
}

/* ------------------------------------------------------------------ */
/* Groups                                                              */

static int need_group(const shmbus_consumer *c)
{
	if (!c->has_group)
		return lib_err(-EINVAL, "the consumer has no group; set opts.group to commit offsets");
	return 0;
}

SHMBUS_API int shmbus_consumer_commit(shmbus_consumer *c)
{
	int rc = need_group(c);

	for (size_t i = 0; rc == 0 && i < c->nas; i++) {
		struct assignment *a = c->as[i];
		uint64_t pos = a->cur.off < a->cur.skip_until ? a->cur.skip_until : a->cur.off;

		rc = group_commit(&c->g, a->topic_id, (uint32_t)a->partition, pos, 0);
	}
	return rc;
}

SHMBUS_API int shmbus_consumer_commit_offset(shmbus_consumer *c, const char *topic,
					     int32_t partition, uint64_t offset)
{
	struct bus_topic t;
	int rc = need_group(c);

	if (rc)
		return rc;
	rc = topic_lookup(c->bus, topic, &t);
	if (rc)
		return rc;
	rc = check_partition(topic, t.partitions, partition);
	return rc ? rc : group_commit(&c->g, t.id, (uint32_t)partition, offset, 0);
}

SHMBUS_API int shmbus_consumer_committed(shmbus_consumer *c, const char *topic, int32_t partition,
					 uint64_t *ret)
{
	struct bus_topic t;
	int rc = need_group(c);

	if (rc)
		return rc;
	rc = topic_lookup(c->bus, topic, &t);
	if (rc)
		return rc;
	rc = check_partition(topic, t.partitions, partition);
	if (rc)
		return rc;
	rc = group_fetch(&c->g, t.id, (uint32_t)partition, ret, NULL);
	return rc == -ENOENT ? lib_err(rc, "group \"%s\" has no committed offset for %s/%d",
				       c->group, topic, partition)
			     : rc;
}

SHMBUS_API int shmbus_consumer_stats(const shmbus_consumer *c, struct shmbus_consumer_stats *ret)
{
	int rc = OUT_CHECK(shmbus_consumer_stats, ret);

	if (rc == 0)
		OUT_STORE(ret, c->st);
	return rc;
}
