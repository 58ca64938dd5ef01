/*
 * mirror_lag.c - a replica's lag in milliseconds (mirror_lag.h).
 */
#include "mirror_lag.h"

void mlag_heard(struct mlag *l, uint64_t source_end, int64_t now)
{
	unsigned last = (l->head + l->n - 1) % MLAG_ENDS;

	if (l->n && source_end <= l->end[last])
		return; /* nothing new: the older date stands */
	if (l->n == 0 && l->current)
		l->since_ns = now; /* caught up until this news */
	if (l->n == MLAG_ENDS) {
		l->end[last] = source_end; /* full: errs long (its date is older) */
		return;
	}
	last = (l->head + l->n) % MLAG_ENDS;
	l->end[last] = source_end;
	l->at[last] = now;
	l->n++;
}

void mlag_held(struct mlag *l, uint64_t replica_end, int64_t now)
{
	while (l->n && l->end[l->head] <= replica_end) {
		l->since_ns = l->at[l->head]; /* as fresh as the source was then */
		l->head = (l->head + 1) % MLAG_ENDS;
		l->n--;
	}
	if (l->n == 0) {
		l->current = true;
		l->since_ns = now;
	}
}

void mlag_lost(struct mlag *l, int64_t last_heard)
{
	if (l->current && l->n == 0 && last_heard > l->since_ns)
		l->since_ns = last_heard;
	l->current = false;
}

uint64_t mlag_ms(const struct mlag *l, int64_t now)
{
	if (l->current && l->n == 0)
		return 0;
	if (!l->since_ns || now <= l->since_ns)
		return 0;
	return (uint64_t)(now - l->since_ns) / 1000000;
}
