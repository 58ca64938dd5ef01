/*
 * mirror_link.c - the I/O of a mirror link (mirror_link.h): plain TCP,
 * or TLS through OpenSSL on the same socket, every wait bounded.
 *
 * Plain TCP keeps the socket blocking, as the threads were written for:
 * SO_SNDTIMEO (set by the caller) bounds each wait of a send, and reads
 * never wait (MSG_DONTWAIT after a poll).
 *
 * TLS makes the socket non-blocking and waits in poll() itself, since an
 * SSL call may need to read to write or write to read: the handshake has
 * timeout_ms in all (a peer that says nothing, or stops midway, is
 * dropped), a send timeout_ms without progress.  Memory is bounded by
 * OpenSSL's record buffers and one 16 KiB staging area.
 *
 * Sending an iovec (a DATA batch: its head, frames from the mapped ring,
 * aborted ranges): frames that lie one after the other in the ring are
 * merged into one span and given to SSL_write straight from the mapping,
 * which encrypts from there into its record (user-space TLS) or hands
 * the plaintext to the kernel (kTLS): no copy of ours.  Only pieces
 * shorter than SMALL_PIECE that do not adjoin (the head, aborted ranges,
 * the trailer, a frame after the ring's wrap) are gathered into the
 * staging area first, so that they do not cost a TLS record and a system
 * call each.
 */
#include "mirror_tls.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "log.h"
#include "../shm/mirrorproto.h"
#include "../util/clock.h"

#define STAGE_MAX   16384  /* one TLS record's plaintext */
#define SMALL_PIECE 512

struct mlink *mlink_new(int fd, const char *peer, int64_t timeout_ms, int stop)
{
	struct mlink *t = calloc(1, sizeof *t);

	if (!t)
		return NULL;
	t->fd = fd;
	t->timeout_ms = timeout_ms;
	t->stop = stop;
	snprintf(t->peer, sizeof t->peer, "%s", peer);
	return t;
}

const char *mlink_why(const struct mlink *t)
{
	return t->why[0] ? t->why : "no reason known";
}

bool mlink_has_why(const struct mlink *t)
{
	return t->why[0] != '\0';
}

const char *mlink_mode(const struct mlink *t)
{
	if (!t || !t->ssl)
		return "off";
	if (t->ktls_tx || t->ktls_rx)
		return t->ktls_tx && t->ktls_rx ? "kTLS tx/rx" : t->ktls_tx ? "kTLS tx" : "kTLS rx";
	return "user-space";
}

uint16_t mlink_auth(const struct mlink *t)
{
	return t->ssl ? MP_AUTH_TLS : MP_AUTH_NONE;
}

bool mlink_looks_tls(const uint8_t *buf, size_t len)
{
	/* a TLS record: content type 22 (handshake), version 3.x */
	return len >= 3 && buf[0] == 0x16 && buf[1] == 0x03 && buf[2] <= 0x04;
}

/* Wait up to ms for events on the socket: 1, 0 (timed out), -ECANCELED
 * (the daemon stops) or -errno. */
static int wait_io(struct mlink *t, short events, int64_t ms)
{
	struct pollfd p[2] = { { .fd = t->fd, .events = events },
			       { .fd = t->stop, .events = POLLIN } };
	int rc = poll(p, t->stop >= 0 ? 2 : 1, ms < 0 ? 0 : ms > INT_MAX ? INT_MAX : (int)ms);

	if (rc < 0 && errno == EINTR)
		return 0; /* the caller's deadline decides */
	if (rc > 0 && t->stop >= 0 && p[1].revents) {
		snprintf(t->why, sizeof t->why, "shmbusd is stopping");
		return -ECANCELED;
	}
	return rc < 0 ? -errno : rc;
}

bool mlink_buffered(const struct mlink *t)
{
	return t->ssl && (t->buffered || SSL_pending(t->ssl) > 0);
}

int mlink_wait(struct mlink *t, int also, int wait_ms)
{
	struct pollfd p[2] = { { .fd = t->fd, .events = POLLIN }, { .fd = also, .events = POLLIN } };

	if (t->ssl && (t->buffered || SSL_pending(t->ssl) > 0))
		return 1; /* records OpenSSL read ahead: the socket no longer shows them */
	if (poll(p, also >= 0 ? 2 : 1, wait_ms) <= 0 || (also >= 0 && p[1].revents))
		return 0;
	return 1;
}

/* ------------------------------------------------------------------ */
/* TLS errors                                                          */

/* What would fix a failure OpenSSL gives as `reason`. */
static const char *hint(const struct mlink *t, int reason)
{
	switch (reason) {
	case SSL_R_WRONG_VERSION_NUMBER:
	case SSL_R_PACKET_LENGTH_TOO_LONG:
	case SSL_R_HTTP_REQUEST:
		return "the peer does not speak TLS here: is its tls = off?";
	case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
	case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
	case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
	case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
	case SSL_R_TLSV1_ALERT_ACCESS_DENIED:
		return "the peer refused this host's certificate: its log names the reason; check its "
		       "ca and allow against this host's cert";
	case SSL_R_BINDER_DOES_NOT_VERIFY:
		return "the peer's pre-shared key differs from this host's: give both the same "
		       "psk_file";
	case SSL_R_TLSV1_ALERT_DECRYPT_ERROR:
	case SSL_R_SSLV3_ALERT_ILLEGAL_PARAMETER: /* the alert a wrong binder draws */
		return t->x && t->x->psk ? "the peer's pre-shared key differs from this host's: give "
					   "both the same psk_file" : NULL;
	case SSL_R_NO_SHARED_CIPHER:
	case SSL_R_NO_SUITABLE_SIGNATURE_ALGORITHM:
	case SSL_R_TLSV1_ALERT_INSUFFICIENT_SECURITY:
		return "the two sides' credentials do not fit (a pre-shared key against certificates, "
		       "or a PSK identity this side does not know): give both the same kind";
	case SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE:
		return "the peer refused the handshake: its log names the reason (certificates "
		       "against a pre-shared key, or a PSK identity it does not know?)";
	case SSL_R_UNEXPECTED_EOF_WHILE_READING:
		return "the peer closed the connection: its log says why (tls = off there, or it "
		       "refused this host)";
	default:
		return NULL;
	}
}

/* Why SSL call `ret` failed, into t->why ("TLS handshake: <OpenSSL's
 * reason>: <what a callback refused>; <hint>"), as -errno. */
static int tls_failed(struct mlink *t, int ret, const char *during)
{
	int e = SSL_get_error(t->ssl, ret), err = errno;
	unsigned long code = ERR_peek_last_error();
	long verify = SSL_get_verify_result(t->ssl);
	char reason[256] = "";
	const char *fix = code ? hint(t, ERR_GET_REASON(code)) : NULL;
	size_t used;

	t->broken = true;
	if (e == SSL_ERROR_ZERO_RETURN)
		snprintf(reason, sizeof reason, "the peer closed the TLS connection");
	else if (code && ERR_reason_error_string(code))
		snprintf(reason, sizeof reason, "%s", ERR_reason_error_string(code));
	else if (code)
		ERR_error_string_n(code, reason, sizeof reason);
	else if (e == SSL_ERROR_SYSCALL && err)
		snprintf(reason, sizeof reason, "%s", strerror(err));
	else
		snprintf(reason, sizeof reason, "the peer closed the connection%s",
			 ret == 0 || e == SSL_ERROR_SYSCALL ? "" : " (no reason given)");
	ERR_clear_error();
	snprintf(t->why, sizeof t->why, "%s: %s", during, reason);
	used = strlen(t->why);
	if (t->note[0])
		snprintf(t->why + used, sizeof t->why - used, ": %s", t->note);
	else if (verify != X509_V_OK)
		snprintf(t->why + used, sizeof t->why - used, ": the peer's certificate: %s",
			 X509_verify_cert_error_string(verify));
	used = strlen(t->why);
	if (fix && !t->note[0])
		snprintf(t->why + used, sizeof t->why - used, "; %s", fix);
	if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && !code && !err))
		return -ECONNRESET;
	return e == SSL_ERROR_SYSCALL && err ? -err : -EPROTO;
}

/* ------------------------------------------------------------------ */
/* The handshake                                                       */

/* A TLS listener's answer to a mirror that speaks plain TCP: an ERROR it
 * can read (it says HELLO in the clear first), then the close. */
static int refuse_plain(struct mlink *t, int64_t until)
{
	uint8_t b[16], out[MP_CTL_MAX];
	struct mp_msg m = { .type = MP_ERROR, .u.error.code = -EPROTO };
	uint64_t magic = 0;
	ssize_t k;
	size_t n;

	if (wait_io(t, POLLIN, (until - mono_ns()) / 1000000) <= 0) {
		snprintf(t->why, sizeof t->why, "it sent nothing within timeout_ms (%lld ms)",
			 (long long)t->timeout_ms);
		return -ETIMEDOUT;
	}
	k = recv(t->fd, b, sizeof b, MSG_PEEK | MSG_DONTWAIT);
	if (k == 0) {
		snprintf(t->why, sizeof t->why, "it closed the connection before the TLS handshake");
		return -ECONNRESET;
	}
	if (k < 0 || mlink_looks_tls(b, (size_t)k))
		return 0; /* TLS (or an error the handshake meets) */
	if (k >= 16)
		memcpy(&magic, b + 8, sizeof magic);
	if (k >= 16 && b[4] == MP_HELLO && b[5] == 0 && le64toh(magic) == MP_MAGIC) {
		snprintf(m.u.error.text, sizeof m.u.error.text, "this source serves mirrors over TLS "
			 "only ([mirror-listen] tls = on): set tls = on with cert, key and ca, or "
			 "psk_file, in the mirror's section");
		n = mp_encode(&m, out, sizeof out);
		if (n && send(t->fd, out, n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
			log_debug("mirror link %s: the ERROR could not be sent", t->peer);
		snprintf(t->why, sizeof t->why, "it speaks plain TCP (its HELLO came in the clear: "
			 "tls = off in its [mirror] section), and this listener has tls = on; it "
			 "was told so");
	} else {
		snprintf(t->why, sizeof t->why, "it does not speak TLS (its first byte is 0x%02x, not "
			 "a TLS handshake record), and this listener has tls = on", b[0]);
	}
	return -EPROTO;
}

/* The peer's certificate's subject, for the log; "" if none (PSK). */
static void peer_subject(struct mlink *t, char *buf, size_t len)
{
	X509 *c = SSL_get0_peer_certificate(t->ssl);

	buf[0] = '\0';
	if (c)
		X509_NAME_oneline(X509_get_subject_name(c), buf, (int)len);
}

int mlink_handshake(struct mlink *t, struct mlink_ctx *x, bool server)
{
	int64_t until = mono_ns() + t->timeout_ms * 1000000;
	int rc, flags;

	t->x = x;
	if (!x)
		return 0;
	flags = fcntl(t->fd, F_GETFL);
	if (flags < 0 || fcntl(t->fd, F_SETFL, flags | O_NONBLOCK) < 0)
		return snprintf(t->why, sizeof t->why, "fcntl: %s", strerror(errno)), -errno;
	if (server && (rc = refuse_plain(t, until)))
		return rc;
	t->stage = malloc(STAGE_MAX);
	t->ssl = t->stage ? mlink_tls_new(x, t) : NULL;
	if (!t->ssl || !SSL_set_fd(t->ssl, t->fd)) {
		snprintf(t->why, sizeof t->why, "out of memory for TLS");
		return -ENOMEM;
	}
	SSL_set_mode(t->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE);
	if (server)
		SSL_set_accept_state(t->ssl);
	else
		SSL_set_connect_state(t->ssl);
	for (;;) { /* each turn moves the handshake on, or waits; bounded by `until` */
		int r, e;

		ERR_clear_error();
		r = SSL_do_handshake(t->ssl);
		if (r == 1)
			break;
		e = SSL_get_error(t->ssl, r);
		if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
			return tls_failed(t, r, "TLS handshake");
		rc = wait_io(t, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT,
			     (until - mono_ns()) / 1000000);
		if (rc < 0)
			return snprintf(t->why, sizeof t->why, "TLS handshake: %s", strerror(-rc)), rc;
		if (rc == 0 && mono_ns() >= until) {
			t->broken = true;
			snprintf(t->why, sizeof t->why, "no TLS handshake within timeout_ms (%lld ms): "
				 "the peer sent nothing, or stopped midway", (long long)t->timeout_ms);
			return -ETIMEDOUT;
		}
	}
	t->ktls_tx = BIO_get_ktls_send(SSL_get_wbio(t->ssl));
	t->ktls_rx = BIO_get_ktls_recv(SSL_get_rbio(t->ssl));
	t->buffered = true; /* the peer's first message may have come with its Finished */
	return 0;
}

void mlink_peer_name(const struct mlink *t, char *buf, size_t len)
{
	buf[0] = '\0';
	if (t->ssl)
		peer_subject((struct mlink *)t, buf, len);
	/* a status field: no tab or newline (X509_NAME_oneline escapes them) */
	for (char *c = buf; *c; c++)
		if (*c == '\t' || *c == '\n')
			*c = ' ';
}

void mlink_describe(const struct mlink *t, char *buf, size_t len)
{
	char subject[200];

	if (!t->ssl) {
		snprintf(buf, len, "plain TCP");
		return;
	}
	peer_subject((struct mlink *)t, subject, sizeof subject);
	snprintf(buf, len, "%s %s%s%s, %s", SSL_get_version(t->ssl), SSL_get_cipher_name(t->ssl),
		 subject[0] ? ", peer " : t->x->psk ? ", pre-shared key " : "",
		 subject[0] ? subject : t->x->psk ? t->x->identity : "",
		 t->ktls_tx || t->ktls_rx ? mlink_mode(t) : "user-space TLS (no kTLS)");
}

/* ------------------------------------------------------------------ */
/* Sending                                                             */

/* Send all of iov in plain TCP (blocking; SO_SNDTIMEO bounds each wait). */
static int plain_send(struct mlink *t, struct iovec *iov, int n, int flags)
{
	while (n > 0) {
		struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)n };
		ssize_t k = sendmsg(t->fd, &mh, flags | MSG_NOSIGNAL);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			snprintf(t->why, sizeof t->why, "the peer has not read for timeout_ms");
			return -ETIMEDOUT;
		}
		if (k < 0) {
			snprintf(t->why, sizeof t->why, "%s", strerror(errno));
			return -errno;
		}
		while (n > 0 && (size_t)k >= iov->iov_len) {
			k -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + k;
			iov->iov_len -= (size_t)k;
		}
	}
	return 0;
}

/* SSL_write all of buf (in records of up to 16 KiB): 0, -ETIMEDOUT when
 * nothing moved for timeout_ms, or -errno. */
static int tls_write(struct mlink *t, const uint8_t *buf, size_t len)
{
	int64_t stalled = mono_ns();

	while (len > 0) {
		size_t w = 0;
		int r, e, rc;

		ERR_clear_error();
		r = SSL_write_ex(t->ssl, buf, len, &w);
		if (r == 1) {
			buf += w;
			len -= w;
			stalled = mono_ns();
			continue;
		}
		e = SSL_get_error(t->ssl, r);
		if (e != SSL_ERROR_WANT_WRITE && e != SSL_ERROR_WANT_READ)
			return tls_failed(t, r, "TLS send");
		rc = wait_io(t, e == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN,
			     t->timeout_ms - (mono_ns() - stalled) / 1000000);
		if (rc < 0)
			return rc;
		if (mono_ns() - stalled >= t->timeout_ms * 1000000) {
			snprintf(t->why, sizeof t->why, "the peer has not read for timeout_ms");
			return -ETIMEDOUT;
		}
	}
	return 0;
}

static int flush_stage(struct mlink *t)
{
	int rc = t->staged ? tls_write(t, t->stage, t->staged) : 0;

	t->staged = 0;
	return rc;
}

/* The iovec through TLS: adjoining pieces as one span from where they
 * lie, small ones gathered.  With `more`, what is gathered waits for the
 * next send (the trailer after a batch). */
static int tls_send(struct mlink *t, const struct iovec *iov, int n, bool more)
{
	int rc = 0;

	for (int i = 0; i < n && rc == 0;) {
		const uint8_t *base = iov[i].iov_base;
		size_t len = iov[i].iov_len;

		for (i++; i < n && (const uint8_t *)iov[i].iov_base == base + len; i++)
			len += iov[i].iov_len;
		if (len >= SMALL_PIECE) {
			rc = flush_stage(t);
			if (rc == 0)
				rc = tls_write(t, base, len);
			continue;
		}
		if (t->staged + len > STAGE_MAX)
			rc = flush_stage(t);
		if (rc == 0) {
			memcpy(t->stage + t->staged, base, len);
			t->staged += len;
		}
	}
	return rc || more ? rc : flush_stage(t);
}

int mlink_send(struct mlink *t, struct iovec *iov, int n, bool more)
{
	if (t->ssl)
		return tls_send(t, iov, n, more);
	return plain_send(t, iov, n, more ? MSG_MORE : 0);
}

/* ------------------------------------------------------------------ */
/* Receiving                                                           */

static ssize_t tls_recv(struct mlink *t, uint8_t *buf, size_t len)
{
	size_t got = 0;

	t->buffered = true; /* unless it ends wanting the socket (below) */
	while (got < len) { /* each turn reads at least a byte, or stops */
		size_t k = 0;
		int r, e;

		ERR_clear_error();
		r = SSL_read_ex(t->ssl, buf + got, len - got, &k);
		if (r == 1) {
			got += k;
			continue;
		}
		e = SSL_get_error(t->ssl, r);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
			t->buffered = false; /* every whole record read ahead is read */
			break;
		}
		if (got)
			break; /* the next call meets the error again */
		r = tls_failed(t, r, "TLS");
		return r == -ECONNRESET ? 0 : r;
	}
	return got ? (ssize_t)got : -EAGAIN;
}

ssize_t mlink_recv(struct mlink *t, void *buf, size_t len)
{
	ssize_t k;

	if (t->ssl)
		return tls_recv(t, buf, len);
	k = recv(t->fd, buf, len, MSG_DONTWAIT);
	if (k >= 0) {
		if (k == 0)
			snprintf(t->why, sizeof t->why, "the peer closed the connection");
		return k;
	}
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return -EAGAIN;
	snprintf(t->why, sizeof t->why, "%s", strerror(errno));
	return -errno;
}

void mlink_close(struct mlink *t)
{
	if (!t)
		return;
	if (t->ssl) {
		if (!t->broken)
			SSL_shutdown(t->ssl); /* close_notify, if the socket takes it now */
		SSL_free(t->ssl);
		ERR_clear_error();
	}
	close(t->fd);
	free(t->stage);
	mlink_ctx_put(t->x); /* after SSL_free: its callbacks reach t->x */
	free(t);
}
