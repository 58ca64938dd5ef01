/*
 * mirror.h - what the mirroring files of shmbusd share: the source side
 * (mirror_source.c: [mirror-listen]), the mirror side (mirror_sink.c:
 * [mirror "NAME"]) and the status the control socket reports
 * (MIRROR_STATUS, docs/protocol.md §9).  The protocol is docs/protocol.md
 * part 2; replicas are format.md §13.
 */
#ifndef SHMBUSD_MIRROR_H
#define SHMBUSD_MIRROR_H

#include <fcntl.h>
#include <stddef.h>

#include "shmbusd.h"
#include "mirror_link.h"
#include "../util/clock.h"
#include "../shm/mirrorproto.h"
#include "../shm/truncate.h"

/* Listen for mirrors if [mirror-listen] is configured (a warning says it
 * is plaintext); stop and drop them all. */
int mirror_source_init(struct daemon *d);
void mirror_source_fini(struct daemon *d);

/* Start a thread per [mirror "NAME"]; stop them. */
int mirror_sink_init(struct daemon *d);
void mirror_sink_fini(struct daemon *d);

/*
 * SIGHUP: renew the TLS material of [mirror-listen] and every [mirror
 * "NAME"] (mirror_certs.c): each section's files are read and checked as
 * --check-config does, and only if every one is good are the new
 * contexts swapped in, for new connections; connections already made
 * keep theirs until they end.  Otherwise the material in use is kept,
 * each bad file logged and the failure counted.  0, or -EINVAL.
 */
int mirror_tls_reload(struct daemon *d);

/* Put x in place of the running context (the swap takes over the
 * caller's reference and drops the old one): true if there was one to
 * replace; false (x not taken) for a section without TLS or not running. */
bool mirror_source_tls_swap(struct mlink_ctx *x);
bool mirror_sink_tls_swap(const char *name, struct mlink_ctx *x);

/* Renewals of the TLS material, for the metrics (docs/metrics.md). */
struct mirror_tls_stats {
	uint64_t reloads, failures;  /* SIGHUPs that renewed it, or kept the old */
	int64_t reloaded_at;         /* the last renewal, CLOCK_REALTIME seconds; 0: none */
	size_t n;                    /* sections below */
	struct {
		char section[80];    /* "[mirror-listen]", "[mirror \"b\"]" */
		int64_t not_after;   /* its certificate's end, seconds since the epoch */
	} certs[65];
};

void mirror_tls_stats(struct mirror_tls_stats *ret);

/* A section's context was loaded (start, renewal): note its certificate's
 * end for the metrics, and warn if it is less than 14 days away. */
void mirror_certs_loaded(const char *section, const struct mlink_ctx *x);
/* Once a day, from the tick: warn again of certificates about to end. */
void mirror_certs_tick(void);

/* The mirrored partitions' status as text, one partition a line of
 * KEY=VALUE fields separated by tabs (protocol.md §9), into buf;
 * the length written (truncated to fit, at a line's end). */
size_t mirror_status_text(struct daemon *d, char *buf, size_t len);

/* What the metrics endpoint shows of mirroring (docs/metrics.md). */
struct mirror_source_stats {
	bool listening;
	uint64_t connections;        /* mirrors connected now */
	uint64_t accepted;           /* connections that passed the handshake */
	uint64_t refused;            /* refused: too many, a bad HELLO, no thread */
	uint64_t bytes, records;     /* frame bytes and offsets sent in DATA */
	uint64_t gaps;               /* GAPs sent */
};

struct mirror_part_stats {
	char mirror[64], source[128];
	char topic[PART_NAME_MAX + 1];
	uint32_t partition;
	uint64_t end, source_end, lag_records, lag_ms;
	double lag_seconds;          /* lag_ms / 1000 */
	const char *state;           /* "streaming", "connecting", "stopped" */
	uint64_t reconnects, gaps, gap_offsets, bytes, records;
};

/* A [mirror "NAME"] section's connection. */
struct mirror_stats {
	char mirror[64], source[128];
	bool connected;
	uint64_t reconnects;
};

void mirror_source_stats(struct mirror_source_stats *ret);
/* Up to max mirrors into out; how many there are. */
size_t mirror_sink_mirrors(struct mirror_stats *out, size_t max);
/* Up to max mirrored partitions into out; how many there are. */
size_t mirror_sink_stats(struct mirror_part_stats *out, size_t max);

/* ------------------------------------------------------------------ */
/* Epochs (mirror_epoch.c; docs/protocol.md §M3, §M9, §M10)            */

/* The source's EPOCHS for fetch `id` of p: its history and its end;
 * *ret_version the history's word it shows (sent again when it changes).
 * 0, or -errno (a damaged history: the fetch is not served). */
int mirror_epochs_msg(struct part *p, uint32_t id, struct mp_msg *m, uint64_t *ret_version);

/* May the source stream from `from` to a mirror whose last epoch is
 * mirror_epoch, its EPOCHS being `epochs`? */
bool mirror_fetch_ok(const struct mp_msg *epochs, uint64_t mirror_epoch, uint64_t from);

enum mirror_verdict {
	MV_FOLLOW,     /* in step with the source: append what it sends */
	MV_CUT,        /* cut this host's log back to *ret_off, then fetch again */
	MV_RECREATED,  /* no epoch in common: the source partition was recreated */
	MV_CONVERT,    /* a plain topic the source continues: make it a replica */
	MV_FOREIGN,    /* a plain topic the source does not continue: leave it */
};

/* What the mirror does with partition p (a replica, or a plain topic of
 * the same name) given the source's history and end; *why says both
 * histories. */
enum mirror_verdict mirror_epochs_verdict(struct part *p, bool replica, const struct epoch_hist *src,
					  uint64_t src_end, uint64_t *ret_off, char *why,
					  size_t len);

/* MV_CUT: cut p back to off (format.md §14) and log every offset cut.
 * 1 if something was cut (*ret), 0 if only the history was, -errno. */
int mirror_epochs_cut(const char *label, const char *topic, uint32_t partition, struct part *p,
		      uint64_t off, struct part_cut *ret);

/* shmbus mirror promote (protocol.md §3, the worker's job): the mirror
 * lets go of the topic, each partition gets a new epoch from its end and
 * producers may append.  The partitions promoted, with a line per
 * partition in report; or -errno with msg. */
int mirror_promote(struct daemon *d, const char *topic, char *report, size_t len, char *msg,
		   size_t msglen);

/* Make every [mirror] that follows `topic` let go of it (promote): its
 * partitions are no longer appended to, nor fetched.  0, or -ETIMEDOUT
 * if a mirror did not within its timeout. */
int mirror_sink_release(struct daemon *d, const char *topic);

#endif
