/* SPDX-License-Identifier: MIT */
/*
 * micro/batch.c - issue 11's goal rows for batches, as ratios measured in one run:
 *
 *   batch8: keys/s written as pkv_write batches of 8 keys vs as 8 single pkv_put calls, one
 *           thread, PKV_DURABLE_PROCESS; goal >= 3x. Slices of the two alternate (--rounds,
 *           default 5), each --slice-ms long, over the same 8-key groups; the verdict takes the
 *           median of the per-round ratios. Beside it, for information, batches of 64 and of
 *           1,000 keys against the same round's single puts: the ceiling a batch approaches
 *           once its per-call costs are spread over many keys.
 *   load:   a load of --keys keys (default 1,000,000) into an empty store through pkv_write
 *           batches of 1,000 vs inserting them into bench/'s raw ck_ht peer (ad_ckht.c: presized,
 *           one writer mutex, a malloc'ed key+value block per entry); goal >= 0.6x. Each round
 *           loads both afresh, in alternating order.
 * Keys are 16 bytes (a hash of the index, as pkvbench's), values 100 bytes.
 *
 * usage: micro_batch DIR [--rounds N] [--keys N] [--slice-ms N] [--cpu]
 *        (DIR is removed and rewritten)
 *
 * --cpu times everything by the writing thread's CPU time instead of the wall clock: on a shared
 * machine whose other processes take the CPUs away at random, the wall clock measures the
 * scheduler. The work of pkv's background threads (RCU frees, WAL write-back) is then not
 * counted, for single puts and batches alike.
 */
#include <pkv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../bench.h"

extern const struct kv_engine engine_ckht;

#define KLEN 16
#define VLEN 100

/* --cpu: time by the calling thread's CPU time, not the wall clock (see usage). */
static clockid_t clk = CLOCK_MONOTONIC;

static double now_s(void)
{
	struct timespec t;

	clock_gettime(clk, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static void key_of(unsigned char *k, uint64_t i)
{
	uint64_t a = mix(i), b = mix(i ^ 0xabcdefull);

	memcpy(k, &a, 8);
	memcpy(k + 8, &b, 8);
}

static void rm_dir(const char *dir)
{
	char cmd[4200];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "warning: %s not removed\n", cmd);
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_d);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static __attribute__((noreturn)) void die(const char *what, int r)
{
	fprintf(stderr, "%s: %s\n", what, pkv_strerror(r));
	exit(1);
}

static unsigned char val[VLEN];

/*
 * Write groups of @group consecutive keys (8 unless told) for @slice seconds, as single puts or
 * as one batch per group; returns keys per second.
 */
static double slice_n(pkv *db, pkv_batch *b, uint64_t nkeys, uint64_t *next, double slice,
		      int batched, int group)
{
	double t0 = now_s(), t;
	uint64_t keys = 0;

	do {
		for (int rep = 0; rep < 512 / group + 1; rep++) {
			unsigned char k[KLEN];
			uint64_t base = (*next)++ * (uint64_t)group % nkeys;
			int r;

			if (batched) {
				pkv_batch_clear(b);
				for (int j = 0; j < group; j++) {
					key_of(k, base + (uint64_t)j);
					if ((r = pkv_batch_put(b, k, KLEN, val, VLEN)) != 0)
						die("batch_put", r);
				}
				if ((r = pkv_write(db, b, 0, NULL)) != 0)
					die("write", r);
			} else {
				for (int j = 0; j < group; j++) {
					key_of(k, base + (uint64_t)j);
					if ((r = pkv_put(db, k, KLEN, val, VLEN)) != 0)
						die("put", r);
				}
			}
			keys += (uint64_t)group;
		}
		t = now_s() - t0;
	} while (t < slice);
	return (double)keys / t;
}

static double slice_8(pkv *db, pkv_batch *b, uint64_t nkeys, uint64_t *next, double slice,
		      int batched)
{
	return slice_n(db, b, nkeys, next, slice, batched, 8);
}

static double load_pkv(const char *dir, uint64_t nkeys)
{
	pkv_options o;
	pkv *db;
	pkv_batch *b;
	unsigned char k[KLEN];
	double t0, t;
	int r;

	rm_dir(dir);
	pkv_options_default(&o);
	o.capacity_hint = nkeys;
	o.flags = PKV_OPEN_NO_AUTOCOMPACT;
	if ((r = pkv_open(dir, &o, &db)) != 0 || (r = pkv_batch_new(&b)) != 0)
		die("open", r);
	t0 = now_s();
	for (uint64_t i = 0; i < nkeys;) {
		pkv_batch_clear(b);
		for (int j = 0; j < 1000 && i < nkeys; j++, i++) {
			key_of(k, i);
			if ((r = pkv_batch_put(b, k, KLEN, val, VLEN)) != 0)
				die("batch_put", r);
		}
		if ((r = pkv_write(db, b, 0, NULL)) != 0)
			die("write", r);
	}
	t = now_s() - t0;
	pkv_batch_free(b);
	if ((r = pkv_close(db)) != 0)
		die("close", r);
	rm_dir(dir);
	return (double)nkeys / t;
}

static double load_ckht(uint64_t nkeys)
{
	struct kv_conf c = { .dur = DUR_MEM, .nkeys = nkeys, .klen = KLEN, .vlen = VLEN,
			     .threads = 1 };
	char cfg[512];
	void *db;
	unsigned char k[KLEN];
	double t0, t;

	if (engine_ckht.open(&c, &db, cfg, sizeof(cfg)) != 0)
		die("ck_ht open", PKV_EINVAL);
	t0 = now_s();
	for (uint64_t i = 0; i < nkeys; i++) {
		key_of(k, i);
		if (engine_ckht.put(db, NULL, k, KLEN, val, VLEN) != 0)
			die("ck_ht put", PKV_EINVAL);
	}
	t = now_s() - t0;
	engine_ckht.close(db);
	return (double)nkeys / t;
}

int main(int argc, char **argv)
{
	int rounds = 5;
	uint64_t nkeys = 1000000;
	double slice = 0.3;
	const char *dir;
	double r8[64], r64[64], r1k[64], rl[64], single[64], batch[64], lp[64], lc[64];
	pkv_options o;
	pkv *db;
	pkv_batch *b;
	uint64_t next = 0;
	int r, pass8, passl;
	double m8, ml;

	if (argc < 2) {
		fprintf(stderr, "usage: %s DIR [--rounds N] [--keys N] [--slice-ms N] [--cpu]\n",
			argv[0]);
		return 2;
	}
	dir = argv[1];
	for (int i = 2; i < argc; i++)
		if (!strcmp(argv[i], "--cpu"))
			clk = CLOCK_THREAD_CPUTIME_ID;
	for (int i = 2; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--cpu")) {
			i--;
			continue;
		}
		if (!strcmp(argv[i], "--rounds"))
			rounds = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--keys"))
			nkeys = strtoull(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--slice-ms"))
			slice = atof(argv[i + 1]) / 1000;
	}
	if (rounds < 1 || rounds > 64 || nkeys < 1000) {
		fprintf(stderr, "bad arguments\n");
		return 2;
	}
	for (int i = 0; i < VLEN; i++)
		val[i] = (unsigned char)mix((uint64_t)i);

	/* batch8: one store, 100,000 keys overwritten in groups of 8. */
	rm_dir(dir);
	pkv_options_default(&o);
	o.flags = PKV_OPEN_NO_AUTOCOMPACT;
	if ((r = pkv_open(dir, &o, &db)) != 0 || (r = pkv_batch_new(&b)) != 0)
		die("open", r);
	slice_8(db, b, 100000, &next, slice, 1); /* warm: inserts every key once */
	slice_8(db, b, 100000, &next, slice, 0);
	for (int i = 0; i < rounds; i++) {
		if (i % 2) {
			batch[i] = slice_8(db, b, 100000, &next, slice, 1);
			single[i] = slice_8(db, b, 100000, &next, slice, 0);
		} else {
			single[i] = slice_8(db, b, 100000, &next, slice, 0);
			batch[i] = slice_8(db, b, 100000, &next, slice, 1);
		}
		r8[i] = batch[i] / single[i];
		/* The ceiling: batches so large that the per-call costs vanish. */
		r64[i] = slice_n(db, b, 100000, &next, slice, 1, 64) / single[i];
		r1k[i] = slice_n(db, b, 100000, &next, slice, 1, 1000) / single[i];
		printf("batch8 round %d: batches %.0f keys/s, single puts %.0f keys/s, ratio %.2f "
		       "(batches of 64: %.2f, of 1000: %.2f)\n", i, batch[i], single[i], r8[i],
		       r64[i], r1k[i]);
	}
	pkv_batch_free(b);
	if ((r = pkv_close(db)) != 0)
		die("close", r);
	rm_dir(dir);

	/* load: fresh store and fresh table per round, alternating which goes first. */
	for (int i = 0; i < rounds; i++) {
		if (i % 2) {
			lc[i] = load_ckht(nkeys);
			lp[i] = load_pkv(dir, nkeys);
		} else {
			lp[i] = load_pkv(dir, nkeys);
			lc[i] = load_ckht(nkeys);
		}
		rl[i] = lp[i] / lc[i];
		printf("load round %d: pkv batches of 1000 %.0f keys/s, ck_ht insert %.0f keys/s, "
		       "ratio %.2f\n", i, lp[i], lc[i], rl[i]);
	}
	m8 = median(r8, rounds);
	ml = median(rl, rounds);
	pass8 = m8 >= 3.0;
	passl = ml >= 0.6;
	printf("\ngoals (medians of %d rounds of this run, %s time):\n", rounds,
	       clk == CLOCK_MONOTONIC ? "wall-clock" : "the writing thread's CPU");
	printf("  %-4s %6.2fx  batch of 8 keys, PROCESS >= 3x the throughput of 8 single puts, "
	       "per key (%.0f vs %.0f keys/s)\n", pass8 ? "PASS" : "MISS", m8,
	       median(batch, rounds), median(single, rounds));
	printf("  info %6.2fx  batches of 64 keys / single puts, per key\n", median(r64, rounds));
	printf("  info %6.2fx  batches of 1000 keys / single puts, per key (the ceiling: no "
	       "per-call cost left)\n", median(r1k, rounds));
	printf("  %-4s %6.2fx  load of %llu keys via batches of 1,000 >= 0.6x ck_ht insert "
	       "(%.0f vs %.0f keys/s)\n", passl ? "PASS" : "MISS", ml, (unsigned long long)nkeys,
	       median(lp, rounds), median(lc, rounds));
	return 0;
}
