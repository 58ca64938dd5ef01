/*
 * test_systemd.c - the files under systemd/, checked by systemd's own
 * tools where this machine has them (each test skips, saying why, where
 * it has not), and the daemon's system calls checked against the unit's
 * SystemCallFilter=.
 *
 *  - shmbusd.service.in, rendered as `make install` renders it, passes
 *    `systemd-analyze verify` without a warning (and a misspelt key does
 *    not), also laid out as installed in a scratch --root, and
 *    `systemd-analyze security` rates it at most 2.0;
 *  - the settings the daemon depends on are in the unit (RemoveIPC=no,
 *    the root writable, Type=notify with a watchdog, ...);
 *  - sysusers.d and tmpfiles.d create the user, the group and the roots
 *    with their modes, in a scratch --root;
 *  - every system call shmbusd makes in a run that exercises its paths
 *    (start-up recovery, unblocking, retention, flushing a disk root,
 *    SIGHUP, SIGTERM), traced with strace, is allowed by the unit's
 *    SystemCallFilter= lines.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <linux/magic.h>

#include "shmbus.h"
#include "lib/testutil.h"
#include "lib/daemonutil.h"
#include "test_mp.h"

struct env {
	char *dir;                  /* scratch, on tmpfs */
	char disk[300];             /* a disk root, for the strace run */
	struct tu_daemon d;
};

static int setup(void **state)
{
	static struct env env;

	memset(&env, 0, sizeof env);
	env.dir = tu_tmpdir("systemd");
	*state = &env;
	return 0;
}

static int teardown(void **state)
{
	struct env *env = *state;

	mp_kill_all();
	tu_daemon_kill(&env->d);
	if (env->d.log[0])
		unlink(env->d.log);
	tu_rmrf(env->dir);
	if (env->disk[0])
		tu_rmrf(env->disk);
	free(env->dir);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Helpers                                                             */

/* The absolute path of the source file systemd/NAME (tools given a
 * --root resolve relative paths inside it); skips if it is not there. */
static const char *source(const char *name)
{
	static char path[PATH_MAX], real[PATH_MAX];

	snprintf(path, sizeof path, "%s/systemd/%s", tu_srcdir(), name);
	if (!realpath(path, real))
		tu_skip("%s not found (run from the source tree or set SHMBUS_SRCDIR)", path);
	return real;
}

/* Is `tool` on PATH? */
static bool have(const char *tool)
{
	char cmd[256];

	snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", tool);
	return system(cmd) == 0;
}

/* Run a shell command; its exit status, and its output (stdout and
 * stderr) in *out (malloc'd). */
static int run(const char *cmd, char **out)
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

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = calloc(1, 1 << 20);
	size_t n = 0;

	if (f) {
		n = fread(buf, 1, (1 << 20) - 1, f);
		fclose(f);
	}
	buf[n] = '\0';
	return buf;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (!f || fputs(text, f) < 0 || fclose(f) != 0)
		fail_msg("cannot write %s: %s", path, strerror(errno));
}

/* Replace every `from` in *s by `to`. */
static void replace_all(char **s, const char *from, const char *to)
{
	size_t at = 0;
	char *p;

	while ((p = strstr(*s + at, from))) {
		size_t pre = (size_t)(p - *s);
		char *n;

		if (asprintf(&n, "%.*s%s%s", (int)pre, *s, to, p + strlen(from)) < 0)
			fail_msg("out of memory");
		free(*s);
		*s = n;
		at = pre + strlen(to);
	}
}

/* The directory of the daemon binary (as @SBINDIR@ after install). */
static void sbindir(char *out, size_t len)
{
	char real[PATH_MAX];

	if (!realpath(tu_daemon_path(), real))
		tu_skip("the daemon %s is not built ($SHMBUSD)", tu_daemon_path());
	snprintf(out, len, "%s", dirname(real));
}

/*
 * systemd/shmbusd.service.in rendered into DIR/NAME as `make install`
 * does, with the daemon where it was built; `edit` (may be NULL) then
 * replaces one string.  Returns the path (static).
 */
static const char *render_unit(struct env *env, const char *name, const char *from,
			       const char *to)
{
	static char path[PATH_MAX];
	char sbin[PATH_MAX];
	char *text = slurp(source("shmbusd.service.in"));

	sbindir(sbin, sizeof sbin);
	replace_all(&text, "@SBINDIR@", sbin);
	replace_all(&text, "@SYSCONFDIR@", "/usr/local/etc"); /* PREFIX=/usr/local's */
	replace_all(&text, "@DOCDIR@", "/usr/local/share/doc/shmbus");
	for (const char *a = text; (a = strchr(a, '@')); a++) {
		size_t caps = strspn(a + 1, "ABCDEFGHIJKLMNOPQRSTUVWXYZ_");

		if (caps && a[1 + caps] == '@')
			fail_msg("shmbusd.service.in has a placeholder make install does not fill: "
				 "%.*s", (int)caps + 2, a);
	}
	if (from) {
		if (!strstr(text, from))
			fail_msg("the unit has no \"%s\"", from);
		replace_all(&text, from, to);
	}
	snprintf(path, sizeof path, "%s/%s", env->dir, name);
	write_file(path, text);
	free(text);
	return path;
}

/* ------------------------------------------------------------------ */
/* The unit                                                            */

static void test_unit_verify(void **state)
{
	struct env *env = *state;
	char cmd[PATH_MAX + 64], *out;
	const char *unit;
	int st;

	if (!have("systemd-analyze"))
		tu_skip("systemd-analyze is not installed (Debian: systemd)");
	unit = render_unit(env, "shmbusd.service", NULL, NULL);
	snprintf(cmd, sizeof cmd, "systemd-analyze verify --man=no %s", unit);
	st = run(cmd, &out);
	if (st != 0 && (strstr(out, "Failed to connect") || strstr(out, "not been booted")))
		tu_skip("systemd-analyze verify cannot run here: %s", out);
	/* it exits 0 on warnings such as unknown keys: any output is a finding */
	if (st != 0 || out[0])
		fail_msg("systemd-analyze verify %s: exit %d:\n%s", unit, st, out);
	free(out);

	/* the check has teeth: a misspelt key and a missing binary are caught */
	unit = render_unit(env, "typo.service", "ProtectSystem=strict", "ProtectSytem=strict");
	snprintf(cmd, sizeof cmd, "systemd-analyze verify --man=no %s", unit);
	run(cmd, &out);
	assert_non_null(strstr(out, "Unknown key"));
	free(out);
	unit = render_unit(env, "nobin.service", "shmbusd --config", "no-such-shmbusd --config");
	snprintf(cmd, sizeof cmd, "systemd-analyze verify --man=no %s", unit);
	assert_int_not_equal(run(cmd, &out), 0);
	assert_non_null(strstr(out, "is not executable"));
	free(out);
}

/*
 * The unit as `make install` lays it out, checked inside a scratch root
 * (--root): the system's own units are copied in (the unit is ordered
 * after sysinit.target and the like), and the binaries its Exec lines
 * name must exist at their installed paths there.
 */
static void test_unit_verify_installed(void **state)
{
	struct env *env = *state;
	char root[512], cmd[PATH_MAX * 4], real[PATH_MAX], dir[PATH_MAX], *out;
	const char *unit;
	int st;

	if (!have("systemd-analyze"))
		tu_skip("systemd-analyze is not installed (Debian: systemd)");
	if (access("/usr/lib/systemd/system/sysinit.target", R_OK) < 0)
		tu_skip("no /usr/lib/systemd/system/sysinit.target to copy into a scratch root");
	if (!realpath(tu_daemon_path(), real))
		tu_skip("the daemon %s is not built ($SHMBUSD)", tu_daemon_path());
	unit = render_unit(env, "shmbusd.service", NULL, NULL);
	sbindir(dir, sizeof dir);
	snprintf(root, sizeof root, "%s/installed", env->dir);
	/* what make install PREFIX=/usr/local writes, plus what the unit uses */
	snprintf(cmd, sizeof cmd,
		 "set -e; R=%s; mkdir -p $R/usr/local/lib/systemd/system $R/usr/local/sbin $R/bin "
		 "$R/usr/lib/systemd $R/usr/local/etc/shmbus; "
		 "sed 's|%s/shmbusd|/usr/local/sbin/shmbusd|g' %s > $R/usr/local/lib/systemd/system/"
		 "shmbusd.service; cp %s $R/usr/local/sbin/shmbusd; cp /bin/kill $R/bin/kill; "
		 "cp %s $R/usr/local/etc/shmbus/shmbusd.conf; "
		 "cp -a /usr/lib/systemd/system $R/usr/lib/systemd/",
		 root, dir, unit, real, source("shmbusd.conf.example"));
	st = run(cmd, &out);
	if (st != 0)
		fail_msg("%s: exit %d:\n%s", cmd, st, out);
	free(out);
	snprintf(cmd, sizeof cmd, "systemd-analyze verify --root=%s --man=no shmbusd.service", root);
	st = run(cmd, &out);
	if (st != 0 || out[0])
		fail_msg("%s: exit %d:\n%s", cmd, st, out);
	free(out);
	/* the installed configuration is the example: valid as it is */
	snprintf(cmd, sizeof cmd, "%s/usr/local/sbin/shmbusd --config "
		 "%s/usr/local/etc/shmbus/shmbusd.conf --check-config", root, root);
	st = run(cmd, &out);
	if (st != 0)
		fail_msg("%s: exit %d:\n%s", cmd, st, out);
	free(out);
	/* and it has teeth: without the binary, verify fails */
	snprintf(cmd, sizeof cmd, "rm %s/usr/local/sbin/shmbusd && systemd-analyze verify --root=%s "
		 "--man=no shmbusd.service", root, root);
	assert_int_not_equal(run(cmd, &out), 0);
	assert_non_null(strstr(out, "/usr/local/sbin/shmbusd is not executable"));
	free(out);
}

static void test_unit_security(void **state)
{
	struct env *env = *state;
	char cmd[PATH_MAX + 96], *out;
	const char *unit;
	int st;

	if (!have("systemd-analyze"))
		tu_skip("systemd-analyze is not installed (Debian: systemd)");
	unit = render_unit(env, "shmbusd.service", NULL, NULL);
	snprintf(cmd, sizeof cmd, "systemd-analyze security --offline=true --threshold=20 %s", unit);
	st = run(cmd, &out);
	if (strstr(out, "unrecognized option") || strstr(out, "Unknown command"))
		tu_skip("this systemd-analyze has no offline security review (systemd < 250)");
	if (st != 0)
		fail_msg("systemd-analyze security rates shmbusd.service above 2.0:\n%s", out);
	free(out);
}

/* The settings the daemon and its users rely on. */
static void test_unit_settings(void **state)
{
	static const char *const must[] = {
		"\nType=notify\n", "\nNotifyAccess=main\n", "\nWatchdogSec=",
		"\nExecReload=/bin/kill -HUP $MAINPID\n", "\nRestart=on-failure\n",
		"\nUser=shmbus\n", "\nGroup=shmbus\n", "\nUMask=0007\n",
		"\nRuntimeDirectory=shmbus\n", "\nEnvironment=SHMBUS_ROOT=/dev/shm/shmbus\n",
		/* RemoveIPC=yes would delete the root's files under /dev/shm on stop */
		"\nRemoveIPC=no\n",
		"\nProtectSystem=strict\n", "\nReadWritePaths=-/dev/shm/shmbus -/var/lib/shmbus\n",
		"\nNoNewPrivileges=yes\n", "\nPrivateTmp=yes\n", "\nProtectHome=yes\n",
		"\nCapabilityBoundingSet=\n",
		"\nRestrictAddressFamilies=AF_UNIX AF_INET AF_INET6\n",
		"\nSystemCallFilter=@system-service\n", "\nSystemCallArchitectures=native\n",
		"\nMemoryDenyWriteExecute=yes\n",
		"\nExecStart=@SBINDIR@/shmbusd --config @SYSCONFDIR@/shmbus/shmbusd.conf\n",
	};
	/* DynamicUser implies RemoveIPC; ProtectProc=invisible hides clients'
	 * /proc/<pid> from the daemon, which tells dead producers by it */
	static const char *const never[] = { "\nDynamicUser=", "\nProtectProc=invisible",
					     "\nPrivateIPC=yes", "\nPrivateUsers=yes" };
	char *text = slurp(source("shmbusd.service.in"));

	(void)state;
	for (size_t i = 0; i < sizeof must / sizeof must[0]; i++)
		if (!strstr(text, must[i]))
			fail_msg("shmbusd.service.in lacks \"%s\"", must[i] + 1);
	for (size_t i = 0; i < sizeof never / sizeof never[0]; i++)
		if (strstr(text, never[i]))
			fail_msg("shmbusd.service.in has \"%s\"", never[i] + 1);
	free(text);
}

/* ------------------------------------------------------------------ */
/* sysusers.d and tmpfiles.d                                           */

/* uid and gid of `name` in ROOT/etc/passwd; false if absent. */
static bool passwd_entry(const char *root, const char *name, unsigned *uid, unsigned *gid,
			 char *shell, size_t len)
{
	char path[PATH_MAX], line[512];
	FILE *f;
	bool found = false;

	snprintf(path, sizeof path, "%s/etc/passwd", root);
	f = fopen(path, "r");
	while (f && !found && fgets(line, sizeof line, f)) {
		char user[64], sh[256];

		if (sscanf(line, "%63[^:]:%*[^:]:%u:%u:%*[^:]:%*[^:]:%255[^\n]", user, uid, gid,
			   sh) == 4 && !strcmp(user, name)) {
			snprintf(shell, len, "%s", sh);
			found = true;
		}
	}
	if (f)
		fclose(f);
	return found;
}

static void sysusers(struct env *env, char *root, size_t len)
{
	char cmd[PATH_MAX * 2], *out;
	int st;

	if (!have("systemd-sysusers"))
		tu_skip("systemd-sysusers is not installed (Debian: systemd)");
	snprintf(root, len, "%s/sysroot", env->dir);
	snprintf(cmd, sizeof cmd, "mkdir -p %s/etc && systemd-sysusers --root=%s %s", root, root,
		 source("shmbus-sysusers.conf"));
	st = run(cmd, &out);
	if (st != 0)
		fail_msg("%s: exit %d:\n%s", cmd, st, out);
	free(out);
}

static void test_sysusers(void **state)
{
	struct env *env = *state;
	char root[512], shell[256], path[PATH_MAX + 16], cmd[PATH_MAX * 2], *group, *out;
	unsigned uid, gid;

	sysusers(env, root, sizeof root);
	if (!passwd_entry(root, "shmbus", &uid, &gid, shell, sizeof shell))
		fail_msg("systemd-sysusers made no user shmbus in %s/etc/passwd", root);
	assert_true(uid > 0 && uid < 1000);          /* a system user */
	assert_non_null(strstr(shell, "nologin"));
	snprintf(path, sizeof path, "%s/etc/group", root);
	group = slurp(path);
	snprintf(cmd, sizeof cmd, "shmbus:x:%u:", gid);
	if (!strstr(group, cmd))
		fail_msg("no group shmbus with gid %u in %s:\n%s", gid, path, group);
	free(group);
	/* a second run changes nothing */
	snprintf(cmd, sizeof cmd, "systemd-sysusers --root=%s %s", root,
		 source("shmbus-sysusers.conf"));
	assert_int_equal(run(cmd, &out), 0);
	assert_null(strstr(out, "Creating"));
	free(out);
}

static void test_tmpfiles(void **state)
{
	struct env *env = *state;
	static const char *const dirs[] = { "dev/shm/shmbus", "var/lib/shmbus" };
	char root[512], shell[256], cmd[PATH_MAX * 3], path[PATH_MAX + 32], *out;
	unsigned uid, gid;
	struct stat st;
	int rc;

	if (!have("systemd-tmpfiles"))
		tu_skip("systemd-tmpfiles is not installed (Debian: systemd)");
	sysusers(env, root, sizeof root);   /* the names tmpfiles resolves in --root */
	assert_true(passwd_entry(root, "shmbus", &uid, &gid, shell, sizeof shell));
	snprintf(cmd, sizeof cmd, "mkdir -p %s/dev/shm %s/var/lib && "
		 "systemd-tmpfiles --root=%s --create %s", root, root, root, source("shmbus.conf"));
	rc = run(cmd, &out);
	/* the roots belong to user shmbus: giving them needs CAP_CHOWN */
	if (rc != 0 && strstr(out, "fchownat") && strstr(out, "Operation not permitted")) {
		free(out);
		tu_skip("systemd-tmpfiles gives the roots to user shmbus, and changing a file's "
			"owner needs root (CAP_CHOWN; running as uid %u)", (unsigned)geteuid());
	}
	if (rc != 0)
		fail_msg("%s: exit %d:\n%s", cmd, rc, out);
	free(out);
	for (size_t i = 0; i < 2; i++) {
		snprintf(path, sizeof path, "%s/%s", root, dirs[i]);
		assert_int_equal(stat(path, &st), 0);
		assert_true(S_ISDIR(st.st_mode));
		if ((st.st_mode & 07777) != 02770 || st.st_uid != uid || st.st_gid != gid)
			fail_msg("%s: mode %o, owner %u:%u; expected 2770 shmbus:shmbus (%u:%u)", path,
				 st.st_mode & 07777, st.st_uid, st.st_gid, uid, gid);
	}
	/* --clean leaves the roots' contents alone (no age) */
	snprintf(path, sizeof path, "%s/dev/shm/shmbus/bus", root);
	write_file(path, "x");
	snprintf(cmd, sizeof cmd, "touch -d '2001-01-01' %s && systemd-tmpfiles --root=%s --clean %s",
		 path, root, source("shmbus.conf"));
	rc = run(cmd, &out);
	if (rc != 0)
		fail_msg("%s: exit %d:\n%s", cmd, rc, out);
	free(out);
	assert_int_equal(access(path, F_OK), 0);
}

/* ------------------------------------------------------------------ */
/* System calls against SystemCallFilter=                              */

#define MAX_CALLS 1024

struct calls {
	char name[MAX_CALLS][64];
	size_t n;
};

static bool calls_has(const struct calls *c, const char *name)
{
	for (size_t i = 0; i < c->n; i++)
		if (!strcmp(c->name[i], name))
			return true;
	return false;
}

static void calls_add(struct calls *c, const char *name)
{
	if (c->n < MAX_CALLS && !calls_has(c, name))
		snprintf(c->name[c->n++], sizeof c->name[0], "%s", name);
}

/* The system calls of a seccomp group, nested groups expanded. */
static void expand_group(const char *group, struct calls *c, int depth)
{
	char cmd[128], line[256];
	FILE *p;
	bool first = true;

	assert_true(depth < 8);
	snprintf(cmd, sizeof cmd, "systemd-analyze syscall-filter %s 2>/dev/null", group);
	p = popen(cmd, "r");
	assert_non_null(p);
	while (fgets(line, sizeof line, p)) {
		char word[64];

		if (first) {            /* the group's own name */
			first = false;
			continue;
		}
		if (sscanf(line, " %63s", word) != 1 || word[0] == '#')
			continue;
		if (word[0] == '@')
			expand_group(word, c, depth + 1);
		else
			calls_add(c, word);
	}
	pclose(p);
}

struct claimer {
	const char *root;
	volatile int claimed;
};

static int claimer_main(void *argp)
{
	struct claimer *a = argp;
	struct shmbus_record meta = { .key = "k", .key_len = 1 };
	shmbus_producer *p = NULL;
	struct shmbus_claim c;
	shmbus *bus = mp_open(a->root);

	CHILD_CHECK(shmbus_producer_new(bus, "sys", NULL, &p) == 0, "producer_new");
	CHILD_CHECK(shmbus_producer_claim(p, 0, &meta, 64, &c) == 0, "claim");
	mp_set(&a->claimed, 1);
	for (;;)
		pause();
	return 0;
}

/* Exercise the daemon's paths on a disk root, under strace; returns the
 * daemon's exit status. */
static int traced_run(struct env *env, const char *trace)
{
	struct tu_daemon *d = &env->d;
	char wrapper[PATH_MAX], conf[PATH_MAX], text[PATH_MAX * 3], real[PATH_MAX], mainpid[64];
	const char *args[] = { "--config", conf, NULL };
	struct claimer *cl = mp_shared(sizeof *cl);
	SHMBUS_OPTS(shmbus_topic_opts, o, .capacity = 64 << 10, .retention_ms = 100);
	char *saved = getenv("SHMBUSD") ? strdup(getenv("SHMBUSD")) : NULL;
	shmbus_producer *p = NULL;
	shmbus *bus;
	pid_t pid;
	int rc;

	if (!realpath(tu_daemon_path(), real))
		tu_skip("the daemon %s is not built ($SHMBUSD)", tu_daemon_path());
	snprintf(wrapper, sizeof wrapper, "%s/traced-shmbusd", env->dir);
	/* LeakSanitizer cannot run under ptrace (sanitizer builds) */
	snprintf(text, sizeof text, "#!/bin/sh\nexport ASAN_OPTIONS=\"${ASAN_OPTIONS:+$ASAN_OPTIONS:}"
		 "detect_leaks=0\"\nexec strace -f -qq -o %s %s \"$@\"\n", trace, real);
	write_file(wrapper, text);
	chmod(wrapper, 0755);
	snprintf(conf, sizeof conf, "%s/sys.conf", env->dir);
	write_file(conf, "[daemon]\ntick_ms = 20\nunblock_timeout_ms = 100\n"
			 "[flush]\ninterval_ms = 20\n[topic declared]\ncapacity = 64K\n");

	bus = tu_open(env->disk);
	assert_ok(shmbus_topic_create(bus, "sys", &o));
	setenv("SHMBUSD", wrapper, 1);
	rc = tu_daemon_start(d, env->disk, args, NULL, 10000);
	if (saved)
		setenv("SHMBUSD", saved, 1);
	else
		unsetenv("SHMBUSD");
	free(saved);
	if (rc < 0)
		fail_msg("shmbusd under strace did not start");
	if (!tu_daemon_notified(d, "MAINPID=", mainpid, sizeof mainpid, 1000))
		fail_msg("no MAINPID= from the daemon");
	pid = atoi(mainpid + 8);
	/* appends (flush), a dead claim (unblocker), retention, a reload */
	assert_ok(shmbus_producer_new(bus, "sys", NULL, &p));
	for (int i = 0; i < 100; i++) {
		struct shmbus_record r = { .value = "value", .value_len = 5 };

		assert_ok(shmbus_producer_send(p, 0, &r, NULL));
	}
	cl->root = env->disk;
	{
		pid_t k = mp_spawn(claimer_main, cl);

		assert_true(mp_await(&cl->claimed, 5000));
		kill(k, SIGKILL);
		mp_reap(k, 2000);
	}
	/* by the unblocker, or through the pidfd of a registered client */
	for (int64_t end = tu_ms() + 3000; tu_ms() < end;) {
		if (tu_daemon_log_has(d, "of a claim pid", 0) ||
		    tu_daemon_log_has(d, "claimed offset aborted", 0))
			break;
		mp_sleep_us(20000);
	}
	if (!tu_daemon_log_has(d, "of a claim pid", 0) &&
	    !tu_daemon_log_has(d, "claimed offset aborted", 0)) {
		tu_daemon_dump(d);
		fail_msg("the unblocker did not run");
	}
	kill(pid, SIGHUP);
	assert_true(tu_daemon_log_has(d, "SIGHUP: reloaded", 3000));
	mp_sleep_us(300000);   /* retention and flush ticks */
	shmbus_producer_free(p);
	shmbus_close(bus);
	kill(pid, SIGTERM);
	rc = tu_daemon_wait(d, 10000);
	munmap(cl, sizeof *cl);
	return rc;
}

/*
 * The system calls the unit's SystemCallFilter= lines allow, taken in
 * order as systemd does: the first (an allow list) sets what is allowed,
 * each later "~LIST" removes, each later "LIST" adds.  `tmp` is scratch.
 */
static void unit_filter(struct calls *allowed, struct calls *tmp)
{
	char *text = slurp(source("shmbusd.service.in")), *line, *save = NULL;

	memset(allowed, 0, sizeof *allowed);
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *item, *isave = NULL;
		bool deny;

		if (strncmp(line, "SystemCallFilter=", 17))
			continue;
		line += 17;
		deny = *line == '~';
		line += deny;
		assert_false(deny && allowed->n == 0);   /* the first is an allow list */
		memset(tmp, 0, sizeof *tmp);
		for (item = strtok_r(line, " ", &isave); item; item = strtok_r(NULL, " ", &isave)) {
			if (item[0] == '@')
				expand_group(item, tmp, 0);
			else
				calls_add(tmp, item);
		}
		if (!deny) {
			for (size_t i = 0; i < tmp->n; i++)
				calls_add(allowed, tmp->name[i]);
			continue;
		}
		for (size_t i = 0; i < allowed->n;) {
			if (calls_has(tmp, allowed->name[i]))
				memmove(allowed->name[i], allowed->name[--allowed->n],
				       sizeof allowed->name[i]);
			else
				i++;
		}
	}
	free(text);
}

static void test_syscalls_allowed(void **state)
{
	struct env *env = *state;
	static struct calls allowed, group, used;
	char trace[PATH_MAX], line[1024], tmpl[] = "/var/tmp/shmbus-test-sys-XXXXXX";
	struct statfs sf;
	FILE *f;
	int st;

	if (!have("strace"))
		tu_skip("strace is not installed: cannot trace shmbusd's system calls");
	if (!have("systemd-analyze"))
		tu_skip("systemd-analyze is not installed: the filter's groups are unknown");
	if (!mkdtemp(tmpl))
		fail_msg("mkdtemp: %s", strerror(errno));
	snprintf(env->disk, sizeof env->disk, "%s", tmpl);
	if (statfs(env->disk, &sf) < 0 || sf.f_type == TMPFS_MAGIC)
		tu_skip("/var/tmp is tmpfs: no disk root to flush");
	memset(&used, 0, sizeof used);
	unit_filter(&allowed, &group);
	if (allowed.n < 100)
		tu_skip("systemd-analyze syscall-filter gives %zu calls for the unit's filter",
			allowed.n);

	snprintf(trace, sizeof trace, "%s/strace.out", env->dir);
	st = traced_run(env, trace);
	if (st != 0) {
		tu_daemon_dump(&env->d);
		fail_msg("shmbusd under strace exited with %d", st);
	}
	f = fopen(trace, "r");
	assert_non_null(f);
	while (fgets(line, sizeof line, f)) {
		char name[64];

		/* "PID name(args) = ret"; skip "<... name resumed>" and signals */
		if (sscanf(line, "%*d %63[a-z0-9_](", name) == 1 && !strstr(line, "resumed>"))
			calls_add(&used, name);
	}
	fclose(f);
	assert_true(used.n > 20);
	for (size_t i = 0; i < used.n; i++) {
		if (!calls_has(&allowed, used.name[i]))
			fail_msg("shmbusd calls %s(), which the unit's SystemCallFilter= denies",
				 used.name[i]);
	}
	printf("# shmbusd made %zu distinct system calls, all allowed by the unit's filter:",
	       used.n);
	for (size_t i = 0; i < used.n; i++)
		printf(" %s", used.name[i]);
	printf("\n");
	/* the run reached the paths it is meant to cover */
	assert_true(calls_has(&used, "msync"));        /* flush of a disk root */
	assert_true(calls_has(&used, "timerfd_settime"));
	assert_true(calls_has(&used, "signalfd4"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_unit_verify, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unit_verify_installed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unit_security, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unit_settings, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sysusers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tmpfiles, setup, teardown),
		cmocka_unit_test_setup_teardown(test_syscalls_allowed, setup, teardown),
	};

	if (getenv("TEST_FILTER"))
		cmocka_set_test_filter(getenv("TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
