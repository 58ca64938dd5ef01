/*
 * netpair.h - two hosts for the mirroring benchmark: network namespaces
 * joined by one veth pair (no bridge: the shortest path two hosts can
 * have), each end up with an address 10.202.0.1/24 and 10.202.0.2/24.
 * The same idea as tests/lib/netlab.c, which bench/ may not link.
 *
 * Names carry the pid, so runs never meet; netpair_down() deletes both
 * namespaces (the veth pair goes with them).  Processes are started
 * inside a namespace with setns(2) in the forked child, pinned to a CPU
 * before exec, and stopped by their pid.
 */
#ifndef SHMBUS_BENCH_NETPAIR_H
#define SHMBUS_BENCH_NETPAIR_H

#include <stdbool.h>
#include <sys/types.h>

struct netpair {
	char ns[2][32];
	char addr[2][16];
	bool made[2];
};

/* Make the pair: 0, or -1 with why (no root, no `ip netns`, no veth). */
int netpair_up(struct netpair *n, char *why, size_t len);
void netpair_down(struct netpair *n);

/* Run a shell command quietly; 0 if it exited 0. */
int netpair_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Start argv (argv[0] a path) in host i's namespace, pinned to cpu
 * (-1: not pinned), its stdout and stderr into `log` (NULL: /dev/null;
 * with `out_fd` non-NULL stdout goes to a pipe whose read end is
 * returned there).  The pid, or -1.
 */
pid_t netpair_spawn(struct netpair *n, int i, int cpu, const char *const *argv, const char *log,
		    int *out_fd);

/* SIGTERM, wait up to ms, then SIGKILL; reaps it.  Its exit status
 * (waitpid's), or -1. */
int netpair_stop(pid_t pid, int ms);

#endif
