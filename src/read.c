/* SPDX-License-Identifier: MIT */
/*
 * read.c - the read calls: pkv_get, read sections (pkv_read_begin / pkv_read_end), pkv_get_ref
 * and pkv_get_many. No lock and no syscall on any of them.
 *
 * Rules (tests cite them):
 *  RD.1 A lookup probes the live map (map.h, inline); a record there is the key's current
 *       version, a tombstone means absent. On a live-map miss it loads the base image after the
 *       miss (compact.c C.7: never older than what the miss saw) and probes its index in place
 *       (snapshot.c N.4: checked bytes or PKV_ECORRUPT, never a false miss).
 *  RD.2 A read section is one RCU read-side section per thread: entered when the thread's first
 *       section opens (over all stores), left when its last one ends. Every pointer handed out
 *       inside it stays valid, its bytes unchanged, until then: replaced and removed records are
 *       freed only after a grace period (map.c M.4), and a replaced base image is unmapped only
 *       after one (compact.c C.6).
 *  RD.3 Sections nest and are counted per thread and per store, in a small thread-local table
 *       (PKV_READ_MAX_STORES stores at once). An end without a matching begin on that store is
 *       PKV_EINVAL and changes nothing.
 *  RD.4 While a thread has any section open, a call that would wait for a grace period, or for
 *       a thread that may be waiting for one (close, open, compact, sync, a power-durable write,
 *       thread detach), returns PKV_EINVAL at once instead of waiting for itself forever
 *       (pkv__in_read_section, rcu.h).
 *  RD.5 pkv_get_many works in chunks: it hashes every key of the chunk and prefetches each
 *       one's first slot line, then reads those lines and prefetches the records whose full hash
 *       matches, then looks each key up (now mostly from the cache); the keys the live map lacks
 *       get the same treatment against the base image's index and records. Its results never
 *       show a batch in part (map.c M.7): it waits while a batch is in flight and looks the whole
 *       array up again if one began meanwhile.
 *  RD.6 A version whose expiry (map.h PKV_REC_EXPIRES, snapshot.h SNAP_REC_EXPIRES) is at or
 *       before pkv__now_ms() is absent to every read call, and an expired live version still
 *       shadows the base's older one. The clock is read only for versions that can expire.
 */
#include <limits.h>
#include <string.h>

#include "db.h"
#include "errors.h"
#include "rcu.h"
#include "store.h"

/* ---- one lookup ---------------------------------------------------------------------- */

/* RD.1, the base image's half: 0, PKV_NOTFOUND or PKV_ECORRUPT. */
static int lookup_base_rcu(struct pkv *db, uint64_t h, const void *key, size_t klen,
			   const void **val, size_t *vlen, uint64_t *seq, uint64_t *exp)
{
	const struct pkv_snap *base = pkv__store_base_rcu(db);
	const struct snap_rec_disk *sr;
	uint64_t e;
	int r;

	if (base == NULL)
		return PKV_NOTFOUND;
	r = pkv__snap_find(base, h, key, klen, &sr);
	if (r == 0) {
		e = pkv__snap_rec_expires(sr);
		if (e != 0 && e <= pkv__now_ms()) /* RD.6 */
			return PKV_NOTFOUND;
		*val = pkv__snap_rec_val(sr);
		*vlen = sr->vlen;
		*seq = sr->seq;
		*exp = e;
	}
	return r;
}

/* RD.1: 0 (*val, *vlen, *seq set), PKV_NOTFOUND or PKV_ECORRUPT. */
static inline int lookup_rcu(struct pkv *db, uint64_t h, const void *key, size_t klen,
			     const void **val, size_t *vlen, uint64_t *seq, uint64_t *exp)
{
	const struct pkv_rec *rec = pkv__map_get_rcu(&db->map, h, key, klen);

	if (__builtin_expect(rec != NULL, 1)) {
		if (rec->flags & PKV_REC_TOMB)
			return PKV_NOTFOUND;
		*exp = 0;
		if (__builtin_expect(rec->flags & PKV_REC_EXPIRES, 0)) {
			/* RD.6: an expired version is absent, and still shadows the base's. */
			*exp = pkv__rec_expires(rec);
			if (*exp <= pkv__now_ms())
				return PKV_NOTFOUND;
		}
		*val = pkv__rec_val(rec);
		*vlen = rec->vlen;
		*seq = rec->seq;
		return 0;
	}
	return lookup_base_rcu(db, h, key, klen, val, vlen, seq, exp);
}

static void log_corrupt(struct pkv *db, const char *call)
{
	pkv__log(db, PKV_LOG_ERROR, "%s: the snapshot of %s is damaged on a key's path", call,
		 db->dir ? db->dir : "(memory)");
}


PKV_EXPORT int pkv_get(pkv *db, const void *key, size_t klen, void *buf, size_t cap, size_t *vlen)
{
	const void *val = NULL;
	size_t n = 0;
	uint64_t seq, exp, h;
	int r;

	if (db == NULL || vlen == NULL || (buf == NULL && cap > 0))
		return PKV_EINVAL;
	r = pkv__db_check_key(key, klen);
	if (r < 0)
		return r;
	pkv__rcu_enter();
	h = pkv__map_hash(&db->map, key, klen);
	pkv__rcu_read_lock();
	r = lookup_rcu(db, h, key, klen, &val, &n, &seq, &exp);
	*vlen = n;
	if (r == 0 && cap > 0 && n > 0) /* buf may be NULL when only the length is asked for */
		memcpy(buf, val, cap < n ? cap : n);
	pkv__rcu_read_unlock();
	if (__builtin_expect(r == PKV_ECORRUPT, 0))
		log_corrupt(db, "get");
	return r;
}

/* ---- read sections --------------------------------------------------------------------- */

struct section {
	const struct pkv *db;
	unsigned depth;
};

static __thread struct section sections[PKV_READ_MAX_STORES]
	__attribute__((tls_model("initial-exec")));
static __thread unsigned nsections __attribute__((tls_model("initial-exec")));

static inline struct section *section_find(const struct pkv *db)
{
	for (unsigned i = 0; i < nsections; i++)
		if (sections[i].db == db)
			return &sections[i];
	return NULL;
}

/* Is the calling thread inside a section on @db? (RD.3) */
static inline bool in_section(const struct pkv *db)
{
	return pkv__read_depth != 0 && section_find(db) != NULL;
}

PKV_EXPORT int pkv_read_begin(pkv *db)
{
	struct section *s;

	if (db == NULL)
		return PKV_EINVAL;
	s = section_find(db);
	if (s == NULL) {
		if (nsections == PKV_READ_MAX_STORES)
			return PKV_EINVAL;
		s = &sections[nsections++];
		s->db = db;
		s->depth = 0;
	} else if (s->depth == UINT_MAX) {
		return PKV_EINVAL;
	}
	pkv__rcu_enter();
	if (pkv__read_depth++ == 0)
		pkv__rcu_read_lock(); /* RD.2 */
	s->depth++;
	return 0;
}

PKV_EXPORT int pkv_read_end(pkv *db)
{
	struct section *s;

	if (db == NULL)
		return PKV_EINVAL;
	s = pkv__read_depth ? section_find(db) : NULL;
	if (s == NULL)
		return PKV_EINVAL; /* RD.3 */
	if (--s->depth == 0)
		*s = sections[--nsections];
	if (--pkv__read_depth == 0)
		pkv__rcu_read_unlock(); /* RD.2: from here on the pointers may go */
	return 0;
}

/* ---- zero-copy gets ---------------------------------------------------------------------- */

PKV_EXPORT int pkv_get_ref(pkv *db, const void *key, size_t klen, const void **val, size_t *vlen,
			   uint64_t *seq)
{
	uint64_t h, s = 0, e;
	int r;

	if (db == NULL || val == NULL || vlen == NULL)
		return PKV_EINVAL;
	*val = NULL;
	*vlen = 0;
	if (seq)
		*seq = 0;
	if (!in_section(db))
		return PKV_EINVAL;
	r = pkv__db_check_key(key, klen);
	if (r < 0)
		return r;
	h = pkv__map_hash(&db->map, key, klen);
	r = lookup_rcu(db, h, key, klen, val, vlen, &s, &e);
	if (r == 0 && seq)
		*seq = s;
	if (__builtin_expect(r == PKV_ECORRUPT, 0))
		log_corrupt(db, "get_ref");
	return r;
}

/* Keys looked up per round of prefetches: enough to overlap the misses, few enough for L1. */
#define MANY_CHUNK 16

/* An item still to look up in the live map (RD.5), or the base image. */
#define ITEM_PENDING 1
#define ITEM_BASE 2

/* Prefetch the records in the first slot line of each key whose full hash matches. */
static void many_prefetch_records(struct pkv_map *m, const pkv_item *it, const int *st,
				  const uint64_t *h, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (st[i] == ITEM_PENDING)
			pkv__map_prefetch_rec_rcu(&pkv__map_shard(m, h[i])->ht, h[i], it[i].klen);
}

/* RD.5 for the keys the live map lacks: prefetch index slots, then records, then probe. */
static void many_base(struct pkv *db, pkv_item *it, int *st, const uint64_t *h, size_t n)
{
	const struct pkv_snap *b = pkv__store_base_rcu(db);

	for (size_t i = 0; i < n; i++)
		if (st[i] == ITEM_BASE && b != NULL)
			__builtin_prefetch(&b->index[h[i] >> b->shift]);
	for (size_t i = 0; b != NULL && i < n; i++) {
		uint64_t slot, off;

		if (st[i] != ITEM_BASE)
			continue;
		slot = __atomic_load_n(&b->index[h[i] >> b->shift], __ATOMIC_RELAXED);
		off = (slot & SNAP_OFF_MASK) * 8;
		if ((slot & ~SNAP_OFF_MASK) == SNAP_TAG(h[i]) && off < b->len)
			__builtin_prefetch(b->map + off);
	}
	for (size_t i = 0; i < n; i++) {
		uint64_t seq = 0;
		int r;

		if (st[i] != ITEM_BASE)
			continue;
		r = lookup_base_rcu(db, h[i], it[i].key, it[i].klen, &it[i].val, &it[i].vlen,
				    &seq, &it[i].expires_ms);
		it[i].seq = seq;
		it[i].rc = r;
		st[i] = 0;
	}
}

/* Look up @n <= MANY_CHUNK items; returns how many were found. */
static int many_chunk(struct pkv *db, pkv_item *it, size_t n)
{
	struct pkv_map *m = &db->map;
	uint64_t h[MANY_CHUNK];
	int st[MANY_CHUNK];
	bool base = false;
	int found = 0;

	for (size_t i = 0; i < n; i++) {
		it[i].val = NULL;
		it[i].vlen = 0;
		it[i].seq = 0;
		it[i].expires_ms = 0;
		it[i].rc = pkv__db_check_key(it[i].key, it[i].klen);
		st[i] = it[i].rc == 0 ? ITEM_PENDING : 0;
		if (st[i] != ITEM_PENDING)
			continue;
		h[i] = pkv__map_hash(m, it[i].key, it[i].klen);
		if (pkv__map_inline_ok(m))
			__builtin_prefetch(pkv__map_slot_line_rcu(&pkv__map_shard(m, h[i])->ht, h[i]));
	}
	if (pkv__map_inline_ok(m))
		many_prefetch_records(m, it, st, h, n);
	for (size_t i = 0; i < n; i++) {
		const struct pkv_rec *rec;

		if (st[i] != ITEM_PENDING)
			continue;
		rec = pkv__map_get_rcu(m, h[i], it[i].key, it[i].klen);
		if (rec == NULL) {
			st[i] = ITEM_BASE;
			base = true;
			continue;
		}
		st[i] = 0;
		if (rec->flags & PKV_REC_TOMB) {
			it[i].rc = PKV_NOTFOUND;
			continue;
		}
		if (rec->flags & PKV_REC_EXPIRES) { /* RD.6 */
			it[i].expires_ms = pkv__rec_expires(rec);
			if (it[i].expires_ms <= pkv__now_ms()) {
				it[i].expires_ms = 0;
				it[i].rc = PKV_NOTFOUND;
				continue;
			}
		}
		it[i].val = pkv__rec_val(rec);
		it[i].vlen = rec->vlen;
		it[i].seq = rec->seq;
	}
	if (base)
		many_base(db, it, st, h, n);
	for (size_t i = 0; i < n; i++)
		found += it[i].rc == 0;
	return found;
}

PKV_EXPORT int pkv_get_many(pkv *db, pkv_item *items, size_t n)
{
	uint64_t begun;
	bool corrupt;
	int found;

	if (db == NULL || items == NULL || n == 0 || n > INT_MAX || !in_section(db))
		return PKV_EINVAL;
	begun = pkv__map_batch_read_begin_rcu(&db->map);
	for (;;) {
		found = 0;
		corrupt = false;
		for (size_t i = 0; i < n; i += MANY_CHUNK) {
			size_t k = n - i < MANY_CHUNK ? n - i : MANY_CHUNK;

			found += many_chunk(db, items + i, k);
		}
		/* M.7: a batch that began during the lookups may show in part: look again. */
		if (!pkv__map_batch_read_retry_rcu(&db->map, begun))
			break;
		begun = pkv__map_batch_read_begin_rcu(&db->map);
	}
	for (size_t i = 0; i < n && !corrupt; i++)
		corrupt = items[i].rc == PKV_ECORRUPT;
	if (corrupt)
		log_corrupt(db, "get_many");
	return found;
}
