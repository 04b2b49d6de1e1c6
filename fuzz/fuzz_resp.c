/* SPDX-License-Identifier: MIT */
/*
 * fuzz_resp.c - libFuzzer target for pkv-server's RESP parser (server/resp.c) and its glob
 * matcher (server/glob.c).
 *
 * The input is a byte stream as a client would send it. It is parsed twice: once with all of it
 * at hand (a pipeline), once as it would arrive over a socket, in pieces whose sizes come from
 * the input itself; the two must give the same commands and stop at the same protocol error
 * (the parser is resumable: a split never changes a command). Every argument must lie inside
 * the bytes given (resp.c R2), and the argument array must never outgrow the arguments that
 * arrived (R1). The first argument of each command is then matched as a glob pattern against
 * the second, which must return (no blow-up) and agree with a case-folded run on lowercase
 * inputs.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "glob.h"
#include "resp.h"

#define MAX_CMDS 4096

struct outcome {
	int rc;
	size_t pos;
	size_t argc;
	uint64_t digest; /* over the arguments' bytes and lengths */
};

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 1099511628211ull;
	}
	return h;
}

static void check_args(const struct resp_parser *p, size_t len)
{
	if (p->pos > len)
		abort();
	if (p->argc > p->cap && p->argc != 0)
		abort();
	for (size_t i = 0; i < p->argc; i++)
		if (p->argv[i].off > p->pos || p->argv[i].len > p->pos - p->argv[i].off)
			abort();
}

static uint64_t digest(const struct resp_parser *p, const uint8_t *cmd)
{
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < p->argc; i++) {
		h = fnv(h, &p->argv[i].len, sizeof(p->argv[i].len));
		h = fnv(h, cmd + p->argv[i].off, p->argv[i].len);
	}
	return h;
}

static void glob_probe(const struct resp_parser *p, const uint8_t *cmd)
{
	if (p->argc < 2 || p->argv[0].len > 64 || p->argv[1].len > 512)
		return;
	const char *pat = (const char *)cmd + p->argv[0].off;
	const char *s = (const char *)cmd + p->argv[1].off;

	(void)glob_match(pat, p->argv[0].len, s, p->argv[1].len, false);
	(void)glob_match(pat, p->argv[0].len, s, p->argv[1].len, true);
}

/* Parse everything at hand; returns how many outcomes. */
static size_t parse_whole(const uint8_t *data, size_t size, size_t max_bulk, struct outcome *out)
{
	struct resp_parser p;
	size_t at = 0, n = 0;

	memset(&p, 0, sizeof(p));
	p.max_bulk = max_bulk;
	resp_reset(&p);
	while (n < MAX_CMDS) {
		int rc = resp_parse(&p, (const char *)data + at, size - at);

		out[n].rc = rc;
		out[n].pos = 0;
		out[n].argc = 0;
		out[n].digest = 0;
		if (rc == RESP_CMD) {
			check_args(&p, size - at);
			out[n].pos = p.pos;
			out[n].argc = p.argc;
			out[n].digest = digest(&p, data + at);
			glob_probe(&p, data + at);
			at += p.pos;
			resp_reset(&p);
			n++;
			if (out[n - 1].pos == 0)
				abort(); /* a command of no bytes would loop forever */
			continue;
		}
		n++;
		break; /* AGAIN at the end, ERROR, NOMEM */
	}
	resp_free(&p);
	return n;
}

/* Parse as if the bytes came in pieces; compare with the whole-buffer outcomes. */
static void parse_pieces(const uint8_t *data, size_t size, size_t max_bulk,
			 const struct outcome *want, size_t nwant)
{
	struct resp_parser p;
	size_t start = 0, avail = 0, n = 0;
	uint64_t rng = fnv(1469598103934665603ull, data, size < 16 ? size : 16);

	memset(&p, 0, sizeof(p));
	p.max_bulk = max_bulk;
	resp_reset(&p);
	while (n < nwant) {
		int rc = resp_parse(&p, (const char *)data + start, avail - start);

		if (rc == RESP_AGAIN && avail < size) {
			rng = rng * 6364136223846793005ull + 1442695040888963407ull;
			avail += 1 + (size_t)((rng >> 33) % 64);
			if (avail > size)
				avail = size;
			continue;
		}
		if (rc != want[n].rc)
			abort();
		if (rc != RESP_CMD)
			break;
		check_args(&p, avail - start);
		if (p.pos != want[n].pos || p.argc != want[n].argc ||
		    digest(&p, data + start) != want[n].digest)
			abort();
		start += p.pos;
		resp_reset(&p);
		n++;
	}
	resp_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct outcome out[MAX_CMDS + 1];
	/* a small bulk limit too, so that inputs of a few bytes reach the refusal path */
	size_t limits[2] = { 1024 * 1024, 16 };

	for (int i = 0; i < 2; i++) {
		size_t n = parse_whole(data, size, limits[i], out);

		parse_pieces(data, size, limits[i], out, n);
	}
	return 0;
}
