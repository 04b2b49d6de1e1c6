/* SPDX-License-Identifier: MIT */
/*
 * test_write.c - pkv_write (atomic batches with conditions), pkv_put_expire and pkv_clear,
 * through the public API.
 *
 *   - a batch is applied all or none and in order (a later op on a key wins); every key it
 *     writes carries its one sequence number (shown by conditions on seq_out);
 *   - conditions are checked against the state before the batch: a version's seq, 0 for absent
 *     (a deleted or expired key is absent), PKV_ANY for present; a failed one writes nothing and
 *     returns PKV_ECONFLICT;
 *   - concurrent batches over the same keys in opposite orders never deadlock, and a CAS counter
 *     driven by conditions loses no increment;
 *   - after a reopen, and after a SIGKILL of the writing process, in every durability mode, each
 *     batch is there whole or not at all, and a torn batch record is a torn tail;
 *   - pkv_clear empties the store as one write that survives reopen and SIGKILL, also when a
 *     snapshot base holds keys;
 *   - every bad input is a clear code, nothing is written, and the store keeps working.
 * Expiry against a fake clock is test_expire's (it needs the library's clock seam).
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#define T_TIMEOUT 150
#define FAR_FUTURE 4102444800000ull /* 2100-01-01, in ms */

static int put_s(pkv *db, const char *k, const char *v)
{
	return pkv_put(db, k, strlen(k), v, strlen(v));
}

/* The value of @k as a string, or NULL if absent (a static buffer). */
static const char *get_s(pkv *db, const char *k)
{
	static char buf[4096];
	size_t n = 0;
	int r = pkv_get(db, k, strlen(k), buf, sizeof(buf) - 1, &n);

	if (r == PKV_NOTFOUND)
		return NULL;
	cr_assert_eq(r, 0, "get %s: %s", k, pkv_strerror(r));
	cr_assert_lt(n, sizeof(buf));
	buf[n] = '\0';
	return buf;
}

static void assert_val(pkv *db, const char *k, const char *want)
{
	const char *got = get_s(db, k);

	if (want == NULL)
		cr_assert_null(got, "%s should be absent, is \"%s\"", k, got ? got : "");
	else
		cr_assert(got && strcmp(got, want) == 0, "%s is \"%s\", expected \"%s\"", k,
			  got ? got : "(absent)", want);
}

static void bput(pkv_batch *b, const char *k, const char *v)
{
	cr_assert_eq(pkv_batch_put(b, k, strlen(k), v, strlen(v)), 0);
}

static void bdel(pkv_batch *b, const char *k)
{
	cr_assert_eq(pkv_batch_del(b, k, strlen(k)), 0);
}

static void bexpect(pkv_batch *b, const char *k, uint64_t seq)
{
	cr_assert_eq(pkv_batch_expect(b, k, strlen(k), seq), 0);
}

/* A one-key batch with a condition: is @k's current version @seq? (Writes nothing.) */
static bool version_is(pkv *db, const char *k, uint64_t seq)
{
	pkv_batch *b;
	uint64_t s = 99;
	int r;

	cr_assert_eq(pkv_batch_new(&b), 0);
	bexpect(b, k, seq);
	r = pkv_write(db, b, 0, &s);
	pkv_batch_free(b);
	cr_assert(r == 0 || r == PKV_ECONFLICT, "condition-only write: %s", pkv_strerror(r));
	cr_assert_eq(s, 0, "a write of conditions only takes no sequence number");
	return r == 0;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- semantics ---------------------------------------------------------------------------- */

TestSuite(write, .init = tu_setup, .fini = tu_teardown, .timeout = T_TIMEOUT);

/* Every key a batch writes carries its one sequence number, and it takes exactly one. */
Test(write, one_seq_per_batch)
{
	pkv_options o;
	pkv *db;
	pkv_batch *b;
	uint64_t s1 = 0, s2 = 0;

	tu_opts(&o, PKV_DURABLE_PROCESS);
	db = tu_open(tu_db, &o);
	cr_assert_eq(put_s(db, "old", "x"), 0);
	cr_assert_eq(pkv_batch_new(&b), 0);
	bput(b, "a", "1");
	bput(b, "b", "2");
	bput(b, "c", "3");
	bdel(b, "old");
	cr_assert_eq(pkv_write(db, b, 0, &s1), 0);
	cr_assert_eq(s1, 2, "the batch after one put is seq 2, not %llu", (unsigned long long)s1);
	cr_assert_eq(tu_stats(db).last_seq, 2, "one batch takes one sequence number");
	assert_val(db, "a", "1");
	assert_val(db, "b", "2");
	assert_val(db, "c", "3");
	assert_val(db, "old", NULL);
	cr_assert(version_is(db, "a", s1) && version_is(db, "b", s1) && version_is(db, "c", s1),
		  "every key carries the batch's seq");
	cr_assert(version_is(db, "old", 0), "the deleted key is absent");

	/* seq_out may be NULL; the batch is reusable after clear. */
	pkv_batch_clear(b);
	bput(b, "a", "11");
	cr_assert_eq(pkv_write(db, b, 0, NULL), 0);
	cr_assert_eq(tu_stats(db).last_seq, 3);
	/* The same batch written twice is two writes. */
	cr_assert_eq(pkv_write(db, b, 0, &s2), 0);
	cr_assert_eq(s2, 4);
	cr_assert(version_is(db, "a", 4));
	cr_assert(!version_is(db, "a", 3));
	pkv_batch_free(b);
	tu_close(db);
}

/* Ops apply in order: a later op on a key wins; a delete of an absent key is fine. */
Test(write, later_op_wins)
{
	pkv_options o;
	pkv *db;
	pkv_batch *b;

	tu_opts(&o, PKV_DURABLE_PROCESS);
	db = tu_open(tu_db, &o);
	cr_assert_eq(put_s(db, "d", "was"), 0);
	cr_assert_eq(pkv_batch_new(&b), 0);
	bput(b, "a", "1");
	bput(b, "a", "2");
	bdel(b, "a");
	bput(b, "a", "3");
	bput(b, "b", "1");
	bdel(b, "b");
	bdel(b, "never");
	bdel(b, "d");
	bput(b, "d", "now");
	cr_assert_eq(pkv_batch_put_expire(b, "e", 1, "x", 1, FAR_FUTURE), 0);
	bput(b, "e", "plain");
	cr_assert_eq(pkv_write(db, b, 0, NULL), 0);
	assert_val(db, "a", "3");
	assert_val(db, "b", NULL);
	assert_val(db, "never", NULL);
	assert_val(db, "d", "now");
	assert_val(db, "e", "plain");
	cr_assert_eq(tu_stats(db).keys, 3, "a, d and e");

	/* Only deletes of absent keys: fine, and it is still a write (one seq). */
	pkv_batch_clear(b);
	bdel(b, "nothing1");
	bdel(b, "nothing2");
	cr_assert_eq(pkv_write(db, b, 0, NULL), 0);
	cr_assert_eq(tu_stats(db).keys, 3);
	tu_close(db);

	/* The same after a reopen (replay applies the logged batch the same way). */
	db = tu_open(tu_db, &o);
	assert_val(db, "a", "3");
	assert_val(db, "b", NULL);
	assert_val(db, "d", "now");
	assert_val(db, "e", "plain");
	cr_assert_eq(tu_stats(db).keys, 3);
	pkv_batch_free(b);
	tu_close(db);
}

/* An empty batch writes nothing and returns 0; a batch of conditions only writes nothing. */
Test(write, empty_and_conditions_only)
{
	pkv_options o;
	pkv *db;
	pkv_batch *b;
	uint64_t s = 77;

	tu_opts(&o, PKV_DURABLE_POWER);
	db = tu_open(tu_db, &o);
	cr_assert_eq(pkv_batch_new(&b), 0);
	cr_assert_eq(pkv_write(db, b, 0, &s), 0);
	cr_assert_eq(s, 0, "an empty batch has no sequence number");
	cr_assert_eq(pkv_write(db, b, PKV_WRITE_POWER, NULL), 0);
	cr_assert_eq(tu_stats(db).last_seq, 0);

	cr_assert_eq(put_s(db, "k", "v"), 0);
	bexpect(b, "k", 1);
	bexpect(b, "nope", 0);
	s = 77;
	cr_assert_eq(pkv_write(db, b, 0, &s), 0);
	cr_assert_eq(s, 0);
	bexpect(b, "nope", PKV_ANY);
	cr_assert_eq(pkv_write(db, b, 0, &s), PKV_ECONFLICT);
	cr_assert_eq(tu_stats(db).last_seq, 1, "conditions alone never write");
	pkv_batch_free(b);
	tu_close(db);
}

/* Each kind of condition, holding and failing; a failure writes nothing at all. */
Test(write, conditions)
{
	pkv_options o;
	pkv *db;
	pkv_batch *b;
	uint64_t s = 0, v1;
	pkv_stats before;

	tu_opts(&o, PKV_DURABLE_PROCESS);
	db = tu_open(tu_db, &o);
	cr_assert_eq(put_s(db, "x", "1"), 0);
	v1 = tu_stats(db).last_seq;
	cr_assert_eq(pkv_batch_new(&b), 0);

	/* Exact version: holds. */
	bexpect(b, "x", v1);
	bput(b, "x", "2");
	bput(b, "y", "side");
	cr_assert_eq(pkv_write(db, b, 0, &s), 0);
	assert_val(db, "x", "2");

	/* The old version no longer holds: nothing of the batch is written. */
	before = tu_stats(db);
	pkv_batch_clear(b);
	bexpect(b, "x", v1);
	bput(b, "x", "3");
	bput(b, "z", "never");
	bdel(b, "y");
	uint64_t s_fail = 55;
	cr_assert_eq(pkv_write(db, b, 0, &s_fail), PKV_ECONFLICT);
	assert_val(db, "x", "2");
	assert_val(db, "y", "side");
	assert_val(db, "z", NULL);
	cr_assert_eq(tu_stats(db).last_seq, before.last_seq, "a failed condition takes no seq");
	cr_assert_eq(tu_stats(db).puts, before.puts);
	cr_assert_eq(tu_stats(db).dels, before.dels);

	/* 0: absent. A key never written, a deleted key. */
	pkv_batch_clear(b);
	bexpect(b, "fresh", 0);
	bput(b, "fresh", "1");
	cr_assert_eq(pkv_write(db, b, 0, NULL), 0);
	cr_assert_eq(pkv_write(db, b, 0, NULL), PKV_ECONFLICT, "now present: 0 fails");
	cr_assert_eq(pkv_del(db, "fresh", 5), 0);
	cr_assert_eq(pkv_write(db, b, 0, NULL), 0, "deleted: absent again");

	/* PKV_ANY: present, any version. */
	pkv_batch_clear(b);
	bexpect(b, "x", PKV_ANY);
	bexpect(b, "fresh", PKV_ANY);
	bput(b, "both", "present");
	cr_assert_eq(pkv_write(db, b, 0, NULL), 0);
	assert_val(db, "both", "present");
	pkv_batch_clear(b);
	bexpect(b, "x", PKV_ANY);
	bexpect(b, "missing", PKV_ANY);
	bput(b, "both", "no");
	cr_assert_eq(pkv_write(db, b, 0, NULL), PKV_ECONFLICT);
	assert_val(db, "both", "present");

	/* An expired key is absent: a put that expired at once. */
	cr_assert_eq(pkv_put_expire(db, "gone", 4, "g", 1, 1, 0), 0);
	assert_val(db, "gone", NULL);
	pkv_batch_clear(b);
	bexpect(b, "gone", 0);
	bput(b, "gone", "back");
	cr_assert_eq(pkv_write(db, b, 0, NULL), 0, "an expired key counts as absent");
	assert_val(db, "gone", "back");
	pkv_batch_clear(b);
	cr_assert_eq(pkv_put_expire(db, "gone", 4, "g", 1, 1, 0), 0);
	bexpect(b, "gone", PKV_ANY);
	bput(b, "x", "no");
	cr_assert_eq(pkv_write(db, b, 0, NULL), PKV_ECONFLICT, "expired is not present");

	/* Conditions see the state before the batch, not the batch's own writes. */
	pkv_batch_clear(b);
	bput(b, "new1", "a");
	bexpect(b, "new1", 0);
	cr_assert_eq(pkv_write(db, b, 0, NULL), 0);
	pkv_batch_clear(b);
	bdel(b, "x");
	bexpect(b, "x", PKV_ANY);
	cr_assert_eq(pkv_write(db, b, 0, NULL), 0);
	assert_val(db, "x", NULL);

	/* Two conditions on one key: both must hold. */
	cr_assert_eq(put_s(db, "two", "t"), 0);
	s = tu_stats(db).last_seq;
	pkv_batch_clear(b);
	bexpect(b, "two", s);
	bexpect(b, "two", PKV_ANY);
	bput(b, "two", "u");
	cr_assert_eq(pkv_write(db, b, 0, NULL), 0);
	pkv_batch_clear(b);
	bexpect(b, "two", PKV_ANY);
	bexpect(b, "two", s);
	bput(b, "two", "v");
	cr_assert_eq(pkv_write(db, b, 0, NULL), PKV_ECONFLICT);
	assert_val(db, "two", "u");
	pkv_batch_free(b);
	tu_close(db);
}

/* Conditions on keys answered by the snapshot base (after a compaction) and after a reopen. */
Test(write, conditions_on_base)
{
	pkv_options o;
	pkv *db;
	pkv_batch *b;
	uint64_t v;

	tu_opts(&o, PKV_DURABLE_PROCESS);
	o.flags |= PKV_OPEN_NO_AUTOCOMPACT;
	db = tu_open(tu_db, &o);
	cr_assert_eq(put_s(db, "base", "1"), 0);
	v = tu_stats(db).last_seq;
	cr_assert_eq(put_s(db, "dead", "1"), 0);
	cr_assert_eq(pkv_del(db, "dead", 4), 0);
	cr_assert_eq(pkv_compact(db), 0);
	tu_close(db);
	db = tu_open(tu_db, &o);
	cr_assert(version_is(db, "base", v), "the base's version keeps its seq");
	cr_assert(version_is(db, "base", PKV_ANY));
	cr_assert(version_is(db, "dead", 0));
	cr_assert_eq(pkv_batch_new(&b), 0);
	bexpect(b, "base", v);
	bdel(b, "base");
	cr_assert_eq(pkv_write(db, b, 0, NULL), 0);
	cr_assert(version_is(db, "base", 0), "deleted over the base: absent");
	pkv_batch_free(b);
	tu_close(db);
	db = tu_open(tu_db, &o);
	assert_val(db, "base", NULL);
	tu_close(db);
}

/* Bad calls: a clear code, nothing written, the store keeps working. */
Test(write, bad_input)
{
	pkv_options o;
	pkv *db;
	pkv_batch *b;
	uint64_t s = 5;

	tu_opts(&o, PKV_DURABLE_PROCESS);
	db = tu_open(tu_db, &o);
	cr_assert_eq(pkv_batch_new(&b), 0);
	bput(b, "k", "v");
	cr_assert_eq(pkv_write(NULL, b, 0, &s), PKV_EINVAL);
	cr_assert_eq(pkv_write(db, NULL, 0, &s), PKV_EINVAL);
	cr_assert_eq(pkv_write(db, b, 2, &s), PKV_EINVAL);
	cr_assert_eq(pkv_write(db, b, PKV_WRITE_POWER | 0x100, &s), PKV_EINVAL);
	cr_assert_eq(pkv_write(db, b, ~0u, &s), PKV_EINVAL);
	cr_assert_eq(s, 5, "a refused call leaves seq_out alone");
	cr_assert_eq(tu_stats(db).last_seq, 0);
	assert_val(db, "k", NULL);

	/* pkv_put_expire's own. */
	cr_assert_eq(pkv_put_expire(NULL, "k", 1, "v", 1, FAR_FUTURE, 0), PKV_EINVAL);
	cr_assert_eq(pkv_put_expire(db, NULL, 1, "v", 1, FAR_FUTURE, 0), PKV_EINVAL);
	cr_assert_eq(pkv_put_expire(db, "k", 0, "v", 1, FAR_FUTURE, 0), PKV_EINVAL);
	cr_assert_eq(pkv_put_expire(db, "k", 1, NULL, 1, FAR_FUTURE, 0), PKV_EINVAL);
	cr_assert_eq(pkv_put_expire(db, "k", 1, "v", 1, FAR_FUTURE, 2), PKV_EINVAL);
	cr_assert_eq(pkv_put_expire(db, "k", PKV_MAX_KEY + 1, "v", 1, FAR_FUTURE, 0), PKV_ETOOBIG);
	cr_assert_eq(pkv_put_expire(db, "k", 1, "v", PKV_MAX_VALUE + 1, FAR_FUTURE, 0),
		     PKV_ETOOBIG);
	cr_assert_eq(pkv_clear(NULL), PKV_EINVAL);
	cr_assert_eq(tu_stats(db).last_seq, 0);

	/* Still working; PKV_WRITE_POWER makes the batch durable on return. */
	cr_assert_eq(pkv_write(db, b, PKV_WRITE_POWER, &s), 0);
	cr_assert_eq(s, 1);
	cr_assert_geq(tu_stats(db).durable_seq, s, "a PKV_WRITE_POWER batch is durable on return");
	assert_val(db, "k", "v");
	tu_close(db);

	/* A read-only store refuses every write, batches and clear included. */
	o.flags |= PKV_OPEN_READONLY;
	db = tu_open(tu_db, &o);
	cr_assert_eq(pkv_write(db, b, 0, NULL), PKV_EREADONLY);
	cr_assert_eq(pkv_put_expire(db, "k", 1, "v", 1, FAR_FUTURE, 0), PKV_EREADONLY);
	cr_assert_eq(pkv_clear(db), PKV_EREADONLY);
	pkv_batch_clear(b);
	cr_assert_eq(pkv_write(db, b, 0, NULL), 0, "an empty batch is no write");
	assert_val(db, "k", "v");
	pkv_batch_free(b);
	tu_close(db);
}

/* pkv_put_expire: future expiry reads as present, past as absent, across reopen and compaction. */
Test(write, put_expire)
{
	pkv_options o;
	pkv *db;
	pkv_batch *b;
	uint64_t past = now_ms() - 1000;

	tu_opts(&o, PKV_DURABLE_PROCESS);
	o.flags |= PKV_OPEN_NO_AUTOCOMPACT;
	db = tu_open(tu_db, &o);
	cr_assert_eq(pkv_put_expire(db, "later", 5, "L", 1, FAR_FUTURE, 0), 0);
	cr_assert_eq(pkv_put_expire(db, "past", 4, "P", 1, past, PKV_WRITE_POWER), 0);
	cr_assert_eq(pkv_put_expire(db, "never", 5, "N", 1, 0, 0), 0);
	cr_assert_eq(put_s(db, "shadow", "old"), 0);
	cr_assert_eq(pkv_put_expire(db, "shadow", 6, "new", 3, past, 0), 0);
	assert_val(db, "later", "L");
	assert_val(db, "past", NULL);
	assert_val(db, "never", "N");
	assert_val(db, "shadow", NULL); /* an expired version does not uncover an older one */
	cr_assert_eq(pkv_del(db, "past", 4), PKV_NOTFOUND, "an expired key is absent to del");
	cr_assert_eq(pkv_batch_new(&b), 0);
	cr_assert_eq(pkv_batch_put_expire(b, "bl", 2, "1", 1, FAR_FUTURE), 0);
	cr_assert_eq(pkv_batch_put_expire(b, "bp", 2, "2", 1, past), 0);
	cr_assert_eq(pkv_write(db, b, 0, NULL), 0);
	assert_val(db, "bl", "1");
	assert_val(db, "bp", NULL);
	tu_close(db);

	db = tu_open(tu_db, &o);
	assert_val(db, "later", "L");
	assert_val(db, "past", NULL);
	assert_val(db, "never", "N");
	assert_val(db, "shadow", NULL);
	assert_val(db, "bl", "1");
	assert_val(db, "bp", NULL);
	cr_assert_eq(pkv_compact(db), 0);
	cr_assert_eq(tu_stats(db).snapshot_keys, 3, "the compaction dropped the expired keys");
	cr_assert_eq(tu_stats(db).keys, 3, "and their memory: stats count later, never, bl");
	tu_close(db);

	db = tu_open(tu_db, &o);
	assert_val(db, "later", "L");
	assert_val(db, "past", NULL);
	assert_val(db, "shadow", NULL);
	assert_val(db, "bl", "1");
	cr_assert_eq(pkv_verify(db), 0);
	pkv_batch_free(b);
	tu_close(db);
}

/* In-memory stores (dir NULL) take batches, conditions, expiry and clear alike. */
Test(write, in_memory)
{
	pkv *db = NULL;
	pkv_batch *b;
	uint64_t s = 0;

	cr_assert_eq(pkv_open(NULL, NULL, &db), 0);
	cr_assert_eq(pkv_batch_new(&b), 0);
	bput(b, "a", "1");
	bput(b, "b", "2");
	bexpect(b, "a", 0);
	cr_assert_eq(pkv_write(db, b, PKV_WRITE_POWER, &s), 0);
	cr_assert_eq(s, 1);
	cr_assert_eq(pkv_write(db, b, 0, &s), PKV_ECONFLICT);
	cr_assert(version_is(db, "b", 1));
	cr_assert_eq(pkv_put_expire(db, "e", 1, "x", 1, 1, 0), 0);
	assert_val(db, "e", NULL);
	cr_assert_eq(pkv_clear(db), 0);
	assert_val(db, "a", NULL);
	cr_assert_eq(tu_stats(db).keys, 0);
	cr_assert_eq(put_s(db, "c", "3"), 0);
	assert_val(db, "c", "3");
	pkv_batch_free(b);
	tu_close(db);
}

/* ---- concurrency -------------------------------------------------------------------------- */

#define NKEYS 16

static void u64_str(char *out, uint64_t v)
{
	snprintf(out, 32, "%llu", (unsigned long long)v);
}

/*
 * The CAS register: one key "reg" holding the number of increments. A thread tries "expect reg
 * at version V, put reg = n + 1 and every counter = n + 1", where V and n come from the newest
 * successful write any thread published in a shared slot (published after pkv_write returned,
 * so it may lag: then the condition fails and the thread tries again with what it finds).
 */
struct reg_slot {
	pthread_mutex_t mu;
	uint64_t version;
	uint64_t value;
};

struct reg_arg {
	pkv *db;
	struct reg_slot *slot;
	int id;
	int iters;
	uint64_t done, refused;
	int err;
};

static void *reg_thread(void *p)
{
	struct reg_arg *a = p;
	pkv_batch *b;

	if (pkv_batch_new(&b) != 0) {
		a->err = -1;
		return NULL;
	}
	for (int it = 0; it < a->iters; it++) {
		uint64_t ver, val, s = 0;
		char v[32], k[16];
		int r;

		pthread_mutex_lock(&a->slot->mu);
		ver = a->slot->version;
		val = a->slot->value;
		pthread_mutex_unlock(&a->slot->mu);
		pkv_batch_clear(b);
		u64_str(v, val + 1);
		/* Keys in opposite orders per thread: pkv orders the locks. */
		for (int i = 0; i < NKEYS; i++) {
			int j = a->id % 2 ? NKEYS - 1 - i : i;

			snprintf(k, sizeof(k), "ctr%02d", j);
			if (pkv_batch_put(b, k, strlen(k), v, strlen(v)) != 0)
				a->err = -2;
		}
		if (pkv_batch_put(b, "reg", 3, v, strlen(v)) != 0 ||
		    pkv_batch_expect(b, "reg", 3, ver) != 0)
			a->err = -3;
		if (a->err)
			break;
		r = pkv_write(a->db, b, 0, &s);
		if (r == 0) {
			a->done++;
			pthread_mutex_lock(&a->slot->mu);
			if (s > a->slot->version) {
				a->slot->version = s;
				a->slot->value = val + 1;
			}
			pthread_mutex_unlock(&a->slot->mu);
		} else if (r == PKV_ECONFLICT) {
			a->refused++;
		} else {
			a->err = r;
			break;
		}
	}
	pkv_batch_free(b);
	return NULL;
}

/*
 * Four threads CAS one register and rewrite 16 counters in every batch, the threads building
 * their batches in opposite key orders: no deadlock (the test's timeout), no lost or doubled
 * increment (the register equals the successes), all 16 counters equal the register (no batch
 * seen in part once all returned), and the same after a reopen.
 */
Test(write, cas_register_no_deadlock, .timeout = 120)
{
	pkv_options o;
	pkv *db;
	struct reg_slot slot = { PTHREAD_MUTEX_INITIALIZER, 0, 0 };
	struct reg_arg args[4];
	pthread_t th[4];
	uint64_t done = 0, refused = 0;
	char want[32];

	tu_opts(&o, PKV_DURABLE_PROCESS);
	db = tu_open(tu_db, &o);
	for (int i = 0; i < 4; i++) {
		args[i] = (struct reg_arg){ .db = db, .slot = &slot, .id = i, .iters = 3000 };
		cr_assert_eq(pthread_create(&th[i], NULL, reg_thread, &args[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		cr_assert_eq(args[i].err, 0, "thread %d: %s", i, pkv_strerror(args[i].err));
		done += args[i].done;
		refused += args[i].refused;
	}
	cr_assert_gt(done, 0);
	cr_assert_eq(done, slot.value, "every committed CAS is one increment (%llu vs %llu)",
		     (unsigned long long)done, (unsigned long long)slot.value);
	u64_str(want, done);
	for (int round = 0; round < 2; round++) {
		char k[16];

		assert_val(db, "reg", want);
		for (int i = 0; i < NKEYS; i++) {
			snprintf(k, sizeof(k), "ctr%02d", i);
			assert_val(db, k, want);
		}
		cr_assert(version_is(db, "reg", slot.version));
		cr_assert_eq(tu_stats(db).last_seq, done, "only committed batches took numbers");
		if (round == 0) {
			tu_close(db);
			db = tu_open(tu_db, &o);
		}
	}
	(void)refused;
	tu_close(db);
}

/* ---- across reopen, in every durability mode ---------------------------------------------- */

#define BKEYS 8

/* Batch n of the history: keys k0..k7 := "n", "count" := n, and every third batch deletes k7
 * and puts "exp" with a far expiry and "gone" with a past one. It expects "count" at the
 * previous batch's version (a CAS chain: batch n applies only on top of batch n-1). */
static void history_batch(pkv_batch *b, uint64_t n, uint64_t prev_seq)
{
	char k[16], v[32];

	pkv_batch_clear(b);
	u64_str(v, n);
	for (int j = 0; j < BKEYS; j++) {
		snprintf(k, sizeof(k), "k%d", j);
		if (j == BKEYS - 1 && n % 3 == 0)
			cr_assert_eq(pkv_batch_del(b, k, strlen(k)), 0);
		else
			cr_assert_eq(pkv_batch_put(b, k, strlen(k), v, strlen(v)), 0);
	}
	cr_assert_eq(pkv_batch_put(b, "count", 5, v, strlen(v)), 0);
	cr_assert_eq(pkv_batch_expect(b, "count", 5, prev_seq), 0);
	if (n % 3 == 0) {
		cr_assert_eq(pkv_batch_put_expire(b, "exp", 3, v, strlen(v), FAR_FUTURE), 0);
		cr_assert_eq(pkv_batch_put_expire(b, "gone", 4, v, strlen(v), 1), 0);
	}
}

/* The batch count the store holds, after checking that it holds batch n whole (and nothing of
 * n + 1). Returns 0 for an empty store. Uses cr_assert: only in the test process. */
static uint64_t check_history(pkv *db)
{
	const char *c = get_s(db, "count");
	char k[16], want[32];
	uint64_t n;

	if (c == NULL) {
		for (int j = 0; j < BKEYS; j++) {
			snprintf(k, sizeof(k), "k%d", j);
			assert_val(db, k, NULL);
		}
		return 0;
	}
	n = strtoull(c, NULL, 10);
	u64_str(want, n);
	for (int j = 0; j < BKEYS; j++) {
		snprintf(k, sizeof(k), "k%d", j);
		assert_val(db, k, j == BKEYS - 1 && n % 3 == 0 ? NULL : want);
	}
	if (n >= 3) {
		char e[32];

		u64_str(e, n - n % 3);
		assert_val(db, "exp", e);
	} else {
		assert_val(db, "exp", NULL);
	}
	assert_val(db, "gone", NULL);
	return n;
}

ParameterizedTestParameters(write, reopen_all_or_nothing)
{
	return cr_make_param_array(enum pkv_durability, (void *)tu_modes, 3);
}

/* Batches survive a reopen whole; the CAS chain continues from the reopened state. */
ParameterizedTest(enum pkv_durability *mode, write, reopen_all_or_nothing)
{
	pkv_options o;
	pkv *db;
	pkv_batch *b;
	uint64_t seq = 0, n = 0;

	tu_opts(&o, *mode);
	o.wal_segment_bytes = 64u << 10; /* batches cross segment boundaries */
	cr_assert_eq(pkv_batch_new(&b), 0);
	for (int round = 0; round < 4; round++) {
		db = tu_open(tu_db, &o);
		cr_assert_eq(check_history(db), n, "round %d: %llu batches", round,
			     (unsigned long long)n);
		for (int i = 0; i < 300; i++) {
			history_batch(b, n + 1, seq);
			cr_assert_eq(pkv_write(db, b, 0, &seq), 0);
			n++;
		}
		if (round == 1)
			cr_assert_eq(pkv_compact(db), 0);
		tu_close(db);
	}
	pkv_batch_free(b);
}

/* ---- SIGKILL ------------------------------------------------------------------------------ */

/*
 * A child writes history batches and reports each acknowledged one through a pipe; the parent
 * kills it after a number of acks (at a random moment), reopens and checks that the store holds
 * batch n whole, with n >= the last ack (every mode covers a process kill) and n <= ack + 1.
 * The test process calls pkv only after its child is gone.
 */
static void kill_cycle(enum pkv_durability mode, int cycles)
{
	uint64_t acked = 0;

	for (int c = 0; c < cycles; c++) {
		int fds[2];
		pid_t pid;
		uint64_t got = 0, v, have;
		pkv_options o;
		pkv *db;

		cr_assert_eq(pipe(fds), 0);
		pid = fork();
		cr_assert_neq(pid, -1);
		if (pid == 0) {
			pkv_batch *b;
			uint64_t seq = 0, n;
			char vbuf[32];
			size_t vl = 0;

			close(fds[0]);
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			tu_opts(&o, mode);
			o.wal_segment_bytes = 64u << 10;
			if (pkv_open(tu_db, &o, &db) != 0 || pkv_batch_new(&b) != 0)
				_exit(3);
			/* Where the history stands, and the version to expect. */
			n = 0;
			if (pkv_get(db, "count", 5, vbuf, sizeof(vbuf) - 1, &vl) == 0) {
				vbuf[vl] = '\0';
				n = strtoull(vbuf, NULL, 10);
			}
			if (n > 0) {
				/* Learn count's version (a condition cannot tell it): rewrite count
				 * with its own value, and continue the chain from that seq. */
				pkv_batch_clear(b);
				if (pkv_batch_put(b, "count", 5, vbuf, vl) != 0 ||
				    pkv_batch_expect(b, "count", 5, PKV_ANY) != 0 ||
				    pkv_write(db, b, 0, &seq) != 0)
					_exit(5);
			}
			for (uint64_t i = 0; i < 1000000; i++) {
				char k[16], val[32];
				int r;

				pkv_batch_clear(b);
				u64_str(val, n + 1);
				for (int j = 0; j < BKEYS; j++) {
					snprintf(k, sizeof(k), "k%d", j);
					if (j == BKEYS - 1 && (n + 1) % 3 == 0)
						r = pkv_batch_del(b, k, strlen(k));
					else
						r = pkv_batch_put(b, k, strlen(k), val,
								  strlen(val));
					if (r != 0)
						_exit(6);
				}
				r = pkv_batch_put(b, "count", 5, val, strlen(val));
				r |= pkv_batch_expect(b, "count", 5, seq);
				if ((n + 1) % 3 == 0) {
					r |= pkv_batch_put_expire(b, "exp", 3, val, strlen(val),
								  FAR_FUTURE);
					r |= pkv_batch_put_expire(b, "gone", 4, val, strlen(val),
								  1);
				}
				if (r != 0 || pkv_write(db, b, 0, &seq) != 0)
					_exit(7);
				n++;
				if (!tu_write_full(fds[1], &n, sizeof(n)))
					_exit(8);
			}
			_exit(0);
		}
		close(fds[1]);
		/* Let it write a varying number of batches, then kill it mid-stream. */
		for (int i = 0; i < 50 + (c * 37) % 200; i++) {
			if (tu_read_full(fds[0], &v, sizeof(v)) != sizeof(v))
				break;
			got = v;
		}
		kill(pid, SIGKILL);
		while (tu_read_full(fds[0], &v, sizeof(v)) == sizeof(v))
			got = v;
		close(fds[0]);
		{
			int st;

			cr_assert_eq(waitpid(pid, &st, 0), pid);
			cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
				  "the child ended by itself (status %d)", st);
		}
		if (got > acked)
			acked = got;
		tu_opts(&o, mode);
		o.wal_segment_bytes = 64u << 10;
		db = tu_open(tu_db, &o);
		have = check_history(db);
		cr_assert_geq(have, acked, "cycle %d: acknowledged batch %llu lost (store at %llu)",
			      c, (unsigned long long)acked, (unsigned long long)have);
		cr_assert_leq(have, acked + 1, "cycle %d: store at %llu beyond ack %llu + 1", c,
			      (unsigned long long)have, (unsigned long long)acked);
		acked = have;
		tu_close(db);
	}
}

ParameterizedTestParameters(write, kill9_all_or_nothing)
{
	return cr_make_param_array(enum pkv_durability, (void *)tu_modes, 3);
}

ParameterizedTest(enum pkv_durability *mode, write, kill9_all_or_nothing)
{
	kill_cycle(*mode, 8);
}

/* ---- a torn batch record ------------------------------------------------------------------ */

/* Cut the last batch record at several byte offsets: it is a torn tail, nothing of it applies,
 * and what came before is intact. */
Test(write, torn_batch_is_torn_tail)
{
	pkv_options o;
	pkv *db;
	pkv_batch *b;
	struct tu_wal w;
	int last;
	char src[PATH_MAX], copy[PATH_MAX];
	off_t off;
	uint32_t len;
	const char *file;

	tu_opts(&o, PKV_DURABLE_PROCESS);
	o.wal_lanes = 1;
	o.wal_segment_bytes = 64u << 10;
	db = tu_open(tu_db, &o);
	cr_assert_eq(pkv_batch_new(&b), 0);
	bput(b, "a", "1");
	bput(b, "b", "1");
	cr_assert_eq(pkv_write(db, b, 0, NULL), 0);
	pkv_batch_clear(b);
	bput(b, "a", "2");
	bput(b, "b", "2");
	bdel(b, "c");
	cr_assert_eq(pkv_batch_put_expire(b, "d", 1, "2", 1, FAR_FUTURE), 0);
	cr_assert_eq(pkv_write(db, b, 0, NULL), 0);
	tu_close(db);

	tu_wal_read(tu_db, &w);
	last = tu_wal_last(&w);
	cr_assert_geq(last, 0);
	cr_assert_eq(w.recs[last].type, TU_REC_BATCH, "the last record is the batch");
	off = w.recs[last].off;
	len = w.recs[last].len;
	file = w.files[w.recs[last].file];
	tu_copy_tree(tu_db, (tu_path(src, "pristine"), src));
	for (uint32_t cut = 1; cut < len; cut += (cut < 40 ? 1 : 13)) {
		tu_rm_rf(tu_db);
		tu_copy_tree(src, tu_db);
		tu_fmt(copy, sizeof(copy), "%s/wal/%s", tu_db, strrchr(file, '/') + 1);
		tu_truncate(copy, off + cut);
		db = tu_open(tu_db, &o);
		assert_val(db, "a", "1");
		assert_val(db, "b", "1");
		assert_val(db, "d", NULL);
		cr_assert_eq(tu_stats(db).last_seq, 1, "cut at %u: the batch is gone whole", cut);
		tu_close(db);
	}
	/* A flipped byte inside the batch's body: the same. */
	tu_rm_rf(tu_db);
	tu_copy_tree(src, tu_db);
	tu_fmt(copy, sizeof(copy), "%s/wal/%s", tu_db, strrchr(file, '/') + 1);
	{
		unsigned char x;
		size_t n;
		unsigned char *all = tu_read_file(copy, &n);

		x = all[off + len - 3] ^ 0x40;
		free(all);
		tu_write_at(copy, off + len - 3, &x, 1);
	}
	db = tu_open(tu_db, &o);
	assert_val(db, "a", "1");
	assert_val(db, "d", NULL);
	cr_assert_geq(tu_stats(db).discarded_bytes, len, "the damaged batch is discarded whole");
	cr_assert_eq(tu_stats(db).last_seq, 1);
	tu_close(db);
	tu_wal_free(&w);
	pkv_batch_free(b);
}

/* ---- pkv_clear ---------------------------------------------------------------------------- */

ParameterizedTestParameters(write, clear_reopen)
{
	return cr_make_param_array(enum pkv_durability, (void *)tu_modes, 3);
}

/* Clear over a snapshot base and a WAL tail, then writes after it; across reopen and after a
 * compaction. */
ParameterizedTest(enum pkv_durability *mode, write, clear_reopen)
{
	pkv_options o;
	pkv *db;
	char k[16];

	tu_opts(&o, *mode);
	o.flags |= PKV_OPEN_NO_AUTOCOMPACT;
	db = tu_open(tu_db, &o);
	for (int i = 0; i < 100; i++) {
		snprintf(k, sizeof(k), "base%d", i);
		cr_assert_eq(put_s(db, k, "b"), 0);
	}
	cr_assert_eq(pkv_compact(db), 0);
	for (int i = 0; i < 50; i++) {
		snprintf(k, sizeof(k), "tail%d", i);
		cr_assert_eq(put_s(db, k, "t"), 0);
	}
	cr_assert_eq(pkv_put_expire(db, "exp", 3, "e", 1, FAR_FUTURE, 0), 0);
	cr_assert_eq(pkv_clear(db), 0);
	cr_assert_eq(tu_stats(db).keys, 0);
	assert_val(db, "base7", NULL);
	assert_val(db, "tail7", NULL);
	assert_val(db, "exp", NULL);
	cr_assert(version_is(db, "base7", 0));
	cr_assert_eq(put_s(db, "after", "1"), 0);
	cr_assert_eq(pkv_del(db, "base8", 5), PKV_NOTFOUND);
	cr_assert_eq(pkv_clear(db), 0);
	cr_assert_eq(put_s(db, "after2", "2"), 0);
	tu_close(db);

	for (int round = 0; round < 3; round++) {
		db = tu_open(tu_db, &o);
		cr_assert_eq(tu_stats(db).keys, 1, "round %d", round);
		assert_val(db, "base7", NULL);
		assert_val(db, "tail7", NULL);
		assert_val(db, "after", NULL);
		assert_val(db, "after2", "2");
		if (round == 1)
			cr_assert_eq(pkv_compact(db), 0);
		tu_close(db);
	}
}

/* A clear survives a SIGKILL right after it returned, in every mode (the process died without
 * pkv_close); the base it disregards is still on disk then. */
ParameterizedTestParameters(write, clear_kill9)
{
	return cr_make_param_array(enum pkv_durability, (void *)tu_modes, 3);
}

ParameterizedTest(enum pkv_durability *mode, write, clear_kill9)
{
	int fds[2], st;
	pid_t pid;
	char c = 0;
	pkv_options o;
	pkv *db;

	cr_assert_eq(pipe(fds), 0);
	pid = fork();
	cr_assert_neq(pid, -1);
	if (pid == 0) {
		char k[16];

		close(fds[0]);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		tu_opts(&o, *mode);
		o.flags |= PKV_OPEN_NO_AUTOCOMPACT;
		if (pkv_open(tu_db, &o, &db) != 0)
			_exit(3);
		for (int i = 0; i < 200; i++) {
			snprintf(k, sizeof(k), "key%d", i);
			if (put_s(db, k, "v") != 0)
				_exit(4);
			if (i == 99 && pkv_compact(db) != 0)
				_exit(5);
		}
		if (pkv_clear(db) != 0 || put_s(db, "after", "1") != 0)
			_exit(6);
		c = 'A';
		if (!tu_write_full(fds[1], &c, 1))
			_exit(7);
		for (;;)
			pause();
	}
	close(fds[1]);
	cr_assert_eq(tu_read_full(fds[0], &c, 1), 1, "the child did not report");
	cr_assert_eq(c, 'A');
	kill(pid, SIGKILL);
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	close(fds[0]);
	tu_opts(&o, *mode);
	db = tu_open(tu_db, &o);
	cr_assert_eq(tu_stats(db).keys, 1);
	assert_val(db, "key5", NULL);
	assert_val(db, "key150", NULL);
	assert_val(db, "after", "1");
	tu_close(db);
}

/*
 * pkv_get_many never shows a batch in part (map.c M.7), seen from the batch side: two writers
 * rewrite 8 keys to one common value per batch, in opposite key orders, while a compactor runs
 * now and then; two readers get_many all 8 and require 8 equal values with equal seqs. The
 * negative control is test_map's get_many_shows_a_batch_in_part_without_the_counters: the
 * same check, against batches that skip the counters, finds one in part.
 */
struct many_arg {
	pkv *db;
	int id;
	volatile int *stop;
	uint64_t rounds;
	int bad;
};

static void *many_writer(void *p)
{
	struct many_arg *a = p;
	pkv_batch *b;
	char k[8], v[32];

	cr_assert_eq(pkv_batch_new(&b), 0);
	for (uint64_t r = 0; !*a->stop && r < 200000; r++) {
		int len = snprintf(v, sizeof(v), "w%d-%llu", a->id, (unsigned long long)r);

		pkv_batch_clear(b);
		for (int i = 0; i < 8; i++) {
			int j = a->id ? 7 - i : i;

			snprintf(k, sizeof(k), "g%d", j);
			if (pkv_batch_put(b, k, strlen(k), v, (size_t)len) != 0)
				a->bad++;
		}
		if (pkv_write(a->db, b, 0, NULL) != 0)
			a->bad++;
		if (a->id == 0 && r % 512 == 0 && pkv_compact(a->db) != 0)
			a->bad++;
		a->rounds++;
	}
	pkv_batch_free(b);
	return NULL;
}

static void *many_reader(void *p)
{
	struct many_arg *a = p;
	char keys[8][8];
	pkv_item it[8];

	for (int i = 0; i < 8; i++)
		snprintf(keys[i], sizeof(keys[i]), "g%d", i);
	while (!*a->stop) {
		for (int i = 0; i < 8; i++)
			it[i] = (pkv_item){ .key = keys[i], .klen = strlen(keys[i]) };
		if (pkv_read_begin(a->db) != 0) {
			a->bad++;
			break;
		}
		if (pkv_get_many(a->db, it, 8) != 8)
			a->bad++;
		for (int i = 1; i < 8; i++)
			if (it[i].seq != it[0].seq || it[i].vlen != it[0].vlen ||
			    memcmp(it[i].val, it[0].val, it[0].vlen) != 0)
				a->bad++;
		pkv_read_end(a->db);
		a->rounds++;
	}
	return NULL;
}

Test(write, get_many_never_sees_a_batch_in_part, .timeout = 120)
{
	pkv_options o;
	pkv *db;
	pkv_batch *b;
	volatile int stop = 0;
	struct many_arg w[2], rd[2];
	pthread_t tw[2], tr[2];

	tu_opts(&o, PKV_DURABLE_PROCESS);
	db = tu_open(tu_db, &o);
	cr_assert_eq(pkv_batch_new(&b), 0);
	for (int i = 0; i < 8; i++) {
		char k[8];

		snprintf(k, sizeof(k), "g%d", i);
		cr_assert_eq(pkv_batch_put(b, k, strlen(k), "init", 4), 0);
	}
	cr_assert_eq(pkv_write(db, b, 0, NULL), 0);
	pkv_batch_free(b);
	for (int i = 0; i < 2; i++) {
		w[i] = (struct many_arg){ .db = db, .id = i, .stop = &stop };
		rd[i] = (struct many_arg){ .db = db, .id = i, .stop = &stop };
		cr_assert_eq(pthread_create(&tw[i], NULL, many_writer, &w[i]), 0);
		cr_assert_eq(pthread_create(&tr[i], NULL, many_reader, &rd[i]), 0);
	}
	usleep(1500 * 1000);
	stop = 1;
	for (int i = 0; i < 2; i++) {
		pthread_join(tw[i], NULL);
		pthread_join(tr[i], NULL);
	}
	for (int i = 0; i < 2; i++) {
		cr_expect_eq(w[i].bad, 0, "writer %d: %d failed calls", i, w[i].bad);
		cr_expect_eq(rd[i].bad, 0, "reader %d saw a batch in part %d times", i, rd[i].bad);
	}
	cr_assert_gt(w[0].rounds + w[1].rounds, 10, "the writers ran");
	cr_assert_gt(rd[0].rounds + rd[1].rounds, 10, "the readers ran");
	tu_close(db);
}
