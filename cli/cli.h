/*
 * cli.h - what the files of the `shmbus` command share.
 */
#ifndef SHMBUS_CLI_H
#define SHMBUS_CLI_H

#include "shmbus.h"

/* `shmbus bench ...` (cli/bench.c): the speed figures of the core
 * targets, min/median/max over repeated runs.  root is the --root given
 * (NULL: a private temporary root).  Returns the process exit status. */
int cmd_bench(const char *root, int argc, char **argv);

#endif
