/* SPDX-License-Identifier: MIT */
/*
 * write.c - the public write path: pkv_put, pkv_del (and their _ex forms). The home of batches,
 * pkv_write, pkv_put_expire and pkv_clear.
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

static int db_write(struct pkv *db, enum wal_rec_type type, const void *key, size_t klen,
		    const void *val, size_t vlen, unsigned flags)
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
	if (durable) /* sync.c S.5: a group commit waits for writers counted here */
		__atomic_add_fetch(&db->sync.inflight, 1, __ATOMIC_RELEASE);
	if (type == WAL_PUT) {
		rec = pkv__rec_new(key, klen, val, vlen);
		if (rec == NULL) {
			r = -ENOMEM;
			goto out;
		}
	}
	h = pkv__map_hash(&db->map, key, klen);
	s = pkv__map_shard(&db->map, h);

	pthread_mutex_lock(&s->lock);
	r = pkv__apply_plan_locked(db, s, h, key, klen, rec, 0, &plan);
	if (r < 0)
		goto unlock;
	if (db->in_memory)
		seq = (int64_t)__atomic_add_fetch(&db->mem_seq, 1, __ATOMIC_RELAXED);
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
	if (type == WAL_PUT)
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

PKV_EXPORT int pkv_put_ex(pkv *db, const void *key, size_t klen, const void *val, size_t vlen,
			  unsigned flags)
{
	int r;

	if (db == NULL || (val == NULL && vlen > 0) || (flags & ~PKV_WRITE_POWER))
		return PKV_EINVAL;
	r = pkv__db_check_key(key, klen);
	if (r < 0)
		return r;
	if (vlen > PKV_MAX_VALUE)
		return PKV_ETOOBIG;
	return db_write(db, WAL_PUT, key, klen, val, vlen, flags);
}

PKV_EXPORT int pkv_put(pkv *db, const void *key, size_t klen, const void *val, size_t vlen)
{
	return pkv_put_ex(db, key, klen, val, vlen, 0);
}

PKV_EXPORT int pkv_del_ex(pkv *db, const void *key, size_t klen, unsigned flags)
{
	int r;

	if (db == NULL || (flags & ~PKV_WRITE_POWER))
		return PKV_EINVAL;
	r = pkv__db_check_key(key, klen);
	if (r < 0)
		return r;
	return db_write(db, WAL_DEL, key, klen, NULL, 0, flags);
}

PKV_EXPORT int pkv_del(pkv *db, const void *key, size_t klen)
{
	return pkv_del_ex(db, key, klen, 0);
}
