/* SPDX-License-Identifier: MIT */
/*
 * testutil.c - see testutil.h. The WAL reader follows docs/format.md byte by byte and uses its own
 * CRC32C, so a drift between the library and its documented format fails the suites.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

char tu_root[PATH_MAX];
char tu_db[PATH_MAX];

const enum pkv_durability tu_modes[3] = {
	PKV_DURABLE_PROCESS,
	PKV_DURABLE_POWER,
	PKV_DURABLE_PERIODIC,
};

/* ---- fixture -------------------------------------------------------------------------------- */

void tu_setup(void)
{
	const char *tmp = getenv("TMPDIR");

	if (!tmp || !*tmp)
		tmp = "/tmp";
	snprintf(tu_root, sizeof(tu_root), "%s/pkv-test-XXXXXX", tmp);
	cr_assert_not_null(mkdtemp(tu_root), "mkdtemp: %s", strerror(errno));
	tu_path(tu_db, "db");
}

void tu_teardown(void)
{
	if (tu_root[0])
		tu_rm_rf(tu_root);
	tu_root[0] = '\0';
}

void tu_path(char *out, const char *name)
{
	tu_fmt(out, PATH_MAX, "%s/%s", tu_root, name);
}

void tu_fmt(char *out, size_t n, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vsnprintf(out, n, fmt, ap);
	va_end(ap);
	cr_assert(r >= 0 && (size_t)r < n, "formatted text too long");
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		return rmdir(path) == 0 || errno == ENOENT ? 0 : -1;
	return unlink(path) == 0 || errno == ENOENT ? 0 : -1;
}

void tu_rm_rf(const char *path)
{
	struct stat st;

	if (lstat(path, &st) != 0 && errno == ENOENT)
		return;
	cr_assert_eq(nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS), 0, "removing a test tree: %s",
		     strerror(errno));
}

static void copy_file(const char *src, const char *dst, mode_t mode)
{
	char buf[65536];
	int in = open(src, O_RDONLY | O_CLOEXEC);
	int out;
	ssize_t n;

	cr_assert(in >= 0, "open for copy: %s", strerror(errno));
	out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode & 0777);
	cr_assert(out >= 0, "create for copy: %s", strerror(errno));
	while ((n = read(in, buf, sizeof(buf))) > 0)
		cr_assert(tu_write_full(out, buf, (size_t)n), "copy: %s", strerror(errno));
	cr_assert_eq(n, 0, "read for copy: %s", strerror(errno));
	close(in);
	close(out);
}

void tu_copy_tree(const char *src, const char *dst)
{
	DIR *d = opendir(src);
	struct dirent *e;

	cr_assert_not_null(d, "opendir for copy: %s", strerror(errno));
	cr_assert_eq(mkdir(dst, 0755), 0, "mkdir for copy: %s", strerror(errno));
	while ((e = readdir(d))) {
		char s[PATH_MAX], t[PATH_MAX];
		struct stat st;

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		tu_fmt(s, sizeof(s), "%s/%s", src, e->d_name);
		tu_fmt(t, sizeof(t), "%s/%s", dst, e->d_name);
		cr_assert_eq(lstat(s, &st), 0, "lstat for copy: %s", strerror(errno));
		if (S_ISDIR(st.st_mode))
			tu_copy_tree(s, t);
		else if (S_ISREG(st.st_mode))
			copy_file(s, t, st.st_mode);
	}
	closedir(d);
}

/* ---- options and handles -------------------------------------------------------------------- */

void tu_opts(pkv_options *o, enum pkv_durability mode)
{
	pkv_options_default(o);
	o->durability = mode;
	if (mode == PKV_DURABLE_PERIODIC)
		o->sync_interval_ms = 5;
}

pkv *tu_open(const char *dir, const pkv_options *o)
{
	pkv *db = NULL;
	int rc = pkv_open(dir, o, &db);

	cr_assert_eq(rc, 0, "pkv_open: %d (%s)", rc, pkv_strerror(rc));
	cr_assert_not_null(db);
	return db;
}

void tu_close(pkv *db)
{
	int rc = pkv_close(db);

	cr_assert_eq(rc, 0, "pkv_close: %d (%s)", rc, pkv_strerror(rc));
}

pkv_stats tu_stats(pkv *db)
{
	pkv_stats st;
	int rc;

	memset(&st, 0xa5, sizeof(st));
	rc = pkv_get_stats(db, &st);
	cr_assert_eq(rc, 0, "pkv_get_stats: %d (%s)", rc, pkv_strerror(rc));
	return st;
}

/* ---- WAL reader ---------------------------------------------------------------------------- */

uint32_t tu_crc32c(uint32_t crc, const void *buf, size_t len)
{
	const unsigned char *p = buf;

	crc = ~crc;
	while (len--) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = (crc & 1) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
	}
	return ~crc;
}

static uint32_t le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const unsigned char *p)
{
	return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

uint32_t tu_seg_seed(const unsigned char *hdr)
{
	return tu_crc32c(0, hdr, 32);
}

bool tu_rec_valid(const unsigned char *p, size_t avail, uint32_t seed)
{
	uint32_t len, crc;

	if (avail < TU_REC_HDR)
		return false;
	len = le32(p);
	if (len < TU_REC_HDR || len > avail)
		return false;
	/* A put with expiry carries 8 bytes of expiry after its value (docs/format.md). */
	if ((size_t)TU_REC_HDR + (p[18] | (size_t)p[19] << 8) + le32(p + 20) +
		    (p[16] == TU_REC_PUTX ? 8 : 0) != len)
		return false;
	crc = tu_crc32c(tu_crc32c(seed, p + 8, len - 8), p, 4);
	return crc == le32(p + 4);
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

void tu_wal_read(const char *dir, struct tu_wal *w)
{
	char wdir[PATH_MAX];
	DIR *d;
	struct dirent *e;
	int cap = 0, rcap = 0;

	memset(w, 0, sizeof(*w));
	tu_fmt(wdir, sizeof(wdir), "%s/wal", dir);
	d = opendir(wdir);
	cr_assert_not_null(d, "the store has no wal/ directory: %s", strerror(errno));
	while ((e = readdir(d))) {
		size_t n = strlen(e->d_name);

		if (n < 5 || strcmp(e->d_name + n - 4, ".wal") != 0)
			continue;
		if (w->nfiles == cap) {
			cap = cap ? cap * 2 : 16;
			w->files = realloc(w->files, (size_t)cap * sizeof(*w->files));
			cr_assert_not_null(w->files);
		}
		tu_fmt(w->files[w->nfiles++], PATH_MAX, "%s/%s", wdir, e->d_name);
	}
	closedir(d);
	if (w->nfiles)
		qsort(w->files, (size_t)w->nfiles, sizeof(*w->files), name_cmp);
	w->data_end = calloc((size_t)w->nfiles + 1, sizeof(*w->data_end));
	cr_assert_not_null(w->data_end);

	for (int f = 0; f < w->nfiles; f++) {
		size_t size;
		unsigned char *buf = tu_read_file(w->files[f], &size);
		uint32_t seed;
		size_t off = TU_SEG_HDR;

		cr_assert(size >= TU_SEG_HDR, "segment shorter than its header");
		cr_assert(!memcmp(buf, "pkvWAL\0\0", 8), "segment magic (docs/format.md)");
		cr_assert_eq(le32(buf + 48), tu_crc32c(0, buf, 48), "segment header CRC");
		cr_assert(le32(buf + 8) == 1u || le32(buf + 8) == 2u, "segment version");
		seed = tu_seg_seed(buf);
		while (off + 4 <= size && le32(buf + off) != 0) {
			const unsigned char *p = buf + off;
			struct tu_rec *r;

			if (!tu_rec_valid(p, size - off, seed))
				break;
			if (w->nrecs == rcap) {
				rcap = rcap ? rcap * 2 : 256;
				w->recs = realloc(w->recs, (size_t)rcap * sizeof(*w->recs));
				cr_assert_not_null(w->recs);
			}
			r = &w->recs[w->nrecs++];
			r->off = (off_t)off;
			r->len = le32(p);
			r->seq = le64(p + 8);
			r->type = p[16];
			r->klen = (uint16_t)(p[18] | p[19] << 8);
			r->vlen = le32(p + 20);
			r->synced = le64(p + 24);
			r->lane = le32(buf + 12);
			r->segno = le64(buf + 16);
			r->file = f;
			r->key = malloc(r->klen + 1u);
			r->val = malloc(r->vlen + 1u);
			cr_assert(r->key && r->val);
			memcpy(r->key, p + TU_REC_HDR, r->klen);
			memcpy(r->val, p + TU_REC_HDR + r->klen, r->vlen);
			r->expires_ms = 0;
			if (r->type == TU_REC_PUTX)
				r->expires_ms = le64(p + TU_REC_HDR + r->klen + r->vlen);
			off = (off + r->len + 7) & ~(size_t)7;
		}
		w->data_end[f] = (off_t)(off < size ? off : size);
		free(buf);
	}
}

void tu_wal_free(struct tu_wal *w)
{
	for (int i = 0; i < w->nrecs; i++) {
		free(w->recs[i].key);
		free(w->recs[i].val);
	}
	free(w->recs);
	free(w->files);
	free(w->data_end);
	memset(w, 0, sizeof(*w));
}

int tu_wal_last(const struct tu_wal *w)
{
	int best = -1;

	for (int i = 0; i < w->nrecs; i++)
		if (best < 0 || w->recs[i].seq > w->recs[best].seq)
			best = i;
	return best;
}

static int seq_cmp(const void *a, const void *b)
{
	const struct tu_rec *x = a, *y = b;

	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

struct tu_rec *tu_wal_by_seq(const struct tu_wal *w)
{
	struct tu_rec *v = malloc(((size_t)w->nrecs + 1) * sizeof(*v));

	cr_assert_not_null(v);
	if (w->nrecs)
		memcpy(v, w->recs, (size_t)w->nrecs * sizeof(*v));
	qsort(v, (size_t)w->nrecs, sizeof(*v), seq_cmp);
	return v;
}

unsigned char *tu_read_file(const char *path, size_t *len_out)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	unsigned char *buf;

	cr_assert(fd >= 0, "open: %s", strerror(errno));
	cr_assert_eq(fstat(fd, &st), 0);
	buf = malloc((size_t)st.st_size + 1);
	cr_assert_not_null(buf);
	cr_assert_eq(tu_read_full(fd, buf, (size_t)st.st_size), (size_t)st.st_size, "short read");
	close(fd);
	*len_out = (size_t)st.st_size;
	return buf;
}

void tu_write_at(const char *path, off_t off, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);

	cr_assert(fd >= 0, "open: %s", strerror(errno));
	cr_assert_eq(pwrite(fd, buf, len, off), (ssize_t)len, "pwrite: %s", strerror(errno));
	close(fd);
}

void tu_truncate(const char *path, off_t len)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);

	cr_assert(fd >= 0, "open: %s", strerror(errno));
	cr_assert_eq(ftruncate(fd, len), 0, "ftruncate: %s", strerror(errno));
	close(fd);
}

off_t tu_file_size(const char *path)
{
	struct stat st;

	cr_assert_eq(stat(path, &st), 0, "stat: %s", strerror(errno));
	return st.st_size;
}

/* ---- model ---------------------------------------------------------------------------------- */

static uint64_t hash_bytes(const void *k, size_t n)
{
	const unsigned char *p = k;
	uint64_t h = 0xcbf29ce484222325ull;

	while (n--)
		h = (h ^ *p++) * 0x100000001b3ull;
	return h;
}

void tu_model_init(struct tu_model *m)
{
	memset(m, 0, sizeof(*m));
	m->cap = 1024;
	m->tab = calloc(m->cap, sizeof(*m->tab));
	cr_assert_not_null(m->tab);
}

void tu_model_free(struct tu_model *m)
{
	for (size_t i = 0; i < m->cap; i++) {
		free(m->tab[i].key);
		free(m->tab[i].val);
	}
	free(m->tab);
	memset(m, 0, sizeof(*m));
}

static struct tu_model_ent *model_slot(struct tu_model *m, const void *k, size_t kl)
{
	size_t i;

	if ((m->nkeys + 1) * 2 > m->cap) {
		struct tu_model old = *m;

		m->cap *= 2;
		m->tab = calloc(m->cap, sizeof(*m->tab));
		cr_assert_not_null(m->tab);
		for (size_t j = 0; j < old.cap; j++) {
			if (!old.tab[j].used)
				continue;
			i = hash_bytes(old.tab[j].key, old.tab[j].klen) & (m->cap - 1);
			while (m->tab[i].used)
				i = (i + 1) & (m->cap - 1);
			m->tab[i] = old.tab[j];
		}
		free(old.tab);
	}
	i = hash_bytes(k, kl) & (m->cap - 1);
	while (m->tab[i].used && !(m->tab[i].klen == kl && !memcmp(m->tab[i].key, k, kl)))
		i = (i + 1) & (m->cap - 1);
	if (!m->tab[i].used) {
		m->tab[i].used = true;
		m->tab[i].key = malloc(kl + 1);
		cr_assert_not_null(m->tab[i].key);
		memcpy(m->tab[i].key, k, kl);
		m->tab[i].klen = kl;
		m->nkeys++;
	}
	return &m->tab[i];
}

const struct tu_model_ent *tu_model_find(const struct tu_model *m, const void *k, size_t kl)
{
	size_t i = hash_bytes(k, kl) & (m->cap - 1);

	while (m->tab[i].used) {
		if (m->tab[i].klen == kl && !memcmp(m->tab[i].key, k, kl))
			return &m->tab[i];
		i = (i + 1) & (m->cap - 1);
	}
	return NULL;
}

void tu_model_put(struct tu_model *m, const void *k, size_t kl, const void *v, size_t vl)
{
	struct tu_model_ent *e = model_slot(m, k, kl);

	free(e->val);
	e->val = malloc(vl + 1);
	cr_assert_not_null(e->val);
	if (vl)
		memcpy(e->val, v, vl);
	e->vlen = vl;
	if (!e->present)
		m->present++;
	e->present = true;
}

void tu_model_del(struct tu_model *m, const void *k, size_t kl)
{
	struct tu_model_ent *e = model_slot(m, k, kl);

	free(e->val);
	e->val = NULL;
	e->vlen = 0;
	if (e->present)
		m->present--;
	e->present = false;
}

/* The ops of a batch body (docs/format.md, "Batch body"), applied in order. */
static void model_apply_batch(struct tu_model *m, const unsigned char *p, size_t len)
{
	size_t off = 8;
	uint32_t nops;

	cr_assert_geq(len, 8, "batch body shorter than its head");
	nops = le32(p);
	for (uint32_t i = 0; i < nops; i++) {
		uint8_t op;
		size_t kl, vl, head;

		cr_assert_leq(off + 8, len, "batch op %u runs past the body", i);
		op = p[off];
		kl = p[off + 2] | (size_t)p[off + 3] << 8;
		vl = le32(p + off + 4);
		head = op == TU_REC_PUTX ? 16 : 8;
		cr_assert_leq(off + head + kl + vl, len, "batch op %u runs past the body", i);
		if (op == TU_REC_PUT || op == TU_REC_PUTX)
			tu_model_put(m, p + off + head, kl, p + off + head + kl, vl);
		else if (op == TU_REC_DEL)
			tu_model_del(m, p + off + head, kl);
		else
			cr_assert_fail("batch op %u has type %u", i, op);
		off += head + kl + vl;
	}
	cr_assert_eq(off, len, "batch ops do not fill the body");
}

void tu_model_apply(struct tu_model *m, const struct tu_rec *r, int n, uint64_t upto)
{
	for (int i = 0; i < n; i++) {
		if (upto && r[i].seq >= upto)
			break;
		if (r[i].type == TU_REC_PUT || r[i].type == TU_REC_PUTX)
			tu_model_put(m, r[i].key, r[i].klen, r[i].val, r[i].vlen);
		else if (r[i].type == TU_REC_DEL)
			tu_model_del(m, r[i].key, r[i].klen);
		else if (r[i].type == TU_REC_BATCH)
			model_apply_batch(m, r[i].val, r[i].vlen);
		else if (r[i].type == TU_REC_CLEAR)
			for (size_t j = 0; j < m->cap; j++)
				if (m->tab[j].used && m->tab[j].present)
					tu_model_del(m, m->tab[j].key, m->tab[j].klen);
	}
}

static void key_text(char *out, size_t n, const unsigned char *k, size_t kl)
{
	size_t o = 0;

	for (size_t i = 0; i < kl && o + 5 < n; i++) {
		if (k[i] >= 0x20 && k[i] < 0x7f)
			out[o++] = (char)k[i];
		else
			o += (size_t)snprintf(out + o, n - o, "\\x%02x", k[i]);
	}
	out[o < n ? o : n - 1] = '\0';
}

bool tu_model_check(const struct tu_model *m, pkv *db, char *why, size_t whylen)
{
	static unsigned char buf[PKV_MAX_VALUE + 1];
	pkv_stats st;
	char kt[96];

	for (size_t i = 0; i < m->cap; i++) {
		const struct tu_model_ent *e = &m->tab[i];
		size_t vlen = (size_t)-1;
		int rc;

		if (!e->used)
			continue;
		rc = pkv_get(db, e->key, e->klen, buf, sizeof(buf), &vlen);
		key_text(kt, sizeof(kt), e->key, e->klen);
		if (!e->present) {
			if (rc != PKV_NOTFOUND) {
				snprintf(why, whylen,
					 "key '%s' should be absent, get gave %d vlen %zu", kt, rc,
					 vlen);
				return false;
			}
			continue;
		}
		if (rc != 0) {
			snprintf(why, whylen,
				 "key '%s' should be present (vlen %zu), get gave %d (%s)", kt,
				 e->vlen, rc, pkv_strerror(rc));
			return false;
		}
		if (vlen != e->vlen || (vlen && memcmp(buf, e->val, vlen) != 0)) {
			snprintf(why, whylen, "key '%s': value differs (length %zu, expected %zu)",
				 kt, vlen, e->vlen);
			return false;
		}
	}
	if (pkv_get_stats(db, &st) != 0) {
		snprintf(why, whylen, "pkv_get_stats failed");
		return false;
	}
	if (st.keys != m->present) {
		snprintf(why, whylen, "stats.keys is %llu, the store holds %zu keys",
			 (unsigned long long)st.keys, m->present);
		return false;
	}
	return true;
}

void tu_model_assert(const struct tu_model *m, pkv *db, const char *what)
{
	char why[512];

	cr_assert(tu_model_check(m, db, why, sizeof(why)), "%s: %s", what, why);
}

/* ---- log and I/O --------------------------------------------------------------------------- */

void tu_log_init(struct tu_log *l)
{
	memset(l, 0, sizeof(*l));
	pthread_mutex_init(&l->lock, NULL);
	l->worst_level = INT_MAX;
}

void tu_log_fn(void *ctx, int level, const char *msg)
{
	struct tu_log *l = ctx;
	size_t n = msg ? strlen(msg) : 0;

	pthread_mutex_lock(&l->lock);
	l->count++;
	if (level < l->worst_level)
		l->worst_level = level;
	if (n && l->used + n + 2 < sizeof(l->text)) {
		memcpy(l->text + l->used, msg, n);
		l->used += n;
		l->text[l->used++] = '\n';
		l->text[l->used] = '\0';
	}
	pthread_mutex_unlock(&l->lock);
}

bool tu_log_contains(const struct tu_log *l, const char *needle)
{
	return l->used && strstr(l->text, needle) != NULL;
}

size_t tu_read_full(int fd, void *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = read(fd, (char *)buf + got, n - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	return got;
}

bool tu_write_full(int fd, const void *buf, size_t n)
{
	size_t put = 0;

	while (put < n) {
		ssize_t r = write(fd, (const char *)buf + put, n - put);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return false;
		put += (size_t)r;
	}
	return true;
}

void tu_snap_file(const char *dir, char *out)
{
	char sub[PATH_MAX];
	struct dirent *e;
	DIR *d;
	int n = 0;

	tu_fmt(sub, sizeof(sub), "%s/snap", dir);
	d = opendir(sub);
	cr_assert_not_null(d, "%s: %s", sub, strerror(errno));
	while ((e = readdir(d)) != NULL) {
		size_t len = strlen(e->d_name);

		if (len > 5 && strcmp(e->d_name + len - 5, ".snap") == 0) {
			tu_fmt(out, PATH_MAX, "%s/%s", sub, e->d_name);
			n++;
		}
	}
	closedir(d);
	cr_assert_eq(n, 1, "%s holds %d snapshot files", sub, n);
}
