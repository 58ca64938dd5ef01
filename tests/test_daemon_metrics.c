/*
 * test_daemon_metrics.c - the daemon's metrics end to end: real shmbusd
 * processes (tests/lib/daemonutil.h) started with --metrics on a free
 * port of 127.0.0.1, scraped over a real TCP socket by a small HTTP/1.1
 * client of our own, and the exposition text parsed line by line (a
 * HELP or TYPE comment, or `name{labels} value`; families contiguous and
 * typed before their samples).  Values are checked against what the test
 * did: records appended, bytes, committed offsets and lag, a sleeping
 * consumer, rates while a child produces, the claim of a killed producer
 * aborted.  Then the counters file through `shmbus status` and `shmbus
 * stats` ($SHMBUS_CLI): with the daemon running, after it was killed,
 * after it stopped, and with none ever.  A port already taken makes the
 * daemon exit non-zero with a message naming the address.
 */
#include "lib/daemonutil.h"
#include "lib/testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "../shm/mirrored.h"

#define START_MS   10000
#define IO_MS      5000
#define TOPIC      "orders"

/* ------------------------------------------------------------------ */
/* A tiny HTTP client                                                  */

struct reply {
	int status;
	char head[2048];
	char *body;
	size_t body_len;
};

static void reply_free(struct reply *r)
{
	free(r->body);
	r->body = NULL;
}

/* A port of 127.0.0.1 nobody listens on (bound once, then released). */
static int connect_to(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* Read until EOF (the request asked the server to close). */
static int read_all(int fd, char **buf, size_t *len)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	size_t cap = 65536;
	int64_t end = tu_ms() + IO_MS;

	*len = 0;
	*buf = malloc(cap + 1);
	while (*buf) {
		ssize_t n;

		if (poll(&pfd, 1, (int)(end - tu_ms())) <= 0)
			return -ETIMEDOUT;
		n = read(fd, *buf + *len, cap - *len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		*len += (size_t)n;
		if (*len == cap)
			*buf = realloc(*buf, (cap *= 2) + 1);
	}
	if (!*buf)
		return -ENOMEM;
	(*buf)[*len] = '\0';
	return 0;
}

/* METHOD path over a new connection; 0, or -errno (no test assertion:
 * threads use it too). */
static int http(int port, const char *method, const char *path, struct reply *r)
{
	char req[512], *raw, *sep;
	size_t len, hl;
	int fd = connect_to(port), rc;

	memset(r, 0, sizeof *r);
	if (fd < 0)
		return -errno;
	snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n"
		 "\r\n", method, path, port);
	if (write(fd, req, strlen(req)) != (ssize_t)strlen(req)) {
		close(fd);
		return -EIO;
	}
	rc = read_all(fd, &raw, &len);
	close(fd);
	if (rc < 0)
		return rc;
	sep = strstr(raw, "\r\n\r\n");
	if (!sep || sscanf(raw, "HTTP/1.%*d %d", &r->status) != 1) {
		free(raw);
		return -EPROTO;
	}
	hl = (size_t)(sep - raw);
	snprintf(r->head, sizeof r->head, "%.*s", (int)hl, raw);
	r->body_len = len - hl - 4;
	r->body = malloc(r->body_len + 1);
	memcpy(r->body, sep + 4, r->body_len + 1);
	free(raw);
	return 0;
}

/* ------------------------------------------------------------------ */
/* The exposition format                                               */

struct sample {
	char name[128];
	char labels[512];           /* as written, between the braces */
	double value;
};

struct expo {
	struct sample *v;
	size_t n;
	char typed[256][128];       /* families, in order of their TYPE line */
	size_t ntyped;
};

static void expo_free(struct expo *e)
{
	free(e->v);
	e->v = NULL;
}

static bool name_char(char c, bool first)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
	       (!first && c >= '0' && c <= '9');
}

/* A metric or label name at *p; advances past it. */
static bool take_name(const char **p, char *out, size_t len)
{
	size_t n = 0;

	if (!name_char(**p, true))
		return false;
	while (name_char((*p)[n], n == 0) && n + 1 < len) {
		out[n] = (*p)[n];
		n++;
	}
	out[n] = '\0';
	*p += n;
	return true;
}

/* {name="value",...}: only \\, \" and \n escapes. */
static bool take_labels(const char **p, char *out, size_t len)
{
	const char *s = *p + 1, *start = s;
	char lname[128];

	while (*s != '}') {
		if (!take_name(&s, lname, sizeof lname) || *s++ != '=' || *s++ != '"')
			return false;
		for (; *s != '"'; s++) {
			if (*s == '\n' || !*s)
				return false;
			if (*s == '\\' && s[1] != '\\' && s[1] != '"' && s[1] != 'n')
				return false;
			if (*s == '\\')
				s++;
		}
		s++;
		if (*s == ',')
			s++;
		else if (*s != '}')
			return false;
	}
	snprintf(out, len, "%.*s", (int)(s - start), start);
	*p = s + 1;
	return true;
}

static bool typed(const struct expo *e, const char *name)
{
	for (size_t i = 0; i < e->ntyped; i++)
		if (!strcmp(e->typed[i], name))
			return true;
	return false;
}

/* A comment line: # HELP name text, or # TYPE name type (once each). */
static const char *parse_comment(struct expo *e, const char *line)
{
	const char *p = line + 2;
	char name[128], type[32];

	if (!strncmp(p, "HELP ", 5)) {
		p += 5;
		return take_name(&p, name, sizeof name) && *p == ' ' && p[1] != '\n' ? NULL
										   : "bad HELP line";
	}
	if (strncmp(p, "TYPE ", 5))
		return "a comment that is neither HELP nor TYPE";
	p += 5;
	if (!take_name(&p, name, sizeof name) || sscanf(p, " %31s", type) != 1)
		return "bad TYPE line";
	if (strcmp(type, "counter") && strcmp(type, "gauge"))
		return "TYPE is not counter or gauge";
	if (typed(e, name) || e->ntyped == 256)
		return "a second TYPE line for one family";
	snprintf(e->typed[e->ntyped++], sizeof e->typed[0], "%s", name);
	return NULL;
}

static const char *parse_sample(struct expo *e, const char *line)
{
	struct sample s = { 0 };
	const char *p = line;
	char *end;

	if (!take_name(&p, s.name, sizeof s.name))
		return "a line that is not a sample";
	if (*p == '{' && !take_labels(&p, s.labels, sizeof s.labels))
		return "malformed labels";
	if (*p++ != ' ')
		return "no space before the value";
	s.value = strtod(p, &end);
	if (end == p || *end != '\n')
		return "the value is not a number";
	/* samples follow their family's TYPE, and families do not interleave */
	if (!e->ntyped || strcmp(e->typed[e->ntyped - 1], s.name))
		return "a sample outside its family (after another TYPE, or untyped)";
	e->v = realloc(e->v, (e->n + 1) * sizeof *e->v);
	e->v[e->n++] = s;
	return NULL;
}

/* Parse the whole text; fails the test naming the line. */
static void parse(const char *text, struct expo *e)
{
	const char *line = text;

	memset(e, 0, sizeof *e);
	assert_true(*text && text[strlen(text) - 1] == '\n');
	while (*line) {
		const char *nl = strchr(line, '\n'), *why;

		why = line[0] == '#' ? parse_comment(e, line) : parse_sample(e, line);
		if (why)
			fail_msg("exposition: %s: \"%.*s\"", why, (int)(nl - line), line);
		line = nl + 1;
	}
}

static const struct sample *find(const struct expo *e, const char *name, const char *labels)
{
	for (size_t i = 0; i < e->n; i++)
		if (!strcmp(e->v[i].name, name) && !strcmp(e->v[i].labels, labels ? labels : ""))
			return &e->v[i];
	return NULL;
}

static double value(const struct expo *e, const char *name, const char *labels)
{
	const struct sample *s = find(e, name, labels);

	if (!s)
		fail_msg("no sample %s{%s}", name, labels ? labels : "");
	return s->value;
}

#define P0 "topic=\"" TOPIC "\",partition=\"0\""
#define P1 "topic=\"" TOPIC "\",partition=\"1\""

/* GET /metrics, checked and parsed. */
static void scrape(int port, struct expo *e)
{
	struct reply r;
	int rc = http(port, "GET", "/metrics", &r);

	if (rc < 0)
		fail_msg("GET /metrics on port %d: %s", port, strerror(-rc));
	if (r.status != 200)
		fail_msg("GET /metrics: status %d\n%s", r.status, r.head);
	if (!strstr(r.head, "Content-Type: text/plain; version=0.0.4"))
		fail_msg("GET /metrics: Content-Type is not the text format 0.0.4:\n%s", r.head);
	parse(r.body, e);
	reply_free(&r);
}

/* Scrape until name{labels} satisfies ok (within ms). */
static double await_value(int port, const char *name, const char *labels,
			  bool (*ok)(double v, double want), double want, int ms)
{
	int64_t end = tu_ms() + ms;
	double v = -1;

	for (;;) {
		struct expo e;
		const struct sample *s;

		scrape(port, &e);
		s = find(&e, name, labels);
		v = s ? s->value : -1;
		expo_free(&e);
		if (s && ok(v, want))
			return v;
		if (tu_ms() > end)
			fail_msg("%s{%s} is %g after %d ms", name, labels, v, ms);
		usleep(20000);
	}
}

static bool at_least(double v, double want) { return v >= want; }
static bool above(double v, double want) { return v > want; }
static bool equals(double v, double want) { return v == want; }

/* ------------------------------------------------------------------ */
/* The bus and the daemon                                              */

struct env {
	char *root;
	char conf[300];
	int port;
	char addr[64];
	struct tu_daemon d;
	shmbus *bus;
};

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof *e);
	FILE *f;

	e->root = tu_tmpdir("metrics");
	snprintf(e->conf, sizeof e->conf, "%s.conf", e->root);
	f = fopen(e->conf, "w");
	if (!f)
		return -1;
	/* quick ticks, and stalled claims aborted after 300 ms */
	fprintf(f, "[daemon]\ntick_ms = 50\nunblock_timeout_ms = 300\n");
	fclose(f);
	e->bus = tu_open(e->root);
	{
		SHMBUS_OPTS(shmbus_topic_opts, o, .partitions = 2, .capacity = 1 << 20);

		if (shmbus_topic_create(e->bus, TOPIC, &o) < 0)
			return -1;
	}
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;
	char log[320];

	tu_daemon_kill(&e->d);
	shmbus_close(e->bus);
	tu_rmrf(e->root);
	unlink(e->conf);
	snprintf(log, sizeof log, "%s.shmbusd.log", e->root);
	unlink(log);
	free(e->root);
	free(e);
	return 0;
}

/* shmbusd --config CONF --metrics 127.0.0.1:PORT on root. */
static void start_on(struct env *e, const char *root)
{
	const char *args[] = { "--config", e->conf, "--metrics", e->addr, NULL };

	e->port = tu_free_port();
	snprintf(e->addr, sizeof e->addr, "127.0.0.1:%d", e->port); /* args[3] */
	if (tu_daemon_start(&e->d, root, args, NULL, START_MS) < 0)
		fail_msg("shmbusd did not start on %s with --metrics %s", root, e->addr);
}

static void start(struct env *e)
{
	start_on(e, e->root);
}

static void produce(shmbus *bus, int32_t partition, int n, size_t size)
{
	shmbus_producer *p;
	char value[256];

	memset(value, 'v', sizeof value);
	assert_ok(shmbus_producer_new(bus, TOPIC, NULL, &p));
	for (int i = 0; i < n; i++) {
		struct shmbus_record rec = { .value = value, .value_len = size };

		assert_ok(shmbus_producer_send(p, partition, &rec, NULL));
	}
	shmbus_producer_free(p);
}

static void commit(shmbus *bus, const char *group, int32_t partition, uint64_t offset)
{
	SHMBUS_OPTS(shmbus_consumer_opts, o, .group = group);
	shmbus_consumer *c;

	assert_ok(shmbus_consumer_new(bus, &o, &c));
	assert_ok(shmbus_consumer_assign(c, TOPIC, partition, 0));
	assert_ok(shmbus_consumer_commit_offset(c, TOPIC, partition, offset));
	shmbus_consumer_free(c);
}

/* ------------------------------------------------------------------ */
/* Values                                                              */

static void test_values(void **state)
{
	struct env *e = *state;
	SHMBUS_OPTS(shmbus_partition_info, pi);
	char info[512];
	struct expo x;

	start(e);
	produce(e->bus, 0, 100, 40);
	produce(e->bus, 1, 7, 200);
	commit(e->bus, "billing", 0, 30);
	commit(e->bus, "audit", 1, 7);
	assert_ok(shmbus_partition_info(e->bus, TOPIC, 0, &pi));
	{
		/* as a source's shmbusd does when its mirrors acknowledge */
		char dir[400];
		struct part p;
		int fd;

		snprintf(dir, sizeof dir, "%s/topics/" TOPIC, e->root);
		fd = open(dir, O_RDONLY | O_DIRECTORY);
		assert_int_equal(part_open(fd, "0", false, "0", &p), 0);
		close(fd);
		assert_int_equal(part_mirrored_raise(&p, 60), 60);
		part_unmap(&p);
	}
	scrape(e->port, &x);

	assert_true(value(&x, "shmbus_partition_end_offset", P0) == 100);
	assert_true(value(&x, "shmbus_partition_records_appended_total", P0) == 100);
	assert_true(value(&x, "shmbus_partition_start_offset", P0) == 0);
	assert_true(value(&x, "shmbus_partition_records", P0) == 100);
	assert_true(value(&x, "shmbus_partition_mirrored_offset", P0) == 60);
	assert_true(value(&x, "shmbus_partition_mirrored_offset", P1) == 0);
	assert_true(value(&x, "shmbus_partition_appended_bytes_total", P0) == (double)pi.tail);
	assert_true(value(&x, "shmbus_partition_capacity_bytes", P0) == 1 << 20);
	assert_true(value(&x, "shmbus_partition_end_offset", P1) == 7);
	assert_true(value(&x, "shmbus_partition_aborted_claims_total", P0) == 0);
	assert_true(value(&x, "shmbus_partition_lapped_reads_total", P1) == 0);
	assert_true(value(&x, "shmbus_partition_backpressure_blocks_total", P1) == 0);
	assert_true(value(&x, "shmbus_partition_recoveries_total", P0) == 1); /* at start-up */
	assert_true(value(&x, "shmbus_partition_registered_consumers", P0) == 0);
	assert_true(value(&x, "shmbus_partition_waiters", P0) == 0);

	assert_true(value(&x, "shmbus_group_committed_offset",
			  "group=\"billing\",topic=\"" TOPIC "\",partition=\"0\"") == 30);
	assert_true(value(&x, "shmbus_group_lag_records",
			  "group=\"billing\",topic=\"" TOPIC "\",partition=\"0\"") == 70);
	assert_true(value(&x, "shmbus_group_lag_records",
			  "group=\"audit\",topic=\"" TOPIC "\",partition=\"1\"") == 0);

	assert_true(value(&x, "shmbus_daemon_up", NULL) == 1);
	assert_true(value(&x, "shmbus_daemon_partitions", NULL) == 2);
	assert_true(value(&x, "shmbus_daemon_uptime_seconds", NULL) >= 0);
	assert_true(value(&x, "shmbus_daemon_heartbeat_age_seconds", NULL) < 2);
	assert_true(value(&x, "shmbus_daemon_recovery_recovered_total", NULL) == 2);
	assert_true(value(&x, "shmbus_daemon_flush_errors_total", NULL) == 0);
	snprintf(info, sizeof info, "version=\"1.0.0\",root=\"%s\"", e->root);
	assert_true(value(&x, "shmbus_daemon_info", info) == 1);
	expo_free(&x);

	/* the ticks go on */
	await_value(e->port, "shmbus_daemon_ticks_total", NULL, at_least, 3, 3000);
	/* more records, seen at the next scrape */
	produce(e->bus, 0, 5, 40);
	await_value(e->port, "shmbus_group_lag_records",
		    "group=\"billing\",topic=\"" TOPIC "\",partition=\"0\"", equals, 75, 1000);
}

/* A group coordinated by shmbusd: members, epoch, state, and a member lost. */
static void test_coordinated_group(void **state)
{
	struct env *e = *state;
	const char *topics[1] = { TOPIC };
	SHMBUS_OPTS(shmbus_member_opts, o, .group = "live", .topics = topics, .ntopics = 1);
	shmbus_member *m;

	start(e);
	assert_ok(shmbus_member_subscribe(e->bus, &o, &m));
	await_value(e->port, "shmbus_group_members", "group=\"live\"", equals, 1, 3000);
	await_value(e->port, "shmbus_group_state",
		    "group=\"live\",state=\"stable\",assignor=\"cooperative-sticky\"", equals, 1,
		    3000);
	await_value(e->port, "shmbus_group_epoch", "group=\"live\"", at_least, 1, 1000);
	await_value(e->port, "shmbus_group_rebalances_total", "group=\"live\"", at_least, 1, 1000);
	shmbus_member_free(m);
}

struct waiter {
	shmbus *bus;
	int got;
};

static void *sleep_in_poll(void *arg)
{
	struct waiter *w = arg;
	struct shmbus_message m;
	shmbus_consumer *c;

	if (shmbus_consumer_new(w->bus, NULL, &c) < 0)
		return NULL;
	if (shmbus_consumer_assign(c, TOPIC, 1, SHMBUS_OFFSET_END) == 0)
		w->got = shmbus_consumer_poll(c, &m, 1, 10000);
	shmbus_consumer_free(c);
	return NULL;
}

/* A consumer asleep on partition 1 shows as a waiter until woken. */
static void test_waiters(void **state)
{
	struct env *e = *state;
	struct waiter w = { .bus = e->bus, .got = -1 };
	pthread_t t;

	start(e);
	assert_int_equal(pthread_create(&t, NULL, sleep_in_poll, &w), 0);
	await_value(e->port, "shmbus_partition_waiters", P1, equals, 1, 5000);
	produce(e->bus, 1, 1, 8);
	pthread_join(t, NULL);
	assert_int_equal(w.got, 1);
	await_value(e->port, "shmbus_partition_waiters", P1, equals, 0, 2000);
}

/* A child appends for `secs`, one record every 200 us. */
static int produce_for(void *arg)
{
	SHMBUS_OPTS(shmbus_open_opts, o, .root = arg);
	int64_t end = tu_ms() + 2500;
	shmbus_producer *p;
	shmbus *bus;

	if (shmbus_open(&o, &bus) < 0 || shmbus_producer_new(bus, TOPIC, NULL, &p) < 0)
		return 1;
	while (tu_ms() < end) {
		struct shmbus_record rec = { .value = "0123456789abcdef", .value_len = 16 };

		if (shmbus_producer_send(p, 0, &rec, NULL) < 0)
			return 2;
		usleep(200);
	}
	shmbus_producer_free(p);
	shmbus_close(bus);
	return 0;
}

static void test_rates(void **state)
{
	struct env *e = *state;
	pid_t child;

	start(e);
	await_value(e->port, "shmbus_partition_append_rate_records_per_second", P0, equals, 0, 2000);
	child = tu_fork(produce_for, e->root);
	await_value(e->port, "shmbus_partition_append_rate_records_per_second", P0, above, 0, 2000);
	await_value(e->port, "shmbus_partition_append_rate_bytes_per_second", P0, above, 64, 2000);
	assert_int_equal(tu_wait(child, 10000), 0);
	/* the producer stopped: back to zero at the next ticks */
	await_value(e->port, "shmbus_partition_append_rate_records_per_second", P0, equals, 0, 2000);
	/* and partition 1 never moved */
	await_value(e->port, "shmbus_partition_append_rate_records_per_second", P1, equals, 0, 10);
}

/* A child claims a record, tells us, and waits to be killed. */
static int claim_and_wait(void *arg)
{
	SHMBUS_OPTS(shmbus_open_opts, o, .root = ((char **)arg)[0]);
	int fd = (int)(intptr_t)((char **)arg)[1];
	struct shmbus_record meta = { 0 };
	struct shmbus_claim c;
	shmbus_producer *p;
	shmbus *bus;

	if (shmbus_open(&o, &bus) < 0 || shmbus_producer_new(bus, TOPIC, NULL, &p) < 0 ||
	    shmbus_producer_claim(p, 0, &meta, 64, &c) < 0)
		return 1;
	if (write(fd, "c", 1) != 1)
		return 2;
	pause();
	return 0;
}

static void test_aborted_claim(void **state)
{
	struct env *e = *state;
	int pfd[2];
	char ch;
	void *arg[2];
	pid_t child;

	start(e);
	produce(e->bus, 0, 10, 16);
	assert_int_equal(pipe(pfd), 0);
	arg[0] = e->root;
	arg[1] = (void *)(intptr_t)pfd[1];
	child = tu_fork(claim_and_wait, arg);
	assert_int_equal(read(pfd[0], &ch, 1), 1);
	close(pfd[0]);
	close(pfd[1]);
	kill(child, SIGKILL);
	assert_int_equal(tu_wait(child, 5000), 128 + SIGKILL);
	/* the daemon aborts the dead producer's claim (at once if it had
	 * registered, else after unblock_timeout_ms) */
	await_value(e->port, "shmbus_partition_aborted_claims_total", P0, at_least, 1, 5000);
	await_value(e->port, "shmbus_daemon_unblocked_claims_total", NULL, at_least, 1, 2000);
	await_value(e->port, "shmbus_partition_end_offset", P0, equals, 11, 10);
	/* and the partition goes on */
	produce(e->bus, 0, 1, 16);
	await_value(e->port, "shmbus_partition_records_appended_total", P0, equals, 12, 2000);
}

/* A topic deleted while the daemon runs leaves the scrape; recreated,
 * it comes back from offset 0 (a new topic id, a new rate entry). */
static void test_topic_deleted(void **state)
{
	struct env *e = *state;
	SHMBUS_OPTS(shmbus_topic_opts, o, .partitions = 1, .capacity = 1 << 16);
	const char *gone = "topic=\"gone\",partition=\"0\"";
	struct expo x;

	start(e);
	assert_ok(shmbus_topic_create(e->bus, "gone", &o));
	await_value(e->port, "shmbus_daemon_partitions", NULL, equals, 3, 3000);
	await_value(e->port, "shmbus_partition_append_rate_records_per_second", gone, equals, 0,
		    3000);
	assert_ok(shmbus_topic_delete(e->bus, "gone"));
	await_value(e->port, "shmbus_daemon_partitions", NULL, equals, 2, 3000);
	scrape(e->port, &x);
	assert_null(find(&x, "shmbus_partition_end_offset", gone));
	assert_non_null(find(&x, "shmbus_partition_end_offset", P0));
	expo_free(&x);
	assert_ok(shmbus_topic_create(e->bus, "gone", &o));
	await_value(e->port, "shmbus_partition_append_rate_records_per_second", gone, equals, 0,
		    3000);
	await_value(e->port, "shmbus_partition_end_offset", gone, equals, 0, 10);
}

/* Label values are escaped: a root whose name holds a quote and a
 * backslash. */
static void test_label_escaping(void **state)
{
	struct env *e = *state;
	char root[512], want[1100], *o = want;
	struct expo x;

	snprintf(root, sizeof root, "%s/q\"uo\\te", e->root);
	start_on(e, root);
	o += sprintf(o, "version=\"1.0.0\",root=\"");
	for (const char *c = root; *c; c++)
		o += sprintf(o, "%s%c", *c == '"' || *c == '\\' ? "\\" : "", *c);
	sprintf(o, "\"");
	scrape(e->port, &x);
	assert_true(value(&x, "shmbus_daemon_info", want) == 1);
	expo_free(&x);
}

/* ------------------------------------------------------------------ */
/* HTTP                                                                */

static void expect_status(int port, const char *method, const char *path, int status)
{
	struct reply r;
	int rc = http(port, method, path, &r);

	if (rc < 0)
		fail_msg("%s %s: %s", method, path, strerror(-rc));
	if (r.status != status)
		fail_msg("%s %s: status %d, expected %d", method, path, r.status, status);
	reply_free(&r);
}

static void test_paths(void **state)
{
	struct env *e = *state;

	start(e);
	expect_status(e->port, "GET", "/", 404);
	expect_status(e->port, "GET", "/metric", 404);
	expect_status(e->port, "GET", "/metrics/x", 404);
	expect_status(e->port, "GET", "/metrics?name=x", 200); /* a query is not the path */
	expect_status(e->port, "HEAD", "/metrics", 200);
	expect_status(e->port, "POST", "/metrics", 405);
	expect_status(e->port, "DELETE", "/metrics", 405);
	expect_status(e->port, "GET", "/metrics", 200);
}

struct scraper {
	int port;
	int ok, failed;
};

static void *scrape_many(void *arg)
{
	struct scraper *s = arg;

	for (int i = 0; i < 25; i++) {
		struct reply r;

		if (http(s->port, "GET", "/metrics", &r) == 0 && r.status == 200 &&
		    strstr(r.body, "shmbus_daemon_up 1\n") &&
		    strstr(r.body, "shmbus_partition_end_offset{" P0 "}"))
			s->ok++;
		else
			s->failed++;
		reply_free(&r);
	}
	return NULL;
}

/* Eight clients at once, while records are appended: every scrape whole. */
static void test_concurrent_scrapes(void **state)
{
	struct env *e = *state;
	struct scraper s[8];
	pthread_t t[8];
	struct expo x;

	start(e);
	for (int i = 0; i < 8; i++) {
		s[i] = (struct scraper){ .port = e->port };
		assert_int_equal(pthread_create(&t[i], NULL, scrape_many, &s[i]), 0);
	}
	produce(e->bus, 0, 2000, 32);
	for (int i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(s[i].failed, 0);
		assert_int_equal(s[i].ok, 25);
	}
	assert_int_equal(kill(e->d.pid, 0), 0);
	scrape(e->port, &x);
	assert_true(value(&x, "shmbus_partition_end_offset", P0) == 2000);
	expo_free(&x);
}

/* A port already taken: the daemon says so and exits non-zero. */
static void test_bind_failure(void **state)
{
	struct env *e = *state;
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof sa;
	const char *bad[] = { "--metrics", "nonsense", NULL };
	char addr[64], want[128], log[320];
	const char *args[] = { "--metrics", addr, NULL };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(listen(fd, 1), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	snprintf(addr, sizeof addr, "127.0.0.1:%d", ntohs(sa.sin_port));
	snprintf(log, sizeof log, "%s.shmbusd.log", e->root);

	assert_int_equal(tu_daemon_spawn(&e->d, e->root, log, args, NULL), 0);
	assert_int_equal(tu_daemon_wait(&e->d, START_MS), 1);
	snprintf(want, sizeof want, "cannot serve metrics on %s: Address already in use", addr);
	if (!tu_daemon_log_has(&e->d, want, 0) || !tu_daemon_log_has(&e->d, "--metrics ADDR:PORT", 0)) {
		tu_daemon_dump(&e->d);
		fail_msg("no line \"%s\" naming the fix in the log", want);
	}
	tu_daemon_kill(&e->d);
	close(fd);

	/* not an address at all: a configuration error (exit 2), found before start */
	assert_int_equal(tu_daemon_spawn(&e->d, e->root, log, bad, NULL), 0);
	assert_int_equal(tu_daemon_wait(&e->d, START_MS), 2);
	assert_true(tu_daemon_log_has(&e->d, "\"nonsense\" is not ADDR:PORT", 0));
}

/* ------------------------------------------------------------------ */
/* The counters file through the command                              */

static const char *cli_path(void)
{
	const char *p = getenv("SHMBUS_CLI");

	return p && *p ? p : "build/shmbus";
}

/* shmbus --root ROOT args...: exit status, with stdout and stderr in out. */
static int run_cli(const char *root, const char *const *args, char *out, size_t len)
{
	const char *argv[16] = { cli_path(), "--root", root };
	int p[2], n = 3, status;
	size_t got = 0;
	pid_t pid;

	for (; *args && n < 15; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		dup2(p[1], 1);
		dup2(p[1], 2);
		execv(argv[0], (char *const *)(uintptr_t)argv);
		_exit(127);
	}
	close(p[1]);
	for (ssize_t r; got + 1 < len && (r = read(p[0], out + got, len - got - 1)) > 0;)
		got += (size_t)r;
	out[got] = '\0';
	close(p[0]);
	status = tu_wait(pid, 30000);
	return status;
}

static void expect_has(const char *text, const char *needle, const char *what)
{
	if (!strstr(text, needle))
		fail_msg("%s: \"%s\" not in:\n%s", what, needle, text);
}

static void test_status_running_then_killed(void **state)
{
	struct env *e = *state;
	const char *status[] = { "status", NULL }, *stats[] = { "stats", TOPIC, NULL };
	char out[8192], want[512];
	int pid;

	start(e);
	pid = e->d.pid;
	produce(e->bus, 0, 3, 8);
	assert_int_equal(run_cli(e->root, status, out, sizeof out), 0);
	snprintf(want, sizeof want, "running: shmbusd 1.0.0, pid %d, up", pid);
	expect_has(out, want, "status with a daemon");
	snprintf(want, sizeof want, "http://%s/metrics", e->addr);
	expect_has(out, want, "status names the endpoint");
	expect_has(out, "a tick every 50 ms", "status with a daemon");
	expect_has(out, "1 topic, 2 partitions (2 supervised)", "status with a daemon");
	expect_has(out, "2 partitions at start-up: 2 recovered", "status with a daemon");
	expect_has(out, "orders", "status lists the topics");
	assert_null(strstr(out, "stale"));
	/* stats gains the daemon's rates */
	assert_int_equal(run_cli(e->root, stats, out, sizeof out), 0);
	expect_has(out, "CONSUMERS", "stats with a daemon");
	expect_has(out, "RATE", "stats with a daemon");
	expect_has(out, "BYTES/S", "stats with a daemon");

	tu_daemon_kill(&e->d);
	assert_int_equal(run_cli(e->root, status, out, sizeof out), 0);
	snprintf(want, sizeof want, "no daemon serves %s; start one with `shmbusd --root %s`",
		 e->root, e->root);
	expect_has(out, want, "status after kill -9");
	snprintf(want, sizeof want, "shmbusd pid %d died without stopping", pid);
	expect_has(out, want, "status after kill -9");
	expect_has(out, "heartbeat", "status after kill -9");
	expect_has(out, "(stale)", "status after kill -9");
	expect_has(out, "1 topic, 2 partitions", "status after kill -9");
	/* no rates from a dead daemon, and the columns scripts read are back */
	assert_int_equal(run_cli(e->root, stats, out, sizeof out), 0);
	expect_has(out, "CONSUMERS\n", "stats after kill -9");
	assert_null(strstr(out, "RATE"));
}

static void test_status_stopped(void **state)
{
	struct env *e = *state;
	const char *status[] = { "status", NULL };
	char out[8192];

	start(e);
	assert_int_equal(tu_daemon_stop(&e->d, 10000), 0);
	assert_int_equal(run_cli(e->root, status, out, sizeof out), 0);
	expect_has(out, "no daemon serves", "status after SIGTERM");
	expect_has(out, "stopped cleanly", "status after SIGTERM");
	expect_has(out, "(stale)", "status after SIGTERM");
}

static void test_status_without_daemon(void **state)
{
	struct env *e = *state;
	const char *status[] = { "status", NULL };
	char out[8192], want[512], empty[320];

	assert_int_equal(run_cli(e->root, status, out, sizeof out), 0);
	snprintf(want, sizeof want, "no daemon serves %s; start one with `shmbusd --root %s`",
		 e->root, e->root);
	expect_has(out, want, "status without a daemon");
	expect_has(out, "1 topic, 2 partitions", "status without a daemon");
	expect_has(out, "orders", "status without a daemon");
	assert_null(strstr(out, "stale"));
	assert_null(strstr(out, "health"));

	/* a root that does not exist, then one with no bus at all */
	snprintf(empty, sizeof empty, "%s/none", e->root);
	assert_int_equal(run_cli(empty, status, out, sizeof out), 0);
	expect_has(out, "does not exist", "status of a missing root");
	expect_has(out, "no daemon serves", "status of a missing root");
	assert_int_equal(mkdir(empty, 0700), 0);
	assert_int_equal(run_cli(empty, status, out, sizeof out), 0);
	expect_has(out, "no bus yet", "status of an empty root");
	expect_has(out, "no daemon serves", "status of an empty root");
	rmdir(empty);
}

/* Without --metrics the counters file is written all the same. */
static void test_counters_without_endpoint(void **state)
{
	struct env *e = *state;
	const char *status[] = { "status", NULL };
	const char *args[] = { "--config", e->conf, NULL };
	char out[8192];

	if (tu_daemon_start(&e->d, e->root, args, NULL, START_MS) < 0)
		fail_msg("shmbusd did not start");
	assert_int_equal(run_cli(e->root, status, out, sizeof out), 0);
	expect_has(out, "running: shmbusd", "status without an endpoint");
	expect_has(out, "(off; shmbusd --metrics ADDR:PORT serves them)", "status without one");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_values, setup, teardown),
		cmocka_unit_test_setup_teardown(test_waiters, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rates, setup, teardown),
		cmocka_unit_test_setup_teardown(test_aborted_claim, setup, teardown),
		cmocka_unit_test_setup_teardown(test_topic_deleted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_label_escaping, setup, teardown),
		cmocka_unit_test_setup_teardown(test_paths, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_scrapes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bind_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_coordinated_group, setup, teardown),
		cmocka_unit_test_setup_teardown(test_status_running_then_killed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_status_stopped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_status_without_daemon, setup, teardown),
		cmocka_unit_test_setup_teardown(test_counters_without_endpoint, setup, teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
