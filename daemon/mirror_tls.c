/*
 * mirror_tls.c - the TLS side of the mirror link (mirror_link.h,
 * docs/protocol.md §M7): contexts built from a section's keys, the checks
 * of those keys for --check-config, and the callbacks that decide who may
 * connect.
 *
 * Both sides speak TLS 1.3 only (both are shmbusd: no older peer to
 * serve), without session tickets (a connection lasts; resumption buys
 * nothing and would be a second way in).  Two ways to authenticate:
 *
 *   certificates  each side shows its certificate (cert, key), signed by
 *                 a CA the other trusts (ca); the source checks the
 *                 mirror's names against `allow` (none: any the CA
 *                 signed), the mirror the source's against `allow` or,
 *                 without it, the host part of `source`.  A name is the
 *                 subject's CN or a DNS (or IP) subjectAltName.
 *   psk_file      an external pre-shared key (RFC 8446 §2.2) for closed
 *                 networks: "IDENTITY:HEXKEY" in a file of mode 0600.
 *
 * kTLS: SSL_OP_ENABLE_KTLS asks OpenSSL to hand the keys to the kernel
 * after the handshake; mirror_link.c asks the BIOs whether it did.
 *
 * A refusal leaves its reason in the link's note (the certificate's
 * names, OpenSSL's verify result, the identity offered), which
 * mirror_link.c puts into the message it logs.
 */
#include "mirror_tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "log.h"

#define PSK_FILE_MAX 4096
#define CA_CERTS_MAX 1000   /* certificates read from one ca file */
#define READ_BUFFER  (64 * 1024) /* OpenSSL's read-ahead buffer, per connection */

/* OpenSSL's reason for the last failure on this thread, and the queue cleared. */
static const char *ossl_reason(char *buf, size_t len)
{
	unsigned long e = ERR_peek_last_error();

	if (!e)
		snprintf(buf, len, "no reason given");
	else
		ERR_error_string_n(e, buf, len);
	ERR_clear_error();
	return buf;
}

/* ------------------------------------------------------------------ */
/* allow                                                               */

/* Split v at commas into trimmed names; the count, or -1 if one is empty,
 * too long, not printable, or there are too many. */
static int split_allow(const char *v, char names[][MLINK_NAME_MAX + 1], int max)
{
	int n = 0;

	while (*v) {
		const char *end = strchr(v, ','), *a = v, *b;

		if (!end)
			end = v + strlen(v);
		b = end;
		while (a < b && (*a == ' ' || *a == '\t'))
			a++;
		while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
			b--;
		if (b == a || b - a > MLINK_NAME_MAX || n >= max)
			return -1;
		for (const char *p = a; p < b; p++)
			if (*p < 0x20 || *p > 0x7e)
				return -1;
		if (names) {
			memcpy(names[n], a, (size_t)(b - a));
			names[n][b - a] = '\0';
		}
		n++;
		v = *end ? end + 1 : end;
	}
	return n;
}

bool mlink_allow_valid(const char *v)
{
	return split_allow(v, NULL, MLINK_ALLOW_MAX) > 0;
}

/* ------------------------------------------------------------------ */
/* Certificates' names                                                 */

/* s with anything unprintable as '?' (names come from the peer). */
static void printable(char *dst, size_t len, const unsigned char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n && i + 1 < len; i++)
		dst[i] = s[i] >= 0x20 && s[i] <= 0x7e ? (char)s[i] : '?';
	if (len)
		dst[i] = '\0';
}

static void append(char *buf, size_t len, const char *fmt, const char *s)
{
	size_t used = strlen(buf);

	if (used < len)
		snprintf(buf + used, len - used, fmt, s);
}

/* "CN=a, DNS:b, IP:10.0.0.2": the names a certificate carries. */
static void cert_names(X509 *c, char *buf, size_t len)
{
	X509_NAME *subj = X509_get_subject_name(c);
	GENERAL_NAMES *sans = X509_get_ext_d2i(c, NID_subject_alt_name, NULL, NULL);
	char one[MLINK_NAME_MAX + 1];

	buf[0] = '\0';
	for (int i = -1; subj && (i = X509_NAME_get_index_by_NID(subj, NID_commonName, i)) >= 0;) {
		ASN1_STRING *d = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, i));

		printable(one, sizeof one, ASN1_STRING_get0_data(d), (size_t)ASN1_STRING_length(d));
		append(buf, len, buf[0] ? ", CN=%s" : "CN=%s", one);
	}
	for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans) && i < 64; i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
		const unsigned char *p;
		int n;

		if (g->type == GEN_DNS) {
			p = ASN1_STRING_get0_data(g->d.dNSName);
			printable(one, sizeof one, p, (size_t)ASN1_STRING_length(g->d.dNSName));
			append(buf, len, buf[0] ? ", DNS:%s" : "DNS:%s", one);
		} else if (g->type == GEN_IPADD) {
			p = ASN1_STRING_get0_data(g->d.iPAddress);
			n = ASN1_STRING_length(g->d.iPAddress);
			if ((n == 4 || n == 16) && inet_ntop(n == 4 ? AF_INET : AF_INET6, p, one,
							     sizeof one))
				append(buf, len, buf[0] ? ", IP:%s" : "IP:%s", one);
		}
	}
	GENERAL_NAMES_free(sans);
	if (!buf[0])
		snprintf(buf, len, "no CN and no subjectAltName");
}

/* Is `name` one of the certificate's subject CNs (case-insensitive)? */
static bool cn_is(X509 *c, const char *name)
{
	X509_NAME *subj = X509_get_subject_name(c);

	for (int i = -1; subj && (i = X509_NAME_get_index_by_NID(subj, NID_commonName, i)) >= 0;) {
		ASN1_STRING *d = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, i));
		size_t n = (size_t)ASN1_STRING_length(d);

		if (n == strlen(name) && !strncasecmp((const char *)ASN1_STRING_get0_data(d), name, n))
			return true;
	}
	return false;
}

/* A DNS subjectAltName (wildcards as RFC 6125), an IP subjectAltName,
 * or the subject's CN equal to one of the names allowed. */
static bool name_allowed(const struct mlink_ctx *x, X509 *c)
{
	for (int i = 0; i < x->nallow; i++) {
		const char *a = x->allow[i];

		if (X509_check_host(c, a, strlen(a), 0, NULL) == 1 ||
		    X509_check_ip_asc(c, a, 0) == 1 || cn_is(c, a))
			return true;
	}
	return false;
}

/* ------------------------------------------------------------------ */
/* Callbacks during a handshake                                        */

static struct mlink *link_of(SSL *ssl)
{
	return ssl ? SSL_get_app_data(ssl) : NULL;
}

/*
 * OpenSSL's chain check, then ours of the peer's names (depth 0).  A
 * refusal notes the certificate and the reason; the handshake then fails
 * with an alert the peer logs too.
 */
static int verify_cb(int ok, X509_STORE_CTX *sc)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(sc, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct mlink *t = link_of(ssl);
	X509 *c = X509_STORE_CTX_get_current_cert(sc);
	char names[200] = "";
	size_t used;

	if (!t)
		return ok;
	if (c)
		cert_names(c, names, sizeof names);
	if (!ok) {
		if (!t->note[0])
			snprintf(t->note, sizeof t->note, "its certificate (%s): %s", names,
				 X509_verify_cert_error_string(X509_STORE_CTX_get_error(sc)));
		return 0;
	}
	if (X509_STORE_CTX_get_error_depth(sc) != 0 || t->x->nallow == 0 || name_allowed(t->x, c))
		return 1;
	snprintf(t->note, sizeof t->note, "its certificate names %s, and none is allowed here (%s: ",
		 names, t->x->allow_is_source ? "the host of source, as allow is not set" : "allow");
	for (int i = 0; i < t->x->nallow; i++) {
		used = strlen(t->note);
		snprintf(t->note + used, sizeof t->note - used, "%s%s", i ? ", " : "", t->x->allow[i]);
	}
	used = strlen(t->note);
	snprintf(t->note + used, sizeof t->note - used, ")");
	X509_STORE_CTX_set_error(sc, X509_V_ERR_CERT_REJECTED); /* the alert: bad_certificate */
	return 0;
}

/* The session an external PSK stands for: TLS 1.3, TLS_AES_128_GCM_SHA256
 * (its hash, SHA-256, is the PSK's). */
static SSL_SESSION *psk_session(SSL *ssl, const struct mlink_ctx *x)
{
	static const unsigned char aes128gcm_sha256[] = { 0x13, 0x01 };
	const SSL_CIPHER *cipher = SSL_CIPHER_find(ssl, aes128gcm_sha256);
	SSL_SESSION *s = cipher ? SSL_SESSION_new() : NULL;

	if (s && (!SSL_SESSION_set1_master_key(s, x->key, x->keylen) ||
		  !SSL_SESSION_set_cipher(s, cipher) ||
		  !SSL_SESSION_set_protocol_version(s, TLS1_3_VERSION))) {
		SSL_SESSION_free(s);
		s = NULL;
	}
	return s;
}

/* The mirror offers its PSK (called again after a HelloRetryRequest with
 * the hash chosen: a PSK of another hash is not offered). */
static int psk_use_cb(SSL *ssl, const EVP_MD *md, const unsigned char **id, size_t *idlen,
		      SSL_SESSION **sess)
{
	struct mlink *t = link_of(ssl);

	*sess = NULL;
	*id = NULL;
	*idlen = 0;
	if (!t || (md && EVP_MD_get_type(md) != NID_sha256))
		return 1;
	*sess = psk_session(ssl, t->x);
	if (!*sess)
		return 0;
	*id = (const unsigned char *)t->x->identity;
	*idlen = strlen(t->x->identity);
	return 1;
}

/* The source looks up the identity the mirror offers: only its own. */
static int psk_find_cb(SSL *ssl, const unsigned char *id, size_t idlen, SSL_SESSION **sess)
{
	struct mlink *t = link_of(ssl);
	char shown[70];

	*sess = NULL;
	if (!t)
		return 0;
	if (idlen != strlen(t->x->identity) || memcmp(id, t->x->identity, idlen)) {
		printable(shown, sizeof shown, id, idlen);
		snprintf(t->note, sizeof t->note, "it offered the PSK identity \"%s\", not this "
			 "host's \"%s\" (psk_file)", shown, t->x->identity);
		return 1; /* no PSK: the handshake fails (this side has no certificate) */
	}
	*sess = psk_session(ssl, t->x);
	return *sess ? 1 : 0;
}

SSL *mlink_tls_new(struct mlink_ctx *x, struct mlink *t)
{
	SSL *ssl = SSL_new(x->ssl);

	if (!ssl)
		return NULL;
	SSL_set_app_data(ssl, t);
	if (x->sni[0])
		SSL_set_tlsext_host_name(ssl, x->sni);
	return ssl;
}

/* ------------------------------------------------------------------ */
/* Files                                                               */

static int fail(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static int hexval(int c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 :
	       c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* "IDENTITY:HEXKEY" on its one line (blank lines and # comments aside). */
static int psk_parse(char *text, const char *what, struct mlink_ctx *x, char *err, size_t len)
{
	char *save = NULL, *line = NULL, *colon = NULL;
	int lines = 0;
	size_t hex;

	for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		l[strcspn(l, "\r")] = '\0';
		if (!l[strspn(l, " \t")] || l[strspn(l, " \t")] == '#')
			continue;
		line = l;
		lines++;
	}
	if (lines != 1)
		return fail(err, len, "%s holds %d key lines, not one; write one line IDENTITY:HEXKEY "
			    "(e.g. mirrors:<64 hex digits from `openssl rand -hex 32`)", what, lines);
	colon = strchr(line, ':');
	if (!colon || colon == line || colon - line > MLINK_ID_MAX)
		return fail(err, len, "%s: the line is not IDENTITY:HEXKEY with an identity of 1 to "
			    "128 characters; write e.g. mirrors:<`openssl rand -hex 32`>", what);
	for (char *p = line; p < colon; p++)
		if (*p < 0x21 || *p > 0x7e)
			return fail(err, len, "%s: the identity holds a space or an unprintable "
				    "character; use letters, digits and punctuation", what);
	hex = strlen(colon + 1);
	if (hex % 2 || hex < 32 || hex > 2 * MLINK_KEY_MAX)
		return fail(err, len, "%s: the key has %zu hex digits; give 32 to 128 (16 to 64 "
			    "bytes), e.g. from `openssl rand -hex 32`", what, hex);
	for (size_t i = 0; i < hex / 2; i++) {
		int hi = hexval(colon[1 + 2 * i]), lo = hexval(colon[2 + 2 * i]);

		if (hi < 0 || lo < 0)
			return fail(err, len, "%s: the key is not hex digits; write it as `openssl "
				    "rand -hex 32` prints it", what);
		x->key[i] = (uint8_t)(hi << 4 | lo);
	}
	x->keylen = hex / 2;
	memcpy(x->identity, line, (size_t)(colon - line));
	x->identity[colon - line] = '\0';
	return 0;
}

/* Read a PSK file: a regular file no one but its owner may read. */
static int psk_read(const char *section, const char *path, struct mlink_ctx *x, char *err,
		    size_t len)
{
	char what[640], text[PSK_FILE_MAX + 1];
	struct stat st;
	ssize_t n;
	int fd, rc;

	snprintf(what, sizeof what, "%s psk_file %s", section, path);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return fail(err, len, "%s: cannot be read: %s; give a file IDENTITY:HEXKEY of mode "
			    "0600", what, strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return fail(err, len, "%s: is not a regular file; give a file IDENTITY:HEXKEY", what);
	}
	if (st.st_mode & 077) {
		close(fd);
		return fail(err, len, "%s: is mode %04o; a pre-shared key must be readable by its "
			    "owner only: chmod 600 %s", what, (unsigned)(st.st_mode & 07777), path);
	}
	n = read(fd, text, PSK_FILE_MAX + 1);
	close(fd);
	if (n < 0 || n > PSK_FILE_MAX)
		return fail(err, len, "%s: %s; it holds one line IDENTITY:HEXKEY", what,
			    n < 0 ? strerror(errno) : "is larger than 4 KiB");
	text[n] = '\0';
	rc = psk_parse(text, what, x, err, len);
	OPENSSL_cleanse(text, sizeof text);
	return rc;
}

static int no_passphrase(char *buf, int size, int rw, void *u)
{
	(void)buf, (void)size, (void)rw, (void)u;
	return 0; /* a daemon cannot ask for one */
}

/* A PEM certificate from path, in date: 0 and *ret, or -EINVAL. */
static int read_cert(const char *section, const char *path, X509 **ret, char *err, size_t len)
{
	BIO *b = BIO_new_file(path, "r");
	X509 *c = b ? PEM_read_bio_X509(b, NULL, no_passphrase, NULL) : NULL;
	char why[256];

	if (!b)
		return fail(err, len, "%s cert %s: cannot be read: %s; give this host's "
			    "certificate (PEM)", section, path, strerror(errno));
	BIO_free(b);
	if (!c)
		return fail(err, len, "%s cert %s: not a PEM certificate (%s); give this host's "
			    "certificate, -----BEGIN CERTIFICATE-----", section, path,
			    ossl_reason(why, sizeof why));
	if (X509_cmp_current_time(X509_get0_notAfter(c)) <= 0 ||
	    X509_cmp_current_time(X509_get0_notBefore(c)) >= 0) {
		X509_free(c);
		return fail(err, len, "%s cert %s: is not valid now (expired, or not yet valid: see "
			    "`openssl x509 -noout -dates -in %s`); renew it", section, path, path);
	}
	*ret = c;
	return 0;
}

/* The private key of cert, unencrypted, from path. */
static int check_key(const char *section, const char *path, const char *cert_path, X509 *cert,
		     char *err, size_t len)
{
	BIO *b = BIO_new_file(path, "r");
	EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, no_passphrase, NULL) : NULL;
	char why[256];
	int rc = 0;

	if (!b)
		return fail(err, len, "%s key %s: cannot be read: %s; give the private key of cert "
			    "(PEM)", section, path, strerror(errno));
	BIO_free(b);
	if (!k)
		return fail(err, len, "%s key %s: not an unencrypted PEM private key (%s); give the "
			    "key of cert without a passphrase (`openssl pkey -in KEY -out %s`), "
			    "protected by its mode", section, path, ossl_reason(why, sizeof why),
			    path);
	if (X509_check_private_key(cert, k) != 1)
		rc = fail(err, len, "%s key %s: does not match cert %s (another key pair); give "
			  "the key the certificate was made for", section, path, cert_path);
	ERR_clear_error();
	EVP_PKEY_free(k);
	return rc;
}

/* At least one PEM certificate in path. */
static int check_ca(const char *section, const char *path, char *err, size_t len)
{
	BIO *b = BIO_new_file(path, "r");
	int n = 0;
	X509 *c;

	if (!b)
		return fail(err, len, "%s ca %s: cannot be read: %s; give the CA certificate(s) that "
			    "sign the peers' certificates (PEM)", section, path, strerror(errno));
	while (n < CA_CERTS_MAX && (c = PEM_read_bio_X509(b, NULL, no_passphrase, NULL))) {
		X509_free(c);
		n++;
	}
	BIO_free(b);
	ERR_clear_error();
	if (n == 0)
		return fail(err, len, "%s ca %s: holds no PEM certificate; give the CA certificate(s) "
			    "that sign the peers' certificates", section, path);
	return 0;
}

/* Which of the keys are given, for a message: "cert, allow". */
static void given(const struct config_tls *c, char *buf, size_t len)
{
	const char *names[] = { "cert", "key", "ca", "allow", "psk_file" };
	const char *vals[] = { c->cert, c->key, c->ca, c->allow, c->psk_file };

	buf[0] = '\0';
	for (int i = 0; i < 5; i++)
		if (vals[i][0])
			append(buf, len, buf[0] ? ", %s" : "%s", names[i]);
}

int mlink_config_check(const struct config_tls *c, bool on, const char *section, bool server,
		       char *err, size_t len)
{
	struct mlink_ctx *x;
	char keys[64];
	X509 *cert = NULL;
	int rc;

	(void)server;
	given(c, keys, sizeof keys);
	if (!on)
		return keys[0] ? fail(err, len, "%s has tls = off but %s: write tls = on to use "
				      "them, or remove them", section, keys) : 0;
	if (c->psk_file[0]) {
		struct config_tls certs = *c;

		certs.psk_file[0] = '\0';
		given(&certs, keys, sizeof keys);
		if (keys[0])
			return fail(err, len, "%s has psk_file and %s: a link uses certificates or a "
				    "pre-shared key; keep one", section, keys);
		x = calloc(1, sizeof *x);
		if (!x)
			return fail(err, len, "out of memory");
		rc = psk_read(section, c->psk_file, x, err, len);
		OPENSSL_cleanse(x, sizeof *x);
		free(x);
		return rc;
	}
	if (!c->cert[0] || !c->key[0] || !c->ca[0])
		return fail(err, len, "%s has tls = on but no %s: give cert, key and ca (PEM files), "
			    "or psk_file", section, !c->cert[0] ? "cert (this host's certificate)" :
			    !c->key[0] ? "key (the certificate's private key)" :
			    "ca (the CA that signs the peers' certificates)");
	rc = read_cert(section, c->cert, &cert, err, len);
	if (rc == 0)
		rc = check_key(section, c->key, c->cert, cert, err, len);
	if (rc == 0)
		rc = check_ca(section, c->ca, err, len);
	X509_free(cert);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Contexts                                                            */

const char *mlink_ktls_offered(void)
{
#ifdef OPENSSL_NO_KTLS
	return "not used: this OpenSSL is built without kTLS";
#else
	char ulp[256] = "";
	FILE *f = fopen("/proc/sys/net/ipv4/tcp_available_ulp", "r");
	bool tls = false;

	if (f) {
		if (fgets(ulp, sizeof ulp, f))
			for (char *save = NULL, *s = strtok_r(ulp, " \n", &save); s;
			     s = strtok_r(NULL, " \n", &save))
				tls |= !strcmp(s, "tls");
		fclose(f);
	}
	return tls ? "offered (the kernel's tls module is loaded)"
		   : "not offered by this kernel (no tls in /proc/sys/net/ipv4/tcp_available_ulp; "
		     "`modprobe tls` loads it where the module exists): records are encrypted "
		     "in user space";
#endif
}

static int ctx_fail(struct mlink_ctx *x, const char *what)
{
	char why[256];

	log_err("%s: cannot set up TLS: %s: %s", x->section, what, ossl_reason(why, sizeof why));
	return -EINVAL;
}

/* A certificate's notAfter in seconds since the epoch; 0 if unreadable. */
static time_t not_after(X509 *c)
{
	struct tm tm;

	if (!c || ASN1_TIME_to_tm(X509_get0_notAfter(c), &tm) != 1)
		return 0;
	return timegm(&tm);
}

static bool is_address(const char *host)
{
	struct in6_addr a;

	return inet_pton(AF_INET, host, &a) == 1 || inet_pton(AF_INET6, host, &a) == 1;
}

static int ctx_certs(struct mlink_ctx *x, const struct config_tls *c, const char *source_host)
{
	const char *allow = c->allow[0] ? c->allow : x->server ? "" : source_host;
	size_t used;

	if (SSL_CTX_use_certificate_chain_file(x->ssl, c->cert) != 1)
		return ctx_fail(x, c->cert);
	if (SSL_CTX_use_PrivateKey_file(x->ssl, c->key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(x->ssl) != 1)
		return ctx_fail(x, c->key);
	x->not_after = not_after(SSL_CTX_get0_certificate(x->ssl));
	snprintf(x->cert, sizeof x->cert, "%s", c->cert);
	if (SSL_CTX_load_verify_locations(x->ssl, c->ca, NULL) != 1)
		return ctx_fail(x, c->ca);
	if (x->server) {
		STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(c->ca);

		if (names)
			SSL_CTX_set_client_CA_list(x->ssl, names); /* tells mirrors whom to show */
	}
	SSL_CTX_set_verify(x->ssl, SSL_VERIFY_PEER | (x->server ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT :
						      0), verify_cb);
	x->nallow = allow[0] ? split_allow(allow, x->allow, MLINK_ALLOW_MAX) : 0;
	if (x->nallow < 0)
		return ctx_fail(x, "allow");
	x->allow_is_source = !x->server && !c->allow[0];
	if (!x->server && !is_address(source_host))
		snprintf(x->sni, sizeof x->sni, "%s", source_host); /* SNI: a name, never an address */
	snprintf(x->desc, sizeof x->desc, "TLS 1.3 with certificates (CA %s; %s", c->ca,
		 x->nallow ? "peers named " : x->server ? "any mirror the CA signed" : "");
	for (int i = 0; i < x->nallow; i++) {
		used = strlen(x->desc);
		snprintf(x->desc + used, sizeof x->desc - used, "%s%s", i ? ", " : "", x->allow[i]);
	}
	used = strlen(x->desc);
	snprintf(x->desc + used, sizeof x->desc - used, ")");
	return 0;
}

int mlink_ctx_new(const struct config_tls *c, bool on, bool server, const char *section,
		  const char *source_host, struct mlink_ctx **ret)
{
	struct mlink_ctx *x;
	char err[512];
	int rc;

	*ret = NULL;
	if (!on)
		return 0;
	x = calloc(1, sizeof *x);
	if (!x)
		return -ENOMEM;
	atomic_init(&x->refs, 1);
	x->server = server;
	x->psk = c->psk_file[0] != '\0';
	snprintf(x->section, sizeof x->section, "%s", section);
	x->ssl = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
	if (!x->ssl) {
		rc = ctx_fail(x, "SSL_CTX_new");
		goto out;
	}
	SSL_CTX_set_min_proto_version(x->ssl, TLS1_3_VERSION);
	SSL_CTX_set_options(x->ssl, SSL_OP_NO_TICKET);
#ifdef SSL_OP_ENABLE_KTLS
	SSL_CTX_set_options(x->ssl, SSL_OP_ENABLE_KTLS);
#endif
	SSL_CTX_set_num_tickets(x->ssl, 0);
	/* read what the socket holds, not a record's header then its body:
	 * half the system calls on the mirror (kTLS reads records itself) */
	SSL_CTX_set_read_ahead(x->ssl, 1);
	SSL_CTX_set_default_read_buffer_len(x->ssl, READ_BUFFER);
	SSL_CTX_set_session_cache_mode(x->ssl, SSL_SESS_CACHE_OFF);
	if (x->psk) {
		rc = psk_read(section, c->psk_file, x, err, sizeof err);
		if (rc) {
			log_err("%s", err);
			goto out;
		}
		SSL_CTX_set_ciphersuites(x->ssl, "TLS_AES_128_GCM_SHA256");
		if (server)
			SSL_CTX_set_psk_find_session_callback(x->ssl, psk_find_cb);
		else
			SSL_CTX_set_psk_use_session_callback(x->ssl, psk_use_cb);
		snprintf(x->desc, sizeof x->desc, "TLS 1.3 with a pre-shared key (identity %s, %s)",
			 x->identity, c->psk_file);
	} else {
		rc = ctx_certs(x, c, source_host);
		if (rc)
			goto out;
	}
	*ret = x;
	return 0;
out:
	mlink_ctx_put(x);
	return rc;
}

const char *mlink_ctx_describe(const struct mlink_ctx *x)
{
	return x ? x->desc : "plain TCP";
}

time_t mlink_ctx_not_after(const struct mlink_ctx *x)
{
	return x ? x->not_after : 0;
}

const char *mlink_ctx_cert(const struct mlink_ctx *x)
{
	return x ? x->cert : "";
}

struct mlink_ctx *mlink_ctx_get(struct mlink_ctx *x)
{
	if (x)
		atomic_fetch_add_explicit(&x->refs, 1, memory_order_relaxed);
	return x;
}

void mlink_ctx_put(struct mlink_ctx *x)
{
	/* acq_rel: the last holder sees every other holder's use before the free */
	if (!x || atomic_fetch_sub_explicit(&x->refs, 1, memory_order_acq_rel) != 1)
		return;
	SSL_CTX_free(x->ssl); /* the SSL_CTX's own count: links' SSLs are freed already */
	OPENSSL_cleanse(x, sizeof *x);
	free(x);
}
