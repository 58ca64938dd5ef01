/*
 * peer_redis.c - Redis Streams, measured as a peer of shmbus, through
 * hiredis on the private Unix socket of a redis-server that bench/run
 * started for this run (persistence off) and will stop.
 *
 *   xadd.tput  pipelined XADD of 64-byte values (256 commands in flight,
 *              MAXLEN ~ 100000): entries appended per second
 *   xread.rtt  XADD -> XREAD BLOCK -> XADD -> XREAD BLOCK: a 64-byte entry
 *              to an echoing client and back through two streams, each
 *              client blocking in XREAD
 * The server's threads are pinned to the second CPU, away from the
 * producing client (the first); in the round trip the echoing client
 * shares the second CPU with the server, as three busy processes must on
 * two CPUs.  The server's CPU time counts as ours in the disturbance.
 */
#include "common.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MSG      64
#define PIPELINE 256

struct shared {
	_Alignas(128) int64_t t_start, t_end;
	_Alignas(128) uint64_t samples[];
};

static struct shared *sh;
static const char *sock_path;
static pid_t server;
static uint64_t warm, count, tput_count, rtt_count;
static char key[2][64];

static int own_opt(int argc, char **argv, int *i)
{
	if (*i + 1 >= argc)
		return 0;
	if (!strcmp(argv[*i], "--socket")) {
		sock_path = argv[++*i];
		return 1;
	}
	if (!strcmp(argv[*i], "--server-pid")) {
		server = (pid_t)atoi(argv[++*i]);
		return server > 0 ? 1 : -1;
	}
	return 0;
}

static int connect_server(redisContext **ret)
{
	redisContext *c = redisConnectUnix(sock_path);

	if (!c || c->err) {
		workers_fail("cannot connect to redis at %s: %s", sock_path,
			     c ? c->errstr : "no memory");
		redisFree(c);
		return -1;
	}
	*ret = c;
	return 0;
}

/* One command whose reply is not an error. */
static int command(redisContext *c, const char *fmt, ...)
{
	redisReply *r;
	va_list ap;
	int rc = 0;

	va_start(ap, fmt);
	r = redisvCommand(c, fmt, ap);
	va_end(ap);
	if (!r || r->type == REDIS_REPLY_ERROR)
		rc = workers_fail("redis %s: %s", fmt, r ? r->str : c->errstr);
	freeReplyObject(r);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Pipelined XADD                                                      */

static int xadd_worker(int role, void *arg)
{
	uint8_t val[MSG];
	redisContext *c = NULL;
	redisReply *r;
	int rc;

	(void)role;
	(void)arg;
	memset(val, 0x44, sizeof val);
	rc = connect_server(&c);
	if (!rc)
		rc = command(c, "DEL %s", key[0]);
	for (uint64_t seq = 0; !rc && seq < warm + count; seq += PIPELINE) {
		if (seq == warm)
			sh->t_start = mono_ns();
		for (int i = 0; i < PIPELINE; i++) {
			uint64_t s = seq + (uint64_t)i;

			memcpy(val, &s, sizeof s);
			redisAppendCommand(c, "XADD %s MAXLEN ~ 100000 * v %b", key[0], val, sizeof val);
		}
		for (int i = 0; !rc && i < PIPELINE; i++) {
			if (redisGetReply(c, (void **)&r) != REDIS_OK || r->type != REDIS_REPLY_STRING)
				rc = workers_fail("XADD: %s", r && r->type == REDIS_REPLY_ERROR ?
						  r->str : c->errstr);
			freeReplyObject(r);
		}
	}
	sh->t_end = mono_ns();
	redisFree(c);
	return rc;
}

static int run_xadd(void *arg, double *out)
{
	(void)arg;
	if (workers_run(1, B.cpu, xadd_worker, NULL, 120))
		return -1;
	out[0] = (double)count / ((double)(sh->t_end - sh->t_start) / 1e9) / 1e6;
	return 0;
}

/* ------------------------------------------------------------------ */
/* XADD -> XREAD BLOCK round trips                                     */

/* Block until the entry after *last_id arrives on stream k; check its
 * sequence number and remember its id. */
static int xread(redisContext *c, int k, char *last_id, size_t len, uint64_t want)
{
	redisReply *r = redisCommand(c, "XREAD COUNT 1 BLOCK 0 STREAMS %s %s", key[k], last_id);
	redisReply *e, *v;
	uint64_t got = ~0ULL;
	int rc = 0;

	if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 1)
		rc = workers_fail("XREAD %s: %s", key[k], r && r->str ? r->str : c->errstr);
	if (!rc) {
		e = r->element[0]->element[1]->element[0]; /* [stream, [[id, [f, v]]]] */
		v = e->element[1]->element[1];
		snprintf(last_id, len, "%s", e->element[0]->str);
		if (v->len == MSG)
			memcpy(&got, v->str, sizeof got);
		if (got != want)
			rc = workers_fail("XREAD %s: expected entry %llu", key[k],
					  (unsigned long long)want);
	}
	freeReplyObject(r);
	return rc;
}

static int rtt_worker(int role, void *arg)
{
	char last[64] = "0-0";
	uint8_t val[MSG];
	redisContext *c = NULL;
	int rc;

	(void)arg;
	memset(val, 0x44, sizeof val);
	rc = connect_server(&c);
	for (uint64_t seq = 0; !rc && seq < warm + count; seq++) {
		uint64_t t0 = measure_ticks();

		memcpy(val, &seq, sizeof seq);
		if (role == 0)
			rc = command(c, "XADD %s MAXLEN ~ 10000 * v %b", key[0], val, sizeof val);
		if (!rc)
			rc = xread(c, !role, last, sizeof last, seq);
		if (!rc && role == 1)
			rc = command(c, "XADD %s MAXLEN ~ 10000 * v %b", key[1], val, sizeof val);
		if (!rc && role == 0 && seq >= warm)
			sh->samples[seq - warm] = measure_ticks() - t0;
	}
	redisFree(c);
	return rc;
}

static int run_rtt(void *arg, double *out)
{
	static const double q[] = { 0.5, 0.9, 0.99, 0.999 };
	redisContext *c = NULL;
	int rc = connect_server(&c);

	(void)arg;
	if (!rc) {
		rc = command(c, "DEL %s %s", key[0], key[1]);
		redisFree(c);
	}
	if (rc || workers_run(2, B.cpu, rtt_worker, NULL, 120))
		return -1;
	measure_quantiles_ns(sh->samples, count, q, 4, out);
	return 0;
}

/* ------------------------------------------------------------------ */
/* The cases                                                           */

static const struct bmetric m_rate[] = { { "rate", "M msg/s", HIGHER } };
static const struct bmetric m_trip[] = { { "p50", "ns", LOWER }, { "p90", "ns", LOWER },
					 { "p99", "ns", LOWER }, { "p99.9", "ns", LOWER } };

static void server_version(char *buf, size_t len)
{
	redisContext *c = NULL;
	redisReply *r;
	char *v;

	snprintf(buf, len, "?");
	if (connect_server(&c))
		return;
	r = redisCommand(c, "INFO server");
	v = r && r->type == REDIS_REPLY_STRING ? strstr(r->str, "redis_version:") : NULL;
	if (v)
		snprintf(buf, len, "%.*s", (int)strcspn(v + 14, "\r\n"), v + 14);
	freeReplyObject(r);
	redisFree(c);
}

int main(int argc, char **argv)
{
	char note[400], ver[32];

	b_init("peer_redis", argc, argv, own_opt, " --socket PATH [--server-pid PID]");
	if (!sock_path) {
		b_skip("xadd.tput", "Redis XADD pipelined", "no --socket: no redis-server to talk to");
		b_skip("xread.rtt", "Redis XADD->XREAD round trip", "no --socket given");
		return b_exit();
	}
	tput_count = (B.quick ? 200000 : 1000000) / PIPELINE * PIPELINE;
	rtt_count = B.quick ? 3000 : 20000;
	sh = b_shared(sizeof *sh + rtt_count * sizeof(uint64_t));
	if (!sh)
		return fprintf(stderr, "peer_redis: %s\n", workers_why()), 1;
	B.extra_pid = server;
	if (server && b_pin_pid(server, B.cpu[1]))
		fprintf(stderr, "peer_redis: cannot pin redis-server %d to CPU %d\n", (int)server,
			B.cpu[1]);
	snprintf(key[0], sizeof key[0], "bench-%d-ping", (int)getpid());
	snprintf(key[1], sizeof key[1], "bench-%d-pong", (int)getpid());
	server_version(ver, sizeof ver);

	warm = tput_count / 10 / PIPELINE * PIPELINE;
	count = tput_count;
	snprintf(note, sizeof note, "redis %s (persistence off, private Unix socket, pinned to "
		 "CPU %d), hiredis client on CPU %d, %d XADDs in flight, 64-byte values; %llu "
		 "warm-up + %llu timed entries a run", ver, B.cpu[1], B.cpu[0], PIPELINE,
		 (unsigned long long)warm, (unsigned long long)count);
	b_case("xadd.tput", "Redis XADD pipelined", note, m_rate, 1, run_xadd, NULL);

	warm = rtt_count / 10;
	count = rtt_count;
	snprintf(note, sizeof note, "redis %s, clients on CPUs %d and %d (the server on CPU %d), "
		 "XADD then XREAD BLOCK each way, 64-byte values; %llu warm-up + %llu timed round "
		 "trips a run", ver, B.cpu[0], B.cpu[1], B.cpu[1], (unsigned long long)warm,
		 (unsigned long long)count);
	b_case("xread.rtt", "Redis XADD->XREAD BLOCK round trip", note, m_trip, 4, run_rtt, NULL);
	return b_exit();
}
