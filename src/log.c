/* SPDX-License-Identifier: MIT */
/*
 * log.c - diagnostics to the application's log callback; the library never prints. Also the
 * clock seam of internal.h (pkv__now_ms).
 */
#include <stdarg.h>
#include <stdio.h>

#include "internal.h"

void pkv__logf(const struct pkv_log *log, int level, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (log == NULL || log->fn == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log->fn(log->ctx, level, msg);
}

uint64_t (*pkv__clock_fn)(void);

void pkv__clock_set(uint64_t (*fn)(void))
{
	__atomic_store_n(&pkv__clock_fn, fn, __ATOMIC_RELAXED);
}
