/*
 * fuzz_busfile.c - libFuzzer target: opening a bus file and a group file
 * whose bytes the fuzzer controls, then reading the topic table and the
 * committed offsets.  Damage must give an error, never a crash.
 *
 * The input patches a valid bus file (one topic) or, if its first byte is
 * odd, a valid group file with a few commits: {u16 offset/8, u8 len, bytes}.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../shm/directory.h"
#include "../../shm/groups.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int visit(void *ctx, uint64_t id, uint32_t part, uint64_t off, int64_t ns)
{
	(void)id; (void)part; (void)off; (void)ns;
	(*(int *)ctx)++;
	return 0;
}

static uint8_t *load(const char *dir, const char *name, size_t *len)
{
	char path[256];
	struct stat st;
	uint8_t *buf;
	int fd;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	fd = open(path, O_RDONLY);
	if (fd < 0 || fstat(fd, &st) < 0)
		abort();
	*len = (size_t)st.st_size;
	buf = malloc(*len);
	if (pread(fd, buf, *len, 0) != (ssize_t)*len)
		abort();
	close(fd);
	return buf;
}

static void build(uint8_t **bus, size_t *bus_len, uint8_t **grp, size_t *grp_len)
{
	char dir[] = "/dev/shm/shmbus-fuzzbus-XXXXXX";
	struct bus_topic t = { .name = "orders", .partitions = 3, .capacity = 4096 };
	struct bus_dir d;
	struct group_file g;
	int dfd;

	if (!mkdtemp(dir))
		abort();
	dfd = open(dir, O_RDONLY | O_DIRECTORY);
	if (dir_open(dfd, true, &d) < 0)
		abort();
	t.id = dir_reserve_id(&d);
	dir_add(&d, &t);
	dir_close(&d);
	if (group_open(dfd, "g", true, &g) < 0)
		abort();
	for (uint32_t i = 0; i < 5; i++)
		group_commit(&g, 1, i, 100 + i, 0);
	group_close(&g);
	*bus = load(dir, "bus", bus_len);
	*grp = load(dir, "g", grp_len);
	unlinkat(dfd, "bus", 0);
	unlinkat(dfd, "g", 0);
	close(dfd);
	rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t *bus, *grp;
	static size_t bus_len, grp_len;
	char dir[] = "/dev/shm/shmbus-fuzzrun-XXXXXX";
	bool group = size && (data[0] & 1);
	uint8_t *img;
	size_t len;
	int dfd, fd;

	if (!bus)
		build(&bus, &bus_len, &grp, &grp_len);
	len = group ? grp_len : bus_len;
	img = malloc(len);
	memcpy(img, group ? grp : bus, len);
	for (size_t i = 1; i + 3 <= size;) {
		size_t off = ((size_t)data[i] | (size_t)data[i + 1] << 8) * 8 % len, n = data[i + 2];

		i += 3;
		if (n > size - i)
			n = size - i;
		if (n > len - off)
			n = len - off;
		memcpy(img + off, data + i, n);
		i += n;
	}
	if (!mkdtemp(dir))
		abort();
	dfd = open(dir, O_RDONLY | O_DIRECTORY);
	fd = openat(dfd, group ? "g" : "bus", O_RDWR | O_CREAT, 0600);
	if (write(fd, img, len) != (ssize_t)len)
		abort();
	close(fd);
	if (group) {
		struct group_file g;
		uint64_t off;
		int count = 0;

		if (group_open(dfd, "g", false, &g) == 0) {
			group_foreach(&g, visit, &count);
			group_fetch(&g, 1, 2, &off, NULL);
			group_commit(&g, 7, 1, 5, 0);
			group_close(&g);
		}
		unlinkat(dfd, "g", 0);
	} else {
		struct bus_dir d;
		struct bus_topic t, all[8];

		if (dir_open(dfd, false, &d) == 0) {
			dir_lookup(&d, "orders", &t);
			dir_list(&d, all, 8);
			dir_close(&d);
		}
		unlinkat(dfd, "bus", 0);
	}
	close(dfd);
	rmdir(dir);
	free(img);
	return 0;
}
