/*
 * horizon.c - raising and resetting the horizon (horizon.h, format.md §4
 * step 3 and §8).  The fast path, a load that finds the horizon already
 * past a claim, is inline in horizon.h.
 */
#include "horizon.h"

/*
 * Raise the horizon to at least `need`, a step past it, by a CAS to the
 * max: it never goes down here, so of producers racing the highest need
 * wins.  Each failed CAS means another process raised it; the loop ends
 * once it covers `need` (bounded by the processes raising it at once).
 */
void part_horizon_raise(struct part *p, uint64_t need)
{
	uint64_t h = load_acquire(&p->hdr->horizon), to = need + p->horizon_step;

	/* seq_cst: ordered before this producer's claim CAS, and so before
	 * any write to the claim; pairs with the fence_acquire and horizon
	 * load of readers (part_first_lost(), part_intact()) */
	while (h < need && !cas(&p->hdr->horizon, &h, to))
		;
}

void part_horizon_reset(struct part *p, uint64_t tail)
{
	if (p->horizon)
		store_seq_cst(&p->hdr->horizon, tail + FRAME_ALIGN);
}
