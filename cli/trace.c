/*
 * trace.c - `shmbus trace`: runs shmbus-trace, the tracer built on libbpf
 * (trace/), installed beside this command.
 *
 * The tracer is a program of its own so that libbpf stays out of this
 * command and the library, and so that a machine without clang, bpftool
 * or the kernel's BTF builds everything else (docs/tracing.md).
 */
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

/* shmbus-trace beside this executable */
static int tracer_path(char *buf, size_t sz)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	char *slash;

	if (n <= 0)
		return -1;
	self[n] = '\0';
	slash = strrchr(self, '/');
	if (!slash)
		return -1;
	*slash = '\0';
	if ((size_t)snprintf(buf, sz, "%s/shmbus-trace", self) >= sz)
		return -1;
	return access(buf, X_OK);
}

int cmd_trace(struct cli *cli, int argc, char **argv)
{
	char path[PATH_MAX];

	(void)cli;
	(void)argc;
	if (tracer_path(path, sizeof path) == 0)
		execv(path, argv); /* argv[0] is "trace"; the tracer names itself */
	else
		execvp("shmbus-trace", argv);
	fprintf(stderr, "shmbus trace: no shmbus-trace beside this command nor in PATH (%s): it "
		"is built only where clang, bpftool, libbpf-dev and the kernel's BTF are present; "
		"see the message of `make`\n", strerror(errno));
	return 1;
}
