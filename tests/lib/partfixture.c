/*
 * partfixture.c - the fixture of the partition tests (partfixture.h).
 */
#include "partfixture.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "../../util/error.h"

int env_setup(void **state)
{
	struct env *e = calloc(1, sizeof *e);
	const char *tag = program_invocation_short_name;

	if (strncmp(tag, "test_", 5) == 0)
		tag += 5;
	e->dir = tu_tmpdir(tag);
	e->dirfd = open(e->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	*state = e;
	return e->dirfd < 0 ? -1 : 0;
}

int env_teardown(void **state)
{
	struct env *e = *state;

	close(e->dirfd);
	tu_rmrf(e->dir);
	free(e->dir);
	free(e);
	return 0;
}

void env_part_create(struct env *e, const char *name, const struct part_params *prm,
		     struct part *p)
{
	int rc = part_create(e->dirfd, name, prm, p);

	if (rc)
		fail_msg("part_create(%s) = %d: %s", name, rc, shm_errmsg());
}

void env_part_default(struct env *e, uint64_t cap, struct part *p)
{
	struct part_params prm = { .topic = "t", .topic_id = 1, .capacity = cap, .numa_node = -1,
				   .mode = 0600 };

	unlinkat(e->dirfd, "0", 0);
	env_part_create(e, "0", &prm, p);
}

void map_guarded(struct env *e, struct guarded *g)
{
	int fd = openat(e->dirfd, "0", O_RDWR | O_CLOEXEC);
	struct part_header *h;
	struct stat st;
	uint8_t *base;

	assert_true(fd >= 0 && fstat(fd, &st) == 0);
	g->len = (size_t)st.st_size;
	base = mmap(NULL, g->len + 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(base != MAP_FAILED);
	assert_true(mmap(base, g->len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0) == base);
	close(fd);
	h = (struct part_header *)(void *)base;
	g->p = (struct part){ .hdr = h, .index = (uint64_t *)(void *)(base + h->index_offset),
			      .data = base + h->data_offset, .cap = h->data_capacity,
			      .mask = h->data_capacity - 1, .icap = h->index_capacity,
			      .imask = h->index_capacity - 1, .max_frame = h->max_frame,
			      .policy = h->policy, .epoch = h->epoch, .topic_id = h->topic_id,
			      .partition = h->partition, .map_len = g->len, .on_tmpfs = true };
	/* the data ring is the end of the file: the next page is the guard */
	assert_ptr_equal(g->p.data + g->p.cap, base + g->len);
}

void unmap_guarded(struct guarded *g)
{
	munmap(g->p.hdr, g->len + 4096);
}

int64_t ts_of(uint64_t off)
{
	return 1000000 + (int64_t)off * 10;
}

void append64(struct part_writer *w, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		uint64_t o = w->p->hdr->claim.hi, val[2] = { o, ~o }, off;
		struct part_rec r = { .value = val, .value_len = 16, .timestamp_ns = ts_of(o) };
		int rc = part_append(w, &r, 1, 0, 0, &off);

		if (rc != 1)
			fail_msg("append of offset %llu = %d (%s)", (unsigned long long)o, rc,
				 strerror(-rc));
		assert_int_equal(off, o);
	}
}

void expect64(const struct frame_view *v, uint64_t off)
{
	uint64_t val[2];

	if (v->offset != off)
		fail_msg("read offset %llu, expected %llu", (unsigned long long)v->offset,
			 (unsigned long long)off);
	assert_int_equal(v->value_len, 16);
	memcpy(val, v->value, 16);
	assert_int_equal(val[0], off);
	assert_int_equal(val[1], ~off);
	assert_int_equal(v->timestamp_ns, ts_of(off));
}

void read_expect(struct part *p, struct part_cursor *c, uint64_t off)
{
	struct frame_view v;
	int rc = part_read(p, c, &v);

	if (rc != 1)
		fail_msg("reading offset %llu: part_read = %d (%s) %s", (unsigned long long)off, rc,
			 strerror(rc < 0 ? -rc : 0), shm_errmsg());
	expect64(&v, off);
}

void read_nothing(struct part *p, struct part_cursor *c)
{
	struct frame_view v;

	assert_int_equal(part_read(p, c, &v), 0);
}

void never_read(struct part *p, uint64_t off)
{
	struct part_cursor c = { 0 };
	struct frame_view v;

	assert_int_equal(part_seek_begin(p, &c), 0);
	while (part_read(p, &c, &v) == 1)
		if (v.offset == off)
			fail_msg("offset %llu, whose claim was aborted, was read",
				 (unsigned long long)off);
}

uint64_t raw_claim(struct part *p, uint64_t bytes, uint64_t n)
{
	pair128 cur = p->hdr->claim;

	part_horizon_cover(p, cur.lo + bytes); /* as a claim does (format.md §4 step 3) */
	assert_true(cas128(&p->hdr->claim, &cur, (pair128){ .lo = cur.lo + bytes, .hi = cur.hi + n }));
	*part_commit_word(p, cur.lo + bytes) = 0;
	return cur.lo;
}

uint64_t tail_now(const struct part *p)
{
	return load_acquire(&p->hdr->claim.lo);
}

uint64_t end_at(const struct part *p, uint64_t pos)
{
	return load_acquire((const uint64_t *)(const void *)part_at(p, pos + 8));
}

void expect_abort_at(const struct part *p, uint64_t pos, uint64_t len, uint64_t first,
		     uint64_t end, int line)
{
	uint64_t w = load_acquire(part_commit_word(p, pos));

	if (w != cw_make(FRAME_ABORTED, len, first) || end_at(p, pos) != end)
		fail_msg("line %d: at position %llu: word %#llx (state %d, %llu bytes, offset bits "
			 "%u), end offset %llu; expected ABORTED of %llu bytes for offset %llu, "
			 "ending at offset %llu", line, (unsigned long long)pos,
			 (unsigned long long)w, (int)cw_state(w), (unsigned long long)cw_len(w),
			 cw_off(w), (unsigned long long)end_at(p, pos), (unsigned long long)len,
			 (unsigned long long)first, (unsigned long long)end);
	for (uint64_t o = first; o < end; o++)
		if (p->index[o & p->imask] != pos)
			fail_msg("line %d: the index of aborted offset %llu holds %llu, not the "
				 "range at %llu", line, (unsigned long long)o,
				 (unsigned long long)p->index[o & p->imask], (unsigned long long)pos);
}

int prod_run(void *arg)
{
	struct prod *pr = arg;
	struct part_writer own, *w = pr->w ? pr->w : &own;
	uint8_t val[PROD_MAX][512];
	struct part_rec r[PROD_MAX];
	uint64_t o = load_acquire(&pr->p->hdr->claim.hi);

	if (pr->n > PROD_MAX || (!pr->w && part_writer_init(&own, pr->p) < 0))
		return 1;
	for (size_t i = 0; i < pr->n; i++) {
		uint64_t head[2] = { o + i, ~(o + i) };

		memset(val[i], 0, sizeof val[i]);
		memcpy(val[i], head, sizeof head);
		r[i] = (struct part_rec){ .value = val[i], .value_len = pr->vlen[i] ? pr->vlen[i] : 16,
					  .timestamp_ns = ts_of(o + i) };
	}
	pr->rc = part_append(w, r, pr->n, 0, 0, &pr->off);
	pr->stopped_by = w->stopped_by;
	if (!pr->w)
		part_writer_fini(&own);
	return 0;
}

uint64_t killed_at(struct part *p, const char *point, size_t n, const uint32_t *vlen,
		   pid_t *ret_pid)
{
	struct prod pr = { .p = p, .n = n };
	uint64_t pos = tail_now(p);
	pid_t pid;

	if (vlen)
		memcpy(pr.vlen, vlen, n * sizeof *vlen);
	pid = tp_die_at(point, 1, prod_run, &pr);
	if (ret_pid)
		*ret_pid = pid;
	return pos;
}

uint64_t stopped_at(struct tp_stop *s, struct prod *pr, const char *point, unsigned hit)
{
	uint64_t pos = tail_now(pr->p);

	pr->off = 77;
	tp_stop_at(s, point, hit, prod_run, pr);
	return pos;
}
