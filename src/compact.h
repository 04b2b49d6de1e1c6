/* SPDX-License-Identifier: MIT */
/*
 * compact.h - compaction and the snapshot base image's life cycle (rules C.1 - C.8 in compact.c).
 */
#ifndef PKV_COMPACT_H
#define PKV_COMPACT_H

#include <stdint.h>

struct pkv;

/* Run one compaction now (serialized with any other). 0 or a negative code. */
int pkv__compact_run(struct pkv *db);

/* The background compactor: started after open unless PKV_OPEN_NO_AUTOCOMPACT. */
int pkv__compactor_start(struct pkv *db);
void pkv__compactor_stop(struct pkv *db);
/* Tell the compactor that the WAL grew (cheap; it decides). */
void pkv__compactor_kick(struct pkv *db);

#endif /* PKV_COMPACT_H */
