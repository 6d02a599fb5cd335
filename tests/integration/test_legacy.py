"""Legacy relay routes (PROTOCOL.md section 1.4) against the real binary.

Replies are compared byte for byte where the Python relay's output is known
(Flask jsonify: sorted keys, compact, trailing newline), and every error
path, quirk and limit of docs/protocol.md has a test. Time-dependent
behaviour (eviction, TTLs) runs with short settings and polls with
deadlines.
"""

import base64
import json
import os
import re
import time
import unittest
import uuid

from redistest import RelayOnState as Relay
from relaytest import main, metric_value, scaled, wait_for

JSON = {"Content-Type": "application/json"}
SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{22}$")


def wire_key(tag="k"):
    """A key shaped like the real ones: base64 of a PEM text (opaque to us)."""
    pem = ("-----BEGIN PUBLIC KEY-----\n%s-%s\n-----END PUBLIC KEY-----\n"
           % (tag, base64.b64encode(os.urandom(48)).decode()))
    return base64.b64encode(pem.encode()).decode()


def jsonify(obj):
    """The bytes Flask's jsonify() writes for obj."""
    return (json.dumps(obj, separators=(",", ":"), sort_keys=True)
            + "\n").encode()


class LegacyTestCase(unittest.TestCase):
    """One relay per class; tests use fresh random keys so they never meet."""

    ENV = {}

    @classmethod
    def setUpClass(cls):
        cls.relay = Relay(env=cls.ENV)
        cls.relay.start()

    @classmethod
    def tearDownClass(cls):
        code = cls.relay.stop()
        if code != 0:
            raise AssertionError("relay exited with %r\n%s"
                                 % (code, cls.relay.stderr_text()))

    def post(self, path, body, headers=None, relay=None):
        """POST a JSON value (or raw str/bytes); (status, headers, bytes)."""
        hdrs = dict(JSON)
        hdrs.update(headers or {})
        if not isinstance(body, (str, bytes)):
            body = json.dumps(body)
        return (relay or self.relay).request("POST", path, body=body,
                                             headers=hdrs)

    def assertReply(self, got, status, body):
        """Exact status and bytes; body may be a JSON value or bytes."""
        st, hdrs, data = got
        want = body if isinstance(body, bytes) else jsonify(body)
        self.assertEqual((st, data), (status, want))
        self.assertTrue(hdrs.get("content-type", "").startswith(
            "application/json"), hdrs)
        return hdrs

    def register(self, key, relay=None, **extra):
        body = {"server_public_key": key}
        body.update(extra)
        st, _, data = self.post("/sink", body, relay=relay)
        self.assertEqual(st, 200, data)
        return json.loads(data)

    def faucet(self, server, client, n="", relay=None, **extra):
        body = {"server_public_key": server, "client_public_key": client,
                "chat_history": "C" + str(n), "cipherkey": "K" + str(n),
                "iv": "I" + str(n)}
        body.update(extra)
        return self.post("/faucet", body, relay=relay)


class EmptyRelay(LegacyTestCase):
    """State that needs a relay of its own: no server registered yet."""

    def test_1_next_server_without_servers_is_200_with_object_503(self):
        self.assertReply(self.relay.request("GET", "/next_server"), 200,
                         {"error": {"code": 503, "message":
                                    "No servers available"}})
        st, obj = self.relay.get_json("/healthz")
        self.assertEqual(obj["knownServers"], 0)
        self.assertEqual(obj["details"]["knownServers"], "empty")

    def test_2_next_server_returns_the_key_exactly(self):
        key = "LS0tLS1CRUdJTiBQ/+=\u043a\u043b\u044e\u0447\U0001F600 x"
        self.register(key)
        got = self.relay.request("GET", "/next_server")
        # non-ASCII escaped as jsonify(ensure_ascii) does
        self.assertReply(got, 200, {"server_public_key": key})
        self.assertIn(b"\\u043a\\u043b\\u044e\\u0447\\ud83d\\ude00", got[2])
        st, obj = self.relay.get_json("/healthz")
        self.assertEqual(obj["knownServers"], 1)
        self.assertNotIn("knownServers", obj.get("details", {}))
        # HEAD is answered like GET, without a body
        st, _, data = self.relay.request("HEAD", "/next_server")
        self.assertEqual((st, data), (200, b""))

    def test_3_random_choice_among_live_servers(self):
        keys = {wire_key("n%d" % i) for i in range(3)}
        for k in keys:
            self.register(k)
        seen = set()
        for _ in range(200):
            st, obj = self.relay.get_json("/next_server")
            self.assertEqual(st, 200)
            seen.add(obj["server_public_key"])
        self.assertTrue(keys <= seen, "every live node is chosen sometimes")


class LegacyRoutes(LegacyTestCase):
    ENV = {"RELAY_MAX_KEY_BYTES": "1024"}

    def test_full_cycle_bytes(self):
        node, client = wire_key("node"), wire_key("client")
        self.assertReply(self.post("/sink", {"server_public_key": node}), 200,
                         b'{"next_ping_in_x_seconds":10}\n')
        # unknown fields (a GCM tag) are dropped on the way to the node
        self.assertReply(self.faucet(node, client, tag="T", extra=[1]), 200,
                         b'{"message":"Request received"}\n')
        self.assertReply(
            self.post("/sink", {"server_public_key": node}), 200,
            ('{"chat_history":"C","cipherkey":"K","client_public_key":"%s",'
             '"iv":"I","next_ping_in_x_seconds":10}\n' % client).encode())
        self.assertReply(
            self.post("/source", {"client_public_key": client,
                                  "chat_history": "RC", "cipherkey": "RK",
                                  "iv": "RI"}),
            200, b'{"message":"Response received and queued for client"}\n')
        self.assertReply(self.post("/retrieve", {"client_public_key": client}),
                         200, b'{"chat_history":"RC","cipherkey":"RK","iv":"RI"}\n')
        # one-shot: the slot is gone; HTTP 200 with the string error clients match
        self.assertReply(
            self.post("/retrieve", {"client_public_key": client}), 200,
            b'{"error":"No response available for the given public key"}\n')

    def test_fifo_per_node_and_at_most_once(self):
        a, b, client = wire_key("a"), wire_key("b"), wire_key("c")
        self.register(a)
        self.register(b)
        for i in range(5):
            self.assertEqual(self.faucet(a, client, "a%d" % i)[0], 200)
            self.assertEqual(self.faucet(b, client, "b%d" % i)[0], 200)
        for i in range(5):
            self.assertEqual(self.register(a)["chat_history"], "Ca%d" % i)
        for i in range(5):
            self.assertEqual(self.register(b)["chat_history"], "Cb%d" % i)
        self.assertEqual(self.register(a), {"next_ping_in_x_seconds": 10})

    def test_null_client_key_quirk(self):
        node = wire_key()
        self.register(node)
        self.assertEqual(self.post("/faucet", {
            "server_public_key": node, "chat_history": "c", "cipherkey": "k",
            "iv": "i"})[0], 200)
        self.assertReply(
            self.post("/sink", {"server_public_key": node}), 200,
            b'{"chat_history":"c","cipherkey":"k","client_public_key":null,'
            b'"iv":"i","next_ping_in_x_seconds":10}\n')

    def test_batch_and_max_batch_size_coercion(self):
        node, client = wire_key(), wire_key()
        self.register(node)
        for i in range(2):
            self.faucet(node, client, i)
        item = {"chat_history": "C0", "cipherkey": "K0",
                "client_public_key": client, "iv": "I0", "stream": False}
        item1 = dict(item, chat_history="C1", cipherkey="K1", iv="I1")
        top = {k: v for k, v in item.items() if k != "stream"}
        # "3" is a numeric string: batch appears and repeats the first item
        self.assertReply(
            self.post("/sink", {"server_public_key": node,
                                "max_batch_size": "3"}), 200,
            dict(top, batch=[item, item1], next_ping_in_x_seconds=10))
        # 2.7 truncates to 2; true is 1 (no batch); nothing queued -> no batch
        for i in range(3):
            self.faucet(node, client, i)
        got = json.loads(self.post("/sink", {"server_public_key": node,
                                             "max_batch_size": 2.7})[2])
        self.assertEqual([x["chat_history"] for x in got["batch"]],
                         ["C0", "C1"])
        got = json.loads(self.post("/sink", {"server_public_key": node,
                                             "max_batch_size": True})[2])
        self.assertNotIn("batch", got)
        self.assertEqual(got["chat_history"], "C2")
        self.assertReply(self.post("/sink", {"server_public_key": node,
                                             "max_batch_size": " 5 "}), 200,
                         {"next_ping_in_x_seconds": 10})
        self.assertReply(self.post("/sink", {"server_public_key": node,
                                             "max_batch_size": None}), 200,
                         {"next_ping_in_x_seconds": 10})

    def test_invalid_max_batch_size_skips_the_heartbeat(self):
        for bad in ("abc", 0, -1, "1.5", [], {}, False, "1__0", "0x10"):
            fresh = wire_key()
            self.assertReply(
                self.post("/sink", {"server_public_key": fresh,
                                    "max_batch_size": bad}),
                400, b'{"error":"Invalid max_batch_size"}\n')
            # not registered: the batch check runs before registration
            self.assertReply(self.faucet(fresh, wire_key()), 404,
                             b'{"error":"Server with the specified public key not found"}\n')
        # batch size is checked before the key
        self.assertReply(self.post("/sink", {"max_batch_size": 0}), 400,
                         b'{"error":"Invalid max_batch_size"}\n')

    def test_sink_errors(self):
        for body in ({}, {"server_public_key": None},
                     {"server_public_key": 42}, {"server_public_key": ""},
                     {"server_public_key": ["k"]}):
            self.assertReply(self.post("/sink", body), 400,
                             b'{"error":"Invalid public key"}\n')
        for raw in ("null", "[]", '"k"', "3", "true"):
            self.assertReply(self.post("/sink", raw), 400,
                             b'{"error":"Invalid request data"}\n')
        self.assertReply(self.post("/sink", {"server_public_key": "x" * 1025}),
                         400, b'{"error":"Public key too long"}\n')
        # adapter errors keep the route's string shape
        st, _, data = self.post("/sink", "{not json")
        self.assertEqual(st, 400)
        self.assertIsInstance(json.loads(data)["error"], str)
        st, _, data = self.relay.request("POST", "/sink", body=b"",
                                         headers={"Content-Type": "text/plain"})
        self.assertEqual(st, 415)
        self.assertIsInstance(json.loads(data)["error"], str)
        st, _, data = self.relay.request("GET", "/sink")
        self.assertEqual(st, 405)
        self.assertIsInstance(json.loads(data)["error"], str)

    def test_faucet_errors(self):
        node = wire_key()
        self.register(node)
        invalid = {"error": {"code": 400, "message": "Invalid request data"}}
        for raw in ("null", "[]", '"server_public_key"', "1", "{}"):
            self.assertReply(self.post("/faucet", raw), 400, invalid)
        good = {"server_public_key": node, "chat_history": "c",
                "cipherkey": "k", "iv": "i"}
        for field in ("server_public_key", "chat_history", "cipherkey", "iv"):
            missing = {k: v for k, v in good.items() if k != field}
            self.assertReply(self.post("/faucet", missing), 400, invalid)
            for wrong in (None, 5, ["x"], {"a": "b"}, True):
                self.assertReply(self.post("/faucet", dict(good, **{field: wrong})),
                                 400, invalid)
        self.assertReply(self.post("/faucet", dict(good, client_public_key=7)),
                         400, invalid)
        self.assertReply(
            self.post("/faucet", dict(good, messages=[{"role": "user"}])), 400,
            {"error": {"code": 400, "message": "Plaintext relay payload fields "
                       "are forbidden; send ciphertext envelope only"}})
        stream_msg = {"error": {"code": 400, "message":
                                "Streaming requests require a client public key"}}
        self.assertReply(self.post("/faucet", dict(good, stream=True)), 400,
                         stream_msg)
        self.assertReply(self.post("/faucet", dict(good, stream=1,
                                                   client_public_key="")),
                         400, stream_msg)
        # a falsy stream value needs no key
        self.assertEqual(self.post("/faucet", dict(good, stream=0))[0], 200)
        self.assertReply(self.post("/faucet", dict(good, server_public_key="nobody")),
                         404, b'{"error":"Server with the specified public key not found"}\n')
        self.assertReply(self.post("/faucet", dict(good, client_public_key="c" * 1025)),
                         400, {"error": {"code": 400, "message": "Public key too long"}})
        # adapter errors keep the route's object shape
        st, _, data = self.post("/faucet", "{not json")
        self.assertEqual(st, 400)
        self.assertEqual(json.loads(data)["error"]["code"], 400)
        st, _, data = self.relay.request("POST", "/faucet", body=b"",
                                         headers={"Content-Type": "text/plain"})
        self.assertEqual(st, 415)
        self.assertEqual(json.loads(data)["error"]["code"], 415)

    def test_source_and_retrieve_errors(self):
        invalid = b'{"error":"Invalid request data"}\n'
        good = {"client_public_key": wire_key(), "chat_history": "c",
                "cipherkey": "k", "iv": "i"}
        for raw in ("null", "[]", '"x"', "{}"):
            self.assertReply(self.post("/source", raw), 400, invalid)
            self.assertReply(self.post("/retrieve", raw), 400, invalid)
        for field in good:
            self.assertReply(self.post("/source", {k: v for k, v in good.items()
                                                   if k != field}), 400, invalid)
            self.assertReply(self.post("/source", dict(good, **{field: 1})),
                             400, invalid)
        self.assertReply(self.post("/source", dict(good, text="plain")), 400,
                         b'{"error":"Plaintext relay payload fields are forbidden; '
                         b'send ciphertext envelope only"}\n')
        self.assertReply(self.post("/source", dict(good, client_public_key="c" * 1025)),
                         400, b'{"error":"Public key too long"}\n')
        self.assertReply(self.post("/retrieve", {"client_public_key": None}), 400,
                         invalid)
        self.assertReply(self.post("/retrieve", {"client_public_key": "c" * 1025}),
                         400, b'{"error":"Public key too long"}\n')

    def test_newer_response_overwrites_unread_one(self):
        client = wire_key()
        for text in ("first", "second"):
            self.assertEqual(self.post("/source", {
                "client_public_key": client, "chat_history": text,
                "cipherkey": "k", "iv": "i"})[0], 200)
        self.assertReply(self.post("/retrieve", {"client_public_key": client}),
                         200, {"chat_history": "second", "cipherkey": "k",
                               "iv": "i"})

    def test_stream_round_trip(self):
        node, client = wire_key(), wire_key()
        no_stream = b'{"error":"No active stream for the given public key"}\n'
        self.register(node)
        self.assertEqual(self.faucet(node, client, stream=True)[0], 200)
        # before the node takes the job there is no session yet
        self.assertReply(self.post("/stream/retrieve",
                                   {"client_public_key": client}), 200, no_stream)
        got = self.register(node, max_batch_size=2)
        sid = got["stream_session_id"]
        self.assertRegex(sid, SESSION_ID)
        self.assertIs(got["stream"], True)
        self.assertEqual(got["batch"], [{
            "chat_history": "C", "cipherkey": "K", "client_public_key": client,
            "iv": "I", "stream": True, "stream_session_id": sid}])
        self.assertReply(self.post("/stream/retrieve", {"client_public_key": client}),
                         200, {"chunks": [], "session_id": sid, "stream": True})
        self.assertReply(self.post("/stream/source", {"session_id": sid,
                                                      "chunk": "a"}),
                         200, b'{"final":false,"message":"Chunk stored"}\n')
        self.assertReply(self.post("/stream/source", {
            "session_id": sid, "chunk": {"iv": "v", "ciphertext": "x", "n": 1}}),
            200, {"final": False, "message": "Chunk stored"})
        self.assertReply(self.post("/stream/retrieve", {"client_public_key": client}),
                         200, b'{"chunks":["a",{"ciphertext":"x","iv":"v","n":1}],'
                         b'"session_id":"' + sid.encode() + b'","stream":true}\n')
        self.assertReply(self.post("/stream/source", {"session_id": sid,
                                                      "chunk": None, "final": 1}),
                         200, b'{"final":true,"message":"Chunk stored"}\n')
        self.assertReply(self.post("/stream/retrieve", {"client_public_key": client}),
                         200, {"chunks": [None], "final": True, "session_id": sid,
                               "stream": True})
        # drained after the final chunk: gone
        self.assertReply(self.post("/stream/retrieve", {"client_public_key": client}),
                         200, no_stream)
        self.assertReply(self.post("/stream/source", {"session_id": sid,
                                                      "chunk": "late"}),
                         404, b'{"error":"Unknown stream session"}\n')

    def test_stream_errors(self):
        invalid = b'{"error":"Invalid request data"}\n'
        for body in ("null", "{}", {"session_id": "s"}, {"chunk": "c"},
                     {"session_id": 5, "chunk": "c"}):
            self.assertReply(self.post("/stream/source", body), 400, invalid)
            self.assertReply(self.post("/stream/retrieve", body), 400, invalid)
        self.assertReply(self.post("/stream/source", {"session_id": "s" * 1025,
                                                      "chunk": 1}),
                         400, b'{"error":"Session id too long"}\n')
        self.assertReply(self.post("/stream/source", {"session_id": "nope",
                                                      "chunk": 1}),
                         404, b'{"error":"Unknown stream session"}\n')

    def test_unregister(self):
        node = wire_key()
        self.register(node)
        self.assertEqual(self.faucet(node, wire_key())[0], 200)
        self.assertReply(self.post("/unregister", {"server_public_key": node}),
                         200, b'{"message":"Server unregistered","removed":true}\n')
        self.assertEqual(self.faucet(node, wire_key())[0], 404)
        self.assertReply(self.post("/unregister", {"server_public_key": node,
                                                   "control_credential": "x"}),
                         200, b'{"message":"Server unregistered","removed":false}\n')
        self.assertReply(self.post("/unregister", {}), 400,
                         b'{"error":"Invalid public key"}\n')
        self.assertReply(self.post("/unregister", "[]"), 400,
                         b'{"error":"Invalid request data"}\n')
        # registering again starts with an empty queue
        self.assertEqual(self.register(node), {"next_ping_in_x_seconds": 10})

    def test_gauges_and_request_ids(self):
        node, client = wire_key(), wire_key()
        self.register(node)
        self.faucet(node, client)
        text = self.relay.metrics()
        for name in ("tokenplace_relay_known_servers",
                     "tokenplace_relay_queued_requests",
                     "tokenplace_relay_pending_responses",
                     "tokenplace_relay_stream_sessions",
                     "tokenplace_relay_evictions_total"):
            self.assertIsNotNone(metric_value(text, name), name)
        self.assertGreaterEqual(metric_value(text, "tokenplace_relay_queued_requests"), 1)
        st, hdrs, _ = self.post("/sink", {"server_public_key": node},
                                headers={"X-Request-Id": "rid-123"})
        self.assertEqual(hdrs.get("x-request-id"), "rid-123")


class Eviction(LegacyTestCase):
    ENV = {"RELAY_SERVER_TTL_SECONDS": "2"}

    def test_silent_node_is_evicted_and_comes_back_empty(self):
        a, b, client = wire_key("a"), wire_key("b"), wire_key("c")
        self.register(a)
        self.register(b)
        self.assertEqual(self.faucet(a, client, 1)[0], 200)
        self.assertEqual(self.faucet(a, client, 2)[0], 200)

        def a_gone():
            self.register(b)	# b keeps polling
            st, _, _ = self.faucet(a, client, "probe")
            return st == 404

        wait_for(a_gone, 20, interval=0.1, what="eviction of the silent node")
        text = self.relay.metrics()
        self.assertGreaterEqual(metric_value(text, "tokenplace_relay_evictions_total"), 1)
        self.assertGreaterEqual(
            metric_value(text, "tokenplace_relay_dropped_requests_total"), 2)
        for _ in range(20):
            self.register(b)
            self.assertEqual(self.relay.get_json("/next_server"),
                             (200, {"server_public_key": b}))
        self.assertReply(self.faucet(a, client), 404,
                         b'{"error":"Server with the specified public key not found"}\n')
        self.relay.wait_log("relay.servers_evicted")
        # the node polls again: registered anew, its old queue is gone
        self.assertEqual(self.register(a), {"next_ping_in_x_seconds": 10})
        self.assertEqual(self.faucet(a, client)[0], 200)

    def test_all_nodes_silent_means_no_servers(self):
        node = wire_key()
        self.register(node)
        wait_for(lambda: self.relay.get_json("/next_server")[1].get("error"),
                 20, interval=0.1, what="no servers")
        self.assertReply(self.relay.request("GET", "/next_server"), 200,
                         {"error": {"code": 503, "message": "No servers available"}})


class Limits(LegacyTestCase):
    """Each limit on a relay of its own, sized small."""

    def limit_count(self, relay, name):
        return metric_value(relay.metrics(),
                            "tokenplace_relay_limit_rejections_total",
                            limit=name) or 0

    def test_queue_limits(self):
        env = {"RELAY_MAX_QUEUE_PER_SERVER": "2", "RELAY_MAX_QUEUE_TOTAL": "3"}
        with Relay(env=env) as r:
            a, b, c = wire_key(), wire_key(), wire_key()
            self.register(a, relay=r)
            self.register(b, relay=r)
            for i in range(2):
                self.assertEqual(self.faucet(a, c, i, relay=r)[0], 200)
            hdrs = self.assertReply(
                self.faucet(a, c, relay=r), 429,
                {"error": {"code": 429, "message": "Server queue is full"}})
            self.assertEqual(hdrs.get("retry-after"), "10")
            self.assertEqual(self.faucet(b, c, relay=r)[0], 200)
            hdrs = self.assertReply(
                self.faucet(b, c, relay=r), 429,
                {"error": {"code": 429, "message": "Relay queue is full"}})
            self.assertEqual(hdrs.get("retry-after"), "10")
            self.assertEqual(self.limit_count(r, "queue_per_server"), 1)
            self.assertEqual(self.limit_count(r, "queue_total"), 1)
            # draining makes room
            self.register(a, relay=r)
            self.assertEqual(self.faucet(b, c, relay=r)[0], 200)

    def test_max_servers(self):
        with Relay(env={"RELAY_MAX_SERVERS": "2"}) as r:
            a, b = wire_key(), wire_key()
            self.register(a, relay=r)
            self.register(b, relay=r)
            hdrs = self.assertReply(self.post("/sink", {"server_public_key":
                                                        wire_key()}, relay=r),
                                    429, b'{"error":"Too many registered servers"}\n')
            self.assertEqual(hdrs.get("retry-after"), "10")
            self.register(a, relay=r)	# known nodes keep polling
            self.assertEqual(self.limit_count(r, "max_servers"), 1)

    def test_max_responses(self):
        with Relay(env={"RELAY_MAX_RESPONSES": "2"}) as r:
            clients = [wire_key() for _ in range(3)]

            def source(c):
                return self.post("/source", {"client_public_key": c,
                                             "chat_history": "x",
                                             "cipherkey": "k", "iv": "i"},
                                 relay=r)
            self.assertEqual(source(clients[0])[0], 200)
            self.assertEqual(source(clients[1])[0], 200)
            hdrs = self.assertReply(source(clients[2]), 429,
                                    b'{"error":"Too many pending responses"}\n')
            self.assertEqual(hdrs.get("retry-after"), "10")
            self.assertEqual(source(clients[0])[0], 200)	# overwrite is fine
            self.assertEqual(self.limit_count(r, "max_responses"), 1)

    def test_stream_limits(self):
        env = {"RELAY_MAX_STREAM_CHUNKS": "2", "RELAY_MAX_STREAM_SESSIONS": "1"}
        with Relay(env=env) as r:
            node, c1, c2 = wire_key(), wire_key(), wire_key()
            self.register(node, relay=r)
            self.faucet(node, c1, 1, relay=r, stream=True)
            self.faucet(node, c2, 2, relay=r, stream=True)
            got = self.register(node, relay=r, max_batch_size=5)
            # only one session may be open: the second job waits its turn
            self.assertEqual([x["client_public_key"] for x in got["batch"]], [c1])
            self.assertGreaterEqual(self.limit_count(r, "max_stream_sessions"), 1)
            sid = got["stream_session_id"]
            for i in range(2):
                self.assertEqual(self.post("/stream/source", {
                    "session_id": sid, "chunk": i}, relay=r)[0], 200)
            hdrs = self.assertReply(
                self.post("/stream/source", {"session_id": sid, "chunk": 9,
                                             "final": True}, relay=r),
                429, b'{"error":"Stream buffer is full"}\n')
            self.assertEqual(hdrs.get("retry-after"), "1")
            self.assertEqual(self.limit_count(r, "max_stream_chunks"), 1)
            self.post("/stream/retrieve", {"client_public_key": c1}, relay=r)
            self.assertEqual(self.post("/stream/source", {
                "session_id": sid, "chunk": 9, "final": True}, relay=r)[0], 200)
            self.post("/stream/retrieve", {"client_public_key": c1}, relay=r)
            # the closed session is gone, so the waiting job gets its turn
            got = self.register(node, relay=r)
            self.assertEqual(got["client_public_key"], c2)
            self.assertRegex(got["stream_session_id"], SESSION_ID)

    def test_key_length(self):
        with Relay(env={"RELAY_MAX_KEY_BYTES": "64"}) as r:
            self.assertEqual(self.post("/sink", {"server_public_key": "k" * 64},
                                       relay=r)[0], 200)
            self.assertReply(self.post("/sink", {"server_public_key": "k" * 65},
                                       relay=r),
                             400, b'{"error":"Public key too long"}\n')
            self.assertEqual(self.limit_count(r, "max_key_bytes"), 1)

    def test_faucet_rate_limit_per_client_ip(self):
        # a day-long window: the test cannot straddle a window boundary
        env = {"RELAY_FAUCET_RATE_LIMIT": "2",
               "RELAY_FAUCET_RATE_WINDOW_SECONDS": "86400"}
        limited = {"error": {"code": 429, "message": "Rate limit exceeded"}}
        with Relay(env=env) as r:
            # every request counts, valid or not
            self.assertEqual(self.post("/faucet", {}, relay=r)[0], 400)
            self.assertEqual(self.post("/faucet", {}, relay=r)[0], 400)
            hdrs = self.assertReply(self.post("/faucet", {}, relay=r), 429, limited)
            self.assertTrue(1 <= int(hdrs["retry-after"]) <= 86400)
            # X-Forwarded-For from an untrusted peer changes nothing
            self.assertReply(self.post("/faucet", {}, relay=r,
                                       headers={"X-Forwarded-For": "9.9.9.9"}),
                             429, limited)
            self.assertEqual(self.limit_count(r, "faucet_rate_limit"), 2)
            # node routes are never rate limited
            for _ in range(5):
                self.register(wire_key(), relay=r)
        env["RELAY_TRUSTED_PROXIES"] = "127.0.0.0/8"
        with Relay(env=env) as r:
            for ip in ("203.0.113.7", "203.0.113.8"):
                hdr = {"X-Forwarded-For": "198.51.100.1, " + ip}
                for _ in range(2):
                    self.assertEqual(self.post("/faucet", {}, relay=r,
                                               headers=hdr)[0], 400)
                self.assertEqual(self.post("/faucet", {}, relay=r,
                                           headers=hdr)[0], 429)
            # the relay's own peer address still has its budget
            self.assertEqual(self.post("/faucet", {}, relay=r)[0], 400)

    def test_rate_limit_off_by_default(self):
        for _ in range(30):
            self.assertEqual(self.post("/faucet", {})[0], 400)


class Ttl(LegacyTestCase):
    ENV = {"RELAY_RESPONSE_TTL_SECONDS": "1",
           "RELAY_STREAM_SESSION_TTL_SECONDS": "1"}

    def gauge(self, name, **labels):
        return metric_value(self.relay.metrics(), name, **labels)

    def test_response_expires(self):
        client = wire_key()
        self.assertEqual(self.post("/source", {
            "client_public_key": client, "chat_history": "c", "cipherkey": "k",
            "iv": "i"})[0], 200)
        wait_for(lambda: self.gauge("tokenplace_relay_expired_total",
                                    kind="response") == 1,
                 15, interval=0.1, what="response expiry")
        self.assertEqual(self.gauge("tokenplace_relay_pending_responses"), 0)
        self.assertReply(
            self.post("/retrieve", {"client_public_key": client}), 200,
            b'{"error":"No response available for the given public key"}\n')

    def test_idle_stream_session_expires(self):
        node, client = wire_key(), wire_key()
        self.register(node)
        self.faucet(node, client, stream=True)
        sid = self.register(node)["stream_session_id"]
        wait_for(lambda: self.gauge("tokenplace_relay_expired_total",
                                    kind="stream_session") == 1,
                 15, interval=0.1, what="stream session expiry")
        self.assertEqual(self.gauge("tokenplace_relay_stream_sessions"), 0)
        self.assertReply(self.post("/stream/source", {"session_id": sid,
                                                      "chunk": 1}),
                         404, b'{"error":"Unknown stream session"}\n')
        self.assertReply(
            self.post("/stream/retrieve", {"client_public_key": client}), 200,
            b'{"error":"No active stream for the given public key"}\n')


class Tokens(LegacyTestCase):
    ENV = {"TOKEN_PLACE_RELAY_SERVER_TOKEN": "  s3cret \n",
           "TOKEN_PLACE_RELAY_SERVER_TOKENS": "alpha, beta\ngamma"}
    DENIED = (b'{"error":{"code":401,"message":'
              b'"Missing or invalid relay server token"}}\n')

    def test_node_routes_need_a_token_before_the_body_is_read(self):
        for path in ("/sink", "/source", "/stream/source", "/unregister"):
            for hdrs in ({}, {"X-Relay-Server-Token": "wrong"},
                         {"X-Relay-Server-Token": "s3cre"},
                         {"X-Relay-Server-Token": "alpha, beta"}):
                # an invalid body still gets the 401: auth comes first
                self.assertReply(self.post(path, {}, headers=hdrs), 401,
                                 self.DENIED)

    def test_token_is_checked_before_the_body_is_read(self):
        # malformed JSON, a wrong content type, a large junk body: still 401
        for body, hdrs in ((b"{not json", JSON),
                           (b"{}", {"Content-Type": "text/plain"}),
                           (b"x" * 1000000, JSON)):
            st, _, data = self.relay.request("POST", "/sink", body=body,
                                             headers=hdrs)
            self.assertEqual((st, data), (401, self.DENIED))

    def test_each_configured_token_works(self):
        for token in ("s3cret", "alpha", "beta", "gamma"):
            node = wire_key()
            self.assertEqual(self.post("/sink", {"server_public_key": node},
                                       headers={"X-Relay-Server-Token": token})[0],
                             200, token)

    def test_client_routes_need_no_token(self):
        node, client = wire_key(), wire_key()
        tok = {"X-Relay-Server-Token": "gamma"}
        self.assertEqual(self.post("/sink", {"server_public_key": node},
                                   headers=tok)[0], 200)
        self.assertEqual(self.relay.get_json("/next_server")[0], 200)
        self.assertEqual(self.faucet(node, client)[0], 200)
        self.assertEqual(self.post("/retrieve", {"client_public_key": client})[0], 200)
        self.assertEqual(self.post("/stream/retrieve",
                                   {"client_public_key": client})[0], 200)
        self.assertEqual(self.post("/source", {
            "client_public_key": client, "chat_history": "c", "cipherkey": "k",
            "iv": "i"}, headers=tok)[0], 200)


class LegacyDisabled(LegacyTestCase):
    ENV = {"TOKENPLACE_ENABLE_LEGACY_RELAY_ROUTES": "false"}

    def test_legacy_routes_answer_410(self):
        for method, path in (("GET", "/next_server"), ("POST", "/faucet"),
                             ("POST", "/sink"), ("POST", "/source"),
                             ("POST", "/retrieve")):
            got = self.relay.request(method, path, body="{}" if method == "POST"
                                     else None, headers=JSON)
            self.assertReply(got, 410, {"error": {
                "code": "legacy_relay_endpoint_deprecated", "deprecated": True,
                "message": "Legacy relay endpoint '%s' is deprecated. Use API v1 "
                           "relay E2EE routes." % path}})

    def test_410_comes_before_the_body_is_read(self):
        st, _, data = self.relay.request("POST", "/sink", body=b"{oops",
                                         headers=JSON)
        self.assertEqual(st, 410, data)

    def test_stream_and_unregister_stay(self):
        self.assertReply(self.post("/stream/retrieve",
                                   {"client_public_key": wire_key()}), 200,
                         b'{"error":"No active stream for the given public key"}\n')
        self.assertReply(self.post("/unregister", {"server_public_key": wire_key()}),
                         200, b'{"message":"Server unregistered","removed":false}\n')


if __name__ == "__main__":
    main()
