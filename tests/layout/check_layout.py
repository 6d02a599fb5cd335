#!/usr/bin/env python3
"""The shape of the tree (docs/internals/layout.md): every include in
relay/src names its folder and points the allowed way, and no C file of
relay/, gpuhost/ or shared/ is longer than 1,200 lines.

Allowed directions: the top level (main, app, settings, the route table,
the ops handlers, the state start-up) -> anything; web -> legacy, v1;
legacy, v1 -> store; store -> redis; every folder -> core, its own
folder, http/http.h, app.h, settings.h. Exit 0 when all hold, else 1 with
one line per breach."""
import os
import re
import sys

MAX_LINES = 1200
FOLDERS = {"core", "http", "redis", "store", "legacy", "v1", "upstream", "web"}
DOWN = {"web": {"legacy", "v1"}, "legacy": {"store"}, "v1": {"store"},
        "store": {"redis"}}
EVERYONE = {"http/http.h", "app.h", "settings.h"}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def folder_of(rel):
    parts = rel.split("/")
    return parts[0] if len(parts) > 1 else "top"


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "."
    src = os.path.join(root, "relay", "src")
    breaches = []
    headers = set()
    for dirpath, _, files in os.walk(src):
        for f in files:
            headers.add(os.path.relpath(os.path.join(dirpath, f), src))
    for rel in sorted(headers):
        if not rel.endswith((".c", ".h")):
            continue
        here = folder_of(rel)
        if here != "top" and here not in FOLDERS:
            breaches.append("%s: folder %s is not in the map" % (rel, here))
        text = open(os.path.join(src, rel), encoding="utf-8").read()
        for m in INCLUDE.finditer(text):
            inc = m.group(1)
            line = text.count("\n", 0, m.start()) + 1
            if inc.startswith("tokenplace/"):
                continue
            if inc not in headers:
                # a generated file, or a bare name of a file in a folder
                bare = [h for h in headers if h.endswith("/" + inc)]
                if bare:
                    breaches.append("%s:%d: \"%s\" must name its folder "
                                    "(\"%s\")" % (rel, line, inc, bare[0]))
                continue
            there = folder_of(inc)
            if (here == "top" or there == here or there == "core" or
                    inc in EVERYONE or there in DOWN.get(here, ())):
                continue
            breaches.append("%s:%d: %s -> %s (\"%s\") points the wrong way"
                            % (rel, line, here, there, inc))
    for top in ("relay", "gpuhost", "shared"):
        for dirpath, _, files in os.walk(os.path.join(root, top)):
            for f in files:
                if f.endswith(".c"):
                    p = os.path.join(dirpath, f)
                    with open(p, encoding="utf-8") as fh:
                        n = sum(1 for _ in fh)
                    if n > MAX_LINES:
                        breaches.append("%s: %d lines (at most %d)" % (
                            os.path.relpath(p, root), n, MAX_LINES))
    for b in breaches:
        print(b)
    print("%d breach(es)" % len(breaches))
    return 1 if breaches else 0


if __name__ == "__main__":
    sys.exit(main())
