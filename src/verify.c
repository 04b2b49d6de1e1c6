/* SPDX-License-Identifier: MIT */
/*
 * verify.c - the WAL half of pkv_verify: every record's CRC up to the torn tail, and sequence
 * numbers continuous across lanes.
 *
 * Rules (tests cite them):
 *  V.1  The files are read with pread (not through the writers' mappings), under the compaction
 *       lock (no segment is deleted meanwhile). A store open for writing is read up to every
 *       lane's position at one instant (wal.c pkv__wal_positions): exactly the records 1 .. C.
 *       A read-only store has no writer: its files are read whole, and C is the end of the
 *       prefix its open recovered.
 *  V.2  A segment's header must be valid (magic, version, CRC, lane and number as its name
 *       says). Its records are decoded in order; a zero length ends its data; the first record
 *       that fails its length or CRC check is the lane's torn tail: what follows in the lane is
 *       not read. In a store open for writing, whose open cut the torn tails (recovery.c
 *       R.6), a torn record before the positions is damage, not a tail.
 *  V.3  Within a lane, sequence numbers strictly increase. Across lanes, every number in
 *       (S, C] (S: that of the snapshot the WAL continues, store.h pkv__store_wal_origin) is
 *       held by exactly one record: a missing or doubled number is damage. Records above C
 *       (a read-only store's tail past a gap) were discarded by its open and are counted, not
 *       errors.
 * The counts go to the caller's pkv_verify_report and, as one line, to the log callback.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "errors.h"
#include "fs.h"
#include "rcu.h"
#include "snapshot.h"
#include "walrec.h"
#include "verify.h"
#include "wal.h"

struct vseg {
	uint32_t lane;
	uint64_t segno;
	char name[32];
};

static int vseg_cmp(const void *a, const void *b)
{
	const struct vseg *x = a, *y = b;

	if (x->lane != y->lane)
		return x->lane < y->lane ? -1 : 1;
	return x->segno < y->segno ? -1 : x->segno > y->segno;
}

static int list_segments(struct pkv *db, struct vseg **out, size_t *n)
{
	DIR *d = opendir(db->wal.dir);
	struct dirent *e;
	struct vseg *v = NULL;
	size_t cap = 0;

	*n = 0;
	if (d == NULL) {
		if (errno == ENOENT)
			return 0; /* a read-only store that never had a WAL */
		pkv__log(db, PKV_LOG_ERROR, "verify: cannot read %s: %s", db->wal.dir,
			 strerror(errno));
		return -errno;
	}
	while ((e = readdir(d)) != NULL) {
		uint32_t lane;
		uint64_t segno;
		bool tmp;

		if (pkv__wal_seg_parse_name(e->d_name, &lane, &segno, &tmp) < 0 || tmp)
			continue;
		if (*n == cap) {
			struct vseg *nv = realloc(v, (cap = cap ? cap * 2 : 16) * sizeof(*v));

			if (nv == NULL) {
				free(v);
				closedir(d);
				return -ENOMEM;
			}
			v = nv;
		}
		v[*n].lane = lane;
		v[*n].segno = segno;
		memcpy(v[*n].name, e->d_name, 19); /* 18 characters and the NUL: checked above */
		(*n)++;
	}
	closedir(d);
	if (*n > 1)
		qsort(v, *n, sizeof(*v), vseg_cmp);
	*out = v;
	return 0;
}

static int damage(struct pkv *db, const char *name, size_t off, const char *why)
{
	pkv__log(db, PKV_LOG_ERROR, "verify: %s/%s at offset %zu: %s", db->wal.dir, name, off, why);
	return PKV_ECORRUPT;
}

int pkv__verify_wal(struct pkv *db, uint64_t base_seq, pkv_verify_report *rep)
{
	struct wal_pos *pos = NULL;
	struct vseg *segs = NULL;
	unsigned char *buf = NULL, *seen = NULL;
	size_t nsegs = 0, bufcap = 0;
	uint64_t last = 0, span;
	bool live = !db->readonly_open;
	uint32_t torn_lane = UINT32_MAX;
	uint64_t lane_last = 0;
	int r;

	if (live) {
		pos = calloc(db->wal.nlanes ? db->wal.nlanes : 1, sizeof(*pos));
		if (pos == NULL)
			return -ENOMEM;
		pkv__wal_positions(&db->wal, pos, &last); /* V.1 */
	} else {
		last = __atomic_load_n(&db->wal.seq, __ATOMIC_ACQUIRE);
	}
	r = list_segments(db, &segs, &nsegs);
	if (r < 0)
		goto out;
	span = last > base_seq ? last - base_seq : 0;
	if (span > (1ull << 36)) {
		r = -ENOMEM;
		goto out;
	}
	seen = calloc(span / 8 + 1, 1);
	if (seen == NULL) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < nsegs; i++) {
		const struct vseg *s = &segs[i];
		size_t limit = SIZE_MAX, off;
		struct wal_seg_disk hdr;
		const char *why = NULL;
		off_t fsize;
		char path[4096 + 64];
		uint32_t seed;
		int fd;

		if (s->lane == torn_lane)
			continue; /* V.2: past the lane's torn tail */
		if (i > 0 && segs[i - 1].lane != s->lane)
			lane_last = 0;
		if (live && s->lane < db->wal.nlanes) {
			if (s->segno > pos[s->lane].max_used)
				continue; /* a spare made ahead: no record */
			if (pos[s->lane].has_cur && s->segno == pos[s->lane].cur_segno)
				limit = pos[s->lane].cur_off;
		}
		snprintf(path, sizeof(path), "%s/%s", db->wal.dir, s->name);
		fd = pkv__fs->open(path, O_RDONLY | O_CLOEXEC, 0);
		if (fd == -ENOENT && live)
			continue; /* a spare deleted meanwhile (checkpoint.c CP.4) */
		if (fd < 0) {
			pkv__log(db, PKV_LOG_ERROR, "verify: cannot open %s: %s", path,
				 pkv_strerror(fd));
			r = fd;
			goto out;
		}
		r = pkv__fs->fstat_size(fd, &fsize);
		if (r == 0 && (size_t)fsize < limit)
			limit = (size_t)fsize;
		if (r == 0 && limit > bufcap) {
			unsigned char *nb = realloc(buf, limit);

			if (nb == NULL)
				r = -ENOMEM;
			else
				buf = nb, bufcap = limit;
		}
		if (r == 0) {
			ssize_t got = pkv__fs_pread_all(fd, buf, limit, 0);

			r = got < 0 ? (int)got : 0;
			if (got >= 0)
				limit = (size_t)got;
		}
		pkv__fs->close(fd);
		if (r < 0)
			goto out;
		rep->wal_segments++;
		/* V.2: the header. */
		if (pkv__walrec_seg_check(buf, limit, &hdr, &why) != 0) {
			r = damage(db, s->name, 0, why);
			goto out;
		}
		if (hdr.lane != s->lane || hdr.segno != s->segno) {
			r = damage(db, s->name, 0, "the header names another lane or segment");
			goto out;
		}
		seed = pkv__walrec_seed(&hdr);
		off = WAL_SEG_HDR;
		while (off < limit) {
			struct wal_rec rec;
			enum wal_decode d = pkv__walrec_decode(buf + off, limit - off, seed, &rec, &why);

			if (d == WAL_DEC_END)
				break;
			if (d == WAL_DEC_BAD) {
				/* A store open for writing had its torn tails cut at open
				 * (recovery.c R.6): whatever is torn now is damage. */
				if (live) {
					r = damage(db, s->name, off, why);
					goto out;
				}
				rep->wal_torn++;
				torn_lane = s->lane;
				pkv__log(db, PKV_LOG_INFO, "verify: %s/%s: torn tail at offset %zu (%s)",
					 db->wal.dir, s->name, off, why);
				break;
			}
			/* V.3 */
			if (rec.seq <= lane_last) {
				r = damage(db, s->name, off, "sequence numbers of the lane go back");
				goto out;
			}
			lane_last = rec.seq;
			rep->wal_records++;
			rep->wal_bytes += rec.size;
			if (rec.seq > base_seq && rec.seq <= last) {
				uint64_t b = rec.seq - base_seq - 1;

				if (seen[b / 8] & (1u << (b % 8))) {
					r = damage(db, s->name, off, "a sequence number appears twice");
					goto out;
				}
				seen[b / 8] |= (unsigned char)(1u << (b % 8));
			} else if (rec.seq > last) {
				rep->wal_beyond++;
			}
			off += rec.size;
		}
	}
	for (uint64_t b = 0; b < span; b++) {
		if (!(seen[b / 8] & (1u << (b % 8)))) {
			pkv__log(db, PKV_LOG_ERROR,
				 "verify: %s: sequence number %" PRIu64
				 " is in no lane (the WAL lost a record)",
				 db->wal.dir, base_seq + 1 + b);
			r = PKV_ECORRUPT;
			goto out;
		}
	}
	rep->wal_first_seq = span ? base_seq + 1 : 0;
	rep->wal_last_seq = span ? last : 0;
	pkv__log(db, PKV_LOG_INFO,
		 "verify: WAL: %" PRIu64 " segments, %" PRIu64 " records (%" PRIu64
		 " bytes) checked by CRC; sequence numbers %" PRIu64 "..%" PRIu64
		 " continuous across lanes; %" PRIu64 " torn tails; %" PRIu64
		 " records past the recovered prefix",
		 rep->wal_segments, rep->wal_records, rep->wal_bytes, rep->wal_first_seq,
		 rep->wal_last_seq, rep->wal_torn, rep->wal_beyond);
	r = 0;
out:
	free(pos);
	free(segs);
	free(buf);
	free(seen);
	return r;
}

PKV_EXPORT int pkv_verify_ex(pkv *db, pkv_verify_report *out)
{
	pkv_verify_report rep = {0};
	struct pkv_snap *origin;
	const char *why = NULL;
	uint64_t base_seq = 0;
	int r = 0;

	/* read.c RD.4: compact_mu may be held by a compaction waiting for a grace period. */
	if (db == NULL || pkv__in_read_section())
		return PKV_EINVAL;
	if (db->in_memory)
		goto out;
	pkv__rcu_enter();
	/* The compaction lock keeps the base mapped and every WAL segment on disk meanwhile. */
	pthread_mutex_lock(&db->compact_mu);
	/* V.3: the WAL continues this snapshot, also one a clear disregarded since. */
	origin = pkv__store_wal_origin(db);
	if (origin) {
		r = pkv__snap_verify(origin, &why);
		if (r < 0) {
			pkv__log(db, PKV_LOG_ERROR, "verify: %s: %s", origin->path, why);
		} else {
			rep.snapshot_records = origin->count;
			rep.snapshot_bytes = origin->len;
			base_seq = origin->seq;
			pkv__log(db, PKV_LOG_INFO,
				 "verify: snapshot %s: %" PRIu64 " records, header, index pages and "
				 "every record checked by CRC; complete up to seq %" PRIu64 "%s",
				 origin->path, origin->count, origin->seq,
				 origin == db->base ? "" : " (disregarded by a clear since)");
		}
	}
	if (r == 0)
		r = pkv__verify_wal(db, base_seq, &rep);
	pthread_mutex_unlock(&db->compact_mu);
out:
	if (out != NULL)
		*out = rep;
	return r;
}

PKV_EXPORT int pkv_verify(pkv *db)
{
	return pkv_verify_ex(db, NULL);
}
