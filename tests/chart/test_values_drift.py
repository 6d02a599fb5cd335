#!/usr/bin/python3
"""The chart's values.yaml, values.schema.json and docs/relay-deploy.md agree.

Needs only Python and Debian's python3-yaml (no helm), so it runs in every
`make check`. Checks:

  * every values.yaml leaf has a property in values.schema.json (through
    oneOf/anyOf/allOf alternatives; entries of a free-form string map such
    as podLabels are covered by the map's additionalProperties schema);
  * every schema property has a default in values.yaml (a property without
    one is an option nobody can discover from values.yaml), except inside
    the Kubernetes structures passed through as a whole (GUIDE_GROUPS);
  * every schema pattern is anchored at both ends in each alternative, so
    a value cannot pass by merely containing a valid name;
  * every values.yaml leaf is named as `path` in docs/relay-deploy.md (a few
    groups are described as a whole, see GUIDE_GROUPS);
  * every `path` in the first column of the guide's value tables exists in
    values.yaml, and where the default column lists one `code` value per
    path, each equals the values.yaml default.

Every problem is reported at once, each naming the path and the file to
fix, so a branch that adds a value learns what is missing after a merge.
Ends with `N passed, N failed`.
"""
import json
import os
import re
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
CHART = os.path.join(ROOT, "charts", "tokenplace-relay")
VALUES_REL = "charts/tokenplace-relay/values.yaml"
SCHEMA_REL = "charts/tokenplace-relay/values.schema.json"
GUIDE_REL = "docs/relay-deploy.md"

# Value groups the guide describes as a whole rather than key by key.
GUIDE_GROUPS = {"resources", "podSecurityContext", "securityContext",
                "probes.liveness", "probes.readiness", "probes.startup",
                "networkPolicy.ingressController.podLabels", "affinity"}

CODE = re.compile(r"`([^`]*)`")
VALUE_PATH = re.compile(r"^[A-Za-z][A-Za-z0-9]*(\.[A-Za-z][A-Za-z0-9]*"
                        r"|\[\*\]\.[A-Za-z][A-Za-z0-9]*)*$")


class Results:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name, problems):
        if not problems:
            self.passed += 1
            print(f"ok   {name}")
        else:
            self.failed += 1
            print(f"FAIL {name} ({len(problems)}):")
            for p in problems:
                print(f"     - {p}")


def leaves(values, prefix=""):
    """(dotted path, value) of every leaf; empty maps and lists are leaves."""
    for k, v in values.items():
        path = prefix + str(k)
        if isinstance(v, dict) and v:
            yield from leaves(v, path + ".")
        else:
            yield path, v


def alternatives(node):
    """node and the schemas of its oneOf/anyOf/allOf alternatives."""
    out = [node]
    for key in ("oneOf", "anyOf", "allOf"):
        for sub in node.get(key, []) or []:
            if isinstance(sub, dict):
                out.extend(alternatives(sub))
    return out


def schema_lookup(schema, path):
    """'ok', 'map' (covered by an additionalProperties schema) or None."""
    nodes = [schema]
    parts = path.split(".")
    for i, part in enumerate(parts):
        nxt, by_map = [], False
        for n in nodes:
            for alt in alternatives(n):
                props = alt.get("properties") or {}
                if part in props:
                    nxt.append(props[part])
                elif isinstance(alt.get("additionalProperties"), dict):
                    by_map = True
        if not nxt:
            return "map" if by_map else None
        nodes = nxt
    return "ok"


def schema_properties(node, prefix=""):
    """Dotted paths of every object property the schema names."""
    for alt in alternatives(node):
        for k, v in (alt.get("properties") or {}).items():
            path = prefix + k
            yield path
            yield from schema_properties(v, path + ".")


def schema_patterns(node, where="#"):
    """(location, pattern) of every pattern in the schema."""
    if isinstance(node, dict):
        if isinstance(node.get("pattern"), str):
            yield where, node["pattern"]
        for k, v in node.items():
            yield from schema_patterns(v, f"{where}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from schema_patterns(v, f"{where}/{i}")


def top_level_alternatives(pattern):
    """Splits a regex on | outside groups and classes."""
    alts, cur, depth, in_class, esc = [], "", 0, False, False
    for ch in pattern:
        if esc:
            cur += ch
            esc = False
            continue
        if ch == "\\":
            cur += ch
            esc = True
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "|" and depth == 0:
            alts.append(cur)
            cur = ""
            continue
        cur += ch
    alts.append(cur)
    return alts


def anchored(pattern):
    return all(a.startswith("^") and a.endswith("$") and not a.endswith("\\$")
               for a in top_level_alternatives(pattern))


def yaml_text(v):
    """A values.yaml default as the guide writes it in `code`."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if v == "":
        return '""'
    if v == []:
        return "[]"
    if v == {}:
        return "{}"
    if isinstance(v, (int, float, str)):
        return str(v)
    return None         # a list or map with content: described in prose


def guide_value_rows(text):
    """(line number, [paths], default cell) of the guide's value tables."""
    rows, lines = [], text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("|") and i + 1 < len(lines) \
                and re.match(r"^\|\s*-{3,}", lines[i + 1]):
            header = [c.strip().lower() for c in lines[i].strip("|").split("|")]
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                if header and header[0] == "value":
                    cells = [c.strip() for c in lines[i].strip().strip("|")
                             .split("|")]
                    paths = CODE.findall(cells[0])
                    default = cells[1] if len(cells) > 1 and \
                        len(header) > 1 and header[1] == "default" else None
                    rows.append((i + 1, paths, default))
                i += 1
            continue
        i += 1
    return rows


def main():
    R = Results()
    with open(os.path.join(CHART, "values.yaml"), encoding="utf-8") as f:
        values = yaml.safe_load(f)
    with open(os.path.join(CHART, "values.schema.json"), encoding="utf-8") as f:
        schema = json.load(f)
    with open(os.path.join(ROOT, GUIDE_REL), encoding="utf-8") as f:
        guide = f.read()
    all_leaves = dict(leaves(values))

    problems = []
    for path in all_leaves:
        if schema_lookup(schema, path) is None:
            problems.append(f"{path}: in {VALUES_REL} but not described by "
                            f"{SCHEMA_REL} (add a property with its type)")
    R.check("every values.yaml leaf is in values.schema.json", problems)

    def in_values(path):
        node = values
        for part in path.split("."):
            if not isinstance(node, dict) or part not in node:
                return False
            node = node[part]
        return True

    problems = []
    for path in sorted(set(schema_properties(schema))):
        if path == "global":
            continue            # Helm's own key for subcharts
        if any(path.startswith(g + ".") for g in GUIDE_GROUPS):
            continue            # Kubernetes' own structure, passed through
        # Properties inside list items (ingress.hosts[*].host) are not
        # values.yaml keys; only object properties are walked here.
        if not in_values(path):
            problems.append(f"{path}: allowed by {SCHEMA_REL} but has no "
                            f"default in {VALUES_REL} (add it there and to "
                            f"{GUIDE_REL})")
    R.check("every schema property has a default in values.yaml", problems)

    problems = [f"{SCHEMA_REL} {where}: pattern {pat!r} is not anchored "
                f"(^...$) in every alternative"
                for where, pat in schema_patterns(schema) if not anchored(pat)]
    R.check("every schema pattern is anchored at both ends", problems)

    problems = []
    documented = set()
    for path in all_leaves:
        group = next((g for g in GUIDE_GROUPS
                      if path == g or path.startswith(g + ".")), None)
        name = group or path
        documented.add(name)
        if f"`{name}`" not in guide:
            problems.append(f"{name}: in {VALUES_REL} but not named as "
                            f"`{name}` in {GUIDE_REL} (add a row to the "
                            f"values tables)")
    R.check("every values.yaml leaf is described in the guide",
            sorted(set(problems)))

    problems = []
    compared = 0
    for line, paths, default in guide_value_rows(guide):
        for p in paths:
            if not VALUE_PATH.match(p):
                problems.append(f"{GUIDE_REL}:{line}: first cell names "
                                f"`{p}`, which is not a value path")
                continue
            base = p.split("[*]")[0]
            if not in_values(base):
                problems.append(f"{GUIDE_REL}:{line}: `{p}` is not in "
                                f"{VALUES_REL}")
        if default is None:
            continue
        # Compared only when the default cell starts with one `code` value
        # per path; prose defaults ("see values.yaml") are left alone.
        spans = re.match(r"^((?:`[^`]*`\s*,\s*)*`[^`]*`)", default)
        got = CODE.findall(spans.group(1)) if spans else []
        if len(got) != len(paths):
            continue
        for p, d in zip(paths, got):
            if "[*]" in p or not in_values(p):
                continue
            want = yaml_text(all_leaves.get(p, None)) if p in all_leaves \
                else None
            if want is None:
                continue
            compared += 1
            if d != want:
                problems.append(f"{GUIDE_REL}:{line}: `{p}` default "
                                f"documented as `{d}`, {VALUES_REL} has "
                                f"`{want}`")
    if compared < 20:
        problems.append(f"only {compared} documented defaults could be "
                        f"compared; has the guide's table format changed?")
    R.check("the guide's value tables name existing values with their "
            "defaults", problems)

    print(f"{R.passed} passed, {R.failed} failed")
    return 1 if R.failed else 0


if __name__ == "__main__":
    sys.exit(main())
