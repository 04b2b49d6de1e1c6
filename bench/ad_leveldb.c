/* SPDX-License-Identifier: MIT */
/*
 * ad_leveldb.c - LevelDB through its C API, with what its documentation's performance section
 * recommends for point lookups: an LRU block cache (sized for the data set) and a 10 bits/key
 * Bloom filter. Default write buffer (4 MiB) and compression. Levels:
 *   leveldb:nosync  WriteOptions.sync = false (survives a process crash).
 *   leveldb:sync    WriteOptions.sync = true (the log is synced before a write returns;
 *                   LevelDB groups concurrent writers into one log write).
 * leveldb_get returns a malloc'ed copy: it is copied into the buffer and freed. The bulk load
 * writes batches of BULK_BATCH puts; before experiments the bench compacts the whole range (no
 * pending-compaction counter to wait on) and warms the block cache with a full scan.
 */
#include "bench.h"

#include <errno.h>
#include <leveldb/c.h>
#include <stdlib.h>
#include <string.h>

struct ldb {
	leveldb_t *db;
	leveldb_options_t *opt;
	leveldb_cache_t *cache;
	leveldb_filterpolicy_t *filter;
	leveldb_writeoptions_t *wo, *wo_sync;
	leveldb_readoptions_t *ro;
	leveldb_writebatch_t *bulk; /* between bulk_begin and bulk_end */
	unsigned bulk_n;
};

#define BULK_BATCH 1000u

static __thread char l_err[256];

static int lerr(char *err)
{
	if (!err)
		return 0;
	snprintf(l_err, sizeof(l_err), "%s", err);
	leveldb_free(err);
	return -EIO;
}

static void ld_free(struct ldb *d)
{
	if (d->ro)
		leveldb_readoptions_destroy(d->ro);
	if (d->wo)
		leveldb_writeoptions_destroy(d->wo);
	if (d->wo_sync)
		leveldb_writeoptions_destroy(d->wo_sync);
	if (d->opt)
		leveldb_options_destroy(d->opt);
	if (d->filter)
		leveldb_filterpolicy_destroy(d->filter);
	if (d->cache)
		leveldb_cache_destroy(d->cache);
	free(d);
}

static int ld_open(const struct kv_conf *c, void **out, char *cfg, size_t cap)
{
	struct ldb *d = calloc(1, sizeof(*d));
	char *err = NULL;
	if (!d)
		return -ENOMEM;
	size_t cache = (size_t)c->nkeys * (c->klen + c->vlen) * 2u;
	if (cache < ((size_t)64 << 20))
		cache = (size_t)64 << 20;
	d->opt = leveldb_options_create();
	leveldb_options_set_create_if_missing(d->opt, 1);
	d->cache = leveldb_cache_create_lru(cache);
	leveldb_options_set_cache(d->opt, d->cache);
	d->filter = leveldb_filterpolicy_create_bloom(10);
	leveldb_options_set_filter_policy(d->opt, d->filter);
	d->wo = leveldb_writeoptions_create();
	leveldb_writeoptions_set_sync(d->wo, c->dur == DUR_SYNC);
	d->wo_sync = leveldb_writeoptions_create();
	leveldb_writeoptions_set_sync(d->wo_sync, 1);
	d->ro = leveldb_readoptions_create();
	d->db = leveldb_open(d->opt, c->dir, &err);
	if (err) {
		int rc = lerr(err);
		ld_free(d);
		return rc;
	}
	snprintf(cfg, cap,
		 "LevelDB %d.%d C API, LRU block cache %zu MiB, Bloom 10 bits/key, default 4 MiB "
		 "write buffer and compression, WriteOptions.sync=%s",
		 leveldb_major_version(), leveldb_minor_version(), cache >> 20,
		 c->dur == DUR_SYNC ? "true" : "false");
	*out = d;
	return 0;
}

static int ld_close(void *db)
{
	struct ldb *d = db;
	leveldb_close(d->db);
	ld_free(d);
	return 0;
}

static int ld_get(void *db, void *t, const void *k, size_t kl, void *buf, size_t cap, size_t *vl)
{
	struct ldb *d = db;
	char *err = NULL;
	size_t len = 0;
	(void)t;
	char *v = leveldb_get(d->db, d->ro, k, kl, &len, &err);
	if (err)
		return lerr(err);
	if (!v)
		return KV_NOTFOUND;
	*vl = len;
	memcpy(buf, v, cap < len ? cap : len);
	leveldb_free(v);
	return 0;
}

static int ld_put(void *db, void *t, const void *k, size_t kl, const void *v, size_t vl)
{
	struct ldb *d = db;
	char *err = NULL;
	(void)t;
	if (d->bulk) {
		leveldb_writebatch_put(d->bulk, k, kl, v, vl);
		if (++d->bulk_n % BULK_BATCH == 0) {
			leveldb_write(d->db, d->wo, d->bulk, &err);
			leveldb_writebatch_clear(d->bulk);
		}
		return lerr(err);
	}
	leveldb_put(d->db, d->wo, k, kl, v, vl, &err);
	return lerr(err);
}

static int ld_bulk_begin(void *db, void *t)
{
	struct ldb *d = db;
	(void)t;
	d->bulk = leveldb_writebatch_create();
	d->bulk_n = 0;
	return 0;
}

static int ld_bulk_end(void *db, void *t)
{
	struct ldb *d = db;
	char *err = NULL;
	(void)t;
	if (!d->bulk)
		return 0;
	leveldb_write(d->db, d->wo, d->bulk, &err);
	leveldb_writebatch_destroy(d->bulk);
	d->bulk = NULL;
	return lerr(err);
}

static int ld_warm(void *db, void *t)
{
	struct ldb *d = db;
	char *err = NULL;
	(void)t;
	leveldb_iterator_t *it = leveldb_create_iterator(d->db, d->ro);
	for (leveldb_iter_seek_to_first(it); leveldb_iter_valid(it); leveldb_iter_next(it))
		;
	leveldb_iter_get_error(it, &err);
	leveldb_iter_destroy(it);
	return lerr(err);
}

static int ld_del(void *db, void *t, const void *k, size_t kl)
{
	struct ldb *d = db;
	char *err = NULL;
	(void)t;
	leveldb_delete(d->db, d->wo, k, kl, &err);
	return lerr(err);
}

static int ld_sync(void *db, void *t)
{
	/* No explicit sync call: an empty batch written with sync=true syncs the log, and with
	 * it every write before. */
	struct ldb *d = db;
	char *err = NULL;
	(void)t;
	leveldb_writebatch_t *b = leveldb_writebatch_create();
	leveldb_write(d->db, d->wo_sync, b, &err);
	leveldb_writebatch_destroy(b);
	return lerr(err);
}

static int ld_settle(void *db)
{
	/* LevelDB reports no pending-compaction counter; compacting the whole key range (what its
	 * db_bench does before read benchmarks when asked) leaves it at rest. */
	struct ldb *d = db;
	leveldb_compact_range(d->db, NULL, 0, NULL, 0);
	return 0;
}

static const char *ld_strerror(int rc)
{
	return rc == -EIO && l_err[0] ? l_err : strerror(rc < 0 ? -rc : rc);
}

const struct kv_engine engine_leveldb = {
	.name = "leveldb",
	.modes = (1u << DUR_NOSYNC) | (1u << DUR_SYNC),
	.persistent = 1,
	.open = ld_open,
	.close = ld_close,
	.get = ld_get,
	.put = ld_put,
	.del = ld_del,
	.sync = ld_sync,
	.bulk_begin = ld_bulk_begin,
	.bulk_end = ld_bulk_end,
	.settle = ld_settle,
	.warm = ld_warm,
	.strerror = ld_strerror,
};
