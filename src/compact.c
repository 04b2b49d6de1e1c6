/* SPDX-License-Identifier: MIT */
/*
 * compact.c - compaction: a fuzzy walk of the live map, merged with the old base, written as a
 * new snapshot that becomes the base image; then the WAL and the old snapshot it covers go.
 *
 * Rules (tests cite them):
 *  C.1  S = the last sequence number taken when the compaction starts. Every write <= S holds
 *       its shard lock from taking its number until the map shows it, so walking a shard under
 *       its lock sees every write <= S of that shard. The snapshot is complete up to S.
 *  C.2  The walk is fuzzy: a shard walked later may show versions newer than S. Each record
 *       carries its sequence number, and replay applies a WAL record only if it is newer than
 *       the key's version in the snapshot (recovery.c R.9), so replaying (S, end] on top of the
 *       snapshot gives the state at the end of the WAL whatever the walk caught.
 *  C.3  Before the snapshot is renamed into place, every write the walk can have seen is made
 *       durable in the WAL (a group commit): after any crash the WAL reaches at least that far,
 *       so snapshot + replay is always a prefix of the history. "Seen" is more than the newest
 *       version the file holds: a delete that came after S and before its shard was walked shows
 *       only as an absent key (tombstones are omitted, and the old base's version is left out
 *       when the key has any live entry, C.5), and leaves no sequence number in the file. So the
 *       bound is the last sequence number taken when the walk is over: every record the walk
 *       met took its number before it was in the map. Syncing only up to the newest version
 *       held let a power cut lose such a delete's WAL record, and the writes before it, while
 *       the snapshot kept its effect: a hole in the history (stress/powerloss.c, PROCESS mode).
 *  C.4  From the first shard walk until the live map is trimmed, a delete always leaves a
 *       tombstone in the live map (instead of removing the entry when the old base lacks the
 *       key): the new base may hold the key, captured before the delete, and must stay shadowed.
 *  C.5  The new base holds each key once: its live version as walked (tombstones omitted), or,
 *       for keys with no live entry at all when the old base is merged in, the old base's.
 *  C.6  Order on disk: write to snap/<S>.tmp, fsync; (C.3); rename to snap/<S>.snap; fsync
 *       snap/. Only then: publish the new base (release), trim the live map, wait a grace
 *       period, unmap the old base, delete the WAL segments whose records are all <= S, fsync
 *       wal/, delete the old snapshot. A crash at any point leaves either the old snapshot or
 *       the new one as the newest complete file, and every WAL record newer than it.
 *  C.7  Trimming: a tombstone whose key the new base lacks is removed. Live records stay in the
 *       live map even when the new base holds the same version: a get then costs one hash-table
 *       probe, not a probe that misses and a second one in the base (read.c RD.1), and their
 *       memory is what a hash table of the same data holds anyway; the base serves what the live
 *       map lacks (everything after a reopen, until it is written again). The base is published
 *       before any removal, and a reader loads the base after its live-map miss, so it never
 *       falls back to the old base.
 *  C.8  A failed compaction changes nothing that matters: the temporary file is removed and the
 *       old base and the WAL stay authoritative.
 *  C.9  Expiry: the walk reads the clock once (now) and writes no version that is expired at
 *       now, from the live map or the old base; the new base keeps every other version's expiry.
 *       An old-base key dropped so gets a tombstone in the live map before the new base is
 *       published (unless the key has a live entry by then), counted as its delete: the key
 *       count then stays exact whatever writers do around the swap, and the tombstone is
 *       trimmed like any other (C.7). A live version expired at now that the new base lacks is
 *       removed at the trim, counted likewise, if it is still the key's current one. So the
 *       memory and disk of every key expired when a compaction starts are reclaimed by it.
 *       That holds when nothing was written since the last snapshot too: a compaction is skipped
 *       only when no key of the base has expired since (its expires_from, the earliest expiry
 *       the walk wrote; unknown for a file opened from disk, which is then rewritten once).
 *  C.10 A base that pkv_clear disregarded (db->cleared_base) is unmapped after the grace
 *       period that follows the new base's publication, and its file deleted after the WAL
 *       segments the new snapshot covers (the clear record among them), as an old base is.
 */
#include <dirent.h>
#include <malloc.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "compact.h"
#include "store.h"
#include "errors.h"
#include "fs.h"
#include "rcu.h"
#include "snapshot.h"
#include "sync.h"
#include "wal.h"

/* Write the live walk and the old base into @w (C.1, C.2, C.5). *@max_seq: newest version. */
/* Old-base records the walk dropped as expired (C.9): they get tombstones before the swap. */
struct expired_list {
	const struct snap_rec_disk **v;
	size_t n, cap;
};

static int expired_add(struct expired_list *e, const struct snap_rec_disk *b)
{
	if (e->n == e->cap) {
		size_t cap = e->cap ? e->cap * 2 : 256;
		const struct snap_rec_disk **v = realloc(e->v, cap * sizeof(*v));

		if (v == NULL)
			return -ENOMEM;
		e->v = v;
		e->cap = cap;
	}
	e->v[e->n++] = b;
	return 0;
}

static bool expired_at(uint64_t expires_ms, uint64_t now)
{
	return expires_ms != 0 && expires_ms <= now;
}

static void note_expiry(uint64_t *from, uint64_t expires_ms)
{
	if (expires_ms && (*from == 0 || expires_ms < *from))
		*from = expires_ms;
}

/* *@max_seq: the newest version written; *@from: the earliest expiry written (0: none). */
static int walk(struct pkv *db, struct snap_writer *w, uint64_t now, struct expired_list *gone,
		uint64_t *max_seq, uint64_t *from)
{
	struct pkv_map *m = &db->map;
	const struct pkv_snap *old;
	const struct snap_rec_disk *b;
	const struct pkv_rec *r;
	uint64_t off = 0;
	int rc = 0;

	for (unsigned i = 0; i < m->nshards && rc == 0; i++) {
		struct map_shard *s = &m->shards[i];
		const struct pkv_rec **v;
		long n;

		/* The read-side section keeps the listed records alive after the unlock (M.4). */
		pkv__rcu_read_lock();
		pthread_mutex_lock(&s->lock);
		n = pkv__map_collect_locked(s, &v);
		pthread_mutex_unlock(&s->lock);
		for (long k = 0; k < n && rc == 0; k++) {
			r = v[k];
			if ((r->flags & PKV_REC_TOMB) || expired_at(pkv__rec_expires(r), now))
				continue; /* C.9: the trim removes an expired one */
			if (r->seq > *max_seq)
				*max_seq = r->seq;
			note_expiry(from, pkv__rec_expires(r));
			rc = pkv__snapw_add_x(w, pkv__map_hash(m, pkv__rec_key(r), r->klen), r->seq,
					      pkv__rec_key(r), r->klen, pkv__rec_val(r), r->vlen,
					      pkv__rec_expires(r));
		}
		pkv__rcu_read_unlock();
		if (n < 0)
			rc = (int)n;
		else
			free(v);
	}
	if (rc < 0)
		return rc;

	/* The old base cannot change under us: only compactions replace it, one at a time. */
	old = db->base;
	while (old && rc == 0 && (b = pkv__snap_next(old, &off)) != NULL) {
		uint64_t h = pkv__map_hash(m, b->data, b->klen);
		bool live;

		pkv__rcu_read_lock();
		live = pkv__map_get_rcu(m, h, b->data, b->klen) != NULL; /* C.4, C.5 */
		pkv__rcu_read_unlock();
		if (live)
			continue;
		/* Never launder damage into a new file with a fresh checksum. */
		if (!pkv__snap_rec_ok(b)) {
			pkv__log(db, PKV_LOG_ERROR, "compact: %s: record at offset %" PRIu64
				 " fails its checksum", old->path,
				 (uint64_t)((const unsigned char *)b - old->data));
			return PKV_ECORRUPT;
		}
		if (expired_at(pkv__snap_rec_expires(b), now)) {
			rc = expired_add(gone, b); /* C.9 */
			continue;
		}
		if (b->seq > *max_seq)
			*max_seq = b->seq;
		note_expiry(from, pkv__snap_rec_expires(b));
		rc = pkv__snapw_add_x(w, h, b->seq, pkv__snap_rec_key(b), b->klen,
				      pkv__snap_rec_val(b), b->vlen, pkv__snap_rec_expires(b));
	}
	if (rc == 0 && old && off != SNAP_HDR_BYTES + old->data_bytes && old->data_bytes) {
		pkv__log(db, PKV_LOG_ERROR, "compact: %s: records end early at offset %" PRIu64,
			 old->path, off);
		return PKV_ECORRUPT;
	}
	return rc;
}

/*
 * C.7: remove from the live map the tombstones the new base makes useless. The base is probed
 * outside the shard lock (the listed records stay alive in the read-side section); only the
 * removals take it, each removal checking that the record is still the key's current one.
 * Live values are not probed at all: they stay, and the base's pages stay untouched.
 */
/*
 * C.9: shadow each old-base key the walk dropped as expired with a tombstone, unless the key
 * has a live entry by now (whose write already counted it against the old base). Before the new
 * base is published, so that no writer can plan against a base that lacks the key while the
 * count still holds it. Best effort under memory pressure: a key left without a tombstone still
 * reads as absent (it is expired in the old base and absent from the new one), only the key
 * count keeps it until the next compaction.
 */
static void shadow_expired(struct pkv *db, const struct expired_list *gone)
{
	struct pkv_map *m = &db->map;

	for (size_t i = 0; i < gone->n; i++) {
		const struct snap_rec_disk *b = gone->v[i];
		uint64_t h = pkv__map_hash(m, b->data, b->klen);
		struct map_shard *s = pkv__map_shard(m, h);
		struct pkv_rec *t;

		pthread_mutex_lock(&s->lock);
		if (pkv__map_find_locked(s, h, b->data, b->klen) == NULL &&
		    (t = pkv__rec_new_tomb(b->data, b->klen)) != NULL) {
			if (pkv__map_reserve_locked(s) == 0 &&
			    pkv__map_set_locked(s, h, t, b->seq) == 0)
				__atomic_store_n(&s->nkeys, s->nkeys - 1, __ATOMIC_RELAXED);
			else
				pkv__rec_free(t);
		}
		pthread_mutex_unlock(&s->lock);
	}
}

static void trim(struct pkv *db, const struct pkv_snap *base, uint64_t now)
{
	struct pkv_map *m = &db->map;

	for (unsigned i = 0; i < m->nshards; i++) {
		struct map_shard *s = &m->shards[i];
		const struct pkv_rec **v, **x = NULL;
		long n, drop = 0, expired = 0;

		pkv__rcu_read_lock();
		pthread_mutex_lock(&s->lock);
		n = pkv__map_collect_locked(s, &v);
		pthread_mutex_unlock(&s->lock);
		if (n > 0)
			x = malloc((size_t)n * sizeof(*x)); /* NULL: expired ones wait (C.9) */
		for (long k = 0; k < n; k++) {
			const struct pkv_rec *r = v[k];
			const struct snap_rec_disk *b;
			bool tomb = r->flags & PKV_REC_TOMB;
			uint64_t h;

			/* Live values stay (C.7); only tombstones and expired versions are looked at. */
			if (!tomb && !(x && expired_at(pkv__rec_expires(r), now)))
				continue;
			h = pkv__map_hash(m, r->data, r->klen);
			/* Damage (PKV_ECORRUPT) keeps the record: the base may hold the key. */
			if (pkv__snap_find(base, h, r->data, r->klen, &b) != PKV_NOTFOUND)
				continue;
			if (tomb)
				v[drop++] = r;
			else
				x[expired++] = r; /* C.9 */
		}
		pthread_mutex_lock(&s->lock);
		for (long k = 0; k < drop; k++)
			pkv__map_drop_locked(m, s, v[k]);
		for (long k = 0; k < expired; k++) {
			const struct pkv_rec *r = x[k];
			uint64_t h = pkv__map_hash(m, r->data, r->klen);

			/* Only if no write replaced it since: then the key goes, and is counted. */
			if (pkv__map_find_locked(s, h, r->data, r->klen) == r) {
				pkv__map_drop_locked(m, s, r);
				__atomic_store_n(&s->nkeys, s->nkeys - 1, __ATOMIC_RELAXED);
			}
		}
		free(x);
		pkv__map_shrink_locked(s);
		pthread_mutex_unlock(&s->lock);
		pkv__rcu_read_unlock();
		if (n >= 0)
			free(v);
	}
}

int pkv__compact_run(struct pkv *db)
{
	struct snap_writer *w = NULL;
	struct pkv_snap *fresh = NULL, *old;
	char tmp[4096], path[4096];
	uint64_t seq, max_seq = 0, old_seq, now, seen, from = 0;
	struct expired_list gone = { 0 };
	const char *why = NULL;
	bool same_name;
	int r;

	pthread_mutex_lock(&db->compact_mu);
	r = pkv__store_readonly(db);
	if (r)
		goto out_unlock;
	old_seq = db->base ? db->base->seq : 0;
	/* Nothing new since the last snapshot, and none of its keys expired since (C.9). */
	if (__atomic_load_n(&db->wal.seq, __ATOMIC_SEQ_CST) == old_seq && db->base &&
	    !expired_at(db->base->expires_from, pkv__now_ms()))
		goto out_unlock;
	pkv__wal_roll_all(&db->wal); /* C.6: afterwards every segment is wholly <= S or wholly > S */
	pkv__sync_kick(db);       /* the rolled segments wait to be synced and closed */
	seq = __atomic_load_n(&db->wal.seq, __ATOMIC_SEQ_CST); /* C.1 */
	__atomic_store_n(&db->wal_bytes_at_snap, pkv__wal_bytes(&db->wal), __ATOMIC_RELAXED);

	pkv__snap_path(tmp, sizeof(tmp), db->snap_dir, seq, "tmp");
	pkv__snap_path(path, sizeof(path), db->snap_dir, seq, "snap");
	/* Nothing written since the base, keys expired since: the new file takes the base's own
	 * name (the rename replaces it atomically; both hold the same writes). */
	same_name = db->base && strcmp(db->base->path, path) == 0;
	r = pkv__snapw_begin(&w, tmp, seq, PKV_HASH_SEED, db->wal.salt);
	if (r < 0)
		goto out_unlock;
	__atomic_store_n(&db->compacting, 1, __ATOMIC_SEQ_CST); /* C.4, before any shard walk */
	now = pkv__now_ms(); /* C.9: one clock for the whole compaction */
	r = walk(db, w, now, &gone, &max_seq, &from);
	if (r < 0) {
		pkv__snapw_abort(w);
		goto out_flag;
	}
	seen = __atomic_load_n(&db->wal.seq, __ATOMIC_SEQ_CST); /* C.3: >= max_seq and S */
	r = pkv__snapw_finish(w, max_seq); /* fsynced; aborts (unlinks) by itself on failure */
	if (r < 0)
		goto out_flag;
	r = pkv__sync_wait(db, seen); /* C.3 */
	if (r < 0) {
		pkv__fs->unlink(tmp);
		goto out_flag;
	}
	r = pkv__fs->rename(tmp, path);
	if (r < 0) {
		pkv__fs->unlink(tmp);
		goto out_flag;
	}
	r = pkv__fs_fsync_dir(db->snap_dir); /* C.6: the new name is durable */
	if (r < 0) {
		/* C.8: the rename may or may not be durable; take it back so that the old
		 * snapshot stays the newest (best effort: if this fails too, the new file is a
		 * complete, valid snapshot and the WAL it covers is still there). A file that
		 * replaced the base's own name stays: the old one is gone, and both hold the same
		 * writes. */
		if (!same_name) {
			pkv__fs->unlink(path);
			pkv__fs_fsync_dir(db->snap_dir);
		}
		goto out_flag;
	}
	r = pkv__snap_open(path, PKV_HASH_SEED, &fresh, &why);
	if (r < 0) {
		/* We just wrote it: this is an I/O failure, not corruption to report as such. */
		pkv__log(db, PKV_LOG_ERROR, "compact: cannot map the new snapshot %s: %s", path,
			 why ? why : pkv_strerror(r));
		if (!same_name) {
			pkv__fs->unlink(path);
			pkv__fs_fsync_dir(db->snap_dir);
		}
		goto out_flag;
	}
	fresh->expires_from = from;

	shadow_expired(db, &gone); /* C.9: before the new base is published */
	/* C.7: publish before trimming; the exchange is a full barrier (xchg on x86-64). */
	old = __atomic_exchange_n(&db->base, fresh, __ATOMIC_SEQ_CST);
	__atomic_store_n(&db->base_bytes, (uint64_t)fresh->len, __ATOMIC_RELAXED);
	trim(db, fresh, now);
	__atomic_store_n(&db->compacting, 0, __ATOMIC_SEQ_CST);
	pkv__map_flush_retired(&db->map); /* hand the trimmed records to RCU now, not later */

	urcu_memb_synchronize_rcu(); /* no reader still probes the old base */
	PKV_TSAN_ACQUIRE();
	if (old) {
		char oldpath[4096];
		snprintf(oldpath, sizeof(oldpath), "%s", old->path);
		pkv__snap_close(old);
		r = pkv__wal_retire_upto(&db->wal, seq);
		if (r == 0 && !same_name)
			r = pkv__fs->unlink(oldpath); /* after the WAL: C.6 */
		if (r == 0)
			r = pkv__fs_fsync_dir(db->snap_dir);
	} else {
		r = pkv__wal_retire_upto(&db->wal, seq);
	}
	if (db->cleared_base) { /* C.10 */
		char cpath[4096];
		int e;

		snprintf(cpath, sizeof(cpath), "%s", db->cleared_base->path);
		pkv__snap_close(db->cleared_base);
		db->cleared_base = NULL;
		e = pkv__fs->unlink(cpath);
		if (e == 0)
			e = pkv__fs_fsync_dir(db->snap_dir);
		if (r == 0)
			r = e;
	}
	/* The trimmed records are freed by RCU callbacks; once they ran, give the pages back:
	 * resident memory should follow the live map down, not stay at its peak. */
	urcu_memb_barrier();
	malloc_trim(0);
	if (r < 0) /* space was not reclaimed, nothing else went wrong: report, don't fail */
		pkv__log(db, PKV_LOG_WARN, "compact: cannot remove files the snapshot covers: %s",
			 pkv_strerror(r));
	r = 0;
	__atomic_store_n(&db->compactions, db->compactions + 1, __ATOMIC_RELAXED);
	pkv__log(db, PKV_LOG_INFO,
		 "compact: %s holds %" PRIu64 " keys up to seq %" PRIu64 " (%zu bytes)", path,
		 fresh->count, seq, fresh->len);
	goto out_unlock;
out_flag:
	__atomic_store_n(&db->compacting, 0, __ATOMIC_SEQ_CST);
	pkv__log(db, PKV_LOG_ERROR, "compact: failed, previous snapshot and WAL kept: %s",
		 pkv_strerror(r));
out_unlock:
	pthread_mutex_unlock(&db->compact_mu);
	free(gone.v);
	return r;
}

/* ---- the background compactor ------------------------------------------------------ */

/*
 * Due when the WAL written since the last snapshot reaches compact_wal_bytes or the size of the
 * snapshot itself, whichever is larger: rewriting the data costs its size, so it is done once
 * per as many bytes of new log, and the write amplification of compaction stays near 2x
 * whatever the size of the store.
 */
static bool compactor_due(struct pkv *db)
{
	uint64_t at = __atomic_load_n(&db->wal_bytes_at_snap, __ATOMIC_RELAXED);
	uint64_t base = __atomic_load_n(&db->base_bytes, __ATOMIC_RELAXED);
	uint64_t want = db->opts.compact_wal_bytes > base ? db->opts.compact_wal_bytes : base;

	return pkv__wal_bytes(&db->wal) - at >= want;
}

static void *compactor_main(void *arg)
{
	struct pkv *db = arg;

	pkv__rcu_enter();
	pkv__thread_background();
	pthread_mutex_lock(&db->compactor_mu);
	while (!db->compactor_stop) {
		if (!db->compactor_kick)
			pthread_cond_wait(&db->compactor_cv, &db->compactor_mu);
		db->compactor_kick = false;
		if (db->compactor_stop)
			break;
		pthread_mutex_unlock(&db->compactor_mu);
		if (compactor_due(db) && pkv__store_readonly(db) == 0)
			(void)pkv__compact_run(db); /* failures are logged and leave nothing behind */
		pthread_mutex_lock(&db->compactor_mu);
	}
	pthread_mutex_unlock(&db->compactor_mu);
	pkv__rcu_unregister();
	return NULL;
}

int pkv__compactor_start(struct pkv *db)
{
	int r;

	db->compactor_stop = false;
	r = pthread_create(&db->compactor, NULL, compactor_main, db);
	if (r != 0)
		return -r;
	db->compactor_running = true;
	return 0;
}

void pkv__compactor_stop(struct pkv *db)
{
	if (!db->compactor_running)
		return;
	pthread_mutex_lock(&db->compactor_mu);
	db->compactor_stop = true;
	pthread_cond_signal(&db->compactor_cv);
	pthread_mutex_unlock(&db->compactor_mu);
	pthread_join(db->compactor, NULL);
	db->compactor_running = false;
}

void pkv__compactor_kick(struct pkv *db)
{
	if (!db->compactor_running || !compactor_due(db))
		return;
	pthread_mutex_lock(&db->compactor_mu);
	db->compactor_kick = true;
	pthread_cond_signal(&db->compactor_cv);
	pthread_mutex_unlock(&db->compactor_mu);
}
