/* SPDX-License-Identifier: MIT */
/*
 * test_formats.c - stores written by earlier releases keep opening (docs/format.md, "Versions").
 *
 * tests/fixtures/v1-store/store was written by the library before the WAL and snapshot format
 * bump (WAL segment version 1, snapshot version 2), by make_v1_store.c next to it: a snapshot
 * with an overwrite and a delete folded in, then a WAL tail that overwrites and deletes snapshot
 * keys, adds keys (binary ones too) and puts and deletes a key of its own. Each test opens a copy
 * (an open writes: the lock file, recovery's cut) and checks every key the history names.
 * Public API only.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define T_TIMEOUT 60

struct kv {
	const void *key;
	size_t klen;
	const void *val; /* NULL: absent */
	size_t vlen;
};

static const unsigned char bkey[] = {0x00, 0xff, 0x01, 'k'};
static const unsigned char bval[] = {'v', 0x00, 0x00, 0xfe};
static const unsigned char bkey2[] = {0x80, 0x81};
static char big[3000];

/* The state make_v1_store.c left: every key it ever wrote, present or absent. */
static void v1_state(struct kv *out, size_t *n)
{
	size_t i = 0;

	memset(big, 'B', sizeof(big));
	out[i++] = (struct kv){"alpha", 5, "one", 3};
	out[i++] = (struct kv){"beta", 4, "2", 1};
	out[i++] = (struct kv){"gamma", 5, NULL, 0};
	out[i++] = (struct kv){bkey, sizeof(bkey), bval, sizeof(bval)};
	out[i++] = (struct kv){"delme", 5, NULL, 0};
	out[i++] = (struct kv){"delta", 5, "4", 1};
	out[i++] = (struct kv){bkey2, sizeof(bkey2), "bin", 3};
	out[i++] = (struct kv){"big", 3, big, sizeof(big)};
	out[i++] = (struct kv){"tmp", 3, NULL, 0};
	*n = i;
}

static void check_state(pkv *db, const struct kv *st, size_t n, const char *when)
{
	uint64_t present = 0;

	for (size_t i = 0; i < n; i++) {
		char buf[4096];
		size_t vlen = 0;
		int r = pkv_get(db, st[i].key, st[i].klen, buf, sizeof(buf), &vlen);

		if (st[i].val == NULL) {
			cr_assert_eq(r, PKV_NOTFOUND, "%s: key %zu: %s, expected absent", when, i,
				     pkv_strerror(r));
			continue;
		}
		present++;
		cr_assert_eq(r, 0, "%s: key %zu: %s", when, i, pkv_strerror(r));
		cr_assert_eq(vlen, st[i].vlen, "%s: key %zu: length %zu, expected %zu", when, i,
			     vlen, st[i].vlen);
		cr_assert(memcmp(buf, st[i].val, vlen) == 0, "%s: key %zu: wrong value", when, i);
	}
	cr_assert_eq(tu_stats(db).keys, present, "%s: %llu keys, expected %llu", when,
		     (unsigned long long)tu_stats(db).keys, (unsigned long long)present);
}

static void copy_fixture(void)
{
	tu_copy_tree(PKV_FIXTURES "/v1-store/store", tu_db);
}

TestSuite(formats, .init = tu_setup, .fini = tu_teardown, .timeout = T_TIMEOUT);

/* The v1 store opens with every key as its history left it: snapshot base plus WAL tail. */
Test(formats, v1_store_opens)
{
	struct kv st[16];
	size_t n;
	pkv_options o;
	pkv *db;

	v1_state(st, &n);
	copy_fixture();
	tu_opts(&o, PKV_DURABLE_PROCESS);
	db = tu_open(tu_db, &o);
	cr_assert_eq(tu_stats(db).snapshot_seq, 7, "the fixture's snapshot is at seq 7");
	cr_assert_eq(tu_stats(db).last_seq, 14, "the fixture's history is 14 writes long");
	cr_assert_eq(tu_stats(db).discarded_records, 0, "nothing of the fixture is discarded");
	check_state(db, st, n, "v1 open");
	cr_assert_eq(pkv_verify(db), 0, "the v1 snapshot verifies");
	tu_close(db);
}

/* Writing on top of a v1 store, compacting it, and reopening keeps old and new keys. */
Test(formats, v1_store_continues)
{
	struct kv st[16];
	size_t n;
	pkv_options o;
	pkv *db;

	v1_state(st, &n);
	copy_fixture();
	tu_opts(&o, PKV_DURABLE_PROCESS);
	db = tu_open(tu_db, &o);
	cr_assert_eq(pkv_put(db, "new", 3, "n", 1), 0);
	cr_assert_eq(pkv_del(db, "alpha", 5), 0);
	tu_close(db);
	st[n++] = (struct kv){"new", 3, "n", 1};
	st[0].val = NULL;

	/* recovery.c R.13: the new records went to a new segment of version 2, never into the
	 * version 1 segment (whose format cannot hold newer record types). */
	{
		struct tu_wal w;
		int newer = 0;

		tu_wal_read(tu_db, &w);
		for (int i = 0; i < w.nrecs; i++) {
			size_t len;
			unsigned char *hdr = tu_read_file(w.files[w.recs[i].file], &len);
			uint32_t version;

			cr_assert_geq(len, 12);
			memcpy(&version, hdr + 8, 4);
			free(hdr);
			cr_assert_eq(version, w.recs[i].seq > 14 ? 2u : 1u,
				     "record %llu is in a segment of version %u",
				     (unsigned long long)w.recs[i].seq, version);
			newer += w.recs[i].seq > 14;
		}
		cr_assert_eq(newer, 2, "the two new writes are in the WAL");
		tu_wal_free(&w);
	}

	db = tu_open(tu_db, &o);
	check_state(db, st, n, "reopen after writes on a v1 store");
	cr_assert_eq(pkv_compact(db), 0);
	check_state(db, st, n, "after compacting a v1 store");
	tu_close(db);

	db = tu_open(tu_db, &o);
	check_state(db, st, n, "reopen after compacting a v1 store");
	cr_assert_eq(pkv_verify(db), 0);
	tu_close(db);
}

/* A read-only open of a v1 store serves it too. */
Test(formats, v1_store_readonly)
{
	struct kv st[16];
	size_t n;
	pkv_options o;
	pkv *db;

	v1_state(st, &n);
	copy_fixture();
	tu_opts(&o, PKV_DURABLE_PROCESS);
	o.flags |= PKV_OPEN_READONLY;
	db = tu_open(tu_db, &o);
	check_state(db, st, n, "read-only open of v1");
	cr_assert_eq(pkv_put(db, "x", 1, "y", 1), PKV_EREADONLY);
	tu_close(db);
}
