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
	if (out->version < WAL_VERSION_MIN || out->version > WAL_VERSION) {
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

/* Bytes of a record's body (what follows its 32-byte header), per type (docs/format.md). */
static size_t body_len(const struct wal_src *s)
{
	size_t n;

	switch (s->type) {
	case WAL_PUT:
		return (size_t)s->klen + s->vlen;
	case WAL_PUTX:
		return (size_t)s->klen + s->vlen + sizeof(uint64_t);
	case WAL_DEL:
		return s->klen;
	case WAL_BATCH:
		n = WAL_BATCH_HDR;
		for (uint32_t i = 0; i < s->nkeys; i++) {
			const struct batch_op *op = &s->batch->ops[s->keys[i].op];

			n += WAL_OP_HDR + op->klen;
			if (op->type != BATCH_DEL)
				n += op->vlen;
			if (op->type == BATCH_PUT_EXPIRE)
				n += sizeof(uint64_t);
		}
		return n;
	default: /* WAL_NOP, WAL_CLEAR */
		return 0;
	}
}

size_t pkv__walrec_src_size(const struct wal_src *s)
{
	return (WAL_REC_HDR + body_len(s) + (WAL_ALIGN - 1)) & ~(size_t)(WAL_ALIGN - 1);
}

static unsigned char *put(unsigned char *q, const void *src, size_t n)
{
	if (n)
		memcpy(q, src, n);
	return q + n;
}

static enum wal_rec_type op_type(const struct batch_op *op)
{
	return op->type == BATCH_DEL ? WAL_DEL : op->type == BATCH_PUT_EXPIRE ? WAL_PUTX : WAL_PUT;
}

void pkv__walrec_src_encode(void *dst, uint32_t seed, uint64_t seq, uint64_t synced,
			    const struct wal_src *s)
{
	unsigned char *p = dst, *q = p + WAL_REC_HDR;
	size_t blen = body_len(s), len = WAL_REC_HDR + blen;
	struct wal_rec_disk h = {
		.len = (uint32_t)len,
		.seq = seq,
		.type = (uint8_t)s->type,
		.synced = synced,
	};

	switch (s->type) {
	case WAL_PUT:
	case WAL_PUTX:
	case WAL_DEL:
		h.klen = (uint16_t)s->klen;
		h.vlen = s->type == WAL_DEL ? 0 : s->vlen;
		q = put(q, s->key, s->klen);
		q = put(q, s->val, h.vlen);
		if (s->type == WAL_PUTX)
			q = put(q, &s->expires_ms, sizeof(s->expires_ms));
		break;
	case WAL_BATCH: {
		uint32_t head[2] = { s->nkeys, 0 };

		h.vlen = (uint32_t)blen;
		q = put(q, head, sizeof(head));
		for (uint32_t i = 0; i < s->nkeys; i++) {
			const struct batch_op *op = &s->batch->ops[s->keys[i].op];
			unsigned char oh[WAL_OP_HDR] = { (unsigned char)op_type(op), 0 };
			uint32_t vl = op->type == BATCH_DEL ? 0 : op->vlen;

			memcpy(oh + 2, &op->klen, 2);
			memcpy(oh + 4, &vl, 4);
			q = put(q, oh, sizeof(oh));
			if (op->type == BATCH_PUT_EXPIRE)
				q = put(q, &op->arg, sizeof(op->arg));
			q = put(q, pkv__batch_key(s->batch, op), op->klen);
			q = put(q, pkv__batch_val(s->batch, op), vl);
		}
		break;
	}
	default: /* WAL_NOP, WAL_CLEAR: no body */
		break;
	}
	memset(q, 0, pkv__walrec_src_size(s) - len);
	memcpy(p, &h, sizeof(h));
	h.crc = rec_crc(seed, p, len);
	memcpy(p + offsetof(struct wal_rec_disk, crc), &h.crc, sizeof(h.crc));
}

void pkv__walrec_encode(void *dst, uint32_t seed, uint64_t seq, enum wal_rec_type type,
			 uint64_t synced, const void *key, uint32_t klen, const void *val,
			 uint32_t vlen)
{
	struct wal_src s = { .type = type, .key = key, .klen = klen, .val = val, .vlen = vlen };

	pkv__walrec_src_encode(dst, seed, seq, synced, &s);
}

/*
 * Check a batch body whole (so that replay walks it without checks): every op's type, flags,
 * lengths and expiry, and that the ops fill the body exactly. NULL, or what is wrong.
 */
static const char *batch_check(const unsigned char *p, size_t len, uint32_t *nops_out)
{
	uint32_t nops, reserved;
	size_t off = WAL_BATCH_HDR;

	if (len < WAL_BATCH_HDR)
		return "batch body shorter than its head";
	memcpy(&nops, p, 4);
	memcpy(&reserved, p + 4, 4);
	if (nops == 0 || nops > PKV_BATCH_MAX_OPS || reserved != 0)
		return "batch op count out of range, or reserved bytes set";
	for (uint32_t i = 0; i < nops; i++) {
		uint16_t kl;
		uint32_t vl;
		uint64_t e = 1;
		size_t head;
		unsigned t;

		if (len - off < WAL_OP_HDR)
			return "batch op runs past the record";
		t = p[off];
		memcpy(&kl, p + off + 2, 2);
		memcpy(&vl, p + off + 4, 4);
		if (p[off + 1] != 0 || (t != WAL_PUT && t != WAL_DEL && t != WAL_PUTX))
			return "batch op has an unknown type or flags";
		if (kl == 0 || kl > PKV_MAX_KEY || vl > PKV_MAX_VALUE || (t == WAL_DEL && vl != 0))
			return "batch op key or value length out of range";
		head = WAL_OP_HDR + (t == WAL_PUTX ? sizeof(e) : 0);
		if (len - off < head || len - off - head < (size_t)kl + vl)
			return "batch op runs past the record";
		if (t == WAL_PUTX)
			memcpy(&e, p + off + WAL_OP_HDR, sizeof(e));
		if (e == 0)
			return "batch op expires at 0";
		off += head + kl + vl;
	}
	if (off != len)
		return "batch ops do not fill the record";
	*nops_out = nops;
	return NULL;
}

bool pkv__walrec_batch_next(const struct wal_rec *r, size_t *off, struct wal_op *op)
{
	const unsigned char *p = r->val;
	size_t o = *off ? *off : WAL_BATCH_HDR;
	uint16_t kl;

	if (r->type != WAL_BATCH || o >= r->vlen)
		return false;
	op->type = (enum wal_rec_type)p[o];
	memcpy(&kl, p + o + 2, 2);
	op->klen = kl;
	memcpy(&op->vlen, p + o + 4, 4);
	o += WAL_OP_HDR;
	op->expires_ms = 0;
	if (op->type == WAL_PUTX) {
		memcpy(&op->expires_ms, p + o, sizeof(op->expires_ms));
		o += sizeof(op->expires_ms);
	}
	op->key = p + o;
	op->val = p + o + op->klen;
	*off = o + op->klen + op->vlen;
	return true;
}

enum wal_decode pkv__walrec_decode(const void *buf, size_t avail, uint32_t seed,
				    struct wal_rec *out, const char **why)
{
	const unsigned char *p = buf;
	struct wal_rec_disk h;
	size_t extra;
	uint32_t nops = 0;
	uint64_t expires = 0;

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
	extra = h.type == WAL_PUTX ? sizeof(expires) : 0;
	if ((size_t)WAL_REC_HDR + h.klen + h.vlen + extra != h.len) {
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
	case WAL_PUTX:
		if (h.klen == 0 || h.klen > PKV_MAX_KEY || h.vlen > PKV_MAX_VALUE)
			goto bad_len;
		memcpy(&expires, p + WAL_REC_HDR + h.klen + h.vlen, sizeof(expires));
		if (expires == 0) {
			*why = "put with expiry expires at 0";
			return WAL_DEC_BAD;
		}
		break;
	case WAL_DEL:
		if (h.klen == 0 || h.klen > PKV_MAX_KEY || h.vlen != 0)
			goto bad_len;
		break;
	case WAL_NOP:
	case WAL_CLEAR:
		if (h.klen != 0 || h.vlen != 0)
			goto bad_len;
		break;
	case WAL_BATCH:
		if (h.klen != 0 || h.vlen > WAL_BATCH_HDR + PKV_BATCH_MAX_BYTES)
			goto bad_len;
		*why = batch_check(p + WAL_REC_HDR, h.vlen, &nops);
		if (*why)
			return WAL_DEC_BAD;
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
	out->expires_ms = expires;
	out->nops = nops;
	/* May exceed @avail when a truncation cut only padding: the next record still starts at
	 * the aligned offset, which callers treat as the end of the data. */
	out->size = (h.len + (WAL_ALIGN - 1)) & ~(size_t)(WAL_ALIGN - 1);
	return WAL_DEC_OK;
bad_len:
	*why = "record key or value length out of range for its type";
	return WAL_DEC_BAD;
}
