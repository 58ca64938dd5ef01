/*
 * mirror_id.c - this shmbusd's mirror id (docs/protocol.md §M12).
 *
 * <root>/mirror-id holds 32 lowercase hex digits and a newline: 128 bits
 * from getrandom(2), made the first time a mirroring section starts on
 * the root and never changed after.  Made as every file of a root is
 * (util/shareddir.h): written whole while it has no name, synced, then
 * linked in under its name, so a crash never leaves a half-written id
 * and nothing planted at the name is opened for writing.  Two roots
 * never share an id unless one was copied from the other (a cloned
 * disk): delete the copy's file, and it makes a new one.
 */
#include "mirror_id.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "log.h"
#include "shmbusd.h"
#include "../util/shareddir.h"

#define ID_FILE "mirror-id"
#define ID_TEXT (2 * MP_ID_SIZE + 1) /* hex digits and the newline */

static struct {
	pthread_mutex_t lock;
	bool loaded;
	int rc;
	uint8_t id[MP_ID_SIZE];
} mid = { .lock = PTHREAD_MUTEX_INITIALIZER };

void mirror_id_hex(const uint8_t id[MP_ID_SIZE], char out[2 * MP_ID_SIZE + 1])
{
	static const char digits[] = "0123456789abcdef";

	for (unsigned i = 0; i < MP_ID_SIZE; i++) {
		out[2 * i] = digits[id[i] >> 4];
		out[2 * i + 1] = digits[id[i] & 15];
	}
	out[2 * MP_ID_SIZE] = '\0';
}

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* 32 lowercase hex digits and a newline, not all zero. */
static bool parse(const char *text, size_t len, uint8_t id[MP_ID_SIZE])
{
	uint8_t any = 0;

	if (len != ID_TEXT || text[ID_TEXT - 1] != '\n')
		return false;
	for (unsigned i = 0; i < MP_ID_SIZE; i++) {
		int hi = hexval(text[2 * i]), lo = hexval(text[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return false;
		id[i] = (uint8_t)(hi << 4 | lo);
		any |= id[i];
	}
	return any != 0;
}

/* Read the file: 0, -ENOENT, or -errno (logged). */
static int read_id(struct daemon *d, uint8_t id[MP_ID_SIZE])
{
	char text[ID_TEXT + 2];
	ssize_t k;
	int fd = sdir_open(d->rootfd, ID_FILE, O_RDONLY);

	if (fd == -ENOENT)
		return fd;
	if (fd < 0) {
		log_err("cannot open %s/%s: %s", d->cfg.root, ID_FILE, sdir_why(fd));
		return fd;
	}
	k = read(fd, text, sizeof text);
	close(fd);
	if (k < 0 || !parse(text, (size_t)k, id)) {
		log_err("%s/%s is not a mirror id (32 hex digits and a newline, made by shmbusd): "
			"delete it, and shmbusd makes a new one (the sources then count this host "
			"as a new mirror, the old one's connections as another until they time out)",
			d->cfg.root, ID_FILE);
		return -EBADMSG;
	}
	return 0;
}

/* Make the file: 0, -EEXIST (made meanwhile), or -errno (logged). */
static int make_id(struct daemon *d, uint8_t id[MP_ID_SIZE])
{
	char text[ID_TEXT + 1];
	struct sdir_file f;
	uint8_t any = 0;
	int rc;

	while (!any) {
		if (getrandom(id, MP_ID_SIZE, 0) != (ssize_t)MP_ID_SIZE) {
			log_err("cannot make a mirror id: getrandom: %s", strerror(errno));
			return -EIO;
		}
		for (unsigned i = 0; i < MP_ID_SIZE; i++)
			any |= id[i];
	}
	mirror_id_hex(id, text);
	text[ID_TEXT - 1] = '\n';
	rc = sdir_new(d->rootfd, 0644, &f);
	if (rc == 0) {
		/* whole and on disk before it has a name */
		if (write(f.fd, text, ID_TEXT) != ID_TEXT)
			rc = -EIO;
		else if (fsync(f.fd) < 0)
			rc = -errno;
		if (rc == 0)
			rc = sdir_publish(d->rootfd, &f, ID_FILE, false);
		sdir_close(d->rootfd, &f);
	}
	if (rc < 0 && rc != -EEXIST)
		log_err("cannot make %s/%s (this host's mirror id): %s; make the root writable by "
			"shmbusd's user", d->cfg.root, ID_FILE, strerror(-rc));
	return rc;
}

static int load(struct daemon *d)
{
	char hex[2 * MP_ID_SIZE + 1];
	int rc = read_id(d, mid.id);

	if (rc == -ENOENT) {
		rc = make_id(d, mid.id);
		if (rc == -EEXIST)
			rc = read_id(d, mid.id);
		else if (rc == 0) {
			mirror_id_hex(mid.id, hex);
			log_notice("this host's mirror id is %s (made now, in %s/%s)", hex,
				   d->cfg.root, ID_FILE);
			return 0;
		}
	}
	if (rc == 0) {
		mirror_id_hex(mid.id, hex);
		log_info("this host's mirror id is %s (%s/%s)", hex, d->cfg.root, ID_FILE);
	}
	return rc;
}

int mirror_id_load(struct daemon *d)
{
	int rc;

	pthread_mutex_lock(&mid.lock);
	if (!mid.loaded) {
		mid.rc = load(d);
		mid.loaded = true;
		if (mid.rc)
			memset(mid.id, 0, sizeof mid.id);
	}
	rc = mid.rc;
	pthread_mutex_unlock(&mid.lock);
	return rc;
}

const uint8_t *mirror_id(void)
{
	return mid.id;
}
