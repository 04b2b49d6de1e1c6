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
};

/*
 * Plan a put (@rec prepared by the caller) or a delete (@rec NULL) of @key in shard @s, whose
 * lock the caller holds. @replay_seq is the record's seq during recovery, 0 for a live write.
 * Returns 0; PKV_NOTFOUND (a delete of an invisible key); -ENOMEM.
 */
int pkv__apply_plan_locked(struct pkv *db, struct map_shard *s, uint64_t hash, const void *key,
			   size_t klen, struct pkv_rec *rec, uint64_t replay_seq,
			   struct write_plan *p);

/* Apply a plan with sequence number @seq. 0, or -ENOMEM (see map.c M.6). */
int pkv__apply_commit_locked(struct pkv *db, struct map_shard *s, uint64_t hash,
			     const void *key, size_t klen, struct write_plan *p, uint64_t seq);

#endif /* PKV_APPLY_H */
