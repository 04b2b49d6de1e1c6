/* SPDX-License-Identifier: MIT */
/*
 * test_api.c - every public function and every error path of pkv.h, and what survives a close.
 *
 * Only pkv.h (through testutil.h, which adds nothing of src/). Store directories are created
 * by pkv_open itself under the fixture's temp dir, since "created if missing" is part of the
 * contract.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

#define T_TIMEOUT 120

/* A handle value that pkv_open must leave alone when it fails ("set only on success"). */
#define SENTINEL ((pkv *)(uintptr_t)0x5a5a5a5a)

static int put_s(pkv *db, const char *k, const char *v)
{
	return pkv_put(db, k, strlen(k), v, strlen(v));
}

static int get_s(pkv *db, const char *k, char *buf, size_t cap, size_t *vlen)
{
	return pkv_get(db, k, strlen(k), buf, cap, vlen);
}

/* Count the files in @dir/@sub whose names end with @suffix (-1 if the directory is missing). */
static int count_files(const char *dir, const char *sub, const char *suffix)
{
	char path[PATH_MAX];
	DIR *d;
	struct dirent *e;
	int n = 0;

	tu_fmt(path, sizeof(path), "%s/%s", dir, sub);
	d = opendir(path);
	if (!d)
		return -1;
	while ((e = readdir(d))) {
		size_t l = strlen(e->d_name), s = strlen(suffix);

		if (l > s && !strcmp(e->d_name + l - s, suffix))
			n++;
	}
	closedir(d);
	return n;
}

/* ---- options ------------------------------------------------------------------------------- */

TestSuite(options, .init = tu_setup, .fini = tu_teardown, .timeout = T_TIMEOUT);

Test(options, defaults)
{
	pkv_options o;

	memset(&o, 0xa5, sizeof(o));
	pkv_options_default(&o);
	cr_expect_eq(o.durability, PKV_DURABLE_PROCESS);
	cr_expect_eq(o.sync_interval_ms, 100);
	cr_expect_eq(o.wal_lanes, 0);
	cr_expect_eq(o.wal_segment_bytes, (size_t)16 << 20);
	cr_expect_eq(o.capacity_hint, 0);
	cr_expect_eq(o.shards, 64);
	cr_expect_eq(o.flags, 0);
	cr_expect_null(o.log_fn);
	cr_expect_null(o.log_ctx);
	pkv_options_default(NULL); /* ignored, must not crash */
}

Test(options, null_db_out)
{
	pkv_options o;

	pkv_options_default(&o);
	cr_expect_eq(pkv_open(tu_db, &o, NULL), PKV_EINVAL);
	cr_expect_eq(pkv_open(tu_db, NULL, NULL), PKV_EINVAL);
	cr_expect_eq(pkv_open(NULL, NULL, NULL), PKV_EINVAL);
}

/* One option changed from the defaults: must be refused with PKV_EINVAL, on disk and in memory. */
struct bad_opt {
	const char *what;
	void (*set)(pkv_options *o);
};

static void lanes_65(pkv_options *o)
{
	o->wal_lanes = 65;
}
static void lanes_huge(pkv_options *o)
{
	o->wal_lanes = ~0u;
}
static void shards_3(pkv_options *o)
{
	o->shards = 3;
}
static void shards_48(pkv_options *o)
{
	o->shards = 48;
}
static void shards_8192(pkv_options *o)
{
	o->shards = 8192;
}
static void seg_small(pkv_options *o)
{
	o->wal_segment_bytes = (64u << 10) - 1;
}
static void seg_big(pkv_options *o)
{
	o->wal_segment_bytes = ((size_t)1 << 30) + 1;
}
static void dur_3(pkv_options *o)
{
	o->durability = (enum pkv_durability)3;
}
static void dur_neg(pkv_options *o)
{
	o->durability = (enum pkv_durability) - 1;
}
static void periodic_huge(pkv_options *o)
{
	o->durability = PKV_DURABLE_PERIODIC;
	o->sync_interval_ms = 3600001;
}

static const struct bad_opt bad_opts[] = {
	{ "wal_lanes 65", lanes_65 },
	{ "wal_lanes UINT_MAX", lanes_huge },
	{ "shards 3", shards_3 },
	{ "shards 48", shards_48 },
	{ "shards 8192", shards_8192 },
	{ "wal_segment_bytes 64 KiB - 1", seg_small },
	{ "wal_segment_bytes 1 GiB + 1", seg_big },
	{ "durability 3", dur_3 },
	{ "durability -1", dur_neg },
	{ "PERIODIC with sync_interval_ms 3,600,001", periodic_huge },
};

Test(options, bad_options_are_einval)
{
	for (size_t i = 0; i < sizeof(bad_opts) / sizeof(bad_opts[0]); i++) {
		pkv_options o;
		pkv *db = SENTINEL;
		int rc;

		pkv_options_default(&o);
		bad_opts[i].set(&o);
		rc = pkv_open(tu_db, &o, &db);
		cr_expect_eq(rc, PKV_EINVAL, "%s: on disk got %d (%s)", bad_opts[i].what, rc,
			     pkv_strerror(rc));
		cr_expect_eq(db, SENTINEL, "%s: db_out written on failure", bad_opts[i].what);
		if (rc == 0 && db != SENTINEL)
			pkv_close(db);
		db = SENTINEL;
		rc = pkv_open(NULL, &o, &db);
		cr_expect_eq(rc, PKV_EINVAL, "%s: in memory got %d (%s)", bad_opts[i].what, rc,
			     pkv_strerror(rc));
		if (rc == 0 && db != SENTINEL)
			pkv_close(db);
	}
	/* Refused opens must not leave the directory locked or half-made. */
	pkv_close(tu_open(tu_db, NULL));
}

/* pkv.h: a tuning field left 0 takes its default, so a zeroed struct with a mode is valid. */
Test(options, zero_fields_take_defaults)
{
	static const enum pkv_durability modes[] = { PKV_DURABLE_PROCESS, PKV_DURABLE_POWER };

	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		pkv_options o;
		pkv *db = NULL;
		size_t vlen = 0;
		char buf[8];
		int rc;

		memset(&o, 0, sizeof(o));
		o.durability = modes[i];
		rc = pkv_open(tu_db, &o, &db);
		cr_assert_eq(rc, 0, "zeroed options, mode %d: %s", (int)modes[i], pkv_strerror(rc));
		cr_assert_eq(pkv_put(db, "z", 1, "0", 1), 0);
		cr_assert_eq(pkv_get(db, "z", 1, buf, sizeof(buf), &vlen), 0);
		cr_assert_eq(vlen, 1);
		cr_assert_eq(pkv_close(db), 0);
	}
}

Test(options, boundary_values_are_accepted)
{
	pkv_options o;

	/* The extremes of every documented range; in memory where the size would be wasteful. */
	pkv_options_default(&o);
	o.wal_lanes = 64;
	o.shards = 4096;
	o.wal_segment_bytes = 64u << 10;
	tu_close(tu_open(tu_db, &o));

	pkv_options_default(&o);
	o.shards = 1;
	o.wal_lanes = 1;
	o.durability = PKV_DURABLE_PERIODIC;
	o.sync_interval_ms = 1;
	tu_close(tu_open(tu_db, &o));

	pkv_options_default(&o);
	o.wal_segment_bytes = (size_t)1 << 30;
	o.durability = PKV_DURABLE_PERIODIC;
	o.sync_interval_ms = 3600000;
	tu_close(tu_open(NULL, &o));

	/* An interval of 0 takes the default, in every mode. */
	pkv_options_default(&o);
	o.sync_interval_ms = 0;
	tu_close(tu_open(NULL, &o));
	o.durability = PKV_DURABLE_POWER;
	tu_close(tu_open(NULL, &o));
	o.durability = PKV_DURABLE_PERIODIC;
	tu_close(tu_open(tu_db, &o));

	/* A zero-initialized struct with only the durability set is valid in every mode. */
	for (int m = 0; m < 3; m++) {
		pkv_options z;

		memset(&z, 0, sizeof(z));
		z.durability = tu_modes[m];
		tu_close(tu_open(tu_db, &z));
	}

	/* opts NULL means the defaults. */
	tu_close(tu_open(tu_db, NULL));
}

/* ---- argument checks ----------------------------------------------------------------------- */

TestSuite(args, .init = tu_setup, .fini = tu_teardown, .timeout = T_TIMEOUT);

Test(args, put_get_del_refuse_bad_arguments)
{
	pkv *db = tu_open(tu_db, NULL);
	char buf[16];
	size_t vlen = 7;

	cr_assert_eq(put_s(db, "k", "v"), 0);

	cr_expect_eq(pkv_put(NULL, "k", 1, "v", 1), PKV_EINVAL);
	cr_expect_eq(pkv_put(db, NULL, 1, "v", 1), PKV_EINVAL);
	cr_expect_eq(pkv_put(db, "k", 0, "v", 1), PKV_EINVAL);
	cr_expect_eq(pkv_put(db, NULL, 0, "v", 1), PKV_EINVAL);
	cr_expect_eq(pkv_put(db, "k", 1, NULL, 1), PKV_EINVAL);

	cr_expect_eq(pkv_get(NULL, "k", 1, buf, sizeof(buf), &vlen), PKV_EINVAL);
	cr_expect_eq(pkv_get(db, NULL, 1, buf, sizeof(buf), &vlen), PKV_EINVAL);
	cr_expect_eq(pkv_get(db, "k", 0, buf, sizeof(buf), &vlen), PKV_EINVAL);
	cr_expect_eq(pkv_get(db, "k", 1, buf, sizeof(buf), NULL), PKV_EINVAL);
	cr_expect_eq(pkv_get(db, "k", 1, NULL, 4, &vlen), PKV_EINVAL);

	cr_expect_eq(pkv_del(NULL, "k", 1), PKV_EINVAL);
	cr_expect_eq(pkv_del(db, NULL, 1), PKV_EINVAL);
	cr_expect_eq(pkv_del(db, "k", 0), PKV_EINVAL);

	cr_expect_eq(pkv_put_ex(NULL, "k", 1, "v", 1, 0), PKV_EINVAL);
	cr_expect_eq(pkv_put_ex(db, NULL, 1, "v", 1, 0), PKV_EINVAL);
	cr_expect_eq(pkv_put_ex(db, "k", 0, "v", 1, 0), PKV_EINVAL);
	cr_expect_eq(pkv_put_ex(db, "k", 1, NULL, 1, 0), PKV_EINVAL);
	cr_expect_eq(pkv_del_ex(NULL, "k", 1, 0), PKV_EINVAL);
	cr_expect_eq(pkv_del_ex(db, NULL, 1, 0), PKV_EINVAL);
	cr_expect_eq(pkv_del_ex(db, "k", 0, 0), PKV_EINVAL);

	/* Nothing above changed anything. */
	cr_expect_eq(get_s(db, "k", buf, sizeof(buf), &vlen), 0);
	cr_expect_eq(vlen, 1);
	cr_expect_eq(buf[0], 'v');
	cr_expect_eq(tu_stats(db).puts, 1);
	cr_expect_eq(tu_stats(db).dels, 0);
	cr_expect_eq(tu_stats(db).keys, 1);
	tu_close(db);
}

Test(args, null_handles_elsewhere)
{
	pkv_stats st;
	pkv *db;

	cr_expect_eq(pkv_close(NULL), 0);
	cr_expect_eq(pkv_sync(NULL), PKV_EINVAL);
	cr_expect_eq(pkv_compact(NULL), PKV_EINVAL);
	cr_expect_eq(pkv_get_stats(NULL, &st), PKV_EINVAL);
	db = tu_open(tu_db, NULL);
	cr_expect_eq(pkv_get_stats(db, NULL), PKV_EINVAL);
	tu_close(db);
}

Test(args, empty_values)
{
	pkv *db = tu_open(tu_db, NULL);
	char buf[4] = { 'x', 'x', 'x', 'x' };
	size_t vlen = 99;

	/* NULL with length 0 is the empty value, and so is a non-NULL pointer with length 0. */
	cr_assert_eq(pkv_put(db, "a", 1, NULL, 0), 0);
	cr_assert_eq(pkv_put(db, "b", 1, "ignored", 0), 0);
	cr_assert_eq(pkv_get(db, "a", 1, buf, sizeof(buf), &vlen), 0);
	cr_expect_eq(vlen, 0);
	cr_expect_eq(buf[0], 'x', "an empty value must copy nothing");
	vlen = 99;
	cr_assert_eq(pkv_get(db, "b", 1, NULL, 0, &vlen), 0);
	cr_expect_eq(vlen, 0);
	/* Empty is not absent. */
	cr_expect_eq(tu_stats(db).keys, 2);
	cr_expect_eq(pkv_del(db, "a", 1), 0);
	cr_expect_eq(pkv_get(db, "a", 1, buf, sizeof(buf), &vlen), PKV_NOTFOUND);
	tu_close(db);
}

Test(args, size_limits)
{
	pkv *db = tu_open(tu_db, NULL);
	unsigned char *key = malloc(PKV_MAX_KEY + 2);
	unsigned char *val = malloc(PKV_MAX_VALUE + 2);
	unsigned char *out = malloc(PKV_MAX_VALUE + 2);
	size_t vlen;

	cr_assert(key && val && out);
	cr_assert_geq(PKV_MAX_KEY, 1024u, "contract: PKV_MAX_KEY is at least 1024");
	cr_assert_geq(PKV_MAX_VALUE, 1024u * 1024u, "contract: PKV_MAX_VALUE is at least 1 MiB");
	for (size_t i = 0; i < PKV_MAX_KEY + 2; i++)
		key[i] = (unsigned char)(i * 7 + 1);
	for (size_t i = 0; i < PKV_MAX_VALUE + 2; i++)
		val[i] = (unsigned char)(i * 13 + 5);

	/* The largest key and the largest value, together. */
	cr_assert_eq(pkv_put(db, key, PKV_MAX_KEY, val, PKV_MAX_VALUE), 0);
	cr_assert_eq(pkv_get(db, key, PKV_MAX_KEY, out, PKV_MAX_VALUE + 2, &vlen), 0);
	cr_expect_eq(vlen, PKV_MAX_VALUE);
	cr_expect(!memcmp(out, val, PKV_MAX_VALUE));

	/* One byte more is PKV_ETOOBIG, and changes nothing. */
	cr_expect_eq(pkv_put(db, key, PKV_MAX_KEY + 1, "v", 1), PKV_ETOOBIG);
	cr_expect_eq(pkv_put(db, key, PKV_MAX_KEY, val, PKV_MAX_VALUE + 1), PKV_ETOOBIG);
	cr_expect_eq(pkv_put_ex(db, key, PKV_MAX_KEY + 1, "v", 1, 0), PKV_ETOOBIG);
	cr_expect_eq(pkv_put_ex(db, "k", 1, val, PKV_MAX_VALUE + 1, 0), PKV_ETOOBIG);
	cr_expect_eq(pkv_get(db, key, PKV_MAX_KEY + 1, out, 16, &vlen), PKV_ETOOBIG);
	cr_expect_eq(pkv_del(db, key, PKV_MAX_KEY + 1), PKV_ETOOBIG);
	cr_expect_eq(pkv_get(db, "k", 1, out, 16, &vlen), PKV_NOTFOUND);
	cr_assert_eq(pkv_get(db, key, PKV_MAX_KEY, out, PKV_MAX_VALUE + 2, &vlen), 0);
	cr_expect_eq(vlen, PKV_MAX_VALUE);
	cr_expect(!memcmp(out, val, PKV_MAX_VALUE));
	cr_expect_eq(tu_stats(db).puts, 1);

	/* And both survive a restart. */
	tu_close(db);
	db = tu_open(tu_db, NULL);
	cr_assert_eq(pkv_get(db, key, PKV_MAX_KEY, out, PKV_MAX_VALUE + 2, &vlen), 0);
	cr_expect_eq(vlen, PKV_MAX_VALUE);
	cr_expect(!memcmp(out, val, PKV_MAX_VALUE));
	tu_close(db);
	free(key);
	free(val);
	free(out);
}

Test(args, get_copies_min_of_cap_and_length)
{
	pkv *db = tu_open(tu_db, NULL);
	char buf[32];
	size_t vlen;

	cr_assert_eq(put_s(db, "k", "0123456789"), 0);

	/* cap 0 asks for the length only, with or without a buffer. */
	vlen = 0;
	cr_expect_eq(get_s(db, "k", NULL, 0, &vlen), 0);
	cr_expect_eq(vlen, 10);
	memset(buf, '#', sizeof(buf));
	vlen = 0;
	cr_expect_eq(get_s(db, "k", buf, 0, &vlen), 0);
	cr_expect_eq(vlen, 10);
	cr_expect_eq(buf[0], '#', "cap 0 must copy nothing");

	/* A short buffer gets exactly cap bytes and the full length. */
	memset(buf, '#', sizeof(buf));
	cr_expect_eq(get_s(db, "k", buf, 4, &vlen), 0);
	cr_expect_eq(vlen, 10);
	cr_expect(!memcmp(buf, "0123", 4));
	cr_expect_eq(buf[4], '#', "copied past cap");

	/* Exact and larger buffers get the value and nothing more. */
	memset(buf, '#', sizeof(buf));
	cr_expect_eq(get_s(db, "k", buf, 10, &vlen), 0);
	cr_expect(!memcmp(buf, "0123456789", 10));
	cr_expect_eq(buf[10], '#');
	memset(buf, '#', sizeof(buf));
	cr_expect_eq(get_s(db, "k", buf, sizeof(buf), &vlen), 0);
	cr_expect_eq(vlen, 10);
	cr_expect(!memcmp(buf, "0123456789", 10));
	cr_expect_eq(buf[10], '#', "copied past the value");
	tu_close(db);
}

Test(args, absent_keys)
{
	pkv *db = tu_open(tu_db, NULL);
	char buf[8];
	size_t vlen;

	cr_expect_eq(get_s(db, "nope", buf, sizeof(buf), &vlen), PKV_NOTFOUND);
	cr_expect_eq(pkv_del(db, "nope", 4), PKV_NOTFOUND);
	cr_expect_eq(pkv_del_ex(db, "nope", 4, PKV_WRITE_POWER), PKV_NOTFOUND);
	cr_assert_eq(put_s(db, "k", "v"), 0);
	cr_expect_eq(pkv_del(db, "k", 1), 0);
	cr_expect_eq(get_s(db, "k", buf, sizeof(buf), &vlen), PKV_NOTFOUND);
	cr_expect_eq(pkv_del(db, "k", 1), PKV_NOTFOUND);
	/* Prefixes and extensions of a present key are other keys. */
	cr_assert_eq(put_s(db, "abc", "v"), 0);
	cr_expect_eq(get_s(db, "ab", buf, sizeof(buf), &vlen), PKV_NOTFOUND);
	cr_expect_eq(get_s(db, "abcd", buf, sizeof(buf), &vlen), PKV_NOTFOUND);
	/* A NOTFOUND delete wrote nothing: it is not counted. */
	cr_expect_eq(tu_stats(db).dels, 1);
	cr_expect_eq(tu_stats(db).puts, 2);
	tu_close(db);
}

Test(args, write_flags)
{
	pkv *db = tu_open(tu_db, NULL);
	char buf[8];
	size_t vlen;
	pkv_stats st;

	cr_assert_eq(pkv_put_ex(db, "p", 1, "1", 1, PKV_WRITE_POWER), 0);
	/* A PKV_WRITE_POWER write is durable on return, whatever the store's mode. */
	st = tu_stats(db);
	cr_expect_geq(st.durable_seq, st.last_seq, "durable_seq %llu < last_seq %llu",
		      (unsigned long long)st.durable_seq, (unsigned long long)st.last_seq);
	cr_assert_eq(pkv_put_ex(db, "q", 1, "2", 1, 0), 0);
	cr_expect_eq(pkv_del_ex(db, "p", 1, PKV_WRITE_POWER), 0);
	st = tu_stats(db);
	cr_expect_geq(st.durable_seq, st.last_seq);
	cr_expect_eq(get_s(db, "p", buf, sizeof(buf), &vlen), PKV_NOTFOUND);

	/* Unknown flags are refused before anything is written. */
	cr_expect_eq(pkv_put_ex(db, "x", 1, "1", 1, 0x2), PKV_EINVAL);
	cr_expect_eq(pkv_put_ex(db, "x", 1, "1", 1, 0x80000000u), PKV_EINVAL);
	cr_expect_eq(pkv_put_ex(db, "x", 1, "1", 1, PKV_WRITE_POWER | 0x4), PKV_EINVAL);
	cr_expect_eq(pkv_del_ex(db, "q", 1, 0x2), PKV_EINVAL);
	cr_expect_eq(pkv_del_ex(db, "q", 1, ~0u), PKV_EINVAL);
	cr_expect_eq(get_s(db, "x", buf, sizeof(buf), &vlen), PKV_NOTFOUND);
	cr_expect_eq(get_s(db, "q", buf, sizeof(buf), &vlen), 0);
	cr_expect_eq(tu_stats(db).puts, 2);
	cr_expect_eq(tu_stats(db).dels, 1);
	tu_close(db);

	db = tu_open(tu_db, NULL);
	cr_expect_eq(get_s(db, "p", buf, sizeof(buf), &vlen), PKV_NOTFOUND);
	cr_expect_eq(get_s(db, "q", buf, sizeof(buf), &vlen), 0);
	cr_expect_eq(get_s(db, "x", buf, sizeof(buf), &vlen), PKV_NOTFOUND);
	tu_close(db);
}

static void *attach_detach_thread(void *arg)
{
	pkv *db = arg;
	char buf[4];
	size_t vlen;
	intptr_t bad = 0;

	bad |= pkv_thread_attach() != 0;
	bad |= pkv_thread_attach() != 0; /* idempotent */
	bad |= pkv_put(db, "t", 1, "1", 1) != 0;
	bad |= pkv_thread_detach() != 0;
	/* Calling in again after a detach registers the thread again. */
	bad |= pkv_get(db, "t", 1, buf, sizeof(buf), &vlen) != 0;
	bad |= pkv_put(db, "u", 1, "2", 1) != 0;
	bad |= pkv_thread_detach() != 0;
	bad |= pkv_thread_detach() != 0;
	return (void *)bad;
}

Test(args, thread_attach_detach)
{
	pkv *db = tu_open(tu_db, NULL);
	pthread_t t;
	void *bad;

	cr_assert_eq(pthread_create(&t, NULL, attach_detach_thread, db), 0);
	cr_assert_eq(pthread_join(t, &bad), 0);
	cr_expect_null(bad, "a pkv call in the attach/detach thread failed");
	cr_expect_eq(tu_stats(db).keys, 2);
	/* The main thread too, without ever having called attach. */
	cr_expect_eq(pkv_thread_detach(), 0);
	cr_expect_eq(put_s(db, "m", "3"), 0);
	tu_close(db);
}

/* ---- in-memory stores ---------------------------------------------------------------------- */

TestSuite(memory, .init = tu_setup, .fini = tu_teardown, .timeout = T_TIMEOUT);

Test(memory, full_api)
{
	pkv *db = tu_open(NULL, NULL);
	pkv *other = tu_open(NULL, NULL);
	char buf[16];
	size_t vlen;
	pkv_stats st;

	cr_expect_eq(put_s(db, "a", "1"), 0);
	cr_expect_eq(put_s(db, "a", "22"), 0);
	cr_expect_eq(pkv_put_ex(db, "b", 1, "3", 1, PKV_WRITE_POWER), 0);
	cr_expect_eq(pkv_put(db, "e", 1, NULL, 0), 0);
	cr_expect_eq(get_s(db, "a", buf, sizeof(buf), &vlen), 0);
	cr_expect_eq(vlen, 2);
	cr_expect(!memcmp(buf, "22", 2));
	cr_expect_eq(pkv_del(db, "b", 1), 0);
	cr_expect_eq(pkv_del_ex(db, "e", 1, PKV_WRITE_POWER), 0);
	cr_expect_eq(pkv_del(db, "b", 1), PKV_NOTFOUND);
	cr_expect_eq(pkv_sync(db), 0);
	cr_expect_eq(pkv_compact(db), 0);
	st = tu_stats(db);
	cr_expect_eq(st.puts, 4);
	cr_expect_eq(st.dels, 2);
	cr_expect_eq(st.keys, 1);
	cr_expect_eq(st.readonly_reason, 0);
	cr_expect_eq(st.wal_bytes, 0, "an in-memory store has no WAL");

	/* Two in-memory stores are independent, and neither locks anything. */
	cr_expect_eq(get_s(other, "a", buf, sizeof(buf), &vlen), PKV_NOTFOUND);
	cr_expect_eq(tu_stats(other).keys, 0);
	tu_close(other);
	cr_expect_eq(get_s(db, "a", buf, sizeof(buf), &vlen), 0);
	tu_close(db);

	/* And nothing persists. */
	db = tu_open(NULL, NULL);
	cr_expect_eq(get_s(db, "a", buf, sizeof(buf), &vlen), PKV_NOTFOUND);
	tu_close(db);
}

Test(memory, durability_modes_are_harmless)
{
	for (int m = 0; m < 3; m++) {
		pkv_options o;
		pkv *db;
		char buf[4];
		size_t vlen;

		tu_opts(&o, tu_modes[m]);
		db = tu_open(NULL, &o);
		cr_expect_eq(put_s(db, "k", "v"), 0);
		cr_expect_eq(get_s(db, "k", buf, sizeof(buf), &vlen), 0);
		cr_expect_eq(pkv_sync(db), 0);
		tu_close(db);
	}
}

/* ---- the directory lock -------------------------------------------------------------------- */

TestSuite(lock, .init = tu_setup, .fini = tu_teardown, .timeout = T_TIMEOUT);

Test(lock, second_open_in_process)
{
	pkv *db = tu_open(tu_db, NULL);
	pkv *db2 = SENTINEL;
	char alias[PATH_MAX];
	char buf[4];
	size_t vlen;

	cr_assert_eq(put_s(db, "k", "1"), 0);
	cr_expect_eq(pkv_open(tu_db, NULL, &db2), PKV_ELOCKED);
	cr_expect_eq(db2, SENTINEL);
	/* The same directory under another spelling is the same store. */
	tu_fmt(alias, sizeof(alias), "%s/", tu_db);
	cr_expect_eq(pkv_open(alias, NULL, &db2), PKV_ELOCKED);
	tu_fmt(alias, sizeof(alias), "%s/../db", tu_db);
	cr_expect_eq(pkv_open(alias, NULL, &db2), PKV_ELOCKED);
	cr_expect_eq(db2, SENTINEL);

	/* The refused opens did not disturb the first handle. */
	cr_expect_eq(put_s(db, "k", "2"), 0);
	cr_expect_eq(get_s(db, "k", buf, sizeof(buf), &vlen), 0);
	cr_expect_eq(buf[0], '2');
	cr_expect_eq(pkv_sync(db), 0);
	tu_close(db);

	/* Closing released the lock. */
	db = tu_open(tu_db, NULL);
	cr_expect_eq(get_s(db, "k", buf, sizeof(buf), &vlen), 0);
	cr_expect_eq(buf[0], '2');
	tu_close(db);
}

/*
 * The child is forked before this process has touched pkv, so that what it meets is the flock on
 * DIR/LOCK and not some state copied from its parent's memory. It answers each request ('o') with
 * the code of its open, closing what it opened.
 */
static void lock_child(int req, int rep)
{
	char c;

	while (read(req, &c, 1) == 1) {
		pkv *db = NULL;
		int rc = pkv_open(tu_db, NULL, &db);

		if (rc == 0)
			rc = pkv_close(db) == 0 ? 0 : 1;
		if (!tu_write_full(rep, &rc, sizeof(rc)))
			_exit(2);
	}
	_exit(0);
}

static int ask_child(int req, int rep)
{
	int rc = 12345;

	cr_assert(tu_write_full(req, "o", 1));
	cr_assert_eq(tu_read_full(rep, &rc, sizeof(rc)), sizeof(rc), "the child died");
	return rc;
}

Test(lock, second_open_from_another_process)
{
	int req[2], rep[2], status;
	pid_t pid;
	pkv *db;

	cr_assert_eq(pipe(req), 0);
	cr_assert_eq(pipe(rep), 0);
	pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		close(req[1]);
		close(rep[0]);
		lock_child(req[0], rep[1]);
	}
	close(req[0]);
	close(rep[1]);

	db = tu_open(tu_db, NULL);
	cr_assert_eq(put_s(db, "k", "v"), 0);
	cr_expect_eq(ask_child(req[1], rep[0]), PKV_ELOCKED);
	cr_expect_eq(put_s(db, "k2", "v"), 0, "the first handle must still work");
	tu_close(db);
	cr_expect_eq(ask_child(req[1], rep[0]), 0, "the lock was not released by pkv_close");

	/* And the other way round: the child had it, now this process can open it. */
	db = tu_open(tu_db, NULL);
	cr_expect_eq(tu_stats(db).keys, 2);
	tu_close(db);

	close(req[1]);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(rep[0]);
}

/* ---- open flags ---------------------------------------------------------------------------- */

TestSuite(flags, .init = tu_setup, .fini = tu_teardown, .timeout = T_TIMEOUT);

Test(flags, readonly)
{
	pkv_options o;
	pkv *db = tu_open(tu_db, NULL);
	struct tu_wal before, after;
	char buf[8];
	size_t vlen;
	pkv_stats st;

	cr_assert_eq(put_s(db, "a", "1"), 0);
	cr_assert_eq(put_s(db, "b", "2"), 0);
	cr_assert_eq(pkv_del(db, "b", 1), 0);
	tu_close(db);
	tu_wal_read(tu_db, &before);

	pkv_options_default(&o);
	o.flags = PKV_OPEN_READONLY;
	db = tu_open(tu_db, &o);
	cr_expect_eq(get_s(db, "a", buf, sizeof(buf), &vlen), 0);
	cr_expect_eq(vlen, 1);
	cr_expect_eq(buf[0], '1');
	cr_expect_eq(get_s(db, "b", buf, sizeof(buf), &vlen), PKV_NOTFOUND);
	cr_expect_eq(put_s(db, "c", "3"), PKV_EREADONLY);
	cr_expect_eq(put_s(db, "a", "3"), PKV_EREADONLY);
	cr_expect_eq(pkv_put_ex(db, "c", 1, "3", 1, PKV_WRITE_POWER), PKV_EREADONLY);
	cr_expect_eq(pkv_del(db, "a", 1), PKV_EREADONLY);
	cr_expect_eq(pkv_del_ex(db, "a", 1, 0), PKV_EREADONLY);
	cr_expect_eq(pkv_compact(db), PKV_EREADONLY);
	st = tu_stats(db);
	cr_expect_eq(st.readonly_reason, PKV_EREADONLY);
	cr_expect_eq(st.keys, 1);
	cr_expect_eq(st.puts, 0);
	cr_expect_eq(st.dels, 0);
	cr_expect_eq(get_s(db, "a", buf, sizeof(buf), &vlen), 0);
	cr_expect_eq(buf[0], '1');
	cr_expect_eq(get_s(db, "c", buf, sizeof(buf), &vlen), PKV_NOTFOUND);
	pkv_close(db);

	/* A read-only open wrote no record. */
	tu_wal_read(tu_db, &after);
	cr_expect_eq(after.nrecs, before.nrecs);
	tu_wal_free(&before);
	tu_wal_free(&after);

	/* And the store is writable again. */
	db = tu_open(tu_db, NULL);
	cr_expect_eq(put_s(db, "c", "3"), 0);
	tu_close(db);
}

Test(flags, nocreate)
{
	pkv_options o;
	pkv *db = SENTINEL;
	struct stat st;
	int rc;

	pkv_options_default(&o);
	o.flags = PKV_OPEN_NOCREATE;
	rc = pkv_open(tu_db, &o, &db);
	cr_expect_eq(rc, -ENOENT, "got %d (%s)", rc, pkv_strerror(rc));
	cr_expect_eq(db, SENTINEL);
	cr_expect_neq(stat(tu_db, &st), 0, "NOCREATE created the directory");

	/* An existing store opens with the flag. */
	tu_close(tu_open(tu_db, NULL));
	db = tu_open(tu_db, &o);
	cr_expect_eq(put_s(db, "k", "v"), 0);
	tu_close(db);
}

/* ---- strerror ------------------------------------------------------------------------------ */

Test(strerror, distinct_messages)
{
	static const int codes[] = { 0,		  PKV_NOTFOUND, PKV_EINVAL,    PKV_ETOOBIG,
				     PKV_ELOCKED, PKV_ECORRUPT, PKV_EREADONLY, -ENOENT,
				     -EIO,	  -ENOSPC,	-ENOMEM };
	const size_t n = sizeof(codes) / sizeof(codes[0]);

	for (size_t i = 0; i < n; i++) {
		const char *m = pkv_strerror(codes[i]);

		cr_assert(m && *m, "no message for %d", codes[i]);
		for (size_t j = 0; j < i; j++)
			cr_expect_str_neq(m, pkv_strerror(codes[j]), "%d and %d share a message",
					  codes[i], codes[j]);
	}
}

/* ---- statistics ---------------------------------------------------------------------------- */

ParameterizedTestParameters(stats, counters)
{
	return cr_make_param_array(enum pkv_durability, (void *)tu_modes, 3);
}

ParameterizedTest(enum pkv_durability *mode, stats, counters, .init = tu_setup, .fini = tu_teardown,
		  .timeout = T_TIMEOUT)
{
	pkv_options o;
	pkv *db;
	pkv_stats st;
	char k[16];

	tu_opts(&o, *mode);
	db = tu_open(tu_db, &o);
	st = tu_stats(db);
	cr_expect_eq(st.keys, 0);
	cr_expect_eq(st.puts, 0);
	cr_expect_eq(st.dels, 0);
	cr_expect_eq(st.last_seq, 0);
	cr_expect_eq(st.readonly_reason, 0);
	cr_expect_eq(st.recovered_records, 0);
	cr_expect_eq(st.discarded_records, 0);
	cr_expect_eq(st.discarded_bytes, 0);
	cr_expect_eq(st.recovery_gap_seq, 0);

	/* 10 puts (2 overwrites), 3 deletes, 1 delete of an absent key. */
	for (int i = 0; i < 8; i++) {
		snprintf(k, sizeof(k), "key%d", i);
		cr_assert_eq(put_s(db, k, "value"), 0);
	}
	cr_assert_eq(put_s(db, "key0", "again"), 0);
	cr_assert_eq(put_s(db, "key1", "again"), 0);
	cr_assert_eq(pkv_del(db, "key2", 4), 0);
	cr_assert_eq(pkv_del(db, "key3", 4), 0);
	cr_assert_eq(pkv_del(db, "key0", 4), 0);
	cr_assert_eq(pkv_del(db, "key0", 4), PKV_NOTFOUND);

	st = tu_stats(db);
	cr_expect_eq(st.puts, 10);
	cr_expect_eq(st.dels, 3);
	cr_expect_eq(st.keys, 5);
	cr_expect_eq(st.last_seq, 13, "last_seq is the history's length: %llu",
		     (unsigned long long)st.last_seq);
	cr_expect_leq(st.durable_seq, st.last_seq);
	cr_expect_gt(st.wal_bytes, 0);
	cr_expect_geq(st.wal_segments, 1);
	if (*mode == PKV_DURABLE_POWER) {
		/* Every returned write is durable under POWER, without asking. */
		cr_expect_geq(st.durable_seq, st.last_seq);
		cr_expect_geq(st.syncs, 1);
		cr_expect_geq(st.synced_writes, 13);
	}
	cr_assert_eq(pkv_sync(db), 0);
	st = tu_stats(db);
	cr_expect_geq(st.durable_seq, st.last_seq, "durable_seq %llu < last_seq %llu after sync",
		      (unsigned long long)st.durable_seq, (unsigned long long)st.last_seq);
	cr_expect_geq(st.syncs, 1);
	cr_expect_geq(st.synced_writes, 1);
	tu_close(db);

	/* Counters since open start again; the history and the keys do not. */
	db = tu_open(tu_db, &o);
	st = tu_stats(db);
	cr_expect_eq(st.puts, 0);
	cr_expect_eq(st.dels, 0);
	cr_expect_eq(st.keys, 5);
	cr_expect_geq(st.last_seq, 13);
	cr_expect_eq(st.recovered_records, 13);
	cr_expect_eq(st.discarded_records, 0);
	cr_expect_eq(st.discarded_bytes, 0);
	cr_expect_eq(st.recovery_gap_seq, 0);
	{
		uint64_t before = st.last_seq;

		cr_assert_eq(put_s(db, "key9", "v"), 0);
		st = tu_stats(db);
		cr_expect_eq(st.last_seq, before + 1);
		cr_expect_eq(st.puts, 1);
		cr_expect_eq(st.keys, 6);
	}
	tu_close(db);
}

/* ---- persistence --------------------------------------------------------------------------- */

ParameterizedTestParameters(persist, survives_reopen)
{
	return cr_make_param_array(enum pkv_durability, (void *)tu_modes, 3);
}

/* Puts, overwrites, deletes, empty values and binary keys, applied to store and model alike. */
static void mixed_writes(pkv *db, struct tu_model *m, int round)
{
	static const unsigned char bin[][5] = {
		{ 0, 0, 0, 0, 0 },
		{ 'a', 0, 'b', 0, 0 },
		{ 'a', 0, 'c', 0, 0 },
		{ 0xff, 0, 1, 2, 3 },
	};
	char k[32], v[64];

	for (int i = 0; i < 50; i++) {
		snprintf(k, sizeof(k), "r%d-k%d", round, i);
		snprintf(v, sizeof(v), "value %d of round %d", i, round);
		cr_assert_eq(pkv_put(db, k, strlen(k), v, strlen(v)), 0);
		tu_model_put(m, k, strlen(k), v, strlen(v));
	}
	/* Overwrite some keys twice: the last one wins. */
	for (int i = 0; i < 50; i += 3) {
		for (int rep = 0; rep < 2; rep++) {
			snprintf(k, sizeof(k), "r%d-k%d", round, i);
			snprintf(v, sizeof(v), "over%d-%d", rep, i);
			cr_assert_eq(pkv_put(db, k, strlen(k), v, strlen(v)), 0);
			tu_model_put(m, k, strlen(k), v, strlen(v));
		}
	}
	/* Delete some, including some that were overwritten, and re-create one. */
	for (int i = 0; i < 50; i += 4) {
		snprintf(k, sizeof(k), "r%d-k%d", round, i);
		cr_assert_eq(pkv_del(db, k, strlen(k)), 0);
		tu_model_del(m, k, strlen(k));
	}
	snprintf(k, sizeof(k), "r%d-k%d", round, 8);
	cr_assert_eq(pkv_put(db, k, strlen(k), "reborn", 6), 0);
	tu_model_put(m, k, strlen(k), "reborn", 6);

	/* Empty values, and binary keys that differ only after a NUL or in length. */
	snprintf(k, sizeof(k), "r%d-empty", round);
	cr_assert_eq(pkv_put(db, k, strlen(k), NULL, 0), 0);
	tu_model_put(m, k, strlen(k), NULL, 0);
	for (size_t i = 0; i < sizeof(bin) / sizeof(bin[0]); i++) {
		for (size_t len = 1; len <= 5; len += 2) {
			snprintf(v, sizeof(v), "bin%zu/%zu/%d", i, len, round);
			cr_assert_eq(pkv_put(db, bin[i], len, v, strlen(v)), 0);
			tu_model_put(m, bin[i], len, v, strlen(v));
		}
	}
	/* Deleting a binary key leaves its NUL-extended neighbours alone. */
	cr_assert_eq(pkv_del(db, bin[0], 3), 0);
	tu_model_del(m, bin[0], 3);
	if (round > 0) {
		/* Touch keys of the previous round: deletes must not be undone by a restart. */
		snprintf(k, sizeof(k), "r%d-k%d", round - 1, 1);
		cr_assert_eq(pkv_del(db, k, strlen(k)), 0);
		tu_model_del(m, k, strlen(k));
		snprintf(k, sizeof(k), "r%d-empty", round - 1);
		cr_assert_eq(pkv_put(db, k, strlen(k), "now full", 8), 0);
		tu_model_put(m, k, strlen(k), "now full", 8);
	}
}

ParameterizedTest(enum pkv_durability *mode, persist, survives_reopen, .init = tu_setup,
		  .fini = tu_teardown, .timeout = T_TIMEOUT)
{
	struct tu_model m;
	pkv_options o;
	pkv *db;

	tu_model_init(&m);
	tu_opts(&o, *mode);
	db = tu_open(tu_db, &o);
	for (int round = 0; round < 4; round++) {
		mixed_writes(db, &m, round);
		tu_model_assert(&m, db, "before close");
		tu_close(db);
		db = tu_open(tu_db, &o);
		tu_model_assert(&m, db, "after reopen");
	}
	tu_close(db);
	tu_model_free(&m);
}

ParameterizedTestParameters(persist, compact)
{
	return cr_make_param_array(enum pkv_durability, (void *)tu_modes, 3);
}

ParameterizedTest(enum pkv_durability *mode, persist, compact, .init = tu_setup,
		  .fini = tu_teardown, .timeout = T_TIMEOUT)
{
	struct tu_model m;
	pkv_options o;
	pkv *db;

	tu_model_init(&m);
	tu_opts(&o, *mode);
	db = tu_open(tu_db, &o);
	mixed_writes(db, &m, 0);
	cr_assert_eq(pkv_compact(db), 0);
	cr_expect_geq(count_files(tu_db, "snap", ".snap"), 1, "no DIR/snap/*.snap after compact");
	tu_model_assert(&m, db, "after compact");
	/* Overwrite and delete keys that now live in the snapshot. */
	mixed_writes(db, &m, 1);
	tu_model_assert(&m, db, "writes over a snapshot");
	tu_close(db);

	db = tu_open(tu_db, &o);
	tu_model_assert(&m, db, "reopen over a snapshot");
	mixed_writes(db, &m, 2);
	cr_assert_eq(pkv_compact(db), 0);
	cr_assert_eq(pkv_compact(db), 0); /* twice in a row, nothing new in between */
	mixed_writes(db, &m, 3);
	tu_close(db);

	db = tu_open(tu_db, &o);
	tu_model_assert(&m, db, "reopen after a second compaction");
	tu_close(db);
	tu_model_free(&m);
}

/*
 * Many keys in small (64 KiB) segments, written by eight threads on disjoint key ranges so that
 * the result is deterministic whatever the interleaving (and POWER's group commit gets company).
 */
#define MANY_KEYS 20000
#define MANY_THREADS 8

struct many_arg {
	pkv *db;
	int tid;
	int err; /* first failing return code */
};

static size_t many_key(char *k, int i)
{
	return (size_t)sprintf(k, "many:%07d", i);
}

/* A value of a length between 0 and 300 that depends on the key and the generation. */
static size_t many_val(unsigned char *v, int i, int gen)
{
	uint64_t s = (uint64_t)i * 1000003u + (uint64_t)gen;
	size_t len = tu_rand(&s) % 301;

	for (size_t j = 0; j < len; j++)
		v[j] = (unsigned char)(tu_rand(&s) >> 56);
	return len;
}

/* Generation 0 puts every key; then every 5th is overwritten and every 7th deleted. */
static bool many_present(int i)
{
	return i % 7 != 0;
}

static int many_gen(int i)
{
	return i % 5 == 0 ? 1 : 0;
}

static void *many_writer(void *p)
{
	struct many_arg *a = p;
	unsigned char v[400];
	char k[32];
	int rc;

	for (int i = a->tid; i < MANY_KEYS; i += MANY_THREADS) {
		rc = pkv_put(a->db, k, many_key(k, i), v, many_val(v, i, 0));
		if (rc) {
			a->err = rc;
			return NULL;
		}
	}
	for (int i = a->tid; i < MANY_KEYS; i += MANY_THREADS) {
		if (many_gen(i) == 1)
			rc = pkv_put(a->db, k, many_key(k, i), v, many_val(v, i, 1));
		else
			rc = 0;
		if (!rc && !many_present(i))
			rc = pkv_del(a->db, k, many_key(k, i));
		if (rc) {
			a->err = rc;
			return NULL;
		}
	}
	return NULL;
}

static void many_check(pkv *db, const char *what)
{
	unsigned char v[400], got[400];
	char k[32];
	size_t vlen, len;
	uint64_t present = 0;

	for (int i = 0; i < MANY_KEYS; i++) {
		int rc = pkv_get(db, k, many_key(k, i), got, sizeof(got), &vlen);

		if (!many_present(i)) {
			cr_assert_eq(rc, PKV_NOTFOUND, "%s: %s was deleted, get gave %d", what, k,
				     rc);
			continue;
		}
		present++;
		len = many_val(v, i, many_gen(i));
		cr_assert_eq(rc, 0, "%s: %s missing (%d)", what, k, rc);
		cr_assert_eq(vlen, len, "%s: %s has length %zu, expected %zu", what, k, vlen, len);
		cr_assert(!memcmp(got, v, len), "%s: %s has the wrong value", what, k);
	}
	cr_assert_eq(tu_stats(db).keys, present, "%s: stats.keys", what);
}

ParameterizedTestParameters(persist, many_keys_small_segments)
{
	return cr_make_param_array(enum pkv_durability, (void *)tu_modes, 3);
}

ParameterizedTest(enum pkv_durability *mode, persist, many_keys_small_segments, .init = tu_setup,
		  .fini = tu_teardown, .timeout = 240)
{
	struct many_arg a[MANY_THREADS];
	pthread_t t[MANY_THREADS];
	pkv_options o;
	pkv *db;
	pkv_stats st;

	tu_opts(&o, *mode);
	o.wal_segment_bytes = 64u << 10;
	o.capacity_hint = MANY_KEYS;
	db = tu_open(tu_db, &o);
	for (int i = 0; i < MANY_THREADS; i++) {
		a[i] = (struct many_arg){ .db = db, .tid = i };
		cr_assert_eq(pthread_create(&t[i], NULL, many_writer, &a[i]), 0);
	}
	for (int i = 0; i < MANY_THREADS; i++) {
		cr_assert_eq(pthread_join(t[i], NULL), 0);
		cr_assert_eq(a[i].err, 0, "writer %d: %d (%s)", i, a[i].err,
			     pkv_strerror(a[i].err));
	}
	many_check(db, "before close");
	st = tu_stats(db);
	/* ~3.7 MB of records in 64 KiB segments: the lanes must have rolled over many times. */
	cr_expect_gt(st.wal_segments, 8, "only %llu segments", (unsigned long long)st.wal_segments);
	cr_expect_gt(st.wal_bytes, (uint64_t)MANY_KEYS * 32);
	tu_close(db);

	/* Reopen without the hint: the map must grow on its own during recovery. */
	o.capacity_hint = 0;
	db = tu_open(tu_db, &o);
	many_check(db, "after reopen");
	st = tu_stats(db);
	cr_expect_eq(st.discarded_bytes, 0);
	cr_expect_eq(st.recovery_gap_seq, 0);
	tu_close(db);
}
