"""No string a client or a node chose becomes a Redis key name (issue 19,
docs/store-redis.md "Key names"), against two relays sharing one
redis-server (RELAY_STATE_URL):

* every client- or node-chosen field of every legacy and API v1 route is
  sent values equal to the stores' own key suffixes and index names (read
  from relay/src/store/store_redis.c, store_redis.lua, v1_store_redis.lua), glob
  characters, CR/LF, `{...}` hash tags and 6,000-byte strings; each is
  served as data (its own cycle works), no store call fails
  (tokenplace_relay_state_errors_total stays 0 on both relays), a legacy
  and an API v1 response stored before the attack are still delivered,
  other clients' full cycles work on both generations afterwards, and
  every key under the prefix has one of the layout's own names;
* a store at schema 1 (what the previous release wrote): the relays keep
  its layout for the old replicas beside them and refuse the one value
  that named a structure there ("exp") instead of breaking the store;
  `tokenplace-relay --state-upgrade` then switches every replica at once,
  and what was stored before the switch is still delivered after it.

Waits poll with deadlines (TP_TIMEOUT_SCALE); nothing is timed.
"""

import base64
import itertools
import json
import os
import re
import shutil
import subprocess
import unittest
import urllib.parse

from redistest import REDIS_SERVER, RedisServer
from relaytest import RELAY_BIN, WRAPPER, Relay, main, metric_value, scaled

import tp_peers as tp
import tp_peers_v1 as v1

V1 = v1.V1
JSON = {"Content-Type": "application/json"}
HTTP_TIMEOUT = scaled(30)
_prefixes = itertools.count()

# The stores' own names: legacy layout 1 (store_redis.c), layout 2
# (store_redis.lua), API v1 (v1_store_redis.lua), the adapter's channels.
LEGACY_NAMES = ["exp", "seen", "q", "queued", "resp", "resp:exp", "srv",
                "srv:exp", "srv:seen", "sess", "sess:exp", "s", "sc", "sby",
                "chunks", "sweep", "sweep:due", "due", "schema", "key", "by",
                "r", "l2", "l2:", "l2:srv", "l2:resp", "l2:by", "l2:key",
                "l2:q:", "l2:sess"]
V1_NAMES = ["v1", "v1:", "gen", "selseq", "regseq", "rseq", "nodes", "byreg",
            "n", "nq", "nc", "nr", "ni", "m", "mh", "live", "inflight",
            "claims", "ready", "term", "resv", "t", "tombs", "nt", "ntombs",
            "v1:nodes", "v1:m:", "wake", "wake:", "wake:*"]
HOSTILE = (LEGACY_NAMES + V1_NAMES +
           ["*", "?", "[a-z]*", "\\*", "{x}", "}{", "{tokenplace:}resp:exp",
            "{ks0:}resp:exp", "a\r\nb", "\r\n", "PING\r\n", "K" * 6000,
            "{" + "K" * 5998 + "}"])

# Every key name the layouts of schema 2 may use (after the prefix).
OUR_NAMES = re.compile(
    r"^(schema"
    r"|l2:(srv|seen|key|queued|resp|sess|by|chunks|sweep:due)"
    r"|l2:(q|r):[0-9a-f]{32}|l2:(s|sc):[A-Za-z0-9_-]{22}"
    r"|v1:(gen|selseq|regseq|rseq|sweep:due|nodes|byreg|live|queued"
    r"|inflight|claims|ready|term|resv|rdl|mods|tombs|ntombs)"
    r"|v1:(n|nq|nc|nr|ni|nt|r):[0-9a-f]{32}|v1:(t|mh):[0-9a-f]{40})$")


def wire_key(tag):
    """An opaque key shaped like the real ones (base64 of a PEM text)."""
    pem = ("-----BEGIN PUBLIC KEY-----\n%s-%s\n-----END PUBLIC KEY-----\n"
           % (tag, base64.b64encode(os.urandom(48)).decode()))
    return base64.b64encode(pem.encode()).decode()


def user(text):
    return [{"role": "user", "content": text}]


@unittest.skipUnless(shutil.which(REDIS_SERVER), "redis-server not installed")
class StoreKeys(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.redis = RedisServer()
        cls.redis.start()

    @classmethod
    def tearDownClass(cls):
        cls.redis.stop()
        shutil.rmtree(cls.redis.dir, ignore_errors=True)

    def setUp(self):
        self.prefix = "ks%d:" % next(_prefixes)
        self.env = {"RELAY_STATE_URL": self.redis.url,
                    "RELAY_STATE_PREFIX": self.prefix,
                    "RELAY_THREADS": "32"}

    # -- helpers ---------------------------------------------------------------
    def post(self, relay, path, obj, headers=None):
        hdrs = dict(JSON)
        hdrs.update(headers or {})
        st, _, data = relay.request("POST", path, body=json.dumps(obj).encode(),
                                    headers=hdrs, timeout=HTTP_TIMEOUT)
        try:
            return st, json.loads(data)
        except ValueError:
            return st, data

    def expect(self, got, status, what):
        self.assertEqual(got[0], status, "%s: %r" % (what, got[1]))
        return got[1]

    def assert_no_state_errors(self, *relays):
        for r in relays:
            text = r.metrics()
            total = sum(float(m) for m in re.findall(
                r"^tokenplace_relay_state_errors_total\{[^}]*\} (\S+)$", text,
                re.M))
            self.assertEqual(total, 0, "state errors on relay %d:\n%s" % (
                r.port, "\n".join(l for l in text.splitlines()
                                  if "state_errors" in l)))

    def assert_our_key_names(self):
        tag = "{%s}" % self.prefix
        keys = self.redis.command("KEYS", tag + "*")
        self.assertTrue(keys)
        for k in keys:
            name = k.decode("latin-1")[len(tag):]
            self.assertRegex(name, OUR_NAMES)

    def legacy_cycle(self, a, b, tag):
        """A fresh node on a, a fresh client on b: the four-route cycle and
        a stream."""
        node, client = wire_key("n" + tag), wire_key("c" + tag)
        self.expect(self.post(a, "/sink", {"server_public_key": node}), 200,
                    "sink")
        self.expect(self.post(b, "/faucet", {
            "server_public_key": node, "client_public_key": client,
            "chat_history": "q" + tag, "cipherkey": "k", "iv": "i"}), 200,
            "faucet")
        got = self.expect(self.post(a, "/sink", {"server_public_key": node}),
                          200, "sink")
        self.assertEqual(got["chat_history"], "q" + tag)
        self.expect(self.post(a, "/source", {
            "client_public_key": client, "chat_history": "a" + tag,
            "cipherkey": "k", "iv": "i"}), 200, "source")
        got = self.expect(self.post(b, "/retrieve",
                                    {"client_public_key": client}),
                          200, "retrieve")
        self.assertEqual(got, {"chat_history": "a" + tag, "cipherkey": "k",
                               "iv": "i"})
        self.expect(self.post(b, "/faucet", {
            "server_public_key": node, "client_public_key": client,
            "chat_history": "s", "cipherkey": "k", "iv": "i",
            "stream": True}), 200, "stream faucet")
        sid = self.expect(self.post(a, "/sink", {"server_public_key": node}),
                          200, "sink")["stream_session_id"]
        self.expect(self.post(a, "/stream/source", {
            "session_id": sid, "chunk": tag, "final": True}), 200,
            "stream/source")
        got = self.expect(self.post(b, "/stream/retrieve",
                                    {"client_public_key": client}), 200,
                          "stream/retrieve")
        self.assertEqual(got["chunks"], [tag])
        got = self.expect(self.post(b, "/unregister",
                                    {"server_public_key": node}), 200,
                          "unregister")
        self.assertIs(got["removed"], True)

    def v1_peers(self, a, b):
        nk, ck = tp.key_pool(2)
        node = v1.ApiV1Node("http://127.0.0.1:%d" % a.port, keypair=nk,
                            parallel=False, progress=False,
                            timeout=HTTP_TIMEOUT)
        client = v1.ApiV1Client("http://127.0.0.1:%d" % b.port, keypair=ck,
                                poll_interval=0.05, timeout=HTTP_TIMEOUT)
        node.register()
        return node, client

    def v1_answer(self, node, client, text):
        """Client sends through its relay; the node takes and answers it.
        Returns the request id (the answer waits in the store)."""
        rid, _ = client.send(node.public_wire, user(text))
        jobs, _ = node.poll_once()
        self.assertEqual(len(jobs), 1)
        node.handle(jobs[0])
        self.assertEqual(jobs[0].outcome, "delivered")
        return rid

    # -- the attack -------------------------------------------------------------
    def legacy_attack(self, a, b, v):
        what = "legacy %r" % v[:40]
        self.expect(self.post(a, "/sink", {"server_public_key": v}), 200,
                    what + " sink")
        self.expect(self.post(b, "/faucet", {
            "server_public_key": v, "client_public_key": v,
            "chat_history": "h", "cipherkey": "k", "iv": "i"}), 200,
            what + " faucet")
        self.expect(self.post(b, "/faucet", {
            "server_public_key": v, "client_public_key": v,
            "chat_history": "s", "cipherkey": "k", "iv": "i",
            "stream": True}), 200, what + " stream faucet")
        got = self.expect(self.post(a, "/sink", {"server_public_key": v,
                                                 "max_batch_size": 4}),
                          200, what + " sink")
        self.assertEqual(len(got["batch"]), 2, what)
        sid = [j for j in got["batch"] if j.get("stream")][0][
            "stream_session_id"]
        self.expect(self.post(a, "/stream/source", {
            "session_id": sid, "chunk": "c", "final": True}), 200,
            what + " stream/source")
        got = self.expect(self.post(b, "/stream/retrieve",
                                    {"client_public_key": v}), 200,
                          what + " stream/retrieve")
        self.assertEqual(got["chunks"], ["c"], what)
        st, _ = self.post(a, "/stream/source", {"session_id": v, "chunk": "x"})
        self.assertIn(st, (400, 404), what + " stream/source with its id")
        self.expect(self.post(a, "/source", {
            "client_public_key": v, "chat_history": "mine", "cipherkey": "k",
            "iv": "i"}), 200, what + " source")
        got = self.expect(self.post(b, "/retrieve", {"client_public_key": v}),
                          200, what + " retrieve")
        self.assertEqual(got.get("chat_history"), "mine", what)
        # one left waiting, one node left registered: the sweep, the stats
        # and everyone else's calls walk past them
        self.expect(self.post(a, "/source", {
            "client_public_key": v, "chat_history": "left", "cipherkey": "k",
            "iv": "i"}), 200, what + " source")
        got = self.expect(self.post(b, "/unregister",
                                    {"server_public_key": v}), 200,
                          what + " unregister")
        self.assertIs(got["removed"], True, what)
        self.expect(self.post(b, "/sink", {"server_public_key": v}), 200,
                    what + " sink")

    def v1_attack(self, a, b, v):
        what = "v1 %r" % v[:40]
        models = [v, v1.DEFAULT_MODEL]
        caps = v1.default_capabilities(models=models)
        st, body = self.post(a, V1 + "/servers/register",
                             {"server_public_key": v, "capabilities": caps})
        if st == 400:   # a model id the relay refuses: the key alone
            caps = v1.default_capabilities()
            models = [v1.DEFAULT_MODEL]
            st, body = self.post(a, V1 + "/servers/register",
                                 {"server_public_key": v,
                                  "capabilities": caps})
        self.assertEqual(st, 200, "%s register: %r" % (what, body))
        cred = body["control_credential"]
        for m in models:
            st, _, _ = b.request("GET", V1 + "/servers/next?model=%s"
                                 "&context_tier=8k-fast"
                                 % urllib.parse.quote(m[:2000], safe=""))
            self.assertLess(st, 500, what + " next")
        st, _, _ = b.request("GET", "/api/v1/models/%s"
                             % urllib.parse.quote(v[:2000], safe=""))
        self.assertLess(st, 500, what + " models/<id>")
        req = {"server_public_key": v, "client_public_key": v,
               "request_id": v, "protocol": tp.API_V1_PROTOCOL, "version": 1,
               "ciphertext": "eA==", "cipherkey": "eA==", "iv": "eA==",
               "cancel_token": v}
        self.expect(self.post(b, V1 + "/requests", req), 200,
                    what + " requests")
        got = self.expect(self.post(a, V1 + "/servers/poll", {
            "server_public_key": v, "capabilities": caps}), 200,
            what + " poll")
        self.assertEqual(got.get("request_id"), v, what)
        self.expect(self.post(a, V1 + "/servers/control", {
            "server_public_key": v, "request_id": v,
            "control_credential": cred}), 200, what + " control")
        st, body = self.post(a, V1 + "/progress", {
            "server_public_key": v, "client_public_key": v, "request_id": v,
            "control_credential": cred, "protocol": tp.API_V1_PROTOCOL,
            "version": 1, "ciphertext": "eA==", "cipherkey": "eA==",
            "iv": "eA=="})
        # progress bodies have a small size cap of their own: three
        # 6,000-byte strings pass it, and are refused before the store
        self.assertEqual(st, 413 if len(v) > 2000 else 202,
                         "%s progress: %r" % (what, body))
        self.expect(self.post(a, V1 + "/responses", {
            "client_public_key": v, "request_id": v,
            "protocol": tp.API_V1_PROTOCOL, "version": 1,
            "chat_history": "eA==", "cipherkey": "eA==", "iv": "eA==",
            "server_public_key": v, "control_credential": cred}), 200,
            what + " responses")
        got = self.expect(self.post(b, V1 + "/responses/retrieve", {
            "client_public_key": v, "request_id": v}), 200,
            what + " retrieve")
        self.assertEqual(got.get("chat_history"), "eA==", what)
        # a second request, cancelled by its client
        req["request_id"] = v + "2"
        self.expect(self.post(b, V1 + "/requests", req), 200,
                    what + " requests")
        self.expect(self.post(a, V1 + "/requests/cancel", {
            "client_public_key": v, "request_id": v + "2",
            "cancel_token": v}), 200, what + " cancel")
        # the node stays registered (with its model sets) for the rest

    # -- tests -----------------------------------------------------------------
    def test_hostile_names_are_data_on_both_generations(self):
        with Relay(env=self.env) as a, Relay(env=self.env) as b:
            # stored before the attack
            vnode, vclient = wire_key("vn"), wire_key("vc")
            self.expect(self.post(a, "/sink", {"server_public_key": vnode}),
                        200, "sink")
            self.expect(self.post(b, "/faucet", {
                "server_public_key": vnode, "client_public_key": vclient,
                "chat_history": "queued before", "cipherkey": "k",
                "iv": "i"}), 200, "faucet")
            self.expect(self.post(a, "/source", {
                "client_public_key": vclient, "chat_history": "stored before",
                "cipherkey": "k", "iv": "i"}), 200, "source")
            node, client = self.v1_peers(a, b)
            rid = self.v1_answer(node, client, "before")

            for v in HOSTILE:
                self.legacy_attack(a, b, v)
                self.v1_attack(a, b, v)

            self.assert_no_state_errors(a, b)
            got = self.expect(self.post(b, "/retrieve",
                                        {"client_public_key": vclient}),
                              200, "victim retrieve")
            self.assertEqual(got["chat_history"], "stored before")
            got = self.expect(self.post(b, "/sink",
                                        {"server_public_key": vnode}),
                              200, "victim sink")
            self.assertEqual(got["chat_history"], "queued before")
            self.assertEqual(client.wait(rid, scaled(30)),
                             ("done", node.responder(user("before"))))
            self.legacy_cycle(a, b, "after1")
            self.legacy_cycle(b, a, "after2")
            rid = self.v1_answer(node, client, "after")
            self.assertEqual(client.wait(rid, scaled(30))[0], "done")
            for path in ("/metrics", "/api/v1/models", "/next_server"):
                self.assertEqual(a.request("GET", path)[0], 200, path)
            self.assert_no_state_errors(a, b)
            self.assert_our_key_names()

    def upgrade(self):
        """`tokenplace-relay --state-upgrade` with this test's settings."""
        env = {"RELAY_STATE_URL": self.redis.url,
               "RELAY_STATE_PREFIX": self.prefix, "PATH": "/usr/bin:/bin"}
        p = subprocess.run(WRAPPER + [RELAY_BIN, "--state-upgrade"], env=env,
                           capture_output=True, timeout=scaled(60))
        return p.returncode, (p.stdout + p.stderr).decode()

    def test_schema_1_store_then_state_upgrade(self):
        tag = "{%s}" % self.prefix
        # what the previous release left: a store at version 1
        self.redis.command("SET", tag + "schema", "1")
        with Relay(env=self.env) as a, Relay(env=self.env) as b:
            # layout 1 for the old replicas: raw keys, but the one value
            # that named a structure is refused, nothing breaks
            node, client = wire_key("n"), wire_key("c")
            self.expect(self.post(a, "/sink", {"server_public_key": node}),
                        200, "sink")
            self.assertEqual(self.redis.command(
                "ZSCORE", tag + "srv:exp", node) is not None, True)
            st, body = self.post(a, "/source", {
                "client_public_key": "exp", "chat_history": "x",
                "cipherkey": "k", "iv": "i"})
            self.assertEqual(st, 429, body)
            self.assertEqual(self.redis.command("TYPE", tag + "resp:exp"),
                             "none")
            self.expect(self.post(b, "/retrieve",
                                  {"client_public_key": "exp"}), 200,
                        "retrieve exp")
            self.legacy_cycle(a, b, "l1")
            for r in (a, b):
                r.wait_log("relay.state_layout", timeout=scaled(10), layout=1)
            # stored in layout 1, collected after the switch
            self.expect(self.post(b, "/faucet", {
                "server_public_key": node, "client_public_key": client,
                "chat_history": "queued in layout 1", "cipherkey": "k",
                "iv": "i"}), 200, "faucet")
            self.expect(self.post(a, "/source", {
                "client_public_key": client,
                "chat_history": "stored in layout 1", "cipherkey": "k",
                "iv": "i"}), 200, "source")
            vnode, vclient = self.v1_peers(a, b)
            rid = self.v1_answer(vnode, vclient, "before the switch")

            code, out = self.upgrade()
            self.assertEqual(code, 0, out)
            self.assertIn("version 1 -> 2", out)
            self.assertEqual(self.redis.command("GET", tag + "schema"), b"2")
            code, out = self.upgrade()
            self.assertEqual(code, 0, out)
            self.assertIn("already", out)

            # both relays follow at once; nothing stored before is lost
            got = self.expect(self.post(b, "/retrieve",
                                        {"client_public_key": client}),
                              200, "retrieve")
            self.assertEqual(got["chat_history"], "stored in layout 1")
            b.wait_log("relay.state_layout", timeout=scaled(10), layout=2)
            self.assertEqual(self.expect(self.get_next(b), 200, "next"),
                             {"server_public_key": node})
            got = self.expect(self.post(b, "/sink",
                                        {"server_public_key": node}),
                              200, "sink")
            self.assertEqual(got["chat_history"], "queued in layout 1")
            self.assertEqual(vclient.wait(rid, scaled(30))[0], "done")
            # the API v1 node keeps its model sets: selected, then served
            self.assertEqual(vclient.select()["server_public_key"],
                             vnode.public_wire)
            rid = self.v1_answer(vnode, vclient, "after the switch")
            self.assertEqual(vclient.wait(rid, scaled(30))[0], "done")
            # and now "exp" is a client like any other
            self.expect(self.post(a, "/source", {
                "client_public_key": "exp", "chat_history": "x",
                "cipherkey": "k", "iv": "i"}), 200, "source exp")
            got = self.expect(self.post(b, "/retrieve",
                                        {"client_public_key": "exp"}), 200,
                              "retrieve exp")
            self.assertEqual(got["chat_history"], "x")
            self.legacy_cycle(b, a, "l2")
            self.assert_no_state_errors(a, b)

    def get_next(self, relay):
        st, _, data = relay.request("GET", "/next_server",
                                    timeout=HTTP_TIMEOUT)
        return st, json.loads(data)


if __name__ == "__main__":
    main()
