#!/usr/bin/python3
"""The image tag scheme, checked against a real registry API.

.github/scripts/image-tags.sh decides what image.yml publishes: sha-<7 hex>
on every push, X.Y.Z and X.Y on a vX.Y.Z tag, never `latest`.
This test runs the script for each kind of ref, then pushes a two-arch
manifest list under the tags it prints to Debian's docker-registry on
127.0.0.1 (ephemeral port) and reads the registry's tag list and manifests
back. It also pushes the packaged chart there as an OCI artifact, as
chart.yml does with ghcr.io. Ends with `N passed, N failed`.
"""
import json
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import imagelib as L  # noqa: E402

SCRIPT = os.path.join(L.ROOT, ".github", "scripts", "image-tags.sh")
R = L.Results()
SHA_MAIN = "0123abc" + "0" * 33
SHA_TAG = "fedcba9" + "8" * 33
REPO = "owner/tokenplace-relay"


def tags(ref, sha, *args, image="ghcr.io/owner/tokenplace-relay", cwd=None):
    env = dict(os.environ)
    env.pop("GITHUB_REF", None)
    env.pop("GITHUB_SHA", None)
    if ref is not None:
        env["GITHUB_REF"] = ref
    if sha is not None:
        env["GITHUB_SHA"] = sha
    p = subprocess.run(["bash", SCRIPT, *args, image], env=env, cwd=cwd,
                       capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout.split(), p.stderr


def check_script():
    img = "ghcr.io/owner/tokenplace-relay"
    cases = [
        ("push to main", "refs/heads/main", SHA_MAIN, [],
         [f"{img}:sha-0123abc"]),
        ("pull request", "refs/pull/7/merge", SHA_MAIN, [],
         [f"{img}:sha-0123abc"]),
        ("tag v1.2.3", "refs/tags/v1.2.3", SHA_TAG, [],
         [f"{img}:sha-fedcba9", f"{img}:1.2.3", f"{img}:1.2"]),
        ("tag v0.10.0", "refs/tags/v0.10.0", SHA_TAG, [],
         [f"{img}:sha-fedcba9", f"{img}:0.10.0", f"{img}:0.10"]),
        ("pre-release v2.0.0-rc.1 (no X.Y alias)", "refs/tags/v2.0.0-rc.1",
         SHA_TAG, [], [f"{img}:sha-fedcba9", f"{img}:2.0.0-rc.1"]),
        ("non-semver tag (sha only)", "refs/tags/release-7", SHA_TAG, [],
         [f"{img}:sha-fedcba9"]),
        ("leading zero is not semver", "refs/tags/v01.2.3", SHA_TAG, [],
         [f"{img}:sha-fedcba9"]),
    ]
    for name, ref, sha, args, want in cases:
        rc, out, err = tags(ref, sha, *args)
        R.check(f"image-tags.sh: {name}", rc == 0 and out == want,
                f"rc={rc} out={out} err={err.strip()}")
    for name, ref, sha, args, want in cases:
        rc, out, _ = tags(ref, sha, *args)
        R.check(f"image-tags.sh: no latest for {name}",
                not any(t.endswith(":latest") for t in out), str(out))
    # The flag that once added `latest` is gone (docs: there is no latest).
    rc, out, err = tags("refs/tags/v1.2.3", SHA_TAG, "--latest")
    R.check("image-tags.sh: --latest is a usage error", rc == 2 and not out
            and "no latest tag" in err, f"rc={rc} out={out} err={err}")
    rc, out, err = tags("refs/heads/main", "not-a-sha")
    R.check("image-tags.sh: refuses a malformed commit id", rc != 0 and not out,
            f"rc={rc} out={out}")
    p = subprocess.run(["bash", SCRIPT], capture_output=True, text=True,
                       timeout=60)
    R.check("image-tags.sh: usage error without IMAGE", p.returncode == 2)

    # Outside Actions it reads git: a tagged HEAD counts as a tag push.
    with tempfile.TemporaryDirectory(prefix="tp-tags-git-") as repo:
        genv = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@e",
                    GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@e")
        for cmd in (["git", "init", "-q", "-b", "main"],
                    ["git", "commit", "-q", "--allow-empty", "-m", "x"]):
            subprocess.run(cmd, cwd=repo, env=genv, check=True, timeout=60)
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo,
                              capture_output=True, text=True, check=True,
                              timeout=60).stdout.strip()
        rc, out, err = tags(None, None, cwd=repo, image="r")
        R.check("image-tags.sh: local branch -> sha tag from git",
                out == [f"r:sha-{head[:7]}"], f"{out} {err}")
        subprocess.run(["git", "tag", "v3.1.4"], cwd=repo, env=genv,
                       check=True, timeout=60)
        rc, out, err = tags(None, None, cwd=repo, image="r")
        R.check("image-tags.sh: local tagged HEAD -> semver tags",
                out == [f"r:sha-{head[:7]}", "r:3.1.4", "r:3.1"],
                f"{out} {err}")


def build_list(name, work):
    """A two-arch manifest list of tiny scratch images (no base needed)."""
    L.run(["podman", "manifest", "rm", name], check=False)
    L.run(["podman", "manifest", "create", name])
    refs = []
    for arch in ("amd64", "arm64"):
        ctx = os.path.join(work, arch)
        os.makedirs(ctx, exist_ok=True)
        with open(os.path.join(ctx, "arch.txt"), "w", encoding="utf-8") as f:
            f.write(f"tag-scheme test image for {arch}\n")
        ctr = L.run(["buildah", "from", "--arch", arch, "scratch"]).stdout.strip()
        try:
            L.run(["buildah", "copy", ctr, os.path.join(ctx, "arch.txt"), "/"])
            L.run(["buildah", "config", "--arch", arch, "--os", "linux", ctr])
            ref = f"{name}-{arch}"
            L.run(["buildah", "commit", "-q", ctr, ref])
            refs.append(ref)
        finally:
            L.run(["buildah", "rm", ctr], check=False)
        L.run(["podman", "manifest", "add", name, f"containers-storage:{ref}"])
    return refs


def registry_json(reg, path, accept=None):
    headers = {"Accept": accept} if accept else {}
    status, hdrs, body = L.http("GET", f"{reg.url}{path}", headers=headers)
    return status, hdrs, (json.loads(body) if status == 200 else None)


def check_registry(work):
    reg = L.Registry(os.path.join(work, "registry"))
    os.makedirs(reg.workdir)
    name = f"localhost/tp-tagtest-{os.getpid()}"
    refs = []
    try:
        if not R.check("docker-registry listens on 127.0.0.1", reg.start()):
            return
        L.log(f"registry on {reg.host}")
        refs = build_list(name, work)
        image = f"{reg.host}/{REPO}"
        pushed = {}
        for label, ref, sha in (("main push", "refs/heads/main", SHA_MAIN),
                                ("tag v1.2.3", "refs/tags/v1.2.3", SHA_TAG)):
            rc, out, err = tags(ref, sha, image=image)
            for full in out:
                L.run(["podman", "manifest", "push", "--all", "--quiet",
                       "--tls-verify=false", name, f"docker://{full}"])
            pushed[label] = out
            R.check(f"registry: pushed {label} as {', '.join(out)}",
                    rc == 0 and out, err)
        status, _h, body = registry_json(reg, f"/v2/{REPO}/tags/list")
        got = sorted(body["tags"]) if body else None
        R.check("registry: tag list is exactly sha-0123abc, sha-fedcba9, "
                "1.2.3, 1.2", got == sorted(["sha-0123abc", "sha-fedcba9",
                                             "1.2.3", "1.2"]), str(got))
        R.check("registry: no latest tag", got is not None and "latest" not in got)

        index_types = ", ".join([
            "application/vnd.oci.image.index.v1+json",
            "application/vnd.docker.distribution.manifest.list.v2+json"])
        digests = {}
        for t in ("sha-fedcba9", "1.2.3", "1.2"):
            status, hdrs, body = registry_json(
                reg, f"/v2/{REPO}/manifests/{t}", accept=index_types)
            digests[t] = {k.lower(): v for k, v in hdrs.items()}.get(
                "docker-content-digest")
            archs = sorted(m["platform"]["architecture"]
                           for m in (body or {}).get("manifests", []))
            R.check(f"registry: {t} is a manifest list for amd64 + arm64",
                    archs == ["amd64", "arm64"], f"status={status} {archs}")
        R.check("registry: sha and semver tags of the release are one digest",
                len(set(digests.values())) == 1
                and re.fullmatch(r"sha256:[0-9a-f]{64}",
                                 digests["1.2.3"] or ""), str(digests))

        p = L.run(["skopeo", "inspect", "--tls-verify=false",
                   "--override-arch", "arm64",
                   f"docker://{image}:1.2.3"], check=False)
        arch = json.loads(p.stdout).get("Architecture") if p.returncode == 0 \
            else p.stderr
        R.check("registry: skopeo resolves the arm64 image of 1.2.3",
                arch == "arm64", str(arch))

        check_chart_push(reg, work)
    finally:
        reg.stop()
        L.run(["podman", "manifest", "rm", name], check=False)
        for ref in refs:
            L.run(["podman", "rmi", "-f", ref], check=False)


def check_chart_push(reg, work):
    """chart.yml's package + OCI push, against the local registry."""
    out = subprocess.run([os.path.join(L.ROOT, "tests", "chart", "tools.sh")],
                         capture_output=True, text=True, timeout=900)
    if not R.check("chart tools available", out.returncode == 0,
                   out.stderr[-1000:]):
        return
    helm = dict(line.split("=", 1) for line in out.stdout.split())["HELM"]
    henv = dict(os.environ, HELM_CONFIG_HOME=f"{work}/helm/c",
                HELM_CACHE_HOME=f"{work}/helm/ca",
                HELM_DATA_HOME=f"{work}/helm/d")
    dist = os.path.join(work, "dist")

    def h(*args):
        return subprocess.run([helm, *args], env=henv, cwd=L.ROOT,
                              capture_output=True, text=True, timeout=120)

    p = h("package", "charts/tokenplace-relay", "--destination", dist,
          "--version", "1.2.3", "--app-version", "1.2.3")
    tgz = os.path.join(dist, "tokenplace-relay-1.2.3.tgz")
    if not R.check("helm package --version 1.2.3", p.returncode == 0
                   and os.path.exists(tgz), p.stderr):
        return
    p = h("push", tgz, f"oci://{reg.host}/owner/charts", "--plain-http")
    R.check("helm push to oci://127.0.0.1/owner/charts", p.returncode == 0,
            p.stderr)
    p = h("show", "chart", f"oci://{reg.host}/owner/charts/tokenplace-relay",
          "--version", "1.2.3", "--plain-http")
    R.check("helm show chart from the registry: version and appVersion 1.2.3",
            p.returncode == 0 and "version: 1.2.3" in p.stdout
            and "appVersion: 1.2.3" in p.stdout, p.stdout + p.stderr)


def main():
    L.require_root()
    check_script()
    with tempfile.TemporaryDirectory(prefix="tp-tags-") as work:
        try:
            check_registry(work)
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            R.check("registry round trip ran to the end", False, str(e))
    return R.summary()


if __name__ == "__main__":
    sys.exit(main())
