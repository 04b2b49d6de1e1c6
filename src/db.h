/* SPDX-License-Identifier: MIT */
/*
 * db.h - what the public API's files (db.c, read.c, write.c) share.
 */
#ifndef PKV_DB_H
#define PKV_DB_H

#include <stddef.h>

#include "errors.h"

/* A key argument: PKV_EINVAL (NULL or empty), PKV_ETOOBIG (over PKV_MAX_KEY), or 0. */
static inline int pkv__db_check_key(const void *key, size_t klen)
{
	if (key == NULL || klen == 0)
		return PKV_EINVAL;
	if (klen > PKV_MAX_KEY)
		return PKV_ETOOBIG;
	return 0;
}

#endif /* PKV_DB_H */
