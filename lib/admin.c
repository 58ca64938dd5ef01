/*
 * admin.c - topics and groups: describe, list, partition info, recover;
 * list, read and delete groups.  Creating and deleting topics is in
 * topics.c.
 *
 * Recovery runs under the root's admin lock: it first sets the
 * partition's status word right against the bus directory (format.md
 * §8), then scans the records if no other process has the partition
 * mapped.
 */
#include "internal.h"

#include "../util/ctlproto.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../shm/frame.h"
#include "../shm/read.h"
#include "../shm/stats.h"
#include "../shm/recover.h"
#include "../util/shareddir.h"
#include "../shm/usage.h"

static void topic_info(const struct bus_topic *t, struct shmbus_topic_info *ret)
{
	memset(ret, 0, sizeof *ret);
	snprintf(ret->name, sizeof ret->name, "%s", t->name);
	ret->id = t->id;
	ret->partitions = t->partitions;
	ret->capacity = t->capacity;
	ret->index_capacity = t->index_capacity;
	ret->policy = (enum shmbus_policy)t->policy;
	ret->numa_node = t->numa_node;
	ret->retention_ms = t->retention_ms;
	ret->created_ns = t->created_ns;
	ret->max_record = (t->capacity / 2 > UINT32_MAX ? UINT32_MAX : t->capacity / 2) - FRAME_HDR_SIZE;
}

SHMBUS_API int shmbus_topic_describe(shmbus *bus, const char *name, struct shmbus_topic_info *ret)
{
	struct shmbus_topic_info info;
	struct bus_topic t;
	int rc = OUT_CHECK(shmbus_topic_info, ret);

	if (rc == 0)
		rc = topic_lookup(bus, name, &t);
	if (rc)
		return rc;
	topic_info(&t, &info);
	OUT_STORE(ret, info);
	return 0;
}

SHMBUS_API int shmbus_topic_list(shmbus *bus, struct shmbus_topic_info *out, size_t max)
{
	struct bus_topic *all;
	struct shmbus_topic_info info;
	size_t stride = 0;
	int n;

	if (max) {
		n = OUT_CHECK(shmbus_topic_info, out);
		if (n < 0)
			return n;
		stride = out->sz; /* the caller's struct, maybe not ours */
	}
	all = malloc(sizeof *all * BUS_MAX_TOPICS);
	if (!all)
		return lib_err(-ENOMEM, "out of memory");
	n = dir_list(&bus->dir, all, BUS_MAX_TOPICS);
	for (int i = 0; i < n && (size_t)i < max; i++) {
		topic_info(&all[i], &info);
		out_store((char *)out + (size_t)i * stride, stride, &info, sizeof info);
	}
	free(all);
	return n;
}

static int get_partition(shmbus *bus, const char *topic, int32_t partition, struct pmap **ret)
{
	struct bus_topic t;
	int rc = topic_lookup(bus, topic, &t);

	if (rc)
		return rc;
	rc = check_partition(topic, t.partitions, partition);
	if (rc)
		return rc;
	return cache_get(bus, &t, (uint32_t)partition, ret);
}

SHMBUS_API int shmbus_partition_info(shmbus *bus, const char *topic, uint32_t partition,
				     struct shmbus_partition_info *out)
{
	struct shmbus_partition_info info, *ret = &info; /* copied to out up to its sz */
	struct part_stats st;
	struct pmap *m;
	uint64_t min_pos = UINT64_MAX;
	int rc = OUT_CHECK(shmbus_partition_info, out);

	if (rc == 0)
		rc = get_partition(bus, topic, (int32_t)partition, &m);
	if (rc)
		return rc;
	part_stats_read(&m->part, &st);
	memset(ret, 0, sizeof *ret);
	ret->low = st.low;
	ret->high = st.end;
	ret->tail = st.tail;
	ret->capacity = m->part.cap;
	ret->epoch = m->part.epoch;
	ret->mirrored = st.mirrored;
	ret->aborted_claims = st.aborted_claims;
	ret->lapped_reads = st.lapped_reads;
	ret->backpressure_blocks = st.bp_blocked;
	ret->recoveries = st.recoveries;
	ret->recovered_cut = st.recovered_cut;
	ret->policy = (enum shmbus_policy)m->part.policy;
	ret->deleted = part_deleted(&m->part);
	ret->registered_consumers = st.consumers;
	for (uint32_t i = 0; i < st.consumers; i++)
		if (st.end - st.consumer_offset[i] < min_pos)
			min_pos = st.end - st.consumer_offset[i];
	if (ret->registered_consumers)
		ret->min_consumer_lag = min_pos > UINT32_MAX ? UINT32_MAX : (uint32_t)min_pos;
	cache_put(m);
	OUT_STORE(out, info);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Recovery                                                            */

/* What was wrong with a status word found as `old` (format.md §8). */
uint32_t topic_status_faults(bool live, uint64_t want, uint64_t old)
{
	uint32_t r = 0;

	if (!live)
		return (old & PART_STATUS_DELETED) ? 0 : SHMBUS_REPAIRED_DELETED;
	if (old & PART_STATUS_DELETED)
		r |= SHMBUS_REPAIRED_DELETED;
	if ((old ^ want) & PART_STATUS_REPLICA)
		r |= SHMBUS_REPAIRED_READONLY;
	if (old & ~PART_STATUS_KNOWN)
		r |= SHMBUS_REPAIRED_UNKNOWN;
	return r;
}

void status_repair_text(char *buf, size_t len, const char *topic, uint32_t repaired, bool live)
{
	int n = 0;

	buf[0] = '\0';
	if ((repaired & SHMBUS_REPAIRED_DELETED) && live)
		n += snprintf(buf + n, len - (size_t)n, "marked deleted, but topic \"%s\" exists in "
			      "the bus directory; ", topic);
	else if (repaired & SHMBUS_REPAIRED_DELETED)
		n += snprintf(buf + n, len - (size_t)n, "not marked deleted, but its topic was "
			      "deleted; ");
	if ((repaired & SHMBUS_REPAIRED_READONLY) && (size_t)n < len)
		n += snprintf(buf + n, len - (size_t)n, "marked read-only (a replica) or not, "
			      "unlike topic \"%s\"; ", topic);
	if ((repaired & SHMBUS_REPAIRED_UNKNOWN) && (size_t)n < len)
		n += snprintf(buf + n, len - (size_t)n, "status bits no version defines; ");
	if (n >= 2 && (size_t)n <= len)
		buf[n - 2] = '\0'; /* the last "; " */
}

/* The status word of m against the directory, under the admin lock. */
static int status_repair_locked(shmbus *bus, const char *topic, struct pmap *m,
				uint32_t *ret_repaired, bool *ret_live)
{
	struct bus_topic t;
	bool live = dir_lookup(&bus->dir, topic, &t) == 0 && t.id == m->topic_id;
	uint64_t want = live ? bus_topic_status(&t) : PART_STATUS_DELETED;
	uint64_t old = part_status(&m->part);
	uint32_t faults = topic_status_faults(live, want, old);
	char what[300];

	if (faults && part_status_repair(&m->part, live, want, &old) < 0) {
		status_repair_text(what, sizeof what, topic, faults, live);
		return lib_err(-EROFS, "partition %s/%u: its status word is wrong (%s), and this "
			       "process maps it read-only; recover it as a user who may write the "
			       "topic's files", topic, m->partition, what);
	}
	*ret_repaired = topic_status_faults(live, want, old);
	if (ret_live)
		*ret_live = live;
	return 0;
}

int topic_status_repair(shmbus *bus, const char *topic, struct pmap *m, uint32_t *ret_repaired)
{
	int rc = admin_lock(bus);

	if (rc)
		return rc;
	rc = status_repair_locked(bus, topic, m, ret_repaired, NULL);
	admin_unlock(bus);
	return rc;
}

int topic_status_repair_try(shmbus *bus, const char *topic, struct pmap *m,
			    uint32_t *ret_repaired)
{
	int rc = admin_trylock(bus);

	if (rc)
		return rc;
	rc = status_repair_locked(bus, topic, m, ret_repaired, NULL);
	admin_unlock(bus);
	return rc;
}

/* -EBUSY for a partition others use, saying what was repaired anyway. */
static int in_use(const char *topic, uint32_t partition, uint32_t repaired, bool live)
{
	char what[300];

	if (!repaired)
		return lib_err(-EBUSY, "partition %s/%u is in use by other processes; recover it "
			       "when its producers and consumers have stopped (shmbusd does at "
			       "start-up)", topic, partition);
	status_repair_text(what, sizeof what, topic, repaired, live);
	return lib_err(-EBUSY, "partition %s/%u is in use by other processes: its status word "
		       "was repaired (it was %s), but its records were not scanned; recover it "
		       "again when its producers and consumers have stopped (shmbusd does at "
		       "start-up)", topic, partition, what);
}

/* Status check, then the scan if nobody else has the partition mapped. */
static int recover_locked(shmbus *bus, const char *topic, uint32_t partition, struct pmap *m,
			  struct part_recovery *r, uint32_t *repaired)
{
	bool live = true;
	int rc = status_repair_locked(bus, topic, m, repaired, &live);

	if (rc)
		return rc;
	rc = pmap_recover(bus, m, r); /* only while no other process maps it */
	if (rc == -EBUSY)
		return in_use(topic, partition, *repaired, live);
	return rc;
}

SHMBUS_API int shmbus_partition_recover(shmbus *bus, const char *topic, uint32_t partition,
					struct shmbus_recovery *out)
{
	struct shmbus_recovery rec, *ret = &rec; /* copied to out up to its sz */
	struct part_recovery r;
	uint32_t repaired = 0;
	struct pmap *m;
	int rc = OUT_CHECK(shmbus_recovery, out);

	if (rc == 0)
		rc = get_partition(bus, topic, (int32_t)partition, &m);
	if (rc)
		return rc;
	rc = admin_lock(bus);
	if (rc == 0) {
		rc = recover_locked(bus, topic, partition, m, &r, &repaired);
		admin_unlock(bus);
	}
	cache_put(m);
	if (rc)
		return rc;
	memset(ret, 0, sizeof *ret);
	ret->first_offset = r.first_off;
	ret->end_offset = r.new_next;
	ret->frames = r.frames;
	ret->aborted = r.aborted;
	ret->cut = r.cut;
	ret->cut_bytes = r.cut_bytes;
	ret->rebuilt = r.rebuilt;
	ret->repaired = repaired;
	snprintf(ret->reason, sizeof ret->reason, "%s", r.reason);
	OUT_STORE(out, rec);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Groups                                                              */

SHMBUS_API int shmbus_group_list(shmbus *bus, int (*fn)(void *ctx, const char *group), void *ctx)
{
	int fd = openat(bus->groupsfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc = 0;
	struct dirent *e;
	DIR *d;

	if (fd < 0 || !(d = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return lib_err(-errno, "cannot list %s/groups: %s", bus->root, strerror(errno));
	}
	while (rc == 0 && (e = readdir(d)))
		if (dir_name_valid(e->d_name))
			rc = fn(ctx, e->d_name);
	closedir(d);
	return rc;
}

struct offsets_ctx {
	struct bus_topic *topics;
	int ntopics;
	int (*fn)(void *ctx, const char *topic, int32_t partition, uint64_t offset,
		  int64_t commit_ns);
	void *ctx;
};

static int offsets_visit(void *arg, uint64_t topic_id, uint32_t partition, uint64_t offset,
			 int64_t commit_ns)
{
	struct offsets_ctx *oc = arg;

	for (int i = 0; i < oc->ntopics; i++)
		if (oc->topics[i].id == topic_id)
			return oc->fn(oc->ctx, oc->topics[i].name, (int32_t)partition, offset, commit_ns);
	return 0; /* a deleted topic */
}

SHMBUS_API int shmbus_group_offsets(shmbus *bus, const char *group,
				    int (*fn)(void *ctx, const char *topic, int32_t partition,
					      uint64_t offset, int64_t commit_ns),
				    void *ctx)
{
	struct offsets_ctx oc = { .fn = fn, .ctx = ctx };
	struct group_file g;
	int rc;

	if (!dir_name_valid(group))
		return lib_err(-EINVAL, "\"%s\" is not a valid group name: use 1 to 249 of "
			       "[A-Za-z0-9._-]", group ? group : "(null)");
	rc = group_open(bus->groupsfd, group, false, &g);
	if (rc)
		return rc;
	oc.topics = malloc(sizeof *oc.topics * BUS_MAX_TOPICS);
	if (!oc.topics) {
		group_close(&g);
		return lib_err(-ENOMEM, "out of memory");
	}
	oc.ntopics = dir_list(&bus->dir, oc.topics, BUS_MAX_TOPICS);
	rc = group_foreach(&g, offsets_visit, &oc);
	free(oc.topics);
	group_close(&g);
	return rc;
}

static void build_group(struct ctl_out *o, const void *arg)
{
	ctl_put_str(o, CTL_A_GROUP, arg);
}

SHMBUS_API int shmbus_group_delete(shmbus *bus, const char *group)
{
	int rc;

	if (!dir_name_valid(group))
		return lib_err(-EINVAL, "\"%s\" is not a valid group name", group ? group : "(null)");
	/* shmbusd refuses while the group has members (protocol.md §8) */
	rc = daemon_call(bus, CTL_GROUP_DELETE, build_group, group, NULL, NULL, 5000);
	if (rc != DAEMON_NONE)
		return rc;
	if (unlinkat(bus->groupsfd, group, 0) < 0)
		return errno == ENOENT ? lib_err(-ENOENT, "group \"%s\" does not exist", group)
				       : lib_err(-errno, "cannot delete group \"%s\": %s", group,
						 strerror(errno));
	return 0;
}
