/* SPDX-License-Identifier: MIT */
/*
 * recovery.h - rebuild the live map from the WAL at open (rules R.1 - R.15 in recovery.c).
 */
#ifndef PKV_RECOVERY_H
#define PKV_RECOVERY_H

#include <stdint.h>

struct pkv;

/*
 * Replay every WAL lane of db->dir on top of sequence number @base_seq (the snapshot's, or 0),
 * repair the lanes so that appending can go on, and leave every lane of this open ready to
 * append. Fills db->rec. Returns 0, PKV_ECORRUPT (logged with file and offset), or -errno.
 */
int pkv__recover(struct pkv *db, uint64_t base_seq);

#endif /* PKV_RECOVERY_H */
