/*
 * group_cut.c - consumer groups' committed offsets past a cut (format.md
 * §10, §14).
 *
 * When shmbusd cuts a partition's end back to E (a mirror whose log
 * parted from its source's, docs/protocol.md §M9, or a cut it finishes
 * at start-up), the offsets E.. are given to the new log's records.  A
 * group that had committed an offset above E would resume there and
 * never read the new records between E and it: a silent loss for that
 * group.  So each group file of the root is looked at, and an offset
 * above E is moved back to E by the group file's own fenced CAS
 * (group_cut_back: the owner epoch is kept, the offset only goes down),
 * as Kafka's consumers reset an offset out of range.  Each move is
 * logged, and counted for the metrics
 * (shmbus_daemon_group_offsets_cut_total).
 */
#include "group_cut.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "shmbusd.h"
#include "../shm/directory.h"
#include "../shm/groups.h"
#include "../util/error.h"

#define GROUPS_MAX 65536 /* group files looked at per cut: more than a root holds */

static atomic_ullong moved;

uint64_t groups_cut_moved(void)
{
	return atomic_load(&moved);
}

/* One group: 1 if its offset was moved back, else 0. */
static unsigned cut_group(struct daemon *d, const char *group, const char *topic,
			  uint64_t topic_id, uint32_t partition, uint64_t end)
{
	struct group_file g;
	uint64_t old = 0;
	int rc = group_open(d->groupsfd, group, false, &g);

	if (rc < 0) {
		log_warn("group \"%s\": cannot look at its committed offset of %s/%u, whose log "
			 "was cut back to offset %llu: %s", group, topic, partition,
			 (unsigned long long)end, shm_errmsg());
		return 0;
	}
	if (g.readonly) {
		log_warn("group \"%s\": its committed offset of %s/%u cannot be moved back to offset "
			 "%llu, where its log was cut: shmbusd may not write the group file; reset "
			 "it by hand (shmbus groups reset-offsets)", group, topic, partition,
			 (unsigned long long)end);
		group_close(&g);
		return 0;
	}
	rc = group_cut_back(&g, topic_id, partition, end, &old);
	group_close(&g);
	if (rc < 0) {
		log_warn("%s", shm_errmsg());
		return 0;
	}
	if (rc == 0)
		return 0;
	atomic_fetch_add(&moved, 1);
	log_warn("group \"%s\": its committed offset of %s/%u moved back from %llu to %llu: the "
		 "partition's log was cut back to %llu, and the records the group would have "
		 "skipped from there are the new log's", group, topic, partition,
		 (unsigned long long)old, (unsigned long long)end, (unsigned long long)end);
	return 1;
}

unsigned groups_cut_back(struct daemon *d, const char *topic, uint64_t topic_id,
			 uint32_t partition, uint64_t end)
{
	int fd = openat(d->groupsfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	unsigned n = 0, seen = 0;
	struct dirent *e;
	DIR *dir;

	if (fd < 0 || !(dir = fdopendir(fd))) {
		log_warn("cannot list %s/groups to move committed offsets of %s/%u back to offset "
			 "%llu, where its log was cut: %s; check the groups with shmbus groups "
			 "describe", d->cfg.root, topic, partition, (unsigned long long)end,
			 strerror(errno));
		if (fd >= 0)
			close(fd);
		return 0;
	}
	while ((e = readdir(dir)) && seen < GROUPS_MAX)
		if (dir_name_valid(e->d_name)) {
			seen++;
			n += cut_group(d, e->d_name, topic, topic_id, partition, end);
		}
	closedir(dir);
	return n;
}
