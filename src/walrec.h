/* SPDX-License-Identifier: MIT */
/*
 * walrec.h - the WAL codec: segment header and record (format: docs/format.md). Its file and
 * its functions (pkv__walrec_*) share one name; the in-memory record (struct pkv_rec) is the
 * map's (map.h).
 *
 * Pure functions over byte buffers: no I/O, no allocation, no global state. Every decoder takes
 * the number of bytes it may look at and never reads past it, whatever the bytes say; this file
 * is a fuzz target.
 */
#ifndef PKV_WALREC_H
#define PKV_WALREC_H

#include <stddef.h>
#include <stdint.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "on-disk structs are little-endian");

#define WAL_MAGIC "pkvWAL\0\0"
#define WAL_VERSION 1u
#define WAL_SEG_HDR 64u  /* bytes before the first record */
#define WAL_REC_HDR 32u  /* bytes of a record before its key */
#define WAL_ALIGN 8u

enum wal_rec_type {
	WAL_PUT = 1,
	WAL_DEL = 2,
	WAL_BATCH = 3, /* reserved: atomic batches */
	WAL_NOP = 4,   /* fills a sequence number whose record could not be written */
};

struct wal_seg_disk {
	char magic[8];
	uint32_t version;
	uint32_t lane;
	uint64_t segno;
	uint64_t salt;
	uint64_t seg_bytes;
	uint64_t reserved0;
	uint32_t hdr_crc;
	uint8_t reserved1[12];
};
_Static_assert(sizeof(struct wal_seg_disk) == WAL_SEG_HDR, "segment header size");
_Static_assert(offsetof(struct wal_seg_disk, lane) == 12, "lane offset");
_Static_assert(offsetof(struct wal_seg_disk, segno) == 16, "segno offset");
_Static_assert(offsetof(struct wal_seg_disk, salt) == 24, "salt offset");
_Static_assert(offsetof(struct wal_seg_disk, seg_bytes) == 32, "seg_bytes offset");
_Static_assert(offsetof(struct wal_seg_disk, hdr_crc) == 48, "hdr_crc offset");

struct wal_rec_disk {
	uint32_t len;
	uint32_t crc;
	uint64_t seq;
	uint8_t type;
	uint8_t flags;
	uint16_t klen;
	uint32_t vlen;
	uint64_t synced;
};
_Static_assert(sizeof(struct wal_rec_disk) == WAL_REC_HDR, "record header size");
_Static_assert(offsetof(struct wal_rec_disk, crc) == 4, "crc offset");
_Static_assert(offsetof(struct wal_rec_disk, seq) == 8, "seq offset");
_Static_assert(offsetof(struct wal_rec_disk, type) == 16, "type offset");
_Static_assert(offsetof(struct wal_rec_disk, klen) == 18, "klen offset");
_Static_assert(offsetof(struct wal_rec_disk, vlen) == 20, "vlen offset");
_Static_assert(offsetof(struct wal_rec_disk, synced) == 24, "synced offset");

/* A decoded record: key and value point into the buffer that was decoded. */
struct wal_rec {
	uint64_t seq;
	uint64_t synced;
	enum wal_rec_type type;
	uint32_t klen;
	uint32_t vlen;
	const void *key;
	const void *val;
	size_t size; /* bytes the record occupies, padding included (may run past the buffer
		      * when only padding was cut off) */
};

static inline size_t pkv__walrec_size(size_t klen, size_t vlen)
{
	return (WAL_REC_HDR + klen + vlen + (WAL_ALIGN - 1)) & ~(size_t)(WAL_ALIGN - 1);
}

/* Fill @h for a new segment, header CRC included. */
void pkv__walrec_seg_init(struct wal_seg_disk *h, uint32_t lane, uint64_t segno, uint64_t salt,
		       uint64_t seg_bytes);

/*
 * Check a segment header in the first @len bytes of @buf and copy it to @out.
 * Returns: 0; PKV_ECORRUPT (too short, bad magic, version or CRC); @why says which.
 */
int pkv__walrec_seg_check(const void *buf, size_t len, struct wal_seg_disk *out, const char **why);

/* The seed of every record CRC in the segment whose header is @h. */
uint32_t pkv__walrec_seed(const struct wal_seg_disk *h);

/*
 * Encode a record at @dst, which has room for pkv__walrec_size(@klen, @vlen) bytes (padding is
 * zeroed). The caller has validated lengths and type.
 */
void pkv__walrec_encode(void *dst, uint32_t seed, uint64_t seq, enum wal_rec_type type,
			 uint64_t synced, const void *key, uint32_t klen, const void *val,
			 uint32_t vlen);

enum wal_decode {
	WAL_DEC_OK = 1,   /* *out is a valid record */
	WAL_DEC_END = 0,  /* a zero length: the end of the segment's data */
	WAL_DEC_BAD = -1, /* torn or damaged: length out of range, CRC mismatch, bad fields */
};

/* Decode the record at @buf, reading at most @avail bytes. @why explains a WAL_DEC_BAD. */
enum wal_decode pkv__walrec_decode(const void *buf, size_t avail, uint32_t seed,
				    struct wal_rec *out, const char **why);

#endif /* PKV_WALREC_H */
