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
 * Usage: crashloop [--cycles N] [--seconds N] [--ops N] [--min-ms N] [--max-ms N] [--seed N]
 *                  [--durability process|power|periodic|mixed] [--compact-ms N] [--dir PARENT]
 *                  [--keep] [--quiet]
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
	MSG_OPENED = 3
};
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
};

struct cfg {
	uint64_t cycles;
	double seconds;
	uint64_t ops;
	double min_ms, max_ms;
	uint64_t seed;
	int durability; /* enum pkv_durability, or -1 for "mixed" */
	unsigned compact_ms;
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
	.parent = NULL,
	.keep = false,
	.quiet = false,
};

static char dir[4096];

/* ---- writer child ----------------------------------------------------------------------- */

struct child {
	pkv *db;
	int fd;
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
	char key[64];

	if (val == NULL) {
		send_msg(c->fd, MSG_ERR, w, 0, -ENOMEM);
		_exit(3);
	}
	for (uint64_t p = c->start[w];; p++) {
		uint64_t n = p / 3;
		size_t klen, vlen;
		int rc = 0, want = 0;

		if (cfg.ops != 0 && p - c->start[w] >= cfg.ops)
			break;
		switch (p % 3) {
		case 0:
			klen = seq_key(w, n, key);
			vlen = make_value(w, n, KIND_SEQ, val);
			rc = pkv_put(c->db, key, klen, val, vlen);
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
			send_msg(c->fd, MSG_ERR, NWRITERS, 0, rc);
			_exit(3);
		}
	}
	return NULL;
}

static void child_main(int fd, const uint64_t *start, enum pkv_durability d)
{
	struct child c = { .fd = fd };
	pthread_t wt[NWRITERS], ct;
	struct wctx x[NWRITERS];
	pkv_options opts;
	int rc;

	pkv_options_default(&opts);
	opts.durability = d;
	opts.sync_interval_ms = 10;
	rc = pkv_open(dir, &opts, &c.db);
	if (rc != 0) {
		send_msg(fd, MSG_ERR, NWRITERS + 1, 0, rc);
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
	/* Only with --ops do the writers finish; then close cleanly and exit 0. */
	for (unsigned w = 0; w < NWRITERS; w++)
		pthread_join(wt[w], NULL);
	atomic_store(&c.stop, 1);
	if (cfg.compact_ms != 0)
		pthread_join(ct, NULL);
	rc = pkv_close(c.db);
	if (rc != 0) {
		send_msg(fd, MSG_ERR, NWRITERS + 2, 0, rc);
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

static void verifier_main(int fd, const uint64_t *acked, uint64_t cycle)
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
		if (hist_state_is(db, w, acked[w] + 1, &rng, OLD_SAMPLE, buf, NULL, NULL)) {
			r.pos[w] = acked[w] + 1;
			r.unacked_recovered++;
		} else if (hist_state_is(db, w, acked[w], &rng, OLD_SAMPLE, buf, NULL, NULL)) {
			r.pos[w] = acked[w];
		} else {
			printf("cycle %" PRIu64 ": writer %u had %" PRIu64
			       " acknowledged steps; the recovered state is neither E(%" PRIu64
			       ") nor E(%" PRIu64 "); differences from E(%" PRIu64 "):\n",
			       cycle, w, acked[w], acked[w], acked[w] + 1, acked[w]);
			hist_state_is(db, w, acked[w], &rng, OLD_SAMPLE, buf, report_fail,
				      &r.failed);
			r.pos[w] = acked[w];
		}
	}
	if (r.failed != 0)
		goto out;
	check_all(db, r.pos, &rng, buf, &r, "after recovery");

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
};

/* Run one writer child; on return acked[] holds the acknowledged step counts. */
static bool run_writer(uint64_t cycle, enum pkv_durability d, uint64_t *acked, struct su_rng *rng,
		       struct cycle_out *co, uint64_t *passed, uint64_t *failed)
{
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
		child_main(wfd, acked, d);
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
			if (m.type == MSG_ACK && m.writer < NWRITERS &&
			    m.val == acked[m.writer] + 1) {
				acked[m.writer] = m.val;
			} else if (m.type == MSG_OPENED) {
				co->opened = true;
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
						m.writer == NWRITERS	 ? "pkv_compact" :
						m.writer == NWRITERS + 1 ? "pkv_open" :
									   "pkv_close",
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

static bool run_verifier(uint64_t cycle, const uint64_t *acked, struct vresult *r)
{
	char why[128];
	int rfd, wfd;
	pid_t pid;

	pid = su_fork_pipe(&rfd, &wfd);
	if (pid == 0)
		verifier_main(wfd, acked, cycle);
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
		struct vresult r;

		if (cfg.seconds > 0 && su_now() - t0 >= cfg.seconds)
			break;
		if (!run_writer(cycle, d, acked, &rng, &co, &passed, &failed))
			break;
		cycles++;
		acked_total += co.acked_steps;
		killed_in_open += !co.opened;
		exits += co.exited;
		if (!run_verifier(cycle, acked, &r)) {
			failed++;
			break;
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
	if (cfg.keep)
		printf("store kept in %s\n", dir);
	else
		su_rmtree(dir);
	if (passed == 0 && failed == 0)
		failed = 1;
	printf("%" PRIu64 " passed, %" PRIu64 " failed\n", passed, failed);
	return failed == 0 ? 0 : 1;
}
