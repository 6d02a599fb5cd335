"""Legacy relay benchmark for `make bench` (issue 3; not a test).

Two parts, both against the release binary the runner passes, on loopback:

1. The full legacy cycle, /faucet -> /sink -> /source -> /retrieve, driven
   by bench/lua/legacy_cycle.lua. Each wrk connection is one compute node
   plus one client with keys of their own, running the four routes in
   protocol order, one request at a time on a keep-alive connection, so
   every route does its real work: /faucet enqueues, /sink pops exactly
   that job, /source stores the answer, /retrieve takes it. The Lua checks
   every reply and counts surprises. wrk's Lua cannot tell connections of
   one thread apart, so wrk runs with one connection per thread (-tN -cN);
   that costs the load generator more than -t2 does, so nginx's baseline
   is measured with the very same wrk shape (and the usual -t2 -c32 shape
   is shown too, to size the generator's own cost). Four separate wrk runs
   feeding each other were rejected: each would measure one route on a
   pre-filled or empty store, not the interleaving real traffic has.
   Requests/s is wrk's total, i.e. summed over the four routes (plus one
   registering /sink per connection). Median of 3 runs against one relay
   per configuration.
   At 128 connections it runs twice: with the default RELAY_THREADS (civetweb
   serves one keep-alive connection per worker thread, so connections
   beyond the thread count get no answer at all: counted as "starved") and
   with RELAY_THREADS raised above the connection count.

2. Memory: RSS (VmRSS) of a relay holding 100 000 queued jobs of 1 KiB of
   stored fields each, against that payload, then after draining them all
   with /sink (one job per poll, as the shipped node does), for 3 fill and
   drain rounds. The queue limits are raised through the environment;
   queue_total is set to exactly 100 000 so the fill stops there.

Everything lands in report["legacy"]; a table is printed.
"""

import http.client
import json
import os
import re
import signal
import statistics
import subprocess
import tempfile
import time

import run as bench

HERE = os.path.dirname(os.path.abspath(__file__))
LUA = os.path.join(HERE, "lua")

TOKEN = "bench-legacy-token"
CYCLE_TARGET_RPS = 20000	# issue 3, 32 connections, summed over routes
MEM_JOBS = 100000
MEM_JOB_BYTES = 1024		# stored fields per job (legacy_fill.lua)
MEM_SERVERS = 32
MEM_ROUNDS = 3
MEM_TARGET_RATIO = 2.0
RUNS = 3


def _lua_wrapper(tmpdir, script, args):
    """A script that sets bench_args and loads bench/lua/<script>: run.wrk
    passes no arguments after "--"."""
    path = os.path.join(tmpdir, "%s-%s.lua" % (
        os.path.splitext(script)[0], "-".join(args) or "noargs"))
    with open(path, "w") as f:
        f.write("bench_args = {%s}\n" % ", ".join(json.dumps(a) for a in args))
        f.write("dofile(%s)\n" % json.dumps(os.path.join(LUA, script)))
    return path


def _cycle_counts(raw):
    m = re.search(r"CYCLE cycles=(\d+) surprises=(\d+) min=(\d+) max=(\d+) "
                  r"starved=(\d+)", raw)
    keys = ("cycles", "surprises", "min_cycles", "max_cycles", "starved")
    return dict(zip(keys, map(int, m.groups()))) if m else dict.fromkeys(
        keys, -1)


def _seconds(raw):
    m = re.search(r"requests in ([\d.]+)(ms|s|m)", raw)
    if not m:
        return float("nan")
    return float(m.group(1)) * {"ms": 1e-3, "s": 1.0, "m": 60.0}[m.group(2)]


def _median_of(runs):
    """Median of each figure over the runs; failure counts are summed."""
    med = {k: statistics.median(r[k] for r in runs)
           for k in ("rps", "p50_ms", "p99_ms", "cycle_rps")}
    for k in ("errors", "non2xx", "surprises", "starved"):
        med[k] = sum(r.get(k, 0) for r in runs)
    med["runs_rps"] = [round(r["rps"]) for r in runs]
    return med


def _cycle_runs(relay_bin, tmpdir, name, conns, duration, env):
    """RUNS wrk runs against one relay (stopping a relay takes ~2 s);
    each run has keys of its own, so at most one job and one answer per
    connection are left over from the run before."""
    relay = bench.RelayProc(relay_bin, dict(
        {"TOKEN_PLACE_RELAY_SERVER_TOKEN": TOKEN}, **env))
    runs = []
    try:
        for i in range(RUNS):
            script = _lua_wrapper(tmpdir, "legacy_cycle.lua",
                                  ["%s-%d" % (name, i), TOKEN])
            r = bench.wrk("http://127.0.0.1:%d" % relay.port,
                          connections=conns, threads=conns,
                          duration=duration, script=script)
            r.update(_cycle_counts(r["raw"]))
            r.setdefault("non2xx", 0)
            secs = _seconds(r["raw"])
            r["cycle_rps"] = 4.0 * r["cycles"] / secs if secs > 0 else 0.0
            r.pop("raw", None)
            runs.append(r)
    finally:
        relay.stop()
    return runs


def _nginx_run(nginx, conns, threads, duration):
    r = bench.wrk("http://127.0.0.1:%d/" % nginx.port, connections=conns,
                  threads=threads, duration=duration)
    r.setdefault("non2xx", 0)
    r.pop("raw", None)
    return r


def section_cycle(relay_bin, duration, out):
    configs = [
        ("c32", 32, {}),
        ("c128", 128, {}),
        ("c128_threads160", 128, {"RELAY_THREADS": "160"}),
    ]
    # nginx answers a fixed body: its figures are steady, shorter runs do.
    ngx_duration = max(2, (duration * 3) // 5)
    nginx = bench.Nginx()
    tmpdir = tempfile.mkdtemp(prefix="tp-bench-legacy-")
    base = {}
    try:
        for shape, conns, threads in (("t2c32", 32, 2), ("t32c32", 32, 32),
                                      ("t128c128", 128, 128)):
            runs = [_nginx_run(nginx, conns, threads, ngx_duration)
                    for _ in range(RUNS if shape != "t2c32" else 1)]
            base[shape] = {
                "rps": statistics.median(r["rps"] for r in runs),
                "p50_ms": statistics.median(r["p50_ms"] for r in runs),
                "p99_ms": statistics.median(r["p99_ms"] for r in runs),
                "errors": sum(r["errors"] + r["non2xx"] for r in runs),
            }
        res = {}
        for name, conns, env in configs:
            runs = _cycle_runs(relay_bin, tmpdir, name, conns, duration, env)
            res[name] = _median_of(runs)
            res[name]["connections"] = conns
            res[name]["env"] = env
            res[name]["nginx_ratio"] = (
                res[name]["rps"] / base["t%dc%d" % (conns, conns)]["rps"])
    finally:
        nginx.stop()
        for f in os.listdir(tmpdir):
            os.unlink(os.path.join(tmpdir, f))
        os.rmdir(tmpdir)

    print("legacy cycle faucet->sink->source->retrieve, 1 connection per "
          "wrk thread, median of %d x %d s" % (RUNS, duration))
    print("%-34s %9s %8s %8s %6s %7s %7s %6s" % (
        "", "req/s", "p50 ms", "p99 ms", "errors", "non2xx", "starved",
        "nginx"))
    for shape in ("t2c32", "t32c32", "t128c128"):
        b = base[shape]
        print("%-34s %9.0f %8.3f %8.3f %6d %7s %7s %6s" % (
            "nginx fixed JSON -%s" % shape.replace("c", " -c"), b["rps"],
            b["p50_ms"], b["p99_ms"], b["errors"], "-", "-", "1.00"))
    for name, _, env in configs:
        r = res[name]
        label = "relay cycle %d conns%s" % (
            r["connections"], "".join(" %s=%s" % kv for kv in env.items()))
        print("%-34s %9.0f %8.3f %8.3f %6d %7d %7d %6.2f" % (
            label, r["rps"], r["p50_ms"], r["p99_ms"],
            r["errors"] + r["surprises"], r["non2xx"], r["starved"],
            r["nginx_ratio"]))
    c32 = res["c32"]
    print("  32 conns: %.0f req/s summed over the 4 routes (%.0f cycles/s), "
          "target >= %d: %s; runs %s" % (
              c32["rps"], c32["cycle_rps"] / 4, CYCLE_TARGET_RPS,
              "met" if c32["rps"] >= CYCLE_TARGET_RPS else "MISSED",
              c32["runs_rps"]))
    out["cycle"] = res
    out["cycle_nginx"] = base
    out["cycle_target_rps"] = CYCLE_TARGET_RPS
    out["cycle_target_met"] = c32["rps"] >= CYCLE_TARGET_RPS


# ---- memory ---------------------------------------------------------------

def mem_key(i):
    """Node key i of legacy_fill.lua / legacy_drain.lua (same formula)."""
    k = "LS0tLS1CRUdJTiBQVUJMSUMgS0VZLS0tLS0KTWem%05d" % i
    return k + "Q" * (604 - len(k))


def _post(conn, path, obj):
    body = json.dumps(obj).encode()
    conn.request("POST", path, body, {"Content-Type": "application/json"})
    r = conn.getresponse()
    data = r.read()
    if r.status != 200:
        raise RuntimeError("%s: %d %r" % (path, r.status, data[:200]))
    return json.loads(data)


def _queued(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    m = re.search(r"^tokenplace_relay_queued_requests (\S+)$", text, re.M)
    return int(float(m.group(1))) if m else -1


def _wrk_until(port, script, done, limit_s=60):
    """Runs wrk with the script until done(queued) holds for the relay's
    queue gauge (polled every 50 ms), then stops it with SIGINT. Returns
    the seconds it took and wrk's request count."""
    cmd = ["wrk", "-t2", "-c32", "-d%ds" % limit_s, "-s", script,
           "http://127.0.0.1:%d" % port]
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        while proc.poll() is None and not done(_queued(port)):
            time.sleep(0.05)
        took = time.monotonic() - start
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    m = re.search(r"(\d+) requests in", out)
    return took, int(m.group(1)) if m else 0


def _settle(relay, conn):
    """After a drain: heartbeats for 1.5 s, longer than the broker's 1 s
    sweep interval, so the sweep that trims freed heap has run (as a live
    node's next poll would cause), then RSS."""
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        _post(conn, "/sink", {"server_public_key": mem_key(0)})
        time.sleep(0.25)
    return relay.rss_kib()


def section_memory(relay_bin, out):
    env = {
        "RELAY_MAX_QUEUE_TOTAL": str(MEM_JOBS),
        "RELAY_MAX_QUEUE_PER_SERVER": str(MEM_JOBS),
        # nodes must stay known while their queues fill without polls
        "RELAY_SERVER_TTL_SECONDS": "3600",
    }
    payload_kib = MEM_JOBS * MEM_JOB_BYTES / 1024.0
    relay = bench.RelayProc(relay_bin, env)
    tmpdir = tempfile.mkdtemp(prefix="tp-bench-legacy-mem-")
    rounds = []
    try:
        conn = http.client.HTTPConnection("127.0.0.1", relay.port, timeout=30)
        for i in range(MEM_SERVERS):
            _post(conn, "/sink", {"server_public_key": mem_key(i)})
        idle = _settle(relay, conn)
        fill = _lua_wrapper(tmpdir, "legacy_fill.lua", [str(MEM_SERVERS)])
        drain = _lua_wrapper(tmpdir, "legacy_drain.lua", [str(MEM_SERVERS)])
        for n in range(MEM_ROUNDS):
            t_fill, _ = _wrk_until(relay.port, fill, lambda q: q >= MEM_JOBS)
            queued = _queued(relay.port)
            full = relay.rss_kib()
            t_drain, _ = _wrk_until(relay.port, drain, lambda q: q == 0)
            left = _queued(relay.port)
            # the gauge reaches 0 while the last popped jobs are in flight
            conn.close()
            after = _settle(relay, conn)
            rounds.append({"queued": queued, "rss_full_kib": full,
                           "rss_drained_kib": after, "left": left,
                           "fill_s": round(t_fill, 2),
                           "drain_s": round(t_drain, 2)})
        conn.close()
    finally:
        relay.stop()
        for f in os.listdir(tmpdir):
            os.unlink(os.path.join(tmpdir, f))
        os.rmdir(tmpdir)

    print("legacy memory: %d queued jobs x %d B stored fields = %.1f MiB "
          "payload; %d nodes" % (MEM_JOBS, MEM_JOB_BYTES, payload_kib / 1024,
                                 MEM_SERVERS))
    print("  idle RSS %.1f MiB" % (idle / 1024.0))
    for n, r in enumerate(rounds, 1):
        r["rss_ratio"] = r["rss_full_kib"] / payload_kib
        r["growth_ratio"] = (r["rss_full_kib"] - idle) / payload_kib
        print("  round %d: queued %6d  RSS full %7.1f MiB (%.2fx payload, "
              "%.2fx above idle)  drained %6.1f MiB  fill %.1f s, drain "
              "%.1f s" % (n, r["queued"], r["rss_full_kib"] / 1024.0,
                          r["rss_ratio"], r["growth_ratio"],
                          r["rss_drained_kib"] / 1024.0, r["fill_s"],
                          r["drain_s"]))
    worst = max(r["rss_ratio"] for r in rounds)
    growth = rounds[-1]["rss_drained_kib"] - rounds[0]["rss_drained_kib"]
    print("  RSS <= %.1fx payload: %s (worst %.2fx); drained RSS round %d - "
          "round 1: %+.1f MiB" % (
              MEM_TARGET_RATIO, "met" if worst <= MEM_TARGET_RATIO else
              "MISSED", worst, MEM_ROUNDS, growth / 1024.0))
    out["memory"] = {
        "jobs": MEM_JOBS, "job_bytes": MEM_JOB_BYTES,
        "payload_kib": payload_kib, "rss_idle_kib": idle, "rounds": rounds,
        "worst_ratio": worst, "target_ratio": MEM_TARGET_RATIO,
        "drained_growth_kib": growth,
    }


def _cpu_busy_s():
    """CPU seconds all processes spent busy since boot (/proc/stat)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)	# idle + iowait
    return (sum(v[:8]) - idle) / float(os.sysconf("SC_CLK_TCK"))


def _own_cpu_s():
    """CPU seconds of this process and its waited-for children (relay,
    wrk, nginx)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def run(relay_bin, duration, report):
    out = report.setdefault("legacy", {})
    start = time.monotonic()
    busy0, own0 = _cpu_busy_s(), _own_cpu_s()
    section_cycle(relay_bin, duration, out)
    section_memory(relay_bin, out)
    out["seconds"] = round(time.monotonic() - start, 1)
    # wrk and the relay share the cores with whatever else runs: CPU time
    # other processes took meanwhile says how far the figures hold.
    other = max(0.0, (_cpu_busy_s() - busy0) - (_own_cpu_s() - own0))
    share = other / (out["seconds"] * (os.cpu_count() or 1))
    out["other_cpu_share"] = round(share, 3)
    print("legacy section took %.0f s; other processes used %.0f%% of the "
          "%d CPUs meanwhile%s" % (
              out["seconds"], 100 * share, os.cpu_count() or 1,
              " (figures are low: rerun on a quiet machine)"
              if share > 0.05 else ""))
