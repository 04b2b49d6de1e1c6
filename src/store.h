/* SPDX-License-Identifier: MIT */
/*
 * store.h - the store handle (struct pkv) that the layers from sync/apply up share, and its
 * small helpers (store.c). It sits below recovery, compact and the public API (db.c, read.c,
 * write.c), so none of them includes a higher file to reach the handle.
 */
#ifndef PKV_STORE_H
#define PKV_STORE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "internal.h"
#include "map.h"
#include "snapshot.h"
#include "pkv.h"
#include "sync.h"
#include "wal.h"

struct pkv_recovery_report {
	uint64_t recovered_records;
	uint64_t discarded_records;
	uint64_t discarded_bytes;
	uint64_t gap_seq;
};

struct pkv {
	pkv_options opts;
	struct pkv_log log; /* opts.log_fn and opts.log_ctx, for the lower layers */
	bool in_memory;
	bool readonly_open;
	bool open_dirty; /* open created or repaired something: fsync DIR before returning */
	char *dir;
	int lock_fd;
	struct pkv *lock_next; /* the open handles' list, for fork children (db.c L.1) */
	struct pkv_map map;
	struct pkv_wal wal;
	struct pkv_sync sync;
	int readonly_reason; /* atomic: 0, or why writes are refused */
	uint64_t mem_seq;    /* atomic: sequence numbers of an in-memory store */
	uint64_t keys_baseline; /* visible keys = this + sum of the shards' nkeys */
	struct pkv_recovery_report rec;

	/* Snapshot base image (compact.c). */
	struct pkv_snap *base;   /* RCU-protected; NULL when there is none */
	/* A base pkv_clear (or the replay of a clear record) disregarded: still mapped for the
	 * readers that may probe it, unmapped and its file deleted by the next compaction
	 * (compact.c C.9) or at close. Guarded by compact_mu. */
	struct pkv_snap *cleared_base;
	char *snap_dir;          /* DIR/snap */
	int compacting;          /* atomic: deletes leave tombstones while set (compact.c C.4) */
	pthread_mutex_t compact_mu; /* one compaction at a time */
	uint64_t compactions;
	uint64_t wal_bytes_at_snap; /* pkv__wal_bytes() when the last compaction started */
	uint64_t base_bytes;        /* atomic: size of the current snapshot file */
	pthread_t compactor;
	bool compactor_running;
	bool compactor_stop;
	bool compactor_kick;
	pthread_mutex_t compactor_mu; /* the compactor's own: its stop and kick flags */
	pthread_cond_t compactor_cv;  /* with compactor_mu */
};

/* Send a formatted message to the application's log callback, if it has one (internal.h). */
#define pkv__log(db, level, ...) pkv__logf((db) ? &(db)->log : NULL, (level), __VA_ARGS__)

/* Refuse further writes with @reason (first reason wins). */
void pkv__store_set_readonly(struct pkv *db, int reason);

/* The base image; call inside a read-side section and use only inside it. */
static inline const struct pkv_snap *pkv__store_base_rcu(struct pkv *db)
{
	return __atomic_load_n(&db->base, __ATOMIC_ACQUIRE);
}

/*
 * The snapshot the WAL on disk continues: the base, or the base a clear disregarded (the WAL
 * still holds only the records after its sequence number, the clear record among them, until
 * the next compaction). Recovery of a copy needs that file; a check of the WAL starts after
 * its number. NULL when the WAL starts at sequence number 1. Call with compact_mu held.
 */
static inline struct pkv_snap *pkv__store_wal_origin(struct pkv *db)
{
	return db->base ? db->base : db->cleared_base;
}

static inline int pkv__store_readonly(struct pkv *db)
{
	return __atomic_load_n(&db->readonly_reason, __ATOMIC_ACQUIRE);
}

#endif /* PKV_STORE_H */
