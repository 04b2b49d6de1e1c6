/* SPDX-License-Identifier: MIT */
/*
 * test_internal.c - the platform layer's helpers (src/internal.h, src/log.c): PKV_NEVER stops a
 * debug build and is the condition in a release build; logging needs no store handle.
 */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "internal.h"
#include "pkv.h"

static int never_check(volatile int v)
{
	if (PKV_NEVER(v > 3))
		return PKV_ECORRUPT;
	return 0;
}

Test(internal, never_passes_when_false)
{
	cr_assert_eq(never_check(1), 0);
}

#ifdef NDEBUG
Test(internal, never_is_the_condition_in_release)
{
	cr_assert_eq(never_check(5), PKV_ECORRUPT);
}
#else
Test(internal, never_stops_a_debug_build, .signal = SIGABRT)
{
	(void)never_check(5);
}
#endif

struct seen {
	int level;
	char msg[128];
	int calls;
};

static void log_cb(void *ctx, int level, const char *msg)
{
	struct seen *s = ctx;

	s->level = level;
	snprintf(s->msg, sizeof(s->msg), "%s", msg);
	s->calls++;
}

Test(internal, logf_formats_and_reaches_the_callback)
{
	struct seen s = { 0 };
	struct pkv_log log = { .fn = log_cb, .ctx = &s };

	pkv__logf(&log, PKV_LOG_WARN, "segment %03u: %s", 7u, "torn");
	cr_assert_eq(s.calls, 1);
	cr_assert_eq(s.level, PKV_LOG_WARN);
	cr_assert_str_eq(s.msg, "segment 007: torn");

	/* No log, or a log without a callback: nothing is called, nothing crashes. */
	struct pkv_log no_fn = { .fn = NULL, .ctx = &s };

	pkv__logf(NULL, PKV_LOG_ERROR, "no log %d", 1);
	pkv__logf(&no_fn, PKV_LOG_ERROR, "no callback %d", 2);
	cr_assert_eq(s.calls, 1);
	cr_assert_str_eq(s.msg, "segment 007: torn");
}
