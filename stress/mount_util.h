/* SPDX-License-Identifier: MIT */
/*
 * mount_util.h - real file systems for the stress drivers that need one (header-only,
 * file-static): a private mount namespace, tmpfs and ext4-on-a-loop-device mounts, free space,
 * and the exit code of a driver that cannot run here.
 *
 * Mounting needs root (CAP_SYS_ADMIN). A driver that meets EPERM (not root, or a container
 * without the capability), no loop device, or a kernel without the file system prints
 * "SKIPPED: <reason>" and exits with MU_SKIP_CODE, which ctest's SKIP_RETURN_CODE turns into a
 * skipped test rather than a pass or a failure.
 *
 * Clean-up. Each driver first moves into a private mount namespace (mu_private_ns): its mounts
 * are invisible to the rest of the system and disappear with the last process in the namespace,
 * so a driver that is killed (a ctest timeout) leaves no mount behind, and a loop device attached
 * with LO_FLAGS_AUTOCLEAR detaches itself when its file system is unmounted that way. The
 * drivers still unmount explicitly on every path.
 */
#ifndef PKV_STRESS_MOUNT_UTIL_H
#define PKV_STRESS_MOUNT_UTIL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__GNUC__)
#define MU_UNUSED __attribute__((unused))
#else
#define MU_UNUSED
#endif

/* Exit code of a driver that cannot run on this machine (ctest SKIP_RETURN_CODE). */
#define MU_SKIP_CODE 77

/*
 * Enter a private mount namespace whose mounts do not propagate back. 0, or -errno (then the
 * caller goes on in the namespace it has and unmounts by itself; without root the mount fails
 * anyway and the driver skips).
 */
static MU_UNUSED int mu_private_ns(void)
{
	if (unshare(CLONE_NEWNS) != 0)
		return -errno;
	/* Without this, mounts made below a shared "/" would propagate to the host's namespace. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
		return -errno;
	return 0;
}

/* Is a mount(2) or loop-device error one that means "not possible here" (skip), not a bug? */
static MU_UNUSED int mu_err_means_skip(int err)
{
	return err == EPERM || err == EACCES || err == ENODEV || err == ENXIO || err == ENOENT ||
	       err == ENOTTY || err == EOPNOTSUPP || err == EROFS;
}

/* Bytes available to an unprivileged writer on the file system holding @path, or 0. */
static MU_UNUSED uint64_t mu_free_bytes(const char *path)
{
	struct statvfs sv;

	if (statvfs(path, &sv) != 0)
		return 0;
	return (uint64_t)sv.f_bavail * (uint64_t)sv.f_frsize;
}

/* Size of the file system holding @path, or 0. */
static MU_UNUSED uint64_t mu_total_bytes(const char *path)
{
	struct statvfs sv;

	if (statvfs(path, &sv) != 0)
		return 0;
	return (uint64_t)sv.f_blocks * (uint64_t)sv.f_frsize;
}

/* umount @dir, waiting out a short EBUSY (a child that just died may still hold a file). */
static MU_UNUSED int mu_umount(const char *dir)
{
	for (int i = 0; i < 100; i++) {
		if (umount2(dir, 0) == 0)
			return 0;
		if (errno != EBUSY)
			return -errno;
		usleep(20000);
	}
	return -EBUSY;
}

/*
 * Attach @image to a free loop device, with LO_FLAGS_AUTOCLEAR (it detaches itself once nothing
 * holds it: after the unmount). Writes the device's path to @dev. Returns the open descriptor of
 * the device, which the caller closes only after mounting it (closing an unmounted autoclear
 * device detaches it), or -errno.
 */
static MU_UNUSED int mu_loop_attach(const char *image, char *dev, size_t cap)
{
	int ctl, file, r = -EBUSY;

	ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (ctl < 0)
		return -errno;
	file = open(image, O_RDWR | O_CLOEXEC);
	if (file < 0) {
		r = -errno;
		close(ctl);
		return r;
	}
	/* Another process may take the device between GET_FREE and the attach: retry. */
	for (int tries = 0; tries < 32; tries++) {
		struct loop_config lc;
		int n = ioctl(ctl, LOOP_CTL_GET_FREE);
		int lfd;

		if (n < 0) {
			r = -errno;
			break;
		}
		snprintf(dev, cap, "/dev/loop%d", n);
		lfd = open(dev, O_RDWR | O_CLOEXEC);
		if (lfd < 0) {
			r = -errno; /* no device node (a container's /dev) */
			break;
		}
		memset(&lc, 0, sizeof(lc));
		lc.fd = (unsigned)file;
		lc.info.lo_flags = LO_FLAGS_AUTOCLEAR;
		if (ioctl(lfd, LOOP_CONFIGURE, &lc) == 0) {
			r = lfd;
			break;
		}
		r = -errno;
		if (r == -EINVAL || r == -ENOTTY) {
			/* Kernels before 5.8: the two-step attach. */
			struct loop_info64 li;

			if (ioctl(lfd, LOOP_SET_FD, file) == 0) {
				memset(&li, 0, sizeof(li));
				li.lo_flags = LO_FLAGS_AUTOCLEAR;
				if (ioctl(lfd, LOOP_SET_STATUS64, &li) == 0) {
					r = lfd;
					break;
				}
				r = -errno;
				ioctl(lfd, LOOP_CLR_FD, 0);
				close(lfd);
				break;
			}
			r = -errno;
		}
		close(lfd);
		if (r != -EBUSY)
			break;
	}
	close(file);
	close(ctl);
	return r;
}

/*
 * Run @argv[0] (searched in $PATH and then in /sbin and /usr/sbin, where mkfs lives) with its
 * output discarded. Returns its exit status, 127 if it was not found, or -errno.
 */
static MU_UNUSED int mu_run(char *const argv[])
{
	static const char *const dirs[] = { "/usr/sbin/", "/sbin/", "/usr/bin/", "/bin/" };
	int status;
	pid_t pid;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		char path[256];
		int null = open("/dev/null", O_RDWR);

		if (null >= 0) {
			dup2(null, 1);
			dup2(null, 2);
		}
		execvp(argv[0], argv);
		for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
			snprintf(path, sizeof(path), "%s%s", dirs[i], argv[0]);
			execv(path, argv);
		}
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

#endif /* PKV_STRESS_MOUNT_UTIL_H */
