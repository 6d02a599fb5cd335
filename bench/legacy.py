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
   per configuration, each run next to an nginx run of the same shape; the
   server's CPU time per request is reported too, as it hardly depends on
   other load. At 128 connections the default RELAY_THREADS (64) leaves
   half the connections without any answer (civetweb holds a worker per
   keep-alive connection; counted as "starved"), so that configuration
   runs once to show it, and the 128-connection figures come from a relay
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


def _median_of(runs):
    """Median of each figure over the runs; failure counts are summed."""
    med = {k: statistics.median(r[k] for r in runs)
           for k in ("rps", "p50_ms", "p99_ms", "cpu_us")}
    for k in ("errors", "non2xx", "surprises", "starved"):
        med[k] = sum(r.get(k, 0) for r in runs)
    med["runs_rps"] = [round(r["rps"]) for r in runs]
    med["runs"] = len(runs)
    return med


def _proc_cpu_s(pids):
    """utime + stime of the given processes, in seconds."""
    total = 0
    for pid in pids:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / float(os.sysconf("SC_CLK_TCK"))


def _nginx_pids(nginx):
    """nginx's workers (the master only waits for signals)."""
    pid = nginx.proc.pid
    with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
        return [int(x) for x in f.read().split()]


def _measured(url, pids, conns, duration, script=None):
    """One wrk run; adds the server's CPU time per request ("cpu_us"),
    which, unlike requests/s, hardly depends on what else shares the
    cores (wrk included)."""
    c0 = _proc_cpu_s(pids)
    r = bench.wrk(url, connections=conns, threads=conns, duration=duration,
                  script=script)
    r["cpu_us"] = ((_proc_cpu_s(pids) - c0) * 1e6 / r["requests"]
                   if r["requests"] else float("nan"))
    r.setdefault("non2xx", 0)
    return r


# (name, connections, relay environment, runs). Civetweb gives each
# keep-alive connection a worker thread of its own for as long as it stays
# open, so with the default RELAY_THREADS (64) 64 of 128 connections get no
# answer at all: that configuration runs once, to show it; the 128-
# connection throughput is measured with the threads raised.
CONFIGS = [
    ("c32", 32, {}, RUNS),
    ("c128", 128, {"RELAY_THREADS": "160"}, RUNS),
    ("c128_default_threads", 128, {}, 1),
]


def section_cycle(relay_bin, duration, out):
    # nginx answers a fixed body: its figures are steady, shorter runs do.
    ngx_duration = max(2, (duration * 3) // 5)
    nginx = bench.Nginx()
    ngx_url = "http://127.0.0.1:%d/" % nginx.port
    tmpdir = tempfile.mkdtemp(prefix="tp-bench-legacy-")
    res, base = {}, {}
    try:
        ngx_pids = _nginx_pids(nginx)
        # The usual wrk shape, to size what one thread per connection
        # costs the load generator.
        r = bench.wrk(ngx_url, connections=32, threads=2,
                      duration=ngx_duration)
        r.setdefault("non2xx", 0)
        r.pop("raw", None)
        base["t2c32"] = r
        for name, conns, env, runs in CONFIGS:
            relay = bench.RelayProc(relay_bin, dict(
                {"TOKEN_PLACE_RELAY_SERVER_TOKEN": TOKEN}, **env))
            ngx_runs, relay_runs = [], []
            try:
                # nginx and relay runs alternate, so that load from
                # elsewhere hits both alike. Each relay run has keys of its
                # own: at most one job and one answer per connection are
                # left from the run before.
                for i in range(runs):
                    ngx_runs.append(_measured(ngx_url, ngx_pids, conns,
                                              ngx_duration))
                    script = _lua_wrapper(tmpdir, "legacy_cycle.lua",
                                          ["%s-%d" % (name, i), TOKEN])
                    r = _measured("http://127.0.0.1:%d" % relay.port,
                                  [relay.proc.pid], conns, duration, script)
                    r.update(_cycle_counts(r["raw"]))
                    relay_runs.append(r)
            finally:
                relay.stop()
            for r in ngx_runs + relay_runs:
                r.pop("raw", None)
            res[name] = _median_of(relay_runs)
            res[name].update(connections=conns, env=env)
            base[name] = _median_of(ngx_runs)
            res[name]["nginx_ratio"] = (res[name]["rps"] / base[name]["rps"]
                                        if base[name]["rps"] else 0.0)
            res[name]["nginx_cpu_ratio"] = (
                res[name]["cpu_us"] / base[name]["cpu_us"])
    finally:
        nginx.stop()
        for f in os.listdir(tmpdir):
            os.unlink(os.path.join(tmpdir, f))
        os.rmdir(tmpdir)

    print("legacy cycle faucet->sink->source->retrieve, one connection per "
          "wrk thread; median of runs (%d s relay, %d s nginx each)" % (
              duration, ngx_duration))
    print("%-40s %4s %8s %7s %7s %7s %6s %6s %7s %6s" % (
        "", "runs", "req/s", "p50 ms", "p99 ms", "CPU us", "errors",
        "non2xx", "starved", "ratio"))
    b = base["t2c32"]
    print("%-40s %4d %8.0f %7.3f %7.3f %7s %6d %6d %7s %6s" % (
        "nginx fixed JSON, wrk -t2 -c32", 1, b["rps"], b["p50_ms"],
        b["p99_ms"], "-", b["errors"], b["non2xx"], "-", "-"))
    for name, conns, env, _ in CONFIGS:
        b, r = base[name], res[name]
        print("%-40s %4d %8.0f %7.3f %7.3f %7.1f %6d %6d %7s %6s" % (
            "nginx fixed JSON, wrk -t%d -c%d" % (conns, conns), b["runs"],
            b["rps"], b["p50_ms"], b["p99_ms"], b["cpu_us"],
            b["errors"], b["non2xx"], "-", "1.00"))
        print("%-40s %4d %8.0f %7.3f %7.3f %7.1f %6d %6d %7d %6.2f" % (
            "relay cycle, %d conns%s" % (conns, "".join(
                " %s=%s" % kv for kv in env.items()) or " (defaults)"),
            r["runs"], r["rps"], r["p50_ms"], r["p99_ms"], r["cpu_us"],
            r["errors"] + r["surprises"], r["non2xx"], r["starved"],
            r["nginx_ratio"]))
    c32 = res["c32"]
    print("  req/s is summed over the 4 routes; CPU us = server CPU time "
          "per request; ratio = relay req/s / nginx req/s, same wrk shape")
    print("  32 conns: %.0f req/s (runs %s), target >= %d: %s; relay CPU "
          "per request %.1fx nginx's" % (
              c32["rps"], c32["runs_rps"], CYCLE_TARGET_RPS,
              "met" if c32["rps"] >= CYCLE_TARGET_RPS else "MISSED",
              c32["nginx_cpu_ratio"]))
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


def _metric(port, name):
    """A label-less series of /metrics, as an int (-1: absent)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    m = re.search(r"^%s (\S+)$" % re.escape(name), text, re.M)
    return int(float(m.group(1))) if m else -1


def _queued(port):
    return _metric(port, "tokenplace_relay_queued_requests")


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
            # Jobs must have left by /sink, not been dropped with a node.
            dropped = _metric(relay.port,
                              "tokenplace_relay_dropped_requests_total")
            # The relay may have closed the idle keep-alive meanwhile.
            conn.close()
            after = _settle(relay, conn)
            rounds.append({"queued": queued, "rss_full_kib": full,
                           "rss_drained_kib": after, "dropped": dropped,
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
              "%.1f s%s" % (n, r["queued"], r["rss_full_kib"] / 1024.0,
                            r["rss_ratio"], r["growth_ratio"],
                            r["rss_drained_kib"] / 1024.0, r["fill_s"],
                            r["drain_s"], "  (%d jobs DROPPED, not drained)"
                            % r["dropped"] if r["dropped"] else ""))
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
