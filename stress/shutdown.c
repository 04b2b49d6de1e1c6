/* SPDX-License-Identifier: MIT */
/*
 * shutdown.c - a real power cut: ext4 on a loop device is shut down under a writing store, as
 * if the machine had lost power, then mounted again (journal replay) and the store reopened.
 *
 * Set-up (root, loop devices and mkfs.ext4 from e2fsprogs; otherwise "SKIPPED: <reason>" and
 * exit MU_SKIP_CODE): a private mount namespace, an image file made with mkfs.ext4, attached to
 * a free loop device (LOOP_CTL_GET_FREE, LOOP_CONFIGURE) and mounted.
 *
 * Each cycle the parent forks a writer child that opens the store (PKV_DURABLE_PROCESS) and runs
 *   - writers 0 and 1: every write with PKV_WRITE_POWER (durable on return);
 *   - writer 2: plain PKV_DURABLE_PROCESS writes;
 *   - a thread calling pkv_compact() at random moments;
 * and reports every write that returned through a pipe. At a random moment the parent calls
 * ioctl(EXT4_IOC_SHUTDOWN, EXT4_GOING_FLAGS_NOLOGFLUSH) on the mount: from then on the file
 * system fails every operation and writes nothing more to the device, neither data nor
 * journal: what the device holds is what a power cut at that instant would have left. The
 * child must see its errors (-EIO, PKV_EREADONLY) and report them; it must not crash. Then the
 * parent kills it, unmounts, attaches and mounts the image again, and a verifier child reopens
 * the store and checks:
 *   P1  every POWER write that returned before the shutdown was called is there: writer w
 *       with A such steps (and A' >= A acknowledged in all) is in a state E(P), A <= P <= A' + 1
 *       (a call in flight may have reached the disk). A call that returned after the shutdown
 *       call began overlapped the cut, and a real power cut would not have let it return: its
 *       loss is counted ("returned after the shutdown call were lost"), not failed. (On Linux
 *       6.x such an fdatasync can return 0 while the unwritten-extent conversion of the blocks
 *       it wrote never reaches the journal: the records are on the device, in extents that
 *       still read as zeros.)
 *   P2  writer 2 (PROCESS) is in a state E(P) of its own history (a prefix: no holes, no
 *       resurrected deletes), and P is at least L, the number of its writes that had returned
 *       before a POWER write began that returned before the cut: those have smaller sequence
 *       numbers, and under POWER "the returned write and every write with a smaller sequence
 *       number are durable" (pkv.h). PROCESS writes above L may be lost: the figure "lost";
 *   P3  the store holds no other key, and a compaction after recovery keeps the state;
 *   P4  the child reported only clean errors after the shutdown and did not die of a signal;
 *       before the shutdown, no error at all.
 * The next cycle goes on from the recovered state.
 *
 * History of writer w (as in crashloop.c): step p belongs to operation n = p / 3:
 *   p = 3n put "w<w>/seq/<n>"; p = 3n + 1 del "w<w>/seq/<n-16>" (a no-op while n < 16);
 *   p = 3n + 2 put "w<w>/head", whose value names n.
 *
 * The parent never calls into pkv (it forks; pkv starts threads): children do all store work.
 *
 * Usage: shutdown [--cycles N] [--min-ms N] [--max-ms N] [--compact-ms N] [--image-mb N]
 *                 [--seed N] [--dir PARENT] [--keep] [--quiet]
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/types.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mount_util.h"
#include "pkv.h"
#include "stress_util.h"

/* <linux/ext4.h> is not in every kernel-headers package; the values are the kernel's ABI. */
#ifndef EXT4_IOC_SHUTDOWN
#define EXT4_IOC_SHUTDOWN _IOR('X', 125, __u32)
#endif
#ifndef EXT4_GOING_FLAGS_NOLOGFLUSH
#define EXT4_GOING_FLAGS_NOLOGFLUSH 0x2 /* stop at once: flush neither data nor the journal */
#endif

#define NPOWER 2 /* writers 0 .. NPOWER-1 write with PKV_WRITE_POWER */
#define PROC_W 2 /* writer 2 writes under PKV_DURABLE_PROCESS */
#define NWRITERS 3
#define WHO_COMPACT 3
#define WHO_OPEN 4
#define NWHO 5
#define VMAGIC 0x54554853u
#include "history.h" /* the writer history: keys, values, E(P) */
#define GRACE_MS 3000 /* how long the child gets to report its errors after the shutdown */

enum msg_type {
	MSG_ACK =
		1, /* val: steps done; aux (POWER writers): writer 2's steps done before this one */
	MSG_ERR = 2, /* val: the step; code: what the call returned */
	MSG_OPENED = 3,
	MSG_IDLE = 4 /* every thread of the child has stopped */
};

/* One write() of < PIPE_BUF bytes each: messages of different threads never interleave. */
struct msg {
	uint32_t type;
	uint32_t who;
	uint64_t val;
	uint64_t aux;
	int64_t code;
	double t; /* CLOCK_MONOTONIC when the call returned (the same clock in every process) */
};

struct vresult {
	uint64_t pos[NWRITERS];
	uint64_t passed, failed;
	uint64_t unacked_recovered; /* POWER writers found at E(A + 1) */
	uint64_t lost_after_cut; /* POWER steps that returned after the shutdown call, then lost */
	pkv_stats st;
	double open_ms;
};

/* What the verifier holds the store to. */
struct expect {
	uint64_t acked[NWRITERS]; /* steps whose call returned, whenever */
	uint64_t pre[NWRITERS]; /* steps whose call returned before the shutdown was called */
	uint64_t floor; /* P2's L: from POWER steps in pre[] only */
};

struct cfg {
	uint64_t cycles;
	double min_ms, max_ms;
	unsigned compact_ms;
	unsigned image_mb;
	uint64_t seed;
	const char *parent;
	bool keep;
	bool quiet;
};

static struct cfg cfg = {
	.cycles = 10,
	.min_ms = 30,
	.max_ms = 400,
	.compact_ms = 40,
	.image_mb = 64,
	.seed = 1,
	.parent = NULL,
	.keep = false,
	.quiet = false,
};

static char work[4096]; /* temporary directory: the image and the mount point */
static char image[4200], cut_image[4300], mnt[4200], dir[4300];
static volatile sig_atomic_t mounted;

/* ---- writer child ------------------------------------------------------------------------- */

struct child {
	pkv *db;
	int fd;
	uint64_t start[NWRITERS];
	_Atomic uint64_t proc_done; /* writer 2's steps that returned */
	atomic_int running;
};

static void send_msg(int fd, uint32_t type, uint32_t who, uint64_t val, uint64_t aux, int64_t code)
{
	struct msg m = { .type = type, .who = who, .val = val, .aux = aux, .code = code };

	m.t = su_now();
	su_send(fd, &m, sizeof(m));
}

struct wctx {
	struct child *c;
	unsigned w;
};

static void *child_writer(void *arg)
{
	struct wctx *x = arg;
	struct child *c = x->c;
	unsigned w = x->w;
	unsigned flags = w < NPOWER ? PKV_WRITE_POWER : 0;
	unsigned char *val = malloc(MAX_VAL);
	char key[64];

	if (val == NULL) {
		send_msg(c->fd, MSG_ERR, w, 0, 0, -ENOMEM);
		goto out;
	}
	for (uint64_t p = c->start[w];; p++) {
		uint64_t n = p / 3, before = atomic_load(&c->proc_done);
		size_t klen, vlen;
		int rc = 0;

		switch (p % 3) {
		case 0:
			klen = seq_key(w, n, key);
			vlen = make_value(w, n, KIND_SEQ, val);
			rc = pkv_put_ex(c->db, key, klen, val, vlen, flags);
			break;
		case 1:
			if (n >= DEL_LAG) {
				klen = seq_key(w, n - DEL_LAG, key);
				rc = pkv_del_ex(c->db, key, klen, flags);
			}
			break;
		default:
			klen = head_key(w, key);
			vlen = make_value(w, n, KIND_HEAD, val);
			rc = pkv_put_ex(c->db, key, klen, val, vlen, flags);
			break;
		}
		if (rc != 0) {
			send_msg(c->fd, MSG_ERR, w, p, 0, rc);
			break;
		}
		if (w == PROC_W)
			atomic_store(&c->proc_done, p + 1);
		/* A no-op step wrote nothing: it took no sequence number, so it bounds nothing. */
		if (w == PROC_W || (p % 3 == 1 && n < DEL_LAG))
			before = 0;
		send_msg(c->fd, MSG_ACK, w, p + 1, before, 0);
	}
out:
	free(val);
	atomic_fetch_sub(&c->running, 1);
	return NULL;
}

static void *child_compactor(void *arg)
{
	struct child *c = arg;
	struct su_rng rng;

	su_rng_seed(&rng, (uint64_t)getpid() * 2654435761u);
	for (;;) {
		int rc;

		su_sleep_ms((double)su_rng_below(&rng, 2 * cfg.compact_ms + 1));
		rc = pkv_compact(c->db);
		if (rc != 0) {
			send_msg(c->fd, MSG_ERR, WHO_COMPACT, 0, 0, rc);
			break;
		}
	}
	atomic_fetch_sub(&c->running, 1);
	return NULL;
}

static void store_opts(pkv_options *o)
{
	pkv_options_default(o);
	o->wal_segment_bytes = 1u << 20; /* the image is small: 64 MiB */
	o->compact_wal_bytes = 2u << 20;
}

static void child_main(int fd, const uint64_t *start)
{
	static struct child c;
	pthread_t t;
	struct wctx x[NWRITERS];
	pkv_options opts;
	int rc;

	c.fd = fd;
	store_opts(&opts);
	rc = pkv_open(dir, &opts, &c.db);
	if (rc != 0) {
		send_msg(fd, MSG_ERR, WHO_OPEN, 0, 0, rc);
		send_msg(fd, MSG_IDLE, 0, 0, 0, 0);
		for (;;)
			pause();
	}
	send_msg(fd, MSG_OPENED, 0, 0, 0, 0);
	atomic_store(&c.proc_done, start[PROC_W]);
	atomic_store(&c.running, NWRITERS + (cfg.compact_ms != 0));
	for (unsigned w = 0; w < NWRITERS; w++) {
		c.start[w] = start[w];
		x[w] = (struct wctx){ .c = &c, .w = w };
		if (pthread_create(&t, NULL, child_writer, &x[w]) != 0)
			_exit(5);
		pthread_detach(t);
	}
	if (cfg.compact_ms != 0) {
		if (pthread_create(&t, NULL, child_compactor, &c) != 0)
			_exit(5);
		pthread_detach(t);
	}
	/* Every thread runs until an error; then the parent kills this process. */
	while (atomic_load(&c.running) > 0)
		su_sleep_ms(2);
	send_msg(fd, MSG_IDLE, 0, 0, 0, 0);
	for (;;)
		pause();
}

/* ---- verifier child ----------------------------------------------------------------------- */

/* A difference hist_state_is() found: a failure. */
static void report_fail(void *failed, const char *msg)
{
	su_fail(failed, "%s", msg);
}

/* The step count the head key of writer w points at: E(P) has P in [3h, 3h + 2]. */
static uint64_t head_steps(pkv *db, unsigned w, unsigned char *buf)
{
	struct vhdr h;
	char key[64];
	size_t klen = head_key(w, key), vlen = 0;

	if (pkv_get(db, key, klen, buf, MAX_VAL, &vlen) != 0 || vlen < HDR)
		return 0;
	memcpy(&h, buf, HDR);
	return h.magic == VMAGIC && h.kind == KIND_HEAD ? 3 * (h.n + 1) : 0;
}

static void check_keys(pkv *db, const uint64_t *pos, unsigned char *buf, struct vresult *r,
		       const char *when)
{
	pkv_stats st;
	uint64_t want = hist_expected_keys(pos);

	for (unsigned w = 0; w < NWRITERS; w++)
		if (hist_state_is(db, w, pos[w], NULL, 0, buf, report_fail, &r->failed))
			r->passed++;
	if (pkv_get_stats(db, &st) != 0 || st.keys != want)
		su_fail(&r->failed, "%s P3: stats.keys = %" PRIu64 ", expected %" PRIu64, when,
			st.keys, want);
	else
		r->passed++;
}

static void verifier_main(int fd, const struct expect *x, uint64_t cycle)
{
	struct vresult r = { 0 };
	unsigned char *buf = malloc(2 * MAX_VAL);
	pkv_options opts;
	pkv *db = NULL;
	double t0;
	int rc;

	if (buf == NULL)
		_exit(5);
	store_opts(&opts);
	t0 = su_now();
	rc = pkv_open(dir, &opts, &db);
	r.open_ms = (su_now() - t0) * 1000.0;
	if (rc != 0) {
		su_fail(&r.failed, "cycle %" PRIu64 ": reopen after the power cut = %d (%s)", cycle,
			rc, pkv_strerror(rc));
		goto out;
	}
	r.passed++;
	pkv_get_stats(db, &r.st);

	/*
	 * P1: every POWER write that returned before the cut. A writer has one call in flight at a
	 * time, so its state is E(P) for a P from pre (returned before the cut) to acked + 1 (the
	 * call in flight reached the disk first). Calls that returned after the shutdown was called
	 * overlapped the cut, which a real power cut would not have let return at all: their loss
	 * is counted, not failed.
	 */
	for (unsigned w = 0; w < NPOWER; w++) {
		uint64_t p = x->acked[w] + 1;

		while (!hist_state_is(db, w, p, NULL, 0, buf, NULL, NULL) && p-- > x->pre[w])
			;
		if (p + 1 == x->pre[w]) {
			printf("cycle %" PRIu64 ": POWER writer %u: %" PRIu64
			       " steps returned before the cut, %" PRIu64
			       " in all; the state is no E(P) for P in [%" PRIu64 ", %" PRIu64
			       "]; differences from E(%" PRIu64 "):\n",
			       cycle, w, x->pre[w], x->acked[w], x->pre[w], x->acked[w] + 1,
			       x->pre[w]);
			hist_state_is(db, w, x->pre[w], NULL, 0, buf, report_fail, &r.failed);
			r.pos[w] = x->pre[w];
			continue;
		}
		r.pos[w] = p;
		r.unacked_recovered += p > x->acked[w];
		r.lost_after_cut += p < x->acked[w] ? x->acked[w] - p : 0;
		r.passed++;
	}
	/* P2: the PROCESS writer is at a prefix of its history, not below the POWER floor. */
	{
		uint64_t base = head_steps(db, PROC_W, buf), found = UINT64_MAX;

		for (uint64_t p = base; p < base + 3; p++) {
			if (p <= x->acked[PROC_W] + 1 &&
			    hist_state_is(db, PROC_W, p, NULL, 0, buf, NULL, NULL)) {
				found = p;
				break;
			}
		}
		if (found == UINT64_MAX) {
			printf("cycle %" PRIu64
			       ": PROCESS writer at no state E(P) with P <= %" PRIu64
			       " (the head says %" PRIu64 "); differences from E(%" PRIu64 "):\n",
			       cycle, x->acked[PROC_W] + 1, base, base);
			hist_state_is(db, PROC_W, base, NULL, 0, buf, report_fail, &r.failed);
			r.pos[PROC_W] = base;
		} else if (found < x->floor) {
			su_fail(&r.failed,
				"cycle %" PRIu64 ": P2: PROCESS writer recovered at %" PRIu64
				" steps, but %" PRIu64
				" had returned before a POWER write began that returned before the cut"
				" (their sequence numbers are smaller: they were durable)",
				cycle, found, x->floor);
			r.pos[PROC_W] = found;
		} else {
			r.passed++;
			r.pos[PROC_W] = found;
		}
	}
	if (r.failed != 0)
		goto out;
	check_keys(db, r.pos, buf, &r, "after recovery");
	if (cycle % 4 == 3) {
		rc = pkv_compact(db);
		if (rc != 0)
			su_fail(&r.failed, "P3: pkv_compact after recovery = %d (%s)", rc,
				pkv_strerror(rc));
		else
			check_keys(db, r.pos, buf, &r, "P3 after compact");
	}
out:
	if (db != NULL) {
		rc = pkv_close(db);
		if (rc != 0)
			su_fail(&r.failed, "verifier: pkv_close = %d (%s)", rc, pkv_strerror(rc));
	}
	free(buf);
	su_send(fd, &r, sizeof(r));
	exit(0);
}

/* ---- the file system ---------------------------------------------------------------------- */

static void unmount_mnt(void)
{
	if (mounted) {
		int r = mu_umount(mnt);

		if (r < 0)
			printf("shutdown: umount %s: %s\n", mnt, strerror(-r));
		mounted = 0;
	}
}

static void on_signal(int sig)
{
	if (mounted)
		umount2(mnt, MNT_DETACH);
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Attach the image and mount it on mnt. 0 or -errno; @what names the failing step. */
static int attach_and_mount(const char **what)
{
	char dev[64];
	int lfd = mu_loop_attach(image, dev, sizeof(dev));

	if (lfd < 0) {
		*what = "attach a loop device";
		return lfd;
	}
	if (mount(dev, mnt, "ext4", 0, "") != 0) {
		int r = -errno;

		close(lfd); /* autoclear: detaches it */
		*what = "mount ext4";
		return r;
	}
	close(lfd); /* the mount holds it now; the unmount detaches it */
	mounted = 1;
	return 0;
}

static int fs_shutdown(void)
{
	__u32 flags = EXT4_GOING_FLAGS_NOLOGFLUSH;
	int fd = open(mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC), r = 0;

	if (fd < 0)
		return -errno;
	if (ioctl(fd, EXT4_IOC_SHUTDOWN, &flags) != 0)
		r = -errno;
	close(fd);
	return r;
}

static void cleanup(void)
{
	unmount_mnt();
	if (!cfg.keep) {
		rmdir(mnt);
		unlink(image);
		rmdir(work);
	}
}

static int skip(const char *what, int err)
{
	printf("SKIPPED: cannot %s here (%s)%s\n", what, strerror(err),
	       err == EPERM || err == EACCES ? ": needs root (CAP_SYS_ADMIN) and loop devices" : "");
	cleanup();
	return MU_SKIP_CODE;
}

/* Make the file system and check that this machine lets us mount and shut it down. */
static int setup(void)
{
	char size[32], *mkfs[] = { "mkfs.ext4", "-q", "-F", "-b", "4096", "-E",
				   "lazy_itable_init=0,lazy_journal_init=0,nodiscard", image, NULL };
	const char *what = NULL;
	int fd, r;

	if (geteuid() != 0)
		return skip("mount file systems or attach loop devices as a user", EPERM);
	snprintf(image, sizeof(image), "%s/ext4.img", work);
	snprintf(cut_image, sizeof(cut_image), "%s/ext4-at-last-cut.img", work);
	snprintf(mnt, sizeof(mnt), "%s/mnt", work);
	snprintf(dir, sizeof(dir), "%s/store", mnt);
	if (mkdir(mnt, 0700) != 0) {
		perror("shutdown: mkdir");
		return 2;
	}
	fd = open(image, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, (off_t)cfg.image_mb << 20) != 0) {
		perror("shutdown: image");
		return 2;
	}
	close(fd);
	snprintf(size, sizeof(size), "%u MiB", cfg.image_mb);
	r = mu_run(mkfs);
	if (r == 127) {
		printf("SKIPPED: mkfs.ext4 not found (Debian: apt-get install e2fsprogs)\n");
		cleanup();
		return MU_SKIP_CODE;
	}
	if (r != 0) {
		printf("shutdown: mkfs.ext4 of a %s image failed (status %d)\n", size, r);
		cleanup();
		return 2;
	}
	r = attach_and_mount(&what);
	if (r < 0 && mu_err_means_skip(-r))
		return skip(what, -r);
	if (r < 0) {
		printf("shutdown: %s: %s\n", what, strerror(-r));
		cleanup();
		return 2;
	}
	/* One empty shutdown and remount: the machine allows both, and they work. */
	r = fs_shutdown();
	if (r < 0 && mu_err_means_skip(-r))
		return skip("shut ext4 down (EXT4_IOC_SHUTDOWN)", -r);
	if (r < 0) {
		printf("shutdown: EXT4_IOC_SHUTDOWN: %s\n", strerror(-r));
		cleanup();
		return 2;
	}
	unmount_mnt();
	r = attach_and_mount(&what);
	if (r < 0) {
		printf("shutdown: %s after a shutdown: %s\n", what, strerror(-r));
		cleanup();
		return 2;
	}
	return 0;
}

/* ---- parent ------------------------------------------------------------------------------- */

/* Copy the image as the power cut left it (--keep), for a look at a failure: @dst. */
static void save_cut(const char *dst)
{
	int in = open(image, O_RDONLY | O_CLOEXEC), out;
	ssize_t n;

	if (in < 0)
		return;
	out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (out >= 0) {
		do
			n = copy_file_range(in, NULL, out, NULL, 1u << 30, 0);
		while (n > 0);
		close(out);
	}
	close(in);
}

/* Errors after the shutdown, by code. */
#define NCODES 8
static struct {
	int64_t code;
	uint64_t count;
} codes[NCODES];

static void count_code(int64_t code)
{
	for (int i = 0; i < NCODES; i++) {
		if (codes[i].count == 0 || codes[i].code == code) {
			codes[i].code = code;
			codes[i].count++;
			return;
		}
	}
}

static bool clean_error(int64_t code)
{
	/* -errno, or the store refusing writes; never "damaged", a bad argument or a miss. */
	return (code < 0 && code > -4096) || code == PKV_EREADONLY;
}

struct cycle_out {
	uint64_t acked_power, acked_proc; /* steps acknowledged this cycle */
	struct expect x;
	double shutdown_ms;
	bool opened, idle;
	unsigned errors; /* reported after the shutdown */
};

static const char *who_name(uint32_t who)
{
	static const char *const names[NWHO] = { "POWER writer 0", "POWER writer 1",
						 "PROCESS writer", "pkv_compact", "pkv_open" };
	return who < NWHO ? names[who] : "?";
}

/* One writer child, the shutdown, and the kill. Returns false if the cycle cannot go on. */
static bool run_writer(uint64_t cycle, uint64_t *acked, struct su_rng *rng, struct cycle_out *co,
		       uint64_t *passed, uint64_t *failed)
{
	double delay = cfg.min_ms +
		       (cfg.max_ms - cfg.min_ms) * (double)su_rng_below(rng, 10001) / 10000.0;
	struct su_msgs in = { 0 };
	bool shut = false, killed = false, ok = true;
	uint64_t before_power = acked[0] + acked[1], before_proc = acked[PROC_W];
	double t0, shut_at, kill_at = 0, cut_t = 0;
	int wfd, status;
	pid_t pid;
	struct msg m;

	pid = su_fork_pipe(&in.fd, &wfd);
	if (pid == 0)
		child_main(wfd, acked);
	t0 = su_now();
	shut_at = t0 + delay / 1000.0;
	for (;;) {
		double now = su_now();
		int timeout = -1;

		if (!shut && now >= shut_at) {
			int r;

			cut_t = su_now();
			r = fs_shutdown();
			shut = true;
			co->shutdown_ms = (now - t0) * 1000.0;
			kill_at = now + GRACE_MS / 1000.0;
			if (r != 0) {
				su_fail(failed, "cycle %" PRIu64 ": EXT4_IOC_SHUTDOWN: %s", cycle,
				      strerror(-r));
				ok = false;
			}
			continue;
		}
		if (shut && !killed && (co->idle || now >= kill_at)) {
			kill(pid, SIGKILL);
			killed = true;
			continue;
		}
		if (!killed)
			timeout = (int)(((shut ? kill_at : shut_at) - now) * 1000.0) + 1;
		if (su_msgs_fill(&in, timeout) < 0)
			break;
		while (su_msgs_next(&in, &m, sizeof(m), true)) {
			if (m.type == MSG_ACK && m.who < NWRITERS && m.val == acked[m.who] + 1) {
				acked[m.who] = m.val;
				if (!shut || m.t < cut_t) {
					co->x.pre[m.who] = m.val;
					if (m.aux > co->x.floor)
						co->x.floor = m.aux;
				}
			} else if (m.type == MSG_OPENED) {
				co->opened = true;
			} else if (m.type == MSG_IDLE) {
				co->idle = true;
			} else if (m.type == MSG_ERR && m.who < NWHO) {
				if (!shut) {
					ok = false;
					su_fail(failed,
					      "cycle %" PRIu64 ": P4: %s returned %" PRId64
					      " (%s) before the shutdown (step %" PRIu64 ")",
					      cycle, who_name(m.who), m.code,
					      pkv_strerror((int)m.code), m.val);
				} else if (!clean_error(m.code)) {
					ok = false;
					su_fail(failed,
					      "cycle %" PRIu64 ": P4: %s returned %" PRId64
					      " (%s) after the shutdown: not an I/O error",
					      cycle, who_name(m.who), m.code,
					      pkv_strerror((int)m.code));
				} else {
					co->errors++;
					count_code(m.code);
				}
			} else {
				ok = false;
				su_fail(failed,
				      "cycle %" PRIu64 ": garbled message (type %u, who %u)", cycle,
				      m.type, m.who);
			}
		}
	}
	close(in.fd);
	status = su_wait(pid);
	if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL && killed)) {
		ok = false;
		if (WIFSIGNALED(status))
			su_fail(failed,
			      "cycle %" PRIu64
			      ": P4: the writer child died of signal %d (%s) %.0f ms"
			      " after fork, %s the shutdown",
			      cycle, WTERMSIG(status), strsignal(WTERMSIG(status)),
			      (su_now() - t0) * 1000.0, shut ? "after" : "before");
		else
			su_fail(failed, "cycle %" PRIu64 ": the writer child exited with status %d",
			      cycle, WEXITSTATUS(status));
	}
	if (ok)
		(*passed)++;
	memcpy(co->x.acked, acked, sizeof(co->x.acked));
	co->acked_power = acked[0] + acked[1] - before_power;
	co->acked_proc = acked[PROC_W] - before_proc;
	return shut;
}

static bool run_verifier(uint64_t cycle, const struct expect *x, struct vresult *r)
{
	char why[128];
	int rfd, wfd;
	pid_t pid;

	pid = su_fork_pipe(&rfd, &wfd);
	if (pid == 0)
		verifier_main(wfd, x, cycle);
	if (su_collect(pid, rfd, r, sizeof(*r), why, sizeof(why), NULL))
		return true;
	printf("FAIL: cycle %" PRIu64 ": verifier %s\n", cycle, why);
	return false;
}

static const struct su_opt options[] = {
	SU_OPT("cycles", SU_OPT_U64, &cfg.cycles, "power cuts (default 10)"),
	SU_OPT("min-ms", SU_OPT_DOUBLE, &cfg.min_ms,
	       "shut the file system down at least this long after fork (default 30)"),
	SU_OPT("max-ms", SU_OPT_DOUBLE, &cfg.max_ms,
	       "shut the file system down at most this long after fork (default 400)"),
	SU_OPT("compact-ms", SU_OPT_UINT, &cfg.compact_ms,
	       "mean period of pkv_compact() in the child (0: none; default 40)", .max = 3600000),
	SU_OPT("image-mb", SU_OPT_UINT, &cfg.image_mb, "size of the ext4 image (default 64)",
	       .min = 32, .max = 4096),
	SU_OPT("seed", SU_OPT_U64, &cfg.seed, "cut times and writer values (default 1)"),
	SU_OPT("dir", SU_OPT_STR, &cfg.parent,
	       "make the image and mount point under PARENT ($TMPDIR, /tmp)", .arg = "PARENT"),
	SU_OPT("keep", SU_OPT_FLAG, &cfg.keep,
	       "keep the image, and a copy of it as each power cut left it"),
	SU_OPT("quiet", SU_OPT_FLAG, &cfg.quiet,
	       "no line per cycle: only failures and the figures"),
	SU_OPT_END
};

int main(int argc, char **argv)
{
	uint64_t pos[NWRITERS] = { 0 };
	uint64_t passed = 0, failed = 0, cycles = 0, acked_power = 0, acked_proc = 0;
	uint64_t unacked = 0, lost_proc = 0, replayed = 0, discarded = 0, discarded_bytes = 0;
	uint64_t in_open = 0, errors = 0, floors = 0, lost_after = 0;
	double t0, max_open = 0, shut_sum = 0, remount_max = 0;
	struct su_rng rng;
	int r;

	setvbuf(stdout, NULL, _IOLBF, 0);
	su_opts_parse(
		argc, argv, "shutdown", options,
		"Needs root, loop devices and mkfs.ext4; otherwise prints SKIPPED and exits 77.\n");
	if (cfg.max_ms < cfg.min_ms)
		su_usage_error("--max-ms %g is below --min-ms %g", cfg.max_ms, cfg.min_ms);
	if (su_workdir(work, sizeof(work), cfg.parent, "shutdown") != 0) {
		perror("shutdown: mkdtemp");
		return 2;
	}
	(void)mu_private_ns(); /* best effort: the mount is also undone explicitly */
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);
	r = setup();
	if (r != 0)
		return r;
	su_rng_seed(&rng, cfg.seed);
	printf("shutdown: ext4 image of %u MiB on a loop device at %s, %" PRIu64
	       " cycles, power cut after %.0f..%.0f ms, seed %" PRIu64 "\n",
	       cfg.image_mb, mnt, cfg.cycles, cfg.min_ms, cfg.max_ms, cfg.seed);

	t0 = su_now();
	for (uint64_t cycle = 0; cycle < cfg.cycles; cycle++) {
		uint64_t acked[NWRITERS] = { pos[0], pos[1], pos[2] };
		struct cycle_out co = { .x.pre = { pos[0], pos[1], pos[2] } };
		struct vresult vr;
		const char *what = NULL;
		double tm;

		if (!run_writer(cycle, acked, &rng, &co, &passed, &failed))
			break;
		cycles++;
		acked_power += co.acked_power;
		acked_proc += co.acked_proc;
		in_open += !co.opened;
		errors += co.errors;
		shut_sum += co.shutdown_ms;
		floors += co.x.floor > pos[PROC_W];

		/* Power back: unmount what is left, mount again (ext4 replays its journal). */
		tm = su_now();
		unmount_mnt();
		if (cfg.keep)
			save_cut(cut_image);
		r = attach_and_mount(&what);
		if (r < 0) {
			su_fail(&failed, "cycle %" PRIu64 ": %s after the power cut: %s", cycle, what,
			      strerror(-r));
			break;
		}
		tm = su_now() - tm;
		if (tm > remount_max)
			remount_max = tm;
		if (!run_verifier(cycle, &co.x, &vr)) {
			failed++;
			break;
		}
		passed += vr.passed;
		failed += vr.failed;
		if (vr.failed != 0) {
			printf("cycle %" PRIu64 ": acknowledged steps (of which returned before the"
			       " shutdown call): w0 %" PRIu64 " (%" PRIu64 "), w1 %" PRIu64 " (%" PRIu64
			       "), w2 %" PRIu64 " (%" PRIu64 "); PROCESS floor %" PRIu64 "\n",
			       cycle, acked[0], co.x.pre[0], acked[1], co.x.pre[1], acked[2],
			       co.x.pre[2], co.x.floor);
			printf("cycle %" PRIu64 ": stopping; the image is kept: %s%s%s\n", cycle, image,
			       cfg.keep ? ", as the power cut left it: " : "", cfg.keep ? cut_image : "");
			cfg.keep = true;
			break;
		}
		unacked += vr.unacked_recovered;
		lost_after += vr.lost_after_cut;
		lost_proc += acked[PROC_W] > vr.pos[PROC_W] ? acked[PROC_W] - vr.pos[PROC_W] : 0;
		replayed += vr.st.recovered_records;
		discarded += vr.st.discarded_records;
		discarded_bytes += vr.st.discarded_bytes;
		if (vr.open_ms > max_open)
			max_open = vr.open_ms;
		if (!cfg.quiet)
			printf("cycle %3" PRIu64 " cut after %5.1f ms: +%-5" PRIu64 " POWER, +%-6" PRIu64
			       " PROCESS steps acked; %u errors reported; recovered w0 %" PRIu64
			       " w1 %" PRIu64 " w2 %" PRIu64 " (acked %" PRIu64 ", floor %" PRIu64
			       "); replayed %" PRIu64 ", discarded %" PRIu64 " (%" PRIu64
			       " bytes); open %.1f ms\n",
			       cycle, co.shutdown_ms, co.acked_power, co.acked_proc, co.errors,
			       vr.pos[0], vr.pos[1], vr.pos[2], acked[PROC_W], co.x.floor,
			       vr.st.recovered_records, vr.st.discarded_records,
			       vr.st.discarded_bytes, vr.open_ms);
		memcpy(pos, vr.pos, sizeof(pos));
	}

	printf("shutdown: %" PRIu64 " power cuts in %.1f s (mean %.0f ms after fork; %" PRIu64
	       " during pkv_open); acknowledged: %" PRIu64 " POWER steps, %" PRIu64
	       " PROCESS steps; %" PRIu64 " PROCESS steps lost (allowed), %" PRIu64
	       " cycles where the POWER floor bound the PROCESS writer; %" PRIu64
	       " times a POWER step survived unacknowledged; %" PRIu64
	       " POWER steps that returned after the shutdown call were lost\n",
	       cycles, su_now() - t0, cycles ? shut_sum / (double)cycles : 0.0, in_open,
	       acked_power, acked_proc, lost_proc, floors, unacked, lost_after);
	printf("after the cut the child reported %" PRIu64 " errors:", errors);
	for (int i = 0; i < NCODES && codes[i].count; i++)
		printf(" %" PRIu64 " x %s (%" PRId64 ")", codes[i].count,
		       pkv_strerror((int)codes[i].code), codes[i].code);
	printf("\nrecovery: %" PRIu64 " records replayed, %" PRIu64 " discarded (%" PRIu64
	       " bytes); slowest open %.1f ms; slowest unmount + remount %.0f ms\n",
	       replayed, discarded, discarded_bytes, max_open, remount_max * 1000.0);
	if (cfg.keep)
		printf("image kept: %s (as the last power cut left it: %s)\n", image, cut_image);
	cleanup();
	if (passed == 0 && failed == 0)
		failed = 1;
	printf("%" PRIu64 " passed, %" PRIu64 " failed\n", passed, failed);
	return failed == 0 ? 0 : 1;
}
