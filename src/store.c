/* SPDX-License-Identifier: MIT */
/*
 * store.c - helpers of the store handle (store.h) that the layers below the public API use.
 */
#include <stdbool.h>

#include "errors.h"
#include "store.h"

void pkv__store_set_readonly(struct pkv *db, int reason)
{
	int expected = 0;

	if (__atomic_compare_exchange_n(&db->readonly_reason, &expected, reason, false,
					__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE) &&
	    reason != PKV_EREADONLY)
		pkv__log(db, PKV_LOG_ERROR, "store %s refuses writes from now on: %s",
			 db->dir ? db->dir : "(memory)", pkv_strerror(reason));
}
