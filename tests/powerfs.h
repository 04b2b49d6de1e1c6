/* SPDX-License-Identifier: MIT */
/*
 * powerfs.h - a power-loss simulator on faultfs's hooks: it keeps what the disk is sure to hold
 * and, when the power is cut, writes a disk image that drops or tears everything else.
 *
 * Model. Files are followed by identity (the inode a descriptor refers to, seen when it is
 * opened), so a rename moves a file rather than making a new one; directories by the path the
 * library uses for them. Per file the simulator keeps its *durable image*: its contents and size
 * as they were when the last completed fdatasync/fsync of it *started* (read through the
 * descriptor, so stores through a shared mapping are in it: they are in the page cache). Bytes
 * stored while a sync runs may or may not be on the disk afterwards, so they count as not
 * durable; a failed sync makes nothing durable. Per directory it keeps the *durable names*
 * (name -> file or directory) that a completed fsync of that directory made durable: every
 * create, rename and unlink in it that completed before the fsync started. Every other create,
 * rename or unlink is *pending*, in the order the operations completed. Files and directories
 * that exist when the simulator is installed are durable as they are.
 *
 * Power cut (powerfs_cut(), or the faultfs crash hook at an FFS_CRASH operation). The image is
 * written into a new directory @out (struct powerfs_cfg):
 *   1. names: every durable name of every directory, then a random prefix of the pending
 *      operations applied in order (what a journaling file system with ordered metadata can
 *      leave: each operation is in the journal after the ones before it);
 *   2. contents: each file that has a name in the image gets its durable image; its size is the
 *      durable size or the current one (at random, when they differ), and each page
 *      (page_bytes, default 4 KiB) whose current contents differ from the durable image is, at
 *      random: kept old, taken new, or torn (a prefix of its 512-byte sectors new, the rest old).
 *      Bytes beyond a size read as zeros.
 * The choices come from a generator seeded with cfg.seed: the same history and seed give the
 * same image.
 *
 * The race the cut must win. Other threads keep running while one thread cuts the power: one may
 * be completing an fdatasync after which it would acknowledge a write. The cut takes the
 * simulator's lock and sets a crashed flag first; every hook that runs after that (before or
 * after its operation) blocks until the process exits, and a sync's durable image is recorded
 * only in its post hook, under the lock. So a sync either completed before the cut, and its image
 * is on the disk, or its caller never learns that it returned: no write is acknowledged whose
 * sync is not in the image. Then the image is written, cfg.on_cut runs, and the process
 * _exit()s with cfg.exit_code.
 *
 * Limits (what the model does not cover):
 *   - only operations through the fs table of src/fs.h are seen: files the library creates by
 *     other means, or that another process changes while the simulator is installed, are not
 *     followed; @root itself must exist and its own name in its parent is taken as durable;
 *   - metadata survives as a prefix of the pending operations, in the order their post hooks
 *     ran (concurrent operations in different directories may be ordered either way); file
 *     systems that reorder metadata more freely (ext2, some network file systems) can leave
 *     other subsets; a directory fsync does not make other directories' operations durable,
 *     even where a real journal would (the model is the weaker, POSIX promise);
 *   - a file's size survives whole, old or new; a page is torn only as a prefix of sectors (no
 *     bit rot, no misdirected or reordered sector writes, no lost fallocate: every extent
 *     reads as zeros or as written);
 *   - the current contents are read when the power is cut while other threads may still be
 *     storing through mappings: a page may mix two moments, as a write in progress does;
 *   - a failed fdatasync is only "nothing became durable": the dropped-dirty-pages behaviour
 *     of Linux after a writeback error is not modelled.
 * One simulator per process (faultfs is process-global); not fork-safe while installed.
 */
#ifndef PKV_TEST_POWERFS_H
#define PKV_TEST_POWERFS_H

#include <stdbool.h>
#include <stdint.h>

#include "faultfs.h"

/* Exit status of a process whose power was cut (unless cfg.exit_code says otherwise). */
#define POWERFS_EXIT_CODE 78

/* What a cut did; handed to cfg.on_cut. */
struct powerfs_report {
	uint64_t op_index; /* the faultfs operation the cut replaced, 0 for powerfs_cut(NULL) */
	int32_t op_kind; /* its enum ffs_op, -1 for powerfs_cut(NULL) */
	int32_t error; /* 0, or the -errno of a failure to write the image */
	uint64_t files; /* files written into the image */
	uint64_t dirs; /* directories in the image, the root included */
	uint64_t pages_same; /* pages whose current contents were durable */
	uint64_t pages_new; /* pages that differed and were taken new (kept) */
	uint64_t pages_old; /* pages that differed and were kept old (the new data dropped) */
	uint64_t pages_torn; /* pages that differed and were torn */
	uint64_t sizes_new, sizes_old; /* files whose size differed: the new or the old size won */
	uint64_t dirops_applied; /* pending directory operations in the surviving prefix */
	uint64_t dirops_dropped; /* pending directory operations lost */
	uint64_t syncs; /* completed file syncs recorded since install */
	uint64_t dirsyncs; /* completed directory fsyncs recorded since install */
};

struct powerfs_cfg {
	const char *root; /* the store directory, spelled as the library is given it */
	const char *out; /* where the image goes; must not exist */
	uint64_t seed;
	unsigned page_bytes; /* 0: 4096; a multiple of 512 */
	int exit_code; /* 0: POWERFS_EXIT_CODE */
	bool elide_syncs; /* ffs_set_sync_elide: count syncs, skip the kernel call */
	/* Called by the cutting thread after the image is written, before _exit; may write to a
	 * pipe. Must not call into the library. */
	void (*on_cut)(void *ctx, const struct powerfs_report *r);
	void *ctx;
};

/*
 * Scan @cfg->root (everything in it is durable), then install faultfs (ffs_install, which resets
 * it) with the simulator's hooks. Arm faults with ffs_arm afterwards: an FFS_CRASH operation cuts
 * the power. Returns 0 or -errno (nothing installed).
 */
int powerfs_install(const struct powerfs_cfg *cfg);

/* Cut the power now, from any thread (@c: the operation that was to run, or NULL). */
__attribute__((noreturn)) void powerfs_cut(const struct ffs_call *c);

/*
 * True once a cut has begun (the process is about to end). A workload thread checks it before
 * it starts a step: at a real power cut nothing starts afterwards, while here the threads run on
 * until the image is written. A step already under way may finish; its record may or may not be
 * in the image.
 */
bool powerfs_cut_started(void);

#endif /* PKV_TEST_POWERFS_H */
