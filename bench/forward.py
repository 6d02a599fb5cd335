#!/usr/bin/python3
"""Forwarding benchmark (not a test): the relay in front of a fast upstream.

nginx (a fixed JSON answer on an ephemeral loopback port) is the upstream.
In one run, wrk drives 32 connections directly at nginx and through the
relay (GET and a small chat-completion-like POST), alternating over
ROUNDS rounds so that a busy machine disturbs both sides alike; the
median of the rounds is reported: requests/s of each, the forwarded/direct
ratio, the p50 the relay adds, and how many upstream TCP connections the
relay opened for all those requests (kept-alive connections are reused).

Called by bench/run.py as run(relay_bin, duration, report), or alone:

    bench/forward.py --relay build/release/relay/tokenplace-relay [--duration 5]
"""

import argparse
import os
import re
import sys
import tempfile
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import Nginx, RelayProc, fmt_row, wrk  # noqa: E402

CONNECTIONS = 32
ROUNDS = 3

POST_LUA = """
wrk.method = "POST"
wrk.body = '{"model":"m","messages":[{"role":"user","content":"hello there"}],"stream":false}'
wrk.headers["Content-Type"] = "application/json"
"""


def metric(port, name):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port,
                                timeout=10) as r:
        text = r.read().decode()
    m = re.search(r"^%s (\S+)$" % re.escape(name), text, re.M)
    return float(m.group(1)) if m else float("nan")


def median_run(runs):
    """The run with the median requests/s (its p50/p99 come with it)."""
    runs = sorted(runs, key=lambda r: r["rps"])
    out = dict(runs[len(runs) // 2])
    out["rounds_rps"] = [r["rps"] for r in runs]
    return out


def run(relay_bin, duration, report):
    nginx = Nginx()
    relay = RelayProc(relay_bin, env={
        "TOKENPLACE_RELAY_UPSTREAM_URL": "http://127.0.0.1:%d" % nginx.port,
        "RELAY_THREADS": "64"})
    lua = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    try:
        lua.write(POST_LUA)
        lua.close()
        direct_url = "http://127.0.0.1:%d/v1/models" % nginx.port
        fwd_url = "http://127.0.0.1:%d/v1/models" % relay.port
        post_direct_url = "http://127.0.0.1:%d/v1/chat/completions" % nginx.port
        post_fwd_url = "http://127.0.0.1:%d/v1/chat/completions" % relay.port
        # warm both paths (connections, pools), not measured
        wrk(fwd_url, connections=CONNECTIONS, duration=1)
        opened0 = metric(relay.port,
                         "tokenplace_relay_upstream_connections_opened_total")
        runs = {"direct": [], "fwd": [], "post_direct": [], "post_fwd": []}
        for _ in range(ROUNDS):
            runs["direct"].append(wrk(direct_url, connections=CONNECTIONS,
                                      duration=duration))
            runs["fwd"].append(wrk(fwd_url, connections=CONNECTIONS,
                                   duration=duration))
            runs["post_direct"].append(wrk(post_direct_url,
                                           connections=CONNECTIONS,
                                           duration=duration,
                                           script=lua.name))
            runs["post_fwd"].append(wrk(post_fwd_url, connections=CONNECTIONS,
                                        duration=duration, script=lua.name))
        # one connection: the relay's own latency, without CPU contention
        one_direct = wrk(direct_url, connections=1, threads=1,
                         duration=duration)
        one_fwd = wrk(fwd_url, connections=1, threads=1, duration=duration)
        direct, fwd = median_run(runs["direct"]), median_run(runs["fwd"])
        post_direct = median_run(runs["post_direct"])
        post_fwd = median_run(runs["post_fwd"])
        opened = metric(relay.port,
                        "tokenplace_relay_upstream_connections_opened_total")
        forwarded = sum(r["requests"] for r in runs["fwd"] + runs["post_fwd"])
        new_conns = opened - opened0
        print(fmt_row("nginx direct GET (baseline)", direct))
        print(fmt_row("relay -> nginx GET", fwd, direct))
        print(fmt_row("nginx direct POST (baseline)", post_direct))
        print(fmt_row("relay -> nginx POST", post_fwd, post_direct))
        print(fmt_row("nginx direct GET, 1 connection", one_direct))
        print(fmt_row("relay -> nginx GET, 1 connection", one_fwd, one_direct))
        print("added p50 at %d connections: GET %.3f ms, POST %.3f ms; at 1 "
              "connection: %.3f ms" % (
                  CONNECTIONS, fwd["p50_ms"] - direct["p50_ms"],
                  post_fwd["p50_ms"] - post_direct["p50_ms"],
                  one_fwd["p50_ms"] - one_direct["p50_ms"]))
        print("%d forwarded requests opened %d upstream connections" % (
            forwarded + one_fwd["requests"], new_conns))
        errors = sum(r["errors"] + r.get("non2xx", 0)
                     for rs in list(runs.values()) + [[one_direct, one_fwd]]
                     for r in rs)
        if errors:
            print("warning: %d socket errors or non-2xx answers" % errors)
        report["forward"] = {
            "connections": CONNECTIONS,
            "direct": direct, "forwarded": fwd,
            "post_direct": post_direct, "post_forwarded": post_fwd,
            "ratio": fwd["rps"] / direct["rps"] if direct["rps"] else 0,
            "post_ratio": (post_fwd["rps"] / post_direct["rps"]
                           if post_direct["rps"] else 0),
            "added_p50_ms": fwd["p50_ms"] - direct["p50_ms"],
            "one_connection": {"direct": one_direct, "forwarded": one_fwd,
                               "added_p50_ms": one_fwd["p50_ms"] -
                               one_direct["p50_ms"]},
            "post_added_p50_ms": post_fwd["p50_ms"] - post_direct["p50_ms"],
            "forwarded_requests": forwarded + one_fwd["requests"],
            "upstream_connections_opened": new_conns,
            "errors": errors,
        }
    finally:
        os.unlink(lua.name)
        relay.stop()
        nginx.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--relay", required=True)
    ap.add_argument("--duration", type=int, default=5)
    args = ap.parse_args()
    report = {}
    run(args.relay, args.duration, report)


if __name__ == "__main__":
    main()
