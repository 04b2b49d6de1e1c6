/* SPDX-License-Identifier: MIT */
/*
 * db.h - the store handle shared by every module, and the logging helper.
 */
#ifndef PKV_DB_H
#define PKV_DB_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "map.h"
#include "pkv.h"
#include "sync.h"
#include "wal.h"

struct pkv_recovery_report {
	uint64_t recovered_records;
	uint64_t discarded_records;
	uint64_t discarded_bytes;
	uint64_t gap_seq;
};

struct pkv {
	pkv_options opts;
	bool in_memory;
	bool readonly_open;
	char *dir;
	int lock_fd;
	struct pkv_map map;
	struct pkv_wal wal;
	struct pkv_sync sync;
	int readonly_reason; /* atomic: 0, or why writes are refused */
	uint64_t mem_seq;    /* atomic: sequence numbers of an in-memory store */
	struct pkv_recovery_report rec;
};

/* Send a formatted message to the application's log callback, if it has one. */
void pkv__log(struct pkv *db, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Refuse further writes with @reason (first reason wins). */
void pkv__db_set_readonly(struct pkv *db, int reason);

static inline int pkv__db_readonly(struct pkv *db)
{
	return __atomic_load_n(&db->readonly_reason, __ATOMIC_ACQUIRE);
}

#endif /* PKV_DB_H */
