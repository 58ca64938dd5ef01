/*
 * netlab.c - network namespaces, a bridge and shmbusd per host for the
 * mirroring tests (netlab.h).
 */
#include "netlab.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

#include "../../shm/format.h"
#include "../../shm/frame.h"
#include "../../shm/partition.h"
#include "../../shm/read.h"

static int run_cmd(const char *cmd)
{
	char full[1100];

	snprintf(full, sizeof full, "%s >/dev/null 2>&1", cmd);
	return system(full) == 0 ? 0 : -1;
}

int tu_sh(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	return run_cmd(cmd);
}

int tu_lab_sh(struct tu_lab *l, int i, const char *fmt, ...)
{
	char cmd[900], full[1000];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	snprintf(full, sizeof full, "ip netns exec %s %s", l->ns[i], cmd);
	return run_cmd(full);
}

static bool lab_fail(struct tu_lab *l, const char *why)
{
	snprintf(l->why, sizeof l->why, "%s", why);
	return false;
}

/* One host: its namespace, a veth pair from it to the bridge, eth0 up with
 * its address. */
static bool add_host(struct tu_lab *l, int i, int pid)
{
	char in[16], out[16];

	snprintf(l->ns[i], sizeof l->ns[i], "shmb%c%d", 'a' + i, pid);
	snprintf(l->addr[i], sizeof l->addr[i], "10.201.0.%d", (i + 1) & 0xff); /* i < 4 */
	snprintf(in, sizeof in, "shv%c%d", 'a' + i, pid % 1000000);
	snprintf(out, sizeof out, "shw%c%d", 'a' + i, pid % 1000000);
	if (tu_sh("ip netns add %s", l->ns[i]) < 0)
		return lab_fail(l, "`ip netns add` failed");
	l->made[i] = true;
	if (tu_sh("ip link add %s type veth peer name %s", in, out) < 0)
		return lab_fail(l, "a veth pair could not be made (`ip link add type veth`)");
	if (tu_sh("ip link set %s netns %s", in, l->ns[i]) < 0 ||
	    tu_sh("ip link set %s netns %s", out, l->sw) < 0) {
		tu_sh("ip link del %s", in);
		return lab_fail(l, "a veth end could not be moved into a namespace");
	}
	if (tu_sh("ip -n %s link set %s name eth0", l->ns[i], in) < 0 ||
	    tu_sh("ip -n %s addr add %s/24 dev eth0", l->ns[i], l->addr[i]) < 0 ||
	    tu_sh("ip -n %s link set eth0 up", l->ns[i]) < 0 ||
	    tu_sh("ip -n %s link set lo up", l->ns[i]) < 0 ||
	    tu_sh("ip -n %s link set %s master br0", l->sw, out) < 0 ||
	    tu_sh("ip -n %s link set %s up", l->sw, out) < 0)
		return lab_fail(l, "a host's link could not be configured");
	return true;
}

static bool build(struct tu_lab *l)
{
	int pid = (int)getpid();

	if (getuid() != 0)
		return lab_fail(l, "needs root, for network namespaces");
	snprintf(l->sw, sizeof l->sw, "shmbsw%d", pid);
	if (tu_sh("ip netns add %s", l->sw) < 0)
		return lab_fail(l, "`ip netns add` is not available here");
	l->made[TU_LAB_HOSTS] = true;
	if (tu_sh("ip -n %s link add br0 type bridge", l->sw) < 0 ||
	    tu_sh("ip -n %s link set br0 up", l->sw) < 0)
		return lab_fail(l, "a bridge could not be made (`ip link add type bridge`)");
	for (int i = 0; i < l->hosts; i++)
		if (!add_host(l, i, pid))
			return false;
	return true;
}

void tu_lab_init(struct tu_lab *l, int hosts)
{
	memset(l, 0, sizeof *l);
	l->hosts = hosts < 1 ? 1 : hosts > TU_LAB_HOSTS ? TU_LAB_HOSTS : hosts;
	if (!build(l))
		return;
	l->dir = tu_tmpdir("netlab");
	for (int i = 0; i < l->hosts; i++) {
		snprintf(l->root[i], sizeof l->root[i], "%s/%c", l->dir, 'a' + i);
		snprintf(l->conf[i], sizeof l->conf[i], "%s/%c.conf", l->dir, 'a' + i);
		mkdir(l->root[i], 0755);
	}
	l->ok = true;
}

void tu_lab_fini(struct tu_lab *l)
{
	for (int i = 0; i < l->hosts; i++)
		if (l->d[i].pid > 0)
			tu_daemon_kill(&l->d[i]);
	for (int i = 0; i < l->hosts; i++)
		if (l->made[i])
			tu_sh("ip netns del %s", l->ns[i]); /* takes its end of the veth */
	if (l->made[TU_LAB_HOSTS])
		tu_sh("ip netns del %s", l->sw);
	if (l->dir) {
		tu_rmrf(l->dir);
		free(l->dir);
	}
	memset(l, 0, sizeof *l);
}

void tu_lab_need(struct tu_lab *l)
{
	if (!l->ok)
		tu_skip("%s\n", l->why);
}

void tu_lab_config(struct tu_lab *l, int i, const char *text)
{
	FILE *f = fopen(l->conf[i], "w");

	assert_non_null(f);
	fprintf(f, "[daemon]\nroot = %s\n\n%s", l->root[i], text);
	assert_int_equal(fclose(f), 0);
}

void tu_lab_start(struct tu_lab *l, int i)
{
	assert_int_equal(tu_daemon_start_config_netns(&l->d[i], l->root[i], l->conf[i], l->ns[i],
						      10000), 0);
}

void tu_lab_kill(struct tu_lab *l, int i)
{
	if (l->d[i].pid > 0)
		tu_daemon_kill(&l->d[i]);
}

void tu_lab_link(struct tu_lab *l, int i, bool up)
{
	assert_int_equal(tu_sh("ip -n %s link set eth0 %s", l->ns[i], up ? "up" : "down"), 0);
}

static int open_part(const char *root, const char *topic, uint32_t part, struct part *ret)
{
	char dir[400], name[16];
	int fd, rc;

	snprintf(dir, sizeof dir, "%s/topics/%s", root, topic);
	snprintf(name, sizeof name, "%u", part);
	fd = open(dir, O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		return -1;
	rc = part_open(fd, name, true, name, ret);
	close(fd);
	return rc;
}

uint64_t tu_part_high(const char *root, const char *topic, uint32_t part)
{
	struct part p;
	uint64_t lo, end;

	if (open_part(root, topic, part, &p) < 0)
		return 0;
	part_bounds(&p, &lo, &end);
	part_unmap(&p);
	return end;
}

static void dump_all(struct tu_lab *l)
{
	for (int i = 0; i < l->hosts; i++)
		if (l->d[i].pid > 0)
			tu_daemon_dump(&l->d[i]);
}

void tu_lab_caught_up(struct tu_lab *l, const char *src, const char *dst, const char *topic,
		      uint32_t parts, int ms)
{
	int64_t until = tu_ms() + ms;
	uint32_t done = 0;

	while (tu_ms() < until) {
		done = 0;
		for (uint32_t p = 0; p < parts; p++) {
			uint64_t a = tu_part_high(src, topic, p);

			done += a > 0 && tu_part_high(dst, topic, p) == a;
		}
		if (done == parts)
			return;
		usleep(20000);
	}
	dump_all(l);
	fail_msg("the replica of %s under %s did not catch up with %s within %d ms (%u of %u "
		 "partitions)", topic, dst, src, ms, done, parts);
}

int64_t tu_lab_catch_up_ms(struct tu_lab *l, int src, int dst, const char *topic,
			   uint32_t parts, int timeout_ms)
{
	int64_t t0 = tu_ms(), until = t0 + timeout_ms;

	while (tu_ms() < until) {
		uint32_t done = 0;

		for (uint32_t p = 0; p < parts; p++) {
			uint64_t a = tu_part_high(l->root[src], topic, p);

			done += a > 0 && tu_part_high(l->root[dst], topic, p) == a;
		}
		if (done == parts)
			return tu_ms() - t0;
		usleep(2000);
	}
	dump_all(l);
	fail_msg("the replica of %s on host %c did not catch up with host %c within %d ms", topic,
		 'a' + dst, 'a' + src, timeout_ms);
	return -1;
}

/*
 * A replica with a gap starts later than its source by at most what one
 * padding can hold: after the gap (an aborted range of 8 bytes an
 * offset, where the source had records) its frames lie at other
 * positions of its ring than the source's, and wrap at another record,
 * so its ring may hold fewer of the newest.  The frames of the offsets
 * it lacks take less than one frame of the largest size (the padding
 * the shift can move).  The offset both hold from is returned.
 */
static uint64_t shifted_start(struct part *a, uint64_t lo_a, uint64_t lo_b)
{
	struct part_cursor c = { 0 };
	struct frame_view v;
	uint64_t bytes = 0;

	if (lo_b <= lo_a)
		return lo_a;
	assert_int_equal(part_seek(a, &c, lo_a), 0);
	while (part_read(a, &c, &v) == 1 && v.offset + 1 < lo_b)
		bytes += v.len;
	if (bytes >= a->max_frame)
		fail_msg("the replica of %s/%u starts at %llu, the source at %llu: %llu bytes of "
			 "records more than a ring's shift explains", a->hdr->topic, a->partition,
			 (unsigned long long)lo_b, (unsigned long long)lo_a,
			 (unsigned long long)bytes);
	return lo_b;
}

static void identical_part(const char *src, const char *dst, const char *topic, uint32_t i,
			   bool gaps_ok)
{
	struct part a, b;
	struct part_cursor ca = { 0 }, cb = { 0 };
	struct frame_view va, vb;
	uint64_t lo_a, end_a, lo_b, end_b, from, seen = 0;

	assert_int_equal(open_part(src, topic, i, &a), 0);
	assert_int_equal(open_part(dst, topic, i, &b), 0);
	part_bounds(&a, &lo_a, &end_a);
	part_bounds(&b, &lo_b, &end_b);
	assert_int_equal(end_a, end_b);
	if (!gaps_ok) {
		assert_true(lo_b <= lo_a);
		assert_int_equal(b.hdr->mirror_gaps, 0);
	}
	assert_true(b.hdr->status & PART_STATUS_REPLICA);
	from = gaps_ok ? shifted_start(&a, lo_a, lo_b) : lo_a;
	assert_int_equal(part_seek(&a, &ca, from), 0);
	assert_int_equal(part_seek(&b, &cb, from), 0);
	while (part_read(&a, &ca, &va) == 1) {
		assert_int_equal(part_read(&b, &cb, &vb), 1);
		assert_int_equal(va.offset, vb.offset);
		assert_memory_equal(part_at(&a, va.pos) + 8, part_at(&b, vb.pos) + 8,
				    FRAME_HDR_SIZE - 8 + frame_payload_len(&va));
		seen++;
	}
	assert_int_equal(part_read(&b, &cb, &vb), 0);
	/* both read to their end (aborted offsets are skipped by both) */
	assert_int_equal(ca.off, end_a);
	assert_int_equal(cb.off, end_b);
	if (!gaps_ok)
		assert_true(seen > 0 || end_a == lo_a);
	part_unmap(&a);
	part_unmap(&b);
}

void tu_replica_identical(const char *src, const char *dst, const char *topic, uint32_t parts,
			  bool gaps_ok)
{
	for (uint32_t i = 0; i < parts; i++)
		identical_part(src, dst, topic, i, gaps_ok);
}

struct http_get {
	const char *ns, *addr, *path;
	int port;
	char *buf;
	size_t len;
	int rc;
};

/* The request and its answer, from a socket made inside the namespace. */
static int http_exchange(struct http_get *g)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)g->port) };
	char req[512];
	size_t got = 0;
	int64_t until = tu_ms() + 5000;
	int fd, rc = 0;

	if (inet_pton(AF_INET, g->addr, &sa.sin_addr) != 1)
		return -EINVAL;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n",
		 g->path, g->addr);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
	    send(fd, req, strlen(req), MSG_NOSIGNAL) < 0)
		rc = -errno;
	while (rc == 0 && got + 1 < g->len) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t k;

		if (poll(&p, 1, (int)(until - tu_ms() > 0 ? until - tu_ms() : 0)) <= 0) {
			rc = -ETIMEDOUT;
			break;
		}
		k = recv(fd, g->buf + got, g->len - 1 - got, 0);
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	g->buf[got] = '\0';
	close(fd);
	return rc;
}

static void *http_main(void *arg)
{
	struct http_get *g = arg;
	char path[128];
	int fd;

	snprintf(path, sizeof path, "/run/netns/%s", g->ns);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	/* setns moves this thread only: the test's own threads stay put */
	if (fd < 0 || setns(fd, CLONE_NEWNET) < 0)
		g->rc = -errno;
	else
		g->rc = http_exchange(g);
	if (fd >= 0)
		close(fd);
	return NULL;
}

int tu_lab_http_get(struct tu_lab *l, int i, const char *addr, int port, const char *path,
		    char *buf, size_t len)
{
	struct http_get g = { .ns = l->ns[i], .addr = addr, .path = path, .port = port,
			      .buf = buf, .len = len };
	pthread_t t;

	if (len == 0)
		return -EINVAL;
	buf[0] = '\0';
	if (pthread_create(&t, NULL, http_main, &g))
		return -EAGAIN;
	pthread_join(t, NULL);
	return g.rc;
}

double tu_metric(const char *text, const char *sample)
{
	size_t n = strlen(sample);

	for (const char *at = strstr(text, sample); at; at = strstr(at + 1, sample))
		if ((at == text || at[-1] == '\n') && at[n] == ' ')
			return strtod(at + n + 1, NULL);
	return -1;
}
