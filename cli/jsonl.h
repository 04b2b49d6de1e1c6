/* SPDX-License-Identifier: MIT */
/*
 * jsonl.h - the JSON Lines form of a store's keys, as `pkv dump` writes and `pkv load` reads it.
 *
 * One object per line (the design brief fixes it):
 *   {"key": K, "value": V}                  K, V JSON strings: the bytes are valid UTF-8
 *   {"key_base64": K, "value_base64": V}    standard base64 with padding: any other bytes
 *   ... , "expires_ms": N                   only when the key has an expiry (ms since the epoch)
 * Key and value choose their form independently. A reader accepts exactly these members: a line
 * with an unknown member, both forms of one field, or neither is refused with a message saying
 * which. Pure functions on bytes (jansson does the JSON): the fuzz target links this file alone.
 */
#ifndef PKV_CLI_JSONL_H
#define PKV_CLI_JSONL_H

#include <stddef.h>
#include <stdint.h>

struct jsonl_rec {
	unsigned char *key; /* malloc'ed; freed by jsonl_rec_free */
	size_t klen;
	unsigned char *val; /* malloc'ed (never NULL after a successful parse, even when empty) */
	size_t vlen;
	uint64_t expires_ms; /* 0: no expiry */
};

/*
 * Parse one line (@len bytes, without its newline; a trailing '\r' is allowed) into @out.
 * Returns 0; -1 for a bad line (@why, of @whylen bytes, says what is wrong); -2 when out of
 * memory. @max_key and @max_value are the store's limits (PKV_MAX_KEY, PKV_MAX_VALUE).
 */
int jsonl_parse(const char *line, size_t len, size_t max_key, size_t max_value,
		struct jsonl_rec *out, char *why, size_t whylen);

/* Free what jsonl_parse allocated in @r and zero it. */
void jsonl_rec_free(struct jsonl_rec *r);

/*
 * Format one key as a JSON object on one line, without the newline. Returns a malloc'ed,
 * NUL-terminated string (its length in *@len; a NUL inside a key is written as \u0000) or NULL
 * when out of memory.
 */
char *jsonl_format(const void *key, size_t klen, const void *val, size_t vlen,
		   uint64_t expires_ms, size_t *len);

/* Base64 (RFC 4648, standard alphabet, padded). encode: @out has room for 4*ceil(n/3)+1 bytes
 * and is NUL-terminated; returns the length. decode: strict (canonical padding and zero pad
 * bits, no whitespace); @out has room for 3*(n/4) bytes; returns the length or -1. */
size_t jsonl_b64_encode(const void *in, size_t n, char *out);
long jsonl_b64_decode(const char *in, size_t n, unsigned char *out);

#endif /* PKV_CLI_JSONL_H */
