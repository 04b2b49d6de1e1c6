/* SPDX-License-Identifier: MIT */
/*
 * server.h - what the files of pkv-server share: the configuration, the server (one per
 * process), its event loops (one per thread) and their connections.
 *
 * Threads: every loop thread runs its own epoll loop over its own connections; a connection
 * lives and dies on the loop that accepted it, so its fields need no lock. What is shared:
 * the store (thread-safe, reads lock-free), a few atomic counters, and the registry of all
 * connections that CLIENT LIST and INFO read (srv.clients_lock; only a connection's name and the
 * list links are written under it, the rest is read with relaxed atomics).
 *
 * Build features: the store's API grows during the project; the server compiles in what the
 * pkv.h it is built against declares (server/CMakeLists.txt sets PKV_SRV_HAVE_*), and a command
 * whose API is missing is not in the command table (it answers "unknown command").
 */
#ifndef PKV_SERVER_H
#define PKV_SERVER_H

#include <pkv.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "resp.h"

#if defined(PKV_SRV_HAVE_BATCH) && defined(PKV_SRV_HAVE_GET_MANY)
#define PKV_SRV_RMW 1 /* read-modify-write commands: conditional batches over versioned reads */
#endif
#if defined(PKV_SRV_HAVE_EXPIRE) && defined(PKV_SRV_RMW)
#define PKV_SRV_EXPIRY 1 /* EX/PX options, EXPIRE family, TTLs that can be other than -1 */
#endif

#define SRV_VERSION "0.1.0"
#define SRV_REDIS_COMPAT "7.0.0" /* the Redis version whose commands and replies we follow */

enum srv_loglevel {
	LL_DEBUG = 0,
	LL_VERBOSE,
	LL_NOTICE,
	LL_WARNING
};

/** struct srv_config - the command line (see server/README.md and --help). */
struct srv_config {
	const char *dir; /* NULL with --memory */
	int port; /* 0: no TCP listener */
	const char *bind; /* one address */
	const char *unixsocket;
	unsigned unixsocketperm;
	int threads;
	enum pkv_durability durability;
	unsigned sync_interval_ms;
	const char *requirepass;
	atomic_uint maxclients;
	atomic_uint timeout_s; /* idle clients are closed after this; 0 never */
	atomic_int loglevel;
	size_t query_limit; /* bytes of one client's unparsed input */
	size_t output_limit; /* bytes of one client's unsent replies before it is closed */
};

struct loop;

/* One queued command of MULTI: its arguments, copied out of the query buffer. */
struct queued_cmd {
	const struct srv_cmd *cmd;
	size_t argc;
	char **argv;
	size_t *lens;
};

struct watched_key {
	char *key;
	size_t klen;
	uint64_t seq; /* version at WATCH time, 0 if absent */
};

/*
 * A reply held back until the store made a sequence number durable (--durability power): the
 * bytes of out.p from @start on wait until pkv_durable_seq() >= @seq (replies stay in order).
 */
struct held_reply {
	size_t start;
	uint64_t seq;
};

/* A read-then-write command waiting for the transaction of its pipeline run. */
struct pending_txn {
	const struct srv_cmd *cmd;
	size_t argc;
	size_t first; /* index of its first argument in its run's argv */
};

/*
 * Commands of a pipeline run waiting to be answered together (cmd.c): the commands, and their
 * arguments, pointers into the query buffer like pget's keys.
 */
struct cmd_run {
	struct pending_txn *v;
	size_t n, cap;
	const char **argv;
	size_t *lens;
	size_t nargs, capargs;
	size_t bytes; /* of the arguments */
};

/* A GET waiting for the multi-get of its pipeline run: the key is in the query buffer. */
struct pending_get {
	const char *key;
	size_t klen;
};

struct conn {
	int fd;
	uint64_t id;
	struct loop *loop;
	char addr[64];
	char laddr[64];
	bool unix_sock;
	int proto; /* 2 or 3 */
	bool authed;
	bool closing; /* close once the output is sent (QUIT, protocol error) */
	bool dead; /* closed: free at the end of the loop iteration */
	bool want_out; /* EPOLLOUT is registered */
	bool wrote; /* acknowledged a write in this round (power mode without tickets) */
	size_t loop_pos; /* index in loop->conns */
	bool paused; /* input left unparsed: too much output pending */
	bool in_flush_list;
	struct conn *flush_next;
	struct conn *dead_next;

	/* input */
	char *q;
	size_t qlen, qcap;
	size_t qstart; /* first byte of the command being parsed */
	struct resp_parser parser;

	struct pending_get *pget;
	size_t npget, cappget;
	/* read-then-write commands of a pipeline run, answered by one transaction (cmd.c) */
	struct cmd_run ptx;
	/* plain SETs and MSETs of a pipeline run, written as one batch (cmd.c): per command its
	 * key/value pairs */
	struct cmd_run pbw;

	/* output */
	struct rbuf out;
	size_t sent;
	struct held_reply *held;
	size_t nheld, capheld, held_head;

	/* transactions */
	bool in_multi;
	bool multi_error; /* a command was refused while queueing: EXEC aborts */
	struct queued_cmd *mq;
	size_t nmq, capmq;
	struct watched_key *watched;
	size_t nwatched, capwatched;

	/* registry (CLIENT LIST), under srv.clients_lock for name and links */
	struct conn *gprev, *gnext;
	char *name;
	uint64_t ctime_ms;
	_Atomic uint64_t last_ms;
	_Atomic(const char *) last_cmd;
};

/* Per-loop counters INFO sums over loops (each written by its loop only). */
struct loop_stats {
	_Atomic uint64_t commands;
	_Atomic uint64_t connections;
	_Atomic uint64_t rejected;
	_Atomic uint64_t hits;
	_Atomic uint64_t misses;
	_Atomic uint64_t net_in;
	_Atomic uint64_t net_out;
	_Atomic uint64_t conflicts; /* conditional batches retried */
	_Atomic uint64_t expired_reads;
};

struct loop {
	int idx;
	pthread_t thread;
	int epfd;
	int wakefd; /* eventfd: the main thread asks the loop to stop */
	int durable_fd; /* the store's event fd (power mode with tickets), or -1 */
	struct conn *flush_list;
	struct conn *dead_list;
	struct conn **conns; /* this loop's open connections, for the idle-timeout sweep */
	size_t nconns, capconns;
	/*
	 * Connections over --maxclients wait here a moment before they are refused: a client that
	 * just closed may not have been seen closing yet by its loop (another thread).
	 */
	struct admission {
		int fd;
		bool is_unix;
		uint64_t since_ms;
		struct sockaddr_storage peer;
	} * admit;
	size_t nadmit, capadmit;
	bool accept_off; /* the listeners are out of the epoll set (accept() ran out of fds) */
	uint64_t accept_resume_ms; /* until then */
	bool need_sync; /* power mode without tickets: a write was acknowledged in this round */
	uint64_t waiting_seq; /* power mode with tickets: highest seq held back */
	struct loop_stats st;
	/* scratch, reused by every command of the loop */
	const char **argv;
	size_t *lens;
	size_t cap_args;
	char *scratch; /* PKV_MAX_VALUE bytes: values read with pkv_get */
	void *items; /* pkv_item array (PKV_SRV_HAVE_GET_MANY) */
	size_t cap_items;
	void *batch; /* pkv_batch (PKV_SRV_HAVE_BATCH) */
};

struct server {
	struct srv_config cfg;
	pkv *db;
	int tcp_fd;
	int unix_fd;
	struct loop *loops;
	int nloops;
	atomic_bool stopping;
	uint64_t start_ms;
	_Atomic uint64_t lastsave_s;
	atomic_bool bgsave_running;
	_Atomic uint64_t bgsave_ok; /* 1 if the last background save succeeded */
	pthread_t bgsave_thread;
	atomic_bool bgsave_joinable;
	atomic_uint nclients;
	_Atomic uint64_t next_id;
	pthread_mutex_t clients_lock;
	struct conn *clients;
	char executable[512];
	char config_line[512];
};

extern struct server srv;

/* ---- log.c-like helpers (main.c) ---- */
void srv_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
uint64_t srv_now_ms(void);
uint64_t srv_mono_ms(void);

/*
 * Grow the array *@pv of @size-byte elements, whose capacity is *@cap, to hold at least @need:
 * the capacity doubles from @first (when 0) as often as it takes. False on ENOMEM, with the
 * array and *@cap as they were. Call it when the array is full, not on every append.
 */
bool srv_reserve(void *pv, size_t *cap, size_t need, size_t size, size_t first);

/*
 * Connections over --maxclients may wait this many at once (all loops) for a slot to free, each
 * holding its descriptor; past that they are refused at once. Counted in the descriptors the
 * server keeps for itself (main.c).
 */
#define SRV_ADMIT_WAIT_MAX 16

/*
 * srv_clients_possible() - how many of @want clients the open files limit allows, after raising
 * the soft limit toward the hard one if @want needs it; the limit goes in @limit (may be NULL).
 * Context: any thread (CONFIG SET maxclients); serialized inside.
 */
unsigned srv_clients_possible(unsigned want, rlim_t *limit);

/* ---- net.c ---- */
int net_start_loops(void);
void net_stop_loops(void);
/** reply_error_for(): an error reply for a store error code (never a crash). */
void reply_store_error(struct conn *c, int rc);
/*
 * conn_hold() - power durability: the output from offset @start on (the reply of a write, and
 * every reply after it) waits until the store made @seq durable (0: every write so far).
 */
void conn_hold(struct conn *c, size_t start, uint64_t seq);
void conn_close_after_reply(struct conn *c);
/** conn_count_all() - clients connected now, all loops. */
unsigned conn_count_all(void);

/* ---- cmd.c ---- */
struct srv_cmd;
/** cmd_lookup() - the command named @name (any case), or NULL. */
const struct srv_cmd *cmd_lookup(const char *name, size_t len);
/** cmd_dispatch() - run one parsed command of @c (argv/lens in the loop's scratch). */
void cmd_dispatch(struct conn *c, size_t argc, const char **argv, const size_t *lens);
/** cmd_flush_pending() - answer the GETs gathered for one multi-get (end of a pipeline run). */
void cmd_flush_pending(struct conn *c);
void cmd_conn_reset(struct conn *c); /* free MULTI queue and WATCHes */
size_t cmd_count(void);

#endif /* PKV_SERVER_H */
