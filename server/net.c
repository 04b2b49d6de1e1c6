/* SPDX-License-Identifier: MIT */
/*
 * net.c - the event loops: one epoll loop per thread, connections, query and reply buffers,
 * limits, and the release of replies held for durability.
 *
 * One round of a loop:
 *   1. epoll_wait; accept on the shared listening sockets (registered in every loop with
 *      EPOLLEXCLUSIVE, so one idle loop wakes per connection and a busy loop does not);
 *   2. for each readable connection: read once, parse every complete command, run it, append
 *      its reply (consecutive GETs are gathered and answered by one multi-get);
 *   3. durability (--durability power): the replies of writes wait for the sequence numbers
 *      their writes took (see conn_hold);
 *   4. one write per connection for everything answered in the round.
 *
 * Limits: a connection whose unsent output passes SRV_OUT_SOFT stops being parsed (and read)
 * until it drains (back-pressure: a client that never reads cannot make us buffer its pipeline's
 * replies); one whose output passes output_limit anyway (one huge reply) is closed, as is one
 * whose unparsed input passes query_limit.
 *
 * Descriptors: --maxclients is capped at start to what RLIMIT_NOFILE leaves after the server's
 * own (main.c), so accept() does not normally fail for want of one. A connection over
 * --maxclients waits SRV_ADMIT_GRACE_MS for a slot (a client that just closed may not have been
 * seen closing yet by its loop), but only SRV_ADMIT_WAIT_MAX of them at once in the process:
 * the others get "-ERR max number of clients reached" and are closed at once, so a burst of
 * connections never holds more descriptors than the reserve has room for. If accept() still
 * fails for want of a resource (EMFILE, ENFILE, ENOBUFS, ENOMEM), the listeners stay readable
 * (level-triggered): the loop takes them out of its epoll set for SRV_ACCEPT_BACKOFF_MS, or
 * until one of its connections closes, rather than retrying at once, and the failures are
 * logged at most once a second with a count of those not logged.
 */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define SRV_OUT_SOFT (4u * 1024 * 1024) /* pause parsing above this much unsent output */
#define SRV_READ_CHUNK (16u * 1024) /* as Redis: idle clients cost little */
#define SRV_ACCEPT_BURST 64
#define SRV_ADMIT_GRACE_MS 50 /* how long a connection over --maxclients waits for a slot */
#define SRV_ACCEPT_BACKOFF_MS 100 /* listeners left alone after accept() ran out of resources */
#define SRV_ACCEPT_LOG_MS 1000 /* at most one accept() failure logged in this long */

/* epoll data tags for the non-connection fds (connections are their struct conn *) */
static char tag_tcp, tag_unix, tag_wake, tag_durable;

static void conn_kill(struct conn *c);
static void conn_process(struct conn *c);

/* connections waiting for a slot, all loops (at most SRV_ADMIT_WAIT_MAX) */
static atomic_uint admit_waiting;

/* the rate limit of accept()'s failure log, shared by the loops */
static _Atomic uint64_t accept_log_ms; /* when one was last logged, 0 never */
static atomic_uint accept_log_skipped; /* failures not logged since */

static int add_fd(int epfd, int fd, void *tag, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = tag };

	return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

/* ---- connections ------------------------------------------------------------------------- */

static void registry_add(struct conn *c)
{
	pthread_mutex_lock(&srv.clients_lock);
	c->gnext = srv.clients;
	c->gprev = NULL;
	if (srv.clients)
		srv.clients->gprev = c;
	srv.clients = c;
	pthread_mutex_unlock(&srv.clients_lock);
}

static void registry_del(struct conn *c)
{
	pthread_mutex_lock(&srv.clients_lock);
	if (c->gprev)
		c->gprev->gnext = c->gnext;
	else
		srv.clients = c->gnext;
	if (c->gnext)
		c->gnext->gprev = c->gprev;
	pthread_mutex_unlock(&srv.clients_lock);
}

unsigned conn_count_all(void)
{
	return atomic_load(&srv.nclients);
}

static void set_events(struct conn *c)
{
	struct epoll_event ev = { .data.ptr = c };

	/* Paused: neither input nor a peer's half-close is looked at until the output drains
	 * (level-triggered, either would fire again and again). */
	ev.events = (c->paused ? 0 : EPOLLIN | EPOLLRDHUP) | (c->want_out ? EPOLLOUT : 0);
	if (epoll_ctl(c->loop->epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0)
		srv_log(LL_WARNING, "epoll_ctl(MOD) of client %llu: %s", (unsigned long long)c->id,
			strerror(errno));
}

static void addr_string(const struct sockaddr_storage *ss, char *out, size_t cap)
{
	char host[INET6_ADDRSTRLEN] = "?";

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const void *)ss;

		inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
		snprintf(out, cap, "%s:%u", host, ntohs(a->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const void *)ss;

		inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
		snprintf(out, cap, "%s:%u", host, ntohs(a->sin6_port));
	} else {
		snprintf(out, cap, "%s:0", srv.cfg.unixsocket ? srv.cfg.unixsocket : "unix");
	}
}

/*
 * Queue a connection over --maxclients to wait for a slot; false if SRV_ADMIT_WAIT_MAX already
 * wait (each holds a descriptor: a burst must not take them all) or memory is short.
 */
static bool admit_wait(struct loop *l, int fd, bool is_unix, const struct sockaddr_storage *peer)
{
	if (atomic_fetch_add(&admit_waiting, 1) >= SRV_ADMIT_WAIT_MAX)
		goto full;
	if (l->nadmit == l->capadmit &&
	    !srv_reserve(&l->admit, &l->capadmit, l->nadmit + 1, sizeof(*l->admit), 8))
		goto full;
	l->admit[l->nadmit].fd = fd;
	l->admit[l->nadmit].is_unix = is_unix;
	l->admit[l->nadmit].since_ms = srv_mono_ms();
	l->admit[l->nadmit].peer = *peer;
	l->nadmit++;
	return true;
full:
	atomic_fetch_sub(&admit_waiting, 1);
	return false;
}

static void conn_new(struct loop *l, int fd, bool is_unix, const struct sockaddr_storage *peer,
		     bool final)
{
	static const char maxerr[] = "-ERR max number of clients reached\r\n";
	struct sockaddr_storage local;
	socklen_t sl = sizeof(local);
	struct epoll_event ev;
	struct conn *c;
	int one = 1;

	if (atomic_fetch_add(&srv.nclients, 1) >= atomic_load(&srv.cfg.maxclients)) {
		atomic_fetch_sub(&srv.nclients, 1);
		if (!final && admit_wait(l, fd, is_unix, peer))
			return;
		/* Best effort, as Redis does: the socket is fresh, the line fits its buffer. */
		ssize_t w = write(fd, maxerr, sizeof(maxerr) - 1);

		(void)w;
		atomic_fetch_add_explicit(&l->st.rejected, 1, memory_order_relaxed);
		close(fd);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c || (l->nconns == l->capconns && 0)) {
		free(c);
		atomic_fetch_sub(&srv.nclients, 1);
		close(fd);
		return;
	}
	if (l->nconns == l->capconns &&
	    !srv_reserve(&l->conns, &l->capconns, l->nconns + 1, sizeof(*l->conns), 64)) {
		free(c);
		atomic_fetch_sub(&srv.nclients, 1);
		close(fd);
		return;
	}
	if (!is_unix)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->fd = fd;
	c->loop = l;
	c->unix_sock = is_unix;
	c->id = atomic_fetch_add(&srv.next_id, 1) + 1;
	c->proto = 2;
	c->authed = srv.cfg.requirepass == NULL;
	c->parser.max_bulk = PKV_MAX_VALUE;
	resp_reset(&c->parser);
	c->ctime_ms = srv_now_ms();
	atomic_store_explicit(&c->last_ms, srv_mono_ms(), memory_order_relaxed);
	atomic_store_explicit(&c->last_cmd, "NULL", memory_order_relaxed);
	addr_string(peer, c->addr, sizeof(c->addr));
	if (getsockname(fd, (struct sockaddr *)&local, &sl) == 0)
		addr_string(&local, c->laddr, sizeof(c->laddr));
	ev.events = EPOLLIN | EPOLLRDHUP;
	ev.data.ptr = c;
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		srv_log(LL_WARNING, "epoll_ctl(ADD): %s", strerror(errno));
		free(c);
		atomic_fetch_sub(&srv.nclients, 1);
		close(fd);
		return;
	}
	c->loop_pos = l->nconns;
	l->conns[l->nconns++] = c;
	registry_add(c);
	atomic_fetch_add_explicit(&l->st.connections, 1, memory_order_relaxed);
	srv_log(LL_VERBOSE, "accepted client %llu from %s", (unsigned long long)c->id, c->addr);
}

/* Add (@on) or remove the listening sockets from the loop's epoll set. */
static int listeners_arm(struct loop *l, bool on)
{
	/* EPOLLEXCLUSIVE: a new connection wakes one waiting loop, not all of them. */
	static const uint32_t events = EPOLLIN | EPOLLEXCLUSIVE;
	int rc = 0;

	if (srv.tcp_fd >= 0)
		rc |= on ? add_fd(l->epfd, srv.tcp_fd, &tag_tcp, events) :
			   epoll_ctl(l->epfd, EPOLL_CTL_DEL, srv.tcp_fd, NULL);
	if (srv.unix_fd >= 0)
		rc |= on ? add_fd(l->epfd, srv.unix_fd, &tag_unix, events) :
			   epoll_ctl(l->epfd, EPOLL_CTL_DEL, srv.unix_fd, NULL);
	return rc ? -errno : 0;
}

/* Log an accept() failure, unless one was logged less than SRV_ACCEPT_LOG_MS ago (any loop). */
static void accept_log(int err)
{
	uint64_t now = srv_mono_ms();
	uint64_t last = atomic_load_explicit(&accept_log_ms, memory_order_relaxed);
	unsigned skipped;

	if ((last && now - last < SRV_ACCEPT_LOG_MS) ||
	    !atomic_compare_exchange_strong(&accept_log_ms, &last, now)) {
		atomic_fetch_add_explicit(&accept_log_skipped, 1, memory_order_relaxed);
		return;
	}
	skipped = atomic_exchange_explicit(&accept_log_skipped, 0, memory_order_relaxed);
	srv_log(LL_WARNING,
		"accept: %s%s; not accepting for %d ms (%u more failures since the last report)",
		strerror(err),
		err == EMFILE ? " (the open files limit: raise ulimit -n or lower maxclients)" : "",
		SRV_ACCEPT_BACKOFF_MS, skipped);
}

/*
 * accept() failed for want of a resource: the connection stays in the backlog and the listener
 * stays readable. Stop watching it for a while (loop_main re-arms it) instead of failing again
 * at once, in a loop, with a log line each time.
 */
static void accept_backoff(struct loop *l, int err)
{
	if (!l->accept_off) {
		if (listeners_arm(l, false) < 0)
			srv_log(LL_WARNING, "epoll_ctl(DEL) of a listener: %s", strerror(errno));
		l->accept_off = true;
	}
	l->accept_resume_ms = srv_mono_ms() + SRV_ACCEPT_BACKOFF_MS;
	accept_log(err);
}

static void accept_some(struct loop *l, int lfd, bool is_unix)
{
	for (int i = 0; i < SRV_ACCEPT_BURST && !l->accept_off; i++) {
		struct sockaddr_storage peer;
		socklen_t pl = sizeof(peer);
		int fd;

		memset(&peer, 0, sizeof(peer));
		fd = accept4(lfd, (struct sockaddr *)&peer, &pl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			switch (errno) {
			case EAGAIN:
				return;
			case EINTR:
			case ECONNABORTED:
			/* the connection's own trouble, passed on by Linux (accept(2)), or a
			 * firewall's verdict: the next one in the backlog may be fine */
			case EPROTO:
			case EPERM:
			case ENOPROTOOPT:
			case ENETDOWN:
			case ENETUNREACH:
			case EHOSTDOWN:
			case EHOSTUNREACH:
			case ENONET:
			case EOPNOTSUPP:
				continue;
			default:
				/* EMFILE, ENFILE, ENOBUFS, ENOMEM, or worse: no use retrying now */
				accept_backoff(l, errno);
				return;
			}
		}
		conn_new(l, fd, is_unix, &peer, false);
	}
}

static void conn_free(struct conn *c)
{
	cmd_conn_reset(c);
	resp_free(&c->parser);
	free(c->q);
	rbuf_free(&c->out);
	free(c->held);
	free(c->pget);
	free(c->ptx.v);
	free(c->ptx.argv);
	free(c->ptx.lens);
	free(c->pbw.v);
	free(c->pbw.argv);
	free(c->pbw.lens);
	free(c->mq);
	free(c->watched);
	free(c->name);
	free(c);
}

/* Close now; the struct is freed at the end of the round (other lists may still point to it). */
static void conn_kill(struct conn *c)
{
	struct loop *l = c->loop;
	struct conn *last;

	if (c->dead)
		return;
	c->dead = true;
	registry_del(c); /* first: CLIENT LIST on another loop reads c->fd under the lock */
	epoll_ctl(l->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
	last = l->conns[--l->nconns];
	l->conns[c->loop_pos] = last;
	last->loop_pos = c->loop_pos;
	atomic_fetch_sub(&srv.nclients, 1);
	if (l->accept_off)
		l->accept_resume_ms = 0; /* a descriptor is free: accept again after this round */
	c->dead_next = l->dead_list;
	l->dead_list = c;
	srv_log(LL_VERBOSE, "closed client %llu", (unsigned long long)c->id);
}

void conn_close_after_reply(struct conn *c)
{
	c->closing = true;
}

static void flush_list_add(struct conn *c)
{
	if (c->in_flush_list || c->dead)
		return;
	c->in_flush_list = true;
	c->flush_next = c->loop->flush_list;
	c->loop->flush_list = c;
}

/* ---- durability holds --------------------------------------------------------------------- */

void conn_hold(struct conn *c, size_t start, uint64_t seq)
{
	if (srv.cfg.durability != PKV_DURABLE_POWER || !srv.cfg.dir)
		return;
#ifdef PKV_SRV_HAVE_TICKETS
	if (seq == 0) {
		/* a write that did not say its number: wait for everything written so far */
		pkv_stats st;

		if (pkv_get_stats(srv.db, &st) == 0)
			seq = st.last_seq;
	}
	/* Merge with the previous hold when it already covers this one. */
	if (c->nheld > c->held_head && c->held[c->nheld - 1].start <= start) {
		if (c->held[c->nheld - 1].seq < seq)
			c->held[c->nheld - 1].seq = seq;
	} else {
		if (c->nheld == c->capheld &&
		    !srv_reserve(&c->held, &c->capheld, c->nheld + 1, sizeof(*c->held), 16)) {
			c->out.oom = true;
			return;
		}
		c->held[c->nheld].start = start;
		c->held[c->nheld].seq = seq;
		c->nheld++;
	}
	if (seq > c->loop->waiting_seq)
		c->loop->waiting_seq = seq;
#else
	(void)start;
	(void)seq;
	/* Without tickets: one pkv_sync for the whole round, before any reply of it leaves. */
	c->wrote = true;
	c->loop->need_sync = true;
#endif
}

/* The end of what may be sent now: the start of the first reply still waiting for its seq. */
static size_t sendable_end(struct conn *c, uint64_t durable)
{
	while (c->held_head < c->nheld && c->held[c->held_head].seq <= durable)
		c->held_head++;
	if (c->held_head == c->nheld) {
		c->held_head = c->nheld = 0;
		return c->out.len;
	}
	return c->held[c->held_head].start;
}

/* ---- output ------------------------------------------------------------------------------ */

#ifdef PKV_SRV_HAVE_TICKETS
static uint64_t durable_now(void)
{
	uint64_t d = 0;

	if (srv.cfg.durability == PKV_DURABLE_POWER && srv.cfg.dir)
		pkv_durable_seq(srv.db, &d);
	return d;
}
#endif

/* Drop what was sent from the front of the output (shift the held offsets with it). */
static void out_compact(struct conn *c)
{
	size_t i;

	if (c->sent == c->out.len && c->held_head == c->nheld) {
		c->out.len = 0;
		c->sent = 0;
		if (c->out.cap > 4 * SRV_OUT_SOFT) {
			rbuf_free(&c->out);
		}
		return;
	}
	if (c->sent < 64 * 1024 && c->sent < c->out.len / 2)
		return;
	memmove(c->out.p, c->out.p + c->sent, c->out.len - c->sent);
	for (i = c->held_head; i < c->nheld; i++)
		c->held[i].start -= c->sent;
	c->out.len -= c->sent;
	c->sent = 0;
}

/* Send what may be sent; returns false if the connection died. */
static bool conn_write(struct conn *c, uint64_t durable)
{
	size_t end;
	bool want;

	if (c->dead)
		return false;
	if (c->out.oom) {
		srv_log(LL_WARNING, "client %llu: out of memory for its replies; closing",
			(unsigned long long)c->id);
		conn_kill(c);
		return false;
	}
	end = sendable_end(c, durable);
	while (c->sent < end) {
		ssize_t n = write(c->fd, c->out.p + c->sent, end - c->sent);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			conn_kill(c);
			return false;
		}
		c->sent += (size_t)n;
		atomic_fetch_add_explicit(&c->loop->st.net_out, (uint64_t)n, memory_order_relaxed);
	}
	want = c->sent < end;
	if (c->sent == c->out.len && c->closing) {
		conn_kill(c);
		return false;
	}
	out_compact(c);
	if (c->paused && c->out.len - c->sent <= SRV_OUT_SOFT / 2) {
		/* drained: parse what waited, then read again */
		c->paused = false;
		c->want_out = want;
		set_events(c);
		conn_process(c);
		return !c->dead;
	}
	if (want != c->want_out) {
		c->want_out = want;
		set_events(c);
	}
	return true;
}

void reply_store_error(struct conn *c, int rc)
{
	switch (rc) {
	case PKV_ETOOBIG:
		resp_errorf(&c->out,
			    "ERR key or value too large (pkv limits: key %u bytes, value %u "
			    "bytes)",
			    PKV_MAX_KEY, PKV_MAX_VALUE);
		break;
	case PKV_EINVAL:
		resp_error(&c->out,
			   "ERR invalid argument for the store (empty keys are not supported)");
		break;
	case PKV_EREADONLY:
		resp_error(&c->out,
			   "READONLY the store refuses writes (read-only, or stopped after an "
			   "I/O error)");
		break;
	default:
		resp_errorf(&c->out, "ERR store error: %s", pkv_strerror(rc));
		break;
	}
}

/* ---- input ------------------------------------------------------------------------------- */

static bool ensure_args(struct loop *l, size_t n)
{
	size_t cap_lens = l->cap_args;

	/* argv and lens share cap_args: it moves once both have grown. */
	return n <= l->cap_args ||
	       (srv_reserve(&l->lens, &cap_lens, n, sizeof(*l->lens), 16) &&
		srv_reserve(&l->argv, &l->cap_args, n, sizeof(*l->argv), 16));
}

/* Parse and run every complete command of the query buffer (until output pressure pauses it). */
static void conn_process(struct conn *c)
{
	struct loop *l = c->loop;

	while (!c->dead && !c->closing) {
		int rc;

		if (c->out.len - c->sent > SRV_OUT_SOFT) {
			if (!c->paused) {
				c->paused = true;
				c->want_out = true;
				set_events(c);
			}
			break;
		}
		rc = resp_parse(&c->parser, c->q + c->qstart, c->qlen - c->qstart);
		if (rc == RESP_AGAIN)
			break;
		if (rc == RESP_ERROR) {
			cmd_flush_pending(c);
			resp_errorf(&c->out, "ERR Protocol error: %s", c->parser.err);
			srv_log(LL_VERBOSE, "client %llu: protocol error: %s",
				(unsigned long long)c->id, c->parser.err);
			c->closing = true;
			c->qstart = c->qlen;
			break;
		}
		if (rc == RESP_NOMEM || !ensure_args(l, c->parser.argc)) {
			conn_kill(c);
			return;
		}
		size_t argc = c->parser.argc;
		const char *base = c->q + c->qstart;

		for (size_t i = 0; i < argc; i++) {
			l->argv[i] = base + c->parser.argv[i].off;
			l->lens[i] = c->parser.argv[i].len;
		}
		c->qstart += c->parser.pos;
		resp_reset(&c->parser);
		if (argc == 0)
			continue;
		atomic_store_explicit(&c->last_ms, srv_mono_ms(), memory_order_relaxed);
		cmd_dispatch(c, argc, l->argv, l->lens);
		atomic_fetch_add_explicit(&l->st.commands, 1, memory_order_relaxed);
		if (c->out.len - c->sent > srv.cfg.output_limit) {
			srv_log(LL_NOTICE,
				"client %llu: output buffer limit (%zu bytes) reached; closing",
				(unsigned long long)c->id, srv.cfg.output_limit);
			conn_kill(c);
			return;
		}
	}
	if (c->dead)
		return;
	cmd_flush_pending(c); /* before the query buffer moves: pending keys point into it */
	if (c->qstart == c->qlen) {
		c->qstart = c->qlen = 0;
		if (c->qcap > 4 * SRV_READ_CHUNK && c->parser.pos == 0) {
			free(c->q);
			c->q = NULL;
			c->qcap = 0;
		}
	} else if (c->qstart > 0) {
		memmove(c->q, c->q + c->qstart, c->qlen - c->qstart);
		c->qlen -= c->qstart;
		c->qstart = 0;
	}
	flush_list_add(c);
}

static void conn_read(struct conn *c)
{
	size_t need = SRV_READ_CHUNK;
	ssize_t n;

	if (c->paused)
		return;
	if (c->closing) {
		/* what a client sends after its last reply is ignored, but read: level-triggered
		 * epoll would otherwise report it until the connection closes */
		char sink[4096];
		ssize_t r = read(c->fd, sink, sizeof(sink));

		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
			conn_kill(c);
		return;
	}
	/* A bulk in progress: make room for all of it at once (its length passed the checks). */
	if (c->parser.in_bulk) {
		size_t have = c->qlen - c->qstart - c->parser.pos;
		size_t want = c->parser.bulklen + 2;

		if (want > have && want - have > need)
			need = want - have;
	}
	if (c->qcap - c->qlen < need) {
		size_t ncap = c->qcap ? c->qcap : SRV_READ_CHUNK;
		char *nq;

		while (ncap - c->qlen < need)
			ncap *= 2;
		nq = realloc(c->q, ncap);
		if (!nq) {
			conn_kill(c);
			return;
		}
		c->q = nq;
		c->qcap = ncap;
	}
	n = read(c->fd, c->q + c->qlen, c->qcap - c->qlen);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return;
		conn_kill(c);
		return;
	}
	if (n == 0) {
		conn_kill(c);
		return;
	}
	c->qlen += (size_t)n;
	atomic_fetch_add_explicit(&c->loop->st.net_in, (uint64_t)n, memory_order_relaxed);
	if (c->qlen - c->qstart > srv.cfg.query_limit) {
		resp_errorf(&c->out, "ERR Protocol error: query buffer limit (%zu bytes) reached",
			    srv.cfg.query_limit);
		srv_log(LL_NOTICE, "client %llu: query buffer limit reached; closing",
			(unsigned long long)c->id);
		c->closing = true;
		c->qstart = c->qlen;
		resp_reset(&c->parser);
		flush_list_add(c);
		return;
	}
	conn_process(c);
}

/* ---- the loop ---------------------------------------------------------------------------- */

static void sweep_idle(struct loop *l)
{
	unsigned t = atomic_load_explicit(&srv.cfg.timeout_s, memory_order_relaxed);
	uint64_t now = srv_mono_ms();

	if (t == 0)
		return;
	for (size_t i = 0; i < l->nconns;) {
		struct conn *c = l->conns[i];
		uint64_t last = atomic_load_explicit(&c->last_ms, memory_order_relaxed);

		if (now - last > (uint64_t)t * 1000 && !c->in_multi && c->held_head == c->nheld) {
			srv_log(LL_VERBOSE, "client %llu idle for %u s: closing",
				(unsigned long long)c->id, t);
			conn_kill(c); /* moves the last connection into slot i */
			continue;
		}
		i++;
	}
}

static void loop_round_end(struct loop *l)
{
	struct conn *c, *next;
	uint64_t durable = UINT64_MAX;

#ifndef PKV_SRV_HAVE_TICKETS
	if (l->need_sync) {
		/* Every write acknowledged in this round is made power-durable by one shared sync. */
		int rc = pkv_sync(srv.db);

		l->need_sync = false;
		if (rc < 0) {
			srv_log(LL_WARNING,
				"pkv_sync failed: %s; closing the clients whose writes were "
				"not made durable",
				pkv_strerror(rc));
			for (c = l->flush_list; c; c = c->flush_next)
				if (c->wrote)
					conn_kill(c);
		}
		for (c = l->flush_list; c; c = c->flush_next)
			c->wrote = false;
	}
#else
	if (l->waiting_seq) {
		durable = durable_now();
		if (durable < l->waiting_seq) {
			/* Start (or join) a sync without waiting; the event fd says when it is
			 * done. */
			int rc = pkv_wait_durable(srv.db, l->waiting_seq, 0);

			if (rc == PKV_EREADONLY) {
				/* An fdatasync failed: the held writes will never be durable. Their
				 * replies must not leave; their clients are closed. */
				srv_log(LL_WARNING,
					"the store stopped after an I/O error: closing the "
					"clients whose writes were not made durable");
				for (size_t i = 0; i < l->nconns;) {
					struct conn *hc = l->conns[i];

					if (hc->held_head < hc->nheld) {
						conn_kill(hc);
						continue;
					}
					i++;
				}
				l->waiting_seq = 0;
			} else if (rc < 0 && rc != -EAGAIN && rc != -ETIMEDOUT) {
				srv_log(LL_WARNING, "pkv_wait_durable: %s", pkv_strerror(rc));
			}
			durable = durable_now();
		}
		if (durable >= l->waiting_seq)
			l->waiting_seq = 0;
	}
#endif
	/* conn_write may re-queue a connection (a paused one parsed more): each pass takes the
	 * list off the loop first, so that what is queued during it makes the next pass */
	while (l->flush_list) {
		struct conn *list = l->flush_list;

		l->flush_list = NULL;
		for (c = list; c; c = next) {
			next = c->flush_next;
			c->in_flush_list = false;
			if (!c->dead)
				conn_write(c, durable);
		}
	}
}

#ifdef PKV_SRV_HAVE_TICKETS
/* The store made more writes durable: send the replies that waited for them. */
static void release_durable(struct loop *l)
{
	uint64_t durable = durable_now();

	for (size_t i = 0; i < l->nconns; i++) {
		struct conn *c = l->conns[i];

		if (c->held_head < c->nheld && c->held[c->held_head].seq <= durable)
			flush_list_add(c);
	}
	if (l->waiting_seq && durable >= l->waiting_seq)
		l->waiting_seq = 0;
}
#endif

/* Admit the connections that waited for a slot, or refuse those that waited long enough. */
static void retry_admissions(struct loop *l)
{
	struct admission *a = l->admit; /* conn_new may queue into a fresh array meanwhile */
	size_t n = l->nadmit;

	l->admit = NULL;
	l->nadmit = l->capadmit = 0;
	for (size_t i = 0; i < n; i++) {
		bool final = srv_mono_ms() - a[i].since_ms >= SRV_ADMIT_GRACE_MS;
		size_t before = l->nadmit;

		atomic_fetch_sub(&admit_waiting, 1); /* conn_new counts it again if it waits on */
		conn_new(l, a[i].fd, a[i].is_unix, &a[i].peer, final);
		if (l->nadmit > before)
			l->admit[l->nadmit - 1].since_ms = a[i].since_ms; /* still waiting */
	}
	free(a);
}

static void *loop_main(void *arg)
{
	struct loop *l = arg;
	struct epoll_event evs[256];
	uint64_t last_sweep = srv_mono_ms();

	pkv_thread_attach();
	while (!atomic_load(&srv.stopping)) {
		int timeout = 100;
		int n;

#ifdef PKV_SRV_HAVE_TICKETS
		if (l->waiting_seq)
			timeout = 1; /* a fallback: the event fd is the usual wake-up */
#endif
		if (l->nadmit)
			timeout = 5;
		if (l->accept_off) {
			uint64_t now = srv_mono_ms();
			uint64_t left = l->accept_resume_ms > now ? l->accept_resume_ms - now : 0;

			if (left < (uint64_t)timeout)
				timeout = (int)left;
		}
		n = epoll_wait(l->epfd, evs, 256, timeout);
		if (n < 0 && errno != EINTR) {
			srv_log(LL_WARNING, "epoll_wait: %s", strerror(errno));
			break;
		}
		for (int i = 0; i < n; i++) {
			void *p = evs[i].data.ptr;

			if (p == &tag_tcp) {
				accept_some(l, srv.tcp_fd, false);
			} else if (p == &tag_unix) {
				accept_some(l, srv.unix_fd, true);
			} else if (p == &tag_wake) {
				uint64_t v;
				ssize_t r = read(l->wakefd, &v, sizeof(v));

				(void)r;
			} else if (p == &tag_durable) {
#ifdef PKV_SRV_HAVE_TICKETS
				/* Read (reset) first, then look at the watermark: a growth after
				 * the read wakes us again. EAGAIN: another loop read it. */
				uint64_t v;
				ssize_t r = read(l->durable_fd, &v, sizeof(v));

				(void)r;
				release_durable(l);
#endif
			} else {
				struct conn *c = p;

				if (c->dead)
					continue;
				if (c->paused && (evs[i].events & (EPOLLHUP | EPOLLERR))) {
					conn_kill(c); /* gone while we waited to write to it */
					continue;
				}
				if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP))
					conn_read(c);
				if (!c->dead && (evs[i].events & EPOLLOUT))
					flush_list_add(c);
			}
		}
#ifdef PKV_SRV_HAVE_TICKETS
		if (l->waiting_seq)
			release_durable(l);
#endif
		loop_round_end(l);
		if (l->nadmit)
			retry_admissions(l);
		if (l->accept_off && srv_mono_ms() >= l->accept_resume_ms) {
			if (listeners_arm(l, true) == 0) {
				l->accept_off = false;
			} else {
				srv_log(LL_WARNING, "epoll_ctl(ADD) of a listener: %s",
					strerror(errno));
				listeners_arm(l, false); /* all or none, and try again later */
				l->accept_resume_ms = srv_mono_ms() + SRV_ACCEPT_BACKOFF_MS;
			}
		}
		if (srv_mono_ms() - last_sweep >= 1000) {
			last_sweep = srv_mono_ms();
			sweep_idle(l);
		}
		while (l->dead_list) {
			struct conn *c = l->dead_list;

			l->dead_list = c->dead_next;
			conn_free(c);
		}
	}
	/* Stopping: what was answered goes out (best effort), then every connection closes. */
	loop_round_end(l);
	while (l->nconns)
		conn_kill(l->conns[0]);
	while (l->dead_list) {
		struct conn *c = l->dead_list;

		l->dead_list = c->dead_next;
		conn_free(c);
	}
	pkv_thread_detach();
	return NULL;
}

int net_start_loops(void)
{
	int efd = -1;

#ifdef PKV_SRV_HAVE_TICKETS
	if (srv.cfg.durability == PKV_DURABLE_POWER && srv.cfg.dir)
		efd = pkv_event_fd(srv.db);
#endif
	srv.loops = calloc((size_t)srv.nloops, sizeof(*srv.loops));
	if (!srv.loops)
		return -ENOMEM;
	for (int i = 0; i < srv.nloops; i++) {
		struct loop *l = &srv.loops[i];

		l->idx = i;
		l->durable_fd = -1;
		l->epfd = epoll_create1(EPOLL_CLOEXEC);
		l->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		l->scratch = malloc(PKV_MAX_VALUE);
		if (l->epfd < 0 || l->wakefd < 0 || !l->scratch)
			return -errno ? -errno : -ENOMEM;
		if (add_fd(l->epfd, l->wakefd, &tag_wake, EPOLLIN) < 0)
			return -errno;
		if (listeners_arm(l, true) < 0)
			return -errno;
		if (efd >= 0) {
			/* Edge-triggered: every growth of the durable sequence number (every write
			 * to the eventfd) wakes every loop, whichever loop reads the counter. */
			if (add_fd(l->epfd, efd, &tag_durable, EPOLLIN | EPOLLET) < 0)
				return -errno;
			l->durable_fd = efd;
		}
	}
	for (int i = 0; i < srv.nloops; i++) {
		int rc = pthread_create(&srv.loops[i].thread, NULL, loop_main, &srv.loops[i]);

		if (rc) {
			srv_log(LL_WARNING, "pthread_create: %s", strerror(rc));
			atomic_store(&srv.stopping, true);
			for (int j = 0; j < i; j++) {
				uint64_t one = 1;
				ssize_t w = write(srv.loops[j].wakefd, &one, sizeof(one));

				(void)w;
				pthread_join(srv.loops[j].thread, NULL);
			}
			return -rc;
		}
	}
	return 0;
}

void net_stop_loops(void)
{
	atomic_store(&srv.stopping, true);
	for (int i = 0; i < srv.nloops; i++) {
		uint64_t one = 1;
		ssize_t w = write(srv.loops[i].wakefd, &one, sizeof(one));

		(void)w;
	}
	for (int i = 0; i < srv.nloops; i++)
		pthread_join(srv.loops[i].thread, NULL);
	for (int i = 0; i < srv.nloops; i++) {
		struct loop *l = &srv.loops[i];

		close(l->epfd);
		close(l->wakefd);
		free(l->scratch);
		free(l->argv);
		free(l->lens);
		free(l->items);
		free(l->conns);
		for (size_t j = 0; j < l->nadmit; j++)
			close(l->admit[j].fd);
		free(l->admit);
#ifdef PKV_SRV_HAVE_BATCH
		pkv_batch_free(l->batch);
#endif
	}
	free(srv.loops);
	srv.loops = NULL;
}
