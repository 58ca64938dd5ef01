/*
 * mirrorproto.h - the mirroring wire protocol (docs/protocol.md, part 2):
 * length-prefixed messages between a mirror's shmbusd and its source's,
 * encoded and decoded here for both sides (daemon/mirror_source.c and
 * daemon/mirror_sink.c), and the check of the frames a DATA batch
 * carries before a replica appends them (shm/replica.c).
 *
 * A pure codec: no sockets, no policy.  Every byte is untrusted: each
 * length is checked against the message before use, each string against
 * its alphabet, and a decoded message points only into its buffer.
 */
#ifndef SHMBUS_SHM_MIRRORPROTO_H
#define SHMBUS_SHM_MIRRORPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "epochs.h"

#define MP_MAGIC       0x31524d42484d53ULL  /* "SHMBMR1" in HELLO's first 8 bytes */
#define MP_VERSION     3u          /* 3: the mirror's id in HELLO (§M12) */
#define MP_VERSION_MIN 2u          /* 2: epochs (FETCH's epoch, EPOCHS, STOP); a source
				    * serves 2 beside 3, counting such a mirror by its
				    * host name and address */
#define MP_ID_SIZE     16u         /* a shmbusd's mirror id: random, made once per root */
#define MP_HDR_SIZE    8u          /* u32 length (whole message), u16 type, u16 flags */
#define MP_CTL_MAX     4096u       /* any message but DATA, header included */
#define MP_BATCH_BYTES (1u << 20)  /* frame bytes a source puts in one DATA, unless one
				    * frame alone is larger */
#define MP_DATA_FIXED  32u         /* DATA after the header: id, count, first, next, end */
#define MP_TRAILER     8u          /* DATA's last 8 bytes */
#define MP_TRAILER_OK  0x4b4f2d4154414446ULL /* "FDATA-OK": the frames were intact when sent */
#define MP_NAME_MAX    255u        /* topic names, patterns, host names */
#define MP_TEXT_MAX    1024u       /* ERROR's text */
#define MP_AUTH_NONE   0u          /* HELLO's auth: plain TCP (tls = off) */
#define MP_AUTH_TLS    1u          /* HELLO's auth: inside TLS, set up before HELLO (§M7) */

enum mp_type {
	MP_HELLO = 1,       /* mirror -> source */
	MP_HELLO_OK = 2,    /* source -> mirror */
	MP_ERROR = 3,       /* either way; the sender closes after it */
	MP_LIST = 4,        /* mirror -> source: topics matching a pattern */
	MP_TOPIC = 5,       /* source -> mirror: one topic LIST matched */
	MP_LIST_END = 6,    /* source -> mirror: LIST answered */
	MP_FETCH = 7,       /* mirror -> source: stream a partition from an offset */
	MP_DATA = 8,        /* source -> mirror: frames of one fetch */
	MP_GAP = 9,         /* source -> mirror: the offsets asked for are gone */
	MP_UNKNOWN = 10,    /* source -> mirror: no such topic or partition (or epoch) */
	MP_ACK = 11,        /* mirror -> source: a fetch's end on the mirror; also its heartbeat */
	MP_HEARTBEAT = 12,  /* source -> mirror: idle, still there */
	MP_EPOCHS = 13,     /* source -> mirror: a fetch's partition's epoch history (v2) */
	MP_STOP = 14,       /* mirror -> source: stop serving a fetch (v2) */
	MP_TYPE_MAX = 14,
};

/* Who sent the bytes being decoded: each type travels one way (ERROR both). */
enum mp_dir {
	MP_FROM_MIRROR = 0,
	MP_FROM_SOURCE = 1,
};

struct mp_msg {
	uint16_t type;
	union {
		struct {
			uint16_t version, auth;
			char host[MP_NAME_MAX + 1];
			/* version >= 3: the sender's mirror id (never all zero), and
			 * in HELLO the [mirror "NAME"] section that connects (not
			 * empty; HELLO_OK's is empty) */
			uint8_t id[MP_ID_SIZE];
			char link[MP_NAME_MAX + 1];
		} hello; /* and HELLO_OK */
		struct { int32_t code; char text[MP_TEXT_MAX + 1]; } error;
		struct { char pattern[MP_NAME_MAX + 1]; } list;
		struct {
			char name[MP_NAME_MAX + 1];
			uint64_t topic_id, capacity, index_capacity;
			uint32_t partitions, policy;
		} topic;
		struct { uint32_t count; } list_end;
		struct {
			char name[MP_NAME_MAX + 1];
			uint32_t id, partition;
			uint64_t epoch;       /* the mirror's last epoch; 0: it has none */
			uint64_t from;
		} fetch;
		struct {
			uint32_t id, count;   /* count: entries (records and aborted ranges) */
			uint64_t first, next; /* offsets the entries cover: [first, next) */
			uint64_t end;         /* the source partition's end when sent (for lag) */
			const uint8_t *frames;
			size_t frames_len;
			uint64_t trailer;
		} data;
		struct { uint32_t id; uint64_t from, to; } gap;
		struct { uint32_t id; int32_t code; } unknown; /* -ENOENT, -EIDRM */
		struct { uint32_t id; uint64_t end; } ack;
		struct {
			uint32_t id;
			uint64_t end;         /* the source partition's end offset */
			struct epoch_hist hist;
		} epochs;
		struct { uint32_t id; } stop;
	} u;
};

const char *mp_type_name(uint16_t type); /* "FETCH", or "" if unknown */

/*
 * Check a message's 8-byte header at buf (len bytes available): 0 with
 * *ret_len (the whole message's length) and *ret_type; -EAGAIN if fewer
 * than 8 bytes; -EBADMSG (bad length or flags), -EPROTO (a type that is
 * unknown or does not travel this way) or -EMSGSIZE (longer than
 * MP_CTL_MAX, or than data_max for DATA).
 */
int mp_peek(const uint8_t *buf, size_t len, enum mp_dir dir, size_t data_max,
	    uint32_t *ret_len, uint16_t *ret_type);

/* Decode one whole message (len bytes, as mp_peek measured): 0 or
 * -EBADMSG/-EPROTO/-EMSGSIZE.  DATA's frames point into buf (8-aligned
 * if buf is). */
int mp_decode(const uint8_t *buf, size_t len, enum mp_dir dir, struct mp_msg *m);

/* Encode any message but DATA into buf: its length, or 0 if it does not
 * fit in cap or a field is invalid. */
size_t mp_encode(const struct mp_msg *m, uint8_t *buf, size_t cap);

/* DATA is sent from the ring (writev): its first MP_HDR_SIZE +
 * MP_DATA_FIXED bytes, for frames_len bytes of frames, and its trailer. */
#define MP_DATA_HEAD (MP_HDR_SIZE + MP_DATA_FIXED)
void mp_data_head(uint8_t buf[MP_DATA_HEAD], uint32_t id, uint32_t count, uint64_t first,
		  uint64_t next, uint64_t end, size_t frames_len);
void mp_data_trailer(uint8_t buf[MP_TRAILER], bool intact);

/*
 * One entry of a DATA batch's frames: a committed frame, exactly as it
 * lies in the source's ring (commit word, header, payload, padding), or
 * an aborted range of 16 bytes (ABORTED commit word, end offset) for
 * offsets the source has no record at.
 */
struct mp_entry {
	uint64_t off;          /* its (first) offset */
	uint64_t end;          /* the offset after it */
	const uint8_t *frame;  /* its bytes */
	uint64_t len;
	bool record;           /* a committed frame (else an aborted range) */
};

/*
 * Check the entry at *cursor of frames (len bytes, 8-aligned): it must
 * start at offset `expect`, and a frame must be at most max_frame bytes
 * with a good CRC32C and record headers.  1 with *e filled and the cursor
 * advanced; 0 at the end; -EBADMSG with why (a static string) in *why.
 */
int mp_entry_next(const uint8_t *frames, size_t len, size_t *cursor, uint64_t expect,
		  uint64_t max_frame, struct mp_entry *e, const char **why);

/* Is s a topic pattern: a topic name's characters, '*' and '?'. */
bool mp_pattern_valid(const char *s);

/* Does topic name match pattern ('*': any run, '?': one character)? */
bool mp_pattern_match(const char *pattern, const char *name);

#endif
