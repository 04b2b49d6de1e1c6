/* SPDX-License-Identifier: MIT */
/*
 * snapshot.h - snapshot files: a hash index and records, read in place through mmap.
 *
 * Format (docs/format.md has it byte by byte):
 *   [0, 4096)                header, struct snap_hdr_disk, zero padded
 *   [data_off, +data_bytes)  records, each struct snap_rec_disk + key + value, 8-aligned,
 *                            each with its own CRC32C, checked on every read
 *   [index_off, +nslots*8)   open-addressing index, linear probing from the hash's top bits;
 *                            slot = (record offset in data / 8) | (hash tag << 40), 0 = empty
 *   [pcrc_off, +npages*4)    a CRC32C of each 4 KiB page of the index
 * Every answer a probe gives is checked: the index pages it reads against their CRCs (each page
 * once per mapping), and the record it returns, or a record its tag matched but its key did not,
 * against the record's CRC. Damage on a key's path is reported as PKV_ECORRUPT, never as a miss
 * and never as other bytes.
 */
#ifndef PKV_SNAPSHOT_H
#define PKV_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "hash.h"

struct pkv_log;

#define SNAP_MAGIC "pkvSNAP\0"
#define SNAP_VERSION 3u     /* written: records may carry an expiry */
#define SNAP_VERSION_MIN 2u /* the oldest read (docs/format.md, Versions) */
#define SNAP_HDR_BYTES 4096u
#define SNAP_IPAGE 4096u /* index bytes covered by one page CRC */
#define SNAP_IPAGE_SLOTS (SNAP_IPAGE / 8u)
#define SNAP_OFF_BITS 40
#define SNAP_OFF_MASK ((1ull << SNAP_OFF_BITS) - 1)
#define SNAP_TAG(h) (((h) & 0xffffffull) << SNAP_OFF_BITS)

struct snap_hdr_disk {
	char magic[8];
	uint32_t version;
	uint32_t flags;      /* 0 */
	uint64_t seq;        /* S: complete up to and including this sequence number */
	uint64_t count;      /* records */
	uint64_t data_off;
	uint64_t data_bytes;
	uint64_t index_off;
	uint64_t nslots;     /* power of two */
	uint64_t hash_seed;  /* seed of the key hash (MurmurHash64A, as the live map) */
	uint64_t file_bytes; /* total size of the file */
	uint32_t data_crc;   /* crc32c(0, data region) */
	uint32_t index_crc;  /* crc32c(0, index region) */
	uint64_t salt;       /* the store's WAL salt, carried across compactions */
	uint64_t max_seq;    /* the newest version any record holds (>= seq: the walk is fuzzy) */
	uint64_t pcrc_off;   /* index page CRCs: index_off + nslots * 8 */
	uint8_t reserved[12];
	uint32_t hdr_crc;    /* crc32c(0, bytes 0..123) */
};
_Static_assert(sizeof(struct snap_hdr_disk) == 128, "snapshot header size");
_Static_assert(offsetof(struct snap_hdr_disk, seq) == 16, "seq offset");
_Static_assert(offsetof(struct snap_hdr_disk, nslots) == 56, "nslots offset");
_Static_assert(offsetof(struct snap_hdr_disk, data_crc) == 80, "data_crc offset");
_Static_assert(offsetof(struct snap_hdr_disk, salt) == 88, "salt offset");
_Static_assert(offsetof(struct snap_hdr_disk, max_seq) == 96, "max_seq offset");
_Static_assert(offsetof(struct snap_hdr_disk, pcrc_off) == 104, "pcrc_off offset");
_Static_assert(offsetof(struct snap_hdr_disk, hdr_crc) == 124, "hdr_crc offset");

/* Number of index page CRCs for @nslots slots. */
#define SNAP_NPAGES(nslots) (((nslots) * 8 + SNAP_IPAGE - 1) / SNAP_IPAGE)

struct snap_rec_disk {
	uint64_t seq;
	uint32_t vlen;
	uint16_t klen;
	uint16_t flags; /* SNAP_REC_EXPIRES (version 3) */
	uint32_t crc;   /* crc32c(crc32c(0, bytes 0..15), key, value and expires_ms) */
	unsigned char data[]; /* key[klen], value[vlen], [expires_ms], zero padding to 8 */
};
#define SNAP_REC_HDR 20u /* bytes before the key (sizeof is 24: the struct is padded) */
_Static_assert(offsetof(struct snap_rec_disk, data) == SNAP_REC_HDR, "snapshot record head size");
_Static_assert(offsetof(struct snap_rec_disk, crc) == 16, "snapshot record crc offset");

#define SNAP_REC_SIZE(klen, vlen) ((SNAP_REC_HDR + (uint64_t)(klen) + (vlen) + 7) & ~(uint64_t)7)

/* Record flag (version 3): 8 bytes of expires_ms (ms since the epoch, unaligned) follow the
 * value, covered by the record's CRC. */
#define SNAP_REC_EXPIRES 0x1u

/* Bytes after the value: the expiry, if the record has one. */
static inline uint64_t pkv__snap_rec_tail(const struct snap_rec_disk *r)
{
	return (r->flags & SNAP_REC_EXPIRES) ? 8u : 0u;
}

/* The record's expiry (ms since the epoch), or 0 if it never expires. */
static inline uint64_t pkv__snap_rec_expires(const struct snap_rec_disk *r)
{
	uint64_t e = 0;

	if (r->flags & SNAP_REC_EXPIRES)
		memcpy(&e, r->data + r->klen + r->vlen, sizeof(e));
	return e;
}

static inline const void *pkv__snap_rec_key(const struct snap_rec_disk *r)
{
	return r->data;
}

static inline const void *pkv__snap_rec_val(const struct snap_rec_disk *r)
{
	return r->data + r->klen;
}

/* Does the record's CRC match its bytes? (Its bounds were checked when it was found.) */
bool pkv__snap_rec_ok(const struct snap_rec_disk *r);

/* An open, mapped snapshot: the base image. Immutable; freed after a grace period. */
struct pkv_snap {
	const unsigned char *map;
	size_t len;
	const uint64_t *index;
	const uint32_t *pcrc;  /* CRC of each index page */
	uint64_t *checked;     /* bit per index page whose CRC matched (set once, relaxed atomics) */
	uint64_t mask;
	unsigned shift;        /* slot = hash >> shift */
	const unsigned char *data;
	uint64_t data_bytes;
	uint64_t seq;
	uint64_t max_seq;
	uint64_t count;
	uint64_t salt;
	uint32_t version;   /* of the file: SNAP_VERSION_MIN .. SNAP_VERSION */
	uint16_t rec_flags; /* the record flags its version allows */
	/* The earliest expiry among its records: 0 when none expires, 1 when unknown (a file
	 * opened, not just written, that may hold expiries). The writer of the file sets it. */
	uint64_t expires_from;
	char *path;
};

/*
 * Map and check the snapshot at @path: header checksum, version, and that every region lies
 * inside the file. Region checksums are checked by pkv__snap_verify, not here.
 * Returns 0; PKV_ECORRUPT (@why says what); -errno.
 */
int pkv__snap_open(const char *path, uint64_t hash_seed, struct pkv_snap **out, const char **why);

/* Unmap and free (no reader may still use it). NULL is a no-op. */
void pkv__snap_close(struct pkv_snap *s);

/* Check the region checksums, every index page and slot, and every record. 0 or PKV_ECORRUPT. */
int pkv__snap_verify(const struct pkv_snap *s, const char **why);

/*
 * Find @key (hash @hash) in @s. Never reads outside the mapping, whatever the bytes say, and
 * never answers from damaged bytes: every index page the probe reads matched its CRC, and the
 * record in *@out matched its own. Safe from any thread while @s is alive (inside a read-side
 * section for the current base); no lock, no syscall.
 * Returns 0 (*@out set); PKV_NOTFOUND; PKV_ECORRUPT (damage on the key's probe path: the key may
 * be there, its record may be the damaged one, or the index around it may be).
 */
int pkv__snap_find(const struct pkv_snap *s, uint64_t hash, const void *key, size_t klen,
		   const struct snap_rec_disk **out);

/* Iterate records: *@off starts at 0; returns NULL at the end (or at damage). */
const struct snap_rec_disk *pkv__snap_next(const struct pkv_snap *s, uint64_t *off);

/*
 * Call @fn for every record in the index slots that hold the keys whose hash lies in [@lo, @hi]
 * (a superset: keys of neighbouring hashes share the slots; the caller filters by hash). Each
 * index page read and each record matched its CRC. Safe like pkv__snap_find.
 * Returns 0; PKV_ECORRUPT (damage in those slots or records); or what @fn returned (non-zero).
 */
int pkv__snap_range(const struct pkv_snap *s, uint64_t lo, uint64_t hi,
		    int (*fn)(void *arg, const struct snap_rec_disk *r), void *arg);

/*
 * Prefetch hints for a coming pkv__snap_find of hash @h in @b (NULL: none): the index slot it
 * will read first, and (once that slot is in cache) the record the slot points at, if its tag
 * matches. They decode a slot without checking its page's CRC, which is harmless for a hint:
 * the offset is bounded by the mapping and nothing is read from it. Recovery's replay uses them.
 */
static inline void pkv__snap_prefetch_slot(const struct pkv_snap *b, uint64_t h)
{
	if (b)
		__builtin_prefetch(&b->index[h >> b->shift]);
}

static inline void pkv__snap_prefetch_rec(const struct pkv_snap *b, uint64_t h)
{
	uint64_t slot;

	if (b == NULL)
		return;
	slot = b->index[h >> b->shift];
	if (slot && (slot & ~SNAP_OFF_MASK) == SNAP_TAG(h) &&
	    (slot & SNAP_OFF_MASK) * 8 < b->len)
		__builtin_prefetch(b->data + (slot & SNAP_OFF_MASK) * 8);
}

/* ---- names, and loading the newest ---- */

/* "@dir/<@seq as 20 digits>.@ext" into @buf (@n bytes): ext "snap", or "tmp" while written. */
void pkv__snap_path(char *buf, size_t n, const char *dir, uint64_t seq, const char *ext);

/* Parse a file name of snap/: 0 (*@seq, *@tmp set) or -1 (not a snapshot's name). */
int pkv__snap_parse_name(const char *name, uint64_t *seq, bool *tmp);

/*
 * At open: remove snapshot debris in @snap_dir (*.tmp, snapshots older than the newest) unless
 * @readonly, map the newest one as *@base and return its sequence number in *@seq_out (0
 * without one). @store_dir names the store in messages, which go to @log.
 * Returns 0, PKV_ECORRUPT (logged with the file name) or -errno. On PKV_ECORRUPT *@base may be
 * set (the caller closes it).
 */
int pkv__snap_load(const char *snap_dir, const char *store_dir, bool readonly,
		   const struct pkv_log *log, struct pkv_snap **base, uint64_t *seq_out);

/* ---- writer ---- */

struct snap_writer;

/* Start writing @tmp_path for sequence number @seq. 0 or -errno. */
int pkv__snapw_begin(struct snap_writer **out, const char *tmp_path, uint64_t seq,
		     uint64_t hash_seed, uint64_t salt);
/* Append a record (the caller guarantees one record per key). 0 or -errno. */
int pkv__snapw_add(struct snap_writer *w, uint64_t hash, uint64_t seq, const void *key,
		   uint32_t klen, const void *val, uint32_t vlen);
/* pkv__snapw_add of a record that expires at @expires_ms (0: never). */
int pkv__snapw_add_x(struct snap_writer *w, uint64_t hash, uint64_t seq, const void *key,
		     uint32_t klen, const void *val, uint32_t vlen, uint64_t expires_ms);
/* Write index and header (with @max_seq), fsync the file. 0 or -errno. Frees the writer. */
int pkv__snapw_finish(struct snap_writer *w, uint64_t max_seq);
/* Abandon: close and unlink the temporary file. */
void pkv__snapw_abort(struct snap_writer *w);

#endif /* PKV_SNAPSHOT_H */
