"""Stand-in for token.place's server.py (standard library only).

Serves GET /health on --host/--port and behaves as a test asks:
  --mode normal            serve until interrupted (KeyboardInterrupt / SystemExit)
  --mode crash N           the first N runs exit with code 3 after --crash-after s;
                           later runs serve normally (runs counted in --state)
  --mode ignore-interrupt  swallow KeyboardInterrupt and SystemExit: only a kill ends it
  --mode exit CODE         exit with CODE at once (sys.exit)
  --spam N                 print N lines of 100 bytes at start (log rotation)
"""
import argparse
import http.server
import json
import os
import signal
import sys
import threading
import time


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path != "/health":
            self.send_error(404)
            return
        body = json.dumps({"status": "ok", "pid": os.getpid()}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        pass


def count_run(state):
    path = os.path.join(state, "runs")
    n = 0
    if os.path.exists(path):
        with open(path) as f:
            n = int(f.read() or "0")
    n += 1
    with open(path, "w") as f:
        f.write(str(n))
    return n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--mode", default="normal")
    ap.add_argument("--n", type=int, default=0)
    ap.add_argument("--crash-after", type=float, default=0.2)
    ap.add_argument("--state", default=".")
    ap.add_argument("--spam", type=int, default=0)
    a = ap.parse_args()

    run = count_run(a.state)
    print("fixture: run=%d pid=%d mode=%s" % (run, os.getpid(), a.mode))
    print("fixture: sys.executable=%s" % sys.executable)
    print("fixture: sys.prefix=%s" % sys.prefix)
    print("fixture: cwd=%s" % os.getcwd())
    print("fixture: env GPUHOST_FIXTURE_ENV=%s" % os.environ.get("GPUHOST_FIXTURE_ENV"))
    for i in range(a.spam):
        print("spam %06d %s" % (i, "x" * 88))
    sys.stdout.flush()

    if a.mode == "exit":
        print("fixture: exiting with %d" % a.n, file=sys.stderr)
        sys.exit(a.n)
    if a.mode == "crash" and run <= a.n:
        time.sleep(a.crash_after)
        print("fixture: crashing on run %d" % run, file=sys.stderr)
        sys.stderr.flush()
        os._exit(3)

    srv = http.server.ThreadingHTTPServer((a.host, a.port), Handler)
    srv.daemon_threads = True
    print("fixture: listening on %s:%d" % (a.host, srv.server_address[1]))
    sys.stdout.flush()
    if a.mode == "ignore-interrupt":
        # Like a script that installed its own SIGINT policy and swallows
        # SystemExit: only a kill ends it.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        print("fixture: ignoring KeyboardInterrupt (SIGINT set to SIG_IGN)")
        sys.stdout.flush()
        t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        t.start()
        while True:
            try:
                try:
                    time.sleep(0.05)
                except BaseException as e:  # noqa: B036 - that is the point
                    print("fixture: ignoring %s" % type(e).__name__)
                    sys.stdout.flush()
            except BaseException:  # noqa: B036 - one raised inside the handler
                pass
    try:
        srv.serve_forever(poll_interval=0.05)
    except KeyboardInterrupt:
        print("fixture: KeyboardInterrupt, shutting down")
    finally:
        srv.server_close()
        sys.stdout.flush()


if __name__ == "__main__":
    main()
