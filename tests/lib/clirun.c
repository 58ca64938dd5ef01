/*
 * clirun.c - running the real `shmbus` command in tests (clirun.h).
 */
#include "clirun.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "shmbus.h"
#include "testutil.h"

const char *cli_path(void)
{
	const char *p = getenv("SHMBUS_CLI");

	return p && *p ? p : "build/shmbus";
}

void run_free(struct run *r)
{
	free(r->out);
	free(r->err);
	memset(r, 0, sizeof *r);
}

/* Commands started and not yet waited for, killed if a test fails. */
static pid_t running[16];

static void track(pid_t pid, pid_t old)
{
	for (size_t i = 0; i < sizeof running / sizeof running[0]; i++) {
		if (running[i] == old) {
			running[i] = pid;
			return;
		}
	}
}

void reap_children(void)
{
	for (size_t i = 0; i < sizeof running / sizeof running[0]; i++) {
		if (running[i] > 0) {
			kill(running[i], SIGKILL);
			waitpid(running[i], NULL, 0);
			running[i] = 0;
		}
	}
}

/* In the child: its stdio, environment and user, then the command. */
static void exec_child(const struct spawn_opts *o, const char **argv, int in, int out, int err)
{
	dup2(in, 0);
	dup2(out, 1);
	dup2(err, 2);
	if (o->env_root)
		setenv("SHMBUS_ROOT", o->env_root, 1);
	else
		unsetenv("SHMBUS_ROOT");
	if (o->as_nobody && (setgroups(0, NULL) || setgid(65534) || setuid(65534))) {
		fprintf(stderr, "cannot become nobody: %s\n", strerror(errno));
		_exit(127);
	}
	execv(argv[0], (char *const *)argv);
	fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

struct child spawn_as(const struct spawn_opts *o, const char *const *args)
{
	const char *argv[64];
	int in[2], out[2], err[2], n = 0;
	struct child c;

	argv[n++] = cli_path();
	if (o->root) {
		argv[n++] = "--root";
		argv[n++] = o->root;
	}
	for (; *args && n < 63; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC))
		fail_msg("pipe: %s", strerror(errno));
	fflush(NULL);
	c.pid = fork();
	if (c.pid < 0)
		fail_msg("fork: %s", strerror(errno));
	if (c.pid == 0)
		exec_child(o, argv, in[0], out[1], err[1]);
	track(c.pid, 0);
	close(in[0]);
	close(out[1]);
	close(err[1]);
	c.in = in[1];
	c.out = out[0];
	c.err = err[0];
	fcntl(c.in, F_SETFL, O_NONBLOCK);
	return c;
}

struct child spawn(const char *root, const char *env_root, const char *const *args)
{
	struct spawn_opts o = { .root = root, .env_root = env_root };

	return spawn_as(&o, args);
}

static void append(char **buf, size_t *len, const char *data, size_t n)
{
	*buf = realloc(*buf, *len + n + 1);
	assert_non_null(*buf);
	memcpy(*buf + *len, data, n);
	*len += n;
	(*buf)[*len] = '\0';
}

/* Read what is ready on fd into buf; close it at EOF. */
static void drain(int *fd, char **buf, size_t *len)
{
	char chunk[65536];
	ssize_t n = read(*fd, chunk, sizeof chunk);

	if (n > 0) {
		append(buf, len, chunk, (size_t)n);
	} else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
		close(*fd);
		*fd = -1;
	}
}

/*
 * Feed in[0, in_len) to the child and collect its output until both
 * outputs close or the deadline passes; stop early (return true) once
 * stdout holds `until_lines` lines (0: never).
 */
bool pump(struct child *c, struct run *r, const char *in, size_t in_len,
		 int64_t deadline, int until_lines)
{
	size_t sent = 0;

	while (c->out >= 0 || c->err >= 0) {
		struct pollfd p[3] = { { c->out, POLLIN, 0 }, { c->err, POLLIN, 0 },
				       { c->in, POLLOUT, 0 } };
		int64_t left = deadline - tu_ms();

		if (c->in >= 0 && sent == in_len) {
			close(c->in);
			c->in = p[2].fd = -1;
		}
		if (left <= 0)
			return false;
		if (poll(p, 3, (int)(left < 100 ? left : 100)) < 0 && errno != EINTR)
			fail_msg("poll: %s", strerror(errno));
		if (p[0].revents)
			drain(&c->out, &r->out, &r->out_len);
		if (p[1].revents)
			drain(&c->err, &r->err, &r->err_len);
		if (p[2].revents & POLLOUT) {
			ssize_t n;

			/* a child that exits before reading its stdin (an
			 * argument error) would kill this test with SIGPIPE */
			signal(SIGPIPE, SIG_IGN);
			n = write(c->in, in + sent, in_len - sent);
			if (n > 0)
				sent += (size_t)n;
			else if (n < 0 && errno == EPIPE)
				sent = in_len;
		} else if (p[2].revents) { /* the child closed its stdin */
			sent = in_len;
		}
		if (until_lines) {
			int lines = 0;

			for (size_t i = 0; i < r->out_len; i++)
				lines += r->out[i] == '\n';
			if (lines >= until_lines)
				return true;
		}
	}
	return true;
}

void finish(struct child *c, struct run *r, int64_t deadline)
{
	int64_t left = deadline - tu_ms();

	if (c->in >= 0)
		close(c->in);
	if (c->out >= 0)
		close(c->out);
	if (c->err >= 0)
		close(c->err);
	r->status = tu_wait(c->pid, left > 0 ? (int)left : 1);
	track(0, c->pid);
	if (!r->out)
		append(&r->out, &r->out_len, "", 0);
	if (!r->err)
		append(&r->err, &r->err_len, "", 0);
}

/* Run the command to its end with input `in`; kill it after the timeout. */
void run_in(struct run *r, const char *root, const char *env_root, const char *in,
		   size_t in_len, int timeout_ms, const char *const *args)
{
	int64_t deadline = tu_ms() + timeout_ms;
	struct child c;

	memset(r, 0, sizeof *r);
	c = spawn(root, env_root, args);
	if (!pump(&c, r, in ? in : "", in ? in_len : 0, deadline, 0))
		kill(c.pid, SIGKILL);
	finish(&c, r, deadline);
}

size_t len_of(const char *s)
{
	return s ? strlen(s) : 0;
}

/* Fail showing what the command said, unless it exited with `status`. */
void expect_status(const struct run *r, int status, const char *what)
{
	if (r->status != status)
		fail_msg("%s: exit status %d, expected %d\n--- stdout:\n%s\n--- stderr:\n%s", what,
			 r->status, status, r->out, r->err);
}

void expect_contains(const char *text, const char *needle, const char *what)
{
	if (!strstr(text, needle))
		fail_msg("%s: \"%s\" not found in:\n%s", what, needle, text);
}

void expect_output(const struct run *r, const char *want, const char *what)
{
	if (r->out_len != strlen(want) || memcmp(r->out, want, r->out_len))
		fail_msg("%s: stdout is\n[%s]\nexpected\n[%s]\nstderr:\n%s", what, r->out, want,
			 r->err);
}

/* Does the table in text hold a line with these cells?  Runs of spaces
 * count as one, so the test does not depend on column widths. */
void expect_row(const char *text, const char *cells, const char *what)
{
	char *sq = malloc(strlen(text) + 2), *o = sq;

	assert_non_null(sq);
	*o++ = '\n';
	for (const char *t = text; *t; t++) {
		if (*t == ' ' && (o[-1] == ' ' || o[-1] == '\n'))
			continue;
		if (*t == '\n' && o[-1] == ' ')
			o--;
		*o++ = *t;
	}
	*o = '\0';
	if (!strstr(sq, cells))
		fail_msg("%s: no row \"%s\" in:\n%s", what, cells + 1, text);
	free(sq);
}

int count_lines(const char *s)
{
	int n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

int64_t realtime_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/* The command line, for messages. */
const char *joined(const char *const *args)
{
	static char buf[512];
	size_t len = 0;

	buf[0] = '\0';
	for (; *args && len < sizeof buf; args++)
		len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%s", len ? " " : "", *args);
	return buf;
}

void expect_consume(const char *root, const char *want, const char *const *args)
{
	struct run r;

	run_in(&r, root, NULL, NULL, 0, RUN_TIMEOUT_MS, args);
	expect_ok(&r, joined(args));
	expect_output(&r, want, joined(args));
	run_free(&r);
}

/* A topic made with the command, failing the test if it cannot be. */
void make_topic(const char *root, const char *name, const char *partitions,
		       const char *capacity)
{
	struct run r;

	CLI(&r, root, NULL, "topic", "create", name, "--partitions", partitions, "--capacity",
	    capacity);
	expect_ok(&r, "topic create");
	run_free(&r);
}

int64_t committed(const char *root, const char *group, const char *topic, int32_t p)
{
	SHMBUS_OPTS(shmbus_consumer_opts, o, .group = group);
	shmbus *bus = tu_open(root);
	shmbus_consumer *c = NULL;
	uint64_t off = 0;
	int rc;

	assert_ok(shmbus_consumer_new(bus, &o, &c));
	rc = shmbus_consumer_committed(c, topic, p, &off);
	shmbus_consumer_free(c);
	shmbus_close(bus);
	return rc < 0 ? -1 : (int64_t)off;
}

void produce(const char *root, const char *topic, const char *in, const char *part)
{
	struct run r;

	if (part)
		CLI(&r, root, in, "produce", topic, "-p", part);
	else
		CLI(&r, root, in, "produce", topic);
	expect_ok(&r, "produce");
	assert_int_equal(r.out_len, 0); /* silent on success */
	run_free(&r);
}

void expect_all(const char *root, const struct expectation *e, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct run r;

		run_in(&r, root, NULL, NULL, 0, RUN_TIMEOUT_MS, e[i].args);
		expect_status(&r, e[i].status, joined(e[i].args));
		if (e[i].out)
			expect_contains(r.out, e[i].out, joined(e[i].args));
		if (e[i].err)
			expect_contains(r.err, e[i].err, joined(e[i].args));
		run_free(&r);
	}
}
