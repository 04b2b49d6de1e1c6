/* SPDX-License-Identifier: MIT */
/*
 * resp.h - the RESP2/RESP3 request parser and reply encoder of pkv-server: pure functions over
 * byte buffers, no I/O, no global state (fuzz/fuzz_resp.c drives the parser).
 *
 * Requests are what Redis clients send: a multibulk ("*<n>\r\n" then n times
 * "$<len>\r\n<bytes>\r\n") or an inline command (one line, arguments separated by blanks, for
 * telnet users). The parser is resumable: it keeps its progress over a command that arrives in
 * pieces, so a command sent a byte at a time costs O(its length), not O(length^2). Arguments are
 * offsets into the caller's buffer (which may move between calls: the caller grows it), never
 * copies.
 *
 * Limits, checked on the headers before anything of the declared size is allocated:
 *   - a bulk longer than resp_parser.max_bulk (the server sets PKV_MAX_VALUE) is refused;
 *   - a multibulk count over RESP_MAX_ARGS is refused; the argument array grows with the
 *     arguments that actually arrived, not with the declared count;
 *   - an inline line or a header line longer than RESP_MAX_INLINE is refused.
 */
#ifndef PKV_SERVER_RESP_H
#define PKV_SERVER_RESP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** Most arguments one command may declare (Redis refuses more than INT_MAX; we keep it lower). */
#define RESP_MAX_ARGS (1024 * 1024)
/** Longest inline command line, and longest "*<n>" / "$<n>" header line. */
#define RESP_MAX_INLINE (64 * 1024)

/** One argument: @len bytes at @off from the start of the command. */
struct resp_arg {
	size_t off;
	size_t len;
};

/**
 * struct resp_parser - progress over the command being parsed. Zero-initialize, set @max_bulk,
 * then call resp_parse() with the bytes from the command's first byte on.
 * @max_bulk: longest bulk accepted (bytes).
 * @pos:      bytes of the command consumed so far; after RESP_CMD its whole length.
 * @nargs:    declared argument count of a multibulk, 0 before its header.
 * @bulklen:  length of the bulk whose bytes are awaited when @in_bulk.
 * @in_bulk:  the "$" header of the next argument was read, its bytes are awaited.
 * @argc, @argv, @cap: the arguments parsed so far (argv is malloc'ed, grown by doubling).
 * @err:      after RESP_ERROR: what was wrong (the text after "Protocol error: ").
 */
struct resp_parser {
	size_t max_bulk;
	size_t pos;
	size_t nargs;
	size_t bulklen;
	bool in_bulk;
	size_t argc;
	size_t cap;
	struct resp_arg *argv;
	char err[80];
};

enum resp_status {
	RESP_ERROR = -1, /* protocol error: p->err says why; the connection should be closed */
	RESP_NOMEM = -2, /* the argument array could not grow */
	RESP_AGAIN = 0, /* the command is incomplete: call again with more bytes */
	RESP_CMD = 1, /* a whole command: p->argc, p->argv; p->pos bytes long (argc may be 0) */
};

/**
 * resp_parse() - continue parsing the command that starts at @buf.
 * @p:   parser state; must be fresh (resp_reset) for a new command.
 * @buf: the command's bytes from its first one (the same bytes as at the previous call, plus
 *       more at the end; the buffer may have moved).
 * @len: bytes available at @buf.
 * Returns: RESP_CMD, RESP_AGAIN, RESP_ERROR or RESP_NOMEM.
 */
int resp_parse(struct resp_parser *p, const char *buf, size_t len);

/** resp_reset() - get ready for the next command (keeps the argument array). */
void resp_reset(struct resp_parser *p);

/** resp_free() - free the argument array. */
void resp_free(struct resp_parser *p);

/* ---- replies ---------------------------------------------------------------------------- */

/**
 * struct rbuf - a growable byte buffer replies are encoded into. @oom turns true when a growth
 * failed: later appends are dropped and the owner closes the connection.
 */
struct rbuf {
	char *p;
	size_t len;
	size_t cap;
	bool oom;
};

void rbuf_free(struct rbuf *b);
/** rbuf_reserve() - make room for @n more bytes. Returns a pointer to them, NULL on failure. */
char *rbuf_reserve(struct rbuf *b, size_t n);
void rbuf_append(struct rbuf *b, const void *data, size_t n);
/** rbuf_truncate() - drop what was appended after length @len (a retried command's replies). */
void rbuf_truncate(struct rbuf *b, size_t len);

/* Encoders; @proto is 2 or 3 where the two differ. */
void resp_simple(struct rbuf *b, const char *s); /* +s */
void resp_error(struct rbuf *b, const char *msg); /* -msg (CR/LF become spaces) */
void resp_errorf(struct rbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void resp_int(struct rbuf *b, long long v); /* :v */
/* resp_fmt_ll() - the decimal digits of @v at @d (room for 20), no NUL; returns how many. */
size_t resp_fmt_ll(char *d, long long v);
size_t resp_fmt_ull(char *d, unsigned long long v);
void resp_bulk(struct rbuf *b, const void *data, size_t n); /* $n data */
void resp_bulk_cstr(struct rbuf *b, const char *s);
void resp_bulk_ll(struct rbuf *b, long long v); /* a number as a bulk string */
void resp_null(struct rbuf *b, int proto); /* $-1 / _ */
void resp_null_array(struct rbuf *b, int proto); /* *-1 / _ */
void resp_array(struct rbuf *b, size_t n); /* *n */
void resp_map(struct rbuf *b, int proto, size_t n); /* %n / *2n */
void resp_set(struct rbuf *b, int proto, size_t n); /* ~n / *n */
void resp_bool(struct rbuf *b, int proto, bool v); /* #t/#f / :1/:0 */
void resp_double(struct rbuf *b, int proto, double v); /* ,v / $ bulk */
void resp_verbatim(struct rbuf *b, int proto, const char *fmt3, const void *data, size_t n);
/* =n txt:... (RESP3) / $n ... */

/** resp_bulk_header_len() - bytes of "$<n>\r\n" for a bulk of @n bytes (for sizing). */
size_t resp_bulk_header_len(size_t n);

#endif /* PKV_SERVER_RESP_H */
