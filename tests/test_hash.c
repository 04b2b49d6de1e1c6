/* SPDX-License-Identifier: MIT */
/*
 * test_hash.c - src/hash.h's MurmurHash64A is the hash ck_ht computes: the snapshot index
 * stores it, so the format must not change when the map stopped asking ck_ht for it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <ck_ht.h>

#include "hash.h"

static void *ht_malloc(size_t n)
{
	return malloc(n);
}

static void ht_free(void *p, size_t n, bool defer)
{
	(void)n;
	(void)defer;
	free(p);
}

static struct ck_malloc ht_alloc = { .malloc = ht_malloc, .free = ht_free };

/* xorshift64*: reproducible keys */
static uint64_t rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dull;
}

static uint64_t ck_hash(ck_ht_t *ht, const void *key, size_t len)
{
	ck_ht_hash_t h;

	ck_ht_hash(&h, ht, key, (uint16_t)len);
	return h.value;
}

/* Every length from 0 to 1100 (past PKV_MAX_KEY), at every alignment of 0..7, random bytes. */
Test(hash, equals_ck_ht_hash_for_random_keys)
{
	ck_ht_t ht;
	unsigned char buf[1200 + 8];
	uint64_t s = 0x1234567887654321ull;
	unsigned long n = 0;

	cr_assert(ck_ht_init(&ht, CK_HT_MODE_BYTESTRING, NULL, &ht_alloc, 64, PKV_HASH_SEED));
	for (size_t len = 0; len <= 1100; len++) {
		for (size_t align = 0; align < 8; align++) {
			for (int rep = 0; rep < 4; rep++) {
				unsigned char *k = buf + align;

				for (size_t i = 0; i < len; i++)
					k[i] = (unsigned char)rnd(&s);
				cr_assert_eq(pkv__hash(k, len), ck_hash(&ht, k, len),
					     "length %zu, alignment %zu", len, align);
				n++;
			}
		}
	}
	cr_assert_eq(n, 1101ul * 8 * 4);
	ck_ht_destroy(&ht);
}

/* Other seeds too: the function is MurmurHash64A itself, not a coincidence of one seed. */
Test(hash, equals_ck_ht_hash_with_other_seeds)
{
	uint64_t s = 42;

	for (int t = 0; t < 64; t++) {
		uint64_t seed = rnd(&s);
		ck_ht_t ht;
		unsigned char k[64];

		cr_assert(ck_ht_init(&ht, CK_HT_MODE_BYTESTRING, NULL, &ht_alloc, 64, seed));
		for (int rep = 0; rep < 200; rep++) {
			size_t len = rnd(&s) % sizeof(k);

			for (size_t i = 0; i < len; i++)
				k[i] = (unsigned char)rnd(&s);
			cr_assert_eq(pkv__hash_murmur64a(k, len, seed), ck_hash(&ht, k, len),
				     "seed %llu, length %zu", (unsigned long long)seed, len);
		}
		ck_ht_destroy(&ht);
	}
}

/*
 * Pinned values (computed once by a separate MurmurHash64A), so that a change of both
 * functions at once would still be seen; and the seed matters.
 */
Test(hash, pinned_values)
{
	cr_assert_eq(pkv__hash("pkv", 3), 0x08de19e3a31406d9ull);
	cr_assert_eq(pkv__hash("0123456789abcdef", 16), 0xf1ba97b4b37adcfaull);
	cr_assert_eq(pkv__hash_murmur64a("", 0, 0), 0);
	cr_assert_neq(pkv__hash("key", 3), pkv__hash_murmur64a("key", 3, 0));
}
