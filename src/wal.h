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
/*
 * Most sync rounds that may be in flight at once (pkv_options.sync_rounds, sync.c S.7). Round i
 * uses descriptor i % sync_rounds of every segment it syncs: each is its own open file
 * description, so a write-back error is reported to the fdatasync of every round that waited on
 * the failed pages, not only to whichever round happened to check first (errseq_t is per open
 * file).
 */
#define WAL_SYNC_SLOTS 4u

struct pkv_log;

struct wal_seg {
	int fd;
	int sfd[WAL_SYNC_SLOTS]; /* sync descriptors: sfd[0] is fd, the others opened on first use */
	uint32_t lane;
	uint64_t segno;
	unsigned char *base; /* shared mapping of the whole file */
	size_t size;         /* mapped bytes == allocated file size == header seg_bytes */
	size_t off;          /* where the next record goes */
	size_t dropped;      /* [0, dropped) released from this process's memory (wal.c W.6) */
	uint32_t seed;       /* record CRC seed */
	uint64_t last_seq;   /* highest seq written into it */
	uint64_t seal;       /* sync.c S.4: closed once every round with an id < seal is published */
	bool recycled;       /* W.7: stale bytes follow the data: keep a zero length after it */
	struct pkv_wal *wal; /* W.7: told when the segment is closed; NULL when nobody asks */
	struct wal_seg *next;
};

/* A full segment still on disk: deleted (or recycled, W.7) once a snapshot covers last_seq. */
struct wal_old {
	uint32_t lane;
	uint64_t segno;
	uint64_t last_seq;
	size_t size;    /* file size (header seg_bytes) */
	size_t written; /* bytes of header and records; 0 if unknown (found at open) */
	bool closed;    /* no descriptor or mapping of it is open any more (W.7) */
	struct wal_old *next;
};

/* A retired segment kept for reuse (W.7), renamed to LLL-SSSSSSSSSS.tmp of its old name. */
struct wal_free {
	uint32_t lane;
	uint64_t segno;
	struct wal_free *next;
};

/* Retired segments kept for reuse, per lane (W.7). */
#define WAL_RECYCLE_PER_LANE 2u

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
	struct wal_free *free; /* retired segments kept for reuse (W.7), guarded by old_mu */
	unsigned nfree;
	uint64_t recycled;     /* atomic: segments reused since open */
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

/*
 * At open, after the merge: the next record takes sequence number @last + 1, and new segments
 * carry @salt (the existing segments' salt; 0 when there are none: a random one is drawn).
 */
void pkv__wal_set_origin(struct pkv_wal *w, uint64_t salt, uint64_t last);

/* Whether a lane holds rolled segments not yet synced and closed (takes the lane locks). */
bool pkv__wal_has_retired(struct pkv_wal *w);

/* Unmap, close and free @seg (no sync). A rolled segment's entry learns it is closed (W.7). */
void pkv__wal_seg_close(struct wal_seg *seg);

/*
 * The descriptor that sync slot @slot fdatasyncs @seg with, opened on first use. Only the round
 * holding the slot calls it (rounds of one slot never overlap). A descriptor, or -errno.
 */
int pkv__wal_seg_sync_fd(struct pkv_wal *w, struct wal_seg *seg, unsigned slot);

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

/* pkv__wal_append of any record (a batch, a put with expiry, a clear): see walrec.h. */
int64_t pkv__wal_append_src(struct pkv_wal *w, const struct wal_src *src, bool *rolled);

/*
 * Retire the lane's current segment even if it holds no record (as a roll does), so that the
 * next append starts a new one: recovery's answer to a last segment of an older format
 * version, which must not receive records of the newer one (docs/format.md, Versions).
 */
void pkv__wal_lane_retire_cur(struct pkv_wal *w, uint32_t lane);

/* Wait until every record with a sequence number <= @seq is copied into its segment. */
void pkv__wal_wait_written(struct pkv_wal *w, uint64_t seq);

/*
 * Remember that segment @segno of @lane (@size bytes, @written of them header and records, 0 if
 * unknown), last written at @last_seq, is full. 0 or -ENOMEM.
 */
int pkv__wal_old_add(struct pkv_wal *w, uint32_t lane, uint64_t segno, uint64_t last_seq,
		     size_t size, size_t written);

/*
 * Retire every full segment whose records are all <= @seq (a durable snapshot covers them):
 * keep up to WAL_RECYCLE_PER_LANE per lane for reuse (W.6), unlink the others.
 */
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

/* Where each lane stood at one instant (pkv__wal_positions). */
struct wal_pos {
	bool has_cur;      /* the lane has a current segment */
	uint64_t cur_segno;
	size_t cur_off;    /* end of the data in it: every record before is complete */
	uint64_t max_used; /* segments above this number are spares made ahead (no record) */
};

/*
 * Read every lane's position with every lane lock held at once: a lane takes a sequence number
 * and copies its record under its lock (W.3, W.4), so at that instant the records before the
 * positions are exactly sequence numbers 1 .. *@last_seq (no half-written record, no number
 * without its record). @out has room for w->nlanes entries. Writers pause for the reads.
 */
void pkv__wal_positions(struct pkv_wal *w, struct wal_pos *out, uint64_t *last_seq);

#endif /* PKV_WAL_H */
