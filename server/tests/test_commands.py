#!/usr/bin/env python3
"""Every command of pkv-server's list (issue 13), through python3-redis and the raw client.

One test per command (a command with many options has a few), each on keys named after the test,
so the tests share one server and do not depend on each other's keys. The keyspace commands
(DBSIZE, KEYS, SCAN, FLUSHDB, FLUSHALL) have a server of their own; SAVE, BGSAVE and LASTSAVE a
server on a directory. Every expectation is Redis 7's behaviour: `--reference` runs the same
tests against Debian's redis-server.

  python3 test_commands.py --server build/release/server/pkv-server [-v] [-k substring]
"""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pkvtest  # noqa: E402
from pkvtest import Err, Server, pkv_only, tmpdir, wait_until  # noqa: E402

import redis  # noqa: E402


# Issue 13's list: 52 commands.
ALL_COMMANDS = """PING ECHO QUIT HELLO AUTH SELECT GET SET SETNX SETEX PSETEX GETSET GETDEL GETEX
MGET MSET MSETNX DEL UNLINK EXISTS STRLEN APPEND INCR INCRBY DECR DECRBY EXPIRE PEXPIRE EXPIREAT
PEXPIREAT TTL PTTL PERSIST TYPE DBSIZE SCAN KEYS FLUSHDB FLUSHALL INFO SAVE BGSAVE LASTSAVE TIME
CONFIG COMMAND CLIENT MULTI EXEC DISCARD WATCH UNWATCH""".split()


class ServerCase(unittest.TestCase):
    """One server for the class; a test's keys start with its method name."""

    server_kw = {}

    @classmethod
    def setUpClass(cls):
        kw = dict(cls.server_kw)
        if kw.pop("on_disk", False):
            kw["directory"] = tmpdir()
        cls.srv = Server(**kw).start()
        cls.r = cls.srv.client()

    @classmethod
    def tearDownClass(cls):
        cls.r.close()
        alive = cls.srv.alive()
        rc = cls.srv.stop()
        # A clean stop on SIGTERM is part of the contract (and a sanitizer's report makes it
        # fail): a server that died during the class or exits non-zero fails it here.
        if not alive or rc != 0:
            raise AssertionError("server %s (exit status %s); its log:\n%s"
                                 % ("died during the tests" if not alive else "stopped badly",
                                    rc, cls.srv.log()))

    def k(self, suffix=""):
        return "%s:%s" % (self._testMethodName, suffix)

    def err(self, *args):
        """Run a command on a raw connection; assert it answers an error; return the text."""
        with self.srv.raw() as c:
            if self.srv.password is not None:
                c.call("AUTH", self.srv.password)
            rep = c.call(*args)
        self.assertIsInstance(rep, Err, "%r answered %r" % (args, rep))
        self.assertNotIn("unknown command", rep.msg)  # not the error a test is after
        return rep.msg

    def raw_call(self, *args):
        with self.srv.raw() as c:
            return c.call(*args)


class Commands(ServerCase):
    # ---- connection ----------------------------------------------------------------------
    def test_ping(self):
        self.assertTrue(self.r.ping())
        self.assertEqual(self.raw_call("PING", "hi there"), b"hi there")
        self.assertEqual(self.raw_call("PING"), "PONG")
        self.assertTrue(self.err("PING", "a", "b").startswith("ERR wrong number of arguments"))

    def test_echo(self):
        msg = b"bin\x00ary\r\n\xff"
        self.assertEqual(self.r.echo(msg), msg)
        self.assertEqual(self.r.echo(b""), b"")
        self.assertTrue(self.err("ECHO").startswith("ERR wrong number of arguments"))

    def test_quit(self):
        with self.srv.raw() as c:
            self.assertEqual(c.call("QUIT"), "OK")
            self.assertTrue(c.closed_by_peer(), "the connection stayed open after QUIT")
        self.assertTrue(self.r.ping())

    def test_hello(self):
        with self.srv.raw() as c:
            rep = c.call("HELLO")          # RESP2: a flat array of name/value pairs
            self.assertIsInstance(rep, list)
            d = dict(zip(rep[0::2], rep[1::2]))
            self.assertEqual(d[b"proto"], 2)
            self.assertIn(b"server", d)
            self.assertIn(b"version", d)
            self.assertIsInstance(d[b"id"], int)
            rep = c.call("HELLO", "3")     # RESP3: a map
            self.assertIsInstance(rep, dict)
            self.assertEqual(rep[b"proto"], 3)
            rep = c.call("HELLO", "2")
            self.assertIsInstance(rep, list)
            rep = c.call("HELLO", "4")
            self.assertIsInstance(rep, Err)
            self.assertTrue(rep.startswith("NOPROTO"), rep.msg)
            rep = c.call("HELLO", "x")
            self.assertIsInstance(rep, Err)
            self.assertEqual(c.call("PING"), "PONG")

    def test_auth(self):
        # No password configured: AUTH is an error, and the connection keeps working.
        with self.srv.raw() as c:
            rep = c.call("AUTH", "whatever")
            self.assertIsInstance(rep, Err)
            self.assertTrue(rep.startswith("ERR"), rep.msg)
            self.assertEqual(c.call("PING"), "PONG")

    def test_select(self):
        with self.srv.raw() as c:
            self.assertEqual(c.call("SELECT", "0"), "OK")
            rep = c.call("SELECT", "1")
            self.assertIsInstance(rep, Err)
            self.assertTrue(rep.startswith("ERR"), rep.msg)
            rep = c.call("SELECT", "x")
            self.assertIsInstance(rep, Err)
            self.assertEqual(c.call("PING"), "PONG")

    # ---- strings -------------------------------------------------------------------------
    def test_get(self):
        k = self.k()
        self.assertIsNone(self.r.get(k))
        self.assertTrue(self.r.set(k, b"v1"))
        self.assertEqual(self.r.get(k), b"v1")
        self.r.set(k, b"")
        self.assertEqual(self.r.get(k), b"")
        blob = bytes(range(256)) * 4
        self.r.set(k, blob)
        self.assertEqual(self.r.get(k), blob)
        self.assertTrue(self.err("GET").startswith("ERR wrong number of arguments"))
        self.assertTrue(self.err("GET", "a", "b").startswith("ERR wrong number of arguments"))

    def test_set(self):
        k = self.k()
        self.assertTrue(self.r.set(k, "a"))
        self.assertTrue(self.r.set(k, "b"))
        self.assertEqual(self.r.get(k), b"b")
        self.assertEqual(self.err("SET", k, "v", "BOGUS"), "ERR syntax error")
        self.assertTrue(self.err("SET", k).startswith("ERR wrong number of arguments"))

    def test_set_has_no_expiry(self):
        k = self.k()
        self.r.set(k, "a")
        self.assertEqual(self.r.ttl(k), -1)
        self.assertEqual(self.r.pttl(k), -1)

    def test_set_nx_xx(self):
        k = self.k()
        self.assertIsNone(self.r.set(k, "x", xx=True))
        self.assertIsNone(self.r.get(k))
        self.assertTrue(self.r.set(k, "1", nx=True))
        self.assertIsNone(self.r.set(k, "2", nx=True))
        self.assertEqual(self.r.get(k), b"1")
        self.assertTrue(self.r.set(k, "3", xx=True))
        self.assertEqual(self.r.get(k), b"3")
        self.assertEqual(self.err("SET", k, "v", "NX", "XX"), "ERR syntax error")

    def test_set_get(self):
        k = self.k()
        self.assertIsNone(self.r.set(k, "a", get=True))
        self.assertEqual(self.r.set(k, "b", get=True), b"a")
        self.assertEqual(self.r.get(k), b"b")
        # NX GET (Redis >= 7): returns the old value, writes nothing when the key exists
        self.assertEqual(self.raw_call("SET", k, "c", "NX", "GET"), b"b")
        self.assertEqual(self.r.get(k), b"b")

    def test_set_expiry_options(self):
        k = self.k()
        self.r.set(k + "ex", "v", ex=100)
        self.assertTrue(95 <= self.r.ttl(k + "ex") <= 100)
        self.r.set(k + "px", "v", px=100000)
        self.assertTrue(95000 <= self.r.pttl(k + "px") <= 100000)
        now = int(time.time())
        self.r.set(k + "exat", "v", exat=now + 100)
        self.assertTrue(95 <= self.r.ttl(k + "exat") <= 101)
        self.r.set(k + "pxat", "v", pxat=now * 1000 + 100000)
        self.assertTrue(95000 <= self.r.pttl(k + "pxat") <= 101000)
        # in the past: the key is gone at once
        self.r.set(k + "past", "v", pxat=1000)
        self.assertIsNone(self.r.get(k + "past"))
        # a plain SET clears the expiry
        self.r.set(k + "ex", "w")
        self.assertEqual(self.r.ttl(k + "ex"), -1)
        for bad in (("EX", "0"), ("EX", "-5"), ("PX", "0"), ("EX", "abc"), ("EX", "10", "PX", "5")):
            msg = self.err("SET", k, "v", *bad)
            self.assertTrue(msg.startswith("ERR"), msg)
        self.assertTrue(self.err("SET", k, "v", "EX", "0").startswith("ERR invalid expire time"))

    def test_set_keepttl(self):
        k = self.k()
        self.r.set(k, "v", ex=100)
        self.r.set(k, "w", keepttl=True)
        self.assertEqual(self.r.get(k), b"w")
        self.assertTrue(95 <= self.r.ttl(k) <= 100)
        self.assertEqual(self.err("SET", k, "v", "KEEPTTL", "EX", "5"), "ERR syntax error")

    def test_setnx(self):
        k = self.k()
        self.assertTrue(self.r.setnx(k, "a"))
        self.assertFalse(self.r.setnx(k, "b"))
        self.assertEqual(self.r.get(k), b"a")

    def test_setex(self):
        k = self.k()
        self.assertTrue(self.r.setex(k, 100, "v"))
        self.assertEqual(self.r.get(k), b"v")
        self.assertTrue(95 <= self.r.ttl(k) <= 100)
        self.assertTrue(self.err("SETEX", k, "0", "v").startswith("ERR invalid expire time"))
        self.assertTrue(self.err("SETEX", k, "x", "v").startswith("ERR"))

    def test_psetex(self):
        k = self.k()
        self.assertTrue(self.r.psetex(k, 100000, "v"))
        self.assertEqual(self.r.get(k), b"v")
        self.assertTrue(95000 <= self.r.pttl(k) <= 100000)
        self.assertTrue(self.err("PSETEX", k, "-1", "v").startswith("ERR invalid expire time"))

    def test_getset(self):
        k = self.k()
        self.assertIsNone(self.r.getset(k, "a"))
        self.assertEqual(self.r.getset(k, "b"), b"a")
        self.assertEqual(self.r.get(k), b"b")

    def test_getset_clears_expiry(self):
        k = self.k()
        self.r.set(k, "a", ex=100)
        self.r.getset(k, "c")
        self.assertEqual(self.r.ttl(k), -1)  # like SET

    def test_getdel(self):
        k = self.k()
        self.assertIsNone(self.r.getdel(k))
        self.r.set(k, "v")
        self.assertEqual(self.r.getdel(k), b"v")
        self.assertIsNone(self.r.get(k))
        self.assertEqual(self.r.exists(k), 0)

    def test_getex(self):
        k = self.k()
        self.assertIsNone(self.r.getex(k, ex=10))
        self.r.set(k, "v")
        self.assertEqual(self.r.getex(k), b"v")
        self.assertEqual(self.r.ttl(k), -1)
        self.assertEqual(self.r.getex(k, ex=100), b"v")
        self.assertTrue(95 <= self.r.ttl(k) <= 100)
        self.assertEqual(self.r.getex(k, px=200000), b"v")
        self.assertTrue(195000 <= self.r.pttl(k) <= 200000)
        self.assertEqual(self.r.getex(k, exat=int(time.time()) + 300), b"v")
        self.assertTrue(295 <= self.r.ttl(k) <= 301)
        self.assertEqual(self.r.getex(k, pxat=int(time.time() * 1000) + 400000), b"v")
        self.assertTrue(395 <= self.r.ttl(k) <= 401)
        self.assertEqual(self.r.getex(k, persist=True), b"v")
        self.assertEqual(self.r.ttl(k), -1)
        self.assertEqual(self.err("GETEX", k, "EX", "10", "PERSIST"), "ERR syntax error")

    def test_mget(self):
        k = self.k()
        self.r.set(k + "a", "1")
        self.r.set(k + "c", "3")
        self.assertEqual(self.r.mget([k + "a", k + "b", k + "c", k + "a"]),
                         [b"1", None, b"3", b"1"])
        self.assertTrue(self.err("MGET").startswith("ERR wrong number of arguments"))
        many = [k + str(i) for i in range(500)]
        with self.r.pipeline(transaction=False) as p:
            for key in many[::2]:
                p.set(key, key)
            p.execute()
        got = self.r.mget(many)
        self.assertEqual(got, [key.encode() if i % 2 == 0 else None
                               for i, key in enumerate(many)])

    def test_mset(self):
        k = self.k()
        self.assertTrue(self.r.mset({k + "a": "1", k + "b": "2"}))
        self.assertEqual(self.r.mget([k + "a", k + "b"]), [b"1", b"2"])
        # a later pair wins
        self.assertEqual(self.r.execute_command("MSET", k + "a", "x", k + "a", "y"), True)
        self.assertEqual(self.r.get(k + "a"), b"y")
        self.assertTrue(self.err("MSET", k + "a").startswith("ERR wrong number of arguments"))
        self.assertTrue(self.err("MSET", k + "a", "1", k + "b")
                        .startswith("ERR wrong number of arguments"))
        self.assertEqual(self.r.get(k + "b"), b"2")  # nothing of the bad MSET was written

    def test_pipelined_writes(self):
        # plain SETs and MSETs of a pipeline are written as one batch: each still answers on
        # its own, in order, and what follows sees them
        k = self.k()
        self.r.set(k + "t", "v", ex=100)
        with self.r.pipeline(transaction=False) as p:
            p.set(k + "a", "1")
            p.mset({k + "b": "2", k + "c": "3"})
            p.set(k + "a", "4")
            p.get(k + "a")
            p.set(k + "d", "5")
            p.incr(k + "n")
            p.set(k + "n", "10")
            p.incr(k + "n")
            p.execute_command("MSET", k + "e", "6", k + "f")
            p.set(k + "t", "w")
            p.get(k + "d")
            got = p.execute(raise_on_error=False)
        self.assertEqual(got[:8], [True, True, True, b"4", True, 1, True, 11])
        self.assertIsInstance(got[8], redis.exceptions.ResponseError)
        self.assertEqual(got[9:], [True, b"5"])
        self.assertEqual(self.r.mget([k + "b", k + "c", k + "e"]), [b"2", b"3", None])
        self.assertEqual(self.r.ttl(k + "t"), -1)  # a plain SET drops the TTL

    @pkv_only
    def test_pipelined_writes_refused(self):
        # a key the store refuses (empty, too long) fails its own command only, and nothing
        # of an MSET with one is written
        k = self.k()
        with self.r.pipeline(transaction=False) as p:
            p.set(k + "a", "1")
            p.execute_command("SET", "", "x")
            p.set(k + "b", "2")
            p.execute_command("MSET", k + "c", "3", "", "4")
            p.set("x" * 2000, "1")
            p.mset({k + "d": "5", k + "e": "6"})
            got = p.execute(raise_on_error=False)
        self.assertEqual(got[0], True)
        self.assertIsInstance(got[1], redis.exceptions.ResponseError)
        self.assertEqual(got[2], True)
        self.assertIsInstance(got[3], redis.exceptions.ResponseError)
        self.assertIsInstance(got[4], redis.exceptions.ResponseError)
        self.assertEqual(got[5], True)
        self.assertEqual(self.r.mget([k + "a", k + "b", k + "c", k + "d", k + "e"]),
                         [b"1", b"2", None, b"5", b"6"])

    def test_msetnx(self):
        k = self.k()
        self.assertTrue(self.r.msetnx({k + "a": "1", k + "b": "2"}))
        self.assertFalse(self.r.msetnx({k + "b": "x", k + "c": "3"}))
        self.assertEqual(self.r.mget([k + "a", k + "b", k + "c"]), [b"1", b"2", None])

    def test_del(self):
        k = self.k()
        self.r.set(k + "a", "1")
        self.r.set(k + "b", "2")
        self.assertEqual(self.r.delete(k + "a", k + "b", k + "c"), 2)
        self.assertEqual(self.r.delete(k + "a"), 0)
        self.assertEqual(self.r.mget([k + "a", k + "b"]), [None, None])
        self.r.set(k + "d", "1")
        self.assertEqual(self.r.execute_command("DEL", k + "d", k + "d"), 1)
        self.assertTrue(self.err("DEL").startswith("ERR wrong number of arguments"))

    def test_unlink(self):
        k = self.k()
        self.r.set(k + "a", "1")
        self.r.set(k + "b", "2")
        self.assertEqual(self.r.unlink(k + "a", k + "b", k + "c"), 2)
        self.assertEqual(self.r.exists(k + "a", k + "b"), 0)

    def test_exists(self):
        k = self.k()
        self.assertEqual(self.r.exists(k), 0)
        self.r.set(k, "v")
        self.assertEqual(self.r.exists(k), 1)
        self.assertEqual(self.r.exists(k, k, k + "missing"), 2)  # a repeated key counts twice

    def test_strlen(self):
        k = self.k()
        self.assertEqual(self.r.strlen(k), 0)
        self.r.set(k, "hello")
        self.assertEqual(self.r.strlen(k), 5)
        self.r.set(k, b"\xff" * 1000)
        self.assertEqual(self.r.strlen(k), 1000)

    def test_append(self):
        k = self.k()
        self.assertEqual(self.r.append(k, "ab"), 2)
        self.assertEqual(self.r.append(k, "cd"), 4)
        self.assertEqual(self.r.get(k), b"abcd")

    def test_append_keeps_expiry(self):
        k = self.k()
        self.r.set(k, "x", ex=100)
        self.r.append(k, "y")
        self.assertEqual(self.r.get(k), b"xy")
        self.assertTrue(95 <= self.r.ttl(k) <= 100)

    def test_incr(self):
        k = self.k()
        self.assertEqual(self.r.execute_command("INCR", k), 1)  # redis-py's incr() is INCRBY
        self.assertEqual(self.r.execute_command("INCR", k), 2)
        self.assertEqual(self.r.get(k), b"2")
        self.r.set(k, "abc")
        self.assertEqual(self.err("INCR", k), "ERR value is not an integer or out of range")
        self.r.set(k, " 1")
        self.assertEqual(self.err("INCR", k), "ERR value is not an integer or out of range")
        self.r.set(k, str(2 ** 63 - 1))
        self.assertEqual(self.err("INCR", k), "ERR increment or decrement would overflow")
        self.r.set(k, "-5")
        self.assertEqual(self.r.execute_command("INCR", k), -4)

    def test_incr_keeps_expiry(self):
        k = self.k()
        self.r.set(k, "10", ex=100)
        self.assertEqual(self.r.execute_command("INCR", k), 11)
        self.assertTrue(95 <= self.r.ttl(k) <= 100)

    def test_incrby(self):
        k = self.k()
        self.assertEqual(self.r.incrby(k, 10), 10)
        self.assertEqual(self.r.incrby(k, -25), -15)
        self.assertEqual(self.err("INCRBY", k, "1.5"),
                         "ERR value is not an integer or out of range")
        self.r.set(k, str(2 ** 63 - 10))
        self.assertEqual(self.err("INCRBY", k, "20"), "ERR increment or decrement would overflow")
        self.assertEqual(self.r.get(k), str(2 ** 63 - 10).encode())

    def test_decr(self):
        k = self.k()
        self.assertEqual(self.r.execute_command("DECR", k), -1)  # redis-py's decr() is DECRBY
        self.assertEqual(self.r.execute_command("DECR", k), -2)
        self.r.set(k, str(-(2 ** 63)))
        self.assertEqual(self.err("DECR", k), "ERR increment or decrement would overflow")

    def test_decrby(self):
        k = self.k()
        self.assertEqual(self.r.decrby(k, 5), -5)
        self.assertEqual(self.r.decrby(k, -8), 3)
        self.assertEqual(self.err("DECRBY", k, "x"), "ERR value is not an integer or out of range")

    # ---- expiry --------------------------------------------------------------------------
    def test_expire(self):
        k = self.k()
        self.assertFalse(self.r.expire(k, 100))  # missing key
        self.r.set(k, "v")
        self.assertTrue(self.r.expire(k, 100))
        self.assertTrue(95 <= self.r.ttl(k) <= 100)
        self.assertTrue(self.r.expire(k, -1))  # a time in the past deletes the key
        self.assertIsNone(self.r.get(k))
        self.r.set(k, "v")
        self.r.expire(k, 1)
        self.assertTrue(wait_until(lambda: self.r.get(k) is None, 5.0), "the key outlived EX 1")
        self.assertEqual(self.r.exists(k), 0)
        self.assertTrue(self.err("EXPIRE", k, "x").startswith("ERR value is not an integer"))

    def test_pexpire(self):
        k = self.k()
        self.assertFalse(self.r.pexpire(k, 1000))
        self.r.set(k, "v")
        self.assertTrue(self.r.pexpire(k, 100000))
        self.assertTrue(95000 <= self.r.pttl(k) <= 100000)
        self.r.pexpire(k, 150)
        self.assertTrue(wait_until(lambda: self.r.get(k) is None, 5.0), "the key outlived PX 150")

    def test_expireat(self):
        k = self.k()
        self.r.set(k, "v")
        self.assertTrue(self.r.expireat(k, int(time.time()) + 100))
        self.assertTrue(95 <= self.r.ttl(k) <= 101)
        self.assertTrue(self.r.expireat(k, int(time.time()) - 10))
        self.assertIsNone(self.r.get(k))
        self.assertFalse(self.r.expireat(k, int(time.time()) + 100))

    def test_pexpireat(self):
        k = self.k()
        self.r.set(k, "v")
        self.assertTrue(self.r.pexpireat(k, int(time.time() * 1000) + 100000))
        self.assertTrue(95000 <= self.r.pttl(k) <= 101000)
        self.assertTrue(self.r.pexpireat(k, 1))
        self.assertEqual(self.r.exists(k), 0)

    def test_ttl(self):
        k = self.k()
        self.assertEqual(self.r.ttl(k), -2)
        self.r.set(k, "v")
        self.assertEqual(self.r.ttl(k), -1)
        self.r.expire(k, 50)
        self.assertTrue(45 <= self.r.ttl(k) <= 50)

    def test_pttl(self):
        k = self.k()
        self.assertEqual(self.r.pttl(k), -2)
        self.r.set(k, "v")
        self.assertEqual(self.r.pttl(k), -1)
        self.r.pexpire(k, 50000)
        self.assertTrue(45000 <= self.r.pttl(k) <= 50000)

    def test_persist(self):
        k = self.k()
        self.assertFalse(self.r.persist(k))
        self.r.set(k, "v")
        self.assertFalse(self.r.persist(k))  # no expiry to remove
        self.r.expire(k, 100)
        self.assertTrue(self.r.persist(k))
        self.assertEqual(self.r.ttl(k), -1)
        self.assertEqual(self.r.get(k), b"v")

    def test_type(self):
        k = self.k()
        self.assertEqual(self.r.type(k), b"none")
        self.r.set(k, "v")
        self.assertEqual(self.r.type(k), b"string")

    # ---- server --------------------------------------------------------------------------
    def test_info(self):
        self.r.set(self.k(), "v")
        text = self.raw_call("INFO").decode()
        for section in ("Server", "Clients", "Memory", "Persistence", "Stats", "Keyspace"):
            self.assertIn("# " + section, text)
        info = self.r.info()
        self.assertGreaterEqual(info["connected_clients"], 1)
        self.assertIn("db0", info)
        self.assertGreaterEqual(info["db0"]["keys"], 1)
        for section in ("server", "clients", "memory", "persistence", "stats", "keyspace"):
            one = self.raw_call("INFO", section).decode()
            self.assertIn("# " + section.capitalize(), one, section)
            self.assertNotIn("# Keyspace" if section != "keyspace" else "# Server", one)
        self.assertIn("uptime_in_seconds", self.r.info("server"))

    def test_time(self):
        sec, usec = self.r.time()
        self.assertLess(abs(sec + usec / 1e6 - time.time()), 5.0)
        self.assertTrue(0 <= usec < 1000000)

    def test_config(self):
        got = self.r.config_get("maxclients")
        self.assertIn("maxclients", got)
        self.assertGreater(int(got["maxclients"]), 0)
        self.assertTrue(self.r.config_set("timeout", 250))
        self.assertEqual(self.r.config_get("timeout"), {"timeout": "250"})
        self.assertTrue(self.r.config_set("timeout", 0))
        self.assertEqual(self.r.config_get("timeout"), {"timeout": "0"})
        self.assertEqual(self.r.config_get("no-such-parameter-here"), {})
        self.assertTrue(self.err("CONFIG", "SET", "no-such-parameter-here", "1").startswith("ERR"))
        self.assertTrue(self.err("CONFIG", "BOGUS").startswith("ERR"))
        # what redis-benchmark asks at its start
        self.assertIn("save", self.r.config_get("save"))
        self.assertIn("appendonly", self.r.config_get("appendonly"))

    def test_command(self):
        n = self.raw_call("COMMAND", "COUNT")
        self.assertIsInstance(n, int)
        table = self.raw_call("COMMAND")
        self.assertEqual(len(table), n)
        names = {entry[0] for entry in table}
        self.assertTrue({b"get", b"set", b"ping", b"command"} <= names, names)
        # every command the server answers is in its table (what redis-cli's hints read); on a
        # server of its own, as the probes include FLUSHALL
        with Server() as s:
            for cmd in ALL_COMMANDS:
                with s.raw() as c:
                    rep = c.call(cmd, *(["x"] if cmd != "QUIT" else []))
                known = not (isinstance(rep, Err) and "unknown command" in rep.msg)
                self.assertEqual(known, cmd.lower().encode() in names, cmd)
        docs = self.raw_call("COMMAND", "DOCS", "get", "set")
        # RESP2: a flat array name, doc map, ...
        names = docs[0::2] if isinstance(docs, list) else list(docs)
        self.assertEqual(sorted(names), [b"get", b"set"])
        self.assertIsInstance(self.raw_call("COMMAND", "DOCS"), list)

    def test_every_command_of_the_list(self):
        """Every command of issue 13's list is known to the server (its own tests check what
        each does)."""
        unknown = []
        with Server() as s:
            for cmd in ALL_COMMANDS:
                with s.raw() as c:
                    rep = c.call(cmd)
                if isinstance(rep, Err) and "unknown command" in rep.msg:
                    unknown.append(cmd)
        self.assertEqual(unknown, [])

    def test_client(self):
        with self.srv.raw() as c, self.srv.raw() as d:
            i1 = c.call("CLIENT", "ID")
            i2 = d.call("CLIENT", "ID")
            self.assertIsInstance(i1, int)
            self.assertNotEqual(i1, i2)
            self.assertIsNone(c.call("CLIENT", "GETNAME"))
            self.assertEqual(c.call("CLIENT", "SETNAME", "tester-one"), "OK")
            self.assertEqual(c.call("CLIENT", "GETNAME"), b"tester-one")
            rep = c.call("CLIENT", "SETNAME", "has space")
            self.assertIsInstance(rep, Err)
            listing = d.call("CLIENT", "LIST").decode()
            lines = listing.strip().split("\n")
            self.assertGreaterEqual(len(lines), 2)
            mine = [ln for ln in lines if ("id=%d " % i1) in ln]
            self.assertEqual(len(mine), 1, listing)
            self.assertIn("name=tester-one", mine[0])
            self.assertIn("addr=127.0.0.1:", mine[0])
            self.assertIsInstance(c.call("CLIENT", "BOGUS"), Err)

    # ---- transactions ----------------------------------------------------------------------
    def test_multi_exec(self):
        k = self.k()
        with self.srv.raw() as c:
            self.assertEqual(c.call("MULTI"), "OK")
            self.assertEqual(c.call("SET", k + "a", "1"), "QUEUED")
            self.assertEqual(c.call("INCR", k + "n"), "QUEUED")
            self.assertEqual(c.call("GET", k + "a"), "QUEUED")
            self.assertEqual(c.call("MSET", k + "b", "2", k + "c", "3"), "QUEUED")
            self.assertEqual(c.call("EXEC"), ["OK", 1, b"1", "OK"])
            self.assertIsInstance(c.call("MULTI"), str)
            self.assertEqual(c.call("MULTI"), Err("ERR MULTI calls can not be nested"))
            self.assertEqual(c.call("DISCARD"), "OK")
            self.assertEqual(c.call("EXEC"), Err("ERR EXEC without MULTI"))
        self.assertEqual(self.r.mget([k + "a", k + "b", k + "c", k + "n"]),
                         [b"1", b"2", b"3", b"1"])

    def test_multi_errors(self):
        k = self.k()
        with self.srv.raw() as c:
            # a command refused while queueing aborts the whole transaction
            c.call("MULTI")
            c.call("SET", k + "a", "1")
            self.assertIsInstance(c.call("NOSUCHCOMMAND"), Err)
            rep = c.call("EXEC")
            self.assertIsInstance(rep, Err)
            self.assertTrue(rep.startswith("EXECABORT"), rep.msg)
            self.assertIsNone(self.r.get(k + "a"))
            # a command that fails when it runs answers its error; the others apply
            self.r.set(k + "s", "text")
            c.call("MULTI")
            c.call("SET", k + "b", "1")
            c.call("INCR", k + "s")
            c.call("SET", k + "c", "2")
            rep = c.call("EXEC")
            self.assertEqual(rep[0], "OK")
            self.assertIsInstance(rep[1], Err)
            self.assertEqual(rep[2], "OK")
            self.assertEqual(self.r.mget([k + "b", k + "c", k + "s"]), [b"1", b"2", b"text"])
            # WATCH inside MULTI is refused, the transaction goes on
            c.call("MULTI")
            self.assertIsInstance(c.call("WATCH", k + "a"), Err)
            self.assertEqual(c.call("DISCARD"), "OK")

    def test_discard(self):
        k = self.k()
        with self.srv.raw() as c:
            self.assertEqual(c.call("DISCARD"), Err("ERR DISCARD without MULTI"))
            c.call("MULTI")
            c.call("SET", k, "1")
            self.assertEqual(c.call("DISCARD"), "OK")
            self.assertEqual(c.call("PING"), "PONG")  # out of the transaction again
        self.assertIsNone(self.r.get(k))

    def test_watch(self):
        k = self.k()
        self.r.set(k, "0")
        with self.srv.raw() as c:
            # untouched: EXEC runs
            self.assertEqual(c.call("WATCH", k), "OK")
            c.call("MULTI")
            c.call("SET", k, "1")
            self.assertEqual(c.call("EXEC"), ["OK"])
            # touched by another client between WATCH and EXEC: EXEC answers nil
            c.call("WATCH", k)
            self.r.set(k, "other")
            c.call("MULTI")
            c.call("SET", k, "2")
            self.assertIsNone(c.call("EXEC"))
            self.assertEqual(self.r.get(k), b"other")
            # a watched absent key that another client creates is a conflict too
            c.call("WATCH", k + "new")
            self.r.set(k + "new", "x")
            c.call("MULTI")
            c.call("SET", k + "new", "mine")
            self.assertIsNone(c.call("EXEC"))
            self.assertEqual(self.r.get(k + "new"), b"x")
            # a deleted watched key is a conflict
            c.call("WATCH", k)
            self.r.delete(k)
            c.call("MULTI")
            c.call("SET", k, "3")
            self.assertIsNone(c.call("EXEC"))
            self.assertIsNone(self.r.get(k))
            # EXEC and DISCARD unwatch: the next transaction runs
            self.r.set(k, "5")
            c.call("MULTI")
            c.call("SET", k, "6")
            self.assertEqual(c.call("EXEC"), ["OK"])
            self.assertEqual(self.r.get(k), b"6")

    def test_watch_through_redis_py(self):
        k = self.k()
        self.r.set(k, "10")
        with self.r.pipeline() as p:
            p.watch(k)
            v = int(p.get(k))
            self.r.set(k, "99")  # someone else
            p.multi()
            p.set(k, v + 1)
            with self.assertRaises(redis.WatchError):
                p.execute()
        self.assertEqual(self.r.get(k), b"99")

    def test_unwatch(self):
        k = self.k()
        self.r.set(k, "0")
        with self.srv.raw() as c:
            c.call("WATCH", k)
            self.assertEqual(c.call("UNWATCH"), "OK")
            self.r.set(k, "1")
            c.call("MULTI")
            c.call("SET", k, "2")
            self.assertEqual(c.call("EXEC"), ["OK"])
        self.assertEqual(self.r.get(k), b"2")

    # ---- errors, limits --------------------------------------------------------------------
    def test_unknown_command(self):
        with self.srv.raw() as c:
            rep = c.call("NOSUCHCOMMAND", "a")
            self.assertIsInstance(rep, Err)
            self.assertTrue(rep.startswith("ERR unknown command"), rep.msg)
            self.assertEqual(c.call("PING"), "PONG")

    def test_command_names_any_case(self):
        k = self.k()
        with self.srv.raw() as c:
            self.assertEqual(c.call("sEt", k, "v"), "OK")
            self.assertEqual(c.call("get", k), b"v")

    def test_value_limits(self):
        k = self.k()
        big = os.urandom(pkvtest.MAX_VALUE)
        self.assertTrue(self.r.set(k, big))
        self.assertEqual(self.r.get(k), big)
        key = "k" * pkvtest.MAX_KEY
        self.assertTrue(self.r.set(key, "v"))
        self.assertEqual(self.r.get(key), b"v")
        self.r.delete(key)

    @pkv_only
    def test_key_too_long(self):
        k = "k" * (pkvtest.MAX_KEY + 1)
        with self.srv.raw() as c:
            rep = c.call("SET", k, "v")
            self.assertIsInstance(rep, Err)
            self.assertTrue(rep.startswith("ERR"), rep.msg)
            # an error reply, not a protocol error: the connection goes on
            self.assertIsNone(c.call("GET", k))
            self.assertEqual(c.call("PING"), "PONG")

    def test_append_past_max_value(self):
        k = self.k()
        self.r.set(k, b"x" * pkvtest.MAX_VALUE)
        with self.srv.raw() as c:
            rep = c.call("APPEND", k, "y")
            self.assertIsInstance(rep, Err)
            self.assertNotIn("unknown command", rep.msg)
            self.assertEqual(c.call("STRLEN", k), pkvtest.MAX_VALUE)


class Keyspace(unittest.TestCase):
    """DBSIZE, KEYS, SCAN, FLUSHDB, FLUSHALL: each test on a fresh server, from an empty store."""

    def setUp(self):
        self.srv = Server().start()
        self.r = self.srv.client()

    def tearDown(self):
        self.r.close()
        alive = self.srv.alive()
        rc = self.srv.stop()
        self.assertTrue(alive and rc == 0, "server %s (exit status %s); its log:\n%s"
                        % ("died" if not alive else "stopped badly", rc, self.srv.log()))

    err = ServerCase.err

    def fill(self, n, prefix="key:"):
        with self.r.pipeline(transaction=False) as p:
            for i in range(n):
                p.set("%s%d" % (prefix, i), i)
            p.execute()
        return {("%s%d" % (prefix, i)).encode() for i in range(n)}

    def test_dbsize(self):
        self.assertEqual(self.r.dbsize(), 0)
        self.fill(37)
        self.assertEqual(self.r.dbsize(), 37)
        self.r.delete("key:0")
        self.assertEqual(self.r.dbsize(), 36)

    def test_keys(self):
        want = self.fill(20, "a:")
        self.fill(5, "b:")
        self.r.set("hello", 1)
        self.r.set("hallo", 1)
        self.r.set("hxllo", 1)
        self.assertEqual(set(self.r.keys("a:*")), want)
        self.assertEqual(len(self.r.keys("*")), 28)
        self.assertEqual(set(self.r.keys("h?llo")), {b"hello", b"hallo", b"hxllo"})
        self.assertEqual(set(self.r.keys("h[ae]llo")), {b"hello", b"hallo"})
        self.assertEqual(set(self.r.keys("h[^e]llo")), {b"hallo", b"hxllo"})
        self.assertEqual(self.r.keys("nothing*"), [])

    def test_scan(self):
        want = self.fill(1000, "s:")
        others = self.fill(300, "t:")
        seen = []
        cursor = 0
        deadline = time.monotonic() + 30
        while True:
            cursor, keys = self.r.scan(cursor, count=50)
            seen += keys
            if cursor == 0:
                break
            self.assertLess(time.monotonic(), deadline, "SCAN did not end")
        self.assertEqual(set(seen), want | others)  # no write during it: every key ...
        self.assertEqual(len(seen), len(want | others))  # ... exactly once
        got = set(self.r.scan_iter(match="s:1*", count=100))
        self.assertEqual(got, {k for k in want if k.startswith(b"s:1")})
        self.assertTrue(self.err("SCAN", "notanumber").startswith("ERR"))

    def test_scan_with_writes(self):
        present = self.fill(500, "p:")
        cursor, seen, i = 0, set(), 0
        deadline = time.monotonic() + 30
        while True:
            cursor, keys = self.r.scan(cursor, count=20)
            seen.update(keys)
            self.r.set("new:%d" % i, i)  # keys added during the scan may or may not show
            i += 1
            if cursor == 0:
                break
            self.assertLess(time.monotonic(), deadline, "SCAN did not end")
        self.assertTrue(present <= seen, "a key present throughout the scan was not visited")

    def test_flushdb(self):
        self.fill(50)
        self.assertTrue(self.r.flushdb())
        self.assertEqual(self.r.dbsize(), 0)
        self.assertIsNone(self.r.get("key:1"))
        self.assertTrue(self.r.set("after", 1))
        self.assertEqual(self.r.dbsize(), 1)
        self.assertTrue(self.r.execute_command("FLUSHDB", "SYNC"))
        self.assertEqual(self.r.dbsize(), 0)

    def test_flushall(self):
        self.fill(50)
        self.assertTrue(self.r.flushall())
        self.assertEqual(self.r.dbsize(), 0)
        self.assertEqual(self.r.keys("*"), [])

    def test_info_keyspace(self):
        self.fill(12)
        self.r.set("exp", 1, ex=100)
        info = self.r.info("keyspace")
        self.assertEqual(info["db0"]["keys"], 13)
        self.assertEqual(info["db0"]["expires"], 1)


class OnDisk(ServerCase):
    """SAVE, BGSAVE, LASTSAVE, and what a restart keeps: a server on a directory."""

    server_kw = {"on_disk": True, "durability": "process"}

    def test_save(self):
        self.r.set(self.k(), "v")
        self.assertTrue(self.r.save())
        self.assertEqual(self.r.get(self.k()), b"v")

    def test_bgsave(self):
        self.r.set(self.k(), "v")
        rep = self.raw_call("BGSAVE")
        self.assertIsInstance(rep, str)  # "Background saving started"
        self.assertEqual(self.r.get(self.k()), b"v")

    def test_lastsave(self):
        t0 = self.r.lastsave()
        if hasattr(t0, "timestamp"):
            t0 = t0.timestamp()
        self.assertLessEqual(t0, time.time() + 2)
        time.sleep(1.1)
        self.r.set(self.k(), "v")
        self.r.save()
        t1 = self.r.lastsave()
        if hasattr(t1, "timestamp"):
            t1 = t1.timestamp()
        self.assertGreater(t1, t0)
        self.assertLess(abs(t1 - time.time()), 5)

    def test_restart_keeps_keys(self):
        d = tmpdir()
        with Server(directory=d, durability="process") as s:
            r = s.client()
            for key, v in (("a", "1"), ("b", "2"), ("c", "3")):
                r.set(key, v)
            r.set("a", "again")
            r.delete("b")
            r.close()
            self.assertEqual(s.stop(), 0)
        with Server(directory=d, durability="process") as s:
            r = s.client()
            self.assertEqual(r.mget(["a", "b", "c"]), [b"again", None, b"3"])
            r.close()
            self.assertEqual(s.stop(), 0)

    def test_restart_keeps_expiry(self):
        d = tmpdir()
        with Server(directory=d, durability="process") as s:
            r = s.client()
            r.set("c", "3", ex=1000)
            r.set("gone", "x", px=300)
            r.close()
            self.assertEqual(s.stop(), 0)
        time.sleep(0.4)
        with Server(directory=d, durability="process") as s:
            r = s.client()
            self.assertEqual(r.mget(["c", "gone"]), [b"3", None])
            self.assertTrue(990 <= r.ttl("c") <= 1000)
            r.close()
            self.assertEqual(s.stop(), 0)


class UnixSocket(unittest.TestCase):
    def test_unixsocket(self):
        path = os.path.join(tmpdir("sock-"), "pkv.sock")
        with Server(extra=["--unixsocket", path]) as s:
            r = redis.Redis(unix_socket_path=path, socket_timeout=10)
            self.assertTrue(r.set("over-unix", "1"))
            self.assertEqual(s.client().get("over-unix"), b"1")  # the same store over TCP
            self.assertEqual(r.get("over-unix"), b"1")
            r.close()
            self.assertEqual(s.stop(), 0)


@pkv_only
class Durability(unittest.TestCase):
    """Each --durability mode serves and keeps what it acknowledged over a clean stop."""

    def test_modes(self):
        for mode in ("process", "periodic", "power"):
            d = tmpdir()
            with Server(directory=d, durability=mode) as s:
                r = s.client()
                for i in range(50):
                    r.set("k%d" % i, "v%d" % i)
                r.close()
                self.assertEqual(s.stop(), 0, mode)
            with Server(directory=d, durability=mode) as s:
                r = s.client()
                self.assertEqual(r.mget(["k%d" % i for i in range(50)]),
                                 [("v%d" % i).encode() for i in range(50)], mode)
                r.close()
                self.assertEqual(s.stop(), 0, mode)

    def test_sigint_stops_cleanly(self):
        d = tmpdir()
        s = Server(directory=d, durability="process").start()
        r = s.client()
        r.set("x", "1")
        r.close()
        import signal
        self.assertEqual(s.stop(signal.SIGINT), 0)
        with Server(directory=d) as s2:
            self.assertEqual(s2.client().get("x"), b"1")

    def test_bad_options(self):
        """Bad command lines exit non-zero at once (nothing to wait for)."""
        import subprocess
        d = tmpdir()
        for argv in (["--durability", "sometimes", "--dir", d],
                     ["--port", "notaport", "--memory"],
                     ["--no-such-option"]):
            p = subprocess.run([pkvtest.CONFIG["server"], "--bind", "127.0.0.1"] + argv,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=10)
            self.assertNotEqual(p.returncode, 0, argv)

    def test_dir_locked(self):
        """A second server on a directory another one serves refuses to start."""
        d = tmpdir()
        with Server(directory=d) as s:
            t = Server(directory=d)
            with self.assertRaises(pkvtest.ServerError):
                t.start(wait=10)
            self.assertTrue(s.client().ping())


if __name__ == "__main__":
    sys.exit(pkvtest.main())
