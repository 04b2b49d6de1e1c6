/* SPDX-License-Identifier: MIT */
/*
 * map.h - the live map: ck_ht tables split into writer shards, records reclaimed through RCU.
 *
 * Concurrency rules (numbered in map.c, M.1 - M.6):
 *   - functions ending in _rcu are called inside an RCU read-side section;
 *   - functions ending in _locked are called with the key's shard lock held;
 *   - a record is immutable once pkv__map_set_locked published it.
 * ck_ht stays behind this header: nothing else in pkv includes ck_ht.h, so the table can be
 * swapped (ck_hs, ck_rhs) without touching the rest.
 */
#ifndef PKV_MAP_H
#define PKV_MAP_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <ck_ht.h>

#include "hash.h"

/*
 * A stored version of a key: key bytes, then value bytes. seq is written last, with release
 * order (map.c M.2), and read first with acquire order by readers.
 */
struct pkv_rec {
	uint64_t seq;
	uint32_t vlen;
	uint16_t klen;
	uint16_t flags;       /* PKV_REC_TOMB */
	unsigned char data[]; /* key[klen], value[vlen] */
};

/* A delete that shadows the key's version in the snapshot base (live map only, never on disk). */
#define PKV_REC_TOMB 0x1u

static inline const void *pkv__rec_key(const struct pkv_rec *r)
{
	return r->data;
}

static inline const void *pkv__rec_val(const struct pkv_rec *r)
{
	return r->data + r->klen;
}


struct retire_batch;

struct map_shard {
	/* Read by every reader: alone in its cache line, written only when the table grows. */
	ck_ht_t ht __attribute__((aligned(64)));
	/* The writer's side, in a line of its own so writes do not evict readers' copies. */
	pthread_mutex_t lock __attribute__((aligned(64)));
	struct retire_batch *retire; /* records waiting for a grace period, guarded by lock */
	uint64_t cap;                /* ck_ht's capacity as far as we know, guarded by lock */
	uint64_t puts, dels;         /* written under lock, read with relaxed atomics */
	int64_t nkeys;               /* visible keys of this shard (live and base), likewise */
} __attribute__((aligned(64)));

struct pkv_map {
	struct map_shard *shards;
	unsigned nshards;
	unsigned shard_shift; /* shard = hash >> shard_shift */
	struct ck_malloc alloc;
};

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

/* The current record of @key, or NULL. Valid until the caller leaves its read-side section. */
const struct pkv_rec *pkv__map_get_rcu(struct pkv_map *m, uint64_t hash, const void *key,
				       size_t klen);

/* Allocate an unpublished record holding @key and @val; NULL on ENOMEM. */
struct pkv_rec *pkv__rec_new(const void *key, size_t klen, const void *val, size_t vlen);

/* Allocate an unpublished tombstone for @key; NULL on ENOMEM. */
struct pkv_rec *pkv__rec_new_tomb(const void *key, size_t klen);

/* Free a record that was never published. */
void pkv__rec_free(struct pkv_rec *r);

/* The current record of @key as the shard's writer sees it, or NULL. */
const struct pkv_rec *pkv__map_find_locked(struct map_shard *s, uint64_t hash, const void *key,
					   size_t klen);

/*
 * Make room for one more key in @s, growing the table now rather than halfway through a write
 * that has already reached the WAL. 0 or -ENOMEM.
 */
int pkv__map_reserve_locked(struct map_shard *s);

/*
 * Publish @r (whose seq the caller set) as the current version of its key; the replaced record,
 * if any, is retired. Returns 0, or -ENOMEM if ck_ht could not grow (nothing was published).
 */
int pkv__map_set_locked(struct map_shard *s, uint64_t hash, struct pkv_rec *r, uint64_t seq);

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

/* Hand every retired record of every shard to RCU now (close, tests). */
void pkv__map_flush_retired(struct pkv_map *m);


#endif /* PKV_MAP_H */
