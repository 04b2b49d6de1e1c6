/* SPDX-License-Identifier: MIT */
/*
 * tickets.c - torture driver for durability tickets and pipelined group commit (sync.c S.7,
 * S.8): plain pthreads, so that it runs under ThreadSanitizer.
 *
 * Threads, all on one store for --seconds:
 *  - W writers: pkv_put_seq (PROCESS) then pkv_wait_durable with a timeout drawn from
 *    {-1, 0 (then poll until an answer), 1..20 ms (retried on -ETIMEDOUT)};
 *  - P POWER writers: pkv_put_seq with PKV_WRITE_POWER (they lead group commits);
 *  - one event loop: poll(2) on pkv_event_fd, read, then pkv_durable_seq, as pkv.h says;
 *  - one syncer: pkv_sync now and then.
 * Checks (T = number, cited in failure messages):
 *  T1  a wait that returned 0, and a POWER write that returned, are covered by
 *      pkv_durable_seq read right after;
 *  T2  pkv_durable_seq never goes backwards, in any thread;
 *  T3  no call fails (no fault is injected); -EAGAIN and -ETIMEDOUT only as the timeout allows;
 *  T4  the event loop's watermark reaches the last ticket once the writers stop (no lost
 *      wake-up), bounded by 10 s;
 *  T5  after close and reopen every acknowledged write is there.
 *
 * Options: tickets --help.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pkv.h"
#include "stress_util.h"

#define MAX_THREADS 32
#define MAX_ACKED 200000

static struct {
	double seconds;
	unsigned writers, power, rounds;
	enum pkv_durability mode;
	const char *parent;
	bool quiet;
} cfg = { .seconds = 5, .writers = 4, .power = 2, .rounds = 2, .mode = PKV_DURABLE_PROCESS };

static pkv *db;
static int stop;          /* atomic */
static uint64_t failures; /* atomic */
static uint64_t last_ticket; /* atomic: highest ticket any writer got */

struct wstate {
	pthread_t t;
	unsigned id;
	bool power;
	uint64_t n, polls, timeouts;
	uint32_t *acked; /* indices i of keys "w<id>-<i>" acknowledged */
	uint64_t nacked;
};

#define FAIL(...)                                                                                  \
	do {                                                                                       \
		if (__atomic_fetch_add(&failures, 1, __ATOMIC_RELAXED) < 20) {                     \
			fprintf(stderr, "tickets: FAIL ");                                         \
			fprintf(stderr, __VA_ARGS__);                                              \
			fputc('\n', stderr);                                                       \
		}                                                                                  \
	} while (0)

/* T2: per thread, the watermark never goes backwards. */
static uint64_t watermark(uint64_t *prev, const char *who)
{
	uint64_t d = 0;
	int r = pkv_durable_seq(db, &d);

	if (r != 0)
		FAIL("T3 %s: pkv_durable_seq = %d", who, r);
	if (d < *prev)
		FAIL("T2 %s: durable seq went back from %" PRIu64 " to %" PRIu64, who, *prev, d);
	*prev = d;
	return d;
}

static void note_ticket(uint64_t seq)
{
	uint64_t cur = __atomic_load_n(&last_ticket, __ATOMIC_RELAXED);

	while (cur < seq && !__atomic_compare_exchange_n(&last_ticket, &cur, seq, true,
							 __ATOMIC_RELEASE, __ATOMIC_RELAXED))
		;
}

static void *writer_main(void *arg)
{
	struct wstate *w = arg;
	struct su_rng rng;
	uint64_t prev = 0;
	char who[32];

	snprintf(who, sizeof(who), "%s %u", w->power ? "power writer" : "writer", w->id);
	su_rng_seed(&rng, 1000 + w->id);
	while (!__atomic_load_n(&stop, __ATOMIC_RELAXED) && w->nacked < MAX_ACKED) {
		char k[32];
		int n = snprintf(k, sizeof(k), "w%u-%" PRIu64, w->id, w->n);
		uint64_t seq = 0;
		int r, timeout;

		r = pkv_put_seq(db, k, (size_t)n, k, (size_t)n, w->power ? PKV_WRITE_POWER : 0,
				&seq);
		if (r != 0) {
			FAIL("T3 %s: put = %d (%s)", who, r, pkv_strerror(r));
			break;
		}
		note_ticket(seq);
		w->n++;
		if (!w->power) {
			uint64_t pick = su_rng_below(&rng, 4);

			timeout = pick == 0 ? -1 : pick == 1 ? 0 : 1 + (int)su_rng_below(&rng, 20);
			r = pkv_wait_durable(db, seq, timeout);
			for (double t0 = su_now(); (r == -EAGAIN || r == -ETIMEDOUT) &&
						   su_now() - t0 < 10;) {
				if (r == -EAGAIN) {
					if (timeout != 0)
						FAIL("T3 %s: -EAGAIN with timeout %d", who, timeout);
					w->polls++;
					usleep(100);
				} else {
					if (timeout <= 0)
						FAIL("T3 %s: -ETIMEDOUT with timeout %d", who, timeout);
					w->timeouts++;
				}
				r = pkv_wait_durable(db, seq, timeout);
			}
			if (r != 0) {
				FAIL("T3 %s: wait(%" PRIu64 ", %d) = %d (%s)", who, seq, timeout, r,
				     pkv_strerror(r));
				break;
			}
		}
		if (watermark(&prev, who) < seq)
			FAIL("T1 %s: ticket %" PRIu64 " acknowledged above the watermark %" PRIu64,
			     who, seq, prev);
		w->acked[w->nacked++] = (uint32_t)(w->n - 1);
	}
	return NULL;
}

static void *loop_main(void *arg)
{
	uint64_t *wakeups = arg, prev = 0;
	int efd = pkv_event_fd(db);

	if (efd < 0) {
		FAIL("T3 event loop: pkv_event_fd = %d", efd);
		return NULL;
	}
	for (;;) {
		struct pollfd p = { .fd = efd, .events = POLLIN };
		uint64_t cnt, target;
		bool stopping = __atomic_load_n(&stop, __ATOMIC_ACQUIRE);

		if (poll(&p, 1, 100) == 1 && read(efd, &cnt, sizeof(cnt)) == (ssize_t)sizeof(cnt))
			(*wakeups)++;
		(void)watermark(&prev, "event loop");
		if (stopping) {
			/* T4: writers are done; the loop must reach the last ticket. */
			target = __atomic_load_n(&last_ticket, __ATOMIC_ACQUIRE);
			if (prev >= target)
				break;
			(void)pkv_wait_durable(db, target, 0);
			if (__atomic_load_n(&stop, __ATOMIC_ACQUIRE) > 1) {
				FAIL("T4 event loop stalled at %" PRIu64 " of %" PRIu64, prev, target);
				break;
			}
		}
	}
	return NULL;
}

static void *syncer_main(void *arg)
{
	uint64_t *n = arg;

	while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
		int r = pkv_sync(db);

		if (r != 0)
			FAIL("T3 syncer: pkv_sync = %d", r);
		(*n)++;
		su_sleep_ms(5);
	}
	return NULL;
}

static const struct su_opt options[] = {
	SU_OPT("seconds", SU_OPT_DOUBLE, &cfg.seconds, "run the writers for N seconds (default 5)"),
	SU_OPT("writers", SU_OPT_UINT, &cfg.writers,
	       "writers that wait on tickets (default 4)", .max = 16),
	SU_OPT("power", SU_OPT_UINT, &cfg.power, "writers with PKV_WRITE_POWER (default 2)",
	       .max = 16),
	SU_OPT("rounds", SU_OPT_UINT, &cfg.rounds,
	       "pkv_options.sync_rounds: group-commit rounds in flight (default 2)", .min = 1,
	       .max = 4),
	SU_OPT("durability", SU_OPT_DURABILITY, &cfg.mode,
	       "process, power or periodic (default process)", .arg = "MODE"),
	SU_OPT("dir", SU_OPT_STR, &cfg.parent,
	       "create the store in a new temporary directory under PARENT", .arg = "PARENT"),
	SU_OPT("quiet", SU_OPT_FLAG, &cfg.quiet, "print only failures and the closing line"),
	SU_OPT_END,
};

int main(int argc, char **argv)
{
	struct wstate w[MAX_THREADS];
	pthread_t loop, syncer;
	uint64_t wakeups = 0, syncs = 0, writes = 0, polls = 0, timeouts = 0;
	char dir[4096], store[4200];
	pkv_options o;
	unsigned nw;
	int r;

	su_opts_parse(argc, argv, "tickets", options, NULL);
	nw = cfg.writers + cfg.power;
	if (nw == 0)
		su_usage_error("no writers");
	if (su_workdir(dir, sizeof(dir), cfg.parent, "tickets") != 0) {
		perror("tickets: mkdtemp");
		return 1;
	}
	snprintf(store, sizeof(store), "%s/db", dir);
	pkv_options_default(&o);
	o.durability = cfg.mode;
	o.sync_rounds = cfg.rounds;
	o.wal_lanes = 2;
	o.wal_segment_bytes = 64 << 10; /* segments roll and are buried by rounds */
	o.sync_interval_ms = 5;
	r = pkv_open(store, &o, &db);
	if (r != 0) {
		fprintf(stderr, "tickets: open: %s\n", pkv_strerror(r));
		return 1;
	}
	for (unsigned i = 0; i < nw; i++) {
		w[i] = (struct wstate){ .id = i, .power = i >= cfg.writers };
		w[i].acked = malloc(sizeof(uint32_t) * MAX_ACKED);
		if (w[i].acked == NULL || pthread_create(&w[i].t, NULL, writer_main, &w[i]) != 0) {
			fprintf(stderr, "tickets: cannot start writer %u\n", i);
			return 1;
		}
	}
	if (pthread_create(&loop, NULL, loop_main, &wakeups) != 0 ||
	    pthread_create(&syncer, NULL, syncer_main, &syncs) != 0) {
		fprintf(stderr, "tickets: cannot start threads\n");
		return 1;
	}
	su_sleep_ms(cfg.seconds * 1000);
	__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
	for (unsigned i = 0; i < nw; i++) {
		pthread_join(w[i].t, NULL);
		writes += w[i].n;
		polls += w[i].polls;
		timeouts += w[i].timeouts;
	}
	pthread_join(syncer, NULL);
	{
		/* T4's bound: the loop gets 10 s after the writers stopped. */
		double t0 = su_now();
		while (su_now() - t0 < 10 && __atomic_load_n(&failures, __ATOMIC_RELAXED) == 0) {
			uint64_t d = 0;
			(void)pkv_durable_seq(db, &d);
			if (d >= __atomic_load_n(&last_ticket, __ATOMIC_ACQUIRE))
				break;
			su_sleep_ms(10);
		}
		__atomic_store_n(&stop, 2, __ATOMIC_RELEASE);
	}
	pthread_join(loop, NULL);
	r = pkv_close(db);
	if (r != 0)
		FAIL("T3 close = %d", r);

	/* T5: every acknowledged write survived close and reopen. */
	r = pkv_open(store, &o, &db);
	if (r != 0) {
		FAIL("T5 reopen = %d", r);
	} else {
		for (unsigned i = 0; i < nw; i++)
			for (uint64_t j = 0; j < w[i].nacked; j++) {
				char k[32], v[32];
				size_t vl;
				int n = snprintf(k, sizeof(k), "w%u-%" PRIu32, i, w[i].acked[j]);

				if (pkv_get(db, k, (size_t)n, v, sizeof(v), &vl) != 0 ||
				    vl != (size_t)n || memcmp(v, k, vl) != 0) {
					FAIL("T5 acknowledged %s lost", k);
					break;
				}
			}
		pkv_close(db);
	}
	for (unsigned i = 0; i < nw; i++)
		free(w[i].acked);
	su_rmtree(dir);
	if (!cfg.quiet || failures)
		printf("tickets: %s, %u rounds in flight, %u ticket + %u POWER writers, %.1f s: "
		       "%" PRIu64 " writes, %" PRIu64 " polls, %" PRIu64 " timeouts, %" PRIu64
		       " event-fd wake-ups, %" PRIu64 " pkv_sync\n",
		       su_durability_name(cfg.mode), cfg.rounds, cfg.writers, cfg.power,
		       cfg.seconds, writes, polls, timeouts, wakeups, syncs);
	printf("%s passed, %" PRIu64 " failed\n", failures ? "0" : "1", failures);
	return failures ? 1 : 0;
}
