"""Harness for integration tests against the real tokenplace-relay binary.

A Relay starts the binary on an ephemeral port (RELAY_PORT=0), learns the
port from the `relay.startup` log line, waits until /livez answers, and on
exit stops it with SIGTERM (then SIGKILL) so no process outlives a test.
Every wait polls with a deadline; TP_TIMEOUT_SCALE stretches deadlines for
slow runs such as valgrind.

    with Relay(env={"RELAY_SERVER_TTL_SECONDS": "2"}) as r:
        status, obj = r.post_json("/sink", {"server_public_key": "K"})
"""

import http.client
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
import unittest

RELAY_BIN = os.environ.get("TP_RELAY_BIN", "")
WRAPPER = shlex.split(os.environ.get("TP_RELAY_WRAPPER", ""))
SCALE = float(os.environ.get("TP_TIMEOUT_SCALE", "1"))


def scaled(seconds):
    """A deadline stretched for slow runs (valgrind sets TP_TIMEOUT_SCALE)."""
    return seconds * SCALE


def wait_for(predicate, timeout, interval=0.02, what="condition"):
    """Polls predicate() until it returns a truthy value or the deadline."""
    deadline = time.monotonic() + scaled(timeout)
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError("timed out waiting for %s" % what)
        time.sleep(interval)


class Relay:
    """One tokenplace-relay process for the duration of a with-block."""

    def __init__(self, env=None, args=None, wrapper=None, clean_env=True,
                 expect_exit=0):
        self.env_overrides = dict(env or {})
        self.args = list(args or [])
        self.wrapper = WRAPPER if wrapper is None else wrapper
        self.clean_env = clean_env
        self.expect_exit = expect_exit
        self.proc = None
        self.port = None
        self._lines = []
        self._raw = []
        self._lock = threading.Lock()
        self._reader = None

    # -- lifecycle -----------------------------------------------------------
    def __enter__(self):
        self.start()
        return self

    def __exit__(self, exc_type, exc, tb):
        code = self.stop()
        if exc_type is None and self.expect_exit is not None \
                and code != self.expect_exit:
            raise AssertionError("relay exited with %r, expected %r\n%s"
                                 % (code, self.expect_exit, self.stderr_text()))
        return False

    def build_env(self):
        if self.clean_env:
            env = {k: v for k, v in os.environ.items()
                   if not (k.startswith("RELAY_") or k.startswith("TOKENPLACE_")
                           or k.startswith("TOKEN_PLACE_")
                           or k.startswith("GPU_SERVER_"))}
        else:
            env = dict(os.environ)
        env.setdefault("RELAY_HOST", "127.0.0.1")
        env.setdefault("RELAY_PORT", "0")
        # Every simulated peer connects from 127.0.0.1, as all would from
        # an ingress: the per-address limit is off, as the chart sets it;
        # the tests of that limit set it themselves.
        env.setdefault("RELAY_MAX_CONNECTIONS_PER_CLIENT", "0")
        env.setdefault("RELAY_MAX_PENDING_HEADS_PER_CLIENT", "0")
        # None unsets a variable: the relay's own default applies
        for k, v in self.env_overrides.items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = v
        return env

    def start(self):
        if not RELAY_BIN:
            raise RuntimeError("TP_RELAY_BIN is not set")
        cmd = self.wrapper + [RELAY_BIN] + self.args
        self.proc = subprocess.Popen(cmd, env=self.build_env(),
                                     stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()
        self._stderr = []
        self._err_reader = threading.Thread(target=self._read_stderr,
                                            daemon=True)
        self._err_reader.start()
        try:
            line = wait_for(lambda: self.find_log("relay.startup")
                            or self._exited_early(), 30,
                            what="relay.startup log line")
            if line == "exited":
                raise AssertionError("relay exited during start-up (%r)\n%s\n%s"
                                     % (self.proc.returncode,
                                        "".join(self._raw), self.stderr_text()))
            self.port = int(line["port"])
            wait_for(self._livez_ok, 30, what="/livez")
        except BaseException:
            self.kill()
            raise
        return self

    def _exited_early(self):
        return "exited" if self.proc.poll() is not None else None

    def _livez_ok(self):
        try:
            status, _, _ = self.request("GET", "/livez", timeout=5)
            return status == 200
        except OSError:
            return False

    def _read_stdout(self):
        for raw in self.proc.stdout:
            text = raw.decode("utf-8", "replace")
            with self._lock:
                self._raw.append(text)
                try:
                    self._lines.append(json.loads(text))
                except ValueError:
                    self._lines.append({"_unparsed": text})

    def _read_stderr(self):
        for raw in self.proc.stderr:
            self._stderr.append(raw.decode("utf-8", "replace"))

    def stderr_text(self):
        return "".join(getattr(self, "_stderr", []))

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout):
        try:
            return self.proc.wait(timeout=scaled(timeout))
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout=40):
        """SIGTERM, wait, SIGKILL if needed. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=scaled(timeout))
            except subprocess.TimeoutExpired:
                self.kill()
        self._join_readers()
        return self.proc.returncode

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._join_readers()

    def _join_readers(self):
        for t in (self._reader, getattr(self, "_err_reader", None)):
            if t is not None:
                t.join(timeout=scaled(10))

    # -- logs ----------------------------------------------------------------
    def logs(self):
        with self._lock:
            return list(self._lines)

    def forget_logs(self):
        """Drops the log lines read so far (a long run would hold them all
        in memory); later lines are kept as usual."""
        with self._lock:
            del self._lines[:]
            del self._raw[:]

    def raw_logs(self):
        with self._lock:
            return list(self._raw)

    def find_log(self, message, **fields):
        for line in self.logs():
            if line.get("message") != message:
                continue
            if all(line.get(k) == v for k, v in fields.items()):
                return line
        return None

    def wait_log(self, message, timeout=10, **fields):
        return wait_for(lambda: self.find_log(message, **fields), timeout,
                        what="log line %s" % message)

    # -- HTTP ------------------------------------------------------------------
    def connection(self, timeout=30):
        return http.client.HTTPConnection("127.0.0.1", self.port,
                                          timeout=scaled(timeout))

    def request(self, method, path, body=None, json_body=None, headers=None,
                timeout=30, json=None):
        """One request on a fresh connection: (status, headers, body bytes)."""
        if json is not None:
            json_body = json
        hdrs = dict(headers or {})
        if json_body is not None:
            body = _dumps(json_body)
            hdrs.setdefault("Content-Type", "application/json")
        if isinstance(body, str):
            body = body.encode("utf-8")
        conn = self.connection(timeout)
        try:
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        finally:
            conn.close()

    def post_json(self, path, obj, headers=None, timeout=30):
        status, _, data = self.request("POST", path, json_body=obj,
                                       headers=headers, timeout=timeout)
        return status, _loads(data)

    def get_json(self, path, headers=None, timeout=30):
        status, _, data = self.request("GET", path, headers=headers,
                                       timeout=timeout)
        return status, _loads(data)

    def metrics(self):
        status, _, data = self.request("GET", "/metrics")
        assert status == 200, status
        return data.decode("utf-8")


def metric_value(text, name, **labels):
    """Value of one sample in Prometheus text, or None when absent."""
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        if "{" in head:
            mname, _, rest = head.partition("{")
            got = _parse_labels(rest.rstrip("}"))
        else:
            mname, got = head, {}
        if mname == name and all(got.get(k) == v for k, v in labels.items()):
            return float(value)
    return None


def _parse_labels(text):
    out = {}
    i = 0
    while i < len(text):
        eq = text.index("=", i)
        key = text[i:eq].strip(" ,")
        j = eq + 2
        val = []
        while text[j] != '"':
            if text[j] == "\\":
                nxt = text[j + 1]
                val.append({"n": "\n", "\\": "\\", '"': '"'}.get(nxt, nxt))
                j += 2
            else:
                val.append(text[j])
                j += 1
        out[key] = "".join(val)
        i = j + 1
    return out


def _dumps(obj):
    if isinstance(obj, (bytes, str)):
        return obj
    return json.dumps(obj)


def _loads(data):
    try:
        return json.loads(data.decode("utf-8")) if data else None
    except ValueError:
        return {"_raw": data}


def main():
    """unittest entry point with a verbose runner."""
    unittest.main(verbosity=2)


if __name__ == "__main__":
    sys.exit("relaytest is a library")
