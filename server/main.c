/* SPDX-License-Identifier: MIT */
/*
 * main.c - pkv-server's entry: options, the log, the listening sockets, the store, signals.
 *
 * Start-up: parse the options (a bad one is a usage error, exit 2); refuse a non-loopback bind
 * without --requirepass (protected mode, exit 2); open the store (exit 1 on failure: a locked
 * directory, damaged files); listen; start the loops. Shutdown on SIGTERM/SIGINT: the loops send
 * what they answered and close their clients, then pkv_close() makes every acknowledged write
 * durable; exit 0 (1 if closing the store failed).
 */
#include "server.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

struct server srv;

uint64_t srv_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t srv_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

bool srv_reserve(void *pv, size_t *cap, size_t need, size_t size, size_t first)
{
	size_t ncap = *cap ? *cap : first;
	void *v, *nv;

	if (need <= *cap)
		return true;
	while (ncap < need)
		ncap *= 2;
	memcpy(&v, pv, sizeof(v)); /* *pv is a pointer to the element type: copied, not aliased */
	nv = realloc(v, ncap * size);
	if (nv == NULL)
		return false;
	memcpy(pv, &nv, sizeof(nv));
	*cap = ncap;
	return true;
}

void srv_log(int level, const char *fmt, ...)
{
	static const char marks[] = ".-*#";
	char msg[1024], when[64];
	struct timespec ts;
	struct tm tm;
	va_list ap;

	if (level < atomic_load_explicit(&srv.cfg.loglevel, memory_order_relaxed))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof(when), "%d %b %Y %H:%M:%S", &tm);
	/* one write per line, so lines of several threads do not interleave */
	fprintf(stderr, "%d:M %s.%03ld %c %s\n", (int)getpid(), when, ts.tv_nsec / 1000000,
		marks[level & 3], msg);
}

static void store_log(void *ctx, int level, const char *msg)
{
	(void)ctx;
	srv_log(level == PKV_LOG_ERROR ? LL_WARNING :
		level == PKV_LOG_WARN  ? LL_NOTICE :
					 LL_VERBOSE,
		"store: %s", msg);
}

/* ---- options ----------------------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: pkv-server (--dir DIR | --memory) [options]\n"
		"\n"
		"A Redis-protocol (RESP2/RESP3) server on a pkv store.\n"
		"\n"
		"  --dir DIR              serve the store in DIR (created if missing)\n"
		"  --memory               serve an in-memory store (nothing on disk)\n"
		"  --port N               TCP port (default 6379; 0: no TCP listener)\n"
		"  --bind ADDR            address to listen on (default 127.0.0.1); a non-loopback\n"
		"                         address needs --requirepass (protected mode)\n"
		"  --unixsocket PATH      also listen on a Unix socket\n"
		"  --unixsocketperm OCTAL its permissions (default 700)\n"
		"  --threads N            event-loop threads (default: the number of CPUs)\n"
		"  --durability MODE      process (default), power (a write's reply leaves once it\n"
		"                         survives power loss) or periodic (fsync every interval)\n"
		"  --sync-interval MS     the periodic fsync's interval (default: the store's, 100)\n"
		"  --requirepass PASS     clients must AUTH (or HELLO AUTH) with PASS\n"
		"  --maxclients N         most clients at once (default 10000); reduced at start to\n"
		"                         the open files limit less what the server keeps for itself\n"
		"  --timeout S            close clients idle for S seconds (default 0: never)\n"
		"  --client-query-buffer-limit BYTES   unparsed input per client (default 256mb)\n"
		"  --client-output-buffer-limit BYTES  unsent replies per client (default 256mb)\n"
		"  --loglevel LEVEL       debug, verbose, notice (default) or warning\n"
		"  --help                 this text\n"
		"\n"
		"Sizes take a k, kb, m, mb, g or gb suffix. Stop with SIGTERM or SIGINT: the store is\n"
		"closed cleanly (every acknowledged write durable).\n");
}

static void bad_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void bad_usage(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "pkv-server: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n(pkv-server --help lists the options)\n");
	exit(2);
}

static long long num_arg(const char *opt, const char *s, long long lo, long long hi)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		bad_usage("%s: '%s' is not a number in %lld..%lld", opt, s, lo, hi);
	return v;
}

static size_t size_arg(const char *opt, const char *s)
{
	char *end;
	unsigned long long v, mul = 1;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || s[0] == '-')
		bad_usage("%s: '%s' is not a size", opt, s);
	if (!strcasecmp(end, "k") || !strcasecmp(end, "kb"))
		mul = 1024;
	else if (!strcasecmp(end, "m") || !strcasecmp(end, "mb"))
		mul = 1024 * 1024;
	else if (!strcasecmp(end, "g") || !strcasecmp(end, "gb"))
		mul = 1024ull * 1024 * 1024;
	else if (*end)
		bad_usage("%s: '%s' is not a size", opt, s);
	if (v > SIZE_MAX / mul || v * mul < 2 * PKV_MAX_VALUE)
		bad_usage("%s: '%s' is out of range (at least %u bytes)", opt, s,
			  2 * PKV_MAX_VALUE);
	return (size_t)(v * mul);
}

enum {
	OPT_DIR = 256,
	OPT_MEMORY,
	OPT_PORT,
	OPT_BIND,
	OPT_UNIX,
	OPT_UNIXPERM,
	OPT_THREADS,
	OPT_DURABILITY,
	OPT_SYNC,
	OPT_PASS,
	OPT_MAXCLIENTS,
	OPT_TIMEOUT,
	OPT_QLIMIT,
	OPT_OLIMIT,
	OPT_LOGLEVEL,
	OPT_HELP,
};

static void parse_options(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, OPT_DIR },
		{ "memory", no_argument, NULL, OPT_MEMORY },
		{ "port", required_argument, NULL, OPT_PORT },
		{ "bind", required_argument, NULL, OPT_BIND },
		{ "unixsocket", required_argument, NULL, OPT_UNIX },
		{ "unixsocketperm", required_argument, NULL, OPT_UNIXPERM },
		{ "threads", required_argument, NULL, OPT_THREADS },
		{ "durability", required_argument, NULL, OPT_DURABILITY },
		{ "sync-interval", required_argument, NULL, OPT_SYNC },
		{ "requirepass", required_argument, NULL, OPT_PASS },
		{ "maxclients", required_argument, NULL, OPT_MAXCLIENTS },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "client-query-buffer-limit", required_argument, NULL, OPT_QLIMIT },
		{ "client-output-buffer-limit", required_argument, NULL, OPT_OLIMIT },
		{ "loglevel", required_argument, NULL, OPT_LOGLEVEL },
		{ "help", no_argument, NULL, OPT_HELP },
		{ NULL, 0, NULL, 0 },
	};
	struct srv_config *cfg = &srv.cfg;
	bool memory = false;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int o;

	cfg->port = 6379;
	cfg->bind = "127.0.0.1";
	cfg->unixsocketperm = 0700;
	cfg->threads = ncpu > 0 ? (int)(ncpu > 64 ? 64 : ncpu) : 1;
	cfg->durability = PKV_DURABLE_PROCESS;
	atomic_store(&cfg->maxclients, 10000);
	atomic_store(&cfg->loglevel, LL_NOTICE);
	cfg->query_limit = 256u * 1024 * 1024;
	cfg->output_limit = 256u * 1024 * 1024;

	opterr = 0;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case OPT_DIR:
			if (!optarg[0])
				bad_usage("--dir: empty path");
			cfg->dir = optarg;
			break;
		case OPT_MEMORY:
			memory = true;
			break;
		case OPT_PORT:
			cfg->port = (int)num_arg("--port", optarg, 0, 65535);
			break;
		case OPT_BIND:
			cfg->bind = optarg;
			break;
		case OPT_UNIX:
			if (strlen(optarg) >= sizeof(((struct sockaddr_un *)0)->sun_path) ||
			    !optarg[0])
				bad_usage("--unixsocket: bad path '%s'", optarg);
			cfg->unixsocket = optarg;
			break;
		case OPT_UNIXPERM: {
			char *end;
			unsigned long v = strtoul(optarg, &end, 8);

			if (end == optarg || *end || v > 0777)
				bad_usage("--unixsocketperm: '%s' is not an octal mode", optarg);
			cfg->unixsocketperm = (unsigned)v;
			break;
		}
		case OPT_THREADS:
			cfg->threads = (int)num_arg("--threads", optarg, 1, 256);
			break;
		case OPT_DURABILITY:
			if (!strcmp(optarg, "process"))
				cfg->durability = PKV_DURABLE_PROCESS;
			else if (!strcmp(optarg, "power"))
				cfg->durability = PKV_DURABLE_POWER;
			else if (!strcmp(optarg, "periodic"))
				cfg->durability = PKV_DURABLE_PERIODIC;
			else
				bad_usage("--durability: '%s' is not process, power or periodic",
					  optarg);
			break;
		case OPT_SYNC:
			cfg->sync_interval_ms = (unsigned)num_arg("--sync-interval", optarg, 1,
								  3600000);
			break;
		case OPT_PASS:
			if (!optarg[0])
				bad_usage("--requirepass: empty password");
			cfg->requirepass = optarg;
			break;
		case OPT_MAXCLIENTS:
			atomic_store(&cfg->maxclients,
				     (unsigned)num_arg("--maxclients", optarg, 1, 1000000));
			break;
		case OPT_TIMEOUT:
			atomic_store(&cfg->timeout_s,
				     (unsigned)num_arg("--timeout", optarg, 0, 100000000));
			break;
		case OPT_QLIMIT:
			cfg->query_limit = size_arg("--client-query-buffer-limit", optarg);
			break;
		case OPT_OLIMIT:
			cfg->output_limit = size_arg("--client-output-buffer-limit", optarg);
			break;
		case OPT_LOGLEVEL:
			if (!strcmp(optarg, "debug"))
				atomic_store(&cfg->loglevel, LL_DEBUG);
			else if (!strcmp(optarg, "verbose"))
				atomic_store(&cfg->loglevel, LL_VERBOSE);
			else if (!strcmp(optarg, "notice"))
				atomic_store(&cfg->loglevel, LL_NOTICE);
			else if (!strcmp(optarg, "warning"))
				atomic_store(&cfg->loglevel, LL_WARNING);
			else
				bad_usage(
					"--loglevel: '%s' is not debug, verbose, notice or warning",
					optarg);
			break;
		case OPT_HELP:
		case 'h':
			usage(stdout);
			exit(0);
		case ':':
			bad_usage("option %s needs a value", argv[optind - 1]);
		default:
			if (optopt >= OPT_DIR)
				bad_usage("option %s needs a value", argv[optind - 1]);
			bad_usage("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		bad_usage("unexpected argument '%s'", argv[optind]);
	if (memory == (cfg->dir != NULL))
		bad_usage("give exactly one of --dir DIR and --memory");
	if (cfg->port == 0 && !cfg->unixsocket)
		bad_usage("--port 0 without --unixsocket: nothing to listen on");
}

/* ---- listening --------------------------------------------------------------------------- */

static bool is_loopback(const struct addrinfo *ai)
{
	if (ai->ai_family == AF_INET) {
		const struct sockaddr_in *a = (const void *)ai->ai_addr;

		return (ntohl(a->sin_addr.s_addr) >> 24) == 127;
	}
	if (ai->ai_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const void *)ai->ai_addr;

		return IN6_IS_ADDR_LOOPBACK(&a->sin6_addr);
	}
	return false;
}

static int resolve_bind(struct addrinfo **out)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	char port[16];
	int rc;

	snprintf(port, sizeof(port), "%d", srv.cfg.port);
	rc = getaddrinfo(srv.cfg.bind, port, &hints, out);
	if (rc) {
		fprintf(stderr, "pkv-server: --bind %s: %s\n", srv.cfg.bind, gai_strerror(rc));
		return -1;
	}
	return 0;
}

static int listen_tcp(const struct addrinfo *ai)
{
	int one = 1;
	int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ai->ai_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 511) < 0) {
		int e = -errno;

		close(fd);
		return e;
	}
	return fd;
}

static int listen_unix(const char *path, unsigned perm)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	unlink(path); /* a stale socket of an earlier run; the store's LOCK guards the real thing */
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || chmod(path, perm) < 0 ||
	    listen(fd, 511) < 0) {
		int e = -errno;

		close(fd);
		return e;
	}
	return fd;
}

/* ---- file descriptors -------------------------------------------------------------------- */

/*
 * Every client holds one descriptor; so does everything else of the process. The reserve is
 * what the process needs besides its clients: what is open once the store, the listeners and
 * the loops' epoll and event fds are set up (counted, not guessed: the store keeps a file per
 * WAL lane), plus SRV_FD_SPARE for what opens later (the store's new segments and snapshot
 * during a compaction or BGSAVE, the fd of a connection being refused, the connections waiting
 * for a slot, SRV_ADMIT_WAIT_MAX). maxclients never passes RLIMIT_NOFILE minus the reserve, so
 * accept() does not run out of descriptors in normal operation (Redis keeps 32 for itself the
 * same way); when it does anyway, the loops back off (net.c).
 */
#define SRV_FD_SPARE (32 + SRV_ADMIT_WAIT_MAX)

static pthread_mutex_t fd_limit_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned fd_reserve;

/* Descriptors open now (/proc/self/fd less the one reading it); -1 if it cannot be read. */
static int count_open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;
}

/* Raise the soft RLIMIT_NOFILE toward @want, at most to the hard limit; returns the limit now. */
static rlim_t raise_nofile(rlim_t want)
{
	struct rlimit rl;
	rlim_t lo, hi;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 0;
	if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= want)
		return rl.rlim_cur;
	if (rl.rlim_max != RLIM_INFINITY && want > rl.rlim_max)
		want = rl.rlim_max;
	lo = rl.rlim_cur;
	rl.rlim_cur = want;
	if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
		return want;
	/*
	 * Refused although under the hard limit: an unlimited hard limit is still capped by
	 * fs.nr_open (EPERM). Find the highest value accepted between the current one and @want;
	 * a bisection, so a bounded number of tries (Redis steps down by 16 from the wanted value).
	 */
	hi = want;
	while (hi - lo > 1) {
		rlim_t mid = lo + (hi - lo) / 2;

		rl.rlim_cur = mid;
		if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
			lo = mid;
		else
			hi = mid;
	}
	rl.rlim_cur = lo;
	setrlimit(RLIMIT_NOFILE, &rl); /* the last successful try may not be the last try */
	return lo;
}

unsigned srv_clients_possible(unsigned want, rlim_t *limit)
{
	rlim_t lim;

	pthread_mutex_lock(&fd_limit_lock);
	lim = raise_nofile((rlim_t)want + fd_reserve);
	pthread_mutex_unlock(&fd_limit_lock);
	if (limit)
		*limit = lim; /* OUT: */
	if (lim <= fd_reserve)
		return 0;
	return lim - fd_reserve < want ? (unsigned)(lim - fd_reserve) : want;
}

/*
 * Measure the reserve (before the loops start: their 2 fds each are added by hand) and cap
 * --maxclients to what RLIMIT_NOFILE allows, raising the soft limit first if it can. One
 * warning line when it caps; an error when not even one client fits.
 */
static int fd_limit_setup(void)
{
	unsigned want = atomic_load(&srv.cfg.maxclients), n;
	int open_now = count_open_fds();
	struct rlimit before = { 0 };
	rlim_t lim;

	if (open_now < 0)
		open_now = 64; /* no /proc: a generous guess */
	fd_reserve = (unsigned)open_now + 2 * (unsigned)srv.nloops + SRV_FD_SPARE;
	getrlimit(RLIMIT_NOFILE, &before);
	n = srv_clients_possible(want, &lim);
	if (lim > before.rlim_cur)
		srv_log(LL_NOTICE, "open files limit raised from %llu to %llu",
			(unsigned long long)before.rlim_cur, (unsigned long long)lim);
	if (n == 0) {
		fprintf(stderr,
			"pkv-server: the open files limit (%llu) leaves no descriptor for clients: "
			"the server needs %u for itself; raise it (ulimit -n)\n",
			(unsigned long long)lim, fd_reserve);
		return -1;
	}
	if (n < want) {
		atomic_store(&srv.cfg.maxclients, n);
		srv_log(LL_WARNING,
			"open files limit %llu (%u kept for the server itself): maxclients reduced "
			"to %u (from %u); raise ulimit -n for more",
			(unsigned long long)lim, fd_reserve, n, want);
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct addrinfo *ai = NULL;
	pkv_options po;
	sigset_t sigs;
	int sig = 0, rc, exit_code = 0;
	ssize_t n;

	srv.tcp_fd = -1;
	srv.unix_fd = -1;
	parse_options(argc, argv);
	srv.nloops = srv.cfg.threads;
	srv.start_ms = srv_mono_ms();
	atomic_store(&srv.lastsave_s, (uint64_t)time(NULL));
	atomic_store(&srv.bgsave_ok, 1);
	pthread_mutex_init(&srv.clients_lock, NULL);
	n = readlink("/proc/self/exe", srv.executable, sizeof(srv.executable) - 1);
	srv.executable[n > 0 ? n : 0] = '\0';

	if (srv.cfg.port && resolve_bind(&ai) < 0)
		return 2;
	if (ai && !is_loopback(ai) && !srv.cfg.requirepass) {
		fprintf(stderr,
			"pkv-server: refusing to listen on %s without --requirepass (protected mode):\n"
			"anyone who can reach that address could read and change the store. Set a\n"
			"password with --requirepass, or bind a loopback address.\n",
			srv.cfg.bind);
		freeaddrinfo(ai);
		return 2;
	}

	/* Signals: every thread blocks them; the main thread waits for them with sigwait. */
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	pkv_options_default(&po);
	/*
	 * --durability power: the store writes in PROCESS mode and the server holds each write's
	 * reply until the write is durable (group commit shared by every connection), so no loop
	 * thread blocks in an fdatasync of its own.
	 */
	po.durability = srv.cfg.durability == PKV_DURABLE_POWER ? PKV_DURABLE_PROCESS :
								  srv.cfg.durability;
	if (srv.cfg.sync_interval_ms)
		po.sync_interval_ms = srv.cfg.sync_interval_ms;
	po.log_fn = store_log;
	rc = pkv_open(srv.cfg.dir, &po, &srv.db);
	if (rc < 0) {
		fprintf(stderr, "pkv-server: cannot open the store%s%s: %s\n",
			srv.cfg.dir ? " in " : "", srv.cfg.dir ? srv.cfg.dir : "",
			pkv_strerror(rc));
		if (ai)
			freeaddrinfo(ai);
		return 1;
	}
	if (ai) {
		srv.tcp_fd = listen_tcp(ai);
		freeaddrinfo(ai);
		if (srv.tcp_fd < 0) {
			fprintf(stderr, "pkv-server: cannot listen on %s:%d: %s\n", srv.cfg.bind,
				srv.cfg.port, strerror(-srv.tcp_fd));
			pkv_close(srv.db);
			return 1;
		}
	}
	if (srv.cfg.unixsocket) {
		srv.unix_fd = listen_unix(srv.cfg.unixsocket, srv.cfg.unixsocketperm);
		if (srv.unix_fd < 0) {
			fprintf(stderr, "pkv-server: cannot listen on %s: %s\n", srv.cfg.unixsocket,
				strerror(-srv.unix_fd));
			pkv_close(srv.db);
			return 1;
		}
	}
	if (fd_limit_setup() < 0) {
		pkv_close(srv.db);
		return 1;
	}
	rc = net_start_loops();
	if (rc < 0) {
		fprintf(stderr, "pkv-server: cannot start the event loops: %s\n", strerror(-rc));
		pkv_close(srv.db);
		return 1;
	}
	srv_log(LL_NOTICE, "pkv-server %s ready: %s%s%s port %d%s%s, %d threads, durability %s",
		SRV_VERSION, srv.cfg.dir ? "dir " : "memory", srv.cfg.dir ? srv.cfg.dir : "", "",
		srv.cfg.port, srv.cfg.unixsocket ? ", unix socket " : "",
		srv.cfg.unixsocket ? srv.cfg.unixsocket : "", srv.nloops,
		srv.cfg.durability == PKV_DURABLE_POWER	   ? "power" :
		srv.cfg.durability == PKV_DURABLE_PERIODIC ? "periodic" :
							     "process");

	while (sigwait(&sigs, &sig) != 0 || (sig != SIGTERM && sig != SIGINT))
		;
	srv_log(LL_NOTICE, "received %s: shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
	net_stop_loops();
	if (srv.tcp_fd >= 0)
		close(srv.tcp_fd);
	if (srv.unix_fd >= 0) {
		close(srv.unix_fd);
		unlink(srv.cfg.unixsocket);
	}
	if (atomic_exchange(&srv.bgsave_joinable, false))
		pthread_join(srv.bgsave_thread, NULL);
	rc = pkv_close(srv.db);
	if (rc < 0) {
		srv_log(LL_WARNING, "closing the store: %s", pkv_strerror(rc));
		exit_code = 1;
	} else {
		srv_log(LL_NOTICE, "store closed; bye");
	}
	pthread_mutex_destroy(&srv.clients_lock);
	return exit_code;
}
