/*
 * sync.c - msync of what was appended to a partition (sync.h).
 *
 * msync takes page-aligned addresses: each range is widened down to its
 * page.  The data ring and the index are rings: a range that crosses
 * the end is two.
 */
#include "sync.h"

#include <errno.h>
#include <sys/mman.h>

static int sync_bytes(void *base, uint64_t from, uint64_t len)
{
	uintptr_t a = (uintptr_t)base + from, page = a & ~(uintptr_t)(PART_PAGE - 1);

	if (!len)
		return 0;
	return msync((void *)page, len + (a - page), MS_SYNC) < 0 ? -errno : 0;
}

/* Bytes [from, from + len) of a ring of `cap` bytes at base (len <= cap). */
static int sync_ring(void *base, uint64_t cap, uint64_t from, uint64_t len)
{
	uint64_t at = from & (cap - 1);
	int rc;

	if (at + len <= cap)
		return sync_bytes(base, at, len);
	rc = sync_bytes(base, at, cap - at);
	return rc ? rc : sync_bytes(base, 0, len - (cap - at));
}

int part_sync(struct part *p, struct part_synced *s)
{
	pair128 now = load_pair(&p->hdr->claim);
	uint64_t bytes = now.lo > s->tail ? now.lo - s->tail : 0;
	uint64_t slots = now.hi > s->next ? now.hi - s->next : 0;
	int rc;

	if (bytes > p->cap)
		bytes = p->cap;
	if (slots > p->icap)
		slots = p->icap;
	rc = sync_ring(p->data, p->cap, now.lo - bytes, bytes);
	if (!rc)
		rc = sync_ring(p->index, p->icap * sizeof(uint64_t),
			       (now.hi - slots) * sizeof(uint64_t), slots * sizeof(uint64_t));
	if (!rc)
		rc = sync_bytes(p->hdr, 0, PART_PAGE);
	if (rc)
		return rc;
	*s = (struct part_synced){ .tail = now.lo, .next = now.hi };
	return 0;
}
