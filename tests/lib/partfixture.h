/*
 * partfixture.h - the fixture of the tests of one partition file (shm/):
 * a scratch directory per test, partitions created in it, a mapping with
 * a guard page after the data ring for hostile bytes, and the small
 * helpers the partition tests share (records of exactly 64 bytes whose
 * value names their offset, a claim word moved by hand, a range's end).
 *
 * The names are the ones the test files used before they shared them, so
 * their tests read as before.
 */
#ifndef SHMBUS_PARTFIXTURE_H
#define SHMBUS_PARTFIXTURE_H

#include "testutil.h"

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

#endif
