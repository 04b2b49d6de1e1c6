/* SPDX-License-Identifier: MIT */
/*
 * test_verify.c - pkv_verify / pkv_verify_ex on the WAL and the snapshot (verify.c V.1 - V.3):
 * what it counts on an intact store, a damaged record of a store open for writing, a torn tail
 * of a read-only store, and bad arguments. Public API, plus testutil's WAL reader to find
 * records on disk.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

TestSuite(verify, .init = tu_setup, .fini = tu_teardown, .timeout = 120);

static void put_n(pkv *db, int from, int to)
{
	char k[32];

	for (int i = from; i < to; i++) {
		int n = snprintf(k, sizeof(k), "key%d", i);
		cr_assert_eq(pkv_put(db, k, (size_t)n, "value", 5), 0);
	}
}

Test(verify, counts_of_an_intact_store)
{
	pkv *db = tu_open(tu_db, NULL);
	pkv_verify_report rep;

	put_n(db, 0, 100);
	cr_assert_eq(pkv_verify_ex(db, &rep), 0);
	cr_expect_eq(rep.snapshot_records, 0);
	cr_expect_eq(rep.wal_records, 100);
	cr_expect_geq(rep.wal_segments, 1);
	cr_expect_eq(rep.wal_first_seq, 1);
	cr_expect_eq(rep.wal_last_seq, 100);
	cr_expect_eq(rep.wal_torn, 0);
	cr_expect_gt(rep.wal_bytes, 100 * 32);
	cr_assert_eq(pkv_compact(db), 0);
	put_n(db, 100, 110);
	cr_assert_eq(pkv_verify_ex(db, &rep), 0);
	cr_expect_eq(rep.snapshot_records, 100);
	cr_expect_gt(rep.snapshot_bytes, 0);
	cr_expect_eq(rep.wal_first_seq, 101, "continuity is checked from the snapshot's seq on");
	cr_expect_eq(rep.wal_last_seq, 110);
	cr_expect_eq(rep.wal_records, 10, "the segments the snapshot covers are gone");
	cr_expect_eq(pkv_verify(db), 0);
	tu_close(db);

	/* The same store read-only (nothing replayed past it), then in memory. */
	pkv_options o;
	pkv_options_default(&o);
	o.flags = PKV_OPEN_READONLY;
	db = tu_open(tu_db, &o);
	cr_assert_eq(pkv_verify_ex(db, &rep), 0);
	cr_expect_eq(rep.wal_last_seq, 110);
	cr_expect_eq(rep.wal_records, 10);
	tu_close(db);
	db = tu_open(NULL, NULL);
	put_n(db, 0, 10);
	cr_expect_eq(pkv_verify_ex(db, &rep), 0);
	cr_expect_eq(rep.wal_records, 0);
	tu_close(db);
	cr_expect_eq(pkv_verify(NULL), PKV_EINVAL);
	cr_expect_eq(pkv_verify_ex(NULL, &rep), PKV_EINVAL);
}

/* Flip one byte of the value of record @seq in its segment file. */
static void damage_record(uint64_t seq)
{
	struct tu_wal w;
	struct tu_rec *by;

	tu_wal_read(tu_db, &w);
	by = tu_wal_by_seq(&w);
	cr_assert_not_null(by);
	struct tu_rec *r = &by[seq - 1]; /* seqs 1 .. n, sorted */
	cr_assert_eq(r->seq, seq);
	int fd = open(w.files[r->file], O_RDWR);
	cr_assert_geq(fd, 0);
	unsigned char b;
	off_t at = r->off + TU_REC_HDR + r->klen; /* the first byte of the value */
	cr_assert_eq(pread(fd, &b, 1, at), 1);
	b ^= 0x40;
	cr_assert_eq(pwrite(fd, &b, 1, at), 1);
	close(fd);
	free(by);
	tu_wal_free(&w);
}

Test(verify, a_damaged_record_of_a_store_open_for_writing)
{
	pkv *db = tu_open(tu_db, NULL);
	pkv_verify_report rep;

	put_n(db, 0, 50);
	cr_assert_eq(pkv_verify(db), 0);
	damage_record(20); /* the file shares its pages with the store's mapping */
	cr_expect_eq(pkv_verify_ex(db, &rep), PKV_ECORRUPT);
	cr_expect_lt(rep.wal_records, 50, "the check stopped at the damage");
	tu_close(db);
}

Test(verify, a_torn_tail_of_a_read_only_store)
{
	pkv *db = tu_open(tu_db, NULL);
	pkv_options o;
	pkv_verify_report rep;

	put_n(db, 0, 50);
	tu_close(db);
	damage_record(50); /* the last record: what a crash mid-write leaves */
	pkv_options_default(&o);
	o.flags = PKV_OPEN_READONLY;
	db = tu_open(tu_db, &o);
	cr_assert_eq(pkv_verify_ex(db, &rep), 0, "a torn tail is not damage");
	cr_expect_eq(rep.wal_torn, 1);
	cr_expect_eq(rep.wal_records, 49);
	cr_expect_eq(rep.wal_last_seq, 49);
	tu_close(db);
}
