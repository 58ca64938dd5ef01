/*
 * test_shareddir.c - util/shareddir.c, the one way files are opened and
 * made in a bus root: no symbolic link followed in any component, files
 * made whole before they have a name (O_TMPFILE, or a random name where
 * the filesystem lacks it: sdir_new_named runs that path here), modes
 * exact whatever the umask, -EEXIST rather than replacing unless asked.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/testutil.h"
#include "../util/shareddir.h"

struct env {
	char *dir;
	int dirfd;
};

static int setup(void **state)
{
	static struct env e;

	e.dir = tu_tmpdir("sdir");
	e.dirfd = open(e.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(e.dirfd >= 0);
	*state = &e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;

	close(e->dirfd);
	tu_rmrf(e->dir);
	free(e->dir);
	return 0;
}

/* Names in the directory besides "." and "..". */
static int entries(const struct env *e)
{
	char cmd[400];
	FILE *p;
	int n = -1;

	snprintf(cmd, sizeof cmd, "ls -A %s | wc -l", e->dir);
	p = popen(cmd, "r");
	assert_non_null(p);
	assert_int_equal(fscanf(p, "%d", &n), 1);
	pclose(p);
	return n;
}

static void file_is(const struct env *e, const char *name, mode_t mode, const char *text)
{
	char buf[64] = "";
	struct stat st;
	int fd;

	assert_int_equal(fstatat(e->dirfd, name, &st, AT_SYMLINK_NOFOLLOW), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, mode);
	fd = openat(e->dirfd, name, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_true(read(fd, buf, sizeof buf - 1) >= 0);
	close(fd);
	assert_string_equal(buf, text);
}

static void make(struct env *e, bool named, mode_t mode, const char *text, struct sdir_file *f)
{
	mode_t old = umask(077); /* the mode must not depend on it */

	assert_int_equal(named ? sdir_new_named(e->dirfd, mode, f) : sdir_new(e->dirfd, mode, f), 0);
	umask(old);
	assert_int_equal(write(f->fd, text, strlen(text)), (ssize_t)strlen(text));
	if (named)
		assert_memory_equal(f->tmp, ".~new.", 6);
	else
		assert_string_equal(f->tmp, "");
}

static void publish_both_ways(struct env *e, bool named)
{
	struct sdir_file f;

	make(e, named, 0660, "first", &f);
	assert_int_equal(sdir_publish(e->dirfd, &f, "bus", false), 0);
	assert_string_equal(f.tmp, "");
	sdir_close(e->dirfd, &f);
	file_is(e, "bus", 0660, "first");
	/* taken: not replaced, and nothing left behind */
	make(e, named, 0644, "second", &f);
	assert_int_equal(sdir_publish(e->dirfd, &f, "bus", false), -EEXIST);
	sdir_close(e->dirfd, &f);
	file_is(e, "bus", 0660, "first");
	assert_int_equal(entries(e), 1);
	/* replaced when asked */
	make(e, named, 0644, "third", &f);
	assert_int_equal(sdir_publish(e->dirfd, &f, "bus", true), 0);
	sdir_close(e->dirfd, &f);
	file_is(e, "bus", 0644, "third");
	assert_int_equal(entries(e), 1);
	/* a file never published leaves no name */
	make(e, named, 0600, "dropped", &f);
	sdir_close(e->dirfd, &f);
	assert_int_equal(entries(e), 1);
}

static void test_unnamed(void **state)
{
	publish_both_ways(*state, false);
}

static void test_random_name(void **state)
{
	publish_both_ways(*state, true);
}

/* A link at the final name is replaced only when asked, never followed. */
static void test_publish_over_link(void **state)
{
	struct env *e = *state;
	char target[400];
	struct sdir_file f;

	snprintf(target, sizeof target, "%s/elsewhere", e->dir);
	assert_int_equal(symlinkat(target, e->dirfd, "counters"), 0);
	make(e, false, 0644, "mine", &f);
	assert_int_equal(sdir_publish(e->dirfd, &f, "counters", false), -EEXIST);
	assert_int_equal(sdir_publish(e->dirfd, &f, "counters", true), 0);
	sdir_close(e->dirfd, &f);
	file_is(e, "counters", 0644, "mine");
	assert_int_equal(access(target, F_OK), -1);
}

static void test_open_refuses_links(void **state)
{
	struct env *e = *state;
	int fd;

	assert_int_equal(mkdirat(e->dirfd, "topics", 0700), 0);
	assert_int_equal(mkdirat(e->dirfd, "real", 0700), 0);
	fd = openat(e->dirfd, "real/0", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(symlinkat("real", e->dirfd, "linked"), 0);
	assert_int_equal(symlinkat("real/0", e->dirfd, "file-link"), 0);
	/* the real ones open */
	fd = sdir_open(e->dirfd, "real/0", O_RDWR);
	assert_true(fd >= 0);
	close(fd);
	fd = sdir_open(e->dirfd, "topics", O_RDONLY | O_DIRECTORY);
	assert_true(fd >= 0);
	close(fd);
	/* a link as the file, as the directory, or inside the path */
	assert_int_equal(sdir_open(e->dirfd, "file-link", O_RDWR), -ELOOP);
	assert_int_equal(sdir_open(e->dirfd, "linked", O_RDONLY | O_DIRECTORY), -ELOOP);
	assert_int_equal(sdir_open(e->dirfd, "linked/0", O_RDWR), -ELOOP);
	assert_non_null(strstr(sdir_why(-ELOOP), "symbolic link"));
	assert_int_equal(sdir_open(e->dirfd, "missing", O_RDWR), -ENOENT);
}

#define TEST(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_unnamed),
		TEST(test_random_name),
		TEST(test_publish_over_link),
		TEST(test_open_refuses_links),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
