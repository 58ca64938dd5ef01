/*
 * stats.c - a partition's statistics, read word by word (stats.h).
 */
#include "stats.h"

#include <string.h>

#include "read.h"

void part_stats_read(struct part *p, struct part_stats *ret)
{
	struct part_header *h = p->hdr;

	memset(ret, 0, sizeof *ret);
	part_bounds(p, &ret->low, &ret->end);
	ret->tail = load_acquire(&h->claim.lo);
	ret->mirrored = load_relaxed(&h->mirrored);
	ret->status = part_status(p);
	ret->aborted_claims = load_relaxed(&h->aborted_claims);
	ret->lapped_reads = load_relaxed(&h->lapped_reads);
	ret->bp_blocked = load_relaxed(&h->bp_blocked);
	ret->recoveries = load_relaxed(&h->recoveries);
	ret->recovered_cut = load_relaxed(&h->recovered_cut);
	ret->waiters = load_relaxed(&h->notify) & NOTIFY_WAITERS;
	for (int i = 0; i < PART_MAX_CONSUMERS; i++) {
		const struct part_consumer_slot *s = &h->consumers[i];

		/* pairs with the store_release of flags in part_bp_register() */
		if (load_acquire(&s->flags) & 1u)
			ret->consumer_offset[ret->consumers++] = load_relaxed(&s->offset);
	}
}

uint64_t part_status(const struct part *p)
{
	return load_acquire(&p->hdr->status);
}
