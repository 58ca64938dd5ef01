/*
 * mirror_acks.c - the source's view of its mirrors' positions, and the
 * mirrored offset it publishes from them (docs/protocol.md §M11,
 * format.md §15; Kafka's high watermark).
 *
 * Each fetch of each mirror connection is a follower of one partition.
 * Its position is the replica's end its mirror last acknowledged, or the
 * offset it fetched from until it acknowledges: the mirror holds every
 * offset below it.  An end beyond what the connection sent is not
 * believed (a mirror holds only what it was sent, or had at FETCH).
 *
 * At each change of a position, the partition's followers are counted
 * one per mirror, a mirror being its mirror id (protocol.md §M12: made
 * once in its root, said in its HELLO), so a mirror that reconnected
 * from another address before its old connection timed out here counts
 * once, at its newest position, and two hosts behind one address count
 * twice.  A newer connection of an id replaces the older ones at once
 * (acks_replace: their followers count no more; mirror_source.c closes
 * them).  A mirror of protocol version 2 has no id: it is counted by its
 * host name and its address without the port, and the same as any
 * follower of that name and address (counting too few mirrors only
 * delays an acknowledgement; too many would break it).  The mirrored offset is
 * raised to the min_mirrors-th highest position (shm/mirrored.c caps it
 * at the partition's end).  It never moves back: a mirror that falls
 * behind or disconnects leaves it where it is, and the next record waits
 * for min_mirrors mirrors again.
 *
 * The followers of every connection are in one table under one mutex,
 * hashed by partition.  A mirror ACKs at most once per DATA batch per
 * fetch (§M3), so the lock is taken thousands of times a second at
 * most, each time for the followers of one partition.  The last few
 * mirrors that disconnected, and why, are kept for the status (and so
 * for a producer's -ETIMEDOUT message).
 */
#include "mirror_acks.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../shm/mirrored.h"
#include "../shm/read.h"
#include "../util/clock.h"

#define BUCKETS       1024
#define PER_PART_MAX  128    /* followers of one partition counted (64 connections) */
#define GONE_MAX      16     /* disconnected mirrors remembered */

struct follower {
	struct follower *next;       /* in its bucket */
	struct part *p;
	uint64_t topic_id;
	uint32_t partition;
	const struct acks_mirror *who;   /* its connection's */
	const char *topic;               /* its fetch's */
	bool replaced;               /* a newer connection of its mirror took over */
	uint64_t acked;              /* it holds every offset below */
	uint64_t sent;               /* what its connection sent it */
	int64_t heard_ns;            /* its last ACK or its FETCH (CLOCK_MONOTONIC) */
};

struct gone {
	char host[64];
	char peer[96];
	char id[2 * MP_ID_SIZE + 1];
	char why[160];
	int64_t at_ns;
};

static struct {
	pthread_mutex_t lock;
	unsigned min_mirrors;
	struct follower *buckets[BUCKETS];
	struct gone gone[GONE_MAX];
	unsigned ngone;              /* ever recorded; gone[ngone % GONE_MAX] is next */
} acks = { .lock = PTHREAD_MUTEX_INITIALIZER, .min_mirrors = 1 };

void acks_init(unsigned min_mirrors)
{
	pthread_mutex_lock(&acks.lock);
	acks.min_mirrors = min_mirrors ? min_mirrors : 1;
	pthread_mutex_unlock(&acks.lock);
}

static struct follower **bucket(uint64_t topic_id, uint32_t partition)
{
	return &acks.buckets[(topic_id * 0x9e3779b97f4a7c15ULL + partition) % BUCKETS];
}

/* "10.0.0.2:41234" and "10.0.0.2:41300" are one address; "[::1]:9" too. */
static size_t addr_len(const char *peer)
{
	const char *colon = strrchr(peer, ':');

	return colon ? (size_t)(colon - peer) : strlen(peer);
}

static bool has_id(const struct acks_mirror *m)
{
	return m->id_hex[0] != '\0';
}

static bool same_mirror(const struct follower *fa, const struct follower *fb)
{
	const struct acks_mirror *a = fa->who, *b = fb->who;
	size_t n = addr_len(a->peer);

	if (has_id(a) && has_id(b))
		return !memcmp(a->id, b->id, MP_ID_SIZE);
	return n == addr_len(b->peer) && !strncmp(a->peer, b->peer, n) && !strcmp(a->host, b->host);
}

/* Positions of p's followers, one per mirror (its newest), into pos;
 * how many. */
static size_t positions(const struct part *p, uint64_t *pos)
{
	const struct follower *seen[PER_PART_MAX];
	size_t n = 0;

	for (const struct follower *f = *bucket(p->topic_id, p->partition); f; f = f->next) {
		size_t i;

		if (f->topic_id != p->topic_id || f->partition != p->partition || f->replaced)
			continue;
		for (i = 0; i < n && !same_mirror(seen[i], f); i++)
			;
		if (i < n) {
			if (f->heard_ns > seen[i]->heard_ns)
				seen[i] = f;
		} else if (n < PER_PART_MAX) {
			seen[n++] = f;
		}
	}
	for (size_t i = 0; i < n; i++)
		pos[i] = seen[i]->acked;
	return n;
}

/* Raise p's mirrored offset to the min_mirrors-th highest position.
 * Under the lock. */
static void publish(struct part *p)
{
	uint64_t pos[PER_PART_MAX];
	size_t n = positions(p, pos), k = acks.min_mirrors;

	if (n < k)
		return;
	/* partial selection sort: the k highest first (n <= 128, k <= 64) */
	for (size_t i = 0; i < k; i++)
		for (size_t j = i + 1; j < n; j++)
			if (pos[j] > pos[i]) {
				uint64_t t = pos[i];

				pos[i] = pos[j];
				pos[j] = t;
			}
	part_mirrored_raise(p, pos[k - 1]);
}

struct follower *acks_follow(const struct acks_mirror *who, const char *topic, struct part *p,
			     uint64_t from)
{
	struct follower *f = calloc(1, sizeof *f), **b;
	uint64_t tail, end;

	if (!f)
		return NULL;
	part_ends(p, &tail, &end);
	*f = (struct follower){ .p = p, .topic_id = p->topic_id, .partition = p->partition,
				.who = who, .topic = topic,
				/* past our end it holds another log: nothing of ours */
				.acked = from <= end ? from : 0, .sent = from,
				.heard_ns = mono_ns() };
	pthread_mutex_lock(&acks.lock);
	b = bucket(f->topic_id, f->partition);
	f->next = *b;
	*b = f;
	publish(p);
	pthread_mutex_unlock(&acks.lock);
	return f;
}

void acks_ack(struct follower *f, uint64_t end, uint64_t sent)
{
	if (!f)
		return;
	pthread_mutex_lock(&acks.lock);
	f->sent = sent;
	f->acked = end < sent ? end : sent;
	f->heard_ns = mono_ns();
	publish(f->p);
	pthread_mutex_unlock(&acks.lock);
}

size_t acks_replace(const struct acks_mirror *old)
{
	size_t n = 0;

	pthread_mutex_lock(&acks.lock);
	for (size_t i = 0; i < BUCKETS; i++)
		for (struct follower *f = acks.buckets[i]; f; f = f->next)
			if (f->who == old && !f->replaced) {
				f->replaced = true;
				n++;
			}
	pthread_mutex_unlock(&acks.lock);
	return n;
}

void acks_unfollow(struct follower *f)
{
	if (!f)
		return;
	pthread_mutex_lock(&acks.lock);
	for (struct follower **at = bucket(f->topic_id, f->partition); *at; at = &(*at)->next)
		if (*at == f) {
			*at = f->next;
			break;
		}
	pthread_mutex_unlock(&acks.lock);
	free(f);
}

void acks_gone(const struct acks_mirror *who, const char *why)
{
	struct gone *g;

	pthread_mutex_lock(&acks.lock);
	g = &acks.gone[acks.ngone++ % GONE_MAX];
	snprintf(g->host, sizeof g->host, "%s", who->host[0] ? who->host : "?");
	snprintf(g->peer, sizeof g->peer, "%s", who->peer);
	snprintf(g->id, sizeof g->id, "%s", who->id_hex);
	snprintf(g->why, sizeof g->why, "%s", why);
	g->at_ns = mono_ns();
	pthread_mutex_unlock(&acks.lock);
}

/* ------------------------------------------------------------------ */
/* Status (protocol.md §9)                                             */

/* Append one printf'd line to buf[*used, len) if it fits whole. */
static bool put_line(char *buf, size_t len, size_t *used, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static bool put_line(char *buf, size_t len, size_t *used, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*used >= len)
		return false;
	va_start(ap, fmt);
	n = vsnprintf(buf + *used, len - *used, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= len - *used) {
		buf[*used] = '\0';
		return false;
	}
	*used += (size_t)n;
	return true;
}

static bool follower_line(const struct follower *f, int64_t now, char *buf, size_t len,
			  size_t *used)
{
	uint64_t tail, end;

	part_ends(f->p, &tail, &end);
	return put_line(buf, len, used, "host=%s\tpeer=%s\ttopic=%s\tpartition=%u\tacked=%llu\t"
			"sent=%llu\tend=%llu\tlag=%llu\tmirrored=%llu\tack_age_ms=%lld\t"
			"state=following\tid=%s\tlink=%s\tcert=%s\n", f->who->host, f->who->peer,
			f->topic, f->partition,
			(unsigned long long)f->acked, (unsigned long long)f->sent,
			(unsigned long long)end,
			(unsigned long long)(end > f->acked ? end - f->acked : 0),
			(unsigned long long)part_mirrored(f->p),
			(long long)((now - f->heard_ns) / 1000000), f->who->id_hex, f->who->link,
			f->who->cert);
}

size_t acks_status_text(const char *topic, char *buf, size_t len)
{
	int64_t now = mono_ns();
	size_t used = 0;
	bool room = true;

	if (len)
		buf[0] = '\0';
	pthread_mutex_lock(&acks.lock);
	for (size_t i = 0; i < BUCKETS && room; i++)
		for (const struct follower *f = acks.buckets[i]; f && room; f = f->next)
			if (!f->replaced && (!topic || !topic[0] || !strcmp(f->topic, topic)))
				room = follower_line(f, now, buf, len, &used);
	for (unsigned i = 0; i < GONE_MAX && i < acks.ngone && room; i++) {
		const struct gone *g = &acks.gone[(acks.ngone - 1 - i) % GONE_MAX];

		room = put_line(buf, len, &used, "host=%s\tpeer=%s\tstate=disconnected\t"
				"ago_ms=%lld\tlast_error=%s\tid=%s\n", g->host, g->peer,
				(long long)((now - g->at_ns) / 1000000), g->why, g->id);
	}
	pthread_mutex_unlock(&acks.lock);
	return used;
}
