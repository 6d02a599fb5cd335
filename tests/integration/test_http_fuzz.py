"""Fuzzing the relay over HTTP, against the ASan+UBSan build (issue 12).

Generated requests go over real sockets to a relay built with
AddressSanitizer and UndefinedBehaviorSanitizer: mutated request lines
(methods, targets, versions, stray bytes), mutated headers (duplicates,
control characters, huge values, bad names), every framing (Content-Length
right, short, long, repeated, malformed; chunked with good and bad chunk
sizes, extensions and trailers; both at once), and JSON bodies for every
route of both protocol generations and the forwarded API (valid-looking
bodies with fields of the wrong type, missing, extra, empty, long,
non-ASCII, and randomly cut or mutated bytes), and now and then a body
nested far past the JSON depth limit (test_json_bodies.py covers those
one by one).

Checked for every case: the relay answers with well-formed HTTP/1.1
responses (status line, headers, a body framed by Content-Length or chunked
encoding, a JSON body where the type says JSON), never one after a
response that said `Connection: close`, or closes the connection; /livez
keeps answering; the process never dies. (One send may hold several
requests as civetweb reads them: it accepts a bare LF as a line end, so a
mutated "\r\n\n" ends a head early and what follows is the next request.) A legacy job and an API v1 request queued before the run are still
delivered after it. At the end the relay is stopped with SIGTERM and must
exit 0: a sanitizer report (including a leak) makes it exit non-zero.

Besides one request per connection, a case can be (issue 26): a kept-alive
sequence (a valid request, its answer read, then mutated requests on the
same connection, each after the previous answer); several requests
pipelined in one send; a head of exactly civetweb's buffer size
(RELAY_MAX_HEADER_BYTES, 16 KiB) or just under or over it, alone or after a
kept-alive request, including a 3-byte head followed by bytes up to the
end of the buffer (civetweb reuses one buffer per worker: that shape found
a heap-buffer-overflow in the error callback); a partial head followed by
a close; and heads with 63, 64, 65 or 100 header lines, where 64 or more
must be refused with one 431 and nothing after it (issue 19.3: civetweb
stops at its 64th line and would serve the body as a second request).

Bounds: TP_HTTP_FUZZ_SECONDS (default 40) and TP_HTTP_FUZZ_CASES (default
50000), whichever comes first; TP_HTTP_FUZZ_SEED (default 12) makes a run
repeatable, and the seed is printed. A failing case is printed as the
exact bytes sent, so it can be replayed. The run prints how many cases and
requests it sent, by case kind and by route, and fails if a route was
never sent (once the run is long enough to expect every one).
`make fuzz-long` runs it for FUZZ_LONG_SECONDS (default 600) with a fresh
seed (FUZZ_SEED to repeat one).

The relay binary is TP_RELAY_BIN. In the ASan pass (`make test-asan`) it
is that build's own binary and TP_HTTP_FUZZ_REQUIRED=1; elsewhere it is
build/asan's binary when one exists, and the test is skipped with a
message when it does not.
"""

import json
import os
import random
import socket
import sys
import time
import unittest

from relaytest import RELAY_BIN, Relay, main, scaled

SEED = int(os.environ.get("TP_HTTP_FUZZ_SEED", "12"))
SECONDS = float(os.environ.get("TP_HTTP_FUZZ_SECONDS", "40"))
CASES = int(os.environ.get("TP_HTTP_FUZZ_CASES", "50000"))
REQUIRED = os.environ.get("TP_HTTP_FUZZ_REQUIRED") == "1"
HEAD_BYTES = 16384
HEADER_LIMIT = 63       # RELAY_MAX_HEADER_COUNT's default

V1 = "/api/v1/relay"
PROTO = "tokenplace_api_v1_relay_e2ee"
MODEL = "qwen3-8b-instruct"

# Keys the generator never produces: the held jobs are addressed to these.
HELD_NODE = "held-legacy-node-key"
HELD_CLIENT = "held-legacy-client-key"
HELD_V1_NODE = "held-v1-node-key"
HELD_V1_CLIENT = "held-v1-client-key"

ENV = {
    # nothing the run does may evict the held nodes or expire their jobs
    "RELAY_SERVER_TTL_SECONDS": "3600",
    "RELAY_SERVER_BUSY_TTL_SECONDS": "3600",
    "TOKEN_PLACE_API_V1_RELAY_SERVER_LEASE_SECONDS": "3600",
    "TOKEN_PLACE_API_V1_REQUEST_DEADLINE_SECONDS": "3600",
    # no case may hold a worker for long: polls answer at once, stalled
    # heads and bodies are cut after 2 s
    "TOKEN_PLACE_API_V1_RELAY_POLL_WAIT_SECONDS": "0",
    "RELAY_TIMEOUT": "2",
    "RELAY_HEAD_TIMEOUT_MS": "2000",
    "RELAY_MAX_BODY_BYTES": "65536",
    # civetweb's head buffer, as deployed: 16 KiB heads are sent below
    "RELAY_MAX_HEADER_BYTES": str(HEAD_BYTES),
    # the forwarded API goes to a closed loopback port: 502/503 at once
    "TOKENPLACE_RELAY_UPSTREAM_URL": "http://127.0.0.1:9",
    "RELAY_UPSTREAM_CONNECT_TIMEOUT_MS": "500",
    "RELAY_UPSTREAM_HEALTH_INTERVAL_MS": "3600000",
}

ROUTES = [
    ("GET", "/livez"), ("GET", "/healthz"), ("GET", "/next_server"),
    ("POST", "/faucet"), ("POST", "/sink"), ("POST", "/source"),
    ("POST", "/retrieve"), ("POST", "/stream/source"),
    ("POST", "/stream/retrieve"), ("POST", "/unregister"),
    ("POST", V1 + "/servers/register"), ("POST", V1 + "/servers/poll"),
    ("POST", V1 + "/servers/control"), ("POST", V1 + "/servers/unregister"),
    ("GET", V1 + "/servers/next"), ("POST", V1 + "/requests"),
    ("POST", V1 + "/requests/cancel"), ("POST", V1 + "/responses"),
    ("POST", V1 + "/progress"), ("POST", V1 + "/responses/retrieve"),
    ("GET", "/api/v1/meta"), ("GET", "/api/v1/version"),
    ("POST", "/v1/chat/completions"), ("GET", "/v1/models"),
    ("GET", "/nowhere"),
]

# Keys, ids and model ids equal to the state stores' own key suffixes and
# index names, globs, CR/LF and hash tags (issue 19: none may become a
# Redis key name; test_store_keys.py runs them on Redis one by one).
STORE_NAMES = ["exp", "seen", "q", "queued", "resp", "resp:exp", "srv:exp",
               "sess:exp", "s", "sc", "sby", "chunks", "sweep:due", "schema",
               "l2:resp", "by", "key", "nodes", "byreg", "m", "mh", "live",
               "claims", "ready", "term", "tombs", "wake:*", "v1:nodes", "*",
               "?", "[a-z]", "{x}", "}{", "a\r\nb", "K" * 6000]

# Field names each route reads, so that bodies reach the handlers.
FIELDS = ["server_public_key", "client_public_key", "chat_history",
          "cipherkey", "iv", "session_id", "chunk", "final", "request_id",
          "ciphertext", "protocol", "version", "cancel_token",
          "control_credential", "capabilities", "acknowledge", "progress",
          "model", "messages", "stream", "deadline_seconds"]


class Gen:
    """The request generator; everything comes from one seeded Random."""

    def __init__(self, seed):
        self.r = random.Random(seed)
        self.routes = dict.fromkeys(ROUTES, 0)  # requests sent per route

    def text(self, lo=0, hi=24):
        r = self.r
        n = r.randint(lo, hi)
        pick = r.random()
        if pick < 0.6:
            alphabet = "abcdefKLMN0123456789+/=-_"
        elif pick < 0.8:
            alphabet = "\u043a\u043b\u044e\u0447\U0001F600\u00e9\"\\ \t"
        else:
            alphabet = "".join(chr(c) for c in range(0, 128))
        return "".join(r.choice(alphabet) for _ in range(n))

    def scalar(self):
        r = self.r
        return r.choice([
            lambda: self.text(),
            lambda: self.text(200, 3000),
            lambda: r.randint(-2**63, 2**63),
            lambda: r.random() * 1e308,
            lambda: None, lambda: True, lambda: False, lambda: "",
            lambda: PROTO, lambda: 1, lambda: MODEL,
        ])()

    def value(self, depth=0):
        r = self.r
        if depth > 3 or r.random() < 0.6:
            return self.scalar()
        if r.random() < 0.5:
            return [self.value(depth + 1) for _ in range(r.randint(0, 4))]
        return {self.text(1, 8): self.value(depth + 1)
                for _ in range(r.randint(0, 4))}

    def caps(self):
        return {"api_version": "v1", "active_context_tier": "8k-fast",
                "supported_model_ids": [MODEL],
                "max_concurrency": self.r.randint(-1, 5)}

    def key(self):
        """A key from a small pool, so that later cases find earlier state."""
        if self.r.random() < 0.2:
            return self.r.choice(STORE_NAMES)
        return "fuzz-key-%d" % self.r.randint(0, 15)

    def template(self, path):
        """A body the route accepts as it is (before any mutation)."""
        k, c, rid = self.key(), self.key(), "fuzz-rid-%d" % self.r.randint(0, 15)
        if self.r.random() < 0.2:
            rid = self.r.choice(STORE_NAMES)
        env = {"protocol": PROTO, "version": 1}
        t = {
            "/faucet": {"server_public_key": k, "client_public_key": c,
                        "chat_history": "CH", "cipherkey": "CK", "iv": "IV"},
            "/sink": {"server_public_key": k},
            "/source": {"client_public_key": c, "chat_history": "R",
                        "cipherkey": "CK", "iv": "IV"},
            "/retrieve": {"client_public_key": c},
            "/stream/source": {"session_id": rid, "chunk": "x",
                               "final": self.r.random() < 0.5},
            "/stream/retrieve": {"session_id": rid},
            "/unregister": {"server_public_key": k},
            V1 + "/servers/register": {"server_public_key": k,
                                       "capabilities": self.caps()},
            V1 + "/servers/poll": {"server_public_key": k},
            V1 + "/servers/control": {"server_public_key": k,
                                      "request_id": rid,
                                      "control_credential": "cred"},
            V1 + "/servers/unregister": {"server_public_key": k,
                                         "control_credential": "cred"},
            V1 + "/requests": dict(env, server_public_key=k,
                                   client_public_key=c, ciphertext="CT",
                                   cipherkey="CK", iv="IV", request_id=rid,
                                   cancel_token="t"),
            V1 + "/requests/cancel": {"request_id": rid, "cancel_token": "t",
                                      "client_public_key": c},
            V1 + "/responses": dict(env, client_public_key=c, request_id=rid,
                                    chat_history="R", cipherkey="CK",
                                    iv="IV"),
            V1 + "/progress": {"server_public_key": k, "request_id": rid,
                               "progress": {"tokens": 1}},
            V1 + "/responses/retrieve": {"client_public_key": c,
                                         "request_id": rid},
            "/v1/chat/completions": {"model": MODEL, "messages": [
                {"role": "user", "content": "hi"}]},
        }.get(path)
        return dict(t) if t is not None else None

    def body_obj(self, path=""):
        r = self.r
        t = self.template(path)
        if t is not None and r.random() < 0.6:
            if r.random() < 0.5:
                f = r.choice(list(t))
                t[f] = self.value() if r.random() < 0.5 else self.text(0, 60)
            return t
        obj = {}
        for f in r.sample(FIELDS, r.randint(0, 8)):
            obj[f] = self.value() if r.random() < 0.3 else self.text(1, 40)
        if r.random() < 0.3:
            obj["capabilities"] = self.caps()
        if r.random() < 0.3:
            obj["protocol"], obj["version"] = PROTO, 1
        if r.random() < 0.1:
            obj[self.text(1, 12)] = self.value()
        return obj

    def body(self, path):
        r = self.r
        pick = r.random()
        if pick < 0.75:
            data = json.dumps(self.body_obj(path),
                              ensure_ascii=r.random() < 0.5)
        elif pick < 0.82:
            data = json.dumps(self.value())
        elif pick < 0.85:
            n = r.choice([63, 64, 65, 100, 500, 1000, 5000, 20000])
            open_, close = r.choice([("[", "]"), ('{"a":', "}")])
            data = open_ * n + "1" + close * n
        else:
            data = json.dumps(self.body_obj(path))
            data = self.mutate_text(data)
        data = data.encode("utf-8", "surrogatepass")
        if r.random() < 0.05:
            data += b"\x00\xff" + bytes(r.randrange(256) for _ in range(8))
        return data

    def mutate_text(self, s):
        r = self.r
        s = list(s)
        for _ in range(r.randint(1, 6)):
            op = r.random()
            i = r.randrange(len(s) + 1)
            if op < 0.4 and s:
                del s[min(i, len(s) - 1)]
            elif op < 0.8:
                s.insert(i, r.choice('{}[]",:\\ 0e-.tfn\x00\u00ff'))
            elif s:
                s = s[:i]
        return "".join(s)

    def mutate_bytes(self, b, n=None):
        r = self.r
        b = bytearray(b)
        for _ in range(n or r.randint(1, 4)):
            if not b:
                break
            i = r.randrange(len(b))
            op = r.random()
            if op < 0.4:
                b[i] = r.randrange(256)
            elif op < 0.7:
                b.insert(i, r.choice(b"\r\n\x00 :\t\x7f\xff/%?#"))
            else:
                del b[i]
        return bytes(b)

    def chunked(self, body):
        """body in chunks, with the odd bad size, extension or trailer."""
        r = self.r
        out, i = b"", 0
        while i < len(body):
            n = r.randint(1, max(1, len(body) - i))
            size = b"%x" % n
            p = r.random()
            if p < 0.05:
                size = r.choice([b"zz", b"-1", b"", b"ffffffffffffffff",
                                 b"1" * 40, b" 5", b"0x5"])
            elif p < 0.1:
                size += b";ext=" + self.text(0, 8).encode("utf-8", "replace")
            out += size + b"\r\n" + body[i:i + n] + b"\r\n"
            i += n
        out += b"0\r\n"
        if r.random() < 0.1:
            out += b"X-Trailer: t\r\n"
        out += b"\r\n"
        if r.random() < 0.1:
            out = self.mutate_bytes(out)
        return out

    def request(self, no_head=False):
        """One request as raw bytes, and its method. no_head: never HEAD
        (in a sequence, which answer belongs to which request is not
        known, and an answer to HEAD has no body)."""
        r = self.r
        method, path = r.choice(ROUTES)
        self.routes[(method, path)] += 1
        if r.random() < 0.08:
            method = r.choice(["GET", "POST", "PUT", "DELETE", "HEAD",
                               "OPTIONS", "PATCH", "BREW", "get", "P\x00ST"])
        if no_head and method == "HEAD":
            method = "GET"
        if r.random() < 0.08:
            path += r.choice(["?a=1", "/", "//x", "%00", "%zz", "?" +
                              self.text(0, 30), "#f", "/../../etc/passwd"])
        version = "HTTP/1.1"
        if r.random() < 0.05:
            version = r.choice(["HTTP/1.0", "HTTP/2", "HTTP/1.1x", "HTTP/9.9",
                                "", "http/1.1"])
        body = self.body(path) if method in ("POST", "PUT", "PATCH") \
            or r.random() < 0.05 else b""
        headers = [("Host", "fuzz.test")]
        if body or r.random() < 0.1:
            headers.append(("Content-Type", r.choice([
                "application/json", "application/json; charset=utf-8",
                "application/x+json", "text/plain", "", "application/json\x01"])
                if r.random() < 0.2 else "application/json"))
        framing = r.random()
        payload = body
        if framing < 0.55:
            headers.append(("Content-Length", str(len(body))))
        elif framing < 0.7:
            headers.append(("Transfer-Encoding", "chunked"))
            payload = self.chunked(body)
        elif framing < 0.75:
            headers.append(("Content-Length", str(len(body))))
            headers.append(("Transfer-Encoding", "chunked"))
            payload = self.chunked(body)
        elif framing < 0.8:
            headers.append(("Content-Length", str(len(body))))
            headers.append(("Content-Length",
                            str(len(body) + r.randint(-3, 3))))
        elif framing < 0.87:
            headers.append(("Content-Length", r.choice([
                str(len(body) + r.randint(1, 50)),
                str(max(0, len(body) - r.randint(1, 50))), "+%d" % len(body),
                "%dx" % len(body), "-1", "", "99999999999999999999",
                "0x10", " %d " % len(body)])))
        elif framing < 0.92:
            headers.append(("Transfer-Encoding", r.choice([
                "gzip", "gzip, chunked", "identity", "Chunked", "chunked ",
                "x" * 100])))
            payload = self.chunked(body) if r.random() < 0.5 else body
        # else: no framing header at all, body bytes follow anyway
        if r.random() < 0.2:
            headers.append(("X-Relay-Server-Token", self.text(0, 20)))
        if r.random() < 0.1:
            headers.append(("X-Request-Id", self.text(0, 200)))
        if r.random() < 0.1:
            headers.append((self.text(1, 20), self.text(0, 60)))
        if r.random() < 0.03:
            headers.append(("X-Big", "b" * r.randint(1000, 12000)))
        if r.random() < 0.05:
            r.shuffle(headers)
        keep = r.random() < 0.3
        headers.append(("Connection", "keep-alive" if keep else "close"))
        head = "%s %s %s\r\n" % (method, path, version)
        head += "".join("%s: %s\r\n" % kv for kv in headers) + "\r\n"
        raw = head.encode("utf-8", "surrogatepass") + payload
        if r.random() < 0.1:
            # a mutation anywhere in the head
            cut = len(head.encode("utf-8", "surrogatepass"))
            raw = self.mutate_bytes(raw[:cut]) + raw[cut:]
        elif r.random() < 0.05:
            raw = self.mutate_bytes(raw, 8)
        return raw, method

    def clean(self, keep=True, total_headers=None, route=None):
        """A well-formed request (never mutated) for a route, with a body
        the route accepts; total_headers pads the head with X-Fuzz-<n>
        lines before the framing ones so that it has exactly that many."""
        r = self.r
        method, path = route or r.choice(ROUTES)
        self.routes[(method, path)] += 1
        body = b""
        tail = []
        if method == "POST":
            t = self.template(path)
            body = json.dumps(t if t is not None else self.body_obj(path),
                              ensure_ascii=True).encode()
            tail = ["Content-Type: application/json",
                    "Content-Length: %d" % len(body)]
        tail.append("Connection: " + ("keep-alive" if keep else "close"))
        lines = ["Host: fuzz.test"]
        if total_headers is not None:
            pad = total_headers - len(lines) - len(tail)
            lines += ["X-Fuzz-%d: v%d" % (i, i) for i in range(max(0, pad))]
        head = "%s %s HTTP/1.1\r\n%s\r\n\r\n" % (method, path,
                                                  "\r\n".join(lines + tail))
        return head.encode() + body

    def filler(self, n):
        """n bytes without NUL, CR or LF, as stale bytes would be."""
        r = self.r
        pick = r.random()
        if pick < 0.4:
            return b"A" * n
        if pick < 0.7:
            unit = r.choice([b"POST /sink HTTP/1.1 ", b"/api/v1/relay/",
                             b"Content-Length: 5 ", b"\xff\xfe"])
            return (unit * (n // len(unit) + 1))[:n]
        return bytes(r.choice(b"abcXYZ019:/ %\t\x80\xfe") for _ in range(n))

    def big_head(self):
        """A head of about civetweb's buffer size: (raw, head bytes or None
        when the head never ends, whether it is a plain GET /livez)."""
        r = self.r
        size = HEAD_BYTES + r.choice([-2, -1, 0, 1, 2, 100, 4096])
        shape = r.random()
        if shape < 0.35:
            # a head civetweb cuts short, then bytes up to the buffer end
            short = r.choice([b"X\n\n", b"GET\n\n", b"POST /sink\r\n\r\n",
                              b"G\r\n\r\n", b"\r\n\r\n", b"GET /x\n\n"])
            return short + self.filler(size - len(short)), None, False
        self.routes[("GET", "/livez")] += 1
        start = b"GET /livez HTTP/1.1\r\nHost: fuzz.test\r\nX-Big: "
        if shape < 0.75:
            end = b"\r\nConnection: close\r\n\r\n"
            pad = max(0, size - len(start) - len(end))
            raw = start + b"b" * pad + end
            return raw, len(raw), True
        return start + self.filler(max(0, size - len(start))), None, False


class Malformed(AssertionError):
    pass


def read_all(s, limit_s):
    """Bytes until the relay closes, or raise after limit_s (a hang)."""
    deadline = time.monotonic() + limit_s
    data = b""
    while True:
        s.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            b = s.recv(65536)
        except socket.timeout:
            raise Malformed("no EOF within %.0f s after %r" % (limit_s, data))
        except ConnectionResetError:
            return data
        if not b:
            return data
        data += b


class Incomplete(Malformed):
    """The bytes so far end inside a response."""


def parse_one(data, head_only):
    """The first response in data: (status, Connection value, its length).
    Checks it is well formed; raises Incomplete when data ends inside it."""
    head, sep, rest = data.partition(b"\r\n\r\n")
    if not sep:
        raise Incomplete("incomplete head %r" % data[:300])
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 3 or parts[0] not in (b"HTTP/1.1", b"HTTP/1.0") or \
            not parts[1].isdigit() or len(parts[1]) != 3:
        raise Malformed("bad status line %r" % lines[0])
    status = int(parts[1])
    hdrs = {}
    for line in lines[1:]:
        k, colon, v = line.partition(b":")
        if not colon or not k or k != k.strip():
            raise Malformed("bad header line %r" % line)
        hdrs[k.decode("latin-1").lower()] = v.strip().decode("latin-1")
    # A refusal of a head civetweb could not parse carries its body
    # even for HEAD (the relay cannot know the method), then closes.
    refused_unparsed = head_only and status == 400 and \
        hdrs.get("connection", "").lower() == "close" and \
        len(rest) == int(hdrs.get("content-length", "-1"))
    if (head_only and not refused_unparsed) or status in (204, 304) \
            or status < 200:
        body = b""
    elif "content-length" in hdrs:
        n = int(hdrs["content-length"])
        if len(rest) < n:
            raise Incomplete("short body: %d of %d" % (len(rest), n))
        body, rest = rest[:n], rest[n:]
    elif hdrs.get("transfer-encoding") == "chunked":
        body = b""
        while True:
            size_line, sep, rest = rest.partition(b"\r\n")
            if not sep:
                raise Incomplete("cut chunked body")
            n = int(size_line.split(b";")[0], 16)
            if n == 0:
                _, sep, rest = rest.partition(b"\r\n")
                if not sep:
                    raise Incomplete("cut chunked body")
                break
            if len(rest) < n + 2:
                raise Incomplete("cut chunk")
            body, rest = body + rest[:n], rest[n + 2:]
    else:
        raise Malformed("response without framing: %r" % head)
    ctype = hdrs.get("content-type", "")
    if body and ctype.startswith("application/json"):
        try:
            json.loads(body)
        except ValueError:
            raise Malformed("body is not JSON: %r" % body[:300])
    elif body and not ctype.startswith(("text/event-stream",
                                        "text/plain")):
        raise Malformed("unexpected type %r for %r" % (ctype, body[:200]))
    if status >= 400 and not (body or head_only):
        raise Malformed("error %d without a body" % status)
    return status, hdrs.get("connection", "").lower(), len(data) - len(rest)


def parse_responses(data, head_only, closed_before=False):
    """Splits data into responses; checks each is well formed and that
    none follows one that said `Connection: close`."""
    out = []
    while data:
        if closed_before or (out and out[-1][1] == "close"):
            raise Malformed("a response after one that closed: %r"
                            % data[:300])
        try:
            status, conn, n = parse_one(data, head_only)
        except Incomplete as e:
            raise Malformed(str(e))
        out.append((status, conn))
        data = data[n:]
    return [st for st, _ in out]


class Conn:
    """One client connection: whole answers read one at a time, then the
    rest until EOF."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port),
                                          timeout=scaled(10))
        self.buf = b""

    def send(self, raw):
        try:
            self.s.sendall(raw)
            return True
        except OSError:
            return False  # answered and closed before all was sent

    def read_one(self, limit_s):
        """The next answer (status, Connection), or None at EOF."""
        deadline = time.monotonic() + limit_s
        while True:
            if self.buf:
                try:
                    status, conn, n = parse_one(self.buf, False)
                    self.buf = self.buf[n:]
                    return status, conn
                except Incomplete:
                    pass
            self.s.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                b = self.s.recv(65536)
            except socket.timeout:
                raise Malformed("no answer within %.0f s (%r)"
                                % (limit_s, self.buf[:300]))
            except ConnectionResetError:
                b = b""
            if not b:
                if self.buf:
                    raise Malformed("EOF inside an answer: %r"
                                    % self.buf[:300])
                return None
            self.buf += b

    def finish(self, limit_s):
        """Half-closes, then everything until EOF."""
        try:
            self.s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        data = self.buf + read_all(self.s, limit_s)
        self.buf = b""
        return data

    def close(self):
        self.s.close()


def kept_alive_prefix(gen, c, sent):
    """1 or 2 valid kept-alive requests, each answer read before the next
    is sent. Returns their statuses, and whether the relay closed."""
    statuses = []
    for _ in range(gen.r.randint(1, 2)):
        raw = gen.clean(keep=True)
        sent.append(raw)
        if not c.send(raw):
            return statuses, True
        got = c.read_one(scaled(15))
        if got is None:
            raise Malformed("no answer to a valid request")
        statuses.append(got[0])
        if got[1] == "close":
            return statuses, True
    return statuses, False


class HttpFuzz(unittest.TestCase):
    def setUp(self):
        if not RELAY_BIN or not os.access(RELAY_BIN, os.X_OK):
            if REQUIRED:
                self.fail("the ASan+UBSan relay is missing: %r" % RELAY_BIN)
            self.skipTest("no ASan+UBSan relay at %r; this test runs in the "
                          "ASan pass (make test-asan), or build it with "
                          "cmake --preset asan && cmake --build --preset asan"
                          % RELAY_BIN)

    def hold_jobs(self, r):
        """A legacy job and an API v1 request waiting for their nodes."""
        st, obj = r.post_json("/sink", {"server_public_key": HELD_NODE})
        self.assertEqual(st, 200, obj)
        st, obj = r.post_json("/faucet", {
            "server_public_key": HELD_NODE, "client_public_key": HELD_CLIENT,
            "chat_history": "HELD-LEGACY", "cipherkey": "K", "iv": "I"})
        self.assertEqual(st, 200, obj)
        st, obj = r.post_json(V1 + "/servers/register", {
            "server_public_key": HELD_V1_NODE,
            "capabilities": {"api_version": "v1",
                             "active_context_tier": "8k-fast",
                             "supported_model_ids": [MODEL],
                             "max_concurrency": 1}})
        self.assertEqual(st, 200, obj)
        st, obj = r.post_json(V1 + "/requests", {
            "server_public_key": HELD_V1_NODE,
            "client_public_key": HELD_V1_CLIENT, "ciphertext": "HELD-V1",
            "cipherkey": "CK", "iv": "IV", "request_id": "held-v1",
            "protocol": PROTO, "version": 1, "cancel_token": "c"})
        self.assertIn(st, (200, 202), obj)

    def deliver_jobs(self, r):
        st, obj = r.post_json("/sink", {"server_public_key": HELD_NODE})
        self.assertEqual(st, 200, obj)
        self.assertEqual(obj.get("chat_history"), "HELD-LEGACY", obj)
        self.assertEqual(obj.get("client_public_key"), HELD_CLIENT, obj)
        st, obj = r.post_json(V1 + "/servers/poll",
                              {"server_public_key": HELD_V1_NODE})
        self.assertEqual(st, 200, obj)
        self.assertIn("HELD-V1", json.dumps(obj), obj)

    # -- case kinds: each returns the statuses it got; appends what it sent
    def case_single(self, gen, port, sent):
        raw, method = gen.request()
        sent.append(raw)
        c = Conn(port)
        try:
            c.send(raw)
            return parse_responses(c.finish(scaled(15)), method == "HEAD")
        finally:
            c.close()

    def case_keepalive(self, gen, port, sent):
        """Valid requests, each answer read, then mutated ones on the same
        connection (the buffer civetweb reuses holds the earlier ones)."""
        c = Conn(port)
        try:
            got, closed = kept_alive_prefix(gen, c, sent)
            if closed:
                return got
            tail = b""
            for _ in range(gen.r.randint(1, 3)):
                if gen.r.random() < 0.2:
                    raw = gen.big_head()[0]
                else:
                    raw = gen.request(no_head=True)[0]
                sent.append(raw)
                tail += raw
            c.send(tail)
            return got + parse_responses(c.finish(scaled(15)), False)
        finally:
            c.close()

    def case_pipelined(self, gen, port, sent):
        parts = [gen.clean(keep=True)]
        parts += [gen.request(no_head=True)[0]
                  for _ in range(gen.r.randint(1, 4))]
        if gen.r.random() < 0.5:
            parts.append(gen.clean(keep=False))
        sent.extend(parts)
        c = Conn(port)
        try:
            c.send(b"".join(parts))
            return parse_responses(c.finish(scaled(15)), False)
        finally:
            c.close()

    def case_big_head(self, gen, port, sent):
        c = Conn(port)
        try:
            got, closed = ([], False)
            if gen.r.random() < 0.6:
                got, closed = kept_alive_prefix(gen, c, sent)
            if closed:
                return got
            raw, head_len, plain = gen.big_head()
            sent.append(raw)
            c.send(raw)
            more = parse_responses(c.finish(scaled(15)), False)
        finally:
            c.close()
        if plain and head_len <= HEAD_BYTES:
            if more != [200]:
                raise Malformed("a %d-byte head (the limit is %d) got %r"
                                % (head_len, HEAD_BYTES, more))
        elif plain and (len(more) != 1 or more[0] < 400 or more[0] > 499):
            raise Malformed("a %d-byte head (the limit is %d) got %r"
                            % (head_len, HEAD_BYTES, more))
        return got + more

    def case_partial(self, gen, port, sent):
        """Part of a head, then the client half-closes or goes away."""
        c = Conn(port)
        try:
            got, closed = ([], False)
            if gen.r.random() < 0.4:
                got, closed = kept_alive_prefix(gen, c, sent)
            if closed:
                return got
            raw = gen.clean(keep=gen.r.random() < 0.5)
            head_len = raw.index(b"\r\n\r\n") + 3
            raw = raw[:gen.r.randint(1, head_len)]
            sent.append(raw)
            c.send(raw)
            if gen.r.random() < 0.5:
                return got  # closed without reading
            more = parse_responses(c.finish(scaled(15)), False)
        finally:
            c.close()
        if any(st < 400 for st in more):
            raise Malformed("a partial head was answered %r" % more)
        return got + more

    def case_header_count(self, gen, port, sent):
        """63, 64, 65 or 100 header lines (or any count up to 120): more than
        the limit gets one 431 and nothing after it."""
        total = gen.r.choice([63, 64, 65, 100, gen.r.randint(1, 120)])
        c = Conn(port)
        try:
            got, closed = ([], False)
            if gen.r.random() < 0.3:
                got, closed = kept_alive_prefix(gen, c, sent)
            if closed:
                return got
            raw = gen.clean(keep=gen.r.random() < 0.5, total_headers=total)
            if gen.r.random() < 0.5:
                # a request behind it: must never be served after a 431
                raw += gen.clean(keep=False, route=("GET", "/livez"))
            sent.append(raw)
            c.send(raw)
            more = parse_responses(c.finish(scaled(15)), False)
        finally:
            c.close()
        if total > HEADER_LIMIT and more != [431]:
            raise Malformed("%d header lines got %r, not one 431"
                            % (total, more))
        if total <= HEADER_LIMIT and 431 in more:
            raise Malformed("%d header lines got a 431" % total)
        return got + more

    KINDS = [(0.60, "single"), (0.72, "keepalive"), (0.80, "pipelined"),
             (0.87, "big_head"), (0.93, "partial"), (1.0, "header_count")]

    def test_generated_requests(self):
        env = dict(ENV)
        os.environ.setdefault("UBSAN_OPTIONS",
                              "print_stacktrace=1:halt_on_error=1")
        os.environ.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1")
        print("http fuzz: seed %d, at most %d cases or %.0f s (replay with "
              "TP_HTTP_FUZZ_SEED=%d); relay %s"
              % (SEED, CASES, SECONDS, SEED, RELAY_BIN), flush=True)
        gen = Gen(SEED)
        statuses = {}
        kinds = {name: 0 for _, name in self.KINDS}
        requests = 0
        with Relay(env=env) as r:
            self.hold_jobs(r)
            start = time.monotonic()
            n = 0
            while n < CASES and time.monotonic() - start < SECONDS:
                pick = gen.r.random()
                kind = next(name for p, name in self.KINDS if pick < p)
                n += 1
                kinds[kind] += 1
                sent = []
                try:
                    got = getattr(self, "case_" + kind)(gen, r.port, sent)
                except (Malformed, OSError) as e:
                    died = r.wait_exit(5) \
                        if isinstance(e, OSError) or "no answer" in str(e) \
                        else r.proc.poll()
                    self.fail("case %d (%s, seed %d): %s\nsent: %r%s"
                              % (n, kind, SEED, e, [x[:2000] for x in sent],
                                 "" if died is None else
                                 "\nthe relay exited %r:\n%s"
                                 % (died, r.stderr_text()[-6000:])))
                requests += len(sent)
                for st in got:
                    statuses[st] = statuses.get(st, 0) + 1
                if n % 250 == 0:
                    self.assertIsNone(r.proc.poll(), "relay died")
                    self.assertEqual(r.request("GET", "/livez")[0], 200)
                    r.forget_logs()
            elapsed = time.monotonic() - start
            self.assertIsNone(r.proc.poll(), "relay died")
            self.assertEqual(r.request("GET", "/livez")[0], 200)
            self.deliver_jobs(r)
        print("http fuzz: seed %d: %d cases, %d requests in %.1f s; "
              "cases by kind %s; statuses %s"
              % (SEED, n, requests, elapsed, kinds,
                 dict(sorted(statuses.items()))), flush=True)
        print("http fuzz: requests by route %s"
              % {"%s %s" % k: v for k, v in gen.routes.items()}, flush=True)
        self.assertGreater(n, 100)
        if n >= 40 * len(ROUTES):
            unsent = [k for k, v in gen.routes.items() if v == 0]
            self.assertEqual(unsent, [], "routes never sent")

if __name__ == "__main__":
    main()
