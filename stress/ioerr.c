/* SPDX-License-Identifier: MIT */
/*
 * ioerr.c - the I/O-error loop (SQLite's method): fail each file-system operation of a fixed
 * workload in turn, and hold the store to its documented behaviour while it fails and to
 * invariant 3 of DESIGN.md after it.
 *
 * The workload is single-threaded and deterministic, on one WAL lane with 64 KiB segments (so
 * segments roll) and no automatic compaction: open; 300 puts over 250 keys (values of 100 .. 600
 * bytes, each unique to its write); 50 deletes of present keys; compact; check; 100 puts and
 * overwrites; sync; close; open (recovery from the snapshot and the WAL tail); check; 50 puts,
 * 20 deletes; compact; check; 40 puts; crash; open (recovery after a crash); check; heal; 50
 * puts; sync; check; close. "check" reads every key back; "crash" ends the child with the store
 * open (process-crash semantics: what was written stays in the page cache) and the runner forks
 * a new child that goes on with the history and the fault; "heal" ends the disk-full fault
 * (below) and does nothing for the others.
 *
 * Counting runs (no fault) give T, the number of matching operations of a whole run (the largest
 * of three). Then for every N in 1..T a child installs faultfs (tests/faultfs.h) armed with one
 * fault kind:
 *   eio, enospc                 operation N fails once with EIO / ENOSPC;
 *   eio-persist, enospc-persist operation N and every one after it fail;
 *   short                       the N-th pread/pwrite transfers only half (callers must retry);
 *   fsyncgate                   the N-th fdatasync fails once with EIO (a retry would succeed);
 *   full                        from the N-th fallocate/pwrite on, both fail with ENOSPC until
 *                               the heal step: a full disk that is freed again.
 * The fault takes whichever thread reaches operation N (the store's background thread too), so
 * the operation at N varies a little between runs, as in tests/test_crashpoints.c. The children
 * elide real syncs (faultfs still counts and fails them): nothing here is a power loss, so a sync
 * changes nothing about what a test sees, and thousands of runs stay fast on a real disk.
 *
 * What the child checks as it runs (cited as E.n in failure messages):
 *  E.1 every call returns 0 or a documented code: the injected -errno, PKV_EREADONLY once writes
 *      were stopped, PKV_NOTFOUND for a delete of an absent key; never another code, and never
 *      an error without a fault.
 *  E.2 a write that failed took no sequence number and changed nothing, except under POWER when
 *      its group commit failed: then it took its number, the map shows it, and the store is
 *      read-only.
 *  E.3 a failed fdatasync is final (sync.c S.3, the fsyncgate case): a failed fdatasync of a WAL
 *      segment while a handle is open makes the store read-only; the call whose thread ran it
 *      returns the error and pkv_get_stats() shows it at once; later put/del/compact return
 *      PKV_EREADONLY, pkv_sync an error, pkv_close the error. The store never turns read-only
 *      without such a failure, and readonly_reason is the injected errno.
 *  E.4 durable_seq never goes backwards; under POWER a write that returned 0 is covered by it;
 *      after pkv_sync returned 0 it covers every write.
 *  E.5 after a one-time fault at most one call fails unless the store turned read-only; a short
 *      transfer fails nothing; a run the fault did not reach fails nothing; once the faults are
 *      gone (the heal step, or a retried open) every call on a writable store succeeds.
 *  E.6 gets see exactly the model of every write that took a sequence number (stats.keys too),
 *      at each check, after each compaction and at each open, whatever failed before.
 *  E.7 every open recovers a prefix of the history that holds every acknowledged write (the
 *      recovered last_seq names it); a failed open is retried: after a one-time fault it must
 *      succeed, after a persistent one it must once the faults are gone (the fault is disarmed).
 *  E.8 no crash and no hang: each child runs under alarm(); a signal or sanitizer exit fails it.
 *  E.9 the first open after the crash makes what it recovered durable before it returns
 *      (recovery.c R.8), as durable_seq then says: every WAL segment found after the crash that
 *      is still there was fdatasynced by an open attempt since (hooks see every fdatasync).
 * Each write that took a number is reported to the runner with that number and its result; after
 * the child has exited the runner (which never installs faultfs) checks:
 *  P.1 a reopen with the production file-system table succeeds and recovers a prefix of the
 *      history holding every acknowledged write, with every key's get matching it;
 *  P.2 the store accepts a write, and a close and a reopen keep the write and the state.
 *
 * Processes: the main process never opens a store (liburcu's threads do not survive fork); it
 * forks up to --jobs runners, each runs one case in a directory of its own: it forks the child,
 * collects its reports, then opens the store itself and checks it.
 *
 * Usage: ioerr [--seconds N] [--stride K] [--offset K] [--only-n N] [--jobs N] [--seed N]
 *              [--modes process,power,periodic] [--kinds LIST] [--child-timeout S]
 *              [--dir PARENT] [--keep] [--verbose]
 * Prints, per mode and fault kind: cases run, cases the fault reached, faults injected, the calls
 * that returned each code, acknowledged writes checked and the outcomes; the last line is
 * "N passed, M failed" (cases); the exit status is non-zero if any case failed.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "faultfs.h"
#include "pkv.h"
#include "stress_util.h"

#define NKEYS 400 /* ids 0 .. 349 for the workload, PROBE_KEY for the runner's write */
#define PROBE_KEY (NKEYS - 1)
#define MAX_STEPS 640
#define MAX_VAL 640
#define CHILD_FAILED 3
#define HOOK_FDS 4096
#define CRASH_WAL 64
#define MAX_FAIL_PRINT 20
#define NMODES 3
#define COUNTING_RUNS 3

/* ---- the workload ------------------------------------------------------------------------ */

enum step_kind {
	ST_OPEN,
	ST_CLOSE,
	ST_PUT,
	ST_DEL,
	ST_COMPACT,
	ST_SYNC,
	ST_CHECK,
	ST_HEAL,
	ST_CRASH,
};

static const char *const step_names[] = {
	[ST_OPEN] = "open",   [ST_CLOSE] = "close",	[ST_PUT] = "put",
	[ST_DEL] = "del",     [ST_COMPACT] = "compact", [ST_SYNC] = "sync",
	[ST_CHECK] = "check", [ST_HEAL] = "heal",	[ST_CRASH] = "crash",
};

struct step {
	enum step_kind kind;
	uint32_t key;
	uint32_t write; /* puts and deletes: index of the write in the workload (0-based) */
};

static struct step steps[MAX_STEPS];
static int nsteps, nwrites;
static uint32_t write_key[MAX_STEPS];
static bool write_put[MAX_STEPS];

static bool is_write(const struct step *s)
{
	return s->kind == ST_PUT || s->kind == ST_DEL;
}

static void add_step(enum step_kind kind, uint32_t key, bool *present)
{
	struct step *s = &steps[nsteps++];

	s->kind = kind;
	s->key = key;
	s->write = 0;
	if (is_write(s)) {
		s->write = (uint32_t)nwrites;
		write_key[nwrites] = key;
		write_put[nwrites] = kind == ST_PUT;
		nwrites++;
		present[key] = kind == ST_PUT;
	}
}

static void add_puts(int n, uint32_t range, struct su_rng *r, bool *present)
{
	for (int i = 0; i < n; i++)
		add_step(ST_PUT, (uint32_t)su_rng_below(r, range), present);
}

/* Deletes of keys present in the workload's own history (a failed put may make one absent). */
static void add_dels(int n, uint32_t range, struct su_rng *r, bool *present)
{
	for (int i = 0; i < n; i++) {
		uint32_t k;

		do
			k = (uint32_t)su_rng_below(r, range);
		while (!present[k]);
		add_step(ST_DEL, k, present);
	}
}

static void build_workload(void)
{
	bool present[NKEYS] = { false };
	struct su_rng r;

	su_rng_seed(&r, 0x10e77);
	nsteps = nwrites = 0;
	add_step(ST_OPEN, 0, present);
	add_puts(300, 250, &r, present);
	add_dels(50, 250, &r, present);
	add_step(ST_COMPACT, 0, present);
	add_step(ST_CHECK, 0, present);
	add_puts(100, 300, &r, present);
	add_step(ST_SYNC, 0, present);
	add_step(ST_CLOSE, 0, present);
	add_step(ST_OPEN, 0, present);
	add_step(ST_CHECK, 0, present);
	add_puts(50, 350, &r, present);
	add_dels(20, 350, &r, present);
	add_step(ST_COMPACT, 0, present);
	add_step(ST_CHECK, 0, present);
	add_puts(40, 350, &r, present);
	add_step(ST_CRASH, 0, present);
	add_step(ST_OPEN, 0, present);
	add_step(ST_CHECK, 0, present);
	add_step(ST_HEAL, 0, present);
	add_puts(50, 350, &r, present);
	add_step(ST_SYNC, 0, present);
	add_step(ST_CHECK, 0, present);
	add_step(ST_CLOSE, 0, present);
}

static size_t wl_key(char *buf, uint32_t id)
{
	return (size_t)snprintf(buf, 32, "key-%05u", id);
}

/* Value of write @w to key @id: 100 .. 600 bytes, unique to the write. */
static size_t wl_val(unsigned char *buf, uint32_t id, uint32_t w)
{
	uint64_t h = su_hash3(id, w, 0x10e7);
	size_t len = 100 + (size_t)(h % 501);

	memcpy(buf, &w, sizeof(w));
	memcpy(buf + 4, &id, sizeof(id));
	su_fill(buf + 8, len - 8, h);
	return len;
}

static void wl_opts(pkv_options *o, enum pkv_durability mode)
{
	pkv_options_default(o);
	o->durability = mode;
	o->sync_interval_ms = 2; /* PERIODIC: several background rounds inside one workload */
	o->wal_lanes = 1; /* the thread's CPU does not pick the lane */
	o->wal_segment_bytes = 64u << 10;
	o->flags = PKV_OPEN_NO_AUTOCOMPACT;
}

/* ---- the write history and its model ------------------------------------------------------ */

/* Which write took each sequence number; a reopen that recovered k cuts the history to k. */
struct history {
	uint32_t write[MAX_STEPS + 1]; /* write[s]: the write that took seq s (1-based) */
	bool acked[MAX_STEPS + 1];
	uint64_t len; /* highest seq taken */
};

static uint64_t hist_acked_max(const struct history *h)
{
	uint64_t m = 0;

	for (uint64_t s = 1; s <= h->len; s++)
		if (h->acked[s])
			m = s;
	return m;
}

static uint64_t hist_acked_count(const struct history *h)
{
	uint64_t n = 0;

	for (uint64_t s = 1; s <= h->len; s++)
		n += h->acked[s];
	return n;
}

/* The state after seqs 1..@k: per key, the write it holds, or -1 if absent. */
static void model_of(const struct history *h, uint64_t k, int32_t *last)
{
	for (int i = 0; i < NKEYS; i++)
		last[i] = -1;
	for (uint64_t s = 1; s <= k && s <= h->len; s++) {
		uint32_t w = h->write[s];

		last[write_key[w]] = write_put[w] ? (int32_t)w : -1;
	}
}

/* Does @db hold exactly @last (and stats.keys agree)? Else a description of the difference. */
static bool state_matches(pkv *db, const int32_t *last, char *why, size_t whylen)
{
	unsigned char v[MAX_VAL], want[MAX_VAL];
	uint64_t present = 0;
	pkv_stats st;
	char k[32];
	int r;

	for (uint32_t id = 0; id < NKEYS; id++) {
		size_t kl = wl_key(k, id), vl = 0, wl;

		r = pkv_get(db, k, kl, v, sizeof(v), &vl);
		if (last[id] < 0) {
			if (r != PKV_NOTFOUND) {
				snprintf(why, whylen, "key %u should be absent, get gave %d (%s)",
					 id, r, pkv_strerror(r));
				return false;
			}
			continue;
		}
		present++;
		wl = wl_val(want, id, (uint32_t)last[id]);
		if (r != 0 || vl != wl || memcmp(v, want, wl) != 0) {
			uint32_t got = UINT32_MAX;

			if (r == 0 && vl >= 4)
				memcpy(&got, v, sizeof(got));
			snprintf(why, whylen,
				 "key %u should hold write %d, get gave %d (%s), %zu bytes of write "
				 "%d",
				 id, last[id], r, pkv_strerror(r), vl, (int)got);
			return false;
		}
	}
	r = pkv_get_stats(db, &st);
	if (r != 0 || st.keys != present) {
		snprintf(why, whylen, "stats.keys %" PRIu64 ", expected %" PRIu64 " (stats: %d)",
			 st.keys, present, r);
		return false;
	}
	return true;
}

/* ---- fault kinds ------------------------------------------------------------------------- */

enum fkind {
	FK_EIO,
	FK_ENOSPC,
	FK_EIO_PERSIST,
	FK_ENOSPC_PERSIST,
	FK_SHORT,
	FK_FSYNCGATE,
	FK_FULL,
	FK_N
};

struct fkind_def {
	const char *name;
	enum ffs_action action;
	int err; /* FFS_FAIL: the injected errno */
	bool persistent;
	unsigned kinds; /* FFS_BIT() mask of the operations N counts; 0: all */
	const char *what;
};

static const struct fkind_def fkinds[FK_N] = {
	[FK_EIO] = { "eio", FFS_FAIL, EIO, false, 0, "operation N fails once with EIO" },
	[FK_ENOSPC] = { "enospc", FFS_FAIL, ENOSPC, false, 0,
			"operation N fails once with ENOSPC" },
	[FK_EIO_PERSIST] = { "eio-persist", FFS_FAIL, EIO, true, 0,
			     "operation N and every later one fail with EIO" },
	[FK_ENOSPC_PERSIST] = { "enospc-persist", FFS_FAIL, ENOSPC, true, 0,
				"operation N and every later one fail with ENOSPC" },
	[FK_SHORT] = { "short", FFS_SHORT, 0, false, FFS_BIT(FFS_PREAD) | FFS_BIT(FFS_PWRITE),
		       "the N-th pread/pwrite transfers half" },
	[FK_FSYNCGATE] = { "fsyncgate", FFS_FAIL, EIO, false, FFS_BIT(FFS_FDATASYNC),
			   "the N-th fdatasync fails once with EIO" },
	[FK_FULL] = { "full", FFS_FAIL, ENOSPC, true, FFS_BIT(FFS_FALLOCATE) | FFS_BIT(FFS_PWRITE),
		      "disk full from the N-th fallocate/pwrite until the heal step" },
};

/* ---- configuration ----------------------------------------------------------------------- */

static struct {
	double seconds;
	uint64_t stride, offset, only_n, seed;
	unsigned modes; /* bit per enum pkv_durability */
	unsigned kinds; /* bit per enum fkind */
	unsigned jobs;
	unsigned child_timeout;
	const char *parent;
	bool keep, verbose;
} cfg = {
	.seconds = 0,
	.stride = 1,
	.offset = 0,
	.only_n = 0,
	.seed = 1,
	.modes = (1u << NMODES) - 1,
	.kinds = (1u << FK_N) - 1,
	.jobs = 4,
	.child_timeout = 60,
	.parent = NULL,
	.keep = false,
	.verbose = false,
};

/* ---- the child: the workload under faultfs ------------------------------------------------ */

enum cmsg_type {
	CM_STEP = 1, /* a call returned */
	CM_RESET, /* an open recovered seqs 1..seq: the history is cut there */
	CM_FAIL, /* a check failed (the child exits next) */
	CM_DONE, /* the workload ended; counters */
	CM_CRASH, /* the child dies with the store open (ST_CRASH); counters to carry on */
};

/* Child -> runner, one write() each (below PIPE_BUF); only the child's main thread sends. */
struct cmsg {
	uint32_t type;
	int32_t step;
	int32_t rc;
	int32_t ro; /* readonly_reason after the call */
	uint64_t seq; /* STEP: the seq the write took (0: none); RESET: the recovered last_seq */
	uint64_t ops, heal_ops, injected, fault_index;
	int32_t fault_op, open_failed, open_healed, ever_ro;
	int32_t fresh_failures, disarmed;
	uint64_t matched; /* CRASH: operations that matched the fault (the next child arms N - this)
			   */
	uint64_t live_faults; /* failed fdatasyncs of WAL segments (E.3) */
	uint64_t per[FFS_NOPS];
	char text[480];
};
_Static_assert(sizeof(struct cmsg) <= 4096, "one atomic pipe write (PIPE_BUF)");

/*
 * What faultfs's hooks record: the name each descriptor has now (faultfs keeps the name it was
 * opened with, and a segment is opened as *.tmp and renamed to *.wal), and the faults injected.
 * A failed fdatasync of a descriptor named *.wal is a failed sync of a live WAL segment: only a
 * group commit round (sync.c) or recovery does that. Hooks run on the thread of the operation.
 */
static struct {
	pthread_mutex_t mu;
	char *path[HOOK_FDS];
	pthread_t main;
	uint64_t live_faults; /* failed fdatasyncs of *.wal descriptors */
	uint64_t live_main; /* those the child's main thread ran itself */
	int first_op; /* the first injected fault */
	uint64_t first_index;
	/* E.9: the WAL segments found after a crash, which of them an fdatasync of the child's
	 * main thread (pkv_open's recovery) made durable, and which were removed since. */
	char crash_wal[CRASH_WAL][32];
	bool crash_synced[CRASH_WAL], crash_removed[CRASH_WAL];
	int ncrash_wal;
} H = { .mu = PTHREAD_MUTEX_INITIALIZER, .first_op = -1 };

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

static void hook_pre(void *ctx, const struct ffs_call *c)
{
	(void)ctx;
	/* Before the descriptor is released: its number cannot be reused yet. */
	if (c->op == FFS_CLOSE && c->fd >= 0 && c->fd < HOOK_FDS) {
		pthread_mutex_lock(&H.mu);
		free(H.path[c->fd]);
		H.path[c->fd] = NULL;
		pthread_mutex_unlock(&H.mu);
	}
}

/* Index of the segment found after the crash that @path names, or -1. H.mu held. */
static int crash_wal_of(const char *path)
{
	char name[40];

	for (int j = 0; path && j < H.ncrash_wal; j++) {
		snprintf(name, sizeof(name), "/%s", H.crash_wal[j]);
		if (ends_with(path, name))
			return j;
	}
	return -1;
}

static void hook_post(void *ctx, const struct ffs_call *c)
{
	int j;

	(void)ctx;
	pthread_mutex_lock(&H.mu);
	/* E.9: a name removed (or replaced) may come back as a new segment: it no longer counts. */
	if ((c->op == FFS_UNLINK && c->result == 0 && (j = crash_wal_of(c->path)) >= 0) ||
	    (c->op == FFS_RENAME && c->result == 0 && (j = crash_wal_of(c->path2)) >= 0))
		H.crash_removed[j] = true;
	if (c->op == FFS_FDATASYNC && c->result == 0 && c->injected == FFS_NONE && c->fd >= 0 &&
	    c->fd < HOOK_FDS && pthread_equal(pthread_self(), H.main) &&
	    (j = crash_wal_of(H.path[c->fd])) >= 0 && !H.crash_removed[j])
		H.crash_synced[j] = true;
	if (c->op == FFS_OPEN && c->result >= 0 && c->result < HOOK_FDS && c->path) {
		free(H.path[c->result]);
		H.path[c->result] = strdup(c->path);
	} else if (c->op == FFS_RENAME && c->result == 0) {
		for (int fd = 0; fd < HOOK_FDS; fd++)
			if (H.path[fd] && strcmp(H.path[fd], c->path) == 0) {
				free(H.path[fd]);
				H.path[fd] = strdup(c->path2);
			}
	}
	if (c->injected != FFS_NONE) {
		if (H.first_op < 0) {
			H.first_op = (int)c->op;
			H.first_index = c->index;
		}
		if (c->injected == FFS_FAIL && c->op == FFS_FDATASYNC && c->fd >= 0 &&
		    c->fd < HOOK_FDS && H.path[c->fd] && ends_with(H.path[c->fd], ".wal")) {
			H.live_faults++;
			if (pthread_equal(pthread_self(), H.main))
				H.live_main++;
		}
	}
	pthread_mutex_unlock(&H.mu);
}

static uint64_t hook_live(bool main_only)
{
	uint64_t n;

	pthread_mutex_lock(&H.mu);
	n = main_only ? H.live_main : H.live_faults;
	pthread_mutex_unlock(&H.mu);
	return n;
}

static struct {
	int fd; /* to the runner */
	enum pkv_durability mode;
	const struct fkind_def *fk;
	pkv *db;
	pkv_stats st; /* the stats after the last call on this handle */
	uint64_t handle_live; /* hook_live(false) when this handle's open began */
	struct history h;
	int32_t model[NKEYS]; /* the state of every write that took a number */
	int fresh_failures; /* failed calls on a writable store (E.5) */
	bool ever_ro, disarmed;
	int open_failed, open_healed;
	uint64_t heal_ops;
	struct cmsg base; /* what the child before the crash counted (zero without a crash) */
	bool after_crash; /* the next successful open is the first after a crash (E.9) */
	pthread_mutex_t log_mu;
	char log[400]; /* the library's last log line */
} C = { .log_mu = PTHREAD_MUTEX_INITIALIZER };

static void child_log(void *ctx, int level, const char *msg)
{
	(void)ctx;
	(void)level;
	pthread_mutex_lock(&C.log_mu);
	snprintf(C.log, sizeof(C.log), "%s", msg);
	pthread_mutex_unlock(&C.log_mu);
}

static void child_send(const struct cmsg *m)
{
	su_send(C.fd, m, sizeof(*m));
}

static void child_counts(struct cmsg *m);
static void child_fail(int step, const char *fmt, ...)
	__attribute__((format(printf, 2, 3), noreturn));

/* Report a failed check (with the library's last log line) and end the child. */
static void child_fail(int step, const char *fmt, ...)
{
	struct cmsg m;
	va_list ap;
	int n;

	memset(&m, 0, sizeof(m));
	m.type = CM_FAIL;
	m.step = step;
	child_counts(&m);
	n = snprintf(m.text, sizeof(m.text), "step %d (%s): ", step,
		     step >= 0 && step < nsteps ? step_names[steps[step].kind] : "-");
	va_start(ap, fmt);
	vsnprintf(m.text + n, sizeof(m.text) - (size_t)n, fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&C.log_mu);
	if (C.log[0]) {
		n = (int)strlen(m.text);
		snprintf(m.text + n, sizeof(m.text) - (size_t)n, " [log: %s]", C.log);
	}
	pthread_mutex_unlock(&C.log_mu);
	if (cfg.verbose)
		fprintf(stderr, "child: FAIL %s\n", m.text);
	child_send(&m);
	_exit(CHILD_FAILED);
}

static void child_report(uint32_t type, int step, int rc, uint64_t seq)
{
	struct cmsg m;

	memset(&m, 0, sizeof(m));
	m.type = type;
	m.step = step;
	m.rc = rc;
	m.ro = C.db ? C.st.readonly_reason : 0;
	m.seq = seq;
	if (cfg.verbose && type == CM_RESET)
		fprintf(stderr, "child: step %3d recovered last_seq %" PRIu64 "\n", step, seq);
	else if (cfg.verbose)
		fprintf(stderr, "child: step %3d %-7s key %3u -> %d (%s), seq %" PRIu64 ", ro %d\n",
			step, step >= 0 ? step_names[steps[step].kind] : "-",
			step >= 0 ? steps[step].key : 0, rc, pkv_strerror(rc), seq, m.ro);
	child_send(&m);
}

/* Is @rc the injected fault's code, with a fault injected (E.1)? */
static uint64_t injected_total(void)
{
	return C.base.injected + ffs_injected();
}

static bool fault_code(int rc)
{
	return C.fk->action == FFS_FAIL && rc == -C.fk->err && injected_total() > 0;
}

static pkv_stats child_stats(int step)
{
	pkv_stats st;
	int r = pkv_get_stats(C.db, &st);

	if (r != 0)
		child_fail(step, "pkv_get_stats gave %d (%s)", r, pkv_strerror(r));
	return st;
}

static void child_check_state(int step, const char *when)
{
	char why[256];

	if (!state_matches(C.db, C.model, why, sizeof(why)))
		child_fail(step,
			   "E.6 %s: the state is not that of the %" PRIu64 " sequenced writes: %s",
			   when, C.h.len, why);
}

/*
 * The checks every call on an open handle shares (E.3 - E.5). @b: the stats before the call
 * (the last ones seen), @a: after; @live_main0: hook_live(true) before the call.
 */
static void child_after_call(int step, int rc, bool expected_nf, const pkv_stats *b,
			     const pkv_stats *a, uint64_t live_main0)
{
	if (b->readonly_reason && a->readonly_reason != b->readonly_reason)
		child_fail(step, "E.3 readonly_reason went from %d to %d", b->readonly_reason,
			   a->readonly_reason);
	if (a->readonly_reason) {
		if (hook_live(false) == 0)
			child_fail(step, "E.3 read-only (%s) without a failed WAL fdatasync",
				   pkv_strerror(a->readonly_reason));
		if (!fault_code(a->readonly_reason))
			child_fail(step, "E.3 readonly_reason %d (%s) is not the injected error",
				   a->readonly_reason, pkv_strerror(a->readonly_reason));
		C.ever_ro = true;
	}
	if (hook_live(true) > live_main0) {
		if (rc == 0)
			child_fail(step, "E.3 returned 0 over the failed fdatasync it ran");
		if (a->readonly_reason == 0)
			child_fail(step,
				   "E.3 a failed WAL fdatasync did not make the store read-only");
	}
	if (a->durable_seq < b->durable_seq)
		child_fail(step, "E.4 durable_seq went back from %" PRIu64 " to %" PRIu64,
			   b->durable_seq, a->durable_seq);
	if (rc != 0 && !expected_nf && b->readonly_reason == 0) {
		C.fresh_failures++;
		if (C.disarmed)
			child_fail(step, "E.5 failed with %d (%s) after the faults were gone", rc,
				   pkv_strerror(rc));
	}
}

static void child_write(int i)
{
	const struct step *s = &steps[i];
	pkv_stats b = C.st, a;
	bool absent = C.model[s->key] < 0;
	bool nf = s->kind == ST_DEL && absent;
	unsigned char v[MAX_VAL];
	uint64_t lm = hook_live(true), taken, seq = 0;
	char k[32];
	size_t kl = wl_key(k, s->key);
	int rc;

	if (s->kind == ST_PUT)
		rc = pkv_put(C.db, k, kl, v, wl_val(v, s->key, s->write));
	else
		rc = pkv_del(C.db, k, kl);
	a = C.st = child_stats(i);
	taken = a.last_seq - b.last_seq;
	if (a.last_seq < b.last_seq || taken > 1)
		child_fail(i, "last_seq went from %" PRIu64 " to %" PRIu64, b.last_seq, a.last_seq);
	/* E.1 */
	if (b.readonly_reason) {
		if (rc != PKV_EREADONLY)
			child_fail(i, "E.3 a write on a read-only store gave %d (%s)", rc,
				   pkv_strerror(rc));
	} else if (nf) {
		if (rc != PKV_NOTFOUND && !(rc == PKV_EREADONLY && a.readonly_reason))
			child_fail(i, "E.1 a delete of an absent key gave %d (%s)", rc,
				   pkv_strerror(rc));
	} else if (rc != 0 && !fault_code(rc) && !(rc == PKV_EREADONLY && a.readonly_reason)) {
		child_fail(i, "E.1 undocumented code %d (%s) with fault %s", rc, pkv_strerror(rc),
			   C.fk->name);
	}
	/* E.2 */
	if (rc == 0 && taken != 1)
		child_fail(i, "E.2 acknowledged without taking a sequence number");
	if (rc != 0 && taken &&
	    (C.mode != PKV_DURABLE_POWER || a.readonly_reason == 0 || rc != a.readonly_reason))
		child_fail(i, "E.2 failed with %d (%s) but took seq %" PRIu64 " (read-only: %d)",
			   rc, pkv_strerror(rc), a.last_seq, a.readonly_reason);
	if (taken) {
		seq = a.last_seq;
		if (seq != C.h.len + 1 || seq > MAX_STEPS)
			child_fail(i, "seq %" PRIu64 " does not follow %" PRIu64, seq, C.h.len);
		C.h.len = seq;
		C.h.write[seq] = s->write;
		C.h.acked[seq] = rc == 0;
		C.model[s->key] = s->kind == ST_PUT ? (int32_t)s->write : -1;
	}
	/* E.4 */
	if (rc == 0 && C.mode == PKV_DURABLE_POWER && a.durable_seq < seq)
		child_fail(i,
			   "E.4 a POWER write returned 0 with seq %" PRIu64
			   " > durable_seq %" PRIu64,
			   seq, a.durable_seq);
	child_after_call(i, rc, nf && rc == PKV_NOTFOUND, &b, &a, lm);
	child_report(CM_STEP, i, rc, seq);
}

static void child_sync(int i)
{
	pkv_stats b = C.st, a;
	uint64_t lm = hook_live(true);
	int rc = pkv_sync(C.db);

	a = C.st = child_stats(i);
	if (b.readonly_reason) {
		if (rc == 0 || (rc != b.readonly_reason && rc != PKV_EREADONLY))
			child_fail(i, "E.3 pkv_sync on a store stopped by %d gave %d (%s)",
				   b.readonly_reason, rc, pkv_strerror(rc));
	} else if (rc == 0) {
		if (a.durable_seq < a.last_seq)
			child_fail(i,
				   "E.4 pkv_sync returned 0, durable_seq %" PRIu64
				   " < last_seq %" PRIu64,
				   a.durable_seq, a.last_seq);
	} else if (fault_code(rc)) {
		if (a.readonly_reason != rc)
			child_fail(i,
				   "E.3 pkv_sync failed with %d (%s) but the store is not "
				   "read-only (reason %d)",
				   rc, pkv_strerror(rc), a.readonly_reason);
	} else if (!(rc == PKV_EREADONLY && a.readonly_reason)) {
		child_fail(i, "E.1 undocumented code %d (%s)", rc, pkv_strerror(rc));
	}
	child_after_call(i, rc, false, &b, &a, lm);
	child_report(CM_STEP, i, rc, 0);
}

static void child_compact(int i)
{
	pkv_stats b = C.st, a;
	uint64_t lm = hook_live(true);
	int rc = pkv_compact(C.db);

	a = C.st = child_stats(i);
	if (b.readonly_reason) {
		if (rc != PKV_EREADONLY)
			child_fail(i, "E.3 pkv_compact on a read-only store gave %d (%s)", rc,
				   pkv_strerror(rc));
	} else if (rc != 0 && !fault_code(rc) && !(rc == PKV_EREADONLY && a.readonly_reason)) {
		child_fail(i, "E.1 undocumented code %d (%s) with fault %s", rc, pkv_strerror(rc),
			   C.fk->name);
	}
	child_after_call(i, rc, false, &b, &a, lm);
	child_check_state(i, rc == 0 ? "after a compaction" : "after a failed compaction");
	child_report(CM_STEP, i, rc, 0);
}

static void child_close(int i)
{
	pkv_stats b = C.st;
	uint64_t lm = hook_live(true);
	int rc = pkv_close(C.db);
	bool live = hook_live(false) > C.handle_live;

	C.db = NULL;
	if (b.readonly_reason) {
		if (rc != b.readonly_reason)
			child_fail(i, "E.3 pkv_close of a store stopped by %d gave %d (%s)",
				   b.readonly_reason, rc, pkv_strerror(rc));
	} else if (rc != 0 && !fault_code(rc)) {
		child_fail(i, "E.1 undocumented code %d (%s)", rc, pkv_strerror(rc));
	}
	/* E.3: a failed WAL fdatasync in this handle's life, whichever thread ran it. */
	if (live && rc == 0)
		child_fail(i, "E.3 pkv_close returned 0 after a failed WAL fdatasync");
	if (rc != 0 && !live)
		child_fail(i, "E.3 pkv_close failed with %d (%s) without a failed WAL fdatasync",
			   rc, pkv_strerror(rc));
	if (hook_live(true) > lm && rc == 0)
		child_fail(i, "E.3 pkv_close returned 0 over the failed fdatasync it ran");
	if (rc != 0 && b.readonly_reason == 0) {
		C.fresh_failures++;
		if (C.disarmed)
			child_fail(i,
				   "E.5 pkv_close failed with %d (%s) after the faults were gone",
				   rc, pkv_strerror(rc));
	}
	child_report(CM_STEP, i, rc, 0);
}

/*
 * E.9 (recovery.c R.8): the first open after a crash makes what it recovered power-loss durable
 * before it returns, as durable_seq then says. So every WAL segment found after the crash that
 * is still there must have been fdatasynced by an open attempt since (a failed attempt's sync
 * counts: the records are durable either way).
 */
static void child_check_synced(int step)
{
	pthread_mutex_lock(&H.mu);
	for (int j = 0; j < H.ncrash_wal; j++) {
		if (H.crash_removed[j] || H.crash_synced[j])
			continue;
		pthread_mutex_unlock(&H.mu);
		child_fail(step,
			   "E.9 wal/%s survived the crash and was replayed, but no fdatasync of it "
			   "succeeded before pkv_open returned 0 (R.8); durable_seq %" PRIu64
			   " says its records are durable",
			   H.crash_wal[j], C.st.durable_seq);
	}
	pthread_mutex_unlock(&H.mu);
}

/* The WAL segments on disk now (after a crash): E.9 follows each of them. */
static void child_list_wal(const char *dir)
{
	char path[4200];
	struct dirent *e;
	DIR *d;

	snprintf(path, sizeof(path), "%s/wal", dir);
	d = opendir(path);
	if (d == NULL)
		return; /* no store was made before the crash */
	pthread_mutex_lock(&H.mu);
	while ((e = readdir(d)) != NULL && H.ncrash_wal < CRASH_WAL)
		if (ends_with(e->d_name, ".wal") && strlen(e->d_name) < sizeof(H.crash_wal[0]))
			strcpy(H.crash_wal[H.ncrash_wal++], e->d_name);
	pthread_mutex_unlock(&H.mu);
	closedir(d);
}

/* One attempt; on success, check the recovered prefix (E.7) and cut the history there. */
static int child_open_once(int i, const char *dir)
{
	pkv_options o;
	uint64_t k, acked = hist_acked_max(&C.h);
	int rc;

	wl_opts(&o, C.mode);
	o.log_fn = child_log;
	C.handle_live = hook_live(false);
	rc = pkv_open(dir, &o, &C.db);
	if (rc != 0) {
		C.db = NULL;
		if (!fault_code(rc))
			child_fail(i, "E.1 pkv_open gave %d (%s) with fault %s", rc,
				   pkv_strerror(rc), C.fk->name);
		C.open_failed++;
		if (C.disarmed)
			child_fail(i, "E.7 pkv_open failed with %d (%s) once the faults were gone",
				   rc, pkv_strerror(rc));
		child_report(CM_STEP, i, rc, 0);
		return rc;
	}
	C.st = child_stats(i);
	k = C.st.last_seq;
	if (k < acked || k > C.h.len)
		child_fail(i,
			   "E.7 recovered last_seq %" PRIu64 " is not within [%" PRIu64 ", %" PRIu64
			   "] (acknowledged .. taken)",
			   k, acked, C.h.len);
	C.h.len = k;
	model_of(&C.h, k, C.model);
	child_check_state(i, "after the open");
	if (C.after_crash) {
		child_check_synced(i);
		C.after_crash = false;
	}
	if (C.st.readonly_reason != 0 && hook_live(false) == C.handle_live)
		child_fail(i, "E.3 opened read-only (%d)", C.st.readonly_reason);
	child_report(CM_STEP, i, 0, 0);
	child_report(CM_RESET, i, 0, k);
	return 0;
}

/* E.7: a failed open is retried with the fault still armed, then once the faults are gone. */
static void child_open(int i, const char *dir)
{
	if (child_open_once(i, dir) == 0)
		return;
	C.fresh_failures++;
	if (child_open_once(i, dir) == 0)
		return;
	if (!C.fk->persistent)
		child_fail(i, "E.7 the store does not open again after a one-time fault");
	ffs_disarm();
	C.disarmed = true;
	C.open_healed++;
	if (child_open_once(i, dir) != 0)
		child_fail(i, "E.7 the store does not open once the faults are gone");
}

/* The counters of this run, the child's before a crash included, into @m. */
static void child_counts(struct cmsg *m)
{
	const struct cmsg *b = &C.base;

	m->ops = b->ops + ffs_total();
	m->heal_ops = C.heal_ops;
	m->injected = injected_total();
	pthread_mutex_lock(&H.mu);
	m->fault_op = b->injected ? b->fault_op : H.first_op;
	m->fault_index = b->injected ? b->fault_index :
				       H.first_index + (H.first_op < 0 ? 0 : b->ops);
	m->live_faults = b->live_faults + H.live_faults;
	pthread_mutex_unlock(&H.mu);
	m->open_failed = C.open_failed;
	m->open_healed = C.open_healed;
	m->ever_ro = C.ever_ro;
	m->fresh_failures = C.fresh_failures;
	m->disarmed = C.disarmed;
	for (int op = 0; op < FFS_NOPS; op++)
		m->per[op] = b->per[op] + ffs_count((enum ffs_op)op);
}

/*
 * ST_CRASH: die with the store open (process-crash semantics: what was written stays in the
 * page cache), after reporting what the runner's next child needs to go on. The fault is
 * disarmed first, so that the store's threads cannot take, while this process ends, a fault
 * that the next child will arm.
 */
__attribute__((noreturn)) static void child_crash(int i)
{
	struct cmsg m;

	ffs_disarm();
	memset(&m, 0, sizeof(m));
	m.type = CM_CRASH;
	m.step = i;
	child_counts(&m);
	m.matched = C.base.matched + ffs_matched();
	if (cfg.verbose)
		fprintf(stderr, "child: step %3d crash with the store open\n", i);
	child_send(&m);
	_exit(0);
}

/*
 * Run the workload from step @start with the fault of @fk armed at @n (0: count only). After a
 * crash (@start > 0) @h is the history so far and @base what the child before counted: the
 * fault goes on from where it was (N - the matching operations done, or at once if it is
 * persistent and was reached). Does not return.
 */
__attribute__((noreturn)) static void child_main(const char *dir, enum pkv_durability mode,
						 const struct fkind_def *fk, uint64_t n, int fd,
						 int start, const struct history *h,
						 const struct cmsg *base)
{
	struct ffs_hooks hooks = { .pre = hook_pre, .post = hook_post };
	struct ffs_fault f = {
		.action = fk->action,
		.nth = n,
		.kinds = fk->kinds,
		.err = fk->err,
		.persistent = fk->persistent,
	};
	struct cmsg m;

	C.fd = fd;
	C.mode = mode;
	C.fk = fk;
	H.main = pthread_self();
	alarm(cfg.child_timeout); /* E.8: a hang ends in SIGALRM */
	ffs_install();
	ffs_set_sync_elide(true);
	ffs_set_hooks(&hooks);
	for (int i = 0; i < NKEYS; i++)
		C.model[i] = -1;
	if (base) {
		C.base = *base;
		C.h = *h;
		model_of(&C.h, C.h.len, C.model);
		C.fresh_failures = base->fresh_failures;
		C.ever_ro = base->ever_ro;
		C.disarmed = base->disarmed;
		C.open_failed = base->open_failed;
		C.open_healed = base->open_healed;
		C.after_crash = true;
		child_list_wal(dir);
		if (base->injected == 0 && n > base->matched)
			f.nth = n - base->matched;
		else if (base->injected && fk->persistent && !base->disarmed)
			f.nth = 1;
		else
			f.nth = 0;
	}
	if (n && f.nth)
		ffs_arm(&f);

	for (int i = start; i < nsteps; i++) {
		switch (steps[i].kind) {
		case ST_OPEN:
			child_open(i, dir);
			break;
		case ST_CLOSE:
			child_close(i);
			break;
		case ST_PUT:
		case ST_DEL:
			child_write(i);
			break;
		case ST_COMPACT:
			child_compact(i);
			break;
		case ST_SYNC:
			child_sync(i);
			break;
		case ST_CHECK:
			child_check_state(i, "at a check point");
			break;
		case ST_HEAL:
			C.heal_ops = C.base.per[FFS_FALLOCATE] + C.base.per[FFS_PWRITE] +
				     ffs_count(FFS_FALLOCATE) + ffs_count(FFS_PWRITE);
			if (fk == &fkinds[FK_FULL]) { /* space is freed */
				ffs_disarm();
				C.disarmed = true;
			}
			break;
		case ST_CRASH:
			child_crash(i);
		}
	}

	/* E.5 */
	if (injected_total() == 0 && C.fresh_failures)
		child_fail(-1, "E.5 %d calls failed without a fault", C.fresh_failures);
	if (!fk->persistent && !C.ever_ro && C.fresh_failures > 1)
		child_fail(-1,
			   "E.5 %d calls failed after a one-time fault (the store stayed "
			   "writable)",
			   C.fresh_failures);
	if (fk->action == FFS_SHORT && (C.fresh_failures || C.ever_ro))
		child_fail(-1, "E.5 a short transfer failed %d calls (read-only: %d)",
			   C.fresh_failures, C.ever_ro);

	memset(&m, 0, sizeof(m));
	m.type = CM_DONE;
	child_counts(&m);
	child_send(&m);
	_exit(0);
}

/* ---- the runner: one case, then the checks after it ------------------------------------- */

enum rc_class {
	RC_OK,
	RC_EIO,
	RC_ENOSPC,
	RC_READONLY,
	RC_NOTFOUND,
	RC_OTHER,
	RC_N
};

static enum rc_class rc_class_of(int rc)
{
	switch (rc) {
	case 0:
		return RC_OK;
	case -EIO:
		return RC_EIO;
	case -ENOSPC:
		return RC_ENOSPC;
	case PKV_EREADONLY:
		return RC_READONLY;
	case PKV_NOTFOUND:
		return RC_NOTFOUND;
	default:
		return RC_OTHER;
	}
}

/* Runner -> main. */
struct result {
	int32_t mode, kind;
	uint64_t n;
	int32_t ok;
	int32_t status; /* the child's wait status */
	uint64_t injected; /* faults injected */
	int32_t fault_op; /* the first one's operation kind, -1 if none */
	uint64_t fault_index;
	uint64_t calls[RC_N];
	uint64_t acked; /* acknowledged writes the final state had to hold */
	uint64_t unacked_recovered; /* writes recovered beyond the last acknowledged one */
	uint64_t live_faults;
	int32_t ever_ro, open_failed, open_healed;
	uint64_t ops, heal_ops, per[FFS_NOPS]; /* what the run counted */
	char why[1200];
};

static bool rfail(struct result *res, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Record the first failure of the case (later ones are usually its consequences). */
static bool rfail(struct result *res, const char *fmt, ...)
{
	va_list ap;

	res->ok = 0;
	if (res->why[0])
		return false;
	va_start(ap, fmt);
	vsnprintf(res->why, sizeof(res->why), fmt, ap);
	va_end(ap);
	return false;
}

struct rlog {
	char text[700];
	size_t len;
};

static void runner_log(void *ctx, int level, const char *msg)
{
	struct rlog *l = ctx;
	int n;

	(void)level;
	if (l->len + 2 >= sizeof(l->text))
		return;
	n = snprintf(l->text + l->len, sizeof(l->text) - l->len, "%s; ", msg);
	if (n > 0)
		l->len = l->len + (size_t)n < sizeof(l->text) ? l->len + (size_t)n :
								sizeof(l->text) - 1;
}

/* P.1, P.2: reopen with the production table and hold the store to invariant 3. */
static bool runner_check(const char *dir, enum pkv_durability mode, const struct history *h,
			 struct result *res)
{
	int32_t last[NKEYS];
	struct rlog log = { .len = 0 };
	unsigned char v[16] = "after the fault", got[32];
	uint64_t acked = hist_acked_max(h), k;
	char why[256], key[32];
	size_t kl = wl_key(key, PROBE_KEY), vl = 0;
	pkv_options o;
	pkv_stats st;
	pkv *db = NULL;
	int r;

	wl_opts(&o, mode);
	o.log_fn = runner_log;
	o.log_ctx = &log;
	r = pkv_open(dir, &o, &db);
	if (r != 0)
		return rfail(res, "P.1 reopen with the production table gave %d (%s); log: %s", r,
			     pkv_strerror(r), log.text);
	if (pkv_get_stats(db, &st) != 0) {
		pkv_close(db);
		return rfail(res, "P.1 pkv_get_stats failed");
	}
	k = st.last_seq;
	res->acked = hist_acked_count(h);
	if (k < acked || k > h->len) {
		pkv_close(db);
		return rfail(res,
			     "P.1 recovered last_seq %" PRIu64 " is not within [%" PRIu64
			     ", %" PRIu64 "] (acknowledged .. taken); log: %s",
			     k, acked, h->len, log.text);
	}
	res->unacked_recovered = k - acked;
	model_of(h, k, last);
	if (!state_matches(db, last, why, sizeof(why))) {
		pkv_close(db);
		return rfail(res,
			     "P.1 the state is not the prefix of %" PRIu64 " writes: %s; log: %s",
			     k, why, log.text);
	}
	r = pkv_put(db, key, kl, v, sizeof(v));
	if (r != 0) {
		pkv_close(db);
		return rfail(res, "P.2 a put after the reopen gave %d (%s)", r, pkv_strerror(r));
	}
	r = pkv_close(db);
	if (r != 0)
		return rfail(res, "P.2 close after the reopen gave %d (%s)", r, pkv_strerror(r));
	r = pkv_open(dir, &o, &db);
	if (r != 0)
		return rfail(res, "P.2 second reopen gave %d (%s); log: %s", r, pkv_strerror(r),
			     log.text);
	r = pkv_get(db, key, kl, got, sizeof(got), &vl);
	if (r != 0 || vl != sizeof(v) || memcmp(got, v, vl) != 0) {
		pkv_close(db);
		return rfail(res, "P.2 the write after the reopen is gone (%d, %s)", r,
			     pkv_strerror(r));
	}
	r = pkv_del(db, key, kl);
	if (r != 0) {
		pkv_close(db);
		return rfail(res, "P.2 a delete after the second reopen gave %d (%s)", r,
			     pkv_strerror(r));
	}
	if (!state_matches(db, last, why, sizeof(why))) {
		pkv_close(db);
		return rfail(res, "P.2 after the second reopen: %s", why);
	}
	r = pkv_close(db);
	if (r != 0)
		return rfail(res, "P.2 second close gave %d (%s)", r, pkv_strerror(r));
	return true;
}

/*
 * Fork the child, collect its reports into @h and @res; after a crash step fork the next child,
 * which goes on with the history and the fault; then check the store.
 */
static void run_case(const char *dir, enum pkv_durability mode, enum fkind kind, uint64_t n,
		     struct result *res)
{
	struct history h;
	struct cmsg m, crash;
	int status = 0, last_step = -1, start = 0;
	bool done = false;

	memset(&h, 0, sizeof(h));
	memset(&crash, 0, sizeof(crash));
	for (;;) {
		bool crashed = false;
		int rfd, wfd;
		pid_t pid = su_fork_pipe(&rfd, &wfd);

		if (pid == 0)
			child_main(dir, mode, &fkinds[kind], n, wfd, start, &h,
				   start ? &crash : NULL);
		while (su_read_full(rfd, &m, sizeof(m)) == 0) {
			m.text[sizeof(m.text) - 1] = '\0';
			switch (m.type) {
			case CM_STEP:
				last_step = m.step;
				res->calls[rc_class_of(m.rc)]++;
				if (m.step < 0 || m.step >= nsteps) {
					rfail(res, "bad step %d in a report", m.step);
					break;
				}
				if (!is_write(&steps[m.step]) || m.seq == 0)
					break;
				if (m.seq != h.len + 1 || m.seq > MAX_STEPS) {
					rfail(res, "report of seq %" PRIu64 " after %" PRIu64,
					      m.seq, h.len);
					break;
				}
				h.len = m.seq;
				h.write[m.seq] = steps[m.step].write;
				h.acked[m.seq] = m.rc == 0;
				break;
			case CM_RESET:
				if (m.seq > h.len)
					rfail(res, "reset to seq %" PRIu64 " beyond %" PRIu64,
					      m.seq, h.len);
				else
					h.len = m.seq;
				break;
			case CM_FAIL:
				rfail(res, "%s", m.text);
				res->fault_op = m.fault_op;
				res->fault_index = m.fault_index;
				break;
			case CM_CRASH:
				crashed = true;
				crash = m;
				last_step = m.step;
				break;
			case CM_DONE:
				done = true;
				res->ops = m.ops;
				res->heal_ops = m.heal_ops;
				res->injected = m.injected;
				res->fault_op = m.fault_op;
				res->fault_index = m.fault_index;
				res->live_faults = m.live_faults;
				res->ever_ro = m.ever_ro;
				res->open_failed = m.open_failed;
				res->open_healed = m.open_healed;
				memcpy(res->per, m.per, sizeof(res->per));
				break;
			default:
				rfail(res, "garbled report (type %u)", m.type);
				break;
			}
		}
		close(rfd);
		status = su_wait(pid);
		if (!crashed || !WIFEXITED(status) || WEXITSTATUS(status) != 0 || !res->ok)
			break;
		start = crash.step + 1; /* the crash is over: the next child reopens */
	}
	res->status = status;
	if (WIFSIGNALED(status)) {
		int sig = WTERMSIG(status);

		if (sig == SIGALRM)
			rfail(res, "E.8 hang: the child made no progress for %u s after step %d",
			      cfg.child_timeout, last_step);
		else
			rfail(res, "E.8 the child died of signal %d (%s) after step %d", sig,
			      strsignal(sig), last_step);
	} else if (WEXITSTATUS(status) != 0 && WEXITSTATUS(status) != CHILD_FAILED) {
		rfail(res, "E.8 the child exited with status %d after step %d (a sanitizer?)",
		      WEXITSTATUS(status), last_step);
	} else if (!done && res->ok) {
		rfail(res, "the child ended without its final report (after step %d)", last_step);
	}
	if (cfg.verbose)
		fprintf(stderr, "runner: %" PRIu64 " seqs taken, %" PRIu64 " acknowledged\n", h.len,
			hist_acked_count(&h));
	runner_check(dir, mode, &h, res);
}

/* Start a runner for (@mode, @kind, @n) in @dir; returns the read end of its result pipe. */
static int start_runner(const char *dir, int mode, int kind, uint64_t n, pid_t *pid_out)
{
	int rfd, wfd;
	pid_t pid;

	fflush(stderr);
	pid = su_fork_pipe(&rfd, &wfd);
	if (pid == 0) {
		struct result res;

		/* The child's own alarm covers the workload; this one covers the checks too. */
		alarm(cfg.child_timeout * 2 + 120);
		memset(&res, 0, sizeof(res));
		res.mode = mode;
		res.kind = kind;
		res.n = n;
		res.ok = 1;
		res.fault_op = -1;
		su_rmtree(dir);
		run_case(dir, (enum pkv_durability)mode, (enum fkind)kind, n, &res);
		if (!res.ok && cfg.keep) {
			/* The slot's directory is reused by the next case: keep a copy by name. */
			char kept[4300];

			snprintf(kept, sizeof(kept), "%s-%s-%s-%" PRIu64, dir,
				 su_durability_name((enum pkv_durability)mode), fkinds[kind].name,
				 n);
			su_rmtree(kept);
			if (rename(dir, kept) != 0)
				snprintf(res.why + strlen(res.why),
					 sizeof(res.why) - strlen(res.why),
					 " (cannot keep the store: %s)", strerror(errno));
		}
		su_rmtree(dir);
		su_send(wfd, &res, sizeof(res));
		_exit(0);
	}
	*pid_out = pid;
	return rfd;
}

static void finish_runner(int fd, pid_t pid, struct result *res)
{
	int status;
	bool got;

	memset(res, 0, sizeof(*res));
	got = su_read_full(fd, res, sizeof(*res)) == 0;
	close(fd);
	status = su_wait(pid);
	if (!got || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		res->ok = 0;
		res->why[sizeof(res->why) - 1] = '\0';
		if (!got)
			snprintf(res->why, sizeof(res->why), "the runner died (status 0x%x)",
				 status);
	}
	res->why[sizeof(res->why) - 1] = '\0';
}

/* ---- main: the sweep --------------------------------------------------------------------- */

struct agg {
	uint64_t cases, reached, faults, calls[RC_N], acked, unacked, ro, open_failed, healed, live,
		passed, failed;
};

static struct agg agg[NMODES][FK_N];
static uint64_t total_of[NMODES][FK_N];

/* T of @kind from the counting run @c. */
static uint64_t t_of(const struct result *c, enum fkind kind)
{
	const struct fkind_def *fk = &fkinds[kind];
	uint64_t t = 0;

	if (kind == FK_FULL)
		return c->heal_ops; /* the disk is freed at the heal step */
	if (fk->kinds == 0)
		return c->ops;
	for (int op = 0; op < FFS_NOPS; op++)
		if (fk->kinds & FFS_BIT(op))
			t += c->per[op];
	return t;
}

struct job {
	int mode, kind;
	uint64_t n;
};

static struct job *jobs;
static size_t njobs;

static void add_job(int mode, int kind, uint64_t n)
{
	static size_t cap;

	if (njobs == cap) {
		cap = cap ? cap * 2 : 1024;
		jobs = realloc(jobs, cap * sizeof(*jobs));
		if (jobs == NULL) {
			perror("ioerr: realloc");
			exit(2);
		}
	}
	jobs[njobs++] = (struct job){ mode, kind, n };
}

static void print_failure(const struct result *r, uint64_t nfail)
{
	if (nfail > MAX_FAIL_PRINT)
		return;
	printf("FAIL %s %s N=%" PRIu64 " (first fault: %s #%" PRIu64 "): %s\n"
	       "     reproduce: ioerr --modes %s --kinds %s --only-n %" PRIu64 " --verbose\n",
	       su_durability_name((enum pkv_durability)r->mode), fkinds[r->kind].name, r->n,
	       ffs_op_name(r->fault_op), r->fault_index, r->why,
	       su_durability_name((enum pkv_durability)r->mode), fkinds[r->kind].name, r->n);
}

/* Failed cases by the check they broke (E.n / P.n: the first such tag in the message). */
static struct {
	char tag[8];
	uint64_t n;
} broke[32];

static void count_broken(const char *why)
{
	char tag[8] = "other";
	int i;

	for (const char *p = why; *p; p++)
		if ((p[0] == 'E' || p[0] == 'P') && p[1] == '.' && p[2] >= '1' && p[2] <= '9') {
			snprintf(tag, sizeof(tag), "%c.%c", p[0], p[2]);
			break;
		}
	for (i = 0; i < 32 && broke[i].n && strcmp(broke[i].tag, tag) != 0; i++)
		;
	if (i == 32)
		return;
	snprintf(broke[i].tag, sizeof(broke[i].tag), "%s", tag);
	broke[i].n++;
}

static void account(const struct result *r, uint64_t *nfail)
{
	struct agg *a = &agg[r->mode][r->kind];

	a->cases++;
	a->reached += r->injected > 0;
	a->faults += r->injected;
	for (int c = 0; c < RC_N; c++)
		a->calls[c] += r->calls[c];
	a->acked += r->acked;
	a->unacked += r->unacked_recovered;
	a->ro += r->ever_ro != 0;
	a->open_failed += r->open_failed > 0;
	a->healed += r->open_healed > 0;
	a->live += r->live_faults > 0;
	if (r->ok) {
		a->passed++;
	} else {
		a->failed++;
		count_broken(r->why);
		print_failure(r, ++*nfail);
	}
}

static void print_row(const char *mode, const char *kind, const struct agg *a, uint64_t total)
{
	printf("%-8s %-14s %5" PRIu64 "/%-5" PRIu64 " %5" PRIu64 " %6" PRIu64 " | %6" PRIu64
	       " %5" PRIu64 " %5" PRIu64 " %5" PRIu64 " %4" PRIu64 " %3" PRIu64 " | %7" PRIu64
	       " %5" PRIu64 " | %4" PRIu64 " %4" PRIu64 " %4" PRIu64 " %4" PRIu64 " | %5" PRIu64
	       " %4" PRIu64 "\n",
	       mode, kind, a->cases, total, a->reached, a->faults, a->calls[RC_OK],
	       a->calls[RC_EIO], a->calls[RC_ENOSPC], a->calls[RC_READONLY], a->calls[RC_NOTFOUND],
	       a->calls[RC_OTHER], a->acked, a->unacked, a->live, a->ro, a->open_failed, a->healed,
	       a->passed, a->failed);
}

static void agg_add(struct agg *dst, const struct agg *src)
{
	dst->cases += src->cases;
	dst->reached += src->reached;
	dst->faults += src->faults;
	for (int c = 0; c < RC_N; c++)
		dst->calls[c] += src->calls[c];
	dst->acked += src->acked;
	dst->unacked += src->unacked;
	dst->ro += src->ro;
	dst->open_failed += src->open_failed;
	dst->healed += src->healed;
	dst->live += src->live;
	dst->passed += src->passed;
	dst->failed += src->failed;
}

static void print_table(void)
{
	struct agg tot[FK_N], all;
	uint64_t ttot[FK_N], tall = 0;

	memset(tot, 0, sizeof(tot));
	memset(ttot, 0, sizeof(ttot));
	memset(&all, 0, sizeof(all));
	printf("\nmode     kind           cases/of    hit faults |    ok  -EIO -NOSPC RDONLY NOTF"
	       " oth |   acked unack | wsync  ro  open heal |  pass fail\n");
	for (int m = 0; m < NMODES; m++) {
		if (!(cfg.modes & (1u << m)))
			continue;
		for (int k = 0; k < FK_N; k++) {
			if (!(cfg.kinds & (1u << k)))
				continue;
			print_row(su_durability_name((enum pkv_durability)m), fkinds[k].name,
				  &agg[m][k], total_of[m][k]);
			agg_add(&tot[k], &agg[m][k]);
			ttot[k] += total_of[m][k];
		}
	}
	printf("\n");
	for (int k = 0; k < FK_N; k++) {
		if (!(cfg.kinds & (1u << k)))
			continue;
		print_row("all", fkinds[k].name, &tot[k], ttot[k]);
		agg_add(&all, &tot[k]);
		tall += ttot[k];
	}
	print_row("all", "all", &all, tall);
	printf("\ncases/of: cases run / cases in the sweep (N = 1..T); hit: cases the fault "
	       "reached; faults: operations failed or shortened;\ncalls: API calls by result "
	       "(NOTF: delete of an absent key; oth: any other code); acked: acknowledged "
	       "writes the\nreopened store had to hold; unack: writes recovered beyond the last "
	       "acknowledged one; wsync: cases with a failed\nWAL fdatasync; ro: cases where the "
	       "store turned read-only; open: cases with a failed open; heal: opens that\n"
	       "succeeded only once the faults were gone.\n");
}

/* ---- options ----------------------------------------------------------------------------- */

static const char *const mode_names[] = { "process", "power", "periodic", NULL };
static const char *kind_names[FK_N + 1]; /* fkinds[k].name, filled in by main() */

static const struct su_opt options[] = {
	SU_OPT("seconds", SU_OPT_DOUBLE, &cfg.seconds,
	       "start no case after N seconds (0: run the whole sweep)"),
	SU_OPT("stride", SU_OPT_U64, &cfg.stride,
	       "run every K-th N only (with --offset: N = offset+1, +K, ...)", .arg = "K",
	       .min = 1),
	SU_OPT("offset", SU_OPT_U64, &cfg.offset, "where --stride starts (default 0)", .arg = "K"),
	SU_OPT("only-n", SU_OPT_U64, &cfg.only_n,
	       "run only N (a reproducer; with --verbose the child prints each call)", .min = 1),
	SU_OPT("jobs", SU_OPT_UINT, &cfg.jobs,
	       "cases at a time (default 4: they mostly wait for fsync)", .min = 1, .max = 64),
	SU_OPT("seed", SU_OPT_U64, &cfg.seed, "order of the cases (the workload is fixed)"),
	SU_OPT("modes", SU_OPT_SET, &cfg.modes, "process,power,periodic (default: all)",
	       .arg = "LIST", .names = mode_names),
	SU_OPT("kinds", SU_OPT_SET, &cfg.kinds,
	       "eio,enospc,eio-persist,enospc-persist,short,fsyncgate,full\n(default: all)",
	       .arg = "LIST", .names = kind_names),
	SU_OPT("child-timeout", SU_OPT_UINT, &cfg.child_timeout,
	       "seconds a child may take before it counts as hung (default 60)", .arg = "S",
	       .min = 1, .max = 3600),
	SU_OPT("dir", SU_OPT_STR, &cfg.parent,
	       "make the stores in a new temporary directory under PARENT", .arg = "PARENT"),
	SU_OPT("keep", SU_OPT_FLAG, &cfg.keep, "keep the store of each failed case"),
	SU_OPT("verbose", SU_OPT_FLAG, &cfg.verbose,
	       "the children print each call and failure on stderr"),
	SU_OPT_END
};

/* ---- main -------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
	struct {
		int fd;
		pid_t pid;
	} * slot;
	char base[4096], (*dir)[4200];
	uint64_t passed = 0, failed = 0, nfail = 0;
	size_t next = 0, active = 0, head = 0;
	struct su_rng rng;
	bool cut = false;
	double t0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (int k = 0; k < FK_N; k++)
		kind_names[k] = fkinds[k].name;
	su_opts_parse(argc, argv, "ioerr", options, NULL);
	if (su_workdir(base, sizeof(base), cfg.parent, "ioerr") != 0) {
		perror("ioerr: mkdtemp");
		return 2;
	}
	slot = calloc(cfg.jobs, sizeof(*slot));
	dir = calloc(cfg.jobs, sizeof(*dir));
	if (slot == NULL || dir == NULL) {
		perror("ioerr: calloc");
		return 2;
	}
	for (unsigned j = 0; j < cfg.jobs; j++)
		snprintf(dir[j], sizeof(dir[j]), "%s/db%u", base, j);
	build_workload();
	t0 = su_now();
	printf("ioerr: %d steps (%d writes), one lane, 64 KiB segments; stores under %s; "
	       "stride %" PRIu64 ", %u jobs\n",
	       nsteps, nwrites, base, cfg.stride, cfg.jobs);

	/*
	 * The counting runs: T per mode and kind, and clean runs of the whole workload. The store's
	 * background thread takes part in the count, so T is the largest of a few runs.
	 */
	for (int m = 0; m < NMODES; m++) {
		uint64_t tmax[FK_N] = { 0 };
		struct result c;

		if (!(cfg.modes & (1u << m)))
			continue;
		for (int run = 0; run < COUNTING_RUNS; run++) {
			pid_t pid;
			int fd = start_runner(dir[0], m, FK_EIO, 0, &pid);

			finish_runner(fd, pid, &c);
			if (!c.ok) {
				printf("FAIL %s: a counting run (no fault): %s\n",
				       su_durability_name((enum pkv_durability)m), c.why);
				if (cfg.keep)
					printf("stores of failed cases kept under %s\n", base);
				else
					su_rmtree(base);
				printf("0 passed, 1 failed\n");
				return 1;
			}
			for (int k = 0; k < FK_N; k++)
				if (t_of(&c, (enum fkind)k) > tmax[k])
					tmax[k] = t_of(&c, (enum fkind)k);
			printf("counting run %-8s: %" PRIu64 " operations (%" PRIu64
			       " fdatasync, %" PRIu64 " pwrite, %" PRIu64 " pread, %" PRIu64
			       " fallocate); %" PRIu64 " acknowledged writes\n",
			       su_durability_name((enum pkv_durability)m), c.ops,
			       c.per[FFS_FDATASYNC], c.per[FFS_PWRITE], c.per[FFS_PREAD],
			       c.per[FFS_FALLOCATE], c.acked);
		}
		for (int k = 0; k < FK_N; k++) {
			uint64_t t = tmax[k];

			if (!(cfg.kinds & (1u << k)))
				continue;
			for (uint64_t n = cfg.offset + 1; n <= t; n += cfg.stride) {
				if (cfg.only_n == 0 || n == cfg.only_n) {
					total_of[m][k]++;
					add_job(m, k, n);
				}
			}
			if (cfg.only_n &&
			    cfg.only_n > t) { /* beyond this run's count: try anyway */
				total_of[m][k]++;
				add_job(m, k, cfg.only_n);
			}
		}
	}
	/* A fixed shuffle: a run cut short by --seconds still samples every mode and kind. */
	su_rng_seed(&rng, cfg.seed);
	for (size_t i = njobs; i > 1; i--) {
		size_t j = (size_t)su_rng_below(&rng, i);
		struct job t = jobs[i - 1];

		jobs[i - 1] = jobs[j];
		jobs[j] = t;
	}
	for (int k = 0; k < FK_N; k++)
		if (cfg.kinds & (1u << k))
			printf("  %-14s %s\n", fkinds[k].name, fkinds[k].what);
	printf("%zu cases\n", njobs);

	/* Runners in a ring of --jobs slots, each with its own directory; oldest first. */
	while (next < njobs || active > 0) {
		struct result r;

		if (!cut && next < njobs && cfg.seconds > 0 && su_now() - t0 >= cfg.seconds) {
			cut = true;
			printf("--seconds %.0f reached: %zu of %zu cases started\n", cfg.seconds,
			       next, njobs);
		}
		if (active < cfg.jobs && next < njobs && !cut) {
			size_t i = (head + active) % cfg.jobs;
			const struct job *j = &jobs[next++];

			slot[i].fd = start_runner(dir[i], j->mode, j->kind, j->n, &slot[i].pid);
			active++;
			continue;
		}
		if (active == 0)
			break;
		finish_runner(slot[head].fd, slot[head].pid, &r);
		head = (head + 1) % cfg.jobs;
		active--;
		if (r.ok)
			passed++;
		else
			failed++;
		if (r.mode >= 0 && r.mode < NMODES && r.kind >= 0 && r.kind < FK_N)
			account(&r, &nfail);
		else
			printf("FAIL: a runner died: %s\n", r.why);
	}
	free(slot);
	free(dir);
	print_table();
	printf("\nioerr: %" PRIu64 " cases in %.1f s%s\n", passed + failed, su_now() - t0,
	       cut ? " (cut short by --seconds)" : "");
	if (failed) {
		printf("failed cases by the check they broke:");
		for (int i = 0; i < 32 && broke[i].n; i++)
			printf(" %s %" PRIu64, broke[i].tag, broke[i].n);
		printf("\n");
	}
	if (failed && cfg.keep)
		printf("stores of failed cases kept under %s\n", base);
	else
		su_rmtree(base);
	if (passed + failed == 0)
		failed = 1;
	printf("%" PRIu64 " passed, %" PRIu64 " failed\n", passed, failed);
	return failed == 0 ? 0 : 1;
}
