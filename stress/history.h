/* SPDX-License-Identifier: MIT */
/*
 * history.h - the per-writer history that the crash-loop, power-loss and power-cut drivers
 * (crashloop.c, powerloss.c, shutdown.c) write and check (header-only, file-static).
 *
 * Writer w's step p does, for n = p / 3: p % 3 == 0 put seq key n; 1 delete seq key n - DEL_LAG
 * (if n >= DEL_LAG); 2 put the head key with value n. So after its first P steps the writer's
 * state is E(P) (expected() below), and a recovered state names the P it is a prefix at.
 * Values describe themselves: a header (magic, writer, kind, n, body length, checksum), then a
 * body derived from (w, n, kind), so a checker can regenerate any value from its identity.
 *
 * hist_state_is() checks a store against E(P); hist_expected_keys() counts E's keys.
 *
 * The includer defines VMAGIC (its own value magic) and NWRITERS before including this file.
 */
#ifndef PKV_STRESS_HISTORY_H
#define PKV_STRESS_HISTORY_H

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "stress_util.h"

#ifndef VMAGIC
#error "define VMAGIC before including history.h"
#endif
#ifndef NWRITERS
#error "define NWRITERS before including history.h"
#endif

#define DEL_LAG 16 /* D: the seq key of operation n is deleted at operation n + D */
#define MAX_BODY 16384u

enum kind {
	KIND_SEQ = 1,
	KIND_HEAD = 2
};

struct vhdr {
	uint32_t magic;
	uint32_t writer;
	uint32_t kind;
	uint32_t body_len;
	uint64_t n;
	uint64_t sum;
};
_Static_assert(sizeof(struct vhdr) == 32, "value header is 32 bytes");
#define HDR ((size_t)sizeof(struct vhdr))
#define MAX_VAL (HDR + MAX_BODY)

static SU_UNUSED size_t seq_key(unsigned w, uint64_t n, char *buf)
{
	return (size_t)snprintf(buf, 64, "w%u/seq/%010" PRIu64, w, n);
}

static SU_UNUSED size_t head_key(unsigned w, char *buf)
{
	return (size_t)snprintf(buf, 64, "w%u/head", w);
}

static SU_UNUSED uint32_t body_len_of(unsigned w, uint64_t n, unsigned kind)
{
	uint64_t h = su_hash3(w, n, kind);

	if ((h & 63) == 0)
		return (uint32_t)((h >> 8) % (MAX_BODY + 1));
	return (uint32_t)((h >> 8) % 600);
}

static SU_UNUSED size_t make_value(unsigned w, uint64_t n, unsigned kind,
				   unsigned char *buf /* OUT */)
{
	struct vhdr h = {
		.magic = VMAGIC,
		.writer = w,
		.kind = kind,
		.body_len = body_len_of(w, n, kind),
		.n = n,
	};

	su_fill(buf + HDR, h.body_len, su_hash3(w + 100, n, kind));
	h.sum = su_fnv(su_fnv(SU_FNV_INIT, &h, 24), buf + HDR, h.body_len);
	memcpy(buf, &h, HDR);
	return HDR + h.body_len;
}

/* E(P) for one writer: seq keys [*lo, *hi) present, head = *heads - 1 (absent if 0). */
static SU_UNUSED void expected(uint64_t p, uint64_t *lo, uint64_t *hi, uint64_t *heads)
{
	uint64_t puts = (p + 2) / 3; /* ops n with 3n < p */
	uint64_t cut = (p + 1) / 3; /* ops n with 3n + 1 < p */

	*lo = cut > DEL_LAG ? cut - DEL_LAG : 0;
	*hi = puts;
	*heads = p / 3; /* ops n with 3n + 2 < p */
}

/* The number of keys E(pos[w]) holds, over all writers. */
static SU_UNUSED uint64_t hist_expected_keys(const uint64_t *pos)
{
	uint64_t total = 0;

	for (unsigned w = 0; w < NWRITERS; w++) {
		uint64_t lo, hi, heads;

		expected(pos[w], &lo, &hi, &heads);
		total += (hi - lo) + (heads > 0);
	}
	return total;
}

/* Where hist_state_is() reports a difference: one line, without a newline. */
typedef void hist_report_fn(void *ctx, const char *msg);

static void hist_say(hist_report_fn *report, void *ctx, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static SU_UNUSED void hist_say(hist_report_fn *report, void *ctx, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	report(ctx, msg);
}

/*
 * Is writer @w's state in @db E(@p)? R1/R3: the live seq keys and the head key hold their
 * values; R2: the seq keys just around the live window are absent, and so are @old_sample
 * older ones drawn with @rng (none if @old_sample is 0). @buf holds 2 * MAX_VAL bytes. With
 * @report NULL it only answers, at the first difference; otherwise it reports every one.
 */
static SU_UNUSED bool hist_state_is(pkv *db, unsigned w, uint64_t p, struct su_rng *rng,
				    unsigned old_sample, unsigned char *buf, hist_report_fn *report,
				    void *ctx)
{
	uint64_t lo, hi, heads, first;
	unsigned char *want = buf + MAX_VAL;
	char key[64];
	size_t klen, vlen, wlen;
	bool ok = true;
	int rc;

	expected(p, &lo, &hi, &heads);
	first = lo > 2 ? lo - 2 : 0;
	for (uint64_t n = first; n < hi + 3; n++) {
		bool live = n >= lo && n < hi;

		klen = seq_key(w, n, key);
		vlen = 0;
		rc = pkv_get(db, key, klen, buf, MAX_VAL, &vlen);
		if (live) {
			wlen = make_value(w, n, KIND_SEQ, want);
			if (rc != 0 || vlen != wlen || memcmp(buf, want, wlen) != 0) {
				ok = false;
				if (report)
					hist_say(report, ctx,
						 "R%d writer %u at step %" PRIu64
						 ": %s: get = %d (%s), "
						 "%zu bytes, expected its value (%zu bytes)",
						 rc == PKV_NOTFOUND ? 1 : 3, w, p, key, rc,
						 pkv_strerror(rc), vlen, wlen);
			}
		} else if (rc != PKV_NOTFOUND) {
			ok = false;
			if (report)
				hist_say(report, ctx,
					 "R2 writer %u at step %" PRIu64
					 ": %s should be absent (%s), get = %d (%s)",
					 w, p, key, n < lo ? "deleted" : "never written", rc,
					 pkv_strerror(rc));
		}
		if (!ok && !report)
			return false;
	}
	/* Deleted seq keys further back stay deleted (a random sample). */
	for (unsigned i = 0; first > 0 && i < old_sample; i++) {
		uint64_t n = first <= old_sample ? i : su_rng_below(rng, first);

		if (n >= first)
			break;
		klen = seq_key(w, n, key);
		rc = pkv_get(db, key, klen, NULL, 0, &vlen);
		if (rc != PKV_NOTFOUND) {
			ok = false;
			if (!report)
				return false;
			hist_say(report, ctx,
				 "R2 writer %u at step %" PRIu64 ": deleted %s is back (get = %d)",
				 w, p, key, rc);
		}
	}
	klen = head_key(w, key);
	rc = pkv_get(db, key, klen, buf, MAX_VAL, &vlen);
	if (heads == 0) {
		if (rc != PKV_NOTFOUND) {
			ok = false;
			if (report)
				hist_say(report, ctx,
					 "R2 writer %u at step %" PRIu64
					 ": %s should be absent, get = %d",
					 w, p, key, rc);
		}
	} else {
		wlen = make_value(w, heads - 1, KIND_HEAD, want);
		if (rc != 0 || vlen != wlen || memcmp(buf, want, wlen) != 0) {
			struct vhdr h = { 0 };

			if (rc == 0 && vlen >= HDR)
				memcpy(&h, buf, HDR);
			ok = false;
			if (report)
				hist_say(report, ctx,
					 "R1 writer %u at step %" PRIu64
					 ": %s: get = %d, holds n = %" PRIu64
					 " (magic %08x), expected n = %" PRIu64,
					 w, p, key, rc, h.n, h.magic, heads - 1);
		}
	}
	return ok;
}

#endif /* PKV_STRESS_HISTORY_H */
