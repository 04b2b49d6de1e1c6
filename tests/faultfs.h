/* SPDX-License-Identifier: MIT */
/*
 * faultfs.h - a test implementation of the file-system table of src/fs.h: it counts every
 * operation, and can fail, shorten or "crash" at a chosen one.
 *
 * Model. Every call the library makes through the table is one *operation*, of one of the kinds
 * of enum ffs_op (one per member of struct pkv_fs_ops). Operations are numbered 1, 2, 3, ... in
 * the order they start, across all threads, from the last ffs_reset(); per-kind counters run
 * alongside. Writes through a WAL mapping are plain stores and are not operations (src/fs.h):
 * they reach the file system at the next fdatasync, which is.
 *
 * Faults. One fault at a time is armed (ffs_arm). It names the n-th *matching* operation after
 * arming: matching means of a kind in its mask (0: every kind) and, with @this_thread, started
 * by the thread that armed it (so a background thread of the store cannot take the fault meant
 * for the operation under test). What happens to it, and with @persistent to every matching one
 * after it:
 *   FFS_FAIL   the operation is not performed and returns -@err (EIO, ENOSPC, ...). close and
 *              munmap are the exceptions: they release the descriptor or mapping and then
 *              report the error, as a failed close(2) on Linux does (otherwise the fault would
 *              leak the resource, which no real failure does).
 *   FFS_SHORT  pwrite writes, and pread reads, only the first half of the request (at least one
 *              byte) and returns that count: a legal short transfer that callers must retry.
 *              Only pread and pwrite match a SHORT fault.
 *   FFS_CRASH  the process dies before performing the operation: by default _exit(FFS_CRASH_CODE)
 *              from whichever thread hit it. That is process-crash semantics: everything written
 *              before (to files, and through mappings into the page cache) stays, as after
 *              kill -9.
 *
 * Syncs can be elided (ffs_set_sync_elide): fdatasync and fsync are still counted, still take
 * faults and still reach the hooks, but succeed without calling the kernel. Under process-crash
 * semantics a sync changes nothing about what survives, so crash tests that run a workload
 * thousands of times use it to stay fast on a real disk.
 *
 * Extension point: power loss. A power-loss simulator (SQLite's crash VFS, RocksDB's
 * FaultInjectionTestFS) needs to see every durability point and to decide what a crash leaves.
 * faultfs gives it both without being changed:
 *   - struct ffs_hooks.pre / .post see every operation with its index, kind, descriptor, the path
 *     the descriptor was opened with (faultfs keeps an fd -> path table; directories included,
 *     so a directory fsync names the directory), paths of rename/unlink/mkdir, and the result.
 *     A simulator keeps, per file, the image a completed fdatasync/fsync made durable (copying
 *     the file at that point captures mapped writes too, since they are in the page cache), and
 *     per directory the names a completed directory fsync made durable;
 *   - struct ffs_hooks.crash replaces the default _exit: it is called with the operation that
 *     "crashed", puts the durable images in place of the files (dropping unsynced data and
 *     unsynced renames/unlinks), and then exits. With no crash hook the crash keeps everything.
 * The hooks run outside faultfs's lock, on the thread of the operation.
 *
 * faultfs is process-global (the table has no context argument). It is not fork-safe while a
 * store is open (its lock may be held by another thread at fork); the crash tests fork from a
 * process with no store open and install faultfs in the child.
 */
#ifndef PKV_TEST_FAULTFS_H
#define PKV_TEST_FAULTFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../src/fs.h"

/* Exit status of a process that faultfs crashed (FFS_CRASH without a crash hook). */
#define FFS_CRASH_CODE 77

enum ffs_op {
	FFS_OPEN,
	FFS_CLOSE,
	FFS_PREAD,
	FFS_PWRITE,
	FFS_FDATASYNC,
	FFS_FSYNC,
	FFS_FTRUNCATE,
	FFS_FALLOCATE,
	FFS_RENAME,
	FFS_UNLINK,
	FFS_MKDIR,
	FFS_FLOCK,
	FFS_FSTAT_SIZE,
	FFS_MMAP,
	FFS_MUNMAP,
	FFS_NOPS
};

#define FFS_BIT(op) (1u << (op))
#define FFS_ALL_KINDS (FFS_BIT(FFS_NOPS) - 1u)

enum ffs_action {
	FFS_NONE = 0, /* disarmed: count only */
	FFS_FAIL,
	FFS_SHORT,
	FFS_CRASH,
};

struct ffs_fault {
	enum ffs_action action;
	uint64_t nth; /* 1-based index among the matching operations after arming */
	unsigned kinds; /* FFS_BIT() mask; 0 means every kind */
	int err; /* FFS_FAIL: positive errno; 0 means EIO */
	bool persistent; /* also every matching operation after the n-th */
	bool this_thread; /* only operations started by the thread that armed the fault match */
};

/* One operation as the hooks see it. */
struct ffs_call {
	enum ffs_op op;
	uint64_t index; /* global 1-based number since ffs_reset() */
	int fd; /* descriptor operated on (open: the result, in post), or -1 */
	const char *path; /* open/rename(from)/unlink/mkdir: the argument; fd ops: its path */
	const char *path2; /* rename: the target */
	const void *buf; /* pwrite: the data; pread: the destination */
	size_t len; /* pread/pwrite/mmap/munmap length; ftruncate/fallocate: see off */
	off_t off; /* pread/pwrite/mmap offset; ftruncate: new size; fallocate: start */
	off_t len2; /* fallocate: length */
	enum ffs_action injected; /* what faultfs did to this operation */
	long long result; /* post only: the value returned to the library (0/count/fd/-errno) */
};

struct ffs_hooks {
	void (*pre)(void *ctx, const struct ffs_call *c); /* before the operation (or its fault) */
	void (*post)(void *ctx, const struct ffs_call *c); /* after it, with its result */
	/* FFS_CRASH: called instead of _exit(FFS_CRASH_CODE); must not return. */
	void (*crash)(void *ctx, const struct ffs_call *c) __attribute__((noreturn));
	void *ctx;
};

/* Install faultfs as the library's table (pkv__fs_set), after ffs_reset(). */
void ffs_install(void);
/* Restore the production table. Counters and the fault stay readable. */
void ffs_uninstall(void);

/* Zero every counter and the fd -> path table, disarm, clear hooks and sync elision. */
void ffs_reset(void);

/* Arm @f (replacing any armed fault); matching starts with the next operation. */
void ffs_arm(const struct ffs_fault *f);
void ffs_disarm(void);

void ffs_set_hooks(const struct ffs_hooks *h); /* NULL clears */
void ffs_set_sync_elide(bool on);

/* Operations since ffs_reset(): all of them, or of one kind. */
uint64_t ffs_total(void);
uint64_t ffs_count(enum ffs_op op);
/* Operations that matched the armed fault's kinds and thread since it was armed (whether or not
 * the fault took them): arm a fault with nth = UINT64_MAX to count what a step would expose. */
uint64_t ffs_matched(void);
/* Faults injected since ffs_reset(), and the kind and index of the last one (-1/0 if none). */
uint64_t ffs_injected(void);
int ffs_last_kind(void);
uint64_t ffs_last_index(void);

/* A short name for @op ("pwrite", ...), for messages. */
const char *ffs_op_name(int op);

#endif /* PKV_TEST_FAULTFS_H */
