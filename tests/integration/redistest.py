"""A throw-away redis-server for integration tests (Debian's redis-server).

    with RedisServer() as rs:                 # TCP on a free loopback port
        with Relay(env={"RELAY_STATE_URL": rs.url}) as relay: ...
    with RedisServer(unix=True) as rs: ...    # unix socket, rs.url = unix://...
    with RedisServer(aof=True) as rs:         # appendonly yes, fsync always
        rs.kill(); rs.start()                 # crash, then come back with the data

The server runs in a fresh temporary directory with `maxmemory-policy
noeviction` (as docs/store-redis.md requires), persistence off unless aof=True,
and dies with the test (SIGTERM, then SIGKILL; its directory is removed).
start() polls PING with a deadline. A TCP port is found by binding port 0 and
then started on; if another process takes it in between, start() tries again
with a new one. Shared by the legacy and the API v1 Redis store tests.
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from relaytest import scaled

REDIS_SERVER = os.environ.get("REDIS_SERVER", "redis-server")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """One redis-server process; `url` is what RELAY_STATE_URL takes."""

    def __init__(self, unix=False, aof=False, password=None, extra=None):
        self.unix = unix
        self.aof = aof
        self.password = password
        self.extra = list(extra or [])
        self.dir = tempfile.mkdtemp(prefix="tp-redis-")
        self.sock = os.path.join(self.dir, "redis.sock")
        self.port = None
        self.proc = None

    # -- lifecycle ---------------------------------------------------------
    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
        return False

    @property
    def url(self):
        if self.unix:
            return "unix://" + self.sock
        return "redis://127.0.0.1:%d/0" % self.port

    def _argv(self):
        argv = [REDIS_SERVER, "--dir", self.dir, "--daemonize", "no",
                "--save", "", "--maxmemory-policy", "noeviction",
                "--appendonly", "yes" if self.aof else "no",
                "--appendfsync", "always", "--bind", "127.0.0.1"]
        if self.unix:
            argv += ["--port", "0", "--unixsocket", self.sock,
                     "--unixsocketperm", "700"]
        else:
            argv += ["--port", str(self.port)]
        if self.password is not None:
            argv += ["--requirepass", self.password]
        return argv + self.extra

    def start(self):
        """Starts (or restarts on the same port/socket and directory)."""
        for _ in range(20):
            if not self.unix and self.port is None:
                self.port = free_port()
            self.proc = subprocess.Popen(self._argv(), stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT,
                                         start_new_session=True)
            deadline = time.monotonic() + scaled(15)
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                if self._ping():
                    return self
                time.sleep(0.01)
            out = self._reap()
            if b"Address already in use" in out and not self.unix:
                self.port = None        # taken in between: another port
                continue
            raise AssertionError("redis-server did not start:\n%s"
                                 % out.decode("utf-8", "replace"))
        raise AssertionError("no free port for redis-server")

    def _reap(self):
        if self.proc.poll() is None:
            self.proc.kill()
        out, _ = self.proc.communicate(timeout=scaled(10))
        return out or b""

    def kill(self):
        """SIGKILL: a crash (what was not persisted is lost)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.communicate(timeout=scaled(10))
        if self.unix and os.path.exists(self.sock):
            os.unlink(self.sock)

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.communicate(timeout=scaled(10))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()

    # -- commands ------------------------------------------------------------
    def _connect(self, timeout=2.0):
        if self.unix:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(timeout)
            s.connect(self.sock)
        else:
            s = socket.create_connection(("127.0.0.1", self.port),
                                         timeout=timeout)
        return s

    def _ping(self):
        try:
            return self.command("PING") in ("PONG", b"PONG")
        except (OSError, RedisError):
            return False

    def command(self, *args):
        """One command on a fresh connection (RESP2); returns the reply."""
        s = self._connect()
        try:
            f = s.makefile("rb")
            if self.password is not None:
                s.sendall(_encode(["AUTH", self.password]))
                _read(f)
            s.sendall(_encode(args))
            return _read(f)
        finally:
            s.close()

    def info(self, section):
        text = self.command("INFO", section).decode("utf-8")
        out = {}
        for line in text.splitlines():
            if ":" in line and not line.startswith("#"):
                k, _, v = line.partition(":")
                out[k] = v
        return out

    def keys(self, pattern="*"):
        return self.command("KEYS", pattern)


class RedisError(Exception):
    pass


class FaultProxy:
    """A unix-socket proxy in front of a RedisServer that makes the server
    misbehave the way real deployments do, without closing connections
    unless told to. `url` is what RELAY_STATE_URL takes. set_mode():

    "pass"        forward every command to the server (and its answers,
                  Pub/Sub messages included, back);
    "-<error>"    answer every command with that error line on the open
                  connection: "-READONLY ..." (a failover left a replica
                  behind a DNS name or virtual IP), "-MASTERDOWN ...",
                  "-LOADING ...";
    "reset"       close a connection at its next command: a dying server
                  whose socket still accepts.

    `accepted` counts connections; every thread is a daemon and close()
    ends them all."""

    def __init__(self, upstream):
        import threading
        self.upstream = upstream
        self.dir = tempfile.mkdtemp(prefix="tp-proxy-")
        self.sock = os.path.join(self.dir, "proxy.sock")
        self.mode = "pass"
        self.accepted = 0
        self._lock = threading.Lock()
        self._conns = []
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(self.sock)
        self._listener.listen(64)
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self):
        return "unix://" + self.sock

    def set_mode(self, mode):
        self.mode = mode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self):
        self._closed = True
        for s in [self._listener] + self._conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _accept(self):
        import threading
        while not self._closed:
            try:
                c, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.accepted += 1
                self._conns.append(c)
            threading.Thread(target=self._serve, args=(c,),
                             daemon=True).start()

    def _pump(self, up, c):
        try:
            while True:
                data = up.recv(65536)
                if not data:
                    break
                c.sendall(data)
        except OSError:
            pass
        for s in (up, c):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _serve(self, c):
        import threading
        f = c.makefile("rb")
        up = None
        try:
            while True:
                raw = _read_command(f)
                if raw is None:
                    break
                mode = self.mode
                if mode == "reset":
                    break
                if mode.startswith("-"):
                    c.sendall(mode.encode() + b"\r\n")
                    continue
                if up is None:
                    up = self.upstream._connect(timeout=None)
                    with self._lock:
                        self._conns.append(up)
                    threading.Thread(target=self._pump, args=(up, c),
                                     daemon=True).start()
                up.sendall(raw)
        except OSError:
            pass
        for s in (c, up):
            if s is not None:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def _read_command(f):
    """One RESP command (an array of bulk strings) as raw bytes, or None
    at the end of the stream."""
    head = f.readline()
    if not head:
        return None
    if not head.startswith(b"*"):
        raise OSError("not a RESP array: %r" % head[:20])
    parts = [head]
    for _ in range(int(head[1:-2])):
        line = f.readline()
        n = int(line[1:-2])
        parts += [line, f.read(n + 2)]
    return b"".join(parts)


def _encode(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode("utf-8")
        elif isinstance(a, int):
            a = str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def _read(f):
    line = f.readline()
    if not line:
        raise OSError("connection closed")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RedisError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        return data[:-2]
    if kind == b"*":
        n = int(rest)
        if n < 0:
            return None
        return [_read(f) for _ in range(n)]
    raise RedisError("bad reply %r" % line)


# -- topologies ---------------------------------------------------------------

TOPOLOGY = os.environ.get("TP_STATE_TOPOLOGY", "memory")


class Deployment:
    """The relays one test talks to, chosen by TP_STATE_TOPOLOGY:

    memory    one relay on memory:// (node_relay is client_relay);
    redis     (RelayOnState only) each relay on a redis-server of its own;
    redis-ab  two relays on one redis-server: nodes poll relay A, clients
              use relay B;
    redis-ba  the same, the other way round.

    Attribute access falls through to the client-side relay, so a test
    written for one Relay (r.post_json, r.metrics, ...) runs unchanged.
    """

    def __init__(self, env=None, topology=None):
        from relaytest import Relay
        self._Relay = Relay
        self.env = dict(env or {})
        self.topology = topology or TOPOLOGY
        self.redis = None
        self.relays = []
        self.node_relay = self.client_relay = None

    def __enter__(self):
        try:
            if self.topology == "memory":
                r = self._Relay(env=self.env).start()
                self.relays = [r]
                self.node_relay = self.client_relay = r
            elif self.topology in ("redis-ab", "redis-ba", "redis"):
                self.redis = RedisServer().start()
                env = dict(self.env, RELAY_STATE_URL=self.redis.url)
                a = self._Relay(env=env).start()
                self.relays.append(a)
                b = self._Relay(env=env).start()
                self.relays.append(b)
                if self.topology in ("redis-ab", "redis"):
                    self.node_relay, self.client_relay = a, b
                else:
                    self.node_relay, self.client_relay = b, a
            else:
                raise ValueError("TP_STATE_TOPOLOGY=%r" % self.topology)
        except BaseException:
            self._teardown()
            raise
        return self

    def _teardown(self):
        codes = [r.stop() for r in self.relays]
        if self.redis is not None:
            self.redis.stop()
            shutil.rmtree(self.redis.dir, ignore_errors=True)
        return codes

    def __exit__(self, exc_type, exc, tb):
        codes = self._teardown()
        if exc_type is None and any(c != 0 for c in codes):
            raise AssertionError("relay exit codes %r\n%s" % (
                codes, "".join(r.stderr_text() for r in self.relays)))
        return False

    def __getattr__(self, name):
        if name.startswith("_") or self.client_relay is None:
            raise AttributeError(name)
        return getattr(self.client_relay, name)


def _relay_on_state_class():
    from relaytest import Relay

    class RelayOnState(Relay):
        """A Relay that, when TP_STATE_TOPOLOGY is not "memory", runs on a
        redis-server of its own (unix socket), started before it and
        stopped after it: the same tests then cover the Redis store."""

        def start(self):
            self._redis = None
            if TOPOLOGY != "memory":
                self._redis = RedisServer(unix=True).start()
                self.env_overrides.setdefault("RELAY_STATE_URL",
                                              self._redis.url)
            try:
                return super().start()
            except BaseException:
                self._stop_redis()
                raise

        def _stop_redis(self):
            if getattr(self, "_redis", None) is not None:
                self._redis.stop()
                shutil.rmtree(self._redis.dir, ignore_errors=True)
                self._redis = None

        def stop(self, timeout=40):
            try:
                return super().stop(timeout)
            finally:
                self._stop_redis()

        def kill(self):
            try:
                super().kill()
            finally:
                self._stop_redis()

    return RelayOnState


RelayOnState = _relay_on_state_class()
