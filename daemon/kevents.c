/*
 * kevents.c - the kernel-events source: BPF programs on the tracepoints
 * sched_process_exec, sched_process_exit and inet_sock_set_state write
 * struct kev_record into a ring buffer (trace/kevents.bpf.c); the event
 * loop drains it and appends each event to the configured topic, keyed by
 * the pid (exec, exit) or the connection ("127.0.0.1:40000-127.0.0.1:80"),
 * its value in JSON or the compact binary form (docs/kernel-events.md).
 *
 * The BPF object is a file built beside the daemon (build/trace/, or
 * $(PREFIX)/lib/shmbus/ once installed), or bpf_object = PATH: the daemon
 * itself needs only libbpf, and builds where clang, bpftool or the
 * kernel's BTF are missing.  Events the kernel could not queue (a full
 * ring) and those the topic refused are counted and exported as metrics.
 * Everything here runs in the loop thread, but kevents_stats().
 */
#include "kevents.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "../trace/kevents.h"
#include "shmbusd.h"

struct kevents {
	struct bpf_object *obj;
	struct bpf_link *links[3];
	struct ring_buffer *rb;
	int rb_fd, dropped_fd;
	shmbus_producer *producer;
	int format;
	int64_t realtime_offset;     /* REALTIME - MONOTONIC: BPF stamps CLOCK_MONOTONIC */
	uint64_t records, dropped_publish, logged_drops;
};

/* ------------------------------------------------------------------ */
/* Configuration                                                       */

static int event_mask(const char *v, unsigned *ret, char *why, size_t len)
{
	static const char *const names[] = { [KEV_EXEC] = "exec", [KEV_EXIT] = "exit",
					     [KEV_CONNECT] = "connect", [KEV_ACCEPT] = "accept" };
	char copy[256], *save = NULL;
	unsigned m = 0;

	snprintf(copy, sizeof copy, "%s", v);
	for (char *w = strtok_r(copy, ", ", &save); w; w = strtok_r(NULL, ", ", &save)) {
		unsigned t = KEV_EXEC;

		while (t <= KEV_ACCEPT && strcmp(w, names[t]))
			t++;
		if (t > KEV_ACCEPT) {
			snprintf(why, len, "\"%s\" is not an event; use exec, exit, connect and accept, "
				 "separated by commas", w);
			return -1;
		}
		m |= KEV_MASK(t);
	}
	if (!m) {
		snprintf(why, len, "no event named; use e.g. exec,exit,connect,accept");
		return -1;
	}
	*ret = m;
	return 0;
}

int kevents_config_key(struct kevents_config *k, const char *key, const char *v, char *why,
		       size_t len)
{
	if (!strcmp(key, "enabled")) {
		if (!strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "1"))
			k->enabled = true;
		else if (!strcmp(v, "no") || !strcmp(v, "false") || !strcmp(v, "0"))
			k->enabled = false;
		else
			return snprintf(why, len, "\"%s\" is not yes or no", v), -1;
	} else if (!strcmp(key, "topic")) {
		if (!*v || strlen(v) > 249 || strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN"
					     "OPQRSTUVWXYZ0123456789._-") != strlen(v) ||
		    !strcmp(v, ".") || !strcmp(v, ".."))
			return snprintf(why, len, "\"%s\" is not a topic name; use 1 to 249 of "
					"[A-Za-z0-9._-]", v), -1;
		snprintf(k->topic, sizeof k->topic, "%s", v);
	} else if (!strcmp(key, "events")) {
		return event_mask(v, &k->mask, why, len);
	} else if (!strcmp(key, "format")) {
		if (!strcmp(v, "json"))
			k->format = KEVENTS_JSON;
		else if (!strcmp(v, "binary"))
			k->format = KEVENTS_BINARY;
		else
			return snprintf(why, len, "\"%s\" is not a format; use json or binary", v), -1;
	} else if (!strcmp(key, "bpf_object")) {
		if (v[0] != '/' || strlen(v) >= sizeof k->bpf_object)
			return snprintf(why, len, "\"%s\" is not an absolute path", v), -1;
		snprintf(k->bpf_object, sizeof k->bpf_object, "%s", v);
	} else {
		return snprintf(why, len, "unknown key in [kernel-events]; use enabled, topic, "
				"events, format or bpf_object"), -1;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Records                                                             */

static void addr_text(const struct kev_record *r, const unsigned char *a, char *buf, size_t sz)
{
	if (!inet_ntop(r->family == 6 ? AF_INET6 : AF_INET, a, buf, (socklen_t)sz))
		snprintf(buf, sz, "?");
}

/* "127.0.0.1:40000-127.0.0.1:80", "[::1]:40000-[::1]:80" (local-remote) */
static void conn_key(const struct kev_record *r, char *buf, size_t sz)
{
	char s[64], d[64];
	const char *o = r->family == 6 ? "[" : "", *c = r->family == 6 ? "]" : "";

	addr_text(r, r->saddr, s, sizeof s);
	addr_text(r, r->daddr, d, sizeof d);
	snprintf(buf, sz, "%s%s%s:%u-%s%s%s:%u", o, s, c, r->sport, o, d, c, r->dport);
}

/* A JSON string of kernel bytes (a comm, a file name) */
static size_t json_str(char *out, size_t sz, const char *s, size_t max)
{
	size_t n = 0;

	if (sz < 8)
		return 0;
	out[n++] = '"';
	for (size_t i = 0; i < max && s[i] && n + 8 < sz; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch == '"' || ch == '\\')
			n += (size_t)snprintf(out + n, sz - n, "\\%c", ch);
		else if (ch < 0x20 || ch > 0x7e)
			n += (size_t)snprintf(out + n, sz - n, "\\u%04x", ch);
		else
			out[n++] = (char)ch;
	}
	out[n++] = '"';
	out[n] = '\0';
	return n;
}

static const char *type_name(unsigned t)
{
	switch (t) {
	case KEV_EXEC: return "exec";
	case KEV_EXIT: return "exit";
	case KEV_CONNECT: return "connect";
	default: return "accept";
	}
}

static size_t json_value(const struct kev_record *r, char *out, size_t sz)
{
	char comm[128], file[1600], s[64], d[64];
	int n;

	json_str(comm, sizeof comm, r->comm, sizeof r->comm);
	n = snprintf(out, sz, "{\"type\":\"%s\",\"time_ns\":%llu,\"pid\":%u,\"ppid\":%u,\"uid\":%u,"
		     "\"comm\":%s", type_name(r->type), r->time_ns, r->pid, r->ppid, r->uid, comm);
	if (r->type == KEV_EXEC) {
		json_str(file, sizeof file, r->filename, sizeof r->filename);
		n += snprintf(out + n, sz - (size_t)n, ",\"filename\":%s}", file);
	} else if (r->type == KEV_EXIT) {
		n += snprintf(out + n, sz - (size_t)n, ",\"exit_code\":%d,\"exit_status\":%d,"
			      "\"signal\":%d}", r->exit_code, (r->exit_code >> 8) & 0xff,
			      r->exit_code & 0x7f);
	} else {
		addr_text(r, r->saddr, s, sizeof s);
		addr_text(r, r->daddr, d, sizeof d);
		n += snprintf(out + n, sz - (size_t)n, ",\"family\":%u,\"saddr\":\"%s\",\"sport\":%u,"
			      "\"daddr\":\"%s\",\"dport\":%u}", r->family, s, r->sport, d, r->dport);
	}
	return (size_t)n < sz ? (size_t)n : sz - 1;
}

/* One event from the ring: checked, keyed, formatted, appended */
static int on_record(void *ctx, void *data, size_t len)
{
	struct kevents *k = ctx;
	struct kev_record r;
	char key[160], value[2048];
	struct shmbus_record rec = { .key = key };

	if (len < sizeof r)
		return 0;
	memcpy(&r, data, sizeof r); /* the ring is mapped read-only */
	if (r.version != KEV_VERSION || r.type < KEV_EXEC || r.type > KEV_ACCEPT)
		return 0;
	r.comm[KEV_COMM_MAX - 1] = r.filename[KEV_FILENAME_MAX - 1] = '\0';
	r.time_ns += (unsigned long long)k->realtime_offset;
	if (r.type == KEV_EXEC || r.type == KEV_EXIT)
		snprintf(key, sizeof key, "%u", r.pid);
	else
		conn_key(&r, key, sizeof key);
	rec.key_len = strlen(key);
	rec.timestamp_ns = (int64_t)r.time_ns;
	if (k->format == KEVENTS_BINARY) {
		rec.value = &r;
		rec.value_len = sizeof r;
	} else {
		rec.value = value;
		rec.value_len = json_value(&r, value, sizeof value);
	}
	if (shmbus_producer_send(k->producer, SHMBUS_PARTITION_ANY, &rec, NULL) < 0)
		__atomic_fetch_add(&k->dropped_publish, 1, __ATOMIC_RELAXED);
	else
		__atomic_fetch_add(&k->records, 1, __ATOMIC_RELAXED);
	return 0;
}

static void on_ready(struct daemon *d, uint32_t events, void *arg)
{
	struct kevents *k = arg;
	uint64_t dropped;

	(void)events;
	ring_buffer__consume(k->rb);
	dropped = k->dropped_publish;
	if (dropped > k->logged_drops) {
		log_warn("kernel-events: %llu event(s) could not be appended to topic \"%s\": %s",
			 (unsigned long long)(dropped - k->logged_drops),
			 d->cfg.kevents.topic[0] ? d->cfg.kevents.topic : KEVENTS_DEFAULT_TOPIC,
			 shmbus_errmsg());
		k->logged_drops = dropped;
	}
}

/* ------------------------------------------------------------------ */
/* Start and stop                                                      */

/* The BPF object: bpf_object = PATH, else beside the daemon */
static int object_path(const struct kevents_config *c, char *buf, size_t sz)
{
	static const char *const rel[] = { "trace/kevents.bpf.o", "../lib/shmbus/kevents.bpf.o" };
	char self[PATH_MAX];
	ssize_t n;
	char *slash;

	if (c->bpf_object[0]) {
		snprintf(buf, sz, "%s", c->bpf_object);
		return access(buf, R_OK) == 0 ? 0 : -errno;
	}
	n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n <= 0)
		return -ENOENT;
	self[n] = '\0';
	slash = strrchr(self, '/');
	if (slash)
		slash[1] = '\0';
	for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
		snprintf(buf, sz, "%s%s", self, rel[i]);
		if (access(buf, R_OK) == 0)
			return 0;
	}
	snprintf(buf, sz, "%s%s", self, rel[0]);
	return -ENOENT;
}

static int64_t realtime_offset(void)
{
	struct timespec r, m;

	clock_gettime(CLOCK_REALTIME, &r);
	clock_gettime(CLOCK_MONOTONIC, &m);
	return (r.tv_sec - m.tv_sec) * 1000000000LL + (r.tv_nsec - m.tv_nsec);
}

/* Open, load and attach the programs; 0 or -errno (logged) */
static int load(struct kevents *k, const char *path, unsigned mask)
{
	static const char *const progs[] = { "kev_exec", "kev_exit", "kev_tcp" };
	unsigned zero = 0;
	int rc;

	k->obj = bpf_object__open_file(path, NULL);
	if (!k->obj) {
		rc = -errno;
		log_err("kernel-events: cannot open %s: %s", path, strerror(-rc));
		return rc;
	}
	rc = bpf_object__load(k->obj);
	if (rc) {
		log_err("kernel-events: the kernel refused the BPF programs of %s: %s%s", path,
			strerror(-rc), rc == -EPERM || rc == -EACCES ? "; shmbusd needs root (or "
			"CAP_BPF and CAP_PERFMON) for [kernel-events]" : "");
		return rc;
	}
	k->rb_fd = bpf_object__find_map_fd_by_name(k->obj, "kev_ring");
	k->dropped_fd = bpf_object__find_map_fd_by_name(k->obj, "kev_dropped");
	rc = bpf_object__find_map_fd_by_name(k->obj, "kev_mask");
	if (k->rb_fd < 0 || k->dropped_fd < 0 || rc < 0 ||
	    bpf_map_update_elem(rc, &zero, &mask, BPF_ANY) < 0) {
		log_err("kernel-events: %s is not shmbus's kevents.bpf.o (its maps differ)", path);
		return -EINVAL;
	}
	for (size_t i = 0; i < sizeof progs / sizeof progs[0]; i++) {
		struct bpf_program *p = bpf_object__find_program_by_name(k->obj, progs[i]);

		k->links[i] = p ? bpf_program__attach(p) : NULL;
		if (!k->links[i]) {
			rc = -errno;
			log_err("kernel-events: cannot attach %s of %s: %s", progs[i], path,
				strerror(-rc));
			return rc ? rc : -EINVAL;
		}
	}
	return 0;
}

static int open_topic(struct daemon *d, struct kevents *k, const char *topic)
{
	int rc = shmbus_topic_create(d->bus, topic, NULL);

	if (rc < 0 && rc != -EEXIST) {
		log_err("kernel-events: cannot create topic \"%s\": %s", topic, shmbus_errmsg());
		return rc;
	}
	rc = shmbus_producer_new(d->bus, topic, NULL, &k->producer);
	if (rc < 0)
		log_err("kernel-events: cannot produce to topic \"%s\": %s", topic, shmbus_errmsg());
	return rc;
}

static void destroy(struct kevents *k)
{
	if (!k)
		return;
	ring_buffer__free(k->rb);
	for (size_t i = 0; i < sizeof k->links / sizeof k->links[0]; i++)
		bpf_link__destroy(k->links[i]);
	bpf_object__close(k->obj);
	shmbus_producer_free(k->producer);
	free(k);
}

void kevents_init(struct daemon *d)
{
	const struct kevents_config *c = &d->cfg.kevents;
	const char *topic = c->topic[0] ? c->topic : KEVENTS_DEFAULT_TOPIC;
	unsigned mask = c->mask ? c->mask : KEV_MASK(KEV_EXEC) | KEV_MASK(KEV_EXIT) |
					    KEV_MASK(KEV_CONNECT) | KEV_MASK(KEV_ACCEPT);
	char path[PATH_MAX + 64];
	struct kevents *k;

	if (!c->enabled)
		return;
	if (object_path(c, path, sizeof path) < 0) {
		log_err("kernel-events: no BPF object %s: it is built only where clang, bpftool, "
			"libbpf-dev and the kernel's BTF are present (see make's message), or set "
			"bpf_object in [kernel-events]; the source is off", path);
		return;
	}
	k = calloc(1, sizeof *k);
	if (!k) {
		log_err("kernel-events: out of memory; the source is off");
		return;
	}
	k->format = c->format;
	k->realtime_offset = realtime_offset();
	if (load(k, path, mask) < 0 || open_topic(d, k, topic) < 0 ||
	    !(k->rb = ring_buffer__new(k->rb_fd, on_record, k, NULL)) ||
	    loop_add(d, ring_buffer__epoll_fd(k->rb), EPOLLIN, on_ready, k) < 0) {
		log_err("kernel-events: the source is off");
		destroy(k);
		return;
	}
	__atomic_store_n(&d->kevents, k, __ATOMIC_RELEASE);
	log_info("kernel-events: publishing%s%s%s%s into topic \"%s\" as %s",
		 mask & KEV_MASK(KEV_EXEC) ? " exec" : "", mask & KEV_MASK(KEV_EXIT) ? " exit" : "",
		 mask & KEV_MASK(KEV_CONNECT) ? " connect" : "",
		 mask & KEV_MASK(KEV_ACCEPT) ? " accept" : "", topic,
		 k->format == KEVENTS_BINARY ? "binary" : "JSON");
}

void kevents_fini(struct daemon *d)
{
	struct kevents *k = d->kevents;

	if (!k)
		return;
	loop_del(d, ring_buffer__epoll_fd(k->rb));
	d->kevents = NULL;
	destroy(k);
}

void kevents_stats(struct daemon *d, struct kevents_stats *ret)
{
	struct kevents *k = __atomic_load_n(&d->kevents, __ATOMIC_ACQUIRE);
	unsigned zero = 0;
	unsigned long long dropped = 0;

	*ret = (struct kevents_stats){ 0 };
	if (!k)
		return;
	ret->running = true;
	ret->records = __atomic_load_n(&k->records, __ATOMIC_RELAXED);
	ret->dropped_publish = __atomic_load_n(&k->dropped_publish, __ATOMIC_RELAXED);
	if (bpf_map_lookup_elem(k->dropped_fd, &zero, &dropped) == 0)
		ret->dropped_kernel = dropped;
}

/* The binary value format is an ABI (docs/kernel-events.md) */
_Static_assert(sizeof(struct kev_record) == 336, "struct kev_record is 336 bytes");
_Static_assert(offsetof(struct kev_record, time_ns) == 24, "kev_record.time_ns at 24");
_Static_assert(offsetof(struct kev_record, saddr) == 32, "kev_record.saddr at 32");
_Static_assert(offsetof(struct kev_record, comm) == 64, "kev_record.comm at 64");
_Static_assert(offsetof(struct kev_record, filename) == 80, "kev_record.filename at 80");
