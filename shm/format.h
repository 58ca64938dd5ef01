/*
 * format.h - the partition file format: an ABI shared by every process
 * that maps a partition, so every struct here is _Static_assert'ed.
 *
 * A partition file is three regions, each page aligned:
 *
 *   [0, 12288)                 header: identity, hot words, consumer slots,
 *                              writer slots
 *   [index_offset, +icap*8)    offset index: u64 position of offset o at
 *                              slot o & (icap-1)
 *   [data_offset, +capacity)   data ring: frames at absolute byte positions
 *                              (u64, never wrapping) stored at pos & (cap-1)
 *
 * docs/format.md states the append and read protocol and its invariants;
 * the code cites it as "format.md §n".
 */
#ifndef SHMBUS_SHM_FORMAT_H
#define SHMBUS_SHM_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include "../util/atomics.h"
#include "ident.h"

#define PART_MAGIC        0x3170747262686d73ULL /* "shmbrtp1" little-endian */
/* Version 2 added the horizon (format.md §2): an older library must not
 * append to a partition whose readers trust it, so it refuses version 2.
 * Version 1 files are still mapped, and read with the tail alone. */
#define PART_VERSION      2u
#define PART_VERSION_NO_HORIZON 1u
#define PART_HEADER_SIZE  12288u
#define PART_PAGE         4096u

#define PART_CAP_MIN      4096ULL             /* smallest data ring */
#define PART_CAP_MAX      (1ULL << 32)        /* see format.md §1: offset bits */
#define PART_ICAP_MIN     64ULL
#define PART_ICAP_MAX     (1ULL << 28)
#define PART_NAME_MAX     255                 /* topic name, without NUL */

#define PART_MAX_CONSUMERS 64                 /* registered consumer slots */
/* No position or offset gets near this in centuries at memory speed: a
 * claim word beyond it is damaged. */
#define PART_POS_MAX      (1ULL << 62)
#define PART_MAX_WRITERS   64                 /* writer announcement slots */

enum part_policy {
	PART_POLICY_OVERWRITE = 0,    /* a full lap old is overwritten (default) */
	PART_POLICY_BACKPRESSURE = 1, /* never overwrite a registered consumer */
};

/* part_header.status bits */
#define PART_STATUS_DELETED  (1ULL << 0) /* topic deleted: users get -EIDRM */
#define PART_STATUS_REPLICA  (1ULL << 1) /* read-only mirror of another host */
#define PART_STATUS_KNOWN    (PART_STATUS_DELETED | PART_STATUS_REPLICA)

/*
 * The commit word: the first 8 bytes of every frame, and the only word a
 * reader trusts first (format.md §3).
 *
 *   bits 63..62  state
 *   bits 61..32  frame length / 8   (so a frame is at most 8 GiB - 8)
 *   bits 31..0   low 32 bits of an offset:
 *                  CLAIMED, COMMITTED, ABORTED: the frame's (first) offset
 *                  PADDING: the offset of the frame at the next lap's start
 *
 * An ABORTED frame may cover several offsets: the one after the range is
 * the u64 at frame + 8, stored after the aborting CAS.  An all-zero word
 * was never written (a frame is never 0 bytes long).
 */
enum frame_state {
	FRAME_ABORTED = 0,
	FRAME_CLAIMED = 1,
	FRAME_COMMITTED = 2,
	FRAME_PADDING = 3,
};

#define FRAME_ALIGN        8u
#define FRAME_ABORT_MIN    16u /* commit word and the offset after the range */
#define FRAME_LEN_UNITS_MAX ((1ULL << 30) - 1)

static inline uint64_t cw_make(enum frame_state st, uint64_t len, uint64_t off)
{
	return ((uint64_t)st << 62) | ((len / FRAME_ALIGN) << 32) | (off & 0xffffffffULL);
}

static inline enum frame_state cw_state(uint64_t w)
{
	return (enum frame_state)(w >> 62);
}

static inline uint64_t cw_len(uint64_t w)
{
	return ((w >> 32) & FRAME_LEN_UNITS_MAX) * FRAME_ALIGN;
}

static inline uint32_t cw_off(uint64_t w)
{
	return (uint32_t)w;
}

/* Frame flags */
#define FRAME_F_KEY_NULL    (1u << 0) /* key absent (not just empty) */
#define FRAME_F_VALUE_NULL  (1u << 1) /* value absent: a tombstone */

/*
 * A frame: this header, then key, record headers, value, padding to 8.
 * The CRC32C covers bytes [8, 44) of the header and the whole payload
 * (key, headers, value); not the commit word, which changes state, and
 * not itself.
 */
struct frame_hdr {
	uint64_t commit;
	uint64_t offset;
	int64_t timestamp_ns;
	uint32_t key_len;
	uint32_t value_len;
	uint32_t headers_len;  /* bytes of the encoded header section */
	uint16_t header_count;
	uint16_t flags;
	uint32_t pid;          /* the claiming process, for the unblocker */
	uint32_t crc;
};

#define FRAME_HDR_SIZE     48u
#define FRAME_CRC_START    8u
#define FRAME_CRC_END      44u /* the crc field itself */

_Static_assert(sizeof(struct frame_hdr) == FRAME_HDR_SIZE, "frame header is 48 bytes");
_Static_assert(offsetof(struct frame_hdr, crc) == FRAME_CRC_END, "crc follows the covered fields");
_Static_assert(offsetof(struct frame_hdr, offset) == FRAME_CRC_START, "crc starts after commit");

static inline uint64_t frame_size(uint64_t klen, uint64_t hlen, uint64_t vlen)
{
	return (FRAME_HDR_SIZE + klen + hlen + vlen + FRAME_ALIGN - 1) & ~(uint64_t)(FRAME_ALIGN - 1);
}

/*
 * A registered consumer (backpressure policy): producers never overwrite
 * bytes at or after `pos` (format.md §5).  One cache line each.
 */
struct part_consumer_slot {
	uint32_t pid;          /* 0: free */
	uint32_t flags;
	uint64_t pos;          /* oldest position still in use */
	uint64_t offset;       /* next offset to read, for lag reports */
	uint64_t start_time;   /* process start time (clock ticks), detects pid reuse */
	uint64_t registered_ns;
	char name[24];         /* group or consumer label, for `stats` */
};
_Static_assert(sizeof(struct part_consumer_slot) == 64, "slot is one cache line");

/*
 * A writer's announcement (format.md §4 step 3): before each claim CAS a
 * producer publishes the claim word it bases the CAS on, so an unblocker
 * knows every claim boundary, even of claims not yet marked, and other
 * producers never lap a claim still being written (WRITER_BUSY until its
 * frames are published).  Seqlocked: seq is odd while pos/off change.
 * One cache line each.
 */
#define WRITER_BUSY 1u /* from announcement to publication: do not lap pos */

struct part_writer_slot {
	uint32_t pid;          /* 0: free */
	uint32_t flags;        /* WRITER_BUSY */
	uint64_t start_time;   /* process start time, detects pid reuse */
	uint64_t seq;
	uint64_t pos;          /* a tail value: a claim boundary */
	uint64_t off;          /* the offset at that boundary */
	/* the word its claim's first position will hold: PADDING or CLAIMED
	 * for `off` (0 from libraries before it): tells that word from older
	 * bytes whose low 32 bits equal `off` (format.md §4 step 4) */
	uint64_t first;
	uint8_t pad[16];
};
_Static_assert(sizeof(struct part_writer_slot) == 64, "writer slot is one cache line");

/*
 * One entry of a partition's epoch history (format.md §14, Kafka's
 * KIP-101 leader epochs): the records from `start` on, up to the next
 * entry's start, were written under `epoch` (random, never 0).
 */
#define PART_EPOCHS_MAX 32u

struct part_epoch {
	uint64_t epoch;
	uint64_t start;
};
_Static_assert(sizeof(struct part_epoch) == 16, "an epoch entry is 16 bytes");

/*
 * The header.  Identity fields are written once at creation and never
 * again.  Each group of hot words lives in its own 128-byte block (two
 * cache lines, against adjacent-line prefetch), and words written by
 * producers never share a block with words written by consumers.
 */
struct part_header {
	/* [0, 128): identity, immutable */
	uint64_t magic;
	uint32_t version;
	uint32_t header_size;
	uint64_t endian;
	uint32_t word_size;
	uint32_t frame_align;
	uint64_t file_size;
	uint64_t index_offset;
	uint64_t index_capacity;
	uint64_t data_offset;
	uint64_t data_capacity;
	uint64_t topic_id;
	uint64_t epoch;          /* random, new at each creation */
	int64_t created_ns;      /* CLOCK_REALTIME */
	uint32_t partition;
	uint32_t policy;         /* enum part_policy */
	int32_t numa_node;       /* -1: local to the creator */
	uint32_t max_frame;      /* largest frame, capacity / 2 */
	uint32_t reserved0;
	uint32_t reserved1;
	uint64_t reserved_id;

	/* [128, 384): the topic's name, for tools that open a file alone */
	char topic[PART_NAME_MAX + 1];

	/* [384, 512): the horizon (format.md §4 step 3, horizon.h): no
	 * process writes a byte of the data ring at or past this position.
	 * Producers (either policy) raise it, a step ahead, before
	 * their claim CAS (about once per step of bytes); readers load it for
	 * their lap check instead of the claim word every producer CASes.
	 * Its own block: readers keep the line shared between raises. */
	uint64_t horizon;
	uint8_t pad_horizon[120];

	/* [512, 640): read-mostly status */
	uint64_t status;         /* PART_STATUS_* */
	uint64_t start;          /* lowest readable offset (retention, recovery) */
	uint64_t writer_mask;    /* bit i: writers[i] is taken (for supervisors) */
	/* truncation (format.md §14): `cuts` is odd while the end is being
	 * cut back, and counts up by 2 for each cut; `cut_off` is the
	 * offset the last cut went back to, `cut_pos` where its jump lies.
	 * Readers compare `cuts` with their cursor's at every read: the
	 * same cache line as `status`. */
	uint64_t cuts;
	uint64_t cut_off;
	uint64_t cut_pos;
	uint8_t pad_status[80];

	/* [640, 768): the claim word {tail position, next offset}, producers;
	 * then the unblock guard {pos | 1, pid} (format.md §7, guard.h):
	 * written only while a claim is unblocked, and loaded by producers
	 * after each claim CAS, from this very cache line */
	pair128 claim;
	pair128 unblock_guard;
	uint8_t pad_claim[96];

	/* [768, 896): futex notify word, bit 31 = a consumer waits */
	uint32_t notify;
	uint8_t pad_notify[124];

	/* [896, 1024): offset mirrored to other hosts (high watermark,
	 * format.md §15), written by the source's shmbusd only, and the futex
	 * word its raises wake (bit 31: someone waits) */
	uint64_t mirrored;
	uint32_t mirrored_wake;
	uint32_t reserved_m0;
	/* replica (format.md §13): {pos, off} just after the last frame or
	 * range its mirror published, the point a restarted mirror resumes */
	pair128 replica_done;
	uint8_t pad_mirrored[96];

	/* [1024, 1152): backpressure: registry generation (bumped on change),
	 * and a futex word producers wait on for room (bit 31: one waits) */
	uint64_t bp_gen;
	uint32_t space;
	uint8_t pad_bp[116];

	/* [1152, 1280): counters written off the fast path */
	uint64_t aborted_claims;   /* claims aborted by an unblocker */
	uint64_t lapped_reads;     /* reads that found their offset overwritten */
	uint64_t recoveries;       /* recovery scans run */
	uint64_t recovered_cut;    /* offsets cut by recovery scans */
	uint64_t bp_blocked;       /* appends refused or delayed by backpressure */
	uint64_t reserved_counter;
	uint64_t mirror_gaps;      /* replica: gaps recorded (the source no longer held them) */
	uint64_t mirror_gap_offsets; /* replica: offsets those gaps cover */
	uint8_t pad_counters[64];

	/* [1280, 1408): the epoch history's word (format.md §14):
	 * generation << 16 | first slot << 8 | count; 0: never written (the
	 * history is {epoch, 0}); and what truncations cut */
	uint64_t epochs_word;
	uint64_t cut_total;        /* offsets cut by truncations, in all */
	uint8_t pad_epochs[112];

	/* [1408, 1920): the epoch history, a ring of PART_EPOCHS_MAX
	 * {epoch, first offset} read from `first slot`, oldest first */
	struct part_epoch epochs[PART_EPOCHS_MAX];

	uint8_t reserved3[PART_PAGE - 1920];

	/* [4096, 8192): registered consumers */
	struct part_consumer_slot consumers[PART_MAX_CONSUMERS];

	/* [8192, 12288): writers' claim announcements */
	struct part_writer_slot writers[PART_MAX_WRITERS];
};

_Static_assert(sizeof(struct part_header) == PART_HEADER_SIZE, "header is three pages");
SHM_IDENT_ASSERT(struct part_header);
_Static_assert(offsetof(struct part_header, writers) == 2 * PART_PAGE, "writers on page 2");
_Static_assert(offsetof(struct part_header, topic) == 128, "topic name at 128");
_Static_assert(offsetof(struct part_header, horizon) == 384, "horizon block at 384");
_Static_assert(offsetof(struct part_header, status) == 512, "status block at 512");
_Static_assert(offsetof(struct part_header, claim) == 640, "claim block at 640");
_Static_assert(offsetof(struct part_header, unblock_guard) == 656, "unblock guard at 656");
_Static_assert(offsetof(struct part_header, notify) == 768, "notify block at 768");
_Static_assert(offsetof(struct part_header, mirrored) == 896, "mirrored block at 896");
_Static_assert(offsetof(struct part_header, mirrored_wake) == 904, "its wake word at 904");
_Static_assert(offsetof(struct part_header, replica_done) == 912, "replica's resume point at 912");
_Static_assert(offsetof(struct part_header, bp_gen) == 1024, "bp block at 1024");
_Static_assert(offsetof(struct part_header, aborted_claims) == 1152, "counters at 1152");
_Static_assert(offsetof(struct part_header, cuts) == 536, "cut count beside status");
_Static_assert(offsetof(struct part_header, epochs_word) == 1280, "epoch history word at 1280");
_Static_assert(offsetof(struct part_header, epochs) == 1408, "epoch history at 1408");
_Static_assert(offsetof(struct part_header, consumers) == PART_PAGE, "slots on page 1");

#define NOTIFY_WAITERS 0x80000000u /* in notify and space: someone sleeps on it */

#endif
