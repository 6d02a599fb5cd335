"""Helpers for the gpuhost tests: a venv built once, config files, ephemeral
ports, polling with deadlines, process cleanup."""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(HERE, "server.py")
SCALE = float(os.environ.get("TP_TIMEOUT_SCALE", "1"))


def free_port():
    """Binds port 0 on loopback and returns what the kernel chose."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(pred, timeout, what, interval=0.05):
    """Polls pred() until it returns a true value or the deadline passes."""
    deadline = time.monotonic() + timeout * SCALE
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("timed out after %.1fs waiting for %s (last: %r)"
                         % (timeout * SCALE, what, last))


def make_venv(path):
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", path],
                   check=True)
    return path


def write_config(dirpath, venv, port, script_args="", extra=None, checkout=HERE,
                 script="server.py"):
    """Writes gpuhost.ini for the fixture server; extra = {section: {k: v}}."""
    sections = {
        "python": {"checkout": checkout, "venv": venv, "script": script,
                   "args": "--host {host} --port {port} --state %s %s"
                   % (dirpath, script_args)},
        "network": {"host": "127.0.0.1", "port": str(port)},
        "checks": {"dns": "off", "firewall": "off"},
        "service": {"stop_grace": "5", "escalate_after": "2",
                    "restart_backoff_initial": "0.2",
                    "restart_backoff_max": "5", "restart_reset_after": "30",
                    "name": "gpuhost-test"},
        "health": {"interval": "0.1", "timeout": "1", "failures": "2"},
        "log": {"dir": os.path.join(dirpath, "logs"), "console": "false"},
        "environment": {"GPUHOST_FIXTURE_ENV": "from-config"},
    }
    for sec, kv in (extra or {}).items():
        sections.setdefault(sec, {}).update(kv)
    path = os.path.join(dirpath, "gpuhost.ini")
    with open(path, "w") as f:
        for sec, kv in sections.items():
            f.write("[%s]\n" % sec)
            for k, v in kv.items():
                f.write("%s = %s\n" % (k, v))
    return path


def read_status(dirpath):
    path = os.path.join(dirpath, "logs", "gpuhost.status")
    out = {}
    try:
        with open(path) as f:
            for line in f:
                if " = " in line:
                    k, v = line.rstrip("\n").split(" = ", 1)
                    out[k] = v
    except FileNotFoundError:
        return {}
    return out


def read_log(dirpath, name="gpuhost.log"):
    try:
        with open(os.path.join(dirpath, "logs", name), encoding="utf-8",
                  errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def events(dirpath):
    out = []
    for line in read_log(dirpath).splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def http_health(port):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/health" % port,
                                    timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


class Tmp:
    """A temporary directory removed on exit, kept with GPUHOST_KEEP=1."""

    def __enter__(self):
        self.path = tempfile.mkdtemp(prefix="gpuhost-test-")
        return self.path

    def __exit__(self, *exc):
        if not os.environ.get("GPUHOST_KEEP"):
            shutil.rmtree(self.path, ignore_errors=True)


def kill_group(proc):
    """Last-resort cleanup of a process we started and all it started."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


class VenvCase(unittest.TestCase):
    """One venv for the class; per test a directory, a free port and the
    processes it started (self.procs), each killed with its group and its
    worker's group when the test ends."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = Tmp()
        cls.root = cls.tmp.__enter__()
        cls.venv = make_venv(os.path.join(cls.root, "venv"))

    @classmethod
    def tearDownClass(cls):
        cls.tmp.__exit__(None, None, None)

    def setUp(self):
        self.dir = os.path.join(self.root, self._testMethodName)
        os.makedirs(self.dir)
        self.port = free_port()
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            wp = int(read_status(self.dir).get("worker_pid", "0") or 0)
            kill_group(p)
            if p.stdout is not None:
                p.stdout.close()
            if wp > 0:
                try:
                    os.killpg(wp, signal.SIGKILL)
                except ProcessLookupError:
                    pass
