/* SPDX-License-Identifier: MIT */
/*
 * hash.h - the key hash of the file format: MurmurHash64A (Austin Appleby's public-domain
 * algorithm) with seed PKV_HASH_SEED.
 *
 * The snapshot index stores it (its slots' tags and probe order come from it, snapshot.c) and
 * the live map shards and probes by it (map.c), so it is part of the format: it is written out
 * here, independently of ck_ht, so that swapping the map's table can never change what a
 * snapshot file means. It equals ck_ht_hash() of a CK_HT_MODE_BYTESTRING table made with the
 * same seed, byte for byte (tests/test_hash.c checks many random keys, lengths and alignments),
 * so the snapshots written before this file existed read the same.
 */
#ifndef PKV_HASH_H
#define PKV_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Seed of the key hash: the live map and every snapshot use it (a snapshot's header records it). */
#define PKV_HASH_SEED 0x9e3779b97f4a7c15ull

/* MurmurHash64A of @len bytes at @key (any alignment), seeded with @seed. */
static inline uint64_t pkv__hash_murmur64a(const void *key, size_t len, uint64_t seed)
{
	const uint64_t m = 0xc6a4a7935bd1e995ull;
	const int r = 47;
	const unsigned char *p = key;
	const unsigned char *end = p + (len & ~(size_t)7);
	uint64_t h = seed ^ (len * m);

	for (; p != end; p += 8) {
		uint64_t k;

		memcpy(&k, p, 8); /* ck_ht reads a native-endian word: so does the format */
		k *= m;
		k ^= k >> r;
		k *= m;
		h ^= k;
		h *= m;
	}
	switch (len & 7) {
	case 7:
		h ^= (uint64_t)p[6] << 48;
		__attribute__((fallthrough));
	case 6:
		h ^= (uint64_t)p[5] << 40;
		__attribute__((fallthrough));
	case 5:
		h ^= (uint64_t)p[4] << 32;
		__attribute__((fallthrough));
	case 4:
		h ^= (uint64_t)p[3] << 24;
		__attribute__((fallthrough));
	case 3:
		h ^= (uint64_t)p[2] << 16;
		__attribute__((fallthrough));
	case 2:
		h ^= (uint64_t)p[1] << 8;
		__attribute__((fallthrough));
	case 1:
		h ^= (uint64_t)p[0];
		h *= m;
	}
	h ^= h >> r;
	h *= m;
	h ^= h >> r;
	return h;
}

/* The key hash of the format: what the map and the snapshot index use for @key. */
static inline uint64_t pkv__hash(const void *key, size_t klen)
{
	return pkv__hash_murmur64a(key, klen, PKV_HASH_SEED);
}

#endif /* PKV_HASH_H */
