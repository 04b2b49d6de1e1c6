/* SPDX-License-Identifier: MIT */
/*
 * errors.h - the one list of pkv's own error codes.
 *
 * PKV_ERRNO_MAP is an X-macro: each entry is (name, value, message). include/pkv.h spells the
 * constants out for its readers; errors.c generates pkv_strerror from this list and pins every
 * constant to it with _Static_assert, so the two can never disagree.
 */
#ifndef PKV_ERRORS_H
#define PKV_ERRORS_H

#include "pkv.h"

#define PKV_ERRNO_MAP(XX)                                                                      \
	XX(NOTFOUND, -30001, "key not found")                                                  \
	XX(EINVAL, -30002, "invalid argument")                                                 \
	XX(ETOOBIG, -30003, "key or value too large")                                          \
	XX(ELOCKED, -30004, "store directory is locked by another open handle")               \
	XX(ECORRUPT, -30005, "store files are corrupt")                                       \
	XX(EREADONLY, -30006, "store is read-only (opened read-only, or writes stopped after an I/O error)")  \
	XX(ECONFLICT, -30007, "a condition of the write did not hold; nothing was written")

/* errno values never reach this far down; PKV_* codes live below it. */
#define PKV__ERRNO_MAX 4095

#endif /* PKV_ERRORS_H */
