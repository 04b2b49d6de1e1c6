/* SPDX-License-Identifier: MIT */
/*
 * linearize.c - linearizability check of pkv_put / pkv_get / pkv_del.
 *
 * Records many short concurrent histories on a few keys and checks each one against the model
 * of a register, the way Knossos and porcupine do: Wing & Gong's search for a linearization,
 * with Lowe's memoization of (set of linearized operations, model state). Keys are independent
 * registers, so a history is checked key by key (P-compositionality).
 *
 * Recording. A history has 10 .. --ops operations spread over --threads worker threads, on 1 ..
 * --keys keys, in a random mix of puts, gets and deletes (the plan is a function of --seed and
 * the history's number). The workers are pinned to the CPUs in turn and leave the start line
 * together (start_line()), so that about half of the operations overlap another on their key even
 * on busy cores (the figure is printed: a history without overlap tests little). Every put writes a
 * value that no other put of the run writes (its id, and a body derived from it), so a get says
 * which put it saw; a value that does not decode is recorded as such and no put explains it. Around
 * every call the worker takes its invocation time before the call and its response time after it
 * returns (stamp(): CLOCK_MONOTONIC between fences), so that "A returned before B was invoked", the
 * only order the checker relies on, is an order the hardware really observed. Each history opens
 * and closes with a get of every key by the coordinating thread while no worker runs: the closing
 * read, once checked, is the initial state of the next history on the same keys, and the opening
 * read checks that nothing changed the key in between (a compaction, a close and reopen).
 *
 * The register model. State: absent, or a value id.
 *   put(v)  -> 0; the state becomes v.
 *   del     -> 0 if present, PKV_NOTFOUND if absent (the return code is part of the
 *              observation); the state becomes absent.
 *   get     -> the state's value, or PKV_NOTFOUND if absent.
 * Any other return code fails the history outright (this driver provokes no error).
 *
 * The checker (lin_check) keeps the calls and returns of one key's operations in a list sorted
 * by time (a call before a return at the same instant: touching operations count as concurrent)
 * and tries to linearize the first pending call whose operation the model accepts; reaching a
 * return whose call is not linearized backtracks. A (bitset, state) pair already explored is not
 * explored again. The search is bounded by --max-states explored pairs: a key that reaches the
 * bound is "inconclusive", reported and counted apart, never as passed.
 *
 * Self-test (every run, before anything else): crafted histories that are not linearizable (a
 * stale read after a completed put, a delete that finds nothing after a completed put, a read of
 * a value never written, ...) must be rejected, tricky linearizable ones (overlapping puts seen in
 * either order, touching intervals, reads that need backtracking) must be accepted; so must
 * hundreds of random histories linearizable by construction, while each random sequential history
 * with one observation changed must be rejected, and a search over the state bound must come out
 * inconclusive. A checker that cannot fail is a defect, so a self-test failure fails the run.
 *
 * Variants (--variant, a comma list; "all" by default; each gets an equal share of what is left
 * of --histories and --seconds):
 *   mem      pkv_open(NULL, ...)
 *   disk     a store on disk (--durability, PROCESS by default), 64 KiB WAL segments (frequent
 *            roll-overs) and automatic compaction at its lowest threshold
 *   compact  as disk, plus a thread calling pkv_compact() every ~--compact-ms, so keys move from
 *            the live map into the snapshot and back (tombstones) while histories run
 *   reopen   as compact, plus pkv_close() and pkv_open() between histories (--reopen-every)
 *
 * A violation prints the key's history and its core (lin_core()): the history cut at the
 * earliest response from which it cannot be linearized (operations still running then are
 * pending), minus every read it does without. Both steps keep linearizable histories
 * linearizable, so the core alone proves the violation. A history that does not finish within
 * --hang-seconds is reported as a hang and ends the run.
 *
 * Figures, per variant and in all: histories, operations, per-key checks (linearizable,
 * violations, inconclusive, errors), the largest search, the share of the workers' operations
 * that overlapped another on the same key, compactions and reopens; a closing line
 * "N passed, M failed" (N: per-key checks and self-test cases that passed; M: violations, failed
 * self-test cases and errors). Exit status 1 if anything failed.
 *
 * Usage: linearize [--histories N] [--seconds S] [--threads T] [--keys K] [--ops N] [--seed X]
 *                  [--variant mem,disk,compact,reopen|all] [--durability process|power|periodic]
 *                  [--compact-ms N] [--reopen-every N] [--max-states N] [--hang-seconds N]
 *                  [--dir PARENT] [--selftest] [--quiet]
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pkv.h"
#include "stress_util.h"

#define MAX_THREADS 16
#define MAX_KEYS 16
#define MIN_OPS 10
#define MAX_OPS 512 /* worker operations in one history */
/* One key's operations in a history: the workers', an opening and a closing read. */
#define MAX_KOPS (MAX_OPS + 2)
#define MAX_FAIL_PRINT 3 /* violations printed in full; later ones are counted */
#define KEY_CAP 160
#define VHDR 16 /* value: id (8 bytes), key index (4), body length (4), then the body */
#define VBUF 4096 /* get buffer; every value written is shorter */
#define SELFTEST_RANDOM 300
#define START_SPINS 2000 /* busy waits at the start line before giving up on a partner */

/* ---- operations ----------------------------------------------------------------------------- */

enum op_kind {
	OP_PUT,
	OP_GET,
	OP_DEL
};

#define ABSENT 0 /* model state and get result: the key is absent (PKV_NOTFOUND) */
#define VAL_GARBAGE UINT64_MAX /* get result: a value that does not decode */
#define DEL_OK 0 /* del result: 0 */
#define DEL_NOTFOUND 1 /* del result: PKV_NOTFOUND */
#define PENDING INT64_MAX /* response time of an operation cut off by lin_core() */

/* One recorded operation. Value ids are never ABSENT nor VAL_GARBAGE. */
struct rec {
	int64_t call; /* invocation time, ns (stamp()) */
	int64_t ret; /* response time, ns */
	uint64_t arg; /* put: the value id written */
	uint64_t out; /* get: the value id read, ABSENT or VAL_GARBAGE; del: DEL_OK, DEL_NOTFOUND */
	int rc; /* the call's return code */
	uint8_t kind; /* enum op_kind */
	uint8_t thread; /* worker index; cfg.threads for the coordinating thread */
	uint8_t key; /* key index in the history */
};

/*
 * The register model: may @o take the state from @s, and to what? A pending operation (no
 * response) constrains nothing by its result: it may take effect, or never.
 */
static bool reg_step(uint64_t s, const struct rec *o, uint64_t *next /* OUT */)
{
	bool pending = o->ret == PENDING;

	switch (o->kind) {
	case OP_PUT:
		*next = o->arg;
		return true;
	case OP_DEL:
		*next = ABSENT;
		return pending || o->out == (s == ABSENT ? DEL_NOTFOUND : DEL_OK);
	case OP_GET:
		*next = s;
		return pending || o->out == s;
	}
	return false;
}

/* ---- the checker: Wing & Gong's search with Lowe's memoization ------------------------------ */

enum lin_result {
	LIN_OK,
	LIN_VIOLATION,
	LIN_INCONCLUSIVE
};

struct lin_event {
	int64_t t;
	uint32_t op;
	uint32_t is_ret;
};

struct lin_frame {
	int node;
	uint64_t state;
};

/*
 * Scratch space of the checker, reused from check to check. Nodes: 0 is the list head, nodes
 * 1 .. 2n are the calls and returns in time order.
 */
struct checker {
	size_t max_states; /* bound on explored (bitset, state) pairs */
	struct lin_event ev[2 * MAX_KOPS];
	int prev[2 * MAX_KOPS + 1], next[2 * MAX_KOPS + 1];
	int match[2 * MAX_KOPS + 1]; /* call node -> its return node; -1 for a return */
	uint32_t opof[2 * MAX_KOPS + 1];
	struct lin_frame stack[MAX_KOPS];
	uint64_t lin[(MAX_KOPS + 63) / 64]; /* which operations are linearized */
	unsigned words;
	/* memo: a hash set of (bitset, state) entries of words + 1 uint64 each */
	uint64_t *arena;
	size_t nentries; /* entries of words + 1 uint64 each */
	size_t arena_cap; /* uint64s allocated */
	uint32_t *slots; /* 0: empty; else entry index + 1 */
	size_t nslots, slots_cap; /* nslots: power of two in use; slots_cap: allocated */
};

static int ev_cmp(const void *pa, const void *pb)
{
	const struct lin_event *a = pa, *b = pb;

	if (a->t != b->t)
		return a->t < b->t ? -1 : 1;
	/* A call before a return at the same instant: such operations are concurrent. */
	if (a->is_ret != b->is_ret)
		return a->is_ret ? 1 : -1;
	return a->op < b->op ? -1 : a->op > b->op;
}

static uint64_t memo_hash(const uint64_t *e, unsigned n)
{
	uint64_t h = 0x6c696e6561726a7aull;

	for (unsigned i = 0; i < n; i++)
		h = su_mix64(h ^ e[i]);
	return h;
}

static int memo_grow(struct checker *c)
{
	size_t ns = c->nslots * 2;
	size_t w = c->words + 1;

	if (ns > c->slots_cap) {
		uint32_t *s = realloc(c->slots, ns * sizeof(*s));

		if (s == NULL)
			return -1;
		c->slots = s;
		c->slots_cap = ns;
	}
	c->nslots = ns;
	memset(c->slots, 0, ns * sizeof(*c->slots));
	for (size_t i = 0; i < c->nentries; i++) {
		size_t j = memo_hash(c->arena + i * w, (unsigned)w) & (ns - 1);

		while (c->slots[j] != 0)
			j = (j + 1) & (ns - 1);
		c->slots[j] = (uint32_t)(i + 1);
	}
	return 0;
}

/* Add (c->lin, state) to the memo. Returns 1 if added, 0 if it was there, -1 at the bound. */
static int memo_add(struct checker *c, uint64_t state)
{
	size_t w = c->words + 1;
	uint64_t key[(MAX_KOPS + 63) / 64 + 1];
	size_t j;

	memcpy(key, c->lin, c->words * sizeof(uint64_t));
	key[c->words] = state;
	j = memo_hash(key, (unsigned)w) & (c->nslots - 1);
	while (c->slots[j] != 0) {
		if (memcmp(c->arena + (c->slots[j] - 1) * w, key, w * sizeof(uint64_t)) == 0)
			return 0;
		j = (j + 1) & (c->nslots - 1);
	}
	if (c->nentries >= c->max_states)
		return -1;
	if ((c->nentries + 1) * w > c->arena_cap) {
		size_t cap = c->arena_cap ? c->arena_cap * 2 : 65536;
		uint64_t *a = realloc(c->arena, cap * sizeof(uint64_t));

		if (a == NULL)
			return -1;
		c->arena = a;
		c->arena_cap = cap;
	}
	memcpy(c->arena + c->nentries * w, key, w * sizeof(uint64_t));
	c->slots[j] = (uint32_t)++c->nentries;
	if (c->nentries * 2 > c->nslots && memo_grow(c) != 0)
		return -1;
	return 1;
}

static void lift(struct checker *c, int call)
{
	int ret = c->match[call];

	c->next[c->prev[call]] = c->next[call];
	c->prev[c->next[call]] = c->prev[call]; /* a call is never last: its return follows */
	c->next[c->prev[ret]] = c->next[ret];
	if (c->next[ret] >= 0)
		c->prev[c->next[ret]] = c->prev[ret];
}

/* Undo lift(): the return first, then the call (the reverse order of removal). */
static void unlift(struct checker *c, int call)
{
	int ret = c->match[call];

	c->next[c->prev[ret]] = ret;
	if (c->next[ret] >= 0)
		c->prev[c->next[ret]] = ret;
	c->next[c->prev[call]] = call;
	c->prev[c->next[call]] = call;
}

/*
 * lin_check() - is the history @ops[0 .. @n) of one key, starting from state @init,
 * linearizable with respect to the register model?
 * @explored: OUT: (bitset, state) pairs the search explored.
 * Returns: LIN_OK, LIN_VIOLATION, or LIN_INCONCLUSIVE (c->max_states reached, or no memory).
 */
static enum lin_result lin_check(struct checker *c, const struct rec *ops, unsigned n,
				 uint64_t init, size_t *explored)
{
	unsigned depth = 0, open = 0;
	uint64_t state = init;
	int node[2 * MAX_KOPS];
	int entry;
	enum lin_result res = LIN_OK;

	*explored = 0;
	for (unsigned i = 0; i < n; i++)
		open += ops[i].ret != PENDING;
	if (open == 0)
		return LIN_OK;
	for (unsigned i = 0; i < n; i++) {
		c->ev[2 * i] = (struct lin_event){ .t = ops[i].call, .op = i, .is_ret = 0 };
		c->ev[2 * i + 1] = (struct lin_event){ .t = ops[i].ret, .op = i, .is_ret = 1 };
	}
	qsort(c->ev, 2 * (size_t)n, sizeof(c->ev[0]), ev_cmp);
	for (unsigned i = 0; i < 2 * n; i++) {
		int nd = (int)i + 1;

		c->prev[nd] = nd - 1;
		c->next[nd] = i + 1 < 2 * n ? nd + 1 : -1;
		c->opof[nd] = c->ev[i].op;
		c->match[nd] = -1;
		if (!c->ev[i].is_ret)
			node[c->ev[i].op] = nd;
		else
			c->match[node[c->ev[i].op]] = nd;
	}
	c->next[0] = 1;
	c->prev[0] = -1;
	c->words = (n + 63) / 64;
	memset(c->lin, 0, sizeof(c->lin));
	c->nentries = 0;
	c->nslots = 1024;
	if (c->slots_cap < c->nslots) {
		uint32_t *s = realloc(c->slots, c->nslots * sizeof(*s));

		if (s == NULL)
			return LIN_INCONCLUSIVE;
		c->slots = s;
		c->slots_cap = c->nslots;
	}
	memset(c->slots, 0, c->nslots * sizeof(*c->slots));

	/*
	 * Done when every completed operation is linearized: a pending one may stay out (it never
	 * took effect). Pending returns sort last, so a completed return is always met first.
	 */
	entry = c->next[0];
	while (open > 0) {
		if (c->match[entry] >= 0) {
			uint32_t op = c->opof[entry];
			uint64_t ns;

			if (reg_step(state, &ops[op], &ns)) {
				int added;

				c->lin[op / 64] |= 1ull << (op % 64);
				added = memo_add(c, ns);
				if (added < 0) {
					res = LIN_INCONCLUSIVE;
					break;
				}
				if (added) {
					c->stack[depth++] = (struct lin_frame){ entry, state };
					state = ns;
					open -= ops[op].ret != PENDING;
					lift(c, entry);
					entry = c->next[0];
					continue;
				}
				c->lin[op / 64] &= ~(1ull << (op % 64));
			}
			entry = c->next[entry];
		} else {
			/* A return whose call no order so far could linearize: backtrack. */
			struct lin_frame f;

			if (depth == 0) {
				res = LIN_VIOLATION;
				break;
			}
			f = c->stack[--depth];
			entry = f.node;
			state = f.state;
			c->lin[c->opof[entry] / 64] &= ~(1ull << (c->opof[entry] % 64));
			open += ops[c->opof[entry]].ret != PENDING;
			unlift(c, entry);
			entry = c->next[entry];
		}
	}
	*explored = c->nentries;
	return res;
}

/*
 * The operations of @ops invoked at or before @t, those still running at @t pending (a pending
 * read constrains nothing and is left out). Returns the count stored in @out.
 */
static unsigned lin_prefix(const struct rec *ops, unsigned n, int64_t t, struct rec *out)
{
	unsigned m = 0;

	for (unsigned i = 0; i < n; i++) {
		if (ops[i].call > t || (ops[i].kind == OP_GET && ops[i].ret > t))
			continue;
		out[m] = ops[i];
		if (out[m].ret > t)
			out[m].ret = PENDING;
		m++;
	}
	return m;
}

static int int64_cmp(const void *pa, const void *pb)
{
	int64_t a = *(const int64_t *)pa, b = *(const int64_t *)pb;

	return (a > b) - (a < b);
}

/*
 * lin_core() - shrink the non-linearizable history @ops (@n operations, from @init) to a core
 * that is still not linearizable, in place; returns its length. Both steps keep the core a
 * proof of the violation:
 *  1. Cut it at the earliest response time t at which it is already not linearizable, the
 *     operations still running at t pending. A linearizable history has linearizable prefixes
 *     (complete a pending operation or drop it), so the cut is monotone and found by bisection.
 *  2. Drop every read whose removal leaves it non-linearizable. Dropping a read never makes a
 *     linearizable history non-linearizable, and one pass leaves no read that could still go.
 */
static unsigned lin_core(struct checker *c, struct rec *ops, unsigned n, uint64_t init)
{
	struct rec *trial = malloc(MAX_KOPS * sizeof(*trial));
	int64_t *rets = malloc(MAX_KOPS * sizeof(*rets));
	unsigned lo = 0, hi, m;
	size_t explored;

	if (trial == NULL || rets == NULL || n == 0)
		goto out;
	hi = n - 1;
	for (unsigned i = 0; i < n; i++)
		rets[i] = ops[i].ret;
	qsort(rets, n, sizeof(*rets), int64_cmp);
	/* The whole history (hi: the last response) is not linearizable. */
	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;

		m = lin_prefix(ops, n, rets[mid], trial);
		if (lin_check(c, trial, m, init, &explored) == LIN_VIOLATION)
			hi = mid;
		else
			lo = mid + 1;
	}
	m = lin_prefix(ops, n, rets[hi], trial);
	if (lin_check(c, trial, m, init, &explored) != LIN_VIOLATION)
		goto out; /* cannot happen; keep the whole history */
	memcpy(ops, trial, m * sizeof(*ops));
	n = m;

	for (unsigned i = 0; i < n;) {
		m = 0;
		if (ops[i].kind != OP_GET || ops[i].ret == PENDING) {
			i++;
			continue;
		}
		for (unsigned j = 0; j < n; j++)
			if (j != i)
				trial[m++] = ops[j];
		if (lin_check(c, trial, m, init, &explored) == LIN_VIOLATION) {
			memcpy(ops, trial, m * sizeof(*ops));
			n = m;
		} else {
			i++;
		}
	}
out:
	free(trial);
	free(rets);
	return n;
}

/* ---- configuration and figures -------------------------------------------------------------- */

struct cfg {
	uint64_t histories; /* 0: no bound */
	double seconds; /* 0: no bound */
	unsigned threads;
	unsigned keys;
	unsigned ops;
	uint64_t seed;
	unsigned variants; /* bit set of enum variant */
	enum pkv_durability durability;
	unsigned compact_ms;
	unsigned reopen_every;
	uint64_t max_states;
	unsigned hang_seconds;
	const char *parent;
	bool selftest_only;
	bool quiet;
};

static struct cfg cfg = {
	.histories = 0,
	.seconds = 0,
	.threads = 4,
	.keys = 3,
	.ops = 200,
	.seed = 1,
	.variants = 0,
	.durability = PKV_DURABLE_PROCESS,
	.compact_ms = 3,
	.reopen_every = 1,
	.max_states = 1000000,
	.hang_seconds = 120,
	.parent = NULL,
	.selftest_only = false,
	.quiet = false,
};

enum variant {
	V_MEM,
	V_DISK,
	V_COMPACT,
	V_REOPEN,
	V_COUNT
};

static const char *const variant_names[V_COUNT + 1] = { "mem", "disk", "compact", "reopen" };

struct figures {
	uint64_t histories, ops, key_checks, passed, violations, inconclusive, errors;
	uint64_t worker_ops, overlapped, max_states, reopens;
	uint64_t compactions; /* completed, per pkv_get_stats (automatic ones too) */
	uint64_t compact_calls; /* pkv_compact calls of the compactor thread */
	double seconds;
};

static uint64_t total_passed, total_failed;
static unsigned violations_printed;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
	va_list ap;

	total_failed++;
	fputs("FAIL: ", stdout);
	va_start(ap, fmt);
	vfprintf(stdout, fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
}

/* ---- time ----------------------------------------------------------------------------------- */

/*
 * stamp() - CLOCK_MONOTONIC in ns, ordered with the memory accesses around it. Before the
 * clock read, MFENCE;LFENCE: every earlier load has completed and every earlier store is
 * globally visible (a response time is taken only once the call's effects can be seen by
 * others). After it, LFENCE: nothing later starts before the clock was read (an invocation time
 * is taken before the call touches memory). Intel SDM, RDTSC. CLOCK_MONOTONIC is one clock for
 * every CPU, so comparing stamps of different threads is meaningful. The fences are inline
 * assembly, invisible to TSan, and they order the hardware, not the C program: the history is
 * handed to the checker through barriers.
 */
static int64_t stamp(void)
{
	struct timespec ts;

#if defined(__x86_64__) || defined(__i386__)
	__asm__ __volatile__("mfence; lfence" ::: "memory");
	clock_gettime(CLOCK_MONOTONIC, &ts);
	__asm__ __volatile__("lfence" ::: "memory");
#else
	atomic_signal_fence(memory_order_seq_cst);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	atomic_signal_fence(memory_order_seq_cst);
#endif
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

/* ---- keys and values ------------------------------------------------------------------------ */

/* Key @k of generation @gen (a key is renamed after a violation): "lin:<k>:<gen>:" padded. */
static size_t key_name(unsigned k, unsigned gen, char *buf /* OUT: KEY_CAP bytes */)
{
	int n = snprintf(buf, KEY_CAP, "lin:%u:%u:", k, gen);
	size_t len = (size_t)n;
	size_t want = len + (k * 37u) % 29u + (k == 3 ? 100 : 0);

	memset(buf + len, 'a' + (int)(k % 26), want - len);
	return want;
}

static uint32_t body_len_of(uint64_t id)
{
	uint64_t h = su_mix64(id ^ 0xb0d1e5ull);

	return (h & 63) == 0 ? (uint32_t)((h >> 8) % 2000) : (uint32_t)((h >> 8) % 48);
}

static size_t make_value(uint64_t id, unsigned k, unsigned char *buf /* OUT: VBUF bytes */)
{
	uint32_t key = k, len = body_len_of(id);

	memcpy(buf, &id, 8);
	memcpy(buf + 8, &key, 4);
	memcpy(buf + 12, &len, 4);
	su_fill(buf + VHDR, len, id);
	return VHDR + len;
}

/* The value id that @buf (@len bytes, the whole value) holds for key @k, or VAL_GARBAGE. */
static uint64_t decode_value(const unsigned char *buf, size_t len, unsigned k,
			     unsigned char *scratch /* VBUF bytes */)
{
	uint64_t id;
	uint32_t key, blen;

	if (len < VHDR || len > VBUF)
		return VAL_GARBAGE;
	memcpy(&id, buf, 8);
	memcpy(&key, buf + 8, 4);
	memcpy(&blen, buf + 12, 4);
	if (id == ABSENT || id == VAL_GARBAGE || key != k || blen != body_len_of(id) ||
	    len != VHDR + blen)
		return VAL_GARBAGE;
	su_fill(scratch, blen, id);
	if (memcmp(scratch, buf + VHDR, blen) != 0)
		return VAL_GARBAGE;
	return id;
}

/* Value ids: history (from 1), thread, and the operation's index in the thread. */
static uint64_t value_id(uint64_t hist, unsigned t, unsigned i)
{
	return ((hist + 1) << 24) | ((uint64_t)t << 16) | i;
}

static void print_value(char *buf, size_t cap, uint64_t id)
{
	if (id == ABSENT)
		snprintf(buf, cap, "absent");
	else if (id == VAL_GARBAGE)
		snprintf(buf, cap, "GARBAGE (a value no put wrote)");
	else
		snprintf(buf, cap, "v%" PRIu64 ".t%u.%u", (id >> 24) - 1,
			 (unsigned)(id >> 16) & 0xff, (unsigned)(id & 0xffff));
}

/* ---- the store and its threads -------------------------------------------------------------- */

static pkv *db; /* the current variant's store; changed only under db_mu, with the workers idle */
static pthread_mutex_t db_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned key_gen[MAX_KEYS]; /* written by the coordinator between histories */

struct worker {
	pthread_t tid;
	unsigned id;
	unsigned n; /* operations in the current history */
	struct rec ops[MAX_OPS]; /* the plan (kind, key, arg) on entry, the record on exit */
	unsigned pause[MAX_OPS]; /* spin before operation i (0: none; UINT32_MAX: sched_yield) */
	unsigned char buf[VBUF];
	unsigned char scratch[VBUF];
};

static struct worker workers[MAX_THREADS];
static pthread_barrier_t bar_start, bar_done;
static atomic_uint arrived; /* workers that reached the start line, over the whole run */
static atomic_uint started; /* workers that left it, over the whole run */
static atomic_int quit;

/* Heartbeats of the workers waiting at the start line, a cache line each. */
static struct {
	atomic_uint n;
	char pad[64 - sizeof(atomic_uint)];
} beat[MAX_THREADS];

/*
 * Wait at the start line of round @round. A blocking barrier wakes threads tens of microseconds
 * apart, as long as a whole history takes in memory, and on busy cores the workers that are
 * ready are seldom on a CPU at the same moment. So a worker leaves when it sees another worker's
 * heartbeat move (that one is on a CPU now, and both leave together), when a worker already left
 * (it is late), or after START_SPINS rounds (and then yields, for the workers still waiting for a
 * core).
 */
static void start_line(unsigned id, unsigned round)
{
	unsigned seen[MAX_THREADS];
	unsigned goal = round * cfg.threads;

	atomic_fetch_add(&arrived, 1);
	for (unsigned t = 0; t < cfg.threads; t++)
		seen[t] = atomic_load_explicit(&beat[t].n, memory_order_relaxed);
	for (unsigned spins = 0;; spins++) {
		atomic_fetch_add_explicit(&beat[id].n, 1, memory_order_relaxed);
		if (atomic_load(&started) > goal - cfg.threads)
			break;
		if (atomic_load(&arrived) >= goal) {
			bool moved = false;

			for (unsigned t = 0; t < cfg.threads && !moved; t++) {
				unsigned b = atomic_load_explicit(&beat[t].n, memory_order_relaxed);

				moved = t != id && b != seen[t];
			}
			if (moved || spins >= START_SPINS)
				break;
		} else if (spins >= START_SPINS) {
			sched_yield();
		}
		cpu_relax();
	}
	atomic_fetch_add(&started, 1);
}

/* Run the call @r describes and record it. */
static void run_op(struct rec *r, unsigned char *buf, unsigned char *scratch)
{
	char key[KEY_CAP];
	size_t klen = key_name(r->key, key_gen[r->key], key);
	size_t vlen = 0;

	switch (r->kind) {
	case OP_PUT:
		vlen = make_value(r->arg, r->key, buf);
		r->call = stamp();
		r->rc = pkv_put(db, key, klen, buf, vlen);
		r->ret = stamp();
		r->out = 0;
		break;
	case OP_DEL:
		r->call = stamp();
		r->rc = pkv_del(db, key, klen);
		r->ret = stamp();
		r->out = r->rc == PKV_NOTFOUND ? DEL_NOTFOUND : DEL_OK;
		break;
	case OP_GET:
		r->call = stamp();
		r->rc = pkv_get(db, key, klen, buf, VBUF, &vlen);
		r->ret = stamp();
		r->out = r->rc == 0 ? decode_value(buf, vlen, r->key, scratch) : ABSENT;
		break;
	}
}

/*
 * Worker t runs on CPU t mod n of the CPUs allowed. Woken by the coordinator's barrier, the
 * workers would otherwise all be queued on the coordinator's CPU (wake-affine) and take turns:
 * on 2 busy cores, 0.1% of the operations in memory overlapped another on their key unpinned,
 * 45% pinned (with the pauses below).
 */
static void pin_worker(unsigned id)
{
	cpu_set_t allowed, one;
	unsigned n = 0;

	if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0 || CPU_COUNT(&allowed) < 2)
		return;
	for (int c = 0; c < CPU_SETSIZE; c++) {
		if (CPU_ISSET(c, &allowed) && n++ == id % (unsigned)CPU_COUNT(&allowed)) {
			CPU_ZERO(&one);
			CPU_SET(c, &one);
			pthread_setaffinity_np(pthread_self(), sizeof(one), &one);
			return;
		}
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	unsigned round = 0;

	pin_worker(w->id);
	for (;;) {
		pthread_barrier_wait(&bar_start);
		if (atomic_load(&quit))
			break;
		start_line(w->id, ++round);
		for (unsigned i = 0; i < w->n; i++) {
			if (w->pause[i] == UINT32_MAX)
				sched_yield();
			for (unsigned s = 0; s < w->pause[i] && w->pause[i] != UINT32_MAX; s++)
				cpu_relax();
			run_op(&w->ops[i], w->buf, w->scratch);
		}
		pthread_barrier_wait(&bar_done);
	}
	return NULL;
}

struct compactor {
	pthread_t tid;
	atomic_int stop;
	uint64_t seed;
	uint64_t calls, errors;
	int last_rc;
};

static void *compactor_main(void *arg)
{
	struct compactor *c = arg;
	struct su_rng rng;

	su_rng_seed(&rng, c->seed);
	while (!atomic_load(&c->stop)) {
		int rc;

		su_sleep_ms((double)cfg.compact_ms * (double)su_rng_below(&rng, 2001) / 1000.0);
		pthread_mutex_lock(&db_mu);
		rc = pkv_compact(db);
		pthread_mutex_unlock(&db_mu);
		c->calls++;
		if (rc != 0) {
			c->errors++;
			c->last_rc = rc;
		}
	}
	return NULL;
}

/* ---- one history ---------------------------------------------------------------------------- */

/* The history being checked, for the hang report. */
static char hang_msg[256];

static void on_alarm(int sig)
{
	ssize_t r;

	(void)sig;
	r = write(STDOUT_FILENO, hang_msg, strlen(hang_msg));
	(void)r;
	r = write(STDOUT_FILENO, "0 passed, 1 failed\n", 19);
	(void)r;
	_exit(1);
}

/* Per-history parameters, drawn from (seed, history number) alone. */
struct plan {
	unsigned nkeys, nops;
	unsigned put_pct, del_pct;
};

static void make_plan(uint64_t hist, struct plan *p)
{
	struct su_rng rng;
	static const unsigned mix[3][2] = { { 45, 15 }, { 25, 10 }, { 40, 40 } };
	unsigned m;

	su_rng_seed(&rng, su_hash3(cfg.seed, hist, 0x91a4));
	p->nkeys = 1 + (unsigned)su_rng_below(&rng, cfg.keys);
	p->nops = cfg.ops <= MIN_OPS ?
			  cfg.ops :
			  MIN_OPS + (unsigned)su_rng_below(&rng, cfg.ops - MIN_OPS + 1);
	m = (unsigned)su_rng_below(&rng, 3);
	p->put_pct = mix[m][0];
	p->del_pct = mix[m][1];
	for (unsigned t = 0; t < cfg.threads; t++) {
		struct worker *w = &workers[t];

		su_rng_seed(&rng, su_hash3(cfg.seed, hist, t + 1));
		w->n = p->nops / cfg.threads + (t < p->nops % cfg.threads);
		for (unsigned i = 0; i < w->n; i++) {
			struct rec *r = &w->ops[i];
			unsigned x = (unsigned)su_rng_below(&rng, 100);
			unsigned y = (unsigned)su_rng_below(&rng, 256);

			memset(r, 0, sizeof(*r));
			r->thread = (uint8_t)t;
			r->key = (uint8_t)su_rng_below(&rng, p->nkeys);
			r->kind = x < p->put_pct	      ? OP_PUT :
				  x < p->put_pct + p->del_pct ? OP_DEL :
								OP_GET;
			if (r->kind == OP_PUT)
				r->arg = value_id(hist, t, i);
			/*
			 * Mostly back to back; one in 16 after a short spin (workers on two
			 * cores drift against each other), one in 256 after a yield (to a worker
			 * waiting for the core). Longer or more frequent pauses halve the overlap.
			 */
			w->pause[i] = y < 1  ? UINT32_MAX :
				      y < 17 ? (unsigned)su_rng_below(&rng, 100) :
					       0;
		}
	}
}

static int rec_call_cmp(const void *pa, const void *pb)
{
	const struct rec *a = pa, *b = pb;

	if (a->call != b->call)
		return a->call < b->call ? -1 : 1;
	return a->ret < b->ret ? -1 : a->ret > b->ret;
}

static const char *kind_name(unsigned kind)
{
	return kind == OP_PUT ? "put" : kind == OP_DEL ? "del" : "get";
}

static void print_ops(const struct rec *ops, unsigned n, int64_t t0)
{
	for (unsigned i = 0; i < n; i++) {
		const struct rec *r = &ops[i];
		char who[8], v[64], op[80], res[64], ret[16];

		if (r->thread == cfg.threads)
			snprintf(who, sizeof(who), "c");
		else
			snprintf(who, sizeof(who), "t%u", r->thread);
		if (r->kind == OP_PUT) {
			print_value(v, sizeof(v), r->arg);
			snprintf(op, sizeof(op), "put(%s)", v);
			snprintf(res, sizeof(res), "%d", r->rc);
		} else if (r->kind == OP_DEL) {
			snprintf(op, sizeof(op), "del");
			snprintf(res, sizeof(res), "%s", r->out == DEL_OK ? "0" : "PKV_NOTFOUND");
		} else {
			snprintf(op, sizeof(op), "get");
			print_value(res, sizeof(res), r->out);
		}
		if (r->ret == PENDING) {
			/* Cut off by the core: its result is not part of the proof. */
			snprintf(ret, sizeof(ret), "%10s", "pending");
			snprintf(res, sizeof(res), "(may or may not take effect)");
		} else {
			snprintf(ret, sizeof(ret), "%10.3f", (double)(r->ret - t0) / 1e3);
		}
		printf("    [%10.3f, %s] us  %-3s %s -> %s\n", (double)(r->call - t0) / 1e3, ret,
		       who, op, res);
	}
}

static void report_violation(struct checker *chk, enum variant v, uint64_t hist,
			     const struct plan *p, unsigned k, struct rec *kops, unsigned n,
			     uint64_t init)
{
	char key[KEY_CAP + 1], s[64];
	size_t klen;
	int64_t t0;
	unsigned m;

	if (++violations_printed > MAX_FAIL_PRINT) {
		if (violations_printed == MAX_FAIL_PRINT + 1)
			puts("(further violations are counted, not printed)");
		return;
	}
	qsort(kops, n, sizeof(*kops), rec_call_cmp);
	t0 = kops[0].call;
	klen = key_name(k, key_gen[k], key);
	key[klen] = '\0';
	print_value(s, sizeof(s), init);
	printf("VIOLATION: variant %s, history %" PRIu64 " (%u keys, %u ops, threads %u), key %u "
	       "\"%.24s...\"\n"
	       "  initial state: %s; times are from the first invocation; c = the coordinating "
	       "thread\n"
	       "  the key's history (%u ops, by invocation time):\n",
	       variant_names[v], hist, p->nkeys, p->nops, cfg.threads, k, key, s, n);
	print_ops(kops, n, t0);
	m = lin_core(chk, kops, n, init);
	printf("  core: %u ops, not linearizable by themselves (the history up to the earliest "
	       "response that makes it so, minus every read it does without):\n",
	       m);
	print_ops(kops, m, t0);
	printf("  reproduce (same plan; the interleaving differs from run to run): linearize "
	       "--variant %s --seed %" PRIu64
	       " --threads %u --keys %u --ops %u --histories %" PRIu64 "\n",
	       variant_names[v], cfg.seed, cfg.threads, cfg.keys, cfg.ops, hist + 1);
}

/* Overlap figure: worker operations whose interval meets another's on the same key. */
static uint64_t count_overlapped(struct rec *kops, unsigned n)
{
	uint64_t cnt = 0;
	int64_t max_ret = INT64_MIN;

	qsort(kops, n, sizeof(*kops), rec_call_cmp);
	for (unsigned i = 0; i < n; i++) {
		bool before = max_ret >= kops[i].call;
		bool after = i + 1 < n && kops[i + 1].call <= kops[i].ret;

		if (kops[i].thread != cfg.threads && (before || after))
			cnt++;
		if (kops[i].ret > max_ret)
			max_ret = kops[i].ret;
	}
	return cnt;
}

static bool rc_expected(const struct rec *r)
{
	if (r->kind == OP_PUT)
		return r->rc == 0;
	return r->rc == 0 || r->rc == PKV_NOTFOUND;
}

/*
 * Run history @hist on the current store and check it. @state[k] is key k's state before the
 * history (the last checked closing read) and becomes the state after it.
 */
static void run_history(struct checker *chk, enum variant v, uint64_t hist, uint64_t *state,
			struct figures *fig)
{
	static struct rec open_reads[MAX_KEYS], close_reads[MAX_KEYS];
	static struct rec kops[MAX_KOPS];
	static unsigned char buf[VBUF], scratch[VBUF];
	struct plan p;

	make_plan(hist, &p);
	for (unsigned k = 0; k < p.nkeys; k++) {
		open_reads[k] = (struct rec){ .kind = OP_GET,
					      .thread = (uint8_t)cfg.threads,
					      .key = (uint8_t)k };
		run_op(&open_reads[k], buf, scratch);
	}
	pthread_barrier_wait(&bar_start);
	pthread_barrier_wait(&bar_done);
	for (unsigned k = 0; k < p.nkeys; k++) {
		close_reads[k] = (struct rec){ .kind = OP_GET,
					       .thread = (uint8_t)cfg.threads,
					       .key = (uint8_t)k };
		run_op(&close_reads[k], buf, scratch);
	}

	/* The clock itself: each thread's calls are sequential, so its stamps must be too. */
	for (unsigned t = 0; t < cfg.threads; t++) {
		const struct rec *o = workers[t].ops;

		for (unsigned i = 0; i < workers[t].n; i++) {
			if (o[i].ret < o[i].call || (i > 0 && o[i].call < o[i - 1].ret)) {
				fig->errors++;
				fail("history %" PRIu64 ", thread %u, op %u: time stamps out of "
				     "order (the clock cannot be trusted: no check is sound)",
				     hist, t, i);
				break;
			}
		}
	}
	fig->histories++;
	fig->ops += p.nops + 2 * p.nkeys;
	fig->worker_ops += p.nops;
	for (unsigned k = 0; k < p.nkeys; k++) {
		enum lin_result res;
		unsigned n = 0;
		size_t explored;
		bool bad_rc = false;

		kops[n++] = open_reads[k];
		for (unsigned t = 0; t < cfg.threads; t++)
			for (unsigned i = 0; i < workers[t].n; i++)
				if (workers[t].ops[i].key == k)
					kops[n++] = workers[t].ops[i];
		kops[n++] = close_reads[k];
		fig->overlapped += count_overlapped(kops, n);
		for (unsigned i = 0; i < n; i++) {
			if (!rc_expected(&kops[i])) {
				fail("variant %s, history %" PRIu64 ", key %u: %s returned %d (%s)",
				     variant_names[v], hist, k, kind_name(kops[i].kind), kops[i].rc,
				     pkv_strerror(kops[i].rc));
				bad_rc = true;
				break;
			}
		}
		fig->key_checks++;
		if (bad_rc) {
			fig->errors++;
			key_gen[k]++;
			state[k] = ABSENT;
			continue;
		}
		res = lin_check(chk, kops, n, state[k], &explored);
		if (explored > fig->max_states)
			fig->max_states = explored;
		if (res == LIN_OK) {
			fig->passed++;
			total_passed++;
			/* The closing read came after everything: it is the state every
			 * linearization ends in. */
			state[k] = close_reads[k].out;
		} else if (res == LIN_INCONCLUSIVE) {
			fig->inconclusive++;
			printf("INCONCLUSIVE: variant %s, history %" PRIu64 ", key %u: %zu states "
			       "explored (--max-states %" PRIu64 ")\n",
			       variant_names[v], hist, k, explored, cfg.max_states);
			key_gen[k]++;
			state[k] = ABSENT;
		} else {
			fig->violations++;
			total_failed++;
			report_violation(chk, v, hist, &p, k, kops, n, state[k]);
			/* Go on with a fresh key: this one's state is unknown. */
			key_gen[k]++;
			state[k] = ABSENT;
		}
	}
}

/* ---- one variant ---------------------------------------------------------------------------- */

static int open_store(enum variant v, const char *dir)
{
	pkv_options opts;

	pkv_options_default(&opts);
	opts.durability = cfg.durability;
	opts.sync_interval_ms = 20;
	/* Small segments roll over often; automatic compaction at its lowest threshold. */
	opts.wal_segment_bytes = 64 * 1024;
	opts.compact_wal_bytes = 1024 * 1024;
	return pkv_open(v == V_MEM ? NULL : dir, &opts, &db);
}

/* Close the store, counting its compactions first. Returns pkv_close's code. */
static int close_store(struct figures *fig)
{
	pkv_stats st;
	int rc;

	if (pkv_get_stats(db, &st) == 0)
		fig->compactions += st.compactions;
	rc = pkv_close(db);
	db = NULL;
	return rc;
}

static void run_variant(struct checker *chk, enum variant v, uint64_t *next_hist, uint64_t nhist,
			double seconds, struct figures *fig)
{
	char dir[4096] = "";
	uint64_t state[MAX_KEYS] = { 0 };
	struct compactor comp = { .seed = su_hash3(cfg.seed, v, 0xc0), .last_rc = 0 };
	bool compactor = v == V_COMPACT || v == V_REOPEN;
	double t0 = su_now();
	int rc;

	memset(fig, 0, sizeof(*fig));
	memset(key_gen, 0, sizeof(key_gen));
	if (v != V_MEM && su_workdir(dir, sizeof(dir), cfg.parent, "linearize") != 0) {
		fail("variant %s: cannot create a directory under %s: %s", variant_names[v],
		     cfg.parent != NULL ? cfg.parent : "$TMPDIR", strerror(errno));
		return;
	}
	rc = open_store(v, dir);
	if (rc != 0) {
		fail("variant %s: pkv_open = %d (%s)", variant_names[v], rc, pkv_strerror(rc));
		goto out;
	}
	if (compactor && pthread_create(&comp.tid, NULL, compactor_main, &comp) != 0) {
		fail("variant %s: cannot start the compactor", variant_names[v]);
		compactor = false;
	}
	for (uint64_t i = 0; nhist == 0 || i < nhist; i++) {
		uint64_t hist;

		if (seconds > 0 && su_now() - t0 >= seconds)
			break;
		hist = (*next_hist)++;
		snprintf(hang_msg, sizeof(hang_msg),
			 "FAIL: HANG: variant %s, history %" PRIu64 " (seed %" PRIu64
			 ") did not finish within %u s\n",
			 variant_names[v], hist, cfg.seed, cfg.hang_seconds);
		alarm(cfg.hang_seconds);
		if (v == V_REOPEN && i > 0 && i % cfg.reopen_every == 0) {
			pthread_mutex_lock(&db_mu);
			rc = close_store(fig);
			if (rc != 0)
				fail("variant %s, history %" PRIu64 ": pkv_close = %d (%s)",
				     variant_names[v], hist, rc, pkv_strerror(rc));
			rc = open_store(v, dir);
			pthread_mutex_unlock(&db_mu);
			fig->reopens++;
			if (rc != 0) {
				fail("variant %s, history %" PRIu64 ": reopen: pkv_open = %d (%s)",
				     variant_names[v], hist, rc, pkv_strerror(rc));
				alarm(0);
				break;
			}
		}
		run_history(chk, v, hist, state, fig);
		alarm(0);
	}
	if (compactor) {
		atomic_store(&comp.stop, 1);
		pthread_join(comp.tid, NULL);
		fig->compact_calls = comp.calls;
		if (comp.errors != 0) {
			fig->errors += comp.errors;
			fail("variant %s: %" PRIu64 " of %" PRIu64 " pkv_compact calls failed, "
			     "the last with %d (%s)",
			     variant_names[v], comp.errors, comp.calls, comp.last_rc,
			     pkv_strerror(comp.last_rc));
		}
	}
	pthread_mutex_lock(&db_mu);
	rc = close_store(fig);
	pthread_mutex_unlock(&db_mu);
	if (rc != 0) {
		fig->errors++;
		fail("variant %s: pkv_close = %d (%s)", variant_names[v], rc, pkv_strerror(rc));
	}
out:
	if (v != V_MEM)
		su_rmtree(dir);
	fig->seconds = su_now() - t0;
}

/* ---- self-test of the checker --------------------------------------------------------------- */

/* clang-format off */
#define P(c, r, v) { .call = (c), .ret = (r), .kind = OP_PUT, .arg = (v) }
#define G(c, r, v) { .call = (c), .ret = (r), .kind = OP_GET, .out = (v) }
#define D(c, r, o) { .call = (c), .ret = (r), .kind = OP_DEL, .out = (o) }
#define NF DEL_NOTFOUND

struct st_case {
	const char *name;
	enum lin_result want;
	uint64_t init;
	unsigned n;
	struct rec ops[8];
};

static const struct st_case st_cases[] = {
	/* must be rejected */
	{ "stale read after a completed put", LIN_VIOLATION, ABSENT, 3,
	  { P(0, 10, 1), P(20, 30, 2), G(40, 50, 1) } },
	{ "del finds nothing after a completed put", LIN_VIOLATION, ABSENT, 2,
	  { P(0, 10, 1), D(20, 30, NF) } },
	{ "read of a value never written", LIN_VIOLATION, ABSENT, 2, { P(0, 10, 1), G(5, 15, 7) } },
	{ "read of garbage", LIN_VIOLATION, ABSENT, 2, { P(0, 10, 1), G(5, 15, VAL_GARBAGE) } },
	{ "absent after a completed put, no del", LIN_VIOLATION, ABSENT, 2,
	  { P(0, 10, 1), G(20, 30, ABSENT) } },
	{ "new then old: a read misses what an earlier read saw", LIN_VIOLATION, ABSENT, 3,
	  { P(0, 100, 1), G(10, 20, 1), G(30, 40, ABSENT) } },
	{ "two dels both succeed after one put", LIN_VIOLATION, ABSENT, 3,
	  { P(0, 10, 1), D(20, 50, DEL_OK), D(30, 60, DEL_OK) } },
	{ "del succeeds on a key never written", LIN_VIOLATION, ABSENT, 1, { D(0, 10, DEL_OK) } },
	{ "a deleted value comes back", LIN_VIOLATION, ABSENT, 3,
	  { P(0, 10, 1), D(20, 30, DEL_OK), G(40, 50, 1) } },
	{ "the initial value is lost", LIN_VIOLATION, 5, 1, { G(0, 10, ABSENT) } },
	{ "read returns before its put is invoked", LIN_VIOLATION, ABSENT, 2,
	  { G(0, 10, 1), P(20, 30, 1) } },
	{ "1 ns apart is ordered", LIN_VIOLATION, ABSENT, 3,
	  { P(0, 10, 1), P(11, 20, 2), G(21, 30, 1) } },
	{ "two concurrent puts seen in two orders", LIN_VIOLATION, ABSENT, 5,
	  { P(0, 100, 1), P(0, 100, 2), G(10, 20, 1), G(30, 40, 2), G(50, 60, 1) } },
	/* must be accepted */
	{ "a read overlapping a put sees the old value, a later one the new", LIN_OK, ABSENT, 3,
	  { P(0, 100, 1), G(10, 20, ABSENT), G(30, 40, 1) } },
	{ "concurrent puts observed in the other order", LIN_OK, ABSENT, 4,
	  { P(0, 100, 1), P(0, 100, 2), G(10, 20, 2), G(30, 40, 1) } },
	{ "concurrent dels: one succeeds, one finds nothing", LIN_OK, ABSENT, 3,
	  { P(0, 10, 1), D(20, 50, NF), D(30, 60, DEL_OK) } },
	{ "a read sees a put invoked after the read was", LIN_OK, ABSENT, 2,
	  { G(0, 100, 1), P(50, 60, 1) } },
	{ "touching intervals are concurrent", LIN_OK, ABSENT, 2,
	  { P(0, 10, 1), G(10, 20, ABSENT) } },
	{ "initial value, overwrite, delete", LIN_OK, 5, 5,
	  { G(0, 10, 5), P(20, 30, 6), G(40, 50, 6), D(60, 70, DEL_OK), G(80, 90, ABSENT) } },
	{ "a long del linearized before a put inside it", LIN_OK, ABSENT, 4,
	  { P(0, 10, 1), D(20, 100, DEL_OK), P(30, 40, 2), G(110, 120, 2) } },
	{ "needs backtracking: three puts read in order 3, 1, 2", LIN_OK, ABSENT, 6,
	  { P(0, 100, 1), P(0, 100, 2), P(0, 100, 3), G(10, 20, 3), G(30, 40, 1), G(50, 60, 2) } },
	{ "a del in flight may or may not have happened", LIN_OK, 4, 4,
	  { D(0, 100, DEL_OK), G(10, 20, 4), G(30, 40, ABSENT), D(50, 60, NF) } },
};

#undef P
#undef G
#undef D
#undef NF
/* clang-format on */

static bool selftest_expect(struct checker *c, const char *name, const struct rec *ops, unsigned n,
			    uint64_t init, enum lin_result want)
{
	static const char *const names[] = { "linearizable", "a violation", "inconclusive" };
	size_t explored;
	enum lin_result got = lin_check(c, ops, n, init, &explored);

	if (got == want) {
		total_passed++;
		return true;
	}
	fail("checker self-test \"%s\": expected %s, got %s", name, names[want], names[got]);
	return false;
}

/*
 * Random histories: n operations with linearization points 10 ns apart, the model's answers at
 * those points, and intervals stretched around them. Such a history is linearizable by
 * construction. With @sequential the intervals do not overlap, so the given order is the only
 * linearization, and changing one observation must make it a violation.
 */
static unsigned gen_history(struct su_rng *rng, struct rec *ops, bool sequential, uint64_t *init)
{
	unsigned n = 10 + (unsigned)su_rng_below(rng, 100);
	uint64_t s = su_rng_below(rng, 2) ? ABSENT : 1000;

	*init = s;
	for (unsigned i = 0; i < n; i++) {
		struct rec *r = &ops[i];
		int64_t p = 100 + 10 * (int64_t)i;
		unsigned x = (unsigned)su_rng_below(rng, 10);

		memset(r, 0, sizeof(*r));
		if (sequential) {
			r->call = p - 4;
			r->ret = p + 4;
		} else {
			r->call = p - (int64_t)su_rng_below(rng, 60);
			r->ret = p + (int64_t)su_rng_below(rng, 60);
		}
		r->kind = x < 4 ? OP_PUT : x < 6 ? OP_DEL : OP_GET;
		r->arg = r->kind == OP_PUT ? i + 1 : 0;
		if (r->kind == OP_GET)
			r->out = s;
		else if (r->kind == OP_DEL)
			r->out = s == ABSENT ? DEL_NOTFOUND : DEL_OK;
		reg_step(s, r, &s);
	}
	return n;
}

static bool selftest(struct checker *c)
{
	struct rec ops[MAX_KOPS];
	struct su_rng rng;
	uint64_t init;
	size_t saved = c->max_states;
	bool ok = true;
	unsigned nc = (unsigned)(sizeof(st_cases) / sizeof(st_cases[0]));

	for (unsigned i = 0; i < nc; i++)
		ok &= selftest_expect(c, st_cases[i].name, st_cases[i].ops, st_cases[i].n,
				      st_cases[i].init, st_cases[i].want);

	su_rng_seed(&rng, cfg.seed ^ 0x5e1f7e57ull);
	for (unsigned i = 0; i < SELFTEST_RANDOM; i++) {
		unsigned n = gen_history(&rng, ops, false, &init);

		ok &= selftest_expect(c, "random, linearizable by construction", ops, n, init,
				      LIN_OK);
	}
	for (unsigned i = 0; i < SELFTEST_RANDOM; i++) {
		unsigned n = gen_history(&rng, ops, true, &init);
		unsigned j = (unsigned)su_rng_below(&rng, n);

		/* Change the first get or del from j on (wrapping); a history of puts only is
		 * given a wrong closing read. */
		for (unsigned d = 0; d < n && ops[j].kind == OP_PUT; d++)
			j = (j + 1) % n;
		if (ops[j].kind == OP_PUT) {
			j = n++;
			ops[j] = (struct rec){ .call = ops[j - 1].ret + 10,
					       .ret = ops[j - 1].ret + 20,
					       .kind = OP_GET,
					       .out = ABSENT };
		} else if (ops[j].kind == OP_DEL) {
			ops[j].out ^= 1;
		} else {
			uint64_t alt[3] = { ABSENT, 1 + su_rng_below(&rng, n), 999999 };
			uint64_t o = alt[su_rng_below(&rng, 3)];

			ops[j].out = o != ops[j].out ? o : VAL_GARBAGE;
		}
		ok &= selftest_expect(c, "random sequential, one observation changed", ops, n, init,
				      LIN_VIOLATION);
	}

	/* 16 overlapping puts and a read of a value none of them wrote: every subset of the
	 * puts is a state to refute (2^16 of them). Over the bound: inconclusive, not passed. */
	for (unsigned i = 0; i < 16; i++)
		ops[i] = (struct rec){ .call = 0, .ret = 100, .kind = OP_PUT, .arg = i + 1 };
	ops[16] = (struct rec){ .call = 0, .ret = 100, .kind = OP_GET, .out = 999 };
	c->max_states = 1000;
	ok &= selftest_expect(c, "search over the state bound", ops, 17, ABSENT, LIN_INCONCLUSIVE);
	c->max_states = saved > 200000 ? saved : 200000;
	ok &= selftest_expect(c, "the same search within the bound", ops, 17, ABSENT,
			      LIN_VIOLATION);
	c->max_states = saved;

	/* The core of a stale read keeps the two puts, the first stale read and the put running
	 * at its response, nothing else. */
	{
		struct rec h[9] = {
			{ .call = 0, .ret = 10, .kind = OP_PUT, .arg = 1 },
			{ .call = 5, .ret = 12, .kind = OP_GET, .out = 1 },
			{ .call = 20, .ret = 30, .kind = OP_PUT, .arg = 2 },
			{ .call = 25, .ret = 35, .kind = OP_GET, .out = 2 },
			{ .call = 40, .ret = 50, .kind = OP_GET, .out = 1 },
			{ .call = 45, .ret = 70, .kind = OP_PUT, .arg = 3 },
			{ .call = 55, .ret = 60, .kind = OP_GET, .out = 1 },
			{ .call = 75, .ret = 80, .kind = OP_GET, .out = 3 },
			{ .call = 85, .ret = 90, .kind = OP_DEL, .out = DEL_OK },
		};
		unsigned m = lin_core(c, h, 9, ABSENT);

		/* Cut at the first stale read (50): put 3 pending, the rest gone. */
		if (m == 4 && h[0].arg == 1 && h[1].arg == 2 && h[2].out == 1 && h[3].arg == 3 &&
		    h[3].ret == PENDING) {
			total_passed++;
		} else {
			fail("checker self-test \"core of a stale read\": %u ops remain", m);
			ok = false;
		}
	}
	printf("checker self-test: %u crafted, %u random linearizable, %u random violations, "
	       "state bound, core: %s\n",
	       nc, SELFTEST_RANDOM, SELFTEST_RANDOM, ok ? "all as expected" : "FAILED");
	return ok;
}

/* ---- main ----------------------------------------------------------------------------------- */

static bool have_histories;
static const struct su_opt options[] = {
	SU_OPT("histories", SU_OPT_U64, &cfg.histories,
	       "histories in all, shared among the variants (default 2000\n"
	       "unless --seconds is given; 0: no bound)",
	       .given = &have_histories),
	SU_OPT("seconds", SU_OPT_DOUBLE, &cfg.seconds,
	       "time budget in all, shared among the variants (0: none);\n"
	       "the run ends at whichever bound it reaches first",
	       .arg = "S"),
	SU_OPT("threads", SU_OPT_UINT, &cfg.threads, "worker threads, 2 .. 16 (default 4)",
	       .arg = "T", .min = 2, .max = MAX_THREADS),
	SU_OPT("keys", SU_OPT_UINT, &cfg.keys, "keys per history at most, 1 .. 16 (default 3)",
	       .arg = "K", .min = 1, .max = MAX_KEYS),
	SU_OPT("ops", SU_OPT_UINT, &cfg.ops,
	       "operations per history at most, 10 .. 512 (default 200)", .min = MIN_OPS,
	       .max = MAX_OPS),
	SU_OPT("seed", SU_OPT_U64, &cfg.seed, "the histories (default 1)", .arg = "X"),
	SU_OPT("variant", SU_OPT_SET, &cfg.variants,
	       "mem, disk, compact, reopen or all (default all)", .arg = "LIST",
	       .names = variant_names, .word = "all"),
	SU_OPT("durability", SU_OPT_DURABILITY, &cfg.durability,
	       "process, power or periodic (default process)", .arg = "MODE"),
	SU_OPT("compact-ms", SU_OPT_UINT, &cfg.compact_ms,
	       "mean pause between pkv_compact calls (default 3)", .max = 60000),
	SU_OPT("reopen-every", SU_OPT_UINT, &cfg.reopen_every,
	       "histories between close and reopen in 'reopen' (default 1)", .min = 1,
	       .max = 1000000),
	SU_OPT("max-states", SU_OPT_U64, &cfg.max_states,
	       "search bound per key; beyond it a check is inconclusive", .min = 1000,
	       .max = 100000000),
	SU_OPT("hang-seconds", SU_OPT_UINT, &cfg.hang_seconds,
	       "a history taking longer is a hang (default 120)", .min = 1, .max = 86400),
	SU_OPT("dir", SU_OPT_STR, &cfg.parent,
	       "create the stores in a new temporary directory under PARENT", .arg = "PARENT"),
	SU_OPT("selftest", SU_OPT_FLAG, &cfg.selftest_only, "only the checker's self-test"),
	SU_OPT("quiet", SU_OPT_FLAG, &cfg.quiet,
	       "no figures per variant: only failures and the totals"),
	SU_OPT_END
};

static void print_figures(const char *name, const struct figures *f)
{
	printf("%-8s %6" PRIu64 " histories, %8" PRIu64 " ops, %6" PRIu64 " key checks: %" PRIu64
	       " linearizable, %" PRIu64 " violations, %" PRIu64 " inconclusive, %" PRIu64
	       " errors; max search %" PRIu64 " states; %.1f%% of ops overlapped another on "
	       "their key",
	       name, f->histories, f->ops, f->key_checks, f->passed, f->violations, f->inconclusive,
	       f->errors, f->max_states,
	       f->worker_ops ? 100.0 * (double)f->overlapped / (double)f->worker_ops : 0.0);
	if (f->compactions || f->reopens)
		printf("; %" PRIu64 " compactions (%" PRIu64 " pkv_compact calls), %" PRIu64
		       " reopens",
		       f->compactions, f->compact_calls, f->reopens);
	printf("; %.1f s\n", f->seconds);
}

int main(int argc, char **argv)
{
	static struct checker chk;
	struct figures fig[V_COUNT], all;
	unsigned nvar = 0, done = 0;
	uint64_t next_hist = 0;
	double t_start = su_now();
	struct sigaction sa;
	bool st_ok;

	setvbuf(stdout, NULL, _IOLBF, 0);
	su_opts_parse(argc, argv, "linearize", options, NULL);
	if (!have_histories && cfg.seconds == 0)
		cfg.histories = 2000;
	if (cfg.variants == 0)
		cfg.variants = (1u << V_COUNT) - 1;
	chk.max_states = cfg.max_states;
	for (unsigned v = 0; v < V_COUNT; v++)
		nvar += (cfg.variants >> v) & 1;
	fputs("linearize: variants", stdout);
	for (unsigned v = 0; v < V_COUNT; v++)
		if ((cfg.variants >> v) & 1)
			printf(" %s", variant_names[v]);
	printf("; %u threads, <= %u keys, %u..%u ops per history, histories %" PRIu64
	       ", seconds %.1f, seed %" PRIu64 ", durability %s, compact every ~%u ms\n",
	       cfg.threads, cfg.keys, cfg.ops < MIN_OPS ? cfg.ops : MIN_OPS, cfg.ops, cfg.histories,
	       cfg.seconds, cfg.seed, su_durability_name(cfg.durability), cfg.compact_ms);

	st_ok = selftest(&chk);
	if (!st_ok || cfg.selftest_only)
		goto out;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;
	sigaction(SIGALRM, &sa, NULL);
	if (pthread_barrier_init(&bar_start, NULL, cfg.threads + 1) != 0 ||
	    pthread_barrier_init(&bar_done, NULL, cfg.threads + 1) != 0) {
		fail("pthread_barrier_init");
		goto out;
	}
	for (unsigned t = 0; t < cfg.threads; t++) {
		workers[t].id = t;
		if (pthread_create(&workers[t].tid, NULL, worker_main, &workers[t]) != 0) {
			fputs("linearize: cannot start the worker threads\n", stderr);
			return 2;
		}
	}
	memset(&all, 0, sizeof(all));
	for (unsigned v = 0; v < V_COUNT; v++) {
		uint64_t nh = 0;
		double secs = 0;

		if (!((cfg.variants >> v) & 1))
			continue;
		/* Equal shares of what is left: time a variant did not use goes to the next. */
		if (cfg.histories != 0)
			nh = (cfg.histories - all.histories) / (nvar - done);
		if (cfg.seconds > 0) {
			secs = (cfg.seconds - (su_now() - t_start)) / (nvar - done);
			if (secs <= 0.001)
				secs = 0.001;
		}
		run_variant(&chk, (enum variant)v, &next_hist, nh, secs, &fig[v]);
		done++;
		if (!cfg.quiet)
			print_figures(variant_names[v], &fig[v]);
		all.histories += fig[v].histories;
		all.ops += fig[v].ops;
		all.key_checks += fig[v].key_checks;
		all.passed += fig[v].passed;
		all.violations += fig[v].violations;
		all.inconclusive += fig[v].inconclusive;
		all.errors += fig[v].errors;
		all.worker_ops += fig[v].worker_ops;
		all.overlapped += fig[v].overlapped;
		all.compactions += fig[v].compactions;
		all.compact_calls += fig[v].compact_calls;
		all.reopens += fig[v].reopens;
		all.seconds += fig[v].seconds;
		if (fig[v].max_states > all.max_states)
			all.max_states = fig[v].max_states;
	}
	atomic_store(&quit, 1);
	pthread_barrier_wait(&bar_start);
	for (unsigned t = 0; t < cfg.threads; t++)
		pthread_join(workers[t].tid, NULL);
	pthread_barrier_destroy(&bar_start);
	pthread_barrier_destroy(&bar_done);
	print_figures("total", &all);
	if (all.inconclusive != 0)
		printf("note: %" PRIu64 " key checks were inconclusive (search bound "
		       "--max-states %" PRIu64 "): neither passed nor failed\n",
		       all.inconclusive, cfg.max_states);
	if (all.key_checks == 0)
		fail("no history was checked");
out:
	free(chk.arena);
	free(chk.slots);
	printf("%" PRIu64 " passed, %" PRIu64 " failed\n", total_passed, total_failed);
	return total_failed == 0 && total_passed > 0 ? 0 : 1;
}
