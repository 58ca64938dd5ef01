/*
 * main.c - shmbusd: command line, start-up, signals, timers, shut-down.
 *
 *   shmbusd [--root DIR] [--config FILE] [--metrics ADDR:PORT]
 *           [--check-config] [--log-level LEVEL]
 *
 * With no arguments it serves the user's default root (the same default
 * as libshmbus) in the foreground, logging to stderr, with the built-in
 * configuration.  One daemon per root: a second is refused, naming the
 * first.  SIGHUP reloads the configuration file; SIGTERM and SIGINT stop.
 */
#include "shmbusd.h"
#include "mirror.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <linux/magic.h>
#include <unistd.h>

#include "../util/clock.h"
#include "../util/ctlproto.h"
#include "../util/proc.h"
#include "../util/shareddir.h"

static const char usage[] =
	"Usage: shmbusd [--root DIR] [--config FILE] [--metrics ADDR:PORT]\n"
	"               [--check-config] [--log-level LEVEL]\n"
	"\n"
	"Supervise a shmbus root: recover it at start-up, abort stalled claims,\n"
	"enforce time retention, administer topics over a control socket, and\n"
	"export metrics.  Producers and consumers do not need it to run.\n"
	"\n"
	"  --root DIR           the bus root (default: $SHMBUS_ROOT, else\n"
	"                       $XDG_RUNTIME_DIR/shmbus, else /dev/shm/shmbus-$UID)\n"
	"  --config FILE        read this configuration (see docs/shmbusd.conf.md);\n"
	"                       without it, built-in defaults\n"
	"  --metrics ADDR:PORT  serve Prometheus metrics over HTTP there\n"
	"  --check-config       check the configuration and exit\n"
	"  --log-level LEVEL    error, warning, notice, info (default) or debug\n"
	"  -h, --help           this text\n"
	"  -V, --version        the version\n";

struct args {
	const char *root, *config, *metrics, *log_level;
	bool check;
};

static int parse_args(int argc, char **argv, struct args *a)
{
	static const struct option opts[] = {
		{ "root", required_argument, NULL, 'r' },
		{ "config", required_argument, NULL, 'c' },
		{ "metrics", required_argument, NULL, 'm' },
		{ "check-config", no_argument, NULL, 'k' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":hV", opts, NULL)) != -1) {
		switch (c) {
		case 'r': a->root = optarg; break;
		case 'c': a->config = optarg; break;
		case 'm': a->metrics = optarg; break;
		case 'k': a->check = true; break;
		case 'l': a->log_level = optarg; break;
		case 'h': fputs(usage, stdout); exit(0);
		case 'V':
			printf("shmbusd %d.%d.%d\n", SHMBUS_VERSION_MAJOR, SHMBUS_VERSION_MINOR,
			       SHMBUS_VERSION_PATCH);
			exit(0);
		case ':':
			fprintf(stderr, "shmbusd: %s needs a value\n%s", argv[optind - 1], usage);
			return 2;
		default:
			fprintf(stderr, "shmbusd: unknown option %s\n%s", argv[optind - 1], usage);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "shmbusd: unexpected argument \"%s\"\n%s", argv[optind], usage);
		return 2;
	}
	return 0;
}

/* The command line, kept for reloads: flags override the file then too. */
static struct args cmdline;

/* The flags over the file's values, then the defaults that depend on
 * others (root, control socket); 0, or -1 with err written. */
static int apply_flags(struct config *c, const struct args *a, char *err, size_t len)
{
	if (a->root)
		snprintf(c->root, sizeof c->root, "%s", a->root);
	if (a->metrics) {
		char why[200];

		if (config_metrics_check(a->metrics, why, sizeof why) < 0) {
			snprintf(err, len, "--metrics: %s", why);
			return -1;
		}
		snprintf(c->metrics, sizeof c->metrics, "%s", a->metrics);
	}
	if (a->log_level) {
		int lvl = log_level_parse(a->log_level);

		if (lvl < 0) {
			snprintf(err, len, "--log-level: \"%s\" is not a level; use error, warning, "
				 "notice, info or debug", a->log_level);
			return -1;
		}
		c->log_level = lvl;
	}
	if (!c->root[0] && shmbus_default_root(c->root, sizeof c->root) < 0) {
		snprintf(err, len, "the default root path is too long; pass --root");
		return -1;
	}
	if (!c->control_socket[0] &&
	    ctl_default_path(c->root, c->control_socket, sizeof c->control_socket) < 0) {
		snprintf(err, len, "the root path is too long for a control socket; set control_socket");
		return -1;
	}
	return 0;
}

/* Defaults, then the file, then the flags; 0 or the exit status. */
static int configure(struct daemon *d, const struct args *a)
{
	char err[512];

	cmdline = *a;
	config_defaults(&d->cfg);
	if (a->config && config_load(&d->cfg, a->config, err, sizeof err) < 0) {
		fprintf(stderr, "shmbusd: %s\n", err);
		return 2;
	}
	d->config_path = a->config;
	if (apply_flags(&d->cfg, a, err, sizeof err) < 0) {
		fprintf(stderr, "shmbusd: %s\n", err);
		return 2;
	}
	if (config_check(&d->cfg, err, sizeof err) < 0) {
		fprintf(stderr, "shmbusd: %s%s%s\n", a->config ? a->config : "", a->config ? ": " : "",
			err);
		return 2;
	}
	return 0;
}

/* The root's directories and its bus file, the daemon's own: the bus
 * handle keeps its own, private to libshmbus.  0, or -1 (logged). */
static int open_root(struct daemon *d)
{
	const char *sub[] = { "topics", "groups" };
	int *fd[] = { &d->topicsfd, &d->groupsfd };

	d->rootfd = open(d->cfg.root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (d->rootfd < 0) {
		log_err("cannot open the bus root %s: %s", d->cfg.root, strerror(errno));
		return -1;
	}
	for (int i = 0; i < 2; i++) {
		*fd[i] = openat(d->rootfd, sub[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (*fd[i] < 0) {
			log_err("cannot open %s/%s: %s", d->cfg.root, sub[i], strerror(errno));
			return -1;
		}
	}
	if (dir_open(d->rootfd, false, &d->dir) < 0) {
		log_err("%s: %s", d->cfg.root, shmbus_errmsg());
		return -1;
	}
	return 0;
}

static void close_root(struct daemon *d)
{
	if (d->dir.hdr)
		dir_close(&d->dir);
	if (d->groupsfd >= 0)
		close(d->groupsfd);
	if (d->topicsfd >= 0)
		close(d->topicsfd);
	if (d->rootfd >= 0)
		close(d->rootfd);
}

/* One daemon per root: a lock held for our whole life. */
static int claim_root(struct daemon *d)
{
	struct statfs sf;
	uint64_t start;

	/* O_NOFOLLOW: a link planted there would have us create or lock any file */
	d->lockfd = openat(d->rootfd, "shmbusd.lock", O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0660);
	if (d->lockfd < 0) {
		log_err("cannot open %s/shmbusd.lock: %s", d->cfg.root, sdir_why(errno));
		return -1;
	}
	if (flock(d->lockfd, LOCK_EX | LOCK_NB) < 0) {
		uint32_t pid = dir_daemon_pid(&d->dir);

		log_err("another shmbusd%s already serves %s; stop it first, or give this one "
			"another --root", pid ? "" : " (its pid is not known yet)", d->cfg.root);
		if (pid)
			log_err("the running shmbusd is pid %u", pid);
		return -1;
	}
	d->on_tmpfs = fstatfs(d->rootfd, &sf) == 0 &&
		      (sf.f_type == TMPFS_MAGIC || sf.f_type == RAMFS_MAGIC);
	/* the daemon block of the bus file: how clients find us */
	(void)proc_self(&start);
	if (dir_daemon_take(&d->dir, d->cfg.control_socket, (uint32_t)getpid(), start,
			    real_ns()) < 0) {
		log_err("control socket path %s is longer than %zu bytes; set a shorter "
			"control_socket", d->cfg.control_socket, DIR_SOCKET_MAX - 1);
		return -1;
	}
	return 0;
}

static void release_root(struct daemon *d)
{
	if (d->bus && d->lockfd >= 0) {
		dir_daemon_leave(&d->dir);
		close(d->lockfd);
		d->lockfd = -1;
	}
}

static void on_signal(struct daemon *d, uint32_t events, void *arg)
{
	struct signalfd_siginfo si;
	int fd = *(int *)arg;

	(void)events;
	while (read(fd, &si, sizeof si) == (ssize_t)sizeof si) {
		if (si.ssi_signo == SIGHUP) {
			daemon_reload(d);
		} else {
			log_notice("stopping on signal %s", strsignal((int)si.ssi_signo));
			notify_stopping(d);
			loop_stop(d);
		}
	}
}

static void on_tick(struct daemon *d, uint32_t events, void *arg)
{
	(void)events;
	(void)arg;
	d->st.ticks++;
	dir_daemon_beat(&d->dir, real_ns());
	supervise_refresh(d);
	supervise_tick(d);
	metrics_tick(d);
	mirror_certs_tick();
}

static void on_retention(struct daemon *d, uint32_t events, void *arg)
{
	(void)events;
	(void)arg;
	supervise_refresh(d); /* a topic created without us is seen here too */
	supervise_retire(d);
}

static void on_watchdog(struct daemon *d, uint32_t events, void *arg)
{
	(void)events;
	(void)arg;
	notify_watchdog(d);
}

static int start_timers(struct daemon *d, int *sigfd)
{
	sigset_t set;
	int64_t wd = notify_watchdog_ns();

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	*sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (*sigfd < 0 || loop_add(d, *sigfd, EPOLLIN, on_signal, sigfd) < 0)
		return -errno;
	d->tick_fd = loop_timer(d, d->cfg.tick_ms * 1000000, on_tick, NULL);
	if (d->tick_fd < 0)
		return d->tick_fd;
	/* armed by supervise_retention_timer() once topics are known */
	d->retention_fd = loop_timer(d, 0, on_retention, NULL);
	if (d->retention_fd < 0)
		return d->retention_fd;
	if (wd) {
		d->watchdog_fd = loop_timer(d, wd / 2, on_watchdog, NULL);
		if (d->watchdog_fd < 0)
			return d->watchdog_fd;
	}
	return 0;
}

void daemon_reload(struct daemon *d)
{
	struct config next;
	char err[512], cannot[256];
	int applied;

	notify_reloading(d);
	if (!d->config_path) {
		log_notice("SIGHUP: no configuration file was given (--config); nothing to reload");
		notify_ready(d);
		return;
	}
	config_defaults(&next);
	if (config_load(&next, d->config_path, err, sizeof err) < 0 ||
	    apply_flags(&next, &cmdline, err, sizeof err) < 0 ||
	    config_check_keys(&next, err, sizeof err) < 0) {
		log_err("SIGHUP: %s; the running configuration is kept", err);
		config_free(&next);
		notify_ready(d);
		return;
	}
	applied = config_apply_live(&d->cfg, &next, cannot, sizeof cannot);
	config_free(&next);
	log_set_level(d->cfg.log_level);
	loop_timer_set(d->tick_fd, d->cfg.tick_ms * 1000000);
	supervise_retention_timer(d); /* its period is at most a tick */
	topics_declare(d); /* through the worker: the loop goes on */
	/* certificates renewed in place, at the paths in force (a new path
	 * is a restart key, listed below): all good, or none taken */
	(void)mirror_tls_reload(d);
	log_notice("SIGHUP: reloaded %s (%d change%s applied)%s%s%s", d->config_path, applied,
		   applied == 1 ? "" : "s", cannot[0] ? "; needs a restart to change: " : "",
		   cannot, "");
	notify_ready(d);
}

/* The shmbus command to suggest: the one built next to us, if any. */
static const char *cli_path(void)
{
	static char path[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", path, sizeof path - 8);
	char *slash;

	if (n <= 0)
		return "shmbus";
	path[n] = '\0';
	slash = strrchr(path, '/');
	if (!slash)
		return "shmbus";
	strcpy(slash + 1, "shmbus");
	return access(path, X_OK) == 0 ? path : "shmbus";
}

static void banner(const struct daemon *d)
{
	const char *cli = cli_path();
	struct dir_daemon b;

	log_notice("shmbusd %d.%d.%d serving %s (pid %d)", SHMBUS_VERSION_MAJOR,
		   SHMBUS_VERSION_MINOR, SHMBUS_VERSION_PATCH, d->cfg.root, (int)getpid());
	if (!isatty(STDOUT_FILENO))
		return;
	printf("shmbusd is running on the bus root %s\n", d->cfg.root);
	dir_daemon_read(&d->dir, &b);
	printf("  control socket  %s\n", b.control_socket[0] ? b.control_socket : "(none)");
	printf("  metrics         %s\n", d->cfg.metrics[0] ? d->cfg.metrics : "(off; --metrics ADDR:PORT)");
	printf("From another terminal:\n");
	printf("  export SHMBUS_ROOT=%s\n", d->cfg.root);
	printf("  %s topic create orders --partitions 4\n", cli);
	printf("  seq 1 10 | %s produce orders\n", cli);
	printf("  %s consume orders -e\n", cli);
	printf("  %s status\n", cli);
	printf("Stop with Ctrl-C.\n");
	fflush(stdout);
}

static int serve(struct daemon *d)
{
	int sigfd = -1, rc;

	d->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (d->epfd < 0 || claim_root(d) < 0)
		return 1;
	rc = start_timers(d, &sigfd);
	if (rc < 0) {
		log_err("cannot set up signals and timers: %s", strerror(-rc));
		return 1;
	}
	topics_sweep(d);      /* half-made topics: left by an interrupted create */
	supervise_refresh(d); /* recovers what it finds (recovery.c) */
	topics_declare(d);
	kevents_init(d);      /* [kernel-events]: logs why if it cannot */
	if (metrics_init(d) < 0 || coord_init(d) < 0 || control_init(d) < 0 ||
	    topics_init(d) < 0 || mirror_source_init(d) < 0 || mirror_sink_init(d) < 0) {
		rc = -1;
	} else {
		banner(d);
		notify_ready(d);
		rc = loop_run(d);
		if (rc < 0)
			log_err("the event loop failed: %s", strerror(-rc));
	}
	mirror_sink_fini(d);
	mirror_source_fini(d);
	topics_fini(d);       /* answers what it has left, so before the socket goes */
	coord_fini(d);        /* before the connections close: members need not move */
	control_fini(d);
	metrics_fini(d);
	kevents_fini(d);
	clients_fini(d);
	supervise_fini(d);
	release_root(d);
	if (sigfd >= 0)
		close(sigfd);
	return rc < 0 ? 1 : 0;
}

/*
 * Each control connection holds a socket, each registered client a pidfd
 * too: 1024 connections need over 2048 descriptors, more than the usual
 * soft limit of 1024.  Raise the soft limit to the hard one (epoll, not
 * select, so a high limit costs nothing), and say so if that is short.
 */
static void raise_nofile(void)
{
	const rlim_t want = 2 * CONFIG_MAX_CONNS + 256;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rlim_t was = rl.rlim_cur;

		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
			log_debug("open files: soft limit raised from %llu to %llu",
				  (unsigned long long)was, (unsigned long long)rl.rlim_cur);
		else
			rl.rlim_cur = was;
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want)
		log_warn("open files are limited to %llu: fewer than the %llu that %d control "
			 "connections and their pidfds may need; raise it (LimitNOFILE= in "
			 "shmbusd.service, or ulimit -n)", (unsigned long long)rl.rlim_cur,
			 (unsigned long long)want, CONFIG_MAX_CONNS);
}

int main(int argc, char **argv)
{
	static struct daemon d = { .rootfd = -1, .topicsfd = -1, .groupsfd = -1, .lockfd = -1,
				   .tick_fd = -1, .retention_fd = -1, .watchdog_fd = -1 };
	struct args a = { 0 };
	int rc = parse_args(argc, argv, &a);

	if (rc)
		return rc;
	rc = configure(&d, &a);
	if (rc)
		return rc;
	if (a.check) {
		printf("%s: the configuration is valid (root %s, %zu declared topic%s)\n",
		       a.config ? a.config : "built-in defaults", d.cfg.root, d.cfg.ntopics,
		       d.cfg.ntopics == 1 ? "" : "s");
		return 0;
	}
	log_init(d.cfg.log_level);
	raise_nofile();
	{
		/* the daemon administers through its own bus, never through itself */
		SHMBUS_OPTS(shmbus_open_opts, o, .root = d.cfg.root, .no_daemon = true);

		if (shmbus_open(&o, &d.bus) < 0) {
			log_err("%s", shmbus_errmsg());
			return 1;
		}
	}
	d.started_ns = real_ns();
	rc = open_root(&d) < 0 ? 1 : serve(&d);
	close_root(&d);
	config_free(&d.cfg);
	shmbus_close(d.bus);
	return rc;
}
