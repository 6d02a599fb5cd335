"""windows/llamacpp_state.py, the helper install.ps1 runs in the venv to
decide whether pip may touch llama_cpp_python: the pin read from a
requirements file, the installed version (a dist-info on sys.path), the
match (local labels such as +cu124 included), the stand-in llama_cpp's GPU
offload answer both ways, an import that fails or hangs (bounded), and the
requirements written without the llama_cpp_python line.

The stand-in llama_cpp package is written by the test into a temporary
site directory; its answer comes from STANDIN_LLAMA_MODE."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
HELPER = os.path.join(HERE, "..", "..", "windows", "llamacpp_state.py")

STANDIN = '''\
import os, sys, time
_mode = os.environ.get("STANDIN_LLAMA_MODE", "gpu")
if _mode == "broken":
    raise ImportError("DLL load failed while importing llama: cudart64_12.dll not found")
if _mode == "hang":
    time.sleep(3600)
def llama_supports_gpu_offload():
    return _mode == "gpu"
'''

REQUIREMENTS = """\
Flask==3.1.2
# the model runtime
llama_cpp_python==0.3.16  # pinned by token.place
numpy==2.0.2
-r extra.txt
"""


class LlamaCppState(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="llamacpp-state-")
        self.site = os.path.join(self.dir, "site")
        os.makedirs(self.site)
        self.req = os.path.join(self.dir, "config", "requirements_server.txt")
        os.makedirs(os.path.dirname(self.req))
        self.write_requirements(REQUIREMENTS)

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def write_requirements(self, text):
        with open(self.req, "w") as f:
            f.write(text)

    def install(self, version, dist="llama_cpp_python"):
        pkg = os.path.join(self.site, "llama_cpp")
        os.makedirs(pkg, exist_ok=True)
        with open(os.path.join(pkg, "__init__.py"), "w") as f:
            f.write(STANDIN)
        info = os.path.join(self.site, "%s-%s.dist-info" % (dist, version.split("+")[0]))
        os.makedirs(info, exist_ok=True)
        with open(os.path.join(info, "METADATA"), "w") as f:
            f.write("Metadata-Version: 2.1\nName: llama_cpp_python\nVersion: %s\n" % version)

    def run_helper(self, *extra, mode="gpu", rc=0):
        env = dict(os.environ, PYTHONPATH=self.site, STANDIN_LLAMA_MODE=mode)
        r = subprocess.run([sys.executable, "-B", HELPER, self.req] + list(extra),
                           capture_output=True, text=True, env=env, timeout=300,
                           stdin=subprocess.DEVNULL)
        self.assertEqual(r.returncode, rc, r.stderr)
        return json.loads(r.stdout) if rc == 0 else r

    def test_installed_build_satisfies_the_pin_with_gpu_offload(self):
        self.install("0.3.16")
        s = self.run_helper()
        self.assertEqual(s["requirement"], "llama_cpp_python==0.3.16")
        self.assertEqual(s["pin"], "0.3.16")
        self.assertEqual(s["installed"], "0.3.16")
        self.assertIs(s["satisfied"], True)
        self.assertIs(s["gpu_offload"], True)
        self.assertEqual(os.path.realpath(s["location"]),
                         os.path.realpath(os.path.join(self.site, "llama_cpp")))
        self.assertIsNone(s["import_error"])

    def test_cpu_only_build(self):
        self.install("0.3.16")
        s = self.run_helper(mode="cpu")
        self.assertIs(s["satisfied"], True)
        self.assertIs(s["gpu_offload"], False)

    def test_local_label_of_a_cuda_wheel_matches_the_pin(self):
        self.install("0.3.16+cu124")
        s = self.run_helper()
        self.assertEqual(s["installed"], "0.3.16+cu124")
        self.assertIs(s["satisfied"], True)

    def test_other_version_does_not_satisfy(self):
        for version in ("0.3.4", "0.3.160", "0.3.16.post1", "0.3.16rc1"):
            with self.subTest(version=version):
                shutil.rmtree(self.site)
                os.makedirs(self.site)
                self.install(version)
                s = self.run_helper()
                self.assertIs(s["satisfied"], False)
                self.assertIs(s["gpu_offload"], True)   # still reported: install.ps1 keeps it

    def test_equal_release_spelled_differently(self):
        self.write_requirements("llama-cpp-python == 0.3.0\n")
        self.install("0.3")
        s = self.run_helper()
        self.assertEqual(s["pin"], "0.3.0")
        self.assertIs(s["satisfied"], True)

    def test_not_installed(self):
        s = self.run_helper()
        self.assertIsNone(s["installed"])
        self.assertIs(s["satisfied"], False)
        self.assertIsNone(s["gpu_offload"])
        self.assertIsNone(s["import_error"])

    def test_no_exact_pin_leaves_the_decision_to_pip(self):
        self.write_requirements("llama_cpp_python>=0.3\n")
        self.install("0.3.16")
        s = self.run_helper()
        self.assertEqual(s["requirement"], "llama_cpp_python>=0.3")
        self.assertIsNone(s["pin"])
        self.assertIsNone(s["satisfied"])

    def test_requirements_without_llama_cpp(self):
        self.write_requirements("Flask==3.1.2\n")
        s = self.run_helper()
        self.assertIsNone(s["requirement"])
        self.assertIsNone(s["satisfied"])

    def test_import_failure_is_reported(self):
        self.install("0.3.16")
        s = self.run_helper(mode="broken")
        self.assertIs(s["satisfied"], True)
        self.assertIsNone(s["gpu_offload"])
        self.assertIn("cudart64_12.dll not found", s["import_error"])

    def test_import_that_hangs_is_bounded(self):
        self.install("0.3.16")
        s = self.run_helper("--timeout", "2", mode="hang")
        self.assertIsNone(s["gpu_offload"])
        self.assertIn("did not finish within 2 s", s["import_error"])

    def test_rest_drops_only_the_llama_line_and_anchors_nested_files(self):
        rest = os.path.join(self.dir, "rest.txt")
        self.run_helper("--rest", rest)
        with open(rest) as f:
            lines = f.read().splitlines()
        self.assertEqual(lines, [
            "Flask==3.1.2", "# the model runtime", "numpy==2.0.2",
            "-r " + os.path.join(self.dir, "config", "extra.txt")])

    def test_unreadable_requirements(self):
        os.remove(self.req)
        r = self.run_helper(rc=2)
        self.assertIn("requirements_server.txt", r.stderr)

    def test_timeout_out_of_range(self):
        r = self.run_helper("--timeout", "0", rc=2)
        self.assertIn("--timeout", r.stderr)


if __name__ == "__main__":
    unittest.main()
