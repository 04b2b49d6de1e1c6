/* SPDX-License-Identifier: MIT */
/*
 * fuzz_jsonl.c - libFuzzer target for the JSON Lines loader of `pkv load` (cli/jsonl.c).
 *
 * The input is split into lines as the loader splits standard input. Each line must either be
 * refused with a message, or parse into a key within the limits; a parsed key is then written
 * back (jsonl_format), and the written line must parse to the same bytes and expiry (the dump
 * and load of the tool are inverse), and it is put into an in-memory store and read back.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pkv.h>

#include "jsonl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c)) {                                                                        \
			fprintf(stderr, "fuzz_jsonl: check failed: %s (line %d)\n", #c, __LINE__);  \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

/* Small limits, so that "too long" is reachable by the fuzzer. */
#define MAX_KEY 64
#define MAX_VALUE 256

static pkv *db;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size;
	char why[256];

	if (db == NULL && pkv_open(NULL, NULL, &db) != 0)
		abort();
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
		struct jsonl_rec r, r2;
		size_t olen, vlen;
		char *out;
		int rc;

		why[0] = '\0';
		rc = jsonl_parse(p, len, MAX_KEY, MAX_VALUE, &r, why, sizeof(why));
		CHECK(rc == 0 || rc == -1 || rc == -2);
		if (rc == -1)
			CHECK(why[0] != '\0' && r.key == NULL && r.val == NULL);
		if (rc == 0) {
			CHECK(r.klen >= 1 && r.klen <= MAX_KEY && r.vlen <= MAX_VALUE);
			out = jsonl_format(r.key, r.klen, r.val, r.vlen, r.expires_ms, &olen);
			CHECK(out != NULL && strlen(out) == olen && memchr(out, '\n', olen) == NULL);
			CHECK(jsonl_parse(out, olen, MAX_KEY, MAX_VALUE, &r2, why, sizeof(why)) == 0);
			CHECK(r2.klen == r.klen && memcmp(r2.key, r.key, r.klen) == 0);
			CHECK(r2.vlen == r.vlen && memcmp(r2.val, r.val, r.vlen) == 0);
			CHECK(r2.expires_ms == r.expires_ms);
			free(out);
			jsonl_rec_free(&r2);

			CHECK(pkv_put(db, r.key, r.klen, r.val, r.vlen) == 0);
			char buf[MAX_VALUE];
			CHECK(pkv_get(db, r.key, r.klen, buf, sizeof(buf), &vlen) == 0);
			CHECK(vlen == r.vlen && memcmp(buf, r.val, vlen) == 0);
			CHECK(pkv_del(db, r.key, r.klen) == 0);
			jsonl_rec_free(&r);
		}
		p += len + 1;
	}
	return 0;
}
