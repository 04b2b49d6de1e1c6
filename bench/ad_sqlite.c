/* SPDX-License-Identifier: MIT */
/*
 * ad_sqlite.c - SQLite as a key-value store: WAL journal mode, a WITHOUT ROWID table
 * kv(k BLOB PRIMARY KEY, v BLOB), prepared statements, one connection per thread (opened
 * SQLITE_OPEN_NOMUTEX: each is used by one thread only), memory-mapped reads. Levels, as the
 * SQLite documentation describes them for WAL mode:
 *   sqlite:nosync  synchronous=NORMAL: a commit is not synced (a process crash loses nothing,
 *                  a power loss may roll back the last commits; the WAL is synced at checkpoints).
 *   sqlite:sync    synchronous=FULL: the WAL is synced at every commit.
 * Writers from several connections serialise on SQLite's write lock (busy_timeout 10 s).
 * A put is an UPSERT in its own (autocommit) transaction; the bulk load commits every
 * BULK_TXN puts.
 */
#include "bench.h"

#include <errno.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#define BULK_TXN 10000u

struct sdb {
	char path[PATH_MAX];
	int sync;
	long long mmap;
	sqlite3 *main; /* schema, checkpoints; keeps the WAL alive between thread connections */
};

struct sthr {
	sqlite3 *db;
	sqlite3_stmt *get, *put, *del;
	int bulk;
	unsigned bulk_n;
};

static __thread char s_err[256];

static int serr(sqlite3 *db, int rc)
{
	snprintf(s_err, sizeof(s_err), "sqlite %d: %s", rc, db ? sqlite3_errmsg(db) : "?");
	return -EIO;
}

static int exec(sqlite3 *db, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
	if (rc != SQLITE_OK) {
		snprintf(s_err, sizeof(s_err), "%s: %s", sql, msg ? msg : "?");
		sqlite3_free(msg);
		return -EIO;
	}
	return 0;
}

static int conn_open(struct sdb *d, sqlite3 **out)
{
	sqlite3 *db = NULL;
	char sql[256];
	int rc = sqlite3_open_v2(d->path, &db,
				 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		rc = serr(db, rc);
		sqlite3_close(db);
		return rc;
	}
	sqlite3_busy_timeout(db, 10000);
	snprintf(sql, sizeof(sql), "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s; "
		 "PRAGMA mmap_size=%lld;", d->sync ? "FULL" : "NORMAL", d->mmap);
	if ((rc = exec(db, sql)) != 0) {
		sqlite3_close(db);
		return rc;
	}
	*out = db;
	return 0;
}

static int s_open(const struct kv_conf *c, void **out, char *cfg, size_t cap)
{
	struct sdb *d = calloc(1, sizeof(*d));
	int rc;
	if (!d)
		return -ENOMEM;
	snprintf(d->path, sizeof(d->path), "%s/kv.sqlite", c->dir);
	d->sync = c->dur == DUR_SYNC;
	d->mmap = (long long)c->nkeys * (c->klen + c->vlen) * 3 + (256ll << 20);
	if ((rc = conn_open(d, &d->main)) != 0 ||
	    (rc = exec(d->main, "CREATE TABLE IF NOT EXISTS kv(k BLOB PRIMARY KEY, v BLOB) "
				"WITHOUT ROWID;")) != 0) {
		if (d->main)
			sqlite3_close(d->main);
		free(d);
		return rc;
	}
	snprintf(cfg, cap,
		 "SQLite %s, journal_mode=WAL, synchronous=%s, WITHOUT ROWID table "
		 "kv(k BLOB PRIMARY KEY, v BLOB), prepared statements, one connection per thread "
		 "(NOMUTEX), mmap_size=%lld MiB, default cache_size and auto-checkpoint, UPSERT per "
		 "put in autocommit (bulk load: %u per txn), busy_timeout 10 s",
		 sqlite3_libversion(), d->sync ? "FULL" : "NORMAL", d->mmap >> 20, BULK_TXN);
	*out = d;
	return 0;
}

static int s_close(void *db)
{
	struct sdb *d = db;
	int rc = sqlite3_close(d->main);
	free(d);
	return rc == SQLITE_OK ? 0 : -EBUSY;
}

static void *s_thread_init(void *db)
{
	struct sdb *d = db;
	struct sthr *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	if (conn_open(d, &t->db) != 0 ||
	    sqlite3_prepare_v2(t->db, "SELECT v FROM kv WHERE k=?1", -1, &t->get, NULL) ||
	    sqlite3_prepare_v2(t->db, "INSERT INTO kv(k,v) VALUES(?1,?2) "
				      "ON CONFLICT(k) DO UPDATE SET v=excluded.v", -1, &t->put, NULL) ||
	    sqlite3_prepare_v2(t->db, "DELETE FROM kv WHERE k=?1", -1, &t->del, NULL)) {
		/* Operations on a half-made context fail with -EIO. */
		return t;
	}
	return t;
}

static void s_thread_fini(void *db, void *tp)
{
	struct sthr *t = tp;
	(void)db;
	if (!t)
		return;
	sqlite3_finalize(t->get);
	sqlite3_finalize(t->put);
	sqlite3_finalize(t->del);
	if (t->db)
		sqlite3_close(t->db);
	free(t);
}

static int s_get(void *db, void *tp, const void *k, size_t kl, void *buf, size_t cap, size_t *vl)
{
	struct sthr *t = tp;
	(void)db;
	if (!t || !t->get)
		return -EIO;
	sqlite3_bind_blob(t->get, 1, k, (int)kl, SQLITE_STATIC);
	int rc = sqlite3_step(t->get), ret;
	if (rc == SQLITE_ROW) {
		size_t len = (size_t)sqlite3_column_bytes(t->get, 0);
		const void *v = sqlite3_column_blob(t->get, 0);
		*vl = len;
		if (len)
			memcpy(buf, v, cap < len ? cap : len);
		ret = 0;
	} else if (rc == SQLITE_DONE) {
		ret = KV_NOTFOUND;
	} else {
		ret = serr(t->db, rc);
	}
	sqlite3_reset(t->get);
	return ret;
}

static int bulk_step(struct sthr *t)
{
	if (!t->bulk || ++t->bulk_n % BULK_TXN != 0)
		return 0;
	int rc = exec(t->db, "COMMIT");
	return rc ? rc : exec(t->db, "BEGIN");
}

static int s_put(void *db, void *tp, const void *k, size_t kl, const void *v, size_t vl)
{
	struct sthr *t = tp;
	(void)db;
	if (!t || !t->put)
		return -EIO;
	sqlite3_bind_blob(t->put, 1, k, (int)kl, SQLITE_STATIC);
	sqlite3_bind_blob(t->put, 2, vl ? v : "", (int)vl, SQLITE_STATIC);
	int rc = sqlite3_step(t->put);
	sqlite3_reset(t->put);
	if (rc != SQLITE_DONE)
		return serr(t->db, rc);
	return bulk_step(t);
}

static int s_del(void *db, void *tp, const void *k, size_t kl)
{
	struct sthr *t = tp;
	(void)db;
	if (!t || !t->del)
		return -EIO;
	sqlite3_bind_blob(t->del, 1, k, (int)kl, SQLITE_STATIC);
	int rc = sqlite3_step(t->del);
	sqlite3_reset(t->del);
	if (rc != SQLITE_DONE)
		return serr(t->db, rc);
	return sqlite3_changes(t->db) ? bulk_step(t) : KV_NOTFOUND;
}

static int s_sync(void *db, void *tp)
{
	struct sdb *d = db;
	(void)tp;
	/* A full checkpoint syncs the WAL and copies it into the database file. */
	return exec(d->main, "PRAGMA wal_checkpoint(FULL);");
}

static int s_bulk_begin(void *db, void *tp)
{
	struct sthr *t = tp;
	(void)db;
	if (!t || !t->db)
		return -EIO;
	t->bulk = 1;
	t->bulk_n = 0;
	return exec(t->db, "BEGIN");
}

static int s_bulk_end(void *db, void *tp)
{
	struct sthr *t = tp;
	(void)db;
	t->bulk = 0;
	return exec(t->db, "COMMIT");
}

static int s_warm(void *db, void *tp)
{
	/* Read every value once through this thread's connection (fills the mapping). */
	struct sthr *t = tp;
	(void)db;
	if (!t || !t->db)
		return -EIO;
	return exec(t->db, "SELECT sum(length(v)) FROM kv;");
}

static int s_checkpoint(void *db)
{
	struct sdb *d = db;
	return exec(d->main, "PRAGMA wal_checkpoint(TRUNCATE);");
}

static const char *s_strerror(int rc)
{
	return rc == -EIO && s_err[0] ? s_err : strerror(rc < 0 ? -rc : rc);
}

const struct kv_engine engine_sqlite = {
	.name = "sqlite",
	.modes = (1u << DUR_NOSYNC) | (1u << DUR_SYNC),
	.persistent = 1,
	.open = s_open,
	.close = s_close,
	.thread_init = s_thread_init,
	.thread_fini = s_thread_fini,
	.get = s_get,
	.put = s_put,
	.del = s_del,
	.sync = s_sync,
	.bulk_begin = s_bulk_begin,
	.bulk_end = s_bulk_end,
	.checkpoint = s_checkpoint,
	.warm = s_warm,
	.strerror = s_strerror,
};
