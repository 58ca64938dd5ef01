/*
 * shareddir.c - opening and making files in a directory others may write
 * (shareddir.h says why and how).
 */
#include "shareddir.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <linux/openat2.h>

#include "atomics.h"

#define NAME_TRIES 16            /* random names taken before giving up */

static int no_openat2;           /* the kernel (or a seccomp filter) lacks it */

/* openat2, or where it is missing openat with O_NOFOLLOW: an fd or -errno. */
static int open_nofollow(int dirfd, const char *path, int flags)
{
	struct open_how how = {
		.flags = (uint64_t)(flags | O_CLOEXEC | O_NOFOLLOW),
		.resolve = RESOLVE_NO_SYMLINKS,
	};
	int fd;

	if (!load_relaxed(&no_openat2)) {
		fd = (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
		if (fd >= 0)
			return fd;
		if (errno != ENOSYS && errno != EPERM)
			return -errno;
		if (errno == ENOSYS)
			store_relaxed(&no_openat2, 1);
	}
	/* Linux < 5.6: no link at the last component; the others are the
	 * root's own directories, opened by this same function */
	fd = openat(dirfd, path, flags | O_CLOEXEC | O_NOFOLLOW);
	return fd < 0 ? -errno : fd;
}

int sdir_open(int dirfd, const char *path, int flags)
{
	int fd = open_nofollow(dirfd, path, flags);
	struct stat st;

	/* O_DIRECTORY at a link says ENOTDIR: say what is in the way */
	if (fd == -ENOTDIR && fstatat(dirfd, path, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISLNK(st.st_mode))
		fd = -ELOOP;
	return fd;
}

/* ".~new." and 16 hex digits: '~' is in no topic or group name, so
 * listings pass over it, and nobody can guess it. */
static void random_name(char *buf, size_t len)
{
	uint64_t r;

	if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) {
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		r = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid() << 32 ^
		    (uint64_t)ts.tv_sec;
	}
	snprintf(buf, len, ".~new.%016llx", (unsigned long long)r);
}

/* Where O_TMPFILE is not supported: a random name, made exclusively. */
static int new_named(int dirfd, struct sdir_file *f)
{
	for (int i = 0; i < NAME_TRIES; i++) {
		random_name(f->tmp, sizeof f->tmp);
		f->fd = openat(dirfd, f->tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
			       0600);
		if (f->fd >= 0)
			return 0;
		if (errno != EEXIST)
			break;
	}
	f->tmp[0] = '\0';
	return -errno;
}

/* Set the new file's mode, and hand it over (or discard it). */
static int give(int dirfd, struct sdir_file *f, mode_t mode, int rc, struct sdir_file *ret)
{
	if (rc == 0 && fchmod(f->fd, mode) < 0) {
		rc = -errno;
		sdir_close(dirfd, f);
	}
	if (rc == 0)
		*ret = *f;
	return rc;
}

int sdir_new(int dirfd, mode_t mode, struct sdir_file *ret)
{
	struct sdir_file f = { .fd = -1 };
	int rc = 0;

	f.fd = openat(dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	/* EISDIR, EINVAL: a kernel without O_TMPFILE; EOPNOTSUPP: a filesystem */
	if (f.fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL))
		rc = new_named(dirfd, &f);
	else if (f.fd < 0)
		rc = -errno;
	return give(dirfd, &f, mode, rc, ret);
}

int sdir_new_named(int dirfd, mode_t mode, struct sdir_file *ret)
{
	struct sdir_file f = { .fd = -1 };

	return give(dirfd, &f, mode, new_named(dirfd, &f), ret);
}

/* Link the unnamed file f in as `name`: -EEXIST if the name is taken. */
static int link_unnamed(int dirfd, const struct sdir_file *f, const char *name)
{
	char proc[64];

	snprintf(proc, sizeof proc, "/proc/self/fd/%d", f->fd);
	if (linkat(AT_FDCWD, proc, dirfd, name, AT_SYMLINK_FOLLOW) == 0)
		return 0;
	if (errno != ENOENT)
		return -errno;
	/* no /proc: AT_EMPTY_PATH, which needs CAP_DAC_READ_SEARCH */
	return linkat(f->fd, "", dirfd, name, AT_EMPTY_PATH) == 0 ? 0 : -errno;
}

/* Give the unnamed file f a random name (to rename it over another). */
static int name_unnamed(int dirfd, struct sdir_file *f)
{
	int rc = -EEXIST;

	for (int i = 0; i < NAME_TRIES && rc == -EEXIST; i++) {
		random_name(f->tmp, sizeof f->tmp);
		rc = link_unnamed(dirfd, f, f->tmp);
	}
	if (rc)
		f->tmp[0] = '\0';
	return rc;
}

int sdir_publish(int dirfd, struct sdir_file *f, const char *name, bool replace)
{
	int rc;

	if (!f->tmp[0] && !replace)
		return link_unnamed(dirfd, f, name);
	if (!f->tmp[0] && (rc = name_unnamed(dirfd, f)) < 0)
		return rc;
	if (replace)
		rc = renameat(dirfd, f->tmp, dirfd, name);
	else
		rc = renameat2(dirfd, f->tmp, dirfd, name, RENAME_NOREPLACE);
	if (rc < 0 && !replace && errno == EINVAL) {
		/* a filesystem without RENAME_NOREPLACE: link() never replaces */
		if (linkat(dirfd, f->tmp, dirfd, name, 0) < 0)
			return -errno;
		unlinkat(dirfd, f->tmp, 0);
	} else if (rc < 0) {
		return -errno;
	}
	f->tmp[0] = '\0';
	return 0;
}

void sdir_close(int dirfd, struct sdir_file *f)
{
	if (f->tmp[0])
		unlinkat(dirfd, f->tmp, 0);
	f->tmp[0] = '\0';
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
}

const char *sdir_why(int err)
{
	if (err == -ELOOP || err == ELOOP)
		return "it is a symbolic link (or one is in its path), which shmbus never follows "
		       "in a bus root: whoever may write the root could have planted it to reach "
		       "another file; remove it";
	return strerror(err < 0 ? -err : err);
}
