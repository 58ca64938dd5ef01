/*
 * test_directory.c - the bus file and its copy-on-write topic table
 * (format.md §9): add, look up, list and remove topics; names as Kafka
 * accepts them; one publication per change; ids never reused, across
 * reopenings too; a damaged bus file refused with a clear error.
 */
#include "lib/testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "../shm/directory.h"
#include "../util/error.h"

struct env {
	char *dir;
	int rootfd;
	struct bus_dir d;
};

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof *e);

	e->dir = tu_tmpdir("directory");
	e->rootfd = open(e->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	*state = e;
	if (e->rootfd < 0 || dir_open(e->rootfd, true, &e->d) != 0)
		return -1;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;

	dir_close(&e->d);
	close(e->rootfd);
	tu_rmrf(e->dir);
	free(e->dir);
	free(e);
	return 0;
}

static struct bus_topic topic(struct bus_dir *d, const char *name, uint32_t partitions)
{
	struct bus_topic t = { 0 };

	snprintf(t.name, sizeof t.name, "%s", name);
	t.id = dir_reserve_id(d);
	t.partitions = partitions;
	t.capacity = 1 << 20;
	t.index_capacity = 1 << 14;
	t.created_ns = 1234;
	t.retention_ms = 60000;
	t.policy = 1;
	t.numa_node = -1;
	t.mode = 0640;
	return t;
}

static void add(struct bus_dir *d, struct bus_topic *t)
{
	int rc = dir_add(d, t);

	if (rc)
		fail_msg("dir_add(%s) = %d: %s", t->name, rc, shm_errmsg());
}

static void new_bus_file_has_a_valid_header_and_no_topics(void **state)
{
	struct env *e = *state;
	struct bus_topic out[4];
	struct stat st;

	assert_int_equal(e->d.hdr->magic, BUS_MAGIC);
	assert_int_equal(e->d.hdr->version, BUS_VERSION);
	assert_int_equal(e->d.hdr->endian, SHM_ENDIAN_MARK);
	assert_int_equal(e->d.hdr->word_size, sizeof(void *));
	assert_int_equal(e->d.hdr->max_topics, BUS_MAX_TOPICS);
	assert_int_equal(e->d.hdr->next_topic_id, 1);
	assert_int_equal(dir_generation(&e->d), 0);
	assert_int_equal(dir_list(&e->d, out, 4), 0);
	assert_int_equal(fstatat(e->rootfd, "bus", &st, 0), 0);
	assert_int_equal((uint64_t)st.st_size, e->d.hdr->file_size);
	assert_int_equal(e->d.map_len, e->d.hdr->file_size);
}

static void open_without_create_needs_a_bus_file(void **state)
{
	char *dir = tu_tmpdir("nobus");
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct bus_dir d;

	(void)state;
	assert_int_equal(dir_open(fd, false, &d), -ENOENT);
	close(fd);
	tu_rmrf(dir);
	free(dir);
}

static void added_topic_is_found_listed_and_removed(void **state)
{
	struct env *e = *state;
	struct bus_topic a = topic(&e->d, "orders", 8), b = topic(&e->d, "payments.v2", 1), got;
	struct bus_topic out[4];

	add(&e->d, &a);
	assert_int_equal(dir_lookup(&e->d, "orders", &got), 0);
	assert_memory_equal(&got, &a, sizeof a);
	assert_int_equal(dir_lookup(&e->d, "payments.v2", &got), -ENOENT);
	add(&e->d, &b);
	assert_int_equal(dir_lookup(&e->d, "payments.v2", &got), 0);
	assert_int_equal(got.id, b.id);
	assert_int_equal(got.partitions, 1);
	assert_int_equal(dir_list(&e->d, out, 4), 2);
	assert_true((!strcmp(out[0].name, "orders") && !strcmp(out[1].name, "payments.v2")) ||
		    (!strcmp(out[1].name, "orders") && !strcmp(out[0].name, "payments.v2")));
	assert_int_equal(dir_remove(&e->d, "orders"), 0);
	assert_int_equal(dir_lookup(&e->d, "orders", &got), -ENOENT);
	assert_int_equal(dir_lookup(&e->d, "payments.v2", &got), 0);
	assert_int_equal(dir_list(&e->d, out, 4), 1);
	assert_string_equal(out[0].name, "payments.v2");
	assert_int_equal(dir_remove(&e->d, "orders"), -ENOENT);
	assert_non_null(strstr(shm_errmsg(), "\"orders\""));
}

static void lookup_matches_whole_names_only(void **state)
{
	struct env *e = *state;
	struct bus_topic a = topic(&e->d, "abc", 1), got;

	add(&e->d, &a);
	assert_int_equal(dir_lookup(&e->d, "ab", &got), -ENOENT);
	assert_int_equal(dir_lookup(&e->d, "abcd", &got), -ENOENT);
	assert_int_equal(dir_lookup(&e->d, "ABC", &got), -ENOENT);
	assert_int_equal(dir_lookup(&e->d, "", &got), -ENOENT);
	assert_int_equal(dir_lookup(&e->d, "abc", &got), 0);
}

static void adding_an_existing_name_is_eexist_and_changes_nothing(void **state)
{
	struct env *e = *state;
	struct bus_topic a = topic(&e->d, "orders", 8), again = topic(&e->d, "orders", 3), got;
	uint64_t gen;

	add(&e->d, &a);
	gen = dir_generation(&e->d);
	assert_int_equal(dir_add(&e->d, &again), -EEXIST);
	assert_non_null(strstr(shm_errmsg(), "\"orders\""));
	assert_int_equal(dir_generation(&e->d), gen);
	assert_int_equal(dir_lookup(&e->d, "orders", &got), 0);
	assert_int_equal(got.partitions, 8);
	assert_int_equal(got.id, a.id);
}

static void topic_without_an_id_is_refused(void **state)
{
	struct env *e = *state;
	struct bus_topic t = { .name = "noid", .partitions = 1 }, got;

	assert_int_equal(dir_add(&e->d, &t), -EINVAL);
	assert_int_equal(dir_lookup(&e->d, "noid", &got), -ENOENT);
}

static void every_change_publishes_one_generation(void **state)
{
	struct env *e = *state;
	struct bus_topic t;

	assert_int_equal(dir_generation(&e->d), 0);
	for (int i = 0; i < 20; i++) {
		char name[16];

		snprintf(name, sizeof name, "t%d", i);
		t = topic(&e->d, name, 1);
		add(&e->d, &t);
		assert_int_equal(dir_generation(&e->d), (uint64_t)i + 1);
		/* the published slot alternates, and holds the generation */
		assert_int_equal(e->d.table[e->d.hdr->published & 1]->generation, (uint64_t)i + 1);
	}
	assert_int_equal(dir_remove(&e->d, "t3"), 0);
	assert_int_equal(dir_generation(&e->d), 21);
	assert_int_equal(dir_remove(&e->d, "t3"), -ENOENT);
	assert_int_equal(dir_generation(&e->d), 21);
}

static void ids_are_never_reused_even_after_reopening(void **state)
{
	struct env *e = *state;
	struct bus_topic a = topic(&e->d, "a", 1), b, c;
	struct bus_dir d2;

	add(&e->d, &a);
	assert_int_equal(a.id, 1);
	assert_int_equal(dir_remove(&e->d, "a"), 0);
	b = topic(&e->d, "a", 1);
	add(&e->d, &b);
	assert_true(b.id > a.id);
	dir_close(&e->d);
	assert_int_equal(dir_open(e->rootfd, false, &e->d), 0);
	c = topic(&e->d, "c", 1);
	assert_true(c.id > b.id);
	/* another mapping of the same file sees the same counter and table */
	assert_int_equal(dir_open(e->rootfd, false, &d2), 0);
	assert_int_equal(dir_reserve_id(&d2), c.id + 1);
	assert_int_equal(dir_lookup(&d2, "a", &c), 0);
	assert_int_equal(c.id, b.id);
	dir_close(&d2);
}

static void a_second_mapping_sees_every_change(void **state)
{
	struct env *e = *state;
	struct bus_dir d2;
	struct bus_topic t = topic(&e->d, "seen", 4), got;

	assert_int_equal(dir_open(e->rootfd, true, &d2), 0);
	add(&e->d, &t);
	assert_int_equal(dir_generation(&d2), 1);
	assert_int_equal(dir_lookup(&d2, "seen", &got), 0);
	assert_int_equal(got.partitions, 4);
	assert_int_equal(dir_remove(&d2, "seen"), 0);
	assert_int_equal(dir_lookup(&e->d, "seen", &got), -ENOENT);
	dir_close(&d2);
}

static void list_copies_at_most_max_and_returns_the_total(void **state)
{
	struct env *e = *state;
	struct bus_topic out[3];

	for (int i = 0; i < 10; i++) {
		char name[16];
		struct bus_topic t;

		snprintf(name, sizeof name, "t%02d", i);
		t = topic(&e->d, name, (uint32_t)i + 1);
		add(&e->d, &t);
	}
	memset(out, 0x5a, sizeof out);
	assert_int_equal(dir_list(&e->d, out, 2), 10);
	assert_int_equal(strncmp(out[0].name, "t0", 2), 0);
	assert_int_equal(strncmp(out[1].name, "t0", 2), 0);
	assert_int_equal(out[2].name[0], 0x5a); /* untouched */
	assert_int_equal(dir_list(&e->d, NULL, 0), 10);
}

static void names_follow_kafka_rules(void **state)
{
	char n249[250], n250[251];
	static const char *good[] = { "a", "orders", "Orders.v2", "a_b-c.d", "...", "-", "_", "0",
				       ".a", "a.." };
	static const char *bad[] = { "", ".", "..", "a/b", "a b", "é", "a\n", "a:b", "a*", "t@x",
				     "/", "a\\b" };

	(void)state;
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
		if (!dir_name_valid(good[i]))
			fail_msg("\"%s\" should be a valid name", good[i]);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (dir_name_valid(bad[i]))
			fail_msg("\"%s\" should be refused", bad[i]);
	assert_false(dir_name_valid(NULL));
	memset(n249, 'x', 249);
	n249[249] = '\0';
	memset(n250, 'x', 250);
	n250[250] = '\0';
	assert_true(dir_name_valid(n249));
	assert_false(dir_name_valid(n250));
}

static void longest_name_round_trips(void **state)
{
	struct env *e = *state;
	char name[250];
	struct bus_topic t, got;

	memset(name, 'n', 249);
	name[249] = '\0';
	t = topic(&e->d, name, 1);
	add(&e->d, &t);
	assert_int_equal(dir_lookup(&e->d, name, &got), 0);
	assert_string_equal(got.name, name);
	name[248] = '\0';
	assert_int_equal(dir_lookup(&e->d, name, &got), -ENOENT);
}

static void full_table_is_enospc(void **state)
{
	struct env *e = *state;
	struct bus_topic t;

	for (uint32_t i = 0; i < BUS_MAX_TOPICS; i++) {
		char name[16];

		snprintf(name, sizeof name, "t%u", i);
		t = topic(&e->d, name, 1);
		add(&e->d, &t);
	}
	t = topic(&e->d, "one-more", 1);
	assert_int_equal(dir_add(&e->d, &t), -ENOSPC);
	assert_int_equal(dir_list(&e->d, NULL, 0), BUS_MAX_TOPICS);
	assert_int_equal(dir_remove(&e->d, "t17"), 0);
	add(&e->d, &t);
	assert_int_equal(dir_lookup(&e->d, "one-more", &t), 0);
}

static void admin_lock_can_be_taken_and_released(void **state)
{
	struct env *e = *state;

	assert_int_equal(dir_lock(&e->d), 0);
	dir_unlock(&e->d);
	assert_int_equal(dir_lock(&e->d), 0);
	dir_unlock(&e->d);
}

/* A damaged bus file is refused, naming the fix. */
static void damaged_bus_file_is_refused(void **state)
{
	struct env *e = *state;
	struct bus_dir d2;
	uint64_t bad_magic = BUS_MAGIC ^ 0xff;
	uint32_t bad_version = BUS_VERSION + 1;
	int fd = openat(e->rootfd, "bus", O_RDWR | O_CLOEXEC);
	struct stat st;

	assert_true(fd >= 0 && fstat(fd, &st) == 0);
	assert_int_equal(pwrite(fd, &bad_version, 4, offsetof(struct bus_header, version)), 4);
	assert_int_equal(dir_open(e->rootfd, false, &d2), -EPROTO);
	bad_version = BUS_VERSION;
	assert_int_equal(pwrite(fd, &bad_version, 4, offsetof(struct bus_header, version)), 4);
	assert_int_equal(pwrite(fd, &bad_magic, 8, 0), 8);
	assert_int_equal(dir_open(e->rootfd, false, &d2), -EBADMSG);
	assert_non_null(strstr(shm_errmsg(), "magic"));
	bad_magic = BUS_MAGIC;
	assert_int_equal(pwrite(fd, &bad_magic, 8, 0), 8);
	assert_int_equal(dir_open(e->rootfd, false, &d2), 0);
	dir_close(&d2);
	assert_int_equal(ftruncate(fd, st.st_size - 4096), 0);
	assert_int_equal(dir_open(e->rootfd, false, &d2), -EBADMSG);
	assert_int_equal(ftruncate(fd, 100), 0);
	assert_int_equal(dir_open(e->rootfd, false, &d2), -EBADMSG);
	close(fd);
}

/* A table count damaged past the maximum is bounded by readers. */
static void damaged_count_is_bounded(void **state)
{
	struct env *e = *state;
	struct bus_topic t = topic(&e->d, "x", 1), got;

	add(&e->d, &t);
	e->d.table[e->d.hdr->published & 1]->count = UINT32_MAX;
	assert_int_equal(dir_list(&e->d, NULL, 0), BUS_MAX_TOPICS);
	assert_int_equal(dir_lookup(&e->d, "nope", &got), -ENOENT);
	assert_int_equal(dir_lookup(&e->d, "x", &got), 0);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(new_bus_file_has_a_valid_header_and_no_topics),
		T(open_without_create_needs_a_bus_file),
		T(added_topic_is_found_listed_and_removed),
		T(lookup_matches_whole_names_only),
		T(adding_an_existing_name_is_eexist_and_changes_nothing),
		T(topic_without_an_id_is_refused),
		T(every_change_publishes_one_generation),
		T(ids_are_never_reused_even_after_reopening),
		T(a_second_mapping_sees_every_change),
		T(list_copies_at_most_max_and_returns_the_total),
		T(names_follow_kafka_rules),
		T(longest_name_round_trips),
		T(full_table_is_enospc),
		T(admin_lock_can_be_taken_and_released),
		T(damaged_bus_file_is_refused),
		T(damaged_count_is_bounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
