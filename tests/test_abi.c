/*
 * test_abi.c - the rules that let libshmbus's ABI grow (design-notes.md,
 * "The ABI"), through the public header only.
 *
 * Options structs: a caller built against a newer shmbus.h passes a
 * bigger struct; the library refuses it if a byte past the fields it
 * knows is set (it cannot honour it), accepts it if they are all zero,
 * and reads an older caller's smaller struct with defaults for the rest.
 *
 * Structs the library fills: refused (naming the struct) without sz;
 * written up to sz, never past it, with sz set to what was written.
 *
 * Symbols: libshmbus.so exports exactly the functions include/shmbus.h
 * declares, each under a version node of lib/libshmbus.map; the
 * installed libshmbus.a exports only those too.  This program links that
 * libshmbus.a (not the internal archive the other tests link) and
 * defines functions named like the library's internal ones.
 */
#include "lib/testutil.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
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
	SHMBUS_OPTS(shmbus_topic_info, info);

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

/* ------------------------------------------------------------------ */
/* Structs the library fills                                           */

static int describe_into(struct env *e, void *ret)
{
	return shmbus_topic_describe(e->bus, "t", ret);
}

static int list_into(struct env *e, void *ret)
{
	return shmbus_topic_list(e->bus, ret, 1);
}

static int partition_info_into(struct env *e, void *ret)
{
	return shmbus_partition_info(e->bus, "t", 0, ret);
}

static int recover_into(struct env *e, void *ret)
{
	return shmbus_partition_recover(e->bus, "t", 0, ret);
}

static int consumer_stats_into(struct env *e, void *ret)
{
	shmbus_consumer *c = NULL;
	int rc = shmbus_consumer_new(e->bus, NULL, &c);

	if (rc == 0)
		rc = shmbus_consumer_stats(c, ret);
	shmbus_consumer_free(c);
	return rc;
}

static int daemon_counters_into(struct env *e, void *ret)
{
	return shmbus_daemon_counters(e->bus, ret);
}

static int daemon_status_into(struct env *e, void *ret)
{
	return shmbus_daemon_status(e->bus, ret);
}

static int partition_rate_into(struct env *e, void *ret)
{
	return shmbus_partition_rate(e->bus, "t", 0, ret);
}

struct out_case {
	const char *type;
	size_t size;
	int (*call)(struct env *e, void *ret);
	bool fills;                 /* without a daemon (else it fails after the check) */
};

#define OUT(T, fn, fills) { "struct " #T, sizeof(struct T), fn, fills }
static const struct out_case out_cases[] = {
	OUT(shmbus_topic_info, describe_into, true),
	OUT(shmbus_topic_info, list_into, true),
	OUT(shmbus_partition_info, partition_info_into, true),
	OUT(shmbus_recovery, recover_into, true),
	OUT(shmbus_consumer_stats, consumer_stats_into, true),
	OUT(shmbus_daemon_counters, daemon_counters_into, true),
	OUT(shmbus_daemon_status, daemon_status_into, false),
	OUT(shmbus_partition_rate, partition_rate_into, false),
};
#define NOUT (sizeof out_cases / sizeof out_cases[0])

static void filled_structs_without_their_size_are_refused(void **state)
{
	struct env *e = *state;

	for (size_t i = 0; i < NOUT; i++) {
		const struct out_case *c = &out_cases[i];
		uint8_t *ret = calloc(1, c->size);
		size_t small = 4;

		assert_int_equal(c->call(e, NULL), -EINVAL);
		assert_errmsg_has(c->type);
		assert_int_equal(c->call(e, ret), -EINVAL);     /* sz 0 */
		assert_errmsg_has(c->type);
		assert_errmsg_has("SHMBUS_OPTS");
		memcpy(ret, &small, sizeof small);              /* less than sz itself */
		assert_int_equal(c->call(e, ret), -EINVAL);
		assert_errmsg_has("mandatory prefix");
		free(ret);
	}
}

/* Call c with a struct of sz bytes inside a buffer of 0xab: sz must come
 * back as what was written, and nothing past it may change. */
static void fill_and_check(struct env *e, const struct out_case *c, size_t sz)
{
	size_t cap = c->size + 16, got, want = sz < c->size ? sz : c->size;
	uint8_t *ret = malloc(cap);

	memset(ret, 0xab, cap);
	memcpy(ret, &sz, sizeof sz);
	assert_ok(c->call(e, ret));
	memcpy(&got, ret, sizeof got);
	if (got != want)
		fail_msg("%s of %zu bytes: sz came back %zu, not %zu", c->type, sz, got, want);
	for (size_t i = want; i < cap; i++)
		if (ret[i] != 0xab)
			fail_msg("%s of %zu bytes: byte %zu was written", c->type, sz, i);
	free(ret);
}

static void filled_structs_are_written_up_to_their_size(void **state)
{
	struct env *e = *state;

	for (size_t i = 0; i < NOUT; i++) {
		if (!out_cases[i].fills)
			continue;
		fill_and_check(e, &out_cases[i], sizeof(size_t) + 8); /* an older caller's */
		fill_and_check(e, &out_cases[i], out_cases[i].size);
		fill_and_check(e, &out_cases[i], out_cases[i].size + 16); /* a newer one's */
	}
}

/* shmbus_topic_list fills an array of the caller's structs: each
 * out[0].sz bytes apart, whatever this library's size. */
static void topics_are_listed_into_an_older_callers_array(void **state)
{
	struct env *e = *state;
	size_t stride = sizeof(size_t) + 16, len = 3 * stride + 8;   /* sz and 16 name bytes */
	uint8_t *out = malloc(len);
	int seen = 0;

	assert_ok(shmbus_topic_create(e->bus, "u", NULL));
	assert_ok(shmbus_topic_create(e->bus, "v", NULL));
	memset(out, 0xab, len);
	memcpy(out, &stride, sizeof stride);
	assert_int_equal(shmbus_topic_list(e->bus, (struct shmbus_topic_info *)(void *)out, 3), 3);
	for (int i = 0; i < 3; i++) {
		const uint8_t *el = out + (size_t)i * stride;
		const char *name = (const char *)el + sizeof(size_t);
		size_t sz;

		memcpy(&sz, el, sizeof sz);
		assert_int_equal(sz, stride);
		assert_true(strlen(name) == 1 && strchr("tuv", name[0]));
		seen |= 1 << (name[0] - 't');
	}
	assert_int_equal(seen, 0x1 | 0x2 | 0x4);
	for (size_t i = 3 * stride; i < len; i++)
		assert_int_equal(out[i], 0xab);
	free(out);
}

/* ------------------------------------------------------------------ */
/* Symbols                                                             */

/* This program's own functions, named like internal ones of libshmbus
 * (util/crc32c.h, lib/cache.c, lib/partitioner.c), with other meanings. */
uint32_t crc32c(const char *s);
int cache_get(const char *key);
uint32_t murmur2(uint32_t x);

uint32_t crc32c(const char *s)
{
	return (uint32_t)strlen(s) + 1000;
}

int cache_get(const char *key)
{
	return key[0] == 'k' ? 42 : -1;
}

uint32_t murmur2(uint32_t x)
{
	return x * 3;
}

/* That this program links at all says the archive does not define them
 * (a duplicate definition fails the link); the library must still reach
 * its own: Kafka's murmur2 partitions keys, CRC32C seals and checks
 * records, the cache maps partitions. */
static void an_applications_own_crc32c_and_cache_get_do_not_clash(void **state)
{
	struct env *e = *state;
	SHMBUS_OPTS(shmbus_topic_opts, to, .partitions = 12, .capacity = 65536);
	SHMBUS_OPTS(shmbus_consumer_opts, co, .check_crc = true, .copy = true);
	SHMBUS_OPTS(shmbus_recovery, r);
	struct shmbus_record rec = { .key = "alice", .key_len = 5, .value = "v", .value_len = 1 };
	struct shmbus_message m[1];
	shmbus_producer *p = NULL;
	shmbus_consumer *c = NULL;
	uint64_t off;
	int part;

	assert_int_equal(crc32c("abc"), 1003);
	assert_int_equal(cache_get("key"), 42);
	assert_int_equal(murmur2(5), 15);
	assert_ok(shmbus_topic_create(e->bus, "keyed", &to));
	assert_ok(shmbus_producer_new(e->bus, "keyed", NULL, &p));
	assert_int_equal(shmbus_producer_partition_for(p, "alice", 5), 9); /* as Kafka's */
	assert_int_equal(shmbus_producer_partition_for(p, "bob", 3), 6);
	part = shmbus_producer_send(p, SHMBUS_PARTITION_ANY, &rec, &off);
	assert_int_equal(part, 9);
	assert_ok(shmbus_consumer_new(e->bus, &co, &c));
	assert_ok(shmbus_consumer_assign(c, "keyed", 9, SHMBUS_OFFSET_BEGINNING));
	assert_int_equal(shmbus_consumer_poll(c, m, 1, 1000), 1);
	assert_int_equal(m[0].value_len, 1);
	assert_memory_equal(m[0].value, "v", 1);
	shmbus_consumer_free(c);
	shmbus_producer_free(p);
	assert_ok(shmbus_partition_recover(e->bus, "keyed", 9, &r));
	assert_int_equal(r.frames, 1); /* its CRC checked */
	assert_int_equal(r.cut, 0);
}

static const char *build_dir(void)
{
	const char *b = getenv("BUILD");

	return b && *b ? b : "build";
}

#define MAX_FUNCS 256

/* The functions include/shmbus.h declares (SHMBUS_API ... name(...)). */
static size_t header_functions(char names[][64])
{
	FILE *f = fopen("include/shmbus.h", "r");
	static char text[1 << 17];
	size_t len, n = 0;
	char *at = text;

	if (!f)
		fail_msg("cannot open include/shmbus.h (run from the source tree): %s",
			 strerror(errno));
	len = fread(text, 1, sizeof text - 1, f);
	fclose(f);
	text[len] = '\0';
	while ((at = strstr(at, "SHMBUS_API ")) && n < MAX_FUNCS) {
		char *paren = strchr(at, '('), *end = paren, *start;

		at += strlen("SHMBUS_API ");
		if (!paren || !strncmp(at, "__attribute__", 13))
			continue; /* the macro's own definition */
		while (end > at && end[-1] == ' ')
			end--;
		for (start = end; start > at && (start[-1] == '_' || isalnum((unsigned char)start[-1]));)
			start--;
		assert_true(end - start > 0 && end - start < 64);
		snprintf(names[n++], 64, "%.*s", (int)(end - start), start);
	}
	assert_true(n > 30);
	return n;
}

static ssize_t find(char names[][64], size_t n, const char *name, size_t len)
{
	for (size_t i = 0; i < n; i++)
		if (strlen(names[i]) == len && !strncmp(names[i], name, len))
			return (ssize_t)i;
	return -1;
}

/* Run nm; skip the test if there is none. */
static FILE *nm(const char *args, const char *file)
{
	char cmd[512];
	FILE *f;

	if (system("command -v nm >/dev/null 2>&1") != 0)
		tu_skip("nm (binutils) is not installed");
	snprintf(cmd, sizeof cmd, "nm %s %s/%s", args, build_dir(), file);
	f = popen(cmd, "r");
	if (!f)
		fail_msg("cannot run %s: %s", cmd, strerror(errno));
	return f;
}

static void every_exported_symbol_is_declared_and_versioned(void **state)
{
	static char names[MAX_FUNCS][64];
	size_t n = header_functions(names);
	bool exported[MAX_FUNCS] = { false };
	FILE *f = nm("-D --defined-only", "libshmbus.so");
	char line[512], sym[400], type;
	int nodes = 0;

	(void)state;
	while (fgets(line, sizeof line, f)) {
		unsigned major, minor;
		char *at, tail;
		ssize_t i;

		if (sscanf(line, "%*s %c %399s", &type, sym) != 2)
			fail_msg("nm printed \"%s\"", line);
		if (type == 'A') { /* a version node */
			if (sscanf(sym, "SHMBUS_%u.%u%c", &major, &minor, &tail) != 2)
				fail_msg("version node %s is not SHMBUS_<major>.<minor>", sym);
			nodes++;
			continue;
		}
		at = strchr(sym, '@');
		if (!at)
			fail_msg("%s is exported without a version: list it in lib/libshmbus.map", sym);
		i = find(names, n, sym, (size_t)(at - sym));
		if (i < 0)
			fail_msg("%s is exported but include/shmbus.h does not declare it", sym);
		if (sscanf(at + strspn(at, "@"), "SHMBUS_%u.%u%c", &major, &minor, &tail) != 2)
			fail_msg("%s: its version is not SHMBUS_<major>.<minor>", sym);
		exported[i] = true;
	}
	pclose(f);
	assert_true(nodes >= 1);
	for (size_t i = 0; i < n; i++)
		if (!exported[i])
			fail_msg("%s is declared in include/shmbus.h but libshmbus.so does not export "
				 "it: add it to lib/libshmbus.map under the new version's node", names[i]);
}

static void the_static_library_exports_only_the_public_symbols(void **state)
{
	static char names[MAX_FUNCS][64];
	size_t n = header_functions(names), seen = 0;
	FILE *f = nm("-g --defined-only", "libshmbus.a");
	char line[512], sym[400], type;

	(void)state;
	while (fgets(line, sizeof line, f)) {
		if (line[0] == '\n' || strchr(line, ':'))
			continue; /* blank lines and member names */
		if (sscanf(line, "%*s %c %399s", &type, sym) != 2)
			fail_msg("nm printed \"%s\"", line);
		if (find(names, n, sym, strlen(sym)) < 0)
			fail_msg("libshmbus.a exports %s, which include/shmbus.h does not declare: an "
				 "application's own %s would clash with it", sym, sym);
		seen++;
	}
	pclose(f);
	assert_int_equal(seen, n);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(options_from_a_newer_caller_that_set_a_new_field_are_refused),
		T(options_from_a_newer_caller_with_zeros_past_the_end_are_accepted),
		T(options_from_an_older_caller_get_defaults_for_the_rest),
		T(options_without_their_size_are_refused),
		T(filled_structs_without_their_size_are_refused),
		T(filled_structs_are_written_up_to_their_size),
		T(topics_are_listed_into_an_older_callers_array),
		T(an_applications_own_crc32c_and_cache_get_do_not_clash),
		cmocka_unit_test(every_exported_symbol_is_declared_and_versioned),
		cmocka_unit_test(the_static_library_exports_only_the_public_symbols),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
