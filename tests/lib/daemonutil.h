/*
 * daemonutil.h - real shmbusd processes for tests: started on a root with
 * its log captured to a file and its systemd notifications received on a
 * private NOTIFY_SOCKET, so a test knows when it is READY.
 */
#ifndef SHMBUS_DAEMONUTIL_H
#define SHMBUS_DAEMONUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct tu_daemon {
	pid_t pid;
	char root[256];
	char log[300];            /* the daemon's stderr */
	char notify_path[108];    /* its NOTIFY_SOCKET */
	int notify_fd;
	char notes[8192];         /* every notification received, newline-separated */
	size_t notes_len;
};

/* The daemon binary: $SHMBUSD, else build/shmbusd. */
const char *tu_daemon_path(void);

/*
 * Start shmbusd --root ROOT [extra args...] (NULL-terminated), with
 * `env` extra environment entries ("NAME=VALUE", NULL-terminated, may be
 * NULL), and wait up to timeout_ms for READY=1.  0, or -1 (the log is
 * printed) if it exited or did not become ready.
 */
int tu_daemon_start(struct tu_daemon *d, const char *root, const char *const *args,
		    const char *const *env, int timeout_ms);

/* Wait for a notification line starting with `prefix`; copies it. */
bool tu_daemon_notified(struct tu_daemon *d, const char *prefix, char *out, size_t len,
			int timeout_ms);

/* SIGTERM and wait; returns its exit status (or 128 + signal, -1). */
int tu_daemon_stop(struct tu_daemon *d, int timeout_ms);

/* kill -9 and reap. */
void tu_daemon_kill(struct tu_daemon *d);

/* Does its log contain needle (waiting up to timeout_ms for it)? */
bool tu_daemon_log_has(struct tu_daemon *d, const char *needle, int timeout_ms);

/* Print its log to stderr (for failing tests). */
void tu_daemon_dump(const struct tu_daemon *d);

#endif
