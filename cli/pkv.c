/* SPDX-License-Identifier: MIT */
/*
 * pkv.c - the `pkv` command-line tool: look inside a store, copy it, back it up, load it.
 *
 *   pkv stats [--json] DIR        pkv get [-b] [--raw] DIR KEY
 *   pkv verify DIR                pkv put [-b] [--expires-ms MS] DIR KEY VALUE
 *   pkv compact DIR               pkv del [-b] DIR KEY
 *   pkv checkpoint DIR DST        pkv dump DIR > FILE
 *   pkv help [SUBCOMMAND]         pkv load [--batch N] DIR < FILE
 *
 * Built on pkv.h alone, as mdb_stat uses only lmdb.h. Reading subcommands (stats, verify, get,
 * dump, checkpoint) open the store read-only: they need only read permission and leave the
 * directory as they found it. Exit status: 0 success, 1 a store error, 2 a usage error (bad
 * arguments, or a bad line given to `load`); the message on stderr names the problem.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include <pkv.h>

#include "jsonl.h"

#define EXIT_STORE 1
#define EXIT_USAGE 2

#define LOAD_BATCH_DEFAULT 1000u
#define LOAD_BATCH_BYTES (4u << 20) /* a batch is written once it holds this much */

static const char *prog = "pkv";
static const char *cur_dir;  /* the store the messages are about */
static bool verbose;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* The library's diagnostics (which file, what damage, what recovery discarded): to stderr. */
static void log_cb(void *ctx, int level, const char *msg)
{
	(void)ctx;
	if (level <= PKV_LOG_WARN || verbose)
		fprintf(stderr, "%s: %s: %s\n", prog, cur_dir ? cur_dir : "", msg);
}

/* ---- subcommand table and help -------------------------------------------------------- */

struct cmd {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *usage;
	const char *help;
};

static const struct cmd *find_cmd(const char *name);

static int usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int usage_error(const char *cmd, const char *fmt, ...)
{
	const struct cmd *c = find_cmd(cmd);
	va_list ap;

	fprintf(stderr, "%s %s: ", prog, cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (c != NULL)
		fprintf(stderr, "usage: %s %s\n", prog, c->usage);
	fprintf(stderr, "(%s help %s)\n", prog, cmd);
	return EXIT_USAGE;
}

/*
 * -ENOENT about @path, a directory the subcommand opens (@making false) or makes (@making true:
 * a new store, a checkpoint's DST): say which path is missing rather than guess. pkv makes the
 * last component only, so for a directory it makes the one to name is a missing parent.
 */
static void explain_missing(const char *path, bool making)
{
	char parent[4096];

	if (path == NULL)
		return;
	if (access(path, F_OK) == 0) {
		if (!making)
			say("%s: no store there (a store has a LOCK file, wal/ and snap/)", path);
		return; /* made, then something in it vanished: the messages above name it */
	}
	snprintf(parent, sizeof(parent), "%s", path);
	if (making && access(dirname(parent), F_OK) != 0)
		say("%s does not exist: pkv makes %s but not its parent directories", parent, path);
	else if (!making)
		say("%s does not exist (no store there)", path);
}

/*
 * A store error: name the directory, the operation and the code; explain the usual causes.
 * @missing, @making: the path an -ENOENT is about (explain_missing).
 */
static int store_error_at(const char *what, int rc, const char *missing, bool making)
{
	say("%s: %s: %s (%d)", cur_dir ? cur_dir : "", what, pkv_strerror(rc), rc);
	if (rc == PKV_ELOCKED)
		say("%s is open in another process (or in this one). A process that writes to a "
		    "store excludes every other open (read-only handles only share it with each "
		    "other); to copy it while it runs, call pkv_checkpoint(db, DST) from inside the "
		    "process that has it open (`pkv checkpoint` works on a store no one writes to).",
		    cur_dir);
	else if (rc == -EACCES || rc == -EPERM)
		say("permission denied (the messages above name the file): reading subcommands need "
		    "read permission, writing ones write permission on the directory and its files");
	else if (rc == -ENOENT)
		explain_missing(missing, making);
	return EXIT_STORE;
}

static int store_error(const char *what, int rc)
{
	return store_error_at(what, rc, cur_dir, false);
}

static int open_store(const char *dir, unsigned flags, pkv **db)
{
	pkv_options o;
	int rc;

	cur_dir = dir;
	pkv_options_default(&o);
	o.flags = flags;
	o.log_fn = log_cb;
	rc = pkv_open(dir, &o, db);
	if (rc != 0)
		return store_error_at("open", rc, dir, !(flags & PKV_OPEN_NOCREATE));
	return 0;
}

#define OPEN_READ (PKV_OPEN_READONLY | PKV_OPEN_NOCREATE)
#define OPEN_WRITE_EXISTING (PKV_OPEN_NOCREATE | PKV_OPEN_NO_AUTOCOMPACT)
#define OPEN_WRITE_CREATE (PKV_OPEN_NO_AUTOCOMPACT)

/* Close, reporting a failed final sync as a store error. */
static int close_store(pkv *db, int status)
{
	int rc = pkv_close(db);

	if (rc != 0 && status == 0)
		return store_error("close (final sync)", rc);
	return status;
}

/* Parse the options common to subcommands; returns the index of the first operand or -1. */
struct opts {
	bool json, b64, raw, per_key;
	uint64_t expires_ms;
	unsigned long batch;
};

static int parse_opts(const char *cmd, int argc, char **argv, const char *allowed, struct opts *o)
{
	static const struct option longopts[] = {
		{"json", no_argument, NULL, 'j'},    {"base64", no_argument, NULL, 'b'},
		{"raw", no_argument, NULL, 'r'},     {"expires-ms", required_argument, NULL, 'e'},
		{"batch", required_argument, NULL, 'n'}, {"verbose", no_argument, NULL, 'v'},
		{"per-key", no_argument, NULL, 'p'}, {"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c;
	char *end;

	memset(o, 0, sizeof(*o));
	o->batch = LOAD_BATCH_DEFAULT;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+jbre:n:pvh", longopts, NULL)) != -1) {
		if (c == 'h' || c == 'v') {
			if (c == 'v')
				verbose = true;
			else
				return -2;
			continue;
		}
		if (c == '?' || strchr(allowed, c) == NULL) {
			usage_error(cmd, "unknown option %s", argv[optind - 1]);
			return -1;
		}
		switch (c) {
		case 'j':
			o->json = true;
			break;
		case 'b':
			o->b64 = true;
			break;
		case 'r':
			o->raw = true;
			break;
		case 'p':
			o->per_key = true;
			break;
		case 'e':
			errno = 0;
			o->expires_ms = strtoull(optarg, &end, 10);
			if (errno || *end || end == optarg || optarg[0] == '-') {
				usage_error(cmd, "--expires-ms wants milliseconds since the epoch, "
						 "not '%s'", optarg);
				return -1;
			}
			break;
		case 'n':
			errno = 0;
			o->batch = strtoul(optarg, &end, 10);
			if (errno || *end || end == optarg || o->batch == 0 || o->batch > 1000000) {
				usage_error(cmd, "--batch wants 1 .. 1000000 keys, not '%s'", optarg);
				return -1;
			}
			break;
		}
	}
	return optind;
}

/* Check the operand count; print the subcommand's help for -h. */
static int operands(const char *cmd, int argc, char **argv, const char *allowed, struct opts *o,
		    int min, int max, int *first)
{
	int i = parse_opts(cmd, argc, argv, allowed, o);

	if (i == -2) {
		const struct cmd *c = find_cmd(cmd);

		printf("usage: %s %s\n\n%s", prog, c->usage, c->help);
		exit(0);
	}
	if (i < 0)
		return EXIT_USAGE;
	if (argc - i < min)
		return usage_error(cmd, "missing operand%s", min - (argc - i) > 1 ? "s" : "");
	if (argc - i > max)
		return usage_error(cmd, "too many operands ('%s')", argv[i + max]);
	*first = i;
	return 0;
}

/* A KEY or VALUE operand: the bytes as given, or base64 with -b. */
static int operand_bytes(const char *cmd, const char *what, const char *arg, bool b64,
			 unsigned char **out, size_t *len)
{
	size_t n = strlen(arg);

	*out = malloc(n + 1);
	if (*out == NULL) {
		say("out of memory");
		return EXIT_STORE;
	}
	if (!b64) {
		memcpy(*out, arg, n);
		*len = n;
		return 0;
	}
	long d = jsonl_b64_decode(arg, n, *out);
	if (d < 0) {
		free(*out);
		*out = NULL;
		return usage_error(cmd, "%s is not base64 (with -b, KEY and VALUE are base64)", what);
	}
	*len = (size_t)d;
	return 0;
}

/* ---- stats ------------------------------------------------------------------------------ */

static int cmd_stats(int argc, char **argv)
{
	struct opts o;
	pkv_stats st;
	pkv *db;
	int i, rc;

	rc = operands("stats", argc, argv, "j", &o, 1, 1, &i);
	if (rc != 0)
		return rc;
	rc = open_store(argv[i], OPEN_READ, &db);
	if (rc != 0)
		return rc;
	rc = pkv_get_stats(db, &st);
	if (rc != 0)
		return close_store(db, store_error("stats", rc));
	if (o.json) {
		json_t *j = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
				      "dir", argv[i], "keys", (json_int_t)st.keys,
				      "last_seq", (json_int_t)st.last_seq,
				      "wal_segments", (json_int_t)st.wal_segments,
				      "recovered_records", (json_int_t)st.recovered_records,
				      "discarded_records", (json_int_t)st.discarded_records,
				      "discarded_bytes", (json_int_t)st.discarded_bytes,
				      "recovery_gap_seq", (json_int_t)st.recovery_gap_seq,
				      "snapshot_seq", (json_int_t)st.snapshot_seq,
				      "snapshot_keys", (json_int_t)st.snapshot_keys,
				      "snapshot_bytes", (json_int_t)st.snapshot_bytes);

		if (j == NULL || json_dumpf(j, stdout, JSON_INDENT(2)) != 0) {
			json_decref(j);
			return close_store(db, store_error("stats", -ENOMEM));
		}
		json_decref(j);
		putchar('\n');
	} else {
		printf("store              %s\n", argv[i]);
		printf("keys               %" PRIu64 "\n", st.keys);
		printf("last sequence      %" PRIu64 "\n", st.last_seq);
		printf("snapshot           %" PRIu64 " keys, %" PRIu64 " bytes, complete up to "
		       "seq %" PRIu64 "\n",
		       st.snapshot_keys, st.snapshot_bytes, st.snapshot_seq);
		printf("WAL                %" PRIu64 " segment files, %" PRIu64
		       " records replayed at open\n",
		       st.wal_segments, st.recovered_records);
		if (st.discarded_records || st.discarded_bytes || st.recovery_gap_seq)
			printf("discarded at open  %" PRIu64 " records, %" PRIu64
			       " bytes (torn tail; gap at seq %" PRIu64 ")\n",
			       st.discarded_records, st.discarded_bytes, st.recovery_gap_seq);
		else
			printf("discarded at open  nothing (the WAL ends cleanly)\n");
	}
	return close_store(db, fflush(stdout) == 0 ? 0 : store_error("write", -errno));
}

/* ---- verify, compact, checkpoint ------------------------------------------------------- */

static int cmd_verify(int argc, char **argv)
{
	struct opts o;
	pkv_verify_report rep;
	pkv *db;
	int i, rc;

	rc = operands("verify", argc, argv, "", &o, 1, 1, &i);
	if (rc != 0)
		return rc;
	rc = open_store(argv[i], OPEN_READ, &db);
	if (rc != 0)
		return rc;
	rc = pkv_verify_ex(db, &rep);
	if (rc != 0)
		return close_store(db, store_error("verify", rc));
	printf("%s: ok\n", argv[i]);
	if (rep.snapshot_records || rep.snapshot_bytes)
		printf("snapshot  %" PRIu64 " records, %" PRIu64
		       " bytes: header, index pages and every record checked by CRC\n",
		       rep.snapshot_records, rep.snapshot_bytes);
	else
		printf("snapshot  none\n");
	printf("WAL       %" PRIu64 " segments, %" PRIu64 " records (%" PRIu64
	       " bytes) checked by CRC",
	       rep.wal_segments, rep.wal_records, rep.wal_bytes);
	if (rep.wal_last_seq)
		printf("; sequence numbers %" PRIu64 "..%" PRIu64 " continuous across lanes",
		       rep.wal_first_seq, rep.wal_last_seq);
	printf("\n");
	if (rep.wal_torn || rep.wal_beyond)
		printf("torn      %" PRIu64 " lanes end in a torn record; %" PRIu64
		       " records past the recovered prefix (an unclean stop: a read-write open "
		       "discards them)\n",
		       rep.wal_torn, rep.wal_beyond);
	return close_store(db, 0);
}

static int cmd_compact(int argc, char **argv)
{
	struct opts o;
	pkv *db;
	int i, rc;

	rc = operands("compact", argc, argv, "", &o, 1, 1, &i);
	if (rc != 0)
		return rc;
	rc = open_store(argv[i], OPEN_WRITE_EXISTING, &db);
	if (rc != 0)
		return rc;
	rc = pkv_compact(db);
	if (rc != 0)
		return close_store(db, store_error("compact", rc));
	return close_store(db, 0);
}

static int cmd_checkpoint(int argc, char **argv)
{
	struct opts o;
	pkv *db;
	int i, rc;

	rc = operands("checkpoint", argc, argv, "", &o, 2, 2, &i);
	if (rc != 0)
		return rc;
	if (access(argv[i + 1], F_OK) == 0)
		return usage_error("checkpoint", "%s exists: the checkpoint makes a new directory",
				   argv[i + 1]);
	rc = open_store(argv[i], OPEN_READ, &db);
	if (rc != 0)
		return rc;
	rc = pkv_checkpoint(db, argv[i + 1]);
	if (rc != 0)
		return close_store(db, store_error_at("checkpoint", rc, argv[i + 1], true));
	return close_store(db, 0);
}

/* ---- get, put, del ---------------------------------------------------------------------- */

static int cmd_get(int argc, char **argv)
{
	struct opts o;
	unsigned char *key = NULL, *val = NULL;
	size_t klen = 0, vlen = 0, cap = 4096;
	pkv *db = NULL;
	int i, rc;

	rc = operands("get", argc, argv, "br", &o, 2, 2, &i);
	if (rc != 0)
		return rc;
	rc = operand_bytes("get", "KEY", argv[i + 1], o.b64, &key, &klen);
	if (rc != 0)
		return rc;
	rc = open_store(argv[i], OPEN_READ, &db);
	if (rc != 0)
		goto out;
	for (;;) {
		unsigned char *n = realloc(val, cap);

		if (n == NULL) {
			rc = store_error("get", -ENOMEM);
			goto out;
		}
		val = n;
		rc = pkv_get(db, key, klen, val, cap, &vlen);
		if (rc != 0 || vlen <= cap)
			break;
		cap = vlen; /* the value grew between the calls, or was bigger than the guess */
	}
	if (rc == PKV_NOTFOUND) {
		say("%s: get: key not found", argv[i]);
		rc = EXIT_STORE;
		goto out;
	}
	if (rc != 0) {
		rc = store_error("get", rc);
		goto out;
	}
	if (o.b64) {
		char *b = malloc((vlen + 2) / 3 * 4 + 1);

		if (b == NULL) {
			rc = store_error("get", -ENOMEM);
			goto out;
		}
		jsonl_b64_encode(val, vlen, b);
		printf("%s\n", b);
		free(b);
	} else {
		fwrite(val, 1, vlen, stdout);
		if (!o.raw)
			putchar('\n');
	}
	rc = fflush(stdout) == 0 ? 0 : store_error("write", -errno);
out:
	free(key);
	free(val);
	return db != NULL ? close_store(db, rc) : rc;
}

static int cmd_put(int argc, char **argv)
{
	struct opts o;
	unsigned char *key = NULL, *val = NULL;
	size_t klen = 0, vlen = 0;
	pkv *db = NULL;
	int i, rc;

	rc = operands("put", argc, argv, "be", &o, 3, 3, &i);
	if (rc != 0)
		return rc;
	rc = operand_bytes("put", "KEY", argv[i + 1], o.b64, &key, &klen);
	if (rc == 0)
		rc = operand_bytes("put", "VALUE", argv[i + 2], o.b64, &val, &vlen);
	if (rc != 0)
		goto out;
	if (klen == 0 || klen > PKV_MAX_KEY || vlen > PKV_MAX_VALUE) {
		rc = usage_error("put", klen == 0 ? "the key is empty"
				 : klen > PKV_MAX_KEY ? "the key is longer than %u bytes"
						      : "the value is longer than %u bytes",
				 klen > PKV_MAX_KEY ? PKV_MAX_KEY : PKV_MAX_VALUE);
		goto out;
	}
	rc = open_store(argv[i], OPEN_WRITE_CREATE, &db);
	if (rc != 0)
		goto out;
	if (o.expires_ms != 0)
		rc = pkv_put_expire(db, key, klen, val, vlen, o.expires_ms, 0);
	else
		rc = pkv_put(db, key, klen, val, vlen);
	if (rc != 0)
		rc = store_error("put", rc);
out:
	free(key);
	free(val);
	return db != NULL ? close_store(db, rc) : rc;
}

static int cmd_del(int argc, char **argv)
{
	struct opts o;
	unsigned char *key = NULL;
	size_t klen = 0;
	pkv *db = NULL;
	int i, rc;

	rc = operands("del", argc, argv, "b", &o, 2, 2, &i);
	if (rc != 0)
		return rc;
	rc = operand_bytes("del", "KEY", argv[i + 1], o.b64, &key, &klen);
	if (rc != 0)
		return rc;
	rc = open_store(argv[i], OPEN_WRITE_EXISTING, &db);
	if (rc != 0)
		goto out;
	rc = pkv_del(db, key, klen);
	if (rc == PKV_NOTFOUND) {
		say("%s: del: key not found", argv[i]);
		rc = EXIT_STORE;
	} else if (rc != 0) {
		rc = store_error("del", rc);
	}
out:
	free(key);
	return db != NULL ? close_store(db, rc) : rc;
}

/* ---- dump ------------------------------------------------------------------------------- */

struct dump_ctx {
	pkv *db;
	uint64_t keys;
	int err; /* the first error (a store code) */
};

static int dump_one(void *arg, const void *key, size_t klen, const void *val, size_t vlen,
		    uint64_t seq)
{
	struct dump_ctx *d = arg;
	size_t len;
	char *line;

	(void)seq;
	(void)val;
	(void)vlen;
	/* The scan does not hand out expiries: read this key's version with its expiry. */
	pkv_item it = {.key = key, .klen = klen};
	int rc = pkv_read_begin(d->db);

	if (rc != 0) {
		d->err = rc;
		return 1;
	}
	rc = pkv_get_many(d->db, &it, 1);
	if (rc < 0 || (it.rc != 0 && it.rc != PKV_NOTFOUND)) {
		d->err = rc < 0 ? rc : it.rc;
		(void)pkv_read_end(d->db);
		return 1;
	}
	if (it.rc == PKV_NOTFOUND) { /* deleted or expired since the scan saw it */
		(void)pkv_read_end(d->db);
		return 0;
	}
	line = jsonl_format(key, klen, it.val, it.vlen, it.expires_ms, &len);
	(void)pkv_read_end(d->db);
	if (line == NULL) {
		d->err = -ENOMEM;
		return 1;
	}
	line[len] = '\n';
	if (fwrite(line, 1, len + 1, stdout) != len + 1) {
		d->err = -errno;
		free(line);
		return 1;
	}
	free(line);
	d->keys++;
	return 0;
}

static int cmd_dump(int argc, char **argv)
{
	struct opts o;
	struct dump_ctx d = {0};
	uint64_t cursor = 0;
	int i, rc;

	rc = operands("dump", argc, argv, "", &o, 1, 1, &i);
	if (rc != 0)
		return rc;
	rc = open_store(argv[i], OPEN_READ, &d.db);
	if (rc != 0)
		return rc;
	do {
		rc = pkv_scan(d.db, &cursor, 1024, dump_one, &d);
	} while (rc == 0 && cursor != 0);
	if (rc != 0 && d.err == 0)
		d.err = rc;
	if (d.err == 0 && fflush(stdout) != 0)
		d.err = -errno;
	if (d.err != 0)
		return close_store(d.db, store_error("dump", d.err));
	if (verbose)
		say("%s: dumped %" PRIu64 " keys", argv[i], d.keys);
	return close_store(d.db, 0);
}

/* ---- load ------------------------------------------------------------------------------- */

struct loader {
	pkv *db;
	pkv_batch *batch;
	size_t ops, bytes;  /* in the pending batch */
	uint64_t keys;      /* written */
	uint64_t in_bytes;  /* read */
	bool progress;
	bool per_key; /* one pkv_put per key instead of batches (for comparison) */
	struct timespec last;
};

static double since(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t->tv_sec) + (double)(now.tv_nsec - t->tv_nsec) / 1e9;
}

/* Write the pending batch. 0 or a store code. */
static int load_flush(struct loader *l)
{
	int rc;

	if (l->ops == 0)
		return 0;
	rc = pkv_write(l->db, l->batch, 0, NULL);
	pkv_batch_clear(l->batch);
	if (rc == 0)
		l->keys += l->ops;
	l->ops = 0;
	l->bytes = 0;
	return rc;
}

/* One pkv_put (or pkv_put_expire) per key. */
static int load_put(struct loader *l, const struct jsonl_rec *r)
{
	int rc;

	if (r->expires_ms != 0)
		rc = pkv_put_expire(l->db, r->key, r->klen, r->val, r->vlen, r->expires_ms, 0);
	else
		rc = pkv_put(l->db, r->key, r->klen, r->val, r->vlen);
	if (rc == 0)
		l->keys++;
	return rc;
}

static int load_add(struct loader *l, const struct jsonl_rec *r, unsigned long batch)
{
	int rc;

	if (l->per_key)
		return load_put(l, r);
	if (r->expires_ms != 0)
		rc = pkv_batch_put_expire(l->batch, r->key, r->klen, r->val, r->vlen,
					  r->expires_ms);
	else
		rc = pkv_batch_put(l->batch, r->key, r->klen, r->val, r->vlen);
	if (rc != 0)
		return rc;
	l->ops++;
	l->bytes += r->klen + r->vlen;
	if (l->ops >= batch || l->bytes >= LOAD_BATCH_BYTES)
		return load_flush(l);
	return 0;
}

static void load_progress(struct loader *l, bool last)
{
	if (!l->progress || (!last && since(&l->last) < 0.5))
		return;
	clock_gettime(CLOCK_MONOTONIC, &l->last);
	fprintf(stderr, "\r%s: load: %" PRIu64 " keys, %.1f MiB read%s", prog, l->keys + l->ops,
		(double)l->in_bytes / (1 << 20), last ? "\n" : "");
}

static int cmd_load(int argc, char **argv)
{
	struct opts o;
	struct loader l = {0};
	struct jsonl_rec r;
	char *line = NULL, why[256];
	size_t cap = 0;
	ssize_t n;
	uint64_t lineno = 0;
	int i, rc, status = 0;

	rc = operands("load", argc, argv, "np", &o, 1, 1, &i);
	if (rc != 0)
		return rc;
	rc = open_store(argv[i], OPEN_WRITE_CREATE, &l.db);
	if (rc != 0)
		return rc;
	rc = pkv_batch_new(&l.batch);
	if (rc != 0)
		return close_store(l.db, store_error("load", rc));
	l.progress = isatty(STDERR_FILENO);
	l.per_key = o.per_key;
	clock_gettime(CLOCK_MONOTONIC, &l.last);
	while ((n = getline(&line, &cap, stdin)) >= 0) {
		lineno++;
		l.in_bytes += (uint64_t)n;
		if (n > 0 && line[n - 1] == '\n')
			n--;
		rc = jsonl_parse(line, (size_t)n, PKV_MAX_KEY, PKV_MAX_VALUE, &r, why, sizeof(why));
		if (rc == -2) {
			status = store_error("load", -ENOMEM);
			break;
		}
		if (rc == -1) {
			/* Keep what came before the bad line, durably (see below). */
			load_progress(&l, true);
			say("load: line %" PRIu64 ": %s; stopped there (the %" PRIu64
			    " keys before it are loaded)",
			    lineno, why, l.keys + l.ops);
			status = EXIT_USAGE;
			break;
		}
		rc = load_add(&l, &r, o.batch);
		jsonl_rec_free(&r);
		if (rc != 0) {
			say("load: line %" PRIu64 ": the store refused it", lineno);
			status = store_error("load", rc);
			break;
		}
		load_progress(&l, false);
	}
	if (n < 0 && ferror(stdin) && status == 0)
		status = store_error("load: reading standard input", -errno);
	rc = load_flush(&l);
	if (rc != 0 && status != EXIT_STORE) {
		say("load: writing the last batch, before line %" PRIu64, lineno);
		status = store_error("load", rc);
	}
	/* What was loaded is durable before we say anything is done, bad line or not. */
	rc = pkv_sync(l.db);
	if (rc != 0 && status != EXIT_STORE)
		status = store_error("load: sync", rc);
	if (status == 0) {
		load_progress(&l, true);
		if (verbose)
			say("%s: loaded %" PRIu64 " keys from %" PRIu64 " lines", argv[i], l.keys,
			    lineno);
	}
	free(line);
	pkv_batch_free(l.batch);
	return close_store(l.db, status);
}

/* ---- help ------------------------------------------------------------------------------- */

static int cmd_help(int argc, char **argv);

static const struct cmd cmds[] = {
	{"stats", cmd_stats, "stats [--json] DIR",
	 "Print the counters of the store in DIR: keys, last sequence number, the snapshot and\n"
	 "the WAL, and what the open discarded (a torn tail). --json prints one JSON object.\n"
	 "Opens read-only (needs read permission only).\n"},
	{"verify", cmd_verify, "verify DIR",
	 "Check the store in DIR: every record of the WAL (CRC up to the torn tail, sequence\n"
	 "numbers continuous across lanes) and every checksum of the snapshot; say what was\n"
	 "checked. Exit 0 when everything is intact, 1 when something is damaged (the messages\n"
	 "name the file and offset). Opens read-only.\n"},
	{"compact", cmd_compact, "compact DIR",
	 "Write a snapshot of the store in DIR now and retire the WAL it covers.\n"},
	{"checkpoint", cmd_checkpoint, "checkpoint DIR DST",
	 "Make DST (which must not exist) a complete copy of the store in DIR, opening to the\n"
	 "state at one instant: the snapshot is hard-linked where the file system allows, the\n"
	 "WAL copied, everything fsynced. For a store another process has open, that process\n"
	 "calls pkv_checkpoint(db, DST) itself. Opens DIR read-only.\n"},
	{"get", cmd_get, "get [-b|--base64] [--raw] DIR KEY",
	 "Print the value of KEY followed by a newline (--raw: the bytes only). Exit 1 if the\n"
	 "key is absent. -b: KEY is base64 and the value is printed in base64.\n"},
	{"put", cmd_put, "put [-b|--base64] [--expires-ms MS] DIR KEY VALUE",
	 "Set KEY to VALUE, creating the store if DIR has none. -b: KEY and VALUE are base64.\n"
	 "--expires-ms: the key expires at MS (milliseconds since the epoch, CLOCK_REALTIME).\n"},
	{"del", cmd_del, "del [-b|--base64] DIR KEY",
	 "Delete KEY. Exit 1 if it was absent. -b: KEY is base64.\n"},
	{"dump", cmd_dump, "dump DIR",
	 "Write every key of the store in DIR to standard output as JSON Lines, one object per\n"
	 "key: {\"key\": K, \"value\": V}, K and V JSON strings when the bytes are valid UTF-8,\n"
	 "otherwise \"key_base64\" / \"value_base64\" (standard base64), plus \"expires_ms\" when\n"
	 "the key has an expiry. Opens read-only; a running writer's store: use a checkpoint.\n"},
	{"load", cmd_load, "load [--batch N | --per-key] DIR < FILE",
	 "Read JSON Lines (as dump writes them) from standard input and write every key into\n"
	 "the store in DIR (created if missing), N keys per atomic batch (default 1000). Shows\n"
	 "progress when standard error is a terminal. A bad line (not JSON, bad base64, a\n"
	 "missing or unknown field, a key too long) stops the load with its line number and\n"
	 "exit status 2; every key before it is loaded and durable. `pkv dump A | pkv load B`\n"
	 "copies a store. --per-key writes each key with its own pkv_put instead (slower: for\n"
	 "comparison).\n"},
	{"help", cmd_help, "help [SUBCOMMAND]", "Print the list of subcommands, or one's help.\n"},
};

static const struct cmd *find_cmd(const char *name)
{
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (strcmp(cmds[i].name, name) == 0)
			return &cmds[i];
	return NULL;
}

static void overview(FILE *f)
{
	fprintf(f, "usage: %s SUBCOMMAND [OPTIONS] DIR ...\n\n", prog);
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		fprintf(f, "  %s %s\n", prog, cmds[i].usage);
	fprintf(f, "\nExit status: 0 success, 1 a store error, 2 a usage error or a bad input "
		   "line.\n`%s help SUBCOMMAND` or `man pkv` for more.\n", prog);
}

static int cmd_help(int argc, char **argv)
{
	const struct cmd *c;

	if (argc < 2) {
		overview(stdout);
		return 0;
	}
	if (argc > 2)
		return usage_error("help", "too many operands");
	c = find_cmd(argv[1]);
	if (c == NULL)
		return usage_error("help", "no subcommand '%s'", argv[1]);
	printf("usage: %s %s\n\n%s", prog, c->usage, c->help);
	return 0;
}

int main(int argc, char **argv)
{
	const struct cmd *c;

	if (argc < 2) {
		overview(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
		return cmd_help(1, argv);
	if (strcmp(argv[1], "--version") == 0) {
		printf("pkv %s\n", PKV_CLI_VERSION);
		return 0;
	}
	c = find_cmd(argv[1]);
	if (c == NULL) {
		say("no subcommand '%s'", argv[1]);
		overview(stderr);
		return EXIT_USAGE;
	}
	return c->run(argc - 1, argv + 1);
}
