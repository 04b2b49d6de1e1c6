/* SPDX-License-Identifier: MIT */
/*
 * write.c - the public write path: pkv_put, pkv_del (and their _ex forms), pkv_put_expire,
 * batches (pkv_write) and pkv_clear.
 *
 * The write path, in order (each step's guarantee is numbered where it is implemented):
 *   1. allocate the record                          (may fail: nothing happened)
 *   2. lock the key's shard; make room in its table (map.c M.6; may fail: nothing happened)
 *   3. append to the WAL lane: room, seq, copy      (wal.c W.3: may fail only before the seq)
 *   4. publish in the map, retire the old record    (map.c M.1 - M.4)
 *   5. unlock the shard
 *   6. wait until every smaller seq is written      (wal.c W.5)
 *   7. under PKV_DURABLE_POWER, join a group commit (sync.c S.1 - S.3)
 * The shard lock spans 3 and 4, so the order of one key's records in the log is the order in
 * which they were applied to the map.
 *
 * Batches and clear (tests cite these):
 *  B.1  A batch takes the locks of every shard its writes and conditions touch in ascending
 *       shard order, before it looks at anything; pkv_clear takes all of them the same way
 *       (after compact_mu, as a compaction does). One global order: no two of them can wait
 *       for each other in a cycle, and single writes hold one shard lock only.
 *  B.2  Under those locks the conditions are checked against the state before the batch (live
 *       map, then the base; a tombstone or an expired version is absent: apply.c), then every
 *       write is planned (the step that can fail, for want of memory); only then are the one
 *       sequence number and the one WAL record taken. A failed condition or plan writes
 *       nothing and takes no number. Everything that allocates (the records, the plan arrays
 *       of a large batch) happens before the locks.
 *  B.3  One record per batch (docs/format.md): a crash keeps all of it or none. The record lists
 *       each distinct key once, with its last write in the batch (a later op on a key wins),
 *       and the map gets only that write, so no reader ever sees a batch's intermediate value
 *       of a key. A batch that reduces to one key is logged as that key's own record type.
 *  B.4  A batch of more than one key publishes between the map's batch_begun and batch_done
 *       counters (map.c M.7), under all its locks, so pkv_get_many never returns part of it.
 *       pkv_clear does the same.
 *  B.5  pkv_clear logs one clear record, then empties every shard and drops the base image
 *       (apply.c): recovery disregards the base and every earlier record at it (recovery.c
 *       R.11), and the next compaction deletes the dropped snapshot (compact.c C.10).
 *  B.6  A batch may prefetch the map's slots and records of its keys: a small one before it
 *       takes the locks (inside a read section, the tables being the readers' too), a large one
 *       a few keys ahead of its commits (under the locks). It only prefetches, so what it reads
 *       under the locks (B.2) is all that decides.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include "apply.h"
#include "compact.h"
#include "db.h"
#include "errors.h"
#include "rcu.h"
#include "store.h"

/* A put (WAL_PUT, or WAL_PUTX with @expires_ms) or a delete (WAL_DEL) of one key. */
static int db_write(struct pkv *db, enum wal_rec_type type, const void *key, size_t klen,
		    const void *val, size_t vlen, uint64_t expires_ms, unsigned flags,
		    uint64_t *seq_out)
{
	struct pkv_rec *rec = NULL;
	struct write_plan plan = { 0 };
	struct map_shard *s;
	uint64_t h;
	int64_t seq = 0;
	bool durable, rolled = false;
	int r = 0;

	if (pkv__store_readonly(db))
		return PKV_EREADONLY;
	pkv__rcu_enter();
	durable = !db->in_memory &&
		  (db->opts.durability == PKV_DURABLE_POWER || (flags & PKV_WRITE_POWER));
	if (durable && pkv__in_read_section())
		return PKV_EINVAL; /* read.c RD.4: it waits for other threads that may wait for us */
	if (durable) /* sync.c S.5: a group commit waits for writers counted here */
		__atomic_add_fetch(&db->sync.inflight, 1, __ATOMIC_RELEASE);
	if (type != WAL_DEL) {
		rec = pkv__rec_new_x(key, klen, val, vlen, expires_ms);
		if (rec == NULL) {
			r = -ENOMEM;
			goto out;
		}
	}
	h = pkv__map_hash(&db->map, key, klen);
	s = pkv__map_shard(&db->map, h);

	pthread_mutex_lock(&s->lock);
	if (type == WAL_DEL) {
		/* An expired key is absent: its delete is PKV_NOTFOUND, like any absent key's. */
		struct apply_clock clk = { 0 };
		uint64_t ver;

		r = pkv__apply_version_locked(db, s, h, key, klen, &clk, &ver);
		if (r == 0 && ver == 0)
			r = PKV_NOTFOUND;
		else if (r == PKV_ECORRUPT)
			r = 0; /* a damaged base copy: the plan's own rule decides (apply.c) */
		if (r < 0)
			goto unlock;
	}
	r = pkv__apply_plan_locked(db, s, h, key, klen, rec, 0, &plan);
	if (r < 0)
		goto unlock;
	if (db->in_memory)
		seq = (int64_t)__atomic_add_fetch(&db->mem_seq, 1, __ATOMIC_RELAXED);
	else if (type == WAL_PUTX)
		seq = pkv__wal_append_src(&db->wal,
					  &(struct wal_src){ .type = WAL_PUTX, .key = key,
							     .klen = (uint32_t)klen, .val = val,
							     .vlen = (uint32_t)vlen,
							     .expires_ms = expires_ms },
					  &rolled);
	else
		seq = pkv__wal_append(&db->wal, type, key, (uint32_t)klen, val, (uint32_t)vlen,
				      &rolled);
	if (seq < 0) {
		r = (int)seq;
		goto unlock;
	}
	r = pkv__apply_commit_locked(db, s, h, key, klen, &plan, (uint64_t)seq);
	if (r < 0) {
		/*
		 * Unreachable unless memory ran out and ck_ht also had to grow for a full probe
		 * sequence (map.c M.6). The record is in the log but not in the map: stop writing
		 * rather than let the two disagree further.
		 */
		pkv__store_set_readonly(db, r);
		goto unlock;
	}
	rec = NULL;
	if (seq_out)
		*seq_out = (uint64_t)seq;
	if (type != WAL_DEL)
		__atomic_store_n(&s->puts, s->puts + 1, __ATOMIC_RELAXED);
	else
		__atomic_store_n(&s->dels, s->dels + 1, __ATOMIC_RELAXED);
unlock:
	pthread_mutex_unlock(&s->lock);
	if (rolled) { /* wal.c is a leaf: the lane asked for a spare, and the WAL grew */
		pkv__sync_kick(db);
		pkv__compactor_kick(db);
	}
	if (plan.rec && plan.rec != rec)
		pkv__rec_free(plan.rec); /* an unused tombstone */
	if (rec)
		pkv__rec_free(rec);
	if (r < 0 || db->in_memory)
		goto out;
	pkv__wal_wait_written(&db->wal, (uint64_t)seq);
	if (durable)
		r = pkv__sync_wait(db, (uint64_t)seq);
out:
	if (durable)
		__atomic_sub_fetch(&db->sync.inflight, 1, __ATOMIC_RELEASE);
	return r;
}

/* A put's argument checks, then the write: expires_ms 0 is "never" (as in pkv_item.expires_ms). */
static int put_checked(pkv *db, const void *key, size_t klen, const void *val, size_t vlen,
		       uint64_t expires_ms, unsigned flags, uint64_t *seq_out)
{
	int r;

	if (db == NULL || (val == NULL && vlen > 0) || (flags & ~PKV_WRITE_POWER))
		return PKV_EINVAL;
	r = pkv__db_check_key(key, klen);
	if (r < 0)
		return r;
	if (vlen > PKV_MAX_VALUE)
		return PKV_ETOOBIG;
	return db_write(db, expires_ms ? WAL_PUTX : WAL_PUT, key, klen, val, vlen, expires_ms,
			flags, seq_out);
}

PKV_EXPORT int pkv_put_seq(pkv *db, const void *key, size_t klen, const void *val, size_t vlen,
			   unsigned flags, uint64_t *seq_out)
{
	return put_checked(db, key, klen, val, vlen, 0, flags, seq_out);
}

PKV_EXPORT int pkv_put_ex(pkv *db, const void *key, size_t klen, const void *val, size_t vlen,
			  unsigned flags)
{
	return pkv_put_seq(db, key, klen, val, vlen, flags, NULL);
}

PKV_EXPORT int pkv_put(pkv *db, const void *key, size_t klen, const void *val, size_t vlen)
{
	return pkv_put_ex(db, key, klen, val, vlen, 0);
}

PKV_EXPORT int pkv_del_seq(pkv *db, const void *key, size_t klen, unsigned flags,
			   uint64_t *seq_out)
{
	int r;

	if (db == NULL || (flags & ~PKV_WRITE_POWER))
		return PKV_EINVAL;
	r = pkv__db_check_key(key, klen);
	if (r < 0)
		return r;
	return db_write(db, WAL_DEL, key, klen, NULL, 0, 0, flags, seq_out);
}

PKV_EXPORT int pkv_del_ex(pkv *db, const void *key, size_t klen, unsigned flags)
{
	return pkv_del_seq(db, key, klen, flags, NULL);
}

PKV_EXPORT int pkv_del(pkv *db, const void *key, size_t klen)
{
	return pkv_del_ex(db, key, klen, 0);
}

PKV_EXPORT int pkv_put_expire(pkv *db, const void *key, size_t klen, const void *val, size_t vlen,
			      uint64_t expires_ms, unsigned flags)
{
	return put_checked(db, key, klen, val, vlen, expires_ms, flags, NULL);
}

/* ---- batches ------------------------------------------------------------------------------ */

static bool same_key(const pkv_batch *b, const struct batch_key *x, const struct batch_key *y)
{
	const struct batch_op *ox = &b->ops[x->op], *oy = &b->ops[y->op];

	return x->hash == y->hash && ox->klen == oy->klen &&
	       memcmp(pkv__batch_key(b, ox), pkv__batch_key(b, oy), ox->klen) == 0;
}

/*
 * By hash, then op index. The shard is the hash's top bits (map.h), so this is ascending shard
 * order too (B.1), and the keys of one hash are adjacent, latest op last.
 */
static int key_cmp(const void *xp, const void *yp)
{
	const struct batch_key *x = xp, *y = yp;

	if (x->hash != y->hash)
		return x->hash < y->hash ? -1 : 1;
	return x->op < y->op ? -1 : x->op > y->op;
}

static void sort_keys(struct batch_key *k, uint32_t n)
{
	if (n > 16) {
		qsort(k, n, sizeof(*k), key_cmp);
		return;
	}
	for (uint32_t i = 1; i < n; i++) { /* small batches: insertion sort, no calls */
		struct batch_key t = k[i];
		uint32_t j = i;

		for (; j > 0 && key_cmp(&k[j - 1], &t) > 0; j--)
			k[j] = k[j - 1];
		k[j] = t;
	}
}

/*
 * sort_keys for a large batch, without qsort's calls and merges (they were a fifth of a bulk
 * load's instructions, docs/benchmarks.md "Batches"): a counting sort by shard into @tmp, stable
 * so that each shard's keys keep their op order, then each shard's run (a few keys, with many
 * shards) by sort_keys. @cnt has room for @nshards + 1 counters. The result is in @k.
 */
static void sort_keys_large(struct batch_key *k, struct batch_key *tmp, uint32_t *cnt,
			    uint32_t nshards, uint32_t n)
{
	uint32_t start = 0;

	memset(cnt, 0, ((size_t)nshards + 1) * sizeof(*cnt));
	for (uint32_t i = 0; i < n; i++)
		cnt[k[i].shard + 1]++;
	for (uint32_t s = 0; s < nshards; s++)
		cnt[s + 1] += cnt[s]; /* cnt[s]: where shard s's run starts */
	for (uint32_t i = 0; i < n; i++)
		tmp[cnt[k[i].shard]++] = k[i]; /* now cnt[s]: where it ends */
	memcpy(k, tmp, (size_t)n * sizeof(*k));
	for (uint32_t s = 0; s < nshards; s++) {
		sort_keys(k + start, cnt[s] - start);
		start = cnt[s];
	}
}

/*
 * B.3: keep one entry per distinct key, its last op; @k sorted by sort_keys. Keys that share
 * a hash are compared among themselves only (a run is almost always one key long). Returns the
 * number kept, still in hash order.
 */
static uint32_t dedup_keys(const pkv_batch *b, struct batch_key *k, uint32_t n)
{
	uint32_t out = 0;

	for (uint32_t i = 0; i < n;) {
		uint32_t j = i, run = out;

		while (j < n && k[j].hash == k[i].hash)
			j++;
		for (; i < j; i++) {
			uint32_t m = run;

			while (m < out && !same_key(b, &k[m], &k[i]))
				m++;
			k[m] = k[i]; /* a later op of a kept key replaces it (ops ascend) */
			if (m == out)
				out++;
		}
	}
	return out;
}

static uint32_t shard_of(struct pkv *db, uint64_t hash)
{
	return (uint32_t)(pkv__map_shard(&db->map, hash) - db->map.shards);
}

static void mark(uint64_t *set, uint32_t *lo, uint32_t *hi, uint32_t shard)
{
	set[shard / 64] |= 1ull << (shard % 64);
	if (shard < *lo)
		*lo = shard;
	if (shard > *hi)
		*hi = shard;
}

/*
 * B.1: ascending shard order, the one global order every batch and clear takes locks in. The
 * set is walked a word at a time, set bits only: a batch's few shards are spread over the whole
 * range, and testing every shard between the lowest and the highest was a tenth of a small
 * batch's instructions (docs/benchmarks.md, "Batches").
 */
static void lock_set(struct pkv *db, const uint64_t *set, uint32_t lo, uint32_t hi)
{
	for (uint32_t w = lo / 64; w <= hi / 64; w++)
		for (uint64_t bits = set[w]; bits; bits &= bits - 1)
			pthread_mutex_lock(&db->map.shards[w * 64 +
							   (uint32_t)__builtin_ctzll(bits)].lock);
}

/* The reverse order; any order would do for unlocking, this one mirrors lock_set. */
static void unlock_set(struct pkv *db, const uint64_t *set, uint32_t lo, uint32_t hi)
{
	for (uint32_t w = hi / 64 + 1; w-- > lo / 64;)
		for (uint64_t bits = set[w]; bits; bits &= ~(1ull << (63 - __builtin_clzll(bits))))
			pthread_mutex_unlock(&db->map.shards[w * 64 + 63 -
							 (uint32_t)__builtin_clzll(bits)].lock);
}

static bool cond_holds(uint64_t want, uint64_t have)
{
	return want == PKV_ANY ? have != 0 : want == have;
}

/* Batches this small plan on the stack: no allocation beyond their records. */
#define SMALL_BATCH 16

/*
 * Batches up to this many ops prefetch (B.6): their lines stay in L1 until they are used. A
 * larger batch's first lines would be evicted by its last ones before the locks are taken.
 */
#define PREFETCH_OPS 64

/* A larger batch prefetches records this many keys ahead of its commits, slot lines twice that. */
#define PREFETCH_AHEAD 8

/*
 * B.6 for a batch of more than PREFETCH_OPS ops, before the commit of key @i: the slot line
 * 2 * PREFETCH_AHEAD keys ahead, and the record in the line PREFETCH_AHEAD keys ahead, which was
 * prefetched that many commits ago. The caller holds the keys' shard locks: the tables stay
 * put, as a read section would keep them.
 */
static void prefetch_ahead(struct pkv *db, const pkv_batch *b, const struct batch_key *k,
			   uint32_t n, uint32_t i)
{
	uint32_t j = i + PREFETCH_AHEAD, l = i + 2 * PREFETCH_AHEAD;

	if (l < n)
		__builtin_prefetch(pkv__map_slot_line_rcu(&db->map.shards[k[l].shard].ht,
							  k[l].hash));
	if (j < n)
		pkv__map_prefetch_rec_rcu(&db->map.shards[k[j].shard].ht, k[j].hash,
					  b->ops[k[j].op].klen);
}

PKV_EXPORT int pkv_write(pkv *db, pkv_batch *b, unsigned flags, uint64_t *seq_out)
{
	struct batch_key keys_s[SMALL_BATCH], *keys = keys_s;
	struct write_plan plans_s[SMALL_BATCH], *plans = plans_s;
	uint64_t chash_s[SMALL_BATCH], *chash = chash_s;
	uint64_t set[(PKV_MAX_SHARDS + 63) / 64];
	uint32_t nkeys = 0, lo = UINT32_MAX, hi = 0;
	struct apply_clock clk = { 0 };
	struct wal_src src;
	bool durable = false, locked = false, rolled = false, prefetch, roll;
	int64_t seq = 0;
	int r = 0;

	if (db == NULL || b == NULL || (flags & ~PKV_WRITE_POWER))
		return PKV_EINVAL;
	if (b->nops == 0 && b->nconds == 0) {
		if (seq_out)
			*seq_out = 0;
		return 0;
	}
	if (b->nops > 0 && pkv__store_readonly(db))
		return PKV_EREADONLY;
	/* read.c RD.4: a power-durable write waits for a round that may wait for this thread. */
	if (b->nops > 0 && !db->in_memory && pkv__in_read_section() &&
	    (db->opts.durability == PKV_DURABLE_POWER || (flags & PKV_WRITE_POWER)))
		return PKV_EINVAL;
	pkv__rcu_enter();

	/* Everything that allocates comes before any lock (B.2). */
	memset(set, 0, ((db->map.nshards + 63) / 64) * sizeof(*set));
	if (b->nops > SMALL_BATCH) {
		/* The keys, the sort's second array, and its counters (sort_keys_large). */
		keys = malloc((size_t)b->nops * 2 * sizeof(*keys) +
			      ((size_t)db->map.nshards + 1) * sizeof(uint32_t));
		plans = calloc((size_t)b->nops, sizeof(*plans));
	} else {
		memset(plans_s, 0, sizeof(plans_s));
	}
	if (b->nconds > SMALL_BATCH)
		chash = malloc((size_t)b->nconds * sizeof(*chash));
	if (keys == NULL || plans == NULL || chash == NULL) {
		r = -ENOMEM;
		goto out;
	}
	/*
	 * B.6: the slot lines of the keys' probes are prefetched as the keys are hashed, and the
	 * records in them (the versions the batch replaces) once the records are allocated, so
	 * that the misses of all the keys overlap before the locks instead of following one
	 * another under them. Prefetches only: everything is read again under the locks.
	 */
	prefetch = db->map.inline_probe && b->nops <= PREFETCH_OPS;
	if (prefetch)
		pkv__rcu_read_lock();
	for (uint32_t i = 0; i < b->nops; i++) {
		const struct batch_op *op = &b->ops[i];

		keys[i].hash = pkv__map_hash(&db->map, pkv__batch_key(b, op), op->klen);
		keys[i].shard = shard_of(db, keys[i].hash);
		keys[i].op = i;
		if (prefetch)
			__builtin_prefetch(pkv__map_slot_line_rcu(&db->map.shards[keys[i].shard].ht,
								  keys[i].hash));
	}
	if (prefetch)
		pkv__rcu_read_unlock();
	/* B.3: one entry per distinct key, holding its last op, in ascending shard order. */
	if (b->nops > SMALL_BATCH)
		sort_keys_large(keys, keys + b->nops, (uint32_t *)(keys + 2 * (size_t)b->nops),
				db->map.nshards, b->nops);
	else
		sort_keys(keys, b->nops);
	nkeys = dedup_keys(b, keys, b->nops);
	for (uint32_t i = 0; i < nkeys; i++)
		mark(set, &lo, &hi, keys[i].shard);
	for (uint32_t i = 0; i < b->nconds; i++) {
		const struct batch_op *c = &b->conds[i];

		chash[i] = pkv__map_hash(&db->map, pkv__batch_key(b, c), c->klen);
		mark(set, &lo, &hi, shard_of(db, chash[i]));
	}
	for (uint32_t i = 0; i < nkeys; i++) {
		const struct batch_op *op = &b->ops[keys[i].op];

		if (op->type == BATCH_DEL)
			continue;
		plans[i].rec = pkv__rec_new_x(pkv__batch_key(b, op), op->klen,
					      pkv__batch_val(b, op), op->vlen,
					      op->type == BATCH_PUT_EXPIRE ? op->arg : 0);
		if (plans[i].rec == NULL) {
			r = -ENOMEM;
			goto out;
		}
	}
	if (prefetch) { /* B.6 */
		pkv__rcu_read_lock();
		for (uint32_t i = 0; i < nkeys; i++)
			pkv__map_prefetch_rec_rcu(&db->map.shards[keys[i].shard].ht, keys[i].hash,
						  b->ops[keys[i].op].klen);
		pkv__rcu_read_unlock();
	}

	durable = nkeys > 0 && !db->in_memory &&
		  (db->opts.durability == PKV_DURABLE_POWER || (flags & PKV_WRITE_POWER));
	if (durable) /* sync.c S.5: a group commit waits for writers counted here */
		__atomic_add_fetch(&db->sync.inflight, 1, __ATOMIC_RELEASE);
	lock_set(db, set, lo, hi);
	locked = true;

	roll = db->map.inline_probe && !prefetch;
	for (uint32_t i = 0; roll && i < nkeys && i < 2 * PREFETCH_AHEAD; i++) /* B.6 */
		__builtin_prefetch(pkv__map_slot_line_rcu(&db->map.shards[keys[i].shard].ht,
							  keys[i].hash));

	/* B.2: the conditions, against the state before the batch. */
	for (uint32_t i = 0; i < b->nconds; i++) {
		const struct batch_op *c = &b->conds[i];
		uint64_t have;

		r = pkv__apply_version_locked(db, pkv__map_shard(&db->map, chash[i]), chash[i],
					      pkv__batch_key(b, c), c->klen, &clk, &have);
		if (r < 0)
			goto out;
		if (!cond_holds(c->arg, have)) {
			r = PKV_ECONFLICT;
			goto out;
		}
	}
	if (nkeys == 0)
		goto out; /* conditions only: checked, nothing to write */
	for (uint32_t i = 0; i < nkeys; i++) {
		const struct batch_op *op = &b->ops[keys[i].op];
		struct pkv_rec *rec = plans[i].rec;

		r = pkv__apply_plan_locked(db, &db->map.shards[keys[i].shard], keys[i].hash,
					   pkv__batch_key(b, op), op->klen, rec, 0, &plans[i]);
		if (r == PKV_NOTFOUND) { /* a delete of an absent key: logged, changes nothing */
			plans[i].skip = true;
			r = 0;
		}
		if (r < 0) {
			plans[i].rec = rec; /* still ours: freed below */
			goto out;
		}
	}
	/*
	 * map.c M.6 for the whole batch: each plan made room for one more key, but a shard's table
	 * only counts them at commit, so k new keys of one shard need room for k (else ck_ht would
	 * grow itself after the WAL append, ignoring a failure). The keys are sorted by shard.
	 */
	for (uint32_t i = 0, j; i < nkeys; i = j) {
		for (j = i + 1; j < nkeys && keys[j].shard == keys[i].shard; j++)
			;
		if (j - i > 1) {
			r = pkv__map_reserve_n_locked(&db->map.shards[keys[i].shard], j - i);
			if (r < 0)
				goto out;
		}
	}

	/* B.3: the one record and the one sequence number. */
	if (nkeys == 1) {
		const struct batch_op *op = &b->ops[keys[0].op];

		src = (struct wal_src){
			.type = op->type == BATCH_DEL		 ? WAL_DEL
				: op->type == BATCH_PUT_EXPIRE ? WAL_PUTX
							       : WAL_PUT,
			.key = pkv__batch_key(b, op),
			.klen = op->klen,
			.val = pkv__batch_val(b, op),
			.vlen = op->type == BATCH_DEL ? 0 : op->vlen,
			.expires_ms = op->type == BATCH_PUT_EXPIRE ? op->arg : 0,
		};
	} else {
		src = (struct wal_src){ .type = WAL_BATCH, .batch = b, .keys = keys,
					.nkeys = nkeys };
	}
	if (db->in_memory)
		seq = (int64_t)__atomic_add_fetch(&db->mem_seq, 1, __ATOMIC_RELAXED);
	else
		seq = pkv__wal_append_src(&db->wal, &src, &rolled);
	if (seq < 0) {
		r = (int)seq;
		seq = 0;
		goto out;
	}
	if (nkeys > 1) /* B.4 */
		pkv__map_batch_begin_locked(&db->map);
	for (uint32_t i = 0; i < nkeys; i++) {
		const struct batch_op *op = &b->ops[keys[i].op];
		struct map_shard *s = &db->map.shards[keys[i].shard];

		if (op->type == BATCH_DEL)
			__atomic_store_n(&s->dels, s->dels + 1, __ATOMIC_RELAXED);
		else
			__atomic_store_n(&s->puts, s->puts + 1, __ATOMIC_RELAXED);
		if (roll)
			prefetch_ahead(db, b, keys, nkeys, i);
		if (plans[i].skip)
			continue;
		r = pkv__apply_commit_locked(db, s, keys[i].hash, pkv__batch_key(b, op), op->klen,
					     &plans[i], (uint64_t)seq);
		if (r < 0) {
			/* As a single write: unreachable unless ck_ht could not grow for a full
			 * probe sequence (map.c M.6). The log and the map disagree from here on:
			 * stop writing. */
			pkv__store_set_readonly(db, r);
			break;
		}
	}
	if (nkeys > 1)
		pkv__map_batch_end_locked(&db->map);
out:
	if (locked)
		unlock_set(db, set, lo, hi);
	if (rolled) { /* wal.c is a leaf: the lane asked for a spare, and the WAL grew */
		pkv__sync_kick(db);
		pkv__compactor_kick(db);
	}
	if (plans != NULL)
		for (uint32_t i = 0; i < nkeys; i++)
			if (plans[i].rec)
				pkv__rec_free(plans[i].rec); /* never published */
	if (r == 0 && seq > 0 && !db->in_memory) {
		pkv__wal_wait_written(&db->wal, (uint64_t)seq);
		if (durable)
			r = pkv__sync_wait(db, (uint64_t)seq);
	}
	if (durable)
		__atomic_sub_fetch(&db->sync.inflight, 1, __ATOMIC_RELEASE);
	if (seq_out && (r == 0 || r == PKV_ECONFLICT || seq > 0))
		*seq_out = (uint64_t)seq;
	if (plans != plans_s)
		free(plans);
	if (keys != keys_s)
		free(keys);
	if (chash != chash_s)
		free(chash);
	return r;
}

/* ---- clear -------------------------------------------------------------------------------- */

PKV_EXPORT int pkv_clear(pkv *db)
{
	uint64_t *set = NULL;
	uint32_t n;
	bool durable, rolled = false;
	int64_t seq;
	int r = 0;

	if (db == NULL || pkv__in_read_section()) /* read.c RD.4: it takes compact_mu */
		return PKV_EINVAL;
	if (pkv__store_readonly(db))
		return PKV_EREADONLY;
	pkv__rcu_enter();
	n = db->map.nshards;
	set = malloc(((n + 63) / 64) * sizeof(*set));
	if (set == NULL)
		return -ENOMEM;
	for (uint32_t i = 0; i < (n + 63) / 64; i++)
		set[i] = ~0ull;
	if (n % 64) /* lock_set takes every bit that is set: shards 0 .. n - 1 only */
		set[n / 64] = (1ull << (n % 64)) - 1;
	durable = !db->in_memory && db->opts.durability == PKV_DURABLE_POWER;
	if (durable)
		__atomic_add_fetch(&db->sync.inflight, 1, __ATOMIC_RELEASE);
	/* B.5: no compaction runs meanwhile (it takes compact_mu before any shard lock too). */
	pthread_mutex_lock(&db->compact_mu);
	lock_set(db, set, 0, n - 1);
	if (db->in_memory)
		seq = (int64_t)__atomic_add_fetch(&db->mem_seq, 1, __ATOMIC_RELAXED);
	else
		seq = pkv__wal_append_src(&db->wal, &(struct wal_src){ .type = WAL_CLEAR },
					  &rolled);
	if (seq < 0) {
		r = (int)seq;
	} else {
		pkv__map_batch_begin_locked(&db->map);
		pkv__apply_clear_locked(db);
		pkv__map_batch_end_locked(&db->map);
	}
	unlock_set(db, set, 0, n - 1);
	pthread_mutex_unlock(&db->compact_mu);
	pkv__map_flush_retired(&db->map); /* hand the cleared records to RCU now */
	if (rolled) {
		pkv__sync_kick(db);
		pkv__compactor_kick(db);
	}
	if (r == 0 && !db->in_memory) {
		pkv__wal_wait_written(&db->wal, (uint64_t)seq);
		if (durable)
			r = pkv__sync_wait(db, (uint64_t)seq);
	}
	if (durable)
		__atomic_sub_fetch(&db->sync.inflight, 1, __ATOMIC_RELEASE);
	free(set);
	return r;
}
