/* SPDX-License-Identifier: MIT */
/*
 * ad_pkv.c - pkv itself, through its public header only. One system per durability mode:
 * pkv:process, pkv:power, pkv:periodic, and pkv:mem (dir == NULL, the in-memory map with the
 * same API: the cost of the write-ahead log is the difference to pkv:process). Two more read
 * pkv:process differently: pkv:ref (zero copy: a read section, pkv_get_ref, the section's end,
 * per get; the value is not copied, only its first byte read) and pkv:many (pkv_get_many on
 * batches of KV_MANY_BATCH consecutive gets of the op stream, in one section per batch).
 *
 * A third writes pkv:process differently: pkv:batch8 (put-only experiments write KV_PUT_BATCH
 * consecutive puts of the op stream as one pkv_write batch; issue 11's goal compares its keys
 * per second with pkv:process's single puts).
 *
 * The pkv systems (not pkv-ticket, which loads put by put) load through pkv_write batches of
 * BULK_BATCH puts between bulk_begin and bulk_end, as the LevelDB and RocksDB adapters load
 * through write batches: the load figure is issue 11's goal of a bulk load against ck_ht's
 * insert loop.
 *
 * pkv-ticket:power is the same store opened in PROCESS mode whose writes are made power-durable
 * through durability tickets: pkv_put_seq, then pkv_wait_durable(seq, -1) before the write
 * counts as done (what a server does before it acknowledges). It should commit at least as fast
 * as pkv:power.
 */
#include "bench.h"

#include <errno.h>
#include <pkv.h>
#include <stdlib.h>
#include <string.h>

static const char *mode_name(enum pkv_durability d)
{
	switch (d) {
	case PKV_DURABLE_PROCESS: return "PROCESS";
	case PKV_DURABLE_POWER: return "POWER";
	case PKV_DURABLE_PERIODIC: return "PERIODIC";
	}
	return "?";
}

static int p_open_lanes(const struct kv_conf *c, void **out, char *cfg, size_t cap,
			unsigned lanes);

/* Whether the ticket store was opened for its durable slices (1) or for its load (0, plain
 * PROCESS puts, as every sync system loads without syncing). One such store per process. */
static int ticket_wait;

static int t_open(const struct kv_conf *c, void **out, char *cfg, size_t cap)
{
	struct kv_conf pc = *c;
	char inner[400];
	int rc;

	ticket_wait = c->dur == DUR_SYNC;
	pc.dur = DUR_NOSYNC;
	/* One lane, as POWER has by default: each lane costs a group commit an fdatasync. */
	rc = p_open_lanes(&pc, out, inner, sizeof(inner), 1);
	if (rc == 0)
		snprintf(cfg, cap, "%s; each put: pkv_put_seq, then pkv_wait_durable(seq, -1)",
			 inner);
	return rc;
}

static int t_put(void *db, void *t, const void *k, size_t kl, const void *v, size_t vl)
{
	uint64_t seq;
	int rc;

	(void)t;
	rc = pkv_put_seq(db, k, kl, v, vl, 0, &seq);
	return rc || !ticket_wait ? rc : pkv_wait_durable(db, seq, -1);
}

static int p_open_lanes(const struct kv_conf *c, void **out, char *cfg, size_t cap,
			unsigned lanes)
{
	pkv_options o;
	pkv *db = NULL;
	pkv_options_default(&o);
	switch (c->dur) {
	case DUR_SYNC: o.durability = PKV_DURABLE_POWER; break;
	case DUR_PERIODIC:
		o.durability = PKV_DURABLE_PERIODIC;
		o.sync_interval_ms = c->sync_interval_ms ? c->sync_interval_ms : o.sync_interval_ms;
		break;
	default: o.durability = PKV_DURABLE_PROCESS; break;
	}
	o.capacity_hint = (size_t)c->nkeys;
	o.wal_lanes = lanes;
	const char *dir = c->dur == DUR_MEM ? NULL : c->dir;
	int rc = pkv_open(dir, &o, &db);
	if (rc)
		return rc;
	char per[48] = "";
	if (o.durability == PKV_DURABLE_PERIODIC)
		snprintf(per, sizeof(per), " sync_interval_ms=%u", o.sync_interval_ms);
	if (dir)
		snprintf(cfg, cap,
			 "pkv durability=%s%s capacity_hint=%zu shards=%u wal_lanes=%u%s "
			 "wal_segment_bytes=%zu (library defaults otherwise)",
			 mode_name(o.durability), per, o.capacity_hint, o.shards, o.wal_lanes,
			 o.wal_lanes ? "" : " (one per CPU; one under POWER)", o.wal_segment_bytes);
	else
		snprintf(cfg, cap,
			 "pkv in-memory (dir=NULL): same API, no files; capacity_hint=%zu shards=%u",
			 o.capacity_hint, o.shards);
	*out = db;
	return 0;
}

static int p_open(const struct kv_conf *c, void **out, char *cfg, size_t cap)
{
	return p_open_lanes(c, out, cfg, cap, 0);
}

static int p_close(void *db)
{
	return pkv_close(db);
}

#define BULK_BATCH 1000u

/* Per thread: the batch of a bulk load or of pkv:batch8's puts, reused (pkv_batch_clear). */
struct pthr {
	pkv_batch *b;
	int bulk;   /* between bulk_begin and bulk_end: puts go into b */
	unsigned n; /* puts in b */
};

static void *p_thread_init(void *db)
{
	struct pthr *pt = calloc(1, sizeof(*pt));

	(void)db;
	(void)pkv_thread_attach();
	if (pt && pkv_batch_new(&pt->b) != 0) {
		free(pt);
		pt = NULL;
	}
	return pt; /* NULL: no batches (put_many and the bulk hooks then fail) */
}

static void p_thread_fini(void *db, void *t)
{
	struct pthr *pt = t;

	(void)db;
	if (pt) {
		pkv_batch_free(pt->b);
		free(pt);
	}
	(void)pkv_thread_detach();
}

static int p_bulk_begin(void *db, void *t)
{
	struct pthr *pt = t;

	(void)db;
	if (!pt)
		return -ENOMEM;
	pkv_batch_clear(pt->b);
	pt->n = 0;
	pt->bulk = 1;
	return 0;
}

static int p_bulk_flush(pkv *db, struct pthr *pt)
{
	int rc = pkv_write(db, pt->b, 0, NULL);

	pkv_batch_clear(pt->b);
	pt->n = 0;
	return rc;
}

static int p_bulk_end(void *db, void *t)
{
	struct pthr *pt = t;

	if (!pt || !pt->bulk)
		return 0;
	pt->bulk = 0;
	return p_bulk_flush(db, pt);
}

static int map_rc(int rc)
{
	return rc == PKV_NOTFOUND ? KV_NOTFOUND : rc;
}

static int p_get(void *db, void *t, const void *k, size_t kl, void *buf, size_t cap, size_t *vl)
{
	(void)t;
	return map_rc(pkv_get(db, k, kl, buf, cap, vl));
}

/* pkv:ref: what a zero-copy reader does per request. */
static int p_get_ref(void *db, void *t, const void *k, size_t kl, void *buf, size_t cap,
		     size_t *vl)
{
	const void *v;
	int rc;

	(void)t;
	(void)cap;
	rc = pkv_read_begin(db);
	if (rc)
		return rc;
	rc = pkv_get_ref(db, k, kl, &v, vl, NULL);
	if (rc == 0 && *vl > 0)
		*(volatile unsigned char *)buf = *(const volatile unsigned char *)v;
	pkv_read_end(db);
	return map_rc(rc);
}

static int p_get_many(void *db, void *t, const void *const *keys, size_t klen, size_t n,
		      size_t *vlens, int *rcs)
{
	pkv_item it[KV_MANY_MAX];
	unsigned char sum = 0;
	int rc;

	(void)t;
	if (n > KV_MANY_MAX)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		it[i].key = keys[i];
		it[i].klen = klen;
	}
	rc = pkv_read_begin(db);
	if (rc)
		return rc;
	rc = pkv_get_many(db, it, n);
	for (size_t i = 0; rc >= 0 && i < n; i++) {
		rcs[i] = map_rc(it[i].rc);
		vlens[i] = it[i].vlen;
		if (it[i].rc == 0 && it[i].vlen > 0)
			sum ^= *(const unsigned char *)it[i].val; /* as pkv:ref: the first byte */
	}
	pkv_read_end(db);
	*(volatile unsigned char *)&sum = sum;
	return rc < 0 ? rc : 0;
}

/* pkv:many's single gets (the latency mode): a multi-get of one. */
static int p_get_one(void *db, void *t, const void *k, size_t kl, void *buf, size_t cap,
		     size_t *vl)
{
	int rc, r1 = 0;

	(void)buf;
	(void)cap;
	rc = p_get_many(db, t, &k, kl, 1, vl, &r1);
	return rc ? rc : r1;
}

static int p_put(void *db, void *t, const void *k, size_t kl, const void *v, size_t vl)
{
	struct pthr *pt = t;
	int rc;

	if (!pt || !pt->bulk)
		return pkv_put(db, k, kl, v, vl);
	rc = pkv_batch_put(pt->b, k, kl, v, vl);
	if (rc == 0 && ++pt->n >= BULK_BATCH)
		rc = p_bulk_flush(db, pt);
	return rc;
}

/* pkv:batch8: n puts, one pkv_write. */
static int p_put_many(void *db, void *t, const void *const *keys, size_t klen,
		      const void *const *vals, size_t vlen, size_t n)
{
	struct pthr *pt = t;
	int rc = 0;

	if (!pt)
		return -ENOMEM;
	pkv_batch_clear(pt->b);
	for (size_t i = 0; rc == 0 && i < n; i++)
		rc = pkv_batch_put(pt->b, keys[i], klen, vals[i], vlen);
	return rc ? rc : pkv_write(db, pt->b, 0, NULL);
}

static int p_del(void *db, void *t, const void *k, size_t kl)
{
	(void)t;
	return map_rc(pkv_del(db, k, kl));
}

static int p_sync(void *db, void *t)
{
	(void)t;
	return pkv_sync(db);
}

static int p_checkpoint(void *db)
{
	return pkv_compact(db);
}

/*
 * At rest, as RocksDB's flushes and compactions are waited for: a load of more WAL than
 * compact_wal_bytes leaves a background compaction running or due. pkv_compact() waits for a
 * running one and then writes the snapshot of everything, so no compaction runs during the
 * experiments. (An in-memory store has nothing to do.)
 */
static int p_settle(void *db)
{
	return pkv_compact(db);
}

static int p_stats(void *db, char *buf, size_t cap)
{
	pkv_stats s;
	int rc = pkv_get_stats(db, &s);
	if (rc)
		return rc;
	snprintf(buf, cap,
		 "keys=%llu puts=%llu dels=%llu wal_bytes=%llu wal_segments=%llu syncs=%llu "
		 "synced_writes=%llu recovered_records=%llu discarded_records=%llu",
		 (unsigned long long)s.keys, (unsigned long long)s.puts,
		 (unsigned long long)s.dels, (unsigned long long)s.wal_bytes,
		 (unsigned long long)s.wal_segments, (unsigned long long)s.syncs,
		 (unsigned long long)s.synced_writes, (unsigned long long)s.recovered_records,
		 (unsigned long long)s.discarded_records);
	return 0;
}

static const char *p_strerror(int rc)
{
	return pkv_strerror(rc == KV_NOTFOUND ? PKV_NOTFOUND : rc);
}

/* What every pkv variant below shares: the store, opened and driven the same way. */
#define PKV_ENGINE_COMMON                                                                        \
	.persistent = 1, .open = p_open, .close = p_close, .thread_init = p_thread_init,         \
	.thread_fini = p_thread_fini, .del = p_del, .sync = p_sync, .checkpoint = p_checkpoint, \
	.settle = p_settle, .stats = p_stats, .strerror = p_strerror, .get_copy = p_get,         \
	.bulk_begin = p_bulk_begin, .bulk_end = p_bulk_end

const struct kv_engine engine_pkv = {
	PKV_ENGINE_COMMON,
	.name = "pkv",
	.modes = (1u << DUR_MEM) | (1u << DUR_NOSYNC) | (1u << DUR_SYNC) | (1u << DUR_PERIODIC),
	.get = p_get,
	.put = p_put,
};

/* pkv:ref and pkv:many: only their reads differ. */
#define PKV_READ_VARIANT(var, getfn, manyfn)                                                     \
	const struct kv_engine var = {                                                           \
		PKV_ENGINE_COMMON,                                                               \
		.name = "pkv",                                                                   \
		.modes = 1u << DUR_NOSYNC,                                                       \
		.get = getfn,                                                                    \
		.put = p_put,                                                                    \
		.get_many = manyfn,                                                              \
		.reads_only = 1,                                                                 \
	}

PKV_READ_VARIANT(engine_pkv_ref, p_get_ref, NULL);
PKV_READ_VARIANT(engine_pkv_many, p_get_one, p_get_many);

/* pkv:batch8: only its puts differ (8 at a time, one pkv_write). */
const struct kv_engine engine_pkv_batch8 = {
	PKV_ENGINE_COMMON,
	.name = "pkv",
	.modes = 1u << DUR_NOSYNC,
	.get = p_get,
	.put = p_put,
	.put_many = p_put_many,
	.writes_only = 1,
};

const struct kv_engine engine_pkv_ticket = {
	.name = "pkv-ticket",
	.modes = 1u << DUR_SYNC,
	.persistent = 1,
	.open = t_open,
	.close = p_close,
	.thread_init = p_thread_init,
	.thread_fini = p_thread_fini,
	.get = p_get,
	.put = t_put,
	.del = p_del,
	.sync = p_sync,
	.checkpoint = p_checkpoint,
	.settle = p_settle,
	.stats = p_stats,
	.strerror = p_strerror,
};
