#!/usr/bin/python3
"""API v1 section of `make bench` (bench/run.py imports run() from here).
Not a test: it measures and reports, it asserts nothing.

1. The API v1 cycle (requests -> servers/poll -> responses -> retrieve)
   with wrk and bench/lua/v1_cycle.lua: one node and one client per
   connection, keys and ciphertexts of real sizes.
2. Long polls on a synchronous server (DESIGN.md): 500 idle nodes
   long-polling (each a socket in one selector loop, in its own process)
   while wrk drives /livez. /livez requests/s and p99 without and with the
   pollers, for the default pool (RELAY_THREADS 64: 48 polls wait, the
   rest are answered at once with next_ping 2 and their connection
   closed) and for a pool sized for the pollers (RELAY_THREADS 768: all
   500 wait). Target: >= 80% of the throughput without pollers.

    bench/v1.py --relay build/release/relay/tokenplace-relay [--duration 5]
"""

import http.client
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import run as bench  # noqa: E402  (bench/run.py: wrk, RelayProc, fmt_row)

V1 = "/api/v1/relay"
CYCLE_LUA = os.path.join(HERE, "lua", "v1_cycle.lua")
KEY_HEAD = "LS0tLS1CRUdJTiBQVUJMSUMgS0VZLS0tLS0K"


def metric(port, name):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port,
                                timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return None


def parse_cycle(raw):
    out = {}
    for line in raw.splitlines():
        if line.startswith("CYCLE "):
            for kv in line.split()[1:]:
                k, _, v = kv.partition("=")
                out[k] = int(v)
    return out


# ---- 1. the API v1 cycle -------------------------------------------------------

def section_cycle(relay_bin, duration, report):
    env = {"TOKEN_PLACE_API_V1_RELAY_POLL_WAIT_SECONDS": "1",
           "TOKENPLACE_API_V1_MAX_REQUESTS": "100000",
           "TOKENPLACE_API_V1_MAX_TERMINAL_RECORDS": "10000000"}
    relay = bench.RelayProc(relay_bin, env)
    try:
        conns = 8
        res = bench.wrk("http://127.0.0.1:%d" % relay.port, connections=conns,
                        threads=conns, duration=duration, script=CYCLE_LUA)
        # wrk passes arguments after "--" only on the command line; the
        # nonce defaults to "0", fine for a fresh relay.
        cyc = parse_cycle(res["raw"])
        cps = cyc.get("cycles", 0) / float(duration)
        print(bench.fmt_row("API v1 cycle, 4 routes (8 conns)", res))
        print("  %.0f cycles/s, surprises %d, per connection min %d max %d,"
              " starved %d" % (cps, cyc.get("surprises", -1), cyc.get("min", 0),
                               cyc.get("max", 0), cyc.get("starved", -1)))
        report["cycle"] = {"wrk": res, "cycles_per_s": cps, "check": cyc}
    finally:
        relay.stop()


# ---- 2. idle long pollers -------------------------------------------------------

def poller_key(nonce, i):
    head = "%sPoller%sx%dx" % (KEY_HEAD, nonce, i)
    return head + "A" * (604 - len(head))


class Poller:
    def __init__(self, port, key):
        self.port = port
        body = json.dumps({"server_public_key": key}).encode()
        self.req = (("POST %s/servers/poll HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Content-Type: application/json\r\nContent-Length: %d\r\n"
                     "\r\n" % (V1, len(body))).encode() + body)
        self.sock = None
        self.buf = b""
        self.wake = 0.0


def run_pollers(port, n, nonce):
    """The poller process: registers n nodes, then keeps each one in a long
    poll, honouring next_ping_in_x_seconds and Connection: close, until
    SIGTERM. Prints one JSON line of counts at the end."""
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for i in range(n):
        conn.request("POST", V1 + "/servers/register", body=json.dumps(
            {"server_public_key": poller_key(nonce, i),
             "capabilities": {"supported_model_ids": ["bench-idle"]}}),
            headers={"Content-Type": "application/json"})
        conn.getresponse().read()
    conn.close()
    sel = selectors.DefaultSelector()
    ps = [Poller(port, poller_key(nonce, i)) for i in range(n)]
    counts = {"polls": 0, "empty": 0, "busy": 0, "reconnects": 0,
              "errors": 0}

    def send(p):
        if p.sock is None:
            p.sock = socket.create_connection(("127.0.0.1", port))
            p.sock.setblocking(False)
            sel.register(p.sock, selectors.EVENT_READ, p)
            counts["reconnects"] += 1
        p.sock.sendall(p.req)
        p.buf = b""
        p.wake = 0.0
        counts["polls"] += 1

    def drop(p):
        if p.sock is not None:
            sel.unregister(p.sock)
            p.sock.close()
            p.sock = None

    for p in ps:
        send(p)
    print("READY", flush=True)
    while not stop:
        now = time.monotonic()
        for p in ps:
            if p.wake and now >= p.wake:
                try:
                    send(p)
                except OSError:
                    counts["errors"] += 1
                    drop(p)
                    p.wake = now + 1
        for key, _ in sel.select(timeout=0.2):
            p = key.data
            try:
                chunk = p.sock.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:
                drop(p)
                p.wake = time.monotonic() + 1
                continue
            p.buf += chunk
            head, sep, body = p.buf.partition(b"\r\n\r\n")
            if not sep:
                continue
            clen = 0
            close = False
            for line in head.split(b"\r\n")[1:]:
                k, _, v = line.partition(b":")
                k = k.strip().lower()
                if k == b"content-length":
                    clen = int(v)
                elif k == b"connection" and b"close" in v.lower():
                    close = True
            if len(body) < clen:
                continue
            try:
                hint = json.loads(body[:clen]).get("next_ping_in_x_seconds", 1)
            except ValueError:
                hint = 1
                counts["errors"] += 1
            if close:
                drop(p)
            if hint:
                counts["busy"] += 1
                p.wake = time.monotonic() + hint
            else:
                counts["empty"] += 1
                try:
                    send(p)
                except OSError:
                    counts["errors"] += 1
                    drop(p)
                    p.wake = time.monotonic() + 1
    print(json.dumps(counts), flush=True)


def livez_with_pollers(relay_bin, duration, threads, n):
    env = {"RELAY_THREADS": str(threads)}
    relay = bench.RelayProc(relay_bin, env)
    try:
        url = "http://127.0.0.1:%d/livez" % relay.port
        base = bench.wrk(url, duration=duration)
        cap = threads * 3 // 4
        want = min(n, cap)
        proc = subprocess.Popen([sys.executable, os.path.abspath(__file__),
                                 "--pollers", str(relay.port), str(n)],
                                stdout=subprocess.PIPE, text=True)
        try:
            proc.stdout.readline()          # READY
            deadline = time.monotonic() + 60
            while (metric(relay.port, "tokenplace_relay_api_v1_long_polls")
                   or 0) < want and time.monotonic() < deadline:
                time.sleep(0.1)
            waiting = metric(relay.port, "tokenplace_relay_api_v1_long_polls")
            loaded = bench.wrk(url, duration=duration)
            refused = metric(relay.port,
                             "tokenplace_relay_api_v1_long_polls_refused_total")
            rss = relay.rss_kib()
        finally:
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=60)
        counts = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
    finally:
        relay.stop()
    ratio = loaded["rps"] / base["rps"] if base["rps"] else 0.0
    return {"threads": threads, "max_long_polls": cap, "pollers": n,
            "waiting": waiting, "refused_total": refused, "poller_counts": counts,
            "without": base, "with": loaded, "ratio": ratio,
            "rss_kib_with": rss}


def section_pollers(relay_bin, duration, report):
    out = {}
    for threads in (64, 768):
        r = livez_with_pollers(relay_bin, duration, threads, 500)
        label = "RELAY_THREADS=%d (cap %d)" % (threads, r["max_long_polls"])
        print(bench.fmt_row("/livez, no pollers, " + label, r["without"]))
        print(bench.fmt_row("/livez, 500 idle pollers", r["with"],
                            r["without"]))
        print("  %d polls waiting, %d answered over the cap so far, "
              "errors wrk %d/%d, RSS with pollers %.1f MiB, target >= 0.80: %s"
              % (r["waiting"] or 0, r["refused_total"] or 0,
                 r["without"]["errors"], r["with"]["errors"],
                 r["rss_kib_with"] / 1024.0,
                 "met" if r["ratio"] >= 0.8 else "NOT met"))
        out["threads_%d" % threads] = r
    report["pollers"] = out


def _strip_raw(obj):
    if isinstance(obj, dict):
        obj.pop("raw", None)
        for v in obj.values():
            _strip_raw(v)


def run(relay_bin, duration, report):
    section = {}
    section_cycle(relay_bin, duration, section)
    section_pollers(relay_bin, duration, section)
    _strip_raw(section)
    report["v1"] = section


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "--pollers":
        run_pollers(int(sys.argv[2]), int(sys.argv[3]),
                    "%d" % os.getpid())
        return
    bench.section_main(run, __doc__)


if __name__ == "__main__":
    main()
