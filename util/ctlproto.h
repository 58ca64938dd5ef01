/*
 * ctlproto.h - the control socket's wire format (docs/protocol.md): a
 * 16-byte header and TLV attributes, encoded and decoded here for both
 * sides, shmbusd (daemon/control.c) and libshmbus (lib/daemon.c).
 *
 * A pure codec: no sockets, no policy.  Every length in a message is
 * untrusted and checked before use; a decoded message never points
 * outside the buffer it was decoded from.  Attributes of types this side
 * does not know are skipped, which is what lets the protocol grow.
 *
 * Beside the codec, the socket's address (protocol.md §1), so that both
 * ends reach a path the same way: the default path the daemon derives
 * from its root, and the sockaddr for a path, long ones included.
 */
#ifndef SHMBUS_SHM_CTLPROTO_H
#define SHMBUS_SHM_CTLPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CTL_MAGIC     0x4c544353u /* "SCTL" in the first four bytes */
#define CTL_VERSION   1u
#define CTL_HDR_SIZE  16u
#define CTL_ATTR_HDR  4u
#define CTL_MSG_MAX   65536u      /* the largest message, header included */
#define CTL_SOCKET_NAME "control" /* the default socket: <root>/control */

/* Message types (protocol.md §3). */
enum ctl_type {
	CTL_HELLO = 1,
	CTL_TOPIC_CREATE = 2,
	CTL_TOPIC_DELETE = 3,
	CTL_STATUS = 4,
	CTL_GROUP_JOIN = 5,           /* consumer groups (protocol.md §8) */
	CTL_GROUP_HEARTBEAT = 6,
	CTL_GROUP_LEAVE = 7,
	CTL_GROUP_LIST = 8,
	CTL_GROUP_DESCRIBE = 9,
	CTL_GROUP_RESET = 10,
	CTL_GROUP_DELETE = 11,
	CTL_MIRROR_STATUS = 12,       /* the mirrored partitions (protocol.md §9) */
	CTL_MIRROR_PROMOTE = 13,      /* make a replica writable (protocol.md §10) */
	CTL_TOPIC_GROW = 14,          /* add partitions to a topic (protocol.md §3) */
	CTL_RESULT = 128,         /* the one reply type */
};

/* HELLO's FLAGS */
#define CTL_HELLO_REGISTER 0x1u   /* watch my pid (taken from SO_PEERCRED) */

/* TOPIC_GROW's FLAGS */
#define CTL_GROW_VALIDATE_ONLY 0x1u /* check, make nothing */

/* Attribute types (protocol.md §4).  Numbers are never reused. */
enum ctl_attr {
	CTL_A_STATUS = 1,                /* i32: 0 or -errno */
	CTL_A_MESSAGE = 2,               /* str */
	CTL_A_REQUEST = 3,               /* u32: the type of the request answered */
	CTL_A_CLIENT_VERSION = 4,        /* u32: major << 16 | minor << 8 | patch */
	CTL_A_PID = 5,                   /* u32: informational, never trusted */
	CTL_A_FLAGS = 6,                 /* u32 */
	CTL_A_NAME = 7,                  /* str: a topic */
	CTL_A_PARTITIONS = 8,            /* u32 */
	CTL_A_CAPACITY = 9,              /* u64 */
	CTL_A_INDEX_CAPACITY = 10,       /* u64 */
	CTL_A_POLICY = 11,               /* u32 */
	CTL_A_NUMA_NODE = 12,            /* i32 */
	CTL_A_RETENTION_MS = 13,         /* i64 */
	CTL_A_MODE = 14,                 /* u32 */
	CTL_A_PROTOCOL = 15,             /* u32: the daemon's protocol version */
	CTL_A_VERSION = 16,              /* str: the daemon's version */
	CTL_A_REGISTERED = 17,           /* u32: 1 if the peer's pid is watched */
	CTL_A_DAEMON_PID = 18,           /* u32 */
	CTL_A_DAEMON_UID = 19,           /* u32 */
	CTL_A_ROOT = 20,                 /* str */
	CTL_A_CONTROL_SOCKET = 21,       /* str */
	CTL_A_METRICS = 22,              /* str */
	CTL_A_ADMIN_GROUP = 23,          /* str */
	CTL_A_STARTED_NS = 24,           /* i64 */
	CTL_A_UPTIME_MS = 25,            /* u64 */
	CTL_A_HEARTBEAT_NS = 26,         /* i64 */
	CTL_A_UNBLOCK_TIMEOUT_MS = 27,   /* i64 */
	CTL_A_TICK_MS = 28,              /* i64 */
	CTL_A_ON_TMPFS = 29,             /* u32 */
	CTL_A_TOPICS = 30,               /* u64 */
	CTL_A_PARTITION_COUNT = 31,      /* u64 */
	CTL_A_CLIENTS = 32,              /* u64 */
	CTL_A_TICKS = 33,                /* u64 */
	CTL_A_UNBLOCKED = 34,            /* u64 */
	CTL_A_UNBLOCKED_OFFSETS = 35,    /* u64 */
	CTL_A_CLIENTS_GONE = 36,         /* u64 */
	CTL_A_RETENTION_MOVES = 37,      /* u64 */
	CTL_A_RETIRED = 38,              /* u64 */
	CTL_A_FLUSHES = 39,              /* u64 */
	CTL_A_FLUSH_ERRORS = 40,         /* u64 */
	CTL_A_CONTROL_REQUESTS = 41,     /* u64 */
	CTL_A_CONTROL_ERRORS = 42,       /* u64 */
	CTL_A_TOPICS_CREATED = 43,       /* u64 */
	CTL_A_TOPICS_DELETED = 44,       /* u64 */
	CTL_A_RECOVERY_PARTITIONS = 45,  /* u64 */
	CTL_A_RECOVERY_RECOVERED = 46,   /* u64 */
	CTL_A_RECOVERY_IN_USE = 47,      /* u64 */
	CTL_A_RECOVERY_FAILED = 48,      /* u64 */
	CTL_A_RECOVERY_FRAMES = 49,      /* u64 */
	CTL_A_RECOVERY_ABORTED = 50,     /* u64 */
	CTL_A_RECOVERY_CUT = 51,         /* u64 */
	CTL_A_RECOVERY_CUT_BYTES = 52,   /* u64 */
	CTL_A_RECOVERY_REBUILT = 53,     /* u64 */
	CTL_A_RECOVERY_STATUS_REPAIRED = 54, /* u64 */
	/* consumer groups (protocol.md §8) */
	CTL_A_GROUP = 55,                /* str: a group name */
	CTL_A_TOPIC_LIST = 56,           /* str: subscribed topics, one per line */
	CTL_A_PATTERN = 57,              /* str: a POSIX extended regex on topic names */
	CTL_A_ASSIGNOR = 58,             /* str: range, round-robin, cooperative-sticky */
	CTL_A_INSTANCE_ID = 59,          /* str: static membership */
	CTL_A_SESSION_TIMEOUT_MS = 60,   /* i64 */
	CTL_A_MAX_POLL_MS = 61,          /* i64 */
	CTL_A_MEMBER_ID = 62,            /* u64 */
	CTL_A_MEMBER_EPOCH = 63,         /* u64 */
	CTL_A_GROUP_EPOCH = 64,          /* u64 */
	CTL_A_ACKED_EPOCH = 65,          /* u64: the member epoch fully applied */
	CTL_A_ASSIGNMENT = 66,           /* bytes: struct ctl_tp records */
	CTL_A_LAST_POLL_NS = 67,         /* i64: CLOCK_MONOTONIC of the member's last poll */
	CTL_A_HOST = 68,                 /* str */
	CTL_A_MEMBERS = 69,              /* str: one member per line (DESCRIBE) */
	CTL_A_GROUP_STATE = 70,          /* str */
	CTL_A_GROUPS = 71,               /* str: one group per line (LIST) */
	CTL_A_HEARTBEAT_MS = 72,         /* i64 */
	CTL_A_REBALANCES = 73,           /* u64 */
	CTL_A_OFFSETS = 74,              /* bytes: struct ctl_tp records, value = offset */
	/* mirroring */
	CTL_A_MIRRORS = 75,              /* str: one mirrored partition a line (protocol.md §9) */
	CTL_A_MIRROR_FOLLOWERS = 76,     /* str: one mirror following a partition here a line */
	CTL_A_MIRROR_LISTEN = 77,        /* str: [mirror-listen] address, "" if none (STATUS) */
	CTL_A_MIN_MIRRORS = 78,          /* u32: [mirror-listen] min_mirrors (STATUS) */
	CTL_A_PROMOTED = 79,             /* str: one promoted partition a line (protocol.md §10) */
	CTL_A_COUNT                   /* one past the last known type */
};
_Static_assert(CTL_A_COUNT == 80, "attribute numbers are an ABI: append, never renumber");

/* One partition in an ASSIGNMENT or OFFSETS attribute: 32 bytes, little-endian. */
struct ctl_tp {
	uint64_t topic_id;
	uint32_t partition;
	uint32_t flags;               /* 0 */
	uint64_t member;              /* DESCRIBE: the owner's member id (0: none) */
	uint64_t value;               /* ASSIGNMENT: owner epoch; OFFSETS: the offset */
};
#define CTL_TP_SIZE 32u
#define CTL_TP_MAX ((CTL_MSG_MAX - 1024) / CTL_TP_SIZE) /* records one message holds */

/* What an attribute's value is. */
enum ctl_kind {
	CTL_K_UNKNOWN = 0,
	CTL_K_U32,                    /* 4 bytes */
	CTL_K_I32,                    /* 4 bytes, two's complement */
	CTL_K_U64,                    /* 8 bytes */
	CTL_K_I64,                    /* 8 bytes, two's complement */
	CTL_K_STR,                    /* bytes ending in their only NUL */
	CTL_K_BYTES,                  /* any bytes: str points at them, num is the length */
};

/* The fixed header, decoded (little-endian on the wire). */
struct ctl_hdr {
	uint32_t magic;
	uint16_t version;
	uint16_t type;
	uint32_t length;              /* of the whole message */
	uint32_t seq;                 /* chosen by the requester, echoed by RESULT */
};

/* A decoded message.  Strings point into the decoded buffer. */
struct ctl_msg {
	struct ctl_hdr hdr;
	uint32_t unknown;             /* attributes of unknown types, skipped */
	bool has[CTL_A_COUNT];
	uint64_t num[CTL_A_COUNT];    /* integers; signed ones sign-extended */
	const char *str[CTL_A_COUNT];
};

/* An encoder writing into a caller's buffer. */
struct ctl_out {
	uint8_t *buf;
	size_t cap, len;
	bool overflow;                /* an attribute did not fit: ctl_finish fails */
};

const char *ctl_type_name(uint16_t type);     /* "HELLO", or "" if unknown */
const char *ctl_attr_name(uint16_t attr);     /* "NAME", or "" if unknown */
enum ctl_kind ctl_attr_kind(uint16_t attr);

/*
 * The header of a message of len bytes, if it has one: 0 when len >= 16
 * and the magic matches (the other fields are not checked), else
 * -EBADMSG.  Lets a receiver answer a message it cannot decode with the
 * sequence number the sender chose.
 */
int ctl_peek(const void *buf, size_t len, struct ctl_hdr *ret);

/*
 * Decode a whole message of len bytes: header (magic, length equal to
 * len and at most CTL_MSG_MAX, version CTL_VERSION) and every attribute
 * (in bounds, of its type's size, strings NUL-terminated, no known type
 * twice).  -EBADMSG, -EMSGSIZE or -EPROTO with a message (shm_errmsg)
 * naming the byte and the attribute.  The type is not checked.
 */
int ctl_decode(const void *buf, size_t len, struct ctl_msg *ret);

/* The attributes a known type requires: 0, or -EINVAL naming the missing one. */
int ctl_check(const struct ctl_msg *m);

static inline int64_t ctl_signed(const struct ctl_msg *m, enum ctl_attr a)
{
	return (int64_t)m->num[a];
}

/* Encode: start a message, add attributes, finish (returns its length or
 * -EMSGSIZE).  Strings longer than the message can hold set overflow. */
void ctl_init(struct ctl_out *o, void *buf, size_t cap, uint16_t type, uint32_t seq);
void ctl_put_u32(struct ctl_out *o, enum ctl_attr a, uint32_t v);
void ctl_put_i32(struct ctl_out *o, enum ctl_attr a, int32_t v);
void ctl_put_u64(struct ctl_out *o, enum ctl_attr a, uint64_t v);
void ctl_put_i64(struct ctl_out *o, enum ctl_attr a, int64_t v);
void ctl_put_str(struct ctl_out *o, enum ctl_attr a, const char *s);
void ctl_put_bytes(struct ctl_out *o, enum ctl_attr a, const void *p, size_t n);
/* Records of a bytes attribute: put n of them; count them (-EBADMSG if
 * the length is not a multiple of CTL_TP_SIZE); read the i-th. */
void ctl_put_tps(struct ctl_out *o, enum ctl_attr a, const struct ctl_tp *tp, size_t n);
int ctl_tp_count(const struct ctl_msg *m, enum ctl_attr a);
void ctl_tp_get(const struct ctl_msg *m, enum ctl_attr a, size_t i, struct ctl_tp *ret);
/* Any known attribute from a number, by its kind (not strings). */
void ctl_put_num(struct ctl_out *o, enum ctl_attr a, uint64_t v);
int ctl_finish(struct ctl_out *o);

/* Encode every attribute a decoded message has, in type order, with its
 * header's type and seq: the length, or -EMSGSIZE. */
int ctl_encode(const struct ctl_msg *m, void *buf, size_t cap);

/* The socket's address (protocol.md §1) */

/* The default socket path of a root, <root>/control, into buf: 0, or
 * -ENAMETOOLONG if it does not fit in len bytes. */
int ctl_default_path(const char *root, char *buf, size_t len);

/*
 * The address of the control socket at path, for bind (the daemon) or
 * connect (libshmbus).  A path longer than sun_path is reached through
 * /proc/self/fd/N/<name> of its directory, opened (O_PATH) into *dirfd:
 * close it after the bind or connect; -1 if unused.  0 or -errno
 * (-ENAMETOOLONG when even that does not fit).
 */
struct sockaddr_un;
int ctl_sockaddr(const char *path, struct sockaddr_un *sa, int *dirfd);

#endif
