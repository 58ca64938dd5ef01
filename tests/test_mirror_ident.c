/*
 * test_mirror_ident.c - a source counts its mirrors by their mirror ids
 * (docs/protocol.md §M11, §M12), not by their addresses.
 *
 * Without root, fake mirrors on loopback against a real source shmbusd
 * with min_mirrors = 2: one mirror id connecting from 127.0.0.1 and then
 * from 127.0.0.2 while its first connection is still open counts once
 * (the first connection is closed, "replaced by a new connection from the
 * same mirror") and the mirrored offset does not move; two ids with the
 * same host name from the same address count twice (two hosts behind one
 * NAT address); two [mirror] sections of one shmbusd (one id, two links)
 * both stay; a mirror of protocol version 2 (no id) is still served,
 * answered in version 2, and the fallback is logged once.  The id file
 * is made once (mode 0644), kept across restarts, refused when damaged
 * (shmbusd does not start, naming the fix) and made anew when deleted.
 *
 * With root, real daemons in network namespaces (tests/lib/netlab.c): B
 * has a second address; its connection from the first is cut by nftables
 * and it connects again from the second before A's timeout_ms drops the
 * old one.  An acks=mirrors send B holds must not be acknowledged with
 * min_mirrors = 2 (it times out naming the mirrors that lag), and A's
 * status shows B once, under B's id; then a real second mirror, C,
 * makes it acknowledged.
 */
#include "lib/clirun.h"
#include "lib/daemonutil.h"
#include "lib/netlab.h"
#include "lib/testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../shm/mirrorproto.h"

#define WAIT_MS 20000

static void make_orders(shmbus *bus)
{
	SHMBUS_OPTS(shmbus_topic_opts, o, .partitions = 1, .capacity = 1u << 20);

	assert_int_equal(shmbus_topic_create(bus, "orders", &o), 0);
}

static void plain(shmbus *bus, int n)
{
	shmbus_producer *p;

	assert_int_equal(shmbus_producer_new(bus, "orders", NULL, &p), 0);
	for (int i = 0; i < n; i++) {
		struct shmbus_record r = { .value = "plain", .value_len = 5 };

		assert_true(shmbus_producer_send(p, 0, &r, NULL) >= 0);
	}
	shmbus_producer_free(p);
}

static uint64_t mirrored(shmbus *bus)
{
	SHMBUS_OPTS(shmbus_partition_info, info);

	assert_int_equal(shmbus_partition_info(bus, "orders", 0, &info), 0);
	return info.mirrored;
}

/* Followers of orders/0 in state "following", as the source says; the
 * first one's id and peer into id and peer (may be NULL). */
static int following(shmbus *a, char *id, char *peer)
{
	struct shmbus_mirror_follower f[16] = { { .sz = sizeof f[0] } };
	int n = shmbus_mirror_followers(a, "orders", f, 16), k = 0;

	for (int i = 0; i < n && i < 16; i++) {
		if (strcmp(f[i].state, "following") || f[i].partition != 0)
			continue;
		if (k++ == 0 && id)
			snprintf(id, 33, "%s", f[i].id);
		if (k == 1 && peer)
			snprintf(peer, 96, "%s", f[i].peer);
	}
	return k;
}

/* ------------------------------------------------------------------ */
/* Fake mirrors on loopback                                            */

struct env {
	char *dir;
	char root[300], conf[320];
	int port;
	struct tu_daemon d;
	shmbus *bus;
};

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof *e);
	FILE *f;

	e->dir = tu_tmpdir("mirror-ident");
	snprintf(e->root, sizeof e->root, "%s/root", e->dir);
	snprintf(e->conf, sizeof e->conf, "%s/a.conf", e->dir);
	e->port = tu_free_port();
	f = fopen(e->conf, "w");
	assert_non_null(f);
	fprintf(f, "[daemon]\nroot = %s\n[mirror-listen]\naddress = 0.0.0.0:%d\ntls = off\n"
		"timeout_ms = 10000\nmin_mirrors = 2\n", e->root, e->port);
	fclose(f);
	assert_int_equal(tu_daemon_start_config(&e->d, e->root, e->conf, NULL, 10000), 0);
	e->bus = tu_open(e->root);
	make_orders(e->bus);
	plain(e->bus, 10);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;

	shmbus_close(e->bus);
	if (e->d.pid > 0)
		tu_daemon_stop(&e->d, 10000);
	tu_rmrf(e->dir);
	free(e->dir);
	free(e);
	return 0;
}

/* A TCP connection to the source from 127.0.0.`from`. */
static int dial_from(struct env *e, int from)
{
	struct sockaddr_in me = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(0x7f000000u | (uint32_t)from) };
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)e->port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&me, sizeof me), 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	return fd;
}

static void send_msg(int fd, const struct mp_msg *m)
{
	uint8_t buf[MP_CTL_MAX];
	size_t n = mp_encode(m, buf, sizeof buf);

	assert_true(n > 0);
	assert_int_equal(send(fd, buf, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* The next message from the source (skipping none), within 3 s. */
static void recv_msg(int fd, struct mp_msg *m)
{
	static uint8_t buf[1 << 16];
	size_t got = 0;
	uint32_t len = 0;
	uint16_t type;

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t k;

		if (got >= MP_HDR_SIZE &&
		    mp_peek(buf, got, MP_FROM_SOURCE, sizeof buf, &len, &type) == 0 && len <= got)
			break;
		assert_true(poll(&p, 1, 3000) > 0);
		k = recv(fd, buf + got, got < MP_HDR_SIZE ? MP_HDR_SIZE - got : len - got, 0);
		assert_true(k > 0);
		got += (size_t)k;
	}
	assert_int_equal(mp_decode(buf, len, MP_FROM_SOURCE, m), 0);
}

/* HELLO as mirror `id` (0: protocol version 2, no id) named "fake-host",
 * then FETCH orders/0 from 10, the source's end: the mirror holds 0..9.
 * The version HELLO_OK answered with into *ret_version. */
static int fake_link(struct env *e, int from, uint8_t id, const char *link,
		     uint16_t *ret_version)
{
	struct mp_msg m = { .type = MP_HELLO, .u.hello = { .version = id ? MP_VERSION : 2 } };
	int fd = dial_from(e, from);

	snprintf(m.u.hello.host, sizeof m.u.hello.host, "fake-host");
	memset(m.u.hello.id, id, sizeof m.u.hello.id);
	snprintf(m.u.hello.link, sizeof m.u.hello.link, "%s", link);
	send_msg(fd, &m);
	recv_msg(fd, &m);
	assert_int_equal(m.type, MP_HELLO_OK);
	if (ret_version)
		*ret_version = m.u.hello.version;
	m = (struct mp_msg){ .type = MP_FETCH, .u.fetch = { .id = 0, .partition = 0, .from = 10 } };
	snprintf(m.u.fetch.name, sizeof m.u.fetch.name, "orders");
	send_msg(fd, &m);
	recv_msg(fd, &m);
	assert_int_equal(m.type, MP_EPOCHS);
	return fd;
}

static int fake_mirror(struct env *e, int from, uint8_t id, uint16_t *ret_version)
{
	return fake_link(e, from, id, "from-a", ret_version);
}

/* The source closed fd within ms (what it sent first is dropped). */
static bool closed_within(int fd, int ms)
{
	int64_t until = tu_ms() + ms;
	char buf[4096];

	while (tu_ms() < until) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		if (poll(&p, 1, 50) > 0 && recv(fd, buf, sizeof buf, 0) <= 0)
			return true;
	}
	return false;
}

static void wait_following(struct env *e, int n)
{
	int64_t until = tu_ms() + 5000;

	while (following(e->bus, NULL, NULL) != n) {
		if (tu_ms() > until)
			fail_msg("the source shows %d followers of orders/0, not %d",
				 following(e->bus, NULL, NULL), n);
		usleep(10000);
	}
}

static void one_id_from_two_addresses_counts_once(void **state)
{
	struct env *e = *state;
	char id[33], peer[96];
	int first, second, other;

	first = fake_mirror(e, 1, 0x11, NULL);
	wait_following(e, 1);
	/* the same mirror from another address; its first connection is open */
	second = fake_mirror(e, 2, 0x11, NULL);
	usleep(200000);
	assert_int_equal(mirrored(e->bus), 0);
	assert_true(closed_within(first, 3000));
	assert_true(tu_daemon_log_has(&e->d, "replaced by a new connection from the same mirror",
				      3000));
	wait_following(e, 1);
	assert_int_equal(following(e->bus, id, peer), 1);
	assert_string_equal(id, "11111111111111111111111111111111");
	assert_true(!strncmp(peer, "127.0.0.2:", 10));
	assert_int_equal(mirrored(e->bus), 0);
	/* another host of the same name behind the same address: a second
	 * mirror, and 0..9 are held by two */
	other = fake_mirror(e, 2, 0x22, NULL);
	wait_following(e, 2);
	assert_int_equal(mirrored(e->bus), 10);
	close(first);
	close(second);
	close(other);
}

/* Two [mirror] sections of one shmbusd are two links of one id: neither
 * replaces the other, and on a partition both follow they count once. */
static void two_links_of_one_id_both_stay(void **state)
{
	struct env *e = *state;
	int x, y;

	x = fake_link(e, 1, 0x44, "from-a", NULL);
	wait_following(e, 1);
	y = fake_link(e, 2, 0x44, "from-a-too", NULL);
	wait_following(e, 2);
	assert_false(closed_within(x, 500));
	assert_int_equal(following(e->bus, NULL, NULL), 2);
	assert_int_equal(mirrored(e->bus), 0);
	assert_int_equal(tu_daemon_log_count(&e->d, "replaced by a new connection"), 0);
	close(x);
	close(y);
}

static void a_version_2_mirror_is_counted_by_host_and_address(void **state)
{
	struct env *e = *state;
	uint16_t version = 0;
	int a, b, c;

	a = fake_mirror(e, 1, 0, &version);
	assert_int_equal(version, 2);
	assert_true(tu_daemon_log_has(&e->d, "speaks mirroring protocol version 2, without a "
				      "mirror id", 3000));
	/* the same host name and address again: one mirror */
	b = fake_mirror(e, 1, 0, NULL);
	wait_following(e, 2);
	usleep(200000);
	assert_int_equal(mirrored(e->bus), 0);
	assert_int_equal(tu_daemon_log_count(&e->d, "without a mirror id"), 1);
	/* and a mirror with an id from that address too: counted once with
	 * them (too few mirrors only delays an acknowledgement) */
	c = fake_mirror(e, 1, 0x33, &version);
	assert_int_equal(version, MP_VERSION);
	wait_following(e, 3);
	usleep(200000);
	assert_int_equal(mirrored(e->bus), 0);
	close(a);
	close(b);
	close(c);
}

/* <root>/mirror-id: made once, the same after a restart; a damaged one
 * stops shmbusd with its path and the fix. */
static void the_mirror_id_is_made_once_and_kept(void **state)
{
	struct env *e = *state;
	char path[400], a[64] = "", b[64] = "";
	const char *const check[] = { "--config", e->conf, NULL };
	struct stat st;
	FILE *f;

	snprintf(path, sizeof path, "%s/mirror-id", e->root);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_non_null(fgets(a, sizeof a, f));
	fclose(f);
	assert_int_equal(strlen(a), 33);
	assert_int_equal(strspn(a, "0123456789abcdef"), 32);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644);
	a[32] = '\0';
	assert_true(tu_daemon_log_has(&e->d, a, 0));
	/* the same after a restart */
	assert_int_equal(tu_daemon_stop(&e->d, 10000), 0);
	assert_int_equal(tu_daemon_start_config(&e->d, e->root, e->conf, NULL, 10000), 0);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_non_null(fgets(b, sizeof b, f));
	fclose(f);
	b[32] = '\0';
	assert_string_equal(a, b);
	/* damaged: shmbusd refuses to start, naming the file and the fix */
	assert_int_equal(tu_daemon_stop(&e->d, 10000), 0);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("not an id\n", f);
	fclose(f);
	assert_int_equal(tu_daemon_spawn(&e->d, e->root, NULL, check, NULL), 0);
	assert_true(tu_daemon_wait(&e->d, 10000) > 0);
	assert_true(tu_daemon_log_has(&e->d, "mirror-id is not a mirror id", 0));
	assert_true(tu_daemon_log_has(&e->d, "delete it, and shmbusd makes a new one", 0));
	/* deleted: a new one */
	assert_int_equal(unlink(path), 0);
	assert_int_equal(tu_daemon_start_config(&e->d, e->root, e->conf, NULL, 10000), 0);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_non_null(fgets(b, sizeof b, f));
	fclose(f);
	b[32] = '\0';
	assert_string_not_equal(a, b);
}

/* ------------------------------------------------------------------ */
/* Real daemons in network namespaces                                  */

#define SOURCE "[mirror-listen]\naddress = 10.201.0.1:9093\ntls = off\ntimeout_ms = 20000\n" \
	       "min_mirrors = 2\n"
#define MIRROR "[mirror \"from-a\"]\nsource = 10.201.0.1:9093\ntopics = orders\ntls = off\n" \
	       "timeout_ms = 1000\n"

static int lab_setup(void **state)
{
	struct tu_lab *l = calloc(1, sizeof *l);

	*state = l;
	tu_lab_init(l, 3);
	if (l->ok) {
		tu_lab_config(l, 0, SOURCE);
		tu_lab_config(l, 1, MIRROR);
		tu_lab_config(l, 2, MIRROR);
	}
	return 0;
}

static int lab_teardown(void **state)
{
	tu_lab_fini(*state);
	free(*state);
	return 0;
}

/* An acks=mirrors send in a thread of its own. */
struct send {
	shmbus *bus;
	int timeout_ms;
	pthread_t t;
	int rc;
	uint64_t off;
	int64_t ms;
	char msg[1024];
};

static void *send_main(void *arg)
{
	struct send *s = arg;
	SHMBUS_OPTS(shmbus_producer_opts, o, .acks = SHMBUS_ACKS_MIRRORS,
		    .ack_timeout_ms = s->timeout_ms);
	struct shmbus_record r = { .value = "acknowledged?", .value_len = 13 };
	shmbus_producer *p;
	int64_t t0 = tu_ms();

	s->rc = shmbus_producer_new(s->bus, "orders", &o, &p);
	if (s->rc == 0) {
		s->rc = shmbus_producer_send(p, 0, &r, &s->off);
		snprintf(s->msg, sizeof s->msg, "%s", s->rc < 0 ? shmbus_errmsg() : "");
		shmbus_producer_free(p);
	}
	s->ms = tu_ms() - t0;
	return NULL;
}

static void expect_log(struct tu_lab *l, int i, const char *needle, int ms)
{
	if (tu_daemon_log_has(&l->d[i], needle, ms))
		return;
	for (int j = 0; j < l->hosts; j++)
		if (l->d[j].pid > 0)
			tu_daemon_dump(&l->d[j]);
	fail_msg("host %c's log never said \"%s\"", 'a' + i, needle);
}

/* A rule set for nft, loaded in host i's namespace. */
static void nft(struct tu_lab *l, int i, const char *rules)
{
	char path[400];
	FILE *f;

	snprintf(path, sizeof path, "%s/rules.nft", l->dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(rules, f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(tu_lab_sh(l, i, "nft -f %s", path), 0);
}

/* A says its follower of orders/0 holds offsets below `end`. */
static void wait_acked(struct tu_lab *l, shmbus *a, uint64_t end)
{
	int64_t until = tu_ms() + WAIT_MS;

	for (;;) {
		struct shmbus_mirror_follower f[4] = { { .sz = sizeof f[0] } };
		int n = shmbus_mirror_followers(a, "orders", f, 4);

		if (n >= 1 && !strcmp(f[0].state, "following") && f[0].acked == end)
			return;
		if (tu_ms() > until) {
			tu_daemon_dump(&l->d[0]);
			fail_msg("A never heard its mirror hold orders/0 up to %llu",
				 (unsigned long long)end);
		}
		usleep(5000);
	}
}

/* A host's mirror id, from its root. */
static void id_of(struct tu_lab *l, int i, char id[33])
{
	char path[400], text[64] = "";
	FILE *f;

	snprintf(path, sizeof path, "%s/mirror-id", l->root[i]);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_non_null(fgets(text, sizeof text, f));
	fclose(f);
	assert_int_equal(strlen(text), 33);
	memcpy(id, text, 32); /* without the newline */
	id[32] = '\0';
}

static void wait_peer(struct tu_lab *l, shmbus *a, const char *prefix, int n)
{
	int64_t until = tu_ms() + WAIT_MS;
	char peer[96] = "";

	while (following(a, NULL, peer) != n || strncmp(peer, prefix, strlen(prefix))) {
		if (tu_ms() > until) {
			for (int i = 0; i < l->hosts; i++)
				if (l->d[i].pid > 0)
					tu_daemon_dump(&l->d[i]);
			fail_msg("A never showed %d follower(s) of orders/0, the first from %s "
				 "(it shows %d, the first from %s)", n, prefix,
				 following(a, NULL, NULL), peer);
		}
		usleep(20000);
	}
}

static void a_mirror_from_a_second_address_is_not_a_second_mirror(void **state)
{
	struct tu_lab *l = *state;
	struct send s = { .timeout_ms = 9000 };
	char bid[33], id[33];
	shmbus *a;
	struct run r;

	tu_lab_need(l);
	if (tu_lab_sh(l, 1, "nft list tables") < 0)
		tu_skip("nft (Debian nftables) is not installed, or nftables is not in the kernel\n");
	/* B's second address (secondary: connections leave from the first) */
	assert_int_equal(tu_lab_sh(l, 1, "ip addr add 10.201.0.12/24 dev eth0"), 0);
	tu_lab_start(l, 0);
	a = tu_open(l->root[0]);
	make_orders(a);
	plain(a, 10);
	tu_lab_start(l, 1);
	wait_peer(l, a, "10.201.0.2:", 1);
	tu_lab_caught_up(l, l->root[0], l->root[1], "orders", 1, WAIT_MS);
	assert_int_equal(mirrored(a), 0); /* one mirror of the two min_mirrors asks */

	/* a send B will hold; then B's flow from its first address is cut
	 * (nothing reaches A: no FIN, no RST) and its new connections leave
	 * from the second, long before A's timeout_ms drops the old one */
	s.bus = a;
	assert_int_equal(pthread_create(&s.t, NULL, send_main, &s), 0);
	for (int i = 0; i < 2000 && tu_part_high(l->root[0], "orders", 0) < 11; i++)
		usleep(1000);
	tu_lab_caught_up(l, l->root[0], l->root[1], "orders", 1, WAIT_MS);
	assert_int_equal(tu_part_high(l->root[1], "orders", 0), 11);
	wait_acked(l, a, 11);
	nft(l, 1, "table inet shmbt {\n"
		  " chain out { type filter hook output priority 0; "
		  "ip saddr 10.201.0.2 tcp dport 9093 drop; }\n"
		  " chain in { type filter hook input priority 0; "
		  "ip daddr 10.201.0.2 tcp sport 9093 drop; }\n}\n");
	assert_int_equal(tu_lab_sh(l, 1, "ip route replace 10.201.0.0/24 dev eth0 proto kernel "
				   "scope link src 10.201.0.12"), 0);
	expect_log(l, 0, "connected from 10.201.0.12:", WAIT_MS);
	pthread_join(s.t, NULL);
	printf("# the send, B on two connections: %d after %lld ms: %s\n", s.rc,
	       (long long)s.ms, s.msg);
	/* one host holds offset 10: with min_mirrors = 2 it is not acknowledged */
	assert_int_equal(s.rc, -ETIMEDOUT);
	assert_non_null(strstr(s.msg, "only 1 of the 2 mirrors min_mirrors asks for"));
	assert_int_equal(mirrored(a), 0);
	expect_log(l, 0, "replaced by a new connection from the same mirror", 0);
	id_of(l, 1, bid);
	assert_int_equal(following(a, id, NULL), 1);
	assert_string_equal(id, bid);
	CLI(&r, l->root[0], NULL, "mirror", "status");
	expect_ok(&r, "mirror status");
	expect_contains(r.out, bid, "mirror status");
	run_free(&r);
	/* and B's own status: its id, and its source's */
	{
		struct shmbus_mirror_status m[4] = { { .sz = sizeof m[0] } };
		shmbus *b = tu_open(l->root[1]);
		char aid[33];

		assert_true(shmbus_mirror_status(b, m, 4) >= 1);
		id_of(l, 0, aid);
		assert_string_equal(m[0].id, bid);
		assert_string_equal(m[0].source_id, aid);
		shmbus_close(b);
		CLI(&r, l->root[1], NULL, "mirror", "status");
		expect_ok(&r, "mirror status on B");
		expect_contains(r.out, "this host's mirror id: ", "mirror status on B");
		expect_contains(r.out, aid, "mirror status on B");
		run_free(&r);
	}

	/* a real second mirror: now it is */
	tu_lab_start(l, 2);
	wait_peer(l, a, "10.201.0.", 2);
	s = (struct send){ .bus = a, .timeout_ms = WAIT_MS };
	send_main(&s);
	assert_int_equal(s.rc, 0);
	assert_int_equal(s.off, 11);
	assert_int_equal(mirrored(a), 12);
	id_of(l, 2, id);
	assert_string_not_equal(id, bid);
	assert_int_equal(tu_lab_sh(l, 1, "nft delete table inet shmbt"), 0);
	shmbus_close(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(one_id_from_two_addresses_counts_once, setup,
						teardown),
		cmocka_unit_test_setup_teardown(two_links_of_one_id_both_stay, setup, teardown),
		cmocka_unit_test_setup_teardown(the_mirror_id_is_made_once_and_kept, setup, teardown),
		cmocka_unit_test_setup_teardown(a_version_2_mirror_is_counted_by_host_and_address,
						setup, teardown),
		cmocka_unit_test_setup_teardown(a_mirror_from_a_second_address_is_not_a_second_mirror,
						lab_setup, lab_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
