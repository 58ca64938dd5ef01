/*
 * netlab.h - hosts for the mirroring tests: up to TU_LAB_HOSTS network
 * namespaces on one bridge (itself in a namespace of its own), each with
 * an address 10.201.0.(i+1)/24 on its "eth0", a root directory, a config
 * file and a shmbusd.  Names carry the test's pid, so runs never meet; no
 * other address is ever contacted.  tu_lab_fini() deletes the namespaces
 * (the veth pairs and the bridge go with them) and the directories, also
 * after a failure.
 *
 * Also the checks every mirroring test makes: a replica caught up with
 * its source, and byte-identical to it for every offset the source holds.
 */
#ifndef SHMBUS_NETLAB_H
#define SHMBUS_NETLAB_H

#include <stdbool.h>
#include <stdint.h>

#include "daemonutil.h"

#define TU_LAB_HOSTS 4

struct tu_lab {
	int hosts;
	char sw[32];                      /* the bridge's namespace */
	char ns[TU_LAB_HOSTS][32];
	char addr[TU_LAB_HOSTS][16];      /* "10.201.0.1" */
	char root[TU_LAB_HOSTS][300];
	char conf[TU_LAB_HOSTS][320];
	struct tu_daemon d[TU_LAB_HOSTS];
	char *dir;
	bool made[TU_LAB_HOSTS + 1];      /* namespaces to delete */
	char why[200];                    /* why the lab could not be built */
	bool ok;
};

/* Build `hosts` hosts (at most TU_LAB_HOSTS).  Never fails the test: on a
 * machine without root or `ip netns`, l->ok is false and l->why says why;
 * tu_lab_need() then skips. */
void tu_lab_init(struct tu_lab *l, int hosts);
void tu_lab_fini(struct tu_lab *l);
void tu_lab_need(struct tu_lab *l);

/* Run a shell command (output discarded); 0 if it exited 0, else -1. */
int tu_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Run a command in host i's namespace. */
int tu_lab_sh(struct tu_lab *l, int i, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Write host i's config: "[daemon]\nroot = ROOT\n" then `text`. */
void tu_lab_config(struct tu_lab *l, int i, const char *text);
/* Start host i's shmbusd in its namespace on its config (fails the test
 * if it does not become ready in 10 s); kill it with SIGKILL. */
void tu_lab_start(struct tu_lab *l, int i);
void tu_lab_kill(struct tu_lab *l, int i);
/* Host i's link to the bridge, down or up. */
void tu_lab_link(struct tu_lab *l, int i, bool up);

/* Wait up to ms for the replica of `topic` under root `dst` to reach the
 * end of its source under `src` on every partition (and the source to be
 * non-empty); fails the test, dumping every daemon's log, if not. */
void tu_lab_caught_up(struct tu_lab *l, const char *src, const char *dst, const char *topic,
		      uint32_t parts, int ms);

/* The same wait, timed: the milliseconds from the call until host dst's
 * replica of `topic` reached host src's end on every partition (fails the
 * test after timeout_ms).  For throughput figures: start the mirror,
 * then call this (test_mirror_tls's measure_catch_up). */
int64_t tu_lab_catch_up_ms(struct tu_lab *l, int src, int dst, const char *topic,
			   uint32_t parts, int timeout_ms);

/* Every offset the partition under `src` holds is under `dst` at the same
 * offset with the same bytes (commit word's length and offset, header,
 * key, headers, value), none is missing or doubled, both end at the same
 * offset.  Gaps recorded in the replica are allowed only if `gaps_ok`;
 * then, as a gap shifts the replica's frames in its ring, the replica
 * may hold fewer of the oldest: less than one largest frame's bytes. */
void tu_replica_identical(const char *src, const char *dst, const char *topic, uint32_t parts,
			  bool gaps_ok);

/* The end (high offset) of a partition, 0 if it cannot be read. */
uint64_t tu_part_high(const char *root, const char *topic, uint32_t part);

/* GET http://ADDR:PORT/path from inside host i's namespace (a thread
 * that joins it): the whole response, headers and body, NUL-terminated,
 * into buf (cut to fit).  0, or -errno (the namespace, the connection,
 * or no answer within 5 s). */
int tu_lab_http_get(struct tu_lab *l, int i, const char *addr, int port, const char *path,
		    char *buf, size_t len);

/* The value of the sample `name{labels}` (exactly as the text has it,
 * e.g. "shmbus_mirror_gaps_total{mirror=\"a\",...}") in a Prometheus
 * text, or -1 if it is not there. */
double tu_metric(const char *text, const char *sample);

#endif
