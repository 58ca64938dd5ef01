/*
 * fuzz_headers.c - libFuzzer target: the record-header decoder and the
 * frame parser over arbitrary bytes.  The decoder must never read past
 * the section, and a section it accepts must re-encode to the same bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../shm/frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct frame_kv kv[64];
	size_t cursor = 0, n = 0;
	struct frame_view v;
	uint8_t *copy = malloc(size ? size : 1), *again;
	int rc;

	/* an exact-size heap copy, so ASan sees any read past the end */
	memcpy(copy, data, size);
	while (n < 64 && (rc = frame_headers_next(copy, size, &cursor, &kv[n])) == 1)
		n++;
	if (rc == 0 && n < 64) {
		int64_t len = frame_headers_size(kv, n);

		if (len != (int64_t)size)
			abort();
		again = malloc(size ? size : 1);
		frame_headers_encode(again, kv, n);
		if (memcmp(again, copy, size))
			abort();
		free(again);
	}
	(void)frame_headers_check(copy, size, n);
	if (size >= FRAME_HDR_SIZE)
		(void)frame_parse((const struct frame_hdr *)(const void *)copy, size & ~7ULL,
				  ((const struct frame_hdr *)(const void *)copy)->offset, &v);
	free(copy);
	return 0;
}
