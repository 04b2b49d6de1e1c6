/* SPDX-License-Identifier: MIT */
/*
 * concurrent.c - torture driver: 2 writers, 2 readers and a compactor on one store.
 *
 * Plain pthreads, no test framework, so that it runs under ThreadSanitizer (Criterion 2.4.1 does
 * not start under TSan). It is THE concurrency test of the TSan build, and with a library built
 * with PKV_TEST_SKIP_GRACE_PERIOD it is the negative control that must make TSan fire.
 *
 * Keys. Ids [0, nshared) are shared: both writers put and delete them. Ids [nshared, nkeys) are
 * exclusive: only writer (id & 1) writes them, so their history is a single sequence.
 *
 * Values are self-checking: a 32-byte header (magic, key id, writer id, body length, version,
 * checksum) and a body whose length and bytes are a function of (key, writer, version) alone.
 * A reader regenerates the body and compares every byte, so a torn, stale-freed or misplaced
 * value cannot pass.
 *
 * What a reader checks on every get (C = check number, cited in failure messages):
 *  C1  the value decodes: magic, key id, writer id, length = 32 + body length, checksum, body.
 *  C2  it was really written: its version is <= the version its writer had started for that
 *      key (read after the get), and an exclusive key's value comes from its owner.
 *  C3  per reader, per (key, writer), versions never go backwards.
 *  C4  exclusive keys are linearizable: with A = last acknowledged version (read before the
 *      get) and S = last started version (read after), the get returns a put version in [A, S],
 *      or PKV_NOTFOUND only if a delete (or "never written", version 0) lies in [A, S].
 *  C5  partial copies: with cap 0 only the length is reported; with cap 32 exactly 32 bytes
 *      are copied (a canary behind them survives) and the length matches the header.
 * Writers check every return code (an exclusive key's delete must return 0 exactly when the key
 * is present). The compactor checks pkv_compact() and pkv_get_stats(). At the end the final
 * state is compared with each writer's last operation (C6), the store is closed and reopened,
 * and the recovered state must equal the state before close (C7), with stats.keys matching.
 *
 * Usage: concurrent [--seconds N] [--ops N] [--keys N] [--seed N] [--mem] [--dir PARENT]
 *                   [--durability process|power|periodic] [--compact-ms N] [--keep] [--quiet]
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pkv.h"
#include "stress_util.h"

#define NWRITERS 2
#define NREADERS 2
#define VMAGIC 0x564b5053u /* "SPKV" */
#define MAX_BODY 65536u
#define MAX_FAIL_PRINT 30

struct vhdr {
	uint32_t magic;
	uint32_t key;
	uint32_t writer;
	uint32_t body_len;
	uint64_t version;
	uint64_t sum; /* FNV-1a over bytes 0..23 of this header, then the body */
};
_Static_assert(sizeof(struct vhdr) == 32, "value header is 32 bytes");
#define HDR ((size_t)sizeof(struct vhdr))
#define MAX_VAL (HDR + MAX_BODY)

struct cfg {
	double seconds;
	uint64_t ops;
	unsigned nkeys;
	uint64_t seed;
	bool mem;
	const char *parent;
	enum pkv_durability durability;
	unsigned compact_ms;
	bool keep;
	bool quiet;
};

static struct cfg cfg = {
	.seconds = 0,
	.ops = 0,
	.nkeys = 512,
	.seed = 1,
	.mem = false,
	.parent = NULL,
	.durability = PKV_DURABLE_PROCESS,
	.compact_ms = 50,
	.keep = false,
	.quiet = false,
};

static pkv *db;
static unsigned nshared; /* ids below are shared by both writers; even */
static double deadline;
static atomic_int stop_flag; /* readers and compactor stop when set */

/* started[k * 2 + w]: last version writer w started on key k (stored before the write).
 * acked[k]: last version of exclusive key k whose write returned (stored after). */
static _Atomic uint64_t *started;
static _Atomic uint64_t *acked;

static atomic_ullong passed_total;
static atomic_ullong failed_total;
static pthread_mutex_t print_lock = PTHREAD_MUTEX_INITIALIZER;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
	unsigned long long n = atomic_fetch_add(&failed_total, 1) + 1;
	va_list ap;

	if (n > MAX_FAIL_PRINT)
		return;
	pthread_mutex_lock(&print_lock);
	fputs("FAIL: ", stdout);
	va_start(ap, fmt);
	vfprintf(stdout, fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	if (n == MAX_FAIL_PRINT)
		puts("FAIL: (further failures are counted, not printed)");
	fflush(stdout);
	pthread_mutex_unlock(&print_lock);
}

/* ---- keys and values ------------------------------------------------------------------ */

static bool is_exclusive(unsigned k)
{
	return k >= nshared;
}

static unsigned owner_of(unsigned k)
{
	return k & 1u;
}

/* A delete or a put? A pure function of (key, version) so readers can tell (exclusive keys). */
static bool excl_is_del(unsigned k, uint64_t v)
{
	return v != 0 && su_hash3(k, v, 0xde1e7e) % 5 == 0;
}

/* Key bytes for id @k: "key:<id>:" plus padding; a few keys have the maximum length. */
static size_t make_key(unsigned k, char *buf /* OUT: PKV_MAX_KEY bytes */)
{
	int n = snprintf(buf, PKV_MAX_KEY, "key:%u:", k);
	size_t len = (size_t)n;
	size_t want = (k % 61 == 7) ? PKV_MAX_KEY : len + k % 37;

	memset(buf + len, 'a' + (int)(k % 26), want - len);
	return want;
}

static uint32_t body_len_of(unsigned k, unsigned w, uint64_t v)
{
	uint64_t h = su_hash3(k, w, v);
	unsigned r = (unsigned)(h & 255);

	h >>= 8;
	if (r == 0)
		return (uint32_t)(h % (MAX_BODY + 1));
	if (r < 32)
		return (uint32_t)(h % 4097);
	return (uint32_t)(h % 201);
}

static uint64_t body_seed(unsigned k, unsigned w, uint64_t v)
{
	return su_hash3(k ^ 0x5eed0000u, w, v);
}

static uint64_t value_sum(const struct vhdr *h, const unsigned char *body)
{
	return su_fnv(su_fnv(SU_FNV_INIT, h, 24), body, h->body_len);
}

static size_t make_value(unsigned k, unsigned w, uint64_t v, unsigned char *buf /* OUT */)
{
	struct vhdr h = {
		.magic = VMAGIC,
		.key = k,
		.writer = w,
		.body_len = body_len_of(k, w, v),
		.version = v,
	};

	su_fill(buf + HDR, h.body_len, body_seed(k, w, v));
	h.sum = value_sum(&h, buf + HDR);
	memcpy(buf, &h, HDR);
	return HDR + h.body_len;
}

/*
 * C1: does @buf (@len bytes, the whole value) decode as a value for key @k? On success the
 * header is stored in @out. @scratch holds MAX_BODY bytes.
 */
static bool decode_full(unsigned k, const unsigned char *buf, size_t len, struct vhdr *out,
			unsigned char *scratch, char *why, size_t whycap)
{
	struct vhdr h;

	if (len < HDR) {
		snprintf(why, whycap, "value of %zu bytes is shorter than its header", len);
		return false;
	}
	memcpy(&h, buf, HDR);
	if (h.magic != VMAGIC || h.key != k || h.writer >= NWRITERS) {
		snprintf(why, whycap, "bad header: magic %08x key %u writer %u (want key %u)",
			 h.magic, h.key, h.writer, k);
		return false;
	}
	if (h.body_len != body_len_of(k, h.writer, h.version) || len != HDR + h.body_len) {
		snprintf(why, whycap,
			 "length %zu, header body_len %u, expected body_len %u (w%u v%" PRIu64 ")",
			 len, h.body_len, body_len_of(k, h.writer, h.version), h.writer, h.version);
		return false;
	}
	if (h.sum != value_sum(&h, buf + HDR)) {
		snprintf(why, whycap, "checksum mismatch (w%u v%" PRIu64 ")", h.writer, h.version);
		return false;
	}
	su_fill(scratch, h.body_len, body_seed(k, h.writer, h.version));
	if (memcmp(scratch, buf + HDR, h.body_len) != 0) {
		snprintf(why, whycap, "body differs from what w%u wrote at v%" PRIu64, h.writer,
			 h.version);
		return false;
	}
	*out = h;
	return true;
}

static uint64_t load_started(unsigned k, unsigned w)
{
	return atomic_load(&started[k * NWRITERS + w]);
}

/* ---- writers ---------------------------------------------------------------------------- */

struct wstats {
	uint64_t puts, dels, dels_absent, ops;
};

struct writer {
	pthread_t tid;
	unsigned id;
	struct wstats st;
	uint64_t *last; /* [k * 2 + w]: this writer's last version on shared key k */
	unsigned char *del; /* [k]: was this writer's last op on shared key k a delete? */
	unsigned char *present; /* [k]: exclusive key k currently present (owner's knowledge) */
};

static struct writer writers[NWRITERS];

static void racy_pause(struct su_rng *rng)
{
	uint64_t r = su_rng_below(rng, 4096);

	if (r == 0)
		su_sleep_ms(0.05);
	else if (r < 24)
		sched_yield();
}

static void *writer_main(void *arg)
{
	struct writer *wr = arg;
	unsigned w = wr->id;
	unsigned nexcl = (cfg.nkeys - nshared + 1 - w) / 2;
	unsigned char *val = malloc(MAX_VAL);
	char key[PKV_MAX_KEY];
	struct su_rng rng;

	su_rng_seed(&rng, cfg.seed * 1000003u + w);
	if (val == NULL) {
		fail("writer %u: out of memory", w);
		return NULL;
	}
	for (uint64_t op = 0;; op++) {
		unsigned k;
		uint64_t v;
		size_t klen, vlen;
		bool ok;
		int rc;

		if ((op & 31) == 0 && (atomic_load(&stop_flag) || su_now() >= deadline))
			break;
		if (cfg.ops != 0 && op >= cfg.ops)
			break;
		if (nshared > 0 && (su_rng_next(&rng) & 1))
			k = (unsigned)su_rng_below(&rng, nshared);
		else
			k = nshared + 2 * (unsigned)su_rng_below(&rng, nexcl) + w;
		klen = make_key(k, key);
		v = load_started(k, w) + 1; /* only this writer stores this slot */
		atomic_store(&started[k * NWRITERS + w], v);
		racy_pause(&rng);

		if (is_exclusive(k)) {
			if (excl_is_del(k, v)) {
				int want = wr->present[k] ? 0 : PKV_NOTFOUND;

				rc = pkv_del(db, key, klen);
				ok = rc == want;
				if (!ok)
					fail("C0 writer %u: del(key %u, v%" PRIu64
					     ") = %d (%s), expected %d",
					     w, k, v, rc, pkv_strerror(rc), want);
				wr->present[k] = 0;
				wr->st.dels++;
				wr->st.dels_absent += (rc == PKV_NOTFOUND);
			} else {
				vlen = make_value(k, w, v, val);
				rc = pkv_put(db, key, klen, val, vlen);
				ok = rc == 0;
				if (!ok)
					fail("C0 writer %u: put(key %u, v%" PRIu64
					     ", %zu bytes) = %d (%s)",
					     w, k, v, vlen, rc, pkv_strerror(rc));
				wr->present[k] = 1;
				wr->st.puts++;
			}
			atomic_store(&acked[k], v);
		} else if (su_rng_below(&rng, 8) == 0) {
			rc = pkv_del(db, key, klen);
			ok = rc == 0 || rc == PKV_NOTFOUND;
			if (!ok)
				fail("C0 writer %u: del(shared key %u) = %d (%s)", w, k, rc,
				     pkv_strerror(rc));
			wr->last[k * NWRITERS + w] = v;
			wr->del[k] = 1;
			wr->st.dels++;
			wr->st.dels_absent += (rc == PKV_NOTFOUND);
		} else {
			unsigned flags = su_rng_below(&rng, 512) == 0 ? PKV_WRITE_POWER : 0;

			vlen = make_value(k, w, v, val);
			rc = pkv_put_ex(db, key, klen, val, vlen, flags);
			ok = rc == 0;
			if (!ok)
				fail("C0 writer %u: put(shared key %u, v%" PRIu64
				     ", %zu bytes, flags %u) = %d (%s)",
				     w, k, v, vlen, flags, rc, pkv_strerror(rc));
			wr->last[k * NWRITERS + w] = v;
			wr->del[k] = 0;
			wr->st.puts++;
		}
		if (ok)
			atomic_fetch_add_explicit(&passed_total, 1, memory_order_relaxed);
		wr->st.ops++;
	}
	free(val);
	return NULL;
}

/* ---- readers ---------------------------------------------------------------------------- */

struct rstats {
	uint64_t gets, hits, misses, partial;
};

struct reader {
	pthread_t tid;
	unsigned id;
	struct rstats st;
	uint64_t *seen; /* [k * 2 + w]: highest version of (k, w) this reader saw (C3) */
};

static struct reader readers[NREADERS];

/* C2, C3, C4 for a value of key @k with header @h; @a is acked[k] read before the get. */
static bool check_version(struct reader *rd, unsigned k, const struct vhdr *h, uint64_t a,
			  char *why, size_t whycap)
{
	unsigned w = h->writer;
	uint64_t v = h->version;
	uint64_t s = load_started(k, w);
	uint64_t *seen = &rd->seen[k * NWRITERS + w];

	if (v == 0 || v > s) {
		snprintf(why, whycap,
			 "C2 key %u: w%u v%" PRIu64 " was never started (started %" PRIu64 ")", k,
			 w, v, s);
		return false;
	}
	if (is_exclusive(k) && w != owner_of(k)) {
		snprintf(why, whycap, "C2 exclusive key %u holds a value of writer %u", k, w);
		return false;
	}
	if (v < *seen) {
		snprintf(why, whycap,
			 "C3 key %u w%u: version went back from %" PRIu64 " to %" PRIu64, k, w,
			 *seen, v);
		return false;
	}
	*seen = v;
	if (is_exclusive(k)) {
		if (v < a) {
			snprintf(why, whycap,
				 "C4 key %u: got v%" PRIu64 " but v%" PRIu64
				 " was acknowledged before the get",
				 k, v, a);
			return false;
		}
		if (excl_is_del(k, v)) {
			snprintf(why, whycap,
				 "C4 key %u: got a value for v%" PRIu64 ", which was a delete", k,
				 v);
			return false;
		}
	}
	return true;
}

static void *reader_main(void *arg)
{
	struct reader *rd = arg;
	unsigned char *buf = malloc(MAX_VAL + 64);
	unsigned char *scratch = malloc(MAX_BODY);
	char key[PKV_MAX_KEY];
	char why[256];
	struct su_rng rng;

	su_rng_seed(&rng, cfg.seed * 7919u + 100 + rd->id);
	if (buf == NULL || scratch == NULL) {
		fail("reader %u: out of memory", rd->id);
		goto out;
	}
	/* One reader registers explicitly, the other relies on registration at first use. */
	if (rd->id == 0 && pkv_thread_attach() != 0)
		fail("reader 0: pkv_thread_attach failed");

	while (!atomic_load_explicit(&stop_flag, memory_order_relaxed)) {
		unsigned k = (unsigned)su_rng_below(&rng, cfg.nkeys);
		size_t klen = make_key(k, key);
		/* mode: < 90 whole value, < 95 length only (cap 0), else the header (cap 32) */
		unsigned mode = (unsigned)su_rng_below(&rng, 100);
		uint64_t a = is_exclusive(k) ? atomic_load(&acked[k]) : 0;
		size_t vlen = (size_t)-1;
		size_t cap = mode < 90 ? MAX_VAL : mode < 95 ? 0 : HDR;
		struct vhdr h;
		bool ok = true;
		int rc;

		memset(buf + HDR, 0xA5, 8); /* canary for cap == HDR (C5) */
		rc = pkv_get(db, key, klen, cap ? buf : NULL, cap, &vlen);
		rd->st.gets++;
		if (rc == PKV_NOTFOUND) {
			rd->st.misses++;
			if (is_exclusive(k)) {
				uint64_t s = load_started(k, owner_of(k));
				bool legal = false;

				for (uint64_t v = a; v <= s && !legal; v++)
					legal = (v == 0) || excl_is_del(k, v);
				if (!legal) {
					snprintf(why, sizeof(why),
						 "C4 key %u: PKV_NOTFOUND, but no delete in [v%" PRIu64
						 ", v%" PRIu64 "]",
						 k, a, s);
					ok = false;
				}
			}
		} else if (rc != 0) {
			snprintf(why, sizeof(why), "get(key %u) = %d (%s)", k, rc,
				 pkv_strerror(rc));
			ok = false;
		} else if (mode < 90) {
			rd->st.hits++;
			ok = decode_full(k, buf, vlen, &h, scratch, why, sizeof(why)) &&
			     check_version(rd, k, &h, a, why, sizeof(why));
			if (ok && vlen > cap) {
				snprintf(why, sizeof(why), "C5 key %u: length %zu > %zu", k, vlen,
					 cap);
				ok = false;
			}
		} else if (mode < 95) {
			rd->st.hits++;
			rd->st.partial++;
			if (vlen < HDR || vlen > MAX_VAL) {
				snprintf(why, sizeof(why), "C5 key %u: cap 0 reported length %zu",
					 k, vlen);
				ok = false;
			}
		} else {
			unsigned char canary[8];

			rd->st.hits++;
			rd->st.partial++;
			memset(canary, 0xA5, sizeof(canary));
			memcpy(&h, buf, HDR);
			if (memcmp(buf + HDR, canary, sizeof(canary)) != 0) {
				snprintf(why, sizeof(why),
					 "C5 key %u: get with cap %zu wrote past cap", k, cap);
				ok = false;
			} else if (vlen < HDR || h.magic != VMAGIC || h.key != k ||
				   h.writer >= NWRITERS ||
				   h.body_len != body_len_of(k, h.writer, h.version) ||
				   vlen != HDR + h.body_len) {
				snprintf(
					why, sizeof(why),
					"C5 key %u: cap %zu, length %zu, header magic %08x key %u writer %u body_len %u",
					k, cap, vlen, h.magic, h.key, h.writer, h.body_len);
				ok = false;
			} else {
				ok = check_version(rd, k, &h, a, why, sizeof(why));
			}
		}
		if (ok)
			atomic_fetch_add_explicit(&passed_total, 1, memory_order_relaxed);
		else
			fail("reader %u: %s", rd->id, why);
		racy_pause(&rng);
	}
out:
	free(buf);
	free(scratch);
	return NULL;
}

/* ---- compactor -------------------------------------------------------------------------- */

static uint64_t compacts;

static void *compactor_main(void *arg)
{
	struct su_rng rng;

	(void)arg;
	su_rng_seed(&rng, cfg.seed * 31337u);
	while (!atomic_load(&stop_flag)) {
		pkv_stats st;
		int rc;

		su_sleep_ms((double)cfg.compact_ms *
			    (0.5 + (double)su_rng_below(&rng, 1000) / 1000.0));
		if (atomic_load(&stop_flag))
			break;
		rc = pkv_compact(db);
		compacts++;
		if (rc != 0)
			fail("compactor: pkv_compact = %d (%s)", rc, pkv_strerror(rc));
		else
			atomic_fetch_add_explicit(&passed_total, 1, memory_order_relaxed);
		rc = pkv_get_stats(db, &st);
		if (rc != 0)
			fail("compactor: pkv_get_stats = %d (%s)", rc, pkv_strerror(rc));
		else if (st.keys > cfg.nkeys)
			fail("compactor: stats.keys %" PRIu64 " > %u distinct keys ever written",
			     st.keys, cfg.nkeys);
		else
			atomic_fetch_add_explicit(&passed_total, 1, memory_order_relaxed);
	}
	return NULL;
}

/* ---- final checks ----------------------------------------------------------------------- */

/* What the store holds for key k after the run: absent, or (writer, version). */
struct final {
	bool present;
	unsigned w;
	uint64_t v;
};

/* Get key @k and compare with @want exactly (used for C6 candidates and C7). */
static bool get_matches(unsigned k, const struct final *want, unsigned char *buf,
			unsigned char *scratch, char *why, size_t whycap)
{
	char key[PKV_MAX_KEY];
	size_t klen = make_key(k, key);
	size_t vlen = 0;
	struct vhdr h;
	int rc = pkv_get(db, key, klen, buf, MAX_VAL, &vlen);

	if (!want->present) {
		if (rc == PKV_NOTFOUND)
			return true;
		snprintf(why, whycap, "key %u: expected absent, get = %d", k, rc);
		return false;
	}
	if (rc != 0) {
		snprintf(why, whycap, "key %u: expected w%u v%" PRIu64 ", get = %d (%s)", k,
			 want->w, want->v, rc, pkv_strerror(rc));
		return false;
	}
	if (!decode_full(k, buf, vlen, &h, scratch, why, whycap))
		return false;
	if (h.writer != want->w || h.version != want->v) {
		snprintf(why, whycap, "key %u: expected w%u v%" PRIu64 ", found w%u v%" PRIu64, k,
			 want->w, want->v, h.writer, h.version);
		return false;
	}
	return true;
}

static void check(bool ok, const char *what, const char *why)
{
	if (ok)
		atomic_fetch_add(&passed_total, 1);
	else
		fail("%s: %s", what, why);
}

/* C6: the final state is each key's last write. Fills @fin with what was found. */
static uint64_t check_final(struct final *fin, unsigned char *buf, unsigned char *scratch)
{
	uint64_t present = 0;
	char why[256];

	for (unsigned k = 0; k < cfg.nkeys; k++) {
		struct final cand[NWRITERS + 1];
		unsigned ncand = 0;
		bool ok = false;

		if (is_exclusive(k)) {
			unsigned w = owner_of(k);
			uint64_t v = load_started(k, w);

			cand[ncand++] = (struct final){ .present = v != 0 && !excl_is_del(k, v),
							.w = w,
							.v = v };
		} else {
			for (unsigned w = 0; w < NWRITERS; w++) {
				uint64_t v = writers[w].last[k * NWRITERS + w];

				if (v != 0)
					cand[ncand++] = (struct final){
						.present = !writers[w].del[k], .w = w, .v = v
					};
			}
			if (ncand == 0)
				cand[ncand++] = (struct final){ .present = false };
		}
		why[0] = '\0';
		for (unsigned i = 0; i < ncand && !ok; i++) {
			ok = get_matches(k, &cand[i], buf, scratch, why, sizeof(why));
			if (ok)
				fin[k] = cand[i];
		}
		check(ok, "C6 final state", why);
		if (!ok)
			fin[k] = cand[0];
		present += fin[k].present;
	}
	return present;
}

static void check_stats_keys(uint64_t want, const char *when)
{
	pkv_stats st;
	char why[128];
	int rc = pkv_get_stats(db, &st);

	if (rc != 0)
		snprintf(why, sizeof(why), "pkv_get_stats = %d (%s)", rc, pkv_strerror(rc));
	else
		snprintf(why, sizeof(why), "stats.keys %" PRIu64 ", expected %" PRIu64, st.keys,
			 want);
	check(rc == 0 && st.keys == want, when, why);
}

/* ---- main ------------------------------------------------------------------------------- */

static const struct su_opt options[] = {
	SU_OPT("seconds", SU_OPT_DOUBLE, &cfg.seconds,
	       "run the writers for N seconds (default 5 unless --ops is given)"),
	SU_OPT("ops", SU_OPT_U64, &cfg.ops, "each writer stops after N writes (0: no bound)"),
	SU_OPT("keys", SU_OPT_UINT, &cfg.nkeys,
	       "distinct keys, >= 4 (default 512); half shared, half per writer", .min = 4,
	       .max = 1000000),
	SU_OPT("seed", SU_OPT_U64, &cfg.seed, "seed of the writers and readers (default 1)"),
	SU_OPT("mem", SU_OPT_FLAG, &cfg.mem,
	       "in-memory store (pkv_open(NULL, ...)); no reopen check"),
	SU_OPT("dir", SU_OPT_STR, &cfg.parent,
	       "create the store in a new temporary directory under PARENT", .arg = "PARENT"),
	SU_OPT("durability", SU_OPT_DURABILITY, &cfg.durability,
	       "process, power or periodic (default process)", .arg = "MODE"),
	SU_OPT("compact-ms", SU_OPT_UINT, &cfg.compact_ms,
	       "mean period of pkv_compact() calls (0: none; default 50)", .max = 3600000),
	SU_OPT("keep", SU_OPT_FLAG, &cfg.keep, "keep the store directory"),
	SU_OPT("quiet", SU_OPT_FLAG, &cfg.quiet,
	       "no effect: this driver prints only its figures and failures"),
	SU_OPT_END
};

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n, size);

	if (p == NULL) {
		fputs("concurrent: out of memory\n", stderr);
		exit(2);
	}
	return p;
}

int main(int argc, char **argv)
{
	char dir[4096] = "";
	pthread_t compactor;
	pkv_options opts;
	struct final *fin;
	unsigned char *buf, *scratch;
	uint64_t present;
	double t0, elapsed;
	int rc;

	setvbuf(stdout, NULL, _IOLBF, 0);
	su_opts_parse(argc, argv, "concurrent", options, NULL);
	if (cfg.seconds == 0 && cfg.ops == 0)
		cfg.seconds = 5;
	nshared = (cfg.nkeys / 2) & ~1u;
	started = xcalloc((size_t)cfg.nkeys * NWRITERS, sizeof(*started));
	acked = xcalloc(cfg.nkeys, sizeof(*acked));
	fin = xcalloc(cfg.nkeys, sizeof(*fin));
	buf = xcalloc(1, MAX_VAL);
	scratch = xcalloc(1, MAX_BODY);
	for (unsigned w = 0; w < NWRITERS; w++) {
		writers[w].id = w;
		writers[w].last = xcalloc((size_t)cfg.nkeys * NWRITERS, sizeof(uint64_t));
		writers[w].del = xcalloc(cfg.nkeys, 1);
		writers[w].present = xcalloc(cfg.nkeys, 1);
	}
	for (unsigned r = 0; r < NREADERS; r++) {
		readers[r].id = r;
		readers[r].seen = xcalloc((size_t)cfg.nkeys * NWRITERS, sizeof(uint64_t));
	}

	if (!cfg.mem && su_workdir(dir, sizeof(dir), cfg.parent, "concurrent") != 0) {
		perror("concurrent: mkdtemp");
		return 2;
	}
	pkv_options_default(&opts);
	opts.durability = cfg.durability;
	opts.sync_interval_ms = 20;
	printf("concurrent: store %s, durability %s, %u keys (%u shared), seconds %.1f, ops %" PRIu64
	       ", seed %" PRIu64 ", compact every ~%u ms\n",
	       cfg.mem ? "(in memory)" : dir, su_durability_name(cfg.durability), cfg.nkeys,
	       nshared, cfg.seconds, cfg.ops, cfg.seed, cfg.compact_ms);

	rc = pkv_open(cfg.mem ? NULL : dir, &opts, &db);
	if (rc != 0) {
		printf("FAIL: pkv_open = %d (%s)\n", rc, pkv_strerror(rc));
		printf("0 passed, 1 failed\n");
		return 1;
	}

	t0 = su_now();
	deadline = cfg.seconds > 0 ? t0 + cfg.seconds : 1e300;
	for (unsigned w = 0; w < NWRITERS; w++)
		if (pthread_create(&writers[w].tid, NULL, writer_main, &writers[w]) != 0)
			return 2;
	for (unsigned r = 0; r < NREADERS; r++)
		if (pthread_create(&readers[r].tid, NULL, reader_main, &readers[r]) != 0)
			return 2;
	if (cfg.compact_ms != 0 && pthread_create(&compactor, NULL, compactor_main, NULL) != 0)
		return 2;

	for (unsigned w = 0; w < NWRITERS; w++)
		pthread_join(writers[w].tid, NULL);
	atomic_store(&stop_flag, 1);
	for (unsigned r = 0; r < NREADERS; r++)
		pthread_join(readers[r].tid, NULL);
	if (cfg.compact_ms != 0)
		pthread_join(compactor, NULL);
	elapsed = su_now() - t0;

	for (unsigned w = 0; w < NWRITERS; w++)
		printf("writer %u: %" PRIu64 " ops (%" PRIu64 " puts, %" PRIu64 " dels, %" PRIu64
		       " of them on absent keys), %.0f ops/s\n",
		       w, writers[w].st.ops, writers[w].st.puts, writers[w].st.dels,
		       writers[w].st.dels_absent, (double)writers[w].st.ops / elapsed);
	for (unsigned r = 0; r < NREADERS; r++)
		printf("reader %u: %" PRIu64 " gets (%" PRIu64 " hits, %" PRIu64 " misses, %" PRIu64
		       " partial copies), %.0f gets/s\n",
		       r, readers[r].st.gets, readers[r].st.hits, readers[r].st.misses,
		       readers[r].st.partial, (double)readers[r].st.gets / elapsed);
	printf("compactor: %" PRIu64 " pkv_compact calls; run took %.2f s\n", compacts, elapsed);

	present = check_final(fin, buf, scratch);
	check_stats_keys(present, "C6 stats after the run");
	printf("final: %" PRIu64 " keys present\n", present);

	if (!cfg.mem) {
		pkv_stats st;
		double r0;
		char why[256];

		rc = pkv_close(db);
		db = NULL;
		snprintf(why, sizeof(why), "pkv_close = %d (%s)", rc, pkv_strerror(rc));
		check(rc == 0, "C7 close", why);
		r0 = su_now();
		rc = pkv_open(dir, &opts, &db);
		snprintf(why, sizeof(why), "pkv_open = %d (%s)", rc, pkv_strerror(rc));
		check(rc == 0, "C7 reopen", why);
		if (rc == 0) {
			printf("reopen: %.3f s\n", su_now() - r0);
			for (unsigned k = 0; k < cfg.nkeys; k++) {
				bool ok = get_matches(k, &fin[k], buf, scratch, why, sizeof(why));

				check(ok, "C7 state after reopen", why);
			}
			check_stats_keys(present, "C7 stats after reopen");
			if (pkv_get_stats(db, &st) == 0)
				printf("recovery: %" PRIu64 " records replayed, %" PRIu64
				       " discarded (%" PRIu64 " bytes), gap at seq %" PRIu64
				       ", %" PRIu64 " WAL segments\n",
				       st.recovered_records, st.discarded_records,
				       st.discarded_bytes, st.recovery_gap_seq, st.wal_segments);
		}
	}
	rc = pkv_close(db);
	if (rc != 0)
		fail("final pkv_close = %d (%s)", rc, pkv_strerror(rc));
	if (!cfg.mem) {
		if (cfg.keep)
			printf("store kept in %s\n", dir);
		else
			su_rmtree(dir);
	}

	for (unsigned w = 0; w < NWRITERS; w++) {
		free(writers[w].last);
		free(writers[w].del);
		free(writers[w].present);
	}
	for (unsigned r = 0; r < NREADERS; r++)
		free(readers[r].seen);
	free(started);
	free(acked);
	free(fin);
	free(buf);
	free(scratch);

	{
		unsigned long long p = atomic_load(&passed_total);
		unsigned long long f = atomic_load(&failed_total);

		if (p == 0 && f == 0)
			f = 1; /* a run that checked nothing did not pass */
		printf("%llu passed, %llu failed\n", p, f);
		return f == 0 ? 0 : 1;
	}
}
