"""Helpers shared by the image tests (tests/image/test_*.py).

Standard library only. Every podman/buildah/skopeo call goes through run()
with CONTAINERS_CONF pointing at tests/image/containers.conf (runc, ulimits
below the CI VMs' hard limits), and every wait polls against a deadline.
"""
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
ENV = dict(os.environ, CONTAINERS_CONF=os.environ.get(
    "CONTAINERS_CONF", os.path.join(HERE, "containers.conf")))
# CI machines are busy 2-core VMs; TP_TIMEOUT_SCALE stretches every deadline.
SCALE = float(os.environ.get("TP_TIMEOUT_SCALE", "1"))


class Results:
    """Counts checks and prints `ok`/`FAIL` lines and the final summary."""

    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
            print(f"ok   {name}", flush=True)
        else:
            self.failed += 1
            print(f"FAIL {name}" + (f": {detail}" if detail else ""),
                  flush=True)
        return bool(ok)

    def summary(self):
        print(f"{self.passed} passed, {self.failed} failed", flush=True)
        return 1 if self.failed else 0


def log(msg):
    print(f"info {msg}", flush=True)


def run(args, timeout=600, check=True, input_text=None, env=None):
    """Runs a command with the podman settings; returns CompletedProcess."""
    p = subprocess.run(args, env=env or ENV, capture_output=True, text=True,
                       timeout=timeout * SCALE, input=input_text)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} -> rc {p.returncode}\n"
                           f"{p.stdout[-2000:]}\n{p.stderr[-4000:]}")
    return p


def free_port():
    """A loopback port that was free a moment ago (bind 0, read it back)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, body=None, timeout=10, headers=None):
    """(status, headers, body bytes); status 0 when nothing answered."""
    data = None
    hdrs = dict(headers or {})
    if body is not None:
        data = json.dumps(body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=timeout * SCALE) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()
    except (urllib.error.URLError, ConnectionError, socket.timeout, OSError):
        return 0, {}, b""


def timed(label, fn):
    """fn(), logging how long it took."""
    t0 = time.monotonic()
    try:
        return fn()
    finally:
        log(f"time {label}: {time.monotonic() - t0:.1f} s")


def wait_for(predicate, timeout, interval=0.1):
    """Polls predicate() until it returns a true value or timeout passes."""
    deadline = time.monotonic() + timeout * SCALE
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def require_root():
    if os.geteuid() != 0:
        print("FAIL image tests need root (podman system storage, "
              "debootstrap)", file=sys.stderr)
        sys.exit(1)


class Registry:
    """Debian's docker-registry (distribution 2.x) on 127.0.0.1, storage in a
    temporary directory; start() retries on a port taken in between."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.proc = None
        self.port = None
        self.logfile = None

    def start(self, attempts=5):
        for _ in range(attempts):
            port = free_port()
            conf = os.path.join(self.workdir, "registry.yml")
            with open(conf, "w", encoding="utf-8") as f:
                f.write("version: 0.1\n"
                        "log: {level: warn}\n"
                        "storage:\n"
                        f"  filesystem: {{rootdirectory: {self.workdir}/data}}\n"
                        "  delete: {enabled: true}\n"
                        f"http: {{addr: '127.0.0.1:{port}'}}\n")
            self.logfile = open(os.path.join(self.workdir, "registry.log"),
                                "w", encoding="utf-8")
            self.proc = subprocess.Popen(["docker-registry", "serve", conf],
                                         stdout=self.logfile,
                                         stderr=subprocess.STDOUT)
            self.port = port
            if wait_for(lambda: self.proc.poll() is not None or
                        http("GET", f"{self.url}/v2/")[0] == 200, 30):
                if self.proc.poll() is None:
                    return True
            self.stop()
        return False

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def host(self):
        return f"127.0.0.1:{self.port}"

    def stop(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.proc = None
        if self.logfile is not None:
            self.logfile.close()
            self.logfile = None
