/* SPDX-License-Identifier: MIT */
/*
 * test_batch.c - the batch builder (src/batch.c): ops kept in order with copies of their bytes,
 * every bad argument a clear code, the limits of pkv.h enforced at the call that crosses them,
 * and a refused call leaving the batch exactly as it was.
 *
 * Links the static library to look inside the batch (src/batch.h); what pkv_write does with a
 * batch is test_write's.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "testutil.h"

#define T_TIMEOUT 120

TestSuite(batch, .timeout = T_TIMEOUT);

struct shape {
	uint32_t nops, nconds;
	size_t used, bytes;
};

static struct shape shape_of(const pkv_batch *b)
{
	return (struct shape){b->nops, b->nconds, b->used, b->bytes};
}

static void assert_same(const pkv_batch *b, struct shape s, const char *what)
{
	cr_assert(b->nops == s.nops && b->nconds == s.nconds && b->used == s.used &&
			  b->bytes == s.bytes,
		  "%s changed the batch", what);
}

static void assert_op(const pkv_batch *b, const struct batch_op *op, uint8_t type,
		      const void *key, size_t klen, const void *val, size_t vlen, uint64_t arg)
{
	cr_assert_eq(op->type, type);
	cr_assert_eq(op->klen, klen);
	cr_assert_eq(op->vlen, vlen);
	cr_assert_eq(op->arg, arg);
	cr_assert(memcmp(pkv__batch_key(b, op), key, klen) == 0, "key bytes");
	if (vlen)
		cr_assert(memcmp(pkv__batch_val(b, op), val, vlen) == 0, "value bytes");
}

Test(batch, new_free_clear_null)
{
	pkv_batch *b = NULL;

	cr_assert_eq(pkv_batch_new(NULL), PKV_EINVAL);
	pkv_batch_free(NULL);
	pkv_batch_clear(NULL);
	cr_assert_eq(pkv_batch_new(&b), 0);
	cr_assert_not_null(b);
	cr_assert_eq(b->nops + b->nconds, 0);
	pkv_batch_free(b);
}

Test(batch, ops_in_order_with_copies)
{
	pkv_batch *b;
	char k[8] = "key1", v[8] = "val1";

	cr_assert_eq(pkv_batch_new(&b), 0);
	cr_assert_eq(pkv_batch_put(b, k, 4, v, 4), 0);
	/* The caller's buffers are copied: changing them afterwards changes nothing. */
	memcpy(k, "XXXX", 4);
	memcpy(v, "YYYY", 4);
	cr_assert_eq(pkv_batch_del(b, "gone", 4), 0);
	cr_assert_eq(pkv_batch_expect(b, "cond", 4, 42), 0);
	cr_assert_eq(pkv_batch_put_expire(b, "exp", 3, "e", 1, 1234567), 0);
	cr_assert_eq(pkv_batch_put_expire(b, "never", 5, "n", 1, 0), 0);
	cr_assert_eq(pkv_batch_put(b, "empty", 5, NULL, 0), 0);
	cr_assert_eq(pkv_batch_expect(b, "absent", 6, 0), 0);
	cr_assert_eq(pkv_batch_expect(b, "any", 3, PKV_ANY), 0);
	cr_assert_eq(pkv_batch_put(b, "key1", 4, "last", 4), 0);

	cr_assert_eq(b->nops, 6);
	cr_assert_eq(b->nconds, 3);
	assert_op(b, &b->ops[0], BATCH_PUT, "key1", 4, "val1", 4, 0);
	assert_op(b, &b->ops[1], BATCH_DEL, "gone", 4, NULL, 0, 0);
	assert_op(b, &b->ops[2], BATCH_PUT_EXPIRE, "exp", 3, "e", 1, 1234567);
	assert_op(b, &b->ops[3], BATCH_PUT, "never", 5, "n", 1, 0); /* expiry 0: never */
	assert_op(b, &b->ops[4], BATCH_PUT, "empty", 5, NULL, 0, 0);
	assert_op(b, &b->ops[5], BATCH_PUT, "key1", 4, "last", 4, 0);
	assert_op(b, &b->conds[0], 0, "cond", 4, NULL, 0, 42);
	assert_op(b, &b->conds[1], 0, "absent", 6, NULL, 0, 0);
	assert_op(b, &b->conds[2], 0, "any", 3, NULL, 0, PKV_ANY);
	cr_assert_eq(b->bytes, (4 + 4) + 4 + 4 + (3 + 1) + (5 + 1) + 5 + 6 + 3 + (4 + 4) +
				       9 * PKV_BATCH_OP_OVERHEAD);

	/* Clear keeps the memory and empties the batch; it is usable again. */
	void *arena = b->arena;
	pkv_batch_clear(b);
	cr_assert_eq(b->nops + b->nconds, 0);
	cr_assert_eq(b->used, 0);
	cr_assert_eq(b->bytes, 0);
	cr_assert_eq(pkv_batch_put(b, "a", 1, "b", 1), 0);
	cr_assert_eq(b->arena, arena, "clear keeps the arena");
	assert_op(b, &b->ops[0], BATCH_PUT, "a", 1, "b", 1, 0);
	pkv_batch_free(b);
}

Test(batch, bad_arguments)
{
	static char big_key[PKV_MAX_KEY + 1];
	pkv_batch *b;
	struct shape s;
	char *big_val = malloc(PKV_MAX_VALUE + 1);

	cr_assert_not_null(big_val);
	memset(big_key, 'k', sizeof(big_key));
	memset(big_val, 'v', PKV_MAX_VALUE + 1);
	cr_assert_eq(pkv_batch_new(&b), 0);
	cr_assert_eq(pkv_batch_put(b, "x", 1, "y", 1), 0);
	s = shape_of(b);

	/* NULL batch, for every adding call. */
	cr_assert_eq(pkv_batch_put(NULL, "k", 1, "v", 1), PKV_EINVAL);
	cr_assert_eq(pkv_batch_put_expire(NULL, "k", 1, "v", 1, 5), PKV_EINVAL);
	cr_assert_eq(pkv_batch_del(NULL, "k", 1), PKV_EINVAL);
	cr_assert_eq(pkv_batch_expect(NULL, "k", 1, 0), PKV_EINVAL);
	/* NULL or empty key. */
	cr_assert_eq(pkv_batch_put(b, NULL, 1, "v", 1), PKV_EINVAL);
	cr_assert_eq(pkv_batch_put(b, "k", 0, "v", 1), PKV_EINVAL);
	cr_assert_eq(pkv_batch_put_expire(b, NULL, 1, "v", 1, 5), PKV_EINVAL);
	cr_assert_eq(pkv_batch_put_expire(b, "k", 0, "v", 1, 5), PKV_EINVAL);
	cr_assert_eq(pkv_batch_del(b, NULL, 1), PKV_EINVAL);
	cr_assert_eq(pkv_batch_del(b, "k", 0), PKV_EINVAL);
	cr_assert_eq(pkv_batch_expect(b, NULL, 1, 0), PKV_EINVAL);
	cr_assert_eq(pkv_batch_expect(b, "k", 0, 0), PKV_EINVAL);
	/* NULL value with a length. */
	cr_assert_eq(pkv_batch_put(b, "k", 1, NULL, 1), PKV_EINVAL);
	cr_assert_eq(pkv_batch_put_expire(b, "k", 1, NULL, 1, 5), PKV_EINVAL);
	/* Oversized key and value. */
	cr_assert_eq(pkv_batch_put(b, big_key, PKV_MAX_KEY + 1, "v", 1), PKV_ETOOBIG);
	cr_assert_eq(pkv_batch_put_expire(b, big_key, PKV_MAX_KEY + 1, "v", 1, 5), PKV_ETOOBIG);
	cr_assert_eq(pkv_batch_del(b, big_key, PKV_MAX_KEY + 1), PKV_ETOOBIG);
	cr_assert_eq(pkv_batch_expect(b, big_key, PKV_MAX_KEY + 1, 7), PKV_ETOOBIG);
	cr_assert_eq(pkv_batch_put(b, "k", 1, big_val, PKV_MAX_VALUE + 1), PKV_ETOOBIG);
	cr_assert_eq(pkv_batch_put_expire(b, "k", 1, big_val, PKV_MAX_VALUE + 1, 5), PKV_ETOOBIG);
	assert_same(b, s, "a refused call");

	/* The largest key and value are fine. */
	cr_assert_eq(pkv_batch_put(b, big_key, PKV_MAX_KEY, big_val, PKV_MAX_VALUE), 0);
	cr_assert_eq(pkv_batch_del(b, big_key, PKV_MAX_KEY), 0);
	cr_assert_eq(b->nops, 3);
	pkv_batch_free(b);
	free(big_val);
}

/* PKV_BATCH_MAX_OPS counts writes and conditions together; the crossing call is refused. */
Test(batch, ops_limit)
{
	pkv_batch *b;
	struct shape s;
	uint32_t i;

	cr_assert_eq(pkv_batch_new(&b), 0);
	for (i = 0; i < PKV_BATCH_MAX_OPS; i++) {
		uint32_t k = i;
		int r = i % 3 == 0 ? pkv_batch_expect(b, &k, sizeof(k), PKV_ANY)
			: i % 3 == 1 ? pkv_batch_del(b, &k, sizeof(k))
				     : pkv_batch_put(b, &k, sizeof(k), "", 0);

		cr_assert_eq(r, 0, "op %u: %s", i, pkv_strerror(r));
	}
	s = shape_of(b);
	cr_assert_eq(pkv_batch_put(b, "k", 1, "v", 1), PKV_ETOOBIG);
	cr_assert_eq(pkv_batch_put_expire(b, "k", 1, "v", 1, 9), PKV_ETOOBIG);
	cr_assert_eq(pkv_batch_del(b, "k", 1), PKV_ETOOBIG);
	cr_assert_eq(pkv_batch_expect(b, "k", 1, 0), PKV_ETOOBIG);
	assert_same(b, s, "a call over PKV_BATCH_MAX_OPS");
	pkv_batch_clear(b);
	cr_assert_eq(pkv_batch_put(b, "k", 1, "v", 1), 0, "a cleared batch takes ops again");
	pkv_batch_free(b);
}

/* PKV_BATCH_MAX_BYTES: as pkv.h says, 63 values of 1 MiB fit and the 64th does not; a batch can
 * be filled to the byte. */
Test(batch, bytes_limit)
{
	pkv_batch *b;
	struct shape s;
	char *v = malloc(PKV_MAX_VALUE);
	size_t left;
	int i;

	cr_assert_not_null(v);
	memset(v, 'v', PKV_MAX_VALUE);
	cr_assert_eq(pkv_batch_new(&b), 0);
	for (i = 0; i < 63; i++) {
		char k = (char)('A' + i);

		cr_assert_eq(pkv_batch_put(b, &k, 1, v, PKV_MAX_VALUE), 0, "value %d", i);
	}
	s = shape_of(b);
	cr_assert_eq(pkv_batch_put(b, "z", 1, v, PKV_MAX_VALUE), PKV_ETOOBIG);
	cr_assert_eq(pkv_batch_put_expire(b, "z", 1, v, PKV_MAX_VALUE, 9), PKV_ETOOBIG);
	assert_same(b, s, "a put over PKV_BATCH_MAX_BYTES");

	/* Fill to exactly the limit, then nothing more fits, not even a condition. */
	left = PKV_BATCH_MAX_BYTES - b->bytes;
	cr_assert_gt(left, PKV_BATCH_OP_OVERHEAD + 1);
	cr_assert_eq(pkv_batch_put(b, "z", 1, v, left - PKV_BATCH_OP_OVERHEAD - 1), 0);
	cr_assert_eq(b->bytes, PKV_BATCH_MAX_BYTES);
	s = shape_of(b);
	cr_assert_eq(pkv_batch_del(b, "y", 1), PKV_ETOOBIG);
	cr_assert_eq(pkv_batch_expect(b, "y", 1, 0), PKV_ETOOBIG);
	assert_same(b, s, "a call at the full PKV_BATCH_MAX_BYTES");
	pkv_batch_free(b);
	free(v);
}
