/*
 * test_planted.c - symbolic links planted in a bus root (issue #7).
 *
 * Whoever may write a root (every member of the service root's group)
 * can put a symbolic link where shmbus or shmbusd will create or open a
 * file: at the temporary name a file is made under, at a directory, at
 * the daemon's lock.  Run as root, following one lets a group member
 * overwrite a root-only file, chmod it, or delete another directory's
 * files.  Each test plants a link to a 0600 file (or a directory) outside
 * the root, runs the real operation, and checks that the target kept its
 * bytes and its mode, and that the operation either worked on a file of
 * its own or refused with a message naming the link.
 */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_daemon.h"
#include "../shm/counters.h"

#define SECRET "root-only secret\n"

/* <scratch>/secret, 0600, outside the root */
static const char *make_secret(struct env *e)
{
	static char path[400];
	int fd;

	snprintf(path, sizeof path, "%s/secret", e->scratch);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, SECRET, strlen(SECRET)) != (ssize_t)strlen(SECRET) ||
	    fchmod(fd, 0600) < 0)
		fail_msg("cannot write %s: %s", path, strerror(errno));
	close(fd);
	return path;
}

/* The secret is as it was: its bytes, its size and mode 0600. */
static void secret_intact(const char *path)
{
	struct stat st;
	char *text;

	assert_int_equal(lstat(path, &st), 0);
	if ((st.st_mode & 07777) != 0600)
		fail_msg("%s: mode %04o, was 0600", path, (unsigned)(st.st_mode & 07777));
	text = slurp(path);
	if (strcmp(text, SECRET) != 0)
		fail_msg("%s was overwritten (%lld bytes now)", path, (long long)st.st_size);
	free(text);
}

static void plant(const char *target, const char *dir, const char *name)
{
	char link[600];

	snprintf(link, sizeof link, "%s/%s", dir, name);
	if (symlink(target, link) < 0)
		fail_msg("symlink %s -> %s: %s", link, target, strerror(errno));
}

/* path is a regular file (not the link planted there). */
static void regular_at(const char *dir, const char *name)
{
	char path[600];
	struct stat st;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	assert_int_equal(lstat(path, &st), 0);
	if (!S_ISREG(st.st_mode))
		fail_msg("%s is not a regular file (mode %o)", path, (unsigned)st.st_mode);
}

static void errmsg_has(const char *needle)
{
	if (!strstr(shmbus_errmsg(), needle))
		fail_msg("the message lacks \"%s\": %s", needle, shmbus_errmsg());
}

/* ------------------------------------------------------------------ */
/* Temporary names                                                     */

/* The bus file was made as .bus.new.<pid>, opened with O_TRUNC. */
static void test_bus_tmp_name(void **state)
{
	struct env *e = *state;
	const char *secret = make_secret(e);
	char name[64];
	shmbus *bus;

	snprintf(name, sizeof name, ".bus.new.%d", (int)getpid());
	plant(secret, e->root, name);
	bus = tu_open(e->root);
	shmbus_close(bus);
	secret_intact(secret);
	regular_at(e->root, "bus");
}

/* A group file was made as <group>~new.<pid>. */
static void test_group_tmp_name(void **state)
{
	struct env *e = *state;
	const char *secret = make_secret(e);
	SHMBUS_OPTS(shmbus_consumer_opts, o, .group = "billing");
	char groups[400], name[64];
	shmbus_consumer *c;
	shmbus *bus = tu_open(e->root);

	snprintf(groups, sizeof groups, "%s/groups", e->root);
	snprintf(name, sizeof name, "billing~new.%d", (int)getpid());
	plant(secret, groups, name);
	assert_ok(shmbus_consumer_new(bus, &o, &c));
	shmbus_consumer_free(c);
	shmbus_close(bus);
	secret_intact(secret);
	regular_at(groups, "billing");
}

/* The counters file was made as .counters.new.<pid>, then chmodded 0644:
 * the daemon made a root-only file world-readable. */
static void test_counters_tmp_name(void **state)
{
	struct env *e = *state;
	const char *secret = make_secret(e);
	struct ctr_file c;
	char name[64];
	int dirfd = open(e->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	assert_true(dirfd >= 0);
	snprintf(name, sizeof name, ".counters.new.%d", (int)getpid());
	plant(secret, e->root, name);
	if (ctr_create(dirfd, "127.0.0.1:9465", &c) != 0)
		fail_msg("ctr_create: %s", shmbus_errmsg());
	ctr_close(&c);
	close(dirfd);
	secret_intact(secret);
	regular_at(e->root, "counters");
}

/* ------------------------------------------------------------------ */
/* Directories                                                         */

/* topics/<topic> a link to another directory: creating the topic first
 * cleared "what an earlier crash left" there, every file of the target. */
static void test_topic_dir_link(void **state)
{
	struct env *e = *state;
	const char *secret = make_secret(e);
	SHMBUS_OPTS(shmbus_topic_opts, o, .capacity = 65536);
	char topics[400], dir[600];
	struct stat st;
	shmbus *bus = tu_open(e->root);

	snprintf(topics, sizeof topics, "%s/topics", e->root);
	plant(e->scratch, topics, "orders");
	assert_ok(shmbus_topic_create(bus, "orders", &o));
	shmbus_close(bus);
	secret_intact(secret);
	/* the topic has a directory of its own in place of the link */
	snprintf(dir, sizeof dir, "%s/orders", topics);
	assert_int_equal(lstat(dir, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
}

/* Replace <root>/<name> (a directory made by a first open) by a link to
 * the scratch directory; returns the scratch directory's mode. */
static mode_t link_subdir(struct env *e, const char *name)
{
	char path[400];
	struct stat st;

	shmbus_close(tu_open(e->root));
	snprintf(path, sizeof path, "%s/%s", e->root, name);
	tu_rmrf(path);
	plant(e->scratch, e->root, name);
	assert_int_equal(stat(e->scratch, &st), 0);
	return st.st_mode;
}

static void subdir_refused(struct env *e, const char *name)
{
	SHMBUS_OPTS(shmbus_open_opts, o, .root = e->root);
	mode_t mode = link_subdir(e, name);
	char needle[400];
	struct stat st;
	shmbus *bus = NULL;

	assert_int_equal(shmbus_open(&o, &bus), -ELOOP);
	snprintf(needle, sizeof needle, "%s/%s: it is a symbolic link", e->root, name);
	errmsg_has(needle);
	assert_int_equal(stat(e->scratch, &st), 0);
	assert_int_equal(st.st_mode, mode);
}

static void test_topics_dir_link(void **state)
{
	subdir_refused(*state, "topics");
}

static void test_groups_dir_link(void **state)
{
	subdir_refused(*state, "groups");
}

/* shmbusd, as root, made topics/ setgid and gave it the root's group:
 * through a link, another directory. */
static void test_daemon_topics_link(void **state)
{
	struct env *e = *state;
	struct tu_daemon *d = &e->d[0];
	mode_t mode = link_subdir(e, "topics");
	struct stat st;

	assert_int_equal(tu_daemon_spawn(d, e->root, NULL, NULL, NULL), 0);
	assert_int_equal(tu_daemon_wait(d, READY_MS), 1);
	expect_log(d, "topics: it is a symbolic link", 0);
	assert_int_equal(stat(e->scratch, &st), 0);
	assert_int_equal(st.st_mode, mode);
}

/* ------------------------------------------------------------------ */
/* Files opened by their final name                                    */

/* groups/<group> a link to another root's group file (root-only): the
 * consumer committed into it. */
static void test_group_file_link(void **state)
{
	struct env *e = *state;
	SHMBUS_OPTS(shmbus_consumer_opts, o, .group = "billing");
	char other[400], target[500], groups[400];
	shmbus_consumer *c = NULL;
	shmbus *bus;

	snprintf(other, sizeof other, "%s/other", e->scratch);
	assert_int_equal(mkdir(other, 0700), 0);
	bus = tu_open(other);
	assert_ok(shmbus_consumer_new(bus, &o, &c));
	shmbus_consumer_free(c);
	shmbus_close(bus);
	snprintf(target, sizeof target, "%s/groups/billing", other);
	assert_int_equal(chmod(target, 0600), 0);

	bus = tu_open(e->root);
	snprintf(groups, sizeof groups, "%s/groups", e->root);
	plant(target, groups, "billing");
	c = NULL;
	assert_int_equal(shmbus_consumer_new(bus, &o, &c), -ELOOP);
	assert_null(c);
	errmsg_has("is a symbolic link");
	shmbus_close(bus);
}

/* <root>/shmbusd.lock a link to a path that does not exist: the daemon
 * (root) created a file there. */
static void test_daemon_lock_link(void **state)
{
	struct env *e = *state;
	struct tu_daemon *d = &e->d[0];
	char made[400];

	shmbus_close(tu_open(e->root));
	snprintf(made, sizeof made, "%s/made-by-shmbusd", e->scratch);
	plant(made, e->root, "shmbusd.lock");
	assert_int_equal(tu_daemon_spawn(d, e->root, NULL, NULL, NULL), 0);
	assert_int_equal(tu_daemon_wait(d, READY_MS), 1);
	expect_log(d, "shmbusd.lock: it is a symbolic link", 0);
	if (access(made, F_OK) == 0)
		fail_msg("shmbusd created %s through the link", made);
}

#define TEST(f) cmocka_unit_test_setup_teardown(f, daemon_setup, daemon_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_bus_tmp_name),
		TEST(test_group_tmp_name),
		TEST(test_counters_tmp_name),
		TEST(test_topic_dir_link),
		TEST(test_topics_dir_link),
		TEST(test_groups_dir_link),
		TEST(test_daemon_topics_link),
		TEST(test_group_file_link),
		TEST(test_daemon_lock_link),
	};

	if (getenv("TEST_FILTER"))
		cmocka_set_test_filter(getenv("TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
