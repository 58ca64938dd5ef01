/*
 * config.h - the daemon's configuration: built-in defaults, one INI file
 * (/etc/shmbus/shmbusd.conf, parsed by libinih), then command-line flags.
 * Every key, its default and what can change on SIGHUP is documented in
 * docs/shmbusd.conf.md and systemd/shmbusd.conf.example.
 */
#ifndef SHMBUSD_CONFIG_H
#define SHMBUSD_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "kevents.h"

#define CONFIG_DEFAULT_PATH "/etc/shmbus/shmbusd.conf"
#define CONFIG_MAX_CONNS    1024   /* control connections in all */

/* A topic declared in the file ([topic NAME]): created at start if missing. */
struct config_topic {
	char name[256];
	uint32_t partitions;
	uint64_t capacity;
	int policy;                  /* enum shmbus_policy */
	int64_t retention_ms;
	int numa_node;               /* -1: not bound */
};

#define CONFIG_TLS_PATH 512

/* The credentials of a mirror link with tls = on (daemon/mirror_tls.c):
 * certificates (cert, key, ca, and the peer names allowed) or a
 * pre-shared key; "" where not given. */
struct config_tls {
	char cert[CONFIG_TLS_PATH];  /* this host's certificate (PEM, may hold the chain) */
	char key[CONFIG_TLS_PATH];   /* its private key (PEM, unencrypted) */
	char ca[CONFIG_TLS_PATH];    /* the CA certificates peers must be signed by (PEM) */
	char allow[1024];            /* peer names (CN or DNS SAN), comma-separated */
	char psk_file[CONFIG_TLS_PATH]; /* "IDENTITY:HEXKEY", mode 0600 */
};

/* [mirror-listen]: serve this host's topics to mirrors (docs/protocol.md part 2). */
struct config_mirror_listen {
	char address[128];           /* "ADDR:PORT"; "": no listener (no section) */
	int tls;                     /* -1: not given (refused), 0: off, 1: on (with creds) */
	int64_t timeout_ms;          /* a mirror silent, or not reading, this long is dropped */
	struct config_tls creds;     /* tls = on */
	unsigned min_mirrors;        /* mirrors that must hold an offset for it to be mirrored */
};

/* [mirror "NAME"]: this host mirrors topics of another. */
struct config_mirror {
	char name[64];
	char source[128];            /* "HOST:PORT" of the source's [mirror-listen] */
	char topics[1024];           /* names and patterns, comma-separated */
	int tls;                     /* as above */
	int64_t timeout_ms;          /* the source silent this long: reconnect */
	struct config_tls creds;     /* tls = on */
	bool ack_flushed;            /* ack = flushed: ACK only what msync wrote (disk roots) */
	bool resync;                 /* a recreated source: drop the replica, mirror again */
};

#define CONFIG_MIRRORS_MAX 64

struct config {
	/* [daemon] */
	char root[PATH_MAX];         /* "": the user's default root, as libshmbus */
	char control_socket[PATH_MAX]; /* "": <root>/control */
	char admin_group[64];        /* "": only root and the daemon's user administer */
	gid_t admin_gid;
	bool has_admin_gid;
	int log_level;               /* syslog levels: LOG_ERR .. LOG_DEBUG */
	int64_t unblock_timeout_ms;  /* stalled claims are aborted after this */
	int64_t tick_ms;             /* supervision period */
	char metrics[128];           /* "ADDR:PORT" of the Prometheus endpoint; "": off */
	unsigned file_mode;          /* partition files */
	unsigned max_conns_per_uid;  /* control connections of one uid (not root's, not ours) */
	/* [flush] disk roots only */
	int64_t flush_interval_ms;   /* 0: never by time */
	uint64_t flush_records;      /* 0: never by count */
	/* [retention] */
	int64_t retention_default_ms; /* topics created without their own; 0: none */
	/* [kernel-events] (kevents.c) */
	struct kevents_config kevents;
	/* [topic NAME] */
	struct config_topic *topics;
	size_t ntopics;
	/* [mirror-listen] and [mirror "NAME"] */
	struct config_mirror_listen mlisten;
	struct config_mirror *mirrors;
	size_t nmirrors;
};

/* Fill *c with the built-in defaults. */
void config_defaults(struct config *c);

/*
 * Read `path` over *c.  On error returns -EINVAL (or -errno for an
 * unreadable file) and writes into err a message naming the file, the
 * line, the key and the fix: "/etc/shmbus/shmbusd.conf:12: unblock_timeout_ms:
 * \"abc\" is not a number of milliseconds; write e.g. 1000".
 */
int config_load(struct config *c, const char *path, char *err, size_t errlen);

/* Split "HOST:PORT", "[V6]:PORT" or ":PORT" (every address) of the
 * metrics endpoint; -EINVAL if it is not of that form. */
int config_metrics_split(const char *spec, char *host, size_t hlen, char *port, size_t plen);

/* Is spec ("" for none) an address the metrics endpoint can listen on
 * (its form, and that it resolves)?  0, or -EINVAL with why written. */
int config_metrics_check(const char *spec, char *why, size_t len);

/* Check the values together (after flags are applied), and the TLS
 * files the mirror sections name (mlink_config_check); same messages. */
int config_check(const struct config *c, char *err, size_t errlen);

/* The same without reading the TLS files: a SIGHUP renews those on its
 * own, keeping the old material if they are bad (mirror_tls_reload),
 * while the file's other keys apply. */
int config_check_keys(const struct config *c, char *err, size_t errlen);

void config_free(struct config *c);

/*
 * Apply what can change while running from `next` into `cur`, and write
 * into `cannot` (comma-separated) the keys that changed but need a
 * restart.  Returns the number of keys applied.
 */
int config_apply_live(struct config *cur, const struct config *next, char *cannot, size_t len);

#endif
