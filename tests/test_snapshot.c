/* SPDX-License-Identifier: MIT */
/*
 * test_snapshot.c - snapshots and compaction (src/compact.c C.1 - C.8, src/snapshot.c N.1 - N.3,
 * and the base image under replay, src/recovery.c R.3 and R.9).
 *
 * Covered:
 *  - sizes: a compaction of 0 .. 100,000 keys (with overwrites and deletes) gives the right stats,
 *    exactly one snapshot file, retired WAL segments, a store that verifies, and the same state
 *    after a reopen (the snapshot is the base image, nothing is replayed);
 *  - tombstones: deletes after a compaction shadow the base (C.4, C.7), across WAL replay over the
 *    base (R.9) and across a second compaction; deleted keys never come back;
 *  - concurrency: two writers, two readers and a compaction loop; readers only see values that
 *    were really written for the key they asked for, never an older version after a newer one
 *    (C.7: no fall-back to the old base), and the final state is each key's last acknowledged
 *    write;
 *  - the background compactor starts by itself once compact_wal_bytes of WAL were written;
 *  - a delete made after S, before its shard is walked, is durable before the snapshot that
 *    reflects it is renamed into place (C.3);
 *  - damaged snapshot files: truncations, header damage, an unknown version and garbage give a
 *    clean PKV_ECORRUPT naming the file (N.2); damage under a valid header is found by
 *    pkv_verify, no get returns a wrong value (the right one, PKV_NOTFOUND or PKV_ECORRUPT), and
 *    a compaction does not launder the damage into a new snapshot;
 *  - a compaction that fails at any of its file-system operations (faultfs, ENOSPC and EIO)
 *    changes nothing that matters (C.8), neither in the open store nor in what a crash right
 *    after it would leave, and a later compaction succeeds; short writes are retried (N.1).
 * This suite links the static library: faultfs installs an internal table, and the snapshot
 * header layout comes from src/snapshot.h.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../src/crc32c.h"
#include "../src/snapshot.h"
#include "faultfs.h"
#include "testutil.h"

#define LANES 2u

/* ---- keys, values, options ----------------------------------------------------------------- */

/* Key of id @id: "k<id>", and every 13th one padded to 100 bytes (keys of several lengths). */
static size_t key_of(char *buf, uint32_t id)
{
	int n = snprintf(buf, 128, "k%08" PRIx32, id);

	if (id % 13 == 0) {
		memset(buf + n, 'p', 100 - (size_t)n);
		n = 100;
	}
	return (size_t)n;
}

/* Value of (@id, @ver): 0 .. 300 bytes (empty values too), contents derived from both. */
static size_t val_of(unsigned char *buf, uint32_t id, uint32_t ver)
{
	uint64_t st = ((uint64_t)id << 32) ^ ver ^ 0x5eed;
	size_t len = (size_t)(tu_rand(&st) % 301);

	for (size_t i = 0; i < len; i += 8) {
		uint64_t x = tu_rand(&st);
		memcpy(buf + i, &x, len - i < 8 ? len - i : 8);
	}
	return len;
}

static void opts_small(pkv_options *o, size_t seg_bytes)
{
	pkv_options_default(o);
	o->wal_lanes = LANES;
	o->wal_segment_bytes = seg_bytes;
	o->flags = PKV_OPEN_NO_AUTOCOMPACT;
}

/* put (id, ver) into the store and the model; must succeed. */
static void put_id(pkv *db, struct tu_model *m, uint32_t id, uint32_t ver)
{
	char k[128];
	unsigned char v[512];
	size_t kl = key_of(k, id), vl = val_of(v, id, ver);
	int r = pkv_put(db, k, kl, v, vl);

	cr_assert_eq(r, 0, "put of id %u: %s", id, pkv_strerror(r));
	tu_model_put(m, k, kl, v, vl);
}

/* delete id from the store and the model: 0 if the model has it, PKV_NOTFOUND otherwise. */
static void del_id(pkv *db, struct tu_model *m, uint32_t id)
{
	char k[128];
	size_t kl = key_of(k, id);
	const struct tu_model_ent *e = tu_model_find(m, k, kl);
	bool present = e && e->present;
	int r = pkv_del(db, k, kl);

	cr_assert_eq(r, present ? 0 : PKV_NOTFOUND, "del of id %u (%s): %s", id,
		     present ? "present" : "absent", pkv_strerror(r));
	tu_model_del(m, k, kl);
}

/* Ids [@from, @to) were never written: each must be absent. */
static void assert_absent(pkv *db, uint32_t from, uint32_t to)
{
	char k[128];
	size_t vl;

	for (uint32_t id = from; id < to; id++) {
		size_t kl = key_of(k, id);
		int r = pkv_get(db, k, kl, NULL, 0, &vl);

		cr_assert_eq(r, PKV_NOTFOUND, "never-written id %u: get gave %d", id, r);
	}
}

/* ---- directory helpers --------------------------------------------------------------------- */

/* Number of files in @dir/@sub whose names end in @suffix; the last one's name into @last. */
static int count_files(const char *dir, const char *sub, const char *suffix, char *last,
		       size_t lastlen)
{
	char path[PATH_MAX];
	size_t sl = strlen(suffix);
	struct dirent *e;
	DIR *d;
	int n = 0;

	tu_fmt(path, sizeof(path), "%s/%s", dir, sub);
	d = opendir(path);
	if (d == NULL)
		return 0;
	while ((e = readdir(d)) != NULL) {
		size_t len = strlen(e->d_name);

		if (len > sl && strcmp(e->d_name + len - sl, suffix) == 0) {
			n++;
			if (last)
				snprintf(last, lastlen, "%s", e->d_name);
		}
	}
	closedir(d);
	return n;
}

/*
 * Exactly one snapshot, named after @seq, and no temporary one (a compaction removes its own
 * before it returns, C.8). wal/ is checked by assert_no_wal_tmp, on a closed store: an open one's
 * background thread may be creating a spare segment, which is a *.tmp until it is complete.
 */
static void assert_one_snapshot(const char *dir, uint64_t seq)
{
	char name[256], want[64];
	int n = count_files(dir, "snap", ".snap", name, sizeof(name));

	cr_assert_eq(n, 1, "snap/ holds %d *.snap files, expected exactly 1", n);
	snprintf(want, sizeof(want), "%020" PRIu64 ".snap", seq);
	cr_assert_str_eq(name, want, "snapshot file is %s, expected %s", name, want);
	cr_assert_eq(count_files(dir, "snap", ".tmp", NULL, 0), 0, "snap/*.tmp left behind");
}

static void assert_no_wal_tmp(const char *dir)
{
	cr_assert_eq(count_files(dir, "wal", ".tmp", NULL, 0), 0, "wal/*.tmp left behind");
}

static void snap_file(char *out, const char *dir, uint64_t seq)
{
	tu_fmt(out, PATH_MAX, "%s/snap/%020" PRIu64 ".snap", dir, seq);
}

/* ---- 1. sizes ------------------------------------------------------------------------------ */

/* One Test per size, so that a failure names its size and the sizes run as separate workers. */
static void sizes_body(uint32_t n);

#define SIZE_TEST(name, expr)                                                             \
	Test(snapshot_sizes, name, .init = tu_setup, .fini = tu_teardown, .timeout = 120) \
	{                                                                                 \
		sizes_body((uint32_t)(expr));                                             \
	}

/* A few sizes no one picked by hand, the same in every run: 1 .. 5000 from a fixed seed. */
static uint32_t random_size(uint64_t seed)
{
	return 1 + (uint32_t)(tu_rand(&seed) % 5000);
}

SIZE_TEST(n0, 0)
SIZE_TEST(n1, 1)
SIZE_TEST(n2, 2)
SIZE_TEST(n3, 3)
SIZE_TEST(n7, 7)
SIZE_TEST(n64, 64)
SIZE_TEST(n1000, 1000)
SIZE_TEST(n10000, 10000)
SIZE_TEST(n100000, 100000)
SIZE_TEST(random1, random_size(20240611))
SIZE_TEST(random2, random_size(20240612))
SIZE_TEST(random3, random_size(20240613))

static void sizes_body(uint32_t n)
{
	uint64_t rs = 0xc0ffee ^ n;
	struct tu_model m;
	pkv_options o;
	pkv_stats st, st2;
	uint32_t *ver = calloc(n + 1, sizeof(*ver));
	uint32_t overwrites = n >= 1 ? (n + 3) / 4 : 0, dels = n / 8 + (n >= 3);
	uint64_t segs_before;
	char path[PATH_MAX];
	pkv *db;

	cr_assert_not_null(ver);
	tu_model_init(&m);
	opts_small(&o, 256u << 10);
	db = tu_open(tu_db, &o);
	for (uint32_t id = 0; id < n; id++)
		put_id(db, &m, id, 0);
	for (uint32_t i = 0; i < overwrites; i++) {
		uint32_t id = (uint32_t)(tu_rand(&rs) % n);
		put_id(db, &m, id, ++ver[id]);
	}
	for (uint32_t i = 0; i < dels; i++)
		del_id(db, &m, (uint32_t)(tu_rand(&rs) % n));
	segs_before = tu_stats(db).wal_segments;

	cr_assert_eq(pkv_compact(db), 0);
	st = tu_stats(db);
	cr_assert_eq(st.compactions, 1);
	cr_assert_eq(st.snapshot_seq, st.last_seq, "snapshot_seq %" PRIu64 " != last_seq %" PRIu64,
		     st.snapshot_seq, st.last_seq);
	cr_assert_eq(st.snapshot_keys, m.present, "snapshot_keys %" PRIu64 ", model %zu",
		     st.snapshot_keys, m.present);
	cr_assert_eq(st.keys, m.present);
	snap_file(path, tu_db, st.snapshot_seq);
	cr_assert_eq((uint64_t)tu_file_size(path), st.snapshot_bytes);
	/* C.6: every full segment is covered and deleted; a lane keeps its current one, a spare. */
	cr_assert_leq(st.wal_segments, 2 * LANES,
		      "%" PRIu64 " WAL segments after compaction (%" PRIu64 " before)",
		      st.wal_segments, segs_before);
	assert_one_snapshot(tu_db, st.snapshot_seq);
	tu_model_assert(&m, db, "after compaction");
	assert_absent(db, n, n + 100);
	cr_assert_eq(pkv_verify(db), 0);
	tu_close(db);

	db = tu_open(tu_db, &o);
	st2 = tu_stats(db);
	cr_assert_eq(st2.snapshot_seq, st.snapshot_seq);
	cr_assert_eq(st2.snapshot_keys, st.snapshot_keys);
	cr_assert_eq(st2.last_seq, st.last_seq);
	cr_assert_eq(st2.recovered_records, 0, "the base image covers every record");
	cr_assert_eq(st2.discarded_records, 0);
	cr_assert_eq(st2.discarded_bytes, 0);
	cr_assert_leq(st2.wal_segments, 2 * LANES);
	assert_one_snapshot(tu_db, st.snapshot_seq);
	tu_model_assert(&m, db, "after reopen");
	assert_absent(db, n, n + 100);
	cr_assert_eq(pkv_verify(db), 0);
	tu_close(db);
	assert_no_wal_tmp(tu_db);
	tu_model_free(&m);
	free(ver);
}

/* ---- 2. tombstones: deletes after a compaction shadow the base ----------------------------- */

Test(snapshot, tombstones, .init = tu_setup, .fini = tu_teardown, .timeout = 60)
{
	const uint32_t n = 2000;
	struct tu_model m;
	pkv_options o;
	pkv_stats st;
	uint64_t seq0, writes = 0;
	char k[128];
	size_t vl;
	pkv *db;

	tu_model_init(&m);
	opts_small(&o, 64u << 10);
	db = tu_open(tu_db, &o);
	for (uint32_t id = 0; id < n; id++)
		put_id(db, &m, id, 0);
	cr_assert_eq(pkv_compact(db), 0);
	seq0 = tu_stats(db).last_seq;

	/* Over the base: delete 300, overwrite 300, add 300 new, re-put 50 deleted and delete
	 * 25 of those again. */
	for (uint32_t id = 0; id < 300; id++, writes++)
		del_id(db, &m, id);
	for (uint32_t id = 300; id < 600; id++, writes++)
		put_id(db, &m, id, 1);
	for (uint32_t id = n; id < n + 300; id++, writes++)
		put_id(db, &m, id, 0);
	for (uint32_t id = 0; id < 50; id++, writes++)
		put_id(db, &m, id, 2);
	for (uint32_t id = 0; id < 25; id++, writes++)
		del_id(db, &m, id);
	/* A delete of a key that only the base ever had, now deleted: nothing is written. */
	cr_assert_eq(pkv_del(db, k, key_of(k, 100)), PKV_NOTFOUND);
	cr_assert_eq(pkv_get(db, k, key_of(k, 100), NULL, 0, &vl), PKV_NOTFOUND);
	cr_assert_eq(tu_stats(db).last_seq, seq0 + writes);
	tu_model_assert(&m, db, "after writes over the base");
	tu_close(db);

	/* R.9: the WAL after the snapshot replays over the base, tombstones included. */
	db = tu_open(tu_db, &o);
	st = tu_stats(db);
	cr_assert_eq(st.snapshot_seq, seq0);
	cr_assert_eq(st.recovered_records, writes, "replayed %" PRIu64 ", expected %" PRIu64,
		     st.recovered_records, writes);
	tu_model_assert(&m, db, "after replay over the base");

	/* C.5, C.7: the second snapshot omits the deleted keys; trimmed tombstones stay deleted. */
	cr_assert_eq(pkv_compact(db), 0);
	st = tu_stats(db);
	cr_assert_eq(st.snapshot_keys, m.present);
	cr_assert_leq(st.wal_segments, 2 * LANES);
	tu_model_assert(&m, db, "after the second compaction");
	cr_assert_eq(pkv_verify(db), 0);
	tu_close(db);

	db = tu_open(tu_db, &o);
	assert_one_snapshot(tu_db, st.snapshot_seq);
	cr_assert_eq(tu_stats(db).recovered_records, 0);
	tu_model_assert(&m, db, "after reopen on the second snapshot");

	/* Delete everything but a few, compact, reopen: the base shrinks, nothing returns. */
	for (uint32_t id = 0; id < n + 300; id++) {
		const struct tu_model_ent *e = tu_model_find(&m, k, key_of(k, id));

		if (e && e->present && id % 97 != 0)
			del_id(db, &m, id);
	}
	tu_model_assert(&m, db, "after deleting almost all");
	cr_assert_eq(pkv_compact(db), 0);
	cr_assert_eq(tu_stats(db).snapshot_keys, m.present);
	tu_model_assert(&m, db, "after compacting the deletes");
	tu_close(db);
	db = tu_open(tu_db, &o);
	tu_model_assert(&m, db, "after the last reopen");
	cr_assert_eq(pkv_verify(db), 0);
	tu_close(db);
	assert_no_wal_tmp(tu_db);
	tu_model_free(&m);
}

/* ---- 3. compaction under concurrent writers and readers ------------------------------------ */

#define CW_WRITERS 2
#define CW_KEYS 1000 /* per writer; writer w owns ids [w * CW_KEYS, (w + 1) * CW_KEYS) */
#define CW_OPS 40000 /* per writer */
#define CW_READERS 2
#define CW_READS 150000 /* per reader */
#define CW_HDR 24

/*
 * A self-describing value: key id, writer, version, filler length and a CRC32C over all of it,
 * then the filler, derived from (key, version). A reader can tell a value that was really written
 * for the key it asked for from anything else.
 */
static size_t cw_value(unsigned char *buf, uint32_t key, uint32_t writer, uint64_t version)
{
	uint64_t st = ((uint64_t)key << 40) ^ version;
	uint32_t len = (uint32_t)(tu_rand(&st) % 200), crc;

	memcpy(buf, &key, 4);
	memcpy(buf + 4, &writer, 4);
	memcpy(buf + 8, &version, 8);
	memcpy(buf + 16, &len, 4);
	for (uint32_t i = 0; i < len; i++)
		buf[CW_HDR + i] = (unsigned char)(tu_rand(&st) >> 7);
	crc = tu_crc32c(0, buf, 20);
	crc = tu_crc32c(crc, buf + CW_HDR, len);
	memcpy(buf + 20, &crc, 4);
	return CW_HDR + len;
}

struct cw_state {
	pkv *db;
	uint64_t issued[CW_WRITERS * CW_KEYS]; /* atomic: highest version a writer started to put */
	uint64_t final_ver[CW_WRITERS * CW_KEYS]; /* last acknowledged put; writer-private */
	bool final_present[CW_WRITERS * CW_KEYS];
	int writers_done; /* atomic */
	int errors; /* atomic */
	uint64_t compactions;
	char why[256]; /* the first error, under mu */
	pthread_mutex_t mu;
};

struct cw_arg {
	struct cw_state *s;
	uint32_t id;
};

static void cw_fail(struct cw_state *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void cw_fail(struct cw_state *s, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&s->mu);
	if (s->errors++ == 0) {
		va_start(ap, fmt);
		vsnprintf(s->why, sizeof(s->why), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&s->mu);
}

static void *cw_writer(void *p)
{
	struct cw_arg *a = p;
	struct cw_state *s = a->s;
	uint64_t rs = 1000 + a->id;
	unsigned char v[CW_HDR + 256];
	char k[128];

	for (int op = 0; op < CW_OPS && __atomic_load_n(&s->errors, __ATOMIC_RELAXED) == 0; op++) {
		uint32_t key = a->id * CW_KEYS + (uint32_t)(tu_rand(&rs) % CW_KEYS);
		size_t kl = key_of(k, key);
		int r;

		if (tu_rand(&rs) % 5 != 0) {
			uint64_t ver = __atomic_load_n(&s->issued[key], __ATOMIC_RELAXED) + 1;
			size_t vl = cw_value(v, key, a->id, ver);

			/* Published before the put: a reader that sees ver finds issued >= ver. */
			__atomic_store_n(&s->issued[key], ver, __ATOMIC_RELEASE);
			r = pkv_put(s->db, k, kl, v, vl);
			if (r != 0) {
				cw_fail(s, "writer %u: put of key %u: %s", a->id, key,
					pkv_strerror(r));
				break;
			}
			s->final_ver[key] = ver;
			s->final_present[key] = true;
		} else {
			r = pkv_del(s->db, k, kl);
			if (r != (s->final_present[key] ? 0 : PKV_NOTFOUND)) {
				cw_fail(s, "writer %u: del of key %u (%s) gave %s", a->id, key,
					s->final_present[key] ? "present" : "absent",
					pkv_strerror(r));
				break;
			}
			s->final_present[key] = false;
		}
	}
	__atomic_add_fetch(&s->writers_done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* Check a value read for @key: really written, by its owner, for this key, not stale. */
static bool cw_check(struct cw_state *s, uint32_t key, const unsigned char *v, size_t vl,
		     uint64_t *last_seen, char *why, size_t whylen)
{
	unsigned char want[CW_HDR + 256];
	uint32_t vkey, writer;
	uint64_t ver, issued;

	if (vl < CW_HDR) {
		snprintf(why, whylen, "key %u: value of %zu bytes", key, vl);
		return false;
	}
	memcpy(&vkey, v, 4);
	memcpy(&writer, v + 4, 4);
	memcpy(&ver, v + 8, 8);
	if (vkey != key || writer != key / CW_KEYS || ver == 0) {
		snprintf(why, whylen, "key %u: value names key %u writer %u version %" PRIu64, key,
			 vkey, writer, ver);
		return false;
	}
	if (cw_value(want, key, writer, ver) != vl || memcmp(want, v, vl) != 0) {
		snprintf(why, whylen,
			 "key %u version %" PRIu64 ": bytes differ from what was written", key,
			 ver);
		return false;
	}
	issued = __atomic_load_n(&s->issued[key], __ATOMIC_ACQUIRE);
	if (ver > issued) {
		snprintf(why, whylen,
			 "key %u: version %" PRIu64 " was never written (issued %" PRIu64 ")", key,
			 ver, issued);
		return false;
	}
	if (ver < *last_seen) {
		snprintf(why, whylen,
			 "key %u: version %" PRIu64 " read after version %" PRIu64
			 " (went back in time)",
			 key, ver, *last_seen);
		return false;
	}
	*last_seen = ver;
	return true;
}

static void *cw_reader(void *p)
{
	struct cw_arg *a = p;
	struct cw_state *s = a->s;
	uint64_t rs = 2000 + a->id;
	uint64_t *seen = calloc(CW_WRITERS * CW_KEYS, sizeof(*seen));
	unsigned char v[CW_HDR + 256];
	char k[128], why[200];

	if (seen == NULL) {
		cw_fail(s, "reader: out of memory");
		return NULL;
	}
	for (int i = 0; i < CW_READS && __atomic_load_n(&s->errors, __ATOMIC_RELAXED) == 0; i++) {
		uint32_t key = (uint32_t)(tu_rand(&rs) % (CW_WRITERS * CW_KEYS));
		size_t kl = key_of(k, key), vl = 0;
		int r = pkv_get(s->db, k, kl, v, sizeof(v), &vl);

		if (r == PKV_NOTFOUND)
			continue;
		if (r != 0) {
			cw_fail(s, "reader %u: get of key %u: %s", a->id, key, pkv_strerror(r));
			break;
		}
		if (!cw_check(s, key, v, vl, &seen[key], why, sizeof(why))) {
			cw_fail(s, "reader %u: %s", a->id, why);
			break;
		}
	}
	free(seen);
	return NULL;
}

static void *cw_compactor(void *p)
{
	struct cw_state *s = p;

	/* At least one compaction, then as many as fit while the writers run. */
	do {
		int r = pkv_compact(s->db);

		if (r != 0) {
			cw_fail(s, "compactor: pkv_compact: %s", pkv_strerror(r));
			break;
		}
		r = pkv_verify(s->db);
		if (r != 0) {
			cw_fail(s, "compactor: pkv_verify after a compaction: %s", pkv_strerror(r));
			break;
		}
		/* Let the writers on: a compaction with nothing new returns at once. */
		sched_yield();
	} while (__atomic_load_n(&s->writers_done, __ATOMIC_ACQUIRE) < CW_WRITERS &&
		 __atomic_load_n(&s->errors, __ATOMIC_RELAXED) == 0);
	return NULL;
}

/* The store holds exactly each key's last acknowledged write. */
static void cw_assert_final(struct cw_state *s, pkv *db, const char *what)
{
	unsigned char v[CW_HDR + 256], want[CW_HDR + 256];
	uint64_t present = 0;
	char k[128];

	for (uint32_t key = 0; key < CW_WRITERS * CW_KEYS; key++) {
		size_t kl = key_of(k, key), vl = 0, wl;
		int r = pkv_get(db, k, kl, v, sizeof(v), &vl);

		if (!s->final_present[key]) {
			cr_assert_eq(r, PKV_NOTFOUND, "%s: key %u should be absent, get gave %d",
				     what, key, r);
			continue;
		}
		present++;
		cr_assert_eq(r, 0, "%s: key %u should be present: %s", what, key, pkv_strerror(r));
		wl = cw_value(want, key, key / CW_KEYS, s->final_ver[key]);
		cr_assert(vl == wl && memcmp(v, want, wl) == 0,
			  "%s: key %u does not hold its last acknowledged version %" PRIu64, what,
			  key, s->final_ver[key]);
	}
	cr_assert_eq(tu_stats(db).keys, present, "%s: stats.keys", what);
}

Test(snapshot, concurrent, .init = tu_setup, .fini = tu_teardown, .timeout = 120)
{
	struct cw_state *s = calloc(1, sizeof(*s));
	struct cw_arg wa[CW_WRITERS], ra[CW_READERS];
	pthread_t wt[CW_WRITERS], rt[CW_READERS], ct;
	pkv_options o;

	cr_assert_not_null(s);
	pthread_mutex_init(&s->mu, NULL);
	opts_small(&o, 256u << 10);
	s->db = tu_open(tu_db, &o);
	for (uint32_t i = 0; i < CW_WRITERS; i++) {
		wa[i] = (struct cw_arg){ s, i };
		cr_assert_eq(pthread_create(&wt[i], NULL, cw_writer, &wa[i]), 0);
	}
	for (uint32_t i = 0; i < CW_READERS; i++) {
		ra[i] = (struct cw_arg){ s, i };
		cr_assert_eq(pthread_create(&rt[i], NULL, cw_reader, &ra[i]), 0);
	}
	cr_assert_eq(pthread_create(&ct, NULL, cw_compactor, s), 0);
	for (int i = 0; i < CW_WRITERS; i++)
		pthread_join(wt[i], NULL);
	for (int i = 0; i < CW_READERS; i++)
		pthread_join(rt[i], NULL);
	pthread_join(ct, NULL);
	cr_assert_eq(s->errors, 0, "%d errors, the first: %s", s->errors, s->why);
	s->compactions = tu_stats(s->db).compactions;
	cr_assert_geq(s->compactions, 1);
	cr_log_info("concurrent: %" PRIu64 " compactions during the run", s->compactions);

	cw_assert_final(s, s->db, "after the run");
	cr_assert_eq(pkv_verify(s->db), 0);
	tu_close(s->db);
	s->db = tu_open(tu_db, &o);
	cw_assert_final(s, s->db, "after reopen");
	cr_assert_eq(pkv_verify(s->db), 0);
	cr_assert_eq(pkv_compact(s->db), 0);
	tu_close(s->db);
	s->db = tu_open(tu_db, &o);
	cw_assert_final(s, s->db, "after a last compaction and reopen");
	tu_close(s->db);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

/* ---- 4. the background compactor ------------------------------------------------------------ */

Test(snapshot, automatic, .init = tu_setup, .fini = tu_teardown, .timeout = 60)
{
	struct tu_model m;
	pkv_options o;
	uint64_t rs = 77;
	pkv_stats st;
	pkv *db;
	int polls = 0;

	tu_model_init(&m);
	pkv_options_default(&o);
	o.wal_lanes = LANES;
	o.wal_segment_bytes = 64u << 10;
	o.compact_wal_bytes = 1u << 20;
	db = tu_open(tu_db, &o);
	/* About 5 MiB of WAL: 5000 puts of 1 KiB over 1500 keys, with a delete now and then. */
	for (uint32_t i = 0; i < 5000; i++) {
		uint32_t id = (uint32_t)(tu_rand(&rs) % 1500);
		unsigned char v[1024];
		char k[128];
		size_t kl = key_of(k, id);
		int r;

		if (i % 10 == 9) {
			del_id(db, &m, id);
			continue;
		}
		memset(v, (int)(i & 0xff), sizeof(v));
		memcpy(v, &i, sizeof(i));
		r = pkv_put(db, k, kl, v, sizeof(v));
		cr_assert_eq(r, 0, "put %u: %s", i, pkv_strerror(r));
		tu_model_put(&m, k, kl, v, sizeof(v));
	}
	/* Wait for the compactor (bounded; the poll decides nothing by its timing). */
	for (st = tu_stats(db); st.compactions < 1 && polls < 1000; polls++) {
		usleep(10000);
		st = tu_stats(db);
	}
	cr_assert_geq(st.compactions, 1,
		      "no background compaction after %" PRIu64
		      " WAL bytes (compact_wal_bytes %zu)",
		      st.wal_bytes, o.compact_wal_bytes);
	tu_model_assert(&m, db, "after background compaction");
	cr_assert_eq(pkv_verify(db), 0);
	tu_close(db);
	db = tu_open(tu_db, &o);
	cr_assert_gt(tu_stats(db).snapshot_seq, 0);
	tu_model_assert(&m, db, "after reopen");
	cr_assert_eq(pkv_verify(db), 0);
	tu_close(db);
	tu_model_free(&m);
}

/*
 * C.3 with a delete that comes during the walk. The compaction below has taken S; before any
 * shard is walked (a pre hook on the open of snap/<S>.tmp, on the compacting thread) a key that
 * the old base holds is deleted, at X > S. The walk meets its tombstone, which goes into the
 * file as nothing, and leaves the base's version out: the new snapshot reflects the delete, so
 * the WAL must be durable up to X before the snapshot is renamed into place. Syncing only up to
 * the newest version the file holds (below X here) let a power cut keep the snapshot and lose
 * X's record and every write before it: a hole, found by stress/powerloss.c (PROCESS mode).
 * The store's background thread, which a WAL roll wakes to make a spare segment and then to
 * sync and close the rolled one, is held at the open of its spare from before the compaction
 * until the durable point has been read after it (a few large puts roll a lane, so that it gets
 * there), and everything is synced before the compaction: only the compaction's own sync can
 * make X durable.
 */
struct dw_ctx {
	pkv *db;
	pthread_t thread; /* the test's (compacting) thread */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool hold; /* other threads' opens wait while set */
	int held; /* opens that waited */
	bool done;
	uint64_t s, x; /* last_seq before and after the delete */
	int del_rc;
};

static void dw_hook(void *ctx, const struct ffs_call *c)
{
	struct dw_ctx *d = ctx;
	size_t n = c->path ? strlen(c->path) : 0;

	if (c->op != FFS_OPEN)
		return;
	if (!pthread_equal(d->thread, pthread_self())) {
		struct timespec until;

		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += 20; /* bounded: a hold the test forgot to end still ends */
		pthread_mutex_lock(&d->mu);
		d->held += d->hold;
		while (d->hold && pthread_cond_timedwait(&d->cv, &d->mu, &until) == 0)
			;
		pthread_mutex_unlock(&d->mu);
		return;
	}
	if (d->done || n < 4 || strcmp(c->path + n - 4, ".tmp") != 0 ||
	    strstr(c->path, "/snap/") == NULL)
		return;
	d->done = true;
	d->s = tu_stats(d->db).last_seq;
	d->del_rc = pkv_del(d->db, "k-gone", 6);
	d->x = tu_stats(d->db).last_seq;
}

static void dw_release(struct dw_ctx *d)
{
	pthread_mutex_lock(&d->mu);
	d->hold = false;
	pthread_cond_broadcast(&d->cv);
	pthread_mutex_unlock(&d->mu);
}

Test(snapshot, delete_during_walk_is_durable, .init = tu_setup, .fini = tu_teardown,
     .timeout = 60)
{
	struct dw_ctx d = { .thread = pthread_self(),
			    .mu = PTHREAD_MUTEX_INITIALIZER,
			    .cv = PTHREAD_COND_INITIALIZER };
	struct ffs_hooks h = { .pre = dw_hook, .ctx = &d };
	pkv_options o;
	pkv_stats st;
	size_t vl;
	pkv *db;
	static unsigned char big[40u << 10];
	int r, held = 0, polls = 0;

	opts_small(&o, 64u << 10);
	o.durability = PKV_DURABLE_PROCESS;
	db = tu_open(tu_db, &o);
	cr_assert_eq(pkv_put(db, "k-gone", 6, "v", 1), 0);
	cr_assert_eq(pkv_put(db, "k-stay", 6, "v", 1), 0);
	cr_assert_eq(pkv_compact(db), 0); /* the base holds both keys */
	d.db = db;
	d.hold = true;
	ffs_install();
	ffs_set_hooks(&h);
	/* Three values of 40 KiB in two lanes of 64 KiB segments: a lane rolls (W.4). */
	memset(big, 'b', sizeof(big));
	for (int i = 0; i < 3; i++) {
		char k[16];

		snprintf(k, sizeof(k), "k-big%d", i);
		cr_assert_eq(pkv_put(db, k, strlen(k), big, sizeof(big)), 0);
	}
	/* Bounded wait for the background thread to reach the hold (the poll decides nothing). */
	for (; held == 0 && polls < 2000; polls++) {
		pthread_mutex_lock(&d.mu);
		held = d.held;
		pthread_mutex_unlock(&d.mu);
		if (held == 0)
			usleep(5000);
	}
	cr_assert_gt(held, 0, "the background thread never made a spare segment");
	cr_assert_eq(pkv_sync(db), 0); /* everything so far is durable */
	r = pkv_compact(db);
	st = tu_stats(db);
	dw_release(&d);
	ffs_set_hooks(NULL);
	ffs_uninstall();
	cr_assert_eq(r, 0, "compaction: %s", pkv_strerror(r));
	cr_assert(d.done, "the hook never saw the snapshot's temporary file");
	cr_assert_eq(d.del_rc, 0, "delete during the walk: %s", pkv_strerror(d.del_rc));
	cr_assert_eq(d.x, d.s + 1);
	cr_assert_eq(st.snapshot_seq, d.s, "the delete should come after S");
	cr_assert_eq(pkv_get(db, "k-gone", 6, NULL, 0, &vl), PKV_NOTFOUND);
	cr_assert_geq(st.durable_seq, d.x,
		      "C.3: the snapshot (S = %" PRIu64 ") reflects the delete at %" PRIu64
		      ", but the WAL was durable only up to %" PRIu64 " when it was renamed",
		      st.snapshot_seq, d.x, st.durable_seq);
	tu_close(db);
	db = tu_open(tu_db, &o);
	cr_assert_eq(pkv_get(db, "k-gone", 6, NULL, 0, &vl), PKV_NOTFOUND);
	cr_assert_eq(pkv_get(db, "k-stay", 6, NULL, 0, &vl), 0);
	cr_assert_eq(pkv_get(db, "k-big2", 6, NULL, 0, &vl), 0);
	cr_assert_eq(vl, sizeof(big));
	tu_close(db);
}

/* ---- 5. damaged snapshot files --------------------------------------------------------------- */

/*
 * A pristine store: ids 0 .. 99 put once, in one lane, so the snapshot is
 * snap/00000000000000000100.snap. (Sequence number 100 is below 123, the name of the garbage
 * file below, which is therefore the newest snapshot.)
 */
#define DMG_KEYS 100u
#define DMG_SEQ 100u

static char dmg_pristine[PATH_MAX];
static struct tu_model dmg_model;

static void dmg_setup(void)
{
	pkv_options o;
	pkv *db;

	tu_setup();
	tu_model_init(&dmg_model);
	opts_small(&o, 64u << 10);
	o.wal_lanes = 1;
	db = tu_open(tu_db, &o);
	for (uint32_t id = 0; id < DMG_KEYS; id++)
		put_id(db, &dmg_model, id, 0);
	cr_assert_eq(pkv_compact(db), 0);
	cr_assert_eq(tu_stats(db).snapshot_seq, DMG_SEQ);
	tu_close(db);
	tu_path(dmg_pristine, "pristine");
	tu_copy_tree(tu_db, dmg_pristine);
}

static void dmg_teardown(void)
{
	tu_model_free(&dmg_model);
	tu_teardown();
}

/* A fresh copy of the pristine store at tu_db; its snapshot's path into @snap. */
static void dmg_fresh(char *snap)
{
	tu_rm_rf(tu_db);
	tu_copy_tree(dmg_pristine, tu_db);
	snap_file(snap, tu_db, DMG_SEQ);
}

/* Create (or replace) @path with @len bytes of @buf. */
static void write_new_file(const char *path, const void *buf, size_t len)
{
	FILE *f = fopen(path, "wb");

	cr_assert_not_null(f, "create %s: %s", path, strerror(errno));
	cr_assert_eq(fwrite(buf, 1, len, f), len);
	cr_assert_eq(fclose(f), 0);
}

static struct snap_hdr_disk dmg_header(const char *snap)
{
	struct snap_hdr_disk h;
	size_t len;
	unsigned char *b = tu_read_file(snap, &len);

	cr_assert_geq(len, sizeof(h));
	memcpy(&h, b, sizeof(h));
	free(b);
	return h;
}

/* Open must fail with PKV_ECORRUPT, and the log must name @name. */
static void dmg_expect_corrupt(const char *name, const char *what)
{
	struct tu_log log;
	pkv_options o;
	pkv *db = NULL;
	int r;

	tu_log_init(&log);
	opts_small(&o, 64u << 10);
	o.log_fn = tu_log_fn;
	o.log_ctx = &log;
	r = pkv_open(tu_db, &o, &db);
	if (r == 0)
		pkv_close(db);
	cr_assert_eq(r, PKV_ECORRUPT, "%s: open gave %d (%s), expected PKV_ECORRUPT", what, r,
		     pkv_strerror(r));
	cr_assert(tu_log_contains(&log, name), "%s: the log does not name %s:\n%s", what, name,
		  log.text);
}

static const char *dmg_name(uint64_t seq)
{
	static char name[64];

	snprintf(name, sizeof(name), "%020" PRIu64 ".snap", seq);
	return name;
}

Test(snapshot_corrupt, truncated, .init = dmg_setup, .fini = dmg_teardown, .timeout = 60)
{
	char snap[PATH_MAX];
	struct snap_hdr_disk h;
	off_t size, cuts[7];

	dmg_fresh(snap);
	h = dmg_header(snap);
	size = tu_file_size(snap);
	cuts[0] = 0;
	cuts[1] = 100;
	cuts[2] = 4095;
	cuts[3] = 4096;
	cuts[4] = (off_t)(h.data_off + h.data_bytes / 2);
	cuts[5] = (off_t)(h.index_off + h.nslots * 4);
	cuts[6] = size - 1;
	for (int i = 0; i < 7; i++) {
		char what[64];

		dmg_fresh(snap);
		tu_truncate(snap, cuts[i]);
		snprintf(what, sizeof(what), "truncated to %lld bytes", (long long)cuts[i]);
		dmg_expect_corrupt(dmg_name(DMG_SEQ), what);
	}
}

Test(snapshot_corrupt, header_bytes, .init = dmg_setup, .fini = dmg_teardown, .timeout = 60)
{
	char snap[PATH_MAX];

	for (int i = 0; i < 128; i++) {
		unsigned char b;
		char what[64];
		size_t len;
		unsigned char *all;

		dmg_fresh(snap);
		all = tu_read_file(snap, &len);
		b = all[i] ^ 0xa5;
		free(all);
		tu_write_at(snap, i, &b, 1);
		snprintf(what, sizeof(what), "header byte %d flipped", i);
		dmg_expect_corrupt(dmg_name(DMG_SEQ), what);
	}
}

Test(snapshot_corrupt, unknown_version, .init = dmg_setup, .fini = dmg_teardown, .timeout = 30)
{
	char snap[PATH_MAX];
	struct snap_hdr_disk h;

	dmg_fresh(snap);
	h = dmg_header(snap);
	h.version = SNAP_VERSION + 1;
	h.hdr_crc = pkv__crc32c(0, &h, offsetof(struct snap_hdr_disk, hdr_crc));
	tu_write_at(snap, 0, &h, sizeof(h));
	dmg_expect_corrupt(dmg_name(DMG_SEQ), "a newer version with a valid header checksum");
}

Test(snapshot_corrupt, garbage_file, .init = dmg_setup, .fini = dmg_teardown, .timeout = 30)
{
	char snap[PATH_MAX], garbage[PATH_MAX];
	unsigned char buf[8192];
	uint64_t rs = 123;

	for (size_t i = 0; i < sizeof(buf); i += 8) {
		uint64_t x = tu_rand(&rs);
		memcpy(buf + i, &x, 8);
	}
	/* Newer than the store's snapshot: it is the one to load. */
	dmg_fresh(snap);
	snap_file(garbage, tu_db, 123);
	write_new_file(garbage, buf, sizeof(buf));
	dmg_expect_corrupt(dmg_name(123), "garbage 123.snap next to 100.snap");

	/* The only snapshot. */
	dmg_fresh(snap);
	cr_assert_eq(unlink(snap), 0);
	write_new_file(garbage, buf, sizeof(buf));
	dmg_expect_corrupt(dmg_name(123), "garbage 123.snap alone");

	/* Shorter than a header. */
	dmg_fresh(snap);
	write_new_file(garbage, buf, 10);
	dmg_expect_corrupt(dmg_name(123), "10 bytes of garbage as 123.snap");

	/* A name that is not <20 digits>.snap. */
	dmg_fresh(snap);
	tu_fmt(garbage, sizeof(garbage), "%s/snap/garbage.snap", tu_db);
	write_new_file(garbage, buf, sizeof(buf));
	dmg_expect_corrupt("garbage.snap", "snap/garbage.snap");
}

/*
 * Damage under a valid header. Opening checks only the header (N.2), so the open may succeed; then
 * pkv_verify must find the damage, and every get must give the right value or PKV_ECORRUPT (N.4:
 * a probe answers only from index pages and records that match their CRCs): never wrong data, and
 * never PKV_NOTFOUND for a key that is there.
 * A compaction over the damaged base must not launder the damage into a fresh file either.
 */
enum dmg_kind {
	DMG_VALUE_BYTE, /* a byte in the middle of a record's value */
	DMG_KEY_BYTE, /* a byte of a record's key */
	DMG_VLEN, /* a record's value length + 1 */
	DMG_VLEN_HUGE, /* a record's value length far past the file */
	DMG_KLEN, /* a record's key length - 1 */
	DMG_SEQ_FIELD, /* a record's sequence number beyond the snapshot's */
	DMG_SLOT_OFFSET, /* an index slot pointing at another record */
	DMG_SLOT_ZERO, /* an index slot emptied */
	DMG_INDEX_ZERO, /* the whole index zeroed */
	DMG_INDEX_RANDOM, /* the whole index random */
	DMG_DATA_RANDOM, /* the whole data region random */
	DMG_NKINDS
};

static const char *const dmg_kind_names[DMG_NKINDS] = {
	"value byte",  "key byte",    "vlen + 1",     "huge vlen",    "klen - 1",    "record seq",
	"slot offset", "slot zeroed", "index zeroed", "index random", "data random",
};

/* Offset of the record that holds the value of id @want in the snapshot @b. */
static uint64_t dmg_find_record(const unsigned char *b, const struct snap_hdr_disk *h,
				uint32_t want)
{
	char k[128];
	size_t kl = key_of(k, want);

	for (uint64_t off = h->data_off; off < h->data_off + h->data_bytes;) {
		struct snap_rec_disk r;

		memcpy(&r, b + off, SNAP_REC_HDR);
		if (r.klen == kl && memcmp(b + off + SNAP_REC_HDR, k, kl) == 0)
			return off;
		off += SNAP_REC_SIZE(r.klen, r.vlen);
	}
	cr_assert_fail("id %u not found in the snapshot", want);
	return 0;
}

static void dmg_apply(const char *snap, enum dmg_kind kind)
{
	size_t len;
	unsigned char *b = tu_read_file(snap, &len);
	struct snap_hdr_disk h;
	uint64_t rs = 99 + (uint64_t)kind, off, *slots;
	struct snap_rec_disk r;
	uint32_t id = 0;

	memcpy(&h, b, sizeof(h));
	/* A record with a value of at least 8 bytes, so every kind of damage has a target. */
	do {
		off = dmg_find_record(b, &h, id++);
		memcpy(&r, b + off, SNAP_REC_HDR);
	} while (r.vlen < 8);
	slots = (uint64_t *)(b + h.index_off);

	switch (kind) {
	case DMG_VALUE_BYTE:
		b[off + SNAP_REC_HDR + r.klen + r.vlen / 2] ^= 0x20;
		break;
	case DMG_KEY_BYTE:
		b[off + SNAP_REC_HDR + 1] ^= 0x01;
		break;
	case DMG_VLEN:
		r.vlen += 1;
		memcpy(b + off, &r, SNAP_REC_HDR);
		break;
	case DMG_VLEN_HUGE:
		r.vlen = 0x7fffffff;
		memcpy(b + off, &r, SNAP_REC_HDR);
		break;
	case DMG_KLEN:
		r.klen -= 1;
		memcpy(b + off, &r, SNAP_REC_HDR);
		break;
	case DMG_SEQ_FIELD:
		r.seq = h.seq + 1000;
		memcpy(b + off, &r, SNAP_REC_HDR);
		break;
	case DMG_SLOT_OFFSET:
	case DMG_SLOT_ZERO:
		/* The slot that points at our record. */
		for (uint64_t i = 0; i < h.nslots; i++) {
			if ((slots[i] & SNAP_OFF_MASK) * 8 != off)
				continue;
			if (kind == DMG_SLOT_ZERO)
				slots[i] = 0;
			else
				slots[i] = (slots[i] & ~SNAP_OFF_MASK) | (h.data_off / 8);
		}
		break;
	case DMG_INDEX_ZERO:
		memset(slots, 0, h.nslots * 8);
		break;
	case DMG_INDEX_RANDOM:
		for (uint64_t i = 0; i < h.nslots; i++)
			slots[i] = tu_rand(&rs);
		break;
	case DMG_DATA_RANDOM:
		for (uint64_t i = 0; i + 8 <= h.data_bytes; i += 8) {
			uint64_t x = tu_rand(&rs);
			memcpy(b + h.data_off + i, &x, 8);
		}
		break;
	default:
		cr_assert_fail("bad damage kind");
	}
	tu_write_at(snap, 0, b, len);
	free(b);
}

/* Every get gives the right value or PKV_ECORRUPT (or PKV_NOTFOUND for an absent key). */
static void dmg_check_gets(pkv *db, const char *what, const char *when)
{
	int wrong = 0, missing = 0, corrupt = 0;
	unsigned char v[512];
	char first[160] = "", k[128];

	for (uint32_t id = 0; id < DMG_KEYS + 50; id++) {
		size_t kl = key_of(k, id), vl = 0;
		const struct tu_model_ent *e = tu_model_find(&dmg_model, k, kl);
		int r = pkv_get(db, k, kl, v, sizeof(v), &vl);

		if (r == PKV_NOTFOUND || r == PKV_ECORRUPT) {
			missing += r == PKV_NOTFOUND && e != NULL;
			corrupt += r == PKV_ECORRUPT;
			continue;
		}
		if (r == 0 && e && e->present && vl == e->vlen && memcmp(v, e->val, vl) == 0)
			continue;
		if (wrong++ == 0)
			snprintf(first, sizeof(first),
				 "id %u: get gave %d, %zu bytes (expected %s, %zu bytes)", id, r,
				 vl, e ? "present" : "absent", e ? e->vlen : 0);
	}
	cr_log_info("%s, %s: %d of %u keys missing, %d reported corrupt", what, when, missing,
		    DMG_KEYS, corrupt);
	cr_assert_eq(wrong, 0, "%s, %s: %d gets returned wrong data; the first: %s", what, when,
		     wrong, first);
	cr_assert_eq(missing, 0, "%s, %s: %d present keys read as PKV_NOTFOUND", what, when,
		     missing);
}

static void regions_body(enum dmg_kind kd);

#define REGION_TEST(name, kind)                                                              \
	Test(snapshot_corrupt, name, .init = dmg_setup, .fini = dmg_teardown, .timeout = 30) \
	{                                                                                    \
		regions_body(kind);                                                          \
	}

REGION_TEST(value_byte, DMG_VALUE_BYTE)
REGION_TEST(key_byte, DMG_KEY_BYTE)
REGION_TEST(vlen, DMG_VLEN)
REGION_TEST(vlen_huge, DMG_VLEN_HUGE)
REGION_TEST(klen, DMG_KLEN)
REGION_TEST(seq_field, DMG_SEQ_FIELD)
REGION_TEST(slot_offset, DMG_SLOT_OFFSET)
REGION_TEST(slot_zero, DMG_SLOT_ZERO)
REGION_TEST(index_zero, DMG_INDEX_ZERO)
REGION_TEST(index_random, DMG_INDEX_RANDOM)
REGION_TEST(data_random, DMG_DATA_RANDOM)

static void regions_body(enum dmg_kind kd)
{
	const char *what = dmg_kind_names[kd];
	char snap[PATH_MAX];
	struct tu_log log;
	pkv_options o;
	pkv *db = NULL;
	int r;

	dmg_fresh(snap);
	dmg_apply(snap, kd);
	tu_log_init(&log);
	opts_small(&o, 64u << 10);
	o.log_fn = tu_log_fn;
	o.log_ctx = &log;
	r = pkv_open(tu_db, &o, &db);
	if (r == PKV_ECORRUPT) {
		cr_assert(tu_log_contains(&log, dmg_name(DMG_SEQ)),
			  "%s: the log does not name the snapshot:\n%s", what, log.text);
		return;
	}
	cr_assert_eq(r, 0, "%s: open gave %s", what, pkv_strerror(r));
	r = pkv_verify(db);
	cr_expect_eq(r, PKV_ECORRUPT, "%s: pkv_verify gave %d (%s), expected PKV_ECORRUPT", what, r,
		     pkv_strerror(r));
	if (r == PKV_ECORRUPT)
		cr_expect(tu_log_contains(&log, dmg_name(DMG_SEQ)),
			  "%s: pkv_verify's log does not name the snapshot:\n%s", what, log.text);
	dmg_check_gets(db, what, "after open");

	/*
	 * C.8 with damage: a compaction (one write first, or it has nothing to do) refuses with
	 * PKV_ECORRUPT, or writes only intact records.
	 */
	r = pkv_put(db, "after", 5, "damage", 6);
	cr_assert_eq(r, 0, "%s: put: %s", what, pkv_strerror(r));
	r = pkv_compact(db);
	cr_assert(r == 0 || r == PKV_ECORRUPT, "%s: pkv_compact gave %d (%s)", what, r,
		  pkv_strerror(r));
	if (r == 0) {
		cr_assert_eq(pkv_verify(db), 0, "%s: the snapshot written over damage", what);
		dmg_check_gets(db, what, "after compaction");
	}
	pkv_close(db);
}

/* ---- 6. a compaction that fails at any one operation ----------------------------------------- */

/*
 * A pristine store (one lane, 64 KiB segments) with a snapshot and a WAL that rolled after it, so
 * that a compaction writes a snapshot, syncs the WAL, retires segments and drops the old snapshot.
 * Each iteration opens a fresh copy with faultfs installed, writes a few unsynced puts (so the
 * compaction has a WAL sync to do, C.3), arms one fault in this thread, and compacts.
 */
static char cf_pristine[PATH_MAX];
static struct tu_model cf_model;
static uint32_t cf_next_id;

static void cf_opts(pkv_options *o, struct tu_log *log)
{
	opts_small(o, 64u << 10);
	o->wal_lanes = 1;
	o->log_fn = log ? tu_log_fn : NULL;
	o->log_ctx = log;
}

static void cf_setup(void)
{
	pkv_options o;
	pkv *db;
	uint64_t rs = 4242;

	tu_setup();
	tu_model_init(&cf_model);
	cf_opts(&o, NULL);
	db = tu_open(tu_db, &o);
	for (uint32_t id = 0; id < 400; id++)
		put_id(db, &cf_model, id, 0);
	cr_assert_eq(pkv_compact(db), 0);
	for (uint32_t i = 0; i < 1600; i++) {
		uint32_t id = (uint32_t)(tu_rand(&rs) % 600);

		if (i % 4 == 3)
			del_id(db, &cf_model, id);
		else
			put_id(db, &cf_model, id, i + 1);
	}
	/* About 300 KiB of WAL after the snapshot: at least four full 64 KiB segments. */
	cr_assert_geq(tu_stats(db).wal_segments, 3,
		      "the WAL should have rolled (%" PRIu64 " segments)",
		      tu_stats(db).wal_segments);
	tu_close(db);
	cf_next_id = 1000;
	tu_path(cf_pristine, "pristine");
	tu_copy_tree(tu_db, cf_pristine);
	ffs_install();
}

static void cf_teardown(void)
{
	ffs_uninstall();
	tu_model_free(&cf_model);
	tu_teardown();
}

/* Open a fresh copy of the pristine store and add 5 unsynced puts; the model follows. */
static pkv *cf_fresh(struct tu_model *m, struct tu_log *log)
{
	pkv_options o;
	pkv *db;

	tu_rm_rf(tu_db);
	tu_copy_tree(cf_pristine, tu_db);
	tu_model_free(m);
	tu_model_init(m);
	for (size_t i = 0; i < cf_model.cap; i++)
		if (cf_model.tab[i].used && cf_model.tab[i].present)
			tu_model_put(m, cf_model.tab[i].key, cf_model.tab[i].klen,
				     cf_model.tab[i].val, cf_model.tab[i].vlen);
	cf_opts(&o, log);
	db = tu_open(tu_db, &o);
	for (uint32_t id = cf_next_id; id < cf_next_id + 5; id++)
		put_id(db, m, id, 0);
	return db;
}

/* Reopen with faults off; the state, a clean verify, no debris; compact again; reopen. */
static void cf_final_check(pkv *db, struct tu_model *m, const char *what)
{
	pkv_options o;
	pkv_stats st;

	ffs_disarm();
	(void)pkv_close(db); /* may report the sync error that stopped writes (S.3) */
	cf_opts(&o, NULL);
	db = tu_open(tu_db, &o);
	tu_model_assert(m, db, what);
	cr_assert_eq(pkv_verify(db), 0, "%s: verify after reopen", what);
	cr_assert_eq(count_files(tu_db, "snap", ".tmp", NULL, 0), 0, "%s: snap/*.tmp left", what);
	cr_assert_eq(pkv_compact(db), 0, "%s: compaction after reopen", what);
	st = tu_stats(db);
	tu_close(db);
	db = tu_open(tu_db, &o);
	assert_one_snapshot(tu_db, st.snapshot_seq);
	tu_model_assert(m, db, what);
	tu_close(db);
	assert_no_wal_tmp(tu_db);
}

/* Names and sizes of every file under @dir, appended to @out (a fingerprint of the tree). */
static void tree_listing(const char *dir, char *out, size_t n)
{
	struct dirent *e;
	DIR *d = opendir(dir);

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		char path[PATH_MAX];
		struct stat st;
		size_t used = strlen(out);

		if (e->d_name[0] == '.')
			continue;
		tu_fmt(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (lstat(path, &st) != 0)
			continue; /* gone meanwhile: the caller compares two listings */
		snprintf(out + used, n - used, "%s:%lld\n", path, (long long)st.st_size);
		if (S_ISDIR(st.st_mode))
			tree_listing(path, out, n);
	}
	closedir(d);
}

/* Copy the tree @src to @dst, skipping files that vanish while it runs. */
static void copy_tree_live(const char *src, const char *dst)
{
	struct dirent *e;
	DIR *d = opendir(src);

	cr_assert_not_null(d, "opendir %s: %s", src, strerror(errno));
	cr_assert_eq(mkdir(dst, 0755), 0, "mkdir %s: %s", dst, strerror(errno));
	while ((e = readdir(d)) != NULL) {
		char s[PATH_MAX], t[PATH_MAX];
		struct stat st;
		size_t len;
		unsigned char *buf;
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		tu_fmt(s, sizeof(s), "%s/%s", src, e->d_name);
		tu_fmt(t, sizeof(t), "%s/%s", dst, e->d_name);
		if (lstat(s, &st) != 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			copy_tree_live(s, t);
			continue;
		}
		f = fopen(s, "rb");
		if (f == NULL)
			continue;
		buf = malloc((size_t)st.st_size + 1);
		cr_assert_not_null(buf);
		len = fread(buf, 1, (size_t)st.st_size, f);
		fclose(f);
		write_new_file(t, buf, len);
		free(buf);
	}
	closedir(d);
}

/*
 * What a process crash right now would leave must hold the model too (C.6, C.8: the files on disk
 * stay authoritative whatever the compaction got to). The files of the open store are copied
 * with read(), which sees what its WAL mappings hold (the page cache), and the copy is opened.
 * The store's background thread may still be making a spare segment (the compaction rolled the
 * WAL); a copy is kept only if the tree's names and sizes were the same before and after it, so
 * it is one state of the directory, not a mix of two.
 */
static void cf_check_crash_image(const struct tu_model *m, const char *what)
{
	static char before[1 << 16], after[1 << 16];
	char image[PATH_MAX], why[256];
	pkv_options o;
	pkv *db;
	int tries = 0;

	tu_path(image, "crash-image");
	do {
		cr_assert_lt(tries++, 1000, "%s: the store's files never held still", what);
		tu_rm_rf(image);
		before[0] = after[0] = '\0';
		tree_listing(tu_db, before, sizeof(before));
		copy_tree_live(tu_db, image);
		tree_listing(tu_db, after, sizeof(after));
		if (strcmp(before, after) != 0)
			usleep(1000);
	} while (strcmp(before, after) != 0);
	cf_opts(&o, NULL);
	db = tu_open(image, &o);
	cr_assert(tu_model_check(m, db, why, sizeof(why)), "%s, then a crash: %s", what, why);
	tu_close(db);
	tu_rm_rf(image);
}

/* Counts, per kind, the operations of one thread (a pre hook). */
struct cf_census {
	pthread_t thread;
	uint64_t per[FFS_NOPS];
};

static void cf_census_hook(void *ctx, const struct ffs_call *c)
{
	struct cf_census *cs = ctx;

	if (pthread_equal(cs->thread, pthread_self()))
		cs->per[c->op]++;
}

/*
 * How many operations of each kind this thread performs in a clean compaction of the fresh store;
 * the largest count over a few runs (see cf_each_op_fails).
 */
static void cf_calibrate(uint64_t *per)
{
	for (int run = 0; run < 3; run++) {
		struct cf_census cs = { .thread = pthread_self() };
		struct ffs_hooks h = { .pre = cf_census_hook, .ctx = &cs };
		struct tu_model m;
		pkv *db;

		tu_model_init(&m);
		db = cf_fresh(&m, NULL);
		ffs_set_hooks(&h);
		cr_assert_eq(pkv_compact(db), 0);
		ffs_set_hooks(NULL);
		cf_final_check(db, &m, "calibration");
		tu_model_free(&m);
		for (int k = 0; k < FFS_NOPS; k++)
			if (cs.per[k] > per[k])
				per[k] = cs.per[k];
	}
	cr_assert_gt(per[FFS_PWRITE], 0, "a compaction should write");
	cr_assert_gt(per[FFS_RENAME], 0, "a compaction should rename");
}

/*
 * Fail the j-th operation of kind k of this thread's compaction, for every (k, j). The counts are
 * not quite fixed: the compaction rolls the WAL and syncs it (C.3), and the store's background
 * thread may run that sync round first, taking its fdatasync, munmap and close off this thread.
 * A fault past the end of a shorter run injects nothing; that run must then simply succeed.
 */
static void cf_each_op_fails(int err)
{
	uint64_t per[FFS_NOPS] = { 0 }, runs = 0, failed = 0, tolerated = 0, missed = 0;
	struct tu_model m;

	cf_calibrate(per);
	tu_model_init(&m);
	for (int k = 0; k < FFS_NOPS; k++) {
		for (uint64_t j = 1; j <= per[k]; j++) {
			struct ffs_fault f = { .action = FFS_FAIL,
					       .nth = j,
					       .kinds = FFS_BIT(k),
					       .err = err,
					       .this_thread = true };
			struct tu_log log;
			pkv_stats before, after;
			uint64_t injected;
			char what[160], name[256];
			pkv *db;
			int r, nsnap;

			runs++;
			tu_log_init(&log);
			db = cf_fresh(&m, &log);
			before = tu_stats(db);
			injected = ffs_injected();
			ffs_arm(&f);
			r = pkv_compact(db);
			ffs_disarm();
			after = tu_stats(db);
			injected = ffs_injected() - injected;
			snprintf(what, sizeof(what), "%s at %s #%" PRIu64 " of %" PRIu64 "%s",
				 strerror(err), ffs_op_name(k), j, per[k],
				 injected ? "" : " (not reached)");
			missed += injected == 0;

			if (r == 0) {
				/*
				 * Accepted only if the compaction really completed: a failure to
				 * remove what the new snapshot covers is reported, not returned
				 * (C.6).
				 */
				tolerated += injected;
				if (injected)
					cr_log_info("tolerated: %s", what);
				cr_assert_eq(after.compactions, before.compactions + 1,
					     "%s: returned 0", what);
				cr_assert_eq(after.snapshot_seq, after.last_seq, "%s", what);
			} else {
				failed++;
				cr_assert_eq(injected, 1, "%s: compaction failed with no fault: %s",
					     what, pkv_strerror(r));
				/* C.8: nothing that matters changed, and the temporary file is
				 * gone. */
				cr_expect_eq(r, -err,
					     "%s: pkv_compact gave %d (%s), expected the "
					     "injected error",
					     what, r, pkv_strerror(r));
				cr_assert_eq(after.compactions, before.compactions, "%s", what);
				cr_assert_eq(after.snapshot_seq, before.snapshot_seq, "%s", what);
				cr_assert_eq(count_files(tu_db, "snap", ".tmp", NULL, 0), 0,
					     "%s: snap/*.tmp left behind by the failed compaction",
					     what);
				/* C.8: and the old snapshot is still the newest file, so that a
				 * restart does not take up the one that failed either. */
				nsnap = count_files(tu_db, "snap", ".snap", name, sizeof(name));
				cr_expect(
					nsnap == 1 &&
						strcmp(name, dmg_name(before.snapshot_seq)) == 0,
					"%s: the failed compaction left %d snapshot files, one of them "
					"%s (expected only %s)",
					what, nsnap, name, dmg_name(before.snapshot_seq));
			}
			tu_model_assert(&m, db, what);
			cr_assert_eq(pkv_verify(db), 0, "%s: verify", what);
			cf_check_crash_image(&m, what);

			/* With faults off, a compaction succeeds, unless a failed WAL sync stopped
			 * writes for good (sync.c S.3): then only a reopen clears it. */
			r = pkv_compact(db);
			if (after.readonly_reason != 0)
				cr_assert_eq(r, PKV_EREADONLY,
					     "%s: compaction on a store that "
					     "refuses writes gave %d",
					     what, r);
			else
				cr_assert_eq(r, 0, "%s: the next compaction gave %s", what,
					     pkv_strerror(r));
			tu_model_assert(&m, db, what);
			cf_final_check(db, &m, what);
		}
	}
	cr_log_info("%s: %" PRIu64 " runs; %" PRIu64 " failed the compaction, %" PRIu64
		    " faults were tolerated, %" PRIu64 " not reached",
		    strerror(err), runs, failed, tolerated, missed);
	cr_assert_gt(failed, 0);
	tu_model_free(&m);
}

Test(snapshot_faults, each_op_enospc, .init = cf_setup, .fini = cf_teardown, .timeout = 120)
{
	cf_each_op_fails(ENOSPC);
}

Test(snapshot_faults, each_op_eio, .init = cf_setup, .fini = cf_teardown, .timeout = 120)
{
	cf_each_op_fails(EIO);
}

/* Every write of the compaction comes back short: pkv__fs_pwrite_all retries, nothing is lost. */
Test(snapshot_faults, short_writes, .init = cf_setup, .fini = cf_teardown, .timeout = 60)
{
	struct ffs_fault f = { .action = FFS_SHORT,
			       .nth = 1,
			       .kinds = FFS_BIT(FFS_PWRITE),
			       .persistent = true,
			       .this_thread = true };
	struct tu_model m;
	pkv *db;

	tu_model_init(&m);
	db = cf_fresh(&m, NULL);
	ffs_arm(&f);
	cr_assert_eq(pkv_compact(db), 0);
	ffs_disarm();
	cr_assert_gt(ffs_injected(), 2, "the compaction should have written several times");
	tu_model_assert(&m, db, "after a compaction of short writes");
	cr_assert_eq(pkv_verify(db), 0);
	cf_final_check(db, &m, "short writes");
	tu_model_free(&m);
}
