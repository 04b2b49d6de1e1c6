/* SPDX-License-Identifier: MIT */
/*
 * test_read.c - read sections, pkv_get_ref and pkv_get_many through pkv.h only: every call,
 * every bad input, what may and may not be called inside a section, and that a pointer handed
 * out inside a section keeps its bytes while writers overwrite, delete and compact (read.c
 * RD.1 - RD.5).
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#define T_TIMEOUT 120

/* A handle value that pkv_open must leave alone when it refuses. */
#define SENTINEL_NONE ((pkv *)(uintptr_t)0x5a5a5a5a)

static void key_of(char *k, size_t cap, unsigned i)
{
	snprintf(k, cap, "key-%08u", i);
}

static void val_of(char *v, size_t cap, unsigned i, unsigned version)
{
	snprintf(v, cap, "value-%08u-version-%08u-padding-padding", i, version);
}

static void load(pkv *db, unsigned n, unsigned version)
{
	char k[32], v[96];

	for (unsigned i = 0; i < n; i++) {
		key_of(k, sizeof(k), i);
		val_of(v, sizeof(v), i, version);
		cr_assert_eq(pkv_put(db, k, strlen(k), v, strlen(v)), 0);
	}
}

TestSuite(section, .init = tu_setup, .fini = tu_teardown, .timeout = T_TIMEOUT);

Test(section, begin_end_bad_arguments)
{
	pkv *db = tu_open(NULL, NULL);

	cr_expect_eq(pkv_read_begin(NULL), PKV_EINVAL);
	cr_expect_eq(pkv_read_end(NULL), PKV_EINVAL);
	cr_expect_eq(pkv_read_end(db), PKV_EINVAL, "an end without a begin");
	cr_assert_eq(pkv_read_begin(db), 0);
	cr_assert_eq(pkv_read_end(db), 0);
	cr_expect_eq(pkv_read_end(db), PKV_EINVAL, "one end too many");
	tu_close(db);
}

Test(section, nesting_counts_per_store)
{
	pkv *a = tu_open(NULL, NULL), *b = tu_open(NULL, NULL);
	const void *val;
	size_t vlen;

	cr_assert_eq(pkv_put(a, "k", 1, "va", 2), 0);
	cr_assert_eq(pkv_put(b, "k", 1, "vb", 2), 0);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(pkv_read_begin(a), 0);
	cr_assert_eq(pkv_read_begin(b), 0);
	cr_assert_eq(pkv_get_ref(b, "k", 1, &val, &vlen, NULL), 0);
	cr_expect(vlen == 2 && memcmp(val, "vb", 2) == 0);
	cr_assert_eq(pkv_read_end(b), 0);
	cr_expect_eq(pkv_read_end(b), PKV_EINVAL, "b's only section ended");
	cr_expect_eq(pkv_get_ref(b, "k", 1, &val, &vlen, NULL), PKV_EINVAL,
		     "a's sections are not b's");
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(pkv_get_ref(a, "k", 1, &val, &vlen, NULL), 0);
		cr_expect(vlen == 2 && memcmp(val, "va", 2) == 0);
		cr_assert_eq(pkv_read_end(a), 0);
	}
	cr_expect_eq(pkv_get_ref(a, "k", 1, &val, &vlen, NULL), PKV_EINVAL, "outside again");
	tu_close(a);
	tu_close(b);
}

Test(section, at_most_max_stores_at_once)
{
	pkv *dbs[PKV_READ_MAX_STORES + 1];

	for (unsigned i = 0; i <= PKV_READ_MAX_STORES; i++)
		dbs[i] = tu_open(NULL, NULL);
	for (unsigned i = 0; i < PKV_READ_MAX_STORES; i++)
		cr_assert_eq(pkv_read_begin(dbs[i]), 0);
	cr_expect_eq(pkv_read_begin(dbs[PKV_READ_MAX_STORES]), PKV_EINVAL);
	cr_expect_eq(pkv_read_begin(dbs[0]), 0, "nesting on a store already open is fine");
	cr_expect_eq(pkv_read_end(dbs[0]), 0);
	cr_assert_eq(pkv_read_end(dbs[3]), 0);
	cr_expect_eq(pkv_read_begin(dbs[PKV_READ_MAX_STORES]), 0, "a slot came free");
	cr_expect_eq(pkv_read_end(dbs[PKV_READ_MAX_STORES]), 0);
	for (unsigned i = 0; i < PKV_READ_MAX_STORES; i++)
		if (i != 3)
			cr_assert_eq(pkv_read_end(dbs[i]), 0);
	for (unsigned i = 0; i <= PKV_READ_MAX_STORES; i++)
		tu_close(dbs[i]);
}

/* RD.4: what waits for readers returns PKV_EINVAL inside a section, on any store. */
Test(section, waiting_calls_are_einval_inside)
{
	pkv_options o;
	pkv *db, *other, *tmp = SENTINEL_NONE;
	char dir2[PATH_MAX];
	pkv_stats st;

	tu_opts(&o, PKV_DURABLE_PROCESS);
	db = tu_open(tu_db, &o);
	tu_path(dir2, "power");
	tu_opts(&o, PKV_DURABLE_POWER);
	other = tu_open(dir2, &o);
	cr_assert_eq(pkv_put(db, "a", 1, "1", 1), 0);
	cr_assert_eq(pkv_read_begin(other), 0); /* a section on another store counts too */

	cr_expect_eq(pkv_close(db), PKV_EINVAL);
	cr_expect_eq(pkv_compact(db), PKV_EINVAL);
	cr_expect_eq(pkv_verify(db), PKV_EINVAL);
	cr_expect_eq(pkv_sync(db), PKV_EINVAL);
	cr_expect_eq(pkv_put_ex(db, "a", 1, "2", 1, PKV_WRITE_POWER), PKV_EINVAL);
	cr_expect_eq(pkv_del_ex(db, "a", 1, PKV_WRITE_POWER), PKV_EINVAL);
	cr_expect_eq(pkv_put(other, "a", 1, "2", 1), PKV_EINVAL, "a POWER store's put waits");
	cr_expect_eq(pkv_thread_detach(), PKV_EINVAL);
	cr_expect_eq(pkv_open(NULL, NULL, &tmp), PKV_EINVAL);
	cr_expect_eq(tmp, SENTINEL_NONE);

	/* What does not wait works inside. */
	cr_expect_eq(pkv_put(db, "a", 1, "3", 1), 0);
	cr_expect_eq(pkv_del(db, "a", 1), 0);
	cr_expect_eq(pkv_put(db, "b", 1, "4", 1), 0);
	cr_expect_eq(pkv_get_stats(db, &st), 0);
	cr_assert_eq(pkv_read_end(other), 0);

	/* Outside, all of them work again, and nothing above was half done. */
	cr_expect_eq(pkv_put_ex(db, "a", 1, "5", 1, PKV_WRITE_POWER), 0);
	cr_expect_eq(pkv_sync(db), 0);
	cr_expect_eq(pkv_compact(db), 0);
	cr_expect_eq(pkv_verify(db), 0);
	cr_expect_eq(pkv_thread_detach(), 0);
	tu_close(db);
	tu_close(other);
}

/*
 * RD.4 on the store of the section itself: pkv_close returns PKV_EINVAL at once (the test's own
 * timeout bounds "at once": a close that waited for this thread's section would never return)
 * and closes nothing: the held pointer keeps its bytes, the store still reads and writes.
 * pkv_checkpoint and a power-durable pkv_put_expire return PKV_EINVAL and change nothing. After
 * pkv_read_end each of them succeeds, and the store reopens with what was written.
 */
Test(section, own_store_close_checkpoint_put_expire_are_einval_inside, .timeout = 60)
{
	uint64_t later = (uint64_t)time(NULL) * 1000 + 3600 * 1000; /* expires in an hour */
	pkv_options o;
	pkv *db, *cp;
	char dst[PATH_MAX], buf[8];
	const void *val, *val2;
	size_t vlen, vlen2, n;
	pkv_stats before, after;
	struct stat st;

	tu_opts(&o, PKV_DURABLE_PROCESS);
	db = tu_open(tu_db, &o);
	tu_path(dst, "checkpoint");
	cr_assert_eq(pkv_put(db, "held", 4, "bytes", 5), 0);
	cr_assert_eq(pkv_read_begin(db), 0);
	cr_assert_eq(pkv_get_ref(db, "held", 4, &val, &vlen, NULL), 0);
	before = tu_stats(db);

	cr_expect_eq(pkv_close(db), PKV_EINVAL);
	cr_expect_eq(pkv_checkpoint(db, dst), PKV_EINVAL);
	cr_expect_eq(pkv_put_expire(db, "x", 1, "1", 1, later, PKV_WRITE_POWER), PKV_EINVAL);
	cr_expect_eq(pkv_put_expire(db, "held", 4, "2", 1, later, PKV_WRITE_POWER), PKV_EINVAL);

	/* Nothing changed, and the handle is open: reads and (non-waiting) writes work. */
	after = tu_stats(db);
	cr_expect_eq(after.last_seq, before.last_seq, "a refused call took a sequence number");
	cr_expect_eq(after.puts, before.puts, "a refused call wrote");
	cr_expect_eq(after.keys, before.keys);
	cr_expect_eq(after.readonly_reason, 0);
	cr_expect_neq(stat(dst, &st), 0, "a refused checkpoint made its directory");
	cr_expect(vlen == 5 && memcmp(val, "bytes", 5) == 0, "the held value changed");
	cr_expect_eq(pkv_get(db, "x", 1, buf, sizeof(buf), &n), PKV_NOTFOUND);
	cr_expect_eq(pkv_get(db, "held", 4, buf, sizeof(buf), &n), 0);
	cr_expect(n == 5 && memcmp(buf, "bytes", 5) == 0);
	cr_expect_eq(pkv_put(db, "inside", 6, "ok", 2), 0);
	cr_expect_eq(pkv_get_ref(db, "inside", 6, &val2, &vlen2, NULL), 0);
	cr_expect(vlen2 == 2 && memcmp(val2, "ok", 2) == 0);
	cr_assert_eq(pkv_read_end(db), 0);

	/* Outside, the same calls succeed. */
	cr_expect_eq(pkv_put_expire(db, "x", 1, "1", 1, later, PKV_WRITE_POWER), 0);
	cr_expect_eq(pkv_checkpoint(db, dst), 0);
	cr_assert_eq(pkv_close(db), 0);
	db = tu_open(tu_db, &o);
	cr_expect_eq(tu_stats(db).keys, 3);
	cr_expect_eq(pkv_get(db, "held", 4, buf, sizeof(buf), &n), 0);
	cr_expect(n == 5 && memcmp(buf, "bytes", 5) == 0);
	cr_expect_eq(pkv_get(db, "x", 1, buf, sizeof(buf), &n), 0);
	cr_expect(n == 1 && buf[0] == '1');
	tu_close(db);
	o.flags |= PKV_OPEN_READONLY;
	cp = tu_open(dst, &o);
	cr_expect_eq(tu_stats(cp).keys, 3, "the checkpoint after the section holds every write");
	tu_close(cp);
}

TestSuite(get_ref, .init = tu_setup, .fini = tu_teardown, .timeout = T_TIMEOUT);

Test(get_ref, bad_arguments)
{
	pkv *db = tu_open(NULL, NULL);
	char big[PKV_MAX_KEY + 1];
	const void *val = (const void *)1;
	size_t vlen = 7;
	uint64_t seq = 9;

	memset(big, 'k', sizeof(big));
	cr_assert_eq(pkv_put(db, "k", 1, "v", 1), 0);
	cr_expect_eq(pkv_get_ref(db, "k", 1, &val, &vlen, &seq), PKV_EINVAL, "outside a section");
	cr_expect(val == NULL && vlen == 0 && seq == 0, "outputs cleared");
	cr_assert_eq(pkv_read_begin(db), 0);
	cr_expect_eq(pkv_get_ref(NULL, "k", 1, &val, &vlen, &seq), PKV_EINVAL);
	cr_expect_eq(pkv_get_ref(db, NULL, 1, &val, &vlen, &seq), PKV_EINVAL);
	cr_expect_eq(pkv_get_ref(db, "k", 0, &val, &vlen, &seq), PKV_EINVAL);
	cr_expect_eq(pkv_get_ref(db, "k", 1, NULL, &vlen, &seq), PKV_EINVAL);
	cr_expect_eq(pkv_get_ref(db, "k", 1, &val, NULL, &seq), PKV_EINVAL);
	cr_expect_eq(pkv_get_ref(db, big, sizeof(big), &val, &vlen, &seq), PKV_ETOOBIG);
	cr_expect_eq(pkv_get_ref(db, big, PKV_MAX_KEY, &val, &vlen, &seq), PKV_NOTFOUND);
	cr_expect(val == NULL && vlen == 0 && seq == 0);
	cr_expect_eq(pkv_get_ref(db, "k", 1, &val, &vlen, NULL), 0, "seq may be NULL");
	cr_expect(vlen == 1 && memcmp(val, "v", 1) == 0);
	cr_assert_eq(pkv_read_end(db), 0);
	tu_close(db);
}

/* The value, its length and the version's seq; tombstones read as absent; both map halves. */
static void check_ref_values(pkv *db, bool persistent)
{
	char k[32], v[96];
	const void *val;
	size_t vlen;
	uint64_t seq, seq0 = 0;

	load(db, 200, 1);
	cr_assert_eq(pkv_del(db, "key-00000007", 12), 0);
	if (persistent)
		cr_assert_eq(pkv_compact(db), 0); /* the snapshot now serves what did not change */
	cr_assert_eq(pkv_put(db, "key-00000008", 12, "", 0), 0); /* an empty value, in the map */
	cr_assert_eq(pkv_read_begin(db), 0);
	for (unsigned i = 0; i < 200; i++) {
		key_of(k, sizeof(k), i);
		val_of(v, sizeof(v), i, 1);
		if (i == 7) {
			cr_expect_eq(pkv_get_ref(db, k, strlen(k), &val, &vlen, &seq), PKV_NOTFOUND);
			continue;
		}
		cr_assert_eq(pkv_get_ref(db, k, strlen(k), &val, &vlen, &seq), 0, "%s", k);
		if (i == 8) {
			cr_expect_eq(vlen, 0);
			cr_expect_gt(seq, 200);
			continue;
		}
		cr_expect(vlen == strlen(v) && memcmp(val, v, vlen) == 0, "%s", k);
		if (i == 0)
			seq0 = seq;
		cr_expect_eq(seq, seq0 + i, "put %u had seq %llu", i, (unsigned long long)seq);
	}
	cr_assert_eq(pkv_read_end(db), 0);
}

Test(get_ref, values_and_seqs_in_memory)
{
	pkv *db = tu_open(NULL, NULL);

	check_ref_values(db, false);
	tu_close(db);
}

Test(get_ref, values_and_seqs_from_map_and_snapshot)
{
	pkv *db = tu_open(tu_db, NULL);

	check_ref_values(db, true);
	tu_close(db);
	db = tu_open(tu_db, NULL); /* after a reopen, the snapshot serves nearly everything */
	check_ref_values(db, true);
	tu_close(db);
}

struct churn {
	pkv *db;
	unsigned n;
	int compact; /* also compact (it waits for the section to end) */
	int rc;
	volatile int done;
};

static void *churn_main(void *arg)
{
	struct churn *c = arg;
	char k[32], v[96];

	for (unsigned round = 2; round < 6 && c->rc == 0; round++) {
		for (unsigned i = 0; i < c->n && c->rc == 0; i++) {
			key_of(k, sizeof(k), i);
			val_of(v, sizeof(v), i, round);
			c->rc = i % 3 == 0 ? pkv_del(c->db, k, strlen(k))
					   : pkv_put(c->db, k, strlen(k), v, strlen(v));
			if (c->rc == PKV_NOTFOUND)
				c->rc = 0;
		}
		if (c->compact && c->rc == 0)
			c->rc = pkv_compact(c->db);
	}
	__atomic_store_n(&c->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/*
 * RD.2: pointers taken in a section keep their bytes while another thread overwrites and
 * deletes every key, and compacts (the compaction finishes only after the section ends).
 */
static void held_pointers_survive(pkv *db, int compact)
{
	enum { N = 300 };
	const void *val[N];
	size_t vlen[N];
	char copy[N][96], k[32];
	struct churn c = { .db = db, .n = N, .compact = compact };
	pthread_t t;

	load(db, N, 1);
	if (compact)
		cr_assert_eq(pkv_compact(db), 0); /* half the pointers go into the mapped snapshot */
	load(db, N / 2, 1);
	cr_assert_eq(pkv_read_begin(db), 0);
	for (unsigned i = 0; i < N; i++) {
		key_of(k, sizeof(k), i);
		cr_assert_eq(pkv_get_ref(db, k, strlen(k), &val[i], &vlen[i], NULL), 0);
		memcpy(copy[i], val[i], vlen[i]);
	}
	cr_assert_eq(pthread_create(&t, NULL, churn_main, &c), 0);
	/* Without compactions the writer finishes inside the section; with them it waits for it. */
	for (int spins = 0; spins < 2000 && !__atomic_load_n(&c.done, __ATOMIC_ACQUIRE); spins++) {
		for (unsigned i = 0; i < N; i++)
			cr_assert(memcmp(val[i], copy[i], vlen[i]) == 0, "key %u changed under us", i);
		usleep(1000);
	}
	for (unsigned i = 0; i < N; i++)
		cr_assert(memcmp(val[i], copy[i], vlen[i]) == 0, "key %u changed under us", i);
	cr_assert_eq(pkv_read_end(db), 0);
	pthread_join(t, NULL);
	cr_expect_eq(c.rc, 0, "%s", pkv_strerror(c.rc));
}

Test(get_ref, held_pointers_survive_overwrites)
{
	pkv *db = tu_open(NULL, NULL);

	held_pointers_survive(db, 0);
	tu_close(db);
}

Test(get_ref, held_pointers_survive_compactions)
{
	pkv *db = tu_open(tu_db, NULL);

	held_pointers_survive(db, 1);
	tu_close(db);
}

TestSuite(get_many, .init = tu_setup, .fini = tu_teardown, .timeout = T_TIMEOUT);

Test(get_many, bad_calls)
{
	pkv *db = tu_open(NULL, NULL);
	pkv_item it = { .key = "k", .klen = 1, .rc = 12345 };

	cr_expect_eq(pkv_get_many(db, &it, 1), PKV_EINVAL, "outside a section");
	cr_expect_eq(it.rc, 12345, "no item touched");
	cr_assert_eq(pkv_read_begin(db), 0);
	cr_expect_eq(pkv_get_many(NULL, &it, 1), PKV_EINVAL);
	cr_expect_eq(pkv_get_many(db, NULL, 1), PKV_EINVAL);
	cr_expect_eq(pkv_get_many(db, &it, 0), PKV_EINVAL);
	cr_expect_eq(pkv_get_many(db, &it, (size_t)INT_MAX + 1), PKV_EINVAL);
	cr_expect_eq(it.rc, 12345, "no item touched");
	cr_assert_eq(pkv_read_end(db), 0);
	tu_close(db);
}

Test(get_many, bad_items_fail_alone)
{
	pkv *db = tu_open(NULL, NULL);
	char big[PKV_MAX_KEY + 1];
	pkv_item it[5] = {
		{ .key = "k", .klen = 1 },
		{ .key = NULL, .klen = 1 },
		{ .key = "k", .klen = 0 },
		{ .key = big, .klen = sizeof(big) },
		{ .key = "absent", .klen = 6 },
	};

	memset(big, 'b', sizeof(big));
	cr_assert_eq(pkv_put(db, "k", 1, "value", 5), 0);
	cr_assert_eq(pkv_read_begin(db), 0);
	for (int i = 0; i < 5; i++) {
		it[i].val = &it;
		it[i].vlen = it[i].seq = it[i].expires_ms = 99;
	}
	cr_expect_eq(pkv_get_many(db, it, 5), 1);
	cr_expect(it[0].rc == 0 && it[0].vlen == 5 && memcmp(it[0].val, "value", 5) == 0);
	cr_expect(it[0].seq == 1 && it[0].expires_ms == 0);
	cr_expect_eq(it[1].rc, PKV_EINVAL);
	cr_expect_eq(it[2].rc, PKV_EINVAL);
	cr_expect_eq(it[3].rc, PKV_ETOOBIG);
	cr_expect_eq(it[4].rc, PKV_NOTFOUND);
	for (int i = 1; i < 5; i++)
		cr_expect(it[i].val == NULL && it[i].vlen == 0 && it[i].seq == 0 &&
			  it[i].expires_ms == 0, "item %d cleared", i);
	cr_assert_eq(pkv_read_end(db), 0);
	tu_close(db);
}

/* Many keys (several chunks), duplicates, deletes, both halves of the map: as pkv_get_ref. */
static void check_many(pkv *db)
{
	enum { N = 1000, M = 1300 };
	static pkv_item it[M];
	static char keys[M][32];
	const void *val;
	size_t vlen;
	uint64_t seq;
	int want = 0, got;

	for (unsigned i = 0; i < M; i++) {
		/* Keys 0..N-1 exist but the multiples of 7 were deleted; then N.. absent; repeats. */
		key_of(keys[i], sizeof(keys[i]), i < N ? i : i < N + 150 ? i : i - N - 150);
		it[i].key = keys[i];
		it[i].klen = strlen(keys[i]);
	}
	cr_assert_eq(pkv_read_begin(db), 0);
	got = pkv_get_many(db, it, M);
	for (unsigned i = 0; i < M; i++) {
		int r = pkv_get_ref(db, it[i].key, it[i].klen, &val, &vlen, &seq);

		cr_expect_eq(it[i].rc, r, "item %u: %d vs get_ref %d", i, it[i].rc, r);
		cr_expect(it[i].val == val && it[i].vlen == vlen && it[i].seq == seq, "item %u", i);
		want += r == 0;
	}
	cr_expect_eq(got, want);
	cr_assert_eq(pkv_read_end(db), 0);
}

Test(get_many, agrees_with_get_ref)
{
	pkv *db = tu_open(tu_db, NULL), *mem = tu_open(NULL, NULL);
	char k[32];

	load(db, 1000, 1);
	load(mem, 1000, 1);
	for (unsigned i = 0; i < 1000; i += 7) {
		key_of(k, sizeof(k), i);
		cr_assert_eq(pkv_del(db, k, strlen(k)), 0);
		cr_assert_eq(pkv_del(mem, k, strlen(k)), 0);
	}
	check_many(mem);
	check_many(db);
	cr_assert_eq(pkv_compact(db), 0);
	load(db, 100, 2); /* some keys in the live map again, the rest from the snapshot */
	check_many(db);
	tu_close(db);
	db = tu_open(tu_db, NULL);
	check_many(db);
	tu_close(db);
	tu_close(mem);
}

/* RD.4 for the calls that came with batches and tickets: what would wait is PKV_EINVAL inside
 * a section, and the store is untouched. */
Test(section, refuses_waits_of_batches_and_tickets)
{
	pkv_options o;
	pkv *db;
	pkv_batch *b;
	uint64_t seq = 0;
	char buf[8];
	size_t n;

	tu_opts(&o, PKV_DURABLE_PROCESS);
	db = tu_open(tu_db, &o);
	cr_assert_eq(pkv_put_seq(db, "k", 1, "v", 1, 0, &seq), 0);
	cr_assert_eq(pkv_batch_new(&b), 0);
	cr_assert_eq(pkv_batch_put(b, "b", 1, "x", 1), 0);
	cr_assert_eq(pkv_read_begin(db), 0);
	cr_assert_eq(pkv_write(db, b, PKV_WRITE_POWER, NULL), PKV_EINVAL);
	cr_assert_eq(pkv_clear(db), PKV_EINVAL);
	cr_assert_eq(pkv_wait_durable(db, seq, -1), PKV_EINVAL);
	cr_assert_eq(pkv_wait_durable(db, seq, 100), PKV_EINVAL);
	cr_assert_eq(pkv_write(db, b, 0, NULL), 0, "a PROCESS batch does not wait: allowed");
	cr_assert_eq(pkv_read_end(db), 0);
	cr_assert_eq(pkv_get(db, "k", 1, buf, sizeof(buf), &n), 0, "clear did nothing");
	cr_assert_eq(pkv_wait_durable(db, seq, -1), 0);
	pkv_batch_free(b);
	tu_close(db);
}
