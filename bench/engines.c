/* SPDX-License-Identifier: MIT */
/*
 * engines.c - the compiled-in adapters, and "engine[:mode][@rounds]" system names.
 * CMake defines PKVB_HAVE_<NAME> for each peer whose library it found.
 */
#include "bench.h"

#include <stdlib.h>
#include <string.h>

#ifdef PKVB_HAVE_PKV
extern const struct kv_engine engine_pkv;
extern const struct kv_engine engine_pkv_ref;
extern const struct kv_engine engine_pkv_many;
extern const struct kv_engine engine_pkv_batch8;
extern const struct kv_engine engine_pkv_ticket;
#endif
extern const struct kv_engine engine_ckht;
extern const struct kv_engine engine_lfht;
#ifdef PKVB_HAVE_LMDB
extern const struct kv_engine engine_lmdb;
#endif
#ifdef PKVB_HAVE_ROCKSDB
extern const struct kv_engine engine_rocksdb;
#endif
#ifdef PKVB_HAVE_LEVELDB
extern const struct kv_engine engine_leveldb;
#endif
#ifdef PKVB_HAVE_SQLITE
extern const struct kv_engine engine_sqlite;
#endif

static const struct kv_engine *const engines[] = {
#ifdef PKVB_HAVE_PKV
	&engine_pkv,
	&engine_pkv_ticket,
#endif
	&engine_ckht,
	&engine_lfht,
#ifdef PKVB_HAVE_LMDB
	&engine_lmdb,
#endif
#ifdef PKVB_HAVE_ROCKSDB
	&engine_rocksdb,
#endif
#ifdef PKVB_HAVE_LEVELDB
	&engine_leveldb,
#endif
#ifdef PKVB_HAVE_SQLITE
	&engine_sqlite,
#endif
};

#define NENGINES (sizeof(engines) / sizeof(engines[0]))

const struct kv_engine *engine_find(const char *name)
{
	for (size_t i = 0; i < NENGINES; i++)
		if (strcmp(engines[i]->name, name) == 0)
			return engines[i];
	return NULL;
}

const char *dur_name(enum dur d)
{
	switch (d) {
	case DUR_MEM: return "mem";
	case DUR_NOSYNC: return "nosync";
	case DUR_SYNC: return "sync";
	case DUR_PERIODIC: return "periodic";
	}
	return "?";
}

/* pkv names its levels after what they survive; the peers after what they do. */
static const char *mode_label(const struct kv_engine *e, enum dur d)
{
	if (strncmp(e->name, "pkv", 3) == 0) { /* pkv and pkv-ticket */
		switch (d) {
		case DUR_NOSYNC: return "process";
		case DUR_SYNC: return "power";
		default: break;
		}
	}
	return dur_name(d);
}

void engine_list(FILE *f)
{
	for (size_t i = 0; i < NENGINES; i++) {
		fprintf(f, "  %-8s", engines[i]->name);
		for (int d = DUR_MEM; d <= DUR_PERIODIC; d++)
			if (engines[i]->modes & (1u << d))
				fprintf(f, " %s:%s", engines[i]->name, mode_label(engines[i], d));
		if (!strcmp(engines[i]->name, "pkv"))
			fprintf(f, " pkv:ref pkv:many pkv:batch8");
		fputc('\n', f);
	}
}

int sys_parse(const char *spec, struct sysdesc *out)
{
	char buf[64], *mode, *at;
	memset(out, 0, sizeof(*out));
	if (strlen(spec) >= sizeof(buf))
		return -1;
	strcpy(buf, spec);
	if ((at = strchr(buf, '@')) != NULL) {
		*at++ = 0;
		out->max_rounds = atoi(at);
	}
	if ((mode = strchr(buf, ':')) != NULL)
		*mode++ = 0;
	const struct kv_engine *e = engine_find(buf);
	if (!e)
		return -1;
#ifdef PKVB_HAVE_PKV
	/* pkv:ref and pkv:many: pkv:process read through pkv_get_ref / pkv_get_many; pkv:batch8:
	 * pkv:process whose put-only experiments write batches of KV_PUT_BATCH (pkv_write). */
	if (e == &engine_pkv && mode &&
	    (!strcmp(mode, "ref") || !strcmp(mode, "many") || !strcmp(mode, "batch8"))) {
		out->eng = !strcmp(mode, "ref")	   ? &engine_pkv_ref
			   : !strcmp(mode, "many") ? &engine_pkv_many
						   : &engine_pkv_batch8;
		out->dur = DUR_NOSYNC;
		snprintf(out->name, sizeof(out->name), "pkv:%s", mode);
		return 0;
	}
#endif
	enum dur d;
	if (!mode || !*mode) {
		d = e->modes & (1u << DUR_NOSYNC) ? DUR_NOSYNC : DUR_MEM;
	} else if (!strcmp(mode, "mem")) {
		d = DUR_MEM;
	} else if (!strcmp(mode, "nosync") || !strcmp(mode, "process")) {
		d = DUR_NOSYNC;
	} else if (!strcmp(mode, "sync") || !strcmp(mode, "power")) {
		d = DUR_SYNC;
	} else if (!strcmp(mode, "periodic")) {
		d = DUR_PERIODIC;
	} else {
		return -1;
	}
	if (!(e->modes & (1u << d)))
		return -1;
	out->eng = e;
	out->dur = d;
	if (e->modes == (1u << DUR_MEM))
		snprintf(out->name, sizeof(out->name), "%s", e->name);
	else
		snprintf(out->name, sizeof(out->name), "%s:%s", e->name, mode_label(e, d));
	return 0;
}
