/*
 * atomics.h - named helpers over C11/GCC atomics for shared memory.
 *
 * Every access to a word that another process may write at the same time
 * goes through one of these helpers, so that each barrier is visible in
 * the source and its comment can name the access it pairs with.  The
 * 16-byte compare-and-swap is the only primitive that needs a CPU feature
 * (cmpxchg16b on x86-64, LL/SC or CASP on arm64); there is no locking
 * fallback, because a process-local lock is not atomic across processes.
 */
#ifndef SHMBUS_SHM_ATOMICS_H
#define SHMBUS_SHM_ATOMICS_H

#include <stdbool.h>
#include <stdint.h>

#if !defined(__GCC_HAVE_SYNC_COMPARE_AND_SWAP_16)
#error "shmbus needs a lock-free 16-byte compare-and-swap (build with -mcx16 on x86-64)"
#endif

#define load_relaxed(p)      __atomic_load_n((p), __ATOMIC_RELAXED)
#define load_acquire(p)      __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define load_seq_cst(p)      __atomic_load_n((p), __ATOMIC_SEQ_CST)
#define store_relaxed(p, v)  __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define store_release(p, v)  __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define store_seq_cst(p, v)  __atomic_store_n((p), (v), __ATOMIC_SEQ_CST)
#define fetch_add(p, v)      __atomic_fetch_add((p), (v), __ATOMIC_SEQ_CST)
#define fetch_add_relaxed(p, v) __atomic_fetch_add((p), (v), __ATOMIC_RELAXED)
#define fence_acquire()      __atomic_thread_fence(__ATOMIC_ACQUIRE)
#define fence_seq_cst()      __atomic_thread_fence(__ATOMIC_SEQ_CST)
#define compiler_barrier()   __asm__ __volatile__("" ::: "memory")

/* Full-barrier compare-and-swap of one word; on failure *expected gets the
 * current value. */
#define cas(p, expected, desired)                                        \
	__atomic_compare_exchange_n((p), (expected), (desired), false,      \
				    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)

/* A 16-byte pair, aligned for cmpxchg16b. */
typedef struct {
	uint64_t lo;
	uint64_t hi;
} __attribute__((aligned(16))) pair128;

typedef unsigned __int128 u128;

static inline u128 pair_pack(pair128 v)
{
	return ((u128)v.hi << 64) | v.lo;
}

static inline pair128 pair_unpack(u128 v)
{
	return (pair128){ .lo = (uint64_t)v, .hi = (uint64_t)(v >> 64) };
}

/*
 * cas128 - compare-and-swap both words of *p as one (full barrier).
 * Returns true on success; on failure *expected holds the value seen.
 */
static inline bool cas128(pair128 *p, pair128 *expected, pair128 desired)
{
#if defined(__x86_64__)
	/* The instruction itself, not a builtin: ThreadSanitizer implements
	 * 16-byte atomics with a lock of its own process, which is not atomic
	 * for another process. */
	bool ok;

	__asm__ __volatile__("lock cmpxchg16b %[mem]"
			     : [mem] "+m"(*p), "=@ccz"(ok), "+a"(expected->lo), "+d"(expected->hi)
			     : "b"(desired.lo), "c"(desired.hi)
			     : "memory");
	return ok;
#else
	u128 old = pair_pack(*expected);
	u128 seen = __sync_val_compare_and_swap((u128 *)p, old, pair_pack(desired));

	if (seen == old)
		return true;
	*expected = pair_unpack(seen);
	return false;
#endif
}

/*
 * load_pair - a consistent snapshot of a pair whose low word only grows
 * whenever the pair changes (the claim word: every successful CAS moves
 * the tail forward).  Reading lo, hi, lo again and seeing lo unchanged
 * proves no CAS landed in between, so no 16-byte locked read (which would
 * take the cache line exclusive) is needed.
 */
static inline pair128 load_pair(pair128 *p)
{
	pair128 v;

	for (;;) {
		v.lo = load_acquire(&p->lo);
		v.hi = load_acquire(&p->hi);
		if (load_acquire(&p->lo) == v.lo)
			return v;
	}
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#else
	compiler_barrier();
#endif
}

#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

#endif
