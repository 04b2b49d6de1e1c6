/* SPDX-License-Identifier: MIT */
/*
 * sync.h - group commit and the background thread.
 *
 * One fdatasync round at a time (the leader's); writers that need durability while a round is
 * running wait for it and, if it did not cover them, one of them leads the next round, which
 * then covers every writer that arrived meanwhile: many writers, one fdatasync per lane.
 */
#ifndef PKV_SYNC_H
#define PKV_SYNC_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct pkv;

struct sync_helper {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool busy, stop;
	int fd;
	unsigned lane;
	int result;
};

struct pkv_sync {
	pthread_mutex_t mu;
	pthread_cond_t cv;     /* a round ended */
	pthread_cond_t bg_cv;  /* wakes the background thread */
	bool leader;           /* a round is running */
	int err;               /* sticky: the first failed fdatasync */
	bool bg_running;
	bool bg_stop;
	bool bg_kick;
	pthread_t bg;
	struct sync_helper *helpers; /* POWER: parallel fdatasync of lanes (S.6) */
	unsigned nhelpers;
	uint64_t inflight;      /* atomic: writers inside a durable write (S.5) */
	uint64_t joined;        /* atomic: writers waiting for the next round */
	uint64_t wmax;          /* recent maximum of inflight; the leader's only */
	uint64_t last_round_ns; /* atomic: duration of the last round */
	uint64_t syncs;         /* rounds completed */
	uint64_t synced_writes; /* sequence numbers covered by them */
};

int pkv__sync_init(struct pkv *db);
/* Start the background thread (spares, retired segments, PERIODIC syncs). 0 or -errno. */
int pkv__sync_start(struct pkv *db);
/* Stop it; safe if never started. */
void pkv__sync_stop(struct pkv *db);
void pkv__sync_destroy(struct pkv *db);

/* Return once every seq <= @seq is power-loss durable; 0 or the sticky sync error. */
int pkv__sync_wait(struct pkv *db, uint64_t seq);

/* Wake the background thread (a lane rolled or wants a spare). */
void pkv__sync_kick(struct pkv *db);

#endif /* PKV_SYNC_H */
