/* SPDX-License-Identifier: MIT */
/*
 * micro/compaction.c - resident memory after 1M puts and a compaction, and the longest put and
 * get percentiles with and without a compaction running (issue figures).
 * usage: micro_compaction DIR  (DIR is removed and rewritten)
 */
#include <unistd.h>
#include <pkv.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
static inline unsigned long long ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000000ull + t.tv_nsec;
}
static pkv *db;
static volatile int stop;
static int n = 1000000;
static char (*keys)[16];
static unsigned long long maxput;
static unsigned long long *lat;
static long nlat;
static void *rd(void *a)
{
	(void)a;
	size_t vl;
	char b[128];
	unsigned x = 1;
	long i = 0;
	while (!stop && i < 20000000) {
		x = x * 1103515245 + 12345;
		unsigned long long t = ns();
		pkv_get(db, keys[(x >> 4) % n], 16, b, 128, &vl);
		lat[i++] = ns() - t;
	}
	nlat = i;
	return 0;
}
static void *wr(void *a)
{
	(void)a;
	char v[100] = { 0 };
	unsigned x = 7;
	while (!stop) {
		x = x * 1103515245 + 12345;
		unsigned long long t = ns();
		pkv_put(db, keys[(x >> 4) % n], 16, v, 100);
		t = ns() - t;
		if (t > maxput)
			maxput = t;
	}
	return 0;
}
static int cmp(const void *a, const void *b)
{
	unsigned long long x = *(const unsigned long long *)a, y = *(const unsigned long long *)b;
	return x < y ? -1 : x > y;
}
static long rss_kb(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	long a = 0, b = 0;
	if (!f)
		return 0;
	if (fscanf(f, "%ld %ld", &a, &b) != 2)
		b = 0;
	fclose(f);
	return b * 4;
}
static void phase(const char *name, int compact)
{
	pthread_t a, b;
	maxput = 0;
	stop = 0;
	pthread_create(&a, 0, rd, 0);
	pthread_create(&b, 0, wr, 0);
	unsigned long long t0 = ns();
	if (compact) {
		usleep(100000);
		pkv_compact(db);
	} else
		usleep(1500000);
	double dur = (ns() - t0) / 1e9;
	stop = 1;
	pthread_join(a, 0);
	pthread_join(b, 0);
	qsort(lat, nlat, 8, cmp);
	printf("%-22s %.2fs: longest put %.2f ms | get p50 %llu ns p99 %llu ns p99.9 %llu ns max %.2f ms (%ld gets)\n",
	       name, dur, maxput / 1e6, lat[nlat / 2], lat[nlat * 99 / 100], lat[nlat * 999 / 1000],
	       lat[nlat - 1] / 1e6, nlat);
}
int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	keys = malloc(16ul * n);
	lat = malloc(8ul * 20000000);
	for (int i = 0; i < n; i++) {
		snprintf(keys[i], 16, "k%014d", i);
		keys[i][15] = '!';
	}
	char cmd[256];
	snprintf(cmd, 256, "rm -rf %s", argv[1]);
	(void)!system(cmd);
	pkv_options o;
	pkv_options_default(&o);
	o.capacity_hint = n;
	o.flags = PKV_OPEN_NO_AUTOCOMPACT;
	pkv_open(argv[1], &o, &db);
	char v[100] = { 0 };
	long r0 = rss_kb();
	for (int i = 0; i < n; i++)
		pkv_put(db, keys[i], 16, v, 100);
	long r1 = rss_kb();
	pkv_compact(db);
	sleep(1);
	long r2 = rss_kb();
	printf("RSS: before load %ld MiB, after 1M puts %ld MiB, after compaction %ld MiB; raw data (16+100 B x 1M) %.0f MiB\n",
	       r0 / 1024, r1 / 1024, r2 / 1024, 116e6 / 1048576);
	phase("no compaction", 0);
	phase("during compaction", 1);
	phase("no compaction", 0);
	phase("during compaction", 1);
	pkv_close(db);
	return 0;
}
