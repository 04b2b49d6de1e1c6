/* SPDX-License-Identifier: MIT */
/*
 * glob.c - the matcher of glob.h. Every token but '*' consumes exactly one byte, so the classic
 * two-pointer walk with one backtrack point (the last '*') is exact and O(plen * slen) at worst.
 */
#include "glob.h"

#include <ctype.h>

static unsigned char fold(unsigned char c, bool nocase)
{
	return nocase ? (unsigned char)tolower(c) : c;
}

/*
 * Does the token at pat[*pi] match byte c? Advances *pi past the token. A '[' without its ']'
 * is a literal '[', as in Redis.
 */
static bool token_match(const char *pat, size_t plen, size_t *pi, unsigned char c, bool nocase)
{
	size_t i = *pi;
	unsigned char pc = (unsigned char)pat[i];

	if (pc == '?') {
		*pi = i + 1;
		return true;
	}
	if (pc == '\\' && i + 1 < plen) {
		*pi = i + 2;
		return fold((unsigned char)pat[i + 1], nocase) == fold(c, nocase);
	}
	if (pc == '[') {
		size_t j = i + 1;
		bool neg = false, hit = false;

		if (j < plen && (pat[j] == '^' || pat[j] == '!')) {
			neg = true;
			j++;
		}
		/* find the closing bracket first: without one, '[' is literal */
		size_t k = j;
		while (k < plen && pat[k] != ']') {
			if (pat[k] == '\\' && k + 1 < plen)
				k++;
			k++;
		}
		if (k >= plen) {
			*pi = i + 1;
			return c == '[';
		}
		while (j < k) {
			unsigned char a = (unsigned char)pat[j];

			if (a == '\\' && j + 1 < k) {
				j++;
				a = (unsigned char)pat[j];
				if (fold(a, nocase) == fold(c, nocase))
					hit = true;
				j++;
			} else if (j + 2 < k && pat[j + 1] == '-') {
				unsigned char lo = fold(a, nocase),
					      hi = fold((unsigned char)pat[j + 2], nocase);
				unsigned char x = fold(c, nocase);

				if (lo > hi) {
					unsigned char t = lo;
					lo = hi;
					hi = t;
				}
				if (x >= lo && x <= hi)
					hit = true;
				j += 3;
			} else {
				if (fold(a, nocase) == fold(c, nocase))
					hit = true;
				j++;
			}
		}
		*pi = k + 1;
		return neg ? !hit : hit;
	}
	*pi = i + 1;
	return fold(pc, nocase) == fold(c, nocase);
}

bool glob_match(const char *pat, size_t plen, const char *s, size_t slen, bool nocase)
{
	size_t pi = 0, si = 0;
	size_t star_p = (size_t)-1, star_s = 0;

	while (si < slen) {
		if (pi < plen && pat[pi] == '*') {
			while (pi < plen && pat[pi] == '*')
				pi++;
			if (pi == plen)
				return true;
			star_p = pi;
			star_s = si;
			continue;
		}
		if (pi < plen) {
			size_t next = pi;

			if (token_match(pat, plen, &next, (unsigned char)s[si], nocase)) {
				pi = next;
				si++;
				continue;
			}
		}
		if (star_p == (size_t)-1)
			return false;
		pi = star_p;
		si = ++star_s;
	}
	while (pi < plen && pat[pi] == '*')
		pi++;
	return pi == plen;
}
