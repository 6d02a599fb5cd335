"""The relay as a service: probes, metrics, request ids, access log, errors,
bad configuration, slow clients and shutdown. Runs the real binary."""

import json
import re
import signal
import socket
import subprocess
import time
import unittest

from relaytest import (RELAY_BIN, WRAPPER, Relay, metric_value, scaled,
                       wait_for, main)

# A route that takes a JSON body, for the body/limit/content-type paths.
BODY_ROUTE = "/faucet"


def raw_exchange(port, data, timeout=10):
    """Sends raw bytes, returns everything the server sends until close."""
    s = socket.create_connection(("127.0.0.1", port), timeout=scaled(timeout))
    try:
        s.sendall(data)
        chunks = []
        while True:
            try:
                b = s.recv(65536)
            except socket.timeout:
                break
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks)
    finally:
        s.close()


class ProbesAndMetrics(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.relay = Relay().start()

    @classmethod
    def tearDownClass(cls):
        code = cls.relay.stop()
        assert code == 0, code

    def test_livez(self):
        status, headers, body = self.relay.request("GET", "/livez")
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(body), {"status": "alive"})
        self.assertTrue(headers["content-type"].startswith("application/json"))

    def test_healthz_ok_without_dns(self):
        # gpu-server does not resolve here; by default that must not matter.
        status, obj = self.relay.get_json("/healthz")
        self.assertEqual(status, 200, obj)
        self.assertEqual(obj["status"], "ok")
        self.assertEqual(obj["upstream"], "http://gpu-server:8000")
        self.assertEqual(obj["gpuHost"], "gpu-server")
        self.assertFalse(obj["upstreamHealthRequired"])

    def test_head_and_options(self):
        status, headers, body = self.relay.request("HEAD", "/livez")
        self.assertEqual(status, 200)
        self.assertEqual(body, b"")
        status, headers, _ = self.relay.request("OPTIONS", "/livez")
        self.assertEqual(status, 204)
        self.assertIn("GET", headers["allow"])

    def test_not_found_is_json(self):
        status, obj = self.relay.get_json("/no/such/path?x=1")
        self.assertEqual(status, 404)
        self.assertEqual(obj, {"error": {"code": 404, "message": "Not Found"}})

    def test_method_not_allowed(self):
        status, headers, body = self.relay.request("POST", "/livez", body=b"")
        self.assertEqual(status, 405)
        self.assertEqual(headers["allow"], "GET, HEAD, OPTIONS")
        self.assertEqual(json.loads(body)["error"]["code"], 405)

    def test_request_id_echoed_or_generated(self):
        _, h, _ = self.relay.request("GET", "/livez",
                                     headers={"X-Request-Id": "abc-123"})
        self.assertEqual(h["x-request-id"], "abc-123")
        _, h, _ = self.relay.request("GET", "/livez")
        self.assertRegex(h["x-request-id"], r"^[0-9a-f]{16}$")
        _, h, _ = self.relay.request("GET", "/livez",
                                     headers={"X-Request-Id": "x" * 129})
        self.assertRegex(h["x-request-id"], r"^[0-9a-f]{16}$")
        _, h, _ = self.relay.request("GET", "/livez",
                                     headers={"X-Request-Id": "x" * 128})
        self.assertEqual(h["x-request-id"], "x" * 128)
        # bytes outside printable ASCII are not kept
        resp = raw_exchange(self.relay.port,
                            b"GET /livez HTTP/1.1\r\nHost: x\r\n"
                            b"X-Request-Id: caf\xc3\xa9\r\nConnection: close\r\n\r\n")
        rid = re.search(rb"X-Request-Id: (\S+)", resp).group(1)
        self.assertRegex(rid.decode(), r"^[0-9a-f]{16}$")

    def test_access_log(self):
        self.relay.request("GET", "/livez")
        self.relay.request("GET", "/healthz")
        self.relay.request("GET", "/metrics")
        self.relay.request("GET", "/access-log-probe",
                           headers={"User-Agent": "unit/1",
                                    "X-Request-Id": "rid-log"})
        line = self.relay.wait_log("http.request", request_id="rid-log")
        self.assertEqual(line["http_method"], "GET")
        self.assertEqual(line["http_path"], "/access-log-probe")
        self.assertEqual(line["http_status"], 404)
        self.assertEqual(line["user_agent"], "unit/1")
        self.assertIsInstance(line["duration_ms"], (int, float))
        self.assertEqual(line["level"], "INFO")
        self.assertEqual(line["logger"], "tokenplace.relay")
        self.assertRegex(line["timestamp"],
                         r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        paths = [l.get("http_path") for l in self.relay.logs()
                 if l.get("message") == "http.request"]
        for probe in ("/livez", "/healthz", "/metrics"):
            self.assertNotIn(probe, paths)
        # every stdout line is JSON
        for raw in self.relay.raw_logs():
            json.loads(raw)

    def test_metrics(self):
        self.relay.request("GET", "/livez")
        self.relay.request("GET", "/some/random/path/123")
        status, headers, body = self.relay.request("GET", "/metrics")
        self.assertEqual(status, 200)
        self.assertTrue(headers["content-type"].startswith("text/plain"))
        text = body.decode()
        self.assertGreaterEqual(metric_value(
            text, "tokenplace_relay_requests_total", method="GET",
            endpoint="livez", status="200"), 1)
        self.assertGreaterEqual(metric_value(
            text, "tokenplace_relay_requests_total", method="GET",
            endpoint="unknown", status="404"), 1)
        self.assertNotIn("/some/random/path", text)
        self.assertIsNotNone(metric_value(
            text, "tokenplace_relay_request_duration_seconds_bucket",
            endpoint="livez", le="10.0"))
        for name in ("process_resident_memory_bytes", "process_open_fds",
                     "process_cpu_seconds_total", "process_start_time_seconds",
                     "process_max_fds", "process_virtual_memory_bytes"):
            self.assertIsNotNone(metric_value(text, name), name)
        self.assertEqual(metric_value(text, "tokenplace_build_info"), 1)

    def test_metrics_parse_with_prometheus_client(self):
        from prometheus_client.parser import text_string_to_metric_families
        names = {f.name for f in text_string_to_metric_families(
            self.relay.metrics())}
        self.assertIn("tokenplace_relay_requests", names)
        self.assertIn("tokenplace_relay_request_duration_seconds", names)


class Bodies(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.relay = Relay(env={"RELAY_MAX_BODY_BYTES": "2048"}).start()

    @classmethod
    def tearDownClass(cls):
        assert cls.relay.stop() == 0

    def test_wrong_content_type(self):
        status, h, body = self.relay.request(
            "POST", BODY_ROUTE, body=b"{}",
            headers={"Content-Type": "text/plain"})
        self.assertEqual(status, 415)
        self.assertIn("error", json.loads(body))

    def test_missing_content_type(self):
        status, _, body = self.relay.request("POST", BODY_ROUTE, body=b"{}")
        self.assertEqual(status, 415)
        json.loads(body)

    def test_json_suffix_and_charset_accepted(self):
        for ct in ("application/json; charset=utf-8",
                   "application/vnd.api+json"):
            status, _, body = self.relay.request(
                "POST", BODY_ROUTE, body=b"{}", headers={"Content-Type": ct})
            self.assertNotIn(status, (415, 413), ct)
            json.loads(body)

    def test_malformed_json(self):
        for bad in (b"{", b"{'a':1}", b"", b"\xff\xfe"):
            status, _, body = self.relay.request(
                "POST", BODY_ROUTE, body=bad,
                headers={"Content-Type": "application/json"})
            self.assertEqual(status, 400, bad)
            self.assertIn("error", json.loads(body))

    def test_body_too_large_by_length(self):
        big = b'{"a":"' + b"x" * 5000 + b'"}'
        status, h, body = self.relay.request(
            "POST", BODY_ROUTE, body=big,
            headers={"Content-Type": "application/json"})
        self.assertEqual(status, 413)
        self.assertIn("error", json.loads(body))

    def test_body_too_large_announced_but_not_sent(self):
        # The relay must answer from Content-Length alone, without waiting
        # for (or buffering) a body it will refuse.
        resp = raw_exchange(self.relay.port,
                            b"POST " + BODY_ROUTE.encode() + b" HTTP/1.1\r\n"
                            b"Host: x\r\nContent-Type: application/json\r\n"
                            b"Content-Length: 1073741824\r\n\r\n{\"a\":")
        self.assertTrue(resp.startswith(b"HTTP/1.1 413"), resp[:100])

    def test_body_too_large_chunked(self):
        s = socket.create_connection(("127.0.0.1", self.relay.port),
                                     timeout=scaled(10))
        try:
            s.sendall(b"POST " + BODY_ROUTE.encode() + b" HTTP/1.1\r\n"
                      b"Host: x\r\nContent-Type: application/json\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\n")
            chunk = b"x" * 1000
            resp = b""
            for _ in range(10):
                try:
                    s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                except OSError:
                    break
            s.settimeout(scaled(10))
            while True:
                try:
                    b = s.recv(65536)
                except (socket.timeout, ConnectionResetError):
                    break
                if not b:
                    break
                resp += b
            self.assertTrue(resp.startswith(b"HTTP/1.1 413"), resp[:100])
        finally:
            s.close()

    def test_limit_counted(self):
        big = b'{"a":"' + b"x" * 5000 + b'"}'
        self.relay.request("POST", BODY_ROUTE, body=big,
                           headers={"Content-Type": "application/json"})
        v = metric_value(self.relay.metrics(),
                         "tokenplace_relay_limit_rejections_total",
                         limit="body_bytes")
        self.assertGreaterEqual(v, 1)

    def test_header_too_large(self):
        resp = raw_exchange(self.relay.port,
                            b"GET /livez HTTP/1.1\r\nHost: x\r\nX-Big: "
                            + b"y" * 40000 + b"\r\n\r\n")
        head, _, body = resp.partition(b"\r\n\r\n")
        self.assertRegex(head.split(b"\r\n")[0], rb"^HTTP/1\.[01] 4\d\d")
        self.assertIn(b"error", body)


class Configuration(unittest.TestCase):
    def test_bad_config_serves_probes_only(self):
        env = {"RELAY_MAX_BODY_BYTES": "lots", "RELAY_TIMEOUT": "-5"}
        with Relay(env=env) as r:
            self.assertEqual(r.request("GET", "/livez")[0], 200)
            status, obj = r.get_json("/healthz")
            self.assertEqual(status, 503)
            self.assertEqual(obj["details"]["configuration"], "invalid")
            self.assertEqual(sorted(obj["details"]["invalidSettings"]),
                             ["RELAY_MAX_BODY_BYTES", "RELAY_TIMEOUT"])
            status, obj = r.post_json(BODY_ROUTE, {})
            self.assertEqual(status, 503)
            self.assertIn("configuration", json.dumps(obj))
            self.assertEqual(r.get_json("/next_server")[0], 503)
            # /metrics stays available (docs/configuration.md), so the
            # scrape keeps working while the operator fixes the setting.
            status, _, body = r.request("GET", "/metrics")
            self.assertEqual(status, 200)
            self.assertIn(b"tokenplace_build_info", body)
            errs = [l for l in r.logs()
                    if l.get("message") == "relay.config_invalid"]
            self.assertEqual({e["source"] for e in errs},
                             {"RELAY_MAX_BODY_BYTES", "RELAY_TIMEOUT"})

    def test_check_config(self):
        env = {"PATH": "/usr/bin:/bin",
               "TOKEN_PLACE_RELAY_SERVER_TOKEN": "hunter2"}
        out = subprocess.run([RELAY_BIN, "--check-config"], env=env,
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertIn("RELAY_PORT", out.stdout)
        self.assertNotIn("hunter2", out.stdout)
        env["RELAY_PORT"] = "99999"
        out = subprocess.run([RELAY_BIN, "--check-config"], env=env,
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 2)
        self.assertIn("error: port (RELAY_PORT)", out.stdout)
        out = subprocess.run([RELAY_BIN, "--check-config", "--port", "x"],
                             env=env, capture_output=True, text=True,
                             timeout=30)
        self.assertEqual(out.returncode, 2)

    def test_log_level_spellings(self):
        # docs/configuration.md: WARN is WARNING, and any letter case.
        for level in ("warn", "Warning", "debug", "CRITICAL"):
            out = subprocess.run([RELAY_BIN, "--check-config"],
                                 env={"PATH": "/usr/bin:/bin",
                                      "TOKENPLACE_LOG_LEVEL": level},
                                 capture_output=True, text=True, timeout=30)
            self.assertEqual(out.returncode, 0, level + out.stdout)
            self.assertRegex(out.stdout, r"(?m)^log_level\s+TOKENPLACE_LOG_LEVEL\s+"
                             + level + r"\s+\(env")

    def test_cli_overrides_env(self):
        with Relay(env={"RELAY_PORT": "1"}, args=["--port", "0"]) as r:
            self.assertNotEqual(r.port, 1)
            self.assertEqual(r.request("GET", "/livez")[0], 200)

    def test_port_in_use_fails_clearly(self):
        with Relay() as r:
            p = subprocess.run(WRAPPER + [RELAY_BIN],
                               env={"RELAY_PORT": str(r.port)},
                               capture_output=True, text=True,
                               timeout=scaled(30))
            self.assertEqual(p.returncode, 1)
            self.assertIn("relay.listen_failed", p.stdout)

    def test_workers_accepted_and_explained(self):
        with Relay(env={"RELAY_WORKERS": "2", "RELAY_THREADS": "4"}) as r:
            line = r.wait_log("relay.workers_ignored")
            self.assertEqual(line["workers"], 2)
            start = r.find_log("relay.startup")
            self.assertEqual(start["threads"], 4)

    def test_required_upstream_dns(self):
        env = {"TOKENPLACE_REQUIRE_UPSTREAM_HEALTH": "true",
               "TOKENPLACE_GPU_HOST": "no-such-host.invalid"}
        with Relay(env=env) as r:
            # ready (or not) once the first upstream check has decided
            status, obj = wait_for(
                lambda: (lambda h: h if h[1]["lifecycle"] != "starting"
                         else None)(r.get_json("/healthz")), 30,
                what="first upstream check")
            self.assertEqual(status, 503)
            self.assertEqual(obj["status"], "degraded")
            # the upstream check resolves the GPU host before its GET
            check = obj["checks"]["upstream"]
            self.assertEqual(check["status"], "fail")
            self.assertIn("does not resolve", check["reason"])
        # A reachable upstream making it ready again: test_forward.py
        # (Health.test_require_upstream_health), which has a live upstream.


class SlowClients(unittest.TestCase):
    def test_silent_client_is_disconnected(self):
        with Relay(env={"RELAY_TIMEOUT": "1"}) as r:
            s = socket.create_connection(("127.0.0.1", r.port),
                                         timeout=scaled(20))
            try:
                s.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n")
                start = time.monotonic()
                data = b""
                while True:
                    b = s.recv(4096)
                    if not b:
                        break
                    data += b
                self.assertLess(time.monotonic() - start, scaled(20))
            finally:
                s.close()
            # the relay is still fine
            self.assertEqual(r.request("GET", "/livez")[0], 200)


def start_slow_request(port, body=b'{"server_public_key":"K"}'):
    """Opens a request whose body is still missing its last byte."""
    s = socket.create_connection(("127.0.0.1", port), timeout=scaled(30))
    s.sendall(b"POST " + BODY_ROUTE.encode() + b" HTTP/1.1\r\nHost: x\r\n"
              b"Content-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n" % len(body) + body[:-1])
    return s, body[-1:]


def read_response(s):
    data = b""
    while b"\r\n\r\n" not in data:
        b = s.recv(65536)
        if not b:
            break
        data += b
    head, _, rest = data.partition(b"\r\n\r\n")
    m = re.search(rb"Content-Length: (\d+)", head)
    need = int(m.group(1)) if m else 0
    while len(rest) < need:
        b = s.recv(65536)
        if not b:
            break
        rest += b
    return head, rest


def no_leak_check_wrapper():
    """The wrapper for a relay that is made to exit abruptly: under valgrind
    the requests it abandons on purpose are not leaks to report, while
    memory errors still are."""
    if WRAPPER and "valgrind" in WRAPPER[0]:
        return WRAPPER + ["--leak-check=no"]
    return WRAPPER


class Shutdown(unittest.TestCase):
    def test_sigterm_drains_in_flight_request(self):
        r = Relay(env={"RELAY_GRACEFUL_TIMEOUT": "60"}).start()
        try:
            s, last = start_slow_request(r.port)
            wait_for(lambda: metric_value(
                r.metrics(), "tokenplace_relay_http_in_flight_requests") >= 2,
                10, what="slow request in flight")
            r.signal(signal.SIGTERM)
            r.wait_log("relay.shutdown_signal")
            # draining: readiness fails at once, liveness holds
            status, obj = r.get_json("/healthz")
            self.assertEqual(status, 503)
            self.assertEqual(obj["status"], "draining")
            self.assertEqual(r.request("GET", "/livez")[0], 200)
            # new work is refused while draining
            status, obj = r.post_json(BODY_ROUTE, {})
            self.assertEqual(status, 503)
            # the slow request completes normally
            s.sendall(last)
            head, body = read_response(s)
            self.assertNotIn(b" 503 ", head.split(b"\r\n")[0])
            json.loads(body)
            s.close()
            self.assertEqual(r.wait_exit(30), 0)
            r.wait_log("relay.shutdown")
        finally:
            r.kill()

    def test_graceful_timeout_bounds_shutdown(self):
        r = Relay(env={"RELAY_GRACEFUL_TIMEOUT": "1",
                       "RELAY_TIMEOUT": "600"},
                  wrapper=no_leak_check_wrapper()).start()
        try:
            s, _ = start_slow_request(r.port)
            wait_for(lambda: metric_value(
                r.metrics(), "tokenplace_relay_http_in_flight_requests") >= 2,
                10, what="slow request in flight")
            r.signal(signal.SIGTERM)
            self.assertEqual(r.wait_exit(30), 0)
            self.assertIsNotNone(r.find_log("relay.drain_timeout"))
            s.close()
        finally:
            r.kill()

    def test_second_signal_exits_at_once(self):
        r = Relay(env={"RELAY_GRACEFUL_TIMEOUT": "600",
                       "RELAY_TIMEOUT": "600"},
                  wrapper=no_leak_check_wrapper()).start()
        try:
            s, _ = start_slow_request(r.port)
            wait_for(lambda: metric_value(
                r.metrics(), "tokenplace_relay_http_in_flight_requests") >= 2,
                10, what="slow request in flight")
            r.signal(signal.SIGTERM)
            r.wait_log("relay.shutdown_signal")
            r.signal(signal.SIGINT)
            code = r.wait_exit(30)
            self.assertEqual(code, 128 + signal.SIGINT)
            s.close()
        finally:
            r.kill()

    def test_idle_sigterm_exits_zero(self):
        r = Relay().start()
        try:
            r.request("GET", "/livez")
            r.signal(signal.SIGTERM)
            self.assertEqual(r.wait_exit(30), 0)
            r.wait_log("relay.shutdown")
        finally:
            r.kill()


if __name__ == "__main__":
    main()
