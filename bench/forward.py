#!/usr/bin/python3
"""Forwarding benchmark (not a test): the relay in front of a fast upstream.

nginx (a fixed JSON answer on an ephemeral loopback port) is the upstream.
In one run, wrk drives 32 connections directly at nginx, through the
relay, and through a second nginx configured as a reverse proxy (the
reference: what a mature proxy achieves on the same machine), for GET and
a small chat-completion-like POST, alternating over ROUNDS rounds so that
a busy machine disturbs every party alike; the median of the rounds is
reported: requests/s of each, the forwarded/direct and relay/nginx-proxy
ratios, the p50 each proxy adds, how many upstream TCP connections the
relay opened for all those requests (kept-alive connections are reused),
and the CPU time per request of the relay, the nginx proxy and the
upstream (utime + stime from /proc, a process and its children).

Called by bench/run.py as run(relay_bin, duration, report), or alone:

    bench/forward.py --relay build/release/relay/tokenplace-relay [--duration 5]
"""

import os
import re
import sys
import tempfile
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import (Nginx, RelayProc, fmt_row, nginx_conf,  # noqa: E402
                 section_main, wrk)

CONNECTIONS = 32
ROUNDS = 3
# Seconds per wrk run, at most: 3 parties x 2 methods x ROUNDS runs must
# keep `make bench` short; shortening runs keeps every round.
ROUND_SECONDS = 3
ONE_CONNECTION_SECONDS = 2

POST_LUA = """
wrk.method = "POST"
wrk.body = '{"model":"m","messages":[{"role":"user","content":"hello there"}],"stream":false}'
wrk.headers["Content-Type"] = "application/json"
"""

# nginx as a reverse proxy in front of the same upstream, set up as a
# production proxy would be: kept-alive upstream connections, both cores
# (as the relay's threads may use both), no access log.
PROXY_CONF = nginx_conf(2, """    upstream up {{
        server 127.0.0.1:{upstream};
        keepalive 64;
        keepalive_requests 1000000;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}""")

CLK_TCK = os.sysconf("SC_CLK_TCK")


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


def proc_ticks():
    """{pid: (ppid, utime + stime in clock ticks)} of every process."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                text = f.read()
        except OSError:
            continue
        # the command name may hold spaces and parentheses: split after it
        fields = text[text.rindex(")") + 2:].split()
        out[int(name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    return out


def cpu_ticks(ticks, pid):
    """CPU ticks of pid (all its threads) and of its children (nginx
    workers)."""
    total = ticks.get(pid, (0, 0))[1]
    return total + sum(t for ppid, t in ticks.values() if ppid == pid)


def ratio(a, b):
    return a / b if b else 0.0


def run(relay_bin, duration, report):
    round_s = max(1, min(duration, ROUND_SECONDS))
    one_s = max(1, min(duration, ONE_CONNECTION_SECONDS))
    nginx = Nginx()
    relay = proxy = None
    lua = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    try:
        relay = RelayProc(relay_bin, env={
            "TOKENPLACE_RELAY_UPSTREAM_URL": "http://127.0.0.1:%d" % nginx.port,
            "RELAY_THREADS": "64"})
        proxy = Nginx(PROXY_CONF, upstream=nginx.port)
        lua.write(POST_LUA)
        lua.close()
        ports = {"direct": nginx.port, "fwd": relay.port, "proxy": proxy.port}
        pids = {"relay": relay.proc.pid, "proxy": proxy.proc.pid,
                "upstream": nginx.proc.pid}
        url = {}
        for party, port in ports.items():
            url[party] = "http://127.0.0.1:%d/v1/models" % port
            url["post_" + party] = ("http://127.0.0.1:%d/v1/chat/completions"
                                    % port)
        # warm both proxies (connections, pools), not measured
        wrk(url["fwd"], connections=CONNECTIONS, duration=1)
        wrk(url["proxy"], connections=CONNECTIONS, duration=1)
        opened0 = metric(relay.port,
                         "tokenplace_relay_upstream_connections_opened_total")
        runs = {k: [] for k in url}
        # CPU seconds of each process group over each kind of run
        cpu = {k: dict.fromkeys(pids, 0.0) for k in url}

        def measure(key, **kw):
            t0 = proc_ticks()
            r = wrk(url[key], connections=CONNECTIONS, **kw)
            t1 = proc_ticks()
            for who, pid in pids.items():
                cpu[key][who] += (cpu_ticks(t1, pid) -
                                  cpu_ticks(t0, pid)) / CLK_TCK
            return r

        for _ in range(ROUNDS):
            for key in ("direct", "fwd", "proxy"):
                runs[key].append(measure(key, duration=round_s))
            for key in ("post_direct", "post_fwd", "post_proxy"):
                runs[key].append(measure(key, duration=round_s,
                                         script=lua.name))
        # one connection: each proxy's own latency, without CPU contention
        one_direct = wrk(url["direct"], connections=1, threads=1,
                         duration=one_s)
        one_fwd = wrk(url["fwd"], connections=1, threads=1, duration=one_s)
        one_proxy = wrk(url["proxy"], connections=1, threads=1,
                        duration=one_s)
        direct, fwd = median_run(runs["direct"]), median_run(runs["fwd"])
        prx = median_run(runs["proxy"])
        post_direct = median_run(runs["post_direct"])
        post_fwd = median_run(runs["post_fwd"])
        post_prx = median_run(runs["post_proxy"])
        opened = metric(relay.port,
                        "tokenplace_relay_upstream_connections_opened_total")
        forwarded = sum(r["requests"] for r in runs["fwd"] + runs["post_fwd"])
        new_conns = opened - opened0

        def us_per_request(keys, who):
            n = sum(r["requests"] for k in keys for r in runs[k])
            return ratio(sum(cpu[k][who] for k in keys) * 1e6, n)

        def cpu_figures(prefixes):
            def keys(party):
                return [p + party for p in prefixes]
            return {
                "relay": us_per_request(keys("fwd"), "relay"),
                "nginx_proxy": us_per_request(keys("proxy"), "proxy"),
                "upstream_direct": us_per_request(keys("direct"), "upstream"),
                "upstream_via_relay": us_per_request(keys("fwd"), "upstream"),
                "upstream_via_nginx_proxy": us_per_request(keys("proxy"),
                                                           "upstream"),
            }
        cpu_us = cpu_figures(["", "post_"])
        cpu_us["get"] = cpu_figures([""])
        cpu_us["post"] = cpu_figures(["post_"])

        print(fmt_row("nginx direct GET (baseline)", direct))
        print(fmt_row("relay -> nginx GET", fwd, direct))
        print(fmt_row("nginx-proxy -> nginx GET", prx, direct))
        print(fmt_row("nginx direct POST (baseline)", post_direct))
        print(fmt_row("relay -> nginx POST", post_fwd, post_direct))
        print(fmt_row("nginx-proxy -> nginx POST", post_prx, post_direct))
        print(fmt_row("nginx direct GET, 1 connection", one_direct))
        print(fmt_row("relay -> nginx GET, 1 connection", one_fwd, one_direct))
        print(fmt_row("nginx-proxy -> nginx GET, 1 conn", one_proxy,
                      one_direct))
        print("added p50 at %d connections: GET %.3f ms, POST %.3f ms; at 1 "
              "connection: %.3f ms" % (
                  CONNECTIONS, fwd["p50_ms"] - direct["p50_ms"],
                  post_fwd["p50_ms"] - post_direct["p50_ms"],
                  one_fwd["p50_ms"] - one_direct["p50_ms"]))
        print("nginx-proxy added p50 at %d connections: GET %.3f ms, POST "
              "%.3f ms; at 1 connection: %.3f ms" % (
                  CONNECTIONS, prx["p50_ms"] - direct["p50_ms"],
                  post_prx["p50_ms"] - post_direct["p50_ms"],
                  one_proxy["p50_ms"] - one_direct["p50_ms"]))
        print("relay / nginx-proxy: GET %.2f, POST %.2f" % (
            ratio(fwd["rps"], prx["rps"]),
            ratio(post_fwd["rps"], post_prx["rps"])))
        print("CPU per request: relay %.1f us, nginx proxy %.1f us (upstream: "
              "%.1f us direct, %.1f us via relay, %.1f us via nginx proxy)" % (
                  cpu_us["relay"], cpu_us["nginx_proxy"],
                  cpu_us["upstream_direct"], cpu_us["upstream_via_relay"],
                  cpu_us["upstream_via_nginx_proxy"]))
        print("%d forwarded requests opened %d upstream connections" % (
            forwarded + one_fwd["requests"], new_conns))
        errors = sum(r["errors"] + r.get("non2xx", 0)
                     for rs in list(runs.values()) +
                     [[one_direct, one_fwd, one_proxy]]
                     for r in rs)
        if errors:
            print("warning: %d socket errors or non-2xx answers" % errors)
        report["forward"] = {
            "connections": CONNECTIONS,
            "rounds": ROUNDS, "round_seconds": round_s,
            "direct": direct, "forwarded": fwd,
            "post_direct": post_direct, "post_forwarded": post_fwd,
            "ratio": ratio(fwd["rps"], direct["rps"]),
            "post_ratio": ratio(post_fwd["rps"], post_direct["rps"]),
            "added_p50_ms": fwd["p50_ms"] - direct["p50_ms"],
            "one_connection": {"direct": one_direct, "forwarded": one_fwd,
                               "added_p50_ms": one_fwd["p50_ms"] -
                               one_direct["p50_ms"]},
            "post_added_p50_ms": post_fwd["p50_ms"] - post_direct["p50_ms"],
            "forwarded_requests": forwarded + one_fwd["requests"],
            "upstream_connections_opened": new_conns,
            "errors": errors,
            "nginx_proxy": prx, "post_nginx_proxy": post_prx,
            "nginx_proxy_ratio": ratio(prx["rps"], direct["rps"]),
            "post_nginx_proxy_ratio": ratio(post_prx["rps"],
                                            post_direct["rps"]),
            "nginx_proxy_added_p50_ms": prx["p50_ms"] - direct["p50_ms"],
            "post_nginx_proxy_added_p50_ms": (post_prx["p50_ms"] -
                                              post_direct["p50_ms"]),
            "one_connection_nginx_proxy": one_proxy,
            "one_connection_nginx_proxy_added_p50_ms": (one_proxy["p50_ms"] -
                                                        one_direct["p50_ms"]),
            "ratio_vs_nginx_proxy": {
                "get": ratio(fwd["rps"], prx["rps"]),
                "post": ratio(post_fwd["rps"], post_prx["rps"])},
            "cpu_us_per_request": cpu_us,
        }
    finally:
        os.unlink(lua.name)
        if proxy:
            proxy.stop()
        if relay:
            relay.stop()
        nginx.stop()


if __name__ == "__main__":
    section_main(run, __doc__)
