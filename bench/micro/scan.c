/* SPDX-License-Identifier: MIT */
/*
 * micro/scan.c - a full pkv_scan of N keys against iterating a raw ck_ht of the same records
 * with ck_ht_next (issue figure: scan >= 0.5x the raw table).
 *
 * Both sides call the same visitor, which reads every key and value byte (a dump reads them
 * too): the raw table hands out pointers to its records, pkv_scan copies them out of its
 * read-side section first (scan.c SC.4). pkv is measured with its keys in the live map (as
 * after a restart with no snapshot) and in the snapshot base (after a compaction), with a full
 * scan in one call (count = N) and in calls of 1000. Each round times every variant once,
 * interleaved, and each figure is the best of the rounds (the machine is shared).
 *
 * usage: micro_scan DIR [N]   (DIR is removed and rewritten; N default 1000000)
 */
#include <ck_ht.h>
#include <pkv.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KLEN 16
#define VLEN 100
#define ROUNDS 5

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

struct acc {
	uint64_t n, sum;
};

/* The work per key of both sides: every byte of key and value read. */
static inline void visit(struct acc *a, const unsigned char *k, size_t kl, const unsigned char *v,
			 size_t vl)
{
	uint64_t s = 0;

	for (size_t i = 0; i < kl; i++)
		s += k[i];
	for (size_t i = 0; i < vl; i++)
		s += v[i];
	a->sum += s;
	a->n++;
}

static int scan_fn(void *arg, const void *k, size_t kl, const void *v, size_t vl, uint64_t seq)
{
	(void)seq;
	visit(arg, k, kl, v, vl);
	return 0;
}

static void *ht_malloc(size_t n)
{
	return malloc(n);
}

static void ht_free(void *p, size_t n, bool defer)
{
	(void)n;
	(void)defer;
	free(p);
}

static struct ck_malloc allocator = {.malloc = ht_malloc, .free = ht_free};

static void make_kv(uint64_t i, unsigned char *k, unsigned char *v)
{
	snprintf((char *)k, KLEN + 8, "key%013llu", (unsigned long long)(i % 10000000000000ull));
	for (int j = 0; j < VLEN; j++)
		v[j] = (unsigned char)(i + (uint64_t)j);
}

static double scan_once(pkv *db, size_t count, uint64_t n, uint64_t *sum)
{
	struct acc a = {0};
	uint64_t cursor = 0;
	double t0 = now();

	do {
		if (pkv_scan(db, &cursor, count, scan_fn, &a) != 0) {
			fprintf(stderr, "pkv_scan failed\n");
			exit(1);
		}
	} while (cursor != 0);
	double t = now() - t0;
	if (a.n != n) {
		fprintf(stderr, "pkv_scan visited %llu keys, expected %llu\n", (unsigned long long)a.n,
			(unsigned long long)n);
		exit(1);
	}
	*sum = a.sum;
	return t;
}

static double ck_pass(ck_ht_t *ht, uint64_t *sum)
{
	ck_ht_iterator_t it = CK_HT_ITERATOR_INITIALIZER;
	ck_ht_entry_t *e;
	struct acc a = {0};
	double t0 = now();

	while (ck_ht_next(ht, &it, &e)) {
		const unsigned char *rec = ck_ht_entry_value(e);

		visit(&a, ck_ht_entry_key(e), ck_ht_entry_key_length(e), rec + KLEN, VLEN);
	}
	*sum = a.sum;
	return now() - t0;
}

int main(int argc, char **argv)
{
	uint64_t n = argc > 2 ? strtoull(argv[2], NULL, 10) : 1000000;
	unsigned char k[KLEN + 8], v[VLEN];
	char cmd[4200];
	ck_ht_t ht;
	pkv_options o;
	pkv *db;
	double ck_best = 1e9;
	uint64_t ck_sum = 0, sum;

	if (argc < 2) {
		fprintf(stderr, "usage: %s DIR [N]\n", argv[0]);
		return 2;
	}
	/* The raw table: one record per key (key then value), as pkv's live map keeps them. */
	if (!ck_ht_init(&ht, CK_HT_MODE_BYTESTRING, NULL, &allocator, n * 2, 0x9e3779b97f4a7c15ull))
		return 1;
	for (uint64_t i = 0; i < n; i++) {
		unsigned char *rec = malloc(KLEN + VLEN);
		ck_ht_entry_t e;
		ck_ht_hash_t h;

		make_kv(i, rec, rec + KLEN);
		ck_ht_hash(&h, &ht, rec, KLEN);
		ck_ht_entry_set(&e, h, rec, KLEN, rec);
		ck_ht_put_spmc(&ht, h, &e);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", argv[1]);
	if (system(cmd) != 0)
		return 1;
	pkv_options_default(&o);
	o.flags = PKV_OPEN_NO_AUTOCOMPACT;
	o.capacity_hint = n;
	if (pkv_open(argv[1], &o, &db) != 0)
		return 1;
	for (uint64_t i = 0; i < n; i++) {
		make_kv(i, k, v);
		if (pkv_put(db, k, KLEN, v, VLEN) != 0)
			return 1;
	}
	printf("keys %llu, key %d B, value %d B; best of %d rounds, each round times every "
	       "variant once (the machine is shared)\n",
	       (unsigned long long)n, KLEN, VLEN, ROUNDS);
	for (int layout = 0; layout < 2; layout++) {
		const char *where = layout == 0 ? "live map" : "snapshot base";
		double full = 1e9, calls = 1e9;

		if (layout == 1 && pkv_compact(db) != 0)
			return 1;
		for (int r = 0; r < ROUNDS; r++) {
			double t = ck_pass(&ht, &ck_sum);

			if (t < ck_best)
				ck_best = t;
			t = scan_once(db, n, n, &sum);
			if (sum != ck_sum) {
				fprintf(stderr, "checksums differ\n");
				return 1;
			}
			if (t < full)
				full = t;
			t = scan_once(db, 1000, n, &sum);
			if (t < calls)
				calls = t;
		}
		printf("pkv_scan, %-13s, 1 call      %7.1f ms  %5.2f Mkeys/s  ratio to ck_ht_next %.2f\n",
		       where, full * 1e3, n / full / 1e6, ck_best / full);
		printf("pkv_scan, %-13s, count 1000  %7.1f ms  %5.2f Mkeys/s  ratio to ck_ht_next %.2f\n",
		       where, calls * 1e3, n / calls / 1e6, ck_best / calls);
	}
	printf("ck_ht_next (raw table)                  %7.1f ms  %5.2f Mkeys/s\n", ck_best * 1e3,
	       n / ck_best / 1e6);
	pkv_close(db);
	return 0;
}
