#!/usr/bin/python3
"""Cross-replica long-poll wake-up section of `make bench` (bench/run.py
imports run() from here). Not a test: it measures and reports.

Two relays share one redis-server (started here on a free loopback port,
persistence off). A node long-polls relay A; a client enqueues a request
for it through relay B; the figure is the time from sending the enqueue
to the poll's answer on A (so it includes B's /requests round trip, the
enqueue script, the PUBLISH, A's subscriber thread waking the poll and
A's poll script). Each sample then completes the job (/responses on A,
/responses/retrieve on B), so the node never fills up. Target (issue 13):
p99 <= 50 ms on loopback.

    bench/v1_wakeup.py --relay build/release/relay/tokenplace-relay
"""

import http.client
import json
import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import run as bench  # noqa: E402  (bench/run.py: RelayProc, free_port)
from store import RedisProc  # noqa: E402  (the same redis-server set-up)

V1 = "/api/v1/relay"
KEY_HEAD = "LS0tLS1CRUdJTiBQVUJMSUMgS0VZLS0tLS0K"
SAMPLES = 400


def post(conn, path, obj):
    conn.request("POST", path, body=json.dumps(obj),
                 headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    return r.status, json.loads(r.read() or b"null")


def long_polls(port):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("GET", "/healthz")
        body = json.loads(c.getresponse().read())
        return body.get("apiV1", {}).get("longPolls", 0)
    finally:
        c.close()


def measure(port_a, port_b, samples):
    node = KEY_HEAD + "WakeNode" + "x" * 560
    client = KEY_HEAD + "WakeClient" + "y" * 558
    na = http.client.HTTPConnection("127.0.0.1", port_a, timeout=60)
    poller = http.client.HTTPConnection("127.0.0.1", port_a, timeout=60)
    cb = http.client.HTTPConnection("127.0.0.1", port_b, timeout=60)
    st, _ = post(na, V1 + "/servers/register", {
        "server_public_key": node,
        "capabilities": {"supported_model_ids": ["qwen3-8b-instruct"],
                         "max_concurrency": 4}})
    if st != 200:
        raise RuntimeError("register: %s" % st)
    lat = []
    for i in range(samples):
        rid = "wake-%d" % i
        got = {}

        def poll():
            got["reply"] = post(poller, V1 + "/servers/poll",
                                {"server_public_key": node})
            got["t1"] = time.monotonic()

        t = threading.Thread(target=poll)
        t.start()
        deadline = time.monotonic() + 10
        while long_polls(port_a) < 1 and time.monotonic() < deadline:
            time.sleep(0.001)
        t0 = time.monotonic()
        st, _ = post(cb, V1 + "/requests", {
            "server_public_key": node, "client_public_key": client,
            "ciphertext": "Q" * 1024, "cipherkey": "K" * 344,
            "iv": "I" * 22 + "==", "request_id": rid,
            "protocol": "tokenplace_api_v1_relay_e2ee", "version": 1})
        t.join(60)
        if st != 200 or got.get("reply", (0,))[0] != 200:
            raise RuntimeError("sample %d: enqueue %s, poll %r" % (
                i, st, got.get("reply")))
        lat.append((got["t1"] - t0) * 1000.0)
        post(na, V1 + "/responses", {
            "client_public_key": client, "request_id": rid,
            "chat_history": "A" * 1024, "cipherkey": "K" * 344,
            "iv": "I" * 22 + "==", "protocol": "tokenplace_api_v1_relay_e2ee",
            "version": 1})
        post(cb, V1 + "/responses/retrieve",
             {"client_public_key": client, "request_id": rid})
    for c in (na, poller, cb):
        c.close()
    lat.sort()
    return {"samples": len(lat), "p50_ms": lat[len(lat) // 2],
            "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))],
            "max_ms": lat[-1]}


def run(relay_bin, duration, report):
    redis = RedisProc()
    env = {"RELAY_STATE_URL": redis.url, "RELAY_STATE_PREFIX": "benchwake:",
           "TOKEN_PLACE_API_V1_RELAY_POLL_WAIT_SECONDS": "20"}
    a = b = None
    try:
        a = bench.RelayProc(relay_bin, env)
        b = bench.RelayProc(relay_bin, env)
        res = measure(a.port, b.port, SAMPLES)
        print("cross-replica wake-up (node polls A, client enqueues on B): "
              "%d samples  p50 %.2f ms  p99 %.2f ms  max %.2f ms  "
              "(target p99 <= 50 ms)" % (res["samples"], res["p50_ms"],
                                         res["p99_ms"], res["max_ms"]))
        report["v1_wakeup"] = res
    finally:
        for r in (a, b):
            if r is not None:
                r.stop()
        redis.stop()


def main():
    bench.section_main(run, __doc__)


if __name__ == "__main__":
    main()
