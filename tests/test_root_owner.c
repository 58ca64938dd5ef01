/*
 * test_root_owner.c - whose directory a bus root may be (issue #8).
 *
 * The default root /dev/shm/shmbus-$UID does not exist until first used,
 * and anyone may create it first: the victim's commands and shmbusd then
 * used it without a word, and its owner read every record.  A root is
 * accepted when it belongs to the caller, to root or to the service's
 * user (a root shared with a group by design), and refused when others
 * may write it (docs/operations.md, "Whose root").  The victims here are
 * forked children that drop to a uid of their own; those tests skip when
 * not run as root.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/testutil.h"

#define VICTIM   60001u        /* uids and gids with no account */
#define SQUATTER 60002u
#define SHARED   60010u        /* a group both belong to */

struct env {
	char *root;                /* a fresh root (tu_tmpdir) */
	char squat[64];            /* /dev/shm/shmbus-<VICTIM>, when a test makes it */
};

static int setup(void **state)
{
	static struct env e;

	memset(&e, 0, sizeof e);
	e.root = tu_tmpdir("owner");
	*state = &e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;

	tu_rmrf(e->root);
	free(e->root);
	if (e->squat[0])
		tu_rmrf(e->squat);
	return 0;
}

static void need_root(void)
{
	if (geteuid() != 0)
		tu_skip("acting as other users (setuid) needs root");
}

static void own(const char *path, uid_t uid, gid_t gid, mode_t mode)
{
	if (chown(path, uid, gid) < 0 || chmod(path, mode) < 0)
		fail_msg("chown/chmod %s: %s", path, strerror(errno));
}

static int open_err(const char *root, shmbus **ret)
{
	SHMBUS_OPTS(shmbus_open_opts, o, .root = root, .no_daemon = true);

	*ret = NULL;
	return shmbus_open(&o, ret);
}

/* ------------------------------------------------------------------ */
/* A victim: a child with its own uid                                   */

struct victim {
	const char *root;           /* NULL: the default root */
	gid_t extra;                /* a supplementary group, or 0 */
	int expect;                 /* what shmbus_open must return */
	const char *needle[3];      /* in the message of a refusal */
};

static int victim_main(void *arg)
{
	const struct victim *v = arg;
	SHMBUS_OPTS(shmbus_open_opts, o, .root = v->root, .no_daemon = true);
	SHMBUS_OPTS(shmbus_topic_opts, t, .capacity = 65536);
	shmbus *bus = NULL;
	int rc;

	CHILD_CHECK(setgroups(v->extra ? 1 : 0, &v->extra) == 0, "setgroups");
	CHILD_CHECK(setgid(VICTIM) == 0 && setuid(VICTIM) == 0, "drop to uid %u", VICTIM);
	unsetenv("SHMBUS_ROOT");
	unsetenv("XDG_RUNTIME_DIR");
	umask(007);
	rc = shmbus_open(&o, &bus);
	CHILD_CHECK(rc == v->expect, "shmbus_open = %d, expected %d", rc, v->expect);
	for (int i = 0; i < 3 && v->needle[i]; i++)
		CHILD_CHECK(strstr(shmbus_errmsg(), v->needle[i]), "the message lacks \"%s\"",
			    v->needle[i]);
	if (rc == 0) { /* a root it may use is one it can work in */
		CHILD_CHECK(shmbus_topic_create(bus, "mine", &t) == 0, "topic create");
		CHILD_CHECK(shmbus_topic_delete(bus, "mine") == 0, "topic delete");
	}
	shmbus_close(bus);
	return 0;
}

static void run_victim(const struct victim *v)
{
	assert_int_equal(tu_wait(tu_fork(victim_main, (void *)v), 10000), 0);
}

/* ------------------------------------------------------------------ */
/* Refused                                                             */

/* The squatter made the victim's default root first, ready to use: a
 * bus file and subdirectories everyone may write, setgid to the
 * squatter's group so that the victim's files would be the squatter's
 * to read. */
static void test_squatted_default_root(void **state)
{
	struct env *e = *state;
	char uid[16], path[128];
	struct victim v = { .root = NULL, .expect = -EPERM };
	shmbus *bus;

	need_root();
	snprintf(e->squat, sizeof e->squat, "/dev/shm/shmbus-%u", VICTIM);
	tu_rmrf(e->squat);
	assert_int_equal(mkdir(e->squat, 0700), 0);
	bus = tu_open(e->squat);
	shmbus_close(bus);
	own(e->squat, SQUATTER, SQUATTER, 02755);
	snprintf(path, sizeof path, "%s/bus", e->squat);
	own(path, SQUATTER, SQUATTER, 0666);
	snprintf(path, sizeof path, "%s/usage", e->squat);
	own(path, SQUATTER, SQUATTER, 0666);
	snprintf(path, sizeof path, "%s/topics", e->squat);
	own(path, SQUATTER, SQUATTER, 02777);
	snprintf(path, sizeof path, "%s/groups", e->squat);
	own(path, SQUATTER, SQUATTER, 02777);

	snprintf(uid, sizeof uid, "uid %u", SQUATTER);
	v.needle[0] = e->squat;
	v.needle[1] = uid;
	v.needle[2] = "choose another root";
	run_victim(&v);
	/* nothing of the victim's landed there */
	snprintf(path, sizeof path, "%s/topics/mine", e->squat);
	assert_int_equal(access(path, F_OK), -1);
}

/* Shared with a group the victim is in, but owned by another user
 * (a group like "users" that every account has). */
static void test_other_owner_group_shared(void **state)
{
	struct env *e = *state;
	struct victim v = { .root = e->root, .extra = SHARED, .expect = -EPERM,
			    .needle = { e->root, "uid 60002" } };

	need_root();
	own(e->root, SQUATTER, SHARED, 02770);
	run_victim(&v);
}

/* Writable by everyone: refused whoever owns it (here the caller). */
static void test_world_writable(void **state)
{
	struct env *e = *state;
	static const mode_t modes[] = { 0777, 01777, 02777 };
	shmbus *bus;

	for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
		assert_int_equal(chmod(e->root, modes[i]), 0);
		assert_int_equal(open_err(e->root, &bus), -EPERM);
		assert_null(bus);
		if (!strstr(shmbus_errmsg(), "writable by every user") ||
		    !strstr(shmbus_errmsg(), e->root))
			fail_msg("mode %04o: %s", (unsigned)modes[i], shmbus_errmsg());
	}
	/* the fix the message gives works */
	assert_int_equal(chmod(e->root, 0770), 0);
	assert_ok(open_err(e->root, &bus));
	shmbus_close(bus);
}

/* ------------------------------------------------------------------ */
/* Accepted                                                            */

/* The caller's own, private or shared with its group. */
static void test_own_root(void **state)
{
	struct env *e = *state;
	struct victim v = { .root = e->root };

	need_root();
	own(e->root, VICTIM, VICTIM, 0700);
	run_victim(&v);
	own(e->root, VICTIM, SHARED, 02770);
	run_victim(&v);
}

/* Root's, shared with a group by design (as shmbusd run as root makes
 * one): its members use it. */
static void test_root_owned_shared(void **state)
{
	struct env *e = *state;
	struct victim v = { .root = e->root, .extra = SHARED };
	shmbus *bus;

	need_root();
	own(e->root, 0, SHARED, 02770);
	bus = tu_open(e->root);          /* made by root, as the daemon would */
	shmbus_close(bus);
	run_victim(&v);
}

/* The service's root: /dev/shm/shmbus is shmbus:shmbus 2770 (tmpfiles.d). */
static void test_service_user_root(void **state)
{
	struct env *e = *state;
	struct victim v = { .root = e->root, .extra = SHARED };
	struct passwd *pw = getpwnam("shmbus");

	need_root();
	if (!pw)
		tu_skip("no user \"shmbus\" here (systemd-sysusers shmbus.conf makes it)");
	own(e->root, pw->pw_uid, SHARED, 02770);
	run_victim(&v);
}

/* Root may use any root (it is not writable by everyone). */
static void test_root_uses_any(void **state)
{
	struct env *e = *state;
	shmbus *bus;

	need_root();
	own(e->root, SQUATTER, SQUATTER, 0750);
	assert_ok(open_err(e->root, &bus));
	shmbus_close(bus);
}

#define TEST(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_squatted_default_root),
		TEST(test_other_owner_group_shared),
		TEST(test_world_writable),
		TEST(test_own_root),
		TEST(test_root_owned_shared),
		TEST(test_service_user_root),
		TEST(test_root_uses_any),
	};

	if (getenv("TEST_FILTER"))
		cmocka_set_test_filter(getenv("TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
