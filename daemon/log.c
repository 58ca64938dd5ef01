/*
 * log.c - one line per event on stderr.  journald reads a "<N>" prefix as
 * the line's priority and stamps the time itself, so under systemd
 * (JOURNAL_STREAM names our stderr) lines are "<6>message"; elsewhere
 * "2026-11-22 05:12:03.123 info: message".
 */
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* set by the loop (start, SIGHUP), read by every thread: relaxed is
 * enough, a line logged at the old level during a reload is harmless */
static atomic_int max_level = LOG_INFO;
static bool to_journal;

static const char *const names[] = {
	[LOG_EMERG] = "emerg", [LOG_ALERT] = "alert", [LOG_CRIT] = "crit",
	[LOG_ERR] = "error", [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice",
	[LOG_INFO] = "info", [LOG_DEBUG] = "debug",
};

/* JOURNAL_STREAM is "device:inode" of the journal's stream socket. */
static bool stderr_is_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long dev, ino;
	struct stat st;

	if (!js || sscanf(js, "%lu:%lu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st) < 0)
		return false;
	return st.st_dev == dev && st.st_ino == ino;
}

void log_init(int level)
{
	atomic_store_explicit(&max_level, level, memory_order_relaxed);
	to_journal = stderr_is_journal();
}

void log_set_level(int level)
{
	atomic_store_explicit(&max_level, level, memory_order_relaxed);
}

int log_level_parse(const char *name)
{
	for (int i = LOG_ERR; i <= LOG_DEBUG; i++)
		if (!strcmp(name, names[i]))
			return i;
	if (!strcmp(name, "warn"))
		return LOG_WARNING;
	return -1;
}

const char *log_level_name(int level)
{
	return level >= 0 && level <= LOG_DEBUG ? names[level] : "?";
}

void log_msg(int level, const char *fmt, ...)
{
	char line[2048];
	va_list ap;
	int n;

	if (level > atomic_load_explicit(&max_level, memory_order_relaxed))
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	/* one event, one line */
	for (char *p = line; *p; p++)
		if (*p == '\n')
			*p = ' ';
	if (to_journal) {
		n = fprintf(stderr, "<%d>%s\n", level, line);
	} else {
		struct timespec ts;
		struct tm tm;
		char when[32];

		clock_gettime(CLOCK_REALTIME, &ts);
		localtime_r(&ts.tv_sec, &tm);
		strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
		n = fprintf(stderr, "%s.%03ld %s: %s\n", when, ts.tv_nsec / 1000000,
			    log_level_name(level), line);
	}
	(void)n;
	fflush(stderr);
}
