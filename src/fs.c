/* SPDX-License-Identifier: MIT */
/*
 * fs.c - the production file-system table and helpers built on whichever table is in force.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs.h"

static int d_open(const char *path, int flags, mode_t mode)
{
	int fd;

	do
		fd = open(path, flags | O_CLOEXEC, mode); /* a fork+exec child never inherits */
	while (fd < 0 && errno == EINTR);
	return fd < 0 ? -errno : fd;
}

static int d_close(int fd)
{
	/* Linux releases the fd even when close fails; never retry (it may be reused already). */
	return close(fd) < 0 && errno != EINTR ? -errno : 0;
}

static ssize_t d_pread(int fd, void *buf, size_t n, off_t off)
{
	ssize_t r;

	do
		r = pread(fd, buf, n, off);
	while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : r;
}

static ssize_t d_pwrite(int fd, const void *buf, size_t n, off_t off)
{
	ssize_t r;

	do
		r = pwrite(fd, buf, n, off);
	while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : r;
}

static int d_fdatasync(int fd)
{
	/* No EINTR retry loop: fdatasync is not restarted by signals on Linux file systems, and a
	 * failed fdatasync must never be retried as if the first failure had not happened. */
	return fdatasync(fd) < 0 ? -errno : 0;
}

static int d_fsync(int fd)
{
	return fsync(fd) < 0 ? -errno : 0;
}

static int d_ftruncate(int fd, off_t len)
{
	int r;

	do
		r = ftruncate(fd, len);
	while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : 0;
}

static int d_fallocate(int fd, off_t off, off_t len)
{
	int r;

	do
		r = posix_fallocate(fd, off, len);
	while (r == EINTR);
	return -r;
}

static int d_rename(const char *from, const char *to)
{
	return rename(from, to) < 0 ? -errno : 0;
}

static int d_unlink(const char *path)
{
	return unlink(path) < 0 ? -errno : 0;
}

static int d_mkdir(const char *path, mode_t mode)
{
	return mkdir(path, mode) < 0 ? -errno : 0;
}

static int d_flock(int fd, int op)
{
	int r;

	do
		r = flock(fd, op);
	while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : 0;
}

static int d_fstat_size(int fd, off_t *size_out)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	*size_out = st.st_size;
	return 0;
}

static void *d_mmap(size_t len, int prot, int fd, off_t off)
{
	void *p = mmap(NULL, len, prot, MAP_SHARED, fd, off);
	return p == MAP_FAILED ? NULL : p;
}

static int d_munmap(void *addr, size_t len)
{
	return munmap(addr, len) < 0 ? -errno : 0;
}

const struct pkv_fs_ops pkv__fs_default = {
	.open = d_open,
	.close = d_close,
	.pread = d_pread,
	.pwrite = d_pwrite,
	.fdatasync = d_fdatasync,
	.fsync = d_fsync,
	.ftruncate = d_ftruncate,
	.fallocate = d_fallocate,
	.rename = d_rename,
	.unlink = d_unlink,
	.mkdir = d_mkdir,
	.flock = d_flock,
	.fstat_size = d_fstat_size,
	.mmap = d_mmap,
	.munmap = d_munmap,
};

const struct pkv_fs_ops *pkv__fs = &pkv__fs_default;

void pkv__fs_set(const struct pkv_fs_ops *ops)
{
	pkv__fs = ops ? ops : &pkv__fs_default;
}

int pkv__fs_pwrite_all(int fd, const void *buf, size_t n, off_t off)
{
	const char *p = buf;

	while (n > 0) {
		ssize_t r = pkv__fs->pwrite(fd, p, n, off);
		if (r < 0)
			return (int)r;
		if (r == 0)
			return -EIO;
		p += r;
		n -= (size_t)r;
		off += r;
	}
	return 0;
}

ssize_t pkv__fs_pread_all(int fd, void *buf, size_t n, off_t off)
{
	char *p = buf;
	size_t done = 0;

	while (done < n) {
		ssize_t r = pkv__fs->pread(fd, p + done, n - done, off + (off_t)done);
		if (r < 0)
			return r;
		if (r == 0)
			break;
		done += (size_t)r;
	}
	return (ssize_t)done;
}

static int (*link_fn)(const char *from, const char *to);

void pkv__fs_link_set(int (*fn)(const char *from, const char *to))
{
	__atomic_store_n(&link_fn, fn, __ATOMIC_RELAXED);
}

int pkv__fs_link(const char *from, const char *to)
{
	int (*fn)(const char *, const char *) = __atomic_load_n(&link_fn, __ATOMIC_RELAXED);

	if (fn != NULL)
		return fn(from, to);
	return link(from, to) == 0 ? 0 : -errno;
}

int pkv__fs_fsync_dir(const char *path)
{
	int fd = pkv__fs->open(path, O_RDONLY | O_DIRECTORY, 0);
	int r;

	if (fd < 0)
		return fd;
	r = pkv__fs->fsync(fd);
	pkv__fs->close(fd);
	return r;
}
