/*
 * test_mirror_certs.c - certificates renewed without a restart
 * (docs/operations.md "Renewing certificates"): the files of a mirror
 * link are replaced in place and shmbusd is sent SIGHUP.
 *
 * Two hosts in network namespaces (tests/lib/netlab.c): A serves
 * (10.201.0.1, [mirror-listen] with certificates), B mirrors it.  Two
 * CAs: ca1 signs B's certificate and A's first one; ca2 signs A's
 * renewed one, which B does not trust at first.  In order:
 *
 *   1. A's cert and key are replaced by the ca2 pair and A is sent
 *      SIGHUP: A says it renewed them, the connection B had survives
 *      and goes on streaming (B did not reconnect), and A's metrics
 *      count the renewal;
 *   2. a new connection from B (B restarted) is refused: B trusts only
 *      ca1; B is given ca1 and ca2 and sent SIGHUP, and its next
 *      connection is accepted and the replica catches up byte for byte;
 *   3. a broken replacement (a key of another pair) is refused at A's
 *      SIGHUP, naming the file, and counted; the material in use stays,
 *      and a new connection from B still gets through with it;
 *   4. B's second section (a pre-shared key, its source never there)
 *      gets a PSK file others may read: B's SIGHUP renews neither
 *      section, all or nothing; mended, the next renews both;
 *   5. SIGHUPs in a loop while 40 connections make their handshakes:
 *      none sees its context freed, and the mirror streams on;
 *   6. both stop cleanly (exit 0), every context released.
 *
 * The certificates are valid for 2 days, so each load also warns that
 * they expire soon.  Needs root, `ip netns` and the openssl command;
 * skips with the reason otherwise.
 */
#include "lib/daemonutil.h"
#include "lib/netlab.h"
#include "lib/testutil.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define A 0
#define B 1
#define WAIT_MS 20000
#define METRICS_PORT 9465

struct env {
	struct tu_lab lab;
	char *dir;
	bool certs;
	char why[200];
};

static const char mk_certs[] =
	"set -e\n"
	"ec='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes'\n"
	"openssl req -x509 $ec -keyout ca1.key -out ca1.crt -days 2 -subj /CN=ca-one\n"
	"openssl req -x509 $ec -keyout ca2.key -out ca2.crt -days 2 -subj /CN=ca-two\n"
	"leaf() {\n"
	"  openssl req -new $ec -keyout $1.key -out $1.csr -subj /CN=$3\n"
	"  printf 'subjectAltName=%s\\n' \"$4\" > $1.ext\n"
	"  openssl x509 -req -in $1.csr -CA $2.crt -CAkey $2.key -CAcreateserial -out $1.crt"
	" -days 2 -extfile $1.ext\n"
	"}\n"
	"leaf a1 ca1 shmbus-a DNS:shmbus-a,IP:10.201.0.1\n"
	"leaf a2 ca2 shmbus-a DNS:shmbus-a,IP:10.201.0.1\n"
	"leaf b ca1 shmbus-b DNS:shmbus-b\n"
	"openssl genpkey -algorithm ec -pkeyopt ec_paramgen_curve:prime256v1 -out stray.key\n"
	/* what each daemon reads: A's pair and the CA of its mirrors, B's CA of its source */
	"cp a1.crt a.crt; cp a1.key a.key; cp ca1.crt a-ca.crt; cp ca1.crt b-ca.crt\n"
	"printf 'mirrors:%s\\n' $(openssl rand -hex 32) > b.psk\n"
	"chmod 600 *.key b.psk\n";

static void write_file(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, mode), 0);
}

/* Replace dir/to with what `cmd` makes, as a renewal does: written beside
 * it, then renamed over it. */
static void renew(struct env *e, const char *cmd, const char *to)
{
	if (tu_sh("cd '%s' && %s > %s.new && chmod 600 %s.new && mv %s.new %s", e->dir, cmd, to,
		  to, to, to) < 0)
		fail_msg("cannot renew %s/%s with `%s`", e->dir, to, cmd);
}

static bool make_certs(struct env *e)
{
	char path[400];

	if (tu_sh("command -v openssl") < 0) {
		snprintf(e->why, sizeof e->why, "no openssl command (Debian package openssl) to make "
			 "the certificates");
		return false;
	}
	snprintf(path, sizeof path, "%s/mk.sh", e->dir);
	write_file(path, mk_certs, 0600);
	if (tu_sh("cd '%s' && sh mk.sh", e->dir) < 0) {
		snprintf(e->why, sizeof e->why, "openssl could not make the test certificates");
		return false;
	}
	return true;
}

static void configure(struct env *e)
{
	char text[4096];
	const char *d = e->dir;

	snprintf(text, sizeof text, "metrics = 10.201.0.1:%d\n\n[mirror-listen]\n"
		 "address = 10.201.0.1:9093\ntls = on\ncert = %s/a.crt\nkey = %s/a.key\n"
		 "ca = %s/a-ca.crt\nallow = shmbus-b\n", METRICS_PORT, d, d, d);
	tu_lab_config(&e->lab, A, text);
	/* "idle": a second section, with a pre-shared key, whose source is
	 * never there (it only retries): renewals are all sections or none */
	snprintf(text, sizeof text, "[mirror \"good\"]\nsource = 10.201.0.1:9093\ntopics = orders\n"
		 "tls = on\ncert = %s/b.crt\nkey = %s/b.key\nca = %s/b-ca.crt\n\n"
		 "[mirror \"idle\"]\nsource = 10.201.0.1:9094\ntopics = none\ntls = on\n"
		 "psk_file = %s/b.psk\n", d, d, d, d);
	tu_lab_config(&e->lab, B, text);
}

static void produce(const char *root, uint64_t from, uint64_t count)
{
	shmbus *bus = tu_open(root);
	shmbus_producer *p;
	char key[32], val[600];

	assert_int_equal(shmbus_producer_new(bus, "orders", NULL, &p), 0);
	for (uint64_t i = from; i < from + count; i++) {
		struct shmbus_record r = { .key = key, .value = val,
					   .value_len = (size_t)(i * 37 % sizeof val) };

		r.key_len = (size_t)snprintf(key, sizeof key, "key-%llu", (unsigned long long)i);
		memset(val, 'a' + (int)(i % 26), r.value_len);
		assert_true(shmbus_producer_send(p, -1, &r, NULL) >= 0);
	}
	shmbus_producer_free(p);
	shmbus_close(bus);
}

static int group_setup(void **state)
{
	struct env *e = calloc(1, sizeof *e);
	struct tu_lab *l = &e->lab;

	*state = e;
	e->dir = tu_tmpdir("mirror-certs");
	e->certs = make_certs(e);
	if (!e->certs)
		return 0;
	tu_lab_init(l, 2);
	if (!l->ok)
		return 0;
	configure(e);
	tu_lab_start(l, A);
	{
		SHMBUS_OPTS(shmbus_topic_opts, o, .partitions = 2, .capacity = 4u << 20);
		shmbus *bus = tu_open(l->root[A]);

		assert_int_equal(shmbus_topic_create(bus, "orders", &o), 0);
		shmbus_close(bus);
	}
	produce(l->root[A], 0, 2000);
	tu_lab_start(l, B);
	return 0;
}

static int group_teardown(void **state)
{
	struct env *e = *state;

	tu_lab_fini(&e->lab);
	tu_rmrf(e->dir);
	free(e->dir);
	free(e);
	return 0;
}

static void need_lab(struct env *e)
{
	if (!e->certs)
		tu_skip("%s", e->why);
	tu_lab_need(&e->lab);
}

static void expect_log(struct env *e, int i, const char *needle)
{
	if (!tu_daemon_log_has(&e->lab.d[i], needle, WAIT_MS)) {
		tu_daemon_dump(&e->lab.d[i]);
		fail_msg("host %c's log has no \"%s\"", 'a' + i, needle);
	}
}

/* B's reconnects, as `shmbus mirror status` reports them. */
static uint64_t reconnects(struct env *e)
{
	struct shmbus_mirror_status m[8] = { { .sz = sizeof m[0] } };
	shmbus *b = tu_open(e->lab.root[B]);
	int n = shmbus_mirror_status(b, m, 8);

	shmbus_close(b);
	for (int i = 0; i < n && i < 8; i++)
		if (!strcmp(m[i].mirror, "good"))
			return m[i].reconnects;
	fail_msg("B's mirror status has no line of mirror good");
	return 0;
}

static double metric(struct env *e, const char *sample)
{
	char *text = malloc(1 << 20);
	double v;

	assert_non_null(text);
	assert_int_equal(tu_lab_http_get(&e->lab, A, "10.201.0.1", METRICS_PORT, "/metrics", text,
					 1 << 20), 0);
	v = tu_metric(text, sample);
	free(text);
	return v;
}

/* Give host i SIGHUP and wait for its reload's line. */
static void reload(struct env *e, int i)
{
	int before = tu_daemon_log_count(&e->lab.d[i], "SIGHUP: reloaded");
	int64_t until = tu_ms() + WAIT_MS;

	tu_daemon_signal(&e->lab.d[i], SIGHUP);
	while (tu_daemon_log_count(&e->lab.d[i], "SIGHUP: reloaded") == before) {
		if (tu_ms() > until) {
			tu_daemon_dump(&e->lab.d[i]);
			fail_msg("host %c did not reload", 'a' + i);
		}
		usleep(20000);
	}
}

/* ------------------------------------------------------------------ */

static void renewal_keeps_the_established_connection(void **state)
{
	struct env *e = *state;
	struct tu_lab *l = &e->lab;
	uint64_t before;

	need_lab(e);
	tu_lab_caught_up(l, l->root[A], l->root[B], "orders", 2, WAIT_MS);
	expect_log(e, A, "[mirror-listen] certificate");  /* valid for 2 days: */
	expect_log(e, A, "expires on");                   /* warned at start */
	assert_true(metric(e, "shmbus_daemon_tls_cert_expiry_timestamp_seconds{section=\"[mirror-listen]\"}") >
		    (double)time(NULL));
	assert_true(metric(e, "shmbus_daemon_tls_reloads_total") == 0);
	before = reconnects(e);

	renew(e, "cat a2.crt", "a.crt");
	renew(e, "cat a2.key", "a.key");
	reload(e, A);
	expect_log(e, A, "SIGHUP: TLS material renewed for [mirror-listen]");
	assert_true(metric(e, "shmbus_daemon_tls_reloads_total") == 1);
	assert_true(metric(e, "shmbus_daemon_tls_reload_failures_total") == 0);
	assert_true(metric(e, "shmbus_daemon_tls_reloaded_timestamp_seconds") > 0);

	/* the connection made with the old certificate streams on */
	produce(l->root[A], 2000, 3000);
	tu_lab_caught_up(l, l->root[A], l->root[B], "orders", 2, WAIT_MS);
	assert_int_equal(reconnects(e), before);
	assert_int_equal(tu_daemon_log_count(&l->d[B], "connection lost"), 0);
}

static void new_connection_needs_the_new_ca(void **state)
{
	struct env *e = *state;
	struct tu_lab *l = &e->lab;

	need_lab(e);
	/* a new connection: B still trusts ca1 only, A shows ca2's certificate */
	tu_lab_kill(l, B);
	tu_lab_start(l, B);
	expect_log(e, B, "mirror good (10.201.0.1:9093)");
	if (!tu_daemon_log_has(&l->d[B], "unable to get local issuer certificate", WAIT_MS)) {
		tu_daemon_dump(&l->d[B]);
		fail_msg("B connected to A's renewed certificate without the CA that signs it");
	}
	expect_log(e, A, "unknown ca");
	produce(l->root[A], 5000, 500);

	/* B is given the new CA beside the old one */
	renew(e, "cat ca1.crt ca2.crt", "b-ca.crt");
	reload(e, B);
	expect_log(e, B, "SIGHUP: TLS material renewed for [mirror \"good\"]");
	tu_lab_caught_up(l, l->root[A], l->root[B], "orders", 2, WAIT_MS);
	tu_replica_identical(l->root[A], l->root[B], "orders", 2, false);
	expect_log(e, B, "peer /CN=shmbus-a");
}

static void broken_replacement_keeps_the_old_material(void **state)
{
	struct env *e = *state;
	struct tu_lab *l = &e->lab;
	char msg[600];

	need_lab(e);
	renew(e, "cat stray.key", "a.key"); /* not a2.crt's key */
	reload(e, A);
	snprintf(msg, sizeof msg, "SIGHUP: [mirror-listen] key %s/a.key: does not match cert "
		 "%s/a.crt (another key pair)", e->dir, e->dir);
	expect_log(e, A, msg);
	expect_log(e, A, "SIGHUP: TLS material not renewed: 1 of 1 section failed its checks");
	assert_true(metric(e, "shmbus_daemon_tls_reload_failures_total") == 1);
	assert_true(metric(e, "shmbus_daemon_tls_reloads_total") == 1);

	/* the material in use (a2) still lets new connections in */
	tu_lab_kill(l, B);
	produce(l->root[A], 5500, 1500);
	tu_lab_start(l, B);
	tu_lab_caught_up(l, l->root[A], l->root[B], "orders", 2, WAIT_MS);
	tu_replica_identical(l->root[A], l->root[B], "orders", 2, false);
	assert_int_equal(tu_daemon_log_count(&l->d[B], "unable to get local issuer"), 0);

	/* mended: the next SIGHUP takes it */
	renew(e, "cat a2.key", "a.key");
	reload(e, A);
	assert_true(metric(e, "shmbus_daemon_tls_reloads_total") == 2);
}

struct handshakes {
	struct env *e;
	int count;
};

/* In a child: `count` TLS handshakes with A from B's namespace (B's
 * certificate), each closed at once. */
static int handshakes_main(void *arg)
{
	const struct handshakes *h = arg;

	return tu_lab_sh(&h->e->lab, B, "sh -c 'cd %s && for i in $(seq %d); do openssl s_client "
			 "-connect 10.201.0.1:9093 -cert b.crt -key b.key -CAfile ca2.crt "
			 "</dev/null >/dev/null 2>&1; done'", h->e->dir, h->count) ? 1 : 0;
}

/* Renewals while connections come and go: each connection thread takes
 * the context in force at its handshake while SIGHUPs swap it; none may
 * see one freed (an ASan build catches a use after free), and the
 * mirror streams on. */
static void renewals_during_handshakes(void **state)
{
	struct env *e = *state;
	struct tu_lab *l = &e->lab;
	struct handshakes h = { .e = e, .count = 40 };
	/* each handshake done, the connection ends before HELLO */
	const char *done = "disconnected: it closed the connection before HELLO";
	int before = tu_daemon_log_count(&l->d[A], done);
	double reloads = metric(e, "shmbus_daemon_tls_reloads_total");
	int n = 0, after, st = -1;
	pid_t pid;

	need_lab(e);
	pid = tu_fork(handshakes_main, &h);
	while (waitpid(pid, &st, WNOHANG) == 0) { /* bounded: reload() waits for each */
		if (n >= 400) {
			kill(pid, SIGKILL);
			tu_wait(pid, 5000);
			fail_msg("40 handshakes took more than 400 reloads");
		}
		reload(e, A);
		n++;
		usleep(5000);
	}
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	after = tu_daemon_log_count(&l->d[A], done);
	printf("# %d renewals during %d handshakes (%d done)\n", n, h.count, after - before);
	assert_true(n >= 2);
	assert_true(after - before >= h.count);
	assert_true(metric(e, "shmbus_daemon_tls_reloads_total") == reloads + n);
	produce(l->root[A], 7000, 500);
	tu_lab_caught_up(l, l->root[A], l->root[B], "orders", 2, WAIT_MS);
}

/* A PSK file others may read fails B's renewal, of both its sections:
 * nothing is swapped; mended, the next SIGHUP takes both. */
static void bad_psk_file_holds_back_every_section(void **state)
{
	struct env *e = *state;
	char path[400], msg[600];
	int renewed;

	need_lab(e);
	snprintf(path, sizeof path, "%s/b.psk", e->dir);
	renewed = tu_daemon_log_count(&e->lab.d[B], "SIGHUP: TLS material renewed");
	assert_int_equal(chmod(path, 0644), 0);
	reload(e, B);
	snprintf(msg, sizeof msg, "SIGHUP: [mirror \"idle\"] psk_file %s: is mode 0644", path);
	expect_log(e, B, msg);
	expect_log(e, B, "SIGHUP: TLS material not renewed: 1 of 2 sections failed its checks");
	assert_int_equal(tu_daemon_log_count(&e->lab.d[B], "SIGHUP: TLS material renewed"),
			 renewed);
	assert_int_equal(chmod(path, 0600), 0);
	reload(e, B);
	expect_log(e, B, "SIGHUP: TLS material renewed for [mirror \"good\"], [mirror \"idle\"]");
}

/* Both stop cleanly after the renewals: every context, old and new, is
 * released (an ASan build's leak check makes a leak exit non-zero). */
static void clean_stop_after_renewals(void **state)
{
	struct env *e = *state;
	struct tu_lab *l = &e->lab;

	need_lab(e);
	assert_int_equal(tu_daemon_stop(&l->d[B], 15000), 0);
	assert_int_equal(tu_daemon_stop(&l->d[A], 15000), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(renewal_keeps_the_established_connection),
		cmocka_unit_test(new_connection_needs_the_new_ca),
		cmocka_unit_test(broken_replacement_keeps_the_old_material),
		cmocka_unit_test(bad_psk_file_holds_back_every_section),
		cmocka_unit_test(renewals_during_handshakes),
		cmocka_unit_test(clean_stop_after_renewals),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
