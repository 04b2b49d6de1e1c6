/* SPDX-License-Identifier: MIT */
/*
 * ad_lmdb.c - LMDB (liblmdb), configured as its documentation advises for each level:
 *   lmdb:nosync  MDB_NOSYNC: commits are not flushed (a process crash loses nothing, a system
 *                crash may lose the last transactions).
 *   lmdb:sync    default flags: every commit is flushed (fdatasync) before it returns.
 * One write transaction per put (LMDB serialises writers itself); the bulk load commits every
 * BULK_TXN puts. Each reader thread keeps one read-only transaction handle and, as the docs
 * advise for short reads, renews it for a get and resets it after, so a get sees every write
 * that returned before it.
 */
#include "bench.h"

#include <errno.h>
#include <lmdb.h>
#include <stdlib.h>
#include <string.h>

#define BULK_TXN 10000u

struct lmdb {
	MDB_env *env;
	MDB_dbi dbi;
	MDB_txn *bulk;
	unsigned bulk_n;
};

struct lthr {
	MDB_txn *rd;
};

static int mrc(int rc)
{
	return rc == 0 ? 0 : rc == MDB_NOTFOUND ? KV_NOTFOUND : (rc > 0 ? -rc : rc);
}

static int l_open(const struct kv_conf *c, void **out, char *cfg, size_t cap)
{
	struct lmdb *d = calloc(1, sizeof(*d));
	MDB_txn *txn;
	int rc;
	if (!d)
		return -ENOMEM;
	size_t map = (size_t)c->nkeys * (c->klen + c->vlen + 64u) * 4u + ((size_t)1 << 30);
	unsigned flags = c->dur == DUR_SYNC ? 0u : MDB_NOSYNC;
	if ((rc = mdb_env_create(&d->env)) != 0 ||
	    (rc = mdb_env_set_mapsize(d->env, map)) != 0 ||
	    (rc = mdb_env_set_maxreaders(d->env, 256)) != 0 ||
	    (rc = mdb_env_open(d->env, c->dir, flags, 0644)) != 0)
		goto fail;
	if ((rc = mdb_txn_begin(d->env, NULL, 0, &txn)) != 0)
		goto fail;
	if ((rc = mdb_dbi_open(txn, NULL, 0, &d->dbi)) != 0) {
		mdb_txn_abort(txn);
		goto fail;
	}
	if ((rc = mdb_txn_commit(txn)) != 0)
		goto fail;
	snprintf(cfg, cap,
		 "%s, flags %s, map size %zu MiB, one write txn per put (bulk load: %u puts per "
		 "txn), per-thread read txn renewed/reset around each get",
		 MDB_VERSION_STRING, c->dur == DUR_SYNC ? "default (sync every commit)" : "MDB_NOSYNC",
		 map >> 20, BULK_TXN);
	*out = d;
	return 0;
fail:
	if (d->env)
		mdb_env_close(d->env);
	free(d);
	return mrc(rc);
}

static int l_close(void *db)
{
	struct lmdb *d = db;
	if (d->bulk)
		mdb_txn_abort(d->bulk);
	mdb_dbi_close(d->env, d->dbi);
	mdb_env_close(d->env);
	free(d);
	return 0;
}

static void *l_thread_init(void *db)
{
	(void)db;
	return calloc(1, sizeof(struct lthr));
}

static void l_thread_fini(void *db, void *t)
{
	struct lthr *th = t;
	(void)db;
	if (th && th->rd)
		mdb_txn_abort(th->rd);
	free(th);
}

static int l_get(void *db, void *t, const void *k, size_t kl, void *buf, size_t cap, size_t *vl)
{
	struct lmdb *d = db;
	struct lthr *th = t;
	MDB_val key = {kl, (void *)k}, val;
	int rc;
	if (!th->rd)
		rc = mdb_txn_begin(d->env, NULL, MDB_RDONLY, &th->rd);
	else
		rc = mdb_txn_renew(th->rd);
	if (rc)
		return mrc(rc);
	rc = mdb_get(th->rd, d->dbi, &key, &val);
	if (rc == 0) {
		*vl = val.mv_size;
		memcpy(buf, val.mv_data, cap < val.mv_size ? cap : val.mv_size);
	}
	mdb_txn_reset(th->rd);
	return mrc(rc);
}

static int l_write(struct lmdb *d, const void *k, size_t kl, const void *v, size_t vl, int del)
{
	MDB_val key = {kl, (void *)k}, val = {vl, (void *)v};
	MDB_txn *txn;
	int rc;
	if (d->bulk) {
		rc = del ? mdb_del(d->bulk, d->dbi, &key, NULL) : mdb_put(d->bulk, d->dbi, &key, &val, 0);
		if (rc == 0 && ++d->bulk_n % BULK_TXN == 0) {
			rc = mdb_txn_commit(d->bulk);
			d->bulk = NULL;
			if (rc == 0)
				rc = mdb_txn_begin(d->env, NULL, 0, &d->bulk);
		}
		return mrc(rc);
	}
	if ((rc = mdb_txn_begin(d->env, NULL, 0, &txn)) != 0)
		return mrc(rc);
	rc = del ? mdb_del(txn, d->dbi, &key, NULL) : mdb_put(txn, d->dbi, &key, &val, 0);
	if (rc) {
		mdb_txn_abort(txn);
		return mrc(rc);
	}
	return mrc(mdb_txn_commit(txn));
}

static int l_put(void *db, void *t, const void *k, size_t kl, const void *v, size_t vl)
{
	(void)t;
	return l_write(db, k, kl, v, vl, 0);
}

static int l_del(void *db, void *t, const void *k, size_t kl)
{
	(void)t;
	return l_write(db, k, kl, NULL, 0, 1);
}

static int l_sync(void *db, void *t)
{
	struct lmdb *d = db;
	(void)t;
	return mrc(mdb_env_sync(d->env, 1));
}

static int l_bulk_begin(void *db, void *t)
{
	struct lmdb *d = db;
	(void)t;
	d->bulk_n = 0;
	return mrc(mdb_txn_begin(d->env, NULL, 0, &d->bulk));
}

static int l_bulk_end(void *db, void *t)
{
	struct lmdb *d = db;
	(void)t;
	if (!d->bulk)
		return 0;
	int rc = mdb_txn_commit(d->bulk);
	d->bulk = NULL;
	return mrc(rc);
}

static int l_warm(void *db, void *t)
{
	/* A cursor over every record: the map's pages are then resident. */
	struct lmdb *d = db;
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	volatile uint8_t sink = 0;
	(void)t;
	int rc = mdb_txn_begin(d->env, NULL, MDB_RDONLY, &txn);
	if (rc)
		return mrc(rc);
	rc = mdb_cursor_open(txn, d->dbi, &cur);
	if (!rc) {
		while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0)
			sink ^= v.mv_size ? ((const uint8_t *)v.mv_data)[v.mv_size - 1] : 0;
		mdb_cursor_close(cur);
	}
	mdb_txn_abort(txn);
	(void)sink;
	return rc == MDB_NOTFOUND ? 0 : mrc(rc);
}

static int l_checkpoint(void *db)
{
	return l_sync(db, NULL); /* LMDB has no log: its B-tree is the base image */
}

static const char *l_strerror(int rc)
{
	/* LMDB's own codes are negative (-30799 ...), system errors were negated by mrc(). */
	return mdb_strerror(rc <= -30000 ? rc : -rc);
}

const struct kv_engine engine_lmdb = {
	.name = "lmdb",
	.modes = (1u << DUR_NOSYNC) | (1u << DUR_SYNC),
	.persistent = 1,
	.open = l_open,
	.close = l_close,
	.thread_init = l_thread_init,
	.thread_fini = l_thread_fini,
	.get = l_get,
	.put = l_put,
	.del = l_del,
	.sync = l_sync,
	.bulk_begin = l_bulk_begin,
	.bulk_end = l_bulk_end,
	.checkpoint = l_checkpoint,
	.warm = l_warm,
	.strerror = l_strerror,
};
