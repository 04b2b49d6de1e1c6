/* SPDX-License-Identifier: MIT */
/*
 * test_tickets.c - durability tickets (sync.c S.7, S.8): pkv_put_seq / pkv_del_seq,
 * pkv_durable_seq, pkv_wait_durable, pkv_event_fd, and pipelined group-commit rounds.
 *
 * Covered: every bad input (NULL handle or output, a sequence number never issued, an in-memory
 * store's event fd, sync_rounds out of range); sequence 0; each durability mode, with one and
 * with several rounds in flight: a wait with no timeout, a poll (-EAGAIN, then 0 once the round
 * it asked for ran, in PROCESS mode where no round is otherwise due), a positive timeout that is
 * met and one that expires (-ETIMEDOUT) while an fdatasync is held back; a failed fdatasync
 * (through the fault table): every waiter, whatever its timeout, gets PKV_EREADONLY and the
 * watermark stays below the failed round; the event fd turns readable when the watermark grows
 * and on that failure, and the documented read-then-check loop loses no wake-up; a read-only
 * open and an in-memory store.
 * This suite links the static library: the fault table is internal.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "faultfs.h"
#include "testutil.h"

static void setup(void)
{
	tu_setup();
	ffs_reset();
	ffs_install();
}

static void teardown(void)
{
	ffs_uninstall();
	ffs_reset();
	tu_teardown();
}

TestSuite(tickets, .init = setup, .fini = teardown, .timeout = 60);

static uint64_t put_seq(pkv *db, int i)
{
	char k[32], v[64];
	uint64_t seq = 0;
	int n = snprintf(k, sizeof(k), "key-%d", i);

	memset(v, 'a' + i % 26, sizeof(v));
	cr_assert_eq(pkv_put_seq(db, k, (size_t)n, v, sizeof(v), 0, &seq), 0);
	cr_assert_gt(seq, 0);
	return seq;
}

static bool readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

static uint64_t durable(pkv *db)
{
	uint64_t d = UINT64_MAX;

	cr_assert_eq(pkv_durable_seq(db, &d), 0);
	return d;
}

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* ---- bad input ------------------------------------------------------------------------------ */

Test(tickets, bad_input)
{
	pkv_options o;
	uint64_t seq = 0, d;
	pkv *db;

	tu_opts(&o, PKV_DURABLE_PROCESS);
	db = tu_open(tu_db, &o);
	cr_assert_eq(pkv_durable_seq(NULL, &d), PKV_EINVAL);
	cr_assert_eq(pkv_durable_seq(db, NULL), PKV_EINVAL);
	cr_assert_eq(pkv_wait_durable(NULL, 1, -1), PKV_EINVAL);
	cr_assert_eq(pkv_event_fd(NULL), PKV_EINVAL);
	cr_assert_eq(pkv_put_seq(NULL, "k", 1, "v", 1, 0, &seq), PKV_EINVAL);
	cr_assert_eq(pkv_put_seq(db, "k", 1, "v", 1, 0x80, &seq), PKV_EINVAL);
	cr_assert_eq(pkv_put_seq(db, "", 0, "v", 1, 0, &seq), PKV_EINVAL);
	cr_assert_eq(pkv_del_seq(db, "absent", 6, 0, &seq), PKV_NOTFOUND);
	cr_assert_eq(seq, 0, "a failed write must not set its ticket");

	/* Nothing issued yet: 0 is the only valid ticket, and it is always durable. */
	cr_assert_eq(pkv_wait_durable(db, 0, 0), 0);
	cr_assert_eq(pkv_wait_durable(db, 1, -1), PKV_EINVAL);
	seq = put_seq(db, 1);
	cr_assert_eq(pkv_wait_durable(db, seq + 1, 0), PKV_EINVAL);
	cr_assert_eq(pkv_wait_durable(db, seq + 1, -1), PKV_EINVAL);
	cr_assert_eq(pkv_wait_durable(db, UINT64_MAX, 100), PKV_EINVAL);
	/* The store keeps working after each of those. */
	cr_assert_eq(pkv_wait_durable(db, seq, -1), 0);
	cr_assert_geq(durable(db), seq);
	cr_assert_eq(pkv_del_seq(db, "key-1", 5, 0, &d), 0);
	cr_assert_eq(d, seq + 1);
	tu_close(db);

	pkv_options_default(&o);
	o.sync_rounds = 5;
	cr_assert_eq(pkv_open(tu_db, &o, &db), PKV_EINVAL);
}

Test(tickets, in_memory)
{
	pkv *db = tu_open(NULL, NULL);
	uint64_t seq = put_seq(db, 1);

	cr_assert_eq(durable(db), seq, "in memory every issued number counts as durable");
	cr_assert_eq(pkv_wait_durable(db, seq, 0), 0);
	cr_assert_eq(pkv_wait_durable(db, seq, -1), 0);
	cr_assert_eq(pkv_wait_durable(db, seq + 1, -1), PKV_EINVAL);
	cr_assert_eq(pkv_event_fd(db), PKV_EINVAL);
	tu_close(db);
}

Test(tickets, readonly_open)
{
	pkv_options o;
	uint64_t seq;
	pkv *db;

	tu_opts(&o, PKV_DURABLE_PROCESS);
	db = tu_open(tu_db, &o);
	seq = put_seq(db, 1);
	tu_close(db);
	o.flags |= PKV_OPEN_READONLY;
	db = tu_open(tu_db, &o);
	/* A read-only open syncs nothing, so it cannot vouch for what it recovered. */
	cr_assert_eq(durable(db), 0);
	cr_assert_eq(pkv_wait_durable(db, seq, 0), PKV_EREADONLY);
	cr_assert_eq(pkv_wait_durable(db, seq, -1), PKV_EREADONLY);
	cr_assert_eq(pkv_wait_durable(db, seq + 1, -1), PKV_EINVAL);
	tu_close(db);
}

/* ---- every mode, one and several rounds in flight -------------------------------------------- */

struct mode_rounds {
	enum pkv_durability mode;
	unsigned rounds;
};

static struct mode_rounds mr[] = {
	{ PKV_DURABLE_PROCESS, 1 }, { PKV_DURABLE_POWER, 1 }, { PKV_DURABLE_PERIODIC, 1 },
	{ PKV_DURABLE_PROCESS, 2 }, { PKV_DURABLE_POWER, 2 }, { PKV_DURABLE_POWER, 4 },
};

ParameterizedTestParameters(tickets, wait_each_way)
{
	return cr_make_param_array(struct mode_rounds, mr, sizeof(mr) / sizeof(mr[0]));
}

ParameterizedTest(struct mode_rounds *p, tickets, wait_each_way)
{
	pkv_options o;
	uint64_t seq, prev = 0;
	int efd, r = -EAGAIN;
	pkv *db;

	tu_opts(&o, p->mode);
	o.sync_rounds = p->rounds;
	if (p->mode == PKV_DURABLE_PERIODIC)
		o.sync_interval_ms = 3600000; /* no periodic round gets in the way of the polls */
	db = tu_open(tu_db, &o);
	efd = pkv_event_fd(db);
	cr_assert_geq(efd, 0);
	cr_assert_eq(pkv_event_fd(db), efd, "one descriptor per store");

	for (int i = 0; i < 20; i++) {
		seq = put_seq(db, i);
		cr_assert_gt(seq, prev, "tickets grow");
		prev = seq;
	}
	if (p->mode == PKV_DURABLE_POWER) {
		/* A POWER write returned: it is durable already. */
		cr_assert_geq(durable(db), seq);
		cr_assert_eq(pkv_wait_durable(db, seq, 0), 0);
		cr_assert(readable(efd));
	} else {
		/* No round is due: the poll asks for one and says "not yet". */
		cr_assert_lt(durable(db), seq);
		cr_assert(!readable(efd));
		cr_assert_eq(pkv_wait_durable(db, seq, 0), -EAGAIN);
		/* ... and the round it asked for comes (bounded: 10 s). */
		for (double t0 = now_s(); now_s() - t0 < 10 && r == -EAGAIN;) {
			r = pkv_wait_durable(db, seq, 0);
			if (r == -EAGAIN)
				usleep(1000);
		}
		cr_assert_eq(r, 0, "the poll's round never came: %d", r);
		cr_assert_geq(durable(db), seq);
		cr_assert(readable(efd), "the watermark grew: the event fd must be readable");
	}
	{
		uint64_t cnt;

		cr_assert_eq(read(efd, &cnt, sizeof(cnt)), (ssize_t)sizeof(cnt));
		cr_assert_geq(cnt, 1);
		cr_assert(!readable(efd), "read resets it");
	}

	/* A positive timeout that is met: the background thread's round. */
	seq = put_seq(db, 100);
	cr_assert_eq(pkv_wait_durable(db, seq, 10000), 0);
	cr_assert_geq(durable(db), seq);
	cr_assert(readable(efd));
	/* A negative one: this thread leads the round. */
	seq = put_seq(db, 101);
	cr_assert_eq(pkv_wait_durable(db, seq, -1), 0);
	cr_assert_geq(durable(db), seq);
	/* Durable numbers stay durable, and polling them costs nothing. */
	cr_assert_eq(pkv_wait_durable(db, 1, 0), 0);
	tu_close(db);
}

/* ---- an fdatasync held back: -ETIMEDOUT --------------------------------------------------- */

static pthread_mutex_t hold_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hold_cv = PTHREAD_COND_INITIALIZER;
static bool hold, held;

static void hold_pre(void *ctx, const struct ffs_call *c)
{
	(void)ctx;
	if (c->op != FFS_FDATASYNC)
		return;
	pthread_mutex_lock(&hold_mu);
	while (hold) {
		held = true;
		pthread_cond_broadcast(&hold_cv);
		pthread_cond_wait(&hold_cv, &hold_mu);
	}
	pthread_mutex_unlock(&hold_mu);
}

Test(tickets, timeout_expires)
{
	struct ffs_hooks h = { .pre = hold_pre };
	pkv_options o;
	uint64_t seq;
	double t0;
	pkv *db;

	tu_opts(&o, PKV_DURABLE_PROCESS);
	db = tu_open(tu_db, &o);
	seq = put_seq(db, 1);
	hold = true;
	held = false;
	ffs_set_hooks(&h);

	t0 = now_s();
	cr_assert_eq(pkv_wait_durable(db, seq, 50), -ETIMEDOUT);
	cr_assert_geq(now_s() - t0, 0.045, "returned before its timeout");
	/* The round is under way (its fdatasync is held back), not abandoned. */
	pthread_mutex_lock(&hold_mu);
	for (int i = 0; i < 100 && !held; i++) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 100000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&hold_cv, &hold_mu, &ts);
	}
	cr_assert(held, "no round reached its fdatasync");
	cr_assert_lt(durable(db), seq);
	hold = false;
	pthread_cond_broadcast(&hold_cv);
	pthread_mutex_unlock(&hold_mu);

	cr_assert_eq(pkv_wait_durable(db, seq, 10000), 0);
	ffs_set_hooks(NULL);
	tu_close(db);
}

/* ---- a failed fdatasync: every waiter gets PKV_EREADONLY ------------------------------------- */

struct waiter {
	pkv *db;
	uint64_t seq;
	int timeout;
	int rc;
};

static void *waiter_main(void *arg)
{
	struct waiter *w = arg;

	w->rc = pkv_wait_durable(w->db, w->seq, w->timeout);
	if (w->timeout == 0) { /* a poller: keep polling until an answer (bounded) */
		for (double t0 = now_s(); now_s() - t0 < 10 && w->rc == -EAGAIN;) {
			usleep(500);
			w->rc = pkv_wait_durable(w->db, w->seq, 0);
		}
	}
	return NULL;
}

ParameterizedTestParameters(tickets, failed_fdatasync)
{
	static unsigned rounds[] = { 1, 2, 4 };
	return cr_make_param_array(unsigned, rounds, 3);
}

ParameterizedTest(unsigned *rounds, tickets, failed_fdatasync)
{
	struct ffs_fault f = { .action = FFS_FAIL, .nth = 1, .kinds = FFS_BIT(FFS_FDATASYNC),
			       .err = EIO, .persistent = true };
	struct waiter w[8];
	pthread_t t[8];
	pkv_options o;
	uint64_t seq, before;
	int efd;
	pkv *db;

	tu_opts(&o, PKV_DURABLE_PROCESS); /* the waiters, not the writes, start the round */
	o.sync_rounds = *rounds;
	db = tu_open(tu_db, &o);
	efd = pkv_event_fd(db);
	cr_assert_geq(efd, 0);
	seq = put_seq(db, 0);
	cr_assert_eq(pkv_wait_durable(db, seq, -1), 0);
	{
		uint64_t cnt;
		cr_assert_eq(read(efd, &cnt, sizeof(cnt)), (ssize_t)sizeof(cnt));
	}
	before = durable(db);
	for (int i = 1; i < 10; i++)
		seq = put_seq(db, i);
	ffs_arm(&f);
	for (int i = 0; i < 8; i++) {
		static const int timeouts[] = { -1, -1, 0, 0, 5000, 5000, -1, 20000 };
		w[i] = (struct waiter){ .db = db, .seq = seq - (uint64_t)(i % 3), .timeout = timeouts[i] };
		cr_assert_eq(pthread_create(&t[i], NULL, waiter_main, &w[i]), 0);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		cr_assert_eq(w[i].rc, PKV_EREADONLY, "waiter %d (timeout %d) got %d (%s)", i,
			     w[i].timeout, w[i].rc, pkv_strerror(w[i].rc));
	}
	/* Never a false success: the watermark did not move past the failed round. */
	cr_assert_eq(durable(db), before);
	cr_assert_eq(pkv_wait_durable(db, seq, 0), PKV_EREADONLY);
	cr_assert_eq(pkv_wait_durable(db, before, 0), 0, "what was durable stays durable");
	cr_assert(readable(efd), "the stop makes the event fd readable");
	cr_assert_eq(pkv_put_seq(db, "x", 1, "y", 1, 0, &seq), PKV_EREADONLY);
	ffs_disarm();
	cr_assert_eq(pkv_close(db), -EIO);
}

/* The failure comes from a POWER writer's own round: waiters on tickets see it too. */
Test(tickets, failure_under_power_reaches_ticket_waiters)
{
	struct ffs_fault f = { .action = FFS_FAIL, .nth = 1, .kinds = FFS_BIT(FFS_FDATASYNC),
			       .err = EIO, .persistent = true };
	pkv_options o;
	uint64_t seq = 0;
	pkv *db;
	int efd;

	tu_opts(&o, PKV_DURABLE_POWER);
	db = tu_open(tu_db, &o);
	efd = pkv_event_fd(db);
	put_seq(db, 0);
	ffs_arm(&f);
	cr_assert_eq(pkv_put_seq(db, "k", 1, "v", 1, 0, &seq), -EIO);
	cr_assert_gt(seq, 0, "the write was applied: its ticket is set");
	cr_assert_lt(durable(db), seq);
	cr_assert_eq(pkv_wait_durable(db, seq, -1), PKV_EREADONLY);
	cr_assert_eq(pkv_wait_durable(db, seq, 100), PKV_EREADONLY);
	cr_assert(readable(efd));
	ffs_disarm();
	cr_assert_eq(pkv_close(db), -EIO);
}

/* ---- the event loop of pkv_event_fd's documentation ---------------------------------------- */

struct loop_writer {
	pkv *db;
	uint64_t last;
	int n;
};

static void *loop_writer_main(void *arg)
{
	struct loop_writer *lw = arg;

	for (int i = 0; i < lw->n; i++) {
		char k[32];
		int n = snprintf(k, sizeof(k), "w%d", i);
		uint64_t seq;

		cr_assert_eq(pkv_put_seq(lw->db, k, (size_t)n, k, (size_t)n, 0, &seq), 0);
		/* Ask for a round, as a server does for a write it has not acknowledged. */
		(void)pkv_wait_durable(lw->db, seq, 0);
		__atomic_store_n(&lw->last, seq, __ATOMIC_RELEASE);
		if (i % 16 == 0)
			usleep(200);
	}
	return NULL;
}

Test(tickets, event_loop_loses_no_wakeup)
{
	struct loop_writer lw = { .n = 600 };
	pthread_t t;
	pkv_options o;
	uint64_t seen = 0, target = 0;
	int efd, wakeups = 0;
	double t0;

	tu_opts(&o, PKV_DURABLE_PROCESS);
	lw.db = tu_open(tu_db, &o);
	efd = pkv_event_fd(lw.db);
	cr_assert_eq(pthread_create(&t, NULL, loop_writer_main, &lw), 0);
	pthread_join(t, NULL);
	target = __atomic_load_n(&lw.last, __ATOMIC_ACQUIRE);
	/* Only the fd wakes this loop; it must reach the last ticket (bounded: 20 s). */
	for (t0 = now_s(); seen < target && now_s() - t0 < 20;) {
		struct pollfd p = { .fd = efd, .events = POLLIN };
		uint64_t cnt;

		if (poll(&p, 1, 1000) <= 0)
			continue;
		if (read(efd, &cnt, sizeof(cnt)) == (ssize_t)sizeof(cnt))
			wakeups++;
		seen = durable(lw.db);
		if (seen < target)
			(void)pkv_wait_durable(lw.db, target, 0); /* keep a round under way */
	}
	cr_assert_geq(seen, target, "the loop stalled at %llu of %llu", (unsigned long long)seen,
		      (unsigned long long)target);
	cr_assert_gt(wakeups, 0);
	tu_close(lw.db);
}

/* ---- pipelined rounds: many POWER writers, every returned write durable and recovered -------- */

struct pw {
	pkv *db;
	int id;
	int n;
	bool ok;
};

static void *power_writer(void *arg)
{
	struct pw *p = arg;

	p->ok = true;
	for (int i = 0; i < p->n; i++) {
		char k[32];
		int n = snprintf(k, sizeof(k), "t%d-%d", p->id, i);
		uint64_t seq, d;

		if (pkv_put_seq(p->db, k, (size_t)n, k, (size_t)n, 0, &seq) != 0 ||
		    pkv_durable_seq(p->db, &d) != 0 || d < seq) {
			p->ok = false;
			return NULL;
		}
	}
	return NULL;
}

ParameterizedTestParameters(tickets, pipelined_power_writers)
{
	static unsigned rounds[] = { 1, 2, 3, 4 };
	return cr_make_param_array(unsigned, rounds, 4);
}

ParameterizedTest(unsigned *rounds, tickets, pipelined_power_writers)
{
	struct pw p[8];
	pthread_t t[8];
	pkv_options o;
	pkv_stats st;
	pkv *db;

	tu_opts(&o, PKV_DURABLE_POWER);
	o.sync_rounds = *rounds;
	o.wal_lanes = 2;
	o.wal_segment_bytes = 64 << 10; /* rolls: rounds sync and bury rolled segments too */
	db = tu_open(tu_db, &o);
	for (int i = 0; i < 8; i++) {
		p[i] = (struct pw){ .db = db, .id = i, .n = 150 };
		cr_assert_eq(pthread_create(&t[i], NULL, power_writer, &p[i]), 0);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		cr_assert(p[i].ok, "writer %d saw a returned POWER write above the watermark", i);
	}
	st = tu_stats(db);
	cr_assert_eq(st.durable_seq, st.last_seq);
	cr_assert_gt(st.syncs, 0);
	tu_close(db);
	db = tu_open(tu_db, &o);
	for (int i = 0; i < 8; i++)
		for (int j = 0; j < 150; j++) {
			char k[32], v[32];
			size_t vl;
			int n = snprintf(k, sizeof(k), "t%d-%d", i, j);

			cr_assert_eq(pkv_get(db, k, (size_t)n, v, sizeof(v), &vl), 0, "%s lost", k);
			cr_assert_eq(vl, (size_t)n);
		}
	tu_close(db);
}
