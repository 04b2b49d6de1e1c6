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
	const struct pkv_rec *live = pkv__map_find_locked(s, hash, key, klen);
	uint64_t base_seq = 0;
	bool in_base = false, visible;
	int r;

	memset(p, 0, sizeof(*p));
	if (live == NULL || rec == NULL) {
		const struct pkv_snap *b;
		const struct snap_rec_disk *br;
		uint64_t base_max = 0;
		int f = PKV_NOTFOUND;

		pkv__rcu_read_lock();
		b = pkv__store_base_rcu(db);
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

int pkv__apply_commit_locked(struct pkv *db, struct map_shard *s, uint64_t hash,
			     const void *key, size_t klen, struct write_plan *p, uint64_t seq)
{
	int r = 0;

	(void)db;
	if (p->rec) {
		r = pkv__map_set_locked(s, hash, p->rec, seq);
		if (r < 0)
			return r;
		p->rec = NULL;
	} else {
		(void)pkv__map_del_locked(s, hash, key, klen);
	}
	__atomic_store_n(&s->nkeys, s->nkeys + p->delta, __ATOMIC_RELAXED);
	return 0;
}
