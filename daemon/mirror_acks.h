/*
 * mirror_acks.h - the source's view of the mirrors that follow its
 * partitions, and the mirrored offset it publishes from their positions
 * (docs/protocol.md §M11, format.md §15).  Used by mirror_source.c (each
 * fetch of a mirror connection is a follower) and control.c (the
 * MIRROR_FOLLOWERS text of MIRROR_STATUS, protocol.md §9).
 */
#ifndef SHMBUSD_MIRROR_ACKS_H
#define SHMBUSD_MIRROR_ACKS_H

#include <stddef.h>
#include <stdint.h>

#include "../shm/mirrorproto.h"

struct part;
struct follower;

/*
 * Who a mirror connection is, as its HELLO and its link said: filled by
 * its connection at HELLO, and outliving its followers.  Followers are
 * counted one per mirror id; a mirror of protocol version 2 has none
 * (all zero) and is counted by its host name and its address without the
 * port, as before (protocol.md §M11, §M12).
 */
struct acks_mirror {
	const char *host;            /* HELLO's host name */
	const char *peer;            /* "ADDR:PORT" */
	const char *link;            /* HELLO's [mirror "NAME"]; "" before version 3 */
	const char *cert;            /* its certificate's names, "" without one */
	uint8_t id[MP_ID_SIZE];      /* all zero: none (version 2) */
	char id_hex[2 * MP_ID_SIZE + 1]; /* "" without one */
};

/* Count a partition mirrored once min_mirrors mirrors hold it. */
void acks_init(unsigned min_mirrors);

/*
 * A mirror (`who`) fetches partition p of topic from offset `from`: it
 * holds the offsets below it.  who and topic must outlive the follower
 * (they are its connection's).  NULL if out of memory: its ACKs then
 * count for nothing, which is never unsafe.
 */
struct follower *acks_follow(const struct acks_mirror *who, const char *topic, struct part *p,
			     uint64_t from);

/*
 * A newer connection of the same mirror took over from the connection
 * `old` (protocol.md §M12): its followers count no more, from now on
 * (the connection is being closed).  How many there were.
 */
size_t acks_replace(const struct acks_mirror *old);

/*
 * Its ACK: the replica's end, `end`; `sent`, the offset after what this
 * connection sent it (an end beyond it is not believed).  Raises the
 * partition's mirrored offset if min_mirrors mirrors now hold more.
 * NULL is a no-op.
 */
void acks_ack(struct follower *f, uint64_t end, uint64_t sent);

/* The fetch ended (before its partition is released).  NULL is a no-op. */
void acks_unfollow(struct follower *f);

/* A mirror connection ended, and why: kept (the last few) for status. */
void acks_gone(const struct acks_mirror *who, const char *why);

/*
 * The followers of `topic`'s partitions (NULL or "": of every topic),
 * then the mirrors gone lately, one a line of tab-separated KEY=VALUE
 * fields (protocol.md §9), into buf; the length written (cut at a line's
 * end to fit).
 */
size_t acks_status_text(const char *topic, char *buf, size_t len);

#endif
