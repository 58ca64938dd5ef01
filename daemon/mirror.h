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
#include "../util/clock.h"
#include "../shm/mirrorproto.h"

/* Listen for mirrors if [mirror-listen] is configured (a warning says it
 * is plaintext); stop and drop them all. */
int mirror_source_init(struct daemon *d);
void mirror_source_fini(struct daemon *d);

/* Start a thread per [mirror "NAME"]; stop them. */
int mirror_sink_init(struct daemon *d);
void mirror_sink_fini(struct daemon *d);

/* The mirrored partitions' status as text, one partition a line of
 * KEY=VALUE fields separated by tabs (protocol.md §9), into buf;
 * the length written (truncated to fit, at a line's end). */
size_t mirror_status_text(struct daemon *d, char *buf, size_t len);

#endif
