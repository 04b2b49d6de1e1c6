/* SPDX-License-Identifier: MIT */
/*
 * sync.h - group commit, durability tickets and the background thread.
 *
 * Up to pkv_options.sync_rounds fdatasync rounds run at once (pipelined: the next round starts
 * while one is in flight; by default one at a time, the next forming meanwhile); each covers every writer that arrived before it took its target, and
 * rounds are published in the order they started, so the durable watermark only ever covers a
 * prefix of the history that every round up to it made durable.
 */
#ifndef PKV_SYNC_H
#define PKV_SYNC_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "wal.h"

struct pkv;

#define SYNC_SLOTS WAL_SYNC_SLOTS

struct sync_helper {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool busy, stop;
	int fd;
	unsigned lane;
	int result;
};

enum sync_round_state {
	SYNC_ROUND_FREE = 0,
	SYNC_ROUND_RUNNING,
	SYNC_ROUND_DONE,
};

/* One round of the ring; round id i lives in ring[i % slots]. Guarded by sync.mu. */
struct sync_round {
	uint64_t target; /* every seq <= target is durable once this round is published */
	int state;       /* enum sync_round_state */
	int err;         /* the round's first failed fdatasync, or 0 */
};

struct pkv_sync {
	pthread_mutex_t mu;
	pthread_cond_t cv;    /* a round was published (CLOCK_MONOTONIC: timed waits) */
	pthread_cond_t bg_cv; /* wakes the background thread */
	int err;              /* sticky: the first failed fdatasync */
	bool bg_running;
	bool bg_stop;
	bool bg_kick;
	bool gathering; /* a lone leader is gathering writers before it takes its target (S.5) */
	pthread_t bg;
	struct sync_helper *helpers; /* POWER: nhelpers per slot, parallel fdatasync (S.6) */
	unsigned nhelpers;           /* per slot */
	unsigned nhelpers_started;   /* threads to join */
	bool helpers_wanted;         /* a ticket waiter leads rounds: start them lazily (S.6) */
	bool helpers_allowed;        /* between pkv__sync_start and pkv__sync_stop */
	unsigned slots;          /* rounds in flight at most: pkv_options.sync_rounds */
	struct sync_round ring[SYNC_SLOTS];
	uint64_t next_round;     /* id of the next round to start */
	uint64_t oldest;         /* id of the oldest round not yet published */
	uint64_t started;        /* highest target of a started round */
	uint64_t want;           /* tickets: the background thread syncs up to here (S.8) */
	struct wal_seg *graves; /* synced rolled segments waiting to be closed (S.4), via next */
	int efd;                /* pkv_event_fd(), -1 until asked for */
	uint32_t pub;           /* atomic futex word: bumped at every publication (S.2) */
	uint32_t sleepers;      /* atomic: writers asleep on pub */
	uint64_t inflight;      /* atomic: writers inside a durable write (S.5) */
	uint64_t joined;        /* atomic: writers waiting for the next round */
	uint64_t wmax;          /* recent maximum of inflight; the gathering leader's only */
	uint64_t last_round_ns; /* atomic: duration of the last round */
	uint64_t syncs;         /* rounds completed */
	uint64_t synced_writes; /* sequence numbers covered by them */
};

int pkv__sync_init(struct pkv *db);
/* Start the background thread (spares, retired segments, PERIODIC syncs). 0 or -errno. */
int pkv__sync_start(struct pkv *db);
/* Stop it; safe if never started. */
void pkv__sync_stop(struct pkv *db);
/* Close the segments rounds have synced and left open (S.4); before the WAL goes. */
void pkv__sync_release(struct pkv *db);
/* Free what is left (after the last round: pkv_close's final sync). */
void pkv__sync_destroy(struct pkv *db);

/*
 * Return once every seq <= @seq is power-loss durable, leading rounds as needed; 0 or the
 * sticky sync error.
 */
int pkv__sync_wait(struct pkv *db, uint64_t seq);

/* Wake the background thread (a lane rolled or wants a spare). */
void pkv__sync_kick(struct pkv *db);

#endif /* PKV_SYNC_H */
