/*
 * topics.c - creating, deleting and growing topics, under the root's admin
 * lock.
 *
 * Changes to the root run under its admin lock (a mutex for this
 * process's threads, flock for other processes).  A topic becomes visible
 * only once all its partition files exist; a deleted topic is marked
 * deleted in every partition before its files are unlinked, so its users
 * get -EIDRM rather than writes into a dead file.
 *
 * A creator killed mid-create (or a delete interrupted between removing
 * the entry and the files) leaves a topic directory no entry of the bus
 * directory owns: a half-made topic, invisible to `topic list` yet
 * holding its files' memory.  Under the admin lock no create or delete is
 * under way, so every such directory is left over: the next create or
 * delete removes them all (admin_sweep; shmbusd calls it at start), and
 * deleting a half-made topic by its name removes it.
 *
 * Creation checks, before it makes a file, that the root's filesystem has
 * room for all of them (files are allocated whole, format.md §1), so a
 * topic that cannot fit fails at once with the numbers instead of after
 * filling the filesystem; and it can be stopped between two partitions
 * (shmbusd's SIGTERM), removing what it made.
 *
 * A topic grows (adding partitions, never removing one) the same way:
 * the new files are made whole before the entry with the larger count is
 * published, keeping the topic's id.  A grower killed in between leaves
 * files past the entry's count in a directory the entry names; a record
 * in the bus header (format.md §9) lets the next holder of the lock find
 * and remove them, without scanning every topic and without mistaking
 * them for a half-made topic.
 *
 * When shmbusd serves the root, creation, deletion and growth are asked of it
 * (daemon.c): it decides who may, and its files get the root's group and
 * its configured mode.  Without it, or if it vanishes, they run here.
 */
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "../util/clock.h"
#include "../util/shareddir.h"
#include "../util/testpoint.h"

#define LOCK_POLL_US 10000  /* a stoppable wait for the admin lock checks this often */

int admin_lock(shmbus *bus)
{
	int rc;

	pthread_mutex_lock(&bus->admin);
	rc = dir_lock(&bus->dir);
	if (rc)
		pthread_mutex_unlock(&bus->admin);
	return rc;
}

int admin_trylock(shmbus *bus)
{
	int rc;

	if (pthread_mutex_trylock(&bus->admin))
		return -EWOULDBLOCK; /* another thread of this process holds it */
	rc = dir_trylock(&bus->dir);
	if (rc)
		pthread_mutex_unlock(&bus->admin);
	return rc;
}

void admin_unlock(shmbus *bus)
{
	dir_unlock(&bus->dir);
	pthread_mutex_unlock(&bus->admin);
}

static bool stopped(const struct admin_hooks *h)
{
	return h && h->stop && __atomic_load_n(h->stop, __ATOMIC_RELAXED);
}

/* The admin lock, giving up with -ECANCELED once the hooks say stop. */
static int lock_unless_stopped(shmbus *bus, const char *name, const struct admin_hooks *h)
{
	int rc;

	if (!h || !h->stop)
		return admin_lock(bus);
	pthread_mutex_lock(&bus->admin);
	while ((rc = dir_trylock(&bus->dir)) == -EWOULDBLOCK && !stopped(h))
		usleep(LOCK_POLL_US);
	if (rc == 0)
		return 0;
	pthread_mutex_unlock(&bus->admin);
	if (rc == -EWOULDBLOCK)
		return lib_err(-ECANCELED, "topic \"%s\": not changed: stopped while another "
			       "process held the root's admin lock", name);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Topic directories                                                   */

/* Remove a topic directory and everything in it; counts what it held. */
static void remove_topic_dir(shmbus *bus, const char *name, uint64_t *files, uint64_t *bytes)
{
	int fd = sdir_open(bus->topicsfd, name, O_RDONLY | O_DIRECTORY);
	struct dirent *e;
	struct stat st;
	DIR *d;

	if (fd == -ELOOP || fd == -ENOTDIR) /* not ours: never follow, remove it */
		unlinkat(bus->topicsfd, name, 0);
	if (fd < 0)
		return;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return;
	}
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && bytes)
			*bytes += (uint64_t)st.st_blocks * 512;
		if (unlinkat(fd, e->d_name, 0) == 0 && files)
			(*files)++;
	}
	closedir(d);
	unlinkat(bus->topicsfd, name, AT_REMOVEDIR);
}

static bool is_topic_dir(shmbus *bus, const char *name)
{
	struct stat st;

	return dir_name_valid(name) &&
	       fstatat(bus->topicsfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct bus_topic *)a)->name, ((const struct bus_topic *)b)->name);
}

/* Names of the directories under topics/ that no topic owns; malloc'd,
 * NUL-separated, *n of them.  NULL if there are none (or no memory). */
static char *half_made_names(shmbus *bus, size_t *n)
{
	struct bus_topic *all = malloc(sizeof *all * BUS_MAX_TOPICS), key;
	int fd = openat(bus->topicsfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC), count;
	char *names = NULL;
	size_t len = 0;
	struct dirent *e;
	DIR *d = NULL;

	*n = 0;
	if (!all || fd < 0 || !(d = fdopendir(fd)))
		goto out;
	fd = -1;
	count = dir_list(&bus->dir, all, BUS_MAX_TOPICS);
	qsort(all, (size_t)count, sizeof *all, by_name);
	while ((e = readdir(d))) {
		size_t l = strlen(e->d_name) + 1;
		char *grown;

		snprintf(key.name, sizeof key.name, "%s", e->d_name);
		if (!is_topic_dir(bus, e->d_name) ||
		    bsearch(&key, all, (size_t)count, sizeof *all, by_name))
			continue;
		grown = realloc(names, len + l);
		if (!grown)
			break;
		names = grown;
		memcpy(names + len, e->d_name, l);
		len += l;
		(*n)++;
	}
out:
	if (d)
		closedir(d);
	if (fd >= 0)
		close(fd);
	free(all);
	return names;
}

static void sweep_grow_locked(shmbus *bus, const struct admin_hooks *h);

/* Under the admin lock: remove every half-made topic, and what an
 * interrupted grow left.  Sets *named if one of the half-made topics was
 * `name` (NULL: none asked about). */
static int sweep_locked(shmbus *bus, const char *name, bool *named, const struct admin_hooks *h)
{
	size_t n;
	char *names, *at;

	sweep_grow_locked(bus, h); /* never a half-made topic: its entry names its directory */
	names = half_made_names(bus, &n);
	at = names;

	for (size_t i = 0; i < n; i++, at += strlen(at) + 1) {
		uint64_t files = 0, bytes = 0;

		remove_topic_dir(bus, at, &files, &bytes);
		if (name && named && !strcmp(at, name))
			*named = true;
		if (h && h->swept)
			h->swept(h->ctx, at, files, bytes);
	}
	free(names);
	return (int)n;
}

/* Is `name` the file of a partition below n ("0" .. "n-1", as created)? */
static bool live_partition_file(const char *name, uint32_t n)
{
	uint32_t v = 0;
	size_t len = strlen(name);

	if (len == 0 || len > 5 || (name[0] == '0' && len > 1))
		return false;
	for (size_t i = 0; i < len; i++) {
		if (name[i] < '0' || name[i] > '9')
			return false;
		v = v * 10 + (uint32_t)(name[i] - '0');
	}
	return v < n;
}

/* Remove every file in t's directory that is not one of its partitions:
 * what an interrupted grow made past the entry's count. */
static void remove_extra_files(shmbus *bus, const struct bus_topic *t, uint64_t *files,
			       uint64_t *bytes)
{
	int fd = sdir_open(bus->topicsfd, t->name, O_RDONLY | O_DIRECTORY);
	struct dirent *e;
	struct stat st;
	DIR *d;

	if (fd < 0)
		return;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return;
	}
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
		    live_partition_file(e->d_name, t->partitions))
			continue;
		if (fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0)
			*bytes += (uint64_t)st.st_blocks * 512;
		if (unlinkat(fd, e->d_name, 0) == 0)
			(*files)++;
	}
	closedir(d);
}

/* The entry of topic `id`, if the directory still has it. */
static int lookup_id(shmbus *bus, uint64_t id, struct bus_topic *ret)
{
	struct bus_topic *all = malloc(sizeof *all * BUS_MAX_TOPICS);
	int n, rc = -ENOENT;

	if (!all)
		return -ENOMEM;
	n = dir_list(&bus->dir, all, BUS_MAX_TOPICS);
	for (int i = 0; i < n && rc; i++)
		if (all[i].id == id) {
			*ret = all[i];
			rc = 0;
		}
	free(all);
	return rc;
}

/* Under the admin lock: what a grow that was interrupted left (format.md
 * §9).  Its topic is in the directory with the count it had, or the one
 * asked for if the grow was stopped after publishing it; the files past
 * that count are no partition of it.  A topic deleted since is gone with
 * its directory. */
static void sweep_grow_locked(shmbus *bus, const struct admin_hooks *h)
{
	uint64_t id = dir_grow_pending(&bus->dir, NULL), files = 0, bytes = 0;
	struct bus_topic t;

	if (!id)
		return;
	if (lookup_id(bus, id, &t) == 0) {
		remove_extra_files(bus, &t, &files, &bytes);
		if (files && h && h->swept_grow)
			h->swept_grow(h->ctx, t.name, files, bytes);
	}
	dir_grow_end(&bus->dir);
}

int admin_sweep(shmbus *bus, const struct admin_hooks *h)
{
	int rc = lock_unless_stopped(bus, "(half-made)", h);

	if (rc)
		return rc;
	rc = sweep_locked(bus, NULL, NULL, h);
	admin_unlock(bus);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Create                                                              */

/* "1.5 GiB" */
static const char *human(char *buf, size_t len, uint64_t bytes)
{
	static const char *const units[] = { "bytes", "KiB", "MiB", "GiB", "TiB", "PiB" };
	double v = (double)bytes;
	int u = 0;

	while (v >= 1024 && u < 5) {
		v /= 1024;
		u++;
	}
	snprintf(buf, len, u ? "%.1f %s" : "%.0f %s", v, units[u]);
	return buf;
}

/* Room on the root's filesystem for n new partition files of t (all of
 * them for a create, the added ones for a grow), before the first is
 * made.  `fix` ends the message: what the user may change. */
static int check_room(shmbus *bus, const struct bus_topic *t, uint32_t n, const char *fix)
{
	uint64_t each = part_file_size(t->capacity, t->index_capacity);
	uint64_t need = each * n, avail;
	char a[32], b[32];
	struct statvfs sv;

	if (fstatvfs(bus->topicsfd, &sv) < 0)
		return 0; /* cannot tell: fallocate still refuses what does not fit */
	avail = (uint64_t)sv.f_bavail * sv.f_frsize;
	if (need > avail)
		return lib_err(-ENOSPC, "topic \"%s\" needs %llu bytes (%s: %u partition%s of %llu "
			       "bytes) on the filesystem of %s, which has %llu bytes (%s) free; free "
			       "space there, or %s", t->name, (unsigned long long)need,
			       human(a, sizeof a, need), n, n == 1 ? "" : "s",
			       (unsigned long long)each,
			       bus->root, (unsigned long long)avail, human(b, sizeof b, avail), fix);
	if (sv.f_files && sv.f_favail < (uint64_t)n + 1)
		return lib_err(-ENOSPC, "topic \"%s\" needs %u files on the filesystem of %s, "
			       "which has %llu free inodes; delete unused topics, or %s (a tmpfs "
			       "takes nr_inodes= to have more)", t->name, n + 1, bus->root,
			       (unsigned long long)sv.f_favail, fix);
	return 0;
}

/* The files of partitions [from, t->partitions) of t, in its directory
 * dfd; a stop between two gives -ECANCELED (the caller removes them). */
static int create_files(int dfd, const struct bus_topic *t, uint32_t from,
			const struct admin_hooks *h)
{
	char errbuf[512];
	int rc = 0;

	for (uint32_t i = from; i < t->partitions && rc == 0; i++) {
		struct part_params prm = {
			.topic = t->name, .topic_id = t->id, .partition = i,
			.capacity = t->capacity, .index_capacity = t->index_capacity,
			.policy = t->policy, .numa_node = t->numa_node, .mode = t->mode,
			.status = bus_topic_status(t),
		};
		char name[16];
		struct part p;

		if (stopped(h) && from == 0) {
			rc = lib_err(-ECANCELED, "topic \"%s\" was not created: stopped after %u of %u "
				     "partitions (shmbusd is stopping), and what was made is removed; "
				     "create it again", t->name, i, t->partitions);
			break;
		}
		if (stopped(h)) {
			rc = lib_err(-ECANCELED, "topic \"%s\" keeps its %u partitions: stopped after "
				     "making %u of the %u new ones (shmbusd is stopping), and those are "
				     "removed; add them again", t->name, from, i - from,
				     t->partitions - from);
			break;
		}
		snprintf(name, sizeof name, "%u", i);
		rc = part_create(dfd, name, &prm, &p);
		if (rc == 0) {
			part_unmap(&p);
		} else {
			snprintf(errbuf, sizeof errbuf, "%s", shm_errmsg());
			lib_err(rc, "topic \"%s\" partition %u: %s", t->name, i, errbuf);
		}
		SHM_TESTPOINT(topic_partition_made);
	}
	return rc;
}

static int create_partitions(shmbus *bus, const struct bus_topic *t, const struct admin_hooks *h)
{
	struct stat st;
	int dfd, rc;

	/* no topic owns the name (we hold the admin lock): a link or file
	 * there was planted; remove it, never follow it */
	if (fstatat(bus->topicsfd, t->name, &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISDIR(st.st_mode))
		unlinkat(bus->topicsfd, t->name, 0);
	rc = make_shared_dir(bus->topicsfd, t->name);
	if (rc < 0)
		return lib_err(rc, "cannot create directory for topic \"%s\" in %s/topics: %s",
			       t->name, bus->root, strerror(-rc));
	dfd = sdir_open(bus->topicsfd, t->name, O_RDONLY | O_DIRECTORY);
	if (dfd < 0)
		return lib_err(dfd, "cannot open directory of topic \"%s\": %s", t->name,
			       sdir_why(dfd));
	rc = create_files(dfd, t, 0, h);
	close(dfd);
	return rc;
}

/* Check the options and fill *t (all but its id); 0 or -EINVAL. */
static int topic_params(const char *name, const struct shmbus_topic_opts *o, struct bus_topic *t)
{
	struct part_params prm;
	char why[512];
	int rc;

	if (!dir_name_valid(name))
		return lib_err(-EINVAL, "\"%s\" is not a valid topic name: use 1 to 249 of "
			       "[A-Za-z0-9._-]", name ? name : "(null)");
	memset(t, 0, sizeof *t);
	snprintf(t->name, sizeof t->name, "%s", name);
	t->partitions = o->partitions ? o->partitions : 1;
	t->capacity = o->capacity ? o->capacity : SHMBUS_DEFAULT_CAPACITY;
	t->index_capacity = o->index_capacity ? o->index_capacity : part_default_icap(t->capacity);
	t->policy = (uint32_t)o->policy;
	t->numa_node = o->numa_bind ? o->numa_node : -1;
	t->retention_ms = o->retention_ms;
	t->mode = o->mode ? o->mode : 0660;
	t->created_ns = real_ns();
	if (t->partitions > BUS_MAX_PARTITIONS)
		return lib_err(-EINVAL, "topic \"%s\": %u partitions are more than a topic may have, "
			       "%u (each partition is a file, and a mapping in every process that "
			       "uses the whole topic); use fewer, or spread the records over several "
			       "topics", name, t->partitions, BUS_MAX_PARTITIONS);
	if (o->retention_ms < 0)
		return lib_err(-EINVAL, "topic \"%s\": retention must be >= 0 ms", name);
	prm = (struct part_params){ .topic = name, .capacity = t->capacity,
				    .index_capacity = t->index_capacity, .policy = t->policy };
	rc = part_params_check(&prm);
	if (rc) {
		snprintf(why, sizeof why, "%s", shm_errmsg());
		return lib_err(rc, "topic \"%s\": %s", name, why);
	}
	return 0;
}

static int create_topic(shmbus *bus, const char *name, const struct shmbus_topic_opts *opts,
			const char *mirror_source, const struct admin_hooks *h)
{
	struct shmbus_topic_opts o;
	struct bus_topic t, old;
	int rc;

	rc = OPTS_LOAD(shmbus_topic_opts, o, opts);
	if (rc == 0)
		rc = topic_params(name, &o, &t);
	if (rc == 0 && mirror_source) {
		t.flags |= BUS_TOPIC_REPLICA;
		snprintf(t.mirror_source, sizeof t.mirror_source, "%s", mirror_source);
	}
	if (rc == 0)
		rc = lock_unless_stopped(bus, name, h);
	if (rc)
		return rc;
	sweep_locked(bus, NULL, NULL, h); /* their room counts too */
	if (dir_lookup(&bus->dir, name, &old) == 0) {
		rc = lib_err(-EEXIST, "topic \"%s\" already exists (%u partitions); use it, or "
			     "delete it first", name, old.partitions);
	} else if ((rc = check_room(bus, &t, t.partitions, "create the topic with fewer "
				     "--partitions or a smaller --capacity")) == 0) {
		t.id = dir_reserve_id(&bus->dir);
		rc = create_partitions(bus, &t, h);
		if (rc == 0)
			rc = dir_add(&bus->dir, &t);
		if (rc)
			remove_topic_dir(bus, name, NULL, NULL);
	}
	admin_unlock(bus);
	return rc;
}

int admin_topic_create(shmbus *bus, const char *name, const struct shmbus_topic_opts *opts,
		       const struct admin_hooks *h)
{
	return create_topic(bus, name, opts, NULL, h);
}

int admin_replica_create(shmbus *bus, const char *name, const struct shmbus_topic_opts *opts,
			 const char *source, const struct admin_hooks *h)
{
	return create_topic(bus, name, opts, source, h);
}

SHMBUS_API int shmbus_topic_create(shmbus *bus, const char *name,
				   const struct shmbus_topic_opts *opts)
{
	struct shmbus_topic_opts o;
	struct bus_topic t;
	int rc;

	rc = OPTS_LOAD(shmbus_topic_opts, o, opts);
	if (rc == 0)
		rc = topic_params(name, &o, &t); /* a clear error before asking anyone */
	if (rc)
		return rc;
	rc = daemon_topic_create(bus, name, &o); /* shmbusd does it, if one serves */
	if (rc != DAEMON_NONE)
		return rc;
	return admin_topic_create(bus, name, &o, NULL);
}

/* ------------------------------------------------------------------ */
/* Delete                                                              */

/* Mark every partition of t deleted: its users get -EIDRM. */
static void mark_deleted(shmbus *bus, const struct bus_topic *t)
{
	int dfd = sdir_open(bus->topicsfd, t->name, O_RDONLY | O_DIRECTORY);

	for (uint32_t i = 0; dfd >= 0 && i < t->partitions; i++) {
		char file[16];
		struct part p;

		snprintf(file, sizeof file, "%u", i);
		if (part_open(dfd, file, false, file, &p) == 0) {
			if (p.topic_id == t->id)
				part_mark_deleted(&p);
			part_unmap(&p);
		}
	}
	if (dfd >= 0)
		close(dfd);
}

int admin_topic_delete(shmbus *bus, const char *name, const struct admin_hooks *h)
{
	bool half_made = false;
	struct bus_topic t;
	int rc = lock_unless_stopped(bus, name, h);

	if (rc)
		return rc;
	sweep_locked(bus, name, &half_made, h);
	if (dir_lookup(&bus->dir, name, &t) < 0) {
		rc = half_made ? 0 : lib_err(-ENOENT, "topic \"%s\" does not exist", name);
		goto out;
	}
	/* Mark every partition deleted before anything disappears. */
	mark_deleted(bus, &t);
	rc = dir_remove(&bus->dir, name);
	if (rc == 0)
		remove_topic_dir(bus, name, NULL, NULL);
out:
	admin_unlock(bus);
	cache_sweep(bus);
	return rc;
}

SHMBUS_API int shmbus_topic_delete(shmbus *bus, const char *name)
{
	struct bus_topic t;
	int rc = topic_lookup(bus, name, &t);

	if (rc == -ENOENT && is_topic_dir(bus, name))
		rc = 0; /* half-made: removed as the others are */
	if (rc)
		return rc;
	rc = daemon_topic_delete(bus, name); /* shmbusd does it, if one serves */
	if (rc != DAEMON_NONE) {
		cache_sweep(bus);
		return rc;
	}
	return admin_topic_delete(bus, name, NULL);
}

/* ------------------------------------------------------------------ */
/* Adding partitions                                                   */

/* May topic t grow to `count` partitions?  0, or -errno with the message. */
static int grow_check(const struct bus_topic *t, uint32_t count)
{
	if (t->flags & BUS_TOPIC_REPLICA)
		return lib_err(-EROFS, "topic \"%s\" is a replica mirrored from %.64s: its partitions "
			       "are its source's; add partitions to the source topic instead",
			       t->name, t->mirror_source);
	if (count <= t->partitions)
		return lib_err(-EINVAL, "topic \"%s\" has %u partition%s: partitions can only be "
			       "added, so ask for more than %u (removing one would lose its "
			       "records and move its keys)", t->name, t->partitions,
			       t->partitions == 1 ? "" : "s", t->partitions);
	if (count > BUS_MAX_PARTITIONS)
		return lib_err(-EINVAL, "topic \"%s\": %u partitions are more than a topic may have, "
			       "%u (each partition is a file, and a mapping in every process that "
			       "uses the whole topic); use fewer, or spread the records over several "
			       "topics", t->name, count, BUS_MAX_PARTITIONS);
	return 0;
}

/*
 * Under the admin lock: make the files of partitions [t->partitions,
 * count), then publish the entry with the larger count (format.md §9).
 * The grow record in the bus file says, until the end, which topic is
 * growing: a grow killed before the publication leaves files its entry
 * does not count, which the next holder of the lock removes
 * (sweep_grow_locked); one stopped or failed removes them itself.
 */
static int grow_locked(shmbus *bus, const struct bus_topic *t, uint32_t count,
		       const struct admin_hooks *h)
{
	struct bus_topic grown = *t;
	uint64_t files = 0, bytes = 0;
	int dfd, rc;

	dfd = sdir_open(bus->topicsfd, t->name, O_RDONLY | O_DIRECTORY);
	if (dfd < 0)
		return lib_err(dfd, "cannot open directory of topic \"%s\": %s", t->name,
			       sdir_why(dfd));
	grown.partitions = count;
	dir_grow_begin(&bus->dir, t->id, count);
	rc = create_files(dfd, &grown, t->partitions, h);
	close(dfd);
	if (rc == 0) {
		SHM_TESTPOINT(grow_before_publish);
		rc = dir_set_partitions(&bus->dir, t->name, t->id, count);
	}
	if (rc)
		remove_extra_files(bus, t, &files, &bytes);
	dir_grow_end(&bus->dir);
	return rc;
}

int admin_topic_grow(shmbus *bus, const char *name, uint32_t count, bool validate_only,
		     const struct admin_hooks *h)
{
	uint64_t files = 0, bytes = 0;
	struct bus_topic t;
	int rc = lock_unless_stopped(bus, name, h);

	if (rc)
		return rc;
	sweep_locked(bus, NULL, NULL, h); /* their room counts too */
	rc = topic_lookup(bus, name, &t);
	if (rc == 0)
		rc = grow_check(&t, count);
	if (rc == 0) {
		/* files in the way of the new ones (a grow by an older
		 * library, killed): no partition of t, so removed */
		remove_extra_files(bus, &t, &files, &bytes);
		if (files && h && h->swept_grow)
			h->swept_grow(h->ctx, t.name, files, bytes);
		rc = check_room(bus, &t, count - t.partitions, "add fewer partitions");
	}
	if (rc == 0 && !validate_only)
		rc = grow_locked(bus, &t, count, h);
	admin_unlock(bus);
	return rc;
}

SHMBUS_API int shmbus_topic_add_partitions(shmbus *bus, const char *name, uint32_t count,
					   const struct shmbus_add_partitions_opts *opts)
{
	struct shmbus_add_partitions_opts o;
	struct bus_topic t;
	int rc;

	rc = OPTS_LOAD(shmbus_add_partitions_opts, o, opts);
	if (rc == 0)
		rc = topic_lookup(bus, name, &t);
	if (rc == 0)
		rc = grow_check(&t, count); /* a clear error before asking anyone */
	if (rc)
		return rc;
	rc = daemon_topic_grow(bus, name, count, o.validate_only); /* shmbusd does it, if one serves */
	if (rc != DAEMON_NONE)
		return rc;
	return admin_topic_grow(bus, name, count, o.validate_only, NULL);
}
