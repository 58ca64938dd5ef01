/*
 * writers.c - the writers' announcement slots (writers.h, format.md §4
 * step 3): taking and freeing a slot, reading an announcement through
 * its seqlock, and the scans supervisors and producers make of them.
 */
#include "writers.h"

#include "../util/proc.h"
#include "../util/testpoint.h"

/* A writer slot's announcement, if consistent: a seqlock read, which
 * pairs with the release stores of seq in announce() (append.c).  pos and
 * off are one announcement only if seq, even, did not change meanwhile:
 * a writer moving on between the two loads would give the pos of one
 * claim with the off of the next, a pair that is no claim boundary. */
static bool read_slot(const struct part_writer_slot *s, struct part_writer_ann *a)
{
	uint64_t s1 = load_acquire(&s->seq);

	a->pid = load_relaxed(&s->pid);
	a->seq = s1;
	if (!a->pid || (s1 & 1))
		return false;
	a->busy = load_acquire(&s->flags) & WRITER_BUSY;
	a->pos = load_relaxed(&s->pos);
	SHM_TESTPOINT(writer_read_pos);
	a->off = load_relaxed(&s->off);
	a->first = load_relaxed(&s->first);
	fence_acquire();
	return load_relaxed(&s->seq) == s1;
}

uint64_t part_writers_taken(const struct part *p)
{
	return load_acquire(&p->hdr->writer_mask);
}

#define READ_SLOT_TRIES 4 /* an announcement is a few stores */

bool part_writer_read(const struct part *p, int i, struct part_writer_ann *ret)
{
	for (int t = 0; t < READ_SLOT_TRIES; t++) {
		if (read_slot(&p->hdr->writers[i], ret))
			return true;
		if (!ret->pid)
			return false;
	}
	return false;
}

bool part_writer_reap(struct part *p, int i, uint32_t pid)
{
	return part_writer_slot_free(p, &p->hdr->writers[i], pid);
}

uint64_t part_oldest_open_claim(const struct part *p, uint64_t tail)
{
	uint64_t mask = part_writers_taken(p), low = tail;

	while (mask) {
		struct part_writer_ann a;

		if (part_writer_read(p, __builtin_ctzll(mask), &a) && a.busy && a.pos < low)
			low = a.pos;
		mask &= mask - 1;
	}
	return low;
}


struct part_writer_slot *part_writer_lowest_busy(struct part *p,
						 const struct part_writer_slot *self, uint64_t *min)
{
	struct part_writer_slot *lowest = NULL;

	for (int i = 0; i < PART_MAX_WRITERS; i++) {
		struct part_writer_slot *s = &p->hdr->writers[i];

		if (s != self && (load_acquire(&s->flags) & WRITER_BUSY) &&
		    load_relaxed(&s->pos) < *min) {
			*min = load_relaxed(&s->pos);
			lowest = s;
		}
	}
	return lowest;
}

bool part_writer_unmark_dead(struct part_writer_slot *s)
{
	uint32_t f;

	if (proc_alive((pid_t)load_relaxed(&s->pid), load_relaxed(&s->start_time)))
		return false;
	f = load_relaxed(&s->flags);
	while ((f & WRITER_BUSY) && !cas(&s->flags, &f, f & ~WRITER_BUSY))
		;
	return true;
}

uint32_t part_writer_pid(const struct part_writer_slot *s)
{
	return load_relaxed(&s->pid);
}

static struct part_writer_slot *try_take(struct part *p, pid_t pid, uint64_t start)
{
	for (int i = 0; i < PART_MAX_WRITERS; i++) {
		struct part_writer_slot *s = &p->hdr->writers[i];
		uint32_t free_pid = 0;

		if (load_relaxed(&s->pid) == 0 && cas(&s->pid, &free_pid, (uint32_t)pid)) {
			store_relaxed(&s->start_time, start);
			__atomic_fetch_or(&p->hdr->writer_mask, 1ULL << i, __ATOMIC_RELEASE);
			return s;
		}
	}
	return NULL;
}

struct part_writer_slot *part_writer_slot_take(struct part *p)
{
	uint64_t start;
	pid_t pid = proc_self(&start);
	struct part_writer_slot *s;

	if (p->readonly)
		return NULL;
	s = try_take(p, pid, start);
	if (s)
		return s;
	/* reap slots of writers whose processes are gone */
	for (int i = 0; i < PART_MAX_WRITERS; i++) {
		struct part_writer_slot *d = &p->hdr->writers[i];
		uint32_t dead = load_acquire(&d->pid);

		if (dead && !proc_alive((pid_t)dead, load_relaxed(&d->start_time)))
			part_writer_slot_free(p, d, dead);
	}
	return try_take(p, pid, start);
}

bool part_writer_slot_free(struct part *p, struct part_writer_slot *s, uint32_t pid)
{
	store_release(&s->flags, 0u);
	if (!cas(&s->pid, &pid, 0u))
		return false;
	__atomic_fetch_and(&p->hdr->writer_mask, ~(1ULL << (s - p->hdr->writers)),
			   __ATOMIC_RELEASE);
	return true;
}

void part_writer_slot_give(struct part *p, struct part_writer_slot *s)
{
	if (p->readonly || !s)
		return;
	part_writer_slot_free(p, s, load_relaxed(&s->pid));
}
