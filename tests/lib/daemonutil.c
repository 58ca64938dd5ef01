/*
 * daemonutil.c - starting, watching and stopping real shmbusd processes.
 */
#include "daemonutil.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
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

/* "NAME=...@PID@..." with the pid in place of @PID@ (a new string). */
static char *env_entry(const char *e)
{
	const char *at = strstr(e, "@PID@");
	char *out;

	if (!at)
		return strdup(e);
	if (asprintf(&out, "%.*s%d%s", (int)(at - e), e, (int)getpid(), at + 5) < 0)
		return NULL;
	return out;
}

static void exec_daemon(const struct tu_daemon *d, bool root_flag, const char *const *args,
			const char *const *env)
{
	const char *argv[64] = { tu_daemon_path(), "--root", d->root };
	char notify[160];
	int n = root_flag ? 3 : 1, fd = open(d->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	for (size_t i = 0; args && args[i] && n < 62; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	snprintf(notify, sizeof notify, "NOTIFY_SOCKET=%s", d->notify_path);
	putenv(notify);
	for (size_t i = 0; env && env[i]; i++) {
		char *e = env_entry(env[i]);

		if (e)
			putenv(e);
	}
	if (fd >= 0) {
		dup2(fd, STDERR_FILENO);
		dup2(fd, STDOUT_FILENO);
	}
	execv(argv[0], (char *const *)(uintptr_t)argv);
	fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

/* Append one notification to d->notes (under d->lock); when full, the
 * oldest half (whole lines) is forgotten. */
static void note(struct tu_daemon *d, const char *buf, size_t n)
{
	if (d->notes_len + n + 2 >= sizeof d->notes && d->notes_len > 0) {
		const char *keep = strchr(d->notes + d->notes_len / 2, '\n');
		size_t off = keep ? (size_t)(keep + 1 - d->notes) : d->notes_len;

		memmove(d->notes, d->notes + off, d->notes_len - off + 1);
		d->notes_len -= off;
	}
	if (d->notes_len + n + 2 < sizeof d->notes) {
		memcpy(d->notes + d->notes_len, buf, n);
		d->notes_len += n;
		d->notes[d->notes_len++] = '\n';
		d->notes[d->notes_len] = '\0';
	}
}

/* Read what notifications arrived within timeout_ms into d->notes. */
static void drain(struct tu_daemon *d, int timeout_ms)
{
	struct pollfd pfd = { .fd = d->notify_fd, .events = POLLIN };
	char buf[4096];
	ssize_t n;

	if (d->notify_fd <= 0 || poll(&pfd, 1, timeout_ms) <= 0)
		return;
	while ((n = recv(d->notify_fd, buf, sizeof buf - 1, 0)) > 0) {
		buf[n] = '\0';
		pthread_mutex_lock(&d->lock);
		note(d, buf, (size_t)n);
		pthread_mutex_unlock(&d->lock);
	}
}

static void *reader_main(void *arg)
{
	struct tu_daemon *d = arg;

	while (!__atomic_load_n(&d->stop_reading, __ATOMIC_ACQUIRE))
		drain(d, 20);
	drain(d, 0);
	return NULL;
}

static void reader_stop(struct tu_daemon *d)
{
	if (d->reading) {
		__atomic_store_n(&d->stop_reading, 1, __ATOMIC_RELEASE);
		pthread_join(d->reader, NULL);
		d->reading = false;
	}
}

static void notify_close(struct tu_daemon *d)
{
	reader_stop(d);
	if (d->notify_fd > 0) {
		close(d->notify_fd);
		d->notify_fd = -1;
		unlink(d->notify_path);
	}
}

/* The first line of d->notes starting with prefix, copied into out. */
static bool find_note(struct tu_daemon *d, const char *prefix, char *out, size_t len)
{
	bool found = false;
	const char *line;

	pthread_mutex_lock(&d->lock);
	for (line = d->notes; line && *line && !found;) {
		const char *nl = strchr(line, '\n');
		size_t l = nl ? (size_t)(nl - line) : strlen(line);

		if (!strncmp(line, prefix, strlen(prefix))) {
			if (out)
				snprintf(out, len, "%.*s", (int)l, line);
			found = true;
		}
		line = nl ? nl + 1 : NULL;
	}
	pthread_mutex_unlock(&d->lock);
	return found;
}

bool tu_daemon_notified(struct tu_daemon *d, const char *prefix, char *out, size_t len,
			int timeout_ms)
{
	int64_t end = tu_ms() + timeout_ms;

	for (;;) {
		if (find_note(d, prefix, out, len))
			return true;
		if (tu_ms() >= end)
			return false;
		if (d->reading)
			usleep(5000);
		else
			drain(d, 50);
	}
}

int tu_daemon_notes_copy(struct tu_daemon *d, const char *prefix, char *out, size_t len)
{
	int n = 0;

	pthread_mutex_lock(&d->lock);
	if (out)
		snprintf(out, len, "%s", d->notes);
	for (const char *line = d->notes; line && *line;) {
		const char *nl = strchr(line, '\n');

		n += !prefix || !strncmp(line, prefix, strlen(prefix));
		line = nl ? nl + 1 : NULL;
	}
	pthread_mutex_unlock(&d->lock);
	return n;
}

/* The network namespace the next spawn enters ("" none): set and cleared
 * by tu_daemon_start_config_netns(). */
static char spawn_netns[64];

/* In the child: join the named namespace (`ip netns add` made it). */
static void enter_netns(void)
{
	char path[128];
	int fd;

	if (!spawn_netns[0])
		return;
	snprintf(path, sizeof path, "/run/netns/%s", spawn_netns);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || setns(fd, CLONE_NEWNET) < 0) {
		fprintf(stderr, "cannot enter network namespace %s: %s\n", spawn_netns,
			strerror(errno));
		_exit(126);
	}
	close(fd);
}

static int spawn(struct tu_daemon *d, const char *root, const char *log, bool root_flag,
		 const char *const *args, const char *const *env)
{
	if (d->reading)
		notify_close(d);
	memset(d, 0, sizeof *d);
	d->notify_fd = -1;
	pthread_mutex_init(&d->lock, NULL);
	snprintf(d->root, sizeof d->root, "%s", root);
	if (log)
		snprintf(d->log, sizeof d->log, "%s", log);
	else
		snprintf(d->log, sizeof d->log, "%s.shmbusd.log", root);
	if (notify_socket(d) < 0)
		return -1;
	fflush(NULL);
	d->pid = fork();
	if (d->pid < 0)
		return -1;
	if (d->pid == 0) {
		enter_netns();
		exec_daemon(d, root_flag, args, env);
	}
	d->reading = pthread_create(&d->reader, NULL, reader_main, d) == 0;
	return 0;
}

int tu_daemon_spawn(struct tu_daemon *d, const char *root, const char *log,
		    const char *const *args, const char *const *env)
{
	return spawn(d, root, log, true, args, env);
}

static int wait_ready(struct tu_daemon *d, int timeout_ms)
{
	int64_t end = tu_ms() + timeout_ms;

	/* stop waiting as soon as it exits instead of becoming ready */
	while (!tu_daemon_notified(d, "READY=1", NULL, 0, 100)) {
		int status;

		if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
			fprintf(stderr, "shmbusd exited before READY=1 (status 0x%x)\n", status);
			d->pid = 0;
			break;
		}
		if (tu_ms() >= end) {
			fprintf(stderr, "shmbusd did not send READY=1 within %d ms\n", timeout_ms);
			break;
		}
	}
	if (d->pid > 0 && tu_daemon_notified(d, "READY=1", NULL, 0, 0))
		return 0;
	tu_daemon_dump(d);
	tu_daemon_kill(d);
	return -1;
}

int tu_daemon_start(struct tu_daemon *d, const char *root, const char *const *args,
		    const char *const *env, int timeout_ms)
{
	if (tu_daemon_spawn(d, root, NULL, args, env) < 0)
		return -1;
	return wait_ready(d, timeout_ms);
}

int tu_daemon_start_config(struct tu_daemon *d, const char *root, const char *config,
			   const char *const *env, int timeout_ms)
{
	const char *args[] = { "--config", config, NULL };

	if (spawn(d, root, NULL, false, args, env) < 0)
		return -1;
	return wait_ready(d, timeout_ms);
}

int tu_daemon_start_config_netns(struct tu_daemon *d, const char *root, const char *config,
				 const char *netns, int timeout_ms)
{
	const char *args[] = { "--config", config, NULL };
	int rc;

	snprintf(spawn_netns, sizeof spawn_netns, "%s", netns);
	rc = spawn(d, root, NULL, false, args, NULL);
	spawn_netns[0] = '\0';
	if (rc < 0)
		return -1;
	return wait_ready(d, timeout_ms);
}

int tu_daemon_wait(struct tu_daemon *d, int timeout_ms)
{
	int rc;

	if (d->pid <= 0)
		return -1;
	rc = tu_wait(d->pid, timeout_ms);
	d->pid = 0;
	notify_close(d);
	return rc;
}

int tu_daemon_stop(struct tu_daemon *d, int timeout_ms)
{
	if (d->pid <= 0)
		return -1;
	kill(d->pid, SIGTERM);
	return tu_daemon_wait(d, timeout_ms);
}

void tu_daemon_notes_clear(struct tu_daemon *d)
{
	if (!d->reading)
		drain(d, 0);
	pthread_mutex_lock(&d->lock);
	d->notes_len = 0;
	d->notes[0] = '\0';
	pthread_mutex_unlock(&d->lock);
}

void tu_daemon_signal(struct tu_daemon *d, int sig)
{
	if (d->pid > 0)
		kill(d->pid, sig);
}

int tu_daemon_log_count(const struct tu_daemon *d, const char *needle)
{
	FILE *f = fopen(d->log, "r");
	char line[4096];
	int n = 0;

	while (f && fgets(line, sizeof line, f))
		n += strstr(line, needle) != NULL;
	if (f)
		fclose(f);
	return n;
}

void tu_daemon_kill(struct tu_daemon *d)
{
	if (d->pid > 0) {
		kill(d->pid, SIGKILL);
		waitpid(d->pid, NULL, 0);
		d->pid = 0;
	}
	notify_close(d);
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

void tu_daemon_dump(struct tu_daemon *d)
{
	FILE *f = fopen(d->log, "r");
	char line[4096];

	fprintf(stderr, "--- shmbusd log (%s) ---\n", d->log);
	while (f && fgets(line, sizeof line, f))
		fputs(line, stderr);
	if (f)
		fclose(f);
	pthread_mutex_lock(&d->lock);
	fprintf(stderr, "--- notifications (the last 600 bytes) ---\n%s---\n",
		d->notes + (d->notes_len > 600 ? d->notes_len - 600 : 0));
	pthread_mutex_unlock(&d->lock);
}
