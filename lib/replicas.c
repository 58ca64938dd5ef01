/*
 * replicas.c - a topic becomes a mirror's replica, or stops being one,
 * for shmbusd (shmbus_private.h): a topic its mirror takes over (the old
 * source of a log coming back as a mirror of the replica promoted in its
 * place, docs/protocol.md §M9), and a replica promoted after its source
 * is lost (`shmbus mirror promote`, §M10).
 *
 * Both run under the root's admin lock and change the bus directory's
 * flag first, then each partition's status word: the directory is the
 * authority that start-up recovery sets the words right from (format.md
 * §2, §8), so a daemon killed in between leaves nothing the next one
 * does not finish.  A promoted partition's new epoch is in its history
 * before producers may append (format.md §14): no record of this host is
 * ever written under its source's epoch.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "../shm/epochs.h"
#include "../shm/read.h"
#include "../shm/replica.h"
#include "../util/shareddir.h"

/* Open partition i of topic t (this process's own mapping, not the
 * cache's: the admin lock is held, and it is let go at once). */
static int open_part(int dfd, const struct bus_topic *t, uint32_t i, struct part *p)
{
	char file[16], label[PART_NAME_MAX + 16];
	int rc;

	snprintf(file, sizeof file, "%u", i);
	snprintf(label, sizeof label, "%s/%u", t->name, i);
	rc = part_open(dfd, file, false, label, p);
	if (rc < 0)
		return lib_err(rc, "topic \"%s\" partition %u: %s", t->name, i, shm_errmsg());
	if (p->readonly || p->topic_id != t->id) {
		rc = p->readonly ? -EROFS : -EIDRM;
		part_unmap(p);
		return lib_err(rc, "topic \"%s\" partition %u: %s", t->name, i,
			       rc == -EROFS ? "this process may not write it (run shmbusd as the "
			       "root's owner)" : "its file belongs to another topic of that name");
	}
	return 0;
}

/* Set every partition's REPLICA bit as `on` says. */
static int mark_parts(shmbus *bus, const struct bus_topic *t, bool on)
{
	int dfd = sdir_open(bus->topicsfd, t->name, O_RDONLY | O_DIRECTORY), rc = 0;

	if (dfd < 0)
		return lib_err(dfd, "topic \"%s\": cannot open its directory: %s", t->name,
			       sdir_why(dfd));
	for (uint32_t i = 0; i < t->partitions; i++) {
		struct part p;

		rc = open_part(dfd, t, i, &p);
		if (rc)
			break;
		part_set_replica(&p, on);
		part_unmap(&p);
	}
	close(dfd);
	return rc;
}

int admin_replica_convert(shmbus *bus, const char *name, const char *source)
{
	struct bus_topic t;
	int rc = admin_lock(bus);

	if (rc)
		return lib_err(rc, "cannot take the root's admin lock: %s", strerror(-rc));
	if (dir_lookup(&bus->dir, name, &t) < 0) {
		rc = lib_err(-ENOENT, "topic \"%s\" does not exist", name);
	} else if (t.flags & BUS_TOPIC_REPLICA) {
		rc = 0; /* it is one already */
	} else {
		rc = dir_set_replica(&bus->dir, name, source);
		if (rc == 0)
			rc = mark_parts(bus, &t, true);
		else
			rc = lib_err(rc, "%s", shm_errmsg());
	}
	admin_unlock(bus);
	return rc;
}

/* A partition's new epoch, from its end: after the claims a mirror left
 * unpublished are taken back (none, when the mirror stopped cleanly). */
static int new_epoch(struct part *p, const char *topic, uint32_t i, struct admin_promoted *out)
{
	uint64_t cut, tail, end, epoch = epoch_new();
	int rc;

	if (replica_resume(p, &cut) < 0)
		shm_err_clear(); /* stay aborted: the end is past them either way */
	part_ends(p, &tail, &end);
	rc = part_epochs_append(p, epoch, end);
	if (rc)
		return lib_err(rc, "topic \"%s\" partition %u: %s", topic, i, shm_errmsg());
	*out = (struct admin_promoted){ .partition = i, .epoch = epoch, .from = end };
	return 0;
}

int admin_replica_promote(shmbus *bus, const char *name, struct admin_promoted *out, size_t max)
{
	struct bus_topic t;
	int dfd = -1, rc = admin_lock(bus);

	if (rc)
		return lib_err(rc, "cannot take the root's admin lock: %s", strerror(-rc));
	if (dir_lookup(&bus->dir, name, &t) < 0) {
		rc = lib_err(-ENOENT, "topic \"%s\" does not exist", name);
		goto out;
	}
	if (!(t.flags & BUS_TOPIC_REPLICA)) {
		rc = lib_err(-EINVAL, "topic \"%s\" is not a replica (producers may append to it "
			     "already): nothing to promote", name);
		goto out;
	}
	if (t.partitions > max) {
		rc = lib_err(-ENOSPC, "topic \"%s\" has %u partitions, more than %zu promoted at "
			     "once", name, t.partitions, max);
		goto out;
	}
	dfd = sdir_open(bus->topicsfd, t.name, O_RDONLY | O_DIRECTORY);
	if (dfd < 0) {
		rc = lib_err(dfd, "topic \"%s\": cannot open its directory: %s", name, sdir_why(dfd));
		goto out;
	}
	/* 1. every partition's new epoch, while producers are still refused */
	for (uint32_t i = 0; i < t.partitions && rc == 0; i++) {
		struct part p;

		rc = open_part(dfd, &t, i, &p);
		if (rc == 0) {
			rc = new_epoch(&p, t.name, i, &out[i]);
			part_unmap(&p);
		}
	}
	/* 2. the directory, then the partitions: producers may append */
	if (rc == 0 && (rc = dir_set_replica(&bus->dir, name, NULL)) < 0)
		rc = lib_err(rc, "%s", shm_errmsg());
	if (rc == 0)
		rc = mark_parts(bus, &t, false);
	if (rc == 0)
		rc = (int)t.partitions;
out:
	if (dfd >= 0)
		close(dfd);
	admin_unlock(bus);
	return rc;
}
