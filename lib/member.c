/*
 * member.c - a member of a consumer group coordinated by shmbusd
 * (daemon/coordinator.c; docs/protocol.md §8).
 *
 * The member reads through an ordinary consumer whose partitions it
 * assigns and unassigns as the coordinator says.  Nothing runs in the
 * background: poll() does the group's work before it reads.
 *   1. If the group epoch in the group file moved (a rebalance), or a
 *      heartbeat is due, it sends HEARTBEAT with the member epoch it has
 *      applied and gets its current assignment back.
 *   2. If that assignment is newer, it applies it: revoked partitions
 *      first (on_revoked, then auto-commit of their positions, fenced by
 *      their owner epochs, then unassign), then added ones (assigned at
 *      the group's committed offset; on_assigned), and acknowledges it at
 *      once with another HEARTBEAT, which lets the coordinator hand what
 *      it revoked to the next owner.
 *   3. It auto-commits when due, then reads; while it sleeps for records
 *      it also sleeps on the group file's wake word (consumer_wake_on),
 *      so a rebalance wakes it at once.
 */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "../util/clock.h"
#include "../util/ctlproto.h"
#include "../util/futex.h"

#define JOIN_TIMEOUT_MS   5000
#define HB_TIMEOUT_MS     5000
#define AUTO_COMMIT_MS    5000
#define APPLY_ROUNDS      4        /* assignments applied in one poll, at most */

struct owned {
	char topic[PART_NAME_MAX + 1];
	uint64_t topic_id;
	int32_t partition;
	uint64_t owner_epoch;
};

struct shmbus_member {
	shmbus *bus;
	shmbus_consumer *c;
	struct shmbus_member_opts o;
	struct shmbus_consumer_opts co;
	char group[PART_NAME_MAX + 1];
	char instance[PART_NAME_MAX + 1];
	char *pattern;
	char *topic_list;          /* newline-separated, as JOIN sends it */
	struct group_file g;
	uint64_t id, epoch, group_epoch, seen_epoch;
	struct owned *own;
	size_t nown;
	struct shmbus_topic_partition *tps; /* scratch for callbacks and assignment() */
	int64_t hb_ns, next_hb, next_commit, last_poll;
	bool left;
};

/* A reply's member id, epochs and assignment. */
struct reply {
	uint64_t id, epoch, group_epoch;
	int64_t hb_ms;
	struct ctl_tp *tp;
	size_t n;
	int err;
};

static void read_assignment(const struct ctl_msg *rep, void *out)
{
	struct reply *r = out;
	int n = ctl_tp_count(rep, CTL_A_ASSIGNMENT);

	r->id = rep->num[CTL_A_MEMBER_ID];
	r->epoch = rep->num[CTL_A_MEMBER_EPOCH];
	r->group_epoch = rep->num[CTL_A_GROUP_EPOCH];
	r->hb_ms = ctl_signed(rep, CTL_A_HEARTBEAT_MS);
	if (n < 0 || !(r->tp = calloc(n ? (size_t)n : 1, sizeof *r->tp))) {
		r->err = n < 0 ? n : -ENOMEM;
		return;
	}
	for (int i = 0; i < n; i++)
		ctl_tp_get(rep, CTL_A_ASSIGNMENT, (size_t)i, &r->tp[i]);
	r->n = (size_t)n;
}

static void build_join(struct ctl_out *o, const void *arg)
{
	const shmbus_member *m = arg;
	char host[64] = "";

	gethostname(host, sizeof host - 1);
	ctl_put_str(o, CTL_A_GROUP, m->group);
	if (m->pattern)
		ctl_put_str(o, CTL_A_PATTERN, m->pattern);
	else
		ctl_put_str(o, CTL_A_TOPIC_LIST, m->topic_list);
	ctl_put_str(o, CTL_A_ASSIGNOR, m->o.assignor == SHMBUS_ASSIGNOR_RANGE ? "range"
				       : m->o.assignor == SHMBUS_ASSIGNOR_ROUND_ROBIN ? "round-robin"
				       : "cooperative-sticky");
	if (m->instance[0])
		ctl_put_str(o, CTL_A_INSTANCE_ID, m->instance);
	ctl_put_str(o, CTL_A_HOST, host);
	ctl_put_i64(o, CTL_A_SESSION_TIMEOUT_MS, m->o.session_timeout_ms);
	ctl_put_i64(o, CTL_A_MAX_POLL_MS, m->o.max_poll_interval_ms);
}

static void build_heartbeat(struct ctl_out *o, const void *arg)
{
	const shmbus_member *m = arg;

	ctl_put_str(o, CTL_A_GROUP, m->group);
	ctl_put_u64(o, CTL_A_MEMBER_ID, m->id);
	ctl_put_u64(o, CTL_A_ACKED_EPOCH, m->epoch);
	ctl_put_i64(o, CTL_A_LAST_POLL_NS, m->last_poll);
}

static int no_daemon(shmbus_member *m)
{
	return lib_err(-ENOTCONN, "consumer group \"%s\" needs shmbusd to coordinate it, and no "
		       "daemon serves %s: start one with `shmbusd --root %s` (or `systemctl start "
		       "shmbusd`), or assign partitions yourself (shmbus_consumer_assign, "
		       "`shmbus consume -g`)", m->group, m->bus->root, m->bus->root);
}

/* ------------------------------------------------------------------ */
/* Applying an assignment                                              */

static bool listed(const struct reply *r, uint64_t topic_id, int32_t partition)
{
	for (size_t i = 0; i < r->n; i++)
		if (r->tp[i].topic_id == topic_id && r->tp[i].partition == (uint32_t)partition)
			return true;
	return false;
}

static struct owned *owned_of(shmbus_member *m, uint64_t topic_id, int32_t partition)
{
	for (size_t i = 0; i < m->nown; i++)
		if (m->own[i].topic_id == topic_id && m->own[i].partition == partition)
			return &m->own[i];
	return NULL;
}

static void callback(shmbus_member *m, size_t from, size_t to, bool assigned)
{
	size_t n = 0;

	for (size_t i = from; i < to; i++)
		m->tps[n++] = (struct shmbus_topic_partition){ .topic = m->own[i].topic,
							      .partition = m->own[i].partition };
	if (n && assigned && m->o.on_assigned)
		m->o.on_assigned(m->o.ctx, m, m->tps, n);
	else if (n && !assigned && m->o.on_revoked)
		m->o.on_revoked(m->o.ctx, m, m->tps, n);
}

static int commit_one(shmbus_member *m, const struct owned *w, uint64_t offset)
{
	int rc = group_commit(&m->g, w->topic_id, (uint32_t)w->partition, offset, w->owner_epoch);

	if (rc == -ESTALE)
		return lib_err(rc, "partition %s/%d moved to another member of group \"%s\": the "
			       "commit of offset %llu was fenced (owner epoch %llu is stale); it "
			       "never overwrites the new owner's", w->topic, w->partition, m->group,
			       (unsigned long long)offset, (unsigned long long)w->owner_epoch);
	return rc;
}

static int commit_range(shmbus_member *m, size_t from, size_t to)
{
	int first = 0;

	for (size_t i = from; i < to; i++) {
		uint64_t pos;
		int rc = shmbus_consumer_position(m->c, m->own[i].topic, m->own[i].partition, &pos);

		if (rc == 0)
			rc = commit_one(m, &m->own[i], pos);
		if (rc < 0 && !first)
			first = rc;
	}
	return first;
}

/* Revoke what `r` does not list (everything if r is NULL): moved to the
 * end, called back, committed if `commit` (and auto-commit is on),
 * unassigned. */
static void revoke_missing(shmbus_member *m, const struct reply *r, bool commit)
{
	size_t keep = 0, n = m->nown;

	for (size_t i = 0; i < n; i++)
		if (r && listed(r, m->own[i].topic_id, m->own[i].partition)) {
			struct owned t = m->own[keep];

			m->own[keep++] = m->own[i];
			m->own[i] = t;
		}
	if (keep == n)
		return;
	callback(m, keep, n, false);
	if (m->o.auto_commit_ms >= 0 && commit)
		commit_range(m, keep, n); /* a fenced one is the new owner's already */
	for (size_t i = keep; i < n; i++)
		shmbus_consumer_unassign(m->c, m->own[i].topic, m->own[i].partition);
	m->nown = keep;
}

/* Where a newly owned partition starts: the committed offset, else the
 * reset policy. */
static int64_t reset_of(const shmbus_member *m)
{
	return m->co.reset == SHMBUS_RESET_EARLIEST ? SHMBUS_OFFSET_BEGINNING : SHMBUS_OFFSET_END;
}

static int64_t start_of(shmbus_member *m, uint64_t topic_id, uint32_t partition)
{
	uint64_t off;

	if (group_fetch(&m->g, topic_id, partition, &off, NULL) == 0)
		return (int64_t)off;
	return reset_of(m);
}

static int add(shmbus_member *m, const struct reply *r, const struct bus_topic *ts, int nt)
{
	size_t from = m->nown;
	int rc = 0;

	for (size_t i = 0; i < r->n && rc == 0; i++) {
		const struct ctl_tp *tp = &r->tp[i];
		struct owned *w = owned_of(m, tp->topic_id, (int32_t)tp->partition);
		int k;

		if (w) {
			w->owner_epoch = tp->value; /* fenced anew (a static member came back) */
			continue;
		}
		for (k = 0; k < nt && ts[k].id != tp->topic_id; k++)
			;
		if (k == nt || tp->partition >= ts[k].partitions)
			continue; /* deleted meanwhile: the next assignment drops it */
		w = &m->own[m->nown];
		*w = (struct owned){ .topic_id = tp->topic_id, .partition = (int32_t)tp->partition,
				     .owner_epoch = tp->value };
		snprintf(w->topic, sizeof w->topic, "%s", ts[k].name);
		rc = shmbus_consumer_assign(m->c, w->topic, w->partition,
					    start_of(m, tp->topic_id, tp->partition));
		if (rc == -ERANGE) /* the committed offset is no longer (or not yet) held */
			rc = shmbus_consumer_assign(m->c, w->topic, w->partition, reset_of(m));
		if (rc == 0)
			m->nown++;
	}
	callback(m, from, m->nown, true);
	return rc;
}

static int apply(shmbus_member *m, const struct reply *r)
{
	struct bus_topic *ts;
	struct owned *own;
	struct shmbus_topic_partition *tps;
	size_t cap = m->nown + r->n + 1;
	int nt, rc;

	revoke_missing(m, r, true);
	own = realloc(m->own, cap * sizeof *own);
	if (own)
		m->own = own;
	tps = realloc(m->tps, cap * sizeof *tps);
	if (tps)
		m->tps = tps;
	ts = malloc(BUS_MAX_TOPICS * sizeof *ts);
	if (!own || !tps || !ts) {
		free(ts);
		return lib_err(-ENOMEM, "out of memory");
	}
	nt = dir_list(&m->bus->dir, ts, BUS_MAX_TOPICS);
	rc = add(m, r, ts, nt < 0 ? 0 : nt);
	free(ts);
	m->epoch = r->epoch;
	return rc;
}

/* ------------------------------------------------------------------ */
/* Talking to the coordinator                                          */

static int join(shmbus_member *m)
{
	struct reply r = { 0 };
	int rc = daemon_call(m->bus, CTL_GROUP_JOIN, build_join, m, read_assignment, &r,
			     JOIN_TIMEOUT_MS);

	if (rc == DAEMON_NONE)
		return no_daemon(m);
	if (rc == 0 && r.err)
		rc = lib_err(r.err, "group \"%s\": a malformed assignment from shmbusd", m->group);
	if (rc == 0) {
		m->id = r.id;
		m->epoch = 0;
		m->group_epoch = r.group_epoch;
		m->hb_ns = (r.hb_ms > 0 ? r.hb_ms : 1000) * 1000000;
		rc = apply(m, &r);
		m->next_hb = mono_ns(); /* acknowledge at once */
	}
	free(r.tp);
	return rc;
}

/* One heartbeat and what follows from its answer. */
static int heartbeat(shmbus_member *m)
{
	struct reply r = { 0 };
	int rc;

	m->seen_epoch = group_epoch(&m->g);
	m->next_hb = mono_ns() + m->hb_ns;
	rc = daemon_call(m->bus, CTL_GROUP_HEARTBEAT, build_heartbeat, m, read_assignment, &r,
			 HB_TIMEOUT_MS);
	if (rc == DAEMON_NONE || rc == -ETIMEDOUT) {
		free(r.tp);
		return 0; /* no coordinator: read on with what we have, and ask again */
	}
	if (rc == -ENOENT) {
		/* removed (timed out, or the daemon restarted): lost, join again */
		free(r.tp);
		revoke_missing(m, NULL, false); /* lost: another member may own them now */
		return join(m);
	}
	if (rc == 0 && r.err)
		rc = lib_err(r.err, "group \"%s\": a malformed assignment from shmbusd", m->group);
	if (rc == 0) {
		m->group_epoch = r.group_epoch;
		if (r.epoch != m->epoch) {
			rc = apply(m, &r);
			m->next_hb = mono_ns(); /* acknowledge it at once */
		}
	}
	free(r.tp);
	return rc;
}

/* The group's work before a read: heartbeats, assignments, auto-commit. */
static int maintain(shmbus_member *m)
{
	int64_t now = mono_ns();
	int rc = 0;

	for (int i = 0; i < APPLY_ROUNDS && rc == 0; i++) {
		if (group_epoch(&m->g) == m->seen_epoch && mono_ns() < m->next_hb)
			break;
		rc = heartbeat(m);
	}
	if (rc == 0 && m->o.auto_commit_ms >= 0 && now >= m->next_commit) {
		m->next_commit = now + (int64_t)(m->o.auto_commit_ms ? m->o.auto_commit_ms
								     : AUTO_COMMIT_MS) * 1000000;
		rc = commit_range(m, 0, m->nown);
		if (rc == -ESTALE)
			rc = 0; /* moving away: the next heartbeat revokes it */
	}
	return rc;
}

static bool rebalanced(void *arg)
{
	shmbus_member *m = arg;

	return group_epoch(&m->g) != m->seen_epoch;
}

/* ------------------------------------------------------------------ */
/* The API                                                             */

static int copy_subscription(shmbus_member *m, const struct shmbus_member_opts *o)
{
	size_t len = 1;

	if (o->pattern) {
		m->pattern = strdup(o->pattern);
		return m->pattern ? 0 : lib_err(-ENOMEM, "out of memory");
	}
	if (!o->topics || o->ntopics == 0)
		return lib_err(-EINVAL, "group \"%s\": subscribe to some topics (opts.topics) or to "
			       "a pattern (opts.pattern)", m->group);
	for (size_t i = 0; i < o->ntopics; i++) {
		if (!o->topics[i] || !dir_name_valid(o->topics[i]))
			return lib_err(-EINVAL, "\"%s\" is not a valid topic name: use 1 to 249 of "
				       "[A-Za-z0-9._-]", o->topics[i] ? o->topics[i] : "(null)");
		len += strlen(o->topics[i]) + 1;
	}
	m->topic_list = calloc(1, len);
	if (!m->topic_list)
		return lib_err(-ENOMEM, "out of memory");
	for (size_t i = 0; i < o->ntopics; i++) {
		strcat(m->topic_list, o->topics[i]);
		if (i + 1 < o->ntopics)
			strcat(m->topic_list, "\n");
	}
	return 0;
}

static int member_init(shmbus *bus, shmbus_member *m, const struct shmbus_member_opts *o)
{
	int rc;

	if (!o->group || !dir_name_valid(o->group))
		return lib_err(-EINVAL, "\"%s\" is not a valid group name: use 1 to 249 of "
			       "[A-Za-z0-9._-]", o->group ? o->group : "(null)");
	if (o->instance_id && !dir_name_valid(o->instance_id))
		return lib_err(-EINVAL, "\"%s\" is not a valid instance id: use 1 to 249 of "
			       "[A-Za-z0-9._-]", o->instance_id);
	if (o->assignor > SHMBUS_ASSIGNOR_ROUND_ROBIN)
		return lib_err(-EINVAL, "unknown assignor %d", (int)o->assignor);
	m->bus = bus;
	m->o = *o;
	snprintf(m->group, sizeof m->group, "%s", o->group);
	snprintf(m->instance, sizeof m->instance, "%s", o->instance_id ? o->instance_id : "");
	rc = copy_subscription(m, o);
	if (rc == 0 && o->consumer)
		rc = OPTS_LOAD(shmbus_consumer_opts, m->co, o->consumer);
	else
		m->co = (struct shmbus_consumer_opts){ .sz = sizeof m->co };
	m->co.group = NULL; /* commits are the member's, fenced */
	if (rc == 0)
		rc = group_open(bus->groupsfd, m->group, true, &m->g);
	if (rc == 0 && m->g.readonly) {
		group_close(&m->g);
		rc = lib_err(-EACCES, "group \"%s\": this user may not write its group file "
			     "(%s/groups/%s), so it cannot commit or be a member; ask for the root's "
			     "group, or use another group", m->group, bus->root, m->group);
	}
	if (rc == 0 && (rc = shmbus_consumer_new(bus, &m->co, &m->c)) < 0)
		group_close(&m->g);
	if (rc == 0)
		consumer_wake_on(m->c, group_wake_word(&m->g), rebalanced, m);
	return rc;
}

static void member_destroy(shmbus_member *m)
{
	shmbus_consumer_free(m->c);
	if (m->g.hdr)
		group_close(&m->g);
	free(m->pattern);
	free(m->topic_list);
	free(m->own);
	free(m->tps);
	free(m);
}

SHMBUS_API int shmbus_member_subscribe(shmbus *bus, const struct shmbus_member_opts *opts,
				       shmbus_member **ret)
{
	struct shmbus_member_opts o;
	shmbus_member *m;
	int rc = OPTS_LOAD(shmbus_member_opts, o, opts);

	if (rc < 0)
		return rc;
	m = calloc(1, sizeof *m);
	if (!m)
		return lib_err(-ENOMEM, "out of memory");
	rc = member_init(bus, m, &o);
	if (rc == 0) {
		m->last_poll = mono_ns();
		rc = join(m);
	}
	if (rc == 0)
		rc = heartbeat(m); /* acknowledge the first assignment */
	if (rc < 0) {
		if (m->id)
			shmbus_member_leave(m);
		member_destroy(m);
		return rc;
	}
	*ret = m;
	return 0;
}

/* Give up partitions of deleted topics at once (poll said -EIDRM), and
 * ask the coordinator for the assignment that follows. */
static void drop_deleted(shmbus_member *m)
{
	struct reply keep = { .tp = calloc(m->nown ? m->nown : 1, sizeof *keep.tp) };

	if (!keep.tp)
		return;
	for (size_t i = 0; i < m->nown; i++) {
		struct bus_topic t;

		if (topic_lookup(m->bus, m->own[i].topic, &t) == 0 && t.id == m->own[i].topic_id)
			keep.tp[keep.n++] = (struct ctl_tp){ .topic_id = m->own[i].topic_id,
							     .partition = (uint32_t)m->own[i].partition };
	}
	shm_err_clear();
	revoke_missing(m, &keep, false);
	free(keep.tp);
	m->next_hb = mono_ns();
}

/* Sleep until the group moves or the deadline (no partitions to wait on). */
static void wait_group(shmbus_member *m, int64_t until)
{
	uint32_t *w = group_wake_word(&m->g);
	uint32_t expected = futex_word_prepare(w);

	if (!rebalanced(m))
		futex_wait_shared(w, expected, until);
}

/*
 * Keep of msgs[0..n) the records of partitions this member still owns
 * (their owner epoch in the group file is still ours), checked after the
 * reads: a member stopped in the middle of a poll (SIGSTOP, a long
 * preemption) past its session timeout finds its partitions fenced and
 * granted to another member when it goes on, and must not hand out what
 * it read of them.  Their next owner reads them from the committed offset;
 * the revocation reaches this member at its next maintain().  Records of
 * one partition come together, so the owner is loaded once a run.
 */
static int keep_owned(shmbus_member *m, struct shmbus_message *msgs, int n)
{
	const char *topic = NULL;
	int32_t partition = -1;
	bool owned = false;
	int kept = 0;

	for (int i = 0; i < n; i++) {
		if (msgs[i].topic != topic || msgs[i].partition != partition) {
			topic = msgs[i].topic;
			partition = msgs[i].partition;
			owned = false;
			for (size_t k = 0; k < m->nown; k++) {
				const struct owned *o = &m->own[k];

				if (o->partition == partition && !strcmp(o->topic, topic)) {
					owned = group_owner(&m->g, o->topic_id, (uint32_t)partition) ==
						o->owner_epoch;
					break;
				}
			}
		}
		if (owned)
			msgs[kept++] = msgs[i];
	}
	return kept;
}

SHMBUS_API int shmbus_member_poll(shmbus_member *m, struct shmbus_message *msgs, size_t max,
				  int timeout_ms)
{
	int64_t deadline = timeout_ms < 0 ? INT64_MAX : mono_ns() + (int64_t)timeout_ms * 1000000;

	if (m->left)
		return lib_err(-ENOTCONN, "this member left group \"%s\"; subscribe again", m->group);
	for (;;) {
		int64_t until, now;
		int n;

		m->last_poll = mono_ns();
		n = maintain(m);
		if (n < 0)
			return n;
		now = mono_ns();
		until = deadline < m->next_hb ? deadline : m->next_hb;
		if (m->nown == 0) {
			if (timeout_ms == 0)
				return 0;
			wait_group(m, until);
		} else {
			int ms = until <= now ? 0 : (int)((until - now + 999999) / 1000000);

			n = shmbus_consumer_poll(m->c, msgs, max, timeout_ms == 0 ? 0 : ms);
			if (n == -EIDRM) {
				drop_deleted(m); /* the coordinator drops it too */
				continue;
			}
			if (n > 0) /* none kept: all fenced meanwhile; the next round learns why */
				n = keep_owned(m, msgs, n);
			if (n != 0)
				return n;
		}
		if (timeout_ms == 0 || mono_ns() >= deadline)
			return 0;
	}
}

SHMBUS_API int shmbus_member_commit(shmbus_member *m)
{
	return commit_range(m, 0, m->nown);
}

SHMBUS_API int shmbus_member_commit_offset(shmbus_member *m, const char *topic,
					   int32_t partition, uint64_t offset)
{
	for (size_t i = 0; i < m->nown; i++)
		if (m->own[i].partition == partition && !strcmp(m->own[i].topic, topic))
			return commit_one(m, &m->own[i], offset);
	return lib_err(-ESTALE, "partition %s/%d is not assigned to this member of group \"%s\" "
		       "(it was never assigned, or it was revoked): the commit was refused",
		       topic, partition, m->group);
}

SHMBUS_API int shmbus_member_info(shmbus_member *m, struct shmbus_member_info *ret)
{
	struct shmbus_member_info info = { .sz = sizeof info, .member_id = m->id,
					   .member_epoch = m->epoch,
					   .group_epoch = group_epoch(&m->g),
					   .partitions = m->nown };
	int rc = OUT_CHECK(shmbus_member_info, ret);

	if (rc == 0)
		OUT_STORE(ret, info);
	return rc;
}

SHMBUS_API int shmbus_member_assignment(shmbus_member *m, struct shmbus_topic_partition *out,
					size_t max)
{
	for (size_t i = 0; i < m->nown && i < max; i++)
		out[i] = (struct shmbus_topic_partition){ .topic = m->own[i].topic,
							  .partition = m->own[i].partition };
	return (int)m->nown;
}

SHMBUS_API shmbus_consumer *shmbus_member_consumer(shmbus_member *m)
{
	return m->c;
}

SHMBUS_API int shmbus_member_leave(shmbus_member *m)
{
	int rc;

	if (m->left)
		return 0;
	revoke_missing(m, NULL, true); /* everything goes, committed */
	m->left = true;
	rc = daemon_call(m->bus, CTL_GROUP_LEAVE, build_heartbeat, m, NULL, NULL, HB_TIMEOUT_MS);
	return rc == DAEMON_NONE ? 0 : rc;
}

SHMBUS_API void shmbus_member_free(shmbus_member *m)
{
	if (!m)
		return;
	shmbus_member_leave(m);
	member_destroy(m);
}
