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
 *       have loaded a pointer to it has left its read-side section. Each shard counts the
 *       records it retired and those reclaimed after their grace period (pkv__map_reclaim_counts).
 *  M.5  Overwrites do not relocate entries unless a tombstone (left by a delete) lies earlier in
 *       the key's probe sequence; only relocations and tombstone reuse make ck_ht readers reprobe.
 *  M.6  Growth happens before a write reaches the WAL (pkv__map_reserve_locked; a batch's keys of
 *       one shard all at once, pkv__map_reserve_n_locked), so a write that took a sequence number
 *       is never refused by the table for want of room.
 *  M.7  Batch visibility: a batch (or a clear) that writes several keys bumps batch_begun (seq_cst) after it
 *       holds all its shard locks and before it publishes anything, and batch_done (release)
 *       after it published everything. A multi-get reads done then begun (acquire) and waits
 *       while they differ; after its lookups it reloads begun: if any record it saw belonged to
 *       a batch begun since, that record's acquire load of seq (M.2) made the increment visible,
 *       so begun differs and it looks up again. Equal counts mean every batch it may have seen
 *       was complete when done was read, and every record of those was published before.
 *  M.8  Readers probe inline (map.h pkv__ck_probe_rcu): the loads and restarts of
 *       ck_ht_get_spmc over a mirror of ck_ht's table header, checked against a fresh table at
 *       init; without a match every lookup calls ck_ht_get_spmc.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <urcu/compiler.h>

#include "errors.h"
#include "map.h"
#include "rcu.h"
#include "recpool.h"

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
	struct map_shard *shard; /* counts the reclaimed records (pkv__map_destroy waits for us) */
	unsigned n;
	void *items[RETIRE_BATCH];
};

static void retire_cb(struct rcu_head *head)
{
	struct retire_batch *b = caa_container_of(head, struct retire_batch, rcu);

	PKV_TSAN_ACQUIRE();
	pkv__recpool_free_batch(b->items, b->n); /* recpool.h P.1: after the grace period */
	__atomic_fetch_add(&b->shard->reclaimed, b->n, __ATOMIC_RELAXED);
	PKV_TSAN_RELEASE(); /* the count is in before the barrier of pkv__map_destroy (rcu.h) */
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

/* Make sure the shard has a batch with room for one more record. 0 or -ENOMEM. */
static int retire_reserve_locked(struct map_shard *s)
{
	if (s->retire != NULL)
		return 0;
	s->retire = malloc(sizeof(*s->retire));
	if (s->retire == NULL)
		return -ENOMEM;
	s->retire->shard = s;
	s->retire->n = 0;
	return 0;
}

/*
 * One call_rcu per RETIRE_BATCH records keeps the per-write cost of reclamation to a store and
 * an occasional queue push, instead of a call_rcu (and a possible wake-up) per write.
 */
static void retire_locked(struct map_shard *s, void *p)
{
	__atomic_store_n(&s->retired, s->retired + 1, __ATOMIC_RELAXED);
#ifdef PKV_TEST_SKIP_GRACE_PERIOD
	/* Negative control for the TSan soak: deliberately no grace period. Never in a release. */
	free(p);
	return;
#endif
	if (s->retire == NULL && retire_reserve_locked(s) < 0) {
		/*
		 * No memory for a batch (pkv__map_reserve_locked makes room for one before a write
		 * reaches the WAL, so only a caller that did not reserve gets here): wait for the
		 * grace period instead, unless this thread is inside a read section, where that
		 * would wait for itself (read.c RD.4): then the record is leaked.
		 */
		if (pkv__in_read_section())
			return;
		urcu_memb_synchronize_rcu();
		PKV_TSAN_ACQUIRE();
		free(p);
		__atomic_fetch_add(&s->reclaimed, 1, __ATOMIC_RELAXED);
		return;
	}
	s->retire->items[s->retire->n++] = p;
	if (s->retire->n == RETIRE_BATCH)
		retire_flush_locked(s);
}

/* ---- the map -------------------------------------------------------------------------- */

/* M.8 for code that has a shard but not its map: 1 once a map's check passed, -1 if one failed. */
static int ck_mirror_ok;

/*
 * M.8: does struct pkv__ck_map describe the table ck_ht_init just made for @cap slots? Every
 * field the inline probe reads is checked against what it must be in an empty table.
 */
static bool ck_map_mirror_ok(const ck_ht_t *ht, uint64_t cap)
{
	const struct pkv__ck_map *map = (const struct pkv__ck_map *)ht->map;
	uintptr_t first = ((uintptr_t)(map + 1) + 63) & ~(uintptr_t)63;
	uint64_t step = 1; /* ck_internal_bsf_64: ffs, one-based */

	while ((1ull << (step - 1)) < cap)
		step++;
	return map->mode == CK_HT_MODE_BYTESTRING && map->capacity == cap &&
	       map->mask == cap - 1 && map->step == step && map->n_entries == 0 &&
	       map->deletions == 0 && map->probe_maximum == 0 && map->probe_bound == NULL &&
	       map->probe_limit >= 1 && (uintptr_t)map->entries == first &&
	       map->size >= sizeof(*map) + cap * sizeof(ck_ht_entry_t) &&
	       sizeof(ck_ht_entry_t) == 32;
}

int pkv__map_init(struct pkv_map *m, unsigned nshards, size_t capacity_hint)
{
	uint64_t per_shard;
	unsigned i;

	static uint64_t next_id;

	memset(m, 0, sizeof(*m));
	m->id = __atomic_add_fetch(&next_id, 1, __ATOMIC_RELAXED);
	m->alloc.malloc = ht_malloc;
	m->alloc.realloc = ht_realloc;
	m->alloc.free = ht_free;
	m->nshards = nshards;
	m->shard_shift = 64;
	for (unsigned n = nshards; n > 1; n >>= 1)
		m->shard_shift--;

	/*
	 * ck_ht keeps its load factor under 1/2: two slots per key, rounded up to a power of two
	 * (so usually with room to spare). A shard that the hash favours beyond that grows alone,
	 * before its write reaches the WAL (M.6). No further slack: a slot is 32 bytes, and a
	 * table twice the size costs 32 more bytes per key in every store that sets the hint.
	 */
	per_shard = (uint64_t)capacity_hint / nshards * 2;
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
	m->inline_probe = ck_map_mirror_ok(&m->shards[0].ht, m->shards[0].cap);
	__atomic_store_n(&ck_mirror_ok, m->inline_probe ? 1 : -1, __ATOMIC_RELAXED);
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
	PKV_TSAN_ACQUIRE(); /* pairs with retire_cb's release: its count is written */
	free(m->shards);
	m->shards = NULL;
}

struct pkv_rec *pkv__rec_new_x(const void *key, size_t klen, const void *val, size_t vlen,
			       uint64_t expires_ms)
{
	/* No cost for records that never expire: the 8 bytes exist only with the flag. */
	size_t extra = expires_ms ? sizeof(expires_ms) : 0;
	struct pkv_rec *r = pkv__recpool_alloc(sizeof(*r) + klen + vlen + extra);

	if (r == NULL)
		return NULL;
	r->seq = 0;
	r->vlen = (uint32_t)vlen;
	r->klen = (uint16_t)klen;
	r->flags = expires_ms ? PKV_REC_EXPIRES : 0;
	memcpy(r->data, key, klen);
	if (vlen)
		memcpy(r->data + klen, val, vlen);
	if (extra)
		memcpy(r->data + klen + vlen, &expires_ms, extra);
	return r;
}

struct pkv_rec *pkv__rec_new(const void *key, size_t klen, const void *val, size_t vlen)
{
	return pkv__rec_new_x(key, klen, val, vlen, 0);
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
	pkv__recpool_free(r); /* never published: no reader can hold it (recpool.h P.1) */
}

const struct pkv_rec *pkv__map_find_locked(struct map_shard *s, uint64_t hash, const void *key,
					   size_t klen)
{
	ck_ht_hash_t h = { hash };
	ck_ht_entry_t e;

#ifndef PKV_TSAN
	if (__atomic_load_n(&ck_mirror_ok, __ATOMIC_RELAXED) > 0) /* M.8 */
		return pkv__ck_probe_rcu(&s->ht, hash, key, klen);
#endif

	ck_ht_entry_key_set(&e, key, (uint16_t)klen);
	if (!ck_ht_get_spmc(&s->ht, h, &e))
		return NULL;
	return ck_ht_entry_value(&e);
}

int pkv__map_reserve_n_locked(struct map_shard *s, uint64_t more)
{
	uint64_t n = ck_ht_count(&s->ht), want = s->cap;
	void *probe;

	/* The record this write replaces or removes will need a place in a retire batch. */
	if (retire_reserve_locked(s) < 0)
		return -ENOMEM;

	/*
	 * ck_ht grows itself after an insert that takes it past half full, but ignores a failure to
	 * do so; grow first instead, where a failure can still be refused cleanly (M.6). ck_ht does
	 * not export its capacity, so s->cap tracks it: it is exact except after ck_ht grew on its
	 * own because a probe sequence filled up, when it is low.
	 */
	while ((n + more) * 2 > want)
		want *= 2;
	if (want == s->cap)
		return 0;
	if (ck_ht_grow_spmc(&s->ht, want)) {
		s->cap = want;
		__atomic_store_n(&s->grows, s->grows + 1, __ATOMIC_RELAXED);
		return 0;
	}
	/* Refused: either the table is already that large (s->cap was low) or memory ran out. */
	probe = malloc(sizeof(ck_ht_entry_t) * want);
	if (probe == NULL)
		return -ENOMEM;
	free(probe);
	s->cap = want;
	return 0;
}

int pkv__map_reserve_locked(struct map_shard *s)
{
	return pkv__map_reserve_n_locked(s, 1);
}

int pkv__map_replace_locked(struct map_shard *s, uint64_t hash, struct pkv_rec *r, uint64_t seq,
			    int *prev)
{
	ck_ht_hash_t h = { hash };
	ck_ht_entry_t e;

	__atomic_store_n(&r->seq, seq, __ATOMIC_RELEASE); /* M.1, M.2 */
	ck_ht_entry_set(&e, h, r->data, r->klen, r);
	if (!ck_ht_set_spmc(&s->ht, h, &e)) /* M.3: published value, fence, key; M.5 */
		return -ENOMEM;
	s->gen++;
	if (ck_ht_entry_empty(&e)) {
		if (prev)
			*prev = MAP_PREV_NONE;
		return 0;
	}
	if (prev) { /* read before it is retired: once queued, a grace period may free it */
		const struct pkv_rec *old = ck_ht_entry_value(&e);
		*prev = old->flags & PKV_REC_TOMB ? MAP_PREV_TOMB : MAP_PREV_VISIBLE;
	}
	retire_locked(s, ck_ht_entry_value(&e)); /* M.4 */
	return 0;
}

int pkv__map_set_locked(struct map_shard *s, uint64_t hash, struct pkv_rec *r, uint64_t seq)
{
	return pkv__map_replace_locked(s, hash, r, seq, NULL);
}

int pkv__map_del_locked(struct map_shard *s, uint64_t hash, const void *key, size_t klen)
{
	ck_ht_hash_t h = { hash };
	ck_ht_entry_t e;

	ck_ht_entry_key_set(&e, key, (uint16_t)klen);
	if (!ck_ht_remove_spmc(&s->ht, h, &e))
		return PKV_NOTFOUND;
	s->gen++;
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

void pkv__map_clear_locked(struct map_shard *s)
{
	ck_ht_iterator_t it = CK_HT_ITERATOR_INITIALIZER;
	ck_ht_entry_t *e;

	/*
	 * Removal only turns a slot into a tombstone (no allocation, so nothing here can fail,
	 * and the slot array the iterator walks stays where it is); each removed record is
	 * retired (M.4). The shrink then rebuilds a small table when that is worth it.
	 */
	while (ck_ht_next(&s->ht, &it, &e)) {
		ck_ht_hash_t h = { e->hash };
		ck_ht_entry_t k;

		ck_ht_entry_key_set(&k, ck_ht_entry_key(e), ck_ht_entry_key_length(e));
		if (ck_ht_remove_spmc(&s->ht, h, &k))
			retire_locked(s, ck_ht_entry_value(&k));
	}
	s->gen++;
	__atomic_store_n(&s->nkeys, 0, __ATOMIC_RELAXED);
	pkv__map_shrink_locked(s);
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

void pkv__map_reclaim_counts(struct pkv_map *m, uint64_t *retired, uint64_t *reclaimed)
{
	*retired = 0;
	*reclaimed = 0;
	for (unsigned i = 0; i < m->nshards; i++) {
		*retired += __atomic_load_n(&m->shards[i].retired, __ATOMIC_RELAXED);
		*reclaimed += __atomic_load_n(&m->shards[i].reclaimed, __ATOMIC_RELAXED);
	}
}

int pkv__map_range_locked(struct map_shard *s, uint64_t lo, uint64_t hi,
			  int (*fn)(void *arg, uint64_t hash, const struct pkv_rec *r), void *arg)
{
	ck_ht_iterator_t it = CK_HT_ITERATOR_INITIALIZER;
	ck_ht_entry_t *e;
	int rc;

	/* The shard lock keeps the table still (ck_ht may not be iterated during a mutation);
	 * the entry holds the key's full hash, so filtering costs no hashing. */
	while (ck_ht_next(&s->ht, &it, &e)) {
		if (e->hash < lo || e->hash > hi)
			continue;
		rc = fn(arg, e->hash, ck_ht_entry_value(e));
		if (rc != 0)
			return rc;
	}
	return 0;
}
