/* SPDX-License-Identifier: MIT */
/*
 * session.c - what one forked child does. Each function generates its keys and values first,
 * then opens one system, measures, reports result lines into the sink and exits.
 *
 *   session_run             load N keys, memory per key, then the group's experiments in order.
 *   session_inproc          every system of a group in this one process, experiments run in
 *                           short slices interleaved across the systems.
 *   session_restart_*       prepare: N keys, checkpoint, a tail of updates, close. open: time the
 *                           reopen (cold: page cache of the store's files dropped first; warm),
 *                           verify every tail key and a sample of the rest, reads right after.
 *                           In-memory engines "restart" by reloading a flat dump file.
 *   session_wamp            bytes the process caused to be written (/proc/self/io write_bytes)
 *                           per byte of keys and values written by the user.
 *   session_fsync           the device's own fdatasync rate in the data dir.
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- result lines ----------------------------------------------------------------------- */

void emit(struct sink *s, const char *exp, const char *metric, const char *unit, double v)
{
	fprintf(s->f, "R\t%s\t%s\t%s\t%s\t%.9g\n", s->sys, exp, metric, unit, v);
	fflush(s->f);
}

void emit_cfg(struct sink *s, const char *text)
{
	fprintf(s->f, "C\t%s\t", s->sys);
	for (const char *p = text; *p; p++)
		fputc(*p == '\n' || *p == '\t' ? ' ' : *p, s->f);
	fputc('\n', s->f);
	fflush(s->f);
}

void emit_err(struct sink *s, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	for (char *p = buf; *p; p++)
		if (*p == '\n' || *p == '\t')
			*p = ' ';
	fprintf(s->f, "E\t%s\t%s\n", s->sys, buf);
	fflush(s->f);
}

/* ---- helpers ---------------------------------------------------------------------------- */

static double secs_since(uint64_t t0);

void sys_dir(const struct sysdesc *sd, const struct bopts *o, char *buf, size_t cap)
{
	char name[sizeof(sd->name)];
	snprintf(name, sizeof(name), "%s", sd->name);
	for (char *p = name; *p; p++)
		if (*p == ':' || *p == '/')
			*p = '-';
	snprintf(buf, cap, "%s/%s", o->dir, name);
}

static const char *errstr(const struct kv_engine *e, int rc)
{
	if (e->strerror)
		return e->strerror(rc);
	return rc < 0 && rc > -4096 ? strerror(-rc) : "error";
}

static void conf_init(struct kv_conf *c, const struct sysdesc *sd, const struct bopts *o,
		      const char *dir, enum dur d)
{
	memset(c, 0, sizeof(*c));
	c->dir = sd->eng->persistent ? dir : NULL;
	c->dur = d;
	c->nkeys = o->nkeys;
	c->klen = o->klen;
	c->vlen = o->vlen;
	c->threads = 16;
	c->sync_interval_ms = 100;
}

struct ctx {
	struct keyset ks;
	struct valpool vp;
	char dir[PATH_MAX];
};

static int ctx_init(struct ctx *x, const struct sysdesc *sd, const struct bopts *o,
		    struct sink *s)
{
	memset(x, 0, sizeof(*x));
	int rc = keyset_make(&x->ks, o->nkeys, o->klen, o->seed);
	if (!rc)
		rc = valpool_make(&x->vp, o->vlen, o->seed);
	if (rc) {
		emit_err(s, "cannot generate keys/values: %s", strerror(-rc));
		return rc;
	}
	sys_dir(sd, o, x->dir, sizeof(x->dir));
	return 0;
}

static void ctx_fini(struct ctx *x)
{
	keyset_free(&x->ks);
	valpool_free(&x->vp);
}

/* Open with a fresh directory or the existing one; reports the configuration line. */
static int open_store(const struct sysdesc *sd, const struct bopts *o, struct ctx *x, enum dur d,
		      int fresh, void **db, struct sink *s, int report_cfg)
{
	struct kv_conf c;
	char cfg[1024] = "";
	int rc;
	if (sd->eng->persistent) {
		if (fresh && (rc = rm_rf(x->dir)) != 0) {
			emit_err(s, "cannot remove %s: %s", x->dir, strerror(-rc));
			return rc;
		}
		if ((rc = mkdir_p(x->dir)) != 0) {
			emit_err(s, "cannot create %s: %s", x->dir, strerror(-rc));
			return rc;
		}
	}
	conf_init(&c, sd, o, x->dir, d);
	rc = sd->eng->open(&c, db, cfg, sizeof(cfg));
	if (rc) {
		emit_err(s, "open failed: %d (%s)", rc, errstr(sd->eng, rc));
		return rc;
	}
	if (report_cfg)
		emit_cfg(s, cfg);
	return 0;
}

static int load(const struct sysdesc *sd, void *db, void *t, const struct ctx *x, int bulk,
		struct sink *s)
{
	const struct kv_engine *e = sd->eng;
	int rc = 0;
	if (bulk && e->bulk_begin && (rc = e->bulk_begin(db, t)) != 0)
		goto fail;
	for (uint64_t i = 0; i < x->ks.n; i++) {
		rc = e->put(db, t, key_at(&x->ks, i), x->ks.klen, value_of(&x->vp, i, 0), x->vp.vlen);
		if (rc)
			goto fail;
	}
	if (bulk && e->bulk_end && (rc = e->bulk_end(db, t)) != 0)
		goto fail;
	return 0;
fail:
	emit_err(s, "load failed: %d (%s)", rc, errstr(e, rc));
	return rc;
}

/* Check that n sampled keys read back as version ver. Returns the number of mismatches. */
static uint64_t verify(const struct sysdesc *sd, void *db, void *t, const struct ctx *x,
		       const uint64_t *idx, uint64_t n, uint64_t ver, struct sink *s)
{
	uint8_t *buf = malloc(x->vp.vlen + 1u);
	uint64_t bad = 0;
	if (!buf)
		return n;
	for (uint64_t j = 0; j < n; j++) {
		size_t vl = 0;
		uint64_t i = idx[j];
		int rc = (sd->eng->get_copy ? sd->eng->get_copy : sd->eng->get)(
			db, t, key_at(&x->ks, i), x->ks.klen, buf, x->vp.vlen, &vl);
		if (rc || vl != x->vp.vlen || memcmp(buf, value_of(&x->vp, i, ver), vl) != 0) {
			if (bad == 0)
				emit_err(s, "verify: key #%llu (version %llu) read back wrong: rc %d, "
					 "len %zu", (unsigned long long)i, (unsigned long long)ver,
					 rc, vl);
			bad++;
		}
	}
	free(buf);
	return bad;
}

/* Warm the store's caches with its own full scan, untimed: a store with a block cache starts
 * the experiments warm, as a long-running application would find it. */
static void prewarm(const struct sysdesc *sd, void *db, void *t, const struct ctx *x,
		    struct sink *s)
{
	(void)x;
	if (!sd->eng->warm)
		return;
	uint64_t t0 = now_ns();
	int rc = sd->eng->warm(db, t);
	if (rc)
		emit_err(s, "warming the caches failed: %d (%s)", rc, errstr(sd->eng, rc));
	emit(s, "load", "warm_s", "s", secs_since(t0));
}

/* 4 KiB append + fdatasync rate, and overwrite-in-a-preallocated-file rate, in dir. */
static void probe_fsync(const char *dir, double *app, double *pre)
{
	char sub[PATH_MAX + 16];
	*app = *pre = 0;
	snprintf(sub, sizeof(sub), "%s.fsync-probe", dir);
	if (mkdir_p(sub) != 0)
		return;
	if (fsync_rate(sub, 0.4, 4096, app, pre, NULL) != 0)
		*app = *pre = 0;
	(void)rm_rf(sub);
}

static uint64_t *sample(uint64_t n, uint64_t count, uint64_t seed)
{
	uint64_t *v = malloc(count * sizeof(*v));
	if (!v)
		return NULL;
	for (uint64_t j = 0; j < count; j++)
		v[j] = mix64(seed + j) % n;
	return v;
}

/* The tail keys of the restart experiment: distinct while j < n. */
static uint64_t tail_idx(uint64_t j, uint64_t n)
{
	uint64_t p = 1000003u;
	if (n % p == 0)
		p = 1;
	return (j * p) % n;
}

static double secs_since(uint64_t t0)
{
	return (double)(now_ns() - t0) / 1e9;
}

/* ---- session: load + experiments -------------------------------------------------------- */

int session_run(const struct sysdesc *sd, const struct exp *exps, int nexp,
		const struct bopts *o, struct sink *s)
{
	const struct kv_engine *e = sd->eng;
	struct ctx x;
	void *db = NULL, *t = NULL;
	uint64_t rss0 = 0, anon0 = 0, rss1 = 0, anon1 = 0;
	int rc = ctx_init(&x, sd, o, s);
	if (rc)
		return rc;
	(void)rss_bytes(&rss0, &anon0);

	/* Sync systems load without syncing, then reopen in their sync mode: a million
	 * fdatasyncs would measure nothing of interest and take an hour. */
	enum dur load_dur = sd->dur == DUR_SYNC ? DUR_NOSYNC : sd->dur;
	rc = open_store(sd, o, &x, load_dur, 1, &db, s, sd->dur == load_dur);
	if (rc)
		goto out;
	t = e->thread_init ? e->thread_init(db) : NULL;
	uint64_t t0 = now_ns();
	rc = load(sd, db, t, &x, 1, s);
	if (rc)
		goto out;
	double ls = secs_since(t0);
	emit(s, "load", "load_Mops", "Mops/s", (double)x.ks.n / ls / 1e6);
	if (load_dur != sd->dur) {
		if (e->thread_fini)
			e->thread_fini(db, t);
		t = NULL;
		rc = e->close(db);
		db = NULL;
		if (rc) {
			emit_err(s, "close after load failed: %d (%s)", rc, errstr(e, rc));
			goto out;
		}
		uint64_t t1 = now_ns();
		rc = open_store(sd, o, &x, sd->dur, 0, &db, s, 1);
		if (rc)
			goto out;
		emit(s, "load", "reopen_s", "s", secs_since(t1));
		t = e->thread_init ? e->thread_init(db) : NULL;
	}
	(void)rss_bytes(&rss1, &anon1);
	emit(s, "mem", "rss_B_per_key", "B/key", ((double)rss1 - (double)rss0) / (double)x.ks.n);
	emit(s, "mem", "anon_B_per_key", "B/key", ((double)anon1 - (double)anon0) / (double)x.ks.n);

	uint64_t *smp = sample(x.ks.n, 1000, o->seed + 99);
	if (smp) {
		uint64_t bad = verify(sd, db, t, &x, smp, 1000, 0, s);
		if (bad)
			emit(s, "load", "verify_errors", "count", (double)bad);
		free(smp);
	}

	if (!nexp && e->settle) {
		/* The memory group: also at rest, once the background work the load started (a
		 * compaction, RocksDB's flushes) is done; rss_B_per_key above is right after the
		 * load, whatever was running then. */
		uint64_t rss3 = 0, anon3 = 0;

		if (e->settle(db) == 0 && rss_bytes(&rss3, &anon3) == 0)
			emit(s, "mem", "rss_rest_B_per_key", "B/key",
			     ((double)rss3 - (double)rss0) / (double)x.ks.n);
	}
	if (nexp && e->settle) {
		uint64_t ts = now_ns();
		int src = e->settle(db);
		if (src)
			emit_err(s, "settling after the load failed: %d (%s)", src, errstr(e, src));
		emit(s, "load", "settle_s", "s", secs_since(ts));
	}
	if (nexp && !o->no_prewarm)
		prewarm(sd, db, t, &x, s);

	struct store st = {.eng = e, .db = db, .sd = sd, .ks = &x.ks, .vp = &x.vp};
	for (int i = 0; i < nexp; i++) {
		double a0 = 0, p0 = 0, a1 = 0, p1 = 0;
		if (exps[i].kind == EXP_COMMIT && e->persistent)
			probe_fsync(x.dir, &a0, &p0);
		rc = run_exp(&st, &exps[i], o, o->warmup, NULL, s);
		if (rc)
			emit_err(s, "%s: %s", exps[i].id, strerror(-rc));
		if (exps[i].kind == EXP_COMMIT && e->persistent) {
			/* The device's rates right before and right after, in the store's directory:
			 * on a shared machine they drift, so the comparison uses these, not the
			 * disk group's figures from minutes earlier. */
			probe_fsync(x.dir, &a1, &p1);
			if (a0 > 0 && a1 > 0)
				emit(s, exps[i].id, "dev_fsync_per_s", "syncs/s", (a0 + a1) / 2);
			if (p0 > 0 && p1 > 0)
				emit(s, exps[i].id, "dev_prealloc_fsync_per_s", "syncs/s", (p0 + p1) / 2);
		}
	}
	uint64_t rss2 = 0, anon2 = 0;
	(void)rss_bytes(&rss2, &anon2);
	emit(s, "mem", "rss_end_B_per_key", "B/key", ((double)rss2 - (double)rss0) / (double)x.ks.n);
	rc = 0;
out:
	if (db) {
		if (e->thread_fini)
			e->thread_fini(db, t);
		uint64_t tc = now_ns();
		int crc = e->close(db);
		if (crc)
			emit_err(s, "close failed: %d (%s)", crc, errstr(e, crc));
		else
			emit(s, "load", "close_s", "s", secs_since(tc));
	}
	if (e->persistent) {
		emit(s, "mem", "disk_B_per_key", "B/key", (double)dir_bytes(x.dir) / (double)x.ks.n);
		(void)rm_rf(x.dir);
	}
	ctx_fini(&x);
	return rc;
}

/* ---- interleaved: every system in one process ------------------------------------------ */

/*
 * On a shared or virtual machine the speed available to a process drifts over seconds, so two
 * systems measured one after the other can differ by the drift alone. session_inproc loads all
 * systems of the group into one process and then, for each experiment, runs short slices
 * system after system (the order rotating every repetition): each system's repetitions are
 * interleaved with its peers', and repetition i of two systems are seconds apart at most, which
 * the report uses for paired ratios. Opening, loading and closing each store happens on a
 * thread of its own, so that stores that register threads with liburcu (pkv, cds_lfht) never
 * see each other's registrations. Resident memory is not measured here (the stores share the
 * process): the memory group measures it in a fresh process per system.
 */
struct inproc_sys {
	const struct sysdesc *sd;
	const struct bopts *o;
	struct ctx *x;
	struct sink *s;
	void *db;
	int rc;
	int close;
};

static void *inproc_open_thread(void *arg)
{
	struct inproc_sys *is = arg;
	const struct kv_engine *e = is->sd->eng;
	void *t = NULL;
	char dir[PATH_MAX];

	if (is->close) {
		uint64_t t0 = now_ns();
		is->rc = e->close(is->db);
		if (is->rc)
			emit_err(is->s, "close failed: %d (%s)", is->rc, errstr(e, is->rc));
		else
			emit(is->s, "load", "close_s", "s", secs_since(t0));
		return NULL;
	}
	/* Each system its own directory under the data dir. A sync-mode store is loaded without
	 * syncing, then closed and reopened in its sync mode (as session_run does). */
	enum dur load_dur = is->sd->dur == DUR_SYNC ? DUR_NOSYNC : is->sd->dur;
	memcpy(dir, is->x->dir, sizeof(dir));
	sys_dir(is->sd, is->o, is->x->dir, sizeof(is->x->dir));
	is->rc = open_store(is->sd, is->o, is->x, load_dur, 1, &is->db, is->s,
			    load_dur == is->sd->dur);
	if (is->rc)
		goto out_dir;
	t = e->thread_init ? e->thread_init(is->db) : NULL;
	uint64_t t0 = now_ns();
	is->rc = load(is->sd, is->db, t, is->x, 1, is->s);
	if (!is->rc)
		emit(is->s, "load", "load_Mops", "Mops/s", (double)is->x->ks.n / secs_since(t0) / 1e6);
	if (!is->rc && load_dur != is->sd->dur) {
		if (e->settle)
			(void)e->settle(is->db);
		if (e->thread_fini)
			e->thread_fini(is->db, t);
		t = NULL;
		is->rc = e->close(is->db);
		is->db = NULL;
		if (!is->rc)
			is->rc = open_store(is->sd, is->o, is->x, is->sd->dur, 0, &is->db, is->s, 1);
		if (is->rc)
			goto out_dir;
		t = e->thread_init ? e->thread_init(is->db) : NULL;
	}
out_dir:
	memcpy(is->x->dir, dir, sizeof(dir));
	if (is->rc || !is->db)
		return NULL;
	if (!is->rc && e->settle && e->settle(is->db) != 0)
		emit_err(is->s, "settling after the load failed");
	if (!is->rc && !is->o->no_prewarm)
		prewarm(is->sd, is->db, t, is->x, is->s);
	if (e->thread_fini)
		e->thread_fini(is->db, t);
	return NULL;
}

static int on_thread(void *(*fn)(void *), void *arg)
{
	pthread_t th;
	if (pthread_create(&th, NULL, fn, arg) != 0)
		return -EAGAIN;
	pthread_join(th, NULL);
	return 0;
}

int session_inproc(const struct sysdesc *sds, int nsys, const struct exp *exps, int nexp,
		   int reps, const struct bopts *o, struct sink *s)
{
	struct ctx x;
	struct inproc_sys *is = calloc((size_t)nsys, sizeof(*is));
	struct sink *sk = calloc((size_t)nsys, sizeof(*sk));
	struct hist *acc = malloc(2u * (size_t)nsys * sizeof(*acc));
	int rc = 0;
	if (!is || !sk || !acc) {
		free(is);
		free(sk);
		free(acc);
		return -ENOMEM;
	}
	/* Keys and values once, shared by every system (they only read them). */
	rc = ctx_init(&x, &sds[0], o, s);
	if (rc)
		goto out_free;
	for (int i = 0; i < nsys; i++) {
		sk[i] = (struct sink){.f = s->f, .sys = sds[i].name};
		is[i] = (struct inproc_sys){.sd = &sds[i], .o = o, .x = &x, .s = &sk[i]};
		if (on_thread(inproc_open_thread, &is[i]) != 0 || is[i].rc) {
			emit_err(&sk[i], "not measured: open or load failed");
			is[i].db = NULL;
		}
	}
	for (int ei = 0; ei < nexp; ei++) {
		const struct exp *e = &exps[ei];
		double a0 = 0, p0 = 0, a1 = 0, p1 = 0;
		for (int i = 0; i < 2 * nsys; i++)
			hist_init(&acc[i]);
		if (e->kind == EXP_COMMIT)
			probe_fsync(x.dir, &a0, &p0);
		for (int r = 0; r < reps; r++) {
			for (int k = 0; k < nsys; k++) {
				int i = (k + r) % nsys;
				if (r % 2)
					i = nsys - 1 - i;
				if (!is[i].db)
					continue;
				/* pkv:ref and pkv:many write exactly as pkv:process does, and
				 * pkv:batch8 reads as it does: each runs only what it changes. */
				if (sds[i].eng->reads_only &&
				    (e->kind == EXP_RW || e->kind == EXP_COMMIT || e->mix.put ||
				     e->mix.del))
					continue;
				if (sds[i].eng->writes_only &&
				    (e->kind != EXP_TPUT || e->mix.put != 100))
					continue;
				struct store st = {.eng = sds[i].eng, .db = is[i].db, .sd = &sds[i],
						   .ks = &x.ks, .vp = &x.vp};
				int erc = run_exp(&st, e, o, o->slice_warmup,
						  e->kind == EXP_LAT ? &acc[2 * i] : NULL, &sk[i]);
				if (erc)
					emit_err(&sk[i], "%s: %s", e->id, strerror(-erc));
			}
		}
		if (e->kind == EXP_LAT)
			for (int i = 0; i < nsys; i++)
				if (is[i].db && acc[2 * i].count)
					emit_lat(&sk[i], e->id, &acc[2 * i], &acc[2 * i + 1]);
		if (e->kind == EXP_COMMIT) {
			/* The device's rates before and after all repetitions, beside every system. */
			probe_fsync(x.dir, &a1, &p1);
			for (int i = 0; i < nsys; i++) {
				if (!is[i].db)
					continue;
				if (a0 > 0 && a1 > 0)
					emit(&sk[i], e->id, "dev_fsync_per_s", "syncs/s", (a0 + a1) / 2);
				if (p0 > 0 && p1 > 0)
					emit(&sk[i], e->id, "dev_prealloc_fsync_per_s", "syncs/s",
					     (p0 + p1) / 2);
			}
		}
	}
	for (int i = 0; i < nsys; i++) {
		if (!is[i].db)
			continue;
		is[i].close = 1;
		(void)on_thread(inproc_open_thread, &is[i]);
		if (sds[i].eng->persistent) {
			char dir[PATH_MAX];
			sys_dir(&sds[i], o, dir, sizeof(dir));
			(void)rm_rf(dir);
		}
	}
	ctx_fini(&x);
out_free:
	free(is);
	free(sk);
	free(acc);
	return rc;
}

/* ---- restart ---------------------------------------------------------------------------- */

/* Dump file of the in-memory engines: records of u32 klen, u32 vlen, key, value. */
static int dump_write(const struct ctx *x, uint64_t tail, struct sink *s)
{
	char path[PATH_MAX + 16];
	snprintf(path, sizeof(path), "%s/dump.bin", x->dir);
	FILE *f = fopen(path, "wb");
	if (!f) {
		emit_err(s, "cannot create %s: %s", path, strerror(errno));
		return -errno;
	}
	uint32_t hdr[2] = {x->ks.klen, x->vp.vlen};
	for (uint64_t j = 0; j < x->ks.n + tail; j++) {
		uint64_t i = j < x->ks.n ? j : tail_idx(j - x->ks.n, x->ks.n);
		uint64_t ver = j < x->ks.n ? 0 : 1;
		fwrite(hdr, sizeof(hdr), 1, f);
		fwrite(key_at(&x->ks, i), x->ks.klen, 1, f);
		fwrite(value_of(&x->vp, i, ver), x->vp.vlen, 1, f);
	}
	int rc = fflush(f) == 0 && fsync(fileno(f)) == 0 ? 0 : -errno;
	fclose(f);
	return rc;
}

static int dump_load(const struct sysdesc *sd, void *db, void *t, const struct ctx *x,
		     struct sink *s)
{
	char path[PATH_MAX + 16];
	snprintf(path, sizeof(path), "%s/dump.bin", x->dir);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		emit_err(s, "cannot open %s: %s", path, strerror(errno));
		return -errno;
	}
	size_t cap = 1u << 20, have = 0, off = 0;
	uint8_t *buf = malloc(2 * cap); /* a record is far smaller than cap */
	int rc = 0;
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	for (;;) {
		/* Keep the unparsed rest at the front, refill behind it. */
		memmove(buf, buf + off, have - off);
		have -= off;
		off = 0;
		ssize_t r = read(fd, buf + have, cap);
		if (r < 0) {
			rc = -errno;
			break;
		}
		have += (size_t)r;
		while (have - off >= 8) {
			uint32_t kl, vl;
			memcpy(&kl, buf + off, 4);
			memcpy(&vl, buf + off + 4, 4);
			if (have - off < 8u + kl + vl)
				break;
			rc = sd->eng->put(db, t, buf + off + 8, kl, buf + off + 8 + kl, vl);
			if (rc)
				goto done;
			off += 8u + kl + vl;
		}
		if (r == 0)
			break;
	}
done:
	free(buf);
	close(fd);
	return rc;
}

int session_restart_prepare(const struct sysdesc *sd, const struct bopts *o, struct sink *s)
{
	const struct kv_engine *e = sd->eng;
	struct ctx x;
	void *db = NULL, *t = NULL;
	int rc = ctx_init(&x, sd, o, s);
	if (rc)
		return rc;
	uint64_t tail = o->tail < x.ks.n ? o->tail : x.ks.n;
	if (!e->persistent) {
		(void)rm_rf(x.dir);
		rc = mkdir_p(x.dir);
		if (!rc)
			rc = dump_write(&x, tail, s);
		emit_cfg(s, "restart = reload a flat dump file (u32 klen, u32 vlen, key, value per "
			    "record; N records then the tail) with read() into a fresh presized map");
		goto out;
	}
	rc = open_store(sd, o, &x, DUR_NOSYNC, 1, &db, s, 0);
	if (rc)
		goto out;
	t = e->thread_init ? e->thread_init(db) : NULL;
	rc = load(sd, db, t, &x, 1, s);
	if (rc)
		goto out;
	if (e->checkpoint) {
		uint64_t t0 = now_ns();
		rc = e->checkpoint(db);
		if (rc) {
			emit_err(s, "checkpoint failed: %d (%s)", rc, errstr(e, rc));
			goto out;
		}
		emit(s, "restart", "checkpoint_s", "s", secs_since(t0));
	}
	for (uint64_t j = 0; j < tail; j++) {
		uint64_t i = tail_idx(j, x.ks.n);
		rc = e->put(db, t, key_at(&x.ks, i), x.ks.klen, value_of(&x.vp, i, 1), x.vp.vlen);
		if (rc) {
			emit_err(s, "tail put failed: %d (%s)", rc, errstr(e, rc));
			goto out;
		}
	}
out:
	if (db) {
		if (e->thread_fini)
			e->thread_fini(db, t);
		uint64_t t0 = now_ns();
		int crc = e->close(db);
		if (crc)
			emit_err(s, "close failed: %d (%s)", crc, errstr(e, crc));
		else if (!rc)
			emit(s, "restart", "close_s", "s", secs_since(t0));
	}
	if (!rc)
		emit(s, "restart", "disk_MB", "MB", (double)dir_bytes(x.dir) / 1e6);
	ctx_fini(&x);
	return rc;
}

int session_restart_open(const struct sysdesc *sd, const struct bopts *o, struct sink *s,
			 int cold)
{
	const struct kv_engine *e = sd->eng;
	const char *tag = cold ? "restart.cold" : "restart.warm";
	struct ctx x;
	void *db = NULL, *t = NULL;
	uint64_t rss0 = 0, anon0 = 0, rss1 = 0, anon1 = 0, evicted = 0;
	int rc = ctx_init(&x, sd, o, s);
	if (rc)
		return rc;
	uint64_t tail = o->tail < x.ks.n ? o->tail : x.ks.n;
	if (cold && (rc = evict_dir(x.dir, &evicted)) != 0) {
		emit_err(s, "cannot drop the page cache of %s: %s", x.dir, strerror(-rc));
		goto out;
	}
	(void)rss_bytes(&rss0, &anon0);

	uint64_t t0 = now_ns();
	rc = open_store(sd, o, &x, e->persistent ? DUR_NOSYNC : DUR_MEM, 0, &db, s, !cold);
	if (rc)
		goto out;
	t = e->thread_init ? e->thread_init(db) : NULL;
	if (!e->persistent && (rc = dump_load(sd, db, t, &x, s)) != 0) {
		emit_err(s, "reload failed: %d (%s)", rc, errstr(e, rc));
		goto out;
	}
	uint64_t t1 = now_ns();
	uint8_t *buf = malloc(x.vp.vlen + 1u);
	size_t vl;
	uint64_t probe = mix64(o->seed + 4242) % x.ks.n;
	rc = buf ? e->get(db, t, key_at(&x.ks, probe), x.ks.klen, buf, x.vp.vlen, &vl) : -ENOMEM;
	uint64_t t2 = now_ns();
	free(buf);
	if (rc) {
		emit_err(s, "first get after restart failed: %d (%s)", rc, errstr(e, rc));
		goto out;
	}
	emit(s, tag, "open_ms", "ms", (double)(t1 - t0) / 1e6);
	emit(s, tag, "first_get_us", "us", (double)(t2 - t1) / 1e3);
	(void)rss_bytes(&rss1, &anon1);
	emit(s, tag, "rss_B_per_key", "B/key", ((double)rss1 - (double)rss0) / (double)x.ks.n);
	if (cold)
		goto out;

	/* Every tail key must have its new value, a sample of the others their old one. */
	uint64_t *ti = calloc(tail ? tail : 1, sizeof(*ti));
	uint64_t *smp = sample(x.ks.n, 2000, o->seed + 7);
	uint64_t bad = 0, nsmp = 0;
	if (!ti || !smp) {
		free(ti);
		free(smp);
		rc = -ENOMEM;
		goto out;
	}
	for (uint64_t j = 0; j < tail; j++)
		ti[j] = tail_idx(j, x.ks.n);
	bad += verify(sd, db, t, &x, ti, tail, 1, s);
	/* The sampled keys that are not tail keys must still have their loaded value. */
	uint8_t *is_tail = calloc(x.ks.n, 1);
	if (is_tail) {
		for (uint64_t j = 0; j < tail; j++)
			is_tail[ti[j]] = 1;
		for (uint64_t j = 0; j < 2000; j++)
			if (!is_tail[smp[j]])
				smp[nsmp++] = smp[j];
		bad += verify(sd, db, t, &x, smp, nsmp, 0, s);
		free(is_tail);
	}
	emit(s, tag, "verify_errors", "count", (double)bad);
	free(ti);
	free(smp);

	/* Reads straight after the restart (a store that serves from a mapped base image reads
	 * differently from one that loaded everything into memory). */
	struct exp g = {.kind = EXP_TPUT, .mix = {100, 0, 0}, .threads = 1, .dist = DIST_UNIFORM,
			.seconds = o->warmup > 0.5 ? 1.0 : 0.5 + o->warmup, .pin = 1};
	snprintf(g.id, sizeof(g.id), "%s", "restart.get.t1");
	struct store st = {.eng = e, .db = db, .sd = sd, .ks = &x.ks, .vp = &x.vp};
	rc = run_exp(&st, &g, o, o->warmup, NULL, s);
out:
	if (db) {
		if (e->thread_fini)
			e->thread_fini(db, t);
		int crc = e->close(db);
		if (crc)
			emit_err(s, "close failed: %d (%s)", crc, errstr(e, crc));
	}
	ctx_fini(&x);
	return rc;
}

/* ---- write amplification ---------------------------------------------------------------- */

int session_wamp(const struct sysdesc *sd, const struct bopts *o, struct sink *s)
{
	/*
	 * Two meters, both reported:
	 *  - /proc/self/io write_bytes: bytes this process caused to be dirtied in the page cache
	 *    (counted when a page turns dirty; re-dirtying a page that is still dirty is not
	 *    counted again, so it is a lower bound for stores that rewrite pages in place);
	 *  - the block device's own sectors-written counter (/sys/dev/block/M:m/stat), with a
	 *    syncfs() before each reading so that what the phase dirtied has reached the device.
	 *    It counts every process writing to that device: run on a quiet machine.
	 */
	const struct kv_engine *e = sd->eng;
	struct ctx x;
	void *db = NULL, *t = NULL;
	uint64_t io0 = 0, io1 = 0, io2 = 0, io3 = 0, dv0 = 0, dv1 = 0, dv3 = 0;
	uint64_t m = o->wamp_ops;
	uint32_t *ops = NULL;
	int have_dev;
	int rc = ctx_init(&x, sd, o, s);
	if (rc)
		return rc;
	struct mix mx = {0, 100, 0};
	ops = malloc(m * sizeof(*ops));
	if (!ops || opstream_make(ops, m, x.ks.n, &mx, DIST_UNIFORM, NULL, o->seed + 5) != 0) {
		rc = -ENOMEM;
		goto out;
	}
	if (io_write_bytes(&io0) != 0) {
		emit_err(s, "/proc/self/io is not readable: no write amplification figures");
		rc = -ENOENT;
		goto out;
	}
	rc = open_store(sd, o, &x, sd->dur, 1, &db, s, 1);
	if (rc)
		goto out;
	(void)sync_fs_of(x.dir);
	have_dev = dev_write_bytes(x.dir, &dv0) == 0;
	(void)io_write_bytes(&io0);
	t = e->thread_init ? e->thread_init(db) : NULL;
	rc = load(sd, db, t, &x, 0, s); /* one put at a time, as an application would */
	if (rc)
		goto out;
	(void)io_write_bytes(&io1);
	(void)sync_fs_of(x.dir);
	if (have_dev)
		(void)dev_write_bytes(x.dir, &dv1);
	for (uint64_t j = 0; j < m; j++) {
		uint64_t i = OP_IDX(ops[j]);
		rc = e->put(db, t, key_at(&x.ks, i), x.ks.klen, value_of(&x.vp, i, 2), x.vp.vlen);
		if (rc) {
			emit_err(s, "update failed: %d (%s)", rc, errstr(e, rc));
			goto out;
		}
	}
	(void)io_write_bytes(&io2);
	if (e->thread_fini)
		e->thread_fini(db, t);
	rc = e->close(db);
	db = NULL;
	if (rc) {
		emit_err(s, "close failed: %d (%s)", rc, errstr(e, rc));
		goto out;
	}
	(void)io_write_bytes(&io3);
	(void)sync_fs_of(x.dir);
	if (have_dev)
		(void)dev_write_bytes(x.dir, &dv3);
	double ub = (double)(x.ks.klen + x.vp.vlen);
	emit(s, "wamp", "load_x", "x", (double)(io1 - io0) / ((double)x.ks.n * ub));
	emit(s, "wamp", "update_x", "x", (double)(io2 - io1) / ((double)m * ub));
	emit(s, "wamp", "update_close_x", "x", (double)(io3 - io1) / ((double)m * ub));
	if (have_dev) {
		emit(s, "wamp", "dev_load_x", "x", (double)(dv1 - dv0) / ((double)x.ks.n * ub));
		emit(s, "wamp", "dev_update_x", "x", (double)(dv3 - dv1) / ((double)m * ub));
	}
	emit(s, "wamp", "disk_B_per_key", "B/key", (double)dir_bytes(x.dir) / (double)x.ks.n);
out:
	if (db) {
		if (e->thread_fini)
			e->thread_fini(db, t);
		(void)e->close(db);
	}
	(void)rm_rf(x.dir);
	free(ops);
	ctx_fini(&x);
	return rc;
}

/* ---- the device ------------------------------------------------------------------------- */

int session_fsync(const struct bopts *o, double secs, struct sink *s)
{
	char dir[PATH_MAX], cfg[512];
	double app = 0, pre = 0;
	struct hist *h = malloc(sizeof(*h));
	if (!h)
		return -ENOMEM;
	hist_init(h);
	snprintf(dir, sizeof(dir), "%s/fsync-probe", o->dir);
	int rc = mkdir_p(dir);
	if (!rc)
		rc = fsync_rate(dir, secs, 4096, &app, &pre, h);
	snprintf(cfg, sizeof(cfg),
		 "4 KiB pwrite + fdatasync loop, %.1f s each: appending (file grows) and "
		 "overwriting a preallocated 16 MiB file; file system %s",
		 secs, fs_type_name(o->dir));
	emit_cfg(s, cfg);
	if (rc) {
		emit_err(s, "fdatasync probe failed: %s", strerror(-rc));
	} else {
		emit(s, "fsync", "append_per_s", "syncs/s", app);
		emit(s, "fsync", "prealloc_per_s", "syncs/s", pre);
		emit(s, "fsync", "append_p50_us", "us", (double)hist_pct(h, 50) / 1e3);
		emit(s, "fsync", "append_p99_us", "us", (double)hist_pct(h, 99) / 1e3);
	}
	(void)rm_rf(dir);
	free(h);
	return rc;
}
