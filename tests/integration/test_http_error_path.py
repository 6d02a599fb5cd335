"""civetweb's error callback reads only what civetweb set for the request it
refused (issue 26).

civetweb 1.15 keeps one request buffer per worker thread and reuses it for
every request of every connection that worker serves. When it refuses a
head, the error callback gets the request info in whatever state the
failed parse left it: `local_uri_raw` still points at the previous
request's path, in a buffer now holding other bytes. The relay used to log
that pointer with strlen(); after a kept-alive request, a 3-byte head
("X\\n\\n") followed by bytes up to the end of civetweb's buffer made it
read past the buffer (AddressSanitizer: heap-buffer-overflow in
http_error). Here the same bytes are sent on one kept-alive connection,
after a request of each route kind, and each of civetweb's error paths is
taken after a request that left a path behind.

Checked for each: one JSON answer with the right status, `Connection:
close` and then EOF; an `http.request` log line with the request id whose
`http_method` and `http_path` are the refused request's own (or "-" when
civetweb did not parse them); /livez still answers. The relay must exit 0
at the end: under the ASan build (`make test-asan`) any sanitizer report
makes it exit non-zero, and under valgrind (`make test-valgrind`) an
invalid read does.
"""

import json
import socket
import unittest

from relaytest import Relay, main, scaled

# civetweb's buffer for one head: the relay's RELAY_MAX_HEADER_BYTES.
HEAD_BYTES = 16384

# Requests that leave a path in civetweb's buffer (all kept alive).
FIRST = [
    b"GET /livez HTTP/1.1\r\nHost: relay.test\r\n\r\n",
    b"POST /sink HTTP/1.1\r\nHost: relay.test\r\n"
    b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
    b"POST /api/v1/relay/servers/poll HTTP/1.1\r\nHost: relay.test\r\n"
    b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
    b"GET /" + b"p" * 3000 + b" HTTP/1.1\r\nHost: relay.test\r\n\r\n",
]


def read_response(s):
    """One response from s: (status, headers, body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        b = s.recv(65536)
        if not b:
            raise AssertionError("EOF inside a head: %r" % data[:300])
        data += b
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    n = int(hdrs["content-length"])
    while len(rest) < n:
        b = s.recv(65536)
        if not b:
            raise AssertionError("EOF inside a body")
        rest += b
    return int(lines[0].split(" ")[1]), hdrs, rest[:n], rest[n:]


def read_eof(s):
    data = b""
    while True:
        try:
            b = s.recv(65536)
        except ConnectionResetError:
            return data
        if not b:
            return data
        data += b


class ErrorPath(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # two workers: consecutive connections often share one buffer
        cls.relay = Relay(env={"RELAY_THREADS": "2",
                               "RELAY_MAX_HEADER_BYTES": str(HEAD_BYTES)})
        cls.relay.start()

    @classmethod
    def tearDownClass(cls):
        code = cls.relay.stop()
        if code != 0:
            raise AssertionError("relay exited %r (a sanitizer report?)\n%s"
                                 % (code, cls.relay.stderr_text()[-6000:]))

    def refused_after(self, first, raw):
        """Sends first (kept alive), then raw on the same connection; returns
        (status, headers, body, log line) of the refusal."""
        r = self.relay
        s = socket.create_connection(("127.0.0.1", r.port),
                                     timeout=scaled(30))
        try:
            s.sendall(first)
            status, hdrs, _, rest = read_response(s)
            self.assertEqual(hdrs.get("connection"), "keep-alive", first[:80])
            self.assertEqual(rest, b"")
            try:
                s.sendall(raw)
            except OSError:
                pass  # answered and closed before all was sent
            data = read_eof(s)
        finally:
            s.close()
        head, sep, body = data.partition(b"\r\n\r\n")
        self.assertTrue(sep, data[:300])
        lines = head.decode("latin-1").split("\r\n")
        hdrs = dict((k.strip().lower(), v.strip()) for k, _, v in
                    (line.partition(":") for line in lines[1:]))
        self.assertEqual(hdrs["connection"], "close")
        self.assertEqual(hdrs["content-type"], "application/json")
        self.assertEqual(len(body), int(hdrs["content-length"]), data[:300])
        line = r.wait_log("http.request", request_id=hdrs["x-request-id"])
        return int(lines[0].split(" ")[1]), hdrs, json.loads(body), line

    def test_short_head_then_stale_bytes_up_to_buffer_end(self):
        """The fuzzer's finding: a 3-byte head whose method civetweb leaves
        unterminated, the rest of civetweb's buffer filled without a NUL."""
        for first in FIRST:
            for fill in (HEAD_BYTES - 3, HEAD_BYTES - 2, HEAD_BYTES + 100):
                with self.subTest(first=first[:40], fill=fill):
                    status, _, obj, line = self.refused_after(
                        first, b"X\n\n" + b"A" * fill)
                    self.assertEqual(status, 400)
                    self.assertEqual(obj["error"]["code"], 400)
                    self.assertEqual(line["http_method"], "-")
                    self.assertEqual(line["http_path"], "-")
                    self.assertEqual(line["error"], "http_malformed")
                    self.assertEqual(line["remote_addr"], "127.0.0.1")
        self.assertEqual(self.relay.request("GET", "/livez")[0], 200)

    def test_each_error_path_logs_only_its_own_request_line(self):
        # (raw, status, method, path, kind, error shape)
        cases = [
            # parse stopped in the request line / headers
            (b"GET /x\r\n\r\n", 400, "GET", "-", "http_malformed", "object"),
            (b"GET /livez HTTP/1.1\r\nBad Header\r\n\r\n", 400, "GET",
             "/livez", "http_malformed", "object"),
            (b"BREW /sink HTTP/1.1\r\n\r\n", 400, "BREW", "/sink",
             "http_malformed", "string"),
            # parsed, then refused: the path is this request's
            (b"POST /sink HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip"
             b"\r\n\r\n", 400, "POST", "/sink", "framing_rejected", "string"),
            (b"POST /api/v1/relay/servers/poll?a=1 HTTP/1.1\r\nHost: a\r\n"
             b"Content-Length: -1\r\n\r\n", 400, "POST",
             "/api/v1/relay/servers/poll", "framing_rejected", "object"),
            (b"GET /sink HTTP/2\r\nHost: a\r\n\r\n", 505, "GET", "/sink",
             "http_error", "string"),
            (b"GET x HTTP/1.1\r\nHost: a\r\n\r\n", 400, "GET", "-",
             "http_malformed", "object"),
            # nothing parsed: a control byte, a head over the limit
            (b"GET /\x7f HTTP/1.1\r\n\r\n", 400, "-", "-", "http_malformed",
             "object"),
            (b"GET /" + b"a" * HEAD_BYTES, None, "-", "-", None, "object"),
        ]
        for first in FIRST:
            for raw, status, method, path, kind, shape in cases:
                with self.subTest(first=first[:40], raw=raw[:40]):
                    st, _, obj, line = self.refused_after(first, raw)
                    if status is not None:
                        self.assertEqual(st, status)
                    else:
                        self.assertIn(st, (400, 413, 431))
                    if kind is not None:
                        self.assertEqual(line["error"], kind)
                    self.assertEqual(line["http_status"], st)
                    self.assertEqual(line["http_method"], method)
                    self.assertEqual(line["http_path"], path)
                    if shape == "string":
                        self.assertIsInstance(obj["error"], str)
                    else:
                        self.assertEqual(obj["error"]["code"], st)
        self.assertEqual(self.relay.request("GET", "/livez")[0], 200)


if __name__ == "__main__":
    main()
