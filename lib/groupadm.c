/*
 * groupadm.c - describing consumer groups and resetting their offsets
 * (`shmbus groups`): the coordinator's view from shmbusd (GROUP_DESCRIBE,
 * protocol.md §8) joined with what the group file and the partitions
 * hold; resets computed here, written by shmbusd (GROUP_RESET, refused
 * while the group has members) or, with no daemon, here.
 */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "../util/ctlproto.h"

struct described {
	struct shmbus_group_desc d;
	char *members;
	struct ctl_tp *tp;
	size_t n;
	int err;
};

static void copy_str(char *dst, size_t len, const struct ctl_msg *rep, enum ctl_attr a)
{
	snprintf(dst, len, "%s", rep->has[a] ? rep->str[a] : "");
}

static void read_describe(const struct ctl_msg *rep, void *out)
{
	struct described *x = out;
	int n = ctl_tp_count(rep, CTL_A_ASSIGNMENT);

	copy_str(x->d.state, sizeof x->d.state, rep, CTL_A_GROUP_STATE);
	copy_str(x->d.assignor, sizeof x->d.assignor, rep, CTL_A_ASSIGNOR);
	x->d.epoch = rep->num[CTL_A_GROUP_EPOCH];
	x->d.rebalances = rep->num[CTL_A_REBALANCES];
	x->d.session_timeout_ms = ctl_signed(rep, CTL_A_SESSION_TIMEOUT_MS);
	x->d.max_poll_interval_ms = ctl_signed(rep, CTL_A_MAX_POLL_MS);
	x->members = strdup(rep->has[CTL_A_MEMBERS] ? rep->str[CTL_A_MEMBERS] : "");
	x->tp = n > 0 ? calloc((size_t)n, sizeof *x->tp) : NULL;
	if (n < 0 || !x->members || (n > 0 && !x->tp)) {
		x->err = n < 0 ? n : -ENOMEM;
		return;
	}
	for (int i = 0; i < n; i++)
		ctl_tp_get(rep, CTL_A_ASSIGNMENT, (size_t)i, &x->tp[i]);
	x->n = (size_t)n;
}

static void build_group(struct ctl_out *o, const void *arg)
{
	ctl_put_str(o, CTL_A_GROUP, arg);
}

/* Each member line: id pid epoch acked instance host subscription state. */
static int walk_members(struct described *x, int (*fn)(void *, const struct shmbus_group_member *),
			void *ctx)
{
	char *save = NULL;
	int rc = 0;

	for (char *line = strtok_r(x->members, "\n", &save); line && rc == 0;
	     line = strtok_r(NULL, "\n", &save)) {
		char *f[8], *s2 = NULL;
		int k = 0;

		for (char *t = strtok_r(line, "\t", &s2); t && k < 8; t = strtok_r(NULL, "\t", &s2))
			f[k++] = t;
		if (k < 8)
			continue;
		x->d.members++;
		if (!fn)
			continue;
		rc = fn(ctx, &(struct shmbus_group_member){
			.sz = sizeof(struct shmbus_group_member),
			.member_id = strtoull(f[0], NULL, 10), .pid = (int32_t)atoi(f[1]),
			.member_epoch = strtoull(f[2], NULL, 10), .acked_epoch = strtoull(f[3], NULL, 10),
			.instance_id = strcmp(f[4], "-") ? f[4] : "", .host = strcmp(f[5], "-") ? f[5] : "",
			.subscription = f[6], .alive = !strcmp(f[7], "alive") });
	}
	return rc;
}

struct part_row {
	uint64_t topic_id;
	uint32_t partition;
	uint64_t owner;
};

struct rows {
	struct part_row *r;
	size_t n, cap;
};

static int row_add(struct rows *rs, uint64_t topic_id, uint32_t partition, uint64_t owner)
{
	for (size_t i = 0; i < rs->n; i++)
		if (rs->r[i].topic_id == topic_id && rs->r[i].partition == partition) {
			rs->r[i].owner = owner ? owner : rs->r[i].owner;
			return 0;
		}
	if (rs->n == rs->cap) {
		size_t cap = rs->cap ? rs->cap * 2 : 64;
		struct part_row *g = realloc(rs->r, cap * sizeof *g);

		if (!g)
			return -ENOMEM;
		rs->r = g;
		rs->cap = cap;
	}
	rs->r[rs->n++] = (struct part_row){ topic_id, partition, owner };
	return 0;
}

static int committed_row(void *ctx, uint64_t topic_id, uint32_t partition, uint64_t offset,
			 int64_t commit_ns)
{
	(void)offset;
	(void)commit_ns;
	return row_add(ctx, topic_id, partition, 0);
}

static const struct bus_topic *topic_of(const struct bus_topic *ts, int n, uint64_t id)
{
	for (int i = 0; i < n; i++)
		if (ts[i].id == id)
			return &ts[i];
	return NULL;
}

static int walk_parts(shmbus *bus, struct group_file *g, struct rows *rs,
		      int (*fn)(void *, const struct shmbus_group_partition *), void *ctx)
{
	struct bus_topic *ts = malloc(BUS_MAX_TOPICS * sizeof *ts);
	int nt, rc = 0;

	if (!ts)
		return lib_err(-ENOMEM, "out of memory");
	nt = dir_list(&bus->dir, ts, BUS_MAX_TOPICS);
	for (size_t i = 0; i < rs->n && rc == 0; i++) {
		const struct bus_topic *t = topic_of(ts, nt, rs->r[i].topic_id);
		SHMBUS_OPTS(shmbus_partition_info, info);
		struct shmbus_group_partition p = { .sz = sizeof p };

		if (!t || rs->r[i].partition >= t->partitions ||
		    shmbus_partition_info(bus, t->name, rs->r[i].partition, &info) < 0)
			continue; /* a deleted topic */
		p.topic = t->name;
		p.partition = (int32_t)rs->r[i].partition;
		p.owner = rs->r[i].owner;
		p.committed_valid = g->hdr && group_fetch(g, t->id, rs->r[i].partition,
							   &p.committed, NULL) == 0;
		p.end = info.high;
		p.lag = info.high - (p.committed_valid && p.committed >= info.low
				     ? (p.committed < info.high ? p.committed : info.high) : info.low);
		rc = fn(ctx, &p);
	}
	free(ts);
	return rc;
}

static int by_key(const void *a, const void *b)
{
	const struct part_row *x = a, *y = b;

	if (x->topic_id != y->topic_id)
		return x->topic_id < y->topic_id ? -1 : 1;
	return (x->partition > y->partition) - (x->partition < y->partition);
}

SHMBUS_API int shmbus_group_describe(shmbus *bus, const char *group, struct shmbus_group_desc *ret,
				     int (*on_member)(void *ctx, const struct shmbus_group_member *m),
				     int (*on_partition)(void *ctx,
							 const struct shmbus_group_partition *p),
				     void *ctx)
{
	struct described x = { .d = { .sz = sizeof x.d, .state = "empty" } };
	struct group_file g = { 0 };
	struct rows rs = { 0 };
	int rc = ret ? OUT_CHECK(shmbus_group_desc, ret) : 0;

	if (rc == 0 && !dir_name_valid(group))
		rc = lib_err(-EINVAL, "\"%s\" is not a valid group name: use 1 to 249 of "
			     "[A-Za-z0-9._-]", group ? group : "(null)");
	if (rc == 0)
		rc = daemon_call(bus, CTL_GROUP_DESCRIBE, build_group, group, read_describe, &x,
				 5000);
	if (rc == 0 && x.err)
		rc = lib_err(x.err, "group \"%s\": a malformed description from shmbusd", group);
	if (rc == 0 || rc == DAEMON_NONE) {
		int grc = group_open(bus->groupsfd, group, false, &g);

		if (grc == -ENOENT && rc == DAEMON_NONE)
			rc = lib_err(-ENOENT, "unknown group \"%s\": it has no committed offsets "
				     "and no shmbusd coordinates it", group);
		else
			rc = grc == -ENOENT ? 0 : grc;
	}
	for (size_t i = 0; rc == 0 && i < x.n; i++)
		rc = row_add(&rs, x.tp[i].topic_id, x.tp[i].partition, x.tp[i].member);
	if (rc == 0 && g.hdr)
		rc = group_foreach(&g, committed_row, &rs);
	if (rc == 0 && rs.n)
		qsort(rs.r, rs.n, sizeof *rs.r, by_key);
	if (rc == 0 && x.members)
		rc = walk_members(&x, on_member, ctx);
	if (rc == 0 && on_partition)
		rc = walk_parts(bus, &g, &rs, on_partition, ctx);
	if (rc == 0 && ret)
		OUT_STORE(ret, x.d);
	if (g.hdr)
		group_close(&g);
	free(rs.r);
	free(x.members);
	free(x.tp);
	return rc == -ENOMEM ? lib_err(rc, "out of memory") : rc;
}

/* ------------------------------------------------------------------ */
/* Resetting offsets                                                   */

/* The first offset with a timestamp >= ts_ns in a partition. */
static int offset_at(shmbus *bus, const char *topic, int32_t partition, int64_t ts_ns,
		     uint64_t *ret)
{
	shmbus_consumer *c;
	int rc = shmbus_consumer_new(bus, NULL, &c);

	if (rc < 0)
		return rc;
	rc = shmbus_consumer_assign(c, topic, partition, SHMBUS_OFFSET_BEGINNING);
	if (rc == 0)
		rc = shmbus_consumer_seek_timestamp(c, topic, partition, ts_ns);
	if (rc == 0)
		rc = shmbus_consumer_position(c, topic, partition, ret);
	shmbus_consumer_free(c);
	return rc;
}

static int target_of(shmbus *bus, const struct shmbus_group_reset_opts *o, int32_t p,
		     const struct shmbus_partition_info *info, bool had, uint64_t from,
		     uint64_t *ret)
{
	int64_t v;
	int rc = 0;

	switch (o->to) {
	case SHMBUS_RESET_TO_EARLIEST: v = (int64_t)info->low; break;
	case SHMBUS_RESET_TO_LATEST: v = (int64_t)info->high; break;
	case SHMBUS_RESET_TO_OFFSET: v = o->value; break;
	case SHMBUS_RESET_SHIFT_BY: v = (int64_t)(had ? from : info->low) + o->value; break;
	case SHMBUS_RESET_TO_DATETIME: {
		uint64_t at = 0;

		rc = offset_at(bus, o->topic, p, o->value, &at);
		v = (int64_t)at;
		break;
	}
	default:
		return lib_err(-EINVAL, "unknown reset kind %d", (int)o->to);
	}
	/* within what the partition holds, as Kafka clamps */
	if (v < (int64_t)info->low)
		v = (int64_t)info->low;
	if (v > (int64_t)info->high)
		v = (int64_t)info->high;
	*ret = (uint64_t)v;
	return rc;
}

static void build_reset(struct ctl_out *o, const void *arg)
{
	const struct { const char *group; const struct ctl_tp *tp; size_t n; } *a = arg;

	ctl_put_str(o, CTL_A_GROUP, a->group);
	ctl_put_tps(o, CTL_A_OFFSETS, a->tp, a->n);
}

static int compute(shmbus *bus, struct group_file *g, const struct bus_topic *t,
		   const struct shmbus_group_reset_opts *o, struct ctl_tp *tp)
{
	int rc = 0;

	for (uint32_t p = 0; p < t->partitions && rc == 0; p++) {
		SHMBUS_OPTS(shmbus_partition_info, info);
		uint64_t from = 0;
		bool had = group_fetch(g, t->id, p, &from, NULL) == 0;

		tp[p] = (struct ctl_tp){ .topic_id = t->id, .partition = p };
		rc = shmbus_partition_info(bus, t->name, p, &info);
		if (rc == 0)
			rc = target_of(bus, o, (int32_t)p, &info, had, from, &tp[p].value);
		if (rc == 0 && o->fn)
			rc = o->fn(o->ctx, t->name, (int32_t)p, had, from, tp[p].value);
	}
	return rc;
}

SHMBUS_API int shmbus_group_reset_offsets(shmbus *bus, const char *group,
					  const struct shmbus_group_reset_opts *opts)
{
	struct shmbus_group_reset_opts o;
	struct group_file g = { 0 };
	struct ctl_tp *tp = NULL;
	struct bus_topic t;
	int rc = OPTS_LOAD(shmbus_group_reset_opts, o, opts);

	if (rc == 0 && (!group || !dir_name_valid(group)))
		rc = lib_err(-EINVAL, "\"%s\" is not a valid group name", group ? group : "(null)");
	if (rc == 0 && !o.topic)
		rc = lib_err(-EINVAL, "reset-offsets needs a topic");
	if (rc == 0)
		rc = topic_lookup(bus, o.topic, &t);
	if (rc == 0 && (rc = group_open(bus->groupsfd, group, false, &g)) == -ENOENT)
		rc = lib_err(-ENOENT, "unknown group \"%s\": it has no committed offsets", group);
	if (rc == 0 && !(tp = calloc(t.partitions, sizeof *tp)))
		rc = lib_err(-ENOMEM, "out of memory");
	if (rc == 0)
		rc = compute(bus, &g, &t, &o, tp);
	if (rc == 0 && !o.dry_run) {
		struct { const char *group; const struct ctl_tp *tp; size_t n; } a = { group, tp,
										      t.partitions };

		rc = daemon_call(bus, CTL_GROUP_RESET, build_reset, &a, NULL, NULL, 5000);
		for (uint32_t p = 0; rc == DAEMON_NONE && p < t.partitions; p++)
			if (group_reset(&g, t.id, p, tp[p].value) < 0)
				rc = lib_err(-EIO, "group \"%s\": %s", group, shm_errmsg());
		if (rc == DAEMON_NONE)
			rc = 0;
	}
	if (g.hdr)
		group_close(&g);
	free(tp);
	return rc;
}
