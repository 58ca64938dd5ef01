/*
 * test_mirror.c - mirroring between two real shmbusd, each in a network
 * namespace of its own joined by a veth pair (docs/protocol.md part 2,
 * format.md §13).  Needs root and `ip netns`; skips with the reason
 * otherwise.  Names carry the test's pid, so runs never meet; the
 * namespaces (and the veth pair with them) are removed at teardown, also
 * after a failure.
 *
 * The source host A serves [mirror-listen] on 10.201.0.1; host B mirrors
 * topic "orders" from it.  Records are produced on A by the library
 * (shared memory needs no network), and B's replica is compared with A's
 * partition frame by frame through the partition files: every offset A
 * still holds is on B at the same offset with the same bytes, none is
 * missing, none is doubled, and no gap was recorded.  Faults: the link
 * down and up mid-stream; B's shmbusd killed with SIGKILL mid-stream and
 * started again (it resumes from its end).
 */
#include "lib/daemonutil.h"
#include "lib/testutil.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../shm/append_int.h"
#include "../shm/format.h"
#include "../shm/frame.h"
#include "../shm/partition.h"
#include "../shm/read.h"
#include "../shm/replica.h"

#define PARTS   2
#define WAIT_MS 20000 /* a mirror catching up; far more than it takes */

struct net {
	char ns[2][32];
	char veth[2][16];
	char *dir;
	char root[2][300];
	char conf[2][320];
	struct tu_daemon d[2];
	bool up[2];
};

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[512];
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	strncat(cmd, " >/dev/null 2>&1", sizeof cmd - strlen(cmd) - 1);
	rc = system(cmd);
	return rc == 0 ? 0 : -1;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void configs(struct net *n)
{
	char text[1024];

	snprintf(text, sizeof text, "[daemon]\nroot = %s\n\n[mirror-listen]\naddress = "
		 "10.201.0.1:9093\ntls = off\ntimeout_ms = 2000\n", n->root[0]);
	write_file(n->conf[0], text);
	snprintf(text, sizeof text, "[daemon]\nroot = %s\n\n[mirror \"from-a\"]\nsource = "
		 "10.201.0.1:9093\ntopics = orders\ntls = off\ntimeout_ms = 2000\n", n->root[1]);
	write_file(n->conf[1], text);
}

static int setup(void **state)
{
	struct net *n = calloc(1, sizeof *n);
	int pid = (int)getpid();

	*state = n;
	if (getuid() != 0)
		return 0;
	for (int i = 0; i < 2; i++) {
		snprintf(n->ns[i], sizeof n->ns[i], "shmb%c%d", 'a' + i, pid);
		snprintf(n->veth[i], sizeof n->veth[i], "shv%c%d", 'a' + i, pid % 1000000);
	}
	if (sh("ip netns add %s", n->ns[0]) < 0)
		return 0; /* no ip netns: the test skips */
	n->up[0] = true;
	n->up[1] = sh("ip netns add %s", n->ns[1]) == 0;
	if (!n->up[1] ||
	    sh("ip link add %s type veth peer name %s", n->veth[0], n->veth[1]) < 0)
		return 0;
	for (int i = 0; i < 2; i++)
		if (sh("ip link set %s netns %s", n->veth[i], n->ns[i]) < 0 ||
		    sh("ip -n %s addr add 10.201.0.%d/24 dev %s", n->ns[i], i + 1, n->veth[i]) < 0 ||
		    sh("ip -n %s link set %s up", n->ns[i], n->veth[i]) < 0 ||
		    sh("ip -n %s link set lo up", n->ns[i]) < 0)
			return 0;
	n->dir = tu_tmpdir("mirror");
	for (int i = 0; i < 2; i++) {
		snprintf(n->root[i], sizeof n->root[i], "%s/%c", n->dir, 'a' + i);
		snprintf(n->conf[i], sizeof n->conf[i], "%s/%c.conf", n->dir, 'a' + i);
		mkdir(n->root[i], 0755);
	}
	configs(n);
	return 0;
}

static int teardown(void **state)
{
	struct net *n = *state;

	for (int i = 0; i < 2; i++)
		if (n->d[i].pid > 0)
			tu_daemon_kill(&n->d[i]);
	for (int i = 0; i < 2; i++)
		if (n->up[i])
			sh("ip netns del %s", n->ns[i]); /* takes its end of the veth pair */
	if (n->dir) {
		tu_rmrf(n->dir);
		free(n->dir);
	}
	free(n);
	return 0;
}

static void need_net(struct net *n)
{
	if (getuid() != 0)
		tu_skip("needs root, for network namespaces\n");
	if (!n->dir)
		tu_skip("`ip netns add` or a veth pair is not available here\n");
}

static void start(struct net *n, int i)
{
	assert_int_equal(tu_daemon_start_config_netns(&n->d[i], n->root[i], n->conf[i], n->ns[i],
						      10000), 0);
}

/* Produce `count` records to A with keys, a header and varied values. */
static void produce(shmbus *bus, uint64_t from, uint64_t count)
{
	shmbus_producer *p;
	char key[32], val[600];

	assert_int_equal(shmbus_producer_new(bus, "orders", NULL, &p), 0);
	for (uint64_t i = from; i < from + count; i++) {
		struct shmbus_header h = { .name = "n", .name_len = 1, .value = key, .value_len = 3 };
		struct shmbus_record r = { .key = key, .value = val, .headers = &h,
					   .header_count = 1 };

		r.key_len = (size_t)snprintf(key, sizeof key, "key-%llu", (unsigned long long)i);
		r.value_len = (size_t)(i * 37 % sizeof val);
		memset(val, 'a' + (int)(i % 26), r.value_len);
		assert_true(shmbus_producer_send(p, -1, &r, NULL) >= 0);
	}
	shmbus_producer_free(p);
}

static uint64_t high(shmbus *bus, uint32_t part)
{
	SHMBUS_OPTS(shmbus_partition_info, info);

	if (shmbus_partition_info(bus, "orders", part, &info) < 0)
		return 0;
	return info.high;
}

/* B's replica reaches A's end on every partition. */
static void caught_up(struct net *n, shmbus *a)
{
	int64_t until = tu_ms() + WAIT_MS;
	shmbus *b = tu_open(n->root[1]);
	uint32_t done = 0;

	while (done < PARTS && tu_ms() < until) {
		done = 0;
		for (uint32_t p = 0; p < PARTS; p++)
			done += high(b, p) == high(a, p) && high(a, p) > 0;
		if (done < PARTS)
			usleep(20000);
	}
	if (done < PARTS) {
		tu_daemon_dump(&n->d[0]);
		tu_daemon_dump(&n->d[1]);
		fail_msg("the mirror did not catch up within %d ms", WAIT_MS);
	}
	shmbus_close(b);
}

static void open_part(const char *root, uint32_t part, struct part *ret)
{
	char dir[400], name[16];
	int fd;

	snprintf(dir, sizeof dir, "%s/topics/orders", root);
	snprintf(name, sizeof name, "%u", part);
	fd = open(dir, O_RDONLY | O_DIRECTORY);
	assert_true(fd >= 0);
	assert_int_equal(part_open(fd, name, true, name, ret), 0);
	close(fd);
}

/* Every offset A holds is on B, same offset, same bytes; nothing else. */
static void byte_identical(struct net *n)
{
	for (uint32_t i = 0; i < PARTS; i++) {
		struct part a, b;
		struct part_cursor ca = { 0 }, cb = { 0 };
		struct frame_view va, vb;
		uint64_t lo_a, end_a, lo_b, end_b, seen = 0;

		open_part(n->root[0], i, &a);
		open_part(n->root[1], i, &b);
		part_bounds(&a, &lo_a, &end_a);
		part_bounds(&b, &lo_b, &end_b);
		assert_int_equal(end_a, end_b);
		assert_true(lo_b <= lo_a);
		assert_int_equal(b.hdr->mirror_gaps, 0);
		assert_true(b.hdr->status & PART_STATUS_REPLICA);
		assert_int_equal(part_seek(&a, &ca, lo_a), 0);
		assert_int_equal(part_seek(&b, &cb, lo_a), 0);
		while (part_read(&a, &ca, &va) == 1) {
			assert_int_equal(part_read(&b, &cb, &vb), 1);
			assert_int_equal(va.offset, vb.offset);
			assert_memory_equal(part_at(&a, va.pos) + 8, part_at(&b, vb.pos) + 8,
					    FRAME_HDR_SIZE - 8 + frame_payload_len(&va));
			seen++;
		}
		assert_int_equal(part_read(&b, &cb, &vb), 0);
		assert_int_equal(seen, end_a - lo_a);
		part_unmap(&a);
		part_unmap(&b);
	}
}

/* shmbus_mirror_status (MIRROR_STATUS): each partition, caught up,
 * with the reconnect the link's fault caused. */
static void status_says(struct net *n, shmbus *a)
{
	struct shmbus_mirror_status m[4] = { { .sz = sizeof m[0] } };
	shmbus *b = tu_open(n->root[1]);
	int got = shmbus_mirror_status(b, m, 4);

	assert_int_equal(got, PARTS);
	for (int i = 0; i < got; i++) {
		assert_string_equal(m[i].mirror, "from-a");
		assert_string_equal(m[i].source, "10.201.0.1:9093");
		assert_string_equal(m[i].topic, "orders");
		assert_int_equal(m[i].partition, i);
		assert_int_equal(m[i].end, high(a, (uint32_t)i));
		assert_string_equal(m[i].state, "streaming");
		assert_true(m[i].reconnects >= 1);
		assert_int_equal(m[i].gaps, 0);
	}
	shmbus_close(b);
}

/* What a mirror killed between its claim and its commits leaves in
 * partition 0 of B's replica: a child claims and marks two frames, as
 * shm/replica.c does, and dies.  The mirror's daemon is down meanwhile. */
static void plant_dead_claim(struct net *n)
{
	struct part p;
	pid_t pid;
	int st;

	open_part(n->root[1], 0, &p);
	part_unmap(&p);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct replica r;
		struct plan pl;
		uint64_t lens[2] = { 112, 112 };
		char dir[400];
		int fd;

		snprintf(dir, sizeof dir, "%s/topics/orders", n->root[1]);
		fd = open(dir, O_RDONLY | O_DIRECTORY);
		if (fd < 0 || part_open(fd, "0", false, "0", &p) || replica_open(&r, &p) ||
		    append_claim(&r.w, lens, 2, 0, 0, 0, &pl) || !append_mark(&p, &pl, lens))
			_exit(1);
		_exit(0); /* dead, its claim unpublished */
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static shmbus *source_topic(struct net *n)
{
	SHMBUS_OPTS(shmbus_topic_opts, o, .partitions = PARTS, .capacity = 8u << 20);
	shmbus *a = tu_open(n->root[0]);

	assert_int_equal(shmbus_topic_create(a, "orders", &o), 0);
	return a;
}

struct bg {
	shmbus *bus;
	uint64_t from, count;
};

static void *produce_main(void *arg)
{
	struct bg *g = arg;

	for (uint64_t i = 0; i < g->count; i += 500) {
		produce(g->bus, g->from + i, 500);
		usleep(10000);
	}
	return NULL;
}

static void replica_follows_through_link_down_and_up(void **state)
{
	struct net *n = *state;
	shmbus *a;
	pthread_t t;
	struct bg g;

	need_net(n);
	start(n, 0);
	a = source_topic(n);
	produce(a, 0, 3000);
	start(n, 1);
	caught_up(n, a);
	/* mid-stream: the link goes down for 3 s, longer than timeout_ms */
	g = (struct bg){ .bus = a, .from = 3000, .count = 10000 };
	assert_int_equal(pthread_create(&t, NULL, produce_main, &g), 0);
	usleep(50000);
	assert_int_equal(sh("ip -n %s link set %s down", n->ns[0], n->veth[0]), 0);
	sleep(3);
	assert_int_equal(sh("ip -n %s link set %s up", n->ns[0], n->veth[0]), 0);
	pthread_join(t, NULL);
	caught_up(n, a);
	byte_identical(n);
	assert_true(tu_daemon_log_has(&n->d[1], "reconnecting", 0));
	status_says(n, a);
	shmbus_close(a);
}

static void mirror_killed_resumes_from_its_end(void **state)
{
	struct net *n = *state;
	shmbus *a, *b;
	shmbus_producer *p;
	struct shmbus_record r = { .value = "x", .value_len = 1 };
	pthread_t t;
	struct bg g;
	int took_back = 0;

	need_net(n);
	start(n, 0);
	a = source_topic(n);
	produce(a, 0, 2000);
	start(n, 1);
	caught_up(n, a);
	g = (struct bg){ .bus = a, .from = 2000, .count = 20000 };
	assert_int_equal(pthread_create(&t, NULL, produce_main, &g), 0);
	for (int k = 0; k < 3; k++) {
		usleep(150000);
		tu_daemon_kill(&n->d[1]); /* SIGKILL, mid-stream */
		start(n, 1);
		/* start-up recovery logs it before READY: a kill between a claim
		 * and its commits (not every kill lands there) */
		took_back += tu_daemon_log_has(&n->d[1], "taken back", 0);
	}
	printf("# %d of 3 kills left claims that the restarted mirror took back\n", took_back);
	/* and once for certain: the claims a killed mirror left, planted */
	tu_daemon_kill(&n->d[1]);
	plant_dead_claim(n);
	start(n, 1);
	assert_true(tu_daemon_log_has(&n->d[1], "2 offsets its mirror had claimed", 0));
	pthread_join(t, NULL);
	caught_up(n, a);
	byte_identical(n);
	/* local producers are refused, naming the source */
	b = tu_open(n->root[1]);
	assert_int_equal(shmbus_producer_new(b, "orders", NULL, &p), 0);
	assert_int_equal(shmbus_producer_send(p, 0, &r, NULL), -EROFS);
	assert_errmsg_has("from-a (10.201.0.1:9093)");
	shmbus_producer_free(p);
	shmbus_close(b);
	shmbus_close(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(replica_follows_through_link_down_and_up, setup,
						teardown),
		cmocka_unit_test_setup_teardown(mirror_killed_resumes_from_its_end, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
