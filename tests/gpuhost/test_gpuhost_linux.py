"""tokenplace-gpuhost on Linux with the real embedding: Debian's
libpython3.11, a `python3 -m venv` venv and the stand-in server.py on an
ephemeral port. Every wait is a poll with a deadline."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpuhost_fixture import (HERE, VenvCase, events, http_health, pid_alive,  # noqa: E402
                             read_log, read_status, wait_for, write_config)

BIN = os.environ["GPUHOST_BIN"]
NSS = os.environ.get("TP_NSS_WRAPPER", "")


def cli(*args, env=None, timeout=60):
    return subprocess.run([BIN] + list(args), capture_output=True, text=True,
                          timeout=timeout, env=env, stdin=subprocess.DEVNULL)


class Gpuhost(VenvCase):
    def config(self, script_args="", extra=None, **kw):
        return write_config(self.dir, self.venv, self.port, script_args, extra, **kw)

    def run_fg(self, cfg):
        p = subprocess.Popen([BIN, "--config", cfg, "run"], stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
        self.procs.append(p)
        return p

    def wait_ready(self, timeout=30):
        wait_for(lambda: read_status(self.dir).get("health") == "ready", timeout,
                 "health=ready in the status file")

    def names(self):
        return [e.get("message") for e in events(self.dir)]

    # ------------------------------------------------------------------
    def test_version_and_help(self):
        r = cli("--version")
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout, r"^tokenplace-gpuhost \d+\.\d+\.\d+ \(")
        r = cli("--help")
        self.assertEqual(r.returncode, 0)
        for word in ("run", "check [--json]", "install", "firewall add|remove"):
            self.assertIn(word, r.stdout)
        r = cli("frobnicate", "--config", "/nonexistent.ini")
        self.assertEqual(r.returncode, 78)
        self.assertIn("cannot open config /nonexistent.ini", r.stderr)

    def test_start_healthy_stop_within_grace(self):
        cfg = self.config()
        p = self.run_fg(cfg)
        self.wait_ready()
        self.assertTrue(http_health(self.port))
        st = read_status(self.dir)
        self.assertEqual(st["state"], "running")
        out = read_log(self.dir, "server.log")
        # The embedded interpreter found the venv by argv[0] alone.
        self.assertIn("sys.executable=%s/bin/python" % self.venv, out)
        self.assertIn("sys.prefix=%s" % self.venv, out)
        self.assertIn("cwd=%s" % HERE, out)
        self.assertIn("env GPUHOST_FIXTURE_ENV=from-config", out)
        self.assertIn("Python 3.11", out)
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(timeout=20), 0)
        took = time.monotonic() - t0
        self.assertLess(took, 5.0, "stop took longer than the grace period")
        ev = {e["message"]: e for e in events(self.dir)}
        self.assertFalse(ev["worker_stopped"]["escalated"])
        self.assertFalse(ev["worker_stopped"]["killed"])
        self.assertIn("KeyboardInterrupt, shutting down",
                      read_log(self.dir, "server.log"))
        self.assertEqual(read_status(self.dir)["state"], "stopped")
        self.assertFalse(pid_alive(int(st["worker_pid"])))

    def test_crash_restart_with_backoff_then_healthy(self):
        cfg = self.config("--mode crash --n 2 --crash-after 0.1")
        p = self.run_fg(cfg)
        self.wait_ready(60)
        exits = [e for e in events(self.dir) if e["message"] == "worker_exited"]
        self.assertEqual(len(exits), 2)
        self.assertEqual([e["restart_in_ms"] for e in exits], [200, 400])
        self.assertEqual(exits[0]["exit"], "exit code 3")
        self.assertEqual(exits[0]["reason"], "the script exited on its own")
        st = read_status(self.dir)
        self.assertEqual(st["restarts"], "2")
        self.assertEqual(st["last_exit"], "exit code 3")
        self.assertTrue(http_health(self.port))
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(timeout=20), 0)

    def test_unhealthy_then_recovered(self):
        # The worker is frozen with SIGSTOP: probes time out, then resume.
        cfg = self.config(extra={"health": {"timeout": "0.3"}})
        p = self.run_fg(cfg)
        self.wait_ready()
        wp = int(read_status(self.dir)["worker_pid"])
        os.kill(wp, signal.SIGSTOP)
        try:
            wait_for(lambda: read_status(self.dir).get("health") == "unhealthy", 30,
                     "health=unhealthy")
        finally:
            os.kill(wp, signal.SIGCONT)
        self.wait_ready()
        self.assertEqual(read_status(self.dir)["health_reason"], "recovered")
        names = self.names()
        self.assertLess(names.index("server_unhealthy"), names.index("server_recovered"))
        r = cli("--config", cfg, "status")
        self.assertIn("health:     ready", r.stdout)
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(timeout=20), 0)

    def test_interrupt_ignored_escalation_then_kill(self):
        cfg = self.config("--mode ignore-interrupt",
                          {"service": {"stop_grace": "2", "escalate_after": "0.7"}})
        p = self.run_fg(cfg)
        self.wait_ready()
        wp = int(read_status(self.dir)["worker_pid"])
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(timeout=30), 0)
        took = time.monotonic() - t0
        self.assertGreaterEqual(took, 2.0)
        self.assertLess(took, 8.0)
        names = self.names()
        self.assertLess(names.index("worker_escalate"), names.index("worker_kill"))
        ev = {e["message"]: e for e in events(self.dir)}
        self.assertTrue(ev["worker_stopped"]["killed"])
        self.assertEqual(ev["worker_stopped"]["exit"], "signal 9 (Killed)")
        out = read_log(self.dir, "server.log")
        self.assertIn("ignoring KeyboardInterrupt", out)
        self.assertIn("ignoring SystemExit", out)
        self.assertFalse(pid_alive(wp))

    def test_script_exit_code_reported(self):
        cfg = self.config("--mode exit --n 7",
                          {"service": {"restart_backoff_initial": "5"}})
        p = self.run_fg(cfg)
        wait_for(lambda: "worker_exited" in self.names(), 30, "worker_exited")
        ev = [e for e in events(self.dir) if e["message"] == "worker_exited"][0]
        self.assertEqual(ev["exit"], "exit code 7")
        self.assertEqual(ev["level"], "ERROR")
        self.assertIn("fixture: exiting with 7", read_log(self.dir, "server.log"))
        # The status file follows the log line: poll, never read once.
        wait_for(lambda: read_status(self.dir).get("state") == "backoff", 10,
                 "state=backoff in the status file")
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(timeout=20), 0)

    def test_missing_venv_library_script_are_clear_errors(self):
        # Missing venv: check fails, run refuses to start.
        cfg = self.config(extra={"python": {"venv": os.path.join(self.dir, "novenv")}})
        r = cli("--config", cfg, "check")
        self.assertEqual(r.returncode, 2, r.stdout)
        self.assertIn("venv directory %s/novenv does not exist" % self.dir, r.stdout)
        r = cli("--config", cfg, "run", timeout=60)
        self.assertEqual(r.returncode, 10)
        self.assertIn("preflight_failed", read_log(self.dir))

        # pyvenv.cfg missing.
        fake = os.path.join(self.dir, "fakevenv")
        os.makedirs(os.path.join(fake, "bin"))
        cfg = self.config(extra={"python": {"venv": fake}})
        r = cli("--config", cfg, "check", "--only", "python")
        self.assertIn("pyvenv.cfg is missing", r.stdout)

        # A Python whose library does not exist: every path tried is listed.
        with open(os.path.join(fake, "pyvenv.cfg"), "w") as f:
            f.write("home = %s/nowhere/bin\nversion = 3.99.0\n" % self.dir)
        os.symlink("/usr/bin/python3", os.path.join(fake, "bin", "python"))
        r = cli("--config", cfg, "check", "--json", "--only", "python")
        self.assertEqual(r.returncode, 2)
        c = json.loads(r.stdout)["checks"][0]
        self.assertEqual(c["outcome"], "fail")
        self.assertIn("Python library not found; tried:", c["message"])
        self.assertIn("%s/nowhere/lib/libpython3.99.so.1.0" % self.dir, c["message"])
        self.assertIn("libpython3.99.so.1.0 (", c["message"])
        # With the check off the worker itself reports it, and run gives up.
        cfg = self.config(extra={"python": {"venv": fake},
                                 "checks": {"python": "off"}})
        r = cli("--config", cfg, "run", timeout=60)
        self.assertEqual(r.returncode, 11)
        self.assertIn("worker_setup_failed", read_log(self.dir))
        self.assertIn("Python library not found; tried:", read_log(self.dir, "server.log"))

        # Script missing.
        cfg = self.config(extra={"python": {"script": "no_such_server.py"}})
        r = cli("--config", cfg, "check", "--only", "python")
        self.assertEqual(r.returncode, 2)
        self.assertIn("script %s/no_such_server.py does not exist" % HERE, r.stdout)

    def test_port_in_use_names_the_owner(self):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(1)
        try:
            cfg = self.config()
            r = cli("--config", cfg, "check", "--json")
            self.assertEqual(r.returncode, 2)
            rep = json.loads(r.stdout)
            port = [c for c in rep["checks"] if c["name"] == "port"][0]
            self.assertEqual(port["outcome"], "fail")
            self.assertEqual(port["details"]["state"], "in-use")
            self.assertEqual(port["details"]["owner_pid"], os.getpid())
            self.assertIn("in use by pid %d" % os.getpid(), port["message"])
            cfg = self.config(extra={"checks": {"port": "warn"}})
            r = cli("--config", cfg, "check")
            self.assertEqual(r.returncode, 1)
        finally:
            s.close()

    @unittest.skipUnless(NSS, "libnss-wrapper not installed")
    def test_dns_checks(self):
        # Names come from an nss_wrapper hosts file; the unresolvable one has
        # an empty label so that the resolver fails without sending a query.
        cfg = self.config(extra={"network": {"dns_name": "no..such.gpuhost.test"},
                                 "checks": {"dns": "warn"}})
        r = cli("--config", cfg, "check", "--json", "--only", "dns")
        local = [a["address"] for a in json.loads(r.stdout)["checks"][0]["details"]["local"]]
        mine = [a for a in local if not a.startswith("127.") and a != "::1"
                and not a.startswith("fe80:")]
        hosts = os.path.join(self.dir, "hosts")
        with open(hosts, "w") as f:
            if mine:
                f.write("%s mine.gpuhost.test\n" % mine[0])
            f.write("127.0.1.1 loop.gpuhost.test\n192.0.2.99 other.gpuhost.test\n"
                    "169.254.9.9 ll.gpuhost.test\n")
        env = dict(os.environ, LD_PRELOAD=NSS, NSS_WRAPPER_HOSTS=hosts,
                   NSS_WRAPPER_PASSWD="/etc/passwd", NSS_WRAPPER_GROUP="/etc/group",
                   NSS_WRAPPER_DISABLE_DEEPBIND="1",
                   ASAN_OPTIONS="verify_asan_link_order=0")

        def check(name, mode="fail"):
            c = self.config(extra={"network": {"dns_name": name},
                                   "checks": {"dns": mode}})
            r = cli("--config", c, "check", "--json", "--only", "dns", env=env)
            return r.returncode, json.loads(r.stdout)["checks"][0]

        if mine:
            rc, c = check("mine.gpuhost.test")
            self.assertEqual((rc, c["details"]["verdict"]), (0, "match"))
            self.assertEqual(c["details"]["resolved"], [mine[0]])
        rc, c = check("loop.gpuhost.test")
        self.assertEqual((rc, c["details"]["verdict"]), (1, "match-loopback-only"))
        rc, c = check("ll.gpuhost.test")
        self.assertEqual(rc, 2 if c["details"]["verdict"] == "no-match" else 1)
        rc, c = check("other.gpuhost.test")
        self.assertEqual((rc, c["details"]["verdict"]), (2, "no-match"))
        self.assertIn("does not resolve to this host", c["message"])
        rc, c = check("other.gpuhost.test", "warn")
        self.assertEqual((rc, c["outcome"]), (1, "warn"))
        rc, c = check("missing..gpuhost.test")
        self.assertEqual((rc, c["details"]["verdict"]), (2, "unresolved"))
        self.assertIn("does not resolve", c["message"])
        # The human report lists both sides.
        c = self.config(extra={"network": {"dns_name": "other.gpuhost.test"},
                               "checks": {"dns": "warn"}})
        r = cli("--config", c, "check", "--only", "dns", env=env)
        self.assertIn("resolved: 192.0.2.99", r.stdout)
        self.assertIn("this host: 127.0.0.1 (lo)", r.stdout)

    def test_log_rotation(self):
        cfg = self.config("--spam 3000", {"log": {"max_size": "65536", "keep": "3"}})
        p = self.run_fg(cfg)
        self.wait_ready()
        logs = os.path.join(self.dir, "logs")
        for k in (1, 2, 3):
            size = os.path.getsize(os.path.join(logs, "server.log.%d" % k))
            self.assertLessEqual(size, 65536)
            self.assertGreater(size, 60000)
        self.assertFalse(os.path.exists(os.path.join(logs, "server.log.4")))
        self.assertIn("listening on", read_log(self.dir, "server.log"))
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(timeout=20), 0)
        self.assertGreaterEqual(int(read_status(self.dir)["log_rotations"]), 4)

    def test_start_status_stop_daemon(self):
        cfg = self.config()
        r = cli("--config", cfg, "status")
        self.assertEqual(r.returncode, 4)
        r = cli("--config", cfg, "start")
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(self.dir, "logs", "gpuhost.pid")) as f:
            pid = int(f.read())
        try:
            self.assertIn("started", r.stdout)
            self.wait_ready()
            r = cli("--config", cfg, "status")
            self.assertEqual(r.returncode, 0)
            self.assertIn("state:      running", r.stdout)
            self.assertIn("health:     ready", r.stdout)
            r = cli("--config", cfg, "start")
            self.assertIn("already running", r.stdout)
            r = cli("--config", cfg, "stop")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertFalse(pid_alive(pid))
            r = cli("--config", cfg, "status")
            self.assertEqual(r.returncode, 3)
            self.assertIn("state:      stopped", r.stdout)
        finally:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)

    def test_install_systemd_unit(self):
        cfg = self.config()
        r = cli("--config", cfg, "install", "--print")
        self.assertEqual(r.returncode, 0)
        self.assertIn('ExecStart="%s" run --config "%s"' % (BIN, cfg), r.stdout)
        self.assertIn("Restart=on-failure", r.stdout)
        self.assertIn("KillMode=mixed", r.stdout)
        units = os.path.join(self.dir, "units")
        os.makedirs(units)
        r = cli("--config", cfg, "install", "--unit-dir", units)
        self.assertEqual(r.returncode, 0)
        unit = os.path.join(units, "gpuhost-test.service")
        self.assertTrue(os.path.exists(unit))
        r = cli("--config", cfg, "uninstall", "--unit-dir", units)
        self.assertEqual(r.returncode, 0)
        self.assertFalse(os.path.exists(unit))
        r = cli("--config", cfg, "firewall", "add")
        self.assertEqual(r.returncode, 64)
        self.assertIn("Windows Firewall", r.stderr)

    def test_example_config_is_valid(self):
        example = os.path.join(HERE, "..", "..", "windows", "gpuhost.ini.example")
        r = cli("--config", example, "config")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("network.port                     = 8000", r.stdout)

    def test_config_errors_are_listed(self):
        path = os.path.join(self.dir, "bad.ini")
        with open(path, "w") as f:
            f.write("[network]\nport = 0\n[pyhton]\nscript = x\n")
        r = cli("--config", path, "check")
        self.assertEqual(r.returncode, 78)
        self.assertIn("line 2: network.port", r.stderr)
        self.assertIn("unknown setting [pyhton] script", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
