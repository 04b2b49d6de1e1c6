/* SPDX-License-Identifier: MIT */
/*
 * proto_kv.c - pkv_set_proto / pkv_get_proto (proto_kv.h).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "proto_kv.h"

int pkv_set_proto(pkv *db, const void *key, size_t klen, const ProtobufCMessage *msg)
{
	size_t n;
	uint8_t *buf;
	int rc;

	if (msg == NULL)
		return PKV_EINVAL;
	n = protobuf_c_message_get_packed_size(msg);
	if (n > PKV_MAX_VALUE)
		return PKV_ETOOBIG;
	buf = malloc(n > 0 ? n : 1);
	if (buf == NULL)
		return -ENOMEM;
	protobuf_c_message_pack(msg, buf);
	rc = pkv_put(db, key, klen, buf, n);
	free(buf);
	return rc;
}

int pkv_get_proto(pkv *db, const void *key, size_t klen, const ProtobufCMessageDescriptor *desc,
		  ProtobufCMessage **out)
{
	size_t cap = 256, vlen = 0;
	uint8_t *buf = NULL, *n;
	int rc;

	if (desc == NULL || out == NULL)
		return PKV_EINVAL;
	for (;;) {
		n = realloc(buf, cap);
		if (n == NULL) {
			rc = -ENOMEM;
			goto out;
		}
		buf = n;
		rc = pkv_get(db, key, klen, buf, cap, &vlen);
		if (rc != 0 || vlen <= cap)
			break;
		cap = vlen; /* bigger than the first guess, or replaced by a bigger one meanwhile */
	}
	if (rc != 0)
		goto out;
	*out = protobuf_c_message_unpack(desc, NULL, vlen, buf);
	if (*out == NULL)
		rc = PKV_ECORRUPT; /* not a message of this type (or out of memory) */
out:
	free(buf);
	return rc;
}
