/* SPDX-License-Identifier: MIT */
/*
 * telemetry.c - telemetry samples (a protobuf-c message: name, timestamp, tags, value) kept in a
 * pkv store through typed helpers, read back after a reopen.
 *
 *   sample_put(db, &sample)                      key "<name>@<timestamp_ms>", value the message
 *   sample_get(db, name, timestamp_ms, &sample)  the message back, typed
 * both thin wrappers over pkv_set_proto / pkv_get_proto (proto_kv.h), which take any message.
 *
 * Usage: telemetry [DIR]   (default: a new temporary directory, removed at the end)
 * Exit status 0 when every sample came back equal; prints "N passed, M failed" last.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto_kv.h"
#include "telemetry.pb-c.h"

#define NSAMPLES 1000

static int passed, failed;

static void check(int ok, const char *what)
{
	if (ok) {
		passed++;
	} else {
		failed++;
		fprintf(stderr, "FAILED: %s\n", what);
	}
}

static int sample_key(char *buf, size_t cap, const char *name, int64_t ts)
{
	return snprintf(buf, cap, "%s@%" PRId64, name, ts);
}

/* Store @s under its name and timestamp. Returns as pkv_set_proto(). */
static int sample_put(pkv *db, const Telemetry__Sample *s)
{
	char key[256];
	int n = sample_key(key, sizeof(key), s->name, s->timestamp_ms);

	if (n < 0 || (size_t)n >= sizeof(key))
		return PKV_ETOOBIG;
	return pkv_set_proto(db, key, (size_t)n, &s->base);
}

/* The sample of @name at @ts, typed; free with telemetry__sample__free_unpacked(*out, NULL). */
static int sample_get(pkv *db, const char *name, int64_t ts, Telemetry__Sample **out)
{
	char key[256];
	int n = sample_key(key, sizeof(key), name, ts);

	if (n < 0 || (size_t)n >= sizeof(key))
		return PKV_ETOOBIG;
	return pkv_get_proto(db, key, (size_t)n, &telemetry__sample__descriptor,
			     (ProtobufCMessage **)out);
}

static const char *metric(int i)
{
	static const char *names[] = {"cpu.load", "mem.rss", "net.rx_bytes", "disk.iops"};

	return names[i % 4];
}

static double value_of(int i)
{
	return i * 0.25 + sin(i);
}

static int64_t ts_of(int i)
{
	return 1700000000000 + (int64_t)i * 1000;
}

int main(int argc, char **argv)
{
	char tmpl[256], host[32], cmd[300];
	const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", *dir;
	pkv *db = NULL;
	int rc;

	snprintf(tmpl, sizeof(tmpl), "%s/pkv-telemetry.XXXXXX", tmp);
	dir = argc > 1 ? argv[1] : mkdtemp(tmpl);

	if (dir == NULL) {
		perror("mkdtemp");
		return 1;
	}
	rc = pkv_open(dir, NULL, &db);
	if (rc != 0) {
		fprintf(stderr, "open %s: %s\n", dir, pkv_strerror(rc));
		return 1;
	}
	for (int i = 0; i < NSAMPLES; i++) {
		Telemetry__Sample s = TELEMETRY__SAMPLE__INIT;
		Telemetry__Tag t1 = TELEMETRY__TAG__INIT, t2 = TELEMETRY__TAG__INIT;
		Telemetry__Tag *tags[] = {&t1, &t2};

		snprintf(host, sizeof(host), "host-%d", i % 7);
		t1.key = "host";
		t1.value = host;
		t2.key = "region";
		t2.value = i % 2 ? "eu-west" : "us-east";
		s.name = (char *)metric(i);
		s.timestamp_ms = ts_of(i);
		s.n_tags = i % 3 == 0 ? 0 : 2; /* some samples have no tags: empty repeated field */
		s.tags = tags;
		s.value = value_of(i);
		rc = sample_put(db, &s);
		if (rc != 0) {
			fprintf(stderr, "put: %s\n", pkv_strerror(rc));
			return 1;
		}
	}
	/* Not a Sample: the typed read refuses it rather than handing out garbage. */
	check(pkv_put(db, "junk@1", 6, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 11) == 0,
	      "put junk");
	check(pkv_close(db) == 0, "close");

	/* Reopen: the samples come back from the WAL, typed and equal. */
	db = NULL;
	check(pkv_open(dir, NULL, &db) == 0, "reopen");
	for (int i = 0; db != NULL && i < NSAMPLES; i++) {
		Telemetry__Sample *s = NULL;

		rc = sample_get(db, metric(i), ts_of(i), &s);
		check(rc == 0, "get a sample");
		if (rc != 0)
			continue;
		snprintf(host, sizeof(host), "host-%d", i % 7);
		check(strcmp(s->name, metric(i)) == 0 && s->timestamp_ms == ts_of(i) &&
			      s->value == value_of(i),
		      "name, timestamp and value survive");
		check(s->n_tags == (i % 3 == 0 ? 0u : 2u), "tag count survives");
		if (s->n_tags == 2)
			check(strcmp(s->tags[0]->key, "host") == 0 &&
				      strcmp(s->tags[0]->value, host) == 0 &&
				      strcmp(s->tags[1]->value, i % 2 ? "eu-west" : "us-east") == 0,
			      "tags survive");
		telemetry__sample__free_unpacked(s, NULL);
	}
	if (db != NULL) {
		Telemetry__Sample *s = NULL;

		check(sample_get(db, "cpu.load", 42, &s) == PKV_NOTFOUND, "absent sample");
		check(pkv_get_proto(db, "junk@1", 6, &telemetry__sample__descriptor,
				    (ProtobufCMessage **)&s) == PKV_ECORRUPT,
		      "bytes that are not a Sample are refused");
		check(pkv_get_proto(db, "junk@1", 6, NULL, (ProtobufCMessage **)&s) == PKV_EINVAL,
		      "NULL descriptor");
		check(pkv_set_proto(db, "k", 1, NULL) == PKV_EINVAL, "NULL message");
		check(pkv_close(db) == 0, "close");
	}
	if (argc <= 1) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", dir);
	}
	printf("telemetry_proto: %d samples stored and read back typed\n", NSAMPLES);
	printf("%d passed, %d failed\n", passed, failed);
	return failed == 0 ? 0 : 1;
}
