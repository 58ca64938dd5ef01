/*
 * fuzz_partition.c - libFuzzer target: a reader, the seeks, the
 * unblocker and the recovery scan over a partition file whose bytes the
 * fuzzer controls.
 *
 * Each input is a list of patches {u16 file offset, u8 length, bytes}
 * applied to a valid small partition holding a few records (so the
 * fuzzer explores damage to a real log rather than only header
 * rejection); an input starting with 0xff is instead the whole file.
 * Whatever the bytes, nothing may crash, read out of bounds or loop
 * forever (AddressSanitizer and the iteration bounds check that).
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../shm/append.h"
#include "../../shm/partition.h"
#include "../../shm/read.h"
#include "../../shm/recover.h"
#include "../../shm/unblock.h"

#define CAP 4096u
#define ICAP 64u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int make_file(void)
{
	struct part_params prm = { .topic = "fuzz", .topic_id = 1, .capacity = CAP,
				   .index_capacity = ICAP, .policy = PART_POLICY_OVERWRITE,
				   .numa_node = -1, .mode = 0600 };
	struct part p;
	struct part_writer w;
	char dir[] = "/dev/shm/shmbus-fuzz-XXXXXX";
	int dfd, fd;

	if (!mkdtemp(dir))
		return -1;
	dfd = open(dir, O_RDONLY | O_DIRECTORY);
	if (part_create(dfd, "0", &prm, &p) < 0)
		return -1;
	part_writer_init(&w, &p);
	for (int i = 0; i < 60; i++) {
		char val[96];
		struct part_rec r = { .value = val, .value_len = (uint32_t)(i * 7 % 90) + 1,
				      .key = "k", .key_len = 1, .timestamp_ns = i * 1000 };
		uint64_t off;

		memset(val, 'a' + i % 26, sizeof val);
		part_append(&w, &r, 1, 0, 0, &off);
	}
	part_writer_fini(&w);
	part_unmap(&p);
	fd = openat(dfd, "0", O_RDWR);
	unlinkat(dfd, "0", 0);
	close(dfd);
	rmdir(dir);
	return fd;
}

static void exercise(struct part *p)
{
	struct part_cursor c;
	struct frame_view v;
	struct part_recovery r;
	uint64_t low, end;

	part_bounds(p, &low, &end);
	for (int pass = 0; pass < 2; pass++) {
		if (part_seek_begin(p, &c) == 0)
			for (int i = 0; i < 4096 && part_read(p, &c, &v) == 1; i++)
				;
		for (uint64_t o = low; o < low + 8; o++)
			if (part_seek(p, &c, o) == 0)
				for (int i = 0; i < 64 && part_read(p, &c, &v) == 1; i++)
					;
		if (part_seek_time(p, &c, 20000) == 0)
			for (int i = 0; i < 64 && part_read(p, &c, &v) == 1; i++)
				;
		if (part_seek_begin(p, &c) == 0) {
			int rc = part_read(p, &c, &v);

			if (rc == 0 && c.stalled)
				part_unblock(p, c.off, c.stall_pos, PART_UNBLOCK_FORCE, c.stall_tail,
					     NULL);
		}
		if (pass == 0)
			part_recover(p, &r);
	}
	/* after recovery the partition must still take appends */
	{
		struct part_writer w;
		struct part_rec rec = { .value = "x", .value_len = 1 };
		uint64_t off;

		part_writer_init(&w, p);
		part_append(&w, &rec, 1, 0, 0, &off);
		part_writer_fini(&w);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int base = -2;
	static uint8_t *image;
	static size_t image_len;
	struct part p;
	int fd;

	if (base == -2) {
		struct stat st;

		base = make_file();
		if (base < 0 || fstat(base, &st) < 0)
			return 0;
		image_len = (size_t)st.st_size;
		image = malloc(image_len);
		if (pread(base, image, image_len, 0) != (ssize_t)image_len)
			return 0;
	}
	if (base < 0)
		return 0;
	fd = memfd_create("part", 0);
	if (size && data[0] == 0xff) {
		if (write(fd, data + 1, size - 1) < 0)
			goto out;
	} else {
		uint8_t *img = malloc(image_len);

		memcpy(img, image, image_len);
		for (size_t i = 0; i + 3 <= size;) {
			size_t off = (size_t)data[i] | (size_t)data[i + 1] << 8, len = data[i + 2];

			i += 3;
			off = off * 4 % image_len;
			if (len > size - i)
				len = size - i;
			if (len > image_len - off)
				len = image_len - off;
			memcpy(img + off, data + i, len);
			i += len;
		}
		if (write(fd, img, image_len) < 0) {
			free(img);
			goto out;
		}
		free(img);
	}
	if (part_map_fd(fd, false, "fuzz", &p) == 0) {
		exercise(&p);
		part_unmap(&p);
	}
out:
	close(fd);
	return 0;
}
