/* SPDX-License-Identifier: MIT */
/*
 * demo.c - kill -9 a writer in the middle of its work, reopen the store, count what survived.
 *
 * A child process opens the store and writes keys "demo:<n>" one after the other, telling the
 * parent through a pipe about every write that returned (was acknowledged). After a while the
 * parent kills the child with SIGKILL, reopens the store itself and reports: how many writes were
 * acknowledged, how many were recovered, whether any acknowledged write was lost (it must not
 * be), and the recovery figures of pkv_get_stats(). Run it again on the same directory and it
 * goes on where the last run stopped.
 *
 * Usage: demo [DIR] [--kill-after-ms N] [--durability process|power|periodic]
 *        DIR defaults to ./demo-data. Exit status 0 when no acknowledged write was lost.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <pkv.h>

#define COUNT_KEY "demo:count" /* how many demo keys earlier runs left behind */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static size_t demo_key(uint64_t n, char *buf, size_t cap)
{
	return (size_t)snprintf(buf, cap, "demo:%012" PRIu64, n);
}

static size_t demo_value(uint64_t n, char *buf, size_t cap)
{
	return (size_t)snprintf(buf, cap, "value #%" PRIu64 " -- written by the demo's child", n);
}

static int read_count(pkv *db, uint64_t *count)
{
	char buf[32];
	size_t vlen = 0;
	int rc = pkv_get(db, COUNT_KEY, strlen(COUNT_KEY), buf, sizeof(buf) - 1, &vlen);

	*count = 0;
	if (rc == PKV_NOTFOUND)
		return 0;
	if (rc != 0)
		return rc;
	buf[vlen < sizeof(buf) - 1 ? vlen : sizeof(buf) - 1] = '\0';
	*count = strtoull(buf, NULL, 10);
	return 0;
}

/* The child: write demo keys from the count on; send the start, then each acknowledged n. */
static void child_main(const char *dir, enum pkv_durability mode, int fd)
{
	pkv_options opts;
	pkv *db;
	uint64_t start;
	int rc;

	alarm(60); /* never outlive a parent that failed to kill us */
	pkv_options_default(&opts);
	opts.durability = mode;
	rc = pkv_open(dir, &opts, &db);
	if (rc == 0)
		rc = read_count(db, &start);
	if (rc != 0) {
		fprintf(stderr, "demo child: cannot open %s: %s\n", dir, pkv_strerror(rc));
		_exit(3);
	}
	if (write(fd, &start, sizeof(start)) != (ssize_t)sizeof(start))
		_exit(4);
	for (uint64_t n = start;; n++) {
		char key[32], val[96];
		size_t klen = demo_key(n, key, sizeof(key));
		size_t vlen = demo_value(n, val, sizeof(val));

		rc = pkv_put(db, key, klen, val, vlen);
		if (rc != 0) {
			fprintf(stderr, "demo child: put #%" PRIu64 ": %s\n", n, pkv_strerror(rc));
			_exit(3);
		}
		/* Acknowledged: the put returned. Only now tell the parent. */
		if (write(fd, &n, sizeof(n)) != (ssize_t)sizeof(n))
			_exit(4);
	}
}

static int usage(void)
{
	fputs("usage: demo [DIR] [--kill-after-ms N] [--durability process|power|periodic]\n",
	      stderr);
	return 2;
}

int main(int argc, char **argv)
{
	const char *dir = "./demo-data";
	enum pkv_durability mode = PKV_DURABLE_PROCESS;
	const char *mode_name = "process";
	double kill_ms = 300;
	uint64_t start = 0, acked = 0, last = 0, recovered = 0, beyond = 0, bad = 0, n;
	int have_start = 0, pfd[2], status, rc;
	double t0, killed_at, open_s;
	pkv_stats st;
	pkv *db;
	pid_t pid;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--kill-after-ms") == 0 && i + 1 < argc) {
			kill_ms = atof(argv[++i]);
		} else if (strcmp(argv[i], "--durability") == 0 && i + 1 < argc) {
			mode_name = argv[++i];
			if (strcmp(mode_name, "process") == 0)
				mode = PKV_DURABLE_PROCESS;
			else if (strcmp(mode_name, "power") == 0)
				mode = PKV_DURABLE_POWER;
			else if (strcmp(mode_name, "periodic") == 0)
				mode = PKV_DURABLE_PERIODIC;
			else
				return usage();
		} else if (argv[i][0] == '-') {
			return usage();
		} else {
			dir = argv[i];
		}
	}

	printf("pkv demo: store %s, durability %s\n", dir, mode_name);
	if (pipe(pfd) != 0) {
		perror("demo: pipe");
		return 2;
	}
	fflush(stdout);
	/* The parent forks before it ever calls into pkv: a process with pkv's threads must not
	 * fork. */
	pid = fork();
	if (pid < 0) {
		perror("demo: fork");
		return 2;
	}
	if (pid == 0) {
		close(pfd[0]);
		child_main(dir, mode, pfd[1]);
	}
	close(pfd[1]);

	/* Read acknowledgements until it is time to kill; then drain what the child sent. */
	t0 = now_s();
	killed_at = -1;
	for (;;) {
		struct pollfd pf = { .fd = pfd[0], .events = POLLIN };
		double left = kill_ms - (now_s() - t0) * 1000.0;
		ssize_t r;

		if (killed_at < 0 && left <= 0) {
			kill(pid, SIGKILL);
			killed_at = (now_s() - t0) * 1000.0;
		}
		if (killed_at < 0 && poll(&pf, 1, (int)left + 1) <= 0)
			continue; /* timeout or EINTR: time to kill? */
		r = read(pfd[0], &n, sizeof(n));
		if (r < 0 && errno == EINTR)
			continue;
		if (r != (ssize_t)sizeof(n))
			break; /* EOF: the child is gone (killed, or failed) */
		if (!have_start) {
			start = n;
			have_start = 1;
		} else {
			last = n;
			acked++;
		}
	}
	close(pfd[0]);
	waitpid(pid, &status, 0);
	if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)) {
		fprintf(stderr,
			"demo: the writer child ended by itself (status %d) before it was killed\n",
			status);
		return 1;
	}
	if (!have_start) {
		/* Killed while it was still opening the store: nothing was written in this run. */
		printf("  writer child was SIGKILLed after %.0f ms, before it finished opening the store\n",
		       killed_at);
	} else {
		printf("  writer child (pid %d) started at key #%" PRIu64
		       " and was SIGKILLed after %.0f ms\n",
		       (int)pid, start, killed_at);
	}

	/* Reopen: this is recovery. */
	t0 = now_s();
	rc = pkv_open(dir, NULL, &db);
	open_s = now_s() - t0;
	if (rc != 0) {
		printf("demo: reopen of %s failed: %s\n", dir, pkv_strerror(rc));
		return 1;
	}
	if (!have_start && read_count(db, &start) != 0)
		start = 0;

	/* Count the demo keys from start on; they were written in order, so they form a run. */
	for (n = start;; n++) {
		char key[32], val[96], buf[96];
		size_t klen = demo_key(n, key, sizeof(key));
		size_t vlen = demo_value(n, val, sizeof(val));
		size_t got = 0;

		rc = pkv_get(db, key, klen, buf, sizeof(buf), &got);
		if (rc == PKV_NOTFOUND)
			break;
		if (rc != 0 || got != vlen || memcmp(buf, val, vlen) != 0)
			bad++;
		recovered++;
	}
	/* Nothing may lie beyond the first missing key: the state is a prefix of the history. */
	for (uint64_t k = n + 1; k < n + 1000; k++) {
		char key[32];
		size_t klen = demo_key(k, key, sizeof(key)), got;

		if (pkv_get(db, key, klen, NULL, 0, &got) != PKV_NOTFOUND)
			beyond++;
	}

	if (pkv_get_stats(db, &st) != 0)
		memset(&st, 0, sizeof(st));
	printf("  acknowledged writes:      %10" PRIu64 "\n", acked);
	printf("  recovered after reopen:   %10" PRIu64 "  (%" PRId64
	       " of them written but not yet acknowledged when the child died)\n",
	       recovered, (int64_t)recovered - (int64_t)acked);
	printf("  lost acknowledged writes: %10" PRIu64 "\n",
	       acked > recovered ? acked - recovered : 0);
	if (acked > 0 && recovered < acked)
		printf("  (the last acknowledged write was #%" PRIu64 ")\n", last);
	printf("  recovery: open took %.1f ms, replayed %" PRIu64 " WAL records, discarded %" PRIu64
	       " records (%" PRIu64 " bytes) of torn tail",
	       open_s * 1000.0, st.recovered_records, st.discarded_records, st.discarded_bytes);
	if (st.recovery_gap_seq != 0)
		printf(", stopped at missing sequence number %" PRIu64, st.recovery_gap_seq);
	printf("\n  store holds %" PRIu64 " keys in %" PRIu64 " WAL segment files\n", st.keys,
	       st.wal_segments);

	/* Remember where the next run starts, and close (which makes it all durable). */
	{
		char cnt[32];
		int len = snprintf(cnt, sizeof(cnt), "%" PRIu64, start + recovered);

		rc = pkv_put(db, COUNT_KEY, strlen(COUNT_KEY), cnt, (size_t)len);
		if (rc == 0)
			rc = pkv_close(db);
		else
			pkv_close(db);
		if (rc != 0) {
			printf("demo: final write/close failed: %s\n", pkv_strerror(rc));
			return 1;
		}
	}
	if (bad != 0 || beyond != 0 || recovered < acked) {
		printf("demo: FAILED: %" PRIu64 " wrong values, %" PRIu64
		       " keys beyond the first gap, %" PRIu64 " acknowledged writes lost\n",
		       bad, beyond, acked > recovered ? acked - recovered : 0);
		return 1;
	}
	printf("demo: OK: every acknowledged write survived kill -9\n");
	return 0;
}
