/* SPDX-License-Identifier: MIT */
/*
 * snapshot.c - snapshot writer, in-place mmap reader and index probe, file names, and loading
 * the newest snapshot at open.
 *
 * Rules:
 *  N.1  A snapshot is written with ordinary writes to a temporary name, fsynced, and only then
 *       renamed (compact.c); it is only ever read through a read-only mapping, so a full disk
 *       is an error from write(), never a SIGBUS.
 *  N.2  Opening checks the header checksum and that every region lies inside the file; nothing
 *       else is parsed, so an open costs O(1) whatever the size. The probe re-checks each record
 *       it follows against the data region's bounds, so damaged bytes under a valid header never
 *       cause a read outside the mapping. pkv__snap_verify checks every checksum there is.
 *  N.3  The index is ordered by the hash's top bits; the live map picks shards by the same top
 *       bits, so one shard's keys sit together in the index.
 *  N.4  A probe answers only from checked bytes: each index page it reads is checked against
 *       its CRC the first time any probe reads it (a bit per page remembers it), a returned
 *       record against its own CRC, and so is a record whose tag matched but whose key did not
 *       (a damaged key must not turn into a miss). Any mismatch is PKV_ECORRUPT for that key;
 *       keys whose path is intact are still served.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "crc32c.h"
#include "errors.h"
#include "fs.h"
#include "internal.h"
#include "snapshot.h"

#define STAGE_BYTES (1u << 20)

static bool region_ok(uint64_t off, uint64_t len, uint64_t file)
{
	return off <= file && len <= file - off;
}

int pkv__snap_open(const char *path, uint64_t hash_seed, struct pkv_snap **out, const char **why)
{
	struct snap_hdr_disk h;
	struct pkv_snap *s = NULL;
	off_t size;
	void *map;
	int fd, r;

	fd = pkv__fs->open(path, O_RDONLY, 0);
	if (fd < 0)
		return fd;
	r = pkv__fs->fstat_size(fd, &size);
	if (r < 0)
		goto out;
	r = PKV_ECORRUPT;
	if ((uint64_t)size < SNAP_HDR_BYTES) {
		*why = "file shorter than the snapshot header";
		goto out;
	}
	{
		ssize_t n = pkv__fs_pread_all(fd, &h, sizeof(h), 0);
		if (n < 0) {
			r = (int)n; /* an I/O error, not damage */
			goto out;
		}
		if (n != (ssize_t)sizeof(h)) {
			*why = "cannot read the snapshot header";
			goto out;
		}
	}
	if (memcmp(h.magic, SNAP_MAGIC, sizeof(h.magic)) != 0) {
		*why = "bad snapshot magic";
		goto out;
	}
	if (h.hdr_crc != pkv__crc32c(0, &h, offsetof(struct snap_hdr_disk, hdr_crc))) {
		*why = "snapshot header checksum mismatch";
		goto out;
	}
	if (h.version < SNAP_VERSION_MIN || h.version > SNAP_VERSION || h.flags != 0) {
		*why = "unknown snapshot format version";
		goto out;
	}
	if (h.file_bytes != (uint64_t)size || h.data_off != SNAP_HDR_BYTES ||
	    !region_ok(h.data_off, h.data_bytes, h.file_bytes) || h.index_off % 8 != 0 ||
	    h.index_off < h.data_off + h.data_bytes || h.nslots < 16 ||
	    (h.nslots & (h.nslots - 1)) != 0 || h.nslots > (1ull << 40) ||
	    !region_ok(h.index_off, h.nslots * 8, h.file_bytes) || h.count > h.nslots / 2 ||
	    h.data_bytes / 24 < h.count || h.max_seq < h.seq ||
	    h.pcrc_off != h.index_off + h.nslots * 8 ||
	    !region_ok(h.pcrc_off, SNAP_NPAGES(h.nslots) * 4, h.file_bytes)) {
		*why = "snapshot regions disagree with the file size";
		goto out;
	}
	if (h.hash_seed != hash_seed) {
		*why = "snapshot was hashed with another seed";
		goto out;
	}
	map = pkv__fs->mmap((size_t)size, PROT_READ, fd, 0);
	if (map == NULL) {
		r = -errno;
		goto out;
	}
	s = calloc(1, sizeof(*s));
	if (s == NULL || (s->path = strdup(path)) == NULL ||
	    (s->checked = calloc((SNAP_NPAGES(h.nslots) + 63) / 64, sizeof(uint64_t))) == NULL) {
		if (s)
			free(s->path);
		free(s);
		pkv__fs->munmap(map, (size_t)size);
		r = -ENOMEM;
		goto out;
	}
	s->map = map;
	s->len = (size_t)size;
	s->version = h.version;
	s->rec_flags = h.version >= 3 ? SNAP_REC_EXPIRES : 0; /* version 2 records have none */
	s->expires_from = h.version >= 3 ? 1 : 0;
	s->index = (const uint64_t *)(s->map + h.index_off);
	s->pcrc = (const uint32_t *)(s->map + h.pcrc_off);
	s->mask = h.nslots - 1;
	s->shift = (unsigned)(64 - __builtin_ctzll(h.nslots));
	s->data = s->map;
	s->data_bytes = h.data_bytes;
	s->seq = h.seq;
	s->max_seq = h.max_seq;
	s->count = h.count;
	s->salt = h.salt;
	*out = s;
	r = 0;
out:
	pkv__fs->close(fd); /* the mapping keeps the file */
	return r;
}

void pkv__snap_close(struct pkv_snap *s)
{
	if (s == NULL)
		return;
	pkv__fs->munmap((void *)s->map, s->len);
	free(s->checked);
	free(s->path);
	free(s);
}

/* The record at absolute offset @off if it lies wholly inside the data region (N.2). */
static const struct snap_rec_disk *rec_at(const struct pkv_snap *s, uint64_t off)
{
	const uint64_t end = SNAP_HDR_BYTES + s->data_bytes;
	const struct snap_rec_disk *r;

	if (off < SNAP_HDR_BYTES || off > end || end - off < SNAP_REC_HDR ||
	    off % 8 != 0)
		return NULL;
	r = (const struct snap_rec_disk *)(s->data + off);
	/* A flag the file's version does not know is damage; the expiry's 8 bytes must lie
	 * inside the records too (its version may carry them). */
	if ((r->flags & ~s->rec_flags) != 0 ||
	    (uint64_t)r->klen + r->vlen + pkv__snap_rec_tail(r) > end - off - SNAP_REC_HDR)
		return NULL;
	return r;
}

bool pkv__snap_rec_ok(const struct snap_rec_disk *r)
{
	uint32_t c = pkv__crc32c(0, r, offsetof(struct snap_rec_disk, crc));

	return pkv__crc32c(c, r->data, (size_t)r->klen + r->vlen + pkv__snap_rec_tail(r)) == r->crc;
}

/* Does index page @p match its CRC? */
static bool ipage_crc_ok(const struct pkv_snap *s, uint64_t p)
{
	const uint64_t bytes = (s->mask + 1) * 8, off = p * SNAP_IPAGE;
	const uint64_t len = bytes - off < SNAP_IPAGE ? bytes - off : SNAP_IPAGE;

	return pkv__crc32c(0, (const unsigned char *)s->index + off, len) == s->pcrc[p];
}

/* N.4: has the index page holding slot @pos been checked, or does it check now? */
static bool ipage_ok(const struct pkv_snap *s, uint64_t pos)
{
	const uint64_t p = pos / SNAP_IPAGE_SLOTS, bit = 1ull << (p % 64);
	uint64_t *word = &s->checked[p / 64];

	/* Relaxed is enough: the bit only says that immutable bytes were found intact. */
	if (__atomic_load_n(word, __ATOMIC_RELAXED) & bit)
		return true;
	if (!ipage_crc_ok(s, p))
		return false;
	__atomic_fetch_or(word, bit, __ATOMIC_RELAXED);
	return true;
}

int pkv__snap_find(const struct pkv_snap *s, uint64_t hash, const void *key, size_t klen,
		   const struct snap_rec_disk **out)
{
	uint64_t pos = hash >> s->shift;
	const uint64_t tag = SNAP_TAG(hash);

	*out = NULL;
	if (!ipage_ok(s, pos))
		return PKV_ECORRUPT;
	for (uint64_t n = 0; n <= s->mask; n++) {
		uint64_t slot = s->index[pos];

		if (slot == 0)
			return PKV_NOTFOUND;
		if ((slot & ~SNAP_OFF_MASK) == tag) {
			const struct snap_rec_disk *r = rec_at(s, (slot & SNAP_OFF_MASK) * 8);

			/* The index was intact, so the record is what is damaged: it may be ours. */
			if (r == NULL || !pkv__snap_rec_ok(r))
				return PKV_ECORRUPT;
			if (r->klen == klen && memcmp(r->data, key, klen) == 0) {
				*out = r;
				return 0;
			}
		}
		pos = (pos + 1) & s->mask;
		if (pos % SNAP_IPAGE_SLOTS == 0 && !ipage_ok(s, pos))
			return PKV_ECORRUPT;
	}
	return PKV_NOTFOUND; /* a full index: only a damaged one (count <= nslots / 2) */
}

const struct snap_rec_disk *pkv__snap_next(const struct pkv_snap *s, uint64_t *off)
{
	const struct snap_rec_disk *r;

	if (*off == 0)
		*off = SNAP_HDR_BYTES;
	if (*off >= SNAP_HDR_BYTES + s->data_bytes)
		return NULL;
	r = rec_at(s, *off);
	if (r == NULL)
		return NULL;
	*off += SNAP_REC_SIZE(r->klen, r->vlen + pkv__snap_rec_tail(r));
	return r;
}

int pkv__snap_verify(const struct pkv_snap *s, const char **why)
{
	const struct snap_hdr_disk *h = (const void *)s->map;
	uint64_t off = 0, n = 0;
	const struct snap_rec_disk *r;

	if (pkv__crc32c(0, s->map + SNAP_HDR_BYTES, s->data_bytes) != h->data_crc) {
		*why = "snapshot data checksum mismatch";
		return PKV_ECORRUPT;
	}
	if (pkv__crc32c(0, s->index, (s->mask + 1) * 8) != h->index_crc) {
		*why = "snapshot index checksum mismatch";
		return PKV_ECORRUPT;
	}
	for (uint64_t p = 0; p < SNAP_NPAGES(s->mask + 1); p++) {
		if (!ipage_crc_ok(s, p)) {
			*why = "snapshot index page checksum mismatch";
			return PKV_ECORRUPT;
		}
	}
	while ((r = pkv__snap_next(s, &off)) != NULL) {
		if (r->klen == 0 || r->klen > PKV_MAX_KEY || r->vlen > PKV_MAX_VALUE ||
		    (r->flags & ~s->rec_flags) != 0 || r->seq > s->max_seq || r->seq == 0 ||
		    ((r->flags & SNAP_REC_EXPIRES) && pkv__snap_rec_expires(r) == 0)) {
			*why = "snapshot record out of range";
			return PKV_ECORRUPT;
		}
		if (!pkv__snap_rec_ok(r)) {
			*why = "snapshot record checksum mismatch";
			return PKV_ECORRUPT;
		}
		n++;
	}
	if (off != SNAP_HDR_BYTES + s->data_bytes || n != s->count) {
		*why = "snapshot record count or layout mismatch";
		return PKV_ECORRUPT;
	}
	for (uint64_t i = 0, used = 0; i <= s->mask; i++) {
		if (s->index[i] == 0)
			continue;
		if (rec_at(s, (s->index[i] & SNAP_OFF_MASK) * 8) == NULL || ++used > n) {
			*why = "snapshot index points outside its records";
			return PKV_ECORRUPT;
		}
	}
	return 0;
}

/* ---- writer ---------------------------------------------------------------------------- */

struct snap_ent {
	uint64_t hash;
	uint64_t off;
};

struct snap_writer {
	int fd;
	char *path;
	struct snap_hdr_disk h;
	unsigned char *stage;
	size_t staged;
	uint64_t written; /* data bytes already written to the file */
	uint32_t data_crc;
	struct snap_ent *ents;
	size_t nents, capents;
};

int pkv__snapw_begin(struct snap_writer **out, const char *tmp_path, uint64_t seq,
		     uint64_t hash_seed, uint64_t salt)
{
	struct snap_writer *w = calloc(1, sizeof(*w));

	if (w == NULL)
		return -ENOMEM;
	w->path = strdup(tmp_path);
	w->stage = malloc(STAGE_BYTES);
	if (w->path == NULL || w->stage == NULL) {
		free(w->path);
		free(w->stage);
		free(w);
		return -ENOMEM;
	}
	w->fd = pkv__fs->open(tmp_path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (w->fd < 0) {
		int r = w->fd;
		free(w->path);
		free(w->stage);
		free(w);
		return r;
	}
	memcpy(w->h.magic, SNAP_MAGIC, sizeof(w->h.magic));
	w->h.version = SNAP_VERSION;
	w->h.seq = seq;
	w->h.hash_seed = hash_seed;
	w->h.salt = salt;
	w->h.data_off = SNAP_HDR_BYTES;
	*out = w;
	return 0;
}

static int stage_flush(struct snap_writer *w)
{
	int r;

	if (w->staged == 0)
		return 0;
	w->data_crc = pkv__crc32c(w->data_crc, w->stage, w->staged);
	r = pkv__fs_pwrite_all(w->fd, w->stage, w->staged, (off_t)(SNAP_HDR_BYTES + w->written));
	w->written += w->staged;
	w->staged = 0;
	return r;
}

int pkv__snapw_add(struct snap_writer *w, uint64_t hash, uint64_t seq, const void *key,
		   uint32_t klen, const void *val, uint32_t vlen)
{
	return pkv__snapw_add_x(w, hash, seq, key, klen, val, vlen, 0);
}

int pkv__snapw_add_x(struct snap_writer *w, uint64_t hash, uint64_t seq, const void *key,
		     uint32_t klen, const void *val, uint32_t vlen, uint64_t expires_ms)
{
	size_t tail = expires_ms ? sizeof(expires_ms) : 0;
	size_t size = SNAP_REC_SIZE(klen, vlen + tail);
	struct snap_rec_disk rh = { .seq = seq, .vlen = vlen, .klen = (uint16_t)klen,
				    .flags = expires_ms ? SNAP_REC_EXPIRES : 0 };
	int r;

	rh.crc = pkv__crc32c(0, &rh, offsetof(struct snap_rec_disk, crc));
	rh.crc = pkv__crc32c(rh.crc, key, klen);
	rh.crc = pkv__crc32c(rh.crc, val, vlen);
	if (tail)
		rh.crc = pkv__crc32c(rh.crc, &expires_ms, tail);

	if (w->nents == w->capents) {
		size_t ncap = w->capents ? w->capents * 2 : 4096;
		struct snap_ent *ne = realloc(w->ents, ncap * sizeof(*ne));
		if (ne == NULL)
			return -ENOMEM;
		w->ents = ne;
		w->capents = ncap;
	}
	w->ents[w->nents].hash = hash;
	w->ents[w->nents].off = SNAP_HDR_BYTES + w->written + w->staged;
	w->nents++;

	if (w->staged + size > STAGE_BYTES) {
		r = stage_flush(w);
		if (r < 0)
			return r;
	}
	if (size > STAGE_BYTES) { /* a value larger than the stage: write it through */
		unsigned char *big = calloc(1, size);
		if (big == NULL)
			return -ENOMEM;
		memcpy(big, &rh, SNAP_REC_HDR);
		memcpy(big + SNAP_REC_HDR, key, klen);
		if (vlen)
			memcpy(big + SNAP_REC_HDR + klen, val, vlen);
		if (tail)
			memcpy(big + SNAP_REC_HDR + klen + vlen, &expires_ms, tail);
		w->data_crc = pkv__crc32c(w->data_crc, big, size);
		r = pkv__fs_pwrite_all(w->fd, big, size, (off_t)(SNAP_HDR_BYTES + w->written));
		w->written += size;
		free(big);
		return r;
	}
	memcpy(w->stage + w->staged, &rh, SNAP_REC_HDR);
	memcpy(w->stage + w->staged + SNAP_REC_HDR, key, klen);
	if (vlen)
		memcpy(w->stage + w->staged + SNAP_REC_HDR + klen, val, vlen);
	if (tail)
		memcpy(w->stage + w->staged + SNAP_REC_HDR + klen + vlen, &expires_ms, tail);
	memset(w->stage + w->staged + SNAP_REC_HDR + klen + vlen + tail, 0,
	       size - SNAP_REC_HDR - klen - vlen - tail);
	w->staged += size;
	return 0;
}

static void writer_free(struct snap_writer *w)
{
	if (w->fd >= 0)
		pkv__fs->close(w->fd);
	free(w->ents);
	free(w->stage);
	free(w->path);
	free(w);
}

void pkv__snapw_abort(struct snap_writer *w)
{
	if (w == NULL)
		return;
	pkv__fs->unlink(w->path);
	writer_free(w);
}

int pkv__snapw_finish(struct snap_writer *w, uint64_t max_seq)
{
	uint64_t nslots = 16, *index = NULL, npages;
	uint32_t *pcrc = NULL;
	unsigned shift;
	int r;

	r = stage_flush(w);
	if (r < 0)
		goto fail;
	while (nslots < 2 * (uint64_t)w->nents)
		nslots <<= 1;
	shift = (unsigned)(64 - __builtin_ctzll(nslots));
	npages = SNAP_NPAGES(nslots);
	index = calloc(nslots, sizeof(*index));
	pcrc = calloc(npages, sizeof(*pcrc));
	if (index == NULL || pcrc == NULL) {
		r = -ENOMEM;
		goto fail;
	}
	for (size_t i = 0; i < w->nents; i++) {
		uint64_t pos = w->ents[i].hash >> shift; /* N.3: the hash's top bits */

		while (index[pos] != 0)
			pos = (pos + 1) & (nslots - 1);
		index[pos] = (w->ents[i].off / 8) | SNAP_TAG(w->ents[i].hash);
	}
	w->h.count = w->nents;
	w->h.max_seq = max_seq > w->h.seq ? max_seq : w->h.seq;
	w->h.data_bytes = w->written;
	w->h.index_off = (SNAP_HDR_BYTES + w->written + 4095) & ~(uint64_t)4095;
	w->h.nslots = nslots;
	w->h.pcrc_off = w->h.index_off + nslots * 8;
	w->h.file_bytes = w->h.pcrc_off + npages * 4;
	w->h.data_crc = w->data_crc;
	w->h.index_crc = pkv__crc32c(0, index, nslots * 8);
	for (uint64_t p = 0; p < npages; p++) {
		uint64_t off = p * SNAP_IPAGE, len = nslots * 8 - off;

		pcrc[p] = pkv__crc32c(0, (unsigned char *)index + off,
				      len < SNAP_IPAGE ? len : SNAP_IPAGE);
	}
	w->h.hdr_crc = pkv__crc32c(0, &w->h, offsetof(struct snap_hdr_disk, hdr_crc));
	r = pkv__fs_pwrite_all(w->fd, index, nslots * 8, (off_t)w->h.index_off);
	if (r == 0)
		r = pkv__fs_pwrite_all(w->fd, pcrc, npages * 4, (off_t)w->h.pcrc_off);
	if (r == 0) {
		/* Zero padding between data and index comes from the file being sparse there. */
		r = pkv__fs_pwrite_all(w->fd, &w->h, sizeof(w->h), 0);
	}
	if (r == 0) {
		unsigned char zero[SNAP_HDR_BYTES - sizeof(w->h)];
		memset(zero, 0, sizeof(zero));
		r = pkv__fs_pwrite_all(w->fd, zero, sizeof(zero), sizeof(w->h));
	}
	if (r == 0)
		r = pkv__fs->fsync(w->fd); /* N.1: contents and size durable before the rename */
	free(index);
	free(pcrc);
	index = NULL;
	pcrc = NULL;
	if (r < 0)
		goto fail;
	writer_free(w);
	return 0;
fail:
	free(index);
	free(pcrc);
	pkv__snapw_abort(w);
	return r;
}

int pkv__snap_range(const struct pkv_snap *s, uint64_t lo, uint64_t hi,
		    int (*fn)(void *arg, const struct snap_rec_disk *r), void *arg)
{
	const uint64_t first = lo >> s->shift, last = hi >> s->shift;
	uint64_t p = first;
	int rc;

	/*
	 * Linear probing from the hash's top bits: a key with home slot h sits in the run of full
	 * slots that starts at or before h, at or after h. So every key whose home lies in
	 * [first, last] is in the slots from first up to the first empty slot at or after last
	 * (wrapping past the end of the index). Keys whose home is before first can share those
	 * slots: the caller filters by hash.
	 */
	if (!ipage_ok(s, p & s->mask))
		return PKV_ECORRUPT;
	for (uint64_t n = 0; n <= s->mask; n++, p++) {
		uint64_t slot = s->index[p & s->mask];

		if (slot == 0) {
			if (p >= last)
				break;
		} else {
			const struct snap_rec_disk *r = rec_at(s, (slot & SNAP_OFF_MASK) * 8);

			if (r == NULL || !pkv__snap_rec_ok(r))
				return PKV_ECORRUPT;
			rc = fn(arg, r);
			if (rc != 0)
				return rc;
		}
		if (((p + 1) & s->mask) % SNAP_IPAGE_SLOTS == 0 && !ipage_ok(s, (p + 1) & s->mask))
			return PKV_ECORRUPT;
	}
	return 0;
}

/* ---- names, and loading the newest ---- */

int pkv__snap_parse_name(const char *name, uint64_t *seq, bool *tmp)
{
	size_t len = strlen(name);
	unsigned long long v = 0;

	if (len < 21)
		return -1;
	for (int i = 0; i < 20; i++) {
		if (name[i] < '0' || name[i] > '9')
			return -1;
		v = v * 10 + (unsigned)(name[i] - '0');
	}
	if (strcmp(name + 20, ".snap") == 0)
		*tmp = false;
	else if (strcmp(name + 20, ".tmp") == 0)
		*tmp = true;
	else
		return -1;
	*seq = v;
	return 0;
}

void pkv__snap_path(char *buf, size_t n, const char *dir, uint64_t seq, const char *ext)
{
	snprintf(buf, n, "%s/%020llu.%s", dir, (unsigned long long)seq, ext);
}

int pkv__snap_load(const char *snap_dir, const char *store_dir, bool readonly,
		   const struct pkv_log *log, struct pkv_snap **base, uint64_t *seq_out)
{
	DIR *d = opendir(snap_dir);
	struct dirent *e;
	uint64_t *seqs = NULL, best = 0;
	size_t n = 0, cap = 0;
	char path[4096];
	const char *why = NULL;
	int r = 0;

	*seq_out = 0;
	if (d == NULL) {
		if (errno == ENOENT)
			return 0;
		r = -errno;
		pkv__logf(log, PKV_LOG_ERROR, "open: cannot read %s: %s", snap_dir, pkv_strerror(r));
		return r;
	}
	while ((e = readdir(d)) != NULL) {
		uint64_t seq;
		bool tmp;

		if (e->d_name[0] == '.')
			continue;
		if (pkv__snap_parse_name(e->d_name, &seq, &tmp) < 0) {
			size_t len = strlen(e->d_name);
			if (len > 5 && strcmp(e->d_name + len - 5, ".snap") == 0) {
				pkv__logf(log, PKV_LOG_ERROR,
					  "open: %s/snap/%s: file name is not <20-digit seq>.snap",
					  store_dir, e->d_name);
				r = PKV_ECORRUPT;
				break;
			}
			continue;
		}
		if (tmp) { /* compact.c C.6: an unfinished compaction */
			if (!readonly) {
				snprintf(path, sizeof(path), "%s/%s", snap_dir, e->d_name);
				pkv__fs->unlink(path);
			}
			continue;
		}
		if (n == cap) {
			uint64_t *ns = realloc(seqs, (cap = cap ? cap * 2 : 4) * sizeof(*ns));
			if (ns == NULL) {
				r = -ENOMEM;
				break;
			}
			seqs = ns;
		}
		seqs[n++] = seq;
		if (seq > best)
			best = seq;
	}
	closedir(d);
	if (r == 0 && n > 0) {
		pkv__snap_path(path, sizeof(path), snap_dir, best, "snap");
		r = pkv__snap_open(path, PKV_HASH_SEED, base, &why);
		if (r == PKV_ECORRUPT)
			pkv__logf(log, PKV_LOG_ERROR, "open: %s: %s", path, why);
		else if (r < 0)
			pkv__logf(log, PKV_LOG_ERROR, "open: cannot map %s: %s", path,
				  pkv_strerror(r));
		if (r == 0 && (*base)->seq != best) {
			pkv__logf(log, PKV_LOG_ERROR, "open: %s: header says seq %" PRIu64, path,
				  (*base)->seq);
			r = PKV_ECORRUPT;
		}
		if (r == 0)
			*seq_out = best;
	}
	/* Older snapshots are debris of a compaction that stopped before deleting them
	 * (compact.c C.6). */
	for (size_t i = 0; r == 0 && i < n && !readonly; i++) {
		if (seqs[i] == best)
			continue;
		pkv__snap_path(path, sizeof(path), snap_dir, seqs[i], "snap");
		pkv__fs->unlink(path);
	}
	free(seqs);
	return r;
}
