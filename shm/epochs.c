/*
 * epochs.c - the epoch history of a partition (format.md §14) and the
 * comparisons of two histories that mirroring makes (docs/protocol.md
 * §M3, §M9), after Kafka's KIP-101 and KIP-279.
 *
 * The header holds a ring of PART_EPOCHS_MAX entries and one word,
 * generation << 16 | first slot << 8 | count.  A writer changes only
 * slots outside the live range, then publishes with a CAS of the word
 * that bumps the generation; dropping the oldest entry of a full ring
 * first shrinks the live range by a CAS, then reuses its slot.  So the
 * word always describes whole entries (a writer killed anywhere leaves a
 * consistent history), and a reader that copies the entries between two
 * equal loads of the word has a consistent copy (a seqlock whose
 * sequence is the word itself).
 */
#include "epochs.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>

#include "../util/clock.h"
#include "../util/error.h"
#include "partition.h"

#define WORD(gen, first, n) ((gen) << 16 | (uint64_t)(first) << 8 | (uint64_t)(n))
#define W_GEN(w)   ((w) >> 16)
#define W_FIRST(w) ((uint32_t)((w) >> 8) & 0xff)
#define W_COUNT(w) ((uint32_t)(w) & 0xff)
#define READ_TRIES 1000

/* ------------------------------------------------------------------ */
/* Pure functions                                                      */

bool epochs_valid(const struct epoch_hist *h)
{
	if (h->n > PART_EPOCHS_MAX)
		return false;
	for (uint32_t i = 0; i < h->n; i++) {
		if (h->e[i].epoch == 0 || h->e[i].start >= PART_POS_MAX)
			return false;
		if (i && h->e[i].start < h->e[i - 1].start)
			return false;
		for (uint32_t j = 0; j < i; j++)
			if (h->e[j].epoch == h->e[i].epoch)
				return false;
	}
	return true;
}

uint64_t epochs_last(const struct epoch_hist *h)
{
	return h->n ? h->e[h->n - 1].epoch : 0;
}

int epochs_find(const struct epoch_hist *h, uint64_t epoch)
{
	for (uint32_t i = h->n; epoch && i-- > 0;)
		if (h->e[i].epoch == epoch)
			return (int)i;
	return -1;
}

uint64_t epochs_run_end(const struct epoch_hist *h, int i, uint64_t end)
{
	uint64_t next = (uint32_t)i + 1 < h->n ? h->e[i + 1].start : end;

	return next < end ? next : end;
}

int epochs_diverge(const struct epoch_hist *m, uint64_t m_end, const struct epoch_hist *s,
		   uint64_t s_end, uint64_t *ret_off, uint64_t *ret_epoch)
{
	/* newest first: every entry of m after the one found is m's alone,
	 * and starts at or after that one's run ends on m */
	for (uint32_t i = m->n; i-- > 0;) {
		int j = epochs_find(s, m->e[i].epoch);
		uint64_t me, se;

		if (j < 0)
			continue;
		me = epochs_run_end(m, (int)i, m_end);
		se = epochs_run_end(s, j, s_end);
		/* one epoch starts at one offset everywhere; if the two say
		 * otherwise, trust neither beyond the lower start */
		if (m->e[i].start != s->e[j].start)
			me = se = m->e[i].start < s->e[j].start ? m->e[i].start : s->e[j].start;
		*ret_off = me < se ? me : se;
		*ret_epoch = m->e[i].epoch;
		return 1;
	}
	return 0;
}

bool epochs_fetch_ok(const struct epoch_hist *s, uint64_t s_end, uint64_t epoch, uint64_t from)
{
	int j;

	if (from > s_end)
		return false;
	if (epoch == 0)
		return true;
	j = epochs_find(s, epoch);
	return j >= 0 && from >= s->e[j].start && from <= epochs_run_end(s, j, s_end);
}

size_t epochs_to_adopt(const struct epoch_hist *m, const struct epoch_hist *s, uint64_t upto,
		       struct part_epoch *out)
{
	int j = m->n ? epochs_find(s, epochs_last(m)) : -1;
	size_t k = 0;

	if (m->n && j < 0)
		return 0;
	for (uint32_t i = (uint32_t)(j + 1); i < s->n && s->e[i].start < upto; i++)
		out[k++] = s->e[i];
	return k;
}

uint64_t epoch_new(void)
{
	uint64_t e = 0;

	for (int i = 0; i < 100 && e == 0; i++)
		if (getrandom(&e, sizeof e, 0) != sizeof e)
			e = 0;
	/* getrandom(2) does not fail on a booted system; if it ever did,
	 * the clock still tells epochs apart */
	return e ? e : ((uint64_t)real_ns() ^ (uint64_t)mono_ns() << 32) | 1;
}

void epochs_text(const struct epoch_hist *h, char *buf, size_t len)
{
	size_t at = 0;

	if (len)
		buf[0] = '\0';
	for (uint32_t i = 0; i < h->n && at < len; i++) {
		int k = snprintf(buf + at, len - at, "%s%016llx@%llu", i ? "," : "",
				 (unsigned long long)h->e[i].epoch,
				 (unsigned long long)h->e[i].start);

		if (k < 0)
			break;
		at += (size_t)k;
	}
	if (h->n == 0 && len)
		snprintf(buf, len, "(none)");
}

/* ------------------------------------------------------------------ */
/* The header's history                                                */

void part_epochs_init(struct part_header *h, uint64_t epoch, bool replica)
{
	if (!replica)
		h->epochs[0] = (struct part_epoch){ .epoch = epoch, .start = 0 };
	h->epochs_word = WORD(1ULL, 0, replica ? 0 : 1);
}

static int damaged(const struct part *p, uint64_t w)
{
	return shm_err(-EBADMSG, "partition %s/%u: its epoch history word %#llx is damaged "
		       "(format.md §14); restart shmbusd on the root to repair it",
		       p->hdr->topic, p->partition, (unsigned long long)w);
}

/* The history a header that predates histories stands for. */
static void legacy(const struct part *p, struct epoch_hist *h)
{
	h->n = 0;
	if (!part_is_replica(p)) {
		h->e[0] = (struct part_epoch){ .epoch = p->epoch, .start = 0 };
		h->n = 1;
	}
}

/* Copy the entries the word w describes. */
static void copy(const struct part *p, uint64_t w, struct epoch_hist *h)
{
	uint32_t first = W_FIRST(w);

	h->n = W_COUNT(w);
	for (uint32_t i = 0; i < h->n; i++) {
		const struct part_epoch *e = &p->hdr->epochs[(first + i) % PART_EPOCHS_MAX];

		h->e[i].epoch = load_relaxed(&e->epoch);
		h->e[i].start = load_relaxed(&e->start);
	}
}

static bool word_ok(uint64_t w)
{
	return W_COUNT(w) <= PART_EPOCHS_MAX && W_FIRST(w) < PART_EPOCHS_MAX;
}

int part_epochs_read(const struct part *p, struct epoch_hist *ret)
{
	for (int tries = 0; tries < READ_TRIES; tries++) {
		/* pairs with the CAS of the word in publish() */
		uint64_t w = load_acquire(&p->hdr->epochs_word);

		if (w == 0) {
			legacy(p, ret);
			return 0;
		}
		if (!word_ok(w))
			return damaged(p, w);
		copy(p, w, ret);
		/* orders the copy before the second load; pairs with the
		 * release fence in drop_oldest() */
		fence_acquire();
		if (load_relaxed(&p->hdr->epochs_word) == w) {
			if (!epochs_valid(ret))
				return shm_err(-EBADMSG, "partition %s/%u: its epoch history is "
					       "damaged (format.md §14)", p->hdr->topic,
					       p->partition);
			return 0;
		}
		cpu_relax();
	}
	return shm_err(-EAGAIN, "partition %s/%u: its epoch history changed %d times while it "
		       "was read", p->hdr->topic, p->partition, READ_TRIES);
}

uint64_t part_epoch_last(const struct part *p)
{
	struct epoch_hist h;

	return part_epochs_read(p, &h) == 0 ? epochs_last(&h) : 0;
}

/* On a disk root the history is written through before the caller goes
 * on: it decides what a mirror cuts after a reboot. */
static void sync_header(const struct part *p)
{
	if (!p->on_tmpfs)
		(void)msync(p->hdr, PART_PAGE, MS_SYNC);
}

static int publish(struct part *p, uint64_t *w, uint32_t first, uint32_t n)
{
	uint64_t want = WORD(W_GEN(*w) + 1, first, n);

	/* pairs with the load_acquire in part_epochs_read() */
	if (!cas(&p->hdr->epochs_word, w, want))
		return shm_err(-EBUSY, "partition %s/%u: its epoch history was changed by another "
			       "writer meanwhile", p->hdr->topic, p->partition);
	*w = want;
	return 0;
}

/* A header from before histories: write what it stands for. */
static int materialize(struct part *p, uint64_t *w)
{
	struct epoch_hist h;

	legacy(p, &h);
	if (h.n)
		p->hdr->epochs[0] = h.e[0];
	return publish(p, w, 0, h.n);
}

/* A full ring: give up the oldest entry, so its slot can be reused. */
static int drop_oldest(struct part *p, uint64_t *w)
{
	int rc = publish(p, w, (W_FIRST(*w) + 1) % PART_EPOCHS_MAX, W_COUNT(*w) - 1);

	/* the slot's new bytes come after the word that gave it up, for a
	 * reader who copied the old word; pairs with its fence_acquire */
	__atomic_thread_fence(__ATOMIC_RELEASE);
	return rc;
}

/* The word, a legacy one written out first: 0 or -errno. */
static int word_for_write(struct part *p, uint64_t *w)
{
	*w = load_acquire(&p->hdr->epochs_word);
	if (*w == 0)
		return materialize(p, w);
	return word_ok(*w) ? 0 : damaged(p, *w);
}

int part_epochs_append(struct part *p, uint64_t epoch, uint64_t start)
{
	struct epoch_hist h;
	struct part_epoch *slot;
	uint64_t w;
	int rc = word_for_write(p, &w);

	if (rc)
		return rc;
	copy(p, w, &h);
	if (epoch == 0 || start >= PART_POS_MAX || epochs_find(&h, epoch) >= 0 ||
	    (h.n && start < h.e[h.n - 1].start))
		return shm_err(-EINVAL, "partition %s/%u: epoch %016llx from offset %llu cannot "
			       "follow its history (it holds it already, or the offset goes back)",
			       p->hdr->topic, p->partition, (unsigned long long)epoch,
			       (unsigned long long)start);
	if (W_COUNT(w) == PART_EPOCHS_MAX && (rc = drop_oldest(p, &w)))
		return rc;
	slot = &p->hdr->epochs[(W_FIRST(w) + W_COUNT(w)) % PART_EPOCHS_MAX];
	store_relaxed(&slot->epoch, epoch);
	store_relaxed(&slot->start, start);
	rc = publish(p, &w, W_FIRST(w), W_COUNT(w) + 1);
	sync_header(p);
	return rc;
}

int part_epochs_trim(struct part *p, uint64_t from)
{
	struct epoch_hist h;
	uint64_t w;
	uint32_t keep;
	int rc = word_for_write(p, &w);

	if (rc)
		return rc;
	copy(p, w, &h);
	for (keep = h.n; keep > 0 && h.e[keep - 1].start >= from; keep--)
		;
	if (keep == h.n)
		return 0;
	rc = publish(p, &w, W_FIRST(w), keep);
	sync_header(p);
	return rc ? rc : (int)(h.n - keep);
}

int part_epochs_adopt(struct part *p, const struct epoch_hist *src, uint64_t upto)
{
	struct part_epoch add[PART_EPOCHS_MAX];
	struct epoch_hist h;
	size_t n;
	int rc = part_epochs_read(p, &h);

	if (rc)
		return rc;
	n = epochs_to_adopt(&h, src, upto, add);
	for (size_t i = 0; i < n; i++) {
		rc = part_epochs_append(p, add[i].epoch, add[i].start);
		if (rc)
			return rc;
	}
	return (int)n;
}
