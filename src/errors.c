/* SPDX-License-Identifier: MIT */
/*
 * errors.c - pkv_strerror: messages for pkv's own codes and for -errno.
 */
#include <string.h>

#include "errors.h"

#define XX(name, value, msg) _Static_assert(PKV_##name == (value), "PKV_" #name " drifted");
PKV_ERRNO_MAP(XX)
#undef XX

PKV_EXPORT const char *pkv_strerror(int code)
{
	switch (code) {
	case 0:
		return "success";
#define XX(name, value, msg)                                                                   \
	case PKV_##name:                                                                       \
		return msg;
		PKV_ERRNO_MAP(XX)
#undef XX
	default:
		break;
	}
	if (code < 0 && code >= -PKV__ERRNO_MAX)
		return strerrordesc_np(-code) ? strerrordesc_np(-code) : "unknown system error";
	return "unknown error code";
}
