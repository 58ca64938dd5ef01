/*
 * cliutil.h - the `shmbus` command (the real binary: $SHMBUS_CLI, else
 * build/shmbus) run from a test, with its output captured and a deadline
 * after which it is killed by its pid.
 */
#ifndef SHMBUS_CLIUTIL_H
#define SHMBUS_CLIUTIL_H

#include <stddef.h>
#include <sys/types.h>

/* The command's path. */
const char *tu_cli_path(void);

/*
 * Start `shmbus --root ROOT ARGS...` (args NULL-terminated) with stdout
 * and stderr both written to the file `log` (truncated), and return its
 * pid.  Wait for it with tu_wait().
 */
pid_t tu_cli_spawn(const char *root, const char *log, const char *const *args);

/*
 * Run it to its end (killed after timeout_ms): its exit status (128 +
 * signal if killed, -1 on timeout); what it printed (stdout and stderr,
 * interleaved) goes into out, NUL-terminated.
 */
int tu_cli_run(const char *root, const char *const *args, char *out, size_t outlen,
	       int timeout_ms);

#endif
