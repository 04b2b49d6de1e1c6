/* SPDX-License-Identifier: MIT */
/* hash.h - MurmurHash64A (Austin Appleby's public-domain algorithm), the hash ck_ht uses by
 * default, so that the hash-table baselines pay the same hashing cost. */
#ifndef PKVBENCH_HASH_H
#define PKVBENCH_HASH_H

#include <stdint.h>
#include <string.h>

static inline uint64_t murmur64a(const void *key, size_t len, uint64_t seed)
{
	const uint64_t m = 0xc6a4a7935bd1e995ull;
	const int r = 47;
	uint64_t h = seed ^ (len * m);
	const uint8_t *p = key, *end = p + (len & ~(size_t)7);
	for (; p != end; p += 8) {
		uint64_t k;
		memcpy(&k, p, 8);
		k *= m;
		k ^= k >> r;
		k *= m;
		h ^= k;
		h *= m;
	}
	switch (len & 7) {
	case 7: h ^= (uint64_t)p[6] << 48; /* fall through */
	case 6: h ^= (uint64_t)p[5] << 40; /* fall through */
	case 5: h ^= (uint64_t)p[4] << 32; /* fall through */
	case 4: h ^= (uint64_t)p[3] << 24; /* fall through */
	case 3: h ^= (uint64_t)p[2] << 16; /* fall through */
	case 2: h ^= (uint64_t)p[1] << 8;  /* fall through */
	case 1: h ^= (uint64_t)p[0]; h *= m;
	}
	h ^= h >> r;
	h *= m;
	h ^= h >> r;
	return h;
}

#endif
