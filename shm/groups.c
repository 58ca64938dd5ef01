/*
 * groups.c - the committed-offsets table of a consumer group.
 *
 * Entries are claimed with a CAS on their key and never freed: topic ids
 * are never reused, so an entry of a deleted topic is only dead weight.
 * Lookups probe linearly from the key's hash and stop at a free entry.
 * An entry's {offset, owner epoch} pair changes only by a 16-byte CAS:
 * members move the offset under their own epoch, the coordinator moves
 * the epoch (format.md §10), so neither can undo the other.
 */
#include "groups.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../util/clock.h"
#include "../util/error.h"
#include "../util/futex.h"
#include "../util/shareddir.h"
#include "slothash.h"

static uint64_t file_size(void)
{
	return GROUP_HEADER_SIZE + (uint64_t)GROUP_SLOTS * sizeof(struct group_slot);
}

static uint64_t key_of(uint64_t topic_id, uint32_t partition)
{
	return topic_id << GROUP_PARTITION_BITS | partition;
}

static const struct shm_format group_format = {
	.magic = GROUP_MAGIC, .version = GROUP_VERSION, .header_size = GROUP_HEADER_SIZE,
};

static int init_group(int fd, const char *name)
{
	struct group_header *h;

	if (ftruncate(fd, (off_t)file_size()) < 0 ||
	    (fallocate(fd, 0, 0, (off_t)file_size()) < 0 && errno != EOPNOTSUPP))
		return shm_err(-errno, "cannot allocate group file %s (%llu bytes): %s; free space "
			       "on the bus root's filesystem", name, (unsigned long long)file_size(),
			       strerror(errno));
	h = mmap(NULL, GROUP_HEADER_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (h == MAP_FAILED)
		return shm_err(-errno, "cannot map group file %s: %s", name, strerror(errno));
	h->nslots = GROUP_SLOTS;
	h->file_size = file_size();
	h->created_ns = real_ns();
	snprintf(h->name, sizeof h->name, "%s", name);
	shm_ident_write(h, &group_format); /* the magic last */
	munmap(h, GROUP_HEADER_SIZE);
	return 0;
}

/* Make the group file whole before it has a name, then link it into
 * place (a full filesystem never leaves a half-made group, and nothing
 * planted in groups/ is followed: shareddir.h). */
static int create_group(int dirfd, const char *name)
{
	struct sdir_file f;
	int rc;

	/* every member of the root's group commits, whatever our umask */
	rc = sdir_new(dirfd, 0660, &f);
	if (rc)
		return shm_err(rc, "cannot create group file %s: %s", name, strerror(-rc));
	rc = init_group(f.fd, name);
	if (rc == 0 && (rc = sdir_publish(dirfd, &f, name, false)) < 0 && rc != -EEXIST)
		rc = shm_err(rc, "cannot publish group file %s: %s", name, strerror(-rc));
	sdir_close(dirfd, &f);
	return rc == -EEXIST ? 0 : rc;
}

int group_open(int dirfd, const char *name, bool create, struct group_file *ret)
{
	struct group_header snap;
	struct stat st;
	void *base;
	int fd, rc = 0;

	fd = sdir_open(dirfd, name, O_RDWR);
	if (fd == -ENOENT && create) {
		rc = create_group(dirfd, name);
		if (rc)
			return rc;
		fd = sdir_open(dirfd, name, O_RDWR);
	}
	if (fd == -EACCES)
		fd = sdir_open(dirfd, name, O_RDONLY);
	if (fd < 0)
		return fd == -ENOENT ? shm_err(-ENOENT, "group \"%s\" has no committed offsets", name)
				     : shm_err(fd, "cannot open group file %s: %s", name, sdir_why(fd));
	if (fstat(fd, &st) < 0 || pread(fd, &snap, sizeof snap, 0) != (ssize_t)sizeof snap ||
	    shm_ident_check(&snap, &group_format) != SHM_IDENT_OK ||
	    snap.nslots != GROUP_SLOTS || snap.file_size != file_size() ||
	    (uint64_t)st.st_size < snap.file_size) {
		rc = shm_err(-EBADMSG, "group file %s is damaged or of another version; delete it "
			     "(the group's committed offsets are lost) or restore it", name);
		goto fail;
	}
	ret->readonly = false;
	base = mmap(NULL, snap.file_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
	if (base == MAP_FAILED) {
		ret->readonly = true;
		base = mmap(NULL, snap.file_size, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, 0);
	}
	if (base == MAP_FAILED) {
		rc = shm_err(-errno, "cannot map group file %s: %s", name, strerror(errno));
		goto fail;
	}
	close(fd);
	ret->hdr = base;
	ret->slots = (struct group_slot *)(void *)((uint8_t *)base + GROUP_HEADER_SIZE);
	ret->nslots = GROUP_SLOTS;
	ret->map_len = snap.file_size;
	return 0;
fail:
	close(fd);
	return rc;
}

void group_close(struct group_file *g)
{
	if (g && g->hdr) {
		munmap(g->hdr, g->map_len);
		g->hdr = NULL;
	}
}

/* The entry for key, claiming a free one if `claim`; NULL if absent/full. */
static struct group_slot *find(const struct group_file *g, uint64_t key, bool claim)
{
	uint32_t i = slot_hash(key) & (g->nslots - 1);

	for (uint32_t n = 0; n < g->nslots; n++, i = (i + 1) & (g->nslots - 1)) {
		struct group_slot *s = &g->slots[i];
		uint64_t k = load_acquire(&s->key);

		if (k == key)
			return s;
		if (k == 0) {
			if (!claim)
				return NULL;
			if (cas(&s->key, &k, key) || k == key)
				return s;
		}
	}
	return NULL;
}

/* Swap the entry's {offset, owner} pair from what `ok` accepts to what
 * `next` makes of it; the CAS retries only while others change the pair.
 * 0 with the pair it swapped from in *seen, or -ESTALE when `ok` refuses
 * the pair seen (left in *seen). */
static int swap_pair(struct group_slot *s, bool (*ok)(pair128 cur, uint64_t arg),
		     pair128 (*next)(pair128 cur, uint64_t a, uint64_t b), uint64_t a, uint64_t b,
		     pair128 *seen)
{
	pair128 cur = { load_acquire(&s->fenced.lo), load_acquire(&s->fenced.hi) };

	/* bounded: each failed CAS means another writer's CAS landed */
	for (int tries = 0; tries < 1000000; tries++) {
		if (!ok(cur, b)) {
			*seen = cur;
			return -ESTALE;
		}
		if (cas128(&s->fenced, &cur, next(cur, a, b))) {
			*seen = cur;
			return 0;
		}
	}
	*seen = cur;
	return -EBUSY;
}

static bool owner_is(pair128 cur, uint64_t epoch)
{
	return cur.hi == epoch;
}

static bool above(pair128 cur, uint64_t end)
{
	return cur.lo > end;
}

static bool any(pair128 cur, uint64_t epoch)
{
	(void)cur;
	(void)epoch;
	return true;
}

static pair128 with_offset(pair128 cur, uint64_t offset, uint64_t epoch)
{
	(void)epoch;
	return (pair128){ .lo = offset, .hi = cur.hi };
}

static pair128 with_owner(pair128 cur, uint64_t epoch, uint64_t unused)
{
	(void)unused;
	return (pair128){ .lo = cur.lo, .hi = epoch };
}

static int full(const struct group_file *g)
{
	return shm_err(-ENOSPC, "group file %s is full (%u partitions); delete the group to "
		       "reset it", g->hdr->name, g->nslots);
}

int group_commit(struct group_file *g, uint64_t topic_id, uint32_t partition, uint64_t offset,
		 uint64_t epoch)
{
	uint64_t group_epoch = load_acquire(&g->hdr->epoch);
	struct group_slot *s;
	pair128 seen;
	int rc;

	if (epoch == 0 && group_epoch != 0)
		return shm_err(-ESTALE, "group \"%s\" is coordinated by shmbusd (epoch %llu): a "
			       "manual commit could overwrite a member's; join the group (`shmbus "
			       "consume -G`) or delete it first", g->hdr->name,
			       (unsigned long long)group_epoch);
	s = find(g, key_of(topic_id, partition), epoch == 0);
	if (!s)
		return epoch ? shm_err(-ESTALE, "partition %u of topic id %llu is not owned by this "
				       "member of group \"%s\" (epoch %llu)", partition,
				       (unsigned long long)topic_id, g->hdr->name,
				       (unsigned long long)epoch)
			     : full(g);
	rc = swap_pair(s, owner_is, with_offset, offset, epoch, &seen);
	if (rc == -ESTALE)
		return shm_err(rc, "partition %u of topic id %llu moved to another member of group "
			       "\"%s\" (owner epoch %llu; this member's is %llu): the commit was "
			       "fenced", partition, (unsigned long long)topic_id, g->hdr->name,
			       (unsigned long long)seen.hi, (unsigned long long)epoch);
	if (rc)
		return shm_err(rc, "group \"%s\": the commit raced without end", g->hdr->name);
	/* pairs with load_acquire of commit_ns in group_fetch(): a reader that
	 * sees the commit time sees its offset */
	store_release(&s->commit_ns, real_ns());
	return 0;
}

int group_fence(struct group_file *g, uint64_t topic_id, uint32_t partition, uint64_t epoch)
{
	struct group_slot *s = find(g, key_of(topic_id, partition), true);
	pair128 seen;

	if (!s)
		return full(g);
	return swap_pair(s, any, with_owner, epoch, 0, &seen);
}

int group_reset(struct group_file *g, uint64_t topic_id, uint32_t partition, uint64_t offset)
{
	struct group_slot *s = find(g, key_of(topic_id, partition), true);
	pair128 seen;
	int rc;

	if (!s)
		return full(g);
	rc = swap_pair(s, any, with_offset, offset, 0, &seen);
	if (rc == 0)
		store_release(&s->commit_ns, real_ns()); /* pairs as in group_commit() */
	return rc;
}

int group_cut_back(struct group_file *g, uint64_t topic_id, uint32_t partition, uint64_t end,
		   uint64_t *ret_old)
{
	struct group_slot *s = find(g, key_of(topic_id, partition), false);
	pair128 seen;
	int rc;

	/* pairs with the store_release of commit_ns in group_commit() */
	if (!s || load_acquire(&s->commit_ns) == 0)
		return 0;
	/* only down: a commit landing past end after this is a member's own
	 * (format.md §14 says when that can be) */
	rc = swap_pair(s, above, with_offset, end, end, &seen);
	if (rc == -ESTALE)
		return 0;
	if (rc)
		return shm_err(rc, "group \"%s\": moving the committed offset of partition %u of "
			       "topic id %llu back to %llu raced without end", g->hdr->name,
			       partition, (unsigned long long)topic_id, (unsigned long long)end);
	*ret_old = seen.lo;
	return 1;
}

void group_publish(struct group_file *g, uint64_t epoch, uint32_t members)
{
	store_relaxed(&g->hdr->members, members);
	/* pairs with load_acquire of epoch in group_commit() and group_epoch() */
	store_release(&g->hdr->epoch, epoch);
	/* the full barrier futex_word_wake() needs since the change; pairs
	 * with the member's futex_word_prepare() then group_epoch() check */
	fence_seq_cst();
	futex_word_wake(&g->hdr->wake);
}

uint64_t group_owner(const struct group_file *g, uint64_t topic_id, uint32_t partition)
{
	struct group_slot *s = find(g, key_of(topic_id, partition), false);

	return s ? load_acquire(&s->fenced.hi) : 0;
}

uint32_t *group_wake_word(struct group_file *g)
{
	return &g->hdr->wake;
}

uint64_t group_epoch(const struct group_file *g)
{
	return load_acquire(&g->hdr->epoch);
}

uint64_t group_max_epoch(const struct group_file *g)
{
	uint64_t max = load_acquire(&g->hdr->epoch);

	for (uint32_t i = 0; i < g->nslots; i++) {
		uint64_t e = load_acquire(&g->slots[i].fenced.hi);

		if (e > max)
			max = e;
	}
	return max;
}

int group_fetch(const struct group_file *g, uint64_t topic_id, uint32_t partition,
		uint64_t *ret_offset, int64_t *ret_commit_ns)
{
	struct group_slot *s = find(g, key_of(topic_id, partition), false);

	uint64_t off;
	int64_t ns;

	if (!s)
		return -ENOENT;
	ns = load_acquire(&s->commit_ns);
	off = load_acquire(&s->fenced.lo);
	if (ns == 0)
		return -ENOENT; /* claimed, not yet committed */
	*ret_offset = off;
	if (ret_commit_ns)
		*ret_commit_ns = ns;
	return 0;
}

int group_foreach(const struct group_file *g,
		  int (*fn)(void *ctx, uint64_t topic_id, uint32_t partition, uint64_t offset,
			    int64_t commit_ns),
		  void *ctx)
{
	for (uint32_t i = 0; i < g->nslots; i++) {
		const struct group_slot *s = &g->slots[i];
		uint64_t k = load_acquire(&s->key);
		int64_t ns = load_acquire(&s->commit_ns);
		int rc;

		if (k == 0 || ns == 0)
			continue;
		rc = fn(ctx, k >> GROUP_PARTITION_BITS, (uint32_t)(k & ((1u << GROUP_PARTITION_BITS) - 1)),
			load_acquire(&s->fenced.lo), ns);
		if (rc)
			return rc;
	}
	return 0;
}
