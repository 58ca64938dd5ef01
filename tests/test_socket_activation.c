/*
 * test_socket_activation.c - shmbusd started on the first connection to
 * its control socket (systemd/shmbusd.socket; docs/operations.md,
 * "Starting on demand"):
 *
 *  - the socket unit, beside the service as `make install` renders it,
 *    passes `systemd-analyze verify` (a misspelt key does not);
 *  - with systemd-socket-activate listening at <root>/control (what
 *    systemd does for the unit, without needing PID 1), opening the bus
 *    starts the daemon, which serves the passed socket: the client
 *    registers, asks STATUS and creates a topic through it, and the
 *    socket file, systemd's, is left in place when the daemon stops;
 *  - a socket passed for another path is refused with a message naming
 *    ListenSequentialPacket=;
 *  - a daemon that is alive but stopped (SIGSTOP), or a socket nobody
 *    listens on (a daemon killed -9), never makes a client wait: it works
 *    without the daemon at once, as before.
 *
 * Tests skip, saying why, where the tools are missing.  Processes are
 * killed by pid; every wait has a deadline.
 */
#include "test_daemon.h"

#include <libgen.h>
#include <limits.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>


struct sa_env {
	char *dir;                  /* the root */
	char log[PATH_MAX];         /* the activated daemon's output */
	pid_t pid;                  /* systemd-socket-activate, then shmbusd */
	struct tu_daemon d;
};

static int setup(void **state)
{
	static struct sa_env env;

	memset(&env, 0, sizeof env);
	env.dir = tu_tmpdir("activate");
	snprintf(env.log, sizeof env.log, "%s.log", env.dir);
	*state = &env;
	return 0;
}

static int teardown(void **state)
{
	struct sa_env *e = *state;

	if (e->pid > 0) {
		kill(e->pid, SIGCONT);
		kill(e->pid, SIGKILL);
		waitpid(e->pid, NULL, 0);
	}
	tu_daemon_kill(&e->d);
	if (e->d.log[0])
		unlink(e->d.log);
	unlink(e->log);
	tu_rmrf(e->dir);
	free(e->dir);
	return 0;
}

static bool have(const char *tool)
{
	char cmd[256];

	snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", tool);
	return system(cmd) == 0;
}

/* A shell command's exit status; its output in *out (malloc'd). */
static int sh(const char *cmd, char **out)
{
	char full[PATH_MAX * 4];
	size_t len = 0, cap = 1 << 16;
	char *buf = calloc(1, cap);
	FILE *p;
	int st;

	snprintf(full, sizeof full, "%s 2>&1", cmd);
	fflush(NULL);
	p = popen(full, "r");
	if (!p)
		fail_msg("popen %s: %s", cmd, strerror(errno));
	while (len + 1 < cap) {
		size_t n = fread(buf + len, 1, cap - 1 - len, p);

		if (n == 0)
			break;
		len += n;
	}
	buf[len] = '\0';
	st = pclose(p);
	*out = buf;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static bool exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/* ------------------------------------------------------------------ */

static void socket_unit_verifies(void **state)
{
	struct sa_env *e = *state;
	char cmd[PATH_MAX * 4], real[PATH_MAX], src[PATH_MAX], *out;
	int st;

	if (!have("systemd-analyze"))
		tu_skip("systemd-analyze is not installed (Debian: systemd)");
	if (!realpath(tu_daemon_path(), real))
		tu_skip("the daemon %s is not built ($SHMBUSD)", tu_daemon_path());
	snprintf(src, sizeof src, "%s/systemd", tu_srcdir());
	/* the service as make install renders it, beside the socket */
	snprintf(cmd, sizeof cmd,
		 "set -e; sed -e 's|@SBINDIR@|%s|g' -e 's|@SYSCONFDIR@|/usr/local/etc|g' "
		 "-e 's|@DOCDIR@|/usr/local/share/doc/shmbus|g' %s/shmbusd.service.in > "
		 "%s/shmbusd.service; cp %s/shmbusd.socket %s/; "
		 "systemd-analyze verify --man=no %s/shmbusd.socket %s/shmbusd.service",
		 dirname(real), src, e->dir, src, e->dir, e->dir, e->dir);
	st = sh(cmd, &out);
	if (st != 0 && (strstr(out, "Failed to connect") || strstr(out, "not been booted")))
		tu_skip("systemd-analyze verify cannot run here: %s", out);
	if (st != 0 || out[0])
		fail_msg("%s: exit %d:\n%s", cmd, st, out);
	free(out);
	/* it has teeth */
	snprintf(cmd, sizeof cmd, "sed -i 's/^SocketMode=/SocketMod=/' %s/shmbusd.socket && "
		 "systemd-analyze verify --man=no %s/shmbusd.socket", e->dir, e->dir);
	sh(cmd, &out);
	assert_non_null(strstr(out, "Unknown key"));
	free(out);
	/* what the daemon and the clients rely on */
	snprintf(cmd, sizeof cmd, "%s/shmbusd.socket", src);
	out = slurp(cmd);
	assert_non_null(strstr(out, "\nListenSequentialPacket=/dev/shm/shmbus/control\n"));
	assert_non_null(strstr(out, "\nSocketGroup=shmbus\n"));
	free(out);
}

/* Does a socket listen at path?  From /proc/net/unix (Flags 00010000:
 * accepting), so that asking does not connect, which would start the
 * daemon. */
static bool listening(const char *path)
{
	FILE *f = fopen("/proc/net/unix", "r");
	char line[PATH_MAX + 128], p[PATH_MAX];
	bool found = false;

	while (f && !found && fgets(line, sizeof line, f)) {
		unsigned long flags;

		if (sscanf(line, "%*s %*s %*s %lx %*s %*s %*s %4095s", &flags, p) == 2 &&
		    !strcmp(p, path) && (flags & 0x10000))
			found = true;
	}
	if (f)
		fclose(f);
	return found;
}

/* Start `systemd-socket-activate --seqpacket -l LISTEN shmbusd --root
 * ROOT`, its output to the log; wait until it listens. */
static void activator(struct sa_env *e, const char *listen_path)
{
	char daemon[PATH_MAX];

	if (!have("systemd-socket-activate"))
		tu_skip("systemd-socket-activate is not installed (Debian: systemd)");
	if (!realpath(tu_daemon_path(), daemon))
		tu_skip("the daemon %s is not built ($SHMBUSD)", tu_daemon_path());
	fflush(NULL);
	e->pid = fork();
	if (e->pid < 0)
		fail_msg("fork: %s", strerror(errno));
	if (e->pid == 0) {
		int fd = open(e->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

		if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
			_exit(127);
		unsetenv("NOTIFY_SOCKET");
		execlp("systemd-socket-activate", "systemd-socket-activate", "--seqpacket", "-l",
		       listen_path, daemon, "--root", e->dir, (char *)NULL);
		_exit(127);
	}
	for (int64_t end = tu_ms() + 5000; !listening(listen_path); mp_sleep_us(2000))
		if (tu_ms() > end)
			fail_msg("systemd-socket-activate did not listen at %s:\n%s", listen_path,
				 slurp(e->log));
}

/* The program pid runs now ("shmbusd", or the activator still). */
static void comm_of(pid_t pid, char *buf, size_t len)
{
	char path[64], *text;

	snprintf(path, sizeof path, "/proc/%d/comm", (int)pid);
	text = slurp(path);
	text[strcspn(text, "\n")] = '\0';
	snprintf(buf, len, "%s", text);
	free(text);
}

static bool log_has(const char *log, const char *needle, int ms)
{
	for (int64_t end = tu_ms() + ms;; mp_sleep_us(5000)) {
		char *text = slurp(log);
		bool found = strstr(text, needle) != NULL;

		free(text);
		if (found || tu_ms() > end)
			return found;
	}
}

static void first_connection_starts_the_daemon(void **state)
{
	struct sa_env *e = *state;
	SHMBUS_OPTS(shmbus_daemon_status, ds);
	SHMBUS_OPTS(shmbus_topic_opts, to, .partitions = 2, .capacity = 1 << 16);
	char control[PATH_MAX], comm[64];
	shmbus *bus;
	int st;

	shmbus_close(tu_open(e->dir)); /* a root with its bus file, and no daemon */
	snprintf(control, sizeof control, "%s/control", e->dir);
	activator(e, control);
	comm_of(e->pid, comm, sizeof comm);
	assert_string_equal(comm, "systemd-socket-"); /* nothing started yet */

	bus = tu_open(e->dir); /* connects: the daemon starts */
	assert_ok(shmbus_daemon_status(bus, &ds));
	assert_int_equal(ds.pid, e->pid); /* exec'd in the activator's place */
	assert_string_equal(ds.control_socket, control);
	comm_of(e->pid, comm, sizeof comm);
	assert_string_equal(comm, "shmbusd");
	assert_true(log_has(e->log, "passed by systemd (socket activation)", 1000));
	assert_ok(shmbus_topic_create(bus, "activated", &to));
	assert_true(log_has(e->log, "created topic \"activated\"", 2000));
	shmbus_close(bus);

	kill(e->pid, SIGTERM);
	st = tu_wait(e->pid, 5000);
	e->pid = 0;
	assert_int_equal(st, 0);
	assert_true(exists(control)); /* systemd's file: it removes it, not the daemon */
}

static void a_socket_for_another_path_is_refused(void **state)
{
	struct sa_env *e = *state;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, st;

	shmbus_close(tu_open(e->dir));
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s/elsewhere", e->dir);
	activator(e, sa.sun_path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	st = tu_wait(e->pid, 10000);
	e->pid = 0;
	close(fd);
	assert_int_not_equal(st, 0);
	if (!log_has(e->log, "none a SOCK_SEQPACKET socket listening on", 100))
		fail_msg("no clear refusal in the log:\n%s", slurp(e->log));
	assert_true(log_has(e->log, "set ListenSequentialPacket=", 100));
}

/* Open, and create a topic, within `ms`: no wait for a daemon. */
static void works_at_once(struct sa_env *e, const char *topic, int ms)
{
	SHMBUS_OPTS(shmbus_topic_opts, to, .capacity = 1 << 16);
	int64_t t0 = tu_ms();
	shmbus *bus = tu_open(e->dir);
	int rc = shmbus_topic_create(bus, topic, &to);

	shmbus_close(bus);
	assert_ok(rc);
	if (tu_ms() - t0 > ms)
		fail_msg("open and create took %lld ms", (long long)(tu_ms() - t0));
}

static void a_silent_or_dead_daemon_is_not_waited_for(void **state)
{
	struct sa_env *e = *state;
	char control[PATH_MAX];

	start_or_fail(&e->d, e->dir, NULL, NULL);
	tu_daemon_signal(&e->d, SIGSTOP);
	mp_sleep_us(5500 * 1000); /* its heartbeat goes stale (protocol.md §1) */
	works_at_once(e, "while-stopped", 1000);
	tu_daemon_signal(&e->d, SIGCONT);
	tu_daemon_kill(&e->d); /* -9: its socket file stays, nobody listening */
	snprintf(control, sizeof control, "%s/control", e->dir);
	assert_true(exists(control));
	works_at_once(e, "after-kill", 1000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(socket_unit_verifies, setup, teardown),
		cmocka_unit_test_setup_teardown(first_connection_starts_the_daemon, setup, teardown),
		cmocka_unit_test_setup_teardown(a_socket_for_another_path_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(a_silent_or_dead_daemon_is_not_waited_for, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
