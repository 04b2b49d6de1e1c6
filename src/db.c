/* SPDX-License-Identifier: MIT */
/*
 * db.c - the public API's store life cycle: open/close, options, DIR/LOCK, pkv_sync, stats,
 * pkv_compact.
 * The get path is in read.c, the put/del path in write.c, pkv_verify in verify.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "db.h"
#include "store.h"
#include "errors.h"
#include "fs.h"
#include "rcu.h"
#include "compact.h"
#include "recovery.h"
#include "snapshot.h"
#include "wal.h"

#define DEFAULT_SHARDS 64u
#define DEFAULT_SEGMENT (16u << 20)
#define DEFAULT_SYNC_MS 100u
#define MAX_CAPACITY_HINT (1ull << 36)
#define DEFAULT_COMPACT_WAL (64u << 20)

PKV_EXPORT int pkv_thread_attach(void)
{
	pkv__rcu_enter();
	return 0;
}

PKV_EXPORT int pkv_thread_detach(void)
{
	if (pkv__in_read_section())
		return PKV_EINVAL; /* read.c RD.4: unregistering would end the sections under it */
	pkv__rcu_unregister();
	return 0;
}

/* ---- options ------------------------------------------------------------------------ */

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
	opts->sync_rounds = 1;
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
	if (out->sync_interval_ms == 0)
		out->sync_interval_ms = DEFAULT_SYNC_MS;
	if (out->durability == PKV_DURABLE_PERIODIC && out->sync_interval_ms > 3600000u)
		return PKV_EINVAL;
	if (out->wal_lanes > WAL_MAX_LANES)
		return PKV_EINVAL;
	/* POWER: one lane unless asked otherwise. Every lane with new records costs a round one
	 * fdatasync, and one flush per round measured faster than parallel ones
	 * (docs/benchmarks.md, "Group commit"); one lane's lock is held ~0.2 us per record. */
	if (out->wal_lanes == 0 && out->durability == PKV_DURABLE_POWER)
		out->wal_lanes = 1;
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
	if (out->sync_rounds == 0)
		out->sync_rounds = 1;
	if (out->sync_rounds > WAL_SYNC_SLOTS)
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
 * L.1 A child forked without exec inherits the DIR/LOCK descriptor of every handle open in its
 *     parent, and with it the flock (it belongs to the open file, which both now share): a parent
 *     that closed and reopened the store while such a child lived would get PKV_ELOCKED. The
 *     child does not own those handles (pkv.h), so a pthread_atfork child handler closes its
 *     copies at once: the parent's lock stays the parent's and dies with its pkv_close. The list
 *     of open handles is held across the fork so that the child finds it whole.
 */
static pthread_mutex_t locks_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t locks_once = PTHREAD_ONCE_INIT;
static struct pkv *locks_head;

static void locks_prepare(void)
{
	pthread_mutex_lock(&locks_mu);
}

static void locks_parent(void)
{
	pthread_mutex_unlock(&locks_mu);
}

static void locks_child(void)
{
	for (struct pkv *d = locks_head; d != NULL; d = d->lock_next) {
		if (d->lock_fd >= 0)
			(void)close(d->lock_fd);
		d->lock_fd = -1; /* the parent's handle: a child's pkv_close must not close it */
	}
	locks_head = NULL;
	pthread_mutex_unlock(&locks_mu);
}

static void locks_init(void)
{
	(void)pthread_atfork(locks_prepare, locks_parent, locks_child);
}

/* Release @db's lock: off the list and closed under locks_mu, so no fork falls in between. */
static void unlock_dir(struct pkv *db)
{
	pthread_mutex_lock(&locks_mu);
	for (struct pkv **p = &locks_head; *p != NULL; p = &(*p)->lock_next)
		if (*p == db) {
			*p = db->lock_next;
			break;
		}
	if (db->lock_fd >= 0)
		pkv__fs->close(db->lock_fd); /* releases the flock */
	db->lock_fd = -1;
	pthread_mutex_unlock(&locks_mu);
}

/*
 * DIR/LOCK: one open handle per directory, in any process (O_CLOEXEC: not across exec).
 * A writer takes it exclusively, creating it if the store is new. A read-only open takes it
 * shared and creates nothing: it needs read permission only, several read-only handles may
 * share a store, and a writer's exclusive lock excludes them (and they it). A directory
 * without LOCK is no store yet: an open that may not create one (NOCREATE, READONLY) gets
 * -ENOENT, even when the directory exists.
 */
static int lock_dir_locked(struct pkv *db)
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

/* DIR/LOCK opened, locked and listed under locks_mu (L.1: no fork falls in between). */
static int lock_dir(struct pkv *db)
{
	int r;

	pthread_once(&locks_once, locks_init);
	pthread_mutex_lock(&locks_mu);
	r = lock_dir_locked(db);
	if (r == 0) {
		db->lock_next = locks_head;
		locks_head = db;
	}
	pthread_mutex_unlock(&locks_mu);
	return r;
}

static void db_free(struct pkv *db)
{
	pkv__compactor_stop(db);
	pkv__sync_stop(db);
	pkv__sync_release(db); /* closed segments tell the WAL (wal.c W.7): before it goes */
	pkv__wal_destroy(&db->wal);
	pkv__map_destroy(&db->map); /* waits for every pending RCU callback */
	pkv__snap_close(db->base);
	/* Unmapped, not deleted: the clear record that disregards it is still in the WAL. */
	pkv__snap_close(db->cleared_base);
	pkv__sync_destroy(db);
	pthread_cond_destroy(&db->compactor_cv);
	pthread_mutex_destroy(&db->compactor_mu);
	pthread_mutex_destroy(&db->compact_mu);
	free(db->snap_dir);
	if (db->lock_fd >= 0)
		unlock_dir(db);
	free(db->wal.dir);
	free(db->dir);
	free(db);
}

PKV_EXPORT int pkv_open(const char *dir, const pkv_options *opts, pkv **db_out)
{
	struct pkv *db;
	bool create;
	int r;

	/* read.c RD.4: a failed open waits for RCU callbacks (pkv__map_destroy). */
	if (db_out == NULL || (dir != NULL && dir[0] == '\0') || pkv__in_read_section())
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
	db->log.fn = db->opts.log_fn;
	db->log.ctx = db->opts.log_ctx;
	pkv__rcu_enter();
	pkv__sync_init(db);
	pthread_mutex_init(&db->compact_mu, NULL);
	pthread_mutex_init(&db->compactor_mu, NULL);
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
	r = pkv__wal_init(&db->wal, db->opts.wal_lanes, db->opts.wal_segment_bytes, &db->log);
	if (r < 0)
		goto fail;
	{
		uint64_t base_seq = 0;
		struct stat st;

		r = pkv__snap_load(db->snap_dir, db->dir, db->readonly_open, &db->log, &db->base,
				   &base_seq);
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
		if (r == 0) { /* the first append of each lane should find a segment ready */
			pkv__wal_want_spares(&db->wal);
			pkv__sync_kick(db);
		}
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
	if (pkv__in_read_section())
		return PKV_EINVAL; /* read.c RD.4: closing waits for every reader; nothing changed */
	pkv__rcu_enter();
	if (!db->in_memory && !db->readonly_open) {
		pkv__compactor_stop(db);
		pkv__sync_stop(db);
		if (pkv__store_readonly(db) == 0)
			r = pkv__sync_wait(db, __atomic_load_n(&db->wal.seq, __ATOMIC_ACQUIRE));
		else
			r = pkv__store_readonly(db);
		if (r == 0)
			pkv__wal_close_clean(&db->wal);
	}
	db_free(db);
	return r;
}

/* ---- sync, stats -------------------------------------------------------------------- */

PKV_EXPORT int pkv_sync(pkv *db)
{
	int r;

	if (db == NULL || pkv__in_read_section()) /* read.c RD.4 */
		return PKV_EINVAL;
	if (db->in_memory)
		return 0;
	if (db->readonly_open)
		return PKV_EREADONLY;
	pkv__rcu_enter();
	r = pkv__sync_wait(db, __atomic_load_n(&db->wal.seq, __ATOMIC_ACQUIRE));
	return r;
}

/* ---- compact, verify ---------------------------------------------------------------- */

PKV_EXPORT int pkv_compact(pkv *db)
{
	if (db == NULL || pkv__in_read_section()) /* read.c RD.4: it waits for a grace period */
		return PKV_EINVAL;
	if (db->in_memory)
		return 0;
	if (db->readonly_open || pkv__store_readonly(db))
		return PKV_EREADONLY;
	pkv__rcu_enter();
	return pkv__compact_run(db);
}

static uint64_t count_segments(struct pkv *db)
{
	DIR *d = db->wal.dir ? opendir(db->wal.dir) : NULL;
	struct dirent *e;
	uint64_t n = 0;

	if (d == NULL)
		return 0;
	while ((e = readdir(d)) != NULL) {
		uint32_t lane;
		uint64_t segno;
		bool tmp;

		n += pkv__wal_seg_parse_name(e->d_name, &lane, &segno, &tmp) == 0 && !tmp;
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
		out->map_grows += __atomic_load_n(&db->map.shards[i].grows, __ATOMIC_RELAXED);
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
		out->wal_bytes = pkv__wal_bytes(&db->wal);
		out->wal_segments = count_segments(db);
		out->wal_recycled = __atomic_load_n(&db->wal.recycled, __ATOMIC_RELAXED);
		pthread_mutex_lock(&db->sync.mu);
		out->syncs = db->sync.syncs;
		out->synced_writes = db->sync.synced_writes;
		pthread_mutex_unlock(&db->sync.mu);
	}
	out->recovered_records = db->rec.recovered_records;
	out->discarded_records = db->rec.discarded_records;
	out->discarded_bytes = db->rec.discarded_bytes;
	out->recovery_gap_seq = db->rec.gap_seq;
	out->readonly_reason = pkv__store_readonly(db);
	pkv__rcu_enter();
	pkv__rcu_read_lock(); /* keeps the base mapped while we read it */
	{
		const struct pkv_snap *b = pkv__store_base_rcu(db);
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
