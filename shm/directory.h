/*
 * directory.h - the bus file <root>/bus: a header and the topic table,
 * published copy-on-write (format.md §9).
 *
 * Readers never lock: they copy what they need out of the published table
 * and check that the publication word did not change meanwhile.  Writers
 * (topic create/delete) hold the admin lock: dir_lock().
 */
#ifndef SHMBUS_SHM_DIRECTORY_H
#define SHMBUS_SHM_DIRECTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "format.h"

#define BUS_MAGIC       0x3173756262686d73ULL /* "shmbbus1" */
#define BUS_VERSION     1u
#define BUS_MAX_TOPICS  4096u
/* Partitions per topic.  Each is a file, and a mapping in every process
 * that uses the whole topic (a consumer of all of it, shmbusd): a process
 * may hold vm.max_map_count of them (65530 by default), and the counters
 * file has 32768 entries for the whole bus (format.md §12). */
#define BUS_MAX_PARTITIONS_N 16384
#define BUS_MAX_PARTITIONS ((uint32_t)BUS_MAX_PARTITIONS_N)
#define BUS_HEADER_SIZE 4096u

struct bus_topic {
	char name[PART_NAME_MAX + 1];
	uint64_t id;             /* unique for the life of the root; never 0 */
	uint64_t capacity;
	uint64_t index_capacity;
	int64_t created_ns;
	int64_t retention_ms;    /* 0: bounded by the ring only */
	uint32_t partitions;
	uint32_t policy;         /* enum part_policy */
	int32_t numa_node;       /* -1: local */
	uint32_t flags;          /* BUS_TOPIC_* */
	uint32_t mode;           /* partition file mode */
	char mirror_source[64];  /* a replica: "NAME (HOST:PORT)" of its [mirror], for messages */
	uint8_t reserved[4];
};
_Static_assert(sizeof(struct bus_topic) == 384, "topic entry is 384 bytes");

/* bus_topic.flags */
#define BUS_TOPIC_REPLICA (1u << 0) /* a read-only mirror: its partitions carry
				     * PART_STATUS_REPLICA (format.md §2, §9) */

/* The status word the partitions of a topic in the directory must hold:
 * the directory is the authority (format.md §8). */
static inline uint64_t bus_topic_status(const struct bus_topic *t)
{
	return (t->flags & BUS_TOPIC_REPLICA) ? PART_STATUS_REPLICA : 0;
}

struct bus_table {
	uint64_t generation;
	uint32_t count;
	uint32_t reserved;
	uint8_t pad[48];
	struct bus_topic topics[BUS_MAX_TOPICS];
};

struct bus_header {
	uint64_t magic;
	uint32_t version;
	uint32_t header_size;
	uint64_t endian;
	uint32_t word_size;
	uint32_t max_topics;
	uint64_t file_size;
	uint64_t table_offset[2];
	uint64_t table_size;
	int64_t created_ns;
	uint64_t next_topic_id;  /* under the admin lock */
	uint8_t pad0[128 - 80];

	/* [128, 256): the publication word: generation << 1 | table slot */
	uint64_t published;
	uint8_t pad1[120];

	/* [256, 512): the supervising daemon, when one runs (shmbusd) */
	uint32_t daemon_pid;
	uint32_t daemon_flags;
	uint64_t daemon_start_time;
	int64_t daemon_heartbeat_ns;
	char control_socket[232];

	/* [512, 528): a grow under way (format.md §9): the topic whose
	 * partitions are being added (0: none), and the count asked for */
	uint64_t grow_topic_id;
	uint32_t grow_to;
	uint32_t grow_reserved;

	uint8_t reserved[BUS_HEADER_SIZE - 528];
};
_Static_assert(sizeof(struct bus_header) == BUS_HEADER_SIZE, "bus header is a page");
SHM_IDENT_ASSERT(struct bus_header);
_Static_assert(offsetof(struct bus_header, published) == 128, "publication word at 128");
_Static_assert(offsetof(struct bus_header, daemon_pid) == 256, "daemon block at 256");
_Static_assert(offsetof(struct bus_header, grow_topic_id) == 512, "grow word at 512");

struct bus_dir {
	struct bus_header *hdr;
	struct bus_table *table[2];
	size_t map_len;
	int fd;
};

/* Open <rootfd>/bus, creating and initialising it if it does not exist. */
int dir_open(int rootfd, bool create, struct bus_dir *ret);
void dir_close(struct bus_dir *d);

/* The admin lock (flock on the bus file); blocks. */
int dir_lock(struct bus_dir *d);
/* The admin lock if no other open file holds it: 0, -EWOULDBLOCK, -errno. */
int dir_trylock(struct bus_dir *d);
void dir_unlock(struct bus_dir *d);

uint64_t dir_generation(const struct bus_dir *d);

/* Copy the entry named `name`: 0, or -ENOENT. */
int dir_lookup(const struct bus_dir *d, const char *name, struct bus_topic *ret);

/* Copy up to `max` entries; returns the number of topics (may be > max). */
int dir_list(const struct bus_dir *d, struct bus_topic *out, size_t max);

/* Writers, under dir_lock().  dir_add publishes t, whose id comes from
 * dir_reserve_id() (ids are never reused). */
uint64_t dir_reserve_id(struct bus_dir *d);
int dir_add(struct bus_dir *d, struct bus_topic *t);
int dir_remove(struct bus_dir *d, const char *name);
/* Make topic `name` a replica of `source` ("NAME (HOST:PORT)"), or, with
 * source NULL, no replica (a promoted one): its entry's flag and label
 * only; the partitions' status words follow (part_set_replica). */
int dir_set_replica(struct bus_dir *d, const char *name, const char *source);

/*
 * Growing a topic (format.md §9), under dir_lock().  dir_grow_begin()
 * records that topic `id` is getting partitions up to `to` before the
 * first new file is made; dir_set_partitions() publishes the entry with
 * the larger count (same id), once every new file exists;
 * dir_grow_end() clears the record.  A record found set by the next
 * holder of the lock (dir_grow_pending(): the topic id, 0 if none) is
 * left by a grow that was interrupted: the files of that topic past its
 * entry's count are left over.
 */
void dir_grow_begin(struct bus_dir *d, uint64_t id, uint32_t to);
int dir_set_partitions(struct bus_dir *d, const char *name, uint64_t id, uint32_t partitions);
void dir_grow_end(struct bus_dir *d);
uint64_t dir_grow_pending(const struct bus_dir *d, uint32_t *ret_to);

/*
 * The daemon block (protocol.md §1): how clients find the daemon that
 * serves the root.  The daemon writes the rest of the block, then its pid
 * (release); a client loads the pid first (acquire), then the rest.
 */
#define DIR_SOCKET_MAX sizeof(((struct bus_header *)0)->control_socket)

struct dir_daemon {
	uint32_t pid;                    /* 0: no daemon */
	uint64_t start_time;             /* its start time (clock ticks), against pid reuse */
	int64_t heartbeat_ns;            /* CLOCK_REALTIME of its last beat */
	char control_socket[DIR_SOCKET_MAX]; /* NUL-terminated; "" while it has none */
};

/* The block as a client reads it. */
void dir_daemon_read(const struct bus_dir *d, struct dir_daemon *ret);
uint32_t dir_daemon_pid(const struct bus_dir *d);
int64_t dir_daemon_heartbeat(const struct bus_dir *d);

/* The daemon's side: take the root (path may be "", -ENAMETOOLONG if it
 * does not fit), beat, publish or withdraw the control socket, leave. */
int dir_daemon_take(struct bus_dir *d, const char *control_socket, uint32_t pid,
		    uint64_t start_time, int64_t now_ns);
void dir_daemon_beat(struct bus_dir *d, int64_t now_ns);
int dir_daemon_socket_set(struct bus_dir *d, const char *path);
void dir_daemon_socket_clear(struct bus_dir *d);
void dir_daemon_leave(struct bus_dir *d);

/* A topic or group name Kafka would accept: [A-Za-z0-9._-]{1,249}. */
bool dir_name_valid(const char *name);

#endif
