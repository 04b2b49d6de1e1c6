/* SPDX-License-Identifier: MIT */
/*
 * sync.c - group commit, explicit and periodic syncs, and the background thread.
 *
 * Guarantees:
 *  S.1  A round picks its target T = the last sequence number taken, waits until every record
 *       <= T is copied into its segment (wal.c W.5), then fdatasyncs every segment that holds
 *       records not yet synced (retired ones first, then each lane's current one). Only then is
 *       `synced` raised to T: every write <= T is power-loss durable.
 *  S.2  One round at a time. A writer that needs seq S waits while a round runs; if that round
 *       did not reach S it leads the next, which covers everyone who arrived in between. So N
 *       concurrent writers cost about two rounds, not N.
 *  S.3  A failed fdatasync is final: the error is kept, `synced` never passes the failed round,
 *       every waiter of that round and every later write gets an error, and the store refuses
 *       writes (PKV_EREADONLY). The kernel may have dropped the dirty pages it could not write;
 *       retrying and succeeding would report data as durable that is not (fsyncgate).
 *  S.4  Rolled segments are closed only after a successful fdatasync, by the round that synced
 *       them; rounds are the only place segments are freed while the store is open.
 *  S.5  A leader first waits, at most half a round, until as many writers have joined as were
 *       recently inside durable writes, so that the writers the previous round released join
 *       this one.
 *  S.6  Under POWER the lanes' segments are fdatasynced in parallel by helper threads (one per
 *       lane beyond the first): a round costs one fdatasync's latency, not one per lane.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <time.h>

#include "store.h"
#include "errors.h"
#include "fs.h"
#include "rcu.h"
#include "sync.h"
#include "wal.h"

int pkv__sync_init(struct pkv *db)
{
	struct pkv_sync *s = &db->sync;
	pthread_condattr_t ca;

	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->bg_cv, &ca);
	pthread_condattr_destroy(&ca);
	return 0;
}

void pkv__sync_destroy(struct pkv *db)
{
	struct pkv_sync *s = &db->sync;

	pthread_cond_destroy(&s->bg_cv);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
}

/* ---- helpers that fdatasync lanes in parallel (S.6) ----------------------------------- */

static void *syncer_main(void *arg)
{
	struct sync_helper *h = arg;

	pthread_mutex_lock(&h->mu);
	for (;;) {
		while (!h->busy && !h->stop)
			pthread_cond_wait(&h->cv, &h->mu);
		if (h->stop)
			break;
		pthread_mutex_unlock(&h->mu);
		{
			int r = pkv__fs->fdatasync(h->fd);
			pthread_mutex_lock(&h->mu);
			h->result = r;
		}
		h->busy = false;
		pthread_cond_broadcast(&h->cv);
	}
	pthread_mutex_unlock(&h->mu);
	return NULL;
}

/* Start @n helpers (best effort: with fewer, the leader syncs the rest itself). */
static void helpers_start(struct pkv_sync *s, unsigned n)
{
	s->helpers = calloc(n, sizeof(*s->helpers));
	if (s->helpers == NULL)
		return;
	for (unsigned i = 0; i < n; i++) {
		struct sync_helper *h = &s->helpers[i];

		pthread_mutex_init(&h->mu, NULL);
		pthread_cond_init(&h->cv, NULL);
		if (pthread_create(&h->thread, NULL, syncer_main, h) != 0) {
			pthread_cond_destroy(&h->cv);
			pthread_mutex_destroy(&h->mu);
			break;
		}
		s->nhelpers++;
	}
}

static void helpers_stop(struct pkv_sync *s)
{
	for (unsigned i = 0; i < s->nhelpers; i++) {
		struct sync_helper *h = &s->helpers[i];

		pthread_mutex_lock(&h->mu);
		h->stop = true;
		pthread_cond_broadcast(&h->cv);
		pthread_mutex_unlock(&h->mu);
		pthread_join(h->thread, NULL);
		pthread_cond_destroy(&h->cv);
		pthread_mutex_destroy(&h->mu);
	}
	free(s->helpers);
	s->helpers = NULL;
	s->nhelpers = 0;
}

static void report_failure(struct pkv *db, const struct wal_seg *seg, int r)
{
	char name[64];

	pkv__wal_seg_path(name, sizeof(name), NULL, seg->lane, seg->segno, "wal");
	pkv__log(db, PKV_LOG_ERROR, "sync: fdatasync of wal segment %s failed: %s", name,
		 pkv_strerror(r));
}

/*
 * S.5: before taking its target, a leader waits until as many writers have joined the round as
 * were inside durable writes recently (s->wmax), for at most half of the last round's duration
 * (at most 1 ms). The writers the previous round released are about to append their next record:
 * without the wait they would miss this round, and N writers would settle into two alternating
 * groups of N/2. A lone writer never waits.
 */
static void gather(struct pkv *db)
{
	struct pkv_sync *s = &db->sync;
	uint64_t bound = __atomic_load_n(&s->last_round_ns, __ATOMIC_RELAXED) / 2;
	uint64_t inflight = __atomic_load_n(&s->inflight, __ATOMIC_ACQUIRE);
	struct timespec t0, t;

	/* Stale-high right after a round (released writers still count): fine for a maximum. */
	s->wmax = inflight > s->wmax ? inflight : s->wmax > 0 ? s->wmax - 1 : 0;
	if (bound > 1000000)
		bound = 1000000;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (__atomic_load_n(&s->joined, __ATOMIC_ACQUIRE) < s->wmax) {
		sched_yield(); /* more writers than cores: let them run */
		clock_gettime(CLOCK_MONOTONIC, &t);
		if ((uint64_t)((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec)) >
		    bound)
			return;
	}
}

/* One fdatasync round up to @target (S.1, S.4, S.6). Only the leader calls it. 0 or -errno. */
static int sync_round(struct pkv *db, uint64_t target)
{
	struct pkv_sync *s = &db->sync;
	struct pkv_wal *w = &db->wal;
	struct wal_seg *cur[WAL_MAX_LANES];
	uint64_t last[WAL_MAX_LANES];
	unsigned used = 0;
	int err = 0;

	pkv__wal_wait_written(&db->wal, target);
	for (unsigned i = 0; i < w->nlanes; i++) {
		struct wal_lane *l = &w->lanes[i];
		struct wal_seg *retired;

		pthread_mutex_lock(&l->lock);
		retired = l->retired;
		l->retired = NULL;
		cur[i] = l->cur;
		last[i] = l->last_seq;
		pthread_mutex_unlock(&l->lock);

		/* Rolled segments: rare (one per segment), synced here, then closed (S.4). */
		while (retired) {
			struct wal_seg *seg = retired;
			int r = pkv__fs->fdatasync(seg->fd);

			retired = seg->next;
			if (r < 0 && err == 0) {
				err = r;
				report_failure(db, seg, r);
			}
			pkv__wal_seg_close(seg);
		}
		/* cur cannot be freed under us: only rounds free segments, and this is the round. */
		if (cur[i] == NULL || last[i] <= l->synced_seq)
			cur[i] = NULL;
	}
	/* S.6: the lanes' current segments in parallel, the leader taking the last one. */
	for (unsigned i = 0; i < w->nlanes; i++) {
		struct sync_helper *h;

		if (cur[i] == NULL)
			continue;
		if (used < s->nhelpers && i + 1 < w->nlanes) {
			h = &s->helpers[used++];
			pthread_mutex_lock(&h->mu);
			h->fd = cur[i]->fd;
			h->lane = i;
			h->busy = true;
			pthread_cond_broadcast(&h->cv);
			pthread_mutex_unlock(&h->mu);
			continue;
		}
		{
			int r = pkv__fs->fdatasync(cur[i]->fd);
			if (r < 0 && err == 0) {
				err = r;
				report_failure(db, cur[i], r);
			}
			if (r == 0)
				w->lanes[i].synced_seq = last[i];
		}
	}
	for (unsigned k = 0; k < used; k++) {
		struct sync_helper *h = &s->helpers[k];
		int r;

		pthread_mutex_lock(&h->mu);
		while (h->busy)
			pthread_cond_wait(&h->cv, &h->mu);
		r = h->result;
		pthread_mutex_unlock(&h->mu);
		if (r < 0 && err == 0) {
			err = r;
			report_failure(db, cur[h->lane], r);
		}
		if (r == 0)
			w->lanes[h->lane].synced_seq = last[h->lane];
	}
	return err;
}

int pkv__sync_wait(struct pkv *db, uint64_t seq)
{
	struct pkv_sync *s = &db->sync;
	struct pkv_wal *w = &db->wal;
	int r;

	if (__atomic_load_n(&w->synced, __ATOMIC_ACQUIRE) >= seq)
		return 0;
	pthread_mutex_lock(&s->mu);
	if (__atomic_load_n(&w->synced, __ATOMIC_ACQUIRE) < seq)
		__atomic_add_fetch(&s->joined, 1, __ATOMIC_RELEASE); /* S.5 */
	while (s->err == 0 && __atomic_load_n(&w->synced, __ATOMIC_ACQUIRE) < seq) {
		uint64_t target, before;
		struct timespec t0, t1;

		if (s->leader) { /* S.2 */
			pthread_cond_wait(&s->cv, &s->mu);
			continue;
		}
		s->leader = true;
		pthread_mutex_unlock(&s->mu);

		gather(db); /* S.5 */
		clock_gettime(CLOCK_MONOTONIC, &t0);
		pthread_mutex_lock(&s->mu);
		target = __atomic_load_n(&w->seq, __ATOMIC_SEQ_CST);
		__atomic_store_n(&s->joined, 0, __ATOMIC_RELEASE); /* later arrivals: next round */
		pthread_mutex_unlock(&s->mu);
		r = sync_round(db, target);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		__atomic_store_n(&s->last_round_ns,
				 (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000000L +
					    (t1.tv_nsec - t0.tv_nsec)),
				 __ATOMIC_RELAXED);

		pthread_mutex_lock(&s->mu);
		s->leader = false;
		if (r < 0) {
			s->err = r; /* S.3 */
			pkv__store_set_readonly(db, r);
		} else {
			before = __atomic_load_n(&w->synced, __ATOMIC_RELAXED);
			if (target > before) {
				s->synced_writes += target - before;
				__atomic_store_n(&w->synced, target, __ATOMIC_RELEASE);
			}
			s->syncs++;
		}
		pthread_cond_broadcast(&s->cv);
	}
	r = __atomic_load_n(&w->synced, __ATOMIC_ACQUIRE) >= seq ? 0 : s->err;
	pthread_mutex_unlock(&s->mu);
	return r;
}

void pkv__sync_kick(struct pkv *db)
{
	struct pkv_sync *s = &db->sync;

	if (!s->bg_running)
		return;
	pthread_mutex_lock(&s->mu);
	s->bg_kick = true;
	pthread_cond_signal(&s->bg_cv);
	pthread_mutex_unlock(&s->mu);
}

static bool lanes_have_retired(struct pkv *db)
{
	bool any = false;

	for (unsigned i = 0; i < db->wal.nlanes && !any; i++) {
		pthread_mutex_lock(&db->wal.lanes[i].lock);
		any = db->wal.lanes[i].retired != NULL;
		pthread_mutex_unlock(&db->wal.lanes[i].lock);
	}
	return any;
}

/*
 * The background thread: makes spare segments so that a lane rolls without waiting for the
 * file system, syncs and closes rolled segments (bounding the unsynced data of every mode), and
 * runs the PKV_DURABLE_PERIODIC rounds.
 */
static void *bg_main(void *arg)
{
	struct pkv *db = arg;
	struct pkv_sync *s = &db->sync;
	bool periodic = db->opts.durability == PKV_DURABLE_PERIODIC;
	unsigned interval_ms = periodic ? db->opts.sync_interval_ms : 1000;
	struct timespec next;

	pkv__rcu_enter();
	pkv__thread_background();
	clock_gettime(CLOCK_MONOTONIC, &next);
	pthread_mutex_lock(&s->mu);
	while (!s->bg_stop) {
		bool timed_out = false;

		if (!s->bg_kick) {
			next.tv_sec += interval_ms / 1000;
			next.tv_nsec += (long)(interval_ms % 1000) * 1000000L;
			if (next.tv_nsec >= 1000000000L) {
				next.tv_sec++;
				next.tv_nsec -= 1000000000L;
			}
			timed_out = pthread_cond_timedwait(&s->bg_cv, &s->mu, &next) == ETIMEDOUT;
			if (!timed_out)
				clock_gettime(CLOCK_MONOTONIC, &next);
		}
		s->bg_kick = false;
		if (s->bg_stop)
			break;
		pthread_mutex_unlock(&s->mu);

		pkv__wal_make_spares(&db->wal);
		if ((periodic && timed_out) || lanes_have_retired(db)) {
			uint64_t seq = __atomic_load_n(&db->wal.seq, __ATOMIC_ACQUIRE);
			if (pkv__store_readonly(db) == 0)
				(void)pkv__sync_wait(db, seq); /* errors are sticky and reported there */
		}
		pthread_mutex_lock(&s->mu);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

int pkv__sync_start(struct pkv *db)
{
	struct pkv_sync *s = &db->sync;
	int r;

	s->bg_stop = false;
	/* Group commits are on the write path only under POWER: elsewhere a round may sync its
	 * lanes one after the other. The helpers exist before any thread can run a round (the
	 * background thread runs rounds too), and go only after it has been joined. */
	if (db->opts.durability == PKV_DURABLE_POWER && db->wal.nlanes > 1)
		helpers_start(s, db->wal.nlanes - 1);
	r = pthread_create(&s->bg, NULL, bg_main, db);
	if (r != 0) {
		helpers_stop(s);
		return -r;
	}
	s->bg_running = true;
	return 0;
}

void pkv__sync_stop(struct pkv *db)
{
	struct pkv_sync *s = &db->sync;

	if (s->bg_running) {
		pthread_mutex_lock(&s->mu);
		s->bg_stop = true;
		pthread_cond_signal(&s->bg_cv);
		pthread_mutex_unlock(&s->mu);
		pthread_join(s->bg, NULL);
		s->bg_running = false;
	}
	helpers_stop(s); /* after the join: the background thread's rounds use them */
}
