/* SPDX-License-Identifier: MIT */
/*
 * recovery.c - replay the WAL lanes merged by sequence number; cut and report the torn tail.
 *
 * Rules (tests cite them):
 *  R.1  Every DIR/wal/LLL-SSSSSSSSSS.wal is a segment; *.tmp files are unfinished creations
 *       (wal.c W.1) and are removed. A segment whose header is unreadable, damaged, or
 *       disagrees with its name is damage, not a torn tail: PKV_ECORRUPT naming the file.
 *  R.2  A lane is read in segment-number order; its records must have strictly increasing
 *       sequence numbers (W.4); a decreasing one is PKV_ECORRUPT. A zero length ends a
 *       segment's data. The first record that fails its length or CRC check ends the lane.
 *  R.3  Lanes are merged by sequence number starting at base + 1 (the snapshot's S, or 1).
 *       Records <= base are already in the base image and skipped. Replay stops at the first
 *       missing sequence number: the state is always exactly a prefix of the write history.
 *  R.4  Everything after the stop, in every lane (records behind the missing number, the torn
 *       record, bytes after it), is discarded and reported: counts of records and bytes, the
 *       missing number, and each torn spot's file and offset, through the log callback and
 *       pkv_get_stats().
 *  R.5  Each record carries `synced`, the durable watermark when it was written. If any record
 *       that was read says that the missing number had been fdatasynced, that write was
 *       acknowledged as durable and has been destroyed since: PKV_ECORRUPT, never a silent loss.
 *  R.6  Before new sequence numbers are handed out, discarded records are removed from disk
 *       (the lane is cut after its last replayed record: later segments unlinked, the rest of
 *       the segment zeroed by truncate + fallocate, fdatasynced), so that they can never be
 *       mistaken later for the new records that reuse their numbers.
 *  R.7  Every lane of this open appends after its cut, in its last segment, whose tail past the
 *       cut is always zeroed first (R.6), so stale bytes can never follow a new record.
 *  R.8  Every segment replayed is fdatasynced before the open returns: what was recovered from
 *       the page cache after a process crash is then power-loss durable, and `synced` of new
 *       records may say so. The syncs come before any cut (R.6): a cut leaves a segment that
 *       looks clean (R.10), so an open that died between a cut and its syncs would otherwise
 *       let the next open skip them.
 *  R.9  A record is applied through the same plan as a live write (apply.c), and only if it is
 *       newer than the key's version in the snapshot base (compact.c C.2).
 *  R.10 A lane that pkv_close left clean (its last segment truncated to the end of its data
 *       after the final sync) needs no zeroing and no fdatasync: a clean reopen writes nothing.
 *  R.11 A batch record is applied whole, each op under the record's one sequence number, through
 *       the same plan as a live write (apply.c); a torn or damaged batch record fails its
 *       length or CRC check like any record (R.2), so a batch is replayed all or nothing. A
 *       clear record empties the map and disregards the base (apply.c pkv__apply_clear_locked);
 *       the records after it apply to an empty store.
 *  R.12 A record whose type its segment's format version cannot hold (docs/format.md,
 *       Versions: version 1 knew put, delete and no-op) is damage, handled as R.2 says.
 *  R.13 A lane whose last segment is of an older format version does not append to it: the
 *       segment is retired like a full one (deleted once a snapshot covers it), and the lane's
 *       next record starts a segment of the current version.
 *  R.14 The key count is exact when the open returns. A replayed put newer than the base's max_seq
 *       needs nothing from the base (R.9 holds whatever the base has), so its plan does not
 *       probe the base and leaves the count open; after the replay, if a base is still there,
 *       every shard's count is set from its entries (apply.c pkv__apply_recount_locked): the
 *       visible ones count, a key the base holds (a damaged copy counts) is already counted in
 *       keys_baseline. Without a base (none, or a clear record dropped it) every plan's count
 *       was exact and none is redone.
 *  R.15 A lane whose last segment is shorter than its allocated size was cut there by pkv_close
 *       after its final sync (R.10), or by an open's cut (R.6) after its syncs (R.8): every
 *       record in it had been made durable. Damage in such a lane with an intact record behind
 *       it (in its segment or a later one) therefore destroyed durable writes: PKV_ECORRUPT
 *       naming the file and offset, where a preallocated lane's damage is a torn tail (R.4).
 *       Damage at the very end of such a lane, with nothing intact behind it, cannot be told
 *       from a tear and stays one.
 * A read-only open changes nothing on disk: it replays and checks (R.1 - R.5, R.9, R.11, R.12,
 * R.14, R.15) and skips the repairs (R.6 - R.8, R.10, R.13).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "apply.h"
#include "store.h"
#include "errors.h"
#include "internal.h"
#include "fs.h"
#include "recovery.h"

struct rseg {
	uint32_t lane;
	uint64_t segno;
	char name[32];
	int fd;
	unsigned char *map;
	size_t maplen; /* readable bytes: min(file size, header seg_bytes) */
	off_t fsize;
	struct wal_seg_disk hdr;
	uint32_t seed;
	uint64_t max_seq; /* highest seq decoded in it */
};

struct rlane {
	uint32_t id;
	struct rseg **segs; /* sorted by segno */
	size_t nsegs;
	size_t si, off;     /* cursor: where `next` was decoded */
	struct wal_rec next;
	bool has;
	bool bad;
	size_t bad_si, bad_off;
	const char *why;
	bool bad_durable;         /* the damage destroyed records known durable (R.15) */
	uint64_t last_seq;
	size_t keep_si, keep_off; /* just after the last replayed (or pre-base) record */
	bool cut;                 /* something after keep must be removed (R.6) */
	bool clean;               /* closed cleanly: ends exactly at keep (R.10) */
};

struct rctx {
	struct pkv *db;
	struct rseg *segs;
	size_t nsegs, capsegs;
	struct rlane *lanes;
	size_t nlanes;
	uint64_t max_synced;
	int err;
};

static int seg_cmp(const void *a, const void *b)
{
	const struct rseg *x = a, *y = b;

	if (x->lane != y->lane)
		return x->lane < y->lane ? -1 : 1;
	return x->segno < y->segno ? -1 : x->segno > y->segno;
}

static int corrupt(struct rctx *c, const char *name, size_t off, const char *why)
{
	pkv__log(c->db, PKV_LOG_ERROR, "recovery: %s/wal/%s at offset %zu: %s", c->db->dir, name,
		 off, why);
	return PKV_ECORRUPT;
}

/* R.1: find, open and check every segment. */
static int scan_dir(struct rctx *c)
{
	struct pkv *db = c->db;
	DIR *d = opendir(db->wal.dir);
	struct dirent *e;
	char path[4096];
	int r = 0;

	if (d == NULL) {
		r = -errno;
		pkv__log(db, PKV_LOG_ERROR, "recovery: cannot read %s: %s", db->wal.dir,
			 pkv_strerror(r));
		return r;
	}
	while ((e = readdir(d)) != NULL) {
		struct rseg *s;
		uint32_t lane;
		uint64_t segno;
		bool tmp;
		const char *why;
		ssize_t n;
		int fd;

		if (e->d_name[0] == '.')
			continue;
		if (pkv__wal_seg_parse_name(e->d_name, &lane, &segno, &tmp) < 0) {
			size_t len = strlen(e->d_name);
			if (len > 4 && strcmp(e->d_name + len - 4, ".wal") == 0) {
				r = corrupt(c, e->d_name, 0, "file name is not LLL-SSSSSSSSSS.wal");
				break;
			}
			pkv__log(db, PKV_LOG_WARN, "recovery: ignoring unknown file wal/%s",
				 e->d_name);
			continue;
		}
		snprintf(path, sizeof(path), "%s/%s", db->wal.dir, e->d_name);
		if (tmp) {
			if (!db->readonly_open)
				pkv__fs->unlink(path); /* W.1 debris */
			continue;
		}
		if (c->nsegs == c->capsegs) {
			size_t ncap = c->capsegs ? c->capsegs * 2 : 16;
			struct rseg *ns = realloc(c->segs, ncap * sizeof(*ns));
			if (ns == NULL) {
				r = -ENOMEM;
				break;
			}
			c->segs = ns;
			c->capsegs = ncap;
		}
		s = &c->segs[c->nsegs];
		memset(s, 0, sizeof(*s));
		s->fd = -1;
		s->lane = lane;
		s->segno = segno;
		/* "LLL-SSSSSSSSSS.wal": the parse above accepted exactly 18 bytes */
		PKV_ASSERT(strlen(e->d_name) < sizeof(s->name));
		memcpy(s->name, e->d_name, strlen(e->d_name) + 1);
		fd = pkv__fs->open(path, db->readonly_open ? O_RDONLY : O_RDWR, 0);
		if (fd < 0) {
			r = fd;
			pkv__log(db, PKV_LOG_ERROR, "recovery: cannot open wal/%s: %s", s->name,
				 pkv_strerror(fd));
			break;
		}
		s->fd = fd;
		c->nsegs++;
		r = pkv__fs->fstat_size(fd, &s->fsize);
		if (r < 0)
			break;
		n = pkv__fs_pread_all(fd, &s->hdr, sizeof(s->hdr), 0);
		if (n < 0) {
			r = (int)n;
			break;
		}
		if (pkv__walrec_seg_check(&s->hdr, (size_t)n, &s->hdr, &why) < 0) {
			r = corrupt(c, s->name, 0, why);
			break;
		}
		if (s->hdr.lane != lane || s->hdr.segno != segno) {
			r = corrupt(c, s->name, 0, "segment header disagrees with the file name");
			break;
		}
		s->seed = pkv__walrec_seed(&s->hdr);
		s->maplen = (size_t)s->fsize < s->hdr.seg_bytes ? (size_t)s->fsize
								 : s->hdr.seg_bytes;
		s->map = pkv__fs->mmap(s->maplen, PROT_READ, fd, 0);
		if (s->map == NULL) {
			r = -errno;
			break;
		}
	}
	closedir(d);
	if (r < 0)
		return r;
	if (c->nsegs > 1)
		qsort(c->segs, c->nsegs, sizeof(*c->segs), seg_cmp);
	return 0;
}

static int build_lanes(struct rctx *c)
{
	size_t i = 0;

	c->lanes = calloc(c->nsegs ? c->nsegs : 1, sizeof(*c->lanes));
	if (c->lanes == NULL)
		return -ENOMEM;
	while (i < c->nsegs) {
		struct rlane *l = &c->lanes[c->nlanes++];
		size_t j = i;

		l->id = c->segs[i].lane;
		while (j < c->nsegs && c->segs[j].lane == l->id)
			j++;
		l->nsegs = j - i;
		l->segs = malloc(l->nsegs * sizeof(*l->segs));
		if (l->segs == NULL)
			return -ENOMEM;
		for (size_t k = 0; k < l->nsegs; k++)
			l->segs[k] = &c->segs[i + k];
		l->off = WAL_SEG_HDR;
		l->keep_off = WAL_SEG_HDR;
		i = j;
	}
	return 0;
}

/* Decode the lane's next record into l->next (R.2). 0 or PKV_ECORRUPT. */
static int lane_advance(struct rctx *c, struct rlane *l)
{
	l->has = false;
	while (l->si < l->nsegs && !l->bad) {
		struct rseg *s = l->segs[l->si];
		const char *why = NULL;
		enum wal_decode d;

		if (l->off >= s->maplen)
			d = WAL_DEC_END;
		else
			d = pkv__walrec_decode(s->map + l->off, s->maplen - l->off, s->seed,
						&l->next, &why);
		if (d == WAL_DEC_END) {
			l->si++;
			l->off = WAL_SEG_HDR;
			continue;
		}
		if (d == WAL_DEC_OK && !pkv__walrec_type_in_version(l->next.type, s->hdr.version)) {
			/* R.12: a record type its segment's version cannot hold is damage. */
			d = WAL_DEC_BAD;
			why = "record type newer than its segment's format version";
		}
		if (d == WAL_DEC_BAD) {
			l->bad = true;
			l->bad_si = l->si;
			l->bad_off = l->off;
			l->why = why;
			return 0;
		}
		if (l->next.seq <= l->last_seq)
			return corrupt(c, s->name, l->off,
				       "sequence numbers do not increase within the lane");
		l->last_seq = l->next.seq;
		s->max_seq = l->next.seq;
		if (l->next.synced > c->max_synced)
			c->max_synced = l->next.synced;
		l->has = true;
		return 0;
	}
	return 0;
}

/* R.9: apply one write (a record, or an op of a batch record) through the same plan as a live
 * write (apply.c). */
static int apply_one(struct pkv *db, enum wal_rec_type type, const void *key, uint32_t klen,
		     const void *val, uint32_t vlen, uint64_t expires_ms, uint64_t seq, uint64_t h)
{
	struct write_plan plan;
	struct pkv_rec *r = NULL;
	struct map_shard *s;
	int rc;

	s = pkv__map_shard(&db->map, h);
	if (type == WAL_PUT || type == WAL_PUTX) {
		r = pkv__rec_new_x(key, klen, val, vlen, type == WAL_PUTX ? expires_ms : 0);
		if (r == NULL)
			return -ENOMEM;
	}
	/* Single-threaded: the shard lock is not needed, the plan's rules are. */
	rc = pkv__apply_plan_locked(db, s, h, key, klen, r, seq, &plan);
	if (rc == PKV_NOTFOUND || (rc == 0 && plan.skip)) {
		rc = 0; /* a delete of an absent key, or a version the base already has */
		goto out;
	}
	if (rc == 0)
		rc = pkv__apply_commit_locked(db, s, h, key, klen, &plan, seq);
	if (rc == PKV_ECORRUPT)
		pkv__log(db, PKV_LOG_ERROR,
			 "recovery: %s: the snapshot's version of the key of seq %" PRIu64
			 " is damaged and may be newer: cannot tell which one holds (R.9)",
			 db->dir, seq);
out:
	if (plan.rec && plan.rec != r)
		pkv__rec_free(plan.rec);
	if (r && (rc < 0 || plan.skip || plan.rec == r))
		pkv__rec_free(r);
	return rc;
}

/*
 * R.11: a batch record is applied whole, op by op under its one sequence number (it was
 * decoded whole, so a torn one never gets here: R.2); a clear record empties the map and
 * disregards the base (apply.c), so the records after it apply to an empty store.
 */
static int apply(struct pkv *db, const struct wal_rec *w, uint64_t h)
{
	struct wal_op op;
	size_t off = 0;
	int rc = 0;

	switch (w->type) {
	case WAL_NOP:
		return 0;
	case WAL_CLEAR:
		pkv__apply_clear_locked(db);
		return 0;
	case WAL_BATCH:
		while (rc == 0 && pkv__walrec_batch_next(w, &off, &op))
			rc = apply_one(db, op.type, op.key, op.klen, op.val, op.vlen, op.expires_ms,
				       w->seq, pkv__map_hash(&db->map, op.key, op.klen));
		return rc;
	default:
		return apply_one(db, w->type, w->key, w->klen, w->val, w->vlen, w->expires_ms,
				 w->seq, h);
	}
}

/*
 * Replay is bound by cache misses: each record probes the live map, and a record that needs the
 * base (R.9, R.14: a delete, or a version not above the base's max_seq) the snapshot's index and
 * often a snapshot record. Records are applied RING behind the merge, and on their way the live
 * map's slot line and the index slot (at once) and the record it points at (halfway) are
 * prefetched, so several misses are in flight instead of one.
 */
#define RING 16

struct pending {
	struct wal_rec w;
	uint64_t hash;
	bool probes_base; /* its plan will look the key up in the base */
};

struct applier {
	struct pkv *db;
	const struct pkv_snap *base;
	struct pending ring[RING];
	unsigned head, n;
};

static int applier_pop(struct applier *a)
{
	struct pending *p = &a->ring[a->head];

	a->head = (a->head + 1) % RING;
	a->n--;
	return apply(a->db, &p->w, p->hash);
}

static int applier_drain(struct applier *a);

static int applier_push(struct applier *a, const struct wal_rec *w)
{
	struct pending *p;
	int r;

	if (a->n == RING) {
		r = applier_pop(a);
		if (r < 0)
			return r;
	}
	if (w->type == WAL_BATCH || w->type == WAL_CLEAR) {
		/* In order with the ring: what precedes first, then this one at once. */
		r = applier_drain(a);
		if (r == 0)
			r = apply(a->db, w, 0);
		a->base = pkv__store_base_rcu(a->db); /* a clear drops it */
		return r;
	}
	p = &a->ring[(a->head + a->n) % RING];
	p->w = *w;
	p->hash = 0;
	p->probes_base = false;
	if (w->type != WAL_NOP) {
		struct pkv_map *m = &a->db->map;
		const ck_ht_t *ht;

		p->hash = pkv__map_hash(m, w->key, w->klen);
		ht = &pkv__map_shard(m, p->hash)->ht;
		/* Single-threaded: no table is freed under the prefetch. */
		if (pkv__map_inline_ok(m))
			__builtin_prefetch(pkv__map_slot_line_rcu(ht, p->hash));
		p->probes_base = a->base && (w->type == WAL_DEL || w->seq <= a->base->max_seq);
		if (p->probes_base)
			pkv__snap_prefetch_slot(a->base, p->hash);
	}
	a->n++;
	if (a->n > RING / 2) {
		const struct pending *h = &a->ring[(a->head + a->n - 1 - RING / 2) % RING];

		if (h->probes_base)
			pkv__snap_prefetch_rec(a->base, h->hash);
	}
	return 0;
}

static int applier_drain(struct applier *a)
{
	int r = 0;

	while (a->n > 0 && r == 0)
		r = applier_pop(a);
	return r;
}

/* Last non-zero byte at or after @from in @s, rounded up to 8; @from if none. */
static size_t data_end(const struct rseg *s, size_t from)
{
	size_t end = s->maplen;

	while (end > from && s->map[end - 1] == 0)
		end--;
	return end > from ? (end + 7) & ~(size_t)7 : from;
}

/* R.4: count what lies after the stop in lane @l. */
static int count_discarded(struct rctx *c, struct rlane *l)
{
	struct pkv_recovery_report *rep = &c->db->rec;
	int r;

	while (l->has) {
		rep->discarded_records++;
		rep->discarded_bytes += l->next.size;
		l->cut = true;
		l->off += l->next.size;
		r = lane_advance(c, l);
		if (r < 0)
			return r;
	}
	if (l->bad) {
		struct rseg *s = l->segs[l->bad_si];
		struct rseg *last = l->segs[l->nsegs - 1];
		size_t end = data_end(s, l->bad_off);
		bool intact_behind = false;

		rep->discarded_bytes += end - l->bad_off;
		l->cut = true;
		/*
		 * Look for intact records behind the damage, 8 bytes at a time: they are discarded
		 * too, but their `synced` fields may prove that the damage destroyed a durable
		 * write (R.5), which a torn tail never does.
		 */
		for (size_t o = l->bad_off + WAL_ALIGN; o + WAL_REC_HDR <= end; o += WAL_ALIGN) {
			struct wal_rec rec;
			const char *why;

			if (pkv__walrec_decode(s->map + o, s->maplen - o, s->seed, &rec, &why) !=
			    WAL_DEC_OK)
				continue;
			rep->discarded_records++;
			intact_behind = true;
			if (rec.synced > c->max_synced)
				c->max_synced = rec.synced;
			o += rec.size - WAL_ALIGN;
		}
		pkv__log(c->db, PKV_LOG_WARN,
			 "recovery: torn tail in wal/%s at offset %zu (%s): %zu bytes discarded",
			 s->name, l->bad_off, l->why, end - l->bad_off);
		/* Segments after a torn one hold only records behind the tear. */
		for (size_t k = l->bad_si + 1; k < l->nsegs; k++) {
			struct rlane tail = { .id = l->id, .segs = l->segs, .nsegs = l->nsegs,
					      .si = k, .off = WAL_SEG_HDR };

			r = lane_advance(c, &tail);
			while (r == 0 && tail.has && tail.si == k) {
				intact_behind = true;
				rep->discarded_records++;
				rep->discarded_bytes += tail.next.size;
				tail.off += tail.next.size;
				r = lane_advance(c, &tail);
			}
			if (r < 0)
				return r;
			rep->discarded_bytes += data_end(l->segs[k], WAL_SEG_HDR) - WAL_SEG_HDR;
		}
		/* R.15: a lane cut short at a sync held only durable records. */
		l->bad_durable = intact_behind && (uint64_t)last->fsize < last->hdr.seg_bytes;
	}
	return 0;
}

/* R.3: merge the lanes from @base + 1, applying records until the first missing number. */
static int merge(struct rctx *c, uint64_t base, uint64_t *last_out)
{
	struct pkv_recovery_report *rep = &c->db->rec;
	struct applier *ap = calloc(1, sizeof(*ap));
	uint64_t expected = base + 1;
	int r = 0;

	if (ap == NULL)
		return -ENOMEM;
	ap->db = c->db;
	ap->base = c->db->base;
	for (size_t i = 0; i < c->nlanes && r == 0; i++)
		r = lane_advance(c, &c->lanes[i]);
	while (r == 0) {
		struct rlane *min = NULL;

		for (size_t i = 0; i < c->nlanes; i++) {
			struct rlane *l = &c->lanes[i];
			if (l->has && (min == NULL || l->next.seq < min->next.seq))
				min = l;
		}
		if (min == NULL)
			break;
		if (min->next.seq > expected) {
			rep->gap_seq = expected;
			break;
		}
		if (min->next.seq < expected && min->next.seq > base) {
			r = corrupt(c, min->segs[min->si]->name, min->off,
				    "sequence number appears twice");
			break;
		}
		if (min->next.seq == expected) {
			r = applier_push(ap, &min->next);
			if (r < 0)
				break;
			rep->recovered_records++;
			expected++;
		}
		min->off += min->next.size;
		min->keep_si = min->si;
		min->keep_off = min->off;
		r = lane_advance(c, min);
	}
	if (r == 0)
		r = applier_drain(ap);
	free(ap);
	if (r < 0)
		return r;
	pkv__apply_recount_locked(c->db); /* R.14 */
	*last_out = expected - 1;
	for (size_t i = 0; i < c->nlanes; i++) {
		r = count_discarded(c, &c->lanes[i]);
		if (r < 0)
			return r;
	}
	/*
	 * R.5: the first write not replayed is the missing number, or, when a lane ended in
	 * damage with nothing missing in front of it, the next number. If a record that was read
	 * says it had been synced, a durable write was destroyed.
	 */
	{
		uint64_t first_lost = rep->gap_seq;
		bool any_bad = false;

		for (size_t i = 0; i < c->nlanes; i++) {
			struct rlane *l = &c->lanes[i];

			any_bad |= l->bad;
			if (l->bad_durable) { /* R.15 */
				pkv__log(c->db, PKV_LOG_ERROR,
					 "recovery: %s/wal/%s: lane %u was closed after a sync, so its "
					 "records behind the damage were durable",
					 c->db->dir, l->segs[l->bad_si]->name, l->id);
				return corrupt(c, l->segs[l->bad_si]->name, l->bad_off, l->why);
			}
		}
		if (first_lost == 0 && any_bad)
			first_lost = expected;
		if (first_lost == 0 || c->max_synced < first_lost)
			return 0;
		for (size_t i = 0; i < c->nlanes; i++) {
			struct rlane *l = &c->lanes[i];
			if (l->bad)
				return corrupt(c, l->segs[l->bad_si]->name, l->bad_off, l->why);
		}
		/* Nothing damaged in place: the write went missing with its bytes. Name where
		 * each lane's replayed records end: one of them should have gone on. */
		for (size_t i = 0; i < c->nlanes; i++) {
			struct rlane *l = &c->lanes[i];
			pkv__log(c->db, PKV_LOG_ERROR,
				 "recovery: %s/wal/%s: lane %u ends at offset %zu (last seq %" PRIu64
				 ")",
				 c->db->dir, l->segs[l->keep_si]->name, l->id, l->keep_off,
				 l->last_seq);
		}
		pkv__log(c->db, PKV_LOG_ERROR,
			 "recovery: %s/wal: sequence number %" PRIu64
			 " is missing but was made durable (a record says %" PRIu64 " was synced)",
			 c->db->dir, first_lost, c->max_synced);
		return PKV_ECORRUPT;
	}
}

/* R.6, R.7: cut lane @l after its keep point; zero the rest of the keep segment. */
static int cut_lane(struct rctx *c, struct rlane *l, bool *dir_dirty)
{
	struct pkv *db = c->db;
	struct rseg *keep = l->segs[l->keep_si];
	char path[4096];
	int r;

	for (size_t k = l->keep_si + 1; k < l->nsegs; k++) {
		struct rseg *s = l->segs[k];

		snprintf(path, sizeof(path), "%s/%s", db->wal.dir, s->name);
		r = pkv__fs->unlink(path);
		if (r < 0)
			return r;
		*dir_dirty = true;
	}
	l->nsegs = l->keep_si + 1;
	/* Truncate then re-allocate: the tail reads as zeros and stays allocated (W.2). */
	r = pkv__fs->ftruncate(keep->fd, (off_t)l->keep_off);
	if (r == 0)
		r = pkv__fs->fallocate(keep->fd, 0, (off_t)keep->hdr.seg_bytes);
	if (r == 0)
		r = pkv__fs->fdatasync(keep->fd);
	return r;
}

/* Hand the lane's last segment to the WAL as the one to append to (R.7). */
static int adopt_lane(struct rctx *c, struct rlane *l)
{
	struct rseg *keep = l->segs[l->keep_si];
	int r;

	r = pkv__wal_lane_adopt(&c->db->wal, l->id, keep->fd, keep->segno, keep->hdr.seg_bytes,
				l->keep_off, keep->max_seq, keep->seed,
				l->segs[l->nsegs - 1]->segno);
	if (r == 0)
		keep->fd = -1; /* now owned by the WAL */
	return r;
}

static void rctx_free(struct rctx *c)
{
	for (size_t i = 0; i < c->nsegs; i++) {
		if (c->segs[i].map)
			pkv__fs->munmap(c->segs[i].map, c->segs[i].maplen);
		if (c->segs[i].fd >= 0)
			pkv__fs->close(c->segs[i].fd);
	}
	for (size_t i = 0; i < c->nlanes; i++)
		free(c->lanes[i].segs);
	free(c->lanes);
	free(c->segs);
}

int pkv__recover(struct pkv *db, uint64_t base_seq)
{
	struct rctx c = { .db = db };
	struct pkv_recovery_report *rep = &db->rec;
	uint64_t last = base_seq;
	bool dir_dirty = false;
	int r;

	memset(rep, 0, sizeof(*rep));
	r = scan_dir(&c);
	if (r == 0)
		r = build_lanes(&c);
	if (r == 0)
		r = merge(&c, base_seq, &last);
	if (r < 0)
		goto out;

	pkv__wal_set_origin(&db->wal, c.nsegs ? c.segs[0].hdr.salt : 0, last);

	if (!db->readonly_open) {
		/*
		 * R.10: a lane whose last segment ends exactly where its data ends was closed
		 * cleanly (pkv_close truncates it there after its final sync): nothing to zero and
		 * nothing unsynced. If every lane is clean, the open touches nothing durable.
		 */
		bool all_clean = true;

		for (size_t i = 0; i < c.nlanes; i++) {
			struct rlane *l = &c.lanes[i];
			l->clean = !l->cut && l->keep_si + 1 == l->nsegs &&
				   (size_t)l->segs[l->keep_si]->fsize <= l->keep_off;
			all_clean &= l->clean;
		}
		/*
		 * R.8 before any cut: a cut truncates the lane's last segment to the end of its
		 * data, which is what pkv_close leaves (R.10). Were this open to fail (or the process
		 * die) after a cut and before these syncs, the next open would take the lane for
		 * clean, sync nothing, and still report every recovered record as durable.
		 */
		for (size_t i = 0; i < c.nlanes && r == 0 && !all_clean; i++)
			for (size_t k = 0; k <= c.lanes[i].keep_si && r == 0; k++)
				r = pkv__fs->fdatasync(c.lanes[i].segs[k]->fd);
		for (size_t i = 0; i < c.nlanes && r == 0; i++) {
			struct rlane *l = &c.lanes[i];
			bool ours = l->id < db->wal.nlanes;
			struct rseg *keep = l->segs[l->keep_si];

			if (l->cut || (ours && !l->clean))
				r = cut_lane(&c, l, &dir_dirty);
			else if (ours) /* re-extend: allocated blocks under the mapping (W.2) */
				r = pkv__fs->fallocate(keep->fd, 0, (off_t)keep->hdr.seg_bytes);
			if (r == 0 && ours)
				r = adopt_lane(&c, l);
			/* R.13: a segment of an older format version takes no new record. */
			if (r == 0 && ours && keep->hdr.version < WAL_VERSION)
				pkv__wal_lane_retire_cur(&db->wal, l->id);
			/* Full segments: deleted once a snapshot covers them (compact.c C.6). */
			for (size_t k = 0; k < l->nsegs && r == 0; k++)
				if (k < l->keep_si || !ours)
					r = pkv__wal_old_add(&db->wal, l->id, l->segs[k]->segno,
							     l->segs[k]->max_seq,
							     l->segs[k]->hdr.seg_bytes, 0);
		}
		db->open_dirty |= dir_dirty || !all_clean;
		if (r == 0 && dir_dirty)
			r = pkv__fs_fsync_dir(db->wal.dir);
		if (r < 0) {
			pkv__log(db, PKV_LOG_ERROR, "recovery: cannot repair %s/wal: %s", db->dir,
				 pkv_strerror(r));
			goto out;
		}
		pkv__wal_set_synced(&db->wal, last); /* R.8: every replayed segment is synced */
	}
	if (rep->recovered_records || rep->discarded_records || rep->discarded_bytes)
		pkv__log(db, rep->discarded_bytes ? PKV_LOG_WARN : PKV_LOG_INFO,
			 "recovery: %s: replayed %" PRIu64 " records from %zu segments up to seq %" PRIu64
			 "; discarded %" PRIu64 " records, %" PRIu64 " bytes%s",
			 db->dir, rep->recovered_records, c.nsegs, last, rep->discarded_records,
			 rep->discarded_bytes, rep->gap_seq ? " behind a missing sequence number" : "");
out:
	rctx_free(&c);
	return r;
}
