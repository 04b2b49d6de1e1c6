/* SPDX-License-Identifier: MIT */
/*
 * test_errors.c - the error band and pkv_strerror (public API only).
 *
 * Callers tell pkv's own codes from -errno by value alone, so the PKV_* codes must be negative,
 * distinct and below every errno a kernel can return (-4095 is the bottom of the kernel's
 * error-return band); and pkv_strerror must name each of them with a message of its own.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "pkv.h"

static const int codes[] = {
	PKV_NOTFOUND, PKV_EINVAL, PKV_ETOOBIG, PKV_ELOCKED, PKV_ECORRUPT, PKV_EREADONLY, PKV_ECONFLICT,
};
#define NCODES (sizeof(codes) / sizeof(codes[0]))

/* errno values the library can pass through, as -errno. */
static const int errnos[] = {
	ENOENT, EIO, ENOSPC, ENOMEM, EACCES, EEXIST, EBADF, EROFS, EDQUOT, EAGAIN, EINVAL,
};
#define NERRNOS (sizeof(errnos) / sizeof(errnos[0]))

Test(errors, codes_live_below_the_errno_band)
{
	for (size_t i = 0; i < NCODES; i++) {
		cr_expect_lt(codes[i], -4095, "code %d is inside the errno range", codes[i]);
		for (size_t j = 0; j < i; j++)
			cr_expect_neq(codes[i], codes[j], "two PKV_* codes share the value %d",
				      codes[i]);
	}
}

Test(errors, every_code_has_its_own_message)
{
	const char *msg[NCODES];
	const char *ok = pkv_strerror(0);
	const char *unknown = pkv_strerror(-29999);

	cr_assert(ok && *ok, "no message for 0");
	for (size_t i = 0; i < NCODES; i++) {
		msg[i] = pkv_strerror(codes[i]);
		cr_assert(msg[i] && *msg[i], "no message for %d", codes[i]);
		cr_expect_str_neq(msg[i], ok, "code %d reads like success", codes[i]);
		cr_expect(!unknown || strcmp(msg[i], unknown) != 0,
			  "code %d reads like an unknown code", codes[i]);
		for (size_t j = 0; j < i; j++)
			cr_expect_str_neq(msg[i], msg[j], "codes %d and %d share a message",
					  codes[i], codes[j]);
	}
}

Test(errors, errno_values_have_their_own_messages)
{
	const char *pkvmsg[NCODES];

	for (size_t i = 0; i < NCODES; i++)
		pkvmsg[i] = pkv_strerror(codes[i]);
	for (size_t i = 0; i < NERRNOS; i++) {
		const char *m = pkv_strerror(-errnos[i]);

		cr_assert(m && *m, "no message for -%d", errnos[i]);
		cr_expect_str_neq(m, pkv_strerror(0), "-%d reads like success", errnos[i]);
		for (size_t j = 0; j < i; j++)
			cr_expect_str_neq(m, pkv_strerror(-errnos[j]),
					  "-%d and -%d share a message", errnos[i], errnos[j]);
		/* -EINVAL is the system's error, PKV_EINVAL pkv's: each gets its own text too. */
		for (size_t j = 0; j < NCODES; j++)
			cr_expect_str_neq(m, pkvmsg[j], "-%d and %d share a message", errnos[i],
					  codes[j]);
	}
}

Test(errors, any_int_gets_a_message)
{
	/* Codes nobody defined must still give a static, printable string, never NULL. */
	static const int odd[] = { 1, 42, INT_MAX, INT_MIN, -4096, -29999, -30000, -30007, -99999 };

	for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
		const char *m = pkv_strerror(odd[i]);

		cr_assert(m && *m, "no message for %d", odd[i]);
		cr_expect_str_neq(m, pkv_strerror(0), "%d reads like success", odd[i]);
	}
}
