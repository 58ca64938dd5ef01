/*
 * fuzz_mirror.c - libFuzzer target: the mirroring protocol's codec
 * (shm/mirrorproto.c, docs/protocol.md part 2) over arbitrary bytes, in
 * both directions: as a source receives them from a mirror, and as a
 * mirror receives them from a source, DATA's frames included.
 *
 * Decoding never reads past the message (an exact-size heap copy, so
 * ASan sees an over-read); a decoded message re-encodes to the same
 * bytes (every field has one encoding); DATA's entries are walked as a
 * replica checks them, and none may end past the frames.  An EPOCHS
 * (version 2) that decodes holds a valid history, and the comparisons a
 * mirror and a source make of it (shm/epochs.c) stay within it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../shm/mirrorproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void walk(const struct mp_msg *m)
{
	size_t at = 0, n = 0;
	uint64_t off = m->u.data.first;
	struct mp_entry e;
	const char *why;

	while (mp_entry_next(m->u.data.frames, m->u.data.frames_len, &at, off, 1u << 20, &e,
			     &why) == 1) {
		if (at > m->u.data.frames_len || e.end <= off)
			abort();
		off = e.end;
		n++;
	}
	(void)n;
}

/* What mirror_epoch.c does with a history off the wire, against itself
 * and against a short one. */
static void epochs(const struct mp_msg *m)
{
	const struct epoch_hist *h = &m->u.epochs.hist;
	struct epoch_hist mine = { .n = h->n ? 1 : 0 };
	struct part_epoch add[PART_EPOCHS_MAX];
	uint64_t off = 0, epoch = 0;
	size_t n;

	if (!epochs_valid(h) || h->n > PART_EPOCHS_MAX)
		abort();
	if (h->n)
		mine.e[0] = h->e[0];
	if (epochs_diverge(&mine, m->u.epochs.end, h, m->u.epochs.end, &off, &epoch) == 1 &&
	    (epoch != h->e[0].epoch || off > m->u.epochs.end))
		abort();
	(void)epochs_fetch_ok(h, m->u.epochs.end, epochs_last(h), m->u.epochs.end);
	n = epochs_to_adopt(&mine, h, m->u.epochs.end, add);
	if (n > h->n)
		abort();
}

static void one_way(const uint8_t *copy, size_t size, enum mp_dir dir)
{
	struct mp_msg m;
	uint8_t again[MP_CTL_MAX];
	uint32_t len;
	uint16_t type;
	size_t n;

	if (mp_peek(copy, size, dir, size, &len, &type) || len > size)
		return;
	if (mp_decode(copy, len, dir, &m))
		return;
	(void)mp_type_name(m.type);
	if (m.type == MP_DATA) {
		walk(&m);
		return;
	}
	if (m.type == MP_EPOCHS)
		epochs(&m);
	n = mp_encode(&m, again, sizeof again);
	if (n != len || memcmp(again, copy, len))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* 8-aligned, as a receiver's buffer is */
	uint8_t *copy = aligned_alloc(8, (size + 7) & ~(size_t)7 ? (size + 7) & ~(size_t)7 : 8);

	memcpy(copy, data, size);
	one_way(copy, size, MP_FROM_MIRROR);
	one_way(copy, size, MP_FROM_SOURCE);
	if (size > 1 && size < 600) {
		char pat[300], name[300];
		size_t half = size / 2 < 299 ? size / 2 : 299;

		memcpy(pat, data, half);
		pat[half] = '\0';
		memcpy(name, data + half, size - half < 299 ? size - half : 299);
		name[size - half < 299 ? size - half : 299] = '\0';
		if (mp_pattern_valid(pat))
			(void)mp_pattern_match(pat, name);
	}
	free(copy);
	return 0;
}
