/*
 * mirror_wait.h - how a source's connection thread (mirror_source.c)
 * waits with nothing to send: asleep on the futex notify words of the
 * partitions it serves (format.md §5, the word consumers sleep on), so a
 * producer's commit wakes it at once, and on a word of its own that a
 * watcher thread bumps when the mirror's socket has something to read
 * (or shmbusd stops).  No timer, no busy loop (docs/protocol.md §M5).
 *
 * The watcher polls the socket and, once it saw input, waits until the
 * connection thread read it (mwait_drained) before it polls again: a
 * level-triggered poll would otherwise spin on unread bytes.
 */
#ifndef SHMBUSD_MIRROR_WAIT_H
#define SHMBUSD_MIRROR_WAIT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../shm/partition.h"
#include "../util/futex.h"

struct mwait {
	int fd;                      /* the mirror's socket (polled, never read here) */
	int stopfd;                  /* readable when shmbusd stops */
	int quitfd;                  /* eventfd: the connection ends */
	uint32_t word;               /* futex: bumped when there is input or a stop */
	uint32_t input;              /* 1 from the watcher's poll to mwait_drained */
	bool quit;
	bool started;
	pthread_t watcher;
};

/* The words one sleep waits on: the connection's own first. */
struct mwait_set {
	uint32_t *words[SHM_FUTEX_MAX_WAITV];
	uint32_t expected[SHM_FUTEX_MAX_WAITV];
	size_t n;
	bool partial;                /* some partitions did not fit, or cannot be
				      * waited on (read-only): sleep 1 ms at most */
};

/* Start the watcher of fd (and of stopfd): 0 or -errno. */
int mwait_start(struct mwait *w, int fd, int stopfd);
/* Stop and join it (also when it never started). */
void mwait_stop(struct mwait *w);

/* Has the watcher seen input (or a stop) not yet read?  Read it, then
 * call mwait_drained so it watches again. */
bool mwait_input(struct mwait *w);
void mwait_drained(struct mwait *w);

/*
 * A sleep in three steps, so that no wake is lost: mwait_prepare
 * announces the connection's own word, mwait_add each partition's
 * notify word (a waiter producers see, format.md §4 step 5); then the
 * caller looks once more for records and input, and only if there are
 * none calls mwait_sleep, which returns at a wake, a change of any word
 * since it was announced, or deadline_ns (CLOCK_MONOTONIC).
 */
void mwait_prepare(struct mwait *w, struct mwait_set *s);
void mwait_add(struct mwait_set *s, struct part *p);
void mwait_sleep(struct mwait_set *s, int64_t deadline_ns);

#endif
