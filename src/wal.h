/* SPDX-License-Identifier: MIT */
/*
 * wal.h - WAL lanes: per-CPU append-only series of preallocated, mapped segment files.
 *
 * A lane is chosen by sched_getcpu(); its lock covers a thread that migrates between picking
 * the lane and appending, and is held only while a record is copied into the mapping. The
 * global sequence number is taken inside the lane lock (and inside the caller's shard lock), so
 * within a lane sequence numbers strictly increase, and the number of records that have a
 * sequence number but are not yet written is at most the number of lanes: each lane publishes
 * the one it is writing in `inflight`, which is what pkv__wal_wait_written() reads.
 */
#ifndef PKV_WAL_H
#define PKV_WAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "walrec.h"

#define WAL_MAX_LANES 64u
#define WAL_INFLIGHT_IDLE UINT64_MAX /* not writing */
#define WAL_INFLIGHT_TAKING 0u       /* about to take a sequence number */

struct pkv_log;

struct wal_seg {
	int fd;
	uint32_t lane;
	uint64_t segno;
	unsigned char *base; /* shared mapping of the whole file */
	size_t size;         /* mapped bytes == allocated file size == header seg_bytes */
	size_t off;          /* where the next record goes */
	uint32_t seed;       /* record CRC seed */
	uint64_t last_seq;   /* highest seq written into it */
	struct wal_seg *next;
};

/* A full segment still on disk: deleted once a snapshot covers last_seq. */
struct wal_old {
	uint32_t lane;
	uint64_t segno;
	uint64_t last_seq;
	struct wal_old *next;
};

struct wal_lane {
	pthread_mutex_t lock;
	uint64_t inflight; /* atomic: IDLE, TAKING, or the seq being copied in */
	uint32_t id;
	struct wal_seg *cur;     /* where records go; NULL until the first append (lazily made) */
	struct wal_seg *spare;   /* created ahead of time by the background thread */
	struct wal_seg *retired; /* full segments not yet synced and closed */
	uint64_t next_segno;
	uint64_t max_used_segno; /* highest segment number that has been the lane's current one */
	uint64_t last_seq;   /* last seq appended to this lane */
	uint64_t synced_seq; /* last_seq as of the last completed sync of this lane */
	uint64_t bytes; /* appended since open; written under lock, read with relaxed atomics */
	bool want_spare;
} __attribute__((aligned(64)));

struct pkv_wal {
	struct wal_lane *lanes;
	unsigned nlanes;
	uint64_t salt;
	size_t seg_bytes;
	char *dir; /* DIR/wal */
	uint64_t seq;    /* atomic: last sequence number taken */
	uint64_t synced; /* atomic: every seq <= synced is power-loss durable */
	pthread_mutex_t old_mu;
	struct wal_old *old; /* full segments on disk, guarded by old_mu */
	const struct pkv_log *log; /* the store's log callback (internal.h) */
};

/*
 * Set up @nlanes lanes of @seg_bytes segments (no files yet); diagnostics go to @log.
 * 0 or -ENOMEM.
 */
int pkv__wal_init(struct pkv_wal *w, unsigned nlanes, size_t seg_bytes,
		  const struct pkv_log *log);

/* Unmap and close everything; unlinks unused spare segments. Does not sync. */
void pkv__wal_destroy(struct pkv_wal *w);

/* Create segment @segno of @lane, sized for at least @min_bytes; 0 or -errno. */
int pkv__wal_seg_create(struct pkv_wal *w, uint32_t lane, uint64_t segno, size_t min_bytes,
			struct wal_seg **out);

/* Mark every lane as wanting a spare segment (at open); the caller wakes the background thread. */
void pkv__wal_want_spares(struct pkv_wal *w);

/*
 * Segment file names, written here only: "@dir/LLL-SSSSSSSSSS.@ext" (lane, segment number;
 * ext "wal", or "tmp" while it is created, W.1) into @buf of @n bytes; the bare name when @dir
 * is NULL (for messages).
 */
void pkv__wal_seg_path(char *buf, size_t n, const char *dir, uint32_t lane, uint64_t segno,
		       const char *ext);

/* Parse a file name of wal/: 0 (*@lane, *@segno, *@tmp set) or -1 (not a segment's name). */
int pkv__wal_seg_parse_name(const char *name, uint32_t *lane, uint64_t *segno, bool *tmp);

/*
 * At open (recovery.c R.7): make segment @segno of @lane, open as @fd (now owned by the WAL) and
 * @size bytes long, the lane's current one, appending at @off after @last_seq, records seeded
 * with @seed; @max_segno is the highest segment number the lane has on disk. 0 or -errno (the
 * caller keeps @fd then).
 */
int pkv__wal_lane_adopt(struct pkv_wal *w, uint32_t lane, int fd, uint64_t segno, size_t size,
			size_t off, uint64_t last_seq, uint32_t seed, uint64_t max_segno);

/* At open, once every replayed segment is fdatasynced: everything <= @seq is durable. */
void pkv__wal_set_synced(struct pkv_wal *w, uint64_t seq);

/* Unmap, close and free @seg (no sync). */
void pkv__wal_seg_close(struct wal_seg *seg);

/*
 * Append one record. Called with the key's shard lock held (or single-threaded at open); takes
 * the lane lock, makes room (rolling to a new segment if needed: the only step that can fail,
 * and it fails before a sequence number is taken), takes the next sequence number, copies the
 * record into the mapping. Returns the sequence number (> 0), or a negative code. Sets
 * *@rolled (OUT, left alone otherwise) when the lane moved to a new segment: wal.c is a leaf, so
 * the caller, once it has dropped its locks, wakes the background thread (a spare is wanted, a
 * full segment waits to be synced and closed) and kicks the compactor (the WAL grew).
 */
int64_t pkv__wal_append(struct pkv_wal *w, enum wal_rec_type type, const void *key, uint32_t klen,
			const void *val, uint32_t vlen, bool *rolled);

/* Wait until every record with a sequence number <= @seq is copied into its segment. */
void pkv__wal_wait_written(struct pkv_wal *w, uint64_t seq);

/* Remember that segment @segno of @lane, last written at @last_seq, is full. 0 or -ENOMEM. */
int pkv__wal_old_add(struct pkv_wal *w, uint32_t lane, uint64_t segno, uint64_t last_seq);

/* Unlink every full segment whose records are all <= @seq (a durable snapshot covers them). */
int pkv__wal_retire_upto(struct pkv_wal *w, uint64_t seq);

/*
 * Close every lane's current segment (if it holds records): the next append of each lane
 * starts a new one. A compaction calls it before taking S, so that afterwards every segment
 * is either entirely <= S (and deleted) or entirely > S: the WAL a restart reads is exactly the
 * tail after the snapshot. The caller wakes the background thread afterwards.
 */
void pkv__wal_roll_all(struct pkv_wal *w);

/* Bytes appended to the WAL since open (all lanes). */
uint64_t pkv__wal_bytes(struct pkv_wal *w);

/*
 * After the final sync of pkv_close: truncate each lane's current segment to the end of its
 * data, so the next open knows it was closed cleanly (recovery.c R.10). Best effort.
 */
void pkv__wal_close_clean(struct pkv_wal *w);

/* Background helper: create the spare segment of every lane that asked for one. */
void pkv__wal_make_spares(struct pkv_wal *w);

#endif /* PKV_WAL_H */
