/*
 * cliutil.c - running the `shmbus` command from tests.
 */
#include "cliutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

const char *tu_cli_path(void)
{
	const char *p = getenv("SHMBUS_CLI");

	return p && *p ? p : "build/shmbus";
}

pid_t tu_cli_spawn(const char *root, const char *log, const char *const *args)
{
	const char *argv[32];
	int n = 0;
	pid_t pid;

	argv[n++] = tu_cli_path();
	argv[n++] = "--root";
	argv[n++] = root;
	for (; *args && n < 31; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		fail_msg("fork: %s", strerror(errno));
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

		if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
			_exit(126);
		unsetenv("SHMBUS_ROOT");
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	return pid;
}

int tu_cli_run(const char *root, const char *const *args, char *out, size_t outlen,
	       int timeout_ms)
{
	char log[] = "/tmp/shmbus-test-cli-XXXXXX";
	int fd = mkstemp(log), st;
	ssize_t n;

	if (fd < 0)
		fail_msg("mkstemp: %s", strerror(errno));
	st = tu_wait(tu_cli_spawn(root, log, args), timeout_ms);
	n = pread(fd, out, outlen - 1, 0);
	out[n > 0 ? n : 0] = '\0';
	close(fd);
	unlink(log);
	return st;
}
