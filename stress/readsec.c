/* SPDX-License-Identifier: MIT */
/*
 * readsec.c - zero-copy reads under fire: readers hold pointers from pkv_get_ref and
 * pkv_get_many inside read sections while writers overwrite and delete the same keys and a
 * compactor swaps the snapshot; the bytes under every held pointer must stay what they were
 * (checksummed when taken, checked again and again until pkv_read_end), and every value a
 * reader sees must be one a writer wrote for that key (read.c RD.1 - RD.5).
 *
 * Plain pthreads, so that it runs under ThreadSanitizer (Criterion does not start there): a
 * record freed or a snapshot unmapped while a section still holds it shows up as a TSan or ASan
 * report, or as a checksum that changed.
 *
 *   --seconds N     run time (default 5)
 *   --keys N        keys (default 64: readers and writers meet on the same records)
 *   --readers N     reader threads (default 2); --writers N (default 1)
 *   --compact-ms N  a compaction every N ms (default 20; 0: none)
 *   --mem           an in-memory store (no compactor)
 *   --seed N
 * Prints its figures and "N passed, M failed"; exits 1 on any failure.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pkv.h"
#include "stress_util.h"

#define MAX_HELD 48
#define VAL_MAX 600

static struct {
	double seconds;
	uint64_t keys, readers, writers, compact_ms, seed;
	bool mem;
} opt = { 5, 64, 2, 1, 20, 1, false };

static const struct su_opt options[] = {
	SU_OPT("seconds", SU_OPT_DOUBLE, &opt.seconds, "run time (default 5)"),
	SU_OPT("keys", SU_OPT_U64, &opt.keys, "keys (default 64)", .min = 1, .max = 1000000),
	SU_OPT("readers", SU_OPT_U64, &opt.readers, "reader threads (default 2)", .min = 1,
	       .max = 16),
	SU_OPT("writers", SU_OPT_U64, &opt.writers, "writer threads (default 1)", .max = 16),
	SU_OPT("compact-ms", SU_OPT_U64, &opt.compact_ms,
	       "a compaction every N ms (default 20; 0: none)", .max = 3600000),
	SU_OPT("mem", SU_OPT_FLAG, &opt.mem, "an in-memory store (no compactor)"),
	SU_OPT("seed", SU_OPT_U64, &opt.seed, "seed (default 1)"),
	SU_OPT_END
};

static pkv *db;
static atomic_int stop;
static atomic_ullong failures, checks, sections, held_total, compactions, writes;

static void fail(const char *what, uint64_t key)
{
	if (atomic_fetch_add(&failures, 1) < 10)
		fprintf(stderr, "FAIL: %s (key %llu)\n", what, (unsigned long long)key);
}

static size_t key_of(char *k, uint64_t i)
{
	return (size_t)snprintf(k, 32, "readsec-%llu", (unsigned long long)i);
}

/*
 * A value says which key and version it was written for, and carries a checksum of the rest:
 * [key u64][version u64][len u32][fnv u64 of the body][body]. The body's length varies with the
 * version, so records of different sizes come and go.
 */
static size_t make_value(unsigned char *v, uint64_t key, uint64_t version)
{
	uint32_t body = (uint32_t)(su_hash3(key, version, 7) % (VAL_MAX - 28));
	uint64_t sum;

	memcpy(v, &key, 8);
	memcpy(v + 8, &version, 8);
	memcpy(v + 16, &body, 4);
	su_fill(v + 28, body, su_hash3(key, version, 11));
	sum = su_fnv(14695981039346656037ull, v + 28, body);
	memcpy(v + 20, &sum, 8);
	return 28 + body;
}

/* Was @v (@len bytes) written by a writer for @key? */
static int value_ok(const unsigned char *v, size_t len, uint64_t key)
{
	uint64_t k, sum;
	uint32_t body;

	if (len < 28)
		return 0;
	memcpy(&k, v, 8);
	memcpy(&body, v + 16, 4);
	memcpy(&sum, v + 20, 8);
	return k == key && len == 28 + (size_t)body &&
	       su_fnv(14695981039346656037ull, v + 28, body) == sum;
}

static void *writer_main(void *arg)
{
	struct su_rng r;
	unsigned char v[VAL_MAX];
	char k[32];
	uint64_t version = 1;

	su_rng_seed(&r, opt.seed * 1000 + (uintptr_t)arg);
	while (!atomic_load(&stop)) {
		uint64_t key = su_rng_below(&r, opt.keys);
		size_t kl = key_of(k, key);
		int rc;

		if (su_rng_below(&r, 8) == 0) {
			rc = pkv_del(db, k, kl);
			if (rc == PKV_NOTFOUND)
				rc = 0;
		} else {
			size_t vl = make_value(v, key, version++ * 16 + (uintptr_t)arg);

			rc = pkv_put(db, k, kl, v, vl);
		}
		if (rc != 0) {
			fail(pkv_strerror(rc), key);
			break;
		}
		atomic_fetch_add(&writes, 1);
	}
	return NULL;
}

static void *compactor_main(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop)) {
		int rc = pkv_compact(db);

		if (rc != 0) {
			fail("pkv_compact failed", 0);
			break;
		}
		atomic_fetch_add(&compactions, 1);
		su_sleep_ms((double)opt.compact_ms);
	}
	return NULL;
}

struct held {
	const unsigned char *p;
	size_t len;
	uint64_t key, sum;
};

/* Check that every held pointer still shows the bytes it showed when it was taken. */
static void recheck(const struct held *h, int n)
{
	for (int i = 0; i < n; i++) {
		if (su_fnv(14695981039346656037ull, h[i].p, h[i].len) != h[i].sum)
			fail("the bytes under a held pointer changed inside the section", h[i].key);
		atomic_fetch_add(&checks, 1);
	}
}

static int hold(struct held *h, int n, const void *p, size_t len, uint64_t key)
{
	if (!value_ok(p, len, key)) {
		fail("a value that no writer wrote for its key", key);
		return n;
	}
	if (n == MAX_HELD)
		return n;
	h[n].p = p;
	h[n].len = len;
	h[n].key = key;
	h[n].sum = su_fnv(14695981039346656037ull, p, len);
	return n + 1;
}

static void *reader_main(void *arg)
{
	struct su_rng r;
	struct held h[MAX_HELD];
	pkv_item it[16];
	char keys[16][32];

	su_rng_seed(&r, opt.seed * 7777 + (uintptr_t)arg);
	while (!atomic_load(&stop)) {
		int n = 0, rc;

		if ((rc = pkv_read_begin(db)) != 0) {
			fail("pkv_read_begin failed", 0);
			break;
		}
		/* Round 1: single zero-copy gets. */
		for (int j = 0; j < 8; j++) {
			uint64_t key = su_rng_below(&r, opt.keys);
			const void *p;
			size_t len;

			key_of(keys[0], key);
			rc = pkv_get_ref(db, keys[0], strlen(keys[0]), &p, &len, NULL);
			if (rc == 0)
				n = hold(h, n, p, len, key);
			else if (rc != PKV_NOTFOUND)
				fail(pkv_strerror(rc), key);
		}
		/* Let the writers and the compactor run, then look again. */
		for (int spin = 0; spin < (int)su_rng_below(&r, 2000); spin++)
			__asm__ __volatile__("" ::: "memory");
		recheck(h, n);
		/* Round 2: a nested section and a multi-get. */
		if ((rc = pkv_read_begin(db)) != 0) {
			fail("nested pkv_read_begin failed", 0);
			pkv_read_end(db);
			break;
		}
		for (int j = 0; j < 16; j++) {
			it[j].key = keys[j];
			it[j].klen = key_of(keys[j], su_rng_below(&r, opt.keys));
		}
		rc = pkv_get_many(db, it, 16);
		if (rc < 0)
			fail("pkv_get_many failed", 0);
		for (int j = 0; rc >= 0 && j < 16; j++) {
			uint64_t key = strtoull(keys[j] + 8, NULL, 10);

			if (it[j].rc == 0)
				n = hold(h, n, it[j].val, it[j].vlen, key);
			else if (it[j].rc != PKV_NOTFOUND)
				fail(pkv_strerror(it[j].rc), key);
		}
		pkv_read_end(db); /* the inner end: everything stays valid */
		su_sleep_ms(su_rng_below(&r, 4) == 0 ? 1.0 : 0.0);
		recheck(h, n);
		atomic_fetch_add(&held_total, (unsigned long long)n);
		atomic_fetch_add(&sections, 1);
		pkv_read_end(db);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t th[64];
	int nth = 0;
	char dir[4096] = "";
	unsigned long long f;

	su_opts_parse(argc, argv, "readsec", options, NULL);
	if (!opt.mem && su_mktemp_dir(dir, sizeof(dir), "readsec") != 0) {
		fprintf(stderr, "cannot make a temporary directory\n");
		return 1;
	}
	if (pkv_open(opt.mem ? NULL : dir, NULL, &db) != 0) {
		fprintf(stderr, "pkv_open failed\n");
		return 1;
	}
	for (uint64_t i = 0; i < opt.writers; i++)
		pthread_create(&th[nth++], NULL, writer_main, (void *)(uintptr_t)(i + 1));
	for (uint64_t i = 0; i < opt.readers; i++)
		pthread_create(&th[nth++], NULL, reader_main, (void *)(uintptr_t)(i + 1));
	if (!opt.mem && opt.compact_ms > 0)
		pthread_create(&th[nth++], NULL, compactor_main, NULL);
	su_sleep_ms(opt.seconds * 1000);
	atomic_store(&stop, 1);
	for (int i = 0; i < nth; i++)
		pthread_join(th[i], NULL);
	if (pkv_close(db) != 0)
		fail("pkv_close failed", 0);
	if (!opt.mem)
		su_rmtree(dir);
	f = atomic_load(&failures);
	printf("readsec: %llu sections, %llu pointers held, %llu checks of held bytes, %llu writes, "
	       "%llu compactions (%s store, %llu keys)\n",
	       atomic_load(&sections), atomic_load(&held_total), atomic_load(&checks),
	       atomic_load(&writes), atomic_load(&compactions), opt.mem ? "in-memory" : "disk",
	       (unsigned long long)opt.keys);
	if (atomic_load(&sections) == 0 || atomic_load(&held_total) == 0)
		fail("no section held any pointer: the run tested nothing", 0), f++;
	printf("%llu passed, %llu failed\n", f ? 0ull : 1ull, f ? f : 0ull);
	return f ? 1 : 0;
}
