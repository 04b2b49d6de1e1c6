/* SPDX-License-Identifier: MIT */
/*
 * ad_rocksdb.c - RocksDB through its C API, set up the way its tuning guide starts:
 * IncreaseParallelism(cpus), OptimizeLevelStyleCompaction() (default 512 MiB memtable budget),
 * a block-based table with a 10 bits/key Bloom filter and an LRU block cache large enough for
 * the data set. Default compression. Levels:
 *   rocksdb:nosync  WriteOptions.sync = false: the WAL write reaches the OS (survives a process
 *                   crash), RocksDB's default.
 *   rocksdb:sync    WriteOptions.sync = true: the WAL is fsynced before the write returns;
 *                   concurrent writers are grouped by RocksDB's write group (group commit).
 * Gets use rocksdb_get_pinned (no value allocation inside RocksDB), copied into the buffer.
 * The bulk load writes batches of BULK_BATCH puts; before experiments the bench waits for
 * RocksDB's flushes and compactions to finish and warms the block cache with a full scan.
 */
#include "bench.h"

#include <errno.h>
#include <rocksdb/c.h>
#include <stdlib.h>
#include <string.h>

#ifndef PKVB_ROCKSDB_VERSION
#define PKVB_ROCKSDB_VERSION "(version unknown)" /* CMake passes pkg-config's version */
#endif

struct rdb {
	rocksdb_t *db;
	rocksdb_options_t *opt;
	rocksdb_block_based_table_options_t *bbt;
	rocksdb_cache_t *cache;
	rocksdb_writeoptions_t *wo;
	rocksdb_readoptions_t *ro;
	rocksdb_writebatch_t *bulk; /* between bulk_begin and bulk_end */
	unsigned bulk_n;
};

#define BULK_BATCH 1000u

/* The C API reports errors as malloc'ed strings; keep the last one for strerror. */
static __thread char r_err[256];

static int rerr(char *err)
{
	if (!err)
		return 0;
	snprintf(r_err, sizeof(r_err), "%s", err);
	rocksdb_free(err);
	return -EIO;
}

static void r_free(struct rdb *d)
{
	if (d->ro)
		rocksdb_readoptions_destroy(d->ro);
	if (d->wo)
		rocksdb_writeoptions_destroy(d->wo);
	if (d->opt)
		rocksdb_options_destroy(d->opt);
	if (d->bbt)
		rocksdb_block_based_options_destroy(d->bbt);
	if (d->cache)
		rocksdb_cache_destroy(d->cache);
	free(d);
}

static int r_open(const struct kv_conf *c, void **out, char *cfg, size_t cap)
{
	struct rdb *d = calloc(1, sizeof(*d));
	char *err = NULL;
	if (!d)
		return -ENOMEM;
	size_t cache = (size_t)c->nkeys * (c->klen + c->vlen) * 2u;
	if (cache < ((size_t)64 << 20))
		cache = (size_t)64 << 20;
	d->opt = rocksdb_options_create();
	rocksdb_options_increase_parallelism(d->opt, (int)ncpus());
	rocksdb_options_optimize_level_style_compaction(d->opt, (uint64_t)512 << 20);
	rocksdb_options_set_create_if_missing(d->opt, 1);
	d->bbt = rocksdb_block_based_options_create();
	rocksdb_block_based_options_set_filter_policy(d->bbt, rocksdb_filterpolicy_create_bloom(10));
	d->cache = rocksdb_cache_create_lru(cache);
	rocksdb_block_based_options_set_block_cache(d->bbt, d->cache);
	rocksdb_options_set_block_based_table_factory(d->opt, d->bbt);
	d->wo = rocksdb_writeoptions_create();
	rocksdb_writeoptions_set_sync(d->wo, c->dur == DUR_SYNC);
	d->ro = rocksdb_readoptions_create();
	d->db = rocksdb_open(d->opt, c->dir, &err);
	if (err) {
		int rc = rerr(err);
		r_free(d);
		return rc;
	}
	snprintf(cfg, cap,
		 "RocksDB %s C API, IncreaseParallelism(%u), OptimizeLevelStyleCompaction("
		 "512 MiB memtable budget), Bloom 10 bits/key, LRU block cache %zu MiB, default "
		 "compression, WriteOptions.sync=%s, gets via rocksdb_get_pinned",
		 PKVB_ROCKSDB_VERSION, ncpus(), cache >> 20,
		 c->dur == DUR_SYNC ? "true" : "false");
	*out = d;
	return 0;
}

static int r_close(void *db)
{
	struct rdb *d = db;
	rocksdb_close(d->db);
	r_free(d);
	return 0;
}

static int r_get(void *db, void *t, const void *k, size_t kl, void *buf, size_t cap, size_t *vl)
{
	struct rdb *d = db;
	char *err = NULL;
	(void)t;
	rocksdb_pinnableslice_t *ps = rocksdb_get_pinned(d->db, d->ro, k, kl, &err);
	if (err)
		return rerr(err);
	if (!ps)
		return KV_NOTFOUND;
	size_t len;
	const char *v = rocksdb_pinnableslice_value(ps, &len);
	*vl = len;
	memcpy(buf, v, cap < len ? cap : len);
	rocksdb_pinnableslice_destroy(ps);
	return 0;
}

static int r_put(void *db, void *t, const void *k, size_t kl, const void *v, size_t vl)
{
	struct rdb *d = db;
	char *err = NULL;
	(void)t;
	if (d->bulk) {
		rocksdb_writebatch_put(d->bulk, k, kl, v, vl);
		if (++d->bulk_n % BULK_BATCH == 0) {
			rocksdb_write(d->db, d->wo, d->bulk, &err);
			rocksdb_writebatch_clear(d->bulk);
		}
		return rerr(err);
	}
	rocksdb_put(d->db, d->wo, k, kl, v, vl, &err);
	return rerr(err);
}

static int r_bulk_begin(void *db, void *t)
{
	struct rdb *d = db;
	(void)t;
	d->bulk = rocksdb_writebatch_create();
	d->bulk_n = 0;
	return 0;
}

static int r_bulk_end(void *db, void *t)
{
	struct rdb *d = db;
	char *err = NULL;
	(void)t;
	if (!d->bulk)
		return 0;
	rocksdb_write(d->db, d->wo, d->bulk, &err);
	rocksdb_writebatch_destroy(d->bulk);
	d->bulk = NULL;
	return rerr(err);
}

static int r_warm(void *db, void *t)
{
	struct rdb *d = db;
	char *err = NULL;
	(void)t;
	rocksdb_iterator_t *it = rocksdb_create_iterator(d->db, d->ro);
	for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it); rocksdb_iter_next(it))
		;
	rocksdb_iter_get_error(it, &err);
	rocksdb_iter_destroy(it);
	return rerr(err);
}

static int r_del(void *db, void *t, const void *k, size_t kl)
{
	struct rdb *d = db;
	char *err = NULL;
	(void)t;
	rocksdb_delete(d->db, d->wo, k, kl, &err);
	return rerr(err);
}

static int r_sync(void *db, void *t)
{
	struct rdb *d = db;
	char *err = NULL;
	(void)t;
	rocksdb_flush_wal(d->db, 1, &err);
	return rerr(err);
}

static int r_checkpoint(void *db)
{
	struct rdb *d = db;
	char *err = NULL;
	rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
	rocksdb_flushoptions_set_wait(fo, 1);
	rocksdb_flush(d->db, fo, &err);
	rocksdb_flushoptions_destroy(fo);
	return rerr(err);
}

static int r_settle(void *db)
{
	/* Poll RocksDB's own counters until no flush or compaction runs or is pending (at most
	 * five minutes). */
	static const char *const props[] = {"rocksdb.num-running-flushes",
					    "rocksdb.num-running-compactions",
					    "rocksdb.mem-table-flush-pending",
					    "rocksdb.compaction-pending"};
	struct rdb *d = db;
	for (int i = 0; i < 3000; i++) {
		int busy = 0;
		for (size_t k = 0; k < sizeof(props) / sizeof(props[0]); k++) {
			uint64_t v = 0;
			if (rocksdb_property_int(d->db, props[k], &v) == 0 && v > 0)
				busy = 1;
		}
		if (!busy)
			return 0;
		sleep_ns(100000000u);
	}
	return -ETIMEDOUT;
}

static const char *r_strerror(int rc)
{
	return rc == -EIO && r_err[0] ? r_err : strerror(rc < 0 ? -rc : rc);
}

const struct kv_engine engine_rocksdb = {
	.name = "rocksdb",
	.modes = (1u << DUR_NOSYNC) | (1u << DUR_SYNC),
	.persistent = 1,
	.open = r_open,
	.close = r_close,
	.get = r_get,
	.put = r_put,
	.del = r_del,
	.sync = r_sync,
	.bulk_begin = r_bulk_begin,
	.bulk_end = r_bulk_end,
	.checkpoint = r_checkpoint,
	.settle = r_settle,
	.warm = r_warm,
	.strerror = r_strerror,
};
