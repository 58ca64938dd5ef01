/*
 * mirror_tls.h - what mirror_link.c (the I/O) and mirror_tls.c (the TLS
 * contexts) share: the structs behind mirror_link.h's handles.  Private
 * to those two files.
 */
#ifndef SHMBUSD_MIRROR_TLS_H
#define SHMBUSD_MIRROR_TLS_H

#include <stdatomic.h>
#include <time.h>

#include <openssl/ssl.h>

#include "mirror_link.h"

#define MLINK_ALLOW_MAX 16
#define MLINK_NAME_MAX  255
#define MLINK_KEY_MAX   64   /* PSK bytes */
#define MLINK_ID_MAX    128  /* PSK identity */

/*
 * One section's TLS setup, shared by the section (its holder: the source,
 * or a [mirror] thread) and every link that did its handshake with it,
 * each holding a reference: OpenSSL's callbacks reach it through the link
 * (allow, the PSK) for as long as the connection lasts, so a SIGHUP that
 * swaps in a renewed context (mirror_certs.c) frees the old one only
 * when its last connection ends.  (SSL_new takes a reference to the
 * SSL_CTX itself; this one covers the rest of the struct.)
 */
struct mlink_ctx {
	atomic_int refs;
	SSL_CTX *ssl;
	bool server;
	bool psk;                    /* a pre-shared key, else certificates */
	char section[80];            /* "[mirror-listen]", "[mirror \"b\"]" */
	char allow[MLINK_ALLOW_MAX][MLINK_NAME_MAX + 1]; /* names accepted; none: any the CA signed */
	int nallow;
	bool allow_is_source;        /* the mirror checks the host of `source` (no allow) */
	char sni[MLINK_NAME_MAX + 1]; /* the mirror's SNI: source's host if a name, else "" */
	char identity[MLINK_ID_MAX + 1];
	uint8_t key[MLINK_KEY_MAX];
	size_t keylen;
	char desc[1200];
	time_t not_after;            /* this host's certificate's end; 0: a PSK */
	char cert[CONFIG_TLS_PATH];  /* its file, for messages */
};

struct mlink {
	int fd;
	char peer[96];               /* "10.0.0.2:41234", or the source's HOST:PORT */
	int64_t timeout_ms;
	struct mlink_ctx *x;         /* NULL: plain TCP */
	SSL *ssl;                    /* after mlink_handshake with TLS */
	bool ktls_tx, ktls_rx;
	bool broken;                 /* a TLS error: no close_notify at the end */
	bool buffered;               /* OpenSSL may hold records read ahead: read before
				      * waiting on the socket */
	int stop;                    /* readable when the daemon stops; -1: none */
	char note[300];              /* what a callback refused during the handshake */
	char why[480];
	uint8_t *stage;              /* small pieces of an iovec, gathered (TLS) */
	size_t staged;
};

/* A new SSL for t on x's context, the link reachable from callbacks
 * (SSL_get_app_data); NULL if out of memory. */
SSL *mlink_tls_new(struct mlink_ctx *x, struct mlink *t);

#endif
