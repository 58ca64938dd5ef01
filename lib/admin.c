/*
 * admin.c - topics and groups: create, delete, describe, list, recover.
 *
 * Changes to the root run under its admin lock (a mutex for this
 * process's threads, flock for other processes).  A topic becomes visible
 * only once all its partition files exist; a deleted topic is marked
 * deleted in every partition before its files are unlinked, so its users
 * get -EIDRM rather than writes into a dead file.
 *
 * When shmbusd serves the root, creation and deletion are asked of it
 * (daemon.c): it decides who may, and its files get the root's group and
 * its configured mode.  Without it, or if it vanishes, they run here.
 */
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../shm/clock.h"
#include "../shm/frame.h"
#include "../shm/read.h"
#include "../shm/recover.h"
#include "../shm/usage.h"

static int admin_lock(shmbus *bus)
{
	int rc;

	pthread_mutex_lock(&bus->admin);
	rc = dir_lock(&bus->dir);
	if (rc)
		pthread_mutex_unlock(&bus->admin);
	return rc;
}

static void admin_unlock(shmbus *bus)
{
	dir_unlock(&bus->dir);
	pthread_mutex_unlock(&bus->admin);
}

/* Remove a topic directory and everything in it. */
static void remove_topic_dir(shmbus *bus, const char *name)
{
	int fd = openat(bus->topicsfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d;
	struct dirent *e;

	if (fd < 0)
		return;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return;
	}
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			unlinkat(fd, e->d_name, 0);
	closedir(d);
	unlinkat(bus->topicsfd, name, AT_REMOVEDIR);
}

static int create_partitions(shmbus *bus, const struct bus_topic *t)
{
	char errbuf[512];
	int dfd, rc = 0;

	remove_topic_dir(bus, t->name); /* left by a crash during an earlier create */
	rc = make_shared_dir(bus->topicsfd, t->name);
	if (rc < 0)
		return lib_err(rc, "cannot create directory for topic \"%s\" in %s/topics: %s",
			       t->name, bus->root, strerror(-rc));
	dfd = openat(bus->topicsfd, t->name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return lib_err(-errno, "cannot open directory of topic \"%s\": %s", t->name,
			       strerror(errno));
	for (uint32_t i = 0; i < t->partitions && rc == 0; i++) {
		struct part_params prm = {
			.topic = t->name, .topic_id = t->id, .partition = i,
			.capacity = t->capacity, .index_capacity = t->index_capacity,
			.policy = t->policy, .numa_node = t->numa_node, .mode = t->mode,
		};
		char name[16];
		struct part p;

		snprintf(name, sizeof name, "%u", i);
		rc = part_create(dfd, name, &prm, &p);
		if (rc == 0) {
			part_unmap(&p);
		} else {
			snprintf(errbuf, sizeof errbuf, "%s", shm_errmsg());
			lib_err(rc, "topic \"%s\" partition %u: %s", t->name, i, errbuf);
		}
	}
	close(dfd);
	if (rc)
		remove_topic_dir(bus, t->name);
	return rc;
}

SHMBUS_API int shmbus_topic_create(shmbus *bus, const char *name,
				   const struct shmbus_topic_opts *opts)
{
	struct shmbus_topic_opts o;
	struct bus_topic t = { 0 }, old;
	struct part_params prm;
	int rc;

	rc = OPTS_LOAD(shmbus_topic_opts, o, opts);
	if (rc < 0)
		return rc;
	if (!dir_name_valid(name))
		return lib_err(-EINVAL, "\"%s\" is not a valid topic name: use 1 to 249 of "
			       "[A-Za-z0-9._-]", name ? name : "(null)");
	snprintf(t.name, sizeof t.name, "%s", name);
	t.partitions = o.partitions ? o.partitions : 1;
	t.capacity = o.capacity ? o.capacity : SHMBUS_DEFAULT_CAPACITY;
	t.index_capacity = o.index_capacity ? o.index_capacity : part_default_icap(t.capacity);
	t.policy = (uint32_t)o.policy;
	t.numa_node = o.numa_bind ? o.numa_node : -1;
	t.retention_ms = o.retention_ms;
	t.mode = o.mode ? o.mode : 0660;
	t.created_ns = real_ns();
	if (t.partitions > BUS_MAX_PARTITIONS)
		return lib_err(-EINVAL, "topic \"%s\": %u partitions is more than the maximum, %u",
			       name, t.partitions, BUS_MAX_PARTITIONS);
	if (o.retention_ms < 0)
		return lib_err(-EINVAL, "topic \"%s\": retention must be >= 0 ms", name);
	prm = (struct part_params){ .topic = name, .capacity = t.capacity,
				    .index_capacity = t.index_capacity, .policy = t.policy };
	rc = part_params_check(&prm);
	if (rc) {
		char why[512];

		snprintf(why, sizeof why, "%s", shm_errmsg());
		return lib_err(rc, "topic \"%s\": %s", name, why);
	}
	rc = daemon_topic_create(bus, name, &o); /* shmbusd does it, if one serves */
	if (rc != DAEMON_NONE)
		return rc;
	rc = admin_lock(bus);
	if (rc)
		return rc;
	if (dir_lookup(&bus->dir, name, &old) == 0) {
		rc = lib_err(-EEXIST, "topic \"%s\" already exists (%u partitions); use it, or "
			     "delete it first", name, old.partitions);
		goto out;
	}
	t.id = dir_reserve_id(&bus->dir);
	rc = create_partitions(bus, &t);
	if (rc == 0)
		rc = dir_add(&bus->dir, &t);
	if (rc)
		remove_topic_dir(bus, name);
out:
	admin_unlock(bus);
	return rc;
}

SHMBUS_API int shmbus_topic_delete(shmbus *bus, const char *name)
{
	struct bus_topic t;
	int rc, dfd;

	rc = topic_lookup(bus, name, &t);
	if (rc)
		return rc;
	rc = daemon_topic_delete(bus, name); /* shmbusd does it, if one serves */
	if (rc != DAEMON_NONE) {
		cache_sweep(bus);
		return rc;
	}
	rc = admin_lock(bus);
	if (rc)
		return rc;
	if (dir_lookup(&bus->dir, name, &t) < 0) {
		rc = lib_err(-ENOENT, "topic \"%s\" does not exist", name);
		goto out;
	}
	/* Mark every partition deleted before anything disappears. */
	dfd = openat(bus->topicsfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	for (uint32_t i = 0; dfd >= 0 && i < t.partitions; i++) {
		char file[16];
		struct part p;

		snprintf(file, sizeof file, "%u", i);
		if (part_open(dfd, file, false, file, &p) == 0) {
			if (p.topic_id == t.id)
				part_mark_deleted(&p);
			part_unmap(&p);
		}
	}
	if (dfd >= 0)
		close(dfd);
	rc = dir_remove(&bus->dir, name);
	if (rc == 0)
		remove_topic_dir(bus, name);
out:
	admin_unlock(bus);
	cache_sweep(bus);
	return rc;
}

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
	struct part_header *h;
	struct pmap *m;
	uint64_t low, high, min_pos = UINT64_MAX;
	int rc = OUT_CHECK(shmbus_partition_info, out);

	if (rc == 0)
		rc = get_partition(bus, topic, (int32_t)partition, &m);
	if (rc)
		return rc;
	h = m->part.hdr;
	part_bounds(&m->part, &low, &high);
	memset(ret, 0, sizeof *ret);
	ret->low = low;
	ret->high = high;
	ret->tail = load_acquire(&h->claim.lo);
	ret->capacity = m->part.cap;
	ret->epoch = m->part.epoch;
	ret->mirrored = load_relaxed(&h->mirrored);
	ret->aborted_claims = load_relaxed(&h->aborted_claims);
	ret->lapped_reads = load_relaxed(&h->lapped_reads);
	ret->backpressure_blocks = load_relaxed(&h->bp_blocked);
	ret->recoveries = load_relaxed(&h->recoveries);
	ret->recovered_cut = load_relaxed(&h->recovered_cut);
	ret->policy = (enum shmbus_policy)m->part.policy;
	ret->deleted = part_deleted(&m->part);
	for (int i = 0; i < PART_MAX_CONSUMERS; i++) {
		struct part_consumer_slot *s = &h->consumers[i];

		if (load_acquire(&s->flags) & 1u) {
			uint64_t off = load_relaxed(&s->offset);

			ret->registered_consumers++;
			if (high - off < min_pos)
				min_pos = high - off;
		}
	}
	if (ret->registered_consumers)
		ret->min_consumer_lag = min_pos > UINT32_MAX ? UINT32_MAX : (uint32_t)min_pos;
	cache_put(m);
	OUT_STORE(out, info);
	return 0;
}

SHMBUS_API int shmbus_partition_recover(shmbus *bus, const char *topic, uint32_t partition,
					struct shmbus_recovery *out)
{
	struct shmbus_recovery rec, *ret = &rec; /* copied to out up to its sz */
	struct part_recovery r;
	struct pmap *m;
	int rc = OUT_CHECK(shmbus_recovery, out);

	if (rc == 0)
		rc = get_partition(bus, topic, (int32_t)partition, &m);
	if (rc)
		return rc;
	rc = admin_lock(bus);
	if (rc == 0) {
		rc = pmap_recover(bus, m, &r);
		if (rc == -EBUSY) {
			rc = lib_err(-EBUSY, "partition %s/%u is in use by other processes; recover "
				     "it when its producers and consumers have stopped (shmbusd does "
				     "at start-up)", topic, partition);
		}
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

SHMBUS_API int shmbus_group_delete(shmbus *bus, const char *group)
{
	if (!dir_name_valid(group))
		return lib_err(-EINVAL, "\"%s\" is not a valid group name", group ? group : "(null)");
	if (unlinkat(bus->groupsfd, group, 0) < 0)
		return errno == ENOENT ? lib_err(-ENOENT, "group \"%s\" does not exist", group)
				       : lib_err(-errno, "cannot delete group \"%s\": %s", group,
						 strerror(errno));
	return 0;
}
