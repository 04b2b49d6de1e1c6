/* SPDX-License-Identifier: MIT */
/*
 * apply.h - plan and commit one write into the map, under the key's shard lock: the one
 * implementation the live write path (write.c) and recovery's replay (recovery.c) share.
 */
#ifndef PKV_APPLY_H
#define PKV_APPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "map.h"
#include "store.h"

/*
 * One write's effect on the map, decided under the shard lock before the WAL append (so that
 * everything that can fail fails before a sequence number is taken) and applied after it.
 */
struct write_plan {
	struct pkv_rec *rec; /* to publish: the value, or a tombstone; NULL: remove the entry */
	int delta;           /* change in visible keys */
	bool skip;           /* replay only: the base already holds this version or a newer one */
	bool delta_after;    /* a live put: delta is decided at commit, from the version it replaces */
};

/*
 * Plan a put (@rec prepared by the caller) or a delete (@rec NULL) of @key in shard @s, whose
 * lock the caller holds. @replay_seq is the record's seq during recovery, 0 for a live write; a
 * replayed put newer than the base's max_seq is planned without probing the base, its delta left
 * 0, and the count settled by pkv__apply_recount_locked after the replay.
 * Returns 0; PKV_NOTFOUND (a delete of an invisible key); -ENOMEM.
 */
int pkv__apply_plan_locked(struct pkv *db, struct map_shard *s, uint64_t hash, const void *key,
			   size_t klen, struct pkv_rec *rec, uint64_t replay_seq,
			   struct write_plan *p);

/* Apply a plan with sequence number @seq. 0, or -ENOMEM (see map.c M.6). */
int pkv__apply_commit_locked(struct pkv *db, struct map_shard *s, uint64_t hash,
			     const void *key, size_t klen, struct write_plan *p, uint64_t seq);

/*
 * Recovery, after the replay (recovery.c R.14): set each shard's key count from its entries
 * against the base (a visible entry counts, a key the base holds is already in keys_baseline),
 * the count that replayed puts newer than the base's max_seq left unsettled. Without a base the
 * plans' counts are exact and nothing changes. The caller is recovery (single-threaded: no
 * shard lock is taken).
 */
void pkv__apply_recount_locked(struct pkv *db);

/* The clock, read at most once per write and only if a version it looks at can expire. */
struct apply_clock {
	uint64_t now;
	bool have;
};

static inline uint64_t pkv__apply_now(struct apply_clock *c)
{
	if (!c->have) {
		c->now = pkv__now_ms();
		c->have = true;
	}
	return c->now;
}

/*
 * The current version of @key as a condition (and a single delete) sees it: *@out is its seq,
 * or 0 when it is absent (never written, deleted, or expired at the clock of @clk). Caller holds
 * the key's shard lock. Returns 0, or PKV_ECORRUPT (the base's copy of the key cannot be read,
 * and a condition must not guess).
 */
int pkv__apply_version_locked(struct pkv *db, struct map_shard *s, uint64_t hash,
			      const void *key, size_t klen, struct apply_clock *clk, uint64_t *out);

/*
 * pkv_clear's effect, and its replay: every shard emptied, the base image dropped (kept mapped
 * in db->cleared_base until the next compaction), the key count 0. The caller holds every shard
 * lock and compact_mu, or is recovery (single-threaded).
 */
void pkv__apply_clear_locked(struct pkv *db);

#endif /* PKV_APPLY_H */
