/* SPDX-License-Identifier: MIT */
/*
 * test_checkpoint.c - pkv_checkpoint (checkpoint.c CP.1 - CP.6), through the public API only.
 *
 *  - the copy opens to the source's state, snapshot and WAL tail both, also from a read-only
 *    handle and after reopening;
 *  - prefix property with concurrent writers (and a compaction) during the checkpoint: every
 *    writer's keys in the copy are a prefix of what it wrote, that includes every write
 *    acknowledged before the call and none begun after it returned;
 *  - the copy is independent of the source afterwards (writes, compactions, the source's
 *    snapshot deleted); the snapshot is a hard link where the file system allows (CP.5: same
 *    inode; tests/test_fs.c covers the copy where links are refused);
 *  - every bad argument: NULL handle or path, empty path, an in-memory store (PKV_EINVAL), an
 *    existing destination (-EEXIST, left as it was).
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#define T_TIMEOUT 240

TestSuite(checkpoint, .init = tu_setup, .fini = tu_teardown, .timeout = T_TIMEOUT);

static void put_kv(pkv *db, const char *k, const char *v)
{
	cr_assert_eq(pkv_put(db, k, strlen(k), v, strlen(v)), 0);
}

/* The value of @k in @db as a string ("" and rc in *@rc). */
static const char *get_kv(pkv *db, const char *k, int *rc)
{
	static char buf[256];
	size_t vlen = 0;

	*rc = pkv_get(db, k, strlen(k), buf, sizeof(buf) - 1, &vlen);
	buf[*rc == 0 ? (vlen < sizeof(buf) - 1 ? vlen : sizeof(buf) - 1) : 0] = '\0';
	return buf;
}

static void expect_kv(pkv *db, const char *k, const char *want)
{
	int rc;
	const char *got = get_kv(db, k, &rc);

	if (want == NULL) {
		cr_expect_eq(rc, PKV_NOTFOUND, "%s: expected absent, got %d '%s'", k, rc, got);
		return;
	}
	cr_expect_eq(rc, 0, "%s: %d (%s)", k, rc, pkv_strerror(rc));
	cr_expect_str_eq(got, want, "%s", k);
}

Test(checkpoint, bad_arguments)
{
	pkv *db = tu_open(tu_db, NULL), *mem = tu_open(NULL, NULL);
	char dst[PATH_MAX], marker[PATH_MAX];
	struct stat st;

	tu_path(dst, "copy");
	cr_expect_eq(pkv_checkpoint(NULL, dst), PKV_EINVAL);
	cr_expect_eq(pkv_checkpoint(db, NULL), PKV_EINVAL);
	cr_expect_eq(pkv_checkpoint(db, ""), PKV_EINVAL);
	cr_expect_eq(pkv_checkpoint(mem, dst), PKV_EINVAL, "an in-memory store has no files");
	cr_expect_neq(stat(dst, &st), 0, "a refused checkpoint made its directory");
	/* An existing destination: refused, and left as it was. */
	cr_assert_eq(mkdir(dst, 0755), 0);
	tu_fmt(marker, sizeof(marker), "%s/mine", dst);
	FILE *f = fopen(marker, "w");
	cr_assert_not_null(f);
	fclose(f);
	cr_expect_eq(pkv_checkpoint(db, dst), -EEXIST);
	cr_expect_eq(stat(marker, &st), 0, "the existing directory was changed");
	cr_expect_eq(pkv_checkpoint(db, tu_db), -EEXIST, "onto the store itself");
	/* A destination whose parent is missing: the mkdir's error. */
	tu_path(dst, "no/such/parent");
	cr_expect_eq(pkv_checkpoint(db, dst), -ENOENT);
	tu_close(mem);
	tu_close(db);
}

Test(checkpoint, copy_holds_snapshot_and_wal_tail)
{
	pkv *db = tu_open(tu_db, NULL), *cp;
	char dst[PATH_MAX], k[32], v[32];

	for (int i = 0; i < 3000; i++) {
		snprintf(k, sizeof(k), "k%d", i);
		snprintf(v, sizeof(v), "base%d", i);
		put_kv(db, k, v);
	}
	cr_assert_eq(pkv_compact(db), 0);
	for (int i = 0; i < 3000; i += 3) { /* the WAL tail: overwrites and deletes */
		snprintf(k, sizeof(k), "k%d", i);
		snprintf(v, sizeof(v), "tail%d", i);
		put_kv(db, k, v);
	}
	for (int i = 1; i < 3000; i += 3) {
		snprintf(k, sizeof(k), "k%d", i);
		cr_assert_eq(pkv_del(db, k, strlen(k)), 0);
	}
	put_kv(db, "empty", "");
	tu_path(dst, "copy");
	cr_assert_eq(pkv_checkpoint(db, dst), 0);
	tu_close(db);

	for (int round = 0; round < 2; round++) { /* the copy, then the copy reopened */
		cp = tu_open(dst, NULL);
		cr_expect_eq(tu_stats(cp).keys, 2000 + 1);
		for (int i = 0; i < 3000; i++) {
			snprintf(k, sizeof(k), "k%d", i);
			snprintf(v, sizeof(v), i % 3 == 0 ? "tail%d" : "base%d", i);
			expect_kv(cp, k, i % 3 == 1 ? NULL : v);
		}
		expect_kv(cp, "empty", "");
		tu_close(cp);
	}
}

Test(checkpoint, from_a_read_only_handle)
{
	pkv_options o;
	pkv *db = tu_open(tu_db, NULL), *cp;
	char dst[PATH_MAX];

	put_kv(db, "a", "1");
	cr_assert_eq(pkv_compact(db), 0);
	put_kv(db, "b", "2");
	tu_close(db);
	pkv_options_default(&o);
	o.flags = PKV_OPEN_READONLY;
	db = tu_open(tu_db, &o);
	tu_path(dst, "copy");
	cr_assert_eq(pkv_checkpoint(db, dst), 0);
	tu_close(db);
	cp = tu_open(dst, NULL);
	expect_kv(cp, "a", "1");
	expect_kv(cp, "b", "2");
	tu_close(cp);
}

Test(checkpoint, the_copy_is_independent)
{
	pkv *db = tu_open(tu_db, NULL), *cp;
	char dst[PATH_MAX];

	put_kv(db, "a", "1");
	put_kv(db, "b", "1");
	cr_assert_eq(pkv_compact(db), 0);
	put_kv(db, "c", "1");
	tu_path(dst, "copy");
	cr_assert_eq(pkv_checkpoint(db, dst), 0);
	/* The source moves on: new values, a compaction that deletes the snapshot the copy links. */
	put_kv(db, "a", "2");
	cr_assert_eq(pkv_del(db, "b", 1), 0);
	cr_assert_eq(pkv_compact(db), 0);
	put_kv(db, "c", "2");
	cr_assert_eq(pkv_compact(db), 0);
	cp = tu_open(dst, NULL);
	expect_kv(cp, "a", "1");
	expect_kv(cp, "b", "1");
	expect_kv(cp, "c", "1");
	cr_expect_eq(pkv_verify(cp), 0);
	/* ... and the copy moves on without touching the source. */
	put_kv(cp, "a", "copy");
	cr_assert_eq(pkv_compact(cp), 0);
	tu_close(cp);
	expect_kv(db, "a", "2");
	expect_kv(db, "b", NULL);
	expect_kv(db, "c", "2");
	tu_close(db);
	cp = tu_open(dst, NULL);
	expect_kv(cp, "a", "copy");
	tu_close(cp);
}

/* CP.5: on one file system the snapshot is not copied but hard-linked: one inode, two names. */
Test(checkpoint, the_snapshot_is_hard_linked)
{
	pkv *db = tu_open(tu_db, NULL);
	char dst[PATH_MAX], src_snap[PATH_MAX], dst_snap[PATH_MAX];
	struct stat sa, sb;

	put_kv(db, "a", "1");
	cr_assert_eq(pkv_compact(db), 0);
	put_kv(db, "b", "2");
	tu_path(dst, "copy");
	cr_assert_eq(pkv_checkpoint(db, dst), 0);
	tu_snap_file(tu_db, src_snap);
	tu_snap_file(dst, dst_snap);
	cr_assert_str_eq(strrchr(src_snap, '/'), strrchr(dst_snap, '/'), "same file name");
	cr_assert_eq(stat(src_snap, &sa), 0);
	cr_assert_eq(stat(dst_snap, &sb), 0);
	cr_expect_eq(sa.st_dev, sb.st_dev);
	cr_expect_eq(sa.st_ino, sb.st_ino, "the snapshot was copied, not linked");
	cr_expect_eq(sb.st_nlink, 2);
	/* The source's next compaction unlinks its name; the copy's stays. */
	put_kv(db, "c", "3");
	cr_assert_eq(pkv_compact(db), 0);
	cr_assert_eq(stat(dst_snap, &sb), 0);
	cr_expect_eq(sb.st_nlink, 1);
	tu_close(db);
}

/* ---- prefix property with concurrent writers --------------------------------------- */

#define WRITERS 3

struct writer {
	pkv *db;
	int id;
	volatile int *stop;
	uint64_t acked;   /* writes that returned (atomic) */
	uint64_t started; /* writes begun (atomic) */
};

/* Writer t writes "w<t>-<i>" = "<i>", then "last<t>" = "<i>", for i = 0, 1, ... */
static void *writer_main(void *arg)
{
	struct writer *w = arg;
	char k[32], v[32];

	for (uint64_t i = 0; !__atomic_load_n(w->stop, __ATOMIC_ACQUIRE); i++) {
		__atomic_store_n(&w->started, i + 1, __ATOMIC_SEQ_CST);
		snprintf(k, sizeof(k), "w%d-%llu", w->id, (unsigned long long)i);
		snprintf(v, sizeof(v), "%llu", (unsigned long long)i);
		put_kv(w->db, k, v);
		snprintf(k, sizeof(k), "last%d", w->id);
		put_kv(w->db, k, v);
		__atomic_store_n(&w->acked, i + 1, __ATOMIC_SEQ_CST);
	}
	return NULL;
}

static void *compact_main(void *arg)
{
	struct writer *w = arg;

	while (!__atomic_load_n(w->stop, __ATOMIC_ACQUIRE)) {
		cr_assert_eq(pkv_compact(w->db), 0);
		struct timespec ts = {0, 5 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	return NULL;
}

Test(checkpoint, prefix_with_concurrent_writers)
{
	for (int round = 0; round < 4; round++) {
		pkv_options o;
		pkv *db, *cp;
		pthread_t th[WRITERS + 1];
		struct writer w[WRITERS];
		volatile int stop = 0;
		uint64_t acked_before[WRITERS], started_after[WRITERS];
		char src[PATH_MAX], dst[PATH_MAX], k[32];

		tu_fmt(src, sizeof(src), "%s/src%d", tu_root, round);
		tu_fmt(dst, sizeof(dst), "%s/cp%d", tu_root, round);
		tu_opts(&o, tu_modes[round % 3]);
		o.wal_segment_bytes = 64 * 1024; /* segments roll during the copy */
		db = tu_open(src, &o);
		for (int t = 0; t < WRITERS; t++) {
			w[t] = (struct writer){db, t, &stop, 0, 0};
			cr_assert_eq(pthread_create(&th[t], NULL, writer_main, &w[t]), 0);
		}
		if (round % 2 == 1) /* a compaction races the checkpoint */
			cr_assert_eq(pthread_create(&th[WRITERS], NULL, compact_main, &w[0]), 0);
		struct timespec ts = {0, 100 * 1000 * 1000};
		nanosleep(&ts, NULL);
		for (int t = 0; t < WRITERS; t++)
			acked_before[t] = __atomic_load_n(&w[t].acked, __ATOMIC_SEQ_CST);
		int crc = pkv_checkpoint(db, dst);
		cr_assert_eq(crc, 0, "pkv_checkpoint: %d (%s)", crc, pkv_strerror(crc));
		for (int t = 0; t < WRITERS; t++)
			started_after[t] = __atomic_load_n(&w[t].started, __ATOMIC_SEQ_CST);
		nanosleep(&ts, NULL);
		stop = 1;
		for (int t = 0; t < WRITERS; t++)
			pthread_join(th[t], NULL);
		if (round % 2 == 1)
			pthread_join(th[WRITERS], NULL);
		tu_close(db);

		cp = tu_open(dst, NULL);
		for (int t = 0; t < WRITERS; t++) {
			uint64_t n = 0;
			int rc;

			/* The writer's keys in the copy: 0 .. n-1, then none. */
			for (;; n++) {
				snprintf(k, sizeof(k), "w%d-%llu", t, (unsigned long long)n);
				get_kv(cp, k, &rc);
				if (rc != 0)
					break;
			}
			cr_expect_eq(rc, PKV_NOTFOUND);
			for (uint64_t j = n + 1; j < n + 200; j++) {
				snprintf(k, sizeof(k), "w%d-%llu", t, (unsigned long long)j);
				get_kv(cp, k, &rc);
				cr_expect_eq(rc, PKV_NOTFOUND, "writer %d: key %llu without %llu", t,
					     (unsigned long long)j, (unsigned long long)n);
			}
			cr_expect_geq(n, acked_before[t], "writer %d: %llu keys, %llu acknowledged "
				      "before the call", t, (unsigned long long)n,
				      (unsigned long long)acked_before[t]);
			cr_expect_leq(n, started_after[t], "writer %d: a write begun after the "
				      "return is in the copy", t);
			/* last<t> is written after w<t>-<i>: it says n-1, or n-2 (its write was cut). */
			snprintf(k, sizeof(k), "last%d", t);
			const char *last = get_kv(cp, k, &rc);
			if (n <= 1 && rc == PKV_NOTFOUND) {
				/* nothing, or w<t>-0 whose last<t> write was cut */
			} else {
				cr_expect_eq(rc, 0);
				unsigned long long l = strtoull(last, NULL, 10);
				cr_expect(l == n - 1 || (n >= 2 && l == n - 2),
					  "writer %d: last = %llu with %llu keys", t, l,
					  (unsigned long long)n);
			}
		}
		cr_expect_eq(pkv_verify(cp), 0);
		tu_close(cp);
	}
}

/* After a clear and before the next compaction the WAL continues the base the clear
 * disregarded: the copy needs that snapshot, and opens to the state after the clear (CP.5). */
Test(checkpoint, after_a_clear_before_the_next_compaction)
{
	pkv_options o;
	pkv *db, *cp;
	char dst[PATH_MAX];

	pkv_options_default(&o);
	o.flags = PKV_OPEN_NO_AUTOCOMPACT;
	db = tu_open(tu_db, &o);
	put_kv(db, "old", "before");
	put_kv(db, "gone", "before");
	cr_assert_eq(pkv_compact(db), 0);
	put_kv(db, "tail", "before");
	cr_assert_eq(pkv_clear(db), 0);
	put_kv(db, "old", "after");
	put_kv(db, "new", "after");
	cr_expect_eq(pkv_verify(db), 0, "the WAL continues the disregarded base");
	tu_path(dst, "copy");
	cr_assert_eq(pkv_checkpoint(db, dst), 0);
	tu_close(db);

	for (int round = 0; round < 2; round++) {
		cp = tu_open(dst, &o);
		cr_expect_eq(pkv_verify(cp), 0);
		cr_expect_eq(tu_stats(cp).keys, 2);
		expect_kv(cp, "old", "after");
		expect_kv(cp, "new", "after");
		expect_kv(cp, "gone", NULL);
		expect_kv(cp, "tail", NULL);
		tu_close(cp);
	}
	/* The source too: reopened, verified, then compacted (the disregarded base goes). */
	db = tu_open(tu_db, &o);
	cr_expect_eq(pkv_verify(db), 0);
	cr_assert_eq(pkv_compact(db), 0);
	cr_expect_eq(pkv_verify(db), 0);
	expect_kv(db, "old", "after");
	expect_kv(db, "gone", NULL);
	tu_close(db);
}
