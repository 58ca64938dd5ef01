/*
 * testpoint.h - named test points in the protocol's code (after
 * lttng-ust's TESTPOINT), where a test stops, kills or races a process
 * inside the real code rather than in a copy of its steps.
 *
 * SHM_TESTPOINT(name) compiles to nothing unless the build defines
 * SHMBUS_TESTPOINTS.  Only the tests' build of shm/ and lib/ does
 * (build/tp/, linked into the test programs alone); the shipped
 * libshmbus, shmbus and shmbusd have no test point and no hook, which
 * `make test` checks with nm.  In the test build a point loads the hook
 * and, if one is set, calls it with the point's name.
 *
 * A point is named after the step of format.md §4 it sits in:
 *   claim_announced      3: the claim word announced, busy; no CAS yet
 *   claim_after_cas      3: the claim CAS won; nothing of the claim written
 *   mark_first_frame     4: the first frame's word is CLAIMED; with PADDING,
 *                           the padding's word not taken yet
 *   mark_first_word      4: the claim's first word is taken (the padding's,
 *                           or the first frame's: then right after the above)
 *   mark_done            4: every frame CLAIMED and indexed, the word past
 *                           the claim zeroed
 *   fill_done            5: headers, payloads and CRCs written; no commit yet
 *   publish_after_frame  5: after each frame's commit CAS (between the
 *                           frames of a batch, and after the last)
 *
 * one on the supervisor's side of step 3:
 *   writer_read_pos      part_writer_read() loaded a slot's pos, not yet
 *                           its off
 *
 * one in a read (format.md §6 step 2):
 *   read_aborted         part_read() loaded an ABORTED word for its offset,
 *                           not yet the range's end offset
 *
 * one in an unblock (format.md §7):
 *   unblock_after_cas    part_unblock() CASed the commit word to ABORTED
 *                           (the guard held); end offset and index not
 *                           yet written
 *
 * and two in lib/topics.c, for the steps of a grow (format.md §9):
 *   topic_partition_made after each partition file a create or grow made
 *   grow_before_publish  every new file of a grow made, its entry with
 *                           the larger count not yet published
 */
#ifndef SHMBUS_SHM_TESTPOINT_H
#define SHMBUS_SHM_TESTPOINT_H

#ifdef SHMBUS_TESTPOINTS
/* Called with the point's name at each point the process passes; NULL
 * (the default) makes the points do nothing.  Set by tests only: the
 * point's load_acquire pairs with the store_release of the hook in
 * tests/lib/testpoints.c. */
extern void (*shm_testpoint_hook)(const char *name);

#define SHM_TESTPOINT(name)                                                            \
	do {                                                                           \
		void (*hook_)(const char *) =                                          \
			__atomic_load_n(&shm_testpoint_hook, __ATOMIC_ACQUIRE);        \
		if (hook_)                                                             \
			hook_(#name);                                                  \
	} while (0)
#else
#define SHM_TESTPOINT(name) do { } while (0)
#endif

#endif
