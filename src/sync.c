/* SPDX-License-Identifier: MIT */
/*
 * sync.c - group commit, durability tickets, explicit and periodic syncs, and the background
 * thread.
 *
 * Guarantees:
 *  S.1  A round picks its target T = the last sequence number taken, waits until every record
 *       <= T is copied into its segment (wal.c W.5), then fdatasyncs every segment that holds
 *       records not yet synced (retired ones first, then each lane's current one). Only then,
 *       and only when every round that started before it is published too (S.7), is `synced`
 *       raised to T: every write <= T is power-loss durable.
 *  S.2  A writer that needs seq S waits while a started round's target covers S; otherwise it
 *       leads a new round as soon as a slot is free (S.7), which covers everyone who arrived in
 *       between. So N concurrent writers cost a few rounds, not N. Waiters sleep on a futex word
 *       that every publication bumps, and on waking check `synced` without the mutex: one
 *       wake-up per writer per round, instead of a herd queueing for sync.mu after a broadcast.
 *  S.3  A failed fdatasync is final: the error is kept, `synced` never passes the failed round
 *       (nor any round after it, whatever their own fdatasyncs returned), every waiter of that
 *       round and every later write gets an error, and the store refuses writes
 *       (PKV_EREADONLY). The kernel may have dropped the dirty pages it could not write;
 *       retrying and succeeding would report data as durable that is not (fsyncgate).
 *  S.4  Rolled segments are synced by the round that takes them off their lane, and closed
 *       only once every round that started before that one is published (one of those may
 *       still be syncing the segment as its lane's current one): rounds are the only place
 *       segments are freed while the store is open.
 *  S.5  A leader that starts a round while none is in flight first waits, at most half a round,
 *       until as many writers have joined as were recently inside durable writes, so that the
 *       writers the previous round released join this one. Writers that arrive meanwhile wait
 *       for it instead of starting a round of their own.
 *  S.6  Under POWER the lanes' segments are fdatasynced in parallel by helper threads (one per
 *       lane beyond the first, per slot): a round costs one fdatasync's latency, not one per lane.
 *  S.7  Pipelining: the next round's writers gather while a round's fdatasync runs, and up to
 *       pkv_options.sync_rounds rounds may be in flight at once (default 1: on the devices
 *       measured, docs/benchmarks.md, overlapping fdatasyncs of one file halved the writers per
 *       round and did not raise commits/s). Rounds are published strictly in the order they
 *       started: a later round that finishes first waits for the earlier ones, and a failure of
 *       any of them stops the watermark there (S.3). Round i fdatasyncs through descriptor
 *       i % sync_rounds of each segment (wal.h WAL_SYNC_SLOTS), a file description of its own,
 *       because the kernel reports a write-back error once per file description: two rounds
 *       syncing through one description could see the error reported to only one of them, and
 *       the other would claim durability for pages that were lost.
 *  S.8  Tickets: pkv_wait_durable() with a negative timeout waits like a POWER writer (leading
 *       rounds); with a timeout, or polling, it never blocks in an fdatasync itself: it asks
 *       the background thread for a round up to its sequence number (in every durability
 *       mode) and waits on the publication. Every publication that raises `synced`, and the
 *       failure that stops the store, make the event fd readable; a waiter never sees 0 for a
 *       sequence number the watermark does not cover.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <time.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "store.h"
#include "errors.h"
#include "fs.h"
#include "rcu.h"
#include "sync.h"
#include "wal.h"

static void graves_close(struct wal_seg *g)
{
	while (g) {
		struct wal_seg *n = g->next;

		pkv__wal_seg_close(g);
		g = n;
	}
}

int pkv__sync_init(struct pkv *db)
{
	struct pkv_sync *s = &db->sync;
	pthread_condattr_t ca;

	memset(s, 0, sizeof(*s));
	s->efd = -1;
	s->slots = db->opts.sync_rounds ? db->opts.sync_rounds : 1;
	pthread_mutex_init(&s->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cv, &ca); /* timed ticket waits (S.8) */
	pthread_cond_init(&s->bg_cv, &ca);
	pthread_condattr_destroy(&ca);
	return 0;
}

void pkv__sync_release(struct pkv *db)
{
	/* No round can run any more: every grave is sealed (S.4). */
	graves_close(db->sync.graves);
	db->sync.graves = NULL;
}

void pkv__sync_destroy(struct pkv *db)
{
	struct pkv_sync *s = &db->sync;

	pkv__sync_release(db);
	if (s->efd >= 0)
		close(s->efd);
	s->efd = -1;
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

/*
 * Start @n helpers per slot (best effort: with fewer, the leader syncs the rest itself). Slot k
 * uses helpers[k * nhelpers ...]; nhelpers is what every slot got.
 */
static void helpers_start(struct pkv_sync *s, unsigned n)
{
	unsigned started = 0;

	s->helpers = calloc((size_t)n * s->slots, sizeof(*s->helpers));
	if (s->helpers == NULL)
		return;
	for (unsigned i = 0; i < n * s->slots; i++) {
		struct sync_helper *h = &s->helpers[i];

		pthread_mutex_init(&h->mu, NULL);
		pthread_cond_init(&h->cv, NULL);
		if (pthread_create(&h->thread, NULL, syncer_main, h) != 0) {
			pthread_cond_destroy(&h->cv);
			pthread_mutex_destroy(&h->mu);
			break;
		}
		started++;
	}
	s->nhelpers_started = started;
	s->nhelpers = started / s->slots;
}

static void helpers_stop(struct pkv_sync *s)
{
	for (unsigned i = 0; i < s->nhelpers_started; i++) {
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
	s->nhelpers_started = 0;
}

static void report_failure(struct pkv *db, const struct wal_seg *seg, int r)
{
	char name[64];

	pkv__wal_seg_path(name, sizeof(name), NULL, seg->lane, seg->segno, "wal");
	pkv__log(db, PKV_LOG_ERROR, "sync: fdatasync of wal segment %s failed: %s", name,
		 pkv_strerror(r));
}

static uint64_t mono_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/*
 * S.5: before taking its target, a lone leader waits until as many writers have joined the round
 * as were inside durable writes recently (s->wmax), for at most half of the last round's duration
 * (at most 1 ms). The writers the previous round released are about to append their next record:
 * without the wait they would miss this round. A lone writer never waits.
 */
static void gather(struct pkv *db)
{
	struct pkv_sync *s = &db->sync;
	uint64_t bound = __atomic_load_n(&s->last_round_ns, __ATOMIC_RELAXED) / 2;
	uint64_t inflight = __atomic_load_n(&s->inflight, __ATOMIC_ACQUIRE);
	uint64_t t0;

	/* Stale-high right after a round (released writers still count): fine for a maximum. */
	s->wmax = inflight > s->wmax ? inflight : s->wmax > 0 ? s->wmax - 1 : 0;
	if (bound > 1000000)
		bound = 1000000;
	t0 = mono_ns();
	while (__atomic_load_n(&s->joined, __ATOMIC_ACQUIRE) < s->wmax) {
		sched_yield(); /* more writers than cores: let them run */
		if (mono_ns() - t0 > bound)
			return;
	}
}

/*
 * fdatasync @seg through slot @slot's descriptor. A segment whose name is gone was deleted by a
 * compaction, which happens only once a durable snapshot covers every record in it (compact.c
 * C.6): there is nothing left to make durable.
 */
static int sync_fd(struct pkv *db, struct wal_seg *seg, unsigned slot)
{
	int fd = pkv__wal_seg_sync_fd(&db->wal, seg, slot);

	if (fd == -ENOENT)
		return 0;
	return fd < 0 ? fd : pkv__fs->fdatasync(fd);
}

/* Raise the lane's synced mark to @last (rounds finish in any order: keep the maximum). */
static void lane_synced(struct wal_lane *l, uint64_t last)
{
	uint64_t cur = __atomic_load_n(&l->synced_seq, __ATOMIC_RELAXED);

	while (cur < last && !__atomic_compare_exchange_n(&l->synced_seq, &cur, last, true,
							 __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}

/*
 * One fdatasync round of slot @slot up to @target (S.1, S.4, S.6, S.7), with the slot's
 * @nhelpers helpers @hs. 0 or -errno. The rolled segments it synced are returned in *@done (OUT),
 * linked through next, for the caller to bury.
 */
static int sync_round(struct pkv *db, unsigned slot, struct sync_helper *hs, unsigned nhelpers,
		      uint64_t target, struct wal_seg **done)
{
	struct pkv_wal *w = &db->wal;
	struct wal_seg *cur[WAL_MAX_LANES];
	uint64_t last[WAL_MAX_LANES];
	unsigned used = 0;
	int err = 0;

	*done = NULL;
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

		/* Rolled segments: rare (one per segment), synced here, closed later (S.4). */
		while (retired) {
			struct wal_seg *seg = retired;
			int r = sync_fd(db, seg, slot);

			retired = seg->next;
			if (r < 0 && err == 0) {
				err = r;
				report_failure(db, seg, r);
			}
			seg->next = *done;
			*done = seg;
		}
		/* cur cannot be freed under us: it is closed only after this round is published. */
		if (cur[i] == NULL || last[i] <= __atomic_load_n(&l->synced_seq, __ATOMIC_RELAXED))
			cur[i] = NULL;
	}
	/* S.6: the lanes' current segments in parallel, the leader taking the last one. */
	for (unsigned i = 0; i < w->nlanes; i++) {
		struct sync_helper *h;
		int fd;

		if (cur[i] == NULL)
			continue;
		fd = pkv__wal_seg_sync_fd(&db->wal, cur[i], slot);
		if (fd == -ENOENT) { /* retired by a compaction meanwhile: see sync_fd() */
			lane_synced(&w->lanes[i], last[i]);
			continue;
		}
		if (fd >= 0 && used < nhelpers && i + 1 < w->nlanes) {
			h = &hs[used++];
			pthread_mutex_lock(&h->mu);
			h->fd = fd;
			h->lane = i;
			h->busy = true;
			pthread_cond_broadcast(&h->cv);
			pthread_mutex_unlock(&h->mu);
			continue;
		}
		{
			int r = fd < 0 ? fd : pkv__fs->fdatasync(fd);
			if (r < 0 && err == 0) {
				err = r;
				report_failure(db, cur[i], r);
			}
			if (r == 0)
				lane_synced(&w->lanes[i], last[i]);
		}
	}
	for (unsigned k = 0; k < used; k++) {
		struct sync_helper *h = &hs[k];
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
			lane_synced(&w->lanes[h->lane], last[h->lane]);
	}
	return err;
}

/* The event fd turns readable: the watermark grew, or the store stopped (S.8). s->mu held. */
static void signal_event_locked(struct pkv_sync *s)
{
	uint64_t one = 1;

	/* A full counter (2^64 - 2 unread events) only means the fd is readable already. */
	if (s->efd >= 0)
		(void)!write(s->efd, &one, sizeof(one));
}

/*
 * S.7: publish, in start order, every finished round at the head of the ring. Returns the
 * segments whose graves are sealed (to close outside the lock). s->mu held.
 */
static struct wal_seg *publish_locked(struct pkv *db)
{
	struct pkv_sync *s = &db->sync;
	struct pkv_wal *w = &db->wal;
	struct wal_seg *open = NULL, *closing = NULL, *g;
	bool signal = false;

	while (s->oldest != s->next_round) {
		struct sync_round *e = &s->ring[s->oldest % s->slots];

		if (e->state != SYNC_ROUND_DONE)
			break;
		if (e->err < 0 && s->err == 0) {
			s->err = e->err; /* S.3 */
			pkv__store_set_readonly(db, e->err);
			signal = true;
		} else if (s->err == 0) {
			uint64_t before = __atomic_load_n(&w->synced, __ATOMIC_RELAXED);

			if (e->target > before) {
				s->synced_writes += e->target - before;
				__atomic_store_n(&w->synced, e->target, __ATOMIC_RELEASE);
				signal = true;
			}
			s->syncs++;
		}
		e->state = SYNC_ROUND_FREE;
		s->oldest++;
	}
	while ((g = s->graves) != NULL) { /* S.4 */
		s->graves = g->next;
		if (g->seal <= s->oldest) {
			g->next = closing;
			closing = g;
		} else {
			g->next = open;
			open = g;
		}
	}
	s->graves = open;
	if (signal)
		signal_event_locked(s);
	/* S.2: the writers asleep on pub check `synced` themselves, without this mutex. */
	__atomic_add_fetch(&s->pub, 1, __ATOMIC_RELEASE);
	if (__atomic_load_n(&s->sleepers, __ATOMIC_SEQ_CST) > 0)
		(void)syscall(SYS_futex, &s->pub, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
	pthread_cond_broadcast(&s->cv); /* timed ticket waits */
	return closing;
}

/*
 * Lead one round (S.2, S.5, S.7): called and returns with s->mu held, a slot free, and no lone
 * leader gathering.
 */
static void lead_round_locked(struct pkv *db)
{
	struct pkv_sync *s = &db->sync;
	struct pkv_wal *w = &db->wal;
	struct wal_seg *done, *seg, *closing;
	struct sync_helper *hs;
	struct sync_round *e;
	uint64_t id, target, t0;
	unsigned nh, slot;
	int r;

	id = s->next_round++;
	e = &s->ring[id % s->slots];
	e->state = SYNC_ROUND_RUNNING;
	e->err = 0;
	if (id == s->oldest) {
		/* S.5: alone: let the writers the last round released join this one. */
		s->gathering = true;
		pthread_mutex_unlock(&s->mu);
		gather(db);
		pthread_mutex_lock(&s->mu);
		s->gathering = false;
	}
	/* S.6: helpers for ticket waiters outside POWER, started while no other round runs. */
	if (s->helpers_wanted && s->helpers == NULL && s->helpers_allowed && id == s->oldest &&
	    w->nlanes > 1)
		helpers_start(s, w->nlanes - 1);
	slot = (unsigned)(id % s->slots);
	nh = s->nhelpers;
	hs = nh ? &s->helpers[slot * nh] : NULL;
	target = __atomic_load_n(&w->seq, __ATOMIC_SEQ_CST);
	e->target = target;
	if (target > s->started)
		s->started = target;
	__atomic_store_n(&s->joined, 0, __ATOMIC_RELEASE); /* later arrivals: next round */
	/* Writers that waited while this leader gathered are covered: wake none of them. */
	pthread_mutex_unlock(&s->mu);

	t0 = mono_ns();
	r = sync_round(db, slot, hs, nh, target, &done);
	__atomic_store_n(&s->last_round_ns, mono_ns() - t0, __ATOMIC_RELAXED);

	pthread_mutex_lock(&s->mu);
	while ((seg = done) != NULL) {
		done = seg->next;
		seg->seal = s->next_round; /* rounds started so far may still hold it (S.4) */
		seg->next = s->graves;
		s->graves = seg;
	}
	e->err = r;
	e->state = SYNC_ROUND_DONE;
	closing = publish_locked(db);
	if (closing) {
		pthread_mutex_unlock(&s->mu);
		graves_close(closing);
		pthread_mutex_lock(&s->mu);
	}
}

int pkv__sync_wait(struct pkv *db, uint64_t seq)
{
	struct pkv_sync *s = &db->sync;
	struct pkv_wal *w = &db->wal;
	bool joined = false;
	int r;

	for (;;) {
		uint32_t ev;

		if (__atomic_load_n(&w->synced, __ATOMIC_ACQUIRE) >= seq)
			return 0;
		pthread_mutex_lock(&s->mu);
		if (__atomic_load_n(&w->synced, __ATOMIC_ACQUIRE) >= seq || s->err) {
			r = __atomic_load_n(&w->synced, __ATOMIC_ACQUIRE) >= seq ? 0 : s->err;
			pthread_mutex_unlock(&s->mu);
			return r;
		}
		if (!joined) {
			__atomic_add_fetch(&s->joined, 1, __ATOMIC_RELEASE); /* S.5 */
			joined = true;
		}
		/* S.2: a started round covers us, or one is about to take its target (S.5), or
		 * every slot is busy (S.7): sleep until a publication. The word is read under the
		 * mutex that publications hold, so none can slip between the check and the sleep. */
		if (s->started >= seq || s->gathering || s->next_round - s->oldest >= s->slots) {
			ev = __atomic_load_n(&s->pub, __ATOMIC_ACQUIRE);
			__atomic_add_fetch(&s->sleepers, 1, __ATOMIC_SEQ_CST);
			pthread_mutex_unlock(&s->mu);
			(void)syscall(SYS_futex, &s->pub, FUTEX_WAIT_PRIVATE, ev, NULL, NULL, 0);
			__atomic_sub_fetch(&s->sleepers, 1, __ATOMIC_SEQ_CST);
			continue;
		}
		lead_round_locked(db);
		pthread_mutex_unlock(&s->mu);
	}
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
		uint64_t want;

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
		want = s->want;
		pthread_mutex_unlock(&s->mu);

		/* S.8 first: a ticket is waiting on it; a spare can wait for a round. */
		if (want > __atomic_load_n(&db->wal.synced, __ATOMIC_ACQUIRE))
			(void)pkv__sync_wait(db, want); /* errors are sticky, waiters see them */
		pkv__wal_make_spares(&db->wal);
		if ((periodic && timed_out) || pkv__wal_has_retired(&db->wal)) {
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
	/* Group commits are on the write path only under POWER (or for ticket waiters, who start
	 * them when they first lead a round): elsewhere a round may sync its lanes one after the
	 * other. The helpers exist before any thread can run a round (the background thread runs
	 * rounds too), and go only after it has been joined. */
	s->helpers_allowed = true;
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
	pthread_mutex_lock(&s->mu);
	s->helpers_allowed = false; /* pkv_close's last round syncs lanes itself */
	pthread_mutex_unlock(&s->mu);
	helpers_stop(s); /* after the join: the background thread's rounds use them */
}

/* ---- durability tickets (S.8) ------------------------------------------------------------- */

/* The last sequence number handed out. */
static uint64_t last_issued(struct pkv *db)
{
	if (db->in_memory)
		return __atomic_load_n(&db->mem_seq, __ATOMIC_ACQUIRE);
	return __atomic_load_n(&db->wal.seq, __ATOMIC_ACQUIRE);
}

PKV_EXPORT int pkv_durable_seq(pkv *db, uint64_t *seq_out)
{
	if (db == NULL || seq_out == NULL)
		return PKV_EINVAL;
	/* In memory nothing is ever more durable than it is now: every issued number counts. */
	*seq_out = db->in_memory ? last_issued(db)
				 : __atomic_load_n(&db->wal.synced, __ATOMIC_ACQUIRE);
	return 0;
}

/* Ask the background thread for a round up to @seq. s->mu held. */
static void want_locked(struct pkv_sync *s, uint64_t seq)
{
	if (s->want < seq)
		s->want = seq;
	s->bg_kick = true;
	pthread_cond_signal(&s->bg_cv);
}

PKV_EXPORT int pkv_wait_durable(pkv *db, uint64_t seq, int timeout_ms)
{
	struct pkv_sync *s;
	struct timespec deadline;
	int r;

	if (db == NULL || seq > last_issued(db))
		return PKV_EINVAL;
	if (timeout_ms != 0 && pkv__in_read_section())
		return PKV_EINVAL; /* read.c RD.4: a round may wait for this thread's grace period */
	if (db->in_memory || __atomic_load_n(&db->wal.synced, __ATOMIC_ACQUIRE) >= seq)
		return 0;
	s = &db->sync;
	if (db->readonly_open)
		return PKV_EREADONLY; /* nothing may be written, so nothing more becomes durable */
	pkv__rcu_enter();
	if (timeout_ms < 0) {
		/* Like a POWER writer: lead or join rounds (S.2, S.7), counted for S.5, with helpers
		 * syncing the lanes in parallel (S.6). */
		if (!__atomic_load_n(&s->helpers_wanted, __ATOMIC_RELAXED)) {
			pthread_mutex_lock(&s->mu);
			__atomic_store_n(&s->helpers_wanted, true, __ATOMIC_RELAXED);
			pthread_mutex_unlock(&s->mu);
		}
		__atomic_add_fetch(&s->inflight, 1, __ATOMIC_RELEASE);
		r = pkv__sync_wait(db, seq);
		__atomic_sub_fetch(&s->inflight, 1, __ATOMIC_RELEASE);
		return r == 0 ? 0 : PKV_EREADONLY;
	}
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += timeout_ms / 1000;
	deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&s->mu);
	if (s->err == 0 && __atomic_load_n(&db->wal.synced, __ATOMIC_ACQUIRE) < seq) {
		if (s->bg_running) {
			want_locked(s, seq);
		} else {
			/* pkv_close has stopped the background thread: no round will come. */
			pthread_mutex_unlock(&s->mu);
			return PKV_EREADONLY;
		}
	}
	while (timeout_ms > 0 && s->err == 0 &&
	       __atomic_load_n(&db->wal.synced, __ATOMIC_ACQUIRE) < seq)
		if (pthread_cond_timedwait(&s->cv, &s->mu, &deadline) == ETIMEDOUT)
			break;
	if (__atomic_load_n(&db->wal.synced, __ATOMIC_ACQUIRE) >= seq)
		r = 0; /* never after a failure: the watermark stops before it (S.3) */
	else if (s->err)
		r = PKV_EREADONLY;
	else
		r = timeout_ms == 0 ? -EAGAIN : -ETIMEDOUT;
	pthread_mutex_unlock(&s->mu);
	return r;
}

PKV_EXPORT int pkv_event_fd(pkv *db)
{
	struct pkv_sync *s;
	int fd;

	if (db == NULL || db->in_memory)
		return PKV_EINVAL;
	s = &db->sync;
	pthread_mutex_lock(&s->mu);
	if (s->efd < 0) {
		s->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (s->efd < 0) {
			fd = -errno;
			pthread_mutex_unlock(&s->mu);
			return fd;
		}
		/* A store that already stopped: readable at once, the loop finds out. */
		if (s->err)
			signal_event_locked(s);
	}
	fd = s->efd;
	pthread_mutex_unlock(&s->mu);
	return fd;
}
