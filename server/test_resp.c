/* SPDX-License-Identifier: MIT */
/*
 * test_resp.c - the RESP parser and encoder of pkv-server (server/resp.c), and the glob matcher:
 * whole commands, commands in pieces (every split point), pipelines, every refusal of resp.h's
 * limits (decided on the header, before the announced bytes), and the encodings of RESP2/RESP3.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "glob.h"
#include "resp.h"

static struct resp_parser fresh(void)
{
	struct resp_parser p;

	memset(&p, 0, sizeof(p));
	p.max_bulk = 1024 * 1024;
	resp_reset(&p);
	return p;
}

static void expect_args(const struct resp_parser *p, const char *buf, size_t n, const char **want)
{
	cr_assert_eq(p->argc, n, "argc %zu, want %zu", p->argc, n);
	for (size_t i = 0; i < n; i++) {
		cr_assert_eq(p->argv[i].len, strlen(want[i]), "arg %zu length", i);
		cr_assert(memcmp(buf + p->argv[i].off, want[i], p->argv[i].len) == 0, "arg %zu", i);
	}
}

Test(resp, multibulk_whole)
{
	const char *cmd = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nva\r\nl\r\n";
	const char *want[] = { "SET", "k", "va\r\nl" };
	struct resp_parser p = fresh();

	cr_assert_eq(resp_parse(&p, cmd, strlen(cmd)), RESP_CMD);
	cr_assert_eq(p.pos, strlen(cmd));
	expect_args(&p, cmd, 3, want);
	resp_free(&p);
}

Test(resp, every_split_point_gives_the_same_command)
{
	const char *cmd = "*3\r\n$3\r\nSET\r\n$0\r\n\r\n$10\r\n0123456789\r\n";
	const char *want[] = { "SET", "", "0123456789" };
	size_t len = strlen(cmd);

	for (size_t cut = 0; cut < len; cut++) {
		struct resp_parser p = fresh();
		int rc = resp_parse(&p, cmd, cut);

		cr_assert_eq(rc, RESP_AGAIN, "cut %zu gave %d", cut, rc);
		/* then byte by byte up to the end */
		for (size_t more = cut + 1; more < len; more++)
			cr_assert_eq(resp_parse(&p, cmd, more), RESP_AGAIN, "cut %zu more %zu", cut,
				     more);
		cr_assert_eq(resp_parse(&p, cmd, len), RESP_CMD);
		expect_args(&p, cmd, 3, want);
		resp_free(&p);
	}
}

Test(resp, pipeline_of_commands)
{
	const char *buf = "*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\na\r\nPING\r\n";
	struct resp_parser p = fresh();
	size_t at = 0, len = strlen(buf);
	const char *w1[] = { "PING" }, *w2[] = { "GET", "a" };

	cr_assert_eq(resp_parse(&p, buf + at, len - at), RESP_CMD);
	expect_args(&p, buf + at, 1, w1);
	at += p.pos;
	resp_reset(&p);
	cr_assert_eq(resp_parse(&p, buf + at, len - at), RESP_CMD);
	expect_args(&p, buf + at, 2, w2);
	at += p.pos;
	resp_reset(&p);
	cr_assert_eq(resp_parse(&p, buf + at, len - at), RESP_CMD);
	expect_args(&p, buf + at, 1, w1);
	at += p.pos;
	cr_assert_eq(at, len);
	resp_free(&p);
}

Test(resp, inline_commands)
{
	const char *buf = "  SET  key\tvalue \r\n";
	const char *want[] = { "SET", "key", "value" };
	struct resp_parser p = fresh();

	cr_assert_eq(resp_parse(&p, buf, 5), RESP_AGAIN);
	cr_assert_eq(resp_parse(&p, buf, strlen(buf)), RESP_CMD);
	expect_args(&p, buf, 3, want);
	resp_reset(&p);
	cr_assert_eq(resp_parse(&p, "\r\n", 2), RESP_CMD);
	cr_assert_eq(p.argc, 0);
	resp_free(&p);
}

Test(resp, empty_and_null_multibulk_run_nothing)
{
	struct resp_parser p = fresh();

	cr_assert_eq(resp_parse(&p, "*0\r\n", 4), RESP_CMD);
	cr_assert_eq(p.argc, 0);
	cr_assert_eq(p.pos, 4);
	resp_reset(&p);
	cr_assert_eq(resp_parse(&p, "*-1\r\n", 5), RESP_CMD);
	cr_assert_eq(p.argc, 0);
	resp_free(&p);
}

static void expect_error(const char *buf, size_t len, const char *substr)
{
	struct resp_parser p = fresh();
	int rc = resp_parse(&p, buf, len);

	cr_assert_eq(rc, RESP_ERROR, "%.*s gave %d", (int)len, buf, rc);
	cr_assert(strstr(p.err, substr), "error '%s' lacks '%s'", p.err, substr);
	resp_free(&p);
}

Test(resp, bad_headers_are_refused)
{
	expect_error("*abc\r\n", 6, "multibulk length");
	expect_error("*1x\r\n", 5, "multibulk length");
	expect_error("* 1\r\n", 5, "multibulk length");
	expect_error("*+1\r\n", 5, "multibulk length");
	expect_error("*2\r\n$3\r\nGET\r\n:12\r\n", 18, "expected '$'");
	expect_error("*2\r\n$3\r\nGET\r\n$x1\r\nk\r\n", 20, "bulk length");
	expect_error("*2\r\n$3\r\nGET\r\n$-7\r\n", 18, "bulk length");
	expect_error("*1\r\n$3\r\nGETxx", 13, "CRLF");
	expect_error("*1\rx", 4, "line ending");
}

Test(resp, limits_are_decided_on_the_header)
{
	char buf[128];
	int n;

	/* one byte over the largest value: refused with no byte of it sent */
	n = snprintf(buf, sizeof(buf), "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$%u\r\n", 1024 * 1024 + 1);
	expect_error(buf, (size_t)n, "bulk length");
	n = snprintf(buf, sizeof(buf), "*2\r\n$3\r\nGET\r\n$18446744073709551616\r\n");
	expect_error(buf, (size_t)n, "bulk length");
	n = snprintf(buf, sizeof(buf), "*%d\r\n", RESP_MAX_ARGS + 1);
	expect_error(buf, (size_t)n, "multibulk length");
	n = snprintf(buf, sizeof(buf), "*9223372036854775807\r\n");
	expect_error(buf, (size_t)n, "multibulk length");
}

Test(resp, max_value_is_accepted)
{
	size_t v = 1024 * 1024;
	char head[64];
	int h = snprintf(head, sizeof(head), "*1\r\n$%zu\r\n", v);
	char *buf = malloc((size_t)h + v + 2);
	struct resp_parser p = fresh();

	cr_assert(buf);
	memcpy(buf, head, (size_t)h);
	memset(buf + h, 'x', v);
	memcpy(buf + h + v, "\r\n", 2);
	cr_assert_eq(resp_parse(&p, buf, (size_t)h + v), RESP_AGAIN);
	cr_assert_eq(resp_parse(&p, buf, (size_t)h + v + 2), RESP_CMD);
	cr_assert_eq(p.argv[0].len, v);
	free(buf);
	resp_free(&p);
}

Test(resp, declared_count_does_not_allocate)
{
	/* a million arguments declared, two sent: argv holds what arrived, not the promise */
	const char *buf = "*1000000\r\n$1\r\na\r\n$1\r\nb\r\n";
	struct resp_parser p = fresh();

	cr_assert_eq(resp_parse(&p, buf, strlen(buf)), RESP_AGAIN);
	cr_assert_eq(p.argc, 2);
	cr_assert_leq(p.cap, 16);
	resp_free(&p);
}

Test(resp, overlong_lines_are_refused)
{
	size_t n = RESP_MAX_INLINE + 2;
	char *buf = malloc(n);

	cr_assert(buf);
	memset(buf, 'a', n);
	expect_error(buf, n, "too big inline");
	buf[0] = '*';
	expect_error(buf, n, "multibulk count");
	free(buf);
}

static char *enc(void (*fn)(struct rbuf *b, int proto), int proto)
{
	static char out[256];
	struct rbuf b = { 0 };

	fn(&b, proto);
	snprintf(out, sizeof(out), "%.*s", (int)b.len, b.p);
	rbuf_free(&b);
	return out;
}

static void null2(struct rbuf *b, int proto)
{
	resp_null(b, proto);
}

static void map1(struct rbuf *b, int proto)
{
	resp_map(b, proto, 1);
	resp_bulk_cstr(b, "k");
	resp_int(b, -5);
}

static void dbl(struct rbuf *b, int proto)
{
	resp_double(b, proto, 1.5);
}

static void verbatim(struct rbuf *b, int proto)
{
	resp_verbatim(b, proto, "txt", "hi", 2);
}

Test(resp, encodings_follow_the_protocol_version)
{
	cr_assert_str_eq(enc(null2, 2), "$-1\r\n");
	cr_assert_str_eq(enc(null2, 3), "_\r\n");
	cr_assert_str_eq(enc(map1, 2), "*2\r\n$1\r\nk\r\n:-5\r\n");
	cr_assert_str_eq(enc(map1, 3), "%1\r\n$1\r\nk\r\n:-5\r\n");
	cr_assert_str_eq(enc(dbl, 2), "$3\r\n1.5\r\n");
	cr_assert_str_eq(enc(dbl, 3), ",1.5\r\n");
	cr_assert_str_eq(enc(verbatim, 2), "$2\r\nhi\r\n");
	cr_assert_str_eq(enc(verbatim, 3), "=6\r\ntxt:hi\r\n");
}

Test(resp, errors_stay_on_one_line)
{
	struct rbuf b = { 0 };

	resp_error(&b, "ERR bad\r\nthing");
	cr_assert_eq(b.len, strlen("-ERR bad  thing\r\n"));
	cr_assert(memcmp(b.p, "-ERR bad  thing\r\n", b.len) == 0);
	rbuf_truncate(&b, 1);
	cr_assert_eq(b.len, 1);
	rbuf_free(&b);
}

static bool m(const char *pat, const char *s)
{
	return glob_match(pat, strlen(pat), s, strlen(s), false);
}

Test(glob, patterns)
{
	cr_assert(m("*", ""));
	cr_assert(m("*", "abc"));
	cr_assert(m("a:*", "a:1"));
	cr_assert(!m("a:*", "b:1"));
	cr_assert(m("h?llo", "hello"));
	cr_assert(!m("h?llo", "hllo"));
	cr_assert(m("h[ae]llo", "hallo"));
	cr_assert(!m("h[ae]llo", "hxllo"));
	cr_assert(m("h[^e]llo", "hxllo"));
	cr_assert(!m("h[^e]llo", "hello"));
	cr_assert(m("h[a-c]llo", "hbllo"));
	cr_assert(m("a\\*b", "a*b"));
	cr_assert(!m("a\\*b", "axb"));
	cr_assert(m("*a*b*c*", "xxaxxbxxcxx"));
	cr_assert(!m("*a*b*c*", "xxaxxcxxbxx"));
	cr_assert(m("[abc", "[abc")); /* no closing bracket: literal */
	cr_assert(glob_match("MAXCLIENTS", 10, "maxclients", 10, true));
}

Test(glob, no_exponential_backtracking)
{
	char s[4001], pat[64];

	memset(s, 'a', 4000);
	s[4000] = '\0';
	snprintf(pat, sizeof(pat), "*a*a*a*a*a*a*a*a*a*a*b");
	cr_assert(!m(pat, s)); /* returns (quadratically at worst), and says no */
}
