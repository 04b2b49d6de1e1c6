/* SPDX-License-Identifier: MIT */
/*
 * main.c - pkvbench: command line, profiles, and the driver that runs every session of the
 * plan in a fresh fork()ed child and gathers its result lines.
 *
 * A plan is a list of groups. A group names systems (engine:mode) and experiments; a session
 * group runs, for each round, one child per system (the order rotates every round so that no
 * system always runs first or last), and the tables report each figure's median over rounds
 * with ratios pkv/peer taken inside the group, i.e. from the same run.
 */
#include "driver.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- options and workloads ---------------------------------------------------------------- */

struct cli {
	const char *profile;
	const char *systems;   /* custom: systems to run */
	const char *only;      /* filter on engines/systems of any profile */
	const char *workloads; /* custom */
	const char *threads;   /* custom */
	const char *dists;     /* custom */
	const char *mode;      /* custom: tput lat rw commit restart wamp fsync */
	double seconds;        /* 0: profile default */
	int rounds;            /* 0: profile default */
	double lat_rate;
	unsigned writers;
	int no_pin;
	int interleave;
	int dry_run;
	int child_timeout;
};

static const struct {
	const char *id, *alias1, *alias2;
	struct mix m;
} workloads[] = {
	{"get", "read", "c", {100, 0, 0}},
	{"read95", "95-5", "b", {95, 5, 0}},
	{"read50", "50-50", "a", {50, 50, 0}},
	{"put", "write", "w", {0, 100, 0}},
	/* Half of the draws are a delete followed by the re-insert of the same key, so the ops are
	 * one third gets, one third deletes and one third puts. */
	{"delete", "del", "d", {50, 0, 50}},
};
#define NWORKLOADS (sizeof(workloads) / sizeof(workloads[0]))

static int workload_find(const char *name)
{
	for (size_t i = 0; i < NWORKLOADS; i++)
		if (!strcmp(name, workloads[i].id) || !strcmp(name, workloads[i].alias1) ||
		    !strcmp(name, workloads[i].alias2))
			return (int)i;
	return -1;
}

static void usage(FILE *f)
{
	fprintf(f,
"usage: pkvbench [quick|full|custom] [options]\n"
"\n"
"Profiles:\n"
"  quick    core comparisons, 1,000,000 keys, a few minutes on 2 cores (default)\n"
"  full     every workload, distribution, value and key size, every peer and mode\n"
"  custom   what the options below say (--systems, --workloads, --threads, --dist, --mode)\n"
"\n"
"Data and output:\n"
"  --dir DIR          data directory (default ./bench-data); each system gets DIR/<system>\n"
"  --out DIR          results directory (default ./bench-results/<profile>-<time>)\n"
"Sizes:\n"
"  --keys N           keys loaded before every session (default 1000000)\n"
"  --klen N           key length in bytes, >= 8 (default 16)\n"
"  --vlen N           value length in bytes (default 100)\n"
"Timing:\n"
"  --seconds S        measured seconds per experiment, or per slice in interleaved groups\n"
"                     (quick 1 and 0.4 per slice, full 2 and 0.5 per slice)\n"
"  --warmup S         unmeasured seconds before each (default 0.3)\n"
"  --rounds R         rounds: repetitions of interleaved groups (default 5), or process-\n"
"                     per-system rounds of the others (default 1)\n"
"  --lat-rate OPS     offered ops/s per thread in latency mode (default 200000)\n"
"  --no-pin           do not pin worker threads to CPUs\n"
"Selection:\n"
"  --only LIST        keep only these engines or systems (e.g. pkv,ck_ht,rocksdb:sync)\n"
"  --systems LIST     custom: systems, engine[:mode][@rounds] (see --list)\n"
"  --workloads LIST   custom: get,read95,read50,put,delete (aliases read,95-5,50-50,write)\n"
"  --threads LIST     custom: thread counts (default 1,2)\n"
"  --dist LIST        custom: uniform,zipf (default uniform)\n"
"  --theta X          Zipfian constant (default 0.99)\n"
"  --mode M           custom: tput|lat|rw|commit|restart|wamp|fsync (default tput)\n"
"  --interleave       custom: all systems in one process, short slices interleaved\n"
"                     (--rounds repetitions, default 5; not for sync modes)\n"
"  --no-prewarm       do not read every key once after loading a persistent store\n"
"  --no-evict         restart: skip the cold-cache reopen\n"
"  --writers N        commit: writer threads (default 16)\n"
"  --tail N           restart: updates written after the checkpoint (default 50000)\n"
"  --wamp-ops N       write amplification: updates measured (default 1000000)\n"
"  --seed N           seed of keys, values and op streams (default 42)\n"
"  --child-timeout S  kill a session silent for S seconds (default 600)\n"
"  --dry-run          print the plan and exit\n"
"  --list             print the compiled-in engines and their modes\n");
}

/* ---- plan building ------------------------------------------------------------------------ */

static struct group *group_new(struct plan *p, const char *name, enum gkind k, int rounds,
			       const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static struct group *group_new(struct plan *p, const char *name, enum gkind k, int rounds,
			       const char *fmt, ...)
{
	if (p->ng >= MAXGROUP)
		return NULL;
	struct group *g = &p->g[p->ng++];
	memset(g, 0, sizeof(*g));
	snprintf(g->name, sizeof(g->name), "%s", name);
	g->kind = k;
	g->rounds = rounds > 0 ? rounds : 1;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(g->title, sizeof(g->title), fmt, ap);
	va_end(ap);
	return g;
}

/* Add the systems of a comma list; unknown or unbuilt ones are skipped with a note. */
static void group_systems(struct group *g, const char *list)
{
	char buf[1024];
	snprintf(buf, sizeof(buf), "%s", list);
	char *save = NULL;
	for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (g->nsys >= MAXSYS)
			break;
		if (sys_parse(tok, &g->sys[g->nsys]) != 0) {
			fprintf(stderr, "pkvbench: %s: skipping '%s' (not built here or no such "
				"mode; see --list)\n", g->name, tok);
			continue;
		}
		g->nsys++;
	}
}

static struct exp *exp_add(struct group *g, enum exp_kind k, int wl, unsigned threads,
			   enum dist d, double secs, const struct cli *c, double theta)
{
	if (g->nexp >= MAXEXP)
		return NULL;
	struct exp *e = &g->exps[g->nexp++];
	memset(e, 0, sizeof(*e));
	e->kind = k;
	e->mix = wl >= 0 ? workloads[wl].m : (struct mix){100, 0, 0};
	e->threads = threads;
	e->dist = d;
	e->theta = theta;
	e->seconds = secs;
	e->rate = c->lat_rate;
	e->pin = !c->no_pin && k != EXP_COMMIT && threads + e->writers <= ncpus();
	const char *w = wl >= 0 ? workloads[wl].id : "get";
	const char *ds = d == DIST_ZIPF ? ".zipf" : "";
	switch (k) {
	case EXP_TPUT: snprintf(e->id, sizeof(e->id), "%s.t%u%s", w, threads, ds); break;
	case EXP_LAT: snprintf(e->id, sizeof(e->id), "lat.%s.t%u%s", w, threads, ds); break;
	case EXP_RW:
		e->writers = 1;
		e->pin = !c->no_pin && threads + 1 <= ncpus();
		snprintf(e->id, sizeof(e->id), "rw.%ur1w%s", threads, ds);
		break;
	case EXP_COMMIT: snprintf(e->id, sizeof(e->id), "commit.w%u%s", threads, ds); break;
	}
	return e;
}

static void plan_quick(struct plan *p, const struct cli *c, const struct bopts *o)
{
	double si = c->seconds > 0 ? c->seconds : 0.4; /* interleaved slices */
	struct group *g;

	g = group_new(p, "disk", G_FSYNC, 1, "the device: 4 KiB write + fdatasync");
	g->exps[0].seconds = 1.0;

	/* pkv:ref and pkv:many read through pkv_get_ref and pkv_get_many (batches of 32); they
	 * skip the experiments that write (session.c), which would repeat pkv:process's.
	 * pkv:batch8 runs only the put-only ones, as pkv_write batches of 8 keys. */
	g = group_new(p, "core", G_INPROC, c->rounds > 0 ? c->rounds : 5,
		      "pkv vs the hash-table ceilings, one process, %.2g s slices interleaved", si);
	group_systems(g, "pkv:process,pkv:ref,pkv:many,pkv:batch8,ck_ht,lfht");
	exp_add(g, EXP_TPUT, 0, 1, DIST_UNIFORM, si, c, o->theta);
	exp_add(g, EXP_TPUT, 0, 2, DIST_UNIFORM, si, c, o->theta);
	exp_add(g, EXP_LAT, 0, 1, DIST_UNIFORM, si, c, o->theta);
	exp_add(g, EXP_RW, -1, 1, DIST_UNIFORM, si, c, o->theta);
	exp_add(g, EXP_TPUT, 3, 1, DIST_UNIFORM, si, c, o->theta);
	exp_add(g, EXP_TPUT, 3, 2, DIST_UNIFORM, si, c, o->theta);

	/* Also issue 11's load goal: every system loads the same keys into a fresh process, pkv
	 * through pkv_write batches of 1,000 (ad_pkv.c), ck_ht with an insert loop. Loaded in one
	 * process after other stores (core), the first store pays for the process's fresh pages:
	 * here each pays for its own. Three rounds, the order rotating, for a median. */
	g = group_new(p, "memory", G_SESSION, 3, "resident memory and load rate, a fresh process "
		      "per system");
	group_systems(g, "pkv:process,ck_ht,lfht");

	/* 1 KiB values, interleaved, on a quarter of the keys (the full profile has 1M). */
	g = group_new(p, "v1k", G_INPROC, c->rounds > 0 ? c->rounds : 5,
		      "1 KiB values, one process, %.2g s slices interleaved", si);
	g->vlen = 1024;
	g->nkeys = o->nkeys / 4 ? o->nkeys / 4 : 1;
	group_systems(g, "pkv:process,ck_ht");
	exp_add(g, EXP_TPUT, 0, 1, DIST_UNIFORM, si, c, o->theta);
	exp_add(g, EXP_TPUT, 0, 2, DIST_UNIFORM, si, c, o->theta);

	/* Interleaved too: each store is loaded, left at rest (RocksDB's compactions waited for,
	 * LevelDB compacted) and warmed by a scan before the slices start, so no background work
	 * of one store runs during another's read slices; the put slices are short enough that
	 * neither RocksDB's memtable nor pkv's segment fills up during them. */
	g = group_new(p, "peers", G_INPROC, c->rounds > 0 ? c->rounds : 5,
		      "vs persistent peers at the no-sync level, one process, %.2g s slices "
		      "interleaved", si);
	group_systems(g, "pkv:process,lmdb:nosync,rocksdb:nosync,leveldb:nosync");
	exp_add(g, EXP_TPUT, 0, 1, DIST_UNIFORM, si, c, o->theta);
	exp_add(g, EXP_TPUT, 0, 2, DIST_UNIFORM, si, c, o->theta);
	exp_add(g, EXP_TPUT, 3, 1, DIST_UNIFORM, si, c, o->theta);

	/* Interleaved as well: the device's speed drifts on a shared machine even more than the
	 * CPUs' do. The device's fsync rates are probed before and after the repetitions. */
	g = group_new(p, "commit", G_INPROC, c->rounds > 0 ? c->rounds : 5,
		      "power-loss durable writes, %u writers (group commit), one process, %.2g s "
		      "slices interleaved", c->writers, 1.5 * si);
	group_systems(g, "pkv:power,pkv-ticket:power,rocksdb:sync");
	exp_add(g, EXP_COMMIT, 3, c->writers, DIST_UNIFORM, 1.5 * si, c, o->theta);

	g = group_new(p, "restart", G_RESTART, 1, "reopen with %llu keys on disk and a tail of %llu "
		      "updates", (unsigned long long)o->nkeys, (unsigned long long)o->tail);
	group_systems(g, "pkv:process,ck_ht");
}

static void plan_full(struct plan *p, const struct cli *c, const struct bopts *o)
{
	double s = c->seconds > 0 ? c->seconds : 2.0;
	int r = c->rounds > 0 ? c->rounds : 3;
	struct group *g;

	g = group_new(p, "disk", G_FSYNC, 1, "the device: 4 KiB write + fdatasync");
	g->exps[0].seconds = 2.0;

	const char *sets[2][2] = {
		{"core", "pkv:process,pkv:ref,pkv:many,pkv:batch8,pkv:mem,ck_ht,lfht"},
		{"peers", "pkv:process,lmdb:nosync,rocksdb:nosync,leveldb:nosync,sqlite:nosync"},
	};
	double si = c->seconds > 0 ? c->seconds : 0.5;
	for (int i = 0; i < 2; i++) {
		g = group_new(p, sets[i][0], i == 0 ? G_INPROC : G_SESSION, i == 0 ? r : 1,
			      i == 0 ? "every workload vs the hash-table ceilings, one process, "
				       "slices interleaved"
				     : "every workload vs persistent peers (no-sync level), a process "
				       "per system");
		double sx = i == 0 ? si : s;
		group_systems(g, sets[i][1]);
		for (int d = DIST_UNIFORM; d <= DIST_ZIPF; d++)
			for (int w = 0; w < (int)NWORKLOADS; w++)
				for (unsigned t = 1; t <= 2; t++)
					exp_add(g, EXP_TPUT, w, t, (enum dist)d, sx, c, o->theta);
		exp_add(g, EXP_LAT, 0, 1, DIST_UNIFORM, sx, c, o->theta);
		exp_add(g, EXP_LAT, 0, 2, DIST_UNIFORM, sx, c, o->theta);
		exp_add(g, EXP_LAT, 1, 1, DIST_UNIFORM, sx, c, o->theta);
		exp_add(g, EXP_LAT, 0, 1, DIST_ZIPF, sx, c, o->theta);
		exp_add(g, EXP_RW, -1, 1, DIST_UNIFORM, sx, c, o->theta);
		exp_add(g, EXP_RW, -1, 1, DIST_ZIPF, sx, c, o->theta);
	}

	g = group_new(p, "memory", G_SESSION, 1, "resident memory after the load, a fresh process "
		      "per system");
	group_systems(g, "pkv:process,pkv:mem,ck_ht,lfht,lmdb:nosync,rocksdb:nosync,"
			 "leveldb:nosync,sqlite:nosync");

	g = group_new(p, "commit", G_SESSION, 1, "durable writes: every mode, 1, 2 and %u writers",
		      c->writers);
	group_systems(g, "pkv:power,pkv-ticket:power,pkv:periodic,pkv:process,rocksdb:sync,"
			 "leveldb:sync,lmdb:sync,sqlite:sync,rocksdb:nosync,lmdb:nosync");
	exp_add(g, EXP_COMMIT, 3, 1, DIST_UNIFORM, s, c, o->theta);
	exp_add(g, EXP_COMMIT, 3, 2, DIST_UNIFORM, s, c, o->theta);
	exp_add(g, EXP_COMMIT, 3, c->writers, DIST_UNIFORM, s, c, o->theta);

	g = group_new(p, "restart", G_RESTART, 1, "reopen with %llu keys on disk and a tail of %llu "
		      "updates", (unsigned long long)o->nkeys, (unsigned long long)o->tail);
	group_systems(g, "pkv:process,ck_ht,lfht,lmdb:nosync,rocksdb:nosync,leveldb:nosync,"
			 "sqlite:nosync");

	g = group_new(p, "wamp", G_WAMP, 1, "bytes written to the device per user byte (%llu "
		      "updates after the load)", (unsigned long long)o->wamp_ops);
	group_systems(g, "pkv:process,lmdb:nosync,rocksdb:nosync,leveldb:nosync,sqlite:nosync");

	g = group_new(p, "v1k", G_SESSION, 1, "1 KiB values");
	g->vlen = 1024;
	group_systems(g, "pkv:process,ck_ht,lfht,lmdb:nosync,rocksdb:nosync");
	exp_add(g, EXP_TPUT, 0, 1, DIST_UNIFORM, s, c, o->theta);
	exp_add(g, EXP_TPUT, 0, 2, DIST_UNIFORM, s, c, o->theta);
	exp_add(g, EXP_TPUT, 3, 1, DIST_UNIFORM, s, c, o->theta);

	g = group_new(p, "k8", G_SESSION, 1, "8-byte keys");
	g->klen = 8;
	group_systems(g, "pkv:process,ck_ht,lfht,lmdb:nosync");
	exp_add(g, EXP_TPUT, 0, 1, DIST_UNIFORM, s, c, o->theta);
	exp_add(g, EXP_TPUT, 0, 2, DIST_UNIFORM, s, c, o->theta);
	exp_add(g, EXP_TPUT, 3, 1, DIST_UNIFORM, s, c, o->theta);
}

static int plan_custom(struct plan *p, const struct cli *c, const struct bopts *o)
{
	double s = c->seconds > 0 ? c->seconds : 2.0;
	const char *mode = c->mode ? c->mode : "tput";
	const char *systems = c->systems ? c->systems : "pkv:process,ck_ht,lfht";
	struct group *g;
	char buf[512], *save;

	if (!strcmp(mode, "fsync")) {
		g = group_new(p, "disk", G_FSYNC, 1, "the device: 4 KiB write + fdatasync");
		g->exps[0].seconds = s;
		return 0;
	}
	if (!strcmp(mode, "restart") || !strcmp(mode, "wamp")) {
		g = group_new(p, mode, !strcmp(mode, "restart") ? G_RESTART : G_WAMP, 1, "%s", mode);
		group_systems(g, systems);
		return g->nsys ? 0 : -1;
	}
	enum exp_kind k = !strcmp(mode, "tput")	  ? EXP_TPUT
			  : !strcmp(mode, "lat")	  ? EXP_LAT
			  : !strcmp(mode, "rw")	  ? EXP_RW
			  : !strcmp(mode, "commit") ? EXP_COMMIT
						    : (enum exp_kind)-1;
	if ((int)k < 0) {
		fprintf(stderr, "pkvbench: unknown --mode %s\n", mode);
		return -1;
	}
	int rounds = c->rounds > 0 ? c->rounds : (c->interleave ? 5 : 1);
	g = group_new(p, "custom", c->interleave ? G_INPROC : G_SESSION, rounds, "custom: %s%s", mode,
		      c->interleave ? ", one process, slices interleaved" : "");
	group_systems(g, systems);
	const char *wls = c->workloads ? c->workloads : (k == EXP_COMMIT ? "put" : "get");
	const char *ths = c->threads ? c->threads : (k == EXP_COMMIT ? "16" : k == EXP_RW ? "1" : "1,2");
	const char *dss = c->dists ? c->dists : "uniform";
	char dsb[64], wlb[256];
	snprintf(dsb, sizeof(dsb), "%s", dss);
	for (char *dt = strtok_r(dsb, ",", &save); dt; dt = strtok_r(NULL, ",", &save)) {
		enum dist d = !strcmp(dt, "zipf") || !strcmp(dt, "zipfian") ? DIST_ZIPF : DIST_UNIFORM;
		char *save2;
		snprintf(wlb, sizeof(wlb), "%s", wls);
		for (char *wt = strtok_r(wlb, ",", &save2); wt; wt = strtok_r(NULL, ",", &save2)) {
			int w = workload_find(wt);
			if (w < 0) {
				fprintf(stderr, "pkvbench: unknown workload %s\n", wt);
				return -1;
			}
			char *save3;
			snprintf(buf, sizeof(buf), "%s", ths);
			for (char *tt = strtok_r(buf, ",", &save3); tt; tt = strtok_r(NULL, ",", &save3)) {
				unsigned t = (unsigned)atoi(tt);
				if (t == 0 || t > 256) {
					fprintf(stderr, "pkvbench: bad thread count %s\n", tt);
					return -1;
				}
				exp_add(g, k, k == EXP_RW ? -1 : w, t, d, s, c, o->theta);
			}
			if (k == EXP_RW)
				break;
		}
	}
	return g->nsys && g->nexp ? 0 : -1;
}

/* --only: keep the systems named by engine or full name. */
static void plan_filter(struct plan *p, const char *only)
{
	char buf[512];
	for (int gi = 0; gi < p->ng; gi++) {
		struct group *g = &p->g[gi];
		int k = 0;
		for (int i = 0; i < g->nsys; i++) {
			int keep = 0;
			snprintf(buf, sizeof(buf), "%s", only);
			char *save = NULL;
			for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
				if (!strcmp(t, g->sys[i].eng->name) || !strcmp(t, g->sys[i].name))
					keep = 1;
			if (keep)
				g->sys[k++] = g->sys[i];
		}
		g->nsys = k;
	}
	int k = 0;
	for (int gi = 0; gi < p->ng; gi++)
		if (p->g[gi].kind == G_FSYNC || p->g[gi].nsys > 0)
			p->g[k++] = p->g[gi];
	p->ng = k;
}

int group_index(const struct plan *p, const char *name)
{
	for (int i = 0; i < p->ng; i++)
		if (!strcmp(p->g[i].name, name))
			return i;
	return -1;
}

static void plan_print(FILE *f, const struct plan *p, const struct bopts *o)
{
	fprintf(f, "plan '%s': %llu keys, %u B keys, %u B values, data dir %s\n", p->profile,
		(unsigned long long)o->nkeys, o->klen, o->vlen, o->dir);
	for (int i = 0; i < p->ng; i++) {
		const struct group *g = &p->g[i];
		fprintf(f, "  group %-8s %-40.40s rounds %d", g->name, g->title, g->rounds);
		if (g->nkeys || g->klen || g->vlen)
			fprintf(f, " (keys %llu, klen %u, vlen %u)",
				(unsigned long long)(g->nkeys ? g->nkeys : o->nkeys),
				g->klen ? g->klen : o->klen, g->vlen ? g->vlen : o->vlen);
		fprintf(f, "\n    systems:");
		for (int s = 0; s < g->nsys; s++)
			fprintf(f, " %s", g->sys[s].name);
		if (g->nexp && (g->kind == G_SESSION || g->kind == G_INPROC)) {
			fprintf(f, "\n    experiments:");
			for (int e = 0; e < g->nexp; e++)
				fprintf(f, " %s", g->exps[e].id);
		}
		fputc('\n', f);
	}
}

/* ---- results table ------------------------------------------------------------------------ */

static void *grow(void *p, size_t *cap, size_t n, size_t sz)
{
	if (n < *cap)
		return p;
	size_t nc = *cap ? *cap * 2 : 64;
	void *np = realloc(p, nc * sz);
	if (!np) {
		fprintf(stderr, "pkvbench: out of memory\n");
		exit(2);
	}
	*cap = nc;
	return np;
}

const struct metric *res_find(const struct results *r, int group, const char *sys,
			      const char *exp, const char *name)
{
	for (size_t i = 0; i < r->nm; i++) {
		const struct metric *m = &r->m[i];
		if (m->group == group && !strcmp(m->sys, sys) && !strcmp(m->exp, exp) &&
		    !strcmp(m->name, name))
			return m;
	}
	return NULL;
}

static void res_add(struct results *r, int group, const char *sys, const char *exp,
		    const char *name, const char *unit, double v)
{
	struct metric *m = (struct metric *)res_find(r, group, sys, exp, name);
	if (!m) {
		r->m = grow(r->m, &r->capm, r->nm, sizeof(*r->m));
		m = &r->m[r->nm++];
		memset(m, 0, sizeof(*m));
		m->group = group;
		snprintf(m->sys, sizeof(m->sys), "%s", sys);
		snprintf(m->exp, sizeof(m->exp), "%s", exp);
		snprintf(m->name, sizeof(m->name), "%s", name);
		snprintf(m->unit, sizeof(m->unit), "%s", unit);
	}
	if (m->n < MAXROUNDS)
		m->v[m->n++] = v;
}

static void note_add(struct note **arr, size_t *n, size_t *cap, int group, const char *sys,
		     const char *text, int merge)
{
	for (size_t i = 0; merge && i < *n; i++) {
		struct note *x = &(*arr)[i];
		if (x->group != group || strcmp(x->sys, sys) != 0)
			continue;
		if (strstr(x->text, text))
			return;
		size_t l = strlen(x->text);
		snprintf(x->text + l, sizeof(x->text) - l, " | %s", text);
		return;
	}
	*arr = grow(*arr, cap, *n, sizeof(**arr));
	struct note *x = &(*arr)[(*n)++];
	x->group = group;
	snprintf(x->sys, sizeof(x->sys), "%s", sys);
	snprintf(x->text, sizeof(x->text), "%s", text);
}

static int cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

double ratio_of(const struct metric *a, const struct metric *b)
{
	if (a->n == b->n && a->n > 1) {
		double r[MAXROUNDS];
		int k = 0;
		for (int i = 0; i < a->n; i++)
			if (b->v[i] != 0)
				r[k++] = a->v[i] / b->v[i];
		if (k == a->n)
			return median(r, k);
	}
	double d = median(b->v, b->n);
	return d != 0 ? median(a->v, a->n) / d : 0;
}

double median(const double *v, int n)
{
	double t[MAXROUNDS];
	if (n <= 0)
		return 0;
	memcpy(t, v, (size_t)n * sizeof(double));
	qsort(t, (size_t)n, sizeof(double), cmp_dbl);
	return n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
}

/* ---- progress ----------------------------------------------------------------------------- */

static int progress_tty = -1;
static uint64_t t_start;

void progress(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	if (progress_tty < 0)
		progress_tty = isatty(2);
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	unsigned el = (unsigned)((now_ns() - t_start) / 1000000000ull);
	if (progress_tty)
		fprintf(stderr, "\r\033[K[%02u:%02u] %.150s", el / 60, el % 60, buf);
	else
		fprintf(stderr, "[%02u:%02u] %s\n", el / 60, el % 60, buf);
	fflush(stderr);
}

void progress_done(void)
{
	if (progress_tty > 0)
		fprintf(stderr, "\r\033[K");
}

static int primary_metric(const char *m)
{
	static const char *const p[] = {"Mops", "read_Mops", "p999_ns", "commits_per_s",
					"open_ms", "update_x", "dev_update_x", "append_per_s", "load_Mops"};
	for (size_t i = 0; i < sizeof(p) / sizeof(p[0]); i++)
		if (!strcmp(m, p[i]))
			return 1;
	return 0;
}

/* ---- children ----------------------------------------------------------------------------- */

enum ckind { C_RUN, C_PREP, C_COLD, C_WARM, C_WAMP, C_FSYNC, C_INPROC };

struct child {
	enum ckind kind;
	const struct group *g;
	const struct sysdesc *sd;
	struct bopts o;
};

static int child_body(const struct child *c, struct sink *s)
{
	switch (c->kind) {
	case C_RUN: return session_run(c->sd, c->g->exps, c->g->nexp, &c->o, s);
	case C_PREP: return session_restart_prepare(c->sd, &c->o, s);
	case C_COLD: return session_restart_open(c->sd, &c->o, s, 1);
	case C_WARM: return session_restart_open(c->sd, &c->o, s, 0);
	case C_WAMP: return session_wamp(c->sd, &c->o, s);
	case C_FSYNC: return session_fsync(&c->o, c->g->exps[0].seconds, s);
	case C_INPROC:
		return session_inproc(c->g->sys, c->g->nsys, c->g->exps, c->g->nexp, c->g->rounds,
				      &c->o, s);
	}
	return -EINVAL;
}

static int n_sessions, i_session;

static void handle_line(struct results *R, int gi, char *line, const char *label)
{
	char *f[6] = {0};
	int n = 0;
	size_t len = strlen(line);
	if (len && line[len - 1] == '\n')
		line[len - 1] = 0;
	for (char *p = line; n < 6;) {
		f[n++] = p;
		char *tab = strchr(p, '\t');
		if (!tab)
			break;
		*tab = 0;
		p = tab + 1;
	}
	if (n == 6 && !strcmp(f[0], "R")) {
		double v = strtod(f[5], NULL);
		res_add(R, gi, f[1], f[2], f[3], f[4], v);
		if (primary_metric(f[3]) || progress_tty > 0)
			progress("[%d/%d] %s %s %s %s = %.4g %s", i_session, n_sessions, label, f[1],
				 f[2], f[3], v, f[4]);
	} else if (n >= 3 && !strcmp(f[0], "C")) {
		note_add(&R->cfg, &R->ncfg, &R->capcfg, gi, f[1], f[2], 1);
	} else if (n >= 3 && !strcmp(f[0], "E")) {
		char buf[1024];
		snprintf(buf, sizeof(buf), "%s: %s", label, f[2]);
		note_add(&R->err, &R->nerr, &R->caperr, gi, f[1], buf, 0);
		progress_done();
		fprintf(stderr, "pkvbench: %s %s: %s\n", label, f[1], f[2]);
	}
}

static void spawn(struct results *R, int gi, const struct child *c, const char *label,
		  int timeout_s)
{
	const char *sysname = c->sd ? c->sd->name : c->kind == C_INPROC ? "all" : "disk";
	int fds[2];
	i_session++;
	progress("[%d/%d] %s %s ...", i_session, n_sessions, label, sysname);
	if (pipe(fds) != 0) {
		note_add(&R->err, &R->nerr, &R->caperr, gi, sysname, "pipe failed", 0);
		return;
	}
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid < 0) {
		close(fds[0]);
		close(fds[1]);
		note_add(&R->err, &R->nerr, &R->caperr, gi, sysname, "fork failed", 0);
		return;
	}
	if (pid == 0) {
		close(fds[0]);
		FILE *f = fdopen(fds[1], "w");
		if (!f)
			_exit(3);
		struct sink s = {.f = f, .sys = sysname};
		int rc = child_body(c, &s);
		fflush(f);
		_exit(rc ? 1 : 0);
	}
	close(fds[1]);
	FILE *in = fdopen(fds[0], "r");
	char *line = NULL;
	size_t cap = 0;
	int killed = 0;
	struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
	for (;;) {
		int pr = poll(&pfd, 1, timeout_s * 1000);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr == 0) {
			kill(pid, SIGKILL);
			killed = 1;
			break;
		}
		if (getline(&line, &cap, in) < 0)
			break;
		handle_line(R, gi, line, label);
	}
	free(line);
	fclose(in);
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	char msg[256];
	if (killed) {
		snprintf(msg, sizeof(msg), "%s: killed after %d s without output (hang?)", label,
			 timeout_s);
		note_add(&R->err, &R->nerr, &R->caperr, gi, sysname, msg, 0);
		progress_done();
		fprintf(stderr, "pkvbench: %s %s: %s\n", label, sysname, msg);
	} else if (WIFSIGNALED(st)) {
		snprintf(msg, sizeof(msg), "%s: the session died of signal %d (%s)", label,
			 WTERMSIG(st), strsignal(WTERMSIG(st)));
		note_add(&R->err, &R->nerr, &R->caperr, gi, sysname, msg, 0);
		progress_done();
		fprintf(stderr, "pkvbench: %s %s: %s\n", label, sysname, msg);
	} else if (WIFEXITED(st) && WEXITSTATUS(st) != 0) {
		snprintf(msg, sizeof(msg), "%s: the session exited with status %d", label,
			 WEXITSTATUS(st));
		note_add(&R->err, &R->nerr, &R->caperr, gi, sysname, msg, 0);
	}
}

static void run_plan(struct plan *p, const struct bopts *o, struct results *R, int timeout_s)
{
	n_sessions = 0;
	for (int gi = 0; gi < p->ng; gi++) {
		const struct group *g = &p->g[gi];
		switch (g->kind) {
		case G_FSYNC: n_sessions++; break;
		case G_INPROC: n_sessions++; break;
		case G_RESTART: n_sessions += g->nsys * (o->no_evict ? 2 : 3); break;
		case G_WAMP: n_sessions += g->nsys; break;
		case G_SESSION:
			for (int r = 0; r < g->rounds; r++)
				for (int s = 0; s < g->nsys; s++)
					if (!g->sys[s].max_rounds || r < g->sys[s].max_rounds)
						n_sessions++;
			break;
		}
	}
	for (int gi = 0; gi < p->ng; gi++) {
		const struct group *g = &p->g[gi];
		struct child c = {.g = g, .o = *o};
		if (g->nkeys)
			c.o.nkeys = g->nkeys;
		if (g->klen)
			c.o.klen = g->klen;
		if (g->vlen)
			c.o.vlen = g->vlen;
		char label[96];
		if (g->kind == G_FSYNC || g->kind == G_INPROC) {
			c.kind = g->kind == G_FSYNC ? C_FSYNC : C_INPROC;
			snprintf(label, sizeof(label), "%s", g->name);
			spawn(R, gi, &c, label, timeout_s);
			continue;
		}
		if (g->kind == G_WAMP || g->kind == G_RESTART) {
			for (int s = 0; s < g->nsys; s++) {
				c.sd = &g->sys[s];
				char dir[PATH_MAX];
				if (g->kind == G_WAMP) {
					c.kind = C_WAMP;
					snprintf(label, sizeof(label), "%s", g->name);
					spawn(R, gi, &c, label, timeout_s);
					continue;
				}
				snprintf(label, sizeof(label), "%s/prepare", g->name);
				c.kind = C_PREP;
				size_t before = R->nerr;
				spawn(R, gi, &c, label, timeout_s);
				if (R->nerr == before) {
					if (!o->no_evict) {
						c.kind = C_COLD;
						snprintf(label, sizeof(label), "%s/cold", g->name);
						spawn(R, gi, &c, label, timeout_s);
					}
					c.kind = C_WARM;
					snprintf(label, sizeof(label), "%s/warm", g->name);
					spawn(R, gi, &c, label, timeout_s);
				}
				sys_dir(c.sd, &c.o, dir, sizeof(dir));
				(void)rm_rf(dir);
			}
			continue;
		}
		c.kind = C_RUN;
		for (int r = 0; r < g->rounds; r++) {
			/* Rotate the order every round, and reverse it every other round. */
			for (int k = 0; k < g->nsys; k++) {
				int idx = (k + r) % g->nsys;
				if (r % 2)
					idx = g->nsys - 1 - idx;
				if (g->sys[idx].max_rounds && r >= g->sys[idx].max_rounds)
					continue;
				c.sd = &g->sys[idx];
				snprintf(label, sizeof(label), "%s r%d/%d", g->name, r + 1, g->rounds);
				spawn(R, gi, &c, label, timeout_s);
			}
		}
	}
	progress_done();
}

/* ---- how busy the machine was --------------------------------------------------------- */

/* Busy CPU seconds of the whole machine since boot (/proc/stat, all CPUs; steal included). */
static double machine_busy_s(double *steal)
{
	FILE *f = fopen("/proc/stat", "r");
	unsigned long long v[10] = {0};
	*steal = 0;
	if (!f)
		return -1;
	int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1],
		       &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9]);
	fclose(f);
	if (n < 8)
		return -1;
	double hz = (double)sysconf(_SC_CLK_TCK);
	*steal = (double)v[7] / hz;
	/* user nice system (idle) (iowait) irq softirq steal */
	return (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / hz;
}

static double own_cpu_s(void)
{
	struct rusage a, b;
	getrusage(RUSAGE_SELF, &a);
	getrusage(RUSAGE_CHILDREN, &b);
	return (double)(a.ru_utime.tv_sec + a.ru_stime.tv_sec + b.ru_utime.tv_sec + b.ru_stime.tv_sec) +
	       (double)(a.ru_utime.tv_usec + a.ru_stime.tv_usec + b.ru_utime.tv_usec +
			b.ru_stime.tv_usec) / 1e6;
}

/* ---- goals -------------------------------------------------------------------------------- */

static const struct goal goals[] = {
	/* Issue 10's goals table, row by row. */
	{"get 1 thread: pkv >= 0.95 x raw ck_ht", "core", "pkv:process", "get.t1", "Mops", NULL,
	 "ck_ht", "get.t1", "Mops", 1, CMP_GE, 0.95},
	{"get 2 threads: pkv >= 0.95 x raw ck_ht", "core", "pkv:process", "get.t2", "Mops", NULL,
	 "ck_ht", "get.t2", "Mops", 1, CMP_GE, 0.95},
	{"get 1 thread: pkv >= 1.0 x cds_lfht", "core", "pkv:process", "get.t1", "Mops", NULL,
	 "lfht", "get.t1", "Mops", 1, CMP_GE, 1.0},
	{"get 2 threads: pkv >= 1.0 x cds_lfht", "core", "pkv:process", "get.t2", "Mops", NULL,
	 "lfht", "get.t2", "Mops", 1, CMP_GE, 1.0},
	{"pkv_get_ref (zero copy) 1 thread >= 1.0 x ck_ht get+copy", "core", "pkv:ref", "get.t1",
	 "Mops", NULL, "ck_ht", "get.t1", "Mops", 1, CMP_GE, 1.0},
	{"pkv_get_ref (zero copy) 2 threads >= 1.0 x ck_ht get+copy", "core", "pkv:ref", "get.t2",
	 "Mops", NULL, "ck_ht", "get.t2", "Mops", 1, CMP_GE, 1.0},
	{"pkv_get_many, batches of 32, 1 thread >= 3 x ck_ht single gets", "core", "pkv:many",
	 "get.t1", "Mops", NULL, "ck_ht", "get.t1", "Mops", 1, CMP_GE, 3},
	{"pkv_get_many, batches of 32, 2 threads >= 3 x ck_ht single gets", "core", "pkv:many",
	 "get.t2", "Mops", NULL, "ck_ht", "get.t2", "Mops", 1, CMP_GE, 3},
	{"get p99.9 latency (fixed schedule): pkv <= 1.5 x ck_ht", "core", "pkv:process",
	 "lat.get.t1", "p999_ns", NULL, "ck_ht", "lat.get.t1", "p999_ns", 1, CMP_LE, 1.5},
	{"1 KiB values, get 1 thread: pkv >= 0.9 x ck_ht", "v1k", "pkv:process", "get.t1", "Mops",
	 NULL, "ck_ht", "get.t1", "Mops", 1, CMP_GE, 0.9},
	{"1 KiB values, get 2 threads: pkv >= 0.9 x ck_ht", "v1k", "pkv:process", "get.t2", "Mops",
	 NULL, "ck_ht", "get.t2", "Mops", 1, CMP_GE, 0.9},
	{"get 1 thread: pkv >= 3 x LMDB", "peers", "pkv:process", "get.t1", "Mops", NULL,
	 "lmdb:nosync", "get.t1", "Mops", 1, CMP_GE, 3},
	{"get 2 threads: pkv >= 3 x LMDB", "peers", "pkv:process", "get.t2", "Mops", NULL,
	 "lmdb:nosync", "get.t2", "Mops", 1, CMP_GE, 3},
	{"get 1 thread: pkv >= 5 x LevelDB", "peers", "pkv:process", "get.t1", "Mops", NULL,
	 "leveldb:nosync", "get.t1", "Mops", 1, CMP_GE, 5},
	{"get 2 threads: pkv >= 5 x LevelDB", "peers", "pkv:process", "get.t2", "Mops", NULL,
	 "leveldb:nosync", "get.t2", "Mops", 1, CMP_GE, 5},
	{"resident memory per key after the load: pkv <= 1.0 x ck_ht", "memory", "pkv:process",
	 "mem", "rss_B_per_key", NULL, "ck_ht", "mem", "rss_B_per_key", 1, CMP_LE, 1.0},
	{"restart, 50k-record tail, warm: pkv open <= 0.08 x ck_ht insert of the same data",
	 "restart", "pkv:process", "restart.warm", "open_ms", NULL, "ck_ht", "restart.warm",
	 "open_ms", 1, CMP_LE, 0.08},
	/* Issue 11's goals of batches (rows 4 and 5). */
	{"batch of 8 keys, PROCESS, 1 thread: pkv keys/s >= 3 x single puts", "core", "pkv:batch8",
	 "put.t1", "Mops", NULL, "pkv:process", "put.t1", "Mops", 1, CMP_GE, 3},
	{"load of 1M keys via batches of 1000: pkv >= 0.6 x ck_ht insert", "memory",
	 "pkv:process", "load", "load_Mops", NULL, "ck_ht", "load", "load_Mops", 1, CMP_GE, 0.6},
	/* The other issues' goals and figures for reference. */
	{"get 1 thread: pkv >= 10 x RocksDB", "peers", "pkv:process", "get.t1", "Mops", NULL,
	 "rocksdb:nosync", "get.t1", "Mops", 1, CMP_GE, 10},
	{"get 2 threads: pkv >= 10 x RocksDB", "peers", "pkv:process", "get.t2", "Mops", NULL,
	 "rocksdb:nosync", "get.t2", "Mops", 1, CMP_GE, 10},
	{"reads while one thread overwrites >= 0.7 x read-only (pkv)", "core", "pkv:process",
	 "rw.1r1w", "read_Mops", NULL, "pkv:process", "get.t1", "Mops", 1, CMP_GE, 0.7},
	{"put 1 thread, PROCESS: pkv >= 0.6 x in-memory ck_ht overwrite", "core", "pkv:process",
	 "put.t1", "Mops", NULL, "ck_ht", "put.t1", "Mops", 1, CMP_GE, 0.6},
	{"put 2 threads, PROCESS: pkv >= 0.5 x in-memory ck_ht overwrite", "core", "pkv:process",
	 "put.t2", "Mops", NULL, "ck_ht", "put.t2", "Mops", 1, CMP_GE, 0.5},
	{"POWER, 16 writers: pkv >= 0.7 x (appending fdatasync rate x 16), probed around the run",
	 "commit", "pkv:power", "commit.w16", "commits_per_s", NULL, "pkv:power", "commit.w16",
	 "dev_fsync_per_s", 16, CMP_GE, 0.7},
	{"POWER, 16 writers via tickets (PROCESS put + pkv_wait_durable) >= plain POWER", "commit",
	 "pkv-ticket:power", "commit.w16", "commits_per_s", NULL, "pkv:power", "commit.w16",
	 "commits_per_s", 1, CMP_GE, 1.0},
	{"POWER via tickets, 16 writers: pkv >= 3 x RocksDB sync=true", "commit",
	 "pkv-ticket:power", "commit.w16", "commits_per_s", NULL, "rocksdb:sync", "commit.w16",
	 "commits_per_s", 1, CMP_INFO, 0},
	{"POWER, 16 writers: commit p50 latency, pkv / RocksDB sync=true (lower is better)",
	 "commit", "pkv:power", "commit.w16", "p50_us", NULL, "rocksdb:sync", "commit.w16",
	 "p50_us", 1, CMP_INFO, 0},
	{"POWER, 16 writers: commit p99 latency, pkv / RocksDB sync=true (lower is better)",
	 "commit", "pkv:power", "commit.w16", "p99_us", NULL, "rocksdb:sync", "commit.w16",
	 "p99_us", 1, CMP_INFO, 0},
	{"POWER, 16 writers: pkv / (preallocated-file fdatasync rate x 16), probed around the run",
	 "commit", "pkv:power", "commit.w16", "commits_per_s", NULL, "pkv:power", "commit.w16",
	 "dev_prealloc_fsync_per_s", 16, CMP_INFO, 0},
	{"POWER, 16 writers: pkv / (fdatasync rate of the disk group x 16)", "commit", "pkv:power",
	 "commit.w16", "commits_per_s", "disk", "disk", "fsync", "append_per_s", 16, CMP_INFO, 0},
	{"POWER, 16 writers: pkv >= 3 x RocksDB sync=true", "commit", "pkv:power", "commit.w16",
	 "commits_per_s", NULL, "rocksdb:sync", "commit.w16", "commits_per_s", 1, CMP_GE, 3},
	{"put 1 thread: pkv PROCESS / RocksDB sync=false", "peers", "pkv:process", "put.t1", "Mops",
	 NULL, "rocksdb:nosync", "put.t1", "Mops", 1, CMP_INFO, 0},
	{"put 1 thread: pkv PROCESS / LMDB NOSYNC", "peers", "pkv:process", "put.t1", "Mops", NULL,
	 "lmdb:nosync", "put.t1", "Mops", 1, CMP_INFO, 0},
	{"batch of 8 keys, PROCESS, 2 threads: pkv keys/s / single puts", "core", "pkv:batch8",
	 "put.t2", "Mops", NULL, "pkv:process", "put.t2", "Mops", 1, CMP_INFO, 0},
	{"get 1 thread: pkv:ref / pkv:process (what not copying saves)", "core", "pkv:ref",
	 "get.t1", "Mops", NULL, "pkv:process", "get.t1", "Mops", 1, CMP_INFO, 0},
	{"get p99.9 latency: pkv:ref / ck_ht", "core", "pkv:ref", "lat.get.t1", "p999_ns", NULL,
	 "ck_ht", "lat.get.t1", "p999_ns", 1, CMP_INFO, 0},
	{"restart, cold cache: pkv open / ck_ht reload (time, lower is better)", "restart",
	 "pkv:process", "restart.cold", "open_ms", NULL, "ck_ht", "restart.cold", "open_ms", 1,
	 CMP_INFO, 0},
	{"resident memory per key at rest after the load: pkv / ck_ht", "memory", "pkv:process",
	 "mem", "rss_rest_B_per_key", NULL, "ck_ht", "mem", "rss_B_per_key", 1, CMP_INFO, 0},
	{"anonymous memory per key: pkv / ck_ht (lower is better)", "memory", "pkv:process", "mem",
	 "anon_B_per_key", NULL, "ck_ht", "mem", "anon_B_per_key", 1, CMP_INFO, 0},
	{"for reference, ck_ht: reads next to one writer / read-only", "core", "ck_ht", "rw.1r1w",
	 "read_Mops", NULL, "ck_ht", "get.t1", "Mops", 1, CMP_INFO, 0},
	{"for reference, lfht: reads next to one writer / read-only", "core", "lfht", "rw.1r1w",
	 "read_Mops", NULL, "lfht", "get.t1", "Mops", 1, CMP_INFO, 0},
};
#define NGOALS ((int)(sizeof(goals) / sizeof(goals[0])))

/* ---- main --------------------------------------------------------------------------------- */

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	double d = strtod(s, &end); /* accepts 1e6 */
	if (errno || end == s || *end || d < 0 || d > 1e15)
		return -1;
	*out = (uint64_t)d;
	return 0;
}

int main(int argc, char **argv)
{
	struct cli c = {.lat_rate = 2e5, .writers = 16, .child_timeout = 600};
	struct bopts o = {.nkeys = 1000000, .klen = 16, .vlen = 100, .seed = 42, .warmup = 0.3,
			  .slice_warmup = 0.1,
			  .theta = 0.99, .dir = "./bench-data", .tail = 50000,
			  .wamp_ops = 1000000, .opcap = 1u << 21};
	const char *out = NULL;
	enum {
		O_DIR = 256, O_OUT, O_KEYS, O_KLEN, O_VLEN, O_SECONDS, O_WARMUP, O_ROUNDS, O_LATRATE,
		O_NOPIN, O_ONLY, O_SYSTEMS, O_WORKLOADS, O_THREADS, O_DIST, O_THETA, O_MODE,
		O_WRITERS, O_TAIL, O_WAMPOPS, O_SEED, O_TIMEOUT, O_DRY, O_LIST, O_NOEVICT,
		O_INTERLEAVE, O_NOPREWARM,
	};
	static const struct option lo[] = {
		{"dir", 1, 0, O_DIR}, {"out", 1, 0, O_OUT}, {"keys", 1, 0, O_KEYS},
		{"klen", 1, 0, O_KLEN}, {"vlen", 1, 0, O_VLEN}, {"seconds", 1, 0, O_SECONDS},
		{"warmup", 1, 0, O_WARMUP}, {"rounds", 1, 0, O_ROUNDS},
		{"lat-rate", 1, 0, O_LATRATE}, {"no-pin", 0, 0, O_NOPIN}, {"only", 1, 0, O_ONLY},
		{"systems", 1, 0, O_SYSTEMS}, {"workloads", 1, 0, O_WORKLOADS},
		{"threads", 1, 0, O_THREADS}, {"dist", 1, 0, O_DIST}, {"theta", 1, 0, O_THETA},
		{"mode", 1, 0, O_MODE}, {"writers", 1, 0, O_WRITERS}, {"tail", 1, 0, O_TAIL},
		{"wamp-ops", 1, 0, O_WAMPOPS}, {"seed", 1, 0, O_SEED},
		{"child-timeout", 1, 0, O_TIMEOUT}, {"dry-run", 0, 0, O_DRY}, {"list", 0, 0, O_LIST},
		{"no-evict", 0, 0, O_NOEVICT}, {"interleave", 0, 0, O_INTERLEAVE},
		{"no-prewarm", 0, 0, O_NOPREWARM}, {"help", 0, 0, 'h'}, {0, 0, 0, 0},
	};
	int opt;
	while ((opt = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (opt) {
		case O_DIR: o.dir = optarg; break;
		case O_OUT: out = optarg; break;
		case O_KEYS:
			if (parse_u64(optarg, &o.nkeys) || o.nkeys == 0 || o.nkeys > OP_IDX_MASK)
				goto bad;
			break;
		case O_KLEN: o.klen = (unsigned)atoi(optarg); if (o.klen < 8 || o.klen > 1024) goto bad; break;
		case O_VLEN: o.vlen = (unsigned)atoi(optarg); if (o.vlen > (1u << 20)) goto bad; break;
		case O_SECONDS: c.seconds = atof(optarg); if (c.seconds <= 0) goto bad; break;
		case O_WARMUP: o.warmup = atof(optarg); if (o.warmup < 0) goto bad; break;
		case O_ROUNDS: c.rounds = atoi(optarg); if (c.rounds < 1 || c.rounds > MAXROUNDS) goto bad; break;
		case O_LATRATE: c.lat_rate = atof(optarg); if (c.lat_rate <= 0) goto bad; break;
		case O_NOPIN: c.no_pin = 1; break;
		case O_ONLY: c.only = optarg; break;
		case O_SYSTEMS: c.systems = optarg; break;
		case O_WORKLOADS: c.workloads = optarg; break;
		case O_THREADS: c.threads = optarg; break;
		case O_DIST: c.dists = optarg; break;
		case O_THETA: o.theta = atof(optarg); if (o.theta <= 0 || o.theta >= 1) goto bad; break;
		case O_MODE: c.mode = optarg; break;
		case O_WRITERS: c.writers = (unsigned)atoi(optarg); if (!c.writers || c.writers > 256) goto bad; break;
		case O_TAIL: if (parse_u64(optarg, &o.tail)) goto bad; break;
		case O_WAMPOPS: if (parse_u64(optarg, &o.wamp_ops) || !o.wamp_ops) goto bad; break;
		case O_SEED: if (parse_u64(optarg, &o.seed)) goto bad; break;
		case O_TIMEOUT: c.child_timeout = atoi(optarg); if (c.child_timeout < 1) goto bad; break;
		case O_DRY: c.dry_run = 1; break;
		case O_NOEVICT: o.no_evict = 1; break;
		case O_INTERLEAVE: c.interleave = 1; break;
		case O_NOPREWARM: o.no_prewarm = 1; break;
		case O_LIST:
			printf("compiled-in engines and their systems:\n");
			engine_list(stdout);
			return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
		continue;
bad:
		fprintf(stderr, "pkvbench: bad value for --%s: %s\n", lo[opt - O_DIR].name, optarg);
		return 2;
	}
	c.profile = optind < argc ? argv[optind] : "quick";
	if (optind + 1 < argc) {
		usage(stderr);
		return 2;
	}

	static struct plan plan;
	snprintf(plan.profile, sizeof(plan.profile), "%s", c.profile);
	if (!strcmp(c.profile, "quick")) {
		plan_quick(&plan, &c, &o);
	} else if (!strcmp(c.profile, "full")) {
		plan_full(&plan, &c, &o);
	} else if (!strcmp(c.profile, "custom")) {
		if (plan_custom(&plan, &c, &o) != 0) {
			fprintf(stderr, "pkvbench: custom plan is empty (see --help, --list)\n");
			return 2;
		}
	} else {
		fprintf(stderr, "pkvbench: unknown profile '%s'\n", c.profile);
		usage(stderr);
		return 2;
	}
	if (c.only)
		plan_filter(&plan, c.only);

	/* Output directory and a record of how this run was started. */
	char outbuf[PATH_MAX], stamp[32], started[40];
	time_t now = time(NULL);
	struct tm tmv;
	localtime_r(&now, &tmv);
	strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &tmv);
	strftime(started, sizeof(started), "%Y-%m-%dT%H:%M:%S%z", &tmv);
	if (!out) {
		snprintf(outbuf, sizeof(outbuf), "./bench-results/%s-%s", c.profile, stamp);
		out = outbuf;
	}
	o.out = out;
	char cmdline[2048] = "";
	for (int i = 0; i < argc; i++) {
		size_t l = strlen(cmdline);
		snprintf(cmdline + l, sizeof(cmdline) - l, "%s%s", i ? " " : "", argv[i]);
	}

	plan_print(stdout, &plan, &o);
	if (c.dry_run)
		return 0;
	int rc = mkdir_p(o.dir);
	if (rc) {
		fprintf(stderr, "pkvbench: cannot create data dir %s: %s\n", o.dir, strerror(-rc));
		return 1;
	}
	if ((rc = mkdir_p(out)) != 0) {
		fprintf(stderr, "pkvbench: cannot create output dir %s: %s\n", out, strerror(-rc));
		return 1;
	}
	printf("data dir %s (%s), results in %s, %u CPUs\n", o.dir, fs_type_name(o.dir), out,
	       ncpus());
	fflush(stdout);

	struct results R = {0};
	double st0, st1, busy0 = machine_busy_s(&st0), cpu0 = own_cpu_s();
	double load_start = 0;
	if (getloadavg(&load_start, 1) == 1 && load_start > 0.5 * ncpus())
		fprintf(stderr, "pkvbench: the machine is busy (load average %.2f on %u CPUs): "
			"figures will be noisy; ratios from interleaved groups suffer least\n",
			load_start, ncpus());
	t_start = now_ns();
	run_plan(&plan, &o, &R, c.child_timeout);
	double elapsed = (double)(now_ns() - t_start) / 1e9;
	double busy1 = machine_busy_s(&st1), cpu1 = own_cpu_s();

	struct runinfo ri = {.plan = &plan, .o = &o, .started = started, .elapsed_s = elapsed,
			     .cmdline = cmdline, .load_start = load_start};
	if (busy0 >= 0 && busy1 >= 0 && elapsed > 0) {
		ri.other_cpus = ((busy1 - busy0) - (cpu1 - cpu0)) / elapsed;
		if (ri.other_cpus < 0)
			ri.other_cpus = 0;
		ri.steal_cpus = (st1 - st0) / elapsed;
	}
	char path[PATH_MAX + 32];
	snprintf(path, sizeof(path), "%s/summary.txt", out);
	FILE *sf = fopen(path, "w");
	report_table(stdout, &R, &ri);
	report_goals(stdout, &R, &ri, goals, NGOALS);
	if (sf) {
		report_table(sf, &R, &ri);
		report_goals(sf, &R, &ri, goals, NGOALS);
		fclose(sf);
	}
	snprintf(path, sizeof(path), "%s/results.csv", out);
	if (report_csv(path, &R, &ri) != 0)
		fprintf(stderr, "pkvbench: cannot write %s\n", path);
	snprintf(path, sizeof(path), "%s/results.json", out);
	if (report_json(path, &R, &ri, goals, NGOALS) != 0)
		fprintf(stderr, "pkvbench: cannot write %s\n", path);
	printf("\nwrote %s/{summary.txt,results.csv,results.json} in %.0f s\n", out, elapsed);
	if (out == outbuf) {
		/* bench-results/latest -> this run */
		char link[PATH_MAX];
		snprintf(link, sizeof(link), "./bench-results/latest");
		(void)unlink(link);
		if (symlink(strrchr(outbuf, '/') + 1, link) != 0)
			(void)0;
	}
	return R.nerr ? 1 : 0;
}
