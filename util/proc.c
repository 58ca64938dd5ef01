/*
 * proc.c - is a process still there?  kill(pid, 0) answers for the pid;
 * /proc/<pid>/stat's start time tells whether it is still the same
 * process.  Used by readers that find a stalled claim and by producers
 * that find a dead consumer holding back a backpressure ring.
 */
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* State (field 3) and start time (field 22) of /proc/<pid>/stat; false if
 * the file cannot be read. */
static bool read_stat(pid_t pid, char *state, uint64_t *start)
{
	char path[64], buf[1024];
	ssize_t n;
	int fd;
	char *p;

	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	/* comm may hold spaces and parentheses: fields resume after the last ')' */
	p = strrchr(buf, ')');
	if (!p || p[1] != ' ' || !p[2])
		return false;
	*state = p[2];
	p++;
	/* p is at the space before field 3; step to the one before field 22 */
	for (int field = 3; field < 22 && p; field++)
		p = strchr(p + 1, ' ');
	*start = p ? strtoull(p + 1, NULL, 10) : 0;
	return true;
}

uint64_t proc_start_time(pid_t pid)
{
	uint64_t start;
	char state;

	return read_stat(pid, &state, &start) ? start : 0;
}

bool proc_alive(pid_t pid, uint64_t start_time)
{
	uint64_t start;
	char state;

	if (pid <= 0)
		return false;
	if (kill(pid, 0) < 0 && errno == ESRCH)
		return false;
	if (!read_stat(pid, &state, &start))
		return true; /* exists, but /proc hides it: assume it lives */
	/* a zombie has exited: its parent just has not reaped it yet */
	if (state == 'Z' || state == 'X' || state == 'x')
		return false;
	return start_time == 0 || start == start_time;
}

static pid_t self_pid;
static uint64_t self_start;

static void self_refresh(void)
{
	self_pid = getpid();
	self_start = proc_start_time(self_pid);
}

/* getpid() is a system call (about 1 us here): cache it, and refresh it
 * in a child after fork. */
__attribute__((constructor)) static void self_init(void)
{
	self_refresh();
	pthread_atfork(NULL, NULL, self_refresh);
}

pid_t proc_self(uint64_t *start_time)
{
	if (start_time)
		*start_time = self_start;
	return self_pid;
}
