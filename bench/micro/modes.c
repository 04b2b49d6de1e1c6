/* SPDX-License-Identifier: MIT */
/*
 * micro/modes.c - gets of snapshot-only keys next to gets of live-map keys, then put throughput
 * under each durability mode with 1 and 16 threads (issue figures).
 * usage: micro_modes DIR  (DIR is removed and rewritten)
 */
#include <unistd.h>
#include <pkv.h>
#include <pthread.h>
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
static pkv *db;
static volatile int stop;
static long cnt;
static void *wr(void *a)
{
	long id = (long)a;
	char k[32];
	long n = 0;
	while (!stop) {
		snprintf(k, 32, "w%ld-%ld", id, n % 100000);
		if (pkv_put(db, k, strlen(k), "valuevaluevaluevaluevalue", 25))
			break;
		n++;
	}
	__atomic_add_fetch(&cnt, n, 0);
	return 0;
}
static void rm_dir(const char *dir)
{
	char cmd[4200];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	(void)!system(cmd);
}
int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	const char *dir = argv[1];
	int n = 1000000;
	char(*keys)[16] = malloc(16ul * n);
	for (int i = 0; i < n; i++) {
		snprintf(keys[i], 16, "k%014d", i);
		keys[i][15] = '!';
	}
	unsigned *ord = malloc(4ul * n);
	for (int i = 0; i < n; i++)
		ord[i] = i;
	srand(1);
	for (int i = n - 1; i > 0; i--) {
		int j = rand() % (i + 1);
		unsigned t = ord[i];
		ord[i] = ord[j];
		ord[j] = t;
	}
	char v[100] = { 0 };
	size_t vl;
	char b[128];
	pkv_options o;
	pkv_options_default(&o);
	o.capacity_hint = n;
	o.flags = PKV_OPEN_NO_AUTOCOMPACT;
	rm_dir(dir);
	pkv_open(dir, &o, &db);
	for (int i = 0; i < n; i++)
		pkv_put(db, keys[i], 16, v, 100);
	double live = 0, snap = 0;
	for (int rep = 0; rep < 3; rep++) {
		double t = now();
		for (int i = 0; i < n; i++)
			pkv_get(db, keys[ord[i]], 16, b, 128, &vl);
		double d = now() - t;
		if (rep)
			live += d;
	}
	pkv_compact(db);
	pkv_stats st;
	pkv_get_stats(db, &st);
	for (int rep = 0; rep < 3; rep++) {
		double t = now();
		for (int i = 0; i < n; i++)
			pkv_get(db, keys[ord[i]], 16, b, 128, &vl);
		double d = now() - t;
		if (rep)
			snap += d;
	}
	printf("gets of live-map keys %.2f M/s | of snapshot-only keys %.2f M/s (%.2fx) | snapshot keys %lu\n",
	       2 * n / live / 1e6, 2 * n / snap / 1e6, live / snap, st.snapshot_keys);
	pkv_close(db);
	int modes[3] = { PKV_DURABLE_PROCESS, PKV_DURABLE_PERIODIC, PKV_DURABLE_POWER };
	const char *mn[3] = { "PROCESS", "PERIODIC(100ms)", "POWER" };
	for (int m = 0; m < 3; m++)
		for (int th = 1; th <= 16; th *= 16) {
			rm_dir(dir);
			pkv_options_default(&o);
			o.durability = modes[m];
			pkv_open(dir, &o, &db);
			sleep(1);
			pthread_t t[16];
			cnt = 0;
			stop = 0;
			for (long i = 0; i < th; i++)
				pthread_create(&t[i], 0, wr, (void *)i);
			sleep(2);
			stop = 1;
			for (int i = 0; i < th; i++)
				pthread_join(t[i], 0);
			pkv_get_stats(db, &st);
			printf("put %-16s %2d thread(s): %9.0f puts/s  (writes per fdatasync %.1f)\n",
			       mn[m], th, cnt / 2.0,
			       st.syncs ? (double)st.synced_writes / st.syncs : 0);
			pkv_close(db);
		}
	return 0;
}
