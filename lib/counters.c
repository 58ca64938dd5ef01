/*
 * counters.c - the supervising daemon as shared memory records it: the
 * daemon block of the bus file (who serves the root, its heartbeat, its
 * control socket) and the counters file it writes each tick (format.md
 * §12).  Both are read without asking the daemon, so these calls work
 * while it runs, after it stopped, and after it was killed; the state
 * says which, from the process's existence and the heartbeat's age.
 */
#include "internal.h"

#include <errno.h>
#include <stdio.h>

#include "../util/clock.h"
#include "../shm/counters.h"
#include "../util/proc.h"

/* DAEMON_STATS names every counter (the reserved words excepted). */
#define SIZE_OF(field, attr, word) +sizeof(((struct shmbus_daemon_stats *)0)->field)
_Static_assert(0 DAEMON_STATS(SIZE_OF) == offsetof(struct shmbus_daemon_stats, reserved),
	       "DAEMON_STATS misses a field of struct shmbus_daemon_stats");
#undef SIZE_OF

/* What the two files say of the daemon. */
struct seen {
	uint32_t pid;               /* the serving daemon's, else the last one's */
	uint64_t start_time;
	int64_t heartbeat_ns;
	bool has_block;             /* the counters file's block is this daemon's */
	bool torn;                  /* its writer died inside an update */
	struct ctr_daemon v;
	char endpoint[128];
	char control_socket[DIR_SOCKET_MAX];
};

static int read_counters(shmbus *bus, struct seen *s, bool *has_file)
{
	struct ctr_file c;
	int rc = ctr_open(bus->rootfd, false, &c);

	*has_file = false;
	if (rc == -ENOENT)
		return 0;
	if (rc < 0) {
		char why[400];

		snprintf(why, sizeof why, "%s", shm_errmsg());
		return lib_err(rc, "%s/%s: %s", bus->root, CTR_FILE, why);
	}
	s->torn = ctr_daemon_read(&c, &s->v) != 0;
	ctr_endpoint(&c, s->endpoint, sizeof s->endpoint);
	ctr_close(&c);
	*has_file = true;
	return 0;
}

/* Read both files and decide the daemon's state. */
static int observe(shmbus *bus, struct seen *s, enum shmbus_daemon_state *ret)
{
	struct dir_daemon b;
	bool has_file;
	int rc;

	memset(s, 0, sizeof *s);
	dir_daemon_read(&bus->dir, &b);
	s->pid = b.pid;
	s->start_time = b.start_time;
	s->heartbeat_ns = b.heartbeat_ns;
	memcpy(s->control_socket, b.control_socket, sizeof s->control_socket);
	rc = read_counters(bus, s, &has_file);
	if (rc < 0)
		return rc;
	if (has_file && s->v.pid && (!s->pid || s->v.pid == s->pid)) {
		/* the serving daemon's block, or the last daemon's if none serves */
		s->has_block = true;
		s->pid = (uint32_t)s->v.pid;
		s->start_time = s->v.start_time;
		s->heartbeat_ns = s->v.heartbeat_ns;
	}
	if (!s->pid)
		*ret = SHMBUS_DAEMON_NONE;
	else if (proc_alive((pid_t)s->pid, s->start_time))
		*ret = !s->torn && ctr_heartbeat_fresh(s->heartbeat_ns, s->v.tick_ns, real_ns())
			       ? SHMBUS_DAEMON_RUNNING : SHMBUS_DAEMON_STALLED;
	else if (s->has_block && s->v.state == CTR_STATE_STOPPED)
		*ret = SHMBUS_DAEMON_STOPPED;
	else
		*ret = SHMBUS_DAEMON_DIED;
	return 0;
}

static void fill_counters(const struct seen *s, struct shmbus_daemon_counters *r)
{
	const struct ctr_daemon *v = &s->v;

	r->has_counters = true;
	r->partitions = v->partitions;
	r->clients = v->clients;
#define GET(field, attr, word) r->stats.field = v->word;
	DAEMON_STATS(GET)
#undef GET
	snprintf(r->version, sizeof r->version, "%u.%u.%u", (unsigned)(v->version >> 16),
		 (unsigned)(v->version >> 8 & 0xff), (unsigned)(v->version & 0xff));
	snprintf(r->metrics, sizeof r->metrics, "%s", s->endpoint);
	r->started_ns = v->started_ns;
	r->tick_ns = v->tick_ns;
}

SHMBUS_API int shmbus_daemon_counters(shmbus *bus, struct shmbus_daemon_counters *ret)
{
	struct shmbus_daemon_counters r = { 0 };
	struct seen s;
	int rc;

	rc = OUT_CHECK(shmbus_daemon_counters, ret);
	if (rc == 0)
		rc = observe(bus, &s, &r.state);
	if (rc < 0)
		return rc;
	r.pid = (int32_t)s.pid;
	r.heartbeat_ns = s.heartbeat_ns;
	snprintf(r.control_socket, sizeof r.control_socket, "%s", s.control_socket);
	if (s.has_block)
		fill_counters(&s, &r);
	OUT_STORE(ret, r);
	return 0;
}

SHMBUS_API int shmbus_partition_rate(shmbus *bus, const char *topic, uint32_t partition,
				     struct shmbus_partition_rate *ret)
{
	struct shmbus_partition_rate r = { 0 };
	enum shmbus_daemon_state state;
	struct bus_topic t;
	struct ctr_file c;
	struct ctr_rate v;
	struct seen s;
	int rc;

	rc = OUT_CHECK(shmbus_partition_rate, ret);
	if (rc == 0)
		rc = topic_lookup(bus, topic, &t);
	if (rc == 0)
		rc = check_partition(topic, t.partitions, (int32_t)partition);
	if (rc < 0)
		return rc;
	rc = observe(bus, &s, &state);
	if (rc < 0)
		return rc;
	if (state != SHMBUS_DAEMON_RUNNING)
		return lib_err(-ESTALE, "no shmbusd runs on %s: append rates are sampled by it; "
			       "start one with `shmbusd --root %s`", bus->root, bus->root);
	rc = ctr_open(bus->rootfd, false, &c);
	if (rc < 0)
		return rc;
	rc = ctr_part_read(&c, t.id, partition, &v);
	ctr_close(&c);
	if (rc < 0)
		return lib_err(-ENOENT, "partition %s/%u has no rate yet: shmbusd samples it each "
			       "tick", topic, partition);
	r.records_per_s = v.records_per_s;
	r.bytes_per_s = v.bytes_per_s;
	r.sampled_ns = v.sampled_ns;
	OUT_STORE(ret, r);
	return 0;
}
