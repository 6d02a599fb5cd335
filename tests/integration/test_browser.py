"""A real browser through the relay: Debian's chromium, headless, loads /
from the relay, whose RELAY_WEB_DIR is tests/fixtures/web_chat (a page
written for this test: plain JavaScript and WebCrypto, no CDN). The page
reads /relay/diagnostics, picks the model of the one API v1 node
(tests/fixtures/tp_peers_v1.py) from /api/v1/models, sends one encrypted
request through /api/v1/relay/* and shows the decrypted answer. The test
reads the answer from the DOM over the DevTools protocol (a websocket
spoken with the standard library only) and saves a screenshot to
$TP_ARTIFACT_DIR/browser_chat.png.

Chromium reaches nothing outside the machine: no proxy, every host name
but 127.0.0.1 resolves to nothing, background networking, component
updates, sync and safe-browsing are off, and its profile is a fresh
temporary directory. The test reads chromium's net log afterwards and
fails on any TCP connection to a non-loopback address or any UDP datagram
sent. Waits poll with deadlines stretched by
TP_TIMEOUT_SCALE."""

import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import unittest
import urllib.request

from relaytest import Relay, main, scaled, wait_for

import tp_peers as tp
import tp_peers_v1 as v1

SOURCE = os.environ.get("TP_SOURCE_DIR", os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", ".."))
PAGE_DIR = os.path.join(SOURCE, "tests", "fixtures", "web_chat")
ARTIFACTS = os.environ.get("TP_ARTIFACT_DIR", tempfile.gettempdir())
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
MODEL = "tp-browser-model"
PROMPT = "Hello from headless Chromium"
HTTP_TIMEOUT = scaled(30)


class DevTools:
    """Just enough of a websocket client (RFC 6455) for the DevTools
    protocol: one text message per command, answers matched by id."""

    def __init__(self, ws_url, timeout):
        assert ws_url.startswith("ws://127.0.0.1:"), ws_url
        hostport, _, path = ws_url[len("ws://"):].partition("/")
        host, _, port = hostport.partition(":")
        self.sock = socket.create_connection((host, int(port)), timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((
            "GET /%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n" % (path, hostport, key)
        ).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                raise AssertionError("DevTools closed during the handshake")
            head += chunk
        if not head.startswith(b"HTTP/1.1 101"):
            raise AssertionError("DevTools handshake: %r" % head)
        self.next_id = 0

    def close(self):
        self.sock.close()

    def _recv_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise AssertionError("DevTools connection closed")
            buf += chunk
        return buf

    def _send(self, text):
        data = text.encode()
        mask = os.urandom(4)
        n = len(data)
        if n < 126:
            head = struct.pack("!BB", 0x81, 0x80 | n)
        elif n < 65536:
            head = struct.pack("!BBH", 0x81, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x81, 0x80 | 127, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        self.sock.sendall(head + mask + masked)

    def _recv_message(self):
        parts = []
        while True:
            b0, b1 = self._recv_exact(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._recv_exact(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._recv_exact(8))[0]
            payload = self._recv_exact(n)
            opcode = b0 & 0x0F
            if opcode == 0x8:
                raise AssertionError("DevTools closed the websocket")
            if opcode in (0x9, 0xA):        # ping/pong: not expected
                continue
            parts.append(payload)
            if b0 & 0x80:
                return json.loads(b"".join(parts))

    def call(self, method, **params):
        self.next_id += 1
        self._send(json.dumps({"id": self.next_id, "method": method,
                               "params": params}))
        while True:
            msg = self._recv_message()
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise AssertionError("%s: %r" % (method, msg["error"]))
                return msg["result"]

    def evaluate(self, expression):
        res = self.call("Runtime.evaluate", expression=expression,
                        returnByValue=True)
        return res["result"].get("value")


class Chromium:
    """Headless chromium on a fresh profile, DevTools on an ephemeral
    loopback port (read back from DevToolsActivePort)."""

    def __init__(self, url):
        self.url = url
        self.profile = tempfile.mkdtemp(prefix="tp-chromium-")
        self.netlog = os.path.join(self.profile, "netlog.json")
        self.proc = None
        self.port = None
        self.remote = None      # filled by __exit__ from the net log
        self.local = 0

    def __enter__(self):
        if not os.path.exists(CHROMIUM):
            raise AssertionError("chromium is not installed (cmake/"
                                 "install-deps.sh test installs it)")
        args = [CHROMIUM, "--headless", "--disable-gpu",
                "--no-proxy-server",
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
                "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                "--disable-default-apps", "--disable-extensions",
                "--disable-client-side-phishing-detection",
                "--disable-domain-reliability", "--disable-breakpad",
                "--safebrowsing-disable-auto-update", "--no-pings",
                "--no-first-run", "--no-default-browser-check",
                "--disable-features=Translate,OptimizationHints,MediaRouter,"
                "AutofillServerCommunication,CertificateTransparencyComponentUpdater",
                "--disable-dev-shm-usage", "--hide-scrollbars",
                "--window-size=900,600",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                "--user-data-dir=" + self.profile,
                "--log-net-log=" + self.netlog]
        if os.geteuid() == 0:
            args.append("--no-sandbox")     # chromium refuses root otherwise
        args.append(self.url)
        self.log = open(os.path.join(self.profile, "stderr.log"), "wb")
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                     stderr=self.log)
        active = os.path.join(self.profile, "DevToolsActivePort")

        def port_known():
            if self.proc.poll() is not None:
                raise AssertionError("chromium exited (%r): %s" % (
                    self.proc.returncode, self.stderr()))
            try:
                with open(active) as f:
                    first = f.readline().strip()
                return int(first) if first.isdigit() else None
            except OSError:
                return None
        try:
            self.port = wait_for(port_known, 60, interval=0.05,
                                 what="chromium's DevTools port")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def stderr(self):
        try:
            with open(os.path.join(self.profile, "stderr.log"), "rb") as f:
                return f.read().decode("utf-8", "replace")[-4000:]
        except OSError:
            return ""

    def page_ws(self):
        with urllib.request.build_opener(urllib.request.ProxyHandler({})) \
                .open("http://127.0.0.1:%d/json/list" % self.port,
                      timeout=HTTP_TIMEOUT) as resp:
            targets = json.loads(resp.read())
        for t in targets:
            if t.get("type") == "page" and t.get("url", "").startswith(self.url):
                return t["webSocketDebuggerUrl"]
        return None

    def close_gracefully(self):
        """Browser.close over the browser's own DevTools target, so that
        chromium ends its net log properly; then waits for it to exit."""
        try:
            with urllib.request.build_opener(urllib.request.ProxyHandler({})) \
                    .open("http://127.0.0.1:%d/json/version" % self.port,
                          timeout=HTTP_TIMEOUT) as resp:
                ws = json.loads(resp.read())["webSocketDebuggerUrl"]
            dt = DevTools(ws, HTTP_TIMEOUT)
            try:
                dt.call("Browser.close")
            except (AssertionError, OSError):
                pass                # it may close the socket before answering
            finally:
                dt.close()
            wait_for(lambda: self.proc.poll() is not None, 30,
                     what="chromium to exit after Browser.close")
        except (AssertionError, OSError, ValueError, KeyError):
            pass                    # terminated below instead

    def __exit__(self, *exc):
        if self.proc is not None and self.proc.poll() is None and self.port:
            self.close_gracefully()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=scaled(20))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "log", None) is not None:
            self.log.close()
        self.remote, self.local = remote_traffic(self.netlog)
        shutil.rmtree(self.profile, ignore_errors=True)
        return False


def remote_traffic(path):
    """What chromium's net log shows leaving the machine: TCP connections
    to an address that is not loopback, and UDP datagrams sent anywhere
    (name lookups included). A UDP connect() alone sends nothing: chromium
    does one to 2001:4860:4860::8888 to learn its own IPv6 address, which
    is why connects are not counted but sent bytes are. Returns (list of
    findings or None when there is no log to read, number of loopback TCP
    connections: proof that the log saw the page's own traffic)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return None, 0
    if not text.rstrip().endswith("}"):
        # Cut after the last complete event of an unfinished log.
        cut = text.rfind("},\n")
        text = text[:cut + 1] + "]}"
    try:
        log = json.loads(text)
    except ValueError:
        return None, 0
    names = {v: k for k, v in log["constants"]["logEventTypes"].items()}
    found, local = [], 0
    for e in log.get("events", []):
        name = names.get(e.get("type"))
        params = e.get("params") or {}
        if name in ("TCP_CONNECT", "TCP_CONNECT_ATTEMPT") and \
                "address" in params:
            host = params["address"].rsplit(":", 1)[0].strip("[]")
            if host.startswith("127.") or host == "::1":
                local += 1
            else:
                found.append("%s %s" % (name, params["address"]))
        elif name == "UDP_BYTES_SENT":
            found.append("%s %s" % (name, params))
    return found, local


class Browser(unittest.TestCase):
    def test_chat_page_round_trip(self):
        keys = tp.key_pool(1)
        env = {"RELAY_WEB_DIR": PAGE_DIR, "ENVIRONMENT": "test",
               "TOKEN_PLACE_API_V1_RELAY_POLL_WAIT_SECONDS": "1",
               "TOKEN_PLACE_API_V1_RELAY_SERVER_LEASE_SECONDS":
                   str(int(scaled(30)))}
        with Relay(env=env) as r:
            base = "http://127.0.0.1:%d" % r.port
            # The browser unwraps with WebCrypto, which has RSA-OAEP only.
            node = v1.ApiV1Node(base, name="gpu-1", keypair=keys[0],
                                capabilities=v1.default_capabilities(
                                    models=[MODEL]),
                                response_padding=tp.OAEP,
                                timeout=HTTP_TIMEOUT)
            with node:
                wait_for(lambda: r.get_json("/api/v1/models")[1]["data"], 20,
                         what="the node's model in /api/v1/models")
                with Chromium(base + "/") as browser:
                    ws = wait_for(browser.page_ws, 30,
                                  what="the page target")
                    dt = DevTools(ws, HTTP_TIMEOUT)
                    try:
                        self.check_page(dt, r)
                    finally:
                        dt.close()
            # Nothing left the machine (read from chromium's own net log).
            self.assertIsNotNone(browser.remote, "no readable net log")
            self.assertEqual(browser.remote, [])
            self.assertGreater(browser.local, 0, "the net log saw no "
                               "connection to the relay")
            _, errors, violations = node.snapshot()
            self.assertEqual(violations, [])
            self.assertEqual(errors, [])
            self.assertEqual(len(node.jobs), 1)
            self.assertEqual(node.jobs[0].outcome, "delivered")
            # Everything the browser asked for came from this relay.
            paths = [l["http_path"] for l in r.logs() if "http_path" in l]
            for want in ("/", "/relay/diagnostics", "/api/v1/models",
                         "/api/v1/relay/servers/next",
                         "/api/v1/relay/requests",
                         "/api/v1/relay/responses/retrieve"):
                self.assertIn(want, paths)

    def check_page(self, dt, relay):
        def state():
            return dt.evaluate(
                "document.readyState === 'complete' && JSON.stringify({"
                "status: document.getElementById('status').textContent,"
                "answer: document.getElementById('answer').textContent,"
                "model: document.getElementById('model').value,"
                "nodes: document.getElementById('nodes').textContent,"
                "badge: document.getElementById('badge').textContent,"
                "log: document.getElementById('log').textContent})")

        def finished():
            s = state()
            if not s:
                return None
            s = json.loads(s)
            return s if s["status"] == "done" or \
                s["status"].startswith("error") else None
        got = wait_for(finished, 120, interval=0.1,
                       what="the page to show an answer")
        shot = dt.call("Page.captureScreenshot", format="png")
        os.makedirs(ARTIFACTS, exist_ok=True)
        path = os.path.join(ARTIFACTS, "browser_chat.png")
        with open(path, "wb") as f:
            f.write(base64.b64decode(shot["data"]))
        print("screenshot: %s" % path)
        self.assertEqual(got["status"], "done", got["log"])
        self.assertEqual(got["answer"], "gpu-1 echoes: " + PROMPT)
        self.assertEqual(got["model"], MODEL)
        self.assertEqual(got["nodes"], "1")
        _, meta = relay.get_json("/api/v1/meta")
        self.assertEqual(got["badge"], meta["label"])
        # The script came with the asset version the relay rendered in.
        version = relay.find_log("relay.web_loaded")["asset_version"]
        src = dt.evaluate("document.scripts[document.scripts.length-1].src")
        self.assertTrue(src.endswith("/static/chat_test.js?v=" + version), src)


if __name__ == "__main__":
    main()
