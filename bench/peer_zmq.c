/*
 * peer_zmq.c - ZeroMQ over ipc://, measured as a peer of shmbus.
 *
 *   pushpull.tput  PUSH -> PULL, 64-byte messages, one zmq_send each
 *                  (ZeroMQ batches them on the wire itself): messages/s
 *   pair.rtt       a 64-byte message there and back over PAIR sockets,
 *                  both sides blocking in zmq_recv
 * Each side is a process pinned to its CPU before it makes its context,
 * so the context's I/O thread shares that CPU: with two CPUs, the I/O
 * threads compete with the application threads, as they would for any
 * user of this machine (their hand-offs land in the tails).  The ipc://
 * endpoint lives in a private temporary directory, removed at the end.
 * Messages carry their sequence number in the first 8 bytes and the
 * receiver checks it; the receiver times from the last warm-up message to
 * the last message.
 */
#include "common.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#define MSG 64

struct shared {
	_Alignas(128) int64_t t_start, t_end;
	_Alignas(128) uint64_t samples[];
};

static struct shared *sh;
static char dir[4096], endpoint[4200];
static uint64_t warm, count, tput_count, rtt_count;
static const char *tmpdir = "/tmp";

static int own_opt(int argc, char **argv, int *i)
{
	if (strcmp(argv[*i], "--tmpdir") || *i + 1 >= argc)
		return 0;
	tmpdir = argv[++*i];
	return 1;
}

/* A context and one socket: bound by worker 0, connected by worker 1. */
static int zopen(int role, int type, void **ctx, void **sock)
{
	*ctx = zmq_ctx_new();
	*sock = *ctx ? zmq_socket(*ctx, type) : NULL;
	if (!*sock)
		return workers_fail("zmq socket: %s", zmq_strerror(zmq_errno()));
	if ((role == 0 ? zmq_bind : zmq_connect)(*sock, endpoint))
		return workers_fail("zmq %s %s: %s", role ? "connect" : "bind", endpoint,
				    zmq_strerror(zmq_errno()));
	return 0;
}

/* Close, waiting up to linger_ms for queued messages to be delivered. */
static void zclose(void *ctx, void *sock, int linger_ms)
{
	if (sock) {
		zmq_setsockopt(sock, ZMQ_LINGER, &linger_ms, sizeof linger_ms);
		zmq_close(sock);
	}
	if (ctx)
		zmq_ctx_term(ctx);
}

static int zsend(void *sock, const void *buf)
{
	while (zmq_send(sock, buf, MSG, 0) != MSG)
		if (zmq_errno() != EINTR)
			return workers_fail("zmq_send: %s", zmq_strerror(zmq_errno()));
	return 0;
}

/* Receive one message and check its sequence number. */
static int zrecv(void *sock, uint64_t want)
{
	uint8_t buf[MSG];
	uint64_t got;
	int n;

	while ((n = zmq_recv(sock, buf, sizeof buf, 0)) < 0)
		if (zmq_errno() != EINTR)
			return workers_fail("zmq_recv: %s", zmq_strerror(zmq_errno()));
	memcpy(&got, buf, sizeof got);
	if (n != MSG || got != want)
		return workers_fail("expected message %llu of %d bytes, got %llu of %d",
				    (unsigned long long)want, MSG, (unsigned long long)got, n);
	return 0;
}

/* ------------------------------------------------------------------ */
/* PUSH/PULL throughput                                                */

static int push_pull(int role, void *arg)
{
	uint8_t buf[MSG];
	void *ctx, *sock;
	int rc;

	(void)arg;
	memset(buf, 0x55, sizeof buf);
	rc = zopen(role, role ? ZMQ_PULL : ZMQ_PUSH, &ctx, &sock);
	for (uint64_t seq = 0; !rc && seq < warm + count; seq++) {
		if (role == 0) {
			memcpy(buf, &seq, sizeof seq);
			rc = zsend(sock, buf);
			continue;
		}
		rc = zrecv(sock, seq);
		if (seq + 1 == warm)
			sh->t_start = mono_ns();
	}
	if (role == 1)
		sh->t_end = mono_ns();
	zclose(ctx, sock, role ? 0 : 10000); /* the sender's queue must drain */
	return rc;
}

static int run_tput(void *arg, double *out)
{
	(void)arg;
	if (workers_run(2, B.cpu, push_pull, NULL, 60))
		return -1;
	out[0] = (double)count / ((double)(sh->t_end - sh->t_start) / 1e9) / 1e6;
	return 0;
}

/* ------------------------------------------------------------------ */
/* PAIR round trip                                                     */

static int pair(int role, void *arg)
{
	uint8_t buf[MSG];
	void *ctx, *sock;
	int rc;

	(void)arg;
	memset(buf, 0x55, sizeof buf);
	rc = zopen(role, ZMQ_PAIR, &ctx, &sock);
	for (uint64_t seq = 0; !rc && seq < warm + count; seq++) {
		uint64_t t0 = measure_ticks();

		memcpy(buf, &seq, sizeof seq);
		if (role == 0 && !(rc = zsend(sock, buf)))
			rc = zrecv(sock, seq);
		else if (role == 1 && !(rc = zrecv(sock, seq)))
			rc = zsend(sock, buf);
		if (!rc && role == 0 && seq >= warm)
			sh->samples[seq - warm] = measure_ticks() - t0;
	}
	zclose(ctx, sock, 0);
	return rc;
}

static int run_rtt(void *arg, double *out)
{
	static const double q[] = { 0.5, 0.9, 0.99, 0.999 };

	(void)arg;
	if (workers_run(2, B.cpu, pair, NULL, 60))
		return -1;
	measure_quantiles_ns(sh->samples, count, q, 4, out);
	return 0;
}

static const struct bmetric m_rate[] = { { "rate", "M msg/s", HIGHER } };
static const struct bmetric m_trip[] = { { "p50", "ns", LOWER }, { "p90", "ns", LOWER },
					 { "p99", "ns", LOWER }, { "p99.9", "ns", LOWER } };

int main(int argc, char **argv)
{
	char note[400];
	int major, minor, patch;

	b_init("peer_zmq", argc, argv, own_opt, " [--tmpdir DIR (default /tmp)]");
	tput_count = B.quick ? 500000 : 3000000;
	rtt_count = B.quick ? 3000 : 20000;
	sh = b_shared(sizeof *sh + rtt_count * sizeof(uint64_t));
	snprintf(dir, sizeof dir, "%s/shmbus-bench-zmq-XXXXXX", tmpdir);
	if (!sh || !mkdtemp(dir)) {
		fprintf(stderr, "peer_zmq: %s\n", sh ? strerror(errno) : workers_why());
		return 1;
	}
	snprintf(endpoint, sizeof endpoint, "ipc://%s/sock", dir);
	zmq_version(&major, &minor, &patch);

	warm = tput_count / 10;
	count = tput_count;
	snprintf(note, sizeof note, "libzmq %d.%d.%d, ipc://, PUSH on CPU %d -> PULL on CPU %d "
		 "(each context's I/O thread on its side's CPU), 64-byte messages, default HWM; "
		 "%llu warm-up + %llu timed messages a run", major, minor, patch, B.cpu[0],
		 B.cpu[1], (unsigned long long)warm, (unsigned long long)count);
	b_case("pushpull.tput", "ZeroMQ ipc PUSH/PULL", note, m_rate, 1, run_tput, NULL);

	warm = rtt_count / 10;
	count = rtt_count;
	snprintf(note, sizeof note, "libzmq %d.%d.%d, ipc://, PAIR sockets on CPUs %d and %d, "
		 "64-byte message there and back, blocking zmq_recv; %llu warm-up + %llu timed "
		 "round trips a run", major, minor, patch, B.cpu[0], B.cpu[1],
		 (unsigned long long)warm, (unsigned long long)count);
	b_case("pair.rtt", "ZeroMQ ipc PAIR round trip", note, m_trip, 4, run_rtt, NULL);

	snprintf(endpoint, sizeof endpoint, "%s/sock", dir);
	unlink(endpoint);
	if (rmdir(dir))
		fprintf(stderr, "peer_zmq: cannot remove %s: %s\n", dir, strerror(errno));
	return b_exit();
}
