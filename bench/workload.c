/* SPDX-License-Identifier: MIT */
/*
 * workload.c - keys, values and op streams, all generated before any timing starts.
 *
 * Keys: key i is mix64(seed + i) in its first 8 bytes (a bijection, so keys are unique) and
 * further mix64 words after that; keys look random, so neither a hash table nor a B-tree or LSM
 * tree gets sequential locality for free. Values are slices of a pool of random bytes chosen by
 * (key, version), so they do not compress and a reader can check what it got.
 *
 * Zipfian: YCSB's generator (Gray et al., "Quickly generating billion-record synthetic
 * databases"), theta 0.99 by default, item 0 the hottest. Because keys are hashed from their
 * index, the hot items are scattered over the key space as with YCSB's scrambled Zipfian.
 */
#include "bench.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

int keyset_make(struct keyset *ks, uint64_t n, unsigned klen, uint64_t seed)
{
	if (klen < 8 || n == 0 || n > OP_IDX_MASK)
		return -EINVAL;
	ks->n = n;
	ks->klen = klen;
	ks->keys = malloc(n * klen);
	if (!ks->keys)
		return -ENOMEM;
	for (uint64_t i = 0; i < n; i++) {
		uint8_t *k = ks->keys + i * klen;
		for (unsigned off = 0; off < klen; off += 8) {
			uint64_t w = mix64(seed + i + (uint64_t)off * 0x100000000ull);
			memcpy(k + off, &w, klen - off < 8 ? klen - off : 8);
		}
	}
	return 0;
}

void keyset_free(struct keyset *ks)
{
	free(ks->keys);
	ks->keys = NULL;
}

int valpool_make(struct valpool *vp, unsigned vlen, uint64_t seed)
{
	vp->vlen = vlen;
	vp->bytes = malloc((size_t)VPOOL_BYTES + vlen + 8);
	if (!vp->bytes)
		return -ENOMEM;
	uint64_t s = seed ^ 0x5bd1e995u;
	for (size_t i = 0; i < (size_t)VPOOL_BYTES + vlen + 8; i += 8) {
		uint64_t w = mix64(s++);
		memcpy(vp->bytes + i, &w, 8);
	}
	return 0;
}

void valpool_free(struct valpool *vp)
{
	free(vp->bytes);
	vp->bytes = NULL;
}

const uint8_t *value_of(const struct valpool *vp, uint64_t i, uint64_t ver)
{
	return vp->bytes + mix64(i * 31u + ver * 0x10001u) % VPOOL_BYTES;
}

/* ---- Zipfian ---------------------------------------------------------------------------- */

struct zipf {
	uint64_t n;
	double theta, alpha, zetan, eta, half_pow_theta;
};

struct zipf *zipf_new(uint64_t n, double theta)
{
	struct zipf *z = calloc(1, sizeof(*z));
	if (!z)
		return NULL;
	z->n = n;
	z->theta = theta;
	double zetan = 0, zeta2 = 1.0 + pow(0.5, theta);
	for (uint64_t i = 1; i <= n; i++)
		zetan += 1.0 / pow((double)i, theta);
	z->zetan = zetan;
	z->alpha = 1.0 / (1.0 - theta);
	z->eta = (1.0 - pow(2.0 / (double)n, 1.0 - theta)) / (1.0 - zeta2 / zetan);
	z->half_pow_theta = pow(0.5, theta);
	return z;
}

void zipf_free(struct zipf *z)
{
	free(z);
}

static uint64_t zipf_next(const struct zipf *z, double u)
{
	double uz = u * z->zetan;
	if (uz < 1.0)
		return 0;
	if (uz < 1.0 + z->half_pow_theta)
		return 1;
	uint64_t v = (uint64_t)((double)z->n * pow(z->eta * u - z->eta + 1.0, z->alpha));
	return v >= z->n ? z->n - 1 : v;
}

/* ---- op streams ------------------------------------------------------------------------- */

static uint64_t rng_next(uint64_t *s)
{
	*s += 0x9e3779b97f4a7c15ull;
	uint64_t x = *s;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static uint64_t pick(uint64_t *s, uint64_t nkeys, enum dist d, const struct zipf *z)
{
	uint64_t r = rng_next(s);
	if (d == DIST_ZIPF && z)
		return zipf_next(z, (double)(r >> 11) * (1.0 / 9007199254740992.0));
	/* Lemire's multiply-shift: unbiased enough for n << 2^64. */
	return (uint64_t)(((unsigned __int128)r * nkeys) >> 64);
}

int opstream_make(uint32_t *ops, size_t len, uint64_t nkeys, const struct mix *m,
		  enum dist d, const struct zipf *z, uint64_t seed)
{
	if (m->get + m->put + m->del != 100 || nkeys > OP_IDX_MASK)
		return -EINVAL;
	uint64_t s = seed;
	size_t i = 0;
	while (i < len) {
		uint64_t idx = pick(&s, nkeys, d, z);
		unsigned r = (unsigned)(rng_next(&s) % 100u);
		if (r < m->get) {
			ops[i++] = ((uint32_t)OP_GET << OP_SHIFT) | (uint32_t)idx;
		} else if (r < m->get + m->put) {
			ops[i++] = ((uint32_t)OP_PUT << OP_SHIFT) | (uint32_t)idx;
		} else {
			/* Delete, then put the key back: the key set stays about the same size over
			 * the run, so a delete-heavy run does not turn into a miss-heavy one. */
			ops[i++] = ((uint32_t)OP_DEL << OP_SHIFT) | (uint32_t)idx;
			if (i < len)
				ops[i++] = ((uint32_t)OP_PUT << OP_SHIFT) | (uint32_t)idx;
		}
	}
	return 0;
}
