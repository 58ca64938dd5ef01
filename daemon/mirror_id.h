/*
 * mirror_id.h - this shmbusd's mirror id (docs/protocol.md §M12): 128
 * random bits made once in its root (<root>/mirror-id) and said in every
 * HELLO and HELLO_OK, so that a source counts a mirror once however many
 * addresses it connects from, and two hosts as two whatever their names
 * and addresses.
 */
#ifndef SHMBUSD_MIRROR_ID_H
#define SHMBUSD_MIRROR_ID_H

#include <stdbool.h>
#include <stdint.h>

#include "../shm/mirrorproto.h"

struct daemon;

/* Read <root>/mirror-id, or make it if there is none.  Once: later calls
 * return what the first did.  0, or -errno (logged with the file and
 * the fix). */
int mirror_id_load(struct daemon *d);

/* The id loaded (all zero before). */
const uint8_t *mirror_id(void);

/* An id as 32 lowercase hex digits, into out. */
void mirror_id_hex(const uint8_t id[MP_ID_SIZE], char out[2 * MP_ID_SIZE + 1]);

#endif
