/*
 * notify.c - telling systemd how we are (sd_notify, from libsystemd):
 * READY=1 once the root is recovered and the control socket listens,
 * STATUS= a one-line summary each tick, WATCHDOG=1 at half the period
 * systemd asked for, RELOADING=1 and STOPPING=1 around SIGHUP and
 * SIGTERM.  Without NOTIFY_SOCKET these do nothing.
 */
#include "shmbusd.h"

#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

void notify_ready(struct daemon *d)
{
	(void)d;
	sd_notifyf(0, "READY=1\nMAINPID=%d", (int)getpid());
}

void notify_status(struct daemon *d, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	(void)d;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	sd_notifyf(0, "STATUS=%s", line);
}

void notify_watchdog(struct daemon *d)
{
	(void)d;
	sd_notify(0, "WATCHDOG=1");
}

void notify_stopping(struct daemon *d)
{
	(void)d;
	sd_notify(0, "STOPPING=1");
}

void notify_reloading(struct daemon *d)
{
	(void)d;
	sd_notify(0, "RELOADING=1");
}

int64_t notify_watchdog_ns(void)
{
	uint64_t usec = 0;

	if (sd_watchdog_enabled(0, &usec) <= 0)
		return 0;
	return (int64_t)usec * 1000;
}
