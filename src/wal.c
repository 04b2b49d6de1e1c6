/* SPDX-License-Identifier: MIT */
/*
 * wal.c - WAL lanes and segments: creation, roll-over, append, the written watermark.
 *
 * Crash rules of this file (recovery.c relies on them):
 *  W.1  A segment is created as LLL-S.tmp, fully allocated (posix_fallocate), its header
 *       written and fdatasynced, then renamed to LLL-S.wal and the wal/ directory fsynced. A
 *       *.wal file therefore always has a valid header and all of its blocks; *.tmp files are
 *       debris of an interrupted creation and are removed at open.
 *  W.2  Records are stored through a shared mapping of allocated blocks: a store can never meet
 *       ENOSPC (no SIGBUS), and once the copy is done the record is in the page cache, where it
 *       survives the death of the process (PKV_DURABLE_PROCESS).
 *  W.3  A lane takes its sequence number only after it has room for the record, so the only
 *       fallible step (creating a segment) happens before a number is taken, and a number, once
 *       taken, is always followed by its record: no write failure can leave a hole.
 *  W.4  Within a lane sequence numbers strictly increase (taken under the lane lock).
 *  W.5  A write returns only after pkv__wal_wait_written(seq): every smaller sequence number's
 *       record is copied too, so a crash cannot leave a hole in front of an acknowledged write.
 *  W.6  Nothing reads records back through the mapping (recovery maps the files anew), so every
 *       WAL_DROP_BYTES of a segment written, the whole pages behind the write offset are given up
 *       with MADV_DONTNEED: for a shared file mapping that only unmaps them (their dirty state
 *       moves to the page cache, nothing is lost), so the WAL costs the process no resident
 *       memory beyond about WAL_DROP_BYTES per lane.
 *  W.7  Recycling (RocksDB's recycle_log_file_num): a retired segment (a durable snapshot covers
 *       it) of the standard size that was filled at least halfway is kept for reuse instead of
 *       unlinked, up to WAL_RECYCLE_PER_LANE per lane: its unwritten tail is zero-filled, it is
 *       renamed to LLL-S.tmp (its old name's debris form: removed at open if a crash comes) and
 *       the directory fsynced before anything else touches it, so a crash can never leave a
 *       *.wal whose header disagrees with its name. A new segment then takes it instead of a
 *       fresh file: it is renamed to its new LLL-S.tmp and goes through W.1 without the
 *       fallocate. Its blocks are allocated *and written*, so an fdatasync of new records in it
 *       flushes data only, where a fresh segment's first write to each block also journals the
 *       conversion of an unwritten extent. The stale records it holds never replay: the new
 *       header has another lane or segment number, hence another record CRC seed (checked: the
 *       seeds differ), and CRC32C is linear, so a record that was valid under the old seed is
 *       invalid under any other; besides, each append into a recycled segment keeps a zero
 *       length word right after its record (the end of the data, as in a fresh segment), and
 *       its header write zeroes the first one.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/mman.h>

#include <ck_pr.h>

#include "errors.h"
#include "fs.h"
#include "internal.h"
#include "wal.h"

#define WAL_DROP_BYTES (1u << 20)

/* W.6: release the written pages of @seg from the process (the lane lock is held). */
static void seg_drop_written(struct wal_seg *seg)
{
	size_t upto = seg->off & ~(size_t)4095;

	if (upto > seg->dropped) {
		(void)madvise(seg->base + seg->dropped, upto - seg->dropped, MADV_DONTNEED);
		seg->dropped = upto;
	}
}

int pkv__wal_init(struct pkv_wal *w, unsigned nlanes, size_t seg_bytes, const struct pkv_log *log)
{
	w->nlanes = nlanes;
	w->seg_bytes = seg_bytes;
	w->log = log;
	if (posix_memalign((void **)&w->lanes, 64, sizeof(*w->lanes) * nlanes) != 0)
		return -ENOMEM;
	memset(w->lanes, 0, sizeof(*w->lanes) * nlanes);
	for (unsigned i = 0; i < nlanes; i++) {
		pthread_mutex_init(&w->lanes[i].lock, NULL);
		w->lanes[i].id = i;
		w->lanes[i].inflight = WAL_INFLIGHT_IDLE;
		w->lanes[i].next_segno = 1;
	}
	pthread_mutex_init(&w->old_mu, NULL);
	return 0;
}

int pkv__wal_old_add(struct pkv_wal *w, uint32_t lane, uint64_t segno, uint64_t last_seq,
		     size_t size, size_t written)
{
	struct wal_old *o = malloc(sizeof(*o));

	if (o == NULL)
		return -ENOMEM;
	o->lane = lane;
	o->segno = segno;
	o->last_seq = last_seq;
	o->size = size;
	o->written = written;
	o->closed = written == 0; /* found at open: no descriptor of ours (and never pooled) */
	pthread_mutex_lock(&w->old_mu);
	o->next = w->old;
	w->old = o;
	pthread_mutex_unlock(&w->old_mu);
	return 0;
}

uint64_t pkv__wal_bytes(struct pkv_wal *w)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < w->nlanes; i++)
		n += __atomic_load_n(&w->lanes[i].bytes, __ATOMIC_RELAXED);
	return n;
}

void pkv__wal_seg_path(char *buf, size_t n, const char *dir, uint32_t lane, uint64_t segno,
		       const char *ext)
{
	if (dir == NULL)
		snprintf(buf, n, "%03u-%010llu.%s", lane, (unsigned long long)segno, ext);
	else
		snprintf(buf, n, "%s/%03u-%010llu.%s", dir, lane, (unsigned long long)segno, ext);
}

int pkv__wal_seg_parse_name(const char *name, uint32_t *lane, uint64_t *segno, bool *tmp)
{
	unsigned l;
	unsigned long long s;
	char ext[8];
	int n = 0;

	if (strlen(name) != 3 + 1 + 10 + 4)
		return -1;
	if (sscanf(name, "%3u-%10llu.%3s%n", &l, &s, ext, &n) != 3 || n != 18)
		return -1;
	if (strcmp(ext, "wal") == 0)
		*tmp = false;
	else if (strcmp(ext, "tmp") == 0)
		*tmp = true;
	else
		return -1;
	*lane = l;
	*segno = s;
	return 0;
}

void pkv__wal_seg_close(struct wal_seg *seg)
{
	if (seg == NULL)
		return;
	if (seg->wal) { /* W.7: only a closed segment may be renamed into the pool */
		pthread_mutex_lock(&seg->wal->old_mu);
		for (struct wal_old *o = seg->wal->old; o; o = o->next)
			if (o->lane == seg->lane && o->segno == seg->segno)
				o->closed = true;
		pthread_mutex_unlock(&seg->wal->old_mu);
	}
	if (seg->base)
		pkv__fs->munmap(seg->base, seg->size);
	for (unsigned k = 1; k < WAL_SYNC_SLOTS; k++)
		if (seg->sfd[k] >= 0)
			pkv__fs->close(seg->sfd[k]);
	if (seg->fd >= 0)
		pkv__fs->close(seg->fd);
	free(seg);
}

int pkv__wal_seg_sync_fd(struct pkv_wal *w, struct wal_seg *seg, unsigned slot)
{
	char path[4096];
	int fd;

	if (slot == 0)
		return seg->fd;
	if (seg->sfd[slot] >= 0)
		return seg->sfd[slot];
	pkv__wal_seg_path(path, sizeof(path), w->dir, seg->lane, seg->segno, "wal");
	/* S.7: a file description of its own samples the write-back error state now; any error
	 * after this is reported to its next fdatasync whoever else saw it. */
	fd = pkv__fs->open(path, O_RDWR, 0);
	if (fd >= 0)
		seg->sfd[slot] = fd;
	return fd;
}

void pkv__wal_destroy(struct pkv_wal *w)
{
	char path[4096];
	bool unlinked = false;

	if (w->lanes == NULL)
		return;
	for (unsigned i = 0; i < w->nlanes; i++) {
		struct wal_lane *l = &w->lanes[i];

		while (l->retired) {
			struct wal_seg *s = l->retired;
			l->retired = s->next;
			pkv__wal_seg_close(s);
		}
		if (l->spare) {
			/* Never written: drop it rather than leave 16 MiB of zeros per lane behind. */
			pkv__wal_seg_path(path, sizeof(path), w->dir, l->id, l->spare->segno, "wal");
			pkv__wal_seg_close(l->spare);
			unlinked |= pkv__fs->unlink(path) == 0;
		}
		pkv__wal_seg_close(l->cur);
		pthread_mutex_destroy(&l->lock);
	}
	if (unlinked)
		pkv__fs_fsync_dir(w->dir); /* best effort: an empty segment left behind is harmless */
	free(w->lanes);
	w->lanes = NULL;
	while (w->free) { /* W.7: the pool does not outlive the handle */
		struct wal_free *f = w->free;
		w->free = f->next;
		pkv__wal_seg_path(path, sizeof(path), w->dir, f->lane, f->segno, "tmp");
		(void)pkv__fs->unlink(path);
		free(f);
	}
	while (w->old) {
		struct wal_old *o = w->old;
		w->old = o->next;
		free(o);
	}
	pthread_mutex_destroy(&w->old_mu);
}

/* ---- recycling (W.7) --------------------------------------------------------------------- */

/*
 * Take a pooled segment for the segment headed @hdr: rename it to @tmp (the new segment's
 * *.tmp name) and open it. Returns the descriptor, or -1 (none pooled, or it is unusable: it is
 * then removed and the caller makes a fresh file).
 */
static int recycle_take(struct pkv_wal *w, const struct wal_seg_disk *hdr, const char *tmp)
{
	struct wal_seg_disk old;
	struct wal_free *f;
	char pool[4096];
	const char *why;
	off_t fsize = 0;
	int fd;

	pthread_mutex_lock(&w->old_mu);
	f = w->free;
	if (f) {
		w->free = f->next;
		w->nfree--;
	}
	pthread_mutex_unlock(&w->old_mu);
	if (f == NULL)
		return -1;
	pkv__wal_seg_path(pool, sizeof(pool), w->dir, f->lane, f->segno, "tmp");
	free(f);
	/* A crash from here until W.1's rename leaves a *.tmp: removed at open. */
	if (pkv__fs->rename(pool, tmp) < 0) {
		(void)pkv__fs->unlink(pool);
		return -1;
	}
	fd = pkv__fs->open(tmp, O_RDWR, 0);
	if (fd < 0)
		goto drop;
	/* The file must be what was pooled: the standard size, and a header whose seed is not the
	 * new one (2^-32 odds, but then stale records would validate: never reuse it). */
	if (pkv__fs->fstat_size(fd, &fsize) < 0 || (size_t)fsize != w->seg_bytes ||
	    pkv__fs_pread_all(fd, &old, sizeof(old), 0) != (ssize_t)sizeof(old) ||
	    pkv__walrec_seg_check(&old, sizeof(old), &old, &why) < 0 ||
	    pkv__walrec_seed(&old) == pkv__walrec_seed(hdr)) {
		pkv__fs->close(fd);
		goto drop;
	}
	__atomic_add_fetch(&w->recycled, 1, __ATOMIC_RELAXED);
	return fd;
drop:
	(void)pkv__fs->unlink(tmp);
	return -1;
}

/* Zero [from, size) of the file at @path (W.7: every block written before it is reused). */
static int recycle_zero_tail(const char *path, size_t from, size_t size)
{
	static const unsigned char zeros[1 << 16];
	int fd = pkv__fs->open(path, O_RDWR, 0);
	int r = 0;

	if (fd < 0)
		return fd;
	while (from < size && r == 0) {
		size_t n = size - from < sizeof(zeros) ? size - from : sizeof(zeros);
		r = pkv__fs_pwrite_all(fd, zeros, n, (off_t)from);
		from += n;
	}
	pkv__fs->close(fd);
	return r;
}

/* The in-memory segment over @fd (written up to @off), mapped whole (W.2). 0 or -errno. */
static int seg_map(int fd, uint32_t lane, uint64_t segno, size_t size, size_t off, uint32_t seed,
		   struct wal_seg **out)
{
	struct wal_seg *seg = calloc(1, sizeof(*seg));
	int r;

	if (seg == NULL)
		return -ENOMEM;
	seg->fd = fd;
	seg->sfd[0] = fd;
	for (unsigned k = 1; k < WAL_SYNC_SLOTS; k++)
		seg->sfd[k] = -1;
	seg->lane = lane;
	seg->segno = segno;
	seg->size = size;
	seg->off = off;
	seg->seed = seed;
	seg->base = pkv__fs->mmap(size, PROT_READ | PROT_WRITE, fd, 0);
	if (seg->base == NULL) {
		r = -errno;
		free(seg);
		return r;
	}
	*out = seg;
	return 0;
}

int pkv__wal_seg_create(struct pkv_wal *w, uint32_t lane, uint64_t segno, size_t min_bytes,
			struct wal_seg **out)
{
	struct wal_seg_disk hdr;
	struct wal_seg *seg = NULL;
	char tmp[4096], path[4096];
	size_t size = w->seg_bytes;
	bool recycled;
	int fd, r;

	if (size < min_bytes)
		size = (min_bytes + 4095) & ~(size_t)4095;
	pkv__wal_seg_path(tmp, sizeof(tmp), w->dir, lane, segno, "tmp");
	pkv__wal_seg_path(path, sizeof(path), w->dir, lane, segno, "wal");
	pkv__walrec_seg_init(&hdr, lane, segno, w->salt, size);

	fd = size == w->seg_bytes ? recycle_take(w, &hdr, tmp) : -1;
	recycled = fd >= 0;
	if (!recycled) {
		fd = pkv__fs->open(tmp, O_RDWR | O_CREAT | O_TRUNC, 0644);
		if (fd < 0)
			return fd;
		/* W.1, W.2: every block the mapping will touch is allocated before it is mapped. */
		r = pkv__fs->fallocate(fd, 0, (off_t)size);
		if (r < 0)
			goto fail;
	}
	{
		/* W.7: the header, and a zero length where the first record goes (stale bytes
		 * follow in a recycled file; a fresh one is zeros already). */
		unsigned char head[WAL_SEG_HDR + 8] = { 0 };

		memcpy(head, &hdr, sizeof(hdr));
		r = pkv__fs_pwrite_all(fd, head, recycled ? sizeof(head) : sizeof(hdr), 0);
	}
	if (r < 0)
		goto fail;
	/* W.1: header and allocation durable before the name says "segment". */
	r = pkv__fs->fdatasync(fd);
	if (r < 0)
		goto fail;
	r = pkv__fs->rename(tmp, path);
	if (r < 0)
		goto fail;
	/* W.1: the new name durable before any record in it counts as durable. */
	r = pkv__fs_fsync_dir(w->dir);
	if (r < 0) {
		pkv__fs->unlink(path);
		pkv__fs->close(fd);
		return r;
	}

	r = seg_map(fd, lane, segno, size, WAL_SEG_HDR, pkv__walrec_seed(&hdr), &seg);
	if (r < 0)
		goto fail_named;
	seg->recycled = recycled;
	*out = seg;
	return 0;
fail_named:
	pkv__fs->unlink(path);
	pkv__fs->close(fd);
	pkv__fs_fsync_dir(w->dir);
	return r;
fail:
	pkv__fs->unlink(tmp);
	pkv__fs->close(fd);
	return r;
}

/* Close and remove a segment that never received a record. */
static void seg_discard(struct pkv_wal *w, struct wal_seg *seg)
{
	char path[4096];

	pkv__wal_seg_path(path, sizeof(path), w->dir, seg->lane, seg->segno, "wal");
	pkv__wal_seg_close(seg);
	/* No directory fsync: if the unlink is lost in a crash, an empty segment is harmless. */
	pkv__fs->unlink(path);
}

/*
 * The lane's current segment is done: listed among the old segments (W.7; if that allocation
 * fails it is only kept until the next open) and handed to the background thread (or the next
 * sync round) to be synced and closed. Lane lock held; the caller replaces l->cur.
 */
static void lane_retire_cur_locked(struct pkv_wal *w, struct wal_lane *l)
{
	(void)pkv__wal_old_add(w, l->id, l->cur->segno, l->cur->last_seq, l->cur->size,
			       l->cur->off);
	l->cur->wal = w;
	l->cur->next = l->retired;
	l->retired = l->cur;
}

/*
 * Move the lane to a segment with room for @need bytes. Lane lock held. 0 or -errno. The caller
 * wakes the background thread and the compactor once it has unlocked (wal.c calls nothing above
 * it).
 */
static int lane_roll_locked(struct pkv_wal *w, struct wal_lane *l, size_t need)
{
	struct wal_seg *seg = NULL;
	int r;

	if (l->spare) {
		/* W.4: a lane's segment numbers only grow, so its records' order is theirs. */
		if (l->spare->size - WAL_SEG_HDR >= need && l->spare->segno > l->max_used_segno)
			seg = l->spare;
		else
			seg_discard(w, l->spare);
		l->spare = NULL;
	}
	if (seg == NULL) {
		r = pkv__wal_seg_create(w, l->id, l->next_segno, WAL_SEG_HDR + need, &seg);
		if (r < 0) {
			char name[64];

			pkv__wal_seg_path(name, sizeof(name), NULL, l->id, l->next_segno, "wal");
			pkv__logf(w->log, PKV_LOG_ERROR, "wal: cannot create segment %s: %s", name,
				  pkv_strerror(r));
			return r;
		}
		l->next_segno++;
	}
	if (l->cur)
		lane_retire_cur_locked(w, l);
	l->cur = seg;
	l->max_used_segno = seg->segno;
	l->want_spare = true;
	return 0;
}

static inline struct wal_lane *lane_pick(struct pkv_wal *w)
{
	int cpu = sched_getcpu(); /* vDSO / rdpid: no system call */

	if (cpu < 0)
		cpu = 0;
	return &w->lanes[(unsigned)cpu % w->nlanes];
}

int64_t pkv__wal_append(struct pkv_wal *w, enum wal_rec_type type, const void *key, uint32_t klen,
			const void *val, uint32_t vlen, bool *rolled)
{
	struct wal_src src = { .type = type, .key = key, .klen = klen, .val = val, .vlen = vlen };

	return pkv__wal_append_src(w, &src, rolled);
}

int64_t pkv__wal_append_src(struct pkv_wal *w, const struct wal_src *src, bool *rolled)
{
	struct wal_lane *l = lane_pick(w);
	size_t need = pkv__walrec_src_size(src);
	struct wal_seg *seg;
	uint64_t seq;
	int r;

	pthread_mutex_lock(&l->lock);
	seg = l->cur;
	if (seg == NULL || seg->size - seg->off < need) {
		r = lane_roll_locked(w, l, need); /* W.3: may fail, nothing taken yet */
		if (r < 0) {
			pthread_mutex_unlock(&l->lock);
			return r;
		}
		seg = l->cur;
		*rolled = true;
	}
	/*
	 * W.5: announce "taking" before taking, so that a writer that got a larger number and
	 * scans the lanes cannot miss this one between the fetch-add and the store of its value.
	 */
	__atomic_store_n(&l->inflight, WAL_INFLIGHT_TAKING, __ATOMIC_SEQ_CST);
	seq = __atomic_add_fetch(&w->seq, 1, __ATOMIC_SEQ_CST);
	__atomic_store_n(&l->inflight, seq, __ATOMIC_RELEASE);

	pkv__walrec_src_encode(seg->base + seg->off, seg->seed, seq,
			       __atomic_load_n(&w->synced, __ATOMIC_RELAXED), src);
	seg->off += need;
	if (seg->off - seg->dropped >= WAL_DROP_BYTES)
		seg_drop_written(seg); /* W.6 */
	if (seg->recycled && seg->size - seg->off >= sizeof(uint32_t))
		memset(seg->base + seg->off, 0, sizeof(uint32_t)); /* W.7: the end of the data */
	seg->last_seq = seq;
	l->last_seq = seq;
	/* Read without the lock by stats and the compactor. */
	__atomic_store_n(&l->bytes, l->bytes + need, __ATOMIC_RELAXED);
	/* The copy above happens before "idle" is seen (release): W.5. */
	__atomic_store_n(&l->inflight, WAL_INFLIGHT_IDLE, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&l->lock);
	return (int64_t)seq;
}

void pkv__wal_roll_all(struct pkv_wal *w)
{
	for (unsigned i = 0; i < w->nlanes; i++) {
		struct wal_lane *l = &w->lanes[i];

		pthread_mutex_lock(&l->lock);
		if (l->cur && l->cur->off > WAL_SEG_HDR) {
			lane_retire_cur_locked(w, l);
			l->cur = NULL; /* the next append takes the spare */
			l->want_spare = true;
		}
		pthread_mutex_unlock(&l->lock);
	}
}

void pkv__wal_close_clean(struct pkv_wal *w)
{

	for (unsigned i = 0; i < w->nlanes; i++) {
		struct wal_seg *seg = w->lanes[i].cur;

		/* No fdatasync: a lost truncation only makes the next open take the full path. */
		if (seg)
			(void)pkv__fs->ftruncate(seg->fd, (off_t)seg->off);
	}
}

int pkv__wal_retire_upto(struct pkv_wal *w, uint64_t seq)
{
	struct wal_old *keep = NULL, *drop = NULL, *o;
	struct wal_free *pooled = NULL, *f;
	bool durable;
	unsigned room;
	char path[4096], pool[4096];
	int r = 0;

	pthread_mutex_lock(&w->old_mu);
	while ((o = w->old) != NULL) {
		w->old = o->next;
		if (o->last_seq <= seq) {
			o->next = drop;
			drop = o;
		} else {
			o->next = keep;
			keep = o;
		}
	}
	w->old = keep;
	room = WAL_RECYCLE_PER_LANE * w->nlanes;
	room = w->nfree < room ? room - w->nfree : 0;
	pthread_mutex_unlock(&w->old_mu);
	if (drop == NULL)
		return 0;
	while ((o = drop) != NULL) {
		int e;

		drop = o->next;
		pkv__wal_seg_path(path, sizeof(path), w->dir, o->lane, o->segno, "wal");
		/* W.7: keep it for reuse if it is worth it, else unlink it. */
		f = NULL;
		if (room > 0 && o->closed && o->size == w->seg_bytes && o->written >= o->size / 2)
			f = malloc(sizeof(*f));
		if (f) {
			/* Renamed first: if that fails the segment is left as it was. Zeroed after
			 * its data only, never inside it: a torn last record would end the lane. */
			pkv__wal_seg_path(pool, sizeof(pool), w->dir, o->lane, o->segno, "tmp");
			if (pkv__fs->rename(path, pool) == 0) {
				if (recycle_zero_tail(pool, o->written, o->size) == 0) {
					f->lane = o->lane;
					f->segno = o->segno;
					f->next = pooled;
					pooled = f;
					room--;
				} else {
					(void)pkv__fs->unlink(pool);
					free(f);
				}
				free(o);
				continue;
			}
			free(f);
		}
		e = pkv__fs->unlink(path);
		if (e < 0 && e != -ENOENT && r == 0)
			r = e;
		free(o);
	}
	/*
	 * The unlinks need no fsync for correctness (replay skips records <= the snapshot; a lost
	 * unlink leaves a segment the next compaction removes). The renames do (W.7): a pooled file
	 * is rewritten only once its *.tmp name is durable.
	 */
	{
		int e = pkv__fs_fsync_dir(w->dir);

		if (e < 0 && r == 0)
			r = e;
		durable = e == 0;
	}
	while ((f = pooled) != NULL) {
		pooled = f->next;
		if (!durable) { /* its new name is not known durable: never rewrite it */
			pkv__wal_seg_path(pool, sizeof(pool), w->dir, f->lane, f->segno, "tmp");
			(void)pkv__fs->unlink(pool);
			free(f);
			continue;
		}
		pthread_mutex_lock(&w->old_mu);
		f->next = w->free;
		w->free = f;
		w->nfree++;
		pthread_mutex_unlock(&w->old_mu);
	}
	return r;
}

void pkv__wal_wait_written(struct pkv_wal *w, uint64_t seq)
{

	for (unsigned i = 0; i < w->nlanes; i++) {
		uint64_t *inflight = &w->lanes[i].inflight;
		unsigned spins = 0;

		/* TAKING is 0 and IDLE is UINT64_MAX, so one comparison covers every state. */
		while (__atomic_load_n(inflight, __ATOMIC_ACQUIRE) < seq) {
			if (++spins < 256)
				ck_pr_stall();
			else
				sched_yield(); /* the other writer was preempted mid-copy */
		}
	}
}

void pkv__wal_want_spares(struct pkv_wal *w)
{
	for (unsigned i = 0; i < w->nlanes; i++) {
		pthread_mutex_lock(&w->lanes[i].lock);
		w->lanes[i].want_spare = true;
		pthread_mutex_unlock(&w->lanes[i].lock);
	}
}

void pkv__wal_make_spares(struct pkv_wal *w)
{

	for (unsigned i = 0; i < w->nlanes; i++) {
		struct wal_lane *l = &w->lanes[i];
		struct wal_seg *seg;
		uint64_t segno;

		pthread_mutex_lock(&l->lock);
		if (!l->want_spare || l->spare) {
			l->want_spare = false;
			pthread_mutex_unlock(&l->lock);
			continue;
		}
		segno = l->next_segno++; /* reserved: the lane will not create this number itself */
		l->want_spare = false;
		pthread_mutex_unlock(&l->lock);

		if (pkv__wal_seg_create(w, l->id, segno, 0, &seg) < 0) {
			/* No disk for a spare: the lane will try (and report) when it needs one. */
			continue;
		}
		pthread_mutex_lock(&l->lock);
		/*
		 * Install only a spare numbered above every segment the lane has used: while this
		 * one was made, the lane may have created a higher one itself, and may even have
		 * closed it again (a compaction's roll), leaving cur NULL.
		 */
		if (l->spare == NULL && segno > l->max_used_segno) {
			l->spare = seg;
			seg = NULL;
		}
		pthread_mutex_unlock(&l->lock);
		if (seg) /* the lane moved past this number meanwhile: it would go backwards */
			seg_discard(w, seg);
	}
}

void pkv__wal_positions(struct pkv_wal *w, struct wal_pos *out, uint64_t *last_seq)
{
	for (unsigned i = 0; i < w->nlanes; i++)
		pthread_mutex_lock(&w->lanes[i].lock);
	for (unsigned i = 0; i < w->nlanes; i++) {
		struct wal_lane *l = &w->lanes[i];

		out[i].has_cur = l->cur != NULL;
		out[i].cur_segno = l->cur ? l->cur->segno : 0;
		out[i].cur_off = l->cur ? l->cur->off : 0;
		out[i].max_used = l->max_used_segno;
	}
	*last_seq = __atomic_load_n(&w->seq, __ATOMIC_ACQUIRE);
	for (unsigned i = w->nlanes; i-- > 0;)
		pthread_mutex_unlock(&w->lanes[i].lock);
}

int pkv__wal_lane_adopt(struct pkv_wal *w, uint32_t lane, int fd, uint64_t segno, size_t size,
			size_t off, uint64_t last_seq, uint32_t seed, uint64_t max_segno)
{
	struct wal_lane *wl = &w->lanes[lane];
	struct wal_seg *seg = NULL;
	int r = seg_map(fd, lane, segno, size, off, seed, &seg);

	if (r < 0)
		return r;
	seg->last_seq = last_seq;
	wl->cur = seg;
	wl->max_used_segno = max_segno;
	wl->next_segno = max_segno + 1;
	return 0;
}

void pkv__wal_set_synced(struct pkv_wal *w, uint64_t seq)
{
	__atomic_store_n(&w->synced, seq, __ATOMIC_RELAXED);
	for (unsigned i = 0; i < w->nlanes; i++)
		w->lanes[i].last_seq = w->lanes[i].synced_seq = 0;
}

void pkv__wal_set_origin(struct pkv_wal *w, uint64_t salt, uint64_t last)
{
	w->salt = salt;
	while (w->salt == 0 && getrandom(&w->salt, sizeof(w->salt), 0) < 0)
		;
	__atomic_store_n(&w->seq, last, __ATOMIC_RELAXED);
}

bool pkv__wal_has_retired(struct pkv_wal *w)
{
	bool any = false;

	for (unsigned i = 0; i < w->nlanes && !any; i++) {
		pthread_mutex_lock(&w->lanes[i].lock);
		any = w->lanes[i].retired != NULL;
		pthread_mutex_unlock(&w->lanes[i].lock);
	}
	return any;
}

void pkv__wal_lane_retire_cur(struct pkv_wal *w, uint32_t lane)
{
	struct wal_lane *l = &w->lanes[lane];

	pthread_mutex_lock(&l->lock);
	if (l->cur) {
		lane_retire_cur_locked(w, l);
		l->cur = NULL; /* the next append starts a new segment */
		l->want_spare = true;
	}
	pthread_mutex_unlock(&l->lock);
}
