/*
 * loop.c - the daemon's event loop: epoll over the control socket, client
 * pidfds, a signalfd and timerfds.  Each watched fd carries a callback;
 * everything runs in this one thread.
 */
#include "shmbusd.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

struct watch {
	int fd;
	loop_fn fn;
	void *arg;
	bool timer;     /* a timerfd: drain its expirations before fn */
};

/* Watches live as long as their fd is registered; the fd indexes them. */
static struct watch **watches;
static size_t nwatches;

static struct watch *watch_for(int fd, bool create)
{
	if ((size_t)fd >= nwatches) {
		size_t n = (size_t)fd + 64;
		struct watch **grown;

		if (!create)
			return NULL;
		grown = realloc(watches, n * sizeof *grown);
		if (!grown)
			return NULL;
		for (size_t i = nwatches; i < n; i++)
			grown[i] = NULL;
		watches = grown;
		nwatches = n;
	}
	if (!watches[fd] && create)
		watches[fd] = calloc(1, sizeof **watches);
	return watches[fd];
}

int loop_add(struct daemon *d, int fd, uint32_t events, loop_fn fn, void *arg)
{
	struct watch *w = watch_for(fd, true);
	struct epoll_event ev = { .events = events, .data.fd = fd };

	if (!w)
		return -ENOMEM;
	*w = (struct watch){ .fd = fd, .fn = fn, .arg = arg };
	if (epoll_ctl(d->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return -errno;
	return 0;
}

int loop_mod(struct daemon *d, int fd, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.fd = fd };

	return epoll_ctl(d->epfd, EPOLL_CTL_MOD, fd, &ev) < 0 ? -errno : 0;
}

void loop_del(struct daemon *d, int fd)
{
	struct watch *w = watch_for(fd, false);

	epoll_ctl(d->epfd, EPOLL_CTL_DEL, fd, NULL);
	if (w) {
		free(w);
		watches[fd] = NULL;
	}
}

int loop_timer_set(int fd, int64_t period_ns)
{
	struct itimerspec its = {
		.it_interval = { .tv_sec = period_ns / 1000000000, .tv_nsec = period_ns % 1000000000 },
	};

	its.it_value = its.it_interval;
	return timerfd_settime(fd, 0, &its, NULL) < 0 ? -errno : 0;
}

int loop_timer(struct daemon *d, int64_t period_ns, loop_fn fn, void *arg)
{
	int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC), rc;

	if (fd < 0)
		return -errno;
	rc = loop_add(d, fd, EPOLLIN, fn, arg);
	if (rc == 0) {
		watches[fd]->timer = true;
		rc = loop_timer_set(fd, period_ns);
	}
	if (rc) {
		loop_del(d, fd);
		close(fd);
		return rc;
	}
	return fd;
}

int loop_run(struct daemon *d)
{
	struct epoll_event evs[32];

	while (!d->stopping) {
		int n = epoll_wait(d->epfd, evs, 32, -1);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		for (int i = 0; i < n && !d->stopping; i++) {
			struct watch *w = watch_for(evs[i].data.fd, false);
			uint64_t expirations;

			if (!w || !w->fn)
				continue;
			/* drain a timer so it stops being readable */
			if (w->timer && read(w->fd, &expirations, sizeof expirations) < 0)
				continue;
			w->fn(d, evs[i].events, w->arg);
		}
	}
	return 0;
}

void loop_stop(struct daemon *d)
{
	d->stopping = true;
}
