/*
 * bus.c - opening a bus root, and error texts.
 *
 * A root is a directory holding the bus file, topics/ and groups/.  The
 * library works on it alone (embedded mode, like SQLite: admin calls take
 * the root's lock); shmbusd, when it runs, adds supervision, and the bus
 * connects to it (daemon.c).
 */
#include "internal.h"

#include "../util/shareddir.h"
#include "../shm/usage.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

SHMBUS_API const char *shmbus_strerror(int err)
{
	switch (err < 0 ? -err : err) {
	case 0:
		return "success";
	case EAGAIN:
		return "no room: a registered consumer has not read the records a new one would overwrite";
	case ERANGE:
		return "offset out of range: no longer held, or not yet appended";
	case EIDRM:
		return "the topic was deleted";
	case ECANCELED:
		return "the claim was aborted: the producer stalled past the unblock timeout";
	case EBUSY:
		return "a zero-copy claim is in the way: commit or abort it";
	case EMSGSIZE:
		return "record larger than half the partition's ring";
	case EBADMSG:
		return "damaged data in shared memory";
	case EPROTO:
		return "file of another shmbus format version";
	case EROFS:
		return "partition is read-only here (mapped read-only, or a replica)";
	default:
		return strerror(err < 0 ? -err : err);
	}
}

SHMBUS_API const char *shmbus_errmsg(void)
{
	return shm_errmsg();
}

SHMBUS_API int shmbus_default_root(char *buf, size_t len)
{
	const char *env = getenv("SHMBUS_ROOT"), *xdg = getenv("XDG_RUNTIME_DIR");
	int n;

	if (env && *env)
		n = snprintf(buf, len, "%s", env);
	else if (xdg && *xdg && access(xdg, W_OK) == 0)
		n = snprintf(buf, len, "%s/shmbus", xdg);
	else
		n = snprintf(buf, len, "/dev/shm/shmbus-%u", (unsigned)getuid());
	if (n < 0 || (size_t)n >= len)
		return lib_err(-ENAMETOOLONG, "the bus root path is longer than %zu bytes", len);
	return n;
}

int make_shared_dir(int parentfd, const char *name)
{
	struct stat st, parent;
	mode_t mode = 0770;
	int fd;

	if (mkdirat(parentfd, name, mode) < 0)
		return -errno;
	/* group-shared whatever the creator's umask, and setgid like its
	 * parent so files keep the root's group; set on the directory we
	 * made, never through a link put in its place meanwhile */
	if (fstat(parentfd, &parent) == 0 && (parent.st_mode & S_ISGID))
		mode |= S_ISGID;
	fd = sdir_open(parentfd, name, O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		return fd;
	if (fstat(fd, &st) == 0 && st.st_uid == geteuid())
		(void)fchmod(fd, mode);
	close(fd);
	return 0;
}

static int open_subdir(int rootfd, const char *name, bool create, const char *root)
{
	int fd, rc;

	if (create && (rc = make_shared_dir(rootfd, name)) < 0 && rc != -EEXIST)
		return lib_err(rc, "cannot create %s/%s: %s", root, name, sdir_why(rc));
	fd = sdir_open(rootfd, name, O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		return lib_err(fd, "cannot open %s/%s: %s", root, name, sdir_why(fd));
	return fd;
}

/* The user the service runs as (systemd/shmbus-sysusers.conf): its root,
 * /dev/shm/shmbus, is shared with its group by design. */
#ifndef SHMBUS_SERVICE_USER
#define SHMBUS_SERVICE_USER "shmbus"
#endif

/* The name of uid, or "no account" (in buf). */
static const char *user_name(uid_t uid, char *buf, size_t len)
{
	struct passwd pw, *res = NULL;
	char tmp[1024];

	getpwuid_r(uid, &pw, tmp, sizeof tmp, &res);
	snprintf(buf, len, "%s", res ? res->pw_name : "no account");
	return buf;
}

static bool service_user(uid_t uid)
{
	struct passwd pw, *res = NULL;
	char tmp[1024];

	return getpwnam_r(SHMBUS_SERVICE_USER, &pw, tmp, sizeof tmp, &res) == 0 && res &&
	       res->pw_uid == uid;
}

/*
 * May we use this root?  As with XDG_RUNTIME_DIR: a root someone else
 * owns may be a trap made before us at a name we would use (anyone can
 * create /dev/shm/shmbus-$UID first) to read what we send.  Accepted:
 * our own, root's, and the service user's (shared with its group by
 * design); root itself may use any.  A root that every user may write is
 * refused whoever owns it.  docs/operations.md, "Whose root".
 */
static int check_root_owner(const shmbus *bus)
{
	uid_t me = geteuid();
	char who[64];
	struct stat st;

	if (fstat(bus->rootfd, &st) < 0)
		return lib_err(-errno, "cannot stat bus root %s: %s", bus->root, strerror(errno));
	if (st.st_uid != me && st.st_uid != 0 && me != 0 && !service_user(st.st_uid))
		return lib_err(-EPERM, "bus root %s belongs to uid %u (%s), not to you (uid %u), "
			       "root or the service user \"%s\": another user may have made it "
			       "before you to read what you send; look at it (ls -la %s), remove it "
			       "if it is not yours, or choose another root (--root or SHMBUS_ROOT)",
			       bus->root, (unsigned)st.st_uid,
			       user_name(st.st_uid, who, sizeof who), (unsigned)me,
			       SHMBUS_SERVICE_USER, bus->root);
	if (st.st_mode & S_IWOTH)
		return lib_err(-EPERM, "bus root %s is writable by every user (mode %04o): anyone "
			       "could replace its files; chmod o-w %s (to share a root, give it a "
			       "group and mode 2770, see docs/operations.md)", bus->root,
			       (unsigned)(st.st_mode & 07777), bus->root);
	return 0;
}

static int mkdir_p(const char *path, mode_t mode)
{
	char tmp[PATH_MAX];

	snprintf(tmp, sizeof tmp, "%s", path);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

SHMBUS_API int shmbus_open(const struct shmbus_open_opts *opts, shmbus **ret)
{
	struct shmbus_open_opts o;
	shmbus *bus;
	int rc;

	rc = OPTS_LOAD(shmbus_open_opts, o, opts);
	if (rc < 0)
		return rc;
	bus = calloc(1, sizeof *bus);
	if (!bus)
		return lib_err(-ENOMEM, "out of memory");
	bus->rootfd = bus->topicsfd = bus->groupsfd = bus->usagefd = bus->linkfd = -1;
	bus->no_daemon = o.no_daemon;
	if (o.root && *o.root)
		snprintf(bus->root, sizeof bus->root, "%s", o.root);
	else if (shmbus_default_root(bus->root, sizeof bus->root) < 0) {
		free(bus);
		return lib_err(-ENAMETOOLONG, "the default bus root path is too long; set SHMBUS_ROOT");
	}
	if (!o.no_create && (rc = mkdir_p(bus->root, 0770)) < 0) {
		rc = lib_err(rc, "cannot create bus root %s: %s; pass another root (--root or "
			     "SHMBUS_ROOT)", bus->root, strerror(-rc));
		goto fail;
	}
	bus->rootfd = open(bus->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (bus->rootfd < 0) {
		rc = errno == ENOENT ? lib_err(-ENOENT, "bus root %s does not exist; create it by "
					       "opening the bus without no_create", bus->root)
				     : lib_err(-errno, "cannot open bus root %s: %s", bus->root,
					       strerror(errno));
		goto fail;
	}
	rc = check_root_owner(bus);
	if (rc)
		goto fail;
	rc = dir_open(bus->rootfd, !o.no_create, &bus->dir);
	if (rc) {
		if (rc == -ENOENT)
			rc = lib_err(-ENOENT, "%s is not a bus root (no bus file)", bus->root);
		goto fail;
	}
	rc = open_subdir(bus->rootfd, "topics", true, bus->root);
	if (rc < 0)
		goto fail;
	bus->topicsfd = rc;
	rc = open_subdir(bus->rootfd, "groups", true, bus->root);
	if (rc < 0)
		goto fail;
	bus->groupsfd = rc;
	rc = usage_open(bus->rootfd);
	if (rc < 0)
		goto fail;
	bus->usagefd = rc;
	pthread_mutex_init(&bus->admin, NULL);
	pthread_mutex_init(&bus->sweep_lock, NULL);
	pthread_mutex_init(&bus->link_lock, NULL);
	rc = cache_init(bus);
	if (rc)
		goto fail;
	daemon_link_open(bus); /* shmbusd, if one serves the root (daemon.c) */
	*ret = bus;
	return 0;
fail:
	shmbus_close(bus);
	return rc;
}

SHMBUS_API void shmbus_close(shmbus *bus)
{
	if (!bus)
		return;
	daemon_link_close(bus);
	cache_destroy(bus);
	dir_close(&bus->dir);
	if (bus->topicsfd >= 0)
		close(bus->topicsfd);
	if (bus->groupsfd >= 0)
		close(bus->groupsfd);
	/* after cache_destroy: the mappings released their locks on it */
	if (bus->usagefd >= 0)
		close(bus->usagefd);
	if (bus->rootfd >= 0)
		close(bus->rootfd);
	free(bus);
}

SHMBUS_API const char *shmbus_root(const shmbus *bus)
{
	return bus->root;
}

int topic_lookup(shmbus *bus, const char *name, struct bus_topic *ret)
{
	if (!name || !dir_name_valid(name))
		return lib_err(-EINVAL, "\"%s\" is not a valid topic name: use 1 to 249 of "
			       "[A-Za-z0-9._-]", name ? name : "(null)");
	if (dir_lookup(&bus->dir, name, ret) < 0)
		return lib_err(-ENOENT, "topic \"%s\" does not exist in %s; create it with "
			       "`shmbus --root %s topic create %s`", name, bus->root, bus->root, name);
	return 0;
}

int check_partition(const char *topic, uint32_t n, int32_t partition)
{
	if (partition < 0 || (uint32_t)partition >= n)
		return lib_err(-EINVAL, "topic \"%s\" has %u partition%s (0..%u), not %d", topic, n,
			       n == 1 ? "" : "s", n - 1, partition);
	return 0;
}
