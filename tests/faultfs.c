/* SPDX-License-Identifier: MIT */
/*
 * faultfs.c - the counting, failing, crashing file-system table described in faultfs.h.
 *
 * Every wrapper has the same shape: begin() numbers the operation, decides under the lock
 * whether the armed fault takes it, and runs the pre hook (and the crash, which never returns);
 * the wrapper then performs the operation through pkv__fs_default, or fakes its failure; end()
 * runs the post hook with the result. The lock is never held while the kernel or a hook runs,
 * so a slow fsync in one thread never serializes another thread's counting.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "faultfs.h"

#define FFS_MAX_FDS 65536

static struct {
	pthread_mutex_t mu;
	struct ffs_fault fault;
	bool armed;
	pthread_t owner; /* the thread that armed the fault (fault.this_thread) */
	uint64_t matched;
	struct ffs_hooks hooks;
	bool elide;
	uint64_t total;
	uint64_t per[FFS_NOPS];
	uint64_t injected;
	int last_kind;
	uint64_t last_index;
	char *paths[FFS_MAX_FDS]; /* fd -> path it was opened with */
} S = { .mu = PTHREAD_MUTEX_INITIALIZER, .last_kind = -1 };

static const char *const op_names[FFS_NOPS] = {
	[FFS_OPEN] = "open",	       [FFS_CLOSE] = "close",	      [FFS_PREAD] = "pread",
	[FFS_PWRITE] = "pwrite",       [FFS_FDATASYNC] = "fdatasync", [FFS_FSYNC] = "fsync",
	[FFS_FTRUNCATE] = "ftruncate", [FFS_FALLOCATE] = "fallocate", [FFS_RENAME] = "rename",
	[FFS_UNLINK] = "unlink",       [FFS_MKDIR] = "mkdir",	      [FFS_FLOCK] = "flock",
	[FFS_FSTAT_SIZE] = "fstat",    [FFS_MMAP] = "mmap",	      [FFS_MUNMAP] = "munmap",
};

const char *ffs_op_name(int op)
{
	return op >= 0 && op < FFS_NOPS ? op_names[op] : "none";
}

static bool fd_ok(int fd)
{
	return fd >= 0 && fd < FFS_MAX_FDS;
}

/* Number @c, decide its fault, run the pre hook; a crash does not return. */
static enum ffs_action begin(struct ffs_call *c, struct ffs_hooks *h, int *err)
{
	enum ffs_action act = FFS_NONE;
	const struct ffs_fault *f = &S.fault;

	pthread_mutex_lock(&S.mu);
	c->index = ++S.total;
	S.per[c->op]++;
	if (S.armed && (f->kinds == 0 || (f->kinds & FFS_BIT(c->op))) &&
	    (!f->this_thread || pthread_equal(S.owner, pthread_self())) &&
	    (f->action != FFS_SHORT || c->op == FFS_PREAD || c->op == FFS_PWRITE)) {
		uint64_t n = ++S.matched;

		if (n == f->nth || (f->persistent && n > f->nth)) {
			act = f->action;
			*err = f->err > 0 ? f->err : EIO;
			S.injected++;
			S.last_kind = (int)c->op;
			S.last_index = c->index;
		}
	}
	if (c->path == NULL && fd_ok(c->fd))
		c->path = S.paths[c->fd]; /* stays valid: only this fd's close frees it */
	*h = S.hooks;
	pthread_mutex_unlock(&S.mu);

	c->injected = act;
	if (h->pre)
		h->pre(h->ctx, c);
	if (act == FFS_CRASH) {
		if (h->crash)
			h->crash(h->ctx, c);
		/* Process-crash semantics: the page cache keeps what was written. */
		_exit(FFS_CRASH_CODE);
	}
	return act;
}

static void end(struct ffs_call *c, const struct ffs_hooks *h, long long result)
{
	c->result = result;
	if (h->post)
		h->post(h->ctx, c);
}

/* ---- the wrappers -------------------------------------------------------------------------- */

static int f_open(const char *path, int flags, mode_t mode)
{
	struct ffs_call c = { .op = FFS_OPEN, .fd = -1, .path = path };
	struct ffs_hooks h;
	int err, fd;

	if (begin(&c, &h, &err) == FFS_FAIL) {
		fd = -err;
	} else {
		fd = pkv__fs_default.open(path, flags, mode);
		if (fd >= 0 && fd_ok(fd)) {
			char *copy = strdup(path);

			pthread_mutex_lock(&S.mu);
			free(S.paths[fd]);
			S.paths[fd] = copy;
			pthread_mutex_unlock(&S.mu);
		}
	}
	c.fd = fd;
	end(&c, &h, fd);
	return fd;
}

static int f_close(int fd)
{
	struct ffs_call c = { .op = FFS_CLOSE, .fd = fd };
	struct ffs_hooks h;
	char *path = NULL;
	int err, r;
	enum ffs_action act;

	/* Take the path out before the descriptor number can be reused by another open. */
	pthread_mutex_lock(&S.mu);
	if (fd_ok(fd)) {
		path = S.paths[fd];
		S.paths[fd] = NULL;
	}
	pthread_mutex_unlock(&S.mu);
	c.path = path;
	act = begin(&c, &h, &err);
	r = pkv__fs_default.close(fd); /* a failed close still releases the descriptor */
	if (act == FFS_FAIL)
		r = -err;
	end(&c, &h, r);
	free(path);
	return r;
}

static ssize_t f_pread(int fd, void *buf, size_t n, off_t off)
{
	struct ffs_call c = { .op = FFS_PREAD, .fd = fd, .buf = buf, .len = n, .off = off };
	struct ffs_hooks h;
	int err = 0;
	enum ffs_action act = begin(&c, &h, &err);
	ssize_t r;

	if (act == FFS_FAIL)
		r = -err;
	else
		r = pkv__fs_default.pread(fd, buf, act == FFS_SHORT && n > 1 ? n / 2 : n, off);
	end(&c, &h, r);
	return r;
}

static ssize_t f_pwrite(int fd, const void *buf, size_t n, off_t off)
{
	struct ffs_call c = { .op = FFS_PWRITE, .fd = fd, .buf = buf, .len = n, .off = off };
	struct ffs_hooks h;
	int err = 0;
	enum ffs_action act = begin(&c, &h, &err);
	ssize_t r;

	if (act == FFS_FAIL)
		r = -err;
	else
		r = pkv__fs_default.pwrite(fd, buf, act == FFS_SHORT && n > 1 ? n / 2 : n, off);
	end(&c, &h, r);
	return r;
}

static int f_sync(enum ffs_op op, int fd)
{
	struct ffs_call c = { .op = op, .fd = fd };
	struct ffs_hooks h;
	int err = 0, r;
	bool elide;

	if (begin(&c, &h, &err) == FFS_FAIL) {
		r = -err;
	} else {
		pthread_mutex_lock(&S.mu);
		elide = S.elide;
		pthread_mutex_unlock(&S.mu);
		if (elide)
			r = 0;
		else if (op == FFS_FDATASYNC)
			r = pkv__fs_default.fdatasync(fd);
		else
			r = pkv__fs_default.fsync(fd);
	}
	end(&c, &h, r);
	return r;
}

static int f_fdatasync(int fd)
{
	return f_sync(FFS_FDATASYNC, fd);
}

static int f_fsync(int fd)
{
	return f_sync(FFS_FSYNC, fd);
}

static int f_ftruncate(int fd, off_t len)
{
	struct ffs_call c = { .op = FFS_FTRUNCATE, .fd = fd, .off = len };
	struct ffs_hooks h;
	int err = 0;
	int r = begin(&c, &h, &err) == FFS_FAIL ? -err : pkv__fs_default.ftruncate(fd, len);

	end(&c, &h, r);
	return r;
}

static int f_fallocate(int fd, off_t off, off_t len)
{
	struct ffs_call c = { .op = FFS_FALLOCATE, .fd = fd, .off = off, .len2 = len };
	struct ffs_hooks h;
	int err = 0;
	int r = begin(&c, &h, &err) == FFS_FAIL ? -err : pkv__fs_default.fallocate(fd, off, len);

	end(&c, &h, r);
	return r;
}

static int f_rename(const char *from, const char *to)
{
	struct ffs_call c = { .op = FFS_RENAME, .fd = -1, .path = from, .path2 = to };
	struct ffs_hooks h;
	int err = 0;
	int r = begin(&c, &h, &err) == FFS_FAIL ? -err : pkv__fs_default.rename(from, to);

	end(&c, &h, r);
	return r;
}

static int f_unlink(const char *path)
{
	struct ffs_call c = { .op = FFS_UNLINK, .fd = -1, .path = path };
	struct ffs_hooks h;
	int err = 0;
	int r = begin(&c, &h, &err) == FFS_FAIL ? -err : pkv__fs_default.unlink(path);

	end(&c, &h, r);
	return r;
}

static int f_mkdir(const char *path, mode_t mode)
{
	struct ffs_call c = { .op = FFS_MKDIR, .fd = -1, .path = path };
	struct ffs_hooks h;
	int err = 0;
	int r = begin(&c, &h, &err) == FFS_FAIL ? -err : pkv__fs_default.mkdir(path, mode);

	end(&c, &h, r);
	return r;
}

static int f_flock(int fd, int op)
{
	struct ffs_call c = { .op = FFS_FLOCK, .fd = fd };
	struct ffs_hooks h;
	int err = 0;
	int r = begin(&c, &h, &err) == FFS_FAIL ? -err : pkv__fs_default.flock(fd, op);

	end(&c, &h, r);
	return r;
}

static int f_fstat_size(int fd, off_t *size_out)
{
	struct ffs_call c = { .op = FFS_FSTAT_SIZE, .fd = fd };
	struct ffs_hooks h;
	int err = 0;
	int r = begin(&c, &h, &err) == FFS_FAIL ? -err : pkv__fs_default.fstat_size(fd, size_out);

	end(&c, &h, r);
	return r;
}

static void *f_mmap(size_t len, int prot, int fd, off_t off)
{
	struct ffs_call c = { .op = FFS_MMAP, .fd = fd, .len = len, .off = off };
	struct ffs_hooks h;
	int err = 0;
	void *p;
	int saved;

	if (begin(&c, &h, &err) == FFS_FAIL) {
		p = NULL;
		saved = err;
	} else {
		p = pkv__fs_default.mmap(len, prot, fd, off);
		saved = p ? 0 : errno;
	}
	end(&c, &h, p ? 0 : -saved);
	errno = saved; /* the table's contract: NULL + errno (the hook may have changed errno) */
	return p;
}

static int f_munmap(void *addr, size_t len)
{
	struct ffs_call c = { .op = FFS_MUNMAP, .fd = -1, .buf = addr, .len = len };
	struct ffs_hooks h;
	int err = 0;
	enum ffs_action act = begin(&c, &h, &err);
	int r = pkv__fs_default.munmap(addr, len); /* released even when failed: see faultfs.h */

	if (act == FFS_FAIL)
		r = -err;
	end(&c, &h, r);
	return r;
}

static const struct pkv_fs_ops ffs_ops = {
	.open = f_open,
	.close = f_close,
	.pread = f_pread,
	.pwrite = f_pwrite,
	.fdatasync = f_fdatasync,
	.fsync = f_fsync,
	.ftruncate = f_ftruncate,
	.fallocate = f_fallocate,
	.rename = f_rename,
	.unlink = f_unlink,
	.mkdir = f_mkdir,
	.flock = f_flock,
	.fstat_size = f_fstat_size,
	.mmap = f_mmap,
	.munmap = f_munmap,
};

/* ---- control ------------------------------------------------------------------------------- */

void ffs_reset(void)
{
	pthread_mutex_lock(&S.mu);
	memset(&S.fault, 0, sizeof(S.fault));
	S.armed = false;
	S.matched = 0;
	memset(&S.hooks, 0, sizeof(S.hooks));
	S.elide = false;
	S.total = 0;
	memset(S.per, 0, sizeof(S.per));
	S.injected = 0;
	S.last_kind = -1;
	S.last_index = 0;
	for (int i = 0; i < FFS_MAX_FDS; i++) {
		/* Skip the empty slots: under ASan every free(), even of NULL, unwinds the stack. */
		if (S.paths[i] == NULL)
			continue;
		free(S.paths[i]);
		S.paths[i] = NULL;
	}
	pthread_mutex_unlock(&S.mu);
}

void ffs_install(void)
{
	ffs_reset();
	pkv__fs_set(&ffs_ops);
}

void ffs_uninstall(void)
{
	pkv__fs_set(NULL);
}

void ffs_arm(const struct ffs_fault *f)
{
	pthread_mutex_lock(&S.mu);
	S.fault = *f;
	S.owner = pthread_self();
	S.matched = 0;
	S.armed = f->action != FFS_NONE && f->nth > 0;
	pthread_mutex_unlock(&S.mu);
}

void ffs_disarm(void)
{
	pthread_mutex_lock(&S.mu);
	S.armed = false;
	pthread_mutex_unlock(&S.mu);
}

void ffs_set_hooks(const struct ffs_hooks *h)
{
	pthread_mutex_lock(&S.mu);
	if (h)
		S.hooks = *h;
	else
		memset(&S.hooks, 0, sizeof(S.hooks));
	pthread_mutex_unlock(&S.mu);
}

void ffs_set_sync_elide(bool on)
{
	pthread_mutex_lock(&S.mu);
	S.elide = on;
	pthread_mutex_unlock(&S.mu);
}

uint64_t ffs_total(void)
{
	uint64_t n;

	pthread_mutex_lock(&S.mu);
	n = S.total;
	pthread_mutex_unlock(&S.mu);
	return n;
}

uint64_t ffs_count(enum ffs_op op)
{
	uint64_t n = 0;

	pthread_mutex_lock(&S.mu);
	if ((unsigned)op < FFS_NOPS)
		n = S.per[op];
	pthread_mutex_unlock(&S.mu);
	return n;
}

uint64_t ffs_matched(void)
{
	uint64_t n;

	pthread_mutex_lock(&S.mu);
	n = S.matched;
	pthread_mutex_unlock(&S.mu);
	return n;
}

uint64_t ffs_injected(void)
{
	uint64_t n;

	pthread_mutex_lock(&S.mu);
	n = S.injected;
	pthread_mutex_unlock(&S.mu);
	return n;
}

int ffs_last_kind(void)
{
	int k;

	pthread_mutex_lock(&S.mu);
	k = S.last_kind;
	pthread_mutex_unlock(&S.mu);
	return k;
}

uint64_t ffs_last_index(void)
{
	uint64_t n;

	pthread_mutex_lock(&S.mu);
	n = S.last_index;
	pthread_mutex_unlock(&S.mu);
	return n;
}
