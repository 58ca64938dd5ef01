/*
 * ctlproto.c - encoding and decoding control messages (docs/protocol.md).
 *
 * The decoder walks a message once, checking each length against what is
 * left before reading anything it covers; integers are read with memcpy
 * (no alignment is assumed) and converted from little-endian.  It never
 * writes to the buffer and never keeps a pointer past its end: strings
 * are accepted only when their last byte is their only NUL, so they can
 * be used in place.
 *
 * At the end, the socket's address, shared by the daemon (bind) and the
 * library (connect).
 */
#include "ctlproto.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "error.h"

struct attr_desc {
	const char *name;
	enum ctl_kind kind;
};

#define A(id, k) [CTL_A_##id] = { #id, CTL_K_##k }
static const struct attr_desc attrs[CTL_A_COUNT] = {
	A(STATUS, I32), A(MESSAGE, STR), A(REQUEST, U32), A(CLIENT_VERSION, U32),
	A(PID, U32), A(FLAGS, U32), A(NAME, STR), A(PARTITIONS, U32), A(CAPACITY, U64),
	A(INDEX_CAPACITY, U64), A(POLICY, U32), A(NUMA_NODE, I32), A(RETENTION_MS, I64),
	A(MODE, U32), A(PROTOCOL, U32), A(VERSION, STR), A(REGISTERED, U32),
	A(DAEMON_PID, U32), A(DAEMON_UID, U32), A(ROOT, STR), A(CONTROL_SOCKET, STR),
	A(METRICS, STR), A(ADMIN_GROUP, STR), A(STARTED_NS, I64), A(UPTIME_MS, U64),
	A(HEARTBEAT_NS, I64), A(UNBLOCK_TIMEOUT_MS, I64), A(TICK_MS, I64), A(ON_TMPFS, U32),
	A(TOPICS, U64), A(PARTITION_COUNT, U64), A(CLIENTS, U64), A(TICKS, U64),
	A(UNBLOCKED, U64), A(UNBLOCKED_OFFSETS, U64), A(CLIENTS_GONE, U64),
	A(RETENTION_MOVES, U64), A(RETIRED, U64), A(FLUSHES, U64), A(FLUSH_ERRORS, U64),
	A(CONTROL_REQUESTS, U64), A(CONTROL_ERRORS, U64), A(TOPICS_CREATED, U64),
	A(TOPICS_DELETED, U64), A(RECOVERY_PARTITIONS, U64), A(RECOVERY_RECOVERED, U64),
	A(RECOVERY_IN_USE, U64), A(RECOVERY_FAILED, U64), A(RECOVERY_FRAMES, U64),
	A(RECOVERY_ABORTED, U64), A(RECOVERY_CUT, U64), A(RECOVERY_CUT_BYTES, U64),
	A(RECOVERY_REBUILT, U64), A(RECOVERY_STATUS_REPAIRED, U64),
	A(GROUP, STR), A(TOPIC_LIST, STR), A(PATTERN, STR), A(ASSIGNOR, STR),
	A(INSTANCE_ID, STR), A(SESSION_TIMEOUT_MS, I64), A(MAX_POLL_MS, I64),
	A(MEMBER_ID, U64), A(MEMBER_EPOCH, U64), A(GROUP_EPOCH, U64), A(ACKED_EPOCH, U64),
	A(ASSIGNMENT, BYTES), A(LAST_POLL_NS, I64), A(HOST, STR), A(MEMBERS, STR),
	A(GROUP_STATE, STR), A(GROUPS, STR), A(HEARTBEAT_MS, I64), A(REBALANCES, U64),
	A(OFFSETS, BYTES), A(MIRRORS, STR), A(MIRROR_FOLLOWERS, STR), A(MIRROR_LISTEN, STR),
	A(MIN_MIRRORS, U32), A(PROMOTED, STR),
};
#undef A

const char *ctl_type_name(uint16_t type)
{
	switch (type) {
	case CTL_HELLO: return "HELLO";
	case CTL_TOPIC_CREATE: return "TOPIC_CREATE";
	case CTL_TOPIC_DELETE: return "TOPIC_DELETE";
	case CTL_STATUS: return "STATUS";
	case CTL_GROUP_JOIN: return "GROUP_JOIN";
	case CTL_GROUP_HEARTBEAT: return "GROUP_HEARTBEAT";
	case CTL_GROUP_LEAVE: return "GROUP_LEAVE";
	case CTL_GROUP_LIST: return "GROUP_LIST";
	case CTL_GROUP_DESCRIBE: return "GROUP_DESCRIBE";
	case CTL_GROUP_RESET: return "GROUP_RESET";
	case CTL_GROUP_DELETE: return "GROUP_DELETE";
	case CTL_MIRROR_STATUS: return "MIRROR_STATUS";
	case CTL_MIRROR_PROMOTE: return "MIRROR_PROMOTE";
	case CTL_TOPIC_GROW: return "TOPIC_GROW";
	case CTL_RESULT: return "RESULT";
	default: return "";
	}
}

const char *ctl_attr_name(uint16_t attr)
{
	return attr < CTL_A_COUNT && attrs[attr].name ? attrs[attr].name : "";
}

enum ctl_kind ctl_attr_kind(uint16_t attr)
{
	return attr < CTL_A_COUNT ? attrs[attr].kind : CTL_K_UNKNOWN;
}

static size_t kind_size(enum ctl_kind k)
{
	switch (k) {
	case CTL_K_U32: case CTL_K_I32: return 4;
	case CTL_K_U64: case CTL_K_I64: return 8;
	default: return 0;
	}
}

static size_t pad4(size_t n)
{
	return (n + 3) & ~(size_t)3;
}

static uint16_t get16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof v);
	return le16toh(v);
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof v);
	return le32toh(v);
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof v);
	return le64toh(v);
}

int ctl_peek(const void *buf, size_t len, struct ctl_hdr *ret)
{
	const uint8_t *p = buf;

	if (len < CTL_HDR_SIZE || get32(p) != CTL_MAGIC)
		return -EBADMSG;
	ret->magic = CTL_MAGIC;
	ret->version = get16(p + 4);
	ret->type = get16(p + 6);
	ret->length = get32(p + 8);
	ret->seq = get32(p + 12);
	return 0;
}

static int check_header(const void *buf, size_t len, struct ctl_hdr *h)
{
	if (len < CTL_HDR_SIZE)
		return shm_err(-EBADMSG, "a control message of %zu bytes is shorter than its "
			       "%u-byte header", len, CTL_HDR_SIZE);
	if (ctl_peek(buf, len, h) < 0)
		return shm_err(-EBADMSG, "not a shmbus control message (magic 0x%08x, expected "
			       "0x%08x)", get32(buf), CTL_MAGIC);
	if (len > CTL_MSG_MAX || h->length > CTL_MSG_MAX)
		return shm_err(-EMSGSIZE, "a control message of %zu bytes is larger than the "
			       "maximum, %u", len > h->length ? len : (size_t)h->length, CTL_MSG_MAX);
	if (h->length != len)
		return shm_err(-EBADMSG, "the header of a %s message says it is %u bytes long, "
			       "but it is %zu", ctl_type_name(h->type)[0] ? ctl_type_name(h->type)
			       : "control", h->length, len);
	if (h->version != CTL_VERSION)
		return shm_err(-EPROTO, "control protocol version %u is not spoken here: this "
			       "side speaks version %u; use a libshmbus and shmbusd of the same "
			       "major version", h->version, CTL_VERSION);
	return 0;
}

/* One attribute's value into m; 0 or -EBADMSG. */
static int take(struct ctl_msg *m, uint16_t type, const uint8_t *v, uint16_t vlen, size_t at)
{
	enum ctl_kind k = ctl_attr_kind(type);
	size_t want = kind_size(k);

	if (k == CTL_K_UNKNOWN) {
		m->unknown++;
		return 0;
	}
	if (m->has[type])
		return shm_err(-EBADMSG, "attribute %s (%u) at byte %zu appears twice",
			       ctl_attr_name(type), type, at);
	if (k == CTL_K_STR) {
		if (vlen == 0 || v[vlen - 1] != '\0' || memchr(v, '\0', vlen) != v + vlen - 1)
			return shm_err(-EBADMSG, "attribute %s (%u) at byte %zu is not a string "
				       "ending in its only NUL", ctl_attr_name(type), type, at);
		m->str[type] = (const char *)v;
	} else if (k == CTL_K_BYTES) {
		m->str[type] = (const char *)v;
		m->num[type] = vlen;
	} else if (vlen != want) {
		return shm_err(-EBADMSG, "attribute %s (%u) at byte %zu is %u bytes long, not %zu",
			       ctl_attr_name(type), type, at, vlen, want);
	} else if (k == CTL_K_U32) {
		m->num[type] = get32(v);
	} else if (k == CTL_K_I32) {
		m->num[type] = (uint64_t)(int64_t)(int32_t)get32(v);
	} else {
		m->num[type] = get64(v);
	}
	m->has[type] = true;
	return 0;
}

int ctl_decode(const void *buf, size_t len, struct ctl_msg *ret)
{
	const uint8_t *p = buf;
	struct ctl_msg m;
	size_t at = CTL_HDR_SIZE;
	int rc;

	memset(&m, 0, sizeof m);
	rc = check_header(buf, len, &m.hdr);
	if (rc)
		return rc;
	while (at < len) {
		uint16_t type, vlen;

		if (len - at < CTL_ATTR_HDR)
			return shm_err(-EBADMSG, "%zu stray bytes at byte %zu of a %zu-byte control "
				       "message: too few for an attribute header", len - at, at, len);
		type = get16(p + at);
		vlen = get16(p + at + 2);
		if (pad4((size_t)vlen) > len - at - CTL_ATTR_HDR)
			return shm_err(-EBADMSG, "attribute %u at byte %zu claims %u bytes, but only "
				       "%zu remain in the message", type, at, vlen,
				       len - at - CTL_ATTR_HDR);
		rc = take(&m, type, p + at + CTL_ATTR_HDR, vlen, at);
		if (rc)
			return rc;
		at += CTL_ATTR_HDR + pad4(vlen);
	}
	*ret = m;
	return 0;
}

int ctl_check(const struct ctl_msg *m)
{
	enum ctl_attr need = 0;

	switch (m->hdr.type) {
	case CTL_TOPIC_CREATE:
	case CTL_TOPIC_DELETE:
	case CTL_MIRROR_PROMOTE:
		need = CTL_A_NAME;
		break;
	case CTL_TOPIC_GROW:
		need = m->has[CTL_A_NAME] ? CTL_A_PARTITIONS : CTL_A_NAME;
		break;
	case CTL_RESULT:
		need = CTL_A_STATUS;
		break;
	case CTL_GROUP_JOIN:
	case CTL_GROUP_DESCRIBE:
	case CTL_GROUP_DELETE:
		need = CTL_A_GROUP;
		break;
	case CTL_GROUP_HEARTBEAT:
	case CTL_GROUP_LEAVE:
		need = m->has[CTL_A_GROUP] ? CTL_A_MEMBER_ID : CTL_A_GROUP;
		break;
	case CTL_GROUP_RESET:
		need = m->has[CTL_A_GROUP] ? CTL_A_OFFSETS : CTL_A_GROUP;
		break;
	default:
		return 0;
	}
	if (!m->has[need])
		return shm_err(-EINVAL, "a %s message needs the %s attribute (%u)",
			       ctl_type_name(m->hdr.type), ctl_attr_name(need), need);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Encoding                                                            */

static void put16(uint8_t *p, uint16_t v)
{
	v = htole16(v);
	memcpy(p, &v, sizeof v);
}

static void put32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, sizeof v);
}

static void put64(uint8_t *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, sizeof v);
}

void ctl_init(struct ctl_out *o, void *buf, size_t cap, uint16_t type, uint32_t seq)
{
	*o = (struct ctl_out){ .buf = buf, .cap = cap < CTL_MSG_MAX ? cap : CTL_MSG_MAX };
	if (o->cap < CTL_HDR_SIZE) {
		o->overflow = true;
		return;
	}
	put32(o->buf, CTL_MAGIC);
	put16(o->buf + 4, CTL_VERSION);
	put16(o->buf + 6, type);
	put32(o->buf + 12, seq);
	o->len = CTL_HDR_SIZE;
}

/* Room for an attribute of vlen bytes: where its value goes, or NULL. */
static uint8_t *attr(struct ctl_out *o, enum ctl_attr a, size_t vlen)
{
	uint8_t *p;

	if (o->overflow || vlen > UINT16_MAX || o->cap - o->len < CTL_ATTR_HDR + pad4(vlen)) {
		o->overflow = true;
		return NULL;
	}
	p = o->buf + o->len;
	put16(p, (uint16_t)a);
	put16(p + 2, (uint16_t)vlen);
	memset(p + CTL_ATTR_HDR + vlen, 0, pad4(vlen) - vlen);
	o->len += CTL_ATTR_HDR + pad4(vlen);
	return p + CTL_ATTR_HDR;
}

void ctl_put_u32(struct ctl_out *o, enum ctl_attr a, uint32_t v)
{
	uint8_t *p = attr(o, a, 4);

	if (p)
		put32(p, v);
}

void ctl_put_i32(struct ctl_out *o, enum ctl_attr a, int32_t v)
{
	ctl_put_u32(o, a, (uint32_t)v);
}

void ctl_put_u64(struct ctl_out *o, enum ctl_attr a, uint64_t v)
{
	uint8_t *p = attr(o, a, 8);

	if (p)
		put64(p, v);
}

void ctl_put_i64(struct ctl_out *o, enum ctl_attr a, int64_t v)
{
	ctl_put_u64(o, a, (uint64_t)v);
}

void ctl_put_str(struct ctl_out *o, enum ctl_attr a, const char *s)
{
	size_t n = strlen(s) + 1;
	uint8_t *p = attr(o, a, n);

	if (p)
		memcpy(p, s, n);
}

void ctl_put_bytes(struct ctl_out *o, enum ctl_attr a, const void *src, size_t n)
{
	uint8_t *p = attr(o, a, n);

	if (p && n)
		memcpy(p, src, n);
}

void ctl_put_tps(struct ctl_out *o, enum ctl_attr a, const struct ctl_tp *tp, size_t n)
{
	uint8_t *p = n > CTL_TP_MAX ? NULL : attr(o, a, n * CTL_TP_SIZE);

	if (!p) {
		o->overflow = true;
		return;
	}
	for (size_t i = 0; i < n; i++, p += CTL_TP_SIZE) {
		put64(p, tp[i].topic_id);
		put32(p + 8, tp[i].partition);
		put32(p + 12, tp[i].flags);
		put64(p + 16, tp[i].member);
		put64(p + 24, tp[i].value);
	}
}

int ctl_tp_count(const struct ctl_msg *m, enum ctl_attr a)
{
	if (!m->has[a])
		return 0;
	if (m->num[a] % CTL_TP_SIZE)
		return shm_err(-EBADMSG, "attribute %s is %llu bytes long, not a multiple of %u",
			       ctl_attr_name(a), (unsigned long long)m->num[a], CTL_TP_SIZE);
	return (int)(m->num[a] / CTL_TP_SIZE);
}

void ctl_tp_get(const struct ctl_msg *m, enum ctl_attr a, size_t i, struct ctl_tp *ret)
{
	const uint8_t *p = (const uint8_t *)m->str[a] + i * CTL_TP_SIZE;

	ret->topic_id = get64(p);
	ret->partition = get32(p + 8);
	ret->flags = get32(p + 12);
	ret->member = get64(p + 16);
	ret->value = get64(p + 24);
}

void ctl_put_num(struct ctl_out *o, enum ctl_attr a, uint64_t v)
{
	switch (ctl_attr_kind(a)) {
	case CTL_K_U32:
	case CTL_K_I32:
		ctl_put_u32(o, a, (uint32_t)v);
		break;
	case CTL_K_U64:
	case CTL_K_I64:
		ctl_put_u64(o, a, v);
		break;
	default:
		o->overflow = true; /* not a number: a caller's bug, refuse the message */
		break;
	}
}

int ctl_finish(struct ctl_out *o)
{
	if (o->overflow)
		return shm_err(-EMSGSIZE, "a control message would be larger than %zu bytes",
			       o->cap);
	put32(o->buf + 8, (uint32_t)o->len);
	return (int)o->len;
}

int ctl_encode(const struct ctl_msg *m, void *buf, size_t cap)
{
	struct ctl_out o;

	ctl_init(&o, buf, cap, m->hdr.type, m->hdr.seq);
	for (uint16_t a = 1; a < CTL_A_COUNT; a++) {
		if (!m->has[a])
			continue;
		if (ctl_attr_kind(a) == CTL_K_STR)
			ctl_put_str(&o, a, m->str[a] ? m->str[a] : "");
		else if (ctl_attr_kind(a) == CTL_K_BYTES)
			ctl_put_bytes(&o, a, m->str[a], (size_t)m->num[a]);
		else
			ctl_put_num(&o, a, m->num[a]);
	}
	return ctl_finish(&o);
}

/* ------------------------------------------------------------------ */
/* The socket's address                                                */

int ctl_default_path(const char *root, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/%s", root, CTL_SOCKET_NAME);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int ctl_sockaddr(const char *path, struct sockaddr_un *sa, int *dirfd)
{
	const char *base = strrchr(path, '/');
	char dir[PATH_MAX];
	size_t len = strlen(path);

	memset(sa, 0, sizeof *sa);
	sa->sun_family = AF_UNIX;
	*dirfd = -1;
	if (len < sizeof sa->sun_path) {
		memcpy(sa->sun_path, path, len + 1);
		return 0;
	}
	if (!base || base == path || (size_t)(base - path) >= sizeof dir)
		return -ENAMETOOLONG;
	snprintf(dir, sizeof dir, "%.*s", (int)(base - path), path);
	*dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (*dirfd < 0)
		return -errno;
	if ((size_t)snprintf(sa->sun_path, sizeof sa->sun_path, "/proc/self/fd/%d/%s", *dirfd,
			     base + 1) >= sizeof sa->sun_path) {
		close(*dirfd);
		*dirfd = -1;
		return -ENAMETOOLONG;
	}
	return 0;
}
