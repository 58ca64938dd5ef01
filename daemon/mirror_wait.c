/*
 * mirror_wait.c - a source connection's sleep on its partitions' futex
 * words and on its socket at once (mirror_wait.h).
 *
 * A socket cannot be waited on with a futex, nor a futex with poll(2),
 * so a watcher thread per connection turns "the socket is readable" into
 * a bump of a futex word the connection sleeps on beside the partitions'
 * notify words (futex_waitv).  Records, the common wake-up, cost one hop:
 * the producer's commit wakes the connection thread itself.  A message
 * from the mirror (an ACK a second, a FETCH) costs two.
 *
 * The two handshakes, each a store then a load on both sides (seq_cst):
 *   - input:  the watcher stores input = 1, then wakes `word` if a
 *             sleeper announced itself; the connection announces itself
 *             on `word` (futex_word_prepare), then loads input.  One of
 *             them sees the other.
 *   - drained: the connection stores input = 0 and wakes the watcher,
 *             which sleeps on input while it is 1.
 */
#include "mirror_wait.h"

#include <errno.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "../shm/notify.h"
#include "../util/atomics.h"
#include "../util/clock.h"

#define PARTIAL_WAIT_NS 1000000LL /* the partitions a sleep cannot hold: polled */

static void *watch_main(void *arg)
{
	struct mwait *w = arg;

	while (!load_seq_cst(&w->quit)) {
		struct pollfd p[3] = { { .fd = w->fd, .events = POLLIN },
				       { .fd = w->stopfd, .events = POLLIN },
				       { .fd = w->quitfd, .events = POLLIN } };

		if (poll(p, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			p[0].revents = POLLERR; /* let the connection find out */
		}
		if (p[2].revents)
			break;
		/* pairs with the load of input after futex_word_prepare() in
		 * mwait_prepare()'s caller: it sees input, or we see its waiter */
		store_seq_cst(&w->input, 1);
		futex_word_wake(&w->word);
		if (p[1].revents)
			break; /* shmbusd stops: the connection ends at its next look */
		while (load_seq_cst(&w->input) == 1 && !load_seq_cst(&w->quit))
			futex_wait_shared(&w->input, 1, 0); /* until mwait_drained() */
	}
	return NULL;
}

int mwait_start(struct mwait *w, int fd, int stopfd)
{
	*w = (struct mwait){ .fd = fd, .stopfd = stopfd };
	w->quitfd = eventfd(0, EFD_CLOEXEC);
	if (w->quitfd < 0)
		return -errno;
	if (pthread_create(&w->watcher, NULL, watch_main, w)) {
		close(w->quitfd);
		w->quitfd = -1;
		return -EAGAIN;
	}
	w->started = true;
	return 0;
}

void mwait_stop(struct mwait *w)
{
	uint64_t one = 1;

	if (!w->started)
		return;
	store_seq_cst(&w->quit, true);
	store_seq_cst(&w->input, 0);
	futex_wake_shared(&w->input);
	if (write(w->quitfd, &one, sizeof one) < 0)
		(void)0; /* an eventfd write fails only at its count's limit */
	pthread_join(w->watcher, NULL);
	close(w->quitfd);
	w->quitfd = -1;
	w->started = false;
}

bool mwait_input(struct mwait *w)
{
	return load_seq_cst(&w->input) == 1;
}

void mwait_drained(struct mwait *w)
{
	/* pairs with the watcher's wait on input */
	store_seq_cst(&w->input, 0);
	futex_wake_shared(&w->input);
}

void mwait_prepare(struct mwait *w, struct mwait_set *s)
{
	s->n = 1;
	s->partial = false;
	s->words[0] = &w->word;
	/* pairs with futex_word_wake() in watch_main() */
	s->expected[0] = futex_word_prepare(&w->word);
}

void mwait_add(struct mwait_set *s, struct part *p)
{
	if (p->readonly || s->n == SHM_FUTEX_MAX_WAITV) {
		s->partial = true; /* no waiter bit of ours would wake us */
		return;
	}
	s->words[s->n] = part_wait_word(p);
	/* pairs with part_notify() after a commit (format.md §4 step 5) */
	s->expected[s->n] = part_wait_prepare(p);
	s->n++;
}

void mwait_sleep(struct mwait_set *s, int64_t deadline_ns)
{
	if (s->partial && deadline_ns > mono_ns() + PARTIAL_WAIT_NS)
		deadline_ns = mono_ns() + PARTIAL_WAIT_NS;
	futex_wait_many(s->words, s->expected, s->n, deadline_ns);
}
