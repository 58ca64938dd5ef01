/*
 * ctlsock.c - the control socket's file (docs/protocol.md §1): a stale
 * one is removed only if nothing listens there, a new one is bound, and
 * it is given the root's group and a mode that follows the root's; at
 * stop it is unlinked only if it is still the one we bound.
 *
 * Or it comes from systemd (socket activation: shmbusd.socket listens at
 * the path and starts the daemon on the first connection): the listening
 * socket passed with LISTEN_FDS is used as it is; systemd owns its file,
 * its owner and its mode (SocketGroup=, SocketMode=), and removes it.
 *
 * Whoever may write the socket's directory (the root's group, for the
 * default <root>/control) could put a link to another file in its place
 * between bind() and chmod: owner and mode are set through an O_PATH
 * descriptor of the file, checked to be our socket, never through the
 * path (docs/operations.md, "Links planted in a root").
 */
#include "shmbusd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../util/ctlproto.h"

#include <systemd/sd-daemon.h>

/* Remove a socket nobody listens on; 0, or -errno (logged) if the path
 * is in use or is not a socket. */
static int clear_stale(const char *path)
{
	_cleanup_close_ int fd = -1, dirfd = -1;
	struct sockaddr_un sa;
	struct stat st;
	int rc;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode)) {
		log_err("control socket %s: the path exists and is not a socket; remove it, or set "
			"control_socket to another path", path);
		return -EEXIST;
	}
	rc = ctl_sockaddr(path, &sa, &dirfd);
	fd = rc ? -1 : socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return rc ? rc : -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0 || errno != ECONNREFUSED) {
		log_err("control socket %s: another process listens there; stop it, or set "
			"control_socket to another path", path);
		return -EADDRINUSE;
	}
	if (unlink(path) < 0 && errno != ENOENT)
		return -errno;
	log_info("removed the stale control socket %s (nothing listened there)", path);
	return 0;
}

/* The socket file we bound, opened without following a link: whoever may
 * write its directory could have put a link to another file in its place
 * since bind().  -1 if what is there now is not our socket. */
static int open_bound(const char *path, const struct ctlsock *s)
{
	struct stat st;
	int fd = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC);

	if (fd >= 0 && (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode) || st.st_dev != s->dev ||
			st.st_ino != s->ino || st.st_uid != geteuid())) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* The socket is as reachable as the root: the root's group may connect
 * if it may enter the root, others if they may.  Owner and mode are set
 * through a descriptor of the socket file, never through its path. */
static void set_access(struct daemon *d, const char *path, const struct ctlsock *s)
{
	_cleanup_close_ int fd = open_bound(path, s);
	struct stat root;
	mode_t mode = 0600;
	char proc[64];

	if (fd < 0) {
		log_warn("control socket %s: it is no longer the socket shmbusd bound (replaced "
			 "meanwhile?); its group and mode are left as they are", path);
		return;
	}
	if (fstat(d->rootfd, &root) < 0)
		return;
	if (root.st_mode & S_IXGRP)
		mode |= 0060;
	if (root.st_mode & S_IXOTH)
		mode |= 0006;
	if (fchownat(fd, "", (uid_t)-1, root.st_gid, AT_EMPTY_PATH) < 0)
		log_warn("control socket %s: cannot give it the root's group (gid %u): %s; run "
			 "shmbusd as root or as a member of that group", path,
			 (unsigned)root.st_gid, strerror(errno));
	/* a socket file has no fchmod: chmod the descriptor's own inode */
	snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
	if (chmod(proc, mode) < 0)
		log_warn("control socket %s: cannot chmod %04o: %s", path, (unsigned)mode,
			 strerror(errno));
}

int ctlsock_bind(struct daemon *d, const char *path, struct ctlsock *ret)
{
	_cleanup_close_ int fd = -1, dirfd = -1;
	struct sockaddr_un sa;
	struct stat st;
	int rc = ctl_sockaddr(path, &sa, &dirfd);

	if (rc < 0) {
		log_err("control socket %s: %s; set a shorter control_socket", path, strerror(-rc));
		return rc;
	}
	rc = clear_stale(path);
	if (rc < 0)
		return rc;
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		rc = -errno;
		log_err("cannot create the control socket %s: %s; check the directory exists and "
			"is writable, or set control_socket", path, strerror(-rc));
		return rc;
	}
	*ret = (struct ctlsock){ .bound = true };
	if (lstat(path, &st) == 0) {
		ret->dev = st.st_dev;
		ret->ino = st.st_ino;
	}
	set_access(d, path, ret);
	rc = fd;
	fd = -1;
	return rc;
}

int ctlsock_inherit(const char *path)
{
	int n = sd_listen_fds(1); /* unsets LISTEN_FDS: our children get none */

	if (n == 0)
		return -ENOENT;
	if (n < 0) {
		log_err("cannot take the sockets systemd passed (LISTEN_FDS): %s", strerror(-n));
		return n;
	}
	for (int fd = SD_LISTEN_FDS_START; fd < SD_LISTEN_FDS_START + n; fd++) {
		int fl = fcntl(fd, F_GETFL);

		if (sd_is_socket_unix(fd, SOCK_SEQPACKET, 1, path, 0) <= 0)
			continue;
		if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
		    fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
			log_err("control socket %s (from systemd): cannot make it non-blocking: %s",
				path, strerror(errno));
			return -errno;
		}
		return fd;
	}
	log_err("systemd passed %d socket%s, none a SOCK_SEQPACKET socket listening on %s "
		"(control_socket); set ListenSequentialPacket=%s in shmbusd.socket, or "
		"control_socket to the path it listens on", n, n == 1 ? "" : "s", path, path);
	return -EINVAL;
}

void ctlsock_unlink(const char *path, const struct ctlsock *s)
{
	struct stat st;

	if (s->bound && lstat(path, &st) == 0 && st.st_dev == s->dev && st.st_ino == s->ino)
		unlink(path);
}
