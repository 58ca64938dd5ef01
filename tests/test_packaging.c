/*
 * test_packaging.c - what a user meets before the API: `make install`
 * and `make uninstall` (into a scratch DESTDIR, never outside it), `make
 * run`, the man pages under docs/man/, and the README (its package list,
 * and its C example compiled and run the way it says).
 *
 * The tests run `make` on the source tree ($SHMBUS_SRCDIR, else the
 * current directory) with the build directory of the running tests
 * ($BUILD, else build), which `make test` has brought up to date, so
 * nothing is compiled again.  The make of `make test` is kept out of it
 * (MAKEFLAGS and the like are unset).  Each skips, saying why, where the
 * machine lacks make, groff or pkg-config.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shmbus.h"
#include "lib/testutil.h"

#define MAKE_TIMEOUT_MS 120000

struct env {
	char *dir;                  /* scratch, on tmpfs */
	pid_t group;                /* `make run` and its daemon, if running */
};

static int setup(void **state)
{
	static struct env env;

	env.group = 0;
	env.dir = tu_tmpdir("packaging");
	*state = &env;
	return 0;
}

static int teardown(void **state)
{
	struct env *env = *state;

	if (env->group > 0) {       /* whatever is left of `make run` */
		kill(-env->group, SIGKILL);
		tu_wait(env->group, 10000);
		env->group = 0;
	}
	tu_rmrf(env->dir);
	free(env->dir);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Helpers                                                             */

static const char *build(void)
{
	const char *b = getenv("BUILD");

	return b && *b ? b : "build";
}

/* The compiler flags of a sanitizer build, for programs linked with it. */
static const char *san_flags(void)
{
#if defined(__SANITIZE_ADDRESS__)
	return "-fsanitize=address,undefined";
#elif defined(__SANITIZE_THREAD__)
	return "-fsanitize=thread";
#else
	return "";
#endif
}

static bool have(const char *tool)
{
	char cmd[256];

	snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", tool);
	return system(cmd) == 0;
}

/* Run a shell command in the source tree; its exit status, and its
 * output (stdout and stderr) in *out (malloc'd). */
static int run(const char *cmd, char **out)
{
	char *full;
	size_t len = 0, cap = 1 << 20;
	char *buf = calloc(1, cap);
	FILE *p;
	int st;

	if (asprintf(&full, "cd '%s' && {\n%s\n} 2>&1", tu_srcdir(), cmd) < 0 || !buf)
		fail_msg("out of memory");
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
	free(full);
	*out = buf;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Run it, failing the test unless it exits 0; the output, malloc'd. */
static char *run_ok(const char *cmd)
{
	char *out;
	int st = run(cmd, &out);

	if (st != 0)
		fail_msg("%s: exit %d:\n%s", cmd, st, out);
	return out;
}

/* `make ARGS` on the source tree with the tests' build directory. */
static int make(const char *args, char **out)
{
	char cmd[PATH_MAX * 2];

	if (!have("make"))
		tu_skip("make is not installed");
	snprintf(cmd, sizeof cmd, "env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u MAKEOVERRIDES "
		 "make -s BUILD='%s' %s", build(), args);
	return run(cmd, out);
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = calloc(1, 1 << 20);
	size_t n = 0;

	if (!f)
		fail_msg("cannot read %s: %s", path, strerror(errno));
	n = fread(buf, 1, (1 << 20) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return buf;
}

static char *source_file(const char *name)
{
	char path[PATH_MAX];

	snprintf(path, sizeof path, "%s/%s", tu_srcdir(), name);
	if (access(path, R_OK) < 0)
		tu_skip("%s not found (run from the source tree or set SHMBUS_SRCDIR)", path);
	return slurp(path);
}

static void expect_has(const char *text, const char *needle, const char *what)
{
	if (!strstr(text, needle))
		fail_msg("%s: \"%s\" not found in:\n%s", what, needle, text);
}

/* ------------------------------------------------------------------ */
/* make install, make uninstall                                        */

static const char *under[2];    /* what installed files must start with */
static char stray[8192];        /* what did not, and what was left */
static size_t nstray, nfiles;

static int not_under(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	size_t used = strlen(stray);

	(void)st;
	(void)ftw;
	if (flag == FTW_D || flag == FTW_DP)
		return 0;
	nfiles++;
	if (strncmp(path, under[0], strlen(under[0])) &&
	    (!under[1] || strncmp(path, under[1], strlen(under[1])))) {
		nstray++;
		snprintf(stray + used, sizeof stray - used, "  %s\n", path);
	}
	return 0;
}

/* Files (and links) under dir that start with neither a nor b (if not NULL). */
static size_t files_outside(const char *dir, const char *a, const char *b)
{
	under[0] = a;
	under[1] = b;
	stray[0] = '\0';
	nstray = nfiles = 0;
	nftw(dir, not_under, 16, FTW_PHYS);
	return nstray;
}

static void expect_file(const char *dir, const char *path)
{
	char full[PATH_MAX];

	snprintf(full, sizeof full, "%s%s", dir, path);
	if (access(full, F_OK) < 0)
		fail_msg("make install did not install %s", full);
}

/* The directory holding everything installed: DESTDIR, else PREFIX. */
static const char *top_of(const char *dest, const char *prefix)
{
	return dest[0] ? dest : prefix;
}

/* Install with PREFIX=prefix DESTDIR=dest; check where everything went:
 * under DESTDIR+PREFIX, and DESTDIR+etc for the configuration. */
static void install_into(const char *dest, const char *prefix, const char *etc)
{
	char args[PATH_MAX * 2], in_prefix[PATH_MAX], in_etc[PATH_MAX], path[PATH_MAX + 64];
	char want[PATH_MAX * 2], *out, *text;

	snprintf(args, sizeof args, "install PREFIX='%s' DESTDIR='%s'", prefix, dest);
	if (make(args, &out) != 0)
		fail_msg("make %s:\n%s", args, out);
	free(out);
	snprintf(in_prefix, sizeof in_prefix, "%s%s/", dest, prefix);
	snprintf(in_etc, sizeof in_etc, "%s%s/shmbus/", dest, etc);
	if (files_outside(top_of(dest, prefix), in_prefix, in_etc))
		fail_msg("make %s put files outside %s and %s:\n%s", args, in_prefix, in_etc, stray);
	for (const char *const *f = (const char *const[]){ "bin/shmbus", "sbin/shmbusd",
		     "include/shmbus.h", "lib/libshmbus.so", "lib/libshmbus.a",
		     "lib/pkgconfig/shmbus.pc", "lib/systemd/system/shmbusd.service",
		     "lib/systemd/system/shmbusd.socket",
		     "share/man/man1/shmbus.1", "share/man/man8/shmbusd.8",
		     "share/man/man5/shmbusd.conf.5", "share/man/man3/libshmbus.3",
		     "share/doc/shmbus/operations.md", NULL }; *f; f++)
		expect_file(in_prefix, *f);
	expect_file(in_etc, "shmbusd.conf");
	expect_file(in_etc, "shmbusd.conf.example");
	/* the unit and the .pc name the installed places, without DESTDIR */
	snprintf(path, sizeof path, "%slib/systemd/system/shmbusd.service", in_prefix);
	text = slurp(path);
	snprintf(want, sizeof want, "\nExecStart=%s/sbin/shmbusd --config %s/shmbus/shmbusd.conf\n",
		 prefix, etc);
	expect_has(text, want, path);
	snprintf(want, sizeof want, "file://%s/share/doc/shmbus/operations.md", prefix);
	expect_has(text, want, path);
	free(text);
	snprintf(path, sizeof path, "%slib/pkgconfig/shmbus.pc", in_prefix);
	text = slurp(path);
	snprintf(want, sizeof want, "prefix=%s\n", prefix);
	expect_has(text, want, path);
	free(text);
}

static void uninstall_from(const char *dest, const char *prefix)
{
	char args[PATH_MAX * 2], *out;

	snprintf(args, sizeof args, "uninstall PREFIX='%s' DESTDIR='%s'", prefix, dest);
	if (make(args, &out) != 0)
		fail_msg("make %s:\n%s", args, out);
	free(out);
	files_outside(top_of(dest, prefix), "/nothing/is/left", NULL);
	if (nfiles)
		fail_msg("make %s left:\n%s", args, stray);
}

static void test_install_uninstall(void **state)
{
	struct env *env = *state;
	char dest[PATH_MAX], prefix[PATH_MAX], etc[PATH_MAX + 8];

	/* a user's own prefix: its own etc, nothing outside it */
	snprintf(dest, sizeof dest, "%s/dest", env->dir);
	install_into(dest, "/home/someone/.local", "/home/someone/.local/etc");
	uninstall_from(dest, "/home/someone/.local");
	/* /usr: /etc, as distributions lay it out */
	snprintf(dest, sizeof dest, "%s/dest-usr", env->dir);
	install_into(dest, "/usr", "/etc");
	uninstall_from(dest, "/usr");
	/* no DESTDIR, as a user does with PREFIX=$HOME/.local (only once the
	 * installs above kept inside DESTDIR: this one writes for real) */
	snprintf(prefix, sizeof prefix, "%s/prefix", env->dir);
	snprintf(etc, sizeof etc, "%s/etc", prefix);
	install_into("", prefix, etc);
	uninstall_from("", prefix);
}

/* ------------------------------------------------------------------ */
/* The README                                                          */

/* The words of Makefile's APT_PKGS are all in the README's list. */
static void test_readme_packages(void **state)
{
	char *mk = source_file("Makefile"), *readme = source_file("README.md");
	char *at = strstr(mk, "\nAPT_PKGS"), *end, word[64];
	int n = 0, used;

	(void)state;
	assert_non_null(at);
	at = strstr(at, ":=") + 2;
	for (end = at; *end && !(end[0] == '\n' && end[-1] != '\\'); end++)
		;
	*end = '\0';
	while (sscanf(at, " %63[^ \t\n\\]%n", word, &used) == 1) {
		const char *w = readme;

		/* the word, not a part of another (libsystemd-dev, not systemd-dev) */
		while ((w = strstr(w, word)) && w > readme && !strchr(" `(\n", w[-1]))
			w++;
		if (!w)
			fail_msg("the README does not list the package %s (Makefile's APT_PKGS)", word);
		n++;
		at += used;
		at += strspn(at, " \t\n\\");
	}
	assert_true(n >= 8);
	free(mk);
	free(readme);
}

/* The README line that starts with `cc ` and holds `needle`. */
static char *readme_cc_line(const char *readme, const char *needle)
{
	for (const char *l = readme; (l = strstr(l, "\ncc ")); l++) {
		size_t len = strcspn(l + 1, "\n");
		char *line = strndup(l + 1, len);

		if (strstr(line, needle))
			return line;
		free(line);
	}
	fail_msg("the README has no line `cc ... %s`", needle);
	return NULL;
}

/* Replace the first `from` in line by `to`. */
static char *replaced(char *line, const char *from, const char *to)
{
	char *at = strstr(line, from), *n;

	if (!at)
		return line;
	if (asprintf(&n, "%.*s%s%s", (int)(at - line), line, to, at + strlen(from)) < 0)
		fail_msg("out of memory");
	free(line);
	return n;
}

static void run_example(struct env *env, const char *exe)
{
	char cmd[PATH_MAX * 3], *out;

	snprintf(cmd, sizeof cmd, "ASAN_OPTIONS=detect_leaks=0 SHMBUS_ROOT='%s/root' '%s'",
		 env->dir, exe);
	out = run_ok(cmd);
	expect_has(out, "@0 order 1\n", "the example consumes its record");
	expect_has(out, "sent to partition ", "the example sends its record");
	free(out);
	tu_rmrf(strcat(strcpy(cmd, env->dir), "/root"));
}

/* The C example compiles and runs as the README says: against the build
 * tree, and with pkg-config after make install. */
static void test_readme_example(void **state)
{
	struct env *env = *state;
	char *readme = source_file("README.md"), *c, *e, *line, *out;
	char path[PATH_MAX], cmd[PATH_MAX * 4], bdir[PATH_MAX];
	FILE *f;

	if (!have("cc") || !have("pkg-config"))
		tu_skip("cc or pkg-config is not installed");
	c = strstr(readme, "```c\n");
	assert_non_null(c);
	c += 5;
	e = strstr(c, "```");
	assert_non_null(e);
	snprintf(path, sizeof path, "%s/example.c", env->dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fwrite(c, 1, (size_t)(e - c), f);
	fclose(f);

	/* against the build tree, from the source directory */
	line = readme_cc_line(readme, "build/libshmbus.a");
	snprintf(bdir, sizeof bdir, "%s/", build());
	line = replaced(line, "build/", bdir);
	line = replaced(line, "-o example example.c", "-o \"$EX\" \"$EX.c\"");
	snprintf(cmd, sizeof cmd, "EX='%s/example' && %s %s", env->dir, line, san_flags());
	free(run_ok(cmd));
	free(line);
	snprintf(path, sizeof path, "%s/example", env->dir);
	run_example(env, path);

	/* installed (into a DESTDIR), found by pkg-config */
	snprintf(cmd, sizeof cmd, "install PREFIX=/usr/local DESTDIR='%s/dest'", env->dir);
	if (make(cmd, &out) != 0)
		fail_msg("make %s:\n%s", cmd, out);
	free(out);
	line = readme_cc_line(readme, "pkg-config --cflags --libs shmbus");
	line = replaced(line, "-o example example.c", "-o \"$EX\" \"$EX.c\"");
	snprintf(cmd, sizeof cmd, "EX='%s/example' D='%s/dest' && export "
		 "PKG_CONFIG_PATH=\"$D/usr/local/lib/pkgconfig\" PKG_CONFIG_SYSROOT_DIR=\"$D\" && "
		 "rm -f \"$EX\" && %s %s -Wl,-rpath,\"$D/usr/local/lib\"", env->dir, env->dir, line,
		 san_flags());
	free(run_ok(cmd));
	free(line);
	run_example(env, path);
	free(readme);
}

/* ------------------------------------------------------------------ */
/* Man pages                                                           */

/* A page rendered as plain text (groff -man -Tascii, no overstriking). */
static char *render(const char *page)
{
	char cmd[PATH_MAX + 128];

	snprintf(cmd, sizeof cmd, "groff -man -Tascii -P-cbou docs/man/%s", page);
	return run_ok(cmd);
}

/* Every option word ("-x", "--long-name") of text appears in page. */
static void expect_options(const char *text, const char *page_text, const char *page,
			   const char *from)
{
	for (const char *p = text; *p; p++) {
		char opt[64];
		int n = 0;

		if (*p != '-' || (p > text && !strchr(" \t\n[|,", p[-1])))
			continue;
		if (sscanf(p, "%63[-a-zA-Z]%n", opt, &n) != 1 || n < 2 || opt[n - 1] == '-' ||
		    !(opt[1] == '-' ? n > 2 : n == 2))
			continue;
		if (!strstr(page_text, opt))
			fail_msg("%s has no %s (in %s)", page, opt, from);
		p += n - 1;
	}
}

static void test_man_pages(void **state)
{
	static const char *const pages[] = { "shmbus.1", "shmbusd.8", "shmbusd.conf.5",
					      "libshmbus.3" };
	static const char *const commands[] = { "", "topic", "produce", "consume", "stats",
						"status", "recover", "group", "groups", "demo",
						"bench", "mirror" };
	char cmd[PATH_MAX], *out, *page, *help, *api, *conf;

	(void)state;
	if (!have("groff"))
		tu_skip("groff is not installed (Debian: groff-base)");
	for (size_t i = 0; i < sizeof pages / sizeof pages[0]; i++) {
		snprintf(cmd, sizeof cmd, "groff -man -Tutf8 -ww -z docs/man/%s", pages[i]);
		out = run_ok(cmd);
		if (out[0])
			fail_msg("%s: groff warns:\n%s", pages[i], out);
		free(out);
	}
	page = render("shmbus.1");
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
		snprintf(cmd, sizeof cmd, "'%s/shmbus' %s --help", build(), commands[i]);
		help = run_ok(cmd);
		expect_options(help, page, "shmbus.1", cmd);
		free(help);
	}
	free(page);
	page = render("shmbusd.8");
	snprintf(cmd, sizeof cmd, "'%s/shmbusd' --help", build());
	help = run_ok(cmd);
	expect_options(help, page, "shmbusd.8", cmd);
	free(help);
	free(page);
	/* every key of the example configuration, every exported function */
	page = render("shmbusd.conf.5");
	conf = source_file("systemd/shmbusd.conf.example");
	for (char *l = conf; l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		char key[64];

		if (sscanf(l, "#%63[a-z_] =", key) == 1 || sscanf(l, "%63[a-z_] =", key) == 1)
			if (!strstr(page, key))
				fail_msg("shmbusd.conf.5 has no key %s", key);
	}
	free(conf);
	free(page);
	page = render("libshmbus.3");
	api = source_file("include/shmbus.h");
	for (char *s = api; (s = strstr(s, "\nSHMBUS_API ")); s++) {
		char *paren = strchr(s, '('), *name = paren, fn[128];

		while (name > s && (name[-1] == '_' || (name[-1] >= 'a' && name[-1] <= 'z') ||
				    (name[-1] >= '0' && name[-1] <= '9')))
			name--;
		snprintf(fn, sizeof fn, "%.*s", (int)(paren - name), name);
		if (!strstr(page, fn))
			fail_msg("libshmbus.3 has no %s (SHMBUS_API in include/shmbus.h)", fn);
	}
	free(api);
	free(page);
}

/* ------------------------------------------------------------------ */
/* make run                                                            */

/* The lines of `out` that run the command, as a shell script. */
static char *commands_of(const char *out, const char *cli)
{
	char *script = calloc(1, strlen(out) + 1);
	size_t len = 0;

	for (const char *l = out; *l; l += strcspn(l, "\n") + (l[strcspn(l, "\n")] == '\n')) {
		size_t n = strcspn(l, "\n");
		const char *at = memmem(l, n, cli, strlen(cli));

		if (at && (size_t)(at - l) < n && !memmem(l, n, "demo", 4)) {
			memcpy(script + len, l, n);
			len += n;
			script[len++] = '\n';
		}
	}
	return script;
}

/* Start `make -s run` on root in its own process group (env->group),
 * its stdout and stderr into the returned pipe. */
static int start_make_run(struct env *env, const char *root)
{
	int fds[2];
	pid_t pid;

	assert_int_equal(pipe(fds), 0);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		setpgid(0, 0);
		dup2(fds[1], 1);
		dup2(fds[1], 2);
		close(fds[0]);
		setenv("SHMBUS_ROOT", root, 1);
		unsetenv("MAKEFLAGS");
		unsetenv("MAKELEVEL");
		unsetenv("MFLAGS");
		if (chdir(tu_srcdir()) < 0)
			_exit(127);
		execlp("make", "make", "-s", "run", (char *)NULL);
		_exit(127);
	}
	setpgid(pid, pid);
	env->group = pid;
	close(fds[1]);
	fcntl(fds[0], F_SETFL, O_NONBLOCK);
	return fds[0];
}

/* Read fd into out (cap bytes) until it holds needle, EOF or the deadline. */
static void read_until(int fd, char *out, size_t cap, const char *needle, int64_t deadline)
{
	size_t len = strlen(out);

	while (!strstr(out, needle) && tu_ms() < deadline && len + 1 < cap) {
		ssize_t n = read(fd, out + len, cap - 1 - len);

		if (n > 0)
			len += (size_t)n;
		else if (n == 0)
			break;
		else
			usleep(20000);
		out[len] = '\0';
	}
}

static void test_make_run(void **state)
{
	struct env *env = *state;
	char root[PATH_MAX], want[PATH_MAX * 3], cli[PATH_MAX * 2], *out = calloc(1, 1 << 16);
	char *script, *res;
	int fd, status;

	if (!have("make"))
		tu_skip("make is not installed");
	snprintf(root, sizeof root, "%s/run-root", env->dir);
	fd = start_make_run(env, root);
	read_until(fd, out, 1 << 16, "Ctrl-C", tu_ms() + 60000);
	if (!strstr(out, "Ctrl-C"))
		fail_msg("make run did not say how to use the bus (no \"Ctrl-C\") in 60 s:\n%s", out);
	/* the root, the control socket and the commands, ready to paste */
	expect_has(out, root, "make run names the root");
	snprintf(want, sizeof want, "%s/control", root);
	expect_has(out, want, "make run names the control socket");
	expect_has(out, "built-in", "make run says it runs without a configuration file");
	snprintf(cli, sizeof cli, "%s/shmbus --root %s", build(), root);
	snprintf(want, sizeof want, "%s topic create", cli);
	expect_has(out, want, "make run shows how to create a topic");
	snprintf(want, sizeof want, "| %s produce", cli);
	expect_has(out, want, "make run shows how to produce");
	snprintf(want, sizeof want, "%s consume", cli);
	expect_has(out, want, "make run shows how to consume");
	script = commands_of(out, cli);
	res = run_ok(script);
	expect_has(res, "created topic", "the printed commands create a topic");
	expect_has(res, "\n1\n2\n3\n", "the printed commands produce and consume");
	free(res);
	free(script);
	kill(-env->group, SIGINT);    /* Ctrl-C: make and the daemon stop */
	status = tu_wait(env->group, 20000);
	kill(-env->group, SIGKILL);   /* whatever is left of the group */
	env->group = 0;
	close(fd);
	free(out);
	assert_true(status >= 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_install_uninstall, setup, teardown),
		cmocka_unit_test_setup_teardown(test_readme_packages, setup, teardown),
		cmocka_unit_test_setup_teardown(test_readme_example, setup, teardown),
		cmocka_unit_test_setup_teardown(test_man_pages, setup, teardown),
		cmocka_unit_test_setup_teardown(test_make_run, setup, teardown),
	};

	if (getenv("TEST_FILTER"))
		cmocka_set_test_filter(getenv("TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
