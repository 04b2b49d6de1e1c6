/* SPDX-License-Identifier: MIT */
/*
 * report.c - what a run leaves behind: the terminal table (medians over rounds, each peer's
 * cell followed by the ratio pkv/peer from the same group), the goals, results.csv and
 * results.json (every round's value, medians, configurations, errors, host).
 */
#include "driver.h"

#include <math.h>
#include <string.h>
#include <sys/utsname.h>

/* Figures shown in the table (everything goes to CSV/JSON), and which way is better. */
static const struct {
	const char *name;
	int higher_better;
} shown[] = {
	{"Mops", 1},	      {"read_Mops", 1},	    {"write_Mops", 1},	   {"p50_ns", 0},
	{"p99_ns", 0},	      {"p999_ns", 0},	    {"max_ns", 0},	   {"svc_p999_ns", 0},
	{"commits_per_s", 1}, {"dev_fsync_per_s", 1}, {"dev_prealloc_fsync_per_s", 1}, {"p50_us", 0},	    {"p99_us", 0},	   {"writes_per_sync", 1},
	{"load_Mops", 1},     {"rss_B_per_key", 0}, {"rss_rest_B_per_key", 0}, {"anon_B_per_key", 0}, {"disk_B_per_key", 0},
	{"open_ms", 0},	      {"first_get_us", 0},  {"verify_errors", 0},  {"update_x", 0},
	{"update_close_x", 0}, {"load_x", 0}, {"dev_update_x", 0}, {"dev_load_x", 0},	    {"miss_pct", 0},	   {"append_per_s", 1},
	{"prealloc_per_s", 1}, {"append_p50_us", 0}, {"append_p99_us", 0},
};
#define NSHOWN (sizeof(shown) / sizeof(shown[0]))

static int shown_idx(const char *m)
{
	for (size_t i = 0; i < NSHOWN; i++)
		if (!strcmp(shown[i].name, m))
			return (int)i;
	return -1;
}

static void fmt_num(char *buf, size_t cap, double v)
{
	double a = fabs(v);
	if (a >= 100000)
		snprintf(buf, cap, "%.0f", v);
	else if (a >= 100)
		snprintf(buf, cap, "%.0f", v);
	else if (a >= 10)
		snprintf(buf, cap, "%.1f", v);
	else if (a >= 1)
		snprintf(buf, cap, "%.2f", v);
	else if (a == 0)
		snprintf(buf, cap, "0");
	else
		snprintf(buf, cap, "%.3g", v);
}

/* The pkv system a group's ratios refer to: the first pkv system in the group. */
static const char *ref_system(const struct group *g)
{
	for (int i = 0; i < g->nsys; i++)
		if (!strcmp(g->sys[i].eng->name, "pkv"))
			return g->sys[i].name;
	return NULL;
}

static void print_configs(FILE *f, const struct results *r)
{
	fprintf(f, "\nconfigurations (as each system printed it):\n");
	for (size_t i = 0; i < r->ncfg; i++) {
		int dup = 0;
		for (size_t j = 0; j < i; j++)
			if (!strcmp(r->cfg[j].sys, r->cfg[i].sys) &&
			    !strcmp(r->cfg[j].text, r->cfg[i].text))
				dup = 1;
		if (!dup)
			fprintf(f, "  %-16s %s\n", r->cfg[i].sys, r->cfg[i].text);
	}
}

void report_table(FILE *f, const struct results *r, const struct runinfo *ri)
{
	const struct plan *p = ri->plan;
	const struct bopts *o = ri->o;
	fprintf(f, "\n=== pkvbench '%s': %llu keys, %u B keys, %u B values, warm-up %.1f s; "
		   "medians over rounds; (x) = pkv / that system in the same group, the median of "
		   "per-round ratios where rounds pair up ===\n",
		p->profile, (unsigned long long)o->nkeys, o->klen, o->vlen, o->warmup);
	fprintf(f, "machine: %u CPUs; load average %.2f at the start; during the run other "
		   "processes kept %.2f CPUs busy and the hypervisor stole %.2f CPUs on average%s\n",
		ncpus(), ri->load_start, ri->other_cpus, ri->steal_cpus,
		ri->other_cpus > 0.1 * ncpus() ? " -- NOT A QUIET MACHINE: absolute figures are low "
						 "and noisy" : "");
	for (int gi = 0; gi < p->ng; gi++) {
		const struct group *g = &p->g[gi];
		const char *ref = ref_system(g);
		fprintf(f, "\n-- %s: %s", g->name, g->title);
		if (g->kind == G_SESSION || g->kind == G_INPROC)
			fprintf(f, " (%d %s%s", g->rounds, g->kind == G_INPROC ? "repetition" : "round",
				g->rounds > 1 ? "s" : "");
		if (g->nkeys || g->klen || g->vlen)
			fprintf(f, "%s%llu keys, %u B keys, %u B values",
				g->kind == G_SESSION || g->kind == G_INPROC ? ", " : " (",
				(unsigned long long)(g->nkeys ? g->nkeys : o->nkeys),
				g->klen ? g->klen : o->klen, g->vlen ? g->vlen : o->vlen);
		if (g->kind == G_SESSION || g->kind == G_INPROC || g->nkeys || g->klen || g->vlen)
			fputc(')', f);
		fprintf(f, " --\n");

		/* Columns: the group's systems in plan order ("disk" for the device group). */
		const char *cols[MAXSYS];
		int nc = 0;
		if (g->kind == G_FSYNC)
			cols[nc++] = "disk";
		for (int i = 0; i < g->nsys; i++)
			cols[nc++] = g->sys[i].name;
		fprintf(f, "%-18s %-22s", "experiment", "metric");
		for (int i = 0; i < nc; i++)
			fprintf(f, " %-20s", cols[i]);
		fputc('\n', f);

		/* Rows: (experiment, metric) pairs in the order they first arrived. */
		for (size_t i = 0; i < r->nm; i++) {
			const struct metric *m = &r->m[i];
			if (m->group != gi)
				continue;
			int si = shown_idx(m->name);
			if (si < 0)
				continue;
			int first = 1;
			for (size_t j = 0; j < i && first; j++)
				if (r->m[j].group == gi && !strcmp(r->m[j].exp, m->exp) &&
				    !strcmp(r->m[j].name, m->name))
					first = 0;
			if (!first)
				continue;
			if (!strcmp(m->name, "miss_pct") || !strcmp(m->name, "verify_errors")) {
				/* Show only when some system had any. */
				int any = 0;
				for (size_t j = 0; j < r->nm; j++)
					if (r->m[j].group == gi && !strcmp(r->m[j].exp, m->exp) &&
					    !strcmp(r->m[j].name, m->name) && median(r->m[j].v, r->m[j].n) > 0)
						any = 1;
				if (!any)
					continue;
			}
			char label[40];
			snprintf(label, sizeof(label), "%s%s", m->unit, shown[si].higher_better ? " ^" : " v");
			fprintf(f, "%-18.18s %-22.22s", m->exp, m->name);
			const struct metric *rm = ref ? res_find(r, gi, ref, m->exp, m->name) : NULL;
			for (int k = 0; k < nc; k++) {
				const struct metric *x = res_find(r, gi, cols[k], m->exp, m->name);
				char cell[48] = "-", num[24];
				if (x) {
					double v = median(x->v, x->n);
					fmt_num(num, sizeof(num), v);
					if (rm && x != rm && v != 0)
						snprintf(cell, sizeof(cell), "%s (%.2fx)", num,
							 ratio_of(rm, x));
					else
						snprintf(cell, sizeof(cell), "%s", num);
				}
				fprintf(f, " %-20s", cell);
			}
			fprintf(f, " %s\n", label);
		}
	}
	fprintf(f, "\n(^ higher is better, v lower is better; ratios are pkv/peer whatever the "
		   "direction)\n");
	print_configs(f, r);
	if (r->nerr) {
		fprintf(f, "\nerrors and warnings:\n");
		for (size_t i = 0; i < r->nerr; i++)
			fprintf(f, "  [%s] %s: %s\n", p->g[r->err[i].group].name, r->err[i].sys,
				r->err[i].text);
	}
}

static int goal_eval(const struct results *r, const struct plan *p, const struct goal *gl,
		     double *ratio, double *num, double *den)
{
	int g1 = group_index(p, gl->group);
	int g2 = group_index(p, gl->dgroup ? gl->dgroup : gl->group);
	if (g1 < 0 || g2 < 0)
		return -1;
	const struct metric *a = res_find(r, g1, gl->nsys, gl->nexp, gl->nmetric);
	const struct metric *b = res_find(r, g2, gl->dsys, gl->dexp, gl->dmetric);
	if (!a || !b)
		return -1;
	*num = median(a->v, a->n);
	*den = median(b->v, b->n) * gl->dfactor;
	if (*den == 0)
		return -1;
	*ratio = ratio_of(a, b) / gl->dfactor;
	return 0;
}

void report_goals(FILE *f, const struct results *r, const struct runinfo *ri,
		  const struct goal *goals, int ngoals)
{
	int header = 0;
	for (int i = 0; i < ngoals; i++) {
		double ratio, num, den;
		if (goal_eval(r, ri->plan, &goals[i], &ratio, &num, &den) != 0)
			continue;
		if (!header) {
			fprintf(f, "\ngoals (medians of this run):\n");
			header = 1;
		}
		const char *verdict = "info";
		if (goals[i].cmp == CMP_GE)
			verdict = ratio >= goals[i].target ? "PASS" : "MISS";
		else if (goals[i].cmp == CMP_LE)
			verdict = ratio <= goals[i].target ? "PASS" : "MISS";
		char a[24], b[24];
		fmt_num(a, sizeof(a), num);
		fmt_num(b, sizeof(b), den);
		fprintf(f, "  %-4s %6.2fx  %-66s (%s / %s)\n", verdict, ratio, goals[i].desc, a, b);
	}
}

/* ---- files -------------------------------------------------------------------------------- */

int report_csv(const char *path, const struct results *r, const struct runinfo *ri)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return -1;
	fprintf(f, "group,system,experiment,metric,unit,median,min,max,n,values,ratio_pkv_over\n");
	for (size_t i = 0; i < r->nm; i++) {
		const struct metric *m = &r->m[i];
		const struct group *g = &ri->plan->g[m->group];
		double lo = m->v[0], hi = m->v[0], med = median(m->v, m->n);
		for (int k = 1; k < m->n; k++) {
			lo = m->v[k] < lo ? m->v[k] : lo;
			hi = m->v[k] > hi ? m->v[k] : hi;
		}
		fprintf(f, "%s,%s,%s,%s,%s,%.6g,%.6g,%.6g,%d,", g->name, m->sys, m->exp, m->name,
			m->unit, med, lo, hi, m->n);
		for (int k = 0; k < m->n; k++)
			fprintf(f, "%s%.6g", k ? ";" : "", m->v[k]);
		const char *ref = ref_system(g);
		const struct metric *rm = ref ? res_find(r, m->group, ref, m->exp, m->name) : NULL;
		if (rm && rm != m && med != 0)
			fprintf(f, ",%.4f\n", ratio_of(rm, m));
		else
			fprintf(f, ",\n");
	}
	return fclose(f) == 0 ? 0 : -1;
}

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

static void json_num(FILE *f, double v)
{
	if (isnan(v) || isinf(v))
		fprintf(f, "null");
	else
		fprintf(f, "%.9g", v);
}

static void cpu_model(char *buf, size_t cap)
{
	FILE *f = fopen("/proc/cpuinfo", "r");
	char line[512];
	snprintf(buf, cap, "unknown");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "model name", 10)) {
			char *c = strchr(line, ':');
			if (c) {
				c += 2;
				c[strcspn(c, "\n")] = 0;
				snprintf(buf, cap, "%s", c);
			}
			break;
		}
	}
	fclose(f);
}

int report_json(const char *path, const struct results *r, const struct runinfo *ri,
		const struct goal *goals, int ngoals)
{
	const struct plan *p = ri->plan;
	const struct bopts *o = ri->o;
	FILE *f = fopen(path, "w");
	if (!f)
		return -1;
	struct utsname un;
	char cpu[256];
	cpu_model(cpu, sizeof(cpu));
	uname(&un);
	fprintf(f, "{\n  \"bench\": \"pkvbench\",\n  \"format\": 1,\n  \"profile\": ");
	json_str(f, p->profile);
	fprintf(f, ",\n  \"started\": ");
	json_str(f, ri->started);
	fprintf(f, ",\n  \"elapsed_s\": %.1f,\n  \"command\": ", ri->elapsed_s);
	json_str(f, ri->cmdline);
	fprintf(f, ",\n  \"host\": {\"cpus\": %u, \"load_start\": %.2f, \"other_cpus\": %.3f, "
		   "\"steal_cpus\": %.3f, \"cpu\": ", ncpus(), ri->load_start, ri->other_cpus,
		ri->steal_cpus);
	json_str(f, cpu);
	fprintf(f, ", \"kernel\": ");
	json_str(f, un.release);
	fprintf(f, ", \"data_fs\": ");
	json_str(f, fs_type_name(o->dir));
	fprintf(f, "},\n  \"options\": {\"keys\": %llu, \"klen\": %u, \"vlen\": %u, \"seed\": %llu, "
		   "\"warmup_s\": %g, \"theta\": %g, \"restart_tail\": %llu, \"wamp_ops\": %llu},\n",
		(unsigned long long)o->nkeys, o->klen, o->vlen, (unsigned long long)o->seed,
		o->warmup, o->theta, (unsigned long long)o->tail, (unsigned long long)o->wamp_ops);
	fprintf(f, "  \"groups\": [\n");
	for (int gi = 0; gi < p->ng; gi++) {
		const struct group *g = &p->g[gi];
		const char *ref = ref_system(g);
		fprintf(f, "    {\"name\": ");
		json_str(f, g->name);
		fprintf(f, ", \"title\": ");
		json_str(f, g->title);
		fprintf(f, ", \"rounds\": %d, \"keys\": %llu, \"klen\": %u, \"vlen\": %u, \"reference\": ",
			g->rounds, (unsigned long long)(g->nkeys ? g->nkeys : o->nkeys),
			g->klen ? g->klen : o->klen, g->vlen ? g->vlen : o->vlen);
		if (ref)
			json_str(f, ref);
		else
			fprintf(f, "null");
		fprintf(f, ",\n     \"systems\": [");
		for (int s = 0; s < g->nsys; s++) {
			fprintf(f, "%s{\"name\": ", s ? ", " : "");
			json_str(f, g->sys[s].name);
			fprintf(f, ", \"config\": ");
			const char *cfg = NULL;
			for (size_t k = 0; k < r->ncfg; k++)
				if (r->cfg[k].group == gi && !strcmp(r->cfg[k].sys, g->sys[s].name))
					cfg = r->cfg[k].text;
			if (cfg)
				json_str(f, cfg);
			else
				fprintf(f, "null");
			fputc('}', f);
		}
		fprintf(f, "],\n     \"experiments\": [");
		for (int e = 0; e < g->nexp && (g->kind == G_SESSION || g->kind == G_INPROC); e++) {
			const struct exp *x = &g->exps[e];
			fprintf(f, "%s\n       {\"id\": ", e ? "," : "");
			json_str(f, x->id);
			fprintf(f, ", \"kind\": \"%s\", \"get\": %u, \"put\": %u, \"del\": %u, "
				   "\"threads\": %u, \"writers\": %u, \"dist\": \"%s\", \"theta\": %g, "
				   "\"seconds\": %g, \"rate_per_thread\": %g, \"pinned\": %s}",
				x->kind == EXP_TPUT ? "throughput" : x->kind == EXP_LAT ? "latency"
				: x->kind == EXP_RW ? "readers+writer" : "commit",
				x->mix.get, x->mix.put, x->mix.del, x->threads, x->writers,
				x->dist == DIST_ZIPF ? "zipf" : "uniform", x->dist == DIST_ZIPF ? x->theta : 0,
				x->seconds, x->kind == EXP_LAT ? x->rate : 0, x->pin ? "true" : "false");
		}
		fprintf(f, "],\n     \"results\": [");
		int first = 1;
		for (size_t i = 0; i < r->nm; i++) {
			const struct metric *m = &r->m[i];
			if (m->group != gi)
				continue;
			fprintf(f, "%s\n       {\"system\": ", first ? "" : ",");
			first = 0;
			json_str(f, m->sys);
			fprintf(f, ", \"experiment\": ");
			json_str(f, m->exp);
			fprintf(f, ", \"metric\": ");
			json_str(f, m->name);
			fprintf(f, ", \"unit\": ");
			json_str(f, m->unit);
			double med = median(m->v, m->n);
			fprintf(f, ", \"median\": ");
			json_num(f, med);
			fprintf(f, ", \"values\": [");
			for (int k = 0; k < m->n; k++) {
				if (k)
					fprintf(f, ", ");
				json_num(f, m->v[k]);
			}
			fprintf(f, "]");
			const struct metric *rm = ref ? res_find(r, gi, ref, m->exp, m->name) : NULL;
			if (rm && rm != m && med != 0) {
				fprintf(f, ", \"ratio_pkv_over\": ");
				json_num(f, ratio_of(rm, m));
			}
			fputc('}', f);
		}
		fprintf(f, "]}%s\n", gi + 1 < p->ng ? "," : "");
	}
	fprintf(f, "  ],\n  \"goals\": [");
	int first = 1;
	for (int i = 0; i < ngoals; i++) {
		double ratio, num, den;
		if (goal_eval(r, p, &goals[i], &ratio, &num, &den) != 0)
			continue;
		fprintf(f, "%s\n    {\"goal\": ", first ? "" : ",");
		first = 0;
		json_str(f, goals[i].desc);
		fprintf(f, ", \"ratio\": ");
		json_num(f, ratio);
		fprintf(f, ", \"target\": ");
		if (goals[i].cmp == CMP_INFO)
			fprintf(f, "null");
		else
			fprintf(f, "\"%s %g\"", goals[i].cmp == CMP_GE ? ">=" : "<=", goals[i].target);
		fprintf(f, ", \"pass\": %s}",
			goals[i].cmp == CMP_INFO ? "null"
			: (goals[i].cmp == CMP_GE ? ratio >= goals[i].target : ratio <= goals[i].target)
				? "true" : "false");
	}
	fprintf(f, "],\n  \"errors\": [");
	for (size_t i = 0; i < r->nerr; i++) {
		fprintf(f, "%s\n    {\"group\": ", i ? "," : "");
		json_str(f, p->g[r->err[i].group].name);
		fprintf(f, ", \"system\": ");
		json_str(f, r->err[i].sys);
		fprintf(f, ", \"message\": ");
		json_str(f, r->err[i].text);
		fputc('}', f);
	}
	fprintf(f, "]\n}\n");
	return fclose(f) == 0 ? 0 : -1;
}
