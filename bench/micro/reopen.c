/* SPDX-License-Identifier: MIT */
/*
 * micro/reopen.c - reopen an existing store N times (nothing written in between, so every open
 * replays the same WAL tail), for profilers; prints each open's time and the median.
 * usage: micro_reopen DIR [N]   (make DIR with micro_restart first: 1M keys and a 50k tail)
 */
#include <pkv.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	int n = argc > 2 ? atoi(argv[2]) : 10;
	double *t = calloc((size_t)(n > 0 ? n : 1), sizeof(*t));
	pkv_options o;
	pkv_stats st;

	if (argc < 2 || n < 1 || t == NULL) {
		fprintf(stderr, "usage: %s DIR [N]\n", argv[0]);
		return 2;
	}
	pkv_options_default(&o);
	o.flags = PKV_OPEN_NO_AUTOCOMPACT;
	for (int i = 0; i < n; i++) {
		pkv *db;
		double t0 = now();
		int rc = pkv_open(argv[1], &o, &db);

		t[i] = (now() - t0) * 1e3;
		if (rc) {
			fprintf(stderr, "pkv_open: %s\n", pkv_strerror(rc));
			return 1;
		}
		pkv_get_stats(db, &st);
		pkv_close(db);
	}
	qsort(t, (size_t)n, sizeof(*t), cmp_d);
	printf("%d opens replaying %llu records each: min %.1f ms, median %.1f ms (%.2f us/record)\n",
	       n, (unsigned long long)st.recovered_records, t[0], t[n / 2],
	       t[n / 2] * 1e3 / (double)(st.recovered_records ? st.recovered_records : 1));
	return 0;
}
