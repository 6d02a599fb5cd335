#!/usr/bin/python3
"""Parse tp_metrics_render() output back with prometheus_client.

Runs tests/unit/tp_metrics_dump (path in $TP_METRICS_DUMP), feeds it
updates with hostile label values and awkward numbers, and checks with
Debian's python3-prometheus-client parser that every family, type, help
text, label value and value comes back exactly as it went in, and that
every value and le label is spelled as prometheus_client itself would
spell it (floatToGoString).

Set TP_METRICS_SEED to replay a failing random run; the seed in use is
printed on failure.
"""
import math
import os
import random
import struct
import subprocess
import unittest

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.utils import floatToGoString

DUMP = os.environ.get("TP_METRICS_DUMP", "")
MAX_VALUE_LEN = 1024          # TP_METRICS_MAX_LABEL_VALUE_LEN
ROOM_CAP = 50                 # tp_metrics_dump caps dump_temperature_celsius
DEFAULT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75,
                   1.0, 2.5, 5.0, 7.5, 10.0]
PAYLOAD_BUCKETS = [1e-05, 0.0001, 0.5, 1000.0, 100000.0, 1e6, 1234567.0,
                   1e15, 1e16, 1.5e17]
HELP = {
    "dump_requests": 'Requests by "method" and path, C:\\dir\n'
                     "second line \u00e9\u20ac.",
    "dump_temperature_celsius": "Temperature per room.",
    "dump_request_duration_seconds":
        "Request duration with the Python client's default buckets.",
    "dump_events": "",
    "dump_queue_depth": "Backslash at the end \\",
    "dump_payload_bytes": "Payload sizes.",
    "dump_callback_value": "Computed at render time.",
}
PROCESS = [
    ("process_virtual_memory_bytes", "gauge"),
    ("process_resident_memory_bytes", "gauge"),
    ("process_start_time_seconds", "gauge"),
    ("process_cpu_seconds", "counter"),
    ("process_open_fds", "gauge"),
    ("process_max_fds", "gauge"),
]

HOSTILE = [
    b"", b'"', b"\\", b"\n", b"\\n", b'"}', b'le="1"', b",", b"=", b" ",
    b"\t", b"\r", b"} 1.0\n# HELP x", "\u00e9\u20ac\U0001F600".encode(),
    "\u2028\u0085\u00a0".encode(), b"\x01\x1f\x7f", b"a" * 2000,
    ("\u00e9" * 700).encode(), ("x" + "\U0001F600" * 300).encode(),
    b"\xff", b"\x80", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
    b"a\xe2\x82b", b"\xf0\x9f\x98", b"tail\xc3",
]
NUMBERS = [0.0, -0.0, 1.0, 0.5, 0.25, 3.75, 1000.0, 0.005, 0.1, 12.0,
           1e-05, 123456.75, 1234567.0, 1e15, 2.0 ** 53, 1e16, 5e-324,
           1.7976931348623157e308, -1.0, -2.5, math.inf, -math.inf,
           math.nan]


def bits(v):
    return struct.pack(">d", v).hex()


def hexs(b):
    return b.hex() if b else "-"


def expected_label(raw):
    """The label value tp_metrics stores for raw bytes: each invalid UTF-8
    byte becomes U+FFFD, then cut to MAX_VALUE_LEN bytes on a character
    boundary."""
    out, size, i = [], 0, 0
    while i < len(raw):
        for n in range(1, 5):
            try:
                ch = raw[i:i + n].decode("utf-8")
            except UnicodeDecodeError:
                continue
            if len(ch) == 1:
                break
        else:
            ch, n = "\ufffd", 1
        enc = len(ch.encode())
        if size + enc > MAX_VALUE_LEN:
            break
        out.append(ch)
        size += enc
        i += n
    return "".join(out)


class Counter:
    """A counter child as tp_metrics keeps it: whole increments apart."""

    def __init__(self):
        self.whole, self.frac = 0, 0.0

    def add(self, v):
        if not v >= 0:
            return
        if v <= 2.0 ** 53 and v == math.floor(v):
            self.whole += int(v)
        else:
            self.frac += v

    def value(self):
        return float(self.whole) + self.frac


class Histogram:
    def __init__(self, bounds):
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, v):
        if math.isnan(v):
            return
        i = next((k for k, b in enumerate(self.bounds) if v <= b),
                 len(self.bounds))
        self.counts[i] += 1
        self.sum += v

    def samples(self, name, labels):
        cum = 0
        for k, c in enumerate(self.counts):
            cum += c
            le = (floatToGoString(self.bounds[k]) if k < len(self.bounds)
                  else "+Inf")
            yield (name + "_bucket", dict(labels, le=le), float(cum))
        yield (name + "_sum", dict(labels), self.sum)
        yield (name + "_count", dict(labels), float(cum))


class Model:
    """What tp_metrics_dump must print for a list of updates."""

    def __init__(self):
        self.requests = {}
        self.rooms = {}
        self.routes = {}
        self.events = Counter()
        self.depth = 0.0
        self.payload = Histogram(PAYLOAD_BUCKETS)
        self.callback = 0.0
        self.dropped = {"dump_requests_total": 0,
                        "dump_temperature_celsius": 0,
                        "dump_request_duration_seconds": 0}
        self.lines = []

    def op(self, kind, strings, v):
        self.lines.append(" ".join([kind] + [hexs(s) for s in strings]
                                   + [bits(v)]))
        keys = tuple(expected_label(s) for s in strings)
        if kind == "c":
            self.requests.setdefault(keys, Counter()).add(v)
        elif kind in "ga":
            if keys not in self.rooms:
                if len(self.rooms) >= ROOM_CAP:
                    self.dropped["dump_temperature_celsius"] += 1
                    return
                self.rooms[keys] = 0.0
            self.rooms[keys] = v if kind == "g" else self.rooms[keys] + v
        elif kind == "h":
            self.routes.setdefault(keys, Histogram(DEFAULT_BUCKETS)).observe(v)
        elif kind == "C":
            self.events.add(v)
        elif kind == "G":
            self.depth = v
        elif kind == "H":
            self.payload.observe(v)
        elif kind == "F":
            self.callback = v

    def families(self):
        """[(family name, type, help, [(sample, labels, value)])]"""
        req = [("dump_requests_total", {"method": k[0], "path": k[1]},
                c.value()) for k, c in self.requests.items()]
        rooms = [("dump_temperature_celsius", {"room": k[0]}, v)
                 for k, v in self.rooms.items()]
        routes = [s for k, h in self.routes.items()
                  for s in h.samples("dump_request_duration_seconds",
                                     {"route": k[0]})]
        dropped = [("tp_metrics_dropped_total", {"metric": m}, float(n))
                   for m, n in self.dropped.items()]
        return [
            ("dump_requests", "counter", req),
            ("dump_temperature_celsius", "gauge", rooms),
            ("dump_request_duration_seconds", "histogram", routes),
            ("dump_events", "counter",
             [("dump_events_total", {}, self.events.value())]),
            ("dump_queue_depth", "gauge",
             [("dump_queue_depth", {}, self.depth)]),
            ("dump_payload_bytes", "histogram",
             list(self.payload.samples("dump_payload_bytes", {}))),
            ("dump_callback_value", "gauge",
             [("dump_callback_value", {}, self.callback)]),
        ] + [(n, t, None) for n, t in PROCESS] + [
            ("tp_metrics_dropped", "counter", dropped),
        ]


def run_dump(stdin_text=None):
    args = [DUMP] + (["-"] if stdin_text is not None else [])
    proc = subprocess.run(args, input=(stdin_text or "").encode(),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=60, check=False)
    if proc.returncode != 0:
        raise AssertionError("tp_metrics_dump failed: %r"
                             % proc.stderr.decode(errors="replace"))
    return proc.stdout.decode("utf-8")   # must be valid UTF-8


def same_float(a, b):
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)


class MetricsParseTest(unittest.TestCase):

    def setUp(self):
        if not DUMP or not os.access(DUMP, os.X_OK):
            self.fail("TP_METRICS_DUMP must name the tp_metrics_dump binary")

    def check_spelling(self, text):
        """Every value (and le) is spelled as prometheus_client spells it."""
        self.assertTrue(text.endswith("\n"))
        for line in text.split("\n")[:-1]:
            if line.startswith("#"):
                continue
            head, value = line.rsplit(" ", 1)
            self.assertEqual(value, floatToGoString(float(value)), line)
            if '_bucket{' in head and 'le="' in head:
                le = head[head.rindex('le="') + 4:-2]
                self.assertEqual(le, floatToGoString(float(le)), line)

    def check_against_model(self, model, text):
        self.check_spelling(text)
        got = list(text_string_to_metric_families(text))
        want = model.families()
        self.assertEqual([(f.name, f.type) for f in got],
                         [(n, t) for n, t, _ in want])
        for fam, (name, typ, samples) in zip(got, want):
            if name in HELP:
                self.assertEqual(fam.documentation, HELP[name])
            if samples is None:
                continue
            self.assertEqual(len(fam.samples), len(samples), name)
            for s, (sname, labels, value) in zip(fam.samples, samples):
                self.assertEqual(s.name, sname)
                self.assertEqual(s.labels, labels)
                self.assertTrue(same_float(s.value, value),
                                "%s%r: got %r want %r"
                                % (sname, labels, s.value, value))
        process = {f.name: f for f in got}
        for name, _ in PROCESS:
            self.assertEqual(len(process[name].samples), 1)
            self.assertTrue(process[name].samples[0].value >= 0, name)
        self.assertGreater(process["process_resident_memory_bytes"]
                           .samples[0].value, 0)
        self.assertGreater(process["process_max_fds"].samples[0].value,
                           process["process_open_fds"].samples[0].value)

    def test_builtin_hostile_values_round_trip(self):
        text = run_dump()
        self.check_spelling(text)
        fams = {f.name: f for f in text_string_to_metric_families(text)}
        paths = [s.labels["path"] for s in fams["dump_requests"].samples]
        self.assertEqual(paths, ["/", 'a"b\\c\nd',
                                 "\u00e9\u20ac\U0001F600",
                                 "A\ufffdB\ufffd", 'le="x",a="}"', "/"])
        self.assertEqual(fams["dump_requests"].samples[5].labels["method"],
                         "")
        rooms = {s.labels["room"]: s.value
                 for s in fams["dump_temperature_celsius"].samples}
        self.assertTrue(math.isnan(rooms["nan"]))
        self.assertEqual(rooms["inf"], math.inf)
        self.assertEqual(rooms["-inf"], -math.inf)
        self.assertTrue(same_float(rooms["minuszero"], -0.0))
        self.assertEqual(rooms["subnormal"], 5e-324)
        self.assertEqual(rooms["third"], 0.1 + 0.2)
        self.assertEqual(rooms["e15\n"], 1e15)
        self.assertEqual(fams["dump_requests"].documentation,
                         HELP["dump_requests"])
        les = [s.labels["le"] for s in fams["dump_payload_bytes"].samples
               if s.name.endswith("_bucket")]
        self.assertEqual(les, [floatToGoString(b) for b in PAYLOAD_BUCKETS]
                         + ["+Inf"])

    def test_hostile_labels_and_values_round_trip(self):
        model = Model()
        for raw in HOSTILE:
            model.op("c", [raw, b"/"], 1.0)
            model.op("c", [b"GET", raw], 0.5)
            model.op("g", [raw], 2.0)
            model.op("h", [raw], 0.005)
        for v in NUMBERS:
            model.op("c", [b"GET", b"/n"], v)
            model.op("C", [], v)
            model.op("g", [b"n" + bits(v).encode()], v)
            model.op("h", [b"/n"], v)
            model.op("H", [], v)
            model.op("G", [], v)
        model.op("F", [], 1234567.0)
        model.op("a", [b"n" + bits(1.0).encode()], 0.25)
        self.check_against_model(model, run_dump("\n".join(model.lines)))

    def test_random_updates_round_trip(self):
        seed = int(os.environ.get("TP_METRICS_SEED",
                                  random.SystemRandom().randrange(2 ** 32)))
        rng = random.Random(seed)

        def label():
            pick = rng.random()
            if pick < 0.3:
                return rng.choice(HOSTILE)
            if pick < 0.6:
                return bytes(rng.randrange(1, 256)
                             for _ in range(rng.randrange(0, 12)))
            return "".join(chr(rng.choice([rng.randrange(0x20, 0x7f),
                                           rng.randrange(0xa0, 0xd800),
                                           rng.randrange(0xe000, 0x110000)]))
                           for _ in range(rng.randrange(0, 8))).encode()

        def number():
            pick = rng.random()
            if pick < 0.3:
                return rng.choice(NUMBERS)
            if pick < 0.5:
                return float(rng.randrange(0, 1000))
            if pick < 0.8:
                return rng.uniform(-1e3, 1e3)
            while True:   # any finite bit pattern, NaN payloads aside
                v = struct.unpack(">d", rng.randbytes(8))[0]
                if not math.isnan(v):
                    return v

        model = Model()
        for _ in range(3000):
            kind = rng.choice("cgahCGHF")
            nstr = {"c": 2, "g": 1, "a": 1, "h": 1}.get(kind, 0)
            model.op(kind, [label() for _ in range(nstr)], number())
        try:
            self.check_against_model(model, run_dump("\n".join(model.lines)))
        except AssertionError:
            print("TP_METRICS_SEED=%d" % seed)
            raise


if __name__ == "__main__":
    unittest.main(verbosity=2)
