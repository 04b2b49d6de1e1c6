/* SPDX-License-Identifier: MIT */
/*
 * rcu.h - the one place pkv names a liburcu flavor, plus the ThreadSanitizer shim.
 *
 * pkv uses the "memb" flavor: read-side sections are a thread-local counter update and a
 * compiler barrier (the writer side pays with sys_membarrier), no signals are taken over, and no
 * quiescent-state announcements are asked of the application's threads. The library is built
 * with _LGPL_SOURCE (CMakeLists.txt), so urcu_memb_read_lock/unlock are liburcu's inline
 * versions, compiled into pkv's get path instead of called in liburcu's shared object (README,
 * "Licensing"), and with the initial-exec TLS model, so the reader's counter is one %fs-relative
 * access. Code built without _LGPL_SOURCE (tests that include this header) calls the library's
 * functions, which update the same counter.
 *
 * Threads are registered by pkv itself: pkv__rcu_enter() on every public entry point registers
 * the calling thread on its first call and arranges its unregistration at thread exit (rcu.c).
 *
 * ThreadSanitizer cannot see liburcu 0.13's grace periods. Under PKV_TSAN the shim turns each
 * read-side unlock and each call_rcu into a release, and each reclamation callback (and the
 * return of synchronize_rcu) into an acquire of one token, so TSan learns that a reader's
 * accesses, and the retiring thread's, happen before the memory they touched is freed. One
 * more edge: the end of a record batch's callback is a release that pkv__map_destroy acquires
 * after its rcu_barrier, so the callback's count in the shard happens before the shards are
 * freed. Nothing more: a build that skips the grace period (PKV_TEST_SKIP_GRACE_PERIOD) frees
 * without the acquire and TSan reports it (stress/ keeps that as a negative control).
 */
#ifndef PKV_RCU_H
#define PKV_RCU_H

#include <stdbool.h>
#include <urcu/urcu-memb.h>
#include <urcu/call-rcu.h>

#ifdef PKV_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
extern char pkv__tsan_gp_token;
#define PKV_TSAN_RELEASE() __tsan_release(&pkv__tsan_gp_token)
#define PKV_TSAN_ACQUIRE() __tsan_acquire(&pkv__tsan_gp_token)
#else
#define PKV_TSAN_RELEASE() ((void)0)
#define PKV_TSAN_ACQUIRE() ((void)0)
#endif

/* initial-exec: a plain %fs-relative load on the get path, not a __tls_get_addr call. */
extern __thread bool pkv__rcu_registered __attribute__((tls_model("initial-exec")));

/* Slow path of pkv__rcu_enter: register the thread, arm the exit-time unregistration. */
void pkv__rcu_register_slow(void);

/*
 * Read sections (read.c) the calling thread has open, over every store. While it is not 0 the
 * thread is inside an RCU read-side section, so nothing it calls may wait for a grace period
 * (synchronize_rcu, rcu_barrier), nor for another thread that might: such calls return
 * PKV_EINVAL instead (pkv__in_read_section).
 */
extern __thread unsigned pkv__read_depth __attribute__((tls_model("initial-exec")));

static inline bool pkv__in_read_section(void)
{
	return __builtin_expect(pkv__read_depth != 0, 0);
}

/* Unregister the calling thread now (pkv_thread_detach); harmless if it is not registered. */
void pkv__rcu_unregister(void);

/* Make sure the calling thread is registered with RCU; cheap after the first call. */
static inline void pkv__rcu_enter(void)
{
	if (__builtin_expect(!pkv__rcu_registered, 0))
		pkv__rcu_register_slow();
}

static inline void pkv__rcu_read_lock(void)
{
	urcu_memb_read_lock();
}

static inline void pkv__rcu_read_unlock(void)
{
	PKV_TSAN_RELEASE();
	urcu_memb_read_unlock();
}

#endif /* PKV_RCU_H */
