"""HTTP framing (RFC 9112) and slow or numerous clients, over raw sockets.

Framing: each request shape that civetweb 1.15 would frame differently from
a front proxy is sent byte for byte; the relay must answer one JSON 400 in
the route's error shape, log it once with its request id and kind, count
it, and close the connection (recv() then returns EOF), so bytes after the
head are never served as a second request.

Slow clients: the per-address connection cap (RELAY_MAX_CONNECTIONS_PER_CLIENT)
refuses the next connection from one loopback address while another
address is served, and a head that never completes is cut at
RELAY_HEAD_TIMEOUT_MS with a JSON 408. Client addresses are 127.0.0.x,
chosen with the client socket's source address. Every wait polls with a
deadline; nothing depends on how fast the machine is.
"""

import json
import socket
import unittest

from relaytest import Relay, metric_value, scaled, wait_for, main

LEGACY = "/sink"                                # legacy string error shape
V1 = "/api/v1/relay/servers/poll"               # API v1 object error shape


def connect(port, source="127.0.0.1"):
    return socket.create_connection(("127.0.0.1", port), timeout=scaled(30),
                                    source_address=(source, 0))


def read_until_eof(s):
    """Everything the relay sends until it closes the connection."""
    data = b""
    while True:
        try:
            b = s.recv(65536)
        except ConnectionResetError:
            break
        if not b:
            break
        data += b
    return data


def split_response(data):
    """(status, headers dict, body bytes, rest after the body)."""
    head, sep, rest = data.partition(b"\r\n\r\n")
    assert sep, data
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", "0"))
    return status, headers, rest[:n], rest[n:]


def exchange(port, raw, source="127.0.0.1"):
    s = connect(port, source)
    try:
        s.sendall(raw)
        return read_until_eof(s)
    finally:
        s.close()


def post_head(path, *headers):
    return (b"POST " + path.encode() + b" HTTP/1.1\r\nHost: relay.test\r\n"
            b"Content-Type: application/json\r\n"
            + b"".join(h + b"\r\n" for h in headers) + b"\r\n")


BODY = b'{"server_public_key":"K"}'
SMUGGLED = b"GET /livez HTTP/1.1\r\nHost: relay.test\r\n\r\n"

# (name, headers, body that follows the head, kind in log and metrics)
CASES = [
    ("cl_with_chunked",
     [b"Content-Length: %d" % len(b"0\r\n\r\n" + SMUGGLED),
      b"Transfer-Encoding: chunked"], b"0\r\n\r\n" + SMUGGLED,
     "framing_cl_with_te"),
    ("chunked_then_cl",
     [b"Transfer-Encoding: chunked", b"Content-Length: 3"],
     b"0\r\n\r\n" + SMUGGLED, "framing_cl_with_te"),
    ("cl_with_identity",
     [b"Transfer-Encoding: identity", b"Content-Length: %d" % len(BODY)],
     BODY, "framing_cl_with_te"),
    ("two_cl_different",
     [b"Content-Length: %d" % len(BODY), b"Content-Length: 2"], BODY,
     "framing_cl_repeated"),
    ("two_cl_same",
     [b"Content-Length: %d" % len(BODY)] * 2, BODY, "framing_cl_repeated"),
    ("cl_plus_sign", [b"Content-Length: +%d" % len(BODY)], BODY,
     "framing_cl_invalid"),
    ("cl_trailing_garbage", [b"Content-Length: %dabc" % len(BODY)], BODY,
     "framing_cl_invalid"),
    ("cl_hex", [b"Content-Length: 0x19"], BODY, "framing_cl_invalid"),
    ("cl_overflow", [b"Content-Length: 99999999999999999999999"], BODY,
     "framing_cl_invalid"),
    ("cl_negative", [b"Content-Length: -1"], BODY, "framing_rejected"),
    ("cl_empty", [b"Content-Length: "], BODY, "framing_rejected"),
    ("te_gzip", [b"Transfer-Encoding: gzip"], b"", "framing_rejected"),
    ("te_list", [b"Transfer-Encoding: gzip, chunked"], b"0\r\n\r\n",
     "framing_rejected"),
    ("te_twice", [b"Transfer-Encoding: chunked"] * 2, b"0\r\n\r\n",
     "framing_te_unsupported"),
]


class Framing(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # the relay's own default limit, not the harness's 0
        cls.relay = Relay(env={"RELAY_MAX_CONNECTIONS_PER_CLIENT": "8"}).start()

    @classmethod
    def tearDownClass(cls):
        cls.relay.stop()

    def check_refused(self, path, name, headers, body, kind, shape):
        r = self.relay
        data = exchange(r.port, post_head(path, *headers) + body)
        status, hdrs, payload, rest = split_response(data)
        self.assertEqual(status, 400, (name, data))
        self.assertEqual(hdrs["content-type"], "application/json")
        self.assertEqual(hdrs["connection"], "close")
        # one answer, then EOF: nothing after the head became a request
        self.assertEqual(rest, b"", (name, data))
        obj = json.loads(payload)
        if shape == "string":
            self.assertIsInstance(obj["error"], str, name)
        else:
            self.assertEqual(obj["error"]["code"], 400, name)
            self.assertIsInstance(obj["error"]["message"], str, name)
        rid = hdrs["x-request-id"]
        line = r.wait_log("http.request", request_id=rid)
        self.assertEqual(line["error"], kind, name)
        self.assertEqual(line["http_status"], 400)

    def test_every_ambiguous_framing_is_refused_and_closed(self):
        before = self.relay.metrics()
        counts = {}
        for path, shape in ((LEGACY, "string"), (V1, "object")):
            for name, headers, body, kind in CASES:
                # civetweb's own refusals (framing_rejected) come after the
                # request line parsed: the route's shape too
                with self.subTest(case=name, path=path):
                    self.check_refused(path, name, headers, body, kind, shape)
                counts[kind] = counts.get(kind, 0) + 1
        after = self.relay.metrics()
        for kind, n in counts.items():
            old = metric_value(before, "tokenplace_relay_bad_requests_total",
                               kind=kind) or 0
            self.assertEqual(metric_value(
                after, "tokenplace_relay_bad_requests_total", kind=kind),
                old + n, kind)

    def test_smuggled_request_is_never_served(self):
        r = self.relay
        before = metric_value(r.metrics(), "tokenplace_relay_requests_total",
                              method="GET", endpoint="livez", status="200")
        data = exchange(r.port, post_head(
            LEGACY, b"Content-Length: 5", b"Transfer-Encoding: chunked")
            + b"0\r\n\r\n" + SMUGGLED)
        self.assertEqual(data.count(b"HTTP/1.1 "), 1, data)
        after = metric_value(r.metrics(), "tokenplace_relay_requests_total",
                             method="GET", endpoint="livez", status="200")
        self.assertEqual(before, after)

    def test_refused_job_is_not_queued(self):
        """A /faucet whose framing is refused stores nothing: the node's
        next poll finds no job, and a correctly framed one is queued."""
        r = self.relay
        node, client = "framing-node-key", "framing-client-key"
        self.assertEqual(r.post_json("/sink", {"server_public_key": node})[0],
                         200)
        job = json.dumps({"server_public_key": node,
                          "client_public_key": client, "chat_history": "C",
                          "cipherkey": "K", "iv": "I"}).encode()
        chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(job), job)
        data = exchange(r.port, post_head(
            "/faucet", b"Content-Length: %d" % len(chunked),
            b"Transfer-Encoding: chunked") + chunked)
        self.assertEqual(split_response(data)[0], 400)
        st, obj = r.post_json("/sink", {"server_public_key": node})
        self.assertEqual(st, 200)
        self.assertNotIn("chat_history", obj)
        self.assertEqual(r.post_json("/faucet", json.loads(job))[0], 200)
        st, obj = r.post_json("/sink", {"server_public_key": node})
        self.assertEqual(obj.get("chat_history"), "C", obj)

    def test_plain_chunked_body_still_served_and_kept_alive(self):
        r = self.relay
        s = connect(r.port)
        try:
            chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(BODY), BODY)
            s.sendall(post_head(LEGACY, b"Transfer-Encoding: chunked")
                      + chunked)
            data = b""
            while b"\r\n\r\n" not in data:
                data += s.recv(65536)
            head, _, rest = data.partition(b"\r\n\r\n")
            status, hdrs, _, _ = split_response(data + b"")
            self.assertNotEqual(status, 400, data)
            n = int(hdrs["content-length"])
            while len(rest) < n:
                rest += s.recv(65536)
            self.assertEqual(hdrs["connection"], "keep-alive")
            # the same connection serves the next request
            s.sendall(b"GET /livez HTTP/1.1\r\nHost: relay.test\r\n"
                      b"Connection: close\r\n\r\n")
            status, _, body, _ = split_response(read_until_eof(s))
            self.assertEqual(status, 200)
            self.assertEqual(json.loads(body)["status"], "alive")
        finally:
            s.close()


    def head_with_count(self, path, total, body):
        """A POST whose head has exactly total header lines, the framing
        ones last (after civetweb's 64th line when total > 64)."""
        tail = [b"Host: relay.test", b"Content-Type: application/json",
                b"Content-Length: %d" % len(body)]
        lines = [b"X-H%d: v" % i for i in range(total - len(tail))] + tail
        return (b"POST " + path.encode() + b" HTTP/1.1\r\n"
                + b"".join(h + b"\r\n" for h in lines) + b"\r\n" + body)

    def test_header_count_at_civetweb_limit_is_refused_431(self):
        """civetweb 1.15 stops at its 64th header line without an error: the
        Content-Length after it is ignored and the body (a GET /livez) would
        be served as a second request. 63 lines pass; 64 or more get one
        JSON 431 in the route's shape, then EOF."""
        r = self.relay
        before = r.metrics()
        refused = 0
        for path, shape in ((LEGACY, "string"), (V1, "object")):
            for total in (63, 64, 65, 100):
                with self.subTest(path=path, total=total):
                    data = exchange(r.port, self.head_with_count(
                        path, total, SMUGGLED))
                    status, hdrs, payload, rest = split_response(data)
                    self.assertEqual(data.count(b"HTTP/1.1 "), 1, data)
                    if total < 64:
                        # the body was read as this request's JSON body
                        self.assertNotEqual(status, 431, data)
                        continue
                    refused += 1
                    self.assertEqual(status, 431, data)
                    self.assertEqual(hdrs["connection"], "close")
                    self.assertEqual(rest, b"")
                    obj = json.loads(payload)
                    if shape == "string":
                        self.assertIsInstance(obj["error"], str)
                    else:
                        self.assertEqual(obj["error"]["code"], 431)
                    line = r.wait_log("http.request",
                                      request_id=hdrs["x-request-id"])
                    self.assertEqual(line["error"], "too_many_headers")
                    self.assertEqual(line["http_status"], 431)
        after = r.metrics()
        for name, labels in (
                ("tokenplace_relay_bad_requests_total",
                 {"kind": "too_many_headers"}),
                ("tokenplace_relay_limit_rejections_total",
                 {"limit": "header_count"})):
            old = metric_value(before, name, **labels) or 0
            self.assertEqual(metric_value(after, name, **labels),
                             old + refused, name)
        # the smuggled GET /livez was never served
        self.assertEqual(
            metric_value(before, "tokenplace_relay_requests_total",
                         method="GET", endpoint="livez", status="200"),
            metric_value(after, "tokenplace_relay_requests_total",
                         method="GET", endpoint="livez", status="200"))

    def test_lower_header_count_limit(self):
        with Relay(env={"RELAY_MAX_HEADER_COUNT": "8"}) as r:
            ok = exchange(r.port, self.head_with_count(LEGACY, 8, BODY))
            self.assertNotEqual(split_response(ok)[0], 431, ok)
            data = exchange(r.port, self.head_with_count(LEGACY, 9, BODY))
            status, hdrs, payload, rest = split_response(data)
            self.assertEqual(status, 431, data)
            self.assertEqual(hdrs["connection"], "close")
            self.assertEqual(rest, b"")
        with Relay(env={"RELAY_MAX_HEADER_COUNT": "64"}) as r:
            # above the bound: the default applies, and /healthz says why
            st, obj = r.get_json("/healthz")
            self.assertEqual(st, 503, obj)
            self.assertIn("RELAY_MAX_HEADER_COUNT", json.dumps(obj))


def open_connections(r):
    return metric_value(r.metrics(), "tokenplace_relay_http_open_connections")


class SlowClients(unittest.TestCase):
    def test_per_client_cap_refuses_next_connection_only_for_that_address(self):
        cap = 3
        with Relay(env={"RELAY_MAX_CONNECTIONS_PER_CLIENT": str(cap)}) as r:
            held = [connect(r.port, "127.0.0.2") for _ in range(cap)]
            try:
                # all three accepted (the scrape's own connection is one more)
                wait_for(lambda: open_connections(r) >= cap + 1, 10,
                         what="held connections accepted")
                extra = connect(r.port, "127.0.0.2")
                try:
                    extra.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
                    data = read_until_eof(extra)
                finally:
                    extra.close()
                # closed gracefully: the 429 is never lost to a reset
                status, hdrs, body, _ = split_response(data)
                self.assertEqual(status, 429)
                self.assertEqual(json.loads(body)["error"]["code"], 429)
                # another address is served while 127.0.0.2 is at its cap
                status, _, body, _ = split_response(exchange(
                    r.port, b"GET /livez HTTP/1.1\r\nHost: x\r\n"
                    b"Connection: close\r\n\r\n", source="127.0.0.3"))
                self.assertEqual(status, 200)
                self.assertEqual(metric_value(
                    r.metrics(), "tokenplace_relay_connections_refused_total",
                    reason="per_client_limit"), 1)
                self.assertIsNotNone(r.find_log(
                    "http.connection_refused", reason="per_client_limit",
                    remote_addr="127.0.0.2"))
                # one closed: 127.0.0.2 is served again
                held.pop().close()

                def served_again():
                    data = exchange(r.port, b"GET /livez HTTP/1.1\r\nHost: x"
                                    b"\r\nConnection: close\r\n\r\n",
                                    source="127.0.0.2")
                    return data.startswith(b"HTTP/1.1 200 ")
                wait_for(served_again, 10, what="127.0.0.2 served again")
            finally:
                for s in held:
                    s.close()

    def test_slow_head_is_cut_at_head_deadline(self):
        head_ms = int(scaled(0.4) * 1000)
        with Relay(env={"RELAY_HEAD_TIMEOUT_MS": str(head_ms),
                        "RELAY_TIMEOUT": "600"}) as r:
            s = connect(r.port, "127.0.0.4")
            try:
                s.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n")
                data = read_until_eof(s)  # EOF comes from the relay
            finally:
                s.close()
            status, hdrs, body, _ = split_response(data)
            self.assertEqual(status, 408)
            self.assertEqual(hdrs["connection"], "close")
            self.assertEqual(json.loads(body)["error"]["code"], 408)
            wait_for(lambda: metric_value(
                r.metrics(), "tokenplace_relay_connections_refused_total",
                reason="head_timeout") == 1, 10, what="head_timeout counted")
            # a complete head on a fresh connection is served normally
            self.assertEqual(r.request("GET", "/livez")[0], 200)

    def test_refused_body_closes_although_client_keeps_sending(self):
        """After a 413 the connection closes at once: a client that keeps
        sending the announced body cannot hold the worker."""
        with Relay(env={"RELAY_TIMEOUT": "600",
                        "RELAY_HEAD_TIMEOUT_MS": "600000"}) as r:
            s = connect(r.port)
            try:
                s.sendall(post_head(LEGACY, b"Content-Length: 100000000")
                          + b"{")
                s.settimeout(0.2)
                data, eof = b"", False

                def closed():
                    nonlocal data, eof
                    try:
                        b = s.recv(65536)
                        if not b:
                            eof = True
                        data += b
                    except socket.timeout:
                        pass
                    except ConnectionResetError:
                        eof = True
                    if not eof:
                        try:
                            s.send(b"x" * 100)
                        except OSError:
                            eof = True
                    return eof
                wait_for(closed, 20, interval=0.05, what="EOF after 413")
            finally:
                s.close()
            if data:
                self.assertEqual(split_response(data)[0], 413, data)

    def test_silent_body_is_cut_at_relay_timeout(self):
        with Relay(env={"RELAY_TIMEOUT": "1"}) as r:
            s = connect(r.port)
            try:
                s.sendall(post_head(LEGACY, b"Content-Length: %d" % len(BODY))
                          + BODY[:-3])
                data = read_until_eof(s)
            finally:
                s.close()
            if data:
                self.assertEqual(split_response(data)[0], 400, data)
            self.assertEqual(r.request("GET", "/livez")[0], 200)


if __name__ == "__main__":
    main()
