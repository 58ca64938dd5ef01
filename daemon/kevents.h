/*
 * kevents.h - shmbusd's kernel-events source ([kernel-events] in
 * shmbusd.conf): process exec and exit and TCP connects and accepts,
 * taken from the kernel by BPF programs (trace/kevents.bpf.c, loaded from
 * a file built beside the daemon) and published as records into a topic
 * (docs/kernel-events.md).
 */
#ifndef SHMBUSD_KEVENTS_H
#define SHMBUSD_KEVENTS_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KEVENTS_DEFAULT_TOPIC "kernel-events"

enum kevents_format { KEVENTS_JSON = 0, KEVENTS_BINARY = 1 };

struct kevents_config {
	bool enabled;
	char topic[256];             /* "": KEVENTS_DEFAULT_TOPIC */
	unsigned mask;               /* KEV_MASK bits; 0: every event */
	int format;                  /* enum kevents_format */
	char bpf_object[PATH_MAX];   /* "": kevents.bpf.o beside the daemon */
};

/* One key of [kernel-events]; -1 with why (the value and the fix) if bad */
int kevents_config_key(struct kevents_config *k, const char *key, const char *value, char *why,
		       size_t whylen);

struct kevents_stats {
	bool running;
	uint64_t records;            /* published */
	uint64_t dropped_kernel;     /* lost in the kernel: the ring buffer was full */
	uint64_t dropped_publish;    /* taken from the ring, not appended (the topic refused) */
};

struct daemon;

/* Load, attach and start publishing (if enabled); errors are logged and
 * leave the rest of the daemon running.  kevents_fini() undoes it. */
void kevents_init(struct daemon *d);
void kevents_fini(struct daemon *d);
/* Safe from the metrics thread while the source runs */
void kevents_stats(struct daemon *d, struct kevents_stats *ret);

#endif
