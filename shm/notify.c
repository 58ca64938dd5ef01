/*
 * notify.c - wait and wake on a partition's futex words (notify.h).
 */
#include "notify.h"

#include "../util/futex.h"
#include "probes.h"

void part_notify(struct part *p)
{
	/* pairs with futex_word_prepare() in part_wait_prepare(): our commit
	 * CAS is a full barrier before the load in futex_word_wake() */
	SHMBUS_PROBE_IF(wake, load_relaxed(&p->hdr->notify) & 0x80000000u, p->hdr->topic, p->partition);
	futex_word_wake(&p->hdr->notify);
}

uint32_t part_wait_prepare(struct part *p)
{
	if (p->readonly)
		return load_acquire(&p->hdr->notify);
	/* pairs with futex_word_wake() in part_notify() */
	return futex_word_prepare(&p->hdr->notify);
}

uint32_t *part_wait_word(struct part *p)
{
	return &p->hdr->notify;
}

uint32_t part_space_prepare(struct part *p)
{
	/* pairs with futex_word_wake() in part_space_wake() */
	return futex_word_prepare(&p->hdr->space);
}

void part_space_wait(struct part *p, uint32_t v, int64_t deadline_ns)
{
	futex_wait_shared(&p->hdr->space, v, deadline_ns);
}

void part_space_wake(struct part *p)
{
	futex_word_wake(&p->hdr->space);
}
