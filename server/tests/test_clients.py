#!/usr/bin/env python3
"""Many clients at once, pipelines, RESP3, transactions under contention, expiry.

- RESP3 through HELLO 3 (the wire bytes of each reply type the commands use);
- a pipeline of 1,000 commands on one connection, in one write, answered in order;
- 50 concurrent clients writing and reading self-checking values (each value names its key and
  version), and MSET groups whose MGET must never show a group in part;
- 50 clients INCRementing one key: no increment lost; WATCH/MULTI/EXEC increments by 20 clients
  retrying on conflict: none lost, none applied twice;
- expiry: keys with short expiries vanish from every read path, long ones stay.

  python3 test_clients.py --server build/release/server/pkv-server [-v] [-k substring]
"""

import hashlib
import os
import random
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pkvtest  # noqa: E402
from pkvtest import Err, Server, encode, pkv_only, wait_until  # noqa: E402

import redis  # noqa: E402

CLIENTS = 50


def stamp(key, version):
    """A self-checking value: it names its key and version and carries a digest of both."""
    body = "%s|%d|" % (key, version)
    return (body + hashlib.blake2b(body.encode(), digest_size=8).hexdigest()).encode()


def check_stamp(key, value):
    """The version a value carries, after checking it belongs to key and is intact."""
    k, v, digest = value.decode().rsplit("|", 2)
    body = "%s|%s|" % (k, v)
    if k != key or hashlib.blake2b(body.encode(), digest_size=8).hexdigest() != digest:
        raise AssertionError("key %r holds a foreign or damaged value %r" % (key, value))
    return int(v)


def run_threads(n, fn, limit=120.0):
    """Run fn(i) in n threads; re-raise the first exception; fail past limit seconds."""
    errors = []

    def body(i):
        try:
            fn(i)
        except BaseException as e:  # noqa: B902 - report anything a client thread hits
            errors.append((i, e))

    ts = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(n)]
    for t in ts:
        t.start()
    deadline = time.monotonic() + limit
    for t in ts:
        t.join(max(0.0, deadline - time.monotonic()))
    if any(t.is_alive() for t in ts):
        raise AssertionError("client threads still running after %.0f s" % limit)
    if errors:
        i, e = errors[0]
        raise AssertionError("client %d: %r (and %d more errors)" % (i, e, len(errors) - 1))


class Clients(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server(maxclients=1000).start()
        cls.r = cls.srv.client()

    @classmethod
    def tearDownClass(cls):
        cls.r.close()
        alive = cls.srv.alive()
        rc = cls.srv.stop()
        if not alive or rc != 0:
            raise AssertionError("server %s (exit status %s); its log:\n%s"
                                 % ("died" if not alive else "stopped badly", rc, cls.srv.log()))

    def k(self, suffix=""):
        return "%s:%s" % (self._testMethodName, suffix)

    # ---- RESP3 ---------------------------------------------------------------------------
    def test_resp3_hello(self):
        with self.srv.raw() as c:
            rep = c.call("HELLO", "3")
            self.assertIsInstance(rep, dict)
            rep = {(k.decode() if isinstance(k, bytes) else k): v for k, v in rep.items()}
            self.assertEqual(rep["proto"], 3)
            for field in ("server", "version", "id", "mode", "role"):
                self.assertIn(field, rep)
            self.assertEqual(c.call("CLIENT", "ID"), rep["id"])

    def test_resp3_wire(self):
        k = self.k()
        with self.srv.raw() as c:
            # RESP2 first: nil is $-1
            c.send(encode("GET", k + "missing"))
            self.assertEqual(c.read_raw(5), b"$-1\r\n")
            c.call("HELLO", "3")
            c.send(encode("GET", k + "missing"))
            self.assertEqual(c.read_raw(3), b"_\r\n")       # RESP3 null
            c.send(encode("SET", k, "v"))
            self.assertEqual(c.read_raw(5), b"+OK\r\n")
            c.send(encode("GET", k))
            self.assertEqual(c.read_raw(7), b"$1\r\nv\r\n")
            c.send(encode("EXISTS", k))
            self.assertEqual(c.read_raw(4), b":1\r\n")
            c.send(encode("MGET", k, k + "missing"))
            self.assertEqual(c.read_raw(14), b"*2\r\n$1\r\nv\r\n_\r\n")
            c.send(encode("CONFIG", "GET", "maxclients"))
            self.assertEqual(c.read_raw(4), b"%1\r\n")      # RESP3 map
            self.assertEqual(c.reply(), b"maxclients")
            self.assertEqual(c.reply(), b"1000")
            rep = c.call("INFO", "server")                   # verbatim string or bulk
            self.assertIn(b"# Server", rep)
            rep = c.call("NOSUCHCOMMAND")
            self.assertIsInstance(rep, Err)
            # back to RESP2
            c.call("HELLO", "2")
            c.send(encode("GET", k + "missing"))
            self.assertEqual(c.read_raw(5), b"$-1\r\n")

    def test_resp3_exec_conflict(self):
        """A WATCH conflict in RESP3: EXEC answers null."""
        k = self.k()
        self.r.set(k, "0")
        with self.srv.raw() as c:
            c.call("HELLO", "3")
            c.call("WATCH", k)
            self.r.set(k, "other")
            c.call("MULTI")
            c.call("SET", k, "mine")
            c.send(encode("EXEC"))
            self.assertEqual(c.read_raw(3), b"_\r\n")

    # ---- pipelining ----------------------------------------------------------------------
    def test_pipeline_1000_raw(self):
        """1,000 commands in one write; 1,000 replies in order."""
        k = self.k()
        cmds, want = [], []
        for i in range(250):
            cmds.append(encode("SET", "%s%d" % (k, i), "v%d" % i))
            want.append("OK")
        for i in range(250):
            cmds.append(encode("GET", "%s%d" % (k, i)))
            want.append(("v%d" % i).encode())
        for i in range(250):
            cmds.append(encode("EXISTS", "%s%d" % (k, i), "%s%d" % (k, 1000 + i)))
            want.append(1)
        for i in range(250):
            j = 249 - i
            cmds.append(encode("GET", "%s%d" % (k, j)) if i % 2 else encode("DEL", "%s%d" % (k, j)))
            want.append(("v%d" % j).encode() if i % 2 else 1)
        self.assertEqual(len(cmds), 1000)
        with self.srv.raw(timeout=30) as c:
            c.send(b"".join(cmds))
            got = [c.reply() for _ in range(1000)]
        self.assertEqual(got, want)

    def test_pipeline_1000_redis_py(self):
        k = self.k()
        with self.r.pipeline(transaction=False) as p:
            for i in range(500):
                p.set("%s%d" % (k, i), stamp(k, i))
            for i in range(500):
                p.get("%s%d" % (k, i))
            res = p.execute()
        self.assertEqual(len(res), 1000)
        self.assertTrue(all(x is True for x in res[:500]))
        for i, v in enumerate(res[500:]):
            self.assertEqual(check_stamp(k, v), i)

    def test_pipeline_of_gets(self):
        """A pipeline of GETs (what pkv-server answers through one pkv_get_many) next to
        writers: each GET answers its own key's value, in order."""
        k = self.k()
        keys = ["%s%d" % (k, i) for i in range(200)]
        with self.r.pipeline(transaction=False) as p:
            for key in keys:
                p.set(key, stamp(key, 0))
            p.execute()
        stop = time.monotonic() + 3.0

        def writer(i):
            r = self.srv.client()
            v = 1
            while time.monotonic() < stop:
                key = keys[(i * 37 + v) % len(keys)]
                r.set(key, stamp(key, v))
                v += 1
            r.close()

        def reader(i):
            r = self.srv.client()
            rounds = 0
            while time.monotonic() < stop or rounds == 0:
                order = random.sample(keys, len(keys))
                with r.pipeline(transaction=False) as p:
                    for key in order:
                        p.get(key)
                    for key, v in zip(order, p.execute()):
                        check_stamp(key, v)
                rounds += 1
            r.close()

        run_threads(6, lambda i: writer(i) if i < 2 else reader(i))

    def test_big_pipelines_many_clients(self):
        """12 clients each pipeline 30 x (GET of 512 KiB, MGET of two small keys and it),
        three times: every reply whole and in order (each loop pauses and resumes several
        connections at once)."""
        k = self.k()
        big = os.urandom(pkvtest.MAX_VALUE // 2)
        self.r.set(k + "big", big)
        with self.r.pipeline(transaction=False) as p:
            for i in range(30):
                p.set("%ss%d" % (k, i), "v%d" % i)
            p.execute()

        def client(n):
            with self.srv.raw(timeout=60) as c:
                for _ in range(3):
                    c.send(b"".join(encode("GET", k + "big")
                                    + encode("MGET", "%ss%d" % (k, i), k + "big",
                                             "%ss%d" % (k, (i + 1) % 30))
                                    for i in range(30)))
                    for i in range(30):
                        self.assertEqual(c.reply(), big)
                        self.assertEqual(c.reply(), [("v%d" % i).encode(), big,
                                                     ("v%d" % ((i + 1) % 30)).encode()])

        run_threads(12, client)

    # ---- concurrency ---------------------------------------------------------------------
    def test_50_clients_self_checking(self):
        """50 clients, each writing its own keys and reading everyone's: a value read always
        belongs to its key, is intact, and is never older than what that key's writer had
        acknowledged before the read started."""
        k = self.k()
        nkeys = 20
        acked = [[-1] * nkeys for _ in range(CLIENTS)]  # last acknowledged version per key
        stop = time.monotonic() + 4.0

        def client(i):
            r = self.srv.client()
            rng = random.Random(i)
            v = 0
            while time.monotonic() < stop or v == 0:
                j = v % nkeys
                key = "%s%d:%d" % (k, i, j)
                self.assertTrue(r.set(key, stamp(key, v)))
                acked[i][j] = v
                # read back one of our own: exactly what we wrote
                self.assertEqual(check_stamp(key, r.get(key)), v)
                # read someone else's: intact, and at least what its writer had acknowledged
                o, oj = rng.randrange(CLIENTS), rng.randrange(nkeys)
                okey = "%s%d:%d" % (k, o, oj)
                floor = acked[o][oj]
                got = r.get(okey)
                if floor >= 0:
                    self.assertIsNotNone(got, okey)
                    self.assertGreaterEqual(check_stamp(okey, got), floor, okey)
                elif got is not None:
                    check_stamp(okey, got)
                v += 1
            r.close()

        run_threads(CLIENTS, client)
        # every key holds its writer's last acknowledged version
        for i in range(CLIENTS):
            keys = ["%s%d:%d" % (k, i, j) for j in range(nkeys)]
            for j, got in enumerate(self.r.mget(keys)):
                if acked[i][j] >= 0:
                    self.assertEqual(check_stamp(keys[j], got), acked[i][j])

    def test_mset_groups_atomic_to_mget(self):
        """Writers MSET groups of 8 keys to one version; readers MGET a group (and a pipeline
        of GETs inside MULTI/EXEC): all 8 show the same version, never a group in part."""
        k = self.k()
        groups = 10
        keys = [["%sg%d:%d" % (k, g, j) for j in range(8)] for g in range(groups)]
        for g in range(groups):
            self.r.mset({key: stamp(key, 0) for key in keys[g]})
        stop = time.monotonic() + 4.0
        mixed = []

        def writer(i):
            r = self.srv.client()
            v = 1
            while time.monotonic() < stop:
                g = (v + i) % groups
                r.mset({key: stamp(key, v * 100 + i) for key in keys[g]})
                v += 1
            r.close()

        def reader(i):
            r = self.srv.client()
            n = 0
            while time.monotonic() < stop or n == 0:
                g = random.randrange(groups)
                vals = r.mget(keys[g])
                versions = {check_stamp(key, v) for key, v in zip(keys[g], vals)}
                if len(versions) != 1:
                    mixed.append((g, sorted(versions)))
                n += 1
            r.close()

        run_threads(12, lambda i: writer(i) if i < 4 else reader(i))
        self.assertEqual(mixed[:5], [], "MGET saw %d groups in part" % len(mixed))

    def test_incr_50_clients_one_key(self):
        k = self.k()
        per = 200

        def client(i):
            r = self.srv.client()
            for _ in range(per):
                r.execute_command("INCR", k)  # redis-py's incr() sends INCRBY
            r.close()

        run_threads(CLIENTS, client)
        self.assertEqual(int(self.r.get(k)), CLIENTS * per)

    def test_incrby_decrby_mixed(self):
        k = self.k()

        def client(i):
            r = self.srv.client()
            with r.pipeline(transaction=False) as p:
                for j in range(100):
                    p.incrby(k, 7)
                    p.decrby(k, 3)
                    p.decr(k)
                p.execute()
            r.close()

        run_threads(CLIENTS, client)
        self.assertEqual(int(self.r.get(k)), CLIENTS * 100 * 3)

    def test_watch_exec_contention(self):
        """20 clients each add 1 to a counter 25 times with WATCH/GET/MULTI/SET/EXEC, retrying
        on a conflict: the counter ends at exactly 500."""
        k = self.k()
        self.r.set(k, 0)
        n, per = 20, 25
        conflicts = [0] * n

        def client(i):
            r = self.srv.client()
            done = 0
            deadline = time.monotonic() + 90
            while done < per:
                self.assertLess(time.monotonic(), deadline, "no progress")
                with r.pipeline() as p:
                    try:
                        p.watch(k)
                        v = int(p.get(k))
                        p.multi()
                        p.set(k, v + 1)
                        p.execute()
                        done += 1
                    except redis.WatchError:
                        conflicts[i] += 1
            r.close()

        run_threads(n, client)
        self.assertEqual(int(self.r.get(k)), n * per)
        print("\n  watch/exec: %d increments, %d conflicts retried" % (n * per, sum(conflicts)),
              file=sys.stderr)

    def test_watch_two_keys_transfer(self):
        """Transfers between two accounts under WATCH: the sum never changes."""
        a, b = self.k("a"), self.k("b")
        self.r.mset({a: 1000, b: 1000})
        stop = time.monotonic() + 3.0
        bad = []

        def client(i):
            r = self.srv.client()
            rng = random.Random(i)
            while time.monotonic() < stop:
                src, dst = (a, b) if rng.random() < 0.5 else (b, a)
                with r.pipeline() as p:
                    try:
                        p.watch(src, dst)
                        s, d = int(p.get(src)), int(p.get(dst))
                        amount = rng.randint(1, 10)
                        p.multi()
                        p.set(src, s - amount)
                        p.set(dst, d + amount)
                        p.execute()
                    except redis.WatchError:
                        pass
                got = r.mget([a, b])
                if int(got[0]) + int(got[1]) != 2000:
                    bad.append(got)
            r.close()

        run_threads(10, client)
        self.assertEqual(bad[:3], [])
        self.assertEqual(sum(int(x) for x in self.r.mget([a, b])), 2000)

    @pkv_only
    def test_threads_option(self):
        """--threads 1 and 3: the same answers with one event loop and with more loops than
        CPUs (connections spread over the loops share the store)."""
        for threads in (1, 3):
            with Server(threads=threads) as s:
                def client(i):
                    r = s.client()
                    for j in range(50):
                        key = "t%d:%d" % (i, j)
                        r.set(key, stamp(key, j))
                        self.assertEqual(check_stamp(key, r.get(key)), j)
                    r.close()
                run_threads(20, client)
                r = s.client()
                keys = ["t%d:%d" % (i, j) for i in range(20) for j in range(50)]
                for key, v in zip(keys, r.mget(keys)):
                    check_stamp(key, v)
                self.assertEqual(r.dbsize(), 1000, threads)
                r.close()
                self.assertEqual(s.stop(), 0)

    # ---- expiry --------------------------------------------------------------------------
    def test_expiry_everywhere(self):
        k = self.k()
        short = ["%ss%d" % (k, i) for i in range(200)]
        long_ = ["%sl%d" % (k, i) for i in range(50)]
        with self.r.pipeline(transaction=False) as p:
            for i, key in enumerate(short):
                if i % 4 == 0:
                    p.set(key, "v", px=200)
                elif i % 4 == 1:
                    p.psetex(key, 250, "v")
                elif i % 4 == 2:
                    p.set(key, "v")
                    p.pexpire(key, 300)
                else:
                    p.set(key, "v", pxat=int(time.time() * 1000) + 300)
            for key in long_:
                p.set(key, "v", ex=1000)
            p.execute()
        self.assertTrue(wait_until(lambda: self.r.exists(*short) == 0, 10.0),
                        "short-lived keys still there after 10 s")
        self.assertEqual(self.r.mget(short), [None] * len(short))
        self.assertEqual(self.r.keys(k + "s*"), [])
        self.assertEqual(list(self.r.scan_iter(match=k + "s*", count=100)), [])
        self.assertEqual(set(self.r.keys(k + "l*")), {x.encode() for x in long_})
        self.assertEqual(self.r.ttl(short[0]), -2)
        self.assertEqual(self.r.incr(short[0]), 1)  # an expired key counts as absent
        self.assertEqual(self.r.ttl(short[0]), -1)
        self.assertTrue(self.r.set(short[1], "n", nx=True))
        for key in long_:
            self.assertGreater(self.r.ttl(key), 900)


class PowerReplies(unittest.TestCase):
    """--durability power: a write's reply waits for its sync, the replies of a connection still
    leave in request order, and reads pipelined behind a write see it."""

    @classmethod
    def setUpClass(cls):
        cls.srv = Server(directory=pkvtest.tmpdir(), durability="power").start()

    @classmethod
    def tearDownClass(cls):
        alive = cls.srv.alive()
        rc = cls.srv.stop()
        if not alive or rc != 0:
            raise AssertionError("server %s (exit status %s); its log:\n%s"
                                 % ("died" if not alive else "stopped badly", rc, cls.srv.log()))

    def test_order_within_a_pipeline(self):
        with self.srv.raw(timeout=30) as c:
            c.send(encode("SET", "o:a", "1") + encode("GET", "o:b") + encode("SET", "o:b", "2")
                   + encode("GET", "o:a") + encode("MGET", "o:a", "o:b", "o:c")
                   + encode("DEL", "o:a") + encode("EXISTS", "o:a") + encode("PING"))
            got = [c.reply() for _ in range(8)]
        self.assertEqual(got, ["OK", None, "OK", b"1", [b"1", b"2", None], 1, 0, "PONG"])

    def test_order_within_a_pipeline_more_commands(self):
        with self.srv.raw(timeout=30) as c:
            c.send(encode("SET", "a", "1") + encode("GET", "b") + encode("SET", "b", "2")
                   + encode("GET", "a") + encode("INCR", "n") + encode("GET", "n")
                   + encode("MSET", "x", "1", "y", "2") + encode("MGET", "x", "y", "b")
                   + encode("DEL", "a") + encode("EXISTS", "a") + encode("PING"))
            got = [c.reply() for _ in range(11)]
        self.assertEqual(got, ["OK", None, "OK", b"1", 1, b"1", "OK", [b"1", b"2", b"2"], 1, 0,
                               "PONG"])

    def test_50_clients_pipelined_writes(self):
        def client(i):
            with self.srv.raw(timeout=60) as c:
                for rnd in range(5):
                    reqs, want = [], []
                    for j in range(10):
                        key = "p%d:%d" % (i, j)
                        val = stamp(key, rnd)
                        reqs += [encode("SET", key, val), encode("GET", key)]
                        want += ["OK", val]
                    c.send(b"".join(reqs))
                    got = [c.reply() for _ in range(len(want))]
                    self.assertEqual(got, want)

        run_threads(CLIENTS, client)
        # and all of it is in the store after a restart
        self.srv.stop()
        self.srv.start()
        r = self.srv.client()
        for i in range(CLIENTS):
            keys = ["p%d:%d" % (i, j) for j in range(10)]
            for key, v in zip(keys, r.mget(keys)):
                self.assertEqual(check_stamp(key, v), 4)
        r.close()


if __name__ == "__main__":
    sys.exit(pkvtest.main())
