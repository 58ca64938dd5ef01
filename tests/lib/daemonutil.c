/*
 * daemonutil.c - starting, watching and stopping real shmbusd processes.
 */
#include "daemonutil.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

const char *tu_daemon_path(void)
{
	const char *p = getenv("SHMBUSD");

	return p && *p ? p : "build/shmbusd";
}

static int notify_socket(struct tu_daemon *d)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	static int seq;

	snprintf(d->notify_path, sizeof d->notify_path, "/tmp/shmbus-notify-%d-%d", (int)getpid(),
		 seq++);
	unlink(d->notify_path);
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", d->notify_path);
	d->notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (d->notify_fd < 0 || bind(d->notify_fd, (struct sockaddr *)&sa, sizeof sa) < 0)
		return -1;
	return 0;
}

static void exec_daemon(const struct tu_daemon *d, const char *const *args, const char *const *env)
{
	const char *argv[64] = { tu_daemon_path(), "--root", d->root };
	char notify[160];
	int n = 3, fd = open(d->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	for (size_t i = 0; args && args[i] && n < 62; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	snprintf(notify, sizeof notify, "NOTIFY_SOCKET=%s", d->notify_path);
	putenv(notify);
	for (size_t i = 0; env && env[i]; i++)
		putenv((char *)(uintptr_t)env[i]);
	if (fd >= 0) {
		dup2(fd, STDERR_FILENO);
		dup2(fd, STDOUT_FILENO);
	}
	execv(argv[0], (char *const *)(uintptr_t)argv);
	fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

/* Read what notifications arrived within timeout_ms into d->notes. */
static void drain(struct tu_daemon *d, int timeout_ms)
{
	struct pollfd pfd = { .fd = d->notify_fd, .events = POLLIN };
	char buf[4096];
	ssize_t n;

	if (poll(&pfd, 1, timeout_ms) <= 0)
		return;
	while ((n = recv(d->notify_fd, buf, sizeof buf - 1, 0)) > 0) {
		buf[n] = '\0';
		if (d->notes_len + (size_t)n + 2 < sizeof d->notes) {
			memcpy(d->notes + d->notes_len, buf, (size_t)n);
			d->notes_len += (size_t)n;
			d->notes[d->notes_len++] = '\n';
			d->notes[d->notes_len] = '\0';
		}
	}
}

bool tu_daemon_notified(struct tu_daemon *d, const char *prefix, char *out, size_t len,
			int timeout_ms)
{
	int64_t end = tu_ms() + timeout_ms;

	for (;;) {
		const char *line = d->notes;

		while (line && *line) {
			const char *nl = strchr(line, '\n');
			size_t l = nl ? (size_t)(nl - line) : strlen(line);

			if (!strncmp(line, prefix, strlen(prefix))) {
				if (out)
					snprintf(out, len, "%.*s", (int)l, line);
				return true;
			}
			line = nl ? nl + 1 : NULL;
		}
		if (tu_ms() >= end)
			return false;
		drain(d, 50);
	}
}

int tu_daemon_start(struct tu_daemon *d, const char *root, const char *const *args,
		    const char *const *env, int timeout_ms)
{
	memset(d, 0, sizeof *d);
	snprintf(d->root, sizeof d->root, "%s", root);
	snprintf(d->log, sizeof d->log, "%s.shmbusd.log", root);
	if (notify_socket(d) < 0)
		return -1;
	fflush(NULL);
	d->pid = fork();
	if (d->pid < 0)
		return -1;
	if (d->pid == 0)
		exec_daemon(d, args, env);
	if (tu_daemon_notified(d, "READY=1", NULL, 0, timeout_ms))
		return 0;
	tu_daemon_dump(d);
	tu_daemon_kill(d);
	return -1;
}

int tu_daemon_stop(struct tu_daemon *d, int timeout_ms)
{
	int rc;

	if (d->pid <= 0)
		return -1;
	kill(d->pid, SIGTERM);
	rc = tu_wait(d->pid, timeout_ms);
	d->pid = 0;
	close(d->notify_fd);
	unlink(d->notify_path);
	return rc;
}

void tu_daemon_kill(struct tu_daemon *d)
{
	if (d->pid > 0) {
		kill(d->pid, SIGKILL);
		waitpid(d->pid, NULL, 0);
		d->pid = 0;
	}
	if (d->notify_fd > 0) {
		close(d->notify_fd);
		d->notify_fd = -1;
		unlink(d->notify_path);
	}
}

bool tu_daemon_log_has(struct tu_daemon *d, const char *needle, int timeout_ms)
{
	int64_t end = tu_ms() + timeout_ms;

	do {
		FILE *f = fopen(d->log, "r");
		char line[4096];
		bool found = false;

		while (f && !found && fgets(line, sizeof line, f))
			found = strstr(line, needle) != NULL;
		if (f)
			fclose(f);
		if (found)
			return true;
		usleep(20000);
	} while (tu_ms() < end);
	return false;
}

void tu_daemon_dump(const struct tu_daemon *d)
{
	FILE *f = fopen(d->log, "r");
	char line[4096];

	fprintf(stderr, "--- shmbusd log (%s) ---\n", d->log);
	while (f && fgets(line, sizeof line, f))
		fputs(line, stderr);
	if (f)
		fclose(f);
	fprintf(stderr, "--- notifications ---\n%s---\n", d->notes);
}
