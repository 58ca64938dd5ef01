/*
 * counters.c - the counters file (format.md §12): creation, validation,
 * and the seqlocked daemon block and partition entries.
 *
 * The writer is single (the daemon holding the root), so entries are
 * claimed without a CAS.  Probing is linear from the key's hash and stops
 * at a FREE entry.  An entry whose partition is no longer supervised turns
 * DEAD (probes pass over it; an insert may reuse it) and becomes FREE
 * again once the entry after it is FREE, since then no probe sequence runs
 * through it; so the table does not fill up with the dead over a long
 * life of topic creations and deletions.
 */
#include "counters.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../util/clock.h"
#include "../util/error.h"
#include "../util/shareddir.h"
#include "slothash.h"

/* A reader waits this long for an update in progress before it takes the
 * words as they are (the writer died inside the update).  An update takes
 * well under a microsecond; a writer preempted inside one is let run
 * (sched_yield) and has a whole scheduling period many times over. */
#define READ_PATIENCE_NS 200000000LL

static uint64_t file_size(void)
{
	return CTR_HEADER_SIZE + (uint64_t)CTR_SLOTS * sizeof(struct ctr_part);
}

static uint64_t key_of(uint64_t topic_id, uint32_t partition)
{
	return topic_id << CTR_PARTITION_BITS | partition;
}

/* ------------------------------------------------------------------ */
/* The seqlock                                                         */

/* Begin an update: seq odd, and no store below moves above it
 * (pairs with the fence_acquire in read_end()). */
static void write_begin(uint64_t *seq)
{
	store_relaxed(seq, load_relaxed(seq) + 1);
	__atomic_thread_fence(__ATOMIC_RELEASE);
}

/* End an update: seq even, after every store of the update
 * (pairs with the load_acquire of seq in read_begin()). */
static void write_end(uint64_t *seq)
{
	store_release(seq, load_relaxed(seq) + 1);
}

/* Wait for an even seq; returns it.  *patient turns false once the wait
 * passed READ_PATIENCE_NS: the writer is gone, take the odd value. */
static uint64_t read_begin(const uint64_t *seq, bool *patient)
{
	int64_t deadline = 0;

	for (unsigned spins = 0;; spins++) {
		uint64_t s = load_acquire(seq);

		if (!(s & 1) || !*patient)
			return s;
		if ((spins & 255) == 255) {
			int64_t now = mono_ns();

			if (!deadline)
				deadline = now + READ_PATIENCE_NS;
			else if (now > deadline)
				*patient = false;
			sched_yield();
		}
		cpu_relax();
	}
}

/* Did the words read since read_begin() returned s form one update?
 * (The fence orders those loads before the second load of seq.) */
static bool read_end(const uint64_t *seq, uint64_t s, bool patient)
{
	fence_acquire();
	return load_relaxed(seq) == s || !patient;
}

/* ------------------------------------------------------------------ */
/* Creation and validation                                             */

static const struct shm_format ctr_format = {
	.magic = CTR_MAGIC, .version = CTR_VERSION, .header_size = CTR_HEADER_SIZE,
};

static int init_file(int fd, const char *endpoint)
{
	struct ctr_header *h;

	if (ftruncate(fd, (off_t)file_size()) < 0 ||
	    (fallocate(fd, 0, 0, (off_t)file_size()) < 0 && errno != EOPNOTSUPP))
		return shm_err(-errno, "cannot allocate the counters file (%llu bytes): %s; free "
			       "space on the bus root's filesystem", (unsigned long long)file_size(),
			       strerror(errno));
	h = mmap(NULL, CTR_HEADER_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (h == MAP_FAILED)
		return shm_err(-errno, "cannot map the counters file: %s", strerror(errno));
	h->nslots = CTR_SLOTS;
	h->file_size = file_size();
	h->slot_size = sizeof(struct ctr_part);
	h->created_ns = real_ns();
	snprintf(h->endpoint, sizeof h->endpoint, "%s", endpoint ? endpoint : "");
	shm_ident_write(h, &ctr_format); /* last: a file with its magic is whole */
	munmap(h, CTR_HEADER_SIZE);
	return 0;
}

static bool header_valid(const struct ctr_header *h, const struct stat *st)
{
	return shm_ident_check(h, &ctr_format) == SHM_IDENT_OK &&
	       h->nslots == CTR_SLOTS && h->slot_size == sizeof(struct ctr_part) &&
	       h->file_size == file_size() && (uint64_t)st->st_size >= h->file_size;
}

/* Check what the file's first page says before mapping it. */
static int check(int fd)
{
	struct ctr_header snap;
	struct stat st;

	if (fstat(fd, &st) < 0)
		return shm_err(-errno, "cannot stat the counters file: %s", strerror(errno));
	if (pread(fd, &snap, sizeof snap, 0) != (ssize_t)sizeof snap)
		return shm_err(-EBADMSG, "the counters file is shorter than its header (%lld "
			       "bytes); restart shmbusd to make it again, or delete it",
			       (long long)st.st_size);
	if (shm_ident_check(&snap, &ctr_format) == SHM_IDENT_VERSION)
		return shm_err(-EPROTO, "the counters file is of format version %u, this build reads "
			       "version %u; restart shmbusd of this version to make it again",
			       snap.version, CTR_VERSION);
	if (!header_valid(&snap, &st))
		return shm_err(-EBADMSG, "the counters file is damaged or of another machine "
			       "(magic, endianness, word size or geometry do not match); restart "
			       "shmbusd to make it again, or delete it");
	return 0;
}

/* Validate and map the counters file open at fd (which stays open). */
static int map_fd(int fd, bool writable, struct ctr_file *ret)
{
	int prot = PROT_READ | (writable ? PROT_WRITE : 0);
	void *base;
	int rc = check(fd);

	if (rc)
		return rc;
	base = mmap(NULL, file_size(), prot, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED)
		return shm_err(-errno, "cannot map the counters file: %s", strerror(errno));
	ret->hdr = base;
	ret->slots = (struct ctr_part *)(void *)((uint8_t *)base + CTR_HEADER_SIZE);
	ret->nslots = CTR_SLOTS;
	ret->map_len = file_size();
	ret->writable = writable;
	return 0;
}

int ctr_open(int dirfd, bool writable, struct ctr_file *ret)
{
	int fd = sdir_open(dirfd, CTR_FILE, writable ? O_RDWR : O_RDONLY);
	int rc;

	if (fd < 0)
		return fd == -ENOENT ? -ENOENT
				     : shm_err(fd, "cannot open the counters file: %s", sdir_why(fd));
	rc = map_fd(fd, writable, ret);
	close(fd);
	return rc;
}

int ctr_create(int dirfd, const char *endpoint, struct ctr_file *ret)
{
	struct sdir_file f;
	int rc;

	/* readable by the root's users whatever our umask: it holds no secret;
	 * made unnamed, so nothing planted in the root is followed (shareddir.h) */
	rc = sdir_new(dirfd, 0644, &f);
	if (rc)
		return shm_err(rc, "cannot create the counters file in the bus root: %s",
			       strerror(-rc));
	rc = init_file(f.fd, endpoint);
	/* over an older daemon's file: its values were of that daemon */
	if (rc == 0 && (rc = sdir_publish(dirfd, &f, CTR_FILE, true)) < 0)
		rc = shm_err(rc, "cannot publish the counters file: %s", strerror(-rc));
	if (rc == 0)
		rc = map_fd(f.fd, true, ret);
	sdir_close(dirfd, &f);
	return rc;
}

void ctr_close(struct ctr_file *c)
{
	if (c && c->hdr) {
		munmap(c->hdr, c->map_len);
		c->hdr = NULL;
	}
}

/* ------------------------------------------------------------------ */
/* The daemon's block                                                  */

void ctr_daemon_write(struct ctr_file *c, const struct ctr_daemon *v)
{
	struct ctr_daemon *d = &c->hdr->daemon;

	write_begin(&d->seq);
#define WRITE_FIELD(f) store_relaxed(&d->f, v->f);
	CTR_DAEMON_FIELDS(WRITE_FIELD)
#undef WRITE_FIELD
	write_end(&d->seq);
}

int ctr_daemon_read(const struct ctr_file *c, struct ctr_daemon *ret)
{
	const struct ctr_daemon *d = &c->hdr->daemon;
	bool patient = true;
	uint64_t s;

	memset(ret, 0, sizeof *ret);
	do {
		s = read_begin(&d->seq, &patient);
#define READ_FIELD(f) ret->f = load_relaxed(&d->f);
		CTR_DAEMON_FIELDS(READ_FIELD)
#undef READ_FIELD
	} while (!read_end(&d->seq, s, patient));
	ret->seq = s;
	return patient ? 0 : 1;
}

bool ctr_heartbeat_fresh(int64_t heartbeat_ns, int64_t tick_ns, int64_t now_ns)
{
	int64_t tick = tick_ns > 0 ? tick_ns : 0;

	return heartbeat_ns && now_ns - heartbeat_ns <= CTR_STALE_TICKS * tick + CTR_STALE_SLACK_NS;
}

/* ------------------------------------------------------------------ */
/* Partition entries                                                   */

static uint64_t bits_of(double v)
{
	uint64_t b;

	memcpy(&b, &v, sizeof b);
	return b;
}

static double double_of(uint64_t b)
{
	double v;

	memcpy(&v, &b, sizeof v);
	return v;
}

/* The entry holding key, else the one an insert would take (the first
 * DEAD passed, else the FREE that ended the probe), else NULL. */
static struct ctr_part *probe(const struct ctr_file *c, uint64_t key, bool *found)
{
	uint32_t mask = c->nslots - 1, i = slot_hash(key) & mask;
	struct ctr_part *dead = NULL;

	*found = false;
	for (uint32_t n = 0; n < c->nslots; n++, i = (i + 1) & mask) {
		struct ctr_part *e = &c->slots[i];
		uint64_t k = load_acquire(&e->key);

		if (k == key) {
			*found = true;
			return e;
		}
		if (k == CTR_KEY_DEAD && !dead)
			dead = e;
		if (k == CTR_KEY_FREE)
			return dead ? dead : e;
	}
	return dead;
}

int ctr_part_write(struct ctr_file *c, uint64_t topic_id, uint32_t partition,
		   const struct ctr_rate *v)
{
	uint64_t key = key_of(topic_id, partition);
	bool found;
	struct ctr_part *e = probe(c, key, &found);

	if (!e)
		return shm_err(-ENOSPC, "the counters file's partition table is full (%u entries)",
			       c->nslots);
	write_begin(&e->seq);
	store_relaxed(&e->tick, v->tick);
	store_relaxed(&e->sampled_ns, v->sampled_ns);
	store_relaxed(&e->end_offset, v->end_offset);
	store_relaxed(&e->tail, v->tail);
	store_relaxed(&e->records_rate, bits_of(v->records_per_s));
	store_relaxed(&e->bytes_rate, bits_of(v->bytes_per_s));
	if (!found)
		store_release(&e->key, key);
	write_end(&e->seq);
	return 0;
}

int ctr_part_read(const struct ctr_file *c, uint64_t topic_id, uint32_t partition,
		  struct ctr_rate *ret)
{
	uint64_t key = key_of(topic_id, partition), s, k;
	bool found, patient = true;
	struct ctr_part *e = probe(c, key, &found);
	struct ctr_rate v;

	if (!found)
		return -ENOENT;
	do {
		s = read_begin(&e->seq, &patient);
		k = load_relaxed(&e->key);
		v.tick = load_relaxed(&e->tick);
		v.sampled_ns = load_relaxed(&e->sampled_ns);
		v.end_offset = load_relaxed(&e->end_offset);
		v.tail = load_relaxed(&e->tail);
		v.records_per_s = double_of(load_relaxed(&e->records_rate));
		v.bytes_per_s = double_of(load_relaxed(&e->bytes_rate));
	} while (!read_end(&e->seq, s, patient));
	if (k != key) /* reused for another partition meanwhile */
		return -ENOENT;
	*ret = v;
	return 0;
}

/* Free the DEAD entries that end a probe sequence; returns how many. */
static uint32_t free_dead(struct ctr_file *c)
{
	uint32_t mask = c->nslots - 1, freed = 0, pass;

	do {
		pass = 0;
		for (uint32_t i = c->nslots; i-- > 0;) {
			struct ctr_part *e = &c->slots[i];

			if (load_relaxed(&e->key) == CTR_KEY_DEAD &&
			    load_relaxed(&c->slots[(i + 1) & mask].key) == CTR_KEY_FREE) {
				store_release(&e->key, CTR_KEY_FREE);
				pass++;
			}
		}
		freed += pass;
	} while (pass);
	return freed;
}

uint32_t ctr_part_sweep(struct ctr_file *c, uint64_t tick)
{
	uint32_t live = 0;

	for (uint32_t i = 0; i < c->nslots; i++) {
		struct ctr_part *e = &c->slots[i];
		uint64_t k = load_relaxed(&e->key);

		if (k == CTR_KEY_FREE || k == CTR_KEY_DEAD)
			continue;
		if (load_relaxed(&e->tick) == tick) {
			live++;
			continue;
		}
		write_begin(&e->seq);
		store_release(&e->key, CTR_KEY_DEAD);
		write_end(&e->seq);
	}
	free_dead(c);
	return live;
}

void ctr_endpoint(const struct ctr_file *c, char *buf, size_t len)
{
	size_t n = sizeof c->hdr->endpoint < len ? sizeof c->hdr->endpoint : len;

	if (!len)
		return;
	memcpy(buf, c->hdr->endpoint, n);
	buf[n - 1] = '\0';
}
