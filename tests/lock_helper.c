/* SPDX-License-Identifier: MIT */
/*
 * lock_helper.c - a separate program that tests/test_lock.c runs through fork + exec, to see what
 * a store's open handle leaves to an exec'ed child.
 *
 * Usage: pkv_lock_helper DIR. Reads one-byte requests on stdin and answers each with an int
 * (native byte order) on stdout:
 *   'o'  pkv_open(DIR) and, if it worked, pkv_close: the open's code (0, PKV_ELOCKED, ...)
 *   'f'  how many of this process's descriptors refer to a file under DIR (an inherited one)
 * End of input: exit 0.
 */
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pkv.h"

static int fds_under(const char *dir)
{
	char real[PATH_MAX], link[PATH_MAX], target[PATH_MAX];
	struct dirent *e;
	size_t n;
	int count = 0;
	DIR *d;

	if (realpath(dir, real) == NULL)
		return -1;
	n = strlen(real);
	d = opendir("/proc/self/fd");
	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL) {
		ssize_t len;

		if (e->d_name[0] == '.')
			continue;
		snprintf(link, sizeof(link), "/proc/self/fd/%s", e->d_name);
		len = readlink(link, target, sizeof(target) - 1);
		if (len <= 0)
			continue;
		target[len] = '\0';
		if (strncmp(target, real, n) == 0 && (target[n] == '/' || target[n] == '\0'))
			count++;
	}
	closedir(d);
	return count;
}

int main(int argc, char **argv)
{
	char req;

	if (argc != 2)
		return 2;
	while (read(0, &req, 1) == 1) {
		int rc = -1;

		if (req == 'o') {
			pkv *db = NULL;

			rc = pkv_open(argv[1], NULL, &db);
			if (rc == 0 && pkv_close(db) != 0)
				rc = 1;
		} else if (req == 'f') {
			rc = fds_under(argv[1]);
		}
		if (write(1, &rc, sizeof(rc)) != (ssize_t)sizeof(rc))
			return 3;
	}
	return 0;
}
