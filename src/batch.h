/* SPDX-License-Identifier: MIT */
/*
 * batch.h - the batch builder behind pkv_batch_* (include/pkv.h): an ordered list of writes
 * (put, put with expiry, delete) and a list of conditions, with their key and value bytes
 * copied into one arena the batch owns.
 *
 * Pure memory: no store, no I/O, no locks. A batch is used by one thread at a time (the caller's
 * rule, documented in pkv.h). pkv_write (write.c) reads it through this header, and the WAL codec
 * encodes its ops into one batch record (docs/format.md).
 *
 * Limits (pkv.h): at most PKV_BATCH_MAX_OPS ops and conditions together, and at most
 * PKV_BATCH_MAX_BYTES of pkv__batch_op_bytes() over them; the call that would cross either is
 * PKV_ETOOBIG and leaves the batch as it was.
 */
#ifndef PKV_BATCH_H
#define PKV_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "pkv.h"

enum batch_op_type {
	BATCH_PUT = 1,
	BATCH_DEL = 2,
	BATCH_PUT_EXPIRE = 3,
};

/* One write of a batch, or one condition. Key (then value) at arena + off. */
struct batch_op {
	uint8_t type;  /* enum batch_op_type; conditions leave it 0 */
	uint16_t klen;
	uint32_t vlen;
	uint64_t arg;  /* BATCH_PUT_EXPIRE: expires_ms; a condition: the expected seq */
	size_t off;    /* of the key in the arena; the value follows it */
};

struct pkv_batch {
	struct batch_op *ops;   /* writes, in the order they were added */
	uint32_t nops, ops_cap;
	struct batch_op *conds; /* conditions (order does not matter: all are checked first) */
	uint32_t nconds, conds_cap;
	unsigned char *arena;
	size_t used, arena_cap;
	size_t bytes; /* sum of pkv__batch_op_bytes() over ops and conditions */
};

/*
 * One distinct key a batch writes, as pkv_write plans it: the key's hash and shard, and the
 * index in ops[] of the batch's last write of that key (the one that wins).
 */
struct batch_key {
	uint64_t hash;
	uint32_t shard;
	uint32_t op;
};

/* What one op or condition counts against PKV_BATCH_MAX_BYTES: its bytes plus a fixed head. */
static inline size_t pkv__batch_op_bytes(size_t klen, size_t vlen)
{
	return klen + vlen + PKV_BATCH_OP_OVERHEAD;
}

static inline const void *pkv__batch_key(const struct pkv_batch *b, const struct batch_op *op)
{
	return b->arena + op->off;
}

static inline const void *pkv__batch_val(const struct pkv_batch *b, const struct batch_op *op)
{
	return b->arena + op->off + op->klen;
}

#endif /* PKV_BATCH_H */
