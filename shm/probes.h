/*
 * probes.h - the USDT probes of libshmbus and shmbusd, declared once.
 *
 * Like PostgreSQL's probes.d, this list is the one declaration of every
 * static probe: provider "shmbus", the probe's name, its argument count,
 * where it must be found (LIB: libshmbus; DAEMON: also shmbusd, which
 * links the library; SHMBUSD: shmbusd alone), and its arguments.  tests/test_probes.c reads this list and checks with
 * `readelf -n` that each probe is in the built binaries with that many
 * arguments, each in a form libbpf 1.1 can read (a register, or a
 * register plus a displacement: never a scaled index).  bpf/trace.bpf.c
 * attaches to them; docs/tracing.md documents them.
 *
 * A probe is one `nop` when nobody traces (sys/sdt.h from Debian's
 * systemtap-sdt-dev).  Each has a semaphore (shmbus_<name>_semaphore,
 * defined in probes.c) that the kernel raises while a tracer is attached:
 * SHMBUS_PROBE_ENABLED(name) reads it, so that arguments which cost
 * anything to compute are computed only while traced.  Arguments are plain
 * scalars: integers, and the address of a NUL-terminated topic name (at
 * most PART_NAME_MAX bytes; in shared memory or the caller's handle).
 *
 */
#ifndef SHMBUS_SHM_PROBES_H
#define SHMBUS_SHM_PROBES_H

/* X(name, argument count, where, arguments...) */
#define SHMBUS_PROBE_LIST(X)                                                             \
	/* records claimed by one CAS: first offset, count, bytes (padding included) */ \
	X(append, 5, LIB, topic, partition, offset, records, bytes)                      \
	/* records of a claim committed (made visible), from offset */                   \
	X(commit, 4, LIB, topic, partition, offset, records)                             \
	/* a producer aborts its own claimed records (zero-copy abort, or the rest  \
	 * of a batch after an unblocker aborted one of its frames) */                   \
	X(abort, 4, LIB, topic, partition, offset, records)                              \
	/* a stalled claim aborted by another process (a reader or shmbusd):         \
	 * records aborted from offset, and the claimant's pid (-1: unknown) */          \
	X(unblock, 5, DAEMON, topic, partition, offset, records, pid)                    \
	/* a reader waits past the unblock timeout at a claim whose producer lives */  \
	X(stall, 4, LIB, topic, partition, offset, pid)                                  \
	/* a record handed to the application; timestamp_ns is the record's           \
	 * (CLOCK_REALTIME, set by the producer) */                                      \
	X(deliver, 4, LIB, topic, partition, offset, timestamp_ns)                       \
	/* a consumer lost offsets: lapped at offset; policy: 0 error, 1 earliest,  \
	 * 2 latest (shmbus_reset) */                                                    \
	X(lap, 4, LIB, topic, partition, offset, policy)                                 \
	/* after a lap, the reset policy moved the consumer from offset to to */       \
	X(reset, 4, LIB, topic, partition, offset, to)                                   \
	/* a consumer sleeps on the notify words of partitions (the first named) */    \
	X(wait, 3, LIB, topic, partition, partitions)                                    \
	/* a producer wakes the sleepers of a partition */                              \
	X(wake, 2, LIB, topic, partition)                                                \
	/* backpressure: a producer finds no room; the slowest consumer's pid */         \
	X(bp_blocked, 3, LIB, topic, partition, pid)                                     \
	/* shmbusd's group coordinator: the group's assignment changed, new epoch */    \
	X(group_rebalance, 3, SHMBUSD, group, epoch, members)                            \
	/* ... and granted a partition to a member (its pid) under epoch */             \
	X(group_assign, 5, SHMBUSD, group, topic, partition, pid, epoch)                  \
	/* shmbusd serving a mirror: a DATA batch sent, records from offset, bytes */  \
	X(mirror_send, 5, SHMBUSD, topic, partition, offset, records, bytes)              \
	/* ... and the mirror's ACK: its end (the next offset it needs) */              \
	X(mirror_ack, 3, SHMBUSD, topic, partition, end)

#define SHMBUS_PROBE_SEMAPHORE_(name) shmbus_##name##_semaphore
#define SHMBUS_PROBE_DECLARE_(name, n, where, ...) \
	extern volatile unsigned short SHMBUS_PROBE_SEMAPHORE_(name);
SHMBUS_PROBE_LIST(SHMBUS_PROBE_DECLARE_)
#undef SHMBUS_PROBE_DECLARE_

#ifndef SHMBUS_NO_PROBES
/* every probe has a semaphore (the symbol sys/sdt.h's notes name) */
#define _SDT_HAS_SEMAPHORES 1
#define SDT_USE_VARIADIC 1
#include <sys/sdt.h>

/* SHMBUS_PROBE(append, topic, partition, offset, records, bytes) */
#define SHMBUS_PROBE(name, ...) STAP_PROBEV(shmbus, name, __VA_ARGS__)
#define SHMBUS_PROBE_ENABLED(name) __builtin_expect(SHMBUS_PROBE_SEMAPHORE_(name) != 0, 0)
#else
/* compiled out (the bench's baseline): the arguments still count as used */
static inline void shmbus_probe_none(int n, ...)
{
	(void)n;
}
#define SHMBUS_PROBE(name, ...) do { if (0) shmbus_probe_none(0, __VA_ARGS__); } while (0)
#define SHMBUS_PROBE_ENABLED(name) 0
#endif

/* The probe, only while traced and cond holds (cond is evaluated then only) */
#define SHMBUS_PROBE_IF(name, cond, ...)                                    \
	do {                                                                \
		if (SHMBUS_PROBE_ENABLED(name) && (cond))                   \
			SHMBUS_PROBE(name, __VA_ARGS__);                    \
	} while (0)

struct part;
/* The pid of the slowest backpressure consumer of p, 0 if none (for
 * bp_blocked, while traced) */
long shm_probe_bp_holder(struct part *p);

#endif
