"""What install.ps1 must know about llama_cpp_python before and after pip.

Run with the checkout's venv interpreter:

    .venv\\Scripts\\python.exe llamacpp_state.py REQUIREMENTS [--rest OUT]

Prints one JSON object on stdout:

    requirement   the llama_cpp_python line of REQUIREMENTS ("llama_cpp_python==0.3.16"),
                  or null when the file has none
    pin           the exact version it pins ("0.3.16"), null when it is not an == pin
    installed     the version installed in this interpreter's environment, or null
    satisfied     true/false: the installed version matches the pin; null when
                  the requirement is not an exact pin (pip decides)
    location      where the installed llama_cpp package lives, or null
    gpu_offload   llama_cpp.llama_supports_gpu_offload() of the installed build
                  (true/false), null when it could not be imported
    import_error  why it could not be imported (null otherwise)

--rest OUT writes REQUIREMENTS without the llama_cpp_python line (nested
-r/-c paths made absolute), so pip can install everything else without
touching a build that already satisfies the pin: a plain `pip install -r`
of a changed pin would build a CPU-only llama_cpp_python from source over a
CUDA one.

The import runs in a child process bounded by --timeout seconds (default
120), so a build that crashes or hangs while loading its DLLs (a CUDA build
without the CUDA runtime on PATH) is reported instead of taking this script
down. No model is loaded. Standard library only; Python 3.8+.
Exit status: 0 answered, 2 usage error or unreadable REQUIREMENTS.
"""
import argparse
import json
import os
import re
import subprocess
import sys

DIST = "llama-cpp-python"          # normalised distribution name (PEP 503)
NAME_RE = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
# PEP 440 public version, with optional local label.
VERSION_RE = re.compile(
    r"^\s*v?(?:(?P<epoch>[0-9]+)!)?(?P<release>[0-9]+(?:\.[0-9]+)*)"
    r"(?P<pre>[-_.]?(?:a|b|c|rc|alpha|beta|pre|preview)[-_.]?[0-9]*)?"
    r"(?P<post>(?:-[0-9]+)|(?:[-_.]?(?:post|rev|r)[-_.]?[0-9]*))?"
    r"(?P<dev>[-_.]?dev[-_.]?[0-9]*)?"
    r"(?:\+(?P<local>[a-z0-9]+(?:[-_.][a-z0-9]+)*))?\s*$", re.IGNORECASE)


def normalise_name(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def _suffix(kind, text):
    """('rc', '-RC1') -> ('rc', 1) in PEP 440's canonical spelling."""
    if not text:
        return None
    text = text.lower()
    num = re.search(r"[0-9]+$", text)
    n = int(num.group(0)) if num else 0
    if kind == "pre":
        letters = re.sub(r"[^a-z]", "", text)
        letters = {"alpha": "a", "beta": "b", "c": "rc", "pre": "rc",
                   "preview": "rc"}.get(letters, letters)
        return (letters, n)
    return (kind, n)


def parse_version(text):
    """A comparable key of a PEP 440 version and its local label, or None."""
    m = VERSION_RE.match(text)
    if m is None:
        return None
    release = [int(p) for p in m.group("release").split(".")]
    while len(release) > 1 and release[-1] == 0:
        release.pop()                       # 0.3.0 == 0.3
    public = (int(m.group("epoch") or 0), tuple(release),
              _suffix("pre", m.group("pre")), _suffix("post", m.group("post")),
              _suffix("dev", m.group("dev")))
    local = m.group("local")
    return public, (local.lower().replace("-", ".").replace("_", ".") if local else None)


def pin_matches(pin, installed):
    """PEP 440 `==pin` (no wildcard) against an installed version.

    A pin without a local label matches any local label of the same public
    version: `==0.3.16` accepts a `0.3.16+cu124` wheel."""
    p, i = parse_version(pin), parse_version(installed)
    if p is None or i is None:
        return pin.strip() == installed.strip()
    if p[0] != i[0]:
        return False
    return p[1] is None or p[1] == i[1]


def find_requirement(lines):
    """(line, pin or None) of the llama_cpp_python requirement, or (None, None)."""
    for raw in lines:
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        m = NAME_RE.match(line)
        if m is None or normalise_name(m.group(1)) != DIST:
            continue
        spec = line[m.end():].split(";", 1)[0]
        spec = re.sub(r"^\s*\[[^\]]*\]", "", spec).strip()   # extras
        exact = re.fullmatch(r"===?\s*([^\s,*]+)", spec)
        return line, (exact.group(1) if exact else None)
    return None, None


def installed_version():
    try:
        from importlib import metadata
    except ImportError:                                     # < 3.8
        return None
    for name in ("llama_cpp_python", "llama-cpp-python", "llama_cpp-python"):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


PROBE = ("import json, os, llama_cpp\n"
         "print(json.dumps({'gpu_offload': bool(llama_cpp.llama_supports_gpu_offload()),"
         " 'location': os.path.dirname(os.path.abspath(llama_cpp.__file__))}))\n")


def probe_import(timeout):
    """(gpu_offload, location, error) from a child interpreter."""
    try:
        r = subprocess.run([sys.executable, "-c", PROBE], capture_output=True,
                           text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return None, None, "import llama_cpp did not finish within %g s" % timeout
    except OSError as e:
        return None, None, "could not start %s: %s" % (sys.executable, e)
    if r.returncode == 0:
        try:
            out = json.loads(r.stdout.strip().splitlines()[-1])
            return out["gpu_offload"], out["location"], None
        except (ValueError, IndexError, KeyError):
            pass
    tail = (r.stderr or r.stdout).strip().splitlines()
    why = tail[-1] if tail else "no output"
    return None, None, "import llama_cpp failed (exit status %d): %s" % (r.returncode, why[:400])


def write_rest(lines, req_dir, out):
    """REQUIREMENTS without the llama_cpp_python line; nested files absolute."""
    kept = []
    for raw in lines:
        line = raw.rstrip("\r\n")
        stripped = line.strip()
        m = re.match(r"^(-r|--requirement|-c|--constraint)(\s+|=)(.+)$", stripped)
        if m:
            target = m.group(3).strip()
            if not os.path.isabs(target) and "://" not in target:
                target = os.path.normpath(os.path.join(req_dir, target))
            kept.append("%s %s" % (m.group(1), target))
            continue
        n = NAME_RE.match(stripped)
        if n and not stripped.startswith(("#", "-")) and normalise_name(n.group(1)) == DIST:
            continue
        kept.append(line)
    with open(out, "w", encoding="utf-8") as f:
        f.write("\n".join(kept) + "\n")


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("requirements")
    ap.add_argument("--rest", help="write the requirements without llama_cpp_python here")
    ap.add_argument("--timeout", type=float, default=120.0,
                    help="seconds the import of llama_cpp may take (default 120)")
    a = ap.parse_args(argv)
    if not 1 <= a.timeout <= 3600:
        ap.error("--timeout must be 1..3600 seconds")
    try:
        with open(a.requirements, encoding="utf-8-sig") as f:
            lines = f.read().splitlines()
    except OSError as e:
        print("llamacpp_state: %s: %s" % (a.requirements, e.strerror), file=sys.stderr)
        return 2
    requirement, pin = find_requirement(lines)
    installed = installed_version()
    state = {"requirement": requirement, "pin": pin, "installed": installed,
             "satisfied": None, "location": None, "gpu_offload": None,
             "import_error": None}
    if installed is None:
        state["satisfied"] = False if requirement else None
    elif pin is not None:
        state["satisfied"] = pin_matches(pin, installed)
    if installed is not None:
        gpu, where, err = probe_import(a.timeout)
        state.update(gpu_offload=gpu, location=where, import_error=err)
    if a.rest:
        try:
            write_rest(lines, os.path.dirname(os.path.abspath(a.requirements)), a.rest)
        except OSError as e:
            print("llamacpp_state: %s: %s" % (a.rest, e.strerror), file=sys.stderr)
            return 2
    print(json.dumps(state))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
