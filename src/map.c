/* SPDX-License-Identifier: MIT */
/*
 * map.c - the live map: sharded ck_ht (byte-string mode), RCU reclamation.
 *
 * Each key's hash picks a shard; a shard is one ck_ht table with one writer at a time (the shard
 * lock, ck_ht being single-producer/multi-consumer) and any number of lock-free readers. The
 * table's entry points at the record: its key pointer is the record's key bytes, its value
 * pointer the record itself, so a reader reaches key and value with one extra cache line.
 *
 * Ordering and reclamation guarantees:
 *  M.1  A record is written completely before it is published and never changes afterwards.
 *  M.2  The record's seq field is its last initializing store, made with release order; a reader
 *       loads it with acquire order before touching the key or value. On x86-64 both are plain
 *       moves; they give ThreadSanitizer the happens-before edge that ck_ht's fences cannot.
 *  M.3  ck_ht publishes entries with value-then-fence-then-key stores; a reader that sees the new
 *       key sees the new value. A reader may pair an old key pointer with a new record (in-place
 *       overwrite): harmless, because every key pointer a reader can see points at bytes equal to
 *       its key, kept alive by M.4.
 *  M.4  A replaced or removed record, and every table ck_ht frees on growth (its ck_malloc
 *       free(defer = true)), is freed only from a call_rcu callback: after every reader that could
 *       have loaded a pointer to it has left its read-side section.
 *  M.5  Overwrites do not relocate entries unless a tombstone (left by a delete) lies earlier in
 *       the key's probe sequence; only relocations and tombstone reuse make ck_ht readers reprobe.
 *  M.6  Growth happens before a write reaches the WAL (pkv__map_reserve_locked), so a write that
 *       took a sequence number is never refused by the table for want of room.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <urcu/compiler.h>

#include "errors.h"
#include "map.h"
#include "rcu.h"

/* ---- RCU-deferred frees of ck_ht tables ------------------------------------------------- */

struct ht_block {
	union {
		struct rcu_head rcu;
		max_align_t align;
	} u;
	unsigned char mem[];
};

static void *ht_malloc(size_t n)
{
	struct ht_block *b = malloc(sizeof(*b) + n);
	return b ? b->mem : NULL;
}

static void ht_block_free_cb(struct rcu_head *head)
{
	PKV_TSAN_ACQUIRE();
	free(caa_container_of(head, struct ht_block, u.rcu));
}

static void ht_free(void *p, size_t n, bool defer)
{
	struct ht_block *b;

	(void)n;
	if (p == NULL)
		return;
	b = caa_container_of((unsigned char *)p, struct ht_block, mem[0]);
	if (defer) {
		PKV_TSAN_RELEASE(); /* pairs with the callback's acquire (rcu.h) */
		urcu_memb_call_rcu(&b->u.rcu, ht_block_free_cb); /* M.4: readers may be probing it */
	}
	else
		free(b);
}

static void *ht_realloc(void *p, size_t old, size_t n, bool defer)
{
	void *q = ht_malloc(n);

	if (q == NULL)
		return NULL;
	memcpy(q, p, old < n ? old : n);
	ht_free(p, old, defer);
	return q;
}

/* ---- RCU-deferred frees of records, in batches ------------------------------------------- */

#define RETIRE_BATCH 126

struct retire_batch {
	struct rcu_head rcu;
	unsigned n;
	void *items[RETIRE_BATCH];
};

static void retire_cb(struct rcu_head *head)
{
	struct retire_batch *b = caa_container_of(head, struct retire_batch, rcu);

	PKV_TSAN_ACQUIRE();
	for (unsigned i = 0; i < b->n; i++)
		free(b->items[i]);
	free(b);
}

static void retire_flush_locked(struct map_shard *s)
{
	if (s->retire == NULL || s->retire->n == 0)
		return;
	PKV_TSAN_RELEASE(); /* pairs with the callback's acquire (rcu.h) */
	urcu_memb_call_rcu(&s->retire->rcu, retire_cb);
	s->retire = NULL;
}

/*
 * One call_rcu per RETIRE_BATCH records keeps the per-write cost of reclamation to a store and
 * an occasional queue push, instead of a call_rcu (and a possible wake-up) per write.
 */
static void retire_locked(struct map_shard *s, void *p)
{
#ifdef PKV_TEST_SKIP_GRACE_PERIOD
	/* Negative control for the TSan soak: deliberately no grace period. Never in a release. */
	free(p);
	return;
#endif
	if (s->retire == NULL) {
		s->retire = malloc(sizeof(*s->retire));
		if (s->retire == NULL) {
			/* No memory for a batch: wait for the grace period here instead. */
			urcu_memb_synchronize_rcu();
			PKV_TSAN_ACQUIRE();
			free(p);
			return;
		}
		s->retire->n = 0;
	}
	s->retire->items[s->retire->n++] = p;
	if (s->retire->n == RETIRE_BATCH)
		retire_flush_locked(s);
}

/* ---- the map -------------------------------------------------------------------------- */

int pkv__map_init(struct pkv_map *m, unsigned nshards, size_t capacity_hint)
{
	uint64_t per_shard;
	unsigned i;

	memset(m, 0, sizeof(*m));
	m->alloc.malloc = ht_malloc;
	m->alloc.realloc = ht_realloc;
	m->alloc.free = ht_free;
	m->nshards = nshards;
	m->shard_shift = 64;
	for (unsigned n = nshards; n > 1; n >>= 1)
		m->shard_shift--;

	/* ck_ht keeps its load factor under 1/2; leave ~25% slack for uneven shards. */
	per_shard = (uint64_t)capacity_hint / nshards;
	per_shard = per_shard * 2 + per_shard / 2;
	if (per_shard < 64)
		per_shard = 64;

	if (posix_memalign((void **)&m->shards, 64, sizeof(*m->shards) * nshards) != 0)
		return -ENOMEM;
	memset(m->shards, 0, sizeof(*m->shards) * nshards);
	for (i = 0; i < nshards; i++) {
		struct map_shard *s = &m->shards[i];

		pthread_mutex_init(&s->lock, NULL);
		/* One seed for all shards: the hash is computed once, on shard 0's table. */
		if (!ck_ht_init(&s->ht, CK_HT_MODE_BYTESTRING, NULL,
				&m->alloc, per_shard, PKV_HASH_SEED))
			goto fail;
		s->cap = 1;
		while (s->cap < per_shard) /* ck_ht rounds its capacity up to a power of two */
			s->cap <<= 1;
	}
	return 0;
fail:
	while (i-- > 0) {
		ck_ht_destroy(&m->shards[i].ht);
		pthread_mutex_destroy(&m->shards[i].lock);
	}
	free(m->shards);
	m->shards = NULL;
	return -ENOMEM;
}

void pkv__map_destroy(struct pkv_map *m)
{
	if (m->shards == NULL)
		return;
	for (unsigned i = 0; i < m->nshards; i++) {
		struct map_shard *s = &m->shards[i];
		ck_ht_iterator_t it = CK_HT_ITERATOR_INITIALIZER;
		ck_ht_entry_t *e;

		while (ck_ht_next(&s->ht, &it, &e))
			free(ck_ht_entry_value(e));
		ck_ht_destroy(&s->ht);
		retire_flush_locked(s);
		free(s->retire);
		pthread_mutex_destroy(&s->lock);
	}
	/* Wait for every batch and table handed to call_rcu before the memory map goes away. */
	urcu_memb_barrier();
	free(m->shards);
	m->shards = NULL;
}

const struct pkv_rec *pkv__map_get_rcu(struct pkv_map *m, uint64_t hash, const void *key,
				       size_t klen)
{
	struct map_shard *s = pkv__map_shard(m, hash);
	ck_ht_hash_t h = { hash };
	ck_ht_entry_t e;
	const struct pkv_rec *r;

	ck_ht_entry_key_set(&e, key, (uint16_t)klen);
	if (!ck_ht_get_spmc(&s->ht, h, &e))
		return NULL;
	r = ck_ht_entry_value(&e);
	(void)__atomic_load_n(&r->seq, __ATOMIC_ACQUIRE); /* M.2 */
	return r;
}

struct pkv_rec *pkv__rec_new(const void *key, size_t klen, const void *val, size_t vlen)
{
	struct pkv_rec *r = malloc(sizeof(*r) + klen + vlen);

	if (r == NULL)
		return NULL;
	r->seq = 0;
	r->vlen = (uint32_t)vlen;
	r->klen = (uint16_t)klen;
	r->flags = 0;
	memcpy(r->data, key, klen);
	if (vlen)
		memcpy(r->data + klen, val, vlen);
	return r;
}

struct pkv_rec *pkv__rec_new_tomb(const void *key, size_t klen)
{
	struct pkv_rec *r = pkv__rec_new(key, klen, NULL, 0);

	if (r)
		r->flags = PKV_REC_TOMB;
	return r;
}

void pkv__rec_free(struct pkv_rec *r)
{
	free(r);
}

const struct pkv_rec *pkv__map_find_locked(struct map_shard *s, uint64_t hash, const void *key,
					   size_t klen)
{
	ck_ht_hash_t h = { hash };
	ck_ht_entry_t e;

	ck_ht_entry_key_set(&e, key, (uint16_t)klen);
	if (!ck_ht_get_spmc(&s->ht, h, &e))
		return NULL;
	return ck_ht_entry_value(&e);
}

int pkv__map_reserve_locked(struct map_shard *s)
{
	uint64_t n = ck_ht_count(&s->ht);
	void *probe;

	/*
	 * ck_ht grows itself after an insert that takes it past half full, but ignores a failure to
	 * do so; grow first instead, where a failure can still be refused cleanly (M.6). ck_ht does
	 * not export its capacity, so s->cap tracks it: it is exact except after ck_ht grew on its
	 * own because a probe sequence filled up, when it is low.
	 */
	if ((n + 1) * 2 <= s->cap)
		return 0;
	if (ck_ht_grow_spmc(&s->ht, s->cap * 2)) {
		s->cap *= 2;
		return 0;
	}
	/* Refused: either the table is already that large (s->cap was low) or memory ran out. */
	probe = malloc(sizeof(ck_ht_entry_t) * s->cap * 2);
	if (probe == NULL)
		return -ENOMEM;
	free(probe);
	s->cap *= 2;
	return 0;
}

int pkv__map_set_locked(struct map_shard *s, uint64_t hash, struct pkv_rec *r, uint64_t seq)
{
	ck_ht_hash_t h = { hash };
	ck_ht_entry_t e;

	__atomic_store_n(&r->seq, seq, __ATOMIC_RELEASE); /* M.1, M.2 */
	ck_ht_entry_set(&e, h, r->data, r->klen, r);
	if (!ck_ht_set_spmc(&s->ht, h, &e)) /* M.3: published value, fence, key; M.5 */
		return -ENOMEM;
	if (!ck_ht_entry_empty(&e))
		retire_locked(s, ck_ht_entry_value(&e)); /* M.4 */
	return 0;
}

int pkv__map_del_locked(struct map_shard *s, uint64_t hash, const void *key, size_t klen)
{
	ck_ht_hash_t h = { hash };
	ck_ht_entry_t e;

	ck_ht_entry_key_set(&e, key, (uint16_t)klen);
	if (!ck_ht_remove_spmc(&s->ht, h, &e))
		return PKV_NOTFOUND;
	retire_locked(s, ck_ht_entry_value(&e)); /* M.4 */
	return 0;
}

long pkv__map_collect_locked(struct map_shard *s, const struct pkv_rec ***out)
{
	ck_ht_iterator_t it = CK_HT_ITERATOR_INITIALIZER;
	uint64_t n = ck_ht_count(&s->ht);
	const struct pkv_rec **v = malloc((n ? n : 1) * sizeof(*v));
	ck_ht_entry_t *e;
	long i = 0;

	if (v == NULL)
		return -ENOMEM;
	/* The shard lock keeps the table still: ck_ht may not be iterated during a mutation. */
	while ((uint64_t)i < n && ck_ht_next(&s->ht, &it, &e))
		v[i++] = ck_ht_entry_value(e);
	*out = v;
	return i;
}

void pkv__map_drop_locked(struct pkv_map *m, struct map_shard *s, const struct pkv_rec *r)
{
	uint64_t h = pkv__map_hash(m, r->data, r->klen);

	if (pkv__map_find_locked(s, h, r->data, r->klen) == r)
		(void)pkv__map_del_locked(s, h, r->data, r->klen);
}

void pkv__map_shrink_locked(struct map_shard *s)
{
	uint64_t n = ck_ht_count(&s->ht), want = 64;
	ck_ht_iterator_t it = CK_HT_ITERATOR_INITIALIZER;
	struct ck_ht_map *old;
	ck_ht_entry_t *e;
	ck_ht_t fresh;

	while (want < n * 2 + n / 2)
		want <<= 1;
	if (want * 4 > s->cap) /* not worth it below a 4x reduction */
		return;
	if (!ck_ht_init(&fresh, s->ht.mode, NULL, s->ht.m, want, s->ht.seed))
		return;
	while (ck_ht_next(&s->ht, &it, &e)) {
		ck_ht_hash_t h = { e->hash };
		ck_ht_entry_t copy = *e;

		if (!ck_ht_set_spmc(&fresh, h, &copy)) {
			ck_ht_destroy(&fresh);
			return;
		}
	}
	/*
	 * Publish the new table the way ck_ht_grow_spmc does (a release store of the map pointer,
	 * which readers load with ck_pr_load_ptr), and free the old one after a grace period (M.4).
	 */
	old = s->ht.map;
	__atomic_store_n(&s->ht.map, fresh.map, __ATOMIC_RELEASE);
	s->ht.m->free(old, 0, true);
	s->cap = want;
}

void pkv__map_flush_retired(struct pkv_map *m)
{
	for (unsigned i = 0; i < m->nshards; i++) {
		pthread_mutex_lock(&m->shards[i].lock);
		retire_flush_locked(&m->shards[i]);
		pthread_mutex_unlock(&m->shards[i].lock);
	}
}
