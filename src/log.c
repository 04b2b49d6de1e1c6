/* SPDX-License-Identifier: MIT */
/*
 * log.c - diagnostics to the application's log callback; the library never prints.
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
