/*
 * directory.c - the bus file and its copy-on-write topic table.
 *
 * Two table slots.  A writer copies the published table into the other
 * slot, changes it there and publishes it with one release store of
 * {generation, slot}.  A reader loads the publication word, copies what
 * it needs, and loads the word again: unchanged means the copy is one
 * consistent table (a seqlock over a double buffer).  Readers bound every
 * count they take from the table, since the file may be damaged.
 */
#include "directory.h"

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
#include "../util/shareddir.h"

static uint64_t table_size(void)
{
	return (sizeof(struct bus_table) + PART_PAGE - 1) & ~(uint64_t)(PART_PAGE - 1);
}

static uint64_t bus_file_size(void)
{
	return BUS_HEADER_SIZE + 2 * table_size();
}

bool dir_name_valid(const char *name)
{
	size_t n = name ? strlen(name) : 0;

	if (n == 0 || n > 249 || !strcmp(name, ".") || !strcmp(name, ".."))
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = name[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-'))
			return false;
	}
	return true;
}

static const struct shm_format bus_format = {
	.magic = BUS_MAGIC, .version = BUS_VERSION, .header_size = BUS_HEADER_SIZE,
};

static int init_file(int fd)
{
	struct bus_header *h;
	uint64_t size = bus_file_size();

	if (ftruncate(fd, (off_t)size) < 0)
		return shm_err(-errno, "cannot size the bus file: %s", strerror(errno));
	if (fallocate(fd, 0, 0, (off_t)size) < 0 && errno != EOPNOTSUPP)
		return shm_err(-errno, "cannot allocate the bus file (%llu bytes): %s; free space on "
			       "the root's filesystem, or choose another root",
			       (unsigned long long)size, strerror(errno));
	h = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (h == MAP_FAILED)
		return shm_err(-errno, "cannot map the bus file: %s", strerror(errno));
	h->max_topics = BUS_MAX_TOPICS;
	h->file_size = size;
	h->table_offset[0] = BUS_HEADER_SIZE;
	h->table_offset[1] = BUS_HEADER_SIZE + table_size();
	h->table_size = table_size();
	h->created_ns = real_ns();
	h->next_topic_id = 1;
	h->published = 0;
	shm_ident_write(h, &bus_format); /* the magic last */
	munmap(h, size);
	return 0;
}

static int check_header(const struct bus_header *h, uint64_t file_size)
{
	const char *fix = "move the root aside and let shmbus create a new one";

	switch (shm_ident_check(h, &bus_format)) {
	case SHM_IDENT_MAGIC:
		return shm_err(-EBADMSG, "the bus file has a bad magic number (damaged, or not a "
			       "shmbus root); %s", fix);
	case SHM_IDENT_MACHINE:
		return shm_err(-EPROTO, "the bus file comes from a machine with another byte order or "
			       "word size");
	case SHM_IDENT_VERSION:
		return shm_err(-EPROTO, "the bus file has format version %u; this library reads %u; "
			       "use a matching shmbus", h->version, BUS_VERSION);
	case SHM_IDENT_SIZE: /* with the layout, below */
	case SHM_IDENT_OK:
		break;
	}
	if (h->header_size != BUS_HEADER_SIZE || h->max_topics != BUS_MAX_TOPICS ||
	    h->table_size != table_size() || h->table_offset[0] != BUS_HEADER_SIZE ||
	    h->table_offset[1] != BUS_HEADER_SIZE + table_size() ||
	    h->file_size != bus_file_size() || file_size < h->file_size)
		return shm_err(-EBADMSG, "the bus file has an inconsistent layout; %s", fix);
	return 0;
}

/* Make <rootfd>/bus whole before it has a name, then link it into place:
 * a crash or a full filesystem never leaves a half-made bus file, and
 * nothing planted in the root is followed (shareddir.h).  Losing the race
 * to another process is fine: theirs is used. */
static int create_file(int rootfd)
{
	struct sdir_file f;
	int rc;

	/* the root's group shares the bus, whatever the creator's umask */
	rc = sdir_new(rootfd, 0660, &f);
	if (rc)
		return shm_err(rc, "cannot create the bus file: %s", strerror(-rc));
	rc = init_file(f.fd);
	if (rc == 0 && (rc = sdir_publish(rootfd, &f, "bus", false)) < 0 && rc != -EEXIST)
		rc = shm_err(rc, "cannot publish the bus file: %s", strerror(-rc));
	sdir_close(rootfd, &f);
	return rc == -EEXIST ? 0 : rc;
}

int dir_open(int rootfd, bool create, struct bus_dir *ret)
{
	struct bus_header snap;
	struct stat st;
	void *base;
	int fd, rc = 0;

	fd = sdir_open(rootfd, "bus", O_RDWR);
	if (fd == -ENOENT && create) {
		rc = create_file(rootfd);
		if (rc)
			return rc;
		fd = sdir_open(rootfd, "bus", O_RDWR);
	}
	if (fd < 0)
		return shm_err(fd, "cannot open the bus file: %s", sdir_why(fd));
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size < BUS_HEADER_SIZE ||
	    pread(fd, &snap, sizeof snap, 0) != (ssize_t)sizeof snap) {
		rc = shm_err(-EBADMSG, "the bus file is truncated; move the root aside and let "
			     "shmbus create a new one");
		goto fail;
	}
	rc = check_header(&snap, (uint64_t)st.st_size);
	if (rc)
		goto fail;
	base = mmap(NULL, snap.file_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
	if (base == MAP_FAILED) {
		rc = shm_err(-errno, "cannot map the bus file: %s", strerror(errno));
		goto fail;
	}
	ret->hdr = base;
	ret->table[0] = (struct bus_table *)(void *)((uint8_t *)base + snap.table_offset[0]);
	ret->table[1] = (struct bus_table *)(void *)((uint8_t *)base + snap.table_offset[1]);
	ret->map_len = snap.file_size;
	ret->fd = fd;
	return 0;
fail:
	close(fd);
	return rc;
}

void dir_close(struct bus_dir *d)
{
	if (d && d->hdr) {
		munmap(d->hdr, d->map_len);
		close(d->fd);
		d->hdr = NULL;
	}
}

int dir_lock(struct bus_dir *d)
{
	while (flock(d->fd, LOCK_EX) < 0)
		if (errno != EINTR)
			return shm_err(-errno, "cannot take the bus admin lock: %s", strerror(errno));
	return 0;
}

int dir_trylock(struct bus_dir *d)
{
	while (flock(d->fd, LOCK_EX | LOCK_NB) < 0)
		if (errno != EINTR)
			return errno == EWOULDBLOCK ? -EWOULDBLOCK
						    : shm_err(-errno, "cannot take the bus admin "
							      "lock: %s", strerror(errno));
	return 0;
}

void dir_unlock(struct bus_dir *d)
{
	flock(d->fd, LOCK_UN);
}

uint64_t dir_generation(const struct bus_dir *d)
{
	return load_acquire(&d->hdr->published) >> 1;
}

static uint32_t bounded_count(const struct bus_table *t)
{
	uint32_t n = load_relaxed(&t->count);

	return n > BUS_MAX_TOPICS ? BUS_MAX_TOPICS : n;
}

/* Run `fn` over a consistent snapshot; it may be called again on a retry. */
#define DIR_READ(d, t, body)                                                    \
	for (;;) {                                                              \
		uint64_t pub_ = load_acquire(&(d)->hdr->published);             \
		const struct bus_table *t = (d)->table[pub_ & 1];               \
		body;                                                           \
		/* pairs with store_release of published in publish() */        \
		fence_acquire();                                                \
		if (load_relaxed(&(d)->hdr->published) == pub_)                 \
			break;                                                  \
	}

static bool name_eq(const char *entry, const char *name)
{
	return strncmp(entry, name, PART_NAME_MAX) == 0 && entry[strnlen(name, PART_NAME_MAX)] == '\0';
}

int dir_lookup(const struct bus_dir *d, const char *name, struct bus_topic *ret)
{
	int found;

	DIR_READ(d, t, {
		uint32_t n = bounded_count(t);

		found = 0;
		for (uint32_t i = 0; i < n; i++) {
			if (name_eq(t->topics[i].name, name)) {
				memcpy(ret, &t->topics[i], sizeof *ret);
				found = 1;
				break;
			}
		}
	});
	if (!found)
		return -ENOENT;
	ret->name[PART_NAME_MAX] = '\0';
	return 0;
}

int dir_list(const struct bus_dir *d, struct bus_topic *out, size_t max)
{
	uint32_t n;

	DIR_READ(d, t, {
		n = bounded_count(t);
		for (uint32_t i = 0; i < n && i < max; i++)
			memcpy(&out[i], &t->topics[i], sizeof out[i]);
	});
	for (uint32_t i = 0; i < n && i < max; i++)
		out[i].name[PART_NAME_MAX] = '\0';
	return (int)n;
}

/* Writer side: the slot not published, filled with a copy of the table. */
static struct bus_table *begin(struct bus_dir *d, uint64_t *pub)
{
	const struct bus_table *cur;
	struct bus_table *next;

	*pub = load_acquire(&d->hdr->published);
	cur = d->table[*pub & 1];
	next = d->table[(*pub & 1) ^ 1];
	next->count = bounded_count(cur);
	memcpy(next->topics, cur->topics, next->count * sizeof cur->topics[0]);
	return next;
}

static void publish(struct bus_dir *d, struct bus_table *next, uint64_t pub)
{
	uint64_t gen = (pub >> 1) + 1;

	next->generation = gen;
	/* pairs with load_acquire of published in DIR_READ */
	store_release(&d->hdr->published, gen << 1 | (uint64_t)(next == d->table[1]));
}

int dir_add(struct bus_dir *d, struct bus_topic *t)
{
	uint64_t pub;
	struct bus_table *next = begin(d, &pub);

	for (uint32_t i = 0; i < next->count; i++)
		if (name_eq(next->topics[i].name, t->name))
			return shm_err(-EEXIST, "topic \"%s\" already exists", t->name);
	if (next->count >= BUS_MAX_TOPICS)
		return shm_err(-ENOSPC, "the bus holds %u topics, its maximum; delete one first",
			       BUS_MAX_TOPICS);
	if (t->id == 0)
		return shm_err(-EINVAL, "topic \"%s\" has no id; reserve one first", t->name);
	next->topics[next->count++] = *t;
	publish(d, next, pub);
	return 0;
}

int dir_set_replica(struct bus_dir *d, const char *name, const char *source)
{
	uint64_t pub;
	struct bus_table *next = begin(d, &pub);

	for (uint32_t i = 0; i < next->count; i++) {
		struct bus_topic *t = &next->topics[i];

		if (!name_eq(t->name, name))
			continue;
		if (source) {
			t->flags |= BUS_TOPIC_REPLICA;
			snprintf(t->mirror_source, sizeof t->mirror_source, "%s", source);
		} else {
			t->flags &= ~BUS_TOPIC_REPLICA;
			memset(t->mirror_source, 0, sizeof t->mirror_source);
		}
		publish(d, next, pub);
		return 0;
	}
	return shm_err(-ENOENT, "topic \"%s\" does not exist", name);
}

int dir_set_partitions(struct bus_dir *d, const char *name, uint64_t id, uint32_t partitions)
{
	uint64_t pub;
	struct bus_table *next = begin(d, &pub);

	for (uint32_t i = 0; i < next->count; i++) {
		struct bus_topic *t = &next->topics[i];

		if (!name_eq(t->name, name))
			continue;
		if (t->id != id)
			return shm_err(-EIDRM, "topic \"%s\" was deleted and recreated meanwhile",
				       name);
		if (partitions <= t->partitions || partitions > BUS_MAX_PARTITIONS)
			return shm_err(-EINVAL, "topic \"%s\" has %u partitions: cannot set %u "
				       "(only more, up to %u)", name, t->partitions, partitions,
				       BUS_MAX_PARTITIONS);
		t->partitions = partitions;
		publish(d, next, pub);
		return 0;
	}
	return shm_err(-ENOENT, "topic \"%s\" does not exist", name);
}

/* The grow record is written and read only under the admin lock (flock
 * orders it between processes); release/acquire all the same, so a
 * reader outside the lock (a diagnostic) never sees `to` older than the
 * id. */
void dir_grow_begin(struct bus_dir *d, uint64_t id, uint32_t to)
{
	store_relaxed(&d->hdr->grow_to, to);
	/* pairs with the load_acquire in dir_grow_pending() */
	store_release(&d->hdr->grow_topic_id, id);
}

void dir_grow_end(struct bus_dir *d)
{
	store_release(&d->hdr->grow_topic_id, (uint64_t)0);
}

uint64_t dir_grow_pending(const struct bus_dir *d, uint32_t *ret_to)
{
	uint64_t id = load_acquire(&d->hdr->grow_topic_id);

	if (ret_to) /* bounded by the caller: the file may be damaged */
		*ret_to = load_relaxed(&d->hdr->grow_to);
	return id;
}

uint64_t dir_reserve_id(struct bus_dir *d)
{
	return d->hdr->next_topic_id++;
}

int dir_remove(struct bus_dir *d, const char *name)
{
	uint64_t pub;
	struct bus_table *next = begin(d, &pub);

	for (uint32_t i = 0; i < next->count; i++) {
		if (name_eq(next->topics[i].name, name)) {
			next->topics[i] = next->topics[--next->count];
			publish(d, next, pub);
			return 0;
		}
	}
	return shm_err(-ENOENT, "topic \"%s\" does not exist", name);
}

/* ------------------------------------------------------------------ */
/* The daemon block                                                    */

void dir_daemon_read(const struct bus_dir *d, struct dir_daemon *ret)
{
	const struct bus_header *h = d->hdr;

	/* pairs with the store_release of daemon_pid in dir_daemon_take() */
	ret->pid = load_acquire(&h->daemon_pid);
	ret->start_time = load_relaxed(&h->daemon_start_time);
	ret->heartbeat_ns = load_relaxed(&h->daemon_heartbeat_ns);
	/* the path is written before the pid, and cleared byte 0 first */
	memcpy(ret->control_socket, h->control_socket, sizeof ret->control_socket);
	ret->control_socket[sizeof ret->control_socket - 1] = '\0';
}

uint32_t dir_daemon_pid(const struct bus_dir *d)
{
	return load_acquire(&d->hdr->daemon_pid);
}

int64_t dir_daemon_heartbeat(const struct bus_dir *d)
{
	return load_relaxed(&d->hdr->daemon_heartbeat_ns);
}

int dir_daemon_socket_set(struct bus_dir *d, const char *path)
{
	size_t len = strlen(path);

	if (len >= DIR_SOCKET_MAX)
		return -ENAMETOOLONG;
	memcpy(d->hdr->control_socket, path, len + 1);
	return 0;
}

void dir_daemon_socket_clear(struct bus_dir *d)
{
	store_release(&d->hdr->control_socket[0], '\0');
}

int dir_daemon_take(struct bus_dir *d, const char *control_socket, uint32_t pid,
		    uint64_t start_time, int64_t now_ns)
{
	struct bus_header *h = d->hdr;
	int rc;

	h->daemon_flags = 0;
	rc = dir_daemon_socket_set(d, control_socket);
	if (rc < 0)
		return rc;
	store_relaxed(&h->daemon_heartbeat_ns, now_ns);
	store_relaxed(&h->daemon_start_time, start_time);
	/* pairs with the load_acquire of daemon_pid in dir_daemon_read() */
	store_release(&h->daemon_pid, pid);
	return 0;
}

void dir_daemon_beat(struct bus_dir *d, int64_t now_ns)
{
	store_relaxed(&d->hdr->daemon_heartbeat_ns, now_ns);
}

void dir_daemon_leave(struct bus_dir *d)
{
	store_release(&d->hdr->daemon_pid, 0u);
}
