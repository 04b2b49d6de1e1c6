/* SPDX-License-Identifier: MIT */
/*
 * test_crashpoints.c - crash at every file-system operation of a fixed workload, reopen, and hold
 * the store to invariant 3 of DESIGN.md: the reopened state is the state after some prefix of the
 * write history that includes every acknowledged write (no lost write, no hole, no resurrected
 * delete), and the store goes on working.
 *
 * The workload is single-threaded and deterministic: open; 300 puts over 250 keys with values of
 * 100 .. 600 bytes into 64 KiB segments (so segments roll); 50 deletes of present keys; compact;
 * 100 puts and overwrites (deleted keys come back, new keys appear); compact; 50 puts; close.
 * Every write changes the state (each value is unique to its write, each delete removes a present
 * key), so the states after different prefixes all differ, and the prefix is identified by the
 * recovered last_seq: write i (1-based) takes sequence number i.
 *
 * First a child runs the workload under faultfs with counting only, which gives T, the number of
 * file-system operations of a whole run. Then, for every N in 1..T, a child installs faultfs
 * armed to crash (_exit, process-crash semantics: the page cache keeps what was written) at
 * operation N, runs the workload and sends the index of each write after it returned 0 through a
 * pipe, and the crash hook sends which operation it died at. Then the store is reopened with the
 * production fs table and checked against the model of the first k writes, where k is the
 * recovered last_seq and must be at least the number of acknowledged writes; then one more key is
 * written, and the store is closed, reopened and checked again. Both modes run: PKV_DURABLE_PROCESS
 * and PKV_DURABLE_POWER (whose per-write fdatasyncs are crash points of their own).
 *
 * The crashing children sync nothing for real (faultfs elides fdatasync/fsync but counts them, and
 * crashes at them too): under process-crash semantics a sync changes nothing about what survives,
 * and hundreds of runs of a workload full of syncs would otherwise take minutes on a real disk.
 * The background threads of the store take part in the count, so the operation at index N may
 * differ a little between runs; a child that finishes before its N must then hold the whole
 * workload. wal_lanes is 1 so the thread's CPU does not pick the lane.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "faultfs.h"
#include "testutil.h"

#define NKEYS 400 /* every key the workload can touch: ids 0 .. 349, and the post-crash write */
#define NSTEPS 502
#define CHILD_FAILED 3

enum step_kind {
	ST_PUT,
	ST_DEL,
	ST_COMPACT
};

struct step {
	enum step_kind kind;
	uint32_t key;
	uint32_t write; /* index of this write in the history (0-based); puts and deletes only */
};

static struct step steps[NSTEPS];
static int nsteps, nwrites;

/* Key of @id. */
static size_t cp_key(char *buf, uint32_t id)
{
	return (size_t)snprintf(buf, 32, "key-%05u", id);
}

/* Value of write @w to key @id: 100 .. 600 bytes, unique to the write. */
static size_t cp_val(unsigned char *buf, uint32_t id, uint32_t w)
{
	uint64_t st = ((uint64_t)id << 32) | w;
	size_t len = 100 + (size_t)(tu_rand(&st) % 501);

	memcpy(buf, &w, sizeof(w));
	memcpy(buf + 4, &id, sizeof(id));
	for (size_t i = 8; i < len; i++)
		buf[i] = (unsigned char)tu_rand(&st);
	return len;
}

static void add_step(enum step_kind kind, uint32_t key, int *w, bool *present)
{
	cr_assert_lt(nsteps, NSTEPS);
	steps[nsteps++] = (struct step){ kind, key, kind == ST_COMPACT ? 0 : (uint32_t)(*w)++ };
	if (kind != ST_COMPACT)
		present[key] = kind == ST_PUT;
}

/* The fixed workload; deletes pick present keys, so every write changes the state. */
static void build_workload(void)
{
	bool present[NKEYS] = { false };
	uint64_t rs = 31337;
	int w = 0;

	nsteps = 0;
	for (int i = 0; i < 300; i++)
		add_step(ST_PUT, (uint32_t)(tu_rand(&rs) % 250), &w, present);
	for (int i = 0; i < 50; i++) {
		uint32_t k;

		do
			k = (uint32_t)(tu_rand(&rs) % 250);
		while (!present[k]);
		add_step(ST_DEL, k, &w, present);
	}
	add_step(ST_COMPACT, 0, &w, present);
	for (int i = 0; i < 100; i++)
		add_step(ST_PUT, (uint32_t)(tu_rand(&rs) % 300), &w, present);
	add_step(ST_COMPACT, 0, &w, present);
	for (int i = 0; i < 50; i++)
		add_step(ST_PUT, (uint32_t)(tu_rand(&rs) % 350), &w, present);
	nwrites = w;
	cr_assert_eq(nsteps, NSTEPS);
}

/* The state after the first @k writes: per key, the index of its last write, or -1 if absent. */
static void model_after(int k, int32_t *last)
{
	for (int i = 0; i < NKEYS; i++)
		last[i] = -1;
	for (int i = 0; i < nsteps; i++) {
		const struct step *s = &steps[i];

		if (s->kind == ST_COMPACT)
			continue;
		if ((int)s->write >= k)
			break;
		last[s->key] = s->kind == ST_PUT ? (int32_t)s->write : -1;
	}
}

/* Does @db hold exactly @last (and stats.keys agree)? A description of the first difference. */
static bool state_matches(pkv *db, const int32_t *last, char *why, size_t whylen)
{
	unsigned char v[1024], want[1024];
	uint64_t present = 0;
	pkv_stats st;
	char k[32];

	for (uint32_t id = 0; id < NKEYS; id++) {
		size_t kl = cp_key(k, id), vl = 0, wl;
		int r = pkv_get(db, k, kl, v, sizeof(v), &vl);

		if (last[id] < 0) {
			if (r != PKV_NOTFOUND) {
				snprintf(why, whylen, "key %u should be absent, get gave %d", id,
					 r);
				return false;
			}
			continue;
		}
		present++;
		wl = cp_val(want, id, (uint32_t)last[id]);
		if (r != 0 || vl != wl || memcmp(v, want, wl) != 0) {
			snprintf(why, whylen,
				 "key %u should hold write %d, get gave %d (%zu bytes)", id,
				 last[id], r, vl);
			return false;
		}
	}
	if (pkv_get_stats(db, &st) != 0 || st.keys != present) {
		snprintf(why, whylen, "stats.keys %" PRIu64 ", expected %" PRIu64, st.keys,
			 present);
		return false;
	}
	return true;
}

/* ---- the child --------------------------------------------------------------------------- */

enum msg_kind {
	MSG_ACK = 1,
	MSG_CRASH,
	MSG_DONE,
	MSG_FAIL
};

struct msg {
	uint32_t kind;
	uint32_t a; /* ACK: write index; CRASH: operation kind; FAIL: step; DONE: 0 */
	uint64_t b; /* CRASH: operation index; DONE: operations in the run; FAIL: error code */
};

static int child_fd = -1;

static void child_send(uint32_t kind, uint32_t a, uint64_t b)
{
	struct msg m = { kind, a, b };

	/* 16 bytes: below PIPE_BUF, so a crash on a background thread never tears an ack. */
	if (!tu_write_full(child_fd, &m, sizeof(m)))
		_exit(CHILD_FAILED);
}

__attribute__((noreturn)) static void child_crash(void *ctx, const struct ffs_call *c)
{
	(void)ctx;
	child_send(MSG_CRASH, (uint32_t)c->op, c->index);
	_exit(FFS_CRASH_CODE);
}

static void cp_opts(pkv_options *o, enum pkv_durability mode)
{
	pkv_options_default(o);
	o->durability = mode;
	o->wal_lanes = 1;
	o->wal_segment_bytes = 64u << 10;
	o->flags = PKV_OPEN_NO_AUTOCOMPACT;
}

/* Run the workload, crashing at operation @crash_at (0: never). Does not return. */
__attribute__((noreturn)) static void child_main(const char *dir, enum pkv_durability mode,
						 uint64_t crash_at, int fd)
{
	struct ffs_hooks hooks = { .crash = child_crash };
	struct ffs_fault f = { .action = FFS_CRASH, .nth = crash_at };
	unsigned char v[1024];
	pkv_options o;
	pkv *db = NULL;
	char k[32];
	int r;

	child_fd = fd;
	ffs_install();
	ffs_set_sync_elide(true);
	ffs_set_hooks(&hooks);
	if (crash_at)
		ffs_arm(&f);
	cp_opts(&o, mode);
	r = pkv_open(dir, &o, &db);
	if (r != 0) {
		child_send(MSG_FAIL, UINT32_MAX, (uint64_t)(int64_t)r);
		_exit(CHILD_FAILED);
	}
	for (int i = 0; i < nsteps; i++) {
		const struct step *s = &steps[i];
		size_t kl = cp_key(k, s->key);

		if (s->kind == ST_PUT)
			r = pkv_put(db, k, kl, v, cp_val(v, s->key, s->write));
		else if (s->kind == ST_DEL)
			r = pkv_del(db, k, kl);
		else
			r = pkv_compact(db);
		if (r != 0) {
			child_send(MSG_FAIL, (uint32_t)i, (uint64_t)(int64_t)r);
			_exit(CHILD_FAILED);
		}
		if (s->kind != ST_COMPACT)
			child_send(MSG_ACK, s->write, 0);
	}
	r = pkv_close(db);
	if (r != 0) {
		child_send(MSG_FAIL, (uint32_t)nsteps, (uint64_t)(int64_t)r);
		_exit(CHILD_FAILED);
	}
	child_send(MSG_DONE, 0, ffs_total());
	_exit(0);
}

/* ---- a trial: one crash, then the checks -------------------------------------------------- */

/*
 * A trial runs in a process of its own (a "runner"), forked from the test process, which never
 * calls pkv itself: liburcu's state (its call_rcu thread, the reader registry) does not survive a
 * fork, so every process that uses a store must start from one that never did. The runner forks
 * the crashing child, collects its messages, then opens the store itself and checks it, and sends
 * the parent one struct result. RUNNERS trials run at a time: the checks wait on real syncs, not
 * on the CPU.
 */

struct result {
	uint64_t n; /* the crash point */
	int32_t ok; /* the checks passed */
	int32_t acks; /* acknowledged writes (0 .. acks-1, in order) */
	int32_t exit_code; /* of the crashing child, or -1 if it did not exit */
	int32_t crashed; /* it reported its crash */
	int32_t done; /* it ran the whole workload */
	uint32_t crash_op; /* the kind of operation it died at */
	uint64_t crash_index;
	uint64_t ops; /* done: operations of the whole run */
	char why[1024];
};

_Static_assert(sizeof(struct result) <= 4096, "one atomic pipe write (PIPE_BUF)");

static bool fail(struct result *res, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static bool fail(struct result *res, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(res->why, sizeof(res->why), fmt, ap);
	va_end(ap);
	return false;
}

/* Fork the crashing child and collect what it says; fills @res. False on a protocol error. */
static bool run_workload(const char *dir, enum pkv_durability mode, uint64_t crash_at,
			 struct result *res)
{
	struct msg m;
	int fds[2], status;
	bool failed = false;
	uint32_t fail_step = 0;
	int64_t fail_code = 0;
	pid_t pid;

	if (pipe(fds) != 0)
		return fail(res, "pipe: %s", strerror(errno));
	pid = fork();
	if (pid < 0)
		return fail(res, "fork: %s", strerror(errno));
	if (pid == 0) {
		close(fds[0]);
		child_main(dir, mode, crash_at, fds[1]);
	}
	close(fds[1]);
	while (tu_read_full(fds[0], &m, sizeof(m)) == sizeof(m)) {
		switch (m.kind) {
		case MSG_ACK:
			if (m.a != (uint32_t)res->acks) {
				close(fds[0]);
				waitpid(pid, &status, 0);
				return fail(res, "ack of write %u out of order (expected %d)", m.a,
					    res->acks);
			}
			res->acks++;
			break;
		case MSG_CRASH:
			res->crashed = 1;
			res->crash_op = m.a;
			res->crash_index = m.b;
			break;
		case MSG_DONE:
			res->done = 1;
			res->ops = m.b;
			break;
		case MSG_FAIL:
			failed = true;
			fail_step = m.a;
			fail_code = (int64_t)m.b;
			break;
		default:
			break;
		}
	}
	close(fds[0]);
	if (waitpid(pid, &status, 0) != pid)
		return fail(res, "waitpid: %s", strerror(errno));
	res->exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	if (failed)
		return fail(res,
			    "step %u of the workload failed with %" PRId64 " (%s) before the "
			    "crash",
			    fail_step, fail_code, pkv_strerror((int)fail_code));
	if (res->exit_code == FFS_CRASH_CODE) {
		if (!res->crashed || res->done || (crash_at && res->crash_index != crash_at))
			return fail(res, "crash report does not match: crashed %d at %" PRIu64,
				    res->crashed, res->crash_index);
		return true;
	}
	/* Fewer operations in this run than in the counting run (see the top of the file). */
	if (res->exit_code != 0 || !res->done || res->acks != nwrites)
		return fail(res, "child status 0x%x, %d writes acked, done %d", status, res->acks,
			    res->done);
	return true;
}

/* Reopen with the production table and check invariant 3, then that the store goes on. */
static bool check_after_crash(const char *dir, enum pkv_durability mode, struct result *res)
{
	int32_t last[NKEYS];
	struct tu_log log;
	char why[256], k[32];
	unsigned char v[16] = "after the crash", got[32];
	pkv_options o;
	pkv_stats st;
	pkv *db = NULL;
	size_t kl = cp_key(k, NKEYS - 1), vl = 0;
	int r, n;

	tu_log_init(&log);
	cp_opts(&o, mode);
	o.log_fn = tu_log_fn;
	o.log_ctx = &log;
	r = pkv_open(dir, &o, &db);
	if (r != 0)
		return fail(res, "reopen gave %s; log:\n%.700s", pkv_strerror(r), log.text);
	if (pkv_get_stats(db, &st) != 0)
		return fail(res, "pkv_get_stats failed");
	n = (int)st.last_seq;
	if (st.last_seq > (uint64_t)nwrites || n < res->acks)
		return fail(res, "recovered last_seq %" PRIu64 " is not within [%d, %d]",
			    st.last_seq, res->acks, nwrites);
	model_after(n, last);
	if (!state_matches(db, last, why, sizeof(why))) {
		/* Name any prefix the state does match, to tell a hole from a wrong seq. */
		int other = -1;
		char ignored[256];

		for (int j = 0; j <= nwrites && other < 0; j++) {
			int32_t alt[NKEYS];

			model_after(j, alt);
			if (state_matches(db, alt, ignored, sizeof(ignored)))
				other = j;
		}
		return fail(res,
			    "state is not the prefix of %d writes (last_seq): %s; it matches "
			    "prefix %d (-1: none); log:\n%.500s",
			    n, why, other, log.text);
	}

	/* The store goes on: one more write, a clean close, a reopen that finds it. */
	r = pkv_put(db, k, kl, v, sizeof(v));
	if (r != 0)
		return fail(res, "put after the crash: %s", pkv_strerror(r));
	r = pkv_close(db);
	if (r != 0)
		return fail(res, "close after the crash: %s", pkv_strerror(r));
	r = pkv_open(dir, &o, &db);
	if (r != 0)
		return fail(res, "second reopen gave %s; log:\n%.700s", pkv_strerror(r), log.text);
	r = pkv_get(db, k, kl, got, sizeof(got), &vl);
	if (r != 0 || vl != sizeof(v) || memcmp(got, v, vl) != 0)
		return fail(res, "the write after the crash is gone (%s)", pkv_strerror(r));
	r = pkv_del(db, k, kl);
	if (r != 0)
		return fail(res, "delete after the second reopen: %s", pkv_strerror(r));
	if (!state_matches(db, last, why, sizeof(why)))
		return fail(res, "after the second reopen: %s", why);
	r = pkv_close(db);
	if (r != 0)
		return fail(res, "second close: %s", pkv_strerror(r));
	return true;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return (flag == FTW_DP ? rmdir(path) : unlink(path)) == 0 || errno == ENOENT ? 0 : -1;
}

/* rm -rf for a runner (tu_rm_rf reports through cr_assert, which a forked process must not). */
static void rm_tree(const char *path)
{
	(void)nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Start a runner for crash point @n (0: the counting run) in @dir; returns its result pipe. */
static int start_runner(const char *dir, enum pkv_durability mode, uint64_t n, pid_t *pid_out)
{
	int fds[2];
	pid_t pid;

	cr_assert_eq(pipe(fds), 0, "pipe: %s", strerror(errno));
	pid = fork();
	cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		struct result res;

		close(fds[0]);
		memset(&res, 0, sizeof(res));
		res.n = n;
		res.ok = run_workload(dir, mode, n, &res) &&
			 (n == 0 || check_after_crash(dir, mode, &res));
		rm_tree(dir);
		_exit(tu_write_full(fds[1], &res, sizeof(res)) ? 0 : 1);
	}
	close(fds[1]);
	*pid_out = pid;
	return fds[0];
}

static struct result finish_runner(int fd, pid_t pid)
{
	struct result res;
	int status;

	memset(&res, 0, sizeof(res));
	if (tu_read_full(fd, &res, sizeof(res)) != sizeof(res))
		snprintf(res.why, sizeof(res.why), "the runner died without a result");
	close(fd);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		res.ok = 0;
		snprintf(res.why + strlen(res.why), sizeof(res.why) - strlen(res.why),
			 " (runner status 0x%x)", status);
	}
	return res;
}

#define RUNNERS 4

static void crash_everywhere(enum pkv_durability mode)
{
	struct {
		int fd;
		pid_t pid;
	} slot[RUNNERS];
	char dir[RUNNERS][PATH_MAX];
	struct result full, first_bad;
	uint64_t total, next = 1, crashes = 0, finished = 0, bad = 0;
	int active = 0, head = 0;

	build_workload();
	for (int i = 0; i < RUNNERS; i++) {
		char name[16];

		snprintf(name, sizeof(name), "db%d", i);
		tu_path(dir[i], name);
	}

	/* The counting run: T, and a check that the workload itself is clean. */
	slot[0].fd = start_runner(dir[0], mode, 0, &slot[0].pid);
	full = finish_runner(slot[0].fd, slot[0].pid);
	cr_assert(full.ok && full.done, "counting run failed: %s", full.why);
	cr_assert_eq(full.acks, nwrites);
	total = full.ops;

	/* Runners in a ring of RUNNERS slots, each with its own directory; oldest first. */
	memset(&first_bad, 0, sizeof(first_bad));
	while (next <= total || active > 0) {
		struct result res;

		if (active < RUNNERS && next <= total) {
			int i = (head + active) % RUNNERS;

			slot[i].fd = start_runner(dir[i], mode, next++, &slot[i].pid);
			active++;
			continue;
		}
		res = finish_runner(slot[head].fd, slot[head].pid);
		head = (head + 1) % RUNNERS;
		active--;
		if (!res.ok) {
			if (bad++ == 0)
				first_bad = res;
			continue;
		}
		crashes += res.exit_code == FFS_CRASH_CODE;
		finished += res.exit_code == 0;
	}
	cr_log_info("%s: %" PRIu64 " operations; %" PRIu64 " crash points checked, %" PRIu64
		    " runs finished first, %" PRIu64 " failed",
		    mode == PKV_DURABLE_POWER ? "POWER" : "PROCESS", total, crashes, finished, bad);
	cr_assert_eq(bad, 0,
		     "%" PRIu64 " of %" PRIu64 " crash points failed; the first, crash at op "
		     "%" PRIu64 " (%s #%" PRIu64 "), %d writes acked: %s",
		     bad, total, first_bad.n,
		     first_bad.crashed ? ffs_op_name((int)first_bad.crash_op) : "none",
		     first_bad.crash_index, first_bad.acks, first_bad.why);
	/* A sanity check of the injection, loose enough for the background threads' variance. */
	cr_assert_geq(crashes, total / 2, "most runs should have reached their crash point");
}

Test(crashpoints, process, .init = tu_setup, .fini = tu_teardown, .timeout = 240)
{
	crash_everywhere(PKV_DURABLE_PROCESS);
}

Test(crashpoints, power, .init = tu_setup, .fini = tu_teardown, .timeout = 240)
{
	crash_everywhere(PKV_DURABLE_POWER);
}
