/* SPDX-License-Identifier: MIT */
/*
 * test_lock.c - one opener per directory (DIR/LOCK, flock): what test_api.c's lock suite does not
 * cover.
 *
 * test_api.c checks a second open from this process (under other spellings of the path too) and
 * from another process, and that pkv_close releases the lock. Here:
 *  - the lock dies with its holder: a process SIGKILLed at any moment (during its pkv_open, while
 *    it writes) leaves a directory that the next open takes at once, from this process and from
 *    another one;
 *  - a fork + exec child does not inherit it (pkv.h: every pkv descriptor is O_CLOEXEC): while
 *    this process holds the store, an exec'ed child has no descriptor under the directory and
 *    gets PKV_ELOCKED; once this process closes, a third open succeeds while that child still
 *    runs. An inherited descriptor would keep the flock (it belongs to the open file, which the
 *    child would share), and that open would fail: a negative control shows the check sees it.
 *  - a child forked without exec does not keep it either: pkv's fork handler closes the child's
 *    copy of the descriptor (db.c L.1), so this process reopens while the child runs.
 * The exec'ed child is tests/lock_helper.c, built next to this suite.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#ifndef PKV_LOCK_HELPER
#error "PKV_LOCK_HELPER must name the lock_helper program (tests/CMakeLists.txt)"
#endif

#define T_TIMEOUT 120
#define KILL_CYCLES 12

static int put_s(pkv *db, const char *k, const char *v)
{
	return pkv_put(db, k, strlen(k), v, strlen(v));
}

static void sleep_us(long us)
{
	struct timespec ts = { .tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000 };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* ---- an exec'ed child ---------------------------------------------------------------------- */

struct helper {
	pid_t pid;
	int req, rep; /* our ends: requests to its stdin, answers from its stdout */
};

/* fork + exec lock_helper DIR; between the two only async-signal-safe calls. */
static void helper_start(struct helper *h, const char *dir)
{
	int req[2], rep[2];
	char *const argv[] = { (char *)PKV_LOCK_HELPER, (char *)dir, NULL };

	cr_assert_eq(pipe2(req, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(rep, O_CLOEXEC), 0);
	h->pid = fork();
	cr_assert(h->pid >= 0, "fork: %s", strerror(errno));
	if (h->pid == 0) {
		if (dup2(req[0], 0) < 0 || dup2(rep[1], 1) < 0)
			_exit(126);
		execv(PKV_LOCK_HELPER, argv);
		_exit(127);
	}
	close(req[0]);
	close(rep[1]);
	h->req = req[1];
	h->rep = rep[0];
}

static int helper_ask(struct helper *h, char what)
{
	int rc = 12345;

	cr_assert(tu_write_full(h->req, &what, 1), "the helper is gone");
	cr_assert_eq(tu_read_full(h->rep, &rc, sizeof(rc)), sizeof(rc),
		     "the helper died (was it built? " PKV_LOCK_HELPER ")");
	return rc;
}

static bool helper_alive(const struct helper *h)
{
	int status;

	return waitpid(h->pid, &status, WNOHANG) == 0;
}

static void helper_stop(struct helper *h)
{
	int status;

	close(h->req);
	cr_assert_eq(waitpid(h->pid, &status, 0), h->pid);
	cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "helper status %d", status);
	close(h->rep);
}

/* ---- the lock dies with its holder --------------------------------------------------------- */

/*
 * The holder opens the store and writes until it is killed. It is forked before this process
 * touches pkv in the cycle, and this process opens only after the holder is dead.
 */
static void holder_main(int ready)
{
	pkv *db = NULL;
	char k[32];
	int rc = pkv_open(tu_db, NULL, &db);

	if (!tu_write_full(ready, &rc, sizeof(rc)) || rc != 0)
		_exit(2);
	for (unsigned long i = 0;; i++) {
		snprintf(k, sizeof(k), "k%lu", i % 1000);
		if (put_s(db, k, "v") != 0)
			_exit(3);
	}
}

TestSuite(lock, .init = tu_setup, .fini = tu_teardown, .timeout = T_TIMEOUT);

Test(lock, released_when_the_holder_is_killed)
{
	uint64_t rnd = 0x10c4;
	unsigned opened_first = 0;

	for (int cycle = 0; cycle < KILL_CYCLES; cycle++) {
		int ready[2], status, rc = 12345;
		struct helper h;
		pkv *db = NULL;
		pid_t pid;

		cr_assert_eq(pipe2(ready, O_CLOEXEC), 0);
		pid = fork();
		cr_assert(pid >= 0);
		if (pid == 0) {
			close(ready[0]);
			holder_main(ready[1]);
		}
		close(ready[1]);
		if (cycle % 3 == 0) {
			/* Killed at a random moment: during its open (recovery), or after. */
			sleep_us((long)(tu_rand(&rnd) % 20000));
		} else {
			/* Killed while it holds the store and writes. */
			cr_assert_eq(tu_read_full(ready[0], &rc, sizeof(rc)), sizeof(rc),
				     "cycle %d: the holder died before it opened", cycle);
			cr_assert_eq(rc, 0, "cycle %d: the holder's open: %s", cycle,
				     pkv_strerror(rc));
			opened_first++;
			rc = pkv_open(tu_db, NULL, &db);
			cr_assert_eq(rc, PKV_ELOCKED, "cycle %d: open while held = %d (%s)", cycle,
				     rc, pkv_strerror(rc));
			sleep_us((long)(tu_rand(&rnd) % 5000));
		}
		cr_assert_eq(kill(pid, SIGKILL), 0);
		cr_assert_eq(waitpid(pid, &status, 0), pid);
		cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
			  "cycle %d: the holder ended by itself (status %d)", cycle, status);
		close(ready[0]);

		/* The lock went with the process: the next open, from anywhere, takes it. */
		if (cycle % 2 == 0) {
			helper_start(&h, tu_db);
			rc = helper_ask(&h, 'o');
			helper_stop(&h);
			cr_assert_eq(rc, 0, "cycle %d: open from another process after the kill = %d (%s)",
				     cycle, rc, pkv_strerror(rc));
		}
		rc = pkv_open(tu_db, NULL, &db);
		cr_assert_eq(rc, 0, "cycle %d: open after the holder was killed = %d (%s)", cycle, rc,
			     pkv_strerror(rc));
		tu_close(db);
	}
	cr_expect_geq(opened_first, KILL_CYCLES / 2);
}

/* ---- exec does not pass it on ---------------------------------------------------------------- */

Test(lock, exec_child_does_not_inherit)
{
	struct helper h;
	pkv *db;
	int rc;

	/* A store with every kind of descriptor open: LOCK, segments, a snapshot, directories. */
	db = tu_open(tu_db, NULL);
	cr_assert_eq(put_s(db, "a", "1"), 0);
	cr_assert_eq(pkv_compact(db), 0);
	cr_assert_eq(put_s(db, "b", "2"), 0);

	helper_start(&h, tu_db);
	rc = helper_ask(&h, 'f');
	cr_expect_eq(rc, 0, "the exec'ed child has %d descriptors under the store's directory", rc);
	rc = helper_ask(&h, 'o');
	cr_expect_eq(rc, PKV_ELOCKED, "the exec'ed child's open = %d (%s), expected PKV_ELOCKED", rc,
		     pkv_strerror(rc));
	tu_close(db);

	/* The holder closed; the child still runs, and does not hold the lock. */
	cr_assert(helper_alive(&h));
	rc = pkv_open(tu_db, NULL, &db);
	cr_expect_eq(rc, 0, "a third open while the exec'ed child runs = %d (%s): it kept the lock",
		     rc, pkv_strerror(rc));
	if (rc == 0)
		tu_close(db);
	cr_expect_eq(helper_ask(&h, 'o'), 0, "the exec'ed child cannot open after the close");
	cr_assert(helper_alive(&h));
	helper_stop(&h);
}

/*
 * A child forked without exec (db.c L.1): it inherits the DIR/LOCK descriptor, and would keep
 * the flock after this process closes the store; pkv's fork handler closes the child's copy, so
 * a reopen here succeeds while the child still runs.
 */
Test(lock, fork_child_does_not_keep_the_lock)
{
	int go[2], status = 0, rc;
	pid_t pid;
	pkv *db;

	db = tu_open(tu_db, NULL);
	cr_assert_eq(put_s(db, "a", "1"), 0);
	cr_assert_eq(pipe(go), 0);
	pid = fork();
	cr_assert(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		char c;

		close(go[1]);
		(void)!read(go[0], &c, 1); /* until the parent is done */
		_exit(0);
	}
	close(go[0]);
	tu_close(db);
	db = NULL;
	rc = pkv_open(tu_db, NULL, &db);
	cr_expect_eq(rc, 0, "a reopen while a forked child runs = %d (%s): the child kept the lock",
		     rc, pkv_strerror(rc));
	if (rc == 0)
		tu_close(db);
	close(go[1]);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/*
 * Negative control: a lock descriptor that does cross exec (opened here without O_CLOEXEC and
 * flocked, as a library that forgot the flag would) is seen by the checks above, so their
 * passing means something.
 */
Test(lock, inherited_lock_is_seen)
{
	char path[PATH_MAX];
	struct helper h;
	pkv *db;
	int fd, rc;

	tu_close(tu_open(tu_db, NULL));
	tu_fmt(path, sizeof(path), "%s/LOCK", tu_db);
	fd = open(path, O_RDWR);
	cr_assert(fd >= 0);
	cr_assert_eq(flock(fd, LOCK_EX | LOCK_NB), 0);

	helper_start(&h, tu_db);
	close(fd); /* this process lets go; the child's copy keeps the flock */
	cr_expect_eq(helper_ask(&h, 'f'), 1);
	db = NULL;
	rc = pkv_open(tu_db, NULL, &db);
	cr_expect_eq(rc, PKV_ELOCKED, "an inherited lock descriptor went unnoticed (open = %d)", rc);
	if (rc == 0)
		tu_close(db);
	helper_stop(&h); /* its exit releases the lock */
	tu_close(tu_open(tu_db, NULL));
}
