"""Forwarding of the OpenAI-style API to the GPU host (relay/src/upstream/forward.c).

Runs the real relay in front of tests/fixtures/upstream_server.py and checks
what the client got *and* what the upstream received: pass-through, SSE
streaming, each timeout, each error mapping, client disconnects, hop-by-hop
headers, connection reuse, health transitions, the circuit breaker and
TOKENPLACE_REQUIRE_UPSTREAM_HEALTH. Every wait polls with a deadline.
"""

import hashlib
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
import unittest

from relaytest import (RELAY_BIN, Relay, metric_value, scaled, wait_for,
                       main, SCALE)

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                       "fixtures", "upstream_server.py")


def ms(value):
    """A relay timeout in ms, stretched for slow runs (valgrind)."""
    return str(int(value * SCALE))


class Upstream:
    """The fixture upstream as a child process on an ephemeral port."""

    def __init__(self):
        self.proc = None
        self.port = None

    def __enter__(self):
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", "-B", FIXTURE, "--host", "127.0.0.1",
             "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = self.proc.stdout.readline()
        if not line:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("fixture did not start: %r"
                                 % self.proc.stderr.read())
        self.port = json.loads(line)["port"]
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=scaled(10))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()
        return False

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def call(self, method, path):
        conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                          timeout=scaled(10))
        try:
            conn.request(method, path, body=b"" if method == "POST" else None)
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read() or b"null")
        finally:
            conn.close()

    def stats(self):
        return self.call("GET", "/_fixture/stats")[1]

    def set_health(self, status=200, gate=None):
        q = "status=%d" % status + ("&gate=%s" % gate if gate else "")
        assert self.call("POST", "/_fixture/health?" + q)[0] == 200

    def release(self, gate):
        assert self.call("POST", "/_fixture/release/" + gate)[0] == 200

    def seen(self, rid):
        """What the upstream recorded for request id rid, or None."""
        status, obj = self.call("GET", "/_fixture/requests/" + rid)
        return obj if status == 200 else None

    def health_served(self, status):
        return self.stats()["health_served"].get(str(status), 0)


def relay_env(up, **extra):
    env = {"TOKENPLACE_RELAY_UPSTREAM_URL": up.url,
           "RELAY_UPSTREAM_HEALTH_INTERVAL_MS": "600000"}
    env.update(extra)
    return env


def healthz(r):
    status, obj = r.get_json("/healthz")
    return status, obj


def upstream_state(r):
    return healthz(r)[1]["upstreamHealth"]


_rid_counter = [0]


def new_rid(tag):
    _rid_counter[0] += 1
    return "%s-%d-%d" % (tag, os.getpid(), _rid_counter[0])


def read_chunked_events(sock_file, count):
    """Reads `count` chunks of a chunked body; returns their payloads."""
    out = []
    while len(out) < count:
        line = sock_file.readline()
        if not line:
            raise ConnectionError("connection closed")
        size = int(line.strip().split(b";")[0], 16)
        if size == 0:
            break
        out.append(sock_file.read(size))
        sock_file.readline()
    return out


def raw_request(port, method, path, headers=(), body=b""):
    """Sends a request on a raw socket; returns (sock, file, status, headers)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=scaled(30))
    head = "%s %s HTTP/1.1\r\nHost: relay.test\r\n" % (method, path)
    for k, v in headers:
        head += "%s: %s\r\n" % (k, v)
    if body:
        head += "Content-Length: %d\r\n" % len(body)
    s.sendall(head.encode() + b"\r\n" + body)
    f = s.makefile("rb")
    status_line = f.readline()
    hdrs = {}
    while True:
        line = f.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        k, _, v = line.decode().partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return s, f, int(status_line.split()[1]), hdrs


def read_body(f, headers):
    """The whole body of a response read with raw_request()."""
    if "content-length" in headers:
        return f.read(int(headers["content-length"]))
    return b"".join(read_chunked_events(f, 1 << 30))


def header_names(echo):
    return [k.lower() for k, _ in echo["headers"]]


def header_value(echo, name):
    for k, v in echo["headers"]:
        if k.lower() == name.lower():
            return v
    return None


def error_of(data):
    obj = json.loads(data)
    err = obj["error"]
    assert set(err) >= {"message", "type", "code"}, obj
    return err


class PassThrough(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.up = Upstream().__enter__()
        cls.relay = Relay(env=relay_env(cls.up)).start()

    @classmethod
    def tearDownClass(cls):
        code = cls.relay.stop()
        cls.up.__exit__(None, None, None)
        assert code == 0, code

    def test_method_path_query_body_headers(self):
        rid = new_rid("pass")
        body = {"model": "m", "messages": [{"role": "user", "content": "hé"}]}
        status, headers, data = self.relay.request(
            "POST", "/v1/chat/completions?a=1&b=%20x&c", json_body=body,
            headers={"X-Request-Id": rid, "Authorization": "Bearer tok",
                     "X-Custom": "v1", "Accept": "application/json",
                     "Host": "api.example.test",
                     "X-Forwarded-For": "203.0.113.7"})
        self.assertEqual(status, 200, data)
        echo = json.loads(data)
        self.assertEqual(echo["method"], "POST")
        self.assertEqual(echo["path"], "/v1/chat/completions")
        self.assertEqual(echo["query"], "a=1&b=%20x&c")
        self.assertEqual(json.loads(echo["body"]), body)
        self.assertEqual(header_value(echo, "Authorization"), "Bearer tok")
        self.assertEqual(header_value(echo, "X-Custom"), "v1")
        self.assertEqual(header_value(echo, "Accept"), "application/json")
        self.assertEqual(header_value(echo, "Content-Type"), "application/json")
        self.assertEqual(header_value(echo, "X-Request-Id"), rid)
        self.assertEqual(header_value(echo, "X-Forwarded-For"),
                         "203.0.113.7, 127.0.0.1")
        self.assertEqual(header_value(echo, "X-Forwarded-Proto"), "http")
        self.assertEqual(header_value(echo, "X-Forwarded-Host"),
                         "api.example.test")
        # Host is the upstream's by default
        self.assertEqual(header_value(echo, "Host"), "127.0.0.1:%d"
                         % self.up.port)
        self.assertNotIn("expect", header_names(echo))
        self.assertEqual(headers["x-request-id"], rid)
        self.assertEqual(headers["content-type"], "application/json")
        self.assertEqual(headers["x-echo-method"], "POST")
        seen = self.up.seen(rid)
        self.assertTrue(seen and seen["finished"], seen)

    def test_other_methods_and_api_prefix(self):
        for method in ("GET", "PUT", "PATCH", "DELETE"):
            body = b'{"k":1}' if method in ("PUT", "PATCH") else None
            status, headers, data = self.relay.request(
                method, "/api/v1/embeddings/x?y=2", body=body,
                headers={"Content-Type": "application/json"} if body else {})
            self.assertEqual(status, 200, (method, data))
            echo = json.loads(data)
            self.assertEqual(echo["method"], method)
            self.assertEqual(echo["path"], "/api/v1/embeddings/x")
            self.assertEqual(echo["query"], "y=2")
            self.assertEqual(echo["body"], body.decode() if body else "")
            if method == "GET":
                # libcurl adds nothing the client did not send
                self.assertNotIn("content-type", header_names(echo))
                self.assertNotIn("accept", header_names(echo))
        status, headers, data = self.relay.request("HEAD", "/v1/embeddings")
        self.assertEqual(status, 200)
        self.assertEqual(data, b"")
        self.assertEqual(headers["x-echo-method"], "HEAD")

    def test_empty_post(self):
        status, _, data = self.relay.request("POST", "/v1/completions",
                                             body=b"")
        self.assertEqual(status, 200, data)
        echo = json.loads(data)
        self.assertEqual(echo["body_len"], 0)
        self.assertEqual(header_value(echo, "Content-Length"), "0")

    def test_body_shorter_than_announced_never_reaches_upstream(self):
        """A small body is read whole before the upstream is contacted: a
        client that announces 100 bytes, sends 40 and stops sending gets
        400 and the upstream sees nothing of it."""
        rid = new_rid("short")
        s = socket.create_connection(("127.0.0.1", self.relay.port),
                                     timeout=scaled(30))
        try:
            s.sendall(("POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\n"
                       "Content-Type: application/json\r\nX-Request-Id: %s"
                       "\r\nContent-Length: 100\r\n\r\n" % rid).encode()
                      + b"x" * 40)
            s.shutdown(socket.SHUT_WR)
            f = s.makefile("rb")
            status_line = f.readline()
            self.assertEqual(status_line.split()[1], b"400", status_line)
            f.close()
        finally:
            s.close()
        self.assertIsNone(self.up.seen(rid))

    def test_upstream_status_and_headers_pass_through(self):
        for code in (400, 404, 418, 500, 503):
            status, headers, data = self.relay.request(
                "GET", "/v1/embeddings", headers={"X-Fixture": "status;code=%d"
                                              % code})
            self.assertEqual(status, code)
            self.assertEqual(headers["x-upstream-status"], str(code))
            self.assertEqual(json.loads(data)["error"]["message"],
                             "fixture status %d" % code)

    def test_chunked_request_body_streams(self):
        payload = [b"x" * 70000, b"y" * 5, b"z" * 30000]
        conn = self.relay.connection()
        try:
            conn.request("POST", "/v1/embeddings", body=iter(payload),
                         headers={"Content-Type": "application/json"},
                         encode_chunked=True)
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        self.assertEqual(resp.status, 200, data)
        echo = json.loads(data)
        whole = b"".join(payload)
        self.assertEqual(echo["body_len"], len(whole))
        self.assertEqual(echo["body_sha256"], hashlib.sha256(whole).hexdigest())

    def test_large_response_streams_intact(self):
        n = 5 * 1024 * 1024 + 17
        for chunked in ("0", "1"):
            status, headers, data = self.relay.request(
                "GET", "/v1/files?fixture=large;bytes=%d;chunked=%s"
                % (n, chunked))
            self.assertEqual(status, 200)
            self.assertEqual(len(data), n)
            block = b"0123456789abcdef" * 4096
            self.assertEqual(data[:len(block)], block)

    def test_body_over_limit_is_413(self):
        # refused from Content-Length alone, before the body is read
        rid = new_rid("big")
        s, f, status, headers = raw_request(
            self.relay.port, "POST", "/v1/chat/completions", headers=[
                ("Content-Type", "application/json"), ("X-Request-Id", rid),
                ("Content-Length", str(1048576 + 1))])
        try:
            self.assertEqual(status, 413)
            self.assertEqual(headers["connection"], "close")
            data = f.read(int(headers["content-length"]))
            self.assertEqual(error_of(data)["code"], "payload_too_large")
        finally:
            f.close()
            s.close()
        self.assertIsNone(self.up.seen(rid))
        # a chunked body is stopped once it passes the limit
        rid = new_rid("bigc")
        conn = self.relay.connection()
        try:
            conn.request("POST", "/v1/chat/completions", headers={
                "Content-Type": "application/json", "X-Request-Id": rid,
                "X-Fixture": "echo"},
                body=iter([b"y" * 65536] * 17), encode_chunked=True)
            resp = conn.getresponse()
            self.assertEqual(resp.status, 413)
            self.assertEqual(error_of(resp.read())["code"],
                             "payload_too_large")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the relay may close while the client is still sending
        finally:
            conn.close()
        seen = self.up.seen(rid)
        self.assertFalse(seen and seen.get("finished"), seen)
        self.assertGreaterEqual(metric_value(
            self.relay.metrics(), "tokenplace_relay_limit_rejections_total",
            limit="body_bytes"), 1)

    def test_relay_paths_are_never_forwarded(self):
        for path in ("/api/v1/relay/anything", "/api/v1/relay",
                     "/api/v1/meta", "/api/v1/version", "/v2/models",
                     "/other"):
            rid = new_rid("own")
            # answered by the relay itself (or 404), never by the upstream
            self.relay.request("GET", path, headers={"X-Request-Id": rid})
            self.assertIsNone(self.up.seen(rid), path)

    def test_dot_segments_refused(self):
        rid = new_rid("dots")
        status, _, data = self.relay.request(
            "GET", "/v1/%2e%2e/api/v1/relay/x", headers={"X-Request-Id": rid})
        self.assertEqual(status, 400, data)
        self.assertEqual(error_of(data)["code"], "bad_request")
        self.assertIsNone(self.up.seen(rid))

    def test_metrics(self):
        before = self.relay.metrics()
        n0 = metric_value(before, "tokenplace_relay_upstream_requests_total",
                          route="/v1/chat/completions", status="200") or 0
        status, _, _ = self.relay.request("POST", "/v1/chat/completions",
                                          json_body={"a": 1})
        self.assertEqual(status, 200)
        # The counters follow the answer the client already has (the
        # access log runs after the send): poll for them, never read once.
        text = wait_for(lambda: (lambda t: t if metric_value(
            t, "tokenplace_relay_requests_total", method="POST",
            endpoint="forward", status="200") else None)(
                self.relay.metrics()), 10, what="the forward counted")
        self.assertEqual(metric_value(
            text, "tokenplace_relay_upstream_requests_total",
            route="/v1/chat/completions", status="200"), n0 + 1)
        self.assertGreaterEqual(metric_value(
            text, "tokenplace_relay_requests_total", method="POST",
            endpoint="forward", status="200"), 1)
        self.assertGreaterEqual(metric_value(
            text, "tokenplace_relay_upstream_duration_seconds_count",
            route="/v1/chat/completions"), 1)
        self.assertGreaterEqual(metric_value(
            text, "tokenplace_relay_upstream_first_byte_seconds_count",
            route="/v1/chat/completions"), 1)
        self.assertGreater(metric_value(
            text, "tokenplace_relay_upstream_request_bytes_total"), 0)
        self.assertGreater(metric_value(
            text, "tokenplace_relay_upstream_response_bytes_total"), 0)
        self.assertGreaterEqual(metric_value(
            text, "tokenplace_relay_upstream_open_connections"), 1)
        self.assertEqual(metric_value(
            text, "tokenplace_relay_upstream_circuit_state", state="closed"), 1)
        self.assertEqual(metric_value(
            text, "tokenplace_relay_upstream_circuit_state", state="open"), 0)
        self.assertEqual(metric_value(
            text, "tokenplace_relay_upstream_in_flight_requests"), 0)


class Options(unittest.TestCase):
    def test_custom_prefixes_and_host_header(self):
        with Upstream() as up, Relay(env=relay_env(
                up, RELAY_FORWARD_PREFIXES="/custom/, /v9/",
                RELAY_UPSTREAM_HOST_HEADER="gpu.example.test")) as r:
            status, _, data = r.request("GET", "/custom/thing")
            self.assertEqual(status, 200, data)
            echo = json.loads(data)
            self.assertEqual(header_value(echo, "Host"), "gpu.example.test")
            self.assertEqual(r.request("GET", "/v9/x")[0], 200)
            rid = new_rid("notfwd")
            status, _, _ = r.request("GET", "/v1/embeddings",
                                     headers={"X-Request-Id": rid})
            self.assertEqual(status, 404)
            self.assertIsNone(up.seen(rid))
            # the health check uses the same Host
            st = upstream_state(r)
            self.assertEqual(st["upstream"], "up")

    def test_forward_off_forwards_nothing(self):
        # RELAY_FORWARD=off through the real environment: /v1/... and
        # /api/v1/... get the relay's own 404 and never reach the upstream,
        # while the prefix list itself is left at its default.
        with Upstream() as up, Relay(env=relay_env(
                up, RELAY_FORWARD="off")) as r:
            for path in ("/v1/embeddings", "/api/v1/chat/completions"):
                rid = new_rid("off")
                status, _, data = r.request("GET", path,
                                            headers={"X-Request-Id": rid})
                self.assertEqual(status, 404, data)
                self.assertIsNone(up.seen(rid), path)
            start = r.find_log("relay.startup")
            self.assertIs(start["forward"], False)
            self.assertEqual(healthz(r)[0], 200)
            self.assertIn(metric_value(
                r.metrics(), "tokenplace_relay_upstream_requests_total",
                route="/v1/embeddings"), (None, 0.0))

    def test_empty_prefixes_keep_the_default(self):
        # An empty variable counts as unset, as for every setting: the
        # default prefixes apply and /v1/... is forwarded.
        with Upstream() as up, Relay(env=relay_env(
                up, RELAY_FORWARD_PREFIXES="")) as r:
            rid = new_rid("empty")
            status, _, data = r.request("GET", "/v1/embeddings",
                                        headers={"X-Request-Id": rid})
            self.assertEqual(status, 200, data)
            self.assertIsNotNone(up.seen(rid))
            self.assertIs(r.find_log("relay.startup")["forward"], True)

    def test_prefix_list_without_a_prefix_is_a_config_error(self):
        with Relay(env={"RELAY_FORWARD_PREFIXES": " , "}) as r:
            status, obj = r.get_json("/healthz")
            self.assertEqual(status, 503)
            self.assertIn("RELAY_FORWARD_PREFIXES",
                          obj["details"]["invalidSettings"])
            line = r.wait_log("relay.config_invalid")
            self.assertIn("RELAY_FORWARD=off", line["reason"])

    def test_invalid_prefixes_are_a_config_error(self):
        with Relay(env={"RELAY_FORWARD_PREFIXES": "v1/"}) as r:
            status, obj = r.get_json("/healthz")
            self.assertEqual(status, 503)
            self.assertIn("RELAY_FORWARD_PREFIXES",
                          obj["details"]["invalidSettings"])


class Streaming(unittest.TestCase):
    def test_sse_first_chunk_before_upstream_finishes(self):
        with Upstream() as up, Relay(env=relay_env(up)) as r:
            rid = new_rid("sse")
            gate = "g-" + rid
            s, f, status, headers = raw_request(
                r.port, "POST", "/v1/chat/completions",
                headers=[("X-Request-Id", rid),
                         ("Content-Type", "application/json"),
                         ("X-Fixture", "sse;chunks=3;gate=" + gate)],
                body=b'{"stream": true}')
            try:
                self.assertEqual(status, 200)
                self.assertEqual(headers["content-type"], "text/event-stream")
                self.assertEqual(headers["transfer-encoding"], "chunked")
                first = read_chunked_events(f, 1)
                self.assertEqual(first, [b'data: {"i": 0}\n\n'])
                # the upstream is still held at its gate: nothing buffered
                seen = up.seen(rid)
                self.assertFalse(seen["finished"], seen)
                self.assertNotIn("chunk 1", [e[1] for e in seen["events"]])
                up.release(gate)
                # what arrives together may travel in one chunk
                rest = b"".join(read_chunked_events(f, 1 << 30))
                self.assertEqual(rest, b'data: {"i": 1}\n\n'
                                 b'data: {"i": 2}\n\n'
                                 b"data: [DONE]\n\n")
                wait_for(lambda: up.seen(rid)["finished"], 10,
                         what="upstream finished")
            finally:
                f.close()
                s.close()


class Timeouts(unittest.TestCase):
    def test_connect_timeout_is_504(self):
        lst = socket.socket()
        lst.bind(("127.0.0.1", 0))
        lst.listen(0)
        port = lst.getsockname()[1]
        fillers = []
        try:
            # A full accept queue makes the kernel drop further SYNs, so a
            # connect to this port hangs until the relay gives up.
            for _ in range(8):
                c = socket.socket()
                c.setblocking(False)
                try:
                    c.connect(("127.0.0.1", port))
                except BlockingIOError:
                    pass
                fillers.append(c)
            env = {"TOKENPLACE_RELAY_UPSTREAM_URL": "http://127.0.0.1:%d"
                   % port,
                   "RELAY_UPSTREAM_HEALTH_INTERVAL_MS": "600000",
                   "RELAY_UPSTREAM_CIRCUIT": "false",
                   "RELAY_UPSTREAM_CONNECT_TIMEOUT_MS": ms(300)}
            with Relay(env=env) as r:
                t0 = time.monotonic()
                status, _, data = r.request("GET", "/v1/embeddings")
                took = time.monotonic() - t0
                self.assertEqual(status, 504, data)
                self.assertEqual(error_of(data)["code"], "upstream_timeout")
                self.assertLess(took, scaled(5))
                self.assertEqual(metric_value(
                    r.metrics(), "tokenplace_relay_upstream_errors_total",
                    kind="upstream_connect_timeout"), 1)
        finally:
            for c in fillers:
                c.close()
            lst.close()

    def test_first_byte_timeout_is_504(self):
        with Upstream() as up, Relay(env=relay_env(
                up, RELAY_UPSTREAM_FIRST_BYTE_TIMEOUT_MS=ms(300))) as r:
            rid = new_rid("fb")
            status, _, data = r.request("GET", "/v1/embeddings", headers={
                "X-Fixture": "hang", "X-Request-Id": rid})
            self.assertEqual(status, 504, data)
            err = error_of(data)
            self.assertEqual(err["code"], "upstream_timeout")
            self.assertEqual(err["type"], "api_error")
            self.assertEqual(metric_value(
                r.metrics(), "tokenplace_relay_upstream_errors_total",
                kind="upstream_first_byte_timeout"), 1)
            # the relay dropped its upstream connection
            wait_for(lambda: up.seen(rid)["aborted"], 10,
                     what="upstream saw the relay leave")
            # a slow but timely answer is fine
            status, _, _ = r.request("GET", "/v1/embeddings", headers={
                "X-Fixture": "delay;ms=50"})
            self.assertEqual(status, 200)

    def test_idle_timeout_before_body_is_504(self):
        with Upstream() as up, Relay(env=relay_env(
                up, RELAY_UPSTREAM_IDLE_TIMEOUT_MS=ms(300))) as r:
            status, _, data = r.request("GET", "/v1/embeddings", headers={
                "X-Fixture": "sse;first=0;gate=never-" + new_rid("i")})
            self.assertEqual(status, 504, data)
            self.assertEqual(metric_value(
                r.metrics(), "tokenplace_relay_upstream_errors_total",
                kind="upstream_idle_timeout"), 1)

    def test_idle_timeout_mid_stream_cuts_the_response(self):
        with Upstream() as up, Relay(env=relay_env(
                up, RELAY_UPSTREAM_IDLE_TIMEOUT_MS=ms(300))) as r:
            s, f, status, headers = raw_request(
                r.port, "GET", "/v1/chat/completions", headers=[
                    ("X-Fixture", "sse;chunks=3;gate=never-" + new_rid("i"))])
            try:
                self.assertEqual(status, 200)
                self.assertEqual(read_chunked_events(f, 1),
                                 [b'data: {"i": 0}\n\n'])
                # then the relay closes without the terminating chunk
                with self.assertRaises(ConnectionError):
                    read_chunked_events(f, 1)
            finally:
                f.close()
                s.close()
            self.assertEqual(metric_value(
                r.metrics(), "tokenplace_relay_upstream_errors_total",
                kind="upstream_idle_timeout"), 1)

    def test_total_timeout(self):
        with Upstream() as up, Relay(env=relay_env(
                up, RELAY_UPSTREAM_TOTAL_TIMEOUT_MS=ms(700),
                RELAY_UPSTREAM_IDLE_TIMEOUT_MS=ms(5000))) as r:
            # an answer that never stalls but never ends in time
            s, f, status, _ = raw_request(
                r.port, "GET", "/v1/chat/completions", headers=[
                    ("X-Fixture", "sse;chunks=100000;interval_ms=50")])
            try:
                self.assertEqual(status, 200)
                got = 0
                with self.assertRaises(ConnectionError):
                    while True:
                        got += len(read_chunked_events(f, 1))
                        if got > 100000:
                            break
                self.assertGreater(got, 0)
            finally:
                f.close()
                s.close()
            self.assertEqual(metric_value(
                r.metrics(), "tokenplace_relay_upstream_errors_total",
                kind="upstream_total_timeout"), 1)
            # and before the first byte it is a clean 504
            status, _, data = r.request("GET", "/v1/embeddings", headers={
                "X-Fixture": "hang"})
            self.assertEqual(status, 504, data)


class Errors(unittest.TestCase):
    def test_refused_is_502(self):
        holder = socket.socket()  # bound, never listening: connect refused
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        try:
            env = {"TOKENPLACE_RELAY_UPSTREAM_URL": "http://127.0.0.1:%d"
                   % port, "RELAY_UPSTREAM_HEALTH_INTERVAL_MS": "600000",
                   "RELAY_UPSTREAM_CIRCUIT": "false"}
            with Relay(env=env) as r:
                status, headers, data = r.request(
                    "POST", "/v1/chat/completions", json_body={"a": 1})
                self.assertEqual(status, 502, data)
                err = error_of(data)
                self.assertEqual(err["code"], "upstream_unreachable")
                self.assertEqual(headers["content-type"], "application/json")
                self.assertEqual(metric_value(
                    r.metrics(), "tokenplace_relay_upstream_errors_total",
                    kind="upstream_unreachable"), 1)
                # the line is read from the relay's stdout on another thread
                r.wait_log("upstream.forward_failed",
                           kind="upstream_unreachable")
        finally:
            holder.close()

    def test_name_that_does_not_resolve_is_502(self):
        env = {"TOKENPLACE_GPU_HOST": "no-such-host.invalid",
               "RELAY_UPSTREAM_HEALTH_INTERVAL_MS": "600000",
               "RELAY_UPSTREAM_CIRCUIT": "false"}
        with Relay(env=env) as r:
            status, _, data = r.request("GET", "/v1/embeddings")
            self.assertEqual(status, 502, data)
            self.assertEqual(error_of(data)["code"], "upstream_unreachable")
            st = wait_for(lambda: (lambda s: s if s["lastError"] else None)(
                upstream_state(r)), 10, what="health verdict")
            self.assertEqual(st["upstream"], "down")
            self.assertIn("does not resolve", st["lastError"])

    def test_close_before_response_is_502(self):
        with Upstream() as up, Relay(env=relay_env(
                up, RELAY_UPSTREAM_CIRCUIT="false")) as r:
            status, _, data = r.request("GET", "/v1/embeddings", headers={
                "X-Fixture": "close;at=start"})
            self.assertEqual(status, 502, data)
            self.assertEqual(error_of(data)["code"], "upstream_bad_response")

    def test_close_mid_body(self):
        with Upstream() as up, Relay(env=relay_env(
                up, RELAY_UPSTREAM_CIRCUIT="false")) as r:
            # The answer's start went out before the upstream broke off (the
            # fixture holds the cut at a gate): the client's copy is cut.
            # (Had the cut come in the same read as the start, the client
            # would get a clean 502 instead; that race is not tested.)
            gate = "cut-" + new_rid("g")
            conn = r.connection()
            try:
                conn.request("GET", "/v1/embeddings",
                             headers={"X-Fixture": "close;at=body;gate=" + gate})
                resp = conn.getresponse()
                self.assertEqual(resp.status, 200)
                first = resp.read1(100)
                self.assertTrue(first.startswith(b'{"partial": "x'), first)
                up.release(gate)
                with self.assertRaises((http.client.IncompleteRead,
                                        ConnectionResetError)):
                    resp.read()
            finally:
                conn.close()
            self.assertEqual(metric_value(
                r.metrics(), "tokenplace_relay_upstream_errors_total",
                kind="upstream_bad_response"), 1)

    def test_response_too_large(self):
        limit = 1 << 20
        with Upstream() as up, Relay(env=relay_env(
                up, RELAY_UPSTREAM_MAX_RESPONSE_BYTES=str(limit))) as r:
            # announced too large: a clean 502 before any byte
            status, _, data = r.request(
                "GET", "/v1/files?fixture=large;bytes=%d" % (limit + 1))
            self.assertEqual(status, 502, data)
            self.assertEqual(error_of(data)["code"],
                             "upstream_response_too_large")
            # HEAD of a large answer announces its length without a body
            status, headers, data = r.request(
                "HEAD", "/v1/files?fixture=large;bytes=%d" % (limit + 1))
            self.assertEqual(status, 200)
            self.assertEqual(data, b"")
            # exactly at the limit passes
            status, _, data = r.request(
                "GET", "/v1/files?fixture=large;chunked=1;bytes=%d" % limit)
            self.assertEqual(status, 200)
            self.assertEqual(len(data), limit)
            # discovered while streaming: the response is cut
            conn = r.connection()
            try:
                conn.request("GET", "/v1/files?fixture=large;chunked=1;"
                             "bytes=%d" % (3 * limit))
                resp = conn.getresponse()
                self.assertEqual(resp.status, 200)
                with self.assertRaises((http.client.IncompleteRead,
                                        ConnectionResetError)):
                    resp.read()
            finally:
                conn.close()
            text = r.metrics()
            self.assertEqual(metric_value(
                text, "tokenplace_relay_upstream_errors_total",
                kind="upstream_response_too_large"), 2)
            self.assertEqual(metric_value(
                text, "tokenplace_relay_limit_rejections_total",
                limit="upstream_response_bytes"), 2)

    def test_response_headers_too_large(self):
        with Upstream() as up, Relay(env=relay_env(
                up, RELAY_UPSTREAM_MAX_HEADER_BYTES="2048")) as r:
            status, _, data = r.request("GET", "/v1/embeddings", headers={
                "X-Fixture": "bigheaders;count=40"})
            self.assertEqual(status, 502, data)
            self.assertEqual(error_of(data)["code"],
                             "upstream_response_too_large")
            status, _, _ = r.request("GET", "/v1/embeddings", headers={
                "X-Fixture": "bigheaders;count=5"})
            self.assertEqual(status, 200)


class ClientDisconnect(unittest.TestCase):
    def test_disconnect_while_upstream_is_silent(self):
        with Upstream() as up, Relay(env=relay_env(up)) as r:
            rid = new_rid("gone")
            s = socket.create_connection(("127.0.0.1", r.port),
                                         timeout=scaled(10))
            s.sendall(("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                       "X-Request-Id: %s\r\nX-Fixture: hang\r\n"
                       "Content-Type: application/json\r\n"
                       "Content-Length: 2\r\n\r\n{}" % rid).encode())
            wait_for(lambda: up.seen(rid), 10, what="request upstream")
            self.assertFalse(up.seen(rid)["aborted"])
            s.close()
            # default timeouts are minutes: only the disconnect explains it
            wait_for(lambda: up.seen(rid)["aborted"], 5,
                     what="upstream transfer aborted")
            wait_for(lambda: metric_value(
                r.metrics(), "tokenplace_relay_upstream_errors_total",
                kind="client_gone") == 1, 10, what="client_gone counted")
            wait_for(lambda: metric_value(
                r.metrics(), "tokenplace_relay_upstream_in_flight_requests")
                == 0, 10, what="forward finished")

    def test_disconnect_mid_stream(self):
        with Upstream() as up, Relay(env=relay_env(up)) as r:
            rid = new_rid("gone-sse")
            gate = "g-" + rid
            s, f, status, _ = raw_request(
                r.port, "GET", "/v1/chat/completions", headers=[
                    ("X-Request-Id", rid),
                    ("X-Fixture", "sse;chunks=3;gate=" + gate)])
            self.assertEqual(status, 200)
            self.assertEqual(len(read_chunked_events(f, 1)), 1)
            f.close()
            s.close()
            wait_for(lambda: up.seen(rid)["aborted"], 5,
                     what="upstream stream aborted")
            up.release(gate)


class HopByHop(unittest.TestCase):
    def test_request_hop_headers_dropped(self):
        with Upstream() as up, Relay(env=relay_env(up)) as r:
            s, f, status, _ = raw_request(
                r.port, "GET", "/v1/embeddings", headers=[
                    ("Connection", "keep-alive, X-Client-Hop"),
                    ("X-Client-Hop", "secret"),
                    ("Keep-Alive", "timeout=5"),
                    ("Proxy-Authorization", "Basic eDp5"),
                    ("Proxy-Connection", "keep-alive"),
                    ("TE", "trailers"),
                    ("Trailer", "X-T"),
                    ("X-End-To-End", "yes")])
            try:
                self.assertEqual(status, 200)
                echo = json.loads(read_body(f, _))
            finally:
                f.close()
                s.close()
            names = header_names(echo)
            for h in ("x-client-hop", "keep-alive", "proxy-authorization",
                      "proxy-connection", "te", "trailer"):
                self.assertNotIn(h, names)
            self.assertNotEqual(header_value(echo, "Connection"),
                                "keep-alive, X-Client-Hop")
            self.assertEqual(header_value(echo, "X-End-To-End"), "yes")

    def test_exact_request_header_set_received(self):
        """What the upstream receives is exactly the end-to-end headers
        plus the relay's own: no credential of the relay, nothing
        hop-by-hop, nothing libcurl would add by itself."""
        rid = new_rid("exact")
        with Upstream() as up, Relay(env=relay_env(up)) as r:
            s, f, status, hdrs = raw_request(
                r.port, "POST", "/v1/chat/completions", headers=[
                    ("X-Request-Id", rid),
                    ("Content-Type", "application/json"),
                    ("Authorization", "Bearer sk-upstream"),
                    ("X-Relay-Server-Token", "node-registration-secret"),
                    ("X-Relay-Other", "relay-only"),
                    ("Connection", "keep-alive, X-Named-Hop"),
                    ("X-Named-Hop", "hop"),
                    ("Keep-Alive", "timeout=5"),
                    ("TE", "trailers"),
                    ("Trailer", "X-T"),
                    ("Upgrade", "h2c"),
                    ("Proxy-Authorization", "Basic eDp5"),
                    ("Proxy-Connection", "keep-alive"),
                    ("X-End-To-End", "yes"),
                ], body=b'{"model":"m","messages":[]}')
            try:
                self.assertEqual(status, 200)
                echo = json.loads(read_body(f, hdrs))
            finally:
                f.close()
                s.close()
            got = sorted(header_names(echo))
            self.assertEqual(got, sorted([
                "host", "content-type", "authorization", "x-end-to-end",
                "content-length", "x-forwarded-for", "x-forwarded-proto",
                "x-forwarded-host", "x-request-id"]), echo["headers"])
            self.assertEqual(header_value(echo, "Authorization"),
                             "Bearer sk-upstream")
            self.assertEqual(header_value(echo, "X-Request-Id"), rid)
            self.assertEqual(header_value(echo, "X-Forwarded-For"),
                             "127.0.0.1")
            for k, v in echo["headers"]:
                self.assertNotIn("secret", v)

    def test_response_hop_headers_dropped(self):
        with Upstream() as up, Relay(env=relay_env(up)) as r:
            status, headers, data = r.request("GET", "/v1/embeddings", headers={
                "X-Fixture": "hop"})
            self.assertEqual(status, 200, data)
            for h in ("x-hop-named", "keep-alive", "proxy-authenticate",
                      "upgrade", "trailer"):
                self.assertNotIn(h, headers)
            self.assertNotIn("x-hop-named", headers.get("connection", "")
                             .lower())
            self.assertEqual(headers["x-end-to-end"], "kept")
            self.assertEqual(headers["set-cookie"], "a=b; Path=/")


class ConnectionReuse(unittest.TestCase):
    def test_no_new_connection_per_request(self):
        workers, per_worker = 8, 25
        with Upstream() as up, Relay(env=relay_env(up)) as r:
            errors = []

            def client():
                conn = r.connection()
                try:
                    for _ in range(per_worker):
                        conn.request("POST", "/v1/chat/completions",
                                     body=b'{"a":1}', headers={
                                         "Content-Type": "application/json"})
                        resp = conn.getresponse()
                        resp.read()
                        if resp.status != 200:
                            errors.append(resp.status)
                except Exception as e:  # reported below
                    errors.append(repr(e))
                finally:
                    conn.close()

            threads = [threading.Thread(target=client) for _ in range(workers)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(scaled(120))
            self.assertEqual(errors, [])
            st = up.stats()
            self.assertEqual(st["requests"], workers * per_worker)
            forwarded = st["connections_by_kind"].get("other", 0)
            # at most one upstream connection per concurrent request
            self.assertLessEqual(forwarded, workers, st)
            opened = metric_value(
                r.metrics(), "tokenplace_relay_upstream_connections_opened_total")
            # health checks use their own short connections, not counted
            self.assertEqual(opened, forwarded, st)


def maps_libcurl(r):
    """True when the relay process has libcurl mapped."""
    with open("/proc/%d/maps" % r.proc.pid) as f:
        return "libcurl" in f.read()


class LazyLibcurl(unittest.TestCase):
    def test_idle_relay_does_not_map_libcurl(self):
        """libcurl and its dependency tree (the bulk of an idle relay's
        resident memory) are loaded by the first forwarded request only;
        the health check of an http:// upstream uses a plain socket."""
        with Upstream() as up:
            env = relay_env(up, RELAY_UPSTREAM_HEALTH_INTERVAL_MS="50",
                            RELAY_UPSTREAM_HEALTH_SUCCESSES="1")
            with Relay(env=env) as r:
                wait_for(lambda: upstream_state(r)["upstream"] == "up", 10,
                         what="upstream up")
                wait_for(lambda: up.stats()["health_served"].get("200", 0)
                         >= 3, 10, what="three health checks")
                self.assertFalse(maps_libcurl(r))
                self.assertIsNone(r.find_log("upstream.libcurl_loaded"))
                status, _h, data = r.request("GET", "/v1/embeddings?x=1")
                self.assertEqual(status, 200, data)
                self.assertEqual(json.loads(data)["query"], "x=1")
                self.assertTrue(maps_libcurl(r))
                r.wait_log("upstream.libcurl_loaded")
                status, _h, data = r.request("GET", "/v1/embeddings")
                self.assertEqual(status, 200, data)
                loads = [ln for ln in r.logs()
                         if ln.get("message") == "upstream.libcurl_loaded"]
                self.assertEqual(len(loads), 1, loads)


    def test_https_upstream_is_checked_through_libcurl(self):
        """The plain probe does no TLS: an https:// upstream is checked by
        libcurl, loaded by the health thread. The fixture speaks plain
        HTTP, so the TLS handshake fails and the upstream is down."""
        with Upstream() as up:
            env = {"TOKENPLACE_RELAY_UPSTREAM_URL":
                   "https://127.0.0.1:%d" % up.port,
                   "RELAY_UPSTREAM_HEALTH_INTERVAL_MS": "50",
                   "RELAY_UPSTREAM_HEALTH_FAILURES": "1",
                   "RELAY_UPSTREAM_CIRCUIT": "false"}
            with Relay(env=env) as r:
                st = wait_for(lambda: (lambda s: s if s["lastError"] else None)(
                    upstream_state(r)), 10, what="health verdict")
                self.assertEqual(st["upstream"], "down")
                self.assertTrue(st["lastError"].startswith("GET /health: "),
                                st)
                r.wait_log("upstream.libcurl_loaded")
                self.assertTrue(maps_libcurl(r))
                status, _h, data = r.request("GET", "/v1/embeddings")
                self.assertEqual(status, 502, data)

    def test_upstream_password_never_shown(self):
        """/healthz is public and logs travel: the userinfo's password
        (which may hold '/' and '@') shows as ***, in the upstream URL, the
        health URL and a reason naming the host alike."""
        secret = "pa/ss@w0rd-upstream"
        with Upstream() as up:
            for host in ("127.0.0.1:%d" % up.port, "tp-no-such-host.invalid:1"):
                with self.subTest(host=host):
                    url = "https://gpu-user:%s@%s" % (secret, host)
                    env = {"TOKENPLACE_RELAY_UPSTREAM_URL": url,
                           "RELAY_UPSTREAM_HEALTH_INTERVAL_MS": "50",
                           "RELAY_UPSTREAM_HEALTH_FAILURES": "1",
                           "RELAY_UPSTREAM_CIRCUIT": "false"}
                    with Relay(env=env) as r:
                        st = wait_for(lambda: (lambda s: s if s["lastError"]
                                               else None)(upstream_state(r)),
                                      10, what="health verdict")
                        _s, _h, body = r.request("GET", "/healthz")
                        obj = json.loads(body)
                        self.assertEqual(obj["upstream"],
                                         "https://gpu-user:***@" + host)
                        self.assertTrue(st["url"].startswith(
                            "https://gpu-user:***@" + host), st)
                        self.assertNotIn(b"w0rd", body)
                        self.assertNotIn(b"pa/ss", body)
                        self.assertNotIn("w0rd", r.metrics())
                        r.wait_log("upstream.health_changed")
                    logs = "".join(r.raw_logs()) + r.stderr_text()
                    self.assertNotIn("w0rd", logs)
                    self.assertNotIn("pa/ss", logs)
                    self.assertIn("gpu-user:***@", logs)
            p = subprocess.run([RELAY_BIN, "--check-config"], env=dict(
                os.environ, TOKENPLACE_RELAY_UPSTREAM_URL=url),
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
            self.assertEqual(p.returncode, 0, p.stdout)
            self.assertNotIn(b"w0rd", p.stdout)
            self.assertIn(b"gpu-user:***@", p.stdout)

    def test_libcurl_that_cannot_be_loaded(self):
        """A missing libcurl costs forwarding only: 500 JSON for forwarded
        requests, one log line, the relay protocol and probes unharmed."""
        with Upstream() as up:
            env = relay_env(up, RELAY_LIBCURL="libtp-no-such-curl.so.4")
            with Relay(env=env) as r:
                for _ in range(2):
                    status, headers, data = r.request("GET", "/v1/embeddings")
                    self.assertEqual(status, 500, data)
                    self.assertEqual(headers["content-type"],
                                     "application/json")
                    self.assertEqual(error_of(data)["code"], "internal_error")
                line = r.wait_log("upstream.libcurl_unavailable")
                self.assertEqual(line["library"], "libtp-no-such-curl.so.4")
                self.assertIn("libtp-no-such-curl.so.4", line["reason"])
                self.assertEqual(len([ln for ln in r.logs() if ln.get(
                    "message") == "upstream.libcurl_unavailable"]), 1)
                self.assertEqual(up.stats()["requests"], 0)
                self.assertEqual(r.get_json("/livez")[0], 200)
                status, obj = r.post_json("/sink", {"server_public_key": "K"})
                self.assertEqual(status, 200, obj)
                self.assertFalse(maps_libcurl(r))


class Health(unittest.TestCase):
    def test_transitions_with_debounce(self):
        with Upstream() as up:
            gate = "h-" + new_rid("gate")
            up.set_health(200, gate=gate)
            env = relay_env(up, RELAY_UPSTREAM_HEALTH_INTERVAL_MS="50",
                            RELAY_UPSTREAM_HEALTH_FAILURES="3",
                            RELAY_UPSTREAM_HEALTH_SUCCESSES="2",
                            RELAY_UPSTREAM_HEALTH_TIMEOUT_MS=ms(5000),
                            RELAY_UPSTREAM_CIRCUIT="false")
            with Relay(env=env) as r:
                # the first check is held by the fixture: nothing known yet
                st = upstream_state(r)
                self.assertEqual(st["upstream"], "unknown")
                self.assertIsNone(st["lastCheck"])
                self.assertEqual(metric_value(
                    r.metrics(), "tokenplace_relay_upstream_health_state",
                    state="unknown"), 1)
                up.set_health(200)
                up.release(gate)
                wait_for(lambda: upstream_state(r)["upstream"] == "up", 10,
                         what="up")

                fails_before = up.health_served(503)
                up.set_health(503)
                st = wait_for(lambda: (lambda s: s if s["upstream"] == "down"
                                       else None)(upstream_state(r)), 10,
                              what="down")
                # debounced: at least 3 failing answers were needed
                self.assertGreaterEqual(up.health_served(503) - fails_before,
                                        3)
                self.assertIn("503", st["lastError"])
                self.assertGreaterEqual(st["consecutiveFailures"], 3)
                status, obj = healthz(r)
                self.assertEqual(status, 200)  # not required
                self.assertEqual(obj["checks"]["upstream"]["status"], "fail")
                text = r.metrics()
                self.assertEqual(metric_value(
                    text, "tokenplace_relay_upstream_health_state",
                    state="down"), 1)
                self.assertGreaterEqual(metric_value(
                    text, "tokenplace_relay_upstream_health_checks_total",
                    result="fail"), 3)
                r.wait_log("upstream.health_changed", state="down")

                oks_before = up.health_served(200)
                up.set_health(200)
                st = wait_for(lambda: (lambda s: s if s["upstream"] == "up"
                                       else None)(upstream_state(r)), 10,
                              what="up again")
                self.assertGreaterEqual(up.health_served(200) - oks_before, 2)
                self.assertNotEqual(st["since"], None)
                # the last error stays visible after recovery
                self.assertIn("503", st["lastError"])

    def test_require_upstream_health(self):
        with Upstream() as up:
            up.set_health(503)
            # the relay waits up to this timeout for the first verdict
            env = relay_env(up, TOKENPLACE_REQUIRE_UPSTREAM_HEALTH="true",
                            RELAY_UPSTREAM_HEALTH_TIMEOUT_MS=ms(5000),
                            RELAY_UPSTREAM_HEALTH_INTERVAL_MS="50",
                            RELAY_UPSTREAM_HEALTH_FAILURES="1",
                            RELAY_UPSTREAM_HEALTH_SUCCESSES="1")
            with Relay(env=env) as r:
                # the first verdict is known before the relay is ready
                status, obj = wait_for(
                    lambda: (lambda h: h if h[1]["lifecycle"] != "starting"
                             else None)(healthz(r)), 30, what="ready")
                self.assertEqual(status, 503, obj)
                self.assertEqual(obj["status"], "degraded")
                self.assertTrue(obj["upstreamHealthRequired"])
                self.assertEqual(obj["upstreamHealth"]["upstream"], "down")
                self.assertEqual(obj["checks"]["upstream"]["status"], "fail")
                self.assertEqual(obj["details"]["upstream"], "failed")
                up.set_health(200)
                wait_for(lambda: healthz(r)[0] == 200, 10, what="ready")
                self.assertEqual(upstream_state(r)["upstream"], "up")
            # not required: the same failure leaves /healthz at 200
            up.set_health(503)
            env["TOKENPLACE_REQUIRE_UPSTREAM_HEALTH"] = "false"
            with Relay(env=env) as r:
                wait_for(lambda: upstream_state(r)["upstream"] == "down", 10,
                         what="down")
                status, obj = healthz(r)
                self.assertEqual(status, 200, obj)
                self.assertEqual(obj["status"], "ok")


class Circuit(unittest.TestCase):
    def test_open_while_known_down(self):
        with Upstream() as up:
            env = relay_env(up, RELAY_UPSTREAM_HEALTH_INTERVAL_MS="50",
                            RELAY_UPSTREAM_HEALTH_FAILURES="1",
                            RELAY_UPSTREAM_HEALTH_SUCCESSES="1",
                            RELAY_UPSTREAM_CIRCUIT_OPEN_MS="600000")
            with Relay(env=env) as r:
                wait_for(lambda: upstream_state(r)["upstream"] == "up", 10,
                         what="up")
                up.set_health(503)
                wait_for(lambda: upstream_state(r)["circuit"] == "open", 10,
                         what="circuit open")
                rid = new_rid("cb")
                t0 = time.monotonic()
                status, headers, data = r.request(
                    "POST", "/v1/chat/completions", json_body={"a": 1},
                    headers={"X-Request-Id": rid})
                self.assertLess(time.monotonic() - t0, scaled(2))
                self.assertEqual(status, 503, data)
                self.assertEqual(error_of(data)["code"], "upstream_unavailable")
                self.assertGreaterEqual(int(headers["retry-after"]), 1)
                self.assertIsNone(up.seen(rid))  # failed fast, not sent
                text = r.metrics()
                self.assertEqual(metric_value(
                    text, "tokenplace_relay_upstream_circuit_state",
                    state="open"), 1)
                self.assertGreaterEqual(metric_value(
                    text, "tokenplace_relay_upstream_errors_total",
                    kind="upstream_circuit_open"), 1)
                up.set_health(200)
                wait_for(lambda: upstream_state(r)["circuit"] == "closed", 10,
                         what="circuit closed")
                status, _, _ = r.request("POST", "/v1/chat/completions",
                                         json_body={"a": 1})
                self.assertEqual(status, 200)

    def test_failures_open_and_half_open_probe(self):
        with Upstream() as up:
            env = relay_env(up, RELAY_UPSTREAM_CIRCUIT_FAILURES="2",
                            RELAY_UPSTREAM_CIRCUIT_OPEN_MS=ms(300))
            with Relay(env=env) as r:
                for _ in range(2):
                    status, _, _ = r.request("GET", "/v1/embeddings", headers={
                        "X-Fixture": "close;at=start"})
                    self.assertEqual(status, 502)
                rid = new_rid("rej")
                status, headers, _ = r.request(
                    "GET", "/v1/embeddings", headers={"X-Request-Id": rid})
                self.assertEqual(status, 503)
                self.assertIn("retry-after", headers)
                self.assertIsNone(up.seen(rid))

                # half-open: one probe passes (held at a gate), others wait
                gate = "probe-" + new_rid("g")
                probe = {}

                def send_probe(rid_):
                    probe["result"] = r.request(
                        "GET", "/v1/embeddings", headers={
                            "X-Request-Id": rid_,
                            "X-Fixture": "hang;gate=" + gate})

                while True:
                    prid = new_rid("probe")
                    probe.clear()
                    t = threading.Thread(target=send_probe, args=(prid,))
                    t.start()
                    wait_for(lambda: up.seen(prid) or "result" in probe, 10,
                             what="probe admitted or refused")
                    if up.seen(prid):
                        break
                    t.join()
                    self.assertEqual(probe["result"][0], 503)
                    time.sleep(0.02)  # pacing only; outcome polled above
                self.assertEqual(upstream_state(r)["circuit"], "half_open")
                rid2 = new_rid("during")
                status, _, _ = r.request("GET", "/v1/embeddings",
                                         headers={"X-Request-Id": rid2})
                self.assertEqual(status, 503)
                self.assertIsNone(up.seen(rid2))
                up.release(gate)
                t.join(scaled(10))
                self.assertEqual(probe["result"][0], 200)
                self.assertEqual(upstream_state(r)["circuit"], "closed")
                self.assertEqual(r.request("GET", "/v1/embeddings")[0], 200)
                self.assertEqual(metric_value(
                    r.metrics(), "tokenplace_relay_upstream_circuit_opens_total"),
                    1)
                r.wait_log("upstream.circuit_open")


if __name__ == "__main__":
    main()
