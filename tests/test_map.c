/* SPDX-License-Identifier: MIT */
/*
 * test_map.c - the live map's read side, from inside: the inline probe (map.c M.8) against
 * ck_ht_get_spmc over tables with tombstones, reused slots and growth, and the batch-visibility
 * counters (M.7) driven directly, as a batch writer drives them, under pkv_get_many (with the
 * negative control: the same batches without the counters are seen in part), and M.4 seen through
 * a read section: what it holds is reclaimed after it ends, not before.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "map.h"
#include "rcu.h"
#include "store.h"
#include "testutil.h"

#define T_TIMEOUT 120

TestSuite(map, .timeout = T_TIMEOUT);

static uint64_t mono_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

static size_t key_of(char *k, unsigned i)
{
	return (size_t)snprintf(k, 32, "k%u", i * 2654435761u);
}

/* Every key, present or not, reads the same through the inline probe and through ck_ht. */
static void same_answers(struct pkv_map *m, unsigned n)
{
	char k[32];

	pkv__rcu_read_lock();
	for (unsigned i = 0; i < n; i++) {
		size_t kl = key_of(k, i);
		uint64_t h = pkv__map_hash(m, k, kl);
		struct map_shard *s = pkv__map_shard(m, h);
		ck_ht_hash_t hh = { h };
		ck_ht_entry_t e;
		const struct pkv_rec *want = NULL;

		ck_ht_entry_key_set(&e, k, (uint16_t)kl);
		if (ck_ht_get_spmc(&s->ht, hh, &e))
			want = ck_ht_entry_value(&e);
		cr_assert_eq(pkv__ck_probe_rcu(&s->ht, h, k, kl), want, "key %u", i);
		cr_assert_eq(pkv__map_get_rcu(m, h, k, kl), want, "key %u", i);
	}
	pkv__rcu_read_unlock();
}

static void set_key(struct pkv_map *m, unsigned i, uint64_t seq)
{
	char k[32];
	size_t kl = key_of(k, i);
	uint64_t h = pkv__map_hash(m, k, kl);
	struct map_shard *s = pkv__map_shard(m, h);
	struct pkv_rec *r = pkv__rec_new(k, kl, "v", 1);

	cr_assert_not_null(r);
	pthread_mutex_lock(&s->lock);
	cr_assert_eq(pkv__map_reserve_locked(s), 0);
	cr_assert_eq(pkv__map_set_locked(s, h, r, seq), 0);
	pthread_mutex_unlock(&s->lock);
}

static void del_key(struct pkv_map *m, unsigned i)
{
	char k[32];
	size_t kl = key_of(k, i);
	uint64_t h = pkv__map_hash(m, k, kl);
	struct map_shard *s = pkv__map_shard(m, h);

	pthread_mutex_lock(&s->lock);
	(void)pkv__map_del_locked(s, h, k, kl);
	pthread_mutex_unlock(&s->lock);
}

Test(map, inline_probe_matches_ck_ht)
{
	struct pkv_map m;
	uint64_t seq = 0;

	pkv__rcu_enter();
	cr_assert_eq(pkv__map_init(&m, 4, 0), 0); /* small tables: they grow many times */
	cr_assert(m.inline_probe, "the mirror of ck_ht's table does not match this libck");
	for (unsigned i = 0; i < 5000; i++)
		set_key(&m, i, ++seq);
	same_answers(&m, 6000);
	for (unsigned i = 0; i < 5000; i += 3)
		del_key(&m, i); /* tombstones in probe sequences */
	same_answers(&m, 6000);
	for (unsigned i = 0; i < 5000; i += 2)
		set_key(&m, i, ++seq); /* reused tombstones, relocations, overwrites */
	for (unsigned i = 5000; i < 9000; i++)
		set_key(&m, i, ++seq); /* more growth */
	same_answers(&m, 10000);
	pkv__map_destroy(&m);
}

/* ---- M.7 from the read side --------------------------------------------------------------- */

/* A reader of the pair; the test reads stop, reads, torn and rc atomically while it runs. */
struct pair_reader {
	pkv *db;
	int stop;
	long reads, torn;
	int rc;
};

static void *pair_reader_main(void *arg)
{
	struct pair_reader *p = arg;
	pkv_item it[2] = { { .key = "pair-a", .klen = 6 }, { .key = "pair-b", .klen = 6 } };
	int rc = 0;

	while (rc == 0 && !__atomic_load_n(&p->stop, __ATOMIC_ACQUIRE)) {
		int n;

		if ((rc = pkv_read_begin(p->db)) != 0)
			break;
		n = pkv_get_many(p->db, it, 2);
		if (n != 2) {
			rc = n < 0 ? n : PKV_NOTFOUND;
		} else {
			__atomic_add_fetch(&p->reads, 1, __ATOMIC_RELAXED);
			if (it[0].seq != it[1].seq || it[0].vlen != it[1].vlen ||
			    memcmp(it[0].val, it[1].val, it[0].vlen) != 0)
				__atomic_add_fetch(&p->torn, 1, __ATOMIC_RELAXED);
		}
		pkv_read_end(p->db);
	}
	__atomic_store_n(&p->rc, rc, __ATOMIC_RELEASE);
	return NULL;
}

/*
 * One "batch": both keys under both shard locks, one seq, with the batch counters around the
 * publications when @use_counters (as pkv_write does), without them otherwise. Between the two
 * publications the writer stalls briefly, or sleeps @pause_us when it is not 0, holding the
 * locks: a window in which a reader finds pair-a new and pair-b old unless M.7 holds it off.
 */
static void write_pair(pkv *db, uint64_t seq, bool use_counters, unsigned pause_us)
{
	struct pkv_map *m = &db->map;
	const char *keys[2] = { "pair-a", "pair-b" };
	struct map_shard *s[2];
	uint64_t h[2];
	char v[32];
	int n = snprintf(v, sizeof(v), "version-%llu", (unsigned long long)seq);

	for (int i = 0; i < 2; i++) {
		h[i] = pkv__map_hash(m, keys[i], 6);
		s[i] = pkv__map_shard(m, h[i]);
	}
	if (s[0] > s[1]) { /* ascending shard order */
		pthread_mutex_lock(&s[1]->lock);
		pthread_mutex_lock(&s[0]->lock);
	} else {
		pthread_mutex_lock(&s[0]->lock);
		if (s[1] != s[0])
			pthread_mutex_lock(&s[1]->lock);
	}
	if (use_counters)
		pkv__map_batch_begin_locked(m);
	for (int i = 0; i < 2; i++) {
		struct pkv_rec *r = pkv__rec_new(keys[i], 6, v, (size_t)n);

		cr_assert_not_null(r);
		cr_assert_eq(pkv__map_reserve_locked(s[i]), 0);
		cr_assert_eq(pkv__map_set_locked(s[i], h[i], r, seq), 0);
		if (i == 0 && pause_us > 0)
			usleep(pause_us); /* the reader gets a core and a long look at the window */
		else if (i == 0)
			ck_pr_stall(); /* widen the window between the two publications */
	}
	if (use_counters)
		pkv__map_batch_end_locked(m);
	if (s[1] != s[0])
		pthread_mutex_unlock(&s[1]->lock);
	pthread_mutex_unlock(&s[0]->lock);
}

/* A reader of the pair (pair_reader_main) running; the pair holds version @seq. */
static pthread_t pair_reader_start(struct pair_reader *p, uint64_t seq)
{
	pthread_t t;

	*p = (struct pair_reader){ 0 };
	p->db = tu_open(NULL, NULL);
	pkv__rcu_enter();
	write_pair(p->db, seq, true, 0);
	cr_assert_eq(pthread_create(&t, NULL, pair_reader_main, p), 0);
	return t;
}

static void pair_reader_stop(struct pair_reader *p, pthread_t t)
{
	__atomic_store_n(&p->stop, 1, __ATOMIC_RELEASE);
	pthread_join(t, NULL);
	cr_expect_eq(p->rc, 0, "%s", pkv_strerror(p->rc));
}

static bool pair_reader_ok(struct pair_reader *p)
{
	return __atomic_load_n(&p->rc, __ATOMIC_ACQUIRE) == 0;
}

/*
 * M.7: with the counters, no multi-get sees the pair in part: over many quick batches, and
 * over batches that sleep between their two publications (the window the negative control
 * below finds at once).
 */
Test(map, get_many_never_shows_a_batch_in_part)
{
	struct pair_reader p;
	uint64_t seq = 1u << 20;
	pthread_t t = pair_reader_start(&p, seq++);

	for (int i = 0; i < 200000 && pair_reader_ok(&p); i++)
		write_pair(p.db, seq++, true, 0);
	for (int i = 0; i < 200 && pair_reader_ok(&p); i++)
		write_pair(p.db, seq++, true, 500);
	pair_reader_stop(&p, t);
	cr_expect_eq(p.torn, 0, "%ld of %ld multi-gets saw a batch in part", p.torn, p.reads);
	cr_expect_gt(p.reads, 0, "the reader ran");
	tu_close(p.db);
}

/*
 * The negative control of the test above (and of test_write's get_many_never_sees_a_batch_in_part):
 * the same batches and the same reader, the counters skipped. The writer sleeps between the two
 * publications, so the reader, spinning on the other core (or on this one while the writer
 * sleeps), soon finds the pair torn: a check that could not see a batch in part would fail here.
 * Bounded: at most 5 s of batches (the first few suffice, even on a loaded machine).
 */
Test(map, get_many_shows_a_batch_in_part_without_the_counters)
{
	struct pair_reader p;
	uint64_t seq = 1u << 20;
	pthread_t t = pair_reader_start(&p, seq++);
	uint64_t t_end = mono_ms() + 5000;
	long batches = 0;

	while (__atomic_load_n(&p.torn, __ATOMIC_RELAXED) == 0 && pair_reader_ok(&p) &&
	       mono_ms() < t_end) {
		write_pair(p.db, seq++, false, 1000);
		batches++;
	}
	pair_reader_stop(&p, t);
	cr_expect_gt(p.torn, 0, "no multi-get of %ld saw any of %ld uncounted batches in part",
		     p.reads, batches);
	tu_close(p.db);
}

/* ---- M.4 and read.c RD.2: reclamation waits for the section, and only for it -------------- */

struct barrier_waiter {
	int done; /* atomic */
};

/* Wait for every RCU callback queued so far (they run after a grace period: after every
 * section that began before them ended). */
static void *barrier_main(void *arg)
{
	struct barrier_waiter *w = arg;

	pkv__rcu_enter(); /* call_rcu, which the barrier uses, wants a registered thread */
	urcu_memb_barrier();
	__atomic_store_n(&w->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/*
 * Records a section holds and a writer replaces are retired at once, and handed to call_rcu,
 * but not reclaimed while the section lasts (their bytes stay, and a thread waiting for every
 * callback keeps waiting); once the section ends they are all reclaimed. In memory: no other
 * writer and no compaction retires anything meanwhile, so the counts are exact.
 */
#define N_RECLAIM 1000u

Test(map, records_replaced_in_a_section_are_reclaimed_after_it)
{
	static const void *val[N_RECLAIM];
	static size_t vlen[N_RECLAIM];
	static char copy[N_RECLAIM][32];
	struct barrier_waiter w = { 0 };
	uint64_t retired0, reclaimed0, retired, reclaimed, t_end;
	char k[32], v[32];
	pthread_t t;
	pkv_options o;
	pkv *db;

	/* 4 shards of about 250 keys: each fills a retire batch (queued by the writer itself) and
	 * leaves a part of one (queued by pkv__map_flush_retired). */
	pkv_options_default(&o);
	o.shards = 4;
	db = tu_open(NULL, &o);
	for (unsigned i = 0; i < N_RECLAIM; i++) {
		int n = snprintf(v, sizeof(v), "old-%u", i);

		cr_assert_eq(pkv_put(db, k, key_of(k, i), v, (size_t)n), 0);
	}
	pkv__map_flush_retired(&db->map);
	pkv__map_reclaim_counts(&db->map, &retired0, &reclaimed0);
	cr_assert_eq(retired0, 0, "new keys replace nothing");

	cr_assert_eq(pkv_read_begin(db), 0);
	for (unsigned i = 0; i < N_RECLAIM; i++) {
		cr_assert_eq(pkv_get_ref(db, k, key_of(k, i), &val[i], &vlen[i], NULL), 0);
		cr_assert_lt(vlen[i], sizeof(copy[i]));
		memcpy(copy[i], val[i], vlen[i]);
	}
	for (unsigned i = 0; i < N_RECLAIM; i++) {
		int n = snprintf(v, sizeof(v), "new-%u", i);

		cr_assert_eq(pkv_put(db, k, key_of(k, i), v, (size_t)n), 0);
	}
	pkv__map_flush_retired(&db->map); /* every replaced record is now queued on call_rcu */
	pkv__map_reclaim_counts(&db->map, &retired, &reclaimed);
	cr_expect_eq(retired - retired0, N_RECLAIM, "%llu of %u replaced records retired",
		     (unsigned long long)(retired - retired0), N_RECLAIM);
	cr_assert_eq(pthread_create(&t, NULL, barrier_main, &w), 0);
	/* 100 ms: a longer wait makes a stronger check, a shorter one never a false failure. */
	for (int spin = 0; spin < 20; spin++) {
		usleep(5000);
		pkv__map_reclaim_counts(&db->map, &retired, &reclaimed);
		cr_assert_eq(reclaimed, reclaimed0, "%llu records reclaimed inside the section",
			     (unsigned long long)(reclaimed - reclaimed0));
		cr_assert_eq(__atomic_load_n(&w.done, __ATOMIC_ACQUIRE), 0,
			     "the callbacks ran inside the section");
		for (unsigned i = 0; i < N_RECLAIM; i++)
			cr_assert(memcmp(val[i], copy[i], vlen[i]) == 0, "key %u changed", i);
	}
	cr_assert_eq(pkv_read_end(db), 0);

	/* Bounded: the barrier returns once the grace period (no section left) and the callbacks
	 * are done; the suite's timeout is the backstop. */
	t_end = mono_ms() + 30000;
	while (!__atomic_load_n(&w.done, __ATOMIC_ACQUIRE) && mono_ms() < t_end)
		usleep(1000);
	cr_assert(__atomic_load_n(&w.done, __ATOMIC_ACQUIRE),
		  "the callbacks did not run within 30 s of the section's end");
	pthread_join(t, NULL);
	pkv__map_reclaim_counts(&db->map, &retired, &reclaimed);
	cr_expect_eq(retired - retired0, N_RECLAIM);
	cr_expect_eq(reclaimed - reclaimed0, N_RECLAIM, "%llu of %u replaced records reclaimed",
		     (unsigned long long)(reclaimed - reclaimed0), N_RECLAIM);
	tu_close(db);
}

struct waiter {
	pkv *db;
	int done;
	int n;
};

static void *waiter_main(void *arg)
{
	struct waiter *w = arg;
	pkv_item it = { .key = "pair-a", .klen = 6 };

	pkv_read_begin(w->db);
	w->n = pkv_get_many(w->db, &it, 1);
	pkv_read_end(w->db);
	__atomic_store_n(&w->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* While a batch is in flight (begun, not done) a multi-get waits; it returns once it is done. */
Test(map, get_many_waits_for_a_batch_in_flight)
{
	struct waiter w = { 0 };
	pthread_t t;

	w.db = tu_open(NULL, NULL);
	cr_assert_eq(pkv_put(w.db, "pair-a", 6, "x", 1), 0);
	pkv__map_batch_begin_locked(&w.db->map);
	cr_assert_eq(pthread_create(&t, NULL, waiter_main, &w), 0);
	usleep(50 * 1000);
	cr_expect_eq(__atomic_load_n(&w.done, __ATOMIC_ACQUIRE), 0,
		     "a multi-get returned while a batch was in flight");
	pkv__map_batch_end_locked(&w.db->map);
	pthread_join(t, NULL);
	cr_expect_eq(w.n, 1);
	tu_close(w.db);
}

/*
 * M.6 for batches: a batch of many new keys in one shard makes room for all of them before its
 * WAL append, so ck_ht never has to grow itself after it (where a failure would be ignored).
 */
Test(map, a_batch_makes_room_for_all_its_keys)
{
	pkv_options o;
	pkv_batch *b;
	pkv *db;
	char k[32];

	pkv_options_default(&o);
	o.shards = 1;
	db = tu_open(NULL, &o);
	for (unsigned round = 0; round < 4; round++) {
		struct map_shard *s = &db->map.shards[0];

		cr_assert_eq(pkv_batch_new(&b), 0);
		for (unsigned i = 0; i < 3000; i++) {
			size_t kl = key_of(k, round * 3000 + i);

			cr_assert_eq(pkv_batch_put(b, k, kl, "v", 1), 0);
		}
		cr_assert_eq(pkv_write(db, b, 0, NULL), 0);
		pkv_batch_free(b);
		cr_assert_geq(s->cap, 2 * ck_ht_count(&s->ht),
			      "round %u: %lu keys in a table the map sized for %lu", round,
			      (unsigned long)ck_ht_count(&s->ht), (unsigned long)s->cap);
		cr_assert_eq(tu_stats(db).keys, (round + 1) * 3000);
	}
	tu_close(db);
}
