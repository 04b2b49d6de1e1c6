/* SPDX-License-Identifier: MIT */
/*
 * powerloss.c - power-loss torture: the disk image a power cut leaves (tests/powerfs.h) must
 * open, and hold every writer's history as a prefix; under PKV_DURABLE_POWER a prefix that
 * includes every acknowledged write.
 *
 * One store directory per durability mode, many cycles. Each cycle the parent (which never
 * calls into pkv: a process that forks must not have pkv's threads) forks a writer child that
 * installs faultfs with the power-loss simulator, opens the store in the mode under test and
 * runs 2 writer threads, a thread calling pkv_compact() at random moments and the store's own
 * background compaction (a small compact_wal_bytes); every write that returned is reported to
 * the parent through a pipe. The power is cut at a random faultfs operation (FFS_CRASH at N,
 * on whichever thread reaches it) or at a random time (a timer thread): the simulator writes the
 * disk image and the child exits. The parent puts the image in place of the store directory and
 * forks a verifier with the production file-system table, which opens it and checks it: three
 * times in four read-only, so that the next writer child recovers the torn image itself, under
 * the simulator (its repairs can be cut too); the fourth time read-write, repairing and
 * compacting it. The next cycle goes on from the verified state: recovery of what the last
 * recovery left.
 *
 * History of writer w (as stress/crashloop.c): steps p = 0, 1, 2, ...; step p belongs to
 * operation n = p / 3:
 *   p = 3n     put  "w<w>/seq/<n>"   value(w, n)
 *   p = 3n + 1 del  "w<w>/seq/<n-D>" (D = 16; a no-op step while n < D)
 *   p = 3n + 2 put  "w<w>/head"      value(w, n)
 * After the first P steps, writer w's keys are exactly E(P). A writer acknowledges step p
 * (sends p + 1) only after its call returned, and starts step p + 1 only after that, so with A
 * steps acknowledged and S steps in place when the cycle started, the verifier must find E(P)
 * for some P:
 *   PKV_DURABLE_POWER     P = A or A + 1 (no acknowledged write lost; one more may be done);
 *   PROCESS and PERIODIC  max(S, D) <= P <= A + 1: acknowledged writes may be lost, always a
 *                         suffix, but never what the cycle started with (that was all on the
 *                         disk), nor the D steps acknowledged as durable: now and then a write
 *                         is made with PKV_WRITE_POWER, or a step is followed by pkv_sync()
 *                         before it is acknowledged.
 * Anything else is a lost write, a hole, a resurrected delete or a wrong value. The store's key
 * count must match E(P) exactly, pkv_verify() must pass, and the open must succeed: a torn,
 * unsynced tail is not corruption, so PKV_ECORRUPT is a failure (and a finding).
 *
 * Usage: powerloss [--mode power|process|periodic|all] [--cycles N] [--seconds S] [--seed N]
 *                  [--max-ms N] [--compact-ms N] [--elide-syncs] [--dir PARENT] [--keep]
 *                  [--quiet]
 *        powerloss --open DIR      open a kept image read-only and print what recovery says
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
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
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pkv.h"
#include "powerfs.h"
#include "stress_util.h"

#define NWRITERS 2
#define VMAGIC 0x4c50504bu
#include "history.h" /* the writer history: keys, values, E(P) */
#define OLD_SAMPLE 64 /* deleted seq keys probed at random per writer per verification */
#define HANG_S 120.0 /* a child silent this long is hung */
#define LOG_CAP 3000

/* Child -> parent messages. Each is one write() of at most PIPE_BUF bytes, so the writers' and
 * the cutting thread's messages never interleave. */
enum msg_type {
	MSG_ACK = 1,
	MSG_ERR = 2,
	MSG_OPENED = 3,
	MSG_CUT = 4
};

struct msg {
	uint32_t type;
	uint32_t writer; /* MSG_ERR: NWRITERS = compact, + 1 = open */
	uint64_t val; /* MSG_ACK: steps done by the writer; MSG_ERR: step number */
	int64_t code; /* MSG_ACK: 1 if these steps are power-loss durable; MSG_ERR: the error */
};

struct cut_msg {
	uint32_t type; /* MSG_CUT */
	uint32_t pad;
	uint64_t ops; /* faultfs operations before the cut */
	uint64_t injected; /* faults faultfs injected (the FFS_CRASH, if that was the cut) */
	struct powerfs_report rep;
};
_Static_assert(sizeof(struct cut_msg) <= 512, "one atomic pipe write");

/* Verifier -> parent. */
struct vresult {
	uint64_t pos[NWRITERS];
	uint64_t lost; /* acknowledged steps not in the state (PROCESS, PERIODIC) */
	uint64_t unacked; /* writers whose state had one step more than acknowledged */
	bool ok;
	int open_rc;
	pkv_stats st;
	char why[2048];
	char log[LOG_CAP];
};

struct cfg {
	int mode; /* enum pkv_durability, or -1 for all three */
	uint64_t cycles;
	double seconds;
	uint64_t seed;
	double max_ms;
	unsigned compact_ms;
	bool elide;
	const char *parent;
	bool keep;
	bool quiet;
	const char *open_dir;
};

static struct cfg cfg = {
	.mode = -1,
	.cycles = 100,
	.seconds = 0,
	.seed = 1,
	.max_ms = 250,
	.compact_ms = 60,
	.elide = false,
	.parent = NULL,
	.keep = false,
	.quiet = false,
	.open_dir = NULL,
};

/* Figures of one mode. */
struct figures {
	uint64_t cycles, passed, failed;
	uint64_t acked; /* acknowledged steps, all checked */
	uint64_t marks; /* acknowledged as durable outside POWER (PKV_WRITE_POWER or pkv_sync) */
	uint64_t lost; /* acknowledged but lost, where the mode allows it */
	uint64_t lost_max; /* most lost by one writer in one cycle */
	double lost_ms_max; /* the longest span of acknowledged history lost (timing: a figure) */
	uint64_t unacked; /* a done-but-unacknowledged step survived */
	uint64_t pages_same, pages_new, pages_old, pages_torn, sizes_new, sizes_old;
	uint64_t dirops_applied, dirops_dropped;
	uint64_t sector_cuts; /* cuts that chose old or new per 512-byte sector, not per page */
	uint64_t planned; /* cycles that armed an FFS_CRASH */
	uint64_t faults; /* FFS_CRASH cuts (faults injected) */
	uint64_t timed; /* timer cuts */
	uint64_t in_open; /* cut before pkv_open returned */
	uint64_t no_ack; /* opened, yet no write acknowledged before the cut */
	uint64_t at_kind[FFS_NOPS];
	uint64_t replayed, discarded, discarded_bytes, gaps;
	uint64_t syncs, dirsyncs;
	double t;
};

#define PL_PATH 4096

static char top[PL_PATH];

/* ---- writer child ----------------------------------------------------------------------- */

/* Where and how a cycle cuts the power. */
struct cut_plan {
	uint64_t crash_at; /* FFS_CRASH at this operation (any thread's), or 0 */
	double cut_ms; /* the timed cut (the fallback of crash_at) */
	unsigned page_bytes; /* the simulator's unit of old/new/torn: 4096, or 512 */
};

struct child {
	pkv *db;
	int fd;
	bool power; /* PKV_DURABLE_POWER: every write is durable on return */
	uint64_t start[NWRITERS];
	uint64_t seed;
	double cut_ms;
};

static void send_msg(int fd, uint32_t type, uint32_t w, uint64_t val, int64_t code)
{
	struct msg m = { .type = type, .writer = w, .val = val, .code = code };

	su_send(fd, &m, sizeof(m));
}

/* The cutting thread, after the image is written: tell the parent what the cut did. */
static void on_cut(void *ctx, const struct powerfs_report *r)
{
	struct cut_msg m = { .type = MSG_CUT, .ops = ffs_total(), .injected = ffs_injected() };

	m.rep = *r;
	su_send(*(int *)ctx, &m, sizeof(m));
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
		uint64_t h = su_hash3(w, p, 0xD0);
		/* Outside POWER, now and then a write asks to be durable on return, or a step is
		 * followed by pkv_sync(): its acknowledgement then says the steps so far survive
		 * power loss. */
		unsigned flags = !c->power && h % 256 == 0 ? PKV_WRITE_POWER : 0;
		bool sync_after = !c->power && (h >> 8) % 512 == 0;
		bool durable = c->power || sync_after;
		size_t klen, vlen;
		int rc = 0;

		/* The power is off: nothing starts any more (at most one step per writer was under
		 * way, and may still be acknowledged: it may be in the image). */
		while (powerfs_cut_started())
			pause();

		switch (p % 3) {
		case 0:
			klen = seq_key(w, n, key);
			vlen = make_value(w, n, KIND_SEQ, val);
			rc = pkv_put_ex(c->db, key, klen, val, vlen, flags);
			durable |= flags != 0;
			break;
		case 1:
			if (n >= DEL_LAG) {
				klen = seq_key(w, n - DEL_LAG, key);
				rc = pkv_del_ex(c->db, key, klen, flags);
				durable |= flags != 0;
			}
			break;
		default:
			klen = head_key(w, key);
			vlen = make_value(w, n, KIND_HEAD, val);
			rc = pkv_put_ex(c->db, key, klen, val, vlen, flags);
			durable |= flags != 0;
			break;
		}
		if (rc == 0 && sync_after)
			rc = pkv_sync(c->db);
		if (rc != 0) {
			send_msg(c->fd, MSG_ERR, w, p, rc);
			_exit(3);
		}
		send_msg(c->fd, MSG_ACK, w, p + 1, durable);
	}
	return NULL;
}

static void *child_compactor(void *arg)
{
	struct child *c = arg;
	struct su_rng rng;

	su_rng_seed(&rng, c->seed ^ 0xC0C0);
	for (;;) {
		int rc;

		su_sleep_ms((double)su_rng_below(&rng, 2 * cfg.compact_ms + 1));
		rc = pkv_compact(c->db);
		if (rc != 0) {
			send_msg(c->fd, MSG_ERR, NWRITERS, 0, rc);
			_exit(3);
		}
	}
	return NULL;
}

/* The timed cut (also the fallback of a cut at an operation that is never reached). */
static void *child_timer(void *arg)
{
	struct child *c = arg;

	su_sleep_ms(c->cut_ms);
	powerfs_cut(NULL);
}

static void store_opts(pkv_options *o, enum pkv_durability d)
{
	pkv_options_default(o);
	o->durability = d;
	o->sync_interval_ms = 10;
	o->wal_lanes = 2; /* two lanes whatever the machine: replay merges them */
	o->wal_segment_bytes = 64u << 10; /* segments roll every ~200 records */
	o->compact_wal_bytes = 1u << 20; /* the smallest allowed: background compactions */
}

static void __attribute__((noreturn))
child_main(int fd, const char *store, const char *image, enum pkv_durability d,
	   const uint64_t *start, uint64_t seed, const struct cut_plan *plan)
{
	static int cut_fd;
	struct child c = {
		.fd = fd, .power = d == PKV_DURABLE_POWER, .seed = seed, .cut_ms = plan->cut_ms
	};
	struct powerfs_cfg pc = {
		.root = store,
		.out = image,
		.seed = seed,
		.page_bytes = plan->page_bytes,
		.elide_syncs = cfg.elide,
		.on_cut = on_cut,
		.ctx = &cut_fd,
	};
	pthread_t wt[NWRITERS], ct, tt;
	struct wctx x[NWRITERS];
	pkv_options opts;
	int rc;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	cut_fd = fd;
	rc = powerfs_install(&pc);
	if (rc != 0) {
		send_msg(fd, MSG_ERR, NWRITERS + 2, 0, rc);
		_exit(3);
	}
	if (plan->crash_at) {
		struct ffs_fault f = { .action = FFS_CRASH, .nth = plan->crash_at };
		ffs_arm(&f);
	}
	if (pthread_create(&tt, NULL, child_timer, &c) != 0)
		_exit(5);
	store_opts(&opts, d);
	rc = pkv_open(store, &opts, &c.db);
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
	/* The writers never finish: the cut ends the process. */
	pthread_join(tt, NULL);
	_exit(5);
}

/* ---- verifier child --------------------------------------------------------------------- */

static void log_to(void *ctx, int level, const char *msg)
{
	char *buf = ctx;
	size_t n = strlen(buf);

	(void)level;
	if (n + 2 < LOG_CAP)
		snprintf(buf + n, LOG_CAP - n, "  %s\n", msg);
}

static void why_add(struct vresult *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void why_add(struct vresult *r, const char *fmt, ...)
{
	size_t n = strlen(r->why);
	va_list ap;

	r->ok = false;
	if (n + 2 >= sizeof(r->why))
		return;
	va_start(ap, fmt);
	vsnprintf(r->why + n, sizeof(r->why) - n, fmt, ap);
	va_end(ap);
	n = strlen(r->why);
	if (n + 2 < sizeof(r->why))
		strcat(r->why, "; ");
}

/* A difference hist_state_is() found: one more reason in the verifier's result. */
static void report_why(void *r, const char *msg)
{
	why_add(r, "%s", msg);
}

/*
 * Find P with writer w's state = E(P) among the positions its head key allows: the highest not
 * above @hi, or else the lowest above it. Several can match (while n < D the delete step is a
 * no-op, and E(3n + 1) = E(3n + 2)). Returns false if none does (the state is not a prefix of
 * the history).
 */
static bool find_pos(pkv *db, unsigned w, uint64_t hi, struct su_rng *rng, unsigned char *buf,
		     uint64_t *pos)
{
	bool found = false;
	char key[64];
	size_t klen = head_key(w, key), vlen = 0;
	uint64_t base = 0;
	struct vhdr h;
	int rc = pkv_get(db, key, klen, buf, MAX_VAL, &vlen);

	if (rc == 0 && vlen >= HDR) {
		memcpy(&h, buf, HDR);
		if (h.magic != VMAGIC || h.writer != w || h.kind != KIND_HEAD)
			return false;
		base = 3 * (h.n + 1);
	} else if (rc != PKV_NOTFOUND) {
		return false;
	}
	for (int k = 2; k >= 0; k--) {
		uint64_t p = base + (uint64_t)k;

		if (!hist_state_is(db, w, p, rng, OLD_SAMPLE, buf, NULL, NULL))
			continue;
		*pos = p;
		found = true;
		if (p <= hi)
			break;
	}
	return found;
}

/* Check every writer's state; @first: right after recovery, where r->pos is found (later
 * checks must find the same positions). */
static void check_store(pkv *db, const uint64_t *start, const uint64_t *acked,
			const uint64_t *durable, struct su_rng *rng, unsigned char *buf,
			struct vresult *r, bool first)
{
	const char *when = first ? "after recovery" : "after compact";

	pkv_stats st;
	int rc;

	for (unsigned w = 0; w < NWRITERS; w++) {
		/* Steps acknowledged as power-loss durable (every one under POWER), and what the
		 * cycle started with (all on the disk), must be there. */
		uint64_t p = 0, lo = durable[w] > start[w] ? durable[w] : start[w];

		if (!find_pos(db, w, acked[w] + 1, rng, buf, &p)) {
			why_add(r,
				"%s: writer %u (%" PRIu64 " steps acknowledged, %" PRIu64
				" at the start): the state is no prefix of its history; against E(%" PRIu64
				")",
				when, w, acked[w], start[w], acked[w]);
			hist_state_is(db, w, acked[w], rng, OLD_SAMPLE, buf, report_why, r);
			continue;
		}
		if (p < lo || p > acked[w] + 1) {
			why_add(r,
				"%s: writer %u: the state is E(%" PRIu64 "), but %" PRIu64
				" steps were acknowledged (%" PRIu64 " of them as durable, %" PRIu64
				" at the start): %s",
				when, w, p, acked[w], durable[w], start[w],
				p > acked[w] + 1 ? "steps that were never written" :
				p < start[w]	 ? "a durable step of an earlier cycle is lost" :
						   "an acknowledged power-durable step is lost");
			continue;
		}
		if (first) {
			r->pos[w] = p;
			r->lost += p < acked[w] ? acked[w] - p : 0;
			r->unacked += p > acked[w];
		} else if (p != r->pos[w]) {
			why_add(r,
				"%s: writer %u is at E(%" PRIu64 "), after recovery E(%" PRIu64 ")",
				when, w, p, r->pos[w]);
		}
	}
	rc = pkv_get_stats(db, &st);
	if (rc != 0)
		why_add(r, "%s: pkv_get_stats = %d", when, rc);
	else if (r->ok && st.keys != hist_expected_keys(r->pos))
		why_add(r, "%s: stats.keys = %" PRIu64 ", expected %" PRIu64, when, st.keys,
			hist_expected_keys(r->pos));
}

static void __attribute__((noreturn))
verifier_main(int fd, const char *store, enum pkv_durability d, const uint64_t *start,
	      const uint64_t *acked, const uint64_t *durable, uint64_t cycle, uint64_t seed)
{
	static struct vresult r;
	unsigned char *buf = malloc(2 * MAX_VAL);
	struct su_rng rng;
	pkv_options opts;
	pkv *db = NULL;
	int rc;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	memset(&r, 0, sizeof(r));
	r.ok = true;
	su_rng_seed(&rng, seed ^ 0x5EED);
	if (buf == NULL)
		_exit(5);
	store_opts(&opts, d);
	/* Three cycles in four the check changes nothing on disk: the next writer child then
	 * recovers the image itself, under the simulator, and its repairs (cutting the torn tail,
	 * zeroing, the fdatasyncs of R.6 - R.8) can be cut too. The fourth repairs the store with
	 * the production table and compacts it. */
	opts.flags = cycle % 4 == 3 ? PKV_OPEN_NO_AUTOCOMPACT : PKV_OPEN_READONLY;
	opts.log_fn = log_to;
	opts.log_ctx = r.log;
	r.open_rc = pkv_open(store, &opts, &db);
	if (r.open_rc != 0) {
		why_add(&r, "open = %d (%s)%s", r.open_rc, pkv_strerror(r.open_rc),
			r.open_rc == PKV_ECORRUPT ? ": a torn, unsynced tail is not corruption" :
						    "");
		goto out;
	}
	(void)pkv_get_stats(db, &r.st);
	check_store(db, start, acked, durable, &rng, buf, &r, true);
	if (!r.ok)
		goto out;
	rc = pkv_verify(db);
	if (rc != 0)
		why_add(&r, "pkv_verify = %d (%s)", rc, pkv_strerror(rc));
	/* After a repairing open, compact: the next child starts from a fresh snapshot. */
	if (r.ok && cycle % 4 == 3) {
		rc = pkv_compact(db);
		if (rc != 0)
			why_add(&r, "pkv_compact after recovery = %d (%s)", rc, pkv_strerror(rc));
		else
			check_store(db, start, acked, durable, &rng, buf, &r, false);
	}
out:
	if (db != NULL) {
		rc = pkv_close(db);
		if (rc != 0)
			why_add(&r, "pkv_close = %d (%s)", rc, pkv_strerror(rc));
	}
	free(buf);
	su_send(fd, &r, sizeof(r));
	_exit(0);
}

/* ---- parent: files ---------------------------------------------------------------------- */

/* A path into @out (PL_PATH bytes); a path that does not fit ends the run. */
static void path_fmt(char *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void path_fmt(char *out, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(out, PL_PATH, fmt, ap);
	va_end(ap);
	if (n < 0 || n >= PL_PATH) {
		fputs("powerloss: path too long\n", stderr);
		exit(2);
	}
}

static char copy_dst[PL_PATH];
static size_t copy_src_len;

static int copy_one(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	char dst[PL_PATH];
	char buf[65536];
	int in, out;
	ssize_t n;

	(void)ftw;
	path_fmt(dst, "%s%s", copy_dst, path + copy_src_len);
	if (type == FTW_D)
		return mkdir(dst, 0755) == 0 ? 0 : -1;
	if (type != FTW_F)
		return 0;
	in = open(path, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return -1;
	out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, sb->st_mode & 0777);
	if (out < 0) {
		close(in);
		return -1;
	}
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n) {
			n = -1;
			break;
		}
	close(in);
	close(out);
	return n < 0 ? -1 : 0;
}

static int copy_tree(const char *src, const char *dst)
{
	path_fmt(copy_dst, "%s", dst);
	copy_src_len = strlen(src);
	return nftw(src, copy_one, 16, FTW_PHYS);
}

/* ---- parent: one cycle ------------------------------------------------------------------ */

struct mode_run {
	enum pkv_durability d;
	char dir[PL_PATH], store[PL_PATH], image[PL_PATH], saved[PL_PATH];
	uint64_t pos[NWRITERS];
	uint64_t ops_hint; /* operations a cycle reaches: FFS_CRASH picks among 1 .. ops_hint */
	struct su_rng rng;
	struct figures f;
};

struct writer_out {
	uint64_t acked[NWRITERS];
	uint64_t durable[NWRITERS]; /* steps acknowledged as power-loss durable */
	uint64_t marks; /* durable acknowledgements outside POWER (PKV_WRITE_POWER, pkv_sync) */
	bool opened, cut;
	struct cut_msg cm;
	/* When each acknowledgement of this cycle arrived (index: step - start), to tell how much
	 * acknowledged history a loss spans. */
	double *t[NWRITERS];
	size_t nt[NWRITERS], capt[NWRITERS];
};

static void ack_time(struct writer_out *o, unsigned w)
{
	if (o->nt[w] == o->capt[w]) {
		size_t ncap = o->capt[w] ? o->capt[w] * 2 : 1024;
		double *nt = realloc(o->t[w], ncap * sizeof(*nt));

		if (nt == NULL) {
			perror("powerloss: realloc");
			exit(2);
		}
		o->t[w] = nt;
		o->capt[w] = ncap;
	}
	o->t[w][o->nt[w]++] = su_now();
}

static bool run_writer(struct mode_run *m, uint64_t cycle, uint64_t seed,
		       const struct cut_plan *plan, struct writer_out *o)
{
	struct su_msgs in = { 0 };
	bool ok = true;
	int wfd, status, got;
	double last = su_now();
	pid_t pid;

	pid = su_fork_pipe(&in.fd, &wfd);
	if (pid == 0)
		child_main(wfd, m->store, m->image, m->d, o->acked, seed, plan);
	while ((got = su_msgs_fill(&in, 1000)) >= 0) {
		struct msg mm;
		uint32_t type;
		size_t len;

		if (got == 0) {
			if (su_now() - last > HANG_S) {
				kill(pid, SIGKILL);
				ok = false;
				su_fail(NULL,
					"%s cycle %" PRIu64
					": the writer child hung (no message for %.0f s)",
					su_durability_name(m->d), cycle, HANG_S);
				break;
			}
			continue;
		}
		last = su_now();
		/* Two sizes of message: the type (their first field) tells which. */
		while (su_msgs_next(&in, &type, sizeof(type), false)) {
			len = type == MSG_CUT ? sizeof(struct cut_msg) : sizeof(struct msg);
			if (!su_msgs_next(&in, type == MSG_CUT ? (void *)&o->cm : (void *)&mm, len,
					  true))
				break;
			if (type == MSG_CUT) {
				o->cut = true;
			} else if (mm.type == MSG_ACK && mm.writer < NWRITERS &&
				   mm.val == o->acked[mm.writer] + 1) {
				o->acked[mm.writer] = mm.val;
				ack_time(o, mm.writer);
				if (mm.code == 1) {
					o->durable[mm.writer] = mm.val;
					o->marks += m->d != PKV_DURABLE_POWER;
				}
			} else if (mm.type == MSG_OPENED) {
				o->opened = true;
			} else if (mm.type == MSG_ERR) {
				ok = false;
				su_fail(NULL,
					"%s cycle %" PRIu64 ": %s%u returned %" PRId64 " (%s)",
					su_durability_name(m->d), cycle,
					mm.writer < NWRITERS	  ? "writer " :
					mm.writer == NWRITERS	  ? "pkv_compact " :
					mm.writer == NWRITERS + 1 ? "pkv_open " :
								    "powerfs_install ",
					mm.writer < NWRITERS ? mm.writer : 0, mm.code,
					pkv_strerror((int)mm.code));
			} else {
				ok = false;
				su_fail(NULL, "%s cycle %" PRIu64 ": garbled message (type %u)",
					su_durability_name(m->d), cycle, mm.type);
			}
		}
	}
	close(in.fd);
	status = su_wait(pid);
	if (ok && !(WIFEXITED(status) && WEXITSTATUS(status) == POWERFS_EXIT_CODE && o->cut)) {
		ok = false;
		if (WIFSIGNALED(status))
			su_fail(NULL, "%s cycle %" PRIu64 ": writer child died of signal %d",
				su_durability_name(m->d), cycle, WTERMSIG(status));
		else
			su_fail(NULL, "%s cycle %" PRIu64 ": writer child exited with status %d%s",
				su_durability_name(m->d), cycle, WEXITSTATUS(status),
				o->cut ? "" : " without cutting the power");
	}
	if (ok && o->cm.rep.error != 0) {
		ok = false;
		su_fail(NULL, "%s cycle %" PRIu64 ": writing the image failed: %s",
			su_durability_name(m->d), cycle, strerror(-o->cm.rep.error));
	}
	return ok;
}

static bool run_verifier(struct mode_run *m, uint64_t cycle, uint64_t seed,
			 const struct writer_out *o, struct vresult *r)
{
	char why[sizeof(r->why) - 16];
	int rfd, wfd;
	pid_t pid;

	pid = su_fork_pipe(&rfd, &wfd);
	if (pid == 0)
		verifier_main(wfd, m->store, m->d, m->pos, o->acked, o->durable, cycle, seed);
	if (!su_collect(pid, rfd, r, sizeof(*r), why, sizeof(why), NULL)) {
		snprintf(r->why, sizeof(r->why), "the verifier %s", why);
		r->ok = false;
		r->log[0] = '\0';
		return false;
	}
	return r->ok;
}

static void add_cut(struct figures *f, const struct writer_out *o)
{
	const struct powerfs_report *p = &o->cm.rep;

	f->pages_same += p->pages_same;
	f->pages_new += p->pages_new;
	f->pages_old += p->pages_old;
	f->pages_torn += p->pages_torn;
	f->sizes_new += p->sizes_new;
	f->sizes_old += p->sizes_old;
	f->dirops_applied += p->dirops_applied;
	f->dirops_dropped += p->dirops_dropped;
	f->syncs += p->syncs;
	f->dirsyncs += p->dirsyncs;
	f->faults += o->cm.injected;
	f->timed += p->op_kind < 0;
	if (p->op_kind >= 0 && p->op_kind < FFS_NOPS)
		f->at_kind[p->op_kind]++;
	f->in_open += !o->opened;
}

/* One cycle: write until the power is cut, put the image in place, verify. */
static bool cycle_once(struct mode_run *m, uint64_t cycle)
{
	uint64_t seed = su_hash3(cfg.seed, (uint64_t)m->d, cycle);
	struct writer_out o;
	struct vresult r;
	bool ok = false;
	struct cut_plan plan = { .page_bytes = 4096 };
	uint64_t acked_now = 0;
	char cut[64];

	memset(&o, 0, sizeof(o));
	for (unsigned w = 0; w < NWRITERS; w++)
		o.acked[w] = o.durable[w] = m->pos[w];
	/* Half the cycles cut at an operation (any thread's), half at a time; an operation that
	 * is never reached falls back on the time. */
	plan.cut_ms = cfg.max_ms * (double)su_rng_below(&m->rng, 10001) / 10000.0;
	if (su_rng_below(&m->rng, 2)) {
		plan.crash_at = 1 + su_rng_below(&m->rng, m->ops_hint);
		m->f.planned++;
		plan.cut_ms = cfg.max_ms;
	}
	/* A quarter of the cuts choose per sector: any subset of a page's sectors, not a prefix. */
	if (su_rng_below(&m->rng, 4) == 0) {
		plan.page_bytes = 512;
		m->f.sector_cuts++;
	}
	su_rmtree(m->image);
	if (!run_writer(m, cycle, seed, &plan, &o))
		goto out;
	for (unsigned w = 0; w < NWRITERS; w++)
		acked_now += o.acked[w] - m->pos[w];
	/* Timed cuts show how far a cycle gets; an operation never reached, that it got less far. */
	if (o.cm.rep.op_kind < 0 && o.cm.ops > m->ops_hint)
		m->ops_hint = o.cm.ops;
	if (plan.crash_at && o.cm.injected == 0 && m->ops_hint > 64)
		m->ops_hint -= m->ops_hint / 8;
	add_cut(&m->f, &o);
	m->f.no_ack += o.opened && acked_now == 0;

	/* The power is back: the disk holds the image. Keep a copy for a failure report. */
	su_rmtree(m->store);
	su_rmtree(m->saved);
	if (rename(m->image, m->store) != 0 || copy_tree(m->store, m->saved) != 0) {
		su_fail(NULL, "%s cycle %" PRIu64 ": cannot put the image in place: %s",
			su_durability_name(m->d), cycle, strerror(errno));
		goto out;
	}
	if (o.cm.rep.op_kind >= 0)
		snprintf(cut, sizeof(cut), "at %s #%" PRIu64, ffs_op_name(o.cm.rep.op_kind),
			 o.cm.rep.op_index);
	else
		snprintf(cut, sizeof(cut), "at %.0f ms", plan.cut_ms);
	if (!run_verifier(m, cycle, seed, &o, &r)) {
		su_fail(NULL,
			"%s cycle %" PRIu64 " (seed %" PRIu64 ", cut %s%s, acknowledged w0 %" PRIu64
			" w1 %" PRIu64 ", start w0 %" PRIu64 " w1 %" PRIu64 "): %s",
			su_durability_name(m->d), cycle, cfg.seed, cut,
			o.opened ? "" : " during pkv_open", o.acked[0], o.acked[1], m->pos[0],
			m->pos[1], r.why);
		if (r.log[0])
			printf("recovery log:\n%s", r.log);
		printf("the image as the power cut left it: %s (reopen it: powerloss --open %s)\n",
		       m->saved, m->saved);
		cfg.keep = true;
		goto out;
	}
	m->f.acked += acked_now;
	m->f.marks += o.marks;
	m->f.lost += r.lost;
	m->f.unacked += r.unacked;
	for (unsigned w = 0; w < NWRITERS; w++) {
		uint64_t lost = r.pos[w] < o.acked[w] ? o.acked[w] - r.pos[w] : 0;
		/* The acknowledgement of step P (the first lost) is number P - start. */
		size_t first = (size_t)(r.pos[w] - m->pos[w]);

		if (lost > m->f.lost_max)
			m->f.lost_max = lost;
		if (lost && first < o.nt[w] &&
		    (o.t[w][o.nt[w] - 1] - o.t[w][first]) * 1000.0 > m->f.lost_ms_max)
			m->f.lost_ms_max = (o.t[w][o.nt[w] - 1] - o.t[w][first]) * 1000.0;
	}
	m->f.replayed += r.st.recovered_records;
	m->f.discarded += r.st.discarded_records;
	m->f.discarded_bytes += r.st.discarded_bytes;
	m->f.gaps += r.st.recovery_gap_seq != 0;
	if (!cfg.quiet)
		printf("%-8s cycle %4" PRIu64 " cut %-18s%s +%-6" PRIu64 " acked; at w0 %" PRIu64
		       " w1 %" PRIu64 " (lost %" PRIu64 "); pages new %" PRIu64 " old %" PRIu64
		       " torn %" PRIu64 "; dir ops dropped %" PRIu64 "/%" PRIu64
		       "; replayed %" PRIu64 ", discarded %" PRIu64 "\n",
		       su_durability_name(m->d), cycle, cut, o.opened ? "" : " (in open)",
		       acked_now, r.pos[0], r.pos[1], r.lost, o.cm.rep.pages_new,
		       o.cm.rep.pages_old, o.cm.rep.pages_torn, o.cm.rep.dirops_dropped,
		       o.cm.rep.dirops_applied + o.cm.rep.dirops_dropped, r.st.recovered_records,
		       r.st.discarded_records);
	m->pos[0] = r.pos[0];
	m->pos[1] = r.pos[1];
	ok = true;
out:
	for (unsigned w = 0; w < NWRITERS; w++)
		free(o.t[w]);
	return ok;
}

static void print_figures(const struct mode_run *m)
{
	const struct figures *f = &m->f;

	printf("%s: %" PRIu64 " cycles in %.1f s (%" PRIu64 " passed, %" PRIu64 " failed); %" PRIu64
	       " acknowledged writes checked, %" PRIu64
	       " lost where the mode allows it (at most %" PRIu64
	       " by one writer in a cycle, spanning %.1f ms of acknowledgements), %" PRIu64
	       " done-but-unacknowledged kept\n",
	       su_durability_name(m->d), f->cycles, f->t, f->passed, f->failed, f->acked, f->lost,
	       f->lost_max, f->lost_ms_max, f->unacked);
	if (m->d != PKV_DURABLE_POWER)
		printf("  %" PRIu64 " acknowledgements said durable (PKV_WRITE_POWER or pkv_sync),"
		       " each a lower bound the state had to reach\n",
		       f->marks);
	printf("  cuts: %" PRIu64 " at an operation (faults injected; %" PRIu64
	       " were planned, the rest fell back on the timer), %" PRIu64 " at a time; %" PRIu64
	       " during pkv_open; %" PRIu64 " after open with nothing acknowledged. At:",
	       f->faults, f->planned, f->timed, f->in_open, f->no_ack);
	for (int k = 0; k < FFS_NOPS; k++)
		if (f->at_kind[k])
			printf(" %s %" PRIu64, ffs_op_name(k), f->at_kind[k]);
	printf("\n  image: pages torn %" PRIu64 ", kept new %" PRIu64
	       ", dropped (old kept) %" PRIu64 ", unchanged %" PRIu64 " (%" PRIu64
	       " cuts chose per 512-byte sector); sizes new %" PRIu64 ", old %" PRIu64
	       "; pending dir ops dropped %" PRIu64 ", applied %" PRIu64 "\n",
	       f->pages_torn, f->pages_new, f->pages_old, f->pages_same, f->sector_cuts,
	       f->sizes_new, f->sizes_old, f->dirops_dropped, f->dirops_applied);
	printf("  durability points recorded: %" PRIu64 " file syncs, %" PRIu64
	       " directory fsyncs; recovery: %" PRIu64 " records replayed, %" PRIu64
	       " discarded (%" PRIu64 " bytes), %" PRIu64 " opens stopped at a gap\n",
	       f->syncs, f->dirsyncs, f->replayed, f->discarded, f->discarded_bytes, f->gaps);
}

/* ---- --open: a kept image ------------------------------------------------------------------ */

static int open_only(const char *dir)
{
	static char log[LOG_CAP];
	pkv_options opts;
	pkv_stats st;
	pkv *db = NULL;
	int rc;

	store_opts(&opts, PKV_DURABLE_PROCESS);
	opts.flags = PKV_OPEN_READONLY;
	opts.log_fn = log_to;
	opts.log_ctx = log;
	rc = pkv_open(dir, &opts, &db);
	printf("pkv_open(%s, read-only) = %d (%s)\n%s", dir, rc, pkv_strerror(rc), log);
	if (rc != 0)
		return 1;
	if (pkv_get_stats(db, &st) == 0)
		printf("keys %" PRIu64 ", last_seq %" PRIu64 ", snapshot_seq %" PRIu64
		       ", replayed %" PRIu64 ", discarded %" PRIu64 " (%" PRIu64
		       " bytes), gap at %" PRIu64 "\n",
		       st.keys, st.last_seq, st.snapshot_seq, st.recovered_records,
		       st.discarded_records, st.discarded_bytes, st.recovery_gap_seq);
	pkv_close(db);
	return 0;
}

/* ---- main ------------------------------------------------------------------------------- */

static const struct su_opt options[] = {
	SU_OPT("mode", SU_OPT_DURABILITY, &cfg.mode,
	       "durability mode under test: power, process, periodic or all\n"
	       "(default all: one after another)",
	       .arg = "MODE", .word = "all"),
	SU_OPT("cycles", SU_OPT_U64, &cfg.cycles, "power cuts per mode (default 100)"),
	SU_OPT("seconds", SU_OPT_DOUBLE, &cfg.seconds,
	       "stop starting cycles after S seconds in all (0: no bound),\n"
	       "shared equally by the modes",
	       .arg = "S"),
	SU_OPT("seed", SU_OPT_U64, &cfg.seed, "cut plans and writer values (default 1)"),
	SU_OPT("max-ms", SU_OPT_DOUBLE, &cfg.max_ms,
	       "the power is cut within N ms of the writer child's start (default 250)"),
	SU_OPT("compact-ms", SU_OPT_UINT, &cfg.compact_ms,
	       "mean period of pkv_compact() in the child (0: none; default 60)", .max = 3600000),
	SU_OPT("elide-syncs", SU_OPT_FLAG, &cfg.elide,
	       "count fdatasync/fsync (the image is the same) but skip the kernel call"),
	SU_OPT("dir", SU_OPT_STR, &cfg.parent, "work in a new temporary directory under PARENT",
	       .arg = "PARENT"),
	SU_OPT("keep", SU_OPT_FLAG, &cfg.keep, "keep the directories"),
	SU_OPT("quiet", SU_OPT_FLAG, &cfg.quiet,
	       "no line per cycle: only failures and the figures"),
	SU_OPT("open", SU_OPT_STR, &cfg.open_dir,
	       "open DIR read-only and print what recovery says (a kept image)", .arg = "DIR"),
	SU_OPT_END
};

int main(int argc, char **argv)
{
	static struct mode_run runs[3];
	enum pkv_durability order[3] = { PKV_DURABLE_POWER, PKV_DURABLE_PROCESS,
					 PKV_DURABLE_PERIODIC };
	uint64_t passed = 0, failed = 0;
	unsigned nmodes = 0;
	double budget;

	setvbuf(stdout, NULL, _IOLBF, 0);
	su_opts_parse(argc, argv, "powerloss", options, NULL);
	if (cfg.open_dir)
		return open_only(cfg.open_dir);
	if (su_workdir(top, sizeof(top), cfg.parent, "powerloss") != 0) {
		perror("powerloss: mkdtemp");
		return 2;
	}
	for (unsigned i = 0; i < 3; i++) {
		struct mode_run *m = &runs[nmodes];

		if (cfg.mode >= 0 && (int)order[i] != cfg.mode)
			continue;
		memset(m, 0, sizeof(*m));
		m->d = order[i];
		m->ops_hint = 300;
		su_rng_seed(&m->rng, su_hash3(cfg.seed, (uint64_t)m->d, 0xCC));
		path_fmt(m->dir, "%s/%s", top, su_durability_name(m->d));
		path_fmt(m->store, "%s/store", m->dir);
		path_fmt(m->image, "%s/image", m->dir);
		path_fmt(m->saved, "%s/image-as-cut", m->dir);
		if (mkdir(m->dir, 0755) != 0 || mkdir(m->store, 0755) != 0) {
			perror("powerloss: mkdir");
			return 2;
		}
		nmodes++;
	}
	budget = cfg.seconds > 0 ? cfg.seconds / nmodes : 0;
	printf("powerloss: %s, %" PRIu64
	       " cycles per mode%s, cut within %.0f ms, syncs %s, seed %" PRIu64 "\n",
	       top, cfg.cycles, budget > 0 ? " (or the time bound)" : "", cfg.max_ms,
	       cfg.elide ? "elided" : "real", cfg.seed);
	if (budget > 0)
		printf("powerloss: %.1f s per mode\n", budget);

	for (unsigned i = 0; i < nmodes; i++) {
		struct mode_run *m = &runs[i];
		double t0 = su_now();

		for (uint64_t c = 0; c < cfg.cycles; c++) {
			bool ok;

			if (budget > 0 && su_now() - t0 >= budget)
				break;
			ok = cycle_once(m, c);
			m->f.cycles++;
			if (ok) {
				m->f.passed++;
			} else {
				m->f.failed++;
				printf("%s: stopping this mode after cycle %" PRIu64 "\n",
				       su_durability_name(m->d), c);
				break;
			}
		}
		m->f.t = su_now() - t0;
		print_figures(m);
		passed += m->f.passed;
		failed += m->f.failed;
		if (m->f.cycles == 0)
			failed++;
	}
	if (cfg.keep)
		printf("directories kept in %s\n", top);
	else
		su_rmtree(top);
	printf("%" PRIu64 " passed, %" PRIu64 " failed\n", passed, failed);
	return failed == 0 ? 0 : 1;
}
