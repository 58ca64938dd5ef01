/*
 * log.h - the daemon's log: one line per event, with a level.  Under
 * systemd (stderr connected to the journal) lines carry a "<N>" priority
 * prefix and no timestamp; on a terminal, a timestamp and the level name.
 */
#ifndef SHMBUSD_LOG_H
#define SHMBUSD_LOG_H

#include <syslog.h>

void log_init(int level);
void log_set_level(int level);
int log_level_parse(const char *name); /* "debug".."error", or -1 */
const char *log_level_name(int level);

void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_err(...)    log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...)   log_msg(LOG_WARNING, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_NOTICE, __VA_ARGS__)
#define log_info(...)   log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...)  log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
