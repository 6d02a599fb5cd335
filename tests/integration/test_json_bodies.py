"""Hostile JSON bodies over HTTP against the real relay (issue 12).

Bodies nested 100, 500, 1,000, 10^5 and 10^6 levels deep (arrays and
objects) go to every JSON route of both protocol generations. Each gets a
JSON 4xx in its route's shape: 400 "too deep" from the linear pre-scan, or
413 where the body is larger than the route's documented body limit
(RELAY_MAX_BODY_BYTES, 16 KiB for /api/v1/relay/progress), which is
checked first. Then the relay must be alive, a legacy and an API v1 job
queued before the barrage must still be delivered, and fresh cycles of
both generations must complete.

The strict rules (trailing data, duplicate members, \\u0000, key types,
syntax) are then sent to every route too: each refusal in the route's
shape with its own code or message, counted by kind in /metrics, logged
once with the request id, and nothing stored.

The refused bodies above 1 MiB are read and dropped by the relay
(RELAY_MAX_DISCARD_BYTES is raised here) so the client always reads the
answer instead of racing a reset."""

import json
import os
import re
import unittest
import uuid

from relaytest import Relay, main, metric_value, scaled

V1 = "/api/v1/relay"
PROTO = "tokenplace_api_v1_relay_e2ee"
MAX_BODY = 1048576            # RELAY_MAX_BODY_BYTES default
PROGRESS_MAX = 16384          # TP_V1_PROGRESS_MAX_BYTES
MAX_DEPTH = 64                # TP_JSON_MAX_DEPTH / RELAY_JSON_MAX_DEPTH
DEPTHS = (100, 500, 1000, 10 ** 5, 10 ** 6)

ENV = {
    "RELAY_MAX_DISCARD_BYTES": str(16 * 1024 * 1024),
    "RELAY_SERVER_TTL_SECONDS": "3600",
    "RELAY_SERVER_BUSY_TTL_SECONDS": "3600",
    "TOKEN_PLACE_API_V1_RELAY_SERVER_LEASE_SECONDS": "3600",
    "TOKEN_PLACE_API_V1_RELAY_POLL_WAIT_SECONDS": "0",
}

# Every route that reads a JSON body: path, error shape, one valid body
# whose first key member is the "%s", and that member's name.
ROUTES = [
    ("/faucet", "object",
     '{"server_public_key":%s,"chat_history":"c","cipherkey":"k","iv":"i",'
     '"client_public_key":"C"}', "server_public_key"),
    ("/sink", "string", '{"server_public_key":%s}', "server_public_key"),
    ("/source", "string",
     '{"client_public_key":%s,"chat_history":"c","cipherkey":"k","iv":"i"}',
     "client_public_key"),
    ("/retrieve", "string", '{"client_public_key":%s}', "client_public_key"),
    ("/stream/source", "string",
     '{"session_id":%s,"chunk":{"iv":"v"},"final":false}', "session_id"),
    ("/stream/retrieve", "string", '{"client_public_key":%s}',
     "client_public_key"),
    ("/unregister", "string", '{"server_public_key":%s}', "server_public_key"),
    (V1 + "/servers/register", "v1",
     '{"server_public_key":%s,"capabilities":{"supported_model_ids":["m"]}}',
     "server_public_key"),
    (V1 + "/servers/poll", "v1", '{"server_public_key":%s}',
     "server_public_key"),
    (V1 + "/servers/control", "v1",
     '{"server_public_key":%s,"request_id":"r","control_credential":"cc"}',
     "server_public_key"),
    (V1 + "/servers/unregister", "v1",
     '{"server_public_key":%s,"control_credential":"cc"}',
     "server_public_key"),
    (V1 + "/requests", "v1",
     '{"server_public_key":%s,"client_public_key":"C","ciphertext":"X",'
     '"cipherkey":"K","iv":"I","request_id":"r"}', "server_public_key"),
    (V1 + "/requests/cancel", "v1",
     '{"client_public_key":%s,"request_id":"r","cancel_token":"t"}',
     "client_public_key"),
    (V1 + "/responses", "v1",
     '{"client_public_key":%s,"ciphertext":"X","cipherkey":"K","iv":"I",'
     '"request_id":"r"}', "client_public_key"),
    (V1 + "/progress", "v1",
     '{"server_public_key":%s,"client_public_key":"C","request_id":"r",'
     '"control_credential":"cc","protocol":"' + PROTO + '","version":1,'
     '"ciphertext":"X","cipherkey":"K","iv":"I"}', "server_public_key"),
    (V1 + "/responses/retrieve", "v1",
     '{"client_public_key":%s,"request_id":"r"}', "client_public_key"),
]

JSON_CT = {"Content-Type": "application/json"}


def deep(kind, depth):
    """A body nested `depth` levels: arrays, or objects {"a":...}."""
    if kind == "array":
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


def body_limit(path):
    return PROGRESS_MAX if path.endswith("/progress") else MAX_BODY


class Shapes:
    """Assertions on the three error shapes of relay routes."""

    def assertRefusal(self, path, shape, status, data, code=None,
                      message=None):
        """status and shape; v1 string `code` or legacy `message` prefix."""
        obj = json.loads(data)
        self.assertEqual(list(obj), ["error"], (path, obj))
        err = obj["error"]
        if shape == "string":
            self.assertIsInstance(err, str, (path, obj))
            text = err
        else:
            self.assertIsInstance(err, dict, (path, obj))
            text = err["message"]
            if shape == "v1" and code is not None:
                self.assertEqual(err["code"], code, (path, obj))
            else:
                self.assertEqual(err["code"], status, (path, obj))
        if message is not None:
            self.assertTrue(text.startswith(message), (path, text))
        return text


class DeepBodies(unittest.TestCase, Shapes):

    def queue_legacy(self, r, node, client):
        st, body = r.post_json("/sink", {"server_public_key": node})
        self.assertEqual(st, 200, body)
        st, body = r.post_json("/faucet", {
            "server_public_key": node, "client_public_key": client,
            "chat_history": "q-" + client, "cipherkey": "k", "iv": "i"})
        self.assertEqual((st, body), (200, {"message": "Request received"}))

    def finish_legacy(self, r, node, client):
        st, body = r.post_json("/sink", {"server_public_key": node})
        self.assertEqual(st, 200, body)
        self.assertEqual(body.get("chat_history"), "q-" + client, body)
        self.assertEqual(body.get("client_public_key"), client, body)
        st, body = r.post_json("/source", {
            "client_public_key": client, "chat_history": "a-" + client,
            "cipherkey": "k2", "iv": "i2"})
        self.assertEqual(st, 200, body)
        st, body = r.post_json("/retrieve", {"client_public_key": client})
        self.assertEqual((st, body), (200, {
            "chat_history": "a-" + client, "cipherkey": "k2", "iv": "i2"}))

    def queue_v1(self, r, node, client, rid):
        st, body = r.post_json(V1 + "/servers/register", {
            "server_public_key": node,
            "capabilities": {"supported_model_ids": ["qwen3-8b-instruct"]}})
        self.assertEqual(st, 200, body)
        st, body = r.post_json(V1 + "/requests", {
            "server_public_key": node, "client_public_key": client,
            "ciphertext": "CT-" + rid, "cipherkey": "CK", "iv": "IV",
            "request_id": rid, "protocol": PROTO, "version": 1})
        self.assertEqual(st, 200, body)

    def finish_v1(self, r, node, client, rid):
        st, body = r.post_json(V1 + "/servers/poll",
                               {"server_public_key": node})
        self.assertEqual(st, 200, body)
        self.assertEqual(body.get("request_id"), rid, body)
        self.assertEqual(body.get("ciphertext"), "CT-" + rid, body)
        st, body = r.post_json(V1 + "/responses", {
            "client_public_key": client, "request_id": rid,
            "chat_history": "RC-" + rid, "cipherkey": "RK", "iv": "RI",
            "protocol": PROTO, "version": 1})
        self.assertEqual(st, 200, body)
        st, body = r.post_json(V1 + "/responses/retrieve",
                               {"client_public_key": client,
                                "request_id": rid})
        self.assertEqual(st, 200, body)
        self.assertEqual(body.get("chat_history"), "RC-" + rid, body)

    def test_deep_bodies_to_every_route(self):
        with Relay(env=ENV) as r:
            # work queued before the barrage must survive it
            self.queue_legacy(r, "NODE-before", "CLIENT-before")
            self.queue_v1(r, "V1NODE-before", "V1CLIENT-before", "rid-before")

            bodies = {(k, d): deep(k, d) for k in ("array", "object")
                      for d in DEPTHS}
            too_deep = too_large = 0
            for path, shape, _, _ in ROUTES:
                for (kind, depth), body in bodies.items():
                    rid = "deep-%s-%d-%s" % (kind, depth, uuid.uuid4().hex)
                    st, hdrs, data = r.request(
                        "POST", path, body=body, timeout=scaled(60),
                        headers=dict(JSON_CT, **{"X-Request-Id": rid}))
                    what = (path, kind, depth, st, data[:200])
                    self.assertTrue(hdrs.get("content-type", "")
                                    .startswith("application/json"), what)
                    if len(body) > body_limit(path):
                        self.assertEqual(st, 413, what)
                        self.assertRefusal(path, shape, 413, data)
                        too_large += 1
                        continue
                    self.assertEqual(st, 400, what)
                    text = self.assertRefusal(
                        path, shape, 400, data, code="json_too_deep",
                        message="Request body nests arrays and objects "
                                "deeper than %d levels" % MAX_DEPTH)
                    # refused at the first level past the limit
                    step = 1 if kind == "array" else 5
                    self.assertIn("at byte %d" % (MAX_DEPTH * step), text)
                    r.wait_log("http.json_refused", request_id=rid,
                               kind="depth")
                    too_deep += 1
            # 10^6 levels is over 1 MiB, and progress' 16 KiB from 10^5
            self.assertEqual(too_large, 2 * len(ROUTES) + 2)
            self.assertEqual(too_deep, len(ROUTES) * len(bodies) - too_large)

            # alive, every refusal counted
            st, _, _ = r.request("GET", "/livez")
            self.assertEqual(st, 200)
            m = r.metrics()
            self.assertEqual(metric_value(
                m, "tokenplace_relay_json_refusals_total", kind="depth"),
                too_deep)
            self.assertEqual(metric_value(
                m, "tokenplace_relay_limit_rejections_total",
                limit="json_depth"), too_deep)
            self.assertEqual(metric_value(
                m, "tokenplace_relay_limit_rejections_total",
                limit="body_bytes"), too_large)
            # the stack the depth limit was proven for is what workers have
            self.assertEqual(metric_value(
                m, "tokenplace_relay_worker_stack_bytes"),
                worker_stack_constant())
            self.assertIsNone(r.find_log("http.worker_stack_small"))

            # nothing queued before was lost; new cycles complete
            self.finish_legacy(r, "NODE-before", "CLIENT-before")
            self.finish_v1(r, "V1NODE-before", "V1CLIENT-before",
                           "rid-before")
            self.queue_legacy(r, "NODE-after", "CLIENT-after")
            self.finish_legacy(r, "NODE-after", "CLIENT-after")
            self.queue_v1(r, "V1NODE-after", "V1CLIENT-after", "rid-after")
            self.finish_v1(r, "V1NODE-after", "V1CLIENT-after", "rid-after")

    def test_chunked_deep_bodies(self):
        # Transfer-Encoding: chunked reaches the same reader.
        with Relay(env=ENV) as r:
            for path, shape in (("/sink", "string"),
                                (V1 + "/servers/poll", "v1")):
                body = deep("array", 10 ** 5)
                conn = r.connection(timeout=60)
                try:
                    conn.request("POST", path, headers=JSON_CT,
                                 body=iter([body[i:i + 65536] for i in
                                            range(0, len(body), 65536)]),
                                 encode_chunked=True)
                    resp = conn.getresponse()
                    data = resp.read()
                finally:
                    conn.close()
                self.assertEqual(resp.status, 400, data[:200])
                self.assertRefusal(path, shape, 400, data,
                                   code="json_too_deep",
                                   message="Request body nests arrays")
            st, _, _ = r.request("GET", "/livez")
            self.assertEqual(st, 200)

    def test_worst_accepted_depth_is_served(self):
        # A stream chunk 63 levels deep inside its 64-level body is
        # accepted, stored, re-encoded and handed back over HTTP.
        with Relay(env=ENV) as r:
            node, client = "NODE-deep", "CLIENT-deep"
            st, _ = r.post_json("/sink", {"server_public_key": node})
            self.assertEqual(st, 200)
            st, body = r.post_json("/faucet", {
                "server_public_key": node, "client_public_key": client,
                "chat_history": "c", "cipherkey": "k", "iv": "i",
                "stream": True})
            self.assertEqual(st, 200, body)
            st, job = r.post_json("/sink", {"server_public_key": node})
            sid = job["stream_session_id"]
            chunk = b"[" * (MAX_DEPTH - 1) + b'"x"' + b"]" * (MAX_DEPTH - 1)
            # one level more is refused, and stores nothing
            st, _, data = r.request(
                "POST", "/stream/source", headers=JSON_CT,
                body=b'{"session_id":"' + sid.encode() + b'","chunk":['
                + chunk + b'],"final":true}')
            self.assertEqual(st, 400, data)
            self.assertEqual(json.loads(data)["error"][:30],
                             "Request body nests arrays and ")
            st, _, data = r.request(
                "POST", "/stream/source", headers=JSON_CT,
                body=b'{"session_id":"' + sid.encode() + b'","chunk":'
                + chunk + b',"final":true}')
            self.assertEqual(st, 200, data)
            st, _, data = r.request(
                "POST", "/stream/retrieve", headers=JSON_CT,
                body=json.dumps({"client_public_key": client}))
            self.assertEqual(st, 200, data)
            self.assertTrue(data.startswith(b'{"chunks":[' + chunk + b"],"),
                            data[:200])


def worker_stack_constant():
    """RELAY_WORKER_STACK_BYTES as relay/src/http/http_server.h defines it."""
    src = os.environ.get("TP_SOURCE_DIR", "")
    with open(os.path.join(src, "relay", "src", "http", "http_server.h")) as f:
        m = re.search(r"#define RELAY_WORKER_STACK_BYTES (\d+)", f.read())
    return float(m.group(1))


# rule -> (mutation of a valid body, v1 code, legacy message prefix)
def _rules(tmpl, field):
    ok = tmpl % '"S"'
    return {
        "syntax": (ok[:-1], "invalid_json",
                   "Request body is not valid JSON"),
        "trailing": (ok + " {}", "json_trailing_data",
                     "Request body has data after the JSON value"),
        "duplicate": ('{"%s":"Z",%s' % (field, ok[1:]),
                      "json_duplicate_member",
                      'Request body names member "%s" twice' % field),
        "nul": (tmpl % '"S\\u0000Z"', "json_nul_character",
                'Member "%s" has \\u0000' % field),
        "type": (tmpl % "7", "invalid_field_type",
                 'Member "%s" must be a string' % field),
    }


class StrictRules(unittest.TestCase, Shapes):

    def test_every_rule_on_every_route(self):
        with Relay(env=ENV) as r:
            # a node whose queues must stay empty through the refusals
            st, _ = r.post_json("/sink", {"server_public_key": "S"})
            self.assertEqual(st, 200)
            st, _ = r.post_json(V1 + "/servers/register",
                                {"server_public_key": "S"})
            self.assertEqual(st, 200)
            before = r.metrics()
            sent = {}
            sent_ids = []
            for path, shape, tmpl, field in ROUTES:
                for kind, (body, code, message) in _rules(tmpl, field).items():
                    rid = "strict-%s-%s" % (kind, uuid.uuid4().hex)
                    st, _, data = r.request(
                        "POST", path, body=body,
                        headers=dict(JSON_CT, **{"X-Request-Id": rid}))
                    self.assertEqual(st, 400, (path, kind, body, data))
                    self.assertRefusal(path, shape, 400, data, code=code,
                                       message=message)
                    sent[kind] = sent.get(kind, 0) + 1
                    sent_ids.append((rid, kind))
            # one log line per refusal, with its request id and kind
            for rid, kind in sent_ids:
                r.wait_log("http.json_refused", request_id=rid)
            for rid, kind in sent_ids:
                logs = [line for line in r.logs()
                        if line.get("message") == "http.json_refused"
                        and line.get("request_id") == rid]
                self.assertEqual(len(logs), 1, rid)
                self.assertEqual(logs[0]["kind"], kind, rid)
            after = r.metrics()
            for kind, n in sent.items():
                name = "tokenplace_relay_json_refusals_total"
                self.assertEqual(
                    metric_value(after, name, kind=kind)
                    - metric_value(before, name, kind=kind), n, kind)
            # nothing was queued for the node by any refused body
            st, body = r.post_json("/sink", {"server_public_key": "S"})
            self.assertEqual((st, body), (200, {"next_ping_in_x_seconds": 10}))
            st, body = r.post_json(V1 + "/servers/poll",
                                   {"server_public_key": "S"})
            self.assertEqual(st, 200)
            self.assertNotIn("request_id", body)
            # a valid body still works on the same routes
            st, body = r.post_json("/retrieve", {"client_public_key": "C"})
            self.assertEqual(st, 200, body)

    def test_v1_unregister_credential_must_be_a_string(self):
        # the example: a number where a credential belongs
        with Relay(env=ENV) as r:
            st, body = r.post_json(V1 + "/servers/register",
                                   {"server_public_key": "N"})
            self.assertEqual(st, 200)
            cred = body["control_credential"]
            st, body = r.post_json(V1 + "/servers/unregister", {
                "server_public_key": "N", "control_credential": 12345})
            self.assertEqual((st, body), (400, {"error": {
                "code": "invalid_field_type",
                "message": 'Member "control_credential" must be a string'}}))
            st, body = r.post_json(V1 + "/servers/unregister", {
                "server_public_key": "N", "control_credential": cred})
            self.assertEqual((st, body), (200, {
                "message": "Server unregistered", "removed": True}))


class ConfiguredDepth(unittest.TestCase):

    def test_lower_limit_applies_to_every_route(self):
        with Relay(env=dict(ENV, RELAY_JSON_MAX_DEPTH="4")) as r:
            ok = b'{"session_id":"s","chunk":[[["x"]]]}'        # 4 levels
            too = b'{"session_id":"s","chunk":[[[["x"]]]]}'     # 5 levels
            st, _, data = r.request("POST", "/stream/source", body=ok,
                                    headers=JSON_CT)
            # passes the reader; the session is unknown to the route
            self.assertEqual((st, json.loads(data)),
                             (404, {"error": "Unknown stream session"}))
            st, _, data = r.request("POST", "/stream/source", body=too,
                                    headers=JSON_CT)
            self.assertEqual(st, 400)
            self.assertEqual(json.loads(data), {"error":
                             "Request body nests arrays and objects deeper "
                             "than 4 levels (at byte 29)"})
            st, _, data = r.request("POST", V1 + "/servers/register",
                                    body=b'{"server_public_key":"S",'
                                    b'"capabilities":{"x":[[[1]]]}}',
                                    headers=JSON_CT)
            self.assertEqual(st, 400)
            self.assertEqual(json.loads(data)["error"]["code"],
                             "json_too_deep")

    def test_limit_cannot_be_raised(self):
        # 64 is what the worker stack was tested for: 65 is invalid config
        with Relay(env=dict(ENV, RELAY_JSON_MAX_DEPTH="65")) as r:
            line = r.wait_log("relay.config_invalid",
                              source="RELAY_JSON_MAX_DEPTH")
            self.assertIn("64", line.get("reason", ""))


if __name__ == "__main__":
    main()
