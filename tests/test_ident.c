/*
 * test_ident.c - the identity every shared file starts with (ident.h):
 * written whole, the magic last, and each way a header can differ from
 * its format told apart, in order.
 */
#include "lib/testutil.h"

#include <stddef.h>
#include <string.h>

#include "../shm/ident.h"

static const struct shm_format fmt = { .magic = 0x1122334455667788ULL, .version = 3,
				       .header_size = 4096 };

static void written_identity_checks(void **state)
{
	struct shm_ident id;
	uint8_t page[64];

	(void)state;
	memset(page, 0xa5, sizeof page);
	shm_ident_write(page, &fmt);
	memcpy(&id, page, sizeof id);
	assert_int_equal(id.magic, fmt.magic);
	assert_int_equal(id.version, 3);
	assert_int_equal(id.header_size, 4096);
	assert_int_equal(id.endian, SHM_ENDIAN_MARK);
	assert_int_equal(id.word_size, sizeof(void *));
	assert_int_equal(page[28], 0xa5); /* the header's own fields are left alone */
	assert_int_equal(shm_ident_check(page, &fmt), SHM_IDENT_OK);
}

static void each_difference_has_its_verdict(void **state)
{
	uint8_t page[64];
	struct shm_ident id;

	(void)state;
	shm_ident_write(page, &fmt);
	memcpy(&id, page, sizeof id);

#define CHECK_WITH(field, value, verdict)                                \
	do {                                                             \
		struct shm_ident x = id;                                 \
		x.field = value;                                         \
		memcpy(page, &x, offsetof(struct shm_ident, word_size) + 4); \
		assert_int_equal(shm_ident_check(page, &fmt), verdict);  \
	} while (0)

	CHECK_WITH(magic, fmt.magic + 1, SHM_IDENT_MAGIC);
	CHECK_WITH(endian, __builtin_bswap64(SHM_ENDIAN_MARK), SHM_IDENT_MACHINE);
	CHECK_WITH(word_size, 4, SHM_IDENT_MACHINE);
	CHECK_WITH(version, 4, SHM_IDENT_VERSION);
	CHECK_WITH(header_size, 8192, SHM_IDENT_SIZE);
	/* another machine's version word means nothing: the machine is told */
	{
		struct shm_ident x = id;

		x.endian = __builtin_bswap64(SHM_ENDIAN_MARK);
		x.version = 4;
		memcpy(page, &x, offsetof(struct shm_ident, word_size) + 4);
		assert_int_equal(shm_ident_check(page, &fmt), SHM_IDENT_MACHINE);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(written_identity_checks),
		cmocka_unit_test(each_difference_has_its_verdict),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
