// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * trace.bpf.c - the BPF side of `shmbus trace`: programs on the USDT
 * probes of shm/probes.h that count, per (topic, partition), what the bus
 * does, and histogram each record's append -> delivery latency.
 *
 * Latency: the record's timestamp (CLOCK_REALTIME, the producer's) against
 * now at delivery.  BPF reads CLOCK_MONOTONIC (bpf_ktime_get_ns()); user
 * space keeps realtime_offset = REALTIME - MONOTONIC up to date.
 *
 * Noteworthy events (aborts, unblocks, stalls, laps, backpressure) go to
 * user space through a ring buffer, with who caused them: the probe's
 * process, and the claimant or slowest consumer named by the probe, whose
 * comm is known if it appended while traced (a dead producer has none
 * left in /proc).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/usdt.bpf.h>

#include "trace.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

volatile long long realtime_offset; /* REALTIME - MONOTONIC, ns; set by user space */
volatile int target_tgid;           /* 0: every process */
volatile unsigned long long lost_events; /* the ring buffer was full */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TRACE_MAX_PARTS);
	__type(key, struct shmbus_trace_key);
	__type(value, struct shmbus_trace_counts);
} counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, int);
	__type(value, char[TRACE_COMM_MAX]);
} comms SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, int);
	__type(value, struct shmbus_trace_key);
} scratch SEC(".maps");

static const struct shmbus_trace_counts zero;

static __always_inline bool skip(void)
{
	return target_tgid && (int)(bpf_get_current_pid_tgid() >> 32) != target_tgid;
}

static __always_inline struct shmbus_trace_counts *counts_of(const char *topic, long partition,
						       struct shmbus_trace_key **ret_key)
{
	int z = 0;
	struct shmbus_trace_key *k = bpf_map_lookup_elem(&scratch, &z);
	struct shmbus_trace_counts *c;

	if (!k)
		return NULL;
	__builtin_memset(k, 0, sizeof *k);
	bpf_probe_read_user_str(k->topic, sizeof k->topic, topic);
	k->partition = (unsigned int)partition;
	if (ret_key)
		*ret_key = k;
	c = bpf_map_lookup_elem(&counts, k);
	if (c)
		return c;
	bpf_map_update_elem(&counts, k, &zero, BPF_NOEXIST);
	return bpf_map_lookup_elem(&counts, k);
}

static __always_inline void emit(unsigned int kind, const struct shmbus_trace_key *k, int other,
				 unsigned long long offset, unsigned long long records)
{
	struct shmbus_trace_event *e = bpf_ringbuf_reserve(&events, sizeof *e, 0);
	char *oc;

	if (!e) {
		__sync_fetch_and_add(&lost_events, 1);
		return;
	}
	e->kind = kind;
	e->partition = k->partition;
	e->pid = (int)(bpf_get_current_pid_tgid() >> 32);
	e->other_pid = other;
	e->offset = offset;
	e->records = records;
	bpf_get_current_comm(e->comm, sizeof e->comm);
	__builtin_memset(e->other_comm, 0, sizeof e->other_comm);
	oc = other > 0 ? bpf_map_lookup_elem(&comms, &other) : NULL;
	if (oc)
		bpf_probe_read_kernel(e->other_comm, sizeof e->other_comm, oc);
	bpf_probe_read_kernel_str(e->topic, sizeof e->topic, k->topic);
	bpf_ringbuf_submit(e, 0);
}

SEC("usdt")
int BPF_USDT(on_append, void *topic, long partition, unsigned long long offset,
	     unsigned long long records, unsigned long long bytes)
{
	struct shmbus_trace_counts *c;
	char comm[TRACE_COMM_MAX];
	int pid;

	if (skip() || !(c = counts_of(topic, partition, NULL)))
		return 0;
	__sync_fetch_and_add(&c->appends, records);
	__sync_fetch_and_add(&c->append_bytes, bytes);
	pid = (int)(bpf_get_current_pid_tgid() >> 32);
	bpf_get_current_comm(comm, sizeof comm);
	bpf_map_update_elem(&comms, &pid, comm, BPF_ANY);
	return 0;
}

SEC("usdt")
int BPF_USDT(on_commit, void *topic, long partition, unsigned long long offset,
	     unsigned long long records)
{
	struct shmbus_trace_counts *c;

	if (!skip() && (c = counts_of(topic, partition, NULL)))
		__sync_fetch_and_add(&c->commits, records);
	return 0;
}

static __always_inline unsigned int log2_slot(unsigned long long v)
{
	unsigned int s = 0;

	for (int i = 0; i < 63 && v > 1; i++) {
		v >>= 1;
		s++;
	}
	return s < TRACE_HIST_SLOTS ? s : TRACE_HIST_SLOTS - 1;
}

SEC("usdt")
int BPF_USDT(on_deliver, void *topic, long partition, unsigned long long offset, long long ts)
{
	struct shmbus_trace_counts *c;
	long long now, lat;

	if (skip() || !(c = counts_of(topic, partition, NULL)))
		return 0;
	__sync_fetch_and_add(&c->deliveries, 1);
	now = (long long)bpf_ktime_get_ns() + realtime_offset;
	lat = now - ts;
	__sync_fetch_and_add(&c->hist[log2_slot(lat > 0 ? (unsigned long long)lat : 0)], 1);
	return 0;
}

SEC("usdt")
int BPF_USDT(on_abort, void *topic, long partition, unsigned long long offset,
	     unsigned long long records)
{
	struct shmbus_trace_counts *c;
	struct shmbus_trace_key *k;

	if (skip() || !(c = counts_of(topic, partition, &k)))
		return 0;
	__sync_fetch_and_add(&c->aborts, records);
	emit(TRACE_ABORT, k, (int)(bpf_get_current_pid_tgid() >> 32), offset, records);
	return 0;
}

SEC("usdt")
int BPF_USDT(on_unblock, void *topic, long partition, unsigned long long offset,
	     unsigned long long records, long pid)
{
	struct shmbus_trace_counts *c;
	struct shmbus_trace_key *k;

	if (skip() || !(c = counts_of(topic, partition, &k)))
		return 0;
	__sync_fetch_and_add(&c->unblocked, records);
	emit(TRACE_UNBLOCK, k, (int)pid, offset, records);
	return 0;
}

SEC("usdt")
int BPF_USDT(on_stall, void *topic, long partition, unsigned long long offset, long pid)
{
	struct shmbus_trace_counts *c;
	struct shmbus_trace_key *k;

	if (skip() || !(c = counts_of(topic, partition, &k)))
		return 0;
	__sync_fetch_and_add(&c->stalls, 1);
	emit(TRACE_STALL, k, (int)pid, offset, 1);
	return 0;
}

SEC("usdt")
int BPF_USDT(on_lap, void *topic, long partition, unsigned long long offset, long policy)
{
	struct shmbus_trace_counts *c;
	struct shmbus_trace_key *k;

	if (skip() || !(c = counts_of(topic, partition, &k)))
		return 0;
	__sync_fetch_and_add(&c->laps, 1);
	emit(TRACE_LAP, k, 0, offset, (unsigned long long)policy);
	return 0;
}

SEC("usdt")
int BPF_USDT(on_reset, void *topic, long partition, unsigned long long offset,
	     unsigned long long to)
{
	struct shmbus_trace_counts *c;

	if (!skip() && (c = counts_of(topic, partition, NULL)))
		__sync_fetch_and_add(&c->resets, 1);
	return 0;
}

SEC("usdt")
int BPF_USDT(on_wait, void *topic, long partition, long partitions)
{
	struct shmbus_trace_counts *c;

	if (!skip() && (c = counts_of(topic, partition, NULL)))
		__sync_fetch_and_add(&c->waits, 1);
	return 0;
}

SEC("usdt")
int BPF_USDT(on_wake, void *topic, long partition)
{
	struct shmbus_trace_counts *c;

	if (!skip() && (c = counts_of(topic, partition, NULL)))
		__sync_fetch_and_add(&c->wakes, 1);
	return 0;
}

/* The coordinator's probes: events only (no per-partition counts) */
static __always_inline void emit_group(unsigned int kind, const char *group, const char *topic,
				       long partition, int pid, unsigned long long epoch,
				       unsigned long long members)
{
	struct shmbus_trace_event *e = bpf_ringbuf_reserve(&events, sizeof *e, 0);

	if (!e) {
		__sync_fetch_and_add(&lost_events, 1);
		return;
	}
	e->kind = kind;
	e->partition = (unsigned int)partition;
	e->pid = (int)(bpf_get_current_pid_tgid() >> 32);
	e->other_pid = pid;
	e->offset = epoch;
	e->records = members;
	bpf_get_current_comm(e->comm, sizeof e->comm);
	__builtin_memset(e->other_comm, 0, sizeof e->other_comm);
	e->topic[0] = '\0';
	if (topic)
		bpf_probe_read_user_str(e->topic, sizeof e->topic, topic);
	bpf_probe_read_user_str(e->group, sizeof e->group, group);
	bpf_ringbuf_submit(e, 0);
}

SEC("usdt")
int BPF_USDT(on_group_rebalance, void *group, unsigned long long epoch, unsigned long long members)
{
	if (!skip())
		emit_group(TRACE_REBALANCE, group, NULL, 0, 0, epoch, members);
	return 0;
}

SEC("usdt")
int BPF_USDT(on_group_assign, void *group, void *topic, long partition, long pid,
	     unsigned long long epoch)
{
	if (!skip())
		emit_group(TRACE_ASSIGN, group, topic, partition, (int)pid, epoch, 0);
	return 0;
}

SEC("usdt")
int BPF_USDT(on_bp_blocked, void *topic, long partition, long pid)
{
	struct shmbus_trace_counts *c;
	struct shmbus_trace_key *k;

	if (skip() || !(c = counts_of(topic, partition, &k)))
		return 0;
	__sync_fetch_and_add(&c->bp_blocked, 1);
	emit(TRACE_BP_BLOCKED, k, (int)pid, 0, 1);
	return 0;
}
