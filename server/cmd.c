/* SPDX-License-Identifier: MIT */
/*
 * cmd.c - the command table and the commands of pkv-server.
 *
 * How commands map onto the store:
 *   - Reads outside MULTI go straight to the store. Consecutive GETs of a pipeline are gathered
 *     (up to SRV_GET_RUN) and answered by one multi-get; MGET is one multi-get, so it never sees
 *     a batch (MSET, EXEC) in part.
 *   - Plain writes (SET without conditions, single-key DEL) are one store write each; the
 *     plain SETs and MSETs a pipeline sends in a row are one batch (flush_blind).
 *   - Everything that reads before it writes (SET NX/XX/GET/KEEPTTL, INCR and friends, APPEND,
 *     GETSET, GETDEL, GETEX, MSETNX, multi-key DEL, EXPIRE and friends, PERSIST) and every
 *     transaction (EXEC) runs on a struct txn: reads go to the store once per key and record the
 *     version they saw; writes go to an overlay that later reads of the same command or
 *     transaction see; at the end, one batch carries the writes and, for every key read, the
 *     condition "still at the version I read". If another client wrote one of those keys in
 *     between, the store refuses the whole batch (PKV_ECONFLICT) and the command runs again
 *     from the start; so fifty clients incrementing one key never lose an increment.
 *   - WATCH records the key's version; EXEC adds "still at the watched version" conditions and
 *     answers nil when one of them (not one of its own reads) no longer holds.
 *
 * Replies are appended to the connection's output; a command that is retried first truncates
 * what its previous attempt appended.
 */
#include "server.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "glob.h"

#define SRV_GET_RUN 64 /* most GETs of a pipeline answered by one multi-get */
#define SRV_TXN_RUN 64 /* most read-then-write commands of a pipeline in one transaction */
#define SRV_TXN_RUN_ARGS 4096 /* ... and most arguments, and bytes: well inside a batch's limits */
#define SRV_TXN_RUN_BYTES (4u * 1024 * 1024)
#define SRV_MAX_RETRIES 100000 /* conflicts before a command gives up (never seen in practice) */

/* command flags */
#define F_WRITE 0x1u /* writes the store */
#define F_READ 0x2u /* reads the store */
#define F_NOAUTH 0x4u /* allowed before AUTH */
#define F_NOMULTI 0x8u /* refused inside MULTI (its effect cannot join a batch) */
#define F_TXN 0x10u /* runs on a txn (read-then-write) outside MULTI too */
#define F_ADMIN 0x20u
#define F_FAST 0x40u
#define F_MULTICTL 0x80u /* MULTI EXEC DISCARD WATCH UNWATCH QUIT: not queued */

struct txn;

struct ctx {
	struct conn *c;
	size_t argc;
	const char **argv;
	const size_t *lens;
	struct txn *t; /* non-NULL: reads and writes go through the transaction */
	struct rbuf *out;
};

struct srv_cmd {
	const char *name;
	int arity; /* > 0 exact, < 0 at least -arity */
	unsigned flags;
	void (*fn)(struct ctx *x);
	int first, last, step;
	const char *group;
	const char *summary;
	const char *since;
};

/* ---- small helpers ----------------------------------------------------------------------- */

static bool arg_is(const struct ctx *x, size_t i, const char *s)
{
	return x->lens[i] == strlen(s) && strncasecmp(x->argv[i], s, x->lens[i]) == 0;
}

/* Strict integer as Redis reads one: optional '-', digits, no blanks, no '+'. */
static bool parse_ll(const char *s, size_t n, long long *out)
{
	unsigned long long v = 0, lim;
	bool neg = false;
	size_t i = 0;

	if (n == 0 || n > 20)
		return false;
	if (s[0] == '-') {
		neg = true;
		i = 1;
		if (n == 1)
			return false;
	}
	if (s[i] == '0' && n - i > 1)
		return false;
	lim = neg ? (unsigned long long)LLONG_MAX + 1 : (unsigned long long)LLONG_MAX;
	for (; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		if (v > (lim - (unsigned)(s[i] - '0')) / 10)
			return false;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (neg)
		*out = v == (unsigned long long)LLONG_MAX + 1 ? LLONG_MIN : -(long long)v;
	else
		*out = (long long)v;
	return true;
}

static __attribute__((unused)) bool arg_ll(struct ctx *x, size_t i, long long *out)
{
	if (parse_ll(x->argv[i], x->lens[i], out))
		return true;
	resp_error(x->out, "ERR value is not an integer or out of range");
	return false;
}

static void reply_ok(struct ctx *x)
{
	resp_simple(x->out, "OK");
}

static void reply_syntax(struct ctx *x)
{
	resp_error(x->out, "ERR syntax error");
}

static const char *cmd_lower(const struct srv_cmd *cmd, char *buf, size_t cap)
{
	size_t i;

	for (i = 0; cmd->name[i] && i + 1 < cap; i++)
		buf[i] = (char)tolower((unsigned char)cmd->name[i]);
	buf[i] = '\0';
	return buf;
}

/* ---- reads ------------------------------------------------------------------------------- */

/* One key's state as a command sees it. @val stays valid until the command ends. */
struct kv {
	bool found;
	const char *val;
	size_t vlen;
	uint64_t exp; /* ms since the epoch, 0 = never */
	uint64_t seq; /* version (0: absent); only with PKV_SRV_HAVE_GET_MANY */
};

/* A key that is empty or too long cannot be in the store: it reads as absent. */
static bool key_can_exist(size_t klen)
{
	return klen > 0 && klen <= PKV_MAX_KEY;
}

#ifdef PKV_SRV_HAVE_GET_MANY
static pkv_item *loop_items(struct loop *l, size_t n)
{
	if (n > l->cap_items && !srv_reserve(&l->items, &l->cap_items, n, sizeof(pkv_item), 64))
		return NULL;
	return l->items;
}
#endif

/*
 * Direct read (no txn). With multi-get, the caller is inside a read section (cmd_dispatch opens
 * one around every F_READ command) and @val points into the store; without, it points into the
 * loop's scratch and is valid until the next read.
 */
static int read_direct(struct ctx *x, const char *key, size_t klen, struct kv *kv)
{
	memset(kv, 0, sizeof(*kv));
	if (!key_can_exist(klen))
		return 0;
#ifdef PKV_SRV_HAVE_GET_MANY
	(void)x;
	pkv_item it = { .key = key, .klen = klen };
	int rc = pkv_get_many(srv.db, &it, 1);

	if (rc < 0)
		return rc;
	if (it.rc == PKV_NOTFOUND || it.rc == PKV_EINVAL || it.rc == PKV_ETOOBIG)
		return 0;
	if (it.rc < 0)
		return it.rc;
	kv->found = true;
	kv->val = it.val;
	kv->vlen = it.vlen;
	kv->exp = it.expires_ms;
	kv->seq = it.seq;
	return 0;
#else
	size_t vlen = 0;
	int rc = pkv_get(srv.db, key, klen, x->c->loop->scratch, PKV_MAX_VALUE, &vlen);

	if (rc == PKV_NOTFOUND || rc == PKV_EINVAL || rc == PKV_ETOOBIG)
		return 0;
	if (rc < 0)
		return rc;
	kv->found = true;
	kv->val = x->c->loop->scratch;
	kv->vlen = vlen;
	return 0;
#endif
}

#ifdef PKV_SRV_HAVE_BATCH
/* The loop's batch, emptied: one is enough, a batch is written before the next is built. */
static pkv_batch *loop_batch(struct loop *l)
{
	if (!l->batch && pkv_batch_new((pkv_batch **)&l->batch) < 0)
		return NULL;
	pkv_batch_clear(l->batch);
	return l->batch;
}
#endif

/* ---- transactions (conditional batches) --------------------------------------------------- */

#ifdef PKV_SRV_RMW
struct tent {
	char *key;
	size_t klen;
	bool read; /* the store was read: commit expects version @rseq */
	uint64_t rseq;
	bool present;
	char *val;
	size_t vlen;
	uint64_t exp;
	bool dirty; /* written by the transaction */
};

/* A piece of a transaction's arena. */
struct tchunk {
	struct tchunk *next;
	size_t len, cap;
	char data[];
};

#define TXN_CHUNK 16384u

struct txn {
	struct tent *e;
	size_t n, cap;
	bool dirty;
	/*
	 * Keys and values (read or written) live in an arena until the transaction ends: a value
	 * replaced by a later write may still be replied (GETDEL, SET GET), and a run of INCRs
	 * made four mallocs and frees per command.
	 */
	struct tchunk *arena;
};

/* @n bytes that live until txn_reset(), or NULL. */
static char *txn_alloc(struct txn *t, size_t n)
{
	struct tchunk *ch = t->arena;
	char *p;

	n = (n + 7) & ~(size_t)7;
	if (!ch || ch->cap - ch->len < n) {
		size_t cap = n > TXN_CHUNK ? n : TXN_CHUNK;

		ch = malloc(sizeof(*ch) + cap);
		if (!ch)
			return NULL;
		ch->len = 0;
		ch->cap = cap;
		ch->next = t->arena;
		t->arena = ch;
	}
	p = ch->data + ch->len;
	ch->len += n;
	return p;
}

static void txn_reset(struct txn *t)
{
	struct tchunk *ch = t->arena;

	t->n = 0;
	t->dirty = false;
	/* keep one chunk for the next attempt */
	if (ch) {
		while (ch->next) {
			struct tchunk *nx = ch->next;

			ch->next = nx->next;
			free(nx);
		}
		ch->len = 0;
	}
}

static void txn_free(struct txn *t)
{
	txn_reset(t);
	free(t->e);
	t->e = NULL;
	t->cap = 0;
	free(t->arena);
	t->arena = NULL;
}

static struct tent *txn_find(struct txn *t, const char *key, size_t klen)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->e[i].klen == klen && memcmp(t->e[i].key, key, klen) == 0)
			return &t->e[i];
	return NULL;
}

static struct tent *txn_add(struct txn *t, const char *key, size_t klen)
{
	struct tent *e;

	if (t->n == t->cap && !srv_reserve(&t->e, &t->cap, t->n + 1, sizeof(*t->e), 8))
		return NULL;
	e = &t->e[t->n];
	memset(e, 0, sizeof(*e));
	e->key = txn_alloc(t, klen ? klen : 1);
	if (!e->key)
		return NULL;
	memcpy(e->key, key, klen);
	e->klen = klen;
	t->n++;
	return e;
}

/* Read through the transaction: its own writes first, else the store (recording the version). */
static int txn_read(struct txn *t, const char *key, size_t klen, struct kv *kv)
{
	struct tent *e = txn_find(t, key, klen);
	pkv_item it = { .key = key, .klen = klen };
	int rc;

	memset(kv, 0, sizeof(*kv));
	if (!e) {
		if (key_can_exist(klen)) {
			rc = pkv_read_begin(srv.db);
			if (rc < 0)
				return rc;
			rc = pkv_get_many(srv.db, &it, 1);
			if (rc >= 0 && it.rc < 0 && it.rc != PKV_NOTFOUND)
				rc = it.rc;
			if (rc < 0) {
				pkv_read_end(srv.db);
				return rc;
			}
		} else {
			it.rc = PKV_NOTFOUND; /* cannot exist; a write of it fails at commit */
		}
		e = txn_add(t, key, klen);
		if (!e) {
			if (key_can_exist(klen))
				pkv_read_end(srv.db);
			return -ENOMEM;
		}
		e->read = key_can_exist(klen);
		e->rseq = it.rc == 0 ? it.seq : 0;
		e->present = it.rc == 0;
		if (e->present) {
			e->val = txn_alloc(t, it.vlen ? it.vlen : 1);
			if (!e->val) {
				pkv_read_end(srv.db);
				e->present = false;
				return -ENOMEM;
			}
			memcpy(e->val, it.val, it.vlen);
			e->vlen = it.vlen;
			e->exp = it.expires_ms;
		}
		if (key_can_exist(klen))
			pkv_read_end(srv.db);
	}
	if (e->present && e->exp && e->exp <= srv_now_ms())
		return 0; /* expired while the transaction ran: absent from here on */
	kv->found = e->present;
	kv->val = e->val;
	kv->vlen = e->vlen;
	kv->exp = e->exp;
	kv->seq = e->rseq;
	return 0;
}

static int txn_write(struct txn *t, const char *key, size_t klen, const void *val, size_t vlen,
		     uint64_t exp, bool del)
{
	struct tent *e = txn_find(t, key, klen);
	char *nv = NULL;

	if (!e) {
		e = txn_add(t, key, klen);
		if (!e)
			return -ENOMEM;
	}
	if (!del) {
		nv = txn_alloc(t, vlen ? vlen : 1);
		if (!nv)
			return -ENOMEM;
		if (vlen)
			memcpy(nv, val, vlen);
	}
	e->val = nv; /* the old value stays in the arena */
	e->vlen = del ? 0 : vlen;
	e->present = !del;
	e->exp = del ? 0 : exp;
	e->dirty = true;
	t->dirty = true;
	return 0;
}

/*
 * Write what the transaction wrote, on the conditions that every key it read is still at the
 * version it read and every watched key at its watched version. Returns 0 (and *seq), or
 * PKV_ECONFLICT, or another store error.
 */
static int txn_commit(struct conn *c, struct txn *t, const struct watched_key *w, size_t nw,
		      uint64_t *seq)
{
	pkv_batch *b = loop_batch(c->loop);
	int rc = 0;

	*seq = 0;
	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i < nw; i++) {
		struct tent *e = txn_find(t, w[i].key, w[i].klen);

		if (e && e->read) {
			if (e->rseq != w[i].seq)
				return PKV_ECONFLICT; /* the transaction itself saw the change */
			continue; /* its condition is there already */
		}
		if (key_can_exist(w[i].klen)) {
			rc = pkv_batch_expect(b, w[i].key, w[i].klen, w[i].seq);
			if (rc < 0)
				return rc;
		}
	}
	for (size_t i = 0; i < t->n; i++) {
		struct tent *e = &t->e[i];

		if (e->read && (rc = pkv_batch_expect(b, e->key, e->klen, e->rseq)) < 0)
			return rc;
	}
	for (size_t i = 0; i < t->n; i++) {
		struct tent *e = &t->e[i];

		if (!e->dirty)
			continue;
		if (!e->present)
			rc = key_can_exist(e->klen) ? pkv_batch_del(b, e->key, e->klen) : 0;
#ifdef PKV_SRV_HAVE_EXPIRE
		else if (e->exp)
			rc = pkv_batch_put_expire(b, e->key, e->klen, e->val, e->vlen, e->exp);
#endif
		else
			rc = pkv_batch_put(b, e->key, e->klen, e->val, e->vlen);
		if (rc < 0)
			return rc;
	}
	if (!t->dirty && nw == 0)
		return 0;
	return pkv_write(srv.db, b, 0, seq);
}
#endif /* PKV_SRV_RMW */

/* Read one key for a command: through its transaction, or directly. */
static int kv_read(struct ctx *x, const char *key, size_t klen, struct kv *kv)
{
#ifdef PKV_SRV_RMW
	if (x->t)
		return txn_read(x->t, key, klen, kv);
#endif
	return read_direct(x, key, klen, kv);
}

/* Reads that fail (a damaged snapshot) answer an error; returns false then. */
static bool kv_read_or_reply(struct ctx *x, const char *key, size_t klen, struct kv *kv)
{
	int rc = kv_read(x, key, klen, kv);

	if (rc < 0) {
		reply_store_error(x->c, rc);
		return false;
	}
	return true;
}

#ifdef PKV_SRV_RMW
/* Buffer a write in the command's transaction; false (and an error reply) if it cannot be. */
static bool kv_write(struct ctx *x, const char *key, size_t klen, const void *val, size_t vlen,
		     uint64_t exp, bool del)
{
	int rc;

	if (!del && (klen == 0 || klen > PKV_MAX_KEY || vlen > PKV_MAX_VALUE)) {
		reply_store_error(x->c, klen == 0 ? PKV_EINVAL : PKV_ETOOBIG);
		return false;
	}
	rc = txn_write(x->t, key, klen, val, vlen, exp, del);
	if (rc < 0) {
		reply_store_error(x->c, rc);
		return false;
	}
	return true;
}
#endif

/* ---- pipelined GETs ------------------------------------------------------------------------ */

static void reply_value(struct ctx *x, const struct kv *kv)
{
	if (kv->found)
		resp_bulk(x->out, kv->val, kv->vlen);
	else
		resp_null(x->out, x->c->proto);
}

/* Answer the gathered GETs in order, with one multi-get. */
static void flush_gets(struct conn *c)
{
	struct loop *l = c->loop;
	size_t n = c->npget;

	if (n == 0)
		return;
	c->npget = 0;
#ifdef PKV_SRV_HAVE_GET_MANY
	pkv_item *it = loop_items(l, n);
	int rc = it ? pkv_read_begin(srv.db) : -ENOMEM;

	if (rc < 0) {
		for (size_t i = 0; i < n; i++)
			reply_store_error(c, rc);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		memset(&it[i], 0, sizeof(it[i]));
		it[i].key = c->pget[i].key;
		it[i].klen = c->pget[i].klen;
	}
	rc = pkv_get_many(srv.db, it, n);
	for (size_t i = 0; i < n; i++) {
		int irc = rc < 0 ? rc : it[i].rc;

		if (irc == 0) {
			resp_bulk(&c->out, it[i].val, it[i].vlen);
			atomic_fetch_add_explicit(&l->st.hits, 1, memory_order_relaxed);
		} else if (irc == PKV_NOTFOUND || irc == PKV_EINVAL || irc == PKV_ETOOBIG) {
			resp_null(&c->out, c->proto);
			atomic_fetch_add_explicit(&l->st.misses, 1, memory_order_relaxed);
		} else {
			reply_store_error(c, irc);
		}
	}
	pkv_read_end(srv.db);
#else
	for (size_t i = 0; i < n; i++) {
		size_t vlen = 0;
		int rc = key_can_exist(c->pget[i].klen) ?
				 pkv_get(srv.db, c->pget[i].key, c->pget[i].klen, l->scratch,
					 PKV_MAX_VALUE, &vlen) :
				 PKV_NOTFOUND;

		if (rc == 0) {
			resp_bulk(&c->out, l->scratch, vlen);
			atomic_fetch_add_explicit(&l->st.hits, 1, memory_order_relaxed);
		} else if (rc == PKV_NOTFOUND) {
			resp_null(&c->out, c->proto);
			atomic_fetch_add_explicit(&l->st.misses, 1, memory_order_relaxed);
		} else {
			reply_store_error(c, rc);
		}
	}
#endif
}

static bool pending_get_add(struct conn *c, const char *key, size_t klen)
{
	if (c->npget == c->cappget &&
	    !srv_reserve(&c->pget, &c->cappget, c->npget + 1, sizeof(*c->pget), 16))
		return false;
	c->pget[c->npget].key = key;
	c->pget[c->npget].klen = klen;
	c->npget++;
	if (c->npget >= SRV_GET_RUN)
		flush_gets(c);
	return true;
}

#ifdef PKV_SRV_RMW
static void flush_txns(struct conn *c);
#endif
#ifdef PKV_SRV_HAVE_BATCH
static void flush_blind(struct conn *c);
#endif

/*
 * Answer what waits for a run (GETs, read-then-write commands, plain writes): before anything
 * else runs. At most one kind waits at a time: adding to one run flushes the others first.
 */
void cmd_flush_pending(struct conn *c)
{
	flush_gets(c);
#ifdef PKV_SRV_RMW
	flush_txns(c);
#endif
#ifdef PKV_SRV_HAVE_BATCH
	flush_blind(c);
#endif
}

/* ---- connection commands ------------------------------------------------------------------ */

static void cmd_ping(struct ctx *x)
{
	if (x->argc > 2) {
		resp_error(x->out, "ERR wrong number of arguments for 'ping' command");
		return;
	}
	if (x->argc == 2)
		resp_bulk(x->out, x->argv[1], x->lens[1]);
	else
		resp_simple(x->out, "PONG");
}

static void cmd_echo(struct ctx *x)
{
	resp_bulk(x->out, x->argv[1], x->lens[1]);
}

static void cmd_quit(struct ctx *x)
{
	reply_ok(x);
	conn_close_after_reply(x->c);
}

static bool password_ok(const char *p, size_t n)
{
	const char *want = srv.cfg.requirepass;
	size_t wn = strlen(want);
	unsigned diff = (unsigned)(n != wn);

	/* compare every byte whatever the length: no early exit to time */
	for (size_t i = 0; i < n; i++)
		diff |= (unsigned)(unsigned char)p[i] ^ (unsigned char)want[i % (wn ? wn : 1)];
	return diff == 0;
}

/* AUTH's check; replies on failure. */
static bool auth_check(struct ctx *x, const char *user, size_t ulen, const char *pass, size_t plen)
{
	if (!srv.cfg.requirepass) {
		resp_error(x->out, "ERR AUTH <password> called without any password configured for "
				   "the default user. Are you sure your configuration is correct?");
		return false;
	}
	if ((user && !(ulen == 7 && memcmp(user, "default", 7) == 0)) || !password_ok(pass, plen)) {
		resp_error(x->out, "WRONGPASS invalid username-password pair or user is disabled.");
		return false;
	}
	x->c->authed = true;
	return true;
}

static void cmd_auth(struct ctx *x)
{
	if (x->argc > 3) {
		reply_syntax(x);
		return;
	}
	if (x->argc == 2 ? auth_check(x, NULL, 0, x->argv[1], x->lens[1]) :
			   auth_check(x, x->argv[1], x->lens[1], x->argv[2], x->lens[2]))
		reply_ok(x);
}

static bool name_ok(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < '!' || s[i] > '~')
			return false;
	return true;
}

static void set_name(struct conn *c, const char *s, size_t n)
{
	char *nn = NULL;

	if (n) {
		nn = malloc(n + 1);
		if (!nn)
			return;
		memcpy(nn, s, n);
		nn[n] = '\0';
	}
	pthread_mutex_lock(&srv.clients_lock);
	free(c->name);
	c->name = nn;
	pthread_mutex_unlock(&srv.clients_lock);
}

static void cmd_hello(struct ctx *x)
{
	long long ver = x->c->proto;
	size_t i = 1;
	const char *name = NULL;
	size_t nlen = 0;

	if (x->argc >= 2) {
		if (!parse_ll(x->argv[1], x->lens[1], &ver)) {
			resp_error(x->out,
				   "ERR Protocol version is not an integer or out of range");
			return;
		}
		if (ver < 2 || ver > 3) {
			resp_error(x->out, "NOPROTO unsupported protocol version");
			return;
		}
		i = 2;
	}
	for (; i < x->argc; i++) {
		if (arg_is(x, i, "AUTH") && i + 2 < x->argc) {
			if (!auth_check(x, x->argv[i + 1], x->lens[i + 1], x->argv[i + 2],
					x->lens[i + 2]))
				return;
			i += 2;
		} else if (arg_is(x, i, "SETNAME") && i + 1 < x->argc) {
			name = x->argv[i + 1];
			nlen = x->lens[i + 1];
			if (!name_ok(name, nlen)) {
				resp_error(x->out,
					   "ERR Client names cannot contain spaces, newlines or "
					   "special characters.");
				return;
			}
			i++;
		} else {
			resp_errorf(x->out, "ERR Syntax error in HELLO option '%.*s'",
				    (int)(x->lens[i] > 64 ? 64 : x->lens[i]), x->argv[i]);
			return;
		}
	}
	if (!x->c->authed) {
		resp_error(x->out,
			   "NOAUTH HELLO must be called with the client already authenticated, "
			   "otherwise the HELLO <proto> AUTH <user> <pass> option can be used to "
			   "authenticate the client and select the RESP protocol version at the "
			   "same time");
		return;
	}
	if (name)
		set_name(x->c, name, nlen);
	/* atomic: CLIENT LIST on another loop reads it */
	__atomic_store_n(&x->c->proto, (int)ver, __ATOMIC_RELAXED);
	resp_map(x->out, x->c->proto, 7);
	resp_bulk_cstr(x->out, "server");
	resp_bulk_cstr(x->out, "redis");
	resp_bulk_cstr(x->out, "version");
	resp_bulk_cstr(x->out, SRV_REDIS_COMPAT);
	resp_bulk_cstr(x->out, "proto");
	resp_int(x->out, ver);
	resp_bulk_cstr(x->out, "id");
	resp_int(x->out, (long long)x->c->id);
	resp_bulk_cstr(x->out, "mode");
	resp_bulk_cstr(x->out, "standalone");
	resp_bulk_cstr(x->out, "role");
	resp_bulk_cstr(x->out, "master");
	resp_bulk_cstr(x->out, "modules");
	resp_array(x->out, 0);
}

static void cmd_select(struct ctx *x)
{
	long long db;

	if (!parse_ll(x->argv[1], x->lens[1], &db)) {
		resp_error(x->out, "ERR value is not an integer or out of range");
		return;
	}
	if (db != 0) {
		resp_error(x->out, "ERR DB index is out of range");
		return;
	}
	reply_ok(x);
}

/* ---- expiry arguments --------------------------------------------------------------------- */

#ifdef PKV_SRV_EXPIRY
/*
 * Turn "EX n" / "PX n" / "EXAT n" / "PXAT n" into an absolute time in ms. unit_ms is 1000 or 1,
 * absolute says whether n is a point in time. Replies and returns false on a bad value.
 */
static bool expire_arg(struct ctx *x, size_t i, uint64_t unit_ms, bool absolute, bool allow_past,
		       const char *cmdname, uint64_t *out)
{
	long long n;
	uint64_t now = srv_now_ms();

	if (!arg_ll(x, i, &n))
		return false;
	if ((!allow_past && n <= 0) || (n > 0 && (uint64_t)n > (UINT64_MAX / 2) / unit_ms) ||
	    (!absolute && n > 0 && (uint64_t)n * unit_ms > (uint64_t)LLONG_MAX - now)) {
		resp_errorf(x->out, "ERR invalid expire time in '%s' command", cmdname);
		return false;
	}
	if (n <= 0)
		*out = absolute ? 1 : now; /* already past */
	else
		*out = absolute ? (uint64_t)n * unit_ms : now + (uint64_t)n * unit_ms;
	if (*out == 0)
		*out = 1;
	return true;
}
#endif

/* ---- strings ----------------------------------------------------------------------------- */

static void cmd_get(struct ctx *x)
{
	struct kv kv;

	if (!kv_read_or_reply(x, x->argv[1], x->lens[1], &kv))
		return;
	reply_value(x, &kv);
}

/*
 * A plain write outside any transaction: one store call. *seq: its sequence number, for the
 * durable reply (0 when the API does not say it: the reply then waits for every write so far).
 */
static int put_direct(struct ctx *x, const char *key, size_t klen, const void *val, size_t vlen,
		      uint64_t exp, uint64_t *seq)
{
	int rc;

	(void)x;
	*seq = 0;
#ifdef PKV_SRV_HAVE_EXPIRE
	if (exp)
		return pkv_put_expire(srv.db, key, klen, val, vlen, exp, 0);
#endif
	(void)exp;
#ifdef PKV_SRV_HAVE_TICKETS
	rc = pkv_put_seq(srv.db, key, klen, val, vlen, 0, seq);
#else
	rc = pkv_put(srv.db, key, klen, val, vlen);
#endif
	return rc;
}

enum {
	SET_NX = 1,
	SET_XX = 2,
	SET_GET = 4,
	SET_KEEPTTL = 8,
	SET_EXP = 16
};

/* SET and its relatives: key, value, flags, expiry (absolute ms, 0 none). */
static void do_set(struct ctx *x, const char *key, size_t klen, const char *val, size_t vlen,
		   unsigned flags, uint64_t exp)
{
	struct kv old = { 0 };

	if (!(flags & (SET_NX | SET_XX | SET_GET | SET_KEEPTTL)) && !x->t) {
		uint64_t seq;
		int rc = put_direct(x, key, klen, val, vlen, exp, &seq);

		if (rc < 0) {
			reply_store_error(x->c, rc);
			return;
		}
		conn_hold(x->c, x->out->len, seq);
		reply_ok(x);
		return;
	}
#ifdef PKV_SRV_RMW
	/* a blind SET in a transaction reads nothing: no condition, no conflict */
	if ((flags & (SET_NX | SET_XX | SET_GET | SET_KEEPTTL)) &&
	    !kv_read_or_reply(x, key, klen, &old))
		return;
	if ((flags & SET_NX && old.found) || (flags & SET_XX && !old.found)) {
		if (flags & SET_GET)
			reply_value(x, &old);
		else
			resp_null(x->out, x->c->proto);
		return;
	}
	if (flags & SET_KEEPTTL)
		exp = old.exp;
	if (exp && exp <= srv_now_ms()) {
		if (!kv_write(x, key, klen, NULL, 0, 0, true))
			return;
	} else if (!kv_write(x, key, klen, val, vlen, exp, false)) {
		return;
	}
	if (flags & SET_GET)
		reply_value(x, &old);
	else
		reply_ok(x);
#else
	(void)old;
	resp_error(x->out, "ERR this SET option needs conditional batches, which this build of "
			   "the store lacks");
#endif
}

static void cmd_set(struct ctx *x)
{
	unsigned flags = 0;
	uint64_t exp = 0;

	for (size_t i = 3; i < x->argc; i++) {
		bool more = i + 1 < x->argc;

		if (arg_is(x, i, "NX") && !(flags & SET_XX)) {
			flags |= SET_NX;
		} else if (arg_is(x, i, "XX") && !(flags & SET_NX)) {
			flags |= SET_XX;
		} else if (arg_is(x, i, "GET")) {
			flags |= SET_GET;
		} else if (arg_is(x, i, "KEEPTTL") && !(flags & SET_EXP)) {
			flags |= SET_KEEPTTL;
		} else if ((arg_is(x, i, "EX") || arg_is(x, i, "PX") || arg_is(x, i, "EXAT") ||
			    arg_is(x, i, "PXAT")) &&
			   more && !(flags & (SET_EXP | SET_KEEPTTL))) {
#ifdef PKV_SRV_EXPIRY
			bool px = toupper((unsigned char)x->argv[i][0]) == 'P';
			bool at = x->lens[i] == 4;

			if (!expire_arg(x, i + 1, px ? 1 : 1000, at, false, "set", &exp))
				return;
			flags |= SET_EXP;
			i++;
#else
			resp_error(x->out, "ERR expiry needs an API this build of the store lacks");
			return;
#endif
		} else {
			reply_syntax(x);
			return;
		}
	}
	do_set(x, x->argv[1], x->lens[1], x->argv[2], x->lens[2], flags, exp);
}

#ifdef PKV_SRV_RMW
static void cmd_setnx(struct ctx *x)
{
	struct kv old;

	if (!kv_read_or_reply(x, x->argv[1], x->lens[1], &old))
		return;
	if (old.found) {
		resp_int(x->out, 0);
		return;
	}
	if (kv_write(x, x->argv[1], x->lens[1], x->argv[2], x->lens[2], 0, false))
		resp_int(x->out, 1);
}

static void cmd_getset(struct ctx *x)
{
	do_set(x, x->argv[1], x->lens[1], x->argv[2], x->lens[2], SET_GET, 0);
}

static void cmd_getdel(struct ctx *x)
{
	struct kv old;

	if (!kv_read_or_reply(x, x->argv[1], x->lens[1], &old))
		return;
	if (old.found && !kv_write(x, x->argv[1], x->lens[1], NULL, 0, 0, true))
		return;
	reply_value(x, &old);
}
#endif

#ifdef PKV_SRV_EXPIRY
static void setex_common(struct ctx *x, uint64_t unit, const char *name)
{
	uint64_t exp;

	if (!expire_arg(x, 2, unit, false, false, name, &exp))
		return;
	do_set(x, x->argv[1], x->lens[1], x->argv[3], x->lens[3], SET_EXP, exp);
}

static void cmd_setex(struct ctx *x)
{
	setex_common(x, 1000, "setex");
}

static void cmd_psetex(struct ctx *x)
{
	setex_common(x, 1, "psetex");
}

static void cmd_getex(struct ctx *x)
{
	struct kv old;
	uint64_t exp = 0;
	bool persist = false, set = false;

	for (size_t i = 2; i < x->argc; i++) {
		if (arg_is(x, i, "PERSIST") && !set && !persist) {
			persist = true;
		} else if ((arg_is(x, i, "EX") || arg_is(x, i, "PX") || arg_is(x, i, "EXAT") ||
			    arg_is(x, i, "PXAT")) &&
			   i + 1 < x->argc && !set && !persist) {
			bool px = toupper((unsigned char)x->argv[i][0]) == 'P';
			bool at = x->lens[i] == 4;

			if (!expire_arg(x, i + 1, px ? 1 : 1000, at, false, "getex", &exp))
				return;
			set = true;
			i++;
		} else {
			reply_syntax(x);
			return;
		}
	}
	if (!kv_read_or_reply(x, x->argv[1], x->lens[1], &old))
		return;
	if (old.found && (set || (persist && old.exp))) {
		bool ok;

		if (set && exp <= srv_now_ms())
			ok = kv_write(x, x->argv[1], x->lens[1], NULL, 0, 0, true);
		else
			ok = kv_write(x, x->argv[1], x->lens[1], old.val, old.vlen, set ? exp : 0,
				      false);
		if (!ok)
			return;
	}
	reply_value(x, &old);
}
#endif

static void cmd_mget(struct ctx *x)
{
	size_t n = x->argc - 1;

#ifdef PKV_SRV_HAVE_GET_MANY
	if (!x->t) {
		/* One multi-get: an MSET or EXEC is seen entirely or not at all. */
		pkv_item *it = loop_items(x->c->loop, n);
		int rc;

		if (!it) {
			reply_store_error(x->c, -ENOMEM);
			return;
		}
		for (size_t i = 0; i < n; i++) {
			memset(&it[i], 0, sizeof(it[i]));
			it[i].key = x->argv[i + 1];
			it[i].klen = x->lens[i + 1];
		}
		rc = pkv_get_many(srv.db, it, n);
		if (rc < 0) {
			reply_store_error(x->c, rc);
			return;
		}
		resp_array(x->out, n);
		for (size_t i = 0; i < n; i++) {
			if (it[i].rc == 0)
				resp_bulk(x->out, it[i].val, it[i].vlen);
			else if (it[i].rc == PKV_NOTFOUND || it[i].rc == PKV_EINVAL ||
				 it[i].rc == PKV_ETOOBIG)
				resp_null(x->out, x->c->proto);
			else
				reply_store_error(x->c, it[i].rc);
		}
		return;
	}
#endif
	resp_array(x->out, n);
	for (size_t i = 0; i < n; i++) {
		struct kv kv;
		int rc = kv_read(x, x->argv[i + 1], x->lens[i + 1], &kv);

		if (rc < 0)
			reply_store_error(x->c, rc);
		else
			reply_value(x, &kv);
	}
}

#ifdef PKV_SRV_RMW
static void cmd_mset(struct ctx *x)
{
	if (x->argc % 2 == 0) {
		resp_error(x->out, "ERR wrong number of arguments for 'mset' command");
		return;
	}
	/* all or nothing: a pair the store refuses must not leave the pairs before it written */
	for (size_t i = 1; i < x->argc; i += 2) {
		if (x->lens[i] == 0 || x->lens[i] > PKV_MAX_KEY || x->lens[i + 1] > PKV_MAX_VALUE) {
			reply_store_error(x->c, x->lens[i] == 0 ? PKV_EINVAL : PKV_ETOOBIG);
			return;
		}
	}
	for (size_t i = 1; i < x->argc; i += 2)
		if (!kv_write(x, x->argv[i], x->lens[i], x->argv[i + 1], x->lens[i + 1], 0, false))
			return;
	reply_ok(x);
}

static void cmd_msetnx(struct ctx *x)
{
	struct kv kv;

	if (x->argc % 2 == 0) {
		resp_error(x->out, "ERR wrong number of arguments for 'msetnx' command");
		return;
	}
	for (size_t i = 1; i < x->argc; i += 2) {
		if (!kv_read_or_reply(x, x->argv[i], x->lens[i], &kv))
			return;
		if (kv.found) {
			resp_int(x->out, 0);
			return;
		}
	}
	for (size_t i = 1; i < x->argc; i += 2)
		if (!kv_write(x, x->argv[i], x->lens[i], x->argv[i + 1], x->lens[i + 1], 0, false))
			return;
	resp_int(x->out, 1);
}
#endif

#if defined(PKV_SRV_HAVE_BATCH) && !defined(PKV_SRV_RMW)
/* Batches without versioned reads: MSET is a blind batch and needs nothing more. */
static void cmd_mset(struct ctx *x)
{
	struct loop *l = x->c->loop;
	uint64_t seq = 0;
	int rc = 0;

	if (x->argc % 2 == 0) {
		resp_error(x->out, "ERR wrong number of arguments for 'mset' command");
		return;
	}
	if (!l->batch && (rc = pkv_batch_new((pkv_batch **)&l->batch)) < 0) {
		reply_store_error(x->c, rc);
		return;
	}
	pkv_batch_clear(l->batch);
	for (size_t i = 1; i < x->argc && rc == 0; i += 2)
		rc = pkv_batch_put(l->batch, x->argv[i], x->lens[i], x->argv[i + 1],
				   x->lens[i + 1]);
	if (rc == 0)
		rc = pkv_write(srv.db, l->batch, 0, &seq);
	if (rc < 0) {
		reply_store_error(x->c, rc);
		return;
	}
	conn_hold(x->c, x->out->len, seq);
	reply_ok(x);
}
#endif

static void cmd_del(struct ctx *x)
{
	if (x->argc == 2 && !x->t) {
		uint64_t seq = 0;
#ifdef PKV_SRV_HAVE_TICKETS
		int rc = key_can_exist(x->lens[1]) ?
				 pkv_del_seq(srv.db, x->argv[1], x->lens[1], 0, &seq) :
				 PKV_NOTFOUND;
#else
		int rc = key_can_exist(x->lens[1]) ? pkv_del(srv.db, x->argv[1], x->lens[1]) :
						     PKV_NOTFOUND;
#endif

		if (rc == PKV_NOTFOUND) {
			resp_int(x->out, 0);
			return;
		}
		if (rc < 0) {
			reply_store_error(x->c, rc);
			return;
		}
		conn_hold(x->c, x->out->len, seq);
		resp_int(x->out, 1);
		return;
	}
#ifdef PKV_SRV_RMW
	long long n = 0;

	for (size_t i = 1; i < x->argc; i++) {
		struct kv kv;

		if (!kv_read_or_reply(x, x->argv[i], x->lens[i], &kv))
			return;
		if (kv.found) {
			n++;
			if (!kv_write(x, x->argv[i], x->lens[i], NULL, 0, 0, true))
				return;
		}
	}
	resp_int(x->out, n);
#else
	resp_error(x->out, "ERR DEL of several keys needs batches, which this build of the store "
			   "lacks");
#endif
}

static void cmd_exists(struct ctx *x)
{
	long long n = 0;

	for (size_t i = 1; i < x->argc; i++) {
		struct kv kv;

		if (!kv_read_or_reply(x, x->argv[i], x->lens[i], &kv))
			return;
		n += kv.found;
	}
	resp_int(x->out, n);
}

static void cmd_strlen(struct ctx *x)
{
	struct kv kv;

	if (kv_read_or_reply(x, x->argv[1], x->lens[1], &kv))
		resp_int(x->out, kv.found ? (long long)kv.vlen : 0);
}

static void cmd_type(struct ctx *x)
{
	struct kv kv;

	if (kv_read_or_reply(x, x->argv[1], x->lens[1], &kv))
		resp_simple(x->out, kv.found ? "string" : "none");
}

#ifdef PKV_SRV_RMW
static void cmd_append(struct ctx *x)
{
	struct kv old;
	char *nv;
	size_t n;

	if (!kv_read_or_reply(x, x->argv[1], x->lens[1], &old))
		return;
	n = (old.found ? old.vlen : 0) + x->lens[2];
	if (n > PKV_MAX_VALUE) {
		resp_error(x->out, "ERR string exceeds maximum allowed size (proto-max-bulk-len)");
		return;
	}
	nv = malloc(n ? n : 1);
	if (!nv) {
		reply_store_error(x->c, -ENOMEM);
		return;
	}
	if (old.found && old.vlen)
		memcpy(nv, old.val, old.vlen);
	memcpy(nv + (old.found ? old.vlen : 0), x->argv[2], x->lens[2]);
	if (kv_write(x, x->argv[1], x->lens[1], nv, n, old.found ? old.exp : 0, false))
		resp_int(x->out, (long long)n);
	free(nv);
}

static void incr_by(struct ctx *x, long long by)
{
	struct kv old;
	long long v = 0;
	char tmp[24];
	size_t n;

	if (!kv_read_or_reply(x, x->argv[1], x->lens[1], &old))
		return;
	if (old.found && !parse_ll(old.val, old.vlen, &v)) {
		resp_error(x->out, "ERR value is not an integer or out of range");
		return;
	}
	if ((by > 0 && v > LLONG_MAX - by) || (by < 0 && v < LLONG_MIN - by)) {
		resp_error(x->out, "ERR increment or decrement would overflow");
		return;
	}
	v += by;
	n = resp_fmt_ll(tmp, v);
	if (kv_write(x, x->argv[1], x->lens[1], tmp, n, old.found ? old.exp : 0, false))
		resp_int(x->out, v);
}

static void cmd_incr(struct ctx *x)
{
	incr_by(x, 1);
}

static void cmd_decr(struct ctx *x)
{
	incr_by(x, -1);
}

static void cmd_incrby(struct ctx *x)
{
	long long by;

	if (arg_ll(x, 2, &by))
		incr_by(x, by);
}

static void cmd_decrby(struct ctx *x)
{
	long long by;

	if (!arg_ll(x, 2, &by))
		return;
	if (by == LLONG_MIN) {
		resp_error(x->out, "ERR decrement would overflow");
		return;
	}
	incr_by(x, -by);
}
#endif

/* ---- expiry commands ---------------------------------------------------------------------- */

#ifdef PKV_SRV_EXPIRY
static void expire_common(struct ctx *x, uint64_t unit, bool absolute, const char *name)
{
	enum {
		NX = 1,
		XX = 2,
		GT = 4,
		LT = 8
	};
	unsigned opt = 0;
	uint64_t when;
	struct kv old;

	for (size_t i = 3; i < x->argc; i++) {
		if (arg_is(x, i, "NX"))
			opt |= NX;
		else if (arg_is(x, i, "XX"))
			opt |= XX;
		else if (arg_is(x, i, "GT"))
			opt |= GT;
		else if (arg_is(x, i, "LT"))
			opt |= LT;
		else {
			resp_errorf(x->out, "ERR Unsupported option %.*s",
				    (int)(x->lens[i] > 32 ? 32 : x->lens[i]), x->argv[i]);
			return;
		}
	}
	if ((opt & NX) && (opt & (XX | GT | LT))) {
		resp_error(x->out, "ERR NX and XX, GT or LT options at the same time are not "
				   "compatible");
		return;
	}
	if ((opt & GT) && (opt & LT)) {
		resp_error(x->out, "ERR GT and LT options at the same time are not compatible");
		return;
	}
	if (!expire_arg(x, 2, unit, absolute, true, name, &when))
		return;
	if (!kv_read_or_reply(x, x->argv[1], x->lens[1], &old))
		return;
	if (!old.found || ((opt & NX) && old.exp) || ((opt & XX) && !old.exp) ||
	    ((opt & GT) && (!old.exp || when <= old.exp)) ||
	    ((opt & LT) && old.exp && when >= old.exp)) {
		resp_int(x->out, 0);
		return;
	}
	if (when <= srv_now_ms()) {
		if (!kv_write(x, x->argv[1], x->lens[1], NULL, 0, 0, true))
			return;
	} else if (!kv_write(x, x->argv[1], x->lens[1], old.val, old.vlen, when, false)) {
		return;
	}
	resp_int(x->out, 1);
}

static void cmd_expire(struct ctx *x)
{
	expire_common(x, 1000, false, "expire");
}

static void cmd_pexpire(struct ctx *x)
{
	expire_common(x, 1, false, "pexpire");
}

static void cmd_expireat(struct ctx *x)
{
	expire_common(x, 1000, true, "expireat");
}

static void cmd_pexpireat(struct ctx *x)
{
	expire_common(x, 1, true, "pexpireat");
}

static void cmd_persist(struct ctx *x)
{
	struct kv old;

	if (!kv_read_or_reply(x, x->argv[1], x->lens[1], &old))
		return;
	if (!old.found || !old.exp) {
		resp_int(x->out, 0);
		return;
	}
	if (kv_write(x, x->argv[1], x->lens[1], old.val, old.vlen, 0, false))
		resp_int(x->out, 1);
}
#endif

static __attribute__((unused)) void ttl_common(struct ctx *x, bool ms)
{
	struct kv kv;
	uint64_t now;
	long long left;

	if (!kv_read_or_reply(x, x->argv[1], x->lens[1], &kv))
		return;
	if (!kv.found) {
		resp_int(x->out, -2);
		return;
	}
	if (!kv.exp) {
		resp_int(x->out, -1);
		return;
	}
	now = srv_now_ms();
	left = kv.exp > now ? (long long)(kv.exp - now) : 0;
	resp_int(x->out, ms ? left : (left + 500) / 1000);
}

static __attribute__((unused)) void cmd_ttl(struct ctx *x)
{
	ttl_common(x, false);
}

static __attribute__((unused)) void cmd_pttl(struct ctx *x)
{
	ttl_common(x, true);
}

#if !defined(PKV_SRV_HAVE_EXPIRE)
/* Without expiry in the store no key has one: PERSIST never removes anything. */
static void cmd_persist_ro(struct ctx *x)
{
	struct kv kv;

	if (kv_read_or_reply(x, x->argv[1], x->lens[1], &kv))
		resp_int(x->out, 0);
}
#endif

/* ---- keyspace ----------------------------------------------------------------------------- */

static void cmd_dbsize(struct ctx *x)
{
	pkv_stats st;
	int rc = pkv_get_stats(srv.db, &st);

	if (rc < 0)
		reply_store_error(x->c, rc);
	else
		resp_int(x->out, (long long)st.keys);
}

#ifdef PKV_SRV_HAVE_SCAN
struct scan_acc {
	struct rbuf keys; /* encoded bulk replies */
	size_t n;
	const char *pat;
	size_t plen;
};

static int scan_collect(void *arg, const void *key, size_t klen, const void *val, size_t vlen,
			uint64_t seq)
{
	struct scan_acc *a = arg;

	(void)val;
	(void)vlen;
	(void)seq;
	if (a->pat && !glob_match(a->pat, a->plen, key, klen, false))
		return 0;
	resp_bulk(&a->keys, key, klen);
	a->n++;
	return a->keys.oom ? 1 : 0;
}

static void cmd_scan(struct ctx *x)
{
	struct scan_acc a = { 0 };
	unsigned long long cursor;
	long long count = 10;
	char *end;
	char tmp[32];
	int rc;

	if (x->lens[1] == 0 || x->lens[1] > 20 || !isdigit((unsigned char)x->argv[1][0])) {
		resp_error(x->out, "ERR invalid cursor");
		return;
	}
	memcpy(tmp, x->argv[1], x->lens[1]);
	tmp[x->lens[1]] = '\0';
	errno = 0;
	cursor = strtoull(tmp, &end, 10);
	if (errno || *end) {
		resp_error(x->out, "ERR invalid cursor");
		return;
	}
	for (size_t i = 2; i < x->argc; i++) {
		if (arg_is(x, i, "MATCH") && i + 1 < x->argc) {
			a.pat = x->argv[i + 1];
			a.plen = x->lens[i + 1];
			if (a.plen == 1 && a.pat[0] == '*')
				a.pat = NULL;
			i++;
		} else if (arg_is(x, i, "COUNT") && i + 1 < x->argc) {
			if (!arg_ll(x, i + 1, &count))
				return;
			if (count < 1) {
				reply_syntax(x);
				return;
			}
			i++;
		} else if (arg_is(x, i, "TYPE") && i + 1 < x->argc) {
			if (!(x->lens[i + 1] == 6 &&
			      strncasecmp(x->argv[i + 1], "string", 6) == 0)) {
				/* no key has another type: an empty page, the scan done */
				resp_array(x->out, 2);
				resp_bulk_cstr(x->out, "0");
				resp_array(x->out, 0);
				return;
			}
			i++;
		} else {
			reply_syntax(x);
			return;
		}
	}
	uint64_t cur = cursor;

	rc = pkv_scan(srv.db, &cur, (size_t)count, scan_collect, &a);
	if (rc < 0 || a.keys.oom) {
		reply_store_error(x->c, rc < 0 ? rc : -ENOMEM);
		rbuf_free(&a.keys);
		return;
	}
	resp_array(x->out, 2);
	resp_bulk(x->out, tmp, (size_t)snprintf(tmp, sizeof(tmp), "%" PRIu64, cur));
	resp_array(x->out, a.n);
	rbuf_append(x->out, a.keys.p, a.keys.len);
	rbuf_free(&a.keys);
}

static void cmd_keys(struct ctx *x)
{
	struct scan_acc a = { 0 };
	uint64_t cur = 0;
	int rc;

	a.pat = x->argv[1];
	a.plen = x->lens[1];
	if (a.plen == 1 && a.pat[0] == '*')
		a.pat = NULL;
	do {
		rc = pkv_scan(srv.db, &cur, 1024, scan_collect, &a);
	} while (rc == 0 && cur != 0);
	if (rc < 0 || a.keys.oom) {
		reply_store_error(x->c, rc < 0 ? rc : -ENOMEM);
		rbuf_free(&a.keys);
		return;
	}
	resp_array(x->out, a.n);
	rbuf_append(x->out, a.keys.p, a.keys.len);
	rbuf_free(&a.keys);
}
#endif

#ifdef PKV_SRV_HAVE_CLEAR
static void cmd_flush(struct ctx *x)
{
	int rc;

	if (x->argc > 2 || (x->argc == 2 && !arg_is(x, 1, "ASYNC") && !arg_is(x, 1, "SYNC"))) {
		reply_syntax(x);
		return;
	}
	rc = pkv_clear(srv.db);
	if (rc < 0) {
		reply_store_error(x->c, rc);
		return;
	}
	conn_hold(x->c, x->out->len, 0);
	reply_ok(x);
}
#endif

/* ---- server ------------------------------------------------------------------------------- */

static void cmd_save(struct ctx *x)
{
	int rc;

	if (atomic_load(&srv.bgsave_running)) {
		resp_error(x->out, "ERR Background save already in progress");
		return;
	}
	rc = pkv_compact(srv.db);
	if (rc < 0) {
		reply_store_error(x->c, rc);
		return;
	}
	atomic_store(&srv.lastsave_s, (uint64_t)time(NULL));
	reply_ok(x);
}

static void *bgsave_main(void *arg)
{
	int rc;

	(void)arg;
	pkv_thread_attach();
	rc = pkv_compact(srv.db);
	if (rc < 0)
		srv_log(LL_WARNING, "background save (compaction) failed: %s", pkv_strerror(rc));
	else
		atomic_store(&srv.lastsave_s, (uint64_t)time(NULL));
	atomic_store(&srv.bgsave_ok, rc == 0);
	pkv_thread_detach();
	atomic_store(&srv.bgsave_running, false);
	return NULL;
}

static void cmd_bgsave(struct ctx *x)
{
	bool expected = false;
	int rc;

	if (x->argc > 2 || (x->argc == 2 && !arg_is(x, 1, "SCHEDULE"))) {
		reply_syntax(x);
		return;
	}
	if (!atomic_compare_exchange_strong(&srv.bgsave_running, &expected, true)) {
		resp_error(x->out, "ERR Background save already in progress");
		return;
	}
	if (atomic_exchange(&srv.bgsave_joinable, false))
		pthread_join(srv.bgsave_thread, NULL);
	rc = pthread_create(&srv.bgsave_thread, NULL, bgsave_main, NULL);
	if (rc) {
		atomic_store(&srv.bgsave_running, false);
		reply_store_error(x->c, -rc);
		return;
	}
	atomic_store(&srv.bgsave_joinable, true);
	resp_simple(x->out, "Background saving started");
}

static void cmd_lastsave(struct ctx *x)
{
	resp_int(x->out, (long long)atomic_load(&srv.lastsave_s));
}

static void cmd_time(struct ctx *x)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	resp_array(x->out, 2);
	resp_bulk_ll(x->out, (long long)ts.tv_sec);
	resp_bulk_ll(x->out, (long long)(ts.tv_nsec / 1000));
}

/* INFO ---------------------------------------------------------------------------------------*/

static void info_add(struct rbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void info_add(struct rbuf *b, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n > 0)
		rbuf_append(b, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

static uint64_t sum_stat(size_t off)
{
	uint64_t s = 0;

	for (int i = 0; i < srv.nloops; i++)
		s += atomic_load_explicit((_Atomic uint64_t *)((char *)&srv.loops[i].st + off),
					  memory_order_relaxed);
	return s;
}
#define SUM(field) sum_stat(offsetof(struct loop_stats, field))

static long rss_bytes(void)
{
	long pages = 0, rss = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (f) {
		if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
			rss = 0;
		fclose(f);
	}
	return rss * sysconf(_SC_PAGESIZE);
}

#define SRV_EXPIRES_SCAN_MAX 100000 /* INFO counts keys with an expiry up to this many keys */

#if defined(PKV_SRV_HAVE_SCAN) && defined(PKV_SRV_EXPIRY)
struct expires_acc {
	uint64_t n, ttl_sum, now;
};

static int expires_visit(void *arg, const void *key, size_t klen, const void *val, size_t vlen,
			 uint64_t seq)
{
	struct expires_acc *a = arg;
	pkv_item it = { .key = key, .klen = klen };

	(void)val;
	(void)vlen;
	(void)seq;
	if (pkv_read_begin(srv.db) < 0)
		return 0;
	if (pkv_get_many(srv.db, &it, 1) == 1 && it.expires_ms) {
		a->n++;
		a->ttl_sum += it.expires_ms > a->now ? it.expires_ms - a->now : 0;
	}
	pkv_read_end(srv.db);
	return 0;
}
#endif

/*
 * Keys with an expiry, and their average TTL (ms): the store keeps no such counter, so INFO
 * counts them by a scan, on stores of up to SRV_EXPIRES_SCAN_MAX keys (0 above that).
 */
static void count_expires(uint64_t keys, uint64_t *n, uint64_t *avg_ttl)
{
	*n = 0;
	*avg_ttl = 0;
#if defined(PKV_SRV_HAVE_SCAN) && defined(PKV_SRV_EXPIRY)
	struct expires_acc a = { .now = srv_now_ms() };
	uint64_t cur = 0;

	if (keys == 0 || keys > SRV_EXPIRES_SCAN_MAX)
		return;
	do {
		if (pkv_scan(srv.db, &cur, 1024, expires_visit, &a) < 0)
			return;
	} while (cur != 0);
	*n = a.n;
	*avg_ttl = a.n ? a.ttl_sum / a.n : 0;
#else
	(void)keys;
#endif
}

static bool want_section(struct ctx *x, const char *name, bool is_default)
{
	if (x->argc < 2)
		return is_default;
	for (size_t i = 1; i < x->argc; i++)
		if (arg_is(x, i, name) || arg_is(x, i, "all") || arg_is(x, i, "everything") ||
		    (arg_is(x, i, "default") && is_default))
			return true;
	return false;
}

static const char *durability_name(enum pkv_durability d)
{
	return d == PKV_DURABLE_POWER	 ? "power" :
	       d == PKV_DURABLE_PERIODIC ? "periodic" :
					   "process";
}

static void cmd_info(struct ctx *x)
{
	struct rbuf b = { 0 };
	pkv_stats st;
	int rc = pkv_get_stats(srv.db, &st);
	uint64_t up = (srv_mono_ms() - srv.start_ms) / 1000;
	bool first = true;

	if (rc < 0) {
		reply_store_error(x->c, rc);
		return;
	}
#define SECTION(title)                                                  \
	do {                                                            \
		info_add(&b, "%s# %s\r\n", first ? "" : "\r\n", title); \
		first = false;                                          \
	} while (0)
	if (want_section(x, "server", true)) {
		SECTION("Server");
		info_add(&b, "redis_version:%s\r\n", SRV_REDIS_COMPAT);
		info_add(&b, "pkv_version:%s\r\n", SRV_VERSION);
		info_add(&b, "redis_mode:standalone\r\n");
		info_add(&b, "os:Linux\r\n");
		info_add(&b, "multiplexing_api:epoll\r\n");
		info_add(&b, "process_id:%ld\r\n", (long)getpid());
		info_add(&b, "tcp_port:%d\r\n", srv.cfg.port);
		info_add(&b, "server_time_usec:%llu\r\n", (unsigned long long)srv_now_ms() * 1000);
		info_add(&b, "uptime_in_seconds:%llu\r\n", (unsigned long long)up);
		info_add(&b, "uptime_in_days:%llu\r\n", (unsigned long long)up / 86400);
		info_add(&b, "io_threads_active:%d\r\n", srv.nloops > 1);
		info_add(&b, "event_loops:%d\r\n", srv.nloops);
		info_add(&b, "executable:%s\r\n", srv.executable);
	}
	if (want_section(x, "clients", true)) {
		SECTION("Clients");
		info_add(&b, "connected_clients:%u\r\n", conn_count_all());
		info_add(&b, "maxclients:%u\r\n", atomic_load(&srv.cfg.maxclients));
		info_add(&b, "blocked_clients:0\r\n");
	}
	if (want_section(x, "memory", true)) {
		long rss = rss_bytes();

		SECTION("Memory");
		info_add(&b, "used_memory:%ld\r\n", rss);
		info_add(&b, "used_memory_rss:%ld\r\n", rss);
		info_add(&b, "maxmemory:0\r\n");
		info_add(&b, "maxmemory_policy:noeviction\r\n");
	}
	if (want_section(x, "persistence", true)) {
		SECTION("Persistence");
		info_add(&b, "loading:0\r\n");
		info_add(&b, "pkv_dir:%s\r\n", srv.cfg.dir ? srv.cfg.dir : "(memory)");
		info_add(&b, "pkv_durability:%s\r\n", durability_name(srv.cfg.durability));
		info_add(&b, "rdb_bgsave_in_progress:%d\r\n",
			 atomic_load(&srv.bgsave_running) ? 1 : 0);
		info_add(&b, "rdb_last_save_time:%llu\r\n",
			 (unsigned long long)atomic_load(&srv.lastsave_s));
		info_add(&b, "rdb_last_bgsave_status:%s\r\n",
			 atomic_load(&srv.bgsave_ok) ? "ok" : "err");
		info_add(&b, "aof_enabled:%d\r\n", srv.cfg.dir ? 1 : 0);
		info_add(&b, "last_seq:%llu\r\n", (unsigned long long)st.last_seq);
		info_add(&b, "durable_seq:%llu\r\n", (unsigned long long)st.durable_seq);
		info_add(&b, "wal_bytes:%llu\r\n", (unsigned long long)st.wal_bytes);
		info_add(&b, "wal_segments:%llu\r\n", (unsigned long long)st.wal_segments);
		info_add(&b, "syncs:%llu\r\n", (unsigned long long)st.syncs);
		info_add(&b, "synced_writes:%llu\r\n", (unsigned long long)st.synced_writes);
		info_add(&b, "recovered_records:%llu\r\n",
			 (unsigned long long)st.recovered_records);
		info_add(&b, "discarded_records:%llu\r\n",
			 (unsigned long long)st.discarded_records);
		info_add(&b, "snapshot_seq:%llu\r\n", (unsigned long long)st.snapshot_seq);
		info_add(&b, "snapshot_keys:%llu\r\n", (unsigned long long)st.snapshot_keys);
		info_add(&b, "snapshot_bytes:%llu\r\n", (unsigned long long)st.snapshot_bytes);
		info_add(&b, "compactions:%llu\r\n", (unsigned long long)st.compactions);
		info_add(&b, "readonly_reason:%s\r\n",
			 st.readonly_reason ? pkv_strerror(st.readonly_reason) : "none");
	}
	if (want_section(x, "stats", true)) {
		SECTION("Stats");
		info_add(&b, "total_connections_received:%llu\r\n",
			 (unsigned long long)SUM(connections));
		info_add(&b, "total_commands_processed:%llu\r\n",
			 (unsigned long long)SUM(commands));
		info_add(&b, "total_net_input_bytes:%llu\r\n", (unsigned long long)SUM(net_in));
		info_add(&b, "total_net_output_bytes:%llu\r\n", (unsigned long long)SUM(net_out));
		info_add(&b, "rejected_connections:%llu\r\n", (unsigned long long)SUM(rejected));
		info_add(&b, "keyspace_hits:%llu\r\n", (unsigned long long)SUM(hits));
		info_add(&b, "keyspace_misses:%llu\r\n", (unsigned long long)SUM(misses));
		info_add(&b, "write_conflicts_retried:%llu\r\n",
			 (unsigned long long)SUM(conflicts));
		info_add(&b, "store_puts:%llu\r\n", (unsigned long long)st.puts);
		info_add(&b, "store_dels:%llu\r\n", (unsigned long long)st.dels);
	}
	if (want_section(x, "keyspace", true)) {
		uint64_t expires = 0, avg_ttl = 0;

		SECTION("Keyspace");
		count_expires(st.keys, &expires, &avg_ttl);
		if (st.keys)
			info_add(&b, "db0:keys=%llu,expires=%llu,avg_ttl=%llu\r\n",
				 (unsigned long long)st.keys, (unsigned long long)expires,
				 (unsigned long long)avg_ttl);
	}
#undef SECTION
	if (b.oom) {
		rbuf_free(&b);
		reply_store_error(x->c, -ENOMEM);
		return;
	}
	resp_verbatim(x->out, x->c->proto, "txt", b.p ? b.p : "", b.len);
	rbuf_free(&b);
}

/* CONFIG -------------------------------------------------------------------------------------*/

static void config_value(const char *name, char *buf, size_t cap)
{
	if (!strcmp(name, "port"))
		snprintf(buf, cap, "%d", srv.cfg.port);
	else if (!strcmp(name, "bind"))
		snprintf(buf, cap, "%s", srv.cfg.bind);
	else if (!strcmp(name, "unixsocket"))
		snprintf(buf, cap, "%s", srv.cfg.unixsocket ? srv.cfg.unixsocket : "");
	else if (!strcmp(name, "maxclients"))
		snprintf(buf, cap, "%u", atomic_load(&srv.cfg.maxclients));
	else if (!strcmp(name, "timeout"))
		snprintf(buf, cap, "%u", atomic_load(&srv.cfg.timeout_s));
	else if (!strcmp(name, "dir"))
		snprintf(buf, cap, "%s", srv.cfg.dir ? srv.cfg.dir : "");
	else if (!strcmp(name, "save"))
		snprintf(buf, cap, "%s", "");
	else if (!strcmp(name, "appendonly"))
		snprintf(buf, cap, "%s", srv.cfg.dir ? "yes" : "no");
	else if (!strcmp(name, "appendfsync"))
		snprintf(buf, cap, "%s",
			 srv.cfg.durability == PKV_DURABLE_POWER    ? "always" :
			 srv.cfg.durability == PKV_DURABLE_PERIODIC ? "everysec" :
								      "no");
	else if (!strcmp(name, "durability"))
		snprintf(buf, cap, "%s", durability_name(srv.cfg.durability));
	else if (!strcmp(name, "databases"))
		snprintf(buf, cap, "1");
	else if (!strcmp(name, "maxmemory"))
		snprintf(buf, cap, "0");
	else if (!strcmp(name, "requirepass"))
		snprintf(buf, cap, "%s", srv.cfg.requirepass ? srv.cfg.requirepass : "");
	else if (!strcmp(name, "protected-mode"))
		snprintf(buf, cap, "yes");
	else if (!strcmp(name, "io-threads"))
		snprintf(buf, cap, "%d", srv.nloops);
	else if (!strcmp(name, "threads"))
		snprintf(buf, cap, "%d", srv.nloops);
	else if (!strcmp(name, "proto-max-bulk-len"))
		snprintf(buf, cap, "%u", PKV_MAX_VALUE);
	else if (!strcmp(name, "client-query-buffer-limit"))
		snprintf(buf, cap, "%zu", srv.cfg.query_limit);
	else if (!strcmp(name, "client-output-buffer-limit"))
		snprintf(buf, cap, "normal %zu %zu 0", srv.cfg.output_limit, srv.cfg.output_limit);
	else if (!strcmp(name, "loglevel")) {
		static const char *names[] = { "debug", "verbose", "notice", "warning" };

		snprintf(buf, cap, "%s", names[atomic_load(&srv.cfg.loglevel) & 3]);
	} else
		buf[0] = '\0';
}

static const char *const config_names[] = {
	"port",
	"bind",
	"unixsocket",
	"maxclients",
	"timeout",
	"dir",
	"save",
	"appendonly",
	"appendfsync",
	"durability",
	"databases",
	"maxmemory",
	"requirepass",
	"protected-mode",
	"io-threads",
	"threads",
	"proto-max-bulk-len",
	"client-query-buffer-limit",
	"client-output-buffer-limit",
	"loglevel",
};
#define NCONFIG (sizeof(config_names) / sizeof(config_names[0]))

static void cmd_config(struct ctx *x)
{
	char val[256];

	if (arg_is(x, 1, "GET") && x->argc >= 3) {
		bool hit[NCONFIG] = { false };
		size_t n = 0;

		for (size_t a = 2; a < x->argc; a++)
			for (size_t i = 0; i < NCONFIG; i++)
				if (!hit[i] && glob_match(x->argv[a], x->lens[a], config_names[i],
							  strlen(config_names[i]), true)) {
					hit[i] = true;
					n++;
				}
		resp_map(x->out, x->c->proto, n);
		for (size_t i = 0; i < NCONFIG; i++) {
			if (!hit[i])
				continue;
			config_value(config_names[i], val, sizeof(val));
			resp_bulk_cstr(x->out, config_names[i]);
			resp_bulk_cstr(x->out, val);
		}
	} else if (arg_is(x, 1, "SET") && x->argc >= 4 && x->argc % 2 == 0) {
		/* check every pair first: all or nothing, as Redis 7 does */
		for (size_t a = 2; a < x->argc; a += 2) {
			long long v;
			bool ok;

			if (arg_is(x, a, "timeout") || arg_is(x, a, "maxclients"))
				ok = parse_ll(x->argv[a + 1], x->lens[a + 1], &v) && v >= 0 &&
				     v <= UINT_MAX && (v > 0 || arg_is(x, a, "timeout"));
			else if (arg_is(x, a, "loglevel"))
				ok = arg_is(x, a + 1, "debug") || arg_is(x, a + 1, "verbose") ||
				     arg_is(x, a + 1, "notice") || arg_is(x, a + 1, "warning");
			else if (arg_is(x, a, "save") || arg_is(x, a, "appendonly"))
				ok = true; /* accepted and ignored, for tools that set them */
			else {
				resp_errorf(x->out,
					    "ERR Unknown option or number of arguments for "
					    "CONFIG SET - '%.*s'",
					    (int)(x->lens[a] > 64 ? 64 : x->lens[a]), x->argv[a]);
				return;
			}
			if (!ok) {
				resp_errorf(x->out,
					    "ERR Invalid argument '%.*s' for CONFIG SET '%.*s'",
					    (int)(x->lens[a + 1] > 64 ? 64 : x->lens[a + 1]),
					    x->argv[a + 1],
					    (int)(x->lens[a] > 64 ? 64 : x->lens[a]), x->argv[a]);
				return;
			}
			/* more clients than the open files limit allows (after raising it if the
			 * hard limit lets us): refused, as Redis does, rather than failing accept()
			 * later */
			if (arg_is(x, a, "maxclients")) {
				unsigned n = srv_clients_possible((unsigned)v, NULL);

				if (n < v) {
					resp_errorf(
						x->out,
						"ERR CONFIG SET failed (possibly related to argument "
						"'maxclients') - The operating system is not able to "
						"handle the specified number of clients, try with %u",
						n);
					return;
				}
			}
		}
		for (size_t a = 2; a < x->argc; a += 2) {
			long long v = 0;

			if (arg_is(x, a, "timeout") && parse_ll(x->argv[a + 1], x->lens[a + 1], &v))
				atomic_store(&srv.cfg.timeout_s, (unsigned)v);
			else if (arg_is(x, a, "maxclients") &&
				 parse_ll(x->argv[a + 1], x->lens[a + 1], &v))
				atomic_store(&srv.cfg.maxclients, (unsigned)v);
			else if (arg_is(x, a, "loglevel"))
				atomic_store(&srv.cfg.loglevel,
					     arg_is(x, a + 1, "debug")	 ? LL_DEBUG :
					     arg_is(x, a + 1, "verbose") ? LL_VERBOSE :
					     arg_is(x, a + 1, "notice")	 ? LL_NOTICE :
									   LL_WARNING);
		}
		reply_ok(x);
	} else if (arg_is(x, 1, "RESETSTAT") && x->argc == 2) {
		reply_ok(x);
	} else if (arg_is(x, 1, "HELP")) {
		resp_array(x->out, 3);
		resp_simple(x->out, "CONFIG GET <pattern> [<pattern> ...]");
		resp_simple(x->out, "CONFIG SET <parameter> <value> [<parameter> <value> ...]");
		resp_simple(x->out, "CONFIG RESETSTAT");
	} else {
		resp_errorf(x->out,
			    "ERR unknown subcommand or wrong number of arguments for '%.*s'. "
			    "Try CONFIG HELP.",
			    (int)(x->lens[1] > 64 ? 64 : x->lens[1]), x->argv[1]);
	}
}

/* CLIENT -------------------------------------------------------------------------------------*/

static void client_line(struct rbuf *b, struct conn *o, uint64_t now_mono, uint64_t now_ms)
{
	uint64_t last = atomic_load_explicit(&o->last_ms, memory_order_relaxed);
	const char *cmd = atomic_load_explicit(&o->last_cmd, memory_order_relaxed);

	char lcmd[32];
	size_t i;

	for (i = 0; cmd && cmd[i] && i + 1 < sizeof(lcmd); i++)
		lcmd[i] = (char)tolower((unsigned char)cmd[i]);
	lcmd[i] = '\0';
	info_add(b,
		 "id=%llu addr=%s laddr=%s fd=%d name=%s age=%llu idle=%llu flags=N db=0 sub=0 "
		 "psub=0 multi=-1 resp=%d cmd=%s user=default\n",
		 (unsigned long long)o->id, o->addr, o->laddr, o->fd, o->name ? o->name : "",
		 (unsigned long long)((now_ms - o->ctime_ms) / 1000),
		 (unsigned long long)(now_mono > last ? (now_mono - last) / 1000 : 0),
		 __atomic_load_n(&o->proto, __ATOMIC_RELAXED), cmd ? lcmd : "NULL");
}

static void cmd_client(struct ctx *x)
{
	struct conn *c = x->c;

	if (arg_is(x, 1, "ID") && x->argc == 2) {
		resp_int(x->out, (long long)c->id);
	} else if (arg_is(x, 1, "GETNAME") && x->argc == 2) {
		if (c->name)
			resp_bulk_cstr(x->out, c->name);
		else
			resp_null(x->out, c->proto);
	} else if (arg_is(x, 1, "SETNAME") && x->argc == 3) {
		if (!name_ok(x->argv[2], x->lens[2])) {
			resp_error(x->out, "ERR Client names cannot contain spaces, newlines or "
					   "special characters.");
			return;
		}
		set_name(c, x->argv[2], x->lens[2]);
		reply_ok(x);
	} else if (arg_is(x, 1, "SETINFO") && x->argc == 4) {
		reply_ok(x); /* library name/version: accepted, not kept */
	} else if ((arg_is(x, 1, "LIST") && (x->argc == 2 || x->argc == 4)) ||
		   (arg_is(x, 1, "INFO") && x->argc == 2)) {
		struct rbuf b = { 0 };
		uint64_t nm = srv_mono_ms(), nw = srv_now_ms();

		if (arg_is(x, 1, "INFO")) {
			pthread_mutex_lock(&srv.clients_lock);
			client_line(&b, c, nm, nw);
			pthread_mutex_unlock(&srv.clients_lock);
		} else {
			if (x->argc == 4 && !(arg_is(x, 2, "TYPE") && arg_is(x, 3, "normal"))) {
				reply_syntax(x);
				return;
			}
			pthread_mutex_lock(&srv.clients_lock);
			for (struct conn *o = srv.clients; o; o = o->gnext)
				client_line(&b, o, nm, nw);
			pthread_mutex_unlock(&srv.clients_lock);
		}
		resp_verbatim(x->out, c->proto, "txt", b.p ? b.p : "", b.len);
		rbuf_free(&b);
	} else {
		resp_errorf(x->out,
			    "ERR unknown subcommand or wrong number of arguments for '%.*s'. "
			    "Try CLIENT HELP.",
			    (int)(x->lens[1] > 64 ? 64 : x->lens[1]), x->argv[1]);
	}
}

/* ---- transactions ------------------------------------------------------------------------- */

static void queue_free(struct conn *c)
{
	for (size_t i = 0; i < c->nmq; i++) {
		for (size_t j = 0; j < c->mq[i].argc; j++)
			free(c->mq[i].argv[j]);
		free(c->mq[i].argv);
		free(c->mq[i].lens);
	}
	c->nmq = 0;
	c->in_multi = false;
	c->multi_error = false;
}

static void unwatch_all(struct conn *c)
{
	for (size_t i = 0; i < c->nwatched; i++)
		free(c->watched[i].key);
	c->nwatched = 0;
}

void cmd_conn_reset(struct conn *c)
{
	queue_free(c);
	unwatch_all(c);
}

#ifdef PKV_SRV_HAVE_BATCH
/* Would a command of @argc arguments (@bytes in all) take @r past a run's limits? */
static bool cmd_run_full(const struct cmd_run *r, size_t argc, size_t bytes)
{
	return r->n && (r->n >= SRV_TXN_RUN || r->nargs + argc > SRV_TXN_RUN_ARGS ||
			r->bytes + bytes > SRV_TXN_RUN_BYTES);
}

/* Append a command of @argc arguments (@bytes in all) to @r; false if out of memory. */
static bool cmd_run_push(struct cmd_run *r, const struct srv_cmd *cmd, size_t argc,
			 const char **argv, const size_t *lens, size_t bytes)
{
	if (r->n == r->cap && !srv_reserve(&r->v, &r->cap, r->n + 1, sizeof(*r->v), 16))
		return false;
	if (r->nargs + argc > r->capargs) {
		size_t cap_lens = r->capargs;

		/* argv and lens share capargs: it moves once both have grown. */
		if (!srv_reserve(&r->lens, &cap_lens, r->nargs + argc, sizeof(*r->lens), 64) ||
		    !srv_reserve(&r->argv, &r->capargs, r->nargs + argc, sizeof(*r->argv), 64))
			return false;
	}
	r->v[r->n] = (struct pending_txn){ .cmd = cmd, .argc = argc, .first = r->nargs };
	memcpy(r->argv + r->nargs, argv, argc * sizeof(*argv));
	memcpy(r->lens + r->nargs, lens, argc * sizeof(*lens));
	r->nargs += argc;
	r->bytes += bytes;
	r->n++;
	return true;
}
#endif /* PKV_SRV_HAVE_BATCH */

#ifdef PKV_SRV_RMW
static void cmd_multi(struct ctx *x)
{
	if (x->c->in_multi) {
		resp_error(x->out, "ERR MULTI calls can not be nested");
		return;
	}
	x->c->in_multi = true;
	x->c->multi_error = false;
	reply_ok(x);
}

static void cmd_discard(struct ctx *x)
{
	if (!x->c->in_multi) {
		resp_error(x->out, "ERR DISCARD without MULTI");
		return;
	}
	queue_free(x->c);
	unwatch_all(x->c);
	reply_ok(x);
}

static void cmd_watch(struct ctx *x)
{
	struct conn *c = x->c;

	if (c->in_multi) {
		resp_error(x->out, "ERR WATCH inside MULTI is not allowed");
		return;
	}
	for (size_t i = 1; i < x->argc; i++) {
		struct kv kv;
		struct watched_key *w;

		int rc = pkv_read_begin(srv.db);

		if (rc == 0) {
			rc = read_direct(x, x->argv[i], x->lens[i], &kv);
			pkv_read_end(srv.db);
		}
		if (rc < 0) {
			reply_store_error(c, rc);
			return;
		}
		if (c->nwatched == c->capwatched &&
		    !srv_reserve(&c->watched, &c->capwatched, c->nwatched + 1, sizeof(*c->watched),
				 8)) {
			reply_store_error(c, -ENOMEM);
			return;
		}
		w = &c->watched[c->nwatched];
		w->key = malloc(x->lens[i] ? x->lens[i] : 1);
		if (!w->key) {
			reply_store_error(c, -ENOMEM);
			return;
		}
		memcpy(w->key, x->argv[i], x->lens[i]);
		w->klen = x->lens[i];
		w->seq = kv.found ? kv.seq : 0;
		c->nwatched++;
	}
	reply_ok(x);
}

static void cmd_unwatch(struct ctx *x)
{
	unwatch_all(x->c);
	reply_ok(x);
}

/* Does every watched key still have the version WATCH saw? */
static bool watches_hold(struct ctx *x)
{
	for (size_t i = 0; i < x->c->nwatched; i++) {
		struct kv kv;
		struct ctx direct = *x;

		direct.t = NULL;
		if (pkv_read_begin(srv.db) < 0)
			return false;
		if (read_direct(&direct, x->c->watched[i].key, x->c->watched[i].klen, &kv) < 0) {
			pkv_read_end(srv.db);
			return false;
		}
		pkv_read_end(srv.db);
		if ((kv.found ? kv.seq : 0) != x->c->watched[i].seq)
			return false;
	}
	return true;
}

static void run_txn_cmd(struct ctx *x, const struct srv_cmd *cmd);

static void cmd_exec(struct ctx *x)
{
	struct conn *c = x->c;
	struct txn t = { 0 };
	size_t mark = x->out->len;
	unsigned long attempt;

	if (!c->in_multi) {
		resp_error(x->out, "ERR EXEC without MULTI");
		return;
	}
	if (c->multi_error) {
		resp_error(x->out, "EXECABORT Transaction discarded because of previous errors.");
		queue_free(c);
		unwatch_all(c);
		return;
	}
	for (attempt = 0; attempt < SRV_MAX_RETRIES; attempt++) {
		uint64_t seq = 0;
		int rc;

		if (!watches_hold(x)) {
			resp_null_array(x->out, c->proto);
			break;
		}
		resp_array(x->out, c->nmq);
		for (size_t i = 0; i < c->nmq; i++) {
			struct ctx q = { .c = c,
					 .argc = c->mq[i].argc,
					 .argv = (const char **)c->mq[i].argv,
					 .lens = c->mq[i].lens,
					 .t = &t,
					 .out = x->out };

			c->mq[i].cmd->fn(&q);
		}
		rc = txn_commit(c, &t, c->watched, c->nwatched, &seq);
		txn_reset(&t);
		if (rc == PKV_ECONFLICT) {
			/* A watched key changed (nil), or a key the transaction read did (again). */
			rbuf_truncate(x->out, mark);
			atomic_fetch_add_explicit(&c->loop->st.conflicts, 1, memory_order_relaxed);
			continue;
		}
		if (rc < 0) {
			rbuf_truncate(x->out, mark);
			resp_errorf(x->out, "EXECABORT the transaction could not be written: %s",
				    pkv_strerror(rc));
			break;
		}
		if (seq)
			conn_hold(c, mark, seq);
		break;
	}
	if (attempt == SRV_MAX_RETRIES) {
		rbuf_truncate(x->out, mark);
		resp_error(x->out, "ERR transaction kept conflicting with other writers");
	}
	txn_free(&t);
	queue_free(c);
	unwatch_all(c);
}

/* Run a read-then-write command outside MULTI: a transaction of one command, retried. */
static void run_txn_cmd(struct ctx *x, const struct srv_cmd *cmd)
{
	struct txn t = { 0 };
	size_t mark = x->out->len;
	unsigned long attempt;

	x->t = &t;
	for (attempt = 0; attempt < SRV_MAX_RETRIES; attempt++) {
		uint64_t seq = 0;
		int rc;

		cmd->fn(x);
		if (!t.dirty) {
			/* nothing to write (a condition failed, an error): the reply stands */
			break;
		}
		rc = txn_commit(x->c, &t, NULL, 0, &seq);
		txn_reset(&t);
		if (rc == PKV_ECONFLICT) {
			rbuf_truncate(x->out, mark);
			atomic_fetch_add_explicit(&x->c->loop->st.conflicts, 1,
						  memory_order_relaxed);
			continue;
		}
		if (rc < 0) {
			rbuf_truncate(x->out, mark);
			reply_store_error(x->c, rc);
			break;
		}
		conn_hold(x->c, mark, seq);
		break;
	}
	if (attempt == SRV_MAX_RETRIES) {
		rbuf_truncate(x->out, mark);
		resp_error(x->out, "ERR the command kept conflicting with other writers");
	}
	txn_free(&t);
	x->t = NULL;
}

/* A command that reads its first key before anything else: its run may read that key ahead. */
static bool reads_first_key(const struct srv_cmd *cmd)
{
	return cmd->fn == cmd_incr || cmd->fn == cmd_decr || cmd->fn == cmd_incrby ||
	       cmd->fn == cmd_decrby || cmd->fn == cmd_setnx || cmd->fn == cmd_append ||
	       cmd->fn == cmd_getset || cmd->fn == cmd_getdel;
}

/*
 * Read the first keys of a run's commands into its transaction with one multi-get, before the
 * commands run: a key read alone waits for its memory misses one after the other (INCR -P 16
 * spent a fifth of its time there), a multi-get overlaps them. The commands then find their
 * key in the transaction, read and with the version a commit expects, as if each had read it
 * itself: only earlier (all in one moment, before any of the run), which changes nothing for
 * the conditions. Best effort: a key it could not read is read by its command as before.
 */
static void txn_preread(struct conn *c, struct txn *t, size_t n)
{
	pkv_item *it = loop_items(c->loop, n);
	size_t k = 0;
	int rc;

	if (!it)
		return;
	for (size_t i = 0; i < n; i++) {
		const char **argv = c->ptx.argv + c->ptx.v[i].first;
		const size_t *lens = c->ptx.lens + c->ptx.v[i].first;

		if (c->ptx.v[i].argc < 2 || !reads_first_key(c->ptx.v[i].cmd) ||
		    !key_can_exist(lens[1]))
			continue;
		memset(&it[k], 0, sizeof(it[k]));
		it[k].key = argv[1];
		it[k].klen = lens[1];
		k++;
	}
	if (k < 2 || pkv_read_begin(srv.db) < 0)
		return;
	rc = pkv_get_many(srv.db, it, k);
	for (size_t i = 0; i < k && rc >= 0; i++) {
		struct tent *e;

		if ((it[i].rc != 0 && it[i].rc != PKV_NOTFOUND) ||
		    txn_find(t, it[i].key, it[i].klen))
			continue;
		e = txn_add(t, it[i].key, it[i].klen);
		if (!e)
			break;
		e->read = true;
		e->rseq = it[i].rc == 0 ? it[i].seq : 0;
		if (it[i].rc == 0) {
			e->val = txn_alloc(t, it[i].vlen ? it[i].vlen : 1);
			if (!e->val) {
				t->n--; /* as if never read: its command reads it */
				break;
			}
			memcpy(e->val, it[i].val, it[i].vlen);
			e->vlen = it[i].vlen;
			e->exp = it[i].expires_ms;
			e->present = true;
		}
	}
	pkv_read_end(srv.db);
}

/*
 * Run the read-then-write commands a pipeline sent in a row as one transaction: one batch, one
 * write, one durability ticket for all of them (INCR -P 16 is one read and one write of the
 * key). Each still answers as if alone: the run is one of the orders Redis could have run them
 * in, with nothing between them. A conflict runs them all again.
 */
static void flush_txns(struct conn *c)
{
	size_t n = c->ptx.n;
	struct txn t = { 0 };
	size_t mark = c->out.len;
	unsigned long attempt;

	if (n == 0)
		return;
	c->ptx.n = 0;
	c->ptx.nargs = 0;
	c->ptx.bytes = 0;
	if (n == 1) {
		struct ctx x = { .c = c,
				 .argc = c->ptx.v[0].argc,
				 .argv = c->ptx.argv + c->ptx.v[0].first,
				 .lens = c->ptx.lens + c->ptx.v[0].first,
				 .out = &c->out };

		run_txn_cmd(&x, c->ptx.v[0].cmd);
		return;
	}
	for (attempt = 0; attempt < SRV_MAX_RETRIES; attempt++) {
		uint64_t seq = 0;
		int rc;

		txn_preread(c, &t, n);
		for (size_t i = 0; i < n; i++) {
			struct ctx x = { .c = c,
					 .argc = c->ptx.v[i].argc,
					 .argv = c->ptx.argv + c->ptx.v[i].first,
					 .lens = c->ptx.lens + c->ptx.v[i].first,
					 .t = &t,
					 .out = &c->out };

			c->ptx.v[i].cmd->fn(&x);
		}
		if (!t.dirty)
			break;
		rc = txn_commit(c, &t, NULL, 0, &seq);
		txn_reset(&t);
		if (rc == PKV_ECONFLICT) {
			rbuf_truncate(&c->out, mark);
			atomic_fetch_add_explicit(&c->loop->st.conflicts, 1, memory_order_relaxed);
			continue;
		}
		if (rc < 0) {
			/* one error each: the client counts its replies */
			rbuf_truncate(&c->out, mark);
			for (size_t i = 0; i < n; i++)
				reply_store_error(c, rc);
			break;
		}
		conn_hold(c, mark, seq);
		break;
	}
	if (attempt == SRV_MAX_RETRIES) {
		rbuf_truncate(&c->out, mark);
		for (size_t i = 0; i < n; i++)
			resp_error(&c->out, "ERR the command kept conflicting with other writers");
	}
	txn_free(&t);
}

/* Queue a read-then-write command for its run; false if it must run now (no memory). */
static bool pending_txn_add(struct conn *c, const struct srv_cmd *cmd, size_t argc,
			    const char **argv, const size_t *lens)
{
	size_t bytes = 0;

	for (size_t i = 0; i < argc; i++)
		bytes += lens[i];
	if (cmd_run_full(&c->ptx, argc, bytes))
		flush_txns(c);
	return cmd_run_push(&c->ptx, cmd, argc, argv, lens, bytes);
}
#endif /* PKV_SRV_RMW */

/* ---- pipelined plain writes --------------------------------------------------------------- */

#ifdef PKV_SRV_HAVE_BATCH
/*
 * Write the plain SETs and MSETs a pipeline sent in a row as one batch: one WAL record, one
 * sequence number, one durability ticket for all of them (SET -P 16 was sixteen store writes).
 * Nothing reads, so nothing can conflict; each command still answers on its own. The batch is
 * one of the orders Redis could have run them in, with nothing between them (a later write of
 * a key wins, as it would have). Their arguments were checked when they joined the run, so a
 * store error here is the store's (read-only, no space) and every command of the run gets it.
 */
static void flush_blind(struct conn *c)
{
	size_t n = c->pbw.n;
	size_t mark = c->out.len;
	uint64_t seq = 0;
	pkv_batch *b;
	int rc = 0;

	if (n == 0)
		return;
	c->pbw.n = 0;
	c->pbw.nargs = 0;
	c->pbw.bytes = 0;
	if (n == 1 && c->pbw.v[0].argc == 2) {
		/* one key (SET, or MSET of one): a single put costs less than a batch of one */
		struct ctx x = { .c = c, .out = &c->out };

		rc = put_direct(&x, c->pbw.argv[0], c->pbw.lens[0], c->pbw.argv[1], c->pbw.lens[1], 0,
				&seq);
		if (rc < 0) {
			reply_store_error(c, rc);
			return;
		}
		conn_hold(c, mark, seq);
		reply_ok(&x);
		return;
	}
	b = loop_batch(c->loop);
	if (!b)
		rc = -ENOMEM;
	for (size_t i = 0; i < n && rc == 0; i++) {
		const char **kv = c->pbw.argv + c->pbw.v[i].first;
		const size_t *lens = c->pbw.lens + c->pbw.v[i].first;

		for (size_t j = 0; j < c->pbw.v[i].argc && rc == 0; j += 2)
			rc = pkv_batch_put(b, kv[j], lens[j], kv[j + 1], lens[j + 1]);
	}
	if (rc == 0)
		rc = pkv_write(srv.db, b, 0, &seq);
	if (rc < 0) {
		/* one error each: the client counts its replies */
		for (size_t i = 0; i < n; i++)
			reply_store_error(c, rc);
		return;
	}
	conn_hold(c, mark, seq);
	for (size_t i = 0; i < n; i++)
		resp_simple(&c->out, "OK");
}

/*
 * Add a plain SET (argv: SET key value) or MSET to the run of plain writes; false if it must
 * run on its own: an argument the store would refuse (its error is the command's own), or no
 * memory.
 */
static bool pending_blind_add(struct conn *c, size_t argc, const char **argv, const size_t *lens)
{
	size_t nkv = argc - 1, bytes = 0;

	for (size_t i = 1; i < argc; i += 2) {
		if (!key_can_exist(lens[i]) || lens[i + 1] > PKV_MAX_VALUE)
			return false;
		bytes += lens[i] + lens[i + 1];
	}
	if (cmd_run_full(&c->pbw, nkv, bytes))
		flush_blind(c);
	return cmd_run_push(&c->pbw, NULL, nkv, argv + 1, lens + 1, bytes);
}
#endif /* PKV_SRV_HAVE_BATCH */

/* ---- the table ---------------------------------------------------------------------------- */

static void cmd_command(struct ctx *x);

#define W F_WRITE
#define R F_READ
/* name, arity, flags, fn, first key, last key, step, group, summary, since */
static const struct srv_cmd commands[] = {
	{ "PING", -1, F_FAST, cmd_ping, 0, 0, 0, "connection", "Ping the server",
	  "1.0.0" },
	{ "ECHO", 2, F_FAST, cmd_echo, 0, 0, 0, "connection", "Return the argument", "1.0.0" },
	{ "QUIT", -1, F_NOAUTH | F_MULTICTL, cmd_quit, 0, 0, 0, "connection",
	  "Close the connection", "1.0.0" },
	{ "HELLO", -1, F_NOAUTH | F_FAST | F_NOMULTI, cmd_hello, 0, 0, 0, "connection",
	  "Handshake: protocol version, authentication, name", "6.0.0" },
	{ "AUTH", -2, F_NOAUTH | F_FAST | F_NOMULTI, cmd_auth, 0, 0, 0, "connection",
	  "Authenticate the connection", "1.0.0" },
	{ "SELECT", 2, F_FAST, cmd_select, 0, 0, 0, "connection",
	  "Select database 0 (the only one)", "1.0.0" },
	{ "CLIENT", -2, F_ADMIN, cmd_client, 0, 0, 0, "connection",
	  "CLIENT ID, SETNAME, GETNAME, LIST, INFO", "2.4.0" },
	{ "GET", 2, R | F_FAST, cmd_get, 1, 1, 1, "string", "Get the value of a key", "1.0.0" },
	{ "SET", -3, W, cmd_set, 1, 1, 1, "string", "Set a key (NX XX GET EX PX EXAT PXAT KEEPTTL)",
	  "1.0.0" },
	{ "MGET", -2, R | F_FAST, cmd_mget, 1, -1, 1, "string",
	  "Get the values of keys (one snapshot)", "1.0.0" },
	{ "DEL", -2, W, cmd_del, 1, -1, 1, "generic", "Delete keys (atomically)", "1.0.0" },
	{ "UNLINK", -2, W, cmd_del, 1, -1, 1, "generic", "Delete keys (as DEL)", "4.0.0" },
	{ "EXISTS", -2, R | F_FAST, cmd_exists, 1, -1, 1, "generic", "Count the keys that exist",
	  "1.0.0" },
	{ "STRLEN", 2, R | F_FAST, cmd_strlen, 1, 1, 1, "string", "Length of a value", "2.2.0" },
	{ "TYPE", 2, R | F_FAST, cmd_type, 1, 1, 1, "generic", "Type of a key (string or none)",
	  "1.0.0" },
#if !defined(PKV_SRV_HAVE_EXPIRE) || defined(PKV_SRV_HAVE_GET_MANY)
	{ "TTL", 2, R | F_FAST, cmd_ttl, 1, 1, 1, "generic", "Seconds to live", "1.0.0" },
	{ "PTTL", 2, R | F_FAST, cmd_pttl, 1, 1, 1, "generic", "Milliseconds to live", "2.6.0" },
#endif
#ifdef PKV_SRV_RMW
	{ "SETNX", 3, W | F_TXN, cmd_setnx, 1, 1, 1, "string", "Set a key if it is absent",
	  "1.0.0" },
	{ "GETSET", 3, W | F_TXN, cmd_getset, 1, 1, 1, "string", "Set a key, return the old value",
	  "1.0.0" },
	{ "GETDEL", 2, W | F_TXN, cmd_getdel, 1, 1, 1, "string", "Get a key and delete it",
	  "6.2.0" },
	{ "MSET", -3, W | F_TXN, cmd_mset, 1, -1, 2, "string", "Set keys (one atomic batch)",
	  "1.0.1" },
	{ "MSETNX", -3, W | F_TXN, cmd_msetnx, 1, -1, 2, "string",
	  "Set keys if none exists (one atomic batch)", "1.0.1" },
	{ "APPEND", 3, W | F_TXN, cmd_append, 1, 1, 1, "string", "Append to a value", "2.0.0" },
	{ "INCR", 2, W | F_TXN | F_FAST, cmd_incr, 1, 1, 1, "string", "Increment by one", "1.0.0" },
	{ "DECR", 2, W | F_TXN | F_FAST, cmd_decr, 1, 1, 1, "string", "Decrement by one", "1.0.0" },
	{ "INCRBY", 3, W | F_TXN | F_FAST, cmd_incrby, 1, 1, 1, "string", "Increment by n",
	  "1.0.0" },
	{ "DECRBY", 3, W | F_TXN | F_FAST, cmd_decrby, 1, 1, 1, "string", "Decrement by n",
	  "1.0.0" },
	{ "MULTI", 1, F_FAST | F_MULTICTL, cmd_multi, 0, 0, 0, "transactions",
	  "Start a transaction", "1.2.0" },
	{ "EXEC", 1, F_MULTICTL, cmd_exec, 0, 0, 0, "transactions",
	  "Run the transaction as one conditional batch", "1.2.0" },
	{ "DISCARD", 1, F_FAST | F_MULTICTL, cmd_discard, 0, 0, 0, "transactions",
	  "Drop the transaction", "2.0.0" },
	{ "WATCH", -2, F_FAST | F_MULTICTL, cmd_watch, 1, -1, 1, "transactions",
	  "Make EXEC conditional on the keys' versions", "2.2.0" },
	{ "UNWATCH", 1, F_FAST | F_MULTICTL, cmd_unwatch, 0, 0, 0, "transactions",
	  "Forget the watched keys", "2.2.0" },
#endif
#if defined(PKV_SRV_HAVE_BATCH) && !defined(PKV_SRV_RMW)
	{ "MSET", -3, W, cmd_mset, 1, -1, 2, "string", "Set keys (one atomic batch)", "1.0.1" },
#endif
#ifdef PKV_SRV_EXPIRY
	{ "SETEX", 4, W | F_TXN, cmd_setex, 1, 1, 1, "string", "Set a key with a TTL (s)",
	  "2.0.0" },
	{ "PSETEX", 4, W | F_TXN, cmd_psetex, 1, 1, 1, "string", "Set a key with a TTL (ms)",
	  "2.6.0" },
	{ "GETEX", -2, W | F_TXN, cmd_getex, 1, 1, 1, "string", "Get a key, change its expiry",
	  "6.2.0" },
	{ "EXPIRE", -3, W | F_TXN | F_FAST, cmd_expire, 1, 1, 1, "generic", "Expire in seconds",
	  "1.0.0" },
	{ "PEXPIRE", -3, W | F_TXN | F_FAST, cmd_pexpire, 1, 1, 1, "generic", "Expire in ms",
	  "2.6.0" },
	{ "EXPIREAT", -3, W | F_TXN | F_FAST, cmd_expireat, 1, 1, 1, "generic",
	  "Expire at a Unix time (s)", "1.2.0" },
	{ "PEXPIREAT", -3, W | F_TXN | F_FAST, cmd_pexpireat, 1, 1, 1, "generic",
	  "Expire at a Unix time (ms)", "2.6.0" },
	{ "PERSIST", 2, W | F_TXN | F_FAST, cmd_persist, 1, 1, 1, "generic", "Remove the expiry",
	  "2.2.0" },
#elif !defined(PKV_SRV_HAVE_EXPIRE)
	{ "PERSIST", 2, R | F_FAST, cmd_persist_ro, 1, 1, 1, "generic", "Remove the expiry",
	  "2.2.0" },
#endif
	{ "DBSIZE", 1, R | F_FAST, cmd_dbsize, 0, 0, 0, "server", "Number of keys", "1.0.0" },
#ifdef PKV_SRV_HAVE_SCAN
	{ "SCAN", -2, R, cmd_scan, 0, 0, 0, "generic", "Iterate over the keys", "2.8.0" },
	{ "KEYS", 2, R, cmd_keys, 0, 0, 0, "generic", "Keys matching a pattern", "1.0.0" },
#endif
#ifdef PKV_SRV_HAVE_CLEAR
	{ "FLUSHDB", -1, W | F_NOMULTI, cmd_flush, 0, 0, 0, "server", "Delete every key (atomic)",
	  "1.0.0" },
	{ "FLUSHALL", -1, W | F_NOMULTI, cmd_flush, 0, 0, 0, "server", "Delete every key (atomic)",
	  "1.0.0" },
#endif
	{ "INFO", -1, 0, cmd_info, 0, 0, 0, "server", "Server information and counters", "1.0.0" },
	{ "SAVE", 1, F_ADMIN | F_NOMULTI, cmd_save, 0, 0, 0, "server", "Compact the store now",
	  "1.0.0" },
	{ "BGSAVE", -1, F_ADMIN | F_NOMULTI, cmd_bgsave, 0, 0, 0, "server",
	  "Compact the store in the background", "1.0.0" },
	{ "LASTSAVE", 1, F_FAST, cmd_lastsave, 0, 0, 0, "server", "Time of the last compaction",
	  "1.0.0" },
	{ "TIME", 1, F_FAST, cmd_time, 0, 0, 0, "server", "Server time", "2.6.0" },
	{ "CONFIG", -2, F_ADMIN | F_NOMULTI, cmd_config, 0, 0, 0, "server",
	  "CONFIG GET, SET (timeout maxclients loglevel), RESETSTAT", "2.0.0" },
	{ "COMMAND", -1, 0, cmd_command, 0, 0, 0, "server", "COMMAND, COUNT, DOCS, INFO, LIST",
	  "2.8.13" },
};
#undef W
#undef R
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

size_t cmd_count(void)
{
	return NCOMMANDS;
}

/*
 * Every command runs a lookup: an open-addressing table over the names (hash of the lower-case
 * name) instead of a walk of the whole table. Built once, read-only after.
 */
#define CMD_HASH_SLOTS 512u /* a power of two, well above twice the commands */
#define CMD_NAME_MAX 32u

static uint16_t cmd_hash_slot[CMD_HASH_SLOTS]; /* index + 1 into commands[]; 0 empty */
static pthread_once_t cmd_hash_once = PTHREAD_ONCE_INIT;

static uint32_t cmd_name_hash(const char *name, size_t len)
{
	uint32_t h = 2166136261u; /* FNV-1a over the lower-case bytes */

	for (size_t i = 0; i < len; i++) {
		h ^= (uint32_t)tolower((unsigned char)name[i]);
		h *= 16777619u;
	}
	return h;
}

static void cmd_hash_build(void)
{
	_Static_assert(CMD_HASH_SLOTS >= 2 * NCOMMANDS, "command hash too small");
	for (size_t i = 0; i < NCOMMANDS; i++) {
		uint32_t h = cmd_name_hash(commands[i].name, strlen(commands[i].name));

		while (cmd_hash_slot[h & (CMD_HASH_SLOTS - 1)])
			h++;
		cmd_hash_slot[h & (CMD_HASH_SLOTS - 1)] = (uint16_t)(i + 1);
	}
}

const struct srv_cmd *cmd_lookup(const char *name, size_t len)
{
	uint32_t h;

	if (len == 0 || len > CMD_NAME_MAX)
		return NULL;
	pthread_once(&cmd_hash_once, cmd_hash_build);
	for (h = cmd_name_hash(name, len);; h++) {
		unsigned i = cmd_hash_slot[h & (CMD_HASH_SLOTS - 1)];

		if (i == 0)
			return NULL;
		if (strlen(commands[i - 1].name) == len &&
		    strncasecmp(commands[i - 1].name, name, len) == 0)
			return &commands[i - 1];
	}
}

static void command_flags(struct rbuf *b, int proto, const struct srv_cmd *cmd)
{
	const char *f[6];
	size_t n = 0;

	if (cmd->flags & F_WRITE)
		f[n++] = "write";
	if (cmd->flags & F_READ)
		f[n++] = "readonly";
	if (cmd->flags & F_FAST)
		f[n++] = "fast";
	if (cmd->flags & F_NOAUTH)
		f[n++] = "no_auth";
	if (cmd->flags & F_ADMIN)
		f[n++] = "admin";
	resp_set(b, proto, n);
	for (size_t i = 0; i < n; i++)
		resp_simple(b, f[i]);
}

static void command_info(struct ctx *x, const struct srv_cmd *cmd)
{
	char lower[32];

	resp_array(x->out, 10);
	resp_bulk_cstr(x->out, cmd_lower(cmd, lower, sizeof(lower)));
	resp_int(x->out, cmd->arity);
	command_flags(x->out, x->c->proto, cmd);
	resp_int(x->out, cmd->first);
	resp_int(x->out, cmd->last);
	resp_int(x->out, cmd->step);
	resp_set(x->out, x->c->proto, 0); /* ACL categories */
	resp_set(x->out, x->c->proto, 0); /* tips */
	resp_array(x->out, 0); /* key specs */
	resp_array(x->out, 0); /* subcommands */
}

static void command_doc(struct ctx *x, const struct srv_cmd *cmd)
{
	char lower[32];

	resp_bulk_cstr(x->out, cmd_lower(cmd, lower, sizeof(lower)));
	resp_map(x->out, x->c->proto, 3);
	resp_bulk_cstr(x->out, "summary");
	resp_bulk_cstr(x->out, cmd->summary);
	resp_bulk_cstr(x->out, "since");
	resp_bulk_cstr(x->out, cmd->since);
	resp_bulk_cstr(x->out, "group");
	resp_bulk_cstr(x->out, cmd->group);
}

static void cmd_command(struct ctx *x)
{
	if (x->argc == 1) {
		resp_array(x->out, NCOMMANDS);
		for (size_t i = 0; i < NCOMMANDS; i++)
			command_info(x, &commands[i]);
	} else if (arg_is(x, 1, "COUNT") && x->argc == 2) {
		resp_int(x->out, (long long)NCOMMANDS);
	} else if (arg_is(x, 1, "LIST") && x->argc == 2) {
		char lower[32];

		resp_array(x->out, NCOMMANDS);
		for (size_t i = 0; i < NCOMMANDS; i++)
			resp_bulk_cstr(x->out, cmd_lower(&commands[i], lower, sizeof(lower)));
	} else if (arg_is(x, 1, "INFO")) {
		if (x->argc == 2) {
			resp_array(x->out, NCOMMANDS);
			for (size_t i = 0; i < NCOMMANDS; i++)
				command_info(x, &commands[i]);
			return;
		}
		resp_array(x->out, x->argc - 2);
		for (size_t a = 2; a < x->argc; a++) {
			const struct srv_cmd *cmd = cmd_lookup(x->argv[a], x->lens[a]);

			if (cmd)
				command_info(x, cmd);
			else
				resp_null_array(x->out, x->c->proto);
		}
	} else if (arg_is(x, 1, "DOCS")) {
		size_t n = 0;

		if (x->argc == 2) {
			resp_map(x->out, x->c->proto, NCOMMANDS);
			for (size_t i = 0; i < NCOMMANDS; i++)
				command_doc(x, &commands[i]);
			return;
		}
		for (size_t a = 2; a < x->argc; a++)
			n += cmd_lookup(x->argv[a], x->lens[a]) != NULL;
		resp_map(x->out, x->c->proto, n);
		for (size_t a = 2; a < x->argc; a++) {
			const struct srv_cmd *cmd = cmd_lookup(x->argv[a], x->lens[a]);

			if (cmd)
				command_doc(x, cmd);
		}
	} else {
		resp_errorf(x->out,
			    "ERR unknown subcommand or wrong number of arguments for '%.*s'. "
			    "Try COMMAND HELP.",
			    (int)(x->lens[1] > 64 ? 64 : x->lens[1]), x->argv[1]);
	}
}

/* ---- dispatch ----------------------------------------------------------------------------- */

static void reply_unknown(struct ctx *x)
{
	char args[256];
	size_t off = 0;

	args[0] = '\0';
	for (size_t i = 1; i < x->argc && off < 160; i++) {
		int n = snprintf(args + off, sizeof(args) - off, "'%.*s' ",
				 (int)(x->lens[i] > 64 ? 64 : x->lens[i]), x->argv[i]);

		if (n < 0 || (size_t)n >= sizeof(args) - off)
			break;
		off += (size_t)n;
	}
	resp_errorf(x->out, "ERR unknown command '%.*s', with args beginning with: %s",
		    (int)(x->lens[0] > 128 ? 128 : x->lens[0]), x->argv[0], args);
}

static bool queue_cmd(struct conn *c, const struct srv_cmd *cmd, size_t argc, const char **argv,
		      const size_t *lens)
{
	struct queued_cmd *q;

	if (c->nmq == c->capmq && !srv_reserve(&c->mq, &c->capmq, c->nmq + 1, sizeof(*c->mq), 8))
		return false;
	q = &c->mq[c->nmq];
	q->cmd = cmd;
	q->argc = 0;
	q->argv = calloc(argc, sizeof(char *));
	q->lens = calloc(argc, sizeof(size_t));
	if (!q->argv || !q->lens) {
		free(q->argv);
		free(q->lens);
		return false;
	}
	c->nmq++;
	for (size_t i = 0; i < argc; i++) {
		q->argv[i] = malloc(lens[i] ? lens[i] : 1);
		if (!q->argv[i])
			return false;
		memcpy(q->argv[i], argv[i], lens[i]);
		q->lens[i] = lens[i];
		q->argc++;
	}
	return true;
}

void cmd_dispatch(struct conn *c, size_t argc, const char **argv, const size_t *lens)
{
	struct ctx x = { .c = c, .argc = argc, .argv = argv, .lens = lens, .out = &c->out };
	const struct srv_cmd *cmd = cmd_lookup(argv[0], lens[0]);

	if (cmd && !c->in_multi && cmd->fn == cmd_get && argc == 2 && c->authed) {
		/* answered with the other GETs of this run by one multi-get */
		atomic_store_explicit(&c->last_cmd, "get", memory_order_relaxed);
#ifdef PKV_SRV_RMW
		flush_txns(c);
#endif
#ifdef PKV_SRV_HAVE_BATCH
		flush_blind(c);
#endif
		if (pending_get_add(c, argv[1], lens[1]))
			return;
	}
#ifdef PKV_SRV_HAVE_BATCH
	if (cmd && !c->in_multi && c->authed &&
	    ((cmd->fn == cmd_set && argc == 3) ||
	     (cmd->fn == cmd_mset && argc >= 3 && argc % 2 == 1))) {
		/* written with the other plain writes of this run by one batch */
		atomic_store_explicit(&c->last_cmd, cmd->name, memory_order_relaxed);
		flush_gets(c);
#ifdef PKV_SRV_RMW
		flush_txns(c);
#endif
		if (pending_blind_add(c, argc, argv, lens))
			return;
		flush_blind(c); /* it runs on its own, after the run */
	}
#endif
#ifdef PKV_SRV_RMW
	if (cmd && !c->in_multi && c->authed &&
	    ((cmd->arity > 0 && argc == (size_t)cmd->arity) ||
	     (cmd->arity < 0 && argc >= (size_t)-cmd->arity)) &&
	    (cmd->flags & F_TXN || (cmd->fn == cmd_del && argc > 2) ||
	     (cmd->fn == cmd_set && argc > 3))) {
		/* with the other read-then-write commands of this run, in one transaction */
		atomic_store_explicit(&c->last_cmd, cmd->name, memory_order_relaxed);
		flush_gets(c);
#ifdef PKV_SRV_HAVE_BATCH
		flush_blind(c);
#endif
		if (!pending_txn_add(c, cmd, argc, argv, lens)) {
			flush_txns(c);
			run_txn_cmd(&x, cmd);
		}
		return;
	}
#endif
	cmd_flush_pending(c);
	if (!cmd) {
		if (c->in_multi)
			c->multi_error = true;
		reply_unknown(&x);
		return;
	}
	atomic_store_explicit(&c->last_cmd, cmd->name, memory_order_relaxed);
	if (!c->authed && !(cmd->flags & F_NOAUTH)) {
		if (c->in_multi)
			c->multi_error = true;
		resp_error(x.out, "NOAUTH Authentication required.");
		return;
	}
	if ((cmd->arity > 0 && argc != (size_t)cmd->arity) ||
	    (cmd->arity < 0 && argc < (size_t)-cmd->arity)) {
		char lower[32];

		if (c->in_multi)
			c->multi_error = true;
		resp_errorf(x.out, "ERR wrong number of arguments for '%s' command",
			    cmd_lower(cmd, lower, sizeof(lower)));
		return;
	}
	if (c->in_multi && !(cmd->flags & F_MULTICTL)) {
		if (cmd->flags & F_NOMULTI) {
			c->multi_error = true;
			resp_errorf(x.out, "ERR %s is not allowed inside MULTI by pkv-server",
				    cmd->name);
			return;
		}
		if (!queue_cmd(c, cmd, argc, argv, lens)) {
			c->multi_error = true;
			reply_store_error(c, -ENOMEM);
			return;
		}
		resp_simple(x.out, "QUEUED");
		return;
	}
#ifdef PKV_SRV_RMW
	if (cmd->flags & F_TXN || ((cmd->fn == cmd_del) && argc > 2) ||
	    (cmd->fn == cmd_set && argc > 3)) {
		run_txn_cmd(&x, cmd); /* not reached: grouped above */
		return;
	}
#endif
#ifdef PKV_SRV_HAVE_GET_MANY
	if (cmd->flags & F_READ && cmd->fn != cmd_mget) {
		int rc = pkv_read_begin(srv.db);

		if (rc < 0) {
			reply_store_error(c, rc);
			return;
		}
		cmd->fn(&x);
		pkv_read_end(srv.db);
		return;
	}
	if (cmd->fn == cmd_mget) {
		int rc = pkv_read_begin(srv.db);

		if (rc < 0) {
			reply_store_error(c, rc);
			return;
		}
		cmd->fn(&x);
		pkv_read_end(srv.db);
		return;
	}
#endif
	cmd->fn(&x);
}
