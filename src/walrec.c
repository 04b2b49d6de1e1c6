/* SPDX-License-Identifier: MIT */
/*
 * walrec.c - the WAL codec: segment header and records, pure functions. See walrec.h and
 * docs/format.md.
 */
#include <string.h>

#include "crc32c.h"
#include "errors.h"
#include "walrec.h"

void pkv__walrec_seg_init(struct wal_seg_disk *h, uint32_t lane, uint64_t segno, uint64_t salt,
		       uint64_t seg_bytes)
{
	memset(h, 0, sizeof(*h));
	memcpy(h->magic, WAL_MAGIC, sizeof(h->magic));
	h->version = WAL_VERSION;
	h->lane = lane;
	h->segno = segno;
	h->salt = salt;
	h->seg_bytes = seg_bytes;
	h->hdr_crc = pkv__crc32c(0, h, offsetof(struct wal_seg_disk, hdr_crc));
}

int pkv__walrec_seg_check(const void *buf, size_t len, struct wal_seg_disk *out, const char **why)
{
	if (len < sizeof(*out)) {
		*why = "segment shorter than its header";
		return PKV_ECORRUPT;
	}
	memcpy(out, buf, sizeof(*out));
	if (memcmp(out->magic, WAL_MAGIC, sizeof(out->magic)) != 0) {
		*why = "bad segment magic";
		return PKV_ECORRUPT;
	}
	if (out->hdr_crc != pkv__crc32c(0, out, offsetof(struct wal_seg_disk, hdr_crc))) {
		*why = "segment header checksum mismatch";
		return PKV_ECORRUPT;
	}
	if (out->version != WAL_VERSION) {
		*why = "unknown segment format version";
		return PKV_ECORRUPT;
	}
	if (out->seg_bytes < WAL_SEG_HDR) {
		*why = "segment size in header is smaller than the header";
		return PKV_ECORRUPT;
	}
	return 0;
}

uint32_t pkv__walrec_seed(const struct wal_seg_disk *h)
{
	/* magic, version, lane, segno, salt: a record validates only in its own segment. */
	return pkv__crc32c(0, h, offsetof(struct wal_seg_disk, seg_bytes));
}

static uint32_t rec_crc(uint32_t seed, const unsigned char *p, size_t len)
{
	uint32_t c = pkv__crc32c(seed, p + 8, len - 8);
	return pkv__crc32c(c, p, 4); /* the length is covered too */
}

void pkv__walrec_encode(void *dst, uint32_t seed, uint64_t seq, enum wal_rec_type type,
			 uint64_t synced, const void *key, uint32_t klen, const void *val,
			 uint32_t vlen)
{
	unsigned char *p = dst;
	size_t len = WAL_REC_HDR + (size_t)klen + vlen;
	size_t size = pkv__walrec_size(klen, vlen);
	struct wal_rec_disk h = {
		.len = (uint32_t)len,
		.seq = seq,
		.type = (uint8_t)type,
		.klen = (uint16_t)klen,
		.vlen = vlen,
		.synced = synced,
	};

	memcpy(p + WAL_REC_HDR, key, klen);
	if (vlen)
		memcpy(p + WAL_REC_HDR + klen, val, vlen);
	memset(p + len, 0, size - len);
	memcpy(p, &h, sizeof(h));
	h.crc = rec_crc(seed, p, len);
	memcpy(p + offsetof(struct wal_rec_disk, crc), &h.crc, sizeof(h.crc));
}

enum wal_decode pkv__walrec_decode(const void *buf, size_t avail, uint32_t seed,
				    struct wal_rec *out, const char **why)
{
	const unsigned char *p = buf;
	struct wal_rec_disk h;

	if (avail < sizeof(h.len)) {
		/* Less than a length field left: the end, unless a record was cut short there. */
		for (size_t i = 0; i < avail; i++) {
			if (p[i] != 0) {
				*why = "record length cut short";
				return WAL_DEC_BAD;
			}
		}
		return WAL_DEC_END;
	}
	memcpy(&h.len, p, sizeof(h.len));
	if (h.len == 0)
		return WAL_DEC_END;
	if (avail < WAL_REC_HDR) {
		*why = "record header cut short";
		return WAL_DEC_BAD;
	}
	memcpy(&h, p, sizeof(h));
	if (h.len < WAL_REC_HDR || h.len > avail) {
		*why = "record length out of range";
		return WAL_DEC_BAD;
	}
	if ((size_t)WAL_REC_HDR + h.klen + h.vlen != h.len) {
		*why = "record length disagrees with key and value lengths";
		return WAL_DEC_BAD;
	}
	if (h.crc != rec_crc(seed, p, h.len)) {
		*why = "record checksum mismatch";
		return WAL_DEC_BAD;
	}
	/* The CRC matched: what follows guards against bugs and forged records, not bit rot. */
	if (h.seq == 0 || h.flags != 0) {
		*why = "record has a zero sequence number or unknown flags";
		return WAL_DEC_BAD;
	}
	switch (h.type) {
	case WAL_PUT:
		if (h.klen == 0 || h.klen > PKV_MAX_KEY || h.vlen > PKV_MAX_VALUE)
			goto bad_len;
		break;
	case WAL_DEL:
		if (h.klen == 0 || h.klen > PKV_MAX_KEY || h.vlen != 0)
			goto bad_len;
		break;
	case WAL_NOP:
		if (h.klen != 0 || h.vlen != 0)
			goto bad_len;
		break;
	default:
		*why = "unknown record type";
		return WAL_DEC_BAD;
	}
	out->seq = h.seq;
	out->synced = h.synced;
	out->type = (enum wal_rec_type)h.type;
	out->klen = h.klen;
	out->vlen = h.vlen;
	out->key = p + WAL_REC_HDR;
	out->val = p + WAL_REC_HDR + h.klen;
	/* May exceed @avail when a truncation cut only padding: the next record still starts at
	 * the aligned offset, which callers treat as the end of the data. */
	out->size = pkv__walrec_size(h.klen, h.vlen);
	return WAL_DEC_OK;
bad_len:
	*why = "record key or value length out of range for its type";
	return WAL_DEC_BAD;
}
