/* SPDX-License-Identifier: MIT */
/* hash.h - MurmurHash64A, the hash ck_ht uses by default, so that the hash-table baselines pay
 * the same hashing cost: pkv's own copy of it (src/hash.h, the file format's key hash). */
#ifndef PKVBENCH_HASH_H
#define PKVBENCH_HASH_H

#include <stddef.h>
#include <stdint.h>

#include "../src/hash.h"

static inline uint64_t murmur64a(const void *key, size_t len, uint64_t seed)
{
	return pkv__hash_murmur64a(key, len, seed);
}

#endif /* PKVBENCH_HASH_H */
