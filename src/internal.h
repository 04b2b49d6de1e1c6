/* SPDX-License-Identifier: MIT */
/*
 * internal.h - the platform layer's small helpers every module may use: assertions, branch
 * hints, logging without the store handle, and the background threads' priority.
 *
 * PKV_ASSERT(x): a programming error; checked in debug builds only (assert).
 * PKV_NEVER(x): a condition that cannot hold unless pkv has a bug, on a path that guards user
 * data (SQLite's NEVER()): debug builds stop at it (assert); release builds evaluate to x, and
 * the caller returns PKV_ECORRUPT rather than go on with bad state:
 *	if (PKV_NEVER(off > len)) { r = PKV_ECORRUPT; goto out; }
 * Damage that can come from outside (bytes read from a file) is not a NEVER: it is a plain
 * check that returns PKV_ECORRUPT in every build (tests and fuzzers feed such files).
 */
#ifndef PKV_INTERNAL_H
#define PKV_INTERNAL_H

#include <assert.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define pkv_likely(x) __builtin_expect(!!(x), 1)
#define pkv_unlikely(x) __builtin_expect(!!(x), 0)

#define PKV_ASSERT(x) assert(x)

#ifdef NDEBUG
#define PKV_NEVER(x) pkv_unlikely(x)
#else
#define PKV_NEVER(x) ((x) ? (assert(!"PKV_NEVER: " #x), true) : false)
#endif

/*
 * Where a module's diagnostics go: the application's log callback (pkv_options.log_fn) and its
 * context. Lower layers keep a pointer to the store's one instead of the whole store handle.
 */
struct pkv_log {
	void (*fn)(void *ctx, int level, const char *msg);
	void *ctx;
};

/* Send a formatted message to @log's callback, if there is one (@log may be NULL). */
void pkv__logf(const struct pkv_log *log, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * Lower the calling thread's scheduling priority (nice +10, Linux: per thread): pkv's own
 * threads (syncer, compactor) yield the CPU to the application's readers and writers when cores
 * are short, and still run when they are idle. Best effort.
 */
static inline void pkv__thread_background(void)
{
	(void)setpriority(PRIO_PROCESS, (id_t)gettid(), 10);
}

/*
 * The wall clock of expiry (expires_ms is CLOCK_REALTIME in ms). Readers call it only
 * for records that can expire. clock_gettime(CLOCK_REALTIME) is a vDSO call: no syscall.
 *
 * The test seam: pkv__clock_set(fn) makes every later pkv__now_ms() return fn() (NULL restores
 * the real clock), so tests and fuzz_api drive expiry with a fake clock. Not exported: tests
 * that use it link the static library.
 */
extern uint64_t (*pkv__clock_fn)(void);

void pkv__clock_set(uint64_t (*fn)(void));

static inline uint64_t pkv__now_ms(void)
{
	uint64_t (*fn)(void) = __atomic_load_n(&pkv__clock_fn, __ATOMIC_RELAXED);
	struct timespec ts;

	if (pkv_unlikely(fn != NULL))
		return fn();
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

#endif /* PKV_INTERNAL_H */
