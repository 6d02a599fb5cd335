#!/usr/bin/python3
"""Benchmark runner for `make bench` (not a test: it asserts nothing).

Every figure is measured in the same run as its baseline and reported as a
ratio: the relay's /livez and /healthz against nginx serving a fixed JSON
body, each driven by wrk on loopback. Sections from other modules (legacy
cycle, API v1, forwarding) are loaded from bench/ when present.

    bench/run.py --relay build/release/relay/tokenplace-relay [--quick]
                 [--only service,legacy,...]
"""

import argparse
import importlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

# {workers} and {http} are filled by nginx_conf(); the rest by Nginx.
NGINX_SKELETON = """
worker_processes {workers};
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 1000000;
{http}
}}
"""


def nginx_conf(workers, http):
    """An nginx.conf template: the common skeleton, `workers` worker
    processes, `http` inside the http block (braces doubled for format)."""
    return NGINX_SKELETON.replace("{workers}", str(workers)).replace(
        "{http}", http)


NGINX_CONF = nginx_conf(1, """    server {{
        listen 127.0.0.1:{port};
        location / {{
            default_type application/json;
            return 200 '{{"status":"alive"}}';
        }}
    }}""")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_http(url, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status in (200, 503):
                    return True
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("no answer from %s" % url)


class Nginx:
    """nginx on an ephemeral loopback port with a throw-away config."""

    def __init__(self, conf_template=NGINX_CONF, **fmt):
        self.dir = tempfile.mkdtemp(prefix="tp-bench-nginx-")
        self.port = free_port()
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(conf_template.format(dir=self.dir, port=self.port, **fmt))
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        self.proc = subprocess.Popen([binary, "-c", conf, "-p", self.dir],
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_http("http://127.0.0.1:%d/" % self.port)

    def stop(self):
        stop_process(self.proc, 10)
        shutil.rmtree(self.dir, ignore_errors=True)


def stop_process(proc, timeout):
    """SIGTERM, then SIGKILL if it has not exited after timeout seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def listening_port(pid, timeout=20):
    """The TCP port process pid listens on, found through its socket
    inodes in /proc (the relay is started on port 0 and its logs are off
    during benchmarks, so the port cannot be read from its start-up line)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        inodes = set()
        try:
            for fd in os.listdir("/proc/%d/fd" % pid):
                try:
                    link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
                except OSError:
                    continue
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
        except OSError:
            raise RuntimeError("process %d is gone" % pid)
        for table in ("/proc/%d/net/tcp" % pid, "/proc/%d/net/tcp6" % pid):
            try:
                with open(table) as f:
                    next(f)
                    for line in f:
                        cols = line.split()
                        if cols[3] == "0A" and cols[9] in inodes:
                            return int(cols[1].rsplit(":", 1)[1], 16)
            except OSError:
                pass
        time.sleep(0.05)
    raise RuntimeError("process %d does not listen" % pid)


class RelayProc:
    """The relay under test, on an ephemeral port (port 0, read back),
    logs discarded."""

    def __init__(self, binary, env=None):
        # wrk opens every connection from 127.0.0.1, as an ingress would,
        # and all of them before it sends a request on any: the
        # per-address limits are off unless a section sets them.
        e = {"PATH": "/usr/bin:/bin", "RELAY_HOST": "127.0.0.1",
             "RELAY_PORT": "0", "TOKENPLACE_LOG_LEVEL": "WARNING",
             "RELAY_MAX_CONNECTIONS_PER_CLIENT": "0",
             "RELAY_MAX_PENDING_HEADS_PER_CLIENT": "0"}
        e.update(env or {})
        self.proc = subprocess.Popen([binary], env=e,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        self.port = listening_port(self.proc.pid)
        wait_http("http://127.0.0.1:%d/livez" % self.port)

    def rss_kib(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def stop(self):
        stop_process(self.proc, 40)


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text):
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    return float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")


def wrk(url, connections=32, duration=5, threads=2, script=None,
        on_running=None):
    """Runs wrk; returns {rps, p50_ms, p99_ms, errors, requests}."""
    cmd = ["wrk", "-t%d" % threads, "-c%d" % connections, "-d%ds" % duration,
           "--latency"]
    if script:
        cmd += ["-s", script]
    cmd.append(url)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    if on_running:
        time.sleep(duration / 2.0)
        on_running()
    out, _ = proc.communicate(timeout=duration + 60)
    res = {"rps": 0.0, "p50_ms": float("nan"), "p99_ms": float("nan"),
           "errors": 0, "requests": 0, "raw": out}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if m:
        res["rps"] = float(m.group(1))
    m = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    if m:
        res["p50_ms"] = _ms(m.group(1))
    m = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    if m:
        res["p99_ms"] = _ms(m.group(1))
    m = re.search(r"(\d+) requests in", out)
    if m:
        res["requests"] = int(m.group(1))
    for k in ("connect", "read", "write", "timeout"):
        m = re.search(r"%s (\d+)" % k, out)
        if m:
            res["errors"] += int(m.group(1))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        res["non2xx"] = int(m.group(1))
    return res


def fmt_row(name, r, base=None):
    ratio = ""
    if base and base.get("rps"):
        ratio = "  ratio %.2f" % (r["rps"] / base["rps"])
    return "%-34s %10.0f req/s  p50 %7.3f ms  p99 %7.3f ms%s" % (
        name, r["rps"], r["p50_ms"], r["p99_ms"], ratio)


def section_service(relay_bin, duration, report):
    """Issue 2: /livez and /healthz against nginx; RSS idle and loaded."""
    nginx = Nginx()
    relay = RelayProc(relay_bin)
    try:
        time.sleep(0.5)
        idle = relay.rss_kib()
        base = wrk("http://127.0.0.1:%d/" % nginx.port, duration=duration)
        peak = []
        livez = wrk("http://127.0.0.1:%d/livez" % relay.port,
                    duration=duration,
                    on_running=lambda: peak.append(relay.rss_kib()))
        healthz = wrk("http://127.0.0.1:%d/healthz" % relay.port,
                      duration=duration)
        print(fmt_row("nginx fixed JSON (baseline)", base))
        print(fmt_row("relay /livez", livez, base))
        print(fmt_row("relay /healthz", healthz, base))
        print("relay RSS idle %.1f MiB, under load %.1f MiB" % (
            idle / 1024.0, (peak[0] if peak else 0) / 1024.0))
        report["service"] = {
            "nginx": base, "livez": livez, "healthz": healthz,
            "livez_ratio": livez["rps"] / base["rps"] if base["rps"] else 0,
            "healthz_ratio": healthz["rps"] / base["rps"] if base["rps"] else 0,
            "rss_idle_kib": idle, "rss_load_kib": peak[0] if peak else 0,
        }
    finally:
        relay.stop()
        nginx.stop()


SECTIONS = [("service", section_service)]
# Sections of other modules: bench/<name>.py with run(relay_bin, duration, report).
for _name in ("legacy", "v1", "forward", "slow_clients", "store", "v1_wakeup",
              "models"):
    if os.path.exists(os.path.join(HERE, _name + ".py")):
        SECTIONS.append((_name, None))


def section_main(run_section, doc):
    """The command line of a section module run alone (--relay, --duration),
    as `bench/run.py --only NAME` runs it among the others."""
    ap = argparse.ArgumentParser(description=doc,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--relay", required=True)
    ap.add_argument("--duration", type=int, default=5)
    args = ap.parse_args()
    run_section(args.relay, args.duration, {})


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--relay", required=True)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--only", default="")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is missing: run cmake/install-deps.sh bench")
    only = set(filter(None, args.only.split(",")))
    report = {"cpus": os.cpu_count()}
    start = time.monotonic()
    for name, fn in SECTIONS:
        if only and name not in only:
            continue
        print("== %s" % name)
        if fn is None:
            fn = importlib.import_module(name).run
        fn(args.relay, args.duration, report)
    print("bench finished in %.0f s" % (time.monotonic() - start))
    for sect in report.values():
        if isinstance(sect, dict):
            for v in sect.values():
                if isinstance(v, dict):
                    v.pop("raw", None)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
