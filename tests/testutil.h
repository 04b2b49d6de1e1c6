/* SPDX-License-Identifier: MIT */
/*
 * testutil.h - helpers shared by the Criterion suites: a temp-dir fixture, file-tree copy and
 * removal, an independent reader of the WAL format of docs/format.md, and a model of the map.
 *
 * Nothing here includes src/: the WAL reader and its CRC32C are written from docs/format.md alone,
 * so the API and recovery suites check the library against its documented format rather than
 * against its own codec.
 *
 * Failures inside helpers are reported with cr_assert, so a helper can be called from a test body
 * (never from a forked child: a child reports through its exit status or a pipe instead).
 */
#ifndef PKV_TESTUTIL_H
#define PKV_TESTUTIL_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "pkv.h"

/* ---- temp-dir fixture --------------------------------------------------------------------- */

/* Root of the test's private temp dir (mkdtemp under $TMPDIR or /tmp), set by tu_setup. */
extern char tu_root[PATH_MAX];
/* tu_root/db: the store directory; it does not exist until a store is opened there. */
extern char tu_db[PATH_MAX];

/* Criterion .init / .fini: create tu_root, and remove it with all it holds. */
void tu_setup(void);
void tu_teardown(void);

/* tu_root/<name> into @out (PATH_MAX bytes). */
void tu_path(char *out, const char *name);

/* snprintf into @out that must not truncate (cr_assert). */
__attribute__((format(printf, 3, 4))) void tu_fmt(char *out, size_t n, const char *fmt, ...);

/* rm -rf @path (no error if it is missing). */
void tu_rm_rf(const char *path);

/* Copy the tree @src to @dst (which must not exist): directories and regular files. */
void tu_copy_tree(const char *src, const char *dst);

/* The path of the one snapshot file in @dir/snap into @out (PATH_MAX bytes); cr_assert that
 * there is exactly one. */
void tu_snap_file(const char *dir, char *out);

/* ---- durability modes, for parameterized tests -------------------------------------------- */

extern const enum pkv_durability tu_modes[3];

/* Default options with @mode; PERIODIC gets a short interval so that its syncer really runs. */
void tu_opts(pkv_options *o, enum pkv_durability mode);

/* pkv_open that must succeed. */
pkv *tu_open(const char *dir, const pkv_options *o);

/* pkv_close that must succeed. */
void tu_close(pkv *db);

/* pkv_get_stats that must succeed. */
pkv_stats tu_stats(pkv *db);

/* ---- the WAL as docs/format.md describes it ----------------------------------------------- */

#define TU_SEG_HDR 64u
#define TU_REC_HDR 32u
#define TU_REC_PUT 1
#define TU_REC_DEL 2
#define TU_REC_BATCH 3 /* WAL version 2 */
#define TU_REC_NOP 4
#define TU_REC_PUTX 5  /* put with expiry, WAL version 2 */
#define TU_REC_CLEAR 6 /* WAL version 2 */

/* Independent bitwise CRC32C (Castagnoli, reflected, init and final xor ~0), chainable. */
uint32_t tu_crc32c(uint32_t crc, const void *buf, size_t len);

struct tu_rec {
	off_t off; /* offset of the record in its segment file */
	uint32_t len; /* 32 + klen + vlen */
	uint64_t seq;
	uint64_t synced;
	uint8_t type;
	unsigned lane; /* from the segment header */
	uint64_t segno; /* from the segment header */
	int file; /* index into tu_wal.files */
	uint16_t klen;
	uint32_t vlen;
	unsigned char *key; /* malloc'ed copies */
	unsigned char *val; /* the value; for a batch, its whole body (vlen bytes) */
	uint64_t expires_ms; /* put with expiry */
};

struct tu_wal {
	int nfiles;
	char (*files)[PATH_MAX]; /* segment paths, sorted by name (lane, then segment number) */
	off_t *data_end; /* per file: where its valid records end */
	int nrecs;
	struct tu_rec *recs; /* every valid record of every file, in file order */
};

/*
 * Read every segment of DIR/wal/\*.wal. Each file must have a valid header; records are read up
 * to the first zero length or the first record that does not validate (CRC over the seed of its
 * segment, as the format prescribes).
 */
void tu_wal_read(const char *dir, struct tu_wal *w);
void tu_wal_free(struct tu_wal *w);

/* Index of the record with the highest sequence number, or -1. */
int tu_wal_last(const struct tu_wal *w);

/* Sort a copy of the records by sequence number (qsort); the caller frees the array only. */
struct tu_rec *tu_wal_by_seq(const struct tu_wal *w);

/* Does the record at @buf (with @avail bytes readable) validate under @seed? */
bool tu_rec_valid(const unsigned char *buf, size_t avail, uint32_t seed);

/* The record CRC seed of a segment: crc32c(0, bytes 0..31 of its header). */
uint32_t tu_seg_seed(const unsigned char *hdr);

/* Whole-file helpers. */
unsigned char *tu_read_file(const char *path, size_t *len_out);
void tu_write_at(const char *path, off_t off, const void *buf, size_t len);
void tu_truncate(const char *path, off_t len);
off_t tu_file_size(const char *path);

/* ---- a model of the map -------------------------------------------------------------------- */

/*
 * Every key the model has seen stays in it, present or not, so that a check also proves that
 * deleted keys stay deleted (no resurrection after a restart).
 */
struct tu_model_ent {
	unsigned char *key;
	size_t klen;
	unsigned char *val; /* NULL when absent */
	size_t vlen;
	bool present;
	bool used;
};

struct tu_model {
	struct tu_model_ent *tab;
	size_t cap;
	size_t nkeys; /* distinct keys seen */
	size_t present; /* keys present */
};

void tu_model_init(struct tu_model *m);
void tu_model_free(struct tu_model *m);
void tu_model_put(struct tu_model *m, const void *k, size_t kl, const void *v, size_t vl);
void tu_model_del(struct tu_model *m, const void *k, size_t kl);
/* The model's entry for a key, or NULL if the model never saw it. */
const struct tu_model_ent *tu_model_find(const struct tu_model *m, const void *k, size_t kl);

/*
 * Apply the records with seq < @upto (all when @upto is 0), in seq order: puts (with expiry too:
 * the model has no clock, so callers use expiries that do not pass during the test), deletes,
 * the ops of batches, and clears.
 */
void tu_model_apply(struct tu_model *m, const struct tu_rec *by_seq, int n, uint64_t upto);

/*
 * Compare @db with the model: every present key has exactly its value, every absent key is
 * PKV_NOTFOUND, and stats.keys equals the number of present keys. Returns true on a match;
 * otherwise writes what differed into @why.
 */
bool tu_model_check(const struct tu_model *m, pkv *db, char *why, size_t whylen);

/* cr_assert that @db matches @m, naming @what in the message. */
void tu_model_assert(const struct tu_model *m, pkv *db, const char *what);

/* ---- small things --------------------------------------------------------------------------- */

/* splitmix64: deterministic pseudo-random numbers from a fixed seed. */
static inline uint64_t tu_rand(uint64_t *state)
{
	uint64_t z = (*state += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476CE484E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

/* A log_fn that collects messages, for checks on what the library reports. */
struct tu_log {
	pthread_mutex_t lock; /* log_fn may be called from the library's background threads */
	int count;
	int worst_level; /* numerically smallest level seen (PKV_LOG_ERROR = 0); INT_MAX if none */
	size_t used;
	char text[16384]; /* messages, each followed by '\n', truncated when full */
};

void tu_log_init(struct tu_log *l);
void tu_log_fn(void *ctx, int level, const char *msg);
bool tu_log_contains(const struct tu_log *l, const char *needle);

/* Read exactly @n bytes from @fd, or fewer at end of file; returns the count. */
size_t tu_read_full(int fd, void *buf, size_t n);
/* Write all of @buf to @fd; false on error. */
bool tu_write_full(int fd, const void *buf, size_t n);

#endif /* PKV_TESTUTIL_H */
