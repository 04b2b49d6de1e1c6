/* SPDX-License-Identifier: MIT */
/*
 * glob.h - Redis-style glob patterns for KEYS, SCAN MATCH and CONFIG GET: '*' (any run), '?'
 * (one byte), '[abc]' / '[a-z]' / '[^a]' (a class, '!' negates too), '\x' (x itself).
 * Byte strings, no terminator needed; linear backtracking (no exponential blow-up).
 */
#ifndef PKV_SERVER_GLOB_H
#define PKV_SERVER_GLOB_H

#include <stdbool.h>
#include <stddef.h>

bool glob_match(const char *pat, size_t plen, const char *s, size_t slen, bool nocase);

#endif /* PKV_SERVER_GLOB_H */
