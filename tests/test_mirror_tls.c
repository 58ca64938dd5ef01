/*
 * test_mirror_tls.c - the security of the mirror link (docs/protocol.md
 * §M7): TLS with certificates or a pre-shared key between real shmbusd
 * in network namespaces (tests/lib/netlab.c), and every wrong credential
 * refused and logged on both sides.
 *
 * The certificates are made at test time with the openssl command, in
 * the test's directory: a CA, the source's certificate (IP SAN
 * 10.201.0.1), the mirror's, the mirror's name under a second, unrelated
 * CA, and one of the CA's with a name the source does not allow.
 *
 * Four hosts: A serves with certificates (allow = shmbus-b), C with a
 * pre-shared key, D in plain TCP; B mirrors from all three through one
 * [mirror] section per case, good and bad, so that one start of each
 * daemon covers them all.  B's good sections must catch up byte for
 * byte; each bad one must be refused with its reason in both logs,
 * naming the peer's address.  Fake peers (a child in B's namespace) that
 * say nothing, or stop mid-handshake, are dropped within timeout_ms.
 * --check-config refuses a key that is not its certificate's and a PSK
 * file others may read (no root needed for that one).
 *
 * Needs root and `ip netns` for the lab and the openssl command for the
 * certificates; skips with the reason otherwise.  Set
 * SHMBUS_TLS_MEASURE=1 to also measure catch-up throughput with TLS on
 * and off (printed, not asserted; docs/bench/ has the figures).
 */
#include "lib/daemonutil.h"
#include "lib/netlab.h"
#include "lib/testutil.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../shm/mirrorproto.h"

#define A 0
#define B 1
#define C 2
#define D 3
#define TIMEOUT_MS 2000   /* the sources' timeout_ms: a silent peer is dropped after it
			   * (more than the mirrors' ACK period of a second) */
#define WAIT_MS    20000  /* a mirror catching up, a refusal reaching a log */
#define PSK_GOOD   "mirrors:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define PSK_BAD    "mirrors:ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"

struct env {
	struct tu_lab lab;
	char *dir;                   /* certificates, PSK files, check-config files */
	bool certs;
	char why[200];               /* why the lab or the certificates are missing */
	char path[32][400];
	int npath;
};

/* dir/name, kept for the test's life */
static const char *at(struct env *e, const char *name)
{
	char *p = e->path[e->npath++ % 32];

	snprintf(p, sizeof e->path[0], "%s/%s", e->dir, name);
	return p;
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, mode), 0);
}

/* ------------------------------------------------------------------ */
/* Certificates                                                        */

static const char mk_certs[] =
	"set -e\n"
	"ec='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes'\n"
	"openssl req -x509 $ec -keyout ca.key -out ca.crt -days 2 -subj /CN=test-ca\n"
	"openssl req -x509 $ec -keyout ca2.key -out ca2.crt -days 2 -subj /CN=other-ca\n"
	"leaf() {\n"
	"  openssl req -new $ec -keyout $1.key -out $1.csr -subj /CN=$3\n"
	"  printf 'subjectAltName=%s\\n' \"$4\" > $1.ext\n"
	"  openssl x509 -req -in $1.csr -CA $2.crt -CAkey $2.key -CAcreateserial -out $1.crt"
	" -days 2 -extfile $1.ext\n"
	"}\n"
	"leaf a ca shmbus-a DNS:shmbus-a,IP:10.201.0.1\n"
	"leaf b ca shmbus-b DNS:shmbus-b\n"
	"leaf b2 ca2 shmbus-b DNS:shmbus-b\n"
	"leaf evil ca intruder DNS:intruder\n"
	"chmod 600 *.key\n";

static bool make_certs(struct env *e)
{
	if (tu_sh("command -v openssl") < 0) {
		snprintf(e->why, sizeof e->why, "no openssl command (Debian package openssl) to make "
			 "the certificates");
		return false;
	}
	write_file(at(e, "mk.sh"), mk_certs, 0600);
	if (tu_sh("cd '%s' && sh mk.sh", e->dir) < 0) {
		snprintf(e->why, sizeof e->why, "openssl could not make the test certificates");
		return false;
	}
	write_file(at(e, "good.psk"), "# the mirrors' key\n" PSK_GOOD "\n", 0600);
	write_file(at(e, "bad.psk"), PSK_BAD "\n", 0600);
	return true;
}

/* ------------------------------------------------------------------ */
/* The lab                                                             */

/* TLS keys: cert, key and ca of the test's directory. */
static void certs_of(struct env *e, const char *leaf, const char *ca, char *buf, size_t len)
{
	snprintf(buf, len, "tls = on\ncert = %s/%s.crt\nkey = %s/%s.key\nca = %s/%s.crt\n", e->dir,
		 leaf, e->dir, leaf, e->dir, ca);
}

static void configure(struct env *e)
{
	char text[8192], ab[600], b2[600], evil[600];
	struct tu_lab *l = &e->lab;

	certs_of(e, "a", "ca", ab, sizeof ab);
	snprintf(text, sizeof text, "[mirror-listen]\naddress = 10.201.0.1:9093\n%sallow = shmbus-b\n"
		 "timeout_ms = %d\n", ab, TIMEOUT_MS);
	tu_lab_config(l, A, text);
	snprintf(text, sizeof text, "[mirror-listen]\naddress = 10.201.0.3:9093\ntls = on\n"
		 "psk_file = %s/good.psk\ntimeout_ms = %d\n", e->dir, TIMEOUT_MS);
	tu_lab_config(l, C, text);
	snprintf(text, sizeof text, "[mirror-listen]\naddress = 10.201.0.4:9093\ntls = off\n"
		 "timeout_ms = %d\n", TIMEOUT_MS);
	tu_lab_config(l, D, text);
	certs_of(e, "b", "ca", ab, sizeof ab);
	certs_of(e, "b2", "ca", b2, sizeof b2);
	certs_of(e, "evil", "ca", evil, sizeof evil);
	snprintf(text, sizeof text,
		 "[mirror \"good\"]\nsource = 10.201.0.1:9093\ntopics = orders\n%s\n"
		 "[mirror \"wrongca\"]\nsource = 10.201.0.1:9093\ntopics = t1\n%s\n"
		 "[mirror \"intruder\"]\nsource = 10.201.0.1:9093\ntopics = t2\n%s\n"
		 "[mirror \"srvname\"]\nsource = 10.201.0.1:9093\ntopics = t3\n%sallow = shmbus-z\n\n"
		 "[mirror \"plain\"]\nsource = 10.201.0.1:9093\ntopics = t4\ntls = off\n\n"
		 "[mirror \"psk\"]\nsource = 10.201.0.3:9093\ntopics = events\ntls = on\n"
		 "psk_file = %s/good.psk\n\n"
		 "[mirror \"badpsk\"]\nsource = 10.201.0.3:9093\ntopics = t5\ntls = on\n"
		 "psk_file = %s/bad.psk\n\n"
		 "[mirror \"tls2plain\"]\nsource = 10.201.0.4:9093\ntopics = t6\n%s\n",
		 ab, b2, evil, ab, e->dir, e->dir, ab);
	tu_lab_config(l, B, text);
}

static void produce(const char *root, const char *topic, uint64_t from, uint64_t count,
		    size_t value_len)
{
	shmbus *bus = tu_open(root);
	shmbus_producer *p;
	char key[32], *val = malloc(value_len > 600 ? value_len : 600);

	assert_non_null(val);
	assert_int_equal(shmbus_producer_new(bus, topic, NULL, &p), 0);
	for (uint64_t i = from; i < from + count; i++) {
		struct shmbus_record r = { .key = key, .value = val };

		r.key_len = (size_t)snprintf(key, sizeof key, "key-%llu", (unsigned long long)i);
		r.value_len = value_len ? value_len : (size_t)(i * 37 % 600);
		memset(val, 'a' + (int)(i % 26), r.value_len);
		assert_true(shmbus_producer_send(p, -1, &r, NULL) >= 0);
	}
	shmbus_producer_free(p);
	free(val);
	shmbus_close(bus);
}

static void create_topic(const char *root, const char *topic, uint32_t parts, uint64_t capacity)
{
	SHMBUS_OPTS(shmbus_topic_opts, o, .partitions = parts, .capacity = capacity);
	shmbus *bus = tu_open(root);

	assert_int_equal(shmbus_topic_create(bus, topic, &o), 0);
	shmbus_close(bus);
}

static int group_setup(void **state)
{
	struct env *e = calloc(1, sizeof *e);
	struct tu_lab *l = &e->lab;

	*state = e;
	e->dir = tu_tmpdir("mirror-tls");
	e->certs = make_certs(e);
	if (!e->certs)
		return 0;
	tu_lab_init(l, 4);
	if (!l->ok)
		return 0;
	configure(e);
	tu_lab_start(l, A);
	tu_lab_start(l, C);
	tu_lab_start(l, D);
	create_topic(l->root[A], "orders", 2, 8u << 20);
	create_topic(l->root[C], "events", 1, 4u << 20);
	produce(l->root[A], "orders", 0, 3000, 0);
	produce(l->root[C], "events", 0, 1000, 0);
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

/* Does a line of host i's log hold both needles (waiting up to ms)? */
static bool logged(struct env *e, int i, const char *a, const char *b, int ms)
{
	int64_t until = tu_ms() + ms;

	do {
		FILE *f = fopen(e->lab.d[i].log, "r");
		char line[4096];
		bool found = false;

		while (f && !found && fgets(line, sizeof line, f))
			found = strstr(line, a) && (!b || strstr(line, b));
		if (f)
			fclose(f);
		if (found)
			return true;
		usleep(50000);
	} while (tu_ms() < until);
	return false;
}

static void expect_log(struct env *e, int i, const char *a, const char *b)
{
	if (!logged(e, i, a, b, WAIT_MS)) {
		tu_daemon_dump(&e->lab.d[i]);
		fail_msg("host %c's log has no line with \"%s\"%s%s%s", 'a' + i, a, b ? " and \"" : "",
			 b ? b : "", b ? "\"" : "");
	}
}

/* ------------------------------------------------------------------ */
/* Good credentials                                                    */

/* B's section "good": certificates both ways, the source's checked
 * against the host of `source` (its IP SAN); caught up, byte-identical,
 * and the status says how the link is encrypted. */
static void certificates_mirror_byte_identical(void **state)
{
	struct env *e = *state;
	struct tu_lab *l = &e->lab;
	struct shmbus_mirror_status m[16] = { { .sz = sizeof m[0] } };
	shmbus *b;
	int n, seen = 0;

	need_lab(e);
	produce(l->root[A], "orders", 3000, 5000, 0);
	tu_lab_caught_up(l, l->root[A], l->root[B], "orders", 2, WAIT_MS);
	tu_replica_identical(l->root[A], l->root[B], "orders", 2, false);
	expect_log(e, A, "connected from 10.201.0.2:", "peer /CN=shmbus-b");
	/* the mirror's id beside its certificate (protocol.md §M12) */
	expect_log(e, A, ", certificate /CN=shmbus-b, [mirror \"good\"]) connected from", "(id ");
	expect_log(e, B, "mirror good (10.201.0.1:9093): connected to", "peer /CN=shmbus-a");
	b = tu_open(l->root[B]);
	n = shmbus_mirror_status(b, m, 16);
	assert_true(n > 0);
	for (int i = 0; i < n && i < 16; i++) {
		if (strcmp(m[i].mirror, "good"))
			continue;
		seen++;
		assert_string_equal(m[i].state, "streaming");
		if (strcmp(m[i].tls, "user-space") && strncmp(m[i].tls, "kTLS", 4))
			fail_msg("status tls=\"%s\", not user-space or kTLS", m[i].tls);
		printf("# mirror good, partition %d: tls=%s\n", m[i].partition, m[i].tls);
	}
	assert_int_equal(seen, 2);
	shmbus_close(b);
}

static void psk_mirror_byte_identical(void **state)
{
	struct env *e = *state;
	struct tu_lab *l = &e->lab;

	need_lab(e);
	produce(l->root[C], "events", 1000, 2000, 0);
	tu_lab_caught_up(l, l->root[C], l->root[B], "events", 1, WAIT_MS);
	tu_replica_identical(l->root[C], l->root[B], "events", 1, false);
	expect_log(e, C, "connected from 10.201.0.2:", "pre-shared key mirrors");
}

/* ------------------------------------------------------------------ */
/* Wrong credentials: refused, and logged on both sides                */

static void wrong_ca_refused(void **state)
{
	struct env *e = *state;

	need_lab(e);
	expect_log(e, A, "mirror connection from 10.201.0.2:",
		   "(CN=shmbus-b, DNS:shmbus-b): unable to get local issuer certificate");
	expect_log(e, B, "mirror wrongca (10.201.0.1:9093)", "unknown ca");
}

static void name_not_allowed_refused(void **state)
{
	struct env *e = *state;

	need_lab(e);
	/* the source refuses the mirror's name */
	expect_log(e, A, "mirror connection from 10.201.0.2:",
		   "names CN=intruder, DNS:intruder, and none is allowed here (allow: shmbus-b)");
	expect_log(e, B, "mirror intruder (10.201.0.1:9093)", "bad certificate");
	/* the mirror refuses the source's */
	expect_log(e, B, "mirror srvname (10.201.0.1:9093)",
		   "none is allowed here (allow: shmbus-z)");
	expect_log(e, A, "mirror connection from 10.201.0.2:", "alert bad certificate");
}

static void wrong_psk_refused(void **state)
{
	struct env *e = *state;

	need_lab(e);
	expect_log(e, C, "mirror connection from 10.201.0.2:", "binder does not verify");
	expect_log(e, B, "mirror badpsk (10.201.0.3:9093)", "pre-shared key differs");
}

static void plaintext_and_tls_refused_both_ways(void **state)
{
	struct env *e = *state;

	need_lab(e);
	/* a plain mirror at a TLS listener: told so in plain TCP */
	expect_log(e, A, "mirror connection from 10.201.0.2:", "it speaks plain TCP");
	expect_log(e, B, "mirror plain (10.201.0.1:9093)", "serves mirrors over TLS only");
	/* a TLS mirror at a plain listener */
	expect_log(e, D, "(10.201.0.2:", "it speaks TLS (tls = on in its [mirror] section)");
	expect_log(e, B, "mirror tls2plain (10.201.0.4:9093)", "does not speak TLS here");
}

/* ------------------------------------------------------------------ */
/* Peers that stall                                                    */

struct stall {
	const char *ns;
	uint32_t addr;               /* host order */
	const uint8_t *send;
	size_t len;
};

/* In a child in B's namespace: connect, send s->send, and time how long
 * until the source closes.  The exit status: elapsed / 50 ms, or 255. */
static int stall_main(void *arg)
{
	const struct stall *s = arg;
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(9093),
				  .sin_addr.s_addr = htonl(s->addr) };
	char nspath[128], buf[4096];
	int64_t t0;
	int ns, fd;

	snprintf(nspath, sizeof nspath, "/run/netns/%s", s->ns);
	ns = open(nspath, O_RDONLY | O_CLOEXEC);
	if (ns < 0 || setns(ns, CLONE_NEWNET) < 0)
		return 255;
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
		return 255;
	t0 = tu_ms();
	if (s->len && send(fd, s->send, s->len, MSG_NOSIGNAL) != (ssize_t)s->len)
		return 255;
	while (tu_ms() - t0 < 5 * TIMEOUT_MS) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		if (poll(&p, 1, 100) > 0 && recv(fd, buf, sizeof buf, 0) <= 0)
			return (int)((tu_ms() - t0) / 50);
	}
	return 255;
}

static int64_t stall_ms(struct env *e, uint32_t addr, const uint8_t *bytes, size_t len)
{
	struct stall s = { .ns = e->lab.ns[B], .addr = addr, .send = bytes, .len = len };
	int st = tu_wait(tu_fork(stall_main, &s), 10000);

	assert_true(st >= 0 && st < 255);
	return st * 50;
}

static void silent_and_stalled_peers_dropped(void **state)
{
	static const uint8_t half_record[] = { 0x16, 0x03, 0x01, 0x01, 0x00, 0x01 };
	static const uint8_t client_hello[] = { 0x16, 0x03, 0x01, 0x00, 0x40, 0x01, 0x00, 0x00 };
	struct env *e = *state;
	int64_t ms;

	need_lab(e);
	ms = stall_ms(e, 0x0ac90001, NULL, 0); /* A: says nothing */
	printf("# a silent peer was dropped by the TLS listener after %lld ms\n", (long long)ms);
	assert_true(ms >= TIMEOUT_MS - 100 && ms <= TIMEOUT_MS + 600);
	expect_log(e, A, "mirror connection from 10.201.0.2:", "it sent nothing within timeout_ms");
	ms = stall_ms(e, 0x0ac90001, half_record, sizeof half_record); /* A: stops midway */
	printf("# a peer that stopped mid-handshake was dropped after %lld ms\n", (long long)ms);
	assert_true(ms >= TIMEOUT_MS - 100 && ms <= TIMEOUT_MS + 600);
	expect_log(e, A, "mirror connection from 10.201.0.2:", "no TLS handshake within timeout_ms");
	ms = stall_ms(e, 0x0ac90004, client_hello, sizeof client_hello); /* D: plain */
	printf("# a TLS ClientHello at a plain listener was refused after %lld ms\n", (long long)ms);
	assert_true(ms <= TIMEOUT_MS + 600);
	/* and the good mirror still streams */
	produce(e->lab.root[A], "orders", 8000, 500, 0);
	tu_lab_caught_up(&e->lab, e->lab.root[A], e->lab.root[B], "orders", 2, WAIT_MS);
}

/* A mirror with good certificates (openssl s_client in B's namespace)
 * that says HELLO and FETCH, then stops reading: the source's sends
 * wait, and after timeout_ms without progress it drops the mirror. */
static void tls_peer_that_never_reads_is_dropped(void **state)
{
	struct env *e = *state;
	struct tu_lab *l = &e->lab;
	struct mp_msg m = { .type = MP_HELLO, .u.hello = { .version = MP_VERSION,
							   .auth = MP_AUTH_TLS } };
	uint8_t buf[2 * MP_CTL_MAX];
	size_t n;
	FILE *f;
	pid_t pid;

	need_lab(e);
	create_topic(l->root[A], "big", 1, 32u << 20);
	produce(l->root[A], "big", 0, 20000, 1000); /* more than the socket buffers hold */
	snprintf(m.u.hello.host, sizeof m.u.hello.host, "never-reads");
	memset(m.u.hello.id, 0x77, sizeof m.u.hello.id); /* version 3: who it is (§M12) */
	snprintf(m.u.hello.link, sizeof m.u.hello.link, "never-reads");
	n = mp_encode(&m, buf, sizeof buf);
	m = (struct mp_msg){ .type = MP_FETCH, .u.fetch = { .id = 1 } };
	snprintf(m.u.fetch.name, sizeof m.u.fetch.name, "big");
	n += mp_encode(&m, buf + n, sizeof buf - n);
	f = fopen(at(e, "fetch.bin"), "w");
	assert_non_null(f);
	assert_int_equal(fwrite(buf, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
	/* stdout into a pipe nobody reads: s_client stops reading the socket */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(tu_lab_sh(l, B, "sh -c '(cat %s/fetch.bin; sleep 6) | timeout 8 openssl "
				"s_client -quiet -connect 10.201.0.1:9093 -cert %s/b.crt -key "
				"%s/b.key -CAfile %s/ca.crt 2>/dev/null | sleep 6'", e->dir, e->dir,
				e->dir, e->dir) ? 1 : 0);
	expect_log(e, A, "mirror never-reads (10.201.0.2:", "disconnected: it has not read for "
		   "timeout_ms");
	tu_wait(pid, 10000);
}

/* ------------------------------------------------------------------ */
/* --check-config                                                      */

/* Run shmbusd --check-config on `text`: its exit status and output. */
static int check_config(struct env *e, const char *name, const char *text, char *out,
			size_t len)
{
	const char *conf = at(e, name), *log = at(e, "check.log");
	const char *args[] = { "--config", conf, "--check-config", NULL };
	struct tu_daemon d = { 0 };
	FILE *f;
	size_t n;
	int st;

	write_file(conf, text, 0644);
	assert_int_equal(tu_daemon_spawn(&d, e->dir, log, args, NULL), 0);
	st = tu_daemon_wait(&d, 10000);
	f = fopen(log, "r");
	assert_non_null(f);
	n = fread(out, 1, len - 1, f);
	out[n] = '\0';
	fclose(f);
	return st;
}

static void expect_refused(struct env *e, const char *what, const char *text, const char *says)
{
	char out[4096];
	int st = check_config(e, "bad.conf", text, out, sizeof out);

	if (st != 2 || !strstr(out, says))
		fail_msg("%s: --check-config exit %d, saying\n  %s\nnot\n  %s", what, st, out, says);
}

static void check_config_refuses_bad_credentials(void **state)
{
	struct env *e = *state;
	char text[2048], out[4096], listen[300];
	int st;

	if (!e->certs)
		tu_skip("%s", e->why);
	snprintf(listen, sizeof listen, "[daemon]\nroot = %s/r\n[mirror-listen]\n"
		 "address = 127.0.0.1:9093\n", e->dir);
	/* the good ones pass */
	snprintf(text, sizeof text, "%stls = on\ncert = %s/a.crt\nkey = %s/a.key\nca = %s/ca.crt\n"
		 "[mirror \"x\"]\nsource = 127.0.0.1:9093\ntopics = t\ntls = on\n"
		 "psk_file = %s/good.psk\n", listen, e->dir, e->dir, e->dir, e->dir);
	st = check_config(e, "good.conf", text, out, sizeof out);
	if (st != 0)
		fail_msg("good TLS keys refused: exit %d: %s", st, out);
	/* a key that is not the certificate's: refused naming both files */
	snprintf(text, sizeof text, "%stls = on\ncert = %s/a.crt\nkey = %s/b.key\nca = %s/ca.crt\n",
		 listen, e->dir, e->dir, e->dir);
	snprintf(out, sizeof out, "[mirror-listen] key %s/b.key: does not match cert %s/a.crt",
		 e->dir, e->dir);
	expect_refused(e, "key of another certificate", text, out);
	/* a PSK file others may read */
	write_file(at(e, "open.psk"), PSK_GOOD "\n", 0644);
	snprintf(text, sizeof text, "%stls = on\npsk_file = %s/open.psk\n", listen, e->dir);
	snprintf(out, sizeof out, "psk_file %s/open.psk: is mode 0644; a pre-shared key must be "
		 "readable by its owner only: chmod 600 %s/open.psk", e->dir, e->dir);
	expect_refused(e, "psk_file mode 0644", text, out);
	/* a PSK file that is not IDENTITY:HEXKEY */
	write_file(at(e, "short.psk"), "mirrors:abcd\n", 0600);
	snprintf(text, sizeof text, "%stls = on\npsk_file = %s/short.psk\n", listen, e->dir);
	expect_refused(e, "short key", text, "the key has 4 hex digits; give 32 to 128");
	/* a certificate that does not exist */
	snprintf(text, sizeof text, "%stls = on\ncert = %s/none.crt\nkey = %s/a.key\n"
		 "ca = %s/ca.crt\n", listen, e->dir, e->dir, e->dir);
	expect_refused(e, "missing cert", text, "none.crt: cannot be read: No such file");
	/* a key where the certificate should be */
	snprintf(text, sizeof text, "%stls = on\ncert = %s/a.key\nkey = %s/a.key\nca = %s/ca.crt\n",
		 listen, e->dir, e->dir, e->dir);
	expect_refused(e, "not a certificate", text, "a.key: not a PEM certificate");
	/* tls = on without credentials, both kinds at once, keys with tls = off */
	snprintf(text, sizeof text, "%stls = on\n", listen);
	expect_refused(e, "no credentials", text, "[mirror-listen] has tls = on but no cert");
	snprintf(text, sizeof text, "%stls = on\ncert = %s/a.crt\npsk_file = %s/good.psk\n", listen,
		 e->dir, e->dir);
	expect_refused(e, "both kinds", text, "has psk_file and cert: a link uses");
	snprintf(text, sizeof text, "%stls = off\npsk_file = %s/good.psk\n", listen, e->dir);
	expect_refused(e, "keys with tls = off", text, "has tls = off but psk_file");
	snprintf(text, sizeof text, "%stls = on\ncert = certs/a.crt\n", listen);
	expect_refused(e, "relative path", text, "cert: \"certs/a.crt\" is not an absolute path");
}

/* ------------------------------------------------------------------ */
/* Throughput, with SHMBUS_TLS_MEASURE=1                               */

/* CPU time the live threads of a process have used, in ms (schedstat:
 * nanoseconds, unlike the 10 ms ticks of /proc/PID/stat). */
static double cpu_ms(pid_t pid)
{
	char path[96];
	unsigned long long total = 0;
	DIR *dir;
	struct dirent *de;

	snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
	dir = opendir(path);
	if (!dir)
		return 0;
	while ((de = readdir(dir))) {
		unsigned long long ns = 0;
		FILE *f;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "/proc/%d/task/%.16s/schedstat", (int)pid, de->d_name);
		f = fopen(path, "r");
		if (f && fscanf(f, "%llu", &ns) == 1)
			total += ns;
		if (f)
			fclose(f);
	}
	closedir(dir);
	return (double)total / 1e6;
}

/* A mirror's catch-up over the lab's veth pairs: `count` records of
 * `size` bytes on A, then B started (READY), and the time until its
 * replica reached A's end; the best of RUNS, as records/s and MB/s. */
#define RUNS 3
static void catch_up(struct env *e, const char *what, const char *tls_b, const char *tls_a,
		     uint64_t count, size_t size, uint64_t capacity)
{
	struct tu_lab *l = &e->lab;
	char text[2048];
	int64_t best = INT64_MAX, all[RUNS];
	double cpu_a = 1e18, cpu_b = 1e18;

	snprintf(text, sizeof text, "[mirror-listen]\naddress = 10.201.0.1:9093\n%s"
		 "timeout_ms = 5000\n", tls_a);
	tu_lab_config(l, A, text);
	snprintf(text, sizeof text, "[mirror \"m\"]\nsource = 10.201.0.1:9093\ntopics = bulk\n%s"
		 "timeout_ms = 5000\n", tls_b);
	tu_lab_config(l, B, text);
	for (int r = 0; r < RUNS; r++) {
		tu_lab_kill(l, A);
		tu_lab_kill(l, B);
		tu_rmrf(l->root[A]);
		tu_rmrf(l->root[B]);
		mkdir(l->root[A], 0755);
		mkdir(l->root[B], 0755);
		tu_lab_start(l, A);
		create_topic(l->root[A], "bulk", 1, capacity);
		produce(l->root[A], "bulk", 0, count, size);
		double a0 = cpu_ms(l->d[A].pid), b0;

		tu_lab_start(l, B);
		b0 = cpu_ms(l->d[B].pid); /* its start-up, before it connects */
		all[r] = tu_lab_catch_up_ms(l, A, B, "bulk", 1, 120000);
		a0 = cpu_ms(l->d[A].pid) - a0;
		b0 = cpu_ms(l->d[B].pid) - b0;
		cpu_a = a0 < cpu_a ? a0 : cpu_a;
		cpu_b = b0 < cpu_b ? b0 : cpu_b;
		if (all[r] < best)
			best = all[r] ? all[r] : 1;
		tu_replica_identical(l->root[A], l->root[B], "bulk", 1, false);
	}
	printf("# catch-up over %-18s %6llu x %5zu B: best of %lld, %lld, %lld ms: %7.0f records/s, "
	       "%6.1f MB/s of values; least CPU: source %.0f ms, mirror %.0f ms (%s)\n",
	       what, (unsigned long long)count, size, (long long)all[0], (long long)all[1],
	       (long long)all[2], count * 1000.0 / (double)best, count * size / 1000.0 / (double)best,
	       cpu_a, cpu_b, strstr(what, "TLS") ?
	       (logged(e, B, ", kTLS", "connected to", 0) ? "kTLS" : "user-space TLS") : "no TLS");
}

static void measure_catch_up(void **state)
{
	struct env *e = *state;
	char a[600], b[600], pa[300], pb[300];
	const char *plain = "tls = off\n";

	if (!getenv("SHMBUS_TLS_MEASURE"))
		tu_skip("set SHMBUS_TLS_MEASURE=1 to measure catch-up throughput, TLS on and off");
	need_lab(e);
	certs_of(e, "a", "ca", a, sizeof a);
	certs_of(e, "b", "ca", b, sizeof b);
	snprintf(pa, sizeof pa, "tls = on\npsk_file = %s/good.psk\n", e->dir);
	snprintf(pb, sizeof pb, "tls = on\npsk_file = %s/good.psk\n", e->dir);
	tu_lab_kill(&e->lab, C);
	tu_lab_kill(&e->lab, D);
	for (int big = 0; big < 2; big++) {
		uint64_t count = big ? 2000 : 200000, cap = big ? 256u << 20 : 64u << 20;
		size_t size = big ? 65536 : 64;

		catch_up(e, "plain TCP", plain, plain, count, size, cap);
		catch_up(e, "TLS (certificates)", b, a, count, size, cap);
		catch_up(e, "TLS (PSK)", pb, pa, count, size, cap);
	}
	assert_true(logged(e, B, "connected to 10.201.0.1:9093", NULL, 0));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(check_config_refuses_bad_credentials),
		cmocka_unit_test(certificates_mirror_byte_identical),
		cmocka_unit_test(psk_mirror_byte_identical),
		cmocka_unit_test(wrong_ca_refused),
		cmocka_unit_test(name_not_allowed_refused),
		cmocka_unit_test(wrong_psk_refused),
		cmocka_unit_test(plaintext_and_tls_refused_both_ways),
		cmocka_unit_test(silent_and_stalled_peers_dropped),
		cmocka_unit_test(tls_peer_that_never_reads_is_dropped),
		cmocka_unit_test(measure_catch_up),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
