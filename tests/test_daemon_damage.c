/*
 * test_daemon_damage.c - a real shmbusd supervising a partition that a
 * process with write access has damaged goes on serving: its unblocker's
 * loops over offsets and positions from shared memory are bounded by the
 * ring, it logs the damage with the fix, and it keeps answering its
 * control socket and ticking.
 *
 * Each test uses its own root, kills only the daemon it started (by pid)
 * and bounds every wait.
 */
#include "test_daemon.h"
#include "../shm/format.h"

#include <stddef.h>

static void write_u64(const char *root, const char *topic, size_t at, uint64_t v)
{
	char file[400];
	int fd;

	snprintf(file, sizeof file, "%s/topics/%s/0", root, topic);
	fd = open(file, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || pwrite(fd, &v, sizeof v, (off_t)at) != (ssize_t)sizeof v)
		fail_msg("cannot write %s: %s", file, strerror(errno));
	close(fd);
}

/* The daemon answers a status request; returns its tick count. */
static uint64_t status_ticks(struct tu_daemon *d, shmbus *bus)
{
	SHMBUS_OPTS(shmbus_daemon_status, st);
	int64_t t0 = tu_ms();
	int rc = shmbus_daemon_status(bus, &st);

	if (rc < 0) {
		tu_daemon_dump(d);
		fail_msg("status = %d after %lld ms (%s): the daemon stopped answering", rc,
			 (long long)(tu_ms() - t0), shmbus_errmsg());
	}
	return st.stats.ticks;
}

/*
 * A producer holds a claim (its writer slot is busy) when eight bytes set
 * the claim word's `next` to 2^60.  After the unblock timeout the daemon
 * tries to abort the claim it thinks is stuck: before the fix it looked
 * for the claim's end up to offset 2^60, stopped ticking and never
 * answered again.  Now it says the claim word is damaged and to run
 * recovery, and serves on.
 */
static void daemon_serves_on_with_an_impossible_claim_word(void **state)
{
	struct env *env = *state;
	struct tu_daemon *d = &env->d[0];
	const char *f = conf(env, "damage.conf", "[daemon]\nunblock_timeout_ms = 100\ntick_ms = 20\n");
	const char *args[] = { "--config", f, NULL };
	struct shmbus_record meta = { 0 };
	shmbus *bus = tu_open(env->root);
	shmbus_producer *p = NULL;
	struct shmbus_claim c;
	uint64_t ticks;

	create_topic(bus, "d", 1, 64 << 10, 0);
	start_or_fail(d, env->root, args, NULL);
	assert_ok(shmbus_producer_new(bus, "d", NULL, &p));
	for (int i = 0; i < 10; i++)
		send_str(p, 0, "before", NULL);
	assert_ok(shmbus_producer_claim(p, 0, &meta, 16, &c));
	write_u64(env->root, "d", offsetof(struct part_header, claim) + 8, 1ULL << 60);
	mp_sleep_us(400000);   /* past the unblock timeout, a few ticks */
	ticks = status_ticks(d, bus);
	mp_sleep_us(300000);
	if (status_ticks(d, bus) <= ticks)
		fail_msg("the daemon answers but no longer ticks");
	expect_log(d, "partition d/0: its claim word is damaged", 3000);
	expect_log(d, "run recovery", 0);
	shmbus_producer_abort(p, &c);
	shmbus_producer_free(p);
	stop_ok(d);
	shmbus_close(bus);
}

#define TEST(f) cmocka_unit_test_setup_teardown(f, daemon_setup, daemon_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(daemon_serves_on_with_an_impossible_claim_word),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
