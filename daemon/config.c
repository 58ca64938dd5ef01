/*
 * config.c - the daemon's configuration file, read with libinih.
 *
 * Sections and keys (docs/shmbusd.conf.md has each default and meaning):
 *   [daemon]    root, control_socket, admin_group, log_level,
 *               unblock_timeout_ms, tick_ms, metrics, file_mode,
 *               max_connections_per_uid
 *   [flush]     interval_ms, records          (disk roots only)
 *   [retention] default_ms
 *   [topic NAME] partitions, capacity, policy, retention_ms, numa_node
 *   [mirror-listen] address, tls, timeout_ms, min_mirrors, and with
 *                   tls = on: cert, key, ca, allow, or psk_file
 *   [mirror "NAME"] source, topics, tls, timeout_ms, ack, and the same TLS
 *                   keys
 * An error names the file, the line, the key and the fix.
 */
#include "config.h"

#include <errno.h>
#include <grp.h>
#include <ini.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "log.h"
#include "mirror_link.h"
#include "../shm/directory.h"
#include "../shm/mirrorproto.h"

struct parse {
	struct config *c;
	FILE *f;
	int line;                    /* lines read so far (inih counts the same way) */
	int why_line;                /* the line of the first complaint */
	char why[384];               /* the handler's first complaint */
};

void config_defaults(struct config *c)
{
	*c = (struct config){
		.log_level = LOG_INFO,
		.unblock_timeout_ms = 1000,
		.tick_ms = 100,
		.file_mode = 0660,
		.max_conns_per_uid = 64,
		.flush_interval_ms = 1000,
		.mlisten = { .tls = -1, .timeout_ms = 10000, .min_mirrors = 1 },
	};
}

void config_free(struct config *c)
{
	free(c->topics);
	c->topics = NULL;
	c->ntopics = 0;
	free(c->mirrors);
	c->mirrors = NULL;
	c->nmirrors = 0;
}

#define STR_(x) #x
#define STR(x) STR_(x)
#define PARTITIONS_MAX_STR STR(BUS_MAX_PARTITIONS_N)

static int complain(struct parse *ps, const char *key, const char *fmt, const char *value)
{
	char what[256];

	if (ps->why[0])
		return 0;   /* inih goes on after an error and reports the first line */
	ps->why_line = ps->line;
	snprintf(what, sizeof what, fmt, value);
	snprintf(ps->why, sizeof ps->why, "%s: %s", key, what);
	return 0;
}

/* A whole decimal number in [min, max]. */
static bool number(const char *v, int64_t min, int64_t max, int64_t *ret)
{
	char *end;
	long long n;

	errno = 0;
	n = strtoll(v, &end, 10);
	if (errno || end == v || *end || n < min || n > max)
		return false;
	*ret = n;
	return true;
}

/* Bytes with an optional K, M or G (powers of 1024). */
static bool size(const char *v, uint64_t *ret)
{
	char *end;
	unsigned long long n;
	unsigned shift = 0;

	errno = 0;
	n = strtoull(v, &end, 10);
	if (errno || end == v || *v == '-')
		return false;
	if (*end == 'K' || *end == 'k')
		shift = 10;
	else if (*end == 'M' || *end == 'm')
		shift = 20;
	else if (*end == 'G' || *end == 'g')
		shift = 30;
	else if (*end)
		return false;
	if (shift && end[1])
		return false;
	if (n > (UINT64_MAX >> shift))
		return false;
	*ret = (uint64_t)n << shift;
	return true;
}

int config_metrics_split(const char *spec, char *host, size_t hlen, char *port, size_t plen)
{
	const char *colon = strrchr(spec, ':');
	size_t n;

	if (!colon || !colon[1] || strspn(colon + 1, "0123456789") != strlen(colon + 1) ||
	    strlen(colon + 1) >= plen || atoi(colon + 1) > 65535)
		return -EINVAL;
	n = (size_t)(colon - spec);
	if (n >= 2 && spec[0] == '[' && spec[n - 1] == ']') {
		spec++;
		n -= 2;
	}
	if (n >= hlen)
		return -EINVAL;
	memcpy(host, spec, n);
	host[n] = '\0';
	snprintf(port, plen, "%s", colon + 1);
	return 0;
}

int config_metrics_check(const char *spec, char *why, size_t len)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICSERV | AI_PASSIVE }, *ai;
	char host[128], port[8];
	int rc;

	if (!*spec)
		return 0; /* no metrics endpoint */
	if (config_metrics_split(spec, host, sizeof host, port, sizeof port) < 0) {
		snprintf(why, len, "\"%s\" is not ADDR:PORT (a port from 0 to 65535); write e.g. "
			 "127.0.0.1:9465, or leave it empty for none", spec);
		return -EINVAL;
	}
	rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &ai);
	if (rc) {
		snprintf(why, len, "cannot resolve \"%s\": %s; write an address this host has, "
			 "e.g. 127.0.0.1:%s", host, gai_strerror(rc), port);
		return -EINVAL;
	}
	freeaddrinfo(ai);
	return 0;
}

static int daemon_key(struct parse *ps, const char *k, const char *v)
{
	struct config *c = ps->c;
	int64_t n;

	if (!strcmp(k, "root"))
		snprintf(c->root, sizeof c->root, "%s", v);
	else if (!strcmp(k, "control_socket"))
		snprintf(c->control_socket, sizeof c->control_socket, "%s", v);
	else if (!strcmp(k, "admin_group")) {
		struct group *g = *v ? getgrnam(v) : NULL;

		if (!*v) {          /* empty: no admin group (the default) */
			c->admin_group[0] = '\0';
			c->admin_gid = 0;
			c->has_admin_gid = false;
			return 1;
		}
		if (!g)
			return complain(ps, k, "no group named \"%s\"; create it or fix the name", v);
		snprintf(c->admin_group, sizeof c->admin_group, "%s", v);
		c->admin_gid = g->gr_gid;
		c->has_admin_gid = true;
	} else if (!strcmp(k, "log_level")) {
		int lvl = log_level_parse(v);

		if (lvl < 0)
			return complain(ps, k, "\"%s\" is not a level; use error, warning, notice, "
					"info or debug", v);
		c->log_level = lvl;
	} else if (!strcmp(k, "unblock_timeout_ms")) {
		if (!number(v, 10, 3600000, &n))
			return complain(ps, k, "\"%s\" is not a number of milliseconds between 10 and "
					"3600000; write e.g. 1000", v);
		c->unblock_timeout_ms = n;
	} else if (!strcmp(k, "tick_ms")) {
		if (!number(v, 1, 60000, &n))
			return complain(ps, k, "\"%s\" is not a number of milliseconds between 1 and "
					"60000; write e.g. 100", v);
		c->tick_ms = n;
	} else if (!strcmp(k, "metrics")) {
		char why[200];

		if (config_metrics_check(v, why, sizeof why) < 0)
			return complain(ps, k, "%s", why);
		snprintf(c->metrics, sizeof c->metrics, "%s", v);
	} else if (!strcmp(k, "file_mode")) {
		char *end;
		unsigned long m = strtoul(v, &end, 8);

		if (end == v || *end || m > 0777)
			return complain(ps, k, "\"%s\" is not an octal file mode; write e.g. 0660", v);
		c->file_mode = (unsigned)m;
	} else if (!strcmp(k, "max_connections_per_uid")) {
		if (!number(v, 1, CONFIG_MAX_CONNS, &n))
			return complain(ps, k, "\"%s\" is not a number of connections between 1 and "
					"1024; write e.g. 64", v);
		c->max_conns_per_uid = (unsigned)n;
	} else {
		return complain(ps, k, "unknown key in [daemon]%s; see docs/shmbusd.conf.md", "");
	}
	return 1;
}

static int flush_key(struct parse *ps, const char *k, const char *v)
{
	int64_t n;

	if (!strcmp(k, "interval_ms")) {
		if (!number(v, 0, 3600000, &n))
			return complain(ps, k, "\"%s\" is not a number of milliseconds (0: never by "
					"time); write e.g. 1000", v);
		ps->c->flush_interval_ms = n;
	} else if (!strcmp(k, "records")) {
		if (!number(v, 0, INT64_MAX, &n))
			return complain(ps, k, "\"%s\" is not a number of records (0: never by "
					"count); write e.g. 10000", v);
		ps->c->flush_records = (uint64_t)n;
	} else {
		return complain(ps, k, "unknown key in [flush]%s; use interval_ms or records", "");
	}
	return 1;
}

static struct config_topic *topic_entry(struct config *c, const char *name)
{
	struct config_topic *t;

	for (size_t i = 0; i < c->ntopics; i++)
		if (!strcmp(c->topics[i].name, name))
			return &c->topics[i];
	t = realloc(c->topics, (c->ntopics + 1) * sizeof *t);
	if (!t)
		return NULL;
	c->topics = t;
	t = &c->topics[c->ntopics++];
	*t = (struct config_topic){ .partitions = 1, .capacity = 16u << 20, .numa_node = -1 };
	snprintf(t->name, sizeof t->name, "%s", name);
	return t;
}

static int topic_key(struct parse *ps, const char *name, const char *k, const char *v)
{
	struct config_topic *t;
	int64_t n;

	if (!dir_name_valid(name))
		return complain(ps, "[topic]", "\"%s\" is not a topic name; use 1 to 249 of "
				"[A-Za-z0-9._-]", name);
	t = topic_entry(ps->c, name);
	if (!t)
		return complain(ps, k, "out of memory%s", "");
	if (!strcmp(k, "partitions")) {
		if (!number(v, 1, BUS_MAX_PARTITIONS, &n))
			return complain(ps, k, "\"%s\" is not a number of partitions between 1 and "
					PARTITIONS_MAX_STR, v);
		t->partitions = (uint32_t)n;
	} else if (!strcmp(k, "capacity")) {
		if (!size(v, &t->capacity))
			return complain(ps, k, "\"%s\" is not a size; write e.g. 64M", v);
	} else if (!strcmp(k, "policy")) {
		if (!strcmp(v, "overwrite"))
			t->policy = 0;
		else if (!strcmp(v, "backpressure"))
			t->policy = 1;
		else
			return complain(ps, k, "\"%s\" is not a policy; use overwrite or backpressure", v);
	} else if (!strcmp(k, "retention_ms")) {
		if (!number(v, 0, INT64_MAX, &n))
			return complain(ps, k, "\"%s\" is not a number of milliseconds (0: none)", v);
		t->retention_ms = n;
	} else if (!strcmp(k, "numa_node")) {
		if (!number(v, -1, 1023, &n))
			return complain(ps, k, "\"%s\" is not a NUMA node (-1: none)", v);
		t->numa_node = (int)n;
	} else {
		return complain(ps, k, "unknown key in [topic]%s; use partitions, capacity, policy, "
				"retention_ms or numa_node", "");
	}
	return 1;
}

/* tls = on (with the keys below) or off (plaintext, said explicitly) */
static int tls_value(struct parse *ps, const char *k, const char *v, int *ret)
{
	if (!strcmp(v, "off") || !strcmp(v, "on")) {
		*ret = !strcmp(v, "on");
		return 1;
	}
	return complain(ps, k, "\"%s\" is not on or off; write tls = on (with cert, key and ca, "
			"or psk_file), or tls = off for plain TCP", v);
}

static bool is_tls_key(const char *k)
{
	return !strcmp(k, "cert") || !strcmp(k, "key") || !strcmp(k, "ca") ||
	       !strcmp(k, "allow") || !strcmp(k, "psk_file");
}

/* cert, key, ca, psk_file: absolute paths (the files are checked with the
 * section, config_check); allow: names.  daemon/mirror_tls.c uses them. */
static int tls_key(struct parse *ps, const char *k, const char *v, struct config_tls *t)
{
	char *dst = !strcmp(k, "cert") ? t->cert : !strcmp(k, "key") ? t->key :
		    !strcmp(k, "ca") ? t->ca : !strcmp(k, "psk_file") ? t->psk_file : NULL;

	if (!dst) {
		if (!mlink_allow_valid(v))
			return complain(ps, k, "\"%s\" is not a list of certificate names (1 to 16 "
					"names of printable characters, comma-separated); write e.g. "
					"mirror-b.example.net, mirror-c", v);
		snprintf(t->allow, sizeof t->allow, "%s", v);
		return 1;
	}
	if (v[0] != '/' || strlen(v) >= CONFIG_TLS_PATH)
		return complain(ps, k, "\"%s\" is not an absolute path (of at most 511 bytes); write "
				"e.g. /etc/shmbus/tls/host.pem", v);
	snprintf(dst, CONFIG_TLS_PATH, "%s", v);
	return 1;
}

static int timeout_value(struct parse *ps, const char *k, const char *v, int64_t *ret)
{
	int64_t n;

	if (!number(v, 100, 3600000, &n))
		return complain(ps, k, "\"%s\" is not a number of milliseconds between 100 and "
				"3600000; write e.g. 10000", v);
	*ret = n;
	return 1;
}

static int listen_key(struct parse *ps, const char *k, const char *v)
{
	struct config_mirror_listen *l = &ps->c->mlisten;
	char why[200];

	if (!strcmp(k, "address")) {
		if (!*v || config_metrics_check(v, why, sizeof why) < 0)
			return complain(ps, k, "%s", *v ? why : "empty; write e.g. 0.0.0.0:9093");
		snprintf(l->address, sizeof l->address, "%s", v);
		return 1;
	}
	if (!strcmp(k, "tls"))
		return tls_value(ps, k, v, &l->tls);
	if (is_tls_key(k))
		return tls_key(ps, k, v, &l->creds);
	if (!strcmp(k, "timeout_ms"))
		return timeout_value(ps, k, v, &l->timeout_ms);
	if (!strcmp(k, "min_mirrors")) {
		int64_t n;

		if (!number(v, 1, CONFIG_MIRRORS_MAX, &n))
			return complain(ps, k, "\"%s\" is not a number of mirrors between 1 and 64 "
					"(an offset is mirrored once that many hold it); write e.g. 1", v);
		l->min_mirrors = (unsigned)n;
		return 1;
	}
	return complain(ps, k, "unknown key in [mirror-listen]%s; use address, tls, cert, key, ca, "
			"allow, psk_file, timeout_ms or min_mirrors", "");
}

static struct config_mirror *mirror_entry(struct config *c, const char *name)
{
	struct config_mirror *m;

	for (size_t i = 0; i < c->nmirrors; i++)
		if (!strcmp(c->mirrors[i].name, name))
			return &c->mirrors[i];
	if (c->nmirrors >= CONFIG_MIRRORS_MAX)
		return NULL;
	m = realloc(c->mirrors, (c->nmirrors + 1) * sizeof *m);
	if (!m)
		return NULL;
	c->mirrors = m;
	m = &c->mirrors[c->nmirrors++];
	*m = (struct config_mirror){ .tls = -1, .timeout_ms = 10000 };
	snprintf(m->name, sizeof m->name, "%s", name);
	return m;
}

/* "a, b.*" : each a topic name or pattern */
static bool topics_list_valid(const char *v)
{
	char buf[1024], *save = NULL;
	int n = 0;

	if (strlen(v) >= sizeof buf)
		return false;
	snprintf(buf, sizeof buf, "%s", v);
	for (char *t = strtok_r(buf, ", \t", &save); t; t = strtok_r(NULL, ", \t", &save), n++)
		if (!mp_pattern_valid(t))
			return false;
	return n > 0;
}

static int mirror_key(struct parse *ps, const char *sect, const char *k, const char *v)
{
	char name[64], host[128], port[8];
	size_t n = strlen(sect);
	struct config_mirror *m;

	if (n >= 2 && sect[0] == '"' && sect[n - 1] == '"') {
		sect++;
		n -= 2;
	}
	if (n == 0 || n >= sizeof name)
		return complain(ps, "[mirror]", "\"%s\" is not a mirror name; write e.g. "
				"[mirror \"from-a\"]", sect);
	memcpy(name, sect, n);
	name[n] = '\0';
	if (!dir_name_valid(name))
		return complain(ps, "[mirror]", "\"%s\" is not a mirror name; use 1 to 63 of "
				"[A-Za-z0-9._-]", name);
	m = mirror_entry(ps->c, name);
	if (!m)
		return complain(ps, k, "more than 64 [mirror] sections, or out of memory%s", "");
	if (!strcmp(k, "source")) {
		if (config_metrics_split(v, host, sizeof host, port, sizeof port) < 0 || !host[0] ||
		    strlen(v) >= sizeof m->source)
			return complain(ps, k, "\"%s\" is not HOST:PORT; write e.g. 10.0.0.1:9093", v);
		snprintf(m->source, sizeof m->source, "%s", v);
	} else if (!strcmp(k, "topics")) {
		if (!topics_list_valid(v))
			return complain(ps, k, "\"%s\" is not a list of topic names and patterns "
					"(* and ?); write e.g. orders, metrics.*", v);
		snprintf(m->topics, sizeof m->topics, "%s", v);
	} else if (!strcmp(k, "tls")) {
		return tls_value(ps, k, v, &m->tls);
	} else if (is_tls_key(k)) {
		return tls_key(ps, k, v, &m->creds);
	} else if (!strcmp(k, "timeout_ms")) {
		return timeout_value(ps, k, v, &m->timeout_ms);
	} else if (!strcmp(k, "ack")) {
		if (strcmp(v, "appended") && strcmp(v, "flushed"))
			return complain(ps, k, "\"%s\" is not appended or flushed; write ack = appended "
					"(the default: acknowledge what is appended) or ack = flushed "
					"(only what msync wrote to disk)", v);
		m->ack_flushed = !strcmp(v, "flushed");
	} else if (!strcmp(k, "resync")) {
		if (strcmp(v, "on") && strcmp(v, "off"))
			return complain(ps, k, "\"%s\" is not on or off; write resync = off (a "
					"recreated source stops its partitions) or on (the replica "
					"is dropped and mirrored again)", v);
		m->resync = !strcmp(v, "on");
	} else {
		return complain(ps, k, "unknown key in [mirror]%s; use source, topics, tls, cert, key, "
				"ca, allow, psk_file, timeout_ms, ack or resync", "");
	}
	return 1;
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
	struct parse *ps = user;
	int64_t n;

	if (!strcmp(section, "daemon"))
		return daemon_key(ps, name, value);
	if (!strcmp(section, "flush"))
		return flush_key(ps, name, value);
	if (!strcmp(section, "retention")) {
		if (strcmp(name, "default_ms"))
			return complain(ps, name, "unknown key in [retention]%s; use default_ms", "");
		if (!number(value, 0, INT64_MAX, &n))
			return complain(ps, name, "\"%s\" is not a number of milliseconds (0: none)",
					value);
		ps->c->retention_default_ms = n;
		return 1;
	}
	if (!strncmp(section, "topic ", 6))
		return topic_key(ps, section + 6, name, value);
	if (!strcmp(section, "kernel-events")) {
		char why[256];

		if (kevents_config_key(&ps->c->kevents, name, value, why, sizeof why) < 0)
			return complain(ps, name, "%s", why);
		return 1;
	}
	if (!strcmp(section, "mirror-listen"))
		return listen_key(ps, name, value);
	if (!strncmp(section, "mirror ", 7))
		return mirror_key(ps, section + 7, name, value);
	return complain(ps, section, "unknown section%s; use [daemon], [flush], [retention], "
			"[kernel-events], [topic NAME], [mirror-listen] or [mirror \"NAME\"]", "");
}

/* fgets for inih, counting lines so a complaint knows its own */
static char *read_line(char *str, int num, void *stream)
{
	struct parse *ps = stream;
	char *r = fgets(str, num, ps->f);

	if (r)
		ps->line++;
	return r;
}

int config_load(struct config *c, const char *path, char *err, size_t errlen)
{
	struct parse ps = { .c = c };
	struct stat st;
	int line;

	ps.f = fopen(path, "r");
	if (!ps.f) {
		int e = errno;

		snprintf(err, errlen, "%s: cannot read the configuration: %s", path, strerror(e));
		return -e;
	}
	if (fstat(fileno(ps.f), &st) == 0 && S_ISDIR(st.st_mode)) {
		fclose(ps.f);
		snprintf(err, errlen, "%s: is a directory, not a configuration file; give the file, "
			 "e.g. %s/shmbusd.conf", path, path);
		return -EISDIR;
	}
	line = ini_parse_stream(read_line, &ps, handler, &ps);
	if (ferror(ps.f)) {  /* a read error is not an end of file */
		int e = errno;

		fclose(ps.f);
		snprintf(err, errlen, "%s: cannot read the configuration: %s", path, strerror(e));
		return -e;
	}
	fclose(ps.f);
	if (line > 0) {
		snprintf(err, errlen, "%s:%d: %s", path, line,
			 ps.why[0] && ps.why_line == line ? ps.why
			 : "not a line of an INI file (KEY = VALUE, or [SECTION])");
		return -EINVAL;
	}
	if (line < 0) {
		snprintf(err, errlen, "%s: cannot be parsed (out of memory)", path);
		return -ENOMEM;
	}
	return 0;
}

/* The mirror sections' keys; with `files`, their TLS files too. */
static int mirrors_check(const struct config *c, bool files, char *err, size_t errlen)
{
	char sect[80];

	if (c->mlisten.address[0] && c->mlisten.tls < 0) {
		snprintf(err, errlen, "[mirror-listen] has no tls key: write tls = off to serve "
			 "mirrors over plain TCP, or tls = on with cert, key and ca (or psk_file)");
		return -EINVAL;
	}
	if (c->mlisten.address[0] && files &&
	    mlink_config_check(&c->mlisten.creds, c->mlisten.tls == 1, "[mirror-listen]", true,
			       err, errlen) < 0)
		return -EINVAL;
	for (size_t i = 0; i < c->nmirrors; i++) {
		const struct config_mirror *m = &c->mirrors[i];
		const char *missing = !m->source[0] ? "source (HOST:PORT)" :
				      !m->topics[0] ? "topics (names and patterns)" :
				      m->tls < 0 ? "tls (write tls = on with cert, key and ca or "
						   "psk_file, or tls = off for plain TCP)" : NULL;

		if (missing) {
			snprintf(err, errlen, "[mirror \"%s\"] has no %s", m->name, missing);
			return -EINVAL;
		}
		snprintf(sect, sizeof sect, "[mirror \"%s\"]", m->name);
		if (files && mlink_config_check(&m->creds, m->tls == 1, sect, false, err, errlen) < 0)
			return -EINVAL;
	}
	return 0;
}

static int check(const struct config *c, bool files, char *err, size_t errlen)
{
	if (mirrors_check(c, files, err, errlen))
		return -EINVAL;
	if (c->unblock_timeout_ms < c->tick_ms) {
		snprintf(err, errlen, "unblock_timeout_ms (%lld) is shorter than tick_ms (%lld): "
			 "stalls are checked each tick; raise unblock_timeout_ms",
			 (long long)c->unblock_timeout_ms, (long long)c->tick_ms);
		return -EINVAL;
	}
	for (size_t i = 0; i < c->ntopics; i++) {
		uint64_t cap = c->topics[i].capacity;

		if (cap < 4096 || (cap & (cap - 1)) || cap > (1ULL << 32)) {
			snprintf(err, errlen, "[topic %s] capacity %llu is not a power of two between "
				 "4K and 4G; write e.g. 64M", c->topics[i].name,
				 (unsigned long long)cap);
			return -EINVAL;
		}
	}
	return 0;
}

int config_check(const struct config *c, char *err, size_t errlen)
{
	return check(c, true, err, errlen);
}

int config_check_keys(const struct config *c, char *err, size_t errlen)
{
	return check(c, false, err, errlen);
}

#define CHANGED(f) (cur->f != next->f)

static void cannot(char *list, size_t len, const char *key)
{
	size_t used = strlen(list);

	snprintf(list + used, len - used, "%s%s", used ? ", " : "", key);
}

int config_apply_live(struct config *cur, const struct config *next, char *list, size_t len)
{
	int applied = 0;

	list[0] = '\0';
	if (strcmp(cur->root, next->root))
		cannot(list, len, "root");
	if (strcmp(cur->control_socket, next->control_socket))
		cannot(list, len, "control_socket");
	if (strcmp(cur->metrics, next->metrics))
		cannot(list, len, "metrics");
	if (memcmp(&cur->mlisten, &next->mlisten, sizeof cur->mlisten))
		cannot(list, len, "[mirror-listen]");
	if (cur->nmirrors != next->nmirrors ||
	    (cur->nmirrors && memcmp(cur->mirrors, next->mirrors,
				     cur->nmirrors * sizeof *cur->mirrors)))
		cannot(list, len, "[mirror]");
	if (CHANGED(log_level) || CHANGED(unblock_timeout_ms) || CHANGED(tick_ms) ||
	    CHANGED(file_mode) || CHANGED(flush_interval_ms) || CHANGED(flush_records) ||
	    CHANGED(retention_default_ms) || CHANGED(admin_gid) || CHANGED(has_admin_gid) ||
	    CHANGED(max_conns_per_uid))
		applied++;
	cur->log_level = next->log_level;
	cur->unblock_timeout_ms = next->unblock_timeout_ms;
	cur->tick_ms = next->tick_ms;
	cur->file_mode = next->file_mode;
	cur->flush_interval_ms = next->flush_interval_ms;
	cur->flush_records = next->flush_records;
	cur->retention_default_ms = next->retention_default_ms;
	cur->max_conns_per_uid = next->max_conns_per_uid;
	snprintf(cur->admin_group, sizeof cur->admin_group, "%s", next->admin_group);
	cur->admin_gid = next->admin_gid;
	cur->has_admin_gid = next->has_admin_gid;
	/* declared topics: new ones are created by the caller */
	free(cur->topics);
	cur->topics = NULL;
	cur->ntopics = 0;
	if (next->ntopics) {
		cur->topics = malloc(next->ntopics * sizeof *cur->topics);
		if (cur->topics) {
			memcpy(cur->topics, next->topics, next->ntopics * sizeof *cur->topics);
			cur->ntopics = next->ntopics;
			applied++;
		}
	}
	return applied;
}
