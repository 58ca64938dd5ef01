/*
 * fuzz_control.c - libFuzzer target: the control socket's codec
 * (util/ctlproto.c, docs/protocol.md) over arbitrary bytes, as shmbusd
 * receives them from any local process.
 *
 * Decoding must never read past the message (it is an exact-size heap
 * copy, so ASan sees any over-read); a message that decodes must
 * re-encode into one that decodes to the same header and attributes
 * (strings and byte strings equal, integers equal), and never be longer
 * than the input.  Partition records (GROUP_* messages) are read within
 * their attribute.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../util/ctlproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Partition records (GROUP_* messages): counted and read in bounds. */
static void records(const struct ctl_msg *m)
{
	static const enum ctl_attr as[] = { CTL_A_ASSIGNMENT, CTL_A_OFFSETS };

	for (size_t k = 0; k < 2; k++) {
		int n = ctl_tp_count(m, as[k]);
		struct ctl_tp tp;

		if (n < 0 && (m->num[as[k]] % CTL_TP_SIZE) == 0)
			abort();
		for (int i = 0; i < n; i++)
			ctl_tp_get(m, as[k], (size_t)i, &tp);
	}
}

static void same(const struct ctl_msg *a, const struct ctl_msg *b)
{
	if (a->hdr.version != b->hdr.version || a->hdr.type != b->hdr.type ||
	    a->hdr.seq != b->hdr.seq)
		abort();
	for (int i = 1; i < CTL_A_COUNT; i++) {
		if (a->has[i] != b->has[i])
			abort();
		if (!a->has[i])
			continue;
		if (ctl_attr_kind((uint16_t)i) == CTL_K_STR) {
			if (strcmp(a->str[i], b->str[i]))
				abort();
		} else if (ctl_attr_kind((uint16_t)i) == CTL_K_BYTES) {
			if (a->num[i] != b->num[i] || (a->num[i] && memcmp(a->str[i], b->str[i], a->num[i])))
				abort();
		} else if (a->num[i] != b->num[i]) {
			abort();
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *copy = malloc(size ? size : 1), *again;
	struct ctl_msg m, m2;
	struct ctl_hdr h;
	int len;

	memcpy(copy, data, size);
	(void)ctl_peek(copy, size, &h);
	if (ctl_decode(copy, size, &m) == 0) {
		(void)ctl_check(&m);
		(void)ctl_type_name(m.hdr.type);
		records(&m);
		again = malloc(CTL_MSG_MAX);
		len = ctl_encode(&m, again, CTL_MSG_MAX);
		/* unknown attributes are dropped, known ones keep their size */
		if (len < 0 || (size_t)len > size)
			abort();
		if (ctl_decode(again, (size_t)len, &m2) != 0 || m2.unknown != 0)
			abort();
		same(&m, &m2);
		free(again);
	}
	free(copy);
	return 0;
}
