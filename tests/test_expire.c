/* SPDX-License-Identifier: MIT */
/*
 * test_expire.c - expiry against a fake clock (the library's clock seam, internal.h): a key
 * reads as present until the instant it expires and as absent from that instant on, in the live
 * map and in the snapshot base, to gets, scans and batch conditions; a compaction drops expired
 * keys and their memory; replay keeps the expiry of every record.
 *
 * Links the static library for the seam; otherwise the public API only.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "testutil.h"

#define T_TIMEOUT 120

static uint64_t fake_now;

static uint64_t fake_clock(void)
{
	return __atomic_load_n(&fake_now, __ATOMIC_RELAXED);
}

static void set_now(uint64_t t)
{
	__atomic_store_n(&fake_now, t, __ATOMIC_RELAXED);
}

static void setup(void)
{
	tu_setup();
	set_now(1000000);
	pkv__clock_set(fake_clock);
}

static void teardown(void)
{
	pkv__clock_set(NULL);
	tu_teardown();
}

static int present(pkv *db, const char *k)
{
	char buf[64];
	size_t n;
	int r = pkv_get(db, k, strlen(k), buf, sizeof(buf), &n);

	cr_assert(r == 0 || r == PKV_NOTFOUND, "get %s: %s", k, pkv_strerror(r));
	return r == 0;
}

/* Does a batch expecting @k at @seq hold? */
static bool holds(pkv *db, const char *k, uint64_t seq)
{
	pkv_batch *b;
	int r;

	cr_assert_eq(pkv_batch_new(&b), 0);
	cr_assert_eq(pkv_batch_expect(b, k, strlen(k), seq), 0);
	r = pkv_write(db, b, 0, NULL);
	pkv_batch_free(b);
	cr_assert(r == 0 || r == PKV_ECONFLICT, "%s", pkv_strerror(r));
	return r == 0;
}

TestSuite(expire, .init = setup, .fini = teardown, .timeout = T_TIMEOUT);

Test(expire, seam_reaches_the_library)
{
	cr_assert_eq(pkv__now_ms(), 1000000);
	set_now(5);
	cr_assert_eq(pkv__now_ms(), 5);
	pkv__clock_set(NULL);
	cr_assert_gt(pkv__now_ms(), 1600000000000ull, "the real clock is CLOCK_REALTIME in ms");
}

/* Present up to expires_ms - 1, absent from expires_ms on: gets and conditions, live map. */
Test(expire, live_map_instant)
{
	pkv_options o;
	pkv *db;
	pkv_batch *b;
	uint64_t seq;

	tu_opts(&o, PKV_DURABLE_PROCESS);
	o.flags |= PKV_OPEN_NO_AUTOCOMPACT;
	db = tu_open(tu_db, &o);
	cr_assert_eq(pkv_put(db, "k", 1, "old", 3), 0);
	cr_assert_eq(pkv_put_expire(db, "k", 1, "v", 1, 1000100, 0), 0);
	seq = tu_stats(db).last_seq;
	cr_assert_eq(pkv_batch_new(&b), 0);
	cr_assert_eq(pkv_batch_put_expire(b, "b1", 2, "x", 1, 1000200), 0);
	cr_assert_eq(pkv_batch_put_expire(b, "b2", 2, "y", 1, 1000200), 0);
	cr_assert_eq(pkv_write(db, b, 0, NULL), 0);

	set_now(1000099);
	cr_assert(present(db, "k"));
	cr_assert(holds(db, "k", seq));
	cr_assert(holds(db, "k", PKV_ANY));
	cr_assert(!holds(db, "k", 0));
	set_now(1000100);
	cr_assert(!present(db, "k"), "absent at the instant it expires");
	cr_assert(!holds(db, "k", seq));
	cr_assert(!holds(db, "k", PKV_ANY));
	cr_assert(holds(db, "k", 0), "an expired key is absent to conditions");
	cr_assert_eq(pkv_del(db, "k", 1), PKV_NOTFOUND);
	cr_assert(present(db, "b1") && present(db, "b2"));
	set_now(1000200);
	cr_assert(!present(db, "b1") && !present(db, "b2"));
	/* The clock going back brings it back: expiry is a comparison, not a deletion. */
	set_now(1000199);
	cr_assert(present(db, "b1"));
	pkv_batch_free(b);
	tu_close(db);
}

/* The snapshot reader honours expiry: a key in the base expires there too. */
Test(expire, snapshot_instant)
{
	pkv_options o;
	pkv *db;
	uint64_t seq;

	tu_opts(&o, PKV_DURABLE_PROCESS);
	o.flags |= PKV_OPEN_NO_AUTOCOMPACT;
	db = tu_open(tu_db, &o);
	cr_assert_eq(pkv_put(db, "k", 1, "old", 3), 0);
	cr_assert_eq(pkv_put_expire(db, "k", 1, "v", 1, 1000100, 0), 0);
	seq = tu_stats(db).last_seq;
	cr_assert_eq(pkv_put_expire(db, "keep", 4, "v", 1, 9000000, 0), 0);
	cr_assert_eq(pkv_compact(db), 0);
	cr_assert_eq(tu_stats(db).snapshot_keys, 2, "not expired yet: in the snapshot");
	tu_close(db);

	db = tu_open(tu_db, &o); /* the live map is empty: gets go to the base */
	cr_assert_eq(tu_stats(db).recovered_records, 0);
	cr_assert(present(db, "k"));
	cr_assert(holds(db, "k", seq));
	set_now(1000100);
	cr_assert(!present(db, "k"), "the base's copy expires at its instant");
	cr_assert(holds(db, "k", 0));
	cr_assert(present(db, "keep"));
	cr_assert_eq(pkv_verify(db), 0);
	/* The next compaction drops it from the base, and the key count follows. */
	cr_assert_eq(tu_stats(db).keys, 2, "an expired key counts until a compaction reclaims it");
	cr_assert_eq(pkv_put(db, "other", 5, "o", 1), 0);
	cr_assert_eq(pkv_compact(db), 0);
	cr_assert_eq(tu_stats(db).snapshot_keys, 2, "keep and other");
	cr_assert_eq(tu_stats(db).keys, 2);
	set_now(1000000);
	cr_assert(!present(db, "k"), "dropped: the clock going back does not bring it back");
	tu_close(db);
}

/* ---- scans -------------------------------------------------------------------------------- */

static const char *const scan_names[] = {"a", "b", "c", "p"};

static int scan_visit(void *arg, const void *key, size_t klen, const void *val, size_t vlen,
		      uint64_t seq)
{
	int *count = arg; /* per scan_names[], then one slot for any other key */
	size_t i;

	(void)val;
	(void)vlen;
	(void)seq;
	for (i = 0; i < 4; i++)
		if (klen == 1 && memcmp(key, scan_names[i], 1) == 0)
			break;
	count[i]++;
	return 0;
}

/* The keys a full scan of @db visits now, in scan_names[] order, as a string: "abcp", "cp". */
static void scanned(pkv *db, size_t count, char *out)
{
	int seen[5] = {0};
	uint64_t cursor = 0;
	int calls = 0;

	do {
		cr_assert_eq(pkv_scan(db, &cursor, count, scan_visit, seen), 0);
		cr_assert_lt(++calls, 1000, "the scan does not end");
	} while (cursor != 0);
	cr_assert_eq(seen[4], 0, "the scan visited a key never written");
	for (size_t i = 0; i < 4; i++) {
		cr_assert_leq(seen[i], 1, "%s visited %d times", scan_names[i], seen[i]);
		if (seen[i])
			*out++ = scan_names[i][0];
	}
	*out = '\0';
}

/* At the fake time @now, scans of @count 1 and 100 visit exactly the keys @want. */
#define scan_is(db, now, want)                                                                \
	do {                                                                                  \
		char got_[8];                                                                 \
		set_now(now);                                                                 \
		scanned(db, 1, got_);                                                         \
		cr_assert_str_eq(got_, want, "scan (count 1) at %d", (int)(now));             \
		scanned(db, 100, got_);                                                       \
		cr_assert_str_eq(got_, want, "scan (count 100) at %d", (int)(now));           \
	} while (0)

/*
 * pkv_scan skips a key from the instant it expires: in the live map, with the snapshot base
 * beside it after a compaction, in the base alone after a reopen, and a live version that
 * expires over a base version that does not (the base's must not show through).
 */
Test(expire, scans_hide_expired_keys)
{
	pkv_options o;
	pkv *db;

	tu_opts(&o, PKV_DURABLE_PROCESS);
	o.flags |= PKV_OPEN_NO_AUTOCOMPACT;
	db = tu_open(tu_db, &o);
	cr_assert_eq(pkv_put_expire(db, "a", 1, "v", 1, 1000100, 0), 0);
	cr_assert_eq(pkv_put_expire(db, "b", 1, "v", 1, 1000200, 0), 0);
	cr_assert_eq(pkv_put_expire(db, "c", 1, "v", 1, 1000300, 0), 0);
	cr_assert_eq(pkv_put(db, "p", 1, "v", 1), 0);
	scan_is(db, 1000000, "abcp"); /* the live map */
	scan_is(db, 1000099, "abcp");
	scan_is(db, 1000100, "bcp");
	scan_is(db, 1000000, "abcp"); /* a comparison with the clock, not a deletion */

	set_now(1000100);
	cr_assert_eq(pkv_compact(db), 0); /* drops a; b, c and p go to the base */
	cr_assert_eq(tu_stats(db).snapshot_keys, 3);
	scan_is(db, 1000100, "bcp"); /* live map and base */
	scan_is(db, 1000200, "cp");
	tu_close(db);

	db = tu_open(tu_db, &o); /* the live map is empty: the scan reads the base */
	cr_assert_eq(tu_stats(db).recovered_records, 0);
	scan_is(db, 1000199, "bcp");
	scan_is(db, 1000200, "cp");
	/* A live version that expires, over the base's that does not. */
	cr_assert_eq(pkv_put_expire(db, "p", 1, "w", 1, 1000250, 0), 0);
	scan_is(db, 1000249, "cp");
	scan_is(db, 1000250, "c");
	scan_is(db, 1000300, "");
	tu_close(db);
}

/* Keys PREFIX0 .. PREFIX<n-1>, value "v"; the odd ones expire at 1000500. */
static void put_expiring(pkv *db, const char *prefix, int n)
{
	char k[32];

	for (int i = 0; i < n; i++) {
		snprintf(k, sizeof(k), "%s%d", prefix, i);
		cr_assert_eq(pkv_put_expire(db, k, strlen(k), "v", 1, i % 2 ? 1000500 : 0, 0), 0);
	}
}

/* A store opened without autocompaction, holding put_expiring()'s keys. */
static pkv *open_with_expiring(pkv_options *o, const char *prefix, int n)
{
	pkv *db;

	tu_opts(o, PKV_DURABLE_PROCESS);
	o->flags |= PKV_OPEN_NO_AUTOCOMPACT;
	db = tu_open(tu_db, o);
	put_expiring(db, prefix, n);
	return db;
}

/* One compaction reclaims every expired key: from the live map and from the old base. */
Test(expire, compaction_reclaims)
{
	pkv_options o;
	pkv *db = open_with_expiring(&o, "base", 200);
	char k[32];

	cr_assert_eq(pkv_compact(db), 0);
	put_expiring(db, "live", 200);
	cr_assert_eq(tu_stats(db).keys, 400);
	set_now(1000500);
	cr_assert_eq(pkv_compact(db), 0);
	cr_assert_eq(tu_stats(db).snapshot_keys, 200);
	cr_assert_eq(tu_stats(db).keys, 200);
	for (int i = 0; i < 200; i++) {
		snprintf(k, sizeof(k), "base%d", i);
		cr_assert_eq(present(db, k), i % 2 == 0, "%s", k);
		snprintf(k, sizeof(k), "live%d", i);
		cr_assert_eq(present(db, k), i % 2 == 0, "%s", k);
	}
	tu_close(db);
	db = tu_open(tu_db, &o);
	cr_assert_eq(tu_stats(db).keys, 200);
	cr_assert_eq(pkv_verify(db), 0);
	tu_close(db);
}

/* Keys that expire after the last compaction, with nothing written since: the next
 * compaction still reclaims them (C.9), and one with nothing expired since is skipped. */
Test(expire, compaction_reclaims_without_writes)
{
	pkv_options o;
	pkv *db = open_with_expiring(&o, "k", 100);

	cr_assert_eq(pkv_compact(db), 0);
	cr_assert_eq(tu_stats(db).compactions, 1);
	cr_assert_eq(pkv_compact(db), 0, "nothing new, nothing expired");
	cr_assert_eq(tu_stats(db).compactions, 1, "a compaction with nothing to do ran");
	set_now(1000500);
	cr_assert_eq(pkv_compact(db), 0);
	cr_assert_eq(tu_stats(db).compactions, 2, "keys expired since: the compaction was skipped");
	cr_assert_eq(tu_stats(db).snapshot_keys, 50);
	cr_assert_eq(tu_stats(db).keys, 50);
	cr_assert_eq(pkv_compact(db), 0);
	cr_assert_eq(tu_stats(db).compactions, 2, "nothing expires any more: skipped");
	tu_close(db);
	/* Reopened: the snapshot's expiries are unknown until it is rewritten once. */
	db = tu_open(tu_db, &o);
	cr_assert_eq(tu_stats(db).keys, 50);
	cr_assert_eq(pkv_compact(db), 0);
	cr_assert_eq(pkv_compact(db), 0);
	cr_assert_leq(tu_stats(db).compactions, 1);
	cr_assert_eq(tu_stats(db).snapshot_keys, 50);
	cr_assert_eq(pkv_verify(db), 0);
	tu_close(db);
}

/* Replay keeps each record's expiry (single puts and batch ops), and a later put without
 * expiry clears it. */
Test(expire, replay_keeps_expiry)
{
	pkv_options o;
	pkv *db;
	pkv_batch *b;

	tu_opts(&o, PKV_DURABLE_PROCESS);
	db = tu_open(tu_db, &o);
	cr_assert_eq(pkv_put_expire(db, "a", 1, "1", 1, 1000100, 0), 0);
	cr_assert_eq(pkv_put_expire(db, "b", 1, "1", 1, 1000100, 0), 0);
	cr_assert_eq(pkv_put(db, "b", 1, "2", 1), 0);
	cr_assert_eq(pkv_batch_new(&b), 0);
	cr_assert_eq(pkv_batch_put_expire(b, "c", 1, "1", 1, 1000100), 0);
	cr_assert_eq(pkv_batch_put(b, "d", 1, "1", 1), 0);
	cr_assert_eq(pkv_write(db, b, 0, NULL), 0);
	tu_close(db);
	set_now(1000100);
	db = tu_open(tu_db, &o);
	cr_assert(!present(db, "a"));
	cr_assert(present(db, "b"), "the plain put after it has no expiry");
	cr_assert(!present(db, "c"));
	cr_assert(present(db, "d"));
	pkv_batch_free(b);
	tu_close(db);
}

/* get_ref and get_many honour expiry too (read.c RD.6), in the live map and in the base, and
 * get_many reports each found version's expiry. */
Test(expire, zero_copy_reads)
{
	pkv_options o;
	pkv *db;
	const void *v;
	size_t n;
	pkv_item it[3] = { { .key = "live", .klen = 4 }, { .key = "base", .klen = 4 },
			   { .key = "never", .klen = 5 } };

	tu_opts(&o, PKV_DURABLE_PROCESS);
	o.flags |= PKV_OPEN_NO_AUTOCOMPACT;
	db = tu_open(tu_db, &o);
	cr_assert_eq(pkv_put_expire(db, "base", 4, "b", 1, 1000300, 0), 0);
	cr_assert_eq(pkv_put(db, "never", 5, "n", 1), 0);
	cr_assert_eq(pkv_compact(db), 0);
	tu_close(db);
	db = tu_open(tu_db, &o); /* "base" now lives only in the snapshot */
	cr_assert_eq(pkv_put(db, "live", 4, "old", 3), 0);
	cr_assert_eq(pkv_put_expire(db, "live", 4, "l", 1, 1000200, 0), 0);

	cr_assert_eq(pkv_read_begin(db), 0);
	cr_assert_eq(pkv_get_ref(db, "live", 4, &v, &n, NULL), 0);
	cr_assert(n == 1 && memcmp(v, "l", 1) == 0);
	cr_assert_eq(pkv_get_ref(db, "base", 4, &v, &n, NULL), 0);
	cr_assert_eq(pkv_get_many(db, it, 3), 3);
	cr_assert_eq(it[0].expires_ms, 1000200);
	cr_assert_eq(it[1].expires_ms, 1000300);
	cr_assert_eq(it[2].expires_ms, 0);

	set_now(1000200);
	cr_assert_eq(pkv_get_ref(db, "live", 4, &v, &n, NULL), PKV_NOTFOUND,
		     "an expired live version is absent and shadows nothing older");
	cr_assert_eq(pkv_get_ref(db, "base", 4, &v, &n, NULL), 0);
	cr_assert_eq(pkv_get_many(db, it, 3), 2);
	cr_assert_eq(it[0].rc, PKV_NOTFOUND);
	cr_assert_eq(it[0].expires_ms, 0);
	cr_assert_eq(it[1].rc, 0);

	set_now(1000300);
	cr_assert_eq(pkv_get_ref(db, "base", 4, &v, &n, NULL), PKV_NOTFOUND,
		     "the base's copy expires at its instant");
	cr_assert_eq(pkv_get_many(db, it, 3), 1);
	cr_assert_eq(it[1].rc, PKV_NOTFOUND);
	cr_assert_eq(it[2].rc, 0);
	cr_assert_eq(pkv_read_end(db), 0);
	tu_close(db);
}
