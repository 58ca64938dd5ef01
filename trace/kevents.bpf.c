// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * kevents.bpf.c - kernel events for shmbusd's [kernel-events] source:
 * process exec and exit (BTF tracepoints sched_process_exec,
 * sched_process_exit) and TCP connects and accepts (inet_sock_set_state),
 * each written into a ring buffer as a struct kev_record.  CO-RE: fields
 * of task_struct, linux_binprm and sock are read through BTF relocations.
 * A full ring buffer drops the event and counts it in kev_dropped.
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "kevents.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* [0]: KEV_MASK of the events wanted, set by shmbusd (0: none yet) */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, unsigned int);
	__type(value, unsigned int);
} kev_mask SEC(".maps");

/* [0]: events lost to a full ring */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, unsigned int);
	__type(value, unsigned long long);
} kev_dropped SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} kev_ring SEC(".maps");

/* the process that started each connect, until it is established: the
 * ports are chosen after SYN_SENT, the handshake completes in softirq */
struct connector {
	unsigned int pid, ppid, uid;
	char comm[KEV_COMM_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, unsigned long long);
	__type(value, struct connector);
} connecting SEC(".maps");

#define AF_INET 2
#define AF_INET6 10
#define TCP_ESTABLISHED 1
#define TCP_SYN_SENT 2
#define TCP_SYN_RECV 3
#define TCP_CLOSE 7

static __always_inline bool wanted(unsigned int type)
{
	unsigned int z = 0, *m = bpf_map_lookup_elem(&kev_mask, &z);

	return m && (*m & KEV_MASK(type));
}

static __always_inline struct kev_record *start(unsigned int type)
{
	unsigned int z = 0;
	unsigned long long *dropped;
	struct kev_record *r;

	if (!wanted(type))
		return NULL;
	r = bpf_ringbuf_reserve(&kev_ring, sizeof *r, 0);
	if (!r) {
		dropped = bpf_map_lookup_elem(&kev_dropped, &z);
		if (dropped)
			__sync_fetch_and_add(dropped, 1);
		return NULL;
	}
	__builtin_memset(r, 0, sizeof *r);
	r->version = KEV_VERSION;
	r->type = (unsigned char)type;
	r->time_ns = bpf_ktime_get_ns();
	return r;
}

static __always_inline void task_ids(struct kev_record *r, struct task_struct *t)
{
	r->pid = BPF_CORE_READ(t, tgid);
	r->ppid = BPF_CORE_READ(t, real_parent, tgid);
	r->uid = BPF_CORE_READ(t, cred, uid.val);
	BPF_CORE_READ_STR_INTO(&r->comm, t, comm);
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(kev_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	struct kev_record *r = start(KEV_EXEC);
	const char *fn;

	if (!r)
		return 0;
	task_ids(r, p);
	fn = BPF_CORE_READ(bprm, filename);
	bpf_probe_read_kernel_str(r->filename, sizeof r->filename, fn);
	bpf_ringbuf_submit(r, 0);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(kev_exit, struct task_struct *p, bool group_dead)
{
	struct kev_record *r;

	if (!group_dead) /* a thread, not the process */
		return 0;
	r = start(KEV_EXIT);
	if (!r)
		return 0;
	task_ids(r, p);
	r->exit_code = BPF_CORE_READ(p, exit_code);
	bpf_ringbuf_submit(r, 0);
	return 0;
}

/* A connect begins: remember who started it */
static __always_inline void remember(unsigned long long key)
{
	struct task_struct *t = (struct task_struct *)bpf_get_current_task_btf();
	struct connector c = { 0 };

	c.pid = BPF_CORE_READ(t, tgid);
	c.ppid = BPF_CORE_READ(t, real_parent, tgid);
	c.uid = BPF_CORE_READ(t, cred, uid.val);
	bpf_get_current_comm(c.comm, sizeof c.comm);
	bpf_map_update_elem(&connecting, &key, &c, BPF_ANY);
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(kev_tcp, const struct sock *sk, const int oldstate, const int newstate)
{
	unsigned long long key = (unsigned long long)sk;
	unsigned short family = BPF_CORE_READ(sk, __sk_common.skc_family);
	struct connector *c = NULL;
	struct kev_record *r;
	unsigned int type;

	if (BPF_CORE_READ_BITFIELD_PROBED(sk, sk_protocol) != IPPROTO_TCP ||
	    (family != AF_INET && family != AF_INET6))
		return 0;
	if (oldstate == TCP_CLOSE && newstate == TCP_SYN_SENT) {
		if (wanted(KEV_CONNECT))
			remember(key);
		return 0;
	}
	if (oldstate == TCP_SYN_SENT) {
		c = bpf_map_lookup_elem(&connecting, &key);
		type = KEV_CONNECT;
		if (newstate != TCP_ESTABLISHED) { /* refused, or given up */
			bpf_map_delete_elem(&connecting, &key);
			return 0;
		}
	} else if (oldstate == TCP_SYN_RECV && newstate == TCP_ESTABLISHED) {
		type = KEV_ACCEPT;
	} else {
		return 0;
	}
	r = start(type);
	if (!r)
		return 0;
	r->family = family == AF_INET ? 4 : 6;
	r->sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	r->dport = __builtin_bswap16(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (family == AF_INET) {
		BPF_CORE_READ_INTO((unsigned int *)r->saddr, sk, __sk_common.skc_rcv_saddr);
		BPF_CORE_READ_INTO((unsigned int *)r->daddr, sk, __sk_common.skc_daddr);
	} else {
		BPF_CORE_READ_INTO(&r->saddr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		BPF_CORE_READ_INTO(&r->daddr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
	}
	/* the connector as it began; an accept completes in softirq: no pid */
	if (c) {
		r->pid = c->pid;
		r->ppid = c->ppid;
		r->uid = c->uid;
		__builtin_memcpy(r->comm, c->comm, sizeof r->comm);
	}
	bpf_ringbuf_submit(r, 0);
	if (type == KEV_CONNECT)
		bpf_map_delete_elem(&connecting, &key);
	return 0;
}
