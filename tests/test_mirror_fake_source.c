/*
 * test_mirror_fake_source.c - a mirror's shmbusd ([mirror "NAME"]) against
 * a fake source on loopback that answers HELLO, LIST and FETCH as a
 * source does (docs/protocol.md part 2), then sends DATA that is wrong:
 * a record whose value was changed after its CRC32C, a batch that does
 * not start at the replica's end, a count that does not match its
 * entries, a frame longer than the replica's largest, and a frame cut
 * short.  Each closes the connection with the reason in the mirror's log,
 * and nothing of it reaches the replica; then a good DATA of the same
 * records is appended, and the replica is byte-identical to the log the
 * frames came from.  The frames are real: records produced into a
 * partition of the test's own root, taken from its ring as a source
 * takes them.  Needs no root.
 */
#include "lib/daemonutil.h"
#include "lib/netlab.h"
#include "lib/testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../shm/epochs.h"
#include "../shm/format.h"
#include "../shm/frame.h"
#include "../shm/mirrorproto.h"
#include "../shm/partition.h"
#include "../shm/read.h"

#define RECORDS 40

struct env {
	char *dir;
	char src[300], root[300], conf[320];
	int lfd, port;
	struct tu_daemon d;
	struct part p;                 /* the log the frames come from */
	uint8_t *frames;               /* its RECORDS frames, as in its ring */
	size_t frames_len;
	int fd;                        /* the mirror's connection */
	uint8_t rx[MP_CTL_MAX * 4];
	size_t rxlen;
};

static int listen_any(int *ret_port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof sa;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	assert_true(fd >= 0);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(listen(fd, 4), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	*ret_port = ntohs(sa.sin_port);
	return fd;
}

/* RECORDS records into the source root's "orders"/0, and their frames
 * copied out of its ring back to back, as a DATA carries them. */
static void make_frames(struct env *e)
{
	SHMBUS_OPTS(shmbus_topic_opts, o, .partitions = 1, .capacity = 1u << 20);
	struct part_cursor c = { 0 };
	struct frame_view v;
	shmbus *bus = tu_open(e->src);
	shmbus_producer *pr;
	char dir[400], key[16], val[300];
	int fd;

	assert_int_equal(shmbus_topic_create(bus, "orders", &o), 0);
	assert_int_equal(shmbus_producer_new(bus, "orders", NULL, &pr), 0);
	for (int i = 0; i < RECORDS; i++) {
		struct shmbus_record r = { .key = key, .value = val };

		r.key_len = (size_t)snprintf(key, sizeof key, "k%d", i);
		r.value_len = (size_t)(i * 7 % (int)sizeof val);
		memset(val, 'a' + i % 26, r.value_len);
		assert_true(shmbus_producer_send(pr, 0, &r, NULL) >= 0);
	}
	shmbus_producer_free(pr);
	shmbus_close(bus);
	snprintf(dir, sizeof dir, "%s/topics/orders", e->src);
	fd = open(dir, O_RDONLY | O_DIRECTORY);
	assert_true(fd >= 0);
	assert_int_equal(part_open(fd, "0", true, "0", &e->p), 0);
	close(fd);
	e->frames = malloc(1u << 20);
	assert_non_null(e->frames);
	assert_int_equal(part_seek(&e->p, &c, 0), 0);
	while (part_read(&e->p, &c, &v) == 1) {
		memcpy(e->frames + e->frames_len, part_at(&e->p, v.pos), v.len);
		e->frames_len += v.len;
	}
	assert_true(e->frames_len > 0);
}

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof *e);
	FILE *f;

	*state = e;
	e->fd = -1;
	e->dir = tu_tmpdir("fake-source");
	snprintf(e->src, sizeof e->src, "%s/src", e->dir);
	snprintf(e->root, sizeof e->root, "%s/m", e->dir);
	snprintf(e->conf, sizeof e->conf, "%s/m.conf", e->dir);
	make_frames(e);
	e->lfd = listen_any(&e->port);
	f = fopen(e->conf, "w");
	assert_non_null(f);
	fprintf(f, "[daemon]\nroot = %s\n[mirror \"fake\"]\nsource = 127.0.0.1:%d\ntopics = orders\n"
		"tls = off\ntimeout_ms = 2000\n", e->root, e->port);
	fclose(f);
	assert_int_equal(tu_daemon_start_config(&e->d, e->root, e->conf, NULL, 10000), 0);
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;

	if (e->d.pid > 0)
		tu_daemon_stop(&e->d, 10000);
	if (e->fd >= 0)
		close(e->fd);
	close(e->lfd);
	part_unmap(&e->p);
	free(e->frames);
	tu_rmrf(e->dir);
	free(e->dir);
	free(e);
	return 0;
}

static void send_raw(struct env *e, const void *buf, size_t len)
{
	assert_int_equal(send(e->fd, buf, len, MSG_NOSIGNAL), (ssize_t)len);
}

static void send_msg(struct env *e, const struct mp_msg *m)
{
	uint8_t buf[MP_CTL_MAX];
	size_t n = mp_encode(m, buf, sizeof buf);

	assert_true(n > 0);
	send_raw(e, buf, n);
}

/* The mirror's next message (within 5 s). */
static void next_msg(struct env *e, struct mp_msg *m)
{
	int64_t until = tu_ms() + 5000;
	uint32_t len = 0;
	uint16_t type;

	for (;;) {
		struct pollfd p = { .fd = e->fd, .events = POLLIN };
		ssize_t k;

		if (mp_peek(e->rx, e->rxlen, MP_FROM_MIRROR, 0, &len, &type) == 0 &&
		    len <= e->rxlen)
			break;
		assert_true(tu_ms() < until);
		if (poll(&p, 1, 100) <= 0)
			continue;
		k = recv(e->fd, e->rx + e->rxlen, sizeof e->rx - e->rxlen, 0);
		assert_true(k > 0);
		e->rxlen += (size_t)k;
	}
	assert_int_equal(mp_decode(e->rx, len, MP_FROM_MIRROR, m), 0);
	memmove(e->rx, e->rx + len, e->rxlen - len);
	e->rxlen -= len;
}

/* The next message that is not an ACK (ACKs come whenever they like). */
static void next_not_ack(struct env *e, struct mp_msg *m)
{
	do
		next_msg(e, m);
	while (m->type == MP_ACK);
}

/* Accept the mirror's connection: its HELLO into *m. */
static void accept_hello(struct env *e, struct mp_msg *m)
{
	struct pollfd p = { .fd = e->lfd, .events = POLLIN };

	assert_true(poll(&p, 1, 15000) > 0);
	e->fd = accept4(e->lfd, NULL, NULL, SOCK_CLOEXEC);
	assert_true(e->fd >= 0);
	e->rxlen = 0;
	next_msg(e, m);
	assert_int_equal(m->type, MP_HELLO);
}

/* Answer a HELLO in `version`, then as a source until the FETCH: the
 * FETCH's id and from. */
static void serve_from_hello(struct env *e, uint16_t version, uint32_t *ret_id,
			     uint64_t *ret_from)
{
	struct mp_msg m, out;
	struct epoch_hist h;

	out = (struct mp_msg){ .type = MP_HELLO_OK, .u.hello = { .version = version } };
	snprintf(out.u.hello.host, sizeof out.u.hello.host, "fake-source");
	memset(out.u.hello.id, 0xa5, sizeof out.u.hello.id); /* version 3: its id */
	send_msg(e, &out);
	next_not_ack(e, &m);
	assert_int_equal(m.type, MP_LIST);
	out = (struct mp_msg){ .type = MP_TOPIC };
	snprintf(out.u.topic.name, sizeof out.u.topic.name, "orders");
	out.u.topic.topic_id = e->p.topic_id;
	out.u.topic.capacity = e->p.cap;
	out.u.topic.index_capacity = e->p.icap;
	out.u.topic.partitions = 1;
	out.u.topic.policy = e->p.policy;
	send_msg(e, &out);
	out = (struct mp_msg){ .type = MP_LIST_END, .u.list_end.count = 1 };
	send_msg(e, &out);
	next_not_ack(e, &m);
	assert_int_equal(m.type, MP_FETCH);
	assert_string_equal(m.u.fetch.name, "orders");
	*ret_id = m.u.fetch.id;
	*ret_from = m.u.fetch.from;
	assert_int_equal(part_epochs_read(&e->p, &h), 0);
	out = (struct mp_msg){ .type = MP_EPOCHS,
			       .u.epochs = { .id = m.u.fetch.id, .end = RECORDS, .hist = h } };
	send_msg(e, &out);
}

/* Accept the mirror's connection and answer as a source until its
 * FETCH: the FETCH's id and from. */
static void serve_until_fetch(struct env *e, uint32_t *ret_id, uint64_t *ret_from)
{
	struct mp_msg m;

	accept_hello(e, &m);
	assert_int_equal(m.u.hello.version, MP_VERSION);
	serve_from_hello(e, MP_VERSION, ret_id, ret_from);
}

/* A DATA of `frames` (len bytes) saying [first, next) in `count` entries. */
static void send_data(struct env *e, uint32_t id, uint32_t count, uint64_t first, uint64_t next,
		      const uint8_t *frames, size_t len)
{
	uint8_t head[MP_DATA_HEAD], trailer[MP_TRAILER];

	mp_data_head(head, id, count, first, next, RECORDS, len);
	mp_data_trailer(trailer, true);
	send_raw(e, head, sizeof head);
	send_raw(e, frames, len);
	send_raw(e, trailer, sizeof trailer);
}

/* The mirror closed its connection within 5 s. */
static void closed(struct env *e)
{
	int64_t until = tu_ms() + 5000;
	char buf[4096];

	while (tu_ms() < until) {
		struct pollfd p = { .fd = e->fd, .events = POLLIN };

		if (poll(&p, 1, 50) > 0 && recv(e->fd, buf, sizeof buf, 0) <= 0) {
			close(e->fd);
			e->fd = -1;
			return;
		}
	}
	tu_daemon_dump(&e->d);
	fail_msg("the mirror kept a connection that sent it a bad DATA");
}

static uint64_t replica_end(struct env *e)
{
	return tu_part_high(e->root, "orders", 0);
}

/* One bad DATA: the connection closes, the log says `why`, the replica
 * holds nothing new, and the daemon still runs. */
static void refused(struct env *e, uint32_t count, uint64_t first, uint64_t next,
		    const uint8_t *frames, size_t len, const char *why)
{
	int before = tu_daemon_log_count(&e->d, why);
	int64_t until;
	uint32_t id;
	uint64_t from;

	serve_until_fetch(e, &id, &from);
	assert_int_equal(from, 0);
	send_data(e, id, count, first, next, frames, len);
	closed(e);
	until = tu_ms() + 3000;
	while (tu_daemon_log_count(&e->d, why) == before && tu_ms() < until)
		usleep(20000);
	if (tu_daemon_log_count(&e->d, why) == before) {
		tu_daemon_dump(&e->d);
		fail_msg("the mirror's log does not say \"%s\" (once more)", why);
	}
	assert_int_equal(replica_end(e), 0);
	assert_int_equal(kill(e->d.pid, 0), 0);
}

static void bad_data_never_reaches_the_replica(void **state)
{
	struct env *e = *state;
	uint8_t *bad = malloc(e->frames_len + 64);
	struct frame_view v;
	struct part_cursor c = { 0 };
	uint64_t first_len;
	uint32_t id;
	uint64_t from;

	assert_non_null(bad);
	assert_int_equal(part_seek(&e->p, &c, 0), 0);
	assert_int_equal(part_read(&e->p, &c, &v), 1);
	first_len = v.len;

	/* a value changed after its CRC32C: the last byte of the first frame
	 * that holds a value byte (record 1: 7 bytes of value) */
	memcpy(bad, e->frames, e->frames_len);
	bad[first_len + FRAME_HDR_SIZE + 2] ^= 0x20;
	refused(e, RECORDS, 0, RECORDS, bad, e->frames_len, "CRC");

	/* a batch that does not start at the replica's end (0) */
	refused(e, RECORDS, 5, 5 + RECORDS, e->frames, e->frames_len, "malformed DATA");
	/* entries that do not cover what the head says */
	refused(e, RECORDS + 1, 0, RECORDS + 1, e->frames, e->frames_len, "malformed DATA");
	/* a frame cut short: the batch ends inside it */
	refused(e, RECORDS, 0, RECORDS, e->frames, e->frames_len - 8, "is refused at offset 39");
	/* a frame whose length says more than the replica's largest */
	memcpy(bad, e->frames, e->frames_len);
	{
		uint64_t w;

		memcpy(&w, bad, sizeof w);
		w = cw_make(cw_state(w), e->p.max_frame * 2, cw_off(w)); /* its length */
		memcpy(bad, &w, sizeof w);
	}
	refused(e, RECORDS, 0, RECORDS, bad, e->frames_len, "a batch from the source is refused");

	/* and the good batch is taken whole */
	serve_until_fetch(e, &id, &from);
	assert_int_equal(from, 0);
	send_data(e, id, RECORDS, 0, RECORDS, e->frames, e->frames_len);
	for (int i = 0; i < 100 && replica_end(e) != RECORDS; i++)
		usleep(20000);
	assert_int_equal(replica_end(e), RECORDS);
	tu_replica_identical(e->src, e->root, "orders", 1, false);
	free(bad);
}

/*
 * A source of protocol version 2 refuses the mirror's HELLO of 3 as such
 * a source does (protocol.md §M8): the mirror's next connection says 2,
 * without its id, and mirrors; the one after it says 3 again (the source
 * may have been upgraded).  The fallback is logged once.
 */
static void an_older_source_is_spoken_to_in_version_2(void **state)
{
	struct env *e = *state;
	struct mp_msg m, no = { .type = MP_ERROR, .u.error.code = -EPROTO };
	uint8_t zero[MP_ID_SIZE] = { 0 };
	uint32_t id;
	uint64_t from;

	accept_hello(e, &m);
	assert_int_equal(m.u.hello.version, 3);
	assert_memory_not_equal(m.u.hello.id, zero, MP_ID_SIZE);
	assert_string_equal(m.u.hello.link, "fake");
	snprintf(no.u.error.text, sizeof no.u.error.text, "this source speaks mirroring protocol "
		 "version 2 (epochs), the mirror 3: upgrade the older shmbusd");
	send_msg(e, &no);
	close(e->fd);
	e->fd = -1;

	accept_hello(e, &m);
	assert_int_equal(m.u.hello.version, 2);
	serve_from_hello(e, 2, &id, &from);
	send_data(e, id, RECORDS, 0, RECORDS, e->frames, e->frames_len);
	for (int i = 0; i < 100 && replica_end(e) != RECORDS; i++)
		usleep(20000);
	assert_int_equal(replica_end(e), RECORDS);
	tu_replica_identical(e->src, e->root, "orders", 1, false);
	assert_true(tu_daemon_log_has(&e->d, "the source speaks mirroring protocol version 2, "
				      "which has no mirror ids", 0));
	close(e->fd);
	e->fd = -1;

	accept_hello(e, &m);
	assert_int_equal(m.u.hello.version, 3);
	assert_int_equal(tu_daemon_log_count(&e->d, "which has no mirror ids"), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(bad_data_never_reaches_the_replica, setup, teardown),
		cmocka_unit_test_setup_teardown(an_older_source_is_spoken_to_in_version_2, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
