/*
 * cache.c - the per-process table of mapped partitions.
 *
 * A liburcu lock-free hash table (cds_lfht, urcu-bp flavour: a library
 * cannot make its callers register their threads).  Lookups run under
 * rcu_read_lock and take a reference before leaving it.  When a topic
 * is deleted or recreated, its entries are unlinked; the mapping itself
 * is released by call_rcu after a grace period once the last producer or
 * consumer drops its reference, so no thread ever touches an unmapped
 * page.
 */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <urcu/call-rcu.h>

#include "../shm/recover.h"
#include "../shm/usage.h"

struct key {
	uint64_t topic_id;
	uint32_t partition;
};

static unsigned long hash_of(uint64_t topic_id, uint32_t partition)
{
	uint64_t h = topic_id * 0x9e3779b97f4a7c15ULL ^ (partition + 0x632be59bd9b4e019ULL);

	h ^= h >> 31;
	h *= 0xbf58476d1ce4e5b9ULL;
	return (unsigned long)(h ^ (h >> 29));
}

static int match(struct cds_lfht_node *node, const void *arg)
{
	const struct pmap *m = caa_container_of(node, struct pmap, node);
	const struct key *k = arg;

	return m->topic_id == k->topic_id && m->partition == k->partition;
}

static void free_rcu(struct rcu_head *head)
{
	struct pmap *m = caa_container_of(head, struct pmap, rcu);

	if (m->usagefd >= 0)
		usage_release(m->usagefd, m->topic_id, m->partition);
	part_unmap(&m->part);
	free(m);
}

static void release(struct urcu_ref *ref)
{
	struct pmap *m = caa_container_of(ref, struct pmap, ref);

	/* Unlinked already: the table's own reference was the last but one. */
	call_rcu(&m->rcu, free_rcu);
}

void cache_put(struct pmap *m)
{
	if (m)
		urcu_ref_put(&m->ref, release);
}

struct part *pmap_part(struct pmap *m)
{
	return &m->part;
}

int pmap_recover(shmbus *bus, struct pmap *m, struct part_recovery *ret)
{
	/* the exclusive lock only while no other process has it mapped (format.md §11) */
	int rc = usage_try_exclusive(bus->usagefd, m->topic_id, m->partition);

	if (rc < 0)
		return rc;
	rc = part_recover(&m->part, ret);
	usage_share(bus->usagefd, m->topic_id, m->partition);
	return rc;
}

static struct pmap *lookup(shmbus *bus, const struct key *k, unsigned long hash)
{
	struct cds_lfht_iter iter;
	struct cds_lfht_node *node;
	struct pmap *m = NULL;

	rcu_read_lock();
	cds_lfht_lookup(bus->maps, hash, match, k, &iter);
	node = cds_lfht_iter_get_node(&iter);
	if (node) {
		m = caa_container_of(node, struct pmap, node);
		if (!urcu_ref_get_unless_zero(&m->ref))
			m = NULL;
	}
	rcu_read_unlock();
	return m;
}

static int map_partition(shmbus *bus, const struct bus_topic *t, uint32_t partition,
			 struct pmap **ret)
{
	char path[PART_NAME_MAX + 32], label[PART_NAME_MAX + 16];
	struct pmap *m = calloc(1, sizeof *m);
	int rc;

	if (!m)
		return lib_err(-ENOMEM, "out of memory");
	snprintf(path, sizeof path, "%s/%u", t->name, partition);
	snprintf(label, sizeof label, "%s/%u", t->name, partition);
	rc = part_open(bus->topicsfd, path, false, label, &m->part);
	if (rc) {
		free(m);
		if (rc == -ENOENT)
			return lib_err(-EIDRM, "partition %s is gone: topic \"%s\" was deleted", label,
				       t->name);
		return rc;
	}
	if (m->part.topic_id != t->id) {
		part_unmap(&m->part);
		free(m);
		return lib_err(-EIDRM, "partition %s belongs to another incarnation of topic \"%s\" "
			       "(deleted and recreated meanwhile); open it again", label, t->name);
	}
	m->topic_id = t->id;
	m->partition = partition;
	m->usagefd = -1;
	/* Declare the mapping before anyone uses it; waits while the daemon
	 * recovers the partition.  Taken again by a thread that loses the race
	 * below, it is the same lock (one per open file): only the entry in
	 * the table releases it. */
	if (bus->usagefd >= 0 && (rc = usage_hold(bus->usagefd, t->id, partition)) < 0) {
		part_unmap(&m->part);
		free(m);
		return rc;
	}
	urcu_ref_set(&m->ref, 2); /* the table's and the caller's */
	*ret = m;
	return 0;
}

int cache_get(shmbus *bus, const struct bus_topic *t, uint32_t partition, struct pmap **ret)
{
	struct key k = { .topic_id = t->id, .partition = partition };
	unsigned long hash = hash_of(t->id, partition);

	if (dir_generation(&bus->dir) != load_acquire(&bus->swept_gen))
		cache_sweep(bus);
	for (;;) {
		struct cds_lfht_node *added;
		struct pmap *m = lookup(bus, &k, hash), *other;
		int rc;

		if (m) {
			*ret = m;
			return 0;
		}
		rc = map_partition(bus, t, partition, &m);
		if (rc)
			return rc;
		rcu_read_lock();
		added = cds_lfht_add_unique(bus->maps, hash, match, &k, &m->node);
		if (added == &m->node) {
			rcu_read_unlock();
			m->usagefd = bus->usagefd;
			*ret = m;
			return 0;
		}
		/* Another thread mapped it first: use theirs. */
		other = caa_container_of(added, struct pmap, node);
		if (!urcu_ref_get_unless_zero(&other->ref))
			other = NULL;
		rcu_read_unlock();
		part_unmap(&m->part);
		free(m);
		if (other) {
			*ret = other;
			return 0;
		}
		/* theirs was being released: try again */
	}
}

static bool topic_alive(const struct bus_topic *topics, int n, uint64_t id)
{
	for (int i = 0; i < n; i++)
		if (topics[i].id == id)
			return true;
	return false;
}

void cache_sweep(shmbus *bus)
{
	struct bus_topic *topics;
	struct cds_lfht_iter iter;
	struct pmap *m;
	uint64_t gen;
	int n;

	pthread_mutex_lock(&bus->sweep_lock);
	gen = dir_generation(&bus->dir);
	if (gen == bus->swept_gen) {
		pthread_mutex_unlock(&bus->sweep_lock);
		return;
	}
	topics = malloc(sizeof *topics * BUS_MAX_TOPICS);
	if (!topics) {
		pthread_mutex_unlock(&bus->sweep_lock);
		return;
	}
	n = dir_list(&bus->dir, topics, BUS_MAX_TOPICS);
	rcu_read_lock();
	cds_lfht_for_each_entry(bus->maps, &iter, m, node) {
		/* call_rcu may be called inside a read-side section, and the
		 * iteration stays valid: freeing waits for our unlock */
		if (!topic_alive(topics, n, m->topic_id) && cds_lfht_del(bus->maps, &m->node) == 0)
			cache_put(m);
	}
	rcu_read_unlock();
	free(topics);
	store_release(&bus->swept_gen, gen);
	pthread_mutex_unlock(&bus->sweep_lock);
}

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void register_atfork(void)
{
	/* call_rcu's worker thread does not survive fork(): let liburcu
	 * rebuild its state in the child. */
	pthread_atfork(call_rcu_before_fork, call_rcu_after_fork_parent,
		       call_rcu_after_fork_child);
}

int cache_init(shmbus *bus)
{
	pthread_once(&atfork_once, register_atfork);
	/* No auto-resize: it would start a worker thread in every process
	 * that links us; a split-ordered list degrades gracefully. */
	bus->maps = cds_lfht_new(1024, 1024, 1024, 0, NULL);
	if (!bus->maps)
		return lib_err(-ENOMEM, "out of memory");
	bus->swept_gen = dir_generation(&bus->dir);
	return 0;
}

void cache_destroy(shmbus *bus)
{
	struct cds_lfht_iter iter;
	struct pmap *m;

	if (!bus->maps)
		return;
	rcu_read_lock();
	cds_lfht_for_each_entry(bus->maps, &iter, m, node)
		if (cds_lfht_del(bus->maps, &m->node) == 0)
			cache_put(m);
	rcu_read_unlock();
	/* Wait for the call_rcu callbacks that unmap. */
	rcu_barrier();
	cds_lfht_destroy(bus->maps, NULL);
	bus->maps = NULL;
}
