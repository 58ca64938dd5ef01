/*
 * trace_int.h - the parts of shmbus-trace (the user side of `shmbus
 * trace`): attach.c finds the binaries that carry libshmbus's probes and
 * attaches to them, report.c turns the BPF maps into a report per
 * interval, main.c parses the command line and runs the loop.
 */
#ifndef SHMBUS_TRACE_INT_H
#define SHMBUS_TRACE_INT_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "trace.h"

#define TRACE_EXIT_ERROR 1
#define TRACE_EXIT_USAGE 2
#define TRACE_EXIT_CANNOT 3 /* no privilege, no BTF: this machine cannot trace */

#define MAX_TARGETS 64
#define MAX_SEEN 1024

struct trace_bpf;
struct bpf_link;

struct tracer {
	struct trace_bpf *skel;
	pid_t pid;             /* -p PID, or 0 for every process */
	bool verbose;
	/* binaries attached to (pid -1: every process that maps them) */
	char targets[MAX_TARGETS][PATH_MAX];
	size_t ntargets;
	struct bpf_link **links;
	size_t nlinks, links_cap;
	/* binaries already looked at, and whether they carry the probes */
	char (*seen)[PATH_MAX];
	bool *seen_has;
	size_t nseen;
};

/* attach.c */
bool trace_has_probes(struct tracer *t, const char *path);
int trace_attach_binary(struct tracer *t, const char *path);
/* Attach to what the traced processes run; returns binaries newly attached */
int trace_scan(struct tracer *t);
/* The library and commands installed beside this program, if any */
void trace_attach_own_library(struct tracer *t);
void trace_detach_all(struct tracer *t);

/* report.c */
struct report_opts {
	bool json, live;
	const char *topic; /* only this topic, or NULL */
};
struct report;
struct report *report_new(const struct report_opts *o);
void report_free(struct report *r);
int report_event(void *ctx, void *data, size_t len);
/* Print the interval that just ended (seconds long), from the counts map */
void report_interval(struct report *r, int counts_fd, double seconds);
void report_lost(struct report *r, unsigned long long n);

#endif
