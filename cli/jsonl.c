/* SPDX-License-Identifier: MIT */
/*
 * jsonl.c - one key as one JSON Lines object, both ways (the format: jsonl.h).
 *
 * jansson parses and writes the JSON; this file decides which members a line may have and does
 * the base64. A line is refused as a whole before anything of it is used, so `pkv load` can stop
 * at it with what came before intact.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "jsonl.h"

static const char b64_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t jsonl_b64_encode(const void *in, size_t n, char *out)
{
	const unsigned char *p = in;
	size_t i, o = 0;

	for (i = 0; i + 2 < n; i += 3) {
		unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];

		out[o++] = b64_alphabet[v >> 18];
		out[o++] = b64_alphabet[(v >> 12) & 63];
		out[o++] = b64_alphabet[(v >> 6) & 63];
		out[o++] = b64_alphabet[v & 63];
	}
	if (i < n) {
		unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0);

		out[o++] = b64_alphabet[v >> 18];
		out[o++] = b64_alphabet[(v >> 12) & 63];
		out[o++] = i + 1 < n ? b64_alphabet[(v >> 6) & 63] : '=';
		out[o++] = '=';
	}
	out[o] = '\0';
	return o;
}

static int b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

long jsonl_b64_decode(const char *in, size_t n, unsigned char *out)
{
	size_t i, o = 0;

	if (n % 4 != 0)
		return -1;
	for (i = 0; i < n; i += 4) {
		int a = b64_value((unsigned char)in[i]), b = b64_value((unsigned char)in[i + 1]);
		int c = b64_value((unsigned char)in[i + 2]), d = b64_value((unsigned char)in[i + 3]);
		bool last = i + 4 == n;

		if (a < 0 || b < 0)
			return -1;
		if (last && in[i + 2] == '=' && in[i + 3] == '=') {
			if (b & 15) /* pad bits must be zero: one encoding per byte string */
				return -1;
			out[o++] = (unsigned char)(a << 2 | b >> 4);
			break;
		}
		if (last && c >= 0 && in[i + 3] == '=') {
			if (c & 3)
				return -1;
			out[o++] = (unsigned char)(a << 2 | b >> 4);
			out[o++] = (unsigned char)((b & 15) << 4 | c >> 2);
			break;
		}
		if (c < 0 || d < 0)
			return -1;
		out[o++] = (unsigned char)(a << 2 | b >> 4);
		out[o++] = (unsigned char)((b & 15) << 4 | c >> 2);
		out[o++] = (unsigned char)((c & 3) << 6 | d);
	}
	return (long)o;
}

void jsonl_rec_free(struct jsonl_rec *r)
{
	free(r->key);
	free(r->val);
	memset(r, 0, sizeof(*r));
}

/*
 * Take the bytes of field @name from @obj, as the JSON string @name or the base64 string
 * @name_base64. *@seen counts the members consumed. 0, -1 (@why set) or -2 (no memory).
 */
static int take_bytes(json_t *obj, const char *name, const char *name_b64, size_t max,
		      unsigned char **out, size_t *outlen, int *seen, char *why, size_t whylen)
{
	json_t *plain = json_object_get(obj, name), *b64 = json_object_get(obj, name_b64);
	const char *s;
	size_t n;

	if (plain != NULL && b64 != NULL) {
		snprintf(why, whylen, "both \"%s\" and \"%s\"", name, name_b64);
		return -1;
	}
	if (plain == NULL && b64 == NULL) {
		snprintf(why, whylen, "missing field \"%s\" (or \"%s\")", name, name_b64);
		return -1;
	}
	(*seen)++;
	if (!json_is_string(plain != NULL ? plain : b64)) {
		snprintf(why, whylen, "\"%s\" is not a JSON string", plain != NULL ? name : name_b64);
		return -1;
	}
	if (plain != NULL) {
		s = json_string_value(plain);
		n = json_string_length(plain);
		if (n > max) {
			snprintf(why, whylen, "%s too long (%zu bytes, at most %zu)", name, n, max);
			return -1;
		}
		*out = malloc(n + 1);
		if (*out == NULL)
			return -2;
		memcpy(*out, s, n);
		*outlen = n;
		return 0;
	}
	s = json_string_value(b64);
	n = json_string_length(b64);
	if (n / 4 * 3 > max + 2) {
		snprintf(why, whylen, "%s too long (about %zu bytes, at most %zu)", name, n / 4 * 3,
			 max);
		return -1;
	}
	*out = malloc(n / 4 * 3 + 1);
	if (*out == NULL)
		return -2;
	long d = jsonl_b64_decode(s, n, *out);
	if (d < 0) {
		snprintf(why, whylen, "bad base64 in \"%s\"", name_b64);
		return -1;
	}
	if ((size_t)d > max) {
		snprintf(why, whylen, "%s too long (%ld bytes, at most %zu)", name, d, max);
		return -1;
	}
	*outlen = (size_t)d;
	return 0;
}

int jsonl_parse(const char *line, size_t len, size_t max_key, size_t max_value,
		struct jsonl_rec *out, char *why, size_t whylen)
{
	json_error_t err;
	json_t *obj = NULL, *exp;
	int seen = 0, rc = -1;

	memset(out, 0, sizeof(*out));
	if (len > 0 && line[len - 1] == '\r')
		len--;
	/* \u0000 is valid JSON and valid UTF-8: keys may hold NUL bytes as plain strings. */
	obj = json_loadb(line, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &err);
	if (obj == NULL) {
		snprintf(why, whylen, "not JSON: %s (column %d)", err.text, err.column);
		goto out;
	}
	if (!json_is_object(obj)) {
		snprintf(why, whylen, "not a JSON object");
		goto out;
	}
	rc = take_bytes(obj, "key", "key_base64", max_key, &out->key, &out->klen, &seen, why,
			whylen);
	if (rc != 0)
		goto out;
	rc = -1;
	if (out->klen == 0) {
		snprintf(why, whylen, "empty key");
		goto out;
	}
	rc = take_bytes(obj, "value", "value_base64", max_value, &out->val, &out->vlen, &seen, why,
			whylen);
	if (rc != 0)
		goto out;
	rc = -1;
	exp = json_object_get(obj, "expires_ms");
	if (exp != NULL) {
		seen++;
		if (!json_is_integer(exp) || json_integer_value(exp) < 0) {
			snprintf(why, whylen, "\"expires_ms\" is not an integer >= 0");
			goto out;
		}
		out->expires_ms = (uint64_t)json_integer_value(exp);
	}
	if ((size_t)seen != json_object_size(obj)) {
		const char *k;
		json_t *v;

		json_object_foreach(obj, k, v)
		{
			if (strcmp(k, "key") && strcmp(k, "key_base64") && strcmp(k, "value") &&
			    strcmp(k, "value_base64") && strcmp(k, "expires_ms")) {
				snprintf(why, whylen, "unknown field \"%.64s\"", k);
				break;
			}
		}
		goto out;
	}
	rc = 0;
out:
	json_decref(obj);
	if (rc != 0)
		jsonl_rec_free(out);
	return rc;
}

/* Set @name (or @name_b64 when the bytes are not UTF-8) in @obj. 0 or -1 (no memory). */
static int put_bytes(json_t *obj, const char *name, const char *name_b64, const void *p, size_t n)
{
	json_t *s = json_stringn(p != NULL ? p : "", n); /* NULL when not valid UTF-8 */
	char *b;

	if (s != NULL)
		return json_object_set_new(obj, name, s);
	b = malloc((n + 2) / 3 * 4 + 1);
	if (b == NULL)
		return -1;
	jsonl_b64_encode(p, n, b);
	s = json_string_nocheck(b);
	free(b);
	if (s == NULL)
		return -1;
	return json_object_set_new(obj, name_b64, s);
}

char *jsonl_format(const void *key, size_t klen, const void *val, size_t vlen,
		   uint64_t expires_ms, size_t *len)
{
	json_t *obj = json_object();
	char *line = NULL;

	if (obj == NULL)
		goto out;
	if (put_bytes(obj, "key", "key_base64", key, klen) != 0 ||
	    put_bytes(obj, "value", "value_base64", val, vlen) != 0)
		goto out;
	if (expires_ms != 0 &&
	    json_object_set_new(obj, "expires_ms", json_integer((json_int_t)expires_ms)) != 0)
		goto out;
	/* JSON_INDENT(0): one line, "key": "value" with the spaces DESIGN.md shows. */
	line = json_dumps(obj, JSON_INDENT(0));
	if (line != NULL)
		*len = strlen(line);
out:
	json_decref(obj);
	return line;
}
