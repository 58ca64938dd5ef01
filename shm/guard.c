/*
 * guard.c - the unblock guard (guard.h, format.md §7): taking and
 * releasing it, and a producer's wait behind it.
 */
#include "guard.h"

#include <errno.h>
#include <sched.h>
#include <time.h>

#include "../util/clock.h"
#include "../util/proc.h"

static pair128 guard_load(struct part *p)
{
	pair128 g;

	/* hi, lo, hi: a pair of one holding, or a CAS below fails on it */
	for (int i = 0; i < 4; i++) {
		g.hi = load_acquire(&p->hdr->unblock_guard.hi);
		g.lo = load_acquire(&p->hdr->unblock_guard.lo);
		if (load_acquire(&p->hdr->unblock_guard.hi) == g.hi)
			break;
	}
	return g;
}

/* A guard whose holder is gone is cleared (the CAS fails harmlessly if
 * the guard changed since it was loaded): true if it was. */
static bool clear_if_dead(struct part *p, pair128 g)
{
	if (!(g.lo & PART_GUARD_HELD) || proc_alive((pid_t)(uint32_t)g.hi, 0))
		return false;
	return cas128(&p->hdr->unblock_guard, &g, (pair128){ 0, 0 });
}

void part_guard_clear_dead(struct part *p)
{
	(void)clear_if_dead(p, guard_load(p));
}

static void pause_a_little(unsigned round)
{
	struct timespec ts = { .tv_nsec = 50000 };

	if (round < 64)
		cpu_relax();
	else if (round < 128)
		sched_yield();
	else
		nanosleep(&ts, NULL);
}

int part_guard_take(struct part *p, uint64_t pos)
{
	pair128 mine = { .lo = pos | PART_GUARD_HELD, .hi = (uint32_t)proc_self(NULL) };
	int64_t give_up = 0;

	for (unsigned round = 0;; round++) {
		pair128 free_guard = { 0, 0 };

		/* a full barrier: the caller's load of the claim word comes
		 * after (pairs with load_seq_cst in part_guard_settle()) */
		if (cas128(&p->hdr->unblock_guard, &free_guard, mine))
			return 0;
		if (clear_if_dead(p, free_guard))
			continue;
		if (!give_up)
			give_up = mono_ns() + PART_GUARD_TAKE_NS;
		else if (mono_ns() >= give_up)
			return -EBUSY;
		pause_a_little(round);
	}
}

void part_guard_release(struct part *p, uint64_t pos)
{
	pair128 mine = { .lo = pos | PART_GUARD_HELD, .hi = (uint32_t)proc_self(NULL) };

	/* our stores to the frame are done before: a producer that sees the
	 * guard free may overwrite them */
	(void)cas128(&p->hdr->unblock_guard, &mine, (pair128){ 0, 0 });
}

void part_guard_wait(struct part *p, uint64_t end)
{
	int64_t give_up = mono_ns() + PART_GUARD_WAIT_NS;

	for (unsigned round = 0;; round++) {
		pair128 g = guard_load(p);

		if (!(g.lo & PART_GUARD_HELD) || end <= (g.lo & ~PART_GUARD_HELD) + p->cap - FRAME_ALIGN)
			return;
		if (clear_if_dead(p, g))
			continue;
		/* a holder stopped this long is no unblocker at work: take the
		 * guard from it (it checks that it still holds the guard
		 * before each of its stores, part_guard_kept()), and lap it */
		if (mono_ns() >= give_up || part_deleted(p)) {
			(void)cas128(&p->hdr->unblock_guard, &g, (pair128){ 0, 0 });
			return;
		}
		pause_a_little(round);
	}
}

bool part_guard_wait_at(struct part *p, uint64_t pos)
{
	int64_t give_up = mono_ns() + PART_GUARD_TAKE_NS;

	for (unsigned round = 0;; round++) {
		if (load_acquire(&p->hdr->unblock_guard.lo) != (pos | PART_GUARD_HELD))
			return true;
		if (mono_ns() >= give_up || part_deleted(p))
			return false;
		pause_a_little(round);
	}
}

bool part_guard_kept(struct part *p, uint64_t pos)
{
	pair128 g = guard_load(p);

	return g.lo == (pos | PART_GUARD_HELD) && g.hi == (uint32_t)proc_self(NULL);
}
