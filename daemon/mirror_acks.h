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

struct part;
struct follower;

/* Count a partition mirrored once min_mirrors mirrors hold it. */
void acks_init(unsigned min_mirrors);

/*
 * A mirror (its HELLO's host name, its address "ADDR:PORT") fetches
 * partition p of topic from offset `from`: it holds the offsets below
 * it.  The strings must outlive the follower (they are its
 * connection's).  NULL if out of memory: its ACKs then count for
 * nothing, which is never unsafe.
 */
struct follower *acks_follow(const char *host, const char *peer, const char *topic,
			     struct part *p, uint64_t from);

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
void acks_gone(const char *host, const char *peer, const char *why);

/*
 * The followers of `topic`'s partitions (NULL or "": of every topic),
 * then the mirrors gone lately, one a line of tab-separated KEY=VALUE
 * fields (protocol.md §9), into buf; the length written (cut at a line's
 * end to fit).
 */
size_t acks_status_text(const char *topic, char *buf, size_t len);

#endif
