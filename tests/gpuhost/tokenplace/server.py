"""A stand-in for token.place's compute node server.py, written for the
tests (standard library only, no token.place code).

Its command line has exactly token.place's options:

  --server_host HOST   interface of its own HTTP app (default 127.0.0.1)
  --server_port PORT   its port (default 3000)
  --relay_url URL      the relay, scheme and host only (default http://localhost)
  --relay_port PORT    the relay's port (default 5000)
  --use_mock_llm       no model, canned answers

Like a legacy (c42e76c0) compute node it polls POST
<relay_url>:<relay_port>/sink with its public key, sending the
X-Relay-Server-Token header when TOKEN_PLACE_RELAY_SERVER_TOKEN is in its
environment, and sleeps the reply's next_ping_in_x_seconds between polls.
Jobs are not decrypted (the tests only look at registration). It serves
GET /health. It never prints the token; it prints whether it has one and
what the relay answered.

Like token.place's config.py it takes its environment from TOKEN_PLACE_ENV
(default "development") and, like its server.py, would run Flask with
debug = not production: it prints which ("tp-server: environment ...")."""
import argparse
import http.server
import json
import os
import secrets
import sys
import threading
import urllib.error
import urllib.request

TOKEN_ENV = "TOKEN_PLACE_RELAY_SERVER_TOKEN"
TOKEN_HEADER = "X-Relay-Server-Token"


class Health(http.server.BaseHTTPRequestHandler):
    state = {"polls": 0, "last_status": None}

    def do_GET(self):
        if self.path != "/health":
            self.send_error(404)
            return
        body = json.dumps({"status": "ok", "relay_polls": self.state["polls"],
                           "last_relay_status": self.state["last_status"]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        pass


def poll_once(url, key, token):
    """One POST /sink: returns (HTTP status, reply object or None)."""
    body = json.dumps({"server_public_key": key}).encode()
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    if token:
        req.add_header(TOKEN_HEADER, token)
    # Straight to the relay, whatever proxy the environment names.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, None
    except (OSError, ValueError) as e:
        return None, str(e)


def poll_loop(url, key, token, stop):
    while not stop.is_set():
        status, reply = poll_once(url, key, token)
        Health.state["polls"] += 1
        if status != Health.state["last_status"]:
            print("tp-server: POST /sink -> %s" % (status if status else reply))
            sys.stdout.flush()
        Health.state["last_status"] = status
        wait = 10
        if isinstance(reply, dict) and isinstance(reply.get("next_ping_in_x_seconds"),
                                                  (int, float)):
            wait = max(0.1, float(reply["next_ping_in_x_seconds"]))
        stop.wait(wait)


def main():
    ap = argparse.ArgumentParser(description="token.place compute node (test stand-in)")
    ap.add_argument("--server_host", default="127.0.0.1",
                    help="interface for its own HTTP app")
    ap.add_argument("--server_port", type=int, default=3000, help="its port")
    ap.add_argument("--relay_url", default="http://localhost",
                    help="the relay it polls, scheme and host only")
    ap.add_argument("--relay_port", type=int, default=5000, help="the relay's port")
    ap.add_argument("--use_mock_llm", action="store_true",
                    help="no model, canned answers")
    a = ap.parse_args()

    env = os.environ.get("TOKEN_PLACE_ENV", "development")
    print("tp-server: environment %s, debug %s"
          % (env, "off" if env == "production" else "on"))
    token = os.environ.get(TOKEN_ENV, "")
    key = "tp-server-test-key-" + secrets.token_hex(16)
    sink = "%s:%d/sink" % (a.relay_url.rstrip("/"), a.relay_port)
    print("tp-server: public key %s" % key)
    print("tp-server: relay %s, registration token %s" % (sink, "present" if token else "absent"))
    sys.stdout.flush()

    srv = http.server.ThreadingHTTPServer((a.server_host, a.server_port), Health)
    srv.daemon_threads = True
    stop = threading.Event()
    poller = threading.Thread(target=poll_loop, args=(sink, key, token, stop), daemon=True)
    poller.start()
    print("tp-server: listening on %s:%d" % (a.server_host, srv.server_address[1]))
    sys.stdout.flush()
    try:
        srv.serve_forever(poll_interval=0.05)
    except KeyboardInterrupt:
        print("tp-server: KeyboardInterrupt, shutting down")
    finally:
        stop.set()
        srv.server_close()
        sys.stdout.flush()


if __name__ == "__main__":
    main()
