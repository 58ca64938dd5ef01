/*
 * mirror_bench.c - mirroring between two shmbusd on two hosts (network
 * namespaces on one veth pair, bench/netpair.c), against a single
 * iperf3 TCP stream on the same pair, in the same run (issue #9, Speed):
 *
 *  - mirror.tput.64B, mirror.tput.64KiB: each run times iperf3 (one TCP
 *    stream, -t 2; 1 s with --quick; before the mirroring in even runs,
 *    after it in odd ones), and mirroring: host A's
 *    topic is filled with records of that value size (most of a 512 MiB
 *    ring; 128 MiB with --quick) while no mirror runs, host B's shmbusd
 *    starts on a fresh root and follows it, and the replica's end is
 *    sampled every 0.5 ms from its first record to its last.  Figures:
 *    records/s, the frames' bytes/s (what crosses the wire, DATA headers
 *    aside), the values' bytes/s, iperf3's bytes/s, and frames / iperf3.
 *  - mirror.lag.rate, mirror.lag.1M, mirror.lag.full: B follows topic
 *    "lag"; a producer thread on A (pinned to A's CPU) stamps each 64 B
 *    record with CLOCK_MONOTONIC, at 10 000 records/s (one at a time),
 *    at 1 M records/s (1000 every millisecond), or back to back in
 *    batches of 32; a consumer thread on B's replica (pinned to B's CPU, no
 *    spinning: it sleeps on the replica's futex as a reader would) takes
 *    now minus the stamp of every record: append on the source to
 *    readable on the mirror, one clock.
 *  - mirror.acks: B follows topic "acks"; a thread on A's CPU sends 2000
 *    records of 100 B one at a time, plain (acks = local) and then with
 *    acks = mirrors (docs/protocol.md §M11; A's min_mirrors is 1), and
 *    each send's round trip is taken (tests/lib/ackrtt.c): p50, p99, max
 *    of both, and the ratio of the medians.
 *  - mirror.tls.64B, mirror.tls.64KiB: the catch-up of mirror.tput.*
 *    (a ring's worth filled on A, a fresh B following it) twice in each
 *    run, with tls = off and with tls = on (ECDSA certificates made with
 *    the openssl command in the lab's directory; A's shmbusd restarted
 *    with its [mirror-listen] changed), the order alternating between
 *    runs: both rates, their ratio (the cost), and whether B's status
 *    showed the link in kernel TLS.
 *
 * Host A's shmbusd and the producer run on the first of --cpus, B's
 * shmbusd and the consumer on the second; iperf3's client and server
 * likewise.  TLS is off (the plain TCP the configuration allows
 * explicitly) but in mirror.tls.*.  Needs root and `ip netns`; without them, or without
 * iperf3, the cases skip with the reason (without iperf3 only the
 * comparison is left out).  Everything started is stopped by pid, and
 * the namespaces and roots are removed, also on SIGTERM.
 */
#include "common.h"
#include "netpair.h"
#include "../cli/measure.h"
#include "../tests/lib/ackrtt.h"

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shmbus.h"

#define PORT            9093
#define IPERF_PORT      5201
#define FRAME_HDR       48     /* format.md §3: commit word and record header */
#define LAG_VALUE       64
#define LAG_RATE        10000  /* records/s of mirror.lag.rate */
#define LAG_BATCH       32     /* records a send_batch of mirror.lag.full */
#define LAG_RING        (512ULL << 20)
#define MAX_SAMPLES     (4u << 20)
#define READY_MS        10000

struct lab {
	struct netpair n;
	char dir[512];
	char root[2][600];
	char conf[2][600];
	pid_t d[2];
	shmbus *bus[2];
	int fresh;                    /* B's roots made so far */
	bool iperf3;
	char why[1100];
};

static struct lab L = { .d = { -1, -1 } };
static const char *tmpdir = "/dev/shm";
static const char *shmbusd;
static char iperf3[PATH_MAX];      /* "" if not installed */
static volatile pid_t iperf_pids[2] = { -1, -1 };

static int own_opt(int argc, char **argv, int *i)
{
	if (*i + 1 >= argc)
		return 0;
	if (!strcmp(argv[*i], "--tmpdir"))
		tmpdir = argv[++*i];
	else if (!strcmp(argv[*i], "--shmbusd"))
		shmbusd = argv[++*i];
	else
		return 0;
	return 1;
}

/* ------------------------------------------------------------------ */
/* The two hosts                                                       */

static int remove_entry(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	remove(p);
	return 0;
}

static void rmrf(const char *dir)
{
	if (dir[0])
		nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void stop_host(int i)
{
	shmbus_close(L.bus[i]);
	L.bus[i] = NULL;
	if (L.d[i] > 0)
		netpair_stop(L.d[i], 5000);
	L.d[i] = -1;
}

static void lab_down(void)
{
	for (int i = 0; i < 2; i++) {
		stop_host(i);
		if (iperf_pids[i] > 0)
			netpair_stop(iperf_pids[i], 1000);
	}
	netpair_down(&L.n);
	rmrf(L.dir);
}

static void on_signal(int sig)
{
	/* kill what we started, by pid; then the namespaces and roots */
	for (int i = 0; i < 2; i++) {
		if (L.d[i] > 0)
			kill(L.d[i], SIGKILL);
		if (iperf_pids[i] > 0)
			kill(iperf_pids[i], SIGKILL);
	}
	netpair_down(&L.n);
	rmrf(L.dir);
	_exit(128 + sig);
}

/* Write host i's configuration: its root, then `text`. */
static int configure(int i, const char *fmt, const char *arg)
{
	FILE *f = fopen(L.conf[i], "w");

	if (!f)
		return workers_fail("cannot write %s: %s", L.conf[i], strerror(errno));
	fprintf(f, "[daemon]\nroot = %s\n\n", L.root[i]);
	fprintf(f, fmt, arg);
	return fclose(f) ? workers_fail("cannot write %s", L.conf[i]) : 0;
}

/* Start host i's shmbusd on its configuration, pinned to its CPU, and
 * wait until it answers on its control socket. */
static int start_host(int i)
{
	SHMBUS_OPTS(shmbus_open_opts, oo, .root = L.root[i]);
	SHMBUS_OPTS(shmbus_daemon_status, st);
	const char *argv[] = { shmbusd, "--config", L.conf[i], NULL };
	char log[620];
	int64_t until = mono_ns() + READY_MS * 1000000LL;

	snprintf(log, sizeof log, "%s.log", L.root[i]);
	L.d[i] = netpair_spawn(&L.n, i, B.cpu[i], argv, log, NULL);
	if (L.d[i] < 0)
		return workers_fail("cannot start %s", shmbusd);
	while (mono_ns() < until) {
		if (waitpid(L.d[i], NULL, WNOHANG) == L.d[i]) {
			L.d[i] = -1;
			return workers_fail("shmbusd of host %c exited at start; see %s", 'A' + i, log);
		}
		if (!L.bus[i] && shmbus_open(&oo, &L.bus[i]) < 0)
			L.bus[i] = NULL;
		if (L.bus[i] && shmbus_daemon_status(L.bus[i], &st) == 0)
			return 0;
		usleep(20000);
	}
	return workers_fail("shmbusd of host %c did not answer in %d ms; see %s", 'A' + i, READY_MS,
		      log);
}

/* Host B, the mirror of `topics`, on a root of its own (fresh each
 * time: a replica starts empty). */
static int start_mirror_with(const char *topics, const char *tls)
{
	char text[2048];

	snprintf(L.root[1], sizeof L.root[1], "%s/b%d", L.dir, L.fresh++);
	if (mkdir(L.root[1], 0755) < 0)
		return workers_fail("mkdir %s: %s", L.root[1], strerror(errno));
	snprintf(text, sizeof text, "[mirror \"from-a\"]\nsource = 10.202.0.1:9093\ntopics = %s\n"
		 "%stimeout_ms = 5000\n", topics, tls);
	if (configure(1, "%s", text) < 0)
		return -1;
	return start_host(1);
}

static int start_mirror(const char *topics)
{
	return start_mirror_with(topics, "tls = off\n");
}

static void stop_mirror(void)
{
	char log[620];

	stop_host(1);
	rmrf(L.root[1]);
	snprintf(log, sizeof log, "%s.log", L.root[1]);
	unlink(log);
}

/* iperf3 on $PATH (or the usual places) into iperf3[]. */
static bool find_iperf3(void)
{
	char path[2048], *save = NULL;

	snprintf(path, sizeof path, "%s:/usr/bin:/usr/local/bin",
		 getenv("PATH") ? getenv("PATH") : "");
	for (char *d = strtok_r(path, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		snprintf(iperf3, sizeof iperf3, "%s/iperf3", d);
		if (d[0] == '/' && access(iperf3, X_OK) == 0)
			return true;
	}
	iperf3[0] = '\0';
	return false;
}

static int lab_up(void)
{
	snprintf(L.dir, sizeof L.dir, "%s/shmbus-mirror-bench-XXXXXX", tmpdir);
	if (!mkdtemp(L.dir)) {
		snprintf(L.why, sizeof L.why, "mkdtemp %s: %s", L.dir, strerror(errno));
		L.dir[0] = '\0';
		return -1;
	}
	if (netpair_up(&L.n, L.why, sizeof L.why) < 0)
		return -1;
	snprintf(L.root[0], sizeof L.root[0], "%s/a", L.dir);
	mkdir(L.root[0], 0755);
	for (int i = 0; i < 2; i++)
		snprintf(L.conf[i], sizeof L.conf[i], "%s/%c.conf", L.dir, 'a' + i);
	if (configure(0, "[mirror-listen]\naddress = 10.202.0.1:9093\ntls = off\n"
		      "timeout_ms = 5000\n%s", "") < 0 || start_host(0) < 0) {
		snprintf(L.why, sizeof L.why, "%s", workers_why());
		return -1;
	}
	L.iperf3 = find_iperf3();
	return 0;
}

/* ------------------------------------------------------------------ */
/* iperf3                                                              */

/* The receiver's bits per second in iperf3's JSON: "sum_received", then
 * its "bits_per_second". */
static double iperf_bps(const char *json)
{
	const char *p = strstr(json, "\"sum_received\"");

	p = p ? strstr(p, "\"bits_per_second\"") : NULL;
	return p ? strtod(p + strlen("\"bits_per_second\":"), NULL) : 0;
}

/* One TCP stream from A to B for `secs`: bytes/s received, or -1. */
static double iperf_run(int secs)
{
	char port[8], t[8], json[65536];
	const char *server[] = { iperf3, "-s", "-1", "-B", L.n.addr[1], "-p", port,
				 NULL };
	const char *client[] = { iperf3, "-c", L.n.addr[1], "-p", port, "-t", t,
				 "-J", NULL };
	double bps = 0;

	snprintf(port, sizeof port, "%d", IPERF_PORT);
	snprintf(t, sizeof t, "%d", secs);
	iperf_pids[1] = netpair_spawn(&L.n, 1, B.cpu[1], server, NULL, NULL);
	for (int attempt = 0; attempt < 20 && bps <= 0 && iperf_pids[1] > 0; attempt++) {
		size_t len = 0;
		ssize_t k;
		int fd = -1;

		usleep(100000); /* the server binds */
		iperf_pids[0] = netpair_spawn(&L.n, 0, B.cpu[0], client, NULL, &fd);
		if (iperf_pids[0] < 0)
			break;
		while (fd >= 0 && len < sizeof json - 1 &&
		       (k = read(fd, json + len, sizeof json - 1 - len)) > 0)
			len += (size_t)k;
		json[len] = '\0';
		if (fd >= 0)
			close(fd);
		waitpid(iperf_pids[0], NULL, 0);
		iperf_pids[0] = -1;
		bps = iperf_bps(json);
	}
	netpair_stop(iperf_pids[1], 2000);
	iperf_pids[1] = -1;
	return bps > 0 ? bps / 8 : workers_fail("iperf3 gave no figure (is the server up?)");
}

/* ------------------------------------------------------------------ */
/* Throughput                                                          */

struct tput {
	size_t value;                 /* bytes of each record's value */
	uint64_t ring;
	int run;
};

static size_t frame_len(size_t value)
{
	return (FRAME_HDR + value + 7) & ~(size_t)7;
}

/* Fill A's topic with n records of t->value bytes. */
static int fill(const char *topic, const struct tput *t, uint64_t n)
{
	struct shmbus_record r[64];
	shmbus_producer *p;
	char *val = calloc(1, t->value);
	int rc = 0;

	if (!val || shmbus_producer_new(L.bus[0], topic, NULL, &p) < 0) {
		free(val);
		return workers_fail("producer on %s: %s", topic, shmbus_errmsg());
	}
	for (int i = 0; i < 64; i++)
		r[i] = (struct shmbus_record){ .value = val, .value_len = t->value };
	for (uint64_t sent = 0; sent < n && rc >= 0;) {
		size_t k = n - sent < 64 ? (size_t)(n - sent) : 64;

		memset(val, (int)(sent & 0xff), t->value < 16 ? t->value : 16);
		rc = shmbus_producer_send_batch(p, 0, r, k);
		if (rc > 0)
			sent += (uint64_t)rc;
		else
			rc = workers_fail("send_batch on %s: %s", topic, shmbus_errmsg());
	}
	shmbus_producer_free(p);
	free(val);
	return rc < 0 ? -1 : 0;
}

/* The replica's end on B, sampled until it reaches n: out[0] records/s
 * from its first record to its last. */
static int follow(const char *topic, uint64_t n, double *ret_rate)
{
	SHMBUS_OPTS(shmbus_partition_info, info);
	int64_t t0 = 0, until = mono_ns() + 60 * NS;
	uint64_t e0 = 0;

	while (mono_ns() < until) {
		int64_t now = mono_ns();

		if (shmbus_partition_info(L.bus[1], topic, 0, &info) == 0 && info.high > 0) {
			if (!t0) {
				t0 = now;
				e0 = info.high;
			}
			if (info.high >= n) {
				if (now <= t0 || n <= e0)
					return workers_fail("the transfer was too short to time "
						      "(one sample)");
				*ret_rate = (double)(n - e0) * 1e9 / (double)(now - t0);
				return 0;
			}
		}
		usleep(500);
	}
	return workers_fail("the replica of %s did not reach %llu records in 60 s (it has %llu); "
		      "see %s.log", topic, (unsigned long long)n, (unsigned long long)info.high,
		      L.root[1]);
}

static int run_tput(void *arg, double *out)
{
	SHMBUS_OPTS(shmbus_topic_opts, o, .partitions = 1);
	struct tput *t = arg;
	size_t flen = frame_len(t->value);
	uint64_t n = t->ring / 100 * 85 / flen;
	char topic[64];
	double rate = 0, iperf = 0;
	int rc;

	/* iperf3 before the mirror in even runs, after it in odd ones: a
	 * disturbance that comes and goes does not favour one of them */
	if (L.iperf3 && t->run % 2 == 0 && (iperf = iperf_run(B.quick ? 1 : 2)) < 0)
		return -1;
	snprintf(topic, sizeof topic, "tput%zu-%d", t->value, t->run++);
	o.capacity = t->ring;
	if (shmbus_topic_create(L.bus[0], topic, &o) < 0)
		return workers_fail("cannot create %s on host A: %s", topic, shmbus_errmsg());
	rc = fill(topic, t, n);
	if (rc == 0)
		rc = start_mirror(topic);
	if (rc == 0)
		rc = follow(topic, n, &rate);
	stop_mirror();
	shmbus_topic_delete(L.bus[0], topic);
	if (rc)
		return -1;
	if (L.iperf3 && t->run % 2 == 0 && (iperf = iperf_run(B.quick ? 1 : 2)) < 0)
		return -1;
	out[0] = rate / 1e6;
	out[1] = rate * (double)flen / 1e9;
	out[2] = rate * (double)t->value / 1e9;
	if (L.iperf3) {
		out[3] = iperf / 1e9;
		out[4] = out[1] / out[3];
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Lag                                                                 */

struct lag {
	int rate;                     /* records/s; 0: back to back */
	int burst;                    /* records sent together at that rate */
	double secs;
	volatile bool done;           /* the producer has sent its last */
	uint64_t sent, got, lost;
	uint64_t *samples;            /* ns */
	size_t n;
	int64_t t_first, t_last;      /* the producer's */
	char why[200];
};

struct stamp {
	uint64_t seq;
	int64_t sent_ns;
	char pad[LAG_VALUE - 16];
};

static void *lag_producer(void *arg)
{
	struct lag *g = arg;
	struct stamp s[LAG_BATCH] = { { 0 } };
	struct shmbus_record r[LAG_BATCH];
	shmbus_producer *p;
	uint64_t limit = LAG_RING / 2 / frame_len(LAG_VALUE);
	int64_t t0, end;

	workers_pin(B.cpu[0]);
	if (shmbus_producer_new(L.bus[0], "lag", NULL, &p) < 0) {
		snprintf(g->why, sizeof g->why, "producer: %s", shmbus_errmsg());
		g->done = true;
		return NULL;
	}
	for (int i = 0; i < LAG_BATCH; i++)
		r[i] = (struct shmbus_record){ .value = &s[i], .value_len = sizeof s[i] };
	t0 = mono_ns();
	end = t0 + (int64_t)(g->secs * 1e9);
	g->t_first = t0;
	while (mono_ns() < end && g->sent < limit) {
		uint64_t burst_end = g->sent + (uint64_t)(g->rate ? g->burst : LAG_BATCH);
		int64_t now;

		if (g->rate) {
			int64_t due = t0 + (int64_t)(g->sent * 1000000000ULL / (uint64_t)g->rate);

			while ((now = mono_ns()) < due)
				if (due - now > 60000)
					usleep((useconds_t)((due - now - 50000) / 1000));
		}
		now = mono_ns();
		while (g->sent < burst_end) {
			size_t k = burst_end - g->sent < LAG_BATCH ? burst_end - g->sent : LAG_BATCH;

			for (size_t i = 0; i < k; i++)
				s[i] = (struct stamp){ .seq = g->sent + i, .sent_ns = now };
			if (shmbus_producer_send_batch(p, 0, r, k) != (int)k) {
				snprintf(g->why, sizeof g->why, "send: %s", shmbus_errmsg());
				goto out;
			}
			g->sent += k;
		}
	}
out:
	g->t_last = mono_ns();
	shmbus_producer_free(p);
	__atomic_store_n(&g->done, true, __ATOMIC_RELEASE);
	return NULL;
}

/* Read B's replica from its end until every record sent came, or 10 s
 * after the producer stopped. */
static void *lag_consumer(void *arg)
{
	SHMBUS_OPTS(shmbus_consumer_opts, o, .spin_us = -1);
	struct lag *g = arg;
	struct shmbus_message m[256];
	shmbus_consumer *c = NULL;
	size_t every = 1;
	int64_t give_up = 0;

	workers_pin(B.cpu[1]);
	if (shmbus_consumer_new(L.bus[1], &o, &c) < 0 ||
	    shmbus_consumer_assign(c, "lag", 0, SHMBUS_OFFSET_END) < 0) {
		snprintf(g->why, sizeof g->why, "consumer: %s", shmbus_errmsg());
		shmbus_consumer_free(c);
		return NULL;
	}
	if (!g->rate)
		every = 1 + (size_t)(g->secs * 20e6 / MAX_SAMPLES); /* keep under the array */
	__atomic_store_n(&g->got, 0, __ATOMIC_RELEASE);
	for (;;) {
		int n = shmbus_consumer_poll(c, m, 256, 100);
		int64_t now = mono_ns();

		for (int i = 0; i < n; i++) {
			struct stamp s;

			if (m[i].value_len != sizeof s)
				continue;
			memcpy(&s, m[i].value, sizeof s);
			if (s.seq % every == 0 && g->n < MAX_SAMPLES)
				g->samples[g->n++] = (uint64_t)(now - s.sent_ns);
			g->got++;
		}
		if (n < 0) {
			snprintf(g->why, sizeof g->why, "poll: %s", shmbus_errmsg());
			break;
		}
		if (__atomic_load_n(&g->done, __ATOMIC_ACQUIRE)) {
			if (g->got >= g->sent)
				break;
			if (!give_up)
				give_up = now + 10 * NS;
			else if (now > give_up)
				break;
		}
	}
	shmbus_consumer_free(c);
	return NULL;
}

static int run_lag(void *arg, double *out)
{
	static const double q[] = { 0.5, 0.99, 1.0 };
	struct lag *g = arg;
	pthread_t pt, ct;
	double v[3];

	g->sent = g->got = 0;
	g->n = 0;
	g->done = false;
	g->why[0] = '\0';
	if (pthread_create(&ct, NULL, lag_consumer, g))
		return workers_fail("no thread");
	usleep(50000); /* the consumer is placed at the end */
	if (pthread_create(&pt, NULL, lag_producer, g)) {
		g->done = true;
		pthread_join(ct, NULL);
		return workers_fail("no thread");
	}
	pthread_join(pt, NULL);
	pthread_join(ct, NULL);
	if (g->why[0])
		return workers_fail("%s", g->why);
	if (g->got < g->sent || g->n == 0)
		return workers_fail("the mirror delivered %llu of %llu records within 10 s of the last",
			      (unsigned long long)g->got, (unsigned long long)g->sent);
	measure_quantiles(g->samples, g->n, q, 3, v); /* ns, not ticks */
	out[0] = v[0] / 1e3;
	out[1] = v[1] / 1e3;
	out[2] = v[2] / 1e3;
	out[3] = (double)g->sent * 1e3 / (double)(g->t_last - g->t_first);
	return 0;
}

/* ------------------------------------------------------------------ */
/* The cases                                                           */

static void tput_cases(void)
{
	static const struct bmetric m[] = {
		{ "rate", "M rec/s", HIGHER }, { "wire", "GB/s", HIGHER },
		{ "values", "GB/s", HIGHER }, { "iperf3", "GB/s", HIGHER },
		{ "wire/iperf3", "x", HIGHER },
	};
	static const size_t sizes[] = { 64, 65536 };

	for (size_t i = 0; i < 2; i++) {
		struct tput t = { .value = sizes[i], .ring = B.quick ? 128ULL << 20 : 512ULL << 20 };
		char id[32], title[96], note[400];

		snprintf(id, sizeof id, "mirror.tput.%s", i ? "64KiB" : "64B");
		snprintf(title, sizeof title, "mirroring throughput, %s records, vs iperf3",
			 i ? "64 KiB" : "64 B");
		snprintf(note, sizeof note, "%llu MiB of records (85%% of the ring) filled on A "
			 "before B's shmbusd starts on a fresh root; timed from the replica's first "
			 "record to its last (sampled every 0.5 ms); wire = frame bytes/s; iperf3: "
			 "one TCP stream over the same veth pair in the same run; TLS off",
			 (unsigned long long)(t.ring >> 20) * 85 / 100);
		b_case(id, title, note, m, L.iperf3 ? 5 : 3, run_tput, &t);
	}
	if (!L.iperf3)
		b_skip("mirror.iperf3", "iperf3 on the same veth pair",
		       "iperf3 is not installed (Debian iperf3; bench/deps installs it as root): "
		       "the comparison is left out");
}

static void lag_cases(void)
{
	static const struct bmetric m[] = {
		{ "p50", "us", LOWER }, { "p99", "us", LOWER }, { "max", "us", LOWER },
		{ "rate", "M rec/s", HIGHER },
	};
	SHMBUS_OPTS(shmbus_topic_opts, o, .partitions = 1, .capacity = LAG_RING);
	SHMBUS_OPTS(shmbus_partition_info, info);
	struct lag g = { .rate = LAG_RATE, .burst = 1, .secs = B.quick ? 1 : 2 };

	if (!b_selected("mirror.lag.rate") && !b_selected("mirror.lag.1M") &&
	    !b_selected("mirror.lag.full"))
		return;
	g.samples = malloc(MAX_SAMPLES * sizeof *g.samples);
	if (!g.samples || shmbus_topic_create(L.bus[0], "lag", &o) < 0 || start_mirror("lag") < 0) {
		b_skip("mirror.lag.*", "mirroring lag", workers_why()[0] ? workers_why() : shmbus_errmsg());
		free(g.samples);
		return;
	}
	for (int i = 0; i < 500 && shmbus_partition_info(L.bus[1], "lag", 0, &info) < 0; i++)
		usleep(10000); /* B made its replica */
	b_case("mirror.lag.rate", "mirroring lag at 10 000 records/s, 64 B",
	       "append on A (CLOCK_MONOTONIC in the record) to read from B's replica by a "
	       "consumer sleeping on its futex; every record", m, 4, run_lag, &g);
	g.rate = 1000000;
	g.burst = 1000;
	g.secs = B.quick ? 0.5 : 1;
	b_case("mirror.lag.1M", "mirroring lag at 1 M records/s, 64 B",
	       "as mirror.lag.rate, 1000 records (batches of 32) every millisecond",
	       m, 4, run_lag, &g);
	g.rate = 0;
	g.secs = B.quick ? 0.5 : 1;
	b_case("mirror.lag.full", "mirroring lag at full rate, 64 B",
	       "as mirror.lag.rate, the producer sending back to back in batches of 32 (rate: "
	       "what it reached); a mirror slower than the producer shows its queue here",
	       m, 4, run_lag, &g);
	stop_mirror();
	shmbus_topic_delete(L.bus[0], "lag");
	free(g.samples);
}

/* ------------------------------------------------------------------ */
/* acks = mirrors: a send's round trip                                 */

#define RTT_SENDS 2000
#define RTT_VALUE 100

/* B's mirror follows partition 0 of topic, as A sees it (protocol.md §M11: only then can a send be acknowledged). */
static int wait_following(const char *topic)
{
	int64_t until = mono_ns() + READY_MS * 1000000LL;

	while (mono_ns() < until) {
		struct shmbus_mirror_follower f[4] = { { .sz = sizeof f[0] } };
		int n = shmbus_mirror_followers(L.bus[0], topic, f, 4);

		for (int i = 0; i < n && i < 4; i++)
			if (!strcmp(f[i].state, "following"))
				return 0;
		usleep(10000);
	}
	return workers_fail("B's mirror did not follow %s in %d ms; see %s.log", topic, READY_MS,
			    L.root[1]);
}

/* The plain send and the acks = mirrors one, in the same run, from a
 * thread pinned to A's CPU. */
struct rtt_run {
	struct tu_rtt plain, acks;
};

static void *rtt_main(void *arg)
{
	struct rtt_run *r = arg;

	workers_pin(B.cpu[0]);
	tu_rtt_measure(L.bus[0], "acks", 0, SHMBUS_ACKS_LOCAL, RTT_SENDS, RTT_VALUE, &r->plain);
	tu_rtt_measure(L.bus[0], "acks", 0, SHMBUS_ACKS_MIRRORS, RTT_SENDS, RTT_VALUE, &r->acks);
	return NULL;
}

static int run_rtt(void *arg, double *out)
{
	struct rtt_run r;
	pthread_t t;

	(void)arg;
	if (pthread_create(&t, NULL, rtt_main, &r))
		return workers_fail("no thread");
	pthread_join(t, NULL);
	if (r.plain.err || r.acks.err)
		return workers_fail("send (%s): %s", r.plain.err ? "plain" : "acks = mirrors",
				    shmbus_strerror(r.plain.err ? r.plain.err : r.acks.err));
	out[0] = r.plain.p50_us;
	out[1] = r.plain.p99_us;
	out[2] = r.plain.max_us;
	out[3] = r.acks.p50_us;
	out[4] = r.acks.p99_us;
	out[5] = r.acks.max_us;
	out[6] = r.acks.p50_us / r.plain.p50_us;
	return 0;
}

/* An acks = mirrors producer's round trip against a plain one (issue #9,
 * Speed): B follows topic "acks" (A's min_mirrors is 1), one send at a
 * time of 100 B each. */
static void acks_mirrors_case(void)
{
	static const struct bmetric m[] = {
		{ "plain.p50", "us", LOWER }, { "plain.p99", "us", LOWER },
		{ "plain.max", "us", LOWER }, { "acks.p50", "us", LOWER },
		{ "acks.p99", "us", LOWER },  { "acks.max", "us", LOWER },
		{ "acks/plain.p50", "x", LOWER },
	};
	SHMBUS_OPTS(shmbus_topic_opts, o, .partitions = 1, .capacity = 64u << 20);

	if (!b_selected("mirror.acks"))
		return;
	if (shmbus_topic_create(L.bus[0], "acks", &o) < 0) {
		b_skip("mirror.acks", "acks = mirrors round trip vs a plain send", shmbus_errmsg());
		return;
	}
	if (start_mirror("acks") < 0 || wait_following("acks") < 0) {
		b_skip("mirror.acks", "acks = mirrors round trip vs a plain send", workers_why());
	} else {
		b_case("mirror.acks", "acks = mirrors round trip vs a plain send, 100 B",
		       "2000 sends one at a time from a thread on A's CPU, plain (acks = local) "
		       "then acks = mirrors (returns once B's ACK raised A's mirrored offset past "
		       "it; min_mirrors 1), in the same run, over the veth pair; TLS off; "
		       "CLOCK_MONOTONIC around each send (tests/lib/ackrtt.c)",
		       m, 7, run_rtt, NULL);
	}
	stop_mirror();
	shmbus_topic_delete(L.bus[0], "acks");
}

/* ------------------------------------------------------------------ */
/* TLS: the catch-up again, encrypted                                  */

/* A CA, and a certificate for each host signed by it, made with the
 * openssl command in the lab's directory (as tests/test_mirror_tls.c
 * does).  A's names its address, which B's default `allow` checks. */
static const char mk_certs[] =
	"set -e\n"
	"ec='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes'\n"
	"openssl req -x509 $ec -keyout ca.key -out ca.crt -days 2 -subj /CN=bench-ca\n"
	"leaf() {\n"
	"  openssl req -new $ec -keyout $1.key -out $1.csr -subj /CN=$2\n"
	"  printf 'subjectAltName=%s\\n' \"$3\" > $1.ext\n"
	"  openssl x509 -req -in $1.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out $1.crt"
	" -days 2 -extfile $1.ext\n"
	"}\n"
	"leaf a shmbus-a IP:10.202.0.1\n"
	"leaf b shmbus-b DNS:shmbus-b\n"
	"chmod 600 *.key\n";

static int make_certs(void)
{
	char path[700], cmd[800];
	FILE *f;

	snprintf(path, sizeof path, "%s/mk-certs.sh", L.dir);
	f = fopen(path, "w");
	if (!f)
		return workers_fail("cannot write %s: %s", path, strerror(errno));
	fputs(mk_certs, f);
	if (fclose(f))
		return workers_fail("cannot write %s", path);
	snprintf(cmd, sizeof cmd, "cd '%s' && sh mk-certs.sh >/dev/null 2>&1", L.dir);
	if (system(cmd) != 0)
		return workers_fail("the openssl command (Debian openssl) could not make the "
				    "certificates in %s", L.dir);
	return 0;
}

/* Host h's TLS lines: its certificate, key and the CA. */
static void tls_lines(int h, char *buf, size_t len)
{
	snprintf(buf, len, "tls = on\ncert = %s/%c.crt\nkey = %s/%c.key\nca = %s/ca.crt\n", L.dir,
		 'a' + h, L.dir, 'a' + h, L.dir);
}

/* Host A's shmbusd again, its [mirror-listen] with TLS on or off. */
static int restart_source(bool tls)
{
	char text[1700];

	stop_host(0);
	if (tls)
		tls_lines(0, text, sizeof text);
	else
		snprintf(text, sizeof text, "tls = off\n");
	if (configure(0, "[mirror-listen]\naddress = 10.202.0.1:9093\n%s"
		      "timeout_ms = 5000\n", text) < 0)
		return -1;
	return start_host(0);
}

/* B's TLS link, as its status says ("user-space", "kTLS tx/rx", ...). */
static char link_tls[16];

static void note_link(const char *topic)
{
	struct shmbus_mirror_status st[4] = { { .sz = sizeof st[0] } };
	int n = shmbus_mirror_status(L.bus[1], st, 4);

	for (int i = 0; i < n && i < 4; i++)
		if (!strcmp(st[i].topic, topic))
			snprintf(link_tls, sizeof link_tls, "%s", st[i].tls);
}

/* One catch-up of n records of topic by a fresh B: records/s. */
static int catch_up(const char *topic, uint64_t n, bool tls, double *ret_rate)
{
	char text[1700];
	int rc;

	if (restart_source(tls) < 0)
		return -1;
	if (tls)
		tls_lines(1, text, sizeof text);
	else
		snprintf(text, sizeof text, "tls = off\n");
	rc = start_mirror_with(topic, text);
	if (rc == 0)
		rc = follow(topic, n, ret_rate);
	if (rc == 0 && tls)
		note_link(topic);
	stop_mirror();
	return rc;
}

static int run_tls(void *arg, double *out)
{
	SHMBUS_OPTS(shmbus_topic_opts, o, .partitions = 1);
	struct tput *t = arg;
	size_t flen = frame_len(t->value);
	uint64_t n = t->ring / 100 * 85 / flen;
	double rate[2] = { 0, 0 };
	bool tls_first = t->run % 2;
	char topic[64];
	int rc;

	snprintf(topic, sizeof topic, "tls%zu-%d", t->value, t->run++);
	o.capacity = t->ring;
	if (shmbus_topic_create(L.bus[0], topic, &o) < 0)
		return workers_fail("cannot create %s on host A: %s", topic, shmbus_errmsg());
	rc = fill(topic, t, n);
	/* plain first in even runs, TLS first in odd ones */
	for (int i = 0; i < 2 && rc == 0; i++) {
		bool tls = (i == 0) == tls_first;

		rc = catch_up(topic, n, tls, &rate[tls]);
	}
	if (restart_source(false) < 0)
		rc = -1;
	shmbus_topic_delete(L.bus[0], topic);
	if (rc)
		return -1;
	out[0] = rate[0] / 1e6;
	out[1] = rate[1] / 1e6;
	out[2] = rate[1] * (double)t->value / 1e9;
	out[3] = rate[0] / rate[1];
	out[4] = !strncmp(link_tls, "kTLS", 4);
	return 0;
}

/* The TLS cost (issue #9, Speed): the catch-up of mirror.tput.* with TLS
 * off and on, in the same run, and whether kernel TLS carried it. */
static void tls_case(void)
{
	static const struct bmetric m[] = {
		{ "plain", "M rec/s", HIGHER }, { "tls", "M rec/s", HIGHER },
		{ "tls.values", "GB/s", HIGHER }, { "cost", "x", LOWER },
		{ "kTLS", "1 = yes", HIGHER },
	};
	static const size_t sizes[] = { 64, 65536 };

	if (!b_selected("mirror.tls.64B") && !b_selected("mirror.tls.64KiB"))
		return;
	if (make_certs() < 0) {
		b_skip("mirror.tls.*", "mirroring throughput with TLS", workers_why());
		return;
	}
	for (size_t i = 0; i < 2; i++) {
		struct tput t = { .value = sizes[i], .ring = B.quick ? 64ULL << 20 : 256ULL << 20 };
		char id[32], title[96], note[500];

		snprintf(id, sizeof id, "mirror.tls.%s", i ? "64KiB" : "64B");
		snprintf(title, sizeof title, "mirroring throughput with TLS, %s records",
			 i ? "64 KiB" : "64 B");
		snprintf(note, sizeof note, "as mirror.tput.*: %llu MiB of records on A, then a fresh "
			 "B catches up, once with tls = off and once with tls = on (ECDSA P-256 "
			 "certificates from the openssl command, A's [mirror-listen] restarted for "
			 "each), in the same run, the order alternating; cost = plain / tls; kTLS: "
			 "1 if B's status showed the link in kernel TLS",
			 (unsigned long long)(t.ring >> 20) * 85 / 100);
		link_tls[0] = '\0';
		b_case(id, title, note, m, 5, run_tls, &t);
		fprintf(stderr, "  %s: B's link was \"%s\" (shmbus_mirror_status tls)\n", id,
			link_tls);
	}
}

int main(int argc, char **argv)
{
	char path[PATH_MAX];

	b_init("mirror_bench", argc, argv, own_opt,
	       " [--tmpdir DIR] [--shmbusd PATH (default $BUILD/shmbusd)]");
	if (!shmbusd) {
		snprintf(path, sizeof path, "%s/shmbusd", getenv("BUILD") ? getenv("BUILD") : "build");
		shmbusd = path;
	}
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	if (lab_up() < 0) {
		b_skip("mirror.*", "mirroring between two hosts", L.why);
		lab_down();
		return b_exit();
	}
	tput_cases();
	lag_cases();
	acks_mirrors_case();
	tls_case();
	lab_down();
	return b_exit();
}
