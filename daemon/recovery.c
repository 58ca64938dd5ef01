/*
 * recovery.c - start-up recovery (format.md §8, §11).
 *
 * For each partition found at start-up: first set its status word right
 * against the bus directory (a damaged DELETED or REPLICA bit on a topic
 * that exists would fail every read and send), in use or not; then, if no
 * other process has it mapped (its usage lock can be taken exclusively),
 * run the recovery scan, which checks every record, aborts claims of dead
 * producers, rebuilds the index and cuts a damaged tail, and report what
 * it found.  A partition in use is not scanned: its producers are alive,
 * and the unblocker handles their stalled claims.
 */
#include "shmbusd.h"
#include "group_cut.h"

#include <errno.h>

#include "../shm/recover.h"
#include "../shm/replica.h"
#include "../shm/read.h"
#include "../shm/truncate.h"
#include "../util/error.h"

static void report(struct daemon *d, const struct dpart *dp, const struct part_recovery *r)
{
	struct shmbus_daemon_recovery *t = &d->st.recovery;

	t->recovered++;
	t->frames += r->frames;
	t->aborted += r->aborted;
	t->cut += r->cut;
	t->cut_bytes += r->cut_bytes;
	t->rebuilt += r->rebuilt;
	if (r->cut || r->rebuilt) {
		log_warn("partition %s/%u: recovered: %llu records checked, %llu dead claims aborted, "
			 "%llu offsets (%llu bytes) cut%s: %s; readable %llu..%llu",
			 dp->topic, dp->partition, (unsigned long long)r->frames,
			 (unsigned long long)r->aborted, (unsigned long long)r->cut,
			 (unsigned long long)r->cut_bytes,
			 r->rebuilt ? ", index and claim word rebuilt from the data" : "",
			 r->reason[0] ? r->reason : "damaged", (unsigned long long)r->first_off,
			 (unsigned long long)r->new_next);
	} else if (r->aborted) {
		log_notice("partition %s/%u: recovered: %llu records checked, %llu dead claims "
			   "aborted; readable %llu..%llu", dp->topic, dp->partition,
			   (unsigned long long)r->frames, (unsigned long long)r->aborted,
			   (unsigned long long)r->first_off, (unsigned long long)r->new_next);
	} else {
		log_info("partition %s/%u: %llu records checked, nothing to repair", dp->topic,
			 dp->partition, (unsigned long long)r->frames);
	}
}

/* The status word against the directory (format.md §8).  The same
 * function repairs it at start-up and while the daemon runs. */
int recovery_status(struct daemon *d, struct dpart *dp, bool wait)
{
	uint32_t repaired = 0;
	char what[300];
	int rc = wait ? topic_status_repair(d->bus, dp->topic, dp->m, &repaired)
		      : topic_status_repair_try(d->bus, dp->topic, dp->m, &repaired);

	if (rc == -EWOULDBLOCK)
		return rc;
	if (rc < 0) {
		log_err("%s", shmbus_errmsg());
		return rc;
	}
	if (!repaired)
		return 0;
	d->st.status_repaired++;
	status_repair_text(what, sizeof what, dp->topic, repaired, true);
	log_warn("partition %s/%u: %s: repaired (a damaged status word; readers and producers "
		 "work again)%s", dp->topic, dp->partition, what,
		 wait ? "" : "; found while shmbusd ran");
	return 0;
}

/* A replica is written by this daemon's mirror alone: the claims a killed
 * mirror left are taken back for the mirror to append again (the scan
 * would abort them, and the offsets would be lost to the replica). */
static void resume_replica(struct dpart *dp)
{
	uint64_t cut;

	if (replica_resume(dp->part, &cut) < 0)
		log_warn("%s", shm_errmsg());
	else if (cut)
		log_notice("replica %s/%u: %llu offsets its mirror had claimed but not published "
			   "when it stopped are taken back, to be mirrored again", dp->topic,
			   dp->partition, (unsigned long long)cut);
}

/* A cut of the end its daemon was killed inside (format.md §14): readers
 * wait until it is finished or undone. */
static void settle_cut(struct daemon *d, struct dpart *dp)
{
	uint64_t tail, end;

	if (part_truncate_settle(dp->part) <= 0)
		return;
	part_ends(dp->part, &tail, &end);
	log_notice("partition %s/%u: a cut of its end that was under way when shmbusd stopped "
		   "is settled (it now ends at offset %llu)", dp->topic, dp->partition,
		   (unsigned long long)end);
	/* its mirror may have died before it moved the groups back */
	groups_cut_back(d, dp->topic, dp->part->topic_id, dp->partition, end);
}

void recovery_run(struct daemon *d, struct dpart *dp)
{
	struct part_recovery r;
	int rc;

	d->st.recovery.partitions++;
	if (dp->part->readonly)
		return;
	(void)recovery_status(d, dp, true);
	settle_cut(d, dp);
	if (part_is_replica(dp->part)) {
		resume_replica(dp);
		return;
	}
	rc = pmap_recover(d->bus, dp->m, &r);
	if (rc == -EBUSY) {
		d->st.recovery.in_use++;
		log_info("partition %s/%u is in use by running processes: not recovered (stalled "
			 "claims are aborted by the unblocker)", dp->topic, dp->partition);
		return;
	}
	if (rc < 0) {
		d->st.recovery.failed++;
		log_err("partition %s/%u: recovery failed: %s", dp->topic, dp->partition,
			shmbus_errmsg());
		return;
	}
	report(d, dp, &r);
}
