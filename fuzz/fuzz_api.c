/* SPDX-License-Identifier: MIT */
/*
 * fuzz_api.c - differential libFuzzer target for the public API of one store.
 *
 * The input is decoded into a sequence of calls (at most MAX_OPS) on a store in a fresh
 * directory, and every result is compared with a model: a map from a small alphabet of keys to
 * values that the target generates from a seed, so that calls collide on keys and a value seen is
 * always the one written. The calls: put and del (plain, and _ex with and without
 * PKV_WRITE_POWER), get (buffers of every size relative to the value), pkv_get_ref and
 * pkv_get_many in read sections (with calls that must be PKV_EINVAL there), sync, durability
 * tickets (pkv_durable_seq; pkv_wait_durable polling, timed and unbounded, and on a number never
 * issued), compact, verify,
 * stats, reopen with other options (durability mode, lanes, small segments, NO_AUTOCOMPACT,
 * READONLY), fault injection through tests/faultfs (fail or shorten the n-th operation of some
 * kinds, once or from then on), a crash, an open under a fault, and calls with bad arguments.
 *
 * What the model expects (each rule is checked after every call):
 *  A.1  A call that no failure reached (no FAIL fault took an operation in this session;
 *       short transfers are legal and must be retried) succeeds as the contract says: writes
 *       return 0, sync/compact/verify/close return 0, gets return exactly the model's value.
 *  A.2  Argument errors (empty key, key > PKV_MAX_KEY, value > PKV_MAX_VALUE, NULL pointers,
 *       unknown flags, bad options) return their code and take no sequence number.
 *  A.3  A write takes exactly one sequence number (stats.last_seq + 1) iff it was applied;
 *       one that returned 0 took it. Under a fault a write may fail with -EIO, -ENOSPC or
 *       PKV_EREADONLY: if it took no number, nothing was applied (its key reads as before);
 *       if it did (the record was written but its fdatasync failed), it is applied in the
 *       running store and unacknowledged: after a crash it may or may not survive.
 *  A.4  Once stats.readonly_reason is set, every write returns PKV_EREADONLY; after a failed
 *       pkv_sync it is set.
 *  A.5  After any reopen (clean, crash, or an open that failed under a fault and was retried),
 *       the state is the state after a prefix of the history of applied writes that contains
 *       every acknowledged one, and stats.last_seq names that prefix exactly. The unacknowledged
 *       writes are kept as a "tail" behind the last state known to be durable and resolved
 *       against the recovered last_seq.
 *  A.6  stats.keys is the number of present keys; puts/dels count this session's writes;
 *       durable_seq is at least the last acknowledged durable write or successful pkv_sync.
 *  A.7  A crash here never tears a record (every call that took a number has copied its
 *       record before it returns), so recovery discards nothing and finds no gap.
 *  A.8  A compaction that returned 0 wrote a snapshot of every present key up to the last
 *       write: stats.snapshot_seq and snapshot_keys say so.
 *  A.9  Batches (pkv_write): all of a batch or none, in order, under one sequence number that
 *       every key it writes carries; conditions (a version's seq from the model, 0, PKV_ANY,
 *       or a wrong one) are checked against the state before the batch, and a failed one
 *       returns PKV_ECONFLICT and takes no number; a bad op is refused by the builder with its
 *       code and leaves the batch as it was; bad pkv_write arguments are PKV_EINVAL.
 *  A.10 Expiry against a fake clock (the library's seam, pkv__clock_set), which only this
 *       target moves: a key reads as absent from its expires_ms on, to gets and conditions,
 *       from the live map and the snapshot, before and after a reopen. stats.keys lies between
 *       the visible keys and the present ones (an expired key counts until a compaction
 *       reclaims it); a compaction's snapshot holds the visible keys only.
 *  A.11 pkv_clear: every key absent, one sequence number; across a crash the store is before
 *       or after it, as for any write.
 *
 * A crash: a persistent EIO on every file-system operation is armed (the background threads
 * included), then pkv_close: from that point nothing reaches the files, while what the WAL
 * mapping already holds stays in the page cache, as when the process dies. faultfs is then
 * uninstalled, the store reopened with the production table and compared (A.5), closed, and
 * reopened with faultfs for the next calls. Syncs are elided while faultfs is installed: under
 * process-crash semantics they change nothing about what survives.
 *
 * A mismatch prints what was expected, the recent log messages of the store, and aborts (the
 * fuzzer keeps the input). PKV_FUZZ_TRACE=1 prints every call as it runs. The store lives in a
 * directory made once per process under $TMPDIR (default /tmp); a tmpfs there makes it faster.
 */
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "faultfs.h"
#include "pkv.h"

/* The library's clock seam (src/internal.h): not in pkv.h, reached because this target links
 * the library's objects. */
void pkv__clock_set(uint64_t (*fn)(void));

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_OPS 256
#define MAX_REOPENS 12 /* reopens, crashes and faulted opens per input */
#define MAX_HUGE 3 /* values above 256 KiB per input: each costs a segment of its own */
#define NKEYS 17 /* 16 short keys and one of PKV_MAX_KEY bytes */
#define CANARY 0xa5
#define GBUF_SLACK 128

/* Loops over value bytes: no coverage feedback (it says nothing) and no per-byte callbacks. */
#define NOCOV __attribute__((no_sanitize("coverage")))

/* ---- input --------------------------------------------------------------------------------- */

struct in {
	const uint8_t *p;
	size_t n, off;
};

static uint8_t in_byte(struct in *in)
{
	return in->off < in->n ? in->p[in->off++] : 0;
}

/* ---- the model ----------------------------------------------------------------------------- */

struct slot {
	bool present;
	uint32_t len;
	uint32_t seed;
	uint64_t ver; /* seq of the write that set it */
	uint64_t exp; /* expires_ms, 0: never */
};

struct model {
	struct slot k[NKEYS];
};

/* One key's write within a write. */
struct wop {
	uint8_t kid;
	bool del;
	uint32_t len, seed;
	uint64_t exp;
};

#define MAX_BOPS 8 /* writes per batch this target builds */

/* An applied write (one key, a batch, or a clear) kept until a reopen decides whether it
 * survived (A.5). */
struct wr {
	bool acked;
	bool clear;
	uint8_t nops;
	struct wop ops[MAX_BOPS];
	uint64_t seq;
};

static uint64_t fake_now; /* A.10: the library's clock while this target runs */

static uint64_t fake_clock(void)
{
	return __atomic_load_n(&fake_now, __ATOMIC_RELAXED);
}

static struct {
	char root[PATH_MAX]; /* made once per process */
	char dir[PATH_MAX]; /* root/db, removed at the start of every input */
	bool trace;
	pkv *db;
	pkv_options opts;
	bool ro_open;
	bool fail_armed; /* a FAIL fault was armed in this session */
	uint64_t seq; /* expected stats.last_seq */
	struct model live; /* what the running store shows */
	struct model stable; /* the state every acknowledged write reached ... */
	uint64_t stable_seq; /* ... and its last_seq */
	struct wr tail[MAX_OPS];
	size_t ntail;
	uint64_t puts_applied, puts_acked, dels_applied, dels_acked; /* this session */
	uint64_t durable_min; /* A.6, this session */
	uint32_t serial;
	unsigned op, reopens, huge;
	const char *what;
} F;

static uint8_t keys[NKEYS][PKV_MAX_KEY + 1];
static const uint16_t key_len[NKEYS] = { 1,  1,	 2,  3,	 4,  5,	  7,   8,	   9,
					 15, 16, 17, 31, 64, 100, 255, PKV_MAX_KEY };
static uint8_t *vbuf; /* a put's value: PKV_MAX_VALUE + 1 bytes */
static uint8_t *ebuf; /* an expected value */
static uint8_t *gbuf; /* a get's destination, with room for canaries */

/* ---- the store's log: the last few messages, printed with a failure ------------------------ */

#define LOG_KEEP 8
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char log_ring[LOG_KEEP][256];
static unsigned log_next;

static void log_cb(void *ctx, int level, const char *msg)
{
	(void)ctx;
	pthread_mutex_lock(&log_mu);
	snprintf(log_ring[log_next++ % LOG_KEEP], sizeof(log_ring[0]), "[%d] %s", level, msg);
	pthread_mutex_unlock(&log_mu);
	if (F.trace)
		fprintf(stderr, "    log[%d] %s\n", level, msg);
}

__attribute__((format(printf, 2, 3), noreturn)) static void fail_at(int line, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "\nfuzz_api: MISMATCH at op %u (%s), fuzz_api.c:%d: ", F.op,
		F.what ? F.what : "setup", line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr,
		"\n  options: durability %d, lanes %u, segment %zu, shards %u, flags %#x;"
		" faults armed: %s, injected %" PRIu64 " (last: %s)\n",
		(int)F.opts.durability, F.opts.wal_lanes, F.opts.wal_segment_bytes, F.opts.shards,
		F.opts.flags, F.fail_armed ? "yes" : "no", ffs_injected(),
		ffs_op_name(ffs_last_kind()));
	pthread_mutex_lock(&log_mu);
	for (unsigned i = 0; i < LOG_KEEP; i++) {
		const char *m = log_ring[(log_next + i) % LOG_KEEP];
		if (m[0])
			fprintf(stderr, "  log: %s\n", m);
	}
	pthread_mutex_unlock(&log_mu);
	abort();
}

#define FAIL(...) fail_at(__LINE__, __VA_ARGS__)
#define CHECK(cond, ...)                   \
	do {                               \
		if (!(cond))               \
			FAIL(__VA_ARGS__); \
	} while (0)

static void trace(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void trace(const char *fmt, ...)
{
	va_list ap;

	if (!F.trace)
		return;
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	va_start(ap, fmt);
	fprintf(stderr, "%6lld.%03ld op %3u: ", (long long)t.tv_sec % 100000, t.tv_nsec / 1000000,
		F.op);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* Every code pkv returns is 0 or negative and has a message. */
static int code(int r)
{
	const char *m = pkv_strerror(r);

	CHECK(r <= 0, "positive return code %d", r);
	CHECK(m != NULL && m[0] != '\0', "no message for code %d", r);
	return r;
}

/* A.1: has a FAIL fault taken an operation in this session? */
static bool faulted(void)
{
	return F.fail_armed && ffs_injected() > 0;
}

/* What a failure (a FAIL fault taking the call, or the store refusing writes) may return. */
static bool fault_code(int r)
{
	return r == -EIO || r == -ENOSPC || r == PKV_EREADONLY;
}

/* ---- values -------------------------------------------------------------------------------- */

NOCOV static void fill(uint8_t *p, size_t n, uint32_t seed)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + n;

	for (size_t i = 0; i < n; i += 8) {
		uint64_t z = (x += 0x9e3779b97f4a7c15ull);

		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
		z ^= z >> 31;
		memcpy(p + i, &z, n - i < 8 ? n - i : 8);
	}
}

/* The first index in [from, to) where @p is not @c; @to if none. */
NOCOV static size_t first_not(const uint8_t *p, uint8_t c, size_t from, size_t to)
{
	while (from < to && p[from] == c)
		from++;
	return from;
}

NOCOV static size_t first_diff(const uint8_t *a, const uint8_t *b, size_t n)
{
	size_t i = 0;

	while (i < n && a[i] == b[i])
		i++;
	return i;
}

/* A value length: mostly small, sometimes around a 64 KiB segment's room, rarely the limits. */
static uint32_t pick_len(struct in *in)
{
	uint8_t c = in_byte(in), x = in_byte(in);
	unsigned cls = c & 15, hi = c >> 4;
	uint32_t len;

	if (cls == 0)
		return 0;
	if (cls <= 8)
		return 1 + x % 64;
	if (cls <= 12)
		return 1 + (((uint32_t)x << 4) | hi) % 4096;
	if (cls == 13) /* a record that (nearly) fills a 64 KiB segment, or just does not fit */
		return 65536 - 64 - 32 - 256 + x + hi * 16;
	if (cls == 14)
		return 4096 + (uint32_t)x * 256 + hi;
	if (hi < 8)
		len = PKV_MAX_VALUE;
	else if (hi < 12)
		len = PKV_MAX_VALUE + 1;
	else
		len = PKV_MAX_VALUE - x;
	if (len <= PKV_MAX_VALUE && F.huge >= MAX_HUGE)
		return x;
	if (len <= PKV_MAX_VALUE)
		F.huge++;
	return len;
}

/* ---- keys ---------------------------------------------------------------------------------- */

#define K_EMPTY (-1)
#define K_LONG (-2)

/* A key id (0 .. NKEYS-1), or K_EMPTY / K_LONG for the keys the contract refuses. */
static int pick_key(struct in *in, const uint8_t **k, size_t *klen)
{
	uint8_t b = in_byte(in);

	if (b >= 252) {
		*k = keys[NKEYS - 1];
		*klen = PKV_MAX_KEY + 1;
		return K_LONG;
	}
	if (b >= 248) {
		*k = keys[0];
		*klen = 0;
		return K_EMPTY;
	}
	if (b >= 240) {
		*k = keys[NKEYS - 1];
		*klen = PKV_MAX_KEY;
		return NKEYS - 1;
	}
	*k = keys[b % 16];
	*klen = key_len[b % 16];
	return b % 16;
}

static int key_error(int kid)
{
	return kid == K_EMPTY ? PKV_EINVAL : kid == K_LONG ? PKV_ETOOBIG : 0;
}

/* ---- model operations ---------------------------------------------------------------------- */

static void model_apply(struct model *m, const struct wr *w)
{
	if (w->clear)
		memset(m, 0, sizeof(*m));
	for (unsigned i = 0; i < w->nops; i++) {
		const struct wop *o = &w->ops[i];
		struct slot *s = &m->k[o->kid];

		s->present = !o->del;
		s->len = o->del ? 0 : o->len;
		s->seed = o->del ? 0 : o->seed;
		s->exp = o->del ? 0 : o->exp;
		s->ver = o->del ? 0 : w->seq;
	}
}

/* A.10: present and not expired at the fake clock. */
static bool visible(const struct slot *s)
{
	return s->present && !(s->exp && s->exp <= fake_clock());
}

/* Keys a get finds. */
static unsigned model_count(const struct model *m)
{
	unsigned n = 0;

	for (int i = 0; i < NKEYS; i++)
		n += visible(&m->k[i]);
	return n;
}

/* Keys the store may still count (expired ones until a compaction reclaims them). */
static unsigned model_count_all(const struct model *m)
{
	unsigned n = 0;

	for (int i = 0; i < NKEYS; i++)
		n += m->k[i].present;
	return n;
}

/* The version a condition sees: seq, or 0 when absent or expired. */
static uint64_t model_version(const struct model *m, int kid)
{
	return visible(&m->k[kid]) ? m->k[kid].ver : 0;
}

/* Record an applied write (A.3): into the live state, and the stable one if nothing before it
 * is still undecided. */
static void model_write_wr(struct wr *wp)
{
	struct wr w = *wp;
	bool acked = w.acked;

	w.seq = ++F.seq;
	model_apply(&F.live, &w);
	if (acked && F.ntail == 0) {
		model_apply(&F.stable, &w);
		F.stable_seq = w.seq;
	} else {
		F.tail[F.ntail++] = w;
	}
}

static void model_write(int kid, bool del, uint32_t len, uint32_t seed, uint64_t exp, bool acked)
{
	struct wr w = { .acked = acked, .nops = 1 };

	w.ops[0] = (struct wop){ .kid = (uint8_t)kid, .del = del, .len = len, .seed = seed,
				 .exp = exp };
	model_write_wr(&w);
}

static pkv_stats stats(void)
{
	pkv_stats st;
	int r = code(pkv_get_stats(F.db, &st));

	CHECK(r == 0, "pkv_get_stats: %s", pkv_strerror(r));
	return st;
}

/*
 * Get @kid with a buffer of a size chosen by @mode, and compare with the live model: the return
 * code, *vlen, the min(cap, len) bytes copied and not one byte more.
 */
static void get_check(int kid, unsigned mode, unsigned extra)
{
	const struct slot *s = &F.live.k[kid];
	bool vis = visible(s);
	uint32_t len = vis ? s->len : 0;
	size_t cap, vlen = (size_t)-1, copied;
	uint8_t *buf = gbuf;
	int r;

	switch (mode % 6) {
	case 0:
		cap = 0;
		buf = NULL;
		break;
	case 1:
		cap = 0;
		break;
	case 2:
		cap = len / 2;
		break;
	case 3:
		cap = len ? len - 1 : extra % 64;
		break;
	case 4:
		cap = len;
		break;
	default:
		cap = len + 1 + extra % 64;
		break;
	}
	if (cap > PKV_MAX_VALUE + GBUF_SLACK - 16)
		cap = PKV_MAX_VALUE + GBUF_SLACK - 16;
	memset(gbuf, CANARY, cap + 16);
	r = code(pkv_get(F.db, keys[kid], key_len[kid], buf, cap, &vlen));
	if (!vis) {
		CHECK(r == PKV_NOTFOUND, "get key %d: %s, expected NOTFOUND (vlen %zu)", kid,
		      pkv_strerror(r), vlen);
		copied = 0;
	} else {
		CHECK(r == 0, "get key %d: %s, expected a value of %u bytes", kid, pkv_strerror(r),
		      len);
		CHECK(vlen == len, "get key %d: *vlen %zu, expected %u (cap %zu)", kid, vlen, len,
		      cap);
		copied = cap < len ? cap : len;
		fill(ebuf, len, s->seed);
		if (memcmp(gbuf, ebuf, copied) != 0) {
			size_t i = first_diff(gbuf, ebuf, copied);

			FAIL("get key %d: value differs at byte %zu of %u (cap %zu, seed %u)", kid,
			     i, len, cap, s->seed);
		}
	}
	{
		size_t i = first_not(gbuf, CANARY, copied, cap + 16);

		CHECK(i == cap + 16, "get key %d: byte %zu written (cap %zu, value %u bytes)", kid,
		      i, cap, len);
	}
}

/* Every key against the live model, and the key count (A.6). */
static void compare_all(void)
{
	for (int kid = 0; kid < NKEYS; kid++)
		get_check(kid, 5, 0);
	{
		pkv_stats st = stats();

		CHECK(st.keys >= model_count(&F.live) && st.keys <= model_count_all(&F.live),
		      "stats.keys %" PRIu64 ", model has %u (%u with expired ones)", st.keys,
		      model_count(&F.live), model_count_all(&F.live));
	}
}

/* A.6 */
static void check_stats(void)
{
	pkv_stats st = stats();

	CHECK(st.last_seq == F.seq, "stats.last_seq %" PRIu64 ", expected %" PRIu64, st.last_seq,
	      F.seq);
	CHECK(st.keys >= model_count(&F.live) && st.keys <= model_count_all(&F.live),
	      "stats.keys %" PRIu64 ", model has %u (%u with expired ones)", st.keys,
	      model_count(&F.live), model_count_all(&F.live));
	CHECK(st.durable_seq <= st.last_seq, "durable_seq %" PRIu64 " > last_seq %" PRIu64,
	      st.durable_seq, st.last_seq);
	CHECK(st.durable_seq >= F.durable_min,
	      "durable_seq %" PRIu64 ", but seq %" PRIu64 " was acknowledged as durable",
	      st.durable_seq, F.durable_min);
	CHECK(st.puts >= F.puts_acked && st.puts <= F.puts_applied,
	      "stats.puts %" PRIu64 ", expected %" PRIu64 " .. %" PRIu64, st.puts, F.puts_acked,
	      F.puts_applied);
	CHECK(st.dels >= F.dels_acked && st.dels <= F.dels_applied,
	      "stats.dels %" PRIu64 ", expected %" PRIu64 " .. %" PRIu64, st.dels, F.dels_acked,
	      F.dels_applied);
	if (F.ro_open)
		CHECK(st.readonly_reason == PKV_EREADONLY, "read-only open: readonly_reason %d",
		      st.readonly_reason);
	else if (!faulted())
		CHECK(st.readonly_reason == 0, "no fault, yet readonly_reason %d (%s)",
		      st.readonly_reason, pkv_strerror(st.readonly_reason));
}

/* A.5: after an open, find the prefix the store recovered and make it the model's state. */
static void resolve(void)
{
	pkv_stats st = stats();
	uint64_t L = st.last_seq, k;
	size_t need = 0;
	struct model m = F.stable;

	for (size_t i = 0; i < F.ntail; i++)
		if (F.tail[i].acked)
			need = i + 1;
	CHECK(L >= F.stable_seq,
	      "recovered up to seq %" PRIu64 ", but seq %" PRIu64 " was acknowledged", L,
	      F.stable_seq);
	CHECK(L - F.stable_seq <= F.ntail,
	      "recovered up to seq %" PRIu64 ", but only %" PRIu64 " was ever written", L,
	      F.stable_seq + F.ntail);
	/* Every record was complete when the store went down (A.7): nothing to discard. */
	CHECK(st.discarded_records == 0 && st.discarded_bytes == 0 && st.recovery_gap_seq == 0,
	      "recovery discarded %" PRIu64 " records, %" PRIu64 " bytes (gap at seq %" PRIu64
	      "), yet no record was torn",
	      st.discarded_records, st.discarded_bytes, st.recovery_gap_seq);
	k = L - F.stable_seq;
	CHECK(k >= need, "recovered up to seq %" PRIu64 ", but seq %" PRIu64 " was acknowledged", L,
	      F.tail[need - 1].seq);
	for (size_t i = 0; i < k; i++)
		model_apply(&m, &F.tail[i]);
	trace("recovered up to seq %" PRIu64 " (%zu undecided writes, %" PRIu64 " kept)", L,
	      F.ntail, k);
	F.live = F.stable = m;
	F.stable_seq = F.seq = L;
	F.ntail = 0;
	compare_all();
}

/* ---- opening and closing ------------------------------------------------------------------- */

static void decode_opts(struct in *in, pkv_options *o, bool allow_ro)
{
	static const unsigned lanes[8] = { 1, 2, 3, 4, 0, 1, 1, 2 };
	uint8_t a = in_byte(in), b = in_byte(in);

	pkv_options_default(o);
	o->durability = (enum pkv_durability)((a & 3) == 3 ? PKV_DURABLE_PROCESS : a & 3);
	if (o->durability == PKV_DURABLE_PERIODIC)
		o->sync_interval_ms = 1 + b % 16;
	o->wal_lanes = lanes[(a >> 2) & 7];
	switch ((a >> 5) & 7) {
	case 5:
	case 6:
		o->wal_segment_bytes = 192u << 10;
		break;
	case 7:
		o->wal_segment_bytes = 0; /* the default, 16 MiB */
		break;
	default:
		o->wal_segment_bytes = 64u << 10; /* the smallest: records roll segments */
		break;
	}
	o->shards = b & 1 ? 1 : b & 2 ? 4 : 0;
	o->capacity_hint = b & 4 ? 64 : 0;
	o->compact_wal_bytes = b & 8 ? 1u << 20 : 0;
	o->flags = b & 0x10 ? PKV_OPEN_NO_AUTOCOMPACT : 0;
	if (allow_ro && (b & 0xe0) == 0xe0)
		o->flags |= PKV_OPEN_READONLY;
	o->log_fn = log_cb;
}

static void session_begin(const pkv_options *o)
{
	F.opts = *o;
	F.ro_open = o->flags & PKV_OPEN_READONLY;
	F.puts_applied = F.puts_acked = F.dels_applied = F.dels_acked = 0;
	F.durable_min = 0;
}

/* Open with faultfs installed and disarmed (a fresh count): must succeed; resolve (A.5). */
static void open_store(const pkv_options *o)
{
	int r;

	ffs_install();
	ffs_set_sync_elide(true);
	F.fail_armed = false;
	session_begin(o);
	r = code(pkv_open(F.dir, o, &F.db));
	CHECK(r == 0, "open (no fault): %s", pkv_strerror(r));
	resolve();
}

/* Close; with no failure in the session it must succeed. */
static void close_store(void)
{
	int r;

	if (F.db == NULL)
		return;
	r = code(pkv_close(F.db));
	F.db = NULL;
	trace("close: %s", pkv_strerror(r));
	if (!faulted())
		CHECK(r == 0, "close (no fault): %s", pkv_strerror(r));
	else
		CHECK(r == 0 || fault_code(r), "close under a fault: %s", pkv_strerror(r));
}

/* ---- the calls ----------------------------------------------------------------------------- */

/* A.10: an expiry relative to the fake clock: past, now, soon, later, far, or never (0). */
static uint64_t pick_exp(struct in *in)
{
	uint8_t c = in_byte(in), x = in_byte(in);

	switch (c % 6) {
	case 0:
		return fake_clock() - 1 - x;
	case 1:
		return fake_clock();
	case 2:
		return fake_clock() + 1 + x;
	case 3:
		return fake_clock() + 1 + (uint64_t)x * 1000;
	case 4:
		return fake_clock() + (1ull << 40);
	default:
		return 0;
	}
}

static void op_write(struct in *in, bool del, bool ex, bool expire)
{
	const uint8_t *k;
	size_t klen;
	int kid = pick_key(in, &k, &klen);
	uint32_t len = del ? 0 : pick_len(in);
	unsigned flags = (ex || expire) && (in_byte(in) & 1) ? PKV_WRITE_POWER : 0;
	uint64_t exp = expire ? pick_exp(in) : 0;
	uint32_t seed = ++F.serial;
	bool durable = flags || F.opts.durability == PKV_DURABLE_POWER;
	int expect = key_error(kid);
	pkv_stats st0, st1;
	uint64_t took;
	int r;

	if (expect == 0 && len > PKV_MAX_VALUE)
		expect = PKV_ETOOBIG;
	if (!del && len <= PKV_MAX_VALUE)
		fill(vbuf, len, seed);
	st0 = stats();
	CHECK(st0.last_seq == F.seq, "last_seq %" PRIu64 " before a write, expected %" PRIu64,
	      st0.last_seq, F.seq);
	if (del)
		r = ex ? pkv_del_ex(F.db, k, klen, flags) : pkv_del(F.db, k, klen);
	else if (expire)
		r = pkv_put_expire(F.db, k, klen, vbuf, len, exp, flags);
	else
		r = ex ? pkv_put_ex(F.db, k, klen, vbuf, len, flags) :
			 pkv_put(F.db, k, klen, vbuf, len);
	code(r);
	st1 = stats();
	took = st1.last_seq - st0.last_seq;
	trace("%s%s key %d (%zu bytes)%s%s value %u bytes seed %u exp %" PRIu64 ": %s, took %" PRIu64
	      " seq",
	      del ? "del" : expire ? "put_expire" : "put", ex ? "_ex" : "", kid, klen,
	      flags ? " POWER" : "", durable ? " durable" : "", len, seed, exp, pkv_strerror(r),
	      took);
	CHECK(st1.last_seq >= st0.last_seq && took <= 1,
	      "a write moved last_seq from %" PRIu64 " to %" PRIu64, st0.last_seq, st1.last_seq);

	if (expect) { /* A.2 */
		/* a bad key and a bad value: either code */
		CHECK(r == expect || (kid < 0 && len > PKV_MAX_VALUE && r == PKV_ETOOBIG),
		      "bad argument: %s, expected %s", pkv_strerror(r), pkv_strerror(expect));
		CHECK(took == 0, "a refused write took a sequence number");
		return;
	}
	if (F.ro_open || st0.readonly_reason) { /* A.4 */
		CHECK(r == PKV_EREADONLY, "write to a store refusing writes (%d): %s",
		      st0.readonly_reason, pkv_strerror(r));
		CHECK(took == 0, "a refused write took a sequence number");
		get_check(kid, 5, 0);
		return;
	}
	if (del && !visible(&F.live.k[kid])) {
		CHECK(r == PKV_NOTFOUND || (faulted() && r == PKV_EREADONLY),
		      "del of an absent key: %s", pkv_strerror(r));
		CHECK(took == 0, "del of an absent key took a sequence number");
		get_check(kid, 5, 0);
		return;
	}
	if (r == 0) {
		CHECK(took == 1, "a write returned 0 without taking a sequence number");
	} else {
		CHECK(faulted(), "write failed with no fault injected: %s", pkv_strerror(r));
		CHECK(fault_code(r), "write under a fault: %s", pkv_strerror(r));
	}
	if (took) {
		model_write(kid, del, len, seed, exp, r == 0);
		if (del) {
			F.dels_applied++;
			F.dels_acked += r == 0;
		} else {
			F.puts_applied++;
			F.puts_acked += r == 0;
		}
		if (r == 0 && durable)
			F.durable_min = F.seq;
	}
	get_check(kid, 5, 0);
}

/* A.9: a batch of up to MAX_BOPS writes (bad ones refused by the builder) and up to two
 * conditions, some of which hold. */
static void op_batch(struct in *in)
{
	uint8_t a = in_byte(in), fl = in_byte(in);
	unsigned nops = a % (MAX_BOPS + 1), nconds = (a >> 4) % 3;
	unsigned flags = fl & 1 ? PKV_WRITE_POWER : 0;
	bool durable = flags || F.opts.durability == PKV_DURABLE_POWER, conflict = false;
	struct wr w = { 0 };
	uint64_t seq = 77, took;
	uint64_t puts = 0, dels = 0;
	pkv_stats st0, st1;
	pkv_batch *b;
	int r;

	CHECK(pkv_batch_new(&b) == 0, "batch_new");
	for (unsigned i = 0; i < nops; i++) {
		const uint8_t *k;
		size_t klen;
		int kid = pick_key(in, &k, &klen);
		uint8_t kind = in_byte(in) % 4;
		uint32_t len = kind == 0 ? 0 : pick_len(in);
		uint64_t exp = kind == 2 ? pick_exp(in) : 0;
		uint32_t seed = ++F.serial;
		int expect = key_error(kid);

		if (expect == 0 && len > PKV_MAX_VALUE)
			expect = PKV_ETOOBIG;
		if (kind != 0 && len <= PKV_MAX_VALUE)
			fill(vbuf, len, seed);
		r = code(kind == 0   ? pkv_batch_del(b, k, klen)
			 : kind == 2 ? pkv_batch_put_expire(b, k, klen, vbuf, len, exp)
				     : pkv_batch_put(b, k, klen, vbuf, len));
		CHECK(r == expect || (kid < 0 && len > PKV_MAX_VALUE && r == PKV_ETOOBIG),
		      "batch op %u: %s, expected %s", i, pkv_strerror(r), pkv_strerror(expect));
		if (r == 0)
			w.ops[w.nops++] = (struct wop){ .kid = (uint8_t)kid, .del = kind == 0,
							.len = len, .seed = seed, .exp = exp };
	}
	for (unsigned i = 0; i < nconds; i++) {
		const uint8_t *k;
		size_t klen;
		int kid = pick_key(in, &k, &klen);
		uint8_t c = in_byte(in);
		uint64_t have = kid >= 0 ? model_version(&F.live, kid) : 0, want;

		want = c % 5 == 0 ? have : c % 5 == 1 ? 0 : c % 5 == 2 ? PKV_ANY
		       : c % 5 == 3 ? have + 1 : c;
		r = code(pkv_batch_expect(b, k, klen, want));
		CHECK(r == key_error(kid), "batch_expect: %s", pkv_strerror(r));
		if (r == 0 && !(want == PKV_ANY ? have != 0 : want == have))
			conflict = true;
	}
	/* The store counts the last write of each distinct key. */
	for (unsigned i = 0; i < w.nops; i++) {
		bool last = true;

		for (unsigned j = i + 1; j < w.nops; j++)
			last &= w.ops[j].kid != w.ops[i].kid;
		if (last) {
			puts += !w.ops[i].del;
			dels += w.ops[i].del;
		}
	}
	st0 = stats();
	r = code(pkv_write(F.db, b, flags, &seq));
	st1 = stats();
	took = st1.last_seq - st0.last_seq;
	trace("batch of %u writes, %u conditions%s%s: %s, seq %" PRIu64 ", took %" PRIu64, w.nops,
	      nconds, conflict ? " (one fails)" : "", flags ? " POWER" : "", pkv_strerror(r), seq,
	      took);
	CHECK(took <= 1, "a batch took %" PRIu64 " sequence numbers", took);
	if (w.nops == 0) {
		CHECK(r == (conflict ? PKV_ECONFLICT : 0) && took == 0 && seq == 0,
		      "a batch without writes: %s, took %" PRIu64 ", seq %" PRIu64, pkv_strerror(r),
		      took, seq);
	} else if (F.ro_open || st0.readonly_reason) {
		CHECK(r == PKV_EREADONLY && took == 0, "batch on a store refusing writes: %s",
		      pkv_strerror(r));
	} else if (conflict) {
		CHECK(r == PKV_ECONFLICT && took == 0 && seq == 0,
		      "a failing condition: %s, took %" PRIu64, pkv_strerror(r), took);
	} else {
		if (r == 0)
			CHECK(took == 1 && seq == st1.last_seq,
			      "a batch returned 0 with seq %" PRIu64 ", took %" PRIu64, seq, took);
		else
			CHECK(faulted() && fault_code(r), "batch failed: %s", pkv_strerror(r));
		if (took) {
			w.acked = r == 0;
			model_write_wr(&w);
			F.puts_applied += puts;
			F.dels_applied += dels;
			if (r == 0) {
				F.puts_acked += puts;
				F.dels_acked += dels;
				if (durable)
					F.durable_min = F.seq;
			}
		}
	}
	/* Every key the batch wrote carries its seq (or is absent), seen through a condition. */
	if (r == 0 && w.nops > 0 && !faulted()) {
		pkv_batch_clear(b);
		for (unsigned i = 0; i < w.nops; i++)
			CHECK(pkv_batch_expect(b, keys[w.ops[i].kid], key_len[w.ops[i].kid],
					       model_version(&F.live, w.ops[i].kid)) == 0,
			      "batch_expect");
		r = code(pkv_write(F.db, b, 0, NULL));
		CHECK(r == 0, "the keys of batch %" PRIu64 " do not carry its seq: %s", seq,
		      pkv_strerror(r));
	}
	for (unsigned i = 0; i < w.nops; i++)
		get_check(w.ops[i].kid, 5, 0);
	pkv_batch_free(b);
}

/* A.11 */
static void op_clear(void)
{
	pkv_stats st0 = stats(), st1;
	int r = code(pkv_clear(F.db));
	uint64_t took;

	st1 = stats();
	took = st1.last_seq - st0.last_seq;
	trace("clear: %s, took %" PRIu64, pkv_strerror(r), took);
	CHECK(took <= 1, "clear took %" PRIu64 " sequence numbers", took);
	if (F.ro_open || st0.readonly_reason) {
		CHECK(r == PKV_EREADONLY && took == 0, "clear of a store refusing writes: %s",
		      pkv_strerror(r));
		return;
	}
	if (r == 0)
		CHECK(took == 1 && st1.keys == 0, "clear: took %" PRIu64 ", %" PRIu64 " keys left",
		      took, st1.keys);
	else
		CHECK(faulted() && fault_code(r), "clear failed: %s", pkv_strerror(r));
	if (took) {
		struct wr w = { .acked = r == 0, .clear = true };

		model_write_wr(&w);
		if (r == 0 && F.opts.durability == PKV_DURABLE_POWER)
			F.durable_min = F.seq;
	}
	compare_all();
}

/* A.10: move the fake clock forward, then every key against the model. */
static void op_clock(struct in *in)
{
	uint8_t c = in_byte(in), x = in_byte(in);
	uint64_t step = c % 4 == 0 ? x : c % 4 == 1 ? (uint64_t)x * 1000 : c % 4 == 2 ? 1 : 1ull << 41;

	__atomic_store_n(&fake_now, fake_clock() + step, __ATOMIC_RELAXED);
	trace("clock +%" PRIu64 " ms", step);
	compare_all();
}

static void op_get(struct in *in)
{
	const uint8_t *k;
	size_t klen, vlen = 7;
	int kid = pick_key(in, &k, &klen);
	uint8_t mode = in_byte(in), extra = in_byte(in);
	int r;

	trace("get key %d mode %u", kid, mode % 6);
	if (kid < 0) {
		r = code(pkv_get(F.db, k, klen, gbuf, 16, &vlen));
		CHECK(r == key_error(kid), "get of a bad key: %s, expected %s", pkv_strerror(r),
		      pkv_strerror(key_error(kid)));
		return;
	}
	get_check(kid, mode, extra);
}

/*
 * The value a zero-copy read points at, against the model: @r is its return code, @val/@vlen
 * what it handed out, @seq the version it reports.
 */
static void ref_check(const char *call, int kid, int r, const void *val, size_t vlen,
		      uint64_t seq)
{
	const struct slot *s;

	if (kid < 0) {
		CHECK(r == key_error(kid), "%s of a bad key: %s, expected %s", call,
		      pkv_strerror(r), pkv_strerror(key_error(kid)));
		return;
	}
	s = &F.live.k[kid];
	if (!visible(s)) { /* A.10: an expired key reads as absent to zero-copy reads too */
		CHECK(r == PKV_NOTFOUND, "%s key %d: %s, expected NOTFOUND", call, kid,
		      pkv_strerror(r));
		CHECK(val == NULL && vlen == 0 && seq == 0, "%s key %d: absent but outputs set",
		      call, kid);
		return;
	}
	CHECK(r == 0, "%s key %d: %s, expected a value of %u bytes", call, kid, pkv_strerror(r),
	      s->len);
	CHECK(vlen == s->len, "%s key %d: %zu bytes, expected %u", call, kid, vlen, s->len);
	CHECK(seq >= 1 && seq <= F.seq, "%s key %d: seq %" PRIu64 " outside 1..%" PRIu64, call,
	      kid, seq, F.seq);
	fill(ebuf, s->len, s->seed);
	CHECK(vlen == 0 || memcmp(val, ebuf, vlen) == 0, "%s key %d: value differs (seed %u)",
	      call, kid, s->seed);
}

/*
 * pkv_get_ref in a read section (or outside one: PKV_EINVAL), and a call that waits for
 * readers inside the section: PKV_EINVAL, nothing changed (read.c RD.4).
 */
static void op_get_ref(struct in *in)
{
	const uint8_t *k;
	size_t klen, vlen = 7;
	int kid = pick_key(in, &k, &klen);
	uint8_t mode = in_byte(in);
	const void *val = &vlen;
	uint64_t seq = 9, last = F.seq;
	int r;

	trace("get_ref key %d mode %u", kid, mode % 8);
	if (mode % 8 == 7) {
		r = code(pkv_get_ref(F.db, k, klen, &val, &vlen, &seq));
		CHECK(r == PKV_EINVAL, "get_ref outside a section: %s", pkv_strerror(r));
		return;
	}
	CHECK(pkv_read_begin(F.db) == 0, "pkv_read_begin failed");
	r = code(pkv_get_ref(F.db, k, klen, &val, &vlen, &seq));
	ref_check("get_ref", kid, r, val, vlen, seq);
	if (mode % 8 == 1) {
		int w = code(pkv_compact(F.db));

		CHECK(w == PKV_EINVAL, "compact inside a section: %s", pkv_strerror(w));
	} else if (mode % 8 == 2) {
		int w = code(pkv_sync(F.db));

		CHECK(w == PKV_EINVAL, "sync inside a section: %s", pkv_strerror(w));
	}
	if (r == 0 && kid >= 0 && vlen > 0) /* still the same bytes before the end */
		CHECK(memcmp(val, ebuf, vlen) == 0, "get_ref key %d: bytes changed", kid);
	CHECK(pkv_read_end(F.db) == 0, "pkv_read_end failed");
	CHECK(pkv_read_end(F.db) == PKV_EINVAL, "a second pkv_read_end succeeded");
	CHECK(stats().last_seq == last, "a read section took a sequence number");
}

/* pkv_get_many over 1..24 items (bad keys and repeats among them), against the model. */
static void op_get_many(struct in *in)
{
	pkv_item it[24];
	int kids[24], n = 1 + in_byte(in) % 24, want = 0, r;

	for (int i = 0; i < n; i++) {
		const uint8_t *k;
		size_t klen;

		kids[i] = pick_key(in, &k, &klen);
		it[i].key = k;
		it[i].klen = klen;
		if (kids[i] >= 0 && visible(&F.live.k[kids[i]]))
			want++;
	}
	trace("get_many of %d keys", n);
	r = code(pkv_get_many(F.db, it, (size_t)n));
	CHECK(r == PKV_EINVAL, "get_many outside a section: %s", pkv_strerror(r));
	CHECK(pkv_read_begin(F.db) == 0, "pkv_read_begin failed");
	r = code(pkv_get_many(F.db, it, 0));
	CHECK(r == PKV_EINVAL, "get_many of 0 items: %s", pkv_strerror(r));
	r = pkv_get_many(F.db, it, (size_t)n); /* a count, or a code */
	if (r < 0)
		code(r);
	CHECK(r == want, "get_many found %d of %d keys, expected %d", r, n, want);
	for (int i = 0; i < n && r >= 0; i++) {
		code(it[i].rc);
		ref_check("get_many", kids[i], it[i].rc, it[i].val, it[i].vlen, it[i].seq);
		if (kids[i] >= 0 && it[i].rc == 0)
			CHECK(it[i].expires_ms == F.live.k[kids[i]].exp,
			      "get_many key %d: expires_ms %" PRIu64 ", expected %" PRIu64, kids[i],
			      it[i].expires_ms, F.live.k[kids[i]].exp);
		else
			CHECK(it[i].expires_ms == 0, "get_many: an expiry on a missing key");
	}
	CHECK(pkv_read_end(F.db) == 0, "pkv_read_end failed");
}

static void op_sync(void)
{
	int r = code(pkv_sync(F.db));

	trace("sync: %s", pkv_strerror(r));
	if (F.ro_open) {
		CHECK(r == PKV_EREADONLY, "sync of a read-only store: %s", pkv_strerror(r));
		return;
	}
	if (!faulted())
		CHECK(r == 0, "sync (no fault): %s", pkv_strerror(r));
	else
		CHECK(r == 0 || fault_code(r), "sync under a fault: %s", pkv_strerror(r));
	if (r == 0) {
		F.durable_min = F.seq;
	} else { /* A.4: a failed sync is final */
		pkv_stats st = stats();

		CHECK(st.readonly_reason != 0, "sync failed (%s), the store still takes writes",
		      pkv_strerror(r));
	}
}

/* Durability tickets: the last number issued, polled or waited on (sync.c S.8). */
static void op_ticket(struct in *in)
{
	uint8_t b = in_byte(in);
	int timeout = b % 3 == 0 ? 0 : b % 3 == 1 ? -1 : 20;
	uint64_t d = UINT64_MAX, seq = F.seq;
	int r;

	CHECK(pkv_durable_seq(F.db, &d) == 0 && d <= F.seq,
	      "durable_seq %" PRIu64 " above the last number issued %" PRIu64, d, F.seq);
	/* A.2: a number never issued. */
	r = code(pkv_wait_durable(F.db, seq + 1, timeout));
	CHECK(r == PKV_EINVAL, "wait on the unissued %" PRIu64 ": %s", seq + 1, pkv_strerror(r));
	r = code(pkv_wait_durable(F.db, seq, timeout));
	trace("ticket: wait(%" PRIu64 ", %d): %s", seq, timeout, pkv_strerror(r));
	if (F.ro_open)
		CHECK(r == PKV_EREADONLY || (r == 0 && seq <= d),
		      "ticket of a read-only store: %s", pkv_strerror(r));
	else if (!faulted())
		CHECK(r == 0 || (timeout == 0 && r == -EAGAIN) || (timeout > 0 && r == -ETIMEDOUT),
		      "ticket (no fault, timeout %d): %s", timeout, pkv_strerror(r));
	else
		CHECK(r == 0 || r == PKV_EREADONLY || (timeout == 0 && r == -EAGAIN) ||
			      (timeout > 0 && r == -ETIMEDOUT),
		      "ticket under a fault (timeout %d): %s", timeout, pkv_strerror(r));
	if (r == 0 && !F.ro_open) { /* never a false success */
		CHECK(pkv_durable_seq(F.db, &d) == 0 && d >= seq,
		      "wait returned 0, durable_seq %" PRIu64 " < %" PRIu64, d, seq);
		if (seq > F.durable_min)
			F.durable_min = seq;
	}
	if (r == PKV_EREADONLY && !F.ro_open) { /* A.4 */
		pkv_stats st = stats();

		CHECK(st.readonly_reason != 0, "ticket failed (%s), the store still takes writes",
		      pkv_strerror(r));
	}
}

static void op_compact(void)
{
	pkv_stats st0 = stats();
	int r = code(pkv_compact(F.db));

	trace("compact: %s", pkv_strerror(r));
	if (F.ro_open || st0.readonly_reason)
		CHECK(r == PKV_EREADONLY, "compact of a store refusing writes: %s",
		      pkv_strerror(r));
	else if (!faulted())
		CHECK(r == 0, "compact (no fault): %s", pkv_strerror(r));
	else
		CHECK(r == 0 || fault_code(r), "compact under a fault: %s", pkv_strerror(r));
	compare_all(); /* a compaction, failed or not, changes no value */
	check_stats();
	if (r == 0 && F.seq > 0) { /* every live key, up to the last write (A.8) */
		pkv_stats st = stats();

		CHECK(st.snapshot_seq == F.seq && st.snapshot_keys == model_count(&F.live),
		      "after a compaction: snapshot_seq %" PRIu64 " keys %" PRIu64
		      ", expected %" PRIu64 " and %u",
		      st.snapshot_seq, st.snapshot_keys, F.seq, model_count(&F.live));
	}
}

static void op_verify(void)
{
	int r = code(pkv_verify(F.db));

	trace("verify: %s", pkv_strerror(r));
	/* verify reads every WAL segment too (verify.c): an injected fault may take its reads. */
	CHECK(r == 0 || (faulted() && (r == -EIO || r == -ENOSPC)), "verify: %s", pkv_strerror(r));
}

static bool reopen_allowed(void)
{
	if (F.reopens >= MAX_REOPENS)
		return false;
	F.reopens++;
	return true;
}

static void op_reopen(struct in *in)
{
	pkv_options o;

	decode_opts(in, &o, true);
	if (!reopen_allowed())
		return;
	trace("reopen: durability %d lanes %u segment %zu shards %u flags %#x", (int)o.durability,
	      o.wal_lanes, o.wal_segment_bytes, o.shards, o.flags);
	close_store();
	open_store(&o);
}

static const unsigned fault_kinds[] = {
	0, /* every kind */
	FFS_BIT(FFS_FDATASYNC) | FFS_BIT(FFS_FSYNC),
	FFS_BIT(FFS_FDATASYNC),
	FFS_BIT(FFS_FSYNC),
	FFS_BIT(FFS_PWRITE),
	FFS_BIT(FFS_PREAD),
	FFS_BIT(FFS_FALLOCATE),
	FFS_BIT(FFS_OPEN),
	FFS_BIT(FFS_RENAME),
	FFS_BIT(FFS_UNLINK),
	FFS_BIT(FFS_MMAP),
	FFS_BIT(FFS_FTRUNCATE),
	FFS_BIT(FFS_CLOSE) | FFS_BIT(FFS_MUNMAP),
	FFS_BIT(FFS_FSTAT_SIZE) | FFS_BIT(FFS_FLOCK) | FFS_BIT(FFS_MKDIR),
};

static void decode_fault(struct in *in, struct ffs_fault *f)
{
	uint8_t a = in_byte(in), b = in_byte(in), c = in_byte(in);

	memset(f, 0, sizeof(*f));
	f->action = (c & 0x18) == 0x18 ? FFS_SHORT : FFS_FAIL;
	f->kinds = fault_kinds[a % (sizeof(fault_kinds) / sizeof(fault_kinds[0]))];
	f->nth = 1 + b % 32;
	f->err = c & 1 ? ENOSPC : EIO;
	f->persistent = c & 2;
	f->this_thread = c & 4;
}

static void arm(const struct ffs_fault *f)
{
	trace("arm: %s operation %" PRIu64 " of kinds %#x%s%s%s%s",
	      f->action == FFS_SHORT ? "shorten" : "fail", f->nth, f->kinds,
	      f->persistent ? " and every later one" : "", f->this_thread ? ", this thread's" : "",
	      f->action == FFS_FAIL ? " with " : "", f->action == FFS_FAIL ? strerror(f->err) : "");
	if (f->action == FFS_FAIL)
		F.fail_armed = true;
	ffs_arm(f);
}

static void op_fault(struct in *in)
{
	struct ffs_fault f;

	decode_fault(in, &f);
	arm(&f);
}

static void op_disarm(void)
{
	trace("disarm");
	ffs_disarm(); /* what a fault did stays: the session stays "faulted" (A.1) */
}

/*
 * A crash: every operation fails from now on (background threads included), the store is
 * closed, and reopened with the production table (A.5); then closed and opened again with
 * faultfs for the calls that follow.
 */
static void op_crash(struct in *in)
{
	struct ffs_fault f = { .action = FFS_FAIL, .nth = 1, .persistent = true };
	pkv_options o;
	int r;

	f.err = in_byte(in) & 1 ? ENOSPC : EIO;
	decode_opts(in, &o, true);
	if (!reopen_allowed())
		return;
	arm(&f);
	r = code(pkv_close(F.db));
	F.db = NULL;
	trace("crash: close %s; reopen: durability %d lanes %u segment %zu flags %#x",
	      pkv_strerror(r), (int)o.durability, o.wal_lanes, o.wal_segment_bytes, o.flags);
	ffs_uninstall();
	F.fail_armed = false;
	session_begin(&o);
	r = code(pkv_open(F.dir, &o, &F.db));
	CHECK(r == 0, "open after a crash: %s", pkv_strerror(r));
	resolve();
	r = code(pkv_close(F.db));
	F.db = NULL;
	CHECK(r == 0, "close after the recovery: %s", pkv_strerror(r));
	open_store(&o);
}

/* Open under a fault: it succeeds (the session goes on with the fault armed) or fails with a
 * clean code, and then a plain open must succeed (A.5 either way). */
static void op_open_fault(struct in *in)
{
	struct ffs_fault f;
	pkv_options o;
	int r;

	decode_opts(in, &o, true);
	decode_fault(in, &f);
	if (!reopen_allowed())
		return;
	trace("open under a fault: durability %d lanes %u segment %zu flags %#x", (int)o.durability,
	      o.wal_lanes, o.wal_segment_bytes, o.flags);
	close_store();
	ffs_install();
	ffs_set_sync_elide(true);
	F.fail_armed = false;
	arm(&f);
	session_begin(&o);
	r = code(pkv_open(F.dir, &o, &F.db));
	trace("open under a fault: %s", pkv_strerror(r));
	if (r == 0) {
		resolve();
		return;
	}
	CHECK(f.action == FFS_FAIL && ffs_injected() > 0, "open failed with no fault injected: %s",
	      pkv_strerror(r));
	CHECK(r == -EIO || r == -ENOSPC, "open under a fault: %s", pkv_strerror(r));
	F.db = NULL;
	open_store(&o);
}

/* A.2 for the pointers, flags and options the key/value pickers do not reach. */
static void op_badargs(void)
{
	static const uint8_t k[1] = { 'k' };
	pkv_options o;
	pkv_stats st;
	size_t vlen;
	pkv *other = NULL;
	int r;

	trace("bad arguments");
	CHECK(pkv_put(NULL, k, 1, k, 1) == PKV_EINVAL, "put(NULL db)");
	CHECK(pkv_put(F.db, NULL, 1, k, 1) == PKV_EINVAL, "put(NULL key)");
	CHECK(pkv_put(F.db, k, 1, NULL, 5) == PKV_EINVAL, "put(NULL value, 5)");
	CHECK(pkv_put_ex(F.db, k, 1, k, 1, 0x80) == PKV_EINVAL, "put_ex(unknown flag)");
	CHECK(pkv_del(NULL, k, 1) == PKV_EINVAL, "del(NULL db)");
	CHECK(pkv_del(F.db, NULL, 1) == PKV_EINVAL, "del(NULL key)");
	CHECK(pkv_del_ex(F.db, k, 1, 2) == PKV_EINVAL, "del_ex(unknown flag)");
	CHECK(pkv_get(NULL, k, 1, gbuf, 1, &vlen) == PKV_EINVAL, "get(NULL db)");
	CHECK(pkv_get(F.db, NULL, 1, gbuf, 1, &vlen) == PKV_EINVAL, "get(NULL key)");
	CHECK(pkv_get(F.db, k, 1, NULL, 5, &vlen) == PKV_EINVAL, "get(NULL buf, 5)");
	CHECK(pkv_get(F.db, k, 1, gbuf, 1, NULL) == PKV_EINVAL, "get(NULL vlen)");
	CHECK(pkv_sync(NULL) == PKV_EINVAL, "sync(NULL)");
	CHECK(pkv_compact(NULL) == PKV_EINVAL, "compact(NULL)");
	CHECK(pkv_verify(NULL) == PKV_EINVAL, "verify(NULL)");
	CHECK(pkv_get_stats(NULL, &st) == PKV_EINVAL, "get_stats(NULL db)");
	CHECK(pkv_get_stats(F.db, NULL) == PKV_EINVAL, "get_stats(NULL out)");
	CHECK(pkv_close(NULL) == 0, "close(NULL)");
	{
		pkv_batch *b = NULL;

		CHECK(pkv_batch_new(NULL) == PKV_EINVAL, "batch_new(NULL)");
		CHECK(pkv_batch_new(&b) == 0 && pkv_batch_put(b, k, 1, k, 1) == 0, "batch");
		CHECK(pkv_write(NULL, b, 0, NULL) == PKV_EINVAL, "write(NULL db)");
		CHECK(pkv_write(F.db, NULL, 0, NULL) == PKV_EINVAL, "write(NULL batch)");
		CHECK(pkv_write(F.db, b, 2, NULL) == PKV_EINVAL, "write(unknown flag)");
		CHECK(pkv_put_expire(F.db, k, 1, k, 1, 5, 0x40) == PKV_EINVAL,
		      "put_expire(unknown flag)");
		CHECK(pkv_put_expire(NULL, k, 1, k, 1, 5, 0) == PKV_EINVAL, "put_expire(NULL db)");
		CHECK(pkv_clear(NULL) == PKV_EINVAL, "clear(NULL)");
		pkv_batch_free(b);
		pkv_batch_free(NULL);
	}
	/* Not bad, but here: the thread leaves RCU and is registered again by its next call. */
	CHECK(pkv_thread_detach() == 0 && pkv_thread_detach() == 0, "thread_detach");
	get_check(0, 5, 0);
	CHECK(pkv_thread_attach() == 0 && pkv_thread_attach() == 0, "thread_attach");
	CHECK(pkv_open(F.dir, NULL, NULL) == PKV_EINVAL, "open(NULL db_out)");
	CHECK(pkv_open("", NULL, &other) == PKV_EINVAL && other == NULL, "open(\"\")");
	for (int i = 0; i < 7; i++) {
		pkv_options_default(&o);
		switch (i) {
		case 0:
			o.durability = (enum pkv_durability)7;
			break;
		case 1:
			o.durability = PKV_DURABLE_PERIODIC;
			o.sync_interval_ms = 3600001;
			break;
		case 2:
			o.wal_lanes = 65;
			break;
		case 3:
			o.wal_segment_bytes = 4096;
			break;
		case 4:
			o.shards = 3;
			break;
		case 5:
			o.compact_wal_bytes = 4096;
			break;
		default:
			o.flags = 0x100;
			break;
		}
		r = code(pkv_open(F.dir, &o, &other));
		CHECK(r == PKV_EINVAL && other == NULL, "open with bad option %d: %s", i,
		      pkv_strerror(r));
	}
	/* A second handle on the open directory: a writer never shares it; read-only handles
	 * share it with each other (flock LOCK_SH), never with a writer. */
	for (int ro = 0; ro < 2; ro++) {
		bool shared = ro && F.ro_open;

		pkv_options_default(&o);
		o.flags = ro ? PKV_OPEN_READONLY : 0;
		r = code(pkv_open(F.dir, &o, &other));
		if (shared && r == 0) {
			CHECK(other != NULL, "a second read-only open gave no handle");
			CHECK(code(pkv_close(other)) == 0, "close of the second read-only handle");
			other = NULL;
			continue;
		}
		CHECK(other == NULL, "a second open (%s) of %s succeeded",
		      ro ? "read-only" : "for writing", F.dir);
		if (!faulted() && !shared)
			CHECK(r == PKV_ELOCKED, "a second open (%s): %s, expected ELOCKED",
			      ro ? "read-only" : "for writing", pkv_strerror(r));
		else
			CHECK(r == PKV_ELOCKED || r == -EIO || r == -ENOSPC || r == -ENOMEM,
			      "a second open (%s): %s", ro ? "read-only" : "for writing",
			      pkv_strerror(r));
	}
	check_stats(); /* nothing of this took a sequence number */
}

/* ---- the driver ---------------------------------------------------------------------------- */

enum call {
	C_PUT,
	C_PUT_EX,
	C_GET,
	C_DEL,
	C_DEL_EX,
	C_SYNC,
	C_COMPACT,
	C_VERIFY,
	C_STATS,
	C_REOPEN,
	C_CRASH,
	C_FAULT,
	C_DISARM,
	C_OPEN_FAULT,
	C_BADARGS,
	C_COMPARE,
	C_GET_REF,
	C_GET_MANY,
	C_PUTX,
	C_BATCH,
	C_CLEAR,
	C_CLOCK,
	C_TICKET,
};

static const char *const call_names[] = {
	[C_PUT] = "put",
	[C_PUT_EX] = "put_ex",
	[C_GET] = "get",
	[C_DEL] = "del",
	[C_DEL_EX] = "del_ex",
	[C_SYNC] = "sync",
	[C_COMPACT] = "compact",
	[C_VERIFY] = "verify",
	[C_STATS] = "stats",
	[C_REOPEN] = "reopen",
	[C_CRASH] = "crash",
	[C_FAULT] = "fault",
	[C_DISARM] = "disarm",
	[C_OPEN_FAULT] = "open under a fault",
	[C_BADARGS] = "bad arguments",
	[C_COMPARE] = "compare",
	[C_GET_REF] = "get_ref",
	[C_GET_MANY] = "get_many",
	[C_PUTX] = "put_expire",
	[C_BATCH] = "batch",
	[C_CLEAR] = "clear",
	[C_CLOCK] = "clock",
	[C_TICKET] = "ticket",
};

/* A call's byte (mod 32) -> the call: writes and gets most often. */
static const uint8_t call_of[32] = {
	C_PUT,	  C_PUT,	C_PUT,	   C_PUT,     C_CLEAR, C_TICKET, C_PUT_EX, C_PUT_EX,
	C_GET,	  C_GET,	C_GET,	   C_GET,     C_GET_REF, C_DEL,	 C_DEL,	   C_DEL,
	C_DEL_EX, C_SYNC,	C_COMPACT, C_VERIFY,  C_STATS, C_REOPEN, C_CRASH,  C_FAULT,
	C_DISARM, C_OPEN_FAULT, C_BADARGS, C_COMPARE, C_BATCH, C_PUTX,	 C_GET_MANY, C_CLOCK,
};

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void rm_tree(const char *path)
{
	(void)nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void cleanup_root(void)
{
	if (F.root[0])
		rm_tree(F.root);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *tmp = getenv("TMPDIR");

	(void)argc;
	(void)argv;
	snprintf(F.root, sizeof(F.root), "%s/pkv-fuzz-api-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
	if (mkdtemp(F.root) == NULL) {
		perror("fuzz_api: mkdtemp");
		abort();
	}
	snprintf(F.dir, sizeof(F.dir), "%s/db", F.root);
	atexit(cleanup_root);
	F.trace = getenv("PKV_FUZZ_TRACE") && getenv("PKV_FUZZ_TRACE")[0] == '1';
	vbuf = malloc(PKV_MAX_VALUE + 1);
	ebuf = malloc(PKV_MAX_VALUE + 1);
	gbuf = malloc(PKV_MAX_VALUE + GBUF_SLACK);
	if (vbuf == NULL || ebuf == NULL || gbuf == NULL)
		abort();
	for (int i = 0; i < NKEYS; i++)
		for (int j = 0; j <= (int)PKV_MAX_KEY; j++) /* key 0 is a single NUL byte */
			keys[i][j] = (uint8_t)(i * 37 + j * 11 + (j >> 3));
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct in in = { .p = data, .n = size };
	pkv_options o;

	rm_tree(F.dir);
	__atomic_store_n(&fake_now, 1700000000000ull, __ATOMIC_RELAXED); /* A.10 */
	pkv__clock_set(fake_clock);
	memset(&F.live, 0, sizeof(F.live));
	memset(&F.stable, 0, sizeof(F.stable));
	F.stable_seq = F.seq = 0;
	F.ntail = 0;
	F.serial = 0;
	F.op = F.reopens = F.huge = 0;
	F.what = "open";
	pthread_mutex_lock(&log_mu);
	memset(log_ring, 0, sizeof(log_ring));
	pthread_mutex_unlock(&log_mu);

	decode_opts(&in, &o, false);
	trace("open: durability %d lanes %u segment %zu shards %u flags %#x", (int)o.durability,
	      o.wal_lanes, o.wal_segment_bytes, o.shards, o.flags);
	open_store(&o);
	while (in.off < in.n && F.op < MAX_OPS) {
		uint8_t b = in_byte(&in);

		F.op++;
		F.what = call_names[call_of[b % 32]];
		switch (call_of[b % 32]) {
		case C_PUT:
			op_write(&in, false, false, false);
			break;
		case C_PUT_EX:
			op_write(&in, false, true, false);
			break;
		case C_PUTX:
			op_write(&in, false, false, true);
			break;
		case C_BATCH:
			op_batch(&in);
			break;
		case C_CLEAR:
			op_clear();
			break;
		case C_CLOCK:
			op_clock(&in);
			break;
		case C_GET:
			op_get(&in);
			break;
		case C_DEL:
			op_write(&in, true, false, false);
			break;
		case C_DEL_EX:
			op_write(&in, true, true, false);
			break;
		case C_SYNC:
			op_sync();
			break;
		case C_COMPACT:
			op_compact();
			break;
		case C_VERIFY:
			op_verify();
			break;
		case C_STATS:
			check_stats();
			break;
		case C_REOPEN:
			op_reopen(&in);
			break;
		case C_CRASH:
			op_crash(&in);
			break;
		case C_FAULT:
			op_fault(&in);
			break;
		case C_DISARM:
			op_disarm();
			break;
		case C_OPEN_FAULT:
			op_open_fault(&in);
			break;
		case C_BADARGS:
			op_badargs();
			break;
		case C_GET_REF:
			op_get_ref(&in);
			break;
		case C_GET_MANY:
			op_get_many(&in);
			break;
		case C_TICKET:
			op_ticket(&in);
			break;
		default:
			compare_all();
			break;
		}
	}
	F.what = "final close";
	ffs_disarm();
	close_store();
	ffs_uninstall();
	return 0;
}
