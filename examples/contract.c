/* SPDX-License-Identifier: MIT */
/*
 * contract.c - a program written only against pkv's public contract.
 *
 * It uses nothing but the names the contract fixes (pkv_options_default, pkv_open, pkv_put,
 * pkv_get, pkv_del, pkv_sync, pkv_compact, pkv_close, pkv_strerror, the PKV_* codes and limits,
 * the three durability modes) and the documented directory layout (DIR/LOCK, DIR/wal/<name>.wal,
 * DIR/snap/<name>.snap). It is built in the tree and, by tools/test.sh, against an installed pkv
 * found with pkg-config and with CMake's find_package, so it also proves that the installed header
 * and libraries are usable on their own.
 *
 * Usage: contract [DIR]   (default: a new temporary directory, removed at the end)
 * Exit status 0 when every check passed; it prints "N passed, M failed" last.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <pkv.h>

static int passed, failed;

#define CHECK(cond, ...)                                            \
	do {                                                        \
		if (cond) {                                         \
			passed++;                                   \
		} else {                                            \
			failed++;                                   \
			printf("FAIL %s:%d: ", __FILE__, __LINE__); \
			printf(__VA_ARGS__);                        \
			printf("\n");                               \
		}                                                   \
	} while (0)

/* rc must equal want; print both codes with their messages otherwise. */
#define CHECK_RC(rc, want, what)                                                 \
	do {                                                                     \
		int rc_ = (rc), want_ = (want);                                  \
		CHECK(rc_ == want_, "%s = %d (%s), expected %d (%s)", what, rc_, \
		      pkv_strerror(rc_), want_, pkv_strerror(want_));            \
	} while (0)

static int rm_one(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	(void)sb;
	(void)type;
	(void)ftw;
	return remove(path);
}

/* Number of entries in DIR/sub whose names end in @suffix; -1 if DIR/sub cannot be read. */
static int count_files(const char *dir, const char *sub, const char *suffix)
{
	char path[4096];
	struct dirent *de;
	size_t sl = strlen(suffix);
	int n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "%s/%s", dir, sub);
	d = opendir(path);
	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		size_t l = strlen(de->d_name);

		if (l > sl && strcmp(de->d_name + l - sl, suffix) == 0)
			n++;
	}
	closedir(d);
	return n;
}

static int get_str(pkv *db, const char *key, char *buf, size_t cap, size_t *vlen)
{
	return pkv_get(db, key, strlen(key), buf, cap, vlen);
}

static int put_str(pkv *db, const char *key, const char *val)
{
	return pkv_put(db, key, strlen(key), val, strlen(val));
}

/* The value of @key must be exactly @want. */
static void expect_value(pkv *db, const char *key, const char *want, const char *when)
{
	char buf[256];
	size_t vlen = 12345;
	int rc = get_str(db, key, buf, sizeof(buf), &vlen);

	CHECK(rc == 0 && vlen == strlen(want) && memcmp(buf, want, vlen) == 0,
	      "%s: get(%s) = %d (%s), length %zu, expected \"%s\"", when, key, rc, pkv_strerror(rc),
	      vlen, want);
}

static void expect_absent(pkv *db, const char *key, const char *when)
{
	size_t vlen;
	int rc = get_str(db, key, NULL, 0, &vlen);

	CHECK(rc == PKV_NOTFOUND, "%s: get(%s) = %d (%s), expected PKV_NOTFOUND", when, key, rc,
	      pkv_strerror(rc));
}

/* Error codes: distinct, negative, named. */
static void check_codes(void)
{
	const int codes[] = { PKV_NOTFOUND, PKV_EINVAL,	  PKV_ETOOBIG,
			      PKV_ELOCKED,  PKV_ECORRUPT, PKV_EREADONLY };
	const size_t n = sizeof(codes) / sizeof(codes[0]);

	for (size_t i = 0; i < n; i++) {
		const char *m = pkv_strerror(codes[i]);

		CHECK(codes[i] < 0, "code %d is not negative", codes[i]);
		CHECK(m != NULL && m[0] != '\0', "pkv_strerror(%d) is empty", codes[i]);
		for (size_t j = 0; j < i; j++)
			CHECK(codes[i] != codes[j] &&
				      (m == NULL || strcmp(m, pkv_strerror(codes[j])) != 0),
			      "codes %d and %d are not distinct", codes[i], codes[j]);
	}
	CHECK(pkv_strerror(0) != NULL, "pkv_strerror(0) is NULL");
	CHECK(pkv_strerror(-ENOSPC) != NULL && pkv_strerror(-ENOSPC)[0] != '\0',
	      "pkv_strerror(-ENOSPC) is empty");
	CHECK(pkv_strerror(-123456789) != NULL, "pkv_strerror(unknown) is NULL");
}

/* Bad arguments are error codes, never a crash. */
static void check_arguments(pkv *db)
{
	static unsigned char big[PKV_MAX_VALUE + 1];
	static char longkey[PKV_MAX_KEY + 1];
	char buf[8];
	size_t vlen;

	memset(longkey, 'k', sizeof(longkey));
	CHECK_RC(pkv_put(NULL, "k", 1, "v", 1), PKV_EINVAL, "put(NULL db)");
	CHECK_RC(pkv_put(db, NULL, 1, "v", 1), PKV_EINVAL, "put(NULL key)");
	CHECK_RC(pkv_put(db, "k", 0, "v", 1), PKV_EINVAL, "put(empty key)");
	CHECK_RC(pkv_get(db, "k", 0, buf, sizeof(buf), &vlen), PKV_EINVAL, "get(empty key)");
	CHECK_RC(pkv_get(db, "k", 1, buf, sizeof(buf), NULL), PKV_EINVAL, "get(NULL vlen)");
	CHECK_RC(pkv_get(NULL, "k", 1, buf, sizeof(buf), &vlen), PKV_EINVAL, "get(NULL db)");
	CHECK_RC(pkv_del(db, "k", 0), PKV_EINVAL, "del(empty key)");
	CHECK_RC(pkv_del(NULL, "k", 1), PKV_EINVAL, "del(NULL db)");
	CHECK_RC(pkv_sync(NULL), PKV_EINVAL, "sync(NULL)");
	CHECK_RC(pkv_compact(NULL), PKV_EINVAL, "compact(NULL)");
	CHECK_RC(pkv_open(NULL, NULL, NULL), PKV_EINVAL, "open(NULL db_out)");
	CHECK_RC(pkv_close(NULL), 0, "close(NULL)");

	/* Limits: the maximum is accepted, one more byte is PKV_ETOOBIG. */
	CHECK_RC(pkv_put(db, longkey, PKV_MAX_KEY, "v", 1), 0, "put(key of PKV_MAX_KEY bytes)");
	CHECK_RC(pkv_put(db, longkey, PKV_MAX_KEY + 1, "v", 1), PKV_ETOOBIG, "put(key too long)");
	CHECK_RC(pkv_put(db, "big", 3, big, PKV_MAX_VALUE), 0, "put(value of PKV_MAX_VALUE bytes)");
	CHECK_RC(pkv_put(db, "big2", 4, big, PKV_MAX_VALUE + 1), PKV_ETOOBIG, "put(value too big)");
	vlen = 0;
	CHECK_RC(pkv_get(db, "big", 3, NULL, 0, &vlen), 0, "get(big, length only)");
	CHECK(vlen == PKV_MAX_VALUE, "length of the big value is %zu", vlen);
	CHECK_RC(pkv_del(db, "big", 3), 0, "del(big)");
	CHECK_RC(pkv_del(db, longkey, PKV_MAX_KEY), 0, "del(long key)");
}

/* put / get / del semantics. */
static void check_basics(pkv *db)
{
	char buf[64];
	size_t vlen;

	CHECK_RC(put_str(db, "alpha", "one"), 0, "put(alpha)");
	expect_value(db, "alpha", "one", "after put");
	CHECK_RC(put_str(db, "alpha", "uno, replaced"), 0, "put(alpha) again");
	expect_value(db, "alpha", "uno, replaced", "after replace");

	/* get copies min(cap, length) bytes and always reports the full length. */
	memset(buf, '#', sizeof(buf));
	vlen = 0;
	CHECK_RC(get_str(db, "alpha", buf, 3, &vlen), 0, "get(alpha, cap 3)");
	CHECK(vlen == strlen("uno, replaced") && memcmp(buf, "uno", 3) == 0 && buf[3] == '#',
	      "get with cap 3: length %zu, bytes \"%.4s\"", vlen, buf);
	vlen = 0;
	CHECK_RC(get_str(db, "alpha", NULL, 0, &vlen), 0, "get(alpha, length only)");
	CHECK(vlen == strlen("uno, replaced"), "length only: %zu", vlen);
	vlen = 0;
	CHECK_RC(get_str(db, "alpha", buf, 0, &vlen), 0, "get(alpha, cap 0 with a buffer)");
	CHECK(vlen == strlen("uno, replaced"), "cap 0 with a buffer: %zu", vlen);

	/* Empty values are values. */
	CHECK_RC(pkv_put(db, "empty", 5, NULL, 0), 0, "put(empty value)");
	vlen = 99;
	CHECK_RC(get_str(db, "empty", buf, sizeof(buf), &vlen), 0, "get(empty value)");
	CHECK(vlen == 0, "empty value has length %zu", vlen);

	/* Keys are byte strings: embedded NUL bytes, and prefixes are different keys. */
	CHECK_RC(pkv_put(db, "nul\0a", 5, "A", 1), 0, "put(key with NUL)");
	CHECK_RC(pkv_put(db, "nul\0b", 5, "B", 1), 0, "put(other key with NUL)");
	vlen = 0;
	CHECK(pkv_get(db, "nul\0a", 5, buf, sizeof(buf), &vlen) == 0 && vlen == 1 && buf[0] == 'A',
	      "key with NUL a");
	CHECK(pkv_get(db, "nul", 3, buf, sizeof(buf), &vlen) == PKV_NOTFOUND, "prefix is a key");

	/* Absent keys. */
	expect_absent(db, "never", "absent key");
	CHECK_RC(pkv_del(db, "never", 5), PKV_NOTFOUND, "del(absent)");
	CHECK_RC(put_str(db, "gone", "soon"), 0, "put(gone)");
	CHECK_RC(pkv_del(db, "gone", 4), 0, "del(gone)");
	expect_absent(db, "gone", "after del");
	CHECK_RC(pkv_del(db, "gone", 4), PKV_NOTFOUND, "del(gone) again");
}

/* Many keys, some deleted, survive sync, compact, close and reopen. */
static void write_many(pkv *db, int n)
{
	char key[32], val[64];

	for (int i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "many:%05d", i);
		snprintf(val, sizeof(val), "value of %d", i * 7);
		CHECK_RC(put_str(db, key, val), 0, "put(many)");
	}
	for (int i = 0; i < n; i += 3) {
		snprintf(key, sizeof(key), "many:%05d", i);
		CHECK_RC(pkv_del(db, key, strlen(key)), 0, "del(many)");
	}
}

static void expect_many(pkv *db, int n, const char *when)
{
	char key[32], val[64];
	int bad = 0;

	for (int i = 0; i < n; i++) {
		char buf[64];
		size_t vlen = 0;
		int rc;

		snprintf(key, sizeof(key), "many:%05d", i);
		snprintf(val, sizeof(val), "value of %d", i * 7);
		rc = get_str(db, key, buf, sizeof(buf), &vlen);
		if (i % 3 == 0)
			bad += rc != PKV_NOTFOUND;
		else
			bad += rc != 0 || vlen != strlen(val) || memcmp(buf, val, vlen) != 0;
	}
	CHECK(bad == 0, "%s: %d of %d keys wrong", when, bad, n);
}

static void check_store(const char *dir, enum pkv_durability mode, int first)
{
	/* Under POWER every put waits for an fdatasync: fewer keys keep the run short. */
	const int n = mode == PKV_DURABLE_POWER ? 200 : 2000;
	pkv_options opts;
	pkv *db = NULL, *db2 = NULL;
	int rc;

	pkv_options_default(&opts);
	CHECK(opts.durability == PKV_DURABLE_PROCESS, "default durability is %d",
	      (int)opts.durability);
	opts.durability = mode;
	if (mode == PKV_DURABLE_PERIODIC)
		opts.sync_interval_ms = 10;

	rc = pkv_open(dir, &opts, &db);
	CHECK_RC(rc, 0, "open");
	if (rc != 0)
		return;
	if (first) {
		CHECK(access(dir, F_OK) == 0, "open did not create %s", dir);
		check_codes();
		check_arguments(db);
		check_basics(db);
	}
	/* One process per directory: a second open of a directory in use is PKV_ELOCKED. */
	rc = pkv_open(dir, &opts, &db2);
	CHECK_RC(rc, PKV_ELOCKED, "second open of the same directory");
	if (rc == 0)
		pkv_close(db2);

	write_many(db, n);
	expect_many(db, n, "before sync");
	CHECK_RC(pkv_sync(db), 0, "sync");
	CHECK_RC(pkv_compact(db), 0, "compact");
	expect_many(db, n, "after compact");
	CHECK_RC(put_str(db, "after-compact", "yes"), 0, "put after compact");
	CHECK_RC(pkv_close(db), 0, "close");

	/* The layout is part of the contract. */
	{
		char path[4096];

		snprintf(path, sizeof(path), "%s/LOCK", dir);
		CHECK(access(path, F_OK) == 0, "%s is missing", path);
		CHECK(count_files(dir, "wal", ".wal") > 0, "no DIR/wal/*.wal after writes");
		CHECK(count_files(dir, "snap", ".snap") > 0,
		      "no DIR/snap/*.snap after pkv_compact");
	}

	db = NULL;
	rc = pkv_open(dir, &opts, &db);
	CHECK_RC(rc, 0, "reopen");
	if (rc != 0)
		return;
	expect_many(db, n, "after reopen");
	expect_value(db, "after-compact", "yes", "after reopen");
	if (first) {
		expect_value(db, "alpha", "uno, replaced", "after reopen");
		expect_absent(db, "gone", "after reopen");
	}
	CHECK_RC(pkv_close(db), 0, "close after reopen");
}

static void check_memory(void)
{
	pkv *db = NULL;
	int rc = pkv_open(NULL, NULL, &db);

	CHECK_RC(rc, 0, "open(NULL dir): in-memory store");
	if (rc != 0)
		return;
	check_basics(db);
	write_many(db, 500);
	expect_many(db, 500, "in memory");
	CHECK_RC(pkv_sync(db), 0, "sync (in memory)");
	CHECK_RC(pkv_compact(db), 0, "compact (in memory)");
	expect_many(db, 500, "in memory after compact");
	CHECK_RC(pkv_close(db), 0, "close (in memory)");
}

int main(int argc, char **argv)
{
	static const enum pkv_durability modes[] = { PKV_DURABLE_PROCESS, PKV_DURABLE_POWER,
						     PKV_DURABLE_PERIODIC };
	static const char *const names[] = { "process", "power", "periodic" };
	char base[4096];
	int own = argc < 2;

	if (own) {
		const char *tmp = getenv("TMPDIR");

		snprintf(base, sizeof(base), "%s/pkv-contract-XXXXXX", tmp && *tmp ? tmp : "/tmp");
		if (mkdtemp(base) == NULL) {
			perror("contract: mkdtemp");
			return 2;
		}
	} else {
		snprintf(base, sizeof(base), "%s", argv[1]);
		if (mkdir(base, 0755) != 0 && errno != EEXIST) {
			perror("contract: mkdir");
			return 2;
		}
	}

	check_memory();
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		char dir[4200];

		snprintf(dir, sizeof(dir), "%s/store-%s", base, names[i]);
		printf("contract: durability %s in %s\n", names[i], dir);
		check_store(dir, modes[i], 1);
		check_store(dir, modes[i], 0); /* again on the existing store */
	}
	if (own)
		nftw(base, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	printf("%d passed, %d failed\n", passed, failed);
	return failed == 0 && passed > 0 ? 0 : 1;
}
