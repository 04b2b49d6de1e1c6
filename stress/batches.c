/* SPDX-License-Identifier: MIT */
/*
 * batches.c - concurrent conditional batches, expiring keys and clears on one store (plain
 * pthreads, so it runs under ThreadSanitizer).
 *
 * Bank transfers: ACCOUNTS keys hold balances that sum to TOTAL. Each transfer thread picks two
 * or more accounts in a random order, reads their balances and versions from a shared table of
 * the last committed writes (published after pkv_write returned, so it may lag behind the store:
 * then a condition fails and the thread tries again), and writes one batch that moves money
 * between them, expecting each account at the version it read. So:
 *   T1  a batch applies whole or not at all, only on top of the versions it expected: the sum
 *       of balances stays TOTAL, and every account equals its last committed value;
 *   T2  batches lock shards in one global order: threads building batches in opposite key
 *       orders never deadlock (the run ends within its time);
 *   T3  every committed batch took one sequence number, which every key it wrote carries;
 *   T4  pkv_get_many never shows a batch in part: a multi-get thread reads every account at once
 *       in a read section, and each account's value names the accounts its batch wrote (a
 *       mask), so every account named by a batch it shows must show that batch or a later one,
 *       never an earlier one; and the balances it sees sum to TOTAL (which also catches a batch
 *       in part whose visible half a later batch overwrote).
 * Next to them: an expiry thread puts keys that expire 1-30 ms later and reads them until they
 * are gone (an expired key never comes back, never reads as another value, and never reads as
 * present once the clock is past its expiry); a reader thread reads every account; a compactor
 * runs pkv_compact every --compact-ms, so the multi-gets read from the snapshot too. pkv_clear
 * empties everything, so it runs between rounds (--rounds): each round ends with every thread
 * stopped, the checks above, a pkv_clear, a check that every key is gone, and new balances. After
 * the last round the store is reopened and checked once more (T1 across a reopen).
 *
 * Usage: batches [--seconds N] [--threads N] [--rounds N] [--compact-ms N] [--durability M]
 *                [--mem] [--dir PARENT] [--seed N]
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
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

#define ACCOUNTS 64
#define TOTAL ((int64_t)ACCOUNTS * 1000)
#define MAX_THREADS 8

/* An account's value: its balance, and the accounts the batch that wrote it wrote (T4). */
struct acct_val {
	int64_t bal;
	uint64_t batch; /* bit i: account i; the seeding batch writes them all */
};

struct account {
	pthread_mutex_t mu;
	uint64_t ver; /* seq of the last committed write we know of */
	int64_t bal;
};

static struct {
	pkv *db;
	struct account acc[ACCOUNTS];
	atomic_bool stop;
	atomic_uint_fast64_t commits, conflicts, expired_seen, gets, many_gets;
	atomic_int failures;
	unsigned compact_ms;
	uint64_t seed;
} G;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "batches: FAIL: ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	atomic_fetch_add(&G.failures, 1);
	atomic_store(&G.stop, true);
}

static uint64_t rnd(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static size_t acc_key(char *k, unsigned i)
{
	return (size_t)snprintf(k, 32, "acct/%03u", i);
}

static int get_bal(unsigned i, int64_t *bal)
{
	char k[32], buf[32];
	size_t n = 0;
	int r = pkv_get(G.db, k, acc_key(k, i), buf, sizeof(buf), &n);
	struct acct_val v;

	if (r == 0 && n == sizeof(v)) {
		memcpy(&v, buf, sizeof(v));
		*bal = v.bal;
	} else if (r == 0) {
		r = PKV_ECORRUPT;
	}
	return r;
}

static void *transfer_thread(void *arg)
{
	uint64_t s = G.seed ^ (uintptr_t)arg * 0x1234567ull;
	pkv_batch *b;

	if (pkv_batch_new(&b) != 0) {
		fail("batch_new");
		return NULL;
	}
	while (!atomic_load(&G.stop)) {
		unsigned n = 2 + (unsigned)(rnd(&s) % 3), idx[4];
		uint64_t ver[4], seq = 0, mask = 0;
		int64_t bal[4], moved = 0;
		int r;

		for (unsigned j = 0; j < n; j++) {
			bool dup;

			do { /* distinct accounts */
				idx[j] = (unsigned)(rnd(&s) % ACCOUNTS);
				dup = false;
				for (unsigned m = 0; m < j; m++)
					dup |= idx[m] == idx[j];
			} while (dup);
			mask |= 1ull << idx[j];
		}
		pkv_batch_clear(b);
		for (unsigned j = 0; j < n; j++) {
			struct account *a = &G.acc[idx[j]];
			char k[32];
			size_t kl = acc_key(k, idx[j]);
			struct acct_val v;

			pthread_mutex_lock(&a->mu);
			ver[j] = a->ver;
			bal[j] = a->bal;
			pthread_mutex_unlock(&a->mu);
			if (j + 1 < n) {
				int64_t x = (int64_t)(rnd(&s) % 50);

				bal[j] -= x;
				moved += x;
			} else {
				bal[j] += moved;
			}
			/* The key order in the batch is random: pkv orders the locks (T2). */
			v = (struct acct_val){ .bal = bal[j], .batch = mask };
			if (pkv_batch_expect(b, k, kl, ver[j]) != 0 ||
			    pkv_batch_put(b, k, kl, &v, sizeof(v)) != 0) {
				fail("batch build");
				break;
			}
		}
		r = pkv_write(G.db, b, 0, &seq);
		if (r == PKV_ECONFLICT) {
			atomic_fetch_add(&G.conflicts, 1);
			continue;
		}
		if (r != 0) {
			fail("pkv_write: %s", pkv_strerror(r));
			break;
		}
		atomic_fetch_add(&G.commits, 1);
		for (unsigned j = 0; j < n; j++) {
			struct account *a = &G.acc[idx[j]];

			pthread_mutex_lock(&a->mu);
			if (seq > a->ver) { /* ours is the newest: a later one would have expected it */
				a->ver = seq;
				a->bal = bal[j];
			}
			pthread_mutex_unlock(&a->mu);
		}
	}
	pkv_batch_free(b);
	return NULL;
}

/* Keys that expire 1-30 ms after their put: present before (or already gone), absent after,
 * never back once gone, never another value. */
static void *expiry_thread(void *arg)
{
	uint64_t s = G.seed ^ 0xe1;
	unsigned id = 0;

	(void)arg;
	while (!atomic_load(&G.stop)) {
		char k[32];
		uint64_t v = rnd(&s), exp = now_ms() + 1 + v % 30, got;
		size_t kl = (size_t)snprintf(k, sizeof(k), "exp/%u", id++ % 128), n;
		bool gone = false;
		int r = pkv_put_expire(G.db, k, kl, &v, sizeof(v), exp, 0);

		if (r != 0) {
			fail("put_expire: %s", pkv_strerror(r));
			break;
		}
		for (int i = 0; i < 200 && !atomic_load(&G.stop); i++) {
			uint64_t t0 = now_ms();

			r = pkv_get(G.db, k, kl, &got, sizeof(got), &n);
			if (r == 0 && (n != sizeof(got) || got != v)) {
				fail("expiring key %s read another value", k);
				break;
			}
			if (r == 0 && gone) {
				fail("expired key %s came back", k);
				break;
			}
			if (r == 0 && t0 > exp) { /* read after the instant it expired */
				fail("key %s read %" PRIu64 " ms after its expiry", k, t0 - exp);
				break;
			}
			if (r == PKV_NOTFOUND) {
				if (!gone)
					atomic_fetch_add(&G.expired_seen, 1);
				gone = true;
			} else if (r != 0) {
				fail("get of an expiring key: %s", pkv_strerror(r));
				break;
			}
			if (gone && i > 2)
				break;
			usleep(1000);
		}
	}
	return NULL;
}

static void *reader_thread(void *arg)
{
	(void)arg;
	while (!atomic_load(&G.stop)) {
		for (unsigned i = 0; i < ACCOUNTS && !atomic_load(&G.stop); i++) {
			int64_t bal;
			int r = get_bal(i, &bal);

			if (r != 0) {
				fail("get account %u: %s", i, pkv_strerror(r));
				return NULL;
			}
			atomic_fetch_add(&G.gets, 1);
		}
	}
	return NULL;
}

/* T4: one multi-get of every account at a time, each checked against the batches it shows. */
static void *many_thread(void *arg)
{
	char keys[ACCOUNTS][32];
	size_t klen[ACCOUNTS];
	pkv_item it[ACCOUNTS];
	struct acct_val v[ACCOUNTS];

	(void)arg;
	for (unsigned i = 0; i < ACCOUNTS; i++)
		klen[i] = acc_key(keys[i], i);
	while (!atomic_load(&G.stop)) {
		int64_t sum = 0;
		bool sized = true;
		int n;

		for (unsigned i = 0; i < ACCOUNTS; i++)
			it[i] = (pkv_item){ .key = keys[i], .klen = klen[i] };
		if (pkv_read_begin(G.db) != 0) {
			fail("pkv_read_begin");
			break;
		}
		n = pkv_get_many(G.db, it, ACCOUNTS);
		for (unsigned i = 0; n == ACCOUNTS && i < ACCOUNTS; i++) {
			sized &= it[i].vlen == sizeof(v[i]);
			if (it[i].vlen == sizeof(v[i]))
				memcpy(&v[i], it[i].val, sizeof(v[i]));
		}
		pkv_read_end(G.db); /* the values are copied: the checks need no section */
		if (n != ACCOUNTS || !sized) {
			if (n < 0)
				fail("pkv_get_many: %s", pkv_strerror(n));
			else
				fail("multi-get found %d of %d accounts%s", n, ACCOUNTS,
				     sized ? "" : ", one of a wrong size");
			break;
		}
		for (unsigned i = 0; i < ACCOUNTS; i++) {
			sum += v[i].bal;
			for (unsigned j = 0; j < ACCOUNTS; j++) {
				if (!(v[i].batch >> j & 1) || it[j].seq >= it[i].seq)
					continue;
				fail("multi-get saw batch %" PRIu64
				     " in part: account %u shows it, account %u (which it wrote) the"
				     " older %" PRIu64,
				     it[i].seq, i, j, it[j].seq);
				break;
			}
		}
		if (sum != TOTAL)
			fail("multi-get: balances sum to %" PRId64 ", not %" PRId64, sum, TOTAL);
		atomic_fetch_add(&G.many_gets, 1);
	}
	return NULL;
}

static void *compact_thread(void *arg)
{
	(void)arg;
	while (!atomic_load(&G.stop) && G.compact_ms) {
		int r = pkv_compact(G.db);

		if (r != 0) {
			fail("compact: %s", pkv_strerror(r));
			break;
		}
		for (unsigned t = 0; t < G.compact_ms && !atomic_load(&G.stop); t += 5)
			usleep(5000);
	}
	return NULL;
}

/* Fresh balances: one batch, unconditional; versions from its seq (T3). */
static void seed_accounts(void)
{
	pkv_batch *b;
	uint64_t seq = 0;
	int r;

	if (pkv_batch_new(&b) != 0) {
		fail("batch_new");
		return;
	}
	for (unsigned i = 0; i < ACCOUNTS; i++) {
		char k[32];
		struct acct_val v = { .bal = TOTAL / ACCOUNTS, .batch = ~0ull };

		if (pkv_batch_expect(b, k, acc_key(k, i), 0) != 0 ||
		    pkv_batch_put(b, k, acc_key(k, i), &v, sizeof(v)) != 0)
			fail("batch build");
	}
	r = pkv_write(G.db, b, 0, &seq);
	if (r != 0)
		fail("seeding the accounts: %s", pkv_strerror(r));
	for (unsigned i = 0; i < ACCOUNTS; i++) {
		G.acc[i].ver = seq;
		G.acc[i].bal = TOTAL / ACCOUNTS;
	}
	pkv_batch_free(b);
}

/* T1, T3: the sum, each account against the table, and each version through a condition. */
static void check_accounts(const char *when)
{
	int64_t sum = 0;
	pkv_batch *b;

	if (pkv_batch_new(&b) != 0) {
		fail("batch_new");
		return;
	}
	for (unsigned i = 0; i < ACCOUNTS; i++) {
		int64_t bal = 0;
		char k[32];
		int r = get_bal(i, &bal);

		if (r != 0) {
			fail("%s: account %u: %s", when, i, pkv_strerror(r));
			break;
		}
		sum += bal;
		if (bal != G.acc[i].bal)
			fail("%s: account %u holds %" PRId64 ", its last committed write %" PRId64,
			     when, i, bal, G.acc[i].bal);
		if (pkv_batch_expect(b, k, acc_key(k, i), G.acc[i].ver) != 0)
			fail("batch_expect");
	}
	if (sum != TOTAL)
		fail("%s: balances sum to %" PRId64 ", not %" PRId64, when, sum, TOTAL);
	if (pkv_write(G.db, b, 0, NULL) != 0)
		fail("%s: an account does not carry the seq of its last committed batch", when);
	pkv_batch_free(b);
}

int main(int argc, char **argv)
{
	unsigned seconds = 5, threads = 4, rounds = 3;
	const char *parent = getenv("TMPDIR");
	enum pkv_durability dur = PKV_DURABLE_PROCESS;
	bool mem = false;
	char dir[4096] = "";
	pkv_options o;
	int r;

	G.compact_ms = 50;
	G.seed = (uint64_t)time(NULL);
	{
		const struct su_opt opts[] = {
			SU_OPT("seconds", SU_OPT_UINT, &seconds, "length of each round", .min = 1,
			       .max = 3600),
			SU_OPT("threads", SU_OPT_UINT, &threads, "transfer threads", .min = 2,
			       .max = MAX_THREADS),
			SU_OPT("rounds", SU_OPT_UINT, &rounds, "rounds, each ended by a pkv_clear",
			       .min = 1, .max = 1000),
			SU_OPT("compact-ms", SU_OPT_UINT, &G.compact_ms,
			       "pkv_compact every N ms (0: never)"),
			SU_OPT("durability", SU_OPT_DURABILITY, &dur, "the store's mode",
			       .arg = "MODE"),
			SU_OPT("mem", SU_OPT_FLAG, &mem, "an in-memory store (dir NULL)"),
			SU_OPT("dir", SU_OPT_STR, &parent, "parent of the store's directory",
			       .arg = "PARENT"),
			SU_OPT("seed", SU_OPT_U64, &G.seed, "random seed (default: the time)"),
			SU_OPT_END,
		};

		su_opts_parse(argc, argv, "batches", opts, NULL);
	}
	if (threads < 2 || threads > MAX_THREADS || rounds < 1 || seconds < 1) {
		fprintf(stderr, "batches: --threads 2..%d, --rounds and --seconds >= 1\n",
			MAX_THREADS);
		return 2;
	}
	if (!mem) {
		snprintf(dir, sizeof(dir), "%s/pkv-batches-XXXXXX",
			 parent && parent[0] ? parent : "/tmp");
		if (mkdtemp(dir) == NULL) {
			perror("mkdtemp");
			return 1;
		}
		strncat(dir, "/db", sizeof(dir) - strlen(dir) - 1);
	}
	printf("batches: seed %" PRIu64 ", %u transfer threads, %u rounds of %u s, %s\n", G.seed,
	       threads, rounds, seconds, mem ? "in memory" : "on disk");
	for (unsigned i = 0; i < ACCOUNTS; i++)
		pthread_mutex_init(&G.acc[i].mu, NULL);
	pkv_options_default(&o);
	o.durability = dur;
	o.shards = 16; /* several accounts per shard, several shards per batch */
	o.wal_segment_bytes = 1u << 20;
	if ((r = pkv_open(mem ? NULL : dir, &o, &G.db)) != 0) {
		fprintf(stderr, "batches: open: %s\n", pkv_strerror(r));
		return 1;
	}
	for (unsigned round = 0; round < rounds && !atomic_load(&G.failures); round++) {
		pthread_t th[MAX_THREADS + 4];
		unsigned n = 0;
		pkv_stats st;

		seed_accounts();
		atomic_store(&G.stop, false);
		for (unsigned t = 0; t < threads; t++)
			pthread_create(&th[n++], NULL, transfer_thread, (void *)(uintptr_t)t);
		pthread_create(&th[n++], NULL, expiry_thread, NULL);
		pthread_create(&th[n++], NULL, reader_thread, NULL);
		pthread_create(&th[n++], NULL, many_thread, NULL);
		pthread_create(&th[n++], NULL, compact_thread, NULL);
		for (unsigned t = 0; t < seconds * 10 && !atomic_load(&G.stop); t++)
			usleep(100000);
		atomic_store(&G.stop, true);
		for (unsigned t = 0; t < n; t++)
			pthread_join(th[t], NULL);
		check_accounts("end of a round");
		/* A clear empties the whole store in one write. */
		if ((r = pkv_clear(G.db)) != 0)
			fail("clear: %s", pkv_strerror(r));
		if (pkv_get_stats(G.db, &st) != 0 || st.keys != 0)
			fail("after a clear, %" PRIu64 " keys", st.keys);
		for (unsigned i = 0; i < ACCOUNTS; i++) {
			int64_t bal;

			if (get_bal(i, &bal) != PKV_NOTFOUND)
				fail("account %u survived a clear", i);
		}
		printf("round %u: %" PRIu64 " batches committed, %" PRIu64
		       " refused by a condition, %" PRIu64 " gets, %" PRIu64
		       " multi-gets of every account, %" PRIu64 " expiries seen\n",
		       round, (uint64_t)atomic_load(&G.commits),
		       (uint64_t)atomic_load(&G.conflicts), (uint64_t)atomic_load(&G.gets),
		       (uint64_t)atomic_load(&G.many_gets), (uint64_t)atomic_load(&G.expired_seen));
	}
	if (!atomic_load(&G.failures) && atomic_load(&G.many_gets) == 0)
		fail("no multi-get ran: T4 was not tested");
	/* T1 across a reopen: the last round's balances, put back, survive it. */
	if (!atomic_load(&G.failures)) {
		seed_accounts();
		if (!mem) {
			if ((r = pkv_close(G.db)) != 0 || (r = pkv_open(dir, &o, &G.db)) != 0)
				fail("reopen: %s", pkv_strerror(r));
		}
		if (!atomic_load(&G.failures))
			check_accounts("after a reopen");
	}
	if (G.db && (r = pkv_close(G.db)) != 0)
		fail("close: %s", pkv_strerror(r));
	if (!mem) {
		char cmd[4200];

		*strrchr(dir, '/') = '\0';
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "batches: could not remove %s\n", dir);
	}
	printf("%d passed, %d failed\n", atomic_load(&G.failures) ? 0 : 1,
	       atomic_load(&G.failures) ? 1 : 0);
	return atomic_load(&G.failures) ? 1 : 0;
}
