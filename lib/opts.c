/*
 * opts.c - the structs that let the ABI grow (docs/design-notes.md, "The
 * ABI").  Every options struct and every struct the library fills begins
 * with `size_t sz`, the size of the struct as the caller's shmbus.h
 * declares it.  An options struct is read up to the smaller of its size
 * and ours, and refused if the caller set a field this library does not
 * know (libbpf's OPTS_VALID); a struct the library fills is written up
 * to the smaller of the two, and its sz set to that (as the kernel does
 * with bpf_obj_get_info_by_fd's info_len).  One helper for each
 * direction, used by every call that takes such a struct.
 */
#include "internal.h"

#include <errno.h>

/* No shmbus.h will ever declare an options struct this big: a caller's
 * sz beyond it is garbage, not a newer struct (and reading that far
 * past the caller's struct could fault). */
#define OPTS_SZ_MAX 4096

int opts_load(void *dst, size_t size, const void *src, const char *type)
{
	const uint8_t *bytes = src;
	size_t sz;

	memset(dst, 0, size);
	if (src) {
		memcpy(&sz, src, sizeof sz);
		if (sz < sizeof sz || sz > OPTS_SZ_MAX)
			return lib_err(-EINVAL, "%s has sz %zu, not its size: declare it with "
				       "SHMBUS_OPTS(%s, name, ...), or pass NULL for every default",
				       type, sz, type + strlen("struct "));
		for (size_t i = size; i < sz; i++)
			if (bytes[i])
				return lib_err(-EINVAL, "%s of %zu bytes sets byte %zu, past the %zu "
					       "this libshmbus knows: the caller was built against a "
					       "newer shmbus.h; use a libshmbus as new as that header, "
					       "or leave the fields it added zero", type, sz, i, size);
		memcpy(dst, src, sz < size ? sz : size);
	}
	memcpy(dst, &size, sizeof size);
	return 0;
}

int out_check(const void *ret, const char *type)
{
	size_t sz;

	if (!ret)
		return lib_err(-EINVAL, "%s: NULL; pass one for the library to fill", type);
	memcpy(&sz, ret, sizeof sz);
	if (sz < sizeof sz)
		return lib_err(-EINVAL, "%s has sz %zu, less than its mandatory prefix (sz itself, "
			       "%zu bytes): declare it with SHMBUS_OPTS(%s, name) so the library "
			       "knows how much of it to fill", type, sz, sizeof sz,
			       type + strlen("struct "));
	return 0;
}

void out_store(void *ret, size_t sz, const void *src, size_t size)
{
	size_t n = sz < size ? sz : size;

	memcpy(ret, src, n);
	memcpy(ret, &n, sizeof n); /* a newer caller learns what we filled */
}
