/* SPDX-License-Identifier: MIT */
/*
 * apply.c - plan and commit one write into the map (apply.h): the live write path and
 * recovery's replay decide a record's effect in the same code, so a replayed record lands
 * exactly as the live write did.
 */
#include <errno.h>
#include <string.h>

#include "apply.h"
#include "errors.h"
#include "rcu.h"
#include "snapshot.h"

int pkv__apply_plan_locked(struct pkv *db, struct map_shard *s, uint64_t hash, const void *key,
			   size_t klen, struct pkv_rec *rec, uint64_t replay_seq,
			struct write_plan *p)
{
	const struct pkv_rec *live;
	uint64_t base_seq = 0;
	bool in_base = false, visible;
	int r;

	memset(p, 0, sizeof(*p));
	if (rec && replay_seq == 0) {
		/*
		 * A live put can only fail in making room, and whatever it replaces it publishes the
		 * same record: the change in visible keys is read off the replaced version at commit
		 * (ck_ht_set_spmc hands it back), so the put probes the table once, not twice.
		 */
		r = pkv__map_reserve_locked(s);
		if (r < 0)
			return r;
		p->rec = rec;
		p->delta_after = true;
		return 0;
	}
	live = pkv__map_find_locked(s, hash, key, klen);
	if (live == NULL || rec == NULL) {
		const struct pkv_snap *b;
		const struct snap_rec_disk *br;
		uint64_t base_max = 0;
		int f = PKV_NOTFOUND;

		pkv__rcu_read_lock();
		b = pkv__store_base_rcu(db);
		if (b && rec && replay_seq > b->max_seq) {
			/*
			 * A replayed put newer than every version in the base lands whatever the
			 * base holds (compact.c C.2); only the key count would need the base's
			 * answer, and recovery settles the count for every key at once after the
			 * replay (recovery.c R.14).
			 */
			pkv__rcu_read_unlock();
			r = pkv__map_reserve_locked(s);
			if (r == 0)
				p->rec = rec;
			return r;
		}
		if (b) {
			f = pkv__snap_find(b, hash, key, klen, &br);
			base_max = b->max_seq;
		}
		if (f == 0) {
			in_base = true;
			base_seq = br->seq;
		}
		pkv__rcu_read_unlock();
		if (f == PKV_ECORRUPT) {
			/*
			 * The base's version of the key cannot be read (N.4). No version in the base
			 * is newer than its header's checksummed max_seq, so a replayed record above
			 * it supersedes the damaged one, as a live write does (count the key as
			 * present); one at or below it might be older: refuse rather than maybe bring
			 * back an older value.
			 */
			if (replay_seq && replay_seq <= base_max)
				return PKV_ECORRUPT;
			in_base = true;
		}
	}
	/* Replay applies a record only if it is newer than the base's version (compact.c C.2). */
	if (replay_seq && live == NULL && in_base && base_seq >= replay_seq) {
		p->skip = true;
		return 0;
	}
	visible = live ? !(live->flags & PKV_REC_TOMB) : in_base;
	if (rec) {
		p->rec = rec;
		p->delta = visible ? 0 : 1;
	} else {
		if (!visible)
			return PKV_NOTFOUND;
		p->delta = -1;
		/* A delete must shadow the base's version, and during a compaction the next base's
		 * possible one too (compact.c C.4). */
		if (in_base || __atomic_load_n(&db->compacting, __ATOMIC_SEQ_CST)) {
			p->rec = pkv__rec_new_tomb(key, klen);
			if (p->rec == NULL)
				return -ENOMEM;
		}
	}
	if (p->rec) {
		r = pkv__map_reserve_locked(s);
		if (r < 0) {
			if (rec == NULL)
				pkv__rec_free(p->rec);
			p->rec = NULL;
			return r;
		}
	}
	return 0;
}

/* Whether the base image holds @key; a damaged version counts as present, as in the plan. */
static bool base_holds(struct pkv *db, uint64_t hash, const void *key, size_t klen)
{
	const struct snap_rec_disk *br;
	const struct pkv_snap *b;
	int f = PKV_NOTFOUND;

	pkv__rcu_read_lock();
	b = pkv__store_base_rcu(db);
	if (b)
		f = pkv__snap_find(b, hash, key, klen, &br);
	pkv__rcu_read_unlock();
	return f == 0 || f == PKV_ECORRUPT;
}

int pkv__apply_commit_locked(struct pkv *db, struct map_shard *s, uint64_t hash,
			     const void *key, size_t klen, struct write_plan *p, uint64_t seq)
{
	int r = 0;

	if (p->rec) {
		int prev = MAP_PREV_NONE;

		r = pkv__map_replace_locked(s, hash, p->rec, seq, &prev);
		if (r < 0)
			return r;
		p->rec = NULL;
		if (p->delta_after) /* a tombstone or nothing live: visible now only if not before */
			p->delta = prev == MAP_PREV_VISIBLE ? 0
				 : prev == MAP_PREV_TOMB ? 1
				 : base_holds(db, hash, key, klen) ? 0 : 1;
	} else {
		(void)pkv__map_del_locked(s, hash, key, klen);
	}
	__atomic_store_n(&s->nkeys, s->nkeys + p->delta, __ATOMIC_RELAXED);
	return 0;
}

/*
 * The recount works RECOUNT_RING entries behind its walk of the shards, prefetching on the way
 * the index slot (at once) and the record it points at (halfway), as recovery's applier does.
 */
#define RECOUNT_RING 32

struct recount {
	const struct pkv_snap *base;
	struct map_shard *shard; /* the shard being walked */
	struct {
		uint64_t hash;
		const struct pkv_rec *rec;
		struct map_shard *shard;
	} ring[RECOUNT_RING];
	unsigned head, n;
};

/* A visible entry is a key; one the base holds (a damaged copy counts, as in the plan) was
 * already counted in keys_baseline. */
static void recount_pop(struct recount *c)
{
	const struct pkv_rec *r = c->ring[c->head].rec;
	struct map_shard *s = c->ring[c->head].shard;
	const struct snap_rec_disk *br;
	int f;

	f = pkv__snap_find(c->base, c->ring[c->head].hash, r->data, r->klen, &br);
	__atomic_store_n(&s->nkeys,
			 s->nkeys + !(r->flags & PKV_REC_TOMB) - (f == 0 || f == PKV_ECORRUPT),
			 __ATOMIC_RELAXED);
	c->head = (c->head + 1) % RECOUNT_RING;
	c->n--;
}

static int recount_push(void *arg, uint64_t hash, const struct pkv_rec *r)
{
	struct recount *c = arg;
	unsigned i;

	if (c->n == RECOUNT_RING)
		recount_pop(c);
	i = (c->head + c->n) % RECOUNT_RING;
	c->ring[i].hash = hash;
	c->ring[i].rec = r;
	c->ring[i].shard = c->shard;
	__builtin_prefetch(r);
	pkv__snap_prefetch_slot(c->base, hash);
	c->n++;
	if (c->n > RECOUNT_RING / 2) {
		unsigned half = (i + RECOUNT_RING - RECOUNT_RING / 2) % RECOUNT_RING;

		pkv__snap_prefetch_rec(c->base, c->ring[half].hash);
	}
	return 0;
}

void pkv__apply_recount_locked(struct pkv *db)
{
	struct recount c = { 0 };

	pkv__rcu_read_lock();
	c.base = pkv__store_base_rcu(db);
	if (c.base != NULL) {
		for (unsigned i = 0; i < db->map.nshards; i++) {
			c.shard = &db->map.shards[i];
			__atomic_store_n(&c.shard->nkeys, 0, __ATOMIC_RELAXED);
			(void)pkv__map_range_locked(c.shard, 0, UINT64_MAX, recount_push, &c);
		}
		while (c.n > 0)
			recount_pop(&c);
	}
	pkv__rcu_read_unlock();
}

int pkv__apply_version_locked(struct pkv *db, struct map_shard *s, uint64_t hash,
			      const void *key, size_t klen, struct apply_clock *clk, uint64_t *out)
{
	const struct pkv_rec *live = pkv__map_find_locked(s, hash, key, klen);
	int r = 0;

	*out = 0;
	if (live) {
		if (!(live->flags & PKV_REC_TOMB) &&
		    !((live->flags & PKV_REC_EXPIRES) &&
		      pkv__rec_expired(live, pkv__apply_now(clk))))
			*out = live->seq;
		return 0;
	}
	pkv__rcu_read_lock();
	{
		const struct pkv_snap *b = pkv__store_base_rcu(db);
		const struct snap_rec_disk *br;

		if (b) {
			r = pkv__snap_find(b, hash, key, klen, &br);
			if (r == 0) {
				uint64_t e = pkv__snap_rec_expires(br);

				if (e == 0 || e > pkv__apply_now(clk))
					*out = br->seq;
			} else if (r == PKV_NOTFOUND) {
				r = 0;
			}
		}
	}
	pkv__rcu_read_unlock();
	return r;
}

void pkv__apply_clear_locked(struct pkv *db)
{
	struct pkv_snap *old;

	for (unsigned i = 0; i < db->map.nshards; i++)
		pkv__map_clear_locked(&db->map.shards[i]);
	/*
	 * The base goes too; readers still probing it are in read-side sections, so it stays
	 * mapped until the next compaction (after a grace period) or close unmaps it and deletes
	 * its file (compact.c C.9). Until then recovery finds it as the newest snapshot and
	 * disregards it at the clear record (recovery.c R.11).
	 */
	old = __atomic_exchange_n(&db->base, NULL, __ATOMIC_SEQ_CST);
	if (old) {
		PKV_ASSERT(db->cleared_base == NULL);
		if (db->cleared_base == NULL)
			db->cleared_base = old;
	}
	__atomic_store_n(&db->keys_baseline, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&db->base_bytes, 0, __ATOMIC_RELAXED);
}
