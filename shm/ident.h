/*
 * ident.h - the identity every shared-memory file starts with (format.md
 * §1): magic, format version, header size, an endianness mark and the
 * word size of the machine that wrote it.  The partition, bus, group and
 * counters files all begin with these five fields, in this order;
 * shm_ident_write() writes them and shm_ident_check() checks them, for
 * every format, and each file's code turns a verdict into its message.
 */
#ifndef SHMBUS_SHM_IDENT_H
#define SHMBUS_SHM_IDENT_H

#include <stddef.h>
#include <stdint.h>

#define SHM_ENDIAN_MARK   0x0102030405060708ULL

/* The first bytes of every file's header. */
struct shm_ident {
	uint64_t magic;        /* written last (release): a file with it is whole */
	uint32_t version;
	uint32_t header_size;
	uint64_t endian;       /* SHM_ENDIAN_MARK as the writer stored it */
	uint32_t word_size;    /* sizeof(void *) of the writer */
};

/* A header type begins with the identity's fields at its offsets. */
#define SHM_IDENT_ASSERT(type)                                                            \
	_Static_assert(offsetof(type, magic) == offsetof(struct shm_ident, magic) &&       \
		       offsetof(type, version) == offsetof(struct shm_ident, version) &&   \
		       offsetof(type, header_size) == offsetof(struct shm_ident, header_size) && \
		       offsetof(type, endian) == offsetof(struct shm_ident, endian) &&     \
		       offsetof(type, word_size) == offsetof(struct shm_ident, word_size), \
		       #type " starts with the file identity")

/* What identifies one file format. */
struct shm_format {
	uint64_t magic;
	uint32_t version;
	uint32_t header_size;
};

/* How a header differs from a format, checked in this order. */
enum shm_ident_verdict {
	SHM_IDENT_OK = 0,
	SHM_IDENT_MAGIC,       /* not this kind of file, or damaged */
	SHM_IDENT_MACHINE,     /* written by a machine of another byte order or word size */
	SHM_IDENT_VERSION,     /* another format version */
	SHM_IDENT_SIZE,        /* the header size does not match */
};

/*
 * Write the identity of format f into the header of a new file (mapped
 * at hdr), once the rest of the header is written: the magic goes last,
 * with a release store that pairs with the reader's mapping or pread of
 * the published file.
 */
void shm_ident_write(void *hdr, const struct shm_format *f);

/* Check the identity at the start of a header (hdr, at least
 * sizeof(struct shm_ident) bytes) against format f. */
enum shm_ident_verdict shm_ident_check(const void *hdr, const struct shm_format *f);

#endif
