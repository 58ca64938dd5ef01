/*
 * error.c - a thread-local buffer for the last error's message.
 */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>

static __thread char last[512];

int shm_err(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last, sizeof last, fmt, ap);
	va_end(ap);
	return err;
}

const char *shm_errmsg(void)
{
	return last;
}

void shm_err_clear(void)
{
	last[0] = '\0';
}
