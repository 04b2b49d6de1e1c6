/* SPDX-License-Identifier: MIT */
/*
 * proto_kv.h - typed values on pkv: protobuf-c messages stored under byte-string keys.
 *
 * The C counterpart of persistent-kv's set_proto / get_proto: a message is packed with
 * protobuf_c_message_pack into the value, and unpacked with its descriptor on the way out, so a
 * store can hold any message type (one type per key prefix is the usual discipline). The helpers
 * use only pkv.h; the message's own schema evolution rules (proto3: new fields are optional)
 * apply to stored values as they do on the wire.
 */
#ifndef PROTO_KV_H
#define PROTO_KV_H

#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

#include <pkv.h>

/*
 * pkv_set_proto() - pack @msg and store it under @key.
 * Returns: as pkv_put(); PKV_ETOOBIG for a message packed larger than PKV_MAX_VALUE; -ENOMEM.
 */
int pkv_set_proto(pkv *db, const void *key, size_t klen, const ProtobufCMessage *msg);

/*
 * pkv_get_proto() - read @key and unpack it as a message of type @desc.
 * @out: OUT: the message, freed with protobuf_c_message_free_unpacked(*out, NULL).
 * Returns: as pkv_get(); PKV_ECORRUPT when the stored bytes are not a @desc message; -ENOMEM.
 */
int pkv_get_proto(pkv *db, const void *key, size_t klen, const ProtobufCMessageDescriptor *desc,
		  ProtobufCMessage **out);

#endif /* PROTO_KV_H */
