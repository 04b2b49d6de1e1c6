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
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <ck_pr.h>

#include "errors.h"
#include "fs.h"
#include "internal.h"
#include "wal.h"

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

int pkv__wal_old_add(struct pkv_wal *w, uint32_t lane, uint64_t segno, uint64_t last_seq)
{
	struct wal_old *o = malloc(sizeof(*o));

	if (o == NULL)
		return -ENOMEM;
	o->lane = lane;
	o->segno = segno;
	o->last_seq = last_seq;
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
	if (seg->base)
		pkv__fs->munmap(seg->base, seg->size);
	if (seg->fd >= 0)
		pkv__fs->close(seg->fd);
	free(seg);
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
	while (w->old) {
		struct wal_old *o = w->old;
		w->old = o->next;
		free(o);
	}
	pthread_mutex_destroy(&w->old_mu);
}

int pkv__wal_seg_create(struct pkv_wal *w, uint32_t lane, uint64_t segno, size_t min_bytes,
			struct wal_seg **out)
{
	struct wal_seg_disk hdr;
	struct wal_seg *seg;
	char tmp[4096], path[4096];
	size_t size = w->seg_bytes;
	int fd, r;

	if (size < min_bytes)
		size = (min_bytes + 4095) & ~(size_t)4095;
	pkv__wal_seg_path(tmp, sizeof(tmp), w->dir, lane, segno, "tmp");
	pkv__wal_seg_path(path, sizeof(path), w->dir, lane, segno, "wal");

	fd = pkv__fs->open(tmp, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return fd;
	/* W.1, W.2: every block the mapping will touch is allocated before it is mapped. */
	r = pkv__fs->fallocate(fd, 0, (off_t)size);
	if (r < 0)
		goto fail;
	pkv__walrec_seg_init(&hdr, lane, segno, w->salt, size);
	r = pkv__fs_pwrite_all(fd, &hdr, sizeof(hdr), 0);
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

	seg = calloc(1, sizeof(*seg));
	if (seg == NULL) {
		r = -ENOMEM;
		goto fail_named;
	}
	seg->fd = fd;
	seg->lane = lane;
	seg->segno = segno;
	seg->size = size;
	seg->off = WAL_SEG_HDR;
	seg->seed = pkv__walrec_seed(&hdr);
	seg->base = pkv__fs->mmap(size, PROT_READ | PROT_WRITE, fd, 0);
	if (seg->base == NULL) {
		r = -errno;
		free(seg);
		goto fail_named;
	}
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
	if (l->cur) {
		/* If this allocation fails the segment is only kept until the next open. */
		(void)pkv__wal_old_add(w, l->id, l->cur->segno, l->cur->last_seq);
		/* Synced and closed by the background thread (or the next sync round). */
		l->cur->next = l->retired;
		l->retired = l->cur;
	}
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
	struct wal_lane *l = lane_pick(w);
	size_t need = pkv__walrec_size(klen, vlen);
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

	pkv__walrec_encode(seg->base + seg->off, seg->seed, seq, type,
			    __atomic_load_n(&w->synced, __ATOMIC_RELAXED), key, klen, val, vlen);
	seg->off += need;
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
			(void)pkv__wal_old_add(w, l->id, l->cur->segno, l->cur->last_seq);
			l->cur->next = l->retired;
			l->retired = l->cur;
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
	char path[4096];
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
	pthread_mutex_unlock(&w->old_mu);
	if (drop == NULL)
		return 0;
	while ((o = drop) != NULL) {
		int e;

		drop = o->next;
		pkv__wal_seg_path(path, sizeof(path), w->dir, o->lane, o->segno, "wal");
		e = pkv__fs->unlink(path);
		if (e < 0 && e != -ENOENT && r == 0)
			r = e;
		free(o);
	}
	/* Not needed for correctness (replay skips records <= the snapshot), only to free space
	 * for good: a lost unlink would leave a segment that the next compaction removes. */
	if (r == 0)
		r = pkv__fs_fsync_dir(w->dir);
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

int pkv__wal_lane_adopt(struct pkv_wal *w, uint32_t lane, int fd, uint64_t segno, size_t size,
			size_t off, uint64_t last_seq, uint32_t seed, uint64_t max_segno)
{
	struct wal_lane *wl = &w->lanes[lane];
	struct wal_seg *seg = calloc(1, sizeof(*seg));

	if (seg == NULL)
		return -ENOMEM;
	seg->fd = fd;
	seg->lane = lane;
	seg->segno = segno;
	seg->size = size;
	seg->off = off;
	seg->last_seq = last_seq;
	seg->seed = seed;
	seg->base = pkv__fs->mmap(seg->size, PROT_READ | PROT_WRITE, seg->fd, 0);
	if (seg->base == NULL) {
		int r = -errno;
		free(seg);
		return r;
	}
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
