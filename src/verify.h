/* SPDX-License-Identifier: MIT */
/*
 * verify.h - checking the WAL files of a store (verify.c, rules V.1 - V.3).
 */
#ifndef PKV_VERIFY_H
#define PKV_VERIFY_H

#include <stdint.h>

#include "pkv.h"

struct pkv;

/*
 * Check every WAL segment of @db record by record and that sequence numbers (@base_seq, C] are
 * each held once across lanes; add the counts to @rep. The caller holds the compaction lock.
 * Returns 0; PKV_ECORRUPT (the log callback names the file and offset); -ENOMEM; -errno.
 */
int pkv__verify_wal(struct pkv *db, uint64_t base_seq, pkv_verify_report *rep);

#endif /* PKV_VERIFY_H */
