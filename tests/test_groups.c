/*
 * test_groups.c - committed offsets of a consumer group (format.md §10):
 * commits and fetches round trip for thousands of keys (linear probing
 * through collisions), the table refuses a key past its 16384 slots, the
 * generation fence refuses replaced members, and the file keeps its
 * values across reopening.
 */
#include "lib/testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../util/error.h"
#include "../shm/groups.h"

struct env {
	char *dir;
	int dirfd;
	struct group_file g;
};

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof *e);

	e->dir = tu_tmpdir("groups");
	e->dirfd = open(e->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	*state = e;
	if (e->dirfd < 0 || group_open(e->dirfd, "billing", true, &e->g) != 0)
		return -1;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;

	group_close(&e->g);
	close(e->dirfd);
	tu_rmrf(e->dir);
	free(e->dir);
	free(e);
	return 0;
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void commit(struct group_file *g, uint64_t topic, uint32_t part, uint64_t off, uint64_t gen)
{
	int rc = group_commit(g, topic, part, off, gen);

	if (rc)
		fail_msg("group_commit(%llu, %u) = %d: %s", (unsigned long long)topic, part, rc,
			 shm_errmsg());
}

static void expect_offset(struct group_file *g, uint64_t topic, uint32_t part, uint64_t want)
{
	uint64_t off = ~0ULL;
	int rc = group_fetch(g, topic, part, &off, NULL);

	if (rc || off != want)
		fail_msg("group_fetch(%llu, %u) = %d, offset %llu, expected %llu",
			 (unsigned long long)topic, part, rc, (unsigned long long)off,
			 (unsigned long long)want);
}

static void new_group_file_has_a_valid_header(void **state)
{
	struct env *e = *state;
	struct stat st;

	assert_int_equal(e->g.hdr->magic, GROUP_MAGIC);
	assert_int_equal(e->g.hdr->version, GROUP_VERSION);
	assert_int_equal(e->g.hdr->nslots, GROUP_SLOTS);
	assert_string_equal(e->g.hdr->name, "billing");
	assert_int_equal(e->g.hdr->epoch, 0);
	assert_int_equal(e->g.nslots, GROUP_SLOTS);
	assert_int_equal(fstatat(e->dirfd, "billing", &st, 0), 0);
	assert_int_equal((uint64_t)st.st_size, GROUP_HEADER_SIZE + GROUP_SLOTS * 32ULL);
}

static void commit_then_fetch_round_trips(void **state)
{
	struct env *e = *state;
	uint64_t off = 0;
	int64_t ns = 0, t0 = now_ns();

	assert_int_equal(group_fetch(&e->g, 7, 3, &off, &ns), -ENOENT);
	commit(&e->g, 7, 3, 12345, 0);
	assert_int_equal(group_fetch(&e->g, 7, 3, &off, &ns), 0);
	assert_int_equal(off, 12345);
	assert_true(ns >= t0 && ns <= now_ns());
	commit(&e->g, 7, 3, 12400, 0);
	expect_offset(&e->g, 7, 3, 12400);
	/* a neighbouring key is another entry */
	assert_int_equal(group_fetch(&e->g, 7, 4, &off, NULL), -ENOENT);
	assert_int_equal(group_fetch(&e->g, 8, 3, &off, NULL), -ENOENT);
	/* offset 0 is a commit like any other */
	commit(&e->g, 9, 0, 0, 0);
	expect_offset(&e->g, 9, 0, 0);
}

/* A slot a committer has claimed (its key is there) but whose commit has
 * not landed (commit_ns still 0) is no commit: -ENOENT, and the outputs
 * are left as they were (output parameters are written only on success). */
static void claimed_slot_without_a_commit_is_enoent_and_writes_nothing(void **state)
{
	struct env *e = *state;
	struct group_slot *s = NULL;
	uint64_t off = 4242;
	int64_t ns = 4343;

	commit(&e->g, 5, 2, 777, 0);
	for (uint32_t i = 0; i < e->g.nslots && !s; i++)
		if (e->g.slots[i].key == (5ULL << GROUP_PARTITION_BITS | 2))
			s = &e->g.slots[i];
	assert_non_null(s);
	/* just claimed: key only */
	s->fenced.lo = 0;
	s->commit_ns = 0;
	assert_int_equal(group_fetch(&e->g, 5, 2, &off, &ns), -ENOENT);
	assert_int_equal(off, 4242);
	assert_int_equal(ns, 4343);
	/* its offset stored, its commit time not yet */
	s->fenced.lo = 778;
	assert_int_equal(group_fetch(&e->g, 5, 2, &off, &ns), -ENOENT);
	assert_int_equal(off, 4242);
	assert_int_equal(ns, 4343);
	assert_int_equal(group_fetch(&e->g, 5, 2, &off, NULL), -ENOENT);
	assert_int_equal(off, 4242);
	/* the commit lands */
	commit(&e->g, 5, 2, 779, 0);
	assert_int_equal(group_fetch(&e->g, 5, 2, &off, &ns), 0);
	assert_int_equal(off, 779);
	assert_true(ns > 0);
}

static void thousands_of_keys_round_trip_through_collisions(void **state)
{
	struct env *e = *state;

	for (int pass = 0; pass < 2; pass++)
		for (uint64_t t = 1; t <= 120; t++)
			for (uint32_t p = 0; p < 100; p++)
				commit(&e->g, t, p, t * 1000003 + p * 7 + (uint64_t)pass, 0);
	for (uint64_t t = 1; t <= 120; t++)
		for (uint32_t p = 0; p < 100; p++)
			expect_offset(&e->g, t, p, t * 1000003 + p * 7 + 1);
	assert_int_equal(group_fetch(&e->g, 121, 0, &(uint64_t){ 0 }, NULL), -ENOENT);
	/* keys with large ids and partition numbers keep them apart */
	commit(&e->g, 1ULL << 40, (1u << 20) - 1, 1, 0);
	commit(&e->g, (1ULL << 40) + 1, 0, 2, 0);
	expect_offset(&e->g, 1ULL << 40, (1u << 20) - 1, 1);
	expect_offset(&e->g, (1ULL << 40) + 1, 0, 2);
}

struct visit {
	int count;
	uint64_t sum;
	int stop_after;
	uint64_t seen_topic, seen_part;
};

static int count_entries(void *ctx, uint64_t topic, uint32_t part, uint64_t off, int64_t ns)
{
	struct visit *v = ctx;

	assert_true(ns > 0);
	assert_int_equal(off, topic * 100 + part);
	v->count++;
	v->sum += off;
	if (topic == 1ULL << 33)
		v->seen_topic = topic, v->seen_part = part;
	return v->stop_after && v->count == v->stop_after ? 42 : 0;
}

static void foreach_visits_every_commit_and_stops_when_told(void **state)
{
	struct env *e = *state;
	struct visit v = { 0 };
	uint64_t sum = 0;

	for (uint64_t t = 1; t <= 30; t++)
		for (uint32_t p = 0; p < 10; p++) {
			commit(&e->g, t, p, t * 100 + p, 0);
			sum += t * 100 + p;
		}
	commit(&e->g, 1ULL << 33, 999, (1ULL << 33) * 100 + 999, 0);
	sum += (1ULL << 33) * 100 + 999;
	assert_int_equal(group_foreach(&e->g, count_entries, &v), 0);
	assert_int_equal(v.count, 301);
	assert_int_equal(v.sum, sum);
	assert_int_equal(v.seen_topic, 1ULL << 33);
	assert_int_equal(v.seen_part, 999);
	v = (struct visit){ .stop_after = 5 };
	assert_int_equal(group_foreach(&e->g, count_entries, &v), 42);
	assert_int_equal(v.count, 5);
}

static void manual_commits_are_refused_once_a_coordinator_took_the_group(void **state)
{
	struct env *e = *state;

	commit(&e->g, 1, 0, 10, 0);
	group_publish(&e->g, 5, 1); /* a coordinator took the group */
	assert_int_equal(group_epoch(&e->g), 5);
	assert_int_equal(group_commit(&e->g, 1, 0, 99, 0), -ESTALE);
	assert_non_null(strstr(shm_errmsg(), "billing"));
	assert_non_null(strstr(shm_errmsg(), "coordinated by shmbusd"));
	expect_offset(&e->g, 1, 0, 10);
	/* a refused commit claims no slot either */
	assert_int_equal(group_commit(&e->g, 2, 0, 1, 0), -ESTALE);
	assert_int_equal(group_fetch(&e->g, 2, 0, &(uint64_t){ 0 }, NULL), -ENOENT);
}

static void owner_epoch_fences_the_replaced_member(void **state)
{
	struct env *e = *state;

	group_publish(&e->g, 3, 1);
	assert_int_equal(group_fence(&e->g, 1, 0, 3), 0);
	assert_int_equal(group_owner(&e->g, 1, 0), 3);
	commit(&e->g, 1, 0, 10, 3);
	expect_offset(&e->g, 1, 0, 10);
	/* the partition moves: the new owner keeps the offset, the old one is fenced */
	assert_int_equal(group_fence(&e->g, 1, 0, 4), 0);
	expect_offset(&e->g, 1, 0, 10);
	assert_int_equal(group_commit(&e->g, 1, 0, 11, 3), -ESTALE);
	assert_non_null(strstr(shm_errmsg(), "moved to another member"));
	assert_non_null(strstr(shm_errmsg(), "owner epoch 4"));
	commit(&e->g, 1, 0, 12, 4);
	assert_int_equal(group_commit(&e->g, 1, 0, 13, 3), -ESTALE);
	expect_offset(&e->g, 1, 0, 12);
	/* a partition never fenced is nobody's */
	assert_int_equal(group_commit(&e->g, 9, 0, 1, 4), -ESTALE);
	assert_int_equal(group_fetch(&e->g, 9, 0, &(uint64_t){ 0 }, NULL), -ENOENT);
	/* reset-offsets writes whoever owns it, and keeps the owner */
	assert_int_equal(group_reset(&e->g, 1, 0, 2), 0);
	expect_offset(&e->g, 1, 0, 2);
	assert_int_equal(group_owner(&e->g, 1, 0), 4);
}

/* A cut of the partition's end to E (format.md §14): an offset above E
 * goes back to E, keeping its owner; one at or below E, or none, stays. */
static void a_cut_moves_offsets_above_it_back_and_never_forward(void **state)
{
	struct env *e = *state;
	uint64_t old = 0;

	group_publish(&e->g, 5, 1);
	assert_int_equal(group_fence(&e->g, 1, 0, 5), 0);
	commit(&e->g, 1, 0, 1150, 5);
	assert_int_equal(group_cut_back(&e->g, 1, 0, 1000, &old), 1);
	assert_int_equal(old, 1150);
	expect_offset(&e->g, 1, 0, 1000);
	assert_int_equal(group_owner(&e->g, 1, 0), 5);
	/* never forward, and not again */
	assert_int_equal(group_cut_back(&e->g, 1, 0, 1000, &old), 0);
	assert_int_equal(group_cut_back(&e->g, 1, 0, 1200, &old), 0);
	expect_offset(&e->g, 1, 0, 1000);
	/* the owner's next commit goes through */
	commit(&e->g, 1, 0, 1001, 5);
	expect_offset(&e->g, 1, 0, 1001);
	/* fenced but never committed, or not there: nothing to move */
	assert_int_equal(group_fence(&e->g, 2, 0, 5), 0);
	assert_int_equal(group_cut_back(&e->g, 2, 0, 0, &old), 0);
	assert_int_equal(group_fetch(&e->g, 2, 0, &old, NULL), -ENOENT);
	assert_int_equal(group_cut_back(&e->g, 3, 7, 0, &old), 0);
}

static void fenced_commits_race_the_coordinator_without_a_lost_fence(void **state)
{
	struct env *e = *state;
	pid_t pid;
	int status;

	group_publish(&e->g, 1, 1);
	assert_int_equal(group_fence(&e->g, 1, 0, 1), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* the old owner commits as fast as it can until it is fenced */
		for (uint64_t off = 1;; off++)
			if (group_commit(&e->g, 1, 0, off, 1) == -ESTALE)
				_exit(0);
	}
	usleep(2000);
	assert_int_equal(group_fence(&e->g, 1, 0, 2), 0);
	commit(&e->g, 1, 0, 1000000000, 2);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* nothing the old owner did after the fence survived */
	expect_offset(&e->g, 1, 0, 1000000000);
}

static void full_table_is_enospc_and_keeps_its_entries(void **state)
{
	struct env *e = *state;

	for (uint32_t i = 0; i < GROUP_SLOTS; i++)
		commit(&e->g, 1 + i / 1000, i % 1000, i, 0);
	assert_int_equal(group_commit(&e->g, 999, 0, 1, 0), -ENOSPC);
	assert_non_null(strstr(shm_errmsg(), "billing"));
	/* every key committed before is still there and still committable */
	for (uint32_t i = 0; i < GROUP_SLOTS; i += 97)
		expect_offset(&e->g, 1 + i / 1000, i % 1000, i);
	commit(&e->g, 1, 5, 555, 0);
	expect_offset(&e->g, 1, 5, 555);
	assert_int_equal(group_fetch(&e->g, 999, 0, &(uint64_t){ 0 }, NULL), -ENOENT);
}

static void reopening_sees_the_committed_offsets(void **state)
{
	struct env *e = *state;
	struct group_file g2;

	commit(&e->g, 3, 1, 77, 0);
	assert_int_equal(group_open(e->dirfd, "billing", false, &g2), 0);
	expect_offset(&g2, 3, 1, 77);
	commit(&g2, 3, 1, 78, 0);
	expect_offset(&e->g, 3, 1, 78); /* shared, not copied */
	group_close(&g2);
	group_close(&e->g);
	assert_int_equal(group_open(e->dirfd, "billing", false, &e->g), 0);
	expect_offset(&e->g, 3, 1, 78);
}

static void missing_group_without_create_is_enoent(void **state)
{
	struct env *e = *state;
	struct group_file g2;

	assert_int_equal(group_open(e->dirfd, "nobody", false, &g2), -ENOENT);
	assert_non_null(strstr(shm_errmsg(), "nobody"));
}

static void damaged_group_file_is_ebadmsg(void **state)
{
	struct env *e = *state;
	struct group_file g2;
	int fd;
	uint64_t bad = 0;

	fd = openat(e->dirfd, "short", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	assert_int_equal(write(fd, "x", 1), 1);
	close(fd);
	assert_int_equal(group_open(e->dirfd, "short", true, &g2), -EBADMSG);
	assert_non_null(strstr(shm_errmsg(), "short"));
	fd = openat(e->dirfd, "billing", O_RDWR | O_CLOEXEC);
	assert_int_equal(pwrite(fd, &bad, 8, 0), 8);
	close(fd);
	assert_int_equal(group_open(e->dirfd, "billing", false, &g2), -EBADMSG);
	fd = openat(e->dirfd, "billing", O_RDWR | O_CLOEXEC);
	bad = GROUP_MAGIC;
	assert_int_equal(pwrite(fd, &bad, 8, 0), 8);
	assert_int_equal(ftruncate(fd, GROUP_HEADER_SIZE + 100), 0);
	close(fd);
	assert_int_equal(group_open(e->dirfd, "billing", false, &g2), -EBADMSG);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(new_group_file_has_a_valid_header),
		T(commit_then_fetch_round_trips),
		T(claimed_slot_without_a_commit_is_enoent_and_writes_nothing),
		T(thousands_of_keys_round_trip_through_collisions),
		T(foreach_visits_every_commit_and_stops_when_told),
		T(manual_commits_are_refused_once_a_coordinator_took_the_group),
		T(owner_epoch_fences_the_replaced_member),
		T(a_cut_moves_offsets_above_it_back_and_never_forward),
		T(fenced_commits_race_the_coordinator_without_a_lost_fence),
		T(full_table_is_enospc_and_keeps_its_entries),
		T(reopening_sees_the_committed_offsets),
		T(missing_group_without_create_is_enoent),
		T(damaged_group_file_is_ebadmsg),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
