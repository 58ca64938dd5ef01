/*
 * ring.pml - a Promela model of one partition ring (docs/format.md §3, §4,
 * §6, §7), checked exhaustively by spin: tests/test_model.c runs it in
 * the configurations docs/format.md "The model" lists (make test).
 *
 * Processes: two producers (part_append(): shm/append.c, writers.h), one
 * consumer (part_read(): shm/read.c, with lib/consumer.c's loss check,
 * reset and unblock()), shmbusd's unblocker (daemon/supervise.c: unstick()
 * and supervise_client_gone(), over part_abort_claim() and part_unblock():
 * shm/unblock.c, part_writer_read(): shm/writers.c), and a killer that
 * may kill a producer at any step of a claim (kill -9: it stops between
 * two instructions and never runs again).  Each step names the function
 * it mirrors.
 *
 * One step is one load, store or compare-and-swap of a shared word, with
 * the local computation that follows it (an atomic block).  Memory is
 * sequentially consistent: the model checks the protocol's logic, not the
 * acquire/release pairs of the C code.
 *
 * Abstractions:
 *   - a frame is one unit of the ring; positions and lengths count frames,
 *     so no claim pads the ring's end, no frame grows, and a producer
 *     claims one record per CAS;
 *   - the 32 offset bits of a commit word hold the whole offset (a lap
 *     holds fewer than 2^32 offsets, format.md §1), and icap = C;
 *   - time is not modelled: an unblock timeout may expire at any step, so
 *     the daemon may abort any busy announcement at any moment and the
 *     consumer unblocks its frontier whenever it is stalled (every timing
 *     at once).  Only where such an unblock can do nothing but read and
 *     say -EBUSY (a CLAIMED frame of a live producer) is it left out;
 *   - the consumer resets to the end (reset=latest) when lapped (with no
 *     padding, part_seek() of the lost offset always fails first), reads
 *     one record per poll and copies it; retention, backpressure, CRCs,
 *     batches and zero-copy claims are left out;
 *   - a stalled consumer polls again once something its poll or unblock
 *     reads has changed (dirty), not in between: those polls see the same
 *     words and decide the same.
 *
 * Properties (assertions; a trail names the one that failed):
 *   P1  no torn or stale record is delivered: both halves of a delivered
 *       payload carry the delivered offset's record id;
 *   P2  no offset is both committed and aborted, none is skipped by the
 *       consumer as aborted once committed, only committed offsets are
 *       delivered, a producer's commit fails only if its claim was aborted;
 *   P3  offsets are delivered in increasing order, never twice;
 *   P4  no spurious damage: the consumer never reports -EBADMSG (a frame
 *       or claim word that fails its checks although nothing lapped it);
 *   P5  no consumer is stuck behind a dead or stopped producer: once every
 *       other process has stopped (spin's timeout), it is at the end;
 *   P6  an abort takes one stalled claim, from its own frame: the claim
 *       of the producer whose death the daemon handles, a dead producer's
 *       CLAIMED frame for a consumer, and never a range into the next claim.
 *   I3  (OLD_BYTES) a zeroing ahead leaves no older bytes past a claim
 *       (format.md §4 step 4): the word there is zero or that claim's own.
 *   Invalid end states (a process blocked for ever) are errors too.
 *
 * Configuration (spin -D...): C, PREFILL, START, K0, K1, KILLS, DAEMON,
 * ATTEMPTS, PEEKS, GIVEUP, NO_CONSUMER, below; OLD_BYTES: the earlier lap
 * left, where the first new claim ends, 8 bytes that are no commit word
 * but carry the offset going there next in their low bits (a frame's pid
 * word or a value's bytes in the code; in init).
 *
 * What the model found in the code before its fixes (docs/format.md "The
 * model"), each now fixed, the fix modelled by default, and the old code
 * reachable by a switch (a case of tests/test_model.c shows spin finds
 * each defect again):
 *   OLD_UNBLOCK      finding 1: part_unblock() checked the lap once, on the
 *                    claim word it loaded first: an unblocker delayed for
 *                    a lap took a word of the next lap for a never-marked
 *                    hole and aborted it (a committed record), or wrote its
 *                    end offset and index entries over the next lap's.
 *                    Fix: the unblock guard (gpos, gheld; shm/guard.h):
 *                    taken before the claim word is loaded, loaded by
 *                    producers after their claim CAS; a claim that laps
 *                    it waits.  Index entries leading past the range are
 *                    left alone.
 *   OLD_GONE_PID     finding 2: supervise_client_gone() aborted the claim
 *                    at a dead writer's announcement by force, but a
 *                    writer killed after announcing and before its CAS (or
 *                    after a failed one) announced a claim word another
 *                    producer won.  Fix: for a death, abort only CLAIMED
 *                    frames carrying the dead pid; holes go to the
 *                    readers' timeouts.
 *   OLD_SKIP_LAP     finding 3: skip_aborted() trusted the end offset at
 *                    frame + 8 after reloading the claim word without
 *                    checking the lap again: lapped, frame + 8 holds the
 *                    next lap's offset and the consumer skipped committed
 *                    records.  Fix: check the tail after loading the end.
 *   OLD_ZERO_AHEAD   found by a stressed test_mp_order, not by the model
 *                    (which had no older bytes): part_zero_ahead() left
 *                    every word carrying the next offset's bits, taking
 *                    it for that claim's own; with OLD_BYTES a reader at
 *                    the claim's end takes older bytes for a frame.  Fix
 *                    (dda512e): such a word is cleared when surely older:
 *                    the tail still at its position, or its claim not
 *                    indexed and every busy announcement of it telling
 *                    another first word (slot field first).
 *
 * Found by this model in dda512e's first form of that fix, fixed in the
 * code after it (the old forms come back with these switches):
 *   OLD_ZERO_NO_GUARD  an unblocker's ABORTED word for the next offset,
 *                    written before its index store, is taken for older
 *                    bytes (not the first word its producer announced)
 *                    and cleared: that producer then commits an aborted
 *                    offset (P2).  Fix: the word is left while an
 *                    unblocker guards its position;
 *   OLD_ZERO_TOLD    a producer killed after its claim CAS, its slot
 *                    reaped before the claim before it zeroes ahead: no
 *                    announcement tells its first word, and older bytes
 *                    stayed (I3, OLD_BYTES).  Fix: with no busy
 *                    announcement of the claim, the word is older bytes.
 *   OLD_ZERO_NO_WAIT the zeroing leaves the word while an unblocker
 *                    guards its position (finding 5's fix as first
 *                    made): when that unblock is shmbusd's after the
 *                    death of the claim's producer, aborting nothing,
 *                    the older bytes stay (finding 6, I3).  Fix: wait
 *                    for the guard's release and judge again
 *                    (part_guard_wait_at()).
 *
 * A second line behind the zeroing (format.md §6, older bytes), for what
 * it still leaves in the code (a guard held past its wait's bound, a word
 * equal to the next claim's): a reader whose word for `off` fails its
 * checks waits while no claim holds `off` or its claim has not marked it
 * (index), and an unblocker takes such a COMMITTED or ABORTED word for a
 * hole's.  With OLD_ZERO_AHEAD (every such word left) the model passes;
 *   OLD_READER_DAMAGE  the code before: the reader reports the word as
 *                    damage (P4), and the unblocker takes it for the
 *                    claim's own.
 *
 * Seeded bugs (each makes spin report an error):
 *   BUG_COMMIT_BEFORE_PAYLOAD  commit the frame before writing its payload
 *   BUG_NO_LAP_CHECK           deliver without the post-read tail check
 *   BUG_MARK_BY_STORE          mark CLAIMED by a plain store (take_word()
 *                              without the CAS that refuses an abort)
 *   BUG_NO_ANNOUNCEMENTS       bound a hole without the writers' slots
 *   BUG_NO_SEQLOCK_RECHECK     read a writer slot without re-checking seq
 *   BUG_HORIZON_AFTER_WRITE    raise the horizon after writing the payload
 *                              (not before the claim CAS)
 *   BUG_ZERO_UNANNOUNCED       zero ahead a word for the next offset
 *                              whenever that claim is not indexed, without
 *                              the announcements' first words
 */

#ifndef C
#define C 3            /* ring capacity, in frames (a power of two in the code) */
#endif
#ifndef K0
#define K0 1           /* records producer 0 appends */
#endif
#ifndef K1
#define K1 1           /* records producer 1 appends */
#endif
#ifndef START
#define START 0        /* the consumer's first offset: 0 (the oldest) or PREFILL (the end) */
#endif
#ifndef KILLS
#define KILLS 0        /* which producers the killer may kill: bit i, producer i */
#endif
#ifndef DAEMON
#define DAEMON 0       /* 1: supervise_client_gone(), 2: unstick(), 3: both, 0: none */
#endif
#ifndef ATTEMPTS
#define ATTEMPTS 255   /* unstick() attempts, at most (a bound on the search) */
#endif
/* GIVEUP: a producer blocked by a claim a lap behind may give up
 * (-EBUSY); without it, it waits (the same as appending fewer records).
 * NO_CONSUMER: no consumer (the daemon's aborts alone, P2 and P6). */
#ifndef PEEKS
#define PEEKS 1        /* PART_PEEKS_MAX (1024 in shm/read.h) */
#endif
#ifndef HSTEP
#define HSTEP 2        /* a producer raises the horizon to its claim's end + HSTEP
                        * (the code: + 8 + its step, horizon.h); 1: exactly
                        * what the claim needs */
#endif
#define NP 2           /* producers */
#ifndef PREFILL
#define PREFILL (C - 1) /* records of an earlier lap in the ring at the start */
#endif
#define NOFF (PREFILL + K0 + K1)  /* offsets: one per record */
#define OLDPOS (PREFILL + 1)   /* OLD_BYTES: where the older bytes lie */
#if defined(OLD_BYTES) && START != PREFILL
#error "OLD_BYTES plants its word in the earlier lap's frame at PREFILL + 1 - C: START must be PREFILL"
#endif
#define TRIES 4        /* READ_SLOT_TRIES, shm/writers.c */

/* A commit word (format.md §3): state | length | offset.  Zero: nothing
 * written.  ABORTED is state 0 with a length, so never zero. */
#define ABORTED   0
#define CLAIMED   1
#define COMMITTED 2
#define CW(st, n, off) ((st) * 4096 + (n) * 256 + (off))
#define CW_ST(w)   ((w) / 4096)
#define CW_LEN(w)  (((w) / 256) % 16)
#define CW_OFF(w)  ((w) % 256)
#define CW_FOR(w, o) ((w) != 0 && CW_OFF(w) == (o))    /* part_cw_for() */
#define PHYS(p) ((p) % C)                                /* pos & (capacity - 1) */
#define BIT(o) (1 << (o))
/* part_end_plausible(): each offset takes at least one unit */
#define PLAUSIBLE(o, p, t, n) ((p) <= (t) && (o) <= (n) && (n) - (o) <= (t) - (p))
/* proc_alive(): a pid is producer + 1 */
#define ALIVE(pv) ((pv) != 0 && !dead[(pv) - 1])

/* the older bytes OLD_BYTES plants: no claim writes a frame of length 2 */
#ifdef OLD_BYTES
#define IS_OLDW(w, p) ((p) == OLDPOS && ((w) == CW(COMMITTED, 2, OLDPOS) || (w) == CW(ABORTED, 2, OLDPOS)))
#else
#define IS_OLDW(w, p) false
#endif
/* left_older() in unblock_at(): a COMMITTED or ABORTED word for uoff
 * whose offset is not marked (icap = C) is older bytes, its claim a hole;
 * OLD_READER_DAMAGE: the code before, which took it for the claim's own */
#ifdef OLD_READER_DAMAGE
#define LEFT_OLDER(o, p, n) false
#else
#define LEFT_OLDER(o, p, n) ((n) - (o) <= C && idx[(o) % C] != (p))
#endif

/* part_unblock() results */
#define U_NONE  0      /* 0: nothing to do */
#define U_DONE  1      /* 1: aborted or repaired */
#define U_BUSY  2      /* -EBUSY */
#define U_RANGE 3      /* -ERANGE */

/* part_read() results */
#define R_NONE  0
#define R_REC   1
#define R_RANGE 2

/* ------------------------------------------------------------------ */
/* Shared memory                                                       */

byte tail, next;               /* the claim word {tail, next} (header bytes 640-655) */
/* The horizon (header bytes 384-391, shm/horizon.h, format.md §4 step
 * 3): no process writes a unit at or past it.  Producers raise it (CAS to
 * the max) to at least their claim's end + 1 (the word zeroed past the
 * claim) before their claim CAS; the consumer's post-copy lap check
 * (part_first_lost()) loads it instead of the tail. */
byte hor;
short cw[C];                   /* each frame's commit word */
byte offf[C];                  /* frame + 8: the frame's offset, or an aborted range's end */
byte pidf[C];                  /* the frame's pid */
byte pay1[C], pay2[C];         /* the payload, two halves: each the record id (offset + 1) */
byte idx[C];                   /* the offset index, icap = C: slot o % C holds o's position */

/* writer slots (format.md §2, writers.h): {pid, flags, seq, pos, off,
 * first}: first is the word the claim takes first at pos (its CLAIMED
 * word, append.c first_word()) */
byte spid[NP], sseq[NP], spos[NP], soff[NP];
short sfirst[NP];
bool sbusy[NP];

bool dead[NP];                 /* the process is gone (what proc_alive() sees) */

/* Ghosts: not in shared memory, for the properties and the search. */
int committed, aborted, skipped;   /* bit o: offset o */
byte owner[NOFF];              /* producer + 1 whose claim took offset o */
byte claimpos[NOFF];           /* the position claimed for offset o */

/* A stalled consumer polls again only once something its poll or its
 * unblock reads has changed: the polls in between would load the same
 * words and decide the same.  WROTE marks those writes (the claim word,
 * commit words, frame + 8, the index, announcements, slots freed,
 * deaths); payloads, pids and busy marks are not read there. */
bool dirty = true;
#define WROTE dirty = true

/* The unblock guard (header bytes 656-671, shm/guard.h): the position an
 * unblocker works at, gheld its holder + 1 (0: the consumer, 1: the
 * daemon), 0: free.  Taken and released by CAS; producers load it after
 * their claim CAS and never write a claim that laps gpos.  OLD_UNBLOCK:
 * no guard (finding 1). */
byte gpos, gheld;

/* ------------------------------------------------------------------ */
/* Helpers shared by the consumer and the daemon (shm/unblock.c,       */
/* shm/writers.c); they use the caller's locals, declared by           */
/* UNBLOCK_LOCALS.                                                     */

#define UNBLOCK_LOCALS \
	byte u_t, u_n, u_len, u_pid, u_end, u_endoff, ur, g, nb_pos, nb_off, nb_span, \
	     nb_last, nb_o, nb_q, nb_i, ab_e; \
	short u_w, nb_w; \
	bool u_hole, ok; \
	ZERO_LOCALS

/* What writer_read() and zero_ahead() use (the producers too). */
#define ZERO_LOCALS \
	byte a_pid, a_seq, a_pos, a_off, a_try, z_i; \
	short a_first, u_w2; \
	bool a_ok, a_busy, z_old, z_told, z_wait

/*
 * Offsets [from, to) are now covered by an aborted range.  mand says
 * whose claim the unblocker may abort (P6): producer mand (the daemon
 * acting on slot mand - 1), any stalled claim (0: a claim never marked,
 * which a consumer aborts after the timeout), or a dead producer's (255:
 * a consumer aborting a CLAIMED frame).
 */
inline ghost_abort(from, to, mand, apos)
{
	/* an abort written where the ring has lapped aborts nothing: its
	 * words lie in the next lap, and what they do there is checked
	 * where they are read */
	if
	:: tail >= apos + C -> g = to
	:: else -> g = from
	fi;
	do
	:: g < to ->
		assert(g != from || claimpos[from] == apos);  /* P6: the range starts at its offset's frame */
		assert(!(committed & BIT(g)));  /* P2: committed and aborted */
		assert(owner[g] == owner[from]);  /* P6: one claim, not the next too */
		assert(mand == 0 || owner[g] == mand ||
		       (mand == 255 && owner[g] != 0 && dead[owner[g] - 1]));   /* P6 */
		aborted = aborted | BIT(g);
		g++
	:: else -> break
	od;
	g = 0
}

/* read_slot() / part_writer_read() (shm/writers.c): slot i's announcement
 * through its seqlock.  a_ok: pos, off and first are one announcement.
 * The pid is loaded with seq: only taking and reaping the slot change it. */
inline writer_read(i)
{
	a_try = 0;
	do
	:: a_try < TRIES ->
		/* seq, pid, flags and pos, then off and seq again: an
		 * announcement between the loads of pos and off is what the
		 * seqlock must catch */
		atomic {
			a_seq = sseq[i]; a_pid = spid[i];
			a_ok = (a_pid != 0 && a_seq % 2 == 0);
			if
			:: a_ok -> a_busy = sbusy[i]; a_pos = spos[i]
			:: else
			fi
		}
		if
#ifdef BUG_NO_SEQLOCK_RECHECK
		:: a_ok -> atomic { a_off = soff[i]; a_first = sfirst[i] }
#else
		:: a_ok -> atomic { a_off = soff[i]; a_first = sfirst[i]; a_ok = (sseq[i] == a_seq) }
#endif
		:: else
		fi;
		if
		:: a_ok || a_pid == 0 -> break
		:: else -> a_try++
		fi
	:: else -> break
	od
}

/*
 * part_zero_ahead(p, pos, off) (shm/unblock.c): clear the word at zpos
 * unless it is the first word of zoff's claim.  One that carries zoff's
 * bits may be older bytes (OLD_BYTES): ahead_judge() clears it only when
 * sure: the tail, loaded after it, is still zpos (no claim of zoff yet);
 * or zoff is not indexed, every busy slot announcing {zpos, zoff} told a
 * first word other than it, and zoff is still not indexed after the scan.
 * A torn announcement, or one that does not tell (first not a word for
 * zoff), leaves it; an unblocker guarding zpos makes it wait for the
 * guard's release and judge again (the code's bound on that wait, after
 * which the word is left, is not modelled).  OLD_ZERO_AHEAD: the old
 * rule, every word that carries zoff's bits is left.
 */
inline zero_ahead(zpos, zoff)
{
	atomic { u_w2 = cw[PHYS(zpos)]; z_old = (u_w2 != 0 && !CW_FOR(u_w2, zoff)) }
#ifndef OLD_ZERO_AHEAD
	do
	:: u_w2 != 0 && CW_FOR(u_w2, zoff) ->
		atomic { z_old = (tail == zpos) }
		if
		:: !z_old ->
			/* ahead_marked(): no padding in the model, so its
			 * frame's position is zpos */
			atomic { z_old = (idx[(zoff) % C] != zpos); z_i = 0 }
#ifdef BUG_ZERO_UNANNOUNCED
			z_told = true; z_i = NP;
#endif
			do
			:: z_old && z_i < NP ->
				writer_read(z_i);
				if
				:: !a_ok && a_pid != 0 -> z_old = false   /* cannot tell */
				:: a_ok && a_busy && a_pos == zpos && a_off == zoff ->
					if
					:: a_first == u_w2 || !CW_FOR(a_first, zoff) ->
						z_old = false    /* its word, or untold */
					:: else -> z_told = true
					fi
				:: else
				fi;
				z_i++
			:: else -> break
			od;
			if
#ifndef OLD_ZERO_NO_GUARD
			/* an unblocker guarding zpos may have written the word
			 * (ABORTED for zoff), and publishes the index before
			 * releasing it: not judged now (AHEAD_GUARDED) */
			:: atomic { z_old && gheld != 0 && gpos == zpos -> z_old = false; z_wait = true }
#endif
			:: else ->
			/* the index again after the scan: a winner gone idle
			 * meanwhile marked first (the word's re-check is the
			 * CAS's compare below).  No busy announcement at all:
			 * the claim's producer died unmarked and was reaped */
#ifdef OLD_ZERO_TOLD
				atomic { z_old = (z_old && z_told && idx[(zoff) % C] != zpos) }
#else
				atomic { z_old = (z_old && idx[(zoff) % C] != zpos) }
#endif
			fi
		:: else
		fi;
		if
		:: z_wait ->
#if defined(OLD_ZERO_NO_WAIT) || defined(ZERO_GIVES_UP)
			/* the code before: the word is left */
			z_wait = false;
			break
#else
			/* part_guard_wait_at(), then judge the word again */
			(gheld == 0 || gpos != zpos);
			atomic {
				z_wait = false; z_told = false; z_i = 0;
				u_w2 = cw[PHYS(zpos)]; z_old = (u_w2 != 0 && !CW_FOR(u_w2, zoff))
			}
#endif
		:: else -> break
		fi
	:: else -> break
	od;
#endif
	atomic {
		if
		:: z_old && cw[PHYS(zpos)] == u_w2 -> cw[PHYS(zpos)] = 0; WROTE
		:: else
		fi;
#if defined(OLD_BYTES) && !defined(OLD_ZERO_AHEAD) && !defined(ZERO_GIVES_UP)
		/* I3: no older bytes left past a claim */
		assert(zpos != OLDPOS || (cw[PHYS(zpos)] != CW(COMMITTED, 2, OLDPOS) &&
					  cw[PHYS(zpos)] != CW(ABORTED, 2, OLDPOS)));
#endif
		u_w2 = 0; z_old = false; z_told = false; z_wait = false; z_i = 0;
		a_seq = 0; a_pos = 0; a_off = 0; a_first = 0; a_pid = 0; a_busy = 0; a_ok = 0; a_try = 0
	}
}

/* part_abort_end(p, off, pos, len, tail, next) -> ab_e (0: not there) */
inline abort_end(eoff, epos, elen, et, en)
{
	if
	:: elen < 1 || epos + elen > et -> ab_e = 0
	:: else ->
		atomic {
			ab_e = offf[PHYS(epos)];
			if
			:: ab_e > eoff && ab_e <= en
			:: else -> ab_e = 0
			fi
		}
	fi
}

/* part_next_boundary(p, off, pos, tail, next, &nb_pos) -> nb_off */
inline next_boundary(boff, bpos, bt, bn)
{
	nb_pos = bt;
	nb_off = bn;
#ifndef BUG_NO_ANNOUNCEMENTS
	/* announcements first (format.md §7) */
	nb_i = 0;
	do
	:: nb_i < NP ->
		writer_read(nb_i);
		if
		:: a_ok && a_pos > bpos && a_pos < nb_pos && a_off > boff && a_off < nb_off ->
			nb_pos = a_pos;
			nb_off = a_off
		:: else
		fi;
		nb_i++
	:: else -> break
	od;
#endif
	/* then frames marked for their offsets, among those the bytes up to
	 * the boundary can hold */
	if
	:: nb_pos <= bpos -> nb_span = 0
	:: nb_pos - bpos < C -> nb_span = nb_pos - bpos
	:: else -> nb_span = C
	fi;
	if
	:: nb_off > boff && nb_off - boff > nb_span -> nb_last = boff + 1 + nb_span
	:: else -> nb_last = nb_off
	fi;
	nb_o = boff + 1;
	do
	:: nb_o < nb_last ->
		atomic { nb_q = idx[nb_o % C] }
		if
		:: nb_q <= bpos || nb_q >= nb_pos -> nb_o++
		:: else ->
			atomic { nb_w = cw[PHYS(nb_q)] }
			if
			:: CW_FOR(nb_w, nb_o) ->
				nb_pos = nb_q;
				nb_off = nb_o;
				break
			:: else -> nb_o++
			fi
		fi
	:: else -> break
	od;
	atomic { nb_o = 0; nb_q = 0; nb_w = 0; nb_i = 0; nb_span = 0; nb_last = 0;
		 a_seq = 0; a_pos = 0; a_off = 0; a_first = 0; a_pid = 0; a_busy = 0; a_ok = 0;
		 a_try = 0 }
}

/* abort_publish(p, off, pos, end_off, end_pos) (shm/unblock.c): the end
 * offset, then the index, an entry replaced only if it leads before the
 * range's end (OLD_UNBLOCK: always, part_abort_finish()).  P6: neither
 * lands on a newer frame (its commit word, or index entry, written for a
 * later offset: the ring lapped the range).  (Its check of the tail
 * before the store is left out: under the guard it never finds a lap.) */
inline abort_finish(foff, fpos, fend, fendpos)
{
	atomic {
		assert(cw[PHYS(fpos)] == 0 || CW_OFF(cw[PHYS(fpos)]) <= foff);   /* P6 */
		offf[PHYS(fpos)] = fend; WROTE; g = foff
	}
	do
	:: g < fend && g - foff < C ->
		atomic {
#ifdef OLD_UNBLOCK
			assert(idx[g % C] <= fpos);   /* P6 */
			idx[g % C] = fpos; WROTE; g++
#else
			if
			:: idx[g % C] < fendpos ->
				assert(idx[g % C] <= fpos);   /* P6 */
				idx[g % C] = fpos; WROTE
			:: else
			fi;
			g++
#endif
		}
	:: else -> break
	od;
	g = 0
}

/* part_claimant(p, off, pos) -> u_pid (0: not a claimed frame of off;
 * 255: claimed, but no valid pid: -1) */
inline claimant(coff, cpos)
{
	atomic {
		u_w2 = cw[PHYS(cpos)];
		if
		:: CW_ST(u_w2) != CLAIMED || !CW_FOR(u_w2, coff) || CW_LEN(u_w2) != 1 -> u_pid = 0
		:: else -> u_pid = 255
		fi
	}
	if
	:: u_pid != 0 ->
		atomic {
			u_pid = pidf[PHYS(cpos)];
			if
			:: u_pid == 0 -> u_pid = 255
			:: else
			fi;
			u_w2 = 0
		}
	:: else -> u_w2 = 0
	fi
}

/*
 * part_unblock(p, off, pos, flags) -> ur.  force: PART_UNBLOCK_FORCE (the
 * daemon), else a consumer's own unblock (aborts a claim only if its
 * producer is gone).  mand: see ghost_abort();
 * for the daemon, the producer whose death it handles, or 0 for unstick().
 */
inline part_unblock(uoff, upos, force, mand, who)
{
#ifndef OLD_UNBLOCK
	/* part_guard_take(): CAS free -> {pos, us}; while another holds it,
	 * wait (an unblock is short; the code says -EBUSY after 10 ms, and
	 * its caller tries again) */
	atomic { gheld == 0 -> gheld = who + 1; gpos = upos }
#endif
	/* unblock_at(): the claim word, after the guard */
	atomic { u_t = tail; u_n = next; ur = U_NONE }
	if
	:: uoff >= u_n -> ur = U_NONE
	:: u_t >= upos + C -> ur = U_RANGE
	:: else ->
		assert(PLAUSIBLE(uoff, upos, u_t, u_n));  /* P4: else part_end_damaged() */
		atomic { u_w = cw[PHYS(upos)]; u_hole = true }
		if
		:: CW_FOR(u_w, uoff) && CW_ST(u_w) == COMMITTED && !LEFT_OLDER(uoff, upos, u_n) ->
			ur = U_NONE; u_hole = false            /* the claim moved on */
		:: CW_FOR(u_w, uoff) && CW_ST(u_w) == ABORTED ->
			/* repair_abort(): an abort whose end offset never landed */
			u_hole = false;
			u_len = CW_LEN(u_w);
			abort_end(uoff, upos, u_len, u_t, u_n);
			if
			:: ab_e != 0 -> ur = U_NONE
			:: else ->
				next_boundary(uoff, upos, u_t, u_n);
				if
				:: nb_pos != upos + u_len && LEFT_OLDER(uoff, upos, u_n) ->
					u_hole = true     /* older bytes, no claim's length */
				:: nb_pos != upos + u_len && !LEFT_OLDER(uoff, upos, u_n) -> ur = U_BUSY
				:: else ->
					atomic { u_endoff = nb_off; ghost_abort(uoff, u_endoff, 0, upos) }
					abort_finish(uoff, upos, u_endoff, upos + u_len);
					ur = U_DONE
				fi
			fi
		:: CW_FOR(u_w, uoff) && CW_ST(u_w) == CLAIMED ->
			claimant(uoff, upos);
			if
			:: u_pid != 0 ->
				/* abort_claimed() */
				u_hole = false;
				u_len = CW_LEN(u_w);
				claimant(uoff, upos);
				if
				:: !(force) && u_pid != 255 && ALIVE(u_pid) -> ur = U_BUSY
#ifndef OLD_GONE_PID
				/* for a death, only a frame that carries the dead
				 * producer's pid */
				:: force && mand != 0 && u_pid != mand -> ur = U_BUSY
#endif
				:: else ->
					zero_ahead(upos + u_len, uoff + 1);
					atomic {
						if
						:: cw[PHYS(upos)] == u_w ->
							cw[PHYS(upos)] = CW(ABORTED, u_len, uoff); WROTE;
							if
							:: force -> ghost_abort(uoff, uoff + 1, mand, upos)
							:: else -> ghost_abort(uoff, uoff + 1, 255, upos)
							fi;
							ur = U_DONE
						:: else -> ur = U_NONE
						fi
					}
					if
					:: ur == U_DONE -> abort_finish(uoff, upos, uoff + 1, upos + u_len)
					:: else
					fi
				fi
			:: else    /* a length that does not fit: abort as a hole */
			fi
		:: else
		fi;
		if
		:: u_hole ->
			/* never marked: abort up to the first claim boundary after it */
#ifndef OLD_GONE_PID
			/* abort_hole(): not for a death (whose claim it is cannot
			 * be known); readers abort it after their timeout */
			if
			:: force && mand != 0 -> ur = U_BUSY; goto ub_out
			:: else
			fi;
#endif
			next_boundary(uoff, upos, u_t, u_n);
			u_end = nb_pos;
			u_endoff = nb_off;
			if
			:: u_end - upos < 1 -> ur = U_BUSY       /* FRAME_ABORT_MIN */
			:: else ->
				zero_ahead(u_end, u_endoff);
				atomic {
					if
					:: cw[PHYS(upos)] == u_w ->
						/* P6: not a newer frame's word (older bytes
						 * carrying uoff are no frame's: OLD_BYTES) */
						assert(u_w == 0 || CW_OFF(u_w) < uoff || IS_OLDW(u_w, upos));
						cw[PHYS(upos)] = CW(ABORTED, u_end - upos, uoff); WROTE;
						ghost_abort(uoff, u_endoff, mand, upos);
						ur = U_DONE
					:: else -> ur = U_NONE
					fi
				}
				if
				:: ur == U_DONE -> abort_finish(uoff, upos, u_endoff, u_end)
				:: else
				fi
			fi
		:: else
		fi
	fi;
ub_out:
	atomic { u_t = 0; u_n = 0; u_w = 0; u_len = 0; u_pid = 0; u_end = 0; u_endoff = 0;
		 u_hole = 0; nb_pos = 0; nb_off = 0; ab_e = 0;
#ifndef OLD_UNBLOCK
		 gheld = 0; gpos = 0     /* part_guard_release() */
#endif
	}
}

/* ------------------------------------------------------------------ */
/* Producers: part_append() of K0 and K1 records, one per claim        */

proctype producer(byte me)
{
	byte done_recs, seen_t, seen_n, cur_t, cur_n, lap_limit, pos, off, end, min;
	short w;
	bool blocker, ok;
	ZERO_LOCALS;

	/* part_writer_init(): w->seen = load_pair(claim); the slot was
	 * taken by init (spid) */
	atomic { seen_t = tail; seen_n = next }
	{
	do
	:: (me == 0 && done_recs < K0) || (me == 1 && done_recs < K1) ->
		/* append_claim() */
		cur_t = seen_t;
		cur_n = seen_n;
		do
		:: true ->
			/* plan(): one frame, never a padding */
			pos = cur_t;
			off = cur_n;
			end = cur_t + 1;
			if
			:: end > lap_limit ->
				/* lap_room(): never lap a claim still being written */
				do
				:: true ->
					atomic { min = tail; blocker = false }
					/* part_writer_lowest_busy(): the other slot */
					atomic { ok = sbusy[1 - me] }
					if
					:: ok ->
						atomic { ok = (spos[1 - me] < min) }
						if
						:: ok -> atomic { min = spos[1 - me]; blocker = true }
						:: else
						fi
					:: else
					fi;
					lap_limit = min + C - 1;
					if
					:: end <= lap_limit || !blocker -> break
					:: else
					fi;
					/* part_writer_unmark_dead() */
					atomic { ok = ALIVE(spid[1 - me]) }
					if
					:: !ok -> atomic { sbusy[1 - me] = false }
					:: ok ->
#ifdef GIVEUP
						if
						:: skip                  /* backoff(), scan again */
						:: goto give_up          /* -EBUSY after 10 ms */
						fi
#else
						skip    /* backoff(), scan again (-EBUSY after 10 ms: GIVEUP) */
#endif
					fi
				od;
				atomic { cur_t = tail; cur_n = next; min = 0; blocker = false; ok = false }
			:: else ->
#ifndef BUG_HORIZON_AFTER_WRITE
				/* part_horizon_cover(): the claim's units and the
				 * word past it below the horizon before the CAS (a
				 * CAS to the max: one step, as a CAS loop that only
				 * fails when another raised it) */
				atomic {
					if
					:: hor < end + 1 -> hor = end + HSTEP
					:: else
					fi
				}
#endif
				/* part_writer_announce() (writers.h): seq odd,
				 * {pos, off, first, busy}, seq even.  (The stores
				 * inside the odd phase are one step: a seqlock
				 * read overlapping any of them fails alike.) */
				atomic {
					sseq[me] = sseq[me] + 1; spos[me] = cur_t; soff[me] = cur_n;
					sfirst[me] = CW(CLAIMED, 1, cur_n); sbusy[me] = true
				}
				atomic { sseq[me] = sseq[me] + 1; WROTE }
				/* cas128(&claim, &cur, {end, next + 1}) */
				atomic {
					if
					:: tail == cur_t && next == cur_n ->
						tail = end; next = off + 1; WROTE; ok = true;
						owner[off] = me + 1;
						claimpos[off] = pos
					:: else ->
						cur_t = tail; cur_n = next; ok = false
					fi
				}
				if
				:: ok ->
					seen_t = end;
					seen_n = off + 1;
#ifndef OLD_UNBLOCK
					/* part_guard_settle(): load the guard; wait
					 * while the claim laps a guarded position */
					atomic { gheld == 0 || end <= gpos + C - 1 }
#endif
					break
				:: else ->
					/* the word that beat us: idle while re-planning */
					atomic { sbusy[me] = false }
				fi
			fi
		od;

		/* publish() -> append_mark(): the pid, then the first word by CAS */
		atomic { pidf[PHYS(pos)] = me + 1 }
#ifdef BUG_MARK_BY_STORE
		atomic { cw[PHYS(pos)] = CW(CLAIMED, 1, off); WROTE; ok = true }
#else
		/* take_word(): CAS from whatever is there, refusing only
		 * ABORTED(claim length, first offset) */
		atomic { w = cw[PHYS(pos)] }
		do
		:: w == CW(ABORTED, 1, off) -> ok = false; break
		:: else ->
			atomic {
				if
				:: cw[PHYS(pos)] == w -> cw[PHYS(pos)] = CW(CLAIMED, 1, off); WROTE; ok = true
				:: else -> w = cw[PHYS(pos)]; ok = false
				fi
			}
			if
			:: ok -> break
			:: else
			fi
		od;
#endif
		if
		:: ok ->
			atomic { offf[PHYS(pos)] = off; WROTE; w = 0 }      /* h->offset */
			atomic { idx[off % C] = pos; WROTE }                 /* index slot */
			zero_ahead(end, off + 1);
#ifndef BUG_COMMIT_BEFORE_PAYLOAD
			/* fill(): the payload, in two halves */
			atomic { pay1[PHYS(pos)] = off + 1 }
			atomic { pay2[PHYS(pos)] = off + 1 }
#endif
#ifdef BUG_HORIZON_AFTER_WRITE
			atomic {
				if
				:: hor < end + 1 -> hor = end + HSTEP
				:: else
				fi
			}
#endif
			/* append_commit_frame(): CAS CLAIMED -> COMMITTED */
			atomic {
				if
				:: cw[PHYS(pos)] == CW(CLAIMED, 1, off) ->
					cw[PHYS(pos)] = CW(COMMITTED, 1, off); WROTE;
					assert(!(aborted & BIT(off)));   /* P2 */
					assert(!(skipped & BIT(off)));   /* P2: a reader skipped it */
					committed = committed | BIT(off)
				:: else ->        /* aborted first: -ECANCELED */
					assert((aborted & BIT(off)) != 0)   /* P2: by an abort, and only so */
				fi
			}
#ifdef BUG_COMMIT_BEFORE_PAYLOAD
			atomic { pay1[PHYS(pos)] = off + 1 }
			atomic { pay2[PHYS(pos)] = off + 1 }
#endif
		:: else     /* the claim was aborted while we were stopped */
		fi;
		/* append_idle(): the frames may now be lapped */
		atomic { sbusy[me] = false; ok = false }
give_up:
		atomic { done_recs++; pos = 0; off = 0; end = 0; cur_t = 0; cur_n = 0 }
	:: else -> break
	od
	} unless { dead[me] }
}

/* ------------------------------------------------------------------ */
/* The consumer: part_read() and lib/consumer.c's read_run, check_run, */
/* reset and unblock                                                   */

/*
 * damaged() once not lapped: older_bytes() waits (stall, unmarked) while
 * no claim holds `off`, while its claim has not marked it (its index slot,
 * icap = C), or if the word changed since w; anything else is damage, and
 * none may be seen (P4).  OLD_READER_DAMAGE: the code before, where any
 * such word was damage.
 */
inline older_or_damaged(w)
{
#ifdef OLD_READER_DAMAGE
	assert(t_seen >= pos + C);                           /* P4 */
#else
	if
	:: off >= n_seen
	:: else ->
		atomic { w2 = idx[off % C] }
		if
		:: n_seen - off <= C && w2 != pos
		:: else ->
			atomic { w2 = cw[PHYS(pos)] }
			assert(w2 != w)                              /* P4 */
		fi
	fi;
	atomic { w2 = 0; stalled = true; smarked = false }
#endif
}

proctype consumer()
{
	/* the cursor (struct part_cursor) */
	byte off, pos, t_seen, n_seen, peeks;
	bool claim_end, stalled, smarked;   /* smarked: c->stall_marked */
	/* one poll */
	byte rc, v_pos, v_off, h1, h2, e, flen, last;
	short w, w2;
	bool have, zpeek, lost;
	UNBLOCK_LOCALS;

	/* placed by a seek: part_seek_begin() (the oldest record, offset 0
	 * at position 0) or part_seek_end() (START = PREFILL) */
	atomic { off = START; pos = START; last = START }
	do
	:: true ->
		/* part_read() */
		atomic { rc = R_NONE; have = false; zpeek = false }
		do
		:: true ->
			if
			:: off >= n_seen ->
				/* at a claim's end reached by reading, peek at the
				 * commit word alone (format.md §6 step 1) */
				if
				:: claim_end && (!stalled || smarked) && peeks < PEEKS ->
					atomic { peeks++; w = cw[PHYS(pos)] }
					if
					:: w == 0 -> zpeek = true; break    /* nothing yet */
					:: CW_FOR(w, off) -> have = true
					:: else
					fi
				:: else
				fi;
				if
				:: !have ->
					atomic { peeks = 0; t_seen = tail; n_seen = next }   /* refresh() */
					if
					:: off > n_seen -> rc = R_RANGE; break
					:: off == n_seen -> stalled = false; break
					:: else
					fi;
					assert(PLAUSIBLE(off, pos, t_seen, n_seen))   /* P4 */
				:: else
				fi
			:: else
			fi;
			if
			:: !have ->
				/* what a stall decides from is loaded from here on */
				atomic { w = cw[PHYS(pos)]; dirty = false }
			:: else
			fi;
			if
			:: !CW_FOR(w, off) ->
				/* not_ready(): lapped, or stalled */
				atomic { t_seen = tail; n_seen = next }
				if
				:: t_seen >= pos + C -> rc = R_RANGE
				:: else ->
					assert(!(off < n_seen && !PLAUSIBLE(off, pos, t_seen, n_seen)));  /* P4 */
					stalled = true; smarked = false
				fi;
				break
			:: else
			fi;
			have = false;
			flen = CW_LEN(w);
			if
			:: CW_ST(w) == COMMITTED ->
				/* len_fits() and frame_parse(): the header's offset */
				atomic { e = offf[PHYS(pos)] }
				if
				:: flen != 1 || e != off ->
					/* damaged(): lapped, older bytes, or damage */
					atomic { t_seen = tail; n_seen = next }
					if
					:: t_seen >= pos + C -> rc = R_RANGE
					:: else -> older_or_damaged(w)
					fi;
					break
				:: else
				fi;
				v_pos = pos;
				v_off = off;
				off++;
				pos = pos + flen;
				stalled = false;
				claim_end = true;
				rc = R_REC;
				break
			:: CW_ST(w) == ABORTED ->
				/* skip_aborted() */
				if
				:: t_seen >= pos + C -> rc = R_RANGE; break
				:: else
				fi;
				abort_end(off, pos, flen, t_seen, n_seen);
				if
				:: ab_e == 0 ->
					atomic { t_seen = tail; n_seen = next }
					if
					:: pos + flen > t_seen ->
						/* damaged(): "runs past the tail" */
						atomic { t_seen = tail; n_seen = next }
						if
						:: t_seen >= pos + C -> rc = R_RANGE
						:: else -> older_or_damaged(w)
						fi;
						break
					:: else
					fi;
					abort_end(off, pos, flen, t_seen, n_seen);
					if
					:: ab_e == 0 ->
						/* not_ready(): wait for the end offset */
						atomic { t_seen = tail; n_seen = next }
						if
						:: t_seen >= pos + C -> rc = R_RANGE
						:: else -> stalled = true; smarked = false
						fi;
						break
					:: else
					fi
				:: else
				fi;
#ifndef OLD_SKIP_LAP
				/* the end offset is trusted only if the tail,
				 * loaded after it, shows nothing lapped it */
				atomic { t_seen = tail; n_seen = next }
				if
				:: t_seen >= pos + C -> rc = R_RANGE; ab_e = 0; break
				:: else
				fi;
#endif
				/* offsets [off, E) are skipped */
				atomic {
					g = off;
					do
					:: g < ab_e ->
						assert(!(committed & BIT(g)));   /* P2: a committed record skipped */
						skipped = skipped | BIT(g);
						g++
					:: else -> break
					od;
					g = 0;
					off = ab_e;
					ab_e = 0;
					pos = pos + flen;
					stalled = false;
					claim_end = true
				}
			:: CW_ST(w) == CLAIMED ->
				stalled = true;      /* stall(): this offset's own claim, */
				smarked = true;      /* peeked at alone until it moves */
				break
			:: else ->               /* a padding: never written here */
				assert(false)
			fi
		od;

		if
		:: rc == R_REC ->
			/* the consumer copies the record, then part_first_lost()
			 * loads the horizon: a frame it does not show intact
			 * (one step early, or a horizon too low to be true) is
			 * judged by the tail; lapped, it is discarded */
			atomic { h1 = pay1[PHYS(v_pos)] }
			atomic { h2 = pay2[PHYS(v_pos)] }
#ifdef BUG_NO_LAP_CHECK
			lost = false;
#else
			atomic { lost = !(hor >= v_pos + 2 && hor <= v_pos + C) }
			if
			:: lost -> atomic { lost = (tail >= v_pos + C) }
			:: else
			fi;
#endif
			if
			:: lost ->
				/* check_run(): back to the lost record, reset() */
				off = v_off;
				pos = v_pos;
				rc = R_RANGE
			:: else ->
				atomic {
					assert(h1 == v_off + 1 && h2 == v_off + 1);   /* P1 */
					assert(committed & BIT(v_off));               /* P2 */
					assert(!(aborted & BIT(v_off)));              /* P2 */
					assert(v_off + 1 > last);                     /* P3 */
					last = v_off + 1;
					h1 = 0; h2 = 0; v_pos = 0; v_off = 0; e = 0; flen = 0
				}
			fi
		:: else
		fi;

		if
		:: rc == R_RANGE ->
			/* reset(): part_seek(lost_from) fails (no padding to
			 * stand on), then reset=latest: part_seek_end() */
			atomic {
				off = next; pos = tail;
				t_seen = 0; n_seen = 0; peeks = 0; claim_end = false; stalled = false;
				smarked = false;
				v_pos = 0; v_off = 0; h1 = 0; h2 = 0; e = 0; flen = 0
			}
		:: rc == R_REC
		:: rc == R_NONE && zpeek      /* spin on: the next poll peeks or refreshes */
		:: rc == R_NONE && !zpeek && stalled ->
			/* unblock(): after the unblock timeout (any time here).
			 * (Not modelled where it can only say -EBUSY, reading
			 * alone: a CLAIMED frame of a live producer.  If that
			 * producer dies, the death wakes the consumer.) */
			atomic {
				w = cw[PHYS(pos)];
				if
				:: CW_FOR(w, off) && CW_ST(w) == COMMITTED -> ur = U_DONE  /* it says 0 */
				:: CW_FOR(w, off) && CW_ST(w) == CLAIMED && CW_LEN(w) == 1 &&
				   ALIVE(pidf[PHYS(pos)]) -> ur = U_BUSY
				:: else -> ur = U_NONE
				fi
			}
			w = 0;
			if
			:: ur == U_NONE -> part_unblock(off, pos, false, 0, 0)
			:: else
			fi;
			if
			:: ur == U_DONE || ur == U_NONE       /* the frontier moved: read on */
			:: else ->
				ur = 0;
				if
				:: dirty                 /* something changed: poll again */
				:: timeout -> goto quiet
				fi
			fi
		:: rc == R_NONE && !zpeek && !stalled ->
			/* at the end: poll again once the claim word moves */
			if
			:: tail != t_seen || next != n_seen
			:: timeout -> goto quiet
			fi
		fi;
		atomic { rc = 0; w = 0; ur = 0 }
	od;
quiet:
	/* P5: every other process has stopped, and no write is pending:
	 * the consumer must stand at the end of the log */
	assert(off == next)
}

/* ------------------------------------------------------------------ */
/* shmbusd's unblocker: unstick() and supervise_client_gone()          */
/* (daemon/supervise.c)                                                */

#if DAEMON
proctype daemon()
{
	byte i, snap_t, snap_n, ac_off, ac_pos, ac_end, ac_endoff, ac_len, dmand;
	short ac_w;
	bool gone[NP], reaping;
	byte tried[NP];      /* slot_watch.seq: the announcement last acted on */
	byte attempts;
	UNBLOCK_LOCALS;

	tried[0] = 255;
	tried[1] = 255;

	/* Its loop waits for a slot to look at: a busy announcement
	 * (unstick(): held for the unblock timeout, which may end at any
	 * step), or the pidfd event of a producer that died
	 * (supervise_client_gone()). */
end_idle:
	if
#if DAEMON & 2
	:: atomic { attempts < ATTEMPTS && spid[0] != 0 && sbusy[0] && sseq[0] != tried[0] && tail > spos[0] ->
		i = 0; reaping = false }
	:: atomic { attempts < ATTEMPTS && spid[1] != 0 && sbusy[1] && sseq[1] != tried[1] && tail > spos[1] ->
		i = 1; reaping = false }
#endif
#if DAEMON & 1
	:: atomic { dead[0] && !gone[0] -> i = 0; reaping = true; gone[0] = true }
	:: atomic { dead[1] && !gone[1] -> i = 1; reaping = true; gone[1] = true }
#endif
	fi;
	writer_read(i);
	if
	:: reaping && a_pid != i + 1 -> goto done     /* someone else's slot now */
	:: !reaping -> tried[i] = a_seq; attempts++    /* one attempt per announcement */
	:: else
	fi;
	if
	:: a_ok && a_busy ->
		/* part_abort_claim(p, a.off, a.pos) */
		atomic {
			ac_off = a_off; ac_pos = a_pos; snap_t = tail; snap_n = next;
			dmand = (reaping -> i + 1 : 0)
		}
		next_boundary(ac_off, ac_pos, snap_t, snap_n);
		atomic {
			ac_end = nb_pos;
			ac_endoff = nb_off;
			if
			:: ac_end > ac_pos + C -> ac_end = ac_pos + C
			:: else
			fi
		}
		do
		:: ac_pos < ac_end && ac_off < ac_endoff ->
			part_unblock(ac_off, ac_pos, true, dmand, 1);
			atomic { ac_w = cw[PHYS(ac_pos)]; ac_len = CW_LEN(ac_w) }
			if
			:: !CW_FOR(ac_w, ac_off) || ac_len == 0 -> break
			:: CW_ST(ac_w) == ABORTED ->
				abort_end(ac_off, ac_pos, ac_len, snap_t, snap_n);
				if
				:: ab_e == 0 -> break
				:: else -> ac_off = ab_e; ab_e = 0
				fi
			:: else -> ac_off++
			fi;
			ac_pos = ac_pos + ac_len
		:: else -> break
		od
	:: else
	fi;
	if
	:: reaping ->
		/* part_writer_reap() -> part_writer_slot_free() */
		atomic { sbusy[i] = false }
		atomic {
			if
			:: spid[i] == i + 1 -> spid[i] = 0; WROTE
			:: else
			fi
		}
	:: else
	fi;
done:
	atomic { i = 0; reaping = false; dmand = 0; snap_t = 0; snap_n = 0; ac_off = 0; ac_pos = 0;
		 ac_end = 0; ac_endoff = 0; ac_len = 0; ac_w = 0; a_seq = 0; a_pos = 0;
		 a_off = 0; a_first = 0; a_pid = 0; a_busy = 0; a_ok = 0; a_try = 0; ur = 0 }
	goto end_idle
}
#endif

/* The killer: kill -9 of one producer at any step of a claim (while its
 * slot is marked busy: from its announcement to its idle store), or of
 * none.  A producer killed while idle stops holding nothing, as one that
 * appends fewer records. */
proctype killer()
{
	if
	:: atomic { KILLS & 1 && sbusy[0] -> dead[0] = true; WROTE }
	:: atomic { KILLS & 2 && sbusy[1] -> dead[1] = true; WROTE }
	:: skip
	fi
}

init
{
	byte o;

	atomic {
		spid[0] = 1;     /* part_writer_slot_take(): pid = producer + 1 */
		spid[1] = 2;
		/* An earlier lap: PREFILL committed records, offsets 0 to
		 * PREFILL - 1, appended alternately by the two producers,
		 * whose slots still hold their last announcements (idle).
		 * The consumer starts at offset 0, the oldest. */
		o = 0;
		do
		:: o < PREFILL ->
			cw[PHYS(o)] = CW(COMMITTED, 1, o);
			offf[PHYS(o)] = o;
			pidf[PHYS(o)] = o % NP + 1;
			pay1[PHYS(o)] = o + 1;
			pay2[PHYS(o)] = o + 1;
			idx[o % C] = o;
			owner[o] = o % NP + 1;
			claimpos[o] = o;
			committed = committed | BIT(o);
			sseq[o % NP] = sseq[o % NP] + 2;
			spos[o % NP] = o;
			soff[o % NP] = o;
			sfirst[o % NP] = CW(CLAIMED, 1, o);
			o++
		:: else -> break
		od;
		/* the last claim's part_zero_ahead() */
		cw[PHYS(PREFILL)] = 0;
#ifdef OLD_BYTES
		/* older bytes where the first new claim, [PREFILL, PREFILL + 1),
		 * ends: 8 bytes an earlier lap left (a frame's pid word, a
		 * value's) that carry the offset going there next, PREFILL + 1,
		 * in their low bits, a length no frame has and the state
		 * COMMITTED (OLD_BYTES bit 0) or ABORTED (bit 1; both: either) */
		if
#if OLD_BYTES & 1
		:: cw[PHYS(OLDPOS)] = CW(COMMITTED, 2, OLDPOS)
#endif
#if OLD_BYTES & 2
		:: cw[PHYS(OLDPOS)] = CW(ABORTED, 2, OLDPOS)
#endif
		fi;
#endif
		tail = PREFILL;
		next = PREFILL;
		hor = PREFILL + 1;
		o = 0;
		run producer(0);
		run producer(1);
#ifndef NO_CONSUMER
		run consumer();
#endif
#if DAEMON
		run daemon();
#endif
#if KILLS
		run killer()
#endif
	}
}
