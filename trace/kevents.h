/*
 * kevents.h - the kernel events shmbusd publishes into a topic
 * ([kernel-events] in shmbusd.conf): what kevents.bpf.c writes into its
 * ring buffer, and (little-endian, this layout, version 1) the compact
 * binary value format of the records (docs/kernel-events.md).  Plain C
 * types: both the BPF side and the daemon include it.
 */
#ifndef SHMBUS_KEVENTS_H
#define SHMBUS_KEVENTS_H

#define KEV_COMM_MAX     16
#define KEV_FILENAME_MAX 256
#define KEV_VERSION      1

enum kev_type {
	KEV_EXEC = 1,
	KEV_EXIT = 2,
	KEV_CONNECT = 3, /* a socket of this host starts a TCP connection (SYN sent) */
	KEV_ACCEPT = 4,  /* a TCP connection to a listener here is established */
};

/* which events the programs publish (a bit per enum kev_type) */
#define KEV_MASK(t) (1u << (t))

struct kev_record {
	unsigned char version;  /* KEV_VERSION */
	unsigned char type;     /* enum kev_type */
	unsigned char family;   /* connect/accept: 4 or 6; else 0 */
	unsigned char pad;
	unsigned int pid;       /* process (thread group) id; accept: 0 if in softirq */
	unsigned int ppid;
	unsigned int uid;
	int exit_code;          /* exit: the wait status (code << 8 | signal) */
	unsigned short sport, dport; /* host order: local, remote */
	unsigned long long time_ns;  /* CLOCK_MONOTONIC (bpf_ktime_get_ns) */
	unsigned char saddr[16], daddr[16]; /* local, remote (IPv4 in the first 4) */
	char comm[KEV_COMM_MAX];
	char filename[KEV_FILENAME_MAX];    /* exec only */
};

#endif
