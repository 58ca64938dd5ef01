/*
 * coordinator.c - consumer groups coordinated by shmbusd, as Kafka's
 * KIP-848 does it on a broker: members join over the control socket with
 * their subscription, the daemon computes a target assignment (assign.c)
 * and reconciles each member to it.  docs/protocol.md §8 has the messages,
 * docs/design-notes.md "Consumer groups" the reasoning.
 *
 * Reconciliation, per partition: the owner keeps it until it says (an
 * ACKED_EPOCH in a heartbeat) that it applied an assignment without it;
 * only then is it granted to its target: a fresh owner epoch is written
 * into the group file (group_fence) before the new owner hears of it, so
 * the old owner's commits are refused from then on and the new owner
 * starts where the old one committed in its revoke callback.  A member
 * that dies is seen at once (its connection closes; its pidfd too) and
 * its partitions are granted to their new targets without waiting; one
 * that is alive but silent past its session timeout, or whose last poll
 * is older than its max-poll interval, is removed the same way.  A static
 * member (instance id) whose process ended keeps its partitions for its
 * session timeout, and a process joining with the same instance id
 * within it gets them back (freshly fenced) with no other member moving.
 *
 * Each change of any member's assignment bumps the group epoch, publishes
 * it in the group file and wakes the members sleeping in poll on its wake
 * word (group_publish), so a member hears of a rebalance at once.
 *
 * Everything runs in the daemon's loop thread.
 */
#include "shmbusd.h"
#include "coordinator.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../util/clock.h"
#include "../util/ctlproto.h"
#include "../shm/probes.h"
#include "../util/error.h"

#define TIMER_NS             (20 * 1000000LL)
#define SESSION_DEFAULT_MS   10000
#define MAX_POLL_DEFAULT_MS  300000
#define TIMEOUT_MIN_MS       10
#define TIMEOUT_MAX_MS       (24LL * 3600 * 1000)

struct coord {
	struct cgroup *groups;
	uint64_t member_ids;           /* the last member id given */
	int timer_fd;
};

/* The metrics thread's copy (coord_stats), refreshed by the timer. */
#define STATS_MAX 256
static pthread_mutex_t stats_lock = PTHREAD_MUTEX_INITIALIZER;
static struct coord_stat stats[STATS_MAX];
static size_t nstats;

static struct coord *coord_of(struct daemon *d)
{
	return d->coord;
}

struct cgroup *coord_first(struct daemon *d)
{
	return d->coord ? coord_of(d)->groups : NULL;
}

struct cgroup *coord_find(struct daemon *d, const char *name)
{
	for (struct cgroup *g = coord_first(d); g; g = g->next)
		if (!strcmp(g->name, name))
			return g;
	return NULL;
}

const char *coord_state(const struct cgroup *g)
{
	if (g->nmembers == 0)
		return "empty";
	for (size_t i = 0; i < g->nparts; i++)
		if (g->parts[i].owner != g->parts[i].target)
			return "reconciling";
	for (const struct cmember *m = g->members; m; m = m->next)
		if (m->acked < m->epoch)
			return "reconciling";
	return "stable";
}

/* ------------------------------------------------------------------ */
/* Partitions and targets                                              */

static int by_topic(const void *a, const void *b)
{
	const struct cpart *x = a, *y = b;
	int c = strcmp(x->topic, y->topic);

	return c ? c : (x->partition > y->partition) - (x->partition < y->partition);
}

static bool anyone_subscribes(const struct cgroup *g, const char *topic)
{
	for (const struct cmember *m = g->members; m; m = m->next)
		if (member_subscribes(m, topic))
			return true;
	return false;
}

/* The old record of a partition, to carry its owner over. */
static struct cpart *old_part(struct cpart *old, size_t n, uint64_t topic_id, uint32_t part)
{
	for (size_t i = 0; i < n; i++)
		if (old[i].topic_id == topic_id && old[i].partition == part)
			return &old[i];
	return NULL;
}

/*
 * Partition k was added to a topic the group already reads (the topic
 * grew, format.md §9): start it at offset 0 for the group, unless it has
 * a commit.  Every record in it came after the group subscribed, so none
 * is skipped whatever the members' reset policy; Kafka's consumers with
 * auto.offset.reset=latest skip those produced before they got it.
 */
static void start_new_partition(struct cgroup *g, const struct bus_topic *t, uint32_t k)
{
	uint64_t off;

	if (!old_part(g->parts, g->nparts, t->id, 0) ||
	    group_fetch(&g->gf, t->id, k, &off, NULL) == 0)
		return; /* a topic new to the group: the reset policy says */
	if (group_reset(&g->gf, t->id, k, 0) < 0)
		log_warn("group \"%s\": cannot start new partition %s/%u at offset 0: %s", g->name,
			 t->name, k, shm_errmsg());
}

/* The partitions of every topic some member subscribes to, keeping what
 * is known of those that were there before. */
static int rebuild_parts(struct daemon *d, struct cgroup *g)
{
	struct bus_topic *ts = calloc(BUS_MAX_TOPICS, sizeof *ts);
	struct cpart *parts = NULL;
	size_t np = 0;
	int nt;

	if (!ts)
		return -ENOMEM;
	g->dir_gen = dir_generation(&d->dir);
	nt = dir_list(&d->dir, ts, BUS_MAX_TOPICS);
	for (int i = 0; i < nt; i++) {
		struct cpart *grown;

		if (!anyone_subscribes(g, ts[i].name) || np + ts[i].partitions > COORD_PARTS_MAX)
			continue;
		grown = realloc(parts, (np + ts[i].partitions) * sizeof *parts);
		if (!grown)
			break;
		parts = grown;
		for (uint32_t k = 0; k < ts[i].partitions; k++) {
			struct cpart *p = &parts[np++], *was = old_part(g->parts, g->nparts, ts[i].id, k);

			*p = was ? *was : (struct cpart){ .topic_id = ts[i].id, .partition = k };
			if (!was)
				start_new_partition(g, &ts[i], k);
			snprintf(p->topic, sizeof p->topic, "%s", ts[i].name);
		}
	}
	free(ts);
	if (np)
		qsort(parts, np, sizeof *parts, by_topic);
	free(g->parts);
	g->parts = parts;
	g->nparts = np;
	return 0;
}

/* The target assignment again; counts a rebalance when a target moved. */
static void retarget(struct cgroup *g)
{
	struct cmember *ms[COORD_MEMBERS_MAX];
	struct cmember *was[COORD_PARTS_MAX];
	size_t nm = 0;
	bool moved = false;

	for (struct cmember *m = g->members; m && nm < COORD_MEMBERS_MAX; m = m->next)
		ms[nm++] = m;
	for (size_t i = 0; i < g->nparts; i++)
		was[i] = g->parts[i].target;
	assign_targets(g->assignor, g->parts, g->nparts, ms, nm);
	for (size_t i = 0; i < g->nparts; i++)
		moved |= was[i] != g->parts[i].target;
	g->rebalances += moved;
}

/* ------------------------------------------------------------------ */
/* Reconciliation                                                      */

/* A signature of what the member may own now: {key, owner epoch} of each
 * partition it owns and keeps. */
static uint64_t assignment_sig(const struct cgroup *g, const struct cmember *m, size_t *n)
{
	uint64_t h = 1469598103934665603ULL;

	*n = 0;
	for (size_t i = 0; i < g->nparts; i++) {
		const struct cpart *p = &g->parts[i];

		if (p->owner != m || p->target != m)
			continue;
		h = (h ^ (p->topic_id << 20 | p->partition)) * 1099511628211ULL;
		h = (h ^ p->owner_epoch) * 1099511628211ULL;
		(*n)++;
	}
	return h ^ *n;
}

/* Release what owners have let go of; 1 if any partition became free. */
static void release(struct cgroup *g)
{
	for (size_t i = 0; i < g->nparts; i++) {
		struct cpart *p = &g->parts[i];

		if (p->owner && p->owner == p->target)
			p->revoke_epoch = 0;
		else if (p->owner && p->revoke_epoch && p->owner->acked >= p->revoke_epoch)
			p->owner = NULL;
	}
}

/* Grant free partitions to their targets under epoch `epoch`; how many. */
static size_t grant(struct cgroup *g, uint64_t epoch)
{
	size_t n = 0;

	for (size_t i = 0; i < g->nparts; i++) {
		struct cpart *p = &g->parts[i];

		if (p->owner || !p->target || p->target->gone_at)
			continue;
		/* the fence first: from here the previous owner's commits fail */
		if (group_fence(&g->gf, p->topic_id, p->partition, epoch) < 0) {
			log_warn("group \"%s\": cannot fence %s/%u: %s", g->name, p->topic,
				 p->partition, shm_errmsg());
			continue;
		}
		p->owner = p->target;
		p->owner_epoch = epoch;
		SHMBUS_PROBE(group_assign, g->name, p->topic, p->partition, p->owner->pid, epoch);
		p->revoke_epoch = 0;
		n++;
	}
	return n;
}

/*
 * Move the group one step towards its target: release, grant, and give
 * each member whose assignment changed a new member epoch.  Publishes
 * the group epoch (and wakes the members) if anything changed.
 */
static void reconcile(struct cgroup *g)
{
	uint64_t next = g->epoch + 1;
	bool changed;

	release(g);
	changed = grant(g, next) > 0;
	for (struct cmember *m = g->members; m; m = m->next) {
		size_t n;
		uint64_t sig = assignment_sig(g, m, &n);

		if (sig != m->sig || m->epoch == 0) {
			m->sig = sig;
			m->epoch = next;
			changed = true;
		}
	}
	if (!changed)
		return;
	g->epoch = next;
	SHMBUS_PROBE(group_rebalance, g->name, g->epoch, g->nmembers);
	for (size_t i = 0; i < g->nparts; i++) {
		struct cpart *p = &g->parts[i];

		if (p->owner && p->owner != p->target && !p->revoke_epoch)
			p->revoke_epoch = p->owner->epoch;
	}
	group_publish(&g->gf, g->epoch, (uint32_t)g->nmembers);
}

void coord_refresh(struct daemon *d, struct cgroup *g)
{
	if (rebuild_parts(d, g) < 0)
		log_warn("group \"%s\": out of memory rebuilding its partitions", g->name);
	retarget(g);
	reconcile(g);
}

/* ------------------------------------------------------------------ */
/* Members                                                             */

static void member_free(struct cmember *m)
{
	for (size_t i = 0; i < m->ntopics; i++)
		free(m->topics[i]);
	free(m->topics);
	if (m->has_re)
		regfree(&m->re);
	free(m);
}

/* Take m out of g: its partitions are free at once. */
static void member_remove(struct daemon *d, struct cgroup *g, struct cmember *m, const char *why)
{
	struct cmember **pp;

	for (pp = &g->members; *pp && *pp != m; pp = &(*pp)->next)
		;
	if (!*pp)
		return;
	*pp = m->next;
	g->nmembers--;
	for (size_t i = 0; i < g->nparts; i++) {
		if (g->parts[i].owner == m)
			g->parts[i].owner = NULL;
		if (g->parts[i].target == m)
			g->parts[i].target = NULL;
	}
	log_info("group \"%s\": member %llu (pid %d%s%s) left: %s", g->name,
		 (unsigned long long)m->id, (int)m->pid, m->instance[0] ? ", instance " : "",
		 m->instance, why);
	member_free(m);
	coord_refresh(d, g);
}

/* A member's process ended: a static one waits for its instance to come
 * back within its session timeout; any other goes now. */
static void member_ended(struct daemon *d, struct cgroup *g, struct cmember *m, const char *why)
{
	if (m->instance[0] && !m->gone_at) {
		m->gone_at = mono_ns();
		m->conn = 0;
		log_info("group \"%s\": static member %s (pid %d) ended (%s); its partitions wait "
			 "%lld ms for it to come back", g->name, m->instance, (int)m->pid, why,
			 (long long)g->session_ms);
		return;
	}
	g->members_lost++;
	member_remove(d, g, m, why);
}

void coord_conn_closed(struct daemon *d, uint64_t conn)
{
	for (struct cgroup *g = coord_first(d); g; g = g->next)
		for (struct cmember *m = g->members, *next; m; m = next) {
			next = m->next;
			if (m->conn == conn && !m->gone_at)
				member_ended(d, g, m, "its connection closed");
		}
}

void coord_pid_gone(struct daemon *d, pid_t pid)
{
	for (struct cgroup *g = coord_first(d); g; g = g->next)
		for (struct cmember *m = g->members, *next; m; m = next) {
			next = m->next;
			if (m->pid == pid && !m->gone_at)
				member_ended(d, g, m, "its process exited");
		}
}

/* Every member that timed out; static members gone for too long. */
static void expire(struct daemon *d, struct cgroup *g, int64_t now)
{
	for (struct cmember *m = g->members, *next; m; m = next) {
		char why[160] = "";

		next = m->next;
		if (m->gone_at && now - m->gone_at > g->session_ms * 1000000)
			snprintf(why, sizeof why, "its instance did not come back within the session "
				 "timeout (%lld ms)", (long long)g->session_ms);
		else if (!m->gone_at && now - m->last_hb > g->session_ms * 1000000)
			snprintf(why, sizeof why, "no heartbeat for %lld ms (session timeout %lld ms)",
				 (long long)((now - m->last_hb) / 1000000), (long long)g->session_ms);
		else if (!m->gone_at && now - m->last_poll > g->max_poll_ms * 1000000)
			snprintf(why, sizeof why, "no poll for %lld ms (max poll interval %lld ms)",
				 (long long)((now - m->last_poll) / 1000000), (long long)g->max_poll_ms);
		if (why[0]) {
			g->members_lost++;
			log_notice("group \"%s\": removing member %llu (pid %d): %s", g->name,
				   (unsigned long long)m->id, (int)m->pid, why);
			member_remove(d, g, m, why);
		}
	}
}

size_t coord_stats(struct coord_stat *out, size_t max)
{
	size_t n;

	pthread_mutex_lock(&stats_lock);
	n = nstats < max ? nstats : max;
	memcpy(out, stats, n * sizeof *out);
	pthread_mutex_unlock(&stats_lock);
	return n;
}

static void publish_stats(struct daemon *d)
{
	size_t n = 0;

	pthread_mutex_lock(&stats_lock);
	for (struct cgroup *g = coord_first(d); g && n < STATS_MAX; g = g->next, n++) {
		struct coord_stat *s = &stats[n];

		snprintf(s->name, sizeof s->name, "%s", g->name);
		snprintf(s->state, sizeof s->state, "%s", coord_state(g));
		snprintf(s->assignor, sizeof s->assignor, "%s", assignor_name(g->assignor));
		s->members = (uint32_t)g->nmembers;
		s->epoch = g->epoch;
		s->rebalances = g->rebalances;
		s->members_lost = g->members_lost;
	}
	nstats = n;
	pthread_mutex_unlock(&stats_lock);
}

static void on_timer(struct daemon *d, uint32_t events, void *arg)
{
	uint64_t gen = dir_generation(&d->dir);
	int64_t now = mono_ns();

	(void)events;
	(void)arg;
	for (struct cgroup *g = coord_first(d), *next; g; g = next) {
		next = g->next;
		expire(d, g, now);
		if (g->dir_gen != gen)
			coord_refresh(d, g); /* topics were created or deleted */
		if (g->nmembers == 0)
			coord_drop(d, g);
	}
	publish_stats(d);
}

/* ------------------------------------------------------------------ */
/* Joining                                                             */

static struct cgroup *group_new(struct daemon *d, const char *name, char *msg, size_t len)
{
	struct coord *c = coord_of(d);
	struct cgroup *g = calloc(1, sizeof *g);
	int rc;

	if (!g) {
		snprintf(msg, len, "shmbusd is out of memory");
		return NULL;
	}
	snprintf(g->name, sizeof g->name, "%s", name);
	rc = group_open(d->groupsfd, name, true, &g->gf);
	if (rc < 0) {
		snprintf(msg, len, "group \"%s\": %s", name, shm_errmsg());
		free(g);
		return NULL;
	}
	/* owner epochs only grow, across daemons: start above any in the file */
	g->epoch = group_max_epoch(&g->gf);
	g->next = c->groups;
	c->groups = g;
	return g;
}

void coord_drop(struct daemon *d, struct cgroup *g)
{
	struct coord *c = coord_of(d);
	struct cgroup **pp;

	for (pp = &c->groups; *pp && *pp != g; pp = &(*pp)->next)
		;
	if (*pp)
		*pp = g->next;
	while (g->members) {
		struct cmember *m = g->members;

		g->members = m->next;
		member_free(m);
	}
	group_publish(&g->gf, g->epoch, 0);
	group_close(&g->gf);
	free(g->parts);
	free(g);
}

/* The subscription of a JOIN into m; 0 or -EINVAL with a message. */
static int subscription(struct cmember *m, const struct ctl_msg *msg, char *err, size_t len)
{
	const char *pat = msg->str[CTL_A_PATTERN], *list = msg->str[CTL_A_TOPIC_LIST];
	char re[600], why[200];
	int rc;

	if (msg->has[CTL_A_PATTERN]) {
		if (strlen(pat) > 500) {
			snprintf(err, len, "subscription pattern is %zu bytes long; the limit is 500",
				 strlen(pat));
			return -EINVAL;
		}
		snprintf(re, sizeof re, "^(%s)$", pat);
		rc = regcomp(&m->re, re, REG_EXTENDED | REG_NOSUB);
		if (rc) {
			regerror(rc, &m->re, why, sizeof why);
			snprintf(err, len, "subscription pattern \"%s\" does not compile: %s; write a "
				 "POSIX extended regular expression, e.g. \"orders\\..*\"", pat, why);
			return -EINVAL;
		}
		m->has_re = true;
		snprintf(m->sub, sizeof m->sub, "/%s/", pat);
		return 0;
	}
	if (!msg->has[CTL_A_TOPIC_LIST] || !*list) {
		snprintf(err, len, "a GROUP_JOIN needs TOPIC_LIST or PATTERN: subscribe to some topics");
		return -EINVAL;
	}
	snprintf(m->sub, sizeof m->sub, "%s", list);
	for (const char *s = list; *s && m->ntopics < COORD_SUB_MAX;) {
		size_t n = strcspn(s, "\n");
		char name[PART_NAME_MAX + 1];
		char **grown;

		snprintf(name, sizeof name, "%.*s", (int)(n < PART_NAME_MAX ? n : PART_NAME_MAX), s);
		if (n > PART_NAME_MAX || !dir_name_valid(name)) {
			snprintf(err, len, "\"%.*s\" is not a valid topic name: use 1 to 249 of "
				 "[A-Za-z0-9._-]", (int)(n < 64 ? n : 64), s);
			return -EINVAL;
		}
		grown = realloc(m->topics, (m->ntopics + 1) * sizeof *grown);
		if (!grown || !(grown[m->ntopics] = strdup(name))) {
			m->topics = grown ? grown : m->topics;
			snprintf(err, len, "shmbusd is out of memory");
			return -ENOMEM;
		}
		m->topics = grown;
		m->ntopics++;
		s += n + (s[n] == '\n');
	}
	for (char *c = m->sub; *c; c++)
		if (*c == '\n')
			*c = ',';
	return 0;
}

/* A timeout attribute in [TIMEOUT_MIN_MS, TIMEOUT_MAX_MS], or its default. */
static int timeout_of(const struct ctl_msg *msg, enum ctl_attr a, int64_t def, int64_t *ret,
		      char *err, size_t len)
{
	int64_t v = msg->has[a] ? ctl_signed(msg, a) : 0;

	if (v == 0)
		v = def;
	if (v < TIMEOUT_MIN_MS || v > TIMEOUT_MAX_MS) {
		snprintf(err, len, "%s %lld ms is out of range: use %d ms to 24 h", ctl_attr_name(a),
			 (long long)v, TIMEOUT_MIN_MS);
		return -EINVAL;
	}
	*ret = v;
	return 0;
}

/* A member from a JOIN message, not yet in any group. */
static struct cmember *member_new(const struct coord_peer *p, const struct ctl_msg *msg,
				  char *err, size_t len, int *rc)
{
	struct cmember *m = calloc(1, sizeof *m);
	const char *inst = msg->str[CTL_A_INSTANCE_ID];

	*rc = -ENOMEM;
	if (!m) {
		snprintf(err, len, "shmbusd is out of memory");
		return NULL;
	}
	m->conn = p->conn;
	m->pid = p->pid;
	m->last_hb = m->last_poll = mono_ns();
	if (msg->has[CTL_A_INSTANCE_ID] && *inst && !dir_name_valid(inst)) {
		snprintf(err, len, "instance id \"%.64s\" is not valid: use 1 to 249 of "
			 "[A-Za-z0-9._-]", inst);
		*rc = -EINVAL;
		member_free(m);
		return NULL;
	}
	snprintf(m->instance, sizeof m->instance, "%s", msg->has[CTL_A_INSTANCE_ID] ? inst : "");
	snprintf(m->host, sizeof m->host, "%s", msg->has[CTL_A_HOST] ? msg->str[CTL_A_HOST] : "");
	for (char *c = m->host; *c; c++)
		if (*c < 0x21 || *c > 0x7e)
			*c = '?';
	*rc = subscription(m, msg, err, len);
	if (*rc) {
		member_free(m);
		return NULL;
	}
	return m;
}

/* The member's assignment at its epoch, into a RESULT. */
static void put_assignment(const struct cgroup *g, const struct cmember *m, struct ctl_out *o)
{
	struct ctl_tp *tp = calloc(g->nparts ? g->nparts : 1, sizeof *tp);
	size_t n = 0;

	for (size_t i = 0; tp && i < g->nparts; i++) {
		const struct cpart *p = &g->parts[i];

		if (p->owner == m && p->target == m)
			tp[n++] = (struct ctl_tp){ .topic_id = p->topic_id, .partition = p->partition,
						   .member = m->id, .value = p->owner_epoch };
	}
	ctl_put_u64(o, CTL_A_MEMBER_ID, m->id);
	ctl_put_u64(o, CTL_A_MEMBER_EPOCH, m->epoch);
	ctl_put_u64(o, CTL_A_GROUP_EPOCH, g->epoch);
	ctl_put_i64(o, CTL_A_HEARTBEAT_MS, g->session_ms / 3 > 1000 ? 1000 : g->session_ms / 3);
	ctl_put_tps(o, CTL_A_ASSIGNMENT, tp, n);
	free(tp);
}

/* A static member coming back: the same member, its partitions fenced anew. */
static struct cmember *rejoin(struct cgroup *g, struct cmember *fresh)
{
	struct cmember *m;

	for (m = g->members; m && strcmp(m->instance, fresh->instance); m = m->next)
		;
	if (!m)
		return NULL;
	m->conn = fresh->conn;
	m->pid = fresh->pid;
	m->gone_at = 0;
	m->last_hb = m->last_poll = mono_ns();
	m->acked = 0;
	snprintf(m->host, sizeof m->host, "%s", fresh->host);
	for (size_t i = 0; i < g->nparts; i++)
		if (g->parts[i].owner == m)
			g->parts[i].owner = NULL; /* granted again, under a new owner epoch */
	return m;
}

/* The group's settings from a JOIN: the first member's make them. */
static int group_settings(struct cgroup *g, const struct ctl_msg *msg, char *err, size_t len)
{
	int64_t session, max_poll;
	enum assignor a;
	int rc;

	if (assignor_parse(msg->str[CTL_A_ASSIGNOR], &a) < 0) {
		snprintf(err, len, "assignor \"%.64s\" is unknown: use range, round-robin or "
			 "cooperative-sticky", msg->str[CTL_A_ASSIGNOR]);
		return -EINVAL;
	}
	if (g->nmembers && msg->has[CTL_A_ASSIGNOR] && a != g->assignor) {
		snprintf(err, len, "group \"%s\" uses the %s assignor, not %s: its members must "
			 "agree (or wait until it is empty)", g->name, assignor_name(g->assignor),
			 assignor_name(a));
		return -EINVAL;
	}
	rc = timeout_of(msg, CTL_A_SESSION_TIMEOUT_MS, SESSION_DEFAULT_MS, &session, err, len);
	if (rc == 0)
		rc = timeout_of(msg, CTL_A_MAX_POLL_MS, MAX_POLL_DEFAULT_MS, &max_poll, err, len);
	if (rc == 0 && !g->nmembers) {
		/* per group: its first member's settings hold while it has members */
		g->assignor = a;
		g->session_ms = session;
		g->max_poll_ms = max_poll;
	}
	return rc;
}

int coord_join(struct daemon *d, struct coord_peer *p, const struct ctl_msg *msg,
	       struct ctl_out *o)
{
	const char *name = msg->str[CTL_A_GROUP];
	struct cgroup *g;
	struct cmember *m, *back;
	int rc;

	if (!dir_name_valid(name)) {
		snprintf(p->msg, sizeof p->msg, "\"%.64s\" is not a valid group name: use 1 to 249 "
			 "of [A-Za-z0-9._-]", name);
		return -EINVAL;
	}
	m = member_new(p, msg, p->msg, sizeof p->msg, &rc);
	if (!m)
		return rc;
	g = coord_find(d, name);
	if (!g && !(g = group_new(d, name, p->msg, sizeof p->msg))) {
		member_free(m);
		return -EIO;
	}
	rc = group_settings(g, msg, p->msg, sizeof p->msg);
	if (rc == 0 && g->nmembers >= COORD_MEMBERS_MAX) {
		snprintf(p->msg, sizeof p->msg, "group \"%s\" has %d members, the most it may have",
			 name, COORD_MEMBERS_MAX);
		rc = -EUSERS;
	}
	if (rc < 0) {
		member_free(m);
		if (!g->nmembers)
			coord_drop(d, g);
		return rc;
	}
	back = m->instance[0] ? rejoin(g, m) : NULL;
	if (back) {
		member_free(m);
		m = back;
	} else {
		struct cmember **pp = &g->members;

		while (*pp)
			pp = &(*pp)->next;
		*pp = m;
		m->id = ++coord_of(d)->member_ids;
		g->nmembers++;
	}
	log_info("group \"%s\": member %llu (pid %d%s%s) %s, subscribed to %s", g->name,
		 (unsigned long long)m->id, (int)m->pid, m->instance[0] ? ", instance " : "",
		 m->instance, back ? "came back" : "joined", m->sub);
	if (back)
		reconcile(g);
	else
		coord_refresh(d, g);
	put_assignment(g, m, o);
	return 0;
}

/* The member a HEARTBEAT or LEAVE names, if it is this peer's. */
static struct cmember *member_of(struct daemon *d, struct coord_peer *p,
				 const struct ctl_msg *msg, struct cgroup **ret_g)
{
	struct cgroup *g = coord_find(d, msg->str[CTL_A_GROUP]);
	uint64_t id = msg->num[CTL_A_MEMBER_ID];

	for (struct cmember *m = g ? g->members : NULL; m; m = m->next)
		if (m->id == id && m->conn == p->conn) {
			*ret_g = g;
			return m;
		}
	snprintf(p->msg, sizeof p->msg, "member %llu is not a member of group \"%.64s\" (it was "
		 "removed: it left, timed out, or shmbusd restarted); join again",
		 (unsigned long long)id, msg->str[CTL_A_GROUP]);
	return NULL;
}

int coord_heartbeat(struct daemon *d, struct coord_peer *p, const struct ctl_msg *msg,
		    struct ctl_out *o)
{
	struct cgroup *g;
	struct cmember *m = member_of(d, p, msg, &g);
	uint64_t acked = msg->num[CTL_A_ACKED_EPOCH];

	if (!m)
		return -ENOENT;
	m->last_hb = mono_ns();
	if (msg->has[CTL_A_LAST_POLL_NS] && ctl_signed(msg, CTL_A_LAST_POLL_NS) <= m->last_hb)
		m->last_poll = ctl_signed(msg, CTL_A_LAST_POLL_NS);
	if (acked > m->acked && acked <= m->epoch) {
		m->acked = acked;
		reconcile(g); /* what it let go of can move now */
	}
	put_assignment(g, m, o);
	return 0;
}

int coord_leave(struct daemon *d, struct coord_peer *p, const struct ctl_msg *msg)
{
	struct cgroup *g;
	struct cmember *m = member_of(d, p, msg, &g);

	if (!m)
		return -ENOENT;
	member_remove(d, g, m, "it left");
	if (g->nmembers == 0)
		coord_drop(d, g);
	return 0;
}

/* ------------------------------------------------------------------ */

int coord_init(struct daemon *d)
{
	struct coord *c = calloc(1, sizeof *c);

	if (!c)
		return -ENOMEM;
	/* member ids differ from a previous daemon's: microseconds since the epoch */
	c->member_ids = (uint64_t)real_ns() / 1000;
	d->coord = c;
	c->timer_fd = loop_timer(d, TIMER_NS, on_timer, NULL);
	if (c->timer_fd < 0) {
		int rc = c->timer_fd;

		free(c);
		d->coord = NULL;
		return rc;
	}
	return 0;
}

void coord_fini(struct daemon *d)
{
	struct coord *c = coord_of(d);

	if (!c)
		return;
	while (c->groups)
		coord_drop(d, c->groups);
	publish_stats(d);
	loop_del(d, c->timer_fd);
	close(c->timer_fd);
	free(c);
	d->coord = NULL;
}
