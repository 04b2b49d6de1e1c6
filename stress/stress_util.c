/* SPDX-License-Identifier: MIT */
/*
 * stress_util.c - the scaffolding every stress driver shares: the option parser (a table of
 * struct su_opt read by getopt_long, --help printed from it), the work directory, and the
 * fork/pipe/wait plumbing of the writer and verifier children.
 */
#include "stress_util.h"

#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/wait.h>

#define SU_MAX_OPTS 40
#define SU_HELP 1000 /* getopt_long's value for --help, beyond every table index */

const char *su_prog = "stress";

/* ---- options ------------------------------------------------------------------------------ */

static bool su_opt_has_arg(const struct su_opt *o)
{
	return o->type != SU_OPT_FLAG && o->type != SU_OPT_CLEAR;
}

static const char *su_opt_arg(const struct su_opt *o)
{
	return o->arg != NULL ? o->arg : "N";
}

static void su_print_help(const struct su_opt *opts, const char *note)
{
	int width = 0;

	printf("usage: %s [OPTION]...\n", su_prog);
	for (const struct su_opt *o = opts; o->name != NULL; o++) {
		int w = (int)strlen(o->name) +
			(su_opt_has_arg(o) ? 1 + (int)strlen(su_opt_arg(o)) : 0);

		if (w > width)
			width = w;
	}
	for (const struct su_opt *o = opts; o->name != NULL; o++) {
		char left[128];
		const char *h = o->help;

		snprintf(left, sizeof(left), "%s%s%s", o->name, su_opt_has_arg(o) ? " " : "",
			 su_opt_has_arg(o) ? su_opt_arg(o) : "");
		printf("  --%-*s  ", width, left);
		/* Continuation lines of the help line up under its first line. */
		for (const char *nl; (nl = strchr(h, '\n')) != NULL; h = nl + 1)
			printf("%.*s\n  %*s  ", (int)(nl - h), h, width + 2, "");
		printf("%s\n", h);
	}
	printf("  --%-*s  print this help and exit\n", width, "help");
	if (note != NULL)
		fputs(note, stdout);
}

void su_usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", su_prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nusage: %s [OPTION]... (%s --help lists them)\n", su_prog, su_prog);
	exit(2);
}

static int su_parse_set(const struct su_opt *o, const char *v, unsigned *out)
{
	char buf[256], *save = NULL;

	if (strlen(v) >= sizeof(buf))
		return -1;
	strcpy(buf, v);
	*out = 0;
	for (char *t = strtok_r(buf, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
		unsigned i = 0;

		if (o->word != NULL && strcmp(t, o->word) == 0) {
			while (o->names[i] != NULL)
				*out |= 1u << i++;
			continue;
		}
		while (o->names[i] != NULL && strcmp(t, o->names[i]) != 0)
			i++;
		if (o->names[i] == NULL)
			return -1;
		*out |= 1u << i;
	}
	return *out != 0 ? 0 : -1;
}

/* Store @v through @o's pointer; on a bad value, a usage error that says what was expected. */
static void su_opt_store(const struct su_opt *o, const char *v)
{
	uint64_t max = o->max != 0 ? o->max : UINT64_MAX;
	enum pkv_durability d;
	uint64_t u;
	unsigned set;

	switch (o->type) {
	case SU_OPT_FLAG:
	case SU_OPT_CLEAR:
		*(bool *)o->ptr = o->type == SU_OPT_FLAG;
		return;
	case SU_OPT_U64:
	case SU_OPT_UINT:
		if (su_parse_u64(v, &u) != 0 || u < o->min || u > max) {
			if (o->max != 0)
				su_usage_error("--%s: '%s' is not a whole number in %" PRIu64
					       "..%" PRIu64,
					       o->name, v, o->min, max);
			su_usage_error("--%s: '%s' is not a whole number >= %" PRIu64, o->name, v,
				       o->min);
		}
		if (o->type == SU_OPT_U64)
			*(uint64_t *)o->ptr = u;
		else
			*(unsigned *)o->ptr = (unsigned)u;
		return;
	case SU_OPT_DOUBLE:
		if (su_parse_double(v, (double *)o->ptr) != 0)
			su_usage_error("--%s: '%s' is not a number >= 0", o->name, v);
		return;
	case SU_OPT_STR:
		*(const char **)o->ptr = v;
		return;
	case SU_OPT_DURABILITY:
		if (o->word != NULL && strcmp(v, o->word) == 0) {
			*(int *)o->ptr = -1;
			return;
		}
		if (su_parse_durability(v, &d) != 0)
			su_usage_error("--%s: '%s' is none of process, power, periodic%s%s",
				       o->name, v, o->word != NULL ? ", " : "",
				       o->word != NULL ? o->word : "");
		if (o->word != NULL)
			*(int *)o->ptr = (int)d;
		else
			*(enum pkv_durability *)o->ptr = d;
		return;
	case SU_OPT_SET:
		if (su_parse_set(o, v, &set) != 0)
			su_usage_error("--%s: '%s' is not a comma list of the names --help gives",
				       o->name, v);
		*(unsigned *)o->ptr = set;
		return;
	}
}

void su_opts_parse(int argc, char **argv, const char *prog, const struct su_opt *opts,
		   const char *note)
{
	struct option lo[SU_MAX_OPTS + 2];
	size_t n = 0;
	int c, idx;

	su_prog = prog;
	for (const struct su_opt *o = opts; o->name != NULL; o++) {
		if (n == SU_MAX_OPTS) {
			fprintf(stderr, "%s: more than %d options in the table\n", prog,
				SU_MAX_OPTS);
			exit(2);
		}
		lo[n] = (struct option){ o->name,
					 su_opt_has_arg(o) ? required_argument : no_argument, NULL,
					 (int)n };
		n++;
	}
	lo[n++] = (struct option){ "help", no_argument, NULL, SU_HELP };
	lo[n] = (struct option){ NULL, 0, NULL, 0 };
	opterr = 0;
	optind = 1;
	/* ':' first: a missing argument is told apart from an unknown option. */
	while ((c = getopt_long(argc, argv, ":", lo, &idx)) != -1) {
		if (c == SU_HELP) {
			su_print_help(opts, note);
			exit(0);
		}
		if (c == ':')
			su_usage_error("%s needs an argument", argv[optind - 1]);
		if (c == '?')
			su_usage_error("unknown option '%s'", argv[optind - 1]);
		su_opt_store(&opts[c], optarg);
		if (opts[c].given != NULL)
			*opts[c].given = true;
	}
	if (optind < argc)
		su_usage_error("unexpected argument '%s'", argv[optind]);
}

/* ---- failures ----------------------------------------------------------------------------- */

void su_vfail(uint64_t *failed, const char *fmt, va_list ap)
{
	static int printed;

	if (failed != NULL)
		(*failed)++;
	if (++printed > SU_MAX_FAIL_PRINT)
		return;
	fputs("FAIL: ", stdout);
	vfprintf(stdout, fmt, ap);
	fputc('\n', stdout);
	fflush(stdout);
}

void su_fail(uint64_t *failed, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	su_vfail(failed, fmt, ap);
	va_end(ap);
}

/* ---- files -------------------------------------------------------------------------------- */

int su_workdir(char *buf, size_t cap, const char *parent, const char *tag)
{
	int n;

	if (parent == NULL)
		return su_mktemp_dir(buf, cap, tag);
	n = snprintf(buf, cap, "%s/pkv-%s-XXXXXX", parent, tag);
	if (n < 0 || (size_t)n >= cap) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return mkdtemp(buf) != NULL ? 0 : -1;
}

int su_read_full(int fd, void *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, (char *)buf + got, len - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	return 0;
}

/* ---- children ----------------------------------------------------------------------------- */

pid_t su_fork_pipe(int *rfd, int *wfd)
{
	int pfd[2];
	pid_t pid;

	if (pipe(pfd) != 0) {
		fprintf(stderr, "%s: pipe: %s\n", su_prog, strerror(errno));
		exit(2);
	}
	fflush(stdout); /* or the child prints the parent's buffered lines again */
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "%s: fork: %s\n", su_prog, strerror(errno));
		exit(2);
	}
	if (pid == 0) {
		close(pfd[0]);
		*wfd = pfd[1];
		return 0;
	}
	close(pfd[1]);
	*rfd = pfd[0];
	return pid;
}

void su_send(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			_exit(4); /* the parent is gone */
		p += n;
		len -= (size_t)n;
	}
}

int su_wait(pid_t pid)
{
	int status = 0;

	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return status;
}

bool su_collect(pid_t pid, int rfd, void *res, size_t len, char *why, size_t whylen, int *status)
{
	bool got = su_read_full(rfd, res, len) == 0;
	int st;

	close(rfd);
	st = su_wait(pid);
	if (status != NULL)
		*status = st;
	if (got && WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return true;
	if (WIFSIGNALED(st))
		snprintf(why, whylen, "died of signal %d (%s)", WTERMSIG(st),
			 strsignal(WTERMSIG(st)));
	else
		snprintf(why, whylen, "exited with status %d%s",
			 WIFEXITED(st) ? WEXITSTATUS(st) : -1, got ? "" : " without a result");
	return false;
}

int su_msgs_fill(struct su_msgs *m, int timeout_ms)
{
	for (;;) {
		struct pollfd pf = { .fd = m->fd, .events = POLLIN };
		int pr = poll(&pf, 1, timeout_ms);
		ssize_t n;

		if (pr < 0 && errno == EINTR)
			continue;
		if (pr < 0) {
			fprintf(stderr, "%s: poll: %s\n", su_prog, strerror(errno));
			exit(2);
		}
		if (pr == 0)
			return 0;
		n = read(m->fd, m->pend + m->npend, sizeof(m->pend) - m->npend);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		m->npend += (size_t)n;
		return 1;
	}
}

bool su_msgs_next(struct su_msgs *m, void *out, size_t len, bool take)
{
	if (m->npend < len)
		return false;
	memcpy(out, m->pend, len);
	if (take) {
		memmove(m->pend, m->pend + len, m->npend - len);
		m->npend -= len;
	}
	return true;
}
