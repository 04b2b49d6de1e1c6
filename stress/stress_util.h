/* SPDX-License-Identifier: MIT */
/*
 * stress_util.h - what the stress drivers share.
 *
 * Header-only (file-static): deterministic pseudo-random content (so a reader can regenerate
 * what a writer wrote), a per-thread PRNG, monotonic time, number parsing and a recursive
 * directory removal. In stress_util.c, compiled into every driver: the option parser (a table
 * of struct su_opt, --help printed from it), the FAIL printer, the work directory, and the
 * fork/pipe/wait plumbing between a driver and its writer and verifier children.
 * The drivers use only the public header pkv.h: they test the contract, not the internals.
 */
#ifndef PKV_STRESS_UTIL_H
#define PKV_STRESS_UTIL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "pkv.h"

#if defined(__GNUC__)
#define SU_UNUSED __attribute__((unused))
#else
#define SU_UNUSED
#endif

/* splitmix64: a good 64-bit mixer; also the step of the PRNG below. */
static SU_UNUSED uint64_t su_mix64(uint64_t x)
{
	x += 0x9E3779B97F4A7C15ull;
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
	return x ^ (x >> 31);
}

static SU_UNUSED uint64_t su_hash3(uint64_t a, uint64_t b, uint64_t c)
{
	return su_mix64(su_mix64(su_mix64(a) ^ b) ^ c);
}

/* xorshift64* per-thread generator; never seeded with 0. */
struct su_rng {
	uint64_t s;
};

static SU_UNUSED void su_rng_seed(struct su_rng *r, uint64_t seed)
{
	r->s = su_mix64(seed) | 1;
}

static SU_UNUSED uint64_t su_rng_next(struct su_rng *r)
{
	uint64_t x = r->s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	r->s = x;
	return x * 0x2545F4914F6CDD1Dull;
}

/* Uniform-ish in [0, n); n > 0. */
static SU_UNUSED uint64_t su_rng_below(struct su_rng *r, uint64_t n)
{
	return su_rng_next(r) % n;
}

/* Fill @len bytes at @dst with a stream determined by @seed alone. */
static SU_UNUSED void su_fill(void *dst, size_t len, uint64_t seed)
{
	unsigned char *p = dst;
	uint64_t x = su_mix64(seed);
	size_t i = 0;

	while (i + 8 <= len) {
		memcpy(p + i, &x, 8);
		x = su_mix64(x);
		i += 8;
	}
	if (i < len)
		memcpy(p + i, &x, len - i);
}

/* FNV-1a 64 continued from @h. */
static SU_UNUSED uint64_t su_fnv(uint64_t h, const void *data, size_t len)
{
	const unsigned char *p = data;

	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001B3ull;
	}
	return h;
}
#define SU_FNV_INIT 0xCBF29CE484222325ull

static SU_UNUSED double su_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static SU_UNUSED void su_sleep_ms(double ms)
{
	struct timespec ts;

	if (ms <= 0)
		return;
	ts.tv_sec = (time_t)(ms / 1000.0);
	ts.tv_nsec = (long)((ms - (double)ts.tv_sec * 1000.0) * 1e6);
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Parse an unsigned decimal; returns 0 on success. */
static SU_UNUSED int su_parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (s == NULL || *s == '\0' || *s == '-')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	*out = v;
	return 0;
}

static SU_UNUSED int su_parse_double(const char *s, double *out)
{
	char *end;
	double v;

	if (s == NULL || *s == '\0')
		return -1;
	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || *end != '\0' || v < 0)
		return -1;
	*out = v;
	return 0;
}

/* "process" | "power" | "periodic" -> enum; returns 0 on success. */
static SU_UNUSED int su_parse_durability(const char *s, enum pkv_durability *out)
{
	if (strcmp(s, "process") == 0)
		*out = PKV_DURABLE_PROCESS;
	else if (strcmp(s, "power") == 0)
		*out = PKV_DURABLE_POWER;
	else if (strcmp(s, "periodic") == 0)
		*out = PKV_DURABLE_PERIODIC;
	else
		return -1;
	return 0;
}

static SU_UNUSED const char *su_durability_name(enum pkv_durability d)
{
	switch (d) {
	case PKV_DURABLE_PROCESS:
		return "process";
	case PKV_DURABLE_POWER:
		return "power";
	case PKV_DURABLE_PERIODIC:
		return "periodic";
	}
	return "?";
}

static SU_UNUSED int su_rm_one(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	(void)sb;
	(void)type;
	(void)ftw;
	return remove(path);
}

/* rm -rf @dir; errors are ignored (best effort cleanup of a temp dir). */
static SU_UNUSED void su_rmtree(const char *dir)
{
	nftw(dir, su_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A fresh temp dir "$TMPDIR/pkv-<tag>-XXXXXX" in @buf; returns 0 on success. */
static SU_UNUSED int su_mktemp_dir(char *buf, size_t cap, const char *tag)
{
	const char *tmp = getenv("TMPDIR");

	if (tmp == NULL || *tmp == '\0')
		tmp = "/tmp";
	if ((size_t)snprintf(buf, cap, "%s/pkv-%s-XXXXXX", tmp, tag) >= cap)
		return -1;
	return mkdtemp(buf) != NULL ? 0 : -1;
}

/* ---- shared scaffolding (stress_util.c, compiled into every driver) ---------------------- */

/* What an option's argument is, and what su_opts_parse() stores through its pointer. */
enum su_opt_type {
	SU_OPT_FLAG, /* bool *: set to true; takes no argument */
	SU_OPT_CLEAR, /* bool *: set to false; takes no argument */
	SU_OPT_U64, /* uint64_t *: a whole number in [min, max] */
	SU_OPT_UINT, /* unsigned *: a whole number in [min, max] */
	SU_OPT_DOUBLE, /* double *: a number >= 0 */
	SU_OPT_STR, /* const char **: the argument itself */
	SU_OPT_DURABILITY, /* enum pkv_durability *; with .word: int *, the word storing -1 */
	SU_OPT_SET /* unsigned *: a comma list of .names[i] (bit i); .word: all of them */
};

/*
 * One command-line option, "--name ARG": a driver lists its options in a table ended by an
 * entry with a NULL name, and su_opts_parse() parses argv against it with getopt_long and
 * prints --help from it. @max == 0 means no upper bound. @given, if not NULL, is set when the
 * option appears.
 */
struct su_opt {
	const char *name; /* without the leading "--" */
	enum su_opt_type type;
	void *ptr;
	const char *help; /* '\n' starts an indented continuation line */
	const char *arg; /* the argument's name in --help ("N" unless given) */
	uint64_t min, max;
	const char *word; /* SU_OPT_DURABILITY, SU_OPT_SET: the extra word, see above */
	const char *const *names; /* SU_OPT_SET: the member names, NULL-terminated */
	bool *given;
};

/* A table entry: SU_OPT("keys", SU_OPT_UINT, &cfg.nkeys, "help", .min = 4, .max = 64). */
/* clang-format off */
#define SU_OPT(n, t, p, h, ...) { .name = (n), .type = (t), .ptr = (p), .help = (h), __VA_ARGS__ }
#define SU_OPT_END { .name = NULL }
/* clang-format on */

/* The driver's name, as su_opts_parse() was given it (for messages). */
extern const char *su_prog;

/*
 * Parse argv against @opts (see struct su_opt). "--help" prints the usage (@note after the
 * options, may be NULL) on stdout and exits 0; an unknown option, a missing argument, a bad
 * number or word and any positional argument print what is wrong on stderr and exit 2.
 */
void su_opts_parse(int argc, char **argv, const char *prog, const struct su_opt *opts,
		   const char *note);

/* A usage error found after parsing (options that contradict each other): exits 2. */
void su_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/*
 * A failure, as "FAIL: <message>" on stdout: counted in *@failed (if not NULL), printed for the
 * first SU_MAX_FAIL_PRINT of the process only (a broken store fails thousands of checks).
 */
#define SU_MAX_FAIL_PRINT 40
void su_fail(uint64_t *failed, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void su_vfail(uint64_t *failed, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/* A new directory "<parent or $TMPDIR or /tmp>/pkv-<tag>-XXXXXX" in @buf; 0 or -1 (errno). */
int su_workdir(char *buf, size_t cap, const char *parent, const char *tag);

/* Read exactly @len bytes (retrying EINTR and short reads); -1 at end of file or error. */
int su_read_full(int fd, void *buf, size_t len);

/*
 * Fork a child with a pipe to the parent. In the child returns 0 and sets *@wfd (the child
 * writes its report there and exits); in the parent returns the pid and sets *@rfd. stdout is
 * flushed first; a failed pipe or fork ends the program (exit 2).
 */
pid_t su_fork_pipe(int *rfd, int *wfd);

/* The child's side: write all @len bytes to @fd, or _exit(4) (the parent is gone). */
void su_send(int fd, const void *buf, size_t len);

/* waitpid(@pid), retrying EINTR; returns the status. */
int su_wait(pid_t pid);

/*
 * The parent's side of a child that writes one fixed-size report: read @len bytes into @res
 * from @rfd, close it, wait for the child. True if the whole report came and the child exited
 * with status 0. Otherwise @why says how the child ended ("died of signal 9 (Killed)", "exited
 * with status 3 without a result"). *@status (if not NULL) gets the wait status.
 */
bool su_collect(pid_t pid, int rfd, void *res, size_t len, char *why, size_t whylen, int *status);

/* A stream of fixed-size messages from a child: the bytes read but not yet taken. */
struct su_msgs {
	int fd;
	size_t npend;
	unsigned char pend[4096];
};

/* Wait up to @timeout_ms (-1: no bound) and read what there is: 1 read, 0 timeout, -1 end. */
int su_msgs_fill(struct su_msgs *m, int timeout_ms);

/* The first @len pending bytes copied to @out (taken if @take); false if fewer are there. */
bool su_msgs_next(struct su_msgs *m, void *out, size_t len, bool take);

#endif /* PKV_STRESS_UTIL_H */
