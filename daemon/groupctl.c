/*
 * groupctl.c - the consumer-group requests of the control socket
 * (protocol.md §8): JOIN, HEARTBEAT and LEAVE go to coordinator.c; LIST,
 * DESCRIBE, RESET and DELETE are answered here from the coordinator's
 * state and the group files.
 *
 * RESET and DELETE are refused while the group has members (Kafka does
 * the same): the coordinator runs in this thread, so no member can join
 * between the check and the write.  They are served for whoever may
 * administer topics, and for the owner of the group's file.
 */
#include "shmbusd.h"
#include "coordinator.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../util/ctlproto.h"
#include "../util/error.h"

/* Append to a growing text attribute; false when it is full. */
static bool text_add(char *buf, size_t cap, size_t *len, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static bool text_add(char *buf, size_t cap, size_t *len, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf + *len, cap - *len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= cap - *len) {
		buf[*len] = '\0';
		return false;
	}
	*len += (size_t)n;
	return true;
}

static int do_list(struct daemon *d, struct ctl_out *o)
{
	size_t cap = CTL_MSG_MAX / 2, len = 0;
	char *text = malloc(cap);

	if (!text)
		return -ENOMEM;
	text[0] = '\0';
	for (struct cgroup *g = coord_first(d); g; g = g->next)
		if (!text_add(text, cap, &len, "%s\t%s\t%zu\t%llu\t%s\n", g->name, coord_state(g),
			      g->nmembers, (unsigned long long)g->epoch, assignor_name(g->assignor)))
			break;
	ctl_put_str(o, CTL_A_GROUPS, text);
	free(text);
	return 0;
}

static int unknown_group(struct coord_peer *p, const char *name)
{
	snprintf(p->msg, sizeof p->msg, "unknown group \"%.64s\": no member has joined it and it "
		 "has no committed offsets; `shmbus groups list` shows the groups", name);
	return -ENOENT;
}

static bool group_file_exists(struct daemon *d, const char *name, struct stat *st)
{
	return dir_name_valid(name) && fstatat(d->groupsfd, name, st, AT_SYMLINK_NOFOLLOW) == 0 &&
	       S_ISREG(st->st_mode);
}

static void put_members(const struct cgroup *g, struct ctl_out *o)
{
	size_t cap = CTL_MSG_MAX / 2, len = 0;
	char *text = malloc(cap);

	if (!text) {
		o->overflow = true;
		return;
	}
	text[0] = '\0';
	for (const struct cmember *m = g->members; m; m = m->next)
		if (!text_add(text, cap, &len, "%llu\t%d\t%llu\t%llu\t%s\t%s\t%s\t%s\n",
			      (unsigned long long)m->id, (int)m->pid, (unsigned long long)m->epoch,
			      (unsigned long long)m->acked, m->instance[0] ? m->instance : "-",
			      m->host[0] ? m->host : "-", m->sub, m->gone_at ? "gone" : "alive"))
			break;
	ctl_put_str(o, CTL_A_MEMBERS, text);
	free(text);
}

static void put_parts(const struct cgroup *g, struct ctl_out *o)
{
	size_t n = g->nparts < CTL_TP_MAX ? g->nparts : CTL_TP_MAX;
	struct ctl_tp *tp = calloc(n ? n : 1, sizeof *tp);

	if (!tp) {
		o->overflow = true;
		return;
	}
	for (size_t i = 0; i < n; i++) {
		const struct cpart *p = &g->parts[i];

		tp[i] = (struct ctl_tp){ .topic_id = p->topic_id, .partition = p->partition,
					 .member = p->owner ? p->owner->id : 0,
					 .value = p->owner ? p->owner_epoch : 0 };
	}
	ctl_put_tps(o, CTL_A_ASSIGNMENT, tp, n);
	free(tp);
}

static int do_describe(struct daemon *d, struct coord_peer *p, const struct ctl_msg *m,
		       struct ctl_out *o)
{
	const char *name = m->str[CTL_A_GROUP];
	struct cgroup *g = coord_find(d, name);
	struct stat st;

	if (!g) {
		if (!group_file_exists(d, name, &st))
			return unknown_group(p, name);
		ctl_put_str(o, CTL_A_GROUP_STATE, "empty");
		return 0;
	}
	ctl_put_str(o, CTL_A_GROUP_STATE, coord_state(g));
	ctl_put_str(o, CTL_A_ASSIGNOR, assignor_name(g->assignor));
	ctl_put_u64(o, CTL_A_GROUP_EPOCH, g->epoch);
	ctl_put_u64(o, CTL_A_REBALANCES, g->rebalances);
	ctl_put_i64(o, CTL_A_SESSION_TIMEOUT_MS, g->session_ms);
	ctl_put_i64(o, CTL_A_MAX_POLL_MS, g->max_poll_ms);
	put_members(g, o);
	put_parts(g, o);
	return 0;
}

/* May the peer reset or delete the group?  0, or -EACCES / -ENOENT / -EBUSY. */
static int may_change(struct daemon *d, struct coord_peer *p, const char *name, const char *verb)
{
	struct cgroup *g = coord_find(d, name);
	struct stat st;

	if (!group_file_exists(d, name, &st))
		return unknown_group(p, name);
	if (!p->admin && st.st_uid != p->uid) {
		snprintf(p->msg, sizeof p->msg, "uid %u may not %s group \"%s\": only its owner "
			 "(uid %u), root, the daemon's user and the admin group may", (unsigned)p->uid,
			 verb, name, (unsigned)st.st_uid);
		return -EACCES;
	}
	if (g && g->nmembers) {
		snprintf(p->msg, sizeof p->msg, "group \"%s\" has %zu member%s (state %s): shmbusd "
			 "does not %s a group while it has members; stop its consumers first "
			 "(`shmbus groups describe %s` lists them)", name, g->nmembers,
			 g->nmembers == 1 ? "" : "s", coord_state(g), verb, name);
		return -EBUSY;
	}
	return 0;
}

/* Does the topic id and partition exist among ts[0..n)? */
static bool tp_exists(const struct bus_topic *ts, int n, uint64_t topic_id, uint32_t partition)
{
	for (int i = 0; i < n; i++)
		if (ts[i].id == topic_id)
			return partition < ts[i].partitions;
	return false;
}

static int do_reset(struct daemon *d, struct coord_peer *p, const struct ctl_msg *m)
{
	const char *name = m->str[CTL_A_GROUP];
	int n = ctl_tp_count(m, CTL_A_OFFSETS), rc = may_change(d, p, name, "reset the offsets of");
	struct group_file gf;
	struct bus_topic *ts;
	int nt;

	if (rc)
		return rc;
	if (n < 0) {
		snprintf(p->msg, sizeof p->msg, "%s", shm_errmsg());
		return n;
	}
	ts = malloc(BUS_MAX_TOPICS * sizeof *ts);
	if (!ts) {
		snprintf(p->msg, sizeof p->msg, "shmbusd is out of memory");
		return -ENOMEM;
	}
	nt = dir_list(&d->dir, ts, BUS_MAX_TOPICS);
	rc = group_open(d->groupsfd, name, false, &gf);
	if (rc < 0) {
		snprintf(p->msg, sizeof p->msg, "%s", shm_errmsg());
		free(ts);
		return rc;
	}
	for (int i = 0; i < n && rc == 0; i++) {
		struct ctl_tp tp;

		ctl_tp_get(m, CTL_A_OFFSETS, (size_t)i, &tp);
		if (!tp_exists(ts, nt, tp.topic_id, tp.partition)) {
			snprintf(p->msg, sizeof p->msg, "group \"%s\": partition %u of topic id %llu "
				 "does not exist (was the topic deleted?)", name, tp.partition,
				 (unsigned long long)tp.topic_id);
			rc = -ENOENT;
		} else if ((rc = group_reset(&gf, tp.topic_id, tp.partition, tp.value)) < 0) {
			snprintf(p->msg, sizeof p->msg, "%s", shm_errmsg());
		}
	}
	group_close(&gf);
	free(ts);
	if (rc == 0)
		log_notice("group \"%s\": %d offsets reset by %s", name, n, p->who);
	return rc;
}

static int do_delete(struct daemon *d, struct coord_peer *p, const struct ctl_msg *m)
{
	const char *name = m->str[CTL_A_GROUP];
	int rc = may_change(d, p, name, "delete");

	if (rc)
		return rc;
	if (unlinkat(d->groupsfd, name, 0) < 0) {
		rc = -errno;
		snprintf(p->msg, sizeof p->msg, "cannot delete group \"%s\": %s", name, strerror(-rc));
		return rc;
	}
	log_notice("group \"%s\" deleted by %s", name, p->who);
	return 0;
}

int coord_serve(struct daemon *d, struct coord_peer *p, const struct ctl_msg *m, struct ctl_out *o)
{
	if (!d->coord) {
		snprintf(p->msg, sizeof p->msg, "shmbusd's group coordinator is not running");
		return -EAGAIN;
	}
	if (m->has[CTL_A_GROUP] && !dir_name_valid(m->str[CTL_A_GROUP])) {
		snprintf(p->msg, sizeof p->msg, "\"%.64s\" is not a valid group name: use 1 to 249 "
			 "of [A-Za-z0-9._-]", m->str[CTL_A_GROUP]);
		return -EINVAL;
	}
	switch (m->hdr.type) {
	case CTL_GROUP_JOIN:
		return coord_join(d, p, m, o);
	case CTL_GROUP_HEARTBEAT:
		return coord_heartbeat(d, p, m, o);
	case CTL_GROUP_LEAVE:
		return coord_leave(d, p, m);
	case CTL_GROUP_LIST:
		return do_list(d, o);
	case CTL_GROUP_DESCRIBE:
		return do_describe(d, p, m, o);
	case CTL_GROUP_RESET:
		return do_reset(d, p, m);
	default:
		return do_delete(d, p, m);
	}
}
