/* SPDX-License-Identifier: MIT */
/*
 * test_walrec.c - the WAL codec (src/walrec.h) and CRC32C (src/crc32c.h), against docs/format.md.
 *
 * The codec decides what recovery replays, so it is held to: round trips are exact, the bytes are
 * the documented layout, and every truncation, every single-bit flip, every foreign seed and every
 * out-of-range field is refused, without reading a byte past what it was given (the buffers sit
 * at the very end of their allocations, so AddressSanitizer sees any over-read).
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "pkv.h"
#include "walrec.h"

/* Reference CRC32C, bit by bit, straight from the definition. */
static uint32_t ref_crc(uint32_t crc, const void *buf, size_t len)
{
	const unsigned char *p = buf;

	crc = ~crc;
	while (len--) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = (crc & 1) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
	}
	return ~crc;
}

static uint64_t rnd(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476CE484E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

/* @n bytes at the end of a fresh allocation, so reading past them is caught. */
struct tail_buf {
	unsigned char *base;
	unsigned char *p;
};

static struct tail_buf tail_alloc(size_t n)
{
	struct tail_buf b;

	b.base = malloc(n + 16);
	cr_assert_not_null(b.base);
	b.p = b.base + 16;
	return b;
}

static uint32_t get32(const unsigned char *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

static uint64_t get64(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

/* ---- CRC32C --------------------------------------------------------------------------------- */

Test(crc32c, check_value)
{
	cr_assert_eq(pkv__crc32c(0, "123456789", 9), 0xE3069283u);
	cr_assert_eq(pkv__crc32c(0, "", 0), 0);
	cr_assert_eq(ref_crc(0, "123456789", 9), 0xE3069283u);
}

Test(crc32c, matches_reference_at_every_length_and_alignment)
{
	unsigned char buf[600];
	uint64_t s = 7;

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (unsigned char)rnd(&s);
	for (size_t align = 0; align < 8; align++)
		for (size_t len = 0; len + align <= 520; len++)
			cr_assert_eq(pkv__crc32c(0, buf + align, len), ref_crc(0, buf + align, len),
				     "length %zu at alignment %zu", len, align);
}

Test(crc32c, chains)
{
	unsigned char buf[300];
	uint64_t s = 8;

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (unsigned char)rnd(&s);
	for (size_t cut = 0; cut <= sizeof(buf); cut += 7)
		cr_assert_eq(pkv__crc32c(pkv__crc32c(0, buf, cut), buf + cut, sizeof(buf) - cut),
			     pkv__crc32c(0, buf, sizeof(buf)), "split at %zu", cut);
	cr_assert_eq(pkv__crc32c(0x12345678u, buf, 100), ref_crc(0x12345678u, buf, 100));
}

/* ---- segment header ------------------------------------------------------------------------- */

Test(segment, layout_and_round_trip)
{
	struct wal_seg_disk h, out;
	const unsigned char *p = (const unsigned char *)&h;
	const char *why = NULL;

	pkv__walrec_seg_init(&h, 3, 0x0102030405060708ull, 0xa1b2c3d4e5f60718ull, 65536);
	cr_assert(!memcmp(p, "pkvWAL\0\0", 8));
	cr_assert_eq(get32(p + 8), 1);
	cr_assert_eq(get32(p + 12), 3);
	cr_assert_eq(get64(p + 16), 0x0102030405060708ull);
	cr_assert_eq(get64(p + 24), 0xa1b2c3d4e5f60718ull);
	cr_assert_eq(get64(p + 32), 65536);
	cr_assert_eq(get64(p + 40), 0);
	cr_assert_eq(get32(p + 48), ref_crc(0, p, 48), "hdr_crc = crc32c(0, bytes 0..47)");
	for (int i = 52; i < 64; i++)
		cr_assert_eq(p[i], 0);
	cr_assert_eq(pkv__walrec_seg_check(&h, sizeof(h), &out, &why), 0, "%s", why);
	cr_assert(!memcmp(&out, &h, sizeof(h)));
	cr_assert_eq(pkv__walrec_seed(&h), ref_crc(0, p, 32), "rec_seed = crc32c(0, bytes 0..31)");
}

Test(segment, damage_is_refused)
{
	struct wal_seg_disk h, out;
	struct tail_buf b = tail_alloc(sizeof(h));
	const char *why;

	pkv__walrec_seg_init(&h, 1, 2, 3, 1u << 20);
	/* Too short, at every length. */
	for (size_t len = 0; len < sizeof(h); len++) {
		memcpy(b.base + 16 + sizeof(h) - len, &h, len);
		why = NULL;
		cr_assert_eq(pkv__walrec_seg_check(b.base + 16 + sizeof(h) - len, len, &out, &why),
			     PKV_ECORRUPT, "a header of %zu bytes was accepted", len);
		cr_assert_not_null(why);
	}
	/* Every bit of the checksummed bytes and of the checksum. */
	for (size_t bit = 0; bit < 52 * 8; bit++) {
		memcpy(b.p, &h, sizeof(h));
		b.p[bit / 8] ^= (unsigned char)(1u << (bit % 8));
		why = NULL;
		cr_assert_eq(pkv__walrec_seg_check(b.p, sizeof(h), &out, &why), PKV_ECORRUPT,
			     "bit %zu flipped was accepted", bit);
		cr_assert_not_null(why);
	}
	free(b.base);
}

Test(segment, bad_fields_with_good_checksum)
{
	struct wal_seg_disk h, out;
	const char *why;

	/* Another version, with its checksum recomputed: still refused. */
	pkv__walrec_seg_init(&h, 0, 0, 1, 65536);
	h.version = 2;
	h.hdr_crc = ref_crc(0, &h, 48);
	cr_assert_eq(pkv__walrec_seg_check(&h, sizeof(h), &out, &why), PKV_ECORRUPT);
	/* A size smaller than the header itself. */
	pkv__walrec_seg_init(&h, 0, 0, 1, 63);
	cr_assert_eq(pkv__walrec_seg_check(&h, sizeof(h), &out, &why), PKV_ECORRUPT);
}

Test(segment, seed_depends_on_identity_only)
{
	struct wal_seg_disk a, b;
	uint32_t s;

	pkv__walrec_seg_init(&a, 0, 0, 42, 65536);
	s = pkv__walrec_seed(&a);
	pkv__walrec_seg_init(&b, 1, 0, 42, 65536);
	cr_assert_neq(pkv__walrec_seed(&b), s, "lane not in the seed");
	pkv__walrec_seg_init(&b, 0, 1, 42, 65536);
	cr_assert_neq(pkv__walrec_seed(&b), s, "segment number not in the seed");
	pkv__walrec_seg_init(&b, 0, 0, 43, 65536);
	cr_assert_neq(pkv__walrec_seed(&b), s, "salt not in the seed");
	/* The allocated size is not identity: a segment grown for a big record keeps its seed. */
	pkv__walrec_seg_init(&b, 0, 0, 42, 1u << 24);
	cr_assert_eq(pkv__walrec_seed(&b), s);
}

/* ---- records -------------------------------------------------------------------------------- */

static uint32_t test_seed(void)
{
	struct wal_seg_disk h;

	pkv__walrec_seg_init(&h, 2, 9, 0x5a17ull, 65536);
	return pkv__walrec_seed(&h);
}

struct shape {
	enum wal_rec_type type;
	uint32_t klen, vlen;
};

static const struct shape shapes[] = {
	{ WAL_PUT, 1, 0 }, { WAL_PUT, 1, 1 },	{ WAL_PUT, 3, 5 },    { WAL_PUT, 7, 0 },
	{ WAL_PUT, 8, 8 }, { WAL_PUT, 5, 100 }, { WAL_PUT, 1024, 3 }, { WAL_PUT, 16, 4093 },
	{ WAL_DEL, 1, 0 }, { WAL_DEL, 13, 0 },	{ WAL_DEL, 1024, 0 }, { WAL_NOP, 0, 0 },
};
#define NSHAPES (sizeof(shapes) / sizeof(shapes[0]))

/* Encode a record of shape @sh with deterministic contents at the end of a fresh buffer. */
static struct tail_buf encode(const struct shape *sh, uint32_t seed, uint64_t seq, uint64_t synced,
			      unsigned char **key, unsigned char **val)
{
	size_t size = pkv__walrec_size(sh->klen, sh->vlen);
	struct tail_buf b = tail_alloc(size);
	uint64_t s = seq;

	*key = malloc(sh->klen + 1u);
	*val = malloc(sh->vlen + 1u);
	cr_assert(*key && *val);
	for (uint32_t i = 0; i < sh->klen; i++)
		(*key)[i] = (unsigned char)(rnd(&s) | 1);
	for (uint32_t i = 0; i < sh->vlen; i++)
		(*val)[i] = (unsigned char)(rnd(&s) | 1);
	memset(b.p, 0xee, size);
	pkv__walrec_encode(b.p, seed, seq, sh->type, synced, *key, sh->klen, *val, sh->vlen);
	return b;
}

Test(record, sizes)
{
	cr_assert_eq(pkv__walrec_size(1, 0), 40);
	cr_assert_eq(pkv__walrec_size(8, 0), 40);
	cr_assert_eq(pkv__walrec_size(9, 0), 48);
	cr_assert_eq(pkv__walrec_size(0, 0), 32);
	cr_assert_eq(pkv__walrec_size(PKV_MAX_KEY, PKV_MAX_VALUE),
		     (32 + PKV_MAX_KEY + PKV_MAX_VALUE + 7) & ~(size_t)7);
	for (size_t k = 0; k < 20; k++)
		for (size_t v = 0; v < 20; v++) {
			size_t sz = pkv__walrec_size(k, v);

			cr_assert_eq(sz % 8, 0);
			cr_assert(sz >= 32 + k + v && sz < 32 + k + v + 8);
		}
}

Test(record, round_trip_and_layout)
{
	uint32_t seed = test_seed();

	for (size_t i = 0; i < NSHAPES; i++) {
		const struct shape *sh = &shapes[i];
		unsigned char *key, *val;
		uint64_t seq = 1000 + i, synced = 990 + i;
		struct tail_buf b = encode(sh, seed, seq, synced, &key, &val);
		size_t len = 32 + sh->klen + sh->vlen, size = pkv__walrec_size(sh->klen, sh->vlen);
		struct wal_rec r;
		const char *why = NULL;
		const unsigned char *p = b.p;

		/* docs/format.md, byte by byte. */
		cr_assert_eq(get32(p), len);
		cr_assert_eq(get64(p + 8), seq);
		cr_assert_eq(p[16], sh->type);
		cr_assert_eq(p[17], 0);
		cr_assert_eq((unsigned)(p[18] | p[19] << 8), (unsigned)sh->klen);
		cr_assert_eq(get32(p + 20), sh->vlen);
		cr_assert_eq(get64(p + 24), synced);
		cr_assert(!memcmp(p + 32, key, sh->klen));
		cr_assert(!sh->vlen || !memcmp(p + 32 + sh->klen, val, sh->vlen));
		for (size_t j = len; j < size; j++)
			cr_assert_eq(p[j], 0, "padding byte %zu not zero", j);
		cr_assert_eq(get32(p + 4), ref_crc(ref_crc(seed, p + 8, len - 8), p, 4),
			     "crc = crc32c(crc32c(rec_seed, bytes 8..len-1), bytes 0..3)");

		cr_assert_eq(pkv__walrec_decode(p, size, seed, &r, &why), WAL_DEC_OK,
			     "shape %zu: %s", i, why);
		cr_assert_eq(r.seq, seq);
		cr_assert_eq(r.synced, synced);
		cr_assert_eq(r.type, sh->type);
		cr_assert_eq(r.klen, sh->klen);
		cr_assert_eq(r.vlen, sh->vlen);
		cr_assert_eq(r.size, size);
		cr_assert_eq(r.key, p + 32, "the key points into the buffer");
		cr_assert_eq(r.val, p + 32 + sh->klen);

		/* The padding may be missing at the very end of a file: the record is whole, and
		 * its size still says where the next one would start (walrec.h). */
		for (size_t avail = len; avail <= size; avail++) {
			cr_assert_eq(pkv__walrec_decode(p, avail, seed, &r, &why), WAL_DEC_OK,
				     "shape %zu, %zu bytes available", i, avail);
			cr_assert_eq(r.size, size);
		}
		free(b.base);
		free(key);
		free(val);
	}
}

Test(record, every_truncation_is_refused)
{
	uint32_t seed = test_seed();

	for (size_t i = 0; i < NSHAPES; i++) {
		const struct shape *sh = &shapes[i];
		unsigned char *key, *val;
		struct tail_buf b = encode(sh, seed, 77, 0, &key, &val);
		size_t len = 32 + sh->klen + sh->vlen;

		for (size_t avail = 0; avail < len; avail++) {
			/* The first @avail bytes, at the very end of their own buffer. */
			struct tail_buf t = tail_alloc(avail);
			struct wal_rec r;
			const char *why = NULL;
			enum wal_decode d;

			memcpy(t.p, b.p, avail);
			d = pkv__walrec_decode(t.p, avail, seed, &r, &why);
			if (avail < 4)
				cr_assert_neq(d, WAL_DEC_OK, "shape %zu cut to %zu bytes", i,
					      avail);
			else
				cr_assert_eq(d, WAL_DEC_BAD, "shape %zu cut to %zu bytes: %d", i,
					     avail, d);
			free(t.base);

			/* A cut in a preallocated file leaves zeros, not an end of file. */
			t = tail_alloc(len);
			memcpy(t.p, b.p, avail);
			memset(t.p + avail, 0, len - avail);
			d = pkv__walrec_decode(t.p, len, seed, &r, &why);
			if (avail == 0)
				cr_assert_eq(d, WAL_DEC_END,
					     "a zero length is the end of the data");
			else if (!memcmp(t.p, b.p, len))
				/* The bytes zeroed were zeros already: the record is whole. */
				cr_assert_eq(d, WAL_DEC_OK, "shape %zu zeroed from %zu: %d", i,
					     avail, d);
			else
				cr_assert_eq(d, WAL_DEC_BAD, "shape %zu zeroed from %zu: %d", i,
					     avail, d);
			free(t.base);
		}
		free(b.base);
		free(key);
		free(val);
	}
}

Test(record, every_bit_flip_is_refused)
{
	uint32_t seed = test_seed();

	for (size_t i = 0; i < NSHAPES; i++) {
		const struct shape *sh = &shapes[i];
		unsigned char *key, *val;
		struct tail_buf b = encode(sh, seed, 123456789, 42, &key, &val);
		size_t len = 32 + sh->klen + sh->vlen, size = pkv__walrec_size(sh->klen, sh->vlen);

		/* Big values: every bit of the header, then a sample of the rest. */
		for (size_t bit = 0; bit < len * 8; bit += (bit < 64 * 8 || len < 512) ? 1 : 61) {
			struct wal_rec r;
			const char *why = NULL;
			enum wal_decode d;

			b.p[bit / 8] ^= (unsigned char)(1u << (bit % 8));
			d = pkv__walrec_decode(b.p, size, seed, &r, &why);
			b.p[bit / 8] ^= (unsigned char)(1u << (bit % 8));
			cr_assert_neq(d, WAL_DEC_OK, "shape %zu: bit %zu flipped was accepted", i,
				      bit);
			/* Only a length that now reads zero may look like the end of the data. */
			if (d == WAL_DEC_END)
				cr_assert_eq(bit / 8 < 4 && (get32(b.p) ^ (1u << bit)) == 0, true,
					     "shape %zu: bit %zu read as the end", i, bit);
		}
		free(b.base);
		free(key);
		free(val);
	}
}

Test(record, foreign_seed_is_refused)
{
	struct wal_seg_disk h;
	uint32_t seed = test_seed();
	unsigned char *key, *val;
	struct tail_buf b = encode(&shapes[2], seed, 5, 0, &key, &val);
	size_t size = pkv__walrec_size(shapes[2].klen, shapes[2].vlen);
	struct wal_rec r;
	const char *why;

	/* Same bytes in another segment, lane or store: never valid there. */
	pkv__walrec_seg_init(&h, 2, 10, 0x5a17ull, 65536);
	cr_assert_eq(pkv__walrec_decode(b.p, size, pkv__walrec_seed(&h), &r, &why), WAL_DEC_BAD);
	pkv__walrec_seg_init(&h, 3, 9, 0x5a17ull, 65536);
	cr_assert_eq(pkv__walrec_decode(b.p, size, pkv__walrec_seed(&h), &r, &why), WAL_DEC_BAD);
	pkv__walrec_seg_init(&h, 2, 9, 0x5a18ull, 65536);
	cr_assert_eq(pkv__walrec_decode(b.p, size, pkv__walrec_seed(&h), &r, &why), WAL_DEC_BAD);
	free(b.base);
	free(key);
	free(val);
}

/*
 * A hand-made record in @avail bytes whose CRC is right (whenever @len fits) but whose fields may
 * not be: what a bug or a forged record would look like. Key bytes are 'k', value bytes 'v'.
 */
static enum wal_decode decode_forged(uint32_t len, uint8_t type, uint8_t flags, uint32_t klen,
				     uint32_t vlen, uint64_t seq, size_t avail)
{
	uint32_t seed = test_seed();
	struct tail_buf b = tail_alloc(avail);
	size_t kfill = klen < avail - 32 ? klen : avail - 32;
	size_t vfill = vlen < avail - 32 - kfill ? vlen : avail - 32 - kfill;
	uint32_t crc;
	struct wal_rec r;
	const char *why;
	enum wal_decode d;

	cr_assert_geq(avail, 32);
	memset(b.p, 0, avail);
	memcpy(b.p, &len, 4);
	memcpy(b.p + 8, &seq, 8);
	b.p[16] = type;
	b.p[17] = flags;
	b.p[18] = (unsigned char)klen;
	b.p[19] = (unsigned char)(klen >> 8);
	memcpy(b.p + 20, &vlen, 4);
	memset(b.p + 32, 'k', kfill);
	memset(b.p + 32 + kfill, 'v', vfill);
	if (len >= 8 && len <= avail) {
		crc = ref_crc(ref_crc(seed, b.p + 8, len - 8), b.p, 4);
		memcpy(b.p + 4, &crc, 4);
	}
	d = pkv__walrec_decode(b.p, avail, seed, &r, &why);
	free(b.base);
	return d;
}

Test(record, length_limits_and_field_checks)
{
	const uint32_t MK = PKV_MAX_KEY, MV = PKV_MAX_VALUE;

	/* The limits themselves are fine. */
	cr_assert_eq(decode_forged(32 + MK, WAL_PUT, 0, MK, 0, 1, 32 + MK), WAL_DEC_OK);
	cr_assert_eq(decode_forged(32 + 1 + MV, WAL_PUT, 0, 1, MV, 1, 32 + 1 + MV), WAL_DEC_OK);
	cr_assert_eq(decode_forged(32 + 1, WAL_DEL, 0, 1, 0, 1, 40), WAL_DEC_OK);
	cr_assert_eq(decode_forged(32, WAL_NOP, 0, 0, 0, 1, 32), WAL_DEC_OK);

	/* One past them is not. */
	cr_assert_eq(decode_forged(32 + MK + 1, WAL_PUT, 0, MK + 1, 0, 1, 32 + MK + 1),
		     WAL_DEC_BAD);
	cr_assert_eq(decode_forged(32 + 1 + MV + 1, WAL_PUT, 0, 1, MV + 1, 1, 32 + 2 + MV),
		     WAL_DEC_BAD);
	cr_assert_eq(decode_forged(32 + MK + 1, WAL_DEL, 0, MK + 1, 0, 1, 32 + MK + 1),
		     WAL_DEC_BAD);

	/* Fields that contradict the type. */
	cr_assert_eq(decode_forged(32, WAL_PUT, 0, 0, 0, 1, 32), WAL_DEC_BAD, "put, empty key");
	cr_assert_eq(decode_forged(32, WAL_DEL, 0, 0, 0, 1, 32), WAL_DEC_BAD, "delete, empty key");
	cr_assert_eq(decode_forged(32 + 1 + 1, WAL_DEL, 0, 1, 1, 1, 40), WAL_DEC_BAD,
		     "delete with a value");
	cr_assert_eq(decode_forged(32 + 1, WAL_NOP, 0, 1, 0, 1, 40), WAL_DEC_BAD,
		     "no-op with a key");
	cr_assert_eq(decode_forged(32 + 1, WAL_NOP, 0, 0, 1, 1, 40), WAL_DEC_BAD,
		     "no-op with a value");
	for (unsigned t = 0; t < 256; t++)
		if (t != WAL_PUT && t != WAL_DEL && t != WAL_NOP)
			cr_assert_eq(decode_forged(32 + 2, (uint8_t)t, 0, 1, 1, 1, 40), WAL_DEC_BAD,
				     "type %u accepted", t);
	cr_assert_eq(decode_forged(32 + 2, WAL_PUT, 0, 1, 1, 0, 40), WAL_DEC_BAD, "seq 0");
	cr_assert_eq(decode_forged(32 + 2, WAL_PUT, 1, 1, 1, 1, 40), WAL_DEC_BAD, "flags 1");
	cr_assert_eq(decode_forged(32 + 2, WAL_PUT, 0x80, 1, 1, 1, 40), WAL_DEC_BAD, "flags 0x80");

	/* Lengths that disagree with the fields, or with the room available. */
	cr_assert_eq(decode_forged(31, WAL_NOP, 0, 0, 0, 1, 40), WAL_DEC_BAD, "len < header");
	cr_assert_eq(decode_forged(8, WAL_NOP, 0, 0, 0, 1, 40), WAL_DEC_BAD, "len 8");
	cr_assert_eq(decode_forged(32 + 3, WAL_PUT, 0, 1, 1, 1, 40), WAL_DEC_BAD, "len too big");
	cr_assert_eq(decode_forged(32 + 1, WAL_PUT, 0, 1, 1, 1, 40), WAL_DEC_BAD, "len too small");
	cr_assert_eq(decode_forged(32 + 2, WAL_PUT, 0, 1, 1, 1, 33), WAL_DEC_BAD, "len > avail");
	cr_assert_eq(decode_forged(0xffffffffu, WAL_PUT, 0, 1, 1, 1, 64), WAL_DEC_BAD, "len ~0");
	cr_assert_eq(decode_forged(32 + 1, WAL_PUT, 0, 1, 0xffffffe0u, 1, 64), WAL_DEC_BAD,
		     "klen + vlen wrapping around");
}

Test(record, random_bytes_never_overread)
{
	uint32_t seed = test_seed();
	uint64_t s = 99;

	/* Arbitrary bytes with plausible lengths up front: decode must stay within avail. */
	for (int iter = 0; iter < 20000; iter++) {
		size_t n = rnd(&s) % 200;
		struct tail_buf b = tail_alloc(n);
		struct wal_rec r;
		const char *why;
		enum wal_decode d;

		for (size_t i = 0; i < n; i++)
			b.p[i] = (unsigned char)rnd(&s);
		if (n >= 4 && iter % 2) {
			uint32_t len = (uint32_t)(rnd(&s) % (n + 40));

			memcpy(b.p, &len, 4);
		}
		if (n >= 24 && iter % 3 == 0) {
			b.p[18] = (unsigned char)(rnd(&s) % 64);
			b.p[19] = 0;
			memset(b.p + 20, 0, 4);
			b.p[20] = (unsigned char)(rnd(&s) % 64);
		}
		d = pkv__walrec_decode(b.p, n, seed, &r, &why);
		cr_assert(d == WAL_DEC_BAD || d == WAL_DEC_END || d == WAL_DEC_OK);
		if (d == WAL_DEC_OK)
			cr_assert_leq(32 + (size_t)r.klen + r.vlen, n);
		free(b.base);
	}
}
