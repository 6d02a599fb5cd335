#!/usr/bin/python3
"""State store section of `make bench` (bench/run.py imports run() from
here; not a test: it measures and reports, it asserts nothing).

1. The legacy 4-route cycle (bench/lua/legacy_cycle.lua) and the API v1
   cycle (bench/lua/v1_cycle.lua), each in three set-ups measured in the
   same run: one relay on the memory store, one relay on a Redis store
   (redis-server on loopback TCP, as in a cluster), and two relays sharing
   that Redis. Every wrk connection is one node plus one client cycling on
   one relay; with two relays, half the connections go to each (two wrk
   processes at once, distinct keys) and requests/s are summed, p99 is the
   worse of the two. Targets (issue 13): one relay on Redis >= 40% of the
   memory store's throughput; two relays >= 1.5x one relay.
2. Redis memory per queued job: INFO memory used_memory before and after
   10 000 legacy jobs of 1 KiB of stored fields (client key, cipherkey,
   iv, chat_history; as bench/lua/legacy_fill.lua) queued through
   /faucet, divided by the number of jobs.

    bench/store.py --relay build/release/relay/tokenplace-relay [--duration 5]
"""

import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import run as bench  # noqa: E402  (bench/run.py: wrk, RelayProc, free_port)

LUA = os.path.join(HERE, "lua")
TOKEN = ""	# node routes open: the API v1 script sends no token
CONNS = 16
MEM_JOBS = 10000
TARGET_ONE = 0.40
TARGET_TWO = 1.5


class RedisProc:
    """redis-server on a free loopback port, no persistence, noeviction."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="tp-bench-redis-")
        self.port = bench.free_port()
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", self.dir, "--save", "", "--appendonly", "no",
             "--maxmemory-policy", "noeviction", "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if self.command("PING") == "PONG":
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    @property
    def url(self):
        return "redis://127.0.0.1:%d/0" % self.port

    def command(self, *args):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        try:
            out = [b"*%d\r\n" % len(args)]
            for a in args:
                a = a.encode() if isinstance(a, str) else a
                out.append(b"$%d\r\n%s\r\n" % (len(a), a))
            s.sendall(b"".join(out))
            f = s.makefile("rb")
            line = f.readline()
            if line[:1] == b"+":
                return line[1:-2].decode()
            if line[:1] == b":":
                return int(line[1:-2])
            if line[:1] == b"$":
                return f.read(int(line[1:-2]) + 2)[:-2].decode()
            raise RuntimeError("reply %r" % line)
        finally:
            s.close()

    def used_memory(self):
        info = self.command("INFO", "memory")
        return int(re.search(r"^used_memory:(\d+)", info, re.M).group(1))

    def stop(self):
        bench.stop_process(self.proc, 10)
        shutil.rmtree(self.dir, ignore_errors=True)


def _legacy_script(tmpdir, nonce):
    path = os.path.join(tmpdir, "legacy-%s.lua" % nonce)
    with open(path, "w") as f:
        f.write("bench_args = {%s, %s}\n" % (json.dumps(nonce),
                                             json.dumps(TOKEN)))
        f.write("dofile(%s)\n" % json.dumps(os.path.join(LUA,
                                                         "legacy_cycle.lua")))
    return path


def _wrk_cmd(port, conns, duration, script, args):
    cmd = ["wrk", "-t%d" % conns, "-c%d" % conns, "-d%ds" % duration,
           "--latency", "-s", script, "http://127.0.0.1:%d" % port]
    return cmd + (["--"] + args if args else [])


def _parse(out):
    r = {"rps": 0.0, "p99_ms": float("nan"), "errors": 0, "non2xx": 0}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if m:
        r["rps"] = float(m.group(1))
    m = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    if m:
        r["p99_ms"] = bench._ms(m.group(1))
    for k in ("connect", "read", "write", "timeout"):
        m = re.search(r"%s (\d+)" % k, out)
        if m:
            r["errors"] += int(m.group(1))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        r["non2xx"] = int(m.group(1))
    m = re.search(r"CYCLE cycles=(\d+) surprises=(\d+)", out)
    r["cycles"], r["surprises"] = (int(m.group(1)), int(m.group(2))) \
        if m else (-1, -1)
    return r


def _cycle(relays, kind, duration, tmpdir, tag):
    """One cycle run over the relays at once (CONNS split between them)."""
    per = CONNS // len(relays)
    procs = []
    for i, relay in enumerate(relays):
        nonce = "%s%d%d" % (tag, i, int(time.monotonic() * 1000) % 100000)
        if kind == "legacy":
            cmd = _wrk_cmd(relay.port, per, duration,
                           _legacy_script(tmpdir, nonce), [])
        else:
            cmd = _wrk_cmd(relay.port, per, duration,
                           os.path.join(LUA, "v1_cycle.lua"), [nonce])
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    runs = [_parse(p.communicate(timeout=duration + 60)[0]) for p in procs]
    return {"rps": sum(r["rps"] for r in runs),
            "p99_ms": max(r["p99_ms"] for r in runs),
            "errors": sum(r["errors"] + r["non2xx"] + max(0, r["surprises"])
                          for r in runs),
            "cycles": sum(r["cycles"] for r in runs),
            "relays": len(relays), "connections": per * len(relays)}


def _v1_on_redis(port):
    """Whether the relay ran API v1 scripts on Redis (the API v1 Redis
    store), from its command-latency histogram."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    return re.search(r'^tokenplace_relay_state_command_seconds_count\{'
                     r'operation="v1_[^"]*"\} [1-9]', text, re.M) is not None


V1_ENV = {"TOKEN_PLACE_API_V1_RELAY_POLL_WAIT_SECONDS": "1",
          "TOKENPLACE_API_V1_MAX_REQUESTS": "100000",
          "TOKENPLACE_API_V1_MAX_TERMINAL_RECORDS": "10000000"}


def section_cycles(relay_bin, duration, out):
    tmpdir = tempfile.mkdtemp(prefix="tp-bench-store-")
    base_env = dict(V1_ENV, TOKEN_PLACE_RELAY_SERVER_TOKEN=TOKEN)
    res = {}
    try:
        for kind in ("legacy", "v1"):
            res[kind] = {}
            relay = bench.RelayProc(relay_bin, base_env)
            try:
                res[kind]["memory"] = _cycle([relay], kind, duration, tmpdir,
                                             "m")
            finally:
                relay.stop()
            redis = RedisProc()
            relays = []
            try:
                env = dict(base_env, RELAY_STATE_URL=redis.url)
                relays.append(bench.RelayProc(relay_bin, env))
                res[kind]["redis_1"] = _cycle(relays, kind, duration, tmpdir,
                                              "r")
                res[kind]["v1_on_redis"] = _v1_on_redis(relays[0].port)
                relays.append(bench.RelayProc(relay_bin, env))
                res[kind]["redis_2"] = _cycle(relays, kind, duration, tmpdir,
                                              "d")
            finally:
                for r in relays:
                    r.stop()
                redis.stop()
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)

    print("state store: cycles with %d connections, %d s each "
          "(req/s summed over routes and relays)" % (CONNS, duration))
    print("%-44s %9s %9s %7s %6s" % ("", "req/s", "p99 ms", "ratio",
                                     "errors"))
    for kind, title in (("legacy", "legacy 4-route cycle"),
                        ("v1", "API v1 cycle")):
        r = res[kind]
        mem, one, two = r["memory"], r["redis_1"], r["redis_2"]
        one["ratio_vs_memory"] = one["rps"] / mem["rps"] if mem["rps"] else 0
        two["ratio_vs_one"] = two["rps"] / one["rps"] if one["rps"] else 0
        rows = (("memory store, 1 relay", mem, 1.0),
                ("Redis store, 1 relay (vs memory)", one,
                 one["ratio_vs_memory"]),
                ("Redis store, 2 relays (vs 1 relay)", two,
                 two["ratio_vs_one"]))
        for name, x, ratio in rows:
            print("%-44s %9.0f %9.3f %7.2f %6d" % (
                "%s: %s" % (title, name), x["rps"], x["p99_ms"], ratio,
                x["errors"]))
        note = ""
        if kind == "v1" and not r["v1_on_redis"]:
            note = " (API v1 state was per relay in this build: no v1 " \
                   "scripts ran on Redis)"
        print("  %s: 1 relay on Redis %.0f%% of memory (target >= %.0f%%: "
              "%s); 2 relays %.2fx 1 relay (target >= %.1fx: %s)%s" % (
                  title, 100 * one["ratio_vs_memory"], 100 * TARGET_ONE,
                  "met" if one["ratio_vs_memory"] >= TARGET_ONE else "MISSED",
                  two["ratio_vs_one"], TARGET_TWO,
                  "met" if two["ratio_vs_one"] >= TARGET_TWO else "MISSED",
                  note))
    print("  on %d CPUs wrk, every relay and redis-server share the cores: "
          "with two relays the machine, not Redis, is the limit" % (
              os.cpu_count() or 1))
    out["cycles"] = res


def section_memory(relay_bin, out):
    redis = RedisProc()
    relay = None
    try:
        relay = bench.RelayProc(relay_bin, {
            "RELAY_STATE_URL": redis.url,
            "RELAY_MAX_QUEUE_PER_SERVER": str(MEM_JOBS),
            "RELAY_MAX_QUEUE_TOTAL": str(MEM_JOBS),
            "RELAY_SERVER_TTL_SECONDS": "3600"})
        conn = http.client.HTTPConnection("127.0.0.1", relay.port, timeout=30)
        node = "LS0tLS1CRUdJTiBQVUJMSUMgS0VZLS0tLS0KBenchMem"
        node += "Q" * (604 - len(node))

        def post(path, obj):
            conn.request("POST", path, json.dumps(obj),
                         {"Content-Type": "application/json"})
            r = conn.getresponse()
            data = r.read()
            if r.status != 200:
                raise RuntimeError("%s: %d %r" % (path, r.status, data[:200]))

        post("/sink", {"server_public_key": node})
        before = redis.used_memory()
        # 1024 bytes of stored fields, as bench/lua/legacy_fill.lua:
        # client key 604, cipherkey 344, iv 24, chat_history 52.
        client = "LS0tLS1CRUdJTiBQVUJMSUMgS0VZLS0tLS0KBenchCli"
        client += "C" * (604 - len(client))
        for i in range(MEM_JOBS):
            post("/faucet", {"server_public_key": node,
                             "client_public_key": client,
                             "chat_history": ("%06d" % i) + "h" * 46,
                             "cipherkey": "K" * 344, "iv": "I" * 24})
        after = redis.used_memory()
        conn.close()
    finally:
        if relay is not None:
            relay.stop()
        redis.stop()
    per = (after - before) / float(MEM_JOBS)
    print("Redis memory: %d queued jobs of 1 KiB of stored fields (as in "
          "the legacy memory figure): used_memory %+.1f MiB, %.0f bytes per "
          "job (%.2fx the 1024 B payload)" % (
              MEM_JOBS, (after - before) / 1048576.0, per, per / 1024.0))
    out["memory"] = {"jobs": MEM_JOBS, "used_before": before,
                     "used_after": after, "bytes_per_job": per}


def run(relay_bin, duration, report):
    out = report.setdefault("store", {})
    if not shutil.which("redis-server"):
        print("redis-server is missing: run cmake/install-deps.sh test")
        return
    section_cycles(relay_bin, duration, out)
    section_memory(relay_bin, out)


if __name__ == "__main__":
    bench.section_main(run, __doc__)
