/* SPDX-License-Identifier: MIT */
/*
 * test_recovery.c - what an open makes of damaged, torn and gapped WAL lanes.
 *
 * The suites damage closed stores the way docs/format.md lays them out (testutil's own reader
 * finds the records) and check the recovery rules of DESIGN.md:
 *   - a torn or corrupt tail is discarded and reported, never applied, and everything before it
 *     survives exactly;
 *   - replay stops at the first missing sequence number, so the state is a prefix of the history
 *     even when another lane holds later records;
 *   - damage that is not a tail (a bad segment header, a garbage segment file), or that proves the
 *     loss of a synced write, is PKV_ECORRUPT with the file named in the log;
 *   - a recovered store keeps appending, and its next recovery is clean;
 *   - the key count is exact after a replay over a snapshot base (R.14).
 * Public API only; the damaged files are found by the documented directory layout.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#define T_TIMEOUT 150

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

/* The same file in another copy of the store: @dir/wal/<basename of @path>. */
static void in_copy(char *out, const char *dir, const char *path)
{
	tu_fmt(out, PATH_MAX, "%s/wal/%s", dir, base_name(path));
}

static void opts_small(pkv_options *o, enum pkv_durability mode, unsigned lanes, struct tu_log *log)
{
	tu_opts(o, mode);
	o->wal_lanes = lanes;
	o->wal_segment_bytes = 64u << 10;
	if (log) {
		tu_log_init(log);
		o->log_fn = tu_log_fn;
		o->log_ctx = log;
	}
}

/* Every seq from 1 to nrecs appears exactly once: the history of a store written and closed. */
static void assert_contiguous(const struct tu_wal *w)
{
	struct tu_rec *s = tu_wal_by_seq(w);

	for (int i = 0; i < w->nrecs; i++)
		cr_assert_eq(s[i].seq, (uint64_t)i + 1,
			     "the WAL of a clean store has seq %llu at %d",
			     (unsigned long long)s[i].seq, i);
	free(s);
}

/* Does any surviving record after @gap claim that @gap was synced (proof of a lost write)? */
static bool proves_loss(const struct tu_rec *recs, int n, uint64_t gap)
{
	for (int i = 0; i < n; i++)
		if (recs[i].seq > gap && recs[i].synced >= gap)
			return true;
	return false;
}

/* ---- (1) a torn tail, at every byte of the last record ------------------------------------- */

enum damage {
	CUT,
	ZERO,
	FLIP
};
enum last_op {
	LAST_PUT,
	LAST_DEL
};

struct torn_case {
	enum damage damage;
	enum last_op last;
};

ParameterizedTestParameters(torn, every_offset_of_last_record)
{
	static struct torn_case cases[] = {
		{ CUT, LAST_PUT }, { ZERO, LAST_PUT }, { FLIP, LAST_PUT },
		{ CUT, LAST_DEL }, { ZERO, LAST_DEL }, { FLIP, LAST_DEL },
	};

	return cr_make_param_array(struct torn_case, cases, sizeof(cases) / sizeof(cases[0]));
}

#define TORN_KEYS 30

/*
 * 40 writes (puts, overwrites, deletes), then the victim: an overwrite of k20 with a value that
 * ends in non-zero bytes, or a delete of k21. @prev gets the state without the victim, @all the
 * state with it.
 */
static void torn_history(pkv *db, enum last_op last, struct tu_model *prev, struct tu_model *all)
{
	char k[16], v[48];

	for (int i = 0; i < TORN_KEYS; i++) {
		snprintf(k, sizeof(k), "k%d", i);
		snprintf(v, sizeof(v), "value-%d-%.*s", i, i,
			 "abcdefghijklmnopqrstuvwxyz0123456789");
		cr_assert_eq(pkv_put(db, k, strlen(k), v, strlen(v)), 0);
		tu_model_put(prev, k, strlen(k), v, strlen(v));
	}
	for (int i = 0; i < 5; i++) {
		snprintf(k, sizeof(k), "k%d", i);
		snprintf(v, sizeof(v), "over-%d", i);
		cr_assert_eq(pkv_put(db, k, strlen(k), v, strlen(v)), 0);
		tu_model_put(prev, k, strlen(k), v, strlen(v));
	}
	for (int i = 5; i < 10; i++) {
		snprintf(k, sizeof(k), "k%d", i);
		cr_assert_eq(pkv_del(db, k, strlen(k)), 0);
		tu_model_del(prev, k, strlen(k));
	}
	/* all = prev + victim: replay the same history into @all. */
	for (size_t i = 0; i < prev->cap; i++) {
		const struct tu_model_ent *e = &prev->tab[i];

		if (!e->used)
			continue;
		if (e->present)
			tu_model_put(all, e->key, e->klen, e->val, e->vlen);
		else
			tu_model_del(all, e->key, e->klen);
	}
	if (last == LAST_PUT) {
		cr_assert_eq(pkv_put(db, "k20", 3, "LAST-VALUE-xyz-0123456789!", 26), 0);
		tu_model_put(all, "k20", 3, "LAST-VALUE-xyz-0123456789!", 26);
	} else {
		cr_assert_eq(pkv_del(db, "k21", 3), 0);
		tu_model_del(all, "k21", 3);
	}
}

ParameterizedTest(struct torn_case *tc, torn, every_offset_of_last_record, .init = tu_setup,
		  .fini = tu_teardown, .timeout = T_TIMEOUT)
{
	struct tu_model prev, all;
	struct tu_wal w;
	struct tu_log log;
	pkv_options o;
	char pristine[PATH_MAX], work[PATH_MAX], file[PATH_MAX];
	unsigned char *orig;
	size_t orig_len;
	const struct tu_rec *victim;
	off_t start, end, stop;
	pkv *db;

	tu_model_init(&prev);
	tu_model_init(&all);
	tu_path(pristine, "pristine");
	tu_path(work, "work");

	opts_small(&o, PKV_DURABLE_PROCESS, 1, NULL);
	db = tu_open(pristine, &o);
	torn_history(db, tc->last, &prev, &all);
	tu_model_assert(&all, db, "pristine store");
	tu_close(db);

	tu_wal_read(pristine, &w);
	cr_assert_eq(w.nrecs, 41, "the WAL holds %d records, 41 were written", w.nrecs);
	assert_contiguous(&w);
	victim = &w.recs[tu_wal_last(&w)];
	cr_assert_eq(victim->seq, 41);
	cr_assert_eq(victim->type, tc->last == LAST_PUT ? TU_REC_PUT : TU_REC_DEL);
	cr_assert_eq(victim->lane, 0);
	start = victim->off;
	end = start + (off_t)victim->len;
	/* The victim is the last record of its file: nothing valid follows it. */
	cr_assert_eq(w.data_end[victim->file], (end + 7) & ~(off_t)7);
	orig = tu_read_file(w.files[victim->file], &orig_len);
	in_copy(file, work, w.files[victim->file]);
	stop = tc->damage == FLIP ? end - 1 : (end + 7) & ~(off_t)7;

	for (off_t off = start; off <= stop; off++) {
		bool intact, partial;
		pkv_stats st;
		uint64_t rgap;
		char what[128];

		tu_rm_rf(work);
		tu_copy_tree(pristine, work);
		switch (tc->damage) {
		case CUT:
			tu_truncate(file, off);
			intact = off >= end;
			partial = !intact && off > start;
			break;
		case ZERO: {
			static const unsigned char zeros[64];

			tu_write_at(file, off, zeros, (size_t)(((end + 7) & ~(off_t)7) - off));
			intact = true;
			for (off_t i = off; i < end; i++)
				intact &= orig[i] == 0;
			partial = !intact && off > start;
			break;
		}
		case FLIP:
		default: {
			unsigned char b = orig[off] ^ 0xff;
			uint32_t len = victim->len;

			tu_write_at(file, off, &b, 1);
			intact = false;
			if (off < start + 4)
				((unsigned char *)&len)[off - start] = b;
			/* A length now reading 0 is an end marker, anything else a bad record. */
			partial = len != 0;
			break;
		}
		}

		snprintf(what, sizeof(what), "%s at offset %lld of the last record",
			 tc->damage == CUT  ? "cut" :
			 tc->damage == ZERO ? "zeroed" :
					      "flipped",
			 (long long)(off - start));
		opts_small(&o, PKV_DURABLE_PROCESS, 1, &log);
		db = tu_open(work, &o);
		tu_model_assert(intact ? &all : &prev, db, what);
		st = tu_stats(db);
		cr_assert_eq(st.recovered_records, intact ? 41 : 40, "%s: %llu records recovered",
			     what, (unsigned long long)st.recovered_records);
		if (intact) {
			cr_assert_eq(st.discarded_bytes, 0, "%s: intact record discarded", what);
			cr_assert_eq(st.recovery_gap_seq, 0);
		}
		if (partial) {
			cr_assert_gt(st.discarded_bytes, 0, "%s: torn bytes not reported", what);
			cr_assert_gt(log.count, 0, "%s: no recovery report in the log", what);
		}
		/* Nothing was missing in front of a later record: no gap, or the victim's seq. */
		rgap = st.recovery_gap_seq;
		cr_assert(rgap == 0 || rgap == 41, "%s: gap reported at %llu", what,
			  (unsigned long long)rgap);

		/* The recovered store appends, and its next recovery is clean. */
		cr_assert_eq(pkv_put(db, "after", 5, "A", 1), 0);
		tu_model_put(intact ? &all : &prev, "after", 5, "A", 1);
		tu_close(db);
		opts_small(&o, PKV_DURABLE_PROCESS, 1, &log);
		db = tu_open(work, &o);
		strcat(what, ", then a write and a reopen");
		tu_model_assert(intact ? &all : &prev, db, what);
		st = tu_stats(db);
		cr_assert_eq(st.discarded_bytes, 0, "%s: the torn tail came back", what);
		cr_assert_eq(st.recovery_gap_seq, 0, "%s", what);
		tu_close(db);
		tu_model_del(intact ? &all : &prev, "after", 5);
	}
	free(orig);
	tu_wal_free(&w);
	tu_model_free(&prev);
	tu_model_free(&all);
}

/* ---- (2) a missing sequence number in one lane, later records in the other ---------------- */

struct turn {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int next; /* the global step whose turn it is */
};

struct gap_writer {
	pkv *db;
	int id;
	struct turn *turn;
	int err;
	char msg[128];
};

#define GAP_STEPS 40 /* per writer */

/*
 * Each writer is pinned to its own CPU, so its records go to its own lane, and the two take
 * turns, so the sequence numbers alternate between the lanes: a cut in one lane leaves records of
 * the other lane behind the gap. The turns make the history deterministic.
 */
static void *gap_thread(void *p)
{
	struct gap_writer *g = p;
	cpu_set_t set;
	char k[32], v[64];

	CPU_ZERO(&set);
	CPU_SET(g->id, &set);
	g->err = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	if (g->err) {
		snprintf(g->msg, sizeof(g->msg), "pthread_setaffinity_np: %d", g->err);
		goto out;
	}
	for (int j = 0; j < GAP_STEPS; j++) {
		int rc;

		pthread_mutex_lock(&g->turn->mu);
		while (g->turn->next != 2 * j + g->id)
			pthread_cond_wait(&g->turn->cv, &g->turn->mu);
		pthread_mutex_unlock(&g->turn->mu);

		if (sched_getcpu() != g->id) {
			g->err = -1;
			snprintf(g->msg, sizeof(g->msg), "writer %d runs on CPU %d", g->id,
				 sched_getcpu());
		} else if (j % 5 == 4) {
			/* Both writers set this key: its final value depends on what applies. */
			snprintf(v, sizeof(v), "shared by %d at %d", g->id, j);
			rc = pkv_put(g->db, "shared", 6, v, strlen(v));
			g->err = rc;
		} else if (j % 7 == 6) {
			snprintf(k, sizeof(k), "w%d-k%d", g->id, (j + 3) % 8);
			rc = pkv_del(g->db, k, strlen(k));
			g->err = rc == PKV_NOTFOUND ? 0 : rc;
		} else {
			snprintf(k, sizeof(k), "w%d-k%d", g->id, j % 8);
			snprintf(v, sizeof(v), "w%d step %d %.*s", g->id, j, j, "................");
			rc = pkv_put(g->db, k, strlen(k), v, strlen(v));
			g->err = rc;
		}
		if (g->err && !g->msg[0])
			snprintf(g->msg, sizeof(g->msg), "writer %d step %d: %d (%s)", g->id, j,
				 g->err, pkv_strerror(g->err));

		pthread_mutex_lock(&g->turn->mu);
		g->turn->next++;
		pthread_cond_broadcast(&g->turn->cv);
		pthread_mutex_unlock(&g->turn->mu);
		if (g->err)
			break;
	}
out:
	if (g->err) {
		/* Let the other writer finish instead of waiting for turns that never come. */
		pthread_mutex_lock(&g->turn->mu);
		g->turn->next = 1 << 30;
		pthread_cond_broadcast(&g->turn->cv);
		pthread_mutex_unlock(&g->turn->mu);
	}
	return NULL;
}

static void need_two_cpus(void)
{
	cpu_set_t set;

	cr_assert_eq(sched_getaffinity(0, sizeof(set), &set), 0);
	if (!CPU_ISSET(0, &set) || !CPU_ISSET(1, &set))
		cr_skip_test("needs CPUs 0 and 1 to put two writers on two lanes");
}

ParameterizedTestParameters(gap, cut_one_lane)
{
	static enum pkv_durability modes[] = { PKV_DURABLE_PROCESS, PKV_DURABLE_POWER };

	return cr_make_param_array(enum pkv_durability, modes, 2);
}

ParameterizedTest(enum pkv_durability *mode, gap, cut_one_lane, .init = tu_setup,
		  .fini = tu_teardown, .timeout = T_TIMEOUT)
{
	struct turn turn = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0 };
	struct gap_writer g[2];
	pthread_t t[2];
	struct tu_wal w;
	struct tu_rec *by_seq, *lane_recs;
	struct tu_model expect;
	struct tu_log log;
	pkv_options o;
	pkv_stats st;
	pkv *db;
	int nlane[2] = { 0, 0 }, cut_lane, n, cut;
	uint64_t gap, behind = 0;
	bool loss, named;

	need_two_cpus();
	opts_small(&o, *mode, 2, NULL);
	db = tu_open(tu_db, &o);
	for (int i = 0; i < 2; i++) {
		g[i] = (struct gap_writer){ .db = db, .id = i, .turn = &turn };
		cr_assert_eq(pthread_create(&t[i], NULL, gap_thread, &g[i]), 0);
	}
	for (int i = 0; i < 2; i++)
		cr_assert_eq(pthread_join(t[i], NULL), 0);
	for (int i = 0; i < 2; i++)
		cr_assert_eq(g[i].err, 0, "%s", g[i].msg);
	tu_close(db);

	tu_wal_read(tu_db, &w);
	assert_contiguous(&w);
	for (int i = 0; i < w.nrecs; i++) {
		cr_assert_lt(w.recs[i].lane, 2);
		nlane[w.recs[i].lane]++;
	}
	cr_assert(nlane[0] > 4 && nlane[1] > 4,
		  "writers pinned to CPUs 0 and 1 must fill both lanes (lane per CPU): %d + %d",
		  nlane[0], nlane[1]);

	/* Cut the lane that holds seq 2 * GAP_STEPS / 2 after the record before it. */
	by_seq = tu_wal_by_seq(&w);
	cut_lane = (int)by_seq[w.nrecs / 2].lane;
	lane_recs = malloc(sizeof(*lane_recs) * (size_t)w.nrecs);
	cr_assert_not_null(lane_recs);
	n = 0;
	for (int i = 0; i < w.nrecs; i++)
		if ((int)by_seq[i].lane == cut_lane)
			lane_recs[n++] = by_seq[i];
	for (cut = 0; cut < n && lane_recs[cut].seq != by_seq[w.nrecs / 2].seq; cut++)
		;
	cr_assert(cut > 0 && cut < n);
	for (int i = cut; i < n; i++)
		cr_assert_eq(lane_recs[i].file, lane_recs[cut].file, "the cut lane spans segments");
	gap = lane_recs[cut].seq;
	tu_truncate(w.files[lane_recs[cut].file], lane_recs[cut].off);

	/* What an open must make of it: a prefix up to the gap, or ECORRUPT if a record proves the
	 * loss of a synced write (under POWER the other lane's records do: their synced fields). */
	tu_model_init(&expect);
	tu_model_apply(&expect, by_seq, w.nrecs, gap);
	for (int i = 0; i < w.nrecs; i++)
		if ((int)by_seq[i].lane != cut_lane && by_seq[i].seq > gap)
			behind++;
	cr_assert_gt(behind, 0, "no record of the other lane behind the gap");
	{
		struct tu_rec *survivors = malloc(sizeof(*survivors) * (size_t)w.nrecs);
		int ns = 0;

		cr_assert_not_null(survivors);
		for (int i = 0; i < w.nrecs; i++)
			if ((int)by_seq[i].lane != cut_lane || by_seq[i].seq < gap)
				survivors[ns++] = by_seq[i];
		loss = proves_loss(survivors, ns, gap);
		free(survivors);
	}
	if (*mode == PKV_DURABLE_POWER)
		cr_assert(loss, "under POWER a later record must carry synced >= %llu",
			  (unsigned long long)gap);

	opts_small(&o, *mode, 2, &log);
	if (loss) {
		pkv *bad = NULL;
		int rc = pkv_open(tu_db, &o, &bad);

		cr_assert_eq(rc, PKV_ECORRUPT, "a lost synced write must be ECORRUPT, got %d (%s)",
			     rc, pkv_strerror(rc));
		cr_assert_null(bad);
		/* Either the segment that lost records or one that proves the loss. */
		named = false;
		for (int f = 0; f < w.nfiles; f++)
			named |= tu_log_contains(&log, base_name(w.files[f]));
		cr_assert(named, "the log names no segment:\n%s", log.text);
		goto done;
	}

	db = tu_open(tu_db, &o);
	tu_model_assert(&expect, db, "after the cut");
	st = tu_stats(db);
	cr_assert_eq(st.recovery_gap_seq, gap, "gap at %llu reported as %llu",
		     (unsigned long long)gap, (unsigned long long)st.recovery_gap_seq);
	cr_assert_eq(st.discarded_records, behind, "%llu records behind the gap, %llu discarded",
		     (unsigned long long)behind, (unsigned long long)st.discarded_records);
	cr_assert_gt(st.discarded_bytes, 0);
	cr_assert_eq(st.recovered_records, gap - 1);
	cr_assert_gt(log.count, 0, "the gap was not reported in the log");

	/* The store goes on from the prefix; the records behind the old gap never come back. */
	cr_assert_eq(pkv_put(db, "shared", 6, "after the gap", 13), 0);
	tu_model_put(&expect, "shared", 6, "after the gap", 13);
	for (int i = 0; i < 8; i++) {
		char k[16];

		snprintf(k, sizeof(k), "new%d", i);
		cr_assert_eq(pkv_put(db, k, strlen(k), k, strlen(k)), 0);
		tu_model_put(&expect, k, strlen(k), k, strlen(k));
	}
	{
		const struct tu_model_ent *e = tu_model_find(&expect, "w0-k1", 5);
		int rc = pkv_del(db, "w0-k1", 5);

		cr_assert_eq(rc, e && e->present ? 0 : PKV_NOTFOUND, "del of w0-k1: %d", rc);
		tu_model_del(&expect, "w0-k1", 5);
	}
	tu_model_assert(&expect, db, "writes after the cut");
	tu_close(db);
	opts_small(&o, *mode, 2, &log);
	db = tu_open(tu_db, &o);
	tu_model_assert(&expect, db, "reopen after writes after the cut");
	st = tu_stats(db);
	cr_assert_eq(st.recovery_gap_seq, 0, "stale records made a new gap at %llu",
		     (unsigned long long)st.recovery_gap_seq);
	cr_assert_eq(st.discarded_records, 0);
	cr_assert_eq(st.discarded_bytes, 0);
	tu_close(db);
done:
	tu_model_free(&expect);
	free(lane_recs);
	free(by_seq);
	tu_wal_free(&w);
}

/* ---- (3) open, write, close, twenty times, with torn tails now and then -------------------- */

ParameterizedTestParameters(cycles, reopen_after_reopen)
{
	return cr_make_param_array(enum pkv_durability, (void *)tu_modes, 3);
}

ParameterizedTest(enum pkv_durability *mode, cycles, reopen_after_reopen, .init = tu_setup,
		  .fini = tu_teardown, .timeout = T_TIMEOUT)
{
	struct tu_model m;
	uint64_t rng = 0x5eed0001u + (uint64_t)*mode;
	bool torn_before = false;

	tu_model_init(&m);
	for (int c = 0; c < 20; c++) {
		struct tu_log log;
		pkv_options o;
		pkv_stats st;
		pkv *db;
		int nops = 30 + (int)(tu_rand(&rng) % 50);
		char k[16], v[128];
		size_t vl;
		const struct tu_model_ent *e;
		unsigned char *saved = NULL;
		size_t saved_len = 0;
		bool had;

		opts_small(&o, *mode, 2, &log);
		db = tu_open(tu_db, &o);
		tu_model_assert(&m, db, "at the start of a cycle");
		st = tu_stats(db);
		if (torn_before) {
			cr_assert_gt(st.discarded_bytes, 0, "cycle %d: torn tail not reported", c);
		} else {
			cr_assert_eq(st.discarded_bytes, 0, "cycle %d: clean store lost bytes", c);
			cr_assert_eq(st.recovery_gap_seq, 0);
		}

		for (int i = 0; i < nops; i++) {
			uint64_t r = tu_rand(&rng);

			snprintf(k, sizeof(k), "key%llu", (unsigned long long)(r % 64));
			if (r % 10 < 2) {
				int rc = pkv_del(db, k, strlen(k));

				cr_assert(rc == 0 || rc == PKV_NOTFOUND, "del: %d", rc);
				tu_model_del(&m, k, strlen(k));
			} else {
				vl = (r >> 8) % 100;
				for (size_t j = 0; j < vl; j++)
					v[j] = (char)('a' + (r >> (j % 48)) % 26);
				cr_assert_eq(pkv_put(db, k, strlen(k), v, vl), 0);
				tu_model_put(&m, k, strlen(k), v, vl);
			}
			if (c % 5 == 1 && i == nops / 2)
				cr_assert_eq(pkv_compact(db), 0);
		}

		/* The last write of the cycle: a put whose value ends in non-zero bytes. */
		snprintf(k, sizeof(k), "key%llu", (unsigned long long)(tu_rand(&rng) % 64));
		e = tu_model_find(&m, k, strlen(k));
		had = e && e->present;
		if (had) {
			saved_len = e->vlen;
			saved = malloc(saved_len + 1);
			cr_assert_not_null(saved);
			memcpy(saved, e->val, saved_len);
		}
		vl = (size_t)snprintf(v, sizeof(v), "last of cycle %d!", c);
		cr_assert_eq(pkv_put(db, k, strlen(k), v, vl), 0);
		tu_model_put(&m, k, strlen(k), v, vl);
		tu_model_assert(&m, db, "before close");
		tu_close(db);

		/* Every third cycle, damage the newest record: the model forgets the last put. */
		torn_before = c % 3 == 2;
		if (torn_before) {
			struct tu_wal w;
			const struct tu_rec *r;
			off_t at;

			tu_wal_read(tu_db, &w);
			cr_assert_gt(w.nrecs, 0);
			r = &w.recs[tu_wal_last(&w)];
			cr_assert_eq(r->type, TU_REC_PUT);
			cr_assert_eq(r->klen, strlen(k));
			cr_assert(!memcmp(r->key, k, r->klen),
				  "the newest record is not the last put");
			at = r->off + 1 + (off_t)(tu_rand(&rng) % (r->len - 1));
			switch ((c / 3) % 3) {
			case 0:
				tu_truncate(w.files[r->file], at);
				break;
			case 1: {
				static const unsigned char zeros[4096];

				tu_write_at(w.files[r->file], at, zeros,
					    (size_t)(r->off + (off_t)r->len - at));
				break;
			}
			default: {
				unsigned char b = (unsigned char)(0x80 | (tu_rand(&rng) & 0x7f));
				size_t len;
				unsigned char *f = tu_read_file(w.files[r->file], &len);

				b ^= f[at];
				free(f);
				tu_write_at(w.files[r->file], at, &b, 1);
				break;
			}
			}
			tu_wal_free(&w);
			if (had)
				tu_model_put(&m, k, strlen(k), saved, saved_len);
			else
				tu_model_del(&m, k, strlen(k));
		}
		free(saved);
	}
	{
		pkv *db = tu_open(tu_db, NULL);

		tu_model_assert(&m, db, "final");
		tu_close(db);
	}
	tu_model_free(&m);
}

/* ---- (4) damage that is not a torn tail ----------------------------------------------------- */

TestSuite(corrupt, .init = tu_setup, .fini = tu_teardown, .timeout = T_TIMEOUT);

/* A closed store in tu_root/pristine with a few records in lane 0; returns its first segment. */
static void small_store(char *pristine, char *seg, enum pkv_durability mode, int n)
{
	pkv_options o;
	struct tu_wal w;
	pkv *db;
	char k[16];

	tu_path(pristine, "pristine");
	opts_small(&o, mode, 1, NULL);
	db = tu_open(pristine, &o);
	for (int i = 0; i < n; i++) {
		snprintf(k, sizeof(k), "key%d", i);
		cr_assert_eq(pkv_put(db, k, strlen(k), "some value bytes", 16), 0);
	}
	tu_close(db);
	tu_wal_read(pristine, &w);
	cr_assert_eq(w.nrecs, n);
	tu_fmt(seg, PATH_MAX, "%s", w.files[w.recs[0].file]);
	tu_wal_free(&w);
}

/* Open @dir expecting PKV_ECORRUPT with @file named in the log; twice (the lock was released). */
static void expect_corrupt(const char *dir, const char *file, const char *what)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		struct tu_log log;
		pkv_options o;
		pkv *db = NULL;
		int rc;

		opts_small(&o, PKV_DURABLE_PROCESS, 1, &log);
		rc = pkv_open(dir, &o, &db);
		cr_assert_eq(rc, PKV_ECORRUPT, "%s: open gave %d (%s)", what, rc, pkv_strerror(rc));
		cr_assert_null(db, "%s: db_out set on failure", what);
		cr_assert(tu_log_contains(&log, base_name(file)),
			  "%s: the log does not name %s:\n%s", what, base_name(file), log.text);
	}
}

Test(corrupt, segment_header)
{
	static const int offsets[] = { 0, 5, 7, 8, 11, 12, 16, 23, 24, 31, 32, 39, 40, 47, 48, 51 };
	char pristine[PATH_MAX], seg[PATH_MAX], work[PATH_MAX], file[PATH_MAX], what[64];

	small_store(pristine, seg, PKV_DURABLE_PROCESS, 5);
	tu_path(work, "work");
	in_copy(file, work, seg);
	for (size_t i = 0; i < sizeof(offsets) / sizeof(offsets[0]); i++) {
		size_t len;
		unsigned char *f = tu_read_file(seg, &len);
		unsigned char b = f[offsets[i]] ^ 0x10;

		free(f);
		tu_rm_rf(work);
		tu_copy_tree(pristine, work);
		tu_write_at(file, offsets[i], &b, 1);
		snprintf(what, sizeof(what), "header byte %d flipped", offsets[i]);
		expect_corrupt(work, file, what);
	}
}

Test(corrupt, garbage_named_like_a_segment)
{
	static const struct {
		const char *name;
		size_t size;
	} junk[] = {
		{ "000-0000000007.wal", 64u << 10 }, /* a later segment of lane 0 */
		{ "003-0000000000.wal", 4096 }, /* a lane the store never had */
		{ "000-0000000009.wal", 10 }, /* shorter than a header */
	};
	char pristine[PATH_MAX], seg[PATH_MAX], work[PATH_MAX], file[PATH_MAX];
	uint64_t rng = 42;

	small_store(pristine, seg, PKV_DURABLE_PROCESS, 5);
	tu_path(work, "work");
	for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
		unsigned char *buf = malloc(junk[i].size);

		cr_assert_not_null(buf);
		for (size_t j = 0; j < junk[i].size; j++)
			buf[j] = (unsigned char)(tu_rand(&rng) >> 40 | 1);
		tu_rm_rf(work);
		tu_copy_tree(pristine, work);
		tu_fmt(file, sizeof(file), "%s/wal/%s", work, junk[i].name);
		{
			FILE *fp = fopen(file, "wb");

			cr_assert_not_null(fp);
			cr_assert_eq(fwrite(buf, 1, junk[i].size, fp), junk[i].size);
			cr_assert_eq(fclose(fp), 0);
		}
		free(buf);
		expect_corrupt(work, file, junk[i].name);
	}
}

Test(corrupt, tmp_segments_are_ignored_and_removed)
{
	char pristine[PATH_MAX], seg[PATH_MAX], tmp[PATH_MAX];
	unsigned char junk[4096];
	struct tu_model m;
	struct stat sb;
	pkv_options o;
	pkv *db;
	char k[16];
	FILE *fp;

	small_store(pristine, seg, PKV_DURABLE_PROCESS, 5);
	memset(junk, 0x6b, sizeof(junk));
	tu_fmt(tmp, sizeof(tmp), "%s/wal/000-0000000001.tmp", pristine);
	fp = fopen(tmp, "wb");
	cr_assert_not_null(fp);
	cr_assert_eq(fwrite(junk, 1, sizeof(junk), fp), sizeof(junk));
	cr_assert_eq(fclose(fp), 0);

	opts_small(&o, PKV_DURABLE_PROCESS, 1, NULL);
	db = tu_open(pristine, &o);
	tu_model_init(&m);
	for (int i = 0; i < 5; i++) {
		snprintf(k, sizeof(k), "key%d", i);
		tu_model_put(&m, k, strlen(k), "some value bytes", 16);
	}
	tu_model_assert(&m, db, "with a stray .tmp segment");
	cr_assert_neq(stat(tmp, &sb), 0, "open left the .tmp segment in place");
	tu_close(db);
	tu_model_free(&m);
}

Test(corrupt, recovery_report_in_log)
{
	char pristine[PATH_MAX], seg[PATH_MAX];
	struct tu_log log;
	struct tu_wal w;
	pkv_options o;
	pkv *db;
	const struct tu_rec *r;

	small_store(pristine, seg, PKV_DURABLE_PROCESS, 5);
	tu_wal_read(pristine, &w);
	r = &w.recs[tu_wal_last(&w)];
	tu_truncate(w.files[r->file], r->off + (off_t)r->len / 2);

	opts_small(&o, PKV_DURABLE_PROCESS, 1, &log);
	db = tu_open(pristine, &o);
	cr_assert_gt(log.count, 0, "no recovery report");
	cr_assert_leq(log.worst_level, PKV_LOG_INFO);
	cr_assert_geq(log.worst_level, PKV_LOG_ERROR);
	cr_assert(tu_log_contains(&log, base_name(w.files[r->file])),
		  "the recovery report does not name the torn segment:\n%s", log.text);
	cr_assert_gt(tu_stats(db).discarded_bytes, 0);
	cr_assert_eq(tu_stats(db).keys, 4);
	tu_close(db);
	tu_wal_free(&w);
}

/*
 * Under POWER every record carries how far the WAL was synced when it was written. A corrupt
 * record followed by one whose synced field covers it is no torn tail: a write that was
 * acknowledged as power-loss durable is gone, and the open must say so instead of serving a
 * state without it.
 */
Test(corrupt, lost_synced_record)
{
	char pristine[PATH_MAX], seg[PATH_MAX];
	struct tu_wal w;
	struct tu_rec *s;
	unsigned char b;
	size_t len;
	unsigned char *f;

	small_store(pristine, seg, PKV_DURABLE_POWER, 30);
	tu_wal_read(pristine, &w);
	s = tu_wal_by_seq(&w);
	cr_assert_eq(s[9].seq, 10);
	cr_assert(proves_loss(s + 10, 20, 10),
		  "no record after seq 10 says it was synced (synced field not maintained)");
	f = tu_read_file(w.files[s[9].file], &len);
	b = f[s[9].off + s[9].len - 3] ^ 0x01; /* a value byte */
	free(f);
	tu_write_at(w.files[s[9].file], s[9].off + (off_t)s[9].len - 3, &b, 1);
	expect_corrupt(pristine, w.files[s[9].file], "synced record 10 of 30 corrupted");
	free(s);
	tu_wal_free(&w);
}

/* ---- (5) the key count after a replay over a snapshot base (R.14) -------------------------- */

static void count_put(pkv *db, struct tu_model *m, const char *prefix, int id, int ver)
{
	char k[32], v[32];
	int kl = snprintf(k, sizeof(k), "%s%06d", prefix, id);
	int vl = snprintf(v, sizeof(v), "v%d.%d", id, ver);

	cr_assert_eq(pkv_put(db, k, (size_t)kl, v, (size_t)vl), 0);
	tu_model_put(m, k, (size_t)kl, v, (size_t)vl);
}

/* Delete a key; one the model holds as absent must be PKV_NOTFOUND (and writes nothing). */
static void count_del(pkv *db, struct tu_model *m, const char *prefix, int id)
{
	char k[32];
	int kl = snprintf(k, sizeof(k), "%s%06d", prefix, id);
	const struct tu_model_ent *e = tu_model_find(m, k, (size_t)kl);
	int rc = pkv_del(db, k, (size_t)kl);

	cr_assert_eq(rc, e && e->present ? 0 : PKV_NOTFOUND, "del %s: %d", k, rc);
	tu_model_del(m, k, (size_t)kl);
}

/* Reopen @dir read-write and read-only: both must hold exactly @m, the key count included. */
static pkv *count_reopen(const pkv_options *o, const struct tu_model *m, const char *what)
{
	pkv_options ro = *o;
	pkv *db;

	ro.flags |= PKV_OPEN_READONLY;
	db = tu_open(tu_db, &ro);
	tu_model_assert(m, db, what);
	tu_close(db);
	db = tu_open(tu_db, o);
	tu_model_assert(m, db, what);
	return db;
}

/*
 * R.15: pkv_close syncs a lane and cuts its last segment short, so damage inside a closed lane
 * with records behind it destroyed durable writes: PKV_ECORRUPT naming the file. The same bytes
 * in a preallocated (unclosed) lane are a torn tail (R.4), and damage to a closed lane's last
 * record alone stays one too (nothing behind it tells it from a tear).
 */
Test(corrupt, damage_inside_a_closed_lane)
{
	char pristine[PATH_MAX], seg[PATH_MAX], work[PATH_MAX], file[PATH_MAX];
	struct tu_wal w;
	struct tu_rec *s;
	pkv_options o;
	pkv_stats st;
	pkv *db;
	size_t len;
	unsigned char *f, b;
	off_t mid, last;

	small_store(pristine, seg, PKV_DURABLE_PROCESS, 20);
	tu_wal_read(pristine, &w);
	s = tu_wal_by_seq(&w);
	cr_assert_eq(s[5].seq, 6);
	mid = s[5].off + (off_t)s[5].len / 2;
	last = s[19].off + (off_t)s[19].len / 2;
	f = tu_read_file(seg, &len);
	cr_assert_lt((off_t)len, 64 << 10, "pkv_close left the segment at its allocated size");
	tu_path(work, "work");
	in_copy(file, work, seg);

	/* A closed lane, a record in the middle damaged: 14 durable records behind it. */
	tu_rm_rf(work);
	tu_copy_tree(pristine, work);
	b = f[mid] ^ 0x01;
	tu_write_at(file, mid, &b, 1);
	expect_corrupt(work, file, "a byte in the 6th of 20 records of a closed lane");

	/* The same damage in a lane that is still allocated whole (as a killed writer leaves it). */
	tu_rm_rf(work);
	tu_copy_tree(pristine, work);
	tu_write_at(file, mid, &b, 1);
	tu_truncate(file, 64 << 10);
	opts_small(&o, PKV_DURABLE_PROCESS, 1, NULL);
	db = tu_open(work, &o);
	st = tu_stats(db);
	cr_assert_eq(st.last_seq, 5, "a torn lane replays up to the damage, not %" PRIu64,
		     st.last_seq);
	cr_assert_gt(st.discarded_records, 0);
	tu_close(db);

	/* A closed lane whose last record alone is damaged: a tear, 19 records replayed. */
	tu_rm_rf(work);
	tu_copy_tree(pristine, work);
	b = f[last] ^ 0x01;
	tu_write_at(file, last, &b, 1);
	db = tu_open(work, &o);
	st = tu_stats(db);
	cr_assert_eq(st.last_seq, 19, "last_seq %" PRIu64, st.last_seq);
	tu_close(db);
	free(f);
	tu_wal_free(&w);
}

/*
 * R.14: replayed puts newer than the base are planned without probing it, and the count is
 * settled after the replay. Over a base, a tail that overwrites base keys, creates keys, deletes
 * base keys and new keys, deletes absent keys, brings deleted keys back, and does some of that in
 * batches and with expiries, must leave exactly the model's count; so must a tail with a clear in
 * it, and the same after the next compaction.
 */
Test(count, tail_over_base, .init = tu_setup, .fini = tu_teardown, .timeout = T_TIMEOUT)
{
	const uint64_t far = (uint64_t)time(NULL) * 1000 + 3600 * 1000; /* an hour from now */
	struct tu_model m;
	pkv_options o;
	pkv_batch *b;
	pkv *db;
	char k[32];
	int kl;

	tu_model_init(&m);
	opts_small(&o, PKV_DURABLE_PROCESS, 2, NULL);
	o.flags |= PKV_OPEN_NO_AUTOCOMPACT;
	db = tu_open(tu_db, &o);
	for (int id = 0; id < 600; id++)
		count_put(db, &m, "base", id, 0);
	cr_assert_eq(pkv_compact(db), 0);

	for (int id = 0; id < 100; id++) /* overwrite base keys */
		count_put(db, &m, "base", id, 1);
	for (int id = 0; id < 200; id++) /* new keys */
		count_put(db, &m, "new", id, 0);
	for (int id = 100; id < 150; id++) /* delete base keys */
		count_del(db, &m, "base", id);
	for (int id = 50; id < 90; id++) /* delete new keys */
		count_del(db, &m, "new", id);
	for (int id = 0; id < 10; id++) { /* absent keys: never written, or deleted already */
		count_del(db, &m, "none", id);
		count_del(db, &m, "base", 100 + id);
		count_del(db, &m, "new", 50 + id);
	}
	for (int id = 120; id < 130; id++) /* base keys back after their delete */
		count_put(db, &m, "base", id, 2);
	for (int id = 60; id < 65; id++) /* new keys back after their delete */
		count_put(db, &m, "new", id, 2);
	for (int id = 0; id < 20; id++) /* overwritten twice */
		count_put(db, &m, "base", id, 3);

	/* A batch: a new key, a base key and a new key overwritten, a base and a new key deleted. */
	cr_assert_eq(pkv_batch_new(&b), 0);
	for (int id = 0; id < 5; id++) {
		static const char *const what[] = { "batchnew", "base", "new" };

		for (int j = 0; j < 3; j++) {
			kl = snprintf(k, sizeof(k), "%s%06d", what[j], 200 + id);
			cr_assert_eq(pkv_batch_put(b, k, (size_t)kl, "bv", 2), 0);
			tu_model_put(&m, k, (size_t)kl, "bv", 2);
		}
		kl = snprintf(k, sizeof(k), "base%06d", 300 + id);
		cr_assert_eq(pkv_batch_del(b, k, (size_t)kl), 0);
		tu_model_del(&m, k, (size_t)kl);
		kl = snprintf(k, sizeof(k), "new%06d", 100 + id);
		cr_assert_eq(pkv_batch_del(b, k, (size_t)kl), 0);
		tu_model_del(&m, k, (size_t)kl);
	}
	cr_assert_eq(pkv_write(db, b, 0, NULL), 0);
	pkv_batch_free(b);

	/* Expiries that do not pass during the test, on base keys and on new keys. */
	for (int id = 400; id < 405; id++) {
		kl = snprintf(k, sizeof(k), "base%06d", id);
		cr_assert_eq(pkv_put_expire(db, k, (size_t)kl, "xv", 2, far, 0), 0);
		tu_model_put(&m, k, (size_t)kl, "xv", 2);
		kl = snprintf(k, sizeof(k), "xnew%06d", id);
		cr_assert_eq(pkv_put_expire(db, k, (size_t)kl, "xv", 2, far, 0), 0);
		tu_model_put(&m, k, (size_t)kl, "xv", 2);
	}
	tu_model_assert(&m, db, "before the reopen");
	tu_close(db);
	db = count_reopen(&o, &m, "after replaying the tail over the base");

	/* Writes after the replay count against the recounted shards. */
	for (int id = 500; id < 510; id++)
		count_del(db, &m, "base", id);
	for (int id = 0; id < 10; id++)
		count_put(db, &m, "later", id, 0);
	count_put(db, &m, "new", 0, 9);
	count_del(db, &m, "new", 1);
	tu_model_assert(&m, db, "after writes following the replay");
	cr_assert_eq(pkv_compact(db), 0);
	tu_model_assert(&m, db, "after the compaction");
	tu_close(db);
	db = count_reopen(&o, &m, "after reopening the new base");

	/* A clear in the tail: the base is disregarded, the count starts from zero. */
	for (int id = 0; id < 30; id++)
		count_put(db, &m, "base", id, 4);
	cr_assert_eq(pkv_clear(db), 0);
	for (size_t j = 0; j < m.cap; j++) /* keys the clear deleted must stay deleted */
		if (m.tab[j].used && m.tab[j].present)
			tu_model_del(&m, m.tab[j].key, m.tab[j].klen);
	for (int id = 0; id < 40; id++)
		count_put(db, &m, "base", id, 5);
	for (int id = 0; id < 10; id++)
		count_del(db, &m, "base", id);
	count_del(db, &m, "new", 2);
	tu_close(db);
	db = count_reopen(&o, &m, "after replaying a clear over the base");
	tu_close(db);
	tu_model_free(&m);
}
