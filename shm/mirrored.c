/*
 * mirrored.c - the mirrored offset and its wake word (mirrored.h,
 * format.md §15).
 *
 * The raise is a compare-and-swap to the larger value, so it never moves
 * back whatever the order of concurrent raises; then, as for the notify
 * word (format.md §4 step 5), one load of the wake word when nobody
 * waits, else a bump and a FUTEX_WAKE.  A waiter sets the word's waiter
 * bit, re-checks the offset, and sleeps on the value it set.
 */
#include "mirrored.h"

#include <errno.h>

#include "../util/clock.h"
#include "../util/futex.h"

/* A waiter wakes at least this often to notice a deleted partition (a
 * delete wakes nobody on this word), or to poll on a read-only mapping. */
#define SLICE_NS    100000000LL
#define RO_SLICE_NS 1000000LL

uint64_t part_mirrored(const struct part *p)
{
	/* pairs with the CAS in part_mirrored_raise() */
	return load_acquire(&p->hdr->mirrored);
}

uint64_t part_mirrored_raise(struct part *p, uint64_t end)
{
	uint64_t cur = load_acquire(&p->hdr->mirrored);
	uint64_t next = load_pair(&p->hdr->claim).hi;

	if (end > next)
		end = next;
	while (cur < end) {
		if (cas(&p->hdr->mirrored, &cur, end)) {
			/* the CAS is a full barrier before the load in
			 * futex_word_wake(): pairs with futex_word_prepare() in
			 * part_mirrored_prepare() and the re-check after it */
			futex_word_wake(&p->hdr->mirrored_wake);
			return end;
		}
	}
	return cur;
}

uint32_t part_mirrored_prepare(struct part *p)
{
	if (p->readonly)
		return load_acquire(&p->hdr->mirrored_wake);
	/* pairs with futex_word_wake() in part_mirrored_raise() */
	return futex_word_prepare(&p->hdr->mirrored_wake);
}

uint32_t *part_mirrored_word(struct part *p)
{
	return &p->hdr->mirrored_wake;
}

int part_mirrored_wait(struct part *p, uint64_t off, int64_t deadline_ns)
{
	for (;;) {
		uint32_t v;
		int64_t now, until;

		if (off < part_mirrored(p))
			return 0;
		if (part_deleted(p))
			return -EIDRM;
		now = mono_ns();
		if (deadline_ns && now >= deadline_ns)
			return -ETIMEDOUT;
		v = part_mirrored_prepare(p);
		/* re-check after announcing the wait (a seq_cst load after the
		 * prepare's CAS), or a raise in between is missed */
		if (off < load_seq_cst(&p->hdr->mirrored))
			return 0;
		until = now + (p->readonly ? RO_SLICE_NS : SLICE_NS);
		if (deadline_ns && deadline_ns < until)
			until = deadline_ns;
		futex_wait_shared(&p->hdr->mirrored_wake, v, until);
	}
}
