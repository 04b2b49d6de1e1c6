/* SPDX-License-Identifier: MIT */
/*
 * fuzz_walrec.c - libFuzzer target for the WAL codec (src/walrec.c).
 *
 * The input is treated as a segment: a header check, then records decoded one after another
 * exactly as recovery walks a lane. Properties checked beyond "no crash, no out-of-bounds read":
 * a decoded record lies inside the input, its lengths are within the limits of its type, and
 * re-encoding it under the same seed reproduces the same bytes: every type, including a batch
 * (rebuilt op by op through the public batch builder, then encoded through the writer's path),
 * a put with expiry and a clear. A batch's ops must lie inside its body and be within their
 * limits too.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pkv.h"
#include "walrec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wal_seg_disk h;
	const char *why = NULL;
	uint32_t seed = 0x12345678u;
	size_t off = WAL_SEG_HDR;

	if (pkv__walrec_seg_check(data, size, &h, &why) == 0)
		seed = pkv__walrec_seed(&h);
	else
		off = 0; /* still decode: a damaged header must not make records readable */
	while (off < size) {
		struct wal_rec r;
		enum wal_decode d = pkv__walrec_decode(data + off, size - off, seed, &r, &why);
		struct wal_src src = { .type = r.type };
		struct batch_key keys[64];
		pkv_batch *b = NULL;
		unsigned char *copy;
		size_t len;

		if (d != WAL_DEC_OK)
			break;
		if ((const uint8_t *)r.key < data + off ||
		    (const uint8_t *)r.val + r.vlen > data + size || r.klen > PKV_MAX_KEY ||
		    (r.type != WAL_BATCH && r.vlen > PKV_MAX_VALUE))
			abort();
		if (r.type == WAL_BATCH) {
			struct wal_op op;
			size_t o = 0;
			uint32_t n = 0;

			if (pkv_batch_new(&b) != 0)
				abort();
			while (pkv__walrec_batch_next(&r, &o, &op)) {
				int e;

				if ((const uint8_t *)op.key < (const uint8_t *)r.val ||
				    (const uint8_t *)op.val + op.vlen >
					    (const uint8_t *)r.val + r.vlen ||
				    op.klen == 0 || op.klen > PKV_MAX_KEY || op.vlen > PKV_MAX_VALUE)
					abort();
				e = op.type == WAL_DEL ? pkv_batch_del(b, op.key, op.klen)
				    : op.type == WAL_PUTX
					? pkv_batch_put_expire(b, op.key, op.klen, op.val, op.vlen,
							       op.expires_ms)
					: pkv_batch_put(b, op.key, op.klen, op.val, op.vlen);
				if (e != 0)
					abort();
				n++;
			}
			if (n != r.nops)
				abort();
			if (n > sizeof(keys) / sizeof(keys[0])) { /* fine, just not re-encoded */
				pkv_batch_free(b);
				off += r.size;
				continue;
			}
			for (uint32_t i = 0; i < n; i++)
				keys[i] = (struct batch_key){ .op = i };
			src.batch = b;
			src.keys = keys;
			src.nkeys = n;
		} else {
			src.key = r.key;
			src.klen = r.klen;
			src.val = r.val;
			src.vlen = r.vlen;
			src.expires_ms = r.expires_ms;
		}
		len = pkv__walrec_src_size(&src);
		if (len != r.size)
			abort();
		copy = malloc(len);
		if (copy == NULL)
			abort();
		pkv__walrec_src_encode(copy, seed, r.seq, r.synced, &src);
		/* The record's bytes (not its padding, which decoding does not read). */
		if (memcmp(copy, data + off, WAL_REC_HDR + r.klen + r.vlen +
					     (r.type == WAL_PUTX ? sizeof(r.expires_ms) : 0)) != 0)
			abort();
		free(copy);
		pkv_batch_free(b);
		off += r.size;
	}
	return 0;
}
