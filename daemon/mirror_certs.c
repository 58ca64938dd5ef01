/*
 * mirror_certs.c - renewing the mirror links' TLS material while the
 * daemon runs (docs/operations.md "Renewing certificates").
 *
 * Certificates expire; operators renew the files in place (cert, key,
 * ca, psk_file) and send SIGHUP (`systemctl reload shmbusd`).  Then,
 * for [mirror-listen] and every [mirror "NAME"] with tls = on, at the
 * paths in force (a new path needs a restart, as every key of those
 * sections):
 *
 *   1. every section's files are read and checked exactly as
 *      --check-config does (mlink_config_check: PEM, valid today, the
 *      key the certificate's, a CA certificate, a PSK file of mode 0600),
 *      and a new context is built from them;
 *   2. only if every section passes are the new contexts swapped in,
 *      all of them, for the connections made from then on.  A connection
 *      already made keeps the context it started with (it holds a
 *      reference: mirror_tls.h), so a renewal never breaks one, and the
 *      old context is freed when the last of them ends;
 *   3. otherwise nothing changes: each bad file is logged with its
 *      section, its path and the fix, and the failure is counted
 *      (shmbus_daemon_tls_reload_failures_total), so an alert sees that
 *      the renewal did not take.
 *
 * All or nothing, so that the two ends of a renewal (a new certificate
 * here, the CA that signs it there) never run half of one.  It also
 * records each section's certificate's end, for the metrics, and warns
 * when it is less than EXPIRY_WARN_DAYS away: at start, at each renewal,
 * and once a day from the tick (mirror_certs_tick).
 */
#include "mirror.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define EXPIRY_WARN_DAYS 14
#define SECTIONS_MAX     (CONFIG_MIRRORS_MAX + 1)
#define WARN_EVERY_S     86400

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER; /* the metrics thread reads */
static struct mirror_tls_stats stats;
static int64_t warned_at; /* the tick's last expiry check (loop thread only) */

/* Warn if a certificate ends within EXPIRY_WARN_DAYS (or has ended). */
static void warn_expiry(const char *section, const struct mlink_ctx *x)
{
	time_t end = mlink_ctx_not_after(x), now = time(NULL);
	char when[32];
	struct tm tm;

	if (!end || end - now > EXPIRY_WARN_DAYS * 86400)
		return;
	gmtime_r(&end, &tm);
	strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm);
	if (end <= now)
		log_err("%s certificate %s expired on %s: peers refuse it; renew the file and send "
			"SIGHUP (systemctl reload shmbusd)", section, mlink_ctx_cert(x), when);
	else
		log_warn("%s certificate %s expires on %s, in %.1f days: renew the file and send "
			 "SIGHUP (systemctl reload shmbusd)", section, mlink_ctx_cert(x), when,
			 (double)(end - now) / 86400);
}

void mirror_certs_loaded(const char *section, const struct mlink_ctx *x)
{
	size_t i;

	if (!x)
		return;
	pthread_mutex_lock(&lock);
	for (i = 0; i < stats.n && strcmp(stats.certs[i].section, section); i++)
		;
	if (i < SECTIONS_MAX) {
		snprintf(stats.certs[i].section, sizeof stats.certs[i].section, "%s", section);
		stats.certs[i].not_after = mlink_ctx_not_after(x);
		if (i == stats.n)
			stats.n++;
	}
	pthread_mutex_unlock(&lock);
	warn_expiry(section, x);
	warned_at = (int64_t)time(NULL); /* the tick's next warning is a day from now */
}

void mirror_certs_tick(void)
{
	int64_t now = (int64_t)time(NULL);
	struct mirror_tls_stats st;

	if (now - warned_at < WARN_EVERY_S)
		return;
	warned_at = now;
	mirror_tls_stats(&st);
	for (size_t i = 0; i < st.n; i++) {
		int64_t left = st.certs[i].not_after - now;

		if (st.certs[i].not_after && left <= EXPIRY_WARN_DAYS * 86400)
			log_warn("%s: its certificate %s %.1f days; renew it and send SIGHUP "
				 "(systemctl reload shmbusd)", st.certs[i].section,
				 left <= 0 ? "has expired, for" : "expires in",
				 (double)(left < 0 ? -left : left) / 86400);
	}
}

void mirror_tls_stats(struct mirror_tls_stats *ret)
{
	pthread_mutex_lock(&lock);
	*ret = stats;
	pthread_mutex_unlock(&lock);
}

/* A section being renewed: its new context, until it is swapped in. */
struct renewal {
	char section[80];
	const char *name;            /* the [mirror "NAME"]; NULL: [mirror-listen] */
	struct mlink_ctx *x;
};

/* Check one section's files as --check-config does, and build its new
 * context: 0, or -EINVAL (logged, naming the section and the file). */
static int prepare(struct renewal *r, const struct config_tls *creds, bool server,
		   const char *source)
{
	char err[1024], host[128] = "", port[8];

	if (mlink_config_check(creds, true, r->section, server, err, sizeof err) < 0) {
		log_err("SIGHUP: %s; the TLS material in use is kept", err);
		return -EINVAL;
	}
	if (source && config_metrics_split(source, host, sizeof host, port, sizeof port) < 0)
		host[0] = '\0';
	if (mlink_ctx_new(creds, true, server, r->section, host, &r->x) < 0 || !r->x) {
		log_err("SIGHUP: %s: the TLS material in use is kept", r->section);
		return -EINVAL;
	}
	return 0;
}

/* The sections with TLS on, in r (each checked and built); how many, and
 * in *bad how many failed. */
static size_t prepare_all(struct daemon *d, struct renewal *r, int *bad)
{
	const struct config_mirror_listen *l = &d->cfg.mlisten;
	size_t n = 0;

	*bad = 0;
	if (l->address[0] && l->tls == 1) {
		r[n] = (struct renewal){ .section = "[mirror-listen]" };
		*bad += prepare(&r[n++], &l->creds, true, NULL) < 0;
	}
	for (size_t i = 0; i < d->cfg.nmirrors && n < SECTIONS_MAX; i++) {
		const struct config_mirror *m = &d->cfg.mirrors[i];

		if (m->tls != 1)
			continue;
		r[n] = (struct renewal){ .name = m->name };
		snprintf(r[n].section, sizeof r[n].section, "[mirror \"%s\"]", m->name);
		*bad += prepare(&r[n++], &m->creds, false, m->source) < 0;
	}
	return n;
}

/* Swap every new context in; the sections' names, for the log. */
static void swap_all(struct renewal *r, size_t n, char *names, size_t len)
{
	names[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		struct mlink_ctx *x = r[i].x;
		bool swapped = r[i].name ? mirror_sink_tls_swap(r[i].name, x)
					 : mirror_source_tls_swap(x);
		size_t used = strlen(names);

		if (!swapped) { /* not running (it failed to start): nothing to renew */
			mlink_ctx_put(x);
			continue;
		}
		mirror_certs_loaded(r[i].section, x);
		if (used < len)
			snprintf(names + used, len - used, "%s%.79s", used ? ", " : "",
				 r[i].section);
		log_info("%s: now %s", r[i].section, mlink_ctx_describe(x));
		r[i].x = NULL;
	}
}

int mirror_tls_reload(struct daemon *d)
{
	static struct renewal r[SECTIONS_MAX];
	char names[4096];
	size_t n;
	int bad;

	n = prepare_all(d, r, &bad);
	if (n == 0)
		return 0; /* no section with tls = on */
	if (bad) {
		for (size_t i = 0; i < n; i++)
			mlink_ctx_put(r[i].x);
		pthread_mutex_lock(&lock);
		stats.failures++;
		pthread_mutex_unlock(&lock);
		log_err("SIGHUP: TLS material not renewed: %d of %zu section%s failed its checks "
			"(above); every section keeps the material it had, and connections go on",
			bad, n, n == 1 ? "" : "s");
		return -EINVAL;
	}
	swap_all(r, n, names, sizeof names);
	pthread_mutex_lock(&lock);
	stats.reloads++;
	stats.reloaded_at = (int64_t)time(NULL);
	pthread_mutex_unlock(&lock);
	log_notice("SIGHUP: TLS material renewed for %s: new connections use it; connections "
		   "already made keep theirs until they end", names[0] ? names : "no running section");
	return 0;
}
