/*
 * test_abi.c - the rules that let libshmbus's ABI grow (design-notes.md,
 * "The ABI"), through the public header only.
 *
 * Options structs: a caller built against a newer shmbus.h passes a
 * bigger struct; the library refuses it if a byte past the fields it
 * knows is set (it cannot honour it), accepts it if they are all zero,
 * and reads an older caller's smaller struct with defaults for the rest.
 */
#include "lib/testutil.h"

#include <errno.h>
#include <string.h>

#include "shmbus.h"

struct env {
	char *root;
	shmbus *bus;
};

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof *e);
	SHMBUS_OPTS(shmbus_topic_opts, o, .capacity = 65536);

	e->root = tu_tmpdir("abi");
	setenv("SHMBUS_ROOT", e->root, 1); /* for shmbus_open(NULL, ...) */
	e->bus = tu_open(e->root);
	assert_ok(shmbus_topic_create(e->bus, "t", &o));
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;

	shmbus_close(e->bus);
	tu_rmrf(e->root);
	free(e->root);
	free(e);
	return 0;
}

#define assert_errmsg_has(word)                                                            \
	do {                                                                               \
		if (!strstr(shmbus_errmsg(), (word)))                                     \
			fail_msg("the message does not mention \"%s\": \"%s\"", (word),    \
				 shmbus_errmsg());                                         \
	} while (0)

/* ------------------------------------------------------------------ */
/* Options structs                                                     */

/* A struct as a newer header would declare it: the known fields, then
 * 16 bytes this library does not know. */
#define NEWER(TYPE) struct { struct TYPE o; uint8_t more[16]; }

/* Every function that takes an options struct, given o (NULL: defaults). */
static int open_with(struct env *e, const void *o)
{
	shmbus *bus = NULL;
	int rc;

	if (o)
		((struct shmbus_open_opts *)(uintptr_t)o)->root = e->root;
	rc = shmbus_open(o, &bus);
	shmbus_close(bus);
	return rc;
}

static int topic_with(struct env *e, const void *o)
{
	static int n;
	char name[32];

	snprintf(name, sizeof name, "new%d", n++);
	return shmbus_topic_create(e->bus, name, o);
}

static int producer_with(struct env *e, const void *o)
{
	shmbus_producer *p = NULL;
	int rc = shmbus_producer_new(e->bus, "t", o, &p);

	shmbus_producer_free(p);
	return rc;
}

static int consumer_with(struct env *e, const void *o)
{
	shmbus_consumer *c = NULL;
	int rc = shmbus_consumer_new(e->bus, o, &c);

	shmbus_consumer_free(c);
	return rc;
}

struct opts_case {
	const char *type;
	size_t size;
	int (*call)(struct env *e, const void *o);
};

static const struct opts_case opts_cases[] = {
	{ "struct shmbus_open_opts", sizeof(struct shmbus_open_opts), open_with },
	{ "struct shmbus_topic_opts", sizeof(struct shmbus_topic_opts), topic_with },
	{ "struct shmbus_producer_opts", sizeof(struct shmbus_producer_opts), producer_with },
	{ "struct shmbus_consumer_opts", sizeof(struct shmbus_consumer_opts), consumer_with },
};

/* A zeroed struct of the library's size plus 16 bytes, sz set. */
static void *newer(const struct opts_case *c)
{
	uint8_t *buf = calloc(1, c->size + 16);
	size_t sz = c->size + 16;

	memcpy(buf, &sz, sizeof sz);
	return buf;
}

static void options_from_a_newer_caller_that_set_a_new_field_are_refused(void **state)
{
	struct env *e = *state;

	for (size_t i = 0; i < sizeof opts_cases / sizeof opts_cases[0]; i++) {
		const struct opts_case *c = &opts_cases[i];
		uint8_t *o = newer(c);
		char want[160];

		o[c->size + 5] = 1;
		assert_int_equal(c->call(e, o), -EINVAL);
		snprintf(want, sizeof want, "%s of %zu bytes", c->type, c->size + 16);
		assert_errmsg_has(want);
		snprintf(want, sizeof want, "%zu this libshmbus knows", c->size);
		assert_errmsg_has(want);
		free(o);
	}
}

static void options_from_a_newer_caller_with_zeros_past_the_end_are_accepted(void **state)
{
	struct env *e = *state;

	for (size_t i = 0; i < sizeof opts_cases / sizeof opts_cases[0]; i++) {
		uint8_t *o = newer(&opts_cases[i]);

		assert_ok(opts_cases[i].call(e, o));
		free(o);
	}
}

/* An older caller: only sz itself.  What lies past it is not read. */
static void options_from_an_older_caller_get_defaults_for_the_rest(void **state)
{
	struct env *e = *state;
	NEWER(shmbus_producer_opts) po = { .o = { .sz = sizeof(size_t), .block = true,
						  .block_timeout_ms = -1 } };
	NEWER(shmbus_consumer_opts) co = { .o = { .sz = sizeof(size_t), .reset = 77 } };
	NEWER(shmbus_topic_opts) to = { .o = { .sz = offsetof(struct shmbus_topic_opts, capacity),
					       .partitions = 3, .capacity = 12345 } };
	struct shmbus_topic_info info;

	memset(po.more, 0xff, sizeof po.more); /* past sz: never read */
	memset(co.more, 0xff, sizeof co.more);
	memset(to.more, 0xff, sizeof to.more);
	assert_ok(producer_with(e, &po));
	assert_ok(consumer_with(e, &co));
	assert_ok(shmbus_topic_create(e->bus, "older", &to.o));
	assert_ok(shmbus_topic_describe(e->bus, "older", &info));
	assert_int_equal(info.partitions, 3);
	assert_int_equal(info.capacity, SHMBUS_DEFAULT_CAPACITY);
}

/* sz smaller than sz itself: the caller forgot SHMBUS_OPTS. */
static void options_without_their_size_are_refused(void **state)
{
	struct env *e = *state;

	for (size_t i = 0; i < sizeof opts_cases / sizeof opts_cases[0]; i++) {
		const struct opts_case *c = &opts_cases[i];
		uint8_t *o = calloc(1, c->size);

		assert_int_equal(c->call(e, o), -EINVAL);
		assert_errmsg_has(c->type);
		assert_errmsg_has("SHMBUS_OPTS");
		free(o);
		assert_ok(c->call(e, NULL)); /* NULL: every default */
	}
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(options_from_a_newer_caller_that_set_a_new_field_are_refused),
		T(options_from_a_newer_caller_with_zeros_past_the_end_are_accepted),
		T(options_from_an_older_caller_get_defaults_for_the_rest),
		T(options_without_their_size_are_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
