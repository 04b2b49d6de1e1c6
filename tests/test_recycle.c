/* SPDX-License-Identifier: MIT */
/*
 * test_recycle.c - WAL segment recycling (wal.c W.7). Through the public API, plus a look at
 * the lane's current segment (src/store.h) to crash exactly while it is a recycled one.
 *
 * Covered: retired segments are reused for new ones (stats.wal_recycled) and nothing else is
 * left behind; a process that dies while writing into recycled segments (no clean close, so
 * the stale records of the segments' previous life lie right after the new data) reopens to
 * exactly what it wrote: no stale record replays, none is mistaken for a torn tail, and the
 * history is complete; the same through several compaction cycles, in every durability mode.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store.h"
#include "testutil.h"

TestSuite(recycle, .init = tu_setup, .fini = tu_teardown, .timeout = 120);

#define NKEYS 600
#define VLEN 200

static void opts(pkv_options *o, enum pkv_durability mode)
{
	tu_opts(o, mode);
	o->wal_lanes = 1;
	o->wal_segment_bytes = 64 << 10; /* ~280 records per segment: many rolls */
	o->flags |= PKV_OPEN_NO_AUTOCOMPACT;
}

static size_t value(char *v, int key, int gen)
{
	memset(v, 'a' + (key + gen) % 26, VLEN);
	return (size_t)snprintf(v, VLEN, "k%d-g%d-", key, gen) > 0 ? VLEN : 0;
}

static void write_gen(pkv *db, int gen)
{
	char k[32], v[VLEN];

	for (int i = 0; i < NKEYS; i++) {
		int n = snprintf(k, sizeof(k), "key-%d", i);

		if (gen > 0 && i % 7 == gen % 7) {
			int r = pkv_del(db, k, (size_t)n);
			cr_assert(r == 0 || r == PKV_NOTFOUND);
		} else {
			cr_assert_eq(pkv_put(db, k, (size_t)n, v, value(v, i, gen)), 0);
		}
	}
}

/* The state after generations 0 .. @gen. */
static void check_gen(pkv *db, int gen)
{
	char k[32], v[VLEN], want[VLEN];
	size_t vl;

	for (int i = 0; i < NKEYS; i++) {
		int n = snprintf(k, sizeof(k), "key-%d", i);
		int r = pkv_get(db, k, (size_t)n, v, sizeof(v), &vl);

		if (gen > 0 && i % 7 == gen % 7) {
			cr_assert_eq(r, PKV_NOTFOUND, "%s deleted in generation %d is back", k, gen);
			continue;
		}
		cr_assert_eq(r, 0, "%s lost (generation %d)", k, gen);
		value(want, i, gen);
		cr_assert_eq(vl, (size_t)VLEN);
		cr_assert(memcmp(v, want, VLEN) == 0, "%s holds a stale value (generation %d)", k,
			  gen);
	}
}

static int count_files(const char *ext)
{
	char dir[PATH_MAX];
	struct dirent *e;
	int n = 0;
	DIR *d;

	tu_fmt(dir, sizeof(dir), "%s/wal", tu_db);
	d = opendir(dir);
	cr_assert_not_null(d);
	while ((e = readdir(d)) != NULL) {
		size_t len = strlen(e->d_name);
		n += len > strlen(ext) && strcmp(e->d_name + len - strlen(ext), ext) == 0;
	}
	closedir(d);
	return n;
}

ParameterizedTestParameters(recycle, reused_and_clean_after_close)
{
	return cr_make_param_array(enum pkv_durability, (void *)tu_modes, 3);
}

ParameterizedTest(enum pkv_durability *mode, recycle, reused_and_clean_after_close)
{
	pkv_options o;
	pkv_stats st;
	pkv *db;

	opts(&o, *mode);
	db = tu_open(tu_db, &o);
	for (int gen = 0; gen < 4; gen++) {
		write_gen(db, gen);
		cr_assert_eq(pkv_compact(db), 0);
	}
	write_gen(db, 4);
	st = tu_stats(db);
	cr_assert_gt(st.wal_recycled, 0, "no segment was reused");
	check_gen(db, 4);
	tu_close(db);
	cr_assert_eq(count_files(".tmp"), 0, "the pool outlived the handle");

	db = tu_open(tu_db, &o);
	st = tu_stats(db);
	cr_assert_eq(st.discarded_bytes, 0);
	check_gen(db, 4);
	tu_close(db);
}

/* Generations written into recycled segments by a process that then dies without closing. */
ParameterizedTestParameters(recycle, crash_in_recycled_segments)
{
	return cr_make_param_array(enum pkv_durability, (void *)tu_modes, 3);
}

ParameterizedTest(enum pkv_durability *mode, recycle, crash_in_recycled_segments)
{
	pkv_options o;
	pkv_stats st;
	int status, gens = 5;
	pid_t pid;
	pkv *db;

	opts(&o, *mode);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		pkv_stats cs;

		if (pkv_open(tu_db, &o, &db) != 0)
			_exit(2);
		for (int gen = 0; gen < gens; gen++) {
			write_gen(db, gen);
			if (gen + 1 < gens && pkv_compact(db) != 0)
				_exit(3);
		}
		if (pkv_get_stats(db, &cs) != 0 || cs.wal_recycled == 0)
			_exit(4);
		/* Go on until the lane writes into a recycled segment, between a quarter and half
		 * of it written: its previous life's records lie right after the new data. */
		for (int i = 0; i < 20000; i++) {
			struct wal_lane *l = &db->wal.lanes[0];
			char k[32], v[VLEN];
			bool there;
			int n = snprintf(k, sizeof(k), "extra-%d", i);

			pthread_mutex_lock(&l->lock);
			there = l->cur && l->cur->recycled && l->cur->off > l->cur->size / 4 &&
				l->cur->off < l->cur->size / 2;
			pthread_mutex_unlock(&l->lock);
			if (there)
				_exit(0); /* a crash: no close, the page cache keeps what was written */
			if (pkv_put(db, k, (size_t)n, v, value(v, i, 99)) != 0)
				_exit(5);
			if (i % 1500 == 1499 && pkv_compact(db) != 0) /* refill the pool */
				_exit(7);
		}
		_exit(6);
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "child failed: %d (6: it never wrote into a recycled segment)", status);

	db = tu_open(tu_db, &o);
	st = tu_stats(db);
	/* The stale records after the data are neither replayed nor reported as a torn tail. */
	cr_assert_eq(st.discarded_bytes, 0, "%llu stale bytes taken for a torn tail",
		     (unsigned long long)st.discarded_bytes);
	cr_assert_eq(st.recovery_gap_seq, 0);
	check_gen(db, gens - 1);
	for (int i = 0;; i++) {
		char k[32], v[VLEN], want[VLEN];
		size_t vl;
		int n = snprintf(k, sizeof(k), "extra-%d", i);

		if (pkv_get(db, k, (size_t)n, v, sizeof(v), &vl) == PKV_NOTFOUND)
			break;
		value(want, i, 99);
		cr_assert(vl == VLEN && memcmp(v, want, VLEN) == 0, "%s damaged", k);
	}
	/* The reopened store keeps recycling and recovering. */
	write_gen(db, gens);
	cr_assert_eq(pkv_compact(db), 0);
	write_gen(db, gens + 1);
	tu_close(db);
	db = tu_open(tu_db, &o);
	check_gen(db, gens + 1);
	tu_close(db);
}
