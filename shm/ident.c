/*
 * ident.c - writing and checking the identity every shared file starts
 * with (ident.h).  Copied with memcpy: the header types differ, and the
 * identity's fields are read through none of them.
 */
#include "ident.h"

#include <string.h>

#include "../util/atomics.h"

void shm_ident_write(void *hdr, const struct shm_format *f)
{
	struct shm_ident id = { .version = f->version, .header_size = f->header_size,
				.endian = SHM_ENDIAN_MARK, .word_size = sizeof(void *) };
	size_t from = offsetof(struct shm_ident, version);
	size_t to = offsetof(struct shm_ident, word_size) + sizeof id.word_size;

	memcpy((uint8_t *)hdr + from, (const uint8_t *)&id + from, to - from);
	/* magic last: a file with a valid magic has a finished header */
	store_release((uint64_t *)hdr, f->magic);
}

enum shm_ident_verdict shm_ident_check(const void *hdr, const struct shm_format *f)
{
	struct shm_ident id;

	memcpy(&id, hdr, offsetof(struct shm_ident, word_size) + sizeof id.word_size);
	if (id.magic != f->magic)
		return SHM_IDENT_MAGIC;
	if (id.endian != SHM_ENDIAN_MARK || id.word_size != sizeof(void *))
		return SHM_IDENT_MACHINE;
	if (id.version != f->version)
		return SHM_IDENT_VERSION;
	if (id.header_size != f->header_size)
		return SHM_IDENT_SIZE;
	return SHM_IDENT_OK;
}
