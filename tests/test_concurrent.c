/* SPDX-License-Identifier: MIT */
/*
 * test_concurrent.c - readers against writers, and many writers under group commit.
 *
 * Every value describes itself: key id, writer id, version, a body derived from those, and a
 * checksum. A reader that sees a freed, half-written or misplaced value (invariant 1 of DESIGN.md)
 * therefore finds out by itself, whatever the interleaving. The run length is a number of
 * operations, never a time; nothing here measures time.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define NKEYS 64
#define NWRITERS 2
#define NREADERS 2
#define VAL_HDR 20 /* key id u32, writer u32, version u64, body length u32 */
#define VAL_MAX (VAL_HDR + 200 + 4)

static uint32_t fnv32(const unsigned char *p, size_t n)
{
	uint32_t h = 2166136261u;

	while (n--)
		h = (h ^ *p++) * 16777619u;
	return h;
}

/* The value that writer @w writes to key @k at version @v. */
static size_t make_val(unsigned char *out, uint32_t k, uint32_t w, uint64_t v)
{
	uint64_t s = (uint64_t)k << 48 ^ (uint64_t)w << 40 ^ v;
	uint32_t blen = (uint32_t)(tu_rand(&s) % 201);
	uint32_t sum;

	memcpy(out, &k, 4);
	memcpy(out + 4, &w, 4);
	memcpy(out + 8, &v, 8);
	memcpy(out + 16, &blen, 4);
	for (uint32_t i = 0; i < blen; i++)
		out[VAL_HDR + i] = (unsigned char)(tu_rand(&s) >> 32);
	sum = fnv32(out, VAL_HDR + blen);
	memcpy(out + VAL_HDR + blen, &sum, 4);
	return VAL_HDR + blen + 4;
}

/*
 * Check that @buf (@len bytes) is a value some writer wrote to key @k; on success store its
 * writer and version. On failure, describe it in @why.
 */
static bool check_val(const unsigned char *buf, size_t len, uint32_t k, uint32_t *w_out,
		      uint64_t *v_out, char *why, size_t whylen)
{
	unsigned char expect[VAL_MAX];
	uint32_t kk, w, blen, sum;
	uint64_t v;

	if (len < VAL_HDR + 4 || len > VAL_MAX) {
		snprintf(why, whylen, "key %u: value of impossible length %zu", k, len);
		return false;
	}
	memcpy(&kk, buf, 4);
	memcpy(&w, buf + 4, 4);
	memcpy(&v, buf + 8, 8);
	memcpy(&blen, buf + 16, 4);
	if (blen != len - VAL_HDR - 4) {
		snprintf(why, whylen, "key %u: body length %u in a value of %zu bytes", k, blen,
			 len);
		return false;
	}
	memcpy(&sum, buf + VAL_HDR + blen, 4);
	if (sum != fnv32(buf, VAL_HDR + blen)) {
		snprintf(why, whylen, "key %u: checksum mismatch (torn or freed value)", k);
		return false;
	}
	if (kk != k) {
		snprintf(why, whylen, "key %u holds a value written for key %u", k, kk);
		return false;
	}
	if (w >= NWRITERS) {
		snprintf(why, whylen, "key %u: value from unknown writer %u", k, w);
		return false;
	}
	if (make_val(expect, k, w, v) != len || memcmp(expect, buf, len) != 0) {
		snprintf(why, whylen, "key %u: value is not what writer %u wrote at %llu", k, w,
			 (unsigned long long)v);
		return false;
	}
	*w_out = w;
	*v_out = v;
	return true;
}

static size_t key_of(char *k, uint32_t id)
{
	return (size_t)sprintf(k, "ckey-%03u", id);
}

/* Writer @w's private key: only it writes there, and it announces each version it completed. */
static size_t priv_key(char *k, uint32_t w)
{
	return (size_t)sprintf(k, "private-%u", w);
}

struct shared {
	pkv *db;
	uint64_t ops; /* per writer */
	atomic_int writers_left;
	_Atomic uint64_t published[NWRITERS]; /* versions of the private keys that returned */
};

struct worker {
	struct shared *sh;
	uint32_t id;
	uint64_t seed;
	int failed;
	char why[256];
	uint64_t reads;
	/* writers: the last op on each key (version, deleted) */
	uint64_t last_v[NKEYS];
	bool last_del[NKEYS];
};

static void *writer_main(void *p)
{
	struct worker *me = p;
	struct shared *sh = me->sh;
	unsigned char val[VAL_MAX];
	char k[32];
	int rc;

	for (uint64_t v = 1; v <= sh->ops && !me->failed; v++) {
		uint64_t r = tu_rand(&me->seed);
		uint32_t kid = (uint32_t)(r % NKEYS);

		if (r % 8 == 7) {
			rc = pkv_del(sh->db, k, key_of(k, kid));
			if (rc == PKV_NOTFOUND)
				rc = 0;
			me->last_del[kid] = true;
		} else {
			rc = pkv_put(sh->db, k, key_of(k, kid), val, make_val(val, kid, me->id, v));
			me->last_del[kid] = false;
		}
		me->last_v[kid] = v;
		if (rc) {
			me->failed = 1;
			snprintf(me->why, sizeof(me->why), "writer %u op %llu: %d (%s)", me->id,
				 (unsigned long long)v, rc, pkv_strerror(rc));
			break;
		}
		if (v % 4 == 0) {
			/* Key id NKEYS + writer marks the private key's values. */
			rc = pkv_put(sh->db, k, priv_key(k, me->id), val,
				     make_val(val, NKEYS + me->id, me->id, v));
			if (rc) {
				me->failed = 1;
				snprintf(me->why, sizeof(me->why), "writer %u private put: %d",
					 me->id, rc);
				break;
			}
			atomic_store_explicit(&sh->published[me->id], v, memory_order_release);
		}
	}
	atomic_fetch_sub(&sh->writers_left, 1);
	return NULL;
}

static void *reader_main(void *p)
{
	struct worker *me = p;
	struct shared *sh = me->sh;
	uint64_t seen[NKEYS][NWRITERS];
	unsigned char buf[VAL_MAX + 16];
	char k[32];

	memset(seen, 0, sizeof(seen));
	/* At least one full pass after the writers are done, so the last states are read too. */
	for (int after = 0; after < 2 && !me->failed;) {
		uint32_t w, kid;
		uint64_t v, pub;
		size_t vlen;
		int rc;

		if (atomic_load(&sh->writers_left) == 0)
			after++;
		for (uint32_t i = 0; i < NKEYS && !me->failed; i++) {
			kid = (uint32_t)(tu_rand(&me->seed) % NKEYS);
			rc = pkv_get(sh->db, k, key_of(k, kid), buf, sizeof(buf), &vlen);
			me->reads++;
			if (rc == PKV_NOTFOUND)
				continue;
			if (rc != 0) {
				snprintf(me->why, sizeof(me->why), "get: %d (%s)", rc,
					 pkv_strerror(rc));
				me->failed = 1;
			} else if (vlen > sizeof(buf)) {
				snprintf(me->why, sizeof(me->why), "key %u: value of %zu bytes",
					 kid, vlen);
				me->failed = 1;
			} else if (!check_val(buf, vlen, kid, &w, &v, me->why, sizeof(me->why))) {
				me->failed = 1;
			} else if (v < seen[kid][w]) {
				/* Once v is visible, w's earlier values of this key are
				 * overwritten. */
				snprintf(me->why, sizeof(me->why),
					 "key %u went back from version %llu to %llu of writer %u",
					 kid, (unsigned long long)seen[kid][w],
					 (unsigned long long)v, w);
				me->failed = 1;
			} else {
				seen[kid][w] = v;
			}
		}
		/* A write that returned before the get started must be seen by it. */
		for (uint32_t wi = 0; wi < NWRITERS && !me->failed; wi++) {
			pub = atomic_load_explicit(&sh->published[wi], memory_order_acquire);
			if (!pub)
				continue;
			rc = pkv_get(sh->db, k, priv_key(k, wi), buf, sizeof(buf), &vlen);
			if (rc != 0 || vlen > sizeof(buf)) {
				snprintf(me->why, sizeof(me->why), "private key of %u: %d", wi, rc);
				me->failed = 1;
			} else if (!check_val(buf, vlen, NKEYS + wi, &w, &v, me->why,
					      sizeof(me->why))) {
				me->failed = 1;
			} else if (v < pub) {
				snprintf(me->why, sizeof(me->why),
					 "writer %u's version %llu returned, a later get saw %llu",
					 wi, (unsigned long long)pub, (unsigned long long)v);
				me->failed = 1;
			}
		}
	}
	return NULL;
}

struct conc_case {
	bool on_disk;
	enum pkv_durability mode;
	uint64_t ops;
};

ParameterizedTestParameters(concurrent, writers_and_readers)
{
	static struct conc_case cases[] = {
		{ false, PKV_DURABLE_PROCESS, 50000 },
		{ true, PKV_DURABLE_PROCESS, 50000 },
		{ true, PKV_DURABLE_POWER, 1500 },
		{ true, PKV_DURABLE_PERIODIC, 20000 },
	};

	return cr_make_param_array(struct conc_case, cases, sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct conc_case *cc, concurrent, writers_and_readers, .init = tu_setup,
		  .fini = tu_teardown, .timeout = 240)
{
	static struct worker wk[NWRITERS + NREADERS];
	pthread_t t[NWRITERS + NREADERS];
	struct shared sh;
	pkv_options o;
	unsigned char before[NKEYS][VAL_MAX + 16], buf[VAL_MAX + 16];
	size_t before_len[NKEYS];
	int before_rc[NKEYS];
	char k[32];

	tu_opts(&o, cc->mode);
	o.shards = 4; /* few shards: writers meet on the same shard locks */
	memset(&sh, 0, sizeof(sh));
	sh.db = tu_open(cc->on_disk ? tu_db : NULL, &o);
	sh.ops = cc->ops;
	atomic_init(&sh.writers_left, NWRITERS);
	for (int i = 0; i < NWRITERS; i++)
		atomic_init(&sh.published[i], 0);
	memset(wk, 0, sizeof(wk));
	for (int i = 0; i < NWRITERS + NREADERS; i++) {
		wk[i].sh = &sh;
		wk[i].id = (uint32_t)(i < NWRITERS ? i : i - NWRITERS);
		wk[i].seed = 0xc0ffee00u + (uint64_t)i;
		cr_assert_eq(pthread_create(&t[i], NULL, i < NWRITERS ? writer_main : reader_main,
					    &wk[i]),
			     0);
	}
	for (int i = 0; i < NWRITERS + NREADERS; i++)
		cr_assert_eq(pthread_join(t[i], NULL), 0);
	for (int i = 0; i < NWRITERS + NREADERS; i++)
		cr_assert_not(wk[i].failed, "%s %d: %s", i < NWRITERS ? "writer" : "reader", i,
			      wk[i].why);

	/* The final value of a key is what one of the writers did to it last. */
	for (uint32_t kid = 0; kid < NKEYS; kid++) {
		uint32_t w;
		uint64_t v;
		char why[256];
		bool ok = false;

		before_rc[kid] = pkv_get(sh.db, k, key_of(k, kid), before[kid], sizeof(before[kid]),
					 &before_len[kid]);
		if (before_rc[kid] == PKV_NOTFOUND) {
			for (int i = 0; i < NWRITERS; i++)
				ok |= wk[i].last_v[kid] == 0 || wk[i].last_del[kid];
			cr_assert(ok, "key %u absent, but no writer's last op on it was a delete",
				  kid);
			continue;
		}
		cr_assert_eq(before_rc[kid], 0);
		cr_assert(check_val(before[kid], before_len[kid], kid, &w, &v, why, sizeof(why)),
			  "%s", why);
		cr_assert_lt(w, NWRITERS);
		cr_assert(wk[w].last_v[kid] == v && !wk[w].last_del[kid],
			  "key %u ends with writer %u's version %llu, not its last op %llu", kid, w,
			  (unsigned long long)v, (unsigned long long)wk[w].last_v[kid]);
	}
	if (cc->on_disk)
		cr_assert_eq(tu_stats(sh.db).puts + tu_stats(sh.db).dels, tu_stats(sh.db).last_seq,
			     "every write took exactly one sequence number");
	tu_close(sh.db);

	if (!cc->on_disk)
		return;
	sh.db = tu_open(tu_db, &o);
	for (uint32_t kid = 0; kid < NKEYS; kid++) {
		size_t vlen;
		int rc = pkv_get(sh.db, k, key_of(k, kid), buf, sizeof(buf), &vlen);

		cr_assert_eq(rc, before_rc[kid], "key %u: %d before close, %d after reopen", kid,
			     before_rc[kid], rc);
		if (rc == 0)
			cr_assert(vlen == before_len[kid] && !memcmp(buf, before[kid], vlen),
				  "key %u changed across close and reopen", kid);
	}
	tu_close(sh.db);
}

/* ---- many writers under POWER: group commit, then everything survives ---------------------- */

#define GC_THREADS 8
#define GC_PUTS 250

struct gc_arg {
	pkv *db;
	int id;
	int err;
};

static void *gc_writer(void *p)
{
	struct gc_arg *a = p;
	char k[32], v[64];

	for (int i = 0; i < GC_PUTS && !a->err; i++) {
		int n = snprintf(k, sizeof(k), "t%d-%d", a->id, i);
		int m = snprintf(v, sizeof(v), "value %d of thread %d", i, a->id);

		a->err = pkv_put(a->db, k, (size_t)n, v, (size_t)m);
	}
	/* Overwrite and delete some of its own keys, still under POWER. */
	for (int i = 0; i < GC_PUTS && !a->err; i += 10) {
		int n = snprintf(k, sizeof(k), "t%d-%d", a->id, i);

		a->err = (i / 10) % 2 ? pkv_del(a->db, k, (size_t)n) :
					pkv_put(a->db, k, (size_t)n, "overwritten", 11);
	}
	return NULL;
}

Test(concurrent, many_power_writers, .init = tu_setup, .fini = tu_teardown, .timeout = 240)
{
	struct gc_arg a[GC_THREADS];
	pthread_t t[GC_THREADS];
	struct tu_model m;
	pkv_options o;
	pkv_stats st;
	pkv *db;
	char k[32], v[64];

	tu_opts(&o, PKV_DURABLE_POWER);
	db = tu_open(tu_db, &o);
	for (int i = 0; i < GC_THREADS; i++) {
		a[i] = (struct gc_arg){ .db = db, .id = i };
		cr_assert_eq(pthread_create(&t[i], NULL, gc_writer, &a[i]), 0);
	}
	for (int i = 0; i < GC_THREADS; i++) {
		cr_assert_eq(pthread_join(t[i], NULL), 0);
		cr_assert_eq(a[i].err, 0, "thread %d: %d (%s)", i, a[i].err,
			     pkv_strerror(a[i].err));
	}
	st = tu_stats(db);
	/* Every write returned under POWER: all of them are durable, counted by some sync round. */
	cr_assert_geq(st.durable_seq, st.last_seq, "durable_seq %llu < last_seq %llu",
		      (unsigned long long)st.durable_seq, (unsigned long long)st.last_seq);
	cr_assert_geq(st.synced_writes, st.puts + st.dels, "synced_writes %llu < writes %llu",
		      (unsigned long long)st.synced_writes,
		      (unsigned long long)(st.puts + st.dels));
	cr_assert_geq(st.syncs, 1);
	cr_assert_leq(st.syncs, st.puts + st.dels, "more sync rounds than writes");

	tu_model_init(&m);
	for (int id = 0; id < GC_THREADS; id++) {
		for (int i = 0; i < GC_PUTS; i++) {
			int n = snprintf(k, sizeof(k), "t%d-%d", id, i);
			int l = snprintf(v, sizeof(v), "value %d of thread %d", i, id);

			if (i % 10 == 0 && (i / 10) % 2)
				tu_model_del(&m, k, (size_t)n);
			else if (i % 10 == 0)
				tu_model_put(&m, k, (size_t)n, "overwritten", 11);
			else
				tu_model_put(&m, k, (size_t)n, v, (size_t)l);
		}
	}
	tu_model_assert(&m, db, "before close");
	tu_close(db);
	db = tu_open(tu_db, &o);
	tu_model_assert(&m, db, "after reopen");
	tu_close(db);
	tu_model_free(&m);
}
