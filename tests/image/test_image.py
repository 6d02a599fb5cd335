#!/usr/bin/python3
"""The relay container image, built and run the way operators run it.

1. Base: tests/image/base-image.sh makes debian:bookworm-slim from a cached
   debootstrap tarball (no registry is reachable on CI machines).
2. Build: `podman build --pull=never` of the repository's Dockerfile for the
   machine's architecture.
3. Static checks: non-root numeric USER, EXPOSE 5010, RELAY_HOST=0.0.0.0 and
   RELAY_PORT=5010, OCI labels, nothing in the filesystem but the relay, its
   shared libraries, the CA bundle and the account files; size budget, and
   at most a fifth of tests/image/python-baseline.Dockerfile (Flask +
   gunicorn on the same Debian base).
4. Run with --read-only, all capabilities dropped and no-new-privileges, the
   image's own user, published on a 127.0.0.1 port podman picks: /livez,
   /healthz, /metrics, one legacy round trip, JSON log lines, then SIGTERM
   while a request is in flight: /healthz turns 503, the request completes,
   and the relay exits 0 within RELAY_GRACEFUL_TIMEOUT.

Prints timings as `info` lines and ends with `N passed, N failed`.
Environment: TP_IMAGE_CONTEXT (build context, default the source tree),
TP_IMAGE_MAX_MB (size budget, default 30), TP_TIMEOUT_SCALE.
"""
import json
import os
import re
import socket
import subprocess
import sys
import tarfile
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import imagelib as L  # noqa: E402

R = L.Results()
IMAGE = "localhost/tokenplace-relay:ctest"
PY_IMAGE = "localhost/tokenplace-relay-python-baseline:ctest"
BASE_REF = "docker.io/library/debian:bookworm-slim"
CONTEXT = os.environ.get("TP_IMAGE_CONTEXT", L.ROOT)
MAX_MB = float(os.environ.get("TP_IMAGE_MAX_MB", "30"))
GRACE = 10                      # RELAY_GRACEFUL_TIMEOUT given to the container
ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine,
                                                   os.uname().machine)


def revision():
    p = subprocess.run(["git", "rev-parse", "HEAD"], cwd=L.ROOT,
                       capture_output=True, text=True, timeout=30)
    return p.stdout.strip() if p.returncode == 0 else "unknown"


def build(rev):
    L.run([os.path.join(L.HERE, "base-image.sh"), ARCH], timeout=1800)
    p = L.run(["podman", "build", "--pull=never", "--network=host",
               "--platform", f"linux/{ARCH}",
               "--build-arg", f"REVISION={rev}",
               "--build-arg", "VERSION=0.0.0-ctest",
               "-f", os.path.join(CONTEXT, "Dockerfile"),
               "-t", IMAGE, CONTEXT], timeout=1800, check=False)
    if p.returncode != 0:
        print(p.stdout[-6000:])
        print(p.stderr[-3000:])
    return p.returncode == 0


def static_checks(rev):
    with open(os.path.join(CONTEXT, "Dockerfile"), encoding="utf-8") as f:
        lines = [ln.strip() for ln in f]
    stages = [ln for ln in lines if ln.upper().startswith("FROM ")]
    R.check("Dockerfile has no `# syntax=` line (BuildKit would fetch a "
            "frontend)", not any(re.match(r"#\s*syntax\s*=", ln, re.I)
                                 for ln in lines))
    R.check("Dockerfile is multi-stage with an empty runtime base",
            len(stages) >= 2 and stages[-1].split()[1] == "scratch",
            str(stages))
    info = json.loads(L.run(["podman", "image", "inspect", IMAGE]).stdout)[0]
    cfg = info.get("Config", {})
    user = cfg.get("User", "")
    uid = user.split(":")[0]
    R.check(f"USER is a numeric non-root uid ({user})",
            uid.isdigit() and int(uid) != 0)
    R.check("EXPOSE 5010/tcp", "5010/tcp" in (cfg.get("ExposedPorts") or {}),
            str(cfg.get("ExposedPorts")))
    env = dict(e.split("=", 1) for e in cfg.get("Env") or [])
    R.check("ENV RELAY_HOST=0.0.0.0 and RELAY_PORT=5010",
            env.get("RELAY_HOST") == "0.0.0.0" and env.get("RELAY_PORT") == "5010",
            str(env))
    labels = cfg.get("Labels") or {}
    R.check("OCI labels source, revision, version",
            labels.get("org.opencontainers.image.source", "").startswith("https://")
            and labels.get("org.opencontainers.image.revision") == rev
            and labels.get("org.opencontainers.image.version") == "0.0.0-ctest",
            str(labels))
    R.check("entrypoint is the relay",
            cfg.get("Entrypoint") == ["/usr/local/bin/tokenplace-relay"],
            str(cfg.get("Entrypoint")))
    R.check(f"image built for linux/{ARCH}",
            info.get("Architecture") == ARCH and info.get("Os") == "linux",
            f'{info.get("Os")}/{info.get("Architecture")}')
    size_mb = info["Size"] / 1e6
    L.log(f"image size {IMAGE}: {size_mb:.1f} MB ({info['Size']} bytes)")
    R.check(f"image size {size_mb:.1f} MB within the {MAX_MB:.0f} MB budget",
            size_mb <= MAX_MB)
    py = L.timed("python baseline build", python_baseline)
    if R.check("python baseline image built", py is not None):
        base = json.loads(L.run(["podman", "image", "inspect",
                                 BASE_REF]).stdout)[0]["Size"]
        L.log(f"image size python baseline: {py / 1e6:.1f} MB "
              f"(base {base / 1e6:.1f} MB + python {(py - base) / 1e6:.1f} MB)")
        R.check(f"relay image ({size_mb:.1f} MB) at most a fifth of the "
                f"Python equivalent ({py / 1e6:.1f} MB)", info["Size"] * 5 <= py)

    # What is inside: the relay, its libraries, and a few data files only.
    ctr = L.run(["podman", "create", IMAGE]).stdout.strip()
    try:
        with tempfile.TemporaryDirectory(prefix="tp-image-fs-") as d:
            tar_path = os.path.join(d, "fs.tar")
            L.run(["podman", "export", "-o", tar_path, ctr])
            with tarfile.open(tar_path) as t:
                files = sorted(m.name.lstrip("./") for m in t.getmembers()
                               if m.isfile() or m.issym())
    finally:
        L.run(["podman", "rm", "-f", ctr], check=False)
    allowed_data = {"etc/passwd", "etc/group", "etc/nsswitch.conf",
                    "etc/ssl/certs/ca-certificates.crt",
                    "usr/local/bin/tokenplace-relay"}
    extra = [f for f in files if f not in allowed_data
             and not (f.startswith(("lib/", "lib64/", "usr/lib/", "usr/lib64/"))
                      and ".so" in f)]
    R.check(f"filesystem holds only the relay, {len(files) - len(allowed_data)} "
            "shared libraries and account/CA files", not extra, str(extra))
    R.check("no shell in the image", "bin/sh" not in files
            and "usr/bin/sh" not in files)


def python_baseline():
    """Size in bytes of the Flask + gunicorn yardstick image, or None."""
    p = L.run(["podman", "build", "--pull=never", "--network=host",
               "-f", os.path.join(L.HERE, "python-baseline.Dockerfile"),
               "-t", PY_IMAGE, L.HERE], timeout=1800, check=False)
    if p.returncode != 0:
        print(p.stdout[-3000:] + p.stderr[-2000:])
        return None
    return json.loads(L.run(["podman", "image", "inspect",
                             PY_IMAGE]).stdout)[0]["Size"]


def wait_listening(port):
    return L.wait_for(lambda: L.http("GET", f"http://127.0.0.1:{port}/livez",
                                     timeout=2)[0] == 200, 60)


def post(port, path, body):
    status, _h, raw = L.http("POST", f"http://127.0.0.1:{port}{path}", body)
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw


def legacy_round_trip(port):
    n = "legacy round trip"
    status, body = post(port, "/sink", {"server_public_key": "K"})
    R.check(f"{n}: POST /sink registers the node",
            status == 200 and isinstance(body, dict)
            and body.get("next_ping_in_x_seconds") == 10, f"{status} {body}")
    request = {"server_public_key": "K", "client_public_key": "C",
               "chat_history": "x", "cipherkey": "y", "iv": "z"}
    status, body = post(port, "/faucet", request)
    R.check(f"{n}: POST /faucet queues the request",
            status == 200 and body == {"message": "Request received"},
            f"{status} {body}")
    status, body = post(port, "/sink", {"server_public_key": "K"})
    got = {k: body.get(k) for k in ("client_public_key", "chat_history",
                                    "cipherkey", "iv")} \
        if isinstance(body, dict) else body
    R.check(f"{n}: POST /sink hands the request to the node",
            status == 200 and got == {"client_public_key": "C",
                                      "chat_history": "x", "cipherkey": "y",
                                      "iv": "z"}, f"{status} {body}")
    status, body = post(port, "/source", {"client_public_key": "C",
                                          "chat_history": "r",
                                          "cipherkey": "k", "iv": "i"})
    R.check(f"{n}: POST /source stores the response", status == 200,
            f"{status} {body}")
    status, body = post(port, "/retrieve", {"client_public_key": "C"})
    R.check(f"{n}: POST /retrieve returns it to the client",
            status == 200 and body == {"chat_history": "r", "cipherkey": "k",
                                       "iv": "i"}, f"{status} {body}")


class SlowRequest:
    """A POST whose body arrives in two parts, to hold a request in flight."""

    def __init__(self, port):
        self.body = json.dumps({"client_public_key": "nobody"}).encode()
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.sendall(b"POST /retrieve HTTP/1.1\r\nHost: relay\r\n"
                          b"Content-Type: application/json\r\n"
                          b"Connection: close\r\n"
                          + f"Content-Length: {len(self.body)}\r\n\r\n".encode()
                          + self.body[:5])

    def finish(self):
        self.sock.sendall(self.body[5:])
        chunks = []
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        self.sock.close()
        return b"".join(chunks).decode(errors="replace")


def in_flight(port):
    """tokenplace_relay_http_in_flight_requests, this scrape included."""
    status, _h, body = L.http("GET", f"http://127.0.0.1:{port}/metrics")
    for line in body.decode(errors="replace").splitlines():
        if line.startswith("tokenplace_relay_http_in_flight_requests"):
            return float(line.split()[-1])
    return -1


def state(name):
    p = L.run(["podman", "inspect", "--format",
               "{{.State.Status}} {{.State.ExitCode}}", name], check=False)
    return p.stdout.split() if p.returncode == 0 else ["gone", "-1"]


FIXTURE = os.path.join(L.ROOT, "tests", "fixtures", "upstream_server.py")


def forward_checks():
    """Forwarding from the scratch image: libcurl is dlopen()ed on the first
    forwarded request, so the image must carry it and its libraries although
    ldd of the binary does not list them. The relay shares the host's
    network here so that it reaches the fixture upstream on 127.0.0.1; the
    upstream is named "localhost" so that name resolution inside the image
    (nsswitch, /etc/hosts) is exercised too."""
    name = f"tp-image-fwd-{os.getpid()}"
    up = subprocess.Popen(["/usr/bin/python3", "-B", FIXTURE, "--host",
                           "127.0.0.1", "--port", "0"],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        up_port = json.loads(up.stdout.readline())["port"]
        L.run(["podman", "rm", "-f", name], check=False)
        L.run(["podman", "run", "-d", "--name", name, "--read-only",
               "--cap-drop", "ALL", "--network", "host",
               "-e", "RELAY_HOST=127.0.0.1", "-e", "RELAY_PORT=0",
               "-e", "RELAY_UPSTREAM_HEALTH_INTERVAL_MS=200",
               "-e", f"TOKENPLACE_RELAY_UPSTREAM_URL=http://localhost:{up_port}",
               IMAGE])

        def startup_port():
            logs = L.run(["podman", "logs", name], check=False).stdout
            for line in logs.splitlines():
                if '"relay.startup"' in line:
                    return int(json.loads(line)["port"])
            return None

        port = L.wait_for(startup_port, 20)
        if not R.check("relay with host networking started (port 0, read "
                       "back from relay.startup)", port,
                       L.run(["podman", "logs", name], check=False).stdout[-1500:]):
            return

        def upstream_state():
            try:
                body = L.http("GET", f"http://127.0.0.1:{port}/healthz",
                              timeout=2)[2]
                return json.loads(body)["upstreamHealth"]["upstream"]
            except (OSError, ValueError, KeyError, TypeError):
                return None

        up_seen = L.wait_for(lambda: upstream_state() == "up", 20)
        R.check("health check of an http:// upstream by name reports up "
                "(plain socket, no libcurl)", up_seen,
                L.run(["podman", "logs", name], check=False).stdout[-1500:])
        status, _h, body = L.http("POST",
                                  f"http://127.0.0.1:{port}/v1/chat/completions",
                                  body={"model": "m", "messages": []})
        try:
            echo = json.loads(body)
        except ValueError:
            echo = {}
        R.check("POST /v1/chat/completions is forwarded (libcurl loads in the "
                "image)", status == 200 and echo.get("path") ==
                "/v1/chat/completions", f"{status} {body[:300]!r}")
        logs = L.run(["podman", "logs", name], check=False).stdout
        R.check("the relay logged upstream.libcurl_loaded",
                '"upstream.libcurl_loaded"' in logs, logs[-1500:])
    finally:
        L.run(["podman", "rm", "-f", "-t", "0", name], check=False)
        up.terminate()
        up.wait(timeout=10)
        up.stdout.close()


def run_checks():
    name = f"tp-image-test-{os.getpid()}"
    L.run(["podman", "rm", "-f", name], check=False)
    try:
        t0 = time.monotonic()
        L.run(["podman", "run", "-d", "--name", name, "--read-only",
               "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
               "--pids-limit", "200", "--memory", "256m",
               "-e", f"RELAY_GRACEFUL_TIMEOUT={GRACE}",
               "-p", "127.0.0.1::5010", IMAGE])
        mapping = L.run(["podman", "port", name, "5010/tcp"]).stdout.split()[0]
        port = int(mapping.rsplit(":", 1)[1])
        up = wait_listening(port)
        L.log(f"time container start to /livez 200: {time.monotonic() - t0:.1f} s"
              f" (127.0.0.1:{port})")
        if not R.check("relay answers on the published loopback port", up,
                       L.run(["podman", "logs", name], check=False).stdout[-2000:]):
            return
        insp = json.loads(L.run(["podman", "inspect", name]).stdout)[0]
        R.check("container root filesystem is read-only",
                insp["HostConfig"].get("ReadonlyRootfs") is True)
        pid = insp["State"]["Pid"]
        with open(f"/proc/{pid}/status", encoding="utf-8") as f:
            uids = next(line.split()[1:] for line in f if line.startswith("Uid:"))
        R.check(f"relay process runs as uid {uids[0]} (not root)",
                all(u == "65532" for u in uids), str(uids))

        status, hdrs, body = L.http("GET", f"http://127.0.0.1:{port}/livez")
        R.check("GET /livez -> 200 {\"status\":\"alive\"}",
                status == 200 and json.loads(body) == {"status": "alive"},
                f"{status} {body[:200]!r}")
        status, hdrs, body = L.http("GET", f"http://127.0.0.1:{port}/healthz")
        try:
            health = json.loads(body)
        except ValueError:
            health = None
        R.check("GET /healthz -> 200 JSON, status ok",
                status == 200 and isinstance(health, dict)
                and health.get("status") == "ok", f"{status} {body[:300]!r}")
        legacy_round_trip(port)
        status, hdrs, body = L.http("GET", f"http://127.0.0.1:{port}/metrics")
        ctype = {k.lower(): v for k, v in hdrs.items()}.get("content-type", "")
        text = body.decode(errors="replace")
        R.check("GET /metrics -> 200 Prometheus text",
                status == 200 and ctype.startswith("text/plain")
                and "# TYPE tokenplace_relay_requests_total counter" in text,
                f"{status} {ctype} {text[:300]!r}")
        R.check("/metrics counted the legacy requests",
                'endpoint="faucet"' in text or "/faucet" in text, text[:2000])

        # SIGTERM with a request in flight.
        slow = SlowRequest(port)
        R.check("the slow request is in flight (in-flight gauge counts it)",
                L.wait_for(lambda: in_flight(port) >= 2, 10))
        t_term = time.monotonic()
        L.run(["podman", "kill", "--signal", "TERM", name])
        draining = L.wait_for(lambda: L.http(
            "GET", f"http://127.0.0.1:{port}/healthz", timeout=2)[0] == 503, 5)
        R.check("/healthz answers 503 while draining", draining)
        live = L.http("GET", f"http://127.0.0.1:{port}/livez", timeout=2)[0]
        R.check("/livez still 200 while draining", live == 200, str(live))
        reply = slow.finish()
        # Answered by its handler, not refused by the drain (which would
        # say "shutting down"); the handler's own answer is its business.
        R.check("the in-flight request is served, not refused, during the "
                "drain", reply.startswith("HTTP/1.1 ")
                and "shutting" not in reply.lower(), reply[:400])
        exited = L.wait_for(lambda: state(name)[0] in ("exited", "stopped",
                                                       "gone"), GRACE + 5)
        took = time.monotonic() - t_term
        st = state(name)
        L.log(f"time SIGTERM to exit: {took:.1f} s")
        R.check(f"SIGTERM: exit code 0 within the {GRACE} s grace period",
                exited and st[1] == "0" and took <= GRACE, f"{st} after {took:.1f} s")

        logs = L.run(["podman", "logs", name], check=False)
        lines = [ln for ln in logs.stdout.splitlines() if ln.strip()]
        bad = []
        for ln in lines:
            try:
                rec = json.loads(ln)
                if not all(k in rec for k in ("timestamp", "level", "logger",
                                              "message")):
                    bad.append(ln)
            except ValueError:
                bad.append(ln)
        R.check(f"stdout is JSON log lines ({len(lines)} lines)",
                lines and not bad, str(bad[:3]))
        R.check("logs record start-up and shutdown",
                any('"relay.startup"' in ln for ln in lines)
                and any('"relay.shutdown"' in ln for ln in lines),
                "\n".join(lines[-5:]))
    finally:
        L.run(["podman", "rm", "-f", "-t", "0", name], check=False)


def main():
    L.require_root()
    rev = revision()
    t0 = time.monotonic()
    ok = L.timed("base image + podman build", lambda: build(rev))
    if not R.check(f"podman build of the Dockerfile (linux/{ARCH})", ok):
        return R.summary()
    static_checks(rev)
    try:
        run_checks()
        forward_checks()
    except (RuntimeError, subprocess.TimeoutExpired, OSError) as e:
        R.check("container checks ran to the end", False, str(e))
    L.log(f"time image test total: {time.monotonic() - t0:.1f} s")
    return R.summary()


if __name__ == "__main__":
    sys.exit(main())
