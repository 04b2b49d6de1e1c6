/* SPDX-License-Identifier: MIT */
/*
 * corrupt.c - the corruption sweep: a damaged store opens to a prefix of its write history, or
 * its open fails with PKV_ECORRUPT; never a crash, a hang, a sanitizer report or a wrong value.
 *
 * Two pristine stores hold the same deterministic history of HIST writes (puts, overwrites,
 * deletes; on a fresh store write i takes sequence number i, which the builder checks): HIST_A
 * writes, pkv_compact() (a snapshot complete up to HIST_A), then a WAL tail of HIST_B writes over
 * keys in and out of the snapshot. The writer is pinned to each CPU in turn, so the tail is spread
 * over several lanes, and 64 KiB segments give each lane several segments. A pkv_sync() in the
 * middle of the tail, a PKV_WRITE_POWER write and a pkv_sync() after every write that rolled a
 * lane make the records after them carry a non-zero `synced` (the syncs also make the files the
 * same on every run); no lane rolls during the last SMALL_TAIL writes, so those are a torn tail
 * that may be lost. The "killed" store is SIGKILLed after its last write returned (an unsynced
 * tail in preallocated segments); the "closed" store is closed cleanly. A sixth of the writes
 * after the first NKA are batches (pkv_write) that also put a second key under the same seq,
 * and a fifth of the puts carry a far expiry: the damage then lands in batch records, their op
 * heads, put-with-expiry records and the expiry fields of snapshot records too, and a batch
 * record cut or damaged anywhere must lose the batch whole (its seq is one write of the model).
 *
 * Each case copies one of them, applies one damage, and opens the copy with the library in a
 * forked child (alarm() turns a hang into a failure, the exit status shows a crash or a sanitizer
 * report). Kinds:
 *   trunc-tail  truncate the last segment with data of a lane at one offset: its header region
 *               or its last TAIL_RECS records and the bytes after them. Successive cases walk
 *               every such offset of both stores in a fixed permuted order.
 *   trunc-seg   truncate any segment at a random offset
 *   flip-wal    flip 1..8 random bits in random segments (header, records, anywhere)
 *   flip-snap   flip 1..8 random bits in the snapshot (header, record heads, records, index)
 *   zero-wal    zero one or two whole 4 KiB pages of a segment
 *   zero-snap   zero one whole 4 KiB page of the snapshot
 *   trunc-snap  truncate the snapshot
 *   delete      delete a segment, or the snapshot
 *   dup         copy a segment or the snapshot under another name
 *
 * What is checked (failure messages start with the rule):
 *  X.1  The open returns 0 or PKV_ECORRUPT. On PKV_ECORRUPT no handle is returned and a second
 *       open says PKV_ECORRUPT again (the failed open released DIR/LOCK).
 *  X.2  An opened store equals the model after exactly k writes, k = last_seq of pkv_get_stats()
 *       <= HIST: every key's get returns the value of its last write with a seq <= k, or
 *       PKV_NOTFOUND if that was a delete or there is none. A value that is not exactly that one
 *       always fails, and so does PKV_NOTFOUND for a key that is there (snapshot.c N.4: damage
 *       on a key's probe path is PKV_ECORRUPT, never a miss). Only while pkv_verify() says
 *       PKV_ECORRUPT is one other answer tolerated (and counted): PKV_ECORRUPT for a key whose
 *       snapshot record was damaged, or any key once the index (or its page CRCs) was.
 *  X.3  pkv_verify() returns PKV_ECORRUPT exactly when the damage changed the snapshot's record
 *       or index region, else 0. With 0 the state is exact, stats.keys included.
 *  X.4  The outcome is the one the documented rules give (docs/format.md; recovery R.1-R.5 and
 *       R.15 in docs/architecture.md), recomputed here from the damaged files by an independent
 *       reader: whether the open fails (segment header or name, snapshot header or name, a
 *       sequence number twice, a surviving record whose `synced` proves that a durable write was
 *       lost, damage with intact records behind it in a lane pkv_close cut short),
 *       else the recovered k, the gap and the number of records replayed, and that something
 *       discarded is reported. R.5 in particular: a lost synced write must be PKV_ECORRUPT.
 *  X.5  The recovered store accepts a write, closes, and reopens to the same state plus that
 *       write, with nothing discarded and no gap the second time (R.6).
 * A get that answers PKV_ECORRUPT for a key whose version at k is in the WAL ("masked": replay
 * skipped the newer WAL record because of a damaged snapshot record) fails the case; --lenient
 * only counts it (replay checks the snapshot record first since N.4, so none is expected).
 *
 * Case i is deterministic from --seed and reproduced alone by: corrupt --seed X --only-case i.
 * The parent never calls into pkv (it forks); children do all the store work.
 *
 * Usage: corrupt [--cases N] [--seconds S] [--seed X] [--only-case I] [--timeout S]
 *                [--dir PARENT] [--keep] [--lenient] [--verbose]
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pkv.h"
#include "stress_util.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the on-disk formats are little-endian");

/* ---- the history --------------------------------------------------------------------------- */

#define NKA 192 /* "a/NNNN": written before the snapshot */
#define NKA_TAIL 96 /* the first NKA_TAIL of them are written in the tail too, the rest not */
#define NKB 160 /* "b/NNNN": written only in the tail */
#define NKC 8 /* "c/NNNN": never written, must stay absent */
#define NKEYS (NKA + NKB + NKC)
#define HIST_A 700 /* writes before pkv_compact(): the snapshot is complete up to HIST_A */
#define HIST_B 1400 /* the WAL tail */
#define HIST (HIST_A + HIST_B)
#define SYNC_AT (HIST_A + HIST_B / 2) /* pkv_sync() after this write */
#define POWER_AT (HIST_A + HIST_B * 3 / 4) /* this write is made with PKV_WRITE_POWER */
#define SMALL_TAIL 48 /* the last writes: small values, no lane rolls (a torn tail) */
#define MAX_VAL (16u << 10)
#define LANES 4
#define SEG_BYTES ((size_t)64 << 10)
#define AFTER_KEY "zz/after" /* X.5 */

/* Truncation sweep: every offset below HDR_SPAN, and from the start of the last TAIL_RECS
 * records of a lane's last segment with data to TAIL_PAST bytes after its data. */
#define HDR_SPAN 72
#define TAIL_RECS 3
#define TAIL_PAST 16

/* On-disk layout (docs/format.md). */
#define WAL_HDR 64
#define WAL_REC_HDR 32
#define SNAP_HDR_BYTES 4096
#define SNAP_HDR_CHECKED 128 /* struct snap_hdr_disk: hdr_crc covers the rest */
#define SNAP_REC_HDR 20
#define PAGE 4096

enum variant {
	V_KILLED = 0,
	V_CLOSED = 1,
	NVARIANTS
};
static const char *const variant_name[NVARIANTS] = { "killed", "closed" };

struct write {
	uint16_t key;
	int16_t key2;   /* >= 0: a batch (pkv_write) that also puts this key, with the same value */
	uint8_t del;    /* of @key; key2 is always put */
	uint8_t expire; /* the puts carry a far expiry (a put-with-expiry record, snapshot field) */
	uint8_t power;
	uint8_t cpu; /* index into cpus[] */
	uint32_t vlen;
};

#define FAR_EXPIRY 4102444800000ull /* 2100-01-01: never passes during a run */

struct keyinfo {
	char name[16];
	size_t klen;
	uint32_t *seqs; /* the writes of this key, increasing */
	size_t n;
};

static struct write hist[HIST + 1];
static struct keyinfo keys[NKEYS];
static int cpus[LANES];
static unsigned ncpus;

/* ---- options -------------------------------------------------------------------------------- */

struct cfg {
	uint64_t cases;
	double seconds;
	uint64_t seed;
	int64_t only; /* -1: all */
	uint64_t only_case; /* --only-case, copied to .only */
	bool only_given;
	unsigned timeout;
	const char *parent;
	bool keep;
	bool strict;
	bool verbose;
};

static struct cfg cfg = {
	.cases = 300,
	.seconds = 0,
	.seed = 1,
	.only = -1,
	.timeout = 20,
	.parent = NULL,
	.keep = false,
	.strict = true,
	.verbose = false,
};

static char root[PATH_MAX];
static char pristine[NVARIANTS][PATH_MAX];
static char work[PATH_MAX];

/* ---- small helpers -------------------------------------------------------------------------- */

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;

	fputs("corrupt: ", stdout);
	va_start(ap, fmt);
	vfprintf(stdout, fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	printf("0 passed, 1 failed\n");
	exit(1);
}

static void appendf(char *buf, size_t cap, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void appendf(char *buf, size_t cap, const char *fmt, ...)
{
	size_t n = strlen(buf);
	va_list ap;

	if (n + 1 >= cap)
		return;
	va_start(ap, fmt);
	vsnprintf(buf + n, cap - n, fmt, ap);
	va_end(ap);
}

/* snprintf into a path buffer; a path that does not fit is fatal. */
static void pathf(char *buf, size_t cap, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void pathf(char *buf, size_t cap, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, cap, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= cap)
		die("path too long: %s...", buf);
}

static uint16_t ld16(const unsigned char *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static uint32_t ld32(const unsigned char *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static uint64_t ld64(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static size_t align8(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

/* CRC32C (Castagnoli, reflected 0x82F63B78), continued from @crc: the library's own is private. */
static uint32_t crc_tab[256];

static void crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int b = 0; b < 8; b++)
			c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
		crc_tab[i] = c;
	}
}

static uint32_t crc32c(uint32_t crc, const void *buf, size_t len)
{
	const unsigned char *p = buf;

	crc = ~crc;
	while (len--)
		crc = crc_tab[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

/* The whole file at @path (NULL if it cannot be read); *@len its size. */
static unsigned char *read_file(const char *path, size_t *len)
{
	struct stat st;
	unsigned char *buf;
	size_t got = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) != 0) {
		close(fd);
		return NULL;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (buf == NULL)
		die("out of memory");
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	*len = got;
	return buf;
}

static void write_at(const char *path, uint64_t off, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);

	if (fd < 0 || pwrite(fd, buf, len, (off_t)off) != (ssize_t)len)
		die("cannot write %zu bytes at %" PRIu64 " of %s: %s", len, off, path,
		    strerror(errno));
	close(fd);
}

static void copy_file(const char *from, const char *to)
{
	size_t len;
	unsigned char *buf = read_file(from, &len);
	int fd;

	if (buf == NULL)
		die("cannot read %s: %s", from, strerror(errno));
	fd = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, buf, len) != (ssize_t)len)
		die("cannot write %s: %s", to, strerror(errno));
	close(fd);
	free(buf);
}

/* Copy a store: the regular files of DIR, DIR/wal and DIR/snap. */
static void copy_store(const char *from, const char *to)
{
	static const char *const subs[] = { "", "/wal", "/snap" };
	char a[PATH_MAX], b[PATH_MAX];

	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
		struct dirent *e;
		DIR *d;

		pathf(a, sizeof(a), "%s%s", from, subs[i]);
		pathf(b, sizeof(b), "%s%s", to, subs[i]);
		if (mkdir(b, 0755) != 0 && errno != EEXIST)
			die("mkdir %s: %s", b, strerror(errno));
		d = opendir(a);
		if (d == NULL)
			continue;
		while ((e = readdir(d)) != NULL) {
			char fa[PATH_MAX], fb[PATH_MAX];
			struct stat st;

			if (e->d_name[0] == '.')
				continue;
			pathf(fa, sizeof(fa), "%s/%s", a, e->d_name);
			pathf(fb, sizeof(fb), "%s/%s", b, e->d_name);
			if (stat(fa, &st) == 0 && S_ISREG(st.st_mode))
				copy_file(fa, fb);
		}
		closedir(d);
	}
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names in @dir (no dot files), sorted; *@n their number. Free with free_names(). */
static char **list_names(const char *dir, size_t *n)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char **v = NULL;
	size_t cap = 0;

	*n = 0;
	if (d == NULL)
		return NULL;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		if (*n == cap) {
			cap = cap ? cap * 2 : 32;
			v = realloc(v, cap * sizeof(*v));
			if (v == NULL)
				die("out of memory");
		}
		v[*n] = strdup(e->d_name);
		if (v[(*n)++] == NULL)
			die("out of memory");
	}
	closedir(d);
	if (*n > 1)
		qsort(v, *n, sizeof(*v), name_cmp);
	return v;
}

static void free_names(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);

	return a > b && strcmp(s + a - b, suffix) == 0;
}

static bool all_digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

/* ---- the model ------------------------------------------------------------------------------ */

static void value_of(uint64_t seq, unsigned char *buf /* OUT */)
{
	su_fill(buf, hist[seq].vlen, su_hash3(cfg.seed, seq, 0x76616c));
}

/* The seq of the last write of key @j with a seq <= @k, 0 if none. */
static uint64_t last_write(unsigned j, uint64_t k)
{
	const struct keyinfo *ki = &keys[j];
	size_t lo = 0, hi = ki->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (ki->seqs[mid] <= k)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo ? ki->seqs[lo - 1] : 0;
}

/* Did write @s delete key @j? (A batch's second key is always put.) */
static bool del_of(uint64_t s, unsigned j)
{
	return hist[s].del && hist[s].key == j;
}

static bool present_at(unsigned j, uint64_t k)
{
	uint64_t s = last_write(j, k);

	return s != 0 && !del_of(s, j);
}

static uint64_t live_keys_at(uint64_t k)
{
	uint64_t n = 0;

	for (unsigned j = 0; j < NKEYS; j++)
		n += present_at(j, k);
	return n;
}

/* A random key in [lo, hi) that is present (per @present), or -1. */
static int pick_present(struct su_rng *rng, const bool *present, unsigned lo, unsigned hi)
{
	unsigned n = hi - lo, start = (unsigned)su_rng_below(rng, n);

	for (unsigned i = 0; i < n; i++) {
		unsigned j = lo + (start + i) % n;

		if (present[j])
			return (int)j;
	}
	return -1;
}

static uint32_t vlen_of(uint64_t i)
{
	uint64_t h = su_hash3(cfg.seed, i, 0x6c656e);
	unsigned r = (unsigned)(h % 100);

	h >>= 8;
	if (i > HIST - SMALL_TAIL)
		return (uint32_t)(h % 160);
	if (r < 5)
		return 0;
	if (r < 90)
		return 1 + (uint32_t)(h % 400);
	if (r < 98)
		return 1024 + (uint32_t)(h % 3072);
	return 8192 + (uint32_t)(h % 8192);
}

/*
 * Where each write lands: the builder pins write i to CPU cpus[hist[i].cpu], so its lane is that
 * CPU modulo LANES (docs/architecture.md, WAL). A record that does not fit in its lane's segment
 * rolls the lane to a new one; a compaction rolls every lane that holds records.
 */
struct lane_fill {
	bool cur;
	size_t off;
};

/* The bytes of write @i's record (docs/format.md): a put, a put with expiry, a delete, or a
 * batch of two ops (8 bytes of batch head, 8 of op head each, 8 more for an expiry). */
static size_t rec_need(uint64_t i)
{
	const struct write *w = &hist[i];
	size_t x = w->expire ? 8 : 0;

	if (w->key2 >= 0)
		return align8(WAL_REC_HDR + 8 + 8 + keys[w->key].klen + (w->del ? 0 : w->vlen + x) +
			      8 + keys[w->key2].klen + w->vlen + x);
	return align8(WAL_REC_HDR + keys[w->key].klen + (w->del ? 0 : w->vlen + x));
}

/* Account write @i to lane @lane; true if it rolls the lane. */
static bool fill_add(struct lane_fill *lanes, unsigned lane, uint64_t i)
{
	struct lane_fill *l = &lanes[lane % LANES];
	bool roll = !l->cur || SEG_BYTES - l->off < rec_need(i);

	if (roll) {
		l->cur = true;
		l->off = WAL_HDR;
	}
	l->off += rec_need(i);
	return roll;
}

static void fill_compact(struct lane_fill *lanes)
{
	for (unsigned l = 0; l < LANES; l++)
		lanes[l].cur &= lanes[l].off == WAL_HDR;
}

/*
 * No lane may roll during the last SMALL_TAIL writes: a roll is followed by a pkv_sync() (see
 * build_main), whose `synced` in later records would make every truncation of the lanes' tails
 * a provable loss (R.5). If one would, the last put of that lane before them gets a value that
 * fills its segment, so the lane rolls there instead (a few rounds at most).
 */
static void keep_tail_unrolled(void)
{
	for (int round = 0; round < 16; round++) {
		struct lane_fill lanes[LANES] = { { false, 0 } };
		uint64_t last_put[LANES] = { 0 };
		size_t room[LANES] = { 0 };
		uint64_t roll_at = 0;
		unsigned roll_lane = 0;

		for (uint64_t i = 1; i <= HIST && roll_at == 0; i++) {
			unsigned lane = (unsigned)cpus[hist[i].cpu] % LANES;

			if (i == HIST_A + 1)
				fill_compact(lanes);
			if (i > HIST_A && i <= HIST - SMALL_TAIL && !hist[i].del &&
			    hist[i].key2 < 0 &&
			    lanes[lane].cur && SEG_BYTES - lanes[lane].off >= rec_need(i)) {
				last_put[lane] = i; /* and it does not roll: room >= its size */
				room[lane] = SEG_BYTES - lanes[lane].off;
			}
			if (fill_add(lanes, lane, i) && i > HIST - SMALL_TAIL) {
				roll_at = i;
				roll_lane = lane;
			}
		}
		if (roll_at == 0 || last_put[roll_lane] == 0 || room[roll_lane] == 0)
			return;
		{
			uint64_t w = last_put[roll_lane];
			size_t fill = room[roll_lane] + 1 - WAL_REC_HDR - keys[hist[w].key].klen -
				      (hist[w].expire ? 8 : 0);

			hist[w].vlen = (uint32_t)(fill < MAX_VAL ? fill : MAX_VAL);
		}
	}
}

static void gen_history(void)
{
	bool present[NKEYS] = { false };
	struct su_rng rng;
	unsigned run = 0, cpu = 0;

	su_rng_seed(&rng, su_hash3(cfg.seed, 0x68697374, 0));
	for (unsigned j = 0; j < NKEYS; j++) {
		char cls = j < NKA ? 'a' : j < NKA + NKB ? 'b' : 'c';
		unsigned n = j < NKA ? j : j < NKA + NKB ? j - NKA : j - NKA - NKB;

		keys[j].klen = (size_t)snprintf(keys[j].name, sizeof(keys[j].name), "%c/%04u", cls,
						n);
		keys[j].seqs = malloc((HIST + 1) * sizeof(uint32_t));
		if (keys[j].seqs == NULL)
			die("out of memory");
	}
	for (uint64_t i = 1; i <= HIST; i++) {
		struct write *w = &hist[i];
		unsigned r = (unsigned)su_rng_below(&rng, 100);
		int key = -1;
		bool del = false;

		if (i <= NKA) {
			key = (int)i - 1;
		} else if (i <= HIST_A) {
			if (r < 25)
				del = (key = pick_present(&rng, present, 0, NKA)) >= 0;
		} else if (r < 30) {
			key = (int)su_rng_below(&rng, NKA_TAIL);
		} else if (r < 45) {
			del = (key = pick_present(&rng, present, 0, NKA_TAIL)) >= 0;
		} else if (r < 75) {
			key = NKA + (int)su_rng_below(&rng, NKB);
		} else if (r < 88) {
			del = (key = pick_present(&rng, present, NKA, NKA + NKB)) >= 0;
		} else {
			/* bring back a deleted snapshot-era key, if any */
			unsigned start = (unsigned)su_rng_below(&rng, NKA_TAIL);

			for (unsigned t = 0; t < NKA_TAIL && key < 0; t++)
				if (!present[(start + t) % NKA_TAIL])
					key = (int)((start + t) % NKA_TAIL);
		}
		if (key < 0)
			key = (int)su_rng_below(&rng, i <= HIST_A ? NKA : NKA_TAIL);
		w->key = (uint16_t)key;
		w->del = del;
		w->key2 = -1;
		/* A sixth of the writes after the first NKA are batches that also put a "b" key;
		 * a fifth of the puts carry an expiry. */
		if (i > NKA && su_hash3(cfg.seed, i, 0x62617463) % 6 == 0) {
			int k2 = NKA + (int)su_rng_below(&rng, NKB);

			if (k2 != key) {
				w->key2 = (int16_t)k2;
				present[k2] = true;
				keys[k2].seqs[keys[k2].n++] = (uint32_t)i;
			}
		}
		w->expire = su_hash3(cfg.seed, i, 0x657870) % 5 == 0;
		w->vlen = del && w->key2 < 0 ? 0 : vlen_of(i);
		w->power = i == POWER_AT;
		if (run == 0) {
			cpu = (cpu + 1) % ncpus;
			run = 1 + (unsigned)su_rng_below(&rng, 6);
		}
		run--;
		w->cpu = (uint8_t)cpu;
		present[key] = !del;
		keys[key].seqs[keys[key].n++] = (uint32_t)i;
	}
	keep_tail_unrolled();
}

/* ---- reading the files the way docs/format.md lays them out -------------------------------- */

enum dec {
	DEC_OK,
	DEC_END,
	DEC_BAD
};

struct drec {
	uint64_t seq, synced;
	size_t size; /* aligned */
};

/* A batch body (docs/format.md, "Batch body"): every op well-formed, filling it exactly. */
static bool batch_ok(const unsigned char *p, size_t len)
{
	size_t off = 8;
	uint32_t nops;

	if (len < 8 || ld32(p + 4) != 0)
		return false;
	nops = ld32(p);
	if (nops == 0 || nops > PKV_BATCH_MAX_OPS)
		return false;
	for (uint32_t i = 0; i < nops; i++) {
		unsigned t;
		size_t kl, vl, head;

		if (len - off < 8)
			return false;
		t = p[off];
		kl = ld16(p + off + 2);
		vl = ld32(p + off + 4);
		if (p[off + 1] != 0 || (t != 1 && t != 2 && t != 5) || kl == 0 || kl > PKV_MAX_KEY ||
		    vl > PKV_MAX_VALUE || (t == 2 && vl != 0))
			return false;
		head = t == 5 ? 16 : 8;
		if (len - off < head + kl + vl || (t == 5 && ld64(p + off + 8) == 0))
			return false;
		off += head + kl + vl;
	}
	return off == len;
}

/* One record at @p with @avail bytes left in the segment: the rules of docs/format.md. */
static enum dec rec_decode(const unsigned char *p, size_t avail, uint32_t seed, struct drec *out)
{
	uint32_t len, klen, vlen, crc;
	unsigned type;

	if (avail < 4) {
		for (size_t i = 0; i < avail; i++)
			if (p[i] != 0)
				return DEC_BAD;
		return DEC_END;
	}
	len = ld32(p);
	if (len == 0)
		return DEC_END;
	if (avail < WAL_REC_HDR || len < WAL_REC_HDR || len > avail)
		return DEC_BAD;
	klen = ld16(p + 18);
	vlen = ld32(p + 20);
	/* A put with expiry (type 5) has 8 bytes of expiry after its value. */
	if ((uint64_t)WAL_REC_HDR + klen + vlen + (p[16] == 5 ? 8 : 0) != len)
		return DEC_BAD;
	crc = crc32c(crc32c(seed, p + 8, len - 8), p, 4);
	if (crc != ld32(p + 4))
		return DEC_BAD;
	type = p[16];
	if (ld64(p + 8) == 0 || p[17] != 0)
		return DEC_BAD;
	if (type == 1 && (klen == 0 || klen > PKV_MAX_KEY || vlen > PKV_MAX_VALUE))
		return DEC_BAD;
	if (type == 2 && (klen == 0 || klen > PKV_MAX_KEY || vlen != 0))
		return DEC_BAD;
	if ((type == 4 || type == 6) && (klen != 0 || vlen != 0))
		return DEC_BAD;
	if (type == 5 && (klen == 0 || klen > PKV_MAX_KEY || vlen > PKV_MAX_VALUE ||
			  ld64(p + WAL_REC_HDR + klen + vlen) == 0))
		return DEC_BAD;
	if (type == 3 && (klen != 0 || !batch_ok(p + WAL_REC_HDR, vlen)))
		return DEC_BAD;
	if (type < 1 || type > 6)
		return DEC_BAD;
	out->seq = ld64(p + 8);
	out->synced = ld64(p + 24);
	out->size = align8(len);
	return DEC_OK;
}

struct seg {
	char name[32];
	unsigned lane;
	uint64_t segno;
	unsigned char *buf;
	size_t fsize, maplen;
	uint64_t seg_bytes; /* allocated size, from the header */
	uint32_t seed;
	/* records decoded from the header on, up to the first end or bad record */
	size_t nrecs;
	size_t *rec_off;
	size_t data_end; /* just after the last of them (aligned) */
};

struct arec {
	uint64_t seq, synced;
};

struct lane {
	unsigned id;
	struct seg **segs;
	size_t nsegs;
	struct arec *recs; /* read in order from its first segment until a bad record */
	size_t nrecs, cap;
	bool bad;
	size_t bad_si, bad_off;
};

struct wal {
	struct seg *segs;
	size_t nsegs;
	struct lane *lanes;
	size_t nlanes;
	char why[200]; /* non-empty: the open must fail (R.1, R.2) */
};

/* "LLL-SSSSSSSSSS.wal" or ".tmp"; 0 if the name parses. */
static int parse_seg_name(const char *name, unsigned *lane, uint64_t *segno, bool *tmp)
{
	if (strlen(name) != 18 || !all_digits(name, 3) || name[3] != '-' ||
	    !all_digits(name + 4, 10) || name[14] != '.')
		return -1;
	if (strcmp(name + 15, "wal") == 0)
		*tmp = false;
	else if (strcmp(name + 15, "tmp") == 0)
		*tmp = true;
	else
		return -1;
	*lane = (unsigned)strtoul(name, NULL, 10);
	*segno = strtoull(name + 4, NULL, 10);
	return 0;
}

static int seg_cmp(const void *a, const void *b)
{
	const struct seg *x = a, *y = b;

	if (x->lane != y->lane)
		return x->lane < y->lane ? -1 : 1;
	return x->segno < y->segno ? -1 : x->segno > y->segno;
}

/* Check a segment's header (R.1); an empty string if it is good. */
static void seg_check(struct seg *s, char *why, size_t cap)
{
	const unsigned char *h = s->buf;
	uint64_t seg_bytes;

	if (s->fsize < WAL_HDR) {
		snprintf(why, cap, "wal/%s: shorter than its header", s->name);
		return;
	}
	seg_bytes = ld64(h + 32);
	if (memcmp(h, "pkvWAL\0\0", 8) != 0 || crc32c(0, h, 48) != ld32(h + 48) ||
	    ld32(h + 8) < 1 || ld32(h + 8) > 2 || seg_bytes < WAL_HDR) {
		snprintf(why, cap, "wal/%s: bad segment header", s->name);
		return;
	}
	if (ld32(h + 12) != s->lane || ld64(h + 16) != s->segno) {
		snprintf(why, cap, "wal/%s: header disagrees with the name", s->name);
		return;
	}
	s->seed = crc32c(0, h, 32);
	s->seg_bytes = seg_bytes;
	s->maplen = s->fsize < seg_bytes ? s->fsize : (size_t)seg_bytes;
}

/* Last non-zero byte at or after @from, rounded up to 8; @from if none (recovery's data_end). */
static size_t data_end_from(const struct seg *s, size_t from)
{
	size_t end = s->maplen;

	while (end > from && s->buf[end - 1] == 0)
		end--;
	return end > from ? align8(end) : from;
}

static void lane_push(struct lane *l, const struct drec *r)
{
	if (l->nrecs == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 256;
		l->recs = realloc(l->recs, l->cap * sizeof(*l->recs));
		if (l->recs == NULL)
			die("out of memory");
	}
	l->recs[l->nrecs++] = (struct arec){ .seq = r->seq, .synced = r->synced };
}

static void wal_free(struct wal *w)
{
	for (size_t i = 0; i < w->nsegs; i++) {
		free(w->segs[i].buf);
		free(w->segs[i].rec_off);
	}
	for (size_t i = 0; i < w->nlanes; i++) {
		free(w->lanes[i].segs);
		free(w->lanes[i].recs);
	}
	free(w->segs);
	free(w->lanes);
	memset(w, 0, sizeof(*w));
}

/*
 * Read DIR/wal as recovery does (R.1, R.2): every segment's header and name, each segment's
 * records from its header to the first end or bad record, and each lane in segment order until
 * its first bad record. Sets w->why if the open must fail.
 */
static void wal_load(const char *dir, struct wal *w)
{
	char wdir[PATH_MAX], path[PATH_MAX * 2];
	size_t n;
	char **names;

	memset(w, 0, sizeof(*w));
	pathf(wdir, sizeof(wdir), "%s/wal", dir);
	names = list_names(wdir, &n);
	w->segs = calloc(n + 1, sizeof(*w->segs));
	w->lanes = calloc(n + 1, sizeof(*w->lanes));
	if (w->segs == NULL || w->lanes == NULL)
		die("out of memory");
	for (size_t i = 0; i < n; i++) {
		struct seg *s = &w->segs[w->nsegs];
		bool tmp;

		if (parse_seg_name(names[i], &s->lane, &s->segno, &tmp) < 0) {
			if (ends_with(names[i], ".wal") && w->why[0] == '\0')
				snprintf(w->why, sizeof(w->why), "wal/%s: not a segment name",
					 names[i]);
			continue;
		}
		if (tmp)
			continue; /* W.1 debris, removed at open */
		snprintf(s->name, sizeof(s->name), "%s", names[i]);
		pathf(path, sizeof(path), "%s/%s", wdir, names[i]);
		s->buf = read_file(path, &s->fsize);
		if (s->buf == NULL)
			die("cannot read %s: %s", path, strerror(errno));
		w->nsegs++;
		if (w->why[0] == '\0')
			seg_check(s, w->why, sizeof(w->why));
	}
	free_names(names, n);
	if (w->why[0] != '\0')
		return;
	qsort(w->segs, w->nsegs, sizeof(*w->segs), seg_cmp);

	/* Each segment alone: its records up to the first end or bad one. */
	for (size_t i = 0; i < w->nsegs; i++) {
		struct seg *s = &w->segs[i];
		size_t off = WAL_HDR, cap = 0;
		struct drec r;

		s->data_end = WAL_HDR;
		while (off < s->maplen &&
		       rec_decode(s->buf + off, s->maplen - off, s->seed, &r) == DEC_OK) {
			if (s->nrecs == cap) {
				cap = cap ? cap * 2 : 64;
				s->rec_off = realloc(s->rec_off, cap * sizeof(*s->rec_off));
				if (s->rec_off == NULL)
					die("out of memory");
			}
			s->rec_off[s->nrecs++] = off;
			off += r.size;
			s->data_end = off;
		}
	}
	/* Lanes. */
	for (size_t i = 0; i < w->nsegs;) {
		struct lane *l = &w->lanes[w->nlanes++];
		size_t j = i;

		l->id = w->segs[i].lane;
		while (j < w->nsegs && w->segs[j].lane == l->id)
			j++;
		l->nsegs = j - i;
		l->segs = malloc(l->nsegs * sizeof(*l->segs));
		if (l->segs == NULL)
			die("out of memory");
		for (size_t k = 0; k < l->nsegs; k++)
			l->segs[k] = &w->segs[i + k];
		i = j;
	}
	for (size_t li = 0; li < w->nlanes; li++) {
		struct lane *l = &w->lanes[li];
		uint64_t last = 0;

		for (size_t si = 0; si < l->nsegs && !l->bad; si++) {
			struct seg *s = l->segs[si];
			size_t off = WAL_HDR;

			for (;;) {
				struct drec r;
				enum dec d = off >= s->maplen ?
						     DEC_END :
						     rec_decode(s->buf + off, s->maplen - off,
								s->seed, &r);

				if (d == DEC_END)
					break;
				if (d == DEC_BAD) {
					l->bad = true;
					l->bad_si = si;
					l->bad_off = off;
					break;
				}
				if (r.seq <= last) {
					snprintf(w->why, sizeof(w->why),
						 "wal/%s at %zu: sequence numbers do not increase",
						 s->name, off);
					return;
				}
				last = r.seq;
				lane_push(l, &r);
				off += r.size;
			}
		}
	}
}

/* What recovery must make of a store's files (the X.4 oracle). */
struct pred {
	char why[200]; /* non-empty: the open must fail with PKV_ECORRUPT, and why */
	bool snap; /* a snapshot is the base */
	uint64_t base, k, gap, first_lost, proof, replayed;
	bool any_bad, discards;
};

/* Merge the lanes from @base + 1 (R.3) and apply R.4 and R.5. */
static void wal_predict(struct wal *w, uint64_t base, struct pred *p)
{
	size_t *head = calloc(w->nlanes + 1, sizeof(*head));
	uint64_t expected = base + 1;
	bool intact_behind;

	if (head == NULL)
		die("out of memory");
	if (w->why[0] != '\0') {
		snprintf(p->why, sizeof(p->why), "%s", w->why);
		free(head);
		return;
	}
	for (;;) {
		struct lane *min = NULL;
		size_t mi = 0;

		for (size_t i = 0; i < w->nlanes; i++) {
			struct lane *l = &w->lanes[i];

			if (head[i] < l->nrecs &&
			    (min == NULL || l->recs[head[i]].seq < min->recs[head[mi]].seq)) {
				min = l;
				mi = i;
			}
		}
		if (min == NULL)
			break;
		if (min->recs[head[mi]].seq > expected) {
			p->gap = expected;
			break;
		}
		if (min->recs[head[mi]].seq < expected && min->recs[head[mi]].seq > base) {
			snprintf(p->why, sizeof(p->why),
				 "lane %u: sequence number %" PRIu64 " twice", min->id,
				 min->recs[head[mi]].seq);
			free(head);
			return;
		}
		if (min->recs[head[mi]].seq == expected) {
			expected++;
			p->replayed++;
		}
		head[mi]++;
	}
	p->k = expected - 1;

	/* R.5's evidence: every record recovery reads, including behind the damage. */
	for (size_t i = 0; i < w->nlanes; i++) {
		struct lane *l = &w->lanes[i];

		for (size_t r = 0; r < l->nrecs; r++)
			if (l->recs[r].synced > p->proof)
				p->proof = l->recs[r].synced;
		if (head[i] < l->nrecs)
			p->discards = true;
		if (!l->bad)
			continue;
		p->any_bad = p->discards = true;
		intact_behind = false;
		{
			struct seg *s = l->segs[l->bad_si];
			size_t end = data_end_from(s, l->bad_off);

			for (size_t o = l->bad_off + 8; o + WAL_REC_HDR <= end; o += 8) {
				struct drec r;

				if (rec_decode(s->buf + o, s->maplen - o, s->seed, &r) != DEC_OK)
					continue;
				intact_behind = true;
				if (r.synced > p->proof)
					p->proof = r.synced;
				o += r.size - 8;
			}
		}
		/* Segments after the torn one: each read from its header to its first end or bad
		 * record (and the lookahead into the next one). */
		for (size_t k = l->bad_si + 1; k < l->nsegs; k++) {
			struct seg *s = l->segs[k];

			for (size_t r = 0; r < s->nrecs; r++) {
				struct drec d;

				intact_behind = true;
				rec_decode(s->buf + s->rec_off[r], s->maplen - s->rec_off[r],
					   s->seed, &d);
				if (d.synced > p->proof)
					p->proof = d.synced;
			}
		}
		/* R.15: a lane cut short at a sync (pkv_close) held only durable records. */
		if (intact_behind && p->why[0] == '\0' &&
		    l->segs[l->nsegs - 1]->fsize < l->segs[l->nsegs - 1]->seg_bytes)
			snprintf(p->why, sizeof(p->why),
				 "R.15: damage in wal/%s at %zu with intact records behind it, in a "
				 "lane closed after a sync",
				 l->segs[l->bad_si]->name, l->bad_off);
	}
	p->first_lost = p->gap ? p->gap : p->any_bad ? expected : 0;
	if (p->why[0] == '\0' && p->first_lost != 0 && p->proof >= p->first_lost)
		snprintf(p->why, sizeof(p->why),
			 "R.5: seq %" PRIu64 " is lost but a surviving record says %" PRIu64
			 " was synced",
			 p->first_lost, p->proof);
	free(head);
}

/* ---- the snapshot ---------------------------------------------------------------------------- */

struct snap {
	char name[32];
	unsigned char *buf;
	size_t size;
	uint64_t seq, count, data_bytes, index_off, nslots;
	size_t nrecs;
	size_t *rec_off, *rec_len; /* head + key + value, without padding */
	int *rec_key;
	int key_rec[NKEYS]; /* -1: not in the snapshot */
};

static struct snap snaps[NVARIANTS];
static struct wal wals[NVARIANTS];

static int key_index(const unsigned char *k, size_t klen)
{
	for (unsigned j = 0; j < NKEYS; j++)
		if (keys[j].klen == klen && memcmp(keys[j].name, k, klen) == 0)
			return (int)j;
	return -1;
}

/* Parse the pristine snapshot of @v and check it against the model at HIST_A. */
static void snap_load(enum variant v)
{
	struct snap *s = &snaps[v];
	char sdir[PATH_MAX], path[PATH_MAX * 2];
	size_t n, off, cap = 0;
	char **names;
	unsigned char val[MAX_VAL];

	pathf(sdir, sizeof(sdir), "%s/snap", pristine[v]);
	names = list_names(sdir, &n);
	if (n != 1 || !ends_with(names[0], ".snap"))
		die("%s store: expected exactly one snapshot in %s, found %zu files",
		    variant_name[v], sdir, n);
	snprintf(s->name, sizeof(s->name), "%s", names[0]);
	pathf(path, sizeof(path), "%s/%s", sdir, names[0]);
	free_names(names, n);
	s->buf = read_file(path, &s->size);
	if (s->buf == NULL || s->size < SNAP_HDR_BYTES || memcmp(s->buf, "pkvSNAP\0", 8) != 0)
		die("%s: not a snapshot", path);
	s->seq = ld64(s->buf + 16);
	s->count = ld64(s->buf + 24);
	s->data_bytes = ld64(s->buf + 40);
	s->index_off = ld64(s->buf + 48);
	s->nslots = ld64(s->buf + 56);
	if (s->seq != HIST_A || strtoull(s->name, NULL, 10) != HIST_A ||
	    s->index_off + s->nslots * 8 > s->size)
		die("%s: seq %" PRIu64 ", expected %d", path, s->seq, HIST_A);
	for (unsigned j = 0; j < NKEYS; j++)
		s->key_rec[j] = -1;
	for (off = SNAP_HDR_BYTES; off + SNAP_REC_HDR <= SNAP_HDR_BYTES + s->data_bytes;) {
		const unsigned char *r = s->buf + off;
		uint32_t vlen = ld32(r + 8);
		uint16_t klen = ld16(r + 12);
		size_t tail = ld16(r + 14) & 1 ? 8 : 0; /* SNAP_REC_EXPIRES: expires_ms after it */
		size_t len = SNAP_REC_HDR + (size_t)klen + vlen + tail;
		int j = key_index(r + SNAP_REC_HDR, klen);
		uint64_t w;

		if (s->nrecs == cap) {
			cap = cap ? cap * 2 : 256;
			s->rec_off = realloc(s->rec_off, cap * sizeof(*s->rec_off));
			s->rec_len = realloc(s->rec_len, cap * sizeof(*s->rec_len));
			s->rec_key = realloc(s->rec_key, cap * sizeof(*s->rec_key));
			if (s->rec_off == NULL || s->rec_len == NULL || s->rec_key == NULL)
				die("out of memory");
		}
		if (j < 0 || s->key_rec[j] >= 0)
			die("%s at %zu: a record of an unknown or repeated key", path, off);
		w = last_write((unsigned)j, HIST_A);
		value_of(w, val);
		if (!present_at((unsigned)j, HIST_A) || ld64(r) != w || vlen != hist[w].vlen ||
		    memcmp(r + SNAP_REC_HDR + klen, val, vlen) != 0 ||
		    (tail != 0) != (hist[w].expire != 0) ||
		    crc32c(crc32c(0, r, 16), r + SNAP_REC_HDR, (size_t)klen + vlen + tail) !=
			    ld32(r + 16))
			die("%s at %zu: the record of %s is not the model's", path, off,
			    keys[j].name);
		s->rec_off[s->nrecs] = off;
		s->rec_len[s->nrecs] = len;
		s->rec_key[s->nrecs] = j;
		s->key_rec[j] = (int)s->nrecs++;
		off += align8(len);
	}
	if (s->nrecs != s->count || s->count != live_keys_at(HIST_A))
		die("%s: %zu records, header says %" PRIu64 ", the model %" PRIu64, path, s->nrecs,
		    s->count, live_keys_at(HIST_A));
}

/* ---- expectations of one case ---------------------------------------------------------------- */

struct expect {
	struct pred p;
	int verify; /* 0 or PKV_ECORRUPT (X.3) */
	bool index_changed;
	bool rec_damaged[NKEYS];
	unsigned snap_bytes_changed;
};

static bool in_range(size_t x, uint64_t lo, uint64_t len)
{
	return x >= lo && x - lo < len;
}

/* Work out what the damaged copy in @dir must open to (X.3, X.4). */
static void expect_of(const char *dir, enum variant v, struct expect *e)
{
	const struct snap *ps = &snaps[v];
	char sdir[PATH_MAX], path[PATH_MAX * 2];
	uint64_t best = 0;
	bool any = false;
	size_t n, len;
	char **names;
	struct wal w;

	memset(e, 0, sizeof(*e));
	pathf(sdir, sizeof(sdir), "%s/snap", dir);
	names = list_names(sdir, &n);
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(names[i]);

		if (l == 25 && all_digits(names[i], 20) && strcmp(names[i] + 20, ".snap") == 0) {
			uint64_t s = strtoull(names[i], NULL, 10);

			if (!any || s > best)
				best = s;
			any = true;
		} else if (ends_with(names[i], ".snap") && e->p.why[0] == '\0') {
			snprintf(e->p.why, sizeof(e->p.why), "snap/%s: not a snapshot name",
				 names[i]);
		}
	}
	free_names(names, n);
	if (e->p.why[0] != '\0')
		return;
	if (any) {
		unsigned char *b;

		pathf(path, sizeof(path), "%s/%020" PRIu64 ".snap", sdir, best);
		b = read_file(path, &len);
		if (b == NULL)
			die("cannot read %s", path);
		if (len != ps->size || memcmp(b, ps->buf, SNAP_HDR_CHECKED) != 0 ||
		    best != ps->seq) {
			snprintf(e->p.why, sizeof(e->p.why), "snap/%020" PRIu64 ".snap: %s", best,
				 len != ps->size ? "size differs from its header" :
				 best != ps->seq ? "name disagrees with its header" :
						   "damaged header");
			free(b);
			return;
		}
		/* Which records and which regions the damage changed. */
		for (size_t x = SNAP_HDR_CHECKED; x < len; x++) {
			if (b[x] == ps->buf[x])
				continue;
			e->snap_bytes_changed++;
			if (in_range(x, SNAP_HDR_BYTES, ps->data_bytes)) {
				e->verify = PKV_ECORRUPT;
				for (size_t r = 0; r < ps->nrecs; r++)
					if (in_range(x, ps->rec_off[r], ps->rec_len[r]))
						e->rec_damaged[ps->rec_key[r]] = true;
			} else if (in_range(x, ps->index_off,
					    ps->nslots * 8 + (ps->nslots * 8 + 4095) / 4096 * 4)) {
				/* The index, or its page CRCs right after it (docs/format.md). */
				e->verify = PKV_ECORRUPT;
				e->index_changed = true;
			}
		}
		free(b);
		e->p.snap = true;
		e->p.base = best;
	}
	wal_load(dir, &w);
	wal_predict(&w, e->p.base, &e->p);
	wal_free(&w);
}

/* ---- the builder child --------------------------------------------------------------------- */

struct build_msg {
	int ok;
	char msg[256];
};

static void build_opts(pkv_options *o)
{
	pkv_options_default(o);
	o->durability = PKV_DURABLE_PROCESS;
	o->wal_lanes = LANES;
	o->wal_segment_bytes = SEG_BYTES;
	o->flags = PKV_OPEN_NO_AUTOCOMPACT;
}

static void pin(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	sched_setaffinity(0, sizeof(set), &set); /* best effort: it only spreads the lanes */
}

static int do_write(pkv *db, uint64_t i, unsigned char *buf)
{
	const struct write *w = &hist[i];
	const struct keyinfo *k = &keys[w->key];
	unsigned flags = w->power ? PKV_WRITE_POWER : 0;
	uint64_t exp = w->expire ? FAR_EXPIRY : 0;

	value_of(i, buf);
	if (w->key2 >= 0) { /* one batch record: both keys at seq i */
		const struct keyinfo *k2 = &keys[w->key2];
		pkv_batch *b;
		int rc = pkv_batch_new(&b);

		if (rc == 0)
			rc = w->del ? pkv_batch_del(b, k->name, k->klen)
				    : pkv_batch_put_expire(b, k->name, k->klen, buf, w->vlen, exp);
		if (rc == 0)
			rc = pkv_batch_put_expire(b, k2->name, k2->klen, buf, w->vlen, exp);
		if (rc == 0)
			rc = pkv_write(db, b, flags, NULL);
		pkv_batch_free(b);
		return rc;
	}
	if (w->del)
		return pkv_del_ex(db, k->name, k->klen, flags);
	return pkv_put_expire(db, k->name, k->klen, buf, w->vlen, exp, flags);
}

/*
 * The builder follows each lane's fill and calls pkv_sync() right after a write that rolled its
 * lane. A roll wakes the background thread, which would otherwise run a sync round whose target
 * (and so the `synced` field of the records after it) depends on timing; after this sync it finds
 * nothing to do, and the store is the same on every run.
 */
static void build_main(enum variant v, int fd)
{
	static unsigned char buf[MAX_VAL], got[MAX_VAL];
	struct lane_fill lanes[LANES] = { { false, 0 } };
	struct build_msg m = { 0 };
	pkv_options o;
	pkv_stats st;
	pkv *db = NULL;
	bool roll;
	int cpu, rc;

	build_opts(&o);
	rc = pkv_open(pristine[v], &o, &db);
	if (rc != 0) {
		snprintf(m.msg, sizeof(m.msg), "pkv_open = %d (%s)", rc, pkv_strerror(rc));
		goto out;
	}
	for (uint64_t i = 1; i <= HIST; i++) {
		if (i == HIST_A + 1) {
			rc = pkv_compact(db);
			if (rc == 0)
				rc = pkv_get_stats(db, &st);
			if (rc != 0 || st.snapshot_seq != HIST_A || st.last_seq != HIST_A) {
				snprintf(m.msg, sizeof(m.msg),
					 "pkv_compact = %d: snapshot at %" PRIu64
					 ", last seq %" PRIu64,
					 rc, st.snapshot_seq, st.last_seq);
				goto out;
			}
			fill_compact(lanes);
		}
		pin(cpus[hist[i].cpu]);
		cpu = sched_getcpu(); /* the lane pkv picks (pinned: the same as cpus[...]) */
		roll = fill_add(lanes, (unsigned)(cpu < 0 ? 0 : cpu), i);
		rc = do_write(db, i, buf);
		if (rc == 0)
			rc = pkv_get_stats(db, &st);
		if (rc != 0 || st.last_seq != i) {
			snprintf(m.msg, sizeof(m.msg),
				 "write %" PRIu64 " = %d (%s), last seq %" PRIu64
				 ": not numbered 1, 2, 3, ...",
				 i, rc, pkv_strerror(rc), st.last_seq);
			goto out;
		}
		if ((i == SYNC_AT || roll) && (rc = pkv_sync(db)) != 0) {
			snprintf(m.msg, sizeof(m.msg), "pkv_sync = %d", rc);
			goto out;
		}
	}
	for (unsigned j = 0; j < NKEYS; j++) {
		uint64_t w = last_write(j, HIST);
		size_t vlen = 0;

		rc = pkv_get(db, keys[j].name, keys[j].klen, got, sizeof(got), &vlen);
		if (present_at(j, HIST)) {
			value_of(w, buf);
			if (rc == 0 && vlen == hist[w].vlen && memcmp(got, buf, vlen) == 0)
				continue;
		} else if (rc == PKV_NOTFOUND) {
			continue;
		}
		snprintf(m.msg, sizeof(m.msg), "%.16s: get = %d, not the model's", keys[j].name,
			 rc);
		goto out;
	}
	if (v == V_CLOSED) {
		rc = pkv_close(db);
		db = NULL;
		if (rc != 0) {
			snprintf(m.msg, sizeof(m.msg), "pkv_close = %d", rc);
			goto out;
		}
	} else {
		su_sleep_ms(200); /* the background thread's spare segments settle */
	}
	m.ok = 1;
out:
	su_send(fd, &m, sizeof(m));
	if (m.ok && v == V_KILLED)
		for (;;)
			pause(); /* SIGKILLed by the parent */
	_exit(m.ok ? 0 : 3);
}

static void build(enum variant v)
{
	struct build_msg m = { 0 };
	int rfd, wfd, status;
	pid_t pid;
	bool got;

	pid = su_fork_pipe(&rfd, &wfd);
	if (pid == 0)
		build_main(v, wfd);
	got = su_read_full(rfd, &m, sizeof(m)) == 0;
	close(rfd);
	if (got && m.ok && v == V_KILLED)
		kill(pid, SIGKILL);
	status = su_wait(pid);
	if (!got || !m.ok)
		die("building the %s store: %s (status %d)", variant_name[v],
		    got ? m.msg : "the builder died", status);
}

/* ---- damage ------------------------------------------------------------------------------------ */

enum kind {
	K_TRUNC_TAIL,
	K_TRUNC_SEG,
	K_FLIP_WAL,
	K_FLIP_SNAP,
	K_ZERO_WAL,
	K_ZERO_SNAP,
	K_TRUNC_SNAP,
	K_DELETE,
	K_DUP,
	NKINDS
};
static const char *const kind_name[NKINDS] = { "trunc-tail", "trunc-seg", "flip-wal",
					       "flip-snap",  "zero-wal",  "zero-snap",
					       "trunc-snap", "delete",	  "dup" };

/* One block of the case schedule: case i has kind sched[i % SCHED]. */
#define SCHED 20
static const enum kind sched[SCHED] = {
	K_TRUNC_TAIL, K_FLIP_WAL,   K_FLIP_SNAP,  K_TRUNC_TAIL, K_ZERO_WAL,
	K_TRUNC_TAIL, K_FLIP_WAL,   K_TRUNC_SNAP, K_TRUNC_TAIL, K_FLIP_SNAP,
	K_DELETE,     K_TRUNC_TAIL, K_FLIP_WAL,	  K_ZERO_SNAP,	K_TRUNC_TAIL,
	K_FLIP_SNAP,  K_DUP,	    K_FLIP_WAL,	  K_ZERO_WAL,	K_TRUNC_SEG,
};

/* The truncation sweep: every (store, segment, offset), visited in a permuted order. */
struct titem {
	uint8_t v;
	uint16_t seg; /* index into wals[v].segs */
	uint32_t off;
};
static struct titem *titems;
static size_t ntitems, tstride, tstart;
static unsigned tt_per_block, tt_rank[SCHED];

static uint64_t gcd(uint64_t a, uint64_t b)
{
	while (b) {
		uint64_t t = a % b;

		a = b;
		b = t;
	}
	return a;
}

static void titem_add(enum variant v, size_t seg, size_t off)
{
	static size_t cap;

	if (ntitems == cap) {
		cap = cap ? cap * 2 : 1024;
		titems = realloc(titems, cap * sizeof(*titems));
		if (titems == NULL)
			die("out of memory");
	}
	titems[ntitems++] = (struct titem){ .v = (uint8_t)v,
					    .seg = (uint16_t)seg,
					    .off = (uint32_t)off };
}

static void sweep_init(void)
{
	for (unsigned i = 0; i < SCHED; i++) {
		tt_rank[i] = tt_per_block;
		tt_per_block += sched[i] == K_TRUNC_TAIL;
	}
	for (int v = 0; v < NVARIANTS; v++) {
		struct wal *w = &wals[v];

		for (size_t li = 0; li < w->nlanes; li++) {
			const struct lane *l = &w->lanes[li];
			const struct seg *s = NULL;
			size_t from, to;

			for (size_t k = 0; k < l->nsegs; k++)
				if (l->segs[k]->nrecs > 0)
					s = l->segs[k];
			if (s == NULL)
				continue;
			from = s->rec_off[s->nrecs > TAIL_RECS ? s->nrecs - TAIL_RECS : 0];
			to = s->data_end + TAIL_PAST;
			if (to > s->fsize)
				to = s->fsize;
			for (size_t off = 0; off < to; off++)
				if (off < HDR_SPAN || off >= from)
					titem_add((enum variant)v, (size_t)(s - w->segs), off);
		}
	}
	if (ntitems == 0)
		die("no segment with records to truncate");
	tstride = (size_t)((double)ntitems * 0.618) | 1;
	while (gcd(tstride, ntitems) != 1)
		tstride += 2;
	tstart = (size_t)(su_hash3(cfg.seed, 0x7377, 0) % ntitems);
}

struct damage {
	enum kind kind;
	enum variant v;
	char desc[512];
	size_t titem; /* K_TRUNC_TAIL */
};

static void path_in(char *out, size_t cap, const char *sub, const char *name)
{
	pathf(out, cap, "%s/%s/%s", work, sub, name);
}

/* A segment of store @v: one with records most of the time, else any (spares included). */
static const struct seg *pick_seg(struct su_rng *rng, enum variant v)
{
	const struct wal *w = &wals[v];
	size_t n = 0;

	for (size_t i = 0; i < w->nsegs; i++)
		n += w->segs[i].nrecs > 0;
	if (n > 0 && su_rng_below(rng, 100) < 85) {
		size_t t = (size_t)su_rng_below(rng, n);

		for (size_t i = 0; i < w->nsegs; i++)
			if (w->segs[i].nrecs > 0 && t-- == 0)
				return &w->segs[i];
	}
	return &w->segs[su_rng_below(rng, w->nsegs)];
}

/* The last segment with records of a random lane: where an unsynced tail is. */
static const struct seg *tail_seg(struct su_rng *rng, enum variant v)
{
	const struct wal *w = &wals[v];
	const struct seg *last[LANES] = { NULL };
	size_t n = 0;

	for (size_t li = 0; li < w->nlanes; li++) {
		const struct seg *s = NULL;

		for (size_t k = 0; k < w->lanes[li].nsegs; k++)
			if (w->lanes[li].segs[k]->nrecs > 0)
				s = w->lanes[li].segs[k];
		if (s != NULL && n < LANES)
			last[n++] = s;
	}
	return n ? last[su_rng_below(rng, n)] : pick_seg(rng, v);
}

static void flip(const char *sub, const char *name, uint64_t off, unsigned bit, struct damage *d)
{
	char path[PATH_MAX * 2];
	unsigned char b;
	int fd;

	path_in(path, sizeof(path), sub, name);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0 || pread(fd, &b, 1, (off_t)off) != 1)
		die("cannot read %s at %" PRIu64, path, off);
	b ^= (unsigned char)(1u << bit);
	if (pwrite(fd, &b, 1, (off_t)off) != 1)
		die("cannot write %s", path);
	close(fd);
	appendf(d->desc, sizeof(d->desc), " %s@%" PRIu64 ".%u", name, off, bit);
}

static void zero_page(const char *sub, const char *name, uint64_t off, size_t len, struct damage *d)
{
	static const unsigned char zeros[PAGE];
	char path[PATH_MAX * 2];

	path_in(path, sizeof(path), sub, name);
	for (size_t o = 0; o < len; o += PAGE)
		write_at(path, off + o, zeros, len - o < PAGE ? len - o : PAGE);
	appendf(d->desc, sizeof(d->desc), " %s [%" PRIu64 ", %" PRIu64 ")", name, off, off + len);
}

static void cut(const char *sub, const char *name, uint64_t len, struct damage *d)
{
	char path[PATH_MAX * 2];

	path_in(path, sizeof(path), sub, name);
	if (truncate(path, (off_t)len) != 0)
		die("truncate %s: %s", path, strerror(errno));
	appendf(d->desc, sizeof(d->desc), " %s to %" PRIu64 " bytes", name, len);
}

static uint64_t in_span(struct su_rng *rng, uint64_t lo, uint64_t hi)
{
	return hi > lo ? lo + su_rng_below(rng, hi - lo) : lo;
}

static void damage_flip_wal(struct su_rng *rng, struct damage *d)
{
	unsigned nbits = 1 + (unsigned)su_rng_below(rng, 8);
	bool burst = su_rng_below(rng, 4) == 0;
	bool tail = su_rng_below(rng, 3) == 0; /* only in the unsynced tail of a lane */
	const struct seg *s = tail ? tail_seg(rng, d->v) : pick_seg(rng, d->v);
	uint64_t at = 0;

	for (unsigned b = 0; b < nbits; b++) {
		uint64_t off;

		if (burst && b > 0) {
			off = at + su_rng_below(rng, 16);
			if (off >= s->fsize)
				off = s->fsize - 1;
		} else if (tail) {
			off = in_span(rng,
				      s->data_end > 2048 + WAL_HDR ? s->data_end - 2048 : WAL_HDR,
				      s->data_end);
			at = off;
		} else {
			unsigned r = (unsigned)su_rng_below(rng, 10);

			if (b > 0 && su_rng_below(rng, 3) == 0)
				s = pick_seg(rng, d->v);
			if (r < 2)
				off = su_rng_below(rng, WAL_HDR);
			else if (r < 9)
				off = in_span(rng, WAL_HDR, s->data_end);
			else
				off = su_rng_below(rng, s->fsize);
			at = off;
		}
		flip("wal", s->name, off, (unsigned)su_rng_below(rng, 8), d);
	}
}

static void damage_flip_snap(struct su_rng *rng, struct damage *d)
{
	const struct snap *s = &snaps[d->v];
	unsigned nbits = 1 + (unsigned)su_rng_below(rng, 8);
	bool burst = su_rng_below(rng, 4) == 0;
	uint64_t at = 0;

	for (unsigned b = 0; b < nbits; b++) {
		uint64_t off;

		if (burst && b > 0) {
			off = at + su_rng_below(rng, 16);
			if (off >= s->size)
				off = s->size - 1;
		} else {
			unsigned r = (unsigned)su_rng_below(rng, 20);
			size_t rec = (size_t)su_rng_below(rng, s->nrecs);

			if (r < 3) /* header */
				off = su_rng_below(rng, SNAP_HDR_CHECKED);
			else if (r < 4) /* the rest of the header page */
				off = in_span(rng, SNAP_HDR_CHECKED, SNAP_HDR_BYTES);
			else if (r < 8) /* a record's head: seq, lengths, flags, crc */
				off = s->rec_off[rec] + su_rng_below(rng, SNAP_REC_HDR);
			else if (r < 13) /* record bytes */
				off = in_span(rng, SNAP_HDR_BYTES, SNAP_HDR_BYTES + s->data_bytes);
			else if (r < 19) /* the index */
				off = in_span(rng, s->index_off, s->index_off + s->nslots * 8);
			else
				off = su_rng_below(rng, s->size);
			at = off;
		}
		flip("snap", s->name, off, (unsigned)su_rng_below(rng, 8), d);
	}
}

static void damage_dup(struct su_rng *rng, struct damage *d)
{
	const struct wal *w = &wals[d->v];
	const struct snap *sn = &snaps[d->v];
	const struct seg *s = pick_seg(rng, d->v);
	char from[PATH_MAX * 2], to[PATH_MAX * 2], name[64];
	unsigned r = (unsigned)su_rng_below(rng, 5);

	if (r >= 3) { /* the snapshot, under an older or a newer name */
		uint64_t seq = r == 3 ? sn->seq - 1 : sn->seq + 1;

		snprintf(name, sizeof(name), "%020" PRIu64 ".snap", seq);
		path_in(from, sizeof(from), "snap", sn->name);
		path_in(to, sizeof(to), "snap", name);
		copy_file(from, to);
		appendf(d->desc, sizeof(d->desc), " snap/%s as %s", sn->name, name);
		return;
	}
	if (r == 0) { /* the next segment number of its lane */
		uint64_t next = 0;

		for (size_t i = 0; i < w->nsegs; i++)
			if (w->segs[i].lane == s->lane && w->segs[i].segno >= next)
				next = w->segs[i].segno + 1;
		snprintf(name, sizeof(name), "%03u-%010" PRIu64 ".wal", s->lane, next);
	} else if (r == 1) { /* another lane, a number it does not use */
		unsigned lane = (s->lane + 1 + (unsigned)su_rng_below(rng, LANES - 1)) % LANES;

		snprintf(name, sizeof(name), "%03u-%010" PRIu64 ".wal", lane, s->segno + 1000);
	} else { /* an unfinished creation: removed at open */
		snprintf(name, sizeof(name), "%03u-%010" PRIu64 ".tmp", s->lane, s->segno + 1000);
	}
	path_in(from, sizeof(from), "wal", s->name);
	path_in(to, sizeof(to), "wal", name);
	copy_file(from, to);
	appendf(d->desc, sizeof(d->desc), " wal/%s as %s", s->name, name);
}

static void apply_damage(uint64_t i, struct su_rng *rng, struct damage *d)
{
	const struct snap *sn;
	const struct seg *s;
	char path[PATH_MAX * 2];

	d->kind = sched[i % SCHED];
	d->v = (enum variant)su_rng_below(rng, NVARIANTS);
	d->desc[0] = '\0';
	if (d->kind == K_TRUNC_TAIL) {
		uint64_t t = (i / SCHED) * tt_per_block + tt_rank[i % SCHED];
		const struct titem *it;

		d->titem = (size_t)((tstart + (t % ntitems) * tstride) % ntitems);
		it = &titems[d->titem];
		d->v = (enum variant)it->v;
	}
	sn = &snaps[d->v];
	copy_store(pristine[d->v], work);

	switch (d->kind) {
	case K_TRUNC_TAIL: {
		const struct titem *it = &titems[d->titem];

		s = &wals[d->v].segs[it->seg];
		cut("wal", s->name, it->off, d);
		appendf(d->desc, sizeof(d->desc), " (data ends at %zu, %zu records)", s->data_end,
			s->nrecs);
		break;
	}
	case K_TRUNC_SEG:
		s = pick_seg(rng, d->v);
		cut("wal", s->name,
		    su_rng_below(rng, 2) ? su_rng_below(rng, s->fsize) :
					   su_rng_below(rng, s->data_end + 8),
		    d);
		break;
	case K_FLIP_WAL:
		damage_flip_wal(rng, d);
		break;
	case K_FLIP_SNAP:
		damage_flip_snap(rng, d);
		break;
	case K_ZERO_WAL: {
		size_t pages, p, np;

		np = su_rng_below(rng, 4) == 0 ? 2 : 1;
		if (su_rng_below(rng, 3) == 0) { /* the page where a lane's data ends */
			s = tail_seg(rng, d->v);
			pages = (s->fsize + PAGE - 1) / PAGE;
			p = (s->data_end - 1) / PAGE;
		} else { /* pages that hold data, mostly */
			s = pick_seg(rng, d->v);
			pages = (s->fsize + PAGE - 1) / PAGE;
			p = su_rng_below(rng, 5) ?
				    su_rng_below(rng, (s->data_end + PAGE - 1) / PAGE) :
				    su_rng_below(rng, pages);
		}
		if (p + np > pages)
			np = pages - p;
		zero_page("wal", s->name, p * PAGE,
			  (p + np) * PAGE > s->fsize ? s->fsize - p * PAGE : np * PAGE, d);
		break;
	}
	case K_ZERO_SNAP: {
		size_t p = su_rng_below(rng, (sn->size + PAGE - 1) / PAGE);

		zero_page("snap", sn->name, p * PAGE,
			  (p + 1) * PAGE > sn->size ? sn->size - p * PAGE : PAGE, d);
		break;
	}
	case K_TRUNC_SNAP: {
		unsigned r = (unsigned)su_rng_below(rng, 4);
		uint64_t len, data_end = SNAP_HDR_BYTES + sn->data_bytes;

		if (r == 0)
			len = su_rng_below(rng, SNAP_HDR_BYTES + 64);
		else if (r == 1)
			len = in_span(rng, data_end - 64, sn->index_off + 64);
		else if (r == 2)
			len = sn->size - 1 - su_rng_below(rng, 64);
		else
			len = su_rng_below(rng, sn->size);
		cut("snap", sn->name, len, d);
		break;
	}
	case K_DELETE:
		if (su_rng_below(rng, 8) == 0) {
			path_in(path, sizeof(path), "snap", sn->name);
			appendf(d->desc, sizeof(d->desc), " snap/%s", sn->name);
		} else {
			s = pick_seg(rng, d->v);
			path_in(path, sizeof(path), "wal", s->name);
			appendf(d->desc, sizeof(d->desc), " wal/%s", s->name);
		}
		if (unlink(path) != 0)
			die("unlink %s: %s", path, strerror(errno));
		break;
	case K_DUP:
		damage_dup(rng, d);
		break;
	case NKINDS:
		break;
	}
}

/* ---- the checker child ------------------------------------------------------------------------ */

struct result {
	bool done; /* the checker got to the end and sent this */
	int open_rc;
	uint64_t k;
	int verify_rc;
	unsigned get_corrupt, get_notfound, masked;
	unsigned failures;
	pkv_stats st;
	char msg[1024];
	char log[1024];
};

static char logbuf[8192];

static void log_fn(void *ctx, int level, const char *msg)
{
	size_t n = strlen(logbuf), m = strlen(msg);

	(void)ctx;
	(void)level;
	if (n + m + 2 >= sizeof(logbuf)) { /* start over: the newest messages matter */
		logbuf[0] = '\0';
		n = 0;
	}
	if (m + 2 < sizeof(logbuf) - n)
		snprintf(logbuf + n, sizeof(logbuf) - n, "%s\n", msg);
}

static void cfail(struct result *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void cfail(struct result *r, const char *fmt, ...)
{
	va_list ap;

	if (r->failures++ == 0) {
		va_start(ap, fmt);
		vsnprintf(r->msg, sizeof(r->msg), fmt, ap);
		va_end(ap);
	}
}

static void check_opts(pkv_options *o)
{
	build_opts(o);
	o->log_fn = log_fn;
}

/* X.2: every key against the model after @k writes. */
static void check_keys(pkv *db, uint64_t k, const struct expect *e, bool tolerate, struct result *r,
		       const char *when)
{
	static unsigned char want[MAX_VAL], got[MAX_VAL];

	for (unsigned j = 0; j < NKEYS; j++) {
		uint64_t w = last_write(j, k);
		bool present = w != 0 && !del_of(w, j);
		bool snap_version = e->p.snap && w != 0 && w <= e->p.base && present;
		size_t vlen = 0;
		int rc = pkv_get(db, keys[j].name, keys[j].klen, got, sizeof(got), &vlen);

		if (rc == 0) {
			if (!present) {
				cfail(r,
				      "X.2 %s: %s holds %zu bytes, but after %" PRIu64
				      " writes it is absent (last write %" PRIu64 ")",
				      when, keys[j].name, vlen, k, w);
				continue;
			}
			value_of(w, want);
			if (vlen != hist[w].vlen || memcmp(got, want, vlen) != 0)
				cfail(r,
				      "X.2 %s: %s: WRONG VALUE (%zu bytes), expected write %" PRIu64
				      " (%" PRIu32 " bytes) after %" PRIu64 " writes",
				      when, keys[j].name, vlen, w, hist[w].vlen, k);
		} else if (rc == PKV_NOTFOUND) {
			if (!present)
				continue;
			cfail(r,
			      "X.2 %s: %s is PKV_NOTFOUND, expected write %" PRIu64
			      " after %" PRIu64 " writes%s",
			      when, keys[j].name, w, k,
			      snap_version ? " (its snapshot record is intact)" : "");
		} else if (rc == PKV_ECORRUPT) {
			if (!tolerate || !(e->rec_damaged[j] || e->index_changed)) {
				cfail(r,
				      "X.2 %s: %s is PKV_ECORRUPT but its snapshot record %s",
				      when, keys[j].name,
				      e->rec_damaged[j] || e->index_changed ?
					      "or the index is damaged while pkv_verify says 0" :
					      "and the index are intact");
			} else if (snap_version || !present) {
				/* Answered from the snapshot: its version, or absence, which a damaged
				 * index cannot prove either (N.4). */
				r->get_corrupt++;
			} else {
				r->masked++;
				if (cfg.strict)
					cfail(r,
					      "X.2 %s: %s is PKV_ECORRUPT (its snapshot record is "
					      "damaged), but its version after %" PRIu64
					      " writes is write %" PRIu64 " in the WAL",
					      when, keys[j].name, k, w);
			}
		} else {
			cfail(r, "X.2 %s: get %s = %d (%s)", when, keys[j].name, rc,
			      pkv_strerror(rc));
		}
	}
}

static void check_stats(pkv *db, uint64_t want_keys, bool exact, struct result *r, const char *when,
			pkv_stats *st /* OUT */)
{
	int rc = pkv_get_stats(db, st);

	if (rc != 0)
		cfail(r, "%s: pkv_get_stats = %d", when, rc);
	else if (exact && st->keys != want_keys)
		cfail(r, "X.3 %s: stats.keys = %" PRIu64 ", the model has %" PRIu64, when, st->keys,
		      want_keys);
}

static void check_main(int fd, const struct expect *e)
{
	static unsigned char buf[64];
	struct result r = { 0 };
	const struct pred *p = &e->p;
	pkv_options o;
	pkv_stats st;
	pkv *db = NULL;
	size_t vlen;
	uint64_t k;
	int rc;

	alarm(cfg.timeout);
	check_opts(&o);
	r.open_rc = pkv_open(work, &o, &db);
	if (r.open_rc == PKV_ECORRUPT) {
		if (db != NULL)
			cfail(&r, "X.1 pkv_open = PKV_ECORRUPT but set the handle");
		db = NULL;
		rc = pkv_open(work, &o, &db);
		if (rc != PKV_ECORRUPT) {
			cfail(&r, "X.1 a second pkv_open = %d (%s), expected PKV_ECORRUPT again",
			      rc, pkv_strerror(rc));
			if (rc == 0)
				pkv_close(db);
		}
		if (p->why[0] == '\0')
			cfail(&r,
			      "X.4 pkv_open = PKV_ECORRUPT, but the rules give %" PRIu64
			      " writes (gap %" PRIu64 ", synced proof %" PRIu64 ")",
			      p->k, p->gap, p->proof);
		goto out;
	}
	if (r.open_rc != 0) {
		cfail(&r, "X.1 pkv_open = %d (%s)", r.open_rc, pkv_strerror(r.open_rc));
		goto out;
	}
	if (p->why[0] != '\0')
		cfail(&r, "X.4 pkv_open succeeded; expected PKV_ECORRUPT: %s", p->why);
	check_stats(db, 0, false, &r, "after open", &r.st);
	k = r.k = r.st.last_seq;
	if (k > HIST) {
		cfail(&r, "X.2 recovered last seq %" PRIu64 " > %d writes", k, HIST);
		k = HIST;
	}
	if (p->why[0] == '\0') {
		if (k != p->k)
			cfail(&r, "X.4 recovered %" PRIu64 " writes, the rules give %" PRIu64, k,
			      p->k);
		if (r.st.recovery_gap_seq != p->gap)
			cfail(&r, "X.4 gap reported at %" PRIu64 ", the rules give %" PRIu64,
			      r.st.recovery_gap_seq, p->gap);
		if (r.st.recovered_records != p->replayed)
			cfail(&r, "X.4 %" PRIu64 " records replayed, the rules give %" PRIu64,
			      r.st.recovered_records, p->replayed);
		if ((r.st.discarded_bytes > 0) != p->discards)
			cfail(&r, "X.4 %" PRIu64 " bytes discarded reported, but the rules say %s",
			      r.st.discarded_bytes,
			      p->discards ? "something was discarded" : "nothing was");
		if (r.st.snapshot_seq != p->base)
			cfail(&r, "X.4 snapshot seq %" PRIu64 ", expected %" PRIu64,
			      r.st.snapshot_seq, p->base);
	}
	r.verify_rc = pkv_verify(db);
	if (r.verify_rc != 0 && r.verify_rc != PKV_ECORRUPT)
		cfail(&r, "X.3 pkv_verify = %d (%s)", r.verify_rc, pkv_strerror(r.verify_rc));
	else if (r.verify_rc != e->verify)
		cfail(&r, "X.3 pkv_verify = %d, expected %d (%u snapshot bytes changed)",
		      r.verify_rc, e->verify, e->snap_bytes_changed);
	check_keys(db, k, e, r.verify_rc == PKV_ECORRUPT, &r, "after open");
	check_stats(db, live_keys_at(k), r.verify_rc == 0, &r, "after open", &st);
	rc = pkv_get(db, AFTER_KEY, strlen(AFTER_KEY), buf, sizeof(buf), &vlen);
	/* A damaged index cannot prove absence either (N.4): PKV_ECORRUPT then. */
	if (rc != PKV_NOTFOUND &&
	    !(rc == PKV_ECORRUPT && r.verify_rc == PKV_ECORRUPT && e->index_changed))
		cfail(&r, "X.2 %s is there before it was written (get = %d)", AFTER_KEY, rc);

	/* X.5: a write, a close, a reopen. */
	rc = pkv_put(db, AFTER_KEY, strlen(AFTER_KEY), "after", 5);
	if (rc != 0) {
		cfail(&r, "X.5 pkv_put after recovery = %d (%s)", rc, pkv_strerror(rc));
		pkv_close(db);
		goto out;
	}
	rc = pkv_close(db);
	db = NULL;
	if (rc != 0) {
		cfail(&r, "X.5 pkv_close = %d (%s)", rc, pkv_strerror(rc));
		goto out;
	}
	rc = pkv_open(work, &o, &db);
	if (rc != 0) {
		cfail(&r, "X.5 reopen after a write = %d (%s)", rc, pkv_strerror(rc));
		goto out;
	}
	check_stats(db, live_keys_at(k) + 1, r.verify_rc == 0, &r, "after a write and a reopen",
		    &st);
	if (st.last_seq != k + 1 || st.discarded_bytes != 0 || st.recovery_gap_seq != 0)
		cfail(&r,
		      "X.5 after a write and a reopen: last seq %" PRIu64 " (expected %" PRIu64
		      "), %" PRIu64 " bytes discarded, gap %" PRIu64,
		      st.last_seq, k + 1, st.discarded_bytes, st.recovery_gap_seq);
	rc = pkv_verify(db);
	if (rc != r.verify_rc)
		cfail(&r, "X.5 pkv_verify after a reopen = %d, first %d", rc, r.verify_rc);
	check_keys(db, k, e, r.verify_rc == PKV_ECORRUPT, &r, "after a write and a reopen");
	rc = pkv_get(db, AFTER_KEY, strlen(AFTER_KEY), buf, sizeof(buf), &vlen);
	if (rc != 0 || vlen != 5 || memcmp(buf, "after", 5) != 0)
		cfail(&r, "X.5 %s after a reopen: get = %d", AFTER_KEY, rc);
	rc = pkv_close(db);
	if (rc != 0)
		cfail(&r, "X.5 pkv_close after a reopen = %d", rc);
out : {
	size_t n = strlen(logbuf);
	const char *tail = n >= sizeof(r.log) ? logbuf + n - (sizeof(r.log) - 1) : logbuf;

	memcpy(r.log, tail, strlen(tail) + 1);
}
	r.done = true;
	su_send(fd, &r, sizeof(r));
	exit(0); /* exit(), not _exit(): LeakSanitizer looks at this process too */
}

/* ---- the parent ------------------------------------------------------------------------------ */

struct tally {
	uint64_t cases, failed;
	uint64_t open_corrupt, full, prefix, lost_sum, lost_max;
	uint64_t get_corrupt, get_notfound, verify_corrupt, masked;
};

static struct tally tallies[NKINDS];
static int fail_printed;
static uint64_t ttcovered;
static uint8_t *tseen;

/* Run the checker on the damaged copy; false (and the reason in @r->msg) if it failed. */
static bool run_check(const struct expect *e, struct result *r)
{
	char why[128];
	int rfd, wfd, status;
	pid_t pid;

	pid = su_fork_pipe(&rfd, &wfd);
	if (pid == 0)
		check_main(wfd, e);
	memset(r, 0, sizeof(*r));
	if (su_collect(pid, rfd, r, sizeof(*r), why, sizeof(why), &status))
		return r->failures == 0;
	if (strstr(why, "without a result") != NULL)
		memset(r, 0, sizeof(*r));
	r->failures++;
	if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
		snprintf(r->msg, sizeof(r->msg), "HANG: no result after %u s", cfg.timeout);
	else if (WIFSIGNALED(status))
		snprintf(r->msg, sizeof(r->msg), "CRASH: the checker %s", why);
	else
		snprintf(r->msg, sizeof(r->msg), "the checker %s%s (a sanitizer report?)", why,
			 strstr(why, "without a result") != NULL ? "" : " after its result");
	return false;
}

static void print_pred(const struct expect *e)
{
	const struct pred *p = &e->p;

	if (p->why[0] != '\0')
		printf("      rules: PKV_ECORRUPT (%s)\n", p->why);
	else
		printf("      rules: opens with %" PRIu64 " writes (base %" PRIu64 ", gap %" PRIu64
		       ", first lost %" PRIu64 ", synced proof %" PRIu64 ", replayed %" PRIu64
		       "); verify %s; %u snapshot bytes changed\n",
		       p->k, p->base, p->gap, p->first_lost, p->proof, p->replayed,
		       e->verify ? "PKV_ECORRUPT" : "0", e->snap_bytes_changed);
}

static bool run_case(uint64_t i)
{
	static struct expect e;
	struct su_rng rng;
	struct damage d;
	struct result r;
	struct tally *t;
	bool ok;

	su_rng_seed(&rng, su_hash3(cfg.seed, i, 0x63617365));
	su_rmtree(work);
	apply_damage(i, &rng, &d);
	expect_of(work, d.v, &e);
	ok = run_check(&e, &r);

	t = &tallies[d.kind];
	t->cases++;
	t->failed += !ok;
	if (!r.done) {
		/* a crash or a hang: no outcome to count */
	} else if (r.open_rc == PKV_ECORRUPT) {
		t->open_corrupt++;
	} else if (r.open_rc == 0 && r.k == HIST) {
		t->full++;
	} else if (r.open_rc == 0 && r.k < HIST) {
		t->prefix++;
		t->lost_sum += HIST - r.k;
		if (HIST - r.k > t->lost_max)
			t->lost_max = HIST - r.k;
	}
	t->get_corrupt += r.get_corrupt > 0;
	t->get_notfound += r.get_notfound > 0;
	t->verify_corrupt += r.open_rc == 0 && r.verify_rc == PKV_ECORRUPT;
	t->masked += r.masked > 0;
	if (d.kind == K_TRUNC_TAIL && !tseen[d.titem]) {
		tseen[d.titem] = 1;
		ttcovered++;
	}

	if (cfg.verbose || cfg.only >= 0 || (!ok && fail_printed < 20)) {
		printf("%s case %" PRIu64 " %-10s %s store:%s\n", ok ? "ok  " : "FAIL", i,
		       kind_name[d.kind], variant_name[d.v], d.desc);
		if (cfg.only >= 0 || !ok) {
			print_pred(&e);
			if (!r.done)
				printf("      no result from the checker\n");
			else if (r.open_rc == 0)
				printf("      opened: %" PRIu64 " writes, gap %" PRIu64
				       ", replayed %" PRIu64 ", discarded %" PRIu64
				       " records / %" PRIu64
				       " bytes; verify %d; gets: %u ECORRUPT, %u NOTFOUND tolerated, "
				       "%u masked\n",
				       r.k, r.st.recovery_gap_seq, r.st.recovered_records,
				       r.st.discarded_records, r.st.discarded_bytes, r.verify_rc,
				       r.get_corrupt, r.get_notfound, r.masked);
			else
				printf("      open: %d (%s)\n", r.open_rc, pkv_strerror(r.open_rc));
		}
		if (!ok) {
			fail_printed++;
			printf("      %s (%u failed checks)\n", r.msg, r.failures);
			if (r.log[0] != '\0')
				printf("      log:\n%s", r.log);
			printf("      reproduce: corrupt --seed %" PRIu64 " --only-case %" PRIu64
			       "%s --keep\n",
			       cfg.seed, i, cfg.strict ? "" : " --lenient");
		}
	}
	return ok;
}

static void print_figures(double secs, uint64_t passed, uint64_t failed)
{
	struct tally all = { 0 };

	printf("corrupt: %" PRIu64 " cases in %.1f s (seed %" PRIu64 ")\n", passed + failed, secs,
	       cfg.seed);
	printf("%-11s %6s %6s %9s %6s %7s %10s %9s %9s %9s %7s\n", "kind", "cases", "failed",
	       "open-ECOR", "full", "prefix", "lost avg/max", "get-ECOR", "get-NOTF", "verify-EC",
	       "masked");
	for (int k = 0; k <= NKINDS; k++) {
		const struct tally *t = k < NKINDS ? &tallies[k] : &all;

		if (k < NKINDS) {
			all.cases += t->cases;
			all.failed += t->failed;
			all.open_corrupt += t->open_corrupt;
			all.full += t->full;
			all.prefix += t->prefix;
			all.lost_sum += t->lost_sum;
			if (t->lost_max > all.lost_max)
				all.lost_max = t->lost_max;
			all.get_corrupt += t->get_corrupt;
			all.get_notfound += t->get_notfound;
			all.verify_corrupt += t->verify_corrupt;
			all.masked += t->masked;
		}
		printf("%-11s %6" PRIu64 " %6" PRIu64 " %9" PRIu64 " %6" PRIu64 " %7" PRIu64
		       " %6.1f/%-5" PRIu64 " %9" PRIu64 " %9" PRIu64 " %9" PRIu64 " %7" PRIu64 "\n",
		       k < NKINDS ? kind_name[k] : "total", t->cases, t->failed, t->open_corrupt,
		       t->full, t->prefix,
		       t->prefix ? (double)t->lost_sum / (double)t->prefix : 0.0, t->lost_max,
		       t->get_corrupt, t->get_notfound, t->verify_corrupt, t->masked);
	}
	printf("trunc-tail: %" PRIu64 " of %zu truncation offsets visited\n", ttcovered, ntitems);
}

static const struct su_opt options[] = {
	SU_OPT("cases", SU_OPT_U64, &cfg.cases, "damaged copies to check (default 300)"),
	SU_OPT("seconds", SU_OPT_DOUBLE, &cfg.seconds,
	       "start no case after S seconds (0: no bound)", .arg = "S"),
	SU_OPT("seed", SU_OPT_U64, &cfg.seed, "history and cases (default 1)", .arg = "X"),
	SU_OPT("only-case", SU_OPT_U64, &cfg.only_case,
	       "run case I alone and explain it (with --keep: keep its files)", .arg = "I",
	       .max = INT64_MAX, .given = &cfg.only_given),
	SU_OPT("timeout", SU_OPT_UINT, &cfg.timeout,
	       "a checker taking longer is a hang (default 20)", .arg = "S", .min = 1, .max = 3600),
	SU_OPT("dir", SU_OPT_STR, &cfg.parent, "work under a new temporary directory in PARENT",
	       .arg = "PARENT"),
	SU_OPT("keep", SU_OPT_FLAG, &cfg.keep,
	       "keep the pristine stores and the last damaged copy"),
	SU_OPT("lenient", SU_OPT_CLEAR, &cfg.strict,
	       "a get hiding a newer WAL version behind a damaged snapshot\n"
	       "record is counted as masked instead of failing the case"),
	SU_OPT("verbose", SU_OPT_FLAG, &cfg.verbose, "print a line for every case"),
	SU_OPT_END
};

int main(int argc, char **argv)
{
	uint64_t passed = 0, failed = 0, first, last;
	cpu_set_t set;
	double t0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	su_opts_parse(argc, argv, "corrupt", options, NULL);
	if (cfg.only_given)
		cfg.only = (int64_t)cfg.only_case;
	crc_init();
	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		for (int c = 0; c < CPU_SETSIZE && ncpus < LANES; c++)
			if (CPU_ISSET(c, &set))
				cpus[ncpus++] = c;
	if (ncpus == 0)
		cpus[ncpus++] = 0;
	gen_history();

	if (su_workdir(root, sizeof(root), cfg.parent, "corrupt") != 0)
		die("mkdtemp under %s: %s", cfg.parent != NULL ? cfg.parent : "$TMPDIR",
		    strerror(errno));
	for (int v = 0; v < NVARIANTS; v++)
		pathf(pristine[v], sizeof(pristine[v]), "%s/%s", root, variant_name[v]);
	pathf(work, sizeof(work), "%s/work", root);

	t0 = su_now();
	for (int v = 0; v < NVARIANTS; v++) {
		struct expect e;

		build((enum variant)v);
		snap_load((enum variant)v);
		wal_load(pristine[v], &wals[v]);
		expect_of(pristine[v], (enum variant)v, &e);
		if (wals[v].why[0] != '\0' || e.p.why[0] != '\0' || e.p.k != HIST || e.p.discards)
			die("the pristine %s store does not read back as %d writes: %s%s (k %" PRIu64
			    ")",
			    variant_name[v], HIST, wals[v].why, e.p.why, e.p.k);
	}
	sweep_init();
	tseen = calloc(ntitems, 1);
	if (tseen == NULL)
		die("out of memory");
	{
		unsigned lanes = 0;
		size_t segs = 0;

		for (size_t li = 0; li < wals[V_KILLED].nlanes; li++)
			lanes += wals[V_KILLED].lanes[li].nrecs > 0;
		for (size_t si = 0; si < wals[V_KILLED].nsegs; si++)
			segs += wals[V_KILLED].segs[si].nrecs > 0;
		printf("corrupt: %d writes (snapshot at %d, pkv_sync after %d, a power write at %d) "
		       "on %u CPU(s): %u lanes used, %zu segments with records, %zu files in wal/ "
		       "(killed) / %zu (closed); snapshot %zu bytes, %zu records; %zu truncation "
		       "offsets; built in %.1f s under %s\n",
		       HIST, HIST_A, SYNC_AT, POWER_AT, ncpus, lanes, segs, wals[V_KILLED].nsegs,
		       wals[V_CLOSED].nsegs, snaps[V_KILLED].size, snaps[V_KILLED].nrecs, ntitems,
		       su_now() - t0, root);
	}

	/* Controls: undamaged copies open to the whole history. */
	for (int v = 0; v < NVARIANTS && cfg.only < 0; v++) {
		static struct expect e;
		struct result r;

		su_rmtree(work);
		copy_store(pristine[v], work);
		expect_of(work, (enum variant)v, &e);
		if (!run_check(&e, &r) || r.open_rc != 0 || r.k != HIST || r.verify_rc != 0) {
			printf("FAIL control: the undamaged %s store: open %d, %" PRIu64
			       " writes: %s\n%s",
			       variant_name[v], r.open_rc, r.k, r.msg, r.log);
			failed++;
		}
	}

	t0 = su_now();
	first = cfg.only >= 0 ? (uint64_t)cfg.only : 0;
	last = cfg.only >= 0 ? first + 1 : cfg.cases;
	for (uint64_t i = first; i < last; i++) {
		if (cfg.seconds > 0 && su_now() - t0 >= cfg.seconds)
			break;
		if (run_case(i))
			passed++;
		else
			failed++;
		if ((i + 1) % 1000 == 0 && cfg.only < 0)
			printf("corrupt: %" PRIu64 " cases, %" PRIu64 " failed, %.0f s\n", i + 1,
			       failed, su_now() - t0);
	}
	print_figures(su_now() - t0, passed, failed);
	if (cfg.keep) {
		printf("kept: %s (pristine stores and the last damaged copy in work/)\n", root);
	} else {
		su_rmtree(root);
	}
	if (passed == 0 && failed == 0)
		failed = 1;
	printf("%" PRIu64 " passed, %" PRIu64 " failed\n", passed, failed);
	return failed == 0 ? 0 : 1;
}
