"""tokenplace-gpuhost running a token.place-like server.py against a real
tokenplace-relay started by the test: the default python.args, relay.url
and relay.token reach the node (it registers; /next_server returns its
key), the token stays out of every log and of `config`/`status`/`check`
output, and `check` catches a command line the script does not accept.

The node is tests/gpuhost/tokenplace/server.py (standard library only; its
options are exactly token.place's). Ports are ephemeral, every wait polls
with a deadline, every process started is stopped in tearDown."""
import json
import os
import signal
import stat
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpuhost_fixture import (HERE, VenvCase, free_port, http_health, read_log,  # noqa: E402
                             read_status, wait_for)
from relaytest import Relay  # noqa: E402

BIN = os.environ["GPUHOST_BIN"]
CHECKOUT = os.path.join(HERE, "tokenplace")
TOKEN = "tp-reg-T0KEN-4f9c2e81d7"


def cli(*args, timeout=120):
    return subprocess.run([BIN] + list(args), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def closed_port():
    """A loopback port nothing listens on (bound, then closed)."""
    return free_port()


class GpuhostRelay(VenvCase):
    def config(self, relay_url=None, token=None, args=None, checks=None,
               checkout=CHECKOUT, mode=0o600):
        lines = ["[python]", "checkout = %s" % checkout, "venv = %s" % self.venv]
        if args is not None:
            lines.append("args = %s" % args)
        lines += ["[network]", "host = 127.0.0.1", "port = %d" % self.port,
                  "[relay]"]
        if relay_url is not None:
            lines.append("url = %s" % relay_url)
        if token is not None:
            lines.append("token = %s" % token)
        lines += ["[checks]", "dns = off", "firewall = off"]
        for k, v in (checks or {}).items():
            lines.append("%s = %s" % (k, v))
        lines += ["[service]", "name = gpuhost-relay-test", "stop_grace = 5",
                  "escalate_after = 2", "[health]", "interval = 0.1",
                  "timeout = 1", "[log]", "dir = %s" % os.path.join(self.dir, "logs"),
                  "console = false"]
        path = os.path.join(self.dir, "gpuhost.ini")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        os.chmod(path, mode)
        return path

    def run_fg(self, cfg):
        p = subprocess.Popen([BIN, "--config", cfg, "run"], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             start_new_session=True)
        self.procs.append(p)
        return p

    def check(self, cfg, only):
        r = cli("--config", cfg, "check", "--json", "--only", only)
        return r.returncode, json.loads(r.stdout)["checks"][0]

    def node_key(self):
        for line in read_log(self.dir, "server.log").splitlines():
            if line.startswith("tp-server: public key "):
                return line.split()[-1]
        return None

    # ------------------------------------------------------------------
    def test_node_registers_with_the_token_which_stays_secret(self):
        with Relay(env={"TOKEN_PLACE_RELAY_SERVER_TOKEN": TOKEN}) as relay:
            url = "http://127.0.0.1:%d" % relay.port
            cfg = self.config(relay_url=url, token=TOKEN)

            # Defaults: token.place's options with the relay split in two.
            rc, c = self.check(cfg, "args")
            self.assertEqual((rc, c["outcome"]), (0, "pass"), c["message"])
            self.assertEqual(c["details"]["args"],
                             ["--server_host", "127.0.0.1", "--server_port",
                              str(self.port), "--relay_url", "http://127.0.0.1",
                              "--relay_port", str(relay.port)])
            rc, c = self.check(cfg, "relay")
            self.assertEqual((rc, c["outcome"]), (0, "pass"), c["message"])
            self.assertEqual(c["details"]["probe"], "/livez")
            self.assertEqual(c["details"]["token"], "set")

            p = self.run_fg(cfg)
            key = wait_for(self.node_key, 60, "the node's key in server.log")
            # The relay requires the token: registration proves it arrived.
            got = wait_for(lambda: relay.get_json("/next_server")[1]
                           .get("server_public_key"), 60, "/next_server to name the node")
            self.assertEqual(got, key)
            wait_for(lambda: read_status(self.dir).get("health") == "ready", 60,
                     "health=ready")
            self.assertTrue(http_health(self.port))
            self.assertIn("tp-server: POST /sink -> 200", read_log(self.dir, "server.log"))
            self.assertIn("registration token present", read_log(self.dir, "server.log"))

            # Set in the worker's environment after exec (so /proc/*/environ
            # cannot show it), never on a command line.
            wp = int(read_status(self.dir)["worker_pid"])
            for pid in (p.pid, wp):
                with open("/proc/%d/cmdline" % pid, "rb") as f:
                    self.assertNotIn(TOKEN.encode(), f.read())

            outputs = {}
            for args in (("config",), ("status",), ("check",), ("check", "--json"),
                         ("install", "--print")):
                r = cli("--config", cfg, *args)
                outputs[" ".join(args)] = r.stdout + r.stderr
            self.assertIn("relay.token                      = <set>", outputs["config"])
            self.assertIn("state:      running", outputs["status"])
            p.send_signal(signal.SIGTERM)
            self.assertEqual(p.wait(timeout=30), 0)
            outputs["run"] = p.stdout.read().decode("utf-8", "replace")
            relay_logs = "".join(relay.raw_logs()) + relay.stderr_text()
        logs = os.path.join(self.dir, "logs")
        for name in sorted(os.listdir(logs)):
            with open(os.path.join(logs, name), encoding="utf-8", errors="replace") as f:
                self.assertNotIn(TOKEN, f.read(), "token in logs/%s" % name)
        for what, text in outputs.items():
            self.assertNotIn(TOKEN, text, "token in `%s` output" % what)
        self.assertNotIn(TOKEN, relay_logs)

    def test_wrong_token_is_refused_by_the_relay(self):
        with Relay(env={"TOKEN_PLACE_RELAY_SERVER_TOKEN": TOKEN}) as relay:
            cfg = self.config(relay_url="http://127.0.0.1:%d" % relay.port,
                              token="not-the-token")
            p = self.run_fg(cfg)
            wait_for(lambda: "tp-server: POST /sink -> 401"
                     in read_log(self.dir, "server.log"), 60, "a 401 from /sink")
            status, body = relay.get_json("/next_server")
            self.assertNotIn("server_public_key", body)
            p.send_signal(signal.SIGTERM)
            self.assertEqual(p.wait(timeout=30), 0)

    def test_server_output_containing_the_token_is_redacted(self):
        # A script that prints its environment must not leak the token.
        checkout = os.path.join(self.dir, "leaky")
        os.makedirs(checkout)
        with open(os.path.join(checkout, "server.py"), "w") as f:
            f.write("import argparse, os, sys, time\n"
                    "ap = argparse.ArgumentParser()\n"
                    "ap.add_argument('--server_host'); ap.add_argument('--server_port')\n"
                    "ap.add_argument('--relay_url'); ap.add_argument('--relay_port')\n"
                    "ap.parse_args()\n"
                    "print('env token:', os.environ.get('TOKEN_PLACE_RELAY_SERVER_TOKEN'))\n"
                    "sys.stdout.flush()\n"
                    "time.sleep(600)\n")
        cfg = self.config(relay_url="http://127.0.0.1:%d" % closed_port(), token=TOKEN,
                          checkout=checkout)
        p = self.run_fg(cfg)
        wait_for(lambda: "env token:" in read_log(self.dir, "server.log"), 60,
                 "the script's line in server.log")
        log = read_log(self.dir, "server.log")
        self.assertIn("env token: <relay.token>", log)
        self.assertNotIn(TOKEN, log)
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(timeout=30), 0)
        self.assertNotIn(TOKEN, p.stdout.read().decode("utf-8", "replace"))

    def test_args_check_catches_the_deployment_guide_line(self):
        cfg = self.config(relay_url="http://127.0.0.1:%d" % closed_port(),
                          args="--host {host} --port {port}")
        r = cli("--config", cfg, "check", "--only", "args")
        self.assertEqual(r.returncode, 2, r.stdout)
        self.assertIn("server.py does not accept --host, --port", r.stdout)
        self.assertIn("it offers: --server_host, --server_port, --relay_url, "
                      "--relay_port, --use_mock_llm", r.stdout)
        rc, c = self.check(cfg, "args")
        self.assertEqual((rc, c["outcome"]), (2, "fail"))
        self.assertEqual(c["details"]["missing"], ["--host", "--port"])
        self.assertEqual(c["details"]["help_exit"], "exit code 0")
        self.assertIn("--server_host", c["details"]["offered"])
        self.assertIn("usage: server.py", c["details"]["help_output"])
        # The whole report fails, and `run` refuses to start instead of
        # restarting an argparse error for ever.
        r = cli("--config", cfg, "check", "--json")
        rep = json.loads(r.stdout)
        self.assertEqual((r.returncode, rep["result"]), (2, "fail"))
        self.assertIn("args", [c["name"] for c in rep["checks"]])
        r = cli("--config", cfg, "run")
        self.assertEqual(r.returncode, 10)
        self.assertIn("preflight_failed", read_log(self.dir))
        self.assertNotIn("worker_started", read_log(self.dir))
        # The same checkout with the default args passes.
        cfg = self.config(relay_url="http://127.0.0.1:%d" % closed_port())
        rc, c = self.check(cfg, "args")
        self.assertEqual((rc, c["outcome"]), (0, "pass"), c["message"])
        self.assertEqual(c["details"]["missing"], [])
        # With the check at warn, the wrong line only warns.
        cfg = self.config(args="--host {host} --port {port}", checks={"args": "warn"})
        rc, c = self.check(cfg, "args")
        self.assertEqual((rc, c["outcome"]), (1, "warn"))

    def test_without_relay_url_the_default_args_and_a_warning(self):
        cfg = self.config()
        rc, c = self.check(cfg, "args")
        self.assertEqual((rc, c["outcome"]), (0, "pass"), c["message"])
        self.assertEqual(c["details"]["args"], ["--server_host", "127.0.0.1",
                                                "--server_port", str(self.port)])
        rc, c = self.check(cfg, "relay")
        self.assertEqual((rc, c["outcome"]), (1, "warn"))
        self.assertIn("relay.url is not set: server.py will poll its own default "
                      "relay (token.place's public one)", c["message"])
        cfg = self.config(args="--relay_url {relay_url}")
        r = cli("--config", cfg, "check")
        self.assertEqual(r.returncode, 78)
        self.assertIn("uses {relay_url}/{relay_port} but [relay] url is not set", r.stderr)

    def test_unreachable_relay_warns(self):
        port = closed_port()
        cfg = self.config(relay_url="http://127.0.0.1:%d" % port)
        rc, c = self.check(cfg, "relay")
        self.assertEqual((rc, c["outcome"]), (1, "warn"))
        self.assertIn("relay http://127.0.0.1:%d is not reachable from here" % port,
                      c["message"])
        self.assertFalse(c["details"]["reachable"])
        cfg = self.config(relay_url="http://127.0.0.1:%d" % port,
                          checks={"relay": "fail"})
        self.assertEqual(self.check(cfg, "relay")[0], 2)

    def test_token_in_a_readable_config(self):
        cfg = self.config(relay_url="http://127.0.0.1:%d" % closed_port(),
                          token=TOKEN, mode=0o644)
        rc, c = self.check(cfg, "relay")
        self.assertEqual(rc, 1)
        self.assertIn("holds relay.token but other users can read it (mode 644)",
                      c["message"])
        self.assertNotIn(TOKEN, json.dumps(c))
        units = os.path.join(self.dir, "units")
        os.makedirs(units)
        r = cli("--config", cfg, "install", "--unit-dir", units)
        if os.geteuid() == 0:
            self.assertEqual(r.returncode, 0, r.stderr)
            st = os.stat(cfg)
            self.assertEqual((st.st_uid, stat.S_IMODE(st.st_mode)), (0, 0o600))
            with open(os.path.join(units, "gpuhost-relay-test.service")) as f:
                self.assertNotIn(TOKEN, f.read())
            self.assertEqual(self.check(cfg, "relay")[0], 1)  # unreachable only
        else:
            self.assertEqual(r.returncode, 2)
            self.assertIn("sudo chmod 600 %s" % cfg, r.stderr)

    def test_script_without_usable_help_warns(self):
        checkout = os.path.join(self.dir, "other")
        os.makedirs(checkout)
        with open(os.path.join(checkout, "server.py"), "w") as f:
            f.write("import sys\nprint('no argparse here')\nsys.exit(3)\n")
        with open(os.path.join(checkout, "slow.py"), "w") as f:
            f.write("import time\ntime.sleep(600)\n")
        cfg = self.config(checkout=checkout)
        rc, c = self.check(cfg, "args")
        self.assertEqual((rc, c["outcome"]), (1, "warn"), c["message"])
        self.assertIn("server.py --help ended with exit code 3: it has no argparse help",
                      c["message"])
        self.assertIn("| no argparse here", c["message"])
        with open(cfg) as f:
            text = f.read().replace("[python]\n", "[python]\nscript = slow.py\n")
        with open(cfg, "w") as f:
            f.write(text.replace("[checks]\n", "[checks]\nargs_timeout = 1\n"))
        rc, c = self.check(cfg, "args")
        self.assertEqual((rc, c["outcome"]), (1, "warn"), c["message"])
        self.assertTrue(c["details"]["timed_out"])
        self.assertIn("did not finish within 1 s", c["message"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
