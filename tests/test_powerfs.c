/* SPDX-License-Identifier: MIT */
/*
 * test_powerfs.c - the power-loss simulator (tests/powerfs.h) against its own model.
 *
 * The power-loss loop (stress/powerloss.c) trusts the images powerfs writes; when the loop
 * reports a lost write, the simulator is the first suspect. So each rule of the model is checked
 * here on a small scripted history, over many seeds (the history is single-threaded except in the
 * last case, so a seed always gives the same image):
 *  - files present at install, and data and names made durable by completed syncs, survive
 *    exactly;
 *  - each page written after the last sync is old, new or torn (a prefix of sectors new), and a
 *    changed size is the old or the new one; every outcome appears over the seeds;
 *  - creates, renames, unlinks and mkdirs not covered by a directory fsync survive as a prefix of
 *    their order, and a rename is atomic (exactly one of its names);
 *  - the race of the cut: a thread that syncs and then acknowledges never has an acknowledged
 *    version missing from the image, however the cut falls;
 *  - an FFS_CRASH operation cuts the power there.
 * Each history runs in a forked child (the cut ends the process); the parent checks the image.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fs.h"
#include "powerfs.h"
#include "testutil.h"

#define SEEDS 40
#define PAGE 4096u
#define SECTOR 512u

/* ---- running a history in a child --------------------------------------------------------- */

static int report_fd = -1;
static int ack_fd = -1;

static void on_cut(void *ctx, const struct powerfs_report *r)
{
	(void)ctx;
	if (!tu_write_full(report_fd, r, sizeof(*r)))
		_exit(5);
}

/* In a child: fail the history (cr_assert must not be used there). */
__attribute__((noreturn)) static void child_fail(const char *what, int err)
{
	fprintf(stderr, "history: %s: %s\n", what, strerror(err < 0 ? -err : err));
	_exit(3);
}

typedef void (*history_fn)(const char *root, uint64_t seed);

/*
 * Run @h on @root (with the simulator installed) in a child, cutting the power when it returns
 * (or at operation @crash_at, if not 0); the image goes to @out. Returns the cut's report.
 */
static struct powerfs_report run_history(const char *root, const char *out, uint64_t seed,
					 history_fn h, uint64_t crash_at, int ack_write_fd)
{
	struct powerfs_report rep;
	int fds[2], status;
	pid_t pid;

	cr_assert_eq(pipe(fds), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct powerfs_cfg cfg = { .root = root,
					   .out = out,
					   .seed = seed,
					   .elide_syncs = true,
					   .on_cut = on_cut };
		int r;

		close(fds[0]);
		report_fd = fds[1];
		ack_fd = ack_write_fd;
		r = powerfs_install(&cfg);
		if (r < 0)
			child_fail("powerfs_install", r);
		if (crash_at) {
			struct ffs_fault f = { .action = FFS_CRASH, .nth = crash_at };
			ffs_arm(&f);
		}
		h(root, seed);
		powerfs_cut(NULL);
	}
	close(fds[1]);
	if (ack_write_fd >= 0)
		close(ack_write_fd);
	memset(&rep, 0, sizeof(rep));
	cr_assert_eq(tu_read_full(fds[0], &rep, sizeof(rep)), sizeof(rep),
		     "the child sent no report");
	close(fds[0]);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == POWERFS_EXIT_CODE, "child status %#x",
		  status);
	cr_assert_eq(rep.error, 0, "writing the image: %s", strerror(-rep.error));
	return rep;
}

/* ---- file helpers (the child's go through the library's table, as the store's do) ---------- */

static void fill(unsigned char *buf, size_t len, unsigned tag)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (unsigned char)(tag * 37u + (i / 8) * 11u + 1u);
}

static int h_open(const char *root, const char *name)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", root, name);
	fd = pkv__fs->open(path, O_RDWR | O_CREAT, 0644);
	if (fd < 0)
		child_fail(path, fd);
	return fd;
}

static void h_write(int fd, unsigned tag, size_t off, size_t len)
{
	unsigned char *buf = malloc(len);
	int r;

	fill(buf, len, tag);
	r = pkv__fs_pwrite_all(fd, buf, len, (off_t)off);
	free(buf);
	if (r < 0)
		child_fail("pwrite", r);
}

static void h_sync(int fd)
{
	int r = pkv__fs->fdatasync(fd);

	if (r < 0)
		child_fail("fdatasync", r);
}

static void h_sync_dir(const char *root, const char *sub)
{
	char path[PATH_MAX];
	int r;

	snprintf(path, sizeof(path), "%s%s%s", root, sub ? "/" : "", sub ? sub : "");
	r = pkv__fs_fsync_dir(path);
	if (r < 0)
		child_fail("fsync dir", r);
}

static void h_rename(const char *root, const char *a, const char *b)
{
	char pa[PATH_MAX], pb[PATH_MAX];
	int r;

	snprintf(pa, sizeof(pa), "%s/%s", root, a);
	snprintf(pb, sizeof(pb), "%s/%s", root, b);
	r = pkv__fs->rename(pa, pb);
	if (r < 0)
		child_fail("rename", r);
}

static void h_unlink(const char *root, const char *name)
{
	char path[PATH_MAX];
	int r;

	snprintf(path, sizeof(path), "%s/%s", root, name);
	r = pkv__fs->unlink(path);
	if (r < 0)
		child_fail("unlink", r);
}

/* Parent side: the image's file @name, or NULL if it is not there. */
static unsigned char *image_file(const char *out, const char *name, size_t *len)
{
	char path[PATH_MAX];
	struct stat st;

	tu_fmt(path, sizeof(path), "%s/%s", out, name);
	if (stat(path, &st) != 0) {
		cr_assert_eq(errno, ENOENT);
		return NULL;
	}
	return tu_read_file(path, len);
}

static bool image_has(const char *out, const char *name)
{
	char path[PATH_MAX];
	struct stat st;

	tu_fmt(path, sizeof(path), "%s/%s", out, name);
	return stat(path, &st) == 0;
}

static void expect_contents(const char *out, const char *name, unsigned tag, size_t len)
{
	unsigned char *want = malloc(len), *got;
	size_t glen = 0;

	fill(want, len, tag);
	got = image_file(out, name, &glen);
	cr_assert_not_null(got, "%s is missing from the image", name);
	cr_assert_eq(glen, len, "%s: %zu bytes, expected %zu", name, glen, len);
	cr_assert_arr_eq(got, want, len, "%s: contents differ from the durable ones", name);
	free(want);
	free(got);
}

static void make_root(char *root, char *out, int i)
{
	char name[32];

	snprintf(name, sizeof(name), "root%d", i);
	tu_path(root, name);
	snprintf(name, sizeof(name), "out%d", i);
	tu_path(out, name);
	cr_assert_eq(mkdir(root, 0755), 0);
}

static void put_file(const char *root, const char *name, unsigned tag, size_t len)
{
	char path[PATH_MAX];
	unsigned char *buf = malloc(len);
	int fd;

	tu_fmt(path, sizeof(path), "%s/%s", root, name);
	fill(buf, len, tag);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	cr_assert_geq(fd, 0);
	cr_assert(tu_write_full(fd, buf, len));
	close(fd);
	free(buf);
}

/* ---- data: synced survives; the rest is old, new or torn ----------------------------------- */

#define A_SYNCED 20480u /* 5 pages, synced with tag 1 */
#define A_LATER 24576u /* then 6 pages written with tag 2, not synced */

static void h_data(const char *root, uint64_t seed)
{
	int fd = h_open(root, "a");

	(void)seed;
	h_write(fd, 1, 0, A_SYNCED);
	h_sync(fd);
	h_sync_dir(root, NULL);
	h_write(fd, 2, 0, A_LATER);
	pkv__fs->close(fd);
}

Test(powerfs, synced_data_survives_and_the_rest_is_old_new_or_torn, .init = tu_setup,
     .fini = tu_teardown, .timeout = 120)
{
	unsigned char oldb[A_LATER], newb[A_LATER];
	unsigned seen_old = 0, seen_new = 0, seen_torn = 0, sizes_old = 0, sizes_new = 0;
	char root[PATH_MAX], out[PATH_MAX];

	fill(oldb, A_SYNCED, 1);
	memset(oldb + A_SYNCED, 0, A_LATER - A_SYNCED);
	fill(newb, A_LATER, 2);
	for (int s = 0; s < SEEDS; s++) {
		struct powerfs_report rep;
		unsigned char *img;
		size_t len = 0;

		make_root(root, out, s);
		put_file(root, "keep", 9, 5000);
		rep = run_history(root, out, (uint64_t)s + 1, h_data, 0, -1);
		expect_contents(out, "keep", 9, 5000);
		img = image_file(out, "a", &len);
		cr_assert_not_null(img, "seed %d: a synced name is gone", s);
		cr_assert(len == A_SYNCED || len == A_LATER, "seed %d: size %zu", s, len);
		sizes_old += len == A_SYNCED;
		sizes_new += len == A_LATER;
		for (size_t p = 0; p < len; p += PAGE) {
			const unsigned char *g = img + p;
			bool ok = false;

			/* k sectors new, the rest old: k = 0 is old, k = 8 is new. */
			for (size_t k = 0; k <= PAGE / SECTOR && !ok; k++) {
				size_t cut = k * SECTOR;

				ok = !memcmp(g, newb + p, cut) &&
				     !memcmp(g + cut, oldb + p + cut, PAGE - cut);
				if (ok) {
					seen_old += k == 0;
					seen_new += k == PAGE / SECTOR;
					seen_torn += k > 0 && k < PAGE / SECTOR;
				}
			}
			cr_assert(ok, "seed %d: page at %zu is neither old, new nor torn", s, p);
		}
		cr_assert_eq(rep.dirops_applied + rep.dirops_dropped, 0, "seed %d", s);
		cr_assert_eq(rep.pages_old + rep.pages_new + rep.pages_torn,
			     (len == A_LATER ? A_LATER : A_SYNCED) / PAGE, "seed %d", s);
		free(img);
	}
	cr_assert(seen_old && seen_new && seen_torn, "old %u, new %u, torn %u pages", seen_old,
		  seen_new, seen_torn);
	cr_assert(sizes_old && sizes_new, "sizes: old %u, new %u", sizes_old, sizes_new);
}

/* ---- names: a prefix of the pending operations --------------------------------------------- */

/* Durable: t.tmp. Pending, in order: create f1, rename t.tmp -> t, unlink gone, mkdir sub
 * (whose own fsync makes sub/x durable in sub), create f2. */
static void h_names(const char *root, uint64_t seed)
{
	int fd;

	fd = h_open(root, "t.tmp");
	h_write(fd, 3, 0, 3000);
	h_sync(fd);
	pkv__fs->close(fd);
	h_sync_dir(root, NULL);

	fd = h_open(root, "f1");
	h_write(fd, 4, 0, 100);
	h_sync(fd);
	pkv__fs->close(fd);
	h_rename(root, "t.tmp", "t");
	h_unlink(root, "gone");
	{
		char path[PATH_MAX];
		int r;

		snprintf(path, sizeof(path), "%s/sub", root);
		r = pkv__fs->mkdir(path, 0755);
		if (r < 0)
			child_fail("mkdir", r);
	}
	fd = h_open(root, "sub/x");
	h_write(fd, 5, 0, 700);
	h_sync(fd);
	pkv__fs->close(fd);
	h_sync_dir(root, "sub");
	fd = h_open(root, "f2");
	h_write(fd, 6, 0, 200);
	h_sync(fd);
	pkv__fs->close(fd);
	if (seed == 0) /* the variant that ends with a directory fsync */
		h_sync_dir(root, NULL);
}

/* The number of pending operations the image shows applied; fails unless it is a prefix. */
static unsigned names_prefix(const char *out, int s)
{
	bool f1 = image_has(out, "f1"), t = image_has(out, "t"), tmp = image_has(out, "t.tmp");
	bool gone = !image_has(out, "gone"), sub = image_has(out, "sub"), f2 = image_has(out, "f2");
	bool step[5] = { f1, t, gone, sub, f2 };
	unsigned k = 0;

	cr_assert(t != tmp, "seed %d: a rename must leave exactly one name (t %d, t.tmp %d)", s, t,
		  tmp);
	expect_contents(out, t ? "t" : "t.tmp", 3, 3000);
	while (k < 5 && step[k])
		k++;
	for (unsigned j = k; j < 5; j++)
		cr_assert(!step[j], "seed %d: operation %u survived but %u did not", s, j + 1,
			  k + 1);
	if (f1)
		expect_contents(out, "f1", 4, 100);
	if (!gone)
		expect_contents(out, "gone", 7, 1234);
	if (sub)
		expect_contents(out, "sub/x", 5, 700);
	if (f2)
		expect_contents(out, "f2", 6, 200);
	return k;
}

Test(powerfs, directory_operations_survive_as_a_prefix, .init = tu_setup, .fini = tu_teardown,
     .timeout = 120)
{
	unsigned seen[6] = { 0 };
	char root[PATH_MAX], out[PATH_MAX];

	for (int s = 0; s <= SEEDS; s++) {
		struct powerfs_report rep;
		unsigned k;

		make_root(root, out, s);
		put_file(root, "gone", 7, 1234);
		/* Seed 0 ends with a directory fsync: everything is durable. */
		rep = run_history(root, out, (uint64_t)s, h_names, 0, -1);
		k = names_prefix(out, s);
		if (s == 0) {
			cr_assert_eq(k, 5, "after a directory fsync every operation is durable");
			cr_assert_eq(rep.dirops_applied + rep.dirops_dropped, 0);
			continue;
		}
		cr_assert_eq(rep.dirops_applied + rep.dirops_dropped, 5, "seed %d", s);
		cr_assert_eq(rep.dirops_applied, k, "seed %d: report %llu, image %u", s,
			     (unsigned long long)rep.dirops_applied, k);
		seen[k]++;
	}
	for (unsigned k = 0; k <= 5; k++)
		cr_assert_gt(seen[k], 0, "no seed left a prefix of %u operations", k);
}

/* ---- the race of the cut ------------------------------------------------------------------- */

struct acker {
	const char *root;
	const char *name;
	uint32_t id;
};

struct ack {
	uint32_t id;
	uint32_t pad;
	uint64_t v;
};

/* Write v, sync, acknowledge v; forever (the cut ends it). */
static void *acker_main(void *arg)
{
	struct acker *a = arg;
	int fd = h_open(a->root, a->name);

	for (uint64_t v = 1;; v++) {
		struct ack m = { a->id, 0, v };
		int r = pkv__fs_pwrite_all(fd, &v, sizeof(v), 0);

		if (r < 0)
			child_fail("pwrite", r);
		h_sync(fd);
		if (!tu_write_full(ack_fd, &m, sizeof(m)))
			_exit(6);
	}
	return NULL;
}

static void h_race(const char *root, uint64_t seed)
{
	static struct acker a[2] = { { .name = "c0", .id = 0 }, { .name = "c1", .id = 1 } };
	struct timespec ts = { 0, (long)(seed % 20) * 1000000L + 100000L };
	pthread_t t;

	for (int i = 0; i < 2; i++) {
		a[i].root = root;
		if (pthread_create(&t, NULL, acker_main, &a[i]) != 0)
			_exit(7);
	}
	nanosleep(&ts, NULL);
	/* returning cuts the power while both threads sync and acknowledge */
}

Test(powerfs, no_acknowledged_sync_is_missing_from_the_image, .init = tu_setup, .fini = tu_teardown,
     .timeout = 120)
{
	char root[PATH_MAX], out[PATH_MAX];
	uint64_t total_acks = 0;

	for (int s = 0; s < SEEDS; s++) {
		uint64_t acked[2] = { 0, 0 };
		struct ack m;
		int fds[2];

		make_root(root, out, s);
		put_file(root, "c0", 0, 8);
		put_file(root, "c1", 0, 8);
		cr_assert_eq(pipe(fds), 0);
		/* Acks are read after the child is gone: a full pipe blocks an acker, which
		 * does not keep the cut from happening. */
		run_history(root, out, (uint64_t)s, h_race, 0, fds[1]);
		while (tu_read_full(fds[0], &m, sizeof(m)) == sizeof(m)) {
			cr_assert_lt(m.id, 2);
			cr_assert_gt(m.v, acked[m.id]);
			acked[m.id] = m.v;
			total_acks++;
		}
		close(fds[0]);
		for (int i = 0; i < 2; i++) {
			char name[4] = { 'c', (char)('0' + i), 0 };
			size_t len = 0;
			unsigned char *img = image_file(out, name, &len);
			uint64_t v;

			cr_assert_not_null(img);
			cr_assert_eq(len, 8);
			memcpy(&v, img, 8);
			cr_assert_geq(v, acked[i],
				      "seed %d: %s holds version %llu, but %llu was acknowledged",
				      s, name, (unsigned long long)v, (unsigned long long)acked[i]);
			free(img);
		}
	}
	cr_assert_gt(total_acks, 0, "the threads never acknowledged anything");
}

/* ---- FFS_CRASH --------------------------------------------------------------------------- */

static void h_ops(const char *root, uint64_t seed)
{
	(void)seed;
	for (int i = 0; i < 10; i++) {
		int fd = h_open(root, "x");

		h_write(fd, (unsigned)i, 0, 100);
		h_sync(fd);
		pkv__fs->close(fd);
	}
}

Test(powerfs, a_crash_operation_cuts_there, .init = tu_setup, .fini = tu_teardown, .timeout = 60)
{
	char root[PATH_MAX], out[PATH_MAX];

	/* Each round is open, pwrite, fdatasync, close: operation 4k + 3 is the k-th sync. */
	for (int k = 0; k < 10; k++) {
		struct powerfs_report rep;

		make_root(root, out, k);
		rep = run_history(root, out, 1, h_ops, 4u * (unsigned)k + 3u, -1);
		cr_assert_eq(rep.op_index, 4u * (unsigned)k + 3u);
		cr_assert_eq(rep.op_kind, FFS_FDATASYNC);
		cr_assert_eq(rep.syncs, (uint64_t)k, "syncs completed before the cut");
		/* x's creation was never made durable by a directory fsync. */
		cr_assert_eq(rep.dirops_applied + rep.dirops_dropped, 1);
		if (image_has(out, "x") && k > 0) {
			/* Version k - 1 was synced; version k was written, not synced. */
			unsigned char v0[100], v1[100], *img;
			size_t len = 0;

			fill(v0, sizeof(v0), (unsigned)k - 1);
			fill(v1, sizeof(v1), (unsigned)k);
			img = image_file(out, "x", &len);
			cr_assert_eq(len, 100);
			cr_assert(!memcmp(img, v0, 100) || !memcmp(img, v1, 100),
				  "x holds neither the synced nor the written version");
			free(img);
		}
	}
}
