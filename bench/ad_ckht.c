/* SPDX-License-Identifier: MIT */
/*
 * ad_ckht.c - raw Concurrency Kit ck_ht: the ceiling pkv's reads aim at.
 *
 * Byte-string mode, ck's default hash (MurmurHash64A), presized for the expected keys at ck_ht's
 * load factor of 0.5 so that it never grows during a run. One writer mutex (ck_ht is single
 * producer); readers call ck_ht_get_spmc without any lock. An entry's value is one malloc'ed
 * block holding the key and the value; the entry's key points into it.
 *
 * Memory reclamation: none. Replaced and deleted blocks, and tables that ck_ht retires, are
 * kept on a list and freed only at close, when no reader can hold them. That makes this the
 * cost of the map alone, without the grace periods a real store pays for; its printed
 * configuration says so, and its resident memory grows with every overwrite.
 */
#include "bench.h"

#include <ck_ht.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct blk {
	uint32_t vlen;
	uint16_t klen;
	uint8_t data[]; /* key, then value */
};

struct garbage {
	void **p;
	size_t n, cap;
};

struct ckdb {
	ck_ht_t ht;
	pthread_mutex_t wlock;
	struct garbage g;
	uint64_t deferred;
};

/* ck's allocator callbacks carry no context: one garbage list per process (one store per
 * benchmark process, by construction). */
static struct garbage *g_garbage;

static int defer_free(struct garbage *g, void *p)
{
	if (g->n == g->cap) {
		size_t cap = g->cap ? g->cap * 2 : 4096;
		void **np = realloc(g->p, cap * sizeof(*np));
		if (!np)
			return -ENOMEM; /* leak it: still safe */
		g->p = np;
		g->cap = cap;
	}
	g->p[g->n++] = p;
	return 0;
}

static void *ht_malloc(size_t r)
{
	return malloc(r);
}

static void ht_free(void *p, size_t b, bool defer)
{
	(void)b;
	if (defer && g_garbage)
		(void)defer_free(g_garbage, p); /* called under the writer mutex */
	else if (!defer)
		free(p);
}

static struct ck_malloc ht_alloc = {.malloc = ht_malloc, .free = ht_free};

static int ck_open(const struct kv_conf *c, void **out, char *cfg, size_t cap)
{
	struct ckdb *d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	pthread_mutex_init(&d->wlock, NULL);
	g_garbage = &d->g;
	uint64_t slots = c->nkeys * 2 + 16; /* ck_ht keeps its load factor <= 0.5 */
	if (!ck_ht_init(&d->ht, CK_HT_MODE_BYTESTRING, NULL, &ht_alloc, slots, 0x9e3779b97f4a7c15ull)) {
		free(d);
		return -ENOMEM;
	}
	snprintf(cfg, cap,
		 "ck_ht byte-string mode, MurmurHash64A, presized to %llu entries (load <= 0.5), "
		 "1 writer mutex, lock-free readers (ck_ht_get_spmc), value = malloc'ed key+value "
		 "block; NO reclamation: replaced/deleted blocks and retired tables freed only at "
		 "close; in-memory only",
		 (unsigned long long)slots);
	*out = d;
	return 0;
}

static int ck_close(void *db)
{
	struct ckdb *d = db;
	ck_ht_iterator_t it = CK_HT_ITERATOR_INITIALIZER;
	ck_ht_entry_t *e;
	while (ck_ht_next(&d->ht, &it, &e))
		free(ck_ht_entry_value(e));
	ck_ht_destroy(&d->ht);
	for (size_t i = 0; i < d->g.n; i++)
		free(d->g.p[i]);
	free(d->g.p);
	g_garbage = NULL;
	pthread_mutex_destroy(&d->wlock);
	free(d);
	return 0;
}

static int ck_get(void *db, void *t, const void *k, size_t kl, void *buf, size_t cap, size_t *vl)
{
	struct ckdb *d = db;
	ck_ht_hash_t h;
	ck_ht_entry_t e;
	(void)t;
	ck_ht_hash(&h, &d->ht, k, (uint16_t)kl);
	ck_ht_entry_key_set(&e, k, (uint16_t)kl);
	if (!ck_ht_get_spmc(&d->ht, h, &e))
		return KV_NOTFOUND;
	const struct blk *b = ck_ht_entry_value(&e);
	*vl = b->vlen;
	memcpy(buf, b->data + b->klen, cap < b->vlen ? cap : b->vlen);
	return 0;
}

static int ck_put(void *db, void *t, const void *k, size_t kl, const void *v, size_t vl)
{
	struct ckdb *d = db;
	ck_ht_hash_t h;
	ck_ht_entry_t e;
	(void)t;
	if (kl == 0 || kl > 65535)
		return -EINVAL;
	struct blk *b = malloc(sizeof(*b) + kl + vl);
	if (!b)
		return -ENOMEM;
	b->vlen = (uint32_t)vl;
	b->klen = (uint16_t)kl;
	memcpy(b->data, k, kl);
	memcpy(b->data + kl, v, vl);
	ck_ht_hash(&h, &d->ht, b->data, (uint16_t)kl);
	ck_ht_entry_set(&e, h, b->data, (uint16_t)kl, b);
	pthread_mutex_lock(&d->wlock);
	bool ok = ck_ht_set_spmc(&d->ht, h, &e);
	if (ok && e.key != CK_HT_KEY_EMPTY) { /* replaced: e holds the old entry */
		(void)defer_free(&d->g, ck_ht_entry_value(&e));
		d->deferred++;
	}
	pthread_mutex_unlock(&d->wlock);
	if (!ok) {
		free(b);
		return -ENOMEM;
	}
	return 0;
}

static int ck_del(void *db, void *t, const void *k, size_t kl)
{
	struct ckdb *d = db;
	ck_ht_hash_t h;
	ck_ht_entry_t e;
	(void)t;
	ck_ht_hash(&h, &d->ht, k, (uint16_t)kl);
	ck_ht_entry_key_set(&e, k, (uint16_t)kl);
	pthread_mutex_lock(&d->wlock);
	bool found = ck_ht_remove_spmc(&d->ht, h, &e);
	if (found) {
		(void)defer_free(&d->g, ck_ht_entry_value(&e));
		d->deferred++;
	}
	pthread_mutex_unlock(&d->wlock);
	return found ? 0 : KV_NOTFOUND;
}

static int ck_sync(void *db, void *t)
{
	(void)db;
	(void)t;
	return 0;
}

static int ck_stats(void *db, char *buf, size_t cap)
{
	struct ckdb *d = db;
	snprintf(buf, cap, "deferred_frees=%llu", (unsigned long long)d->deferred);
	return 0;
}

const struct kv_engine engine_ckht = {
	.name = "ck_ht",
	.modes = 1u << DUR_MEM,
	.persistent = 0,
	.open = ck_open,
	.close = ck_close,
	.get = ck_get,
	.put = ck_put,
	.del = ck_del,
	.sync = ck_sync,
	.stats = ck_stats,
};
