/*
 * mirror_link.h - the transport of a mirroring connection (docs/protocol.md
 * §M7): plain TCP (tls = off) or TLS with OpenSSL, certificates or a
 * pre-shared key, in the kernel (kTLS) where it is offered.  The source
 * (mirror_source.c) and the mirror (mirror_sink.c) speak the protocol
 * through these few calls and never see OpenSSL:
 *
 *   mlink_new        wrap a connected socket (the link owns it from then on)
 *   mlink_handshake  TLS before HELLO, within timeout_ms; a no-op for plain TCP
 *   mlink_send       an iovec, all of it, waiting at most timeout_ms per stall
 *   mlink_recv       what has arrived, never waiting
 *   mlink_wait       until something can be read (or another fd wakes)
 *   mlink_close      close and free
 *
 * mirror_link.c is the I/O; mirror_tls.c builds the TLS contexts from the
 * configuration (credentials, the names allowed, the PSK) and checks
 * them for --check-config.
 */
#ifndef SHMBUSD_MIRROR_LINK_H
#define SHMBUSD_MIRROR_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>

#include "config.h"

struct mlink_ctx;    /* one section's TLS setup; NULL: plain TCP */
struct mlink;        /* one connection */

/* ------------------------------------------------------------------ */
/* Contexts (mirror_tls.c)                                             */

/*
 * The TLS context of a section with tls = on: `server` for
 * [mirror-listen] (it asks the mirror for its certificate), else the
 * mirror's, which checks the source's certificate against `allow` or,
 * without it, against `source_host`.  0 and *ret (NULL for tls = off),
 * or -errno, logged naming the section, the file and the fix.
 */
int mlink_ctx_new(const struct config_tls *cfg, bool on, bool server, const char *section,
		  const char *source_host, struct mlink_ctx **ret);

/*
 * A context is reference-counted: mlink_ctx_new's caller holds the
 * first reference, mlink_ctx_get takes another (NULL stays NULL),
 * mlink_ctx_put drops one and the last frees it, its SSL_CTX and its
 * keys.  Safe from any thread, as long as the caller's own reference (or
 * a lock over the holder's) keeps x alive during mlink_ctx_get.
 */
struct mlink_ctx *mlink_ctx_get(struct mlink_ctx *x);
void mlink_ctx_put(struct mlink_ctx *x);

/* When this host's certificate ends (its notAfter, seconds since the
 * epoch), or 0 (a PSK, or tls = off). */
time_t mlink_ctx_not_after(const struct mlink_ctx *x);
/* The file of this host's certificate, "" for a PSK. */
const char *mlink_ctx_cert(const struct mlink_ctx *x);

/* What the context does, for the start's log line: "TLS 1.3 with
 * certificates (CA /etc/..., allowed: a, b)" or "TLS 1.3 with a
 * pre-shared key (identity ...)". */
const char *mlink_ctx_describe(const struct mlink_ctx *x);

/* Whether this kernel offers kTLS (the tls module in
 * /proc/sys/net/ipv4/tcp_available_ulp) and this OpenSSL can use it,
 * in words for the log. */
const char *mlink_ktls_offered(void);

/*
 * --check-config (and start, and SIGHUP) of a section's TLS keys: with
 * tls = on, either cert, key and ca (files readable, PEM, the key the
 * certificate's) or psk_file (mode 0600, "IDENTITY:HEXKEY"); with
 * tls = off, none of them.  0, or -EINVAL with a message naming the
 * section, the file and the fix in err.
 */
int mlink_config_check(const struct config_tls *cfg, bool on, const char *section, bool server,
		       char *err, size_t errlen);

/* Is v a valid `allow` list (1 to 16 names of printable characters)? */
bool mlink_allow_valid(const char *v);

/* ------------------------------------------------------------------ */
/* Connections (mirror_link.c)                                         */

/* A link over the connected socket fd (owned by the link from now on;
 * closed by the caller if this fails): NULL only when out of memory.
 * timeout_ms bounds the handshake and each wait of a send; `stop` (an
 * fd, -1: none) readable ends them at once (shmbusd is stopping). */
struct mlink *mlink_new(int fd, const char *peer, int64_t timeout_ms, int stop);

/*
 * TLS over the link, before any byte of the protocol: as the server
 * (source) or the client (mirror), with x's credentials; x NULL: plain
 * TCP, nothing to do.  The link takes over the caller's reference to x
 * (mlink_ctx_get) and drops it in mlink_close, whatever this returns: a
 * connection keeps the context it started with for its whole life.  0, or -errno with mlink_why() saying why (the
 * reason OpenSSL gives, the peer's certificate and what would fix it),
 * within timeout_ms whatever the peer does.  A TLS listener answers a
 * mirror that speaks plain TCP with an ERROR in plain TCP, so that it
 * can say why.
 */
int mlink_handshake(struct mlink *t, struct mlink_ctx *x, bool server);

/* Send all of iov (modified as it goes): 0, -ETIMEDOUT if the peer did not
 * read for timeout_ms, or -errno.  `more`: more follows at once (MSG_MORE). */
int mlink_send(struct mlink *t, struct iovec *iov, int n, bool more);

/* What has arrived, up to len bytes, without waiting: the count, -EAGAIN
 * if nothing yet, 0 if the peer closed, or -errno (mlink_why()). */
ssize_t mlink_recv(struct mlink *t, void *buf, size_t len);

/* Wait up to wait_ms for something to read: 1, or 0 if nothing came in
 * time or `also` (an fd, -1: none) became readable first. */
int mlink_wait(struct mlink *t, int also, int wait_ms);

/* Why the last call failed. */
const char *mlink_why(const struct mlink *t);
/* Did the link fail with a reason (a TLS alert, a refused certificate)?
 * A silent close has none. */
bool mlink_has_why(const struct mlink *t);

/* "off", "user-space", "kTLS tx", "kTLS rx" or "kTLS tx/rx": how the
 * link's records are encrypted (docs/protocol.md §M7). */
const char *mlink_mode(const struct mlink *t);

/* How the link is protected, for the log: "plain TCP", or "TLSv1.3
 * TLS_AES_256_GCM_SHA384, peer /CN=mirror-b, user-space TLS (no kTLS)". */
void mlink_describe(const struct mlink *t, char *buf, size_t len);

/* The peer certificate's subject ("/CN=mirror-b"), or "" (plain TCP, a
 * pre-shared key): named with a mirror's id in the log and the status. */
void mlink_peer_name(const struct mlink *t, char *buf, size_t len);

/* HELLO's auth for this link: MP_AUTH_NONE or MP_AUTH_TLS. */
uint16_t mlink_auth(const struct mlink *t);

/* Do these first bytes from a peer look like a TLS handshake record (a
 * mirror with tls = on, at a plain listener)? */
bool mlink_looks_tls(const uint8_t *buf, size_t len);

/* Has OpenSSL read bytes ahead that the socket no longer shows?  (A
 * watcher polling the socket cannot see them; the reader must look.) */
bool mlink_buffered(const struct mlink *t);

void mlink_close(struct mlink *t);

#endif
