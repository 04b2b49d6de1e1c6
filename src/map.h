/* SPDX-License-Identifier: MIT */
/*
 * map.h - the live map: ck_ht tables split into writer shards, records reclaimed through RCU.
 *
 * Concurrency rules (numbered in map.c, M.1 - M.7):
 *   - functions ending in _rcu are called inside an RCU read-side section;
 *   - functions ending in _locked are called with the key's shard lock held;
 *   - a record is immutable once pkv__map_set_locked published it.
 * ck_ht stays behind this header: nothing else in pkv includes ck_ht.h, so the table can be
 * swapped (ck_hs, ck_rhs) without touching the rest.
 */
#ifndef PKV_MAP_H
#define PKV_MAP_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <ck_ht.h>
#include <ck_pr.h>

#include "hash.h"

/*
 * A stored version of a key: key bytes, then value bytes. seq is written last, with release
 * order (map.c M.2), and read first with acquire order by readers.
 */
struct pkv_rec {
	uint64_t seq;
	uint32_t vlen;
	uint16_t klen;
	uint16_t flags;       /* PKV_REC_TOMB, PKV_REC_EXPIRES */
	unsigned char data[]; /* key[klen], value[vlen], then expires_ms if PKV_REC_EXPIRES */
};

/* A delete that shadows the key's version in the snapshot base (live map only, never on disk). */
#define PKV_REC_TOMB 0x1u
/*
 * The record expires: 8 more bytes after the value hold expires_ms (CLOCK_REALTIME ms,
 * little-endian, unaligned: read with memcpy). From that instant on the key reads as absent
 * everywhere (a reader reads the clock only when a record has this flag).
 */
#define PKV_REC_EXPIRES 0x2u

static inline const void *pkv__rec_key(const struct pkv_rec *r)
{
	return r->data;
}

static inline const void *pkv__rec_val(const struct pkv_rec *r)
{
	return r->data + r->klen;
}

/* The record's expiry (ms since the epoch), or 0 if it never expires. */
static inline uint64_t pkv__rec_expires(const struct pkv_rec *r)
{
	uint64_t e = 0;

	if (r->flags & PKV_REC_EXPIRES)
		memcpy(&e, r->data + r->klen + r->vlen, sizeof(e));
	return e;
}

/* Is @r, a visible version (not a tombstone), expired at @now_ms? */
static inline bool pkv__rec_expired(const struct pkv_rec *r, uint64_t now_ms)
{
	uint64_t e = pkv__rec_expires(r);

	return e != 0 && e <= now_ms;
}


struct retire_batch;

/* Most shards a map has (pkv_options.shards). */
#define PKV_MAX_SHARDS 4096u

struct map_shard {
	/* Read by every reader: alone in its cache line, written only when the table grows. */
	ck_ht_t ht __attribute__((aligned(64)));
	/* The writer's side, in a line of its own so writes do not evict readers' copies. */
	pthread_mutex_t lock __attribute__((aligned(64)));
	struct retire_batch *retire; /* records waiting for a grace period, guarded by lock */
	uint64_t cap;                /* ck_ht's capacity as far as we know, guarded by lock */
	uint64_t puts, dels;         /* written under lock, read with relaxed atomics */
	int64_t nkeys;               /* visible keys of this shard (live and base), likewise */
	uint64_t gen;                /* +1 at every change of the table's entries, under lock */
	uint64_t grows;              /* table growths, written under lock, read relaxed */
	/* Reclamation (M.4): records retired, written under lock and read with relaxed atomics;
	 * records reclaimed after their grace period, added to by the RCU callback. */
	uint64_t retired, reclaimed;
} __attribute__((aligned(64)));

struct pkv_map {
	struct map_shard *shards;
	unsigned nshards;
	unsigned shard_shift; /* shard = hash >> shard_shift */
	bool inline_probe;    /* struct pkv__ck_map matches this ck_ht (checked at init) */
	uint64_t id;          /* unique in the process (never reused): names the map in caches */
	struct ck_malloc alloc;
	/*
	 * Batch visibility to multi-gets (map.c M.7): bumped only by batches that write more than
	 * one key, each counter alone in its cache line.
	 */
	uint64_t batch_begun __attribute__((aligned(64)));
	uint64_t batch_done __attribute__((aligned(64)));
};

/*
 * Batch visibility (map.c M.7). A batch that writes more than one key calls
 * pkv__map_batch_begin_locked once it holds every shard lock it needs and has its sequence
 * number, publishes its records, then calls pkv__map_batch_end_locked before unlocking.
 */
static inline void pkv__map_batch_begin_locked(struct pkv_map *m)
{
	__atomic_fetch_add(&m->batch_begun, 1, __ATOMIC_SEQ_CST);
}

static inline void pkv__map_batch_end_locked(struct pkv_map *m)
{
	__atomic_fetch_add(&m->batch_done, 1, __ATOMIC_RELEASE);
}

/*
 * A multi-get starts here: waits (pausing) while a batch is in flight, and returns the batch
 * count to hand to pkv__map_batch_read_retry_rcu after the lookups.
 */
static inline uint64_t pkv__map_batch_read_begin_rcu(struct pkv_map *m)
{
	for (;;) {
		uint64_t d = __atomic_load_n(&m->batch_done, __ATOMIC_ACQUIRE);
		uint64_t b = __atomic_load_n(&m->batch_begun, __ATOMIC_ACQUIRE);

		if (b == d)
			return b;
		ck_pr_stall();
	}
}

/* After the lookups: true if a batch began since @begun (the lookups must be redone). */
static inline bool pkv__map_batch_read_retry_rcu(struct pkv_map *m, uint64_t begun)
{
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	return __atomic_load_n(&m->batch_begun, __ATOMIC_ACQUIRE) != begun;
}

/* Set up @m with @nshards (a power of two) sized for @capacity_hint keys; 0 or -ENOMEM. */
int pkv__map_init(struct pkv_map *m, unsigned nshards, size_t capacity_hint);

/* Free every table and record. No reader or writer may be running; waits for pending frees. */
void pkv__map_destroy(struct pkv_map *m);

/*
 * The key's hash: the format's (hash.h), which is also what ck_ht would compute with the
 * shards' seed, so the map's tables and the snapshot index agree on every key.
 */
static inline uint64_t pkv__map_hash(struct pkv_map *m, const void *key, size_t klen)
{
	(void)m;
	return pkv__hash(key, klen);
}

static inline struct map_shard *pkv__map_shard(struct pkv_map *m, uint64_t hash)
{
	return &m->shards[m->shard_shift >= 64 ? 0 : hash >> m->shard_shift];
}

/*
 * ck_ht 0.7's private table header (struct ck_ht_map in ck_ht.c), mirrored so that readers can
 * probe inline and a multi-get can prefetch slots. pkv__map_init checks the mirror against a
 * table it has just made (capacity, mask, where the slots start: ht_malloc returned that block);
 * when the check fails (a different ck), m->inline_probe stays false and every lookup goes
 * through ck_ht_get_spmc instead. Readers only load from it.
 */
struct pkv__ck_map {
	unsigned int mode;
	uint64_t deletions;
	uint64_t probe_maximum;
	uint64_t probe_length;
	uint64_t probe_limit;
	uint64_t size;
	uint64_t n_entries;
	uint64_t mask;
	uint64_t capacity;
	uint64_t step;
	void *probe_bound; /* NULL: pkv never asks for CK_HT_WORKLOAD_DELETE */
	ck_ht_entry_t *entries;
};

#ifdef CK_HT_PP
#error "pkv's inline probe mirrors ck_ht without pointer packing (Debian's build)"
#endif
#define PKV_CK_BUCKET 2u /* ck_ht entries per 64-byte line without pointer packing */

/* ck_ht_map_probe_next(), as ck_ht.c computes the next bucket of a probe sequence. */
static inline uint64_t pkv__ck_probe_next(const struct pkv__ck_map *map, uint64_t offset,
					  uint64_t h, uint64_t probes)
{
	unsigned long level = (unsigned long)probes >> 1;
	uint64_t r = (h >> map->step) >> level;
	uint64_t stride = (r & ~(uint64_t)(PKV_CK_BUCKET - 1)) << 1 | (r & (PKV_CK_BUCKET - 1));

	return (offset + level + (stride | PKV_CK_BUCKET)) & map->mask;
}

/*
 * May pkv's own code read @m's ck_ht tables (inline probes, prefetching slot lines)? Not under
 * TSan: the tables are written by uninstrumented libck, whose publishing stores TSan cannot see,
 * so every read of them stays inside libck there (see pkv__map_get_rcu).
 */
static inline bool pkv__map_inline_ok(const struct pkv_map *m)
{
#ifdef PKV_TSAN
	(void)m;
	return false;
#else
	return m->inline_probe;
#endif
}

/* The 64-byte line of @ht's slots where the probe for @hash starts (for prefetching). */
static inline const void *pkv__map_slot_line_rcu(const ck_ht_t *ht, uint64_t hash)
{
	const struct pkv__ck_map *map = __atomic_load_n((struct pkv__ck_map **)&ht->map,
							 __ATOMIC_ACQUIRE);

	return (const void *)((uintptr_t)(map->entries + (hash & map->mask)) & ~(uintptr_t)63);
}

/*
 * Prefetch the record that the first slot line of @hash's probe holds for a key of @klen bytes,
 * if a slot there carries the full hash: the record's head and the end of its key, what a lookup
 * or an overwrite compares. Call it once the line itself had time to arrive (after a
 * pkv__map_slot_line_rcu prefetch and other work). Only an address to prefetch: the slots are
 * read without ordering, and the lookup or the write reads them properly.
 */
static inline void pkv__map_prefetch_rec_rcu(const ck_ht_t *ht, uint64_t hash, size_t klen)
{
	const ck_ht_entry_t *line = pkv__map_slot_line_rcu(ht, hash);

	for (unsigned j = 0; j < PKV_CK_BUCKET; j++) {
		uint64_t eh = __atomic_load_n(&line[j].hash, __ATOMIC_RELAXED);
		uintptr_t v = __atomic_load_n(&line[j].value, __ATOMIC_RELAXED);

		if (eh == hash && v != 0 && v != CK_HT_KEY_TOMBSTONE) {
			__builtin_prefetch((const void *)v);
			__builtin_prefetch((const char *)v + sizeof(struct pkv_rec) + klen - 1);
		}
	}
}

/* Key equality; keys of 8 to 16 bytes (the common case) in two overlapping 8-byte compares. */
static inline bool pkv__key_eq(const void *a, const void *b, size_t n)
{
	if (n >= 8 && n <= 16) {
		uint64_t a0, a1, b0, b1;

		memcpy(&a0, a, 8);
		memcpy(&b0, b, 8);
		memcpy(&a1, (const unsigned char *)a + n - 8, 8);
		memcpy(&b1, (const unsigned char *)b + n - 8, 8);
		return ((a0 ^ b0) | (a1 ^ b1)) == 0;
	}
	return memcmp(a, b, n) == 0;
}

/*
 * The reader's probe of ck_ht_get_spmc (ck_ht.c: ck_ht_map_probe_rd without pointer packing),
 * inline and with the key compared in place: the same loads in the same order, the same
 * restarts when the table's deletion counter moves (a slot relocated or a tombstone reused,
 * M.5). Returns the record, or NULL.
 */
static inline const struct pkv_rec *pkv__ck_probe_rcu(const ck_ht_t *ht, uint64_t h,
						      const void *key, size_t klen)
{
	const struct pkv__ck_map *map;
	const ck_ht_entry_t *bucket, *cursor;
	uint64_t d, d_inner, probe_max, offset, probes, i, value;
	uintptr_t k;

restart:
	map = __atomic_load_n((struct pkv__ck_map **)&ht->map, __ATOMIC_ACQUIRE);
	d = __atomic_load_n(&map->deletions, __ATOMIC_ACQUIRE);
retry:
	probe_max = __atomic_load_n(&map->probe_maximum, __ATOMIC_RELAXED);
	offset = h & map->mask;
	probes = 0;
	for (i = 0; i < map->probe_limit; i++) {
		bucket = (const ck_ht_entry_t *)((uintptr_t)(map->entries + offset) &
						 ~(uintptr_t)63);
		for (unsigned j = 0; j < PKV_CK_BUCKET; j++) {
			if (probes++ > probe_max)
				goto miss;
			cursor = bucket + ((j + offset) & (PKV_CK_BUCKET - 1));
			d_inner = __atomic_load_n(&map->deletions, __ATOMIC_ACQUIRE);
			k = __atomic_load_n(&cursor->key, __ATOMIC_ACQUIRE); /* ck: fence_load */
			if (k == CK_HT_KEY_TOMBSTONE)
				continue;
			if (k == CK_HT_KEY_EMPTY)
				goto miss;
			if (__atomic_load_n(&cursor->key_length, __ATOMIC_RELAXED) != klen ||
			    __atomic_load_n(&cursor->hash, __ATOMIC_RELAXED) != h)
				continue;
			value = __atomic_load_n(&cursor->value, __ATOMIC_RELAXED);
			if (__atomic_load_n(&map->deletions, __ATOMIC_ACQUIRE) != d_inner)
				goto retry;
			if (pkv__key_eq((const void *)k, key, klen)) {
				if (__atomic_load_n(&map->deletions, __ATOMIC_ACQUIRE) != d)
					goto restart;
				return (const struct pkv_rec *)value;
			}
		}
		offset = pkv__ck_probe_next(map, offset, h, probes);
	}
miss:
	if (__atomic_load_n(&map->deletions, __ATOMIC_ACQUIRE) != d)
		goto restart;
	return NULL;
}

/*
 * The current record of @key, or NULL. Valid until the caller leaves its read-side section.
 * Inline: with the hash and the copy, it is the whole get path.
 */
static inline const struct pkv_rec *pkv__map_get_rcu(struct pkv_map *m, uint64_t hash,
						     const void *key, size_t klen)
{
	struct map_shard *s = pkv__map_shard(m, hash);
	const struct pkv_rec *r;

	if (__builtin_expect(pkv__map_inline_ok(m), 1)) {
		r = pkv__ck_probe_rcu(&s->ht, hash, key, klen);
	} else {
		ck_ht_hash_t h = { hash };
		ck_ht_entry_t e;

		ck_ht_entry_key_set(&e, key, (uint16_t)klen);
		r = ck_ht_get_spmc(&s->ht, h, &e) ? ck_ht_entry_value(&e) : NULL;
	}
	if (r != NULL)
		(void)__atomic_load_n(&r->seq, __ATOMIC_ACQUIRE); /* map.c M.2 */
	return r;
}

/* Allocate an unpublished record holding @key and @val; NULL on ENOMEM. */
struct pkv_rec *pkv__rec_new(const void *key, size_t klen, const void *val, size_t vlen);

/* As pkv__rec_new, for a version that expires at @expires_ms (0: never). */
struct pkv_rec *pkv__rec_new_x(const void *key, size_t klen, const void *val, size_t vlen,
			       uint64_t expires_ms);

/* Allocate an unpublished tombstone for @key; NULL on ENOMEM. */
struct pkv_rec *pkv__rec_new_tomb(const void *key, size_t klen);

/* Free a record that was never published. */
void pkv__rec_free(struct pkv_rec *r);

/* The current record of @key as the shard's writer sees it, or NULL. */
const struct pkv_rec *pkv__map_find_locked(struct map_shard *s, uint64_t hash, const void *key,
					   size_t klen);

/*
 * Make room for one more key in @s, growing the table now rather than halfway through a write
 * that has already reached the WAL, and for the record it replaces in a retire batch (so that
 * retiring it never has to wait for a grace period: a writer may be inside a read section).
 * 0 or -ENOMEM.
 */
int pkv__map_reserve_locked(struct map_shard *s);

/* The same for @more new keys at once: a batch's keys of one shard (M.6 for pkv_write). */
int pkv__map_reserve_n_locked(struct map_shard *s, uint64_t more);

/*
 * Publish @r (whose seq the caller set) as the current version of its key; the replaced record,
 * if any, is retired. Returns 0, or -ENOMEM if ck_ht could not grow (nothing was published).
 */
int pkv__map_set_locked(struct map_shard *s, uint64_t hash, struct pkv_rec *r, uint64_t seq);

/* What pkv__map_replace_locked found in place of the new record. */
enum map_prev {
	MAP_PREV_NONE = 0, /* no live entry */
	MAP_PREV_VISIBLE,  /* a value */
	MAP_PREV_TOMB,     /* a tombstone */
};

/* pkv__map_set_locked that also says what it replaced, in *@prev (OUT, enum map_prev). */
int pkv__map_replace_locked(struct map_shard *s, uint64_t hash, struct pkv_rec *r, uint64_t seq,
			    int *prev);

/* Remove @key; the removed record is retired. 0 or PKV_NOTFOUND. */
int pkv__map_del_locked(struct map_shard *s, uint64_t hash, const void *key, size_t klen);

/*
 * Copy the shard's current records (tombstones included) into a new array (*@out, freed by the
 * caller). The records stay valid while the caller stays in its read-side section. Returns the
 * count, or -ENOMEM.
 */
long pkv__map_collect_locked(struct map_shard *s, const struct pkv_rec ***out);

/* Remove @r if it is still the current record of its key; the record is retired. */
void pkv__map_drop_locked(struct pkv_map *m, struct map_shard *s, const struct pkv_rec *r);

/* Rebuild the shard's table at a size fit for its count if it is mostly empty (after a
 * compaction dropped what the snapshot holds); readers switch tables under RCU. */
void pkv__map_shrink_locked(struct map_shard *s);

/* Remove every entry of @s (pkv_clear, and its replay); the records are retired. */
void pkv__map_clear_locked(struct map_shard *s);
/*
 * Call @fn for every entry of shard @s (tombstones included) whose key hash lies in [@lo, @hi],
 * in table order. Returns 0 or the first non-zero value @fn returned.
 */
int pkv__map_range_locked(struct map_shard *s, uint64_t lo, uint64_t hi,
			  int (*fn)(void *arg, uint64_t hash, const struct pkv_rec *r), void *arg);

/* Hand every retired record of every shard to RCU now (close, tests). */
void pkv__map_flush_retired(struct pkv_map *m);

/*
 * Records of @m retired so far (replaced or removed, M.4) into *@retired, and records reclaimed
 * so far (freed or given to the record pool by the RCU callback, after a grace period) into
 * *@reclaimed, summed over the shards (OUT, both). Each count is read with a relaxed load: exact
 * once writers and callbacks are done (urcu_memb_barrier). A retired record waits in its shard's
 * batch until the batch fills or pkv__map_flush_retired hands it to RCU. For tests.
 */
void pkv__map_reclaim_counts(struct pkv_map *m, uint64_t *retired, uint64_t *reclaimed);


#endif /* PKV_MAP_H */
