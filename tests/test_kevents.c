/*
 * test_kevents.c - shmbusd's [kernel-events] source with real kernel
 * events: 100 runs of /bin/true give 100 exec and 100 exit records keyed
 * by their pids (JSON and binary), a loopback connection gives its connect
 * (with our pid) and its accept, and the metrics count them.
 *
 * Needs root (BPF programs) and build/trace/kevents.bpf.o, built only
 * where clang, bpftool, libbpf-dev and the kernel's BTF are present: the
 * tests skip with the reason otherwise.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/daemonutil.h"
#include "lib/testutil.h"
#include "../trace/kevents.h"

#define RUNS 100

struct seen {
	pid_t pids[RUNS];
	int exec[RUNS], exit[RUNS];
	int connect, accept;
	unsigned short port;
};

/* The daemon of the running test, killed by the teardown if a failure
 * left it running */
static struct tu_daemon daemon_;

static int kill_daemon(void **state)
{
	(void)state;
	tu_daemon_kill(&daemon_);
	return 0;
}

static void need_bpf(void)
{
	char path[512];
	const char *b = getenv("BUILD");

	snprintf(path, sizeof path, "%s/trace/kevents.bpf.o", b && *b ? b : "build");
	if (access(path, R_OK) != 0)
		tu_skip("%s was not built here (make says what it lacks: clang, bpftool, "
			"libbpf-dev or the kernel's BTF)", path);
	if (geteuid() != 0)
		tu_skip("loading BPF programs needs root (or CAP_BPF and CAP_PERFMON)");
}

/* shmbusd on root with [kernel-events] in this format; skips if the
 * kernel refuses the programs for lack of privilege */
static void start(struct tu_daemon *d, const char *root, const char *format, int metrics_port)
{
	char conf[600], text[800], metrics[64] = "";
	FILE *f;

	snprintf(conf, sizeof conf, "%s.conf", root);
	if (metrics_port)
		snprintf(metrics, sizeof metrics, "metrics = 127.0.0.1:%d\n", metrics_port);
	snprintf(text, sizeof text, "[daemon]\nroot = %s\nlog_level = info\n%s[kernel-events]\n"
		 "enabled = yes\ntopic = kev\nformat = %s\n", root, metrics, format);
	f = fopen(conf, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	if (tu_daemon_start_config(d, root, conf, NULL, 10000) < 0)
		fail_msg("shmbusd --config %s did not start", conf);
	if (!tu_daemon_log_has(d, "kernel-events: publishing", 5000)) {
		if (tu_daemon_log_count(d, "needs root") > 0) {
			tu_daemon_stop(d, 5000);
			tu_skip("the kernel refused shmbusd's BPF programs for lack of privilege");
		}
		tu_daemon_dump(d);
		fail_msg("the kernel-events source did not start");
	}
	unlink(conf);
}

static void run_true(struct seen *s)
{
	for (int i = 0; i < RUNS; i++) {
		pid_t p = fork();

		assert_true(p >= 0);
		if (p == 0) {
			execl("/bin/true", "true", (char *)NULL);
			_exit(127);
		}
		s->pids[i] = p;
		assert_int_equal(tu_wait(p, 5000), 0);
	}
}

static int index_of(const struct seen *s, unsigned pid)
{
	for (int i = 0; i < RUNS; i++)
		if ((unsigned)s->pids[i] == pid)
			return i;
	return -1;
}

static void check_key(const struct shmbus_message *m, unsigned pid)
{
	char want[16];

	snprintf(want, sizeof want, "%u", pid);
	if (m->key_len != strlen(want) || memcmp(m->key, want, m->key_len))
		fail_msg("the record of pid %u has key \"%.*s\"", pid, (int)m->key_len,
			 (const char *)m->key);
}

static void take_json(struct seen *s, const struct shmbus_message *m)
{
	char v[2048], type[16];
	unsigned pid;
	int i;

	snprintf(v, sizeof v, "%.*s", (int)m->value_len, (const char *)m->value);
	if (sscanf(v, "{\"type\":\"%15[a-z]\",\"time_ns\":%*u,\"pid\":%u", type, &pid) != 2)
		fail_msg("a record that is not the documented JSON: %s", v);
	if (!strcmp(type, "connect") || !strcmp(type, "accept")) {
		char port[32];

		/* the listener's port is the remote end of the connect, the
		 * local end of the accept */
		snprintf(port, sizeof port, !strcmp(type, "connect") ? "\"dport\":%u}" :
			 "\"sport\":%u,", s->port);
		if (strstr(v, port) && strstr(v, "\"saddr\":\"127.0.0.1\"")) {
			if (!strcmp(type, "connect"))
				s->connect += pid == (unsigned)getpid();
			else
				s->accept++;
		}
		return;
	}
	if ((i = index_of(s, pid)) < 0)
		return;
	check_key(m, pid);
	if (!strcmp(type, "exec")) {
		if (!strstr(v, "\"comm\":\"true\",\"filename\":\"/bin/true\"}"))
			fail_msg("the exec of pid %u: %s", pid, v);
		s->exec[i]++;
	} else if (!strcmp(type, "exit")) {
		if (!strstr(v, "\"exit_code\":0,"))
			fail_msg("the exit of pid %u: %s", pid, v);
		s->exit[i]++;
	}
}

static void take_binary(struct seen *s, const struct shmbus_message *m)
{
	struct kev_record r;
	int i;

	if (m->value_len != sizeof r)
		fail_msg("a binary record of %zu bytes, not %zu", m->value_len, sizeof r);
	memcpy(&r, m->value, sizeof r);
	assert_int_equal(r.version, KEV_VERSION);
	if ((i = index_of(s, r.pid)) < 0 || (r.type != KEV_EXEC && r.type != KEV_EXIT))
		return;
	check_key(m, r.pid);
	assert_string_equal(r.comm, "true");
	if (r.type == KEV_EXEC) {
		assert_string_equal(r.filename, "/bin/true");
		s->exec[i]++;
	} else {
		assert_int_equal(r.exit_code, 0);
		s->exit[i]++;
	}
}

static bool complete(const struct seen *s, bool tcp)
{
	for (int i = 0; i < RUNS; i++)
		if (s->exec[i] != 1 || s->exit[i] != 1)
			return false;
	return !tcp || (s->connect == 1 && s->accept == 1);
}

/* Read topic kev from its start until every expected record is seen (or
 * 10 s); what is missing fails the test */
static void consume(const char *root, struct seen *s, bool binary, bool tcp)
{
	shmbus *bus = tu_open(root);
	shmbus_consumer *c = NULL;
	struct shmbus_message m[64];
	int64_t end = tu_ms() + 10000;

	assert_ok(shmbus_consumer_new(bus, NULL, &c));
	assert_ok(shmbus_consumer_assign(c, "kev", 0, SHMBUS_OFFSET_BEGINNING));
	while (!complete(s, tcp) && tu_ms() < end) {
		int n = shmbus_consumer_poll(c, m, 64, 100);

		assert_true(n >= 0);
		for (int i = 0; i < n; i++)
			(binary ? take_binary : take_json)(s, &m[i]);
	}
	shmbus_consumer_free(c);
	shmbus_close(bus);
	for (int i = 0; i < RUNS; i++)
		if (s->exec[i] != 1 || s->exit[i] != 1)
			fail_msg("pid %d (run %d of /bin/true): %d exec and %d exit records, not 1 each",
				 (int)s->pids[i], i, s->exec[i], s->exit[i]);
	if (tcp && (s->connect != 1 || s->accept != 1))
		fail_msg("loopback port %u: %d connect records with pid %d and %d accepts, not 1 each",
			 s->port, s->connect, (int)getpid(), s->accept);
}

/* A listener on 127.0.0.1, a connect to it from this process, its accept */
static void loopback(struct seen *s)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof a;
	int l = socket(AF_INET, SOCK_STREAM, 0), c = socket(AF_INET, SOCK_STREAM, 0), x;

	assert_true(l >= 0 && c >= 0);
	assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(listen(l, 4), 0);
	assert_int_equal(getsockname(l, (struct sockaddr *)&a, &len), 0);
	s->port = ntohs(a.sin_port);
	assert_int_equal(connect(c, (struct sockaddr *)&a, sizeof a), 0);
	x = accept(l, NULL, NULL);
	assert_true(x >= 0);
	close(x);
	close(c);
	close(l);
}

/* The metrics count at least `records` records and report both drops */
static void check_metrics(int port, unsigned long long records)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
				 .sin_port = htons((uint16_t)port) };
	static char body[1 << 18];
	const char *at;
	unsigned long long n = 0;
	size_t len = 0;
	ssize_t k;
	int s = socket(AF_INET, SOCK_STREAM, 0);

	assert_int_equal(connect(s, (struct sockaddr *)&a, sizeof a), 0);
	assert_true(write(s, "GET /metrics HTTP/1.0\r\n\r\n", 26) == 26);
	while (len < sizeof body - 1 && (k = read(s, body + len, sizeof body - 1 - len)) > 0)
		len += (size_t)k;
	body[len] = '\0';
	close(s);
	at = strstr(body, "\nshmbus_kevents_records_total ");
	if (!at || sscanf(at, "\nshmbus_kevents_records_total %llu", &n) != 1 || n < records ||
	    !strstr(body, "shmbus_kevents_dropped_total{where=\"kernel\"} ") ||
	    !strstr(body, "shmbus_kevents_dropped_total{where=\"publish\"} "))
		fail_msg("the metrics lack the kernel events' counts (want >= %llu records):\n%.2000s",
			 records, at ? at : body);
}

static void test_kevents_json(void **state)
{
	struct tu_daemon *d = &daemon_;
	struct seen *s = calloc(1, sizeof *s);
	char *root;
	int port;

	(void)state;
	need_bpf();
	root = tu_tmpdir("kevents");
	port = tu_free_port();
	start(d, root, "json", port);
	run_true(s);
	loopback(s);
	consume(root, s, false, true);
	check_metrics(port, 2 * RUNS + 2);
	assert_int_equal(tu_daemon_stop(d, 5000), 0);
	unlink(d->log);
	tu_rmrf(root);
	free(root);
	free(s);
}

static void test_kevents_binary(void **state)
{
	struct tu_daemon *d = &daemon_;
	struct seen *s = calloc(1, sizeof *s);
	char *root;

	(void)state;
	need_bpf();
	root = tu_tmpdir("kevents");
	start(d, root, "binary", 0);
	run_true(s);
	consume(root, s, true, false);
	assert_int_equal(tu_daemon_stop(d, 5000), 0);
	unlink(d->log);
	tu_rmrf(root);
	free(root);
	free(s);
}

/* --check-config names a bad [kernel-events] key and value */
static void test_kevents_config_checked(void **state)
{
	char *root = tu_tmpdir("kevents"), conf[600], cmd[1400], out[1024];
	FILE *f;
	size_t n;

	(void)state;
	snprintf(conf, sizeof conf, "%s.conf", root);
	f = fopen(conf, "w");
	assert_non_null(f);
	fprintf(f, "[daemon]\nroot = %s\n[kernel-events]\nenabled = yes\nevents = exec,fork\n", root);
	fclose(f);
	snprintf(cmd, sizeof cmd, "'%s' --config '%s' --check-config 2>&1", tu_daemon_path(), conf);
	f = popen(cmd, "r");
	assert_non_null(f);
	n = fread(out, 1, sizeof out - 1, f);
	out[n] = '\0';
	assert_int_equal(WEXITSTATUS(pclose(f)), 2);
	if (!strstr(out, "events") || !strstr(out, "\"fork\" is not an event"))
		fail_msg("--check-config said: %s", out);
	unlink(conf);
	tu_rmrf(root);
	free(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kevents_config_checked),
		cmocka_unit_test_teardown(test_kevents_json, kill_daemon),
		cmocka_unit_test_teardown(test_kevents_binary, kill_daemon),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
