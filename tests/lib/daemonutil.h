/*
 * daemonutil.h - real shmbusd processes for tests: started on a root with
 * its log captured to a file and its systemd notifications received on a
 * private NOTIFY_SOCKET, so a test knows when it is READY.
 *
 * A thread per daemon reads the socket all the time, as systemd does: a
 * datagram socket nobody reads holds 10 messages
 * (net.unix.max_dgram_qlen), after which the daemon's sd_notify() blocks
 * and its event loop with it.
 */
#ifndef SHMBUS_DAEMONUTIL_H
#define SHMBUS_DAEMONUTIL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct tu_daemon {
	pid_t pid;
	char root[256];
	char log[300];            /* the daemon's stderr */
	char notify_path[108];    /* its NOTIFY_SOCKET */
	int notify_fd;
	char notes[8192];         /* notifications received, newline-separated (the
				   * newest, when there were more); read them with
				   * tu_daemon_notified() or tu_daemon_notes_copy() */
	size_t notes_len;
	pthread_mutex_t lock;     /* notes, between the test and the reader thread */
	pthread_t reader;
	bool reading;
	volatile int stop_reading;
};

/* The daemon binary: $SHMBUSD, else build/shmbusd. */
const char *tu_daemon_path(void);

/*
 * Start shmbusd --root ROOT [extra args...] (NULL-terminated), with
 * `env` extra environment entries ("NAME=VALUE", NULL-terminated, may be
 * NULL), and wait up to timeout_ms for READY=1.  0, or -1 (the log is
 * printed) if it exited or did not become ready.  In an env entry,
 * "@PID@" stands for the daemon's own pid (WATCHDOG_PID=@PID@, which
 * sd_watchdog_enabled() compares with getpid()).
 */
int tu_daemon_start(struct tu_daemon *d, const char *root, const char *const *args,
		    const char *const *env, int timeout_ms);

/*
 * Start `shmbusd --config CONFIG` with no --root flag (the file names
 * the root, which must be `root`: the log goes to ROOT.shmbusd.log), and
 * wait for READY=1 as tu_daemon_start() does.
 */
int tu_daemon_start_config(struct tu_daemon *d, const char *root, const char *config,
			   const char *const *env, int timeout_ms);

/* The same, in the network namespace `netns` (from `ip netns add`): the
 * child joins it with setns() before exec.  For the mirroring tests. */
int tu_daemon_start_config_netns(struct tu_daemon *d, const char *root, const char *config,
				 const char *netns, int timeout_ms);

/*
 * Start shmbusd as tu_daemon_start() does, but do not wait for it; its
 * stderr and stdout go to `log` (NULL: ROOT.shmbusd.log).  For daemons
 * expected to exit (a second daemon on a root, --check-config).  0 or -1.
 */
int tu_daemon_spawn(struct tu_daemon *d, const char *root, const char *log,
		    const char *const *args, const char *const *env);

/* Wait up to timeout_ms for it to exit (killed after); its exit status,
 * 128 + signal, or -1. */
int tu_daemon_wait(struct tu_daemon *d, int timeout_ms);

/* Forget the notifications received so far (to wait for the next READY=1). */
void tu_daemon_notes_clear(struct tu_daemon *d);

/* Copy the notifications received so far into out; returns how many
 * lines start with `prefix` (NULL: all lines). */
int tu_daemon_notes_copy(struct tu_daemon *d, const char *prefix, char *out, size_t len);

/* Send it a signal (SIGHUP: reload). */
void tu_daemon_signal(struct tu_daemon *d, int sig);

/* Number of lines of its log containing needle. */
int tu_daemon_log_count(const struct tu_daemon *d, const char *needle);

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
void tu_daemon_dump(struct tu_daemon *d);

#endif
