/*
 * producer_acks.c - a producer's acks=mirrors (docs/protocol.md §M11): a
 * send returns once its record is below the partition's mirrored
 * offset, which the source's shmbusd raises as its mirrors acknowledge
 * (shm/mirrored.c, format.md §15).  The wait is a futex sleep on the
 * offset's own word; no message to the daemon on the way.
 *
 * The daemon is asked twice only: when the producer is made (does
 * anything publish the mirrored offset here?), and when a wait times
 * out, for the mirrors of the partition as the source sees them, to
 * name those that lag (MIRROR_STATUS, protocol.md §9).
 */
#include "internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "../shm/mirrored.h"
#include "../util/clock.h"

#define FOLLOWERS_MAX 256    /* of one topic, asked of the daemon on a timeout */
#define NAMED_MAX     3      /* mirrors a message names */

int producer_acks_check(shmbus *bus, const char *topic, struct producer_acks *ret)
{
	struct shmbus_daemon_status *st = calloc(1, sizeof *st);
	char why[128];
	int rc;

	if (!st)
		return lib_err(-ENOMEM, "out of memory");
	st->sz = sizeof *st;
	rc = shmbus_daemon_status(bus, st);
	snprintf(why, sizeof why, "%s", shmbus_errmsg()); /* the next message overwrites it */
	if (rc == -ENOENT)
		rc = lib_err(-ENOTCONN, "acks=mirrors for topic \"%s\": no shmbusd serves %s (%s), "
			     "and only shmbusd's [mirror-listen] publishes the mirrored offset; start "
			     "shmbusd with a [mirror-listen] section (shmbusd.conf(5)), or use "
			     "acks=local", topic, bus->root, why);
	else if (rc == 0 && !st->mirror_listen[0])
		rc = lib_err(-ENOTCONN, "acks=mirrors for topic \"%s\": shmbusd (pid %d) serving %s "
			     "has no [mirror-listen] section (or is older than 1.2), so no mirror "
			     "can ever acknowledge a record; add [mirror-listen] to its "
			     "configuration and restart it, or use acks=local", topic, (int)st->pid,
			     bus->root);
	if (rc == 0) {
		snprintf(ret->listen, sizeof ret->listen, "%s", st->mirror_listen);
		ret->min_mirrors = st->min_mirrors ? st->min_mirrors : 1;
	}
	free(st);
	return rc;
}

/* Append to a message being built in buf (len bytes, used so far). */
static void say(char *buf, size_t len, size_t *used, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void say(char *buf, size_t len, size_t *used, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*used >= len)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf + *used, len - *used, fmt, ap);
	va_end(ap);
	if (n > 0)
		*used += (size_t)n < len - *used ? (size_t)n : len - *used - 1;
}

/* One mirror id is one mirror (protocol.md §M12); without ids,
 * "10.0.0.2:41234" and "10.0.0.2:41300" are one mirror's address. */
static bool same_mirror(const struct shmbus_mirror_follower *a,
			const struct shmbus_mirror_follower *b)
{
	const char *ca = strrchr(a->peer, ':'), *cb = strrchr(b->peer, ':');
	size_t na = ca ? (size_t)(ca - a->peer) : strlen(a->peer);
	size_t nb = cb ? (size_t)(cb - b->peer) : strlen(b->peer);

	if (a->id[0] && b->id[0])
		return !strcmp(a->id, b->id);
	return na == nb && !strncmp(a->peer, b->peer, na) && !strcmp(a->host, b->host);
}

/* Mirrors following partitions of any topic here (a mirror following
 * several counts for each): 0 if none, or if the daemon cannot say. */
static size_t connected(shmbus *bus, struct shmbus_mirror_follower *f)
{
	size_t k = 0;
	int n;

	f[0].sz = sizeof *f;
	n = shmbus_mirror_followers(bus, NULL, f, FOLLOWERS_MAX);
	for (int i = 0; i < n && i < FOLLOWERS_MAX; i++)
		k += !strcmp(f[i].state, "following");
	return k;
}

/* Why partition `part` is not mirrored past `off`, from the followers
 * f[0..n) of its topic (f has room for FOLLOWERS_MAX more), into buf. */
static void why_lagging(shmbus *bus, const struct producer_acks *a, uint32_t part, uint64_t off,
			struct shmbus_mirror_follower *f, size_t n, char *buf, size_t len)
{
	size_t used = 0, following = 0, others = 0, named = 0;

	for (size_t i = 0; i < n; i++) {
		bool again = false;

		if (strcmp(f[i].state, "following"))
			continue;
		if (f[i].partition != (int32_t)part) {
			others++;
			continue;
		}
		/* a mirror on two connections (it reconnected) counts once */
		for (size_t j = 0; j < i; j++)
			again |= !strcmp(f[j].state, "following") && f[j].partition == (int32_t)part &&
				 same_mirror(&f[i], &f[j]);
		following += !again;
	}
	if (following == 0 && others)
		say(buf, len, &used, "no mirror follows it (mirrors follow other partitions of "
		    "the topic); ");
	else if (following == 0)
		/* the gone mirrors are in f[0..n): ask for all past them */
		say(buf, len, &used, "no mirror follows it (%s); ",
		    connected(bus, f + n) ? "mirrors are connected to this host's [mirror-listen], "
		    "but none follows this topic: check their topics patterns" :
		    "none is connected to this host's [mirror-listen]");
	else if (following < a->min_mirrors)
		say(buf, len, &used, "only %zu of the %u mirrors min_mirrors asks for follow it; ",
		    following, a->min_mirrors);
	else
		say(buf, len, &used, "min_mirrors is %u; ", a->min_mirrors);
	for (size_t i = 0; i < n && named < NAMED_MAX; i++) {
		if (strcmp(f[i].state, "following") || f[i].partition != (int32_t)part ||
		    f[i].acked > off)
			continue;
		say(buf, len, &used, "%s (%s) holds up to %llu, its last ACK %lld ms ago; ",
		    f[i].host, f[i].peer, (unsigned long long)f[i].acked, (long long)f[i].ack_age_ms);
		named++;
	}
	for (size_t i = 0; i < n && named < NAMED_MAX; i++) {
		bool back = false;

		if (strcmp(f[i].state, "disconnected"))
			continue;
		for (size_t j = 0; j < n; j++)
			back |= !strcmp(f[j].state, "following") && f[j].partition == (int32_t)part &&
				same_mirror(&f[i], &f[j]);
		if (back)
			continue;
		say(buf, len, &used, "%s (%s) disconnected %lld ms ago: %s; ", f[i].host, f[i].peer,
		    (long long)f[i].ack_age_ms, f[i].last_error);
		named++;
	}
	say(buf, len, &used, "check the mirrors' [mirror \"NAME\"] source and topics, their "
	    "shmbusd, and the network to %s", a->listen);
}

int producer_acks_wait(shmbus *bus, const struct producer_acks *a, struct part *p,
		       const char *topic, uint32_t part, uint64_t off, int64_t deadline_ns)
{
	struct shmbus_mirror_follower *f;
	char why[400];
	int rc, n;

	rc = part_mirrored_wait(p, off, deadline_ns);
	if (rc == -EIDRM)
		return lib_err(rc, "topic \"%s\" was deleted while a send waited for its mirrors",
			       topic);
	if (rc == 0)
		return 0;
	/* -ETIMEDOUT: ask who lags */
	f = calloc(2 * FOLLOWERS_MAX, sizeof *f); /* the topic's, then all (connected()) */
	if (!f)
		return lib_err(-ETIMEDOUT, "record %s/%u@%llu is not mirrored after %d ms",
			       topic, part, (unsigned long long)off, a->timeout_ms);
	f[0].sz = sizeof *f;
	n = shmbus_mirror_followers(bus, topic, f, FOLLOWERS_MAX);
	if (n < 0)
		snprintf(why, sizeof why, "shmbusd cannot say which mirrors lag: %s",
			 shmbus_errmsg());
	else
		why_lagging(bus, a, part, off, f, (size_t)(n < FOLLOWERS_MAX ? n : FOLLOWERS_MAX), why,
			    sizeof why);
	free(f);
	return lib_err(-ETIMEDOUT, "record %s/%u@%llu is in this host's log but not mirrored "
		       "after %d ms (acks=mirrors; mirrored offset %llu): %s", topic, part,
		       (unsigned long long)off, a->timeout_ms,
		       (unsigned long long)part_mirrored(p), why);
}
