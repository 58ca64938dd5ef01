/*
 * mirror_epoch.c - epochs in mirroring (docs/protocol.md §M3, §M9, §M10;
 * format.md §14), Kafka's KIP-101 on shmbusd's terms:
 *
 *  - the source sends a fetch's partition's history (EPOCHS) before any
 *    record, and again whenever it changes, and streams only to a mirror
 *    whose log is a prefix of its own (epochs_fetch_ok);
 *  - the mirror compares: in step, it follows; its log went further than
 *    the source's in an epoch both hold (an old source back as a mirror
 *    of the replica promoted in its place), it cuts its log there and
 *    logs every offset cut; no epoch in common (the source partition was
 *    recreated), it stops that partition, or with resync = on starts its
 *    replica over; a plain local topic whose last epoch the source holds
 *    and went past (it was promoted from this host's log) becomes a
 *    replica first, and any other is left alone;
 *  - promote makes a replica writable under a new epoch from its end.
 *
 * The decisions are here; the sockets and the replicas' state are in
 * mirror_source.c and mirror_sink.c, which call these.
 */
#include "mirror.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../shm/read.h"
#include "../util/error.h"

/* ------------------------------------------------------------------ */
/* The source's side                                                   */

int mirror_epochs_msg(struct part *p, uint32_t id, struct mp_msg *m, uint64_t *ret_version)
{
	uint64_t tail, end;
	int rc;

	*m = (struct mp_msg){ .type = MP_EPOCHS, .u.epochs.id = id };
	/* the word first: a change after it is sent again */
	*ret_version = part_epochs_version(p->hdr);
	rc = part_epochs_read(p, &m->u.epochs.hist);
	part_ends(p, &tail, &end);
	m->u.epochs.end = end;
	return rc;
}

bool mirror_fetch_ok(const struct mp_msg *epochs, uint64_t mirror_epoch, uint64_t from)
{
	return epochs_fetch_ok(&epochs->u.epochs.hist, epochs->u.epochs.end, mirror_epoch, from);
}

/* ------------------------------------------------------------------ */
/* The mirror's side                                                   */

static void both(char *buf, size_t len, const struct epoch_hist *mine, uint64_t end,
		 const struct epoch_hist *src, uint64_t src_end)
{
	char a[300], b[300];

	epochs_text(mine, a, sizeof a);
	epochs_text(src, b, sizeof b);
	snprintf(buf, len, "this host's epochs %s (end %llu), the source's %s (end %llu)", a,
		 (unsigned long long)end, b, (unsigned long long)src_end);
}

enum mirror_verdict mirror_epochs_verdict(struct part *p, bool replica, const struct epoch_hist *src,
					  uint64_t src_end, uint64_t *ret_off, char *why,
					  size_t len)
{
	struct epoch_hist mine;
	uint64_t tail, end, last, epoch;

	why[0] = '\0';
	*ret_off = 0;
	part_ends(p, &tail, &end);
	if (part_epochs_read(p, &mine) < 0) {
		snprintf(why, len, "%s", shm_errmsg());
		return MV_FOREIGN;
	}
	last = epochs_last(&mine);
	both(why, len, &mine, end, src, src_end);
	if (!replica) {
		/* taken over only if the source went on from this host's log
		 * under a newer epoch: it was promoted in this host's place */
		if (last && epochs_find(src, last) >= 0 && last != epochs_last(src))
			return MV_CONVERT;
		return MV_FOREIGN;
	}
	if (epochs_fetch_ok(src, src_end, last, end))
		return MV_FOLLOW;
	if (last == 0 || !epochs_diverge(&mine, end, src, src_end, ret_off, &epoch))
		return MV_RECREATED;
	return MV_CUT;
}

int mirror_epochs_cut(const char *label, const char *topic, uint32_t partition, struct part *p,
		      uint64_t off, struct part_cut *ret)
{
	int rc = part_truncate(p, off, ret);

	if (rc < 0) {
		log_err("mirror %s: %s/%u: cannot cut this host's log back to offset %llu, where it "
			"parts from the source's: %s; it is not mirrored until it can be",
			label, topic, partition, (unsigned long long)off, shm_errmsg());
		return rc;
	}
	if (rc == 0) {
		/* nothing past the end to cut: the history alone had an epoch
		 * of its own from there */
		if (part_epochs_trim(p, off) < 0)
			log_warn("mirror %s: %s/%u: %s", label, topic, partition, shm_errmsg());
		return 0;
	}
	log_warn("mirror %s: %s/%u: cut offsets %llu..%llu (%llu offsets, %llu records) that the "
		 "source does not have: this host's log parted from the source's at offset %llu "
		 "(it went on under an epoch of its own, or further in one the source ended "
		 "there); it now follows the source from %llu", label, topic, partition,
		 (unsigned long long)ret->from, (unsigned long long)ret->to - 1,
		 (unsigned long long)(ret->to - ret->from), (unsigned long long)ret->records,
		 (unsigned long long)ret->from, (unsigned long long)ret->from);
	return 1;
}

/* ------------------------------------------------------------------ */
/* Promote                                                             */

#define PROMOTE_MAX BUS_MAX_PARTITIONS_N

int mirror_promote(struct daemon *d, const char *topic, char *report, size_t len, char *msg,
		   size_t msglen)
{
	struct admin_promoted *out = calloc(PROMOTE_MAX, sizeof *out);
	struct bus_topic t;
	size_t at = 0;
	int n, rc;

	report[0] = msg[0] = '\0';
	if (!out) {
		snprintf(msg, msglen, "shmbusd is out of memory");
		return -ENOMEM;
	}
	if (dir_lookup(&d->dir, topic, &t) < 0) {
		free(out);
		snprintf(msg, msglen, "topic \"%s\" does not exist: nothing to promote", topic);
		return -ENOENT;
	}
	if (!(t.flags & BUS_TOPIC_REPLICA)) {
		free(out);
		snprintf(msg, msglen, "topic \"%s\" is not a replica (producers may append to it "
			 "already): nothing to promote", topic);
		return -EINVAL;
	}
	/* the mirror lets go of it first: nothing appends from the source */
	rc = mirror_sink_release(d, topic);
	if (rc < 0) {
		free(out);
		snprintf(msg, msglen, "topic \"%s\": its mirror did not stop within its timeout; "
			 "try again, or stop shmbusd, take the topic out of the mirror's topics "
			 "and promote after a restart", topic);
		return rc;
	}
	n = admin_replica_promote(d->bus, topic, out, PROMOTE_MAX);
	if (n < 0) {
		snprintf(msg, msglen, "%s", shmbus_errmsg());
		free(out);
		return n;
	}
	for (int i = 0; i < n && at < len; i++) {
		int k = snprintf(report + at, len - at, "partition=%u\tepoch=%016llx\tfrom=%llu\n",
				 out[i].partition, (unsigned long long)out[i].epoch,
				 (unsigned long long)out[i].from);

		if (k < 0 || (size_t)k >= len - at)
			break;
		at += (size_t)k;
		log_notice("promoted %s/%u (a replica of %.64s): writable here from offset %llu "
			   "under the new epoch %016llx; all %llu offsets it holds are kept",
			   topic, out[i].partition, t.mirror_source,
			   (unsigned long long)out[i].from, (unsigned long long)out[i].epoch,
			   (unsigned long long)out[i].from);
	}
	log_warn("topic \"%s\" promoted: it is no longer mirrored from %.64s, and local producers "
		 "may append; its old source must not take producers again (split brain): bring "
		 "it back as a mirror of this host, and it cuts what it has past the promotion",
		 topic, t.mirror_source);
	free(out);
	return n;
}
