/*
 * netlab.c - network namespaces, a bridge and shmbusd per host for the
 * mirroring tests (netlab.h).
 */
#include "netlab.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
	snprintf(l->addr[i], sizeof l->addr[i], "10.201.0.%u", (unsigned char)(i + 1));
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

static void identical_part(const char *src, const char *dst, const char *topic, uint32_t i,
			   bool gaps_ok)
{
	struct part a, b;
	struct part_cursor ca = { 0 }, cb = { 0 };
	struct frame_view va, vb;
	uint64_t lo_a, end_a, lo_b, end_b, seen = 0;

	assert_int_equal(open_part(src, topic, i, &a), 0);
	assert_int_equal(open_part(dst, topic, i, &b), 0);
	part_bounds(&a, &lo_a, &end_a);
	part_bounds(&b, &lo_b, &end_b);
	assert_int_equal(end_a, end_b);
	assert_true(lo_b <= lo_a);
	if (!gaps_ok)
		assert_int_equal(b.hdr->mirror_gaps, 0);
	assert_true(b.hdr->status & PART_STATUS_REPLICA);
	assert_int_equal(part_seek(&a, &ca, lo_a), 0);
	assert_int_equal(part_seek(&b, &cb, lo_a), 0);
	while (part_read(&a, &ca, &va) == 1) {
		assert_int_equal(part_read(&b, &cb, &vb), 1);
		assert_int_equal(va.offset, vb.offset);
		assert_memory_equal(part_at(&a, va.pos) + 8, part_at(&b, vb.pos) + 8,
				    FRAME_HDR_SIZE - 8 + frame_payload_len(&va));
		seen++;
	}
	assert_int_equal(part_read(&b, &cb, &vb), 0);
	if (!gaps_ok)
		assert_int_equal(seen, end_a - lo_a);
	part_unmap(&a);
	part_unmap(&b);
}

void tu_replica_identical(const char *src, const char *dst, const char *topic, uint32_t parts,
			  bool gaps_ok)
{
	for (uint32_t i = 0; i < parts; i++)
		identical_part(src, dst, topic, i, gaps_ok);
}
