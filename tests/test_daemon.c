/*
 * test_daemon.c - real shmbusd processes on temporary roots: its life
 * and its configuration.
 *
 * Each test starts its own daemon(s) through tests/lib/daemonutil.h
 * (the binary is $SHMBUSD), with its log in a file and its systemd
 * notifications on a private NOTIFY_SOCKET, and checks what an operator
 * relies on: start and stop, READY/STATUS/WATCHDOG, journal-friendly
 * log lines, one daemon per root, a root its group can use,
 * configuration errors that name the file, the line and the fix, and
 * SIGHUP reloads.  What the daemon does to partitions is in
 * test_daemon_supervise.c.
 */
#include <ftw.h>
#include <regex.h>

#include "test_daemon.h"

/* ------------------------------------------------------------------ */
/* Start, stop, systemd notifications, log lines                       */

static void test_start_stop(void **state)
{
	struct env *env = *state;
	struct tu_daemon *d = &env->d[0];
	char needle[400];

	start_or_fail(d, env->root, NULL, NULL);
	snprintf(needle, sizeof needle, "serving %s (pid %d)", env->root, (int)d->pid);
	expect_log(d, needle, 1000);
	stop_ok(d);
	expect_log(d, "stopping on signal", 0);
	assert_true(tu_daemon_notified(d, "STOPPING=1", NULL, 0, 0));
	/* the lock is released with it: a new daemon takes the root over */
	start_or_fail(d, env->root, NULL, NULL);
	stop_ok(d);
}

/* READY=1 first, then STATUS= with a summary, then WATCHDOG=1 at half
 * the period asked for in WATCHDOG_USEC (when WATCHDOG_PID is its pid). */
static void test_notify_ready_status_watchdog(void **state)
{
	struct env *env = *state;
	struct tu_daemon *d = &env->d[0];
	const char *envv[] = { "WATCHDOG_USEC=200000", "WATCHDOG_PID=@PID@", NULL };
	char status[512], notes[8192];
	int pings;

	start_or_fail(d, env->root, NULL, envv);
	tu_daemon_notes_copy(d, NULL, notes, sizeof notes);
	if (strncmp(notes, "READY=1", 7) != 0)
		fail_msg("the first notification is not READY=1: %s", notes);
	if (!tu_daemon_notified(d, "STATUS=", status, sizeof status, 2000))
		fail_msg("no STATUS= within 2 s");
	assert_true(strlen(status) > strlen("STATUS=") + 3);
	if (!tu_daemon_notified(d, "WATCHDOG=1", NULL, 0, 1000))
		fail_msg("no WATCHDOG=1 within 1 s with WatchdogSec=200ms");
	/* pings keep coming, about every 100 ms */
	tu_daemon_notes_clear(d);
	mp_sleep_us(1000000);
	pings = tu_daemon_notes_copy(d, "WATCHDOG=1", NULL, 0);
	if (pings < 5)
		fail_msg("%d WATCHDOG=1 in 1 s, expected about 10", pings);
	stop_ok(d);
}

/* WATCHDOG_PID naming another process: the watchdog is not ours. */
static void test_watchdog_only_when_asked(void **state)
{
	struct env *env = *state;
	struct tu_daemon *d = &env->d[0];
	const char *envv[] = { "WATCHDOG_USEC=200000", "WATCHDOG_PID=1", NULL };

	start_or_fail(d, env->root, NULL, envv);
	assert_false(tu_daemon_notified(d, "WATCHDOG=1", NULL, 0, 600));
	stop_ok(d);
}

/* Under systemd (JOURNAL_STREAM names stderr) a line is "<N>message":
 * the journal adds the time; elsewhere "YYYY-MM-DD HH:MM:SS.mmm level: ".
 * One event per line, and --log-level filters. */
static void test_log_lines(void **state)
{
	struct env *env = *state;
	struct tu_daemon *d = &env->d[0];
	char log[300], js[80], line[4096];
	const char *lvl_args[] = { "--log-level", "notice", NULL };
	const char *envv[] = { js, NULL };
	regex_t stamped, journal;
	struct stat st;
	FILE *f;
	int n = 0;

	assert_int_equal(regcomp(&stamped, "^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}"
				 "\\.[0-9]{3} (error|warning|notice|info|debug): [^ ]", REG_EXTENDED), 0);
	assert_int_equal(regcomp(&journal, "^<[0-7]>[^0-9<]", REG_EXTENDED), 0);

	/* on a terminal or in a file: stamped, with the level's name */
	start_or_fail(d, env->root, NULL, NULL);
	stop_ok(d);
	f = fopen(d->log, "r");
	while (f && fgets(line, sizeof line, f)) {
		n++;
		if (regexec(&stamped, line, 0, NULL, 0) != 0)
			fail_msg("not a stamped log line: %s", line);
	}
	if (f)
		fclose(f);
	assert_true(n >= 3);
	assert_true(tu_daemon_log_has(d, "info: supervising 0 partitions", 0));

	/* under systemd: the journal's priority prefix and no time */
	snprintf(log, sizeof log, "%s.shmbusd.log", env->root);
	write_file(log, "");
	assert_int_equal(stat(log, &st), 0);
	snprintf(js, sizeof js, "JOURNAL_STREAM=%lu:%lu", (unsigned long)st.st_dev,
		 (unsigned long)st.st_ino);
	start_or_fail(d, env->root, lvl_args, envv);
	stop_ok(d);
	n = 0;
	f = fopen(d->log, "r");
	while (f && fgets(line, sizeof line, f)) {
		n++;
		if (regexec(&journal, line, 0, NULL, 0) != 0)
			fail_msg("not a journal line (\"<N>message\", no time): %s", line);
	}
	if (f)
		fclose(f);
	assert_true(n >= 2);
	assert_true(tu_daemon_log_has(d, "<5>shmbusd ", 0));
	assert_true(tu_daemon_log_has(d, "<5>stopping on signal", 0));
	/* --log-level notice: no info lines */
	assert_false(tu_daemon_log_has(d, "<6>", 0));
	regfree(&stamped);
	regfree(&journal);
}

/* ------------------------------------------------------------------ */
/* One daemon per root                                                 */

static void test_second_daemon_refused(void **state)
{
	struct env *env = *state;
	struct tu_daemon *first = &env->d[0], *second = &env->d[1];
	char log[400], needle[400];
	shmbus *bus;
	int st;

	start_or_fail(first, env->root, NULL, NULL);
	snprintf(log, sizeof log, "%s/second.log", env->scratch);
	assert_int_equal(tu_daemon_spawn(second, env->root, log, NULL, NULL), 0);
	st = tu_daemon_wait(second, STOP_MS);
	if (st <= 0 || st >= 128) {
		tu_daemon_dump(second);
		fail_msg("a second shmbusd on the same root exited with %d, not an error", st);
	}
	snprintf(needle, sizeof needle, "another shmbusd already serves %s", env->root);
	expect_log(second, needle, 0);
	snprintf(needle, sizeof needle, "pid %d", (int)first->pid);
	expect_log(second, needle, 0);
	assert_false(tu_daemon_notified(second, "READY=1", NULL, 0, 0));
	/* the first is untouched and still serves: a client that registers
	 * shows in its status (the second daemon never became one) */
	assert_int_equal(kill(first->pid, 0), 0);
	tu_daemon_notes_clear(first);
	bus = tu_open(env->root);
	assert_true(tu_daemon_notified(first, "STATUS=0 partitions, 1 client,", NULL, 0, 2000));
	shmbus_close(bus);
	stop_ok(first);
}

/* ------------------------------------------------------------------ */
/* The root's permissions                                              */

/* A client with the common umask 022 creating a topic and a group. */
static int umask022_client(void *argp)
{
	const char *root = argp;
	SHMBUS_OPTS(shmbus_consumer_opts, co, .group = "billing");
	shmbus_consumer *c = NULL;
	shmbus *bus;

	umask(022);
	bus = mp_open(root);
	CHILD_CHECK(shmbus_topic_create(bus, "orders", NULL) == 0, "topic_create");
	CHILD_CHECK(shmbus_consumer_new(bus, &co, &c) == 0, "consumer_new");
	CHILD_CHECK(shmbus_consumer_assign(c, "orders", 0, 0) == 0, "assign");
	CHILD_CHECK(shmbus_consumer_commit_offset(c, "orders", 0, 0) == 0, "commit");
	shmbus_consumer_free(c);
	shmbus_close(bus);
	return 0;
}

static int perm_bad;

/* Directories: the group may create files in them (and they pass the
 * group on); files: the group may write them, except the counters, which
 * only the daemon writes. */
static int group_rw_check(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	bool daemon_only = !strcmp(path + ftw->base, "counters");
	mode_t need = S_ISDIR(st->st_mode) ? (S_IRWXG | S_ISGID)
					   : (S_IRGRP | (daemon_only ? 0 : S_IWGRP));

	(void)flag;
	if (S_ISSOCK(st->st_mode) || (st->st_mode & need) == need)
		return 0;
	print_error("%s: mode %04o: members of the root's group cannot %s it\n", path,
		    st->st_mode & 07777, S_ISDIR(st->st_mode) ? "create files in" : "write");
	perm_bad++;
	return 0;
}

/* A root set up as tmpfiles.d does (2770, a group) and served as the unit
 * does (UMask=0007): whatever a member creates in it, the others can use,
 * whatever its umask. */
static void test_root_group_writable(void **state)
{
	struct env *env = *state;
	struct tu_daemon *d = &env->d[0];
	mode_t old;
	pid_t pid;

	assert_int_equal(chmod(env->root, 02770), 0);
	old = umask(007);
	start_or_fail(d, env->root, NULL, NULL);
	umask(old);
	pid = mp_spawn(umask022_client, env->root);
	mp_wait_ok(&pid, 1, 10000, "client");
	perm_bad = 0;
	assert_int_equal(nftw(env->root, group_rw_check, 16, FTW_PHYS), 0);
	if (perm_bad)
		fail_msg("files of the root are not usable by the root's group (see above)");
	stop_ok(d);
}

/* ------------------------------------------------------------------ */
/* Configuration                                                       */

/* Run shmbusd --config FILE --check-config; its exit status, output in *out. */
static int check_config(struct env *env, const char *file, char **out)
{
	struct tu_daemon *d = &env->d[2];
	const char *args[] = { "--config", file, "--check-config", NULL };
	char log[400];
	int st;

	snprintf(log, sizeof log, "%s/check.log", env->scratch);
	assert_int_equal(tu_daemon_spawn(d, env->root, log, args, NULL), 0);
	st = tu_daemon_wait(d, STOP_MS);
	*out = slurp(log);
	return st;
}

static void test_check_config_good(void **state)
{
	struct env *env = *state;
	const char *f = conf(env, "good.conf",
			     "; every section, keys with values other than the defaults\n"
			     "[daemon]\n"
			     "log_level = debug\n"
			     "unblock_timeout_ms = 500\n"
			     "tick_ms = 50\n"
			     "admin_group = root\n"
			     "metrics = 127.0.0.1:9465\n"
			     "file_mode = 0640\n"
			     "\n"
			     "[flush]\n"
			     "interval_ms = 200\n"
			     "records = 10000\n"
			     "[retention]\n"
			     "default_ms = 3600000\n"
			     "[topic orders]\n"
			     "partitions = 4\n"
			     "capacity = 1M\n"
			     "policy = backpressure\n"
			     "retention_ms = 60000\n"
			     "numa_node = -1\n"
			     "[topic audit.log]\n"
			     "capacity = 64K\n"
			     "[mirror-listen]\n"
			     "address = 127.0.0.1:9093\n"
			     "tls = off\n"
			     "min_mirrors = 2\n"
			     "[mirror \"from-a\"]\n"
			     "source = 10.0.0.1:9093\n"
			     "topics = orders\n"
			     "tls = off\n"
			     "ack = flushed\n");
	char *out;
	int st = check_config(env, f, &out);

	if (st != 0)
		fail_msg("--check-config of a good file: exit %d: %s", st, out);
	assert_non_null(strstr(out, "the configuration is valid"));
	assert_non_null(strstr(out, "2 declared topics"));
	free(out);
}

/* The commented example installed as /etc/shmbus/shmbusd.conf.example is
 * valid as it is, and still valid with every key uncommented: each shows
 * its default. */
static void test_example_config(void **state)
{
	struct env *env = *state;
	const char *src = getenv("SHMBUS_SRCDIR");
	char path[400], *text, *out, *p;
	int st;

	snprintf(path, sizeof path, "%s/systemd/shmbusd.conf.example", src ? src : ".");
	if (access(path, R_OK) < 0)
		tu_skip("%s not found (run from the source tree or set SHMBUS_SRCDIR)", path);
	st = check_config(env, path, &out);
	if (st != 0)
		fail_msg("--check-config %s: exit %d: %s", path, st, out);
	free(out);
	/* uncomment "#key = value" and "#[topic NAME]" lines */
	text = slurp(path);
	for (p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
		if (p[0] == '#' && (p[1] == '[' || (p[1] >= 'a' && p[1] <= 'z' &&
						     strcspn(p, "\n") > strcspn(p, "=")))) {
			memmove(p, p + 1, strlen(p + 1) + 1);
		}
	}
	st = check_config(env, conf(env, "uncommented.conf", text), &out);
	if (st != 0)
		fail_msg("the example with every key uncommented (its defaults) is refused: exit "
			 "%d: %s", st, out);
	assert_non_null(strstr(out, "1 declared topic"));
	free(out);
	free(text);
}

/* The examples of docs/shmbusd.conf.md are valid files. */
static void test_doc_examples(void **state)
{
	struct env *env = *state;
	const char *src = getenv("SHMBUS_SRCDIR");
	char path[400], name[32], *doc, *p;
	int n = 0;

	snprintf(path, sizeof path, "%s/docs/shmbusd.conf.md", src ? src : ".");
	if (access(path, R_OK) < 0)
		tu_skip("%s not found (run from the source tree or set SHMBUS_SRCDIR)", path);
	doc = slurp(path);
	for (p = strstr(doc, "```ini\n"); p; p = strstr(p, "```ini\n")) {
		char *start = p + 7, *end = strstr(start, "```"), *out, *g;
		int st;

		assert_non_null(end);
		*end = '\0';
		/* a group named in an example need not exist here: comment it out */
		for (g = start; (g = strstr(g, "\nadmin_group")); g++)
			g[1] = '#';
		snprintf(name, sizeof name, "doc%d.conf", n++);
		st = check_config(env, conf(env, name, start), &out);
		if (st != 0)
			fail_msg("the example %d of %s is refused: %s\n%s", n, path, out, start);
		free(out);
		p = end + 1;
	}
	assert_true(n >= 3);
	free(doc);
}

struct bad_conf {
	const char *what, *text, *expect;   /* expect follows "FILE:" */
};

static void test_check_config_errors(void **state)
{
	struct env *env = *state;
	static const struct bad_conf bad[] = {
		{ "unknown key", "[daemon]\nlog_level = info\nunblock_timeout = 5\n",
		  "3: unblock_timeout: unknown key in [daemon]; see docs/shmbusd.conf.md" },
		{ "bad number", "[daemon]\n\ntick_ms = 10x\n",
		  "3: tick_ms: \"10x\" is not a number of milliseconds between 1 and 60000; "
		  "write e.g. 100" },
		{ "number out of range", "[daemon]\nunblock_timeout_ms = 5\n",
		  "2: unblock_timeout_ms: \"5\" is not a number of milliseconds between 10" },
		{ "bad section", "[daemon]\ntick_ms = 100\n[deamon]\nlog_level = info\n",
		  "4: deamon: unknown section; use [daemon], [flush], [retention], [kernel-events], "
		  "[topic NAME], "
		  "[mirror-listen] or [mirror \"NAME\"]" },
		{ "tls on without credentials", "[mirror-listen]\naddress = 127.0.0.1:9093\ntls = on\n",
		  " [mirror-listen] has tls = on but no cert (this host's certificate): give cert, "
		  "key and ca (PEM files), or psk_file" },
		{ "tls maybe", "[mirror-listen]\naddress = 127.0.0.1:9093\ntls = yes\n",
		  "3: tls: \"yes\" is not on or off; write tls = on (with cert, key and ca, or "
		  "psk_file), or tls = off for plain TCP" },
		{ "bad source", "[mirror \"a\"]\nsource = nowhere\n",
		  "2: source: \"nowhere\" is not HOST:PORT; write e.g. 10.0.0.1:9093" },
		{ "bad pattern", "[mirror \"a\"]\ntopics = orders, a/b\n",
		  "2: topics: \"orders, a/b\" is not a list of topic names and patterns" },
		{ "plaintext not said", "[mirror-listen]\naddress = 127.0.0.1:9093\n",
		  " [mirror-listen] has no tls key: write tls = off to serve mirrors over plain TCP, "
		  "or tls = on with cert, key and ca (or psk_file)" },
		{ "mirror without topics", "[mirror \"a\"]\nsource = 10.0.0.1:9093\ntls = off\n",
		  " [mirror \"a\"] has no topics (names and patterns)" },
		{ "bad resync", "[mirror \"a\"]\nresync = yes\n",
		  "2: resync: \"yes\" is not on or off; write resync = off" },
		{ "bad mirror key", "[mirror-listen]\nport = 9093\n",
		  "2: port: unknown key in [mirror-listen]; use address, tls, cert, key, ca, allow, "
		  "psk_file, timeout_ms or min_mirrors" },
		{ "min_mirrors 0", "[mirror-listen]\nmin_mirrors = 0\n",
		  "2: min_mirrors: \"0\" is not a number of mirrors between 1 and 64" },
		{ "bad ack", "[mirror \"a\"]\nack = written\n",
		  "2: ack: \"written\" is not appended or flushed" },
		{ "bad policy", "[topic orders]\npartitions = 2\npolicy = fifo\n",
		  "3: policy: \"fifo\" is not a policy; use overwrite or backpressure" },
		{ "bad level", "[daemon]\nlog_level = verbose\n",
		  "2: log_level: \"verbose\" is not a level; use error, warning, notice, info or debug" },
		{ "bad size", "[topic t]\ncapacity = 16Q\n",
		  "2: capacity: \"16Q\" is not a size; write e.g. 64M" },
		{ "bad flush key", "[flush]\nms = 5\n",
		  "2: ms: unknown key in [flush]; use interval_ms or records" },
		{ "bad topic name", "[topic a/b]\npartitions = 1\n",
		  "2: [topic]: \"a/b\" is not a topic name" },
		{ "not INI", "[daemon]\nlog_level info\n",
		  "2: not a line of an INI file (KEY = VALUE, or [SECTION])" },
		{ "unknown group", "[daemon]\nadmin_group = no-such-group-xyz\n",
		  "2: admin_group: no group named \"no-such-group-xyz\"; create it or fix the name" },
	};

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char name[32], want[600], *out;
		const char *f;
		int st;

		snprintf(name, sizeof name, "bad%zu.conf", i);
		f = conf(env, name, bad[i].text);
		st = check_config(env, f, &out);
		if (st != 2)
			fail_msg("%s: --check-config exit %d, not 2: %s", bad[i].what, st, out);
		snprintf(want, sizeof want, "%s:%s", f, bad[i].expect);
		if (!strstr(out, want))
			fail_msg("%s: the message\n  %s\ndoes not say\n  %s", bad[i].what, out, want);
		free(out);
	}
	/* a file that cannot be read */
	{
		char *out, want[600];
		int st;

		snprintf(want, sizeof want, "%s/none.conf", env->scratch);
		st = check_config(env, want, &out);
		assert_int_equal(st, 2);
		strcat(want, ": cannot read the configuration: No such file or directory");
		if (!strstr(out, want))
			fail_msg("missing file: \"%s\" does not say \"%s\"", out, want);
		free(out);
	}
}

/* shmbusd ARGS... --check-config; its exit status, output in *out. */
static int check_args(struct env *env, const char *const *args, char **out)
{
	struct tu_daemon *d = &env->d[2];
	char log[400];
	int st;

	snprintf(log, sizeof log, "%s/check-args.log", env->scratch);
	assert_int_equal(tu_daemon_spawn(d, env->root, log, args, NULL), 0);
	st = tu_daemon_wait(d, STOP_MS);
	*out = slurp(log);
	return st;
}

/* A directory is not a configuration; --metrics is checked as the file's
 * metrics = is. */
static void test_check_config_dir_and_metrics(void **state)
{
	struct env *env = *state;
	const char *good = conf(env, "plain.conf", "[daemon]\ntick_ms = 100\n");
	static const struct { const char *flag, *expect; } metrics[] = {
		{ "nonsense", "--metrics: \"nonsense\" is not ADDR:PORT" },
		{ "127.0.0.1:", "--metrics: \"127.0.0.1:\" is not ADDR:PORT" },
		{ "127.0.0.1:99999", "--metrics: \"127.0.0.1:99999\" is not ADDR:PORT" },
		{ "127.0.0.1:http", "--metrics: \"127.0.0.1:http\" is not ADDR:PORT" },
		{ "300.1.2.3:9465", "--metrics: cannot resolve \"300.1.2.3\"" },
	};
	char want[600], *out;
	int st;

	st = check_args(env, (const char *const[]){ "--config", env->scratch, "--check-config",
						    NULL }, &out);
	snprintf(want, sizeof want, "%s: is a directory, not a configuration file", env->scratch);
	if (st != 2 || !strstr(out, want))
		fail_msg("--config DIR --check-config: exit %d, says\n  %s\nnot\n  %s", st, out, want);
	free(out);

	for (size_t i = 0; i < sizeof metrics / sizeof metrics[0]; i++) {
		st = check_args(env, (const char *const[]){ "--config", good, "--metrics",
							    metrics[i].flag, "--check-config",
							    NULL }, &out);
		if (st != 2 || !strstr(out, metrics[i].expect))
			fail_msg("--metrics %s --check-config: exit %d, says\n  %s\nnot\n  %s",
				 metrics[i].flag, st, out, metrics[i].expect);
		free(out);
	}
	st = check_args(env, (const char *const[]){ "--metrics", "127.0.0.1:0", "--check-config",
						    NULL }, &out);
	if (st != 0)
		fail_msg("--metrics 127.0.0.1:0 --check-config: exit %d: %s", st, out);
	free(out);
	/* the file's key gets the same check, with its line */
	st = check_config(env, conf(env, "metrics.conf", "[daemon]\nmetrics = host:port\n"), &out);
	snprintf(want, sizeof want, "metrics.conf:2: metrics: \"host:port\" is not ADDR:PORT");
	if (st != 2 || !strstr(out, want))
		fail_msg("metrics = host:port: exit %d, says\n  %s\nnot\n  %s", st, out, want);
	free(out);
}

/* With two errors, the line and the message are the first error's. */
static void test_check_config_first_error(void **state)
{
	struct env *env = *state;
	const char *f = conf(env, "two.conf",
			     "[daemon]\n"
			     "tick_ms = abc\n"
			     "log_level = info\n"
			     "bogus = 1\n");
	char want[500], *out;
	int st = check_config(env, f, &out);

	assert_int_equal(st, 2);
	snprintf(want, sizeof want, "%s:2: tick_ms: \"abc\" is not a number", f);
	if (!strstr(out, want))
		fail_msg("two errors (line 2 and line 4): the message\n  %s\ndoes not say\n  %s",
			 out, want);
	free(out);
	/* a line inih refuses itself, then a bad key: the first is named */
	f = conf(env, "two.conf", "[daemon]\nlog_level info\nbogus = 1\n");
	assert_int_equal(check_config(env, f, &out), 2);
	snprintf(want, sizeof want, "%s:2: not a line of an INI file", f);
	if (!strstr(out, want))
		fail_msg("a bad line 2 and a bad key on line 3: the message\n  %s\ndoes not say\n  %s",
			 out, want);
	free(out);
}

/* Errors between keys (config_check) name the file too. */
static void test_check_config_cross_key_error(void **state)
{
	struct env *env = *state;
	const char *f = conf(env, "cross.conf",
			     "[daemon]\n"
			     "tick_ms = 100\n"
			     "unblock_timeout_ms = 50\n");
	char want[500], *out;
	int st = check_config(env, f, &out);

	assert_int_equal(st, 2);
	snprintf(want, sizeof want, "%s: unblock_timeout_ms (50) is shorter than tick_ms (100)", f);
	if (!strstr(out, want))
		fail_msg("the message\n  %s\ndoes not say\n  %s", out, want);
	assert_non_null(strstr(out, "raise unblock_timeout_ms"));
	free(out);
}

/* SIGHUP: keys that can change live are applied ("reloaded"), keys that
 * cannot are named ("needs a restart"), a bad file keeps the running
 * configuration.  The root comes from the file (no --root flag), and
 * control_socket is set (see test_reload_unchanged_*). */
static void test_reload(void **state)
{
	struct env *env = *state;
	struct tu_daemon *d = &env->d[0];
	char text[1400], needle[400], head[800];
	const char *f;
	struct claimer *cl = mp_shared(sizeof *cl);
	shmbus *bus = tu_open(env->root);
	pid_t pid;

	snprintf(head, sizeof head, "[daemon]\nroot = %s\ncontrol_socket = %s/control\n", env->root,
		 env->root);
	snprintf(text, sizeof text, "%slog_level = info\nunblock_timeout_ms = 5000\ntick_ms = 20\n",
		 head);
	f = conf(env, "live.conf", text);
	create_topic(bus, "t", 1, 64 << 10, 0);
	/* a producer that does not know the daemon: the unblocker's case */
	*cl = (struct claimer){ .root = env->root, .topic = "t" };
	claimer_start(cl);
	if (tu_daemon_start_config(d, env->root, f, NULL, READY_MS) < 0)
		fail_msg("shmbusd --config %s did not start", f);

	/* live keys */
	snprintf(text, sizeof text, "%slog_level = debug\nunblock_timeout_ms = 300\ntick_ms = 20\n",
		 head);
	write_file(f, text);
	tu_daemon_notes_clear(d);
	tu_daemon_signal(d, SIGHUP);
	expect_log(d, "SIGHUP: reloaded", 2000);
	assert_true(tu_daemon_notified(d, "RELOADING=1", NULL, 0, 1000));
	assert_true(tu_daemon_notified(d, "READY=1", NULL, 0, 1000));
	if (tu_daemon_log_count(d, "needs a restart") != 0) {
		tu_daemon_dump(d);
		fail_msg("live keys changed, yet a restart is asked for");
	}
	/* the new unblock timeout is the one in force */
	pid = claimer_kill(cl);
	snprintf(needle, sizeof needle, "of a claim pid %d has held for over 300 ms", (int)pid);
	expect_log(d, needle, 3000);

	/* keys that need a restart */
	snprintf(text, sizeof text, "[daemon]\nroot = %s/elsewhere\ncontrol_socket = %s/control\n"
		 "log_level = debug\nunblock_timeout_ms = 300\ntick_ms = 20\nmetrics = 127.0.0.1:9\n",
		 env->scratch, env->root);
	write_file(f, text);
	tu_daemon_signal(d, SIGHUP);
	expect_log(d, "needs a restart to change: root, metrics", 2000);
	/* and they are still in force: the daemon serves the same root */
	assert_true(tu_daemon_notified(d, "READY=1", NULL, 0, 1000));
	snprintf(needle, sizeof needle, "%s/elsewhere", env->scratch);
	assert_int_not_equal(access(needle, F_OK), 0);

	/* a bad file: refused, the daemon goes on */
	write_file(f, "[daemon]\ntick_ms = soon\n");
	tu_daemon_notes_clear(d);
	tu_daemon_signal(d, SIGHUP);
	snprintf(needle, sizeof needle, "SIGHUP: %s:2: tick_ms", f);
	expect_log(d, needle, 2000);
	expect_log(d, "the running configuration is kept", 0);
	assert_true(tu_daemon_notified(d, "READY=1", NULL, 0, 1000));
	assert_int_equal(kill(d->pid, 0), 0);
	stop_ok(d);
	shmbus_close(bus);
	munmap(cl, sizeof *cl);
}

/* SIGHUP with the file unchanged changes nothing, so nothing needs a
 * restart: neither the default control socket (<root>/control, filled in
 * at start) nor the flags, which override the file on a reload too. */
static void reload_unchanged(struct env *env, const char *text, const char *what)
{
	struct tu_daemon *d = &env->d[0];
	const char *f = conf(env, "unchanged.conf", text);
	const char *args[] = { "--config", f, NULL };

	start_or_fail(d, env->root, args, NULL);
	tu_daemon_signal(d, SIGHUP);
	expect_log(d, "SIGHUP: reloaded", 2000);
	if (tu_daemon_log_count(d, "needs a restart") != 0) {
		tu_daemon_dump(d);
		fail_msg("%s: an unchanged file is reported as needing a restart", what);
	}
	stop_ok(d);
}

static void test_reload_unchanged_default_socket(void **state)
{
	reload_unchanged(*state, "[daemon]\nlog_level = info\n", "no control_socket in the file");
}

static void test_reload_unchanged_flags(void **state)
{
	struct env *env = *state;
	char text[800];

	snprintf(text, sizeof text, "[daemon]\nroot = %s/not-this-one\ncontrol_socket = %s/control\n",
		 env->scratch, env->root);
	reload_unchanged(env, text, "root in the file, --root on the command line");
}

#define TEST(f) cmocka_unit_test_setup_teardown(f, daemon_setup, daemon_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_start_stop),
		TEST(test_notify_ready_status_watchdog),
		TEST(test_watchdog_only_when_asked),
		TEST(test_log_lines),
		TEST(test_second_daemon_refused),
		TEST(test_root_group_writable),
		TEST(test_check_config_good),
		TEST(test_example_config),
		TEST(test_doc_examples),
		TEST(test_check_config_errors),
		TEST(test_check_config_first_error),
		TEST(test_check_config_cross_key_error),
		TEST(test_check_config_dir_and_metrics),
		TEST(test_reload),
		TEST(test_reload_unchanged_default_socket),
		TEST(test_reload_unchanged_flags),
	};

	/* TEST_FILTER=test_reload* runs a subset */
	if (getenv("TEST_FILTER"))
		cmocka_set_test_filter(getenv("TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
