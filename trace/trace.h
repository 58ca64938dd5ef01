/*
 * trace.h - what trace.bpf.c and the shmbus-trace program share: the map
 * keys and values and the events of the ring buffer.  Plain C types only:
 * both the BPF side (vmlinux.h) and user space include it.
 */
#ifndef SHMBUS_TRACE_H
#define SHMBUS_TRACE_H

#define TRACE_TOPIC_MAX 256  /* PART_NAME_MAX + 1 */
#define TRACE_COMM_MAX  16
#define TRACE_HIST_SLOTS 40  /* log2 buckets of nanoseconds: up to ~18 minutes */
#define TRACE_MAX_PARTS 4096 /* (topic, partition) pairs traced at once */

struct shmbus_trace_key {
	char topic[TRACE_TOPIC_MAX];
	unsigned int partition;
	unsigned int pad;
};

/* Cumulative counts of one partition since the tracer started */
struct shmbus_trace_counts {
	unsigned long long appends;      /* records claimed */
	unsigned long long append_bytes; /* ring bytes claimed */
	unsigned long long commits;
	unsigned long long deliveries;
	unsigned long long aborts;       /* records a producer aborted itself */
	unsigned long long unblocked;    /* records of stalled claims aborted by another */
	unsigned long long stalls;
	unsigned long long laps;
	unsigned long long resets;
	unsigned long long waits;
	unsigned long long wakes;
	unsigned long long bp_blocked;
	unsigned long long hist[TRACE_HIST_SLOTS]; /* append -> delivery latency */
};

enum shmbus_trace_kind {
	TRACE_ABORT = 1,
	TRACE_UNBLOCK,
	TRACE_STALL,
	TRACE_LAP,
	TRACE_BP_BLOCKED,
	TRACE_REBALANCE,  /* group: offset = new epoch, records = members */
	TRACE_ASSIGN,     /* group, topic, partition: other_pid = the member, offset = epoch */
};

/* One noteworthy event: who (pid, comm) did what, and whom it concerns
 * (other_pid: the claimant of an aborted or stalled claim, the slowest
 * consumer; other_comm as last seen appending, if it was) */
struct shmbus_trace_event {
	unsigned int kind;
	unsigned int partition;
	int pid;
	int other_pid;
	unsigned long long offset;
	unsigned long long records;
	char comm[TRACE_COMM_MAX];
	char other_comm[TRACE_COMM_MAX];
	char topic[TRACE_TOPIC_MAX];
	char group[TRACE_TOPIC_MAX]; /* rebalance and assign */
};

#endif
