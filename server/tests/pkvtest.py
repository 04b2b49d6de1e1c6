"""pkvtest: what the pkv-server tests share.

- free_port(): a free TCP port on 127.0.0.1 (picked at run time).
- Server: starts pkv-server (or, for the reference run, Debian's redis-server with the matching
  settings) on 127.0.0.1 and a free port, waits until it answers, and stops it by its pid. Every
  wait is bounded in time; a server that does not stop on SIGTERM is SIGKILLed by its pid.
- Raw: a socket client that sends raw bytes and parses RESP2 and RESP3 replies (redis-py 4.3
  speaks RESP2 only), for HELLO 3 and for the bad inputs redis-py cannot send.
- main(): the unittest runner. It applies the expected failures listed in
  expected_failures.txt: each test there names the commands it needs ("probes"), and is marked
  only while the server under test lacks one of them (pkv-server compiles in the commands whose
  store API exists); the runner prints what it marked and why. An expected failure that passes
  fails the run, so the list stays true.

Configuration comes from the command line of each test program:
  --server PATH      the pkv-server binary (or redis-server with --reference)
  --reference        run against Debian's redis-server instead: the control that the tests'
                     expectations are Redis's own behaviour (pkv-only tests are left out)
"""

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

HOST = "127.0.0.1"
MAX_VALUE = 1024 * 1024  # PKV_MAX_VALUE (include/pkv.h)
MAX_KEY = 1024  # PKV_MAX_KEY

CONFIG = {"server": None, "reference": False, "tmp": None}
STARTED = []  # every Server started: main() kills by pid any still running at the end


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def reference():
    return CONFIG["reference"]


class ServerError(Exception):
    pass


class Server:
    """One server process on 127.0.0.1.

    kind "pkv" runs pkv-server with the options of DESIGN.md ("Programs"); kind "redis" runs
    redis-server with the same meaning (no persistence for --memory, an AOF with the matching
    appendfsync for a directory; durability "none", for the crash loop's negative control: a
    directory but no persistence)."""

    def __init__(self, directory=None, durability=None, password=None, maxclients=None,
                 threads=None, timeout=None, extra=(), binary=None, kind=None, port=None,
                 nofile=None):
        self.binary = binary or CONFIG["server"]
        self.kind = kind or ("redis" if CONFIG["reference"] else "pkv")
        self.directory = directory
        self.durability = durability
        self.password = password
        self.maxclients = maxclients
        self.threads = threads
        self.timeout = timeout
        self.extra = list(extra)
        self.port = port
        self.nofile = nofile  # RLIMIT_NOFILE of the server process (soft and hard)
        self.proc = None
        self.logfile = None
        self.logpath = None

    def argv(self):
        if self.kind == "pkv":
            a = [self.binary, "--port", str(self.port), "--bind", HOST]
            if self.directory:
                a += ["--dir", self.directory]
            else:
                a += ["--memory"]
            if self.durability:
                a += ["--durability", self.durability]
            if self.password is not None:
                a += ["--requirepass", self.password]
            if self.maxclients is not None:
                a += ["--maxclients", str(self.maxclients)]
            if self.threads is not None:
                a += ["--threads", str(self.threads)]
            if self.timeout is not None:
                a += ["--timeout", str(self.timeout)]
            return a + self.extra
        a = [self.binary, "--port", str(self.port), "--bind", HOST, "--save", "",
             "--daemonize", "no", "--protected-mode", "yes",
             "--proto-max-bulk-len", str(MAX_VALUE), "--databases", "1",
             "--dir", self.directory or tempfile.mkdtemp(prefix="redis-", dir=CONFIG["tmp"])]
        if self.directory and self.durability != "none":
            fsync = {"power": "always", "periodic": "everysec"}.get(self.durability, "no")
            a += ["--appendonly", "yes", "--appendfsync", fsync]
        else:
            a += ["--appendonly", "no"]
        if self.password is not None:
            a += ["--requirepass", self.password]
        if self.maxclients is not None:
            a += ["--maxclients", str(self.maxclients)]
        if self.timeout is not None:
            a += ["--timeout", str(self.timeout)]
        return a + self.extra

    def start(self, wait=20.0):
        """Start on a free port (a few tries: another process may take the port between the
        pick and the bind) and wait until a PING gets PONG (or NOAUTH)."""
        fixed = self.port is not None
        last = None
        for _ in range(1 if fixed else 5):
            if not fixed:
                self.port = free_port()
            try:
                self._start_once(wait)
                return self
            except ServerError as e:
                last = e
                if self.proc is not None and self.proc.poll() is None:
                    self.kill()
        raise last

    def _start_once(self, wait):
        fd, self.logpath = tempfile.mkstemp(prefix="server-", suffix=".log", dir=CONFIG["tmp"])
        self.logfile = os.fdopen(fd, "wb")
        limit = None
        if self.nofile:
            import resource
            n = self.nofile
            limit = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))  # noqa: E731
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=self.logfile,
                                     stderr=subprocess.STDOUT, preexec_fn=limit)
        STARTED.append(self)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerError("server exited with %d at start:\n%s"
                                  % (self.proc.returncode, self.log()))
            try:
                with socket.create_connection((HOST, self.port), timeout=1.0) as s:
                    s.sendall(b"*1\r\n$4\r\nPING\r\n")
                    s.settimeout(2.0)
                    rep = s.recv(64)
                    # ready: PONG, or NOAUTH with a password (not -LOADING: still recovering)
                    if rep.startswith(b"+PONG") or rep.startswith(b"-NOAUTH"):
                        return
            except OSError:
                pass
            time.sleep(0.02)
        raise ServerError("server did not answer within %.0f s:\n%s" % (wait, self.log()))

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log(self):
        if self.logfile:
            self.logfile.flush()
        try:
            with open(self.logpath, "rb") as f:
                return f.read().decode("utf-8", "replace")[-4000:]
        except (OSError, TypeError):
            return ""

    def stop(self, sig=signal.SIGTERM, wait=30.0):
        """Send sig to the server's pid and wait for it (SIGKILL by pid after wait seconds).
        Returns the exit status as Popen reports it (-N for a signal)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(wait)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        if self.logfile:
            self.logfile.close()
            self.logfile = None
        return self.proc.returncode

    def kill(self):
        return self.stop(signal.SIGKILL)

    def rss_kb(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def client(self, **kw):
        import redis
        kw.setdefault("socket_timeout", 30)
        if self.password is not None:
            kw.setdefault("password", self.password)
        return redis.Redis(host=HOST, port=self.port, **kw)

    def raw(self, timeout=10.0):
        return Raw(self.port, timeout)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


# ---- a raw RESP2/RESP3 client --------------------------------------------------------------

class Err:
    """An error reply (-ERR ... or !N RESP3 blob error)."""

    def __init__(self, msg):
        self.msg = msg

    def __repr__(self):
        return "Err(%r)" % self.msg

    def __eq__(self, other):
        return isinstance(other, Err) and other.msg == self.msg

    def startswith(self, prefix):
        return self.msg.startswith(prefix)


class Verbatim(bytes):
    pass


class Push(list):
    pass


class Closed(Exception):
    """The server closed the connection."""


def encode(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        elif isinstance(a, int):
            a = str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Raw:
    """A blocking socket with a RESP2/RESP3 reply parser. Types: + -> str, - and ! -> Err,
    : and ( -> int, $ and = -> bytes (None for nil), * and ~ and > -> list, % -> dict,
    _ -> None, , -> float, # -> bool. Attributes (|) are read and dropped."""

    def __init__(self, port, timeout=10.0):
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.buf = b""

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        self.sock.sendall(data)

    def call(self, *args):
        self.send(encode(*args))
        return self.reply()

    def read_raw(self, n, wait=5.0):
        """Exactly n bytes of the reply stream, unparsed (to check the wire format)."""
        deadline = time.monotonic() + wait
        while len(self.buf) < n and time.monotonic() < deadline:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def _fill(self):
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            raise Closed()
        self.buf += chunk

    def _line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 2:]
                return line
            self._fill()

    def _exact(self, n):
        while len(self.buf) < n + 2:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def reply(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            return Err(rest.decode())
        if t in (b":", b"("):
            return int(rest)
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if t == b"!":
            return Err(self._exact(int(rest)).decode())
        if t == b"=":
            return Verbatim(self._exact(int(rest))[4:])  # drop the "txt:" format
        if t in (b"*", b"~", b">"):
            n = int(rest)
            if n < 0:
                return None
            items = [self.reply() for _ in range(n)]
            return Push(items) if t == b">" else items
        if t == b"%":
            n = int(rest)
            d = {}
            for _ in range(n):
                k = self.reply()
                d[k] = self.reply()
            return d
        if t == b"_":
            return None
        if t == b",":
            return float(rest)
        if t == b"#":
            return rest == b"t"
        if t == b"|":
            n = int(rest)
            for _ in range(2 * n):
                self.reply()
            return self.reply()
        raise AssertionError("unknown RESP type in %r" % line)

    def closed_by_peer(self, wait=5.0):
        """True if the server closes the connection within wait seconds (after any pending
        replies, which are dropped)."""
        self.sock.settimeout(wait)
        deadline = time.monotonic() + wait
        try:
            while time.monotonic() < deadline:
                if not self.sock.recv(1 << 16):
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False
        return False


# ---- expected failures and the runner ------------------------------------------------------

def load_expected_failures():
    """expected_failures.txt: one test a line, "TestClass.test_method  PROBE ; PROBE  # why".

    A probe is a command line (words split on blanks) that needs the feature the test needs.
    The test is an expected failure only while one of its probes answers "unknown command" or
    says the store lacks an API (pkv-server compiles in the commands whose store API exists):
    once every probe works, the test must pass. A line without probes marks the test always."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "expected_failures.txt")
    out = {}
    with open(path) as f:
        for line in f:
            body, _, why = line.partition("#")
            words = body.split(None, 1)
            if not words:
                continue
            probes = [p.split() for p in (words[1] if len(words) > 1 else "").split(";")]
            out[words[0]] = ([p for p in probes if p], why.strip())
    return out


def missing_features(probes):
    """Run each distinct probe on a fresh connection to a fresh in-memory server; return the
    set of probes (as strings) that the server does not support."""
    distinct = sorted({" ".join(p) for plist in probes for p in plist})
    if not distinct:
        return set()
    missing = set()
    with Server() as srv:
        for probe in distinct:
            with srv.raw() as c:
                rep = c.call(*probe.split())
            if isinstance(rep, Err) and ("unknown command" in rep.msg or "lacks" in rep.msg):
                missing.add(probe)
    return missing


def _apply_expected_failures(suite, xfail, missing, seen):
    for t in suite:
        if isinstance(t, unittest.TestSuite):
            _apply_expected_failures(t, xfail, missing, seen)
            continue
        tid = "%s.%s" % (type(t).__name__, t._testMethodName)
        if tid not in xfail:
            continue
        probes, why = xfail[tid]
        lacking = [" ".join(p) for p in probes if " ".join(p) in missing]
        if probes and not lacking:
            continue  # everything it needs is there: it must pass
        seen[tid] = ("needs " + ", ".join(lacking) + "; " if lacking else "") + why
        m = getattr(t, t._testMethodName)
        setattr(t, t._testMethodName, unittest.expectedFailure(m.__func__).__get__(t))


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--server", required=True)
    p.add_argument("--reference", action="store_true")
    p.add_argument("-k", action="append", default=[], help="only tests matching this substring")
    p.add_argument("-v", action="store_true")
    args = p.parse_args(argv)
    CONFIG["server"] = os.path.abspath(args.server) if os.sep in args.server else args.server
    CONFIG["reference"] = args.reference
    CONFIG["tmp"] = tempfile.mkdtemp(prefix="pkv-server-test-")
    module = sys.modules["__main__"]
    loader = unittest.TestLoader()
    if args.k:
        loader.testNamePatterns = ["*%s*" % k for k in args.k]
    suite = loader.loadTestsFromModule(module)
    if args.reference:
        suite = _without_pkv_only(suite)
    xfail = {} if args.reference else load_expected_failures()
    seen = {}
    if xfail:
        mine = {}
        _collect_ids(suite, mine)
        xfail = {k: v for k, v in xfail.items() if k in mine}
        missing = missing_features([v[0] for v in xfail.values()])
        _apply_expected_failures(suite, xfail, missing, seen)
    t0 = time.monotonic()
    try:
        result = unittest.TextTestRunner(verbosity=2 if args.v else 1).run(suite)
    finally:
        for srv in STARTED:
            if srv.alive():
                print("killing a server a test left running (pid %d)" % srv.pid)
                srv.kill()
    ok = result.wasSuccessful()
    if seen:
        print("\nexpected failures (expected_failures.txt: what pkv-server lacks, known bugs):")
        for tid in sorted(seen):
            print("  %-48s %s" % (tid, seen[tid]))
    if result.unexpectedSuccesses:
        print("\nFAIL: these pass now; remove them from expected_failures.txt:")
        for t in result.unexpectedSuccesses:
            print("  %s.%s" % (type(t).__name__, t._testMethodName))
    run = result.testsRun
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    print("\n%s: %d tests in %.1f s, %d passed, %d expected failures, %d failed"
          % ("reference redis-server" if args.reference else "pkv-server", run,
             time.monotonic() - t0, run - failed - len(result.expectedFailures),
             len(result.expectedFailures), failed))
    if ok:
        import shutil
        shutil.rmtree(CONFIG["tmp"], ignore_errors=True)
    else:
        print("server logs and data kept in %s" % CONFIG["tmp"])
    return 0 if ok and run > 0 else 1


def _collect_ids(suite, out):
    for t in suite:
        if isinstance(t, unittest.TestSuite):
            _collect_ids(t, out)
        else:
            out["%s.%s" % (type(t).__name__, t._testMethodName)] = t


def pkv_only(cls_or_fn):
    """Marks a test (class or method) that checks pkv-server's own behaviour, which Redis does
    not share (refusing a non-loopback bind, its durability modes): the reference run leaves it
    out; the pkv run always runs it."""
    cls_or_fn._pkv_only = True
    return cls_or_fn


def _without_pkv_only(suite):
    out = unittest.TestSuite()
    for t in suite:
        if isinstance(t, unittest.TestSuite):
            out.addTest(_without_pkv_only(t))
            continue
        m = getattr(type(t), t._testMethodName)
        if getattr(type(t), "_pkv_only", False) or getattr(m, "_pkv_only", False):
            continue
        out.addTest(t)
    return out


def tmpdir(prefix="store-"):
    return tempfile.mkdtemp(prefix=prefix, dir=CONFIG["tmp"])


def wait_until(pred, timeout, step=0.02):
    """Poll pred() until it is true or timeout seconds passed; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(step)
