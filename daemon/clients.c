/*
 * clients.c - registered clients: processes that said HELLO on the
 * control socket.  Each is watched through a pidfd; when one exits, its
 * claims are aborted and its slots freed at once (supervise.c), without
 * waiting for the unblock timeout.
 */
#include "shmbusd.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

struct watched {
	pid_t pid;
	int fd;
	struct watched *next;
};

struct clients {
	struct watched *head;
	size_t n;
};

static struct clients *state(struct daemon *d)
{
	if (!d->clients)
		d->clients = calloc(1, sizeof(struct clients));
	return d->clients;
}

static void gone(struct daemon *d, uint32_t events, void *arg)
{
	struct clients *cs = state(d);
	struct watched *w = arg, **pp;

	(void)events;
	loop_del(d, w->fd);
	close(w->fd);
	for (pp = &cs->head; *pp; pp = &(*pp)->next) {
		if (*pp == w) {
			*pp = w->next;
			cs->n--;
			break;
		}
	}
	supervise_client_gone(d, w->pid);
	coord_pid_gone(d, w->pid);
	free(w);
}

int clients_watch(struct daemon *d, pid_t pid)
{
	struct clients *cs = state(d);
	struct watched *w;
	int fd, rc;

	if (!cs)
		return -ENOMEM;
	for (w = cs->head; w; w = w->next)
		if (w->pid == pid)
			return 0;
	fd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (fd < 0)
		return -errno;
	w = calloc(1, sizeof *w);
	if (!w) {
		close(fd);
		return -ENOMEM;
	}
	*w = (struct watched){ .pid = pid, .fd = fd, .next = cs->head };
	rc = loop_add(d, fd, EPOLLIN, gone, w);
	if (rc) {
		close(fd);
		free(w);
		return rc;
	}
	cs->head = w;
	cs->n++;
	log_debug("watching client pid %d", (int)pid);
	return 0;
}

size_t clients_count(struct daemon *d)
{
	return d->clients ? ((struct clients *)d->clients)->n : 0;
}

void clients_fini(struct daemon *d)
{
	struct clients *cs = d->clients;

	while (cs && cs->head) {
		struct watched *w = cs->head;

		cs->head = w->next;
		loop_del(d, w->fd);
		close(w->fd);
		free(w);
	}
	free(cs);
	d->clients = NULL;
}
