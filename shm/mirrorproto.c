/*
 * mirrorproto.c - the mirroring protocol's codec (docs/protocol.md, part
 * 2, "Mirroring protocol").
 *
 * Every message is an 8-byte header (u32 length of the whole message,
 * u16 type, u16 flags, zero) and a body of fixed-size little-endian
 * integers and strings (u16 length, then bytes; no NUL).  A reader walks
 * the body with a cursor that refuses to pass its end, and a message must
 * be used up exactly: trailing bytes are as wrong as missing ones.
 */
#include "mirrorproto.h"

#include <endian.h>
#include <errno.h>
#include <string.h>

#include "../util/crc32c.h"
#include "directory.h"
#include "format.h"
#include "frame.h"

static const char *const names[] = {
	[MP_HELLO] = "HELLO", [MP_HELLO_OK] = "HELLO_OK", [MP_ERROR] = "ERROR",
	[MP_LIST] = "LIST", [MP_TOPIC] = "TOPIC", [MP_LIST_END] = "LIST_END",
	[MP_FETCH] = "FETCH", [MP_DATA] = "DATA", [MP_GAP] = "GAP",
	[MP_UNKNOWN] = "UNKNOWN", [MP_ACK] = "ACK", [MP_HEARTBEAT] = "HEARTBEAT",
	[MP_EPOCHS] = "EPOCHS", [MP_STOP] = "STOP",
};

const char *mp_type_name(uint16_t type)
{
	return type && type <= MP_TYPE_MAX ? names[type] : "";
}

/* Which side sends each type: bit MP_FROM_x set. */
static bool travels(uint16_t type, enum mp_dir dir)
{
	switch (type) {
	case MP_ERROR:
		return true;
	case MP_HELLO: case MP_LIST: case MP_FETCH: case MP_ACK: case MP_STOP:
		return dir == MP_FROM_MIRROR;
	case MP_HELLO_OK: case MP_TOPIC: case MP_LIST_END: case MP_DATA: case MP_GAP:
	case MP_UNKNOWN: case MP_HEARTBEAT: case MP_EPOCHS:
		return dir == MP_FROM_SOURCE;
	default:
		return false;
	}
}

static uint16_t get16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return le16toh(v); }
static uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return le32toh(v); }
static uint64_t get64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return le64toh(v); }
static void put16(uint8_t *p, uint16_t v) { v = htole16(v); memcpy(p, &v, 2); }
static void put32(uint8_t *p, uint32_t v) { v = htole32(v); memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { v = htole64(v); memcpy(p, &v, 8); }

int mp_peek(const uint8_t *buf, size_t len, enum mp_dir dir, size_t data_max,
	    uint32_t *ret_len, uint16_t *ret_type)
{
	uint32_t mlen;
	uint16_t type;

	if (len < MP_HDR_SIZE)
		return -EAGAIN;
	mlen = get32(buf);
	type = get16(buf + 4);
	if (mlen < MP_HDR_SIZE || get16(buf + 6) != 0)
		return -EBADMSG;
	if (!travels(type, dir))
		return -EPROTO;
	if (mlen > (type == MP_DATA ? data_max : MP_CTL_MAX))
		return -EMSGSIZE;
	*ret_len = mlen;
	*ret_type = type;
	return 0;
}

/* A cursor over a body: every get checks the bytes are there. */
struct rd {
	const uint8_t *p;
	size_t left;
	bool bad;
};

static const uint8_t *take(struct rd *r, size_t n)
{
	const uint8_t *at = r->p;

	if (r->bad || n > r->left) {
		r->bad = true;
		return NULL;
	}
	r->p += n;
	r->left -= n;
	return at;
}

static uint16_t rd16(struct rd *r) { const uint8_t *p = take(r, 2); return p ? get16(p) : 0; }
static uint32_t rd32(struct rd *r) { const uint8_t *p = take(r, 4); return p ? get32(p) : 0; }
static uint64_t rd64(struct rd *r) { const uint8_t *p = take(r, 8); return p ? get64(p) : 0; }

/* A string of at most max printable ASCII bytes, copied NUL-terminated. */
static void rdstr(struct rd *r, char *dst, size_t max)
{
	uint16_t n = rd16(r);
	const uint8_t *p = take(r, n);

	dst[0] = '\0';
	if (!p || n > max) {
		r->bad = true;
		return;
	}
	for (size_t i = 0; i < n; i++)
		if (p[i] < 0x20 || p[i] > 0x7e) {
			r->bad = true;
			return;
		}
	memcpy(dst, p, n);
	dst[n] = '\0';
}

bool mp_pattern_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 249)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-' || c == '*' || c == '?'))
			return false;
	}
	return true;
}

/* Iterative glob with one backtrack point: linear in practice, and
 * bounded by len(pattern) * len(name) (both at most 255). */
bool mp_pattern_match(const char *pat, const char *name)
{
	const char *star = NULL, *resume = NULL;

	while (*name) {
		if (*pat == '*') {
			star = pat++;
			resume = name;
		} else if (*pat == '?' || *pat == *name) {
			pat++;
			name++;
		} else if (star) {
			pat = star + 1;
			name = ++resume;
		} else {
			return false;
		}
	}
	while (*pat == '*')
		pat++;
	return *pat == '\0';
}

/* EPOCHS: id, end, count, then count {epoch, start}: a valid history
 * (no epoch 0 or twice, starts that never go down) of at most
 * PART_EPOCHS_MAX entries. */
static void decode_epochs(struct rd *r, struct mp_msg *m)
{
	struct epoch_hist *h = &m->u.epochs.hist;
	uint32_t n;

	m->u.epochs.id = rd32(r);
	m->u.epochs.end = rd64(r);
	n = rd32(r);
	if (n > PART_EPOCHS_MAX || m->u.epochs.end >= PART_POS_MAX) {
		r->bad = true;
		return;
	}
	h->n = n;
	for (uint32_t i = 0; i < n; i++) {
		h->e[i].epoch = rd64(r);
		h->e[i].start = rd64(r);
	}
	if (!epochs_valid(h))
		r->bad = true;
}

/* HELLO's and HELLO_OK's since version 3 (§M12): the sender's id, not
 * all zero, and the link's name (HELLO: not empty; HELLO_OK: empty). */
static void decode_id(struct rd *r, struct mp_msg *m)
{
	const uint8_t *id = take(r, MP_ID_SIZE);
	uint8_t any = 0;

	if (!id) {
		r->bad = true;
		return;
	}
	memcpy(m->u.hello.id, id, MP_ID_SIZE);
	for (unsigned i = 0; i < MP_ID_SIZE; i++)
		any |= id[i];
	rdstr(r, m->u.hello.link, MP_NAME_MAX);
	if (!any || (m->type == MP_HELLO) != (m->u.hello.link[0] != '\0'))
		r->bad = true;
}

static void decode_body(struct rd *r, struct mp_msg *m)
{
	switch (m->type) {
	case MP_HELLO:
	case MP_HELLO_OK: {
		const uint8_t *magic = take(r, 8);

		if (!magic || get64(magic) != MP_MAGIC)
			r->bad = true;
		m->u.hello.version = rd16(r);
		m->u.hello.auth = rd16(r);
		rdstr(r, m->u.hello.host, MP_NAME_MAX);
		if (!m->u.hello.host[0])
			r->bad = true;
		if (m->u.hello.version >= 3)
			decode_id(r, m);
		break;
	}
	case MP_ERROR:
		m->u.error.code = (int32_t)rd32(r);
		rdstr(r, m->u.error.text, MP_TEXT_MAX);
		break;
	case MP_LIST:
		rdstr(r, m->u.list.pattern, MP_NAME_MAX);
		if (!mp_pattern_valid(m->u.list.pattern))
			r->bad = true;
		break;
	case MP_TOPIC:
		m->u.topic.topic_id = rd64(r);
		m->u.topic.capacity = rd64(r);
		m->u.topic.index_capacity = rd64(r);
		m->u.topic.partitions = rd32(r);
		m->u.topic.policy = rd32(r);
		rdstr(r, m->u.topic.name, MP_NAME_MAX);
		if (!dir_name_valid(m->u.topic.name))
			r->bad = true;
		break;
	case MP_LIST_END:
		m->u.list_end.count = rd32(r);
		break;
	case MP_FETCH:
		m->u.fetch.id = rd32(r);
		m->u.fetch.partition = rd32(r);
		m->u.fetch.epoch = rd64(r);
		m->u.fetch.from = rd64(r);
		rdstr(r, m->u.fetch.name, MP_NAME_MAX);
		if (!dir_name_valid(m->u.fetch.name) || m->u.fetch.from >= PART_POS_MAX)
			r->bad = true;
		break;
	case MP_GAP:
		m->u.gap.id = rd32(r);
		m->u.gap.from = rd64(r);
		m->u.gap.to = rd64(r);
		if (m->u.gap.to <= m->u.gap.from || m->u.gap.to >= PART_POS_MAX)
			r->bad = true;
		break;
	case MP_UNKNOWN:
		m->u.unknown.id = rd32(r);
		m->u.unknown.code = (int32_t)rd32(r);
		break;
	case MP_ACK:
		m->u.ack.id = rd32(r);
		m->u.ack.end = rd64(r);
		break;
	case MP_EPOCHS:
		decode_epochs(r, m);
		break;
	case MP_STOP:
		m->u.stop.id = rd32(r);
		break;
	default: /* HEARTBEAT: no body */
		break;
	}
}

static void decode_data(struct rd *r, struct mp_msg *m)
{
	size_t flen;

	m->u.data.id = rd32(r);
	m->u.data.count = rd32(r);
	m->u.data.first = rd64(r);
	m->u.data.next = rd64(r);
	m->u.data.end = rd64(r);
	if (r->bad || r->left < MP_TRAILER) {
		r->bad = true;
		return;
	}
	flen = r->left - MP_TRAILER;
	m->u.data.frames = take(r, flen);
	m->u.data.frames_len = flen;
	m->u.data.trailer = rd64(r);
	if ((flen & (FRAME_ALIGN - 1)) || m->u.data.first > m->u.data.next ||
	    m->u.data.next >= PART_POS_MAX || m->u.data.end < m->u.data.next ||
	    m->u.data.end >= PART_POS_MAX || m->u.data.count > flen / FRAME_ABORT_MIN ||
	    (m->u.data.count == 0) != (m->u.data.first == m->u.data.next))
		r->bad = true;
}

int mp_decode(const uint8_t *buf, size_t len, enum mp_dir dir, struct mp_msg *m)
{
	struct rd r = { .p = buf + MP_HDR_SIZE, .left = len - MP_HDR_SIZE };
	uint32_t mlen;
	uint16_t type;
	int rc = mp_peek(buf, len, dir, len, &mlen, &type);

	if (rc == -EAGAIN)
		return -EBADMSG;
	if (rc)
		return rc;
	if (mlen != len)
		return -EBADMSG;
	memset(m, 0, sizeof *m);
	m->type = type;
	if (type == MP_DATA)
		decode_data(&r, m);
	else
		decode_body(&r, m);
	return r.bad || r.left ? -EBADMSG : 0;
}

/* --- encoding ------------------------------------------------------ */

struct wr {
	uint8_t *p;
	size_t cap, len;
	bool bad;
};

static uint8_t *put(struct wr *w, size_t n)
{
	uint8_t *at = w->p + w->len;

	if (w->bad || n > w->cap - w->len) {
		w->bad = true;
		return NULL;
	}
	w->len += n;
	return at;
}

static void wr16(struct wr *w, uint16_t v) { uint8_t *p = put(w, 2); if (p) put16(p, v); }
static void wr32(struct wr *w, uint32_t v) { uint8_t *p = put(w, 4); if (p) put32(p, v); }
static void wr64(struct wr *w, uint64_t v) { uint8_t *p = put(w, 8); if (p) put64(p, v); }

static void wrstr(struct wr *w, const char *s, size_t max)
{
	size_t n = strnlen(s, max + 1);
	uint8_t *p;

	if (n > max) {
		w->bad = true;
		return;
	}
	wr16(w, (uint16_t)n);
	p = put(w, n);
	if (p)
		memcpy(p, s, n);
}

static void encode_body(struct wr *w, const struct mp_msg *m)
{
	switch (m->type) {
	case MP_HELLO:
	case MP_HELLO_OK:
		wr64(w, MP_MAGIC);
		wr16(w, m->u.hello.version);
		wr16(w, m->u.hello.auth);
		wrstr(w, m->u.hello.host, MP_NAME_MAX);
		if (m->u.hello.version >= 3) {
			uint8_t *id = put(w, MP_ID_SIZE);

			if (id)
				memcpy(id, m->u.hello.id, MP_ID_SIZE);
			wrstr(w, m->u.hello.link, MP_NAME_MAX);
		}
		break;
	case MP_ERROR:
		wr32(w, (uint32_t)m->u.error.code);
		wrstr(w, m->u.error.text, MP_TEXT_MAX);
		break;
	case MP_LIST:
		wrstr(w, m->u.list.pattern, MP_NAME_MAX);
		break;
	case MP_TOPIC:
		wr64(w, m->u.topic.topic_id);
		wr64(w, m->u.topic.capacity);
		wr64(w, m->u.topic.index_capacity);
		wr32(w, m->u.topic.partitions);
		wr32(w, m->u.topic.policy);
		wrstr(w, m->u.topic.name, MP_NAME_MAX);
		break;
	case MP_LIST_END:
		wr32(w, m->u.list_end.count);
		break;
	case MP_FETCH:
		wr32(w, m->u.fetch.id);
		wr32(w, m->u.fetch.partition);
		wr64(w, m->u.fetch.epoch);
		wr64(w, m->u.fetch.from);
		wrstr(w, m->u.fetch.name, MP_NAME_MAX);
		break;
	case MP_GAP:
		wr32(w, m->u.gap.id);
		wr64(w, m->u.gap.from);
		wr64(w, m->u.gap.to);
		break;
	case MP_UNKNOWN:
		wr32(w, m->u.unknown.id);
		wr32(w, (uint32_t)m->u.unknown.code);
		break;
	case MP_ACK:
		wr32(w, m->u.ack.id);
		wr64(w, m->u.ack.end);
		break;
	case MP_HEARTBEAT:
		break;
	case MP_EPOCHS:
		wr32(w, m->u.epochs.id);
		wr64(w, m->u.epochs.end);
		wr32(w, m->u.epochs.hist.n);
		for (uint32_t i = 0; i < m->u.epochs.hist.n && i < PART_EPOCHS_MAX; i++) {
			wr64(w, m->u.epochs.hist.e[i].epoch);
			wr64(w, m->u.epochs.hist.e[i].start);
		}
		if (m->u.epochs.hist.n > PART_EPOCHS_MAX)
			w->bad = true;
		break;
	case MP_STOP:
		wr32(w, m->u.stop.id);
		break;
	default:
		w->bad = true;
	}
}

size_t mp_encode(const struct mp_msg *m, uint8_t *buf, size_t cap)
{
	struct wr w = { .p = buf, .cap = cap < MP_CTL_MAX ? cap : MP_CTL_MAX };

	if (!put(&w, MP_HDR_SIZE))
		return 0;
	encode_body(&w, m);
	if (w.bad)
		return 0;
	put32(buf, (uint32_t)w.len);
	put16(buf + 4, m->type);
	put16(buf + 6, 0);
	return w.len;
}

void mp_data_head(uint8_t buf[MP_DATA_HEAD], uint32_t id, uint32_t count, uint64_t first,
		  uint64_t next, uint64_t end, size_t frames_len)
{
	put32(buf, (uint32_t)(MP_DATA_HEAD + frames_len + MP_TRAILER));
	put16(buf + 4, MP_DATA);
	put16(buf + 6, 0);
	put32(buf + 8, id);
	put32(buf + 12, count);
	put64(buf + 16, first);
	put64(buf + 24, next);
	put64(buf + 32, end);
}

void mp_data_trailer(uint8_t buf[MP_TRAILER], bool intact)
{
	put64(buf, intact ? MP_TRAILER_OK : 0);
}

/* --- the frames of a DATA batch (format.md §3) ---------------------- */

static int frame_entry(const uint8_t *at, uint64_t len, uint64_t expect, uint64_t max_frame,
		       struct mp_entry *e, const char **why)
{
	const struct frame_hdr *h = (const struct frame_hdr *)(const void *)at;
	struct frame_view v;
	size_t payload;

	if (len < FRAME_HDR_SIZE || len > max_frame)
		return *why = "a frame's length is outside 48 bytes .. the largest frame", -EBADMSG;
	if (frame_parse(h, len, expect, &v))
		return *why = "a frame's offset or lengths do not fit", -EBADMSG;
	payload = (size_t)frame_payload_len(&v);
	if (frame_crc(h, payload) != v.crc)
		return *why = "a frame's CRC32C does not match its bytes", -EBADMSG;
	if (frame_headers_check(v.headers, v.headers_len, v.header_count))
		return *why = "a frame's record headers are malformed", -EBADMSG;
	*e = (struct mp_entry){ .off = expect, .end = expect + 1, .frame = at, .len = len,
				.record = true };
	return 1;
}

int mp_entry_next(const uint8_t *frames, size_t len, size_t *cursor, uint64_t expect,
		  uint64_t max_frame, struct mp_entry *e, const char **why)
{
	size_t at = *cursor;
	uint64_t cw, elen, end;
	int rc;

	if (at >= len)
		return 0;
	if ((uintptr_t)(frames + at) & (FRAME_ALIGN - 1) || len - at < FRAME_ABORT_MIN)
		return *why = "an entry is cut short", -EBADMSG;
	cw = get64(frames + at);
	elen = cw_len(cw);
	if (cw_off(cw) != (uint32_t)expect || elen > len - at || elen < FRAME_ABORT_MIN)
		return *why = "an entry's commit word does not hold the next offset", -EBADMSG;
	switch (cw_state(cw)) {
	case FRAME_COMMITTED:
		rc = frame_entry(frames + at, elen, expect, max_frame, e, why);
		break;
	case FRAME_ABORTED:
		end = get64(frames + at + 8);
		if (elen != FRAME_ABORT_MIN || end <= expect || end >= PART_POS_MAX)
			return *why = "an aborted range is malformed", -EBADMSG;
		*e = (struct mp_entry){ .off = expect, .end = end, .frame = frames + at,
					.len = elen };
		rc = 1;
		break;
	default:
		return *why = "an entry is neither a committed frame nor an aborted range",
		       -EBADMSG;
	}
	if (rc == 1)
		*cursor = at + elen;
	return rc;
}
