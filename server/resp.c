/* SPDX-License-Identifier: MIT */
/*
 * resp.c - RESP request parsing and reply encoding (see resp.h). No I/O, no globals.
 *
 * Parsing invariants (fuzz/fuzz_resp.c checks them on every input):
 *   R1. Nothing is allocated in proportion to a declared size: a count or length is only a
 *       promise until its bytes arrived, so argv grows with the arguments that did arrive, and a
 *       bulk's bytes stay in the caller's buffer.
 *   R2. Every argument lies inside the bytes given: off + len <= pos <= len.
 *   R3. A header is refused as soon as it is complete and bad (or too long to be a header),
 *       without waiting for the bytes it announces.
 */
#include "resp.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- parsing ---------------------------------------------------------------------------- */

void resp_reset(struct resp_parser *p)
{
	p->pos = 0;
	p->nargs = 0;
	p->bulklen = 0;
	p->in_bulk = false;
	p->argc = 0;
	p->err[0] = '\0';
}

void resp_free(struct resp_parser *p)
{
	free(p->argv);
	p->argv = NULL;
	p->cap = 0;
	p->argc = 0;
}

static int fail(struct resp_parser *p, const char *msg)
{
	snprintf(p->err, sizeof(p->err), "%s", msg);
	return RESP_ERROR;
}

/* Add one argument, growing argv by doubling up to the declared count (R1). */
static int push_arg(struct resp_parser *p, size_t off, size_t len, size_t limit)
{
	if (p->argc == p->cap) {
		size_t ncap = p->cap ? p->cap * 2 : 8;
		struct resp_arg *na;

		if (ncap > limit)
			ncap = limit;
		if (ncap <= p->argc)
			ncap = p->argc + 1;
		na = realloc(p->argv, ncap * sizeof(*na));
		if (!na)
			return RESP_NOMEM;
		p->argv = na;
		p->cap = ncap;
	}
	p->argv[p->argc].off = off;
	p->argv[p->argc].len = len;
	p->argc++;
	return 0;
}

/*
 * Strict decimal of a header: digits only (a '-' allowed when @neg_ok), no sign '+', no blanks,
 * at most 19 digits. Returns 0 and *out, or -1.
 */
static int parse_ll(const char *s, size_t n, bool neg_ok, long long *out)
{
	unsigned long long v = 0;
	bool neg = false;
	size_t i = 0;

	if (n > 0 && s[0] == '-' && neg_ok) {
		neg = true;
		i = 1;
	}
	if (i == n || n - i > 19)
		return -1;
	for (; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > (unsigned long long)INT64_MAX)
		return -1;
	*out = neg ? -(long long)v : (long long)v;
	return 0;
}

/*
 * Find the end of the header line that starts at @from: returns 1 with *eol at its '\r' (and a
 * '\n' after it), 0 when more bytes are needed, or RESP_ERROR (R3: too long, or a CR without LF).
 */
static int find_line(struct resp_parser *p, const char *buf, size_t len, size_t from, size_t *eol,
		     const char *too_long)
{
	size_t avail = len - from;
	size_t scan = avail < RESP_MAX_INLINE + 2 ? avail : RESP_MAX_INLINE + 2;
	const char *cr = memchr(buf + from, '\r', scan);

	if (!cr) {
		if (avail > RESP_MAX_INLINE)
			return fail(p, too_long);
		return 0;
	}
	if ((size_t)(cr - buf) + 1 >= len)
		return 0;
	if (cr[1] != '\n')
		return fail(p, "invalid line ending (CR without LF)");
	*eol = (size_t)(cr - buf);
	return 1;
}

static int parse_inline(struct resp_parser *p, const char *buf, size_t len)
{
	const char *nl = memchr(buf, '\n', len < RESP_MAX_INLINE + 1 ? len : RESP_MAX_INLINE + 1);
	size_t end, i = 0;

	if (!nl) {
		if (len > RESP_MAX_INLINE)
			return fail(p, "too big inline request");
		return RESP_AGAIN;
	}
	end = (size_t)(nl - buf);
	p->pos = end + 1;
	if (end > 0 && buf[end - 1] == '\r')
		end--;
	/* Blank-separated words; quotes are not interpreted (a telnet convenience only). */
	while (i < end) {
		size_t start;
		int rc;

		while (i < end && (buf[i] == ' ' || buf[i] == '\t'))
			i++;
		if (i == end)
			break;
		start = i;
		while (i < end && buf[i] != ' ' && buf[i] != '\t')
			i++;
		rc = push_arg(p, start, i - start, RESP_MAX_INLINE);
		if (rc)
			return rc;
	}
	return RESP_CMD;
}

int resp_parse(struct resp_parser *p, const char *buf, size_t len)
{
	size_t eol;
	long long ll;
	int rc;

	if (p->nargs == 0) {
		/* the command's first line, from its first byte */
		if (len == 0)
			return RESP_AGAIN;
		if (buf[0] != '*')
			return parse_inline(p, buf, len);
		rc = find_line(p, buf, len, 1, &eol, "too big multibulk count string");
		if (rc <= 0)
			return rc;
		if (parse_ll(buf + 1, eol - 1, true, &ll) < 0 || ll > RESP_MAX_ARGS)
			return fail(p, "invalid multibulk length");
		p->pos = eol + 2;
		if (ll <= 0)
			return RESP_CMD; /* "*0" and "*-1": nothing to run, as Redis does */
		p->nargs = (size_t)ll;
	}
	while (p->argc < p->nargs) {
		if (!p->in_bulk) {
			if (p->pos >= len)
				return RESP_AGAIN;
			if (buf[p->pos] != '$') {
				snprintf(p->err, sizeof(p->err), "expected '$', got '%c'",
					 (buf[p->pos] >= 32 && buf[p->pos] < 127) ? buf[p->pos] :
										    '?');
				return RESP_ERROR;
			}
			rc = find_line(p, buf, len, p->pos + 1, &eol, "too big bulk count string");
			if (rc <= 0)
				return rc;
			/* R3: refused on the header, before a byte of the bulk arrived. */
			if (parse_ll(buf + p->pos + 1, eol - p->pos - 1, false, &ll) < 0 ||
			    (unsigned long long)ll > p->max_bulk)
				return fail(p, "invalid bulk length");
			p->bulklen = (size_t)ll;
			p->in_bulk = true;
			p->pos = eol + 2;
		}
		if (len - p->pos < p->bulklen + 2)
			return RESP_AGAIN;
		if (buf[p->pos + p->bulklen] != '\r' || buf[p->pos + p->bulklen + 1] != '\n')
			return fail(p, "bulk not followed by CRLF");
		rc = push_arg(p, p->pos, p->bulklen, p->nargs);
		if (rc)
			return rc;
		p->pos += p->bulklen + 2;
		p->in_bulk = false;
	}
	return RESP_CMD;
}

/* ---- reply buffer ----------------------------------------------------------------------- */

void rbuf_free(struct rbuf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = 0;
	b->cap = 0;
}

char *rbuf_reserve(struct rbuf *b, size_t n)
{
	if (b->oom)
		return NULL;
	if (b->cap - b->len < n) {
		size_t ncap = b->cap ? b->cap : 1024;
		char *np;

		while (ncap - b->len < n) {
			if (ncap > SIZE_MAX / 2) {
				b->oom = true;
				return NULL;
			}
			ncap *= 2;
		}
		np = realloc(b->p, ncap);
		if (!np) {
			b->oom = true;
			return NULL;
		}
		b->p = np;
		b->cap = ncap;
	}
	return b->p + b->len;
}

void rbuf_append(struct rbuf *b, const void *data, size_t n)
{
	char *d = rbuf_reserve(b, n);

	if (!d)
		return;
	if (n)
		memcpy(d, data, n);
	b->len += n;
}

void rbuf_truncate(struct rbuf *b, size_t len)
{
	if (len < b->len)
		b->len = len;
}

/* ---- encoders --------------------------------------------------------------------------- */

/*
 * Numbers by hand: every integer reply and every bulk header (each GET) went through snprintf,
 * a tenth of an INCR's time.
 */
size_t resp_fmt_ull(char *d, unsigned long long v)
{
	char tmp[20];
	size_t n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (size_t i = 0; i < n; i++)
		d[i] = tmp[n - 1 - i];
	return n;
}

size_t resp_fmt_ll(char *d, long long v)
{
	if (v < 0) {
		d[0] = '-';
		return 1 + resp_fmt_ull(d + 1, -(unsigned long long)v); /* LLONG_MIN too */
	}
	return resp_fmt_ull(d, (unsigned long long)v);
}

/* "<prefix><v>\r\n" */
static void prefixed_ll(struct rbuf *b, char prefix, long long v)
{
	char *d = rbuf_reserve(b, 24);
	size_t n;

	if (!d)
		return;
	d[0] = prefix;
	n = 1 + resp_fmt_ll(d + 1, v);
	memcpy(d + n, "\r\n", 2);
	b->len += n + 2;
}

void resp_simple(struct rbuf *b, const char *s)
{
	size_t n = strlen(s);
	char *d = rbuf_reserve(b, n + 3);

	if (!d)
		return;
	d[0] = '+';
	memcpy(d + 1, s, n);
	memcpy(d + 1 + n, "\r\n", 2);
	b->len += n + 3;
}

void resp_error(struct rbuf *b, const char *msg)
{
	size_t n = strlen(msg), i;
	char *d = rbuf_reserve(b, n + 3);

	if (!d)
		return;
	d[0] = '-';
	/* An error is one line: a CR or LF in it (an echoed argument) would end it early. */
	for (i = 0; i < n; i++)
		d[1 + i] = (msg[i] == '\r' || msg[i] == '\n') ? ' ' : msg[i];
	memcpy(d + 1 + n, "\r\n", 2);
	b->len += n + 3;
}

void resp_errorf(struct rbuf *b, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	resp_error(b, msg);
}

void resp_int(struct rbuf *b, long long v)
{
	prefixed_ll(b, ':', v);
}

size_t resp_bulk_header_len(size_t n)
{
	size_t digits = 1;

	while (n >= 10) {
		n /= 10;
		digits++;
	}
	return digits + 3;
}

void resp_bulk(struct rbuf *b, const void *data, size_t n)
{
	size_t h = resp_bulk_header_len(n);
	char *d = rbuf_reserve(b, h + n + 2);

	if (!d)
		return;
	d[0] = '$';
	resp_fmt_ull(d + 1, n);
	memcpy(d + h - 2, "\r\n", 2);
	if (n)
		memcpy(d + h, data, n);
	memcpy(d + h + n, "\r\n", 2);
	b->len += h + n + 2;
}

void resp_bulk_cstr(struct rbuf *b, const char *s)
{
	resp_bulk(b, s, strlen(s));
}

void resp_bulk_ll(struct rbuf *b, long long v)
{
	char tmp[24];

	resp_bulk(b, tmp, resp_fmt_ll(tmp, v));
}

void resp_null(struct rbuf *b, int proto)
{
	rbuf_append(b, proto >= 3 ? "_\r\n" : "$-1\r\n", proto >= 3 ? 3 : 5);
}

void resp_null_array(struct rbuf *b, int proto)
{
	rbuf_append(b, proto >= 3 ? "_\r\n" : "*-1\r\n", proto >= 3 ? 3 : 5);
}

void resp_array(struct rbuf *b, size_t n)
{
	prefixed_ll(b, '*', (long long)n);
}

void resp_map(struct rbuf *b, int proto, size_t n)
{
	if (proto >= 3)
		prefixed_ll(b, '%', (long long)n);
	else
		prefixed_ll(b, '*', (long long)(2 * n));
}

void resp_set(struct rbuf *b, int proto, size_t n)
{
	prefixed_ll(b, proto >= 3 ? '~' : '*', (long long)n);
}

void resp_bool(struct rbuf *b, int proto, bool v)
{
	if (proto >= 3)
		rbuf_append(b, v ? "#t\r\n" : "#f\r\n", 4);
	else
		resp_int(b, v ? 1 : 0);
}

void resp_double(struct rbuf *b, int proto, double v)
{
	char tmp[64];
	int n;

	if (isinf(v))
		n = snprintf(tmp, sizeof(tmp), "%s", v > 0 ? "inf" : "-inf");
	else if (isnan(v))
		n = snprintf(tmp, sizeof(tmp), "nan");
	else
		n = snprintf(tmp, sizeof(tmp), "%.17g", v);
	if (proto >= 3) {
		rbuf_append(b, ",", 1);
		rbuf_append(b, tmp, (size_t)n);
		rbuf_append(b, "\r\n", 2);
	} else {
		resp_bulk(b, tmp, (size_t)n);
	}
}

void resp_verbatim(struct rbuf *b, int proto, const char *fmt3, const void *data, size_t n)
{
	if (proto < 3) {
		resp_bulk(b, data, n);
		return;
	}
	prefixed_ll(b, '=', (long long)(n + 4));
	rbuf_append(b, fmt3, 3);
	rbuf_append(b, ":", 1);
	rbuf_append(b, data, n);
	rbuf_append(b, "\r\n", 2);
}
