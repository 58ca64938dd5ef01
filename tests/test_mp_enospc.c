/*
 * test_mp_enospc.c - a bus root on a small tmpfs mounted by the test
 * (needs root; skipped otherwise).  Files are allocated whole when they
 * are created, so a full filesystem must give -ENOSPC with a message that
 * names the object and the fix, never a SIGBUS later; a failed creation
 * leaves nothing behind, and the root stays usable once space is freed.
 *
 * Every bus call runs in a child process, which must exit normally: a
 * SIGBUS shows as death by signal.
 */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/statvfs.h>

#include "shmbus.h"
#include "lib/testutil.h"
#include "test_mp.h"

struct mnt {
	char *dir;
	bool mounted;
};

static int mount_setup(void **state)
{
	static struct mnt m;

	m.dir = tu_tmpdir("mp-enospc");
	m.mounted = false;
	*state = &m;
	return 0;
}

static int mount_teardown(void **state)
{
	struct mnt *m = *state;

	mp_kill_all();
	if (m->mounted)
		umount2(m->dir, MNT_DETACH);
	tu_rmrf(m->dir);
	free(m->dir);
	return 0;
}

/* Mount a tmpfs of `size` on m->dir, or skip the test. */
static void mount_tmpfs(struct mnt *m, const char *size, unsigned long flags)
{
	char opts[64];

	if (getuid() != 0)
		tu_skip("needs root to mount a tmpfs");
	snprintf(opts, sizeof opts, "size=%s,mode=0700", size);
	if (mount("tmpfs", m->dir, "tmpfs", flags, opts) < 0) {
		if (errno == EPERM || errno == EACCES)
			tu_skip("needs root to mount a tmpfs (mount: %s)", strerror(errno));
		fail_msg("mount tmpfs %s on %s: %s", opts, m->dir, strerror(errno));
	}
	m->mounted = true;
}

static void run_child(int (*fn)(void *), void *arg, const char *what)
{
	pid_t pid = mp_spawn(fn, arg);

	mp_wait_ok(&pid, 1, 20000, what);
}

/* ------------------------------------------------------------------ */
/* Helpers for the children                                            */

/* Names in dir (recursively), for "nothing left behind" checks. */
static int count_entries(const char *dir, char *names, size_t len)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d))) {
		size_t used = strlen(names);

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		n++;
		snprintf(names + used, len - used, "%s ", e->d_name);
		if (e->d_type == DT_DIR) {
			char sub[512];
			int k;

			snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name);
			k = count_entries(sub, names, len);
			n += k > 0 ? k : 0;
		}
	}
	closedir(d);
	return n;
}

/* Problems that do not stop the child at once: reported together at its end. */
static char problems[2048];

#define SOFT_CHECK(cond, ...)                                                      \
	do {                                                                       \
		if (!(cond)) {                                                     \
			size_t u_ = strlen(problems);                              \
			snprintf(problems + u_, sizeof problems - u_, "\n    ");   \
			u_ = strlen(problems);                                     \
			snprintf(problems + u_, sizeof problems - u_, __VA_ARGS__); \
		}                                                                  \
	} while (0)

static void check_msg(int rc, const char *call, const char *must1, const char *must2)
{
	const char *msg = shmbus_errmsg();

	CHILD_CHECK(rc == -ENOSPC, "%s = %d (%s), not -ENOSPC", call, rc, shmbus_strerror(rc));
	printf("# %s: %s\n", call, msg);
	fflush(stdout);
	SOFT_CHECK(strstr(msg, must1) && (!must2 || strstr(msg, must2)),
		   "the message of %s does not name %s%s%s", call, must1, must2 ? " and " : "",
		   must2 ? must2 : "");
	/* and says what to do */
	SOFT_CHECK(strstr(msg, "free") || strstr(msg, "smaller") || strstr(msg, "capacity") ||
		   strstr(msg, "delete"), "the message of %s says nothing of what to do", call);
}

static void wait_free(const char *dir, uint64_t bytes)
{
	int64_t end = tu_ms() + 5000;
	struct statvfs sv;

	for (;;) {
		CHILD_CHECK(statvfs(dir, &sv) == 0, "statvfs");
		if ((uint64_t)sv.f_bavail * sv.f_frsize >= bytes)
			return;
		CHILD_CHECK(tu_ms() < end, "%llu bytes free, %llu expected",
			    (unsigned long long)sv.f_bavail * sv.f_frsize, (unsigned long long)bytes);
		mp_sleep_us(1000);
	}
}

static void round_trip(shmbus *bus, const char *topic)
{
	shmbus_producer *p = NULL;
	shmbus_consumer *c = NULL;
	struct shmbus_message m;
	struct shmbus_record r = { .value = "hello", .value_len = 5 };

	CHILD_CHECK(shmbus_producer_new(bus, topic, NULL, &p) == 0, "producer_new %s", topic);
	CHILD_CHECK(shmbus_producer_send(p, 0, &r, NULL) == 0, "send to %s", topic);
	CHILD_CHECK(shmbus_consumer_new(bus, NULL, &c) == 0, "consumer_new");
	CHILD_CHECK(shmbus_consumer_assign(c, topic, 0, SHMBUS_OFFSET_BEGINNING) == 0, "assign");
	CHILD_CHECK(shmbus_consumer_poll(c, &m, 1, 1000) == 1 && m.value_len == 5 &&
		    !memcmp(m.value, "hello", 5), "read back from %s", topic);
	shmbus_consumer_free(c);
	shmbus_producer_free(p);
}

/* ------------------------------------------------------------------ */
/* A topic larger than the filesystem                                  */

static int topics_main(void *argp)
{
	const char *root = argp;
	SHMBUS_OPTS(shmbus_open_opts, oo, .root = root);
	SHMBUS_OPTS(shmbus_topic_opts, big, .capacity = 4 << 20);
	SHMBUS_OPTS(shmbus_topic_opts, small, .capacity = 64 << 10);
	SHMBUS_OPTS(shmbus_topic_opts, multi, .partitions = 4, .capacity = 256 << 10);
	SHMBUS_OPTS(shmbus_topic_opts, two, .partitions = 2, .capacity = 256 << 10);
	SHMBUS_OPTS(shmbus_consumer_opts, grouped, .group = "g");
	SHMBUS_OPTS(shmbus_topic_info, info);
	char topics[512], names[4096] = "";
	shmbus_consumer *c = NULL;
	shmbus *bus = NULL;
	int rc;

	snprintf(topics, sizeof topics, "%s/topics", root);
	rc = shmbus_open(&oo, &bus);
	CHILD_CHECK(rc == 0, "shmbus_open on the 4 MiB tmpfs = %d", rc);

	/* 4 MiB does not fit: -ENOSPC up front, naming the topic and the
	 * bytes it needs (header, index and ring) */
	rc = shmbus_topic_create(bus, "big", &big);
	check_msg(rc, "topic_create(big, 4 MiB)", "\"big\"", "needs 4730880 bytes");
	CHILD_CHECK(shmbus_topic_describe(bus, "big", &info) == -ENOENT, "big exists");
	CHILD_CHECK(count_entries(topics, names, sizeof names) == 0, "left behind: %s", names);

	/* the root stays usable */
	CHILD_CHECK(shmbus_topic_create(bus, "small", &small) == 0, "small topic");
	round_trip(bus, "small");

	/* partitions 0-2 would fit, 3 would not: refused before any is made,
	 * so nothing of the topic stays */
	rc = shmbus_topic_create(bus, "multi", &multi);
	check_msg(rc, "topic_create(multi, 4 x 256 KiB)", "\"multi\"", "needs 1228800 bytes");
	names[0] = '\0';
	CHILD_CHECK(count_entries(topics, names, sizeof names) == 2, "left behind: %s", names);
	CHILD_CHECK(shmbus_topic_create(bus, "two", &two) == 0, "the space came back");
	round_trip(bus, "two");

	/* a group file (528 KiB) on the now nearly full filesystem */
	rc = shmbus_consumer_new(bus, &grouped, &c);
	check_msg(rc, "consumer_new(group g)", "group file g", NULL);
	CHILD_CHECK(shmbus_topic_delete(bus, "two") == 0, "delete two");
	/* its pages return once this process's mapping is released (after an
	 * RCU grace period) */
	wait_free(root, 600 << 10);
	rc = shmbus_consumer_new(bus, &grouped, &c);
	SOFT_CHECK(rc == 0, "consumer_new(group g) once there is room again = %d: %s", rc,
		   shmbus_errmsg());
	if (rc == 0) {
		CHILD_CHECK(shmbus_consumer_assign(c, "small", 0, SHMBUS_OFFSET_BEGINNING) == 0,
			    "assign");
		CHILD_CHECK(shmbus_consumer_commit(c) == 0, "commit");
		shmbus_consumer_free(c);
	}
	shmbus_close(bus);
	CHILD_CHECK(!problems[0], "%s", problems);
	return 0;
}

static void test_enospc_topic_larger_than_fs(void **state)
{
	struct mnt *m = *state;

	/* the bus file alone takes 3.2 MB: 4 MiB leaves about 1 MiB */
	mount_tmpfs(m, "4M", 0);
	run_child(topics_main, m->dir, "topic creation on a full tmpfs");
}

/* ------------------------------------------------------------------ */
/* A root on a filesystem too small for the bus file                   */

static int open_full_main(void *argp)
{
	const char *root = argp;
	SHMBUS_OPTS(shmbus_open_opts, oo, .root = root);
	shmbus *bus = NULL;
	int rc = shmbus_open(&oo, &bus);

	CHILD_CHECK(rc == -ENOSPC, "shmbus_open on a 1 MiB tmpfs = %d (%s)", rc,
		    shmbus_strerror(rc));
	printf("# shmbus_open on 1 MiB: %s\n", shmbus_errmsg());
	fflush(stdout);
	CHILD_CHECK(strstr(shmbus_errmsg(), "free space"), "no fix in the message");
	return 0;
}

static int open_again_main(void *argp)
{
	const char *root = argp;
	SHMBUS_OPTS(shmbus_open_opts, oo, .root = root);
	SHMBUS_OPTS(shmbus_topic_opts, small, .capacity = 64 << 10);
	shmbus *bus = NULL;
	int rc = shmbus_open(&oo, &bus);

	CHILD_CHECK(rc == 0, "shmbus_open once the filesystem has room = %d", rc);
	CHILD_CHECK(shmbus_topic_create(bus, "small", &small) == 0, "small topic");
	round_trip(bus, "small");
	shmbus_close(bus);
	return 0;
}

static void test_enospc_bus_file(void **state)
{
	struct mnt *m = *state;

	mount_tmpfs(m, "1M", 0);
	run_child(open_full_main, m->dir, "shmbus_open on a 1 MiB tmpfs");
	/* grow the filesystem: the same root must now open */
	if (mount("tmpfs", m->dir, "tmpfs", MS_REMOUNT, "size=8M") < 0)
		fail_msg("remount: %s", strerror(errno));
	run_child(open_again_main, m->dir, "shmbus_open after the filesystem grew");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_enospc_topic_larger_than_fs, mount_setup,
						mount_teardown),
		cmocka_unit_test_setup_teardown(test_enospc_bus_file, mount_setup, mount_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
