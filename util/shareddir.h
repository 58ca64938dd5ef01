/*
 * shareddir.h - opening and making files in a directory others may write.
 *
 * A bus root, its groups/ and topics/ and each topic's directory are
 * writable by every member of the root's group, and shmbusd may run as
 * root: whatever is at a name there may have been planted, a symbolic
 * link to a root-only file above all (issue #7).  So, under a root:
 *
 *   - a path is opened without following a symbolic link in any of its
 *     components (sdir_open: openat2 RESOLVE_NO_SYMLINKS, else O_NOFOLLOW
 *     on the last one); a link gives -ELOOP;
 *   - a file is made whole before it has a name, then linked in under its
 *     final name (sdir_new, sdir_publish): made unnamed (O_TMPFILE) and
 *     linked with linkat, or, where the filesystem lacks O_TMPFILE, made
 *     under a random name with O_CREAT|O_EXCL|O_NOFOLLOW (which never
 *     opens what is already there) and renamed.  Nothing is opened at a
 *     name anyone could predict, and the mode is set with fchmod on the
 *     descriptor, so it is exact whatever the umask.
 *
 * Every file shm/ and lib/ make in a root goes through sdir_new (the bus
 * file, partitions, group files, the counters file); docs/operations.md
 * ("Planted links") lists the rest of the audit.
 */
#ifndef SHMBUS_SHM_SHAREDDIR_H
#define SHMBUS_SHM_SHAREDDIR_H

#include <stdbool.h>
#include <sys/types.h>

/* A file being made in a directory. */
struct sdir_file {
	int fd;                 /* O_RDWR; stays open after sdir_publish */
	char tmp[32];           /* its temporary name, "" while it has none */
};

/* Open dirfd/path (openat's flags; O_CLOEXEC is added) following no
 * symbolic link.  An fd, or -errno (-ELOOP: a link is in the way); no
 * message is recorded. */
int sdir_open(int dirfd, const char *path, int flags);

/* Make a new file in dirfd with exactly `mode`, without a name yet.
 * 0 or -errno (no message recorded). */
int sdir_new(int dirfd, mode_t mode, struct sdir_file *ret);

/* What sdir_new falls back to where the filesystem lacks O_TMPFILE: the
 * file made under a random name (f->tmp) with O_CREAT|O_EXCL|O_NOFOLLOW.
 * Exported so that tests run that path on any filesystem. */
int sdir_new_named(int dirfd, mode_t mode, struct sdir_file *ret);

/* Give the file its final name: over what is there if `replace`, else
 * -EEXIST when the name is taken.  0 or -errno (no message recorded). */
int sdir_publish(int dirfd, struct sdir_file *f, const char *name, bool replace);

/* Close the file, removing its temporary name if it still has one. */
void sdir_close(int dirfd, struct sdir_file *f);

/* Why an open in a root failed, for a message: strerror, or for -ELOOP
 * "it is a symbolic link, which ...; remove it". */
const char *sdir_why(int err);

#endif
