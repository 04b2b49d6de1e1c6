/* SPDX-License-Identifier: MIT */
/*
 * test_kill9.c - SIGKILL a writing process, reopen, and hold it to invariants 2 and 3 of
 * DESIGN.md under PKV_DURABLE_PROCESS: every acknowledged write survives, and the state is a
 * prefix of the history.
 *
 * A child opens the store and runs two writer threads. Writer w has its own history: op v
 * (v = 1, 2, ...) acts on slot v % SLOTS of its own keys, putting a value that names (w, v), or
 * deleting the slot in every fourth sweep over the slots. The state after ops 1..n of a writer is
 * therefore a function of n alone, S_w(n). After each op returns, the child sends the parent an
 * ack (w, v) through a pipe. The parent reads a number of acks, kills the child, and drains the
 * pipe; the next child opens the store and must find, for each writer, S_w(n) with n = the last
 * acked v, or n = v + 1 (one op may have completed without its ack): anything else is a lost
 * acknowledged write, a hole, or a resurrected delete. That child then goes on writing from n + 1.
 *
 * The test process itself never calls pkv: every open happens in a child forked from a process
 * with no pkv state, so no RCU or lock state is inherited across fork.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

#define WRITERS 2
#define SLOTS 32
#define CYCLES 20
#define CHILD_OP_LIMIT 200000 /* per writer and cycle; far beyond what a cycle acks */

enum msg_kind {
	MSG_ACK = 1,
	MSG_STATE = 2,
	MSG_ERROR = 3
};

/* 128 bytes: below PIPE_BUF, so the writers' messages never interleave. */
struct msg {
	uint32_t kind;
	uint32_t writer;
	uint64_t value;
	char text[112];
};

static int msg_fd;

static void send_msg(uint32_t kind, uint32_t writer, uint64_t value, const char *text)
{
	struct msg m;

	memset(&m, 0, sizeof(m));
	m.kind = kind;
	m.writer = writer;
	m.value = value;
	if (text)
		snprintf(m.text, sizeof(m.text), "%s", text);
	if (!tu_write_full(msg_fd, &m, sizeof(m)))
		_exit(4);
}

static void child_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void child_fail(const char *fmt, ...)
{
	char text[112];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	send_msg(MSG_ERROR, 0, 0, text);
	_exit(2);
}

/* ---- a writer's history -------------------------------------------------------------------- */

static bool op_is_delete(uint64_t v)
{
	/* The sweep before a delete sweep was a put sweep: a delete always finds its key. */
	return (v / SLOTS) % 4 == 3;
}

static size_t slot_key(char *k, uint32_t w, uint32_t slot)
{
	return (size_t)sprintf(k, "writer%u-slot%02u", w, slot);
}

static uint32_t fnv32(const unsigned char *p, size_t n)
{
	uint32_t h = 2166136261u;

	while (n--)
		h = (h ^ *p++) * 16777619u;
	return h;
}

/* writer u32, version u64, (v % 50) pattern bytes, fnv32 of what precedes. */
static size_t slot_val(unsigned char *out, uint32_t w, uint64_t v)
{
	size_t pad = (size_t)(v % 50), n = 12 + pad;
	uint32_t sum;

	memcpy(out, &w, 4);
	memcpy(out + 4, &v, 8);
	for (size_t i = 0; i < pad; i++)
		out[12 + i] = (unsigned char)(v * 31 + i);
	sum = fnv32(out, n);
	memcpy(out + n, &sum, 4);
	return n + 4;
}

/* The version slot @j holds in S_w(@n), or 0 if the slot is absent there. */
static uint64_t expected_slot(uint64_t n, uint32_t j)
{
	uint64_t u;

	if (n < j || n < 1)
		return 0;
	u = n - (n - j) % SLOTS;
	if (u < 1 || op_is_delete(u))
		return 0;
	return u;
}

/*
 * Read writer @w's slots and find the n in {@acked + 1, @acked} with state S_w(n). Fails the
 * child if there is none.
 */
static uint64_t verify_writer(pkv *db, uint32_t w, uint64_t acked, uint64_t *present)
{
	uint64_t have[SLOTS];
	unsigned char buf[128], expect[128];
	char k[32];

	for (uint32_t j = 0; j < SLOTS; j++) {
		size_t vlen;
		int rc = pkv_get(db, k, slot_key(k, w, j), buf, sizeof(buf), &vlen);

		have[j] = 0;
		if (rc == PKV_NOTFOUND)
			continue;
		if (rc)
			child_fail("get %s: %d (%s)", k, rc, pkv_strerror(rc));
		if (vlen < 16 || vlen > sizeof(buf))
			child_fail("%s has a value of %zu bytes", k, vlen);
		memcpy(&have[j], buf + 4, 8);
		if (have[j] == 0 || have[j] % SLOTS != j || slot_val(expect, w, have[j]) != vlen ||
		    memcmp(expect, buf, vlen) != 0)
			child_fail("%s holds a damaged or misplaced value", k);
	}
	for (uint64_t n = acked + 1;; n--) {
		bool match = true;

		for (uint32_t j = 0; j < SLOTS && match; j++)
			match = have[j] == expected_slot(n, j);
		if (match) {
			*present = 0;
			for (uint32_t j = 0; j < SLOTS; j++)
				*present += have[j] != 0;
			return n;
		}
		if (n == acked || n == 0)
			break;
	}
	for (uint32_t j = 0; j < SLOTS; j++)
		if (have[j] != expected_slot(acked, j))
			child_fail("writer %u acked %llu: slot %u holds %llu, expected %llu", w,
				   (unsigned long long)acked, j, (unsigned long long)have[j],
				   (unsigned long long)expected_slot(acked, j));
	child_fail("writer %u: no state matches", w);
}

/* ---- the child ----------------------------------------------------------------------------- */

struct child_writer {
	pkv *db;
	uint32_t id;
	uint64_t start;
	bool compact;
};

static void *child_writer_main(void *p)
{
	struct child_writer *cw = p;
	unsigned char val[128];
	char k[32];

	for (uint64_t v = cw->start; v < cw->start + CHILD_OP_LIMIT; v++) {
		uint32_t j = (uint32_t)(v % SLOTS);
		size_t kl = slot_key(k, cw->id, j);
		int rc;

		if (op_is_delete(v))
			rc = pkv_del(cw->db, k, kl);
		else
			rc = pkv_put(cw->db, k, kl, val, slot_val(val, cw->id, v));
		if (rc)
			child_fail("writer %u op %llu: %d (%s)", cw->id, (unsigned long long)v, rc,
				   pkv_strerror(rc));
		send_msg(MSG_ACK, cw->id, v, NULL);
		/* A compaction racing the writers now and then: it too must survive a kill. */
		if (cw->compact && v == cw->start + 300) {
			rc = pkv_compact(cw->db);
			if (rc)
				child_fail("pkv_compact: %d (%s)", rc, pkv_strerror(rc));
		}
	}
	return NULL;
}

static void child_opts(pkv_options *o)
{
	tu_opts(o, PKV_DURABLE_PROCESS);
	o->wal_segment_bytes = 256u << 10;
}

static void __attribute__((noreturn))
child_main(pid_t parent, const uint64_t *acked, bool verify_only, bool compact)
{
	struct child_writer cw[WRITERS];
	pthread_t t[WRITERS];
	pkv_options o;
	pkv *db = NULL;
	uint64_t keys = 0;
	int rc;

	/* Never outlive the test: if the parent goes, so does the child. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(5);
	child_opts(&o);
	rc = pkv_open(tu_db, &o, &db);
	if (rc)
		child_fail("open after kill: %d (%s)", rc, pkv_strerror(rc));
	for (uint32_t w = 0; w < WRITERS; w++) {
		uint64_t present;

		cw[w] = (struct child_writer){ .db = db, .id = w, .compact = compact && w == 0 };
		cw[w].start = verify_writer(db, w, acked[w], &present) + 1;
		keys += present;
		send_msg(MSG_STATE, w, cw[w].start - 1, NULL);
	}
	{
		pkv_stats st;

		if (pkv_get_stats(db, &st) || st.keys != keys)
			child_fail("stats.keys %llu, the writers' slots hold %llu",
				   (unsigned long long)st.keys, (unsigned long long)keys);
	}
	if (!verify_only) {
		for (uint32_t w = 0; w < WRITERS; w++)
			if (pthread_create(&t[w], NULL, child_writer_main, &cw[w]))
				child_fail("pthread_create");
		for (uint32_t w = 0; w < WRITERS; w++)
			pthread_join(t[w], NULL);
	}
	rc = pkv_close(db);
	if (rc)
		child_fail("close: %d (%s)", rc, pkv_strerror(rc));
	_exit(0);
}

/* ---- the parent ---------------------------------------------------------------------------- */

struct run {
	uint64_t acked[WRITERS];
	uint64_t acks; /* acks read in this cycle */
	int states; /* MSG_STATE messages in this cycle */
	char error[160];
};

static bool take_msg(struct run *r, int fd)
{
	struct msg m;

	if (tu_read_full(fd, &m, sizeof(m)) != sizeof(m))
		return false;
	m.text[sizeof(m.text) - 1] = '\0';
	switch (m.kind) {
	case MSG_ACK:
		cr_assert_lt(m.writer, WRITERS);
		/* Each writer acks in order; the next child's check relies on it. */
		cr_assert_gt(m.value, r->acked[m.writer], "writer %u acked %llu after %llu",
			     m.writer, (unsigned long long)m.value,
			     (unsigned long long)r->acked[m.writer]);
		r->acked[m.writer] = m.value;
		r->acks++;
		break;
	case MSG_STATE:
		cr_assert_lt(m.writer, WRITERS);
		if (m.value > r->acked[m.writer])
			r->acked[m.writer] = m.value;
		r->states++;
		break;
	case MSG_ERROR:
	default:
		if (!r->error[0])
			snprintf(r->error, sizeof(r->error), "%s", m.text);
		break;
	}
	return true;
}

static pid_t spawn(struct run *r, int *rfd, bool verify_only, bool compact)
{
	int fd[2];
	pid_t parent = getpid(), pid;

	cr_assert_eq(pipe(fd), 0);
	pid = fork();
	cr_assert(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		close(fd[0]);
		msg_fd = fd[1];
		child_main(parent, r->acked, verify_only, compact);
	}
	close(fd[1]);
	*rfd = fd[0];
	r->acks = 0;
	r->states = 0;
	return pid;
}

Test(kill9, acked_writes_survive, .init = tu_setup, .fini = tu_teardown, .timeout = 240)
{
	struct run r;
	uint64_t rng = 0x4b494c4c39ull, total = 0;
	int status, fd;
	pid_t pid;

	memset(&r, 0, sizeof(r));
	/* The store exists before the first kill, so even a kill during the first open is a crash
	 * of an existing store and not of its creation. */
	pid = spawn(&r, &fd, true, false);
	while (take_msg(&r, fd))
		;
	close(fd);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert_str_empty(r.error, "creating the store: %s", r.error);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);

	for (int c = 0; c < CYCLES; c++) {
		/* Every fifth cycle dies at once, maybe inside recovery; the others after 1..2500
		 * acks. */
		uint64_t target = c % 5 == 0 ? 0 : 1 + tu_rand(&rng) % 2500;
		bool eof = false;

		pid = spawn(&r, &fd, false, c % 4 == 3);
		while (r.acks < target && !r.error[0])
			if (!take_msg(&r, fd)) {
				eof = true;
				break;
			}
		kill(pid, SIGKILL);
		cr_assert_eq(waitpid(pid, &status, 0), pid);
		/* What the child acked before it died is in the pipe: it counts too. */
		while (take_msg(&r, fd))
			;
		close(fd);
		cr_assert_str_empty(r.error, "cycle %d: %s", c, r.error);
		cr_assert(!eof || (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL),
			  "cycle %d: the child stopped by itself (status %#x)", c, status);
		total += r.acks;
	}

	/* A last open checks the last kill, then closes cleanly; and once more after that. */
	for (int i = 0; i < 2; i++) {
		pid = spawn(&r, &fd, true, false);
		while (take_msg(&r, fd))
			;
		close(fd);
		cr_assert_eq(waitpid(pid, &status, 0), pid);
		cr_assert_str_empty(r.error, "final check: %s", r.error);
		cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "final check: status %#x",
			  status);
		cr_assert_eq(r.states, WRITERS);
	}
	cr_assert_gt(total, 10000, "only %llu writes were acknowledged", (unsigned long long)total);
}
