/* SPDX-License-Identifier: MIT */
/*
 * micro/memory.c - resident memory per key right after a load, as the bench's memory group
 * measures it (/proc/self/statm and smaps_rollup before the open and after the last put), with
 * the split between anonymous memory and mapped files, and what the store holds at that moment.
 * usage: micro_memory DIR|- [KEYS] [VLEN]   (DIR is removed and rewritten; "-": in memory)
 */
#include <pkv.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../hash.h"

static void rss(uint64_t *total, uint64_t *anon, uint64_t *file)
{
	char line[256];
	FILE *f = fopen("/proc/self/smaps_rollup", "r");

	*total = *anon = *file = 0;
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long v;

		if (sscanf(line, "Rss: %llu kB", &v) == 1)
			*total = v * 1024;
		else if (sscanf(line, "Anonymous: %llu kB", &v) == 1)
			*anon = v * 1024;
	}
	fclose(f);
	*file = *total - *anon;
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "-";
	size_t n = argc > 2 ? strtoul(argv[2], NULL, 0) : 1000000;
	size_t vlen = argc > 3 ? strtoul(argv[3], NULL, 0) : 100;
	char *val = malloc(vlen + 1);
	uint64_t r0, a0, f0, r1, a1, f1;
	pkv_options o;
	pkv_stats st;
	pkv *db;
	int rc;

	memset(val, 'v', vlen + 1);
	if (strcmp(dir, "-") != 0) {
		char cmd[512];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		(void)!system(cmd);
	}
	pkv_options_default(&o);
	o.capacity_hint = n;
	rss(&r0, &a0, &f0);
	rc = pkv_open(strcmp(dir, "-") ? dir : NULL, &o, &db);
	if (rc) {
		fprintf(stderr, "pkv_open: %s\n", pkv_strerror(rc));
		return 1;
	}
	for (size_t i = 0; i < n; i++) {
		uint64_t k[2] = { murmur64a(&i, sizeof(i), 1), murmur64a(&i, sizeof(i), 2) };

		if ((rc = pkv_put(db, k, 16, val, vlen)) != 0) {
			fprintf(stderr, "pkv_put: %s\n", pkv_strerror(rc));
			return 1;
		}
	}
	rss(&r1, &a1, &f1);
	pkv_get_stats(db, &st);
	printf("after the load: rss %.1f B/key (anonymous %.1f, files %.1f); snapshot keys %llu, "
	       "compactions %llu, wal segments %llu\n",
	       (double)(r1 - r0) / (double)n, (double)(a1 - a0) / (double)n,
	       (double)(f1 - f0) / (double)n, (unsigned long long)st.snapshot_keys,
	       (unsigned long long)st.compactions, (unsigned long long)st.wal_segments);
	sleep(3);
	rss(&r1, &a1, &f1);
	pkv_get_stats(db, &st);
	printf("3 s later:      rss %.1f B/key (anonymous %.1f, files %.1f); snapshot keys %llu, "
	       "compactions %llu, wal segments %llu\n",
	       (double)(r1 - r0) / (double)n, (double)(a1 - a0) / (double)n,
	       (double)(f1 - f0) / (double)n, (unsigned long long)st.snapshot_keys,
	       (unsigned long long)st.compactions, (unsigned long long)st.wal_segments);
	pkv_close(db);
	return 0;
}
