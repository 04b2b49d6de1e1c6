/* SPDX-License-Identifier: MIT */
/*
 * runner.c - the timed loops. One experiment on one open store:
 *
 *   EXP_TPUT    closed loop: every worker runs its op stream as fast as it can. After a warm-up
 *               the main thread opens the measured window (phase 1) and closes it (phase 2);
 *               each worker counts only the ops it finished inside the window, timed by itself.
 *   EXP_LAT     open loop: op k of a worker is due at T0 + k / rate, fixed before the run. The
 *               latency of an op is its completion time minus its due time, so an op that waits
 *               behind a slow one is charged the wait (no coordinated omission). The service
 *               time (completion minus actual start) is kept beside it for diagnosis.
 *   EXP_RW      readers (get only) next to dedicated writers (overwrite only), counted apart.
 *   EXP_COMMIT  many writers; each put returns under the store's durability, so under a sync
 *               mode this is the group-commit rate. Every op is timed.
 *
 * Op streams are generated before the threads start and wrap around; a get copies the value
 * into a private buffer and its length is checked, misses and errors are counted and reported.
 */
#include "bench.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct shared {
	atomic_int phase; /* 0 warm-up, 1 measuring, 2 stop */
	pthread_barrier_t bar;
};

struct worker {
	pthread_t th;
	struct store *st;
	const struct exp *e;
	struct shared *sh;
	unsigned idx;
	int pin;
	uint32_t *ops;
	size_t mask;
	double rate;     /* EXP_LAT */
	uint64_t t0;     /* EXP_LAT: schedule start (set after the barrier) */
	uint64_t warm_ns, meas_ns;
	/* results */
	uint64_t n, gets, puts, dels, miss, badlen, errs;
	int first_err;
	uint64_t t_start, t_end;
	int valid, lagged;
	struct hist *h, *svc;
};

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

static inline void do_op(struct worker *w, void *t, uint8_t *buf, uint32_t op, uint64_t pos)
{
	const struct store *st = w->st;
	const struct kv_engine *eng = st->eng;
	unsigned klen = st->ks->klen, vlen = st->vp->vlen;
	const uint8_t *k = key_at(st->ks, OP_IDX(op));
	int rc;
	size_t vl = 0;

	switch (OP_TYPE(op)) {
	case OP_GET:
		rc = eng->get(st->db, t, k, klen, buf, vlen, &vl);
		w->gets++;
		if (rc == 0) {
			if (vl != vlen)
				w->badlen++;
		} else if (rc == KV_NOTFOUND) {
			w->miss++;
		} else {
			goto err;
		}
		return;
	case OP_PUT: {
		const uint8_t *v = st->vp->bytes + ((pos * 64u + w->idx * 4099u) & (VPOOL_BYTES - 1u));
		rc = eng->put(st->db, t, k, klen, v, vlen);
		w->puts++;
		if (rc)
			goto err;
		return;
	}
	default:
		rc = eng->del(st->db, t, k, klen);
		w->dels++;
		if (rc == KV_NOTFOUND)
			w->miss++;
		else if (rc)
			goto err;
		return;
	}
err:
	if (!w->errs)
		w->first_err = rc;
	w->errs++;
}

/* KV_MANY_BATCH consecutive gets of the stream through the engine's get_many. */
static void do_many(struct worker *w, void *t, uint64_t pos)
{
	const struct store *st = w->st;
	const void *keys[KV_MANY_BATCH];
	size_t vl[KV_MANY_BATCH];
	int rcs[KV_MANY_BATCH];
	unsigned vlen = st->vp->vlen;
	int rc;

	for (unsigned i = 0; i < KV_MANY_BATCH; i++)
		keys[i] = key_at(st->ks, OP_IDX(w->ops[(pos + i) & w->mask]));
	rc = st->eng->get_many(st->db, t, keys, st->ks->klen, KV_MANY_BATCH, vl, rcs);
	w->gets += KV_MANY_BATCH;
	if (rc) {
		if (!w->errs)
			w->first_err = rc;
		w->errs += KV_MANY_BATCH;
		return;
	}
	for (unsigned i = 0; i < KV_MANY_BATCH; i++) {
		if (rcs[i] == 0) {
			if (vl[i] != vlen)
				w->badlen++;
		} else if (rcs[i] == KV_NOTFOUND) {
			w->miss++;
		} else {
			if (!w->errs)
				w->first_err = rcs[i];
			w->errs++;
		}
	}
}

/* KV_PUT_BATCH consecutive puts of the stream (a put-only stream) through the engine's
 * put_many: one atomic batch, the values chosen as do_op chooses them. */
static void do_put_many(struct worker *w, void *t, uint64_t pos)
{
	const struct store *st = w->st;
	const void *keys[KV_PUT_BATCH], *vals[KV_PUT_BATCH];
	int rc;

	for (unsigned i = 0; i < KV_PUT_BATCH; i++) {
		keys[i] = key_at(st->ks, OP_IDX(w->ops[(pos + i) & w->mask]));
		vals[i] = st->vp->bytes + (((pos + i) * 64u + w->idx * 4099u) & (VPOOL_BYTES - 1u));
	}
	rc = st->eng->put_many(st->db, t, keys, st->ks->klen, vals, st->vp->vlen, KV_PUT_BATCH);
	w->puts += KV_PUT_BATCH;
	if (rc) {
		if (!w->errs)
			w->first_err = rc;
		w->errs += KV_PUT_BATCH;
	}
}

static void reset_counts(struct worker *w)
{
	w->n = w->gets = w->puts = w->dels = w->miss = w->badlen = w->errs = 0;
}

static void *closed_loop(void *arg)
{
	struct worker *w = arg;
	const struct kv_engine *eng = w->st->eng;
	if (w->pin)
		(void)pin_cpu(w->idx);
	void *t = eng->thread_init ? eng->thread_init(w->st->db) : NULL;
	uint8_t *buf = malloc(w->st->vp->vlen + 64u);
	int timed = w->e->kind == EXP_COMMIT;
	pthread_barrier_wait(&w->sh->bar);

	int seen = 0;
	uint64_t pos = (uint64_t)w->idx * 7919u;
	/* A read-only stream goes to an engine's multi-get, KV_MANY_BATCH gets at a time. */
	int many = eng->get_many && !timed && w->e->kind == EXP_TPUT && w->e->mix.get == 100;
	/* A put-only stream to an engine's batch write, KV_PUT_BATCH puts at a time (w->n counts
	 * keys, so its throughput compares with single puts key for key). */
	int pmany = eng->put_many && !timed && w->e->kind == EXP_TPUT && w->e->mix.put == 100;
	for (;;) {
		/* Slow (durable) ops look at the phase after each one, fast ones every 8. */
		int batch = timed ? 1 : many || pmany ? 0 : 8;
		if (many) {
			do_many(w, t, pos);
			pos += KV_MANY_BATCH;
			w->n += KV_MANY_BATCH;
		}
		if (pmany) {
			do_put_many(w, t, pos);
			pos += KV_PUT_BATCH;
			w->n += KV_PUT_BATCH;
		}
		for (int j = 0; j < batch; j++, pos++) {
			uint64_t s = timed ? now_ns() : 0;
			do_op(w, t, buf, w->ops[pos & w->mask], pos);
			w->n++;
			if (timed)
				hist_add(w->h, now_ns() - s);
		}
		int ph = atomic_load_explicit(&w->sh->phase, memory_order_relaxed);
		if (ph == seen)
			continue;
		if (ph == 1) {
			reset_counts(w);
			if (w->h)
				hist_init(w->h);
			w->t_start = now_ns();
			w->valid = 1;
		} else {
			w->t_end = now_ns();
			break; /* a worker that never saw phase 1 stays invalid */
		}
		seen = ph;
	}
	free(buf);
	if (eng->thread_fini)
		eng->thread_fini(w->st->db, t);
	return NULL;
}

static void *open_loop(void *arg)
{
	struct worker *w = arg;
	const struct kv_engine *eng = w->st->eng;
	if (w->pin)
		(void)pin_cpu(w->idx);
	void *t = eng->thread_init ? eng->thread_init(w->st->db) : NULL;
	uint8_t *buf = malloc(w->st->vp->vlen + 64u);
	pthread_barrier_wait(&w->sh->bar);

	/* Stagger the threads' schedules by a fraction of the interval. */
	double interval = 1e9 / w->rate;
	uint64_t t0 = now_ns() + 1000000u + (uint64_t)(interval * w->idx / (w->e->threads + 1));
	uint64_t meas = t0 + w->warm_ns, end = meas + w->meas_ns;
	uint64_t pos = (uint64_t)w->idx * 7919u;
	for (uint64_t k = 0;; k++, pos++) {
		uint64_t due = t0 + (uint64_t)((double)k * interval);
		if (due >= end)
			break;
		uint64_t s;
		while ((s = now_ns()) < due)
			cpu_relax();
		if (s > end + w->meas_ns) {
			/* Far behind its schedule: stop, and charge every op still due in the window
			 * the time it has waited so far (a lower bound; nothing is left out). */
			for (; due < end; k++, due = t0 + (uint64_t)((double)k * interval))
				if (due >= meas) {
					if (!w->valid) {
						reset_counts(w);
						w->valid = 1;
						w->t_start = due;
					}
					hist_add(w->h, s - due);
				}
			w->t_end = s;
			w->lagged = 1;
			break;
		}
		if (due >= meas && !w->valid) {
			reset_counts(w);
			w->valid = 1;
			w->t_start = due;
		}
		do_op(w, t, buf, w->ops[pos & w->mask], pos);
		uint64_t e = now_ns();
		if (w->valid) {
			w->n++;
			hist_add(w->h, e - due);
			hist_add(w->svc, e - s);
		}
		w->t_end = e;
	}
	free(buf);
	if (eng->thread_fini)
		eng->thread_fini(w->st->db, t);
	return NULL;
}

/* Counters from eng->stats, "name=value ..." */
#define MAXSTAT 32
struct statset {
	int n;
	char name[MAXSTAT][40];
	double v[MAXSTAT];
};

static void stats_read(struct store *st, struct statset *ss)
{
	char buf[2048];
	ss->n = 0;
	if (!st->eng->stats || st->eng->stats(st->db, buf, sizeof(buf)) != 0)
		return;
	char *save = NULL;
	for (char *tok = strtok_r(buf, " ", &save); tok && ss->n < MAXSTAT;
	     tok = strtok_r(NULL, " ", &save)) {
		char *eq = strchr(tok, '=');
		if (!eq || eq - tok >= 40)
			continue;
		memcpy(ss->name[ss->n], tok, (size_t)(eq - tok));
		ss->name[ss->n][eq - tok] = 0;
		ss->v[ss->n] = strtod(eq + 1, NULL);
		ss->n++;
	}
}

static double stats_delta(const struct statset *a, const struct statset *b, const char *name,
			  int *found)
{
	for (int i = 0; i < b->n; i++) {
		if (strcmp(b->name[i], name) != 0)
			continue;
		for (int j = 0; j < a->n; j++)
			if (strcmp(a->name[j], name) == 0) {
				*found = 1;
				return b->v[i] - a->v[j];
			}
	}
	*found = 0;
	return 0;
}

void emit_lat(struct sink *s, const char *id, const struct hist *h, const struct hist *svc)
{
	emit(s, id, "p50_ns", "ns", (double)hist_pct(h, 50));
	emit(s, id, "p99_ns", "ns", (double)hist_pct(h, 99));
	emit(s, id, "p999_ns", "ns", (double)hist_pct(h, 99.9));
	emit(s, id, "max_ns", "ns", (double)h->max);
	emit(s, id, "svc_p50_ns", "ns", (double)hist_pct(svc, 50));
	emit(s, id, "svc_p999_ns", "ns", (double)hist_pct(svc, 99.9));
	emit(s, id, "samples", "count", (double)h->count);
	/* The latency CDF, for plot.sh's CDF charts: the latency at each of these percentiles. */
	static const double cdf[] = {1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 97, 98, 99,
				     99.5, 99.7, 99.8, 99.9, 99.95, 99.97, 99.99, 99.995, 99.999};
	for (size_t i = 0; i < sizeof(cdf) / sizeof(cdf[0]); i++) {
		char name[32];

		snprintf(name, sizeof(name), "cdf_%g_ns", cdf[i]);
		emit(s, id, name, "ns", (double)hist_pct(h, cdf[i]));
	}
	emit(s, id, "cdf_100_ns", "ns", (double)h->max);
}

static size_t pow2_floor(size_t x)
{
	size_t p = 1;
	while (p * 2 <= x)
		p *= 2;
	return p;
}

int run_exp(struct store *st, const struct exp *e, const struct bopts *o, double warmup,
	    struct hist *lat_acc, struct sink *s)
{
	unsigned nw = e->threads + (e->kind == EXP_RW ? e->writers : 0);
	size_t len = pow2_floor(o->opcap);
	if (e->kind == EXP_COMMIT && len > (1u << 16))
		len = 1u << 16;
	if (e->kind == EXP_LAT) {
		size_t want = (size_t)(e->rate * (warmup + e->seconds)) + 1024u;
		if (want < len)
			len = pow2_floor(want) * 2u;
	}
	struct worker *ws = calloc(nw, sizeof(*ws));
	struct shared sh;
	struct zipf *z = NULL;
	int rc = 0;
	if (!ws)
		return -ENOMEM;
	atomic_init(&sh.phase, 0);
	if (e->dist == DIST_ZIPF) {
		z = zipf_new(st->ks->n, e->theta > 0 ? e->theta : 0.99);
		if (!z) {
			free(ws);
			return -ENOMEM;
		}
	}
	for (unsigned i = 0; i < nw; i++) {
		struct worker *w = &ws[i];
		w->st = st;
		w->e = e;
		w->sh = &sh;
		w->idx = i;
		w->pin = e->pin;
		w->rate = e->rate;
		w->mask = len - 1u;
		w->warm_ns = (uint64_t)(warmup * 1e9);
		w->meas_ns = (uint64_t)(e->seconds * 1e9);
		w->ops = malloc(len * sizeof(uint32_t));
		if (!w->ops) {
			rc = -ENOMEM;
			goto out;
		}
		struct mix m = e->mix;
		if (e->kind == EXP_RW)
			m = i < e->threads ? (struct mix){100, 0, 0} : (struct mix){0, 100, 0};
		rc = opstream_make(w->ops, len, st->ks->n, &m, e->dist, z,
				   o->seed * 1000003u + i * 7777u + (uint64_t)e->kind * 13u + 1u);
		if (rc)
			goto out;
		if (e->kind == EXP_LAT || e->kind == EXP_COMMIT) {
			w->h = malloc(sizeof(*w->h));
			w->svc = malloc(sizeof(*w->svc));
			if (!w->h || !w->svc) {
				rc = -ENOMEM;
				goto out;
			}
			hist_init(w->h);
			hist_init(w->svc);
		}
	}

	struct statset before, after;
	stats_read(st, &before);
	pthread_barrier_init(&sh.bar, NULL, nw + 1u);
	unsigned started = 0;
	for (unsigned i = 0; i < nw; i++) {
		void *(*fn)(void *) = e->kind == EXP_LAT ? open_loop : closed_loop;
		if (pthread_create(&ws[i].th, NULL, fn, &ws[i]) != 0) {
			rc = -EAGAIN;
			break;
		}
		started++;
	}
	if (started < nw) {
		/* Cannot reach the barrier with everyone: give up (the started ones block forever,
		 * so leave through exit in the caller). */
		emit_err(s, "%s: pthread_create failed", e->id);
		return rc;
	}
	pthread_barrier_wait(&sh.bar);
	if (e->kind != EXP_LAT) {
		sleep_ns((uint64_t)(warmup * 1e9));
		atomic_store(&sh.phase, 1);
		sleep_ns((uint64_t)(e->seconds * 1e9));
		atomic_store(&sh.phase, 2);
	}
	for (unsigned i = 0; i < nw; i++)
		pthread_join(ws[i].th, NULL);
	pthread_barrier_destroy(&sh.bar);
	stats_read(st, &after);

	/* ---- results ---- */
	double tput = 0, rd = 0, wr = 0;
	uint64_t miss = 0, badlen = 0, errs = 0, gets = 0, ops = 0;
	int first_err = 0, invalid = 0, lagged = 0;
	struct hist *h = NULL, *svc = NULL;
	if (e->kind == EXP_LAT || e->kind == EXP_COMMIT) {
		h = malloc(sizeof(*h));
		svc = malloc(sizeof(*svc));
		if (!h || !svc) {
			free(h);
			free(svc);
			rc = -ENOMEM;
			goto out;
		}
		hist_init(h);
		hist_init(svc);
	}
	for (unsigned i = 0; i < nw; i++) {
		struct worker *w = &ws[i];
		if (!w->valid || w->t_end <= w->t_start) {
			invalid++;
			continue;
		}
		double r = (double)w->n / ((double)(w->t_end - w->t_start) / 1e9);
		tput += r;
		if (e->kind == EXP_RW && i >= e->threads)
			wr += r;
		else
			rd += r;
		miss += w->miss;
		badlen += w->badlen;
		gets += w->gets;
		ops += w->n;
		if (w->errs && !first_err)
			first_err = w->first_err;
		errs += w->errs;
		lagged |= w->lagged;
		if (h) {
			hist_merge(h, w->h);
			hist_merge(svc, w->svc);
		}
	}
	switch (e->kind) {
	case EXP_TPUT:
		emit(s, e->id, "Mops", "Mops/s", tput / 1e6);
		break;
	case EXP_RW:
		emit(s, e->id, "read_Mops", "Mops/s", rd / 1e6);
		emit(s, e->id, "write_Mops", "Mops/s", wr / 1e6);
		break;
	case EXP_LAT:
		if (lat_acc) {
			/* The caller merges the slices and reports percentiles over all of them. */
			hist_merge(&lat_acc[0], h);
			hist_merge(&lat_acc[1], svc);
		} else {
			emit_lat(s, e->id, h, svc);
		}
		emit(s, e->id, "offered_Mops", "Mops/s", e->rate * e->threads / 1e6);
		emit(s, e->id, "done_Mops", "Mops/s", tput / 1e6);
		if (lagged)
			emit_err(s, "%s: could not keep up with %.0f ops/s per thread; stopped at "
				 "twice the window, pending ops charged their wait", e->id, e->rate);
		break;
	case EXP_COMMIT:
		emit(s, e->id, "commits_per_s", "ops/s", tput);
		emit(s, e->id, "p50_us", "us", (double)hist_pct(h, 50) / 1e3);
		emit(s, e->id, "p99_us", "us", (double)hist_pct(h, 99) / 1e3);
		emit(s, e->id, "max_us", "us", (double)h->max / 1e3);
		break;
	}
	if (gets && e->kind != EXP_COMMIT)
		emit(s, e->id, "miss_pct", "%", 100.0 * (double)miss / (double)gets);
	if (badlen)
		emit_err(s, "%s: %llu gets returned a value of the wrong length", e->id,
			 (unsigned long long)badlen);
	if (errs)
		emit_err(s, "%s: %llu operations failed (first rc %d: %s)", e->id,
			 (unsigned long long)errs, first_err,
			 st->eng->strerror ? st->eng->strerror(first_err) : "?");
	if (invalid)
		emit_err(s, "%s: %d workers finished no op inside the measured window", e->id,
			 invalid);
	/* Counters the store reports, as deltas over the experiment. */
	for (int i = 0; i < after.n; i++) {
		int found;
		double d = stats_delta(&before, &after, after.name[i], &found);
		if (found) {
			char m[64];
			snprintf(m, sizeof(m), "d_%s", after.name[i]);
			emit(s, e->id, m, "count", d);
		}
	}
	{
		int f1, f2;
		double syncs = stats_delta(&before, &after, "syncs", &f1);
		double sw = stats_delta(&before, &after, "synced_writes", &f2);
		if (f1 && f2 && syncs > 0)
			emit(s, e->id, "writes_per_sync", "x", sw / syncs);
	}
	(void)ops;
	free(h);
	free(svc);
out:
	for (unsigned i = 0; i < nw; i++) {
		free(ws[i].ops);
		free(ws[i].h);
		free(ws[i].svc);
	}
	free(ws);
	zipf_free(z);
	return rc;
}
