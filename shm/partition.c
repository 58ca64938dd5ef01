/*
 * partition.c - creating, mapping and validating partition files.
 *
 * Creation makes the file without a name (shareddir.h), allocates every
 * byte (fallocate: a full filesystem fails here with -ENOSPC, never later
 * with SIGBUS), binds it to a NUMA node if asked, initialises the header
 * and links it into place, so no process ever maps a half-made partition.
 *
 * Every mapping is pre-faulted: on these machines a page fault costs
 * 10-14 us and would otherwise be the whole tail latency of an append.
 */
#include "partition.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <numa.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "../util/clock.h"
#include "../util/error.h"
#include "../util/shareddir.h"
#include "../util/futex.h"
#include "epochs.h"
#include "horizon.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

static bool is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

static uint64_t page_up(uint64_t v)
{
	return (v + PART_PAGE - 1) & ~(uint64_t)(PART_PAGE - 1);
}

uint64_t part_default_icap(uint64_t capacity)
{
	uint64_t icap = capacity / 64;

	if (icap < PART_ICAP_MIN)
		icap = PART_ICAP_MIN;
	if (icap > PART_ICAP_MAX)
		icap = PART_ICAP_MAX;
	return icap;
}

static uint64_t index_offset(void)
{
	return PART_HEADER_SIZE;
}

static uint64_t data_offset(uint64_t icap)
{
	return page_up(index_offset() + icap * sizeof(uint64_t));
}

uint64_t part_file_size(uint64_t capacity, uint64_t icap)
{
	return data_offset(icap) + capacity;
}

int part_params_check(const struct part_params *prm)
{
	uint64_t icap = prm->index_capacity ? prm->index_capacity : part_default_icap(prm->capacity);

	if (!is_pow2(prm->capacity) || prm->capacity < PART_CAP_MIN || prm->capacity > PART_CAP_MAX)
		return shm_err(-EINVAL, "capacity %llu is not a power of two between %llu and %llu bytes; "
			       "pick e.g. 16M or 64M",
			       (unsigned long long)prm->capacity, PART_CAP_MIN, PART_CAP_MAX);
	if (!is_pow2(icap) || icap < PART_ICAP_MIN || icap > PART_ICAP_MAX)
		return shm_err(-EINVAL, "index capacity %llu is not a power of two between %llu and %llu",
			       (unsigned long long)icap, PART_ICAP_MIN, PART_ICAP_MAX);
	if (prm->policy != PART_POLICY_OVERWRITE && prm->policy != PART_POLICY_BACKPRESSURE)
		return shm_err(-EINVAL, "retention policy %u is unknown; use overwrite or backpressure",
			       prm->policy);
	if (!prm->topic || strlen(prm->topic) > PART_NAME_MAX)
		return shm_err(-EINVAL, "topic name missing or longer than %d bytes", PART_NAME_MAX);
	return 0;
}

static int bind_numa(void *addr, size_t len, int node)
{
	if (node < 0)
		return 0;
	if (numa_available() < 0)
		return shm_err(-EOPNOTSUPP, "NUMA node %d requested but this kernel has no NUMA support; "
			       "create the topic without --numa", node);
	if (node > numa_max_node())
		return shm_err(-EINVAL, "NUMA node %d does not exist (this machine has nodes 0..%d)",
			       node, numa_max_node());
	/* The shared policy set here is what tmpfs uses when fallocate
	 * allocates the pages below. */
	numa_tonode_memory(addr, len, node);
	return 0;
}

static void prefault(void *addr, size_t len, bool readonly, bool on_tmpfs)
{
	/* MAP_POPULATE mapped every page readable.  On tmpfs also make the
	 * page tables writable now; on a disk filesystem that would dirty
	 * every page of the ring at each open, so writers take the first
	 * write fault there instead (see docs/design-notes.md). */
	if (!readonly && on_tmpfs)
		(void)madvise(addr, len, MADV_POPULATE_WRITE);
}

static bool fd_on_tmpfs(int fd)
{
	struct statfs sf;

	return fstatfs(fd, &sf) == 0 && (sf.f_type == TMPFS_MAGIC || sf.f_type == RAMFS_MAGIC);
}

static const struct shm_format part_format = {
	.magic = PART_MAGIC, .version = PART_VERSION, .header_size = PART_HEADER_SIZE,
};

static void init_header(struct part_header *h, const struct part_params *prm, uint64_t icap,
			uint64_t size)
{
	uint64_t epoch = 0;

	while (getrandom(&epoch, sizeof epoch, 0) != sizeof epoch || epoch == 0)
		;
	h->frame_align = FRAME_ALIGN;
	h->file_size = size;
	h->index_offset = index_offset();
	h->index_capacity = icap;
	h->data_offset = data_offset(icap);
	h->data_capacity = prm->capacity;
	h->topic_id = prm->topic_id;
	h->epoch = epoch;
	h->created_ns = real_ns();
	h->partition = prm->partition;
	h->policy = prm->policy;
	h->numa_node = prm->numa_node;
	h->status = prm->status & PART_STATUS_REPLICA;
	/* the tail is 0: the word past it lies below the horizon (§4) */
	h->horizon = FRAME_ALIGN;
	part_epochs_init(h, epoch, prm->status & PART_STATUS_REPLICA);
	h->max_frame = (uint32_t)(prm->capacity / 2 > UINT32_MAX ? UINT32_MAX : prm->capacity / 2);
	snprintf(h->topic, sizeof h->topic, "%s", prm->topic);
	shm_ident_write(h, &part_format); /* the magic last */
}

int part_create(int dirfd, const char *name, const struct part_params *prm, struct part *ret)
{
	uint64_t icap = prm->index_capacity ? prm->index_capacity : part_default_icap(prm->capacity);
	uint64_t size = part_file_size(prm->capacity, icap);
	struct sdir_file f;
	struct part p;
	void *base;
	int fd, rc;

	rc = part_params_check(prm);
	if (rc)
		return rc;
	/* unnamed until whole: nothing planted in the directory is followed */
	rc = sdir_new(dirfd, prm->mode ? prm->mode : 0660, &f);
	if (rc)
		return shm_err(rc, "cannot create partition file %s: %s", name, strerror(-rc));
	fd = f.fd;
	if (ftruncate(fd, (off_t)size) < 0) {
		rc = shm_err(-errno, "cannot size partition file %s to %llu bytes: %s", name,
			     (unsigned long long)size, strerror(errno));
		goto fail_unlink;
	}
	base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED) {
		rc = shm_err(-errno, "cannot map partition file %s: %s", name, strerror(errno));
		goto fail_unlink;
	}
	rc = bind_numa(base, size, prm->numa_node);
	if (rc)
		goto fail_unmap;
	if (fallocate(fd, 0, 0, (off_t)size) < 0) {
		int e = errno;

		if (e == ENOSPC)
			rc = shm_err(-ENOSPC, "no space for partition file %s: it needs %llu bytes; "
				     "free space on the bus root's filesystem or create the topic "
				     "with a smaller --capacity", name, (unsigned long long)size);
		else
			rc = shm_err(-e, "cannot allocate partition file %s: %s", name, strerror(e));
		goto fail_unmap;
	}
	init_header(base, prm, icap, size);
	rc = part_map_fd(fd, false, name, &p);
	munmap(base, size);
	if (rc)
		goto fail_unlink;
	rc = sdir_publish(dirfd, &f, name, false);
	if (rc < 0) {
		rc = rc == -EEXIST ? shm_err(-EEXIST, "partition file %s already exists", name)
				   : shm_err(rc, "cannot publish partition file %s: %s", name,
					     strerror(-rc));
		part_unmap(&p);
		goto fail_unlink;
	}
	sdir_close(dirfd, &f);
	*ret = p;
	return 0;

fail_unmap:
	munmap(base, size);
fail_unlink:
	sdir_close(dirfd, &f);
	return rc;
}

int part_header_check(const struct part_header *h, uint64_t file_size, const char *label)
{
	const char *fix = "delete and recreate the topic, or restore the file";
	uint64_t cap = h->data_capacity, icap = h->index_capacity;

	if (file_size < PART_HEADER_SIZE)
		return shm_err(-EBADMSG, "partition file %s is %llu bytes, shorter than its header; %s",
			       label, (unsigned long long)file_size, fix);
	switch (shm_ident_check(h, &part_format)) {
	case SHM_IDENT_MAGIC:
		return shm_err(-EBADMSG, "partition file %s has a bad magic number "
			       "(not a shmbus partition, or damaged); %s", label, fix);
	case SHM_IDENT_MACHINE:
		return shm_err(-EPROTO, "partition file %s was written by a machine with another "
			       "byte order or word size; it cannot be shared with this one", label);
	case SHM_IDENT_VERSION:
		/* version 1 has no horizon: read with the tail (§2) */
		if (h->version == PART_VERSION_NO_HORIZON)
			break;
		return shm_err(-EPROTO, "partition file %s has format version %u, this library reads "
			       "version %u; use a matching shmbus or recreate the topic",
			       label, h->version, PART_VERSION);
	case SHM_IDENT_SIZE: /* with the geometry, below */
	case SHM_IDENT_OK:
		break;
	}
	if (h->header_size != PART_HEADER_SIZE || h->frame_align != FRAME_ALIGN ||
	    !is_pow2(cap) || cap < PART_CAP_MIN || cap > PART_CAP_MAX ||
	    !is_pow2(icap) || icap < PART_ICAP_MIN || icap > PART_ICAP_MAX ||
	    h->index_offset != index_offset() || h->data_offset != data_offset(icap) ||
	    h->file_size != part_file_size(cap, icap) || h->max_frame != (cap / 2 > UINT32_MAX ? UINT32_MAX : cap / 2))
		return shm_err(-EBADMSG, "partition file %s has an inconsistent geometry "
			       "(capacity %llu, index %llu); %s", label, (unsigned long long)cap,
			       (unsigned long long)icap, fix);
	if (h->file_size > file_size)
		return shm_err(-EBADMSG, "partition file %s is truncated: %llu bytes, needs %llu; %s",
			       label, (unsigned long long)file_size, (unsigned long long)h->file_size, fix);
	if (h->policy > PART_POLICY_BACKPRESSURE || memchr(h->topic, '\0', sizeof h->topic) == NULL)
		return shm_err(-EBADMSG, "partition file %s has a damaged header; %s", label, fix);
	return 0;
}

int part_map_fd(int fd, bool readonly, const char *label, struct part *ret)
{
	struct part_header snap;
	struct stat st;
	struct part p = { 0 };
	void *base;
	int rc;

	if (fstat(fd, &st) < 0)
		return shm_err(-errno, "cannot stat partition file %s: %s", label, strerror(errno));
	if ((uint64_t)st.st_size < PART_HEADER_SIZE)
		return part_header_check(&(struct part_header){ 0 }, (uint64_t)st.st_size, label);
	/* Read the identity into private memory first: its fields decide the
	 * mapping's size and must not change under us. */
	if (pread(fd, &snap, sizeof snap, 0) != (ssize_t)sizeof snap)
		return shm_err(-EIO, "cannot read the header of partition file %s", label);
	rc = part_header_check(&snap, (uint64_t)st.st_size, label);
	if (rc)
		return rc;
	base = mmap(NULL, snap.file_size, PROT_READ | (readonly ? 0 : PROT_WRITE),
		    MAP_SHARED | MAP_POPULATE, fd, 0);
	if (base == MAP_FAILED)
		return shm_err(-errno, "cannot map partition file %s: %s", label, strerror(errno));
	p.hdr = base;
	p.index = (uint64_t *)(void *)((uint8_t *)base + snap.index_offset);
	p.data = (uint8_t *)base + snap.data_offset;
	p.cap = snap.data_capacity;
	p.mask = p.cap - 1;
	p.icap = snap.index_capacity;
	p.imask = p.icap - 1;
	p.max_frame = snap.max_frame;
	p.policy = snap.policy;
	p.epoch = snap.epoch;
	p.topic_id = snap.topic_id;
	p.partition = snap.partition;
	p.map_len = snap.file_size;
	p.readonly = readonly;
	p.on_tmpfs = fd_on_tmpfs(fd);
	p.horizon = snap.version >= PART_VERSION;
	p.horizon_step = part_horizon_step(snap.data_capacity);
	/* The same file must still be what we validated. */
	if (p.hdr->epoch != snap.epoch || p.hdr->data_capacity != snap.data_capacity) {
		munmap(base, snap.file_size);
		return shm_err(-ESTALE, "partition file %s changed while it was opened; retry", label);
	}
	prefault(base, p.map_len, readonly, p.on_tmpfs);
	*ret = p;
	return 0;
}

int part_open(int dirfd, const char *name, bool readonly, const char *label, struct part *ret)
{
	int fd, rc;

	fd = sdir_open(dirfd, name, readonly ? O_RDONLY : O_RDWR);
	if (fd == -EACCES && !readonly) {
		readonly = true;
		fd = sdir_open(dirfd, name, O_RDONLY);
	}
	if (fd < 0)
		return shm_err(fd, "cannot open partition file %s: %s", label, sdir_why(fd));
	rc = part_map_fd(fd, readonly, label, ret);
	close(fd);
	return rc;
}

void part_unmap(struct part *p)
{
	if (p && p->hdr) {
		munmap(p->hdr, p->map_len);
		p->hdr = NULL;
	}
}

/* Bump a wake-up word whether or not anyone announced a wait, and wake. */
static void bump(uint32_t *word)
{
	uint32_t n = load_relaxed(word);

	while (!cas(word, &n, (n + 1) & ~NOTIFY_WAITERS))
		;
	futex_wake_shared(word);
}

void part_set_replica(struct part *p, bool on)
{
	if (on)
		__atomic_fetch_or(&p->hdr->status, PART_STATUS_REPLICA, __ATOMIC_SEQ_CST);
	else
		__atomic_fetch_and(&p->hdr->status, ~PART_STATUS_REPLICA, __ATOMIC_SEQ_CST);
	/* producers blocked for room see the change now */
	bump(&p->hdr->space);
}

void part_mark_deleted(struct part *p)
{
	__atomic_fetch_or(&p->hdr->status, PART_STATUS_DELETED, __ATOMIC_SEQ_CST);
	/* Wake every blocked consumer and producer so it sees the flag now. */
	bump(&p->hdr->notify);
	bump(&p->hdr->space);
}
