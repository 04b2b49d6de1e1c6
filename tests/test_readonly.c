/* SPDX-License-Identifier: MIT */
/*
 * test_readonly.c - what a read-only open needs and leaves (db.c lock_dir): read permission
 * only, nothing created, a shared lock that a writer's exclusive one excludes; NOCREATE on an
 * empty directory; a permission error names the file through the log callback, and so does one
 * on the store's wal/ or snap/ directory itself.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

TestSuite(readonly, .init = tu_setup, .fini = tu_teardown, .timeout = 120);

static int entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static pkv_options ro(void)
{
	pkv_options o;

	pkv_options_default(&o);
	o.flags = PKV_OPEN_READONLY;
	return o;
}

Test(readonly, creates_nothing)
{
	pkv_options o = ro(), nc;
	char empty[PATH_MAX], missing[PATH_MAX];
	pkv *db = NULL;

	tu_path(empty, "empty");
	tu_path(missing, "missing");
	cr_assert_eq(mkdir(empty, 0755), 0);
	cr_expect_eq(pkv_open(empty, &o, &db), -ENOENT, "an empty directory is no store");
	cr_expect_eq(entries(empty), 0, "a read-only open wrote into the directory");
	cr_expect_eq(pkv_open(missing, &o, &db), -ENOENT);
	cr_expect_eq(entries(missing), -1, "a read-only open made the directory");
	pkv_options_default(&nc);
	nc.flags = PKV_OPEN_NOCREATE;
	cr_expect_eq(pkv_open(empty, &nc, &db), -ENOENT, "NOCREATE: an empty directory is no store");
	cr_expect_eq(entries(empty), 0, "a NOCREATE open wrote into the directory");
	cr_expect_eq(pkv_open(missing, &nc, &db), -ENOENT);
	cr_expect_null(db);

	/* A store: a read-only open changes no name in it. */
	db = tu_open(tu_db, NULL);
	cr_assert_eq(pkv_put(db, "k", 1, "v", 1), 0);
	tu_close(db);
	int before = entries(tu_db);
	db = tu_open(tu_db, &o);
	size_t vlen;
	char buf[4];
	cr_expect_eq(pkv_get(db, "k", 1, buf, sizeof(buf), &vlen), 0);
	cr_expect_eq(pkv_put(db, "k", 1, "w", 1), PKV_EREADONLY);
	tu_close(db);
	cr_expect_eq(entries(tu_db), before);
	/* NOCREATE on an existing store opens it. */
	db = tu_open(tu_db, &nc);
	tu_close(db);
}

Test(readonly, shared_lock_against_the_writer)
{
	pkv_options o = ro();
	pkv *w, *r1, *r2, *x = NULL;

	w = tu_open(tu_db, NULL);
	cr_expect_eq(pkv_open(tu_db, &o, &x), PKV_ELOCKED, "a reader while a writer has it");
	tu_close(w);
	r1 = tu_open(tu_db, &o);
	r2 = tu_open(tu_db, &o); /* readers share */
	cr_expect_eq(pkv_open(tu_db, NULL, &x), PKV_ELOCKED, "a writer while readers have it");
	tu_close(r1);
	cr_expect_eq(pkv_open(tu_db, NULL, &x), PKV_ELOCKED, "a writer while one reader has it");
	tu_close(r2);
	w = tu_open(tu_db, NULL);
	tu_close(w);
	cr_expect_null(x);
}

static char logged[4096];

static void log_cb(void *ctx, int level, const char *msg)
{
	(void)ctx;
	(void)level;
	size_t n = strlen(logged);
	snprintf(logged + n, sizeof(logged) - n, "%s\n", msg);
}

/*
 * An operator who may only read: the store's files belong to someone else, and are readable
 * only. As root (permission bits do not apply to root) a child drops to an unprivileged user
 * for the opens; otherwise the store is made read-only with chmod.
 */
Test(readonly, read_permission_is_enough_and_errors_name_the_file)
{
	char tmpl[] = "/tmp/pkv-ro-test.XXXXXX", cmd[PATH_MAX + 64];
	char *base = mkdtemp(tmpl), dir[PATH_MAX];
	pkv *db;
	int status;

	cr_assert_not_null(base);
	cr_assert_eq(chmod(base, 0755), 0);
	tu_fmt(dir, sizeof(dir), "%s/store", base);
	db = tu_open(dir, NULL);
	cr_assert_eq(pkv_put(db, "k", 1, "v", 1), 0);
	cr_assert_eq(pkv_compact(db), 0);
	cr_assert_eq(pkv_put(db, "k2", 2, "v2", 2), 0);
	tu_close(db);
	if (geteuid() != 0) {
		snprintf(cmd, sizeof(cmd), "chmod -R a-w '%s'", dir);
		cr_assert_eq(system(cmd), 0);
	}
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		pkv_options o = ro(), rw;
		pkv *r = NULL;
		size_t vlen;
		char buf[4];
		int bad = 0;

		if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
			_exit(10);
		o.log_fn = log_cb;
		if (pkv_open(dir, &o, &r) != 0)
			_exit(11);
		bad |= pkv_get(r, "k2", 2, buf, sizeof(buf), &vlen) != 0;
		bad |= pkv_verify(r) != 0;
		pkv_close(r);
		if (bad)
			_exit(12);
		pkv_options_default(&rw);
		rw.log_fn = log_cb;
		logged[0] = '\0';
		r = NULL;
		if (pkv_open(dir, &rw, &r) != -EACCES)
			_exit(13);
		if (strstr(logged, "/LOCK") == NULL || strstr(logged, "ermission denied") == NULL)
			_exit(14);
		_exit(0);
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	snprintf(cmd, sizeof(cmd), "chmod -R u+w '%s' && rm -rf '%s'", base, base);
	cr_expect_eq(system(cmd), 0);
	cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "child: %d (10 setuid, 11 read-only open, 12 get/verify, 13 write open not "
		  "EACCES, 14 log does not name LOCK)",
		  WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

/*
 * A store's wal/ or snap/ directory that cannot be listed: the open fails with -EACCES and the
 * log names the directory (recovery.c R.1 lists wal/, snapshot.c pkv__snap_load lists snap/).
 * The directory is made mode 0; as root (which permission bits do not stop) a child drops to
 * an unprivileged user for the open, as above.
 */
static void unreadable_subdir_is_named(const char *sub)
{
	char tmpl[] = "/tmp/pkv-ro-test.XXXXXX", cmd[PATH_MAX + 64];
	char *base = mkdtemp(tmpl), dir[PATH_MAX], subdir[PATH_MAX];
	pkv *db;
	int status;

	cr_assert_not_null(base);
	cr_assert_eq(chmod(base, 0755), 0);
	tu_fmt(dir, sizeof(dir), "%s/store", base);
	tu_fmt(subdir, sizeof(subdir), "%s/%s", dir, sub);
	db = tu_open(dir, NULL);
	cr_assert_eq(pkv_put(db, "k", 1, "v", 1), 0);
	cr_assert_eq(pkv_compact(db), 0);
	cr_assert_eq(pkv_put(db, "k2", 2, "v2", 2), 0);
	tu_close(db);
	cr_assert_eq(chmod(subdir, 0), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		pkv_options o = ro();
		pkv *r = NULL;

		if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
			_exit(10);
		o.log_fn = log_cb;
		logged[0] = '\0';
		if (pkv_open(dir, &o, &r) != -EACCES)
			_exit(11);
		if (strstr(logged, subdir) == NULL || strstr(logged, "ermission denied") == NULL)
			_exit(12);
		_exit(0);
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_expect_eq(chmod(subdir, 0755), 0);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
	cr_expect_eq(system(cmd), 0);
	cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "child: %d (10 setuid, 11 open of a store with %s/ unreadable not EACCES, 12 the "
		  "log does not name %s)",
		  WIFEXITED(status) ? WEXITSTATUS(status) : -1, sub, subdir);
}

Test(readonly, unreadable_wal_directory_is_named)
{
	unreadable_subdir_is_named("wal");
}

Test(readonly, unreadable_snap_directory_is_named)
{
	unreadable_subdir_is_named("snap");
}
