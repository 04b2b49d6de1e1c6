/* SPDX-License-Identifier: MIT */
/*
 * scan.c - pkv_scan: Redis SCAN's promises over the live map and the snapshot base together.
 *
 * The cursor is a position in the 64-bit key-hash space (the hash both the live map and the
 * snapshot index are keyed by), and a full scan walks that space once, in increasing hash order:
 * each call visits the keys whose hash lies in [cursor, next cursor). Neither a table growing
 * (ck_ht rehashes a shard's table into a bigger one) nor a compaction swapping the base (a new
 * snapshot, a new index) changes any key's hash, so the position means the same thing before and
 * after either: that is how the cursor survives both, with no state kept between calls.
 *
 * Rules (tests cite them):
 *  SC.1 A call visits windows [lo, hi] of the hash space; a window never spans two shards of the
 *       live map (shard = top bits of the hash), so it is read under one shard lock.
 *  SC.2 Under that shard lock, the window's live entries are listed, then the base is loaded
 *       (acquire; after the lock, so a compaction that trimmed this shard before we took the
 *       lock published its base before that: compact.c C.7) and its records in the window are
 *       taken unless the live map has an entry for the key (a newer version, or a tombstone).
 *       With the shard's writers and the trim excluded, that is the shard's state at one instant
 *       for the window's keys: each key present then is listed once, with its newest version.
 *  SC.3 A window's entries are sorted by hash and cut after whole groups of one hash: the next
 *       cursor is the hash after the last group taken, so no key is cut in two.
 *  SC.4 Keys and values are copied out before the read-side section ends, and fn runs outside
 *       every lock and read-side section: fn may call any pkv function (put, del, compact, ...).
 *  SC.5 ck_ht has no hash order, so a window smaller than its shard would pass over the whole
 *       table. Instead the shard's live records, sorted by hash, are kept in a one-entry cache
 *       named by (map id, shard, the shard's change counter, map.h): later windows of the same
 *       shard binary-search it. The counter is compared under the shard lock; an unchanged
 *       table holds exactly the cached records, none retired, so they are as valid in the
 *       read-side section as the table's own. Any write to the shard makes the next window
 *       collect it again (under the shard lock) and sort it (after the lock: writers wait for
 *       the pass only). Lock order: shard lock, then the cache's.
 * From SC.2 and the walk: a key present throughout a full scan is in its window's instant, so it
 * is visited at least once (exactly once: its hash lies in one window); a key absent throughout is
 * never in a window's instant; with no writes, every key exactly once. A window costs the base's
 * index slots of its range and, while its shard is unchanged, a binary search of the cache
 * (SC.5); a shard that changed costs one pass over its table and a sort.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "rcu.h"
#include "snapshot.h"

/* A window's bytes are copied out in one piece of at most this much (unless one key is more). */
#define SCAN_COPY_BYTES (4u << 20)

struct scan_ent {
	uint64_t hash;
	uint64_t seq;
	const void *key;
	const void *val;
	uint32_t klen, vlen;
};

struct scan_win {
	struct pkv *db;
	uint64_t now_ms; /* the clock, read once per window, and only if a record expires */
	struct map_shard *shard;
	uint64_t lo, hi;
	struct scan_ent *v;
	size_t n, cap;
	int err;
};

static int win_add(struct scan_win *w, uint64_t hash, uint64_t seq, const void *key, size_t klen,
		   const void *val, size_t vlen)
{
	if (w->n == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 256;
		struct scan_ent *v = realloc(w->v, cap * sizeof(*v));

		if (v == NULL)
			return -ENOMEM;
		w->v = v;
		w->cap = cap;
	}
	w->v[w->n++] = (struct scan_ent){hash, seq, key, val, (uint32_t)klen, (uint32_t)vlen};
	return 0;
}

/*
 * Expiry (a key past its expires_ms is absent everywhere): a record with an expiry
 * makes the window read the clock once. An expired live version still hides the base's older
 * one, like a tombstone.
 */
static inline uint64_t win_now(struct scan_win *w)
{
	if (w->now_ms == 0)
		w->now_ms = pkv__now_ms();
	return w->now_ms;
}

static inline bool live_expired(struct scan_win *w, const struct pkv_rec *r)
{
	return (r->flags & PKV_REC_EXPIRES) && pkv__rec_expired(r, win_now(w));
}

static inline bool base_expired(struct scan_win *w, const struct snap_rec_disk *r)
{
	uint64_t e = pkv__snap_rec_expires(r);

	return e != 0 && e <= win_now(w);
}

/* SC.2: a live entry of the window (a tombstone only hides the base's version). */
static int live_cb(void *arg, uint64_t hash, const struct pkv_rec *r)
{
	struct scan_win *w = arg;

	if ((r->flags & PKV_REC_TOMB) || live_expired(w, r))
		return 0;
	return win_add(w, hash, __atomic_load_n(&r->seq, __ATOMIC_ACQUIRE), pkv__rec_key(r),
		       r->klen, pkv__rec_val(r), r->vlen);
}

/* SC.5 */
struct live_ent {
	uint64_t hash;
	const struct pkv_rec *r;
};

static struct {
	pthread_mutex_t mu;
	bool valid;
	uint64_t map_id, gen;
	const struct map_shard *shard;
	struct live_ent *v;
	size_t n, cap;
} live_cache = {.mu = PTHREAD_MUTEX_INITIALIZER};

static int cache_add(void *arg, uint64_t hash, const struct pkv_rec *r)
{
	(void)arg;
	if (r->flags & PKV_REC_TOMB)
		return 0;
	if (live_cache.n == live_cache.cap) {
		size_t cap = live_cache.cap ? live_cache.cap * 2 : 1024;
		struct live_ent *v = realloc(live_cache.v, cap * sizeof(*v));

		if (v == NULL)
			return -ENOMEM;
		live_cache.v = v;
		live_cache.cap = cap;
	}
	live_cache.v[live_cache.n++] = (struct live_ent){hash, r};
	return 0;
}

static int live_ent_cmp(const void *a, const void *b)
{
	const struct live_ent *x = a, *y = b;

	return x->hash < y->hash ? -1 : x->hash > y->hash;
}

/*
 * First half of reading the window's live records through the cache: with the shard lock held,
 * make sure the cache holds the shard as it is now, collecting its records if it does not (the
 * sort waits for cache_take, after the shard lock is released: writers wait only for the
 * pass). Returns with live_cache.mu held (also on error). *@need_sort: collected, not sorted.
 */
static int cache_prepare_locked(struct pkv *db, struct map_shard *s, bool *need_sort)
{
	int rc = 0;

	pthread_mutex_lock(&live_cache.mu);
	*need_sort = false;
	if (live_cache.valid && live_cache.map_id == db->map.id && live_cache.shard == s &&
	    live_cache.gen == s->gen)
		return 0;
	live_cache.valid = false;
	live_cache.n = 0;
	rc = pkv__map_range_locked(s, 0, UINT64_MAX, cache_add, NULL);
	if (rc != 0)
		return rc;
	live_cache.map_id = db->map.id;
	live_cache.shard = s;
	live_cache.gen = s->gen;
	*need_sort = true;
	return 0;
}

/*
 * Second half, after the shard lock (still in the read-side section, which keeps every
 * collected record alive): sort if needed, add the window's records, release live_cache.mu.
 */
static int cache_take(struct scan_win *w, bool need_sort)
{
	size_t a = 0, b = live_cache.n;
	int rc = 0;

	if (need_sort) {
		if (live_cache.n > 1)
			qsort(live_cache.v, live_cache.n, sizeof(*live_cache.v), live_ent_cmp);
		live_cache.valid = true;
	}
	while (a < b) { /* the first entry with hash >= lo */
		size_t mid = a + (b - a) / 2;

		if (live_cache.v[mid].hash < w->lo)
			a = mid + 1;
		else
			b = mid;
	}
	for (; a < live_cache.n && live_cache.v[a].hash <= w->hi; a++) {
		const struct pkv_rec *r = live_cache.v[a].r;

		if (live_expired(w, r)) /* checked now, not when cached: time went on */
			continue;
		rc = win_add(w, live_cache.v[a].hash, __atomic_load_n(&r->seq, __ATOMIC_ACQUIRE),
			     pkv__rec_key(r), r->klen, pkv__rec_val(r), r->vlen);
		if (rc != 0)
			break;
	}
	pthread_mutex_unlock(&live_cache.mu);
	return rc;
}

/* SC.2: a base record of the window, unless the live map shadows it. */
static int base_cb(void *arg, const struct snap_rec_disk *r)
{
	struct scan_win *w = arg;
	uint64_t hash = pkv__map_hash(&w->db->map, pkv__snap_rec_key(r), r->klen);

	if (hash < w->lo || hash > w->hi)
		return 0; /* a neighbour sharing the window's index slots */
	if (pkv__map_find_locked(w->shard, hash, pkv__snap_rec_key(r), r->klen) != NULL)
		return 0;
	if (base_expired(w, r))
		return 0;
	return win_add(w, hash, r->seq, pkv__snap_rec_key(r), r->klen, pkv__snap_rec_val(r),
		       r->vlen);
}

static int ent_cmp(const void *a, const void *b)
{
	const struct scan_ent *x = a, *y = b;

	return x->hash < y->hash ? -1 : x->hash > y->hash;
}

/* Visible keys, for sizing windows (the counters are read without stopping writers). */
static uint64_t keys_estimate(struct pkv *db)
{
	int64_t n = (int64_t)db->keys_baseline;

	for (unsigned i = 0; i < db->map.nshards; i++)
		n += __atomic_load_n(&db->map.shards[i].nkeys, __ATOMIC_RELAXED);
	return n > 0 ? (uint64_t)n : 0;
}

/* The copy of a window's taken entries that fn is called with (SC.4). */
struct scan_copy {
	struct scan_ent *v;
	size_t n, cap;
	unsigned char *bytes;
	size_t len, bcap;
};

static int copy_out(struct scan_copy *c, const struct scan_ent *e, size_t n)
{
	size_t need = 0, off;

	for (size_t i = 0; i < n; i++)
		need += (size_t)e[i].klen + e[i].vlen;
	if (n > c->cap) {
		struct scan_ent *v = realloc(c->v, n * sizeof(*v));

		if (v == NULL)
			return -ENOMEM;
		c->v = v;
		c->cap = n;
	}
	if (need > c->bcap) {
		unsigned char *b = realloc(c->bytes, need);

		if (b == NULL)
			return -ENOMEM;
		c->bytes = b;
		c->bcap = need;
	}
	off = 0;
	for (size_t i = 0; i < n; i++) {
		c->v[i] = e[i];
		memcpy(c->bytes + off, e[i].key, e[i].klen);
		c->v[i].key = c->bytes + off;
		off += e[i].klen;
		if (e[i].vlen)
			memcpy(c->bytes + off, e[i].val, e[i].vlen);
		c->v[i].val = c->bytes + off;
		off += e[i].vlen;
	}
	c->n = n;
	c->len = need;
	return 0;
}

/*
 * Read window [lo, hi] (inside one shard: SC.1), take up to @want keys of it (whole hash groups, and
 * at most SCAN_COPY_BYTES unless one group is more) into @c. *@next: where the next window
 * starts (hi + 1, or the hash after the last group taken); *@wrapped: the walk is complete.
 */
static int read_window(struct pkv *db, struct scan_win *w, struct scan_copy *c, uint64_t lo,
		       uint64_t hi, bool whole_shard, size_t want, uint64_t *next, bool *wrapped)
{
	struct map_shard *s = pkv__map_shard(&db->map, lo);
	const struct pkv_snap *base;
	bool cached = false, need_sort = false;
	size_t k, bytes = 0;
	int rc;

	w->n = 0;
	w->now_ms = 0;
	w->shard = s;
	w->lo = lo;
	w->hi = hi;
	pkv__rcu_read_lock();
	pthread_mutex_lock(&s->lock);
	if (whole_shard) {
		rc = pkv__map_range_locked(s, lo, hi, live_cb, w); /* one pass: no order needed */
	} else {
		rc = cache_prepare_locked(db, s, &need_sort); /* SC.5 */
		cached = true;
	}
	base = pkv__store_base_rcu(db);
	if (rc == 0 && base != NULL)
		rc = pkv__snap_range(base, lo, hi, base_cb, w);
	pthread_mutex_unlock(&s->lock);
	if (cached) {
		if (rc == 0)
			rc = cache_take(w, need_sort);
		else
			pthread_mutex_unlock(&live_cache.mu);
	}
	if (rc != 0)
		goto out;
	/* SC.3: in hash order, so that a cut, or a stop by fn, has one position to resume at. */
	if (w->n > 1)
		qsort(w->v, w->n, sizeof(*w->v), ent_cmp);
	for (k = 0; k < w->n; k++) {
		if (k > 0 && w->v[k].hash != w->v[k - 1].hash && (k >= want || bytes >= SCAN_COPY_BYTES))
			break;
		bytes += (size_t)w->v[k].klen + w->v[k].vlen;
	}
	if (k == w->n) {
		*next = hi + 1;
		*wrapped = hi == UINT64_MAX;
	} else {
		*next = w->v[k - 1].hash + 1; /* <= hi: w->v[k].hash is larger */
		*wrapped = false;
	}
	rc = copy_out(c, w->v, k);
out:
	pkv__rcu_read_unlock();
	return rc;
}

PKV_EXPORT int pkv_scan(pkv *db, uint64_t *cursor, size_t count, pkv_scan_fn fn, void *arg)
{
	struct scan_win w = {.db = db};
	struct scan_copy c = {0};
	uint64_t pos, total;
	size_t visited = 0;
	bool done = false;
	int rc = 0;

	if (db == NULL || cursor == NULL || fn == NULL || count == 0)
		return PKV_EINVAL;
	pkv__rcu_enter();
	pos = *cursor;
	total = keys_estimate(db);
	while (visited < count && !done) {
		unsigned shift = db->map.shard_shift;
		uint64_t shard_end = shift >= 64 ? UINT64_MAX : pos | ((1ull << shift) - 1);
		uint64_t hi = shard_end, next = 0;
		size_t want = count - visited;

		/* Size the window for about want keys (a quarter more: the counts are estimates). */
		if (total > want) {
			unsigned __int128 span = ((unsigned __int128)1 << 64) * want / total;

			span += span / 4;
			if (span < (unsigned __int128)(shard_end - pos))
				hi = pos + (uint64_t)span;
		}
		bool whole = hi == shard_end && (shift >= 64 || (pos & ((1ull << shift) - 1)) == 0);

		rc = read_window(db, &w, &c, pos, hi, whole, want, &next, &done);
		if (rc != 0)
			break;
		for (size_t i = 0; i < c.n; i++) {
			const struct scan_ent *e = &c.v[i];

			rc = fn(arg, e->key, e->klen, e->val, e->vlen, e->seq);
			if (rc != 0) {
				/* Resume after this key; its hash again if its group is not done. */
				bool more = i + 1 < c.n && c.v[i + 1].hash == e->hash;

				*cursor = more ? e->hash : e->hash + 1;
				if (!more && e->hash == UINT64_MAX)
					*cursor = 0;
				goto out;
			}
		}
		visited += c.n;
		pos = next;
	}
	/* On an error, pos is the window that failed: a retry starts there, after what was seen. */
	*cursor = rc == 0 && done ? 0 : pos;
out:
	free(w.v);
	free(c.v);
	free(c.bytes);
	return rc;
}
