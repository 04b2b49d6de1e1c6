/* SPDX-License-Identifier: MIT */
/*
 * hist.c - log-linear latency histogram (the HdrHistogram layout, fixed precision).
 *
 * Bucket index: values v < 2^HIST_SUB go to bucket v. Otherwise, with p = floor(log2 v), v falls
 * into power band p - HIST_SUB + 1 and sub-bucket (v >> (p - HIST_SUB)) - 2^HIST_SUB: each band
 * splits [2^p, 2^(p+1)) into 2^HIST_SUB equal parts. A percentile is reported as the upper
 * edge of its bucket (never flattering), the maximum exactly.
 */
#include "bench.h"

#include <string.h>

void hist_init(struct hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

static unsigned bucket_of(uint64_t v)
{
	if (v < (1u << HIST_SUB))
		return (unsigned)v;
	unsigned p = 63u - (unsigned)__builtin_clzll(v);
	if (p >= HIST_POW)
		return HIST_BUCKETS - 1u;
	unsigned band = p - HIST_SUB + 1u;
	unsigned sub = (unsigned)(v >> (p - HIST_SUB)) - (1u << HIST_SUB);
	return (band << HIST_SUB) + sub;
}

static uint64_t bucket_hi(unsigned b)
{
	if (b < (1u << HIST_SUB))
		return b;
	unsigned band = b >> HIST_SUB, sub = b & ((1u << HIST_SUB) - 1u);
	unsigned p = band + HIST_SUB - 1u;
	uint64_t lo = ((uint64_t)((1u << HIST_SUB) + sub)) << (p - HIST_SUB);
	return lo + (1ull << (p - HIST_SUB)) - 1u;
}

void hist_add(struct hist *h, uint64_t v)
{
	h->b[bucket_of(v)]++;
	h->count++;
	h->sum += v;
	if (v > h->max)
		h->max = v;
	if (v < h->min)
		h->min = v;
}

void hist_merge(struct hist *dst, const struct hist *src)
{
	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		dst->b[i] += src->b[i];
	dst->count += src->count;
	dst->sum += src->sum;
	if (src->max > dst->max)
		dst->max = src->max;
	if (src->min < dst->min)
		dst->min = src->min;
}

uint64_t hist_pct(const struct hist *h, double pct)
{
	if (h->count == 0)
		return 0;
	if (pct >= 100.0)
		return h->max;
	/* The smallest value v such that at least pct % of the samples are <= v. */
	uint64_t rank = (uint64_t)((pct / 100.0) * (double)h->count + 0.999999);
	if (rank == 0)
		rank = 1;
	uint64_t seen = 0;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen >= rank) {
			uint64_t hi = bucket_hi(i);
			return hi > h->max ? h->max : hi;
		}
	}
	return h->max;
}
