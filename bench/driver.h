/* SPDX-License-Identifier: MIT */
/*
 * driver.h - the parent's side: the plan (groups of systems x experiments, rounds) and the
 * table of results gathered from the children, which report.c prints and writes out.
 */
#ifndef PKVBENCH_DRIVER_H
#define PKVBENCH_DRIVER_H

#include "bench.h"

#define MAXSYS 16
#define MAXEXP 64
#define MAXGROUP 16
#define MAXROUNDS 16

enum gkind {
	G_SESSION = 0, /* load, then the experiments, once per round and system */
	G_RESTART,     /* prepare, cold open, warm open */
	G_WAMP,        /* write amplification */
	G_FSYNC,       /* the device's fdatasync rate */
	G_INPROC,      /* all systems in one process, experiments interleaved in slices; the
			* group's rounds are the repetitions inside that process */
};

struct group {
	char name[32];
	char title[160];
	enum gkind kind;
	struct sysdesc sys[MAXSYS];
	int nsys;
	struct exp exps[MAXEXP];
	int nexp;
	int rounds;
	uint64_t nkeys; /* 0: the global value */
	unsigned klen, vlen;
};

struct plan {
	char profile[16];
	struct group g[MAXGROUP];
	int ng;
};

struct metric {
	int group;
	char sys[48], exp[48], name[40], unit[16];
	double v[MAXROUNDS];
	int n;
};

struct note {
	int group;
	char sys[48];
	char text[1024];
};

struct results {
	struct metric *m;
	size_t nm, capm;
	struct note *cfg, *err;
	size_t ncfg, capcfg, nerr, caperr;
};

/* Goals the project set itself; checked from one run's medians. */
enum cmp { CMP_GE, CMP_LE, CMP_INFO };
struct goal {
	const char *desc;
	const char *group;
	const char *nsys, *nexp, *nmetric; /* numerator */
	const char *dgroup;                /* denominator's group (NULL: same) */
	const char *dsys, *dexp, *dmetric; /* denominator */
	double dfactor;                    /* denominator multiplied by this */
	enum cmp cmp;
	double target;
};

struct runinfo {
	const struct plan *plan;
	const struct bopts *o;
	const char *started;
	double elapsed_s;
	const char *cmdline;
	double load_start; /* 1-minute load average when the run started */
	double other_cpus; /* CPUs kept busy by other processes during the run, on average */
	double steal_cpus; /* CPUs stolen by the hypervisor during the run, on average */
};

double median(const double *v, int n);
/* pkv / peer: the median of per-round ratios when both have the same rounds (rounds were
 * interleaved, so round i of both ran close in time), else the ratio of the medians. */
double ratio_of(const struct metric *pkv, const struct metric *peer);
const struct metric *res_find(const struct results *r, int group, const char *sys,
			      const char *exp, const char *name);
int group_index(const struct plan *p, const char *name);

void report_table(FILE *f, const struct results *r, const struct runinfo *ri);
void report_goals(FILE *f, const struct results *r, const struct runinfo *ri,
		  const struct goal *goals, int ngoals);
int report_csv(const char *path, const struct results *r, const struct runinfo *ri);
int report_json(const char *path, const struct results *r, const struct runinfo *ri,
		const struct goal *goals, int ngoals);

#endif
