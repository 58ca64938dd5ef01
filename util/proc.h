/*
 * proc.h - process identity for words that outlive processes: a pid plus
 * its start time, so a recycled pid is not taken for the process that
 * wrote a slot.
 */
#ifndef SHMBUS_SHM_PROC_H
#define SHMBUS_SHM_PROC_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* Start time of `pid` in clock ticks since boot (field 22 of
 * /proc/pid/stat); 0 if the process does not exist or cannot be read. */
uint64_t proc_start_time(pid_t pid);

/* False when `pid` no longer exists, has exited (a zombie its parent has
 * not reaped), or is another process with the same pid (start_time 0: do
 * not compare).  A process we may not signal (EPERM) exists. */
bool proc_alive(pid_t pid, uint64_t start_time);

/* This process's pid and start time, cached (refreshed after fork). */
pid_t proc_self(uint64_t *start_time);

#endif
