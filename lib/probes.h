/*
 * probes.h - libshmbus's side of the USDT probes (the list and the macros
 * are in shm/probes.h): helpers that fire a probe per record, called only
 * while the probe is traced.
 */
#ifndef SHMBUS_LIB_PROBES_H
#define SHMBUS_LIB_PROBES_H

#include <stddef.h>

#include "../shm/probes.h"

struct shmbus_message;

/* deliver, once for each of msgs[0..n) */
void lib_probe_deliver(const struct shmbus_message *msgs, size_t n);

#endif
