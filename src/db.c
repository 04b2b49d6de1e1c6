/* SPDX-License-Identifier: MIT */
/*
 * db.c - open/close, options, DIR/LOCK, RCU thread registration, and the public get/put/del.
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
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "db.h"
#include "errors.h"
#include "fs.h"
#include "rcu.h"
#include "compact.h"
#include "recovery.h"

#define DEFAULT_SHARDS 64u
#define DEFAULT_SEGMENT (16u << 20)
#define DEFAULT_SYNC_MS 100u
#define MAX_CAPACITY_HINT (1ull << 36)
#define DEFAULT_COMPACT_WAL (64u << 20)

/* ---- RCU thread registration -------------------------------------------------------- */

__thread bool pkv__rcu_registered __attribute__((tls_model("initial-exec")));
static pthread_key_t rcu_key;
static pthread_once_t rcu_key_once = PTHREAD_ONCE_INIT;

static void rcu_thread_exit(void *unused)
{
	(void)unused;
	if (pkv__rcu_registered) {
		urcu_memb_unregister_thread();
		pkv__rcu_registered = false;
	}
}

static void rcu_key_make(void)
{
	(void)pthread_key_create(&rcu_key, rcu_thread_exit);
	/*
	 * liburcu's call_rcu worker threads do not survive fork(): without these handlers a child
	 * that uses pkv queues callbacks no thread will run (and finds the queues half-updated if a
	 * worker was mid-operation). With them, the workers pause across the fork and the child
	 * gets fresh ones. Handles opened before the fork stay the parent's (see pkv.h).
	 */
	(void)pthread_atfork(urcu_memb_call_rcu_before_fork, urcu_memb_call_rcu_after_fork_parent,
			     urcu_memb_call_rcu_after_fork_child);
}

void pkv__rcu_register_slow(void)
{
	pthread_once(&rcu_key_once, rcu_key_make);
	urcu_memb_register_thread();
	pkv__rcu_registered = true;
	/* A non-NULL value makes the key's destructor run at thread exit. */
	(void)pthread_setspecific(rcu_key, (void *)1);
}

PKV_EXPORT int pkv_thread_attach(void)
{
	pkv__rcu_enter();
	return 0;
}

PKV_EXPORT int pkv_thread_detach(void)
{
	if (pkv__rcu_registered) {
		urcu_memb_unregister_thread();
		pkv__rcu_registered = false;
		(void)pthread_setspecific(rcu_key, NULL);
	}
	return 0;
}

/* ---- logging, options ------------------------------------------------------------------ */

void pkv__log(struct pkv *db, int level, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (db == NULL || db->opts.log_fn == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	db->opts.log_fn(db->opts.log_ctx, level, msg);
}

void pkv__thread_background(void)
{
	(void)setpriority(PRIO_PROCESS, (id_t)gettid(), 10);
}

void pkv__db_set_readonly(struct pkv *db, int reason)
{
	int expected = 0;

	if (__atomic_compare_exchange_n(&db->readonly_reason, &expected, reason, false,
					__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE) &&
	    reason != PKV_EREADONLY)
		pkv__log(db, PKV_LOG_ERROR, "store %s refuses writes from now on: %s",
			 db->dir ? db->dir : "(memory)", pkv_strerror(reason));
}

PKV_EXPORT void pkv_options_default(pkv_options *opts)
{
	if (opts == NULL)
		return;
	memset(opts, 0, sizeof(*opts));
	opts->durability = PKV_DURABLE_PROCESS;
	opts->sync_interval_ms = DEFAULT_SYNC_MS;
	opts->wal_lanes = 0;
	opts->wal_segment_bytes = DEFAULT_SEGMENT;
	opts->capacity_hint = 0;
	opts->shards = DEFAULT_SHARDS;
	opts->compact_wal_bytes = DEFAULT_COMPACT_WAL;
}

/* Check @in and fill the zero "use the default" fields of @out. 0 or PKV_EINVAL. */
static int options_resolve(const pkv_options *in, pkv_options *out)
{
	if (in == NULL)
		pkv_options_default(out);
	else
		*out = *in;
	if ((unsigned)out->durability > PKV_DURABLE_PERIODIC)
		return PKV_EINVAL;
	if (out->durability == PKV_DURABLE_PERIODIC &&
	    (out->sync_interval_ms == 0 || out->sync_interval_ms > 3600000u))
		return PKV_EINVAL;
	if (out->sync_interval_ms == 0)
		out->sync_interval_ms = DEFAULT_SYNC_MS;
	if (out->wal_lanes > WAL_MAX_LANES)
		return PKV_EINVAL;
	if (out->wal_lanes == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		out->wal_lanes = n < 1 ? 1 : n > (long)WAL_MAX_LANES ? WAL_MAX_LANES : (unsigned)n;
	}
	if (out->wal_segment_bytes == 0)
		out->wal_segment_bytes = DEFAULT_SEGMENT;
	if (out->wal_segment_bytes < (64u << 10) || out->wal_segment_bytes > (1u << 30))
		return PKV_EINVAL;
	out->wal_segment_bytes = (out->wal_segment_bytes + 4095) & ~(size_t)4095;
	if (out->shards == 0)
		out->shards = DEFAULT_SHARDS;
	if (out->shards > 4096 || (out->shards & (out->shards - 1)) != 0)
		return PKV_EINVAL;
	if (out->capacity_hint > MAX_CAPACITY_HINT)
		return PKV_EINVAL;
	if (out->compact_wal_bytes == 0)
		out->compact_wal_bytes = DEFAULT_COMPACT_WAL;
	if (out->compact_wal_bytes < (1u << 20) || (uint64_t)out->compact_wal_bytes > (1ull << 40))
		return PKV_EINVAL;
	if (out->flags & ~(PKV_OPEN_READONLY | PKV_OPEN_NOCREATE | PKV_OPEN_NO_AUTOCOMPACT))
		return PKV_EINVAL;
	return 0;
}

/* ---- open / close ------------------------------------------------------------------- */

static char *path_join(const char *a, const char *b)
{
	size_t n = strlen(a) + strlen(b) + 2;
	char *p = malloc(n);

	if (p)
		snprintf(p, n, "%s/%s", a, b);
	return p;
}

static int ensure_dir(struct pkv *db, const char *path, bool create)
{
	struct stat st;
	int r;

	if (stat(path, &st) == 0) {
		if (S_ISDIR(st.st_mode))
			return 0;
		pkv__log(db, PKV_LOG_ERROR, "open: %s is not a directory", path);
		return -ENOTDIR;
	}
	if (errno != ENOENT || !create) {
		r = -errno;
		/* A missing optional subdirectory of a read-only open is the caller's to judge. */
		if (r != -ENOENT || path == db->dir)
			pkv__log(db, PKV_LOG_ERROR, "open: %s: %s", path, pkv_strerror(r));
		return r;
	}
	r = pkv__fs->mkdir(path, 0755);
	if (r == 0)
		db->open_dirty = true;
	if (r < 0 && r != -EEXIST)
		pkv__log(db, PKV_LOG_ERROR, "open: cannot make %s: %s", path, pkv_strerror(r));
	return r == -EEXIST ? 0 : r;
}

/*
 * DIR/LOCK: one open handle per directory, in any process (O_CLOEXEC: not across exec).
 * A writer takes it exclusively, creating it if the store is new. A read-only open takes it
 * shared and creates nothing: it needs read permission only, several read-only handles may
 * share a store, and a writer's exclusive lock excludes them (and they it). A directory
 * without LOCK is no store yet: an open that may not create one (NOCREATE, READONLY) gets
 * -ENOENT, even when the directory exists.
 */
static int lock_dir(struct pkv *db)
{
	char *path = path_join(db->dir, "LOCK");
	bool create = !(db->opts.flags & (PKV_OPEN_NOCREATE | PKV_OPEN_READONLY));
	int fd, r;

	if (path == NULL)
		return -ENOMEM;
	if (db->readonly_open)
		fd = pkv__fs->open(path, O_RDONLY, 0);
	else
		fd = pkv__fs->open(path, O_RDWR | (create ? O_CREAT : 0), 0644);
	if (fd == -ENOENT) {
		pkv__log(db, PKV_LOG_ERROR, "open: %s: no store there (%s is missing)", db->dir,
			 path);
	} else if (fd < 0) {
		pkv__log(db, PKV_LOG_ERROR, "open: cannot open %s%s: %s", path,
			 db->readonly_open ? " for reading" : " for writing", pkv_strerror(fd));
	}
	if (fd < 0) {
		free(path);
		return fd;
	}
	r = pkv__fs->flock(fd, (db->readonly_open ? LOCK_SH : LOCK_EX) | LOCK_NB);
	if (r < 0) {
		pkv__fs->close(fd);
		if (r == -EWOULDBLOCK) {
			pkv__log(db, PKV_LOG_ERROR, "open: %s is in use by %s", db->dir,
				 db->readonly_open ? "a handle open for writing"
						   : "another handle");
			r = PKV_ELOCKED;
		} else {
			pkv__log(db, PKV_LOG_ERROR, "open: cannot lock %s: %s", path,
				 pkv_strerror(r));
		}
		free(path);
		return r;
	}
	free(path);
	db->lock_fd = fd;
	return 0;
}

static void db_free(struct pkv *db)
{
	pkv__compactor_stop(db);
	pkv__sync_stop(db);
	pkv__wal_destroy(db);
	pkv__map_destroy(&db->map); /* waits for every pending RCU callback */
	pkv__snap_close(db->base);
	pkv__sync_destroy(db);
	pthread_cond_destroy(&db->compactor_cv);
	pthread_mutex_destroy(&db->compact_mu);
	free(db->snap_dir);
	if (db->lock_fd >= 0)
		pkv__fs->close(db->lock_fd); /* releases the flock */
	free(db->wal.dir);
	free(db->dir);
	free(db);
}

PKV_EXPORT int pkv_open(const char *dir, const pkv_options *opts, pkv **db_out)
{
	struct pkv *db;
	bool create;
	int r;

	if (db_out == NULL || (dir != NULL && dir[0] == '\0'))
		return PKV_EINVAL;
	db = calloc(1, sizeof(*db));
	if (db == NULL)
		return -ENOMEM;
	db->lock_fd = -1;
	r = options_resolve(opts, &db->opts);
	if (r < 0) {
		free(db);
		return r;
	}
	pkv__rcu_enter();
	pkv__sync_init(db);
	pthread_mutex_init(&db->compact_mu, NULL);
	pthread_cond_init(&db->compactor_cv, NULL);
	db->readonly_open = db->opts.flags & PKV_OPEN_READONLY;
	create = !(db->opts.flags & (PKV_OPEN_NOCREATE | PKV_OPEN_READONLY));
	if (dir == NULL) {
		r = pkv__map_init(&db->map, db->opts.shards, db->opts.capacity_hint);
		if (r < 0)
			goto fail;
		db->in_memory = true;
		if (db->readonly_open)
			db->readonly_reason = PKV_EREADONLY;
		*db_out = db;
		return 0;
	}

	db->dir = strdup(dir);
	db->wal.dir = path_join(dir, "wal");
	if (db->dir == NULL || db->wal.dir == NULL) {
		r = -ENOMEM;
		goto fail;
	}
	r = ensure_dir(db, db->dir, create);
	if (r < 0)
		goto fail;
	r = lock_dir(db);
	if (r < 0)
		goto fail;
	r = ensure_dir(db, db->wal.dir, !db->readonly_open);
	if (r == -ENOENT && db->readonly_open)
		r = 0; /* an empty store, read-only: nothing to replay */
	else if (r < 0)
		goto fail;
	db->snap_dir = path_join(dir, "snap");
	if (db->snap_dir == NULL) {
		r = -ENOMEM;
		goto fail;
	}
	r = ensure_dir(db, db->snap_dir, !db->readonly_open);
	if (r == -ENOENT && db->readonly_open)
		r = 0;
	if (r < 0)
		goto fail;
	r = pkv__wal_init(db, db->opts.wal_lanes);
	if (r < 0)
		goto fail;
	{
		uint64_t base_seq = 0;
		struct stat st;

		r = pkv__snap_load(db, &base_seq);
		if (r < 0)
			goto fail;
		/*
		 * With a snapshot, the live map holds only what changed since it: sizing it for the
		 * whole store would cost a zeroed table of capacity_hint entries at every open, the
		 * opposite of a restart in milliseconds. It grows with the changes instead.
		 */
		r = pkv__map_init(&db->map, db->opts.shards, db->base ? 0 : db->opts.capacity_hint);
		if (r < 0)
			goto fail;
		db->keys_baseline = db->base ? db->base->count : 0;
		db->base_bytes = db->base ? db->base->len : 0;
		if (db->base)
			db->wal.salt = db->base->salt;
		if (stat(db->wal.dir, &st) == 0)
			r = pkv__recover(db, base_seq);
		if (r < 0)
			goto fail;
	}
	if (db->readonly_open) {
		db->readonly_reason = PKV_EREADONLY;
	} else {
		/* New directory entries (LOCK, wal/, snap/) durable; a clean reopen skips it. */
		r = db->open_dirty ? pkv__fs_fsync_dir(db->dir) : 0;
		if (r == 0)
			r = pkv__sync_start(db);
		if (r == 0) /* the first append of each lane should find a segment ready */
			pkv__wal_want_spares(db);
		if (r == 0 && !(db->opts.flags & PKV_OPEN_NO_AUTOCOMPACT))
			r = pkv__compactor_start(db);
		if (r < 0)
			goto fail;
	}
	*db_out = db;
	return 0;
fail:
	db_free(db);
	return r;
}

PKV_EXPORT int pkv_close(pkv *db)
{
	int r = 0;

	if (db == NULL)
		return 0;
	pkv__rcu_enter();
	if (!db->in_memory && !db->readonly_open) {
		pkv__compactor_stop(db);
		pkv__sync_stop(db);
		if (pkv__db_readonly(db) == 0)
			r = pkv__sync_wait(db, __atomic_load_n(&db->wal.seq, __ATOMIC_ACQUIRE));
		else
			r = pkv__db_readonly(db);
		if (r == 0)
			pkv__wal_close_clean(db);
	}
	db_free(db);
	return r;
}

/* ---- the write path ---------------------------------------------------------------- */

static int check_key(const void *key, size_t klen)
{
	if (key == NULL || klen == 0)
		return PKV_EINVAL;
	if (klen > PKV_MAX_KEY)
		return PKV_ETOOBIG;
	return 0;
}

int pkv__db_plan_locked(struct pkv *db, struct map_shard *s, uint64_t hash, const void *key,
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
		b = pkv__db_base_rcu(db);
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

int pkv__db_commit_locked(struct pkv *db, struct map_shard *s, uint64_t hash, const void *key,
			  size_t klen, struct write_plan *p, uint64_t seq)
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

static int db_write(struct pkv *db, enum wal_rec_type type, const void *key, size_t klen,
		    const void *val, size_t vlen, unsigned flags)
{
	struct pkv_rec *rec = NULL;
	struct write_plan plan = { 0 };
	struct map_shard *s;
	uint64_t h;
	int64_t seq = 0;
	bool durable;
	int r = 0;

	if (pkv__db_readonly(db))
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
	r = pkv__db_plan_locked(db, s, h, key, klen, rec, 0, &plan);
	if (r < 0)
		goto unlock;
	if (db->in_memory)
		seq = (int64_t)__atomic_add_fetch(&db->mem_seq, 1, __ATOMIC_RELAXED);
	else
		seq = pkv__wal_append(db, type, key, (uint32_t)klen, val, (uint32_t)vlen);
	if (seq < 0) {
		r = (int)seq;
		goto unlock;
	}
	r = pkv__db_commit_locked(db, s, h, key, klen, &plan, (uint64_t)seq);
	if (r < 0) {
		/*
		 * Unreachable unless memory ran out and ck_ht also had to grow for a full probe
		 * sequence (map.c M.6). The record is in the log but not in the map: stop writing
		 * rather than let the two disagree further.
		 */
		pkv__db_set_readonly(db, r);
		goto unlock;
	}
	rec = NULL;
	if (type == WAL_PUT)
		__atomic_store_n(&s->puts, s->puts + 1, __ATOMIC_RELAXED);
	else
		__atomic_store_n(&s->dels, s->dels + 1, __ATOMIC_RELAXED);
unlock:
	pthread_mutex_unlock(&s->lock);
	if (plan.rec && plan.rec != rec)
		pkv__rec_free(plan.rec); /* an unused tombstone */
	if (rec)
		pkv__rec_free(rec);
	if (r < 0 || db->in_memory)
		goto out;
	pkv__wal_wait_written(db, (uint64_t)seq);
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
	r = check_key(key, klen);
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
	r = check_key(key, klen);
	if (r < 0)
		return r;
	return db_write(db, WAL_DEL, key, klen, NULL, 0, flags);
}

PKV_EXPORT int pkv_del(pkv *db, const void *key, size_t klen)
{
	return pkv_del_ex(db, key, klen, 0);
}

/* ---- the read path ----------------------------------------------------------------- */

PKV_EXPORT int pkv_get(pkv *db, const void *key, size_t klen, void *buf, size_t cap, size_t *vlen)
{
	const struct pkv_rec *rec;
	const void *val = NULL;
	uint32_t n = 0;
	uint64_t h;
	int r;

	if (db == NULL || vlen == NULL || (buf == NULL && cap > 0))
		return PKV_EINVAL;
	r = check_key(key, klen);
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
		const struct pkv_snap *base = pkv__db_base_rcu(db);
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

/* ---- sync, stats ------------------------------------------------------------------- */

PKV_EXPORT int pkv_sync(pkv *db)
{
	int r;

	if (db == NULL)
		return PKV_EINVAL;
	if (db->in_memory)
		return 0;
	if (db->readonly_open)
		return PKV_EREADONLY;
	pkv__rcu_enter();
	r = pkv__sync_wait(db, __atomic_load_n(&db->wal.seq, __ATOMIC_ACQUIRE));
	return r;
}

static uint64_t count_segments(struct pkv *db)
{
	DIR *d = db->wal.dir ? opendir(db->wal.dir) : NULL;
	struct dirent *e;
	uint64_t n = 0;

	if (d == NULL)
		return 0;
	while ((e = readdir(d)) != NULL) {
		size_t len = strlen(e->d_name);
		n += len > 4 && strcmp(e->d_name + len - 4, ".wal") == 0;
	}
	closedir(d);
	return n;
}

PKV_EXPORT int pkv_get_stats(pkv *db, pkv_stats *out)
{
	if (db == NULL || out == NULL)
		return PKV_EINVAL;
	memset(out, 0, sizeof(*out));
	for (unsigned i = 0; i < db->map.nshards; i++) {
		out->puts += __atomic_load_n(&db->map.shards[i].puts, __ATOMIC_RELAXED);
		out->dels += __atomic_load_n(&db->map.shards[i].dels, __ATOMIC_RELAXED);
	}
	out->keys = db->keys_baseline;
	for (unsigned i = 0; i < db->map.nshards; i++)
		out->keys += (uint64_t)__atomic_load_n(&db->map.shards[i].nkeys, __ATOMIC_RELAXED);
	if (db->in_memory) {
		out->last_seq = __atomic_load_n(&db->mem_seq, __ATOMIC_RELAXED);
		out->durable_seq = 0;
	} else {
		out->last_seq = __atomic_load_n(&db->wal.seq, __ATOMIC_ACQUIRE);
		out->durable_seq = __atomic_load_n(&db->wal.synced, __ATOMIC_ACQUIRE);
		for (unsigned i = 0; i < db->wal.nlanes; i++)
			out->wal_bytes += __atomic_load_n(&db->wal.lanes[i].bytes, __ATOMIC_RELAXED);
		out->wal_segments = count_segments(db);
		pthread_mutex_lock(&db->sync.mu);
		out->syncs = db->sync.syncs;
		out->synced_writes = db->sync.synced_writes;
		pthread_mutex_unlock(&db->sync.mu);
	}
	out->recovered_records = db->rec.recovered_records;
	out->discarded_records = db->rec.discarded_records;
	out->discarded_bytes = db->rec.discarded_bytes;
	out->recovery_gap_seq = db->rec.gap_seq;
	out->readonly_reason = pkv__db_readonly(db);
	pkv__rcu_enter();
	pkv__rcu_read_lock(); /* keeps the base mapped while we read it */
	{
		const struct pkv_snap *b = pkv__db_base_rcu(db);
		if (b) {
			out->snapshot_seq = b->seq;
			out->snapshot_keys = b->count;
			out->snapshot_bytes = b->len;
		}
	}
	pkv__rcu_read_unlock();
	out->compactions = __atomic_load_n(&db->compactions, __ATOMIC_RELAXED);
	return 0;
}
