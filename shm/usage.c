/*
 * usage.c - byte-range locks of open file descriptions (F_OFD_SETLK):
 * unlike POSIX record locks they belong to the open file, not to the
 * process, so threads and a library do not step on each other's locks,
 * and they vanish with the last descriptor of the file.
 */
#include "usage.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../util/error.h"
#include "groups.h"
#include "../util/shareddir.h"

static off_t key(uint64_t topic_id, uint32_t partition)
{
	return (off_t)(topic_id << GROUP_PARTITION_BITS | partition);
}

static int lock(int fd, short type, uint64_t topic_id, uint32_t partition, int cmd)
{
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET,
			    .l_start = key(topic_id, partition), .l_len = 1 };

	while (fcntl(fd, cmd, &fl) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}

int usage_open(int rootfd)
{
	/* O_EXCL never opens what is there, a planted link included */
	int fd = openat(rootfd, "usage", O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0660);

	if (fd >= 0)
		(void)fchmod(fd, 0660); /* ours: shared with the root's group */
	else if (errno == EEXIST)
		fd = sdir_open(rootfd, "usage", O_RDWR);
	else
		fd = -errno;
	if (fd == -EACCES)
		fd = sdir_open(rootfd, "usage", O_RDONLY);
	if (fd < 0)
		return shm_err(fd, "cannot open the root's usage file: %s", sdir_why(fd));
	return fd;
}

int usage_hold(int fd, uint64_t topic_id, uint32_t partition)
{
	int rc = lock(fd, F_RDLCK, topic_id, partition, F_OFD_SETLKW);

	if (rc)
		return shm_err(rc, "cannot lock partition %llu/%u in the usage file: %s",
			       (unsigned long long)topic_id, partition, strerror(-rc));
	return 0;
}

void usage_release(int fd, uint64_t topic_id, uint32_t partition)
{
	(void)lock(fd, F_UNLCK, topic_id, partition, F_OFD_SETLK);
}

int usage_try_exclusive(int fd, uint64_t topic_id, uint32_t partition)
{
	int rc = lock(fd, F_WRLCK, topic_id, partition, F_OFD_SETLK);

	return rc == -EAGAIN || rc == -EACCES ? -EBUSY : rc;
}

void usage_share(int fd, uint64_t topic_id, uint32_t partition)
{
	(void)lock(fd, F_RDLCK, topic_id, partition, F_OFD_SETLK);
}
