/*
 * backpressure.c - the registry of consumers producers must not overwrite
 * (format.md §5): a consumer registers its position in a consumer slot of
 * the partition header and keeps it current; producers scan the slots for
 * the lowest position (append.c, step 2), and bp_gen tells them the
 * registry changed.  Slots of processes that are gone are reaped.
 */
#include "backpressure.h"

#include <errno.h>
#include <string.h>

#include "../util/clock.h"
#include "notify.h"
#include "../util/proc.h"

uint64_t part_bp_scan(struct part *p, uint64_t *gen)
{
	uint64_t min = UINT64_MAX;

	*gen = load_acquire(&p->hdr->bp_gen);
	for (int i = 0; i < PART_MAX_CONSUMERS; i++) {
		struct part_consumer_slot *s = &p->hdr->consumers[i];

		/* pairs with store_release of flags in part_bp_register() */
		if (load_acquire(&s->flags) & 1u) {
			uint64_t pos = load_acquire(&s->pos);

			if (pos < min)
				min = pos;
		}
	}
	/* the claim and the word zeroed past it stay behind pos */
	return min >= PART_POS_MAX ? PART_POS_MAX : min + p->cap - FRAME_ALIGN;
}

int part_bp_reap(struct part *p)
{
	int reaped = 0;

	for (int i = 0; i < PART_MAX_CONSUMERS; i++) {
		struct part_consumer_slot *s = &p->hdr->consumers[i];
		uint32_t pid = load_acquire(&s->pid);

		if (pid && (load_acquire(&s->flags) & 1u) &&
		    !proc_alive((pid_t)pid, load_relaxed(&s->start_time))) {
			store_release(&s->flags, 0u);
			if (cas(&s->pid, &pid, 0u))
				reaped++;
		}
	}
	if (reaped)
		fetch_add(&p->hdr->bp_gen, 1);
	return reaped;
}

int part_bp_holder(struct part *p, struct part_bp_holder *ret)
{
	uint64_t min = UINT64_MAX;
	int at = -1;

	for (int i = 0; i < PART_MAX_CONSUMERS; i++) {
		struct part_consumer_slot *s = &p->hdr->consumers[i];
		uint64_t pos;

		/* pairs with store_release of flags in part_bp_register() */
		if ((load_acquire(&s->flags) & 1u) && (pos = load_acquire(&s->pos)) < min) {
			min = pos;
			at = i;
		}
	}
	if (at < 0)
		return -ENOENT;
	ret->pid = load_relaxed(&p->hdr->consumers[at].pid);
	ret->offset = load_relaxed(&p->hdr->consumers[at].offset);
	/* another process's bytes: copied, cut at the first NUL, made printable */
	memcpy(ret->name, p->hdr->consumers[at].name, sizeof ret->name);
	ret->name[sizeof ret->name - 1] = '\0';
	for (char *c = ret->name; *c; c++)
		if (*c < 0x20 || *c > 0x7e || *c == '"')
			*c = '?';
	return 0;
}

int part_bp_register(struct part *p, uint64_t pos, uint64_t off, const char *name)
{
	uint64_t start;
	pid_t pid = proc_self(&start);

	for (int i = 0; i < PART_MAX_CONSUMERS; i++) {
		struct part_consumer_slot *s = &p->hdr->consumers[i];
		uint32_t free_pid = 0;

		if (load_relaxed(&s->pid) != 0 || !cas(&s->pid, &free_pid, (uint32_t)pid))
			continue;
		store_relaxed(&s->pos, pos);
		store_relaxed(&s->offset, off);
		store_relaxed(&s->start_time, start);
		store_relaxed(&s->registered_ns, real_ns());
		memset(s->name, 0, sizeof s->name);
		if (name)
			strncpy(s->name, name, sizeof s->name - 1);
		/* pairs with load_acquire of flags in part_bp_scan() */
		store_release(&s->flags, 1u);
		/* pairs with the producer's load of bp_gen after its CAS */
		fetch_add(&p->hdr->bp_gen, 1);
		/* lapped already? (format.md §3: tail >= pos + cap) */
		if (load_seq_cst(&p->hdr->claim.lo) >= pos + p->cap) {
			part_bp_unregister(p, i);
			return -ERANGE;
		}
		return i;
	}
	return -ENOSPC;
}

void part_bp_update(struct part *p, int slot, uint64_t pos, uint64_t off)
{
	struct part_consumer_slot *s = &p->hdr->consumers[slot];

	store_relaxed(&s->offset, off);
	/* pairs with load_acquire of pos in part_bp_scan(): our reads of the bytes
	 * before pos are done before a producer may overwrite them; the
	 * barrier then orders the store before the load of the space word
	 * (a producer sets its bit, then rescans: one of us sees the other) */
	store_seq_cst(&s->pos, pos);
	part_space_wake(p);
}

uint32_t part_bp_pid(const struct part *p, int i)
{
	return load_relaxed(&p->hdr->consumers[i].pid);
}

void part_bp_unregister(struct part *p, int slot)
{
	struct part_consumer_slot *s;

	if (slot < 0 || slot >= PART_MAX_CONSUMERS)
		return;
	s = &p->hdr->consumers[slot];
	store_release(&s->flags, 0u);
	store_release(&s->pid, 0u);
}
