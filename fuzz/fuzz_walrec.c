/* SPDX-License-Identifier: MIT */
/*
 * fuzz_walrec.c - libFuzzer target for the WAL codec (src/walrec.c).
 *
 * The input is treated as a segment: a header check, then records decoded one after another
 * exactly as recovery walks a lane. Properties checked beyond "no crash, no out-of-bounds read":
 * a decoded record lies inside the input, its lengths are within the limits of its type, and
 * re-encoding it under the same seed reproduces the same bytes.
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
		unsigned char *copy;

		if (d != WAL_DEC_OK)
			break;
		if ((const uint8_t *)r.key < data + off ||
		    (const uint8_t *)r.val + r.vlen > data + size || r.klen > PKV_MAX_KEY ||
		    r.vlen > PKV_MAX_VALUE)
			abort();
		copy = malloc(pkv__walrec_size(r.klen, r.vlen));
		if (copy == NULL)
			abort();
		pkv__walrec_encode(copy, seed, r.seq, r.type, r.synced, r.key, r.klen, r.val,
				    r.vlen);
		if (memcmp(copy, data + off, WAL_REC_HDR + r.klen + r.vlen) != 0)
			abort();
		free(copy);
		off += r.size;
	}
	return 0;
}
