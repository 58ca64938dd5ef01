/*
 * netpair.c - two network namespaces on a veth pair, and processes
 * started in them (netpair.h).
 */
#include "netpair.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int netpair_sh(const char *fmt, ...)
{
	char cmd[600], full[700];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	snprintf(full, sizeof full, "%s >/dev/null 2>&1", cmd);
	return system(full) == 0 ? 0 : -1;
}

static int fail(char *why, size_t len, const char *what)
{
	snprintf(why, len, "%s", what);
	return -1;
}

int netpair_up(struct netpair *n, char *why, size_t len)
{
	int pid = (int)getpid();
	char va[16], vb[16];

	memset(n, 0, sizeof *n);
	if (geteuid() != 0)
		return fail(why, len, "needs root, for network namespaces");
	for (int i = 0; i < 2; i++) {
		snprintf(n->ns[i], sizeof n->ns[i], "shmbm%c%d", 'a' + i, pid);
		snprintf(n->addr[i], sizeof n->addr[i], "10.202.0.%hhu", (unsigned char)(i + 1));
		if (netpair_sh("ip netns add %s", n->ns[i]) < 0)
			return fail(why, len, "`ip netns add` failed (no iproute2, or no netns support)");
		n->made[i] = true;
	}
	snprintf(va, sizeof va, "smva%d", pid % 1000000);
	snprintf(vb, sizeof vb, "smvb%d", pid % 1000000);
	if (netpair_sh("ip link add %s netns %s type veth peer name %s netns %s", va, n->ns[0], vb,
		       n->ns[1]) < 0)
		return fail(why, len, "a veth pair could not be made (`ip link add type veth`)");
	for (int i = 0; i < 2; i++)
		if (netpair_sh("ip -n %s link set %s name eth0", n->ns[i], i ? vb : va) < 0 ||
		    netpair_sh("ip -n %s addr add %s/24 dev eth0", n->ns[i], n->addr[i]) < 0 ||
		    netpair_sh("ip -n %s link set eth0 up", n->ns[i]) < 0 ||
		    netpair_sh("ip -n %s link set lo up", n->ns[i]) < 0)
			return fail(why, len, "a host's link could not be configured");
	return 0;
}

void netpair_down(struct netpair *n)
{
	for (int i = 0; i < 2; i++)
		if (n->made[i])
			netpair_sh("ip netns del %s", n->ns[i]);
	memset(n, 0, sizeof *n);
}

/* In the child: into the namespace, onto the CPU, output redirected. */
static void child(struct netpair *n, int i, int cpu, const char *log, int out_w)
{
	char path[96];
	int fd;

	snprintf(path, sizeof path, "/run/netns/%s", n->ns[i]);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || setns(fd, CLONE_NEWNET) < 0)
		_exit(126);
	if (cpu >= 0) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		sched_setaffinity(0, sizeof set, &set);
	}
	fd = open(log ? log : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd >= 0) {
		dup2(fd, 2);
		dup2(out_w >= 0 ? out_w : fd, 1);
	}
}

pid_t netpair_spawn(struct netpair *n, int i, int cpu, const char *const *argv, const char *log,
		    int *out_fd)
{
	int p[2] = { -1, -1 };
	pid_t pid;

	if (out_fd && pipe2(p, O_CLOEXEC) < 0)
		return -1;
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		sigset_t none;

		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		child(n, i, cpu, log, p[1]);
		execv(argv[0], (char *const *)(uintptr_t)argv);
		_exit(127);
	}
	if (p[1] >= 0)
		close(p[1]);
	if (pid < 0) {
		if (p[0] >= 0)
			close(p[0]);
		return -1;
	}
	if (out_fd)
		*out_fd = p[0];
	return pid;
}

int netpair_stop(pid_t pid, int ms)
{
	int status;

	if (pid <= 0)
		return -1;
	kill(pid, SIGTERM);
	for (int k = 0; k < ms; k += 10) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			return status;
		if (r < 0)
			return -1;
		usleep(10000);
	}
	kill(pid, SIGKILL);
	return waitpid(pid, &status, 0) == pid ? status : -1;
}
