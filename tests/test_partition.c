/*
 * test_partition.c - partition files: creation, geometry, validation of
 * the header against its file, and the DELETED / read-only states.
 *
 * A mapping refuses a file that is not exactly what its header says,
 * with -EBADMSG (damage) or -EPROTO (another format or machine) and a
 * message naming the file; each refusal is checked on a real file whose
 * header was changed with pwrite.
 */
#include "lib/testutil.h"
#include "lib/partfixture.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "../shm/append.h"
#include "../util/error.h"
#include "../shm/partition.h"
#include "../shm/read.h"

static struct part_params params(uint64_t cap)
{
	return (struct part_params){ .topic = "orders", .topic_id = 7, .partition = 3,
				     .capacity = cap, .policy = PART_POLICY_OVERWRITE,
				     .numa_node = -1, .mode = 0600 };
}

static uint64_t page_up(uint64_t v)
{
	return (v + 4095) & ~4095ULL;
}

static void create_then_open_round_trips_identity_and_geometry(void **state)
{
	struct env *e = *state;
	struct part_params prm = params(65536);
	struct part p, q;
	int64_t before = 0;
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	before = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	env_part_create(e, "3", &prm, &p);
	assert_int_equal(p.cap, 65536);
	assert_int_equal(p.mask, 65535);
	assert_int_equal(p.icap, 65536 / 64);
	assert_int_equal(p.imask, 1023);
	assert_int_equal(p.max_frame, 32768);
	assert_int_equal(p.topic_id, 7);
	assert_int_equal(p.partition, 3);
	assert_int_equal(p.policy, PART_POLICY_OVERWRITE);
	assert_false(p.readonly);
	assert_true(p.on_tmpfs);
	assert_int_not_equal(p.epoch, 0);
	assert_int_equal(p.map_len, part_file_size(65536, 1024));
	/* the header is three pages: identity and hot words, consumer
	 * slots, writer slots (format.md §2) */
	assert_int_equal(PART_HEADER_SIZE, 12288);
	assert_int_equal(part_file_size(65536, 1024), page_up(12288 + 1024 * 8) + 65536);
	/* the three regions, page aligned, in the file's order */
	assert_ptr_equal((uint8_t *)p.index, (uint8_t *)p.hdr + 12288);
	assert_ptr_equal(p.data, (uint8_t *)p.hdr + page_up(12288 + 1024 * 8));
	assert_ptr_equal((uint8_t *)&p.hdr->writers[0], (uint8_t *)p.hdr + 8192);
	assert_ptr_equal((uint8_t *)&p.hdr->writers[PART_MAX_WRITERS], (uint8_t *)p.index);
	for (int i = 0; i < PART_MAX_WRITERS; i++)
		assert_int_equal(p.hdr->writers[i].pid, 0);
	assert_int_equal(p.hdr->magic, PART_MAGIC);
	assert_int_equal(p.hdr->version, PART_VERSION);
	assert_int_equal(p.hdr->endian, SHM_ENDIAN_MARK);
	assert_int_equal(p.hdr->word_size, sizeof(void *));
	assert_int_equal(p.hdr->header_size, PART_HEADER_SIZE);
	assert_int_equal(p.hdr->frame_align, 8);
	assert_int_equal(p.hdr->data_capacity, 65536);
	assert_int_equal(p.hdr->index_capacity, 1024);
	assert_int_equal(p.hdr->numa_node, -1);
	assert_string_equal(p.hdr->topic, "orders");
	assert_true(p.hdr->created_ns >= before && p.hdr->created_ns < before + 60000000000LL);
	assert_int_equal(p.hdr->claim.lo, 0);
	assert_int_equal(p.hdr->claim.hi, 0);
	assert_int_equal(p.hdr->start, 0);
	assert_int_equal(p.hdr->status, 0);

	assert_ok(part_open(e->dirfd, "3", false, "orders/3", &q));
	assert_int_equal(q.epoch, p.epoch);
	assert_int_equal(q.cap, p.cap);
	assert_int_equal(q.icap, p.icap);
	assert_int_equal(q.max_frame, p.max_frame);
	assert_int_equal(q.topic_id, 7);
	assert_int_equal(q.partition, 3);
	assert_int_equal(q.map_len, p.map_len);
	/* both mappings see the same bytes */
	p.data[100] = 0x5a;
	assert_int_equal(q.data[100], 0x5a);
	part_unmap(&q);
	part_unmap(&p);
}

static void explicit_index_capacity_and_backpressure_policy_are_kept(void **state)
{
	struct env *e = *state;
	struct part_params prm = params(4096);
	struct part p, q;

	prm.index_capacity = 4096;
	prm.policy = PART_POLICY_BACKPRESSURE;
	env_part_create(e, "0", &prm, &p);
	assert_int_equal(p.icap, 4096);
	assert_int_equal(p.policy, PART_POLICY_BACKPRESSURE);
	assert_int_equal(p.map_len, 12288 + 4096 * 8 + 4096);
	part_unmap(&p);
	assert_ok(part_open(e->dirfd, "0", false, "x", &q));
	assert_int_equal(q.icap, 4096);
	assert_int_equal(q.policy, PART_POLICY_BACKPRESSURE);
	part_unmap(&q);
}

static void default_index_capacity_is_one_slot_per_64_bytes_within_bounds(void **state)
{
	(void)state;
	assert_int_equal(part_default_icap(4096), 64);
	assert_int_equal(part_default_icap(8192), 128);
	assert_int_equal(part_default_icap(1ULL << 24), 1ULL << 18);
	assert_int_equal(part_default_icap(1ULL << 32), 1ULL << 26);
}

static void each_creation_draws_a_new_epoch(void **state)
{
	struct env *e = *state;
	struct part_params prm = params(4096);
	struct part a, b;

	env_part_create(e, "a", &prm, &a);
	env_part_create(e, "b", &prm, &b);
	assert_int_not_equal(a.epoch, b.epoch);
	part_unmap(&a);
	part_unmap(&b);
}

static void file_is_fully_allocated_and_no_temporary_is_left(void **state)
{
	struct env *e = *state;
	struct part_params prm = params(1 << 20);
	struct part p;
	struct stat st;
	struct dirent *d;
	DIR *dir;
	int n = 0;

	env_part_create(e, "0", &prm, &p);
	assert_int_equal(fstatat(e->dirfd, "0", &st, 0), 0);
	assert_int_equal((uint64_t)st.st_size, p.map_len);
	if ((uint64_t)st.st_blocks * 512 < (uint64_t)st.st_size)
		fail_msg("partition file has %llu bytes allocated of %llu: not fallocated",
			 (unsigned long long)st.st_blocks * 512, (unsigned long long)st.st_size);
	assert_int_equal(st.st_mode & 0777, 0600);
	dir = opendir(e->dir);
	while ((d = readdir(dir)))
		if (strcmp(d->d_name, ".") && strcmp(d->d_name, ".."))
			n++, assert_string_equal(d->d_name, "0");
	closedir(dir);
	assert_int_equal(n, 1);
	part_unmap(&p);
}

static void params_check_refuses_bad_capacities_policies_and_names(void **state)
{
	static const uint64_t bad_caps[] = { 0, 1, 2048, 4095, 4097, 12288, 65535,
					     (1ULL << 32) + 4096, 1ULL << 33, UINT64_MAX };
	static const uint64_t good_caps[] = { 4096, 8192, 1ULL << 20, 1ULL << 32 };
	static const uint64_t bad_icaps[] = { 1, 32, 63, 65, 100, 3000, (1ULL << 28) * 2 };
	char long_name[300];

	(void)state;
	for (size_t i = 0; i < sizeof bad_caps / sizeof bad_caps[0]; i++) {
		struct part_params prm = params(bad_caps[i]);
		char want[32];

		prm.index_capacity = 64;
		assert_int_equal(part_params_check(&prm), -EINVAL);
		snprintf(want, sizeof want, "%llu", (unsigned long long)bad_caps[i]);
		if (!strstr(shm_errmsg(), want))
			fail_msg("message for capacity %s does not name it: %s", want, shm_errmsg());
	}
	for (size_t i = 0; i < sizeof good_caps / sizeof good_caps[0]; i++) {
		struct part_params prm = params(good_caps[i]);

		assert_int_equal(part_params_check(&prm), 0);
	}
	for (size_t i = 0; i < sizeof bad_icaps / sizeof bad_icaps[0]; i++) {
		struct part_params prm = params(1 << 20);

		prm.index_capacity = bad_icaps[i];
		assert_int_equal(part_params_check(&prm), -EINVAL);
	}
	{
		struct part_params prm = params(4096);

		prm.policy = 2;
		assert_int_equal(part_params_check(&prm), -EINVAL);
		prm.policy = PART_POLICY_BACKPRESSURE;
		assert_int_equal(part_params_check(&prm), 0);
		prm.topic = NULL;
		assert_int_equal(part_params_check(&prm), -EINVAL);
		memset(long_name, 'x', sizeof long_name);
		long_name[256] = '\0';
		prm.topic = long_name;
		assert_int_equal(part_params_check(&prm), -EINVAL);
		long_name[255] = '\0';
		assert_int_equal(part_params_check(&prm), 0);
	}
}

static void create_with_bad_params_leaves_nothing_behind(void **state)
{
	struct env *e = *state;
	struct part_params prm = params(5000);
	struct part p;
	struct stat st;

	assert_int_equal(part_create(e->dirfd, "0", &prm, &p), -EINVAL);
	assert_int_equal(fstatat(e->dirfd, "0", &st, 0), -1);
	assert_int_equal(errno, ENOENT);
}

/* partition.h: "-EEXIST if it exists".  A second creation must not
 * replace the first file (whose mappings live on in other processes). */
static void creating_an_existing_name_fails_with_eexist_and_keeps_the_file(void **state)
{
	struct env *e = *state;
	struct part_params prm = params(4096);
	struct part p, again, q;
	struct part_writer w;
	struct part_rec rec = { .value = "kept", .value_len = 4 };
	uint64_t off;
	int rc;

	env_part_create(e, "0", &prm, &p);
	part_writer_init(&w, &p);
	assert_int_equal(part_append(&w, &rec, 1, 0, 0, &off), 1);
	rc = part_create(e->dirfd, "0", &prm, &again);
	if (rc == 0)
		part_unmap(&again);
	assert_int_equal(rc, -EEXIST);
	assert_ok(part_open(e->dirfd, "0", false, "0", &q));
	assert_int_equal(q.epoch, p.epoch);
	assert_int_equal(q.hdr->claim.hi, 1);
	part_unmap(&q);
	part_unmap(&p);
}

/* ------------------------------------------------------------------ */
/* Header validation                                                   */

static void put(struct env *e, const char *name, size_t at, const void *v, size_t len)
{
	int fd = openat(e->dirfd, name, O_RDWR | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, v, len, (off_t)at), (ssize_t)len);
	close(fd);
}

#define PUT(e, name, field, value)                                                  \
	do {                                                                        \
		__typeof__(((struct part_header *)0)->field) v_ = (value);           \
		put((e), (name), offsetof(struct part_header, field), &v_, sizeof v_); \
	} while (0)

/* A fresh file `name`; returns its size. */
static uint64_t fresh(struct env *e, const char *name)
{
	struct part_params prm = params(8192);
	struct part p;
	uint64_t size;

	unlinkat(e->dirfd, name, 0);
	env_part_create(e, name, &prm, &p);
	size = p.map_len;
	part_unmap(&p);
	return size;
}

#define expect_refused(e, name, want, words) expect_refused_at(e, name, want, words, __LINE__)

static void expect_refused_at(struct env *e, const char *name, int want, const char *words, int line)
{
	struct part p = { 0 };
	int rc;

	shm_err_clear();
	rc = part_open(e->dirfd, name, false, "orders/3", &p);
	if (rc == 0)
		part_unmap(&p);
	if (rc != want)
		fail_msg("line %d: %s: part_open = %d, expected %d (%s)", line, words, rc, want,
			 shm_errmsg());
	if (!strstr(shm_errmsg(), "orders/3"))
		fail_msg("%s: the message does not name the file: \"%s\"", words, shm_errmsg());
	if (!strstr(shm_errmsg(), words))
		fail_msg("the message does not say \"%s\": \"%s\"", words, shm_errmsg());
}

static void open_refuses_a_bad_magic(void **state)
{
	struct env *e = *state;

	fresh(e, "0");
	PUT(e, "0", magic, PART_MAGIC ^ 1);
	expect_refused(e, "0", -EBADMSG, "magic");
}

static void open_refuses_another_format_version(void **state)
{
	struct env *e = *state;

	fresh(e, "0");
	PUT(e, "0", version, PART_VERSION + 1);
	expect_refused(e, "0", -EPROTO, "version");
}

static void open_refuses_another_byte_order_or_word_size(void **state)
{
	struct env *e = *state;

	fresh(e, "0");
	PUT(e, "0", endian, __builtin_bswap64(SHM_ENDIAN_MARK));
	expect_refused(e, "0", -EPROTO, "byte order");
	fresh(e, "0");
	PUT(e, "0", word_size, 4);
	expect_refused(e, "0", -EPROTO, "word size");
}

static void open_refuses_inconsistent_geometry(void **state)
{
	struct env *e = *state;
	uint64_t size;

	fresh(e, "0");
	PUT(e, "0", data_capacity, 8192 + 4096);
	expect_refused(e, "0", -EBADMSG, "geometry");
	fresh(e, "0");
	PUT(e, "0", data_capacity, 2048);
	expect_refused(e, "0", -EBADMSG, "geometry");
	fresh(e, "0");
	PUT(e, "0", index_capacity, 100);
	expect_refused(e, "0", -EBADMSG, "geometry");
	fresh(e, "0");
	/* a power of two, but its slots would overlap the data ring */
	PUT(e, "0", index_capacity, 1024);
	expect_refused(e, "0", -EBADMSG, "geometry");
	fresh(e, "0");
	/* the data ring over the index */
	PUT(e, "0", data_offset, 12288);
	expect_refused(e, "0", -EBADMSG, "geometry");
	fresh(e, "0");
	PUT(e, "0", index_offset, 4096);
	expect_refused(e, "0", -EBADMSG, "geometry");
	fresh(e, "0");
	/* the index over the writer slots (the v1 header was two pages) */
	PUT(e, "0", index_offset, 8192);
	expect_refused(e, "0", -EBADMSG, "geometry");
	size = fresh(e, "0");
	PUT(e, "0", file_size, size + 4096);
	expect_refused(e, "0", -EBADMSG, "geometry");
	fresh(e, "0");
	PUT(e, "0", max_frame, 8192);
	expect_refused(e, "0", -EBADMSG, "geometry");
	fresh(e, "0");
	PUT(e, "0", header_size, 4096);
	expect_refused(e, "0", -EBADMSG, "geometry");
	fresh(e, "0");
	PUT(e, "0", header_size, 8192);
	expect_refused(e, "0", -EBADMSG, "geometry");
	fresh(e, "0");
	PUT(e, "0", frame_align, 16);
	expect_refused(e, "0", -EBADMSG, "geometry");
}

static int truncate_at(struct env *e, const char *name, off_t len)
{
	int fd = openat(e->dirfd, name, O_RDWR | O_CLOEXEC), rc;

	assert_true(fd >= 0);
	rc = ftruncate(fd, len);
	close(fd);
	return rc;
}

static void open_refuses_a_truncated_file(void **state)
{
	struct env *e = *state;
	uint64_t size = fresh(e, "0");

	assert_int_equal(truncate_at(e, "0", (off_t)size - 4096), 0);
	expect_refused(e, "0", -EBADMSG, "truncated");
	assert_int_equal(truncate_at(e, "0", 100), 0);
	expect_refused(e, "0", -EBADMSG, "shorter than its header");
	assert_int_equal(truncate_at(e, "0", 0), 0);
	expect_refused(e, "0", -EBADMSG, "shorter than its header");
}

static void open_refuses_an_unknown_policy_or_unterminated_name(void **state)
{
	struct env *e = *state;
	char name[PART_NAME_MAX + 1];

	fresh(e, "0");
	PUT(e, "0", policy, 7);
	expect_refused(e, "0", -EBADMSG, "damaged header");
	fresh(e, "0");
	memset(name, 'n', sizeof name);
	put(e, "0", offsetof(struct part_header, topic), name, sizeof name);
	expect_refused(e, "0", -EBADMSG, "damaged header");
}

static void open_of_a_missing_file_is_enoent_naming_it(void **state)
{
	struct env *e = *state;
	struct part p;

	assert_int_equal(part_open(e->dirfd, "nope", false, "orders/9", &p), -ENOENT);
	assert_non_null(strstr(shm_errmsg(), "orders/9"));
}

static void header_check_accepts_exactly_the_created_header(void **state)
{
	struct env *e = *state;
	struct part_params prm = params(16384);
	struct part p;
	struct part_header h;

	env_part_create(e, "0", &prm, &p);
	memcpy(&h, p.hdr, sizeof h);
	assert_int_equal(part_header_check(&h, p.map_len, "x"), 0);
	/* a longer file is fine, a shorter one is not */
	assert_int_equal(part_header_check(&h, p.map_len + 4096, "x"), 0);
	assert_int_equal(part_header_check(&h, p.map_len - 8, "x"), -EBADMSG);
	h.data_capacity = 0;
	assert_int_equal(part_header_check(&h, p.map_len, "x"), -EBADMSG);
	part_unmap(&p);
}

/* ------------------------------------------------------------------ */
/* States                                                              */

static void deleted_partition_refuses_appends_claims_and_reads(void **state)
{
	struct env *e = *state;
	struct part_params prm = params(4096);
	struct part p, other;
	struct part_writer w;
	struct part_rec rec = { .value = "v", .value_len = 1 };
	struct part_claim c;
	struct part_cursor cur = { 0 };
	struct frame_view v;
	uint64_t off;
	uint32_t notify;

	env_part_create(e, "0", &prm, &p);
	assert_ok(part_open(e->dirfd, "0", false, "0", &other));
	part_writer_init(&w, &p);
	assert_int_equal(part_append(&w, &rec, 1, 0, 0, &off), 1);
	p.hdr->notify = 5 | NOTIFY_WAITERS;
	assert_false(part_deleted(&p));
	part_mark_deleted(&p);
	assert_true(part_deleted(&p));
	assert_true(part_deleted(&other)); /* it is in the file, not the mapping */
	/* blocked consumers are woken: the counter moved, the waiter bit cleared */
	notify = p.hdr->notify;
	assert_int_equal(notify, 6);
	assert_int_equal(part_append(&w, &rec, 1, 0, 0, &off), -EIDRM);
	assert_int_equal(part_claim(&w, &rec, 8, 0, 0, &c), -EIDRM);
	assert_int_equal(part_read(&other, &cur, &v), -EIDRM);
	assert_int_equal(p.hdr->claim.hi, 1);
	part_unmap(&other);
	part_unmap(&p);
}

static void readonly_mapping_and_replica_refuse_appends_but_read(void **state)
{
	struct env *e = *state;
	struct part_params prm = params(4096);
	struct part p, ro;
	struct part_writer w, wro;
	struct part_rec rec = { .value = "abc", .value_len = 3 };
	struct part_cursor cur = { 0 };
	struct frame_view v;
	uint64_t off;

	env_part_create(e, "0", &prm, &p);
	part_writer_init(&w, &p);
	assert_int_equal(part_append(&w, &rec, 1, 0, 0, &off), 1);
	assert_ok(part_open(e->dirfd, "0", true, "0", &ro));
	assert_true(ro.readonly);
	part_writer_init(&wro, &ro);
	assert_int_equal(part_append(&wro, &rec, 1, 0, 0, &off), -EROFS);
	assert_int_equal(part_read(&ro, &cur, &v), 1);
	assert_memory_equal(v.value, "abc", 3);
	p.hdr->status |= PART_STATUS_REPLICA;
	assert_int_equal(part_append(&w, &rec, 1, 0, 0, &off), -EROFS);
	part_unmap(&ro);
	part_unmap(&p);
}

static void unmap_is_idempotent(void **state)
{
	struct env *e = *state;
	struct part_params prm = params(4096);
	struct part p;

	env_part_create(e, "0", &prm, &p);
	part_unmap(&p);
	assert_null(p.hdr);
	part_unmap(&p);
	part_unmap(NULL);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, env_setup, env_teardown)
	const struct CMUnitTest tests[] = {
		T(create_then_open_round_trips_identity_and_geometry),
		T(explicit_index_capacity_and_backpressure_policy_are_kept),
		T(default_index_capacity_is_one_slot_per_64_bytes_within_bounds),
		T(each_creation_draws_a_new_epoch),
		T(file_is_fully_allocated_and_no_temporary_is_left),
		T(params_check_refuses_bad_capacities_policies_and_names),
		T(create_with_bad_params_leaves_nothing_behind),
		T(creating_an_existing_name_fails_with_eexist_and_keeps_the_file),
		T(open_refuses_a_bad_magic),
		T(open_refuses_another_format_version),
		T(open_refuses_another_byte_order_or_word_size),
		T(open_refuses_inconsistent_geometry),
		T(open_refuses_a_truncated_file),
		T(open_refuses_an_unknown_policy_or_unterminated_name),
		T(open_of_a_missing_file_is_enoent_naming_it),
		T(header_check_accepts_exactly_the_created_header),
		T(deleted_partition_refuses_appends_claims_and_reads),
		T(readonly_mapping_and_replica_refuse_appends_but_read),
		T(unmap_is_idempotent),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
