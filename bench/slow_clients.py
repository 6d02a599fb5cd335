"""Slow clients against the relay (issue 12; a measurement, not a test).

Runnable by hand or from `bench/run.py --only slow_clients`:

    python3 bench/slow_clients.py --relay build/release/relay/tokenplace-relay

Three parts, against one relay with its default limits (RELAY_THREADS 64,
RELAY_MAX_PENDING_HEADS_PER_CLIENT 8, RELAY_MAX_CONNECTIONS_PER_CLIENT 0,
RELAY_HEAD_TIMEOUT_MS 10000) unless --env overrides them, everything on
loopback:

1. 400 slow-head connections from 127.0.0.2: each sends half a request head
   and then one byte a second, and reconnects 0.2 s after the relay cuts
   or refuses it, for as long as the part runs. Meanwhile, from 127.0.0.1,
   /livez requests and full legacy cycles (/sink register, /faucet, /sink,
   /source, /retrieve), each on a fresh connection, one after the other,
   for --measure seconds (default 15, longer than the head deadline, so
   held attackers are cut and reconnect during the measurement).
   Reported: p50/p99/max of the /livez requests and of whole cycles; the
   bound is p99 < 100 ms for both.
2. 2,000 slow-head connections from 50 addresses (127.0.0.10-59, 40 each),
   held for --hold seconds (default 15, longer than the head deadline):
   the relay's peak RSS (VmRSS) against its idle RSS, and that it is still
   alive. Then every attacker closes; reported: seconds until /livez from
   127.0.0.1 answers 200 again, bound by the head deadline.
3. The worker pool's memory cost: idle RSS of relays started with
   RELAY_THREADS 64 and 512, and the difference per thread.

Results are printed as a table and stored in report["slow_clients"].
"""

import http.client
import json
import os
import selectors
import socket
import statistics
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run as bench  # noqa: E402

P99_BOUND_MS = 100.0
HEAD = b"GET /livez HTTP/1.1\r\nHost: slow.test\r\nX-Slow: "


class Attackers:
    """`count` slow-head connections spread over `sources`, kept up (and
    re-opened when cut) by one selector thread until stop()."""

    def __init__(self, port, sources, count, trickle_s=1.0, reconnect_s=0.2):
        self.port = port
        self.sources = sources
        self.count = count
        self.trickle_s = trickle_s
        self.reconnect_s = reconnect_s
        self.sel = selectors.DefaultSelector()
        self.stopping = False
        self.cut = 0
        self.opened = 0
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def _open(self, i):
        src = self.sources[i % len(self.sources)]
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.bind((src, 0))
            s.connect_ex(("127.0.0.1", self.port))
        except OSError:
            s.close()
            return None
        self.sel.register(s, selectors.EVENT_WRITE | selectors.EVENT_READ,
                          {"i": i, "sent": 0, "next": 0.0})
        self.opened += 1
        return s

    def _drop(self, s, pending):
        i = self.sel.get_key(s).data["i"]
        self.sel.unregister(s)
        s.close()
        self.cut += 1
        pending.append((time.monotonic() + self.reconnect_s, i))

    def _loop(self):
        pending = [(0.0, i) for i in range(self.count)]
        while not self.stopping:
            now = time.monotonic()
            due = [p for p in pending if p[0] <= now]
            pending = [p for p in pending if p[0] > now]
            for _, i in due:
                if self._open(i) is None:
                    pending.append((now + self.reconnect_s, i))
            for key, ev in self.sel.select(timeout=0.05):
                s, d = key.fileobj, key.data
                if ev & selectors.EVENT_READ:
                    try:
                        data = s.recv(4096)
                    except OSError:
                        data = b""
                    if not data:
                        self._drop(s, pending)
                        continue
                if ev & selectors.EVENT_WRITE and d["sent"] == 0:
                    try:
                        s.send(HEAD)
                        d["sent"] = 1
                        d["next"] = time.monotonic() + self.trickle_s
                        self.sel.modify(s, selectors.EVENT_READ, d)
                    except OSError:
                        self._drop(s, pending)
            now = time.monotonic()
            for key in list(self.sel.get_map().values()):
                d = key.data
                if d["sent"] and d["next"] <= now:
                    try:
                        key.fileobj.send(b"x")
                        d["next"] = now + self.trickle_s
                    except OSError:
                        self._drop(key.fileobj, pending)
        for key in list(self.sel.get_map().values()):
            key.fileobj.close()
        self.sel.close()

    def stop(self):
        self.stopping = True
        self.thread.join()


def timed_livez(port, timeout=5.0):
    t = time.monotonic()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout,
                                   source_address=("127.0.0.1", 0))
    try:
        c.request("GET", "/livez")
        r = c.getresponse()
        r.read()
        ok = r.status == 200
    finally:
        c.close()
    return (time.monotonic() - t) * 1000.0, ok


def legacy_cycle(port, n, timeout=5.0):
    """One full legacy cycle on a fresh connection; (ms, ok)."""
    server = "bench-slow-server-%d" % n
    client = "bench-slow-client-%d" % n
    steps = [
        ("/sink", {"server_public_key": server}, "next_ping_in_x_seconds"),
        ("/faucet", {"server_public_key": server, "chat_history": "Q%d" % n,
                     "cipherkey": "k", "iv": "i",
                     "client_public_key": client}, "Request received"),
        ("/sink", {"server_public_key": server}, "Q%d" % n),
        ("/source", {"client_public_key": client, "chat_history": "A%d" % n,
                     "cipherkey": "k", "iv": "i"}, "Response received"),
        ("/retrieve", {"client_public_key": client}, "A%d" % n),
    ]
    t = time.monotonic()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout,
                                   source_address=("127.0.0.1", 0))
    ok = True
    try:
        for path, body, expect in steps:
            c.request("POST", path, body=json.dumps(body),
                      headers={"Content-Type": "application/json"})
            r = c.getresponse()
            data = r.read().decode()
            ok = ok and r.status == 200 and expect in data
    except OSError:
        ok = False
    finally:
        c.close()
    return (time.monotonic() - t) * 1000.0, ok


def pct(values, q):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))]


def summary(values):
    return {"n": len(values), "p50_ms": round(pct(values, 0.5), 2),
            "p99_ms": round(pct(values, 0.99), 2),
            "max_ms": round(max(values), 2)}


def part_one_address(relay_bin, env, measure_s):
    relay = bench.RelayProc(relay_bin, env=env)
    try:
        atk = Attackers(relay.port, ["127.0.0.2"], 400).start()
        # let the attackers take what they can before measuring
        deadline = time.monotonic() + 3
        while atk.opened < 400 and time.monotonic() < deadline:
            time.sleep(0.05)
        livez, cycles, failures = [], [], 0
        end = time.monotonic() + measure_s
        i = 0
        while time.monotonic() < end:
            ms, ok = timed_livez(relay.port)
            livez.append(ms)
            failures += not ok
            if i % 4 == 0:
                ms, ok = legacy_cycle(relay.port, i)
                cycles.append(ms)
                failures += not ok
            i += 1
            time.sleep(0.01)
        atk.stop()
        alive = relay.proc.poll() is None
        return {"livez": summary(livez), "cycle": summary(cycles),
                "failures": failures, "attacker_cuts": atk.cut,
                "alive": alive,
                "bound_met": alive and failures == 0 and
                summary(livez)["p99_ms"] < P99_BOUND_MS and
                summary(cycles)["p99_ms"] < P99_BOUND_MS}
    finally:
        relay.stop()


def part_many_addresses(relay_bin, env, hold_s):
    relay = bench.RelayProc(relay_bin, env=env)
    try:
        idle = relay.rss_kib()
        sources = ["127.0.0.%d" % i for i in range(10, 60)]
        atk = Attackers(relay.port, sources, 2000).start()
        peak = idle
        end = time.monotonic() + hold_s
        while time.monotonic() < end:
            peak = max(peak, relay.rss_kib())
            time.sleep(0.1)
        alive_during = relay.proc.poll() is None
        atk.stop()
        stopped = time.monotonic()
        recovered = None
        while time.monotonic() - stopped < 60:
            try:
                if timed_livez(relay.port, timeout=1.0)[1]:
                    recovered = time.monotonic() - stopped
                    break
            except OSError:
                pass
            time.sleep(0.05)
        # and it serves normally: a handful of requests and one cycle
        after = [timed_livez(relay.port)[0] for _ in range(20)]
        cyc_ms, cyc_ok = legacy_cycle(relay.port, 99999)
        return {"idle_rss_kib": idle, "peak_rss_kib": peak,
                "alive": alive_during and relay.proc.poll() is None,
                "attacker_cuts": atk.cut, "attacker_connects": atk.opened,
                "recovered_s": None if recovered is None else round(recovered, 3),
                "after_livez": summary(after),
                "after_cycle_ms": round(cyc_ms, 2), "after_cycle_ok": cyc_ok}
    finally:
        relay.stop()


def part_pool_memory(relay_bin):
    out = {}
    for threads in (64, 512):
        relay = bench.RelayProc(relay_bin, env={"RELAY_THREADS": str(threads)})
        try:
            time.sleep(0.5)
            out[threads] = relay.rss_kib()
        finally:
            relay.stop()
    out["per_thread_kib"] = round((out[512] - out[64]) / (512 - 64), 1)
    return out


def run(relay_bin, duration, report, env=None, measure_s=15, hold_s=15):
    # the relay's own default limits (bench.RelayProc turns them off for wrk)
    env = dict({"RELAY_MAX_CONNECTIONS_PER_CLIENT": "0",
                "RELAY_MAX_PENDING_HEADS_PER_CLIENT": "8"}, **(env or {}))
    res = {"env": env}
    res["one_address"] = part_one_address(relay_bin, env, measure_s)
    res["many_addresses"] = part_many_addresses(relay_bin, env, hold_s)
    res["pool_memory"] = part_pool_memory(relay_bin)
    report["slow_clients"] = res
    one, many, pool = res["one_address"], res["many_addresses"], res["pool_memory"]
    print("400 slow heads from 127.0.0.2 for %d s, measured from 127.0.0.1:"
          % measure_s)
    for name in ("livez", "cycle"):
        s = one[name]
        print("  %-6s n=%-4d p50 %7.2f ms  p99 %7.2f ms  max %7.2f ms"
              % (name, s["n"], s["p50_ms"], s["p99_ms"], s["max_ms"]))
    print("  failures %d, attacker connections cut/refused %d, bound (p99 < "
          "%d ms) %s" % (one["failures"], one["attacker_cuts"],
                         P99_BOUND_MS, "met" if one["bound_met"] else "MISSED"))
    print("2,000 slow heads from 50 addresses for %d s:" % hold_s)
    print("  alive %s, RSS idle %d KiB, peak %d KiB; attacker connects %d, "
          "cut/refused %d" % (many["alive"], many["idle_rss_kib"],
                              many["peak_rss_kib"], many["attacker_connects"],
                              many["attacker_cuts"]))
    print("  after they stop: /livez 200 again in %s s; then p99 %.2f ms, "
          "a legacy cycle %.2f ms (%s)"
          % (many["recovered_s"], many["after_livez"]["p99_ms"],
             many["after_cycle_ms"], "ok" if many["after_cycle_ok"] else "FAILED"))
    print("Worker pool: idle RSS %d KiB at 64 threads, %d KiB at 512: %.1f KiB "
          "per thread" % (pool[64], pool[512], pool["per_thread_kib"]))
    return res


def main():
    import argparse
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--relay", required=True)
    ap.add_argument("--measure", type=int, default=15,
                    help="seconds of part 1 (longer than the head deadline)")
    ap.add_argument("--hold", type=int, default=15)
    ap.add_argument("--env", action="append", default=[],
                    help="NAME=VALUE for the relay (repeatable)")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    env = dict(e.split("=", 1) for e in args.env)
    report = {}
    run(args.relay, 0, report, env=env, measure_s=args.measure,
        hold_s=args.hold)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
