/* SPDX-License-Identifier: MIT */
/*
 * ad_lfht.c - liburcu's lock-free resizable hash table (cds_lfht), urcu-memb flavour.
 *
 * Presized to the expected keys (auto-resize on), MurmurHash64A. A node holds the key and the
 * value inline. Lookups run inside rcu_read_lock/unlock (inlined: _LGPL_SOURCE); writers are
 * lock-free (cds_lfht_add_replace, cds_lfht_del) and free the replaced node with call_rcu, so
 * this baseline pays real grace periods, as pkv does.
 */
#define _LGPL_SOURCE
#include "bench.h"
#include "hash.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <urcu/urcu-memb.h>
#include <urcu/rculfhash.h>

struct lnode {
	struct cds_lfht_node node;
	struct rcu_head rcu;
	uint32_t klen, vlen;
	uint8_t data[]; /* key, then value */
};

struct lkey {
	const void *p;
	size_t len;
};

struct lfdb {
	struct cds_lfht *ht;
};

#define LF_SEED 0x9e3779b97f4a7c15ull

static int lf_match(struct cds_lfht_node *node, const void *key)
{
	const struct lnode *n = caa_container_of(node, struct lnode, node);
	const struct lkey *k = key;
	return n->klen == k->len && memcmp(n->data, k->p, k->len) == 0;
}

static void lf_free_rcu(struct rcu_head *h)
{
	free(caa_container_of(h, struct lnode, rcu));
}

static int lf_open(const struct kv_conf *c, void **out, char *cfg, size_t cap)
{
	struct lfdb *d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	unsigned long init = 1;
	while (init < c->nkeys)
		init <<= 1;
	d->ht = cds_lfht_new_flavor(init, 1, 0, CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING,
				    &urcu_memb_flavor, NULL);
	if (!d->ht) {
		free(d);
		return -ENOMEM;
	}
	snprintf(cfg, cap,
		 "liburcu cds_lfht (urcu-memb flavour, inlined read lock), %lu initial buckets, "
		 "auto-resize, MurmurHash64A, key+value inline in the node, lock-free writers, "
		 "replaced/deleted nodes freed by call_rcu; in-memory only",
		 init);
	*out = d;
	return 0;
}

static void *lf_thread_init(void *db)
{
	(void)db;
	urcu_memb_register_thread();
	return NULL;
}

static void lf_thread_fini(void *db, void *t)
{
	(void)db;
	(void)t;
	urcu_memb_unregister_thread();
}

static int lf_close(void *db)
{
	struct lfdb *d = db;
	struct cds_lfht_iter it;
	struct lnode *n;
	urcu_memb_register_thread();
	urcu_memb_read_lock();
	cds_lfht_for_each_entry(d->ht, &it, n, node)
	{
		if (cds_lfht_del(d->ht, &n->node) == 0)
			urcu_memb_call_rcu(&n->rcu, lf_free_rcu);
	}
	urcu_memb_read_unlock();
	urcu_memb_unregister_thread();
	urcu_memb_barrier(); /* every call_rcu callback has run */
	int rc = cds_lfht_destroy(d->ht, NULL);
	free(d);
	return rc ? -EBUSY : 0;
}

static int lf_get(void *db, void *t, const void *k, size_t kl, void *buf, size_t cap, size_t *vl)
{
	struct lfdb *d = db;
	struct lkey key = {k, kl};
	struct cds_lfht_iter it;
	(void)t;
	unsigned long h = (unsigned long)murmur64a(k, kl, LF_SEED);
	urcu_memb_read_lock();
	cds_lfht_lookup(d->ht, h, lf_match, &key, &it);
	struct cds_lfht_node *node = cds_lfht_iter_get_node(&it);
	if (!node) {
		urcu_memb_read_unlock();
		return KV_NOTFOUND;
	}
	const struct lnode *n = caa_container_of(node, struct lnode, node);
	*vl = n->vlen;
	memcpy(buf, n->data + n->klen, cap < n->vlen ? cap : n->vlen);
	urcu_memb_read_unlock();
	return 0;
}

static int lf_put(void *db, void *t, const void *k, size_t kl, const void *v, size_t vl)
{
	struct lfdb *d = db;
	(void)t;
	struct lnode *n = malloc(sizeof(*n) + kl + vl);
	if (!n)
		return -ENOMEM;
	cds_lfht_node_init(&n->node);
	n->klen = (uint32_t)kl;
	n->vlen = (uint32_t)vl;
	memcpy(n->data, k, kl);
	memcpy(n->data + kl, v, vl);
	struct lkey key = {n->data, kl};
	unsigned long h = (unsigned long)murmur64a(k, kl, LF_SEED);
	urcu_memb_read_lock();
	struct cds_lfht_node *old = cds_lfht_add_replace(d->ht, h, lf_match, &key, &n->node);
	urcu_memb_read_unlock();
	if (old)
		urcu_memb_call_rcu(&caa_container_of(old, struct lnode, node)->rcu, lf_free_rcu);
	return 0;
}

static int lf_del(void *db, void *t, const void *k, size_t kl)
{
	struct lfdb *d = db;
	struct lkey key = {k, kl};
	struct cds_lfht_iter it;
	int rc = KV_NOTFOUND;
	(void)t;
	unsigned long h = (unsigned long)murmur64a(k, kl, LF_SEED);
	urcu_memb_read_lock();
	cds_lfht_lookup(d->ht, h, lf_match, &key, &it);
	struct cds_lfht_node *node = cds_lfht_iter_get_node(&it);
	if (node && cds_lfht_del(d->ht, node) == 0) {
		urcu_memb_call_rcu(&caa_container_of(node, struct lnode, node)->rcu, lf_free_rcu);
		rc = 0;
	}
	urcu_memb_read_unlock();
	return rc;
}

static int lf_sync(void *db, void *t)
{
	(void)db;
	(void)t;
	return 0;
}

const struct kv_engine engine_lfht = {
	.name = "lfht",
	.modes = 1u << DUR_MEM,
	.persistent = 0,
	.open = lf_open,
	.close = lf_close,
	.thread_init = lf_thread_init,
	.thread_fini = lf_thread_fini,
	.get = lf_get,
	.put = lf_put,
	.del = lf_del,
	.sync = lf_sync,
};
