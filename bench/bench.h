/* SPDX-License-Identifier: MIT */
/*
 * bench.h - pkvbench: side-by-side comparison of pkv against peer key-value stores.
 *
 * Layout (one concern per file):
 *   main.c      command line, profiles (quick/full/custom), the plan of groups and experiments,
 *               the fork-per-session driver and the parent's result table.
 *   session.c   what runs inside one forked child: load a store, run experiments, report lines.
 *   runner.c    timed multi-threaded loops: throughput, fixed-schedule latency, readers next to
 *               writers, group commit.
 *   workload.c  keys, values, uniform/Zipfian op streams; all generated before timing starts.
 *   hist.c      log-linear latency histogram.
 *   report.c    terminal table with pkv/peer ratios, goals, CSV and JSON.
 *   sysutil.c   clocks, pinning, /proc readers, fdatasync rate, directory helpers.
 *   ad_*.c      one adapter per store, behind struct kv_engine below.
 *
 * Process model: the parent never opens a store. Each (round, system) session runs in a fresh
 * fork()ed child that loads the store, runs the group's experiments and writes result lines into
 * a pipe; so background threads, allocator state and resident memory of one system never leak
 * into another's figures. Interleaved groups instead load all their systems into one child and
 * alternate short slices between them (session_inproc), so that a machine whose speed drifts
 * treats every system alike; see README.md.
 */
#ifndef PKVBENCH_H
#define PKVBENCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- adapters --------------------------------------------------------------------------- */

/* What a returned write survives. Peers are mapped onto the two levels they can offer. */
enum dur {
	DUR_MEM = 0,  /* in-memory only: nothing survives the process */
	DUR_NOSYNC,   /* survives a crash of the process (pkv PROCESS, peers' "no sync") */
	DUR_SYNC,     /* survives power loss (pkv POWER, peers' "sync every commit") */
	DUR_PERIODIC, /* pkv PERIODIC: NOSYNC plus a background fdatasync */
};

struct kv_conf {
	const char *dir; /* store directory (created by the adapter if needed); NULL for DUR_MEM */
	enum dur dur;
	uint64_t nkeys;   /* expected number of keys (capacity hint for presizing) */
	unsigned klen;    /* key length used by the workload */
	unsigned vlen;    /* value length used by the workload */
	unsigned threads; /* most threads that will use the store at once */
	unsigned sync_interval_ms;
};

/* Return codes of adapter operations: 0, KV_NOTFOUND, or a negative error. */
#define KV_NOTFOUND 1

/*
 * struct kv_engine - one peer behind a small interface. Every operation gets the per-thread
 * context that thread_init returned (NULL if the engine has none).
 */
struct kv_engine {
	const char *name;  /* "pkv", "ck_ht", ... */
	unsigned modes;    /* bit (1u << enum dur) for each durability level it offers */
	int persistent;    /* 1 if it keeps its data in files under conf->dir */
	/* Open; writes a one-line description of its configuration into cfg. */
	int (*open)(const struct kv_conf *c, void **db, char *cfg, size_t cfgcap);
	int (*close)(void *db);
	void *(*thread_init)(void *db);
	void (*thread_fini)(void *db, void *t);
	int (*get)(void *db, void *t, const void *k, size_t kl, void *buf, size_t cap, size_t *vl);
	/* Optional: a get that copies the whole value, for the verification of what a load wrote,
	 * where get does not copy it (pkv:ref touches one byte, pkv:many none). */
	int (*get_copy)(void *db, void *t, const void *k, size_t kl, void *buf, size_t cap,
			size_t *vl);
	int (*put)(void *db, void *t, const void *k, size_t kl, const void *v, size_t vl);
	int (*del)(void *db, void *t, const void *k, size_t kl);
	int (*sync)(void *db, void *t);
	/* Optional: bracket a single-threaded bulk load (the adapter may batch commits inside). */
	int (*bulk_begin)(void *db, void *t);
	int (*bulk_end)(void *db, void *t);
	/* Optional: move everything written so far into the store's base image (pkv_compact,
	 * a memtable flush, a WAL checkpoint). Used by the restart experiment. */
	int (*checkpoint)(void *db);
	/* Optional: wait until background work the load started (flushes, compactions) is done,
	 * so that experiments measure the store at rest, as a long-running application finds
	 * it, not the tail of its bulk load. */
	int (*settle)(void *db);
	/* Optional: read everything once, untimed (a full scan), so that block caches and the
	 * page cache are warm when the experiments start. Engines that keep everything in
	 * memory have none. */
	int (*warm)(void *db, void *t);
	/* Optional: counters as "name=value name=value ..." (numbers only). */
	int (*stats)(void *db, char *buf, size_t cap);
	/* Optional: message for an error this adapter returned. */
	const char *(*strerror)(int rc);
	/* Optional: look up n (<= KV_MANY_MAX) keys of klen bytes at once; per key, its rc (0,
	 * KV_NOTFOUND or an error) and value length. Read-only experiments of a closed loop call
	 * it with KV_MANY_BATCH consecutive gets instead of calling get for each. */
	int (*get_many)(void *db, void *t, const void *const *keys, size_t klen, size_t n,
			size_t *vlens, int *rcs);
	/* A variant that only reads differently (pkv:ref, pkv:many): writes would measure the
	 * same code as its base system, so experiments that write skip it. */
	int reads_only;
	/* Optional: write n (<= KV_MANY_MAX) puts of klen-byte keys and vlen-byte values as one
	 * atomic batch. Put-only experiments of a closed loop call it with KV_PUT_BATCH
	 * consecutive puts instead of calling put for each. */
	int (*put_many)(void *db, void *t, const void *const *keys, size_t klen,
			const void *const *vals, size_t vlen, size_t n);
	/* A variant that only writes differently (pkv:batch8): experiments that read would
	 * measure the same code as its base system, so only put-only experiments run it. */
	int writes_only;
};

#define KV_MANY_BATCH 32
#define KV_PUT_BATCH 8
#define KV_MANY_MAX 64

const struct kv_engine *engine_find(const char *name);
void engine_list(FILE *f); /* every compiled-in engine and its modes */

/* ---- system = engine + durability level ---------------------------------------------------- */

struct sysdesc {
	char name[48]; /* canonical, e.g. "pkv:process", "rocksdb:sync", "ck_ht" */
	const struct kv_engine *eng;
	enum dur dur;
	int max_rounds; /* run only in the first max_rounds rounds (0 = every round) */
};

int sys_parse(const char *spec, struct sysdesc *out); /* "engine[:mode][@rounds]" */
const char *dur_name(enum dur d);

/* ---- workloads ---------------------------------------------------------------------------- */

enum { OP_GET = 0, OP_PUT = 1, OP_DEL = 2 };
#define OP_SHIFT 29u
#define OP_IDX_MASK ((1u << OP_SHIFT) - 1u)
#define OP_TYPE(o) ((o) >> OP_SHIFT)
#define OP_IDX(o) ((o) & OP_IDX_MASK)

enum dist { DIST_UNIFORM = 0, DIST_ZIPF };

struct mix {
	unsigned get, put, del; /* percentages; a delete is followed by a re-insert of its key */
};

struct keyset {
	uint64_t n;
	unsigned klen;
	uint8_t *keys; /* n * klen bytes */
};

#define VPOOL_BYTES (1u << 22) /* random bytes from which every value is a slice */

struct valpool {
	unsigned vlen;
	uint8_t *bytes; /* VPOOL_BYTES + vlen */
};

static inline const uint8_t *key_at(const struct keyset *ks, uint64_t i)
{
	return ks->keys + i * ks->klen;
}

uint64_t mix64(uint64_t x); /* splitmix64 finaliser: a bijection on 64-bit words */
int keyset_make(struct keyset *ks, uint64_t n, unsigned klen, uint64_t seed);
void keyset_free(struct keyset *ks);
int valpool_make(struct valpool *vp, unsigned vlen, uint64_t seed);
void valpool_free(struct valpool *vp);
/* The value of key i at version ver: deterministic, so a reader can verify it. */
const uint8_t *value_of(const struct valpool *vp, uint64_t i, uint64_t ver);

struct zipf; /* YCSB's Zipfian generator (Gray et al.), items 0..n-1, item 0 the hottest */
struct zipf *zipf_new(uint64_t n, double theta);
void zipf_free(struct zipf *z);

/* Fill ops[0..len) with a stream for one thread. */
int opstream_make(uint32_t *ops, size_t len, uint64_t nkeys, const struct mix *m,
		  enum dist d, const struct zipf *z, uint64_t seed);

/* ---- histogram ---------------------------------------------------------------------------- */

/* Log-linear: values (ns) below 2^HIST_SUB exact; above, 2^HIST_SUB sub-buckets per power of
 * two, so the relative error is below 2^-HIST_SUB (0.8 %). */
#define HIST_SUB 7u
#define HIST_POW 40u /* up to 2^40 ns = 18 minutes */
#define HIST_BUCKETS ((HIST_POW - HIST_SUB + 1u) << HIST_SUB)

struct hist {
	uint64_t count, sum, max, min;
	uint64_t b[HIST_BUCKETS];
};

void hist_init(struct hist *h);
void hist_add(struct hist *h, uint64_t v);
void hist_merge(struct hist *dst, const struct hist *src);
uint64_t hist_pct(const struct hist *h, double pct); /* value at percentile pct (0..100) */

/* ---- system utilities --------------------------------------------------------------------- */

uint64_t now_ns(void); /* CLOCK_MONOTONIC */
void sleep_ns(uint64_t ns);
int pin_cpu(unsigned cpu);
unsigned ncpus(void);
int rss_bytes(uint64_t *rss, uint64_t *anon); /* /proc/self/statm and smaps_rollup */
int io_write_bytes(uint64_t *wb);              /* /proc/self/io write_bytes */
/* Bytes written to the block device holding path since boot (all processes): -ENOENT when
 * the file system has no block device of its own. */
int dev_write_bytes(const char *path, uint64_t *wb);
int sync_fs_of(const char *path); /* syncfs(2) on the file system holding path */
int rm_rf(const char *path);
int mkdir_p(const char *path);
const char *fs_type_name(const char *path); /* "ext4", "tmpfs", ... */
/* fsync + POSIX_FADV_DONTNEED every file under path: drop it from the page cache. */
int evict_dir(const char *path, uint64_t *bytes_out);
uint64_t dir_bytes(const char *path); /* allocated bytes of every file under path */

/* Measure the device: appends of blk bytes + fdatasync for secs seconds; and the same into a
 * preallocated file (overwrite, no size change), unless prealloc is NULL. Returns syncs per
 * second in *append and *prealloc. */
int fsync_rate(const char *dir, double secs, size_t blk, double *append, double *prealloc,
	       struct hist *lat_append);

/* ---- experiments -------------------------------------------------------------------------- */

enum exp_kind {
	EXP_TPUT = 0, /* closed loop, threads run the mix as fast as they can */
	EXP_LAT,      /* open loop, fixed schedule per thread (no coordinated omission) */
	EXP_RW,       /* readers plus dedicated overwriting writers */
	EXP_COMMIT,   /* many writers, each put waits for the store's durability */
};

struct exp {
	char id[48]; /* unique within its group, e.g. "get.t1" */
	enum exp_kind kind;
	struct mix mix;
	unsigned threads; /* workers (readers for EXP_RW) */
	unsigned writers; /* EXP_RW: extra overwriting threads */
	enum dist dist;
	double theta;
	double seconds;
	double rate; /* EXP_LAT: ops/s per thread */
	int pin;     /* pin worker i to cpu i % ncpus */
};

/* Everything a child session needs, fixed by the parent before fork(). */
struct bopts {
	uint64_t nkeys;
	unsigned klen, vlen;
	uint64_t seed;
	double warmup;     /* seconds run before each timed phase, not counted */
	double theta;
	const char *dir;   /* data dir root; each system gets its own subdir */
	const char *out;   /* output dir */
	uint64_t tail;     /* restart: WAL tail writes after the checkpoint */
	uint64_t wamp_ops; /* write amplification: updates measured */
	size_t opcap;      /* op stream length per thread (wraps around) */
	int quiet;
	int no_evict;      /* restart: skip the cold (evicted page cache) open */
	int no_prewarm;    /* skip reading every key once after the load (persistent stores) */
	double slice_warmup; /* interleaved groups: unmeasured seconds before each slice */
};

/* Result sink in the child: lines into the parent's pipe. */
struct sink {
	FILE *f;
	const char *sys;
};
void emit(struct sink *s, const char *exp, const char *metric, const char *unit, double v);
void emit_cfg(struct sink *s, const char *text);
void emit_err(struct sink *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* runner.c: run one experiment on an open store; results go to the sink. */
struct store {
	const struct kv_engine *eng;
	void *db;
	const struct sysdesc *sd;
	const struct keyset *ks;
	const struct valpool *vp;
};
/* warmup: unmeasured seconds first. lat_acc: for EXP_LAT, NULL to report percentiles now, or
 * two histograms (due-time latency, service time) that this run's samples are merged into. */
int run_exp(struct store *st, const struct exp *e, const struct bopts *o, double warmup,
	    struct hist *lat_acc, struct sink *s);
void emit_lat(struct sink *s, const char *id, const struct hist *h, const struct hist *svc);

/* session.c: the bodies of the forked children. */
int session_run(const struct sysdesc *sd, const struct exp *exps, int nexp,
		const struct bopts *o, struct sink *s);
int session_restart_prepare(const struct sysdesc *sd, const struct bopts *o, struct sink *s);
int session_restart_open(const struct sysdesc *sd, const struct bopts *o, struct sink *s,
			 int cold);
int session_wamp(const struct sysdesc *sd, const struct bopts *o, struct sink *s);
/* All systems in one process, experiments interleaved in short slices (see session.c). */
int session_inproc(const struct sysdesc *sds, int nsys, const struct exp *exps, int nexp,
		   int reps, const struct bopts *o, struct sink *s);
int session_fsync(const struct bopts *o, double secs, struct sink *s);
void sys_dir(const struct sysdesc *sd, const struct bopts *o, char *buf, size_t cap);

/* Progress line on stderr (overwritten in place when stderr is a terminal). */
void progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void progress_done(void);

#endif /* PKVBENCH_H */
