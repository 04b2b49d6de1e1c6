/* SPDX-License-Identifier: MIT */
/*
 * micro/checkpoint.c - pkv_checkpoint of an N-key store while a writer puts: the checkpoint's
 * time, and the longest put during it next to the longest put of an equal window without one
 * (issue figures). Two layouts: every key in the WAL (no snapshot yet: the WAL is copied), and
 * after a compaction (the snapshot is hard-linked, a short WAL tail copied).
 *
 * usage: micro_checkpoint DIR [N]   (DIR and DIR-cp* are removed and rewritten; N 1000000)
 */
#include <pkv.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KLEN 16
#define VLEN 100

static uint64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static pkv *db;
static uint64_t n = 1000000;
static volatile int stop;
static volatile uint64_t win_start, win_end; /* the window being measured */
static uint64_t win_max, win_puts;

static void *writer(void *arg)
{
	unsigned char k[KLEN + 8], v[VLEN];
	uint64_t x = 88172645463325252ull;

	(void)arg;
	memset(v, 'w', VLEN);
	while (!stop) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		snprintf((char *)k, sizeof(k), "key%013llu", (unsigned long long)(x % n % 10000000000000ull));
		uint64_t t0 = now_ns();
		if (pkv_put(db, k, KLEN, v, VLEN) != 0)
			abort();
		uint64_t t1 = now_ns();
		/* A put counts for the window if it overlaps it. */
		if (t1 >= win_start && t0 <= win_end) {
			if (t1 - t0 > win_max)
				win_max = t1 - t0;
			win_puts++;
		}
	}
	return NULL;
}

/* Measure the window [now, now + ns) with nothing else running; returns the longest put. */
static uint64_t idle_window(uint64_t ns)
{
	struct timespec ts = {(time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull)};

	win_max = 0;
	win_puts = 0;
	win_start = now_ns();
	win_end = win_start + ns;
	nanosleep(&ts, NULL);
	nanosleep(&(struct timespec){0, 20000000}, NULL); /* let the last put finish */
	return win_max;
}

int main(int argc, char **argv)
{
	char cmd[4300], dst[4200];
	unsigned char k[KLEN + 8], v[VLEN];
	pkv_options o;
	pthread_t th;

	if (argc < 2) {
		fprintf(stderr, "usage: %s DIR [N]\n", argv[0]);
		return 2;
	}
	if (argc > 2)
		n = strtoull(argv[2], NULL, 10);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s'-cp*", argv[1], argv[1]);
	if (system(cmd) != 0)
		return 1;
	pkv_options_default(&o);
	o.flags = PKV_OPEN_NO_AUTOCOMPACT;
	o.capacity_hint = n;
	if (pkv_open(argv[1], &o, &db) != 0)
		return 1;
	memset(v, 'v', VLEN);
	for (uint64_t i = 0; i < n; i++) {
		snprintf((char *)k, sizeof(k), "key%013llu", (unsigned long long)(i % 10000000000000ull));
		if (pkv_put(db, k, KLEN, v, VLEN) != 0)
			return 1;
	}
	printf("keys %llu, key %d B, value %d B; one writer putting during each window\n",
	       (unsigned long long)n, KLEN, VLEN);
	win_end = 0;
	if (pthread_create(&th, NULL, writer, NULL) != 0)
		return 1;
	for (int layout = 0; layout < 2; layout++) {
		pkv_stats st;

		if (layout == 1 && pkv_compact(db) != 0)
			return 1;
		pkv_get_stats(db, &st);
		snprintf(dst, sizeof(dst), "%s-cp%d", argv[1], layout);
		win_max = 0;
		win_puts = 0;
		win_start = now_ns();
		win_end = UINT64_MAX;
		uint64_t t0 = now_ns();
		int rc = pkv_checkpoint(db, dst);
		uint64_t t1 = now_ns();
		win_end = t1;
		nanosleep(&(struct timespec){0, 20000000}, NULL);
		if (rc != 0) {
			fprintf(stderr, "pkv_checkpoint: %s\n", pkv_strerror(rc));
			return 1;
		}
		uint64_t cp_max = win_max, cp_puts = win_puts;
		uint64_t idle_max = idle_window(t1 - t0);

		printf("%-28s checkpoint %7.1f ms; longest put during it %7.1f us (%llu puts), "
		       "in an equal window without %7.1f us\n",
		       layout == 0 ? "all in the WAL (no snapshot)" : "after a compaction",
		       (t1 - t0) / 1e6, cp_max / 1e3, (unsigned long long)cp_puts, idle_max / 1e3);
		printf("%-28s (WAL %llu segments, %.1f MiB written since open; snapshot %.1f MiB)\n",
		       "", (unsigned long long)st.wal_segments, st.wal_bytes / 1048576.0,
		       st.snapshot_bytes / 1048576.0);
	}
	stop = 1;
	pthread_join(th, NULL);
	pkv_close(db);
	return 0;
}
