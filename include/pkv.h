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
 * not come along, and DIR/LOCK belongs to the parent (the child's copies of the lock descriptors
 * are closed at the fork, so a parent's lock ends with the parent's pkv_close whatever its
 * children do). Fork while no other thread is inside a pkv call. A fork+exec child does not
 * inherit any pkv file descriptor (all are O_CLOEXEC).
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
/**
 * PKV_BATCH_MAX_OPS - most writes and conditions one batch holds, together (pkv_batch_put,
 * pkv_batch_put_expire, pkv_batch_del and pkv_batch_expect each add one). The call that would add
 * one more is PKV_ETOOBIG and leaves the batch as it was.
 */
#define PKV_BATCH_MAX_OPS 65536u
/**
 * PKV_BATCH_MAX_BYTES - most bytes one batch holds: the sum over its writes and conditions of
 * klen + vlen + PKV_BATCH_OP_OVERHEAD (64 MiB; so 64 values of 1 MiB do not fit, 63 do). The call
 * that would cross it is PKV_ETOOBIG and leaves the batch as it was.
 */
#define PKV_BATCH_MAX_BYTES (64u * 1024u * 1024u)
/** PKV_BATCH_OP_OVERHEAD - what each write or condition counts towards PKV_BATCH_MAX_BYTES
 * beyond its key and value bytes. */
#define PKV_BATCH_OP_OVERHEAD 16u

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
 * A tuning field left 0 (wal_lanes, wal_segment_bytes, shards, compact_wal_bytes,
 * sync_interval_ms) takes its default, so a zero-initialized struct with only @durability set is
 * valid too, in every mode.
 * @durability:        default durability of writes (see enum pkv_durability).
 * @sync_interval_ms:  period of the background fdatasync under PKV_DURABLE_PERIODIC (default 100,
 *                     1 .. 3,600,000; 0 takes the default).
 * @wal_lanes:         number of WAL lanes; 0 (default) means one per online CPU, or one under
 *                     PKV_DURABLE_POWER (each lane with new records costs a group commit one
 *                     fdatasync: one per round is faster than several in parallel). At most 64.
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
 * @sync_rounds:       group-commit rounds that may be in flight at once (default 1, at most 4).
 *                     With 1 the next round's writers gather while an fdatasync runs and it starts
 *                     when that one ends; more overlap fdatasyncs, which pays on devices that
 *                     serve concurrent flushes in parallel (measure: docs/benchmarks.md).
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
	unsigned sync_rounds; /* last: the fields before it keep their offsets */
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
 * @snapshot_seq:      sequence number the current snapshot (base image) is complete up to, 0 if
 *                     none.
 * @snapshot_keys:     keys in the current snapshot.
 * @snapshot_bytes:    size of the current snapshot file.
 * @compactions:       compactions completed since open.
 * @readonly_reason:   0 while writes are accepted; otherwise the code that stopped them
 *                     (PKV_EREADONLY for a read-only open, or the -errno of a failed fdatasync).
 * @wal_recycled:      WAL segments made from retired ones (whose blocks are already written)
 *                     instead of fresh files, since open.
 * @map_grows:         times a shard's hash table of the live map grew (to twice its size or more,
 *                     ahead of an insert) since open, replay included: each growth copies the
 *                     shard's entries into a new table and frees the old one after a grace period.
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
	uint64_t wal_recycled;
	uint64_t map_grows;
} pkv_stats;

/* Flags for pkv_put_ex(), pkv_del_ex(), pkv_put_expire() and pkv_write(). */
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
 * process or another, by a handle that writes, or this open would write: read-only handles
 * share a directory with each other, never with a writer); PKV_ECORRUPT (damage that is not a
 * torn tail, or that proves the loss of a synced write; the log callback names the file and
 * offset); -ENOENT (PKV_OPEN_NOCREATE or PKV_OPEN_READONLY and no store: no DIR/LOCK); -EACCES
 * and other -errno from the file system (the log callback names the file: "cannot open
 * DIR/LOCK for writing: Permission denied"); -ENOMEM; PKV_EINVAL inside a read section (see
 * pkv_read_begin()).
 * Context: any thread; blocks for the duration of recovery.
 */
PKV_EXPORT int pkv_open(const char *dir, const pkv_options *opts, pkv **db_out);

/**
 * pkv_close() - make every returned write power-loss durable, stop background work, release
 * DIR/LOCK and free the handle. No other thread may use @db during or after the call.
 * @db: handle, or NULL (a no-op returning 0).
 * Returns: 0; or the -errno of the final fdatasync (the handle is freed all the same), or the
 * code that made the store read-only earlier; PKV_EINVAL if the calling thread is inside a read
 * section (on any store): nothing is done and the handle stays open.
 * Context: closing waits for every thread's read sections to end: close no store while another
 * thread has a section open on it (that thread would be using a handle being closed).
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
 * with PKV_EREADONLY. PKV_EINVAL for a power-durable write inside a read section (nothing is
 * written; see pkv_read_begin()).
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

/* ------------------------------------------------------------------------------------------ */
/* Read sections: zero-copy reads                                                                */

/** How many stores one thread may have read sections open on at the same time. */
#define PKV_READ_MAX_STORES 8u

/**
 * pkv_read_begin() - open a read section on @db in the calling thread.
 * @db: store.
 *
 * Inside a section the thread reads without copying: pkv_get_ref() and pkv_get_many() hand out
 * pointers into the store (into a record of the live map, or straight into the mapped snapshot)
 * that stay valid, their bytes unchanged, until the thread's outermost pkv_read_end(), whatever
 * writers, deletes and compactions do meanwhile: what they replace is freed, and a replaced
 * snapshot unmapped, only after every section that could see it has ended.
 *
 * Sections are per thread and nest: each begin needs one pkv_read_end() on the same store, from
 * the same thread, before the thread exits. A thread may have sections open on up to
 * PKV_READ_MAX_STORES stores at once.
 *
 * Inside any section (on any store) a thread may call pkv_get(), pkv_get_ref(), pkv_get_many(),
 * pkv_get_stats(), nested begin/end, and writes that do not wait for durability (pkv_put(),
 * pkv_del() and their _ex forms without PKV_WRITE_POWER on a store not opened with
 * PKV_DURABLE_POWER). A call that would wait for readers to leave their sections, or for
 * another thread that may be waiting for them, returns PKV_EINVAL there at once instead of
 * waiting for itself forever: pkv_open(), pkv_close(), pkv_compact(), pkv_verify(), pkv_sync(),
 * a power-durable put or delete, pkv_thread_detach(). A section holds back the reclamation of
 * every replaced record and compactions' completion in the whole process while it lasts: keep
 * sections short (microseconds to milliseconds), as a section of any RCU.
 *
 * Returns: 0; PKV_EINVAL (NULL @db; sections already open on PKV_READ_MAX_STORES other stores;
 * nesting deeper than UINT_MAX).
 * Context: any thread; no lock, no syscall (the thread's first pkv call registers it with RCU).
 */
PKV_EXPORT int pkv_read_begin(pkv *db);

/**
 * pkv_read_end() - close the innermost read section the calling thread has open on @db.
 * @db: store.
 *
 * When it closes the thread's outermost section (over all stores), every pointer handed out
 * inside becomes invalid.
 * Returns: 0; PKV_EINVAL (NULL @db, or no section of this thread is open on @db: nothing changes).
 * Context: the thread that called pkv_read_begin(); no lock, no syscall (apart from, at most once
 * per grace period, waking a compaction or close that waits for this thread's section to end).
 */
PKV_EXPORT int pkv_read_end(pkv *db);

/**
 * pkv_get_ref() - find @key and point at its value, without copying it.
 * @db, @key, @klen: store and key (1 .. PKV_MAX_KEY bytes).
 * @val:  OUT: the value's first byte (NULL when not found); valid until the calling thread's
 *        outermost pkv_read_end(). Never written through: the bytes belong to the store. Not
 *        aligned in any particular way, and not NUL-terminated.
 * @vlen: OUT: the value's length (0 when not found).
 * @seq:  OUT, may be NULL: the sequence number of the version found (0 when not found). A batch
 *        (pkv_write) gives every key it writes its one sequence number.
 *
 * Returns: 0; PKV_NOTFOUND; PKV_EINVAL (NULL @db, @key, @val or @vlen, @klen 0, or the calling
 * thread has no read section open on @db); PKV_ETOOBIG (@klen > PKV_MAX_KEY); PKV_ECORRUPT (as
 * pkv_get()). Whatever it returns, *@val, *@vlen and *@seq are set when their pointers are not
 * NULL.
 * Context: inside a read section on @db (pkv_read_begin()); lock-free as pkv_get(), no syscall.
 * Sees every write that returned before it started.
 */
PKV_EXPORT int pkv_get_ref(pkv *db, const void *key, size_t klen, const void **val, size_t *vlen,
			   uint64_t *seq);

/**
 * struct pkv_item - one key of a pkv_get_many() call.
 * @key, @klen:  IN: the key.
 * @val, @vlen:  OUT: the value (NULL and 0 unless @rc is 0); valid until the calling thread's
 *               outermost pkv_read_end(), as with pkv_get_ref().
 * @seq:         OUT: the sequence number of the version found (0 if absent).
 * @expires_ms:  OUT: the version's expiry, in milliseconds since the epoch; 0 = never.
 * @rc:          OUT: 0; PKV_NOTFOUND; PKV_ECORRUPT (as pkv_get()); PKV_EINVAL (NULL @key or
 *               @klen 0); PKV_ETOOBIG (@klen > PKV_MAX_KEY).
 */
typedef struct pkv_item {
	const void *key;
	size_t klen;
	const void *val;
	size_t vlen;
	uint64_t seq;
	uint64_t expires_ms;
	int rc;
} pkv_item;

/**
 * pkv_get_many() - look up @n keys at once, without copying their values.
 * @db:    store.
 * @items: the keys (in) and, per key, the result (out; see struct pkv_item). A key may appear
 *         more than once.
 * @n:     number of items, 1 .. INT_MAX.
 *
 * Faster than @n gets for more than a few keys: it hashes the keys of a group, prefetches their
 * table slots, then their records (or the snapshot's index entries and records), and only then
 * reads them, so that the memory misses of a group overlap. The results are as of one moment
 * with respect to batches: they never show a batch (pkv_write) in part, only all of its keys or
 * none. Single puts and deletes that run meanwhile may show or not, each on its own, as with
 * @n calls of pkv_get_ref().
 *
 * Returns: how many items have @rc 0 (0 .. @n); PKV_EINVAL (NULL @db or @items, @n 0 or larger
 * than INT_MAX, or the calling thread has no read section open on @db: no item is touched). A bad
 * key fails its own item only.
 * Context: inside a read section on @db (pkv_read_begin()); no lock, no syscall; waits (spinning
 * briefly) while a batch is being published.
 */
PKV_EXPORT int pkv_get_many(pkv *db, pkv_item *items, size_t n);

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
 * Returns: 0; PKV_EINVAL (NULL @db, or inside a read section); PKV_EREADONLY or the -errno of a
 * failed fdatasync (after which the store refuses writes: a failed fdatasync is never retried
 * and pretended away).
 * Context: any thread; joins or leads a group commit.
 */
PKV_EXPORT int pkv_sync(pkv *db);

/* ------------------------------------------------------------------------------------------ */
/* Durability tickets: the C form of an async API                                               */

/**
 * pkv_put_seq() - pkv_put_ex() that also hands back the write's sequence number, the ticket
 * pkv_wait_durable() takes (a documented extra; pkv_write() gives a batch's).
 * @flags:   0 or PKV_WRITE_POWER.
 * @seq_out: OUT: the sequence number of this write, set once it is applied: on success, and
 *           when a power-durable write's fdatasync failed after it was applied. May be NULL.
 *
 * A typical use: write under PKV_DURABLE_PROCESS (returns as soon as the record is in the page
 * cache), keep the number, and acknowledge the write once pkv_wait_durable() or the event fd
 * says it survives power loss.
 * Returns: as pkv_put_ex().
 * Context: as pkv_put().
 */
PKV_EXPORT int pkv_put_seq(pkv *db, const void *key, size_t klen, const void *val, size_t vlen,
			   unsigned flags, uint64_t *seq_out);

/**
 * pkv_del_seq() - pkv_del_ex() that also hands back the delete's sequence number (see
 * pkv_put_seq()).
 * @seq_out: OUT: set only on success (a delete of an absent key writes nothing: PKV_NOTFOUND).
 * Returns: as pkv_del().
 * Context: as pkv_del().
 */
PKV_EXPORT int pkv_del_seq(pkv *db, const void *key, size_t klen, unsigned flags,
			   uint64_t *seq_out);

/**
 * pkv_durable_seq() - the durable watermark: every write with a sequence number <= *@seq_out
 * survives power loss.
 * @db:      store.
 * @seq_out: OUT: the watermark (0 before anything is known to be durable).
 *
 * The watermark only grows. It grows when a group commit, pkv_sync(), a PKV_DURABLE_PERIODIC
 * round or a round asked for by pkv_wait_durable() completes; at open it covers everything
 * recovered (the open syncs it). A store opened with PKV_OPEN_READONLY does not sync, so its
 * watermark stays 0. An in-memory store (dir NULL) has no disk: every issued number counts as
 * durable there (as pkv_sync() returns 0 there).
 * Returns: 0; PKV_EINVAL (NULL @db or @seq_out).
 * Context: any thread; lock-free (one atomic load), never blocks.
 */
PKV_EXPORT int pkv_durable_seq(pkv *db, uint64_t *seq_out);

/**
 * pkv_wait_durable() - wait until the write with sequence number @seq, and every write before
 * it, survives power loss.
 * @db:         store.
 * @seq:        a sequence number handed out by this handle (pkv_put_seq(), pkv_del_seq(),
 *              pkv_write(), pkv_get_stats().last_seq); 0 is always durable.
 * @timeout_ms: 0 polls; < 0 waits as long as it takes; > 0 waits at most that long.
 *
 * If no sync round that covers @seq is running or due, one is started, in every durability
 * mode. A negative timeout waits like a PKV_DURABLE_POWER writer: the caller may lead the round
 * and blocks in its fdatasync (the cheapest way for a thread per request). A poll or a
 * positive timeout never blocks in an fdatasync: the store's background thread runs the round,
 * and the call returns within its timeout (an event loop polls with 0 and waits on
 * pkv_event_fd()).
 *
 * Returns: 0 once durable; -EAGAIN (timeout 0: not durable yet, a round has been asked for);
 * -ETIMEDOUT (not durable within @timeout_ms; the round goes on); PKV_EREADONLY (an fdatasync
 * failed: the store stopped accepting writes, and no write after the last durable one will ever
 * be reported durable: every waiter gets this, never a false 0; or the store was opened
 * read-only, or pkv_close() has begun); PKV_EINVAL (NULL @db, @seq above the last number
 * issued, or a non-zero @timeout_ms inside a read section: a round may wait for this thread).
 * Context: any thread. Never call it with the timeout < 0 from a thread that must not block.
 */
PKV_EXPORT int pkv_wait_durable(pkv *db, uint64_t seq, int timeout_ms);

/**
 * pkv_event_fd() - an eventfd(2) that turns readable whenever pkv_durable_seq() grows, and once
 * when the store stops after a failed fdatasync.
 * @db: an on-disk store.
 *
 * The descriptor is created on the first call (non-blocking, close-on-exec), is the same for
 * every later call, and belongs to the store: pkv_close() closes it, the caller must not. How an
 * event loop consumes it, with no lost wake-up: when it is readable, read(2) its 8-byte counter
 * (which resets it; EAGAIN means someone else did), *then* call pkv_durable_seq() and complete
 * every pending write whose sequence number is <= the watermark; for writes still pending, call
 * pkv_wait_durable(db, seq, 0) once so that a round is under way. A growth after the read makes
 * the descriptor readable again. If pkv_wait_durable(..., 0) returns PKV_EREADONLY, fail the
 * pending writes.
 * Returns: the descriptor (>= 0); PKV_EINVAL (NULL @db, or an in-memory store, which has no
 * durable watermark to follow); -EMFILE / -ENFILE / -ENOMEM from eventfd(2).
 * Context: any thread.
 */
PKV_EXPORT int pkv_event_fd(pkv *db);

/**
 * pkv_compact() - write a snapshot now and retire the WAL it covers.
 *
 * Writes every live key's latest version to DIR/snap/ (temporary name, fsync, rename, directory
 * fsync), makes it the base image that gets fall back to for keys the live map lacks (after a
 * reopen), drops the live map's tombstones the snapshot makes useless, then deletes the WAL
 * segments and the previous snapshot it covers. Live values stay in the live map, so gets keep
 * their one-probe speed after a compaction. Keys expired at its start are left out and their
 * memory freed. With nothing written since the last snapshot and no key of it expired since,
 * it does nothing (the first call after an open that found a snapshot rewrites it once: which
 * of its keys expire is not known until then).
 * Readers are never blocked; each writer shard is paused once, for the time it takes to list its
 * live records. Runs one at a time (a call during a background compaction waits for it).
 *
 * Returns: 0 (also a no-op for an in-memory store); PKV_EINVAL (NULL @db, or inside a read
 * section: a compaction waits for every section to end); PKV_EREADONLY; -ENOSPC and other
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
 * Returns: 0; PKV_EINVAL (NULL @db, or inside a read section); PKV_ECORRUPT (the log callback
 * names the file, the offset and the damage); -ENOMEM; -errno from reading the files (the log
 * callback names the file).
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
 * Returns: 0; PKV_EINVAL (NULL @db or @dst_dir, empty @dst_dir, an in-memory store, or inside a
 * read section); -EEXIST
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

/* ------------------------------------------------------------------------------------------ */
/* Batches: several writes applied all or none (pkv_write)                                       */

/** A batch of writes and conditions, built with pkv_batch_* and applied with pkv_write(). */
typedef struct pkv_batch pkv_batch;

/**
 * pkv_batch_new() - allocate an empty batch.
 * @b_out: OUT: the batch, set only on success; free it with pkv_batch_free().
 * Returns: 0; PKV_EINVAL (NULL @b_out); -ENOMEM.
 * Context: any thread. A batch belongs to no store: it may be written to several stores, and
 * reused (pkv_batch_clear) after it was written. One thread at a time may use a batch.
 */
PKV_EXPORT int pkv_batch_new(pkv_batch **b_out);

/**
 * pkv_batch_put() - add "set @key to @val" to @b. The bytes are copied; the caller's buffers
 * may be reused at once. A later write of the same key in the batch wins.
 * @b:          batch.
 * @key, @klen: key, 1 .. PKV_MAX_KEY bytes.
 * @val, @vlen: value, 0 .. PKV_MAX_VALUE bytes; @val may be NULL when @vlen is 0.
 * Returns: 0; PKV_EINVAL (NULL @b or @key, @klen 0, NULL @val with @vlen > 0); PKV_ETOOBIG
 * (@klen > PKV_MAX_KEY, @vlen > PKV_MAX_VALUE, or the batch would cross PKV_BATCH_MAX_OPS or
 * PKV_BATCH_MAX_BYTES); -ENOMEM. On any error the batch is unchanged.
 * Context: the thread that owns @b; touches no store.
 */
PKV_EXPORT int pkv_batch_put(pkv_batch *b, const void *key, size_t klen, const void *val,
			     size_t vlen);

/**
 * pkv_batch_put_expire() - pkv_batch_put() of a key that expires: from @expires_ms on (absolute
 * wall-clock time, CLOCK_REALTIME, milliseconds since the epoch) the key reads as absent
 * everywhere, as if deleted then, and compaction reclaims it. A time already past is allowed: the
 * key is written and reads as absent at once. @expires_ms 0 means "never": a plain put.
 * Returns: as pkv_batch_put().
 * Context: as pkv_batch_put().
 */
PKV_EXPORT int pkv_batch_put_expire(pkv_batch *b, const void *key, size_t klen, const void *val,
				    size_t vlen, uint64_t expires_ms);

/**
 * pkv_batch_del() - add "delete @key" to @b. Deleting a key that is absent when the batch is
 * written is no error (pkv_write does not return PKV_NOTFOUND for it).
 * Returns: 0; PKV_EINVAL (NULL @b or @key, @klen 0); PKV_ETOOBIG (@klen > PKV_MAX_KEY, or a
 * limit of the batch); -ENOMEM. On any error the batch is unchanged.
 * Context: as pkv_batch_put().
 */
PKV_EXPORT int pkv_batch_del(pkv_batch *b, const void *key, size_t klen);

/**
 * pkv_batch_expect() - add a condition: when pkv_write() applies @b, @key's current version must
 * be @seq, or nothing is written and pkv_write returns PKV_ECONFLICT.
 * @seq: a version's sequence number (pkv_write's seq_out, or the seq a read returned); 0: the key
 *       must be absent; PKV_ANY: the key must be present, any version. An expired key is absent.
 * Conditions are checked against the state before the batch, all together and in the same step
 * as the writes are applied (no other write can come between), whatever order they were added
 * in relative to the writes. Several conditions on one key must all hold.
 * Returns: 0; PKV_EINVAL (NULL @b or @key, @klen 0); PKV_ETOOBIG (@klen > PKV_MAX_KEY, or a limit
 * of the batch); -ENOMEM. On any error the batch is unchanged.
 * Context: as pkv_batch_put().
 */
PKV_EXPORT int pkv_batch_expect(pkv_batch *b, const void *key, size_t klen, uint64_t seq);

/**
 * pkv_batch_clear() - empty @b (writes and conditions) for reuse; keeps its memory. NULL is a
 * no-op.
 * Context: as pkv_batch_put().
 */
PKV_EXPORT void pkv_batch_clear(pkv_batch *b);

/** pkv_batch_free() - free @b and everything it holds. NULL is a no-op. */
PKV_EXPORT void pkv_batch_free(pkv_batch *b);

/**
 * pkv_write() - apply the batch @b to @db: all of its writes or none, in order (a later write of
 * a key in the batch wins), as one step with its conditions.
 * @db:      store.
 * @b:       batch; not changed (it may be written again, to this store or another).
 * @flags:   0, or PKV_WRITE_POWER: durable against power loss on return whatever the mode.
 * @seq_out: OUT (may be NULL): the batch's sequence number, which every key it writes carries
 *           (pkv_batch_expect and the seq of reads name it, and it is what durability waits
 *           take); 0 when nothing was written (an empty batch, a batch of conditions only, or
 *           PKV_ECONFLICT). Left alone on other errors, unless the batch was applied before a
 *           failed fdatasync (see Returns).
 *
 * Under the locks of every shard the batch touches (taken in one global order, so concurrent
 * batches never deadlock), the conditions are checked against the state before the batch; if
 * one fails nothing is written. Otherwise the batch takes one sequence number and is logged as
 * one WAL record, so after any crash, in every durability mode, recovery finds all of it or
 * none of it (a torn batch record is a torn tail). pkv_get_many never returns part of a batch.
 * A delete of an absent key is no error. An empty batch writes nothing and returns 0; a batch
 * of conditions only checks them and writes nothing.
 *
 * Returns: 0; PKV_ECONFLICT (a condition did not hold: nothing was written); PKV_EINVAL (NULL
 * @db or @b, @flags other than 0 and PKV_WRITE_POWER, or a power-durable batch with writes inside
 * a read section: nothing was written); PKV_EREADONLY (a batch with writes on a
 * read-only store, or one whose writes were stopped); PKV_ECORRUPT (a condition's key cannot
 * be read from a damaged snapshot: nothing was written); -ENOMEM, -ENOSPC, -EIO (nothing was
 * written; the store stays usable); or, for a power-durable write, the -errno of the fdatasync
 * that failed after the batch was applied (as pkv_put()).
 * Context: any thread; writers of the shards the batch touches wait for it. Under
 * PKV_DURABLE_POWER or PKV_WRITE_POWER it blocks for one (shared) fdatasync.
 */
PKV_EXPORT int pkv_write(pkv *db, pkv_batch *b, unsigned flags, uint64_t *seq_out);

/**
 * pkv_put_expire() - pkv_put_ex() of a key that expires at @expires_ms (absolute wall-clock time:
 * CLOCK_REALTIME, milliseconds since the epoch). From that instant on the key reads as absent
 * everywhere (gets, pkv_get_ref, pkv_get_many, scans, batch conditions, dumps; in the live map
 * and in the snapshot), pkv_del of it returns PKV_NOTFOUND, and the next compaction reclaims its
 * memory and disk. @expires_ms 0 means "never" (a plain put); a time already past writes a key
 * that reads as absent at once. An expired key still counts in pkv_stats.keys until a
 * compaction reclaims it. The clock is the machine's: expiry follows its jumps.
 * Returns: as pkv_put_ex().
 * Context: as pkv_put().
 */
PKV_EXPORT int pkv_put_expire(pkv *db, const void *key, size_t klen, const void *val,
			      size_t vlen, uint64_t expires_ms, unsigned flags);

/**
 * pkv_clear() - delete every key, as one atomic write: one sequence number, one WAL record, an
 * empty base. Durable like any write of the store's mode (under PKV_DURABLE_POWER it returns
 * after an fdatasync); after any crash recovery finds the store either as it was or empty (plus
 * the writes after the clear). Waits for a running compaction; the disk space of the old
 * snapshot is reclaimed by the next compaction.
 * Returns: 0; PKV_EINVAL (NULL @db, or inside a read section: it waits for a compaction);
 * PKV_EREADONLY; -ENOMEM, -ENOSPC, -EIO (nothing was cleared); or the -errno of a failed
 * fdatasync under PKV_DURABLE_POWER (cleared, not known to be durable; the store then refuses
 * writes).
 * Context: any thread; every writer waits for it (it holds every shard lock for the time it
 * takes to unlink every record from the map). Readers never wait; pkv_get_many sees the store
 * before or after the clear, never in between.
 */
PKV_EXPORT int pkv_clear(pkv *db);

/**
 * pkv_thread_attach() - register the calling thread with the RCU runtime now (pkv would do it on
 * the thread's first call). Idempotent. Returns 0.
 */
PKV_EXPORT int pkv_thread_attach(void);

/**
 * pkv_thread_detach() - unregister the calling thread (pkv would do it at thread exit). The thread
 * may call into pkv again later; it is then registered again.
 * Returns: 0; PKV_EINVAL inside a read section (the thread stays registered).
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
