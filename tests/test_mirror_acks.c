/*
 * test_mirror_acks.c - acknowledged writes (docs/protocol.md §M11,
 * format.md §15): the mirrored offset a source's shmbusd publishes from
 * its mirrors' ACKs, producers with acks=mirrors, consumers with
 * isolation=mirrored.
 *
 * Without root: a producer is refused with -ENOTCONN and the fix when no
 * daemon, or no [mirror-listen], could ever acknowledge; with a listener
 * on loopback no mirror reaches, a send times out saying none is
 * connected, and once a mirror follows only another topic, saying so; an
 * isolation=mirrored consumer reads only below the mirrored offset and
 * wakes when it moves (raised by hand, as the daemon would), and so does
 * `shmbus consume --isolation mirrored -e`.
 *
 * With root, real daemons on hosts in network namespaces (tests/lib/
 * netlab.c): A serves [mirror-listen] on 10.201.0.1, B (and C) mirror
 * topic "orders".  Each acks=mirrors send returns only once the record
 * is readable in B's replica; with B's link down a send fails after
 * about its timeout naming B's address; a consumer reading only mirrored
 * records stops at the frozen mirrored offset and goes on once the link
 * is back; the mirrored offset is in the partition header, so it
 * survives A's daemon killed and restarted, and a sampler sees it never
 * move back; with min_mirrors = 2 and two mirrors it is the lower of
 * their ends; with `ack = flushed` and the mirror's root on a disk, every
 * ACK it sends follows an msync (seen with strace).  Also the round trip
 * of a send, plain and acks=mirrors, over the veth pair (printed).
 */
#include "lib/ackrtt.h"
#include "lib/clirun.h"
#include "lib/daemonutil.h"
#include "lib/netlab.h"
#include "lib/testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../shm/mirrored.h"
#include "../shm/partition.h"
#include "../shm/read.h"

#define WAIT_MS 20000 /* a mirror catching up; far more than it takes */

/* ------------------------------------------------------------------ */
/* Helpers                                                             */

static shmbus_producer *acks_producer(shmbus *bus, int timeout_ms)
{
	SHMBUS_OPTS(shmbus_producer_opts, o, .acks = SHMBUS_ACKS_MIRRORS,
		    .ack_timeout_ms = timeout_ms);
	shmbus_producer *p = NULL;

	assert_ok(shmbus_producer_new(bus, "orders", &o, &p));
	return p;
}

static int send_one(shmbus_producer *p, int32_t part, uint64_t *off)
{
	struct shmbus_record r = { .key = "k", .key_len = 1, .value = "acknowledged",
				   .value_len = 12 };

	return shmbus_producer_send(p, part, &r, off);
}

static void plain(shmbus *bus, int32_t part, int n)
{
	shmbus_producer *p;

	assert_ok(shmbus_producer_new(bus, "orders", NULL, &p));
	for (int i = 0; i < n; i++)
		assert_true(send_one(p, part, NULL) >= 0);
	shmbus_producer_free(p);
}

static void make_orders(shmbus *bus, uint32_t parts)
{
	SHMBUS_OPTS(shmbus_topic_opts, o, .partitions = parts, .capacity = 1u << 20);

	assert_ok(shmbus_topic_create(bus, "orders", &o));
}

static uint64_t mirrored(shmbus *bus, uint32_t part)
{
	SHMBUS_OPTS(shmbus_partition_info, info);

	assert_ok(shmbus_partition_info(bus, "orders", part, &info));
	return info.mirrored;
}

static uint64_t high(shmbus *bus, uint32_t part)
{
	SHMBUS_OPTS(shmbus_partition_info, info);

	assert_ok(shmbus_partition_info(bus, "orders", part, &info));
	return info.high;
}

/* A partition of topic "orders" under root, mapped read-only. */
static void map_orders(const char *root, uint32_t part, struct part *ret)
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

/* Is offset `off` a record readable in this replica? */
static bool holds(struct part *replica, uint64_t off)
{
	struct part_cursor c = { 0 };
	struct frame_view v;

	return part_seek(replica, &c, off) == 0 && part_read(replica, &c, &v) == 1 &&
	       v.offset == off;
}

/* Mirrors following each of `parts` partitions of orders, as A says. */
static int following(shmbus *a, uint32_t parts, int per_part)
{
	struct shmbus_mirror_follower f[16] = { { .sz = sizeof f[0] } };
	int n = shmbus_mirror_followers(a, "orders", f, 16), on[8] = { 0 }, ok = 0;

	for (int i = 0; i < n && i < 16; i++)
		if (!strcmp(f[i].state, "following") && f[i].partition >= 0 && f[i].partition < 8)
			on[f[i].partition]++;
	for (uint32_t i = 0; i < parts; i++)
		ok += on[i] >= per_part;
	return ok == (int)parts;
}

static void wait_following(struct tu_lab *l, shmbus *a, uint32_t parts, int per_part)
{
	int64_t until = tu_ms() + WAIT_MS;

	while (!following(a, parts, per_part)) {
		if (tu_ms() > until) {
			for (int i = 0; i < l->hosts; i++)
				tu_daemon_dump(&l->d[i]);
			fail_msg("the mirrors did not follow orders within %d ms", WAIT_MS);
		}
		usleep(20000);
	}
}

static void wait_mirrored(shmbus *a, uint32_t part, uint64_t at_least)
{
	int64_t until = tu_ms() + WAIT_MS;

	while (mirrored(a, part) < at_least) {
		if (tu_ms() > until)
			fail_msg("the mirrored offset of orders/%u stayed at %llu, below %llu", part,
				 (unsigned long long)mirrored(a, part), (unsigned long long)at_least);
		usleep(10000);
	}
}

/* Samples the mirrored offset of orders/0 until told to stop; counts
 * any move back. */
struct sampler {
	const char *root;
	pthread_t t;
	atomic_int stop;
	uint64_t samples, backs, last;
};

static void *sample_main(void *arg)
{
	struct sampler *s = arg;
	struct part p;
	char dir[400];
	int fd;

	snprintf(dir, sizeof dir, "%s/topics/orders", s->root);
	fd = open(dir, O_RDONLY | O_DIRECTORY);
	if (fd < 0 || part_open(fd, "0", true, "0", &p) < 0) {
		s->backs = UINT64_MAX;
		return NULL;
	}
	close(fd);
	while (!atomic_load(&s->stop)) {
		uint64_t m = part_mirrored(&p);

		s->backs += m < s->last;
		s->last = m;
		s->samples++;
		usleep(500);
	}
	part_unmap(&p);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Without root                                                        */

struct solo {
	char *root;
	char conf[320];
	struct tu_daemon d;
	char *mroot;                 /* a mirror on loopback (nothing_to_acknowledge) */
	char mconf[320];
	struct tu_daemon m;
};

static int solo_setup(void **state)
{
	struct solo *s = calloc(1, sizeof *s);

	s->root = tu_tmpdir("acks");
	snprintf(s->conf, sizeof s->conf, "%s.conf", s->root);
	*state = s;
	return 0;
}

static int solo_teardown(void **state)
{
	struct solo *s = *state;

	reap_children();
	if (s->d.pid > 0)
		tu_daemon_kill(&s->d);
	if (s->m.pid > 0)
		tu_daemon_kill(&s->m);
	if (s->d.log[0])
		unlink(s->d.log);
	if (s->m.log[0])
		unlink(s->m.log);
	if (s->mroot) {
		unlink(s->mconf);
		tu_rmrf(s->mroot);
		free(s->mroot);
	}
	unlink(s->conf);
	tu_rmrf(s->root);
	free(s->root);
	free(s);
	return 0;
}

static void start_with(struct solo *s, const char *text)
{
	FILE *f = fopen(s->conf, "w");

	assert_non_null(f);
	fprintf(f, "[daemon]\nroot = %s\n\n%s", s->root, text);
	assert_int_equal(fclose(f), 0);
	if (s->d.pid > 0)
		tu_daemon_kill(&s->d);
	assert_int_equal(tu_daemon_start_config(&s->d, s->root, s->conf, NULL, 10000), 0);
}

static int new_with_acks(const char *root, shmbus_producer **ret)
{
	SHMBUS_OPTS(shmbus_producer_opts, o, .acks = SHMBUS_ACKS_MIRRORS, .ack_timeout_ms = 300);
	shmbus *bus = tu_open(root);
	int rc = shmbus_producer_new(bus, "orders", &o, ret);

	if (rc < 0)
		shmbus_close(bus);
	return rc;
}

static void nothing_to_acknowledge_is_said_at_once(void **state)
{
	struct solo *s = *state;
	shmbus_producer *p = NULL;
	shmbus *bus = tu_open(s->root);
	char conf[200];
	int64_t t0;
	int port;

	make_orders(bus, 1);
	shmbus_close(bus);
	/* no daemon at all */
	assert_int_equal(new_with_acks(s->root, &p), -ENOTCONN);
	assert_errmsg_has("no shmbusd serves");
	assert_errmsg_has("[mirror-listen]");
	/* a daemon without [mirror-listen] */
	start_with(s, "");
	assert_int_equal(new_with_acks(s->root, &p), -ENOTCONN);
	assert_errmsg_has("has no [mirror-listen] section");
	/* a listener no mirror reaches: the send times out, saying so */
	port = tu_free_port();
	snprintf(conf, sizeof conf, "[mirror-listen]\naddress = 127.0.0.1:%d\ntls = off\n", port);
	start_with(s, conf);
	bus = tu_open(s->root);
	{
		SHMBUS_OPTS(shmbus_producer_opts, o, .acks = SHMBUS_ACKS_MIRRORS,
			    .ack_timeout_ms = 300);
		SHMBUS_OPTS(shmbus_daemon_status, st);

		assert_ok(shmbus_daemon_status(bus, &st));
		assert_int_equal(st.min_mirrors, 1);
		assert_true(strstr(st.mirror_listen, "127.0.0.1:") == st.mirror_listen);
		assert_ok(shmbus_producer_new(bus, "orders", &o, &p));
	}
	t0 = tu_ms();
	assert_int_equal(send_one(p, 0, NULL), -ETIMEDOUT);
	assert_true(tu_ms() - t0 >= 300 && tu_ms() - t0 < 3000);
	assert_errmsg_has("orders/0@0 is in this host's log but not mirrored after 300 ms");
	assert_errmsg_has("no mirror follows it (none is connected");
	/* it is in the log all the same */
	assert_int_equal(high(bus, 0), 1);
	/* a mirror that follows another topic only */
	{
		SHMBUS_OPTS(shmbus_topic_opts, to, .capacity = 1u << 20);
		FILE *f;

		assert_ok(shmbus_topic_create(bus, "other", &to));
		s->mroot = tu_tmpdir("acks-mirror");
		snprintf(s->mconf, sizeof s->mconf, "%s.conf", s->mroot);
		f = fopen(s->mconf, "w");
		assert_non_null(f);
		fprintf(f, "[daemon]\nroot = %s\n[mirror \"a\"]\nsource = 127.0.0.1:%d\n"
			"topics = other\ntls = off\n", s->mroot, port);
		assert_int_equal(fclose(f), 0);
		assert_int_equal(tu_daemon_start_config(&s->m, s->mroot, s->mconf, NULL, 10000), 0);
		for (t0 = tu_ms(); tu_ms() - t0 < 10000; usleep(20000)) {
			struct shmbus_mirror_follower fl[2] = { { .sz = sizeof fl[0] } };

			if (shmbus_mirror_followers(bus, "other", fl, 2) >= 1 &&
			    !strcmp(fl[0].state, "following"))
				break;
		}
	}
	assert_int_equal(send_one(p, 0, NULL), -ETIMEDOUT);
	assert_errmsg_has("mirrors are connected to this host's [mirror-listen], but none "
			  "follows this topic");
	shmbus_producer_free(p);
	shmbus_close(bus);
}

static void *raise_soon(void *arg)
{
	usleep(50000);
	part_mirrored_raise(arg, 8);
	return NULL;
}

static void isolation_reads_below_the_mirrored_offset_only(void **state)
{
	struct solo *s = *state;
	SHMBUS_OPTS(shmbus_consumer_opts, o, .isolation = SHMBUS_ISOLATION_MIRRORED);
	SHMBUS_OPTS(shmbus_consumer_opts, bad, .isolation = 7);
	struct shmbus_message m[16];
	shmbus *bus = tu_open(s->root);
	shmbus_consumer *c;
	struct part p;
	pthread_t t;
	uint64_t lag;
	int64_t t0;
	char dir[400];
	int fd, n;

	make_orders(bus, 1);
	plain(bus, 0, 10);
	assert_int_equal(shmbus_consumer_new(bus, &bad, &c), -EINVAL);
	assert_ok(shmbus_consumer_new(bus, &o, &c));
	assert_ok(shmbus_consumer_assign(c, "orders", 0, SHMBUS_OFFSET_BEGINNING));
	/* nothing is mirrored: nothing to read, and the lag is to the
	 * mirrored offset */
	assert_int_equal(shmbus_consumer_poll(c, m, 16, 50), 0);
	assert_ok(shmbus_consumer_lag(c, "orders", 0, &lag));
	assert_int_equal(lag, 0);
	/* as the source's shmbusd would */
	snprintf(dir, sizeof dir, "%s/topics/orders", s->root);
	fd = open(dir, O_RDONLY | O_DIRECTORY);
	assert_int_equal(part_open(fd, "0", false, "0", &p), 0);
	close(fd);
	part_mirrored_raise(&p, 3);
	n = shmbus_consumer_poll(c, m, 16, 0);
	assert_int_equal(n, 3);
	assert_int_equal(m[2].offset, 2);
	assert_int_equal(shmbus_consumer_poll(c, m, 16, 20), 0);
	/* a poll asleep wakes when the offset moves, not at its timeout */
	assert_int_equal(pthread_create(&t, NULL, raise_soon, &p), 0);
	t0 = tu_ms();
	n = shmbus_consumer_poll(c, m, 16, 5000);
	assert_true(tu_ms() - t0 < 2000);
	pthread_join(t, NULL);
	assert_int_equal(n, 5);
	assert_int_equal(m[0].offset, 3);
	assert_int_equal(m[4].offset, 7);
	assert_ok(shmbus_consumer_lag(c, "orders", 0, &lag));
	assert_int_equal(lag, 0);
	/* the command reads as much, and -e stops at the mirrored end */
	expect_consume(s->root, "0\n1\n2\n3\n4\n5\n6\n7\n",
		       ARGS("consume", "orders", "--isolation", "mirrored", "-e", "-f", "%o\n"));
	{
		struct run r;

		CLI(&r, s->root, NULL, "consume", "orders", "--isolation", "committed", "-e");
		expect_status(&r, 2, "consume --isolation committed");
		expect_contains(r.err, "--isolation is all or mirrored", "consume --isolation");
		run_free(&r);
		CLI(&r, s->root, "x\n", "produce", "orders", "--ack-timeout", "100");
		expect_status(&r, 2, "produce --ack-timeout without --acks mirrors");
		expect_contains(r.err, "--ack-timeout goes with --acks mirrors", "produce");
		run_free(&r);
	}
	/* an ordinary consumer reads on to the end */
	shmbus_consumer_free(c);
	assert_ok(shmbus_consumer_new(bus, NULL, &c));
	assert_ok(shmbus_consumer_assign(c, "orders", 0, SHMBUS_OFFSET_BEGINNING));
	assert_int_equal(shmbus_consumer_poll(c, m, 16, 0), 10);
	shmbus_consumer_free(c);
	part_unmap(&p);
	shmbus_close(bus);
}

/* ------------------------------------------------------------------ */
/* Hosts in network namespaces                                         */

#define SOURCE "[mirror-listen]\naddress = 10.201.0.1:9093\ntls = off\ntimeout_ms = 2000\n"
#define MIRROR "[mirror \"from-a\"]\nsource = 10.201.0.1:9093\ntopics = orders\ntls = off\n" \
	       "timeout_ms = 2000\n"

static int lab2_setup(void **state)
{
	struct tu_lab *l = calloc(1, sizeof *l);

	*state = l;
	tu_lab_init(l, 2);
	if (l->ok) {
		tu_lab_config(l, 0, SOURCE);
		tu_lab_config(l, 1, MIRROR);
	}
	return 0;
}

static int lab3_setup(void **state)
{
	struct tu_lab *l = calloc(1, sizeof *l);

	*state = l;
	tu_lab_init(l, 3);
	if (l->ok) {
		tu_lab_config(l, 0, SOURCE "min_mirrors = 2\n");
		tu_lab_config(l, 1, MIRROR);
		tu_lab_config(l, 2, MIRROR);
	}
	return 0;
}

static int lab_teardown(void **state)
{
	reap_children();
	tu_lab_fini(*state);
	free(*state);
	return 0;
}

/* A with topic orders (parts partitions), then the mirrors, following. */
static shmbus *start_lab(struct tu_lab *l, uint32_t parts)
{
	shmbus *a;

	tu_lab_start(l, 0);
	a = tu_open(l->root[0]);
	make_orders(a, parts);
	for (int i = 1; i < l->hosts; i++)
		tu_lab_start(l, i);
	wait_following(l, a, parts, l->hosts - 1);
	return a;
}

static void print_rtt(const char *what, const struct tu_rtt *r)
{
	printf("# %-28s %zu sends: p50 %7.1f us  p99 %7.1f us  max %8.1f us\n", what, r->n,
	       r->p50_us, r->p99_us, r->max_us);
}

static void each_send_returns_once_the_mirror_holds_it(void **state)
{
	struct tu_lab *l = *state;
	struct shmbus_mirror_follower f[4] = { { .sz = sizeof f[0] } };
	struct shmbus_record batch[10];
	struct shmbus_claim cl;
	struct tu_rtt plain_rtt, acks_rtt;
	shmbus_producer *p;
	struct part b[2];
	struct run r;
	shmbus *a;
	uint64_t off;

	tu_lab_need(l);
	a = start_lab(l, 2);
	map_orders(l->root[1], 0, &b[0]);
	map_orders(l->root[1], 1, &b[1]);
	p = acks_producer(a, 5000);
	for (int i = 0; i < 200; i++) {
		int part = send_one(p, i % 2, &off);

		assert_true(part == i % 2);
		if (!holds(&b[part], off))
			fail_msg("send %d returned, but orders/%d@%llu is not in the mirror's replica",
				 i, part, (unsigned long long)off);
		assert_true(mirrored(a, (uint32_t)part) > off);
	}
	/* a batch returns once all of it is mirrored */
	for (int i = 0; i < 10; i++)
		batch[i] = (struct shmbus_record){ .value = "b", .value_len = 1 };
	off = high(a, 1);
	assert_int_equal(shmbus_producer_send_batch(p, 1, batch, 10), 10);
	for (uint64_t o = off; o < off + 10; o++)
		assert_true(holds(&b[1], o));
	/* and a zero-copy claim at its commit */
	assert_ok(shmbus_producer_claim(p, 0, &batch[0], 8, &cl));
	memcpy(cl.value, "claimed!", 8);
	assert_ok(shmbus_producer_commit(p, &cl, 8));
	assert_true(holds(&b[0], cl.offset));
	shmbus_producer_free(p);
	/* the source's view: B, caught up on both partitions */
	assert_int_equal(shmbus_mirror_followers(a, "orders", f, 4), 2);
	for (int i = 0; i < 2; i++) {
		assert_string_equal(f[i].state, "following");
		assert_true(!strncmp(f[i].peer, "10.201.0.2:", 11));
		assert_int_equal(f[i].acked, high(a, (uint32_t)f[i].partition));
		assert_int_equal(f[i].mirrored, f[i].acked);
		assert_int_equal(f[i].lag, 0);
	}
	/* the command: shmbus produce --acks mirrors */
	off = high(a, 1);
	CLI(&r, l->root[0], "one\ntwo\nthree\n", "produce", "orders", "-p", "1", "--acks",
	    "mirrors", "--ack-timeout", "5000");
	expect_ok(&r, "produce --acks mirrors");
	run_free(&r);
	for (uint64_t o = off; o < off + 3; o++)
		assert_true(holds(&b[1], o));
	CLI(&r, l->root[0], NULL, "mirror", "status");
	expect_ok(&r, "mirror status");
	expect_contains(r.out, "mirrors following this host", "mirror status");
	expect_contains(r.out, "10.201.0.2:", "mirror status");
	run_free(&r);
	/* the round trip over the veth pair, plain and acks=mirrors */
	tu_rtt_measure(a, "orders", 0, SHMBUS_ACKS_LOCAL, 2000, 100, &plain_rtt);
	tu_rtt_measure(a, "orders", 0, SHMBUS_ACKS_MIRRORS, 2000, 100, &acks_rtt);
	assert_int_equal(plain_rtt.err, 0);
	assert_int_equal(acks_rtt.err, 0);
	print_rtt("send, acks=local", &plain_rtt);
	print_rtt("send, acks=mirrors (veth)", &acks_rtt);
	part_unmap(&b[0]);
	part_unmap(&b[1]);
	shmbus_close(a);
}

/* Read with isolation=mirrored until offset `to`; every record read is
 * below the mirrored offset seen after it was read. */
static uint64_t read_mirrored(shmbus *a, shmbus_consumer *c, uint64_t from, uint64_t to,
			      int timeout_ms)
{
	struct shmbus_message m[64];
	int64_t until = tu_ms() + timeout_ms;
	uint64_t next = from;

	while (next < to && tu_ms() < until) {
		int n = shmbus_consumer_poll(c, m, 64, 100);

		assert_true(n >= 0);
		for (int i = 0; i < n; i++) {
			assert_int_equal(m[i].offset, next);
			assert_true(m[i].offset < mirrored(a, 0));
			next++;
		}
	}
	return next;
}

static void a_cut_mirror_is_named_and_nothing_unmirrored_is_read(void **state)
{
	struct tu_lab *l = *state;
	SHMBUS_OPTS(shmbus_consumer_opts, co, .isolation = SHMBUS_ISOLATION_MIRRORED);
	struct sampler smp = { 0 };
	shmbus_consumer *c;
	shmbus_producer *p;
	uint64_t frozen, end, got;
	int64_t t0;
	shmbus *a;

	tu_lab_need(l);
	a = start_lab(l, 1);
	smp.root = l->root[0];
	assert_int_equal(pthread_create(&smp.t, NULL, sample_main, &smp), 0);
	p = acks_producer(a, 800);
	for (int i = 0; i < 20; i++)
		assert_int_equal(send_one(p, 0, NULL), 0);
	assert_ok(shmbus_consumer_new(a, &co, &c));
	assert_ok(shmbus_consumer_assign(c, "orders", 0, SHMBUS_OFFSET_BEGINNING));
	assert_int_equal(read_mirrored(a, c, 0, 20, WAIT_MS), 20);
	/* B cut off: the send fails after about its timeout, naming B */
	tu_lab_link(l, 1, false);
	frozen = mirrored(a, 0);
	assert_int_equal(frozen, 20);
	t0 = tu_ms();
	assert_int_equal(send_one(p, 0, NULL), -ETIMEDOUT);
	assert_true(tu_ms() - t0 >= 800 && tu_ms() - t0 < 5000);
	printf("# B's link down: %s\n", shmbus_errmsg());
	assert_errmsg_has("orders/0@20 is in this host's log but not mirrored after 800 ms");
	assert_errmsg_has("10.201.0.2:");
	assert_errmsg_has("holds up to 20");
	plain(a, 0, 30);
	end = high(a, 0);
	assert_int_equal(end, 51);
	/* nothing past the frozen mirrored offset is read */
	assert_int_equal(shmbus_consumer_poll(c, (struct shmbus_message[4]){ 0 }, 4, 300), 0);
	assert_int_equal(mirrored(a, 0), frozen);
	/* once the source dropped B (timeout_ms), the message says so */
	usleep(2500000);
	assert_int_equal(send_one(p, 0, NULL), -ETIMEDOUT);
	printf("# B dropped: %s\n", shmbus_errmsg());
	assert_errmsg_has("disconnected");
	assert_errmsg_has("10.201.0.2:");
	end = high(a, 0);
	/* the link back: everything is mirrored, and read */
	tu_lab_link(l, 1, true);
	wait_mirrored(a, 0, end);
	got = read_mirrored(a, c, 20, end, WAIT_MS);
	assert_int_equal(got, end);
	tu_lab_caught_up(l, l->root[0], l->root[1], "orders", 1, WAIT_MS);
	/* the mirrored offset is in the header: A's daemon killed, it stays */
	frozen = mirrored(a, 0);
	tu_lab_kill(l, 0);
	assert_int_equal(mirrored(a, 0), frozen);
	tu_lab_start(l, 0);
	assert_int_equal(mirrored(a, 0), frozen);
	wait_following(l, a, 1, 1);
	assert_int_equal(send_one(p, 0, NULL), 0);
	assert_int_equal(mirrored(a, 0), frozen + 1);
	atomic_store(&smp.stop, 1);
	pthread_join(smp.t, NULL);
	printf("# the mirrored offset sampled %llu times: %llu moves back\n",
	       (unsigned long long)smp.samples, (unsigned long long)smp.backs);
	assert_true(smp.samples > 100);
	assert_int_equal(smp.backs, 0);
	shmbus_consumer_free(c);
	shmbus_producer_free(p);
	shmbus_close(a);
}

static void two_of_two_mirrors_make_the_lower_end(void **state)
{
	struct tu_lab *l = *state;
	struct part b, c;
	shmbus_producer *p;
	uint64_t off, end, bend, cend;
	shmbus *a;

	tu_lab_need(l);
	a = start_lab(l, 1);
	map_orders(l->root[1], 0, &b);
	map_orders(l->root[2], 0, &c);
	p = acks_producer(a, 5000);
	for (int i = 0; i < 50; i++) {
		assert_int_equal(send_one(p, 0, &off), 0);
		assert_true(holds(&b, off) && holds(&c, off));
	}
	/* C cut off: B goes on, the mirrored offset stays at C's end */
	tu_lab_link(l, 2, false);
	plain(a, 0, 100);
	end = high(a, 0);
	tu_lab_caught_up(l, l->root[0], l->root[1], "orders", 1, WAIT_MS);
	usleep(100000); /* B's ACK of its last batch */
	bend = tu_part_high(l->root[1], "orders", 0);
	cend = tu_part_high(l->root[2], "orders", 0);
	assert_int_equal(bend, end);
	assert_int_equal(cend, 50);
	assert_int_equal(mirrored(a, 0), cend);
	shmbus_producer_free(p);
	p = acks_producer(a, 500);
	assert_int_equal(send_one(p, 0, NULL), -ETIMEDOUT);
	printf("# C's link down, min_mirrors 2: %s\n", shmbus_errmsg());
	assert_errmsg_has("min_mirrors is 2");
	assert_errmsg_has("10.201.0.3:");
	assert_int_equal(mirrored(a, 0), cend);
	/* C back: both hold everything */
	tu_lab_link(l, 2, true);
	end = high(a, 0);
	wait_mirrored(a, 0, end);
	assert_int_equal(mirrored(a, 0), end);
	assert_int_equal(tu_part_high(l->root[1], "orders", 0), end);
	assert_int_equal(tu_part_high(l->root[2], "orders", 0), end);
	tu_replica_identical(l->root[0], l->root[2], "orders", 1, false);
	shmbus_producer_free(p);
	part_unmap(&b);
	part_unmap(&c);
	shmbus_close(a);
}

/* B's root on a disk filesystem, with ack = flushed. */
static int disk_setup(void **state)
{
	struct tu_lab *l;
	char dir[] = "/var/tmp/shmbus-acks-XXXXXX";

	lab2_setup(state);
	l = *state;
	if (!l->ok)
		return 0;
	if (!mkdtemp(dir)) {
		l->ok = false;
		snprintf(l->why, sizeof l->why, "no directory on a disk for the mirror's root");
		return 0;
	}
	snprintf(l->root[1], sizeof l->root[1], "%s", dir);
	tu_lab_config(l, 1, MIRROR "ack = flushed\n");
	return 0;
}

static int disk_teardown(void **state)
{
	struct tu_lab *l = *state;
	char root[300], log[320];

	snprintf(root, sizeof root, "%s", l->root[1]);
	lab_teardown(state);
	if (!strncmp(root, "/var/tmp/shmbus-acks-", 21)) {
		snprintf(log, sizeof log, "%s.shmbusd.log", root);
		unlink(log);
		snprintf(log, sizeof log, "%s.strace", root);
		unlink(log);
		tu_rmrf(root);
	}
	return 0;
}

/* strace's line for a thread: its tid, and whether it is an msync or
 * the send of an ACK (20 bytes, protocol.md §M2) */
struct traced {
	long tid;
	bool msync, ack;
};

static bool trace_line(const char *line, struct traced *t)
{
	char *end;

	t->tid = strtol(line, &end, 10);
	if (end == line)
		return false;
	t->msync = strstr(end, "msync(") || strstr(end, "msync resumed");
	/* send() shows as sendto; the link's plain sends are sendmsg */
	t->ack = (strstr(end, "sendto(") && strstr(end, ", 20, ")) ||
		 (strstr(end, "sendmsg(") && strstr(end, "iov_len=20}"));
	return t->msync || t->ack;
}

/* Each ACK in strace's output file follows an msync in its thread: the
 * ACKs seen, or -1 after one that did not. */
static int acks_after_msync(const char *file)
{
	FILE *f = fopen(file, "r");
	long tids[64] = { 0 };
	bool synced[64] = { 0 };
	char line[1024];
	int acks = 0;

	assert_non_null(f);
	while (fgets(line, sizeof line, f)) {
		struct traced t;
		int i;

		if (!trace_line(line, &t))
			continue;
		for (i = 0; i < 63 && tids[i] && tids[i] != t.tid; i++)
			;
		tids[i] = t.tid;
		if (t.ack && !synced[i]) {
			printf("# an ACK without an msync before it: %s", line);
			acks = -1;
			break;
		}
		acks += t.ack;
		synced[i] = t.msync;
	}
	fclose(f);
	return acks;
}

static void ack_flushed_syncs_before_each_ack(void **state)
{
	struct tu_lab *l = *state;
	char out[320], pid[16];
	shmbus_producer *p;
	struct part b;
	uint64_t off;
	shmbus *a;
	pid_t st;
	int acks, status;

	tu_lab_need(l);
	a = start_lab(l, 1);
	map_orders(l->root[1], 0, &b);
	assert_false(b.on_tmpfs);
	snprintf(out, sizeof out, "%s.strace", l->root[1]);
	snprintf(pid, sizeof pid, "%d", (int)l->d[1].pid);
	st = fork();
	assert_true(st >= 0);
	if (st == 0) {
		execlp("strace", "strace", "-f", "-qq", "-e", "trace=msync,sendto,sendmsg", "-o", out, "-p",
		       pid, (char *)NULL);
		_exit(127);
	}
	usleep(500000); /* attached to every thread */
	if (waitpid(st, &status, WNOHANG) == st) {
		unlink(out);
		tu_skip("strace cannot trace shmbusd here (exit %d)", WEXITSTATUS(status));
	}
	p = acks_producer(a, 5000);
	for (int i = 0; i < 20; i++) {
		assert_int_equal(send_one(p, 0, &off), 0);
		assert_true(holds(&b, off));
	}
	kill(st, SIGINT); /* strace detaches */
	assert_int_equal(waitpid(st, &status, 0), st);
	acks = acks_after_msync(out);
	printf("# ack = flushed on %s: %d ACKs, each after an msync\n", l->root[1], acks);
	assert_true(acks >= 20);
	unlink(out);
	shmbus_producer_free(p);
	part_unmap(&b);
	shmbus_close(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(nothing_to_acknowledge_is_said_at_once, solo_setup,
						solo_teardown),
		cmocka_unit_test_setup_teardown(isolation_reads_below_the_mirrored_offset_only,
						solo_setup, solo_teardown),
		cmocka_unit_test_setup_teardown(each_send_returns_once_the_mirror_holds_it,
						lab2_setup, lab_teardown),
		cmocka_unit_test_setup_teardown(a_cut_mirror_is_named_and_nothing_unmirrored_is_read,
						lab2_setup, lab_teardown),
		cmocka_unit_test_setup_teardown(two_of_two_mirrors_make_the_lower_end, lab3_setup,
						lab_teardown),
		cmocka_unit_test_setup_teardown(ack_flushed_syncs_before_each_ack, disk_setup,
						disk_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
