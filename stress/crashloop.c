/* SPDX-License-Identifier: MIT */
/*
 * crashloop.c - kill -9 torture: no acknowledged write is ever lost, and what survives is a
 * prefix of every writer's history.
 *
 * One store directory, many cycles. Each cycle the parent forks a writer child that opens the
 * store and runs 2 writer threads (and a thread calling pkv_compact() at random moments); every
 * write that returned is reported to the parent through a pipe. At a random moment (possibly
 * while the child is still recovering) the parent SIGKILLs the child. Then it forks a verifier
 * that reopens the store and checks it; the next cycle goes on from the verified state.
 *
 * The parent itself never calls into pkv: pkv starts threads (RCU, syncer), and a process that
 * forks must not have them. Children do all the store work.
 *
 * History of writer w: a sequence of steps p = 0, 1, 2, ...; step p belongs to operation n = p / 3:
 *   p = 3n     put  "w<w>/seq/<n>"   value(w, n)
 *   p = 3n + 1 del  "w<w>/seq/<n-D>" (D = 16; a no-op step while n < D)
 *   p = 3n + 2 put  "w<w>/head"      value(w, n)
 * So after the first P steps, writer w's keys are exactly E(P) (see expected() below): the seq
 * keys of operations [max(0, floor((P+1)/3) - D), ceil(P/3)), and head = value(w, floor(P/3) - 1)
 * (absent while P < 3). A writer acknowledges step p
 * (sends p + 1) only after its call returned, and starts step p + 1 only after that, so if A
 * steps of writer w were acknowledged when it died, the recovered state of w's keys must be E(A)
 * or E(A + 1) (a write that was done but not yet acknowledged). Anything else is a lost
 * acknowledged write (R1), a hole or a resurrected delete (R2), or a wrong value (R3). The store's
 * key count must match exactly (R4: nothing else was resurrected). pkv_compact() after recovery
 * must keep the state (R5), and a second open of a directory in use is PKV_ELOCKED (R6).
 *
 * Writers mix batches into the history (history.h): about a third of the operations are one
 * pkv_write of their three steps, with conditions that hold on a correct store, and every
 * other single seq put has a far expiry. A writer whose next operation is a batch must be
 * recovered before it or after all of it (E(A) or E(A + 3)): part of a batch is a failure.
 *
 * Scans and checkpoints join the loop. A scanner thread of the child runs full pkv_scan()s with
 * random counts while the writers write and compactions swap the base: every value it is handed
 * must be the one its key was written with (R7), and each writer's head key, present before the
 * scan began and never deleted, must be visited (R8). A checkpointer thread calls
 * pkv_checkpoint() at random moments, telling the parent before the call (the acknowledged
 * steps then are a lower bound) and after its return (one step more than those acknowledged
 * then is an upper bound). The verifier opens the newest checkpoint that returned before the
 * kill: each writer's state there must be E(P) for a P between the bounds (R9: one instant
 * between call and return), its key count exact and pkv_verify() clean. After recovery a full
 * scan of the store must visit exactly the keys of E(pos), each once, with their values (R10).
 *
 * Usage: crashloop [--cycles N] [--seconds N] [--ops N] [--min-ms N] [--max-ms N] [--seed N]
 *                  [--durability process|power|periodic|mixed] [--compact-ms N]
 *                  [--checkpoint-ms N] [--scan-count N] [--dir PARENT] [--keep] [--quiet]
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pkv.h"
#include "stress_util.h"

#define NWRITERS 2
#define VMAGIC 0x4c43504bu
#include "history.h" /* the writer history: keys, values, E(P) */
#define OLD_SAMPLE 256 /* deleted seq keys probed at random per writer per verification */

/* Child -> parent messages; each is one write() of < PIPE_BUF bytes, so they never interleave. */
enum msg_type {
	MSG_ACK = 1,
	MSG_ERR = 2,
	MSG_OPENED = 3,
	MSG_CP_BEGIN = 4, /* val: the checkpoint's number in this cycle; pkv_checkpoint is next */
	MSG_CP_END = 5,   /* val: that number; pkv_checkpoint returned 0 */
	MSG_SCANS = 6     /* val: full scans completed so far */
};
/* MSG_ERR's writer field for the child's other threads. */
#define WHO_COMPACT NWRITERS
#define WHO_OPEN (NWRITERS + 1)
#define WHO_CLOSE (NWRITERS + 2)
#define WHO_SCAN (NWRITERS + 3)
#define WHO_CHECKPOINT (NWRITERS + 4)
struct msg {
	uint32_t type;
	uint32_t writer;
	uint64_t val; /* MSG_ACK: steps done by the writer; MSG_ERR: step number */
	int64_t code;
};

/* Verifier -> parent. */
struct vresult {
	uint64_t pos[NWRITERS];
	uint64_t passed, failed;
	uint64_t unacked_recovered; /* writers whose state was E(A + 1) */
	pkv_stats st;
	double open_s;
	bool cp_checked; /* a checkpoint was opened and checked */
};

/* The newest checkpoint that returned in the cycle, and the bounds of its instant (R9). */
struct cp_info {
	bool have;
	uint64_t num;
	uint64_t lo[NWRITERS], hi[NWRITERS];
};

struct cfg {
	uint64_t cycles;
	double seconds;
	uint64_t ops;
	double min_ms, max_ms;
	uint64_t seed;
	int durability; /* enum pkv_durability, or -1 for "mixed" */
	unsigned compact_ms;
	unsigned checkpoint_ms;
	unsigned scan_count;
	const char *parent;
	bool keep;
	bool quiet;
};

static struct cfg cfg = {
	.cycles = 20,
	.seconds = 0,
	.ops = 0,
	.min_ms = 0,
	.max_ms = 200,
	.seed = 1,
	.durability = -1,
	.compact_ms = 40,
	.checkpoint_ms = 60,
	.scan_count = 64,
	.parent = NULL,
	.keep = false,
	.quiet = false,
};

static char dir[4096];

/* Where checkpoint @num of @cycle goes: next to the store. */
static void cp_path(char *buf, size_t cap, uint64_t cycle, uint64_t num)
{
	snprintf(buf, cap, "%s.cp%" PRIu64 "-%" PRIu64, dir, cycle, num);
}

/* ---- writer child ----------------------------------------------------------------------- */

struct child {
	pkv *db;
	int fd;
	uint64_t cycle;
	uint64_t start[NWRITERS];
	atomic_int stop;
};

static void send_msg(int fd, uint32_t type, uint32_t w, uint64_t val, int64_t code)
{
	struct msg m = { .type = type, .writer = w, .val = val, .code = code };

	su_send(fd, &m, sizeof(m));
}

struct wctx {
	struct child *c;
	unsigned w;
};

static void *child_writer(void *arg)
{
	struct wctx *x = arg;
	struct child *c = x->c;
	unsigned w = x->w;
	unsigned char *val = malloc(MAX_VAL);
	pkv_batch *b = NULL;
	char key[64];

	if (val == NULL || pkv_batch_new(&b) != 0) {
		send_msg(c->fd, MSG_ERR, w, 0, -ENOMEM);
		_exit(3);
	}
	for (uint64_t p = c->start[w];; p++) {
		uint64_t n = p / 3;
		size_t klen, vlen;
		int rc = 0, want = 0;

		if (cfg.ops != 0 && p - c->start[w] >= cfg.ops)
			break;
		if (p % 3 == 0 && hist_is_batch(w, n)) { /* history.h: three steps, one write */
			rc = hist_batch_build(b, w, n, val);
			if (rc == 0)
				rc = pkv_write(c->db, b, 0, NULL);
			if (rc != 0) {
				send_msg(c->fd, MSG_ERR, w, p, rc);
				_exit(3);
			}
			p += 2;
			send_msg(c->fd, MSG_ACK, w, p + 1, 0);
			continue;
		}
		switch (p % 3) {
		case 0:
			klen = seq_key(w, n, key);
			vlen = make_value(w, n, KIND_SEQ, val);
			/* Every other single put expires, far away: the same state, another record. */
			rc = n % 2 ? pkv_put_expire(c->db, key, klen, val, vlen, HIST_FAR_EXPIRY, 0)
				   : pkv_put(c->db, key, klen, val, vlen);
			break;
		case 1:
			if (n >= DEL_LAG) {
				klen = seq_key(w, n - DEL_LAG, key);
				rc = pkv_del(c->db, key, klen);
			}
			break;
		default:
			klen = head_key(w, key);
			vlen = make_value(w, n, KIND_HEAD, val);
			rc = pkv_put(c->db, key, klen, val, vlen);
			break;
		}
		if (rc != want) {
			send_msg(c->fd, MSG_ERR, w, p, rc);
			_exit(3);
		}
		send_msg(c->fd, MSG_ACK, w, p + 1, 0);
	}
	pkv_batch_free(b);
	free(val);
	return NULL;
}

static void *child_compactor(void *arg)
{
	struct child *c = arg;
	struct su_rng rng;

	su_rng_seed(&rng, (uint64_t)getpid() * 2654435761u);
	while (!atomic_load(&c->stop)) {
		int rc;

		su_sleep_ms((double)su_rng_below(&rng, 2 * cfg.compact_ms + 1));
		if (atomic_load(&c->stop))
			break;
		rc = pkv_compact(c->db);
		if (rc != 0) {
			send_msg(c->fd, MSG_ERR, WHO_COMPACT, 0, rc);
			_exit(3);
		}
	}
	return NULL;
}

/* R7: is @val what key @key was written with? (A seq key's n is in its name; a head's is not.) */
static bool value_matches(const void *key, size_t klen, const void *val, size_t vlen)
{
	char k[64];
	struct vhdr h;
	unsigned w;
	unsigned long long n;
	int used = 0;

	if (klen >= sizeof(k) || vlen < HDR)
		return false;
	memcpy(k, key, klen);
	k[klen] = '\0';
	memcpy(&h, val, HDR);
	if (h.magic != VMAGIC || HDR + h.body_len != vlen ||
	    su_fnv(su_fnv(SU_FNV_INIT, &h, 24), (const unsigned char *)val + HDR, h.body_len) != h.sum)
		return false;
	if (sscanf(k, "w%u/seq/%llu%n", &w, &n, &used) == 2 && (size_t)used == klen)
		return h.writer == w && h.kind == KIND_SEQ && h.n == n;
	if (sscanf(k, "w%u/head%n", &w, &used) == 1 && (size_t)used == klen)
		return h.writer == w && h.kind == KIND_HEAD;
	return false;
}

struct scan_state {
	bool bad;
	unsigned heads_seen[NWRITERS];
	size_t visits;
};

static int scan_visit(void *arg, const void *key, size_t klen, const void *val, size_t vlen,
		      uint64_t seq)
{
	struct scan_state *st = arg;
	char head[64];

	st->visits++;
	if (seq == 0 || !value_matches(key, klen, val, vlen)) {
		st->bad = true;
		return 1;
	}
	for (unsigned w = 0; w < NWRITERS; w++)
		if (klen == head_key(w, head) && memcmp(key, head, klen) == 0)
			st->heads_seen[w]++;
	return 0;
}

/* R7, R8: full scans while the writers write and the compactor compacts. */
static void *child_scanner(void *arg)
{
	struct child *c = arg;
	struct su_rng rng;
	uint64_t scans = 0;
	char head[64];

	su_rng_seed(&rng, (uint64_t)getpid() * 0x9E3779B97F4A7C15ull + 1);
	while (!atomic_load(&c->stop)) {
		struct scan_state st = { 0 };
		bool had_head[NWRITERS];
		uint64_t cursor = 0;
		size_t vlen;
		int rc;

		for (unsigned w = 0; w < NWRITERS; w++)
			had_head[w] = pkv_get(c->db, head, head_key(w, head), NULL, 0, &vlen) == 0;
		do {
			rc = pkv_scan(c->db, &cursor, 1 + su_rng_below(&rng, cfg.scan_count), scan_visit,
				      &st);
		} while (rc == 0 && cursor != 0 && !atomic_load(&c->stop));
		if (rc != 0) {
			send_msg(c->fd, MSG_ERR, WHO_SCAN, 7, st.bad ? -1 : rc); /* R7 */
			_exit(3);
		}
		if (cursor != 0)
			break; /* stopped mid-scan */
		for (unsigned w = 0; w < NWRITERS; w++) {
			if (had_head[w] && st.heads_seen[w] == 0) { /* R8 */
				send_msg(c->fd, MSG_ERR, WHO_SCAN, 8, w);
				_exit(3);
			}
		}
		send_msg(c->fd, MSG_SCANS, 0, ++scans, 0);
	}
	return NULL;
}

/* R9: checkpoints at random moments, bracketed by messages to the parent. */
static void *child_checkpointer(void *arg)
{
	struct child *c = arg;
	struct su_rng rng;
	char path[4200];

	su_rng_seed(&rng, (uint64_t)getpid() * 0x9E3779B97F4A7C15ull + 2);
	for (uint64_t num = 0; !atomic_load(&c->stop); num++) {
		int rc;

		su_sleep_ms((double)su_rng_below(&rng, 2 * cfg.checkpoint_ms + 1));
		if (atomic_load(&c->stop))
			break;
		cp_path(path, sizeof(path), c->cycle, num);
		send_msg(c->fd, MSG_CP_BEGIN, 0, num, 0);
		rc = pkv_checkpoint(c->db, path);
		if (rc != 0) {
			send_msg(c->fd, MSG_ERR, WHO_CHECKPOINT, num, rc);
			_exit(3);
		}
		send_msg(c->fd, MSG_CP_END, 0, num, 0);
	}
	return NULL;
}

static void child_main(int fd, const uint64_t *start, enum pkv_durability d, uint64_t cycle)
{
	struct child c = { .fd = fd, .cycle = cycle };
	pthread_t wt[NWRITERS], ct, st, kt;
	struct wctx x[NWRITERS];
	pkv_options opts;
	int rc;

	pkv_options_default(&opts);
	opts.durability = d;
	opts.sync_interval_ms = 10;
	rc = pkv_open(dir, &opts, &c.db);
	if (rc != 0) {
		send_msg(fd, MSG_ERR, WHO_OPEN, 0, rc);
		_exit(3);
	}
	send_msg(fd, MSG_OPENED, 0, 0, 0);
	for (unsigned w = 0; w < NWRITERS; w++) {
		c.start[w] = start[w];
		x[w] = (struct wctx){ .c = &c, .w = w };
	}
	for (unsigned w = 0; w < NWRITERS; w++)
		if (pthread_create(&wt[w], NULL, child_writer, &x[w]) != 0)
			_exit(5);
	if (cfg.compact_ms != 0 && pthread_create(&ct, NULL, child_compactor, &c) != 0)
		_exit(5);
	if (cfg.scan_count != 0 && pthread_create(&st, NULL, child_scanner, &c) != 0)
		_exit(5);
	if (cfg.checkpoint_ms != 0 && pthread_create(&kt, NULL, child_checkpointer, &c) != 0)
		_exit(5);
	/* Only with --ops do the writers finish; then close cleanly and exit 0. */
	for (unsigned w = 0; w < NWRITERS; w++)
		pthread_join(wt[w], NULL);
	atomic_store(&c.stop, 1);
	if (cfg.compact_ms != 0)
		pthread_join(ct, NULL);
	if (cfg.scan_count != 0)
		pthread_join(st, NULL);
	if (cfg.checkpoint_ms != 0)
		pthread_join(kt, NULL);
	rc = pkv_close(c.db);
	if (rc != 0) {
		send_msg(fd, MSG_ERR, WHO_CLOSE, 0, rc);
		_exit(3);
	}
	exit(0);
}

/* ---- verifier child --------------------------------------------------------------------- */

/* A difference hist_state_is() found: a failure, with the store it was found in. */
static void report_fail(void *failed, const char *msg)
{
	su_fail(failed, "%s %s", dir, msg);
}

static void check_all(pkv *db, const uint64_t *pos, struct su_rng *rng, unsigned char *buf,
		      struct vresult *r, const char *when)
{
	pkv_stats st;
	uint64_t want = hist_expected_keys(pos);
	int rc;

	for (unsigned w = 0; w < NWRITERS; w++)
		if (hist_state_is(db, w, pos[w], rng, OLD_SAMPLE, buf, report_fail, &r->failed))
			r->passed++;
	rc = pkv_get_stats(db, &st);
	if (rc != 0)
		su_fail(&r->failed, "%s: pkv_get_stats = %d (%s)", when, rc, pkv_strerror(rc));
	else if (st.keys != want)
		su_fail(&r->failed, "%s R4: stats.keys = %" PRIu64 ", expected %" PRIu64, when,
			st.keys, want);
	else
		r->passed++;
}

/* R10: a full scan visits exactly the keys of E(pos), each once, with their values. */
struct expect_scan {
	uint64_t lo[NWRITERS], hi[NWRITERS], heads[NWRITERS];
	unsigned char *seen[NWRITERS]; /* one byte per seq key in [lo, hi) */
	unsigned head_seen[NWRITERS];
	uint64_t bad, dup, unexpected;
};

static int expect_visit(void *arg, const void *key, size_t klen, const void *val, size_t vlen,
			uint64_t seq)
{
	struct expect_scan *e = arg;
	char k[64];
	unsigned w;
	unsigned long long n;
	int used = 0;

	if (seq == 0 || !value_matches(key, klen, val, vlen)) {
		e->bad++;
		return 0;
	}
	memcpy(k, key, klen); /* value_matches checked klen < 64 */
	k[klen] = '\0';
	if (sscanf(k, "w%u/seq/%llu%n", &w, &n, &used) == 2 && (size_t)used == klen &&
	    w < NWRITERS && n >= e->lo[w] && n < e->hi[w]) {
		if (e->seen[w][n - e->lo[w]]++)
			e->dup++;
	} else if (sscanf(k, "w%u/head%n", &w, &used) == 1 && (size_t)used == klen &&
		   w < NWRITERS && e->heads[w] > 0) {
		if (e->head_seen[w]++)
			e->dup++;
	} else {
		e->unexpected++;
	}
	return 0;
}

static void check_scan(pkv *db, const uint64_t *pos, struct vresult *r, const char *what)
{
	struct expect_scan e = { 0 };
	uint64_t cursor = 0, missing = 0;
	int rc;

	for (unsigned w = 0; w < NWRITERS; w++) {
		expected(pos[w], &e.lo[w], &e.hi[w], &e.heads[w]);
		e.seen[w] = calloc(e.hi[w] - e.lo[w] + 1, 1);
		if (e.seen[w] == NULL)
			_exit(5);
	}
	do
		rc = pkv_scan(db, &cursor, 97, expect_visit, &e);
	while (rc == 0 && cursor != 0);
	for (unsigned w = 0; w < NWRITERS; w++) {
		for (uint64_t n = e.lo[w]; n < e.hi[w]; n++)
			missing += e.seen[w][n - e.lo[w]] == 0;
		missing += e.heads[w] > 0 && e.head_seen[w] == 0;
		free(e.seen[w]);
	}
	if (rc != 0 || e.bad || e.dup || e.unexpected || missing)
		su_fail(&r->failed,
			"%s R10: pkv_scan = %d; %" PRIu64 " wrong values, %" PRIu64
			" keys visited twice, %" PRIu64 " keys not in E(pos), %" PRIu64 " keys missed",
			what, rc, e.bad, e.dup, e.unexpected, missing);
	else
		r->passed++;
}

/* R9: the checkpoint opens to E(P) for each writer, lo <= P <= hi; exact key count; verify. */
static void check_checkpoint(uint64_t cycle, const struct cp_info *cp, struct su_rng *rng,
			     unsigned char *buf, struct vresult *r)
{
	char path[4200];
	uint64_t p[NWRITERS];
	pkv_stats st;
	pkv *db = NULL;
	int rc;

	cp_path(path, sizeof(path), cycle, cp->num);
	rc = pkv_open(path, NULL, &db);
	if (rc != 0) {
		su_fail(&r->failed, "cycle %" PRIu64 " R9: open of checkpoint %s = %d (%s)", cycle,
			path, rc, pkv_strerror(rc));
		return;
	}
	for (unsigned w = 0; w < NWRITERS; w++) {
		bool found = false;

		/* Only the positions between operations: part of a batch is no state (history.h). */
		for (uint64_t q = cp->lo[w]; q <= cp->hi[w] && !found; q = hist_next_pos(w, q)) {
			p[w] = q;
			found = hist_state_is(db, w, q, rng, 0, buf, NULL, NULL);
		}
		if (!found) {
			su_fail(&r->failed,
				"cycle %" PRIu64 " R9: checkpoint %s: writer %u is in no state E(P) "
				"for %" PRIu64 " <= P <= %" PRIu64 "; differences from E(%" PRIu64 "):",
				cycle, path, w, cp->lo[w], cp->hi[w], cp->lo[w]);
			hist_state_is(db, w, cp->lo[w], rng, 0, buf, report_fail, &r->failed);
		} else if (!hist_state_is(db, w, p[w], rng, OLD_SAMPLE, buf, report_fail,
					  &r->failed)) {
			su_fail(&r->failed, "cycle %" PRIu64 " R9: checkpoint %s, writer %u", cycle,
				path, w);
		}
	}
	if (r->failed == 0) {
		rc = pkv_get_stats(db, &st);
		if (rc != 0 || st.keys != hist_expected_keys(p))
			su_fail(&r->failed,
				"cycle %" PRIu64 " R9: checkpoint %s holds %" PRIu64
				" keys, E(P) %" PRIu64,
				cycle, path, st.keys, hist_expected_keys(p));
		rc = pkv_verify(db);
		if (rc != 0)
			su_fail(&r->failed, "cycle %" PRIu64 " R9: pkv_verify(%s) = %d (%s)", cycle,
				path, rc, pkv_strerror(rc));
		check_scan(db, p, r, "checkpoint");
	}
	if (r->failed == 0) {
		r->passed++;
		r->cp_checked = true;
	}
	pkv_close(db);
}

static void verifier_main(int fd, const uint64_t *acked, uint64_t cycle, const struct cp_info *cp)
{
	struct vresult r = { 0 };
	unsigned char *buf = malloc(2 * MAX_VAL);
	struct su_rng rng;
	pkv_options opts;
	pkv *db = NULL, *db2 = NULL;
	double t0;
	int rc;

	su_rng_seed(&rng, cfg.seed ^ (cycle * 0x9E3779B97F4A7C15ull));
	if (buf == NULL)
		_exit(5);
	pkv_options_default(&opts);
	t0 = su_now();
	rc = pkv_open(dir, &opts, &db);
	r.open_s = su_now() - t0;
	if (rc != 0) {
		su_fail(&r.failed, "cycle %" PRIu64 ": reopen of %s = %d (%s)", cycle, dir, rc,
			pkv_strerror(rc));
		goto out;
	}
	r.passed++;
	if (pkv_get_stats(db, &r.st) != 0)
		memset(&r.st, 0, sizeof(r.st));

	for (unsigned w = 0; w < NWRITERS; w++) {
		/* After a batch's steps were acknowledged or not, never part of them (history.h). */
		uint64_t next = hist_next_pos(w, acked[w]);

		if (hist_state_is(db, w, next, &rng, OLD_SAMPLE, buf, NULL, NULL)) {
			r.pos[w] = next;
			r.unacked_recovered++;
		} else if (hist_state_is(db, w, acked[w], &rng, OLD_SAMPLE, buf, NULL, NULL)) {
			r.pos[w] = acked[w];
		} else {
			printf("cycle %" PRIu64 ": writer %u had %" PRIu64
			       " acknowledged steps; the recovered state is neither E(%" PRIu64
			       ") nor E(%" PRIu64 ")%s; differences from E(%" PRIu64 "):\n",
			       cycle, w, acked[w], acked[w], next,
			       next > acked[w] + 1 ? " (a batch: all or nothing)" : "", acked[w]);
			hist_state_is(db, w, acked[w], &rng, OLD_SAMPLE, buf, report_fail,
				      &r.failed);
			r.pos[w] = acked[w];
		}
	}
	if (r.failed != 0)
		goto out;
	check_all(db, r.pos, &rng, buf, &r, "after recovery");
	check_scan(db, r.pos, &r, "after recovery");
	if (cp->have)
		check_checkpoint(cycle, cp, &rng, buf, &r);

	/* R6, once: the directory is in use, so a second open is refused. */
	if (cycle == 0) {
		rc = pkv_open(dir, &opts, &db2);
		if (rc != PKV_ELOCKED) {
			su_fail(&r.failed,
				"R6: second pkv_open of a directory in use = %d (%s), expected PKV_ELOCKED",
				rc, pkv_strerror(rc));
			if (rc == 0)
				pkv_close(db2);
		} else {
			r.passed++;
		}
	}
	/* R5: every few cycles, compact after recovery (the next child starts from a snapshot). */
	if (cycle % 4 == 3) {
		rc = pkv_compact(db);
		if (rc != 0)
			su_fail(&r.failed, "R5: pkv_compact after recovery = %d (%s)", rc,
				pkv_strerror(rc));
		else
			check_all(db, r.pos, &rng, buf, &r, "R5 after compact");
	}
out:
	if (db != NULL) {
		rc = pkv_close(db);
		if (rc != 0)
			su_fail(&r.failed, "verifier: pkv_close = %d (%s)", rc, pkv_strerror(rc));
	}
	free(buf);
	su_send(fd, &r, sizeof(r));
	exit(0);
}

/* ---- parent ----------------------------------------------------------------------------- */

struct cycle_out {
	uint64_t acked_steps; /* steps acknowledged in this cycle, both writers */
	double killed_after_ms; /* or, if it exited by itself, its run time */
	bool opened; /* the child finished pkv_open before it died */
	bool exited; /* the child exited by itself (only with --ops) */
	uint64_t cp_begun, cp_done; /* checkpoints begun (and so made, maybe in part), returned */
	uint64_t scans;             /* full scans the child completed */
};

/* Run one writer child; on return acked[] holds the acknowledged step counts. */
static bool run_writer(uint64_t cycle, enum pkv_durability d, uint64_t *acked, struct su_rng *rng,
		       struct cycle_out *co, struct cp_info *cp, uint64_t *passed, uint64_t *failed)
{
	uint64_t cp_lo[NWRITERS] = { 0 }, cp_num = UINT64_MAX;
	double delay = cfg.min_ms +
		       (cfg.max_ms - cfg.min_ms) * (double)su_rng_below(rng, 10001) / 10000.0;
	struct su_msgs in = { 0 };
	bool killed = false, ok = true;
	uint64_t before = acked[0] + acked[1];
	double t0, kill_at;
	int wfd, status;
	pid_t pid;

	pid = su_fork_pipe(&in.fd, &wfd);
	if (pid == 0)
		child_main(wfd, acked, d, cycle);
	t0 = su_now();
	kill_at = t0 + delay / 1000.0;
	for (;;) {
		double now = su_now();
		struct msg m;
		int got;

		if (!killed && now >= kill_at) {
			kill(pid, SIGKILL);
			killed = true;
			co->killed_after_ms = (now - t0) * 1000.0;
		}
		got = su_msgs_fill(&in, killed ? -1 : (int)((kill_at - now) * 1000.0) + 1);
		if (got < 0) {
			if (!killed) /* the child ended by itself */
				co->killed_after_ms = (su_now() - t0) * 1000.0;
			break;
		}
		while (su_msgs_next(&in, &m, sizeof(m), true)) {
			/* One step, or a batch's three at once (history.h). */
			if (m.type == MSG_ACK && m.writer < NWRITERS &&
			    m.val == hist_next_pos(m.writer, acked[m.writer])) {
				acked[m.writer] = m.val;
			} else if (m.type == MSG_OPENED) {
				co->opened = true;
			} else if (m.type == MSG_CP_BEGIN) {
				/* Every ack before this message was for a write done before the call. */
				memcpy(cp_lo, acked, sizeof(cp_lo));
				cp_num = m.val;
				co->cp_begun = m.val + 1;
			} else if (m.type == MSG_CP_END && m.val == cp_num) {
				/* An operation begun before the return had its predecessor's ack sent
				 * before this message: at most one operation (one step, or a batch's
				 * three) past the acks so far. */
				cp->have = true;
				cp->num = m.val;
				for (unsigned w = 0; w < NWRITERS; w++) {
					cp->lo[w] = cp_lo[w];
					cp->hi[w] = hist_next_pos(w, acked[w]);
				}
				co->cp_done++;
			} else if (m.type == MSG_SCANS) {
				co->scans = m.val;
			} else if (m.type == MSG_ERR) {
				ok = false;
				if (m.writer < NWRITERS)
					su_fail(failed,
						"cycle %" PRIu64 ": writer %u step %" PRIu64
						" returned %" PRId64 " (%s)",
						cycle, m.writer, m.val, m.code,
						pkv_strerror((int)m.code));
				else
					su_fail(failed,
						"cycle %" PRIu64 ": child %s returned %" PRId64
						" (%s)",
						cycle,
						m.writer == WHO_COMPACT ? "pkv_compact" :
						m.writer == WHO_OPEN ? "pkv_open" :
						m.writer == WHO_CLOSE ? "pkv_close" :
						m.writer == WHO_SCAN ?
							(m.val == 8 ? "R8: a scan missed a head key; "
								      "pkv_scan" :
								      "R7: pkv_scan (-1: a wrong "
								      "value)") :
							"pkv_checkpoint",
						m.code, pkv_strerror((int)m.code));
			} else {
				ok = false;
				su_fail(failed,
					"cycle %" PRIu64
					": garbled message from the child (type %u, writer %u, val %" PRIu64
					")",
					cycle, m.type, m.writer, m.val);
			}
		}
	}
	close(in.fd);
	status = su_wait(pid);
	if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL && killed) {
		/* the expected end */
	} else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		co->exited = true;
	} else {
		ok = false;
		if (WIFSIGNALED(status))
			su_fail(failed, "cycle %" PRIu64 ": writer child died of signal %d", cycle,
				WTERMSIG(status));
		else if (WEXITSTATUS(status) != 3) /* 3 was reported above */
			su_fail(failed, "cycle %" PRIu64 ": writer child exited with status %d",
				cycle, WEXITSTATUS(status));
	}
	if (ok)
		(*passed)++;
	co->acked_steps = acked[0] + acked[1] - before;
	return ok;
}

static bool run_verifier(uint64_t cycle, const uint64_t *acked, const struct cp_info *cp,
			 struct vresult *r)
{
	char why[128];
	int rfd, wfd;
	pid_t pid;

	pid = su_fork_pipe(&rfd, &wfd);
	if (pid == 0)
		verifier_main(wfd, acked, cycle, cp);
	if (su_collect(pid, rfd, r, sizeof(*r), why, sizeof(why), NULL))
		return true;
	printf("FAIL: cycle %" PRIu64 ": verifier %s\n", cycle, why);
	return false;
}

static const struct su_opt options[] = {
	SU_OPT("cycles", SU_OPT_U64, &cfg.cycles, "kill/recover cycles (default 20)"),
	SU_OPT("seconds", SU_OPT_DOUBLE, &cfg.seconds,
	       "stop starting cycles after N seconds (0: no bound)"),
	SU_OPT("ops", SU_OPT_U64, &cfg.ops,
	       "each child writer stops after N steps, then the child closes\n"
	       "the store and exits (0: run until killed)"),
	SU_OPT("min-ms", SU_OPT_DOUBLE, &cfg.min_ms,
	       "SIGKILL the child at least this long after fork (default 0)"),
	SU_OPT("max-ms", SU_OPT_DOUBLE, &cfg.max_ms,
	       "SIGKILL the child at most this long after fork (default 200)"),
	SU_OPT("seed", SU_OPT_U64, &cfg.seed, "kill times and writer values (default 1)"),
	SU_OPT("durability", SU_OPT_DURABILITY, &cfg.durability,
	       "mode of the writer child: process, power, periodic or mixed\n"
	       "(default mixed: rotates per cycle)",
	       .arg = "MODE", .word = "mixed"),
	SU_OPT("compact-ms", SU_OPT_UINT, &cfg.compact_ms,
	       "mean period of pkv_compact() in the child (0: none; default 40)", .max = 3600000),
	SU_OPT("checkpoint-ms", SU_OPT_UINT, &cfg.checkpoint_ms,
	       "mean period of pkv_checkpoint() in the child (0: none; default 60)",
	       .max = 3600000),
	SU_OPT("scan-count", SU_OPT_UINT, &cfg.scan_count,
	       "a scanner thread runs full pkv_scan()s with counts 1..N (0: none; default 64)",
	       .max = 1000000),
	SU_OPT("dir", SU_OPT_STR, &cfg.parent,
	       "create the store in a new temporary directory under PARENT", .arg = "PARENT"),
	SU_OPT("keep", SU_OPT_FLAG, &cfg.keep, "keep the store directory"),
	SU_OPT("quiet", SU_OPT_FLAG, &cfg.quiet,
	       "no line per cycle: only failures and the figures"),
	SU_OPT_END
};

int main(int argc, char **argv)
{
	uint64_t pos[NWRITERS] = { 0 };
	uint64_t passed = 0, failed = 0, cycles = 0, acked_total = 0, unacked_total = 0;
	uint64_t replayed = 0, discarded = 0, discarded_bytes = 0, killed_in_open = 0, exits = 0;
	uint64_t cps = 0, cps_checked = 0, scans = 0;
	double t0, max_open = 0;
	struct su_rng rng;

	setvbuf(stdout, NULL, _IOLBF, 0);
	su_opts_parse(argc, argv, "crashloop", options, NULL);
	if (cfg.max_ms < cfg.min_ms)
		su_usage_error("--max-ms %g is below --min-ms %g", cfg.max_ms, cfg.min_ms);
	if (su_workdir(dir, sizeof(dir), cfg.parent, "crashloop") != 0) {
		perror("crashloop: mkdtemp");
		return 2;
	}
	su_rng_seed(&rng, cfg.seed);
	printf("crashloop: store %s, %" PRIu64
	       " cycles, kill after %.0f..%.0f ms, durability %s, seed %" PRIu64 "\n",
	       dir, cfg.cycles, cfg.min_ms, cfg.max_ms,
	       cfg.durability < 0 ? "mixed" :
				    su_durability_name((enum pkv_durability)cfg.durability),
	       cfg.seed);

	t0 = su_now();
	for (uint64_t cycle = 0; cycle < cfg.cycles; cycle++) {
		enum pkv_durability d = cfg.durability >= 0 ? (enum pkv_durability)cfg.durability :
							      (enum pkv_durability)(cycle % 3);
		uint64_t acked[NWRITERS] = { pos[0], pos[1] };
		struct cycle_out co = { 0 };
		struct cp_info cp = { 0 };
		struct vresult r;

		if (cfg.seconds > 0 && su_now() - t0 >= cfg.seconds)
			break;
		if (!run_writer(cycle, d, acked, &rng, &co, &cp, &passed, &failed))
			break;
		cps += co.cp_done;
		scans += co.scans;
		cycles++;
		acked_total += co.acked_steps;
		killed_in_open += !co.opened;
		exits += co.exited;
		if (!run_verifier(cycle, acked, &cp, &r)) {
			failed++;
			break;
		}
		cps_checked += r.cp_checked;
		/* The cycle's checkpoints, whole or cut by the kill, go (unless a failure keeps them). */
		for (uint64_t num = 0; num < co.cp_begun && r.failed == 0; num++) {
			char path[4200];

			cp_path(path, sizeof(path), cycle, num);
			su_rmtree(path);
		}
		passed += r.passed;
		failed += r.failed;
		if (r.failed != 0) {
			printf("cycle %" PRIu64 ": stopping; the store is kept in %s\n", cycle,
			       dir);
			cfg.keep = true;
			break;
		}
		unacked_total += r.unacked_recovered;
		replayed += r.st.recovered_records;
		discarded += r.st.discarded_records;
		discarded_bytes += r.st.discarded_bytes;
		if (r.open_s > max_open)
			max_open = r.open_s;
		if (!cfg.quiet)
			printf("cycle %3" PRIu64 " %-8s %s after %6.1f ms: +%-6" PRIu64
			       " acked steps; recovered at w0 %" PRIu64 " w1 %" PRIu64
			       "; replayed %" PRIu64 ", discarded %" PRIu64 " (%" PRIu64
			       " bytes), gap %" PRIu64 ", open %.1f ms\n",
			       cycle, su_durability_name(d), co.exited ? "exited" : "killed",
			       co.killed_after_ms, co.acked_steps, r.pos[0], r.pos[1],
			       r.st.recovered_records, r.st.discarded_records, r.st.discarded_bytes,
			       r.st.recovery_gap_seq, r.open_s * 1000.0);
		pos[0] = r.pos[0];
		pos[1] = r.pos[1];
	}

	printf("crashloop: %" PRIu64 " cycles in %.1f s (%" PRIu64
	       " killed before pkv_open returned, %" PRIu64 " clean exits); %" PRIu64
	       " acknowledged steps, final positions w0 %" PRIu64 " w1 %" PRIu64 "; %" PRIu64
	       " times a done-but-unacknowledged step survived\n",
	       cycles, su_now() - t0, killed_in_open, exits, acked_total, pos[0], pos[1],
	       unacked_total);
	printf("recovery: %" PRIu64 " records replayed, %" PRIu64 " discarded (%" PRIu64
	       " bytes) in total; slowest open %.1f ms\n",
	       replayed, discarded, discarded_bytes, max_open * 1000.0);
	printf("scans and checkpoints: %" PRIu64 " full scans during the writes; %" PRIu64
	       " checkpoints returned, %" PRIu64 " of them (the newest of a cycle) opened and "
	       "checked\n",
	       scans, cps, cps_checked);
	if (cfg.keep)
		printf("store kept in %s\n", dir);
	else
		su_rmtree(dir);
	if (passed == 0 && failed == 0)
		failed = 1;
	printf("%" PRIu64 " passed, %" PRIu64 " failed\n", passed, failed);
	return failed == 0 ? 0 : 1;
}
