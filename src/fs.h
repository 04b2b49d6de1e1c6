/* SPDX-License-Identifier: MIT */
/*
 * fs.h - every file-system call pkv makes, behind one table of functions.
 *
 * This is the fault-injection seam: a test installs its own table (pkv__fs_set) to fail, tear or
 * stop the N-th operation, or to simulate a power loss by keeping only what a completed
 * fdatasync/fsync made durable. Every wrapper returns 0 (or a byte count / fd) on success and
 * -errno on failure; only mmap reports failure the libc way, as NULL with errno set.
 *
 * Writes through a WAL mapping are plain stores and are not in this table: they become durable
 * at the next fdatasync of their file, which is, so a power-loss simulator sees every durability
 * point (it can snapshot the file's contents, page cache included, when an fdatasync completes).
 * The production table costs one indirect call per syscall and nothing on the put/get paths.
 */
#ifndef PKV_FS_H
#define PKV_FS_H

#include <stddef.h>
#include <sys/types.h>

struct pkv_fs_ops {
	int (*open)(const char *path, int flags, mode_t mode);
	int (*close)(int fd);
	ssize_t (*pread)(int fd, void *buf, size_t n, off_t off);
	ssize_t (*pwrite)(int fd, const void *buf, size_t n, off_t off);
	int (*fdatasync)(int fd);
	int (*fsync)(int fd); /* also used on directories */
	int (*ftruncate)(int fd, off_t len);
	int (*fallocate)(int fd, off_t off, off_t len); /* posix_fallocate semantics */
	int (*rename)(const char *from, const char *to);
	int (*unlink)(const char *path);
	int (*mkdir)(const char *path, mode_t mode);
	int (*flock)(int fd, int op);
	int (*fstat_size)(int fd, off_t *size_out);
	void *(*mmap)(size_t len, int prot, int fd, off_t off); /* MAP_SHARED; NULL + errno */
	int (*munmap)(void *addr, size_t len);
};

/* The table in force (the default one unless a test replaced it). */
extern const struct pkv_fs_ops *pkv__fs;

/* Install @ops (NULL restores the default); for tests, before any store is opened. */
void pkv__fs_set(const struct pkv_fs_ops *ops);

/* The production table, for test tables that delegate to it. */
extern const struct pkv_fs_ops pkv__fs_default;

/* Write all of @buf at @off (retrying short writes); 0 or -errno. */
int pkv__fs_pwrite_all(int fd, const void *buf, size_t n, off_t off);

/* Read all of @n bytes at @off; returns bytes read (< n only at end of file) or -errno. */
ssize_t pkv__fs_pread_all(int fd, void *buf, size_t n, off_t off);

/* fsync the directory @path (makes the names in it durable); 0 or -errno. */
int pkv__fs_fsync_dir(const char *path);

/*
 * link(2) from @from to the new name @to; 0 or -errno. Only pkv_checkpoint links (checkpoint.c
 * CP.5), and where a link is refused it copies instead. A seam of its own beside the table, so
 * that the tables tests install need no link operation: pkv__fs_link_set(fn) makes every later
 * pkv__fs_link call fn instead (NULL restores link(2)), so a test can refuse links (-EXDEV) and
 * take the copy path on any file system. For tests, before the store is opened.
 */
int pkv__fs_link(const char *from, const char *to);
void pkv__fs_link_set(int (*fn)(const char *from, const char *to));

#endif /* PKV_FS_H */
