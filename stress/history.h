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
 * The includer defines VMAGIC (its own value magic) before including this file.
 */
#ifndef PKV_STRESS_HISTORY_H
#define PKV_STRESS_HISTORY_H

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "stress_util.h"

#ifndef VMAGIC
#error "define VMAGIC before including history.h"
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

#endif /* PKV_STRESS_HISTORY_H */
