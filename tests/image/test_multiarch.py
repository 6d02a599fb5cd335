#!/usr/bin/python3
"""`make image-multiarch`: both image architectures in one manifest list,
and the arm64 image run under qemu.

Steps: enable qemu-aarch64 through binfmt_misc (mounting it when needed);
for each architecture point debian:bookworm-slim at a cached debootstrap
import (tests/image/base-image.sh ARCH) and `podman build --platform
linux/ARCH --manifest` into one list; check the list, run the arm64 image
read-only on a loopback port and fetch /livez, /healthz and /metrics
through emulation; write the list as an OCI layout to
build/ship/tokenplace-relay-multiarch. Slow when cold (arm64 debootstrap and
an emulated compile); not part of ctest. Ends with `N passed, N failed`.
"""
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import imagelib as L  # noqa: E402

R = L.Results()
LIST = "localhost/tokenplace-relay:multiarch"
CONTEXT = os.environ.get("TP_IMAGE_CONTEXT", L.ROOT)
BINFMT = "/proc/sys/fs/binfmt_misc"


def enable_binfmt():
    if not os.path.exists(os.path.join(BINFMT, "register")):
        L.run(["mount", "-t", "binfmt_misc", "binfmt_misc", BINFMT])
    entry = os.path.join(BINFMT, "qemu-aarch64")
    if not os.path.exists(entry):
        L.run(["update-binfmts", "--enable", "qemu-aarch64"])
    with open(entry, encoding="utf-8") as f:
        text = f.read()
    return text.startswith("enabled") and "flags: " in text and "F" in \
        text.split("flags: ", 1)[1].split("\n", 1)[0]


def elf_machine(image):
    """e_machine of the relay binary inside the image (183 = aarch64)."""
    ctr = L.run(["podman", "create", image]).stdout.strip()
    try:
        with tempfile.TemporaryDirectory(prefix="tp-multiarch-") as d:
            path = os.path.join(d, "fs.tar")
            L.run(["podman", "export", "-o", path, ctr])
            with tarfile.open(path) as t:
                f = t.extractfile("usr/local/bin/tokenplace-relay")
                head = f.read(20)
    finally:
        L.run(["podman", "rm", "-f", ctr], check=False)
    return int.from_bytes(head[18:20], "little")


def run_arm64(image):
    name = f"tp-multiarch-{os.getpid()}"
    L.run(["podman", "rm", "-f", name], check=False)
    try:
        t0 = time.monotonic()
        L.run(["podman", "run", "-d", "--name", name, "--read-only",
               "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
               "-p", "127.0.0.1::5010", image])
        port = int(L.run(["podman", "port", name, "5010/tcp"])
                   .stdout.split()[0].rsplit(":", 1)[1])
        up = L.wait_for(lambda: L.http(
            "GET", f"http://127.0.0.1:{port}/livez", timeout=5)[0] == 200, 120)
        L.log(f"time arm64 container start to /livez 200 under qemu: "
              f"{time.monotonic() - t0:.1f} s")
        if not R.check("arm64 relay answers /livez under qemu", up,
                       L.run(["podman", "logs", name], check=False).stdout[-1500:]):
            return
        st, _h, body = L.http("GET", f"http://127.0.0.1:{port}/healthz")
        R.check("arm64 /healthz 200", st == 200, f"{st} {body[:200]!r}")
        st, _h, body = L.http("GET", f"http://127.0.0.1:{port}/metrics")
        R.check("arm64 /metrics 200", st == 200
                and b"tokenplace_relay_requests_total" in body, str(st))
        L.run(["podman", "kill", "--signal", "TERM", name])
        L.wait_for(lambda: L.run(["podman", "inspect", "--format",
                                  "{{.State.Status}}", name],
                                 check=False).stdout.strip() != "running", 60)
        code = L.run(["podman", "inspect", "--format", "{{.State.ExitCode}}",
                      name], check=False).stdout.strip()
        R.check("arm64 relay exits 0 on SIGTERM", code == "0", code)
    finally:
        L.run(["podman", "rm", "-f", "-t", "0", name], check=False)


def build_arch(arch, rev):
    """Builds one platform as LIST-ARCH and adds it to LIST; returns the
    per-architecture tag or None."""
    L.timed(f"base image {arch}", lambda: L.run(
        [os.path.join(L.HERE, "base-image.sh"), arch], timeout=3600))
    tag = f"{LIST}-{arch}"
    p = L.timed(f"podman build linux/{arch}", lambda: L.run(
        ["podman", "build", "--pull=never", "--network=host",
         "--platform", f"linux/{arch}",
         "--build-arg", f"REVISION={rev or 'unknown'}",
         "--build-arg", "VERSION=0.0.0-multiarch",
         "-f", os.path.join(CONTEXT, "Dockerfile"),
         "-t", tag, CONTEXT], timeout=3600, check=False))
    if not R.check(f"podman build linux/{arch}", p.returncode == 0,
                   p.stdout[-4000:] + p.stderr[-2000:]):
        return None
    L.run(["podman", "manifest", "add", LIST, f"containers-storage:{tag}"])
    return tag


def main():
    L.require_root()
    t_all = time.monotonic()
    if not R.check("qemu-aarch64 registered with binfmt_misc (flag F)",
                   enable_binfmt()):
        return R.summary()
    rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=L.ROOT,
                         capture_output=True, text=True).stdout.strip()
    L.run(["podman", "manifest", "rm", LIST], check=False)
    ids = {}
    try:
        L.run(["podman", "manifest", "create", LIST])
        for arch in ("amd64", "arm64"):
            ids[arch] = build_arch(arch, rev)
        # The single-arch tests expect the machine's own base again.
        native = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine)
        if native:
            L.run([os.path.join(L.HERE, "base-image.sh"), native])
        if not all(ids.values()):
            return R.summary()
        raw = json.loads(L.run(["podman", "manifest", "inspect", LIST]).stdout)
        archs = sorted(m["platform"]["architecture"]
                       for m in raw.get("manifests", []))
        R.check("manifest list holds linux/amd64 and linux/arm64",
                archs == ["amd64", "arm64"], str(archs))
        for arch, iid in sorted(ids.items()):
            info = json.loads(L.run(["podman", "image", "inspect", iid]).stdout)[0]
            L.log(f"image size {arch}: {info['Size'] / 1e6:.1f} MB")
            R.check(f"{arch} image config says {arch}",
                    info.get("Architecture") == arch, info.get("Architecture"))
        R.check("arm64 binary is an aarch64 ELF", elf_machine(ids["arm64"]) == 183)
        run_arm64(ids["arm64"])
        # Keep the list as an OCI layout (what a registry push would send).
        out = os.path.join(L.ROOT, "build", "ship", "tokenplace-relay-multiarch")
        L.run(["rm", "-rf", out])
        L.run(["podman", "manifest", "push", "--all", "--quiet", LIST,
               f"oci:{out}"])
        with open(os.path.join(out, "index.json"), encoding="utf-8") as f:
            index = json.load(f)
        L.log(f"OCI layout with both architectures: {out}")
        R.check("OCI layout written", len(index.get("manifests", [])) >= 1)
    finally:
        # A local list of these images breaks `podman images` in podman 4.3
        # (it cannot resolve the instances); the images themselves stay.
        L.run(["podman", "manifest", "rm", LIST], check=False)
    L.log(f"time image-multiarch total: {time.monotonic() - t_all:.1f} s")
    return R.summary()


if __name__ == "__main__":
    sys.exit(main())
