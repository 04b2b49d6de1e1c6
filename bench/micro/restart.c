/* SPDX-License-Identifier: MIT */
/*
 * micro/restart.c - restart cost next to a reload into ck_ht (issue figures).
 * usage: micro_restart DIR [KEYS]  (DIR is removed and rewritten)
 * Loads KEYS 16-byte keys with 100-byte values into a fresh ck_ht (timed), and into pkv; compacts;
 * reopens with an empty WAL tail (timed), writes a 50,000-record tail, reopens (timed).
 */
#include <unistd.h>
#include <pkv.h>
#include <ck_ht.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
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
int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s DIR [KEYS]\n", argv[0]);
		return 2;
	}
	const char *dir = argv[1];
	int n = argc > 2 ? atoi(argv[2]) : 1000000;
	char(*keys)[16] = malloc(16ul * n);
	for (int i = 0; i < n; i++) {
		snprintf(keys[i], 16, "k%014d", i);
		keys[i][15] = '!';
	}
	char v[100];
	memset(v, 'v', 100);
	ck_ht_t ht;
	double t = now();
	ck_ht_init(&ht, CK_HT_MODE_BYTESTRING, NULL, &A, 2 * n, 42);
	for (int i = 0; i < n; i++) {
		char *b = malloc(116);
		memcpy(b, keys[i], 16);
		memcpy(b + 16, v, 100);
		ck_ht_entry_t e;
		ck_ht_hash_t h;
		ck_ht_hash(&h, &ht, b, 16);
		ck_ht_entry_set(&e, h, b, 16, b);
		ck_ht_set_spmc(&ht, h, &e);
	}
	double ckload = now() - t;
	pkv_options o;
	pkv_options_default(&o);
	o.flags = PKV_OPEN_NO_AUTOCOMPACT;
	o.capacity_hint = n;
	pkv *db;
	char cmd[300];
	snprintf(cmd, 300, "rm -rf %s", dir);
	(void)!system(cmd);
	pkv_open(dir, &o, &db);
	for (int i = 0; i < n; i++)
		pkv_put(db, keys[i], 16, v, 100);
	t = now();
	pkv_compact(db);
	double ct = now() - t;
	pkv_close(db);
	t = now();
	pkv_open(dir, &o, &db);
	double r0 = now() - t;
	size_t vl;
	char b[128];
	t = now();
	for (int i = 0; i < n; i++)
		pkv_get(db, keys[(i * 7919L) % n], 16, b, 128, &vl);
	double gsnap = now() - t;
	for (int i = 0; i < 50000; i++)
		pkv_put(db, keys[i * 7 % n], 16, v, 100);
	pkv_close(db);
	t = now();
	pkv_open(dir, &o, &db);
	double r1 = now() - t;
	pkv_stats st;
	pkv_get_stats(db, &st);
	printf("ck load %.3fs | compact %.3fs | reopen empty tail %.3f ms | reopen 50k tail %.1f ms (%.3fx ck load) | snap gets %.2f M/s | keys %lu rec %lu\n",
	       ckload, ct, r0 * 1e3, r1 * 1e3, r1 / ckload, n / gsnap / 1e6, st.keys,
	       st.recovered_records);
	pkv_close(db);
	return 0;
}
