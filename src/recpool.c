/* SPDX-License-Identifier: MIT */
/*
 * recpool.c - reuse of reclaimed record memory (rules P.1 - P.3 in recpool.h).
 *
 * Blocks travel in magazines: arrays of up to RECPOOL_MAG block addresses with their usable
 * sizes. The RCU callback fills magazines (it reads each block's size, off the writers' path) and
 * pushes them on the pool, a stack under one mutex; a thread takes one whole magazine at a time
 * and allocates from it without any lock. Neither taking a magazine nor allocating from it reads
 * a block: free blocks are cold (reclaimed a grace period after they were replaced), and a list
 * linked through them cost one dependent cache miss per block, which was a fifth of a batch
 * write's time (docs/benchmarks.md, "Batches"). The first touch of a block is now the record's
 * own stores.
 */
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>

#include "recpool.h"

struct mag {
	struct mag *next; /* in the pool */
	unsigned n;
	void *blk[RECPOOL_MAG];
	size_t cap[RECPOOL_MAG];
};

static struct {
	pthread_mutex_t mu;
	struct mag *head;
	size_t n; /* blocks in the pool's magazines */
} pool = { .mu = PTHREAD_MUTEX_INITIALIZER };

static __thread struct mag *mag; /* this thread's; NULL until it takes or keeps a block */
static pthread_key_t mag_key;
static pthread_once_t mag_once = PTHREAD_ONCE_INIT;

static void mag_free(struct mag *m)
{
	for (unsigned i = 0; i < m->n; i++)
		free(m->blk[i]);
	free(m);
}

/* P.3: a thread's magazine does not outlive it. */
static void mag_release(void *unused)
{
	(void)unused;
	if (mag)
		mag_free(mag);
	mag = NULL;
}

static void mag_key_make(void)
{
	(void)pthread_key_create(&mag_key, mag_release);
}

static void mag_own(struct mag *m)
{
	pthread_once(&mag_once, mag_key_make);
	(void)pthread_setspecific(mag_key, (void *)1); /* so that mag_release runs at exit */
	mag = m;
}

/* Replace this thread's empty (or absent) magazine with one from the pool, if it has any. */
static void mag_refill(void)
{
	struct mag *m;

	pthread_mutex_lock(&pool.mu);
	m = pool.head;
	if (m) {
		pool.head = m->next;
		__atomic_store_n(&pool.n, pool.n - m->n, __ATOMIC_RELAXED);
	}
	pthread_mutex_unlock(&pool.mu);
	if (m == NULL)
		return;
	free(mag);
	mag_own(m);
}

void *pkv__recpool_alloc(size_t n)
{
	size_t most = n + n / 4 + 32; /* P.2 */
	struct mag *m;

	if ((mag == NULL || mag->n == 0) && __atomic_load_n(&pool.n, __ATOMIC_RELAXED) > 0)
		mag_refill();
	m = mag;
	if (m == NULL)
		return malloc(n);
	for (unsigned i = m->n; i-- > 0;) {
		if (m->cap[i] >= n && m->cap[i] <= most) {
			void *p = m->blk[i];

			m->n--; /* the last entry takes its place: order does not matter */
			m->blk[i] = m->blk[m->n];
			m->cap[i] = m->cap[m->n];
			return p;
		}
	}
	if (m->n >= RECPOOL_MAG) {
		/* A full magazine of sizes that do not fit: let one go, so it keeps moving. */
		free(m->blk[--m->n]);
	}
	return malloc(n);
}

void pkv__recpool_free(void *p)
{
	if (p == NULL)
		return;
	if (mag == NULL) {
		struct mag *m = malloc(sizeof(*m));

		if (m == NULL) {
			free(p);
			return;
		}
		m->n = 0;
		mag_own(m);
	}
	if (mag->n >= RECPOOL_MAG) {
		free(p);
		return;
	}
	mag->blk[mag->n] = p;
	mag->cap[mag->n] = malloc_usable_size(p);
	mag->n++;
}

void pkv__recpool_free_batch(void *const *items, unsigned n)
{
	while (n > 0) {
		unsigned k = n < RECPOOL_MAG ? n : RECPOOL_MAG;
		struct mag *m = malloc(sizeof(*m));

		if (m == NULL) {
			for (unsigned i = 0; i < n; i++)
				free(items[i]);
			return;
		}
		for (unsigned i = 0; i < k; i++) {
			m->blk[i] = items[i];
			m->cap[i] = malloc_usable_size(items[i]);
		}
		m->n = k;
		items += k;
		n -= k;
		pthread_mutex_lock(&pool.mu);
		if (pool.n + k <= RECPOOL_MAX) {
			m->next = pool.head;
			pool.head = m;
			__atomic_store_n(&pool.n, pool.n + k, __ATOMIC_RELAXED);
			m = NULL;
		}
		pthread_mutex_unlock(&pool.mu);
		if (m) /* P.3: the pool is full */
			mag_free(m);
	}
}
