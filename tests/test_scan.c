/* SPDX-License-Identifier: MIT */
/*
 * test_scan.c - pkv_scan's promises (pkv.h; scan.c SC.1 - SC.5), through the public API only.
 *
 *  - quiescent: every key exactly once, with its newest value and version, for many counts and
 *    store sizes, in the live map, in the snapshot base, and shadowed across both;
 *  - concurrent: keys present throughout a scan are visited at least once, keys absent throughout
 *    never, while other keys churn, the tables grow (made to, halfway through some scans, and
 *    checked with pkv_stats.map_grows) and compactions swap the base;
 *  - a callback's non-zero return ends the call and is returned, and the cursor resumes;
 *  - the callback may call into pkv (SC.4); every bad argument is PKV_EINVAL.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "testutil.h"

#define T_TIMEOUT 240

TestSuite(scan, .init = tu_setup, .fini = tu_teardown, .timeout = T_TIMEOUT);

/* ---- a model: key i is "k<i>", its value "v<i>.<version>" --------------------------------- */

struct seen {
	size_t n;          /* keys in the model (indices 0 .. n-1) */
	int *count;        /* visits per key */
	int *version;      /* the expected version; -1: absent */
	size_t foreign;    /* visits of keys not in the model */
	size_t visits;
	uint64_t min_seq;  /* smallest seq handed out (must be > 0) */
	const char *prefix;
};

static void seen_init(struct seen *s, size_t n, const char *prefix)
{
	memset(s, 0, sizeof(*s));
	s->n = n;
	s->count = calloc(n ? n : 1, sizeof(int));
	s->version = malloc((n ? n : 1) * sizeof(int));
	cr_assert(s->count && s->version);
	for (size_t i = 0; i < n; i++)
		s->version[i] = -1;
	s->min_seq = UINT64_MAX;
	s->prefix = prefix;
}

static void seen_free(struct seen *s)
{
	free(s->count);
	free(s->version);
}

static void put_v(pkv *db, const char *prefix, size_t i, int version)
{
	char k[64], v[64];
	int kl = snprintf(k, sizeof(k), "%s%zu", prefix, i);
	int vl = snprintf(v, sizeof(v), "v%zu.%d", i, version);

	cr_assert_eq(pkv_put(db, k, (size_t)kl, v, (size_t)vl), 0);
}

static void del_v(pkv *db, const char *prefix, size_t i)
{
	char k[64];
	int kl = snprintf(k, sizeof(k), "%s%zu", prefix, i);

	cr_assert_eq(pkv_del(db, k, (size_t)kl), 0);
}

/* Index of key @k (of @klen bytes) in the model, or -1. */
static long key_index(const struct seen *s, const void *k, size_t klen)
{
	size_t pl = strlen(s->prefix);
	char buf[64];
	char *end;
	long i;

	if (klen <= pl || klen >= sizeof(buf) || memcmp(k, s->prefix, pl) != 0)
		return -1;
	memcpy(buf, (const char *)k + pl, klen - pl);
	buf[klen - pl] = '\0';
	i = strtol(buf, &end, 10);
	if (*end != '\0' || i < 0 || (size_t)i >= s->n)
		return -1;
	return i;
}

/* Quiescent visitor: counts visits and checks the value is the newest version. */
static int visit_exact(void *arg, const void *k, size_t klen, const void *v, size_t vlen,
		       uint64_t seq)
{
	struct seen *s = arg;
	long i = key_index(s, k, klen);
	char want[64];

	s->visits++;
	if (seq < s->min_seq)
		s->min_seq = seq;
	if (i < 0) {
		s->foreign++;
		return 0;
	}
	s->count[i]++;
	snprintf(want, sizeof(want), "v%ld.%d", i, s->version[i]);
	cr_expect(s->version[i] >= 0 && vlen == strlen(want) && memcmp(v, want, vlen) == 0,
		  "key %ld: value %.*s, expected version %d", i, (int)vlen, (const char *)v,
		  s->version[i]);
	return 0;
}

/* A full scan with @count per call; returns the number of calls. */
static size_t full_scan(pkv *db, size_t count, pkv_scan_fn fn, void *arg)
{
	uint64_t cursor = 0;
	size_t calls = 0;

	do {
		int rc = pkv_scan(db, &cursor, count, fn, arg);

		cr_assert_eq(rc, 0, "pkv_scan: %d (%s)", rc, pkv_strerror(rc));
		calls++;
		cr_assert_lt(calls, 10000000u, "the scan does not end");
	} while (cursor != 0);
	return calls;
}

static void expect_exactly_once(const struct seen *s)
{
	size_t wrong = 0;

	for (size_t i = 0; i < s->n; i++) {
		int want = s->version[i] >= 0 ? 1 : 0;

		if (s->count[i] != want) {
			if (wrong++ < 5)
				cr_expect_eq(s->count[i], want, "key %zu visited %d times, expected %d", i,
					     s->count[i], want);
		}
	}
	cr_expect_eq(wrong, 0, "%zu keys visited the wrong number of times", wrong);
	cr_expect_eq(s->foreign, 0, "keys that were never written were visited");
	if (s->visits)
		cr_expect_gt(s->min_seq, 0, "a visited key has seq 0");
}

enum layout { LIVE, BASE, MIXED };

/* Build a store of @n keys in @layout; the model in @s. */
static void build(pkv *db, size_t n, enum layout layout, struct seen *s)
{
	for (size_t i = 0; i < n; i++) {
		put_v(db, "k", i, 0);
		s->version[i] = 0;
	}
	if (layout == LIVE)
		return;
	cr_assert_eq(pkv_compact(db), 0);
	if (layout == BASE)
		return;
	/* MIXED: overwrite a third (shadowing the base), delete a quarter, add new keys. */
	for (size_t i = 0; i < n; i += 3) {
		put_v(db, "k", i, 1);
		s->version[i] = 1;
	}
	for (size_t i = 1; i < n; i += 4) {
		del_v(db, "k", i);
		s->version[i] = -1;
	}
}

static void quiescent(pkv *db, size_t n, enum layout layout)
{
	static const size_t counts[] = {1, 2, 7, 100, 1000, 100000};
	struct seen s;

	seen_init(&s, n, "k");
	build(db, n, layout, &s);
	for (size_t c = 0; c < sizeof(counts) / sizeof(counts[0]); c++) {
		memset(s.count, 0, n * sizeof(int));
		s.foreign = 0;
		s.visits = 0;
		size_t calls = full_scan(db, counts[c], visit_exact, &s);

		expect_exactly_once(&s);
		if (counts[c] == 1 && n > 1)
			cr_expect_gt(calls, 1, "count 1 still visited everything in one call");
	}
	seen_free(&s);
}

Test(scan, quiescent_exactly_once_live_map)
{
	static const size_t sizes[] = {0, 1, 2, 10, 1000, 20000};

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		char dir[PATH_MAX];

		tu_fmt(dir, sizeof(dir), "%s/live%zu", tu_root, i);
		pkv *db = tu_open(dir, NULL);
		quiescent(db, sizes[i], LIVE);
		tu_close(db);
	}
}

Test(scan, quiescent_exactly_once_base_and_shadowed)
{
	static const size_t sizes[] = {1, 10, 1000, 20000};

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		for (int l = BASE; l <= MIXED; l++) {
			char dir[PATH_MAX];

			tu_fmt(dir, sizeof(dir), "%s/s%zu-%d", tu_root, i, l);
			pkv *db = tu_open(dir, NULL);
			quiescent(db, sizes[i], (enum layout)l);
			tu_close(db);
		}
	}
}

Test(scan, quiescent_after_reopen_and_in_memory)
{
	struct seen s;
	pkv *db = tu_open(tu_db, NULL);

	seen_init(&s, 5000, "k");
	build(db, 5000, MIXED, &s);
	tu_close(db);
	db = tu_open(tu_db, NULL); /* base mapped from disk, live map replayed from the WAL */
	full_scan(db, 64, visit_exact, &s);
	expect_exactly_once(&s);
	tu_close(db);
	seen_free(&s);

	seen_init(&s, 3000, "k");
	db = tu_open(NULL, NULL);
	build(db, 3000, MIXED, &s); /* compaction is a no-op in memory: live map only */
	full_scan(db, 10, visit_exact, &s);
	expect_exactly_once(&s);
	tu_close(db);
	seen_free(&s);
}

struct bctx {
	int counts[256];
	int bad;
};

static int visit_binary(void *arg, const void *key, size_t klen, const void *v, size_t vlen,
			uint64_t seq)
{
	struct bctx *c = arg;
	const unsigned char *k = key;

	(void)v;
	if (klen != 3 || k[1] != 0 || k[2] != 255 - k[0] || vlen != 0 || seq == 0)
		c->bad++;
	else
		c->counts[k[0]]++;
	return 0;
}

Test(scan, binary_keys_and_empty_values)
{
	pkv *db = tu_open(tu_db, NULL);
	struct bctx c = {{0}, 0};
	unsigned char k[3];
	uint64_t cursor = 0;

	for (int i = 0; i < 256; i++) {
		k[0] = (unsigned char)i;
		k[1] = 0;
		k[2] = (unsigned char)(255 - i);
		cr_assert_eq(pkv_put(db, k, 3, NULL, 0), 0);
	}
	cr_assert_eq(pkv_compact(db), 0);
	for (int i = 0; i < 256; i += 2) { /* shadow half of them with another empty value */
		k[0] = (unsigned char)i;
		k[1] = 0;
		k[2] = (unsigned char)(255 - i);
		cr_assert_eq(pkv_put(db, k, 3, "", 0), 0);
	}
	do
		cr_assert_eq(pkv_scan(db, &cursor, 5, visit_binary, &c), 0);
	while (cursor != 0);
	cr_expect_eq(c.bad, 0);
	for (int i = 0; i < 256; i++)
		cr_expect_eq(c.counts[i], 1, "key %d visited %d times", i, c.counts[i]);
	tu_close(db);
}

/* ---- a callback's non-zero return ---------------------------------------------------------- */

struct stopper {
	struct seen s;
	size_t stop_at; /* return 7 + visits at this visit */
};

static int visit_stop(void *arg, const void *k, size_t klen, const void *v, size_t vlen,
		      uint64_t seq)
{
	struct stopper *st = arg;

	visit_exact(&st->s, k, klen, v, vlen, seq);
	if (st->s.visits == st->stop_at)
		return 7 + (int)st->s.visits;
	return 0;
}

Test(scan, nonzero_return_ends_the_call_and_the_cursor_resumes)
{
	pkv *db = tu_open(tu_db, NULL);
	struct stopper st;
	uint64_t cursor = 0;
	int rc, stops = 0;

	seen_init(&st.s, 3000, "k");
	build(db, 3000, MIXED, &st.s);
	/* Stop at the 5th visit, then every 37th: every stop is returned as it was given. */
	st.stop_at = 5;
	do {
		size_t before = st.s.visits;

		rc = pkv_scan(db, &cursor, 100, visit_stop, &st);
		if (rc != 0) {
			cr_assert_eq(rc, 7 + (int)st.stop_at, "pkv_scan returned %d", rc);
			cr_assert_eq(st.s.visits, st.stop_at, "visits went on after the stop");
			cr_assert_leq(st.s.visits - before, 100);
			st.stop_at += 37;
			stops++;
			continue; /* resume from the cursor it left */
		}
	} while (cursor != 0);
	cr_expect_gt(stops, 10);
	/* Resuming after each stop still visits every key exactly once. */
	expect_exactly_once(&st.s);
	seen_free(&st.s);
	tu_close(db);
}

/* ---- the callback calls into pkv (SC.4) ------------------------------------------------- */

static int visit_delete(void *arg, const void *k, size_t klen, const void *v, size_t vlen,
			uint64_t seq)
{
	pkv *db = arg;

	(void)v;
	(void)vlen;
	(void)seq;
	cr_assert_eq(pkv_del(db, k, klen), 0);
	if (klen > 1 && ((const char *)k)[1] == '7')
		cr_assert_eq(pkv_compact(db), 0); /* waits for readers: must not be inside one */
	return 0;
}

Test(scan, the_callback_may_write_and_compact)
{
	pkv *db = tu_open(tu_db, NULL);
	struct seen s;
	uint64_t cursor = 0;

	seen_init(&s, 2000, "k");
	build(db, 2000, MIXED, &s);
	do
		cr_assert_eq(pkv_scan(db, &cursor, 50, visit_delete, db), 0);
	while (cursor != 0);
	cr_expect_eq(tu_stats(db).keys, 0, "every key deleted from inside the scan");
	memset(s.count, 0, s.n * sizeof(int));
	full_scan(db, 100, visit_exact, &s);
	cr_expect_eq(s.visits, 0);
	seen_free(&s);
	tu_close(db);
}

/* ---- bad arguments ------------------------------------------------------------------------ */

static int visit_nothing(void *arg, const void *k, size_t klen, const void *v, size_t vlen,
			 uint64_t seq)
{
	(void)arg, (void)k, (void)klen, (void)v, (void)vlen, (void)seq;
	return 0;
}

Test(scan, bad_arguments_are_einval)
{
	pkv *db = tu_open(tu_db, NULL);
	uint64_t cursor = 0;

	cr_expect_eq(pkv_scan(NULL, &cursor, 10, visit_nothing, NULL), PKV_EINVAL);
	cr_expect_eq(pkv_scan(db, NULL, 10, visit_nothing, NULL), PKV_EINVAL);
	cr_expect_eq(pkv_scan(db, &cursor, 10, NULL, NULL), PKV_EINVAL);
	cr_expect_eq(pkv_scan(db, &cursor, 0, visit_nothing, NULL), PKV_EINVAL);
	cr_expect_eq(cursor, 0);
	/* An empty store: one call, cursor 0, no visit. */
	cursor = 0;
	cr_expect_eq(pkv_scan(db, &cursor, 10, visit_nothing, NULL), 0);
	cr_expect_eq(cursor, 0);
	tu_close(db);
}

/* ---- concurrent: churn, growth, compactions ------------------------------------------ */

#define STABLE 20000
#define CHURN_SECONDS 3

struct churn {
	pkv *db;
	int next_id;
	volatile int stop;
	unsigned long writes, compactions;
};

static void *churner(void *arg)
{
	struct churn *c = arg;
	unsigned long i = 0;
	char prefix[8];

	/* Keys "c<t>-<i>": fresh ones grow the tables; each is deleted again 1000 writes later. */
	snprintf(prefix, sizeof(prefix), "c%d-", __atomic_fetch_add(&c->next_id, 1, __ATOMIC_RELAXED));
	while (!__atomic_load_n(&c->stop, __ATOMIC_ACQUIRE)) {
		put_v(c->db, prefix, i, 0);
		if (i >= 1000)
			del_v(c->db, prefix, i - 1000);
		/* Overwrite a stable key with its own value: present throughout, new version. */
		put_v(c->db, "k", i % STABLE, 0);
		i++;
		__atomic_fetch_add(&c->writes, 2, __ATOMIC_RELAXED);
	}
	return NULL;
}

static void *compactor(void *arg)
{
	struct churn *c = arg;

	while (!__atomic_load_n(&c->stop, __ATOMIC_ACQUIRE)) {
		cr_assert_eq(pkv_compact(c->db), 0);
		__atomic_fetch_add(&c->compactions, 1, __ATOMIC_RELAXED);
		struct timespec ts = {0, 20 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	return NULL;
}

struct conc_seen {
	struct seen stable;
	size_t never; /* visits of keys never written ("n<i>") or deleted before ("d<i>") */
	/* Growth forced in the middle of a scan: at the grow_at-th visit, when grow_at > 0. */
	pkv *db;
	size_t visits, grow_at;
	size_t grown_keys; /* "g<i>" keys written so far (never deleted) */
	bool forced;       /* a table grew at the grow_at-th visit */
};

static uint64_t map_grows(pkv *db)
{
	return tu_stats(db).map_grows;
}

/*
 * Write fresh keys "g<i>", which stay, until a table of the live map grows. The churn alone need
 * not grow one (its keys come and go; the stable keys only get new versions), so the test makes
 * growth happen mid-scan itself. Bounded: a table grows once a shard holds half its capacity.
 */
static void force_growth(struct conc_seen *c)
{
	uint64_t before = map_grows(c->db);
	size_t stop = c->grown_keys + 4000000;

	while (map_grows(c->db) == before) {
		for (int j = 0; j < 64; j++)
			put_v(c->db, "g", c->grown_keys++, 0);
		cr_assert_lt(c->grown_keys, stop, "4 million fresh keys grew no table");
	}
	c->forced = true;
}

static int visit_conc(void *arg, const void *k, size_t klen, const void *v, size_t vlen,
		      uint64_t seq)
{
	struct conc_seen *c = arg;
	long i = key_index(&c->stable, k, klen);

	(void)v;
	(void)vlen;
	cr_expect_gt(seq, 0);
	if (++c->visits == c->grow_at)
		force_growth(c); /* the callback may write (SC.4) */
	if (i >= 0)
		c->stable.count[i]++;
	else if (klen > 0 && (((const char *)k)[0] == 'n' || ((const char *)k)[0] == 'd'))
		c->never++;
	return 0;
}

Test(scan, at_least_once_while_keys_churn_tables_grow_and_compactions_run)
{
	pkv_options o;
	pthread_t w[2], cp;
	struct churn ch = {0};
	struct conc_seen cs;
	size_t scans = 0, counts[] = {3, 50, 1000}, grew = 0, forced = 0;
	uint64_t grows0;
	time_t end;

	pkv_options_default(&o);
	o.shards = 4;    /* few shards: their tables grow many times during the run */
	o.flags = PKV_OPEN_NO_AUTOCOMPACT;
	ch.db = tu_open(tu_db, &o);
	memset(&cs, 0, sizeof(cs));
	cs.db = ch.db;
	seen_init(&cs.stable, STABLE, "k");
	for (size_t i = 0; i < STABLE; i++)
		put_v(ch.db, "k", i, 0);
	for (size_t i = 0; i < 1000; i++) /* deleted before any scan: absent throughout */
		put_v(ch.db, "d", i, 0);
	cr_assert_eq(pkv_compact(ch.db), 0);
	for (size_t i = 0; i < 1000; i++)
		del_v(ch.db, "d", i);
	for (int t = 0; t < 2; t++)
		cr_assert_eq(pthread_create(&w[t], NULL, churner, &ch), 0);
	cr_assert_eq(pthread_create(&cp, NULL, compactor, &ch), 0);
	end = time(NULL) + CHURN_SECONDS;
	while (time(NULL) < end || scans < 3) {
		memset(cs.stable.count, 0, STABLE * sizeof(int));
		cs.never = 0;
		cs.visits = 0;
		cs.forced = false;
		/*
		 * Scans 1 and 2 (counts 50 and 1000) make a table grow halfway through them. Not
		 * those of count 3: their calls are many, and the keys added would make the slow
		 * scans of sanitizer builds slower still.
		 */
		cs.grow_at = scans == 1 || scans == 2 ? STABLE / 2 : 0;
		grows0 = map_grows(ch.db);
		full_scan(ch.db, counts[scans % 3], visit_conc, &cs);
		grew += map_grows(ch.db) > grows0;
		forced += cs.forced;
		size_t missed = 0;

		for (size_t i = 0; i < STABLE; i++)
			if (cs.stable.count[i] < 1 && missed++ < 5)
				cr_expect_geq(cs.stable.count[i], 1, "stable key %zu missed", i);
		cr_expect_eq(missed, 0, "scan %zu (count %zu) missed %zu stable keys", scans,
			     counts[scans % 3], missed);
		cr_expect_eq(cs.never, 0, "a key absent throughout the scan was visited");
		scans++;
		if (scans > 1000)
			break;
	}
	__atomic_store_n(&ch.stop, 1, __ATOMIC_RELEASE);
	for (int t = 0; t < 2; t++)
		pthread_join(w[t], NULL);
	pthread_join(cp, NULL);
	cr_log_info("%zu full scans against %lu writes and %lu compactions; a table grew during %zu "
		    "of them (%zu forced, %zu fresh keys)", scans, ch.writes, ch.compactions, grew,
		    forced, cs.grown_keys);
	cr_expect_gt(ch.compactions, 0, "no compaction ran during the scans");
	cr_expect_eq(forced, 2, "a table did not grow in the middle of scans 1 and 2");
	cr_expect_geq(grew, 2, "pkv_stats.map_grows did not rise during the scans that grew");
	/* Quiescent again: exactly once. */
	memset(cs.stable.count, 0, STABLE * sizeof(int));
	full_scan(ch.db, 100, visit_conc, &cs);
	for (size_t i = 0; i < STABLE; i++)
		cr_expect_eq(cs.stable.count[i], 1);
	seen_free(&cs.stable);
	tu_close(ch.db);
}

/* ---- a damaged snapshot --------------------------------------------------------------- */

Test(scan, a_damaged_snapshot_record_is_ecorrupt_not_a_miss)
{
	pkv *db = tu_open(tu_db, NULL);
	struct seen s;
	char snapdir[PATH_MAX], path[PATH_MAX + 300];
	uint64_t cursor = 0;
	int rc = 0;
	size_t calls = 0;

	seen_init(&s, 2000, "k");
	build(db, 2000, BASE, &s);
	tu_close(db);
	tu_fmt(snapdir, sizeof(snapdir), "%s/snap", tu_db);
	DIR *d = opendir(snapdir);
	struct dirent *e;
	cr_assert_not_null(d);
	path[0] = '\0';
	while ((e = readdir(d)) != NULL)
		if (strstr(e->d_name, ".snap"))
			snprintf(path, sizeof(path), "%s/%s", snapdir, e->d_name);
	closedir(d);
	cr_assert(path[0]);
	FILE *f = fopen(path, "r+b");
	cr_assert_not_null(f);
	cr_assert_eq(fseek(f, 4096 + 30000, SEEK_SET), 0); /* inside the records */
	int c = fgetc(f);
	cr_assert_eq(fseek(f, 4096 + 30000, SEEK_SET), 0);
	fputc(c ^ 0x10, f);
	fclose(f);
	db = tu_open(tu_db, NULL);
	do {
		rc = pkv_scan(db, &cursor, 100, visit_exact, &s);
		calls++;
	} while (rc == 0 && cursor != 0 && calls < 100000);
	cr_expect_eq(rc, PKV_ECORRUPT, "the damaged record was skipped: %d", rc);
	cr_expect_lt(s.visits, 2000);
	/* The same range fails again: the cursor stayed on it. */
	cr_expect_eq(pkv_scan(db, &cursor, 100, visit_exact, &s), PKV_ECORRUPT);
	cr_expect_eq(s.foreign, 0);
	seen_free(&s);
	tu_close(db);
}
