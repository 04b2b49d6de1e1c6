/* SPDX-License-Identifier: MIT */
/*
 * recpool.h - reuse of the memory of records that RCU has reclaimed (part of the map layer).
 *
 * Why: a put allocates a record and retires the one it replaces; the retired record is freed
 * one grace period later on liburcu's call_rcu thread. With glibc, a free on one thread and a
 * malloc on another meet in the arena's bins under its lock: profiled, the writer's malloc was a
 * quarter of a single-thread PROCESS put (docs/benchmarks.md, "Where a put's time goes"). Here
 * the callback hands whole batches of reclaimed blocks to a process-wide pool (one lock per
 * batch), and each writer thread takes a magazine of blocks from it (one lock per
 * RECPOOL_MAG blocks) and allocates from that without any lock.
 *
 * Rules:
 *  P.1  Only memory that no reader can still reach enters the pool: blocks come from the RCU
 *       callback (after a grace period) or were never published.
 *  P.2  A block is reused for a request of n bytes only if its usable size is in
 *       [n, n + n / 4 + 32]: reuse never wastes more than malloc's own rounding plus a quarter.
 *  P.3  The pool is bounded (RECPOOL_MAX blocks); beyond it blocks are freed. A thread's magazine
 *       is freed when the thread exits.
 */
#ifndef PKV_RECPOOL_H
#define PKV_RECPOOL_H

#include <stddef.h>

#define RECPOOL_MAG 32u     /* blocks a thread takes from the pool at once */
#define RECPOOL_MAX 16384u  /* blocks the pool keeps at most */

/* A block of at least @n bytes (n >= 16), or NULL on ENOMEM. Free it with pkv__recpool_free. */
void *pkv__recpool_alloc(size_t n);

/* Give back one block no reader can reach (P.1), from the thread that allocated it. */
void pkv__recpool_free(void *p);

/* Give back @n reclaimed blocks (P.1): the RCU callback's batch. */
void pkv__recpool_free_batch(void *const *items, unsigned n);

#endif /* PKV_RECPOOL_H */
