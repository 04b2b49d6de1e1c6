/* SPDX-License-Identifier: MIT */
/*
 * compact.c - compaction: snapshot the live map and retire the WAL it covers.
 */
#include "db.h"
#include "errors.h"
#include "rcu.h"

PKV_EXPORT int pkv_compact(pkv *db)
{
	if (db == NULL)
		return PKV_EINVAL;
	if (db->in_memory)
		return 0;
	if (pkv__db_readonly(db))
		return PKV_EREADONLY;
	pkv__rcu_enter();
	/* Snapshots are not written yet: make the WAL durable, which is what they would cover. */
	return pkv__sync_wait(db, __atomic_load_n(&db->wal.seq, __ATOMIC_ACQUIRE));
}
