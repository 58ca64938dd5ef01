/*
 * partfixture.h - the fixture of the tests of one partition file (shm/):
 * a scratch directory per test, partitions created in it, a mapping with
 * a guard page after the data ring for hostile bytes, and the small
 * helpers the partition tests share (records of exactly 64 bytes whose
 * value names their offset, a claim word moved by hand, a range's end,
 * an abort checked to the word), and producers that are the real
 * part_append killed or stopped at a test point (testpoints.h).
 *
 * The names are the ones the test files used before they shared them, so
 * their tests read as before.
 */
#ifndef SHMBUS_PARTFIXTURE_H
#define SHMBUS_PARTFIXTURE_H

#include "testutil.h"
#include "testpoints.h"

#include "../../shm/partition.h"
#include "../../shm/append.h"
#include "../../shm/read.h"

/* cmocka state: a fresh directory under /dev/shm, removed at teardown. */
struct env {
	char *dir;
	int dirfd;
};

/* Setup and teardown for cmocka_unit_test_setup_teardown(); the directory
 * is named after the test program. */
int env_setup(void **state);
int env_teardown(void **state);

/* Create partition file `name` in e's directory, failing the test (with
 * shm_errmsg()) if part_create() cannot. */
void env_part_create(struct env *e, const char *name, const struct part_params *prm,
		     struct part *p);

/* Partition "0" of topic "t" (id 1), of capacity cap, the rest default;
 * one made before in e's directory is replaced. */
void env_part_default(struct env *e, uint64_t cap, struct part *p);

/* Partition "0" of e's directory mapped with an inaccessible page right
 * after its data ring: a read or write past the ring faults. */
struct guarded {
	struct part p;
	size_t len;
};

void map_guarded(struct env *e, struct guarded *g);
void unmap_guarded(struct guarded *g);

/* The timestamp append64() gives offset `off`. */
int64_t ts_of(uint64_t off);

/* Append n records of exactly 64 bytes (16-byte values {o, ~o} naming
 * their offset o), timestamps ts_of(o). */
void append64(struct part_writer *w, uint64_t n);

/* The view is append64()'s record for offset `off`. */
void expect64(const struct frame_view *v, uint64_t off);

/* Read one record, expecting append64()'s record for offset `off`. */
void read_expect(struct part *p, struct part_cursor *c, uint64_t off);

/* part_read() finds nothing to read. */
void read_nothing(struct part *p, struct part_cursor *c);

/* No read from the first offset on delivers offset `off`. */
void never_read(struct part *p, uint64_t off);

/* Claim `n` offsets over `bytes` bytes by the claim word alone, as a
 * producer that dies right after its CAS leaves them; returns the
 * position.  The word past the claim is zeroed as a claim does. */
uint64_t raw_claim(struct part *p, uint64_t bytes, uint64_t n);

/* The tail now: the stall_tail to pass to part_unblock() when no cursor
 * timed the stall (format.md §7). */
uint64_t tail_now(const struct part *p);

/* The offset after the aborted range at pos: the u64 at frame + 8
 * (format.md §3). */
uint64_t end_at(const struct part *p, uint64_t pos);

/* The word at pos is ABORTED(len, first), its range ends at offset `end`,
 * and the index of every aborted offset leads to the range (format.md §7). */
#define expect_abort(p, pos, len, first, end) expect_abort_at(p, pos, len, first, end, __LINE__)

void expect_abort_at(const struct part *p, uint64_t pos, uint64_t len, uint64_t first,
		     uint64_t end, int line);

/*
 * A producer: one part_append of a batch of n records, of exactly 64
 * bytes (append64's) or with value lengths vlen[i] (starting with
 * {o, ~o} all the same).  With its own writer (w NULL), taken where it
 * runs: a killed child's slot keeps the child's pid and its last
 * announcement, as a crash leaves them.
 */
#define PROD_MAX 8

struct prod {
	struct part *p;
	struct part_writer *w;
	size_t n;
	uint32_t vlen[PROD_MAX]; /* 0: 16 */
	uint64_t off;            /* part_append's first offset; 77 until set */
	int rc;                  /* part_append's return */
	int stopped_by;          /* the writer's stopped_by after it */
};

/* Run the producer pr (a struct prod *); 0, or 1 if it found no writer
 * slot. */
int prod_run(void *pr);

/* A producer of n records (64 bytes, or of value lengths vlen) killed at
 * test point `point` (util/testpoint.h), in a child: returns its claim's
 * position (the tail before it); *ret_pid, if asked, the dead producer. */
uint64_t killed_at(struct part *p, const char *point, size_t n, const uint32_t *vlen,
		   pid_t *ret_pid);

/* Start pr in a thread stopped at the `hit`-th pass of test point
 * `point`: returns its claim's position.  tp_resume(s) lets it finish. */
uint64_t stopped_at(struct tp_stop *s, struct prod *pr, const char *point, unsigned hit);

#endif
