/*
 * test_mirror_peer.c - a source shmbusd ([mirror-listen] on loopback)
 * against fake mirrors that misbehave (docs/protocol.md §M1, §M3): one
 * that connects and says nothing, one that speaks another version, one
 * that sends an oversized or a malformed message, one that fetches and
 * never reads.  Each is dropped after its timeout or at once, with the
 * reason in the log, and the source goes on serving a good mirror.
 * Needs no root: TCP on 127.0.0.1.
 */
#include "lib/daemonutil.h"
#include "lib/testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../shm/mirrorproto.h"

struct env {
	char *dir;
	char root[300], conf[320];
	int port;
	struct tu_daemon d;
};

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof *e);
	FILE *f;

	e->dir = tu_tmpdir("mirror-peer");
	snprintf(e->root, sizeof e->root, "%s/root", e->dir);
	snprintf(e->conf, sizeof e->conf, "%s/a.conf", e->dir);
	e->port = tu_free_port();
	f = fopen(e->conf, "w");
	assert_non_null(f);
	fprintf(f, "[daemon]\nroot = %s\n[mirror-listen]\naddress = 127.0.0.1:%d\ntls = off\n"
		"timeout_ms = 1000\n", e->root, e->port);
	fclose(f);
	assert_int_equal(tu_daemon_start_config(&e->d, e->root, e->conf, NULL, 10000), 0);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;

	if (e->d.pid > 0)
		tu_daemon_stop(&e->d, 10000);
	tu_rmrf(e->dir);
	free(e->dir);
	free(e);
	return 0;
}

static int dial(struct env *e, int rcvbuf)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)e->port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	if (rcvbuf)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
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

static void hello(int fd, uint16_t version)
{
	struct mp_msg m = { .type = MP_HELLO, .u.hello = { .version = version } };

	snprintf(m.u.hello.host, sizeof m.u.hello.host, "fake-mirror");
	/* version 3 says who it is (protocol.md §M12) */
	memset(m.u.hello.id, 0x5a, sizeof m.u.hello.id);
	snprintf(m.u.hello.link, sizeof m.u.hello.link, "fake");
	send_msg(fd, &m);
}

/* The source closed the connection within timeout_ms (reading and
 * dropping whatever it sent first). */
static bool closed_within(int fd, int timeout_ms)
{
	int64_t until = tu_ms() + timeout_ms;
	char buf[65536];

	while (tu_ms() < until) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		if (poll(&p, 1, 50) > 0) {
			ssize_t k = recv(fd, buf, sizeof buf, 0);

			if (k <= 0)
				return true;
		}
	}
	return false;
}

static void a_silent_peer_is_dropped_after_the_timeout(void **state)
{
	struct env *e = *state;
	int fd = dial(e, 0);

	assert_true(closed_within(fd, 5000));
	assert_true(tu_daemon_log_has(&e->d, "no HELLO in time", 2000));
	close(fd);
}

/* A mirror of protocol version 1 (no epochs) is told why, in an ERROR
 * naming both versions, and dropped. */
static void another_version_is_refused(void **state)
{
	struct env *e = *state;
	int fd = dial(e, 0);
	uint8_t buf[MP_CTL_MAX];
	size_t got = 0;
	struct mp_msg m;
	uint32_t len = 0;
	uint16_t type;

	hello(fd, 1);
	while (got < sizeof buf) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t k;

		assert_true(poll(&p, 1, 3000) > 0);
		k = recv(fd, buf + got, sizeof buf - got, 0);
		assert_true(k > 0);
		got += (size_t)k;
		if (mp_peek(buf, got, MP_FROM_SOURCE, 0, &len, &type) == 0 && len <= got)
			break;
	}
	assert_int_equal(mp_decode(buf, len, MP_FROM_SOURCE, &m), 0);
	assert_int_equal(m.type, MP_ERROR);
	assert_int_equal(m.u.error.code, -EPROTO);
	assert_non_null(strstr(m.u.error.text, "version 2"));
	assert_non_null(strstr(m.u.error.text, "the mirror 1"));
	assert_true(closed_within(fd, 3000));
	assert_true(tu_daemon_log_has(&e->d, "another protocol version", 2000));
	close(fd);
}

static void oversized_and_malformed_messages_close_the_connection(void **state)
{
	struct env *e = *state;
	uint8_t big[8] = { 0, 0, 0, 0x40, MP_FETCH, 0, 0, 0 }; /* 1 GiB FETCH */
	struct mp_msg m = { .type = MP_FETCH };
	int fd = dial(e, 0);

	hello(fd, MP_VERSION);
	assert_int_equal(send(fd, big, sizeof big, MSG_NOSIGNAL), 8);
	assert_true(closed_within(fd, 3000));
	assert_true(tu_daemon_log_has(&e->d, "an oversized message", 2000));
	close(fd);

	fd = dial(e, 0);
	hello(fd, MP_VERSION);
	m.u.fetch.id = 1;
	snprintf(m.u.fetch.name, sizeof m.u.fetch.name, "orders");
	{
		uint8_t buf[MP_CTL_MAX];
		size_t n = mp_encode(&m, buf, sizeof buf);

		buf[n - 3] = '/'; /* "or/ers": not a topic name */
		assert_int_equal(send(fd, buf, n, MSG_NOSIGNAL), (ssize_t)n);
	}
	assert_true(closed_within(fd, 3000));
	assert_true(tu_daemon_log_has(&e->d, "a malformed message", 2000));
	close(fd);
}

static void a_peer_that_never_reads_is_dropped(void **state)
{
	struct env *e = *state;
	SHMBUS_OPTS(shmbus_topic_opts, o, .capacity = 32u << 20);
	struct mp_msg m = { .type = MP_FETCH };
	shmbus *bus = tu_open(e->root);
	shmbus_producer *p;
	char val[1024];
	int fd;

	memset(val, 'v', sizeof val);
	assert_int_equal(shmbus_topic_create(bus, "orders", &o), 0);
	assert_int_equal(shmbus_producer_new(bus, "orders", NULL, &p), 0);
	for (int i = 0; i < 16000; i++) {
		struct shmbus_record r = { .value = val, .value_len = sizeof val };

		assert_true(shmbus_producer_send(p, 0, &r, NULL) >= 0);
	}
	shmbus_producer_free(p);
	fd = dial(e, 4096);
	hello(fd, MP_VERSION);
	snprintf(m.u.fetch.name, sizeof m.u.fetch.name, "orders");
	send_msg(fd, &m);
	/* it acks, so it is not silent, but it never reads */
	for (int i = 0; i < 40 && !tu_daemon_log_has(&e->d, "it has not read", 0); i++) {
		struct mp_msg ack = { .type = MP_ACK };

		{
			uint8_t buf[64];
			size_t n = mp_encode(&ack, buf, sizeof buf);

			(void)!send(fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		}
		usleep(200000);
	}
	assert_true(tu_daemon_log_has(&e->d, "it has not read for timeout_ms", 0));
	/* and the source still serves: a good mirror gets HELLO_OK */
	close(fd);
	fd = dial(e, 0);
	hello(fd, MP_VERSION);
	{
		uint8_t buf[MP_CTL_MAX];
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		struct mp_msg ok;
		ssize_t k;

		assert_int_equal(poll(&pf, 1, 3000), 1);
		k = recv(fd, buf, sizeof buf, 0);
		assert_true(k > 0);
		assert_int_equal(mp_decode(buf, (size_t)k, MP_FROM_SOURCE, &ok), 0);
		assert_int_equal(ok.type, MP_HELLO_OK);
	}
	close(fd);
	shmbus_close(bus);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(a_silent_peer_is_dropped_after_the_timeout),
		T(another_version_is_refused),
		T(oversized_and_malformed_messages_close_the_connection),
		T(a_peer_that_never_reads_is_dropped),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
