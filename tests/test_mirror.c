/*
 * test_mirror.c - mirroring between two real shmbusd, each in a network
 * namespace of its own on a bridge (tests/lib/netlab.c) (docs/protocol.md part 2,
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
#include "lib/netlab.h"
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

static int setup(void **state)
{
	struct tu_lab *l = calloc(1, sizeof *l);

	*state = l;
	tu_lab_init(l, 2);
	if (!l->ok)
		return 0;
	tu_lab_config(l, 0, "[mirror-listen]\naddress = 10.201.0.1:9093\ntls = off\n"
		      "timeout_ms = 2000\n");
	tu_lab_config(l, 1, "[mirror \"from-a\"]\nsource = 10.201.0.1:9093\ntopics = orders\n"
		      "tls = off\ntimeout_ms = 2000\n");
	return 0;
}

static int teardown(void **state)
{
	tu_lab_fini(*state);
	free(*state);
	return 0;
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

static void caught_up(struct tu_lab *l)
{
	tu_lab_caught_up(l, l->root[0], l->root[1], "orders", PARTS, WAIT_MS);
}

static void byte_identical(struct tu_lab *l)
{
	tu_replica_identical(l->root[0], l->root[1], "orders", PARTS, false);
}

/* shmbus_mirror_status (MIRROR_STATUS): each partition, caught up,
 * with the reconnect the link's fault caused. */
static void status_says(struct tu_lab *n, shmbus *a)
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
static void plant_dead_claim(struct tu_lab *n)
{
	struct part p;
	pid_t pid;
	int st;

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

static shmbus *source_topic(struct tu_lab *n)
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
	struct tu_lab *n = *state;
	shmbus *a;
	pthread_t t;
	struct bg g;

	tu_lab_need(n);
	tu_lab_start(n, 0);
	a = source_topic(n);
	produce(a, 0, 3000);
	tu_lab_start(n, 1);
	caught_up(n);
	/* mid-stream: the link goes down for 3 s, longer than timeout_ms */
	g = (struct bg){ .bus = a, .from = 3000, .count = 10000 };
	assert_int_equal(pthread_create(&t, NULL, produce_main, &g), 0);
	usleep(50000);
	tu_lab_link(n, 0, false);
	sleep(3);
	tu_lab_link(n, 0, true);
	pthread_join(t, NULL);
	caught_up(n);
	byte_identical(n);
	assert_true(tu_daemon_log_has(&n->d[1], "reconnecting", 0));
	status_says(n, a);
	shmbus_close(a);
}

static void mirror_killed_resumes_from_its_end(void **state)
{
	struct tu_lab *n = *state;
	shmbus *a, *b;
	shmbus_producer *p;
	struct shmbus_record r = { .value = "x", .value_len = 1 };
	pthread_t t;
	struct bg g;
	int took_back = 0;

	tu_lab_need(n);
	tu_lab_start(n, 0);
	a = source_topic(n);
	produce(a, 0, 2000);
	tu_lab_start(n, 1);
	caught_up(n);
	g = (struct bg){ .bus = a, .from = 2000, .count = 20000 };
	assert_int_equal(pthread_create(&t, NULL, produce_main, &g), 0);
	for (int k = 0; k < 3; k++) {
		usleep(150000);
		tu_lab_kill(n, 1); /* SIGKILL, mid-stream */
		tu_lab_start(n, 1);
		/* start-up recovery logs it before READY: a kill between a claim
		 * and its commits (not every kill lands there) */
		took_back += tu_daemon_log_has(&n->d[1], "taken back", 0);
	}
	printf("# %d of 3 kills left claims that the restarted mirror took back\n", took_back);
	/* and once for certain: the claims a killed mirror left, planted */
	tu_lab_kill(n, 1);
	plant_dead_claim(n);
	tu_lab_start(n, 1);
	assert_true(tu_daemon_log_has(&n->d[1], "2 offsets its mirror had claimed", 0));
	pthread_join(t, NULL);
	caught_up(n);
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
