"""tokenplace-gpuhost and the GPU box: production mode for server.py, the
`env`, `gpu` and `model` checks, the `gpu:` line of `status`, data.dir,
the relay named in python.args, and the Prometheus endpoint.

There is no NVIDIA driver here: a stand-in NVML (tests/gpuhost/nvml/
fakenvml.c, $GPUHOST_FAKE_NVML, answers picked by FAKE_NVML) is loaded
through gpu.nvml_library. The venv gets a stand-in llama_cpp package whose
llama_supports_gpu_offload() answers FAKE_LLAMA_GPU (set through
[environment], so it reaches the probe as it would reach server.py). The
node is tests/gpuhost/tokenplace/server.py with token.place's options and
its TOKEN_PLACE_ENV rule; tests/gpuhost/tokenplace/utils/llm/
model_manager.py follows token.place's rules for the model's place."""
import json
import os
import socket
import subprocess
import sys
import unittest
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpuhost_fixture import (HERE, VenvCase, free_port, make_venv, read_log,  # noqa: E402
                             wait_for)

BIN = os.environ["GPUHOST_BIN"]
FAKE_NVML = os.environ["GPUHOST_FAKE_NVML"]
CHECKOUT = os.path.join(HERE, "tokenplace")
GIB = 1 << 30

LLAMA_STANDIN = '''"""Stand-in llama_cpp for the gpuhost tests."""
import os
import time

__version__ = "0.3.16-test"
if os.environ.get("FAKE_LLAMA_SLEEP"):
    time.sleep(float(os.environ["FAKE_LLAMA_SLEEP"]))


def llama_supports_gpu_offload():
    return os.environ.get("FAKE_LLAMA_GPU") == "1"
'''


def cli(*args, env=None, timeout=180):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([BIN] + list(args), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, env=e)


def site_packages(venv):
    lib = os.path.join(venv, "lib")
    return os.path.join(lib, sorted(os.listdir(lib))[0], "site-packages")


class GpuBox(VenvCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        pkg = os.path.join(site_packages(cls.venv), "llama_cpp")
        os.makedirs(pkg)
        with open(os.path.join(pkg, "__init__.py"), "w") as f:
            f.write(LLAMA_STANDIN)
        cls.bare = make_venv(os.path.join(cls.root, "bare-venv"))

    def config(self, env=None, args=None, host="127.0.0.1", venv=None,
               nvml=FAKE_NVML, extra=None):
        sections = {
            "python": {"checkout": CHECKOUT, "venv": venv or self.venv},
            "network": {"host": host, "port": str(self.port)},
            "checks": {"dns": "off", "firewall": "off", "port": "off"},
            "gpu": {"nvml_library": nvml},
            "service": {"name": "gpuhost-gpu-test", "stop_grace": "5",
                        "escalate_after": "2"},
            "health": {"interval": "0.1", "timeout": "1"},
            "log": {"dir": os.path.join(self.dir, "logs"), "console": "false"},
            "environment": dict(env or {}),
        }
        if args is not None:
            sections["python"]["args"] = args
        for sec, kv in (extra or {}).items():
            sections.setdefault(sec, {}).update(kv)
        path = os.path.join(self.dir, "gpuhost.ini")
        with open(path, "w") as f:
            for sec, kv in sections.items():
                f.write("[%s]\n" % sec)
                for k, v in kv.items():
                    f.write("%s = %s\n" % (k, v))
        return path

    def check(self, cfg, only, env=None):
        r = cli("--config", cfg, "check", "--json", "--only", only, env=env)
        self.assertTrue(r.stdout.startswith("{"), r.stdout + r.stderr)
        return r.returncode, json.loads(r.stdout)["checks"][0]

    def run_fg(self, cfg, env=None):
        e = dict(os.environ)
        e.update(env or {})
        p = subprocess.Popen([BIN, "--config", cfg, "run"], stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True, env=e)
        self.procs.append(p)
        return p

    def stop(self, p):
        p.terminate()
        self.assertEqual(p.wait(timeout=60), 0)

    # ---- 1. production mode ------------------------------------------------

    def test_env_production_by_default_reaches_server_py(self):
        cfg = self.config(env={"FAKE_LLAMA_GPU": "1"},
                          args="--server_host {host} --server_port {port} "
                          "--relay_url http://127.0.0.1 --relay_port %d" % free_port())
        rc, c = self.check(cfg, "env")
        self.assertEqual((rc, c["outcome"]), (0, "pass"), c)
        self.assertEqual(c["details"]["token_place_env"], "production")
        self.assertEqual(c["details"]["source"], "default")
        self.assertIn("# server.py gets TOKEN_PLACE_ENV=production (gpuhost's default)",
                      cli("--config", cfg, "config").stdout)
        p = self.run_fg(cfg)
        wait_for(lambda: "tp-server: environment" in read_log(self.dir, "server.log"),
                 60, "server.py's environment line")
        self.assertIn("tp-server: environment production, debug off",
                      read_log(self.dir, "server.log"))
        self.stop(p)

    def test_env_not_production_on_the_network_fails_and_blocks_the_start(self):
        cfg = self.config(env={"TOKEN_PLACE_ENV": "development"}, host="0.0.0.0")
        rc, c = self.check(cfg, "env")
        self.assertEqual((rc, c["outcome"]), (2, "fail"), c)
        self.assertIn("TOKEN_PLACE_ENV=development", c["message"])
        self.assertIn("Werkzeug debugger", c["message"])
        self.assertIs(c["details"]["loopback"], False)
        p = self.run_fg(cfg)
        self.assertEqual(p.wait(timeout=120), 10)
        self.assertNotIn("tp-server:", read_log(self.dir, "server.log"))
        self.assertIn("preflight_failed", read_log(self.dir))

    def test_env_not_production_on_loopback_warns_and_args_host_counts(self):
        cfg = self.config(env={"TOKEN_PLACE_ENV": "development"})
        rc, c = self.check(cfg, "env")
        self.assertEqual((rc, c["outcome"]), (1, "warn"), c)
        self.assertEqual(c["details"]["server_host"], "127.0.0.1")
        # --server_host in python.args is what server.py binds.
        cfg = self.config(env={"TOKEN_PLACE_ENV": "development"},
                          args="--server_host 0.0.0.0 --server_port {port}")
        rc, c = self.check(cfg, "env")
        self.assertEqual((rc, c["outcome"]), (2, "fail"), c)
        self.assertEqual(c["details"]["server_host"], "0.0.0.0")
        # An explicit production is accepted on any host.
        cfg = self.config(env={"TOKEN_PLACE_ENV": "production"}, host="0.0.0.0")
        rc, c = self.check(cfg, "env")
        self.assertEqual((rc, c["outcome"]), (0, "pass"), c)
        self.assertEqual(c["details"]["source"], "environment")

    # ---- 2. GPU ------------------------------------------------------------

    def test_gpu_present_with_a_cuda_build_passes(self):
        cfg = self.config(env={"FAKE_LLAMA_GPU": "1"})
        rc, c = self.check(cfg, "gpu")
        self.assertEqual((rc, c["outcome"]), (0, "pass"), c)
        nv = c["details"]["nvml"]
        self.assertEqual((nv["state"], nv["driver"], nv["count"]), ("ok", "555.99", 1))
        g = nv["gpus"][0]
        self.assertEqual(g["name"], "NVIDIA GeForce RTX 4090")
        self.assertEqual((g["memory_used_bytes"], g["memory_total_bytes"]), (GIB, 24 * GIB))
        self.assertEqual((g["utilization_percent"], g["temperature_c"]), (37, 41))
        self.assertAlmostEqual(g["power_w"], 88.5)
        rt = c["details"]["runtime"]
        self.assertEqual((rt["llama_cpp"], rt["gpu_offload"], rt["version"]),
                         ("present", True, "0.3.16-test"))
        self.assertIn("GPU 0: NVIDIA GeForce RTX 4090, 1.0/24.0 GiB, 37 %, 41 C",
                      c["message"])
        self.assertIn("supports GPU offload", c["message"])

    def test_gpu_present_with_a_cpu_build_fails_naming_the_cuda_route(self):
        cfg = self.config(env={"FAKE_LLAMA_GPU": "0"})
        rc, c = self.check(cfg, "gpu")
        self.assertEqual((rc, c["outcome"]), (2, "fail"), c)
        self.assertIs(c["details"]["runtime"]["gpu_offload"], False)
        self.assertIn("CPU-only build", c["message"])
        self.assertIn("n_gpu_layers=0", c["message"])
        self.assertIn('CMAKE_ARGS="-DGGML_CUDA=on"', c["message"])
        # checks.gpu = warn relaxes it.
        cfg = self.config(env={"FAKE_LLAMA_GPU": "0"}, extra={"checks": {"gpu": "warn"}})
        rc, c = self.check(cfg, "gpu")
        self.assertEqual((rc, c["outcome"]), (1, "warn"), c)

    def test_gpu_no_driver_warns(self):
        missing = os.path.join(self.dir, "no-driver", "libnvidia-ml.so.1")
        cfg = self.config(env={"FAKE_LLAMA_GPU": "0"}, nvml=missing)
        rc, c = self.check(cfg, "gpu")
        self.assertEqual((rc, c["outcome"]), (1, "warn"), c)
        self.assertEqual(c["details"]["nvml"]["state"], "absent")
        self.assertIn("no NVIDIA driver", c["message"])
        self.assertIn(missing, c["message"])
        # A CPU-only build without a GPU is no failure of the build.
        self.assertIn("CPU-only build", c["message"])
        self.assertNotIn("GGML_CUDA", c["message"])

    def test_gpu_driver_errors_warn(self):
        cfg = self.config(env={"FAKE_LLAMA_GPU": "1"})
        for mode, text in (("init_error", "nvmlInit failed: Driver Not Loaded (NVML error 9)"),
                           ("count_error", "GPU count: Unknown Error (NVML error 999)")):
            rc, c = self.check(cfg, "gpu", env={"FAKE_NVML": mode})
            self.assertEqual((rc, c["outcome"]), (1, "warn"), c)
            self.assertEqual(c["details"]["nvml"]["state"], "error")
            self.assertIn("the NVIDIA driver does not answer", c["message"])
            self.assertIn(text, c["message"])
        rc, c = self.check(cfg, "gpu", env={"FAKE_NVML": "none"})
        self.assertEqual((rc, c["outcome"]), (1, "warn"), c)
        self.assertIn("NVIDIA driver 555.99, but no GPU", c["message"])

    def test_gpu_runtime_skipped_without_llama_cpp_or_with_the_mock(self):
        cfg = self.config(venv=self.bare)
        rc, c = self.check(cfg, "gpu")
        self.assertEqual((rc, c["outcome"]), (0, "pass"), c)
        self.assertEqual(c["details"]["runtime"]["skipped"], "llama_cpp absent")
        self.assertEqual(c["details"]["runtime"]["llama_cpp"], "absent")
        self.assertIn("llama_cpp is not installed in the venv (skipped)", c["message"])
        for cfg in (self.config(env={"FAKE_LLAMA_GPU": "0"},
                                args="--server_host {host} --server_port {port} --use_mock_llm"),
                    self.config(env={"FAKE_LLAMA_GPU": "0", "USE_MOCK_LLM": "1"})):
            rc, c = self.check(cfg, "gpu")
            self.assertEqual((rc, c["outcome"]), (0, "pass"), c)
            # Not probed at all: no llama_cpp answer in the details.
            self.assertEqual(c["details"]["runtime"], {"skipped": "mock LLM configured"})
            rc, m = self.check(cfg, "model")
            self.assertEqual((rc, m["outcome"]), (0, "skip"), m)

    def test_gpu_probe_is_time_bounded(self):
        cfg = self.config(env={"FAKE_LLAMA_GPU": "1", "FAKE_LLAMA_SLEEP": "600"},
                          extra={"checks": {"gpu_timeout": "1"}})
        rc, c = self.check(cfg, "gpu")
        self.assertEqual((rc, c["outcome"]), (1, "warn"), c)
        self.assertIn("did not finish within 1 s (checks.gpu_timeout)", c["message"])

    def test_status_shows_the_gpus(self):
        cfg = self.config()
        r = cli("--config", cfg, "status")
        self.assertIn("gpu:        NVIDIA GeForce RTX 4090, 1.0/24.0 GiB, 37 %, 41 C, "
                      "driver 555.99\n", r.stdout)
        r = cli("--config", cfg, "status", env={"FAKE_NVML": "two"})
        self.assertIn("gpu:        NVIDIA RTX A2000, 0.5/6.0 GiB, 5 %, ? C\n", r.stdout)
        cfg = self.config(nvml=os.path.join(self.dir, "absent.so"))
        r = cli("--config", cfg, "status")
        self.assertIn("gpu:        none (no NVIDIA driver: %s not found)"
                      % os.path.join(self.dir, "absent.so"), r.stdout)
        # Next to the service state of a running node.
        cfg = self.config(args="--server_host {host} --server_port {port} --use_mock_llm "
                          "--relay_url http://127.0.0.1 --relay_port %d" % free_port())
        p = self.run_fg(cfg)
        wait_for(lambda: "health:     ready" in cli("--config", cfg, "status").stdout,
                 60, "status ready")
        out = cli("--config", cfg, "status").stdout
        self.assertRegex(out, r"state:      running .*\n(.*\n)*gpu:        NVIDIA GeForce RTX 4090")
        self.stop(p)

    # ---- 4. where the model goes -------------------------------------------

    def test_model_in_data_dir_missing_then_present(self):
        data = os.path.join(self.dir, "data")
        cfg = self.config(extra={"data": {"dir": data}})
        rc, c = self.check(cfg, "model")
        self.assertEqual((rc, c["outcome"]), (1, "warn"), c)
        want = os.path.join(data, "stand-in-model.Q4_K_M.gguf")
        self.assertEqual(c["details"]["model_path"], want)
        self.assertIs(c["details"]["in_data_dir"], True)
        self.assertEqual(c["details"]["model_size"], -1)
        self.assertIn("the first start downloads it from https://example.invalid/", c["message"])
        self.assertIn("# server.py gets TOKEN_PLACE_CONFIG=%s/gpuhost-token.place.json" % data,
                      cli("--config", cfg, "config").stdout)
        with open(os.path.join(data, "gpuhost-token.place.json")) as f:
            self.assertEqual(json.load(f), {"paths": {"models_dir": data}})
        with open(want, "wb") as f:
            f.truncate(3 * GIB // 2)
        rc, c = self.check(cfg, "model")
        self.assertEqual((rc, c["outcome"]), (0, "pass"), c)
        self.assertEqual(c["details"]["model_size"], 3 * GIB // 2)
        self.assertIn("is there (1.50 GiB)", c["message"])

    def test_model_default_place_is_the_accounts_profile(self):
        home = os.path.join(self.dir, "home")
        os.makedirs(home)
        cfg = self.config()
        rc, c = self.check(cfg, "model", env={"HOME": home})
        self.assertEqual((rc, c["outcome"]), (1, "warn"), c)
        self.assertEqual(c["details"]["model_path"],
                         os.path.join(home, ".local", "share", "token.place", "models",
                                      "stand-in-model.Q4_K_M.gguf"))
        self.assertNotIn("in_data_dir", c["details"])

    def test_model_unknown_without_token_place(self):
        cfg = self.config()
        with open(cfg) as f:
            text = f.read()
        with open(cfg, "w") as f:
            f.write(text.replace("checkout = %s" % CHECKOUT, "checkout = %s\nscript = "
                                 "tokenplace/server.py" % HERE))
        rc, c = self.check(cfg, "model")
        self.assertEqual((rc, c["outcome"]), (0, "unknown"), c)
        self.assertIn("No module named 'utils'", c["message"])

    def test_data_dir_and_token_place_config_conflict(self):
        cfg = self.config(env={"TOKEN_PLACE_CONFIG": "/x.json"},
                          extra={"data": {"dir": os.path.join(self.dir, "d")}})
        r = cli("--config", cfg, "check")
        self.assertEqual(r.returncode, 78, r.stdout + r.stderr)
        self.assertIn("TOKEN_PLACE_CONFIG and data.dir both set", r.stderr)

    # ---- 6a. relay from python.args ----------------------------------------

    def test_relay_check_reads_python_args(self):
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(4)
        port = srv.getsockname()[1]
        srv.close()
        cfg = self.config(args="--server_host {host} --server_port {port} "
                          "--relay_url http://127.0.0.1 --relay_port %d" % port)
        rc, c = self.check(cfg, "relay")
        self.assertEqual(c["details"]["source"], "python.args")
        self.assertEqual((c["details"]["url"], c["details"]["port"]),
                         ("http://127.0.0.1", port))
        self.assertNotIn("relay.url is not set", c["message"])
        self.assertIn("relay named by python.args", c["message"])
        self.assertIn("relay http://127.0.0.1:%d is not reachable" % port, c["message"])
        cfg = self.config(args="--server_host {host} --server_port {port} "
                          "--relay_url http://127.0.0.1")
        rc, c = self.check(cfg, "relay")
        self.assertEqual((rc, c["outcome"]), (1, "warn"), c)
        self.assertIn("without --relay_port", c["message"])

    # ---- 3. metrics ----------------------------------------------------------

    def scrape(self, port, path="/metrics", method="GET"):
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), method=method)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.headers.get("Content-Type"), r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.headers.get("Content-Type"), e.read().decode()

    @staticmethod
    def samples(text):
        out = {}
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return out

    def test_metrics_endpoint(self):
        mport = free_port()
        cfg = self.config(args="--server_host {host} --server_port {port} --use_mock_llm "
                          "--relay_url http://127.0.0.1 --relay_port %d" % free_port(),
                          extra={"metrics": {"listen": "127.0.0.1:%d" % mport,
                                             "max_request": "1024",
                                             "read_timeout": "0.5"}})
        p = self.run_fg(cfg)
        wait_for(lambda: "health:     ready" in cli("--config", cfg, "status").stdout,
                 60, "status ready")
        wait_for(lambda: self.samples(self.scrape(mport)[2]).get(
            ("tokenplace_gpuhost_health_probes_total", (("result", "ok"),)), 0) >= 1,
            30, "a probe counted")
        code, ctype, text = self.scrape(mport)
        self.assertEqual((code, ctype), (200, "text/plain; version=0.0.4; charset=utf-8"))
        s = self.samples(text)
        gpu = (("gpu", "0"), ("name", "NVIDIA GeForce RTX 4090"))
        self.assertEqual(s[("tokenplace_gpuhost_state", (("state", "running"),))], 1)
        self.assertEqual(s[("tokenplace_gpuhost_state", (("state", "backoff"),))], 0)
        self.assertEqual(s[("tokenplace_gpuhost_health", (("state", "ready"),))], 1)
        self.assertEqual(s[("tokenplace_gpuhost_restarts_total", ())], 0)
        self.assertGreater(s[("tokenplace_gpuhost_server_uptime_seconds", ())], 0)
        self.assertEqual(s[("tokenplace_gpuhost_nvml", (("state", "ok"),))], 1)
        self.assertEqual(s[("tokenplace_gpuhost_gpus", ())], 1)
        self.assertEqual(s[("tokenplace_gpuhost_gpu_driver_info", (("driver", "555.99"),))], 1)
        self.assertEqual(s[("tokenplace_gpuhost_gpu_utilization_ratio", gpu)], 0.37)
        self.assertEqual(s[("tokenplace_gpuhost_gpu_memory_used_bytes", gpu)], GIB)
        self.assertEqual(s[("tokenplace_gpuhost_gpu_memory_total_bytes", gpu)], 24 * GIB)
        self.assertEqual(s[("tokenplace_gpuhost_gpu_temperature_celsius", gpu)], 41)
        self.assertEqual(s[("tokenplace_gpuhost_gpu_power_watts", gpu)], 88.5)
        # Refusals: each answered with its status and counted by reason.
        code, ctype, body = self.scrape(mport, "/")
        self.assertEqual((code, ctype), (404, "application/json"))
        self.assertEqual(json.loads(body), {"error": {"code": 404, "message": "Not Found",
                                                      "reason": "not_found"}})
        self.assertEqual(self.scrape(mport, method="POST")[0], 405)
        with socket.create_connection(("127.0.0.1", mport), timeout=10) as c:
            c.sendall(b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 1100 + b"\r\n\r\n")
            self.assertTrue(c.recv(100).startswith(b"HTTP/1.1 431 "))
        with socket.create_connection(("127.0.0.1", mport), timeout=10) as c:
            c.sendall(b"NONSENSE\r\n\r\n")
            self.assertTrue(c.recv(100).startswith(b"HTTP/1.1 400 "))
        # Silent past metrics.read_timeout: closed without an answer.
        with socket.create_connection(("127.0.0.1", mport), timeout=30) as c:
            c.sendall(b"GET /metrics HTTP/1.1\r\n")
            self.assertEqual(c.recv(100), b"")
        # Gone before the end of the head.
        with socket.create_connection(("127.0.0.1", mport), timeout=30) as c:
            c.sendall(b"GET /metr")
        code, _, head = self.scrape(mport, method="HEAD")
        self.assertEqual((code, head), (200, ""))
        s = self.samples(self.scrape(mport)[2])
        for reason in ("not_found", "method", "too_large", "bad_request", "timeout",
                       "incomplete"):
            self.assertEqual(s[("tokenplace_gpuhost_metrics_refused_total",
                                (("reason", reason),))], 1, reason)
        self.assertGreaterEqual(s[("tokenplace_gpuhost_metrics_scrapes_total", ())], 3)
        ev = [json.loads(l) for l in read_log(self.dir).splitlines() if l.startswith("{")]
        self.assertIn({"127.0.0.1:%d" % mport}, [{e.get("address")} for e in ev
                                                  if e["message"] == "metrics_listening"])
        self.stop(p)

    def test_metrics_off_by_default_and_a_taken_port_stops_the_start(self):
        cfg = self.config(args="--server_host {host} --server_port {port} --use_mock_llm "
                          "--relay_url http://127.0.0.1 --relay_port %d" % free_port())
        self.assertIn("metrics.listen                   = ",
                      cli("--config", cfg, "config").stdout)
        p = self.run_fg(cfg)
        wait_for(lambda: "health:     ready" in cli("--config", cfg, "status").stdout,
                 60, "status ready")
        self.assertNotIn("metrics_listening", read_log(self.dir))
        self.stop(p)
        taken = socket.socket()
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        try:
            cfg = self.config(extra={"metrics": {"listen": "127.0.0.1:%d"
                                                 % taken.getsockname()[1]}})
            p = self.run_fg(cfg)
            self.assertEqual(p.wait(timeout=60), 12)
            self.assertIn("metrics_failed", read_log(self.dir))
        finally:
            taken.close()
        cfg = self.config(extra={"metrics": {"listen": "localhost:9108"}})
        r = cli("--config", cfg, "check")
        self.assertEqual(r.returncode, 78)
        r = cli("--config", self.config(extra={"metrics": {"listen": "127.0.0.1:0"}}), "check")
        self.assertEqual(r.returncode, 78)
        self.assertIn("metrics.listen", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
