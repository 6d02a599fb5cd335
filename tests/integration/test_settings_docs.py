"""docs/configuration.md says exactly what the relay's settings table says.

Reads the table from the binary (`tokenplace-relay --list-settings`, JSON
lines written by libtokenplace's tp_config_list() from relay/src/settings.c)
and every settings table of docs/configuration.md (a markdown table whose
first column is `variable`), then checks, for every setting:

  * exactly one row, whose first cell names the variable as `CODE`
    (and its fallback as "(fallback `CODE`)" when it has one);
  * the default column: the first `code` value, or a cell starting with
    "empty" for an empty default;
  * the bounds column: "min–max" (an en dash, "-" or "..") for numbers,
    "≥min" when there is no real upper limit, "boolean" for booleans;
    string lengths as "min–max" or "≤max" (required unless the setting has
    its own format check, and compared whenever given);

and that every documented variable is one the relay reads. Every problem
is reported at once, each naming the variable and what to write, so a
branch that adds a setting learns exactly which row to add or fix.
"""

import json
import os
import re
import subprocess
import sys
import unittest

from relaytest import RELAY_BIN, WRAPPER, scaled

DOC_REL = "docs/configuration.md"
DOC = os.path.join(os.environ.get("TP_SOURCE_DIR", ""), DOC_REL)
# Upper bounds at or above this are "no real limit" (settings.c's BIG).
UNBOUNDED = 1e15

CODE = re.compile(r"`([^`]*)`")
RANGE = re.compile(r"(\d+(?:\.\d+)?)\s*(?:–|-|\.\.)\s*(\d+(?:\.\d+)?)")
AT_LEAST = re.compile(r"(?:≥|>=)\s*(\d+(?:\.\d+)?)")
AT_MOST = re.compile(r"(?:≤|<=)\s*(\d+(?:\.\d+)?)")


def list_settings():
    """The binary's table: [{name, env, env_fallback, type, default, ...}]."""
    out = subprocess.run(WRAPPER + [RELAY_BIN, "--list-settings"],
                         env={"PATH": "/usr/bin:/bin"}, capture_output=True,
                         text=True, timeout=scaled(60))
    if out.returncode != 0:
        raise AssertionError("--list-settings exited %d: %s"
                             % (out.returncode, out.stderr))
    return [json.loads(line) for line in out.stdout.splitlines() if line]


def split_row(line):
    """Cells of a markdown table row; a | inside `code` does not split."""
    cells, cur, in_code = [], "", False
    body = line.strip()
    if body.startswith("|"):
        body = body[1:]
    if body.endswith("|") and not body.endswith("\\|"):
        body = body[:-1]
    for ch in body:
        if ch == "`":
            in_code = not in_code
        if ch == "|" and not in_code and not cur.endswith("\\"):
            cells.append(cur.strip())
            cur = ""
            continue
        cur += ch
    cells.append(cur.strip())
    return cells


def doc_tables(text):
    """Settings tables: [(section, header cells, [(line no, cells)])]."""
    tables, section = [], ""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            section = line.lstrip("#").strip()
        if line.startswith("|") and i + 1 < len(lines) \
                and re.match(r"^\|\s*:?-{3,}", lines[i + 1]):
            header = [c.lower() for c in split_row(line)]
            rows = []
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                rows.append((i + 1, split_row(lines[i])))
                i += 1
            if header and header[0] == "variable":
                tables.append((section, header, rows))
            continue
        i += 1
    return tables


def fmt_num(v):
    return "%d" % v if float(v).is_integer() else repr(v)


def suggested_bounds(s):
    if s["type"] == "bool":
        return "boolean"
    lo, hi = s["min"], s["max"]
    unit = " bytes" if s["type"] == "string" else ""
    if hi >= UNBOUNDED:
        return "≥" + fmt_num(lo) + unit
    if s["type"] == "string" and lo == 0:
        return "≤" + fmt_num(hi) + unit
    return "%s–%s%s" % (fmt_num(lo), fmt_num(hi), unit)


def suggested_row(s):
    var = "`%s`" % s["env"]
    if s["env_fallback"]:
        var += " (fallback `%s`)" % s["env_fallback"]
    default = "`%s`" % s["default"] if s["default"] != "" else "empty"
    return "| %s | %s | %s | %s |" % (var, default, suggested_bounds(s),
                                      s["help"])


def doc_default(cell):
    """The default a cell states: "" for "empty ...", else the first code."""
    if cell.lower().startswith("empty"):
        return ""
    m = CODE.search(cell)
    if m is None:
        return None
    return "" if m.group(1) in ('""', "''") else m.group(1)


def same_default(s, documented):
    want = s["default"]
    if s["type"] == "bool":
        return documented.lower() == want.lower()
    if s["type"] in ("int", "double"):
        try:
            return float(documented) == float(want)
        except ValueError:
            return False
    return documented == want


def bounds_problem(s, cell):
    """None when the bounds cell agrees with the table, else the reason."""
    if s["type"] == "bool":
        return None if "boolean" in cell.lower() else \
            "a boolean; the bounds column must say 'boolean'"
    lo, hi = float(s["min"]), float(s["max"])
    what = "value" if s["type"] in ("int", "double") else "length"
    m = RANGE.search(cell)
    if m:
        got = (float(m.group(1)), float(m.group(2)))
    elif AT_LEAST.search(cell):
        got = (float(AT_LEAST.search(cell).group(1)), float("inf"))
    elif AT_MOST.search(cell):
        got = (0.0, float(AT_MOST.search(cell).group(1)))
    else:
        if s["type"] == "string" and s["validated"]:
            return None     # its own format check; the cell describes it
        return "no %s bounds in the bounds column (want %s)" % (
            what, suggested_bounds(s))
    want = (lo, float("inf") if hi >= UNBOUNDED else hi)
    if got != want:
        return "%s bounds documented as %s, the relay's are %s" % (
            what, cell, suggested_bounds(s))
    return None


class SettingsDocs(unittest.TestCase):
    def test_configuration_md_matches_the_binary(self):
        settings = list_settings()
        self.assertGreater(len(settings), 10, "--list-settings listed "
                           "fewer than 10 settings")
        with open(DOC, encoding="utf-8") as f:
            tables = doc_tables(f.read())
        self.assertTrue(tables, "%s has no table whose first column is "
                        "'variable'" % DOC_REL)

        problems = []
        rows = {}       # env -> (line, cells, header)
        for section, header, table_rows in tables:
            for col in ("default", "bounds"):
                if col not in header:
                    problems.append(
                        "%s, section '%s': the table has no '%s' column "
                        "(columns: %s)" % (DOC_REL, section, col,
                                           " | ".join(header)))
            for line, cells in table_rows:
                m = CODE.match(cells[0]) if cells else None
                if m is None:
                    problems.append("%s:%d: the first cell must be the "
                                    "variable as `NAME`: %r"
                                    % (DOC_REL, line, cells[0]))
                    continue
                env = m.group(1)
                if env in rows:
                    problems.append("%s:%d: `%s` is documented twice (also "
                                    "line %d); keep one row"
                                    % (DOC_REL, line, env, rows[env][0]))
                    continue
                rows[env] = (line, cells, header)

        known = {s["env"] for s in settings}
        for env, (line, _cells, _h) in sorted(rows.items()):
            if env not in known:
                problems.append(
                    "%s:%d documents `%s`, which the relay does not read "
                    "(not in tokenplace-relay --list-settings); remove the "
                    "row or add the setting to relay/src/settings.c"
                    % (DOC_REL, line, env))

        for s in settings:
            env = s["env"]
            if env not in rows:
                problems.append(
                    "%s (setting '%s' in relay/src/settings.c) has no row in "
                    "%s; add one to the right section, e.g.\n    %s"
                    % (env, s["name"], DOC_REL, suggested_row(s)))
                continue
            line, cells, header = rows[env]
            where = "%s:%d (`%s`)" % (DOC_REL, line, env)
            if len(cells) != len(header):
                problems.append("%s: %d cells for %d columns"
                                % (where, len(cells), len(header)))
                continue
            cell = dict(zip(header, cells))
            fb = re.search(r"fallback\s+`([^`]*)`", cells[0])
            documented_fb = fb.group(1) if fb else None
            if documented_fb != s["env_fallback"]:
                problems.append(
                    "%s: fallback variable documented as %s, the relay's is "
                    "%s (write \"(fallback `NAME`)\" in the first cell)"
                    % (where, documented_fb, s["env_fallback"]))
            if "default" in cell:
                got = doc_default(cell["default"])
                if got is None:
                    problems.append(
                        "%s: the default column has no `code` value (and "
                        "does not start with 'empty'): %r"
                        % (where, cell["default"]))
                elif not same_default(s, got):
                    problems.append(
                        "%s: default documented as %r, the relay's is %r"
                        % (where, got, s["default"]))
            if "bounds" in cell:
                why = bounds_problem(s, cell["bounds"])
                if why:
                    problems.append("%s: %s" % (where, why))

        if problems:
            self.fail("%s and relay/src/settings.c disagree (%d problems):\n"
                      "- %s" % (DOC_REL, len(problems),
                                "\n- ".join(problems)))


class Parser(unittest.TestCase):
    """The markdown reading itself, on inputs made to trip it."""

    def test_split_row_keeps_pipes_in_code(self):
        self.assertEqual(split_row("| `A|B` | `x` | 1–2 | a \\| b |"),
                         ["`A|B`", "`x`", "1–2", "a \\| b"])

    def test_defaults(self):
        self.assertEqual(doc_default("`127.0.0.1` (image: `0.0.0.0`)"),
                         "127.0.0.1")
        self.assertEqual(doc_default("empty = `http://<gpu host>`"), "")
        self.assertEqual(doc_default('`""`'), "")
        self.assertIsNone(doc_default("none"))

    def test_bounds(self):
        port = {"type": "int", "min": 0, "max": 65535, "validated": False}
        self.assertIsNone(bounds_problem(port, "0–65535"))
        self.assertIsNone(bounds_problem(port, "0-65535 s"))
        self.assertIn("65535", bounds_problem(port, "1–65535"))
        self.assertIn("no value bounds", bounds_problem(port, "a port"))
        big = {"type": "int", "min": 1024, "max": 1e15, "validated": False}
        self.assertIsNone(bounds_problem(big, "≥1024"))
        self.assertIsNotNone(bounds_problem(big, "1024–4096"))
        text = {"type": "string", "min": 0, "max": 255, "validated": False}
        self.assertIsNone(bounds_problem(text, "≤255 printable ASCII"))
        self.assertIsNotNone(bounds_problem(text, "printable ASCII"))
        checked = dict(text, validated=True)
        self.assertIsNone(bounds_problem(checked, "an http:// URL"))
        self.assertIsNotNone(bounds_problem(checked, "≤128 chars"))
        flag = {"type": "bool", "min": None, "max": None, "validated": False}
        self.assertIsNone(bounds_problem(flag, "boolean"))
        self.assertIsNotNone(bounds_problem(flag, "true or false"))

    def test_tables(self):
        text = ("# A\n\n| variable | default | bounds | meaning |\n"
                "|---|---|---|---|\n| `X` (fallback `Y`) | `1` | 0–2 | m |\n"
                "\n| path | answers |\n|---|---|\n| `/livez` | 200 |\n")
        tables = doc_tables(text)
        self.assertEqual(len(tables), 1)
        section, header, rows = tables[0]
        self.assertEqual((section, header[2]), ("A", "bounds"))
        self.assertEqual(rows, [(5, ["`X` (fallback `Y`)", "`1`", "0–2",
                                     "m"])])


if __name__ == "__main__":
    unittest.main(verbosity=2)
