#!/usr/bin/python3
"""Model list section of `make bench` (bench/run.py imports run() from
here; not a test: it measures and reports, it asserts nothing).

Issue 19 part 6: with many API v1 nodes, what one anonymous
GET /api/v1/models costs. Per store (memory, then a redis-server on
loopback TCP as in a cluster), on a fresh relay:

  1. register NODES nodes (8 KiB public keys, MODELS_PER_NODE model ids
     each, out of a pool of MODEL_POOL ids, so the list has MODEL_POOL
     entries), leases long enough that no node lapses during the run;
  2. read the relay's RSS, send GETS GETs of /api/v1/models over CONNS
     keep-alive connections (one thread each), timing every answer, and
     read the RSS again.

Reported per store: requests/s, p50/p99/max of the answer times, bytes
per answer, RSS before and after the GETs, and the relay's store reads
for the list (tokenplace_relay_models_list_reads_total, when it has it).
The baseline of the same run is nginx serving the same body as a static
file to the same client (ratio relay/nginx for p99).

With TP_BENCH_BASELINE_RELAY (or --baseline) naming a build of an older
relay (main at 0aad4ea, built as docs/web.md says), every measurement is
made for that binary too, in the same run, and the ratios before/after
are printed.

    bench/models.py --relay build/release/relay/tokenplace-relay \\
        [--baseline OLD_BINARY] [--gets 10000] [--stores memory,redis]
"""

import argparse
import http.client
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import run as bench  # noqa: E402  (bench/run.py: RelayProc, Nginx)
from store import RedisProc  # noqa: E402

V1 = "/api/v1/relay"
NODES = 1000
MODELS_PER_NODE = 64
MODEL_POOL = 128
KEY_BYTES = 8192		# RELAY_MAX_KEY_BYTES, the longest accepted
GETS = 10000
CONNS = 4
KEY_HEAD = "LS0tLS1CRUdJTiBQVUJMSUMgS0VZLS0tLS0K"

NGINX_FILE_CONF = bench.nginx_conf(1, """    server {{
        listen 127.0.0.1:{port};
        location / {{
            root {www};
            default_type application/json;
        }}
    }}""")


def node_key(i):
    head = "%sModelNode%05d" % (KEY_HEAD, i)
    return head + "k" * (KEY_BYTES - len(head))


def node_models(i):
    return ["bench-model-%03d" % ((i + j) % MODEL_POOL)
            for j in range(MODELS_PER_NODE)]


def register_all(port, nodes):
    """Registers nodes 0..nodes-1 over 4 connections."""
    errors = []

    def part(first):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            for i in range(first, nodes, 4):
                body = json.dumps({
                    "server_public_key": node_key(i),
                    "capabilities": {"supported_model_ids": node_models(i),
                                     "max_concurrency": 4}})
                c.request("POST", V1 + "/servers/register", body=body,
                          headers={"Content-Type": "application/json"})
                r = c.getresponse()
                r.read()
                if r.status != 200:
                    errors.append(r.status)
        finally:
            c.close()

    th = [threading.Thread(target=part, args=(k,)) for k in range(4)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    if errors:
        raise RuntimeError("register answered %s" % sorted(set(errors)))


def get_many(port, path, gets, conns):
    """gets GETs of path over conns keep-alive connections; returns the
    answer times (ms), the body of the last answer, the wall time and the
    count of answers that were not 200."""
    lat = [[] for _ in range(conns)]
    bodies = [b""] * conns
    errors = []

    def worker(k):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        try:
            for _ in range(gets // conns + (1 if k < gets % conns else 0)):
                t0 = time.perf_counter()
                c.request("GET", path)
                r = c.getresponse()
                body = r.read()
                lat[k].append((time.perf_counter() - t0) * 1000.0)
                if r.status != 200:
                    errors.append(r.status)
                bodies[k] = body
        finally:
            c.close()

    start = time.monotonic()
    th = [threading.Thread(target=worker, args=(k,)) for k in range(conns)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    wall = time.monotonic() - start
    # A refused answer is a result (the old relay on Redis answers some
    # GETs 503 when its script passes the command timeout): counted, and
    # its time is in the percentiles like any other answer's.
    return [x for part in lat for x in part], bodies[0], wall, len(errors)


def summary(lat, wall, body, errors):
    s = sorted(lat)
    return {"gets": len(s), "rps": len(s) / wall if wall > 0 else 0.0,
            "errors": errors,
            "p50_ms": statistics.median(s),
            "p99_ms": s[min(len(s) - 1, int(len(s) * 0.99))],
            "max_ms": s[-1], "bytes": len(body)}


def metric(port, name):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port,
                                timeout=30) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return None


def measure(relay_bin, store, gets):
    """One relay on `store`, loaded with the nodes, then the GETs."""
    redis = RedisProc() if store == "redis" else None
    env = {"TOKEN_PLACE_API_V1_RELAY_SERVER_LEASE_SECONDS": "3600",
           "TOKENPLACE_API_V1_MAX_NODES": str(max(NODES, 1024)),
           "RELAY_MAX_KEY_BYTES": str(KEY_BYTES)}
    if redis is not None:
        env["RELAY_STATE_URL"] = redis.url
    relay = None
    try:
        relay = bench.RelayProc(relay_bin, env)
        t0 = time.monotonic()
        register_all(relay.port, NODES)
        reg_s = time.monotonic() - t0
        # one answer first: what a fresh relay allocates once is not growth
        _, body, _, _ = get_many(relay.port, "/api/v1/models", 1, 1)
        ids = [m["id"] for m in json.loads(body)["data"]]
        rss0 = relay.rss_kib()
        lat, body, wall, bad = get_many(relay.port, "/api/v1/models", gets,
                                        CONNS)
        rss1 = relay.rss_kib()
        out = summary(lat, wall, body, bad)
        out.update({"models": len(ids), "rss_before_kib": rss0,
                    "rss_after_kib": rss1, "register_s": reg_s,
                    "store_reads": metric(
                        relay.port,
                        "tokenplace_relay_models_list_reads_total")})
        return out, body
    finally:
        if relay is not None:
            relay.stop()
        if redis is not None:
            redis.stop()


def nginx_baseline(body, gets):
    www = tempfile.mkdtemp(prefix="tp-bench-www-")
    os.chmod(www, 0o755)	# nginx's workers may run as another user
    try:
        os.makedirs(os.path.join(www, "api", "v1"))
        with open(os.path.join(www, "index.html"), "w") as f:
            f.write("{}")		# what run.py's readiness check reads
        with open(os.path.join(www, "api", "v1", "models"), "wb") as f:
            f.write(body)
        nginx = bench.Nginx(NGINX_FILE_CONF, www=www)
        try:
            lat, got, wall, bad = get_many(nginx.port, "/api/v1/models",
                                           gets, CONNS)
            return summary(lat, wall, got, bad)
        finally:
            nginx.stop()
    finally:
        shutil.rmtree(www, ignore_errors=True)


def row(name, r):
    reads = r.get("store_reads")
    return ("%-30s %8.0f GET/s  p50 %8.3f ms  p99 %8.3f ms  max %8.2f ms  "
            "%7d B%s%s%s" % (
                name, r["rps"], r["p50_ms"], r["p99_ms"], r["max_ms"],
                r["bytes"],
                ("  NOT 200: %d" % r["errors"] if r.get("errors") else ""),
                ("  RSS %.1f -> %.1f MiB" % (r["rss_before_kib"] / 1024.0,
                                            r["rss_after_kib"] / 1024.0)
                 if "rss_before_kib" in r else ""),
                ("  store reads %d" % reads if reads is not None else "")))


def run(relay_bin, duration, report, baseline=None, gets=GETS,
        stores=("memory", "redis")):
    del duration		# fixed work (GETS), not a fixed time
    baseline = baseline or os.environ.get("TP_BENCH_BASELINE_RELAY") or None
    print("%d nodes x %d models (%d distinct), %d-byte keys; %d GETs of "
          "/api/v1/models over %d connections" % (
              NODES, MODELS_PER_NODE, MODEL_POOL, KEY_BYTES, gets, CONNS))
    out = {}
    for store in stores:
        if store == "redis" and not shutil.which("redis-server"):
            print("redis-server missing: redis skipped")
            continue
        after, body = measure(relay_bin, store, gets)
        base = nginx_baseline(body, gets)
        res = {"after": after, "nginx": base}
        print(row("nginx, same body (baseline)", base))
        print(row("relay %s" % store, after))
        print("  p99 relay/nginx %.2f" % (after["p99_ms"] / base["p99_ms"]))
        if baseline:
            before, _ = measure(baseline, store, gets)
            res["before"] = before
            grow_b = before["rss_after_kib"] - before["rss_before_kib"]
            grow_a = after["rss_after_kib"] - after["rss_before_kib"]
            res["p99_ratio"] = before["p99_ms"] / after["p99_ms"]
            res["rps_ratio"] = after["rps"] / before["rps"]
            print(row("relay %s BEFORE" % store, before))
            print("  before/after: p99 %.1fx lower, %.1fx the GETs/s; RSS "
                  "growth over the GETs %+.1f MiB before, %+.1f MiB after" % (
                      res["p99_ratio"], res["rps_ratio"], grow_b / 1024.0,
                      grow_a / 1024.0))
        out[store] = res
    report["models"] = out


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--relay", required=True)
    ap.add_argument("--baseline", default=None)
    ap.add_argument("--gets", type=int, default=GETS)
    ap.add_argument("--stores", default="memory,redis")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    report = {}
    run(args.relay, 0, report, baseline=args.baseline, gets=args.gets,
        stores=tuple(filter(None, args.stores.split(","))))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
