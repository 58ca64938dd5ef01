/*
 * shmbusd.h - what the files of the daemon share.
 *
 * shmbusd supervises one bus root: it recovers partitions at start-up,
 * aborts stalled claims, enforces time retention, flushes disk roots,
 * administers topics for clients over its control socket, and exports
 * metrics.  It is never on the data path: producers and consumers go on
 * if it dies, and a restarted daemon takes over the same root.
 *
 * One thread runs an epoll loop (loop.c) for the control socket, client
 * pidfds, signals and timers; libmicrohttpd runs the metrics endpoint in
 * its own thread, which reads the partition table published through
 * liburcu (supervise.c); a worker thread creates and deletes topics
 * (topics.c), which can take seconds, so the loop never waits for it.
 */
#ifndef SHMBUSD_H
#define SHMBUSD_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <urcu-bp.h>

#include "shmbus.h"
#include "../lib/shmbus_private.h"
#include "../shm/directory.h"
#include "../shm/partition.h"
#include "config.h"
#include "log.h"

#include <unistd.h>

/* Close an fd at the end of its scope: _cleanup_close_ int fd = -1; */
static inline void closep(int *fd)
{
	if (*fd >= 0)
		close(*fd);
}
#define _cleanup_close_ __attribute__((cleanup(closep)))

struct daemon;

/* ------------------------------------------------------------------ */
/* The event loop (loop.c)                                             */

typedef void (*loop_fn)(struct daemon *d, uint32_t events, void *arg);

/* Watch fd for epoll `events`; fn runs in the loop thread. */
int loop_add(struct daemon *d, int fd, uint32_t events, loop_fn fn, void *arg);
int loop_mod(struct daemon *d, int fd, uint32_t events);
void loop_del(struct daemon *d, int fd);

/* A periodic timer (timerfd); returns its fd, or -errno.  period_ns 0
 * disarms it. */
int loop_timer(struct daemon *d, int64_t period_ns, loop_fn fn, void *arg);
int loop_timer_set(int fd, int64_t period_ns);

/* Run until loop_stop(); returns 0, or -errno if the loop failed. */
int loop_run(struct daemon *d);
void loop_stop(struct daemon *d);

/* ------------------------------------------------------------------ */
/* Partitions under supervision (supervise.c)                          */

/* The daemon's view of one partition. */
struct dpart {
	char topic[PART_NAME_MAX + 1];
	uint64_t topic_id;
	uint32_t partition;
	int64_t retention_ms;
	struct pmap *m;              /* mapped through the bus's cache */
	struct part *part;           /* pmap_part(m) */
	/* sampled each tick, for rates (metrics) */
	uint64_t last_next, last_tail;
	int64_t last_ns;
	double rate_records, rate_bytes;   /* per second, last tick */
	/* the daemon's own cursor at the read frontier (unblocker) */
	uint64_t front_off, front_pos;
	int64_t front_since;               /* CLOCK_MONOTONIC, 0: moving */
	/* disk roots: what was last flushed */
	uint64_t flushed_tail, flushed_next;
	int64_t flushed_ns;
	/* the status word the directory says it must hold (bus_topic_status),
	 * and whether the last check found it otherwise (supervise.c) */
	uint64_t want_status;
	bool status_suspect;
};

/* The partition table, replaced whole when topics change and published
 * with rcu_assign_pointer; readers (the metrics thread) hold
 * rcu_read_lock while they use it.  Freed by call_rcu. */
struct dtable {
	struct rcu_head rcu;
	uint64_t dir_gen;            /* the bus directory generation it reflects */
	size_t n;
	struct dpart *parts[];
};

/* Rebuild the table if topics changed; start-up recovery runs on the
 * partitions it finds for the first time (recovery.c). */
int supervise_refresh(struct daemon *d);

/* One supervision tick: stalled claims, flush, rates. */
void supervise_tick(struct daemon *d);

/* One time-retention pass over every partition; and (re)arm its timer,
 * whose period follows the shortest retention (supervise.c). */
void supervise_retire(struct daemon *d);
void supervise_retention_timer(struct daemon *d);

/* A registered client's process exited: abort its claims and free its
 * writer and consumer slots at once. */
void supervise_client_gone(struct daemon *d, pid_t pid);

void supervise_fini(struct daemon *d);

/* ------------------------------------------------------------------ */
/* Start-up recovery (recovery.c)                                      */

/* Recover one partition if no other process has it mapped (format.md
 * §8 and §11); logs what it found and cut. */
void recovery_run(struct daemon *d, struct dpart *dp);

/* Set dp's status word right from the directory (format.md §8), logged
 * and counted if it was wrong: at start-up (`wait` for the admin lock)
 * and from the tick (not waiting: -EWOULDBLOCK, try again later). */
int recovery_status(struct daemon *d, struct dpart *dp, bool wait);

/* ------------------------------------------------------------------ */
/* The control socket (control.c)                                      */

int control_init(struct daemon *d);
void control_fini(struct daemon *d);

/* Whom to answer for a request served later (topics.c). */
struct ctl_peer {
	uint64_t conn;               /* the connection's serial; 0: nobody */
	uint32_t seq;
	uint16_t type;
	char who[160];               /* "uid 1000 (alice) pid 4242", for the log */
};

/* Answer a request whose connection was parked while it ran: send the
 * RESULT (if the connection is still open) and read from it again. */
void control_answer(struct daemon *d, uint64_t conn, uint32_t seq, uint16_t type, int status,
		    const char *msg);
/* The same for MIRROR_PROMOTE, with its PROMOTED lines (protocol.md §10). */
void control_answer_promoted(struct daemon *d, uint64_t conn, uint32_t seq, int status,
			     const char *msg, const char *promoted);

/* ------------------------------------------------------------------ */
/* Creating and deleting topics off the loop (topics.c)                */

/* Start the worker thread (after the signals are blocked). */
int topics_init(struct daemon *d);

/* Queue a create or delete, answered through control_answer() when done;
 * 0 or -ENOMEM. */
int topics_create(struct daemon *d, const struct ctl_peer *to, const char *name,
		  const struct shmbus_topic_opts *o);
int topics_delete(struct daemon *d, const struct ctl_peer *to, const char *name);
/* Queue a promote of a replica (mirror_promote in mirror_epoch.c). */
int topics_promote(struct daemon *d, const struct ctl_peer *to, const char *name);
/* Queue adding partitions to topic `name` (`count` in all), run as a
 * create is. */
int topics_grow(struct daemon *d, const struct ctl_peer *to, const char *name, uint32_t count,
		bool validate_only);

/* Create the configuration's [topic]s that are missing: at once before
 * topics_init(), through the worker after. */
void topics_declare(struct daemon *d);

/* Remove half-made topics (at start), logging each. */
void topics_sweep(struct daemon *d);

/* Is the worker creating a topic?  supervise_refresh() waits for it. */
bool topics_creating(struct daemon *d);

/* Stop the worker (a create in progress gives up and removes what it
 * made) and answer every job left. */
void topics_fini(struct daemon *d);

/* ------------------------------------------------------------------ */
/* The control socket's file (ctlsock.c)                               */

/* The socket file bound at a path, to unlink only ours. */
struct ctlsock {
	dev_t dev;
	ino_t ino;
	bool bound;
};

/* Remove a stale socket at path (nothing listens there), bind a new
 * non-blocking SOCK_SEQPACKET socket, and give it the root's group and a
 * mode that follows the root's.  The socket's fd, or -errno (logged). */
int ctlsock_bind(struct daemon *d, const char *path, struct ctlsock *ret);

/* The listening socket systemd passed for path (socket activation,
 * sd_listen_fds), made non-blocking: its fd, -ENOENT if systemd passed
 * none, or -errno (logged) if it passed others. */
int ctlsock_inherit(const char *path);

/* Unlink the socket file if it is still the one ctlsock_bind bound. */
void ctlsock_unlink(const char *path, const struct ctlsock *s);

/* ------------------------------------------------------------------ */
/* Registered clients (clients.c)                                      */

/* Watch pid (a peer that said HELLO) through a pidfd. */
int clients_watch(struct daemon *d, pid_t pid);
size_t clients_count(struct daemon *d);
void clients_fini(struct daemon *d);

/* ------------------------------------------------------------------ */
/* Consumer groups (coordinator.c, coordinator.h)                      */

int coord_init(struct daemon *d);
void coord_fini(struct daemon *d);
/* A control connection closed / a watched process exited: its members go. */
void coord_conn_closed(struct daemon *d, uint64_t conn);
void coord_pid_gone(struct daemon *d, pid_t pid);

/* ------------------------------------------------------------------ */
/* Metrics (metrics.c)                                                 */

int metrics_init(struct daemon *d);
/* Update the shared-memory counters (called each tick). */
void metrics_tick(struct daemon *d);
void metrics_fini(struct daemon *d);

/* The Prometheus text exposition (format 0.0.4) of the bus and the
 * daemon, malloc'd, or NULL when out of memory (exposition.c).  Safe
 * from the metrics thread: reads d->table under rcu_read_lock, shared
 * memory with atomic loads, and the daemon's own counters from ctr. */
struct ctr_file;
char *exposition_render(struct daemon *d, const struct ctr_file *ctr, size_t *ret_len);

/* ------------------------------------------------------------------ */
/* systemd (notify.c)                                                  */

void notify_ready(struct daemon *d);
void notify_status(struct daemon *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void notify_watchdog(struct daemon *d);
void notify_stopping(struct daemon *d);
void notify_reloading(struct daemon *d);
/* The watchdog period systemd asked for (0: none). */
int64_t notify_watchdog_ns(void);

/* ------------------------------------------------------------------ */
/* The daemon                                                          */

struct daemon {
	struct config cfg;
	const char *config_path;     /* NULL: built-in defaults */
	shmbus *bus;                 /* opened with no_daemon: administers the root itself */
	int rootfd, topicsfd, groupsfd; /* the root and its topics/ and groups/ */
	struct bus_dir dir;          /* the bus file: topic table and daemon block */
	int lockfd;                  /* <root>/shmbusd.lock, held for our life */
	bool on_tmpfs;
	int epfd;
	bool stopping;
	int tick_fd;                 /* the supervision timer */
	int retention_fd;            /* the time-retention timer */
	int64_t retention_period_ns; /* its period (0: disarmed) */
	int watchdog_fd;
	struct dtable *table;        /* RCU-published */
	size_t status_next;          /* where the tick's status check goes on (supervise.c) */
	int64_t started_ns;          /* CLOCK_REALTIME */
	struct shmbus_daemon_stats st; /* its own counters (exported by metrics.c) */
	void *control;               /* control.c's state */
	void *clients;               /* clients.c's state */
	void *metrics;               /* metrics.c's state */
	void *topics;                /* topics.c's state */
	void *coord;                 /* coordinator.c's state */
	void *kevents;               /* kevents.c's state (NULL: the source is off) */
};

/* Take a config change that can apply live (SIGHUP); says what cannot. */
void daemon_reload(struct daemon *d);

#endif
