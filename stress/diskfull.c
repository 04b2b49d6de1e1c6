/* SPDX-License-Identifier: MIT */
/*
 * diskfull.c - a full disk, from a real size-limited file system: ENOSPC fails the write, never
 * the store.
 *
 * The driver mounts a small tmpfs (root only: otherwise it prints "SKIPPED: ..." and exits with
 * MU_SKIP_CODE) in a private mount namespace, and for each durability mode fills it with a
 * ballast file plus a store, then holds the store to these rules (wal.c W.3, sync.c S.3,
 * compact.c C.8, and the Returns: of pkv.h):
 *   D1  writing until the disk is full: every failing put returns -ENOSPC, applies nothing (the
 *       key stays absent or keeps its old value) and takes no sequence number; the store stays
 *       writable (readonly_reason 0). Overwrites and deletes on the full disk: 0 or -ENOSPC,
 *       and a failed one changed nothing.
 *   D2  gets keep working while the disk is full: a reader thread checks acknowledged values
 *       throughout the filling and the full phase, and every key is checked once full.
 *   D3  pkv_compact on the full disk fails with -ENOSPC and changes nothing: same keys, same
 *       last and snapshot sequence numbers, same files in snap/, and no space kept by a leftover
 *       temporary file.
 *   D4  the store is not poisoned: once the ballast is deleted, writes and a compaction work on
 *       the same handle, without a reopen.
 *   D5  no acknowledged write is lost, after close + reopen too (a reopen reports no discarded
 *       record and no gap).
 *   D6  a reopen while the disk is full either works, or fails with -ENOSPC without damage: a
 *       read-only open then serves every acknowledged write, and once space is freed the store
 *       opens and takes writes again.
 *   D7  a failed fdatasync on the full disk (EIO injected through the file-system table of
 *       src/fs.h by tests/faultfs.c: tmpfs itself never fails one) makes the store read-only for
 *       good: PKV_EREADONLY even after space comes back, pkv_close reports the -EIO, no write is
 *       acknowledged over the failed sync, and every acknowledged write is there after a reopen.
 *       (tests/test_fs.c checks S.3 itself in every mode; this is the full-disk case.)
 * D7 uses an internal seam, so this driver links the static library. Every check counts; the
 * driver prints its figures and a closing "N passed, M failed".
 *
 * Usage: diskfull [--size-mb N] [--headroom-mb N] [--rounds N] [--seed N] [--dir PARENT] [--quiet]
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../tests/faultfs.h"
#include "mount_util.h"
#include "pkv.h"
#include "stress_util.h"

#define MAX_VAL (320u * 1024u) /* the largest value below: a record larger than a segment */
#define FULL_AFTER 64 /* consecutive -ENOSPC puts that mean "full" */
#define AFTER_FREE_PUTS 300 /* puts that must all work once space is back */
#define MiB (1024u * 1024u)

struct cfg {
	unsigned size_mb; /* tmpfs size */
	unsigned headroom_mb; /* what the ballast leaves to the store */
	unsigned rounds;
	uint64_t seed;
	const char *parent;
	bool quiet;
};

static struct cfg cfg = {
	.size_mb = 24,
	.headroom_mb = 6,
	.rounds = 1,
	.seed = 1,
	.parent = NULL,
	.quiet = false,
};

static uint64_t passed, failed;
static char root[4096]; /* a private temporary directory, the mount point */
static char db_dir[4200];
static volatile sig_atomic_t mounted;

/* ---- checks ------------------------------------------------------------------------------ */

static bool ck(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool ck(bool ok, const char *fmt, ...)
{
	va_list ap;

	if (ok) {
		passed++;
		return true;
	}
	va_start(ap, fmt);
	su_vfail(&failed, fmt, ap);
	va_end(ap);
	return false;
}

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...)
{
	va_list ap;

	if (cfg.quiet)
		return;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
}

/* What the library logged (log_fn may be called from its background threads). */
static struct {
	pthread_mutex_t mu;
	uint64_t errors, warnings;
	char last_error[256];
} logged = { .mu = PTHREAD_MUTEX_INITIALIZER };

static void log_fn(void *ctx, int level, const char *msg)
{
	(void)ctx;
	pthread_mutex_lock(&logged.mu);
	if (level == PKV_LOG_ERROR) {
		logged.errors++;
		snprintf(logged.last_error, sizeof(logged.last_error), "%s", msg);
	} else if (level == PKV_LOG_WARN) {
		logged.warnings++;
	}
	pthread_mutex_unlock(&logged.mu);
}

/* ---- the mount ---------------------------------------------------------------------------- */

static void unmount_root(void)
{
	if (mounted) {
		int r = mu_umount(root);

		if (r < 0)
			printf("diskfull: umount %s: %s\n", root, strerror(-r));
		mounted = 0;
	}
	rmdir(root);
}

static void on_signal(int sig)
{
	if (mounted)
		umount2(root, MNT_DETACH);
	signal(sig, SIG_DFL);
	raise(sig);
}

static void path_in(char *out, size_t n, const char *name)
{
	snprintf(out, n, "%s/%s", root, name);
}

/* Append to the file @name until @max bytes were written or the disk is full; bytes written. */
static uint64_t ballast(const char *name, uint64_t max)
{
	static char zeros[1u << 20];
	size_t chunk = sizeof(zeros);
	uint64_t done = 0;
	char path[4300];
	int fd;

	path_in(path, sizeof(path), name);
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0) {
		ck(false, "open ballast %s: %s", path, strerror(errno));
		return 0;
	}
	while (done < max && chunk >= 512) {
		size_t n = max - done < chunk ? (size_t)(max - done) : chunk;
		ssize_t w = write(fd, zeros, n);

		if (w > 0) {
			done += (uint64_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno != ENOSPC) {
			ck(false, "write ballast %s: %s", path, strerror(errno));
			break;
		}
		chunk /= 2; /* the disk is full at this granularity: try smaller */
	}
	close(fd);
	return done;
}

static void unlink_in(const char *name)
{
	char path[4300];

	path_in(path, sizeof(path), name);
	unlink(path);
}

/* Names in @dir, sorted and joined, for "nothing changed" comparisons. */
static void list_dir(const char *dir, char *out, size_t cap)
{
	struct dirent **names = NULL;
	size_t used = 0;
	int n = scandir(dir, &names, NULL, alphasort);

	out[0] = '\0';
	for (int i = 0; i < n; i++) {
		if (names[i]->d_name[0] != '.' && used + strlen(names[i]->d_name) + 2 < cap)
			used += (size_t)snprintf(out + used, cap - used, "%s ", names[i]->d_name);
		free(names[i]);
	}
	free(names);
}

static bool dir_has_tmp(const char *dir)
{
	char names[8192];

	list_dir(dir, names, sizeof(names));
	return strstr(names, ".tmp") != NULL;
}

/* ---- the model of the store ---------------------------------------------------------------- */

/*
 * Key i is "k<i>"; its value of generation g is a stream determined by (round seed, i, g), cut
 * to the length the write used. Keys with i % 8 == 7 are the ones the full phase overwrites and
 * deletes; the reader thread leaves them alone, so what it checks never changes under it.
 */
struct ent {
	uint32_t vlen;
	uint16_t gen;
	uint8_t present;
	uint8_t maybe; /* a write that failed over an injected EIO: either state is right */
};

static struct ent *model;
static uint32_t model_cap;
static uint32_t ntried; /* keys 0 .. ntried - 1 were written at least once */
static _Atomic uint32_t published; /* the reader checks keys below this */
static uint64_t round_seed;

static size_t key_of(uint32_t i, char *buf)
{
	return (size_t)snprintf(buf, 32, "k%08" PRIu32, i);
}

static void value_of(uint32_t i, uint16_t gen, uint32_t vlen, unsigned char *out)
{
	su_fill(out, vlen, su_hash3(round_seed, i, gen));
}

static uint32_t vlen_of(uint32_t i, uint16_t gen)
{
	uint64_t h = su_hash3(round_seed ^ 0x5eed, i, gen);

	if (h % 997 == 0) /* larger than the POWER case's 256 KiB segments */
		return 300u * 1024u + (uint32_t)((h >> 20) % 4096);
	if ((h & 63) == 1)
		return 16384u + (uint32_t)((h >> 8) % 49152);
	return 64u + (uint32_t)((h >> 8) % 4000);
}

static int put_key(pkv *db, uint32_t i, uint16_t gen, uint32_t vlen, unsigned char *buf)
{
	char key[32];
	size_t klen = key_of(i, key);

	value_of(i, gen, vlen, buf);
	return pkv_put(db, key, klen, buf, vlen);
}

/* Does the store hold exactly what the model says for key i? Else describe it in @why. */
static bool key_ok(pkv *db, uint32_t i, const struct ent *e, unsigned char *buf,
		   unsigned char *want, char *why, size_t whylen)
{
	char key[32];
	size_t klen = key_of(i, key), vlen = 0;
	int rc = pkv_get(db, key, klen, buf, MAX_VAL, &vlen);

	if (e->maybe && rc == PKV_NOTFOUND)
		return true;
	if (!e->present && !e->maybe) {
		if (rc == PKV_NOTFOUND)
			return true;
		snprintf(why, whylen, "%s should be absent, get = %d (%s), %zu bytes", key, rc,
			 pkv_strerror(rc), vlen);
		return false;
	}
	value_of(i, e->gen, e->vlen, want);
	if (rc == 0 && vlen == e->vlen && memcmp(buf, want, vlen) == 0)
		return true;
	snprintf(why, whylen, "%s (generation %u, %" PRIu32 " bytes): get = %d (%s), %zu bytes%s",
		 key, e->gen, e->vlen, rc, pkv_strerror(rc), vlen,
		 rc == 0 && vlen == e->vlen ? ", other contents" : "");
	return false;
}

static unsigned char *vbuf, *vwant;

/* D5: every key ever written against the model, and the key count. */
static bool verify_all(pkv *db, const char *when)
{
	uint64_t present = 0, bad = 0, maybes = 0;
	char why[256], first[256] = "";
	pkv_stats st;

	for (uint32_t i = 0; i < ntried; i++) {
		present += model[i].present;
		maybes += model[i].maybe;
		if (!key_ok(db, i, &model[i], vbuf, vwant, why, sizeof(why)) && bad++ == 0)
			snprintf(first, sizeof(first), "%s", why);
	}
	if (!ck(bad == 0, "%s: %" PRIu64 " of %" PRIu32 " keys differ from the model; first: %s",
		when, bad, ntried, first))
		return false;
	if (pkv_get_stats(db, &st) != 0)
		return ck(false, "%s: pkv_get_stats failed", when);
	return ck(st.keys >= present && st.keys <= present + maybes,
		  "%s: stats.keys = %" PRIu64 ", the model has %" PRIu64 " (+%" PRIu64 " unsure)", when,
		  st.keys, present, maybes);
}

/* ---- D2: a reader during the full condition ------------------------------------------------ */

struct reader {
	pkv *db;
	atomic_bool stop;
	uint64_t gets, bad;
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	unsigned char *buf = malloc(MAX_VAL), *want = malloc(MAX_VAL);
	struct su_rng rng;
	char why[256];

	if (buf == NULL || want == NULL) {
		r->bad++;
		goto out;
	}
	su_rng_seed(&rng, round_seed + 17);
	while (!atomic_load(&r->stop)) {
		uint32_t n = atomic_load_explicit(&published, memory_order_acquire);
		uint32_t i;

		if (n == 0) {
			su_sleep_ms(1);
			continue;
		}
		i = (uint32_t)su_rng_below(&rng, n);
		if (i % 8 == 7)
			continue;
		__atomic_add_fetch(&r->gets, 1, __ATOMIC_RELAXED);
		if (!key_ok(r->db, i, &model[i], buf, want, why, sizeof(why)) && r->bad++ < 3)
			printf("FAIL: reader during the full condition: %s\n", why);
	}
out:
	free(buf);
	free(want);
	return NULL;
}

/* ---- one durability mode --------------------------------------------------------------------- */

struct mode_case {
	enum pkv_durability d;
	unsigned lanes;
	size_t seg_bytes;
	size_t compact_wal_bytes; /* 0: the default, which this disk never reaches */
};

static const struct mode_case cases[] = {
	{ PKV_DURABLE_PROCESS, 2, 1u * MiB, 0 },
	{ PKV_DURABLE_POWER, 2, 256u * 1024u, 0 },
	/* Background compactions every MiB of WAL: they too meet the full disk. */
	{ PKV_DURABLE_PERIODIC, 2, 512u * 1024u, 1u * MiB },
};

struct figs {
	uint64_t acked, acked_bytes, enospc, other_err;
	uint64_t first_enospc_at; /* puts acknowledged before the first -ENOSPC */
	uint64_t acked_after_first; /* puts that still fit after the first -ENOSPC */
	uint64_t over_ok, over_nospc, del_ok, del_nospc, probe_ok, probe_nospc;
	uint64_t store_bytes_full; /* what the store took of the disk when it was full */
	int compact_rc, reopen_rc, reopen_rc_idle;
	uint64_t reader_gets;
};

/*
 * D1: write new keys until FULL_AFTER puts in a row fail. Every failure must be -ENOSPC, leave
 * the key absent, take no sequence number and leave the store writable.
 */
static bool fill(pkv *db, struct figs *f)
{
	unsigned consec = 0;
	uint64_t bad_code = 0, bad_seq = 0, bad_applied = 0, bad_ro = 0;
	char first[256] = "";

	while (consec < FULL_AFTER) {
		uint32_t i = ntried, vlen = vlen_of(i, 0);
		pkv_stats before, after;
		char key[32];
		size_t klen = key_of(i, key), got = 0;
		int rc;

		if (i >= model_cap)
			return ck(false, "the disk never filled (%" PRIu32 " keys written)", i);
		pkv_get_stats(db, &before);
		rc = put_key(db, i, 0, vlen, vbuf);
		model[i] = (struct ent){ .vlen = vlen, .gen = 0, .present = rc == 0 };
		ntried++;
		atomic_store_explicit(&published, ntried, memory_order_release);
		if (rc == 0) {
			f->acked++;
			f->acked_bytes += vlen;
			if (f->enospc != 0)
				f->acked_after_first++;
			consec = 0;
			continue;
		}
		consec++;
		if (rc != -ENOSPC) {
			f->other_err++;
			if (bad_code++ == 0)
				snprintf(first, sizeof(first), "put of %s (%" PRIu32 " bytes) = %d (%s)",
					 key, vlen, rc, pkv_strerror(rc));
			if (rc == PKV_EREADONLY || rc == PKV_EINVAL)
				break;
			continue;
		}
		if (f->enospc++ == 0)
			f->first_enospc_at = f->acked;
		pkv_get_stats(db, &after);
		if (after.last_seq != before.last_seq && bad_seq++ == 0)
			printf("  %s: last_seq %" PRIu64 " -> %" PRIu64 " over a failed put\n", key,
			       before.last_seq, after.last_seq);
		if (after.readonly_reason != 0 && bad_ro++ == 0)
			printf("  %s: readonly_reason %d after -ENOSPC\n", key, after.readonly_reason);
		if (pkv_get(db, key, klen, NULL, 0, &got) != PKV_NOTFOUND)
			bad_applied++;
	}
	ck(bad_code == 0, "D1: %" PRIu64 " puts failed with a code other than -ENOSPC; first: %s",
	   bad_code, first);
	ck(bad_seq == 0, "D1 (W.3): %" PRIu64 " failed puts took a sequence number", bad_seq);
	ck(bad_applied == 0, "D1: %" PRIu64 " failed puts were applied anyway", bad_applied);
	return ck(bad_ro == 0, "D1: the store stopped writes after -ENOSPC (%" PRIu64 " times)",
		  bad_ro);
}

/* D1: overwrites and deletes of existing keys (class 7) on the full disk. */
static void overwrite_and_delete(pkv *db, struct figs *f)
{
	char why[256];
	uint64_t bad = 0;
	unsigned tries = 0;

	for (uint32_t i = 7; i < ntried && tries < 400; i += 8) {
		struct ent *e = &model[i];
		char key[32];
		size_t klen = key_of(i, key);
		int rc;

		if (!e->present)
			continue;
		tries++;
		if (i % 16 == 15) {
			rc = pkv_del(db, key, klen);
			if (rc == 0) {
				f->del_ok++;
				e->present = 0;
			} else if (rc == -ENOSPC) {
				f->del_nospc++;
			} else {
				bad++;
				printf("FAIL: D1: del of %s on the full disk = %d (%s)\n", key, rc,
				       pkv_strerror(rc));
			}
		} else {
			uint16_t gen = (uint16_t)(e->gen + 1);
			uint32_t vlen = vlen_of(i, gen);

			rc = put_key(db, i, gen, vlen, vbuf);
			if (rc == 0) {
				f->over_ok++;
				e->gen = gen;
				e->vlen = vlen;
			} else if (rc == -ENOSPC) {
				f->over_nospc++;
			} else {
				bad++;
				printf("FAIL: D1: overwrite of %s on the full disk = %d (%s)\n", key,
				       rc, pkv_strerror(rc));
			}
		}
		/* A failed write changed nothing; a successful one is visible at once. */
		if (!key_ok(db, i, e, vbuf, vwant, why, sizeof(why))) {
			bad++;
			printf("FAIL: D1: after a write on the full disk: %s\n", why);
		}
	}
	ck(bad == 0, "D1: %" PRIu64 " overwrites/deletes on the full disk went wrong", bad);
}

/* Give back the last @bytes of the file @name (the disk then has that much room). */
static void ballast_shrink(const char *name, uint64_t bytes)
{
	char path[4300];
	struct stat st;

	path_in(path, sizeof(path), name);
	if (stat(path, &st) != 0 || (uint64_t)st.st_size < bytes)
		ck(false, "shrink ballast %s by %" PRIu64 " bytes: it is missing or smaller", path,
		   bytes);
	else if (truncate(path, st.st_size - (off_t)bytes) != 0)
		ck(false, "shrink ballast %s by %" PRIu64 " bytes: %s", path, bytes, strerror(errno));
}

/*
 * D3: pkv_compact on the full disk fails with -ENOSPC and changes nothing. First the disk is
 * taken whole and compactions are run until one fails: that also waits out a background
 * compaction (one at a time), which may have freed WAL segments. Then a gap of COMPACT_GAP bytes
 * is opened, smaller than the snapshot and than any segment (so no spare can take it): the
 * measured compaction writes into it, fails, and must give all of it back.
 */
#define COMPACT_GAP (128u * 1024u)
static void compact_when_full(pkv *db, struct figs *f)
{
	char snap_dir[4300], before_names[8192], after_names[8192];
	pkv_stats before, after;
	uint64_t free_before, free_after = 0;
	int rc = 0;

	snprintf(snap_dir, sizeof(snap_dir), "%s/snap", db_dir);
	for (int k = 0; k < 8; k++) {
		ballast("ballast-top", UINT64_MAX);
		rc = pkv_compact(db);
		if (rc != 0)
			break;
	}
	f->compact_rc = rc;
	ck(rc == -ENOSPC, "D3: pkv_compact on the full disk = %d (%s), expected -ENOSPC", rc,
	   pkv_strerror(rc));
	ballast("ballast-top", UINT64_MAX);
	ballast_shrink("ballast-0", COMPACT_GAP);
	for (int t = 0; t < 200 && dir_has_tmp(snap_dir); t++)
		su_sleep_ms(10);
	pkv_get_stats(db, &before);
	list_dir(snap_dir, before_names, sizeof(before_names));
	free_before = mu_free_bytes(root);

	rc = pkv_compact(db);
	ck(rc == -ENOSPC, "D3: pkv_compact with %" PRIu64 " bytes free = %d (%s), expected -ENOSPC",
	   free_before, rc, pkv_strerror(rc));
	pkv_get_stats(db, &after);
	list_dir(snap_dir, after_names, sizeof(after_names));
	ck(after.keys == before.keys && after.last_seq == before.last_seq &&
		   after.snapshot_seq == before.snapshot_seq &&
		   after.compactions == before.compactions && after.readonly_reason == 0,
	   "D3: the failed compaction changed the store: keys %" PRIu64 "->%" PRIu64
	   ", last_seq %" PRIu64 "->%" PRIu64 ", snapshot_seq %" PRIu64 "->%" PRIu64
	   ", compactions %" PRIu64 "->%" PRIu64 ", readonly_reason %d",
	   before.keys, after.keys, before.last_seq, after.last_seq, before.snapshot_seq,
	   after.snapshot_seq, before.compactions, after.compactions, after.readonly_reason);
	ck(strcmp(before_names, after_names) == 0 && !dir_has_tmp(snap_dir),
	   "D3: snap/ changed over a failed compaction: [%s] -> [%s]", before_names, after_names);
	/* C.8: the temporary file is gone, and so is the space it took. */
	for (int t = 0; t < 100; t++) {
		free_after = mu_free_bytes(root);
		if (free_after >= free_before)
			break;
		su_sleep_ms(20);
	}
	ck(free_after >= free_before,
	   "D3: the failed compaction kept %" PRIu64 " bytes of the disk (free %" PRIu64
	   " -> %" PRIu64 ")",
	   free_before - free_after, free_before, free_after);
	ballast("ballast-top", UINT64_MAX);
}

/* D1 after D3: small puts on the full disk give 0 or -ENOSPC, nothing else. */
static void probe_small_puts(pkv *db, struct figs *f, unsigned n)
{
	uint64_t bad = 0;

	for (unsigned k = 0; k < n && ntried < model_cap; k++) {
		uint32_t i = ntried;
		int rc = put_key(db, i, 0, 8, vbuf);

		model[i] = (struct ent){ .vlen = 8, .gen = 0, .present = rc == 0 };
		ntried++;
		atomic_store_explicit(&published, ntried, memory_order_release);
		if (rc == 0)
			f->probe_ok++;
		else if (rc == -ENOSPC)
			f->probe_nospc++;
		else if (bad++ == 0)
			printf("FAIL: D1: an 8-byte put on the full disk = %d (%s)\n", rc,
			       pkv_strerror(rc));
	}
	ck(bad == 0, "D1: %" PRIu64 " small puts on the full disk failed with other codes", bad);
}

/* D4: with room again, every put works on the same handle. */
static bool puts_work(pkv *db, unsigned n, const char *when)
{
	uint64_t bad = 0;
	int first = 0;

	for (unsigned k = 0; k < n && ntried < model_cap; k++) {
		uint32_t i = ntried, vlen = vlen_of(i, 0);
		int rc = put_key(db, i, 0, vlen, vbuf);

		model[i] = (struct ent){ .vlen = vlen, .gen = 0, .present = rc == 0 };
		ntried++;
		if (rc != 0 && bad++ == 0)
			first = rc;
	}
	return ck(bad == 0, "D4: %s: %" PRIu64 " of %u puts failed; first: %d (%s)", when, bad, n,
		  first, pkv_strerror(first));
}

static void opts_for(const struct mode_case *mc, pkv_options *o)
{
	pkv_options_default(o);
	o->durability = mc->d;
	o->sync_interval_ms = 5;
	o->wal_lanes = mc->lanes;
	o->wal_segment_bytes = mc->seg_bytes;
	if (mc->compact_wal_bytes)
		o->compact_wal_bytes = mc->compact_wal_bytes;
	o->log_fn = log_fn;
	o->log_ctx = NULL;
}

static pkv *open_ok(const pkv_options *o, const char *when)
{
	pkv *db = NULL;
	int rc = pkv_open(db_dir, o, &db);

	if (!ck(rc == 0, "%s: pkv_open = %d (%s)", when, rc, pkv_strerror(rc)))
		return NULL;
	return db;
}

static bool close_ok(pkv *db, const char *when)
{
	int rc = pkv_close(db);

	return ck(rc == 0, "%s: pkv_close = %d (%s)", when, rc, pkv_strerror(rc));
}

/* A reopen must find every write and report no loss. */
static void reopen_report_ok(pkv *db, const char *when)
{
	pkv_stats st;

	pkv_get_stats(db, &st);
	ck(st.discarded_records == 0 && st.recovery_gap_seq == 0,
	   "%s: the reopen discarded %" PRIu64 " records (%" PRIu64 " bytes), gap at %" PRIu64,
	   when, st.discarded_records, st.discarded_bytes, st.recovery_gap_seq);
}

static void reset_disk(void)
{
	su_rmtree(db_dir);
	unlink_in("ballast-0");
	unlink_in("ballast-top");
	unlink_in("ballast-2");
	unlink_in("ballast-3");
	ntried = 0;
	atomic_store(&published, 0);
	memset(model, 0, sizeof(*model) * model_cap);
}

/*
 * D6: with the store closed, take every free byte, then reopen. Either the open works and
 * finds everything, or it fails with -ENOSPC; then a read-only open (which writes nothing) must
 * serve every acknowledged write, a second attempt must fail the same way (the first did no
 * damage), and once the space is back the open must work. Returns the store, open, with the
 * space back (the ballast of this step deleted), or NULL.
 */
static pkv *reopen_on_full_disk(const pkv_options *o, const char *name, const char *how,
				int *rc_out)
{
	char when[160];
	pkv *db = NULL;
	int rc;

	ballast("ballast-3", UINT64_MAX);
	rc = pkv_open(db_dir, o, &db);
	*rc_out = rc;
	if (rc == 0) {
		snprintf(when, sizeof(when), "%s, D6 opened on a full disk (%s)", name, how);
		verify_all(db, when);
		reopen_report_ok(db, when);
		close_ok(db, when);
	} else {
		pkv_options ro = *o;
		int rc2;

		ck(rc == -ENOSPC,
		   "D6 %s: reopen on a full disk (%s) = %d (%s), expected 0 or -ENOSPC", name, how,
		   rc, pkv_strerror(rc));
		ro.flags |= PKV_OPEN_READONLY;
		snprintf(when, sizeof(when), "%s, D6 read-only open on a full disk (%s)", name, how);
		db = open_ok(&ro, when);
		if (db != NULL) {
			verify_all(db, when);
			close_ok(db, when);
		}
		db = NULL;
		rc2 = pkv_open(db_dir, o, &db);
		ck(rc2 == rc, "D6 %s: a second reopen on a full disk (%s) = %d (%s), the first gave %d",
		   name, how, rc2, pkv_strerror(rc2), rc);
		if (rc2 == 0)
			pkv_close(db);
	}
	unlink_in("ballast-3");
	snprintf(when, sizeof(when), "%s, D6 reopened after freeing (%s)", name, how);
	db = open_ok(o, when);
	if (db == NULL)
		return NULL;
	verify_all(db, when);
	reopen_report_ok(db, when);
	return db;
}

static void run_mode(const struct mode_case *mc)
{
	const char *name = su_durability_name(mc->d);
	uint64_t total = mu_total_bytes(root), headroom = (uint64_t)cfg.headroom_mb * MiB;
	struct reader rd = { 0 };
	struct figs f = { 0 }, f2 = { 0 };
	pthread_t rt;
	pkv_options o;
	pkv *db;
	char when[128];
	uint64_t err0 = logged.errors;
	int rc;

	reset_disk();
	opts_for(mc, &o);
	/* The ballast leaves the store its headroom. */
	ballast("ballast-0", total > headroom ? total - headroom : 0);
	db = open_ok(&o, name);
	if (db == NULL)
		return;

	rd.db = db;
	if (pthread_create(&rt, NULL, reader_main, &rd) != 0) {
		perror("diskfull: pthread_create");
		exit(2);
	}
	fill(db, &f);
	f.store_bytes_full = total - mu_free_bytes(root);
	overwrite_and_delete(db, &f);
	rc = pkv_sync(db);
	ck(rc == 0, "%s: pkv_sync on the full disk = %d (%s)", name, rc, pkv_strerror(rc));
	compact_when_full(db, &f);
	probe_small_puts(db, &f, 32);
	snprintf(when, sizeof(when), "%s, D2 while full", name);
	verify_all(db, when);
	/* The reader gets its turn while the disk is still full, however busy the machine (its
	 * thread may not have run yet when the main thread got here); bounded: 10 s. */
	for (int w = 0; w < 10000 && __atomic_load_n(&rd.gets, __ATOMIC_RELAXED) < 100; w++)
		su_sleep_ms(1);
	atomic_store(&rd.stop, true);
	pthread_join(rt, NULL);
	f.reader_gets = rd.gets;
	ck(rd.bad == 0 && rd.gets > 0,
	   "D2 %s: the reader saw %" PRIu64 " wrong values in %" PRIu64 " gets", name, rd.bad,
	   rd.gets);

	/* D4: space back, same handle. */
	unlink_in("ballast-0");
	unlink_in("ballast-top");
	snprintf(when, sizeof(when), "%s, space freed", name);
	puts_work(db, AFTER_FREE_PUTS, when);
	rc = pkv_compact(db);
	ck(rc == 0, "D4 %s: pkv_compact with space again = %d (%s)", name, rc, pkv_strerror(rc));
	verify_all(db, when);
	close_ok(db, when);

	/* D5: after close + reopen. */
	snprintf(when, sizeof(when), "%s, D5 reopened", name);
	db = open_ok(&o, when);
	if (db == NULL)
		return;
	verify_all(db, when);
	reopen_report_ok(db, when);

	/* D6a: the store fills the disk, is closed, and what the close gave back is taken too. */
	ballast("ballast-2", UINT64_MAX);
	{
		struct figs g = { 0 };

		fill(db, &g);
	}
	close_ok(db, "D6 close on the full disk");
	db = reopen_on_full_disk(&o, name, "after the store filled it", &f.reopen_rc);
	if (db == NULL)
		return;
	unlink_in("ballast-2");
	snprintf(when, sizeof(when), "%s, D6a space freed", name);
	puts_work(db, AFTER_FREE_PUTS, when);

	/*
	 * D6b: another file fills the disk while the store idles with room in its segments (a
	 * compaction rolled every lane, a few puts started new segments). Writes that fit the
	 * allocated segments go on; the close truncates each lane's last segment to its data, and
	 * the reopen must allocate that tail again on a disk with no room.
	 */
	rc = pkv_compact(db);
	ck(rc == 0, "D6b %s: pkv_compact = %d (%s)", name, rc, pkv_strerror(rc));
	puts_work(db, 5, "D6b, before the disk fills");
	su_sleep_ms(20); /* let the background thread make its spares: they take room too */
	ballast("ballast-2", UINT64_MAX);
	probe_small_puts(db, &f2, 5);
	close_ok(db, "D6b close on the full disk");
	db = reopen_on_full_disk(&o, name, "filled by another file", &f.reopen_rc_idle);
	if (db == NULL)
		return;
	unlink_in("ballast-2");
	snprintf(when, sizeof(when), "%s, D6b space freed", name);
	puts_work(db, AFTER_FREE_PUTS, when);
	close_ok(db, when);
	snprintf(when, sizeof(when), "%s, final reopen", name);
	db = open_ok(&o, when);
	if (db == NULL)
		return;
	verify_all(db, when);
	reopen_report_ok(db, when);
	close_ok(db, when);

	printf("%-8s full after %6" PRIu64 " puts (%5.1f MiB of values; store %4.1f MiB of the disk)"
	       "; %3" PRIu64 " more fit after the first -ENOSPC; %4" PRIu64 " x -ENOSPC"
	       "; overwrites %" PRIu64 " ok / %" PRIu64 " ENOSPC, deletes %" PRIu64 " ok / %" PRIu64
	       " ENOSPC, small puts after the failed compaction %" PRIu64 " ok / %" PRIu64
	       " ENOSPC; compact %d; reader %" PRIu64 " gets; reopen on the full disk: %d (%s)"
	       " after the store filled it, %d (%s) after another file did (%" PRIu64
	       " of 5 puts into allocated space went through); %" PRIu64 " errors logged\n",
	       name, f.first_enospc_at, (double)f.acked_bytes / MiB,
	       (double)f.store_bytes_full / MiB, f.acked_after_first, f.enospc, f.over_ok,
	       f.over_nospc, f.del_ok, f.del_nospc, f.probe_ok, f.probe_nospc, f.compact_rc,
	       f.reader_gets, f.reopen_rc, pkv_strerror(f.reopen_rc), f.reopen_rc_idle,
	       pkv_strerror(f.reopen_rc_idle), f2.probe_ok, logged.errors - err0);
}

/* ---- D7: a failed fdatasync on the full disk ------------------------------------------------ */

static void arm_fdatasync_eio(bool on)
{
	struct ffs_fault fault = {
		.action = FFS_FAIL,
		.nth = 1,
		.kinds = FFS_BIT(FFS_FDATASYNC),
		.err = EIO,
		.persistent = true,
	};

	if (on)
		ffs_arm(&fault);
	else
		ffs_disarm();
}

static void run_eio(enum pkv_durability d)
{
	const char *name = su_durability_name(d);
	uint64_t total = mu_total_bytes(root);
	/* 4096-byte records in 64 KiB segments: 15 fit, and 3,632 bytes are left in a segment
	 * when the 16th needs a new one, so a small write still fits once the disk is full. */
	const uint32_t vlen = 4096 - 32 - 9;
	pkv_options o;
	pkv_stats st;
	pkv *db;
	char when[128];
	uint64_t acked = 0;
	int rc = 0;

	reset_disk();
	ffs_install(); /* no store is open */
	pkv_options_default(&o);
	o.durability = d;
	o.wal_lanes = 1;
	o.wal_segment_bytes = 64u * 1024u;
	o.flags = PKV_OPEN_NO_AUTOCOMPACT;
	o.log_fn = log_fn;
	ballast("ballast-0", total > 2 * MiB ? total - 2 * MiB : 0);
	snprintf(when, sizeof(when), "D7 %s", name);
	db = open_ok(&o, when);
	if (db == NULL)
		goto out;
	while (ntried < model_cap) {
		uint32_t i = ntried;

		rc = put_key(db, i, 0, vlen, vbuf);
		model[i] = (struct ent){ .vlen = vlen, .present = rc == 0 };
		ntried++;
		if (rc != 0)
			break;
		acked++;
	}
	ck(rc == -ENOSPC, "D7 %s: filling gave %d (%s), expected -ENOSPC", name, rc,
	   pkv_strerror(rc));

	/* A small write that fits the segment's tail; then the next fdatasync fails. */
	if (d == PKV_DURABLE_POWER) {
		uint32_t i = ntried++;

		arm_fdatasync_eio(true);
		rc = put_key(db, i, 0, 16, vbuf);
		model[i] = (struct ent){ .vlen = 16, .maybe = 1 };
		ck(rc == -EIO || rc == PKV_EREADONLY,
		   "D7 %s: a put over a failed fdatasync = %d (%s), expected -EIO", name, rc,
		   pkv_strerror(rc));
	} else {
		uint32_t i = ntried++;

		rc = put_key(db, i, 0, 16, vbuf);
		model[i] = (struct ent){ .vlen = 16, .present = rc == 0 };
		ck(rc == 0, "D7 %s: a 16-byte put into the last segment's tail = %d (%s)", name, rc,
		   pkv_strerror(rc));
		arm_fdatasync_eio(true);
		rc = pkv_sync(db);
		ck(rc == -EIO || rc == PKV_EREADONLY,
		   "D7 %s: pkv_sync over a failed fdatasync = %d (%s), expected -EIO", name, rc,
		   pkv_strerror(rc));
	}
	pkv_get_stats(db, &st);
	ck(st.readonly_reason == -EIO, "D7 %s: readonly_reason = %d, expected -EIO", name,
	   st.readonly_reason);
	arm_fdatasync_eio(false);

	/* S.3: final, even with space and working syncs again. */
	unlink_in("ballast-0");
	{
		uint32_t i = ntried++;
		char key[32];
		size_t klen = key_of(0, key);
		int rd, rp;

		rc = put_key(db, i, 0, 16, vbuf);
		model[i] = (struct ent){ .vlen = 16, .present = 0 };
		rd = pkv_del(db, key, klen);
		rp = pkv_compact(db);
		ck(rc == PKV_EREADONLY && rd == PKV_EREADONLY && rp == PKV_EREADONLY,
		   "D7 %s: with space again: put %d, del %d, compact %d; expected PKV_EREADONLY",
		   name, rc, rd, rp);
	}
	snprintf(when, sizeof(when), "D7 %s, read-only after EIO", name);
	verify_all(db, when);
	rc = pkv_close(db);
	ck(rc == -EIO, "D7 %s: pkv_close = %d (%s), expected the -EIO", name, rc, pkv_strerror(rc));

	snprintf(when, sizeof(when), "D7 %s, reopened", name);
	db = open_ok(&o, when);
	if (db == NULL)
		goto out;
	verify_all(db, when);
	puts_work(db, 20, when);
	verify_all(db, when);
	close_ok(db, when);
	printf("%-8s EIO on the full disk after %" PRIu64
	       " puts: the store turned read-only (-EIO), stayed so with space back, and a reopen"
	       " found every acknowledged write\n",
	       name, acked);
out:
	ffs_uninstall();
}

/* ---- main --------------------------------------------------------------------------------- */

static const struct su_opt options[] = {
	SU_OPT("size-mb", SU_OPT_UINT, &cfg.size_mb, "size of the tmpfs (default 24)", .min = 8,
	       .max = 4096),
	SU_OPT("headroom-mb", SU_OPT_UINT, &cfg.headroom_mb,
	       "what the ballast leaves to the store (default 6, at most a\nquarter of the disk)",
	       .min = 2, .max = 4096),
	SU_OPT("rounds", SU_OPT_UINT, &cfg.rounds,
	       "run every scenario N times, with other values (default 1)", .min = 1,
	       .max = 100000),
	SU_OPT("seed", SU_OPT_U64, &cfg.seed, "the values written (default 1)"),
	SU_OPT("dir", SU_OPT_STR, &cfg.parent,
	       "make the mount point under PARENT (default $TMPDIR or /tmp)", .arg = "PARENT"),
	SU_OPT("quiet", SU_OPT_FLAG, &cfg.quiet,
	       "no notes along the way: only failures and the figures"),
	SU_OPT_END
};

int main(int argc, char **argv)
{
	char opts[64];
	double t0;
	int r;

	setvbuf(stdout, NULL, _IOLBF, 0);
	su_opts_parse(argc, argv, "diskfull", options,
		      "Needs root (mount); otherwise prints SKIPPED and exits with 77.\n");
	/* Once the ballast is gone, the store's data (its headroom and a little more) must fit
	 * three times: the snapshot, the WAL since it, and the snapshot a compaction writes. */
	if (cfg.headroom_mb * 4 > cfg.size_mb)
		su_usage_error("--headroom-mb %u is more than a quarter of --size-mb %u",
			       cfg.headroom_mb, cfg.size_mb);
	if (su_workdir(root, sizeof(root), cfg.parent, "diskfull") != 0) {
		perror("diskfull: mkdtemp");
		return 2;
	}
	r = mu_private_ns();
	snprintf(opts, sizeof(opts), "size=%um,mode=0700", cfg.size_mb);
	if (mount("pkv-diskfull", root, "tmpfs", MS_NOSUID | MS_NODEV, opts) != 0) {
		int e = errno;

		rmdir(root);
		if (mu_err_means_skip(e)) {
			printf("SKIPPED: cannot mount a %u MiB tmpfs (%s): needs root or "
			       "CAP_SYS_ADMIN\n",
			       cfg.size_mb, strerror(e));
			return MU_SKIP_CODE;
		}
		printf("diskfull: mount tmpfs on %s: %s\n", root, strerror(e));
		return 2;
	}
	mounted = 1;
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	snprintf(db_dir, sizeof(db_dir), "%s/db", root);
	printf("diskfull: tmpfs of %u MiB on %s (%s), the store gets %u MiB, %u round(s), seed %" PRIu64
	       "\n",
	       cfg.size_mb, root, r == 0 ? "private mount namespace" : "host mount namespace",
	       cfg.headroom_mb, cfg.rounds, cfg.seed);

	model_cap = (uint32_t)((uint64_t)cfg.size_mb * MiB / 64) + 1000;
	model = calloc(model_cap, sizeof(*model));
	vbuf = malloc(MAX_VAL);
	vwant = malloc(MAX_VAL);
	if (model == NULL || vbuf == NULL || vwant == NULL) {
		perror("diskfull: malloc");
		unmount_root();
		return 2;
	}

	t0 = su_now();
	for (unsigned round = 0; round < cfg.rounds; round++) {
		round_seed = su_hash3(cfg.seed, round, 0xd15cf011);
		if (cfg.rounds > 1)
			note("round %u\n", round);
		for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++)
			run_mode(&cases[c]);
		run_eio(PKV_DURABLE_PROCESS);
		run_eio(PKV_DURABLE_POWER);
		if (failed != 0)
			break;
	}
	reset_disk();
	unmount_root();
	printf("diskfull: %.1f s; %" PRIu64 " errors and %" PRIu64
	       " warnings logged by the library (last error: %s)\n",
	       su_now() - t0, logged.errors, logged.warnings,
	       logged.last_error[0] ? logged.last_error : "none");
	free(model);
	free(vbuf);
	free(vwant);
	if (passed == 0 && failed == 0)
		failed = 1;
	printf("%" PRIu64 " passed, %" PRIu64 " failed\n", passed, failed);
	return failed == 0 ? 0 : 1;
}
