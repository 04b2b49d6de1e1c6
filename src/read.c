/* SPDX-License-Identifier: MIT */
/*
 * read.c - the public read path: pkv_get. The home of read sections, pkv_get_ref and
 * pkv_get_many.
 *
 * The get path takes no lock and makes no syscall: hash the key once, probe the live map inside
 * an RCU read-side section, and on a miss the base snapshot's index (snapshot.c N.4).
 */
#include <stdint.h>
#include <string.h>

#include "db.h"
#include "errors.h"
#include "rcu.h"
#include "store.h"

PKV_EXPORT int pkv_get(pkv *db, const void *key, size_t klen, void *buf, size_t cap, size_t *vlen)
{
	const struct pkv_rec *rec;
	const void *val = NULL;
	uint32_t n = 0;
	uint64_t h;
	int r;

	if (db == NULL || vlen == NULL || (buf == NULL && cap > 0))
		return PKV_EINVAL;
	r = pkv__db_check_key(key, klen);
	if (r < 0)
		return r;
	pkv__rcu_enter();
	h = pkv__map_hash(&db->map, key, klen);
	pkv__rcu_read_lock();
	rec = pkv__map_get_rcu(&db->map, h, key, klen);
	if (rec != NULL) {
		if (!(rec->flags & PKV_REC_TOMB)) {
			val = pkv__rec_val(rec);
			n = rec->vlen;
		}
	} else {
		/* Loaded after the live-map miss: never older than what the miss saw (C.7). */
		const struct pkv_snap *base = pkv__store_base_rcu(db);
		const struct snap_rec_disk *sr;

		/* N.4: checked bytes or PKV_ECORRUPT, never damaged bytes and never a false miss. */
		if (base && (r = pkv__snap_find(base, h, key, klen, &sr)) == 0) {
			val = pkv__snap_rec_val(sr);
			n = sr->vlen;
		} else if (r == PKV_NOTFOUND) {
			r = 0;
		}
	}
	if (val != NULL) {
		*vlen = n;
		if (cap > 0 && n > 0) /* buf may be NULL when only the length is asked for */
			memcpy(buf, val, cap < n ? cap : n);
	} else {
		*vlen = 0;
		if (r == 0)
			r = PKV_NOTFOUND;
	}
	pkv__rcu_read_unlock();
	if (r == PKV_ECORRUPT)
		pkv__log(db, PKV_LOG_ERROR, "get: the snapshot of %s is damaged on a key's path",
			 db->dir);
	return r;
}
