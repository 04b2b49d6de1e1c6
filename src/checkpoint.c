/* SPDX-License-Identifier: MIT */
/*
 * checkpoint.c - pkv_checkpoint: a complete, independent copy of a running store.
 *
 * Rules (tests cite them):
 *  CP.1 dst is made with mkdir, so an existing path is refused (-EEXIST) and two checkpoints
 *       cannot write into one directory. On failure everything made under it is removed.
 *  CP.2 The compaction lock is held from start to end: the base cannot change and no WAL
 *       segment is deleted while they are linked or copied (a compaction waits).
 *  CP.3 The cut: every lane lock is held at once while each lane's position is read (its
 *       current segment and the end of its data there). A lane takes a sequence number and
 *       copies its record under its lock (wal.c W.3, W.4), so with every lock held no record is
 *       half written and none is numbered but missing: the records before the positions are
 *       exactly the sequence numbers 1 .. C taken so far, the state at that instant. Writers
 *       pause for the time it takes to read 2 x lanes numbers.
 *  CP.4 Copied: every segment up to its lane's position (the current one is cut there, so the
 *       copy looks like a lane closed cleanly: recovery.c R.10); segments made after the cut
 *       (spares) are not, nor a spare a lane deletes meanwhile (it never held a record). A
 *       store opened read-only has no writer: its segments are copied whole.
 *  CP.5 The snapshot is immutable once renamed into place (compact.c C.6): it is hard-linked,
 *       or copied where the file system refuses links (another file system, no link support).
 *       The source only ever unlinks it later, which leaves the link in dst intact. After a
 *       pkv_clear and before the next compaction the WAL continues the base the clear
 *       disregarded (store.h pkv__store_wal_origin): that file is the one linked, and the copy's
 *       recovery disregards it at the clear record as the source's would (recovery.c R.11).
 *  CP.6 Every file copied is fsynced, then wal/, snap/, dst and dst's parent: once
 *       pkv_checkpoint returns, a power loss cannot take the checkpoint back.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store.h"
#include "errors.h"
#include "fs.h"
#include "rcu.h"
#include "wal.h"

#define COPY_CHUNK (1u << 20)

/* Copy the first @limit bytes of @from (all of it when @limit is SIZE_MAX) to the new file @to,
 * fsynced. 0 or -errno; with @vanish_ok, a source that no longer exists is 1 (nothing made). */
static int copy_file(struct pkv *db, const char *from, const char *to, size_t limit,
		     bool vanish_ok)
{
	int in = -1, out = -1, r;
	char *buf = malloc(COPY_CHUNK);
	off_t off = 0;

	if (buf == NULL)
		return -ENOMEM;
	in = pkv__fs->open(from, O_RDONLY | O_CLOEXEC, 0);
	if (in == -ENOENT && vanish_ok) {
		r = 1;
		goto out;
	}
	if (in < 0) {
		r = in;
		pkv__log(db, PKV_LOG_ERROR, "checkpoint: cannot open %s: %s", from, pkv_strerror(r));
		goto out;
	}
	out = pkv__fs->open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (out < 0) {
		r = out;
		pkv__log(db, PKV_LOG_ERROR, "checkpoint: cannot create %s: %s", to, pkv_strerror(r));
		goto out;
	}
	for (;;) {
		size_t want = COPY_CHUNK;
		ssize_t n;

		if (limit != SIZE_MAX && (size_t)off + want > limit)
			want = limit - (size_t)off;
		if (want == 0)
			break;
		n = pkv__fs_pread_all(in, buf, want, off);
		if (n < 0) {
			r = (int)n;
			goto out;
		}
		if (n == 0)
			break;
		r = pkv__fs_pwrite_all(out, buf, (size_t)n, off);
		if (r < 0)
			goto out;
		off += n;
		if ((size_t)n < want)
			break;
	}
	r = pkv__fs->fsync(out); /* CP.6 */
	if (r < 0)
		pkv__log(db, PKV_LOG_ERROR, "checkpoint: fsync %s: %s", to, pkv_strerror(r));
out:
	if (in >= 0)
		pkv__fs->close(in);
	if (out >= 0)
		pkv__fs->close(out);
	free(buf);
	return r;
}

/* CP.5: link, or copy where links are refused. 0 or -errno. */
static int link_or_copy(struct pkv *db, const char *from, const char *to)
{
	int r = pkv__fs_link(from, to);

	switch (-r) {
	case 0:
		return 0;
	case EXDEV:
	case EPERM:
	case EMLINK:
	case ENOTSUP:
	case ENOSYS:
		return copy_file(db, from, to, SIZE_MAX, false);
	default:
		pkv__log(db, PKV_LOG_ERROR, "checkpoint: cannot link %s to %s: %s", from, to,
			 pkv_strerror(r));
		return r;
	}
}

/* CP.4: copy the WAL segments of the cut into @dst_wal. 0 or -errno. */
static int copy_wal(struct pkv *db, const struct wal_pos *cut, const char *dst_wal)
{
	DIR *d = opendir(db->wal.dir);
	struct dirent *e;
	char from[4096], to[4096];
	int r = 0;

	if (d == NULL) {
		r = -errno;
		pkv__log(db, PKV_LOG_ERROR, "checkpoint: cannot read %s: %s", db->wal.dir,
			 strerror(errno));
		return r;
	}
	while (r == 0 && (e = readdir(d)) != NULL) {
		uint32_t lane;
		uint64_t segno;
		size_t limit = SIZE_MAX;
		bool tmp;

		if (pkv__wal_seg_parse_name(e->d_name, &lane, &segno, &tmp) < 0 || tmp)
			continue; /* *.tmp: an unfinished creation, not part of the store */
		if (!db->readonly_open && lane < db->wal.nlanes) {
			if (segno > cut[lane].max_used)
				continue; /* a spare made ahead: no record of the cut is in it */
			if (cut[lane].has_cur && segno == cut[lane].cur_segno)
				limit = cut[lane].cur_off;
		}
		if (snprintf(from, sizeof(from), "%s/%s", db->wal.dir, e->d_name) >=
			    (int)sizeof(from) ||
		    snprintf(to, sizeof(to), "%s/%s", dst_wal, e->d_name) >= (int)sizeof(to)) {
			r = -ENAMETOOLONG;
			break;
		}
		/*
		 * With the compaction lock held, no segment holding a record is deleted; a lane
		 * does delete a spare it cannot use (wal.c), whose number may be below the
		 * lane's position: it never held a record, so it is not missed.
		 */
		r = copy_file(db, from, to, limit, true);
		if (r == 1)
			r = 0;
	}
	closedir(d);
	return r;
}

/* Remove what a failed checkpoint made (CP.1). Best effort. */
static void remove_tree(const char *dst)
{
	const char *sub[] = {"wal", "snap"};
	char path[4096];

	for (size_t i = 0; i < 2; i++) {
		DIR *d;
		struct dirent *e;

		snprintf(path, sizeof(path), "%s/%s", dst, sub[i]);
		d = opendir(path);
		while (d != NULL && (e = readdir(d)) != NULL) {
			char f[4096 + 256];

			if (e->d_name[0] == '.')
				continue;
			snprintf(f, sizeof(f), "%s/%s", path, e->d_name);
			(void)unlink(f);
		}
		if (d != NULL)
			closedir(d);
		(void)rmdir(path);
	}
	snprintf(path, sizeof(path), "%s/LOCK", dst);
	(void)unlink(path);
	(void)rmdir(dst);
}

PKV_EXPORT int pkv_checkpoint(pkv *db, const char *dst_dir)
{
	char wal[4096], snap[4096], path[4096], parent[4096];
	struct wal_pos *cut = NULL;
	struct pkv_snap *origin;
	bool made = false, locked = false;
	uint64_t last_seq;
	int r, fd;

	if (db == NULL || dst_dir == NULL || dst_dir[0] == '\0' || db->in_memory)
		return PKV_EINVAL;
	if (pkv__in_read_section()) /* read.c RD.4: it takes compact_mu */
		return PKV_EINVAL;
	if (strlen(dst_dir) > 3000)
		return PKV_EINVAL;
	pkv__rcu_enter();
	cut = calloc(db->wal.nlanes ? db->wal.nlanes : 1, sizeof(*cut));
	if (cut == NULL)
		return -ENOMEM;
	r = pkv__fs->mkdir(dst_dir, 0755); /* CP.1 */
	if (r < 0) {
		pkv__log(db, PKV_LOG_ERROR, "checkpoint: cannot make %s: %s", dst_dir,
			 pkv_strerror(r));
		goto out;
	}
	made = true;
	snprintf(wal, sizeof(wal), "%s/wal", dst_dir);
	snprintf(snap, sizeof(snap), "%s/snap", dst_dir);
	r = pkv__fs->mkdir(wal, 0755);
	if (r == 0)
		r = pkv__fs->mkdir(snap, 0755);
	if (r < 0)
		goto out;
	/* An existing LOCK lets the copy be opened read-only (which creates nothing). */
	snprintf(path, sizeof(path), "%s/LOCK", dst_dir);
	fd = pkv__fs->open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0) {
		r = fd;
		goto out;
	}
	pkv__fs->close(fd);

	pthread_mutex_lock(&db->compact_mu); /* CP.2 */
	locked = true;
	origin = pkv__store_wal_origin(db); /* CP.5: a base a clear disregarded too */
	if (origin != NULL) {
		const char *name = strrchr(origin->path, '/');

		if (snprintf(path, sizeof(path), "%s/%s", snap, name ? name + 1 : origin->path) >=
		    (int)sizeof(path))
			r = -ENAMETOOLONG;
		else
			r = link_or_copy(db, origin->path, path);
		if (r < 0)
			goto out;
	}
	pkv__wal_positions(&db->wal, cut, &last_seq); /* CP.3 */
	r = copy_wal(db, cut, wal);
	if (r < 0)
		goto out;
	pthread_mutex_unlock(&db->compact_mu);
	locked = false;

	/* CP.6: the names durable, from the leaves up to dst's own entry in its parent. */
	snprintf(parent, sizeof(parent), "%s", dst_dir);
	r = pkv__fs_fsync_dir(wal);
	if (r == 0)
		r = pkv__fs_fsync_dir(snap);
	if (r == 0)
		r = pkv__fs_fsync_dir(dst_dir);
	if (r == 0)
		r = pkv__fs_fsync_dir(dirname(parent));
	if (r == 0)
		pkv__log(db, PKV_LOG_INFO, "checkpoint: %s holds the writes up to seq %" PRIu64,
			 dst_dir, last_seq);
out:
	if (locked)
		pthread_mutex_unlock(&db->compact_mu);
	if (r < 0 && made)
		remove_tree(dst_dir);
	free(cut);
	return r;
}
