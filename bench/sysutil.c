/* SPDX-License-Identifier: MIT */
/*
 * sysutil.c - clocks, CPU pinning, /proc readers, directory helpers and the device's own
 * fdatasync rate.
 */
#include "bench.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void sleep_ns(uint64_t ns)
{
	struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000ull),
			      .tv_nsec = (long)(ns % 1000000000ull)};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

unsigned ncpus(void)
{
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof(set), &set) == 0) {
		int n = CPU_COUNT(&set);
		if (n > 0)
			return (unsigned)n;
	}
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (unsigned)n : 1u;
}

int pin_cpu(unsigned idx)
{
	/* idx counts the CPUs this process may run on, not CPU numbers. */
	cpu_set_t allowed, one;
	if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0)
		return -errno;
	int n = CPU_COUNT(&allowed);
	if (n <= 0)
		return -EINVAL;
	unsigned want = idx % (unsigned)n, seen = 0;
	for (int c = 0; c < CPU_SETSIZE; c++) {
		if (!CPU_ISSET(c, &allowed))
			continue;
		if (seen++ == want) {
			CPU_ZERO(&one);
			CPU_SET(c, &one);
			return sched_setaffinity(0, sizeof(one), &one) == 0 ? 0 : -errno;
		}
	}
	return -EINVAL;
}

static int read_file(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	size_t got = 0;
	while (got + 1 < cap) {
		ssize_t r = read(fd, buf + got, cap - 1 - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	buf[got] = 0;
	close(fd);
	return 0;
}

int rss_bytes(uint64_t *rss, uint64_t *anon)
{
	char buf[4096];
	long page = sysconf(_SC_PAGESIZE);
	unsigned long size = 0, res = 0;
	int rc = read_file("/proc/self/statm", buf, sizeof(buf));
	if (rc)
		return rc;
	if (sscanf(buf, "%lu %lu", &size, &res) != 2)
		return -EIO;
	*rss = (uint64_t)res * (uint64_t)page;
	*anon = 0;
	/* smaps_rollup (Linux >= 4.14) splits anonymous memory from mapped files. */
	if (read_file("/proc/self/smaps_rollup", buf, sizeof(buf)) == 0) {
		char *p = strstr(buf, "\nAnonymous:");
		if (p)
			*anon = strtoull(p + 11, NULL, 10) * 1024u;
	}
	return 0;
}

int io_write_bytes(uint64_t *wb)
{
	char buf[1024];
	int rc = read_file("/proc/self/io", buf, sizeof(buf));
	if (rc)
		return rc;
	char *p = strstr(buf, "\nwrite_bytes:");
	if (!p)
		return -ENOENT;
	*wb = strtoull(p + 13, NULL, 10);
	return 0;
}

int dev_write_bytes(const char *path, uint64_t *wb)
{
	/* The block device under path: /sys/dev/block/MAJ:MIN/stat, field 7 = sectors written
	 * (512-byte units whatever the device's sector size). Whole-disk and partition nodes
	 * both have it; overlay, tmpfs and network file systems have no such device. */
	struct stat st;
	char p[128], buf[512];
	unsigned long long f[7] = {0};
	if (stat(path, &st) != 0)
		return -errno;
	snprintf(p, sizeof(p), "/sys/dev/block/%u:%u/stat", major(st.st_dev), minor(st.st_dev));
	int rc = read_file(p, buf, sizeof(buf));
	if (rc)
		return rc;
	if (sscanf(buf, "%llu %llu %llu %llu %llu %llu %llu", &f[0], &f[1], &f[2], &f[3], &f[4],
		   &f[5], &f[6]) != 7)
		return -EIO;
	*wb = f[6] * 512u;
	return 0;
}

int sync_fs_of(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = syncfs(fd) == 0 ? 0 : -errno;
	close(fd);
	return rc;
}

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	if (remove(path) != 0 && errno != ENOENT)
		return -1;
	return 0;
}

int rm_rf(const char *path)
{
	struct stat st;
	if (lstat(path, &st) != 0)
		return errno == ENOENT ? 0 : -errno;
	return nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS) == 0 ? 0 : -errno;
}

int mkdir_p(const char *path)
{
	char tmp[PATH_MAX];
	size_t n = strlen(path);
	if (n == 0 || n >= sizeof(tmp))
		return -EINVAL;
	memcpy(tmp, path, n + 1);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
		return -errno;
	return 0;
}

const char *fs_type_name(const char *path)
{
	struct statfs sf;
	if (statfs(path, &sf) != 0)
		return "unknown";
	switch ((unsigned long)sf.f_type) {
	case 0xEF53: return "ext4";
	case 0x58465342: return "xfs";
	case 0x9123683E: return "btrfs";
	case 0x01021994: return "tmpfs";
	case 0x794c7630: return "overlayfs";
	case 0x2FC12FC1: return "zfs";
	case 0xF2F52010: return "f2fs";
	case 0x6969: return "nfs";
	case 0x65735546: return "fuse";
	default: return "other";
	}
}

static uint64_t walk_bytes;
static int walk_evict;

static int walk_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)ftw;
	if (flag != FTW_F)
		return 0;
	walk_bytes += (uint64_t)sb->st_blocks * 512u;
	if (walk_evict) {
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			/* Dirty pages cannot be dropped: write them back first. */
			(void)fdatasync(fd);
			(void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
			close(fd);
		}
	}
	return 0;
}

int evict_dir(const char *path, uint64_t *bytes_out)
{
	walk_bytes = 0;
	walk_evict = 1;
	int rc = nftw(path, walk_cb, 16, FTW_PHYS);
	walk_evict = 0;
	if (bytes_out)
		*bytes_out = walk_bytes;
	return rc == 0 ? 0 : -errno;
}

uint64_t dir_bytes(const char *path)
{
	walk_bytes = 0;
	walk_evict = 0;
	(void)nftw(path, walk_cb, 16, FTW_PHYS);
	return walk_bytes;
}

static int sync_loop(int fd, int append, double secs, size_t blk, uint64_t *n_out,
		     double *elapsed, struct hist *h)
{
	char *buf = aligned_alloc(4096, blk < 4096 ? 4096 : blk);
	if (!buf)
		return -ENOMEM;
	memset(buf, 0xa5, blk);
	uint64_t t0 = now_ns(), end = t0 + (uint64_t)(secs * 1e9), n = 0, t = t0;
	off_t off = 0;
	int rc = 0;
	while (t < end) {
		uint64_t s = t;
		if (pwrite(fd, buf, blk, off) != (ssize_t)blk) {
			rc = -errno;
			break;
		}
		if (fdatasync(fd) != 0) {
			rc = -errno;
			break;
		}
		off += (off_t)blk;
		if (!append && off >= (off_t)(16u << 20))
			off = 0;
		n++;
		t = now_ns();
		if (h)
			hist_add(h, t - s);
	}
	*n_out = n;
	*elapsed = (double)(t - t0) / 1e9;
	free(buf);
	return rc;
}

int fsync_rate(const char *dir, double secs, size_t blk, double *append, double *prealloc,
	       struct hist *lat_append)
{
	char path[PATH_MAX];
	uint64_t n;
	double el;
	int rc;

	*append = 0;
	if (prealloc)
		*prealloc = 0;
	snprintf(path, sizeof(path), "%s/fsync-probe.dat", dir);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	(void)fsync(fd);
	/* 1: append, the file grows with every write (what the brief asks for: size changes make
	 * the file system commit metadata too). */
	rc = sync_loop(fd, 1, secs, blk, &n, &el, lat_append);
	if (rc == 0 && el > 0)
		*append = (double)n / el;
	close(fd);
	unlink(path);
	if (rc || !prealloc)
		return rc;

	/* 2: overwrite inside a preallocated, already written file: data only, no metadata (what
	 * a log with preallocated, recycled segments gets at best). */
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	char *zero = calloc(1, 1u << 20); /* a 16 MiB file, written and synced before timing */
	if (!zero) {
		close(fd);
		unlink(path);
		return -ENOMEM;
	}
	for (int i = 0; i < 16 && rc == 0; i++)
		if (pwrite(fd, zero, 1u << 20, (off_t)i << 20) != (ssize_t)(1u << 20))
			rc = -errno;
	free(zero);
	if (rc == 0 && fsync(fd) != 0)
		rc = -errno;
	if (rc == 0)
		rc = sync_loop(fd, 0, secs, blk, &n, &el, NULL);
	if (rc == 0 && el > 0)
		*prealloc = (double)n / el;
	close(fd);
	unlink(path);
	return rc;
}
