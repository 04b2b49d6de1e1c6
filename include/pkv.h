/* SPDX-License-Identifier: MIT */
/*
 * pkv.h - embedded, persistent, concurrent key-value map.
 *
 * This is the only public header. Readers never take a lock and never enter the kernel on the
 * get path; writers append to per-CPU write-ahead-log lanes and publish into an RCU-protected
 * hash map; a restart replays the log (and, once snapshots exist, maps the last one in place).
 *
 * Return convention: every function that returns int returns 0 on success or a negative code:
 * either -errno for a system error (-ENOMEM, -ENOSPC, -EIO, ...) or one of the PKV_E* constants
 * below, which live in a band of their own below the errno range. pkv_strerror() names them all.
 *
 * Threads: a pkv handle is shared freely between threads. A thread that calls into pkv is
 * registered with the RCU runtime on its first call and unregistered when it exits; the library
 * does this by itself. pkv_thread_attach() / pkv_thread_detach() let a latency-critical thread do
 * it at a time of its choosing.
 *
 * fork(): a child process may open stores of its own (pkv registers pthread_atfork handlers for
 * the RCU runtime), but must not use handles its parent opened: their background threads did
 * not come along, and DIR/LOCK belongs to the parent. Fork while no other thread is inside a pkv
 * call. A fork+exec child does not inherit any pkv file descriptor (all are O_CLOEXEC).
 */
#ifndef PKV_H
#define PKV_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(PKV_BUILDING) && defined(__GNUC__)
#define PKV_EXPORT __attribute__((visibility("default")))
#else
#define PKV_EXPORT
#endif

/* ------------------------------------------------------------------------------------------ */
/* Limits                                                                                        */

/** Longest key accepted, in bytes. Longer keys are PKV_ETOOBIG. Empty keys are PKV_EINVAL. */
#define PKV_MAX_KEY 1024u
/** Longest value accepted, in bytes (1 MiB, inclusive). Longer values are PKV_ETOOBIG. */
#define PKV_MAX_VALUE (1024u * 1024u)

/* ------------------------------------------------------------------------------------------ */
/* Error codes (negative, below the errno range; see pkv_strerror)                               */

#define PKV_NOTFOUND (-30001)  /* the key is absent (pkv_get, pkv_del) */
#define PKV_EINVAL (-30002)    /* bad argument: NULL handle/pointer, empty key, bad option */
#define PKV_ETOOBIG (-30003)   /* key longer than PKV_MAX_KEY or value longer than PKV_MAX_VALUE */
#define PKV_ELOCKED (-30004)   /* the directory is already open (this or another process) */
#define PKV_ECORRUPT (-30005)  /* files are damaged beyond a torn, unacknowledged tail */
#define PKV_EREADONLY (-30006) /* opened read-only, or writes were stopped after an I/O error */
#define PKV_ECONFLICT (-30007) /* a condition of pkv_write did not hold; nothing was written */

/** pkv_batch_expect(): any version, as long as the key is present. */
#define PKV_ANY UINT64_MAX

/* ------------------------------------------------------------------------------------------ */
/* Options                                                                                       */

typedef struct pkv pkv; /* opaque store handle, thread-safe */

/**
 * enum pkv_durability - what a returned write survives.
 * @PKV_DURABLE_PROCESS:  the record is in the OS page cache when the write returns: it survives a
 *                        crash or kill of the process, not a power loss. The default.
 * @PKV_DURABLE_POWER:    the record, and every record with a smaller sequence number, was made
 *                        durable with fdatasync before the write returned. Concurrent writers share
 *                        one fdatasync (group commit).
 * @PKV_DURABLE_PERIODIC: as PROCESS, plus a background fdatasync every sync_interval_ms: a power
 *                        loss loses at most about that much acknowledged history (always a suffix).
 *
 * Under every mode a write returns only once every record with a smaller sequence number is
 * written too, so recovery after a crash never finds a hole in front of an acknowledged write.
 */
enum pkv_durability {
	PKV_DURABLE_PROCESS = 0, /* default */
	PKV_DURABLE_POWER,
	PKV_DURABLE_PERIODIC,
};

/** Log levels passed to pkv_options.log_fn. */
enum pkv_log_level {
	PKV_LOG_ERROR = 0,
	PKV_LOG_WARN = 1,
	PKV_LOG_INFO = 2,
};

/** Flags for pkv_options.flags. */
/* Replay and serve reads; every write returns PKV_EREADONLY. Needs read permission only and
 * creates and changes nothing: DIR/LOCK must exist and is locked shared, so several read-only
 * handles (in any processes) may share a store, and a handle open for writing excludes them
 * (and they it) with PKV_ELOCKED. */
#define PKV_OPEN_READONLY 0x1u
/* Fail with -ENOENT instead of creating a missing store: a directory without DIR/LOCK (an
 * empty one too) is no store. */
#define PKV_OPEN_NOCREATE 0x2u
#define PKV_OPEN_NO_AUTOCOMPACT 0x4u /* compact only when pkv_compact() is called */

/**
 * struct pkv_options - how to open a store. Fill with pkv_options_default(), then change fields.
 * A tuning field left 0 (wal_lanes, wal_segment_bytes, shards, compact_wal_bytes, and
 * sync_interval_ms outside PKV_DURABLE_PERIODIC) takes its default, so a zero-initialized struct
 * with only @durability set is valid too.
 * @durability:        default durability of writes (see enum pkv_durability).
 * @sync_interval_ms:  period of the background fdatasync under PKV_DURABLE_PERIODIC (default 100,
 *                     1 .. 3,600,000).
 * @wal_lanes:         number of WAL lanes; 0 (default) means one per online CPU. At most 64.
 * @wal_segment_bytes: size of each preallocated WAL segment file (default 16 MiB, 64 KiB .. 1 GiB).
 *                     A record larger than a segment gets a segment of its own size.
 * @capacity_hint:     number of keys the store expects to hold; the live map is sized for it up
 *                     front so that a store that knows its size never stalls on growth (default 0).
 *                     Once a snapshot exists the live map holds only the changes since it, so a
 *                     reopen does not presize it (that would cost a zeroed table per open); it
 *                     grows with the changes.
 * @shards:            number of writer shards of the live map, a power of two (default 64, at most
 *                     4096). Writers to different shards never wait for each other.
 * @compact_wal_bytes: a background compaction starts when this many WAL bytes were written
 *                     since the last snapshot, or as many as the snapshot's own size if that is
 *                     larger (so rewriting the data is amortized over as much new log: default
 *                     64 MiB; 1 MiB .. 1 TiB). Ignored with PKV_OPEN_NO_AUTOCOMPACT.
 * @flags:             PKV_OPEN_* flags.
 * @log_fn:            optional callback for diagnostics (recovery report, corruption details, I/O
 *                     failures). Called from the thread that hit the event; must not call into pkv.
 *                     The library itself never prints.
 * @log_ctx:           passed to log_fn.
 */
typedef struct pkv_options {
	enum pkv_durability durability;
	unsigned sync_interval_ms; /* for PKV_DURABLE_PERIODIC */
	unsigned wal_lanes;
	size_t wal_segment_bytes;
	size_t capacity_hint;
	unsigned shards;
	size_t compact_wal_bytes;
	unsigned flags;
	void (*log_fn)(void *ctx, int level, const char *msg);
	void *log_ctx;
} pkv_options;

/**
 * struct pkv_stats - counters of an open store (pkv_get_stats).
 * @keys:              live keys in the map.
 * @puts, @dels:       successful writes since open.
 * @last_seq:          highest sequence number taken so far (the write history's length).
 * @durable_seq:       every write with a sequence number <= this is power-loss durable.
 * @wal_bytes:         bytes appended to the WAL since open.
 * @wal_segments:      WAL segment files on disk.
 * @syncs:             fdatasync rounds (group commits, periodic and explicit syncs) since open.
 * @synced_writes:     writes made durable by those rounds (synced_writes / syncs = batch size).
 * @recovered_records: WAL records replayed at open.
 * @discarded_records: records found at open beyond the recovered prefix (a torn tail, or records
 *                     behind a missing sequence number) and discarded.
 * @discarded_bytes:   bytes of WAL discarded at open (torn records and discarded records).
 * @recovery_gap_seq:  the missing sequence number at which replay stopped, 0 if none was missing.
 * @snapshot_seq:      sequence number the current snapshot (base image) is complete up to, 0 if none.
 * @snapshot_keys:     keys in the current snapshot.
 * @snapshot_bytes:    size of the current snapshot file.
 * @compactions:       compactions completed since open.
 * @readonly_reason:   0 while writes are accepted; otherwise the code that stopped them
 *                     (PKV_EREADONLY for a read-only open, or the -errno of a failed fdatasync).
 */
typedef struct pkv_stats {
	uint64_t keys;
	uint64_t puts;
	uint64_t dels;
	uint64_t last_seq;
	uint64_t durable_seq;
	uint64_t wal_bytes;
	uint64_t wal_segments;
	uint64_t syncs;
	uint64_t synced_writes;
	uint64_t recovered_records;
	uint64_t discarded_records;
	uint64_t discarded_bytes;
	uint64_t recovery_gap_seq;
	uint64_t snapshot_seq;
	uint64_t snapshot_keys;
	uint64_t snapshot_bytes;
	uint64_t compactions;
	int readonly_reason;
} pkv_stats;

/* Flags for pkv_put_ex() / pkv_del_ex(). */
#define PKV_WRITE_POWER 0x1u /* this write is power-loss durable on return, whatever the mode */

/* ------------------------------------------------------------------------------------------ */
/* Functions                                                                                     */

/**
 * pkv_options_default() - fill @opts with the defaults described at struct pkv_options.
 * @opts: OUT: options to fill; NULL is ignored.
 * Context: any thread.
 */
PKV_EXPORT void pkv_options_default(pkv_options *opts);

/**
 * pkv_open() - open (creating if needed) the store in directory @dir.
 * @dir:    directory of the store, created if missing (one level); NULL opens a purely in-memory
 *          map with the same API (no files, durability modes have no effect).
 * @opts:   options, or NULL for the defaults.
 * @db_out: OUT: the handle, set only on success.
 *
 * Takes DIR/LOCK with flock (shared for PKV_OPEN_READONLY, which creates nothing), then
 * recovers: replays every WAL lane merged by sequence number and stops at the first missing
 * one, so the opened state is always a prefix of the write history. A torn tail is discarded
 * and reported through log_fn and pkv_get_stats().
 *
 * Returns: 0; PKV_EINVAL (NULL @db_out, bad option); PKV_ELOCKED (the directory is open, in this
 * process or another); PKV_ECORRUPT (damage that is not a torn tail, or that proves the loss of a
 * synced write; the log callback names the file and offset); -ENOENT (PKV_OPEN_NOCREATE or
 * PKV_OPEN_READONLY and no store: no DIR/LOCK); -EACCES and other -errno from the file system
 * (the log callback names the file: "cannot open DIR/LOCK for writing: Permission denied");
 * -ENOMEM.
 * Context: any thread; blocks for the duration of recovery.
 */
PKV_EXPORT int pkv_open(const char *dir, const pkv_options *opts, pkv **db_out);

/**
 * pkv_close() - make every returned write power-loss durable, stop background work, release
 * DIR/LOCK and free the handle. No other thread may use @db during or after the call.
 * @db: handle, or NULL (a no-op returning 0).
 * Returns: 0; or the -errno of the final fdatasync (the handle is freed all the same), or the
 * code that made the store read-only earlier.
 */
PKV_EXPORT int pkv_close(pkv *db);

/**
 * pkv_put() - insert or replace @key with @val, under the store's durability mode.
 * @db, @key, @klen: store and key (1 .. PKV_MAX_KEY bytes).
 * @val, @vlen:      value (0 .. PKV_MAX_VALUE bytes; @val may be NULL when @vlen is 0).
 *
 * Returns: 0; PKV_EINVAL (NULL @db or @key, @klen 0, NULL @val with @vlen > 0); PKV_ETOOBIG;
 * PKV_EREADONLY (read-only open, or writes stopped after an I/O error); -ENOSPC / -EIO / -ENOMEM
 * when the record could not be written (nothing was applied; the store stays usable); or, for a
 * power-durable write (PKV_DURABLE_POWER, PKV_WRITE_POWER), the -errno of the fdatasync that
 * failed after the record was written: the write is applied and visible but not known to be
 * durable (it may or may not survive a power loss), and the store refuses every later write
 * with PKV_EREADONLY.
 * Context: any thread; writers of keys in the same shard are serialized for a few hundred
 * nanoseconds. Under PKV_DURABLE_POWER it blocks for one (shared) fdatasync.
 */
PKV_EXPORT int pkv_put(pkv *db, const void *key, size_t klen, const void *val, size_t vlen);

/**
 * pkv_put_ex() - pkv_put() with per-write @flags (PKV_WRITE_POWER: durable on return).
 * Returns: as pkv_put(); PKV_EINVAL for unknown flags.
 */
PKV_EXPORT int pkv_put_ex(pkv *db, const void *key, size_t klen, const void *val, size_t vlen,
			  unsigned flags);

/**
 * pkv_get() - copy the value of @key.
 * @buf, @cap: destination; min(@cap, value length) bytes are copied. @buf may be NULL if @cap is 0.
 * @vlen:      OUT: the full length of the value, always (so @cap 0 asks for the length only).
 *
 * Returns: 0; PKV_NOTFOUND; PKV_EINVAL (NULL @db, @key or @vlen, @klen 0, NULL @buf with @cap > 0);
 * PKV_ETOOBIG (@klen > PKV_MAX_KEY: such a key cannot exist); PKV_ECORRUPT (the snapshot is
 * damaged on this key's path: its record or the index pages its lookup reads fail their
 * checksums; damaged bytes are never returned, and damage never reads as PKV_NOTFOUND).
 * Context: any thread. Lock-free and wait-free against writers apart from ck_ht's reprobe after a
 * concurrent slot relocation; no syscall. Sees every write that returned before it started.
 */
PKV_EXPORT int pkv_get(pkv *db, const void *key, size_t klen, void *buf, size_t cap, size_t *vlen);

/**
 * pkv_del() - remove @key.
 * Returns: 0; PKV_NOTFOUND (nothing was written); otherwise as pkv_put().
 * Context: as pkv_put().
 */
PKV_EXPORT int pkv_del(pkv *db, const void *key, size_t klen);

/** pkv_del_ex() - pkv_del() with per-write @flags (PKV_WRITE_POWER). */
PKV_EXPORT int pkv_del_ex(pkv *db, const void *key, size_t klen, unsigned flags);

/**
 * pkv_sync() - make every write that returned before this call power-loss durable.
 * Returns: 0; PKV_EINVAL (NULL @db); PKV_EREADONLY or the -errno of a failed fdatasync (after
 * which the store refuses writes: a failed fdatasync is never retried and pretended away).
 * Context: any thread; joins or leads a group commit.
 */
PKV_EXPORT int pkv_sync(pkv *db);

/**
 * pkv_compact() - write a snapshot now and retire the WAL it covers.
 *
 * Writes every live key's latest version to DIR/snap/ (temporary name, fsync, rename, directory
 * fsync), makes it the base image that gets fall back to, drops from the live map what the
 * snapshot holds unchanged, then deletes the WAL segments and the previous snapshot it covers.
 * Readers are never blocked; each writer shard is paused once, for the time it takes to list its
 * live records. Runs one at a time (a call during a background compaction waits for it).
 *
 * Returns: 0 (also a no-op for an in-memory store); PKV_EINVAL; PKV_EREADONLY; -ENOSPC and other
 * -errno (nothing changed: the previous snapshot and the WAL stay authoritative).
 * Context: any thread; blocks for the duration of the compaction.
 */
PKV_EXPORT int pkv_compact(pkv *db);

/**
 * pkv_verify() - check the store's files: the snapshot (header, every index page and record
 * checksum, index and records agree) and the WAL (every record's CRC up to the torn tail,
 * sequence numbers increasing in each lane and continuous across lanes from the snapshot's up
 * to the last write). What was checked is said through the log callback (PKV_LOG_INFO), and
 * counted by pkv_verify_ex().
 * Returns: 0; PKV_EINVAL; PKV_ECORRUPT (the log callback names the file, the offset and the
 * damage); -ENOMEM; -errno from reading the files (the log callback names the file).
 * Context: any thread; reads every file of the store; a compaction waits for it. Writers keep
 * going: a store open for writing is checked up to one instant (its writers pause once while
 * every WAL lane's position is read).
 */
PKV_EXPORT int pkv_verify(pkv *db);

/**
 * struct pkv_verify_report - what pkv_verify_ex() checked.
 * @snapshot_records, @snapshot_bytes: records and size of the snapshot checked (0: none).
 * @wal_segments:  WAL segment files read.
 * @wal_records:   records whose length and CRC were checked (and matched).
 * @wal_bytes:     bytes those records occupy.
 * @wal_first_seq, @wal_last_seq: the sequence numbers found continuous across lanes after the
 *                 snapshot's (0, 0 when the WAL adds nothing to the snapshot).
 * @wal_torn:      lanes whose data ends in a torn record (a read-only store after a crash; a
 *                 store open for writing cut them at open).
 * @wal_beyond:    records past the recovered prefix (behind a missing number: discarded by the
 *                 open of a read-only store, reported by it too).
 */
typedef struct pkv_verify_report {
	uint64_t snapshot_records;
	uint64_t snapshot_bytes;
	uint64_t wal_segments;
	uint64_t wal_records;
	uint64_t wal_bytes;
	uint64_t wal_first_seq;
	uint64_t wal_last_seq;
	uint64_t wal_torn;
	uint64_t wal_beyond;
} pkv_verify_report;

/**
 * pkv_verify_ex() - pkv_verify() that also counts what it checked.
 * @db:  store (an in-memory store has nothing to check: 0, all counts 0).
 * @out: OUT: the counts (may be NULL); filled as far as the check got, also on failure.
 * Returns: as pkv_verify().
 * Context: as pkv_verify().
 */
PKV_EXPORT int pkv_verify_ex(pkv *db, pkv_verify_report *out);

/**
 * typedef pkv_scan_fn - what pkv_scan() calls for each key it visits.
 * @arg:          the @arg given to pkv_scan().
 * @key, @klen:   the key.
 * @val, @vlen:   its value (a copy: valid until fn returns).
 * @seq:          the sequence number of that version (> 0).
 * Returns: 0 to go on; anything else ends the scan, and pkv_scan() returns it.
 */
typedef int (*pkv_scan_fn)(void *arg, const void *key, size_t klen, const void *val, size_t vlen,
			   uint64_t seq);

/**
 * pkv_scan() - visit the keys of the store, a part per call, with Redis SCAN's promises.
 * @db:     store.
 * @cursor: IN/OUT: 0 starts a full scan; each call stores where the next one continues, and 0
 *          once the scan is complete. Opaque (see below); any value a call stored may be given
 *          back later, also to another handle of the same store.
 * @count:  about how many keys this call visits (>= 1): a call stops after the first group of
 *          keys that reaches it (keys that share one 64-bit hash are one group), or earlier
 *          where the copy of the visited values reaches 4 MiB, or at the end of the store.
 * @fn:     called for each key visited, outside every lock and read section: it may call any
 *          pkv function, writes and pkv_compact() included.
 * @arg:    passed to @fn.
 *
 * A full scan (from cursor 0 until it is 0 again) visits the live map and the snapshot base
 * together, each key once with its newest version (a key shadowed by a newer version or a
 * delete in the live map shows that; deleted and expired keys are not shown), and promises:
 * every key present throughout the full scan is visited at least once; a key absent throughout
 * it is never visited; with no writes during it, every key is visited exactly once. These hold
 * while the live map's tables grow and while compactions swap the base mid-scan.
 *
 * The cursor is a position in the 64-bit hash space of the keys (the hash the live map and the
 * snapshot index both use, hash.h): a scan visits keys in increasing hash order. A key's hash
 * never changes when a table grows or a compaction writes a new snapshot, so a position means
 * the same before and after: nothing is kept between calls, and an abandoned scan costs nothing.
 * Each call reads a hash window of one live-map shard under that shard's lock (writers of the
 * shard wait for a pass over its table) and the base's index slots of the window.
 *
 * Returns: 0; the non-zero value @fn returned (then *@cursor is where the scan would continue
 * after that key); PKV_EINVAL (NULL @db, @cursor or @fn, @count 0); PKV_ECORRUPT (the snapshot is
 * damaged in the range being read; *@cursor is where that range starts, after every key the
 * call visited, so a retry reads it again); -ENOMEM (likewise).
 * Context: any thread, outside a read section of its own store if @fn writes or compacts.
 */
PKV_EXPORT int pkv_scan(pkv *db, uint64_t *cursor, size_t count, pkv_scan_fn fn, void *arg);

/**
 * pkv_checkpoint() - make @dst_dir a complete copy of the store, while writers run.
 * @db:      a store with a directory (opened read-write or read-only).
 * @dst_dir: the directory to create; it must not exist (its parent must).
 *
 * @dst_dir becomes a store that opens to the state at one instant between the call and its
 * return: the writes 1 .. C of the history, where C is the last sequence number taken at that
 * instant (every write acknowledged before the call is in it; none begun after it returned).
 * The snapshot (immutable) is hard-linked where the file system allows and copied otherwise;
 * the WAL segments are copied up to the cut; every file and directory is fsynced, so the copy
 * survives a power loss once the call returns. The copy is independent of the source: neither
 * one's later writes, compactions or deletions change the other. It holds a LOCK file, so it
 * can be opened read-only (or with `pkv` commands) as it is.
 * Writers pause once, while every WAL lane's position is read; a compaction waits for the
 * checkpoint (and the checkpoint for a running compaction).
 *
 * Returns: 0; PKV_EINVAL (NULL @db or @dst_dir, empty @dst_dir, an in-memory store); -EEXIST
 * (@dst_dir exists: it is left as it was); -ENOENT (its parent is missing); -ENOSPC, -EACCES and
 * other -errno (the log callback names the file; what the call made under @dst_dir is removed).
 * Context: any thread; blocks for the copy. Not inside a read section.
 */
PKV_EXPORT int pkv_checkpoint(pkv *db, const char *dst_dir);

/**
 * pkv_get_stats() - read the counters of @db into @out.
 * Returns: 0; PKV_EINVAL (NULL argument).
 * Context: any thread; the counters are read without stopping writers (each one is exact, the set
 * is not a single atomic snapshot).
 */
PKV_EXPORT int pkv_get_stats(pkv *db, pkv_stats *out);

/**
 * pkv_thread_attach() - register the calling thread with the RCU runtime now (pkv would do it on
 * the thread's first call). Idempotent. Returns 0.
 */
PKV_EXPORT int pkv_thread_attach(void);

/**
 * pkv_thread_detach() - unregister the calling thread (pkv would do it at thread exit). The thread
 * may call into pkv again later; it is then registered again. Returns 0.
 */
PKV_EXPORT int pkv_thread_detach(void);

/**
 * pkv_strerror() - a static, human-readable message for any code pkv returns (PKV_E*, -errno, 0).
 */
PKV_EXPORT const char *pkv_strerror(int code);

#ifdef __cplusplus
}
#endif

#endif /* PKV_H */
