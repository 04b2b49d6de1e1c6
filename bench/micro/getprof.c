/* SPDX-License-Identifier: MIT */
/*
 * micro/getprof.c - pkv_get next to raw ck_ht in one process, for profilers.
 *
 * usage: micro_getprof DIR|- [KEYS] [GETS] [VLEN] [compact]
 *   DIR is removed and rewritten ("-" opens pkv in memory). Loads KEYS 16-byte keys with
 *   VLEN-byte values (default 100) into pkv (library defaults, capacity_hint = KEYS) and into a
 *   presized ck_ht built as bench/ad_ckht.c builds it; "compact" runs pkv_compact after the load,
 *   which is what the bench's stores look like once the background compactor has run. Then the
 *   same pre-generated random stream of GETS keys is read from each, in alternating slices.
 *
 * The get loops are the functions run_pkv and run_ckht, so that a profiler can single them out:
 *   valgrind --tool=callgrind --toggle-collect=run_pkv --toggle-collect=run_ckht \
 *            build-bench/bench/micro_getprof - 200000 2000000
 *   valgrind --tool=cachegrind ...  (then cg_annotate)
 * Natively it prints ns per get of each and their ratio (interleaved slices, medians), and the
 * same ratio for pkv_get_ref (a section per get) and pkv_get_many (batches of 32).
 */
#include <ck_ht.h>
#include <pkv.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../hash.h"

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void *hm(size_t n)
{
	return malloc(n);
}

static void hf(void *p, size_t n, bool d)
{
	(void)n;
	(void)d;
	free(p);
}

static struct ck_malloc A = { .malloc = hm, .free = hf };

struct blk {
	uint32_t vlen;
	uint16_t klen;
	uint8_t data[];
};

static volatile uint64_t sink;

__attribute__((noinline)) uint64_t run_pkv(pkv *db, const char (*keys)[16], const uint32_t *idx,
					   size_t n, char *buf, size_t cap);
__attribute__((noinline)) uint64_t run_pkv(pkv *db, const char (*keys)[16], const uint32_t *idx,
					   size_t n, char *buf, size_t cap)
{
	uint64_t s = 0;
	size_t vl;

	for (size_t i = 0; i < n; i++) {
		if (pkv_get(db, keys[idx[i]], 16, buf, cap, &vl) == 0)
			s += vl + (unsigned char)buf[0];
	}
	return s;
}

__attribute__((noinline)) uint64_t run_ref(pkv *db, const char (*keys)[16], const uint32_t *idx,
					   size_t n);
__attribute__((noinline)) uint64_t run_ref(pkv *db, const char (*keys)[16], const uint32_t *idx,
					   size_t n)
{
	uint64_t s = 0;

	for (size_t i = 0; i < n; i++) {
		const void *v;
		size_t vl;

		pkv_read_begin(db);
		if (pkv_get_ref(db, keys[idx[i]], 16, &v, &vl, NULL) == 0)
			s += vl + *(const unsigned char *)v;
		pkv_read_end(db);
	}
	return s;
}

__attribute__((noinline)) uint64_t run_many(pkv *db, const char (*keys)[16], const uint32_t *idx,
					    size_t n);
__attribute__((noinline)) uint64_t run_many(pkv *db, const char (*keys)[16], const uint32_t *idx,
					    size_t n)
{
	pkv_item it[32];
	uint64_t s = 0;

	for (size_t i = 0; i + 32 <= n; i += 32) {
		for (int j = 0; j < 32; j++) {
			it[j].key = keys[idx[i + (size_t)j]];
			it[j].klen = 16;
		}
		pkv_read_begin(db);
		pkv_get_many(db, it, 32);
		for (int j = 0; j < 32; j++)
			if (it[j].rc == 0)
				s += it[j].vlen + *(const unsigned char *)it[j].val;
		pkv_read_end(db);
	}
	return s;
}

__attribute__((noinline)) uint64_t run_ckht(ck_ht_t *ht, const char (*keys)[16],
					    const uint32_t *idx, size_t n, char *buf, size_t cap);
__attribute__((noinline)) uint64_t run_ckht(ck_ht_t *ht, const char (*keys)[16],
					    const uint32_t *idx, size_t n, char *buf, size_t cap)
{
	uint64_t s = 0;

	for (size_t i = 0; i < n; i++) {
		ck_ht_hash_t h;
		ck_ht_entry_t e;
		const void *k = keys[idx[i]];

		ck_ht_hash(&h, ht, k, 16);
		ck_ht_entry_key_set(&e, k, 16);
		if (ck_ht_get_spmc(ht, h, &e)) {
			const struct blk *b = ck_ht_entry_value(&e);
			size_t vl = b->vlen;

			memcpy(buf, b->data + b->klen, cap < vl ? cap : vl);
			s += vl + (unsigned char)buf[0];
		}
	}
	return s;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "-";
	size_t n = argc > 2 ? strtoul(argv[2], NULL, 0) : 1000000;
	size_t gets = argc > 3 ? strtoul(argv[3], NULL, 0) : 4000000;
	size_t vlen = argc > 4 ? strtoul(argv[4], NULL, 0) : 100;
	int compact = argc > 5 && strcmp(argv[5], "compact") == 0;
	char (*keys)[16] = malloc(16 * n);
	uint32_t *idx = malloc(sizeof(*idx) * gets);
	char *val = malloc(vlen + 1), *buf = malloc(vlen + 1);
	uint64_t rng = 42;
	pkv_options o;
	pkv *db;
	ck_ht_t ht;
	double tp[9], tc[9], ratio[9], rref[9], rmany[9];
	int rc;

	for (size_t i = 0; i < n; i++) {
		uint64_t a = murmur64a(&i, sizeof(i), 1), b = murmur64a(&i, sizeof(i), 2);

		memcpy(keys[i], &a, 8);
		memcpy(keys[i] + 8, &b, 8);
	}
	for (size_t i = 0; i < gets; i++) {
		rng ^= rng << 13;
		rng ^= rng >> 7;
		rng ^= rng << 17;
		idx[i] = (uint32_t)(rng % n);
	}
	memset(val, 'v', vlen + 1);

	pkv_options_default(&o);
	o.capacity_hint = n;
	if (strcmp(dir, "-") != 0) {
		char cmd[512];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		(void)!system(cmd);
	}
	rc = pkv_open(strcmp(dir, "-") ? dir : NULL, &o, &db);
	if (rc) {
		fprintf(stderr, "pkv_open: %s\n", pkv_strerror(rc));
		return 1;
	}
	if (!ck_ht_init(&ht, CK_HT_MODE_BYTESTRING, NULL, &A, n * 2 + 16, 0x9e3779b97f4a7c15ull))
		return 1;
	for (size_t i = 0; i < n; i++) {
		struct blk *b = malloc(sizeof(*b) + 16 + vlen);
		ck_ht_entry_t e;
		ck_ht_hash_t h;

		b->vlen = (uint32_t)vlen;
		b->klen = 16;
		memcpy(b->data, keys[i], 16);
		memcpy(b->data + 16, val, vlen);
		ck_ht_hash(&h, &ht, b->data, 16);
		ck_ht_entry_set(&e, h, b->data, 16, b);
		ck_ht_set_spmc(&ht, h, &e);
		if ((rc = pkv_put(db, keys[i], 16, val, vlen)) != 0) {
			fprintf(stderr, "pkv_put: %s\n", pkv_strerror(rc));
			return 1;
		}
	}
	if (compact && (rc = pkv_compact(db)) != 0) {
		fprintf(stderr, "pkv_compact: %s\n", pkv_strerror(rc));
		return 1;
	}
	{
		pkv_stats st;

		pkv_get_stats(db, &st);
		printf("keys %llu, in the snapshot %llu, compactions %llu\n",
		       (unsigned long long)st.keys, (unsigned long long)st.snapshot_keys,
		       (unsigned long long)st.compactions);
	}
	(void)pkv_thread_attach();
	for (int r = 0; r < 9; r++) {
		size_t slice = gets / 9;
		const uint32_t *s = idx + (size_t)r * slice;
		double t0;

		t0 = now();
		sink += run_pkv(db, (const char (*)[16])keys, s, slice, buf, vlen);
		tp[r] = (now() - t0) * 1e9 / (double)slice;
		t0 = now();
		sink += run_ckht(&ht, (const char (*)[16])keys, s, slice, buf, vlen);
		tc[r] = (now() - t0) * 1e9 / (double)slice;
		ratio[r] = tc[r] / tp[r];
		t0 = now();
		sink += run_ref(db, (const char (*)[16])keys, s, slice);
		rref[r] = tc[r] / ((now() - t0) * 1e9 / (double)slice);
		t0 = now();
		sink += run_many(db, (const char (*)[16])keys, s, slice);
		rmany[r] = tc[r] / ((now() - t0) * 1e9 / (double)(slice - slice % 32));
	}
	qsort(rref, 9, sizeof(double), cmp_d);
	qsort(rmany, 9, sizeof(double), cmp_d);
	qsort(tp, 9, sizeof(double), cmp_d);
	qsort(tc, 9, sizeof(double), cmp_d);
	qsort(ratio, 9, sizeof(double), cmp_d);
	printf("ns/get: pkv %.1f, ck_ht %.1f; throughput pkv/ck_ht %.2f (median of 9 slices)\n",
	       tp[4], tc[4], ratio[4]);
	printf("throughput vs ck_ht get+copy: pkv_get_ref %.2f, pkv_get_many (32) %.2f\n", rref[4],
	       rmany[4]);
	pkv_close(db);
	return 0;
}
