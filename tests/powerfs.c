/* SPDX-License-Identifier: MIT */
/*
 * powerfs.c - the power-loss simulator described in powerfs.h.
 *
 * State, all under one lock (P.mu):
 *   - nodes: one per file or directory ever seen. A file node holds a private descriptor of its
 *     own (opened through /proc/self/fd when the library opens it), so its current contents can
 *     be read at the cut whatever happened to its names since, and its durable image. A
 *     directory node holds two name tables: `cur`, the names as the operations so far left them
 *     (used to tell which node an open, rename or unlink is about), and `dur`, the durable names.
 *   - fds: the library's descriptor -> node, set when an open returns, cleared before a close.
 *   - pending: the directory operations no directory fsync has covered yet, oldest first.
 *   - clock: a counter that orders sync starts and operation completions.
 * A file node's buffers are released once no name (current or durable) and no pending operation
 * refers to it: nothing can bring it back any more.
 *
 * The hooks never hold the lock while reading a file for a sync (that copy is made through a
 * duplicate of the node's descriptor, taken under the lock), and every hook checks the crashed
 * flag right after taking the lock (powerfs.h: the race the cut must win).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "powerfs.h"

#define PF_MAX_FDS 65536
#define PF_SECTOR 512u

struct pf_node;

struct pf_name {
	char *name;
	struct pf_node *node;
};

struct pf_names {
	struct pf_name *v;
	size_t n, cap;
};

struct pf_node {
	bool dir;
	char *path; /* directories: the path the library uses; files: the first one seen */
	/* files */
	int pfd; /* private read-only descriptor; -1 once released */
	unsigned char *dur; /* durable contents (NULL with dur_len 0: an empty file) */
	size_t dur_len;
	uint64_t dur_stamp; /* clock at the start of the sync that made dur durable */
	unsigned ncur, ndur, npend; /* names and pending operations that refer to it */
	bool released;
	/* directories */
	struct pf_names cur, durn;
	/* the cut */
	unsigned char *img; /* contents chosen for the image (computed once per node) */
	size_t img_len;
	bool img_done;
	struct pf_node *next; /* every node */
};

/* A pending directory operation on one directory: create (to), unlink (from) or rename. */
struct pf_op {
	struct pf_node *dir;
	char *from; /* name removed, or NULL */
	char *to; /* name (re)pointed at @node, or NULL */
	struct pf_node *node;
	uint64_t stamp; /* clock when it completed */
};

/* What a sync's pre hook hands to its post hook (same thread, no operation in between). */
struct pf_staged {
	struct pf_node *node;
	uint64_t stamp;
	unsigned char *buf;
	size_t len;
	bool ok;
};

static struct {
	pthread_mutex_t mu;
	struct powerfs_cfg cfg;
	char root[4096];
	bool installed, crashed;
	uint64_t clock;
	struct pf_node *nodes;
	struct pf_node *root_node;
	struct pf_node *fds[PF_MAX_FDS];
	struct pf_op **pend;
	size_t npend, cappend;
	uint64_t syncs, dirsyncs;
	uint64_t rng;
} P = { .mu = PTHREAD_MUTEX_INITIALIZER };

static _Thread_local struct pf_staged tl_staged;
static _Thread_local uint64_t tl_dirsync_stamp;
static _Thread_local struct pf_node *tl_dirsync_node;

/* ---- small helpers -------------------------------------------------------------------------- */

static uint64_t pf_rand(void)
{
	uint64_t x = (P.rng += 0x9E3779B97F4A7C15ull);

	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
	return x ^ (x >> 31);
}

static uint64_t pf_below(uint64_t n)
{
	return n ? pf_rand() % n : 0;
}

/* Out of memory inside a hook: the simulation cannot go on truthfully. */
__attribute__((noreturn)) static void pf_die(const char *what)
{
	static const char msg[] = "powerfs: out of memory\n";

	(void)what;
	if (write(2, msg, sizeof(msg) - 1) < 0) {
		/* nothing more to do */
	}
	_exit(99);
}

static void *pf_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (p == NULL)
		pf_die("malloc");
	return p;
}

static char *pf_xstrdup(const char *s)
{
	char *p = strdup(s);

	if (p == NULL)
		pf_die("strdup");
	return p;
}

/* After the cut: never return (the cutting thread ends the process). Called with P.mu held. */
__attribute__((noreturn)) static void pf_block_locked(void)
{
	pthread_mutex_unlock(&P.mu);
	for (;;)
		pause();
}

static void pf_lock(void)
{
	pthread_mutex_lock(&P.mu);
	if (__atomic_load_n(&P.crashed, __ATOMIC_ACQUIRE))
		pf_block_locked();
}

/* Read all of @fd into a new buffer; 0 or -errno. */
static int pf_read_all(int fd, unsigned char **buf_out, size_t *len_out)
{
	struct stat st;
	unsigned char *buf;
	size_t len, got = 0;

	if (fstat(fd, &st) != 0)
		return -errno;
	len = (size_t)st.st_size;
	buf = pf_xmalloc(len);
	while (got < len) {
		ssize_t n = pread(fd, buf + got, len - got, (off_t)got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			free(buf);
			return -e;
		}
		if (n == 0)
			break; /* shrunk meanwhile: what is there is the contents */
		got += (size_t)n;
	}
	*buf_out = buf;
	*len_out = got;
	return 0;
}

/* ---- name tables ---------------------------------------------------------------------------- */

static struct pf_name *names_find(struct pf_names *t, const char *name)
{
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->v[i].name, name) == 0)
			return &t->v[i];
	return NULL;
}

static struct pf_node *names_get(struct pf_names *t, const char *name)
{
	struct pf_name *e = names_find(t, name);

	return e ? e->node : NULL;
}

/* Remove @name; returns the node it named, or NULL. */
static struct pf_node *names_del(struct pf_names *t, const char *name)
{
	struct pf_name *e = names_find(t, name);
	struct pf_node *n;

	if (e == NULL)
		return NULL;
	n = e->node;
	free(e->name);
	*e = t->v[--t->n];
	return n;
}

/* Point @name at @node; returns the node it named before, or NULL. */
static struct pf_node *names_set(struct pf_names *t, const char *name, struct pf_node *node)
{
	struct pf_name *e = names_find(t, name);
	struct pf_node *old;

	if (e) {
		old = e->node;
		e->node = node;
		return old;
	}
	if (t->n == t->cap) {
		size_t ncap = t->cap ? t->cap * 2 : 8;
		struct pf_name *nv = realloc(t->v, ncap * sizeof(*nv));

		if (nv == NULL)
			pf_die("realloc");
		t->v = nv;
		t->cap = ncap;
	}
	t->v[t->n++] = (struct pf_name){ pf_xstrdup(name), node };
	return NULL;
}

static void names_copy(struct pf_names *dst, const struct pf_names *src)
{
	dst->n = 0;
	for (size_t i = 0; i < src->n; i++)
		names_set(dst, src->v[i].name, src->v[i].node);
}

/* ---- nodes ---------------------------------------------------------------------------------- */

static struct pf_node *node_new(bool dir, const char *path, int pfd)
{
	struct pf_node *n = calloc(1, sizeof(*n));

	if (n == NULL)
		pf_die("calloc");
	n->dir = dir;
	n->path = pf_xstrdup(path);
	n->pfd = pfd;
	n->next = P.nodes;
	P.nodes = n;
	return n;
}

/* Nothing can name @n any more: let its descriptor and images go. */
static void node_maybe_release(struct pf_node *n)
{
	if (n == NULL || n->dir || n->released || n->ncur || n->ndur || n->npend)
		return;
	n->released = true;
	if (n->pfd >= 0)
		close(n->pfd);
	n->pfd = -1;
	free(n->dur);
	n->dur = NULL;
	n->dur_len = 0;
}

static struct pf_node *dir_by_path(const char *path)
{
	for (struct pf_node *n = P.nodes; n; n = n->next)
		if (n->dir && strcmp(n->path, path) == 0)
			return n;
	return NULL;
}

/*
 * Split @path into its directory node and last component (pointing into @path). NULL if the
 * path is not inside a directory the simulator follows.
 */
static struct pf_node *split(const char *path, char *dirbuf, size_t cap, const char **name)
{
	const char *slash = path ? strrchr(path, '/') : NULL;
	size_t n;

	if (slash == NULL || slash[1] == '\0')
		return NULL;
	n = (size_t)(slash - path);
	if (n >= cap)
		return NULL;
	memcpy(dirbuf, path, n);
	dirbuf[n] = '\0';
	*name = slash + 1;
	return dir_by_path(dirbuf);
}

/* ---- pending directory operations --------------------------------------------------------- */

static void op_add(struct pf_node *dir, const char *from, const char *to, struct pf_node *node)
{
	struct pf_op *op = pf_xmalloc(sizeof(*op));

	op->dir = dir;
	op->from = from ? pf_xstrdup(from) : NULL;
	op->to = to ? pf_xstrdup(to) : NULL;
	op->node = to ? node : NULL;
	op->stamp = ++P.clock;
	if (op->node)
		op->node->npend++;
	if (P.npend == P.cappend) {
		size_t ncap = P.cappend ? P.cappend * 2 : 64;
		struct pf_op **nv = realloc(P.pend, ncap * sizeof(*nv));

		if (nv == NULL)
			pf_die("realloc");
		P.pend = nv;
		P.cappend = ncap;
	}
	P.pend[P.npend++] = op;
}

/* Apply @op to the name table @t (a directory's durable names, or a copy of them at the cut). */
static void op_apply(const struct pf_op *op, struct pf_names *t, bool count)
{
	struct pf_node *gone = NULL, *replaced = NULL;

	if (op->from)
		gone = names_del(t, op->from);
	if (op->to) {
		replaced = names_set(t, op->to, op->node);
		if (count && op->node)
			op->node->ndur++;
	}
	if (count) {
		if (gone) {
			gone->ndur--;
			node_maybe_release(gone);
		}
		if (replaced) {
			replaced->ndur--;
			node_maybe_release(replaced);
		}
	}
}

static void op_free(struct pf_op *op)
{
	struct pf_node *n = op->node;

	if (n) {
		n->npend--;
		node_maybe_release(n);
	}
	free(op->from);
	free(op->to);
	free(op);
}

/* A fsync of @dir that started at @stamp completed: what completed before is durable. */
static void dir_synced(struct pf_node *dir, uint64_t stamp)
{
	size_t k = 0;

	for (size_t i = 0; i < P.npend; i++) {
		struct pf_op *op = P.pend[i];

		if (op->dir == dir && op->stamp < stamp) {
			op_apply(op, &dir->durn, true);
			op_free(op);
		} else {
			P.pend[k++] = op;
		}
	}
	P.npend = k;
	P.dirsyncs++;
}

/* ---- the hooks ---------------------------------------------------------------------------- */

static bool fd_ok(int fd)
{
	return fd >= 0 && fd < PF_MAX_FDS;
}

static void on_open(const struct ffs_call *c)
{
	char dirbuf[4096], proc[64];
	const char *name;
	struct pf_node *dir, *n;
	struct stat st;
	int pfd;

	if (c->result < 0 || !fd_ok(c->fd) || c->path == NULL)
		return;
	if (strcmp(c->path, P.root) == 0) {
		P.fds[c->fd] = P.root_node;
		return;
	}
	dir = split(c->path, dirbuf, sizeof(dirbuf), &name);
	if (dir == NULL || fstat(c->fd, &st) != 0)
		return;
	if (S_ISDIR(st.st_mode)) {
		P.fds[c->fd] = dir_by_path(c->path);
		return;
	}
	if (!S_ISREG(st.st_mode))
		return;
	n = names_get(&dir->cur, name);
	if (n == NULL) {
		/* The open created the file: a new node, its name pending. */
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", c->fd);
		pfd = open(proc, O_RDONLY | O_CLOEXEC);
		if (pfd < 0)
			pf_die("reopen");
		n = node_new(false, c->path, pfd);
		names_set(&dir->cur, name, n);
		n->ncur++;
		op_add(dir, NULL, name, n);
	}
	P.fds[c->fd] = n;
}

static void on_mkdir(const struct ffs_call *c)
{
	char dirbuf[4096];
	const char *name;
	struct pf_node *parent, *n;

	if (c->result < 0)
		return;
	parent = split(c->path, dirbuf, sizeof(dirbuf), &name);
	if (parent == NULL || dir_by_path(c->path) != NULL)
		return;
	n = node_new(true, c->path, -1);
	names_set(&parent->cur, name, n);
	n->ncur++;
	op_add(parent, NULL, name, n);
}

static void on_rename(const struct ffs_call *c)
{
	char da[4096], db[4096];
	const char *na, *nb;
	struct pf_node *dira, *dirb, *n, *replaced;

	if (c->result < 0)
		return;
	dira = split(c->path, da, sizeof(da), &na);
	dirb = split(c->path2, db, sizeof(db), &nb);
	if (dira == NULL || dirb == NULL)
		return;
	n = names_del(&dira->cur, na);
	if (n == NULL)
		return; /* not a file the simulator follows */
	replaced = names_set(&dirb->cur, nb, n);
	if (replaced) {
		replaced->ncur--;
		node_maybe_release(replaced);
	}
	if (dira == dirb) {
		op_add(dira, na, nb, n);
	} else {
		/* Two directories, each made durable by its own fsync: the model lets the new
		 * name survive without the old one's removal (both names), never the reverse. */
		op_add(dirb, NULL, nb, n);
		op_add(dira, na, NULL, NULL);
	}
}

static void on_unlink(const struct ffs_call *c)
{
	char dirbuf[4096];
	const char *name;
	struct pf_node *dir, *n;

	if (c->result < 0)
		return;
	dir = split(c->path, dirbuf, sizeof(dirbuf), &name);
	if (dir == NULL)
		return;
	n = names_del(&dir->cur, name);
	if (n == NULL)
		return;
	op_add(dir, name, NULL, NULL);
	n->ncur--;
	node_maybe_release(n);
}

static void pf_pre(void *ctx, const struct ffs_call *c)
{
	struct pf_node *n;
	uint64_t stamp;
	int fd;

	(void)ctx;
	if (c->injected == FFS_CRASH)
		return; /* the crash hook runs next */
	pf_lock();
	switch (c->op) {
	case FFS_CLOSE:
		/* Before the descriptor number can be reused by another thread's open. */
		if (fd_ok(c->fd))
			P.fds[c->fd] = NULL;
		break;
	case FFS_FDATASYNC:
	case FFS_FSYNC:
		n = fd_ok(c->fd) ? P.fds[c->fd] : NULL;
		if (n == NULL)
			break;
		stamp = ++P.clock;
		if (n->dir) {
			tl_dirsync_node = n;
			tl_dirsync_stamp = stamp;
			break;
		}
		/* What the sync is sure to write: the contents as it starts. Read through a
		 * duplicate of the node's own descriptor (read-only whatever the library's is),
		 * taken under the lock: a release may close the original meanwhile. */
		fd = n->pfd >= 0 ? fcntl(n->pfd, F_DUPFD_CLOEXEC, 0) : -1;
		pthread_mutex_unlock(&P.mu);
		tl_staged = (struct pf_staged){ .node = n, .stamp = stamp };
		tl_staged.ok = fd >= 0 && pf_read_all(fd, &tl_staged.buf, &tl_staged.len) == 0;
		if (fd >= 0)
			close(fd);
		return;
	default:
		break;
	}
	pthread_mutex_unlock(&P.mu);
}

static void pf_post(void *ctx, const struct ffs_call *c)
{
	struct pf_staged st;

	(void)ctx;
	pf_lock();
	switch (c->op) {
	case FFS_OPEN:
		on_open(c);
		break;
	case FFS_MKDIR:
		on_mkdir(c);
		break;
	case FFS_RENAME:
		on_rename(c);
		break;
	case FFS_UNLINK:
		on_unlink(c);
		break;
	case FFS_FDATASYNC:
	case FFS_FSYNC:
		if (tl_dirsync_node) {
			if (c->result == 0)
				dir_synced(tl_dirsync_node, tl_dirsync_stamp);
			tl_dirsync_node = NULL;
			break;
		}
		st = tl_staged;
		memset(&tl_staged, 0, sizeof(tl_staged));
		if (st.node == NULL)
			break;
		if (c->result == 0 && st.ok && !st.node->released &&
		    st.stamp > st.node->dur_stamp) {
			/* A later-started sync may have completed first: keep the newest. */
			free(st.node->dur);
			st.node->dur = st.buf;
			st.node->dur_len = st.len;
			st.node->dur_stamp = st.stamp;
			st.buf = NULL;
		}
		if (c->result == 0)
			P.syncs++;
		free(st.buf);
		break;
	default:
		break;
	}
	pthread_mutex_unlock(&P.mu);
}

__attribute__((noreturn)) static void pf_crash(void *ctx, const struct ffs_call *c)
{
	(void)ctx;
	powerfs_cut(c);
}

/* ---- install: everything already there is durable ----------------------------------------- */

static int scan(struct pf_node *dir)
{
	DIR *d = opendir(dir->path);
	struct dirent *e;
	char path[4096];
	int r = 0;

	if (d == NULL)
		return -errno;
	while (r == 0 && (e = readdir(d)) != NULL) {
		struct pf_node *n;
		struct stat st;

		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir->path, e->d_name) >=
		    sizeof(path)) {
			r = -ENAMETOOLONG;
			break;
		}
		if (lstat(path, &st) != 0) {
			r = -errno;
			break;
		}
		if (S_ISDIR(st.st_mode)) {
			n = node_new(true, path, -1);
			r = scan(n);
		} else if (S_ISREG(st.st_mode)) {
			int fd = open(path, O_RDONLY | O_CLOEXEC);

			if (fd < 0) {
				r = -errno;
				break;
			}
			n = node_new(false, path, fd);
			r = pf_read_all(fd, &n->dur, &n->dur_len);
		} else {
			continue;
		}
		names_set(&dir->cur, e->d_name, n);
		names_set(&dir->durn, e->d_name, n);
		n->ncur++;
		n->ndur++;
	}
	closedir(d);
	return r;
}

int powerfs_install(const struct powerfs_cfg *cfg)
{
	struct ffs_hooks h = { .pre = pf_pre, .post = pf_post, .crash = pf_crash };
	size_t len;
	int r;

	if (cfg == NULL || cfg->root == NULL || cfg->out == NULL || P.installed ||
	    (cfg->page_bytes % PF_SECTOR) != 0)
		return -EINVAL;
	len = strlen(cfg->root);
	while (len > 1 && cfg->root[len - 1] == '/')
		len--;
	if (len >= sizeof(P.root))
		return -ENAMETOOLONG;
	memcpy(P.root, cfg->root, len);
	P.root[len] = '\0';
	P.cfg = *cfg;
	if (P.cfg.page_bytes == 0)
		P.cfg.page_bytes = 4096;
	if (P.cfg.exit_code == 0)
		P.cfg.exit_code = POWERFS_EXIT_CODE;
	P.rng = cfg->seed;
	P.root_node = node_new(true, P.root, -1);
	r = scan(P.root_node);
	if (r < 0)
		return r;
	P.installed = true;
	ffs_install();
	ffs_set_sync_elide(cfg->elide_syncs);
	ffs_set_hooks(&h);
	return 0;
}

/* ---- the cut -------------------------------------------------------------------------------- */

/* Choose the image of file @n (powerfs.h, step 2). */
static void choose(struct pf_node *n, struct powerfs_report *rep)
{
	unsigned char *cur = NULL, *img;
	size_t cur_len = 0, len, pb = P.cfg.page_bytes;

	if (n->img_done)
		return;
	n->img_done = true;
	if (n->pfd < 0 || pf_read_all(n->pfd, &cur, &cur_len) != 0) {
		cur = NULL; /* released (cannot happen for a named node) or unreadable: old */
		cur_len = n->dur_len;
	}
	len = n->dur_len;
	if (cur && cur_len != n->dur_len) {
		if (pf_below(2)) {
			len = cur_len;
			rep->sizes_new++;
		} else {
			rep->sizes_old++;
		}
	}
	img = pf_xmalloc(len);
	for (size_t off = 0; off < len; off += pb) {
		size_t end = off + pb < len ? off + pb : len, torn;
		bool same = true;

		/* Old bytes (zeros beyond the durable size) first. */
		for (size_t i = off; i < end; i++)
			img[i] = i < n->dur_len ? n->dur[i] : 0;
		if (cur == NULL)
			continue;
		for (size_t i = off; i < end && same; i++)
			same = img[i] == (i < cur_len ? cur[i] : 0);
		if (same) {
			rep->pages_same++;
			continue;
		}
		switch (pf_below(8)) {
		case 0:
		case 1:
		case 2: /* kept old: the new data is dropped */
			rep->pages_old++;
			continue;
		case 3:
		case 4:
		case 5: /* taken new */
			torn = end - off;
			rep->pages_new++;
			break;
		default: /* torn: a prefix of sectors new */
			torn = (1 + pf_below(pb / PF_SECTOR - (pb > PF_SECTOR))) * PF_SECTOR;
			if (torn >= end - off) {
				torn = end - off;
				rep->pages_new++;
			} else {
				rep->pages_torn++;
			}
			break;
		}
		for (size_t i = off; i < off + torn; i++)
			img[i] = i < cur_len ? cur[i] : 0;
	}
	free(cur);
	n->img = img;
	n->img_len = len;
}

static int write_file(const char *path, const unsigned char *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	size_t done = 0;
	int r = 0;

	if (fd < 0)
		return -errno;
	while (done < len) {
		ssize_t n = write(fd, buf + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = n < 0 ? -errno : -EIO;
			break;
		}
		done += (size_t)n;
	}
	if (close(fd) != 0 && r == 0)
		r = -errno;
	return r;
}

/* Write directory @dir (its names in the image are @dir->cur, reused at the cut) to @out. */
static int write_dir(struct pf_node *dir, const char *out, struct powerfs_report *rep)
{
	char path[4096];
	int r;

	if (mkdir(out, 0755) != 0)
		return -errno;
	rep->dirs++;
	for (size_t i = 0; i < dir->cur.n; i++) {
		struct pf_node *n = dir->cur.v[i].node;

		if ((size_t)snprintf(path, sizeof(path), "%s/%s", out, dir->cur.v[i].name) >=
		    sizeof(path))
			return -ENAMETOOLONG;
		if (n->dir) {
			r = write_dir(n, path, rep);
		} else {
			choose(n, rep);
			r = write_file(path, n->img, n->img_len);
			rep->files++;
		}
		if (r < 0)
			return r;
	}
	return 0;
}

bool powerfs_cut_started(void)
{
	return __atomic_load_n(&P.crashed, __ATOMIC_ACQUIRE);
}

void powerfs_cut(const struct ffs_call *c)
{
	struct powerfs_report rep;
	size_t keep;

	/* Whoever gets here second blocks in pf_lock for good (or here, if it is the same cut). */
	pf_lock();
	__atomic_store_n(&P.crashed, true, __ATOMIC_RELEASE);
	memset(&rep, 0, sizeof(rep));
	rep.op_index = c ? c->index : 0;
	rep.op_kind = c ? (int32_t)c->op : -1;
	rep.syncs = P.syncs;
	rep.dirsyncs = P.dirsyncs;

	/* 1. Names: the durable ones, then a prefix of the pending operations. The current
	 * tables are no longer needed: they become the image's. */
	for (struct pf_node *n = P.nodes; n; n = n->next)
		if (n->dir)
			names_copy(&n->cur, &n->durn);
	keep = (size_t)pf_below(P.npend + 1);
	for (size_t i = 0; i < keep; i++)
		op_apply(P.pend[i], &P.pend[i]->dir->cur, false);
	rep.dirops_applied = keep;
	rep.dirops_dropped = P.npend - keep;

	/* 2. Contents, while writing the tree. */
	rep.error = write_dir(P.root_node, P.cfg.out, &rep);
	if (P.cfg.on_cut)
		P.cfg.on_cut(P.cfg.ctx, &rep);
	_exit(P.cfg.exit_code);
}
