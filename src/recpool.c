/* SPDX-License-Identifier: MIT */
/*
 * recpool.c - reuse of reclaimed record memory (rules P.1 - P.3 in recpool.h).
 *
 * A free block carries its own link and usable size in its first 16 bytes (a record is at least
 * 17 bytes: its 16-byte header and a key). The pool is a list under one mutex; a thread's
 * magazine is a list only that thread touches.
 */
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>

#include "recpool.h"

struct blk {
	struct blk *next;
	size_t cap;
};

static struct {
	pthread_mutex_t mu;
	struct blk *head;
	size_t n;
} pool = { .mu = PTHREAD_MUTEX_INITIALIZER };

static __thread struct blk *mag;
static __thread unsigned nmag;
static pthread_key_t mag_key;
static pthread_once_t mag_once = PTHREAD_ONCE_INIT;

/* P.3: a thread's magazine does not outlive it. */
static void mag_release(void *unused)
{
	(void)unused;
	while (mag) {
		struct blk *b = mag;
		mag = b->next;
		free(b);
	}
	nmag = 0;
}

static void mag_key_make(void)
{
	(void)pthread_key_create(&mag_key, mag_release);
}

/* Take up to RECPOOL_MAG blocks from the pool into this thread's (empty) magazine. */
static void mag_refill(void)
{
	struct blk *first, *last = NULL;
	unsigned k = 0;

	pthread_mutex_lock(&pool.mu);
	first = pool.head;
	for (struct blk *b = first; b && k < RECPOOL_MAG; b = b->next, k++)
		last = b;
	if (last) {
		pool.head = last->next;
		__atomic_store_n(&pool.n, pool.n - k, __ATOMIC_RELAXED);
		last->next = NULL;
	}
	pthread_mutex_unlock(&pool.mu);
	if (k == 0)
		return;
	pthread_once(&mag_once, mag_key_make);
	(void)pthread_setspecific(mag_key, (void *)1); /* so that mag_release runs at exit */
	mag = first;
	nmag = k;
}

void *pkv__recpool_alloc(size_t n)
{
	size_t most = n + n / 4 + 32; /* P.2 */

	if (mag == NULL && __atomic_load_n(&pool.n, __ATOMIC_RELAXED) > 0)
		mag_refill();
	for (struct blk **pp = &mag, *b; (b = *pp) != NULL; pp = &b->next)
		if (b->cap >= n && b->cap <= most) {
			*pp = b->next;
			nmag--;
			return b;
		}
	if (nmag >= RECPOOL_MAG) {
		/* A full magazine of sizes that do not fit: let one go, so it keeps moving. */
		struct blk *b = mag;
		mag = b->next;
		nmag--;
		free(b);
	}
	return malloc(n);
}

void pkv__recpool_free(void *p)
{
	struct blk *b = p;

	if (p == NULL)
		return;
	if (nmag >= RECPOOL_MAG) {
		free(p);
		return;
	}
	pthread_once(&mag_once, mag_key_make);
	(void)pthread_setspecific(mag_key, (void *)1);
	b->cap = malloc_usable_size(p);
	b->next = mag;
	mag = b;
	nmag++;
}

void pkv__recpool_free_batch(void *const *items, unsigned n)
{
	struct blk *first = NULL, *last = NULL;
	unsigned k = 0;

	for (unsigned i = 0; i < n; i++) {
		struct blk *b = items[i];

		b->cap = malloc_usable_size(b);
		b->next = first;
		first = b;
		if (last == NULL)
			last = b;
		k++;
	}
	if (k == 0)
		return;
	pthread_mutex_lock(&pool.mu);
	if (pool.n + k <= RECPOOL_MAX) {
		last->next = pool.head;
		pool.head = first;
		__atomic_store_n(&pool.n, pool.n + k, __ATOMIC_RELAXED);
		first = NULL;
	}
	pthread_mutex_unlock(&pool.mu);
	while (first) { /* P.3: the pool is full */
		struct blk *b = first;
		first = b->next;
		free(b);
	}
}
