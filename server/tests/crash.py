#!/usr/bin/env python3
"""crash.py: pkv-server SIGKILLed at random moments under writers; every acknowledged key stays.

The server runs on one directory throughout. Each cycle lets W writer connections write keys in
sequence (each value names its key and carries a
digest; a writer keeps a few commands in flight), SIGKILLs the server by its pid after a random
delay, restarts it on the same directory and checks, for each writer, that the keys present are
exactly a prefix 0..m-1 of what it sent with m at least what was acknowledged (no acknowledged
key lost, no hole, no damaged value; a sample of the earlier cycles' keys too). The restarted
server serves the next cycle. At the end the server is stopped with SIGTERM (exit status 0),
started again, and every key of every cycle is checked.

  --mode power    --durability power: a reply leaves once its write is fdatasync'ed
  --mode process  --durability process: the kill is of the process; the page cache survives it
  --signal TERM   stop cleanly under the writers instead (exit status 0 each time), same checks

  python3 crash.py --server build/release/server/pkv-server --mode power --cycles 20
  python3 crash.py --server redis-server --reference --mode power    (the control: Redis, AOF)
"""

import argparse
import hashlib
import os
import random
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pkvtest  # noqa: E402
from pkvtest import Server, encode  # noqa: E402


def value_of(key):
    return b"%s=%s" % (key, hashlib.blake2b(key, digest_size=12).hexdigest().encode())


def key_of(cycle, writer, i):
    return b"c%d:w%d:%d" % (cycle, writer, i)


class Writer(threading.Thread):
    """Writes key_of(cycle, w, 0), (.., 1), ... with up to `window` SETs in flight; counts the
    +OK replies (acknowledged) and the commands sent, until the connection dies or time ends."""

    def __init__(self, port, cycle, w, window, limit_s):
        super().__init__(daemon=True)
        self.port, self.cycle, self.w, self.window = port, cycle, w, window
        self.limit = time.monotonic() + limit_s
        self.sent = 0
        self.acked = 0
        self.error = None

    def run(self):
        try:
            s = socket.create_connection((pkvtest.HOST, self.port), timeout=10)
        except OSError:
            return
        buf = b""
        try:
            while time.monotonic() < self.limit:
                while self.sent - self.acked < self.window:
                    k = key_of(self.cycle, self.w, self.sent)
                    s.sendall(encode(b"SET", k, value_of(k)))
                    self.sent += 1
                while b"\r\n" not in buf:
                    chunk = s.recv(4096)
                    if not chunk:
                        return
                    buf += chunk
                line, buf = buf.split(b"\r\n", 1)
                if line != b"+OK":
                    self.error = "SET #%d answered %r" % (self.acked, line)
                    return
                self.acked += 1
        except OSError:
            return
        finally:
            s.close()


def check(r, expect, only=None, sample=None):
    """expect: {(cycle, w): (acked, sent)}; checks the writers of `only` (all if None) in full,
    and `sample` random keys of the others. Updates expect to what recovery kept (it is what the
    next cycles must keep). Returns a list of problems."""
    problems = []
    for (cycle, w), (acked, sent) in sorted(expect.items()):
        if only is not None and (cycle, w) not in only:
            if sample and acked:
                idx = sorted(set(sample.randrange(acked) for _ in range(20)) | {0, acked - 1})
                keys = [key_of(cycle, w, i) for i in idx]
                got = r.mget(keys)
                for k, v in zip(keys, got):
                    if v != value_of(k):
                        problems.append("key %r of an earlier cycle holds %r" % (k, v))
                        break
            continue
        keys = [key_of(cycle, w, i) for i in range(sent + 1)]
        got = []
        for i in range(0, len(keys), 2000):
            got += r.mget(keys[i:i + 2000])
        present = [i for i, v in enumerate(got) if v is not None]
        m = len(present)
        if present != list(range(m)):
            holes = sorted(set(range(present[-1] + 1)) - set(present))[:5] if present else []
            problems.append("cycle %d writer %d: present keys are no prefix (holes at %s)"
                            % (cycle, w, holes))
        if m < acked:
            problems.append("cycle %d writer %d: %d keys acknowledged, only %d present"
                            " (first lost: %r)" % (cycle, w, acked, m, keys[m]))
        if m > sent:
            problems.append("cycle %d writer %d: %d keys present, %d sent"
                            % (cycle, w, m, sent))
        for i in present:
            if got[i] != value_of(keys[i]):
                problems.append("cycle %d writer %d: key %r holds %r" % (cycle, w, keys[i],
                                                                        got[i][:60]))
                break
        expect[(cycle, w)] = (m, m)
    return problems


LIVE = []  # the servers started and not yet stopped: killed by pid if anything goes wrong


def start_server(d, mode):
    srv = Server(directory=d, durability=mode)
    LIVE.append(srv)
    return srv.start(wait=60)


def main():
    try:
        return run()
    finally:
        for srv in LIVE:
            if srv.alive():
                srv.kill()


def run():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--server", required=True)
    p.add_argument("--reference", action="store_true")
    p.add_argument("--mode", choices=("power", "process", "none"), required=True,
                   help="none: only with --reference, Redis without persistence (the negative"
                   " control: the check must fail)")
    p.add_argument("--cycles", type=int, default=20)
    p.add_argument("--writers", type=int, default=4)
    p.add_argument("--window", type=int, default=4, help="SETs in flight per writer")
    p.add_argument("--min-ms", type=int, default=30)
    p.add_argument("--max-ms", type=int, default=300)
    p.add_argument("--seconds", type=float, default=600, help="stop starting cycles after this")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--signal", choices=("KILL", "TERM", "INT"), default="KILL",
                   help="how the server is stopped each cycle (TERM, INT: a clean stop under"
                   " load, which must exit 0)")
    p.add_argument("--dir", default=None, help="store directory (default: a temporary one)")
    args = p.parse_args()
    if args.mode == "none" and not args.reference:
        p.error("--mode none is the negative control of --reference")
    pkvtest.CONFIG["server"] = args.server
    pkvtest.CONFIG["reference"] = args.reference
    pkvtest.CONFIG["tmp"] = tempfile.mkdtemp(prefix="pkv-crash-")
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little")
    rng = random.Random(seed)
    d = args.dir or os.path.join(pkvtest.CONFIG["tmp"], "store")
    os.makedirs(d, exist_ok=True)
    print("crash: %s, --durability %s, %d cycles, %d writers x %d in flight, SIG%s after"
          " %d..%d ms, seed %d, store %s" % ("redis-server (reference)" if args.reference
                                             else "pkv-server", args.mode, args.cycles,
                                             args.writers, args.window, args.signal,
                                             args.min_ms, args.max_ms, seed, d))
    expect = {}
    failures = []
    t_end = time.monotonic() + args.seconds
    total_acked = total_kept_extra = 0
    cycles_run = 0
    srv = start_server(d, args.mode)
    for cycle in range(args.cycles):
        if time.monotonic() > t_end:
            print("crash: --seconds reached after %d cycles" % cycle)
            break
        delay = rng.uniform(args.min_ms, args.max_ms) / 1000.0
        writers = [Writer(srv.port, cycle, w, args.window, delay + 30) for w in
                   range(args.writers)]
        for t in writers:
            t.start()
        time.sleep(delay)
        if args.signal == "KILL":
            srv.kill()
        else:
            # a clean stop in the middle of the writes: exit status 0, and (as after a kill)
            # every acknowledged write is there after the restart
            rc = srv.stop(getattr(signal, "SIG" + args.signal))
            if rc != 0:
                failures.append("cycle %d: SIG%s under writers: exit status %s:\n%s"
                                % (cycle, args.signal, rc, srv.log()))
        for t in writers:
            t.join(30)
        if any(t.is_alive() for t in writers):
            failures.append("cycle %d: a writer hung after the kill" % cycle)
            break
        for t in writers:
            if t.error:
                failures.append("cycle %d writer %d: %s" % (cycle, t.w, t.error))
            expect[(cycle, t.w)] = (t.acked, t.sent)
        acked = sum(t.acked for t in writers)
        total_acked += acked
        cycles_run += 1
        # Restart on the same directory: this cycle's keys in full, a sample of the earlier ones.
        srv = start_server(d, args.mode)
        r = srv.client()
        mine = {(cycle, t.w) for t in writers}
        probs = check(r, expect, only=mine, sample=rng)
        total_kept_extra += sum(expect[k][0] for k in mine) - acked
        r.close()
        if probs:
            failures += ["cycle %d: %s" % (cycle, x) for x in probs]
            break
    # A clean stop (SIGTERM: exit status 0), a restart, and every key of every cycle.
    rc = srv.stop(signal.SIGTERM)
    if rc != 0:
        failures.append("SIGTERM stop exited %s:\n%s" % (rc, srv.log()))
    if not failures:
        srv = start_server(d, args.mode)
        r = srv.client()
        failures += ["final check: %s" % x for x in check(r, expect)]
        r.close()
        rc = srv.stop(signal.SIGTERM)
        if rc != 0:
            failures.append("final SIGTERM stop exited %s:\n%s" % (rc, srv.log()))
    if not failures:
        print("crash: %d cycles, %d writes acknowledged, all present after the restarts; %d more"
              " (sent, unacknowledged) were kept too" % (cycles_run, total_acked,
                                                          total_kept_extra))
    for f in failures[:20]:
        print("FAIL: " + f)
    print("%d passed, %d failed" % (cycles_run if not failures else 0, 1 if failures else 0))
    if failures or cycles_run == 0:
        print("crash: data and logs kept in %s" % pkvtest.CONFIG["tmp"])
        return 1
    if not args.dir:
        shutil.rmtree(pkvtest.CONFIG["tmp"], ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
