"""API v1 end to end through the real relay with real cryptography
(PROTOCOL.md sections 2.2, 2.3, 3.6 and 4): compute nodes and clients
from tests/fixtures/tp_peers_v1.py (on tp_peers' keys and hybrid scheme).

Node: register -> long poll -> decrypt and check the inner envelope ->
control + encrypted progress while generating -> encrypted response.
Client: servers/next -> requests -> retrieve (202 with progress it can
decrypt) -> 200 it decrypts and checks. Also a request cancelled while
the node works on it, a deadline that passes mid-flight, owner-fenced
responses from nodes that send their proof, and a browser-style client.

TP_STATE_TOPOLOGY (redistest.Deployment) runs the same tests on one relay
with the memory store (default), or on two relays sharing one redis-server
with the nodes on relay A and the clients on relay B (redis-ab), or the
reverse (redis-ba). Counters are summed over the relays.

Waits poll with deadlines stretched by TP_TIMEOUT_SCALE."""

import contextlib
import threading
import time
import unittest

from redistest import Deployment
from relaytest import SCALE, main, metric_value, scaled, wait_for

import tp_peers as tp
import tp_peers_v1 as v1

HTTP_TIMEOUT = scaled(30)
ANSWER_TIMEOUT = scaled(60)
CLIENT_POLL = min(0.05 * SCALE, 0.5)
BASE_ENV = {
    "TOKEN_PLACE_API_V1_RELAY_POLL_WAIT_SECONDS": "2",
    "TOKEN_PLACE_API_V1_RELAY_SERVER_LEASE_SECONDS": str(int(scaled(30))),
}


def url(relay):
    return "http://127.0.0.1:%d" % relay.port


def user(text):
    return [{"role": "user", "content": text}]


class Topology:
    """Where the nodes and the clients talk to: node_url and client_url."""

    def __init__(self, deployment):
        self.relays = deployment.relays
        self.node_url = url(deployment.node_relay)
        self.client_url = url(deployment.client_relay)

    def metric(self, name, **labels):
        """A counter summed over the relays (None when none has it)."""
        values = [metric_value(r.metrics(), name, **labels)
                  for r in self.relays]
        values = [v for v in values if v is not None]
        return sum(values) if values else None


class E2E(unittest.TestCase):
    @contextlib.contextmanager
    def relays(self, env):
        with Deployment(env=env) as d:
            yield Topology(d)

    def assert_clean(self, node):
        _, errors, violations = node.snapshot()
        self.assertEqual(errors, [], node.name)
        self.assertEqual(violations, [], node.name)

    def test_round_trip_with_progress(self):
        node_keys, client_keys, browser_keys = tp.key_pool(3)
        with self.relays(BASE_ENV) as r:
            node = v1.ApiV1Node(r.node_url, name="gpu-1", keypair=node_keys,
                                work_seconds=0.6, control_interval=0.15,
                                timeout=HTTP_TIMEOUT)
            client = v1.ApiV1Client(r.client_url, keypair=client_keys,
                                    padding=tp.OAEP, poll_interval=CLIENT_POLL,
                                    timeout=HTTP_TIMEOUT, name="cli")
            browser = v1.ApiV1Client(r.client_url, keypair=browser_keys,
                                     padding=tp.PKCS1V15,
                                     poll_interval=CLIENT_POLL,
                                     timeout=HTTP_TIMEOUT, name="browser")
            with node:
                sel = wait_for(lambda: _try_select(client), 20,
                               what="the node to register")
                self.assertEqual(sel["server_public_key"], node.public_wire)
                progress = []
                rid, body = client.send(sel["server_public_key"],
                                        user("Hello over API v1"))
                self.assertEqual(body["message"], "Request received")
                got = client.wait(rid, ANSWER_TIMEOUT,
                                  on_pending=lambda p: p[1] and
                                  progress.append(p[1]))
                self.assertEqual(got, ("done", "gpu-1 echoes: Hello over API v1"))
                # progress the client decrypted, bound to its request
                self.assertTrue(progress, "no progress seen while pending")
                for p in progress:
                    self.assertEqual(p["request_id"], rid)
                    self.assertEqual(p["client_public_key"], client.public_wire)
                    self.assertEqual(p["api_v1_progress"]["phase"], "generating")
                # browser: PKCS#1 v1.5 both ways
                rid2, _ = browser.send(node.public_wire, user("from a browser"))
                self.assertEqual(browser.wait(rid2, ANSWER_TIMEOUT),
                                 ("done", "gpu-1 echoes: from a browser"))
            jobs, _, _ = node.snapshot()
            self.assert_clean(node)
            self.assertEqual([j.outcome for j in jobs], ["delivered"] * 2)
            self.assertEqual([j.padding for j in jobs], [tp.OAEP, tp.PKCS1V15])
            self.assertEqual(client.paddings_seen, [tp.PKCS1V15])
            self.assertEqual(jobs[0].request["api_v1_request"]["model"],
                             v1.DEFAULT_MODEL)
            self.assertIn("active", jobs[0].control_states)
            # registered once, never evicted between jobs (PROTOCOL.md 4.8b)
            self.assertEqual(node.registrations, 1)
            self.assertEqual(r.metric(
                "tokenplace_relay_request_outcomes_total",
                outcome="completed"), 2)
            self.assertGreaterEqual(r.metric(
                "tokenplace_relay_compute_control_lease_renewals_total"), 2)

    def test_cancel_while_generating(self):
        node_keys, client_keys = tp.key_pool(2)
        with self.relays(BASE_ENV) as r:
            node = v1.ApiV1Node(r.node_url, name="slow", keypair=node_keys,
                                work_seconds=scaled(30), control_interval=0.1,
                                timeout=HTTP_TIMEOUT)
            client = v1.ApiV1Client(r.client_url, keypair=client_keys,
                                    poll_interval=CLIENT_POLL,
                                    timeout=HTTP_TIMEOUT)
            with node:
                wait_for(lambda: _try_select(client), 20, what="registration")
                rid, _ = client.send(node.public_wire, user("never mind"))
                wait_for(lambda: node.snapshot()[0] and
                         "active" in node.snapshot()[0][0].control_states,
                         20, what="the node to start generating")
                st, body = client.cancel(rid)
                self.assertEqual((st, body["status"], body["removed_from_queue"]),
                                 (200, "cancelled", 0))
                wait_for(lambda: node.snapshot()[0][0].outcome == "cancelled",
                         20, what="the node to learn of the cancel")
                got = client.wait(rid, ANSWER_TIMEOUT)
                self.assertEqual(got[0], "gone")
                self.assertEqual(got[1]["error"]["reason"],
                                 "requester_cancelled")
            self.assert_clean(node)
            self.assertEqual(r.metric(
                "tokenplace_relay_compute_control_requests_total",
                state="acknowledged"), 1)

    def test_deadline_passes(self):
        node_keys, client_keys = tp.key_pool(2)
        env = dict(BASE_ENV, TOKEN_PLACE_API_V1_REQUEST_DEADLINE_SECONDS=str(
            int(scaled(2))))
        with self.relays(env) as r:
            node = v1.ApiV1Node(r.node_url, name="late", keypair=node_keys,
                                work_seconds=scaled(30), control_interval=0.1,
                                timeout=HTTP_TIMEOUT)
            client = v1.ApiV1Client(r.client_url, keypair=client_keys,
                                    poll_interval=CLIENT_POLL,
                                    timeout=HTTP_TIMEOUT)
            with node:
                wait_for(lambda: _try_select(client), 20, what="registration")
                rid, body = client.send(node.public_wire, user("too slow"))
                self.assertLessEqual(body["request_deadline_remaining_seconds"],
                                     scaled(2))
                got = client.wait(rid, ANSWER_TIMEOUT)
                self.assertEqual(got[0], "gone")
                self.assertEqual(got[1]["error"]["code"], "expired")
                wait_for(lambda: node.snapshot()[0][0].outcome == "expired",
                         20, what="the node to stop")
            self.assert_clean(node)

    def test_nodes_with_proof_and_many_clients(self):
        keys = tp.key_pool(10)
        with self.relays(BASE_ENV) as r:
            nodes = [v1.ApiV1Node(r.node_url, name="n%d" % i, keypair=keys[i],
                                  capabilities=v1.default_capabilities(2),
                                  work_seconds=0.05, control_interval=0.05,
                                  proof=True, timeout=HTTP_TIMEOUT)
                     for i in range(2)]
            clients = [v1.ApiV1Client(r.client_url, keypair=keys[2 + i],
                                      poll_interval=CLIENT_POLL,
                                      timeout=HTTP_TIMEOUT, name="c%d" % i)
                       for i in range(8)]
            results = {}
            errors = []

            def run(c):
                try:
                    deadline = time.monotonic() + ANSWER_TIMEOUT
                    while True:
                        try:
                            sel = c.select()
                            rid, _ = c.send(sel["server_public_key"],
                                            user("hi from " + c.name))
                            break
                        except tp.RelayError as exc:
                            if exc.status != 503 or time.monotonic() > deadline:
                                raise
                            time.sleep(CLIENT_POLL)
                    results[c.name] = c.wait(rid, ANSWER_TIMEOUT)
                except Exception as exc:    # noqa: BLE001 - keep the reason
                    errors.append((c.name, repr(exc)))

            for n in nodes:
                n.start()
            try:
                wait_for(lambda: all(n.credential for n in nodes), 20,
                         what="both nodes registered")
                threads = [threading.Thread(target=run, args=(c,))
                           for c in clients]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join(ANSWER_TIMEOUT + 10)
            finally:
                for n in nodes:
                    n.stop()
            self.assertEqual(errors, [])
            for c in clients:
                self.assertEqual(results[c.name][0], "done")
                self.assertTrue(results[c.name][1].endswith("hi from " + c.name))
            for n in nodes:
                self.assert_clean(n)
                self.assertLessEqual(n.active_max, 2)
            # the nodes leave: unregistration with their credential
            for n in nodes:
                self.assertEqual(n.unregister(), (200, {
                    "message": "Server unregistered", "removed": True}))


def _try_select(client):
    try:
        return client.select()
    except tp.RelayError:
        return None


if __name__ == "__main__":
    main()
