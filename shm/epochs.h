/*
 * epochs.h - a partition's epoch history (format.md §14), as Kafka's
 * KIP-101 leader epochs: `epoch -> first offset` for each run of the log
 * one writer made.  A partition starts with {its creation epoch, 0}; a
 * promoted replica adds {a new epoch, its end}; a replica carries its
 * source's history, entry by entry as it appends the records.  Two logs
 * that hold one epoch hold the same records in it, up to where the
 * shorter one's run of that epoch ends: comparing histories finds where
 * two hosts' logs part (epochs_diverge), so a mirror cuts what its
 * source does not have instead of merging two logs silently.
 *
 * The history lives in the partition header: a ring of PART_EPOCHS_MAX
 * entries and one word {generation, first slot, count}, changed by one
 * compare-and-swap per step, so a writer killed at any point leaves a
 * whole history, and readers copy it like a seqlock.  Writers are
 * shmbusd, one thread at a time per partition (a replica's mirror, or
 * promote with the mirror stopped); a second writer's CAS fails
 * (-EBUSY), it never interleaves.
 */
#ifndef SHMBUS_SHM_EPOCHS_H
#define SHMBUS_SHM_EPOCHS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "format.h"

struct part;

/* A history copied out of a header, or off the wire: oldest first. */
struct epoch_hist {
	uint32_t n;
	struct part_epoch e[PART_EPOCHS_MAX];
};

/* --- pure functions over copies (unit-tested, shared by both ends) --- */

/* n at most PART_EPOCHS_MAX, no epoch 0, starts that never go down and
 * stay below 2^62, no epoch twice. */
bool epochs_valid(const struct epoch_hist *h);

/* The last entry's epoch, 0 for an empty history. */
uint64_t epochs_last(const struct epoch_hist *h);

/* The index of `epoch` in h, or -1. */
int epochs_find(const struct epoch_hist *h, uint64_t epoch);

/* Where entry i's run ends in a log that ends at `end`: the next entry's
 * start, or `end`, whichever is lower. */
uint64_t epochs_run_end(const struct epoch_hist *h, int i, uint64_t end);

/*
 * Where a log with history m (ending at m_end) stops agreeing with a log
 * with history s (ending at s_end), as KIP-101: the latest epoch of m
 * that s holds, and the lower of the two ends of its run.  1 with
 * *ret_off (m agrees with s below it; nothing of m to cut if it is
 * >= m_end) and *ret_epoch (that epoch); 0 if they share no epoch (s is
 * not a log m ever followed: a source recreated, or another log).  An
 * empty m shares nothing.
 */
int epochs_diverge(const struct epoch_hist *m, uint64_t m_end, const struct epoch_hist *s,
		   uint64_t s_end, uint64_t *ret_off, uint64_t *ret_epoch);

/*
 * A source's check of a FETCH (docs/protocol.md §M3): may it stream from
 * `from` to a mirror whose last epoch is `epoch`?  Epoch 0 (the mirror
 * knows none): if from <= s_end.  Else only if s holds `epoch` and from
 * is within its run on s: the mirror's log is then a prefix of this one.
 */
bool epochs_fetch_ok(const struct epoch_hist *s, uint64_t s_end, uint64_t epoch, uint64_t from);

/*
 * The entries of s a log with history m must add before it appends the
 * offsets below `upto` taken from s: those after m's last epoch in s
 * (all of s if m is empty) that start below upto.  How many, into out
 * (PART_EPOCHS_MAX entries); 0 if m's last epoch is not in s.
 */
size_t epochs_to_adopt(const struct epoch_hist *m, const struct epoch_hist *s, uint64_t upto,
		       struct part_epoch *out);

/* A new epoch: random, never 0. */
uint64_t epoch_new(void);

/* --- a partition's history (the header's words) --------------------- */

/* At creation (partition.c): {epoch, 0}, or an empty history for a
 * replica, which takes its source's. */
void part_epochs_init(struct part_header *h, uint64_t epoch, bool replica);

/* A consistent copy of p's history.  A header written before histories
 * existed reads as {its creation epoch, 0}, or empty for a replica (it
 * takes its source's when it next connects).  0, or -EBADMSG (damaged
 * word) or -EAGAIN (changing too fast to copy), with a message. */
int part_epochs_read(const struct part *p, struct epoch_hist *ret);

/* The history's word: it changes with every change of the history (a
 * source sends its history again when it does). */
static inline uint64_t part_epochs_version(const struct part_header *h)
{
	return __atomic_load_n(&h->epochs_word, __ATOMIC_ACQUIRE);
}

/* p's last epoch, 0 if none (or unreadable). */
uint64_t part_epoch_last(const struct part *p);

/*
 * Add {epoch, start} at the end: start may not be below the last entry's
 * start.  A full history drops its oldest entry first.  Synced to disk
 * on a disk root (msync) before it returns.  0, or -EINVAL (start goes
 * back, or epoch 0 or already held), -EBUSY (another writer), -EBADMSG.
 */
int part_epochs_append(struct part *p, uint64_t epoch, uint64_t start);

/* Drop the entries that start at or after `from` (a cut back to it):
 * how many, or -EBUSY/-EBADMSG. */
int part_epochs_trim(struct part *p, uint64_t from);

/* Add the entries epochs_to_adopt() finds: how many, or -errno. */
int part_epochs_adopt(struct part *p, const struct epoch_hist *src, uint64_t upto);

/* The history as text, "EPOCH@START,..." in hex@decimal, for logs. */
void epochs_text(const struct epoch_hist *h, char *buf, size_t len);

#endif
