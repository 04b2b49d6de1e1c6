/* SPDX-License-Identifier: MIT */
/*
 * batch.c - pkv_batch_new/put/put_expire/del/expect/clear/free. See batch.h.
 *
 * Every adding call checks all of its arguments and the limits, and reserves the memory it
 * needs, before it changes anything: a call that fails leaves the batch exactly as it was, so a
 * caller may keep using (or write) a batch after one of its calls was refused.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "errors.h"

#define BATCH_MIN_OPS 8u
#define BATCH_MIN_ARENA 256u

_Static_assert(PKV_BATCH_MAX_OPS <= UINT32_MAX / 2, "op counts fit in 32 bits with room");
_Static_assert(PKV_BATCH_MAX_BYTES <= UINT32_MAX / 2, "a batch record's length fits in 32 bits");

PKV_EXPORT int pkv_batch_new(pkv_batch **b_out)
{
	pkv_batch *b;

	if (b_out == NULL)
		return PKV_EINVAL;
	b = calloc(1, sizeof(*b));
	if (b == NULL)
		return -ENOMEM;
	*b_out = b;
	return 0;
}

PKV_EXPORT void pkv_batch_clear(pkv_batch *b)
{
	if (b == NULL)
		return;
	/* Keep the memory: a batch reused in a loop (a bulk load) allocates only while it grows. */
	b->nops = 0;
	b->nconds = 0;
	b->used = 0;
	b->bytes = 0;
}

PKV_EXPORT void pkv_batch_free(pkv_batch *b)
{
	if (b == NULL)
		return;
	free(b->ops);
	free(b->conds);
	free(b->arena);
	free(b);
}

/* Make room for one more entry in *@arr (of *@cap); 0 or -ENOMEM, *@arr unchanged on failure. */
static int grow_ops(struct batch_op **arr, uint32_t n, uint32_t *cap)
{
	struct batch_op *p;
	uint32_t c;

	if (n < *cap)
		return 0;
	c = *cap ? *cap * 2 : BATCH_MIN_OPS;
	if (c > PKV_BATCH_MAX_OPS)
		c = PKV_BATCH_MAX_OPS;
	p = realloc(*arr, (size_t)c * sizeof(*p));
	if (p == NULL)
		return -ENOMEM;
	*arr = p;
	*cap = c;
	return 0;
}

static int grow_arena(pkv_batch *b, size_t need)
{
	unsigned char *p;
	size_t c;

	if (b->arena_cap - b->used >= need)
		return 0;
	c = b->arena_cap ? b->arena_cap : BATCH_MIN_ARENA;
	while (c - b->used < need)
		c *= 2;
	p = realloc(b->arena, c);
	if (p == NULL)
		return -ENOMEM;
	b->arena = p;
	b->arena_cap = c;
	return 0;
}

/*
 * Append one op (@cond: a condition) after checking everything; the batch is unchanged on any
 * error. Bad pointers and lengths are PKV_EINVAL before sizes are PKV_ETOOBIG.
 */
static int add(pkv_batch *b, bool cond, uint8_t type, const void *key, size_t klen,
	       const void *val, size_t vlen, uint64_t arg)
{
	size_t cost;
	struct batch_op *op;
	int r;

	if (b == NULL || key == NULL || klen == 0 || (val == NULL && vlen > 0))
		return PKV_EINVAL;
	if (klen > PKV_MAX_KEY || vlen > PKV_MAX_VALUE)
		return PKV_ETOOBIG;
	cost = pkv__batch_op_bytes(klen, vlen);
	if ((size_t)b->nops + b->nconds >= PKV_BATCH_MAX_OPS || cost > PKV_BATCH_MAX_BYTES - b->bytes)
		return PKV_ETOOBIG;
	r = cond ? grow_ops(&b->conds, b->nconds, &b->conds_cap)
		 : grow_ops(&b->ops, b->nops, &b->ops_cap);
	if (r != 0)
		return r;
	r = grow_arena(b, klen + vlen);
	if (r != 0)
		return r;
	op = cond ? &b->conds[b->nconds++] : &b->ops[b->nops++];
	op->type = type;
	op->klen = (uint16_t)klen;
	op->vlen = (uint32_t)vlen;
	op->arg = arg;
	op->off = b->used;
	memcpy(b->arena + b->used, key, klen);
	if (vlen)
		memcpy(b->arena + b->used + klen, val, vlen);
	b->used += klen + vlen;
	b->bytes += cost;
	return 0;
}

PKV_EXPORT int pkv_batch_put(pkv_batch *b, const void *key, size_t klen, const void *val,
			     size_t vlen)
{
	return add(b, false, BATCH_PUT, key, klen, val, vlen, 0);
}

PKV_EXPORT int pkv_batch_put_expire(pkv_batch *b, const void *key, size_t klen, const void *val,
				    size_t vlen, uint64_t expires_ms)
{
	/* 0 is "never expires", as in pkv_item.expires_ms: a plain put. */
	if (expires_ms == 0)
		return add(b, false, BATCH_PUT, key, klen, val, vlen, 0);
	return add(b, false, BATCH_PUT_EXPIRE, key, klen, val, vlen, expires_ms);
}

PKV_EXPORT int pkv_batch_del(pkv_batch *b, const void *key, size_t klen)
{
	return add(b, false, BATCH_DEL, key, klen, NULL, 0, 0);
}

PKV_EXPORT int pkv_batch_expect(pkv_batch *b, const void *key, size_t klen, uint64_t seq)
{
	return add(b, true, 0, key, klen, NULL, 0, seq);
}
