/*
 * error.h - the message behind the last -errno a shm/ or lib/ call
 * returned in this thread: it names the object and the fix.  Callers
 * show it (the CLI, the daemon); the library itself never logs.
 */
#ifndef SHMBUS_SHM_ERROR_H
#define SHMBUS_SHM_ERROR_H

/* Record a message for `err` (a negative errno) and return err. */
int shm_err(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The last message set in this thread ("" if none). */
const char *shm_errmsg(void);

/* Forget the last message. */
void shm_err_clear(void);

#endif
